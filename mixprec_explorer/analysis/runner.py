"""Where a plan is evaluated: the captured program run node by node with each classified node's dtype.

:class:`PlanRunner` is a ``torch.fx.Interpreter`` over the unlifted ``ep.module()`` (the graph Torch-TensorRT's
autocast pass classifies). What a plan does to each node is decided by the rule the torch backend's planned graph
reads too (:mod:`mixprec_explorer.backends.plan_rules`), so the two give the same outputs (tests/
test_plan_agreement.py): before a classified node runs, its floating-point arguments are cast to the node's dtype,
as the pass inserts casts; integer arguments (indices) are left alone; the assert nodes Torch-TensorRT's
pre-lowering deletes are skipped and ``detach`` passes its input through; with ``restore_regions`` a
``torch.autocast`` region's float inputs are cast back to their traced dtypes and with ``saturate_fills`` a low
node's fill values beyond its range become the extreme (both off, as in the torch backend); a plan asking for FP32
accumulation (``use_fp32_acc``) computes its FP16 matmul-family nodes as the planned graph does (operands cast to
FP32, the product cast to FP16, bias added in FP16; on CUDA, cuBLAS FP32 reduction). Whole-graph activations are cached per base dtype (all FP32,
all low), so the error of a change to a few nodes costs a re-run of only the nodes downstream of them whose
inputs really changed. :class:`PlanEvaluator` gives the exact error of a Settings' plan with one forward pass.

On the CPU, low precision is simulated (:mod:`mixprec_explorer.backends.simulate`): a low-precision node's inputs
and weights are rounded to the low type, it computes in FP32 and its output is rounded, at FP32 speed. Each
value's real dtype is tracked beside it (from the op's meta kernel), so a node whose real output stays FP32 (an
explicit ``.float()``, ``softmax(dtype=float32)``) is not rounded. ``simulate=False`` runs the real arithmetic.
Simulation ignores FP32 accumulation: it already computes each product in FP32 from rounded inputs and rounds
the output (it adds a bias before that rounding, FP32 accumulation after it).

Sensitivity, search, the frontier and the widget's panel all evaluate plans through these two classes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch.utils._pytree import tree_flatten, tree_map, tree_unflatten

from ..backends.plan_rules import (
    accumulates_in_fp32,
    bypassed,
    cast_dtype,
    fp32_accumulated,
    restore_dtype,
    saturated,
    saturates,
    target_dtype,
)
from ..backends.simulate import LOW_TYPES, exact_on_rounded, rounded, simulates, to_storage
from ..capture import is_autocast_skipped
from ..inputs import Batch, flatten_batch
from ..ops import AUTOCAST_REGION_OP, qualified_op_name
from .metrics import Metric, floating_leaves, get_metric

if TYPE_CHECKING:
    from ..settings import Settings
    from .subject import Plans, Program

__all__ = ["DtypeOf", "Env", "PlanEvaluator", "PlanRunner", "cast_floats"]

Env = dict[torch.fx.Node, Any]  #: every node's value after a run
DtypeOf = Callable[[str], "torch.dtype | None"]  #: classified node name -> the dtype it runs in (None: as given)


def cast_floats(value: Any, dtype: torch.dtype) -> Any:
    """Tensors in (nested tuples, lists, dicts of) arguments cast as a node run in ``dtype`` casts them
    (:func:`~mixprec_explorer.backends.plan_rules.cast_dtype`: floating ones; integers and bools as given)."""
    if isinstance(value, torch.Tensor):
        to = cast_dtype(value.dtype, dtype)
        return value.to(to) if to is not None else value
    if isinstance(value, (tuple, list)):
        return type(value)(cast_floats(v, dtype) for v in value)
    if isinstance(value, dict):
        return {k: cast_floats(v, dtype) for k, v in value.items()}
    return value


def _writes_in_place(n: torch.fx.Node) -> bool:
    """True for ops that write into an argument (``aten.add_``, ``aten.relu_``; a CUDA capture has more of them)."""
    schema = getattr(n.target, "_schema", None)
    return schema is not None and any(a.alias_info is not None and a.alias_info.is_write for a in schema.arguments)


def _cloned(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.clone()
    if isinstance(value, (tuple, list)):
        return type(value)(_cloned(v) for v in value)
    if isinstance(value, dict):
        return {k: _cloned(v) for k, v in value.items()}
    return value


class _Source:
    """An argument leaf's origin (not a pytree node, so it lines up with the value's leaves when flattened)."""

    __slots__ = ("node", "real")

    def __init__(self, node: torch.fx.Node | None, real: Any) -> None:
        self.node, self.real = node, real


class PlanRunner(torch.fx.Interpreter):
    """Runs the captured program with a dtype per classified node over one or more batches, caching activations.

    Parameters
    ----------
    explorer: the program (and node records) to run: an Explorer, a ``CapturedGraph``, any
        :class:`~mixprec_explorer.analysis.subject.Program`.
    batches: positional inputs, one tuple per batch (see :func:`~mixprec_explorer.inputs.normalize_inputs`).
    simulate: round to the low type and compute in FP32 (module docs); None: where the inputs and weights are on
        the CPU.
    saturate_fills, restore_regions: as :func:`~mixprec_explorer.backends.torch_plan.apply_plan`'s (off, as the
        torch backend compiles; the TensorRT cast graph turns both on).

    Attributes: ``classified`` (the node names autocast classifies), ``evaluations`` (node evaluations so far:
    the cost the incremental re-runs save), ``batches``, ``simulate``.

    >>> import torch
    >>> from mixprec_explorer import Explorer
    >>> from mixprec_explorer.examples import reference_autocast_model
    >>> ex = Explorer(*reference_autocast_model())
    >>> run = PlanRunner(ex, [ex.example_inputs])
    >>> sorted(run.classified)
    ['linear', 'linear_1', 'linear_2']
    >>> out = run.outputs(run.base(torch.float16))[0]  # simulated on the CPU: FP16 values in FP32 storage
    >>> out.dtype, bool((out.half().float() == out).all())
    (torch.float32, True)
    """

    def __init__(self, explorer: Program, batches: Sequence[Batch], *, simulate: bool | None = None,
                 saturate_fills: bool = False, restore_regions: bool = False) -> None:
        super().__init__(explorer.exported_program.module(), garbage_collect_values=False)
        self.order: list[torch.fx.Node] = list(self.graph.nodes)
        self.index = {n: i for i, n in enumerate(self.order)}
        infos = explorer.nodes
        self.classified: frozenset[str] = frozenset(
            n.name for n in self.order
            if n.op == "call_function" and n.name in infos and not infos[n.name].removed_by
            and not is_autocast_skipped(infos[n.name]))
        self.removed = frozenset(n.name for n in self.order if n.name in infos and infos[n.name].removed_by)
        #: removed nodes whose input passes through (detach); the others (asserts) are dropped
        self.bypass = frozenset(n.name for n in self.order if n.name in self.removed and bypassed(n.target))
        self.saturate_fills, self.restore_regions = saturate_fills, restore_regions
        #: each node's dtype as traced (a torch.autocast region's inputs are restored to it)
        self._traced = {n: v.dtype for n in self.order if isinstance(v := n.meta.get("val"), torch.Tensor)}
        #: the run under way: classified node -> its plan's accumulate dtype (FP32 accumulation), in run_plan only
        self._acc: dict[str, torch.dtype | None] = {}
        self.batches = [flatten_batch(b) for b in batches]
        self.simulate = simulates([*self.module.parameters(), *self.module.buffers(),
                                   *(x for flat in self.batches for x in flat)]) if simulate is None else simulate
        self.evaluations = 0
        self._dtype_of: DtypeOf = lambda name: None
        self._bases: dict[torch.dtype, list[Env]] = {}
        #: simulation: each node's real dtypes (its value's pytree, dtype leaves) in the run under way, per base run
        self._real: Env = {}
        self._base_real: dict[torch.dtype, list[Env]] = {}
        self._out_dtypes: dict[tuple[Any, ...], Any] = {}
        self._constants: dict[tuple[torch.fx.Node, torch.dtype], torch.Tensor] = {}

    # -- the Interpreter hook: one node, cast as the plan says -----------------------------------------------------
    def run_node(self, n: torch.fx.Node) -> Any:
        """Evaluate ``n`` with its floating arguments cast to its dtype under the current plan."""
        if n.op == "placeholder":
            return super().run_node(n)
        if n.name in self.bypass:  # Torch-TensorRT bypasses detach before autocast
            source = n.args[0]
            if self.simulate and isinstance(source, torch.fx.Node) and source in self._real:
                self._real[n] = self._real[source]
            return self.env[source] if isinstance(source, torch.fx.Node) else source
        if n.name in self.removed:
            return None  # Torch-TensorRT deletes assert nodes before autocast
        dtype = self._dtype_of(n.name) if n.name in self.classified else None
        if self.simulate:
            return self._run_simulated(n, dtype)
        with self._set_current_node(n):
            args, kwargs = self.fetch_args_kwargs_from_env(n)
            if self.restore_regions and qualified_op_name(n.target) == AUTOCAST_REGION_OP:
                args = self._restored(n.args, args)
            if dtype is not None:
                args, kwargs = cast_floats(args, dtype), cast_floats(kwargs, dtype)
                args, kwargs = self._saturated(n, args, kwargs, dtype)
            if _writes_in_place(n):  # add_, relu_: never let them write into an activation another run reuses
                args, kwargs = _cloned(args), _cloned(kwargs)
            self.evaluations += 1
            first = next((a for a in args if isinstance(a, torch.Tensor)), None)
            if first is not None and dtype is not None and accumulates_in_fp32(n.target, self._acc.get(n.name),
                                                                               first.dtype):
                return self._fp32_accumulated(n, args, kwargs, first)
            return getattr(self, n.op)(n.target, args, kwargs)

    # -- the plan's rule on values (plan_rules, as apply_plan applies it to the graph) -------------------------------
    def _restored(self, arg: Any, value: Any) -> Any:
        """A ``torch.autocast`` region's float inputs cast back to their traced dtypes (``arg``: its node args)."""
        if isinstance(arg, torch.fx.Node):
            if isinstance(value, torch.Tensor):
                to = restore_dtype(value.dtype, self._traced.get(arg))
                return value.to(to) if to is not None else value
            return value
        if isinstance(arg, (tuple, list)) and isinstance(value, (tuple, list)):
            return type(value)(self._restored(a, v) for a, v in zip(arg, value))
        return value

    def _saturated(self, n: torch.fx.Node, args: Any, kwargs: Any, dtype: torch.dtype) -> tuple[Any, Any]:
        """Fill values beyond ``dtype``'s range as its extreme (``saturate_fills``), else as infinity (fill ops only),
        as the torch backend writes them."""
        if not saturates(n.target, dtype):
            return args, kwargs
        extreme = self.saturate_fills
        return (tuple(saturated(a, dtype, extreme) for a in args),
                {k: saturated(v, dtype, extreme) for k, v in kwargs.items()})

    def _fp32_accumulated(self, n: torch.fx.Node, args: Any, kwargs: Any, first: torch.Tensor) -> Any:
        """``n`` with FP32 accumulation: on CUDA under cuBLAS FP32 reduction (as the planned graph runs it), else
        the ops :func:`~mixprec_explorer.backends.plan_rules.fp32_accumulated` names, computed."""
        if first.device.type == "cuda":
            flags = torch.backends.cuda.matmul
            before = flags.allow_fp16_reduced_precision_reduction
            flags.allow_fp16_reduced_precision_reduction = False
            try:
                return getattr(self, n.op)(n.target, args, kwargs)
            finally:
                flags.allow_fp16_reduced_precision_reduction = before
        return fp32_accumulated(n.target, tuple(args), dict(kwargs), lambda target, a, _: target(*a),
                                lambda target, a: target(*a))

    # -- simulation: values in FP32 storage, each with its real dtype beside it ---------------------------------
    def _run_simulated(self, n: torch.fx.Node, dtype: torch.dtype | None, only: torch.fx.Node | None = None) -> Any:
        """``n`` as a real run would compute it with its arguments cast to ``dtype``, low types simulated.

        ``only``: round just the arguments that come from that node, compute in FP32 and leave the output unrounded
        (one input edge's share of a node's rounding error, for :mod:`~mixprec_explorer.analysis.linear`).
        """
        with self._set_current_node(n):
            args, kwargs = self.fetch_args_kwargs_from_env(n)
            if dtype is not None and only is None:
                args, kwargs = self._saturated(n, args, kwargs, dtype)
            restore = self.restore_regions and qualified_op_name(n.target) == AUTOCAST_REGION_OP
            leaves, spec = tree_flatten((args, kwargs))
            sources, _ = tree_flatten(torch.fx.node.map_arg((n.args, n.kwargs), self._sources))  # type: ignore[arg-type]
            if len(sources) != len(leaves):
                sources = [_Source(None, None)] * len(leaves)
            in_dtypes: list[Any] = []
            for i, value in enumerate(leaves):
                if not isinstance(value, torch.Tensor):
                    in_dtypes.append(None)
                    continue
                node = sources[i].node
                real = sources[i].real if isinstance(sources[i].real, torch.dtype) else value.dtype
                if value.dtype in LOW_TYPES:  # held in its type (a .half() submodule's weights): to FP32 storage
                    value = leaves[i] = self._widened(node, value)
                back = restore_dtype(real, self._traced.get(node)) if restore and node is not None else None
                if back is not None:  # a torch.autocast region's input back to its traced dtype
                    if back in LOW_TYPES:
                        value = leaves[i] = rounded(value, back)
                    real = back
                if only is not None:
                    if node is only and value.is_floating_point() and dtype is not None and dtype != real:
                        leaves[i] = self._rounded(node, value, dtype)
                elif dtype is not None and value.is_floating_point():
                    if dtype != real and dtype != torch.float32:
                        leaves[i] = self._rounded(node, value, dtype)
                    real = dtype
                in_dtypes.append(real)
            args, kwargs = tree_unflatten(leaves, spec)
            if _writes_in_place(n):
                args, kwargs = _cloned(args), _cloned(kwargs)
            self.evaluations += 1
            out = getattr(self, n.op)(n.target, args, kwargs)
            if only is not None:
                return tree_map(lambda x: to_storage(x, None), out)
            if n.op == "get_attr":
                self._real[n] = tree_map(lambda x: x.dtype if isinstance(x, torch.Tensor) else None, out)
                return out
            real_out = self._output_dtypes(n, leaves, in_dtypes, spec, out, dtype)
            self._real[n] = real_out
            out_leaves, out_spec = tree_flatten(out)
            if exact_on_rounded(n.target):  # stored values are exact in their real dtype: so are their copies
                return tree_unflatten([to_storage(v, None) for v in out_leaves], out_spec)
            real_leaves, _ = tree_flatten(real_out, is_leaf=lambda x: x is None)
            if len(real_leaves) != len(out_leaves):
                real_leaves = [None] * len(out_leaves)
            return tree_unflatten([to_storage(v, r) for v, r in zip(out_leaves, real_leaves)], out_spec)

    def _sources(self, arg: torch.fx.Node) -> list[_Source]:
        """One :class:`_Source` per leaf of ``arg``'s value: the node, and the real dtype its run recorded."""
        count = len(tree_flatten(self.env[arg])[0])
        real = self._real.get(arg)
        reals = tree_flatten(real, is_leaf=lambda x: x is None)[0] if real is not None else []
        if len(reals) != count:
            reals = [None] * count
        return [_Source(arg, r) for r in reals]

    def _widened(self, node: torch.fx.Node | None, value: torch.Tensor) -> torch.Tensor:
        """A low-type value in FP32 storage (exact); a weight's is made once and kept."""
        if node is None or node.op != "get_attr":
            return value.to(torch.float32)
        key = (node, torch.float32)
        if key not in self._constants:
            self._constants[key] = value.to(torch.float32)
        return self._constants[key]

    def _rounded(self, node: torch.fx.Node | None, value: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """``value`` rounded to ``dtype``; a weight's rounding is done once and kept."""
        if node is None or node.op != "get_attr":
            return rounded(value, dtype)
        key = (node, dtype)
        if key not in self._constants:
            self._constants[key] = rounded(value, dtype)
        return self._constants[key]

    def _output_dtypes(self, n: torch.fx.Node, leaves: list[Any], in_dtypes: list[Any], spec: Any, out: Any,
                       dtype: torch.dtype | None) -> Any:
        """The dtypes ``n``'s output has in a real run (a pytree like it), from the op's meta kernel; cached."""
        key = (n, tuple(in_dtypes))
        found = self._out_dtypes.get(key, self)
        if found is not self:
            return found
        try:
            metas = [torch.empty_strided(v.shape, v.stride(), dtype=d, device="meta")
                     if isinstance(v, torch.Tensor) else v for v, d in zip(leaves, in_dtypes)]
            meta_args, meta_kwargs = tree_unflatten(metas, spec)
            result = tree_map(lambda x: x.dtype if isinstance(x, torch.Tensor) else None,
                              getattr(self, n.op)(n.target, meta_args, meta_kwargs))
        except Exception:  # no meta kernel: a floating output follows the node's dtype
            result = tree_map(lambda x: (dtype or x.dtype) if isinstance(x, torch.Tensor) and x.is_floating_point()
                              else x.dtype if isinstance(x, torch.Tensor) else None, out)
        self._out_dtypes[key] = result
        return result

    # -- whole runs ---------------------------------------------------------------------------------------------
    def run_plan(self, dtype_of: DtypeOf, accumulate: Mapping[str, torch.dtype | None] | None = None) -> list[Env]:
        """One complete pass per batch with each classified node in ``dtype_of(name)``; every node's value.
        ``accumulate``: node -> its plan record's ``accumulate_dtype`` (FP32: FP32 accumulation, module docs)."""
        self._acc = dict(accumulate or {})
        try:
            envs, _ = self._run_all(dtype_of)
        finally:
            self._acc = {}
        return envs

    def _run_all(self, dtype_of: DtypeOf) -> tuple[list[Env], list[Env]]:
        """Every node's value per batch, and (simulating) every node's real dtypes."""
        self._dtype_of = dtype_of
        envs, reals = [], []
        with torch.no_grad():
            for flat in self.batches:
                self._real = {}
                self.run(*flat, enable_io_processing=False)
                envs.append(self.env)
                reals.append(self._real)
        return envs, reals

    def base_dtypes(self, dtype: torch.dtype) -> list[Env]:
        """Simulating: per batch, every node's real dtypes in :meth:`base` ``(dtype)``'s run (empty lists otherwise)."""
        self.base(dtype)
        return self._base_real.get(dtype) or [{} for _ in self.batches]

    def evaluate(self, n: torch.fx.Node, env: Env, real: Env, dtype: torch.dtype, *,
                 only: torch.fx.Node | None = None) -> Any:
        """``n``'s value over the values of a run (``env``, with its real dtypes ``real``) when it runs in ``dtype``;
        ``only``: just its arguments from that node rounded (simulation only). Neither ``env`` nor ``real`` changes."""
        saved = self._dtype_of, self.env, self._real
        self._dtype_of, self.env, self._real = (lambda _: dtype), env, dict(real)
        try:
            with torch.no_grad():
                if only is not None:
                    return self._run_simulated(n, dtype, only)
                return self.run_node(n)
        finally:
            self._dtype_of, self.env, self._real = saved

    def grad_run(self, index: int) -> Env:
        """Batch ``index`` run all in FP32 with autograd on: every call node's floating output is differentiable (a
        leaf that requires grad where nothing upstream does), so one backward pass reaches every node."""
        self._dtype_of = lambda _: torch.float32
        env: Env = {}
        self.env, self._real = env, {}
        supplied = iter(self.batches[index])
        with torch.enable_grad():
            for node in self.order:
                if node.op == "placeholder":
                    env[node] = next(supplied)
                elif node.op == "output":
                    env[node] = self.fetch_args_kwargs_from_env(node)[0][0]
                else:
                    value = self.run_node(node)
                    if node.op == "call_function":
                        for leaf in tree_flatten(value)[0]:
                            if isinstance(leaf, torch.Tensor) and leaf.is_floating_point() and \
                                    not leaf.requires_grad and leaf.grad_fn is None:
                                leaf.requires_grad_()
                    env[node] = value
        return env

    def base(self, dtype: torch.dtype) -> list[Env]:
        """The run with every classified node in ``dtype``, computed once and kept."""
        envs = self._bases.get(dtype)
        if envs is None:
            envs, self._base_real[dtype] = self._run_all(lambda _: dtype)
            self._bases[dtype] = envs
        return envs

    def reference(self) -> list[torch.Tensor]:
        """Floating outputs of the all-FP32 run (every batch): what every error is measured against."""
        return self.outputs(self.base(torch.float32))

    def outputs(self, envs: Sequence[Env]) -> list[torch.Tensor]:
        """The floating-point outputs of a run, batch after batch."""
        out: list[torch.Tensor] = []
        for env in envs:
            leaves, _ = tree_flatten(env[self.order[-1]])
            out.extend(floating_leaves(leaves))
        return out

    # -- incremental runs ------------------------------------------------------------------------------------------
    def perturbed(self, base_dtype: torch.dtype, changed: dict[str, torch.dtype]) -> list[torch.Tensor]:
        """Outputs when ``changed`` nodes take other dtypes than the ``base_dtype`` run; only nodes whose inputs
        really changed are re-run, every other activation is the base run's."""
        first = min(self.index[n] for n in self.order if n.name in changed)
        bases = self.base(base_dtype)  # before the plan is set: a first base run sets its own
        reals = self._base_real.get(base_dtype) or [{} for _ in bases]
        self._dtype_of = lambda name: changed.get(name, base_dtype)
        envs = []
        with torch.no_grad():
            for base, real in zip(bases, reals):
                envs.append(self._rerun(base, real, set(changed), first))
        return self.outputs(envs)

    def _rerun(self, base: Env, base_real: Env, names: set[str], first: int) -> Env:
        env = dict(base)
        self.env = env
        self._real = dict(base_real)
        dirty: set[torch.fx.Node] = set()
        for node in self.order[first:]:
            if node.op == "output":
                if any(a in dirty for a in node.all_input_nodes):
                    env[node] = self.run_node(node)
                continue
            if node.name in self.removed and node.name not in self.bypass:
                continue
            if node.name not in names and not any(a in dirty for a in node.all_input_nodes):
                continue
            value = self.run_node(node)
            old = base[node]
            same = isinstance(value, torch.Tensor) and isinstance(old, torch.Tensor) and \
                value.dtype == old.dtype and value.shape == old.shape and \
                self._real.get(node) == base_real.get(node) and torch.equal(value, old)
            if not same:
                env[node] = value
                dirty.add(node)
        return env


class PlanEvaluator:
    """The exact error of a Settings' plan: one forward pass with the plan's dtypes, cached per set of low nodes.

    ``explorer`` decides each Settings' plan (an Explorer, any :class:`~mixprec_explorer.analysis.subject.Plans`);
    ``count`` is the number of full forward passes spent (cached plans cost nothing).
    """

    def __init__(self, explorer: Plans, runner: PlanRunner, metric: str = "rel_l2") -> None:
        self.explorer = explorer
        self.runner = runner
        self.metric = metric
        self.measure: Metric = get_metric(metric)
        self.reference = runner.reference()
        self.count = 0
        self._cache: dict[tuple[tuple[tuple[str, str], ...], ...], float] = {}

    def low_nodes(self, settings: Settings) -> set[str]:
        """Classified nodes the plan for ``settings`` runs in its low-precision type."""
        plan = self.explorer.plan(settings)
        low = settings.autocast_low_precision_type
        return {n for n in self.runner.classified if n in plan and plan[n].dtype == low}

    def targets(self, settings: Settings) -> tuple[dict[str, torch.dtype], dict[str, torch.dtype]]:
        """The plan for ``settings`` as the runner takes it: classified node -> the dtype its inputs are cast to
        (:func:`~mixprec_explorer.backends.plan_rules.target_dtype`; nodes the plan leaves as typed are absent), and
        node -> accumulate dtype where the plan names one."""
        plan = self.explorer.plan(settings)
        dtypes, acc = {}, {}
        for name in self.runner.classified:
            rec = plan.get(name)
            dtype = target_dtype(rec)
            if dtype is not None:
                dtypes[name] = dtype
            if rec is not None and rec.accumulate_dtype is not None:
                acc[name] = rec.accumulate_dtype
        return dtypes, acc

    def run(self, settings: Settings) -> list[Env]:
        """One forward pass of the plan for ``settings`` (every node's value, per batch), uncached."""
        dtypes, acc = self.targets(settings)
        return self.runner.run_plan(dtypes.get, accumulate=acc)

    def error(self, settings: Settings) -> float:
        """Error of the plan for ``settings`` against the FP32 reference (metric units)."""
        dtypes, acc = self.targets(settings)
        key = (tuple(sorted((n, str(d)) for n, d in dtypes.items())),
               tuple(sorted((n, str(d)) for n, d in acc.items())))
        if key not in self._cache:
            self.count += 1
            envs = self.runner.run_plan(dtypes.get, accumulate=acc)
            self._cache[key] = self.measure(self.runner.outputs(envs), self.reference)
        return self._cache[key]
