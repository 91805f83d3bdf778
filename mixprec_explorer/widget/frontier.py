"""The frontier in a notebook: click a plan on the speed-versus-error scatter to load it into the explorer.

:class:`FrontierWidget` holds the widgets; :func:`build_frontier_widget` returns its root box (never displays
it). Loading a plan assigns ``explorer.settings``, so the explorer's undo history keeps every load. A click
only swaps settings and moves one marker: nothing is planned, compiled or measured.
"""

from __future__ import annotations

import traceback
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets
import plotly.graph_objects as go

from ..errors import MissingResult
from ..viz.frontier import frontier_figure
from ._format import esc, num
from .host import FrontierExplorer

if TYPE_CHECKING:
    from ..results import Frontier, FrontierPoint

__all__ = ["FrontierWidget", "build_frontier_widget"]

PLANS, FRONT, LOADED = range(3)  #: trace order: every plan (takes clicks), the Pareto line, the loaded-plan ring
_NONE = -1  #: plan_choice value when no plan of the frontier is loaded




class FrontierWidget:
    """Frontier scatter, plan list, undo and status, bound to ``explorer``; show ``.root``.

    State for tests and scripts: ``figure_widget``, ``loaded`` (index of the loaded point, or None),
    ``status``, ``details``, ``errors`` (messages shown in ``error_area``), ``plan_choice``, ``undo_button``.
    """

    def __init__(self, explorer: FrontierExplorer, frontier: Frontier | None = None, *,
                 on_load: Callable[[FrontierPoint | None], Any] | None = None, height: int | None = None) -> None:
        frontier = frontier if frontier is not None else explorer.last_frontier
        if frontier is None:
            raise MissingResult("no frontier to show: run ex.frontier(inputs) first, or pass frontier=")
        self.explorer = explorer
        self.frontier = frontier
        self.on_load = on_load
        self.errors: list[str] = []
        self.notes: list[str] = []  #: settings warnings from the last load (shown, not raised)
        self.loaded: int | None = None
        self._syncing = False
        fig = frontier_figure(frontier)
        fig.add_trace(go.Scatter(x=[], y=[], mode="markers", name="loaded plan", hoverinfo="skip",
                                 marker={"symbol": "circle-open", "size": 22, "color": "#000000",
                                         "line": {"width": 2.5}}))
        fig.update_layout(height=height or 420, clickmode="event", margin={"l": 10, "r": 10, "t": 50, "b": 40})
        self.figure_widget = go.FigureWidget(fig)
        self.figure_widget.data[PLANS].on_click(self._on_click)
        W = widgets
        self.plan_choice = W.Dropdown(options=self._choices(), value=_NONE, description="plan",
                                      style={"description_width": "initial"}, layout=W.Layout(width="60%"))
        self.plan_choice.observe(self._on_choice, names="value")
        self.undo_button = W.Button(description="Undo", icon="undo", layout=W.Layout(width="90px"),
                                    tooltip="back to the settings before the last change")
        self.undo_button.on_click(lambda _: self.undo())
        self.status = W.HTML()
        self.details = W.HTML()
        self.error_area = W.HTML()
        hint = W.HTML("<small>Click a plan to load it into the explorer's settings (Undo goes back). "
                      "Plans with an error of 0 or inf are off the log axis: pick them from the list.</small>")
        self.root = W.VBox([self.figure_widget, hint, W.HBox([self.plan_choice, self.undo_button]), self.status,
                            self.details, self.error_area], layout=W.Layout(width="100%"))
        self.root.app = self  # reach the widget from the displayed box
        self.sync()

    # -- state ------------------------------------------------------------------------------------------------
    def _choices(self) -> list[tuple[str, int]]:
        unit = "ms" if self.frontier.latency_source == "measured" else "ms est."
        return [("(none of these plans loaded)", _NONE)] + [
            (f"{p.label}: {self.frontier.metric} {num(p.error)}, {num(p.latency_ms)} {unit}"
             + (" · front" if p.on_front else ""), i) for i, p in enumerate(self.frontier.points)]

    def index_of_current(self) -> int | None:
        """Index of the frontier point whose settings are the explorer's current ones, or None."""
        current = self.explorer.settings
        return next((i for i, p in enumerate(self.frontier.points) if p.settings == current), None)

    def sync(self) -> None:
        """Ring, list and text in step with the explorer's settings (which other views may have changed)."""
        self.loaded = self.index_of_current()
        pts = self.frontier.points
        ring = self.figure_widget.data[LOADED]
        with self.figure_widget.batch_update():
            ring.x = [pts[self.loaded].latency_ms] if self.loaded is not None else []
            ring.y = [pts[self.loaded].error] if self.loaded is not None else []
        self._syncing = True
        try:
            self.plan_choice.value = self.loaded if self.loaded is not None else _NONE
        finally:
            self._syncing = False
        self.undo_button.disabled = not self.explorer.can_undo
        self.details.value = self._details_html()

    def _details_html(self) -> str:
        if self.loaded is None:
            return "<div style='font-size:12px'>The explorer's settings are none of these plans.</div>"
        p = self.frontier.points[self.loaded]
        source = "measured" if p.measured else f"estimated ({self.frontier.latency_source})"
        kept = ", ".join(f"<code>{esc(m or '(root)')}</code>" for m in p.fp32_modules[:12]) or "none"
        if len(p.fp32_modules) > 12:
            kept += f" and {len(p.fp32_modules) - 12} more"
        lines = [f"loaded: <b>{esc(p.label)}</b>" + (" (on the Pareto front)" if p.on_front else ""),
                 f"{esc(self.frontier.metric)}: <b>{num(p.error)}</b> · latency: <b>{num(p.latency_ms)} ms</b> "
                 f"{esc(source)}",
                 f"modules kept in FP32: {kept}"]
        lines += [f"<span style='color:#8a4b00'>&#9888; {esc(n)}</span>" for n in self.notes]
        return "<div style='font-size:12px'>" + "<br>".join(lines) + "</div>"

    # -- actions ----------------------------------------------------------------------------------------------
    def _on_click(self, trace: Any, points: Any, state: Any) -> None:
        if points is not None and points.point_inds:
            i = points.point_inds[0]
            data = trace.customdata
            self.load(int(data[i]) if data is not None else i)

    def _on_choice(self, change: dict[str, Any]) -> None:
        if not self._syncing and change["new"] != _NONE:
            self.load(change["new"])

    def load(self, index: int) -> None:
        """Make point ``index``'s settings the explorer's (undoable); errors are shown, not raised."""
        try:
            point = self.frontier.points[index]
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                self.explorer.settings = point.settings
            self.notes = [str(w.message) for w in caught]
            self.sync()
            self.status.value = (f"loaded <b>{esc(point.label)}</b> into the explorer's settings: "
                                 f"{esc(self.frontier.metric)} {num(point.error)}, {num(point.latency_ms)} ms")
            if self.on_load is not None:
                self.on_load(point)
        except Exception as err:  # shown to the user, never lost
            self.report_error("loading a plan", err)

    def undo(self) -> None:
        """Go back to the explorer's previous settings."""
        try:
            self.explorer.undo()
            self.notes = []
            self.sync()
            self.status.value = ("undone: " + (f"<b>{esc(self.frontier.points[self.loaded].label)}</b> is loaded"
                                               if self.loaded is not None else "settings are none of these plans"))
            if self.on_load is not None:
                self.on_load(self.frontier.points[self.loaded] if self.loaded is not None else None)
        except Exception as err:
            self.report_error("undo", err)

    def report_error(self, where: str, err: BaseException) -> None:
        """Record an error and show it (traceback folded); the widget keeps working."""
        message = f"{where}: {type(err).__name__}: {err}"
        self.errors.append(message)
        tb = "".join(traceback.format_exception(type(err), err, err.__traceback__)[-6:])
        self.error_area.value += (f"<details><summary style='color:#b00020'>{esc(message)}</summary>"
                                  f"<pre style='font-size:11px'>{esc(tb)}</pre></details>")
        self.status.value = f"<span style='color:#b00020'>{esc(message)}</span>"
        try:
            self.sync()
        except Exception as inner:  # pragma: no cover - the sync itself failing: keep the message, no loop
            self.errors.append(f"restoring the view: {type(inner).__name__}: {inner}")


def build_frontier_widget(explorer: FrontierExplorer, frontier: Frontier | None = None, **options: Any) -> widgets.VBox:
    """The frontier scatter as a widget (returned, not displayed); ``.app`` on it is the :class:`FrontierWidget`.

    ``frontier`` defaults to ``explorer.last_frontier`` (where ``ex.frontier(inputs)`` leaves it).
    Options: ``on_load`` (called with the loaded FrontierPoint, or None after an undo to no frontier plan),
    ``height`` (px).
    """
    return FrontierWidget(explorer, frontier, **options).root
