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
