"""The panels around the graph: summary and details beside it; export, compile & profile and the latency chart
below it.

The summary and details are HTML made from the current plan on every refresh; the compile button is off, with
the reason beside it, where no compile backend is usable.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets
import plotly.graph_objects as go

from .. import dtypes
from ..errors import BackendUnavailable, CompileFailure
from ..viz.layout import GROUP_PREFIX
from ._format import esc, num
from .status import guarded

if TYPE_CHECKING:
    from ..explorer import Exclusion, Explorer
    from ..policy import PrecisionPlan
    from ..settings import Settings

__all__ = ["PanelsMixin", "backend_status", "default_export_name"]

_SUFFIX = {"json": ".json", "python": ".py"}
_MIME = {"json": "application/json", "python": "text/x-python"}


def default_export_name(fmt: str = "json") -> str:
    """``<notebook>_precision.json`` (or ``.py``) beside the notebook, so that two notebooks do not write one file.

    The notebook's name is the one Jupyter gives its kernel (``JPY_SESSION_NAME``); outside Jupyter it is
    ``mixprec_settings``.
    """
    session = os.environ.get("JPY_SESSION_NAME", "")
    stem = Path(session).stem if session.endswith(".ipynb") else ""
    return (f"{stem}_precision" if stem else "mixprec_settings") + _SUFFIX[fmt]


def _with_suffix(path: str, fmt: str) -> str:
    """``path`` ending in the suffix of ``fmt`` (``.json`` / ``.py``): a name typed for the other format is switched."""
    p = Path(path)
    if p.suffix in _SUFFIX.values() and p.suffix != _SUFFIX[fmt]:
        return str(p.with_suffix(_SUFFIX[fmt]))
    return path if p.suffix == _SUFFIX[fmt] else path + _SUFFIX[fmt]


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


class PanelsMixin:
    """Part of :class:`~mixprec_explorer.widget.app.WidgetApp`: summary, details, export, compile & profile, chart."""

    if TYPE_CHECKING:  # from the rest of WidgetApp
        explorer: Explorer
        selected: str | None
        last_exclusion: Exclusion | None
        notes: list[str]
        _check_cache: dict[Settings, list[str]]

        def refresh(self) -> None: ...
        def _say(self, text: str) -> None: ...
        def find(self, query: str) -> list[str]: ...
        def ring(self, names: list[str]) -> None: ...

    def _build_panels(self, backend: tuple[bool, str]) -> None:
        """The panels' widgets; ``backend`` is :func:`backend_status` (the compile button is off without one)."""
        W = widgets
        short = {"description_width": "initial"}
        self.summary = W.HTML()
        self.details = W.HTML(value="<i>Click a node: its module's exclusion toggles. Click a collapsed module "
                                    "to expand it.</i>")
        self.export_path = W.Text(value=default_export_name(), description="export to", style=short,
                                  tooltip="a file on the kernel's machine, beside the notebook unless a folder is given",
                                  layout=W.Layout(width="360px"))
        self.export_format = W.Dropdown(options=[("JSON settings", "json"), ("Python snippet", "python")],
                                        value="json", layout=W.Layout(width="150px"))
        self.export_button = W.Button(description="Export", icon="save", button_style="primary",
                                      tooltip="write the file on the server and offer it as a download here",
                                      layout=W.Layout(width="110px"))
        self.download = W.HTML()  #: a download link (data: URI) of the last export, for this browser
        self.snippet = W.Textarea(value="", disabled=True, rows=8, layout=W.Layout(width="98%"),
                                  description="compile call", style=short)
        self._written: set[Path] = set()  #: files this app wrote (replaced without asking)
        self._confirm: Path | None = None  #: an existing file the next Export click replaces
        self.compile_button = W.Button(description="Compile & profile", icon="play", layout=W.Layout(width="170px"))
        self.calibrate_button = W.Button(description="Calibrate what-if", icon="sliders",
                                         tooltip="compile and profile all-FP32 and all-low, run sensitivity: then every "
                                                 "click is priced in ms and error without a compile",
                                         layout=W.Layout(width="170px"))
        self.progress = W.IntProgress(value=0, min=0, max=3, description="", layout=W.Layout(visibility="hidden",
                                                                                           width="200px"))
        self.backend_note = W.HTML()
        self.chart_widget: go.FigureWidget | None = None  #: the latency chart, once a profile exists
        self.engine_widget: go.FigureWidget | None = None  #: the engine's layers in order, once a profile exists
        self.chart_box = W.VBox([], layout=W.Layout(display="none"))

        self.export_button.on_click(lambda _: self.export())
        self.export_format.observe(self._on_export_format, names="value")
        self.export_path.observe(lambda _: self._arm_export(None), names="value")
        self.compile_button.on_click(lambda _: self.compile_and_profile())
        self.calibrate_button.on_click(lambda _: self.calibrate_what_if())
        ok, reason = backend
        self.compile_button.disabled = self.calibrate_button.disabled = not ok
        self.backend_note.value = f"<small>{esc(reason)}</small>"

    # -- summary and details ---------------------------------------------------------------------------------
    def _summary_html(self, plan: PrecisionPlan) -> str:
        """Nodes and FLOPs per precision, the exclusions in force, and the notes and checks of the settings."""
        rows = "".join(
            f"<tr><td><span style='color:{dtypes.PALETTE.get(k, dtypes.PALETTE['other'])}'>&#9679;</span> {k}</td>"
            f"<td style='text-align:right'>{int(v['nodes'])}</td>"
            f"<td style='text-align:right'>{v['flops_share']:.1%}</td></tr>"
            for k, v in sorted(self.explorer.summary(plan).items(), key=lambda kv: -kv[1]["flops_share"]))
        s = self.explorer.settings
        excl = [f"<code>{esc(p)}</code>" for p in sorted(s.autocast_excluded_nodes)]
        excl += [f"<code>{esc(o.replace('torch.ops.', ''))}</code> (op)" for o in sorted(s.autocast_excluded_ops)]
        warn = list(dict.fromkeys([*self.notes, *self._checks(s)]))
        out = ("<table style='font-size:12px'><tr><th>precision</th><th>nodes</th><th>FLOPs</th></tr>"
               f"{rows}</table><div style='font-size:12px'>Exclusions in force: "
               + (", ".join(excl) if excl else "none") + "</div>")
        if warn:
            out += "".join(f"<div style='font-size:12px;color:#8a4b00'>&#9888; {esc(w)}</div>" for w in warn)
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
        """What is known of the selected node: its plan, the last exclusion, sensitivity, measurements."""
        key = self.selected
        if key is None:
            return self.details.value
        if key.startswith(GROUP_PREFIX):
            return f"<b>module {esc(key[len(GROUP_PREFIX):])}</b> (collapsed)"
        info = self.explorer.nodes.get(key)
        if info is None:
            return ""
        rec = plan.get(key)
        lines = [f"<b>{esc(info.name)}</b> <code>{esc(info.op)}</code>",
                 f"module: <code>{esc(info.module or '(root)')}</code> {esc(info.module_type)}"]
        if rec is not None:
            dtype = dtypes.display_name(rec.dtype) if rec.dtype is not None else "TensorRT decides"
            acc = dtypes.display_name(rec.accumulate_dtype) if rec.accumulate_dtype is not None else "-"
            lines += [f"dtype: <b>{dtype}</b> · accumulate: {acc}", f"rule <code>{rec.rule}</code>: {esc(rec.reason)}"]
        ex = self.last_exclusion
        if ex is not None and key in ex.nodes:
            state = "in force" if ex.pattern in self.explorer.settings.autocast_excluded_nodes else "removed"
            lines.append(f"exclusion <code>{esc(ex.pattern)}</code> {state}")
            if ex.note:
                lines.append(f"<span style='color:#8a4b00'>&#9888; {esc(ex.note)}</span>")
        sens = self.explorer.last_sensitivity
        if sens is not None and key in sens.node_low_error:
            low = dtypes.display_name(sens.low_dtype)
            gain = sens.node_fp32_gain.get(key)
            lines.append(f"sensitivity ({esc(sens.metric)}): alone in {low} {num(sens.node_low_error[key])}"
                         + (f" · alone kept FP32 removes {num(gain)}" if gain is not None else ""))
            if info.module in sens.module_low_error:
                lines.append(f"module <code>{esc(info.module or '(root)')}</code>: alone in {low} "
                             f"{num(sens.module_low_error[info.module])} · alone kept FP32 removes "
                             f"{num(sens.module_fp32_gain.get(info.module, 0.0))}")
        profile = self.explorer.last_profile
        if profile is not None:
            measured = profile.node_dtypes()
            latency = profile.node_latency_ms()
            if key in measured or key in latency:
                lines.append(f"measured: {dtypes.display_name(measured.get(key))}"
                             + (f" · {latency[key]:.4g} ms" if key in latency else ""))
        return "<div style='font-size:12px'>" + "<br>".join(lines) + "</div>"

    # -- export, compile & profile ---------------------------------------------------------------------------
    def _on_export_format(self, change: dict[str, Any]) -> None:
        """The file name follows the format: ``.json`` for JSON settings, ``.py`` for the Python snippet."""
        self.export_path.value = _with_suffix(self.export_path.value.strip() or default_export_name(change["new"]),
                                              change["new"])
        self._arm_export(None)

    def _arm_export(self, existing: Path | None) -> None:
        """Ask for a second click before replacing ``existing`` (None: back to a plain Export button)."""
        self._confirm = existing
        self.export_button.description = "Overwrite" if existing else "Export"
        self.export_button.button_style = "warning" if existing else "primary"

    @guarded("exporting the settings")
    def export(self) -> Path | None:
        """Write the settings (JSON or Python snippet) to the path in the text box, and offer them as a download.

        A file this app did not write is not replaced at the first click: the button turns into "Overwrite" and
        the status line says so; a second click (with the same name) replaces it. Returns the path written, or
        None when it waits for that confirmation.
        """
        fmt = self.export_format.value
        name = _with_suffix(self.export_path.value.strip() or default_export_name(fmt), fmt)
        if name != self.export_path.value:
            self.export_path.value = name  # resets a pending confirmation: the name changed
        target = Path(name).expanduser().resolve()
        if target.exists() and target not in self._written and self._confirm != target:
            self._arm_export(target)
            self._say(f"<code>{esc(target)}</code> already exists: click <b>Overwrite</b> to replace it, "
                      "or change the name")
            return None
        path = self.explorer.export_settings(target, format=fmt).resolve()
        self._written.add(path)
        self._arm_export(None)
        text = path.read_text(encoding="utf-8")
        data = base64.b64encode(text.encode("utf-8")).decode("ascii")
        self.download.value = (f"<a download='{esc(path.name)}' href='data:{_MIME[fmt]};base64,{data}' "
                               f"style='font-size:12px'>&#11015; download {esc(path.name)}</a>")
        self._say(f"wrote <code>{esc(path)}</code> on the kernel's machine; the link beside Export downloads it "
                  "to this browser")
        return path

    @guarded("compile & profile")
    def compile_and_profile(self) -> None:
        """Compile the current plan, profile it, try accuracy, then offer the measured colourings."""
        ok, reason = backend_status()
        if not ok:
            self.compile_button.disabled = True
            self.backend_note.value = f"<small>{esc(reason)}</small>"
            raise BackendUnavailable(reason)
        self.compile_button.disabled = True
        self.progress.layout.visibility = "visible"
        try:
            self.progress.value, self.progress.description = 0, "compiling"
            try:
                compiled = self.explorer.compile()
            except CompileFailure as err:
                if err.node is not None:
                    self.find(err.node)  # ring the node the build stopped at; the error area gives the remedies
                raise
            self.progress.value, self.progress.description = 1, "profiling"
            profile = self.explorer.profile(compiled)
            self.progress.value, self.progress.description = 2, "accuracy"
            try:
                self.explorer.accuracy(compiled, per_node=True)
            except ImportError as err:  # the accuracy layer is optional
                self.notes.append(f"accuracy not measured: {err}")
            self.progress.value, self.progress.description = 3, "done"
            try:  # each measured plan is a calibration point of the what-if
                self.explorer.record_measurement(compiled, profile=profile, accuracy=self.explorer.last_accuracy)
            except Exception as err:  # an aid: the measurement itself stands
                self.notes.append(f"not recorded for the what-if: {err}")
            self._show_chart(profile)
            self.refresh()
            e2e = getattr(getattr(profile, "end_to_end", None), "median_ms", None)
            self._say(f"profiled on {esc(getattr(profile, 'device', '?'))} with {esc(compiled.backend)}"
                      + (f": {e2e:.4g} ms end to end" if e2e is not None else ""))
        finally:
            self.compile_button.disabled = False
            self.progress.layout.visibility = "hidden"

    @guarded("calibrating the what-if")
    def calibrate_what_if(self) -> None:
        """Measure the all-FP32 and all-low plans and sensitivity on the default backend, for :meth:`ex.predict`."""
        from ..predict import measure_calibration

        ok, reason = backend_status()
        if not ok:
            raise BackendUnavailable(reason)
        self.calibrate_button.disabled = True
        self._say("calibrating the what-if: compiling and profiling all-FP32 and all-low, then sensitivity ...")
        try:
            measure_calibration(self.explorer)
        finally:
            self.calibrate_button.disabled = False
        self.refresh()
        self._say("what-if calibrated: each click now shows its predicted milliseconds and error")

    def _show_chart(self, profile: Any) -> None:
        """Show the latency chart and the engine's layers of ``profile`` below the compile row."""
        from ..viz.charts import build_latency_chart
        from ..viz.engine import build_engine_figure

        chart = go.FigureWidget(build_latency_chart(profile, top=25))
        self.chart_widget = chart
        children: list[Any] = [chart]
        try:
            engine = go.FigureWidget(build_engine_figure(profile, height=420))
        except ValueError:  # no timed layer: nothing to show
            engine = None
        self.engine_widget = engine
        if engine is not None:
            for trace in engine.data:
                trace.on_click(self._on_engine_click)
            children.append(engine)
        self.chart_box.children = tuple(children)
        self.chart_box.layout.display = None

    def _on_engine_click(self, trace: Any, points: Any, state: Any) -> None:
        if points is not None and points.point_inds:
            self.select_layer(int(trace.customdata[points.point_inds[0]]))

    @guarded("selecting an engine layer")
    def select_layer(self, position: int) -> tuple[str, ...]:
        """Ring the FX nodes the engine layer at ``position`` ran, outline it; returns those nodes."""
        from ..viz.engine import engine_layers, nodes_for_layer

        profile = self.explorer.last_profile
        nodes = nodes_for_layer(profile, position)
        self.ring(list(nodes))
        self.outline_layers([position])
        name = engine_layers(profile)[position].name
        self._say(f"engine layer <code>{esc(name)}</code> ran {len(nodes)} node(s): "
                  + esc(", ".join(nodes[:8])) + (" ..." if len(nodes) > 8 else ""))
        return nodes

    def outline_layers(self, positions: list[int]) -> None:
        """Outline the engine layers at ``positions`` in the engine view (the others plain)."""
        if self.engine_widget is None:
            return
        chosen = set(positions)
        with self.engine_widget.batch_update():
            for trace in self.engine_widget.data:
                keys = list(trace.customdata)
                trace.marker.line.color = ["#111111" if k in chosen else "rgba(0,0,0,0)" for k in keys]
                trace.marker.line.width = [3 if k in chosen else 0 for k in keys]

    def outline_layers_of(self, node: str | None) -> None:
        """Outline the engine layers that ran FX node ``node`` (none for None)."""
        if self.engine_widget is None or self.explorer.last_profile is None:
            return
        from ..viz.engine import layers_for_nodes

        self.outline_layers(layers_for_nodes(self.explorer.last_profile, [node]) if node else [])
