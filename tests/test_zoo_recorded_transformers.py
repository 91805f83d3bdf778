"""Zoo transformers' profile folders, recorded live on an H100 (TensorRT-RTX 1.4.0.76), reloaded offline: every key
node (convolution, linear, matmul, norm, softmax, attention) that ran in an engine gets a measured latency.

The engines are mostly anonymous Myelin kernels over tensors of one size (whisper: a fused q/k/v gemm whose three
slices look alike, ``_gemm_mha_v2`` attention kernels; LeViT: bias-free linears fused with their batch norm), so
these folders check the dataflow match where element counts alone do not decide.
"""

from __future__ import annotations

import importlib.util
import json
import warnings
from pathlib import Path

import pytest
import torch

from mixprec_explorer import Explorer, Settings, zoo
from mixprec_explorer.parsers.mismatch import NORM_STATISTICS

from _data import ZOO

_COMMON = Path(__file__).resolve().parents[1] / "benchmarks" / "_common.py"
#: (zoo model, plan) -> key nodes the folder cannot time, with why
GAPS = {
    # Torch-TensorRT left the cross-attention's _scaled_dot_product_efficient_attention to PyTorch: it is in no
    # engine's layer information (its output ``getitem`` is only the next engine's input), so nothing timed it
    ("t5_small", "FP32"): {f"scaled_dot_product_attention_{k}" for k in (7, 9, 11, 13, 15, 17)},
}
CASES = [("whisper_tiny_encoder", "FP32"), ("whisper_tiny_encoder", "FP16"), ("timm_levit_128s", "FP32"),
         ("timm_levit_128s", "FP16"), ("t5_small", "FP32")]


def _key_nodes():  # benchmarks/_common.py's definition, so the test and the benchmark count the same nodes
    spec = importlib.util.spec_from_file_location("_bench_common", _COMMON)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.key_nodes


@pytest.mark.parametrize(("name", "plan"), CASES)
def test_every_key_node_is_measured(name: str, plan: str) -> None:
    """Reloaded through the public API, the folder times every key node that ran in an engine, and no other."""
    ok, why = zoo.available(name)
    if not ok:
        pytest.skip(why)
    if name == "t5_small" and tuple(int(x) for x in torch.__version__.split(".")[:2]) < (2, 11):
        pytest.skip("recorded from torch 2.11's export; older torch exports T5 with other linear node names")
    folder = ZOO / f"{name}_{plan}"
    ex = Explorer(*zoo.build(name, size="real", batch=2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a cast-graph folder's partial-fit warning is tested elsewhere
        profile = ex.load_profile(folder)
    key, missing = _key_nodes()(ex.nodes, profile.node_latency_ms())
    assert key
    assert set(missing) == GAPS.get((name, plan), set())
    assert profile.attributed_share is not None and profile.attributed_share >= 0.98


def test_t5_gaps_ran_outside_every_engine() -> None:
    """The t5 gap is honest: its attention's post-decomposition nodes appear in no engine layer's name or output."""
    post_to_pre = json.loads((ZOO / "t5_small_FP32" / "mixprec_mapping.json").read_text())["post_to_pre"]
    gaps = GAPS[("t5_small", "FP32")]
    computed = {post for post, pre in post_to_pre.items() if pre in gaps and not post.startswith("getitem")}
    assert computed
    for path in (ZOO / "t5_small_FP32").glob("*_layer_information.json"):
        layers = json.loads(path.read_text())["Layers"]
        written = {t["Name"] for layer in layers for t in layer.get("Outputs") or ()}
        names = " ".join(layer.get("Name", "") for layer in layers) + " " + " ".join(written)
        assert not [post for post in computed if f"/{post}]" in names or post in written], path.name


def test_whisper_fp16_layer_norms_come_back_as_fp32_statistics() -> None:
    """Each FP16 layer norm's kernel casts up before its statistics and down before its affine part; the overlay
    labels it "engine keeps FP32: norm statistics", as it does BERT's split norms, not as an unexplained mismatch."""
    ok, why = zoo.available("whisper_tiny_encoder")
    if not ok:
        pytest.skip(why)
    ex = Explorer(*zoo.build("whisper_tiny_encoder", size="real", batch=2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the folder's transformers differs in a few views (tests/data/SOURCES.md)
        profile = ex.load_profile(ZOO / "whisper_tiny_encoder_FP16")
    plan = ex.plan(Settings(enable_autocast=True, autocast_low_precision_type=torch.float16))
    found = {m.node: m for m in profile.dtype_mismatches(plan)}
    norms = [n for n, info in ex.nodes.items() if info.op == "torch.ops.aten.layer_norm.default"]
    assert len(norms) == 9
    assert {n: found[n].reason if n in found else None for n in norms} == dict.fromkeys(norms, NORM_STATISTICS)
