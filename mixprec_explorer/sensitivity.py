"""Sensitivity: how much output error each node (and module) causes in low precision, and removes in FP32.

A thin user of the analysis core: :class:`~mixprec_explorer.analysis.PlanRunner` caches two base runs
(everything classified in FP32, everything in the low-precision type, casts inserted before each node as
Torch-TensorRT's autocast pass does); for one node we change its dtype and re-run only the nodes downstream of it
whose inputs actually changed. Errors are :mod:`mixprec_explorer.analysis.metrics`'.

That costs about half a forward pass per node. For large graphs the first-order model of
:mod:`mixprec_explorer.analysis.linear` estimates every node and module from a few backward passes instead
(``method="linear"``, chosen by ``"auto"`` where it is cheaper); docs/laptop.md gives its agreement with the
exact re-runs.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

import torch

from .analysis import (
    Inputs,
    Metric,
    PlanRunner,
    error_gain,
    get_metric,
    low_dtype_of,
    normalize_inputs,
    progress_steps,
)
from .analysis.linear import DEFAULT_PROBES, linear_cost, linear_errors
from .errors import OptionError, check_number
from .results import Sensitivity

__all__ = ["METHODS", "Sensitivity", "compute_sensitivity", "exact_cost"]

if TYPE_CHECKING:
    from .analysis.subject import Analysed
    from .records import NodeInfo


#: Methods of :func:`compute_sensitivity`.
METHODS = ("auto", "exact", "linear")
#: "auto" takes the exact re-runs unless they cost more than this many times the linear model.
EXACT_SHARE = 1.5
#: The linear model is trusted where its all-low error is within this factor of the exact one.
LINEAR_CHECK = 2.0


def _groups(nodes: Mapping[str, NodeInfo], chosen: list[str]) -> list[tuple[str, list[str]]]:
    """(key, members): each node, then each module (``module:<path>``) of the chosen nodes."""
    modules: dict[str, list[str]] = {}
    for name in chosen:
        modules.setdefault(nodes[name].module, []).append(name)
    return [(name, [name]) for name in chosen] + [(f"module:{m}", members) for m, members in modules.items()]


def exact_cost(run: PlanRunner, units: list[tuple[str, list[str]]]) -> int:
    """What the exact re-runs cost, in op evaluations: two re-runs of every op downstream per distinct group."""
    calls = [n for n in run.order if n.op == "call_function"]
    after = {n.name: len(calls) - i for i, n in enumerate(calls)}
    groups = {frozenset(members) for _, members in units}
    return sum(2 * max(after[m] for m in g) for g in groups if g) * len(run.batches)


def compute_sensitivity(explorer: Analysed, inputs: Inputs = None, metric: str = "rel_l2", *,
                        low_dtype: torch.dtype | None = None, nodes: Iterable[str] | None = None,
                        progress: bool = True, runner: PlanRunner | None = None, method: str = "auto",
                        probes: int = DEFAULT_PROBES) -> Sensitivity:
    """Sensitivity of every classified node and module (or of ``nodes`` only) of ``explorer`` (the facade, any
    :class:`~mixprec_explorer.analysis.subject.Analysed`) on ``inputs``.

    ``inputs`` follow :mod:`mixprec_explorer.inputs` (a tensor, a tuple, a list of batches; None: the
    example inputs). ``low_dtype`` defaults to the settings' low-precision type, else float16. ``runner`` shares
    cached activations with a caller that has one for the same inputs. ``method``: "exact" re-runs what lies
    downstream of each change (about half a forward pass per node); "linear" estimates every node and module to
    first order from ``probes`` backward passes (:mod:`mixprec_explorer.analysis.linear`; low precision simulated on
    the CPU, rel_l2); "auto" takes the exact re-runs where they cost at most 1.5 times the linear model, else the
    linear one, and falls back to exact where its all-low error is off the exact one by more than 2x (a note says
    so). Raises OptionError naming the known metrics for an unknown ``metric`` or method, InputError for inputs
    that do not fit the captured program.
    """
    measure = get_metric(metric)
    if method not in METHODS:
        raise OptionError(f"method must be one of {', '.join(map(repr, METHODS))}, got {method!r}")
    check_number("probes", probes, minimum=1, whole=True, what="backward passes")
    low = low_dtype_of(explorer.settings, low_dtype)
    run = runner or PlanRunner(explorer, normalize_inputs(explorer.captured, inputs))
    chosen = [n for n in (nodes if nodes is not None else explorer.nodes) if n in run.classified]
    units = _groups(explorer.nodes, chosen)
    notes: list[str] = []
    linear_ok = run.simulate and metric == "rel_l2"
    if method == "linear" and not linear_ok:
        raise OptionError("method='linear' needs low precision simulated (inputs and weights on the CPU) and "
                          f"metric='rel_l2'; got simulate={run.simulate}, metric={metric!r}: use method='exact'")
    if method == "linear" or (method == "auto" and linear_ok
                              and exact_cost(run, units) > EXACT_SHARE * linear_cost(run, probes)):
        result = _linear(run, low, metric, units, probes, progress, notes)
        if result is not None:
            return result
    return _exact(run, low, measure, metric, units, progress, notes)


def _linear(run: PlanRunner, low: torch.dtype, metric: str, units: list[tuple[str, list[str]]],
            probes: int, progress: bool, notes: list[str]) -> Sensitivity | None:
    """Every unit from the first-order model; None (and a note) where its all-low check fails under "auto"."""
    bar = progress_steps((len(run.classified) + probes) * len(run.batches), progress, desc="sensitivity (linear)")
    model = linear_errors(run, low, probes, step=bar)
    bar(0, close=True)
    ratio = model.all_low_ratio
    check = (f"linear model: all-low error {model.all_low_error:.3g} exact, {model.low_error(model.names):.3g} "
             f"predicted (ratio {ratio:.2f}); {probes} probes, about {1 / math.sqrt(2 * probes):.0%} spread per figure")
    if not (math.isfinite(model.all_low_error) and 1 / LINEAR_CHECK <= ratio <= LINEAR_CHECK):
        notes.append(f"{check}: outside {1 / LINEAR_CHECK:.1f}-{LINEAR_CHECK:.0f}x, so exact re-runs were used")
        return None
    low_error: dict[str, float] = {}
    gain: dict[str, float] = {}
    for key, members in units:
        low_error[key] = model.low_error(members)
        gain[key] = error_gain(model.all_low_error, model.kept_error(members))
    node_low, node_gain, module_low, module_gain = _split(low_error, gain)
    per_pass = (len(run.classified) + 1) * len(run.batches)
    return Sensitivity(metric, low, model.all_low_error, node_low, node_gain, module_low, module_gain,
                       nodes_evaluated=run.evaluations,
                       naive_evaluations=per_pass * (2 + 2 * len(units)), method="linear", notes=(check,),
                       estimator=model)


Figures = dict[str, float]


def _split(low_error: Figures, gain: Figures) -> tuple[Figures, Figures, Figures, Figures]:
    """(node low, node gain, module low, module gain) from per-unit figures keyed as :func:`_groups` keys them."""
    out: tuple[Figures, Figures, Figures, Figures] = ({}, {}, {}, {})
    for key in low_error:
        at = 2 if key.startswith("module:") else 0
        name = key[7:] if at else key
        out[at][name], out[at + 1][name] = low_error[key], gain[key]
    return out


def _exact(run: PlanRunner, low: torch.dtype, measure: Metric, metric: str,
           units: list[tuple[str, list[str]]], progress: bool, notes: list[str]) -> Sensitivity:
    """Every unit by re-running what lies downstream of it, from the cached all-FP32 and all-low runs."""
    reference = run.reference()
    all_low = measure(run.outputs(run.base(low)), reference)
    bar = progress_steps(len(units) * 2, progress)
    low_error: dict[str, float] = {}
    gain: dict[str, float] = {}
    done: dict[frozenset[str], tuple[float, float]] = {}  # a one-node module costs nothing extra
    for key, members in units:
        group = frozenset(members)
        if group not in done:
            done[group] = (
                measure(run.perturbed(torch.float32, dict.fromkeys(members, low)), reference),
                measure(run.perturbed(low, dict.fromkeys(members, torch.float32)), reference),
            )
        low_error[key], kept = done[group]
        gain[key] = error_gain(all_low, kept)
        bar(2)
    bar(0, close=True)
    per_pass = (len(run.classified) + 1) * len(run.batches)
    node_low, node_gain, module_low, module_gain = _split(low_error, gain)
    return Sensitivity(metric, low, all_low, node_low, node_gain, module_low, module_gain,
                       nodes_evaluated=run.evaluations,
                       naive_evaluations=per_pass * (2 + 2 * len(units)), method="exact", notes=tuple(notes))
