"""Two plans on one graph: side-by-side panels, the difference view, and color_by="changed"."""

from __future__ import annotations

import doctest

import plotly.graph_objects as go
import pytest
import torch

from mixprec_explorer import Explorer, Settings
from mixprec_explorer.dtypes import PALETTE
from mixprec_explorer.viz import compare, draw
from mixprec_explorer.viz import graph as vg
from mixprec_explorer.viz.compare import build_compare_figure
from mixprec_explorer.viz.graph import OverlayUnavailable, changed_nodes

from test_sensitivity import Fragile

FP16 = torch.float16
A = Settings(enable_autocast=True, autocast_low_precision_type=FP16)
B = A.replace(autocast_excluded_nodes={"^blowup$"})  # exp and div (module blowup) go back to FP32


@pytest.fixture(scope="module")
def ex() -> Explorer:
    torch.manual_seed(0)
    return Explorer(Fragile().eval(), (torch.rand(3, 4),))


def _colour(trace: go.Scatter, index: int) -> str:
    marker = trace.marker
    frac = (float(marker.color[index]) - marker.cmin) / (marker.cmax - marker.cmin)
    return [c for p, c in marker.colorscale if p <= frac + 1e-12][-1]


def _colours(fig: go.Figure, nodes_trace: int) -> dict[str, str]:
    trace = fig.data[nodes_trace]
    return {k: _colour(trace, i) for i, k in enumerate(trace.customdata)}


def _ringed(fig: go.Figure, nodes_trace: int, ring_trace: int) -> set[str]:
    nodes, ring = fig.data[nodes_trace], fig.data[ring_trace]
    at = {(x, y): k for k, x, y in zip(nodes.customdata, nodes.x, nodes.y)}
    return {at[(x, y)] for x, y in zip(ring.x, ring.y)}


def test_side_by_side_draws_each_plan_in_its_own_panel(ex: Explorer) -> None:
    fig = ex.figure_of(ex.compare(A, B))
    direct = build_compare_figure(ex.captured, ex.plan(A), ex.plan(B))  # the records alone draw the same
    assert direct.to_json() == fig.to_json()
    go.Figure(fig.to_dict())  # full validation of every property
    per_panel = len(fig.data) // 2
    a_nodes, b_nodes = vg.NODES, per_panel + vg.NODES
    assert (fig.data[a_nodes].xaxis, fig.data[b_nodes].xaxis) == ("x", "x2")
    assert fig.layout.yaxis2.matches == "y" and fig.layout.xaxis.domain[1] < fig.layout.xaxis2.domain[0]
    a, b = _colours(fig, a_nodes), _colours(fig, b_nodes)
    assert a["exp"] == a["div"] == a["linear"] == PALETTE["FP16"]
    assert b["exp"] == b["div"] == PALETTE["FP32"] and b["linear"] == PALETTE["FP16"]
    assert _ringed(fig, a_nodes, vg.HIGHLIGHT) == _ringed(fig, b_nodes, per_panel + vg.HIGHLIGHT) == {"exp", "div"}
    hover_b = dict(zip(fig.data[b_nodes].customdata, fig.data[b_nodes].hovertext))
    assert "A \u2192 B: FP16 \u2192 FP32" in hover_b["exp"] and "A \u2192 B: unchanged" in hover_b["linear"]
    legend = [t.name for t in fig.data if t.visible is True]
    assert legend.count("FP32") == 1 and legend.count("FP16") == 1  # one legend for both panels
    assert "2 node(s) change dtype" in fig.layout.title.text
    assert [a.text.split(":")[0] for a in fig.layout.annotations] == ["<b>A</b>", "<b>B</b>"]
    assert fig.layout.meta["mixprec"] == {"kind": "compare", "mode": "side_by_side", "changed": ["exp", "div"],
                                          "labels": ["A", "B"]}


def test_difference_view_highlights_changed_nodes_by_their_new_dtype(ex: Explorer) -> None:
    fig = ex.figure_of(ex.compare(A, B), mode="difference", labels=("fast", "safe"))
    go.Figure(fig.to_dict())
    colours = _colours(fig, vg.NODES)
    assert colours["exp"] == colours["div"] == PALETTE["FP32"]
    assert colours["linear"] == colours["linear_1"] == colours["x"] == vg._LIGHT
    legend = [t.name for t in fig.data[6:] if t.visible]
    assert "now FP32" in legend and "unchanged" in legend
    assert _ringed(fig, vg.NODES, vg.HIGHLIGHT) == {"exp", "div"}
    hover = dict(zip(fig.data[vg.NODES].customdata, fig.data[vg.NODES].hovertext))
    assert "fast \u2192 safe: FP16 \u2192 FP32</b> (rule low_precision \u2192 excluded_node)" in hover["exp"]
    assert "fast \u2192 safe (2 nodes change dtype)" in fig.layout.title.text
    # still a graph figure: recolour it in place against another plan
    ex.recolor(fig, ex.plan(B), color_by="changed", compare_to=B)
    assert set(_colours(fig, vg.NODES).values()) == {vg._LIGHT}


def test_changed_groups_rules_and_missing_plan(ex: Explorer) -> None:
    grouped = ex.figure(settings=B, color_by="changed", compare_to=A, group_by_module=1)
    assert _colours(grouped, vg.NODES)["module:blowup"] == PALETTE["FP32"]
    i = list(grouped.data[vg.NODES].customdata).index("module:blowup")
    assert "A \u2192 B: now FP32 2" in grouped.data[vg.NODES].hovertext[i]
    # FP32 accumulation changes no dtype: its own category, and not counted as a dtype change
    acc = A.replace(use_fp32_acc=True)
    fig = ex.figure(settings=acc, color_by="changed", compare_to=A)
    assert _colours(fig, vg.NODES)["linear"] == vg._CHANGED_COLORS[vg._RULE_ONLY]
    assert changed_nodes(ex.plan(A), ex.plan(acc)) == []
    assert changed_nodes(ex.plan(A), ex.plan(acc), dtype_only=False) == ["linear", "linear_1"]
    with pytest.raises(OverlayUnavailable, match="compare_to="):
        ex.figure(color_by="changed")


def test_bad_arguments_are_named(ex: Explorer) -> None:
    with pytest.raises(ValueError, match="mode must be one of"):
        build_compare_figure(ex.captured, ex.plan(A), ex.plan(B), mode="overlay")
    with pytest.raises(TypeError, match="needs plan_b"):
        build_compare_figure(ex.captured, ex.plan(A))
    with pytest.raises(TypeError, match="expected a PrecisionPlan"):
        build_compare_figure(ex.captured, ex.plan(A), "fp16")
    with pytest.raises(TypeError, match="PrecisionPlan or Settings"):
        ex.compare(A, "fp16")
    with pytest.raises(ValueError, match="captured=ex.captured"):
        draw(ex.compare(A, B))  # a comparison is drawn on its graph
    with pytest.raises(TypeError, match="nothing draws a Settings"):
        ex.figure_of(A)


def test_the_docstring_examples_run() -> None:
    result = doctest.testmod(compare)
    assert result.attempted and not result.failed
