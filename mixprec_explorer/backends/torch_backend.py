"""PyTorch backend: the plan applied to a copy of the graph as Torch-TensorRT's autocast pass does; CPU or CUDA.

Applying a plan (Torch-TensorRT 2.11 ``lowering/passes/rule_based_autocast.py``) to a fresh ``ep.module()``:

* Nodes classified low (rule ``low_precision``) or high (``excluded_node``, ``excluded_op``, ``io_range``,
  ``depth``) get an ``aten.to.dtype`` cast of every tensor argument whose dtype differs, inserted just before
  them, one per consumer. Other nodes (explicit typing, ``getitem``, ``wrap_with_autocast`` regions) stay as the
  model gives them. Assert nodes are dropped and ``detach`` bypassed, as the pre-lowering passes do.
* Parameters are cast like any argument. With ``fold_weight_casts`` (the default) a weight's cast is done once
  when compiling, as TensorRT folds casts of constants, so it costs nothing per run.
* The pass decides by ``meta["val"]`` dtypes and re-types them to the target, even where the op really yields
  another dtype (``arange``, an explicit ``.to()``). Here each node's real dtype is propagated with fake tensors
  and floats are cast by it. Integer and bool arguments that the pass would cast (embedding indices) are kept,
  because PyTorch kernels reject float indices; ``cast_non_float=True`` casts them anyway. Notes list both cases.

FP32 accumulation (``conversion/impl/matmul.py``) applies to matmul-family nodes (linear, matmul, mm, bmm, mv,
dot, addmm) whose plan says ``accumulate_dtype=float32`` and whose first input really is FP16. Both operands are
cast to FP32, the product is computed in FP32 and cast back to FP16. Linear's bias and addmm's input are then
added in FP16, as the linear and addmm converters do. BF16 is not handled, as in Torch-TensorRT.

Latency comes from ``torch.profiler`` events, each counted once. An op's self CPU time (CPU), or the kernels it
launched (CUDA), goes to the innermost FX node range around it; everything else is reported unattributed. With
``mode="compiled"``, Inductor fuses nodes, so its kernels are reported unattributed and per-node times are not
guessed.
"""

from __future__ import annotations

import contextlib
import copy
import operator
import platform
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch.fx import Node
from torch.utils import _pytree as pytree

from ..errors import BackendUnavailable
from ..records import EndToEnd, LayerRecord
from ..settings import Settings
from .base import CacheKey, Compiled, Profile
from .timing import summarize_ms, time_runs
from .worker import report_progress

if TYPE_CHECKING:
    from ..explorer import Explorer
    from ..policy import PrecisionPlan

__all__ = ["MODES", "PlannedGraph", "TorchBackend", "TorchProgram", "apply_plan", "attribute_events", "flatten_inputs",
           "iter_node_values", "observe_dtypes", "run_ranged", "time_runs", "to_device",
           "load_module", "summarize_ms"]

NAME = "torch"
MODES = ("eager", "compiled")
OWNER = "mixprec_node"  #: node meta key: the original FX node a rewritten node belongs to
ROLE = "mixprec_role"  #: node meta key: "op" (the model's node), "cast" (autocast cast) or "acc" (FP32 accumulation)
RESULT = "mixprec_result"  #: node meta key: True on the node whose value the original node's users receive
NODE_RANGE = "mixprec.node/"  #: record_function prefix around each rewritten node: mixprec.node/<owner>/<role>
RUN_RANGE = "mixprec.run/"  #: record_function prefix around each profiled run
RUN_WALL = "<profiled run wall time>"  #: key under which attribute_events returns each run's own wall time

_LOW_RULES = frozenset({"low_precision"})
_HIGH_RULES = frozenset({"excluded_node", "excluded_op", "io_range", "depth"})
_aten = torch.ops.aten
_ACC_TARGETS = {_aten.linear.default, _aten.matmul.default, _aten.mm.default, _aten.bmm.default, _aten.mv.default,
                _aten.dot.default, _aten.addmm.default}
_UNCLASSIFIED = {operator.getitem, torch.ops.higher_order.wrap_with_autocast}
_DROPPED = {_aten._assert_scalar.default, _aten._assert_tensor_metadata.default}
_MAX_LISTED = 6


# -- applying a plan ------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class PlannedGraph:
    """A runnable copy of the model with the plan's casts in it, and what applying the plan did."""

    module: torch.fx.GraphModule  #: unlifted graph module; call it with the model's positional inputs
    device: str  #: where its weights live ("cpu", "cuda:0")
    targets: dict[str, torch.dtype]  #: classified node -> dtype its inputs are cast to
    fp32_acc_nodes: tuple[str, ...]  #: nodes with FP32 accumulation (cast path on CPU, FP32 reduction on CUDA)
    casts_inserted: int  #: aten.to.dtype nodes inserted (before folding)
    weight_casts_folded: int  #: of those, casts of weights done once at compile time
    notes: tuple[str, ...] = ()  #: where this copy departs from the pass's bookkeeping, in words
    fp32_reduction: bool = False  #: run with cuBLAS FP16 reduced-precision reduction off (CUDA FP32 accumulation)

    @contextlib.contextmanager
    def precision(self) -> Iterator[None]:
        """Context every run of this graph goes through: FP32 reduction in FP16 GEMMs where the plan asks for it."""
        if not self.fp32_reduction:
            yield
            return
        flags = torch.backends.cuda.matmul
        before = flags.allow_fp16_reduced_precision_reduction
        flags.allow_fp16_reduced_precision_reduction = False
        try:
            yield
        finally:
            flags.allow_fp16_reduced_precision_reduction = before


def load_module(ep: torch.export.ExportedProgram, device: str = "cpu") -> torch.fx.GraphModule:
    """``ep.module()`` on ``device``; the program itself is never moved (a copy is, for another device)."""
    if torch.device(device).type != "cpu":
        from torch.export.passes import move_to_device_pass

        ep = move_to_device_pass(copy.deepcopy(ep), device)
    return ep.module()


def _target_dtype(rec: Any) -> torch.dtype | None:
    if rec is None:
        return None
    if rec.rule in _LOW_RULES:
        return rec.dtype
    if rec.rule in _HIGH_RULES:
        return torch.float32
    return None


def _listed(items: Sequence[str]) -> str:
    shown = ", ".join(items[:_MAX_LISTED])
    return shown + (f" and {len(items) - _MAX_LISTED} more" if len(items) > _MAX_LISTED else "")


def _fake_mode(graph: torch.fx.Graph) -> Any:
    from torch._guards import detect_fake_mode

    vals = [n.meta.get("val") for n in graph.nodes if isinstance(n.meta.get("val"), torch.Tensor)]
    mode = detect_fake_mode(vals) if vals else None
    if mode is None:
        from torch._subclasses.fake_tensor import FakeTensorMode

        mode = FakeTensorMode(allow_non_fake_inputs=True)
    return mode


class _Rewriter:
    """One pass over the graph in order: casts per consumer, FP32 accumulation, real dtypes by fake tensors."""

    def __init__(self, gm: torch.fx.GraphModule, plan: PrecisionPlan, cast_non_float: bool) -> None:
        self.gm, self.graph, self.plan = gm, gm.graph, plan
        self.cast_non_float = cast_non_float
        self.fake = _fake_mode(gm.graph)
        self.value: dict[Node, Any] = {}  # fake value with the real dtype
        self.believed: dict[Node, torch.dtype | None] = {}  # dtype the pass's re-typed metadata says
        self.targets: dict[str, torch.dtype] = {}
        self.acc_nodes: list[str] = []
        self.acc_by_cast = True
        self.casts = 0
        self.kept_int: list[str] = []
        self.extra_casts: list[str] = []
        self.skipped_casts: list[str] = []
        self.guessed: list[str] = []

    # fake execution
    def _run_fake(self, node: Node, fallback: Any) -> Any:
        args = torch.fx.node.map_arg(node.args, lambda n: self.value.get(n))
        kwargs = torch.fx.node.map_arg(node.kwargs, lambda n: self.value.get(n))
        target: Any = node.target
        try:
            with self.fake:
                return target(*args, **kwargs)
        except Exception:
            self.guessed.append(node.name)
            return fallback

    def _emit(self, before: Node, target: Any, args: tuple, owner: str, role: str, name: str) -> Node:
        with self.graph.inserting_before(before):
            new = self.graph.create_node("call_function", target, args, {}, name=name)
        new.meta[OWNER], new.meta[ROLE] = owner, role
        fallback = None
        if target is _aten.to.dtype and isinstance(self.value.get(args[0]), torch.Tensor):
            with contextlib.suppress(Exception), self.fake:
                fallback = self.value[args[0]].to(args[1])
        self.value[new] = self._run_fake(new, fallback)
        if isinstance(self.value[new], torch.Tensor):
            new.meta["val"] = self.value[new]
        return new

    # the pass's casts
    def _cast(self, node: Node, arg: Any, dtype: torch.dtype) -> Any:
        if isinstance(arg, Node):
            val = self.value.get(arg)
            if not isinstance(val, torch.Tensor):
                return arg
            pass_casts = self.believed.get(arg) != dtype
            real = val.dtype
            if not real.is_floating_point and not self.cast_non_float:
                if pass_casts:
                    self.kept_int.append(f"{node.name} <- {arg.name} ({str(real).replace('torch.', '')})")
                return arg
            needed = real != dtype
            if needed and not pass_casts:
                self.extra_casts.append(f"{node.name} <- {arg.name}")
            elif pass_casts and not needed:
                self.skipped_casts.append(f"{node.name} <- {arg.name}")
            if not needed:
                return arg
            self.casts += 1
            return self._emit(node, _aten.to.dtype, (arg, dtype), node.name, "cast", f"{node.name}__cast")
        if isinstance(arg, (tuple, list)):
            return type(arg)(self._cast(node, a, dtype) for a in arg)
        if isinstance(arg, dict):
            return {k: self._cast(node, v, dtype) for k, v in arg.items()}
        return arg

    # FP32 accumulation, as impl/matmul.py (+ linear.py, addmm.py) build it
    def _fp32_acc(self, node: Node) -> Node:
        tensors = [a for a in node.args if isinstance(a, Node)]
        first = self.value.get(tensors[0]) if tensors else None
        if not isinstance(first, torch.Tensor) or first.dtype != torch.float16:
            return node
        name, to = node.name, _aten.to.dtype
        after = node.next
        if node.target is _aten.addmm.default:
            inp, mat1, mat2 = node.args[:3]
            beta, alpha = node.kwargs.get("beta", 1), node.kwargs.get("alpha", 1)
            a32 = self._emit(node, to, (mat1, torch.float32), name, "acc", f"{name}__acc_in")
            b32 = self._emit(node, to, (mat2, torch.float32), name, "acc", f"{name}__acc_in")
            node.target, node.args, node.kwargs = _aten.mm.default, (a32, b32), {}
            self.value[node] = self._run_fake(node, self.value.get(node))
            out = self._emit(after, to, (node, torch.float16), name, "acc", f"{name}__acc_out")
            if alpha != 1:
                out = self._emit(after, _aten.mul.Tensor, (out, alpha), name, "acc", f"{name}__mul_alpha")
            if beta != 1:
                inp = self._emit(after, _aten.mul.Tensor, (inp, beta), name, "acc", f"{name}__mul_beta")
            result = self._emit(after, _aten.add.Tensor, (inp, out), name, "acc", f"{name}__add")
        else:
            a, b = node.args[0], node.args[1]
            bias = node.args[2] if node.target is _aten.linear.default and len(node.args) > 2 else None
            a32 = self._emit(node, to, (a, torch.float32), name, "acc", f"{name}__acc_in")
            b32 = self._emit(node, to, (b, torch.float32), name, "acc", f"{name}__acc_in")
            node.args = (a32, b32)
            self.value[node] = self._run_fake(node, self.value.get(node))
            result = self._emit(after, to, (node, torch.float16), name, "acc", f"{name}__acc_out")
            if bias is not None:
                result = self._emit(after, _aten.add.Tensor, (result, bias), name, "acc", f"{name}__add_bias")
        node.meta[RESULT] = False
        result.meta[RESULT] = True
        self.believed[result] = torch.float16
        first_out = next(n for n in node.users if n.meta.get(OWNER) == name)
        node.replace_all_uses_with(result, delete_user_cb=lambda user: user is not first_out)
        self.acc_nodes.append(name)
        return result

    def run(self) -> None:
        for node in list(self.graph.nodes):
            if node.op in ("placeholder", "get_attr"):
                val = node.meta.get("val")
                if node.op == "get_attr" and not isinstance(val, torch.Tensor):
                    val = _fetch_attr(self.gm, node.target)
                self.value[node] = val
                self.believed[node] = getattr(val, "dtype", None)
                continue
            if node.op != "call_function":
                continue
            node.meta[OWNER], node.meta[ROLE], node.meta[RESULT] = node.name, "op", True
            original = node.meta.get("val")
            rec = self.plan.get(node.name)
            dtype = _target_dtype(rec) if node.target not in _UNCLASSIFIED else None
            if dtype is not None:
                self.targets[node.name] = dtype
                node.args = self._cast(node, node.args, dtype)
                node.kwargs = self._cast(node, node.kwargs, dtype)
                self.believed[node] = dtype
            else:
                self.believed[node] = getattr(original, "dtype", None)
            fallback = original
            if dtype is not None and isinstance(original, torch.Tensor) and original.is_floating_point():
                with contextlib.suppress(Exception), self.fake:
                    fallback = original.to(dtype)
            self.value[node] = self._run_fake(node, fallback)
            if rec is not None and rec.accumulate_dtype == torch.float32 and node.target in _ACC_TARGETS:
                if self.acc_by_cast:
                    self._fp32_acc(node)
                elif isinstance(self.value[node], torch.Tensor) and self.value[node].dtype == torch.float16:
                    self.acc_nodes.append(node.name)
            if isinstance(self.value[node], torch.Tensor):
                node.meta["val"] = self.value[node]

    def notes(self) -> list[str]:
        out = []
        if self.kept_int:
            out.append("kept integer/bool inputs that Torch-TensorRT's autocast would cast to the node's float dtype "
                       f"(PyTorch kernels reject them; cast_non_float=True casts them): {_listed(self.kept_int)}")
        if self.extra_casts:
            out.append("cast where the pass's re-typed metadata says no cast is needed but the real dtype differs "
                       f"(TensorRT's strongly typed build may reject these): {_listed(self.extra_casts)}")
        if self.skipped_casts:
            out.append("no cast where the pass would insert one that changes nothing (real dtype already the "
                       f"target): {_listed(self.skipped_casts)}")
        if self.guessed:
            out.append(f"dtype inferred from metadata (fake run failed): {_listed(self.guessed)}")
        return out


def _fetch_attr(gm: torch.nn.Module, target: Any) -> Any:
    obj: Any = gm
    for part in str(target).split("."):
        obj = getattr(obj, part)
    return obj


def _drop_removed(gm: torch.fx.GraphModule) -> int:
    """Delete assert nodes and bypass detach (Torch-TensorRT's remove_assert_nodes / remove_detach)."""
    count = 0
    for node in list(gm.graph.nodes):
        if node.op != "call_function":
            continue
        if node.target in _DROPPED and not node.users:
            gm.graph.erase_node(node)
            count += 1
        elif node.target is _aten.detach.default:
            node.replace_all_uses_with(node.args[0])
            gm.graph.erase_node(node)
            count += 1
    return count


def _fold_weight_casts(gm: torch.fx.GraphModule) -> int:
    """Replace casts of weights (get_attr tensors) by pre-cast constants, as TensorRT folds them at build time."""
    folded: dict[tuple[Any, Any], str] = {}
    count = 0
    with torch.no_grad():
        for node in list(gm.graph.nodes):
            if not (node.op == "call_function" and node.target is _aten.to.dtype and node.meta.get(ROLE)
                    in ("cast", "acc")):
                continue
            src, dtype = node.args[0], node.args[1]
            if not (isinstance(src, Node) and src.op == "get_attr"):
                continue
            value = _fetch_attr(gm, src.target)
            if not isinstance(value, torch.Tensor):
                continue
            key = (src.target, dtype)
            if key not in folded:
                folded[key] = f"_mixprec_const_{len(folded)}"
                gm.register_buffer(folded[key], value.detach().to(dtype), persistent=False)
            with gm.graph.inserting_before(node):
                const = gm.graph.get_attr(folded[key])
            const.meta.update({k: v for k, v in node.meta.items() if k in ("val", OWNER, ROLE)})
            node.replace_all_uses_with(const)
            gm.graph.erase_node(node)
            count += 1
    return count


def _drop_unread_weights(gm: torch.fx.GraphModule) -> None:
    """Remove get_attr tensors nothing reads any more (weights replaced by pre-cast copies), freeing their memory."""
    read = {n.target for n in gm.graph.nodes if n.op == "get_attr" and n.users}
    for node in list(gm.graph.nodes):
        if node.op != "get_attr" or node.users:
            continue
        gm.graph.erase_node(node)
        if node.target in read or not isinstance(_fetch_attr(gm, node.target), torch.Tensor):
            continue
        owner, _, attr = str(node.target).rpartition(".")
        delattr(gm.get_submodule(owner) if owner else gm, attr)
        read.add(node.target)  # deleted once


def apply_plan(ep: torch.export.ExportedProgram, plan: PrecisionPlan, *, device: str = "cpu",
               cast_non_float: bool = False, fold_weight_casts: bool = True) -> PlannedGraph:
    """A runnable copy of ``ep`` with the plan's casts inserted as Torch-TensorRT's autocast pass inserts them.

    The ExportedProgram is not modified. Raises whatever torch raises if the copy cannot be built on ``device``.
    """
    gm = load_module(ep, device)
    dropped = _drop_removed(gm)
    rewriter = _Rewriter(gm, plan, cast_non_float)
    rewriter.acc_by_cast = torch.device(device).type != "cuda"
    rewriter.run()
    folded = _fold_weight_casts(gm) if fold_weight_casts else 0
    _drop_unread_weights(gm)
    gm.graph.lint()
    gm.recompile()
    notes = rewriter.notes()
    if dropped:
        notes.append(f"dropped {dropped} assert/detach node(s), as Torch-TensorRT's pre-lowering passes do")
    if rewriter.acc_nodes and rewriter.acc_by_cast:
        notes.append(f"FP32 accumulation (FP16 in, FP32 matmul, FP16 out) on {_listed(rewriter.acc_nodes)}")
    elif rewriter.acc_nodes:
        notes.append("FP32 accumulation: FP16 GEMMs run with torch.backends.cuda.matmul."
                     "allow_fp16_reduced_precision_reduction=False (cuBLAS reduces in FP32), as TensorRT fuses "
                     f"its casts into an FP16-input, FP32-accumulate GEMM, on {_listed(rewriter.acc_nodes)}")
    return PlannedGraph(module=gm, device=str(device), targets=rewriter.targets,
                        fp32_acc_nodes=tuple(rewriter.acc_nodes), casts_inserted=rewriter.casts,
                        weight_casts_folded=folded, notes=tuple(notes),
                        fp32_reduction=bool(rewriter.acc_nodes) and not rewriter.acc_by_cast)


# -- running ------------------------------------------------------------------------------------------------
def flatten_inputs(inputs: Sequence[Any]) -> list[Any]:
    """The graph module's placeholders, in order, for positional ``inputs``."""
    return pytree.tree_leaves((tuple(inputs), {}))


def to_device(value: Any, device: str | torch.device) -> Any:
    """``value`` with every tensor in it moved to ``device``."""
    return pytree.tree_map(lambda x: x.to(device) if isinstance(x, torch.Tensor) else x, value)


def iter_node_values(gm: torch.fx.GraphModule, flat_inputs: Sequence[Any], *, ranges: bool = False
                     ) -> Iterator[tuple[Node, Any]]:
    """Run ``gm`` node by node, yielding (node, value); values are freed after their last use.

    With ``ranges``, each rewritten node runs inside a ``record_function`` range ``mixprec.node/<owner>/<role>``.
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
            value = _fetch_attr(gm, node.target)
        elif node.op == "call_function" and owner is not None:
            with torch.profiler.record_function(f"{NODE_RANGE}{owner}/{node.meta.get(ROLE, 'op')}"):
                value = node.target(*args, **kwargs)
        elif node.op == "call_function":
            value = node.target(*args, **kwargs)
        elif node.op == "call_module":
            value = gm.get_submodule(node.target)(*args, **kwargs)
        else:  # call_method
            value = getattr(args[0], node.target)(*args[1:], **kwargs)
        env[node] = value
        yield node, value
        for arg in node.all_input_nodes:
            if last_use.get(arg) == index:
                env.pop(arg, None)


def _tensor_dtypes(value: Any) -> tuple[torch.dtype, ...]:
    return tuple(x.dtype for x in pytree.tree_leaves(value) if isinstance(x, torch.Tensor))


def observe_dtypes(gm: torch.fx.GraphModule, flat_inputs: Sequence[Any]) -> dict[str, tuple[tuple, tuple]]:
    """Per original node, from one real run: (dtypes its op computed with, dtypes its users received)."""
    seen: dict[str, tuple[tuple, tuple]] = {}
    produced: dict[Node, tuple[torch.dtype, ...]] = {}
    with torch.no_grad():
        for node, value in iter_node_values(gm, flat_inputs):
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


def run_ranged(gm: torch.fx.GraphModule, flat_inputs: Sequence[Any]) -> None:
    """One run of a planned graph with a ``record_function`` range per rewritten node (for the profiler)."""
    for _ in iter_node_values(gm, flat_inputs, ranges=True):
        pass


def _synchronizer(device: str) -> Callable[[], None]:
    if torch.device(device).type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


@dataclass(eq=False)
class TorchProgram:
    """The torch backend's compiled handle: a planned graph and the callable that runs it (eager or compiled)."""

    planned: PlannedGraph
    mode: str  #: "eager" or "compiled"
    runner: Callable[..., Any]  #: the module, or torch.compile of it
    observed: dict[tuple, dict[str, tuple[tuple, tuple]]] = field(default_factory=dict)  #: per input signature

    def __call__(self, *inputs: Any) -> Any:
        with torch.no_grad(), self.planned.precision():
            return self.runner(*to_device(tuple(inputs), self.planned.device))


# -- profiling ------------------------------------------------------------------------------------------------
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


_RANGES = (NODE_RANGE, RUN_RANGE)


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


def middle_runs(totals: Sequence[float]) -> list[int]:
    """Indices of the runs whose totals form the middle half (at least one): a median-like, additive choice."""
    order = sorted(range(len(totals)), key=lambda i: totals[i])
    cut = len(order) // 4
    return order[cut:len(order) - cut] or order[:1]


def _device_name(device: str) -> str:
    if torch.device(device).type == "cuda":
        return torch.cuda.get_device_name(torch.device(device))
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def _versions() -> dict[str, str]:
    out = {"torch": torch.__version__, "python": platform.python_version()}
    if torch.version.cuda:
        out["cuda"] = torch.version.cuda
    return out


class TorchBackend:
    """PyTorch eager or ``torch.compile``: the plan's casts made real on a copy of the graph (CPU or CUDA)."""

    name = NAME

    def availability(self) -> tuple[bool, str]:
        """Always usable where torch imports (CPU at least)."""
        return True, ""

    def compile(self, explorer: Explorer, settings: Settings, device: str, *, mode: str = "eager",
                cast_non_float: bool = False, fold_weight_casts: bool = True,
                compile_options: dict[str, Any] | None = None) -> Compiled:
        """Apply the plan for ``settings`` to a copy of the graph on ``device``; ``mode="compiled"`` also runs
        ``torch.compile`` (with ``compile_options``) and one warm-up call, so ``compile_s`` includes Inductor.

        Raises ValueError for an unknown mode; BackendUnavailable for a CUDA device where CUDA is absent.
        """
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if torch.device(device).type == "cuda" and not torch.cuda.is_available():
            raise BackendUnavailable(f"device {device!r} asked for, but torch.cuda.is_available() is False here")
        start = time.perf_counter()
        plan = explorer.plan(settings)
        report_progress("applying the plan to a copy of the graph")
        planned = apply_plan(explorer.exported_program, plan, device=device, cast_non_float=cast_non_float,
                             fold_weight_casts=fold_weight_casts)
        notes = list(planned.notes)
        captured_on = {x.device.type for x in flatten_inputs(explorer.example_inputs) if isinstance(x, torch.Tensor)}
        if captured_on and torch.device(device).type not in captured_on:
            notes.append(f"captured on {'/'.join(sorted(captured_on))} but compiled for {device}: strides of some "
                         "ops (attention) differ between devices, so if a view fails, capture on the same device")
        if any(r.rule == "weak_typing" for r in plan):
            notes.append("weak typing: TensorRT would pick each layer's precision; PyTorch runs the graph as the "
                         "model types it")
        runner: Callable[..., Any] = planned.module
        if mode == "compiled":
            report_progress("torch.compile (Inductor) and a first run")
            runner = torch.compile(planned.module, **(compile_options or {}))
            with torch.no_grad(), planned.precision():
                runner(*to_device(tuple(explorer.example_inputs), device))
            _synchronizer(device)()
        program = TorchProgram(planned=planned, mode=mode, runner=runner)
        key = CacheKey(model_fingerprint="", settings=settings, input_shapes=(), backend=NAME, device=str(device))
        return Compiled(key=key, backend=NAME, device=str(device), settings=settings,
                        compile_s=time.perf_counter() - start, handle=program, notes=tuple(notes))

    def run(self, explorer: Explorer, compiled: Compiled, inputs: Sequence[Any]) -> Any:
        """The compiled plan's outputs for ``inputs`` (on its device)."""
        return compiled.handle(*inputs)

    def profile(self, explorer: Explorer, compiled: Compiled, inputs: Sequence[Any], runs: int, warmup: int, *,
                profile_runs: int = 10) -> Profile:
        """Observed dtypes per node, per-node latency from ``profile_runs`` profiled runs (median), and end-to-end
        latency over ``runs`` runs after ``warmup``, with profiling off and device synchronisation."""
        program: TorchProgram = compiled.handle
        device = program.planned.device
        args = to_device(tuple(inputs), device)
        flat = flatten_inputs(args)
        sync = _synchronizer(device)
        runs, warmup = max(1, int(runs)), max(0, int(warmup))
        n_prof = max(1, min(int(profile_runs), runs))
        signature = tuple((tuple(x.shape), x.dtype) if isinstance(x, torch.Tensor) else repr(x) for x in flat)
        with torch.no_grad(), program.planned.precision():
            if signature not in program.observed:
                program.observed[signature] = observe_dtypes(program.planned.module, flat)
            observed = program.observed[signature]
            report_progress(f"timing {runs} runs after {warmup} warm-up")
            time_runs(lambda: program.runner(*args), warmup, sync)
            end_to_end = summarize_ms(time_runs(lambda: program.runner(*args), runs, sync))
            eager = program.mode == "eager"
            module = program.planned.module
            activities = [torch.profiler.ProfilerActivity.CPU]
            if torch.device(device).type == "cuda":
                activities.append(torch.profiler.ProfilerActivity.CUDA)
            report_progress(f"profiling {n_prof} runs")
            if eager:
                run_ranged(module, flat)  # warm the node-by-node path too
            with torch.profiler.profile(activities=activities) as prof:
                for index in range(n_prof):
                    with torch.profiler.record_function(f"{RUN_RANGE}{index}"):
                        if eager:
                            run_ranged(module, flat)
                        else:
                            program.runner(*args)
                    sync()
        ranged, loose, kernels, orphan = attribute_events(prof.events(), n_prof, torch.device(device).type)
        return self._assemble(explorer, compiled, observed, ranged, loose, kernels, orphan, n_prof, end_to_end)

    @staticmethod
    def _assemble(explorer: Explorer, compiled: Compiled, observed: dict, ranged: dict, loose: dict,
                  kernels: dict, orphan_us: float, n_prof: int, end_to_end: EndToEnd) -> Profile:
        program: TorchProgram = compiled.handle
        planned = program.planned
        plan = explorer.plan(compiled.settings)
        eager = program.mode == "eager"
        per_node: dict[str, dict[str, list[float]]] = {}
        for label, per_run in ranged.items():
            owner, role = label.rsplit("/", 1)
            per_node.setdefault(owner, {})[role] = per_run
        ranking = ranged or {k: v for k, v in loose.items() if k != RUN_WALL}
        kept = middle_runs([sum(v[i] for v in ranking.values()) for i in range(n_prof)])

        def typical(per_run: list[float] | None) -> float:
            return sum(per_run[i] for i in kept) / len(kept) / 1e3 if per_run else 0.0

        owners = list(dict.fromkeys(n.meta[OWNER] for n in planned.module.graph.nodes if n.meta.get(OWNER)))
        typical_ms = {owner: sum(typical(v) for v in per_node.get(owner, {}).values()) for owner in owners}
        total = sum(typical_ms.values()) or 1.0
        layers = []
        for owner in owners:
            info = explorer.nodes.get(owner)
            rec = plan.get(owner)
            ins, outs = observed.get(owner, ((), ()))
            roles = per_node.get(owner, {})
            top = sorted(kernels.get(owner, {}).items(), key=lambda kv: -kv[1])[:3]
            extra: dict[str, Any] = {
                "predicted_dtype": rec.dtype if rec is not None else None,
                "cast_ms": typical(roles.get("cast")),
                "acc_ms": typical(roles.get("acc")),
                "cast_to": planned.targets.get(owner),
            }
            layers.append(LayerRecord(
                name=owner,
                layer_type=info.op if info is not None else "",
                input_dtypes=ins,
                output_dtypes=outs,
                accumulate_dtype=torch.float32 if owner in planned.fp32_acc_nodes else None,
                latency_ms=typical_ms[owner] if eager else None,
                share=typical_ms[owner] / total if eager else None,
                tactic=", ".join(name for name, _ in top),
                modules=(info.module,) if info is not None else (),
                nodes=(owner,),
                count=n_prof if eager else None,
                extra=extra,
            ))
        run_wall = loose.pop(RUN_WALL, None)
        unattributed = [
            LayerRecord(name=name, layer_type="unattributed", latency_ms=typical(per_run), count=n_prof)
            for name, per_run in sorted(loose.items(), key=lambda kv: -sum(kv[1]))
        ]
        if orphan_us > 0:
            unattributed.append(LayerRecord(name="device kernels launched outside any op", layer_type="unattributed",
                                            latency_ms=orphan_us / n_prof / 1e3, count=n_prof))
        notes = [f"per-node latency: mean over the middle {len(kept)} of {n_prof} profiled runs (ranked by total, "
                 "so per-node times add up to a typical run); "
                 + ("self CPU time of each op" if torch.device(planned.device).type == "cpu"
                    else "device time of the kernels each op launched")
                 + ", counted once, in the innermost FX node range"]
        if not eager:
            notes.append("mode='compiled': Inductor fuses nodes, so its kernels are listed unattributed; per-node "
                         "dtypes are from an eager run of the same planned graph")
        attributed = sum(typical_ms.values()) if eager else 0.0
        loose_ms = sum(x.latency_ms or 0.0 for x in unattributed)
        notes.append(f"sum of per-node latencies {attributed:.3f} ms + unattributed {loose_ms:.3f} ms vs "
                     f"end-to-end median {end_to_end.median_ms:.3f} ms "
                     f"(ratio {(attributed + loose_ms) / end_to_end.median_ms:.2f})")
        return Profile(backend=NAME, device=_device_name(planned.device), versions=_versions(), layers=tuple(layers),
                       unattributed=tuple(unattributed), end_to_end=end_to_end, mode=program.mode,
                       notes=tuple(notes),
                       profiled_run_ms=typical(run_wall) if run_wall else None)

