"""Low precision simulated at FP32 speed: FP16/BF16 rounding without FP16 arithmetic, for forward passes on a CPU.

A CPU has no FP16 arithmetic: PyTorch emulates it op by op, many times slower than FP32 (EfficientNet-B0 at batch
2: 13.5 s a forward pass). The analyses need FP16's rounding, not its speed. Simulated, a value the plan holds in a
low type is stored as FP32 holding exactly the low type's value (rounded to nearest even, overflow to inf): every
low-precision node's inputs (weights included) are rounded to the low type, the node computes in FP32, and its
output is rounded again. PyTorch's CPU kernels compute FP16/BF16 ops the same way (in FP32, rounding the result), so
what differs is the order of additions inside a kernel; docs/laptop.md gives the agreement measured on the zoo.

This module holds the simulation's primitives, used by the analysis runner
(:class:`~mixprec_explorer.analysis.PlanRunner`) and by the PyTorch backend's forward passes over a planned graph.
Timing always runs the real low-precision arithmetic.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable
from typing import Any

import torch

from ..ops import EXACT_ON_ROUNDED_OPS

__all__ = ["LOW_TYPES", "exact_on_rounded", "rounded", "simulates", "to_storage"]

#: Types simulated by rounding (storage stays FP32).
LOW_TYPES = frozenset({torch.float16, torch.bfloat16})


def _basename(target: Any) -> str:
    if target is operator.getitem:
        return "getitem"
    packet = getattr(target, "overloadpacket", None)
    return str(getattr(packet, "__name__", getattr(target, "__name__", "")))


def exact_on_rounded(target: Any) -> bool:
    """True for a call target whose output needs no rounding when its floating inputs are already rounded."""
    return _basename(target) in EXACT_ON_ROUNDED_OPS


def simulates(tensors: Iterable[Any]) -> bool:
    """True where low precision is simulated: every tensor given (inputs, weights) lives on the CPU."""
    return all(t.device.type == "cpu" for t in tensors if isinstance(t, torch.Tensor))


def rounded(value: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``value`` (FP32) rounded to ``dtype``'s nearest value, kept in FP32 storage; other tensors as given."""
    if dtype not in LOW_TYPES or value.dtype != torch.float32:
        return value
    return value.to(dtype).to(torch.float32)


def to_storage(value: Any, real: torch.dtype | None) -> Any:
    """A floating tensor as simulation stores it, given the dtype ``real`` it has in a real run: a low-type tensor
    becomes FP32 (exact), an FP32 tensor that really is low is rounded; anything else as given."""
    if not isinstance(value, torch.Tensor) or not value.is_floating_point():
        return value
    if value.dtype in LOW_TYPES:
        return value.to(torch.float32)
    if real in LOW_TYPES:
        return rounded(value, real)
    return value
