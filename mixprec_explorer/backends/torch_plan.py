"""Apply a precision plan to a copy of the graph, as Torch-TensorRT's autocast pass does (the torch backend's plan).

Applying a plan (Torch-TensorRT 2.11 ``lowering/passes/rule_based_autocast.py``) to a fresh ``ep.module()``; what
each node gets (its target dtype, which arguments are cast, restored regions, saturated fills, FP32 accumulation)
is decided by :mod:`~mixprec_explorer.backends.plan_rules`, which the analyses' runner reads too:

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

from ..errors import CompileFailure
from ..ops import ASSERT_OPS, AUTOCAST_REGION_OP, UNCLASSIFIED_OPS, qualified_op_name
from .plan_rules import (
    accumulates_in_fp32,
    bypassed,
    cast_dtype,
    fp32_accumulated,
    restore_dtype,
    saturated,
    saturates,
    target_dtype,
)
from .shipping import ensure_flatten_specs

if TYPE_CHECKING:
    from ..policy import PrecisionPlan

__all__ = ["OWNER", "RESULT", "ROLE", "PlannedGraph", "apply_plan", "copy_program", "fetch_attr", "flatten_inputs",
           "load_module", "move_program", "overflowing_fills", "to_device"]

OWNER = "mixprec_node"  #: node meta key: the original FX node a rewritten node belongs to
ROLE = "mixprec_role"  #: node meta key: "op" (the model's node), "cast" (autocast cast) or "acc" (FP32 accumulation)
RESULT = "mixprec_result"  #: node meta key: True on the node whose value the original node's users receive

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


def copy_program(ep: torch.export.ExportedProgram) -> torch.export.ExportedProgram:
    """A deep copy of ``ep`` whose placeholders keep their names.

    ``copy.deepcopy`` renames a placeholder that shadows a Python builtin (torchvision's ``forward(self, input)``:
    ``input`` becomes ``input_1``, torch 2.11-2.14), and the copy then fails ``ep.validate()`` (``SpecViolationError:
    Input spec name input does not match node name input_1``), which ``move_to_device_pass`` and
    ``run_decompositions`` call. Export names placeholders the same way, without FX's builtin check.
    """
    new = copy.deepcopy(ep)
    placeholders = [n for n in new.graph.nodes if n.op == "placeholder"]
    renamed = False
    for spec, node in zip(new.graph_signature.input_specs, placeholders):
        name = getattr(spec.arg, "name", None)
        if isinstance(name, str) and node.name != name:
            node.name = name
            renamed = True
    if renamed:
        new.graph_module.recompile()
    return new


def _on_device(ep: torch.export.ExportedProgram, device: str) -> bool:
    """True when every weight, buffer and constant of ``ep`` is already on ``device`` (a program without any: only
    for the CPU, where export leaves devices it did not see)."""
    target = torch.device(device)
    if target.type == "cuda" and target.index is None:
        target = torch.device("cuda", torch.cuda.current_device())
    tensors = [v for v in [*ep.state_dict.values(), *ep.constants.values()] if isinstance(v, torch.Tensor)]
    if not tensors:
        return target.type == "cpu"
    return all(v.device == target for v in tensors)


def move_program(ep: torch.export.ExportedProgram, device: str) -> torch.export.ExportedProgram:
    """A copy of ``ep`` with its weights, constants and burnt-in devices on ``device`` (``ep`` itself is never moved).

    A program already there is only copied. Raises :class:`CompileFailure` naming the way around when torch's
    ``move_to_device_pass`` refuses the program.
    """
    moved = copy_program(ep)
    if _on_device(moved, device):
        return moved
    from torch.export.passes import move_to_device_pass

    try:
        return move_to_device_pass(moved, device)
    except Exception as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise CompileFailure(
            f"torch.export's move_to_device_pass could not move the captured program to {device}: "
            f"{type(err).__name__}: {first}",
            remedies=(f"capture the model on {device}: Explorer(model.to({device!r}), inputs on {device!r}); "
                      "then nothing has to be moved",),
        ) from err


def load_module(ep: torch.export.ExportedProgram, device: str = "cpu") -> torch.fx.GraphModule:
    """``ep.module()`` on ``device``; the program itself is never moved (a copy is, for another device).

    On another device the copy's ``aten.view`` nodes become ``aten.reshape`` (the same values): export may trace a
    ``reshape`` as a ``view`` valid only for the capture device's strides (torch 2.11 does so for the encoder's
    attention output, whose CUDA layout differs from the CPU's), as Torch-TensorRT's own view-to-reshape pass does.
    """
    if torch.device(device).type != "cpu" or not _on_device(ep, device):
        ep = move_program(ep, device)
        views = [n for n in ep.graph.nodes if n.op == "call_function" and n.target is torch.ops.aten.view.default]
        for n in views:
            n.target = torch.ops.aten.reshape.default
        if views:
            ep.graph_module.recompile()
    ensure_flatten_specs(ep)
    return ep.module()


def overflowing_fills(graph: torch.fx.Graph, plan: PrecisionPlan) -> list[tuple[str, float, torch.dtype]]:
    """(node, value, dtype) for each fill value (:data:`~mixprec_explorer.backends.plan_rules.FILL_OPS`) that a node
    the plan runs in FP16/BF16 writes beyond that dtype's range: Hugging Face masks fill with
    ``torch.finfo(torch.float32).min``.

    Under Torch-TensorRT the op decomposes to ``aten.scalar_tensor(value, dtype=float16)``, which its constant folding
    runs on the GPU: "value cannot be converted to type c10::Half without overflow" (T5's encoder, 2.11). The cast
    graph writes the dtype's own extreme instead (:func:`apply_plan` with ``saturate_fills``).
    """
    out = []
    for node in graph.nodes:
        if node.op != "call_function":
            continue
        dtype = target_dtype(plan.get(node.name))
        if dtype is None or not saturates(node.target, dtype):
            continue
        for value in [*node.args, *node.kwargs.values()]:
            if saturated(value, dtype) is not value:
                out.append((node.name, value, dtype))
    return out


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
        self.restored: list[str] = []
        self.saturate_fills = False
        self.restore_regions = False
        self.saturated: list[str] = []
        #: each node's dtype in the captured graph (before any cast of the plan)
        self.captured = {n: v.dtype for n in gm.graph.nodes if isinstance(v := n.meta.get("val"), torch.Tensor)}

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
            to = cast_dtype(real, dtype, cast_non_float=self.cast_non_float)
            if not real.is_floating_point and not self.cast_non_float:
                if pass_casts:
                    self.kept_int.append(f"{node.name} <- {arg.name} ({str(real).replace('torch.', '')})")
                return arg
            if to is not None and not pass_casts:
                self.extra_casts.append(f"{node.name} <- {arg.name}")
            elif pass_casts and to is None:
                self.skipped_casts.append(f"{node.name} <- {arg.name}")
            if to is None:
                return arg
            self.casts += 1
            return self._emit(node, _aten.to.dtype, (arg, to), node.name, "cast", f"{node.name}__cast")
        if isinstance(arg, (tuple, list)):
            return type(arg)(self._cast(node, a, dtype) for a in arg)
        if isinstance(arg, dict):
            return {k: self._cast(node, v, dtype) for k, v in arg.items()}
        return arg

    def _saturate(self, node: Node, dtype: torch.dtype) -> None:
        """A fill value beyond ``dtype``'s range becomes its extreme with ``saturate_fills`` (finfo(float32).min ->
        finfo(float16).min), else the infinity it is in ``dtype``."""
        def clip(value: Any) -> Any:
            clipped = saturated(value, dtype, extreme=self.saturate_fills)
            if clipped is not value:
                self.saturated.append(f"{node.name} ({value:.4g} -> {clipped:.6g})")
            return clipped

        node.args = tuple(clip(a) for a in node.args)
        node.kwargs = {k: clip(v) for k, v in node.kwargs.items()}

    def _restore(self, node: Node, arg: Any) -> Any:
        """A ``torch.autocast`` region's float inputs cast back to the dtypes it was traced with: the plan does not
        classify the region, which computes as the model wrote it (Llama's rotary embedding, autocast off)."""
        if isinstance(arg, Node):
            val = self.value.get(arg)
            want = restore_dtype(val.dtype, self.captured.get(arg)) if isinstance(val, torch.Tensor) else None
            if want is not None:
                self.casts += 1
                self.restored.append(f"{node.name} <- {arg.name}")
                return self._emit(node, _aten.to.dtype, (arg, want), node.name, "cast", f"{node.name}__cast")
            return arg
        if isinstance(arg, (tuple, list)):
            return type(arg)(self._restore(node, a) for a in arg)
        return arg

    # FP32 accumulation, as impl/matmul.py (+ linear.py, addmm.py) build it: the ops plan_rules.fp32_accumulated names
    def _fp32_acc(self, node: Node) -> Node:
        name, after = node.name, node.next

        def call(target: Any, args: tuple[Any, ...], suffix: str) -> Node:
            return self._emit(node if suffix == "acc_in" else after, target, args, name, "acc", f"{name}__{suffix}")

        def product(target: Any, args: tuple[Any, ...]) -> Node:
            node.target, node.args, node.kwargs = target, args, {}  # linear's bias is added after, in FP16
            self.value[node] = self._run_fake(node, self.value.get(node))
            return node

        result = fp32_accumulated(node.target, node.args, dict(node.kwargs), call, product)
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
            if op == AUTOCAST_REGION_OP and self.restore_regions:
                node.args = self._restore(node, node.args)
            dtype = target_dtype(rec) if op not in UNCLASSIFIED_OPS else None
            if dtype is not None:
                self.targets[node.name] = dtype
                node.args = self._cast(node, node.args, dtype)
                node.kwargs = self._cast(node, node.kwargs, dtype)
                self.believed[node] = dtype
                if saturates(node.target, dtype):
                    self._saturate(node, dtype)
            else:
                self.believed[node] = getattr(original, "dtype", None)
            fallback = original
            if dtype is not None and isinstance(original, torch.Tensor) and original.is_floating_point():
                with contextlib.suppress(Exception), self.fake:
                    fallback = original.to(dtype)
            self.value[node] = self._run_fake(node, fallback)
            tensors = [a for a in node.args if isinstance(a, Node)]
            first = self.value.get(tensors[0]) if tensors else None
            if accumulates_in_fp32(node.target, rec.accumulate_dtype if rec is not None else None,
                                   first.dtype if isinstance(first, torch.Tensor) else None):
                if self.acc_by_cast:
                    self._fp32_acc(node)
                else:
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
        if self.saturated and self.saturate_fills:
            out.append("fill values beyond the low dtype's range written as its extreme, as a model run in that dtype "
                       f"uses torch.finfo(dtype).min (Torch-TensorRT's constant folding refuses them): "
                       f"{_listed(self.saturated)}")
        elif self.saturated:
            out.append("fill values beyond the low dtype's range written as the infinity they become in it (PyTorch "
                       f"refuses the conversion in some ops and releases): {_listed(self.saturated)}")
        if self.restored:
            out.append("cast back to the dtypes a torch.autocast region was traced with (the plan does not classify "
                       f"it): {_listed(self.restored)}")
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
    """Delete assert nodes and bypass detach (Torch-TensorRT's remove_assert_nodes / remove_detach), in the graph
    and in the subgraphs of its regions (a ``torch.autocast`` region asserts the dtypes it was traced with, which a
    plan's casts change)."""
    count = 0
    for sub in list(gm.modules()):
        if not isinstance(sub, torch.fx.GraphModule):
            continue
        changed = 0
        for node in list(sub.graph.nodes):
            if node.op != "call_function":
                continue
            if qualified_op_name(node.target) in ASSERT_OPS and not node.users:
                sub.graph.erase_node(node)
                changed += 1
            elif bypassed(node.target):
                node.replace_all_uses_with(node.args[0])
                sub.graph.erase_node(node)
                changed += 1
        if changed and sub is not gm:
            sub.recompile()
        count += changed
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
               cast_non_float: bool = False, fold_weight_casts: bool = True,
               saturate_fills: bool = False, restore_regions: bool = False) -> PlannedGraph:
    """A runnable copy of ``ep`` with the plan's casts inserted as Torch-TensorRT's autocast pass inserts them.

    The cast graph departs from the pass where its letter cannot be compiled: ``saturate_fills`` writes fill values
    beyond a low node's dtype as its extreme (:func:`overflowing_fills`), ``restore_regions`` casts a
    ``torch.autocast`` region's float inputs back to the dtypes it was traced with (the pass leaves them as their
    producers make them). The ExportedProgram is not modified. Raises whatever torch raises if the copy cannot be
    built on ``device``.
    """
    gm = load_module(ep, device)
    dropped = _drop_removed(gm)
    rewriter = _Rewriter(gm, plan, cast_non_float)
    rewriter.saturate_fills, rewriter.restore_regions = saturate_fills, restore_regions
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

