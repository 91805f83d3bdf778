"""The cost model: FLOPs and bytes of the common ATen ops, the roofline that prices them, and the error model.

* **FLOPs and bytes**, from shapes alone (no execution). A multiply-add counts as 2 FLOPs. Ops outside the FLOPs
  classes of :mod:`mixprec_explorer.ops` (views, casts, indexing) cost 0 FLOPs.
* **The roofline** (:func:`roofline_ms`): a node's time where nothing was measured, at H100-like rates; the search,
  the frontier (``LatencyModel.roofline``) and the predictor (its estimate, and its split of a fused profile) use it.
* **The error model**: a backend's error is its all-FP32 error (the floor: TF32, kernel order) and the error the
  plan's low precision adds, in quadrature (:func:`error_with_floor`, :func:`error_above_floor`); the search and the
  predictor use it.
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

__all__ = ["BYTES_PER_MS", "BYTES_PER_S", "DENSE_FLOPS_PER_S", "LOW_DENSE_SPEEDUP", "MATMUL_FAMILY",
           "OTHER_FLOPS_PER_S", "Shape", "error_above_floor", "error_with_floor", "estimate_bytes", "estimate_flops",
           "numel", "op_basename", "roofline_ms"]

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


# -- the roofline: a node's time from its FLOPs and bytes -----------------------------------------------------------
#: FP32 rates of the roofline (H100-like): FLOPs per second of the matmul family (dense) and of every other op.
DENSE_FLOPS_PER_S, OTHER_FLOPS_PER_S = 60e12, 30e12
#: Bytes per second the roofline moves (H100-like memory bandwidth), and per ms.
BYTES_PER_S = 3e12
BYTES_PER_MS = BYTES_PER_S / 1e3  # 3e9 exactly: each rate over 1e3 is exact, so per ms carries no extra rounding
#: How much faster the matmul family runs in low precision (other ops' FLOPs run at the FP32 rate).
LOW_DENSE_SPEEDUP = 4.0


def roofline_ms(flops: float, bytes_moved: float, dense: bool, low_itemsize: int | None = None) -> float:
    """A node's time (ms) on the roofline: its FLOPs at the dense or other rate, or its bytes, whichever is slower.

    ``low_itemsize`` (bytes per element of the low type) prices the node in low precision: the matmul family
    :data:`LOW_DENSE_SPEEDUP` times faster, bytes scaled by the item size over FP32's 4. None: FP32.
    """
    compute = flops / ((DENSE_FLOPS_PER_S if dense else OTHER_FLOPS_PER_S) / 1e3)
    moved = bytes_moved / BYTES_PER_MS
    if low_itemsize is not None:
        compute /= LOW_DENSE_SPEEDUP if dense else 1.0
        moved *= low_itemsize / 4
    return max(compute, moved)


# -- the error model: a backend's floor and the error above it add in quadrature ----------------------------------
def error_with_floor(floor: float, above_squared: float) -> float:
    """An error from the floor (the backend's all-FP32 error) and the square of the part above it (squared: the
    predictor's sum of squared node errors goes in as it is): ``sqrt(floor² + above²)``."""
    return math.sqrt(floor ** 2 + above_squared)


def error_above_floor(error: float, floor: float) -> float:
    """The part of ``error`` above the floor, the inverse of :func:`error_with_floor` (0 below the floor):
    ``sqrt(max(error² - floor², 0))``."""
    return math.sqrt(max(error ** 2 - floor ** 2, 0.0))
