"""Attribute engine layers to the FX nodes of the captured (pre-decomposition) graph.

Torch-TensorRT names layers after *post*-decomposition nodes (``linear1/addmm``), with converter suffixes; the
explorer's graph is the pre-decomposition one (``linear``). A name is resolved to a node only when the graph has
that node under the same module path; otherwise the layer goes to every node of the module paths it names; a
layer that names nothing the graph knows stays unattributed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping

from mixprec_explorer.parsers.dataflow import FxView, match_engine_layers
from mixprec_explorer.parsers.names import NodeRef, layer_refs, tensor_names_of
from mixprec_explorer.parsers.trace import engine_order
from mixprec_explorer.records import LayerRecord

__all__ = ["attribute_layers", "map_layers"]


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
        named, left = attribute_layers(records, node_modules, post_to_pre)
        tag = {"confidence": "named", "why": "its name or tensor names give the module path and node"}
        return (tuple(dataclasses.replace(r, extra={**r.extra, "match": tag}) for r in named),
                tuple(dataclasses.replace(r, extra={**r.extra, "match": _UNNAMED}) for r in left))
    engines: dict[object, list[int]] = {}
    for k, record in enumerate(records):
        engines.setdefault(record.extra.get("engine"), []).append(k)
    matched: list[LayerRecord] = list(records)
    order = sorted(engines, key=engine_order)
    for engine, indices in engines.items():
        group = [records[k] for k in indices]
        if any(r.extra.get("Inputs") or r.extra.get("Outputs") for r in group):
            group = list(match_engine_layers(group, view, post_to_pre, first=engine == order[0],
                                             last=engine == order[-1]))
        for k, record in zip(indices, group):
            matched[k] = record
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
