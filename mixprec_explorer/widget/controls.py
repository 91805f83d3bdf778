"""The controls above the graph (:class:`Controls`): Torch-TensorRT's settings, the view row (colour by, group,
find) and undo/redo.

A change of a settings control replaces the explorer's settings (the explorer keeps them consistent and
undoable) and refreshes the app; the view row sets the app's ``color_by`` and ``group_by_module`` traits (the graph
observes them) or asks the app to find. :meth:`Controls.sync` puts every control back in step with the explorer
without firing their callbacks (after undo, redo, a search, or a failed change); the colour and group dropdowns
also follow the app's traits as they change.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ipywidgets as widgets
import torch

from ..errors import SettingsError
from ..viz.colors import FP32_COST
from ..viz.graph import COLOR_BY, OverlayUnavailable, node_errors
from ._format import describe_change, esc
from .host import AppHost
from .status import guarded

__all__ = ["Controls"]

_NEEDS = {"latency": "profile", "measured_dtype": "profile", "mismatch": "profile", "error": "accuracy",
          "sensitivity": "sensitivity", FP32_COST: "Calibrate what-if", "range": "ex.calibrate"}
#: Dropdown labels of the colourings whose value says too little.
_LABELS = {FP32_COST: "cost of staying FP32 (ms)"}
#: Colourings the dropdown leaves out: "changed" compares two plans (see mixprec_explorer.viz.compare).
_NOT_IN_DROPDOWN = ("changed",)
#: The low precision dropdown's values and the dtypes they stand for.
_LOW_TYPES = {"none": None, "float16": torch.float16, "bfloat16": torch.bfloat16}


def _low_name(dtype: torch.dtype | None) -> str:
    return next(k for k, v in _LOW_TYPES.items() if v == dtype)


class Controls:
    """The settings controls (``explicit_typing``, ``autocast``, ``low_precision``, ``fp32_acc``,
    ``output_threshold``, ``depth_limit``, ``excluded_ops``), the view row (``color_by_choice``, ``group_choice``,
    ``collapse_button``, ``find_box``, ``find_button``) and ``undo_button`` / ``redo_button``, bound to ``app``.

    State: ``syncing`` (True while :meth:`sync` sets the controls: their callbacks then do nothing).
    """

    def __init__(self, app: AppHost) -> None:
        self.app = app
        self.syncing = False
        self._costs_known: tuple[tuple[int, int], bool] | None = None  #: (predictor version, calibration), known
        W = widgets
        s = app.explorer.settings
        short = {"description_width": "initial"}
        self.explicit_typing = W.Checkbox(value=s.use_explicit_typing, description="explicit typing", style=short,
                                          indent=False)
        self._follow_target()
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
        ops = app.explorer.ops()
        self.excluded_ops = W.SelectMultiple(
            options=self._op_options(s.autocast_excluded_ops), value=tuple(sorted(s.autocast_excluded_ops)),
            rows=min(8, max(3, len(ops))), description="exclude ops", style=short,
            tooltip="ctrl/shift-click to keep several ops in FP32", layout=W.Layout(width="98%"))
        self.color_by_choice = W.Dropdown(options=self._color_options(), value=app.color_by,
                                          description="colour by", style=short, layout=W.Layout(width="230px"))
        self.group_choice = W.Dropdown(options=[("auto (large graphs grouped)", "auto"), ("no grouping", 0)]
                                       + [(f"modules at depth {d}", d) for d in (1, 2, 3, 4)],
                                       value=app.group_by_module or 0, description="group", style=short,
                                       layout=W.Layout(width="240px"))
        self.find_box = W.Text(placeholder="node name or module path", description="find", style=short,
                               continuous_update=False, layout=W.Layout(width="260px"))
        self.find_button = W.Button(description="Find", icon="search", layout=W.Layout(width="80px"))
        self.undo_button = W.Button(description="Undo", icon="undo", layout=W.Layout(width="80px"))
        self.redo_button = W.Button(description="Redo", icon="repeat", layout=W.Layout(width="80px"))
        self.collapse_button = W.Button(description="Collapse all", layout=W.Layout(width="110px"),
                                        tooltip="close every expanded module")

        for control in (self.explicit_typing, self.autocast, self.low_precision, self.fp32_acc,
                        self.output_threshold, self.depth_limit, self.excluded_ops):
            control.observe(self._on_setting_change, names="value")
        self.color_by_choice.observe(self._on_color_by, names="value")
        self.group_choice.observe(self._on_group, names="value")
        self.find_box.observe(self._on_find_submit, names="value")
        self.find_button.on_click(lambda _: app.find(self.find_box.value))
        self.undo_button.on_click(lambda _: self.undo())
        self.redo_button.on_click(lambda _: self.redo())
        self.collapse_button.on_click(lambda _: app.collapse_all())
        app.observe(self._follow_view, names=["color_by", "group_by_module"])

    # -- choices ---------------------------------------------------------------------------------------------------
    def _op_options(self, excluded: frozenset[str]) -> list[tuple[str, str]]:
        """The op list's (label, op) choices; an excluded op says so in its label, not only by its selection."""
        ops = self.app.explorer.ops()
        options = [(("\u2716 FP32 (excluded): " if op in excluded else "") + f"{op.replace('torch.ops.', '')} ({n})",
                    op) for op, n in ops.items()]
        return options + [(f"\u2716 FP32 (excluded): {op.replace('torch.ops.', '')} (not in this model)", op)
                          for op in sorted(set(excluded) - set(ops))]

    def _color_options(self) -> list[tuple[str, str]]:
        """The colour-by dropdown's choices; those without their result yet say what they need."""
        explorer = self.app.explorer
        accuracy = explorer.last_accuracy
        try:
            per_node = accuracy is not None and bool(node_errors(accuracy))
        except OverlayUnavailable:
            per_node = False
        have = {"profile": explorer.last_profile is not None, "accuracy": per_node,
                "sensitivity": explorer.last_sensitivity is not None, "Calibrate what-if": self._costs_predicted(),
                "ex.calibrate": bool(explorer.calibration)}
        return [(_LABELS.get(c, c) + ("" if c not in _NEEDS or have[_NEEDS[c]] else f" (needs {_NEEDS[c]})"), c)
                for c in COLOR_BY if c not in _NOT_IN_DROPDOWN]

    def _costs_predicted(self) -> bool:
        """True if the what-if predicts each node's cost of staying FP32 (asked once per recorded measurement)."""
        explorer = self.app.explorer
        predictor = explorer.predictor
        if self._costs_known is None or self._costs_known[0] != (predictor.version, id(explorer.calibration)):
            try:
                known = bool(predictor.fp32_cost_ms())
            except Exception:  # the option says it needs calibrating; choosing it shows the error
                known = False
            self._costs_known = ((predictor.version, id(explorer.calibration)), known)
        return self._costs_known[1]

    # -- settings --------------------------------------------------------------------------------------------------
    def values(self) -> dict[str, Any]:
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

    @guarded("changing a setting")
    def _on_setting_change(self, change: dict[str, Any]) -> None:
        if self.syncing:
            return
        app = self.app
        values = self.values()
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
        before = app.explorer.settings
        new = before.replace(**values)
        app.apply(lambda: setattr(app.explorer, "settings", new))
        app.notes = implied + app.notes
        app.refresh()
        app.say(esc(implied[0]) if implied else describe_change(before, app.explorer.settings))

    # -- the view row ----------------------------------------------------------------------------------------------
    @guarded("changing the colouring")
    def _on_color_by(self, change: dict[str, Any]) -> None:
        if not self.syncing:
            self.app.color_nodes_by(change["new"])

    @guarded("changing the grouping")
    def _on_group(self, change: dict[str, Any]) -> None:
        if not self.syncing:
            self.app.group_by_module = change["new"] or None  # 0: no grouping

    def _on_find_submit(self, change: dict[str, Any]) -> None:
        if not self.syncing:
            self.app.find(change["new"])

    def _follow_view(self, change: Any) -> None:
        """The app's ``color_by`` or ``group_by_module`` changed (here or elsewhere): show it."""
        self.syncing = True
        try:
            if change.name == "color_by":
                if any(value == change.new for _, value in self.color_by_choice.options):
                    self.color_by_choice.value = change.new
            elif any(value == (change.new or 0) for _, value in self.group_choice.options):
                self.group_choice.value = change.new or 0
        finally:
            self.syncing = False

    # -- keeping in step -------------------------------------------------------------------------------------------
    def _follow_target(self) -> None:
        """Torch-TensorRT 2.13+ and TensorRT-RTX are strongly typed only: there the explicit-typing box is locked on."""
        target = self.app.explorer.target
        weak = target.has("use_explicit_typing") and not target.is_rtx
        self.explicit_typing.disabled = not weak
        self.explicit_typing.tooltip = ("use_explicit_typing=False: weak typing, TensorRT picks each layer's precision"
                                        if weak else f"{target} is strongly typed only: weak typing ended with 2.12")

    def sync(self) -> None:
        """Put every control in step with the explorer's settings and the app's view without firing callbacks."""
        app = self.app
        s = app.explorer.settings
        self.syncing = True
        try:
            self._follow_target()
            self.explicit_typing.value = s.use_explicit_typing
            self.autocast.value = s.enable_autocast
            self.low_precision.value = _low_name(s.autocast_low_precision_type)
            self.fp32_acc.value = s.use_fp32_acc
            self.output_threshold.value = s.autocast_max_output_threshold
            self.depth_limit.value = "" if s.autocast_max_depth_of_reduction is None \
                else str(s.autocast_max_depth_of_reduction)
            options = self._op_options(s.autocast_excluded_ops)
            if list(self.excluded_ops.options) != options:
                self.excluded_ops.options = options
            self.excluded_ops.value = tuple(sorted(s.autocast_excluded_ops))
            self.color_by_choice.options = self._color_options()
            self.color_by_choice.value = app.color_by
            self.group_choice.value = app.group_by_module or 0
        finally:
            self.syncing = False
        self.undo_button.disabled = not app.explorer.can_undo
        self.redo_button.disabled = not app.explorer.can_redo

    # -- history ---------------------------------------------------------------------------------------------------
    @guarded("undo")
    def undo(self) -> None:
        """Go back to the previous settings; the status line says what that changed."""
        self._step("Undo", self.app.explorer.undo)

    @guarded("redo")
    def redo(self) -> None:
        """Re-apply undone settings; the status line says what that changed."""
        self._step("Redo", self.app.explorer.redo)

    def _step(self, label: str, move: Callable[[], Any]) -> None:
        app = self.app
        before = app.explorer.settings
        app.apply(move)
        app.refresh()
        app.sync_frontier()
        app.say(f"{label}: " + (describe_change(before, app.explorer.settings) or "no change"))
