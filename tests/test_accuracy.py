"""Accuracy metrics on known tensors (expected values computed independently with numpy), and measured on real
compiles, per node included, through the torch backend and a generic handle-only backend."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from mixprec_explorer import Explorer, Settings
from mixprec_explorer import backends as B
from mixprec_explorer.accuracy import AccuracyReport, compare_outputs, measure_accuracy
from mixprec_explorer.analysis import rel_l2
from mixprec_explorer.backends.base import Compiled
from mixprec_explorer.backends.torch_backend import apply_plan

from _models import MLP, ResidualCNN

FP16 = Settings(enable_autocast=True, autocast_low_precision_type=torch.float16)


def _expected(ref: np.ndarray, out: np.ndarray) -> dict[str, float]:
    ref, out = ref.astype(np.float64).ravel(), out.astype(np.float64).ravel()
    err = out - ref
    return {
        "max_abs_error": np.abs(err).max(),
        "mean_abs_error": np.abs(err).mean(),
        "rel_l2_error": np.sqrt((err ** 2).sum()) / np.sqrt((ref ** 2).sum()),
        "cosine_similarity": (out @ ref) / (np.linalg.norm(out) * np.linalg.norm(ref)),
        "sqnr_db": 10 * np.log10((ref ** 2).sum() / (err ** 2).sum()),
    }


def test_metrics_on_known_tensors():
    ref = torch.tensor([[3.0, -1.0, 0.5], [0.0, 2.0, -4.0]])
    out = torch.tensor([[2.5, -1.0, 1.0], [0.25, 2.0, -3.0]], dtype=torch.float16)
    report = compare_outputs(ref, out)
    for name, value in _expected(ref.numpy(), out.float().numpy()).items():
        assert getattr(report, name) == pytest.approx(value, rel=1e-12), name
    # argmax per row: ref (0, 1), out (0, 1) -> both agree
    assert report.top1_agreement == 1.0 and report.numel == 6 and report.nonfinite == 0
    flipped = compare_outputs(ref, torch.tensor([[0.0, 5.0, 0.0], [0.0, 2.0, -4.0]]))
    assert flipped.top1_agreement == 0.5


def test_metrics_over_several_outputs_and_random_values():
    rng = np.random.default_rng(0)
    refs = [rng.standard_normal((4, 7)), rng.standard_normal(5)]
    outs = [r + rng.normal(scale=0.01, size=r.shape) for r in refs]
    report = compare_outputs(tuple(torch.tensor(r) for r in refs), [torch.tensor(o) for o in outs])
    # both sides are cast to FP32 first, as the issue asks
    want = _expected(np.concatenate([r.astype(np.float32).ravel() for r in refs]),
                     np.concatenate([o.astype(np.float32).ravel() for o in outs]))
    for name, value in want.items():
        assert getattr(report, name) == pytest.approx(value, rel=1e-6), name
    assert report.top1_agreement == np.mean(refs[0].argmax(-1) == outs[0].argmax(-1))


def test_edge_cases():
    same = compare_outputs(torch.ones(3), torch.ones(3))
    assert same.sqnr_db == math.inf and same.rel_l2_error == 0 and same.cosine_similarity == pytest.approx(1.0)
    assert compare_outputs(torch.ones(4, 1), torch.ones(4, 1)).top1_agreement is None  # last dim 1: not logits
    zeros = compare_outputs(torch.zeros(3), torch.ones(3))
    assert zeros.rel_l2_error == math.inf and zeros.sqnr_db == -math.inf
    bad = compare_outputs(torch.ones(3), torch.tensor([1.0, float("nan"), float("inf")]))
    assert bad.nonfinite == 2 and math.isnan(bad.max_abs_error)
    with pytest.raises(ValueError, match="shape"):
        compare_outputs(torch.ones(3), torch.ones(4))
    with pytest.raises(ValueError, match="1 output tensors"):
        compare_outputs(torch.ones(3), (torch.ones(3), torch.ones(3)))
    assert rel_l2(torch.tensor([3.0, 4.0]), torch.tensor([0.0, 0.0])) == math.inf


@pytest.mark.parametrize("isolate", [False, True], ids=["in-process", "worker"])
def test_measure_accuracy_with_per_node_errors(isolate):
    torch.manual_seed(0)
    ex = Explorer(ResidualCNN().eval(), (torch.randn(2, 3, 8, 8),))
    exact = ex.compile(Settings(), device="cpu", backend="torch", isolate=isolate, progress=False)
    report = ex.accuracy(exact, per_node=True)
    assert isinstance(report, AccuracyReport) and ex.last_accuracy is report
    assert report.max_abs_error == 0 and report.sqnr_db == math.inf and report.top1_agreement == 1.0
    assert set(report.per_node_rel_l2.values()) == {0.0}
    low = ex.compile(FP16.replace(autocast_excluded_nodes={"^head$"}), device="cpu", backend="torch", isolate=isolate,
                     progress=False)
    inputs = (torch.randn(2, 3, 8, 8),)
    report = measure_accuracy(ex, low, inputs, per_node=True)
    assert 0 < report.rel_l2_error < 1e-2 and report.sqnr_db > 40 and report.cosine_similarity > 0.999
    per_node = report.per_node_rel_l2
    assert set(per_node) >= {"conv2d", "conv2d_1", "linear"} and per_node["conv2d"] > 0
    # independent check of the head's number: same planned graph, same inputs, compared by hand
    planned = apply_plan(ex.exported_program, ex.plan(low.settings))
    with torch.no_grad():
        want = rel_l2(planned.module(*inputs).float(), ex.exported_program.module()(*inputs))
    assert per_node["linear"] == pytest.approx(want, rel=1e-6)
    assert report.rel_l2_error == pytest.approx(want, rel=1e-6)
    assert measure_accuracy(ex, low, inputs).per_node_rel_l2 is None


@dataclass
class _ModuleHandle:
    module: torch.nn.Module  # like the TensorRT backend's handle: a runnable module, no backend.run()


class _PlainBackend:
    """A backend with only compile/profile, whose compiled handle is a module (as TensorRT's is)."""

    name = "plain"

    def availability(self):
        return True, ""

    def compile(self, explorer, plan, device, **options):
        planned = apply_plan(explorer.exported_program, plan, device=device)
        return Compiled(backend=self.name, device=device, settings=plan.settings, compile_s=0.0,
                        handle=_ModuleHandle(planned.module))

    def profile(self, explorer, compiled, inputs, runs, warmup):
        raise NotImplementedError


def test_accuracy_is_generic_over_backends():
    B.register_backend("plain", _PlainBackend)
    try:
        torch.manual_seed(0)
        ex = Explorer(MLP().eval(), (torch.randn(3, 8),))
        compiled = ex.compile(FP16, device="cpu", backend="plain", isolate=False, progress=False)
        report = ex.accuracy(compiled, per_node=True)
        assert report.backend == "plain" and 0 < report.rel_l2_error < 1e-2
        assert set(report.per_node_rel_l2) == {"linear", "relu", "linear_1"}
        assert any("PyTorch backend's copy" in note for note in report.notes)
    finally:
        B.unregister_backend("plain")


def test_a_reference_that_may_use_tf32_says_so():
    from mixprec_explorer.accuracy import tf32_note

    note = tf32_note("cuda:0", cudnn_tf32=True, matmul_tf32=False)  # PyTorch's defaults on a GPU
    assert "TF32 allowed (cuDNN convolutions: True, matmuls: False)" in note and "allow_tf32 = False" in note
    assert tf32_note("cuda:0", cudnn_tf32=False, matmul_tf32=False) is None
    assert tf32_note("cpu", cudnn_tf32=True, matmul_tf32=True) is None, "CPU kernels never use TF32"
