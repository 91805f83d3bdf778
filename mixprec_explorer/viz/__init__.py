"""Figures: (records, options) -> plotly Figure. Nothing here calls ``.show()``.

Every figure takes records (the captured graph, a plan, a profile, an analysis result), never the Explorer:
``ex.figure()``, ``ex.figure_of(result)`` and ``ex.save_html()`` hand them over. Importing this package imports
plotly; ``import mixprec_explorer`` does not.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from ..capture import CapturedGraph
    from ..results import Comparison, Frontier, Sensitivity

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
    "draw",
    "highlight",
    "layered_layout",
    "recolor",
    "render_html",
    "save_html",
]


def draw(result: Sensitivity | Frontier | Comparison, *, captured: CapturedGraph | None = None,
         **options: Any) -> go.Figure:
    """The figure of an analysis result (what ``result.figure()`` drew before results became plain records).

    A :class:`~mixprec_explorer.results.Sensitivity`: :func:`build_sensitivity_chart` (``by=``, ``top=``); a
    :class:`~mixprec_explorer.results.Frontier`: :func:`~mixprec_explorer.viz.frontier.frontier_figure`; a
    :class:`~mixprec_explorer.results.Comparison`: :func:`build_compare_figure` on ``captured`` (``ex.captured``;
    ``mode=``, ``labels=``...). ``ex.figure_of(result)`` passes ``captured`` itself. Raises OptionTypeError for
    anything else, OptionError for a Comparison without ``captured``.
    """
    from ..errors import OptionError, OptionTypeError
    from ..results import Comparison, Frontier, Sensitivity
    from .frontier import frontier_figure

    if isinstance(result, Sensitivity):
        return build_sensitivity_chart(result, **options)
    if isinstance(result, Frontier):
        return frontier_figure(result, **options)
    if isinstance(result, Comparison):
        if captured is None:
            raise OptionError("a Comparison is drawn on its graph: pass captured=ex.captured (or call "
                              "ex.figure_of(comparison))")
        return build_compare_figure(captured, result, **options)
    raise OptionTypeError(f"nothing draws a {type(result).__name__}: pass a Sensitivity, Frontier or Comparison "
                          "(ex.sensitivity(), ex.frontier(), ex.compare(a, b))")
