"""The graph in the app: a plotly FigureWidget of :func:`~mixprec_explorer.viz.graph.build_figure`, and what
clicking it, grouping, colouring and finding do.

A click on a node toggles its module's exclusion (the click path: toggle, re-plan, recolour in place, panels);
a click on a collapsed module expands it. Only a change of what is drawn (grouping, expand, collapse) redraws
the traces; everything else recolours them in place.

The app draws into a plain Figure (:attr:`FigureMixin.drawn`, recoloured by :func:`~mixprec_explorer.viz.graph.recolor`)
and :class:`~._sync.FigureSync` sends the browser only what changed in it: after a click, the few nodes'
colours and hover texts, the marks and the title.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import plotly.graph_objects as go

from ..viz.graph import (
    ACCUMULATE,
    EXCLUDED,
    HIGHLIGHT,
    MIXED,
    NODES,
    build_figure,
    build_view,
    highlight,
    recolor,
    reveal,
)
from ..viz.layout import GROUP_PREFIX, without_gc
from ._format import esc
from ._sync import FigureSync
from .status import guarded

if TYPE_CHECKING:
    from collections.abc import Callable

    import ipywidgets as widgets

    from ..explorer import Exclusion, Explorer
    from ..policy import PrecisionPlan
    from ..viz.graph import GraphView, Grouping

__all__ = ["FigureMixin", "find_nodes"]


def find_nodes(explorer: Explorer, query: str) -> list[str]:
    """Nodes a search box query names: a node name, a module path (and everything under it), else a substring."""
    q = query.strip()
    if not q:
        return []
    if q in explorer.nodes:
        return [q]
    nodes = explorer.nodes.values()
    under = [i.name for i in nodes if i.module == q or i.module.startswith(q + ".")]
    if under:
        return under
    low = q.lower()
    return [i.name for i in nodes if low in i.name.lower() or low in i.module.lower()]


class FigureMixin:
    """Part of :class:`~mixprec_explorer.widget.app.WidgetApp`: ``figure_widget``; clicks, colouring, grouping, find."""

    if TYPE_CHECKING:  # from the rest of WidgetApp
        explorer: Explorer
        color_by: str
        group_by_module: Grouping
        expanded: set[str]
        height: int | None
        selected: str | None
        found: list[str]
        last_exclusion: Exclusion | None
        details: widgets.HTML
        _syncing: bool

        def refresh(self) -> None: ...
        def _apply(self, change: Callable[[], Any]) -> Any: ...
        def _details_html(self, plan: PrecisionPlan) -> str: ...
        def outline_layers_of(self, node: str | None) -> None: ...
        def _say(self, text: str) -> None: ...

    def _build_figure(self) -> None:
        """The FigureWidget of the explorer's graph, its clicks wired."""
        # the mouse wheel scrolls the notebook; zoom is the toolbar's (or a drag in zoom mode)
        self.figure_sync = FigureSync(self._new_figure(), config={"scrollZoom": False, "displaylogo": False},
                                      points=NODES, marks=(EXCLUDED, ACCUMULATE, MIXED, HIGHLIGHT))
        self.figure_widget = self.figure_sync.widget
        self._wire_figure()

    @property
    def drawn(self) -> go.Figure:
        """The plain Figure the app draws into; the browser's FigureWidget mirrors it."""
        return self.figure_sync.figure

    def _draw(self, plan: PrecisionPlan) -> None:
        """Colour ``plan`` and ring the selected or found nodes, then send the browser what changed."""
        recolor(self.drawn, self.explorer, plan, self.color_by)
        highlight(self.drawn, self.explorer, [self.selected] if self.selected else self.found)
        self.figure_sync.push()

    def _new_figure(self) -> go.Figure:
        return build_figure(self.explorer, color_by=self.color_by, group_by_module=self.group_by_module,
                            expanded=self.expanded, height=self.height)

    def _wire_figure(self) -> None:
        self.node_trace.on_click(self._on_click)

    # -- state for tests and scripts ----------------------------------------------------------------------------
    @property
    def node_trace(self) -> Any:
        """The FigureWidget trace that draws the nodes (the one that takes clicks)."""
        return self.figure_widget.data[NODES]

    @property
    def view(self) -> GraphView:
        """What the figure currently draws."""
        return build_view(self.explorer, self.group_by_module, self.expanded)

    def point_index(self, name: str) -> int:
        """Index in :attr:`node_trace` of the point that draws node (or module key) ``name``."""
        return self.view.point_of[name]

    def point_colors(self) -> list[str]:
        """Each point's colour as drawn: exact for the discrete colourings, nearest stop below for the others."""
        marker = self.node_trace.marker
        scale = [(float(p), c) for p, c in marker.colorscale]
        lo, hi = float(marker.cmin), float(marker.cmax)
        out = []
        for v in marker.color:
            frac = 0.0 if hi == lo else min(1.0, max(0.0, (float(v) - lo) / (hi - lo)))
            below = [c for p, c in scale if p <= frac + 1e-12]
            out.append(below[-1] if below else scale[0][1])
        return out

    # -- clicks, colouring, grouping, find ----------------------------------------------------------------------
    def _on_click(self, trace: Any, points: Any, state: Any) -> None:
        if points is not None and points.point_inds:
            self.click_point(points.point_inds[0])

    @guarded("clicking a node")
    @without_gc
    def click_point(self, index: int) -> None:
        """What a click on point ``index`` does: expand a collapsed module, else toggle the node's module exclusion."""
        view = self.view
        key = view.keys[index]
        self.selected = key
        if view.is_group(index):
            module = key[len(GROUP_PREFIX):]
            self.expanded.add(module)
            self.selected = None
            self._rebuild_figure()
            self._say(f"expanded module <code>{esc(module)}</code>")
            return
        info = self.explorer.nodes[key]
        if info.kind != "call_function" or info.removed_by:
            why = f"removed by {info.removed_by}" if info.removed_by else f"a graph {info.kind}"
            self.refresh()
            self._say(f"<code>{esc(key)}</code> is {why}: it has no autocast decision to toggle")
            return
        self.last_exclusion = self._apply(lambda: self.explorer.toggle(key))
        self.refresh()
        self.outline_layers_of(key)
        ex = self.last_exclusion
        verb = "excluded" if ex.pattern in self.explorer.settings.autocast_excluded_nodes else "included again"
        self._say(f"<code>{esc(ex.pattern)}</code> {verb}: {len(ex.nodes)} node(s)"
                  + (" (see Details)" if ex.note else ""))

    def _rebuild_figure(self) -> None:
        """Redraw after a change of what is drawn (grouping, expand/collapse): same traces, new positions."""
        if self.figure_sync.replace(self._new_figure()):  # crossing the WebGL threshold replaced the traces
            self._wire_figure()
        self.refresh()

    @guarded("changing the colouring")
    def _on_color_by(self, change: dict[str, Any]) -> None:
        if self._syncing:
            return
        previous, self.color_by = self.color_by, change["new"]
        try:
            self.refresh()
        except Exception:
            self.color_by = previous
            raise

    @guarded("changing the grouping")
    def _on_group(self, change: dict[str, Any]) -> None:
        if self._syncing:
            return
        self.group_by_module = change["new"] or None  # 0: no grouping
        self.expanded.clear()
        self.selected = None
        self._rebuild_figure()

    @guarded("collapsing modules")
    def collapse_all(self) -> None:
        """Close every expanded module."""
        self.expanded.clear()
        self.selected = None
        self._rebuild_figure()

    def _in_view(self, point: int) -> bool:
        """True if point ``point`` lies within the axis ranges the graph shows."""
        view, layout = self.view, self.drawn.layout
        for axis, at in ((layout.xaxis, view.x[point]), (layout.yaxis, view.y[point])):
            if axis.range is not None:
                lo, hi = sorted(float(v) for v in axis.range)
                if not lo <= float(at) <= hi:
                    return False
        return True

    def _on_find_submit(self, change: dict[str, Any]) -> None:
        if not self._syncing:
            self.find(change["new"])

    def ring(self, names: list[str]) -> None:
        """Ring the points drawing ``names`` (pan to the first if it is out of view) and send the browser that."""
        self.found, self.selected = list(names), None
        points = highlight(self.drawn, self.explorer, names)
        if points:
            self.figure_sync.adopt_view()
            if not self._in_view(points[0]):
                reveal(self.drawn, self.explorer, names)
        self.figure_sync.push()

    @guarded("searching")
    def find(self, query: str) -> list[str]:
        """Ring the nodes (or their collapsed modules) matching ``query`` and show the first one's details."""
        names = find_nodes(self.explorer, query)
        self.found = names
        self.selected = names[0] if len(names) == 1 else None
        points = highlight(self.drawn, self.explorer, names)
        if not names:
            self.figure_sync.push()
            self._say(f"no node or module matches {esc(query)!s}" if query.strip() else "")
            return names
        self.figure_sync.adopt_view()  # pan from where the reader left the graph
        if not self._in_view(points[0]):  # a graph that shows it already is not moved
            reveal(self.drawn, self.explorer, names)
        self.figure_sync.push()
        self.details.value = self._details_html(self.explorer.plan()) if self.selected else (
            f"{len(names)} nodes match <code>{esc(query)}</code>: " + esc(", ".join(names[:20]))
            + (" ..." if len(names) > 20 else ""))
        self._say(f"{len(names)} node(s) match <code>{esc(query)}</code>, drawn by {len(points)} point(s)")
        return names
