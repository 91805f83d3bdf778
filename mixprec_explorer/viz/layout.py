"""Layered top-to-bottom DAG layout (Sugiyama style), cached per graph object.

Steps: break cycles against insertion order, longest-path layers (sources pulled down next to their
first consumer), dummy nodes on edges that span several layers, barycentre sweeps to reduce
crossings, then x coordinates pulled toward neighbours with a minimum gap of one unit.
Coordinates are in layout units: one unit between neighbours in a layer, ``y = -layer``.
"""

from __future__ import annotations

import bisect
import contextlib
import functools
import gc
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

import networkx as nx
import numpy as np

__all__ = ["GROUP_PREFIX", "Layout", "group_graph", "group_key", "layered_layout", "paused_gc", "without_gc"]

P = ParamSpec("P")
R = TypeVar("R")


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector: building many small lists next to a large torch graph
    otherwise triggers full collections that cost more than the work itself."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def without_gc(func: Callable[P, R]) -> Callable[P, R]:
    """Decorator form of :func:`paused_gc`."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with paused_gc():
            return func(*args, **kwargs)

    return wrapper


@dataclass(frozen=True)
class Layout:
    """Positions of a graph's nodes and the polylines of its edges, ready for plotting."""

    positions: dict[Any, tuple[float, float]]  #: node -> (x, y), layout units; y = -layer
    layers: int  #: number of layers (rows)
    width: int  #: slots in the widest layer, dummy nodes included
    edge_x: np.ndarray  #: x of every edge polyline, NaN-separated (one trace draws them all)
    edge_y: np.ndarray  #: y of the same polylines


_CACHE: weakref.WeakKeyDictionary[nx.DiGraph, tuple[tuple[int, int, int], Layout]] = weakref.WeakKeyDictionary()


def layered_layout(graph: nx.DiGraph, *, sweeps: int = 8) -> Layout:
    """Layered layout of ``graph``, top to bottom; cached until the graph's node or edge count changes.

    Handles cycles (edges against node insertion order are reversed) and self-loops (ignored).

    >>> import networkx as nx
    >>> g = nx.DiGraph([("a", "b"), ("b", "c"), ("a", "c")])
    >>> lay = layered_layout(g)
    >>> [lay.positions[n][1] for n in "abc"]
    [0.0, -1.0, -2.0]
    """
    signature = (graph.number_of_nodes(), graph.number_of_edges(), sweeps)
    hit = _CACHE.get(graph)
    if hit is not None and hit[0] == signature:
        return hit[1]
    with paused_gc():
        result = _compute(graph, sweeps)
    _CACHE[graph] = (signature, result)
    return result


def _dag_edges(graph: nx.DiGraph, index: dict[Any, int]) -> list[tuple[int, int]]:
    """Edges as index pairs; if the graph has a cycle, edges against insertion order are reversed."""
    edges = [(index[u], index[v]) for u, v in graph.edges if u != v]
    if nx.is_directed_acyclic_graph(graph):
        return edges
    return list(dict.fromkeys((u, v) if u < v else (v, u) for u, v in edges))


def _longest_path_layers(n: int, preds: list[list[int]], succs: list[list[int]]) -> list[int]:
    """Layer of each node: longest path from a source; sources then sit just above their first consumer."""
    indegree = [len(p) for p in preds]
    ready = [v for v in range(n) if indegree[v] == 0]
    layer = [0] * n
    order: list[int] = []
    while ready:
        nxt: list[int] = []
        for v in ready:
            order.append(v)
            for w in succs[v]:
                if layer[v] + 1 > layer[w]:
                    layer[w] = layer[v] + 1
                indegree[w] -= 1
                if indegree[w] == 0:
                    nxt.append(w)
        ready = nxt
    for v in range(n):
        if not preds[v] and succs[v]:
            layer[v] = min(layer[w] for w in succs[v]) - 1
    return layer


def _compute(graph: nx.DiGraph, sweeps: int) -> Layout:
    nodes = list(graph.nodes)
    n = len(nodes)
    if n == 0:
        empty = np.empty(0)
        return Layout({}, 0, 0, empty, empty)
    index = {v: i for i, v in enumerate(nodes)}
    edges = _dag_edges(graph, index)
    preds: list[list[int]] = [[] for _ in range(n)]
    succs: list[list[int]] = [[] for _ in range(n)]
    for u, v in edges:
        preds[v].append(u)
        succs[u].append(v)
    layer = _longest_path_layers(n, preds, succs)

    # dummy nodes: every edge becomes a chain of unit-span segments
    up: list[list[int]] = [list() for _ in range(n)]  # neighbours one layer above
    down: list[list[int]] = [list() for _ in range(n)]  # neighbours one layer below
    chains: list[list[int]] = []
    for u, v in edges:
        chain = [u]
        for step in range(layer[u] + 1, layer[v]):
            layer.append(step)
            up.append([])
            down.append([])
            chain.append(len(layer) - 1)
        chain.append(v)
        for a, b in zip(chain, chain[1:]):
            down[a].append(b)
            up[b].append(a)
        chains.append(chain)

    total = len(layer)
    depth = max(layer) + 1
    rows: list[list[int]] = [[] for _ in range(depth)]
    for v in _initial_order(total, n, up, down, layer):
        rows[layer[v]].append(v)
    x = [0.0] * total
    for row in rows:
        _place_centred(row, x)

    best, best_rows = _crossings(rows, down, x), [list(row) for row in rows]
    for sweep in range(sweeps):  # barycentre crossing reduction, alternating down and up; keep the best
        if best == 0:
            break
        downward = sweep % 2 == 0
        for r in range(1, depth) if downward else range(depth - 2, -1, -1):
            row = rows[r]
            if len(row) < 2:
                continue
            nbrs = up if downward else down
            keys = {v: (sum(x[w] for w in nbrs[v]) / len(nbrs[v]) if nbrs[v] else x[v]) for v in row}
            row.sort(key=keys.__getitem__)
            _place_centred(row, x)
        count = _crossings(rows, down, x)
        if count < best:
            best, best_rows = count, [list(row) for row in rows]
    rows = best_rows
    for row in rows:
        _place_centred(row, x)

    for sweep in range(4):  # coordinates: pull toward neighbours, keep order and a gap of 1
        downward = sweep % 2 == 0
        for r in range(1, depth) if downward else range(depth - 2, -1, -1):
            nbrs = up if downward else down
            _place_near(rows[r], nbrs, x)

    positions = {nodes[v]: (x[v], float(-layer[v])) for v in range(n)}
    ex: list[float] = []
    ey: list[float] = []
    for chain in chains:
        ex.extend(x[v] for v in chain)
        ey.extend(float(-layer[v]) for v in chain)
        ex.append(np.nan)
        ey.append(np.nan)
    width = max(len(row) for row in rows)
    return Layout(positions, depth, width, np.asarray(ex, dtype=float), np.asarray(ey, dtype=float))


def _crossings(rows: list[list[int]], down: list[list[int]], x: list[float]) -> int:
    """Edge crossings between adjacent rows (dummy nodes make every segment span one row)."""
    total = 0
    for upper, lower in zip(rows, rows[1:]):
        if len(upper) < 2 or len(lower) < 2:
            continue  # edges that share an end never cross
        seen: list[float] = []
        for _, bottom in sorted((x[u], x[w]) for u in upper for w in down[u]):
            total += len(seen) - bisect.bisect_right(seen, bottom)
            bisect.insort(seen, bottom)
    return total


def _initial_order(total: int, n: int, up: list[list[int]], down: list[list[int]], layer: list[int]) -> list[int]:
    """Depth-first order from the sources, so that a chain's nodes start in the same column."""
    seen = [False] * total
    order: list[int] = []
    for root in range(n):
        if seen[root] or up[root]:
            continue
        stack = [root]
        while stack:
            v = stack.pop()
            if seen[v]:
                continue
            seen[v] = True
            order.append(v)
            stack.extend(reversed(down[v]))
    order.extend(v for v in range(total) if not seen[v])
    return order


def _place_centred(row: list[int], x: list[float]) -> None:
    """x = index in the row, centred on 0."""
    offset = (len(row) - 1) / 2
    for i, v in enumerate(row):
        x[v] = i - offset


def _place_near(row: list[int], nbrs: list[list[int]], x: list[float]) -> None:
    """Move a row's nodes toward the mean x of their neighbours, keeping their order and a gap of 1."""
    if not row:
        return
    want = [sum(x[w] for w in nbrs[v]) / len(nbrs[v]) if nbrs[v] else x[v] for v in row]
    placed = list(want)
    for i in range(1, len(placed)):  # push right to make room
        placed[i] = max(placed[i], placed[i - 1] + 1.0)
    shift = (sum(want) - sum(placed)) / len(placed)  # then centre on what was wanted
    for v, p in zip(row, placed):
        x[v] = p + shift


# -- module grouping: which drawn item each FX node belongs to ----------------------------------------------
GROUP_PREFIX = "module:"  #: drawn-item key of a collapsed module is this prefix + its module path


def group_key(module: str, depth: int | None, expanded: frozenset[str] | set[str] = frozenset()) -> str | None:
    """Module path of the collapsed group a node of ``module`` is drawn in, or None when drawn on its own.

    Paths are cut to ``depth`` components; an expanded path opens one level more, down to the node itself.

    >>> group_key("layer1.0.conv1", 1), group_key("layer1.0.conv1", 1, {"layer1"})
    ('layer1', 'layer1.0')
    >>> group_key("layer1.0.conv1", None), group_key("", 1)
    (None, None)
    """
    if depth is None or not module:
        return None
    parts = module.split(".")
    cut = max(1, min(depth, len(parts)))
    while True:
        prefix = ".".join(parts[:cut])
        if prefix not in expanded:
            return prefix
        if cut >= len(parts):
            return None
        cut += 1


def group_graph(graph: nx.DiGraph, depth: int | None, expanded: frozenset[str] = frozenset()
                ) -> tuple[nx.DiGraph, dict[str, tuple[Any, ...]]]:
    """The graph with collapsed modules as single nodes, and each drawn key's member nodes.

    Only ``call_function`` nodes (attribute ``kind``) are grouped; a group of one is drawn as its node.
    Keys keep graph order (a group sits where its first member is); edges inside a group vanish.
    """
    members: dict[str, list[Any]] = {}
    key_of: dict[Any, str] = {}
    for node, data in graph.nodes(data=True):
        g = group_key(data.get("module", ""), depth, expanded) if data.get("kind") == "call_function" else None
        key = node if g is None else GROUP_PREFIX + g
        members.setdefault(key, []).append(node)
        key_of[node] = key
    for key, names in members.items():
        if key.startswith(GROUP_PREFIX) and len(names) == 1:
            key_of[names[0]] = names[0]
    out = nx.DiGraph()
    final: dict[str, tuple[Any, ...]] = {}
    for key, names in members.items():
        drawn = key if len(names) > 1 or not key.startswith(GROUP_PREFIX) else names[0]
        out.add_node(drawn)
        final[drawn] = tuple(names)
    out.add_edges_from((key_of[u], key_of[v]) for u, v in graph.edges if key_of[u] != key_of[v])
    return out, final
