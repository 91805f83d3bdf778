"""The ipywidgets app: a thin view over an Explorer. Importing this package imports ipywidgets and plotly."""

from __future__ import annotations

from .app import WidgetApp, backend_status, build_widget, find_nodes

__all__ = ["WidgetApp", "backend_status", "build_widget", "find_nodes"]
