"""Sensitivity: how much output error each node (and module) causes in low precision, and removes in FP32.

A thin user of the analysis core: :class:`~mixprec_explorer.analysis.PlanRunner` caches two base runs
(everything classified in FP32, everything in the low-precision type, casts inserted before each node as
Torch-TensorRT's autocast pass does); for one node we change its dtype and re-run only the nodes downstream of it
whose inputs actually changed. Errors are :mod:`mixprec_explorer.analysis.metrics`'.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import torch

from .analysis import (
    Inputs,
    PlanRunner,
    error_gain,
    get_metric,
    low_dtype_of,
    normalize_inputs,
    progress_steps,
)
from .results import Sensitivity

__all__ = ["Sensitivity", "compute_sensitivity"]

if TYPE_CHECKING:
    from .explorer import Explorer


def compute_sensitivity(explorer: Explorer, inputs: Inputs = None, metric: str = "rel_l2", *,
                        low_dtype: torch.dtype | None = None, nodes: Iterable[str] | None = None,
                        progress: bool = True, runner: PlanRunner | None = None) -> Sensitivity:
    """Sensitivity of every classified node and module (or of ``nodes`` only) on ``inputs``.

    ``inputs`` follow :mod:`mixprec_explorer.inputs` (a tensor, a tuple, a list of batches; None: the
    example inputs). ``low_dtype`` defaults to the settings' low-precision type, else float16. ``runner`` shares
    cached activations with a caller that has one for the same inputs. Raises OptionError naming the known
    metrics for an unknown ``metric``, InputError for inputs that do not fit the captured program.
    """
    measure = get_metric(metric)
    low = low_dtype_of(explorer.settings, low_dtype)
    run = runner or PlanRunner(explorer, normalize_inputs(explorer.captured, inputs))
    reference = run.reference()
    all_low = measure(run.outputs(run.base(low)), reference)
    chosen = [n for n in (nodes if nodes is not None else explorer.nodes) if n in run.classified]
    modules: dict[str, list[str]] = {}
    for name in chosen:
        modules.setdefault(explorer.nodes[name].module, []).append(name)
    units = [(name, [name]) for name in chosen] + [(f"module:{m}", members) for m, members in modules.items()]
    bar = progress_steps(len(units) * 2, progress)
    node_low: dict[str, float] = {}
    node_gain: dict[str, float] = {}
    module_low: dict[str, float] = {}
    module_gain: dict[str, float] = {}
    done: dict[frozenset[str], tuple[float, float]] = {}  # a one-node module costs nothing extra
    for key, members in units:
        group = frozenset(members)
        if group not in done:
            done[group] = (
                measure(run.perturbed(torch.float32, dict.fromkeys(members, low)), reference),
                measure(run.perturbed(low, dict.fromkeys(members, torch.float32)), reference),
            )
        err_low, err_kept = done[group]
        bar(2)
        if key.startswith("module:"):
            module_low[key[7:]], module_gain[key[7:]] = err_low, error_gain(all_low, err_kept)
        else:
            node_low[key], node_gain[key] = err_low, error_gain(all_low, err_kept)
    bar(0, close=True)
    per_pass = (len(run.classified) + 1) * len(run.batches)
    return Sensitivity(metric, low, all_low, node_low, node_gain, module_low, module_gain,
                       nodes_evaluated=run.evaluations, naive_evaluations=per_pass * (2 + 2 * len(units)))
