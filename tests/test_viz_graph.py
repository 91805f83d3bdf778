"""The graph figure: colours, marks, hover, overlays, grouping, in-place recolour."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import pytest
import torch

from mixprec_explorer import Explorer, LayerRecord, Settings
from mixprec_explorer.backends.base import Profile
from mixprec_explorer.dtypes import PALETTE
from mixprec_explorer.examples import layer_stack, reference_autocast_model
from mixprec_explorer.records import EndToEnd
from mixprec_explorer.viz import graph as vg
from mixprec_explorer.viz.graph import COLOR_BY, OverlayUnavailable, build_figure, build_view, recolor

FP16 = torch.float16


def _colour_of(fig: go.Figure, index: int) -> str:
    """The colour a point is drawn in, from its value and the discrete colourscale."""
    marker = fig.data[vg.NODES].marker
    frac = (float(marker.color[index]) - marker.cmin) / (marker.cmax - marker.cmin)
    return [c for p, c in marker.colorscale if p <= frac + 1e-12][-1]


def _point(fig: go.Figure, name: str) -> int:
    return list(fig.data[vg.NODES].customdata).index(name)


@pytest.fixture
def ex() -> Explorer:
    explorer = Explorer(*reference_autocast_model())
    explorer.settings = Settings(enable_autocast=True, autocast_low_precision_type=FP16, use_fp32_acc=True)
    explorer.exclude("linear2")
    return explorer


@pytest.fixture(scope="module")
def stack() -> Explorer:
    return Explorer(*layer_stack(100))


def _profile(measured: dict[str, torch.dtype], latency: dict[str, float]) -> Profile:
    layers = tuple(LayerRecord(name=f"layer_{n}", layer_type="Linear", output_dtypes=(d,), latency_ms=latency.get(n),
                               nodes=(n,)) for n, d in measured.items())
    return Profile(backend="torch", device="cpu", versions={"torch": torch.__version__}, layers=layers,
                   unattributed=(LayerRecord(name="copy", latency_ms=0.01),),
                   end_to_end=EndToEnd(median_ms=1.0, p10_ms=0.9, p90_ms=1.1, runs=5), mode="eager")


def test_figure_is_valid_plotly_with_one_edge_trace_and_one_node_trace(ex: Explorer) -> None:
    fig = build_figure(ex)
    go.Figure(fig.to_dict())  # full validation of every property
    edges, nodes = fig.data[vg.EDGES], fig.data[vg.NODES]
    assert edges.mode == "lines" and nodes.mode == "markers+text"  # small graphs are labelled
    assert "\u2003linear_1 · linear2" in nodes.text
    assert list(nodes.customdata) == list(ex.graph.nodes)
    assert np.isnan(np.asarray(edges.x, dtype=float)).sum() == ex.graph.number_of_edges()
    assert edges.hoverinfo == "skip" and nodes.hoverinfo == "text"
    # inputs are drawn above outputs: top to bottom
    ys = dict(zip(nodes.customdata, nodes.y))
    assert ys["x"] > ys["linear"] > ys["linear_1"] > ys["linear_2"] > ys["output"]
    assert list(ex.figure().data[vg.NODES].customdata) == list(nodes.customdata)


def test_nodes_are_coloured_by_predicted_dtype_with_the_fixed_palette(ex: Explorer) -> None:
    fig = build_figure(ex)
    assert _colour_of(fig, _point(fig, "linear")) == PALETTE["FP16"]
    assert _colour_of(fig, _point(fig, "linear_1")) == PALETTE["FP32"]
    assert _colour_of(fig, _point(fig, "linear_2")) == PALETTE["FP16"]
    legend = {t.name: t.marker.color for t in fig.data[6:] if t.visible}
    assert {"FP32", "FP16", "BF16", "other"} <= set(legend)
    assert legend["BF16"] != legend["FP32"]
    assert fig.data[vg.NODES].marker.showscale is False


def test_excluded_and_fp32_accumulation_nodes_are_marked(ex: Explorer) -> None:
    fig = build_figure(ex)
    nodes = fig.data[vg.NODES]
    pos = {k: (x, y) for k, x, y in zip(nodes.customdata, nodes.x, nodes.y)}
    excluded = set(zip(fig.data[vg.EXCLUDED].x, fig.data[vg.EXCLUDED].y))
    acc = set(zip(fig.data[vg.ACCUMULATE].x, fig.data[vg.ACCUMULATE].y))
    assert excluded == {pos["linear_1"]}
    assert acc == {pos["linear"], pos["linear_2"]}
    assert fig.data[vg.EXCLUDED].marker.symbol != fig.data[vg.ACCUMULATE].marker.symbol
    assert fig.data[vg.EXCLUDED].hoverinfo == "skip"  # clicks go through to the node
    keys = {t.name for t in fig.data if t.visible is not False and t.showlegend is not False and t.x == (None,)}
    assert {"excluded from autocast (kept FP32)", "FP32 accumulation"} <= keys
    assert "module of mixed precisions (ring: 2nd precision)" not in keys  # only when modules are grouped


def test_hover_names_everything_a_user_asks_about(ex: Explorer) -> None:
    fig = build_figure(ex)
    text = fig.data[vg.NODES].hovertext[_point(fig, "linear_1")]
    for part in ("linear_1", "torch.ops.aten.linear.default", "linear2", "torch.nn.modules.linear.Linear",
                 "(1, 10)", "(1, 30)", "dtype: <b>FP32</b>", "accumulate: -", "excluded_node", "^linear2$",
                 "FLOPs: 630"):
        assert part in text, part
    fp16 = fig.data[vg.NODES].hovertext[_point(fig, "linear")]
    assert "accumulate: FP32" in fp16 and "low_precision" in fp16
    assert "graph input" in fig.data[vg.NODES].hovertext[_point(fig, "x")]


def test_settings_argument_plans_without_changing_the_explorer(ex: Explorer) -> None:
    before = ex.settings
    fig = build_figure(ex, settings=Settings())
    assert ex.settings == before
    assert _colour_of(fig, _point(fig, "linear")) == PALETTE["FP32"]
    assert len(fig.data[vg.EXCLUDED].x) == 0


@pytest.mark.parametrize("color_by", ["reason", "module"])
def test_other_discrete_colourings(ex: Explorer, color_by: str) -> None:
    fig = build_figure(ex, color_by=color_by)
    go.Figure(fig.to_dict())
    legend = [t.name for t in fig.data[6:] if t.visible]
    if color_by == "reason":
        assert {"low_precision", "excluded_node", "input/output"} <= set(legend)
        assert _colour_of(fig, _point(fig, "linear")) != _colour_of(fig, _point(fig, "linear_1"))
    else:
        assert {"linear1", "linear2", "linear3"} <= set(legend)
    assert color_by in fig.layout.title.text


def test_unknown_colouring_and_missing_measurements_say_what_to_do(ex: Explorer) -> None:
    with pytest.raises(ValueError, match="color_by must be one of"):
        build_figure(ex, color_by="speed")
    for name in ("latency", "measured_dtype", "mismatch"):
        with pytest.raises(OverlayUnavailable, match="needs a profile"):
            build_figure(ex, color_by=name)
    with pytest.raises(OverlayUnavailable, match="accuracy"):
        build_figure(ex, color_by="error")
    assert set(COLOR_BY) == {"precision", "reason", "module", "latency", "measured_dtype", "error", "mismatch",
                             "sensitivity", "changed"}


def test_profile_overlays_latency_measured_dtype_and_mismatch(ex: Explorer) -> None:
    # linear_2 is predicted FP16 but "measured" FP32: a mismatch; linear_1 (FP32) has no timing
    profile = _profile({"linear": FP16, "linear_1": torch.float32, "linear_2": torch.float32},
                       {"linear": 0.5, "linear_2": 0.2})
    fig = build_figure(ex, color_by="latency", profile=profile)
    go.Figure(fig.to_dict())
    marker = fig.data[vg.NODES].marker
    assert marker.showscale is True and "latency" in marker.colorbar.title.text
    values = dict(zip(fig.data[vg.NODES].customdata, marker.color))
    assert values["linear"] > values["linear_2"] > values["linear_1"]  # missing sits in the grey band below
    assert "n/a" in marker.colorbar.ticktext
    hover = fig.data[vg.NODES].hovertext[_point(fig, "linear_2")]
    assert "measured: FP32 · 0.2 ms" in hover and "differs from predicted FP16" in hover

    recolor(fig, ex, color_by="mismatch", profile=profile)
    assert _colour_of(fig, _point(fig, "linear_2")) == vg._MISMATCH_COLORS["mismatch"]
    assert _colour_of(fig, _point(fig, "linear")) == vg._MISMATCH_COLORS["match"]
    assert _colour_of(fig, _point(fig, "x")) == vg._MISMATCH_COLORS["not measured"]
    recolor(fig, ex, color_by="measured_dtype", profile=profile)
    assert _colour_of(fig, _point(fig, "linear_2")) == PALETTE["FP32"]
    assert _colour_of(fig, _point(fig, "linear")) == PALETTE["FP16"]

    ex.extensions["profile"] = profile  # where ex.profile(...) leaves it
    try:
        build_figure(ex, color_by="latency")
    finally:
        del ex.extensions["profile"]


@pytest.mark.parametrize("accuracy", [
    {"linear": 1e-3, "linear_2": 1e-1},
    type("Result", (), {"node_errors": lambda self: {"linear": 1e-3, "linear_2": 1e-1}})(),
])
def test_error_overlay_uses_a_log_scale(ex: Explorer, accuracy: object) -> None:
    fig = build_figure(ex, color_by="error", accuracy=accuracy)
    marker = fig.data[vg.NODES].marker
    values = dict(zip(fig.data[vg.NODES].customdata, marker.color))
    assert values["linear"] == pytest.approx(-3) and values["linear_2"] == pytest.approx(-1)
    assert "1e-3" in marker.colorbar.ticktext or "1e-2" in marker.colorbar.ticktext
    assert "relative error: 0.1" in fig.data[vg.NODES].hovertext[_point(fig, "linear_2")]


def test_recolor_updates_in_place_without_resending_positions(ex: Explorer) -> None:
    fig = build_figure(ex)
    x_before = fig.data[vg.NODES].x
    i = _point(fig, "linear_1")
    assert _colour_of(fig, i) == PALETTE["FP32"]
    ex.include("linear2")
    recolor(fig, ex)
    assert _colour_of(fig, i) == PALETTE["FP16"]
    assert fig.data[vg.NODES].x is x_before
    assert len(fig.data[vg.EXCLUDED].x) == 0
    assert "low_precision" in fig.data[vg.NODES].hovertext[i]


def test_recolor_works_on_a_figure_widget(ex: Explorer) -> None:
    pytest.importorskip("anywidget", reason="plotly's FigureWidget needs anywidget")
    fw = go.FigureWidget(build_figure(ex))
    ex.include("linear2")
    recolor(fw, ex, color_by="reason")
    assert fw.layout.meta["mixprec"]["color_by"] == "reason"
    recolor(fw, ex)  # keeps the last colouring
    assert fw.layout.meta["mixprec"]["color_by"] == "reason"


def test_recolor_refuses_a_foreign_figure(ex: Explorer, stack: Explorer) -> None:
    with pytest.raises(ValueError, match="not made by"):
        recolor(go.Figure(), ex)
    with pytest.raises(ValueError, match="does not match"):
        recolor(build_figure(stack), ex)


def test_modules_collapse_expand_and_show_their_precision_mix(stack: Explorer) -> None:
    stack.settings = Settings(enable_autocast=True, autocast_low_precision_type=FP16)
    stack.exclude("blocks.3.1")  # one of blocks.3's three nodes stays FP32
    full = build_figure(stack)
    grouped = build_figure(stack, group_by_module=2)
    go.Figure(grouped.to_dict())
    keys = list(grouped.data[vg.NODES].customdata)
    assert len(keys) < len(full.data[vg.NODES].customdata)
    assert "module:blocks.3" in keys and "layer_norm_3" not in keys
    i = keys.index("module:blocks.3")
    assert grouped.data[vg.NODES].marker.symbol[i] == "hexagon"
    hover = grouped.data[vg.NODES].hovertext[i]
    assert "collapsed: 3 nodes" in hover and "FP16 2" in hover and "FP32 1" in hover
    assert _colour_of(grouped, i) == PALETTE["FP16"]  # the dominant precision
    mixed = grouped.data[vg.MIXED]
    assert (grouped.data[vg.NODES].x[i], grouped.data[vg.NODES].y[i]) in set(zip(mixed.x, mixed.y))
    assert list(mixed.marker.color) == [PALETTE["FP32"]]  # the ring shows the second precision
    assert len(grouped.data[vg.EXCLUDED].x) == 1

    opened = build_figure(stack, group_by_module=2, expanded={"blocks.3"})
    keys = list(opened.data[vg.NODES].customdata)
    assert "module:blocks.3" not in keys and "layer_norm_3" in keys and "module:blocks.4" in keys
    assert build_view(stack, 2, {"blocks.3"}) is build_view(stack, 2, ["blocks.3"])  # cached
    with pytest.raises(ValueError, match="group_by_module"):
        build_figure(stack, group_by_module=0)


def test_large_graphs_switch_to_webgl(stack: Explorer, monkeypatch: pytest.MonkeyPatch) -> None:
    assert build_figure(stack).data[vg.NODES].type == "scatter"
    monkeypatch.setattr(vg, "GL_THRESHOLD", 50)
    monkeypatch.setattr(vg, "LABEL_LIMIT", 50)
    vg.clear_caches()
    try:
        fig = build_figure(stack)
    finally:
        vg.clear_caches()
    assert fig.data[vg.NODES].mode == "markers"  # no labels past LABEL_LIMIT points
    assert fig.data[vg.NODES].type == "scattergl" and fig.data[vg.EDGES].type == "scattergl"
    go.Figure(fig.to_dict())
    stack.settings = Settings(enable_autocast=True, autocast_low_precision_type=FP16)
    recolor(fig, stack)
    assert fig.layout.yaxis.range is not None  # a tall graph opens at its top


def test_figures_never_show_themselves(ex: Explorer, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        raise AssertionError("a figure function called show()")

    monkeypatch.setattr(go.Figure, "show", boom)
    build_figure(ex)
    recolor(build_figure(ex), ex)
