"""The panels that show the current plan: :class:`PlanPanel` beside the graph (what if, summary, details) and
:class:`ExportPanel` below it (export to a file, the compile call).

Both are made from the current plan on every refresh of the app (:meth:`PlanPanel.show`,
:meth:`ExportPanel.show`); the details also follow the app's ``selected`` and ``found`` traits (a click, a find,
an engine layer's nodes).
"""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from ..dtypes import PALETTE, display_name
from ..targets import FLAVOURS, SUPPORTED
from ..viz.hover import source_text
from ..viz.layout import GROUP_PREFIX
from ._format import esc, num
from .host import AppHost
from .status import guarded

if TYPE_CHECKING:
    from ..policy import PrecisionPlan
    from ..settings import Settings

__all__ = ["ExportPanel", "PlanPanel", "default_export_name"]

_SUFFIX = {"json": ".json", "python": ".py"}
_MIME = {"json": "application/json", "python": "text/x-python"}
_CHECKS_KEPT = 64  #: settings whose checks are remembered


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


class PlanPanel:
    """Beside the graph: ``what_if`` (the plan's predicted latency and error, and the last change's), ``summary``
    (nodes and FLOPs per precision, exclusions, warnings) and ``details`` (the selected node), bound to ``app``.

    State: the prediction last shown (the next change is priced against it) and the settings checks already made.
    """

    def __init__(self, app: AppHost) -> None:
        self.app = app
        self.what_if = widgets.HTML()
        self.summary = widgets.HTML()
        self.details = widgets.HTML(value="<i>Click a node: its module's exclusion toggles. Click a collapsed module "
                                          "to expand it.</i>")
        self._prediction: Any = None  #: the prediction shown, to price the next change against
        self._checks: dict[Settings, list[str]] = {}  #: explorer.check_settings per settings, recent ones
        app.observe(self._on_selection, names=["selected", "found"])

    def show(self, plan: PrecisionPlan) -> None:
        """Show ``plan`` (the explorer's current one): what if, summary, details."""
        self.summary.value = self.summary_html(plan)
        self.details.value = self.details_html(plan)
        self.what_if.value = self.what_if_html()

    @guarded("showing the details")
    def _on_selection(self, change: Any) -> None:
        self.details.value = self.details_html(self.app.explorer.plan())

    # -- settings checks -------------------------------------------------------------------------------------------
    def remember_checks(self, settings: Settings, found: list[str]) -> None:
        """What ``explorer.check_settings(settings)`` says, already known (assigning settings warns each finding)."""
        self._checks[settings] = found
        if len(self._checks) > _CHECKS_KEPT:
            self._checks.pop(next(iter(self._checks)))

    def checks(self, settings: Settings) -> list[str]:
        """``explorer.check_settings`` for these settings, remembered (it walks the whole graph)."""
        found = self._checks.get(settings)
        if found is None:
            found = self.app.explorer.check_settings(settings)
            self.remember_checks(settings, found)
        return found

    # -- the HTML --------------------------------------------------------------------------------------------------
    def summary_html(self, plan: PrecisionPlan) -> str:
        """Nodes and FLOPs per precision, the exclusions in force, and the notes and checks of the settings."""
        explorer = self.app.explorer
        rows = "".join(
            f"<tr><td><span style='color:{PALETTE.get(k, PALETTE['other'])}'>&#9679;</span> {k}</td>"
            f"<td style='text-align:right'>{int(v['nodes'])}</td>"
            f"<td style='text-align:right'>{v['flops_share']:.1%}</td></tr>"
            for k, v in sorted(explorer.summary(plan).items(), key=lambda kv: -kv[1]["flops_share"]))
        s = explorer.settings
        excl = [f"<code>{esc(p)}</code>" for p in sorted(s.autocast_excluded_nodes)]
        excl += [f"<code>{esc(o.replace('torch.ops.', ''))}</code> (op)" for o in sorted(s.autocast_excluded_ops)]
        warn = list(dict.fromkeys([*self.app.notes, *self.checks(s)]))
        out = ("<table style='font-size:12px'><tr><th>precision</th><th>nodes</th><th>FLOPs</th></tr>"
               f"{rows}</table><div style='font-size:12px'>Exclusions in force: "
               + (", ".join(excl) if excl else "none") + "</div>")
        if warn:
            out += "".join(f"<div style='font-size:12px;color:#8a4b00'>&#9888; {esc(w)}</div>" for w in warn)
        return out

    def details_html(self, plan: PrecisionPlan) -> str:
        """What is known of the selected node: its plan, the last exclusion, sensitivity, measurements. With no
        node selected, the nodes found (several); else what the details show already."""
        app = self.app
        key = app.selected
        if key is None:
            names = app.found
            if len(names) > 1:
                return (f"{len(names)} nodes found (ringed): " + esc(", ".join(names[:20]))
                        + (" ..." if len(names) > 20 else ""))
            return self.details.value
        if key.startswith(GROUP_PREFIX):
            return f"<b>module {esc(key[len(GROUP_PREFIX):])}</b> (collapsed)"
        explorer = app.explorer
        info = explorer.nodes.get(key)
        if info is None:
            return ""
        rec = plan.get(key)
        lines = [f"<b>{esc(info.name)}</b> <code>{esc(info.op)}</code>",
                 f"module: <code>{esc(info.module or '(root)')}</code> {esc(info.module_type)}"]
        source = source_text(info)
        if source:
            lines.append(f"source: <code>{esc(source)}</code>")
        if rec is not None:
            dtype = display_name(rec.dtype) if rec.dtype is not None else "TensorRT decides"
            acc = display_name(rec.accumulate_dtype) if rec.accumulate_dtype is not None else "-"
            lines += [f"dtype: <b>{dtype}</b> · accumulate: {acc}", f"rule <code>{rec.rule}</code>: {esc(rec.reason)}"]
        ex = app.last_exclusion
        if ex is not None and key in ex.nodes:
            state = "in force" if ex.pattern in explorer.settings.autocast_excluded_nodes else "removed"
            lines.append(f"exclusion <code>{esc(ex.pattern)}</code> {state}")
            if ex.note:
                lines.append(f"<span style='color:#8a4b00'>&#9888; {esc(ex.note)}</span>")
        sens = explorer.last_sensitivity
        if sens is not None and key in sens.node_low_error:
            low = display_name(sens.low_dtype)
            gain = sens.node_fp32_gain.get(key)
            lines.append(f"sensitivity ({esc(sens.metric)}): alone in {low} {num(sens.node_low_error[key])}"
                         + (f" · alone kept FP32 removes {num(gain)}" if gain is not None else ""))
            if info.module in sens.module_low_error:
                lines.append(f"module <code>{esc(info.module or '(root)')}</code>: alone in {low} "
                             f"{num(sens.module_low_error[info.module])} · alone kept FP32 removes "
                             f"{num(sens.module_fp32_gain.get(info.module, 0.0))}")
        profile = explorer.last_profile
        if profile is not None:
            measured = profile.node_dtypes()
            latency = profile.node_latency_ms()
            if key in measured or key in latency:
                lines.append(f"measured: {display_name(measured.get(key))}"
                             + (f" · {latency[key]:.4g} ms" if key in latency else ""))
        return "<div style='font-size:12px'>" + "<br>".join(lines) + "</div>"

    def what_if_html(self) -> str:
        """The current plan's predicted latency and error (no compile), the change since the last one shown, and
        the last measured figures of this very plan where there are any."""
        try:
            now = self.app.explorer.predict()
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


class ExportPanel:
    """Below the graph: ``export_path``, ``export_format``, ``export_button``, ``download`` (a link to the last
    export) and ``snippet`` (the compile call of the current settings), bound to ``app``.

    State: the files this panel wrote (replaced without asking), and the existing file a second click replaces.
    """

    def __init__(self, app: AppHost) -> None:
        self.app = app
        W = widgets
        short = {"description_width": "initial"}
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
        #: what the text area shows: the compile call, or the upgrade diff to another target (ex.compare_targets)
        specs = [f"{r}-rtx" if f == "tensorrt_rtx" else r for f in FLAVOURS for r in SUPPORTED]
        self.compare_to = W.Dropdown(options=[("compile call", "")] + [(f"diff to {t}", t) for t in specs], value="",
                                     tooltip="the compile call for the explorer's target, or what changes moving to "
                                             "another release", layout=W.Layout(width="170px"))
        self.compare_to.observe(lambda _: self.show(), names="value")
        self._written: set[Path] = set()  #: files this panel wrote (replaced without asking)
        self._confirm: Path | None = None  #: an existing file the next Export click replaces
        self.export_button.on_click(lambda _: self.export())
        self.export_format.observe(self._on_format, names="value")
        self.export_path.observe(lambda _: self._arm(None), names="value")

    def show(self) -> None:
        """Show the compile call of the explorer's current settings for its target (that release's keywords only),
        every line of it; or, with ``compare_to`` set, the upgrade diff from the target to that release."""
        explorer = self.app.explorer
        other = self.compare_to.value
        if other:
            snippet = explorer.compare_targets(explorer.target, other).text()
            self.snippet.description = f"{explorer.target.spec} -> {other}"
        else:
            snippet = explorer.compile_call()
            self.snippet.description = "compile call"
        self.snippet.value = snippet
        self.snippet.rows = snippet.count("\n") + 1  # every line shows, autocast_excluded_nodes included

    def _on_format(self, change: dict[str, Any]) -> None:
        """The file name follows the format: ``.json`` for JSON settings, ``.py`` for the Python snippet."""
        self.export_path.value = _with_suffix(self.export_path.value.strip() or default_export_name(change["new"]),
                                              change["new"])
        self._arm(None)

    def _arm(self, existing: Path | None) -> None:
        """Ask for a second click before replacing ``existing`` (None: back to a plain Export button)."""
        self._confirm = existing
        self.export_button.description = "Overwrite" if existing else "Export"
        self.export_button.button_style = "warning" if existing else "primary"

    @guarded("exporting the settings")
    def export(self) -> Path | None:
        """Write the settings (JSON or Python snippet) to the path in the text box, and offer them as a download.

        A file this panel did not write is not replaced at the first click: the button turns into "Overwrite" and
        the status line says so; a second click (with the same name) replaces it. Returns the path written, or
        None when it waits for that confirmation.
        """
        fmt = self.export_format.value
        name = _with_suffix(self.export_path.value.strip() or default_export_name(fmt), fmt)
        if name != self.export_path.value:
            self.export_path.value = name  # resets a pending confirmation: the name changed
        target = Path(name).expanduser().resolve()
        if target.exists() and target not in self._written and self._confirm != target:
            self._arm(target)
            self.app.say(f"<code>{esc(target)}</code> already exists: click <b>Overwrite</b> to replace it, "
                         "or change the name")
            return None
        path = self.app.explorer.export_settings(target, format=fmt).resolve()
        self._written.add(path)
        self._arm(None)
        text = path.read_text(encoding="utf-8")
        data = base64.b64encode(text.encode("utf-8")).decode("ascii")
        self.download.value = (f"<a download='{esc(path.name)}' href='data:{_MIME[fmt]};base64,{data}' "
                               f"style='font-size:12px'>&#11015; download {esc(path.name)}</a>")
        self.app.say(f"wrote <code>{esc(path)}</code> on the kernel's machine; the link beside Export downloads it "
                     "to this browser")
        return path
