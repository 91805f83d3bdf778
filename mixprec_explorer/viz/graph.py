"""The graph figure: the captured graph top to bottom, nodes coloured by precision, a measured overlay,
sensitivity, or the difference from another plan.

Every drawn point (a node, or a collapsed module) carries a label that overlaps nothing: the layout is computed
in pixels, each point's box (marker and label) kept clear of its neighbours', and the figure is sized so that one
layout unit is one pixel. A large graph opens grouped by module (:func:`~.layout.auto_grouping`), each group
showing its precision mix as a small stacked bar under its label; ``expanded`` opens groups. The figure is as wide
and tall as the drawing (within limits), and its first view shows all of it where it fits on one screen.

Trace order is fixed so that :func:`recolor` can update a figure (or FigureWidget) in place:
edges, nodes, the three marker overlays (excluded, FP32 accumulation, mixed-precision module),
the highlight ring, the labels, the groups' precision bars, the colour legend slots, then the legend keys of
the overlays. Only the node trace takes hover and clicks (the label trace has the same points in the same order).
Node colours are numbers through a stepped colourscale, so a recolour sends one float array instead of thousands
of colour strings. Sizes are in px.

This module draws (:class:`GraphView`, the traces, :func:`build_figure`, :func:`recolor`, :func:`highlight`);
the parts it draws with live beside it: :mod:`.colors` (a colouring per ``color_by`` mode), :mod:`.hover`
(hover text), :mod:`.overlay` (the measured results and compared plan of a draw), :mod:`.layout` (positions).
"""

from __future__ import annotations

import math
import weakref
from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import plotly.graph_objects as go

from ..dtypes import PALETTE, display_name
from ..errors import OptionError
from .colors import (
    CHANGED_COLORS,
    COLOR_BY,
    FP32_COST,
    GREY,
    LEGEND_SLOTS,
    LIGHT,
    MISMATCH_COLORS,
    RULE_ONLY,
    SEQUENTIAL,
    Coloring,
    changed_nodes,
    color_points,
    with_hover,
)
from .hover import group_static_hover, node_static_hover, plan_hover, record_hover
from .layout import (
    GROUP_PREFIX,
    Box,
    GraphView,
    auto_grouping,
    forget_layouts,
    group_graph,
    layered_layout,
    text_width,
    without_gc,
)
from .overlay import Overlay, OverlayUnavailable, gather_overlay, node_errors

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ..capture import CapturedGraph
    from ..policy import PrecisionPlan
    from ..records import CalibrationStat, NodeInfo
    from ..results import Sensitivity

__all__ = [
    "COLOR_BY",
    "GL_THRESHOLD",
    "GraphView",
    "Grouping",
    "OverlayUnavailable",
    "build_figure",
    "build_view",
    "changed_nodes",
    "clear_caches",
    "color_by_of",
    "highlight",
    "node_errors",
    "recolor",
    "resolve_grouping",
    "reveal",
    "view_of",
]

#: Drawn points beyond which the figure uses WebGL (scattergl) traces.
GL_THRESHOLD = 3000
#: Drawn points up to which every point is labelled (past it, WebGL draws markers only).
LABEL_LIMIT = 3000
EDGES, NODES, EXCLUDED, ACCUMULATE, MIXED, HIGHLIGHT, LABELS, MIX = range(8)
#: Index of the first legend-only trace (the figure's fixed traces come first: EDGES ... MIX).
FIRST_LEGEND_TRACE = 8

#: What ``group_by_module`` accepts: a module depth, None (never group) or "auto" (group a large graph).
Grouping = int | None | Literal["auto"]

LABEL_FONT = 11  #: px, label text
LABEL_FAMILY = "Arial, 'Liberation Sans', Helvetica, sans-serif"  #: narrow, common fonts (see text_width)
BAR_WIDTH, BAR_HEIGHT = 64.0, 6.0  #: px, a group's precision-mix bar
MAX_HEIGHT = 960  #: px, tallest figure drawn by default; a taller drawing opens at its top
MIN_WIDTH, MAX_WIDTH = 420, 1400  #: px, figure width limits (the title needs the minimum)
_GAP, _ROW_GAP, _DUMMY = 12.0, 6.0, 8.0  #: px between boxes in a row, between rows, kept for a passing edge
_PAD = 12.0  #: px between the drawing and the plot's edges
_TEXT_DY, _BAR_DY = 6.0, -8.0  #: px: a group's label sits above its anchor, its bar below
_RING = 6.0  #: px kept around a marker for the excluded square (size + 9, line 2) and the mixed ring

# the palettes' names from before they moved to .colors (tests read them here)
_CHANGED_COLORS, _LIGHT, _MISMATCH_COLORS = CHANGED_COLORS, LIGHT, MISMATCH_COLORS
_RULE_ONLY, _SEQUENTIAL = RULE_ONLY, SEQUENTIAL


# -- what is drawn ----------------------------------------------------------------------------------------
_SYMBOL_OF_KIND = {"call_function": "circle", "input": "triangle-down", "output": "triangle-up"}
_VIEWS: weakref.WeakKeyDictionary[Any, dict[tuple[int | None, frozenset[str]], GraphView]] = \
    weakref.WeakKeyDictionary()


def resolve_grouping(captured: CapturedGraph, group_by_module: Grouping, expanded: Iterable[str] = ()
                     ) -> tuple[int | None, frozenset[str]]:
    """``(depth, expanded)`` that ``group_by_module`` and ``expanded`` draw; "auto" adds the groups a large graph
    opens with (see :func:`~mixprec_explorer.viz.layout.auto_grouping`) to ``expanded``.

    Raises ValueError for anything but None, "auto" or a depth >= 1.
    """
    if group_by_module == "auto":
        depth, opened = auto_grouping(captured.graph)
        return depth, (opened | frozenset(expanded)) if depth is not None else frozenset()
    if group_by_module is not None and (isinstance(group_by_module, bool) or not isinstance(group_by_module, int)
                                        or group_by_module < 1):
        raise OptionError(f"group_by_module must be None, 'auto' or a module depth >= 1, got {group_by_module!r}")
    return group_by_module, frozenset(expanded) if group_by_module is not None else frozenset()


def _opened_parent(module: str, opened: frozenset[str]) -> str | None:
    """The deepest expanded module path that ``module`` is or lies under."""
    parts = module.split(".")
    for cut in range(len(parts), 0, -1):
        prefix = ".".join(parts[:cut])
        if prefix in opened:
            return prefix
    return None


def _node_label(name: str, module: str, depth: int | None, opened: frozenset[str]) -> str:
    """``name · module``, the module relative to the group it was opened from (the full path when ungrouped)."""
    if not module:
        return name
    if depth is not None:
        parent = _opened_parent(module, opened)
        if parent is not None:
            module = module[len(parent) + 1:]
    return f"{name} \u00b7 {module}" if module else name


@without_gc
def build_view(captured: CapturedGraph, group_by_module: Grouping = "auto", expanded: Iterable[str] = ()
               ) -> GraphView:
    """The drawn items of the captured graph, grouped by module down to ``group_by_module`` (cached).

    ``group_by_module="auto"`` groups a large graph as :func:`~mixprec_explorer.viz.layout.auto_grouping` says,
    plus the paths in ``expanded``.
    """
    depth, opened = resolve_grouping(captured, group_by_module, expanded)
    graph = captured.graph
    cache = _VIEWS.setdefault(graph, {})
    key = (depth, opened)
    if key in cache:
        return cache[key]
    if depth is None:
        drawn, members = graph, {n: (n,) for n in graph.nodes}
    else:
        drawn, members = group_graph(graph, depth, opened)
    keys = tuple(drawn.nodes)
    nodes = captured.nodes
    mem = tuple(members[k] for k in keys)
    point_of: dict[str, int] = {}
    for i, (k, names) in enumerate(zip(keys, mem)):
        point_of[k] = i
        for n in names:
            point_of[n] = i
    labelled = len(keys) <= LABEL_LIMIT
    hover, sizes, symbols, labels, offsets, lifts = [], [], [], [], [], []
    boxes: dict[str, Box] = {}
    base = 12.0 if len(keys) <= GL_THRESHOLD else 8.0
    for k, names in zip(keys, mem):
        if k.startswith(GROUP_PREFIX):
            path = k[len(GROUP_PREFIX):]
            hover.append(group_static_hover(path, [nodes[n] for n in names]))
            size = min(1.8 * base, base + 2.0 + 3.0 * math.log2(len(names)))
            symbols.append("hexagon")
            label = f"{path} \u00b7 {len(names)} nodes"
            room = max(text_width(label, LABEL_FONT), BAR_WIDTH)
            half = max(size / 2 + _RING, _TEXT_DY + 0.6 * LABEL_FONT + 1.0, -_BAR_DY + BAR_HEIGHT / 2 + 2.0)
            lifts.append(_TEXT_DY)
        else:
            info = nodes[k]
            hover.append(node_static_hover(info))
            size = base if info.kind == "call_function" else base + 1
            symbols.append(_SYMBOL_OF_KIND.get(info.kind, "circle") if not info.removed_by else "x")
            label = _node_label(info.name, info.module, depth, opened)
            room = text_width(label, LABEL_FONT)
            half = max(size / 2 + _RING, 0.6 * LABEL_FONT + 1.0)
            lifts.append(0.0)
        sizes.append(size)
        labels.append(label)
        offsets.append(size / 2 + _RING + 3.0)
        right = offsets[-1] + room if labelled else size / 2 + _RING
        boxes[k] = (size / 2 + _RING, right, half if labelled else size / 2 + _RING)
    lay = layered_layout(drawn, boxes=boxes, gap=_GAP, row_gap=_ROW_GAP, dummy_width=_DUMMY)
    x = np.array([lay.positions[k][0] for k in keys], dtype=float)
    y = np.array([lay.positions[k][1] for k in keys], dtype=float)
    view = GraphView(
        keys=keys, members=mem, x=x, y=y,
        edge_x=lay.edge_x, edge_y=lay.edge_y, layers=lay.layers,
        group_by_module=depth, expanded=opened, point_of=point_of,
        static_hover=tuple(hover), sizes=np.array(sizes), symbols=tuple(symbols),
        labels=tuple(labels) if labelled else None,
        label_x=x + np.array(offsets) if labelled else None,
        label_y=y + np.array(lifts) if labelled else None,
        bounds=lay.bounds,
    )
    if len(cache) > 16:
        cache.pop(next(iter(cache)))
    cache[key] = view
    return view


def clear_caches() -> None:
    """Forget cached layouts, views and hover text (for benchmarks of a cold draw)."""
    forget_layouts()
    _VIEWS.clear()
    record_hover.cache_clear()


def view_of(fig: go.Figure, captured: CapturedGraph) -> GraphView:
    """The view a figure made by :func:`build_figure` draws (from its ``layout.meta``)."""
    meta = (fig.layout.meta or {}).get("mixprec") if isinstance(fig.layout.meta, dict) else None
    if not meta:
        raise OptionError("this figure was not made by mixprec_explorer.viz.graph.build_figure")
    view = build_view(captured, meta.get("group_by_module"), meta.get("expanded") or ())
    if len(fig.data) <= NODES or len(fig.data[NODES].x) != len(view):
        raise OptionError("the figure does not match this captured graph (rebuild it with build_figure)")
    return view


def color_by_of(fig: go.Figure) -> str:
    """The ``color_by`` a :func:`build_figure` figure was last coloured by."""
    meta = fig.layout.meta if isinstance(fig.layout.meta, dict) else {}
    return str(meta.get("mixprec", {}).get("color_by", "precision"))


# -- the figure ---------------------------------------------------------------------------------------------
def _group_mix(view: GraphView, nodes: Mapping[str, NodeInfo], plan: PrecisionPlan) -> dict[int, Counter[str]]:
    """Precision counts of each collapsed module's live nodes (removed nodes left out)."""
    out: dict[int, Counter[str]] = {}
    name_of: dict[Any, str] = {}  # dtype -> palette name, as precision_label names it
    for i, names in enumerate(view.members):
        if len(names) < 2:
            continue
        counts: Counter[str] = Counter()
        for n in names:
            rec = plan.get(n)
            if rec is not None and rec.rule == "removed":
                continue
            dtype = rec.dtype if rec is not None else nodes[n].dtype
            label = name_of.get(dtype)
            if label is None:
                shown = display_name(dtype)
                label = name_of[dtype] = shown if shown in PALETTE else "other"
            counts[label] += 1
        out[i] = counts
    return out


def _marks(view: GraphView, plan: PrecisionPlan, mix: dict[int, Counter[str]]
           ) -> dict[int, tuple[list[int], list[str]]]:
    """Point indices for each overlay trace (and the ring colour of mixed-precision modules)."""
    excluded, acc, mixed, ring = [], [], [], []
    for i, names in enumerate(view.members):
        recs = [r for n in names if (r := plan.get(n)) is not None and r.rule != "removed"]
        if any(r.is_excluded for r in recs):
            excluded.append(i)
        if any(r.accumulate_dtype is not None for r in recs):
            acc.append(i)
        common = mix[i].most_common() if i in mix else []
        if len(common) > 1:
            mixed.append(i)
            ring.append(PALETTE.get(common[1][0], GREY))
    return {EXCLUDED: (excluded, []), ACCUMULATE: (acc, []), MIXED: (mixed, ring)}


def _bars(view: GraphView, mix: dict[int, Counter[str]]) -> tuple[list[float], list[float], list[float], list[str]]:
    """Segments of the groups' precision bars: (start x, length, y, colour), in palette order."""
    order = {k: i for i, k in enumerate(PALETTE)}
    base: list[float] = []
    length: list[float] = []
    ys: list[float] = []
    colours: list[str] = []
    if view.label_x is None:
        return base, length, ys, colours
    for i, counts in mix.items():
        total = sum(counts.values())
        at = float(view.label_x[i])
        for label, count in sorted(counts.items(), key=lambda kv: order.get(kv[0], len(order))):
            width = BAR_WIDTH * count / total
            base.append(at)
            length.append(width)
            ys.append(float(view.y[i]) + _BAR_DY)
            colours.append(PALETTE.get(label, GREY))
            at += width
    return base, length, ys, colours


def _mark(index: int) -> dict[str, Any]:
    """Marker style of an overlay trace (a fresh dict each time: figures do not share it)."""
    return {
        EXCLUDED: {"symbol": "square-open", "size": 20, "color": "#000000", "line": {"width": 2}},
        ACCUMULATE: {"symbol": "diamond", "size": 7, "color": "#FFFFFF", "line": {"width": 1.5, "color": "#000000"}},
        MIXED: {"symbol": "circle-open", "size": 22, "color": [], "line": {"width": 3}},
    }[index]


_MARK_NAMES = {EXCLUDED: "excluded (kept FP32)", ACCUMULATE: "FP32 accumulation",
               MIXED: "mixed module (ring: 2nd)"}


def _template() -> dict[str, Any]:
    """plotly_white as a plain dict (figures are built unvalidated, so names are not resolved for us)."""
    import plotly.io as pio

    return pio.templates["plotly_white"].to_plotly_json()


def _title(plan: PrecisionPlan, view: GraphView, color_by: str, ov: Overlay) -> str:
    """The figure's title: phrases joined by `` · `` (it wraps between phrases only)."""
    counts = ", ".join(f"{k} {v}" for k, v in sorted(plan.counts().items(), key=lambda kv: -kv[1]))
    groups = sum(view.is_group(i) for i in range(len(view)))
    how = color_by
    if color_by == "changed" and ov.other is not None:
        how = f"change {ov.labels[0]} \u2192 {ov.labels[1]} ({len(changed_nodes(ov.other, plan))} nodes change dtype)"
    elif color_by == "sensitivity" and ov.sensitivity is not None:
        how = (f"sensitivity ({ov.sensitivity.metric} with only the node in "
               f"{display_name(ov.sensitivity.low_dtype)})")
    elif color_by == FP32_COST:
        how = "predicted cost of staying FP32 (ms saved in low precision)"
    phrases = [f"coloured by {how}"]
    if groups:
        phrases.append(f"{groups} modules collapsed (bar: their precisions)")
    # the counts, which change on every click, stand on their own line: the title keeps its number of lines, and
    # the figure its frame (a new frame replots the whole figure in the browser: about 1 s at 2,000 nodes)
    return f"{len(plan)} nodes ({counts})" + _BREAK + _SEP.join(phrases)


_SEP = " \u00b7 "
_BREAK = "\n"  #: a line break the title always has


# -- the frame: figure size and margins around a plot area of fixed pixels -----------------------------------
_TITLE_FONT, _LEGEND_FONT = 13, 11
_MODEBAR = 280.0  #: px at the top right that plotly's toolbar covers on hover (9 buttons: 264 px)
_TOOLBAR_ROW = 26.0  #: px: its height
_COLORBAR = 110  #: px of right margin kept for a colour bar


def _wrap_px(text: str, first: float, rest: float, size: float) -> list[str]:
    """The `` · ``-separated phrases of ``text`` in lines at most ``first`` px wide (the first line) and ``rest``
    px (the others); a phrase is never split, and each :data:`_BREAK` starts a new line."""
    lines: list[str] = []
    for block in text.split(_BREAK):
        line = ""
        for phrase in block.split(_SEP):
            trial = f"{line}{_SEP}{phrase}" if line else phrase
            if line and text_width(trial, size) > (first if not lines else rest):
                lines.append(line)
                line = phrase
            else:
                line = trial
        lines.append(line)
    return lines


def _legend_items(names: list[str]) -> list[float]:
    """Width in px of each legend entry as plotly draws it (symbol, gap, text, padding)."""
    return [46.0 + text_width(name, _LEGEND_FONT) for name in names]


def _legend_rows(names: list[str], width: float) -> int:
    """Rows plotly's horizontal legend takes for ``names`` in ``width`` px: one row if all entries fit, else a grid
    whose columns are as wide as the widest entry."""
    items = _legend_items(names)
    if sum(items) <= width:
        return 1
    columns = max(1, int(width // max(items)))
    return math.ceil(len(items) / columns)


def _frame(plot_w: float, plot_h: float, title: str, legend: list[str], colorbar: bool, room: float
           ) -> dict[str, Any]:
    """Figure size, margins, title lines and legend placement around a plot area of ``plot_w`` x ``plot_h`` px.

    The legend stands in the plot area right of the drawing where ``room`` (px free there) holds it, else in a
    horizontal block above the plot. The title is wrapped so that its first line stops short of plotly's toolbar.
    """
    ml, mr, mb = 8, (_COLORBAR if colorbar else 8), 8
    fig_w = plot_w + ml + mr
    # the title's first line stops short of the toolbar; where not even its first phrase fits, it starts below it
    first = fig_w - 8 - _MODEBAR
    # with room for two more counts: a click that adds a dtype to the counts must not move the title (a new frame)
    slack = text_width(", FP32 00000, other 00000", _TITLE_FONT)
    below = text_width(title.split(_BREAK)[0].split(_SEP)[0], _TITLE_FONT) + slack > first
    lines = _wrap_px(title, fig_w - 16 if below else first, fig_w - 16, _TITLE_FONT)
    drop = _TOOLBAR_ROW if below else 0.0
    mt = int(drop) + 6 + 17 * len(lines) + 8
    beside = bool(legend) and max(_legend_items(legend)) <= room
    if beside:
        place = {"orientation": "v", "x": 1.0 - room / plot_w, "xanchor": "left", "y": 1.0, "yanchor": "top"}
    else:
        mt += 20 * _legend_rows(legend, fig_w - 16) + 8
        place = {"orientation": "h", "x": 0.0, "xanchor": "left", "y": 1.0, "yanchor": "bottom"}
    # plotly sets a title of several lines about half a line higher than one of a single line
    return {"width": int(round(fig_w)), "height": int(round(plot_h + mt + mb)),
            "margin": {"l": ml, "r": mr, "t": mt, "b": mb, "pad": 0}, "title_text": "<br>".join(lines),
            "title_pad": {"l": 8, "t": int(drop) + (8 if len(lines) == 1 else 17)}, "legend": place,
            "legend_height": 19.0 * len(legend) + 10.0 if beside else 0.0}


def _plot_area(view: GraphView, width: int | None, height: int | None, title: str, legend: list[str],
               colorbar: bool) -> tuple[float, float, float, list[float], list[float]]:
    """Plot area in px, the px free right of the drawing, and axis ranges that map one layout unit to one pixel.

    By default the plot area is the drawing's size plus room for the legend beside it (within
    :data:`MIN_WIDTH`..:data:`MAX_WIDTH` x :data:`MAX_HEIGHT`); a drawing larger than the area is shown from its
    top, centred across. A given ``width`` / ``height`` is the figure's, margins included.
    """
    x0, x1, y0, y1 = view.bounds if len(view) else (-1.0, 1.0, -1.0, 1.0)
    need_w, need_h = x1 - x0 + 2 * _PAD, y1 - y0 + 2 * _PAD
    across = 8 + (_COLORBAR if colorbar else 8)
    legend_w = max(_legend_items(legend), default=0.0) + 8.0  # and a gap from the drawing
    if width:
        plot_w = float(width) - across
    else:
        plot_w = need_w + legend_w if need_w + legend_w + across <= MAX_WIDTH else need_w
        plot_w = min(max(plot_w, MIN_WIDTH - across), MAX_WIDTH - across)
    plot_w = max(plot_w, 120.0)
    if need_w + legend_w <= plot_w:  # drawing at the left, legend beside it
        xr = [x0 - _PAD, x0 - _PAD + plot_w]
    else:
        cx = (x0 + x1) / 2
        xr = [cx - plot_w / 2, cx + plot_w / 2]
    room = max(0.0, xr[1] - (x1 + _PAD))
    frame = _frame(plot_w, 0.0, title, legend, colorbar, room)
    down = frame["margin"]["t"] + frame["margin"]["b"]
    plot_h = float(height) - down if height else min(max(need_h, frame["legend_height"]), MAX_HEIGHT - down)
    plot_h = max(plot_h, 120.0)
    top = y1 + _PAD
    return plot_w, plot_h, room, xr, [top - plot_h, top]


def _legend_names(view: GraphView, coloring: Coloring) -> list[str]:
    """The legend's entries as drawn: colour categories, then the keys of the marks."""
    return [label for label, _ in coloring.legend[:LEGEND_SLOTS]] + [
        name for index, name in _MARK_NAMES.items() if index != MIXED or view.group_by_module is not None]


@without_gc
def build_figure(captured: CapturedGraph, plan: PrecisionPlan, color_by: str = "precision", *,
                 group_by_module: Grouping = "auto", expanded: Iterable[str] = (), profile: Any = None,
                 accuracy: Any = None, sensitivity: Sensitivity | None = None, compare_to: PrecisionPlan | None = None,
                 compare_labels: tuple[str, str] = ("A", "B"), fp32_cost_ms: Mapping[str, float] | None = None,
                 height: int | None = None, width: int | None = None,
                 calibration: Mapping[str, CalibrationStat] | None = None) -> go.Figure:
    """The captured graph with ``plan`` as a plotly Figure, nodes coloured by ``color_by`` (see :data:`COLOR_BY`).

    ``ex.figure(...)`` calls it with the explorer's graph, plan and kept results; call it directly to draw records
    of your own.

    Parameters
    ----------
    captured: the :class:`~mixprec_explorer.capture.CapturedGraph` drawn (``ex.captured``).
    plan: the :class:`~mixprec_explorer.policy.PrecisionPlan` coloured (``ex.plan(settings)``).
    group_by_module: "auto" (default): a graph of more than :data:`~.layout.AUTO_GROUP_NODES` nodes opens
        collapsed by module (ResNet-50: ``layer1``..``layer4``; an encoder: its layers); an int collapses modules
        to that depth of their path (``1``: ``layer1``); None draws every node.
    expanded: module paths to open one level (a click on a group in the widget adds its path here).
    profile, accuracy: measured results for the overlays (a ``Profile``; an accuracy result or a mapping node ->
        relative error).
    sensitivity: a :class:`~mixprec_explorer.sensitivity.Sensitivity` for ``color_by="sensitivity"`` and the hover.
    compare_to: plan A (a PrecisionPlan) to compare ``plan`` (B) with: ``color_by="changed"`` colours the nodes
        whose dtype differs by their new dtype, and the hover says ``A -> B``; ``compare_labels`` names the two.
    fp32_cost_ms: per node, the predicted ms that staying FP32 costs (``ex.predictor.fp32_cost_ms()``), for
        ``color_by="fp32_cost"``.
    calibration: per node, the calibrated range (``ex.calibration``), for ``color_by="range"``.
    height, width: figure size in px (default: the drawing's size, up to :data:`MAX_HEIGHT` x :data:`MAX_WIDTH`;
        one layout pixel stays one screen pixel, so a smaller figure shows part of the graph, panned by dragging).

    The figure pans on drag; show it with ``config={"scrollZoom": False}`` (plotly's default) so that the mouse
    wheel scrolls the page; zoom with the toolbar.

    Raises :class:`OverlayUnavailable` when ``color_by`` needs a result or plan that is absent.
    """
    view = build_view(captured, group_by_module, expanded)
    ov = gather_overlay(profile, accuracy, sensitivity, compare_to, compare_labels, fp32_cost_ms, calibration)
    coloring = color_points(view, captured.nodes, plan, color_by, ov)
    kind = go.Scattergl if len(view) > GL_THRESHOLD else go.Scatter
    labelled = view.labels is not None
    traces: list[Any] = [
        kind(x=view.edge_x, y=view.edge_y, mode="lines", name="edges", hoverinfo="skip", showlegend=False,
             line={"color": "#B8B8B8", "width": 1}),
        kind(x=view.x, y=view.y, mode="markers", name="nodes",
             customdata=np.array(view.keys, dtype=object),
             hovertext=with_hover(plan_hover(view, captured.nodes, plan, ov), coloring), hoverinfo="text",
             showlegend=False,
             marker={"size": view.sizes, "symbol": list(view.symbols), "line": {"width": 1, "color": "#FFFFFF"},
                     "color": coloring.values, "colorscale": coloring.colorscale, "cmin": coloring.cmin,
                     "cmax": coloring.cmax, "showscale": coloring.colorbar is not None,
                     "colorbar": coloring.colorbar or {}}),
        kind(x=[], y=[], mode="markers", name="excluded", hoverinfo="skip", showlegend=False, marker=_mark(EXCLUDED)),
        kind(x=[], y=[], mode="markers", name="fp32 accumulation", hoverinfo="skip", showlegend=False,
             marker=_mark(ACCUMULATE)),
        kind(x=[], y=[], mode="markers", name="mixed", hoverinfo="skip", showlegend=False, marker=_mark(MIXED)),
        kind(x=[], y=[], mode="markers", name="highlight", hoverinfo="skip", showlegend=False,
             marker={"symbol": "circle-open", "size": 34, "color": "#444444", "line": {"width": 2}}),
        kind(x=view.label_x if labelled else [], y=view.label_y if labelled else [], mode="text", name="labels",
             text=list(view.labels) if view.labels is not None else None, textposition="middle right",
             textfont={"size": LABEL_FONT, "color": "#333333", "family": LABEL_FAMILY}, hoverinfo="skip",
             showlegend=False),
        go.Bar(x=[], y=[], base=[], orientation="h", width=BAR_HEIGHT, name="precision mix", hoverinfo="skip",
               showlegend=False, marker={"color": [], "line": {"width": 0}}),
    ]
    traces += [go.Scatter(x=[None], y=[None], mode="markers", name=f"slot{i}", hoverinfo="skip", legendrank=i,
                          visible=False, marker={"size": 11, "symbol": "circle", "color": GREY})
               for i in range(LEGEND_SLOTS)]
    # keys for the marks, always in the legend (a trace without points would drop out of it)
    traces += [go.Scatter(x=[None], y=[None], mode="markers", name=name, hoverinfo="skip", legendrank=900 + i,
                          visible=index != MIXED or view.group_by_module is not None,
                          marker={**_mark(index), "size": 13 if index != ACCUMULATE else 9,
                                  **({"color": GREY} if index == MIXED else {})})
               for i, (index, name) in enumerate(_MARK_NAMES.items())]
    plot_w, plot_h, room, xr, yr = _plot_area(view, width, height, _title(plan, view, color_by, ov),
                                              _legend_names(view, coloring), coloring.colorbar is not None)
    fig = go.Figure(data=traces, layout={
        "template": _template(),
        "autosize": False,
        "hovermode": "closest",
        "dragmode": "pan",
        "barmode": "overlay",
        "showlegend": True,
        # keep the user's pan across in-place updates of one view; a new view (expand, group) opens whole
        "uirevision": f"mixprec-graph:{view.group_by_module}:{'|'.join(sorted(view.expanded))}",
        "xaxis": {"visible": False, "range": xr, "fixedrange": False},
        "yaxis": {"visible": False, "range": yr, "fixedrange": False},
        "legend": {"font": {"size": _LEGEND_FONT}, "bgcolor": "rgba(255,255,255,0.8)"},
        "title": {"font": {"size": _TITLE_FONT}, "x": 0.0, "xref": "container", "xanchor": "left",
                  "y": 1.0, "yref": "container", "yanchor": "top"},
        "meta": {"mixprec": {"kind": "graph", "group_by_module": view.group_by_module,
                             "expanded": sorted(view.expanded), "color_by": color_by,
                             "plot": [plot_w, plot_h, room]}},
    }, _validate=False)
    _apply(fig, view, captured.nodes, plan, color_by, ov, coloring, hover=False)
    return fig


@without_gc
def recolor(fig: go.Figure, captured: CapturedGraph, plan: PrecisionPlan, color_by: str | None = None, *,
            profile: Any = None, accuracy: Any = None, sensitivity: Sensitivity | None = None,
            compare_to: PrecisionPlan | None = None, compare_labels: tuple[str, str] = ("A", "B"),
            fp32_cost_ms: Mapping[str, float] | None = None,
            calibration: Mapping[str, CalibrationStat] | None = None) -> None:
    """Update colours, overlay marks, hover and legend of a :func:`build_figure` figure in place.

    Works on a ``go.Figure`` or ``go.FigureWidget`` (one batched update: positions are not resent).
    ``color_by`` defaults to the figure's last colouring (:func:`color_by_of`); the other arguments are those of
    :func:`build_figure` (none is remembered: pass the results to draw again).
    """
    view = view_of(fig, captured)
    color_by = color_by or color_by_of(fig)
    ov = gather_overlay(profile, accuracy, sensitivity, compare_to, compare_labels, fp32_cost_ms, calibration)
    coloring = color_points(view, captured.nodes, plan, color_by, ov)
    _apply(fig, view, captured.nodes, plan, color_by, ov, coloring, hover=True)


def _apply(fig: go.Figure, view: GraphView, infos: Mapping[str, NodeInfo], plan: PrecisionPlan, color_by: str,
           ov: Overlay, coloring: Coloring, *, hover: bool) -> None:
    mix = _group_mix(view, infos, plan)
    marks = _marks(view, plan, mix)
    hovertext = with_hover(plan_hover(view, infos, plan, ov), coloring) if hover else None
    bar_base, bar_len, bar_y, bar_colours = _bars(view, mix)
    meta = fig.layout.meta["mixprec"]
    plot_w, plot_h, room = meta["plot"]
    frame = _frame(plot_w, plot_h, _title(plan, view, color_by, ov), _legend_names(view, coloring),
                   coloring.colorbar is not None, room)
    with fig.batch_update():
        nodes = fig.data[NODES]
        nodes.marker.color = coloring.values
        nodes.marker.colorscale = coloring.colorscale
        nodes.marker.cmin, nodes.marker.cmax = coloring.cmin, coloring.cmax
        nodes.marker.showscale = coloring.colorbar is not None
        if coloring.colorbar is not None:  # in the right margin kept for it, beside the plot area
            title = {**coloring.colorbar.get("title", {}), "side": "right"}
            nodes.marker.colorbar = {**coloring.colorbar, "title": title, "x": 1.0 + 10.0 / plot_w,
                                     "xanchor": "left", "xref": "paper"}
        if hovertext is not None:
            nodes.hovertext = np.array(hovertext, dtype=object)  # an array is taken whole, a list item by item
        for index, (points, ring) in marks.items():
            trace = fig.data[index]
            trace.x = view.x[points]
            trace.y = view.y[points]
            size = view.sizes[points]
            trace.marker.size = size + 9 if index == EXCLUDED else size + 7 if index == MIXED else np.maximum(
                4.0, 0.4 * size)
            if index == MIXED:
                trace.marker.color = ring
        bars = fig.data[MIX]
        bars.x, bars.y, bars.base = bar_len, bar_y, bar_base
        bars.marker.color = bar_colours
        for slot in range(LEGEND_SLOTS):
            trace = fig.data[FIRST_LEGEND_TRACE + slot]
            if slot < len(coloring.legend):
                label, colour = coloring.legend[slot]
                trace.name, trace.marker.color, trace.visible = label, colour, True
            elif trace.visible is not False:
                trace.visible = False
        fig.layout.width, fig.layout.height = frame["width"], frame["height"]
        fig.layout.margin = frame["margin"]
        fig.layout.title.text = frame["title_text"]
        fig.layout.title.pad = frame["title_pad"]
        fig.layout.legend.update(frame["legend"])
        fig.layout.meta = {"mixprec": {**meta, "color_by": color_by}}


@without_gc
def highlight(fig: go.Figure, captured: CapturedGraph, names: Iterable[str]) -> list[int]:
    """Ring the points that draw ``names`` (node names or module keys); returns their point indices."""
    view = view_of(fig, captured)
    points = sorted({view.point_of[n] for n in names if n in view.point_of})
    with fig.batch_update():
        fig.data[HIGHLIGHT].x = view.x[points]
        fig.data[HIGHLIGHT].y = view.y[points]
        fig.data[HIGHLIGHT].marker.size = view.sizes[points] + 20
    return points


@without_gc
def reveal(fig: go.Figure, captured: CapturedGraph, names: Iterable[str]) -> list[int]:
    """Pan ``fig`` (keeping its scale) so that the first point drawing ``names`` is in view, if it is not;
    returns the point indices that draw ``names`` (for a search box: ``highlight`` rings them, this shows them)."""
    view = view_of(fig, captured)
    points = sorted({view.point_of[n] for n in names if n in view.point_of})
    if not points:
        return points
    x, y = float(view.x[points[0]]), float(view.y[points[0]])
    for axis, at in ((fig.layout.xaxis, x), (fig.layout.yaxis, y)):
        lo, hi = (float(v) for v in axis.range)
        if not lo + 0.1 * (hi - lo) <= at <= hi - 0.1 * (hi - lo):
            half = (hi - lo) / 2
            axis.range = [at - half, at + half]
    return points
