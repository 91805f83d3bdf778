"""What the graph figure draws over the predicted plan: measured results (a profile, per-node errors), a sensitivity
result, a plan to compare with and the predicted cost of staying FP32, gathered once per draw.

Every one is an argument: the facade (``ex.figure``) passes what the explorer keeps (``ex.last_profile``,
``last_accuracy``, ``last_sensitivity``) where the caller gave nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import MissingResult, OptionTypeError
from ..policy import PrecisionPlan

if TYPE_CHECKING:
    from ..records import CalibrationStat
    from ..results import Sensitivity

__all__ = ["Overlay", "OverlayUnavailable", "gather_overlay", "node_errors"]


class OverlayUnavailable(MissingResult):
    """``color_by`` asks for measured data (a profile or accuracy result) that does not exist yet."""


@dataclass(frozen=True)
class Overlay:
    """The results one draw colours and hovers with (None: not available)."""

    latency_ms: dict[str, float] | None  #: per node, from the profile
    measured: dict[str, Any] | None  #: measured dtype per node, from the profile
    errors: dict[str, float] | None  #: relative error per node, from the accuracy result
    total_ms: float  #: sum of ``latency_ms`` (0 without a profile)
    sensitivity: Sensitivity | None = None
    other: PrecisionPlan | None = None  #: the plan compared with ("A"; the drawn plan is "B")
    labels: tuple[str, str] = ("A", "B")
    layers: dict[str, tuple[str, ...]] | None = None  #: per node, the engine layers (with match) that ran it
    fp32_cost_ms: Mapping[str, float] | None = None  #: per node, predicted ms that staying FP32 costs
    calibration: Mapping[str, CalibrationStat] | None = None  #: per node, the calibrated range (``ex.calibration``)
    #: per node, the input dtypes of each engine layer that ran it (the order of ``layers``), from the profile
    reads: dict[str, tuple[tuple[Any, ...], ...]] | None = None


def gather_overlay(profile: Any = None, accuracy: Any = None, sensitivity: Sensitivity | None = None,
                   compare_to: PrecisionPlan | None = None, compare_labels: tuple[str, str] = ("A", "B"),
                   fp32_cost_ms: Mapping[str, float] | None = None,
                   calibration: Mapping[str, CalibrationStat] | None = None) -> Overlay:
    """The overlay of one draw from the results given (None: not drawn).

    ``profile`` is a :class:`~mixprec_explorer.backends.base.Profile`, ``accuracy`` an accuracy result or a mapping
    node -> relative error; ``compare_to`` is plan A (a PrecisionPlan; the drawn plan is B). Raises
    OptionTypeError for a ``compare_to`` that is not a PrecisionPlan.
    """
    latency = measured = errors = None
    layers: dict[str, tuple[str, ...]] | None = None
    reads: dict[str, tuple[tuple[Any, ...], ...]] | None = None
    total = 0.0
    if profile is not None:
        latency = dict(profile.node_latency_ms())
        measured = dict(profile.node_dtypes())
        total = sum(latency.values())
        layers, reads = {}, {}
        for layer in profile.layers:
            tags = ", ".join(t for t in (layer.extra.get("match", {}).get("confidence"),
                                         "second stream" if layer.on_second_stream else None) if t)
            for node in layer.nodes:
                layers[node] = (*layers.get(node, ()), f"{layer.name} ({tags})" if tags else layer.name)
                reads[node] = (*reads.get(node, ()), tuple(layer.input_dtypes))
    if accuracy is not None:
        try:
            errors = node_errors(accuracy)
        except OverlayUnavailable:
            errors = None
    if compare_to is not None and not isinstance(compare_to, PrecisionPlan):
        raise OptionTypeError(f"compare_to must be a PrecisionPlan (plan A), got {type(compare_to).__name__}; "
                              "ex.figure(compare_to=...) also takes Settings")
    return Overlay(latency, measured, errors, total, sensitivity, compare_to, compare_labels, layers,
                   dict(fp32_cost_ms) if fp32_cost_ms is not None else None, calibration or None, reads)


def node_errors(accuracy: Any) -> dict[str, float]:
    """Per-node relative error from an accuracy result (a mapping, or an object exposing one)."""
    if isinstance(accuracy, Mapping):
        return {str(k): float(v) for k, v in accuracy.items() if v is not None}
    for name in ("per_node_rel_l2", "node_errors", "per_node", "per_node_error"):
        found = getattr(accuracy, name, None)
        if callable(found):
            found = found()
        if isinstance(found, Mapping):
            return node_errors(found)
    raise OverlayUnavailable(
        f"this accuracy result ({type(accuracy).__name__}) has no per-node errors; "
        "measure them with ex.accuracy(compiled, per_node=True)")
