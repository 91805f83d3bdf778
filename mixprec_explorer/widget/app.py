"""The notebook app: a plotly FigureWidget of the graph with controls, all bound to one Explorer.

:class:`WidgetApp` holds the widgets; :func:`build_widget` returns its root box (never displays it).
Every callback runs guarded: an error is shown in the app's error area and the app keeps working.
A collapsed "Which nodes matter" panel runs sensitivity, the error-budget search and the frontier
(:meth:`WidgetApp.run_sensitivity`, :meth:`WidgetApp.run_search`, :meth:`WidgetApp.show_frontier`);
none of them is on the click path of the graph.
"""

from __future__ import annotations

import contextlib
import functools
import html
import traceback
import warnings
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

import ipywidgets as widgets
import plotly.graph_objects as go
import torch

from .. import dtypes
from ..errors import SettingsError
from ..viz.graph import COLOR_BY, NODES, OverlayUnavailable, build_figure, build_view, highlight, node_errors, recolor
from ..viz.layout import GROUP_PREFIX, without_gc

if TYPE_CHECKING:
    from ..explorer import Exclusion, Explorer
    from ..policy import PrecisionPlan
    from ..settings import Settings
    from ..viz.graph import GraphView

__all__ = ["WidgetApp", "backend_status", "build_widget", "find_nodes", "search_backends", "search_text",
           "sensitivity_text"]

F = TypeVar("F", bound=Callable[..., Any])
_MAX_ERRORS_SHOWN = 8
_NEEDS = {"latency": "profile", "measured_dtype": "profile", "mismatch": "profile", "error": "accuracy",
          "sensitivity": "sensitivity"}
#: Colourings the dropdown leaves out: "changed" compares two plans (see mixprec_explorer.viz.compare).
_NOT_IN_DROPDOWN = ("changed",)
_TOP_MODULES = 5  #: modules the sensitivity text lists
_ESTIMATE = "estimate"  #: search backend choice: price nodes from FLOPs/bytes, no compile, no confirmation


def _guarded(where: str) -> Callable[[F], F]:
    """Run a callback; on any exception show it in the app's error area and put the controls back in step."""

    def decorate(method: F) -> F:
        @functools.wraps(method)
        def wrapper(self: WidgetApp, *args: Any, **kwargs: Any) -> Any:
            try:
                return method(self, *args, **kwargs)
            except Exception as err:  # shown to the user, never lost
                self.report_error(where, err)
                try:
                    self._sync_controls()
                except Exception as inner:  # pragma: no cover - the sync itself failing
                    self.report_error("restoring the controls", inner)
                return None

        return wrapper  # type: ignore[return-value]

    return decorate


def backend_status() -> tuple[bool, str]:
    """(a compile backend is usable here, what is usable or why none is) without raising."""
    try:
        from ..backends import available_backends
    except Exception as err:  # the backends layer missing or broken
        return False, f"no compile backend in this installation ({type(err).__name__}: {err})"
    try:
        status = available_backends()
    except Exception as err:
        return False, f"checking the backends failed ({type(err).__name__}: {err})"
    usable = [name for name, (ok, _) in status.items() if ok]
    if usable:
        return True, "backends available: " + ", ".join(usable)
    return False, "no backend is usable: " + "; ".join(f"{n}: {r}" for n, (_, r) in status.items())


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


_LOW_TYPES = {"none": None, "float16": torch.float16, "bfloat16": torch.bfloat16}


def _low_name(dtype: torch.dtype | None) -> str:
    return next(k for k, v in _LOW_TYPES.items() if v == dtype)


def _e(value: Any) -> str:
    return html.escape(str(value))


def _num(value: float) -> str:
    return "inf" if value == float("inf") else f"{value:.3g}"


def _opt(value: Any, spec: str = ".3g") -> str:
    return "-" if value is None else _num(value) if spec == ".3g" else format(value, spec)


def search_backends() -> list[tuple[str, str]]:
    """(label, value) of what the panel's search and frontier can price nodes with here, usable backends first.

    PyTorch first (fast, per-node prices), then TensorRT: the search also confirms its plan there. The
    FLOPs/bytes estimate (no compile, nothing confirmed) is always offered, and is the only choice where no
    backend is usable. Never raises.
    """
    try:
        from ..backends import available_backends

        status = available_backends()
    except Exception:  # the backends layer missing or broken: the estimate still works
        status = {}
    labels = {"torch": "PyTorch", "tensorrt": "TensorRT"}
    usable = [(f"{label} profiles", name) for name, label in labels.items()
              if status.get(name, (False, ""))[0]]
    return usable + [("FLOPs/bytes estimate (no compile)", _ESTIMATE)]


def sensitivity_text(sens: Any, top: int = _TOP_MODULES) -> str:
    """What the panel shows for a :class:`~mixprec_explorer.sensitivity.Sensitivity` (plain text)."""
    low = dtypes.display_name(sens.low_dtype)
    lines = [f"{sens.metric} of the all-{low} plan: {_num(sens.all_low_error)}",
             f"top {top} modules by error removed when kept in FP32:"]
    for i, (module, gain) in enumerate(sens.ranking("module")[:top], 1):
        lines.append(f"{i}. {module or '(root)'}: removes {_num(gain)} "
                     f"(alone in {low}: {_num(sens.module_low_error.get(module, 0.0))})")
    lines.append(f"{sens.nodes_evaluated} node evaluations (one forward pass per change: {sens.naive_evaluations})")
    return "\n".join(lines)


def search_text(result: Any) -> str:
    """What the panel shows for a :class:`~mixprec_explorer.search.SearchResult` (plain text)."""
    lines = [f"budget {result.metric} <= {result.budget:.3g}: "
             + ("within budget" if result.within_budget else "NOT within budget"),
             f"error (forward pass): {_num(result.error)} · estimated latency {result.estimated_latency_ms:.4g} ms "
             f"({result.latency_source})",
             "exclusions:", *("  " + line for line in result.explain().splitlines())]
    c = result.confirmed or {}
    if c:
        chosen, fp32, low = c.get("chosen") or {}, c.get("fp32") or {}, c.get("all_low") or {}
        share = c.get("share_of_all_low_speedup")
        lines += [f"confirmed on {c.get('backend', '?')}: error {_opt(chosen.get('error'))}, "
                  f"{_opt(chosen.get('latency_ms'), '.4g')} ms (all FP32 {_opt(fp32.get('latency_ms'), '.4g')} ms, "
                  f"all low {_opt(low.get('latency_ms'), '.4g')} ms)",
                  f"speedup over FP32: {_opt(c.get('speedup_over_fp32'))}x (all low: {_opt(c.get('all_low_speedup'))}x)"
                  f" · share of the all-low speedup: {_opt(share, '.0%')}"]
    else:
        lines.append("not confirmed by a compile (estimate only, or confirm off)")
    lines.append("loaded into the explorer's settings (Undo goes back)")
    return "\n".join(lines)


class WidgetApp:
    """Graph, controls, summary, details, export and compile, bound to ``explorer``; show ``app.root``.

    State for tests and scripts: ``figure_widget`` (the plotly FigureWidget), ``errors`` (messages shown in
    ``error_area``), ``status``, ``summary``, ``details``, ``snippet``, ``selected`` (the clicked key),
    ``last_exclusion``, and one attribute per control (``autocast``, ``low_precision``, ...).

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

    def __init__(self, explorer: Explorer, *, color_by: str = "precision", group_by_module: int | None = None,
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
        self._build_controls()
        self._build_matter_panel()
        self.figure_widget = go.FigureWidget(self._new_figure())
        self.figure_widget._config = {"scrollZoom": True, "displaylogo": False}  # tall graphs: scroll to zoom
        self._wire_figure()
        self.chart_widget: go.FigureWidget | None = None  #: the latency chart, once a profile exists
        self.chart_box = widgets.VBox([], layout=widgets.Layout(display="none"))
        if explorer.extensions.get("profile") is not None:  # profiled before the widget was made
            self._show_chart(explorer.extensions["profile"])
        self.root = self._assemble()
        self.root.app = self  # type: ignore[attr-defined]  # reach the app from the displayed box
        self.refresh()

    # -- construction ---------------------------------------------------------------------------------------
    def _build_controls(self) -> None:
        W = widgets
        s = self.explorer.settings
        short = {"description_width": "initial"}
        self.explicit_typing = W.Checkbox(value=s.use_explicit_typing, description="explicit typing", style=short,
                                          indent=False)
        self.autocast = W.Checkbox(value=s.enable_autocast, description="autocast", style=short, indent=False)
        # string values: a Dropdown shows a None value as an empty box
        self.low_precision = W.Dropdown(options=[("none", "none"), ("float16", "float16"), ("bfloat16", "bfloat16")],
                                        value=_low_name(s.autocast_low_precision_type), description="low precision",
                                        style=short, layout=W.Layout(width="200px"))
        self.fp32_acc = W.Checkbox(value=s.use_fp32_acc, description="FP32 accumulation", style=short, indent=False)
        self.output_threshold = W.FloatText(value=s.autocast_max_output_threshold, description="output threshold",
                                            style=short, layout=W.Layout(width="210px"))
        self.depth_limit = W.Text(value="" if s.autocast_max_depth_of_reduction is None
                                  else str(s.autocast_max_depth_of_reduction),
                                  placeholder="none", description="depth-of-reduction limit", style=short,
                                  continuous_update=False, layout=W.Layout(width="260px"))
        ops = self.explorer.ops()
        self.excluded_ops = W.SelectMultiple(
            options=[(f"{op.replace('torch.ops.', '')} ({n})", op) for op, n in ops.items()],
            value=(), rows=min(8, max(3, len(ops))), description="exclude ops", style=short,
            layout=W.Layout(width="98%"))
        self.color_by_choice = W.Dropdown(options=self._color_options(), value=self.color_by,
                                          description="colour by", style=short, layout=W.Layout(width="250px"))
        self.group_choice = W.Dropdown(options=[("no grouping", 0)] + [(f"modules at depth {d}", d)
                                                                      for d in (1, 2, 3, 4)],
                                       value=self.group_by_module or 0, description="group", style=short,
                                       layout=W.Layout(width="230px"))
        self.search = W.Text(placeholder="node name or module path", description="find", style=short,
                             continuous_update=False, layout=W.Layout(width="300px"))
        self.search_button = W.Button(description="Find", icon="search", layout=W.Layout(width="80px"))
        self.undo_button = W.Button(description="Undo", icon="undo", layout=W.Layout(width="90px"))
        self.redo_button = W.Button(description="Redo", icon="repeat", layout=W.Layout(width="90px"))
        self.collapse_button = W.Button(description="Collapse all", layout=W.Layout(width="110px"),
                                        tooltip="close every expanded module")
        self.summary = W.HTML()
        self.details = W.HTML(value="<i>Click a node: its module's exclusion toggles. Click a collapsed module "
                                    "to expand it.</i>")
        self.export_path = W.Text(value="mixprec_settings.json", description="export to", style=short,
                                  layout=W.Layout(width="360px"))
        self.export_format = W.Dropdown(options=[("JSON settings", "json"), ("Python snippet", "python")],
                                        value="json", layout=W.Layout(width="150px"))
        self.export_button = W.Button(description="Export", icon="download", button_style="primary",
                                      layout=W.Layout(width="100px"))
        self.snippet = W.Textarea(value="", disabled=True, rows=8, layout=W.Layout(width="98%"),
                                  description="compile call", style=short)
        self.compile_button = W.Button(description="Compile & profile", icon="play", layout=W.Layout(width="170px"))
        self.progress = W.IntProgress(value=0, min=0, max=3, description="", layout=W.Layout(visibility="hidden",
                                                                                           width="200px"))
        self.backend_note = W.HTML()
        self.status = W.HTML()
        self.error_area = W.HTML()
        self.clear_errors_button = W.Button(description="Clear errors", layout=W.Layout(width="110px",
                                                                                    display="none"))

        for control in (self.explicit_typing, self.autocast, self.low_precision, self.fp32_acc,
                        self.output_threshold, self.depth_limit, self.excluded_ops):
            control.observe(self._on_setting_change, names="value")
        self.color_by_choice.observe(self._on_color_by, names="value")
        self.group_choice.observe(self._on_group, names="value")
        self.search.observe(self._on_search_submit, names="value")
        self.search_button.on_click(lambda _: self.find(self.search.value))
        self.undo_button.on_click(lambda _: self.undo())
        self.redo_button.on_click(lambda _: self.redo())
        self.collapse_button.on_click(lambda _: self.collapse_all())
        self.export_button.on_click(lambda _: self.export())
        self.compile_button.on_click(lambda _: self.compile_and_profile())
        self.clear_errors_button.on_click(lambda _: self.clear_errors())
        ok, reason = backend_status()
        self.compile_button.disabled = not ok
        self.backend_note.value = f"<small>{_e(reason)}</small>"

    def _build_matter_panel(self) -> None:
        """The "Which nodes matter" controls: sensitivity, search within a budget, the frontier."""
        W = widgets
        short = {"description_width": "initial"}
        self.sensitivity_button = W.Button(description="Sensitivity", icon="thermometer-half",
                                           layout=W.Layout(width="120px"),
                                           tooltip="error each module causes in low precision; colour the graph by it")
        self.budget = W.FloatText(value=1e-2, description="error budget (rel. L2)", style=short,
                                  layout=W.Layout(width="230px"))
        backends = search_backends()
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

    def _assemble(self) -> widgets.VBox:
        W = widgets
        row = functools.partial(W.HBox, layout=W.Layout(flex_flow="row wrap", align_items="center",
                                                        grid_gap="4px 12px"))
        settings_box = W.VBox([
            row([self.explicit_typing, self.autocast, self.low_precision, self.fp32_acc]),
            row([self.output_threshold, self.depth_limit]),
        ])
        view_box = row([self.color_by_choice, self.group_choice, self.collapse_button, self.search,
                        self.search_button, self.undo_button, self.redo_button])
        side = W.VBox([W.HTML("<b>Summary</b>"), self.summary, W.HTML("<b>Details</b>"), self.details,
                       self.excluded_ops], layout=W.Layout(width="34%", min_width="260px"))
        graph = W.Box([self.figure_widget], layout=W.Layout(width="66%"))
        main = W.HBox([graph, side], layout=W.Layout(width="100%"))
        export_box = W.VBox([row([self.export_path, self.export_format, self.export_button]), self.snippet])
        compile_box = row([self.compile_button, self.progress, self.backend_note])
        errors_box = row([self.error_area, self.clear_errors_button])
        return W.VBox([settings_box, view_box, main, export_box, compile_box, self.chart_box, self.matter_panel,
                       self.status, errors_box], layout=W.Layout(width="100%"))

    def _new_figure(self) -> go.Figure:
        return build_figure(self.explorer, color_by=self.color_by, group_by_module=self.group_by_module,
                            expanded=self.expanded, height=self.height)

    def _wire_figure(self) -> None:
        self.node_trace.on_click(self._on_click)

    def _color_options(self) -> list[tuple[str, str]]:
        accuracy = self.explorer.extensions.get("accuracy")
        try:
            per_node = accuracy is not None and bool(node_errors(accuracy))
        except OverlayUnavailable:
            per_node = False
        have = {"profile": self.explorer.extensions.get("profile") is not None, "accuracy": per_node,
                "sensitivity": self.explorer.extensions.get("sensitivity") is not None}
        return [(c if c not in _NEEDS or have[_NEEDS[c]] else f"{c} (needs {_NEEDS[c]})", c) for c in COLOR_BY
                if c not in _NOT_IN_DROPDOWN]

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

    # -- errors and status -------------------------------------------------------------------------------------
    def report_error(self, where: str, err: BaseException) -> None:
        """Record an error and show it in the error area (with its traceback folded)."""
        message = f"{where}: {type(err).__name__}: {err}"
        self.errors.append(message)
        tb = "".join(traceback.format_exception(type(err), err, err.__traceback__)[-6:])
        shown = self._error_html[-(_MAX_ERRORS_SHOWN - 1):]
        shown.append(f"<details><summary style='color:#b00020'>{_e(message)}</summary>"
                     f"<pre style='font-size:11px'>{_e(tb)}</pre></details>")
        self._error_html = shown
        self.error_area.value = "".join(shown)
        self.clear_errors_button.layout.display = None
        self.status.value = f"<span style='color:#b00020'>{_e(message)}</span>"

    def clear_errors(self) -> None:
        """Empty the error area (the ``errors`` list keeps its history)."""
        self._error_html = []
        self.error_area.value = ""
        self.clear_errors_button.layout.display = "none"

    def _say(self, text: str) -> None:
        self.status.value = text

    # -- settings -------------------------------------------------------------------------------------------
    def _control_values(self) -> dict[str, Any]:
        """The settings the controls show, as keyword arguments (not yet validated)."""
        text = self.depth_limit.value.strip()
        try:
            depth = None if text.lower() in ("", "none") else int(text)
        except ValueError:
            raise SettingsError(f"depth-of-reduction limit must be a whole number or empty, got {text!r}") from None
        return {
            "use_explicit_typing": bool(self.explicit_typing.value),
            "enable_autocast": bool(self.autocast.value),
            "autocast_low_precision_type": _LOW_TYPES[self.low_precision.value],
            "use_fp32_acc": bool(self.fp32_acc.value),
            "autocast_excluded_ops": frozenset(self.excluded_ops.value),
            "autocast_max_output_threshold": float(self.output_threshold.value),
            "autocast_max_depth_of_reduction": depth,
        }

    def _apply(self, change: Callable[[], Any]) -> Any:
        """Run a change of the explorer's settings, keeping its warnings as notes rather than losing them."""
        from ..explorer import SettingsWarning

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = change()
        self.notes = [str(w.message) for w in caught]
        # assigning settings already ran check_settings and warned each finding: remember them
        self._check_cache[self.explorer.settings] = [str(w.message) for w in caught
                                                     if issubclass(w.category, SettingsWarning)]
        return result

    @_guarded("changing a setting")
    def _on_setting_change(self, change: dict[str, Any]) -> None:
        if self._syncing:
            return
        values = self._control_values()
        implied = []
        owner = change.get("owner") if isinstance(change, dict) else None
        # Torch-TensorRT needs explicit typing for autocast and FP32 accumulation: keep the three consistent
        if not values["use_explicit_typing"] and (values["enable_autocast"] or values["use_fp32_acc"]):
            if owner is self.explicit_typing:
                values.update(enable_autocast=False, use_fp32_acc=False)
                implied.append("explicit typing off: autocast and FP32 accumulation switched off too "
                               "(Torch-TensorRT needs explicit typing for both)")
            else:
                values["use_explicit_typing"] = True
                implied.append("explicit typing switched on: Torch-TensorRT needs it for autocast and "
                               "FP32 accumulation")
        new = self.explorer.settings.replace(**values)
        self._apply(lambda: setattr(self.explorer, "settings", new))
        self.notes = implied + self.notes
        self.refresh()
        if implied:
            self._say(_e(implied[0]))

    def _sync_controls(self) -> None:
        """Put every control in step with the explorer's settings without firing their callbacks."""
        s = self.explorer.settings
        self._syncing = True
        try:
            self.explicit_typing.value = s.use_explicit_typing
            self.autocast.value = s.enable_autocast
            self.low_precision.value = _low_name(s.autocast_low_precision_type)
            self.fp32_acc.value = s.use_fp32_acc
            self.output_threshold.value = s.autocast_max_output_threshold
            self.depth_limit.value = "" if s.autocast_max_depth_of_reduction is None \
                else str(s.autocast_max_depth_of_reduction)
            known = {v for _, v in self.excluded_ops.options}
            extra = sorted(set(s.autocast_excluded_ops) - known)
            if extra:
                self.excluded_ops.options = list(self.excluded_ops.options) + [
                    (f"{op.replace('torch.ops.', '')} (not in this model)", op) for op in extra]
            self.excluded_ops.value = tuple(sorted(s.autocast_excluded_ops))
            self.color_by_choice.options = self._color_options()
            self.color_by_choice.value = self.color_by
            self.group_choice.value = self.group_by_module or 0
        finally:
            self._syncing = False
        self.undo_button.disabled = not self.explorer.can_undo
        self.redo_button.disabled = not self.explorer.can_redo

    # -- refresh: recolour in place, then the text panels -------------------------------------------------------
    def refresh(self) -> None:
        """Re-plan and recolour the figure in place; update summary, details, snippet and controls."""
        plan = self.explorer.plan()
        recolor(self.figure_widget, self.explorer, plan, self.color_by)
        self._sync_controls()
        self.summary.value = self._summary_html(plan)
        self.details.value = self._details_html(plan)
        self.snippet.value = self.explorer.settings.to_python()
        highlight(self.figure_widget, self.explorer, [self.selected] if self.selected else self.found)

    def _summary_html(self, plan: PrecisionPlan) -> str:
        rows = "".join(
            f"<tr><td><span style='color:{dtypes.PALETTE.get(k, dtypes.PALETTE['other'])}'>&#9679;</span> {k}</td>"
            f"<td style='text-align:right'>{int(v['nodes'])}</td>"
            f"<td style='text-align:right'>{v['flops_share']:.1%}</td></tr>"
            for k, v in sorted(self.explorer.summary(plan).items(), key=lambda kv: -kv[1]["flops_share"]))
        s = self.explorer.settings
        excl = [f"<code>{_e(p)}</code>" for p in sorted(s.autocast_excluded_nodes)]
        excl += [f"<code>{_e(o.replace('torch.ops.', ''))}</code> (op)" for o in sorted(s.autocast_excluded_ops)]
        warn = list(dict.fromkeys([*self.notes, *self._checks(s)]))
        out = ("<table style='font-size:12px'><tr><th>precision</th><th>nodes</th><th>FLOPs</th></tr>"
               f"{rows}</table><div style='font-size:12px'>Exclusions in force: "
               + (", ".join(excl) if excl else "none") + "</div>")
        if warn:
            out += "".join(f"<div style='font-size:12px;color:#8a4b00'>&#9888; {_e(w)}</div>" for w in warn)
        return out

    def _checks(self, settings: Settings) -> list[str]:
        """``explorer.check_settings`` for these settings, remembered (it walks the whole graph)."""
        found = self._check_cache.get(settings)
        if found is None:
            found = self._check_cache[settings] = self.explorer.check_settings(settings)
            if len(self._check_cache) > 64:
                self._check_cache.pop(next(iter(self._check_cache)))
        return found

    def _details_html(self, plan: PrecisionPlan) -> str:
        key = self.selected
        if key is None:
            return self.details.value
        if key.startswith(GROUP_PREFIX):
            return f"<b>module {_e(key[len(GROUP_PREFIX):])}</b> (collapsed)"
        info = self.explorer.nodes.get(key)
        if info is None:
            return ""
        rec = plan.get(key)
        lines = [f"<b>{_e(info.name)}</b> <code>{_e(info.op)}</code>",
                 f"module: <code>{_e(info.module or '(root)')}</code> {_e(info.module_type)}"]
        if rec is not None:
            dtype = dtypes.display_name(rec.dtype) if rec.dtype is not None else "TensorRT decides"
            acc = dtypes.display_name(rec.accumulate_dtype) if rec.accumulate_dtype is not None else "-"
            lines += [f"dtype: <b>{dtype}</b> · accumulate: {acc}", f"rule <code>{rec.rule}</code>: {_e(rec.reason)}"]
        ex = self.last_exclusion
        if ex is not None and key in ex.nodes:
            state = "in force" if ex.pattern in self.explorer.settings.autocast_excluded_nodes else "removed"
            lines.append(f"exclusion <code>{_e(ex.pattern)}</code> {state}")
            if ex.note:
                lines.append(f"<span style='color:#8a4b00'>&#9888; {_e(ex.note)}</span>")
        sens = self.explorer.extensions.get("sensitivity")
        if sens is not None and key in sens.node_low_error:
            low = dtypes.display_name(sens.low_dtype)
            gain = sens.node_fp32_gain.get(key)
            lines.append(f"sensitivity ({_e(sens.metric)}): alone in {low} {_num(sens.node_low_error[key])}"
                         + (f" · alone kept FP32 removes {_num(gain)}" if gain is not None else ""))
            if info.module in sens.module_low_error:
                lines.append(f"module <code>{_e(info.module or '(root)')}</code>: alone in {low} "
                             f"{_num(sens.module_low_error[info.module])} · alone kept FP32 removes "
                             f"{_num(sens.module_fp32_gain.get(info.module, 0.0))}")
        profile = self.explorer.extensions.get("profile")
        if profile is not None:
            measured = profile.node_dtypes()
            latency = profile.node_latency_ms()
            if key in measured or key in latency:
                lines.append(f"measured: {dtypes.display_name(measured.get(key))}"
                             + (f" · {latency[key]:.4g} ms" if key in latency else ""))
        return "<div style='font-size:12px'>" + "<br>".join(lines) + "</div>"

    # -- the graph -----------------------------------------------------------------------------------------------
    def _on_click(self, trace: Any, points: Any, state: Any) -> None:
        if points is not None and points.point_inds:
            self.click_point(points.point_inds[0])

    @_guarded("clicking a node")
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
            self._say(f"expanded module <code>{_e(module)}</code>")
            return
        info = self.explorer.nodes[key]
        if info.kind != "call_function" or info.removed_by:
            why = f"removed by {info.removed_by}" if info.removed_by else f"a graph {info.kind}"
            self.refresh()
            self._say(f"<code>{_e(key)}</code> is {why}: it has no autocast decision to toggle")
            return
        self.last_exclusion = self._apply(lambda: self.explorer.toggle(key))
        self.refresh()
        ex = self.last_exclusion
        verb = "excluded" if ex.pattern in self.explorer.settings.autocast_excluded_nodes else "included again"
        self._say(f"<code>{_e(ex.pattern)}</code> {verb}: {len(ex.nodes)} node(s)" + (" (see Details)" if ex.note
                                                                                        else ""))

    def _rebuild_figure(self) -> None:
        """Redraw after a change of what is drawn (grouping, expand/collapse): same traces, new positions."""
        fig = self._new_figure()
        fw = self.figure_widget
        if [t.type for t in fw.data] == [t.type for t in fig.data]:
            with fw.batch_update():
                for old, new in zip(fw.data, fig.data):
                    old.update(new.to_plotly_json(), overwrite=True)
                fw.layout.update(fig.layout.to_plotly_json(), overwrite=True)
        else:  # crossing the WebGL threshold changes trace types: replace them
            fw.data = ()
            fw.add_traces(list(fig.data))
            fw.layout.update(fig.layout.to_plotly_json(), overwrite=True)
            self._wire_figure()
        self.refresh()

    @_guarded("changing the colouring")
    def _on_color_by(self, change: dict[str, Any]) -> None:
        if self._syncing:
            return
        previous, self.color_by = self.color_by, change["new"]
        try:
            self.refresh()
        except Exception:
            self.color_by = previous
            raise

    @_guarded("changing the grouping")
    def _on_group(self, change: dict[str, Any]) -> None:
        if self._syncing:
            return
        self.group_by_module = change["new"] or None
        self.expanded.clear()
        self.selected = None
        self._rebuild_figure()

    @_guarded("collapsing modules")
    def collapse_all(self) -> None:
        """Close every expanded module."""
        self.expanded.clear()
        self.selected = None
        self._rebuild_figure()

    def _on_search_submit(self, change: dict[str, Any]) -> None:
        if not self._syncing:
            self.find(change["new"])

    @_guarded("searching")
    def find(self, query: str) -> list[str]:
        """Ring the nodes (or their collapsed modules) matching ``query`` and show the first one's details."""
        names = find_nodes(self.explorer, query)
        self.found = names
        self.selected = names[0] if len(names) == 1 else None
        points = highlight(self.figure_widget, self.explorer, names)
        if not names:
            self._say(f"no node or module matches {_e(query)!s}" if query.strip() else "")
            return names
        view = self.view
        if view.layers > 36:  # tall graphs open scrolled to the top: bring the first match into view
            y = float(view.y[points[0]])
            self.figure_widget.layout.yaxis.range = [y - 17.5, y + 17.5]
        self.details.value = self._details_html(self.explorer.plan()) if self.selected else (
            f"{len(names)} nodes match <code>{_e(query)}</code>: " + _e(", ".join(names[:20]))
            + (" ..." if len(names) > 20 else ""))
        self._say(f"{len(names)} node(s) match <code>{_e(query)}</code>, drawn by {len(points)} point(s)")
        return names

    # -- history -----------------------------------------------------------------------------------------------
    @_guarded("undo")
    def undo(self) -> None:
        """Go back to the previous settings."""
        self._apply(self.explorer.undo)
        self.refresh()
        self._sync_frontier()

    @_guarded("redo")
    def redo(self) -> None:
        """Re-apply undone settings."""
        self._apply(self.explorer.redo)
        self.refresh()
        self._sync_frontier()

    # -- export and compile -----------------------------------------------------------------------------------
    @_guarded("exporting the settings")
    def export(self) -> None:
        """Write the settings (JSON or Python snippet) to the path in the text box."""
        path = self.explorer.export_settings(self.export_path.value.strip() or "mixprec_settings.json",
                                             format=self.export_format.value)
        self.snippet.value = self.explorer.settings.to_python()
        self._say(f"wrote <code>{_e(path.resolve())}</code>")

    @_guarded("compile & profile")
    def compile_and_profile(self) -> None:
        """Compile the current plan, profile it, try accuracy, then offer the measured colourings."""
        ok, reason = backend_status()
        if not ok:
            self.compile_button.disabled = True
            self.backend_note.value = f"<small>{_e(reason)}</small>"
            raise RuntimeError(reason)
        self.compile_button.disabled = True
        self.progress.layout.visibility = "visible"
        try:
            self.progress.value, self.progress.description = 0, "compiling"
            compiled = self.explorer.compile()
            self.progress.value, self.progress.description = 1, "profiling"
            profile = self.explorer.profile(compiled)
            self.progress.value, self.progress.description = 2, "accuracy"
            try:
                self.explorer.accuracy(compiled, per_node=True)
            except ImportError as err:  # the accuracy layer is optional
                self.notes.append(f"accuracy not measured: {err}")
            self.progress.value, self.progress.description = 3, "done"
            self._show_chart(profile)
            self.refresh()
            e2e = getattr(getattr(profile, "end_to_end", None), "median_ms", None)
            self._say(f"profiled on {_e(getattr(profile, 'device', '?'))} with {_e(compiled.backend)}"
                      + (f": {e2e:.4g} ms end to end" if e2e is not None else ""))
        finally:
            self.compile_button.disabled = False
            self.progress.layout.visibility = "hidden"

    # -- which nodes matter: sensitivity, search, frontier (never on the click path) ----------------------------
    def _panel_backend(self) -> str | None:
        """The backend the latency choice names; None for the FLOPs/bytes estimate."""
        choice = self.search_backend.value
        return None if choice == _ESTIMATE else choice

    def _sync_frontier(self) -> None:
        """Ring the frontier's plan that the settings now are, if any (after a search, undo or redo; not a click)."""
        if self.frontier_app is not None:
            self.frontier_app._sync()

    @contextlib.contextmanager
    def _busy(self, what: str) -> Iterator[None]:
        """Panel buttons off and a busy bar while ``what`` runs; on failure the text says so, then re-raise."""
        buttons = (self.sensitivity_button, self.search_button, self.frontier_button)
        for button in buttons:
            button.disabled = True
        self.matter_progress.value, self.matter_progress.description = 0, what
        self.matter_progress.layout.visibility = "visible"
        self._say(f"{_e(what)}...")
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

    @_guarded("sensitivity")
    def run_sensitivity(self) -> Any:
        """``explorer.sensitivity()`` on the example inputs; colour the graph by it and list the top modules."""
        with self._busy("sensitivity"):
            sens = self.explorer.sensitivity(progress=False)
        previous, self.color_by = self.color_by, "sensitivity"
        try:
            self.refresh()
        except Exception:
            self.color_by = previous
            raise
        self.matter_text.value = sensitivity_text(sens)
        top = sens.ranking("module")[:1]
        self._say("sensitivity computed: coloured by it" + (
            f"; keeping <code>{_e(top[0][0] or '(root)')}</code> in FP32 removes the most error" if top else ""))
        return sens

    @_guarded("search")
    def run_search(self) -> Any:
        """``explorer.search`` within the budget box's error; loads the result (undoable) and explains it."""
        options = {"backend": self._panel_backend(), "confirm": bool(self.confirm.value),
                   "progress": False, **self.search_options}
        budget = float(self.budget.value)
        profile = self.explorer.extensions.get("profile")
        from ..explorer import SettingsWarning

        with self._busy("search"), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = self.explorer.search(budget=budget, **options)
        # the settings' warnings become notes (as a click's do); the compiles' own warnings go on as warnings
        self.notes = [str(w.message) for w in caught if issubclass(w.category, SettingsWarning)]
        for w in caught:
            if not issubclass(w.category, SettingsWarning):
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        measured = self.explorer.extensions.get("profile")
        if measured is not None and measured is not profile:  # the search profiled its plans: show the last
            self._show_chart(measured)
        if self.color_by == "sensitivity":  # does not change with the settings: show the new precisions
            self.color_by = "precision"
        self.refresh()
        self._sync_frontier()
        self.matter_text.value = search_text(result)
        n = len(result.exclusions)
        self._say(f"search loaded {n} exclusion(s): {result.metric} {_num(result.error)} "
                  + ("within" if result.within_budget else "<b>not</b> within") + f" the budget {budget:.3g}")
        return result

    @_guarded("frontier")
    def show_frontier(self) -> Any:
        """``explorer.frontier()`` (latency from the panel's choice) and its widget below the panel.

        Clicking a plan there loads it into the explorer and refreshes this app.
        """
        with self._busy("frontier"):
            frontier = self.explorer.frontier(**{"backend": self._panel_backend(), "progress": False,
                                                  **self.frontier_options})
        box = self.frontier_widget(frontier)
        self.frontier_app = box.app  # type: ignore[attr-defined]
        self.frontier_box.children = (box,)
        self.frontier_box.layout.display = None
        front = frontier.front()
        self.matter_text.value = "\n".join(
            [f"{len(frontier.points)} plans, {len(front)} on the Pareto front (latency: {frontier.latency_source}):"]
            + [f"  {p.label}: {frontier.metric} {_num(p.error)}, {p.latency_ms:.4g} ms"
               + (" (front)" if p.on_front else "") for p in frontier.points]
            + ["click a plan on the chart below to load it (Undo goes back)"])
        self._say(f"frontier of {len(frontier.points)} plans drawn below")
        return frontier

    def frontier_widget(self, frontier: Any = None) -> widgets.VBox:
        """The frontier scatter (default ``ex.frontier``'s last result) whose clicks load a plan into this app.

        Returns the root box of a :class:`~mixprec_explorer.widget.frontier.FrontierWidget`; display it beside
        the app. A load (or its undo) refreshes this app as a click on the graph does.
        """
        from .frontier import build_frontier_widget

        def loaded(point: Any) -> None:
            self.notes = []
            self.refresh()
            self._say(f"loaded frontier plan <b>{_e(point.label)}</b>" if point is not None
                      else "settings restored")

        return build_frontier_widget(self.explorer, frontier, on_load=loaded)

    def _show_chart(self, profile: Any) -> None:
        from ..viz.charts import build_latency_chart

        chart = go.FigureWidget(build_latency_chart(profile, top=25))
        self.chart_widget = chart
        self.chart_box.children = (chart,)
        self.chart_box.layout.display = None


def build_widget(explorer: Explorer, **options: Any) -> widgets.VBox:
    """The interactive view of ``explorer`` (returned, not displayed); ``.app`` on it is the :class:`WidgetApp`.

    Options: ``color_by``, ``group_by_module``, ``height``, ``search_options``, ``frontier_options`` (see
    :class:`WidgetApp`).
    """
    return WidgetApp(explorer, **options).root

