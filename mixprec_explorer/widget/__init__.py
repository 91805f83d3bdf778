"""The ipywidgets app: a thin view over an Explorer. Importing this package imports ipywidgets and plotly."""

from __future__ import annotations

from .app import WidgetApp, backend_status, build_widget, find_nodes
from .frontier import FrontierWidget, build_frontier_widget

__all__ = ["FrontierWidget", "WidgetApp", "backend_status", "build_frontier_widget", "build_widget", "find_nodes"]
