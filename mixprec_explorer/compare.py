"""Comparing two plans node by node: which nodes change dtype, accumulation or rule, with measured figures."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .dtypes import display_name
from .results import Comparison, NodeChange

if TYPE_CHECKING:
    from .backends.base import Profile
    from .policy import PrecisionPlan

__all__ = ["Comparison", "NodeChange", "compare_plans"]


def compare_plans(pa: PrecisionPlan, pb: PrecisionPlan, profiles: tuple[Profile | None, Profile | None] = (None, None),
                  node_errors: tuple[dict[str, float] | None, dict[str, float] | None] = (None, None)) -> Comparison:
    """The nodes whose dtype, accumulation or rule differ between two plans (``ex.compare`` plans two Settings)."""
    lat = [p.node_latency_ms() if p is not None else {} for p in profiles]
    err = [e or {} for e in node_errors]
    changes = []
    for name in pa.diff(pb):
        ra, rb = pa[name], pb[name]
        changes.append(NodeChange(name, ra.module, ra.op, display_name(ra.dtype), display_name(rb.dtype),
                                  lat[0].get(name), lat[1].get(name), err[0].get(name), err[1].get(name)))
    return Comparison(pa, pb, tuple(changes))
