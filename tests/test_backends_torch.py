"""The PyTorch backend on CPU with real torch: casts as Torch-TensorRT's autocast inserts them, FP32 accumulation,
observed dtypes and per-node latency that counts each op once."""

from __future__ import annotations

import operator
from types import SimpleNamespace

import pytest
import torch

from mixprec_explorer import Explorer, Settings
from mixprec_explorer.backends import compile_plan, profile_compiled
from mixprec_explorer.backends.torch_backend import (
    NODE_RANGE,
    OWNER,
    RUN_RANGE,
    apply_plan,
    attribute_events,
    flatten_inputs,
    observe_dtypes,
    summarize_ms,
)
from mixprec_explorer.examples import reference_autocast_model, reference_explicit_model

from _models import MLP, AutocastRegion, Encoder, HalfSub, ResidualCNN

FP16 = Settings(enable_autocast=True, autocast_low_precision_type=torch.float16)
BF16 = Settings(enable_autocast=True, autocast_low_precision_type=torch.bfloat16)


@pytest.fixture
def one_thread():
    """Timing on a shared 2-core machine is stable with one intra-op thread (no OpenMP oversubscription)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _casts(gm: torch.fx.GraphModule) -> list[torch.fx.Node]:
    return [n for n in gm.graph.nodes if n.op == "call_function" and n.target is torch.ops.aten.to.dtype
            and n.meta.get("mixprec_role") == "cast"]


def test_low_and_excluded_nodes_really_run_in_their_dtypes():
    torch.manual_seed(0)
    ex = Explorer(ResidualCNN().eval(), (torch.randn(2, 3, 8, 8),))
    settings = BF16.replace(autocast_excluded_nodes={"^conv2$"})
    plan = ex.plan(settings)
    planned = apply_plan(ex.exported_program, plan)
    seen = observe_dtypes(planned.module, flatten_inputs(ex.example_inputs))
    conv2 = next(r.name for r in plan if r.module == "conv2")
    assert plan[conv2].rule == "excluded_node"
    assert seen[conv2][0][0] == torch.float32 and seen[conv2][1] == (torch.float32,)
    lows = [r.name for r in plan if r.rule == "low_precision" and r.op == "torch.ops.aten.conv2d.default"]
    assert lows
    for name in lows:
        assert seen[name][1] == (torch.bfloat16,)
        assert all(d == torch.bfloat16 for d in seen[name][0])  # input, weight and bias were cast
    out = planned.module(*ex.example_inputs)
    assert out.dtype == torch.bfloat16  # the head is low, so the graph output is too (as in Torch-TensorRT)


def test_program_and_its_weights_are_left_alone():
    ex = Explorer(*reference_autocast_model())
    before = str(ex.exported_program.graph)
    weights = {k: v.clone() for k, v in ex.exported_program.state_dict.items()}
    planned = apply_plan(ex.exported_program, ex.plan(FP16))
    assert planned.weight_casts_folded == 6  # three weights and three biases, cast once at compile time
    assert str(ex.exported_program.graph) == before
    for key, value in ex.exported_program.state_dict.items():
        assert value.dtype == torch.float32 and torch.equal(value, weights[key])


def test_casts_are_inserted_per_consumer_not_shared():
    class Fan(torch.nn.Module):
        def forward(self, x):
            return torch.relu(x) + torch.sigmoid(x)

    ex = Explorer(Fan().eval(), (torch.randn(3, 4),))
    planned = apply_plan(ex.exported_program, ex.plan(FP16))
    from_x = [n for n in _casts(planned.module) if n.args[0].name == "x"]
    assert len(from_x) == 2 and len({n.meta[OWNER] for n in from_x}) == 2


def test_explicit_typing_is_left_as_the_model_gives_it():
    ex = Explorer(*reference_explicit_model())
    planned = apply_plan(ex.exported_program, ex.plan(Settings()))
    assert planned.casts_inserted == 0 and not planned.targets
    seen = observe_dtypes(planned.module, flatten_inputs(ex.example_inputs))
    assert seen["linear_1"][1] == (torch.float16,)  # the model's own .half() layer
    assert seen["linear"][1] == (torch.float32,) and seen["linear_2"][1] == (torch.float32,)


def test_autocast_regions_and_getitem_are_not_rewritten():
    torch.manual_seed(0)
    ex = Explorer(AutocastRegion().eval(), (torch.randn(2, 8),))
    planned = apply_plan(ex.exported_program, ex.plan(FP16))
    skipped = [n for n in planned.module.graph.nodes
               if n.op == "call_function" and n.target in (operator.getitem, torch.ops.higher_order.wrap_with_autocast)]
    assert skipped
    assert not [c for c in _casts(planned.module) if c.meta[OWNER] in {n.name for n in skipped}]
    seen = observe_dtypes(planned.module, flatten_inputs(ex.example_inputs))
    getitem = next(n.name for n in skipped if n.target is operator.getitem)
    assert seen[getitem][1] == (torch.bfloat16,)  # the region keeps PyTorch autocast's BF16


def test_integer_inputs_are_kept_and_noted():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Embedding(20, 8), torch.nn.Linear(8, 3)).eval()
    ex = Explorer(model, (torch.randint(0, 20, (2, 5)),))
    planned = apply_plan(ex.exported_program, ex.plan(FP16))
    assert any("embedding <- input" in note for note in planned.notes)
    assert planned.module(*ex.example_inputs).dtype == torch.float16


def test_measured_dtype_exposes_a_wrong_prediction():
    torch.manual_seed(0)
    ex = Explorer(HalfSub().eval(), (torch.randn(2, 8),))
    plan = ex.plan(FP16)
    planned = apply_plan(ex.exported_program, plan)
    seen = observe_dtypes(planned.module, flatten_inputs(ex.example_inputs))
    # the model's own x.float() is classified low, but an explicit cast still yields FP32
    to_1 = next(r for r in plan if r.name == "to_1")
    assert to_1.dtype == torch.float16 and seen["to_1"][1] == (torch.float32,)
    assert any("to_1" in note for note in planned.notes)


def test_fp32_accumulation_is_computed_in_fp32_and_cast_back():
    # 8192 products of ~0.1: an FP16 accumulator stalls at 256 (spacing 0.25 there); an FP32 one reaches ~819.
    class Dot(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = torch.nn.Linear(8192, 1)

        def forward(self, x):
            return self.fc(x)

    torch.manual_seed(0)
    model = Dot().eval()
    with torch.no_grad():
        model.fc.weight.copy_(0.1 * (1 + torch.rand(1, 8192) * 1e-3))
        model.fc.bias.fill_(0.25)
    x = torch.ones(1, 8192) + torch.rand(1, 8192) * 1e-3
    ex = Explorer(model, (x,))
    settings = FP16.replace(use_fp32_acc=True)
    assert ex.plan(settings)["linear"].accumulate_dtype == torch.float32
    planned = apply_plan(ex.exported_program, ex.plan(settings))
    assert planned.fp32_acc_nodes == ("linear",)
    got = planned.module(x)
    seen = observe_dtypes(planned.module, [x])
    assert seen["linear"] == ((torch.float32, torch.float32), (torch.float16,))
    x16, w16, b16 = x.half(), model.fc.weight.detach().half(), model.fc.bias.detach().half()
    # Torch-TensorRT's recipe: FP32 matmul of the FP16 operands, cast to FP16, then the bias added in FP16
    assert torch.equal(got, (x16.float() @ w16.float().T).half() + b16)
    exact = float(x.double() @ model.fc.weight.detach().double().T + 0.25)
    fp16_acc = torch.zeros((), dtype=torch.float16)
    for product in (x16 * w16)[0]:  # a GEMM accumulating in FP16
        fp16_acc = fp16_acc + product
    fp16_acc = fp16_acc + b16[0]
    assert abs(float(fp16_acc) - exact) > 500
    assert abs(float(got) - exact) <= 0.5  # two FP16 roundings near 819 (spacing 0.5): output cast, bias add


def test_fp32_accumulation_only_for_fp16():
    ex = Explorer(MLP().eval(), (torch.randn(2, 8),))
    planned = apply_plan(ex.exported_program, ex.plan(BF16.replace(use_fp32_acc=True)))
    assert planned.fp32_acc_nodes == ()


@pytest.mark.parametrize("settings", [Settings(), FP16, BF16.replace(autocast_excluded_ops={
    "torch.ops.aten.linear.default"})], ids=["fp32", "fp16", "bf16-no-linear"])
def test_profile_records_observed_dtypes_and_latency(settings, one_thread):
    torch.manual_seed(0)
    ex = Explorer(Encoder().eval(), (torch.randn(2, 5, 16),))
    compiled = compile_plan(ex, settings, device="cpu", backend="torch", isolate=False, progress=False)
    profile = profile_compiled(ex, compiled, runs=5, warmup=1, progress=False)
    plan = ex.plan(settings)
    assert profile.backend == "torch" and profile.mode == "eager" and profile.device.startswith("cpu")
    assert profile.versions["torch"] == torch.__version__
    measured = profile.node_dtypes()
    for rec in plan:
        if rec.rule in ("low_precision", "excluded_op") and rec.op != "torch.ops.aten.to.dtype":
            assert measured[rec.name] == rec.dtype, rec.name
    assert sum(layer.share for layer in profile.layers) == pytest.approx(1.0)
    assert all(layer.latency_ms >= 0 for layer in profile.layers)
    assert profile.end_to_end.runs == 5 and profile.end_to_end.p10_ms <= profile.end_to_end.median_ms


def test_per_node_latency_counts_each_op_once(one_thread):
    """Structural, not a timing race: the parts of a profiled run are measured inside it, so they cannot add up to
    more than the run (nested ranges counted twice would give about 2x). The exact attribution arithmetic is
    tested on synthetic events below; how close the sum comes to end-to-end is a benchmark figure."""
    torch.manual_seed(0)
    ex = Explorer(ResidualCNN().eval(), (torch.randn(4, 3, 16, 16),))
    compiled = compile_plan(ex, FP16, device="cpu", backend="torch", isolate=False, progress=False)
    profile = profile_compiled(ex, compiled, runs=10, warmup=2, progress=False, profile_runs=6)
    assert profile.layer_sum_ms <= profile.profiled_run_ms * 1.02
    assert profile.layer_sum_ratio is not None and profile.layer_sum_ratio > 0
    conv = next(layer for layer in profile.layers if layer.layer_type == "torch.ops.aten.conv2d.default")
    assert conv.latency_ms > 0 and "conv" in conv.tactic and conv.modules == ("conv1",)
    assert conv.extra["cast_ms"] > 0  # the input cast to FP16 is timed and charged to the conv


def _event(name, parent=None, self_us=0.0, kernels=(), device="DeviceType.CPU", dur=0.0, annotation=False):
    event = SimpleNamespace(name=name, cpu_parent=parent, self_cpu_time_total=self_us, cpu_time_total=self_us,
                            kernels=[SimpleNamespace(name=k, duration=d) for k, d in kernels], device_type=device,
                            time_range=SimpleNamespace(elapsed_us=lambda d=dur: d), cpu_children=[],
                            is_user_annotation=annotation)
    if parent is not None:
        parent.cpu_children.append(event)
    return event


def test_attribution_counts_leaf_time_once_on_cpu_and_cuda():
    run = _event(f"{RUN_RANGE}0", self_us=5)
    node = _event(f"{NODE_RANGE}linear/op", run, self_us=3)  # the range's own time is overhead
    outer = _event("aten::linear", node, self_us=2, kernels=[("gemm", 40.0)])
    inner = _event("aten::addmm", outer, self_us=10, kernels=[("gemm_kernel", 30.0), ("bias", 5.0)])
    cast = _event("aten::_to_copy", _event(f"{NODE_RANGE}linear/cast", run), self_us=4)
    loose = _event("aten::empty", run, self_us=1)
    outside = _event("aten::zeros", None, self_us=100)
    # as Kineto does on an H100: an internal child lists its parent's kernel again
    echo = _event("Activity Buffer Request", inner, kernels=[("gemm_kernel", 30.0)])
    device = [_event(k, device="DeviceType.CUDA", dur=d) for k, d in
              (("gemm", 40.0), ("gemm_kernel", 30.0), ("bias", 5.0), ("stray", 7.0))]
    # record_function ranges mirrored on the GPU timeline are annotations, not kernels
    device.append(_event(f"{NODE_RANGE}linear/op", device="DeviceType.CUDA", dur=80.0, annotation=True))
    events = [run, node, outer, inner, echo, cast, loose, outside, *device]
    ranged, free, kernels, orphan = attribute_events(events, 1, "cpu")
    assert ranged == {"linear/op": [12.0], "linear/cast": [4.0]}
    assert free["aten::empty"] == [1.0] and "aten::zeros" not in free
    assert kernels["linear"]["aten::addmm"] == 10.0 and orphan == 0.0
    ranged, free, kernels, orphan = attribute_events(events, 1, "cuda")
    assert ranged == {"linear/op": [75.0]}  # 40 + 30 + 5: each kernel once, at the op that launched it
    assert orphan == pytest.approx(7.0)  # a kernel no op launched is reported, not attributed


def test_summary_of_runs():
    summary = summarize_ms([5.0, 1.0, 3.0, 2.0, 4.0])
    assert (summary.median_ms, summary.runs) == (3.0, 5)
    assert summary.p10_ms == pytest.approx(1.4) and summary.p90_ms == pytest.approx(4.6)


def test_weak_typing_runs_as_given_and_says_so():
    ex = Explorer(MLP().eval(), (torch.randn(2, 8),))
    weak = Settings(use_explicit_typing=False, target="2.12")  # weak typing ended with Torch-TensorRT 2.12
    compiled = compile_plan(ex, weak, device="cpu", backend="torch", isolate=False, progress=False)
    assert any("weak typing" in note for note in compiled.notes)
    assert compiled.handle(*ex.example_inputs).dtype == torch.float32


def test_unknown_mode_is_refused():
    ex = Explorer(MLP().eval(), (torch.randn(2, 8),))
    with pytest.raises(ValueError, match="mode must be one of"):
        compile_plan(ex, FP16, device="cpu", backend="torch", isolate=False, progress=False, mode="jit")


@pytest.mark.slow
def test_torch_compile_mode(one_thread):
    torch.manual_seed(0)
    ex = Explorer(MLP().eval(), (torch.randn(2, 8),))
    compiled = compile_plan(ex, BF16, device="cpu", backend="torch", isolate=False, progress=False, mode="compiled")
    eager = compile_plan(ex, BF16, device="cpu", backend="torch", isolate=False, progress=False)
    assert compiled is not eager and compiled.handle.mode == "compiled"
    out = compiled.handle(*ex.example_inputs)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out, eager.handle(*ex.example_inputs), atol=1e-2, rtol=1e-2)
    profile = profile_compiled(ex, compiled, runs=3, warmup=1, progress=False, profile_runs=2)
    assert profile.mode == "compiled" and profile.unattributed
    assert all(layer.latency_ms is None for layer in profile.layers)
    assert profile.node_dtypes()["linear"] == torch.bfloat16


def test_a_program_loaded_on_another_device_runs_its_views_as_reshapes():
    """Export may trace a reshape as a view valid only for the capture device's strides (the encoder's attention
    output on CUDA under torch 2.11); the copy loaded elsewhere must not fail there, and the program is untouched."""
    from mixprec_explorer.backends.torch_plan import load_module

    class Flatten(torch.nn.Module):
        def forward(self, x):
            return x.view(4, 2) * 2

    ep = torch.export.export(Flatten(), (torch.randn(2, 4),))
    moved = load_module(ep, "meta")
    targets = [n.target for n in moved.graph.nodes if n.op == "call_function"]
    assert torch.ops.aten.reshape.default in targets and torch.ops.aten.view.default not in targets
    assert moved(torch.randn(2, 4, device="meta")).shape == (4, 2)
    assert torch.ops.aten.view.default in [n.target for n in ep.graph.nodes], "the explorer's program is not changed"
    here = load_module(ep, "cpu")
    assert torch.equal(here(torch.ones(2, 4)), torch.full((4, 2), 2.0))


def test_a_cuda_profile_lets_kineto_release_cupti_and_leaves_the_users_setting(monkeypatch):
    """Kineto keeps CUPTI attached after profiling unless TEARDOWN_CUPTI=1, slowing every later launch."""
    import os

    from mixprec_explorer.backends.torch_profile import cupti_released

    monkeypatch.delenv("TEARDOWN_CUPTI", raising=False)
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    with cupti_released("cuda"):
        assert os.environ.get("TEARDOWN_CUPTI") == "1", "Kineto reads it when the profiler stops, inside"
    assert "TEARDOWN_CUPTI" not in os.environ, "the process's environment is as it was"
    with cupti_released("cpu"):
        assert "TEARDOWN_CUPTI" not in os.environ, "no CUPTI on the CPU"
    monkeypatch.setattr(torch.version, "cuda", "12.4")
    with cupti_released("cuda"):
        assert "TEARDOWN_CUPTI" not in os.environ, "before CUDA 12.6 teardown can crash with CUDA graphs"
    monkeypatch.setattr(torch.version, "cuda", "unknown")
    with cupti_released("cuda"):
        assert "TEARDOWN_CUPTI" not in os.environ, "a version it cannot read is taken as old"
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    monkeypatch.setenv("TEARDOWN_CUPTI", "0")
    with cupti_released("cuda"):
        assert os.environ["TEARDOWN_CUPTI"] == "0", "a user's own setting wins"
    assert os.environ["TEARDOWN_CUPTI"] == "0"


class _PaddedAttention(torch.nn.Module):
    """Scores masked as older Hugging Face models do: masked_fill with torch.finfo(float32).min, beyond FP16."""

    def __init__(self) -> None:
        super().__init__()
        self.q, self.k = torch.nn.Linear(8, 8), torch.nn.Linear(8, 8)

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        scores = self.q(x) @ self.k(x).transpose(-1, -2)
        scores = scores.masked_fill(~keep[:, None, :], torch.finfo(torch.float32).min)
        return scores.softmax(-1)


def test_a_fill_beyond_fp16_becomes_the_infinity_it_is_there_and_the_plan_runs():
    """PyTorch refuses to convert -3.4e38 to FP16 in masked_fill (every release) and in where (2.6): the planned graph
    writes the -inf the value becomes in FP16, says so, and computes what the FP32 model does, masked keys at 0."""
    from mixprec_explorer.analysis import PlanEvaluator, PlanRunner

    torch.manual_seed(0)
    keep = torch.ones(2, 6, dtype=torch.bool)
    keep[1, 4:] = False
    ex = Explorer(_PaddedAttention().eval(), (torch.randn(2, 6, 8), keep))
    fp16 = Settings(enable_autocast=True, autocast_low_precision_type=torch.float16)
    compiled = ex.compile(fp16, backend="torch", device="cpu", isolate=False, progress=False)
    assert any("infinity" in note and "masked_fill" in note for note in compiled.notes), compiled.notes
    out = compiled.handle(*ex.example_inputs)
    assert out.dtype == torch.float16 and torch.isfinite(out).all() and (out[1, :, 4:] == 0).all()
    with torch.no_grad():
        want = ex.exported_program.module()(*ex.example_inputs)
    torch.testing.assert_close(out.float(), want, atol=2e-3, rtol=0)
    assert PlanEvaluator(ex, PlanRunner(ex, [ex.example_inputs])).error(fp16) < 1e-2  # the runner writes it alike
