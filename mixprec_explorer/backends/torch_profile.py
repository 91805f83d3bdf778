"""Profile a planned graph: a ``record_function`` range per node, observed dtypes, and profiler time per node.

Latency comes from ``torch.profiler`` events, each counted once. An op's self CPU time (CPU), or the kernels it
launched (CUDA), goes to the innermost FX node range around it; everything else is reported unattributed. With
``mode="compiled"``, Inductor fuses nodes, so its kernels are reported unattributed and per-node times are not
guessed.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch.fx import Node
from torch.utils import _pytree as pytree

from .simulate import to_storage
from .torch_plan import OWNER, RESULT, ROLE, fetch_attr

__all__ = ["NODE_RANGE", "RUN_RANGE", "RUN_WALL", "attribute_events", "cupti_released", "iter_node_values",
           "merge_attributions", "middle_runs", "observe_dtypes", "profiled_runs", "run_ranged", "run_simulated",
           "simulated_value"]

NODE_RANGE = "mixprec.node/"  #: record_function prefix around each rewritten node: mixprec.node/<owner>/<role>
RUN_RANGE = "mixprec.run/"  #: record_function prefix around each profiled run
RUN_WALL = "<profiled run wall time>"  #: key under which attribute_events returns each run's own wall time
_RANGES = (NODE_RANGE, RUN_RANGE)
_TEARDOWN = "TEARDOWN_CUPTI"


@contextlib.contextmanager
def cupti_released(device_type: str) -> Iterator[None]:
    """Around a CUDA ``torch.profiler`` session: let Kineto release CUPTI when it ends (``TEARDOWN_CUPTI=1``).

    Kineto keeps CUPTI attached after profiling unless that variable is "1" (pytorch/pytorch#144455), and every
    later kernel launch in the process pays for it: measured on an H200, compiled PyTorch's encoder ran 13 % slower
    in every later timing. Left as the user set it if set; CUDA before 12.6 keeps CUPTI (its teardown can crash
    with CUDA graphs).
    """
    found = re.match(r"(\d+)\.(\d+)", torch.version.cuda or "")
    newer = found is not None and (int(found[1]), int(found[2])) >= (12, 6)
    if device_type != "cuda" or not newer or _TEARDOWN in os.environ:
        yield
        return
    os.environ[_TEARDOWN] = "1"
    try:
        yield
    finally:
        os.environ.pop(_TEARDOWN, None)


# -- running node by node ---------------------------------------------------------------------------------------
def iter_node_values(gm: torch.fx.GraphModule, flat_inputs: Sequence[Any], *, ranges: bool = False,
                     simulate: bool = False) -> Iterator[tuple[Node, Any]]:
    """Run ``gm`` node by node, yielding (node, value); values are freed after their last use.

    With ``ranges``, each rewritten node runs inside a ``record_function`` range ``mixprec.node/<owner>/<role>``.
    With ``simulate``, low precision is simulated (:mod:`~mixprec_explorer.backends.simulate`): every floating
    value is held in FP32, rounded where the node's real dtype (its ``meta["val"]``, as the plan set it) is low.
    """
    nodes = list(gm.graph.nodes)
    last_use: dict[Node, int] = {}
    for index, node in enumerate(nodes):
        for arg in node.all_input_nodes:
            last_use[arg] = index
    env: dict[Node, Any] = {}
    supplied = iter(flat_inputs)
    for index, node in enumerate(nodes):
        if node.op == "output":
            return
        args = torch.fx.node.map_arg(node.args, env.__getitem__)
        kwargs = torch.fx.node.map_arg(node.kwargs, env.__getitem__)
        owner = node.meta.get(OWNER) if ranges else None
        if node.op == "placeholder":
            value = next(supplied)
        elif node.op == "get_attr":
            value = fetch_attr(gm, node.target)
        elif node.op == "call_function" and owner is not None:
            with torch.profiler.record_function(f"{NODE_RANGE}{owner}/{node.meta.get(ROLE, 'op')}"):
                value = node.target(*args, **kwargs)
        elif node.op == "call_function":
            value = node.target(*args, **kwargs)
        elif node.op == "call_module":
            value = gm.get_submodule(node.target)(*args, **kwargs)
        else:  # call_method
            value = getattr(args[0], node.target)(*args[1:], **kwargs)
        if simulate and node.op != "placeholder":
            value = simulated_value(value, node.meta.get("val"))
        env[node] = value
        yield node, value
        for arg in node.all_input_nodes:
            if last_use.get(arg) == index:
                env.pop(arg, None)


def simulated_value(value: Any, real: Any) -> Any:
    """``value`` as simulation stores it, given the node's real value (or its fake, ``meta["val"]``)."""
    leaves, spec = pytree.tree_flatten(value)
    reals = pytree.tree_leaves(real)
    if len(reals) != len(leaves):
        reals = [None] * len(leaves)
    return pytree.tree_unflatten([to_storage(v, getattr(r, "dtype", None)) for v, r in zip(leaves, reals)], spec)


def run_simulated(gm: torch.fx.GraphModule, flat_inputs: Sequence[Any]) -> tuple[Any, ...]:
    """The graph's flat outputs with low precision simulated (FP32 values rounded as the plan's dtypes say)."""
    output = next(n for n in gm.graph.nodes if n.op == "output")
    wanted = set(output.all_input_nodes)
    kept: dict[Node, Any] = {}
    with torch.no_grad():
        for node, value in iter_node_values(gm, flat_inputs, simulate=True):
            if node in wanted:
                kept[node] = value
    result = torch.fx.node.map_arg(output.args[0], kept.__getitem__)
    return tuple(pytree.tree_leaves(result))


def _tensor_dtypes(value: Any) -> tuple[torch.dtype, ...]:
    return tuple(x.dtype for x in pytree.tree_leaves(value) if isinstance(x, torch.Tensor))


def _observe(steps: Iterator[tuple[Node, Any]]) -> dict[str, tuple[tuple, tuple]]:
    """Per original node, from one run's (node, value) steps: (dtypes its op computed with, dtypes its users got)."""
    seen: dict[str, tuple[tuple, tuple]] = {}
    produced: dict[Node, tuple[torch.dtype, ...]] = {}
    for node, value in steps:
        produced[node] = _tensor_dtypes(value)
        owner = node.meta.get(OWNER)
        if owner is None:
            continue
        ins, outs = seen.get(owner, ((), ()))
        if node.meta.get(ROLE) == "op":
            ins = tuple(produced[a][0] if produced.get(a) else None for a in node.all_input_nodes)
        if node.meta.get(RESULT):
            outs = produced[node]
        seen[owner] = (ins, outs)
    return seen


def observe_dtypes(gm: torch.fx.GraphModule, flat_inputs: Sequence[Any]) -> dict[str, tuple[tuple, tuple]]:
    """Per original node, from one real run: (dtypes its op computed with, dtypes its users received)."""
    with torch.no_grad():
        return _observe(iter_node_values(gm, flat_inputs))


def run_ranged(gm: torch.fx.GraphModule, flat_inputs: Sequence[Any], *, observe: bool = False
               ) -> dict[str, tuple[tuple, tuple]] | None:
    """One run of a planned graph with a ``record_function`` range per rewritten node (for the profiler); with
    ``observe``, also what :func:`observe_dtypes` returns (a slow plan's profiled run does both at once)."""
    steps = iter_node_values(gm, flat_inputs, ranges=True)
    if observe:
        return _observe(steps)
    for _ in steps:
        pass
    return None



# -- attributing profiler events --------------------------------------------------------------------------------
def _locate(event: Any) -> tuple[str | None, int | None]:
    """(``owner/role`` of the innermost node range holding ``event`` or None, run index or None outside runs)."""
    owner = None
    current = event
    while current is not None:
        name = current.name
        if owner is None and name.startswith(NODE_RANGE):
            owner = name[len(NODE_RANGE):]
        if name.startswith(RUN_RANGE):
            return owner, int(name[len(RUN_RANGE):])
        current = current.cpu_parent
    return owner, None



def _own_kernel_us(event: Any) -> float:
    """Microseconds of the kernels listed on ``event`` and not again on one of its CPU children.

    Seen on an H100 with torch 2.11: Kineto's "Activity Buffer Request" event, a child of ``aten::addmm``,
    lists the same GEMM kernel as its parent; counting both doubled the layer sum.
    """
    own = Counter((k.name, round(float(k.duration), 3)) for k in event.kernels)
    for child in getattr(event, "cpu_children", ()) or ():
        own -= Counter((k.name, round(float(k.duration), 3)) for k in child.kernels)
    return float(sum(duration * count for (_, duration), count in own.items()))


def attribute_events(events: Sequence[Any], runs: int, device_type: str
                     ) -> tuple[dict[str, list[float]], dict[str, list[float]], dict[str, dict[str, float]], float]:
    """Split profiler time over node ranges, each op's time counted once.

    CPU: every event's self CPU time (our own ranges' self time is interpreter overhead and is left out); CUDA:
    the kernels each CPU-side event launched. Returns per-run microseconds per ``owner/role`` range and per
    unattributed event name (plus each run's own wall time under ``RUN_WALL``), the ops or kernels seen per range (microseconds), and the device time of kernels
    that no CPU-side event launched (CUDA only, microseconds summed over all runs).
    """
    ranged: dict[str, list[float]] = {}
    loose: dict[str, list[float]] = {}
    kernels: dict[str, dict[str, float]] = {}
    cuda = device_type == "cuda"
    linked = total_device = 0.0
    for event in events:
        if event.name.startswith(RUN_RANGE) and event.cpu_parent is None:
            index = int(event.name[len(RUN_RANGE):])
            if index < runs:
                loose.setdefault(RUN_WALL, [0.0] * runs)[index] = float(event.cpu_time_total)
        if str(getattr(event, "device_type", "CPU")).rsplit(".", 1)[-1] != "CPU":
            # Kineto mirrors record_function ranges onto the GPU timeline as user annotations: not kernels
            if cuda and not getattr(event, "is_user_annotation", False) and not event.name.startswith(_RANGES):
                total_device += event.time_range.elapsed_us()
            continue
        name = event.name
        if cuda:
            value = _own_kernel_us(event)
            linked += value
        elif name.startswith(NODE_RANGE) or name.startswith(RUN_RANGE):
            value = 0.0
        else:
            value = float(event.self_cpu_time_total)
        if value <= 0:
            continue
        owner, run = _locate(event)
        if run is None or run >= runs:
            continue
        if owner is None:
            loose.setdefault(name, [0.0] * runs)[run] += value
            continue
        ranged.setdefault(owner, [0.0] * runs)[run] += value
        per = kernels.setdefault(owner.rsplit("/", 1)[0], {})
        names = [k.name for k in event.kernels] if cuda else [name]
        for kernel in names:
            per[kernel] = per.get(kernel, 0.0) + value / max(1, len(names))
    orphan = max(0.0, total_device - linked) if cuda else 0.0
    return ranged, loose, kernels, orphan


Attribution = tuple[dict[str, list[float]], dict[str, list[float]], dict[str, dict[str, float]], float]


def merge_attributions(a: Attribution, runs_a: int, b: Attribution, runs_b: int) -> Attribution:
    """Two :func:`attribute_events` results of ``runs_a`` and ``runs_b`` runs as one of ``runs_a + runs_b``."""
    def joined(x: dict[str, list[float]], y: dict[str, list[float]]) -> dict[str, list[float]]:
        return {k: x.get(k, [0.0] * runs_a) + y.get(k, [0.0] * runs_b) for k in dict.fromkeys([*x, *y])}

    kernels = {owner: dict(per) for owner, per in a[2].items()}
    for owner, per in b[2].items():
        mine = kernels.setdefault(owner, {})
        for name, us in per.items():
            mine[name] = mine.get(name, 0.0) + us
    return joined(a[0], b[0]), joined(a[1], b[1]), kernels, a[3] + b[3]


def profiled_runs(run: Callable[[], Any], count: int, device_type: str, synchronize: Callable[[], None], *,
                  budget_s: float) -> tuple[Attribution, int]:
    """(:func:`attribute_events` over profiled runs, how many ran): one first, then as many more of ``count`` as fit
    in ``budget_s`` judged by the first one's cost, the profiler's event processing included (a graph of many small
    ops, FP16 depthwise convolutions on a CPU, makes thousands of events per run)."""
    activities = [torch.profiler.ProfilerActivity.CPU]
    if device_type == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)

    def session(runs: int) -> Attribution:
        with cupti_released(device_type), torch.profiler.profile(activities=activities) as prof:
            for index in range(runs):
                with torch.profiler.record_function(f"{RUN_RANGE}{index}"):
                    run()
                synchronize()
        return attribute_events(prof.events(), runs, device_type)

    started = time.perf_counter()
    result = session(1)
    more = min(max(0, count - 1), int(budget_s / max(time.perf_counter() - started, 1e-9)))
    if more > 0:
        result = merge_attributions(result, 1, session(more), more)
    return result, 1 + more


def middle_runs(totals: Sequence[float]) -> list[int]:
    """Indices of the runs whose totals form the middle half (at least one): a median-like, additive choice."""
    order = sorted(range(len(totals)), key=lambda i: totals[i])
    cut = len(order) // 4
    return order[cut:len(order) - cut] or order[:1]
