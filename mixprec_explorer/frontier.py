"""The speed-versus-error frontier: plans from all-low to all-FP32 in order of sensitivity.

A thin user of :mod:`mixprec_explorer.analysis`: errors come from :class:`~mixprec_explorer.analysis.PlanEvaluator`,
latency from :func:`~mixprec_explorer.analysis.price_nodes` (or, with ``measure=True``, from a sweep).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch

from .analysis import (
    Build,
    Inputs,
    LatencyModel,
    PlanEvaluator,
    PlanRunner,
    all_fp32_settings,
    get_metric,
    low_precision_settings,
    normalize_inputs,
    price_nodes,
    with_exclusions,
)
from .errors import check_number
from .results import Frontier, FrontierPoint
from .sensitivity import compute_sensitivity
from .settings import module_pattern

if TYPE_CHECKING:
    from .analysis.subject import Measurable

__all__ = ["Frontier", "FrontierPoint", "compute_frontier", "pareto_flags"]


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


def compute_frontier(explorer: Measurable, inputs: Inputs = None, metric: str = "rel_l2", *, max_points: int = 12,
                     backend: str | None = None, device: str | None = None, isolate: bool = True,
                     compile_options: Mapping[str, Any] | None = None, measure: bool = False,
                     executor: str | None = None, low_dtype: torch.dtype | None = None,
                     progress: bool = True) -> Frontier:
    """All-low, then the most sensitive modules kept in FP32 one by one, up to all-FP32, for ``explorer`` (the facade,
    any :class:`~mixprec_explorer.analysis.subject.Measurable`).

    ``inputs`` follow :mod:`mixprec_explorer.inputs`. Latency is estimated from two profiles on
    ``backend`` (compiled on ``device``, in the worker unless ``isolate=False``, with the backend's own
    ``compile_options``), or from a FLOPs/bytes model when None; ``measure=True`` compiles and times every point
    through :func:`mixprec_explorer.sweep.run_sweep` on ``executor`` ("local": all local GPUs, "ray": a Ray
    cluster, "serial").
    """
    get_metric(metric)
    check_number("max_points", max_points, minimum=2, whole=True, what="plans, all-low and all-FP32 among them")
    batches = normalize_inputs(explorer.captured, inputs)
    base = low_precision_settings(explorer.settings, low_dtype)
    low = base.autocast_low_precision_type
    build = Build(backend, device, isolate, dict(compile_options or {}), progress)
    runner = PlanRunner(explorer, batches)
    sens = compute_sensitivity(explorer, batches, metric, low_dtype=low, progress=progress, runner=runner)
    order = [m for m, _ in sens.ranking("module")]
    evaluator = PlanEvaluator(explorer, runner, metric)
    latency: LatencyModel = price_nodes(explorer, base, build)
    plans = []
    for k in _steps(len(order), max_points):
        kept = tuple(order[:k])
        s = all_fp32_settings(base) if k == len(order) else with_exclusions(base, (module_pattern(m) for m in kept))
        label = "all low" if k == 0 else "all FP32" if k == len(order) else f"+{k} FP32 modules"
        plans.append((label, s, kept))
    errors = [evaluator.error(s) for _, s, _ in plans]
    if measure:
        from .sweep import run_sweep

        results = run_sweep(explorer, [s for _, s, _ in plans], batches[0], backend=backend or "auto",
                            executor=executor, progress=progress, compile_options=build.options)
        latencies = [r["latency_ms"] for r in results]
    else:
        latencies = [latency.estimate_ms(evaluator.low_nodes(s)) for _, s, _ in plans]
    flags = pareto_flags(list(zip(latencies, errors)))
    points = tuple(FrontierPoint(label, s, kept, err, lat, measure, flag)
                   for (label, s, kept), err, lat, flag in zip(plans, errors, latencies, flags))
    return Frontier(points, metric, "measured" if measure else latency.source)
