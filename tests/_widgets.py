"""Clicks as plotly delivers them to the real FigureWidget traces, shared by the widget tests (plotly required)."""

from __future__ import annotations

from typing import Any

from plotly.callbacks import InputDeviceState, Points

from mixprec_explorer.viz import graph as vg


def state() -> InputDeviceState:
    """A plain left click's device state."""
    return InputDeviceState(ctrl=False, alt=False, shift=False, meta=False, button=0, buttons=1)


def click(app: Any, name: str) -> None:
    """A click on node ``name`` of a WidgetApp as plotly delivers it: the trace's click callbacks, with Points."""
    trace = app.node_trace
    i = app.point_index(name)
    points = Points(point_inds=[i], xs=[trace.x[i]], ys=[trace.y[i]], trace_name=trace.name, trace_index=vg.NODES)
    trace._dispatch_on_click(points, state())
