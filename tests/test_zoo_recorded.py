"""Zoo CNN folders recorded live on an H100 (TensorRT-RTX 1.4.0.76, Torch-TensorRT 2.11), reloaded offline: every key
node an engine ran gets a latency, and a folder of the graph raises no ProfileMatchWarning."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import pytest

from mixprec_explorer import Explorer
from mixprec_explorer.parsers.mapping import ProfileMatchWarning

from _data import ZOO

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from _common import key_nodes  # noqa: E402  (the benchmarks' key nodes, as benchmarks/run.py counts them)

#: key nodes no engine of the folder ran: googlenet FP32's first engine is _run_on_acc_1 and reads
#: max_pool2d_default [2, 64, 56, 56]; conv1 ran in PyTorch (_run_on_gpu_0), no engine tensor has its 2x64x112x112
NOT_IN_AN_ENGINE = {("googlenet", "FP32"): {"conv2d", "batch_norm"}}


@pytest.fixture(scope="module")
def explorers() -> dict[str, Explorer]:
    """One explorer per zoo model, at the batch the folders were recorded with."""
    pytest.importorskip("torchvision")
    from mixprec_explorer import zoo

    return {name: Explorer(*zoo.build(name, size="real", batch=2)) for name in ("shufflenet_v2", "googlenet")}


@pytest.mark.parametrize("name", ["shufflenet_v2", "googlenet"])
@pytest.mark.parametrize("plan", ["FP32", "FP16"])
def test_every_key_node_an_engine_ran_is_measured(explorers: dict[str, Explorer], name: str, plan: str) -> None:
    """ShuffleNet's channel shuffle splits into two halves (``chunk``: two getitems, one kernel with two outputs);
    GoogLeNet's engines start at max pools run in PyTorch (``max_pool2d_default_N``, a name made after the
    decomposition): both must place their kernels, with no warning, since the folder is this graph's."""
    ex = explorers[name]
    with warnings.catch_warnings():
        warnings.simplefilter("error", ProfileMatchWarning)
        profile = ex.load_profile(ZOO / f"{name}_{plan}")
    assert profile.match_score == 1.0
    key, missing = key_nodes(ex.nodes, profile.node_latency_ms())
    assert len(key) > 100
    outside = NOT_IN_AN_ENGINE.get((name, plan), set())
    assert set(missing) == outside, missing
    assert not any(n in outside for layer in profile.layers for n in layer.nodes)
    confidences = {layer.extra["match"]["confidence"] for layer in profile.layers}
    assert "named" not in confidences and "unmatched" not in confidences, confidences
