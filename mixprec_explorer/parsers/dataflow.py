"""Match engine layers to FX nodes through the tensors they read and write (Myelin ``kgen`` kernels included).

TensorRT-RTX names most layers after their fused ops (``__myl_CorrMulAddRelu_myl0_1``) with empty metadata, and
its tensor names point at the *consuming* layer, so names alone cannot say which FX nodes a kernel ran. The
layer information does give each layer's input and output tensors: the engine is a dataflow graph.
:func:`match_engine_layers` walks it in order, in named stages (docs/mapping.md):

1. :func:`_anchor_inputs`: engine inputs are the graph's user inputs (by name, else by position); the last
   engine's ``output<N>`` is graph output N;
2. :func:`_place_outputs`: any other output tensor goes to a call node downstream of the layer's inputs with the
   same element count, chosen by how well the FX nodes between the inputs and that node (the layer's *region*)
   explain the kernel's op list (``Corr`` explains a convolution, ``Mul``+``Add`` a batch norm, ``Relu`` a ReLU);
3. :func:`_start_from_name`, :func:`_fall_back_to_name`: where the dataflow cannot place a layer, its
   Torch-TensorRT name gives the node;
4. (inside 1 and 2) an engine input inside a decomposed attention stands before it (:func:`_engine_input`), and
   the second half of a split normalization stays on it (:func:`_completes`);
5. :func:`_classify`, :func:`_charge_glue_and_split`, :func:`_fill_records`: a layer with an empty region that only
   casts, copies or pads is *glue* and goes to the nodes of the layers that read its output; one that computes (a
   bias ``Add`` split off a matmul) is *partial* and goes to the node its output belongs to; then each node's
   dtype and share of the layer's time. What cannot be placed stays unmatched.

Each matched layer says how sure the match is (:data:`CONFIDENCE`). Pure and deterministic: no TensorRT needed.
"""

from __future__ import annotations

import collections
import dataclasses
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from mixprec_explorer.errors import ParseError
from mixprec_explorer.ops import CAST_OPS, FAMILY, FREE_OPS, family_of, op_basename
from mixprec_explorer.parsers.names import NodeRef, decode_layer_name, decode_tensor_name
from mixprec_explorer.records import LayerRecord, NodeInfo

__all__ = ["CONFIDENCE", "FxView", "kernel_ops", "match_engine_layers"]

#: What each ``LayerRecord.extra["match"]["confidence"]`` means.
CONFIDENCE = {
    "exact": "the kernel's op list explains every FX node between its input and output tensors, and nothing is left",
    "likely": "the element counts and graph position fit; the op list explains most of the region",
    "partial": "the layer computes part of one FX node (a bias add split from its matmul)",
    "split": "computes an intermediate no FX node outputs (half a layer norm, attention scores); its time goes to "
             "the nodes of the kernel that completes it",
    "glue": "a cast, copy or padding the engine inserted; its time goes to the nodes reading its output",
    "named": "the dataflow could not place it; its Torch-TensorRT name gives the FX nodes",
    "unmatched": "no FX node downstream of its inputs has its output's element count; not guessed",
}

#: Kernel op words that move or convert data without computing: they never need an FX node of their own.
_FREE_WORDS = frozenset({"Cast", "Resh", "Move", "Conc", "Tran", "Slice", "Slic", "Copy", "Shuf", "Pad",
                         "Reformat", "Split", "Expand", "Squeeze"})
#: FX op family -> the kernel op words one node of that family accounts for, most specific first.
_SIGNATURES: dict[str, tuple[tuple[str, ...], ...]] = {
    "conv": (("Corr",), ("Conv",), ("Fc",), ("Gemm",), ("Deconv",)),
    "linear": (("Fc", "Add"), ("Gemm", "Add"), ("Mul", "Sum", "Add"), ("Fc",), ("Gemm",), ("Mul", "Sum"),
               ("MatMul",), ("Mm",)),
    "matmul": (("Gemm",), ("Fc",), ("MatMul",), ("Bmm",), ("Mm",), ("Mul", "Sum")),
    "batch_norm": (("Mul", "Add"), ("Norm",), ("Scale",)),
    "layer_norm": (("Norm",), ("LayerNorm",), ("Mean", "Sub", "Mul", "Add"), ("Sum", "Sub", "Mul", "Add"),
                   ("Mean", "Sub", "Mul"), ("Sum", "Sub", "Mul")),
    "softmax": (("Soft",), ("Softmax",), ("Maxr", "Sub", "Exp", "Sum", "Div"), ("Max", "Sub", "Exp", "Sum", "Div"),
                ("Sub", "Exp", "Sum", "Div"), ("Exp", "Sum", "Div"), ("Exp", "Div")),
    "attention": (("Mha",), ("Attn",), ("Fmha",),
                  ("Gemm", "Maxr", "Sub", "Exp", "Sum", "Div", "Gemm"), ("Gemm", "Soft", "Gemm"), ("Gemm",), ("Fc",)),
    "relu": (("Relu",), ("Max",)),
    "gelu": (("Gelu",), ("Erf", "Mul", "Add"), ("Tanh", "Mul", "Add"), ("Erf",)),
    "silu": (("Silu",), ("Sigm", "Mul"), ("Swish",)),
    "sigmoid": (("Sigm",), ("Sigmoid",)),
    "tanh": (("Tanh",),),
    "add": (("Add",),),
    "sub": (("Sub",),),
    "mul": (("Mul",),),
    "div": (("Div",), ("Mul",)),
    "max_pool": (("Max",), ("Pool",)),
    "mean": (("Mean",), ("Sum", "Mul"), ("Red",), ("Pool",)),
    "embedding": (("Gath",), ("Gather",), ("Embed",)),
    "pow": (("Pow",), ("Mul",)),
    "sqrt": (("Sqrt",), ("Rsqrt",)),
    "exp": (("Exp",),),
}
#: Torch-TensorRT ``[TYPE]`` words of named layers -> kernel op words.
_LAYER_TYPE_WORDS = {"CONVOLUTION": "Corr", "DECONVOLUTION": "Deconv", "MATRIX_MULTIPLY": "Gemm", "MAX": "Max",
                     "POOLING": "Max", "REDUCE": "Mean", "SOFTMAX": "Soft", "NORMALIZATION": "Norm",
                     "ACTIVATION": "Relu", "RELU": "Relu", "GELU": "Gelu", "CAST": "Cast", "SHUFFLE": "Resh",
                     "CONCATENATION": "Conc", "GATHER": "Gath", "SLICE": "Slice", "ELEMENTWISE": "Add",
                     "ADD": "Add", "MUL": "Mul", "SUB": "Sub", "DIV": "Div", "MATMUL": "Gemm", "GEMM": "Gemm"}
_MYELIN = re.compile(r"^__myl_([A-Za-z0-9]+?)_myl\d+_\d+$")
#: Myelin's library kernels, named in lower case (``_gemm_mha_v2_myl0_15``: one fused attention) -> the op word
#: of the one op each runs, most specific first
_LIBRARY = re.compile(r"^_([a-z][a-z0-9_]*?)_myl\d+_\d+$")
_LIBRARY_WORDS = {"fmha": "Fmha", "mha": "Mha", "conv": "Conv", "gemm": "Gemm", "fc": "Fc"}
_WORD = re.compile(r"[A-Z][a-z0-9]*")
_SYNC_TYPES = frozenset({"signal", "wait"})
_MAX_CANDIDATES = 48
_MAX_REGION = 96


def _ir_basename(ir_op: str) -> str:
    """``aten_ops.matmul.default`` (a Torch-TensorRT layer name's op) -> ``matmul``."""
    return op_basename("torch.ops.aten." + ir_op.split(".", 1)[-1])


def kernel_ops(layer_name: str, layer_type: str = "") -> tuple[str, ...]:
    """The op words a layer's name gives: ``__myl_CorrMulAddRelu_myl0_1`` -> ``("Corr", "Mul", "Add", "Relu")``.

    Torch-TensorRT-named layers give their ``[TYPE]`` words (``[CONVOLUTION]`` -> ``Corr``); other names none.
    """
    found = _MYELIN.match(layer_name)
    if found:
        return tuple(_WORD.findall(found.group(1)))
    found = _LIBRARY.match(layer_name)
    if found:
        parts = found.group(1).split("_")
        word = next((w for key, w in _LIBRARY_WORDS.items() if key in parts), None)
        if word:
            return (word,)
    decoded = decode_layer_name(layer_name)
    words = [_LAYER_TYPE_WORDS.get(t) for t in re.findall(r"\[([A-Z][A-Z0-9_]*)\]", layer_name)]
    words = [w for w in words if w]
    if not words and decoded.ir_ops:
        words = [_signature_words(_ir_basename(op)) for op in decoded.ir_ops]
        words = [w for w in words if w]
    if not words and layer_type:
        words = [_LAYER_TYPE_WORDS.get(layer_type.upper(), "")]
    return tuple(w for w in words if w)


def _signature_words(basename: str) -> str:
    family = FAMILY.get(basename)
    return _SIGNATURES[family][0][0] if family else ""


@dataclass(frozen=True)
class FxView:
    """What the matcher needs of the captured graph: node records, edges, and the graph's inputs and outputs."""

    nodes: Mapping[str, NodeInfo]  #: FX node name -> record, in graph (topological) order
    producers: Mapping[str, Sequence[str]]  #: node -> the nodes it reads
    inputs: tuple[str, ...]  #: user input placeholders, in call order
    outputs: tuple[str, ...]  #: nodes the graph returns, in order

    @classmethod
    def of(cls, captured: Any) -> FxView:
        """From a :class:`~mixprec_explorer.capture.CapturedGraph`."""
        graph = captured.graph
        nodes = captured.nodes
        producers = {name: tuple(graph.predecessors(name)) for name in nodes if name in graph}
        inputs = tuple(n for n, info in nodes.items() if info.kind == "input")
        out_node = next((n for n, info in nodes.items() if info.kind == "output"), None)
        outputs: tuple[str, ...] = ()
        if out_node is not None:
            fx_out = next((n for n in captured.graph_module.graph.nodes if n.op == "output"), None)
            args = fx_out.args[0] if fx_out is not None and fx_out.args else ()
            flat = args if isinstance(args, (tuple, list)) else (args,)
            outputs = tuple(a.name for a in flat if isinstance(a, torch.fx.Node))
        return cls(nodes=nodes, producers=producers, inputs=inputs, outputs=outputs)

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data: what the matcher reads of each node (op, module, output shapes and dtypes, cost)."""
        return {"inputs": list(self.inputs), "outputs": list(self.outputs), "nodes": [
            {"name": n, "kind": i.kind, "op": i.op, "module": i.module, "flops": i.flops, "bytes": i.bytes_moved,
             "shapes": [list(s) for s in i.output_shapes], "dtypes": [str(d) if d else None for d in i.output_dtypes],
             "reads": list(self.producers.get(n, ()))} for n, i in self.nodes.items()]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FxView:
        """The view :meth:`as_dict` wrote; raises ParseError on anything else (data only, nothing executed)."""
        try:
            return cls._from_dict(data)
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise ParseError(f"not a graph view written by FxView.as_dict ({type(err).__name__}: {err})") from None

    @classmethod
    def _from_dict(cls, data: Mapping[str, Any]) -> FxView:
        nodes: dict[str, NodeInfo] = {}
        producers: dict[str, tuple[str, ...]] = {}
        for row in data["nodes"]:
            dtypes = tuple(_DTYPES[d] if d is not None else None for d in row["dtypes"])
            nodes[str(row["name"])] = NodeInfo(
                name=str(row["name"]), kind=str(row["kind"]), op=str(row["op"]), module=str(row["module"]),
                module_type="", input_shapes=(), input_dtypes=(),
                output_shapes=tuple(tuple(int(x) for x in shape) for shape in row["shapes"]), output_dtypes=dtypes,
                param_count=0, flops=int(row["flops"]), bytes_moved=int(row["bytes"]))
            producers[str(row["name"])] = tuple(str(r) for r in row["reads"])
        return cls(nodes=nodes, producers=producers, inputs=tuple(str(n) for n in data["inputs"]),
                   outputs=tuple(str(n) for n in data["outputs"]))


_DTYPES = {str(d): d for d in (torch.float32, torch.float16, torch.bfloat16, torch.float64, torch.int64, torch.int32,
                                torch.int16, torch.int8, torch.uint8, torch.bool, torch.float8_e4m3fn,
                                torch.complex64)}


class _Graph:
    """Topological index of the FX graph with ancestor sets as bit masks (fast region arithmetic)."""

    def __init__(self, view: FxView) -> None:
        self.view = view
        self.names = [n for n, info in view.nodes.items() if info.kind in ("input", "call_function")]
        self.index = {n: i for i, n in enumerate(self.names)}
        self.calls = 0
        self.anc: list[int] = []
        for i, name in enumerate(self.names):
            mask = 0
            for p in view.producers.get(name, ()):
                j = self.index.get(p)
                if j is not None:
                    mask |= self.anc[j] | (1 << j)
            self.anc.append(mask)
            if view.nodes[name].kind == "call_function":
                self.calls |= 1 << i
        self.desc: list[int] = [0] * len(self.names)
        for i in range(len(self.names) - 1, -1, -1):
            m = self.anc[i]
            while m:
                low = m & -m
                self.desc[low.bit_length() - 1] |= 1 << i
                m ^= low
        fed = 0
        for n in view.inputs:
            if n in self.index:
                fed |= self.desc[self.index[n]]
        #: calls that read no user input: TensorRT folds them into constants at build time, so they never run
        self.folded = self.calls & ~fed
        self.calls &= fed
        self.free = 0
        for i in self.members(self.calls):
            if op_basename(view.nodes[self.names[i]].op) in FREE_OPS:
                self.free |= 1 << i

    def closure(self, i: int) -> int:
        return self.anc[i] | (1 << i)

    def members(self, mask: int) -> list[int]:
        out = []
        while mask:
            low = mask & -mask
            out.append(low.bit_length() - 1)
            mask ^= low
        return out

    def numel(self, i: int) -> int | None:
        """Element count of node ``i``'s tensor; None for a node yielding several (``chunk``: its getitems are)."""
        shapes = self.view.nodes[self.names[i]].output_shapes
        return math.prod(shapes[0]) if len(shapes) == 1 else None


@dataclass
class _Tensor:
    numel: int | None
    dtype: torch.dtype | None
    anchor: int | None = None  #: FX node index whose output this tensor is (or passes through)
    frontier: tuple[int, ...] = ()  #: for a tensor no FX node outputs (an intermediate): its producer's inputs
    upstream: int = 0  #: FX nodes the layers it derives from ran (bit mask): not another layer's work to its readers

    @property
    def reach(self) -> tuple[int, ...]:
        """The FX nodes this tensor stands after: its anchor, or an intermediate's frontier."""
        return (self.anchor,) if self.anchor is not None else self.frontier


def _tensor_list(record: LayerRecord, key: str) -> list[tuple[str, int | None]]:
    out = []
    for t in record.extra.get(key) or ():
        if isinstance(t, Mapping) and isinstance(t.get("Name"), str):
            dims = t.get("Dimensions")
            numel = math.prod(int(d) for d in dims) if isinstance(dims, list) and all(
                isinstance(d, int) and d >= 0 for d in dims) else None
            out.append((t["Name"], numel))
    return out


def _score(graph: _Graph, region: list[int], words: Sequence[str]) -> tuple[float, int, int, int]:
    """(score, explained nodes, unexplained nodes, left-over op words) of ``region`` against a kernel's words."""
    chosen = _signatures(graph, region, words)
    explained = sum(1 for c in chosen if c)
    unexplained = sum(1 for c in chosen if c == ())
    left = sum(1 for w in words if w not in _FREE_WORDS) - sum(len(c) for c in chosen if c)
    return 3.0 * explained - 4.0 * unexplained - 2.0 * left, explained, unexplained, left


def _signatures(graph: _Graph, region: list[int], words: Sequence[str]) -> list[tuple[str, ...] | None]:
    """The op words each region node accounts for (``()``: none fit; None: a free op or one we hold no words for).

    Greedy in graph order, then a node left without words takes those another node can do without, where that
    leaves no more words over: a linear's bias ``Add`` is optional, so in ``FcMulAdd`` the ``Mul``+``Add`` go to
    the batch norm after a bias-free linear.
    """
    pool = collections.Counter(w for w in words if w not in _FREE_WORDS)
    families: list[str | None] = []
    for i in region:
        base = op_basename(graph.view.nodes[graph.names[i]].op)
        families.append(None if base in FREE_OPS else FAMILY.get(base))
    chosen: list[tuple[str, ...] | None] = [None if f is None else () for f in families]
    for k, family in enumerate(families):
        if family is not None:
            chosen[k] = _fitting(family, pool)
            pool.subtract(chosen[k])
    for k, family in enumerate(families):
        if family is None or chosen[k]:
            continue
        for j, other in enumerate(chosen):
            swap = _swap(families[j], other, family, pool) if other else None
            if swap is not None:
                chosen[j], chosen[k] = swap
                pool.update(other)
                pool.subtract((*swap[0], *swap[1]))
                break
    return chosen


def _fitting(family: str, pool: Mapping[str, int]) -> tuple[str, ...]:
    """The first (most specific) signature of ``family`` the words in ``pool`` hold; ``()`` where none fits."""
    for signature in _SIGNATURES[family]:
        if all(pool.get(w, 0) >= k for w, k in collections.Counter(signature).items()):
            return signature
    return ()


def _swap(family: str | None, held: tuple[str, ...], wanting: str,
          pool: collections.Counter[str]) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
    """A smaller signature of ``family`` for a node holding ``held`` that frees words a node of ``wanting`` then
    uses, at least as many as it frees: ``(its new signature, the wanting node's)``, or None."""
    if family is None:
        return None
    for smaller in _SIGNATURES[family]:
        if smaller == held or len(smaller) >= len(held):
            continue
        freed = pool + collections.Counter(held)
        if any(freed[w] < k for w, k in collections.Counter(smaller).items()):
            continue
        freed.subtract(smaller)
        gained = _fitting(wanting, freed)
        if len(gained) >= len(held) - len(smaller):  # no word left over that the node used before
            return smaller, gained
    return None


_HEAVY = frozenset({"conv", "linear", "matmul", "attention"})


def _runs_no_gemm_for(graph: _Graph, region: list[int], words: Sequence[str]) -> bool:
    """Whether ``region`` holds a convolution, linear, matmul or attention node none of whose signatures the
    kernel's op words contain at all (an ``AddSqrtDivMul`` kernel cannot be a linear)."""
    have = collections.Counter(words)
    for i in region:
        family = family_of(graph.view.nodes[graph.names[i]].op)
        if family in _HEAVY and not any(all(have[w] >= k for w, k in collections.Counter(sig).items())
                                        for sig in _SIGNATURES[family]):
            return True
    return False


def _other(dtype: torch.dtype | None, seen: Iterable[torch.dtype | None]) -> torch.dtype | None:
    """The one other floating dtype this engine uses (a cast flips between FP32 and the low type)."""
    others = {d for d in seen if d is not None and d.is_floating_point and d != dtype}
    return others.pop() if len(others) == 1 else None


def _word_positions(graph: _Graph, region: list[int], words: Sequence[str]) -> list[int | None]:
    """For each region node, the index in ``words`` of the last op word its signature takes (None: none)."""
    used = [False] * len(words)
    out: list[int | None] = []
    for signature in _signatures(graph, region, words):
        picks: list[int] = []
        for w in signature or ():
            k = next((k for k, x in enumerate(words) if x == w and not used[k] and k not in picks), None)
            if k is None:
                break
            picks.append(k)
        for k in picks:
            used[k] = True
        out.append(max(picks) if picks else None)  # the dtype a node yields is the one in force at its last word
    return out


def _feeding_dtype(graph: _Graph, region: list[int], record: LayerRecord,
                   tensors: Mapping[str, _Tensor]) -> torch.dtype | None:
    """The dtype of the kernel input that feeds the region's earliest node (a residual input joins later)."""
    best: tuple[int, torch.dtype] | None = None
    names = [name for name, _ in _tensor_list(record, "Inputs")]
    for k, name in enumerate(names):
        dtype = record.input_dtypes[k] if k < len(record.input_dtypes) else None
        if dtype is None or not dtype.is_floating_point or name not in tensors:
            continue
        sources = set(tensors[name].reach)
        for position, i in enumerate(region):
            preds = {graph.index.get(p) for p in graph.view.producers.get(graph.names[i], ())}
            if sources & preds:
                if best is None or position < best[0]:
                    best = (position, dtype)
                break
    return best[1] if best else None


def _node_dtypes(graph: _Graph, region: list[int], record: LayerRecord, words: Sequence[str],
                 engine_dtypes: set[torch.dtype | None],
                 tensors: Mapping[str, _Tensor]) -> tuple[tuple[str, torch.dtype | None], ...]:
    """Each region node's measured dtype, read along the kernel's op words from its input dtype.

    Every ``Cast`` word flips between the two floating dtypes the engine uses (FP32 and the low type), so in
    ``CastReshMulSumAddCast`` fed FP32 the matmul ran in FP16; a node yields the dtype in force at the last word it
    accounts for (Myelin may run a piece inside a node, GELU's ``Erf``, in FP32: the node's output dtype counts). FX cast nodes take the dtype they cast to; other nodes without a word, their predecessor's.
    """
    floats = [d for d in record.input_dtypes if d is not None and d.is_floating_point]
    first = _feeding_dtype(graph, region, record, tensors)
    if first is not None:
        floats = [first]
    outs = [d for d in record.output_dtypes if d is not None and d.is_floating_point]
    casts = sum(1 for w in words if w == "Cast")
    start: torch.dtype | None
    if floats:
        start = floats[0]
    elif outs:
        start = outs[0] if casts % 2 == 0 else _other(outs[0], engine_dtypes)
    else:
        start = None
    timeline: list[torch.dtype | None] = []
    current = start
    for w in words:
        if w == "Cast" and current is not None:
            current = _other(current, engine_dtypes) or current
        timeline.append(current)
    positions = _word_positions(graph, region, words)
    lead = next((timeline[k] for k, w in enumerate(words) if w not in _FREE_WORDS), current)
    out: list[tuple[str, torch.dtype | None]] = []
    previous = lead
    for i, position in zip(region, positions):
        info = graph.view.nodes[graph.names[i]]
        if position is not None:
            previous = timeline[position]
        elif op_basename(info.op) in CAST_OPS and info.dtype in engine_dtypes:
            previous = info.dtype
        out.append((graph.names[i], previous))
    return tuple(out)


def _weights(graph: _Graph, region: list[int]) -> tuple[float, ...]:
    """Share of the layer's time per region node: by estimated FLOPs plus bytes, so a conv outweighs its ReLU."""
    raw = [float(graph.view.nodes[graph.names[i]].flops + graph.view.nodes[graph.names[i]].bytes_moved // 4)
           for i in region]
    floor = 0.01 * sum(raw) / len(region)  # every node the kernel ran gets some of its time
    raw = [r + floor for r in raw]
    total = sum(raw)
    if total <= 0:
        return tuple(1.0 / len(region) for _ in region)
    return tuple(r / total for r in raw)


def match_engine_layers(layers: Sequence[LayerRecord], view: FxView,
                        aliases: Mapping[str, str] | None = None, *, first: bool = True,
                        last: bool = True) -> tuple[LayerRecord, ...]:
    """``layers`` (one engine's, in execution order, with their ``Inputs``/``Outputs``) with FX nodes filled.

    Each returned record has ``nodes`` (its region, topological order), ``node_dtypes``, ``node_weights`` and
    ``extra["match"] = {"confidence": ..., "why": ...}``; unmatched and zero-work sync layers keep ``nodes=()``.
    Records without tensor lists (names-only layer information) come back unmatched. ``aliases`` maps engine
    input names that are not FX node names (post-decomposition names of a later engine's inputs) to FX nodes,
    in post-decomposition graph order.
    Where the graph is split into several engines, only the ``first`` engine's unnamed inputs are the graph's
    inputs and only the ``last`` one's ``output<N>`` is graph output N; a middle engine's are partition edges.

    The stages (docs/mapping.md): :func:`_anchor_inputs`, then per layer :func:`_match_layer`
    (:func:`_place_outputs`, :func:`_start_from_name`, :func:`_fall_back_to_name`, :func:`_classify`), then
    :func:`_charge_glue_and_split` and :func:`_fill_records`.
    """
    walk = _Walk.start(view, layers, aliases or {}, last=last)
    _anchor_inputs(walk, layers, first=first)
    results = [_match_layer(walk, record) for record in layers]
    regions = _charge_glue_and_split(walk, results)
    return tuple(_fill_records(walk, results, regions))


#: one layer's match: (record, region as graph indices, confidence, why)
_Result = tuple[LayerRecord, list[int], str, str]


@dataclass
class _Walk:
    """The walk's state over one engine: where each engine tensor stands and which FX nodes a layer already ran."""

    graph: _Graph
    aliases: Mapping[str, str]  #: engine tensor names that are not FX node names -> FX nodes
    outputs: list[int | None]  #: graph output N's node, for the last engine's ``output<N>`` (else empty)
    dtypes: set[torch.dtype | None]  #: every dtype the engine's layers read or write
    tensors: dict[str, _Tensor] = dataclasses.field(default_factory=dict)
    claimed: int = 0  #: bit mask of FX nodes a layer already ran

    @classmethod
    def start(cls, view: FxView, layers: Sequence[LayerRecord], aliases: Mapping[str, str], *, last: bool) -> _Walk:
        """Nothing placed yet: the graph indexed, the last engine's outputs and the engine's dtypes known."""
        graph = _Graph(view)
        return cls(graph, aliases, [graph.index.get(n) for n in view.outputs] if last else [],
                   {d for r in layers for d in (*r.input_dtypes, *r.output_dtypes)})

    def claim(self, region: Iterable[int]) -> None:
        """Mark ``region``'s nodes as run, so no later layer takes them again."""
        for i in region:
            self.claimed |= 1 << i


def _anchor_inputs(walk: _Walk, layers: Sequence[LayerRecord], *, first: bool) -> None:
    """Stage 1: put the engine's inputs on FX nodes (by name or alias, else by position) so the walk has a start."""
    graph = walk.graph
    produced = {name for record in layers for name, _ in _tensor_list(record, "Outputs")}
    free_inputs: list[str] = []
    for record in layers:
        for name, numel in _tensor_list(record, "Inputs"):
            if name not in produced and name not in walk.tensors:
                walk.tensors[name] = _engine_input(graph, name, numel, walk.aliases)
                if walk.tensors[name].anchor is None and not walk.tensors[name].frontier:
                    free_inputs.append(name)
    user_inputs = [graph.index[n] for n in graph.view.inputs if n in graph.index]
    unclaimed = [i for i in user_inputs if all(t.anchor != i for t in walk.tensors.values())] if first else []
    for name, i in zip(free_inputs, unclaimed):
        walk.tensors[name].anchor = i


def _match_layer(walk: _Walk, record: LayerRecord) -> _Result:
    """Stages 2-3 for one layer: place its outputs (by dataflow, else by name), then say which nodes it ran."""
    ins = _tensor_list(record, "Inputs")
    outs = _tensor_list(record, "Outputs")
    if not ins and not outs:
        why = "a zero-work synchronisation step" if record.layer_type in _SYNC_TYPES else "no tensors listed"
        return record, [], "unmatched", why
    in_anchors = list(dict.fromkeys(a for n, _ in ins if n in walk.tensors for a in walk.tensors[n].reach))
    if ins and not in_anchors:
        return _start_from_name(walk, record, outs)
    words = kernel_ops(record.name, record.layer_type)
    known = 0
    for a in in_anchors:
        known |= walk.graph.closure(a)
    for n, _ in ins:
        known |= walk.tensors[n].upstream if n in walk.tensors else 0
    region, why = _place_outputs(walk, record, ins, outs, in_anchors, known, words)
    confidence = "unmatched"
    if not region and not all(w in _FREE_WORDS for w in words):
        region = _fall_back_to_name(walk, record, outs, known)
        if region:
            confidence, why = "named", "its name gives the nodes (none of them upstream of its inputs)"
    result = _classify(walk, record, outs, words, region, confidence, why)
    ran = sum(1 << i for i in result[1])
    for n, _ in outs:
        walk.tensors[n] = dataclasses.replace(walk.tensors[n], upstream=known | ran)
    return result


def _place_outputs(walk: _Walk, record: LayerRecord, ins: Sequence[tuple[str, int | None]],
                   outs: Sequence[tuple[str, int | None]], in_anchors: Sequence[int], known: int,
                   words: Sequence[str]) -> tuple[list[int], str]:
    """Stage 2: each output on the node its size and op words fit best; ``(region, why)``: the nodes the layer ran."""
    graph = walk.graph
    region: list[int] = []
    why = ""
    for k, (name, numel) in enumerate(outs):
        anchor, how = None, ""
        if name.startswith("output") and name[6:].isdigit() and int(name[6:]) < len(walk.outputs):
            anchor = walk.outputs[int(name[6:])]
            how = f"engine output {name} is graph output {int(name[6:])}"
        if anchor is None and in_anchors:
            siblings = {t.anchor for n, _ in outs[:k] if (t := walk.tensors.get(n)) and t.anchor is not None}
            ahead = _ref_nodes(graph, decode_tensor_name(name), walk.aliases)
            anchor, how = _pick(graph, in_anchors, known, walk.claimed, numel, words, record.name, walk.aliases,
                                siblings, ahead)
        if anchor is None:
            anchor, how = _completes(graph, [walk.tensors[n].anchor for n, _ in ins if n in walk.tensors], numel,
                                     words)
        dtype = record.output_dtypes[k] if k < len(record.output_dtypes) else None
        if anchor is None:
            # No FX node outputs this tensor: an intermediate a later kernel completes (a split layer norm,
            # attention scores), or a pass-through copy. Readers see past it to this layer's inputs.
            walk.tensors[name] = _Tensor(numel, dtype, None, tuple(in_anchors))
            continue
        walk.tensors[name] = _Tensor(numel, dtype, anchor)
        part = graph.members(graph.closure(anchor) & ~known & graph.calls & ~walk.claimed)
        region.extend(i for i in part if i not in region)
        why = why or how
    return region, why


def _start_from_name(walk: _Walk, record: LayerRecord, outs: Sequence[tuple[str, int | None]]) -> _Result:
    """Stage 3: a layer with no input placed (a later engine, names unknown) restarts at the node its name gives."""
    graph = walk.graph
    anchor = _named_anchor(graph, record.name, outs[0][1] if outs else None, walk.claimed, walk.aliases)
    if anchor is None:
        return record, [], "unmatched", "none of its input tensors could be placed on the graph"
    first_dtype = record.output_dtypes[0] if record.output_dtypes else None
    walk.tensors[outs[0][0]] = _Tensor(outs[0][1], first_dtype, anchor)
    walk.claim([anchor])
    return (record, [anchor], "named", f"its inputs are not placed; its name gives {graph.names[anchor]}, the only "
            "node of its module and op with its output's size")


def _fall_back_to_name(walk: _Walk, record: LayerRecord, outs: Sequence[tuple[str, int | None]],
                       known: int) -> list[int]:
    """Stage 3: a computing layer the dataflow placed nowhere (a fused q/k/v gemm) takes the nodes its name gives."""
    region = _named_region(walk.graph, record.name, known, walk.claimed, walk.aliases)
    if region:
        for name, _ in outs:
            if walk.tensors[name].anchor is None:
                walk.tensors[name] = dataclasses.replace(walk.tensors[name], frontier=tuple(region))
    return region


def _classify(walk: _Walk, record: LayerRecord, outs: Sequence[tuple[str, int | None]], words: Sequence[str],
              region: list[int], confidence: str, why: str) -> _Result:
    """Stage 2's verdict: how sure the match is (:data:`CONFIDENCE`); a placed region is claimed for this layer."""
    graph = walk.graph
    region.sort()
    if confidence == "named":
        walk.claim(region)
    elif region:
        _, explained, unexplained, left = _score(graph, region, words)
        confidence = "exact" if unexplained == 0 and left == 0 and explained else "likely"
        walk.claim(region)
    elif all(w in _FREE_WORDS for w in words):
        confidence, why = "glue", "casts, copies, pads or produces constants"
    else:
        target = next((walk.tensors[n].anchor for n, _ in outs if walk.tensors[n].anchor is not None), None)
        if target is not None and (graph.calls >> target) & 1:
            region, confidence = [target], "partial"
            why = f"computes part of {graph.names[target]} ({'+'.join(words) or record.layer_type})"
        else:
            confidence = "split"
            why = f"computes an intermediate ({'+'.join(words) or record.layer_type}) that a later kernel completes"
    return record, region, confidence, why


def _engine_input(graph: _Graph, name: str, numel: int | None, aliases: Mapping[str, str]) -> _Tensor:
    """An engine input tensor, placed on the FX node it names (through ``aliases``, in post-decomposition order).

    A name that is an *interior* post-decomposition node of FX node X (the softmax inside a decomposed
    ``scaled_dot_product_attention``, where Torch-TensorRT cut the graph to run softmax in PyTorch) is not X's
    output: X's remaining work runs in this engine, so the tensor stands after X's inputs, not after X.
    """
    target = aliases.get(name, name)
    anchor = graph.index.get(target)
    if anchor is None or name not in aliases:
        return _Tensor(numel, None, anchor)
    parts = [post for post, pre in aliases.items() if pre == target]  # X's post-decomposition nodes, in order
    interior = parts.index(name) < len(parts) - 1 or (numel is not None and graph.numel(anchor) not in (None, numel))
    if not interior:
        return _Tensor(numel, None, anchor)
    frontier = tuple(graph.index[p] for p in graph.view.producers.get(target, ()) if p in graph.index)
    return _Tensor(numel, None, None, frontier) if frontier else _Tensor(numel, None, anchor)


def _pick(graph: _Graph, in_anchors: Sequence[int], known: int, claimed: int, numel: int | None,
          words: Sequence[str], layer_name: str, aliases: Mapping[str, str],
          siblings: Iterable[int] = (), ahead: Sequence[int] = ()) -> tuple[int | None, str]:
    """The FX node downstream of ``in_anchors`` an output of ``numel`` elements most plausibly is; else (None, "").

    ``siblings`` are the nodes the layer's earlier outputs took: between nodes that fit as well, one beside them
    wins (``chunk``'s two halves are two tensors), but not one after them nor a cast of the same value (a value
    written twice, in FP32 and FP16, is one: ``dropout`` after the ``layer_norm`` is no second tensor).
    ``ahead``: the nodes the output tensor's own name gives (``[CONVOLUTION]-[...]-[m/convolution_11]_output``):
    the node that writes it or reads it, so the output stands at or before one of them.
    Where op words tie (views of one tensor: a fused q/k/v gemm's slices), a region holding one of ``ahead`` wins.
    """
    if numel is None:
        return None, ""
    reach = 0
    for a in in_anchors:
        reach |= graph.desc[a]
    named = _named_nodes(graph, layer_name, aliases)
    reach &= graph.calls & ~known
    best: tuple[tuple[float, ...], int] | None = None
    seen = 0
    taken = 0
    for t in siblings:
        taken |= 1 << _uncast(graph, t)
    for i in graph.members(reach):
        if graph.numel(i) != numel or (claimed >> i) & 1:
            continue  # another size, or a node another layer already ran (a view it passed through)
        region_mask = graph.closure(i) & ~known & graph.calls
        if region_mask & claimed & ~graph.free:
            continue  # another layer already ran part of it (views may be shared)
        region = graph.members(region_mask & ~claimed)
        if len(region) > _MAX_REGION:
            break
        score, explained, unexplained, _ = _score(graph, region, words)
        if unexplained and not explained:
            continue  # nothing in the kernel accounts for this region: a coincidence of element counts
        if _runs_no_gemm_for(graph, region, words):
            continue  # a kernel with no matmul words did not run a linear, matmul or convolution
        if named and not any(n in region for n in named):
            score -= 10.0
        if ahead and not any((graph.closure(n) >> i) & 1 for n in ahead):
            score -= 10.0
        beside = not graph.closure(_uncast(graph, i)) & taken  # neither a sibling's value nor after it
        key = (score, beside, any(n in region for n in ahead), -len(region))
        if best is None or key > best[0]:
            best = (key, i)
        seen += 1
        if seen >= _MAX_CANDIDATES:
            break
    if best is None:
        return None, ""
    return best[1], "element count and op list fit"


def _uncast(graph: _Graph, i: int) -> int:
    """The node whose value node ``i`` holds: a cast's input, through chains of casts (the same value, retyped)."""
    while op_basename(graph.view.nodes[graph.names[i]].op) in CAST_OPS:
        producers = [graph.index[p] for p in graph.view.producers.get(graph.names[i], ()) if p in graph.index]
        if len(producers) != 1:
            break
        i = producers[0]
    return i


#: FX ops Myelin splits into a statistics kernel and a kernel that applies them
_SPLIT_FAMILIES = frozenset({"layer_norm", "softmax", "batch_norm"})


def _completes(graph: _Graph, anchors: Sequence[int | None], numel: int | None,
               words: Sequence[str]) -> tuple[int | None, str]:
    """The normalization node an input tensor already stands on that this kernel finishes (the second half of a
    layer norm Myelin split in two: same element count, the statistics from the first half), or (None, "")."""
    if numel is None or all(w in _FREE_WORDS for w in words):
        return None, ""
    for a in anchors:
        if a is not None and graph.numel(a) == numel and \
                family_of(graph.view.nodes[graph.names[a]].op) in _SPLIT_FAMILIES:
            return a, f"finishes {graph.names[a]} (a split normalization)"
    return None, ""


#: Op families (:data:`~mixprec_explorer.ops.FAMILY`) Torch-TensorRT decomposes into matmuls: a layer named after a
#: matmul may be computing a captured node of these families; every family also matches itself
_DECOMPOSED_INTO = {"attention": frozenset({"matmul"}), "linear": frozenset({"matmul"})}


def _named_anchor(graph: _Graph, layer_name: str, numel: int | None, claimed: int,
                  aliases: Mapping[str, str]) -> int | None:
    """The one unclaimed call node a Torch-TensorRT layer name can stand for (its module, an op the name's op is or
    decomposes from, the output's element count); None where there is none or more than one."""
    decoded = decode_layer_name(layer_name)
    if numel is None or not decoded.ir_op:
        return None
    base = _ir_basename(decoded.ir_op)
    engine = FAMILY.get(base, base)
    found: set[int] = set()
    for ref in decoded.refs:
        if ref.module is None:
            continue
        for i, n in enumerate(graph.names):
            info = graph.view.nodes[n]
            op = op_basename(info.op)
            family = FAMILY.get(op, op)
            if (info.module == ref.module and (graph.calls >> i) & 1 and not (claimed >> i) & 1
                    and graph.numel(i) == numel and (family == engine or engine in _DECOMPOSED_INTO.get(family, ()))):
                found.add(i)
    named = [i for i in _named_nodes(graph, layer_name, aliases) if i in found]
    if len(named) == 1:
        return named[0]
    return found.pop() if len(found) == 1 else None


def _named_region(graph: _Graph, layer_name: str, known: int, claimed: int,
                  aliases: Mapping[str, str]) -> list[int]:
    """Unclaimed call nodes a Torch-TensorRT layer name gives that are not upstream of the layer's inputs
    (``known``: the inputs' nodes and their ancestors)."""
    out = []
    for i in dict.fromkeys(_named_nodes(graph, layer_name, aliases)):
        if (graph.calls >> i) & 1 and not ((claimed | known) >> i) & 1:
            out.append(i)
    return out


def _named_nodes(graph: _Graph, layer_name: str, aliases: Mapping[str, str]) -> list[int]:
    """FX nodes a Torch-TensorRT layer name points at (module path + node, post-decomposition names through
    ``aliases``), where the graph has them."""
    return _ref_nodes(graph, decode_layer_name(layer_name).refs, aliases)


def _ref_nodes(graph: _Graph, refs: Iterable[NodeRef], aliases: Mapping[str, str]) -> list[int]:
    """FX nodes that name references (module path + node) point at, where the graph has them."""
    out = []
    for ref in refs:
        for name in (ref.raw, ref.node):
            name = aliases.get(name, name)
            i = graph.index.get(name)
            if i is not None and graph.view.nodes[name].module == (ref.module or graph.view.nodes[name].module):
                out.append(i)
                break
        else:
            out.extend(i for i, n in enumerate(graph.names)
                       if ref.module and graph.view.nodes[n].module == ref.module
                       and op_basename(graph.view.nodes[n].op) not in FREE_OPS)
    return out


def _charge_glue_and_split(walk: _Walk, results: Sequence[_Result]) -> list[list[int]]:
    """Stage 5: glue and split layers take their readers' nodes, so casts and half-kernels charge what they fed."""
    graph = walk.graph
    readers: dict[str, list[int]] = {}
    for k, (record, _, _, _) in enumerate(results):
        for name, _ in _tensor_list(record, "Inputs"):
            readers.setdefault(name, []).append(k)
    regions = [region for _, region, _, _ in results]
    for k in range(len(results) - 1, -1, -1):
        record, region, confidence, _ = results[k]
        if confidence in ("glue", "split") and not region:
            outs = [name for name, _ in _tensor_list(record, "Outputs")]
            regions[k] = sorted({i for name in outs for r in readers.get(name, ()) if r > k for i in regions[r]})
            if not regions[k]:
                anchor = next((walk.tensors[n].anchor for n in outs if walk.tensors[n].anchor is not None
                               and (graph.calls >> (walk.tensors[n].anchor or 0)) & 1), None)
                regions[k] = [anchor] if anchor is not None else []
    return regions


def _fill_records(walk: _Walk, results: Sequence[_Result], regions: Sequence[list[int]]) -> list[LayerRecord]:
    """Stage 5: fill each record's nodes, measured dtypes, time shares and ``extra["match"]`` for the profile."""
    graph = walk.graph
    out = []
    for (record, _, confidence, why), region in zip(results, regions):
        if confidence in ("glue", "split") and not region:
            sizes = ", ".join(str(n) for _, n in _tensor_list(record, "Outputs"))
            confidence, why = "unmatched", (f"no FX node downstream of its inputs outputs {sizes} elements, and no "
                                            "placed layer reads its output")
        elif confidence in ("glue", "split"):
            why = f"{why}; its time goes to the nodes that read its output"
        words = kernel_ops(record.name, record.layer_type)
        match = {"confidence": confidence, "why": why, "ops": list(words)}
        if not region:
            out.append(dataclasses.replace(record, extra={**record.extra, "match": match}))
            continue
        dtypes = () if confidence == "glue" else _node_dtypes(graph, region, record, words, walk.dtypes, walk.tensors)
        out.append(dataclasses.replace(
            record, nodes=tuple(graph.names[i] for i in region), node_dtypes=dtypes,
            node_weights=_weights(graph, region), extra={**record.extra, "match": match}))
    return out
