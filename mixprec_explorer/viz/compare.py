"""Two plans of one graph: side by side (two panels coloured by precision) or one difference view.

Both views ring the nodes whose dtype changes from plan A to plan B, and the hover over plan B's nodes
says ``A -> B: FP16 -> FP32``. The difference view is a :func:`~mixprec_explorer.viz.graph.build_figure`
figure (``color_by="changed"``), so :func:`~mixprec_explorer.viz.graph.recolor` works on it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import plotly.graph_objects as go

from ..errors import OptionError, OptionTypeError
from ..policy import PrecisionPlan
from .colors import LEGEND_SLOTS, changed_nodes
from .graph import FIRST_LEGEND_TRACE, Grouping, build_figure, highlight

if TYPE_CHECKING:
    from ..capture import CapturedGraph
    from ..results import Comparison

__all__ = ["MODES", "build_compare_figure"]

#: Values ``mode`` accepts.
MODES = ("side_by_side", "difference")


def _plans(plan_a: Any, plan_b: Any) -> tuple[PrecisionPlan, PrecisionPlan]:
    from ..results import Comparison

    if isinstance(plan_a, Comparison):
        if plan_b is not None:
            raise OptionTypeError("pass either a Comparison or two plans, not both")
        return plan_a.a, plan_a.b
    if plan_b is None:
        raise OptionTypeError("build_compare_figure needs plan_b (or a Comparison from ex.compare as plan_a)")
    for plan in (plan_a, plan_b):
        if not isinstance(plan, PrecisionPlan):
            raise OptionTypeError(f"expected a PrecisionPlan to compare, got {type(plan).__name__} "
                                  "(plan Settings first: ex.plan(settings))")
    return plan_a, plan_b


def build_compare_figure(captured: CapturedGraph, plan_a: PrecisionPlan | Comparison,
                         plan_b: PrecisionPlan | None = None, mode: str = "side_by_side", *,
                         labels: tuple[str, str] = ("A", "B"), group_by_module: Grouping = "auto",
                         expanded: Iterable[str] = (), height: int | None = None) -> go.Figure:
    """Plan A against plan B on the captured graph (``ex.figure_of(ex.compare(a, b))`` draws two Settings).

    Parameters
    ----------
    plan_a, plan_b: PrecisionPlans; or a :class:`~mixprec_explorer.compare.Comparison` (``ex.compare(a, b)``) as
        ``plan_a`` alone.
    mode: "side_by_side": two panels sharing the vertical axis, each coloured by its plan's precision;
        "difference": one graph of plan B, coloured by what changed (grey: unchanged).
    labels: the plans' names in titles and hover.
    group_by_module, expanded, height: as for :func:`~mixprec_explorer.viz.graph.build_figure`.

    Raises ValueError for an unknown ``mode``, TypeError for plans of the wrong type.

    >>> from mixprec_explorer import Explorer, Settings
    >>> from mixprec_explorer.examples import reference_autocast_model
    >>> import torch
    >>> ex = Explorer(*reference_autocast_model())
    >>> a = Settings(enable_autocast=True, autocast_low_precision_type=torch.float16)
    >>> b = a.replace(autocast_excluded_nodes={"^linear2$"})
    >>> fig = build_compare_figure(ex.captured, ex.plan(a), ex.plan(b), "difference")
    >>> fig.layout.meta["mixprec"]["changed"]
    ['linear_1']
    """
    if mode not in MODES:
        raise OptionError(f"mode must be one of {', '.join(map(repr, MODES))}; got {mode!r}")
    pa, pb = _plans(plan_a, plan_b)
    changed = changed_nodes(pa, pb)
    common: dict[str, Any] = {"group_by_module": group_by_module, "expanded": expanded, "height": height}
    if mode == "difference":
        fig = build_figure(captured, pb, "changed", compare_to=pa, compare_labels=labels, **common)
        highlight(fig, captured, changed)
        fig.layout.meta = {"mixprec": {**fig.layout.meta["mixprec"], "changed": changed, "labels": list(labels)}}
        return fig
    fa = build_figure(captured, pa, "precision", **common)
    fb = build_figure(captured, pb, "precision", compare_to=pa, compare_labels=labels, **common)
    for panel in (fa, fb):
        highlight(panel, captured, changed)
    return _side_by_side(fa, fb, labels, changed)


def _side_by_side(fa: go.Figure, fb: go.Figure, labels: tuple[str, str], changed: list[str]) -> go.Figure:
    """Panel A's traces on axes x/y, panel B's on x2/y2 (vertical axis shared); one legend for both."""
    shown = {t.name for t in fa.data[FIRST_LEGEND_TRACE:FIRST_LEGEND_TRACE + LEGEND_SLOTS] if t.visible}
    traces: list[dict[str, Any]] = []
    for panel, (xa, ya) in ((fa, ("x", "y")), (fb, ("x2", "y2"))):
        for i, trace in enumerate(panel.data):
            item = trace.to_plotly_json()
            if i >= FIRST_LEGEND_TRACE:  # legend entries: panel A's, plus any category only panel B has
                if panel is fb and (i >= FIRST_LEGEND_TRACE + LEGEND_SLOTS or item.get("name") in shown):
                    item["visible"] = False
                traces.append(item)  # legend-only traces have no points: no axes needed
                continue
            item["xaxis"], item["yaxis"] = xa, ya
            traces.append(item)
    layout = fa.layout.to_plotly_json()
    xaxis, yaxis = layout.get("xaxis", {}), layout.get("yaxis", {})
    gap = 0.02
    titles = [f"<b>{labels[0]}</b>: {fa.layout.title.text}", f"<b>{labels[1]}</b>: {fb.layout.title.text}"]
    layout.update({
        "xaxis": {**xaxis, "domain": [0.0, 0.5 - gap], "anchor": "y"},
        "xaxis2": {**fb.layout.xaxis.to_plotly_json(), "domain": [0.5 + gap, 1.0], "anchor": "y2"},
        "yaxis": {**yaxis, "anchor": "x"},
        "yaxis2": {**yaxis, "anchor": "x2", "matches": "y"},
        "title": {"text": f"{labels[0]} vs {labels[1]}: {len(changed)} node(s) change dtype (ringed)",
                  "font": {"size": 14}, "y": 0.99, "yanchor": "top"},
        "annotations": [{"text": text.replace(" · coloured by precision", ""), "x": x, "xref": "paper",
                         "xanchor": "center", "y": 1.0, "yref": "paper", "yanchor": "bottom", "showarrow": False,
                         "font": {"size": 11}} for text, x in zip(titles, (0.25 - gap / 2, 0.75 + gap / 2))],
        "legend": {"orientation": "h", "yanchor": "top", "y": 0.0, "x": 0.0, "font": {"size": 11}},
        "margin": {"l": 10, "r": 10, "t": 80, "b": 40},
        # two panels of the size one panel was laid out for, so the labels keep their room
        "width": (fa.layout.width or 700) + (fb.layout.width or 700) if fa.layout.width else None,
        "uirevision": "mixprec-compare",
        "meta": {"mixprec": {"kind": "compare", "mode": "side_by_side", "changed": changed,
                             "labels": list(labels)}},
    })
    return go.Figure(data=traces, layout=layout, _validate=False)
