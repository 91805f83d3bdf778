"""Backends: compile a plan and measure it, behind one small protocol, registered by name here and loaded lazily.

:func:`compile_plan` and :func:`profile_compiled` wrap every backend. They choose one ("auto" means TensorRT
where it is usable, else PyTorch, and they say which). They cache compiles by model, plan, inputs, backend,
device and options, and show progress. By default the work runs in a worker process, so a crash comes back
as :class:`~mixprec_explorer.errors.WorkerCrashed` and does not take the caller down. A backend whose library
is missing is listed as unavailable, with the reason and what to install; it never raises an ImportError.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import importlib.util
import logging
import os
import sys
import tempfile
import weakref
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from .._optional import install_hint
from ..errors import BackendUnavailable, OptionError, OptionTypeError
from ..settings import Settings
from .base import Backend, CacheKey, Compiled, Profile
from .fingerprint import describe_inputs, fingerprint_plan, fingerprint_program
from .timing import device_synchronizer, summarize_ms, time_interleaved
from .torch_plan import to_device
from .worker import Ref, get_worker, progress_bar, report_progress, shutdown_worker

if TYPE_CHECKING:
    from ..explorer import Explorer

__all__ = [
    "AUTO_ORDER",
    "COMPILED",
    "EXPLORER",
    "Backend",
    "CacheKey",
    "Compiled",
    "Profile",
    "WorkerHandle",
    "available_backends",
    "cache_key",
    "choose_backend",
    "clear_cache",
    "compile_plan",
    "dispatch",
    "get_backend",
    "profile_compiled",
    "register_backend",
    "run_compiled",
    "shutdown_worker",
    "time_plans",
]

logger = logging.getLogger("mixprec_explorer.backends")

#: The order "auto" tries backends in.
AUTO_ORDER = ("tensorrt", "torch")
#: Compiled results kept by the cache (least recently used dropped first).
CACHE_SIZE = 8
EXPLORER = "<explorer>"  #: stands for the explorer in :func:`dispatch` arguments
COMPILED = "<compiled>"  #: stands for the compiled result in :func:`dispatch` arguments


@dataclass(frozen=True)
class _Entry:
    target: str | Callable[[], Any]  #: "module:Class" (imported on first use) or a factory
    requires: tuple[str, ...]  #: top-level modules that must be installed
    extra: str | None  #: the package extra that installs them


_REGISTRY: dict[str, _Entry] = {}
_INSTANCES: dict[str, Any] = {}
_AVAILABILITY: dict[str, tuple[bool, str]] = {}
_CACHE: OrderedDict[CacheKey, Compiled] = OrderedDict()


def register_backend(name: str, target: str | Callable[[], Any], *, requires: Sequence[str] = (),
                     extra: str | None = None) -> None:
    """Register a backend by name: ``target`` is ``"package.module:Class"`` (imported lazily) or a factory."""
    _REGISTRY[name] = _Entry(target, tuple(requires), extra)
    _INSTANCES.pop(name, None)
    _AVAILABILITY.pop(name, None)


register_backend("tensorrt", "mixprec_explorer.backends.tensorrt:TensorRTBackend", requires=("torch_tensorrt",),
                 extra="tensorrt")
register_backend("torch", "mixprec_explorer.backends.torch_backend:TorchBackend")


def _instance(name: str) -> Any:
    if name not in _INSTANCES:
        target = _REGISTRY[name].target
        if isinstance(target, str):
            module, _, attr = target.partition(":")
            target = getattr(importlib.import_module(module), attr)
        _INSTANCES[name] = target()
    return _INSTANCES[name]


def _with_hint(reason: str, extra: str | None) -> str:
    return reason if extra is None or "pip install" in reason else f"{reason}; install with {install_hint(extra)}"


def _check(name: str) -> tuple[bool, str]:
    entry = _REGISTRY[name]
    for module in entry.requires:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            return False, _with_hint(f"{module} is not installed", entry.extra)
    try:
        backend = _instance(name)
    except Exception as err:  # a broken or missing backend module is reported, never raised
        return False, _with_hint(f"backend module {entry.target} failed to import ({type(err).__name__}: {err})",
                                 entry.extra)
    try:
        ok, reason = backend.availability()
    except Exception as err:
        ok, reason = False, f"its availability check raised {type(err).__name__}: {err}"
    return bool(ok), "" if ok else _with_hint(str(reason), entry.extra)


def available_backends(refresh: bool = False) -> dict[str, tuple[bool, str]]:
    """Every registered backend: (usable here, reason in words when not). Checked once per process unless ``refresh``.

    >>> available_backends()["torch"]
    (True, '')
    """
    out = {}
    for name in _REGISTRY:
        if refresh or name not in _AVAILABILITY:
            _AVAILABILITY[name] = _check(name)
        out[name] = _AVAILABILITY[name]
    return out


def get_backend(name: str) -> Any:
    """The backend registered as ``name``; BackendUnavailable (with the reason and install hint) if unusable."""
    if name not in _REGISTRY:
        raise BackendUnavailable(f"no backend named {name!r}; registered: {', '.join(sorted(_REGISTRY))}")
    ok, reason = available_backends()[name]
    if not ok:
        raise BackendUnavailable(f"backend {name!r} is unavailable: {reason}")
    return _instance(name)


def choose_backend(backend: str = "auto") -> tuple[str, str]:
    """(backend name, note saying why) for "auto", "tensorrt", "torch" or any registered name; note is "" unless auto."""
    if backend != "auto":
        get_backend(backend)  # raises with the reason when unusable
        return backend, ""
    status = available_backends()
    skipped: list[tuple[str, str]] = []
    for name in AUTO_ORDER:
        ok, reason = status.get(name, (False, "not registered"))
        if ok:
            why = "; ".join(f"{n} unavailable: {r}" for n, r in skipped)
            return name, f"backend='auto' chose {name!r}" + (f" ({why})" if why else "")
        skipped.append((name, reason))
    raise BackendUnavailable("no backend is usable: " + "; ".join(f"{n}: {r}" for n, r in skipped))


# -- keys and small helpers -------------------------------------------------------------------------------------
def _device(device: str | torch.device | None) -> str:
    if device is None:
        return "cuda:0" if torch.cuda.is_available() else "cpu"
    parsed = torch.device(device)
    return f"cuda:{parsed.index or 0}" if parsed.type == "cuda" else str(parsed)


def _freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(sorted((str(k), _freeze(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [_freeze(v) for v in value]
        return tuple(sorted(items, key=repr) if isinstance(value, (set, frozenset)) else items)
    try:
        hash(value)
    except TypeError:
        return repr(value)
    return value


def _inputs(explorer: Explorer, inputs: Any) -> tuple[Any, ...]:
    if inputs is None:
        return tuple(explorer.example_inputs)
    return tuple(inputs) if isinstance(inputs, (tuple, list)) else (inputs,)


def _cpu(value: Any) -> Any:
    return torch.utils._pytree.tree_map(lambda x: x.detach().cpu() if isinstance(x, torch.Tensor) else x, value)


def cache_key(explorer: Explorer, settings: Settings, backend: str, device: str,
              options: dict[str, Any] | None = None) -> CacheKey:
    """The compile cache's key: model fingerprint, settings, plan digest, example inputs, backend, device, options."""
    shapes, dtype_names = describe_inputs(explorer.example_inputs)
    return CacheKey(model_fingerprint=fingerprint_program(explorer.exported_program), settings=settings,
                    input_shapes=shapes, backend=backend, device=device,
                    options=_freeze(dict(options or {})), plan_digest=fingerprint_plan(explorer.plan(settings)),
                    input_dtypes=dtype_names)


def clear_cache() -> None:
    """Forget every cached compile."""
    _CACHE.clear()


def _remember(key: CacheKey, compiled: Compiled) -> None:
    _CACHE[key] = compiled
    _CACHE.move_to_end(key)
    while len(_CACHE) > CACHE_SIZE:
        _CACHE.popitem(last=False)


def _announce(note: str, loud: bool) -> None:
    logger.info(note)
    if loud:
        print(f"mixprec_explorer: {note}", file=sys.stderr)


# -- where the work runs --------------------------------------------------------------------------------------
@dataclass(eq=False)
class WorkerHandle:
    """Compiled.handle of a compile held in the worker process; re-pointed in place when it is redone."""

    generation: int  #: which worker process holds it (a restarted worker has a new generation)
    id: str  #: its key in that worker
    model: str  #: the worker's id of the explorer it was compiled from
    options: dict[str, Any] = field(default_factory=dict)  #: backend options, to redo the compile


def _pin_plan(explorer: Explorer, settings: Settings, records: Sequence[Any], calibrated: bool) -> None:
    """Make a worker-side explorer return the parent's plan for ``settings`` (the parent decided it)."""
    from ..policy import PrecisionPlan

    pinned = explorer.__dict__.setdefault("_mixprec_pinned_plans", {})
    pinned[settings] = PrecisionPlan(settings, {r.name: r for r in records}, calibrated)
    if "plan" not in explorer.__dict__:
        original = explorer.plan

        def plan(settings: Settings | None = None) -> Any:
            s = explorer.settings if settings is None else settings
            return pinned[s] if s in pinned else original(settings)

        explorer.plan = plan  # type: ignore[method-assign]


def _load_model(path: str, example_inputs: tuple[Any, ...], batches: list[Any] | None) -> Explorer:
    """(worker) An Explorer over the saved program, calibrated with the same batches as the parent's."""
    from ..explorer import Explorer

    explorer = Explorer(torch.export.load(path), example_inputs)
    if batches:
        explorer.calibrate(batches)
    return explorer


def _compile_here(explorer: Explorer, name: str, settings: Settings, device: str, options: dict[str, Any],
                  plan_records: Sequence[Any] | None = None, calibrated: bool = False) -> Compiled:
    if plan_records is not None:
        _pin_plan(explorer, settings, plan_records, calibrated)
    backend = get_backend(name)
    report_progress(f"compiling on {device}")
    return backend.compile(explorer, settings, device, **options)


def _profile_here(explorer: Explorer, compiled: Compiled, inputs: tuple[Any, ...], runs: int, warmup: int,
                  options: dict[str, Any]) -> Profile:
    backend = get_backend(compiled.backend)
    if options:
        return backend.profile(explorer, compiled, inputs, runs, warmup, **options)
    return backend.profile(explorer, compiled, inputs, runs, warmup)


def _run_here(explorer: Explorer, compiled: Compiled, inputs: tuple[Any, ...]) -> Any:
    backend = get_backend(compiled.backend)
    if hasattr(backend, "run"):
        return backend.run(explorer, compiled, inputs)
    handle = compiled.handle
    module = getattr(handle, "module", handle)
    if not callable(module):
        raise OptionTypeError(f"backend {compiled.backend!r} has no run() and its handle is not callable")
    args = to_device(tuple(inputs), compiled.device)
    with torch.no_grad():
        return module(*args)


def _time_here(explorer: Explorer, compileds: Sequence[Compiled], inputs: tuple[Any, ...], runs: int,
               warmup: int) -> list[Any]:
    devices = list(dict.fromkeys(c.device for c in compileds))
    if len(devices) == 1:  # move the inputs once, not on every timed run
        inputs = to_device(tuple(inputs), devices[0])
    syncs = [device_synchronizer(d) for d in devices]

    def sync() -> None:
        for wait in syncs:
            wait()

    report_progress(f"timing {len(compileds)} plans in turns, {runs} runs each after {warmup} warm-up")
    with torch.no_grad():
        times = time_interleaved([lambda c=c: _run_here(explorer, c, inputs) for c in compileds], runs, warmup,
                                 sync)
    return [summarize_ms(t) for t in times]


def _on_cpu(path: str, *args: Any, **kwargs: Any) -> Any:
    """(worker) Call ``module:function`` and bring every tensor of the result to the CPU for the trip back."""
    module, _, name = path.partition(":")
    return _cpu(getattr(importlib.import_module(module), name)(*args, **kwargs))


def _model_id(explorer: Explorer) -> str:
    batches = explorer.extensions.get("calibration_batches")
    shapes, names = describe_inputs(explorer.example_inputs)
    tag = hashlib.sha256(repr((shapes, names, id(batches) if batches else 0)).encode()).hexdigest()[:12]
    return f"{fingerprint_program(explorer.exported_program)[:24]}-{tag}"


def _ship_model(explorer: Explorer, timeout_s: float | None) -> str:
    worker = get_worker()
    worker.ensure_started()
    model = _model_id(explorer)
    if model in worker.models:
        return model
    report_progress("sending the model to the worker")
    fd, path = tempfile.mkstemp(prefix="mixprec_ep_", suffix=".pt2")
    os.close(fd)
    try:
        torch.export.save(explorer.exported_program, path)
        batches = explorer.extensions.get("calibration_batches")
        worker.call("mixprec_explorer.backends:_load_model", path, _cpu(tuple(explorer.example_inputs)),
                    _cpu(list(batches)) if batches else None, keep=model, timeout_s=timeout_s,
                    what="loading the model in the worker")
    finally:
        os.unlink(path)
    worker.models.add(model)
    return model


def _compile_in_worker(explorer: Explorer, name: str, settings: Settings, device: str, options: dict[str, Any],
                       fault: str | None, timeout_s: float | None) -> Compiled:
    worker = get_worker()
    model = _ship_model(explorer, timeout_s)
    plan = explorer.plan(settings)
    key, public = worker.call("mixprec_explorer.backends:_compile_here", Ref("model", model), name, settings,
                              device, options, plan_records=tuple(plan), calibrated=plan.calibrated, keep="",
                              fault=fault, timeout_s=timeout_s, what=f"{name} compile in the worker")
    return dataclasses.replace(public, handle=WorkerHandle(worker.generation, key, model, dict(options)))


def _finalize(compiled: Compiled) -> Compiled:
    handle = compiled.handle
    if isinstance(handle, WorkerHandle):
        weakref.finalize(compiled, get_worker().drop, handle.id, handle.generation)
    return compiled


def compile_plan(explorer: Explorer, settings: Settings | None = None, backend: str = "auto",
                 device: str | torch.device | None = None, *, isolate: bool = True, progress: bool = True,
                 use_cache: bool = True, timeout_s: float | None = None, _fault: str | None = None,
                 **options: Any) -> Compiled:
    """Compile the plan for ``settings`` (default: the explorer's) on a backend; a repeated call returns the cached
    Compiled at once.

    ``backend`` is "auto" (TensorRT where usable, else PyTorch; ``Compiled.notes`` says which), "tensorrt" or
    "torch"; ``device`` defaults to "cuda:0" where CUDA is available, else "cpu". ``isolate=False`` runs in
    this process (faster, no crash protection). Other keyword ``options`` go to the backend (torch:
    ``mode="eager"|"compiled"``). ``_fault`` ("exit", "segfault", "raise") makes the worker fail (testing hook).
    Raises BackendUnavailable when the backend cannot run here; WorkerCrashed when the worker dies or times out.
    """
    settings = explorer.settings if settings is None else settings
    name, choice = choose_backend(backend)
    device = _device(device)
    key = cache_key(explorer, settings, name, device, {**options, "isolate": bool(isolate)})
    if use_cache and _fault is None and key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    if _fault is not None and not isolate:
        raise OptionError("_fault injects a failure into the worker process: it needs isolate=True")
    if choice:
        _announce(choice, progress)
    with progress_bar(progress, f"{name} compile"):
        if isolate:
            compiled = _compile_in_worker(explorer, name, settings, device, options, _fault, timeout_s)
        else:
            compiled = _compile_here(explorer, name, settings, device, options)
    notes = ((choice,) if choice else ()) + tuple(compiled.notes)
    compiled = _finalize(dataclasses.replace(compiled, key=key, notes=notes))
    if use_cache:
        _remember(key, compiled)
    return compiled


def _live(explorer: Explorer, compiled: Compiled, timeout_s: float | None) -> tuple[Compiled, tuple[str, ...]]:
    """``compiled``, redone in a new worker first if the worker that held it has stopped (its handle is re-pointed)."""
    handle: WorkerHandle = compiled.handle
    worker = get_worker()
    if handle.generation == worker.generation and worker.is_alive:
        return compiled, ()
    fresh = _compile_in_worker(explorer, compiled.backend, compiled.settings, compiled.device, handle.options,
                               None, timeout_s)
    handle.generation, handle.id = fresh.handle.generation, fresh.handle.id
    _finalize(compiled)
    return compiled, ("compiled again: the worker process that held this compile had stopped",)


def dispatch(explorer: Explorer, compiled: Compiled, path: str, *args: Any, timeout_s: float | None = None,
             what: str = "worker call", **kwargs: Any) -> Any:
    """Call ``module:function`` where ``compiled`` lives (this process or the worker), with EXPLORER and COMPILED
    in ``args`` standing for the explorer and the compiled result there; tensors come back on the CPU from a worker."""
    if not isinstance(compiled.handle, WorkerHandle):
        swap = {EXPLORER: explorer, COMPILED: compiled}
        module, _, name = path.partition(":")
        function = getattr(importlib.import_module(module), name)
        return function(*(swap.get(a, a) if isinstance(a, str) else a for a in args), **kwargs)
    live, _ = _live(explorer, compiled, timeout_s)
    refs = {EXPLORER: Ref("model", live.handle.model), COMPILED: Ref("compiled", live.handle.id)}
    shipped = tuple(refs.get(a, a) if isinstance(a, str) else _cpu(a) for a in args)
    return get_worker().call("mixprec_explorer.backends:_on_cpu", path, *shipped, timeout_s=timeout_s, what=what,
                             **kwargs)


def profile_compiled(explorer: Explorer, compiled: Compiled, inputs: Sequence[Any] | Any | None = None,
                     runs: int = 20, warmup: int = 5, *, progress: bool = True, timeout_s: float | None = None,
                     **options: Any) -> Profile:
    """Run a compiled plan: per-layer dtypes and latency mapped onto FX nodes, and end-to-end latency.

    ``inputs`` default to the explorer's example inputs; ``runs`` timed runs follow ``warmup`` untimed ones.
    Backend ``options`` pass through (torch: ``profile_runs``). Raises WorkerCrashed if the worker dies.
    """
    args = _inputs(explorer, inputs)
    with progress_bar(progress, f"{compiled.backend} profile"):
        if not isinstance(compiled.handle, WorkerHandle):
            return _profile_here(explorer, compiled, args, runs, warmup, options)
        live, notes = _live(explorer, compiled, timeout_s)
        result = get_worker().call("mixprec_explorer.backends:_profile_here",
                                   Ref("model", live.handle.model), Ref("compiled", live.handle.id), _cpu(args),
                                   runs, warmup, options, timeout_s=timeout_s,
                                   what=f"{compiled.backend} profile in the worker")
    return dataclasses.replace(result, notes=tuple(result.notes) + notes) if notes else result


def time_plans(explorer: Explorer, compileds: Sequence[Compiled], inputs: Sequence[Any] | Any | None = None,
               runs: int = 30, warmup: int = 5, *, progress: bool = True, timeout_s: float | None = None) -> list[Any]:
    """End-to-end latency (an EndToEnd each, ms) of several compiled plans timed in turns, for a fair comparison.

    Plans compiled in one place (all in this process or all in the worker) only; ValueError otherwise.
    """
    if not compileds:
        return []
    args = _inputs(explorer, inputs)
    in_worker = {isinstance(c.handle, WorkerHandle) for c in compileds}
    if len(in_worker) > 1:
        raise OptionError("time_plans needs plans compiled alike: all with isolate=True or all with isolate=False")
    with progress_bar(progress, "timing plans"):
        if not in_worker.pop():
            return _time_here(explorer, list(compileds), args, runs, warmup)
        lives = [_live(explorer, c, timeout_s)[0] for c in compileds]
        models = {c.handle.model for c in lives}
        if len(models) > 1:
            raise OptionError("time_plans needs plans of one model")
        return get_worker().call("mixprec_explorer.backends:_time_here", Ref("model", models.pop()),
                                 tuple(Ref("compiled", c.handle.id) for c in lives), _cpu(args), runs, warmup,
                                 timeout_s=timeout_s, what="timing plans in the worker")


def run_compiled(explorer: Explorer, compiled: Compiled, inputs: Sequence[Any] | Any | None = None, *,
                 timeout_s: float | None = None) -> Any:
    """The compiled plan's outputs for ``inputs`` (default: the example inputs); CPU tensors when from a worker."""
    return dispatch(explorer, compiled, "mixprec_explorer.backends:_run_here", EXPLORER, COMPILED,
                    _inputs(explorer, inputs), timeout_s=timeout_s, what=f"{compiled.backend} run in the worker")
