"""Frontier and plan comparison on a model with one fragile module."""

from __future__ import annotations

import math

import torch

from mixprec_explorer import Explorer, Settings
from mixprec_explorer.frontier import pareto_flags
from mixprec_explorer.viz import draw

from test_sensitivity import Fragile


def test_pareto_flags():
    assert pareto_flags([(1, 5), (2, 1), (3, 3), (1, 5)]) == [True, True, False, True]


def test_frontier_spans_all_low_to_all_fp32_and_draws():
    torch.manual_seed(0)
    ex = Explorer(Fragile().eval(), (torch.rand(3, 4),))
    ex.settings = Settings(enable_autocast=True, autocast_low_precision_type=torch.float16)
    frontier = ex.frontier(progress=False)
    first, last = frontier.points[0], frontier.points[-1]
    assert first.label == "all low" and math.isinf(first.error)
    assert last.label == "all FP32" and last.error == 0.0
    assert frontier.points[1].fp32_modules == ("blowup",) and frontier.points[1].error < 1e-2
    assert any(p.on_front for p in frontier.points)
    fig = draw(frontier)
    assert ex.figure_of(frontier).to_json() == fig.to_json()
    assert len(fig.data) == 2 and list(fig.data[0].customdata) == list(range(len(frontier.points)))


def test_compare_lists_the_nodes_that_changed():
    torch.manual_seed(0)
    ex = Explorer(Fragile().eval(), (torch.rand(3, 4),))
    a = Settings(enable_autocast=True, autocast_low_precision_type=torch.float16)
    b = a.replace(autocast_excluded_nodes={"^blowup$"})
    cmp = ex.compare(a, b)
    assert [(c.name, c.dtype_a, c.dtype_b) for c in cmp.changes] == [("exp", "FP16", "FP32"), ("div", "FP16", "FP32")]
    assert "2 nodes differ" in str(cmp)


def test_zero_and_infinite_errors_are_still_drawn():
    torch.manual_seed(0)
    ex = Explorer(Fragile().eval(), (torch.rand(3, 4),))
    ex.settings = Settings(enable_autocast=True, autocast_low_precision_type=torch.float16)
    fig = ex.figure_of(ex.frontier(progress=False))
    ys = list(fig.data[0].y)
    assert all(0 < y < math.inf for y in ys), "a log axis drops 0 and inf: they sit at its edges"
    assert fig.data[0].marker.symbol[0] == "triangle-up" and fig.data[0].marker.symbol[-1] == "triangle-down"
