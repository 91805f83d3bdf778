"""FLOPs and bytes estimates for the common ATen ops, from shapes alone (no execution).

A multiply-add counts as 2 FLOPs. Ops outside the FLOPs classes of :mod:`mixprec_explorer.ops` (views, casts,
indexing) cost 0 FLOPs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from .ops import (
    ATTENTION_OPS,
    CONV_OPS,
    ELEMENTWISE_OPS,
    MATMUL_FAMILY,
    MATMUL_OPS,
    NORM_OPS,
    REDUCE_OPS,
    VIEW_OPS,
    op_basename,
)

__all__ = ["MATMUL_FAMILY", "Shape", "estimate_bytes", "estimate_flops", "numel", "op_basename"]

Shape = tuple[int, ...]


def numel(shape: Sequence[int]) -> int:
    """Elements of a tensor of ``shape`` (1 for a scalar)."""
    return math.prod(shape) if shape else 1


def estimate_flops(op: str, in_shapes: Sequence[Shape], out_shapes: Sequence[Shape]) -> int:
    """Estimated FLOPs of one call (0 for data movement and unknown ops)."""
    base = op_basename(op)
    out = numel(out_shapes[0]) if out_shapes else 0
    if not in_shapes or not out_shapes:
        return 0
    x = in_shapes[0]
    if base == "linear":
        k = x[-1] if x else 1
        return 2 * out * k + (out if len(in_shapes) > 2 else 0)
    if base in MATMUL_OPS:
        # the reduced dimension is the last of the first matrix operand
        first = in_shapes[1] if base in ("addmm", "baddbmm", "addbmm", "addmv") and len(in_shapes) > 1 else x
        k = first[-1] if first else 1
        return 2 * out * k
    if base in CONV_OPS and len(in_shapes) > 1:
        w = in_shapes[1]
        per_out = numel(w[1:]) if "transpose" not in base else numel(w[2:]) * (w[0] if w else 1)
        return 2 * out * per_out
    if base in ATTENTION_OPS and len(in_shapes) >= 3:
        q, keys = in_shapes[0], in_shapes[1]
        seq_k = keys[-2] if len(keys) >= 2 else 1
        return 4 * numel(q) * seq_k
    if base in NORM_OPS:
        return 5 * out
    if base in REDUCE_OPS:
        return numel(x)
    if base in ELEMENTWISE_OPS:
        return out
    return 0


def estimate_bytes(op: str, in_bytes: Sequence[int], out_bytes: Sequence[int]) -> int:
    """Estimated bytes read plus written; 0 for ops that only change a view of the data."""
    if op_basename(op) in VIEW_OPS:
        return 0
    return int(sum(in_bytes) + sum(out_bytes))
