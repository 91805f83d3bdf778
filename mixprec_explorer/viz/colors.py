"""Node colours of the graph figure for each ``color_by`` mode, and the colour scales they map through.

A point's colour is one number through a colourscale, so a recolour sends one float array. Discrete modes
(precision, reason, module, measured_dtype, mismatch, changed, range) give each point a category (the dominant
member's for a collapsed module; for range the worst) and each category a step of the scale and a legend entry; continuous modes (latency,
error, sensitivity, fp32_cost) map values through viridis, with a grey band below it for points without a value.
A colouring may add a line to each point's hover text (:attr:`Coloring.hover`; fp32_cost: the predicted ms; range:
the calibrated |x| max against the low-precision type's limits). The mismatch colouring gives a mismatch the engine's
kernels explain its reason as category (:func:`mismatch_explanations`: norm statistics kept FP32), so the red ones
are those nobody has explained.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..calibration import range_limits
from ..dtypes import PALETTE, display_name
from ..errors import OptionError
from ..numbers import format_number
from ..parsers.mismatch import FP32_OPERAND, NORM_STATISTICS, REASONS, mismatch_reasons
from .overlay import Overlay, OverlayUnavailable

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ..policy import PrecisionPlan
    from ..records import CalibrationStat, NodeInfo, NodePrecision
    from .layout import GraphView

__all__ = [
    "CHANGED_COLORS",
    "COLOR_BY",
    "GREY",
    "LEGEND_SLOTS",
    "FP32_COST",
    "LIGHT",
    "MISMATCH_COLORS",
    "MODULE_COLORS",
    "RANGE",
    "RANGE_COLORS",
    "RULE_COLORS",
    "RULE_ONLY",
    "SEQUENTIAL",
    "UNCHANGED",
    "Coloring",
    "change_label",
    "changed_nodes",
    "color_points",
    "mismatch_explanations",
    "precision_label",
    "with_hover",
]

#: Values ``color_by`` accepts. "latency", "measured_dtype" and "mismatch" need a profile, "error" an accuracy
#: result, "sensitivity" a sensitivity result, "fp32_cost" each node's predicted cost of staying FP32 (the
#: what-if's calibration: all-FP32 and all-low profiles on one backend), "range" the calibration
#: (``ex.calibrate``), "changed" a plan to compare with.
COLOR_BY = ("precision", "reason", "module", "latency", "measured_dtype", "error", "mismatch", "sensitivity",
            "fp32_cost", "range", "changed")
#: The "cost of staying FP32" colouring: each node's predicted ms saved by running it in low precision.
FP32_COST = "fp32_cost"
#: The calibrated range colouring: where each node's reference |x| max sits against the plan's low-precision type
#: (FP16 where the plan has none), before any compile.
RANGE = "range"
#: Legend slots for colour categories (module colouring folds the rest into "other modules").
LEGEND_SLOTS = 12
GREY, LIGHT = "#999999", "#DDDDDD"
RULE_COLORS = {
    "low_precision": "#E69F00",
    "explicit": "#0072B2",
    "excluded_node": "#D55E00",
    "excluded_op": "#CC79A7",
    "io_range": "#56B4E9",
    "depth": "#F0E442",
    "weak_typing": "#009E73",
    "autocast_region": "#000000",
    "getitem": "#BBBBBB",
    "removed": GREY,
    "input/output": "#555555",
}
MODULE_COLORS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000",
                 "#882255", "#44AA99", "#117733")
#: "range" categories, worst first (a collapsed module takes its worst member's).
RANGE_COLORS = {"overflow": "#D55E00", "underflow, all 0": "#882255", "underflow": "#E69F00",
                "outside, kept FP32": "#0072B2", "in range": "#B7D9EE", "no range": LIGHT}
#: "mismatch" categories: a mismatch the engine's kernels explain takes its reason (parsers.mismatch.REASONS)
MISMATCH_COLORS = {"match": "#56B4E9", "mismatch": "#D55E00", NORM_STATISTICS: "#CC79A7", FP32_OPERAND: "#009E73",
                   "TensorRT decides": GREY, "not measured": LIGHT}
UNCHANGED, RULE_ONLY = "unchanged", "accumulation or rule only"
CHANGED_COLORS = {**{f"now {k}": c for k, c in PALETTE.items()},
                  "now TensorRT decides": "#000000", RULE_ONLY: "#882255", UNCHANGED: LIGHT}
SEQUENTIAL = ("#440154", "#482878", "#3e4989", "#31688e", "#26828e", "#1f9e89", "#35b779", "#6ece58",
              "#b5de2b", "#fde725")  # viridis: colour-blind safe, light = high


@dataclass(frozen=True)
class Coloring:
    """The node trace's colour of every point, and what the legend or colour bar shows for it."""

    values: np.ndarray  #: per point, mapped through colorscale
    colorscale: list[list[Any]]
    cmin: float
    cmax: float
    legend: tuple[tuple[str, str], ...]  #: (label, colour) for discrete colourings
    colorbar: dict[str, Any] | None  #: for continuous colourings
    hover: tuple[str, ...] | None = None  #: per point, text this colouring adds to the hover (None: nothing)


def with_hover(texts: list[str], coloring: Coloring) -> list[str]:
    """Each point's hover text with what ``coloring`` adds to it (``texts`` itself where it adds nothing)."""
    if coloring.hover is None:
        return texts
    return [text + extra for text, extra in zip(texts, coloring.hover)]


def _cost_coloring(view: GraphView, costs: Mapping[str, float]) -> Coloring:
    """fp32_cost: each point's predicted ms (a collapsed module: the sum over its nodes), and the ms in its hover."""
    raw: list[float | None] = []
    hover: list[str] = []
    for names in view.members:
        known = [costs[n] for n in names if n in costs]
        if not known:
            raw.append(None)
            hover.append("")
            continue
        ms = sum(known)
        raw.append(ms)
        how = "over running it in low precision" if len(names) == 1 else f"summed over {len(known)} nodes"
        slower = " (low precision is the slower here)" if ms < 0 else ""
        hover.append(f"<br>cost of staying FP32: <b>{format_number(ms)} ms</b> predicted {how}{slower}")
    coloring = _continuous(raw, "cost of staying FP32 (ms)", log=False)
    return dataclasses.replace(coloring, hover=tuple(hover))


def change_label(rec: NodePrecision | None, other: NodePrecision | None) -> str:
    """The "changed" category of one node between plan A (``other``) and plan B (``rec``)."""
    if rec is None or other is None or rec.rule == "removed":
        return UNCHANGED
    if rec.dtype != other.dtype:
        if rec.dtype is None:
            return "now TensorRT decides"
        shown = display_name(rec.dtype)
        return f"now {shown if shown in PALETTE else 'other'}"
    if (rec.accumulate_dtype, rec.rule) != (other.accumulate_dtype, other.rule):
        return RULE_ONLY
    return UNCHANGED


def changed_nodes(a: PrecisionPlan, b: PrecisionPlan, *, dtype_only: bool = True) -> list[str]:
    """Nodes of ``b`` whose dtype differs in ``a`` (with ``dtype_only=False``: accumulation or rule too)."""
    wanted = (lambda lab: lab not in (UNCHANGED, RULE_ONLY)) if dtype_only else (lambda lab: lab != UNCHANGED)
    return [r.name for r in b if wanted(change_label(r, a.get(r.name)))]


def precision_label(nodes: Mapping[str, NodeInfo], plan: PrecisionPlan, name: str) -> str:
    """The "precision" category of one node: its planned dtype's palette name, or "other"."""
    rec = plan.get(name)
    dtype = rec.dtype if rec is not None else nodes[name].dtype
    label = display_name(dtype)
    return label if label in PALETTE else "other"


def mismatch_explanations(plan: PrecisionPlan, ov: Overlay) -> dict[str, str | None]:
    """Each node whose measured dtype differs from ``plan``'s -> why, where the engine's kernels show it (one of
    :data:`~mixprec_explorer.parsers.mismatch.REASONS`; None: unexplained); empty without a profile.

    The same nodes and reasons as the profile's ``dtype_mismatches(plan)``: the overlay carries each node's engine
    layers and their input dtypes.
    """
    if ov.measured is None:
        return {}
    kernels = {node: tuple(shown.split(" (", 1)[0] for shown in ran)  # "name (exact, second stream)" -> name
               for node, ran in (ov.layers or {}).items()}
    return mismatch_reasons(plan, ov.measured, kernels, ov.reads)


def _point_labels(view: GraphView, nodes: Mapping[str, NodeInfo], plan: PrecisionPlan, color_by: str, ov: Overlay
                  ) -> list[str]:
    """One category per point for the discrete colourings (dominant member for a collapsed module)."""
    why = mismatch_explanations(plan, ov) if color_by == "mismatch" else {}

    def label(name: str) -> str:
        rec = plan.get(name)
        if color_by == "precision":
            return precision_label(nodes, plan, name)
        if color_by == "reason":
            return rec.rule if rec is not None else "input/output"
        if color_by == "module":
            module = nodes[name].module
            return module.split(".")[0] if module else "(root)"
        if color_by == "changed":
            return change_label(rec, ov.other.get(name) if ov.other is not None else None)
        got: Any = ov.measured.get(name, _MISSING) if ov.measured is not None else _MISSING
        if color_by == "measured_dtype":
            if got is _MISSING:
                return "not measured"
            shown = display_name(got)
            return shown if shown in PALETTE else "other"
        # mismatch
        if got is _MISSING or rec is None:
            return "not measured"
        if rec.dtype is None:
            return "TensorRT decides"
        if name not in why:
            return "match"
        return why[name] or "mismatch"

    out = []
    for names in view.members:
        if len(names) == 1:
            out.append(label(names[0]))
            continue
        counts = Counter(label(n) for n in names if nodes[n].removed_by is None)
        if color_by == "mismatch" and (counts.get("mismatch") or counts.keys() & set(REASONS)):
            # an unexplained mismatch shows first, then the most common explained one
            out.append("mismatch" if counts.get("mismatch") else max(REASONS, key=lambda r: counts.get(r, 0)))
        elif color_by == "changed" and set(counts) - {UNCHANGED}:
            out.append(next(k for k, _ in counts.most_common() if k != UNCHANGED))
        else:
            out.append(counts.most_common(1)[0][0] if counts else label(names[0]))
    return out


_MISSING = object()


def _discrete(labels: list[str], color_by: str) -> Coloring:
    present = set(labels)
    if color_by in ("precision", "measured_dtype"):
        order = [k for k in PALETTE if k in present or k in ("FP32", "FP16", "BF16", "other")]
        if color_by == "measured_dtype":
            order = [k for k in order if k in present] + (["not measured"] if "not measured" in present else [])
        colours = {**PALETTE, "not measured": LIGHT}
    elif color_by == "reason":
        order = [k for k in RULE_COLORS if k in present]
        colours = RULE_COLORS
    elif color_by == "mismatch":
        order = [k for k in MISMATCH_COLORS if k in present]
        colours = MISMATCH_COLORS
    elif color_by == "changed":
        order = [k for k in CHANGED_COLORS if k in present]
        colours = CHANGED_COLORS
    elif color_by == RANGE:
        order = [k for k in RANGE_COLORS if k in present]
        colours = RANGE_COLORS
    else:  # module: the most common top-level modules get colours, the rest fold into one grey
        ranked = [k for k, _ in Counter(labels).most_common()]
        keep = ranked[: LEGEND_SLOTS - 1] if len(ranked) > LEGEND_SLOTS else ranked
        colours = {k: MODULE_COLORS[i % len(MODULE_COLORS)] for i, k in enumerate(keep)}
        order = list(keep)
        if len(ranked) > len(keep):
            colours["other modules"] = GREY
            order.append("other modules")
            labels = [lab if lab in colours else "other modules" for lab in labels]
    code = {k: i for i, k in enumerate(order)}
    values = np.array([code[lab] for lab in labels], dtype=float)
    k = max(1, len(order))
    scale: list[list[Any]] = []
    for i, lab in enumerate(order or ["other"]):
        c = colours.get(lab, GREY)
        scale += [[i / k, c], [(i + 1) / k, c]]
    return Coloring(values, scale, -0.5, k - 0.5, tuple((lab, colours.get(lab, GREY)) for lab in order), None)


def _continuous(raw: list[float | None], title: str, log: bool, extremes: bool = False) -> Coloring:
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
    n = len(SEQUENTIAL)
    scale: list[list[Any]] = [[0.0, LIGHT], [f0, LIGHT]] if missing else []
    scale += [[f0 + (1 - f0) * i / (n - 1), c] for i, c in enumerate(SEQUENTIAL)]
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
    return Coloring(vals, scale, cmin, hi, (), colorbar)


def _range_coloring(view: GraphView, plan: PrecisionPlan, calibration: Mapping[str, CalibrationStat]) -> Coloring:
    """range: each point's category against the plan's low type (the worst member's for a collapsed module), the
    legend naming the type's limits, and the calibrated |x| max in the hover."""
    low = plan.settings.autocast_low_precision_type or torch.float16
    name, autocast = display_name(low), plan.settings.autocast_active
    tiny, normal, top = range_limits(low)
    says = {"overflow": f"above {name}'s max {top:.6g}: inf in {name}",
            "underflow, all 0": f"below {format_number(tiny / 2, 2)}, half {name}'s smallest subnormal: 0 in {name}",
            "underflow": f"below {name}'s smallest normal {format_number(normal, 2)}: subnormal in {name}, "
                         "precision lost",
            "outside, kept FP32": f"outside {name}'s normal range; this plan keeps it FP32",
            "in range": f"within {name}'s normal range"}

    def label(node: str) -> str:
        stat = calibration.get(node)
        if stat is None:
            return "no range"
        issue = stat.range_issue(low)
        if issue is None:
            return "in range"
        rec = plan.get(node)
        if autocast and (rec is None or rec.dtype != low):
            return "outside, kept FP32"
        return issue if issue == "overflow" or stat.max_abs > tiny / 2 else "underflow, all 0"

    worst = list(RANGE_COLORS)
    labels, hover = [], []
    for names in view.members:
        each = [label(n) for n in names]
        labels.append(min(each, key=worst.index))
        if len(names) == 1:
            stat = calibration.get(names[0])
            hover.append("" if stat is None else f"<br>calibrated |x| max {format_number(stat.max_abs, 2)}: "
                                                 f"{says[each[0]]}")
        else:
            outside = [n for n, lab in zip(names, each) if lab not in ("in range", "no range")]
            hover.append(f"<br>calibrated ranges: {len(outside)} of {len(names)} nodes outside {name}'s"
                         + (f" (first {outside[0]})" if outside else ""))
    coloring = _discrete(labels, RANGE)
    shown = {"overflow": f"{name} overflow (> {top:.6g})",
             "underflow, all 0": f"{name} underflow, all 0 (< {format_number(tiny / 2, 2)})",
             "underflow": f"{name} underflow (< {format_number(normal, 2)})",
             "outside, kept FP32": f"outside {name}, kept FP32", "in range": f"within {name}",
             "no range": "no calibrated range"}
    return dataclasses.replace(coloring, legend=tuple((shown.get(k, k), c) for k, c in coloring.legend),
                               hover=tuple(hover))


def color_points(view: GraphView, nodes: Mapping[str, NodeInfo], plan: PrecisionPlan, color_by: str, ov: Overlay
                 ) -> Coloring:
    """The colouring of every point of ``view`` (drawing ``nodes``) by ``color_by`` (see :data:`COLOR_BY`).

    Raises :class:`OverlayUnavailable` when the mode needs a result or plan that ``ov`` lacks.
    """
    if color_by not in COLOR_BY:
        raise OptionError(f"color_by must be one of {', '.join(map(repr, COLOR_BY))}; got {color_by!r}")
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
    if color_by == FP32_COST:
        if not ov.fp32_cost_ms:
            raise OverlayUnavailable(
                f"color_by={FP32_COST!r} needs the what-if's calibration (an all-FP32 and an all-low profile on one "
                "backend): click 'Calibrate what-if' in the widget, or run "
                "ex.measure_calibration(backend=...)")
        return _cost_coloring(view, ov.fp32_cost_ms)
    if color_by == RANGE:
        if not ov.calibration:
            raise OverlayUnavailable(
                "color_by='range' needs calibrated ranges: run ex.calibrate(batches) first, e.g. "
                "ex.calibrate([ex.example_inputs]) (or pass calibration= to build_figure)")
        return _range_coloring(view, plan, ov.calibration)
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
        return _continuous(raw, f"{sens.metric}, only this node {display_name(sens.low_dtype)}", log=True,
                           extremes=True)
    return _discrete(_point_labels(view, nodes, plan, color_by, ov), color_by)

