"""Accuracy: what a compiled plan costs against the FP32 reference, i.e. the exported model run as given.

Both outputs are cast to FP32 before they are compared; metrics are then computed in float64, relative L2 by the
analysis core's one :func:`~mixprec_explorer.analysis.rel_l2` (NaN or inf anywhere scores inf). The per-node
errors (relative L2 of each FX node's output against the same node in the reference) come from the PyTorch
backend's copy of the graph, whichever backend compiled the plan. Inputs follow the analysis core's rules (a
tensor, a tuple, a list of batches): over several batches, every metric covers all of them together.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch.utils import _pytree as pytree

from .analysis import Batch, Inputs, normalize_inputs, rel_l2
from .calibration import range_issues, range_limits, trace_reference_stats
from .dtypes import display_name
from .errors import MixprecError, OptionError
from .numbers import format_number
from .records import CalibrationStat, NodeInfo

if TYPE_CHECKING:
    from .analysis.subject import Checked
    from .backends.base import Compiled
    from .backends.subject import Model

__all__ = ["AccuracyReport", "CollectOutputs", "compare_outputs", "measure_accuracy", "node_errors",
           "numerics_notes", "tf32_note"]

#: Above this share of the reference's nonzero output values read as 0, the low-precision output is "mostly flushed"
MOSTLY_FLUSHED = 0.5


@dataclass(frozen=True)
class AccuracyReport:
    """Error of a compiled plan's outputs against the FP32 reference, over all output elements together."""

    max_abs_error: float  #: max |out - ref|
    mean_abs_error: float  #: mean |out - ref|
    rel_l2_error: float  #: ||out - ref||_2 / ||ref||_2 (0 when both are zero, inf when only ref is or on NaN/inf)
    cosine_similarity: float  #: <out, ref> / (||out|| ||ref||), in [-1, 1] (1 when both are zero)
    sqnr_db: float  #: 10 log10(sum ref^2 / sum (out - ref)^2) in dB; inf when identical
    top1_agreement: float | None  #: share of rows whose argmax over the last dim agrees (first output, last dim > 1)
    numel: int  #: output elements compared
    nonfinite: int  #: NaN or inf elements in the compiled outputs (the metrics above are then NaN or inf)
    per_node_rel_l2: dict[str, float] | None = field(default=None, compare=False, hash=False)
    #: FX node -> relative L2 error of its output (per_node=True only; from the PyTorch backend's graph)
    backend: str = ""  #: backend that produced the outputs
    notes: tuple[str, ...] = ()


def _leaves(value: Any) -> list[torch.Tensor]:
    return [x for x in pytree.tree_leaves(value) if isinstance(x, torch.Tensor)]


def _fp32(value: Any) -> Any:
    """Every tensor in ``value`` detached, on the CPU, floats cast to FP32."""
    return pytree.tree_map(
        lambda x: (x.detach().float() if x.is_floating_point() else x.detach()).cpu()
        if isinstance(x, torch.Tensor) else x, value)


def _top1(out: torch.Tensor, ref: torch.Tensor) -> float | None:
    if ref.dim() < 1 or ref.shape[-1] <= 1 or not ref.is_floating_point() or ref.numel() == 0:
        return None
    width = ref.shape[-1]
    agree = out.reshape(-1, width).argmax(-1) == ref.reshape(-1, width).argmax(-1)
    return float(agree.double().mean())


def compare_outputs(reference: Any, outputs: Any, *, per_node: dict[str, float] | None = None, backend: str = "",
                    notes: Sequence[str] = ()) -> AccuracyReport:
    """Metrics of ``outputs`` against ``reference`` (tensors or nested tuples/lists/dicts of them, same structure).

    Raises ValueError if the numbers or shapes of the tensors differ.

    >>> r = compare_outputs(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.5]))
    >>> (r.max_abs_error, r.mean_abs_error)
    (0.5, 0.25)
    """
    refs, outs = _leaves(_fp32(reference)), _leaves(_fp32(outputs))
    if len(refs) != len(outs):
        raise OptionError(f"the reference has {len(refs)} output tensors, the compiled plan {len(outs)}")
    for index, (r, o) in enumerate(zip(refs, outs)):
        if r.shape != o.shape:
            raise OptionError(f"output {index}: shape {tuple(o.shape)} differs from the reference's {tuple(r.shape)}")
    if not refs:
        raise OptionError("no output tensors to compare")
    ref = torch.cat([r.double().flatten() for r in refs])
    out = torch.cat([o.double().flatten() for o in outs])
    err = out - ref
    numel = int(ref.numel())
    abs_err = err.abs()
    err_sq, ref_sq = float((err * err).sum()), float((ref * ref).sum())
    norm_ref, norm_out = math.sqrt(ref_sq), float(torch.linalg.vector_norm(out))
    if norm_ref == 0 or norm_out == 0:
        cosine = 1.0 if norm_ref == norm_out else 0.0
    else:
        cosine = float(torch.dot(out, ref)) / (norm_ref * norm_out)
    if err_sq == 0:
        sqnr = math.inf
    elif ref_sq == 0:
        sqnr = -math.inf
    else:
        sqnr = 10.0 * math.log10(ref_sq / err_sq) if math.isfinite(err_sq) else -math.inf
    if math.isnan(err_sq):
        sqnr = math.nan
    return AccuracyReport(
        max_abs_error=float(abs_err.max()) if numel else 0.0,
        mean_abs_error=float(abs_err.mean()) if numel else 0.0,
        rel_l2_error=rel_l2(out, ref),
        cosine_similarity=max(-1.0, min(1.0, cosine)) if math.isfinite(cosine) else cosine,
        sqnr_db=sqnr,
        top1_agreement=_top1(outs[0], refs[0]),
        numel=numel,
        nonfinite=int((~torch.isfinite(out)).sum()),
        per_node_rel_l2=per_node,
        backend=backend,
        notes=tuple(notes),
    )


def node_errors(reference: torch.fx.GraphModule, planned: torch.fx.GraphModule,
                flat_inputs: Sequence[Any], *, simulate: bool = False) -> dict[str, float]:
    """Relative L2 error of each original node's output in ``planned`` against the same node in ``reference``.

    Both graphs run node by node in step, so only live values are held. Nodes whose first outputs are not
    floating-point tensors of the same shape are left out. ``simulate``: the planned graph's low precision is
    simulated at FP32 speed (:mod:`~mixprec_explorer.backends.simulate`).
    """
    from .backends.torch_backend import OWNER, RESULT, iter_node_values

    names = {n.name for n in reference.graph.nodes}
    ref_steps = iter_node_values(reference, flat_inputs)
    out: dict[str, float] = {}
    with torch.no_grad():
        for node, value in iter_node_values(planned, flat_inputs, simulate=simulate):
            owner = node.meta.get(OWNER)
            if not node.meta.get(RESULT) or owner not in names:
                continue
            for ref_node, ref_value in ref_steps:
                if ref_node.name != owner:
                    continue
                got, want = _leaves(value), _leaves(ref_value)
                if got and want and got[0].is_floating_point() and want[0].is_floating_point() \
                        and got[0].shape == want[0].shape:
                    out[owner] = rel_l2(got[0].float(), want[0].float())
                break
    return out


def tf32_note(device: str, cudnn_tf32: bool, matmul_tf32: bool) -> str | None:
    """A note when the FP32 reference on ``device`` may use TF32 (10-bit mantissa) kernels; None when it cannot."""
    if torch.device(device).type != "cuda" or not (cudnn_tf32 or matmul_tf32):
        return None
    return (f"the FP32 reference ran with TF32 allowed (cuDNN convolutions: {cudnn_tf32}, matmuls: {matmul_tf32}); "
            "TF32 alone differs from strict FP32 by about 5e-4 relative L2 on ResNet-50 (H100). For a strict "
            "reference set torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False")


def _nodes_do(count: int) -> str:
    return "1 node does" if count == 1 else f"{count} nodes do"


def _where(issue: str, low: torch.dtype, stats: Mapping[str, CalibrationStat], source: str,
           nodes: Collection[str] | None, infos: Mapping[str, NodeInfo] | None) -> str:
    """``"FP16 underflow after node X (module m): ..."``: the first node in graph order whose range leaves ``low``'s
    the same way, from ``stats`` (``source``: "calibrated" or "measured"), among ``nodes`` where given."""
    name = display_name(low)
    _, normal, top = range_limits(low)
    found = [i for i in range_issues(stats, low, nodes) if i.issue == issue]
    if not found:
        bound = f"lies wholly below {name}'s smallest normal {format_number(normal, 2)}" if issue == "underflow" \
            else f"exceeds {name}'s max {top:.6g}"
        return f"no node's {source} range {bound}: it happens inside the low-precision computation"
    first = found[0]
    module = infos[first.node].module if infos is not None and first.node in infos else ""
    at = f"{name} {issue} after node {first.node}" + (f" (module {module})" if module else "")
    if issue == "overflow":
        return (f"{at}, the first in graph order whose {source} |x| max ({format_number(first.max_abs, 2)}) exceeds "
                f"{name}'s max {top:.6g}; {_nodes_do(len(found))}. Keep them in FP32 (with calibration data, "
                "the I/O range rule's autocast_max_output_threshold does) or use BF16")
    zero = sum(i.rounds_to_zero for i in found)
    fix = "; BF16 (FP32's exponent range) or keeping them in FP32 avoids it" if low != torch.bfloat16 \
        else "; keeping them in FP32 avoids it"
    return (f"{at}, the first in graph order whose {source} |x| max ({format_number(first.max_abs, 2)}) lies below "
            f"{name}'s smallest normal {format_number(normal, 2)}; {_nodes_do(len(found))}"
            + (f", {zero} of them so far below that all of their values round to 0" if zero else "") + fix)


def numerics_notes(reference: Any, outputs: Any, low: torch.dtype,
                   ranges: Callable[[], tuple[Mapping[str, CalibrationStat], str]], *,
                   nodes: Collection[str] | None = None, infos: Mapping[str, NodeInfo] | None = None,
                   what: str | None = None) -> list[str]:
    """Notes when a low-precision output (``low``) is all zeros, mostly flushed to 0, or inf/NaN where the FP32
    reference is not, each with where it starts: the first node whose range leaves ``low``'s.

    ``ranges`` is called only when there is something to place: it gives (node -> CalibrationStat in graph order,
    "calibrated" or "measured"); ``nodes`` restricts the search to the nodes the plan runs in ``low``; ``infos`` (the
    explorer's nodes) adds their module paths. ``what`` names the output (default ``"the FP16 output"``).
    """
    refs, outs = _leaves(_fp32(reference)), _leaves(_fp32(outputs))
    if not refs or len(refs) != len(outs):
        return []
    ref = torch.cat([r.float().flatten() for r in refs])
    out = torch.cat([o.float().flatten() for o in outs])
    name = display_name(low)
    what = what or f"the {name} output"
    found: list[tuple[str, str]] = []  # (issue, the finding)
    bad = int((~torch.isfinite(out) & torch.isfinite(ref)).sum())
    if bad:
        found.append(("overflow", f"{what} has {bad} inf or NaN values where the FP32 reference's are "
                                  "finite"))
    nonzero = ref != 0
    flushed = int(((out == 0) & nonzero).sum())
    total = int(nonzero.sum())
    if total and flushed == total and not bool((out != 0).any()):
        peak = float(ref[torch.isfinite(ref)].abs().max()) if bool(torch.isfinite(ref).any()) else math.inf
        found.append(("underflow", f"{what} is all zeros (the FP32 reference's |x| max is "
                                   f"{format_number(peak, 2)})"))
    elif total and flushed / total > MOSTLY_FLUSHED:
        found.append(("underflow", f"{what} is mostly flushed to 0 ({flushed / total:.0%} of the values "
                                   "that are nonzero in the FP32 reference)"))
    if not found:
        return []
    try:
        stats, source = ranges()
    except MixprecError:
        return [finding for _, finding in found]
    return [f"{finding}: {_where(issue, low, stats, source, nodes, infos)}" for issue, finding in found]


@dataclass(frozen=True)
class CollectOutputs:
    """(reference outputs, compiled outputs, per-node errors or None, notes) for each batch, run where the
    compiled plan lives (a :class:`~mixprec_explorer.backends.PlanTask`)."""

    batches: tuple[Batch, ...]
    per_node: bool = False
    what: str = "accuracy run"
    #: simulate low precision at FP32 speed where the backend can (the PyTorch backend's eager graph on the CPU);
    #: None: wherever it can, False: the real arithmetic
    simulate: bool | None = None

    def __call__(self, explorer: Model, compiled: Compiled) -> tuple[list[Any], list[Any], dict[str, float] | None,
                                                                     list[str]]:
        from .backends import run_here
        from .backends.torch_backend import apply_plan, flatten_inputs, load_module, to_device

        device = compiled.device
        notes: list[str] = []
        note = tf32_note(device, torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
        if note:
            notes.append(note)
        reference = load_module(explorer.exported_program, device)
        simulate = self.simulate is not False and bool(getattr(compiled.handle, "simulates", False))
        if simulate:
            notes.append("low precision simulated at FP32 speed on the CPU (each low-precision value rounded to its "
                         "type, arithmetic in FP32, as PyTorch's CPU kernels compute FP16); simulate=False runs the "
                         "real FP16 arithmetic")
        refs, outs = [], []
        for batch in self.batches:
            with torch.no_grad():
                refs.append(_fp32(reference(*to_device(tuple(batch), device))))
            outs.append(_fp32(compiled.handle.simulated(*batch) if simulate
                              else run_here(explorer, compiled, tuple(batch))))
        errors = None
        if self.per_node:
            planned = getattr(compiled.handle, "planned", None)
            if planned is None:
                plan = compiled.plan
                if plan is None:  # a Compiled made by hand (compile_plan always sets it): the facade plans it
                    planner: Any = explorer
                    plan = planner.plan(compiled.settings)
                planned = apply_plan(explorer.exported_program, plan, device=device)
                notes.append("per-node errors are from the PyTorch backend's copy of the plan, not from the "
                             f"{compiled.backend} build")
            if len(self.batches) > 1:
                notes.append(f"per-node errors are from the first of the {len(self.batches)} batches")
            with planned.precision():
                errors = node_errors(reference, planned.module, flatten_inputs(to_device(self.batches[0], device)),
                                     simulate=simulate)
        return refs, outs, errors, notes


def measure_accuracy(explorer: Checked, compiled: Compiled, inputs: Inputs = None, *, per_node: bool = False,
                     timeout_s: float | None = None, simulate: bool | None = None) -> AccuracyReport:
    """Error of a compiled plan of ``explorer`` (the facade, any :class:`~mixprec_explorer.analysis.subject.Checked`)
    against the FP32 reference on ``inputs`` (default: the example inputs).

    Runs where the compiled plan lives (the worker process by default; WorkerCrashed if it dies). With
    ``per_node`` it also fills ``per_node_rel_l2`` for the graph overlay. ``simulate``: the PyTorch backend's
    eager plan on the CPU rounds to FP16 and computes in FP32 (None, the default; a note says so), False runs its
    real FP16 arithmetic (many times slower on a CPU). Raises InputError for inputs that do not fit the captured
    program.
    """
    from .backends import run_task

    batches = tuple(normalize_inputs(explorer.captured, inputs))
    task = CollectOutputs(batches, per_node, what=f"{compiled.backend} accuracy run", simulate=simulate)
    (ref, out, errors, notes), more = run_task(explorer, compiled, task, timeout_s=timeout_s)
    settings = compiled.settings
    low = settings.autocast_low_precision_type if settings.autocast_active else None
    if low is not None:
        plan = compiled.plan if compiled.plan is not None else explorer.plan(settings)

        def ranges() -> tuple[Mapping[str, CalibrationStat], str]:
            if explorer.calibration:
                return explorer.calibration, "calibrated"
            return trace_reference_stats(explorer.exported_program, batches), "measured"

        notes = [*numerics_notes(ref, out, low, ranges, nodes={r.name for r in plan if r.dtype == low},
                                 infos=explorer.nodes), *notes]
    return compare_outputs(ref, out, per_node=errors, backend=compiled.backend, notes=[*notes, *more])
