"""Figures: (explorer or records, options) -> plotly Figure. Nothing here calls ``.show()``.

Importing this package imports plotly; ``import mixprec_explorer`` does not.
"""

from __future__ import annotations

from .charts import build_latency_chart, build_sensitivity_chart
from .compare import build_compare_figure
from .graph import (
    COLOR_BY,
    GraphView,
    OverlayUnavailable,
    build_figure,
    build_view,
    changed_nodes,
    highlight,
    recolor,
)
from .layout import Layout, layered_layout
from .report import render_html, save_html

__all__ = [
    "COLOR_BY",
    "GraphView",
    "Layout",
    "OverlayUnavailable",
    "build_compare_figure",
    "build_figure",
    "build_latency_chart",
    "build_sensitivity_chart",
    "build_view",
    "changed_nodes",
    "highlight",
    "layered_layout",
    "recolor",
    "render_html",
    "save_html",
]
