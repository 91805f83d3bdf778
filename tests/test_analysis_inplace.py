"""In-place ops (``add_``, ``relu_``; a CUDA capture of ResNet-50 is full of them) must not corrupt the cached
activations the incremental runs reuse: every single-node error equals a fresh, full run's."""

from __future__ import annotations

import pytest
import torch

from mixprec_explorer import Explorer
from mixprec_explorer.analysis.metrics import rel_l2
from mixprec_explorer.analysis.runner import PlanRunner


class InPlace(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = torch.nn.Linear(16, 16), torch.nn.Linear(16, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.a(x)
        y.add_(self.b(x))
        return torch.relu_(y)


def test_single_node_errors_equal_fresh_full_runs() -> None:
    torch.manual_seed(0)
    x = torch.randn(8, 16)
    ex = Explorer(InPlace().eval(), (x,))
    assert {"add_", "relu_"} <= set(ex.nodes)  # the capture keeps the in-place ops
    sens = ex.sensitivity((x,))
    reference = PlanRunner(ex, [(x,)]).reference()[0]
    for name, got in sens.node_low_error.items():
        fresh = PlanRunner(ex, [(x,)])
        out = fresh.outputs(fresh.run_plan(lambda n, name=name: torch.float16 if n == name else torch.float32))[0]
        assert got == pytest.approx(rel_l2(out, reference), rel=1e-3), name
        assert got < 1e-2  # FP16 on one node of a well-scaled model: a small error, not a corrupted cache
