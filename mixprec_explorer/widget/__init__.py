"""The ipywidgets app: a thin view over an Explorer. Importing this package imports ipywidgets and plotly.

:class:`WidgetApp` (``app.py``) composes small parts, each holding its own widgets: the status line and errors
(``status.py``), the controls and undo/redo (``controls.py``), the graph (``figure.py``), the plan's panels and
export (``panels.py``), compile & profile with the latency chart and engine view (``measure.py``) and "Which nodes
matter" (``analysis_panel.py``). They share the app's declared traits and reach each other only through the app
(the interface in ``host.py``). :class:`FrontierWidget` (``frontier.py``) is the frontier's own widget.
"""

from __future__ import annotations

from .app import WidgetApp, backend_status, build_widget, find_nodes
from .frontier import FrontierWidget, build_frontier_widget

__all__ = ["FrontierWidget", "WidgetApp", "backend_status", "build_frontier_widget", "build_widget", "find_nodes"]
