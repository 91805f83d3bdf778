"""Backends: compile a plan and measure it, behind one small protocol, registered by name here and loaded lazily.

:func:`compile_plan` and :func:`profile_compiled` wrap every backend. They choose one ("auto" means TensorRT
where it is usable, else PyTorch, and they say which). They cache compiles by model, plan, inputs, backend,
device and options, and show progress. By default the work runs in a worker process, so a crash comes back
as :class:`~mixprec_explorer.errors.WorkerCrashed` and does not take the caller down. A backend whose library
is missing is listed as unavailable, with the reason and what to install; it never raises an ImportError.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import importlib
import importlib.util
import inspect
import logging
import os
import sys
import tempfile
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from .._optional import install_hint
from ..errors import BackendUnavailable, OptionError, OptionTypeError, check_number
from ..inputs import Batch, Inputs, normalize_inputs
from ..records import EndToEnd
from ..settings import Settings
from .base import Backend, CacheKey, Compiled, Profile
from .fingerprint import describe_inputs, fingerprint_plan, fingerprint_program
from .requests import CompileRequest, LoadModel, PlanTask, ProfilePlan, RunPlan, TaskRequest, TimeRequest, to_cpu
from .shipping import restore_outputs, save_program
from .timing import device_synchronizer, summarize_ms, time_interleaved
from .torch_plan import to_device
from .worker import get_worker, progress_bar, report_progress, shutdown_worker

if TYPE_CHECKING:
    from .subject import Model, Planner

__all__ = [
    "AUTO_ORDER",
    "Backend",
    "CacheKey",
    "Compiled",
    "PlanTask",
    "Profile",
    "WorkerHandle",
    "available_backends",
    "cache_key",
    "check_options",
    "choose_backend",
    "clear_cache",
    "compile_plan",
    "get_backend",
    "keep_compiled",
    "profile_compiled",
    "register_backend",
    "run_compiled",
    "run_here",
    "run_task",
    "shutdown_worker",
    "time_here",
    "time_plans",
    "unregister_backend",
]

logger = logging.getLogger("mixprec_explorer.backends")

#: The order "auto" tries backends in.
AUTO_ORDER = ("tensorrt", "torch")
#: Compiled results kept by the cache (least recently used dropped first).
CACHE_SIZE = 8


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


def unregister_backend(name: str) -> None:
    """Forget a registered backend (and its instance and availability); nothing happens for an unknown name."""
    _REGISTRY.pop(name, None)
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
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise OptionError(f"device must be a torch device such as 'cpu', 'cuda' or 'cuda:1'; got {device!r}") from err
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


def check_options(backend: str, method: str, options: Mapping[str, Any]) -> None:
    """Check ``options`` of the backend's ``method`` ("compile" or "profile") by name and value, before any work.

    A keyword the method does not take raises OptionTypeError naming the accepted ones (a method that takes
    ``**options`` leaves names to the backend); the backend's ``check_options(method, options)``, where it has
    one, then refuses values it would refuse later (OptionError naming the valid ones).
    """
    if not options:
        return
    instance = get_backend(backend)
    params = inspect.signature(getattr(instance, method)).parameters.values()
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        known = [p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY]
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise OptionTypeError(f"the {backend} backend's {method} got unexpected option(s) "
                                  f"{', '.join(map(repr, unknown))}; it takes {', '.join(map(repr, known)) or 'none'}")
    validate = getattr(instance, "check_options", None)
    if validate is not None:
        validate(method, options)


def _one_batch(explorer: Model, inputs: Inputs) -> tuple[Batch, tuple[str, ...]]:
    """The first batch of ``inputs`` (every door's rules), and a note when more were given."""
    batches = normalize_inputs(explorer.captured, inputs)
    note = (f"measured on the first of the {len(batches)} batches given",) if len(batches) > 1 else ()
    return batches[0], note


def cache_key(explorer: Planner, settings: Settings, backend: str, device: str,
              options: Mapping[str, Any] | None = None) -> CacheKey:
    """The compile cache's one key: model fingerprint, settings, plan digest, example inputs, backend, device,
    options. :func:`compile_plan` sets it on every Compiled; backends never build one."""
    shapes, dtype_names = describe_inputs(explorer.example_inputs)
    return CacheKey(model_fingerprint=fingerprint_program(explorer.exported_program), settings=settings,
                    input_shapes=shapes, backend=backend, device=device,
                    options=_freeze(dict(options or {})), plan_digest=fingerprint_plan(explorer.plan(settings)),
                    input_dtypes=dtype_names)


def clear_cache() -> None:
    """Forget every cached compile."""
    _CACHE.clear()


_KEEPING = 0  # open keep_compiled() blocks: while any is open, the cache evicts nothing


@contextlib.contextmanager
def keep_compiled() -> Iterator[None]:
    """Within the block the compile cache evicts nothing (back to :data:`CACHE_SIZE` after): an analysis asks for
    the same plans again (pricing, checking, confirming, timing them in turns) and gets each compiled once."""
    global _KEEPING
    _KEEPING += 1
    try:
        yield
    finally:
        _KEEPING -= 1
        _evict()


def _evict() -> None:
    while not _KEEPING and len(_CACHE) > CACHE_SIZE:
        _CACHE.popitem(last=False)


def _remember(key: CacheKey, compiled: Compiled) -> None:
    _CACHE[key] = compiled
    _CACHE.move_to_end(key)
    _evict()


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


def run_here(explorer: Model, compiled: Compiled, inputs: Batch) -> Any:
    """The compiled plan's outputs for one batch, in this process (where the compiled plan must live)."""
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


def time_here(explorer: Model, compileds: Sequence[Compiled], inputs: Batch, runs: int,
              warmup: int) -> list[EndToEnd]:
    """End-to-end latency of plans compiled in this process, timed in turns on one batch."""
    devices = list(dict.fromkeys(c.device for c in compileds))
    if len(devices) == 1:  # move the inputs once, not on every timed run
        inputs = to_device(tuple(inputs), devices[0])
    syncs = [device_synchronizer(d) for d in devices]

    def sync() -> None:
        for wait in syncs:
            wait()

    report_progress(f"timing {len(compileds)} plans in turns, {runs} runs each after {warmup} warm-up")
    runners: list[Callable[[], Any]] = [functools.partial(run_here, explorer, c, inputs) for c in compileds]
    with torch.no_grad():
        times = time_interleaved(runners, runs, warmup, sync)
    return [summarize_ms(t) for t in times]


def _model_id(explorer: Model) -> str:
    batches = explorer.calibration_batches
    shapes, names = describe_inputs(explorer.example_inputs)
    tag = hashlib.sha256(repr((shapes, names, id(batches) if batches else 0)).encode()).hexdigest()[:12]
    return f"{fingerprint_program(explorer.exported_program)[:24]}-{tag}"


def _ship_model(explorer: Model, timeout_s: float | None) -> str:
    worker = get_worker()
    worker.ensure_started()
    model = _model_id(explorer)
    if model in worker.models:
        return model
    report_progress("sending the model to the worker")
    fd, path = tempfile.mkstemp(prefix="mixprec_ep_", suffix=".pt2")
    os.close(fd)
    try:
        shipment = save_program(explorer.exported_program, path)
        request = LoadModel(path, to_cpu(tuple(explorer.example_inputs)), to_cpu(tuple(explorer.calibration_batches)),
                            shipment)
        worker.call(request, keep=model, timeout_s=timeout_s)
    finally:
        os.unlink(path)
    worker.models.add(model)
    return model


def _compile_in_worker(explorer: Planner, name: str, settings: Settings, device: str, options: dict[str, Any],
                       fault: str | None, timeout_s: float | None) -> Compiled:
    worker = get_worker()
    model = _ship_model(explorer, timeout_s)
    request = CompileRequest(model, name, explorer.plan(settings), device, options, what=f"{name} compile in the worker")
    key, public = worker.call(request, keep="", fault=fault, timeout_s=timeout_s)
    return dataclasses.replace(public, handle=WorkerHandle(worker.generation, key, model, dict(options)))


def _finalize(compiled: Compiled) -> Compiled:
    handle = compiled.handle
    if isinstance(handle, WorkerHandle):
        weakref.finalize(compiled, get_worker().drop, handle.id, handle.generation)
    return compiled


def compile_plan(explorer: Planner, settings: Settings | None = None, backend: str = "auto",
                 device: str | torch.device | None = None, *, isolate: bool = True, progress: bool = True,
                 use_cache: bool = True, timeout_s: float | None = None, _fault: str | None = None,
                 **options: Any) -> Compiled:
    """Compile the plan for ``settings`` (default: the explorer's) on a backend; a repeated call returns the cached
    Compiled at once.

    ``backend`` is "auto" (TensorRT where usable, else PyTorch; ``Compiled.notes`` says which), "tensorrt" or
    "torch"; ``device`` defaults to "cuda:0" where CUDA is available, else "cpu". ``isolate=False`` runs in
    this process (faster, no crash protection). Other keywords are the backend's own options (torch:
    ``mode="eager"|"compiled"``; tensorrt: ``build="auto"|"autocast"|"cast_graph"``, "auto" building the cast graph
    by itself where autocast would cast integer tensors, and ``dynamo.compile`` options), checked against
    the backend by name and value before any work: an unknown one raises OptionTypeError (a TypeError), a
    value the backend would refuse OptionError naming the valid ones. The plan is decided here and passed to the
    backend (in the worker too). ``_fault`` ("exit", "segfault", "raise") makes the worker fail (testing hook).
    Raises BackendUnavailable when the backend cannot run here; WorkerCrashed when the worker dies or times out.
    """
    settings = explorer.settings if settings is None else settings
    name, choice = choose_backend(backend)
    check_options(name, "compile", options)  # names and values, before anything is shipped or compiled
    device = _device(device)
    if timeout_s is not None:
        check_number("timeout_s", timeout_s, above=True, what="seconds, or None")
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
            report_progress(f"compiling on {device}")
            compiled = get_backend(name).compile(explorer, explorer.plan(settings), device, **options)
    notes = ((choice,) if choice else ()) + tuple(compiled.notes)
    compiled = _finalize(dataclasses.replace(compiled, key=key, notes=notes, plan=explorer.plan(settings)))
    if use_cache:
        _remember(key, compiled)
    return compiled


def _live(explorer: Planner, compiled: Compiled, timeout_s: float | None) -> tuple[Compiled, tuple[str, ...]]:
    """``compiled``, redone in a new worker first if the worker that held it has stopped (its handle is re-pointed)."""
    handle: WorkerHandle = compiled.handle
    worker = get_worker()
    if handle.generation == worker.generation and worker.is_alive:
        return compiled, ()
    fresh = _compile_in_worker(explorer, compiled.backend, compiled.settings, compiled.device, handle.options,
                               None, timeout_s)
    # the fresh worker holds the explorer it was given now (a cached compile may come from another explorer)
    handle.generation, handle.id, handle.model = fresh.handle.generation, fresh.handle.id, fresh.handle.model
    _finalize(compiled)
    return compiled, ("compiled again: the worker process that held this compile had stopped",)


def run_task(explorer: Planner, compiled: Compiled, task: PlanTask, *, timeout_s: float | None = None
             ) -> tuple[Any, tuple[str, ...]]:
    """``(task(explorer, compiled), notes)`` run where ``compiled`` lives: here, or in the worker (tensors then come
    back on the CPU; notes say when the worker had to compile it again)."""
    if not isinstance(compiled.handle, WorkerHandle):
        return task(explorer, compiled), ()
    live, notes = _live(explorer, compiled, timeout_s)
    request = TaskRequest(live.handle.model, live.handle.id, task)
    return get_worker().call(request, timeout_s=timeout_s), notes


def profile_compiled(explorer: Planner, compiled: Compiled, inputs: Inputs = None, runs: int = 20,
                     warmup: int = 5, *, progress: bool = True, timeout_s: float | None = None,
                     **options: Any) -> Profile:
    """Run a compiled plan: per-layer dtypes and latency mapped onto FX nodes, and end-to-end latency.

    ``inputs`` follow :mod:`mixprec_explorer.inputs` (default: the example inputs; of several batches the
    first is profiled); ``runs`` timed runs follow ``warmup`` untimed ones. Other keywords are the backend's own
    (torch: ``profile_runs=10``), checked before any work (OptionTypeError). Raises WorkerCrashed if the worker dies, InputError for inputs that do
    not fit the captured program.
    """
    _check_runs(runs, warmup)
    batch, notes = _one_batch(explorer, inputs)
    check_options(compiled.backend, "profile", options)
    task = ProfilePlan(batch, runs, warmup, options, what=f"{compiled.backend} profile")
    with progress_bar(progress, f"{compiled.backend} profile"):
        result, more = run_task(explorer, compiled, task, timeout_s=timeout_s)
    notes += more
    return dataclasses.replace(result, notes=tuple(result.notes) + notes) if notes else result


def _check_runs(runs: object, warmup: object) -> None:
    check_number("runs", runs, minimum=1, whole=True, what="timed runs")
    check_number("warmup", warmup, whole=True, what="untimed runs first")


def time_plans(explorer: Planner, compileds: Sequence[Compiled], inputs: Inputs = None, runs: int = 30,
               warmup: int = 5, *, progress: bool = True, timeout_s: float | None = None) -> list[EndToEnd]:
    """End-to-end latency (an EndToEnd each, ms) of several compiled plans timed in turns, for a fair comparison.

    Plans compiled in one place (all in this process or all in the worker) only; OptionError otherwise. Of
    several batches, the first is timed.
    """
    _check_runs(runs, warmup)
    if not compileds:
        return []
    batch, _ = _one_batch(explorer, inputs)
    in_worker = {isinstance(c.handle, WorkerHandle) for c in compileds}
    if len(in_worker) > 1:
        raise OptionError("time_plans needs plans compiled alike: all with isolate=True or all with isolate=False")
    with progress_bar(progress, "timing plans"):
        if not in_worker.pop():
            return time_here(explorer, list(compileds), batch, runs, warmup)
        lives = [_live(explorer, c, timeout_s)[0] for c in compileds]
        models = {c.handle.model for c in lives}
        if len(models) > 1:
            raise OptionError("time_plans needs plans of one model")
        request = TimeRequest(models.pop(), tuple(c.handle.id for c in lives), to_cpu(batch), runs, warmup)
        return get_worker().call(request, timeout_s=timeout_s)


def run_compiled(explorer: Planner, compiled: Compiled, inputs: Inputs = None, *,
                 timeout_s: float | None = None) -> Any:
    """The compiled plan's outputs for ``inputs`` (default: the example inputs): one batch's outputs, or a list
    of them for a list of batches; CPU tensors when from a worker."""
    batches = normalize_inputs(explorer.captured, inputs)
    outs = [run_task(explorer, compiled, RunPlan(b, what=f"{compiled.backend} run"), timeout_s=timeout_s)[0]
            for b in batches]
    if isinstance(compiled.handle, WorkerHandle):  # shipped with flat outputs: the model's own structure again
        outs = [restore_outputs(explorer.exported_program, out) for out in outs]
    return outs if isinstance(inputs, list) else outs[0]
