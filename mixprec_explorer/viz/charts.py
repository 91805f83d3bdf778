"""Charts of measured results: per-layer latency, sorted by cost, coloured by the measured dtype."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import plotly.graph_objects as go

from .. import dtypes
from ..records import LayerRecord

__all__ = ["build_latency_chart"]


def _layers(profile: Any) -> list[tuple[LayerRecord, bool]]:
    """(layer, attributed) pairs from a Profile, or from an iterable of LayerRecords (all attributed)."""
    if hasattr(profile, "layers"):
        return [(r, True) for r in profile.layers] + [(r, False) for r in getattr(profile, "unattributed", ())]
    return [(r, True) for r in profile]


def _label(rank: int, layer: LayerRecord, attributed: bool) -> str:
    name = layer.name if len(layer.name) <= 60 else layer.name[:28] + "..." + layer.name[-29:]
    return f"#{rank} {name}" + ("" if attributed else " (unattributed)")


def _hover(layer: LayerRecord, attributed: bool, total_ms: float) -> str:
    names = ", ".join(dtypes.display_name(d) for d in layer.output_dtypes) or "-"
    ins = ", ".join(dtypes.display_name(d) for d in layer.input_dtypes) or "-"
    text = (f"<b>{layer.name}</b><br>type: {layer.layer_type or '-'}<br>in: {ins} · out: {names}"
            + (f" · accumulate: {dtypes.display_name(layer.accumulate_dtype)}" if layer.accumulate_dtype else "")
            + f"<br>latency: {layer.latency_ms:.4g} ms")
    share = layer.share if layer.share is not None else (layer.latency_ms or 0.0) / total_ms if total_ms else None
    if share is not None:
        text += f" ({share:.1%})"
    if layer.tactic:
        text += f"<br>tactic: {layer.tactic}"
    if layer.nodes:
        shown = ", ".join(layer.nodes[:6]) + (f" +{len(layer.nodes) - 6}" if len(layer.nodes) > 6 else "")
        text += f"<br>FX nodes: {shown}"
    if layer.modules:
        text += f"<br>modules: {', '.join(layer.modules[:4])}"
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
        key = dtypes.display_name(r.output_dtypes[0] if r.output_dtypes else None)
        groups.setdefault(key if key in dtypes.PALETTE else "other", []).append(i)
    order = [k for k in dtypes.PALETTE if k in groups]
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
            orientation="h", name=key, marker_color=dtypes.PALETTE[key],
            x=[shown[i][0].latency_ms for i in idx], y=[labels[i] for i in idx],
            hovertext=[_hover(shown[i][0], shown[i][1], total_ms) for i in idx], hoverinfo="text",
        )
    return fig
