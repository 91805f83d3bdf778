"""Why an engine's measured dtype differs from the plan's, where the engine's own kernels show it.

Two disagreements of TensorRT-RTX's Myelin kernels are known and documented (docs/live-engine.md, "Where the engine
differs from the plan"); :func:`explain_mismatch` names them from a node's op, its planned and measured dtypes and
the kernels (engine layers) that ran it, and returns None for anything else:

* :data:`NORM_STATISTICS`: a normalisation planned FP16/BF16 whose kernel casts and then computes its statistics
  (``__myl_AddAddCastMeanSubMulMean``: ``Cast`` before the layer norm's ``Mean``, ``Sub``); the affine part may run
  low again, but the node is measured FP32;
* :data:`FP32_OPERAND`: an elementwise node planned FP16/BF16 whose kernel reads an FP32 and a low-precision tensor
  and casts before the node's op (``__myl_CastReshAddMoveReluMean`` reading FP16 and FP32: ``Cast`` before ``Add``
  and ``Relu``): where Torch-TensorRT's autocast casts the FP32 operand down, Myelin casts the low one up, so the
  residual add and the ReLU after it compute in FP32.

Evidence only: the kernel must show the cast (an FP32 engine, or one built from another plan, has none where these
rules look) and, for an operand, the kernel's own input dtypes must be mixed; a mismatch nobody has explained stays
unexplained. :func:`mismatch_reasons` applies it to every node of a plan; the profile's
:meth:`~mixprec_explorer.backends.base.Profile.dtype_mismatches` and the graph figure's ``color_by="mismatch"`` both
read it. Pure: names and dtypes in, strings out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import torch

from mixprec_explorer.dtypes import display_name
from mixprec_explorer.ops import ELEMENTWISE_OPS, family_of, op_basename
from mixprec_explorer.parsers.dataflow import kernel_ops
from mixprec_explorer.records import NodePrecision

__all__ = ["FP32_OPERAND", "NORM_FAMILIES", "NORM_STATISTICS", "REASONS", "dtype_differs", "explain_mismatch",
           "mismatch_reasons"]

NORM_STATISTICS = "engine keeps FP32: norm statistics"  #: Myelin computes a normalisation's statistics in FP32
FP32_OPERAND = "engine keeps FP32: FP32 operand"  #: Myelin casts an elementwise node's low operand up, not down
REASONS = (NORM_STATISTICS, FP32_OPERAND)  #: every reason :func:`explain_mismatch` gives
#: The op families (:data:`mixprec_explorer.ops.FAMILY` values) whose statistics the engine keeps FP32, and the
#: kernel op words that must follow the kernel's cast, with a reduction: a layer norm's mean and centring (``Mean``,
#: ``Sub``; recorded), a batch norm's scale and shift (``Mul``, ``Add``; the MobileNetV3 rows of the zoo run kept no
#: kernel names, so this one is unchecked). ``ops.NORM_OPS`` is not used: it holds softmax too, which no recorded
#: engine keeps FP32.
NORM_FAMILIES: Mapping[str, tuple[str, ...]] = {"layer_norm": ("Mean", "Sub"), "batch_norm": ("Mul", "Add")}
_REDUCTIONS = frozenset({"Mean", "Sum"})
_LOW = frozenset({torch.float16, torch.bfloat16})


def dtype_differs(planned: torch.dtype | None, measured: torch.dtype | None) -> bool:
    """Whether a measured dtype disagrees with a planned one (None planned: TensorRT decides, never a mismatch)."""
    return planned is not None and display_name(measured) != display_name(planned)


def _after_cast(kernel: str) -> tuple[str, ...] | None:
    """The op words of ``kernel`` after its first ``Cast`` (None where it casts nothing)."""
    words = kernel_ops(kernel)
    return words[words.index("Cast") + 1:] if "Cast" in words else None


def _computes_after_a_cast(kernels: Iterable[str], needed: tuple[str, ...], reduces: bool = False) -> bool:
    """Whether one of ``kernels`` casts and then computes every word of ``needed`` (and, with ``reduces``, a
    reduction: the statistics)."""
    for kernel in kernels:
        rest = _after_cast(kernel)
        if rest is not None and all(w in rest for w in needed) and (not reduces or _REDUCTIONS.intersection(rest)):
            return True
    return False


def explain_mismatch(op: str, planned: torch.dtype | None, measured: torch.dtype | None,
                     kernels: Iterable[str] = (), reads: Iterable[Sequence[torch.dtype | None]] = ()) -> str | None:
    """Why the engine ran a node in ``measured`` where the plan said ``planned``: one of :data:`REASONS`, or None.

    ``op`` is the node's qualified op (``torch.ops.aten.layer_norm.default``) or base name, ``kernels`` the names of
    the engine layers that ran it and ``reads`` the dtypes of the tensors each of those layers reads
    (``LayerRecord.input_dtypes``, in the same order; without them :data:`FP32_OPERAND` is never given).

    >>> explain_mismatch("torch.ops.aten.layer_norm.default", torch.float16, torch.float32,
    ...                  ["__myl_AddAddCastMeanSubMulMean_myl0_6"])
    'engine keeps FP32: norm statistics'
    >>> explain_mismatch("layer_norm", torch.float16, torch.float32, ["__myl_AddAddMeanSubMulMean_myl0_16"])
    >>> explain_mismatch("relu_", torch.float16, torch.float32, ["__myl_CastReshAddMoveReluMean_myl0_71"],
    ...                  [(torch.float16, torch.float32)])
    'engine keeps FP32: FP32 operand'
    """
    if planned not in _LOW or measured != torch.float32:
        return None
    family = family_of(op)
    if family is None:
        return None
    kernels = tuple(kernels)
    if family in NORM_FAMILIES:
        return NORM_STATISTICS if _computes_after_a_cast(kernels, NORM_FAMILIES[family], reduces=True) else None
    if op_basename(op) in ELEMENTWISE_OPS:
        word = (family.capitalize(),)  # "relu" -> Myelin's "Relu"
        for kernel, dtypes in zip(kernels, reads):
            if torch.float32 in dtypes and _LOW.intersection(dtypes) and _computes_after_a_cast([kernel], word):
                return FP32_OPERAND
    return None


def mismatch_reasons(plan: Iterable[NodePrecision], measured: Mapping[str, torch.dtype | None],
                     kernels: Mapping[str, Sequence[str]],
                     reads: Mapping[str, Sequence[Sequence[torch.dtype | None]]] | None = None
                     ) -> dict[str, str | None]:
    """Every node of ``plan`` whose ``measured`` dtype differs from its planned one (:func:`dtype_differs`), in plan
    (graph) order, with its reason (:func:`explain_mismatch`; None: unexplained).

    ``kernels`` gives each node's engine layer names, ``reads`` (where known) each of those layers' input dtypes in
    the same order.
    """
    out: dict[str, str | None] = {}
    for rec in plan:
        if rec.name in measured and dtype_differs(rec.dtype, measured[rec.name]):
            out[rec.name] = explain_mismatch(rec.op, rec.dtype, measured[rec.name], kernels.get(rec.name, ()),
                                             (reads or {}).get(rec.name, ()))
    return out
