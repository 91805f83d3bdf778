"""The graph figure: colours, marks, hover, overlays, grouping, in-place recolour."""

from __future__ import annotations

import itertools
import re
import warnings

import numpy as np
import plotly.graph_objects as go
import pytest
import torch

from mixprec_explorer import Explorer, LayerRecord, Settings, SettingsWarning
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
    fig = ex.figure()
    go.Figure(fig.to_dict())  # full validation of every property
    edges, nodes = fig.data[vg.EDGES], fig.data[vg.NODES]
    assert edges.mode == "lines" and nodes.mode == "markers"
    labels = fig.data[vg.LABELS]  # one label per point, in point order, beside it
    assert labels.mode == "text" and labels.hoverinfo == "skip"
    assert list(labels.text) == ["x", "linear · linear1", "linear_1 · linear2", "linear_2 · linear3", "output"]
    assert all(lx > x for lx, x in zip(labels.x, nodes.x))
    assert list(nodes.customdata) == list(ex.graph.nodes)
    assert np.isnan(np.asarray(edges.x, dtype=float)).sum() == ex.graph.number_of_edges()
    assert edges.hoverinfo == "skip" and nodes.hoverinfo == "text"
    # inputs are drawn above outputs: top to bottom
    ys = dict(zip(nodes.customdata, nodes.y))
    assert ys["x"] > ys["linear"] > ys["linear_1"] > ys["linear_2"] > ys["output"]
    assert list(ex.figure().data[vg.NODES].customdata) == list(nodes.customdata)


def test_nodes_are_coloured_by_predicted_dtype_with_the_fixed_palette(ex: Explorer) -> None:
    fig = ex.figure()
    assert _colour_of(fig, _point(fig, "linear")) == PALETTE["FP16"]
    assert _colour_of(fig, _point(fig, "linear_1")) == PALETTE["FP32"]
    assert _colour_of(fig, _point(fig, "linear_2")) == PALETTE["FP16"]
    legend = {t.name: t.marker.color for t in fig.data[vg.FIRST_LEGEND_TRACE:] if t.visible}
    assert {"FP32", "FP16", "BF16", "other"} <= set(legend)
    assert legend["BF16"] != legend["FP32"]
    assert fig.data[vg.NODES].marker.showscale is False


def test_excluded_and_fp32_accumulation_nodes_are_marked(ex: Explorer) -> None:
    fig = ex.figure()
    nodes = fig.data[vg.NODES]
    pos = {k: (x, y) for k, x, y in zip(nodes.customdata, nodes.x, nodes.y)}
    excluded = set(zip(fig.data[vg.EXCLUDED].x, fig.data[vg.EXCLUDED].y))
    acc = set(zip(fig.data[vg.ACCUMULATE].x, fig.data[vg.ACCUMULATE].y))
    assert excluded == {pos["linear_1"]}
    assert acc == {pos["linear"], pos["linear_2"]}
    assert fig.data[vg.EXCLUDED].marker.symbol != fig.data[vg.ACCUMULATE].marker.symbol
    assert fig.data[vg.EXCLUDED].hoverinfo == "skip"  # clicks go through to the node
    keys = {t.name for t in fig.data if t.visible is not False and t.showlegend is not False and t.x == (None,)}
    assert {"excluded (kept FP32)", "FP32 accumulation"} <= keys
    assert "mixed module (ring: 2nd)" not in keys  # only when modules are grouped


def test_hover_names_everything_a_user_asks_about(ex: Explorer) -> None:
    fig = ex.figure()
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
    fig = ex.figure(settings=Settings())
    assert ex.settings == before
    assert _colour_of(fig, _point(fig, "linear")) == PALETTE["FP32"]
    assert len(fig.data[vg.EXCLUDED].x) == 0


@pytest.mark.parametrize("color_by", ["reason", "module"])
def test_other_discrete_colourings(ex: Explorer, color_by: str) -> None:
    fig = ex.figure(color_by=color_by)
    go.Figure(fig.to_dict())
    legend = [t.name for t in fig.data[vg.FIRST_LEGEND_TRACE:] if t.visible]
    if color_by == "reason":
        assert {"low_precision", "excluded_node", "input/output"} <= set(legend)
        assert _colour_of(fig, _point(fig, "linear")) != _colour_of(fig, _point(fig, "linear_1"))
    else:
        assert {"linear1", "linear2", "linear3"} <= set(legend)
    assert color_by in fig.layout.title.text


def test_unknown_colouring_and_missing_measurements_say_what_to_do(ex: Explorer) -> None:
    with pytest.raises(ValueError, match="color_by must be one of"):
        ex.figure(color_by="speed")
    for name in ("latency", "measured_dtype", "mismatch"):
        with pytest.raises(OverlayUnavailable, match="needs a profile"):
            ex.figure(color_by=name)
    with pytest.raises(OverlayUnavailable, match="accuracy"):
        ex.figure(color_by="error")
    assert set(COLOR_BY) == {"precision", "reason", "module", "latency", "measured_dtype", "error", "mismatch",
                             "sensitivity", "changed", "fp32_cost", "range"}
    with pytest.raises(OverlayUnavailable, match="Calibrate what-if"):
        ex.figure(color_by="fp32_cost")


def test_profile_overlays_latency_measured_dtype_and_mismatch(ex: Explorer) -> None:
    # linear_2 is predicted FP16 but "measured" FP32: a mismatch; linear_1 (FP32) has no timing
    profile = _profile({"linear": FP16, "linear_1": torch.float32, "linear_2": torch.float32},
                       {"linear": 0.5, "linear_2": 0.2})
    fig = ex.figure(color_by="latency", profile=profile)
    go.Figure(fig.to_dict())
    marker = fig.data[vg.NODES].marker
    assert marker.showscale is True and "latency" in marker.colorbar.title.text
    values = dict(zip(fig.data[vg.NODES].customdata, marker.color))
    assert values["linear"] > values["linear_2"] > values["linear_1"]  # missing sits in the grey band below
    assert "n/a" in marker.colorbar.ticktext
    hover = fig.data[vg.NODES].hovertext[_point(fig, "linear_2")]
    assert "measured: FP32 · 0.2 ms" in hover and "differs from predicted FP16" in hover

    ex.recolor(fig, color_by="mismatch", profile=profile)
    assert _colour_of(fig, _point(fig, "linear_2")) == vg._MISMATCH_COLORS["mismatch"]
    assert _colour_of(fig, _point(fig, "linear")) == vg._MISMATCH_COLORS["match"]
    assert _colour_of(fig, _point(fig, "x")) == vg._MISMATCH_COLORS["not measured"]
    ex.recolor(fig, color_by="measured_dtype", profile=profile)
    assert _colour_of(fig, _point(fig, "linear_2")) == PALETTE["FP32"]
    assert _colour_of(fig, _point(fig, "linear")) == PALETTE["FP16"]

    ex.last_profile = profile  # where ex.profile(...) leaves it
    try:
        ex.figure(color_by="latency")
    finally:
        ex.last_profile = None


@pytest.mark.parametrize("accuracy", [
    {"linear": 1e-3, "linear_2": 1e-1},
    type("Result", (), {"node_errors": lambda self: {"linear": 1e-3, "linear_2": 1e-1}})(),
])
def test_error_overlay_uses_a_log_scale(ex: Explorer, accuracy: object) -> None:
    fig = ex.figure(color_by="error", accuracy=accuracy)
    marker = fig.data[vg.NODES].marker
    values = dict(zip(fig.data[vg.NODES].customdata, marker.color))
    assert values["linear"] == pytest.approx(-3) and values["linear_2"] == pytest.approx(-1)
    assert "1e-3" in marker.colorbar.ticktext or "1e-2" in marker.colorbar.ticktext
    assert "relative error: 0.1" in fig.data[vg.NODES].hovertext[_point(fig, "linear_2")]


def test_viz_draws_the_records_it_is_given_and_reads_nothing_else(ex: Explorer) -> None:
    """The figure functions take the captured graph, the plan and the results; only the facade fills in the
    explorer's last results."""
    direct = build_figure(ex.captured, ex.plan(), group_by_module=None)
    assert direct.to_json() == ex.figure(group_by_module=None).to_json()
    profile = _profile({"linear": FP16}, {"linear": 0.5})
    ex.last_profile = profile
    try:
        with pytest.raises(OverlayUnavailable, match="needs a profile"):
            build_figure(ex.captured, ex.plan(), "latency")  # viz does not fish in ex.last_profile
        fig = ex.figure(color_by="latency")  # the facade passes it down
        build_figure(ex.captured, ex.plan(), "latency", profile=profile)
    finally:
        ex.last_profile = None
    recolor(fig, ex.captured, ex.plan(Settings()), "precision")
    assert _colour_of(fig, _point(fig, "linear")) == PALETTE["FP32"]
    with pytest.raises(TypeError, match="must be a PrecisionPlan"):
        build_figure(ex.captured, ex.plan(), "changed", compare_to=Settings())  # the facade plans Settings


def test_recolor_updates_in_place_without_resending_positions(ex: Explorer) -> None:
    fig = ex.figure()
    x_before = fig.data[vg.NODES].x
    i = _point(fig, "linear_1")
    assert _colour_of(fig, i) == PALETTE["FP32"]
    ex.include("linear2")
    ex.recolor(fig)
    assert _colour_of(fig, i) == PALETTE["FP16"]
    assert fig.data[vg.NODES].x is x_before
    assert len(fig.data[vg.EXCLUDED].x) == 0
    assert "low_precision" in fig.data[vg.NODES].hovertext[i]


def test_recolor_works_on_a_figure_widget(ex: Explorer) -> None:
    pytest.importorskip("anywidget", reason="plotly's FigureWidget needs anywidget")
    fw = go.FigureWidget(ex.figure())
    ex.include("linear2")
    ex.recolor(fw, color_by="reason")
    assert fw.layout.meta["mixprec"]["color_by"] == "reason"
    ex.recolor(fw)  # keeps the last colouring
    assert fw.layout.meta["mixprec"]["color_by"] == "reason"


def test_recolor_refuses_a_foreign_figure(ex: Explorer, stack: Explorer) -> None:
    with pytest.raises(ValueError, match="not made by"):
        ex.recolor(go.Figure())
    with pytest.raises(ValueError, match="does not match"):
        ex.recolor(stack.figure())


def test_modules_collapse_expand_and_show_their_precision_mix(stack: Explorer) -> None:
    stack.settings = Settings(enable_autocast=True, autocast_low_precision_type=FP16)
    stack.exclude("blocks.3.1")  # one of blocks.3's three nodes stays FP32
    full = stack.figure(group_by_module=None)
    grouped = stack.figure(group_by_module=2)
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
    # the group's bar under its label: two thirds FP16, one third FP32, in the palette's colours
    bars = grouped.data[vg.MIX]
    at = [j for j, y in enumerate(bars.y) if abs(y - grouped.data[vg.NODES].y[i]) < 20]
    share = {bars.marker.color[j]: bars.x[j] / vg.BAR_WIDTH for j in at}
    assert share == pytest.approx({PALETTE["FP16"]: 2 / 3, PALETTE["FP32"]: 1 / 3})
    assert grouped.data[vg.LABELS].text[i] == "blocks.3 · 3 nodes"
    stack.include("blocks.3.1")
    stack.recolor(grouped)  # the bar follows the plan
    assert {grouped.data[vg.MIX].marker.color[j] for j in at} == {PALETTE["FP16"]}

    opened = stack.figure(group_by_module=2, expanded={"blocks.3"})
    keys = list(opened.data[vg.NODES].customdata)
    assert "module:blocks.3" not in keys and "layer_norm_3" in keys and "module:blocks.4" in keys
    assert build_view(stack.captured, 2, {"blocks.3"}) is build_view(stack.captured, 2, ["blocks.3"])  # cached
    with pytest.raises(ValueError, match="group_by_module"):
        stack.figure(group_by_module=0)


def test_large_graphs_switch_to_webgl(stack: Explorer, monkeypatch: pytest.MonkeyPatch) -> None:
    assert stack.figure(group_by_module=None).data[vg.NODES].type == "scatter"
    monkeypatch.setattr(vg, "GL_THRESHOLD", 50)
    monkeypatch.setattr(vg, "LABEL_LIMIT", 50)
    vg.clear_caches()
    try:
        fig = stack.figure(group_by_module=None)
    finally:
        vg.clear_caches()
    assert not fig.data[vg.LABELS].text  # no labels past LABEL_LIMIT points
    assert fig.data[vg.NODES].type == "scattergl" and fig.data[vg.EDGES].type == "scattergl"
    go.Figure(fig.to_dict())
    stack.settings = Settings(enable_autocast=True, autocast_low_precision_type=FP16)
    stack.recolor(fig)
    lo, hi = fig.layout.yaxis.range  # a tall graph opens at its top, at one pixel per layout unit
    assert lo <= max(fig.data[vg.NODES].y) <= hi and min(fig.data[vg.NODES].y) < lo


def test_figures_never_show_themselves(ex: Explorer, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        raise AssertionError("a figure function called show()")

    monkeypatch.setattr(go.Figure, "show", boom)
    ex.figure()
    ex.recolor(ex.figure())


# -- legibility, measured on the figure itself -------------------------------------------------------------------
Box = tuple[float, float, float, float]  # left, top, right, bottom in screen px (y down)


def _screen(fig: go.Figure) -> tuple[Box, object, object]:
    """The plot area in figure pixels and the maps from data to pixels, from the figure's size, margins, ranges."""
    lay = fig.layout
    m = lay.margin
    plot = (m.l, m.t, lay.width - m.r, lay.height - m.b)
    (x0, x1), (y0, y1) = lay.xaxis.range, lay.yaxis.range
    sx, sy = (plot[2] - plot[0]) / (x1 - x0), (plot[3] - plot[1]) / (y1 - y0)
    return plot, (lambda x: plot[0] + (x - x0) * sx), (lambda y: plot[1] + (y1 - y) * sy)


def _drawn_boxes(fig: go.Figure) -> tuple[Box, list[tuple[int, str, Box]]]:
    """(plot area, [(point, what, box)]): every point's marker and label, and every group's precision bar, in px.

    A label is ``len(text) x 0.6 x font size`` wide and 1.2 font sizes tall, starting at its x and centred on
    its y (textposition "middle right"); a marker is its size square; a bar is its length by its width.
    """
    plot, px, py = _screen(fig)
    nodes, labels, bars = fig.data[vg.NODES], fig.data[vg.LABELS], fig.data[vg.MIX]
    assert labels.textposition == "middle right"
    font = labels.textfont.size
    out: list[tuple[int, str, Box]] = []
    for i, (x, y, size) in enumerate(zip(nodes.x, nodes.y, nodes.marker.size)):
        out.append((i, "marker", (px(x) - size / 2, py(y) - size / 2, px(x) + size / 2, py(y) + size / 2)))
    for i, (x, y, text) in enumerate(zip(labels.x, labels.y, labels.text)):
        out.append((i, "label", (px(x), py(y) - 0.6 * font, px(x) + 0.6 * font * len(text), py(y) + 0.6 * font)))
    sy = py(0.0) - py(1.0)
    for base, length, y in zip(bars.base, bars.x, bars.y):  # segments of one bar touch: merge them by row
        out.append((-1, "bar", (px(base), py(y) - bars.width * sy / 2, px(base + length), py(y) + bars.width * sy / 2)))
    return plot, out


def _overlaps(boxes: list[tuple[int, str, Box]]) -> list[tuple[str, str]]:
    """Pairs of boxes that overlap by more than half a pixel, except a marker with its own label's row and
    adjoining segments of one bar."""
    found = []
    for (i, a_kind, a), (j, b_kind, b) in itertools.combinations(boxes, 2):
        if a_kind == b_kind == "bar" and abs(a[1] - b[1]) < 0.01:
            continue
        if a[0] < b[2] - 0.5 and b[0] < a[2] - 0.5 and a[1] < b[3] - 0.5 and b[1] < a[3] - 0.5:
            found.append((f"{a_kind} {i}", f"{b_kind} {j}"))
    return found


def _assert_legible(fig: go.Figure) -> None:
    """Every point labelled, no two things drawn over each other, all of it in the plot area, and the legend,
    where it stands beside the drawing, clear of it."""
    plot, boxes = _drawn_boxes(fig)
    n = len(fig.data[vg.NODES].x)
    assert len(fig.data[vg.LABELS].text) == n and all(fig.data[vg.LABELS].text)
    assert _overlaps(boxes) == []
    outside = [(i, kind) for i, kind, b in boxes
               if b[0] < plot[0] - 0.5 or b[2] > plot[2] + 0.5 or b[1] < plot[1] - 0.5 or b[3] > plot[3] + 0.5]
    assert outside == [], "the first view shows the whole model"
    title = fig.layout.title
    if title.pad.t < 26:  # its first line is on the row of plotly's toolbar (264 px at the right, on hover)
        first = title.text.split("<br>")[0]
        assert title.pad.l + 0.6 * title.font.size * len(first) <= fig.layout.width - 264
    legend = fig.layout.legend
    if legend.orientation == "v":  # beside the drawing, inside the plot area
        left = plot[0] + legend.x * (plot[2] - plot[0])
        assert max(b[2] for _, _, b in boxes) <= left
    else:  # above the plot area, below the title
        assert legend.y == 1.0 and legend.yanchor == "bottom"


@pytest.fixture(scope="module")
def resnet() -> Explorer:
    from mixprec_explorer.examples import resnet50

    ex = Explorer(*resnet50())
    ex.settings = Settings(enable_autocast=True, autocast_low_precision_type=FP16)
    ex.exclude("layer3.1")
    return ex


@pytest.fixture(scope="module")
def encoder() -> Explorer:
    from mixprec_explorer.examples import transformer_encoder

    ex = Explorer(*transformer_encoder())
    with warnings.catch_warnings():  # FP16 embedding indices: a warning about compiling, not about drawing
        warnings.simplefilter("ignore", SettingsWarning)
        ex.settings = Settings(enable_autocast=True, autocast_low_precision_type=FP16,
                               autocast_excluded_ops={"torch.ops.aten.layer_norm.default"})
    return ex


def test_resnet50_opens_as_its_stem_layers_and_head_every_point_labelled_nothing_overlapping(resnet: Explorer
                                                                                            ) -> None:
    fig = resnet.figure()
    keys = list(fig.data[vg.NODES].customdata)
    assert keys == ["x", "conv2d", "batch_norm", "relu_", "max_pool2d", "module:layer1", "module:layer2",
                    "module:layer3", "module:layer4", "adaptive_avg_pool2d", "flatten", "linear", "output"]
    assert "layer3 · 62 nodes" in fig.data[vg.LABELS].text
    _assert_legible(fig)
    # the drawing fills the plot: nothing is wider or taller than it needs to be
    plot, boxes = _drawn_boxes(fig)
    drawn = (min(b[0] for *_, b in boxes), min(b[1] for *_, b in boxes),
             max(b[2] for *_, b in boxes), max(b[3] for *_, b in boxes))
    legend_w = (1 - fig.layout.legend.x) * (plot[2] - plot[0]) if fig.layout.legend.orientation == "v" else 0
    assert (plot[2] - plot[0]) - legend_w - (drawn[2] - drawn[0]) < 60
    assert (plot[3] - plot[1]) - (drawn[3] - drawn[1]) < 60
    assert fig.layout.height <= vg.MAX_HEIGHT and fig.layout.width <= vg.MAX_WIDTH


def test_encoder_opens_as_its_layers_every_point_labelled_nothing_overlapping(encoder: Explorer) -> None:
    fig = encoder.figure()
    keys = list(fig.data[vg.NODES].customdata)
    assert [k for k in keys if k.startswith("module:")] == [f"module:layers.{i}" for i in range(12)]
    assert {"embedding · embed", "embedding_1 · pos"} <= set(fig.data[vg.LABELS].text)
    _assert_legible(fig)
    # each layer's bar shows its mix: the two layer norms FP32, the rest FP16
    bars = fig.data[vg.MIX]
    fp32 = sum(length for length, colour in zip(bars.x, bars.marker.color) if colour == PALETTE["FP32"])
    assert fp32 == pytest.approx(12 * vg.BAR_WIDTH * 2 / 35)


@pytest.mark.parametrize(("which", "expanded"), [
    ("resnet", {"layer1"}), ("resnet", {"layer1", "layer1.0", "layer3"}),
    ("encoder", {"layers.0"}), ("encoder", {"layers.0", "layers.0.self_attn"}),
])
def test_expanded_groups_stay_legible(which: str, expanded: set[str], request: pytest.FixtureRequest) -> None:
    ex = request.getfixturevalue(which)
    fig = ex.figure(expanded=expanded)
    keys = set(fig.data[vg.NODES].customdata)
    assert not {f"module:{path}" for path in expanded} & keys  # opened
    assert fig.layout.meta["mixprec"]["expanded"] == sorted(expanded | ({"layers"} if which == "encoder" else set()))
    plot, boxes = _drawn_boxes(fig)
    assert _overlaps(boxes) == []
    assert len(fig.data[vg.LABELS].text) == len(keys) and all(fig.data[vg.LABELS].text)


def test_the_attention_fan_out_is_spaced_by_its_labels(encoder: Explorer) -> None:
    # ungrouped: the twelve layers' attention fan-outs, embedding and embedding_1 side by side
    fig = encoder.figure(group_by_module=None)
    assert len(fig.data[vg.NODES].x) == len(encoder.nodes)
    plot, boxes = _drawn_boxes(fig)
    assert _overlaps(boxes) == []
    labels = dict(zip(fig.data[vg.LABELS].text, fig.data[vg.LABELS].x))
    nodes = dict(zip(fig.data[vg.NODES].customdata, fig.data[vg.NODES].x))
    font = fig.data[vg.LABELS].textfont.size
    left, right = sorted(["embedding", "embedding_1"], key=nodes.__getitem__)
    text = next(t for t in labels if t.startswith(left + " "))
    assert nodes[right] - labels[text] >= 0.6 * font * len(text)  # the next node starts after the label ends


def test_recolouring_keeps_the_scale_and_the_labels_apart(resnet: Explorer) -> None:
    fig = resnet.figure()
    plot_before = _screen(fig)[0]
    ranges = (tuple(fig.layout.xaxis.range), tuple(fig.layout.yaxis.range))
    for color_by in ("module", "reason", "precision"):
        resnet.recolor(fig, color_by=color_by)
        plot, boxes = _drawn_boxes(fig)
        assert (plot[2] - plot[0], plot[3] - plot[1]) == pytest.approx(
            (plot_before[2] - plot_before[0], plot_before[3] - plot_before[1]))
        assert (tuple(fig.layout.xaxis.range), tuple(fig.layout.yaxis.range)) == ranges
        assert _overlaps(boxes) == []
    profile = _profile({"linear": FP16}, {"linear": 0.5})
    resnet.recolor(fig, color_by="latency", profile=profile)  # a colour bar: kept in a margin of its own
    plot, boxes = _drawn_boxes(fig)
    assert plot[2] - plot[0] == pytest.approx(plot_before[2] - plot_before[0])
    assert fig.layout.margin.r >= 100 and fig.data[vg.NODES].marker.colorbar.x > 1.0


def test_the_page_scrolls_over_the_graph_and_dragging_pans(ex: Explorer) -> None:
    fig = ex.figure()
    assert fig.layout.dragmode == "pan"
    assert fig.layout.autosize is False  # a fixed size: one layout unit is one pixel
    # no scrollZoom in the figure: plotly's default config leaves the wheel to the page for cartesian plots


def test_a_given_size_shows_part_of_a_tall_graph_at_the_same_scale(resnet: Explorer) -> None:
    whole = resnet.figure(group_by_module=None)
    small = resnet.figure(group_by_module=None, height=500, width=600)
    assert (small.layout.width, small.layout.height) == (600, 500)
    _, boxes = _drawn_boxes(small)
    assert _overlaps(boxes) == []
    span = small.layout.yaxis.range[1] - small.layout.yaxis.range[0]
    m = small.layout.margin
    assert span == pytest.approx(small.layout.height - m.t - m.b)  # one pixel per unit: a window, not a squeeze
    assert whole.layout.yaxis.range[1] == pytest.approx(small.layout.yaxis.range[1])  # both open at the top


def test_reveal_pans_to_a_node_out_of_view(resnet: Explorer) -> None:
    fig = resnet.figure(group_by_module=None, height=500)
    before = tuple(fig.layout.yaxis.range)
    points = vg.reveal(fig, resnet.captured, ["linear"])  # the head, far below the first view
    y = fig.data[vg.NODES].y[points[0]]
    lo, hi = fig.layout.yaxis.range
    assert lo < y < hi and hi - lo == pytest.approx(before[1] - before[0])
    assert vg.reveal(fig, resnet.captured, ["linear"]) == points and tuple(fig.layout.yaxis.range) == (lo, hi)  # in view
    assert vg.reveal(fig, resnet.captured, ["nosuch"]) == []


def test_hover_shows_the_source_line_that_made_the_node(resnet: Explorer) -> None:
    fig = resnet.figure(group_by_module=None)
    residual = next(n for n, i in resnet.nodes.items() if i.module == "layer1.0" and "add" in i.op)  # add or add_
    hover = fig.data[vg.NODES].hovertext[_point(fig, residual)]
    # examples.py's own Bottleneck (`out + identity`) or torchvision's (`out += identity`), whichever built it
    assert re.search(r"source: \S+\.py:\d+  (return self\.relu\(out \+ identity\)|out \+= identity)", hover), hover


@pytest.mark.parametrize("nodes", [60, 2000])
def test_an_exclusion_keeps_the_figure_frame(nodes):
    """A click adds or removes a dtype in the title's counts; the frame (height, margins, title lines) stays, for a
    new frame replots the whole figure in the browser instead of recolouring one point."""
    explorer = Explorer(*layer_stack(nodes=nodes))
    explorer.settings = Settings(enable_autocast=True, autocast_low_precision_type=FP16)
    before = explorer.figure(group_by_module=None)
    explorer.exclude("blocks.3.0")
    after = explorer.figure(group_by_module=None)
    assert "FP32" in after.layout.title.text and "FP32" not in before.layout.title.text
    frame = ("height", "width", "margin", "title.pad")
    assert [before.layout[k] if "." not in k else before.layout.title.pad for k in frame] == \
        [after.layout[k] if "." not in k else after.layout.title.pad for k in frame]
    assert before.layout.title.text.count("<br>") == after.layout.title.text.count("<br>")
