"""Accuracy: what a compiled plan costs against the FP32 reference, i.e. the exported model run as given.

Both outputs are cast to FP32 before they are compared; metrics are then computed in float64, relative L2 by the
analysis core's one :func:`~mixprec_explorer.analysis.rel_l2` (NaN or inf anywhere scores inf). The per-node
errors (relative L2 of each FX node's output against the same node in the reference) come from the PyTorch
backend's copy of the graph, whichever backend compiled the plan. Inputs follow the analysis core's rules (a
tensor, a tuple, a list of batches): over several batches, every metric covers all of them together.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch.utils import _pytree as pytree

from .analysis import Batch, Inputs, normalize_inputs, rel_l2
from .errors import OptionError

if TYPE_CHECKING:
    from .backends.base import Compiled
    from .explorer import Explorer

__all__ = ["AccuracyReport", "CollectOutputs", "compare_outputs", "measure_accuracy", "node_errors", "tf32_note"]


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
                flat_inputs: Sequence[Any]) -> dict[str, float]:
    """Relative L2 error of each original node's output in ``planned`` against the same node in ``reference``.

    Both graphs run node by node in step, so only live values are held. Nodes whose first outputs are not
    floating-point tensors of the same shape are left out.
    """
    from .backends.torch_backend import OWNER, RESULT, iter_node_values

    names = {n.name for n in reference.graph.nodes}
    ref_steps = iter_node_values(reference, flat_inputs)
    out: dict[str, float] = {}
    with torch.no_grad():
        for node, value in iter_node_values(planned, flat_inputs):
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


@dataclass(frozen=True)
class CollectOutputs:
    """(reference outputs, compiled outputs, per-node errors or None, notes) for each batch, run where the
    compiled plan lives (a :class:`~mixprec_explorer.backends.PlanTask`)."""

    batches: tuple[Batch, ...]
    per_node: bool = False
    what: str = "accuracy run"

    def __call__(self, explorer: Explorer, compiled: Compiled) -> tuple[list[Any], list[Any], dict[str, float] | None,
                                                                        list[str]]:
        from .backends import run_here
        from .backends.torch_backend import apply_plan, flatten_inputs, load_module, to_device

        device = compiled.device
        notes: list[str] = []
        note = tf32_note(device, torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
        if note:
            notes.append(note)
        reference = load_module(explorer.exported_program, device)
        refs, outs = [], []
        for batch in self.batches:
            with torch.no_grad():
                refs.append(_fp32(reference(*to_device(tuple(batch), device))))
            outs.append(_fp32(run_here(explorer, compiled, tuple(batch))))
        errors = None
        if self.per_node:
            planned = getattr(compiled.handle, "planned", None)
            if planned is None:
                plan = compiled.plan if compiled.plan is not None else explorer.plan(compiled.settings)
                planned = apply_plan(explorer.exported_program, plan, device=device)
                notes.append("per-node errors are from the PyTorch backend's copy of the plan, not from the "
                             f"{compiled.backend} build")
            if len(self.batches) > 1:
                notes.append(f"per-node errors are from the first of the {len(self.batches)} batches")
            with planned.precision():
                errors = node_errors(reference, planned.module, flatten_inputs(to_device(self.batches[0], device)))
        return refs, outs, errors, notes


def measure_accuracy(explorer: Explorer, compiled: Compiled, inputs: Inputs = None, *, per_node: bool = False,
                     timeout_s: float | None = None) -> AccuracyReport:
    """Error of a compiled plan against the FP32 reference on ``inputs`` (default: the example inputs).

    Runs where the compiled plan lives (the worker process by default; WorkerCrashed if it dies). With
    ``per_node`` it also fills ``per_node_rel_l2`` for the graph overlay. Raises InputError for inputs that do
    not fit the captured program.
    """
    from .backends import run_task

    batches = tuple(normalize_inputs(explorer.captured, inputs))
    task = CollectOutputs(batches, per_node, what=f"{compiled.backend} accuracy run")
    (ref, out, errors, notes), more = run_task(explorer, compiled, task, timeout_s=timeout_s)
    return compare_outputs(ref, out, per_node=errors, backend=compiled.backend, notes=[*notes, *more])
