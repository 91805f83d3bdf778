"""Sensitivity: incremental re-runs agree with full runs, cost less, and find the node that matters."""

from __future__ import annotations

import math

import pytest
import torch

from mixprec_explorer import Explorer, OptionError
from mixprec_explorer.analysis import PlanRunner, rel_l2
from mixprec_explorer.sensitivity import compute_sensitivity

from _models import Encoder, ResidualCNN


class Exp(torch.nn.Module):
    def forward(self, x):
        return torch.exp(x) / 1e5  # fine in FP32; exp overflows to inf in FP16


class Fragile(torch.nn.Module):
    """fc -> exp of values near 12: exp(12) = 162755 overflows FP16 (max 65504); everything else is benign."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(4, 4)
        self.blowup = Exp()
        self.out = torch.nn.Linear(4, 2)
        with torch.no_grad():
            self.fc.weight.copy_(torch.eye(4))
            self.fc.bias.fill_(11.5)

    def forward(self, x):
        return self.out(self.blowup(self.fc(x)))


@pytest.mark.parametrize("model, inputs", [
    (ResidualCNN().eval(), (torch.randn(2, 3, 8, 8),)),
    (Encoder().eval(), (torch.randn(2, 5, 16),)),
], ids=["cnn", "encoder"])
def test_incremental_rerun_equals_a_full_run(model, inputs):
    ex = Explorer(model, inputs)
    run = PlanRunner(ex, [inputs])
    for module, members in list(ex.modules.items())[:6]:
        keep = set(members) & run.classified
        if not keep:
            continue
        fast = run.perturbed(torch.bfloat16, dict.fromkeys(keep, torch.float32))
        slow = run.outputs(run.run_plan(lambda n, keep=keep: torch.float32 if n in keep else torch.bfloat16))
        assert rel_l2(fast, slow) == 0.0, module


def test_finds_the_overflowing_module_and_costs_less_than_naive():
    ex = Explorer(Fragile().eval(), (torch.rand(3, 4),))
    s = compute_sensitivity(ex, low_dtype=torch.float16, progress=False)
    assert math.isinf(s.all_low_error) or s.all_low_error > 0.5
    assert s.ranking()[0] == ("blowup", math.inf), "keeping only blowup in FP32 makes the output finite"
    assert s.module_low_error["blowup"] > 0.5 and s.module_low_error["out"] < 1e-2
    assert s.nodes_evaluated < s.naive_evaluations


def test_unknown_metric_is_named():
    ex = Explorer(Fragile().eval(), (torch.rand(3, 4),))
    with pytest.raises(OptionError, match="unknown metric 'max'"):
        compute_sensitivity(ex, metric="max", progress=False)


class Stack(torch.nn.Module):
    """48 Linear+GELU layers: exact re-runs cost ~N^2/2 op evaluations, so "auto" takes the linear model."""

    def __init__(self, layers: int = 48, width: int = 32) -> None:
        super().__init__()
        self.layers = torch.nn.Sequential(*(torch.nn.Sequential(torch.nn.Linear(width, width), torch.nn.GELU())
                                            for _ in range(layers)))

    def forward(self, x):
        return self.layers(x)


def _rel(estimate: dict[str, float], exact: dict[str, float]) -> float:
    keys = sorted(exact)
    num = sum((estimate[k] - exact[k]) ** 2 for k in keys) ** 0.5
    return num / sum(exact[k] ** 2 for k in keys) ** 0.5


@pytest.mark.parametrize("model, inputs", [
    (ResidualCNN().eval(), (torch.randn(2, 3, 16, 16),)),
    (Encoder().eval(), (torch.randn(2, 8, 16),)),
], ids=["cnn", "encoder"])
def test_the_linear_model_agrees_with_exact_reruns(model, inputs):
    torch.manual_seed(0)
    ex = Explorer(model, inputs)
    run = PlanRunner(ex, [inputs])
    exact = compute_sensitivity(ex, low_dtype=torch.float16, progress=False, runner=run, method="exact")
    linear = compute_sensitivity(ex, low_dtype=torch.float16, progress=False, runner=run, method="linear",
                                 probes=64)
    assert (exact.method, linear.method) == ("exact", "linear") and linear.estimator is not None
    assert linear.all_low_error == exact.all_low_error, "the all-low error is exact either way"
    assert "linear model: all-low error" in linear.notes[0]
    assert set(linear.node_low_error) == set(exact.node_low_error)
    assert _rel(linear.node_low_error, exact.node_low_error) < 0.35
    assert _rel(linear.module_low_error, exact.module_low_error) < 0.35
    everything = linear.estimator.low_error(linear.node_low_error)
    assert 0.5 < everything / exact.all_low_error < 2.0, "every node low at once is the all-low plan"
    assert linear.estimator.kept_error(linear.node_low_error) == pytest.approx(0.0, abs=0.2 * exact.all_low_error)


def test_auto_takes_exact_reruns_on_small_graphs_and_the_linear_model_on_long_ones():
    torch.manual_seed(0)
    small = Explorer(ResidualCNN().eval(), (torch.randn(2, 3, 8, 8),))
    assert compute_sensitivity(small, low_dtype=torch.float16, progress=False).method == "exact"
    x = torch.randn(4, 32)
    deep = Explorer(Stack().eval(), (x,))
    s = compute_sensitivity(deep, low_dtype=torch.float16, progress=False)
    assert s.method == "linear" and len(s.node_low_error) == 96
    assert s.nodes_evaluated < s.naive_evaluations / 10


def test_where_first_order_fails_the_exact_reruns_answer():
    ex = Explorer(Fragile().eval(), (torch.rand(3, 4),))
    s = compute_sensitivity(ex, low_dtype=torch.float16, progress=False, method="linear")
    assert s.method == "exact" and "exact re-runs were used" in s.notes[0]
    assert s.ranking()[0] == ("blowup", math.inf)


def test_the_linear_model_needs_simulated_values_and_relative_l2():
    inputs = (torch.randn(2, 3, 8, 8),)
    ex = Explorer(ResidualCNN().eval(), inputs)
    with pytest.raises(OptionError, match="method='linear' needs low precision simulated"):
        compute_sensitivity(ex, progress=False, runner=PlanRunner(ex, [inputs], simulate=False), method="linear")
    with pytest.raises(OptionError, match="method must be one of"):
        compute_sensitivity(ex, progress=False, method="fast")
