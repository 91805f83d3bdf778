"""The notebook app: a plotly FigureWidget of the graph with controls, all bound to one Explorer.

:class:`WidgetApp` holds the widgets; :func:`build_widget` returns its root box (never displays it).
Every callback runs guarded: an error is shown in the app's error area and the app keeps working.
A collapsed "Which nodes matter" panel runs sensitivity, the error-budget search and the frontier
(:meth:`WidgetApp.run_sensitivity`, :meth:`WidgetApp.run_search`, :meth:`WidgetApp.show_frontier`);
none of them is on the click path of the graph.

This module puts the app together (its state, its layout, :meth:`WidgetApp.refresh`); each part lives in its
own module and is mixed into :class:`WidgetApp`:

- :mod:`.controls`: the settings controls and the view row, undo/redo, keeping the controls in step
- :mod:`.figure`: the graph's FigureWidget; clicks, colouring, grouping, find
- :mod:`.panels`: summary, details, export, compile & profile, the latency chart
- :mod:`.matter`: the "Which nodes matter" panel: sensitivity, search, frontier
- :mod:`.status`: the status line, the error area, and :func:`~.status.guarded`
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from ._format import esc
from .analysis_panel import MatterMixin, search_backends, search_text, sensitivity_text
from .controls import ControlsMixin
from .figure import FigureMixin, find_nodes
from .panels import PanelsMixin, backend_status
from .status import StatusMixin

if TYPE_CHECKING:
    from ..explorer import Exclusion, Explorer
    from ..settings import Settings
    from ..viz.graph import Grouping

__all__ = ["WidgetApp", "backend_status", "build_widget", "find_nodes", "search_backends", "search_text",
           "sensitivity_text"]


class WidgetApp(ControlsMixin, FigureMixin, PanelsMixin, MatterMixin, StatusMixin):
    """Graph, controls, summary, details, export and compile, bound to ``explorer``; show ``app.root``.

    State for tests and scripts: ``figure_widget`` (the FigureWidget the browser shows), ``drawn`` (the plain
    Figure the app draws into; ``figure_sync.last`` is what the last update sent the browser), ``errors``
    (messages shown in ``error_area``), ``status``, ``summary``, ``details``, ``snippet``, ``download`` (a link to
    the last export), ``selected`` (the clicked key), ``last_exclusion``, and one attribute per control
    (``autocast``, ``low_precision``, ...). ``group_by_module`` is "auto" (a large graph opens grouped by module),
    None (every node drawn) or a module depth.

    The "Which nodes matter" panel (``matter_panel``, an Accordion, collapsed): ``sensitivity_button``,
    ``budget``, ``search_backend``, ``confirm``, ``search_button``, ``frontier_button``, ``matter_text`` (what
    the last of them found), ``matter_progress`` and ``frontier_box`` (the frontier widget once computed;
    ``frontier_app`` is its FrontierWidget). ``search_options`` and ``frontier_options`` are extra keyword
    arguments for ``explorer.search`` and ``explorer.frontier`` (e.g. ``{"isolate": False}``: compile in this
    process; ``{"backend": None}``); their ``backend`` otherwise comes from the ``search_backend`` choice.

    >>> from mixprec_explorer import Explorer
    >>> from mixprec_explorer.examples import reference_autocast_model
    >>> app = WidgetApp(Explorer(*reference_autocast_model()))
    >>> app.click_point(app.point_index("linear_1"))
    >>> sorted(app.explorer.settings.autocast_excluded_nodes)
    ['^linear2$']
    """

    def __init__(self, explorer: Explorer, *, color_by: str = "precision", group_by_module: Grouping = "auto",
                 height: int | None = None, search_options: dict[str, Any] | None = None,
                 frontier_options: dict[str, Any] | None = None) -> None:
        self.explorer = explorer
        self.search_options: dict[str, Any] = dict(search_options or {})
        self.frontier_options: dict[str, Any] = dict(frontier_options or {})
        self.frontier_app: Any = None  #: the FrontierWidget the panel shows, once computed
        self.color_by = color_by
        self.group_by_module = group_by_module
        self.expanded: set[str] = set()
        self.height = height
        self.selected: str | None = None  #: key of the last clicked or found point
        self.found: list[str] = []  #: nodes the last search matched
        self.last_exclusion: Exclusion | None = None
        self.errors: list[str] = []  #: every error a callback raised, oldest first
        self._error_html: list[str] = []
        self._check_cache: dict[Settings, list[str]] = {}
        self.notes: list[str] = []  #: warnings from the last settings change
        self._syncing = False
        self._costs_checked: tuple[tuple[int, int], bool] | None = None
        self.what_if = widgets.HTML()  #: predicted latency and error of the current plan, and the last click's change
        self._prediction: Any = None  #: the prediction shown, to price the next change against
        self._build_status()
        self._build_controls()
        self._build_panels(backend_status())
        self._build_matter_panel()
        self._build_figure()
        if explorer.last_profile is not None:  # profiled before the widget was made
            self._show_chart(explorer.last_profile)
        self.root = self._assemble()
        self.root.app = self  # reach the app from the displayed box
        self.refresh()

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
        export_box = W.VBox([row([self.export_path, self.export_format, self.export_button, self.download]),
                             self.snippet])
        compile_box = row([self.compile_button, self.calibrate_button, self.progress, self.backend_note])
        errors_box = row([self.error_area, self.clear_errors_button])
        return W.VBox([settings_box, view_box, main, export_box, compile_box, self.chart_box, self.matter_panel,
                       self.status, errors_box], layout=W.Layout(width="100%"))

    # -- refresh: recolour in place, then the text panels -------------------------------------------------------
    def refresh(self) -> None:
        """Re-plan and recolour the figure in place; update summary, details, snippet and controls."""
        plan = self.explorer.plan()
        self._draw(plan)
        self._sync_controls()
        self.summary.value = self._summary_html(plan)
        self.details.value = self._details_html(plan)
        self.what_if.value = self._what_if_html()
        snippet = self.explorer.settings.to_python()
        self.snippet.value = snippet
        self.snippet.rows = snippet.count("\n") + 1  # every line shows, autocast_excluded_nodes included


    def _what_if_html(self) -> str:
        """The current plan's predicted latency and error (no compile), the change since the last refresh, and the
        last measured figures of this very plan where there are any."""
        try:
            now = self.explorer.predict()
        except Exception as err:  # the what-if is an aid: never lose the click over it
            return f"<small>no prediction ({esc(type(err).__name__)}: {esc(err)})</small>"
        before, self._prediction = self._prediction, now
        if now.latency_ms is None and now.error is None:
            return f"<small>{esc(now.statement)}</small>"
        text = f"predicted <b>{esc(now.summary())}</b>"
        if before is not None and before.settings != now.settings:
            text += f"<br>this change: <b>{esc(now.minus(before).text())}</b>"
        if now.measured_latency_ms is not None or now.measured_error is not None:
            ms = f"{now.measured_latency_ms:.4g} ms" if now.measured_latency_ms is not None else "? ms"
            rel = f"{now.measured_error:.3g}" if now.measured_error is not None else "?"
            text += f"<br>measured for this plan: {ms}, rel L2 {rel}"
        return f"<div style='font-size:12px'>{text}</div>"


def build_widget(explorer: Explorer, **options: Any) -> widgets.VBox:
    """The interactive view of ``explorer`` (returned, not displayed); ``.app`` on it is the :class:`WidgetApp`.

    Options: ``color_by``, ``group_by_module``, ``height``, ``search_options``, ``frontier_options`` (see
    :class:`WidgetApp`).
    """
    return WidgetApp(explorer, **options).root

