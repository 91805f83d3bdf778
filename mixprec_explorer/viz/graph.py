"""The graph figure: the captured graph top to bottom, nodes coloured by precision, a measured overlay,
sensitivity, or the difference from another plan.

Trace order is fixed so that :func:`recolor` can update a figure (or FigureWidget) in place:
edges, nodes, the three marker overlays (excluded, FP32 accumulation, mixed-precision module),
the highlight ring, the colour legend slots, then the legend keys of the overlays. Only the node
trace takes hover and clicks. Node colours are numbers through a stepped colourscale, so a
recolour sends one float array instead of thousands of colour strings. Sizes are in px.

This module draws (:class:`GraphView`, the traces, :func:`build_figure`, :func:`recolor`, :func:`highlight`);
the parts it draws with live beside it: :mod:`.colors` (a colouring per ``color_by`` mode), :mod:`.hover`
(hover text), :mod:`.overlay` (the measured results and compared plan of a draw), :mod:`.layout` (positions).
"""

from __future__ import annotations

import math
import weakref
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import plotly.graph_objects as go

from .. import dtypes
from .colors import (
    CHANGED_COLORS,
    COLOR_BY,
    GREY,
    LEGEND_SLOTS,
    LIGHT,
    MISMATCH_COLORS,
    RULE_ONLY,
    SEQUENTIAL,
    Coloring,
    changed_nodes,
    color_points,
    precision_label,
)
from .hover import group_static_hover, node_static_hover, plan_hover, record_hover
from .layout import GROUP_PREFIX, group_graph, layered_layout, without_gc
from .overlay import Overlay, OverlayUnavailable, as_plan, gather_overlay, node_errors

if TYPE_CHECKING:
    from ..explorer import Explorer
    from ..policy import PrecisionPlan
    from ..sensitivity import Sensitivity
    from ..settings import Settings

__all__ = [
    "COLOR_BY",
    "GL_THRESHOLD",
    "GraphView",
    "OverlayUnavailable",
    "as_plan",
    "build_figure",
    "build_view",
    "changed_nodes",
    "clear_caches",
    "highlight",
    "node_errors",
    "recolor",
    "view_of",
]

#: Drawn points beyond which the figure uses WebGL (scattergl) traces.
GL_THRESHOLD = 3000
#: Drawn points up to which nodes are labelled with their name and module path.
LABEL_LIMIT = 150
EDGES, NODES, EXCLUDED, ACCUMULATE, MIXED, HIGHLIGHT = range(6)
_FIRST_LEGEND = 6

# the palettes' names from before they moved to .colors (tests read them here)
_CHANGED_COLORS, _LIGHT, _MISMATCH_COLORS = CHANGED_COLORS, LIGHT, MISMATCH_COLORS
_RULE_ONLY, _SEQUENTIAL = RULE_ONLY, SEQUENTIAL


# -- what is drawn ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GraphView:
    """The drawn items (one per node, or per collapsed module) in point order, with their positions."""

    keys: tuple[str, ...]  #: node name, or "module:<path>" for a collapsed module
    members: tuple[tuple[str, ...], ...]  #: the FX nodes each point stands for
    x: np.ndarray  #: layout units
    y: np.ndarray  #: layout units, 0 at the top, -1 per layer
    edge_x: np.ndarray  #: NaN-separated edge polylines
    edge_y: np.ndarray
    layers: int  #: rows of the layout
    group_by_module: int | None  #: module depth modules are collapsed to (None: no grouping)
    expanded: frozenset[str]  #: module paths opened one level
    point_of: dict[str, int]  #: node name or key -> point index
    static_hover: tuple[str, ...]  #: the settings-independent part of each point's hover text
    sizes: np.ndarray  #: marker size, px
    symbols: tuple[str, ...]  #: marker symbol per point
    labels: tuple[str, ...] | None = None  #: text beside each point (small graphs only)

    def is_group(self, index: int) -> bool:
        """True if point ``index`` is a collapsed module."""
        return self.keys[index].startswith(GROUP_PREFIX)

    def __len__(self) -> int:
        return len(self.keys)


_SYMBOL_OF_KIND = {"call_function": "circle", "input": "triangle-down", "output": "triangle-up"}
_VIEWS: weakref.WeakKeyDictionary[Any, dict[tuple[int | None, frozenset[str]], GraphView]] = \
    weakref.WeakKeyDictionary()


@without_gc
def build_view(explorer: Explorer, group_by_module: int | None = None, expanded: Iterable[str] = ()) -> GraphView:
    """The drawn items of ``explorer``'s graph, grouped by module down to ``group_by_module`` (cached)."""
    if group_by_module is not None and (not isinstance(group_by_module, int) or group_by_module < 1):
        raise ValueError(f"group_by_module must be None or a module depth >= 1, got {group_by_module!r}")
    opened = frozenset(expanded)
    graph = explorer.graph
    cache = _VIEWS.setdefault(graph, {})
    key = (group_by_module, opened if group_by_module is not None else frozenset())
    if key in cache:
        return cache[key]
    if group_by_module is None:
        drawn, members = graph, {n: (n,) for n in graph.nodes}
    else:
        drawn, members = group_graph(graph, group_by_module, opened)
    lay = layered_layout(drawn)
    keys = tuple(drawn.nodes)
    nodes = explorer.nodes
    mem = tuple(members[k] for k in keys)
    point_of: dict[str, int] = {}
    for i, (k, names) in enumerate(zip(keys, mem)):
        point_of[k] = i
        for n in names:
            point_of[n] = i
    hover, sizes, symbols, labels = [], [], [], []
    base = 16.0 if len(keys) <= LABEL_LIMIT else 12.0 if len(keys) <= GL_THRESHOLD else 9.0
    for k, names in zip(keys, mem):
        if k.startswith(GROUP_PREFIX):
            path = k[len(GROUP_PREFIX):]
            hover.append(group_static_hover(path, [nodes[n] for n in names]))
            sizes.append(min(2.2 * base, base + 2.0 + 3.0 * math.log2(len(names))))
            symbols.append("hexagon")
            labels.append(f"\u2003{path} ({len(names)})")  # an em space clears the marker's rings
        else:
            info = nodes[k]
            hover.append(node_static_hover(info))
            sizes.append(base if info.kind == "call_function" else base + 1)
            symbols.append(_SYMBOL_OF_KIND.get(info.kind, "circle") if not info.removed_by else "x")
            labels.append("\u2003" + (f"{info.name} · {info.module}" if info.module else info.name))
    view = GraphView(
        keys=keys, members=mem,
        x=np.array([lay.positions[k][0] for k in keys], dtype=float),
        y=np.array([lay.positions[k][1] for k in keys], dtype=float),
        edge_x=lay.edge_x, edge_y=lay.edge_y, layers=lay.layers,
        group_by_module=group_by_module, expanded=key[1], point_of=point_of,
        static_hover=tuple(hover), sizes=np.array(sizes), symbols=tuple(symbols),
        labels=tuple(labels) if len(keys) <= LABEL_LIMIT else None,
    )
    if len(cache) > 16:
        cache.pop(next(iter(cache)))
    cache[key] = view
    return view


def clear_caches() -> None:
    """Forget cached layouts, views and hover text (for benchmarks of a cold draw)."""
    from . import layout

    layout._CACHE.clear()
    _VIEWS.clear()
    record_hover.cache_clear()


def view_of(fig: go.Figure, explorer: Explorer) -> GraphView:
    """The view a figure made by :func:`build_figure` draws (from its ``layout.meta``)."""
    meta = (fig.layout.meta or {}).get("mixprec") if isinstance(fig.layout.meta, dict) else None
    if not meta:
        raise ValueError("this figure was not made by mixprec_explorer.viz.graph.build_figure")
    view = build_view(explorer, meta.get("group_by_module"), meta.get("expanded") or ())
    if len(fig.data) <= NODES or len(fig.data[NODES].x) != len(view):
        raise ValueError("the figure does not match this explorer's graph (rebuild it with build_figure)")
    return view


# -- the figure ---------------------------------------------------------------------------------------------
def _marks(view: GraphView, explorer: Explorer, plan: PrecisionPlan) -> dict[int, tuple[list[int], list[str]]]:
    """Point indices for each overlay trace (and the ring colour of mixed-precision modules)."""
    excluded, acc, mixed, ring = [], [], [], []
    for i, names in enumerate(view.members):
        recs = [r for n in names if (r := plan.get(n)) is not None and r.rule != "removed"]
        if any(r.is_excluded for r in recs):
            excluded.append(i)
        if any(r.accumulate_dtype is not None for r in recs):
            acc.append(i)
        if len(names) > 1:
            mix = Counter(precision_label(explorer, plan, r.name) for r in recs).most_common()
            if len(mix) > 1:
                mixed.append(i)
                ring.append(dtypes.PALETTE.get(mix[1][0], GREY))
    return {EXCLUDED: (excluded, []), ACCUMULATE: (acc, []), MIXED: (mixed, ring)}


def _mark(index: int) -> dict[str, Any]:
    """Marker style of an overlay trace (a fresh dict each time: figures do not share it)."""
    return {
        EXCLUDED: {"symbol": "square-open", "size": 20, "color": "#000000", "line": {"width": 2}},
        ACCUMULATE: {"symbol": "diamond", "size": 7, "color": "#FFFFFF", "line": {"width": 1.5, "color": "#000000"}},
        MIXED: {"symbol": "circle-open", "size": 22, "color": [], "line": {"width": 3}},
    }[index]


_MARK_NAMES = {EXCLUDED: "excluded from autocast (kept FP32)", ACCUMULATE: "FP32 accumulation",
               MIXED: "module of mixed precisions (ring: 2nd precision)"}


def _template() -> dict[str, Any]:
    """plotly_white as a plain dict (figures are built unvalidated, so names are not resolved for us)."""
    import plotly.io as pio

    return pio.templates["plotly_white"].to_plotly_json()


def _title(explorer: Explorer, plan: PrecisionPlan, view: GraphView, color_by: str, ov: Overlay) -> str:
    counts = " · ".join(f"{k} {v}" for k, v in sorted(plan.counts().items(), key=lambda kv: -kv[1]))
    grouped = f" · modules collapsed to depth {view.group_by_module}" if view.group_by_module else ""
    how = color_by
    if color_by == "changed" and ov.other is not None:
        how = f"change {ov.labels[0]} \u2192 {ov.labels[1]} ({len(changed_nodes(ov.other, plan))} nodes change dtype)"
    elif color_by == "sensitivity" and ov.sensitivity is not None:
        how = (f"sensitivity ({ov.sensitivity.metric} with only the node in "
               f"{dtypes.display_name(ov.sensitivity.low_dtype)})")
    return f"{len(plan)} nodes ({counts}) · coloured by {how}{grouped}"


def _x_range(view: GraphView) -> list[float]:
    """Keep about 40 px per layout unit: a narrow graph is not stretched across the whole width."""
    if not len(view):
        return [-1.0, 1.0]
    lo, hi = float(view.x.min()), float(view.x.max())
    half = max((hi - lo) / 2 + 1.0, 12.0)
    centre = (lo + hi) / 2 + (half * 0.35 if view.labels else 0.0)  # room for labels on the right
    return [centre - half, centre + half]


@without_gc
def build_figure(explorer: Explorer, settings: Settings | None = None, color_by: str = "precision",
                 group_by_module: int | None = None, expanded: Iterable[str] = (), profile: Any = None,
                 accuracy: Any = None, *, plan: PrecisionPlan | None = None, height: int | None = None,
                 sensitivity: Sensitivity | None = None, compare_to: PrecisionPlan | Settings | None = None,
                 compare_labels: tuple[str, str] = ("A", "B")) -> go.Figure:
    """The explorer's graph as a plotly Figure, nodes coloured by ``color_by`` (see :data:`COLOR_BY`).

    Parameters
    ----------
    settings: plan these settings instead of the explorer's current ones (the explorer is not changed).
    group_by_module: collapse modules to this depth of their path (``1``: ``layer1``); ``expanded`` opens paths.
    profile, accuracy: measured results for the overlays; default ``explorer.extensions["profile"/"accuracy"]``.
    sensitivity: a :class:`~mixprec_explorer.sensitivity.Sensitivity` for ``color_by="sensitivity"`` and the
        hover; default ``explorer.extensions["sensitivity"]`` (where ``ex.sensitivity(inputs)`` leaves it).
    compare_to: plan A (a PrecisionPlan or Settings) to compare the drawn plan B with: ``color_by="changed"``
        colours the nodes whose dtype differs by their new dtype, and the hover says ``A -> B``;
        ``compare_labels`` names the two plans in the hover.
    height: figure height in px (default: from the number of layers, 420 to 920).

    Raises :class:`OverlayUnavailable` when ``color_by`` needs a result or plan that is absent.
    """
    view = build_view(explorer, group_by_module, expanded)
    plan = plan if plan is not None else explorer.plan(settings)
    ov = gather_overlay(explorer, profile, accuracy, sensitivity, compare_to, compare_labels)
    coloring = color_points(view, explorer, plan, color_by, ov)
    kind = go.Scattergl if len(view) > GL_THRESHOLD else go.Scatter
    traces: list[Any] = [
        kind(x=view.edge_x, y=view.edge_y, mode="lines", name="edges", hoverinfo="skip", showlegend=False,
             line={"color": "#B8B8B8", "width": 1}),
        kind(x=view.x, y=view.y, mode="markers+text" if view.labels else "markers", name="nodes",
             customdata=np.array(view.keys, dtype=object), text=list(view.labels) if view.labels else None,
             textposition="middle right", textfont={"size": 10, "color": "#555555"},
             hovertext=plan_hover(view, explorer, plan, ov), hoverinfo="text", showlegend=False,
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
    rows = 36
    fig = go.Figure(data=traces, layout={
        "template": _template(),
        "height": height or int(min(920, max(420, 120 + 22 * min(view.layers, rows)))),
        "margin": {"l": 10, "r": 10, "t": 60, "b": 10},
        "hovermode": "closest",
        "dragmode": "pan",
        "uirevision": "mixprec-graph",  # keep the user's zoom and pan across in-place updates
        "xaxis": {"visible": False, "range": _x_range(view)},
        "yaxis": {"visible": False, **({"range": [-rows + 0.5, 0.7]} if view.layers > rows else {})},
        "legend": {"orientation": "h", "yanchor": "bottom", "y": 1.0, "x": 0.0, "font": {"size": 11}},
        "title": {"font": {"size": 13}, "y": 0.99, "yanchor": "top"},
        "meta": {"mixprec": {"kind": "graph", "group_by_module": view.group_by_module,
                             "expanded": sorted(view.expanded), "color_by": color_by}},
    }, _validate=False)
    _apply(fig, view, explorer, plan, color_by, ov, coloring, hover=False)
    return fig


@without_gc
def recolor(fig: go.Figure, explorer: Explorer, plan: PrecisionPlan | None = None, color_by: str | None = None,
            profile: Any = None, accuracy: Any = None, *, sensitivity: Sensitivity | None = None,
            compare_to: PrecisionPlan | Settings | None = None, compare_labels: tuple[str, str] = ("A", "B")
            ) -> None:
    """Update colours, overlay marks, hover and legend of a :func:`build_figure` figure in place.

    Works on a ``go.Figure`` or ``go.FigureWidget`` (one batched update: positions are not resent).
    ``plan`` defaults to the explorer's current plan, ``color_by`` to the figure's last colouring;
    the other arguments are those of :func:`build_figure` (``compare_to`` is not remembered: pass it again).
    """
    view = view_of(fig, explorer)
    color_by = color_by or fig.layout.meta["mixprec"].get("color_by", "precision")
    plan = plan if plan is not None else explorer.plan()
    ov = gather_overlay(explorer, profile, accuracy, sensitivity, compare_to, compare_labels)
    coloring = color_points(view, explorer, plan, color_by, ov)
    _apply(fig, view, explorer, plan, color_by, ov, coloring, hover=True)


def _apply(fig: go.Figure, view: GraphView, explorer: Explorer, plan: PrecisionPlan, color_by: str, ov: Overlay,
           coloring: Coloring, *, hover: bool) -> None:
    marks = _marks(view, explorer, plan)
    hovertext = plan_hover(view, explorer, plan, ov) if hover else None
    with fig.batch_update():
        nodes = fig.data[NODES]
        nodes.marker.color = coloring.values
        nodes.marker.colorscale = coloring.colorscale
        nodes.marker.cmin, nodes.marker.cmax = coloring.cmin, coloring.cmax
        nodes.marker.showscale = coloring.colorbar is not None
        if coloring.colorbar is not None:
            nodes.marker.colorbar = coloring.colorbar
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
        for slot in range(LEGEND_SLOTS):
            trace = fig.data[_FIRST_LEGEND + slot]
            if slot < len(coloring.legend):
                label, colour = coloring.legend[slot]
                trace.name, trace.marker.color, trace.visible = label, colour, True
            elif trace.visible is not False:
                trace.visible = False
        fig.layout.title.text = _title(explorer, plan, view, color_by, ov)
        fig.layout.meta = {"mixprec": {**fig.layout.meta["mixprec"], "color_by": color_by}}


@without_gc
def highlight(fig: go.Figure, explorer: Explorer, names: Iterable[str]) -> list[int]:
    """Ring the points that draw ``names`` (node names or module keys); returns their point indices."""
    view = view_of(fig, explorer)
    points = sorted({view.point_of[n] for n in names if n in view.point_of})
    with fig.batch_update():
        fig.data[HIGHLIGHT].x = view.x[points]
        fig.data[HIGHLIGHT].y = view.y[points]
        fig.data[HIGHLIGHT].marker.size = view.sizes[points] + 20
    return points
