"""Sensitivity to first order: every node's rounding error, propagated to the outputs by a few backward passes.

Running a plan that differs from all-FP32 (or all-low) in one node costs a re-run of everything downstream of it,
about half a forward pass per node: hundreds of forward passes for a model of a few hundred nodes. To first order,
the outputs change by ``J_i d_i``, where ``d_i`` is the change node ``i``'s own output undergoes (computed exactly:
one node evaluation) and ``J_i`` the Jacobian of the outputs with respect to it. With ``K`` random sign vectors
``r``, one backward pass each gives ``r . J_i d_i`` for every node at once, and ``mean_r (r . J_i d_i)^2`` is an
unbiased estimate of ``|J_i d_i|^2`` (relative standard deviation of the error about ``1/sqrt(2K)``); a set of nodes
sums its members' terms before squaring, so modules, subtrees and op types cost nothing more.

Where the error is read:

* **low (only these nodes low, from all-FP32)**: one node alone uses its exact local change. A set of nodes is
  split by the rounding events that make it up, so none is counted twice: each member's own rounding (weights,
  output) and the rounding of each input that comes from outside the set (inside it, the producer already
  rounded it).
* **kept (these nodes FP32, from all-low)**: the all-low error ``e`` is known exactly, and so is the cross term
  ``c = e . J d`` (one more backward pass with ``e`` as its cotangent). Keeping nodes FP32 removes a part ``-J d``
  of ``e``; where that part is uncorrelated with the rest, ``|J d|^2 = -c`` and the error left is
  ``sqrt(|e|^2 + c)``. (The gain is a small difference of large terms: a sampled ``|J d|^2`` would swamp it.)
  The change of a kept node that low nodes read is the one they see after rounding it again.

It needs simulated low precision (values in FP32) and the ``rel_l2`` metric; :func:`linear_errors` checks the
all-low error it predicts against the exact one (:attr:`LinearErrors.all_low_ratio`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch
from torch.fx import Node

from ..backends.simulate import to_storage
from .metrics import floating_leaves, rel_l2
from .runner import PlanRunner

__all__ = ["DEFAULT_PROBES", "LinearErrors", "linear_cost", "linear_errors"]

#: Random projections of the outputs (backward passes per batch): the estimate's relative spread is ~1/sqrt(2K).
DEFAULT_PROBES = 16
#: Probes taken together in one batched backward pass (memory: this many copies of the activations).
PROBE_BLOCK = 4


@dataclass(frozen=True, eq=False)
class LinearErrors:
    """The first-order error model of one set of batches: estimates the relative L2 error of any set of nodes run
    low from all-FP32 (:meth:`low_error`) or kept FP32 from all-low (:meth:`kept_error`)."""

    names: tuple[str, ...]  #: classified nodes, in graph order
    probes: int  #: random projections per batch
    ref_sq: float  #: |reference outputs|^2
    all_low_error: float  #: the exact all-low error (rel_l2)
    full: torch.Tensor  #: [batch, probe, node] r . J d for the node alone low (its exact local change)
    own: torch.Tensor  #: [batch, probe, node] the same without its activation inputs' rounding (weights, output)
    edges: tuple[tuple[int, int], ...]  #: (node, producer) per input edge; producer -1: a model input
    edge: torch.Tensor  #: [batch, probe, edge] r . J d for rounding that input alone
    cross_round: torch.Tensor  #: [node] e . J d kept FP32 (summed over batches), as low readers see it (rounded)
    cross_raw: torch.Tensor  #: [node] e . J d kept FP32, the change itself (kept readers, the outputs)
    readers: tuple[frozenset[int], ...]  #: per node, the classified nodes reading it (-1: the model's outputs)
    index: dict[str, int] = field(default_factory=dict)

    def _members(self, members: Iterable[str]) -> list[int]:
        return sorted({self.index[m] for m in members if m in self.index})

    def low_error(self, members: Iterable[str]) -> float:
        """Estimated error (rel_l2) when only ``members`` run low, from all-FP32."""
        chosen = self._members(members)
        if not chosen:
            return 0.0
        if len(chosen) == 1:
            total = self.full[:, :, chosen[0]]
        else:
            inside = set(chosen)
            total = self.own[:, :, chosen].sum(-1)
            outside = [k for k, (node, producer) in enumerate(self.edges) if node in inside and producer not in inside]
            if outside:
                total = total + self.edge[:, :, outside].sum(-1)
        return self._norm(float(total.pow(2).mean(1).sum()))

    def kept_error(self, members: Iterable[str]) -> float:
        """Estimated error (rel_l2) when only ``members`` stay FP32, from all-low."""
        chosen = self._members(members)
        base = self.all_low_error ** 2 * self.ref_sq
        if not chosen or not math.isfinite(base):
            return self.all_low_error
        inside = set(chosen) | {-1}
        raw = [i for i in chosen if self.readers[i] <= inside]  # read only by kept nodes or the outputs
        rounded = [i for i in chosen if i not in raw]
        cross = float(self.cross_raw[raw].sum() + self.cross_round[rounded].sum())
        return self._norm(max(base + cross, 0.0))

    def _norm(self, squared: float) -> float:
        if self.ref_sq <= 0:
            return 0.0 if squared == 0 else math.inf
        return math.sqrt(squared / self.ref_sq)

    @property
    def all_low_ratio(self) -> float:
        """The all-low error this model predicts over the exact one (about 1 where first order holds)."""
        predicted = self.low_error(self.names)
        return predicted / self.all_low_error if self.all_low_error > 0 else math.inf


def _leaves(value: object) -> list[torch.Tensor]:
    return floating_leaves(value)


def _difference(new: object, old: object) -> list[torch.Tensor] | None:
    a, b = _leaves(new), _leaves(old)
    if not a or len(a) != len(b) or any(x.shape != y.shape for x, y in zip(a, b)):
        return None
    return [(x.float() - y.float()).to(torch.bfloat16) for x, y in zip(a, b)]


def _producer(node: Node, classified: dict[Node, int]) -> int:
    """The classified node a value comes from, through getitem and other unclassified nodes; -1: a model input."""
    seen = node
    while seen not in classified:
        inputs = [a for a in seen.all_input_nodes if a.op != "get_attr"]
        if seen.op != "call_function" or not inputs:
            return -1
        seen = inputs[0]
    return classified[seen]


Key = tuple[str, int]  #: ("full" | "edge" | "raw" | "round", node or edge index)


def _products(outputs: list[torch.Tensor], targets: list[torch.Tensor], owners: list[tuple[int, int]],
              changes: dict[int, dict[Key, list[torch.Tensor]]], cotangents: list[torch.Tensor],
              direct: list[tuple[int, int, int]]) -> dict[Key, torch.Tensor]:
    """``cotangent . J d`` for every local change ``d``, for a batch of cotangents (leading dimension): backward
    passes from the outputs to every node, batched (``is_grads_batched``) where autograd allows.

    ``direct`` (node, leaf, output): a kept node's value that is itself a model output shows there unrounded
    while its low readers round it, so its rounded change gets the difference at that output added.
    """
    count = cotangents[0].shape[0]
    try:
        grads = torch.autograd.grad(outputs, targets, cotangents, retain_graph=True, allow_unused=True,
                                    is_grads_batched=True)
    except RuntimeError:  # an op without a batching rule: one backward pass per cotangent
        each = [torch.autograd.grad(outputs, targets, [c[p] for c in cotangents], retain_graph=True,
                                    allow_unused=True) for p in range(count)]
        grads = tuple(None if g[0] is None else torch.stack(g) for g in zip(*each))  # type: ignore[misc]
    out: dict[Key, torch.Tensor] = {}
    for (i, j), grad in zip(owners, grads):
        if grad is None:
            continue
        flat = grad.reshape(count, -1)
        for key, delta in changes.get(i, {}).items():
            if j < len(delta) and delta[j].numel() == flat.shape[1]:
                value = (flat @ delta[j].reshape(-1).float()).double()
                out[key] = out[key] + value if key in out else value
    for i, j, k in direct:
        raw, again = changes.get(i, {}).get(("raw", i)), changes.get(i, {}).get(("round", i))
        if raw is not None and again is not None and j < len(raw):
            gap = (raw[j].float() - again[j].float()).reshape(-1)
            value = (cotangents[k].reshape(count, -1) @ gap).double()
            key = ("round", i)
            out[key] = out[key] + value if key in out else value
    return out


def linear_cost(runner: PlanRunner, probes: int = DEFAULT_PROBES) -> int:
    """What :func:`linear_errors` costs, in op evaluations: a backward pass counted as two forward passes."""
    passes = 2 * (probes + 1) + 1
    calls = sum(1 for n in runner.order if n.op == "call_function")
    return (passes * calls + 4 * len(runner.classified)) * len(runner.batches)


class _Graph:
    """The classified nodes, who reads each, and every input edge (node, its producer, the argument node)."""

    def __init__(self, runner: PlanRunner) -> None:
        self.nodes = [n for n in runner.order if n.name in runner.classified]
        self.index = {n: i for i, n in enumerate(self.nodes)}
        readers: list[set[int]] = [set() for _ in self.nodes]
        for n in runner.order:
            for arg in n.all_input_nodes:
                if arg not in self.index or n.name in runner.removed:
                    continue
                if n.op == "output":
                    readers[self.index[arg]].add(-1)
                elif n in self.index:
                    readers[self.index[arg]].add(self.index[n])
        for i, n in enumerate(self.nodes):  # through getitem and other unclassified readers, to whom reads them
            for reader in n.users:
                if reader not in self.index and reader.op == "call_function":
                    readers[i] |= {self.index.get(u, -1) for u in reader.users}
        self.readers = tuple(frozenset(r) for r in readers)
        self.edges: list[tuple[int, int]] = []
        self.arguments: list[Node] = []
        for n in self.nodes:
            for arg in dict.fromkeys(a for a in n.all_input_nodes if a.op != "get_attr"):
                self.edges.append((self.index[n], _producer(arg, self.index)))
                self.arguments.append(arg)


def _local_changes(runner: PlanRunner, graph: _Graph, low: torch.dtype, b: int,
                   step: Callable[[int], None] | None) -> dict[int, dict[Key, list[torch.Tensor]]]:
    """Per node, batch ``b``: its output's exact change alone low (and per input edge), and kept FP32 in all-low."""
    ref_env, low_env = runner.base(torch.float32)[b], runner.base(low)[b]
    ref_real, low_real = runner.base_dtypes(torch.float32)[b], runner.base_dtypes(low)[b]
    changes: dict[int, dict[Key, list[torch.Tensor]]] = {}
    edge_at = 0
    for i, n in enumerate(graph.nodes):
        mine: dict[Key, list[torch.Tensor]] = {}
        found = _difference(runner.evaluate(n, ref_env, ref_real, low), ref_env[n])
        if found is not None:
            mine[("full", i)] = found
        while edge_at < len(graph.edges) and graph.edges[edge_at][0] == i:
            only = graph.arguments[edge_at]
            found = _difference(runner.evaluate(n, ref_env, ref_real, low, only=only), ref_env[n])
            if found is not None:
                mine[("edge", edge_at)] = found
            edge_at += 1
        kept = runner.evaluate(n, low_env, low_real, torch.float32)
        found = _difference(kept, low_env[n])
        if found is not None:
            mine[("raw", i)] = found
            again = torch.utils._pytree.tree_map(lambda x: to_storage(x, low), kept)
            mine[("round", i)] = _difference(again, low_env[n]) or found
        changes[i] = mine
        if step is not None:
            step(1)
    return changes


def linear_errors(runner: PlanRunner, low: torch.dtype, probes: int = DEFAULT_PROBES, seed: int = 0,
                  step: Callable[[int], None] | None = None) -> LinearErrors:
    """The first-order error model of ``runner``'s batches at ``low`` (module docs); ``step(1)`` after each node's
    local changes and each backward pass. The runner must simulate low precision (values in FP32)."""
    graph = _Graph(runner)
    count, batches = len(graph.nodes), len(runner.batches)
    full = torch.zeros(batches, probes, count, dtype=torch.float64)
    edge = torch.zeros(batches, probes, len(graph.edges), dtype=torch.float64)
    cross = {"raw": torch.zeros(count, dtype=torch.float64), "round": torch.zeros(count, dtype=torch.float64)}
    tables = {"full": full, "edge": edge}
    reference, all_low = runner.reference(), runner.outputs(runner.base(low))
    ref_sq = sum(float(r.double().pow(2).sum()) for r in reference)
    all_low_error = rel_l2(all_low, reference)  # as the metric computes it, to the last bit
    generator = torch.Generator().manual_seed(seed)
    per_batch = len(reference) // max(batches, 1)
    for b in range(batches):
        changes = _local_changes(runner, graph, low, b, step)
        kept = {i: {k: v for k, v in c.items() if k[0] in cross} for i, c in changes.items()}
        alone = {i: {k: v for k, v in c.items() if k[0] in tables} for i, c in changes.items()}
        env = runner.grad_run(b)
        outputs = _leaves(env[runner.order[-1]])
        live = [k for k, o in enumerate(outputs) if o.requires_grad]
        targets, owners = [], []
        slot = {id(outputs[k]): at for at, k in enumerate(live)}
        direct = []
        for i, n in enumerate(graph.nodes):
            for j, leaf in enumerate(_leaves(env[n])):
                if leaf.requires_grad:
                    targets.append(leaf)
                    owners.append((i, j))
                if id(leaf) in slot:
                    direct.append((i, j, slot[id(leaf)]))
        if not live or not targets:
            continue
        roots = [outputs[k] for k in live]
        errors = [(all_low[per_batch * b + k].float() - reference[per_batch * b + k].float())[None] for k in live]
        for (kind, i), value in _products(roots, targets, owners, kept, errors, direct).items():
            cross[kind][i] += value[0]
        for first in range(0, probes, PROBE_BLOCK):
            block = min(PROBE_BLOCK, probes - first)
            signs = [torch.randint(0, 2, (block, *r.shape), generator=generator).float() * 2 - 1 for r in roots]
            for (kind, i), value in _products(roots, targets, owners, alone, signs, []).items():
                tables[kind][b, first:first + block, i] = value
            if step is not None:
                step(block)
    edge_sum = torch.zeros_like(full)
    for k, (i, _) in enumerate(graph.edges):
        edge_sum[:, :, i] += edge[:, :, k]
    return LinearErrors(tuple(n.name for n in graph.nodes), probes, ref_sq, all_low_error, full, full - edge_sum,
                        tuple(graph.edges), edge, cross["round"], cross["raw"], graph.readers,
                        {n.name: i for i, n in enumerate(graph.nodes)})
