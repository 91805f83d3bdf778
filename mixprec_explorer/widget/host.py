"""What a part of the notebook app may use of the app: :class:`AppHost`, the one interface between the parts.

The app (:class:`~mixprec_explorer.widget.app.WidgetApp`) is made of parts, each holding its own widgets and
state: :class:`~.status.StatusArea`, :class:`~.controls.Controls`, :class:`~.figure.GraphFigure`,
:class:`~.panels.PlanPanel`, :class:`~.panels.ExportPanel`, :class:`~.measure.MeasurePanel` and
:class:`~.analysis_panel.AnalysisPanel`. A part is given the app as an :class:`AppHost` and uses nothing else of
it: the explorer, the view state every part shares (traits of the app, which a part may observe), and a few
actions. A part never reaches into another part; the app routes each action to the part that owns it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:
    from ..explorer import Exclusion, Explorer
    from ..viz.graph import Grouping

__all__ = ["AppHost"]

T = TypeVar("T")


class AppHost(Protocol):
    """The app as its parts see it.

    The shared view state is declared as traits on the app (``traitlets``), so a part may watch it with
    :meth:`observe`: the graph recolours when ``color_by`` changes and redraws when ``group_by_module`` does,
    the details follow ``selected`` and ``found``, the engine view outlines the layers of ``selected``.
    """

    explorer: Explorer  #: the explorer every part shows and edits
    color_by: str  #: the colouring (``viz.colors.COLOR_BY``)
    group_by_module: Grouping  #: "auto", None (every node drawn) or a module depth
    selected: str | None  #: key of the last clicked or found point
    found: list[str]  #: nodes the last find (or engine layer) ringed
    notes: list[str]  #: warnings of the last settings change, shown in the summary
    last_exclusion: Exclusion | None  #: what the last click toggled

    def observe(self, handler: Callable[[Any], None], names: str | list[str]) -> None:
        """Call ``handler(change)`` when a trait in ``names`` changes (traitlets' ``HasTraits.observe``)."""
        ...

    def refresh(self) -> None:
        """Re-plan, and bring the graph, the controls and the panels in step with the explorer."""
        ...

    def apply(self, change: Callable[[], T]) -> T:
        """Run a change of the explorer's settings, keeping its warnings as ``notes``; returns what it returned."""
        ...

    def color_nodes_by(self, mode: str) -> None:
        """Colour the graph by ``mode``; raise (the colouring unchanged) if it cannot be drawn yet."""
        ...

    def find(self, query: str) -> list[str]:
        """Ring the nodes ``query`` names (the Find box)."""
        ...

    def ring(self, names: list[str]) -> None:
        """Ring the points drawing ``names``."""
        ...

    def collapse_all(self) -> None:
        """Close every expanded module of the graph."""
        ...

    def show_profile(self, profile: Any) -> None:
        """Show the latency chart and the engine view of ``profile``."""
        ...

    def sync_frontier(self) -> None:
        """Ring the frontier's plan that the settings now are (after undo, redo, a search)."""
        ...

    def say(self, html: str) -> None:
        """Put one line of news (HTML) in the status line."""
        ...

    def report_error(self, where: str, err: BaseException) -> None:
        """Show an error in the error area and put the controls back in step; the app keeps working."""
        ...
