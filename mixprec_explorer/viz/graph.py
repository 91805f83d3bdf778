"""The graph figure: the captured graph top to bottom, nodes coloured by precision, a measured overlay,
sensitivity, or the difference from another plan.

Trace order is fixed so that :func:`recolor` can update a figure (or FigureWidget) in place:
edges, nodes, the three marker overlays (excluded, FP32 accumulation, mixed-precision module),
the highlight ring, the colour legend slots, then the legend keys of the overlays. Only the node
trace takes hover and clicks. Node colours are numbers through a stepped colourscale, so a
recolour sends one float array instead of thousands of colour strings. Sizes are in px.
"""

from __future__ import annotations

import functools
import math
import weakref
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import plotly.graph_objects as go

from .. import dtypes
from ..errors import MixprecError
from ..records import NodePrecision
from .layout import GROUP_PREFIX, group_graph, layered_layout, without_gc

if TYPE_CHECKING:
    from ..explorer import Explorer
    from ..policy import PrecisionPlan
    from ..records import NodeInfo
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

#: Values ``color_by`` accepts. "latency", "measured_dtype" and "mismatch" need a profile, "error" an accuracy
#: result, "sensitivity" a sensitivity result, "changed" a plan to compare with (``compare_to=``).
COLOR_BY = ("precision", "reason", "module", "latency", "measured_dtype", "error", "mismatch", "sensitivity",
            "changed")
#: Drawn points beyond which the figure uses WebGL (scattergl) traces.
GL_THRESHOLD = 3000
#: Drawn points up to which nodes are labelled with their name and module path.
LABEL_LIMIT = 150
#: Legend slots for colour categories (module colouring folds the rest into "other modules").
LEGEND_SLOTS = 12

EDGES, NODES, EXCLUDED, ACCUMULATE, MIXED, HIGHLIGHT = range(6)
_FIRST_LEGEND = 6
_GREY, _LIGHT = "#999999", "#DDDDDD"
_RULE_COLORS = {
    "low_precision": "#E69F00",
    "explicit": "#0072B2",
    "excluded_node": "#D55E00",
    "excluded_op": "#CC79A7",
    "io_range": "#56B4E9",
    "depth": "#F0E442",
    "weak_typing": "#009E73",
    "autocast_region": "#000000",
    "getitem": "#BBBBBB",
    "removed": _GREY,
    "input/output": "#555555",
}
_MODULE_COLORS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000",
                  "#882255", "#44AA99", "#117733")
_MISMATCH_COLORS = {"match": "#56B4E9", "mismatch": "#D55E00", "TensorRT decides": _GREY, "not measured": _LIGHT}
_UNCHANGED, _RULE_ONLY = "unchanged", "accumulation or rule only"
_CHANGED_COLORS = {**{f"now {k}": c for k, c in dtypes.PALETTE.items()},
                   "now TensorRT decides": "#000000", _RULE_ONLY: "#882255", _UNCHANGED: _LIGHT}
_SEQUENTIAL = ("#440154", "#482878", "#3e4989", "#31688e", "#26828e", "#1f9e89", "#35b779", "#6ece58",
               "#b5de2b", "#fde725")  # viridis: colour-blind safe, light = high


class OverlayUnavailable(MixprecError, ValueError):
    """``color_by`` asks for measured data (a profile or accuracy result) that does not exist yet."""


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
            hover.append(_group_static_hover(path, [nodes[n] for n in names]))
            sizes.append(min(2.2 * base, base + 2.0 + 3.0 * math.log2(len(names))))
            symbols.append("hexagon")
            labels.append(f"\u2003{path} ({len(names)})")  # an em space clears the marker's rings
        else:
            info = nodes[k]
            hover.append(_node_static_hover(info))
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


_SYMBOL_OF_KIND = {"call_function": "circle", "input": "triangle-down", "output": "triangle-up"}


def clear_caches() -> None:
    """Forget cached layouts, views and hover text (for benchmarks of a cold draw)."""
    from . import layout

    layout._CACHE.clear()
    _VIEWS.clear()
    _record_hover.cache_clear()


def view_of(fig: go.Figure, explorer: Explorer) -> GraphView:
    """The view a figure made by :func:`build_figure` draws (from its ``layout.meta``)."""
    meta = (fig.layout.meta or {}).get("mixprec") if isinstance(fig.layout.meta, dict) else None
    if not meta:
        raise ValueError("this figure was not made by mixprec_explorer.viz.graph.build_figure")
    view = build_view(explorer, meta.get("group_by_module"), meta.get("expanded") or ())
    if len(fig.data) <= NODES or len(fig.data[NODES].x) != len(view):
        raise ValueError("the figure does not match this explorer's graph (rebuild it with build_figure)")
    return view


# -- hover text ---------------------------------------------------------------------------------------------
def _si(value: float) -> str:
    """1234567 -> '1.23 M'."""
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{value:g}"


def _tensors(shapes: tuple[tuple[int, ...], ...], types: tuple[Any, ...]) -> str:
    parts = [f"{tuple(s)} {dtypes.display_name(d)}" for s, d in zip(shapes[:4], types[:4])]
    if len(shapes) > 4:
        parts.append(f"+{len(shapes) - 4} more")
    return ", ".join(parts) or "-"


def _wrap(text: str, width: int = 90) -> str:
    lines, line = [], ""
    for word in text.split(" "):
        if line and len(line) + len(word) + 1 > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    lines.append(line)
    return "<br>   ".join(lines)


def _node_static_hover(info: NodeInfo) -> str:
    if info.kind != "call_function":
        what = "graph input" if info.kind == "input" else "graph output" if info.kind == "output" else info.kind
        return (f"<b>{info.name}</b> ({what})<br>shapes: "
                f"{_tensors(info.output_shapes or info.input_shapes, info.output_dtypes or info.input_dtypes)}")
    module = info.module or "(root)"
    return (f"<b>{info.name}</b>  {info.op}<br>module: {module}" + (f"  [{info.module_type}]" if info.module_type else "")
            + f"<br>in: {_tensors(info.input_shapes, info.input_dtypes)}"
            + f"<br>out: {_tensors(info.output_shapes, info.output_dtypes)}"
            + f"<br>FLOPs: {_si(info.flops)} · bytes: {_si(info.bytes_moved)} · params: {_si(info.param_count)}")


def _group_static_hover(path: str, infos: list[NodeInfo]) -> str:
    types = {i.module_type for i in infos if i.module == path and i.module_type}
    flops = sum(i.flops for i in infos)
    return (f"<b>module {path}</b>" + (f"  [{types.pop()}]" if len(types) == 1 else "")
            + f"<br>collapsed: {len(infos)} nodes (click to expand)<br>FLOPs: {_si(flops)}")


# -- colouring ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Coloring:
    values: np.ndarray  #: per point, mapped through colorscale
    colorscale: list[list[Any]]
    cmin: float
    cmax: float
    legend: tuple[tuple[str, str], ...]  #: (label, colour) for discrete colourings
    colorbar: dict[str, Any] | None  #: for continuous colourings


def node_errors(accuracy: Any) -> dict[str, float]:
    """Per-node relative error from an accuracy result (a mapping, or an object exposing one)."""
    if isinstance(accuracy, Mapping):
        return {str(k): float(v) for k, v in accuracy.items() if v is not None}
    for name in ("per_node_rel_l2", "node_errors", "per_node", "per_node_error"):
        found = getattr(accuracy, name, None)
        if callable(found):
            found = found()
        if isinstance(found, Mapping):
            return node_errors(found)
    raise OverlayUnavailable(
        f"this accuracy result ({type(accuracy).__name__}) has no per-node errors; "
        "measure them with ex.accuracy(compiled, per_node=True)")


@dataclass(frozen=True)
class _Overlay:
    latency_ms: dict[str, float] | None
    measured: dict[str, Any] | None
    errors: dict[str, float] | None
    total_ms: float
    sensitivity: Sensitivity | None = None
    other: PrecisionPlan | None = None  #: the plan compared with ("A"; the drawn plan is "B")
    labels: tuple[str, str] = ("A", "B")


def _overlay(explorer: Explorer, profile: Any, accuracy: Any, sensitivity: Sensitivity | None = None,
             compare_to: PrecisionPlan | Settings | None = None, compare_labels: tuple[str, str] = ("A", "B")
             ) -> _Overlay:
    profile = profile if profile is not None else explorer.extensions.get("profile")
    accuracy = accuracy if accuracy is not None else explorer.extensions.get("accuracy")
    sensitivity = sensitivity if sensitivity is not None else explorer.extensions.get("sensitivity")
    latency = measured = errors = None
    total = 0.0
    if profile is not None:
        latency = dict(profile.node_latency_ms())
        measured = dict(profile.node_dtypes())
        total = sum(latency.values())
    if accuracy is not None:
        try:
            errors = node_errors(accuracy)
        except OverlayUnavailable:
            errors = None
    other = as_plan(explorer, compare_to) if compare_to is not None else None
    return _Overlay(latency, measured, errors, total, sensitivity, other, compare_labels)


def as_plan(explorer: Explorer, plan: PrecisionPlan | Settings) -> PrecisionPlan:
    """A PrecisionPlan as given, or the explorer's plan of a Settings."""
    from ..policy import PrecisionPlan
    from ..settings import Settings

    if isinstance(plan, PrecisionPlan):
        return plan
    if isinstance(plan, Settings):
        return explorer.plan(plan)
    raise TypeError(f"expected a PrecisionPlan or Settings to compare with, got {type(plan).__name__}")


def _fmt(value: float) -> str:
    return "inf" if math.isinf(value) else f"{value:.3g}"


_SENSITIVITY_TEXT: list[tuple[Any, dict[str, str]]] = []  # a few recent results and their hover lines


def _sensitivity_text(sens: Sensitivity) -> dict[str, str]:
    """Hover lines per node (and "module:<path>") for one sensitivity result, made once per result."""
    for known, text in _SENSITIVITY_TEXT:
        if known is sens:
            return text
    low = dtypes.display_name(sens.low_dtype)
    rank = {name: i + 1 for i, (name, _) in enumerate(sens.ranking("node"))}
    out: dict[str, str] = {}
    for name, err in sens.node_low_error.items():
        gain = sens.node_fp32_gain.get(name)
        out[name] = (f"<br>sensitivity ({sens.metric}): alone in {low}: <b>{_fmt(err)}</b>"
                     + (f" · alone kept FP32: removes {_fmt(gain)} of all-{low} {_fmt(sens.all_low_error)}"
                        f" (#{rank[name]} of {len(rank)})" if gain is not None else ""))
    for module, err in sens.module_low_error.items():
        gain = sens.module_fp32_gain.get(module)
        out[GROUP_PREFIX + module] = (
            f"<br>module {module or '(root)'}: alone in {low}: {_fmt(err)}"
            + (f" · alone kept FP32: removes {_fmt(gain)}" if gain is not None else ""))
    _SENSITIVITY_TEXT.insert(0, (sens, out))
    del _SENSITIVITY_TEXT[4:]
    return out


def _change_label(rec: NodePrecision | None, other: NodePrecision | None) -> str:
    """The "changed" category of one node between plan A (``other``) and plan B (``rec``)."""
    if rec is None or other is None or rec.rule == "removed":
        return _UNCHANGED
    if rec.dtype != other.dtype:
        if rec.dtype is None:
            return "now TensorRT decides"
        shown = dtypes.display_name(rec.dtype)
        return f"now {shown if shown in dtypes.PALETTE else 'other'}"
    if (rec.accumulate_dtype, rec.rule) != (other.accumulate_dtype, other.rule):
        return _RULE_ONLY
    return _UNCHANGED


def _dtype_text(rec: NodePrecision | None) -> str:
    if rec is None:
        return "-"
    return dtypes.display_name(rec.dtype) if rec.dtype is not None else "TensorRT decides"


def changed_nodes(a: PrecisionPlan, b: PrecisionPlan, *, dtype_only: bool = True) -> list[str]:
    """Nodes of ``b`` whose dtype differs in ``a`` (with ``dtype_only=False``: accumulation or rule too)."""
    wanted = (lambda lab: lab not in (_UNCHANGED, _RULE_ONLY)) if dtype_only else (lambda lab: lab != _UNCHANGED)
    return [r.name for r in b if wanted(_change_label(r, a.get(r.name)))]


def _precision_label(explorer: Explorer, plan: PrecisionPlan, name: str) -> str:
    rec = plan.get(name)
    dtype = rec.dtype if rec is not None else explorer.nodes[name].dtype
    label = dtypes.display_name(dtype)
    return label if label in dtypes.PALETTE else "other"


def _point_labels(view: GraphView, explorer: Explorer, plan: PrecisionPlan, color_by: str, ov: _Overlay
                  ) -> list[str]:
    """One category per point for the discrete colourings (dominant member for a collapsed module)."""
    nodes = explorer.nodes

    def label(name: str) -> str:
        rec = plan.get(name)
        if color_by == "precision":
            return _precision_label(explorer, plan, name)
        if color_by == "reason":
            return rec.rule if rec is not None else "input/output"
        if color_by == "module":
            module = nodes[name].module
            return module.split(".")[0] if module else "(root)"
        if color_by == "changed":
            return _change_label(rec, ov.other.get(name) if ov.other is not None else None)
        got: Any = ov.measured.get(name, _MISSING) if ov.measured is not None else _MISSING
        if color_by == "measured_dtype":
            if got is _MISSING:
                return "not measured"
            shown = dtypes.display_name(got)
            return shown if shown in dtypes.PALETTE else "other"
        # mismatch
        if got is _MISSING or rec is None:
            return "not measured"
        if rec.dtype is None:
            return "TensorRT decides"
        return "match" if dtypes.display_name(got) == dtypes.display_name(rec.dtype) else "mismatch"

    out = []
    for names in view.members:
        if len(names) == 1:
            out.append(label(names[0]))
            continue
        counts = Counter(label(n) for n in names if nodes[n].removed_by is None)
        if color_by == "mismatch" and counts.get("mismatch"):
            out.append("mismatch")
        elif color_by == "changed" and set(counts) - {_UNCHANGED}:
            out.append(next(k for k, _ in counts.most_common() if k != _UNCHANGED))
        else:
            out.append(counts.most_common(1)[0][0] if counts else label(names[0]))
    return out


_MISSING = object()


def _discrete(labels: list[str], color_by: str) -> _Coloring:
    present = set(labels)
    if color_by in ("precision", "measured_dtype"):
        order = [k for k in dtypes.PALETTE if k in present or k in ("FP32", "FP16", "BF16", "other")]
        if color_by == "measured_dtype":
            order = [k for k in order if k in present] + (["not measured"] if "not measured" in present else [])
        colours = {**dtypes.PALETTE, "not measured": _LIGHT}
    elif color_by == "reason":
        order = [k for k in _RULE_COLORS if k in present]
        colours = _RULE_COLORS
    elif color_by == "mismatch":
        order = [k for k in _MISMATCH_COLORS if k in present]
        colours = _MISMATCH_COLORS
    elif color_by == "changed":
        order = [k for k in _CHANGED_COLORS if k in present]
        colours = _CHANGED_COLORS
    else:  # module: the most common top-level modules get colours, the rest fold into one grey
        ranked = [k for k, _ in Counter(labels).most_common()]
        keep = ranked[: LEGEND_SLOTS - 1] if len(ranked) > LEGEND_SLOTS else ranked
        colours = {k: _MODULE_COLORS[i % len(_MODULE_COLORS)] for i, k in enumerate(keep)}
        order = list(keep)
        if len(ranked) > len(keep):
            colours["other modules"] = _GREY
            order.append("other modules")
            labels = [lab if lab in colours else "other modules" for lab in labels]
    code = {k: i for i, k in enumerate(order)}
    values = np.array([code[lab] for lab in labels], dtype=float)
    k = max(1, len(order))
    scale: list[list[Any]] = []
    for i, lab in enumerate(order or ["other"]):
        c = colours.get(lab, _GREY)
        scale += [[i / k, c], [(i + 1) / k, c]]
    return _Coloring(values, scale, -0.5, k - 0.5, tuple((lab, colours.get(lab, _GREY)) for lab in order), None)


def _continuous(raw: list[float | None], title: str, log: bool, extremes: bool = False) -> _Coloring:
    """Sequential colours with a grey band below the scale for points without a value.

    With ``extremes``, a value of 0 sits at the bottom of the scale and +inf at the top, each with its own tick
    (an error of 0 or an overflow is a finding, not a missing value).
    """
    vals = np.array([np.nan if v is None else v for v in raw], dtype=float)
    zero = vals == 0 if extremes else np.zeros(len(vals), dtype=bool)
    inf = np.isposinf(vals) if extremes else np.zeros(len(vals), dtype=bool)
    if log:
        with np.errstate(divide="ignore", invalid="ignore"):
            vals = np.log10(np.where(vals > 0, vals, np.nan))
    finite = vals[np.isfinite(vals)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if hi <= lo:
        hi = lo + 1.0
    ends: list[tuple[float, str]] = []
    if zero.any() or inf.any():
        step = max(0.1 * (hi - lo), 0.5)
        if zero.any():
            vals[zero] = lo - step
            ends.append((lo - step, "0"))
        if inf.any():
            vals[inf] = hi + step
            ends.append((hi + step, "inf"))
        inner_lo, inner_hi = lo, hi
        lo, hi = (lo - step if zero.any() else lo), (hi + step if inf.any() else hi)
    else:
        inner_lo, inner_hi = lo, hi
    missing = not np.all(np.isfinite(vals))
    band = (hi - lo) * 0.06 if missing else 0.0
    cmin = lo - band
    vals = np.where(np.isfinite(vals), vals, cmin)
    f0 = band / (hi - cmin)
    n = len(_SEQUENTIAL)
    scale: list[list[Any]] = [[0.0, _LIGHT], [f0, _LIGHT]] if missing else []
    scale += [[f0 + (1 - f0) * i / (n - 1), c] for i, c in enumerate(_SEQUENTIAL)]
    ticks = list(np.linspace(inner_lo, inner_hi, 5 if finite.size > 1 else 1))
    if log:
        decades = list(range(math.floor(inner_lo), math.ceil(inner_hi) + 1))
        inside = [float(d) for d in decades if inner_lo <= d <= inner_hi]
        ticks = inside if len(inside) >= 2 else ticks
    if not finite.size:
        ticks = []
    text = [f"1e{int(t)}" if log and float(t).is_integer() else f"{(10 ** t if log else t):.3g}" for t in ticks]
    for where, label in ends:
        ticks.append(where)
        text.append(label)
    if missing:
        ticks, text = [cmin + band / 2, *ticks], ["n/a", *text]
    colorbar = {"title": {"text": title}, "tickvals": ticks, "ticktext": text, "len": 0.6, "thickness": 14}
    return _Coloring(vals, scale, cmin, hi, (), colorbar)


def _coloring(view: GraphView, explorer: Explorer, plan: PrecisionPlan, color_by: str, ov: _Overlay
              ) -> _Coloring:
    if color_by not in COLOR_BY:
        raise ValueError(f"color_by must be one of {', '.join(map(repr, COLOR_BY))}; got {color_by!r}")
    if color_by in ("latency", "measured_dtype", "mismatch") and ov.latency_ms is None:
        raise OverlayUnavailable(
            f"color_by={color_by!r} needs a profile: run ex.profile(ex.compile()) first, or pass profile=")
    if color_by == "error" and ov.errors is None:
        raise OverlayUnavailable(
            "color_by='error' needs per-node errors: run ex.accuracy(compiled, per_node=True) first, "
            "or pass accuracy= (a mapping node -> relative error)")
    if color_by == "sensitivity" and ov.sensitivity is None:
        raise OverlayUnavailable(
            "color_by='sensitivity' needs a sensitivity result: run ex.sensitivity(inputs) first, "
            "or pass sensitivity=")
    if color_by == "changed" and ov.other is None:
        raise OverlayUnavailable(
            "color_by='changed' needs a plan to compare with: pass compare_to= (a PrecisionPlan or Settings)")
    if color_by == "latency":
        lat = ov.latency_ms or {}
        raw = [sum(lat[n] for n in names if n in lat) if any(n in lat for n in names) else None
               for names in view.members]
        return _continuous(raw, "latency (ms)", log=False)
    if color_by == "error":
        err = ov.errors or {}
        raw = [max((err[n] for n in names if n in err), default=None) for names in view.members]
        return _continuous(raw, "relative error", log=True)
    if color_by == "sensitivity":
        sens = ov.sensitivity
        assert sens is not None
        low = sens.node_low_error
        raw = [max((low[n] for n in names if n in low), default=None) for names in view.members]
        return _continuous(raw, f"{sens.metric}, only this node {dtypes.display_name(sens.low_dtype)}", log=True,
                           extremes=True)
    return _discrete(_point_labels(view, explorer, plan, color_by, ov), color_by)


# -- per-plan hover and overlays ---------------------------------------------------------------------------------
def _plan_hover(view: GraphView, explorer: Explorer, plan: PrecisionPlan, ov: _Overlay) -> list[str]:
    out = []
    sens_text = _sensitivity_text(ov.sensitivity) if ov.sensitivity is not None else None
    for key, static, names in zip(view.keys, view.static_hover, view.members):
        if len(names) == 1:
            text = static + _node_dynamic_hover(explorer, plan, ov, names[0])
            if sens_text is not None and names[0] in sens_text:
                text += sens_text[names[0]] + sens_text.get(GROUP_PREFIX + explorer.nodes[names[0]].module, "")
            out.append(text)
            continue
        recs = [plan.get(n) for n in names]
        live = [r for r in recs if r is not None and r.rule != "removed"]
        mix = Counter(_precision_label(explorer, plan, r.name) for r in live)
        rules = Counter(r.rule for r in live)
        text = static + "<br>precisions: " + " · ".join(f"{k} {v}" for k, v in mix.most_common())
        text += "<br>rules: " + ", ".join(f"{k} {v}" for k, v in rules.most_common())
        excluded = sum(r.is_excluded for r in live)
        acc = sum(r.accumulate_dtype is not None for r in live)
        if excluded:
            text += f"<br>excluded from autocast: {excluded} of {len(live)}"
        if acc:
            text += f"<br>FP32 accumulation: {acc}"
        if ov.latency_ms is not None:
            ms = sum(ov.latency_ms.get(n, 0.0) for n in names)
            text += f"<br>measured: {ms:.4g} ms" + (f" ({ms / ov.total_ms:.1%})" if ov.total_ms else "")
        if ov.errors is not None:
            worst = max((ov.errors[n] for n in names if n in ov.errors), default=None)
            if worst is not None:
                text += f"<br>max relative error: {worst:.3g}"
        if sens_text is not None and ov.sensitivity is not None:
            low = ov.sensitivity.node_low_error
            worst = max((low[n] for n in names if n in low), default=None)
            if worst is not None:
                text += f"<br>most sensitive node, alone in low precision: {_fmt(worst)}"
            text += sens_text.get(key, "")
        if ov.other is not None:
            moved = Counter(_change_label(r, ov.other.get(r.name)) for r in live)
            moved.pop(_UNCHANGED, None)
            if moved:
                a, b = ov.labels
                text += f"<br>{a} \u2192 {b}: " + ", ".join(f"{k} {v}" for k, v in moved.most_common())
        out.append(text)
    return out


@functools.lru_cache(maxsize=1 << 16)
def _record_hover(rec: NodePrecision) -> str:
    """The predicted part of a node's hover (records are reused across incremental plans, so this caches well)."""
    acc = dtypes.display_name(rec.accumulate_dtype) if rec.accumulate_dtype is not None else "-"
    shown = "none (removed before autocast)" if rec.rule == "removed" else \
        dtypes.display_name(rec.dtype) if rec.dtype is not None else "TensorRT decides"
    return f"<br>dtype: <b>{shown}</b> · accumulate: {acc}<br>rule: {rec.rule}: {_wrap(rec.reason)}"


def _node_dynamic_hover(explorer: Explorer, plan: PrecisionPlan, ov: _Overlay, name: str) -> str:
    rec = plan.get(name)
    if rec is None:
        return f"<br>dtype: {dtypes.display_name(explorer.nodes[name].dtype)} (as given)"
    text = _record_hover(rec)
    if ov.measured is not None:
        shown = dtypes.display_name(rec.dtype) if rec.dtype is not None else "TensorRT decides"
        if name in ov.measured:
            got = dtypes.display_name(ov.measured[name])
            ms = (ov.latency_ms or {}).get(name)
            text += f"<br>measured: {got}" + (f" · {ms:.4g} ms" if ms is not None else "")
            if ms is not None and ov.total_ms:
                text += f" ({ms / ov.total_ms:.1%})"
            if rec.dtype is not None and got != shown:
                text += f"  <b>differs from predicted {shown}</b>"
        else:
            text += "<br>measured: not attributed"
    if ov.errors is not None and name in ov.errors:
        text += f"<br>relative error: {ov.errors[name]:.3g}"
    if ov.other is not None:
        other = ov.other.get(name)
        a, b = ov.labels
        if _change_label(rec, other) == _UNCHANGED:
            text += f"<br>{a} \u2192 {b}: unchanged"
        else:
            text += f"<br><b>{a} \u2192 {b}: {_dtype_text(other)} \u2192 {_dtype_text(rec)}</b>"
            if other is not None and other.rule != rec.rule:
                text += f" (rule {other.rule} \u2192 {rec.rule})"
            if other is not None and other.accumulate_dtype != rec.accumulate_dtype:
                text += (f" (accumulate {dtypes.display_name(other.accumulate_dtype) if other.accumulate_dtype else '-'}"
                         f" \u2192 {dtypes.display_name(rec.accumulate_dtype) if rec.accumulate_dtype else '-'})")
    return text


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
            mix = Counter(_precision_label(explorer, plan, r.name) for r in recs).most_common()
            if len(mix) > 1:
                mixed.append(i)
                ring.append(dtypes.PALETTE.get(mix[1][0], _GREY))
    return {EXCLUDED: (excluded, []), ACCUMULATE: (acc, []), MIXED: (mixed, ring)}


# -- the figure ---------------------------------------------------------------------------------------------
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


def _title(explorer: Explorer, plan: PrecisionPlan, view: GraphView, color_by: str, ov: _Overlay) -> str:
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
    ov = _overlay(explorer, profile, accuracy, sensitivity, compare_to, compare_labels)
    coloring = _coloring(view, explorer, plan, color_by, ov)
    kind = go.Scattergl if len(view) > GL_THRESHOLD else go.Scatter
    traces: list[Any] = [
        kind(x=view.edge_x, y=view.edge_y, mode="lines", name="edges", hoverinfo="skip", showlegend=False,
             line={"color": "#B8B8B8", "width": 1}),
        kind(x=view.x, y=view.y, mode="markers+text" if view.labels else "markers", name="nodes",
             customdata=np.array(view.keys, dtype=object), text=list(view.labels) if view.labels else None,
             textposition="middle right", textfont={"size": 10, "color": "#555555"},
             hovertext=_plan_hover(view, explorer, plan, ov), hoverinfo="text", showlegend=False,
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
                          visible=False, marker={"size": 11, "symbol": "circle", "color": _GREY})
               for i in range(LEGEND_SLOTS)]
    # keys for the marks, always in the legend (a trace without points would drop out of it)
    traces += [go.Scatter(x=[None], y=[None], mode="markers", name=name, hoverinfo="skip", legendrank=900 + i,
                          visible=index != MIXED or view.group_by_module is not None,
                          marker={**_mark(index), "size": 13 if index != ACCUMULATE else 9,
                                  **({"color": _GREY} if index == MIXED else {})})
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
    ov = _overlay(explorer, profile, accuracy, sensitivity, compare_to, compare_labels)
    coloring = _coloring(view, explorer, plan, color_by, ov)
    _apply(fig, view, explorer, plan, color_by, ov, coloring, hover=True)


def _apply(fig: go.Figure, view: GraphView, explorer: Explorer, plan: PrecisionPlan, color_by: str, ov: _Overlay,
           coloring: _Coloring, *, hover: bool) -> None:
    marks = _marks(view, explorer, plan)
    hovertext = _plan_hover(view, explorer, plan, ov) if hover else None
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
