"""Sensitivity: how much output error each node (and module) causes in low precision, and removes in FP32.

Two base runs are cached: everything classified in FP32, and everything in the low-precision type
(casts inserted before each node, as Torch-TensorRT's autocast pass does). For one node we change
its dtype, then re-run only the nodes downstream of it whose inputs actually changed, reusing every
other cached activation. Floating-point arguments are cast; integer ones are left alone (indices).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch.utils._pytree import tree_flatten

from .capture import is_autocast_skipped
from .errors import OptionError

if TYPE_CHECKING:
    from .explorer import Explorer


def rel_l2(out: Sequence[torch.Tensor], ref: Sequence[torch.Tensor]) -> float:
    """||out - ref|| / ||ref|| over all floating outputs, computed in FP32 (0 when both are zero)."""
    num = den = 0.0
    for a, b in zip(out, ref):
        a32, b32 = a.detach().float(), b.detach().float()
        num += float((a32 - b32).pow(2).sum())
        den += float(b32.pow(2).sum())
    if math.isnan(num) or math.isinf(num):
        return math.inf  # overflow or NaN in the output: as wrong as it gets
    if den == 0.0:
        return 0.0 if num == 0.0 else math.inf
    return math.sqrt(num / den)


def _gain(before: float, after: float) -> float:
    """Error removed; inf when a change turns a non-finite output finite, 0 when both stay non-finite."""
    if math.isinf(before) and math.isinf(after):
        return 0.0
    return before - after


METRICS: dict[str, Callable[[Sequence[torch.Tensor], Sequence[torch.Tensor]], float]] = {"rel_l2": rel_l2}


@dataclass(frozen=True)
class Sensitivity:
    """Per node and per module: error when only it runs low, and error removed when only it stays FP32."""

    metric: str  #: name of the error metric ("rel_l2")
    low_dtype: torch.dtype  #: the low-precision type used
    all_low_error: float  #: error of the all-low-precision plan
    node_low_error: dict[str, float]  #: node -> error when only this node is low precision
    node_fp32_gain: dict[str, float]  #: node -> all_low_error minus error when only this node stays FP32
    module_low_error: dict[str, float]  #: module path -> error when only its nodes are low precision
    module_fp32_gain: dict[str, float]  #: module path -> error removed when only its nodes stay FP32
    nodes_evaluated: int  #: node evaluations spent (the naive method spends one forward per change)
    naive_evaluations: int  #: what one full forward pass per change would have cost, in node evaluations

    def ranking(self, by: str = "module") -> list[tuple[str, float]]:
        """(name, error removed in FP32), most helpful first."""
        gains = self.module_fp32_gain if by == "module" else self.node_fp32_gain
        low = self.module_low_error if by == "module" else self.node_low_error
        return sorted(gains.items(), key=lambda kv: (-kv[1], -low.get(kv[0], 0.0)))

    def figure(self, by: str = "module", top: int = 30):
        """Sorted bar chart: error removed when kept in FP32, and error when alone in low precision."""
        from .viz.charts import build_sensitivity_chart

        return build_sensitivity_chart(self, by=by, top=top)


def _cast(value: Any, dtype: torch.dtype) -> Any:
    """Floating tensors in (nested tuples, lists, dicts of) arguments cast to ``dtype``."""
    if isinstance(value, torch.Tensor):
        return value.to(dtype) if value.is_floating_point() else value
    if isinstance(value, (tuple, list)):
        return type(value)(_cast(v, dtype) for v in value)
    if isinstance(value, dict):
        return {k: _cast(v, dtype) for k, v in value.items()}
    return value


class _Runner:
    """Runs the unlifted module node by node with a dtype per classified node, caching activations."""

    def __init__(self, explorer: Explorer, inputs: tuple[Any, ...]) -> None:
        self.gm = explorer.exported_program.module()
        self.interp = torch.fx.Interpreter(self.gm, garbage_collect_values=False)
        self.order = [n for n in self.gm.graph.nodes]
        self.index = {n: i for i, n in enumerate(self.order)}
        infos = explorer.nodes
        self.classified = {
            n.name for n in self.order
            if n.op == "call_function" and n.name in infos and not infos[n.name].removed_by
            and not is_autocast_skipped(infos[n.name])
        }
        self.removed = {n.name for n in self.order if n.name in infos and infos[n.name].removed_by}
        flat, _ = tree_flatten(inputs)
        self.inputs = flat
        self.evaluations = 0
        self._bases: dict[torch.dtype, dict[torch.fx.Node, Any]] = {}

    def base(self, dtype: torch.dtype) -> dict[torch.fx.Node, Any]:
        """The environment with every classified node in ``dtype``, computed once and kept."""
        env = self._bases.get(dtype)
        if env is None:
            env = self._bases[dtype] = self.full(lambda _: dtype)
        return env

    def reference(self) -> list[torch.Tensor]:
        """Outputs of the all-FP32 run: what every error is measured against."""
        return self.outputs(self.base(torch.float32))

    def _eval(self, node: torch.fx.Node, env: dict[torch.fx.Node, Any], dtype: torch.dtype | None) -> Any:
        self.interp.env = env
        args, kwargs = self.interp.fetch_args_kwargs_from_env(node)
        if dtype is not None:
            args, kwargs = _cast(args, dtype), _cast(kwargs, dtype)
        self.evaluations += 1
        return getattr(self.interp, node.op)(node.target, args, kwargs)

    def full(self, dtype_of: Callable[[str], torch.dtype | None]) -> dict[torch.fx.Node, Any]:
        """One complete pass; returns the environment of every node's value."""
        env: dict[torch.fx.Node, Any] = {}
        placeholders = iter(self.inputs)
        with torch.no_grad():
            for node in self.order:
                if node.op == "placeholder":
                    env[node] = next(placeholders)
                elif node.op == "output":
                    env[node] = self._eval(node, env, None)
                elif node.name in self.removed:
                    env[node] = None  # Torch-TensorRT deletes assert nodes before autocast
                else:
                    env[node] = self._eval(node, env, dtype_of(node.name) if node.name in self.classified else None)
        return env

    def outputs(self, env: dict[torch.fx.Node, Any]) -> list[torch.Tensor]:
        leaves, _ = tree_flatten(env[self.order[-1]])
        return [t for t in leaves if isinstance(t, torch.Tensor) and t.is_floating_point()]

    def perturbed(self, base: dict[torch.fx.Node, Any], changed: dict[str, torch.dtype],
                  base_dtype: torch.dtype) -> list[torch.Tensor]:
        """Outputs when ``changed`` nodes take other dtypes; only dirty downstream nodes are re-run."""
        env = dict(base)
        dirty: set[torch.fx.Node] = set()
        names = set(changed)
        first = min(self.index[n] for n in self.order if n.name in names)
        with torch.no_grad():
            for node in self.order[first:]:
                if node.name in names:
                    value = self._eval(node, env, changed[node.name])
                elif node.op == "output" or node.name in self.removed:
                    if node.op == "output" and any(a in dirty for a in node.all_input_nodes):
                        env[node] = self._eval(node, env, None)
                    continue
                elif any(a in dirty for a in node.all_input_nodes):
                    value = self._eval(node, env, base_dtype if node.name in self.classified else None)
                else:
                    continue
                old = base[node]
                same = isinstance(value, torch.Tensor) and isinstance(old, torch.Tensor) and \
                    value.dtype == old.dtype and value.shape == old.shape and torch.equal(value, old)
                if not same:
                    env[node] = value
                    dirty.add(node)
        return self.outputs(env)


def compute_sensitivity(explorer: Explorer, inputs: Sequence[Any] | None = None, metric: str = "rel_l2",
                        low_dtype: torch.dtype | None = None, nodes: Iterable[str] | None = None,
                        progress: bool = True, runner: _Runner | None = None) -> Sensitivity:
    """Sensitivity of every classified node and module (or of ``nodes`` only) on ``inputs``.

    ``low_dtype`` defaults to the settings' low-precision type, else float16. ``runner`` shares cached
    activations with a caller that has one for the same inputs. Raises KeyError naming the known
    metrics for an unknown ``metric``.
    """
    if metric not in METRICS:
        raise OptionError(f"unknown metric {metric!r}; known: {', '.join(METRICS)}")
    measure = METRICS[metric]
    low = low_dtype or explorer.settings.autocast_low_precision_type or torch.float16
    args = tuple(inputs) if inputs is not None else explorer.example_inputs
    run = runner or _Runner(explorer, args)
    fp32_env, low_env = run.base(torch.float32), run.base(low)
    reference = run.reference()
    all_low = measure(run.outputs(low_env), reference)
    chosen = [n for n in (nodes if nodes is not None else explorer.nodes) if n in run.classified]
    modules: dict[str, list[str]] = {}
    for name in chosen:
        modules.setdefault(explorer.nodes[name].module, []).append(name)
    units = [(name, [name]) for name in chosen] + [(f"module:{m}", members) for m, members in modules.items()]
    bar = _progress(len(units) * 2, progress)
    node_low, node_gain, module_low, module_gain = {}, {}, {}, {}
    done: dict[frozenset[str], tuple[float, float]] = {}  # a one-node module costs nothing extra
    for key, members in units:
        group = frozenset(members)
        if group not in done:
            done[group] = (
                measure(run.perturbed(fp32_env, dict.fromkeys(members, low), torch.float32), reference),
                measure(run.perturbed(low_env, dict.fromkeys(members, torch.float32), low), reference),
            )
        err_low, err_kept = done[group]
        bar(2)
        if key.startswith("module:"):
            module_low[key[7:]], module_gain[key[7:]] = err_low, _gain(all_low, err_kept)
        else:
            node_low[key], node_gain[key] = err_low, _gain(all_low, err_kept)
    bar(0, close=True)
    per_pass = len(run.classified) + 1
    return Sensitivity(metric, low, all_low, node_low, node_gain, module_low, module_gain,
                       nodes_evaluated=run.evaluations, naive_evaluations=per_pass * (2 + 2 * len(units)))


def _progress(total: int | None, enabled: bool, desc: str = "sensitivity") -> Callable[..., None]:
    """A tqdm bar (notebook or terminal) advanced by the returned function; a no-op when disabled.

    Call it as ``step(n)``, ``step(0, note="best: ...")`` to show the state so far, ``step(0, close=True)``.
    """
    if not enabled:
        return lambda n, close=False, note=None: None
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc=desc, unit="run", leave=False)

    def step(n: int, close: bool = False, note: str | None = None) -> None:
        bar.update(n)
        if note is not None:
            bar.set_postfix_str(note)
        if close:
            bar.close()

    return step
