"""The frontier scatter: error against latency for a sweep of plans, the Pareto front highlighted."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import plotly.graph_objects as go

from ..dtypes import PALETTE
from ..numbers import format_number

if TYPE_CHECKING:
    from ..results import Frontier


def frontier_figure(frontier: Frontier) -> go.Figure:
    """One scatter of every plan (grey) and the Pareto front as a line (orange); hover names each plan.

    ``customdata`` holds each point's index in ``frontier.points``, so a click can load that plan.
    """
    pts = frontier.points
    ys = _drawable([p.error for p in pts])
    hover = [f"{p.label}<br>{frontier.metric}: {format_number(p.error)}<br>latency: {format_number(p.latency_ms)} ms"
             f"<br>FP32 modules: {', '.join(p.fp32_modules[:6]) or 'none'}"
             + (" ..." if len(p.fp32_modules) > 6 else "") for p in pts]
    fig = go.Figure()
    fig.add_trace(go.Scatter(
        x=[p.latency_ms for p in pts], y=ys, mode="markers", name="plans",
        marker={"size": 10, "color": [PALETTE["FP16"] if p.on_front else PALETTE["other"] for p in pts],
                "symbol": [_symbol(p.error) for p in pts]},
        customdata=list(range(len(pts))), hovertext=hover, hoverinfo="text"))
    front = frontier.front()
    index = {id(p): i for i, p in enumerate(pts)}
    fig.add_trace(go.Scatter(x=[p.latency_ms for p in front], y=[ys[index[id(p)]] for p in front], mode="lines",
                             name="Pareto front", line={"color": PALETTE["FP16"]}, hoverinfo="skip"))
    unit = "measured" if frontier.latency_source == "measured" else f"estimated ({frontier.latency_source})"
    fig.update_layout(title="Speed versus error", xaxis_title=f"latency, ms ({unit})",
                      yaxis_title=frontier.metric, yaxis_type="log", template="plotly_white")
    return fig


def _drawable(errors: list[float]) -> list[float]:
    """Errors placed on a log axis: 0 a decade below the smallest positive, inf a decade above the largest."""
    finite = [e for e in errors if 0 < e < math.inf]
    low = min(finite, default=1e-6) / 10
    high = max(finite, default=1.0) * 10
    return [low if e <= 0 else high if not math.isfinite(e) else e for e in errors]


def _symbol(error: float) -> str:
    """Markers say when a point sits at an axis edge: 0 error (down) or overflow (up)."""
    if error <= 0:
        return "triangle-down"
    return "circle" if math.isfinite(error) else "triangle-up"
