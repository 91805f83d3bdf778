"""The op taxonomy: what each ATen op is to capture, the policy, the cost estimates, the mapping and the backends.

One vocabulary of qualified op names (``torch.ops.aten.linear.default``, what Torch-TensorRT compares
``autocast_excluded_ops`` against) and of op base names (``linear``), with the families each part of the package
asks about. It imports nothing from the package (and torch only inside :func:`qualified_op_name`), so every layer
may use it.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ASSERT_OPS",
    "ATTENTION_OPS",
    "AUTOCAST_REGION_OP",
    "CAST_OPS",
    "CONV_DEPTH_OPS",
    "CONV_OPS",
    "DETACH_OP",
    "ELEMENTWISE_OPS",
    "EXACT_ON_ROUNDED_OPS",
    "FAMILY",
    "FP32_ACC_OPS",
    "FREE_OPS",
    "GEMM_DEPTH_OPS",
    "GETITEM_OP",
    "MATMUL_FAMILY",
    "MATMUL_OPS",
    "NORM_OPS",
    "masked_attention",
    "REDUCE_OPS",
    "REMOVED_BY",
    "SDPA_OP",
    "UNCLASSIFIED_OPS",
    "VIEW_OPS",
    "family_of",
    "op_basename",
    "qualified_op_name",
]


def qualified_op_name(op: Any) -> str:
    """The string Torch-TensorRT compares ``autocast_excluded_ops`` against (``torch.ops.aten.linear.default``).

    >>> import operator
    >>> qualified_op_name(operator.getitem)
    '_operator.getitem'
    """
    if isinstance(op, str):
        return op
    try:
        from torch.fx.node import _get_qualified_name

        return _get_qualified_name(op)
    except Exception:  # a callable fx cannot name
        return str(op)


def op_basename(op: str) -> str:
    """``torch.ops.aten.linear.default`` -> ``linear``; other strings are returned with their last dot part.

    >>> op_basename("torch.ops.aten.index_select.default"), op_basename("_operator.getitem")
    ('index_select', 'getitem')
    """
    parts = op.split(".")
    if len(parts) >= 4 and parts[0] == "torch" and parts[1] == "ops":
        return parts[3]
    return parts[-1] if parts else op


# -- qualified names: what Torch-TensorRT's passes single out ---------------------------------------------------
GETITEM_OP = "_operator.getitem"  #: a tuple output's element: never classified, follows its producer
AUTOCAST_REGION_OP = "torch.ops.higher_order.wrap_with_autocast"  #: a ``torch.autocast`` region of the model
#: Call nodes Torch-TensorRT's rule-based autocast never classifies.
UNCLASSIFIED_OPS = frozenset({GETITEM_OP, AUTOCAST_REGION_OP})
DETACH_OP = "torch.ops.aten.detach.default"
#: Targets Torch-TensorRT's pre-lowering passes delete before autocast runs, and the pass that does it.
REMOVED_BY = {
    "torch.ops.aten._assert_scalar.default": "remove_assert_nodes",
    "torch.ops.aten._assert_tensor_metadata.default": "remove_assert_nodes",
    DETACH_OP: "remove_detach",
}
#: The assert ops among them: dropped outright (a detach is bypassed instead).
ASSERT_OPS = frozenset(op for op, by in REMOVED_BY.items() if by == "remove_assert_nodes")
#: Targets whose converters go through ``impl.matmul.matrix_multiply`` (FP32 accumulation applies).
FP32_ACC_OPS = frozenset(
    f"torch.ops.aten.{op}.default" for op in ("linear", "matmul", "mm", "bmm", "mv", "dot", "addmm"))
#: Targets whose depth of reduction autocast measures as a GEMM's (the last dimension of the first operand).
GEMM_DEPTH_OPS = frozenset(f"torch.ops.aten.{op}.default" for op in ("matmul", "dot", "mm", "mv", "bmm"))
#: Targets whose depth of reduction autocast measures as a convolution's (the weight's input channels x kernel).
CONV_DEPTH_OPS = frozenset(f"torch.ops.aten.{op}.default" for op in ("convolution", "conv1d", "conv2d", "conv3d"))
SDPA_OP = "torch.ops.aten.scaled_dot_product_attention.default"

# -- base names: what an op computes (FLOPs classes) -------------------------------------------------------------
MATMUL_OPS = frozenset({"mm", "bmm", "matmul", "addmm", "baddbmm", "addbmm", "mv", "dot", "addmv", "einsum"})
CONV_OPS = frozenset({"conv1d", "conv2d", "conv3d", "convolution", "_convolution", "conv_transpose1d",
                      "conv_transpose2d", "conv_transpose3d"})
ATTENTION_OPS = frozenset({"scaled_dot_product_attention", "_scaled_dot_product_flash_attention",
                           "_scaled_dot_product_efficient_attention", "_scaled_dot_product_cudnn_attention"})
NORM_OPS = frozenset({"layer_norm", "batch_norm", "group_norm", "instance_norm", "native_layer_norm", "rms_norm",
                      "_native_batch_norm_legit_no_training", "_native_batch_norm_legit", "native_batch_norm",
                      "_softmax", "softmax", "log_softmax", "_log_softmax", "cudnn_batch_norm"})
REDUCE_OPS = frozenset({"sum", "mean", "amax", "amin", "max", "min", "prod", "var", "std", "norm",
                        "linalg_vector_norm", "adaptive_avg_pool2d", "avg_pool2d", "max_pool2d", "adaptive_avg_pool1d",
                        "avg_pool1d", "max_pool1d", "max_pool2d_with_indices", "logsumexp", "cumsum", "argmax",
                        "argmin"})
ELEMENTWISE_OPS = frozenset({
    "add", "sub", "mul", "div", "relu", "relu_", "gelu", "silu", "sigmoid", "tanh", "exp", "log", "sqrt", "rsqrt",
    "pow", "neg", "abs", "hardtanh", "hardswish", "hardsigmoid", "clamp", "where", "maximum", "minimum", "erf",
    "dropout", "leaky_relu", "elu", "mish", "softplus", "square", "reciprocal", "sin", "cos", "add_", "mul_", "relu6",
    "logical_not", "eq", "ne", "gt", "lt", "ge", "le", "masked_fill"})
#: Ops that only change a view of the data (or check it): no bytes moved.
VIEW_OPS = frozenset({
    "view", "reshape", "_unsafe_view", "unsqueeze", "squeeze", "flatten", "expand", "t", "transpose", "permute",
    "getitem", "select", "slice", "alias", "detach", "_assert_tensor_metadata", "sym_size", "unflatten", "split",
    "chunk", "split_with_sizes", "unbind", "view_as", "expand_as"})
#: Ops that convert a tensor's dtype.
CAST_OPS = frozenset({"_to_copy", "to", "type_as"})
#: Ops that compute nothing (views, casts, copies, concatenation, dropout at inference, asserts): an engine
#: kernel never needs to explain them.
FREE_OPS = VIEW_OPS | CAST_OPS | frozenset({"contiguous", "clone", "cat", "dropout", "lift_fresh_copy", "alias_copy",
                                            "_assert_scalar"})
#: Ops whose output elements are input elements (views, copies, concatenation) or exact functions of them (max,
#: negation), so an output computed from values already rounded to the low type needs no rounding again (the CPU
#: simulation of low precision, :mod:`mixprec_explorer.backends.simulate`). Every view op is one (the asserts and
#: ``sym_size`` among them yield no float tensor to round).
EXACT_ON_ROUNDED_OPS = VIEW_OPS | frozenset({
    "contiguous", "clone", "cat", "stack", "max_pool2d", "max_pool2d_with_indices", "relu", "relu_", "neg", "abs",
    "dropout", "amax", "amin", "maximum", "minimum", "index_select", "embedding"})
#: Compute-bound enough to count as "matmul family" in summaries and latency models.
MATMUL_FAMILY = MATMUL_OPS | {"linear"} | CONV_OPS | ATTENTION_OPS

# -- families: what an engine kernel may be named after ----------------------------------------------------------
#: Op base name -> the family of kernels that run it (the mapping matches kernel op words per family).
FAMILY: dict[str, str] = {
    **dict.fromkeys(("conv1d", "conv2d", "conv3d", "convolution", "_convolution", "conv_transpose2d"), "conv"),
    **dict.fromkeys(("linear", "addmm"), "linear"),
    **dict.fromkeys(("matmul", "mm", "bmm", "baddbmm", "einsum"), "matmul"),
    **dict.fromkeys(("batch_norm", "_native_batch_norm_legit_no_training", "cudnn_batch_norm"), "batch_norm"),
    **dict.fromkeys(("layer_norm", "native_layer_norm", "group_norm", "rms_norm"), "layer_norm"),
    **dict.fromkeys(("softmax", "_softmax", "_safe_softmax", "log_softmax"), "softmax"),
    **dict.fromkeys(("scaled_dot_product_attention", "_scaled_dot_product_flash_attention",
                     "_scaled_dot_product_efficient_attention"), "attention"),
    **dict.fromkeys(("relu", "relu_", "hardtanh", "relu6"), "relu"),
    **dict.fromkeys(("gelu", "gelu_"), "gelu"),
    **dict.fromkeys(("silu", "silu_"), "silu"),
    "sigmoid": "sigmoid", "tanh": "tanh",
    **dict.fromkeys(("add", "add_"), "add"), **dict.fromkeys(("sub", "rsub"), "sub"),
    **dict.fromkeys(("mul", "mul_"), "mul"), "div": "div",
    **dict.fromkeys(("max_pool2d", "max_pool1d", "max_pool2d_with_indices"), "max_pool"),
    **dict.fromkeys(("mean", "adaptive_avg_pool2d", "avg_pool2d", "adaptive_avg_pool1d", "sum"), "mean"),
    **dict.fromkeys(("embedding", "gather", "index_select", "index"), "embedding"),
    "pow": "pow", **dict.fromkeys(("sqrt", "rsqrt"), "sqrt"), "exp": "exp",
}


def family_of(op: str) -> str | None:
    """The kernel family of a qualified op or base name (``"torch.ops.aten.addmm.default"`` -> ``"linear"``).

    >>> family_of("torch.ops.aten.addmm.default"), family_of("view")
    ('linear', None)
    """
    return FAMILY.get(op_basename(op))


def masked_attention(nodes: Any) -> tuple[str, ...]:
    """The SDPA nodes among fx ``nodes`` that take an attention mask and are not ``is_causal``: the ones Torch-TensorRT
    2.11+ makes causal by default (``attn_bias_is_causal=True``), which is wrong for a padding or encoder mask."""
    found = []
    for node in nodes:
        if getattr(node, "op", None) != "call_function" or qualified_op_name(node.target) != SDPA_OP:
            continue
        mask = node.args[3] if len(node.args) > 3 else node.kwargs.get("attn_mask")
        causal = node.args[5] if len(node.args) > 5 else node.kwargs.get("is_causal", False)
        if mask is not None and not causal:
            found.append(node.name)
    return tuple(found)
