"""What the graph figure draws over the predicted plan: measured results (a profile, per-node errors), a sensitivity
result and a plan to compare with, gathered once per draw.

Each defaults to what the explorer keeps in ``explorer.last_profile``, ``last_accuracy`` and ``last_sensitivity`` (where ``ex.profile``, ``ex.accuracy`` and
``ex.sensitivity`` leave their results).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import MissingResult, OptionTypeError

if TYPE_CHECKING:
    from ..explorer import Explorer
    from ..policy import PrecisionPlan
    from ..sensitivity import Sensitivity
    from ..settings import Settings

__all__ = ["Overlay", "OverlayUnavailable", "as_plan", "gather_overlay", "node_errors"]


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


def gather_overlay(explorer: Explorer, profile: Any, accuracy: Any, sensitivity: Sensitivity | None = None,
                   compare_to: PrecisionPlan | Settings | None = None, compare_labels: tuple[str, str] = ("A", "B")
                   ) -> Overlay:
    """The overlay of one draw: the arguments given, else the explorer's last results."""
    profile = profile if profile is not None else explorer.last_profile
    accuracy = accuracy if accuracy is not None else explorer.last_accuracy
    sensitivity = sensitivity if sensitivity is not None else explorer.last_sensitivity
    latency = measured = errors = None
    layers: dict[str, tuple[str, ...]] | None = None
    total = 0.0
    if profile is not None:
        latency = dict(profile.node_latency_ms())
        measured = dict(profile.node_dtypes())
        total = sum(latency.values())
        layers = {}
        for layer in profile.layers:
            tags = ", ".join(t for t in (layer.extra.get("match", {}).get("confidence"),
                                         "second stream" if layer.on_second_stream else None) if t)
            for node in layer.nodes:
                layers[node] = (*layers.get(node, ()), f"{layer.name} ({tags})" if tags else layer.name)
    if accuracy is not None:
        try:
            errors = node_errors(accuracy)
        except OverlayUnavailable:
            errors = None
    other = as_plan(explorer, compare_to) if compare_to is not None else None
    return Overlay(latency, measured, errors, total, sensitivity, other, compare_labels, layers)


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


def as_plan(explorer: Explorer, plan: PrecisionPlan | Settings) -> PrecisionPlan:
    """A PrecisionPlan as given, or the explorer's plan of a Settings."""
    from ..policy import PrecisionPlan
    from ..settings import Settings

    if isinstance(plan, PrecisionPlan):
        return plan
    if isinstance(plan, Settings):
        return explorer.plan(plan)
    raise OptionTypeError(f"expected a PrecisionPlan or Settings to compare with, got {type(plan).__name__}")
