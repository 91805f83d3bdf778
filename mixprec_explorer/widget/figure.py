"""The graph in the app (:class:`GraphFigure`): a plotly FigureWidget of
:meth:`Explorer.figure <mixprec_explorer.Explorer.figure>`, and what clicking it, grouping, colouring and finding do.

A click on a node toggles its module's exclusion (the click path: toggle, re-plan, recolour in place, panels);
a click on a collapsed module expands it. Only a change of what is drawn (grouping, expand, collapse) redraws
the traces; everything else recolours them in place. The graph observes the app's ``color_by`` (recolour) and
``group_by_module`` (redraw) traits, and sets ``selected`` and ``found`` (which the details and the engine view
observe).

The part draws into a plain Figure (:attr:`GraphFigure.drawn`, recoloured by
:meth:`Explorer.recolor <mixprec_explorer.Explorer.recolor>`) and :class:`~._sync.FigureSync` sends the browser only what changed
in it: after a click, the few nodes' colours and hover texts, the marks and the title.
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
    build_view,
    highlight,
    reveal,
)
from ..viz.layout import GROUP_PREFIX, without_gc
from ._format import esc
from ._sync import FigureSync
from .host import AppExplorer, AppHost
from .status import guarded

if TYPE_CHECKING:
    from ..policy import PrecisionPlan
    from ..viz.graph import GraphView

__all__ = ["GraphFigure", "find_nodes"]


def find_nodes(explorer: AppExplorer, query: str) -> list[str]:
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


class GraphFigure:
    """The graph's FigureWidget (``figure_widget``) bound to ``app``: clicks, colouring, grouping, find.

    State: ``expanded`` (module paths opened one level), ``height`` (px, None: the drawing's), ``figure_sync``
    (the plain Figure drawn into, :attr:`drawn`, and what was last sent to the browser).
    """

    def __init__(self, app: AppHost, *, height: int | None = None) -> None:
        self.app = app
        self.height = height
        self.expanded: set[str] = set()
        #: (plan, color_by, ringed) a click has just drawn and sent, so that the refresh after it need not
        self._drawn_early: tuple[PrecisionPlan, str, list[str]] | None = None
        # the mouse wheel scrolls the notebook; zoom is the toolbar's (or a drag in zoom mode)
        self.figure_sync = FigureSync(self._new_figure(), config={"scrollZoom": False, "displaylogo": False},
                                      points=NODES, marks=(EXCLUDED, ACCUMULATE, MIXED, HIGHLIGHT))
        self.figure_widget = self.figure_sync.widget
        self._wire()
        app.observe(self._on_color_by, names="color_by")
        app.observe(self._on_grouping, names="group_by_module")

    # -- what is drawn ----------------------------------------------------------------------------------------------
    @property
    def drawn(self) -> go.Figure:
        """The plain Figure the part draws into; the browser's FigureWidget mirrors it."""
        return self.figure_sync.figure

    @property
    def node_trace(self) -> Any:
        """The FigureWidget trace that draws the nodes (the one that takes clicks)."""
        return self.figure_widget.data[NODES]

    @property
    def view(self) -> GraphView:
        """What the figure currently draws."""
        return build_view(self.app.explorer.captured, self.app.group_by_module, self.expanded)

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

    def draw(self, plan: PrecisionPlan) -> None:
        """Colour ``plan`` by the app's ``color_by``, ring the selected or found nodes, send the browser what changed.

        Raises :class:`~mixprec_explorer.viz.graph.OverlayUnavailable` (nothing drawn) where the colouring needs
        a result that does not exist yet.
        """
        app = self.app
        ringed = [app.selected] if app.selected else list(app.found)
        drawn, self._drawn_early = self._drawn_early, None
        if drawn is not None and drawn == (plan, app.color_by, ringed):  # a click drew it already (click_point)
            return
        self._draw(plan, ringed)

    def _draw(self, plan: PrecisionPlan, ringed: list[str]) -> None:
        app = self.app
        app.explorer.recolor(self.drawn, plan, app.color_by)
        highlight(self.drawn, app.explorer.captured, ringed)
        self.figure_sync.push()

    def _new_figure(self) -> go.Figure:
        app = self.app
        return app.explorer.figure(color_by=app.color_by, group_by_module=app.group_by_module,
                                   expanded=self.expanded, height=self.height)

    def _wire(self) -> None:
        self.node_trace.on_click(self._on_click)

    def _rebuild(self) -> None:
        """Redraw after a change of what is drawn (grouping, expand/collapse): same traces, new positions."""
        if self.figure_sync.replace(self._new_figure()):  # crossing the WebGL threshold replaced the traces
            self._wire()
        self.app.refresh()

    # -- the app's view state, observed ---------------------------------------------------------------------------
    def _on_color_by(self, change: Any) -> None:
        self.draw(self.app.explorer.plan())  # an error reaches whoever set color_by (the app reverts it)

    def _on_grouping(self, change: Any) -> None:
        self.expanded.clear()
        self.app.selected = None
        self._rebuild()

    # -- clicks -----------------------------------------------------------------------------------------------------
    def _on_click(self, trace: Any, points: Any, state: Any) -> None:
        if points is not None and points.point_inds:
            self.click_point(points.point_inds[0])

    @guarded("clicking a node")
    @without_gc
    def click_point(self, index: int) -> None:
        """What a click on point ``index`` does: expand a collapsed module, else toggle the node's module exclusion."""
        app = self.app
        view = self.view
        key = view.keys[index]
        if view.is_group(index):
            module = key[len(GROUP_PREFIX):]
            self.expanded.add(module)
            app.selected = key  # the details name the module
            app.selected = None
            self._rebuild()
            app.say(f"expanded module <code>{esc(module)}</code>")
            return
        info = app.explorer.nodes[key]
        if info.kind != "call_function" or info.removed_by:
            why = f"removed by {info.removed_by}" if info.removed_by else f"a graph {info.kind}"
            app.selected = key
            app.refresh()
            app.say(f"<code>{esc(key)}</code> is {why}: it has no autocast decision to toggle")
            return
        ex = app.last_exclusion = app.apply(lambda: app.explorer.toggle(key))
        # The new colours go to the browser first: the selection's observers (details, engine view) and the
        # other panels send their own messages, which the browser would handle before the graph's update.
        plan = app.explorer.plan()
        self._draw(plan, [key])
        self._drawn_early = (plan, app.color_by, [key])
        app.selected = key
        app.refresh()
        verb = "excluded" if ex.pattern in app.explorer.settings.autocast_excluded_nodes else "included again"
        app.say(f"<code>{esc(ex.pattern)}</code> {verb}: {len(ex.nodes)} node(s)"
                + (" (see Details)" if ex.note else ""))

    @guarded("collapsing modules")
    def collapse_all(self) -> None:
        """Close every expanded module."""
        self.expanded.clear()
        self.app.selected = None
        self._rebuild()

    # -- find and ring ----------------------------------------------------------------------------------------------
    def _in_view(self, point: int) -> bool:
        """True if point ``point`` lies within the axis ranges the graph shows."""
        view, layout = self.view, self.drawn.layout
        for axis, at in ((layout.xaxis, view.x[point]), (layout.yaxis, view.y[point])):
            if axis.range is not None:
                lo, hi = sorted(float(v) for v in axis.range)
                if not lo <= float(at) <= hi:
                    return False
        return True

    def ring(self, names: list[str]) -> None:
        """Ring the points drawing ``names`` (pan to the first if it is out of view) and send the browser that."""
        app = self.app
        app.found, app.selected = list(names), None
        points = highlight(self.drawn, app.explorer.captured, names)
        if points:
            self.figure_sync.adopt_view()
            if not self._in_view(points[0]):
                reveal(self.drawn, app.explorer.captured, names)
        self.figure_sync.push()

    @guarded("searching")
    def find(self, query: str) -> list[str]:
        """Ring the nodes (or their collapsed modules) matching ``query``; the details show the first one."""
        app = self.app
        names = find_nodes(app.explorer, query)
        app.found = names
        app.selected = names[0] if len(names) == 1 else None
        points = highlight(self.drawn, app.explorer.captured, names)
        if not names:
            self.figure_sync.push()
            app.say(f"no node or module matches {esc(query)!s}" if query.strip() else "")
            return names
        self.figure_sync.adopt_view()  # pan from where the reader left the graph
        if not self._in_view(points[0]):  # a graph that shows it already is not moved
            reveal(self.drawn, app.explorer.captured, names)
        self.figure_sync.push()
        app.say(f"{len(names)} node(s) match <code>{esc(query)}</code>, drawn by {len(points)} point(s)")
        return names
