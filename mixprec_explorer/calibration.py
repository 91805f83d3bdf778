"""Calibration: reference activations recorded the way Torch-TensorRT records them for autocast.

Torch-TensorRT runs a ``torch.fx.Interpreter`` over the unlifted ``ep.module()`` once per batch
(``tracer.run(tuple(batch))``) and keeps each call_function node's tensor output, concatenated along
dim 0 (``pass_utils.trace_intermediate_node_outputs``). Its rules only need |x| max and the shape, so
we keep those and not the tensors: memory stays flat however many batches are given.

The same |x| max says where a node's output leaves a low-precision type's range (:func:`range_issues`): every
value below its smallest normal (underflow: precision lost, or all of it rounded to zero) or some above its
largest finite value (overflow: inf).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch

from .dtypes import LOW_PRECISION_TYPES, display_name
from .errors import SettingsError
from .numbers import format_number
from .ops import UNCLASSIFIED_OPS, qualified_op_name
from .records import CalibrationStat

__all__ = ["Calibration", "RangeIssue", "range_issues", "range_limits", "range_summary", "record_stats",
           "trace_reference_stats"]



def _max_abs(t: torch.Tensor) -> float:
    if t.numel() == 0:
        return 0.0
    if t.dtype == torch.bool:
        return float(t.any())
    x = t.detach().abs() if t.is_floating_point() or t.is_complex() else t.detach().to(torch.float64).abs()
    if x.is_floating_point():
        x = torch.nan_to_num(x.float(), nan=0.0, posinf=math.inf)
    return float(x.max())


class _Recorder:
    """|x| max, concatenated shape and element count of each call_function node's tensor output, run after run."""

    def __init__(self) -> None:
        self.stats: dict[str, list[Any]] = {}

    def add(self, node: torch.fx.Node, out: Any) -> None:
        if (node.op != "call_function" or qualified_op_name(node.target) in UNCLASSIFIED_OPS
                or not isinstance(out, torch.Tensor)):
            return
        seen = self.stats.get(node.name)
        shape = tuple(out.shape)
        if seen is None:
            self.stats[node.name] = [_max_abs(out), shape, out.numel(), out.dtype]
        else:
            seen[0] = max(seen[0], _max_abs(out))
            if shape and seen[1]:
                seen[1] = (seen[1][0] + shape[0], *seen[1][1:])
            seen[2] += out.numel()

    def result(self) -> Calibration:
        return Calibration((name, CalibrationStat(max_abs=v[0], shape=v[1], numel=v[2], dtype=v[3]))
                           for name, v in self.stats.items())


def record_stats(runs: Iterable[Iterable[tuple[torch.fx.Node, Any]]]) -> Calibration:
    """The calibration records of runs already made: each run an iterable of (node, value) in graph order (a
    :class:`~mixprec_explorer.analysis.PlanRunner`'s all-FP32 environments), so no forward pass is repeated."""
    recorder = _Recorder()
    for run in runs:
        for node, value in run:
            recorder.add(node, value)
    return recorder.result()


def trace_reference_stats(ep: torch.export.ExportedProgram, batches: Iterable[Any]) -> Calibration:
    """Per call_function node: |x| max, concatenated shape and dtype of its output over all batches, in graph order.

    Each batch must be a sequence of positional inputs (a ``TensorDataset`` batch ``[x]`` works);
    a bare tensor is rejected with a hint, since Torch-TensorRT would split it along dim 0.
    """
    module = ep.module()
    recorder = _Recorder()
    # Torch-TensorRT keeps the first batch's output tensors themselves, so an in-place op later in that run
    # (add_, relu_) changes what it recorded; from the second batch on it keeps torch.cat copies. Reading the first
    # batch's outputs after its run records the same values.
    first_run: list[tuple[torch.fx.Node, Any]] = []

    class _Tracer(torch.fx.Interpreter):
        def run_node(self, n: torch.fx.Node) -> Any:
            out = super().run_node(n)
            if count == 0:
                first_run.append((n, out))
            else:
                recorder.add(n, out)
            return out

    tracer = _Tracer(module)
    count = 0
    with torch.no_grad():
        for index, batch in enumerate(batches):
            if isinstance(batch, torch.Tensor):
                raise SettingsError(
                    f"calibration batch {index} is a bare tensor; give each batch as a tuple of positional "
                    "inputs, e.g. [(x1,), (x2,)] - Torch-TensorRT would split a bare tensor along dim 0"
                )
            try:
                tracer.run(tuple(batch))  # exactly as Torch-TensorRT calls it
            except Exception as err:
                first = (str(err).strip().splitlines() or [""])[0]
                hint = ""
                if "Guard failed" in first or "size" in first:
                    hint = ("; calibration batches must have the example inputs' shapes unless the model was "
                            "exported with dynamic_shapes (as Torch-TensorRT runs them through ep.module())")
                raise SettingsError(
                    f"calibration batch {index} failed to run through the exported model: "
                    f"{type(err).__name__}: {first}{hint}"
                ) from err
            for node, out in first_run:
                recorder.add(node, out)
            first_run.clear()
            count += 1
    if count == 0:
        raise SettingsError("calibration got no batches; pass an iterable of input tuples, e.g. [(x,)]")
    return recorder.result()


# -- ranges against a low-precision type ------------------------------------------------------------------------------
def range_limits(low: torch.dtype) -> tuple[float, float, float]:
    """(smallest subnormal, smallest normal, largest finite) of ``low``: FP16 6e-08, 6.1e-05, 65504."""
    info = torch.finfo(low)
    return info.smallest_normal * info.eps, info.smallest_normal, info.max


@dataclass(frozen=True)
class RangeIssue:
    """One node whose reference output leaves a low-precision type's normal range."""

    node: str  #: FX node name
    issue: str  #: "underflow" (every |x| below the smallest normal) or "overflow" (|x| max above the largest)
    max_abs: float  #: the reference's largest |x|
    low: torch.dtype  #: the low-precision type
    rounds_to_zero: bool = False  #: underflow so deep that every value rounds to 0 in ``low``

    def text(self) -> str:
        """``"conv2d_17: |x| max 2.5e-05, below FP16's smallest normal 6.1e-05"``."""
        tiny, normal, top = range_limits(self.low)
        name = display_name(self.low)
        if self.issue == "overflow":
            return f"{self.node}: |x| max {format_number(self.max_abs, 2)}, above {name}'s max {top:.6g} (inf)"
        where = (f"below {format_number(tiny / 2, 2)}, half {name}'s smallest subnormal: all of it rounds to 0"
                 if self.rounds_to_zero else f"below {name}'s smallest normal {format_number(normal, 2)}")
        return f"{self.node}: |x| max {format_number(self.max_abs, 2)}, {where}"


def range_issues(stats: Mapping[str, CalibrationStat], low: torch.dtype,
                 nodes: Collection[str] | None = None) -> list[RangeIssue]:
    """The nodes of ``stats`` (only those in ``nodes`` where given) whose range leaves ``low``'s, in ``stats``' order
    (graph order, as recorded)."""
    tiny = range_limits(low)[0]
    out = []
    for name, stat in stats.items():
        issue = stat.range_issue(low)
        if issue is not None and (nodes is None or name in nodes):
            out.append(RangeIssue(name, issue, stat.max_abs, low, issue == "underflow" and stat.max_abs <= tiny / 2))
    return out


def range_summary(stats: Mapping[str, CalibrationStat], low: torch.dtype | None = None) -> str:
    """In words, per low-precision type (``low``, else FP16 and BF16): how many nodes' ranges underflow or overflow
    it, and the first of each in graph order."""
    lines = []
    for dtype in (low,) if low is not None else LOW_PRECISION_TYPES:
        name, issues = display_name(dtype), range_issues(stats, dtype)
        if not issues:
            _, normal, top = range_limits(dtype)
            lines.append(f"{name}: all {len(stats)} nodes' ranges fit its normal range ({format_number(normal, 2)} "
                         f"to {top:.6g})")
            continue
        parts = []
        under = [i for i in issues if i.issue == "underflow"]
        over = [i for i in issues if i.issue == "overflow"]
        if under:
            zero = sum(i.rounds_to_zero for i in under)
            parts.append(f"{len(under)} underflow (every |x| below its smallest normal"
                         + (f"; {zero} round to 0 entirely" if zero else "") + f"), the first {under[0].text()}")
        if over:
            parts.append(f"{len(over)} overflow (|x| max above its max), the first {over[0].text()}")
        lines.append(f"{name}: of {len(stats)} nodes, " + "; ".join(parts))
    return "\n".join(lines)


class Calibration(dict[str, CalibrationStat]):
    """What :meth:`Explorer.calibrate <mixprec_explorer.Explorer.calibrate>` returns: node -> :class:`CalibrationStat`
    in graph order, with the nodes whose ranges leave a low-precision type's (:meth:`issues`, :meth:`summary`)."""

    def issues(self, low: torch.dtype = torch.float16) -> list[RangeIssue]:
        """The nodes whose ranges leave ``low``'s normal range, in graph order (see :func:`range_issues`)."""
        return range_issues(self, low)

    def summary(self, low: torch.dtype | None = None) -> str:
        """How many nodes underflow or overflow ``low`` (else FP16 and BF16), and the first of each (see
        :func:`range_summary`)."""
        return range_summary(self, low)
