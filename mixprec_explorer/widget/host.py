"""What a part of the notebook app may use of the app: :class:`AppHost`, the one interface between the parts.

The app (:class:`~mixprec_explorer.widget.app.WidgetApp`) is made of parts, each holding its own widgets and
state: :class:`~.status.StatusArea`, :class:`~.controls.Controls`, :class:`~.figure.GraphFigure`,
:class:`~.panels.PlanPanel`, :class:`~.panels.ExportPanel`, :class:`~.measure.MeasurePanel` and
:class:`~.analysis_panel.AnalysisPanel`. A part is given the app as an :class:`AppHost` and uses nothing else of
it: the explorer, the view state every part shares (traits of the app, which a part may observe), and a few
actions. A part never reaches into another part; the app routes each action to the part that owns it.

The explorer is seen through :class:`AppExplorer` (and the frontier widget's through :class:`FrontierExplorer`):
what the parts use of :class:`~mixprec_explorer.Explorer`, stated here so that no part but the app itself imports
``explorer.py`` (which imports the app for ``Explorer.widget()``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from ..accuracy import AccuracyReport
    from ..backends.base import Compiled, Profile
    from ..capture import CapturedGraph
    from ..policy import PrecisionPlan
    from ..predict import Prediction, Predictor
    from ..records import CalibrationStat, Exclusion, NodeInfo
    from ..results import Frontier, Sensitivity
    from ..search import SearchResult
    from ..settings import Settings
    from ..targets import Target, TargetComparison
    from ..viz.graph import Grouping

__all__ = ["AppExplorer", "AppHost", "FrontierExplorer"]

T = TypeVar("T")


class FrontierExplorer(Protocol):
    """The explorer as the frontier widget uses it: its settings (a load assigns them), its last frontier, undo."""

    settings: Settings  #: the current settings; assigning validates them and records undo history

    @property
    def last_frontier(self) -> Frontier | None:
        """The last ``frontier()`` result, or None."""
        ...

    @property
    def can_undo(self) -> bool:
        ...

    def undo(self) -> Settings:
        """Go back to the previous settings."""
        ...


class AppExplorer(FrontierExplorer, Protocol):
    """The explorer as the app's parts use it: what :class:`~mixprec_explorer.Explorer` offers them (an
    Explorer is one). See the Explorer's methods of the same names for what each does."""

    @property
    def target(self) -> Target:
        ...

    @property
    def captured(self) -> CapturedGraph:
        ...

    @property
    def nodes(self) -> dict[str, NodeInfo]:
        ...

    @property
    def calibration(self) -> dict[str, CalibrationStat]:
        ...

    @property
    def predictor(self) -> Predictor:
        ...

    @property
    def can_redo(self) -> bool:
        ...

    @property
    def last_profile(self) -> Profile | None:
        ...

    @property
    def last_accuracy(self) -> AccuracyReport | None:
        ...

    @property
    def last_sensitivity(self) -> Sensitivity | None:
        ...

    def redo(self) -> Settings:
        ...

    def ops(self) -> dict[str, int]:
        ...

    def plan(self, settings: Settings | None = None) -> PrecisionPlan:
        ...

    def toggle(self, target: str) -> Exclusion:
        ...

    def check_settings(self, settings: Settings | None = None) -> list[str]:
        ...

    def summary(self, plan: PrecisionPlan | None = None) -> dict[str, dict[str, float]]:
        ...

    def predict(self, settings: Settings | None = None) -> Prediction:
        ...

    def compare_targets(self, before: Target | str, after: Target | str) -> TargetComparison:
        ...

    def export_settings(self, path: str | os.PathLike[str], format: str | None = None) -> Path:
        ...

    def compile_call(self, target: Target | str | None = None) -> str:
        ...

    def figure(self, settings: Settings | None = None, color_by: str = "precision", *,
               group_by_module: Grouping = "auto", expanded: Iterable[str] = (), height: int | None = None) -> go.Figure:
        ...

    def recolor(self, fig: go.Figure, plan: PrecisionPlan | None = None, color_by: str | None = None) -> None:
        ...

    def compile(self, settings: Settings | None = None, backend: str = "auto") -> Compiled:
        ...

    def profile(self, compiled: Compiled) -> Profile:
        ...

    def accuracy(self, compiled: Compiled, *, per_node: bool = False) -> AccuracyReport:
        ...

    def record_measurement(self, plan: Any = None, *, profile: Any = None, accuracy: Any = None) -> object:
        ...

    def measure_calibration(self) -> Predictor:
        ...

    def available_backends(self, refresh: bool = False) -> dict[str, tuple[bool, str]]:
        ...

    def sensitivity(self, *, progress: bool = True) -> Sensitivity:
        ...

    def search(self, *, budget: float = 1e-2, backend: str | None = "auto", confirm: bool = True,
               progress: bool = True) -> SearchResult:
        ...

    def frontier(self, *, backend: str | None = None, progress: bool = True) -> Frontier:
        ...


class AppHost(Protocol):
    """The app as its parts see it.

    The shared view state is declared as traits on the app (``traitlets``), so a part may watch it with
    :meth:`observe`: the graph recolours when ``color_by`` changes and redraws when ``group_by_module`` does,
    the details follow ``selected`` and ``found``, the engine view outlines the layers of ``selected``.
    """

    @property
    def explorer(self) -> AppExplorer:
        """The explorer every part shows and edits."""
        ...

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
