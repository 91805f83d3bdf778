"""Charts of measured results: per-layer latency sorted by cost, and sensitivity sorted by error removed."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import plotly.graph_objects as go

from ..dtypes import PALETTE, display_name
from ..errors import OptionError
from ..numbers import format_number
from ..records import LayerRecord

if TYPE_CHECKING:
    from ..results import Sensitivity

__all__ = ["build_latency_chart", "build_sensitivity_chart", "layer_hover"]


def _layers(profile: Any) -> list[tuple[LayerRecord, bool]]:
    """(layer, attributed) pairs from a Profile, or from an iterable of LayerRecords (all attributed)."""
    if hasattr(profile, "layers"):
        return [(r, True) for r in profile.layers] + [(r, False) for r in getattr(profile, "unattributed", ())]
    return [(r, True) for r in profile]


def _label(rank: int, layer: LayerRecord, attributed: bool) -> str:
    name = layer.name if len(layer.name) <= 60 else layer.name[:28] + "..." + layer.name[-29:]
    return f"#{rank} {name}" + ("" if attributed else " (unattributed)")


def layer_hover(layer: LayerRecord, attributed: bool, total_ms: float) -> str:
    """One engine layer's hover: kernel, type, dtypes in and out, latency and share, FX nodes, match (HTML)."""
    names = ", ".join(display_name(d) for d in layer.output_dtypes) or "-"
    ins = ", ".join(display_name(d) for d in layer.input_dtypes) or "-"
    text = (f"<b>{layer.name}</b><br>type: {layer.layer_type or '-'}<br>in: {ins} · out: {names}"
            + (f" · accumulate: {display_name(layer.accumulate_dtype)}" if layer.accumulate_dtype else "")
            + f"<br>latency: {layer.latency_ms:.4g} ms")
    share = layer.share if layer.share is not None else (layer.latency_ms or 0.0) / total_ms if total_ms else None
    if share is not None:
        text += f" ({share:.1%})"
    if layer.on_second_stream:
        text += "<br>on a second stream beside the main one: its time overlaps it (not all of it adds to end to end)"
    if layer.tactic:
        text += f"<br>tactic: {layer.tactic}"
    if layer.nodes:
        shown = ", ".join(layer.nodes[:6]) + (f" +{len(layer.nodes) - 6}" if len(layer.nodes) > 6 else "")
        text += f"<br>FX nodes: {shown}"
    if layer.node_dtypes:
        text += f"<br>computes in: {', '.join(sorted({display_name(d) for _, d in layer.node_dtypes}))}"
    if layer.modules:
        text += f"<br>modules: {', '.join(layer.modules[:4])}"
    match = layer.extra.get("match", {})
    if match:
        text += f"<br>match: {match.get('confidence', '?')} ({str(match.get('why', ''))[:90]})"
    if not attributed:
        text += "<br><i>not mapped to any FX node</i>"
    return text


def build_latency_chart(profile: Any | Iterable[LayerRecord], *, top: int = 40, title: str | None = None,
                        height: int | None = None) -> go.Figure:
    """Horizontal bars of per-layer latency (ms), most expensive first, coloured by the layer's output dtype.

    ``profile`` is a :class:`~mixprec_explorer.backends.base.Profile` (attributed and unattributed layers)
    or any iterable of :class:`~mixprec_explorer.records.LayerRecord`; layers without a latency are left out,
    and only the ``top`` most expensive are drawn.
    """
    rows = [(r, a) for r, a in _layers(profile) if r.latency_ms is not None]
    total_ms = sum(r.latency_ms or 0.0 for r, _ in rows)
    rows.sort(key=lambda ra: -(ra[0].latency_ms or 0.0))
    shown = rows[: max(1, top)]
    labels = [_label(i + 1, r, a) for i, (r, a) in enumerate(shown)]
    groups: dict[str, list[int]] = {}
    for i, (r, _) in enumerate(shown):
        key = display_name(r.output_dtypes[0] if r.output_dtypes else None)
        groups.setdefault(key if key in PALETTE else "other", []).append(i)
    order = [k for k in PALETTE if k in groups]
    fig = go.Figure(layout={
        "template": "plotly_white",
        "height": height or max(300, 90 + 20 * len(shown)),
        "margin": {"l": 10, "r": 10, "t": 50, "b": 40},
        "barmode": "overlay",
        "xaxis": {"title": {"text": "latency (ms)"}},
        "yaxis": {"categoryorder": "array", "categoryarray": labels, "autorange": "reversed", "automargin": True},
        "legend": {"title": {"text": "output dtype"}},
        "title": {"text": title or (f"Per-layer latency: top {len(shown)} of {len(rows)} layers, "
                                    f"{total_ms:.4g} ms in all"), "font": {"size": 13}},
        "meta": {"mixprec": {"kind": "latency_chart"}},
    })
    for key in order:
        idx = groups[key]
        fig.add_bar(
            orientation="h", name=key, marker_color=PALETTE[key],
            x=[shown[i][0].latency_ms for i in idx], y=[labels[i] for i in idx],
            hovertext=[layer_hover(shown[i][0], shown[i][1], total_ms) for i in idx], hoverinfo="text",
        )
    return fig


def _log_lengths(values: list[float]) -> list[float]:
    """Bar lengths on a log axis: +inf one decade past the largest finite value, 0 or less one decade below the
    smallest positive one, NaN kept (no bar). The bars' text gives the true values."""
    positive = [v for v in values if 0 < v < math.inf]
    floor, ceiling = min(positive, default=0.1) / 10, max(positive, default=0.1) * 10
    return [v if math.isnan(v) else ceiling if v == math.inf else floor if v <= 0 else v for v in values]


def build_sensitivity_chart(sensitivity: Sensitivity, by: str = "module", top: int = 30, *,
                            title: str | None = None, height: int | None = None) -> go.Figure:
    """Horizontal bars per module (or node), most helpful to keep in FP32 first, on a log axis.

    Two bars each: the error removed when only it is kept in FP32 (from the all-low-precision plan), and
    the error when only it runs in low precision. An infinite value (overflow) is drawn past the largest
    finite one and labelled ``inf``; a value of 0 or less sits at the axis floor, labelled with its value.

    Parameters
    ----------
    sensitivity: the result of ``ex.sensitivity(inputs)``.
    by: "module" or "node".
    top: how many of the ranking to draw.

    >>> import math
    >>> from mixprec_explorer.sensitivity import Sensitivity
    >>> import torch
    >>> s = Sensitivity("rel_l2", torch.float16, math.inf, {}, {}, {"fc": 1e-3, "act": math.inf},
    ...                 {"fc": 0.0, "act": math.inf}, 0, 0)
    >>> list(build_sensitivity_chart(s).data[0].y)
    ['act', 'fc']
    """
    if by not in ("module", "node"):
        raise OptionError(f"by must be 'module' or 'node', got {by!r}")
    ranking = sensitivity.ranking(by)
    low = sensitivity.module_low_error if by == "module" else sensitivity.node_low_error
    shown = ranking[: max(1, top)]
    names = [name or "(root)" for name, _ in shown]
    gains = [gain for _, gain in shown]
    lows = [low.get(name, math.nan) for name, _ in shown]
    low_name = display_name(sensitivity.low_dtype)
    lengths = _log_lengths(gains + lows)
    gain_len, low_len = lengths[: len(gains)], lengths[len(gains):]
    metric = sensitivity.metric
    kept = f"only it kept in FP32: error removed (all-{low_name} error {format_number(sensitivity.all_low_error)})"
    alone = f"only it in {low_name}: error"
    fig = go.Figure(layout={
        "template": "plotly_white",
        "height": height or max(300, 100 + 34 * len(shown)),
        "margin": {"l": 10, "r": 10, "t": 70, "b": 40},
        "barmode": "group",
        "xaxis": {"title": {"text": f"{metric} (log scale)"}, "type": "log"},
        "yaxis": {"categoryorder": "array", "categoryarray": names, "autorange": "reversed", "automargin": True},
        "legend": {"orientation": "h", "yanchor": "bottom", "y": 1.0, "x": 0.0},
        "title": {"text": title or (f"Sensitivity by {by}: top {len(shown)} of {len(ranking)}, "
                                    f"most helpful in FP32 first"), "font": {"size": 13}},
        "meta": {"mixprec": {"kind": "sensitivity_chart", "by": by}},
    })
    fig.add_bar(orientation="h", name=kept, y=names, x=gain_len, marker_color=PALETTE["FP32"],
                text=[format_number(v) for v in gains], textposition="outside",
                hovertext=[f"<b>{n}</b><br>kept in FP32 alone: removes {format_number(g)} of {format_number(sensitivity.all_low_error)}"
                           for n, g in zip(names, gains)], hoverinfo="text")
    fig.add_bar(orientation="h", name=alone, y=names, x=low_len,
                marker_color=PALETTE.get(low_name, PALETTE["other"]),
                text=["" if math.isnan(v) else format_number(v) for v in lows], textposition="outside",
                hovertext=[f"<b>{n}</b><br>alone in {low_name}: {metric} {'n/a' if math.isnan(v) else format_number(v)}"
                           for n, v in zip(names, lows)], hoverinfo="text")
    return fig
