"""Where a plan is evaluated: the captured program run node by node with each classified node's dtype.

:class:`PlanRunner` is a ``torch.fx.Interpreter`` over the unlifted ``ep.module()`` (the graph Torch-TensorRT's
autocast pass classifies). Before a classified node runs, its floating-point arguments are cast to the node's
dtype, as the pass inserts casts; integer arguments (indices) are left alone, and the assert nodes
Torch-TensorRT's pre-lowering deletes are skipped. Whole-graph activations are cached per base dtype (all FP32,
all low), so the error of a change to a few nodes costs a re-run of only the nodes downstream of them whose
inputs really changed. :class:`PlanEvaluator` gives the exact error of a Settings' plan with one forward pass.

Sensitivity, search, the frontier and the widget's panel all evaluate plans through these two classes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch.utils._pytree import tree_flatten

from ..capture import is_autocast_skipped
from ..inputs import Batch, flatten_batch
from .metrics import Metric, floating_leaves, get_metric

if TYPE_CHECKING:
    from ..explorer import Explorer
    from ..settings import Settings

__all__ = ["DtypeOf", "Env", "PlanEvaluator", "PlanRunner", "cast_floats"]

Env = dict[torch.fx.Node, Any]  #: every node's value after a run
DtypeOf = Callable[[str], "torch.dtype | None"]  #: classified node name -> the dtype it runs in (None: as given)


def cast_floats(value: Any, dtype: torch.dtype) -> Any:
    """Floating tensors in (nested tuples, lists, dicts of) arguments cast to ``dtype``; the rest as given."""
    if isinstance(value, torch.Tensor):
        return value.to(dtype) if value.is_floating_point() else value
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


class PlanRunner(torch.fx.Interpreter):
    """Runs the captured program with a dtype per classified node over one or more batches, caching activations.

    Parameters
    ----------
    explorer: the Explorer whose program (and node records) to run.
    batches: positional inputs, one tuple per batch (see :func:`~mixprec_explorer.inputs.normalize_inputs`).

    Attributes: ``classified`` (the node names autocast classifies), ``evaluations`` (node evaluations so far:
    the cost the incremental re-runs save), ``batches``.

    >>> import torch
    >>> from mixprec_explorer import Explorer
    >>> from mixprec_explorer.examples import reference_autocast_model
    >>> ex = Explorer(*reference_autocast_model())
    >>> run = PlanRunner(ex, [ex.example_inputs])
    >>> sorted(run.classified)
    ['linear', 'linear_1', 'linear_2']
    >>> [t.dtype for t in run.outputs(run.base(torch.float16))]
    [torch.float16]
    """

    def __init__(self, explorer: Explorer, batches: Sequence[Batch]) -> None:
        super().__init__(explorer.exported_program.module(), garbage_collect_values=False)
        self.order: list[torch.fx.Node] = list(self.graph.nodes)
        self.index = {n: i for i, n in enumerate(self.order)}
        infos = explorer.nodes
        self.classified: frozenset[str] = frozenset(
            n.name for n in self.order
            if n.op == "call_function" and n.name in infos and not infos[n.name].removed_by
            and not is_autocast_skipped(infos[n.name]))
        self.removed = frozenset(n.name for n in self.order if n.name in infos and infos[n.name].removed_by)
        self.batches = [flatten_batch(b) for b in batches]
        self.evaluations = 0
        self._dtype_of: DtypeOf = lambda name: None
        self._bases: dict[torch.dtype, list[Env]] = {}

    # -- the Interpreter hook: one node, cast as the plan says -----------------------------------------------------
    def run_node(self, n: torch.fx.Node) -> Any:
        """Evaluate ``n`` with its floating arguments cast to its dtype under the current plan."""
        if n.op == "placeholder":
            return super().run_node(n)
        if n.name in self.removed:
            return None  # Torch-TensorRT deletes assert nodes before autocast
        dtype = self._dtype_of(n.name) if n.name in self.classified else None
        with self._set_current_node(n):
            args, kwargs = self.fetch_args_kwargs_from_env(n)
            if dtype is not None:
                args, kwargs = cast_floats(args, dtype), cast_floats(kwargs, dtype)
            if _writes_in_place(n):  # add_, relu_: never let them write into an activation another run reuses
                args, kwargs = _cloned(args), _cloned(kwargs)
            self.evaluations += 1
            return getattr(self, n.op)(n.target, args, kwargs)

    # -- whole runs ---------------------------------------------------------------------------------------------
    def run_plan(self, dtype_of: DtypeOf) -> list[Env]:
        """One complete pass per batch with each classified node in ``dtype_of(name)``; every node's value."""
        self._dtype_of = dtype_of
        envs = []
        with torch.no_grad():
            for flat in self.batches:
                self.run(*flat, enable_io_processing=False)
                envs.append(self.env)
        return envs

    def base(self, dtype: torch.dtype) -> list[Env]:
        """The run with every classified node in ``dtype``, computed once and kept."""
        envs = self._bases.get(dtype)
        if envs is None:
            envs = self._bases[dtype] = self.run_plan(lambda _: dtype)
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
        self._dtype_of = lambda name: changed.get(name, base_dtype)
        envs = []
        with torch.no_grad():
            for base in bases:
                envs.append(self._rerun(base, set(changed), first))
        return self.outputs(envs)

    def _rerun(self, base: Env, names: set[str], first: int) -> Env:
        env = dict(base)
        self.env = env
        dirty: set[torch.fx.Node] = set()
        for node in self.order[first:]:
            if node.op == "output":
                if any(a in dirty for a in node.all_input_nodes):
                    env[node] = self.run_node(node)
                continue
            if node.name in self.removed:
                continue
            if node.name not in names and not any(a in dirty for a in node.all_input_nodes):
                continue
            value = self.run_node(node)
            old = base[node]
            same = isinstance(value, torch.Tensor) and isinstance(old, torch.Tensor) and \
                value.dtype == old.dtype and value.shape == old.shape and torch.equal(value, old)
            if not same:
                env[node] = value
                dirty.add(node)
        return env


class PlanEvaluator:
    """The exact error of a Settings' plan: one forward pass with the plan's dtypes, cached per set of low nodes.

    ``count`` is the number of full forward passes spent (cached plans cost nothing).
    """

    def __init__(self, explorer: Explorer, runner: PlanRunner, metric: str = "rel_l2") -> None:
        self.explorer = explorer
        self.runner = runner
        self.metric = metric
        self.measure: Metric = get_metric(metric)
        self.reference = runner.reference()
        self.count = 0
        self._cache: dict[tuple[str, ...], float] = {}

    def low_nodes(self, settings: Settings) -> set[str]:
        """Classified nodes the plan for ``settings`` runs in its low-precision type."""
        plan = self.explorer.plan(settings)
        low = settings.autocast_low_precision_type
        return {n for n in self.runner.classified if n in plan and plan[n].dtype == low}

    def error(self, settings: Settings) -> float:
        """Error of the plan for ``settings`` against the FP32 reference (metric units)."""
        low = self.low_nodes(settings)
        key = tuple(sorted(low))
        if key not in self._cache:
            self.count += 1
            dtype = settings.autocast_low_precision_type or torch.float16
            envs = self.runner.run_plan(lambda n: dtype if n in low else torch.float32)
            self._cache[key] = self.measure(self.runner.outputs(envs), self.reference)
        return self._cache[key]
