"""The layered DAG layout and module grouping (pure networkx; no torch model needed)."""

from __future__ import annotations

import itertools
import math

import networkx as nx
import numpy as np
import pytest

from mixprec_explorer.viz.layout import (
    GROUP_PREFIX,
    auto_grouping,
    group_graph,
    group_key,
    layered_layout,
    text_width,
)


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


def test_ten_thousand_nodes_are_laid_out_and_cached() -> None:
    g = _stack(2500)  # 10,001 nodes, 12,500 edges (its speed is measured by benchmarks/run.py figure)
    lay = layered_layout(g)
    assert len(lay.positions) == g.number_of_nodes()
    assert layered_layout(g) is lay


def test_boxes_keep_neighbours_apart_by_their_width_and_rows_by_their_height() -> None:
    # a fan-out: four children of one node, each with a label of its own length to the right of its marker
    g = nx.DiGraph([("top", f"c{i}") for i in range(4)] + [(f"c{i}", "bottom") for i in range(4)])
    boxes = {f"c{i}": (6.0, 10.0 + 40.0 * i, 8.0) for i in range(4)}
    boxes["top"] = boxes["bottom"] = (6.0, 30.0, 20.0)
    lay = layered_layout(g, boxes=boxes, gap=12.0, row_gap=10.0)
    xs = sorted((lay.positions[f"c{i}"][0], f"c{i}") for i in range(4))
    for (xa, a), (xb, b) in zip(xs, xs[1:]):
        assert xb - boxes[b][0] >= xa + boxes[a][1] + 12.0 - 1e-9, (a, b)  # box edges at least the gap apart
    ys = [lay.positions[n][1] for n in ("top", "c0", "bottom")]
    assert ys[0] - ys[1] == pytest.approx(20.0 + 10.0 + 8.0) and ys[1] - ys[2] == pytest.approx(8.0 + 10.0 + 20.0)
    x0, x1, y0, y1 = lay.bounds
    assert x0 == pytest.approx(min(lay.positions[n][0] - boxes[n][0] for n in boxes))
    assert x1 == pytest.approx(max(lay.positions[n][0] + boxes[n][1] for n in boxes))
    assert (y0, y1) == pytest.approx((ys[2] - 20.0, ys[0] + 20.0))
    assert layered_layout(g, boxes=boxes, gap=12.0, row_gap=10.0) is lay  # same boxes: cached
    wider = {**boxes, "c0": (6.0, 200.0, 8.0)}
    assert layered_layout(g, boxes=wider, gap=12.0, row_gap=10.0) is not lay  # new boxes: laid out again


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


def test_a_module_called_in_several_places_is_drawn_as_its_calls() -> None:
    # one relu module applied after each of two convolutions, as in a torchvision Bottleneck
    g = nx.DiGraph()
    for name, module in (("conv1", "block.conv1"), ("relu1", "block.relu"), ("conv2", "block.conv2"),
                         ("relu2", "block.relu"), ("fc1", "block.mlp.fc1"), ("fc2", "block.mlp.fc2")):
        g.add_node(name, kind="call_function", module=module)
    nx.add_path(g, ["conv1", "relu1", "conv2", "relu2", "fc1", "fc2"])
    grouped, members = group_graph(g, 2, frozenset({"block"}))
    assert "relu1" in members and "relu2" in members and GROUP_PREFIX + "block.relu" not in members
    assert members[GROUP_PREFIX + "block.mlp"] == ("fc1", "fc2")  # connected calls still collapse
    assert nx.is_directed_acyclic_graph(grouped)


def _modules_graph(modules: list[str]) -> nx.DiGraph:
    g = nx.DiGraph()
    g.add_node("x", kind="input", module="")
    for i, module in enumerate(modules):
        g.add_node(f"n{i}", kind="call_function", module=module)
    nx.add_path(g, ["x", *(f"n{i}" for i in range(len(modules)))])
    return g


@pytest.mark.parametrize(("modules", "expected"), [
    # small graphs are drawn whole
    (["fc"] * 10, (None, frozenset())),
    # ResNet: no top-level module holds half the nodes: stem nodes, layer1..layer4, head
    (["conv1", "bn1"] + ["layer1.0.c"] * 10 + ["layer2.0.c"] * 14 + ["layer3.0.c"] * 20 + ["layer4.0.c"] * 10
     + ["fc"], (1, frozenset())),
    # an encoder: "layers" holds nearly all: opened into layers.0..layers.5, each of which is no majority
    (["embed"] + [f"layers.{i}.attn" for i in range(6) for _ in range(9)] + ["head"], (1, frozenset({"layers"}))),
    # a model wrapped in another: opened down to where the weight spreads out
    ([f"model.encoder.layer.{i}.fc" for i in range(6) for _ in range(9)], (1, frozenset({"model", "model.encoder",
                                                                                          "model.encoder.layer"}))),
    # one big leaf module: not scattered into loose nodes
    (["body"] * 50 + ["head"], (1, frozenset())),
    # nothing but root-level ops: no module to group by
    ([""] * 50, (None, frozenset())),
])
def test_auto_grouping_opens_wrappers_until_no_module_holds_most_nodes(modules: list[str], expected: tuple) -> None:
    assert auto_grouping(_modules_graph(modules)) == expected


def test_text_width_is_at_least_six_tenths_of_the_font_size_per_character() -> None:
    for text in ("x", "layer_norm · norm", "scaled_dot_product_attention", "iiii", "MWMW", "12345"):
        assert text_width(text, 11) >= 0.6 * 11 * len(text)
    assert text_width("MMMM", 11) > text_width("nnnn", 11) > 0
