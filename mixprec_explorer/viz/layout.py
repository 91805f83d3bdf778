"""Layered top-to-bottom DAG layout (Sugiyama style) that makes room for labels, cached per graph object.

Steps: break cycles against insertion order, longest-path layers (sources pulled down next to their
first consumer), dummy nodes on edges that span several layers, barycentre sweeps to reduce
crossings, then x coordinates pulled toward neighbours, each neighbour kept clear of the other's box.

Every node may bring a box (its extent left and right of its anchor and half its height, e.g. a marker with
its label to the right): neighbours in a row are placed so that boxes keep ``gap`` between them, and each row
is as tall as its tallest box plus ``row_gap``. Units are the caller's (the graph figure uses pixels); without
boxes every node is one unit wide and tall, so neighbours sit one unit apart and ``y = -layer``.

Also here: which module a node is drawn in when modules are collapsed (:func:`group_key`, :func:`group_graph`),
the grouping a large graph opens with (:func:`auto_grouping`) and the width of a label (:func:`text_width`).
"""

from __future__ import annotations

import bisect
import contextlib
import functools
import gc
import weakref
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

import networkx as nx
import numpy as np

__all__ = ["AUTO_GROUP_NODES", "GROUP_PREFIX", "Box", "GraphView", "Layout", "auto_grouping", "forget_layouts",
           "group_graph", "group_key", "layered_layout", "paused_gc", "text_width", "without_gc"]

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


#: A node's box around its anchor: (extent to the left, extent to the right, half height), in layout units.
Box = tuple[float, float, float]
_UNIT: Box = (0.5, 0.5, 0.5)


@dataclass(frozen=True)
class Layout:
    """Positions of a graph's nodes and the polylines of its edges, ready for plotting."""

    positions: dict[Any, tuple[float, float]]  #: node -> (x, y) of its anchor, layout units; y decreases downward
    layers: int  #: number of layers (rows)
    width: int  #: slots in the widest layer, dummy nodes included
    edge_x: np.ndarray  #: x of every edge polyline, NaN-separated (one trace draws them all)
    edge_y: np.ndarray  #: y of the same polylines
    bounds: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)  #: x min, x max, y min, y max of all boxes


@dataclass(frozen=True)
class GraphView:
    """The drawn items (one per node, or per collapsed module) in point order, with their positions.

    Coordinates are pixels of the figure (x to the right, y up), so label boxes can be reasoned about directly.
    """

    keys: tuple[str, ...]  #: node name, or "module:<path>" for a collapsed module
    members: tuple[tuple[str, ...], ...]  #: the FX nodes each point stands for
    x: np.ndarray  #: px
    y: np.ndarray  #: px, 0 at the top row, decreasing downward
    edge_x: np.ndarray  #: NaN-separated edge polylines
    edge_y: np.ndarray
    layers: int  #: rows of the layout
    group_by_module: int | None  #: module depth modules are collapsed to (None: no grouping)
    expanded: frozenset[str]  #: module paths opened one level
    point_of: dict[str, int]  #: node name or key -> point index
    static_hover: tuple[str, ...]  #: the settings-independent part of each point's hover text
    sizes: np.ndarray  #: marker size, px
    symbols: tuple[str, ...]  #: marker symbol per point
    labels: tuple[str, ...] | None = None  #: text beside each point (None past LABEL_LIMIT points)
    label_x: np.ndarray | None = None  #: px where each label starts (left-aligned)
    label_y: np.ndarray | None = None  #: px of each label's middle
    bounds: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)  #: x min, x max, y min, y max of all boxes

    def is_group(self, index: int) -> bool:
        """True if point ``index`` is a collapsed module."""
        return self.keys[index].startswith(GROUP_PREFIX)

    def __len__(self) -> int:
        return len(self.keys)


_CACHE: weakref.WeakKeyDictionary[nx.DiGraph, tuple[tuple[Any, ...], Layout]] = weakref.WeakKeyDictionary()


def forget_layouts() -> None:
    """Forget the cached layouts (for benchmarks of a cold draw)."""
    _CACHE.clear()


def layered_layout(graph: nx.DiGraph, *, sweeps: int = 8, boxes: Mapping[Any, Box] | None = None,
                   gap: float = 0.0, row_gap: float = 0.0, dummy_width: float = 1.0) -> Layout:
    """Layered layout of ``graph``, top to bottom; cached until the graph's nodes, edges or boxes change.

    Handles cycles (edges against node insertion order are reversed) and self-loops (ignored).

    Parameters
    ----------
    boxes: node -> (left, right, half height) around its anchor; a node not given is one unit square.
    gap: space between the boxes of neighbours in a row.
    row_gap: space between the tallest boxes of adjacent rows.
    dummy_width: width kept for an edge that passes through a row.

    >>> import networkx as nx
    >>> g = nx.DiGraph([("a", "b"), ("b", "c"), ("a", "c")])
    >>> lay = layered_layout(g)
    >>> [lay.positions[n][1] for n in "abc"]
    [0.0, -1.0, -2.0]
    >>> wide = layered_layout(nx.DiGraph([("a", "b"), ("a", "c")]), boxes={"b": (5, 60, 8), "c": (5, 20, 8)}, gap=10)
    >>> wide.positions["c"][0] - wide.positions["b"][0]  # b's label (60) + gap (10) + c's left (5)
    75.0
    """
    sized = tuple(boxes.get(v, _UNIT) for v in graph.nodes) if boxes is not None else None
    signature = (graph.number_of_nodes(), graph.number_of_edges(), sweeps, gap, row_gap, dummy_width,
                 hash(sized) if sized is not None else None)
    hit = _CACHE.get(graph)
    if hit is not None and hit[0] == signature:
        return hit[1]
    with paused_gc():
        result = _compute(graph, sweeps, sized, gap, row_gap, dummy_width)
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


def _compute(graph: nx.DiGraph, sweeps: int, sized: tuple[Box, ...] | None, gap: float, row_gap: float,
             dummy_width: float) -> Layout:
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
    half = dummy_width / 2
    left = [b[0] for b in sized] if sized is not None else [0.5] * n
    right = [b[1] for b in sized] if sized is not None else [0.5] * n
    tall = [b[2] for b in sized] if sized is not None else [0.5] * n
    left += [half] * (total - n)
    right += [half] * (total - n)
    tall += [0.0] * (total - n)

    def sep(a: int, b: int) -> float:  # distance between the anchors of neighbours a (left) and b
        return right[a] + gap + left[b]

    rows: list[list[int]] = [[] for _ in range(depth)]
    for v in _initial_order(total, n, up, down, layer):
        rows[layer[v]].append(v)
    x = [0.0] * total
    for row in rows:
        _place_centred(row, x, sep)

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
            _place_centred(row, x, sep)
        count = _crossings(rows, down, x)
        if count < best:
            best, best_rows = count, [list(row) for row in rows]
    rows = best_rows
    for row in rows:
        _place_centred(row, x, sep)

    for sweep in range(4):  # coordinates: pull toward neighbours, keep order and boxes apart
        downward = sweep % 2 == 0
        for r in range(1, depth) if downward else range(depth - 2, -1, -1):
            nbrs = up if downward else down
            _place_near(rows[r], nbrs, x, sep)

    # rows: each as tall as its tallest box; y of a row's anchors
    row_half = [max((tall[v] for v in row), default=0.0) for row in rows]
    row_y = [0.0] * depth
    for r in range(1, depth):
        row_y[r] = row_y[r - 1] - (row_half[r - 1] + row_gap + row_half[r])
    positions = {nodes[v]: (x[v], row_y[layer[v]]) for v in range(n)}
    ex: list[float] = []
    ey: list[float] = []
    for chain in chains:
        ex.extend(x[v] for v in chain)
        ey.extend(row_y[layer[v]] for v in chain)
        ex.append(np.nan)
        ey.append(np.nan)
    width = max(len(row) for row in rows)
    bounds = (min(x[v] - left[v] for v in range(total)), max(x[v] + right[v] for v in range(total)),
              min(row_y[layer[v]] - tall[v] for v in range(total)), max(row_y[layer[v]] + tall[v] for v in range(total)))
    return Layout(positions, depth, width, np.asarray(ex, dtype=float), np.asarray(ey, dtype=float), bounds)


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


def _place_centred(row: list[int], x: list[float], sep: Callable[[int, int], float]) -> None:
    """Neighbours as close as their boxes allow, the row centred on 0."""
    if not row:
        return
    at = [0.0]
    for a, b in zip(row, row[1:]):
        at.append(at[-1] + sep(a, b))
    offset = at[-1] / 2
    for v, p in zip(row, at):
        x[v] = p - offset


def _place_near(row: list[int], nbrs: list[list[int]], x: list[float], sep: Callable[[int, int], float]) -> None:
    """Move a row's nodes toward the mean x of their neighbours, keeping their order and their boxes apart."""
    if not row:
        return
    want = [sum(x[w] for w in nbrs[v]) / len(nbrs[v]) if nbrs[v] else x[v] for v in row]
    placed = list(want)
    for i in range(1, len(placed)):  # push right to make room
        placed[i] = max(placed[i], placed[i - 1] + sep(row[i - 1], row[i]))
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

    Only ``call_function`` nodes (attribute ``kind``) are grouped; a group of one is drawn as its node, and so
    are the calls of a leaf module used in several places (one ``relu`` module called after each convolution:
    its calls are not connected, and one point for them all would draw a loop).
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
        if key.startswith(GROUP_PREFIX) and (len(names) == 1 or _is_reused_leaf(graph, key, names)):
            for name in names:
                key_of[name] = name
    out = nx.DiGraph()
    final: dict[str, tuple[Any, ...]] = {}
    for node in graph.nodes:
        drawn = key_of[node]
        if drawn not in final:
            out.add_node(drawn)
            final[drawn] = tuple(members[drawn]) if drawn in members and drawn.startswith(GROUP_PREFIX) else (node,)
    out.add_edges_from((key_of[u], key_of[v]) for u, v in graph.edges if key_of[u] != key_of[v])
    return out, final


#: call_function nodes beyond which a graph opens grouped by module (:func:`auto_grouping`).
AUTO_GROUP_NODES = 40


def auto_grouping(graph: nx.DiGraph, *, limit: int = AUTO_GROUP_NODES) -> tuple[int | None, frozenset[str]]:
    """The grouping a graph opens with: ``(depth, expanded)`` for :func:`group_graph`, or ``(None, ())``.

    A graph of at most ``limit`` call_function nodes is drawn whole. A larger one is collapsed to its top-level
    modules; while one module holds more than half of the nodes (a wrapper such as a ``ModuleList`` of layers,
    or a model nested in another), it is opened one level, as long as that splits it into modules rather than
    into loose nodes. ResNet-50 opens as its stem nodes, ``layer1``..``layer4`` and its head; a transformer
    encoder as its embeddings, ``layers.0``..``layers.11`` and its head.

    >>> import networkx as nx
    >>> g = nx.DiGraph()
    >>> g.add_nodes_from((f"n{i}", {"kind": "call_function", "module": f"layers.{i // 5}.fc"}) for i in range(50))
    >>> auto_grouping(g)
    (1, frozenset({'layers'}))
    """
    modules = [d.get("module", "") for _, d in graph.nodes(data=True) if d.get("kind") == "call_function"]
    if len(modules) <= limit:
        return None, frozenset()
    expanded: set[str] = set()
    while True:
        counts = Counter(group_key(m, 1, expanded) for m in modules)
        counts.pop(None, None)
        if not counts:
            break
        path, size = counts.most_common(1)[0]
        if path is None or 2 * size <= len(modules):
            break
        inside = [m for m in modules if m == path or m.startswith(path + ".")]
        children = {group_key(m, 1, expanded | {path}) for m in inside}
        if None in children:  # opening it would scatter loose nodes: it is a leaf of the hierarchy
            break
        expanded.add(path)
    grouped = any(group_key(m, 1, expanded) is not None for m in modules)
    return (1, frozenset(expanded)) if grouped else (None, frozenset())


def _is_reused_leaf(graph: nx.DiGraph, key: str, names: list[Any]) -> bool:
    """True if every node of group ``key`` is a call of the module itself (no submodule) and they are not
    connected among themselves: one module applied in several places."""
    path = key[len(GROUP_PREFIX):]
    if any(graph.nodes[n].get("module", "") != path for n in names):
        return False
    return not nx.is_weakly_connected(graph.subgraph(names))


# -- label widths ------------------------------------------------------------------------------------------
_WIDE = frozenset("mwMW@%")


def text_width(text: str, size: float) -> float:
    """Width in px of one line of ``text`` at font ``size`` px, on the generous side.

    Arial and Liberation Sans average about 0.5 em a character and DejaVu Sans, the widest usual fallback,
    about 0.6 (digits 0.64): every character is given at least 0.6 em, digits 0.66, capitals 0.75 and
    m, w, M, W 0.98, so a label's box holds it in any of these fonts.

    >>> text_width("conv2d_1", 10)
    49.2
    """
    em = 0.0
    for ch in text:
        if ch in _WIDE:
            em += 0.98
        elif ch.isdigit():
            em += 0.66
        elif ch.isupper():
            em += 0.75
        else:
            em += 0.6
    return round(em * size, 3)
