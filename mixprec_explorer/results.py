"""The records analyses return: sensitivity, the speed-versus-error frontier, the comparison of two plans.

Plain frozen dataclasses, importing nothing above the core: viz draws them (``mixprec_explorer.viz.draw``,
``ex.figure_of``) without importing the analyses that compute them (:mod:`~mixprec_explorer.sensitivity`,
:mod:`~mixprec_explorer.frontier`, :mod:`~mixprec_explorer.compare`, which re-export them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from .policy import PrecisionPlan
    from .settings import Settings

__all__ = ["Comparison", "Frontier", "FrontierPoint", "NodeChange", "Sensitivity"]


@dataclass(frozen=True)
class Sensitivity:
    """Per node and per module: error when only it runs low, and error removed when only it stays FP32.

    A record: ``mixprec_explorer.viz.draw(result)`` (or ``ex.figure_of(result)``) draws it as a bar chart.
    """

    metric: str  #: name of the error metric ("rel_l2")
    low_dtype: torch.dtype  #: the low-precision type used
    all_low_error: float  #: error of the all-low-precision plan
    node_low_error: dict[str, float]  #: node -> error when only this node is low precision
    node_fp32_gain: dict[str, float]  #: node -> all_low_error minus error when only this node stays FP32
    module_low_error: dict[str, float]  #: module path -> error when only its nodes are low precision
    module_fp32_gain: dict[str, float]  #: module path -> error removed when only its nodes stay FP32
    nodes_evaluated: int  #: node evaluations spent (the naive method spends one forward per change)
    naive_evaluations: int  #: what one full forward pass per change would have cost, in node evaluations
    #: "exact" (a re-run per change) or "linear" (first-order estimates, mixprec_explorer.analysis.linear)
    method: str = "exact"
    notes: tuple[str, ...] = ()  #: how the figures were obtained where that matters (the linear model's check)
    #: the linear method's error model: estimates any other set of nodes (search's candidates) at no cost
    estimator: Any = field(default=None, compare=False, hash=False, repr=False)

    def ranking(self, by: str = "module") -> list[tuple[str, float]]:
        """(name, error removed in FP32), most helpful first."""
        gains = self.module_fp32_gain if by == "module" else self.node_fp32_gain
        low = self.module_low_error if by == "module" else self.node_low_error
        return sorted(gains.items(), key=lambda kv: (-kv[1], -low.get(kv[0], 0.0)))


@dataclass(frozen=True)
class FrontierPoint:
    """One plan of the sweep with its error and latency."""

    label: str  #: "all low", "+3 FP32 modules", "all FP32"
    settings: Settings
    fp32_modules: tuple[str, ...]  #: modules kept in FP32 (most sensitive first)
    error: float  #: measured by one forward pass (metric units)
    latency_ms: float  #: estimated, or measured where ``measured`` is True
    measured: bool
    on_front: bool  #: not dominated by any other point in (latency, error)


@dataclass(frozen=True)
class Frontier:
    """A sweep of plans. A record: ``mixprec_explorer.viz.draw(result)`` (or ``ex.figure_of(result)``) draws it
    with the Pareto front highlighted; ``mixprec_explorer.widget.build_frontier_widget(ex, result)`` makes it a
    widget whose clicks load a plan."""

    points: tuple[FrontierPoint, ...]
    metric: str
    latency_source: str

    def front(self) -> list[FrontierPoint]:
        """The points on the Pareto front, fastest first."""
        return sorted((p for p in self.points if p.on_front), key=lambda p: p.latency_ms)


@dataclass(frozen=True)
class NodeChange:
    """One node that differs between two plans, with measured figures where given."""

    name: str
    module: str
    op: str
    dtype_a: str
    dtype_b: str
    latency_a_ms: float | None
    latency_b_ms: float | None
    error_a: float | None
    error_b: float | None


@dataclass(frozen=True)
class Comparison:
    """Per-node differences between plan A and plan B.

    A record: ``ex.figure_of(result)`` draws both plans' graphs side by side (``mode="difference"``: one graph with
    the changed nodes marked); ``mixprec_explorer.viz.draw(result, captured=ex.captured)`` does the same.
    """

    a: PrecisionPlan
    b: PrecisionPlan
    changes: tuple[NodeChange, ...]

    def to_rows(self) -> list[dict[str, Any]]:
        """One dict per changed node (the :class:`NodeChange` fields)."""
        return [vars(c) for c in self.changes]

    def __str__(self) -> str:
        lines = [f"{len(self.changes)} nodes differ"]
        lines += [f"  {c.name:24} {c.module:24} {c.dtype_a:>5} -> {c.dtype_b:<5}" for c in self.changes]
        return "\n".join(lines)
