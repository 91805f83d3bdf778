"""The collapsed "Which nodes matter" panel (:class:`AnalysisPanel`): sensitivity, the search within an error
budget, and the frontier.

Each runs on demand from its button (:meth:`AnalysisPanel.run_sensitivity`, :meth:`AnalysisPanel.run_search`,
:meth:`AnalysisPanel.show_frontier`); none of them is on the click path of the graph. Latency comes from the
backend the panel's choice names, or from the FLOPs/bytes estimate where no backend is usable. What they find
reaches the rest of the app through it: the colouring (``color_nodes_by``), the settings (``refresh``), a profile
(``show_profile``).
"""

from __future__ import annotations

import contextlib
import functools
import warnings
from collections.abc import Iterator
from typing import Any

import ipywidgets as widgets

from ..dtypes import display_name
from ..errors import SettingsWarning
from ._format import esc, num, opt
from .host import AppExplorer, AppHost
from .status import guarded

__all__ = ["AnalysisPanel", "search_backends", "search_text", "sensitivity_text"]

_TOP_MODULES = 5  #: modules the sensitivity text lists
_ESTIMATE = "estimate"  #: search backend choice: price nodes from FLOPs/bytes, no compile, no confirmation


def search_backends(explorer: AppExplorer) -> list[tuple[str, str]]:
    """(label, value) of what the panel's search and frontier can price nodes with here, usable backends first.

    PyTorch first (fast, per-node prices), then TensorRT: the search also confirms its plan there. The
    FLOPs/bytes estimate (no compile, nothing confirmed) is always offered, and is the only choice where no
    backend is usable. Never raises.
    """
    try:
        status = explorer.available_backends()
    except Exception:  # the backends layer missing or broken: the estimate still works
        status = {}
    labels = {"torch": "PyTorch", "tensorrt": "TensorRT"}
    usable = [(f"{label} profiles", name) for name, label in labels.items()
              if status.get(name, (False, ""))[0]]
    return usable + [("FLOPs/bytes estimate (no compile)", _ESTIMATE)]


def sensitivity_text(sens: Any, top: int = _TOP_MODULES) -> str:
    """What the panel shows for a :class:`~mixprec_explorer.sensitivity.Sensitivity` (plain text)."""
    low = display_name(sens.low_dtype)
    helpful = [(module, gain) for module, gain in sens.ranking("module") if gain > 0][:top]
    lines = [f"{sens.metric} of the all-{low} plan: {num(sens.all_low_error)}",
             f"top {len(helpful)} modules by error removed when kept in FP32:" if helpful
             else "no module removes any error when kept in FP32 alone"]
    for i, (module, gain) in enumerate(helpful, 1):
        lines.append(f"{i}. {module or '(root)'}: removes {num(gain)} "
                     f"(alone in {low}: {num(sens.module_low_error.get(module, 0.0))})")
    lines.append(f"{sens.nodes_evaluated} node evaluations (one forward pass per change: {sens.naive_evaluations})")
    return "\n".join(lines)


def search_text(result: Any) -> str:
    """What the panel shows for a :class:`~mixprec_explorer.search.SearchResult` (plain text)."""
    lines = [f"budget {result.metric} <= {result.budget:.3g}: "
             + ("within budget" if result.within_budget else "NOT within budget"),
             f"error (forward pass): {num(result.error)} · estimated latency {result.estimated_latency_ms:.4g} ms "
             f"({result.latency_source})",
             "exclusions:", *("  " + line for line in result.explain().splitlines())]
    if result.decisions():
        lines += ["how:", *("  " + line for line in result.decisions())]
    c = result.confirmed or {}
    if c:
        chosen, fp32, low = c.get("chosen") or {}, c.get("fp32") or {}, c.get("all_low") or {}
        share = result.time_saved_share()
        lines += [f"confirmed on {c.get('backend', '?')}: error {opt(chosen.get('error'))}, "
                  f"{opt(chosen.get('latency_ms'), '.4g')} ms (all FP32 {opt(fp32.get('latency_ms'), '.4g')} ms, "
                  f"all low {opt(low.get('latency_ms'), '.4g')} ms)",
                  f"speedup over FP32: {opt(c.get('speedup_over_fp32'))}x (all low: {opt(c.get('all_low_speedup'))}x)"
                  f" · share of all-low's time saving kept: {opt(share, '.0%')}"]
        if result.compiles:
            lines.append(f"backend compiles: {result.compiles} ({result.compiles_beyond_calibration} beyond all-FP32 "
                         f"and all-low" + (f", {result.compiles_reused} reused" if result.compiles_reused else "")
                         + ")")
    else:
        lines.append("not confirmed by a compile (estimate only, or confirm off)")
    lines.append("loaded into the explorer's settings (Undo goes back)")
    return "\n".join(lines)


class AnalysisPanel:
    """The "Which nodes matter" panel (``matter_panel``, an Accordion, collapsed), bound to ``app``.

    Widgets: ``sensitivity_button``, ``budget``, ``search_backend``, ``confirm``, ``search_button``,
    ``frontier_button``, ``matter_text`` (what the last of them found), ``matter_progress`` and ``frontier_box``
    (the frontier widget once computed). State: ``search_options`` and ``frontier_options`` (extra keyword
    arguments for ``explorer.search`` and ``explorer.frontier``; their ``backend`` otherwise comes from the
    ``search_backend`` choice) and ``frontier_app`` (the FrontierWidget shown, once computed).
    """

    def __init__(self, app: AppHost, *, search_options: dict[str, Any] | None = None,
                 frontier_options: dict[str, Any] | None = None) -> None:
        self.app = app
        self.search_options: dict[str, Any] = dict(search_options or {})
        self.frontier_options: dict[str, Any] = dict(frontier_options or {})
        self.frontier_app: Any = None  #: the FrontierWidget the panel shows, once computed
        W = widgets
        short = {"description_width": "initial"}
        self.sensitivity_button = W.Button(description="Sensitivity", icon="thermometer-half",
                                           layout=W.Layout(width="120px"),
                                           tooltip="error each module causes in low precision; colour the graph by it")
        self.budget = W.FloatText(value=1e-2, description="error budget (rel. L2)", style=short,
                                  layout=W.Layout(width="230px"))
        backends = search_backends(app.explorer)
        self.search_backend = W.Dropdown(options=backends, value=backends[0][1], description="latency from", style=short,
                                         layout=W.Layout(width="330px"))
        self.confirm = W.Checkbox(value=True, description="confirm with one compile", style=short, indent=False)
        self.search_button = W.Button(description="Search", icon="search-plus", layout=W.Layout(width="100px"),
                                      tooltip="fastest exclusions within the budget; loads them (undoable)")
        self.frontier_button = W.Button(description="Frontier", icon="line-chart", layout=W.Layout(width="100px"),
                                        tooltip="plans from all low precision to all FP32: latency against error")
        self.matter_progress = W.IntProgress(value=0, min=0, max=1, bar_style="info",
                                             layout=W.Layout(visibility="hidden", width="200px"))
        self.matter_text = W.Textarea(value="", disabled=True, rows=9, layout=W.Layout(width="98%"))
        self.frontier_box = W.VBox([], layout=W.Layout(display="none", width="100%"))
        self.sensitivity_button.on_click(lambda _: self.run_sensitivity())
        self.search_button.on_click(lambda _: self.run_search())
        self.frontier_button.on_click(lambda _: self.show_frontier())
        row = functools.partial(W.HBox, layout=W.Layout(flex_flow="row wrap", align_items="center",
                                                        grid_gap="4px 12px"))
        body = W.VBox([row([self.sensitivity_button, self.frontier_button, self.matter_progress]),
                       row([self.budget, self.search_backend, self.confirm, self.search_button]),
                       self.matter_text, self.frontier_box])
        self.matter_panel = W.Accordion(children=[body], selected_index=None, layout=W.Layout(width="100%"))
        self.matter_panel.set_title(0, "Which nodes matter: sensitivity, search within an error budget, frontier")

    def _panel_backend(self) -> str | None:
        """The backend the latency choice names; None for the FLOPs/bytes estimate."""
        choice = self.search_backend.value
        return None if choice == _ESTIMATE else choice

    def sync_frontier(self) -> None:
        """Ring the frontier's plan that the settings now are, if any (after a search, undo or redo; not a click)."""
        if self.frontier_app is not None:
            self.frontier_app.sync()

    @contextlib.contextmanager
    def _busy(self, what: str) -> Iterator[None]:
        """Panel buttons off and a busy bar while ``what`` runs; on failure the text says so, then re-raise."""
        buttons = (self.sensitivity_button, self.search_button, self.frontier_button)
        for button in buttons:
            button.disabled = True
        self.matter_progress.value, self.matter_progress.description = 0, what
        self.matter_progress.layout.visibility = "visible"
        self.app.say(f"{esc(what)}...")
        try:
            yield
            self.matter_progress.value = 1
        except Exception as err:
            self.matter_text.value = f"{what} failed: {type(err).__name__}: {err} (details in the errors below)"
            raise
        finally:
            for button in buttons:
                button.disabled = False
            self.matter_progress.layout.visibility = "hidden"

    @guarded("sensitivity")
    def run_sensitivity(self) -> Any:
        """``explorer.sensitivity()`` on the example inputs; colour the graph by it and list the top modules."""
        app = self.app
        with self._busy("sensitivity"):
            sens = app.explorer.sensitivity(progress=False)
        app.refresh()  # the colour dropdown now offers sensitivity, the details show it
        app.color_nodes_by("sensitivity")
        self.matter_text.value = sensitivity_text(sens)
        top = [(m, g) for m, g in sens.ranking("module")[:1] if g > 0]
        app.say("sensitivity computed: coloured by it" + (
            f"; keeping <code>{esc(top[0][0] or '(root)')}</code> in FP32 removes the most error" if top else ""))
        return sens

    @guarded("search")
    def run_search(self) -> Any:
        """``explorer.search`` within the budget box's error; loads the result (undoable) and explains it."""
        app = self.app
        options = {"backend": self._panel_backend(), "confirm": bool(self.confirm.value),
                   "progress": False, **self.search_options}
        budget = float(self.budget.value)
        profile = app.explorer.last_profile
        with self._busy("search"), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = app.explorer.search(budget=budget, **options)
        # the settings' warnings become notes (as a click's do); the compiles' own warnings go on as warnings
        app.notes = [str(w.message) for w in caught if issubclass(w.category, SettingsWarning)]
        for w in caught:
            if not issubclass(w.category, SettingsWarning):
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        measured = app.explorer.last_profile
        if measured is not None and measured is not profile:  # the search profiled its plans: show the last
            app.show_profile(measured)
        if app.color_by == "sensitivity":  # does not change with the settings: show the new precisions
            app.color_nodes_by("precision")
        app.refresh()
        self.sync_frontier()
        self.matter_text.value = search_text(result)
        n = len(result.exclusions)
        app.say(f"search loaded {n} exclusion(s): {result.metric} {num(result.error)} "
                + ("within" if result.within_budget else "<b>not</b> within") + f" the budget {budget:.3g}")
        return result

    @guarded("frontier")
    def show_frontier(self) -> Any:
        """``explorer.frontier()`` (latency from the panel's choice) and its widget below the panel.

        Clicking a plan there loads it into the explorer and refreshes the app.
        """
        with self._busy("frontier"):
            frontier = self.app.explorer.frontier(**{"backend": self._panel_backend(), "progress": False,
                                                      **self.frontier_options})
        box = self.frontier_widget(frontier)
        self.frontier_app = box.app
        self.frontier_box.children = (box,)
        self.frontier_box.layout.display = None
        front = frontier.front()
        self.matter_text.value = "\n".join(
            [f"{len(frontier.points)} plans, {len(front)} on the Pareto front (latency: {frontier.latency_source}):"]
            + [f"  {p.label}: {frontier.metric} {num(p.error)}, {p.latency_ms:.4g} ms"
               + (" (front)" if p.on_front else "") for p in frontier.points]
            + ["click a plan on the chart below to load it (Undo goes back)"])
        self.app.say(f"frontier of {len(frontier.points)} plans drawn below")
        return frontier

    def frontier_widget(self, frontier: Any = None) -> widgets.VBox:
        """The frontier scatter (default ``ex.frontier``'s last result) whose clicks load a plan into the app.

        Returns the root box of a :class:`~mixprec_explorer.widget.frontier.FrontierWidget`; display it beside
        the app. A load (or its undo) refreshes the app as a click on the graph does.
        """
        from .frontier import build_frontier_widget

        app = self.app

        def loaded(point: Any) -> None:
            app.notes = []
            app.refresh()
            app.say(f"loaded frontier plan <b>{esc(point.label)}</b>" if point is not None else "settings restored")

        return build_frontier_widget(app.explorer, frontier, on_load=loaded)
