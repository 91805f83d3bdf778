"""FP16 simulated at FP32 speed on the CPU: agrees with real FP16 execution, keeps real FP32 outputs unrounded, and
the PyTorch backend's accuracy uses it while its timing stays real; slow profiles time adaptively."""

from __future__ import annotations

import time

import pytest
import torch

from mixprec_explorer import Explorer, Settings
from mixprec_explorer.analysis import PlanRunner, rel_l2
from mixprec_explorer.backends.timing import adaptive_plan, time_until_stable

from _models import AutocastRegion, Encoder, HalfSub, ResidualCNN

FP16 = Settings(enable_autocast=True, autocast_low_precision_type=torch.float16)


class SumToFP32(torch.nn.Module):
    """An FP16 reduction asked to return FP32: its output is not FP16-rounded in a real run."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(64, 64)

    def forward(self, x):
        return torch.sum(self.fc(x), dim=-1, dtype=torch.float32) / 3.0


def _representable(t: torch.Tensor) -> bool:
    return bool((t.half().float() == t).all())


@pytest.mark.parametrize("model, inputs", [
    (ResidualCNN().eval(), (torch.randn(2, 3, 16, 16),)),
    (Encoder().eval(), (torch.randn(2, 8, 16),)),
    (HalfSub().eval(), (torch.randn(4, 8),)),
    (AutocastRegion().eval(), (torch.randn(4, 8),)),
], ids=["cnn", "encoder", "half-submodule", "autocast-region"])
@pytest.mark.parametrize("low", [torch.float16, torch.bfloat16])
def test_simulated_low_precision_agrees_with_real_execution(model, inputs, low):
    torch.manual_seed(0)
    ex = Explorer(model, inputs)
    sim, real = PlanRunner(ex, [inputs]), PlanRunner(ex, [inputs], simulate=False)
    assert sim.simulate and not real.simulate
    reference = sim.reference()
    assert rel_l2(reference, real.reference()) == 0.0
    simulated, executed = sim.outputs(sim.base(low)), real.outputs(real.base(low))
    error_sim, error_real = rel_l2(simulated, reference), rel_l2(executed, reference)
    assert error_real > 0
    assert abs(error_sim - error_real) <= 0.25 * error_real, (error_sim, error_real)
    assert all(t.dtype == torch.float32 for t in simulated), "simulated values are held in FP32"


def test_a_low_node_holds_values_of_its_type_and_a_real_fp32_output_is_left_unrounded():
    torch.manual_seed(0)
    x = torch.randn(4, 64)
    ex = Explorer(SumToFP32().eval(), (x,))
    run = PlanRunner(ex, [(x,)])
    env = run.base(torch.float16)[0]
    values = {n.name: env[n] for n in run.order}
    assert _representable(values["linear"]), "the linear node runs low: its output is FP16-rounded"
    total = values["sum_1"]
    assert not _representable(total), "sum(dtype=float32) of FP16 values is FP32 in a real run: not rounded"
    expected = torch.sum(values["linear"], dim=-1, dtype=torch.float32)
    assert torch.allclose(total, expected, rtol=1e-6, atol=0)


def test_the_torch_backend_simulates_accuracy_on_the_cpu_and_times_real_fp16():
    torch.manual_seed(0)
    inputs = (torch.randn(2, 8, 16),)
    ex = Explorer(Encoder().eval(), inputs, settings=FP16)
    compiled = ex.compile(backend="torch", isolate=False, progress=False)
    simulated = ex.accuracy(compiled)
    real = ex.accuracy(compiled, simulate=False)
    assert any("simulated at FP32 speed" in n for n in simulated.notes)
    assert not any("simulated" in n for n in real.notes)
    assert real.rel_l2_error > 0
    assert abs(simulated.rel_l2_error - real.rel_l2_error) <= 0.25 * real.rel_l2_error
    per_node = ex.accuracy(compiled, per_node=True).per_node_rel_l2
    assert per_node and max(per_node.values()) > 0
    profile = ex.profile(compiled, runs=3, warmup=1, profile_runs=1, progress=False)
    ran = {d for layer in profile.layers for d in layer.output_dtypes}
    assert torch.float16 in ran, "timing runs the real FP16 arithmetic"


def test_a_slow_plan_is_timed_until_its_median_is_stable_or_its_budget_is_spent():
    plan = adaptive_plan(first_s=3.0, runs=20, warmup=5, profile_runs=10)
    assert plan.adaptive and plan.warmup == 0 and plan.profile_runs == 1
    assert "one run takes 3 s" in plan.announce and "about" in plan.announce
    fast = adaptive_plan(first_s=0.001, runs=20, warmup=5, profile_runs=10)
    assert not fast.adaptive and fast.warmup == 4 and fast.profile_runs == 10
    started = time.perf_counter()
    times = time_until_stable(lambda: time.sleep(0.02), runs=50, budget_s=0.1, tolerance=0.0)
    assert 1 <= len(times) <= 6 and time.perf_counter() - started < 2.0, "the budget ends it"
    times = time_until_stable(lambda: time.sleep(0.01), runs=50, budget_s=60.0, tolerance=1.0)
    assert len(times) == 3, "a stable median ends it (after three runs at least)"
