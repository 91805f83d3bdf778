"""The analysis core: where inputs are normalised, plans evaluated and errors measured.

=================  ================================================================================
module             owns
=================  ================================================================================
``inputs``         re-exported from Core (:mod:`mixprec_explorer.inputs`): one set of rules for inputs,
                   checked against the captured program: :func:`normalize_inputs`, ``InputError``
``runner``         :class:`PlanRunner`, a ``torch.fx.Interpreter`` that evaluates a plan over cached FP32 /
                   low activations, and :class:`PlanEvaluator` (a Settings' exact error)
``metrics``        one function per metric (:func:`rel_l2`), NaN and inf handled one way
``plans``          the settings an analysis evaluates: "this plan at the low dtype", all-FP32, exclusions
``backend``        what an analysis measures on a backend: :class:`Build` (with a :class:`CompileLog`
                   that compiles each plan once per analysis and counts them), :class:`LatencyModel`,
                   :func:`calibration_profiles`, :func:`backend_error`
``progress``       the counted progress bar analyses show
``subject``        what an analysis reads of the model it is handed (the facade passes itself): narrow
                   protocols (:class:`Program`, :class:`Analysed`...), so nothing here imports the facade
=================  ================================================================================

Sensitivity (:mod:`mixprec_explorer.sensitivity`), search, the frontier and accuracy are thin users of it.
"""

from __future__ import annotations

from ..inputs import Batch, Inputs, as_batches, check_batch, flatten_batch, normalize_inputs
from .backend import Build, CompiledEntry, CompileLog, LatencyModel, backend_error, calibration_profiles, price_nodes
from .metrics import METRICS, Metric, error_gain, floating_leaves, get_metric, rel_l2
from .plans import ALL_MODULES, all_fp32_settings, low_dtype_of, low_precision_settings, with_exclusions
from .progress import Steps, progress_steps
from .runner import PlanEvaluator, PlanRunner, cast_floats
from .subject import Analysed, Captured, Catalogued, Checked, Measurable, Plans, Program

__all__ = [
    "ALL_MODULES",
    "METRICS",
    "Analysed",
    "Batch",
    "Build",
    "Captured",
    "Catalogued",
    "Checked",
    "CompileLog",
    "CompiledEntry",
    "Inputs",
    "LatencyModel",
    "Measurable",
    "Metric",
    "PlanEvaluator",
    "PlanRunner",
    "Plans",
    "Program",
    "Steps",
    "all_fp32_settings",
    "as_batches",
    "backend_error",
    "calibration_profiles",
    "cast_floats",
    "check_batch",
    "error_gain",
    "flatten_batch",
    "floating_leaves",
    "get_metric",
    "low_dtype_of",
    "low_precision_settings",
    "normalize_inputs",
    "price_nodes",
    "progress_steps",
    "rel_l2",
    "with_exclusions",
]
