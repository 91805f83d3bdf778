"""Frozen records shared by every layer of the package (capture, policy, parsers, backends, viz).

Units are in the field names: ``latency_ms`` is milliseconds, ``flops`` floating-point operations
(a multiply-add counts as 2), ``bytes_moved`` bytes read plus written.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass(frozen=True)
class NodeInfo:
    """One FX node of the captured graph, as Torch-TensorRT's rule-based autocast sees it."""

    name: str  #: FX node name (``linear_1``), the graph key
    kind: str  #: "input", "call_function", "get_attr" or "output"
    op: str  #: qualified target as Torch-TensorRT prints it (``torch.ops.aten.linear.default``)
    module: str  #: innermost ``nn_module_stack`` path (``layers.0.fc1``); "" for the root
    module_type: str  #: class of that module (``torch.nn.modules.linear.Linear``)
    input_shapes: tuple[tuple[int, ...], ...]  #: shapes of tensor inputs, parameters included
    input_dtypes: tuple[torch.dtype | None, ...]  #: dtypes of those inputs
    output_shapes: tuple[tuple[int, ...], ...]  #: shapes of tensor outputs
    output_dtypes: tuple[torch.dtype | None, ...]  #: dtypes of those outputs
    param_count: int  #: elements of parameters and buffers this node reads directly
    flops: int  #: estimated floating-point operations of one forward pass
    bytes_moved: int  #: estimated bytes read and written
    removed_by: str | None = None  #: Torch-TensorRT pre-lowering pass that deletes this node, if any
    #: (file, line number, the line's text) of the Python line that made this node: the innermost frame of
    #: ``node.meta["stack_trace"]`` outside torch itself; None where export recorded none
    source: tuple[str, int, str] | None = None

    @property
    def dtype(self) -> torch.dtype | None:
        """dtype of the first tensor output, as the model gives it."""
        return self.output_dtypes[0] if self.output_dtypes else None


@dataclass(frozen=True)
class NodePrecision:
    """The predicted precision of one node, with the rule that decided it."""

    name: str  #: FX node name
    op: str  #: qualified target
    module: str  #: innermost module path
    dtype: torch.dtype | None  #: compute (output) dtype; None where TensorRT decides (weak typing)
    accumulate_dtype: torch.dtype | None  #: torch.float32 where FP32 accumulation is forced, else None
    rule: str  #: short code of the deciding rule (see :data:`mixprec_explorer.policy.RULES`)
    reason: str  #: human-readable explanation, with the regex / op / range / depth involved

    @property
    def is_excluded(self) -> bool:
        """True if an autocast rule kept this node in FP32."""
        return self.rule in ("excluded_node", "excluded_op", "io_range", "depth")


@dataclass(frozen=True)
class CalibrationStat:
    """What one node's reference output looked like over all calibration batches."""

    max_abs: float  #: largest |x| seen (nan-free; 0.0 for empty tensors)
    shape: tuple[int, ...]  #: shape after concatenating batches along dim 0, as Torch-TensorRT does
    numel: int  #: elements recorded
    dtype: torch.dtype | None = None  #: the output's dtype (None: not recorded)

    def range_issue(self, low: torch.dtype) -> str | None:
        """Whether this output leaves ``low``'s normal range: "overflow" (|x| max above its largest finite value),
        "underflow" (every |x| below its smallest normal), else None (also for integer outputs, all-zero outputs and a
        reference that is itself inf, which no low type is to blame for)."""
        if (self.dtype is not None and not self.dtype.is_floating_point) or not math.isfinite(self.max_abs):
            return None
        info = torch.finfo(low)
        if self.max_abs > info.max:
            return "overflow"
        return "underflow" if 0 < self.max_abs < info.smallest_normal else None


@dataclass(frozen=True)
class LayerRecord:
    """One TensorRT engine layer (or one PyTorch node) as measured, mapped back to FX nodes where possible."""

    name: str  #: layer name as the engine or backend reports it
    layer_type: str = ""  #: TensorRT LayerType ("Convolution", "kgen", ...) or the ATen op for torch
    input_dtypes: tuple[torch.dtype | None, ...] = ()  #: dtypes of the layer's inputs
    output_dtypes: tuple[torch.dtype | None, ...] = ()  #: dtypes of the layer's outputs
    accumulate_dtype: torch.dtype | None = None  #: accumulation dtype where the engine reports it
    latency_ms: float | None = None  #: median (or average where only that is known) time per run
    share: float | None = None  #: fraction of the engine's or model's total time, 0..1
    tactic: str = ""  #: kernel or tactic name where known
    modules: tuple[str, ...] = ()  #: module paths the layer's own and tensor names point to
    nodes: tuple[str, ...] = ()  #: FX node names it maps to (several for a fused layer)
    count: int | None = None  #: invocations the latency was averaged over, where known
    node_dtypes: tuple[tuple[str, torch.dtype | None], ...] = ()  #: measured compute dtype per node, where inferred
    node_weights: tuple[float, ...] = ()  #: share of ``latency_ms`` per node of ``nodes`` (sums to 1); () = even
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)  #: raw fields kept

    @property
    def on_second_stream(self) -> bool:
        """Whether the engine ran it on an auxiliary stream (TensorRT's ``StreamId`` > 0), beside the main one."""
        return self.extra.get("StreamId") not in (None, 0, "0")


@dataclass(frozen=True)
class EndToEnd:
    """End-to-end latency over repeated runs, after warm-up and device synchronisation."""

    median_ms: float
    p10_ms: float
    p90_ms: float
    runs: int


@dataclass(frozen=True)
class Exclusion:
    """What one exclude/include did: the regex written, and every node it reaches."""

    pattern: str  #: anchored module-path regex, as written into autocast_excluded_nodes
    module: str  #: the module path it targets ("" is the root module)
    nodes: tuple[str, ...]  #: every call_function node the regex reaches
    note: str  #: plain-language remark, e.g. that other nodes are caught too ("" if none)


@dataclass(frozen=True)
class DtypeMismatch:
    """One node whose measured dtype differs from the plan's, and why where the engine's kernels show it.

    ``profile.dtype_mismatches(plan)`` lists them; the reasons are those of
    :func:`mixprec_explorer.parsers.mismatch.explain_mismatch` (None: unexplained, worth a look).
    """

    node: str  #: FX node name
    op: str  #: qualified target
    planned: torch.dtype | None  #: the plan's dtype
    measured: torch.dtype | None  #: the dtype the engine computed it in
    reason: str | None  #: why the engine differs (``"engine keeps FP32: norm statistics"``); None: unexplained
    layers: tuple[str, ...] = ()  #: the engine layers that ran it, in execution order

    @property
    def explained(self) -> bool:
        return self.reason is not None
