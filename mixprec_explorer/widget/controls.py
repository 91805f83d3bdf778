"""The controls above the graph: Torch-TensorRT's settings, and the view row (colour by, group, find, undo/redo).

A change of a settings control replaces the explorer's settings (the explorer keeps them consistent and
undoable); :meth:`ControlsMixin._sync_controls` puts every control back in step with the explorer without firing
their callbacks (after undo, redo, a search, or a failed change).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets
import torch

from ..errors import SettingsError
from ..viz.colors import FP32_COST
from ..viz.graph import COLOR_BY, OverlayUnavailable, node_errors
from ._format import describe_change, esc
from .status import guarded

if TYPE_CHECKING:
    from ..explorer import Explorer
    from ..settings import Settings

__all__ = ["ControlsMixin"]

_NEEDS = {"latency": "profile", "measured_dtype": "profile", "mismatch": "profile", "error": "accuracy",
          "sensitivity": "sensitivity", FP32_COST: "Calibrate what-if"}
#: Dropdown labels of the colourings whose value says too little.
_LABELS = {FP32_COST: "cost of staying FP32 (ms)"}
#: Colourings the dropdown leaves out: "changed" compares two plans (see mixprec_explorer.viz.compare).
_NOT_IN_DROPDOWN = ("changed",)
#: The low precision dropdown's values and the dtypes they stand for.
_LOW_TYPES = {"none": None, "float16": torch.float16, "bfloat16": torch.bfloat16}


def _low_name(dtype: torch.dtype | None) -> str:
    return next(k for k, v in _LOW_TYPES.items() if v == dtype)


class ControlsMixin:
    """Part of :class:`~mixprec_explorer.widget.app.WidgetApp`: the settings and view controls, and undo/redo."""

    if TYPE_CHECKING:  # from the rest of WidgetApp
        explorer: Explorer
        color_by: str
        group_by_module: Any
        notes: list[str]
        _check_cache: dict[Settings, list[str]]
        _syncing: bool
        _costs_checked: tuple[tuple[int, int], bool] | None

        def refresh(self) -> None: ...
        def find(self, query: str) -> list[str]: ...
        def collapse_all(self) -> None: ...
        def _on_color_by(self, change: dict[str, Any]) -> None: ...
        def _on_group(self, change: dict[str, Any]) -> None: ...
        def _on_find_submit(self, change: dict[str, Any]) -> None: ...
        def _say(self, text: str) -> None: ...
        def _sync_frontier(self) -> None: ...

    def _build_controls(self) -> None:
        """The settings controls (from the explorer's settings) and the view row, with their callbacks."""
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
            options=self._op_options(s.autocast_excluded_ops), value=tuple(sorted(s.autocast_excluded_ops)),
            rows=min(8, max(3, len(ops))), description="exclude ops", style=short,
            tooltip="ctrl/shift-click to keep several ops in FP32", layout=W.Layout(width="98%"))
        self.color_by_choice = W.Dropdown(options=self._color_options(), value=self.color_by,
                                          description="colour by", style=short, layout=W.Layout(width="230px"))
        self.group_choice = W.Dropdown(options=[("auto (large graphs grouped)", "auto"), ("no grouping", 0)]
                                       + [(f"modules at depth {d}", d) for d in (1, 2, 3, 4)],
                                       value=self.group_by_module or 0, description="group", style=short,
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
        self.find_button.on_click(lambda _: self.find(self.find_box.value))
        self.undo_button.on_click(lambda _: self.undo())
        self.redo_button.on_click(lambda _: self.redo())
        self.collapse_button.on_click(lambda _: self.collapse_all())

    def _op_options(self, excluded: frozenset[str]) -> list[tuple[str, str]]:
        """The op list's (label, op) choices; an excluded op says so in its label, not only by its selection."""
        ops = self.explorer.ops()
        options = [(("\u2716 FP32 (excluded): " if op in excluded else "") + f"{op.replace('torch.ops.', '')} ({n})",
                    op) for op, n in ops.items()]
        return options + [(f"\u2716 FP32 (excluded): {op.replace('torch.ops.', '')} (not in this model)", op)
                          for op in sorted(set(excluded) - set(ops))]

    def _color_options(self) -> list[tuple[str, str]]:
        """The colour-by dropdown's choices; those without their result yet say what they need."""
        accuracy = self.explorer.last_accuracy
        try:
            per_node = accuracy is not None and bool(node_errors(accuracy))
        except OverlayUnavailable:
            per_node = False
        have = {"profile": self.explorer.last_profile is not None, "accuracy": per_node,
                "sensitivity": self.explorer.last_sensitivity is not None, "Calibrate what-if": self._costs_known()}
        return [(_LABELS.get(c, c) + ("" if c not in _NEEDS or have[_NEEDS[c]] else f" (needs {_NEEDS[c]})"), c)
                for c in COLOR_BY if c not in _NOT_IN_DROPDOWN]

    def _costs_known(self) -> bool:
        """True if the what-if predicts each node's cost of staying FP32 (asked once per recorded measurement)."""
        predictor = self.explorer.predictor
        key = (predictor.version, id(self.explorer.calibration))
        if self._costs_checked is None or self._costs_checked[0] != key:
            try:
                known = bool(predictor.fp32_cost_ms())
            except Exception:  # the option says it needs calibrating; choosing it shows the error
                known = False
            self._costs_checked = ((predictor.version, id(self.explorer.calibration)), known)
        return self._costs_checked[1]

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

    @guarded("changing a setting")
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
        before = self.explorer.settings
        new = before.replace(**values)
        self._apply(lambda: setattr(self.explorer, "settings", new))
        self.notes = implied + self.notes
        self.refresh()
        self._say(esc(implied[0]) if implied else describe_change(before, self.explorer.settings))

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
            options = self._op_options(s.autocast_excluded_ops)
            if list(self.excluded_ops.options) != options:
                self.excluded_ops.options = options
            self.excluded_ops.value = tuple(sorted(s.autocast_excluded_ops))
            self.color_by_choice.options = self._color_options()
            self.color_by_choice.value = self.color_by
            self.group_choice.value = self.group_by_module or 0
        finally:
            self._syncing = False
        self.undo_button.disabled = not self.explorer.can_undo
        self.redo_button.disabled = not self.explorer.can_redo

    # -- history -----------------------------------------------------------------------------------------------
    @guarded("undo")
    def undo(self) -> None:
        """Go back to the previous settings; the status line says what that changed."""
        before = self.explorer.settings
        self._apply(self.explorer.undo)
        self.refresh()
        self._sync_frontier()
        self._say("Undo: " + (describe_change(before, self.explorer.settings) or "no change"))

    @guarded("redo")
    def redo(self) -> None:
        """Re-apply undone settings; the status line says what that changed."""
        before = self.explorer.settings
        self._apply(self.explorer.redo)
        self.refresh()
        self._sync_frontier()
        self._say("Redo: " + (describe_change(before, self.explorer.settings) or "no change"))
