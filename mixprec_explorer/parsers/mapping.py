"""Attribute engine layers to the FX nodes of the captured (pre-decomposition) graph.

Torch-TensorRT names layers after *post*-decomposition nodes (``linear1/addmm``), with converter suffixes; the
explorer's graph is the pre-decomposition one (``linear``). A name is resolved to a node only when the graph has
that node under the same module path; otherwise the layer goes to every node of the module paths it names; a
layer that names nothing the graph knows stays unattributed (:func:`attribute_layers`; :func:`map_post_to_pre`
gives the post- to pre-decomposition names).

:func:`map_layers` is the mapping of all engines: :func:`_match_engines` runs each engine's dataflow
(:func:`~mixprec_explorer.parsers.dataflow.match_engine_layers`), :func:`_name_the_unplaced` gives what it left a
second chance by name. :func:`check_engines` says whether a recorded folder's engines were built from the graph.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mixprec_explorer.ops import family_of, op_basename
from mixprec_explorer.parsers.dataflow import FxView, kernel_ops, match_engine_layers
from mixprec_explorer.parsers.names import NodeRef, layer_refs, tensor_names_of
from mixprec_explorer.parsers.trace import engine_order
from mixprec_explorer.records import LayerRecord, NodeInfo

if TYPE_CHECKING:
    import torch

__all__ = ["EngineCheck", "ProfileMatchWarning", "attribute_layers", "check_engines", "map_layers", "map_post_to_pre"]


def map_post_to_pre(graph_module: torch.fx.GraphModule, pre_names: Collection[str]) -> dict[str, str]:
    """Post-decomposition node name -> the pre-decomposition node it came from, via ``meta["from_node"]``.

    The nearest ancestor whose name is in ``pre_names`` wins; nodes with no such ancestor are left out. The backend
    runs Torch-TensorRT's decompositions on a copy to get ``graph_module``; the result is ``post_to_pre`` below.
    """
    known = set(pre_names)
    out: dict[str, str] = {}
    for node in graph_module.graph.nodes:
        if node.op != "call_function":
            continue
        frontier = list(reversed(node.meta.get("from_node") or []))
        seen = 0
        while frontier and seen < 10_000:
            source = frontier.pop(0)
            seen += 1
            name = getattr(source, "name", None)
            if name in known:
                out[node.name] = name
                break
            frontier.extend(reversed(getattr(source, "from_node", None) or []))
    return out


def attribute_layers(
    layers: Iterable[LayerRecord],
    node_modules: Mapping[str, str],
    post_to_pre: Mapping[str, str] | None = None,
) -> tuple[tuple[LayerRecord, ...], tuple[LayerRecord, ...]]:
    """Fill ``nodes`` of each layer; return ``(attributed, unattributed)``, each in input order.

    Parameters
    ----------
    layers:
        Records from :func:`parse_layer_info`, :func:`parse_profile` or :func:`parse_layer_log`.
    node_modules:
        FX node name -> innermost module path ("" for the root) of the pre-decomposition graph.
    post_to_pre:
        Optional post-decomposition node name -> pre-decomposition node name (``addmm`` -> ``linear``).

    A layer's references come from its own name, or from its tensor names for Myelin layers. Each reference
    resolves to the node written in it (suffix stripped, mapped through ``post_to_pre``) when that node lives in
    the module the name gives; failing that, to all nodes of that module (or of its submodules when it has none
    directly). Fused layers get several nodes; a ``{ForeignNode[a...b]}`` gets only ``a`` and ``b``.

    >>> layer = LayerRecord("[MATRIX_MULTIPLY]-[aten_ops.linear.default]-[fc1/linear_matrix_multiply]")
    >>> done, left = attribute_layers([layer], {"linear": "fc1", "relu": ""})
    >>> done[0].nodes, left
    (('linear',), ())
    """
    index = _NodeIndex(node_modules, post_to_pre or {})
    attributed: list[LayerRecord] = []
    unattributed: list[LayerRecord] = []
    for record in layers:
        nodes = index.nodes_of(record)
        if nodes:
            attributed.append(dataclasses.replace(record, nodes=nodes, extra=dict(record.extra)))
        else:
            unattributed.append(record)
    return tuple(attributed), tuple(unattributed)


class _NodeIndex:
    """Lookups over one graph's node names and module paths."""

    def __init__(self, node_modules: Mapping[str, str], post_to_pre: Mapping[str, str]) -> None:
        self.node_modules = dict(node_modules)
        self.post_to_pre = dict(post_to_pre)
        self.by_module: dict[str, list[str]] = {}
        for node, module in self.node_modules.items():
            self.by_module.setdefault(module, []).append(node)

    def nodes_of(self, record: LayerRecord) -> tuple[str, ...]:
        refs = layer_refs(record.name, tensor_names_of(record.extra))
        found: list[str] = []
        for ref in refs:
            node = self.resolve(ref)
            if node is not None:
                found.append(node)
            elif ref.module is not None:
                found.extend(self.module_nodes(ref.module))
        if not refs:
            # Records made elsewhere (the torch backend) may carry nodes or modules already.
            for name in record.nodes:
                node = self.to_pre(name)
                if node is not None:
                    found.append(node)
            if not found:
                for module in record.modules:
                    found.extend(self.module_nodes(module))
        return tuple(dict.fromkeys(found))

    def resolve(self, ref: NodeRef) -> str | None:
        """The pre-decomposition node a reference names, or None.

        With a module path, the longest known node name that ``ref.raw`` starts with (at an ``_`` boundary) and
        that lives in that module; without one, only the exact name (suffix stripped or not).
        """
        if ref.module is None:
            candidates = dict.fromkeys((ref.raw, ref.node))
        else:
            pieces = ref.raw.split("_")
            candidates = dict.fromkeys(["_".join(pieces[:end]) for end in range(len(pieces), 0, -1)] + [ref.node])
        for name in candidates:
            node = self.to_pre(name)
            if node is not None and (ref.module is None or self.node_modules[node] == ref.module):
                return node
        return None

    def to_pre(self, name: str) -> str | None:
        """``name`` as a pre-decomposition node: through ``post_to_pre`` first, else itself if known."""
        if not name:
            return None
        mapped = self.post_to_pre.get(name)
        if mapped is not None and mapped in self.node_modules:
            return mapped
        return name if name in self.node_modules else None

    def module_nodes(self, module: str) -> list[str]:
        """Nodes directly in ``module``; if none, those in its submodules (never all nodes for the root)."""
        direct = self.by_module.get(module)
        if direct:
            return direct
        if module == "":
            return []
        prefix = module + "."
        return [node for node, mod in self.node_modules.items() if mod.startswith(prefix)]


def map_layers(
    layers: Iterable[LayerRecord],
    view: FxView | None,
    node_modules: Mapping[str, str],
    post_to_pre: Mapping[str, str] | None = None,
) -> tuple[tuple[LayerRecord, ...], tuple[LayerRecord, ...]]:
    """Engine layers -> FX nodes: through the dataflow where the layer information lists tensors, else by name.

    Layers are grouped by ``extra["engine"]`` (tensor names are per engine). The dataflow match
    (:func:`~mixprec_explorer.parsers.dataflow.match_engine_layers`) places Myelin kernels that names cannot;
    a layer it leaves unmatched gets a second chance by name (confidence ``"named"``). Returns
    ``(attributed, unattributed)`` in input order; every layer carries ``extra["match"]``.
    """
    records = list(layers)
    if view is None:
        return _by_name_only(records, node_modules, post_to_pre)
    post_to_pre = _with_lowered_names(records, view, post_to_pre)
    return _name_the_unplaced(_match_engines(records, view, post_to_pre), node_modules, post_to_pre)


#: a node a Torch-TensorRT lowering pass made after the decomposition whose names ``post_to_pre`` holds
#: (``max_pool2d_with_indices`` + ``getitem`` -> ``max_pool2d_default_3``): FX names it after its op overload and
#: numbers it in graph order
_LOWERED = re.compile(r"^(?P<op>[a-z_][a-z0-9_]*?)_default(?:_(?P<k>\d+))?$")


def _with_lowered_names(layers: Iterable[LayerRecord], view: FxView,
                       post_to_pre: Mapping[str, str] | None) -> dict[str, str]:
    """``post_to_pre`` plus the engine inputs a lowering pass named (``max_pool2d_default_3``, the output of a node
    run in PyTorch between engines): the k-th captured node of that op, where it has the tensor's element count."""
    out = dict(post_to_pre or {})
    by_op: dict[str, list[str]] = {}
    for node, info in view.nodes.items():
        if info.kind == "call_function":
            by_op.setdefault(op_basename(info.op), []).append(node)
    for record in layers:
        for name, _, numel in _dims(record, "Inputs"):
            found = _LOWERED.match(name)
            if found is None or name in out or name in view.nodes:
                continue
            nodes = by_op.get(found["op"], [])
            k = int(found["k"] or 0)
            shapes = view.nodes[nodes[k]].output_shapes if k < len(nodes) else ()
            if len(shapes) == 1 and math.prod(shapes[0]) == numel:
                out[name] = nodes[k]
    return out


def _opens_the_graph(engine: object, order: Sequence[object]) -> bool:
    """Whether ``engine`` runs first with nothing before it: Torch-TensorRT numbers engines and the PyTorch parts
    between them with one counter, so a first engine ``_run_on_acc_1`` reads what ``_run_on_gpu_0`` computed."""
    return bool(order) and engine == order[0] and engine_order(engine)[0] <= 0


def _by_name_only(records: Sequence[LayerRecord], node_modules: Mapping[str, str],
                  post_to_pre: Mapping[str, str] | None) -> tuple[tuple[LayerRecord, ...], tuple[LayerRecord, ...]]:
    """Without the captured graph's edges, every layer by its name (:func:`attribute_layers`), tagged ``named``."""
    named, left = attribute_layers(records, node_modules, post_to_pre)
    tag = {"confidence": "named", "why": "its name or tensor names give the module path and node"}
    return (tuple(dataclasses.replace(r, extra={**r.extra, "match": tag}) for r in named),
            tuple(dataclasses.replace(r, extra={**r.extra, "match": _UNNAMED}) for r in left))


def _match_engines(records: Sequence[LayerRecord], view: FxView,
                   post_to_pre: Mapping[str, str] | None) -> list[LayerRecord]:
    """Run each engine's dataflow (:func:`match_engine_layers`), told whether it is the first or last engine."""
    engines: dict[object, list[int]] = {}
    for k, record in enumerate(records):
        engines.setdefault(record.extra.get("engine"), []).append(k)
    matched: list[LayerRecord] = list(records)
    order = sorted(engines, key=engine_order)
    for engine, indices in engines.items():
        group = [records[k] for k in indices]
        if any(r.extra.get("Inputs") or r.extra.get("Outputs") for r in group):
            group = list(match_engine_layers(group, view, post_to_pre, first=_opens_the_graph(engine, order),
                                             last=engine == order[-1]))
        for k, record in zip(indices, group):
            matched[k] = record
    return matched


def _name_the_unplaced(matched: Sequence[LayerRecord], node_modules: Mapping[str, str], post_to_pre: Mapping[str, str]
                       | None) -> tuple[tuple[LayerRecord, ...], tuple[LayerRecord, ...]]:
    """Give what the dataflow left a second chance by name; return ``(attributed, unattributed)``."""
    attributed: list[LayerRecord] = []
    unattributed: list[LayerRecord] = []
    for record in matched:
        if record.nodes and "match" in record.extra:
            attributed.append(record)
            continue
        if record.layer_type in ("signal", "wait") and not record.latency_ms:
            unattributed.append(record)
            continue
        (named, left) = attribute_layers([dataclasses.replace(record, nodes=())], node_modules, post_to_pre)
        if named:
            why = record.extra.get("match", {}).get("why", "")
            tag = {"confidence": "named", "why": "by its name" + (f" (dataflow: {why})" if why else "")}
            attributed.append(dataclasses.replace(named[0], extra={**named[0].extra, "match": tag}))
        else:
            unattributed.append(dataclasses.replace(
                record, extra={**record.extra, "match": record.extra.get("match", _UNNAMED)}))
    return tuple(attributed), tuple(unattributed)


_UNNAMED = {"confidence": "unmatched", "why": "neither its tensors nor its name place it on the graph"}


# -- were these engines built from this graph? ------------------------------------------------------------------------
class ProfileMatchWarning(UserWarning):
    """A recorded folder's engines fit the graph only in part (``Profile.match_score`` below 1): read its
    per-node figures with care."""


@dataclass(frozen=True)
class EngineCheck:
    """Whether a folder's engines were built from a graph: each piece of evidence as (agreeing, compared), and
    what differs in words. Nothing compared counts as agreeing."""

    inputs: tuple[int, int]  #: engine inputs named as the graph's user inputs, with their element count
    outputs: tuple[int, int]  #: the last engine's ``output<N>`` with graph output N's element count
    names: tuple[int, int]  #: module paths in layer and tensor names that are modules of the graph (distinct)
    placed: tuple[int, int]  #: convolution and matmul layers the dataflow placed on 1-4 such nodes per gemm
    sizes: tuple[int, int]  #: engine tensors whose element count some node of the graph has
    graph: tuple[int, int] = (0, 0)  #: nodes of a folder's own graph (a cast graph's) that are this graph's
    #: the first engine's other inputs, taken for the graph's remaining user inputs by position
    unnamed_inputs: tuple[int, int] = (0, 0)
    differences: tuple[str, ...] = ()  #: what differs, in words

    @staticmethod
    def _fraction(pair: tuple[int, int]) -> float:
        return pair[0] / pair[1] if pair[1] else 1.0

    @property
    def score(self) -> float:
        """0..1: the weakest agreeing fraction of inputs, outputs, module names, placed layers and graph nodes."""
        return min(self._fraction(p) for p in (self.inputs, self.unnamed_inputs, self.outputs, self.names,
                                                self.placed, self.graph))

    @property
    def contradicts(self) -> bool:
        """True where the engines cannot come from this graph: an input of the graph's name with another size
        (batch, image, sequence), module names or nodes the graph lacks, compute layers the dataflow cannot place, or tensor sizes the
        graph never has."""
        return (self.inputs[0] < self.inputs[1] or self._fraction(self.names) < NAMES_NEEDED
                or self._fraction(self.graph) < NAMES_NEEDED or self._fraction(self.placed) < PLACED_NEEDED
                or self._fraction(self.sizes) < SIZES_NEEDED)

    def summary(self) -> str:
        """The evidence in one line: ``inputs 1/1, outputs 1/1, module names 24/24, ...``."""
        parts = [("inputs", self.inputs), ("unnamed inputs", self.unnamed_inputs), ("outputs", self.outputs), ("module names", self.names),
                 ("compute layers placed", self.placed), ("tensor sizes", self.sizes), ("graph nodes", self.graph)]
        return ", ".join(f"{label} {a}/{c}" for label, (a, c) in parts if c)


#: below these agreeing fractions the engines were built from another graph (every recorded folder of the
#: right model agrees fully on names and placed layers; tensor sizes 0.85 and up, intermediates having no node)
NAMES_NEEDED, PLACED_NEEDED, SIZES_NEEDED = 0.9, 0.8, 0.5
#: kernel op words of a layer that runs a convolution or matmul
_GEMM_WORDS = frozenset({"Corr", "Conv", "Deconv", "Fc", "Gemm", "MatMul", "Bmm", "Mm", "Mha", "Attn", "Fmha"})
_COMPUTE_FAMILIES = frozenset({"conv", "linear", "matmul", "attention"})
_SHOWN = 3  # differences named per kind
_Shape = Callable[[str], "list[int] | None"]  # a graph node's output shape (None: none known)


def _dims(record: LayerRecord, key: str) -> list[tuple[str, list[int] | None, int | None]]:
    """(name, dimensions, element count) of a record's input or output tensors; None where not all known."""
    out: list[tuple[str, list[int] | None, int | None]] = []
    for t in record.extra.get(key) or ():
        if isinstance(t, Mapping) and isinstance(t.get("Name"), str):
            dims = t.get("Dimensions")
            if isinstance(dims, list) and all(isinstance(d, int) and d >= 0 for d in dims):
                out.append((t["Name"], list(dims), math.prod(dims)))
            else:
                out.append((t["Name"], None, None))
    return out


def check_engines(layers: Iterable[LayerRecord], view: FxView, post_to_pre: Mapping[str, str] | None = None, *,
                  target: FxView | None = None, rename: Mapping[str, str] | None = None) -> EngineCheck:
    """How well mapped engine layers (attributed and not, with ``extra["engine"]``) fit ``view``, the graph they
    were mapped on: engine inputs and outputs against the graph's, module paths in names, compute layers placed
    along the dataflow, tensor sizes. ``target`` (with ``rename``): the explorer's graph, where ``view`` is the
    folder's own (a cast graph): its nodes must be the target's."""
    records = list(layers)
    engines: dict[object, list[LayerRecord]] = {}
    for record in records:
        engines.setdefault(record.extra.get("engine"), []).append(record)
    order = sorted(engines, key=engine_order)
    differences: list[str] = []
    post_to_pre = _with_lowered_names(records, view, post_to_pre)

    def shape(node: str) -> list[int] | None:
        info = view.nodes.get(node)
        return list(info.output_shapes[0]) if info is not None and info.output_shapes else None

    inputs, unnamed = _check_inputs(engines, order, view, set(view.nodes) | set(post_to_pre or {}), shape,
                                    differences)
    outputs = _check_outputs(engines[order[-1]] if order else [], view, shape, differences)
    names = _check_names(records, view, differences)
    placed = _check_placed(records, view, differences)
    sizes = _check_sizes(records, view, differences)
    graph = _check_graph(view, target, rename or {}, differences) if target is not None else (0, 0)
    return EngineCheck(inputs, outputs, names, placed, sizes, graph, unnamed, tuple(differences))


def _check_inputs(engines: Mapping[object, Sequence[LayerRecord]], order: Sequence[object], view: FxView,
                  known: set[str], shape: _Shape, differences: list[str]) -> tuple[tuple[int, int], tuple[int, int]]:
    """Engine inputs that are the graph's user inputs, by name and (the first engine's inputs the graph does not
    name) by position as the dataflow places them: the same element count? ``(by name, by position)``."""
    pairs: list[tuple[object, str, list[int] | None, int | None, str | None, bool]] = []
    for engine in order:
        produced = {name for r in engines[engine] for name, _, _ in _dims(r, "Outputs")}
        seen: set[str] = set()
        free = []
        for record in engines[engine]:
            for name, dims, numel in _dims(record, "Inputs"):
                if name in produced or name in seen:
                    continue
                seen.add(name)
                if name in view.inputs:
                    pairs.append((engine, name, dims, numel, name, True))
                elif _opens_the_graph(engine, order) and name not in known:
                    free.append((name, dims, numel))
        if _opens_the_graph(engine, order):
            unclaimed = [u for u in view.inputs if u not in seen]
            for k, (name, dims, numel) in enumerate(free):
                pairs.append((engine, name, dims, numel, unclaimed[k] if k < len(unclaimed) else None, False))
    counts = {True: [0, 0], False: [0, 0]}
    for engine, name, dims, numel, node, by_name in pairs:
        want = shape(node) if node is not None else None
        if node is not None and (numel is None or want is None):
            continue
        counts[by_name][1] += 1
        if node is not None and numel == math.prod(want or ()):
            counts[by_name][0] += 1
        elif node is None:
            differences.append(f"engine {engine} reads an input {name!r} {dims} the graph does not have")
        else:
            differences.append(f"engine {engine}'s input {name!r} is {dims}; this graph's input {node!r} is {want}")
    return (counts[True][0], counts[True][1]), (counts[False][0], counts[False][1])


def _check_outputs(last: Sequence[LayerRecord], view: FxView, shape: _Shape, differences: list[str]) -> tuple[int, int]:
    """The last engine's ``output<N>`` against graph output N (where the engine writes as many as the graph)."""
    outs = [(name, dims, numel) for r in last for name, dims, numel in _dims(r, "Outputs")
            if name.startswith("output") and name[6:].isdigit()]
    if len({name for name, _, _ in outs}) != len(view.outputs):
        return 0, 0  # the graph's tail runs outside the engines: no position to compare
    agree = compared = 0
    for name, dims, numel in dict((name, (name, dims, numel)) for name, dims, numel in outs).values():
        want = shape(view.outputs[int(name[6:])])
        if numel is None or want is None:
            continue
        compared += 1
        if numel == math.prod(want):
            agree += 1
        else:
            differences.append(f"the last engine's {name} is {dims}; this graph's output {int(name[6:])} is {want}")
    return agree, compared


def _check_names(records: Sequence[LayerRecord], view: FxView, differences: list[str]) -> tuple[int, int]:
    """Module paths that layer and tensor names carry: modules of the graph (or containers of them)?"""
    modules: set[str] = set()
    for info in view.nodes.values():
        parts = info.module.split(".") if info.module else []
        modules.update(".".join(parts[:k]) for k in range(1, len(parts) + 1))
    named = {ref.module for r in records for ref in layer_refs(r.name, tensor_names_of(r.extra)) if ref.module}
    missing = sorted(named - modules)
    if missing:
        differences.append("layer names refer to modules this graph lacks: " + ", ".join(map(repr, missing[:_SHOWN]))
                           + (f" and {len(missing) - _SHOWN} more" if len(missing) > _SHOWN else ""))
    return len(named) - len(missing), len(named)


def _check_placed(records: Sequence[LayerRecord], view: FxView, differences: list[str]) -> tuple[int, int]:
    """Convolution and matmul layers: did the dataflow (element counts along the engine's tensors) put each on
    one to four convolution, linear, matmul or attention nodes per gemm it runs? On another graph they land on
    none, or on a whole tail of the graph."""
    agree = compared = 0
    for record in records:
        gemms = sum(1 for w in kernel_ops(record.name, record.layer_type) if w in _GEMM_WORDS)
        if not gemms:
            continue
        compared += 1
        heavy = sum(1 for n in record.nodes if n in view.nodes and family_of(view.nodes[n].op) in _COMPUTE_FAMILIES)
        if 1 <= heavy <= 4 * gemms:
            agree += 1
    if agree < compared:
        differences.append(f"{compared - agree} of {compared} convolution and matmul layers fit no such node of "
                           "this graph along the engine's tensor sizes")
    return agree, compared


def _check_sizes(records: Sequence[LayerRecord], view: FxView, differences: list[str]) -> tuple[int, int]:
    """Engine tensors (per engine and name) whose element count some node of the graph outputs."""
    sizes = {math.prod(s) for info in view.nodes.values() for s in info.output_shapes}
    tensors: dict[tuple[object, str], int] = {}
    for record in records:
        for key in ("Inputs", "Outputs"):
            for name, _, numel in _dims(record, key):
                if numel is not None:
                    tensors[(record.extra.get("engine"), name)] = numel
    agree = sum(1 for numel in tensors.values() if numel in sizes)
    if tensors and agree / len(tensors) < SIZES_NEEDED:
        differences.append(f"{len(tensors) - agree} of {len(tensors)} engine tensors have an element count no node "
                           "of this graph has")
    return agree, len(tensors)


def _same_size(node: NodeInfo, other: NodeInfo) -> bool:
    """Whether ``node``'s first output has ``other``'s size; a ``getitem`` renamed to the op it unpacks (a cast
    program recorded before its ``getitem`` nodes kept their own names) may have any of that op's outputs' sizes."""
    size = [math.prod(s) for s in node.output_shapes[:1]]
    if node.op.endswith(".getitem") and len(other.output_shapes) > 1:
        return any(size == [math.prod(s)] for s in other.output_shapes)
    return size == [math.prod(s) for s in other.output_shapes[:1]]


def _check_graph(view: FxView, target: FxView, rename: Mapping[str, str], differences: list[str]) -> tuple[int, int]:
    """A folder's own graph (a cast graph) against the explorer's: its inputs and the nodes ``rename`` gives the
    explorer's names (all its nodes where there is no ``rename``; casts the plan inserted left out) must be the
    explorer's (same name, module and size)."""
    agree = compared = 0
    missing: list[str] = []
    for node, info in view.nodes.items():
        if info.kind == "input":
            name = node
        elif info.kind == "call_function" and (node in rename or not rename):  # not the cast program's own asserts
            name = rename.get(node, node)
            if name.startswith("<cast>"):
                continue
        else:
            continue
        compared += 1
        other = target.nodes.get(name)
        if other is not None and other.module == info.module and _same_size(info, other):
            agree += 1
        else:
            missing.append(name)
    if missing:
        differences.append(f"{len(missing)} of {compared} nodes of the folder's graph are not this graph's (same "
                           f"name, module and size): {', '.join(map(repr, missing[:_SHOWN]))}")
    return agree, compared
