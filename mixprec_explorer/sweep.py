"""Sweeps that outgrow one GPU: compile and time many plans in parallel, on local GPUs or a Ray cluster.

Each task captures the saved ExportedProgram again inside its own process (one per GPU) or Ray task (``num_gpus=1``
where the cluster has GPUs), so a crash stays in that worker, and compiles, times and checks its plan there as the
facade would (a :class:`SweepModel`: the captured program and its own precision rules, no facade).
"""

from __future__ import annotations

import functools
import io
import multiprocessing
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from .analysis import Inputs, normalize_inputs, progress_steps
from .backends.subject import Subject
from .errors import OptionError
from .settings import Settings

if TYPE_CHECKING:
    from .analysis.subject import Captured
    from .policy import Policy, PrecisionPlan
    from .records import CalibrationStat

_GPU_QUEUE: Any = None


@dataclass(frozen=True, eq=False)
class SweepModel(Subject):
    """A captured program that plans for itself: what a sweep's worker compiles, profiles and checks.

    A backends :class:`~mixprec_explorer.backends.subject.Subject` with the precision rules
    (:class:`~mixprec_explorer.policy.Policy`, uncalibrated) and default settings of a fresh Explorer of the same
    program, so a plan is decided as the facade decides it (on the settings' target, else the installed release).
    """

    settings: Settings = field(default_factory=Settings)

    @functools.cached_property
    def _policy(self) -> Policy:
        from .policy import Policy

        return Policy(self.captured)

    @functools.cached_property
    def _release(self) -> Any:
        from .targets import resolve_target

        return resolve_target(self.settings.target)

    @property
    def calibration(self) -> dict[str, CalibrationStat]:
        return self._policy.calibration

    def plan(self, settings: Settings | None = None) -> PrecisionPlan:
        """The plan for ``settings`` (None: this model's own)."""
        s = self.settings if settings is None else settings
        return self._policy.plan(s, None, target=s.target or self._release)


def _pack(program: torch.export.ExportedProgram) -> bytes:
    """The program as the worker ships it (outputs as a flat tuple), so that a Hugging Face ModelOutput loads anywhere."""
    from .backends.shipping import save_program

    buffer = io.BytesIO()
    save_program(program, buffer)  # type: ignore[arg-type]  # torch.export.save takes a buffer
    return buffer.getvalue()


def measure_plan(program: bytes, inputs: tuple[Any, ...], settings_json: str, backend: str, runs: int,
                 options: dict[str, Any], flags: dict[str, Any] | None = None) -> dict[str, Any]:
    """Compile, time and check one plan in this process under the caller's numerics ``flags`` (TF32...);
    returns plain numbers (picklable)."""
    from .backends.worker import apply_numerics_flags

    apply_numerics_flags(flags)
    from .accuracy import measure_accuracy
    from .backends import compile_plan, profile_compiled
    from .backends.shipping import load_program
    from .capture import capture

    ep = load_program(io.BytesIO(program))  # type: ignore[arg-type]
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = SweepModel(capture(ep, inputs))
    settings = Settings.from_json(settings_json)
    compiled = compile_plan(model, settings, backend, device, isolate=False, progress=False, **options)
    profile = profile_compiled(model, compiled, inputs, runs, progress=False)
    acc = measure_accuracy(model, compiled, inputs)
    return {"latency_ms": profile.end_to_end.median_ms, "rel_l2_error": acc.rel_l2_error,
            "backend": compiled.backend, "device": profile.device, "pid": os.getpid(),
            "gpu": os.environ.get("CUDA_VISIBLE_DEVICES", "")}


def _init_worker(queue: Any) -> None:
    gpu = queue.get()
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu)


def run_sweep(explorer: Captured, settings: Sequence[Settings], inputs: Inputs = None, *, backend: str = "auto",
              executor: str | None = "local", runs: int = 20, progress: bool = True,
              compile_options: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """Measure every settings' plan of ``explorer``'s captured program (the facade's, or any holder of one) on one
    batch of ``inputs`` (the first, where several are given); results in input order. ``compile_options`` are the
    backend's own (torch: ``{"mode": "compiled"}``).

    ``executor``: "local" (one process per local GPU, or one on CPU), "ray" (``ray.init()`` is
    called if no cluster is connected; needs ``pip install "mixprec-explorer[ray]"``), or "serial"/None
    (in this process's worker path, one after another).
    """
    args = normalize_inputs(explorer.captured, inputs)[0]
    options = dict(compile_options or {})
    program = _pack(explorer.captured.exported_program)
    docs = [s.to_json() for s in settings]
    cpu_args = tuple(a.cpu() if isinstance(a, torch.Tensor) else a for a in args)
    from .backends.worker import numerics_flags

    flags = numerics_flags()  # each process measures under this one's TF32 switches

    bar = progress_steps(len(docs), progress, desc="sweep")
    if executor in (None, "serial"):
        out = []
        for doc in docs:
            out.append(measure_plan(program, cpu_args, doc, backend, runs, options, flags))
            bar(1)
        bar(0, close=True)
        return out
    if executor == "ray":
        from ._optional import require

        ray = require("ray", "ray")
        if not ray.is_initialized():
            ray.init(ignore_reinit_error=True, include_dashboard=False, log_to_driver=False)
        gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
        # Ray gives a GPU task a fresh worker process each time by default (max_calls=1); reuse them, or every
        # plan pays for starting Python, CUDA and loading the model again
        task = ray.remote(num_gpus=gpus, max_calls=0)(measure_plan)
        ref = ray.put(program)
        futures = [task.remote(ref, cpu_args, doc, backend, runs, options, flags) for doc in docs]
        out = []
        for future in futures:
            out.append(ray.get(future))
            bar(1)
        bar(0, close=True)
        return out
    if executor != "local":
        raise OptionError(f"executor must be 'local', 'ray', 'serial' or None, got {executor!r}")
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    for gpu in range(count) if count else [None]:
        queue.put(gpu)
    with ProcessPoolExecutor(max_workers=max(count, 1), mp_context=ctx, initializer=_init_worker,
                             initargs=(queue,)) as pool:
        futures = [pool.submit(measure_plan, program, cpu_args, doc, backend, runs, options, flags) for doc in docs]
        out = []
        for future in futures:
            out.append(future.result())
            bar(1)
    bar(0, close=True)
    return out
