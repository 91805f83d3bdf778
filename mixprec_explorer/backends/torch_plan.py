"""Apply a precision plan to a copy of the graph, as Torch-TensorRT's autocast pass does (the torch backend's plan).

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
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch.fx import Node
from torch.utils import _pytree as pytree

from ..ops import ASSERT_OPS, FP32_ACC_OPS, UNCLASSIFIED_OPS, qualified_op_name

if TYPE_CHECKING:
    from ..policy import PrecisionPlan

__all__ = ["OWNER", "RESULT", "ROLE", "PlannedGraph", "apply_plan", "fetch_attr", "flatten_inputs", "load_module",
           "to_device"]

OWNER = "mixprec_node"  #: node meta key: the original FX node a rewritten node belongs to
ROLE = "mixprec_role"  #: node meta key: "op" (the model's node), "cast" (autocast cast) or "acc" (FP32 accumulation)
RESULT = "mixprec_result"  #: node meta key: True on the node whose value the original node's users receive

_LOW_RULES = frozenset({"low_precision"})
_HIGH_RULES = frozenset({"excluded_node", "excluded_op", "io_range", "depth"})
_aten = torch.ops.aten
_MAX_LISTED = 6


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
    """``ep.module()`` on ``device``; the program itself is never moved (a copy is, for another device).

    On another device the copy's ``aten.view`` nodes become ``aten.reshape`` (the same values): export may trace a
    ``reshape`` as a ``view`` valid only for the capture device's strides (torch 2.11 does so for the encoder's
    attention output, whose CUDA layout differs from the CPU's), as Torch-TensorRT's own view-to-reshape pass does.
    """
    if torch.device(device).type != "cpu":
        from torch.export.passes import move_to_device_pass

        ep = move_to_device_pass(copy.deepcopy(ep), device)
        views = [n for n in ep.graph.nodes if n.op == "call_function" and n.target is torch.ops.aten.view.default]
        for n in views:
            n.target = torch.ops.aten.reshape.default
        if views:
            ep.graph_module.recompile()
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
                    val = fetch_attr(self.gm, node.target)
                self.value[node] = val
                self.believed[node] = getattr(val, "dtype", None)
                continue
            if node.op != "call_function":
                continue
            node.meta[OWNER], node.meta[ROLE], node.meta[RESULT] = node.name, "op", True
            original = node.meta.get("val")
            rec = self.plan.get(node.name)
            op = qualified_op_name(node.target)
            dtype = _target_dtype(rec) if op not in UNCLASSIFIED_OPS else None
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
            if rec is not None and rec.accumulate_dtype == torch.float32 and op in FP32_ACC_OPS:
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


def fetch_attr(gm: torch.nn.Module, target: Any) -> Any:
    """The attribute a ``get_attr`` node names (``"layer1.0.conv1.weight"``), followed through submodules."""
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
        if qualified_op_name(node.target) in ASSERT_OPS and not node.users:
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
            value = fetch_attr(gm, src.target)
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
        if node.target in read or not isinstance(fetch_attr(gm, node.target), torch.Tensor):
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



# -- inputs -----------------------------------------------------------------------------------------------------
def flatten_inputs(inputs: Sequence[Any]) -> list[Any]:
    """The graph module's placeholders, in order, for positional ``inputs``."""
    return pytree.tree_leaves((tuple(inputs), {}))


def to_device(value: Any, device: str | torch.device) -> Any:
    """``value`` with every tensor in it moved to ``device``."""
    return pytree.tree_map(lambda x: x.to(device) if isinstance(x, torch.Tensor) else x, value)

