"""The layered DAG layout and module grouping (pure networkx; no torch model needed)."""

from __future__ import annotations

import itertools
import math
import time

import networkx as nx
import numpy as np
import pytest

from mixprec_explorer.viz.layout import GROUP_PREFIX, group_graph, group_key, layered_layout


def _stack(blocks: int) -> nx.DiGraph:
    """A residual chain shaped like examples.layer_stack: x -> (linear, norm, gelu) -> add(x, gelu) -> ..."""
    g = nx.DiGraph()
    prev = "x"
    g.add_node(prev)
    for b in range(blocks):
        lin, norm, act, add = f"lin{b}", f"norm{b}", f"act{b}", f"add{b}"
        g.add_edges_from([(prev, lin), (lin, norm), (norm, act), (act, add), (prev, add)])
        prev = add
    return g


def _crossings(g: nx.DiGraph, pos: dict) -> int:
    """Crossings between unit-span edges of adjacent layers."""
    by_layer: dict[float, list[tuple[float, float]]] = {}
    for u, v in g.edges:
        if pos[u][1] - pos[v][1] == 1:
            by_layer.setdefault(pos[u][1], []).append((pos[u][0], pos[v][0]))
    count = 0
    for edges in by_layer.values():
        for (a1, b1), (a2, b2) in itertools.combinations(edges, 2):
            if (a1 - a2) * (b1 - b2) < 0:
                count += 1
    return count


@pytest.mark.parametrize("graph", [_stack(5), nx.gn_graph(60, seed=3).reverse(), nx.balanced_tree(2, 4, nx.DiGraph)])
def test_edges_point_down_and_rows_keep_a_gap(graph: nx.DiGraph) -> None:
    lay = layered_layout(graph)
    assert set(lay.positions) == set(graph.nodes)
    for u, v in graph.edges:
        assert lay.positions[v][1] < lay.positions[u][1], (u, v)
    rows: dict[float, list[float]] = {}
    for x, y in lay.positions.values():
        rows.setdefault(y, []).append(x)
    for xs in rows.values():
        xs.sort()
        assert all(b - a >= 1 - 1e-9 for a, b in zip(xs, xs[1:]))
    assert lay.layers == len(rows)


def test_layers_are_longest_paths_and_sources_sit_above_their_consumer() -> None:
    g = nx.DiGraph([("a", "b"), ("b", "c"), ("c", "d"), ("const", "d")])
    lay = layered_layout(g)
    assert [lay.positions[n][1] for n in "abcd"] == [0.0, -1.0, -2.0, -3.0]
    assert lay.positions["const"][1] == -2.0  # pulled down next to d, not left at the top


def test_one_polyline_per_edge_through_dummy_nodes() -> None:
    g = _stack(3)
    lay = layered_layout(g)
    assert np.isnan(lay.edge_x).sum() == g.number_of_edges()
    # the skip edge x -> add0 spans 4 layers: its polyline has 5 points, one per layer
    first = lay.edge_y[: np.flatnonzero(np.isnan(lay.edge_y))[0]]
    assert len(first) >= 2
    segments = np.split(lay.edge_y, np.flatnonzero(np.isnan(lay.edge_y)) + 1)
    lengths = sorted(len(s[~np.isnan(s)]) for s in segments if len(s[~np.isnan(s)]))
    assert lengths[-1] == 5


def test_skip_edges_do_not_run_over_the_chain() -> None:
    lay = layered_layout(_stack(4))
    # dummies of the skip edge share each middle layer with the chain, so the chain is not at the skip's x
    assert lay.width == 2
    assert lay.positions["lin0"][0] != lay.positions["x"][0] or lay.positions["add0"][0] != lay.positions["x"][0]


def test_barycentre_sweeps_remove_avoidable_crossings() -> None:
    # two layers whose insertion order crosses every edge; a crossing-free order exists
    g = nx.DiGraph()
    g.add_nodes_from([f"t{i}" for i in range(6)])
    g.add_edges_from((f"t{i}", f"b{5 - i}") for i in range(6))
    g.add_edges_from((f"b{i}", f"c{i}") for i in range(6))
    lay = layered_layout(g)
    assert _crossings(g, lay.positions) == 0


def test_cycles_and_self_loops_are_laid_out() -> None:
    g = nx.DiGraph([("a", "b"), ("b", "c"), ("c", "a"), ("c", "d"), ("d", "d")])
    lay = layered_layout(g)
    assert set(lay.positions) == {"a", "b", "c", "d"}
    assert lay.positions["a"][1] > lay.positions["b"][1] > lay.positions["c"][1]  # insertion order breaks it


def test_empty_graph() -> None:
    lay = layered_layout(nx.DiGraph())
    assert lay.positions == {} and lay.layers == 0


def test_layout_is_cached_per_graph_until_it_changes() -> None:
    g = _stack(3)
    first = layered_layout(g)
    assert layered_layout(g) is first
    g.add_edge("add2", "tail")
    again = layered_layout(g)
    assert again is not first and "tail" in again.positions


def test_ten_thousand_nodes_lay_out_fast() -> None:
    g = _stack(2500)  # 10,001 nodes, 12,500 edges
    start = time.perf_counter()
    lay = layered_layout(g)
    elapsed = time.perf_counter() - start
    assert len(lay.positions) == g.number_of_nodes()
    assert elapsed < 5.0, f"layout of 10k nodes took {elapsed:.2f} s"
    start = time.perf_counter()
    layered_layout(g)
    assert time.perf_counter() - start < 0.1  # cached


@pytest.mark.parametrize(("module", "depth", "expanded", "expected"), [
    ("layer1.0.conv1", 1, (), "layer1"),
    ("layer1.0.conv1", 2, (), "layer1.0"),
    ("layer1.0.conv1", 9, (), "layer1.0.conv1"),
    ("layer1.0.conv1", 1, ("layer1",), "layer1.0"),
    ("layer1.0.conv1", 1, ("layer1", "layer1.0"), "layer1.0.conv1"),
    ("layer1.0.conv1", 1, ("layer1", "layer1.0", "layer1.0.conv1"), None),
    ("", 1, (), None),
    ("fc", None, (), None),
])
def test_group_key(module: str, depth: int | None, expanded: tuple[str, ...], expected: str | None) -> None:
    assert group_key(module, depth, frozenset(expanded)) == expected


def test_group_graph_collapses_modules_and_keeps_order() -> None:
    g = nx.DiGraph()
    g.add_node("x", kind="input", module="")
    for b in range(3):
        for part in ("fc", "act"):
            g.add_node(f"{part}{b}", kind="call_function", module=f"blocks.{b}.{part}")
        g.add_node(f"add{b}", kind="call_function", module="")
    g.add_node("out", kind="output", module="")
    prev = "x"
    for b in range(3):
        g.add_edges_from([(prev, f"fc{b}"), (f"fc{b}", f"act{b}"), (f"act{b}", f"add{b}"), (prev, f"add{b}")])
        prev = f"add{b}"
    g.add_edge(prev, "out")

    grouped, members = group_graph(g, 2)
    assert list(grouped.nodes)[:3] == ["x", GROUP_PREFIX + "blocks.0", "add0"]
    assert members[GROUP_PREFIX + "blocks.1"] == ("fc1", "act1")
    assert grouped.has_edge("x", GROUP_PREFIX + "blocks.0") and grouped.has_edge(GROUP_PREFIX + "blocks.0", "add0")
    assert not any(u == v for u, v in grouped.edges)

    one, members = group_graph(g, 1)  # "blocks" is used three times: a cycle the layout must survive
    assert members[GROUP_PREFIX + "blocks"] == ("fc0", "act0", "fc1", "act1", "fc2", "act2")
    assert not nx.is_directed_acyclic_graph(one)
    lay = layered_layout(one)
    assert set(lay.positions) == set(one.nodes)
    assert all(math.isfinite(x) for x, _ in lay.positions.values())

    opened, members = group_graph(g, 2, frozenset({"blocks.1"}))
    assert GROUP_PREFIX + "blocks.1" not in members  # each child has one node: drawn as that node
    assert members["fc1"] == ("fc1",) and GROUP_PREFIX + "blocks.0" in members


def test_sweeps_reduce_crossings_on_random_layered_graphs() -> None:
    rng = np.random.default_rng(7)
    before = after = 0
    for _ in range(5):
        g = nx.DiGraph()
        layers = [[f"{r}_{i}" for i in range(8)] for r in range(4)]
        for r in range(3):
            for u in layers[r]:
                for v in rng.choice(layers[r + 1], size=2, replace=False):
                    g.add_edge(u, str(v))
        before += _crossings(g, layered_layout(g, sweeps=0).positions)
        after += _crossings(g, layered_layout(g, sweeps=4).positions)
    assert after < before
