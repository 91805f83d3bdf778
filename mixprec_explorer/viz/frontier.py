"""The frontier scatter: error against latency for a sweep of plans, the Pareto front highlighted."""

from __future__ import annotations

from typing import TYPE_CHECKING

import plotly.graph_objects as go

from ..dtypes import PALETTE

if TYPE_CHECKING:
    from ..frontier import Frontier


def frontier_figure(frontier: Frontier) -> go.Figure:
    """One scatter of every plan (grey) and the Pareto front as a line (orange); hover names each plan.

    ``customdata`` holds each point's index in ``frontier.points``, so a click can load that plan.
    """
    pts = frontier.points
    hover = [f"{p.label}<br>{frontier.metric}: {p.error:.3g}<br>latency: {p.latency_ms:.3g} ms"
             f"<br>FP32 modules: {', '.join(p.fp32_modules[:6]) or 'none'}"
             + (" ..." if len(p.fp32_modules) > 6 else "") for p in pts]
    fig = go.Figure()
    fig.add_trace(go.Scatter(
        x=[p.latency_ms for p in pts], y=[p.error for p in pts], mode="markers", name="plans",
        marker={"size": 10, "color": [PALETTE["FP16"] if p.on_front else PALETTE["other"] for p in pts]},
        customdata=list(range(len(pts))), hovertext=hover, hoverinfo="text"))
    front = frontier.front()
    fig.add_trace(go.Scatter(x=[p.latency_ms for p in front], y=[p.error for p in front], mode="lines",
                             name="Pareto front", line={"color": PALETTE["FP16"]}, hoverinfo="skip"))
    unit = "measured" if frontier.latency_source == "measured" else f"estimated ({frontier.latency_source})"
    fig.update_layout(title="Speed versus error", xaxis_title=f"latency, ms ({unit})",
                      yaxis_title=frontier.metric, yaxis_type="log", template="plotly_white")
    return fig
