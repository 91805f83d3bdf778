"""The rule that applies a precision plan to one node, read by both paths that apply plans (issue 22).

Two paths run a plan: the torch backend's planned graph (:func:`~mixprec_explorer.backends.torch_plan.apply_plan`,
which inserts cast nodes as Torch-TensorRT's autocast pass does) and the analyses' runner
(:class:`~mixprec_explorer.analysis.runner.PlanRunner`, which casts values as it interprets the graph). Both decide
here, node by node:

* :func:`target_dtype`: the dtype a node's inputs are cast to (low rule: the low type; a rule that keeps FP32:
  FP32; anything else, None: left as the model types it);
* :func:`cast_dtype`: per argument, whether it is cast: floating tensors whose dtype differs from the target;
  integer and bool tensors (indices) are kept unless ``cast_non_float``;
* :func:`restore_dtype`: a ``torch.autocast`` region's float inputs cast back to the dtypes it was traced with
  (option ``restore_regions``);
* :func:`saturates` and :func:`saturated`: a fill value beyond a low node's range written as the dtype's extreme
  (option ``saturate_fills``), else as the infinity the low type holds for it (torch 2.6 refuses the conversion,
  later releases compute infinity in ``where`` but refuse it in ``masked_fill`` and ``full``);
* :func:`accumulates_in_fp32` and :func:`fp32_accumulated`: FP32 accumulation of a matmul-family node, one
  sequence of ops built as graph nodes by one path and computed on tensors by the other;
* :func:`bypassed`: the removed nodes whose input passes through (``detach``); the other removed nodes (asserts)
  are dropped.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from ..ops import DETACH_OP, FP32_ACC_OPS, op_basename, qualified_op_name

__all__ = ["FILL_OPS", "HIGH_RULES", "LOW_RULES", "accumulates_in_fp32", "bypassed", "cast_dtype", "fill_base",
           "fp32_accumulated", "restore_dtype", "saturated", "saturates", "target_dtype"]

LOW_RULES = frozenset({"low_precision"})  #: rules that run a node in the plan's low type
HIGH_RULES = frozenset({"excluded_node", "excluded_op", "io_range", "depth"})  #: rules that keep a node in FP32

#: Ops whose float scalar argument is a value written into the output (a mask's "lowest value", a padding value):
#: where such a value lies beyond the low dtype's range, the value the model means is that dtype's extreme.
FILL_OPS = frozenset({"where", "masked_fill", "fill", "full", "full_like", "new_full", "scalar_tensor", "clamp",
                      "clamp_min", "clamp_max", "constant_pad_nd", "index_fill"})

_aten = torch.ops.aten


def target_dtype(rec: Any) -> torch.dtype | None:
    """The dtype a node's inputs are cast to under its plan record ``rec`` (a NodePrecision, or None)."""
    if rec is None:
        return None
    if rec.rule in LOW_RULES:
        return rec.dtype
    if rec.rule in HIGH_RULES:
        return torch.float32
    return None


def cast_dtype(real: torch.dtype, target: torch.dtype, *, cast_non_float: bool = False) -> torch.dtype | None:
    """The dtype an argument whose real dtype is ``real`` is cast to before a node run in ``target``; None: none."""
    if not real.is_floating_point and not cast_non_float:
        return None  # indices: PyTorch kernels reject float ones
    return target if real != target else None


def restore_dtype(real: torch.dtype, traced: torch.dtype | None) -> torch.dtype | None:
    """The dtype a ``torch.autocast`` region's input of real dtype ``real`` is cast back to (its traced dtype), or
    None: the plan does not classify the region, which computes as the model wrote it."""
    if traced is None or real == traced or not (real.is_floating_point and traced.is_floating_point):
        return None
    return traced


def fill_base(target: Any) -> str:
    """The op's base name without a trailing underscore (``masked_fill_`` -> ``masked_fill``)."""
    return op_basename(qualified_op_name(target)).rstrip("_")


def saturates(target: Any, dtype: torch.dtype | None) -> bool:
    """True for a fill op (:data:`FILL_OPS`) run in a low type: its fill values are clipped to that type's range."""
    return dtype is not None and dtype != torch.float32 and dtype.is_floating_point and fill_base(target) in FILL_OPS


def saturated(value: Any, dtype: torch.dtype, extreme: bool = True) -> Any:
    """A float beyond ``dtype``'s range as its extreme (finfo(float32).min -> finfo(float16).min), or with
    ``extreme=False`` as the infinity of its sign (what the value becomes in that dtype); else ``value``."""
    top = torch.finfo(dtype).max
    if isinstance(value, float) and math.isfinite(value) and abs(value) > top:
        return math.copysign(top if extreme else math.inf, value)
    return value


def accumulates_in_fp32(target: Any, accumulate: torch.dtype | None, first: torch.dtype | None) -> bool:
    """True where a node accumulates in FP32: a matmul-family op whose plan record's ``accumulate_dtype`` is FP32 and
    whose first tensor argument (after its cast) really is FP16 (BF16 is not handled, as in Torch-TensorRT)."""
    return accumulate == torch.float32 and first == torch.float16 and qualified_op_name(target) in FP32_ACC_OPS


def bypassed(target: Any) -> bool:
    """True for a removed node whose input passes through (``detach``; Torch-TensorRT's remove_detach)."""
    return qualified_op_name(target) == DETACH_OP


#: ``call(target, args, suffix)``: one added op (cast, scaling, addition); its value or node
Call = Callable[[Any, tuple[Any, ...], str], Any]
#: ``product(target, args)``: the node's own product, in FP32; its value or node
Product = Callable[[Any, tuple[Any, ...]], Any]


def fp32_accumulated(target: Any, args: tuple[Any, ...], kwargs: dict[str, Any], call: Call,
                     product: Product) -> Any:
    """FP32 accumulation of a matmul-family node, as ``conversion/impl/matmul.py`` (+ linear.py, addmm.py) build it:
    both operands cast to FP32, the product computed in FP32 and cast to FP16; linear's bias and addmm's input are
    then added in FP16 (addmm's ``alpha`` and ``beta`` applied in FP16). Returns what the node's users receive.

    The torch backend's ``call``/``product`` emit graph nodes, the runner's compute tensors: the same ops in the
    same order, so both give the same bits.
    """
    to, f32, f16 = _aten.to.dtype, torch.float32, torch.float16
    if target is _aten.addmm.default:
        inp, mat1, mat2 = args[:3]
        beta, alpha = kwargs.get("beta", 1), kwargs.get("alpha", 1)
        a32, b32 = call(to, (mat1, f32), "acc_in"), call(to, (mat2, f32), "acc_in")
        out = call(to, (product(_aten.mm.default, (a32, b32)), f16), "acc_out")
        if alpha != 1:
            out = call(_aten.mul.Tensor, (out, alpha), "mul_alpha")
        if beta != 1:
            inp = call(_aten.mul.Tensor, (inp, beta), "mul_beta")
        return call(_aten.add.Tensor, (inp, out), "add")
    a, b = args[0], args[1]
    # torch 2.6 exports linear's bias as a keyword, later releases positionally
    bias = (args[2] if len(args) > 2 else kwargs.get("bias")) if target is _aten.linear.default else None
    a32, b32 = call(to, (a, f32), "acc_in"), call(to, (b, f32), "acc_in")
    result = call(to, (product(target, (a32, b32)), f16), "acc_out")
    if bias is not None:
        result = call(_aten.add.Tensor, (result, bias), "add_bias")
    return result
