"""FLOPs and bytes estimates for the common ATen ops, from shapes alone (no execution).

A multiply-add counts as 2 FLOPs. Ops not listed here (views, casts, indexing) cost 0 FLOPs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

Shape = tuple[int, ...]

_MATMUL = {"mm", "bmm", "matmul", "addmm", "baddbmm", "addbmm", "mv", "dot", "addmv", "einsum"}
_CONV = {"conv1d", "conv2d", "conv3d", "convolution", "_convolution", "conv_transpose1d", "conv_transpose2d",
         "conv_transpose3d"}
_ATTENTION = {"scaled_dot_product_attention", "_scaled_dot_product_flash_attention",
              "_scaled_dot_product_efficient_attention", "_scaled_dot_product_cudnn_attention"}
_NORM = {"layer_norm", "batch_norm", "group_norm", "instance_norm", "native_layer_norm", "rms_norm",
         "_native_batch_norm_legit_no_training", "_native_batch_norm_legit", "native_batch_norm",
         "_softmax", "softmax", "log_softmax", "_log_softmax", "cudnn_batch_norm"}
_REDUCE = {"sum", "mean", "amax", "amin", "max", "min", "prod", "var", "std", "norm", "linalg_vector_norm",
           "adaptive_avg_pool2d", "avg_pool2d", "max_pool2d", "adaptive_avg_pool1d", "avg_pool1d",
           "max_pool1d", "max_pool2d_with_indices", "logsumexp", "cumsum", "argmax", "argmin"}
_ELEMENTWISE = {"add", "sub", "mul", "div", "relu", "relu_", "gelu", "silu", "sigmoid", "tanh", "exp", "log",
                "sqrt", "rsqrt", "pow", "neg", "abs", "hardtanh", "hardswish", "hardsigmoid", "clamp", "where",
                "maximum", "minimum", "erf", "dropout", "leaky_relu", "elu", "mish", "softplus", "square",
                "reciprocal", "sin", "cos", "add_", "mul_", "relu6", "logical_not", "eq", "ne", "gt", "lt",
                "ge", "le", "masked_fill"}
_NO_DATA = {"view", "reshape", "_unsafe_view", "unsqueeze", "squeeze", "flatten", "expand", "t", "transpose",
            "permute", "getitem", "select", "slice", "alias", "detach", "_assert_tensor_metadata", "sym_size",
            "unflatten", "split", "chunk", "split_with_sizes", "unbind", "view_as", "expand_as"}

#: Ops whose estimates are compute-bound enough to count as "matmul family" in summaries.
MATMUL_FAMILY = _MATMUL | {"linear"} | _CONV | _ATTENTION


def _numel(shape: Sequence[int]) -> int:
    return math.prod(shape) if shape else 1


def op_basename(op: str) -> str:
    """``torch.ops.aten.linear.default`` -> ``linear``; other strings are returned with their last dot part."""
    parts = op.split(".")
    if len(parts) >= 4 and parts[0] == "torch" and parts[1] == "ops":
        return parts[3]
    return parts[-1] if parts else op


def estimate_flops(op: str, in_shapes: Sequence[Shape], out_shapes: Sequence[Shape]) -> int:
    """Estimated FLOPs of one call (0 for data movement and unknown ops)."""
    base = op_basename(op)
    out = _numel(out_shapes[0]) if out_shapes else 0
    if not in_shapes or not out_shapes:
        return 0
    x = in_shapes[0]
    if base == "linear":
        k = x[-1] if x else 1
        return 2 * out * k + (out if len(in_shapes) > 2 else 0)
    if base in _MATMUL:
        # the reduced dimension is the last of the first matrix operand
        first = in_shapes[1] if base in ("addmm", "baddbmm", "addbmm", "addmv") and len(in_shapes) > 1 else x
        k = first[-1] if first else 1
        return 2 * out * k
    if base in _CONV and len(in_shapes) > 1:
        w = in_shapes[1]
        per_out = _numel(w[1:]) if "transpose" not in base else _numel(w[2:]) * (w[0] if w else 1)
        return 2 * out * per_out
    if base in _ATTENTION and len(in_shapes) >= 3:
        q, keys = in_shapes[0], in_shapes[1]
        seq_k = keys[-2] if len(keys) >= 2 else 1
        return 4 * _numel(q) * seq_k
    if base in _NORM:
        return 5 * out
    if base in _REDUCE:
        return _numel(x)
    if base in _ELEMENTWISE:
        return out
    return 0


def estimate_bytes(op: str, in_bytes: Sequence[int], out_bytes: Sequence[int]) -> int:
    """Estimated bytes read plus written; 0 for ops that only change a view of the data."""
    if op_basename(op) in _NO_DATA:
        return 0
    return int(sum(in_bytes) + sum(out_bytes))
