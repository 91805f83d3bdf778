"""Sensitivity on the graph (colour, hover, colour bar), as a bar chart, and in the widget's colour-by list."""

from __future__ import annotations

import doctest
import math

import numpy as np
import plotly.graph_objects as go
import pytest
import torch

from mixprec_explorer import Explorer, Settings
from mixprec_explorer.sensitivity import Sensitivity
from mixprec_explorer.viz import charts
from mixprec_explorer.viz import graph as vg
from mixprec_explorer.viz.charts import build_sensitivity_chart
from mixprec_explorer.viz.graph import OverlayUnavailable

from test_sensitivity import Fragile

FP16 = torch.float16
TOP, BOTTOM = vg._SEQUENTIAL[-1], vg._SEQUENTIAL[0]


@pytest.fixture(scope="module")
def captured() -> Explorer:
    torch.manual_seed(0)
    return Explorer(Fragile().eval(), (torch.rand(3, 4),))


@pytest.fixture
def ex(captured: Explorer) -> Explorer:
    """A fresh explorer on the captured Fragile model (fc -> exp, which overflows FP16 -> out), all FP16."""
    return Explorer(captured.exported_program, captured.example_inputs,
                    settings=Settings(enable_autocast=True, autocast_low_precision_type=FP16))


def _colour(fig: go.Figure, name: str) -> str:
    """The colour a continuous colouring draws node ``name`` in: the nearest colourscale stop below its value."""
    marker = fig.data[vg.NODES].marker
    i = list(fig.data[vg.NODES].customdata).index(name)
    frac = (float(marker.color[i]) - marker.cmin) / (marker.cmax - marker.cmin)
    return [c for p, c in marker.colorscale if p <= frac + 1e-9][-1]


def _value(fig: go.Figure, name: str) -> float:
    return float(dict(zip(fig.data[vg.NODES].customdata, fig.data[vg.NODES].marker.color))[name])


def _made_up(**node_low_error: float) -> Sensitivity:
    nodes = dict(node_low_error)
    return Sensitivity("rel_l2", FP16, math.inf, nodes, dict.fromkeys(nodes, 0.0), {"fc": nodes.get("linear", 0.0)},
                       {"fc": 0.0}, 0, 0)


def test_without_a_result_the_error_names_the_call_to_make(ex: Explorer) -> None:
    with pytest.raises(OverlayUnavailable, match=r"ex\.sensitivity\(inputs\)"):
        ex.figure(color_by="sensitivity")
    assert {"sensitivity", "changed"} <= set(vg.COLOR_BY)


def test_colours_by_the_error_with_only_that_node_low(ex: Explorer) -> None:
    s = ex.sensitivity(progress=False)
    assert math.isinf(s.node_low_error["exp"]) and s.node_low_error["linear"] > s.node_low_error["linear_1"] > 0
    fig = ex.figure(color_by="sensitivity")  # from ex.last_sensitivity
    go.Figure(fig.to_dict())
    marker = fig.data[vg.NODES].marker
    assert marker.showscale is True and "only this node FP16" in marker.colorbar.title.text
    # the overflowing nodes sit at the top of the scale, labelled inf; not-classified nodes in the grey n/a band
    assert _colour(fig, "exp") == _colour(fig, "div") == TOP
    assert _value(fig, "exp") == pytest.approx(marker.cmax)
    assert _value(fig, "linear") == pytest.approx(math.log10(s.node_low_error["linear"]))
    assert _value(fig, "linear") > _value(fig, "linear_1")
    assert _colour(fig, "x") == _colour(fig, "output") == vg._LIGHT
    assert {"inf", "n/a"} <= set(marker.colorbar.ticktext)
    assert "coloured by sensitivity" in fig.layout.title.text


def test_hover_shows_the_node_and_module_figures(ex: Explorer) -> None:
    s = ex.sensitivity(progress=False)
    fig = ex.figure()  # any colouring: the figures are in the hover once a result exists
    hover = dict(zip(fig.data[vg.NODES].customdata, fig.data[vg.NODES].hovertext))
    assert "alone in FP16: <b>inf</b>" in hover["exp"] and "module blowup: alone in FP16: inf" in hover["exp"]
    assert f"alone in FP16: <b>{s.node_low_error['linear']:.3g}</b>" in hover["linear"]
    assert "removes inf" in hover["exp"]  # keeping module blowup in FP32 makes the output finite again
    assert "sensitivity" not in hover["x"]
    grouped = ex.figure(color_by="sensitivity", group_by_module=1)
    i = list(grouped.data[vg.NODES].customdata).index("module:blowup")
    assert "most sensitive node, alone in low precision: inf" in grouped.data[vg.NODES].hovertext[i]
    assert _colour(grouped, "module:blowup") == TOP


def test_an_explicit_result_wins_and_zero_error_gets_its_own_tick(ex: Explorer) -> None:
    made = _made_up(linear=0.0, exp=math.inf, div=1e-2, linear_1=1e-4)
    fig = ex.figure(color_by="sensitivity", sensitivity=made)
    ticks = dict(zip(fig.data[vg.NODES].marker.colorbar.ticktext, fig.data[vg.NODES].marker.colorbar.tickvals))
    assert {"0", "inf", "1e-4", "1e-2"} <= set(ticks)
    assert _value(fig, "linear") == pytest.approx(ticks["0"])
    assert _value(fig, "linear") < _value(fig, "linear_1")
    assert _colour(fig, "linear") == BOTTOM  # no error at all: the bottom of the scale, not "n/a"
    assert _colour(fig, "exp") == TOP
    # recolour in place with another result: the values follow it
    ex.recolor(fig, color_by="sensitivity", sensitivity=_made_up(linear=1.0, exp=1e-3, div=1e-3, linear_1=1e-3))
    assert _colour(fig, "linear") == TOP and _colour(fig, "exp") == BOTTOM


def test_chart_sorts_by_error_removed_and_draws_inf_and_zero(ex: Explorer) -> None:
    s = ex.sensitivity(progress=False)
    fig = build_sensitivity_chart(s)
    go.Figure(fig.to_dict())
    kept, alone = fig.data
    assert list(kept.y) == [m for m, _ in s.ranking("module")] == ["blowup", "fc", "out"]
    assert fig.layout.xaxis.type == "log" and fig.layout.yaxis.autorange == "reversed"
    assert list(kept.text) == ["inf", "0", "0"] and alone.text[0] == "inf"
    lengths = np.asarray(list(kept.x) + list(alone.x), dtype=float)
    assert np.all(np.isfinite(lengths)) and np.all(lengths > 0)  # drawable on a log axis
    assert kept.x[0] == max(lengths) and kept.x[1] == min(lengths)  # inf past the rest, 0 at the floor
    assert kept.marker.color == "#0072B2" and alone.marker.color == "#E69F00"  # FP32 blue, FP16 orange
    assert "FP16" in alone.name and "FP32" in kept.name
    assert ex.figure_of(s).to_json() == fig.to_json()  # the facade draws the record the same way
    by_node = build_sensitivity_chart(s, by="node", top=2)
    assert len(by_node.data[0].y) == 2 and "top 2 of 4" in by_node.layout.title.text
    with pytest.raises(ValueError, match="by must be"):
        build_sensitivity_chart(s, by="layer")


def test_the_docstring_examples_run() -> None:
    result = doctest.testmod(charts)
    assert result.attempted and not result.failed


def test_widget_offers_sensitivity_once_it_exists_and_shows_it(ex: Explorer) -> None:
    pytest.importorskip("anywidget", reason="plotly's FigureWidget needs anywidget (test extra)")
    from mixprec_explorer.widget.app import WidgetApp

    app = WidgetApp(ex)
    options = dict(app.color_by_choice.options)
    assert "sensitivity (needs sensitivity)" in options and "changed" not in options.values()
    app.color_by_choice.value = "sensitivity"  # nothing to show yet: said, and the dropdown goes back
    assert "ex.sensitivity(inputs)" in app.errors[-1] and app.color_by_choice.value == "precision"

    ex.sensitivity(progress=False)
    app.refresh()  # any redraw (a click, a setting) brings the new option
    assert dict(app.color_by_choice.options)["sensitivity"] == "sensitivity"
    app.color_by_choice.value = "sensitivity"
    assert app.errors[1:] == [] and app.node_trace.marker.showscale
    colours = app.point_colors()
    assert colours[app.point_index("exp")] == TOP and colours[app.point_index("x")] == vg._LIGHT
    app.click_point(app.point_index("exp"))  # a click still toggles, and the colouring stays
    assert ex.settings.autocast_excluded_nodes == {"^blowup$"} and app.color_by == "sensitivity"
    assert "sensitivity (rel_l2): alone in FP16 inf" in app.details.value
    assert "alone in FP16: <b>inf</b>" in app.node_trace.hovertext[app.point_index("exp")]
