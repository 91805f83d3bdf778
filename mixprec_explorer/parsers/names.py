"""Decode TensorRT layer and tensor names back to module paths and FX node names.

Torch-TensorRT names each layer ``[<LAYER_TYPE>]-[<ir>_ops.<target>]-[<module path>/<node name><suffix>]``
(``converter_utils.set_layer_name`` and ``get_node_name``); TensorRT then fuses layers (``" + "``), wraps Myelin
subgraphs (``{ForeignNode[first...last]}``, ``__myl_*`` kernels) and inserts reformat copies. Decoding is pure
string work: it never raises, and it reports only what the text says.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch

from mixprec_explorer.dtypes import from_trt_name

__all__ = [
    "DecodedName",
    "NodeRef",
    "decode_layer_name",
    "decode_tensor_name",
    "layer_refs",
    "modules_of",
    "strip_converter_suffix",
    "tensor_names_of",
]

#: ``[TYPE]-[ir_ops.target]-[module/node_suffix]`` as written by ``set_layer_name``.
_TRIPLE = re.compile(r"\[([A-Z][A-Z0-9_]*)\]-\[([^\[\]]+)\]-\[([^\[\]]*)\]")
#: ``Cast ITensor <tensor> from DataType.X to DataType.Y - [ir_ops.target]-[module/node_suffix]`` (``cast_trt_tensor``).
_CAST = re.compile(
    r"Cast ITensor (?P<tensor>.*?) from (?P<src>DataType\.\w+) to (?P<dst>DataType\.\w+)"
    r" - \[(?P<op>[^\[\]]+)\]-\[(?P<node>[^\[\]]*)\]"
)
#: ``module.path/node`` tokens inside free text such as Myelin tensor names; one slash only, so ONNX-style
#: ``/layer1/layer1.0/conv1/Conv_output_0`` names are not mistaken for module paths.
_SLASH_REF = re.compile(
    r"(?<![\w./])(?P<mod>(?:[A-Za-z_]\w*|\d+)(?:\.(?:[A-Za-z_]\w*|\d+))*)?/(?P<node>[A-Za-z_]\w*)(?![\w/])"
)
_UNNAMED = re.compile(r"\(Unnamed Layer\* ?\d+\) \[([^\[\]]+)\]")
_IR_QUALIFIED = re.compile(r"^(\w+_ops)\.torch\.ops\.\w+\.(.+)$")
_REFORMAT = re.compile(r"^Reformatting CopyNode for |\b(?:input|output) reformatter \d+$")
#: Fusion separators: TensorRT's " + ", TensorRT 7's parallel " || ", TensorRT 8.6/10's \x1e / \x1f.
_PART_SEPARATORS = (" + ", " || ", "\x1e", "\x1f")

#: Converter suffixes that never occur inside an FX node name; the node name ends where the first one starts.
_SUFFIX_CUT = re.compile(
    r"_(?:matrix_multiply|add_bias|(?:input|other|output|shape|int32|index)_casted|casted"
    r"|broadcast_to_same_shape|(?:lhs|rhs)_broadcast|constant_(?:tensor_)?\d+"
    r"|constant(?:Float|Half|BFloat16|BF16|Int8|Int32|Int64|Bool|UInt8|FP8|FP4|Int4))"
)
#: ``impl/addmm.py`` names its pieces ``{name}_mm``, ``{name}_add``, ``{name}_mul_alpha``, ``{name}_mul_beta``.
_ADDMM_PIECE = re.compile(r"^((?:addmm|baddbmm|addbmm|addmv)(?:_\d+)?)_(?:add|mm|bmm|mul_alpha|mul_beta)$")


class NodeRef(NamedTuple):
    """One (module path, FX node) reference found in a name."""

    module: str | None  #: module path ("" for the root module, None when the name carries none)
    node: str  #: FX node name with the converter suffix stripped (best effort, for display)
    raw: str  #: node part exactly as written, suffix included (what the mapping resolves)


@dataclass(frozen=True)
class DecodedName:
    """What one TensorRT layer name says about its origin."""

    name: str  #: the name as given
    layer_type: str = ""  #: "MATRIX_MULTIPLY", "CAST", "Constant", "Reformat", "ForeignNode", or "" when unknown
    ir_op: str = ""  #: first ``<ir>_ops.<target>`` ("aten_ops.linear.default"), "" when none
    ir_ops: tuple[str, ...] = ()  #: every distinct ``<ir>_ops.<target>`` in order (fused layers have several)
    refs: tuple[NodeRef, ...] = ()  #: (module, node) references in order of appearance
    parts: tuple[str, ...] = ()  #: pieces of a fused name, split at the top-level separators
    is_reformat: bool = False  #: a TensorRT-inserted reformat copy (named after the layer it feeds)
    is_cast: bool = False  #: a Torch-TensorRT cast layer
    is_foreign: bool = False  #: a ``{ForeignNode[first...last]}`` Myelin range; only its two ends are named
    is_myelin: bool = False  #: Myelin-compiled: a ``__myl_*`` kernel (no module information) or a ForeignNode
    is_unnamed: bool = False  #: a TensorRT default name such as ``(Unnamed Layer* 12) [Constant]``
    cast_from: torch.dtype | None = None  #: source dtype of the first cast, where the name has one
    cast_to: torch.dtype | None = None  #: target dtype of the first cast

    @property
    def pairs(self) -> tuple[tuple[str | None, str], ...]:
        """The (module path, node name) pairs, duplicates removed."""
        return tuple(dict.fromkeys((ref.module, ref.node) for ref in self.refs))

    @property
    def modules(self) -> tuple[str, ...]:
        """Distinct module paths named, in order ("" is the root module)."""
        return modules_of(self.refs)


def strip_converter_suffix(raw: str) -> str:
    """FX node name without Torch-TensorRT's converter suffix (``linear_matrix_multiply`` -> ``linear``).

    Only suffixes that cannot be part of an FX node name are cut, so the result may keep a generic tail;
    :func:`mixprec_explorer.parsers.attribute_layers` resolves ``raw`` against the graph's real node names.
    """
    match = _SUFFIX_CUT.search(raw, 1)
    if match is None:
        return raw
    stem = raw[: match.start()]
    piece = _ADDMM_PIECE.match(stem)
    return piece.group(1) if piece else stem


def _split_module_v22(path: str) -> str:
    """Torch-TensorRT 2.2-2.4 wrote module paths with slashes (``/features/0/convolution``); join them with dots.

    Those versions derived the path from dynamo's ``L__self___features_0`` keys, so underscores inside module
    names may already have become slashes; the result is the best the name allows.
    """
    return ".".join(piece for piece in path.split("/") if piece)


def _node_ref(text: str) -> NodeRef | None:
    """Split the third bracket of a layer name, ``module.path/node_suffix``, at its last slash."""
    if "/" not in text:
        return NodeRef(None, strip_converter_suffix(text), text) if text else None
    module, raw = text.rsplit("/", 1)
    if "/" in module:
        module = _split_module_v22(module)
    if not raw:
        return None
    return NodeRef(module, strip_converter_suffix(raw), raw)


def _normalise_ir_op(op: str) -> str:
    """``aten_ops.torch.ops.aten.to.dtype`` (cast layers use the qualified name) -> ``aten_ops.to.dtype``."""
    match = _IR_QUALIFIED.match(op)
    return f"{match.group(1)}.{match.group(2)}" if match else op


def _cast_dtype(word: str) -> torch.dtype | None:
    return from_trt_name(word.removeprefix("DataType."))


def _blank(text: str, spans: Iterable[tuple[int, int]]) -> str:
    chars = list(text)
    for start, end in spans:
        chars[start:end] = " " * (end - start)
    return "".join(chars)


def _split_parts(name: str) -> tuple[str, ...]:
    """Split a fused name at separators outside brackets, braces and parentheses."""
    parts: list[str] = []
    depth = 0
    start = 0
    i = 0
    while i < len(name):
        char = name[i]
        if char in "[{(":
            depth += 1
        elif char in "]})":
            depth = max(depth - 1, 0)
        elif depth == 0:
            sep = next((s for s in _PART_SEPARATORS if name.startswith(s, i)), None)
            if sep is not None:
                parts.append(name[start:i])
                i += len(sep)
                start = i
                continue
        i += 1
    parts.append(name[start:])
    return tuple(part.strip() for part in parts if part.strip())


def _scan(text: str) -> tuple[list[tuple[int, NodeRef]], list[tuple[int, str]], list[re.Match[str]]]:
    """Node references and ir ops in ``text``, with their positions; cast matches returned separately."""
    refs: list[tuple[int, NodeRef]] = []
    ops: list[tuple[int, str]] = []
    casts = list(_CAST.finditer(text))
    for cast in casts:
        ops.append((cast.start(), _normalise_ir_op(cast.group("op"))))
        ref = _node_ref(cast.group("node"))
        if ref is not None:
            refs.append((cast.start(), ref))
    rest = _blank(text, (m.span() for m in casts))
    triples = list(_TRIPLE.finditer(rest))
    for triple in triples:
        ops.append((triple.start(), _normalise_ir_op(triple.group(2))))
        ref = _node_ref(triple.group(3))
        if ref is not None:
            refs.append((triple.start(), ref))
    rest = _blank(rest, (m.span() for m in triples))
    for match in _SLASH_REF.finditer(rest):
        raw = match.group("node")
        refs.append((match.start(), NodeRef(match.group("mod") or "", strip_converter_suffix(raw), raw)))
    refs.sort(key=lambda item: item[0])
    ops.sort(key=lambda item: item[0])
    return refs, ops, casts


def decode_layer_name(name: str) -> DecodedName:
    """Decode one engine layer name; never raises (an unknown name decodes to no references).

    >>> d = decode_layer_name("[MATRIX_MULTIPLY]-[aten_ops.linear.default]-[fc1/linear_matrix_multiply]")
    >>> d.layer_type, d.ir_op, d.pairs
    ('MATRIX_MULTIPLY', 'aten_ops.linear.default', (('fc1', 'linear'),))
    """
    name = str(name)
    refs, ops, casts = _scan(name)
    is_reformat = _REFORMAT.search(name) is not None
    is_foreign = "{ForeignNode[" in name
    is_myelin = name.startswith("__myl_") or is_foreign
    unnamed = _UNNAMED.fullmatch(name.strip())
    first_triple = _TRIPLE.search(_blank(name, (m.span() for m in casts)))
    if is_reformat:
        layer_type = "Reformat"
    elif is_foreign:
        layer_type = "ForeignNode"
    elif unnamed:
        layer_type = unnamed.group(1)
    elif casts and (first_triple is None or casts[0].start() < first_triple.start()):
        layer_type = "CAST"
    elif first_triple is not None:
        layer_type = first_triple.group(1)
    else:
        layer_type = ""
    ir_ops = tuple(dict.fromkeys(op for _, op in ops))
    return DecodedName(
        name=name,
        layer_type=layer_type,
        ir_op=ir_ops[0] if ir_ops else "",
        ir_ops=ir_ops,
        refs=tuple(dict.fromkeys(ref for _, ref in refs)),
        parts=_split_parts(name),
        is_reformat=is_reformat,
        is_cast=bool(casts),
        is_foreign=is_foreign,
        is_myelin=is_myelin,
        is_unnamed=unnamed is not None,
        cast_from=_cast_dtype(casts[0].group("src")) if casts else None,
        cast_to=_cast_dtype(casts[0].group("dst")) if casts else None,
    )


def decode_tensor_name(name: str) -> tuple[NodeRef, ...]:
    """Node references inside one tensor name (``linear1/addmm_constant_0 _ linear1/addmm_add...``); never raises."""
    refs, _, _ = _scan(str(name))
    return tuple(dict.fromkeys(ref for _, ref in refs))


def tensor_names_of(extra: Mapping[str, Any]) -> tuple[str, ...]:
    """Input then output tensor names kept in a record's ``extra["Inputs"]`` / ``extra["Outputs"]``."""
    names: list[str] = []
    for key in ("Inputs", "Outputs"):
        tensors = extra.get(key)
        if isinstance(tensors, list):
            names.extend(t["Name"] for t in tensors if isinstance(t, Mapping) and isinstance(t.get("Name"), str))
    return tuple(names)


def layer_refs(name: str, tensor_names: Iterable[str] = ()) -> tuple[NodeRef, ...]:
    """References of a layer: those in its own name, else those in its tensor names.

    The fallback serves Myelin ``kgen`` layers, whose names say nothing; it is not used when the layer's own
    name has references, because a layer's input tensors are often named after the layer that produced them.
    """
    own = decode_layer_name(name).refs
    if own:
        return own
    found: dict[NodeRef, None] = {}
    for tensor in tensor_names:
        found.update(dict.fromkeys(decode_tensor_name(tensor)))
    return tuple(found)


def modules_of(refs: Iterable[NodeRef]) -> tuple[str, ...]:
    """Distinct module paths of ``refs`` in order, skipping references without one."""
    return tuple(dict.fromkeys(ref.module for ref in refs if ref.module is not None))
