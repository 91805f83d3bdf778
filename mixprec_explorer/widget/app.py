"""The notebook app: a plotly FigureWidget of the graph with controls, all bound to one Explorer.

:class:`WidgetApp` composes small parts, each a class holding its own widgets and state, as ipywidgets apps are
built; :func:`build_widget` returns its root box (never displays it). The parts, and where each lives:

- ``app.messages``, :class:`~.status.StatusArea`: the status line, the error area, every error reported
- ``app.controls``, :class:`~.controls.Controls`: the settings controls, the view row (colour, group, find),
  undo/redo
- ``app.graph``, :class:`~.figure.GraphFigure`: the graph's FigureWidget; clicks, colouring, grouping, find
- ``app.plan_panel``, :class:`~.panels.PlanPanel`: beside the graph, what if, summary and details
- ``app.export_panel``, :class:`~.panels.ExportPanel`: export to a file, the compile call
- ``app.measure``, :class:`~.measure.MeasurePanel`: compile & profile, calibrate the what-if, the latency chart
  and the engine view
- ``app.analysis``, :class:`~.analysis_panel.AnalysisPanel`: "Which nodes matter" (sensitivity, the error-budget
  search, the frontier)

The parts share the view state the app declares as traits (``color_by``, ``group_by_module``, ``selected``,
``found``, ``notes``, ``last_exclusion``) and talk to each other only through the app, as the interface
:class:`~.host.AppHost` states: a part observes the traits it draws from (the graph recolours on ``color_by``,
the details follow ``selected``) and calls the app's actions (``refresh``, ``find``, ``show_profile`` ...), which
the app routes to the part that owns them. :meth:`WidgetApp.refresh` re-plans and brings every part in step.

Every callback runs guarded (:func:`~.status.guarded`): an error is shown in the app's error area and the app
keeps working. None of the "Which nodes matter" panel's runs is on the click path of the graph.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import ipywidgets as widgets
import plotly.graph_objects as go
from traitlets import Any as AnyTrait
from traitlets import HasTraits, Instance, List, Unicode

from ..errors import SettingsWarning
from ..records import Exclusion
from .analysis_panel import AnalysisPanel, search_backends, search_text, sensitivity_text
from .controls import Controls
from .figure import GraphFigure, find_nodes
from .measure import MeasurePanel, backend_status
from .panels import ExportPanel, PlanPanel
from .status import StatusArea

if TYPE_CHECKING:
    from ..explorer import Explorer
    from ..viz.graph import GraphView, Grouping

__all__ = ["WidgetApp", "backend_status", "build_widget", "find_nodes", "search_backends", "search_text",
           "sensitivity_text"]

T = TypeVar("T")


class WidgetApp(HasTraits):
    """Graph, controls, summary, details, export and compile, bound to ``explorer``; show ``app.root``.

    The parts: ``messages``, ``controls``, ``graph``, ``plan_panel``, ``export_panel``, ``measure``, ``analysis``
    (see the module's table). Their widgets are also reached from the app under their own names, as tests and
    notebooks use them: ``figure_widget`` (the FigureWidget the browser shows), ``status``, ``error_area``,
    ``summary``, ``details``, ``what_if``, ``snippet``, ``download`` (a link to the last export), one attribute per
    control (``autocast``, ``low_precision``, ``find_box``, ``undo_button`` ...), and the "Which nodes matter"
    panel's (``matter_panel``, an Accordion, collapsed: ``sensitivity_button``, ``budget``, ``search_backend``,
    ``confirm``, ``search_button``, ``frontier_button``, ``matter_text``, ``matter_progress``, ``frontier_box``).

    State for tests and scripts: the traits below; ``drawn`` (the plain Figure the graph draws into;
    ``figure_sync.last`` is what the last update sent the browser); ``errors`` (messages shown in ``error_area``);
    ``frontier_app`` (the FrontierWidget the panel shows, once computed); ``search_options`` and
    ``frontier_options`` (extra keyword arguments for ``explorer.search`` and ``explorer.frontier``, e.g.
    ``{"isolate": False}``: compile in this process; their ``backend`` otherwise comes from the ``search_backend``
    choice).

    >>> from mixprec_explorer import Explorer
    >>> from mixprec_explorer.examples import reference_autocast_model
    >>> app = WidgetApp(Explorer(*reference_autocast_model()))
    >>> app.click_point(app.point_index("linear_1"))
    >>> sorted(app.explorer.settings.autocast_excluded_nodes)
    ['^linear2$']
    """

    # -- the view state the parts share (observed: see AppHost) ------------------------------------------------------
    color_by = Unicode("precision", help="the graph's colouring (viz.colors.COLOR_BY); the graph recolours on a change")
    group_by_module: Any = AnyTrait("auto", help='"auto" (a large graph opens grouped by module), None (every node '
                                                 "drawn) or a module depth; the graph redraws on a change")
    selected = Unicode(None, allow_none=True, help="key of the last clicked or found point")
    found = List(Unicode(), help="nodes the last find (or engine layer) ringed")
    notes = List(Unicode(), help="warnings of the last settings change, shown in the summary")
    last_exclusion = Instance(Exclusion, allow_none=True, help="what the last click toggled")

    def __init__(self, explorer: Explorer, *, color_by: str = "precision", group_by_module: Grouping = "auto",
                 height: int | None = None, search_options: dict[str, Any] | None = None,
                 frontier_options: dict[str, Any] | None = None) -> None:
        super().__init__(color_by=color_by, group_by_module=group_by_module)
        self.explorer = explorer
        self.messages = StatusArea()
        self.controls = Controls(self)
        self.graph = GraphFigure(self, height=height)
        self.plan_panel = PlanPanel(self)
        self.export_panel = ExportPanel(self)
        self.measure = MeasurePanel(self, backend_status(self.explorer), calibrate=self._measure_calibration)
        self.analysis = AnalysisPanel(self, search_options=search_options, frontier_options=frontier_options)
        if explorer.last_profile is not None:  # profiled before the widget was made
            self.measure.show_profile(explorer.last_profile)
        self._name_widgets()
        self.root = self._assemble()
        self.root.app = self  # reach the app from the displayed box
        self.refresh()

    def _name_widgets(self) -> None:
        """The parts' widgets under the app's own names (they are never replaced, so these stay the same objects)."""
        c, g, p, e, m, a, s = (self.controls, self.graph, self.plan_panel, self.export_panel, self.measure,
                               self.analysis, self.messages)
        self.explicit_typing, self.autocast, self.low_precision = c.explicit_typing, c.autocast, c.low_precision
        self.fp32_acc, self.output_threshold, self.depth_limit = c.fp32_acc, c.output_threshold, c.depth_limit
        self.excluded_ops, self.color_by_choice, self.group_choice = c.excluded_ops, c.color_by_choice, c.group_choice
        self.collapse_button, self.find_box, self.find_button = c.collapse_button, c.find_box, c.find_button
        self.undo_button, self.redo_button = c.undo_button, c.redo_button
        self.figure_widget, self.figure_sync = g.figure_widget, g.figure_sync
        self.what_if, self.summary, self.details = p.what_if, p.summary, p.details
        self.export_path, self.export_format, self.export_button = e.export_path, e.export_format, e.export_button
        self.download, self.snippet = e.download, e.snippet
        self.compile_button, self.calibrate_button, self.progress = m.compile_button, m.calibrate_button, m.progress
        self.backend_note, self.chart_box = m.backend_note, m.chart_box
        self.matter_panel, self.sensitivity_button, self.budget = a.matter_panel, a.sensitivity_button, a.budget
        self.search_backend, self.confirm, self.search_button = a.search_backend, a.confirm, a.search_button
        self.frontier_button, self.matter_text, self.matter_progress = a.frontier_button, a.matter_text, \
            a.matter_progress
        self.frontier_box = a.frontier_box
        self.status, self.error_area, self.clear_errors_button = s.status, s.error_area, s.clear_errors_button

    def _assemble(self) -> widgets.VBox:
        """The app's layout, top to bottom: settings, view row, graph beside summary and details, export, compile,
        latency chart, "Which nodes matter", status, errors."""
        W = widgets
        row = functools.partial(W.HBox, layout=W.Layout(flex_flow="row wrap", align_items="center",
                                                        grid_gap="4px 12px"))
        settings_box = W.VBox([
            row([self.explicit_typing, self.autocast, self.low_precision, self.fp32_acc]),
            row([self.output_threshold, self.depth_limit]),
        ])
        keep = functools.partial(W.HBox, layout=W.Layout(flex_flow="row nowrap", align_items="center",
                                                         grid_gap="4px", flex="0 0 auto"))
        # parts that wrap as wholes: Undo and Redo (and Find with its box) stay side by side
        view_box = row([keep([self.color_by_choice, self.group_choice, self.collapse_button]),
                        keep([self.find_box, self.find_button]), keep([self.undo_button, self.redo_button])])
        side = W.VBox([W.HTML("<b>What if</b>"), self.what_if, W.HTML("<b>Summary</b>"), self.summary,
                       W.HTML("<b>Details</b>"), self.details,
                       self.excluded_ops], layout=W.Layout(width="34%", min_width="260px"))
        graph = W.Box([self.figure_widget], layout=W.Layout(width="66%"))
        main = W.HBox([graph, side], layout=W.Layout(width="100%"))
        export_box = W.VBox([row([self.export_path, self.export_format, self.export_button, self.download,
                                  self.export_panel.compare_to]),
                             self.snippet])
        compile_box = row([self.compile_button, self.calibrate_button, self.progress, self.backend_note])
        errors_box = row([self.error_area, self.clear_errors_button])
        return W.VBox([settings_box, view_box, main, export_box, compile_box, self.chart_box, self.matter_panel,
                       self.status, errors_box], layout=W.Layout(width="100%"))

    # -- what the parts ask of the app (AppHost) ---------------------------------------------------------------------
    def refresh(self) -> None:
        """Re-plan and recolour the figure in place; update the controls, what if, summary, details, snippet."""
        plan = self.explorer.plan()
        self.graph.draw(plan)
        self.controls.sync()
        self.plan_panel.show(plan)
        self.export_panel.show()

    def apply(self, change: Callable[[], T]) -> T:
        """Run a change of the explorer's settings, keeping its warnings as ``notes`` rather than losing them."""
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = change()
        self.notes = [str(w.message) for w in caught]
        # assigning settings already ran check_settings and warned each finding: remember them
        self.plan_panel.remember_checks(self.explorer.settings, [str(w.message) for w in caught
                                                                 if issubclass(w.category, SettingsWarning)])
        return result

    def color_nodes_by(self, mode: str) -> None:
        """Colour the graph by ``mode`` (the graph observes ``color_by``); where that cannot be drawn yet, the
        colouring stays as it was and the error is raised."""
        previous = self.color_by
        try:
            self.color_by = mode
        except Exception:
            self.color_by = previous
            raise

    def say(self, html: str) -> None:
        """Put one line of news (HTML) in the status line."""
        self.messages.say(html)

    def report_error(self, where: str, err: BaseException) -> None:
        """Record an error and show it in the error area (traceback folded); put the controls back in step."""
        self.messages.report(where, err)
        try:
            self.controls.sync()
        except Exception as inner:  # pragma: no cover - the sync itself failing
            self.messages.report("restoring the controls", inner)

    def clear_errors(self) -> None:
        """Empty the error area (``errors`` keeps its history)."""
        self.messages.clear()

    def find(self, query: str) -> list[str]:
        """Ring the nodes (or their collapsed modules) matching ``query`` and show the first one's details."""
        return self.graph.find(query)

    def ring(self, names: list[str]) -> None:
        """Ring the points drawing ``names`` (pan to the first if it is out of view)."""
        self.graph.ring(names)

    def collapse_all(self) -> None:
        """Close every expanded module."""
        self.graph.collapse_all()

    def show_profile(self, profile: Any) -> None:
        """Show the latency chart and the engine view of ``profile`` below the compile row."""
        self.measure.show_profile(profile)

    def sync_frontier(self) -> None:
        """Ring the frontier's plan that the settings now are, if a frontier is shown."""
        self.analysis.sync_frontier()

    # -- the graph ---------------------------------------------------------------------------------------------------
    @property
    def drawn(self) -> go.Figure:
        """The plain Figure the graph draws into; the browser's FigureWidget mirrors it."""
        return self.graph.drawn

    @property
    def node_trace(self) -> Any:
        """The FigureWidget trace that draws the nodes (the one that takes clicks)."""
        return self.graph.node_trace

    @property
    def view(self) -> GraphView:
        """What the figure currently draws."""
        return self.graph.view

    @property
    def expanded(self) -> set[str]:
        """Module paths the graph has opened one level."""
        return self.graph.expanded

    def point_index(self, name: str) -> int:
        """Index in :attr:`node_trace` of the point that draws node (or module key) ``name``."""
        return self.graph.point_index(name)

    def point_colors(self) -> list[str]:
        """Each point's colour as drawn (see :meth:`GraphFigure.point_colors`)."""
        return self.graph.point_colors()

    def click_point(self, index: int) -> None:
        """What a click on point ``index`` does: expand a collapsed module, else toggle the node's module exclusion."""
        self.graph.click_point(index)

    # -- controls ----------------------------------------------------------------------------------------------------
    def undo(self) -> None:
        """Go back to the previous settings; the status line says what that changed."""
        self.controls.undo()

    def redo(self) -> None:
        """Re-apply undone settings; the status line says what that changed."""
        self.controls.redo()

    # -- export and measurements -------------------------------------------------------------------------------------
    def export(self) -> Path | None:
        """Write the settings to the path in the export box and offer them as a download (see ExportPanel.export)."""
        return self.export_panel.export()

    def compile_and_profile(self) -> None:
        """Compile the current plan, profile it, try accuracy, then offer the measured colourings."""
        self.measure.compile_and_profile()

    def calibrate_what_if(self) -> None:
        """Measure the all-FP32 and all-low plans and sensitivity, so that every click is priced."""
        self.measure.calibrate_what_if()

    def _measure_calibration(self) -> None:
        """The calibration itself, on the default backend (the measure panel's button runs it)."""
        self.explorer.measure_calibration()

    def select_layer(self, position: int) -> tuple[str, ...]:
        """Ring the FX nodes the engine layer at ``position`` ran, outline it; returns those nodes."""
        return self.measure.select_layer(position)

    def outline_layers(self, positions: list[int]) -> None:
        """Outline the engine layers at ``positions`` in the engine view (the others plain)."""
        self.measure.outline_layers(positions)

    @property
    def chart_widget(self) -> go.FigureWidget | None:
        """The latency chart, once a profile exists."""
        return self.measure.chart_widget

    @property
    def engine_widget(self) -> go.FigureWidget | None:
        """The engine's layers in order, once a profile exists."""
        return self.measure.engine_widget

    # -- "Which nodes matter" ----------------------------------------------------------------------------------------
    def run_sensitivity(self) -> Any:
        """``explorer.sensitivity()``; colour the graph by it and list the top modules."""
        return self.analysis.run_sensitivity()

    def run_search(self) -> Any:
        """``explorer.search`` within the budget box's error; loads the result (undoable) and explains it."""
        return self.analysis.run_search()

    def show_frontier(self) -> Any:
        """``explorer.frontier()`` and its widget below the panel (a click there loads a plan)."""
        return self.analysis.show_frontier()

    def frontier_widget(self, frontier: Any = None) -> widgets.VBox:
        """A frontier scatter whose clicks load a plan into this app (see AnalysisPanel.frontier_widget)."""
        return self.analysis.frontier_widget(frontier)

    @property
    def frontier_app(self) -> Any:
        """The FrontierWidget the panel shows, once computed (else None)."""
        return self.analysis.frontier_app

    @property
    def search_options(self) -> dict[str, Any]:
        """Extra keyword arguments for ``explorer.search`` (the panel's)."""
        return self.analysis.search_options

    @search_options.setter
    def search_options(self, value: dict[str, Any]) -> None:
        self.analysis.search_options = dict(value)

    @property
    def frontier_options(self) -> dict[str, Any]:
        """Extra keyword arguments for ``explorer.frontier`` (the panel's)."""
        return self.analysis.frontier_options

    @frontier_options.setter
    def frontier_options(self, value: dict[str, Any]) -> None:
        self.analysis.frontier_options = dict(value)

    # -- errors ------------------------------------------------------------------------------------------------------
    @property
    def errors(self) -> list[str]:
        """Every error a callback raised, oldest first (the error area shows the last few)."""
        return self.messages.errors


def build_widget(explorer: Explorer, **options: Any) -> widgets.VBox:
    """The interactive view of ``explorer`` (returned, not displayed); ``.app`` on it is the :class:`WidgetApp`.

    Options: ``color_by``, ``group_by_module``, ``height``, ``search_options``, ``frontier_options`` (see
    :class:`WidgetApp`).
    """
    return WidgetApp(explorer, **options).root
