"""Comparing two plans node by node: which nodes change dtype, accumulation or rule, with measured figures."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import dtypes
from .policy import PrecisionPlan
from .settings import Settings

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from .backends.base import Profile
    from .explorer import Explorer

__all__ = ["Comparison", "NodeChange", "compare_plans"]


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
    """Per-node differences between plan A and plan B."""

    a: PrecisionPlan
    b: PrecisionPlan
    changes: tuple[NodeChange, ...]

    def to_rows(self) -> list[dict[str, Any]]:
        return [vars(c) for c in self.changes]

    def figure(self, explorer: Explorer, mode: str = "side_by_side", **options: Any) -> go.Figure:
        """Both plans' graphs side by side, or one graph with the changed nodes marked (``mode="difference"``)."""
        from .viz.compare import build_compare_figure

        return build_compare_figure(explorer, self, mode=mode, **options)

    def __str__(self) -> str:
        lines = [f"{len(self.changes)} nodes differ"]
        lines += [f"  {c.name:24} {c.module:24} {c.dtype_a:>5} -> {c.dtype_b:<5}" for c in self.changes]
        return "\n".join(lines)


def compare_plans(explorer: Explorer, a: PrecisionPlan | Settings, b: PrecisionPlan | Settings,
                  profiles: tuple[Profile | None, Profile | None] = (None, None),
                  node_errors: tuple[dict[str, float] | None, dict[str, float] | None] = (None, None)) -> Comparison:
    """The nodes whose dtype, accumulation or rule differ between two plans (or two Settings)."""
    pa = a if isinstance(a, PrecisionPlan) else explorer.plan(a)
    pb = b if isinstance(b, PrecisionPlan) else explorer.plan(b)
    lat = [p.node_latency_ms() if p is not None else {} for p in profiles]
    err = [e or {} for e in node_errors]
    changes = []
    for name in pa.diff(pb):
        ra, rb = pa[name], pb[name]
        changes.append(NodeChange(name, ra.module, ra.op, dtypes.display_name(ra.dtype), dtypes.display_name(rb.dtype),
                                  lat[0].get(name), lat[1].get(name), err[0].get(name), err[1].get(name)))
    return Comparison(pa, pb, tuple(changes))
