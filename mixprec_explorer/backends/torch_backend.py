"""PyTorch backend: the plan applied to a copy of the graph as Torch-TensorRT's autocast pass does; CPU or CUDA.

:class:`TorchBackend` is the backend protocol (compile, run, profile) and :class:`TorchProgram` its compiled
handle. How the plan is applied (casts, FP32 accumulation, weight-cast folding) is in
:mod:`~mixprec_explorer.backends.torch_plan`; profiling and per-node latency in
:mod:`~mixprec_explorer.backends.torch_profile`. Their names are re-exported here.
"""

from __future__ import annotations

import dataclasses
import inspect
import platform
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from ..errors import BackendUnavailable, OptionError, OptionTypeError
from ..records import EndToEnd, LayerRecord
from .base import Compiled, Profile
from .options import check_bool, check_int, check_one_of
from .timing import adaptive_plan, device_synchronizer, summarize_ms, time_runs, time_until_stable
from .torch_plan import OWNER, PlannedGraph, apply_plan, flatten_inputs, load_module, to_device
from .torch_plan import RESULT as RESULT  # re-exported
from .torch_plan import ROLE as ROLE  # re-exported
from .torch_profile import NODE_RANGE as NODE_RANGE  # re-exported
from .torch_profile import RUN_RANGE as RUN_RANGE  # re-exported
from .torch_profile import (
    RUN_WALL,
    attribute_events,
    iter_node_values,
    middle_runs,
    observe_dtypes,
    profiled_runs,
    run_ranged,
    run_simulated,
)
from .worker import report_progress

if TYPE_CHECKING:
    from ..policy import PrecisionPlan
    from .subject import Model

__all__ = ["MODES", "PlannedGraph", "TorchBackend", "TorchProgram", "apply_plan", "attribute_events", "flatten_inputs",
           "iter_node_values", "observe_dtypes", "run_ranged", "time_runs", "to_device",
           "load_module", "summarize_ms"]

NAME = "torch"
MODES = ("eager", "compiled")


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

    @property
    def simulates(self) -> bool:
        """True where forward passes simulate low precision: the eager graph on the CPU (timing stays real)."""
        return self.mode == "eager" and torch.device(self.planned.device).type == "cpu"

    def simulated(self, *inputs: Any) -> tuple[Any, ...]:
        """The flat outputs with low precision simulated at FP32 speed (:mod:`~mixprec_explorer.backends.simulate`)."""
        return run_simulated(self.planned.module, flatten_inputs(to_device(tuple(inputs), self.planned.device)))


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

    def check_options(self, method: str, options: Mapping[str, Any]) -> None:
        """Raise OptionError / OptionTypeError for a value ``compile`` or ``profile`` would refuse (names are
        checked by the caller against the signatures); run before anything is shipped or compiled."""
        where = f"the torch backend's {method}"
        if method == "profile":
            if "profile_runs" in options:
                check_int(where, "profile_runs", options["profile_runs"], low=1)
            return
        if "mode" in options:
            check_one_of(where, "mode", options["mode"], MODES)
        for name in ("cast_non_float", "fold_weight_casts"):
            if name in options:
                check_bool(where, name, options[name])
        extra = options.get("compile_options")
        if extra is None:
            return
        if not isinstance(extra, Mapping):
            raise OptionTypeError(f"{where}: compile_options must be a dict of torch.compile keywords; got {extra!r}")
        known = [n for n, p in inspect.signature(torch.compile).parameters.items() if p.kind is p.KEYWORD_ONLY]
        unknown = sorted(set(extra) - set(known))
        if unknown:
            raise OptionTypeError(f"{where}: compile_options {', '.join(map(repr, unknown))} are not torch.compile "
                                  f"keywords; it takes {', '.join(map(repr, known))}")
        if extra and options.get("mode", "eager") != "compiled":
            raise OptionError(f"{where}: compile_options are torch.compile's, used only with mode='compiled'; "
                              f"got mode={options.get('mode', 'eager')!r}")
        if extra.get("mode") is not None:
            from torch._inductor import list_mode_options

            check_one_of(f"{where} (torch.compile)", "compile_options['mode']", extra["mode"], list_mode_options())

    def compile(self, explorer: Model, plan: PrecisionPlan, device: str, *, mode: str = "eager",
                cast_non_float: bool = False, fold_weight_casts: bool = True,
                compile_options: dict[str, Any] | None = None) -> Compiled:
        """Apply ``plan`` to a copy of the graph on ``device``; ``mode="compiled"`` also runs
        ``torch.compile`` (with ``compile_options``) and one warm-up call, so ``compile_s`` includes Inductor.

        Raises ValueError for an unknown mode; BackendUnavailable for a CUDA device where CUDA is absent.
        """
        if mode not in MODES:
            raise OptionError(f"mode must be one of {MODES}, got {mode!r}")
        if torch.device(device).type == "cuda" and not torch.cuda.is_available():
            raise BackendUnavailable(f"device {device!r} asked for, but torch.cuda.is_available() is False here")
        start = time.perf_counter()
        settings = plan.settings
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
            device_synchronizer(device)()
        program = TorchProgram(planned=planned, mode=mode, runner=runner)
        return Compiled(backend=NAME, device=str(device), settings=settings,
                        compile_s=time.perf_counter() - start, handle=program, notes=tuple(notes))

    def run(self, explorer: Model, compiled: Compiled, inputs: Sequence[Any]) -> Any:
        """The compiled plan's outputs for ``inputs`` (on its device)."""
        return compiled.handle(*inputs)

    def profile(self, explorer: Model, compiled: Compiled, inputs: Sequence[Any], runs: int, warmup: int, *,
                profile_runs: int = 10) -> Profile:
        """Observed dtypes per node, per-node latency from ``profile_runs`` profiled runs (median), and end-to-end
        latency over ``runs`` runs after ``warmup``, with profiling off and device synchronisation."""
        program: TorchProgram = compiled.handle
        device = program.planned.device
        args = to_device(tuple(inputs), device)
        flat = flatten_inputs(args)
        sync = device_synchronizer(device)
        runs, warmup = max(1, int(runs)), max(0, int(warmup))
        n_prof = max(1, min(int(profile_runs), runs))
        signature = tuple((tuple(x.shape), x.dtype) if isinstance(x, torch.Tensor) else repr(x) for x in flat)
        with torch.no_grad(), program.planned.precision():
            report_progress("a first run, to see how long one takes")
            first_s = time_runs(lambda: program.runner(*args), 1, sync)[0] / 1000.0
            plan = adaptive_plan(first_s, runs, warmup, n_prof)
            observed = program.observed.get(signature)
            if observed is None and not plan.adaptive:
                observed = program.observed[signature] = observe_dtypes(program.planned.module, flat)
            report_progress(plan.announce)
            time_runs(lambda: program.runner(*args), plan.warmup, sync)
            times = time_until_stable(lambda: program.runner(*args), runs, sync, budget_s=plan.budget_s,
                                      each=lambda k: report_progress(f"timing run {k} (one run {first_s:.2g} s)",
                                                                     k, runs)) \
                if plan.adaptive else time_runs(lambda: program.runner(*args), runs, sync)
            end_to_end = summarize_ms(times)
            eager = program.mode == "eager"
            module = program.planned.module
            report_progress(f"profiling up to {plan.profile_runs} run{'s' * (plan.profile_runs > 1)}")
            if eager and not plan.adaptive:
                run_ranged(module, flat)  # warm the node-by-node path too
            seen: dict[str, Any] = {"dtypes": observed}

            def one() -> None:
                if not eager:
                    program.runner(*args)
                    return
                found = run_ranged(module, flat, observe=seen["dtypes"] is None)  # a first run observes dtypes too
                seen["dtypes"] = seen["dtypes"] if found is None else found

            (ranged, loose, kernels, orphan), n_prof = profiled_runs(
                one, plan.profile_runs, torch.device(device).type, sync, budget_s=plan.budget_s / 2)
            observed = seen["dtypes"] if seen["dtypes"] is not None else observe_dtypes(module, flat)
            program.observed[signature] = observed
        result = self._assemble(explorer, compiled, observed, ranged, loose, kernels, orphan, n_prof, end_to_end)
        if plan.adaptive:
            note = plan.note(len(times), runs)
            result = dataclasses.replace(result, notes=(*result.notes, note))
        return result

    @staticmethod
    def _assemble(explorer: Model, compiled: Compiled, observed: dict, ranged: dict, loose: dict,
                  kernels: dict, orphan_us: float, n_prof: int, end_to_end: EndToEnd) -> Profile:
        program: TorchProgram = compiled.handle
        planned = program.planned
        plan = compiled.plan  # set by compile_plan (the plan it passed down); None: no predicted dtypes
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
            rec = plan.get(owner) if plan is not None else None
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

