"""The speed-versus-error frontier: plans from all-low to all-FP32 in order of sensitivity, and plan comparison."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from . import dtypes
from .explorer import module_pattern
from .policy import PrecisionPlan
from .search import LatencyModel, _all_fp32, _Evaluator, _latency_model
from .sensitivity import _Runner, compute_sensitivity
from .settings import Settings

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from .backends.base import Profile
    from .explorer import Explorer


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
    """A sweep of plans; ``figure()`` draws it with the Pareto front highlighted."""

    points: tuple[FrontierPoint, ...]
    metric: str
    latency_source: str

    def front(self) -> list[FrontierPoint]:
        return sorted((p for p in self.points if p.on_front), key=lambda p: p.latency_ms)

    def figure(self) -> go.Figure:
        from .viz.frontier import frontier_figure

        return frontier_figure(self)

    def widget(self, explorer: Explorer):
        """The scatter as a widget: clicking a point loads that plan into ``explorer.settings`` (undoable)."""
        from .widget.frontier import build_frontier_widget

        return build_frontier_widget(explorer, self)


def pareto_flags(points: Sequence[tuple[float, float]]) -> list[bool]:
    """True for each (latency, error) pair that no other pair beats on both (ties allowed)."""
    flags = []
    for i, (lat, err) in enumerate(points):
        dominated = any(
            (lo <= lat and eo <= err) and (lo < lat or eo < err) for j, (lo, eo) in enumerate(points) if j != i)
        flags.append(not dominated)
    return flags


def _steps(count: int, max_points: int) -> list[int]:
    if count + 1 <= max_points:
        return list(range(count + 1))
    picks = {round(i * count / (max_points - 1)) for i in range(max_points)}
    return sorted(picks)


def compute_frontier(explorer: Explorer, inputs: Sequence[Any] | None = None, metric: str = "rel_l2",
                     max_points: int = 12, backend: str | None = None, measure: bool = False,
                     executor: str | None = None, low_dtype: torch.dtype | None = None, progress: bool = True,
                     **backend_options: Any) -> Frontier:
    """All-low, then the most sensitive modules kept in FP32 one by one, up to all-FP32.

    Latency is estimated from two profiles on ``backend`` (or a FLOPs/bytes model when None);
    ``measure=True`` compiles and times every point through :func:`mixprec_explorer.sweep.run_sweep`
    on ``executor`` ("local": all local GPUs, "ray": a Ray cluster, "serial").
    """
    args = tuple(inputs) if inputs is not None else explorer.example_inputs
    low = low_dtype or explorer.settings.autocast_low_precision_type or torch.float16
    base = explorer.settings.replace(enable_autocast=True, use_explicit_typing=True, autocast_low_precision_type=low,
                                     autocast_excluded_nodes=frozenset(), autocast_excluded_ops=frozenset())
    runner = _Runner(explorer, args)
    sens = compute_sensitivity(explorer, args, metric, low, progress=progress, runner=runner)
    order = [m for m, _ in sens.ranking("module")]
    evaluator = _Evaluator(explorer, args, metric, runner)
    latency: LatencyModel = _latency_model(explorer, base, low, "latency", backend, backend_options, progress)
    plans = []
    for k in _steps(len(order), max_points):
        kept = tuple(order[:k])
        s = _all_fp32(base) if k == len(order) else base.replace(
            autocast_excluded_nodes=frozenset(module_pattern(m) for m in kept))
        label = "all low" if k == 0 else "all FP32" if k == len(order) else f"+{k} FP32 modules"
        plans.append((label, s, kept))
    errors = [evaluator.error(s) for _, s, _ in plans]
    if measure:
        from .sweep import run_sweep

        results = run_sweep(explorer, [s for _, s, _ in plans], args, backend=backend or "auto", executor=executor,
                            progress=progress, **backend_options)
        latencies = [r["latency_ms"] for r in results]
    else:
        latencies = [latency.estimate_ms(evaluator.low_nodes(s)) for _, s, _ in plans]
    flags = pareto_flags(list(zip(latencies, errors)))
    points = tuple(FrontierPoint(label, s, kept, err, lat, measure, flag)
                   for (label, s, kept), err, lat, flag in zip(plans, errors, latencies, flags))
    return Frontier(points, metric, "measured" if measure else latency.source)


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
