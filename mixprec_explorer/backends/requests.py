"""The work a compiled plan's owner does, as explicit request objects: for the worker process or this one.

A request is a small frozen dataclass that names what it needs (the worker's id of the model, of the compiled
plan, the plan itself, the inputs) and carries an ``execute(store)`` that runs it where the objects live. Work
on one compiled plan is a :class:`PlanTask`, called with the explorer and the compiled plan; the same task runs
in this process when the plan was compiled here (``isolate=False``), or inside a :class:`TaskRequest` in the
worker.

Nothing is addressed by name strings: a request is pickled (its class by reference), sent, and executed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import torch

from ..inputs import Batch
from .shipping import Shipment, load_program
from .subject import Model, Subject, subject_of
from .worker import report_progress, stored

if TYPE_CHECKING:
    from ..policy import PrecisionPlan
    from .base import Compiled

__all__ = ["CompileRequest", "LoadModel", "PlanTask", "ProfilePlan", "RunPlan", "TaskRequest", "TimeRequest",
           "to_cpu"]


def to_cpu(value: Any) -> Any:
    """``value`` with every tensor in it detached and on the CPU (what may travel back from the worker)."""
    return torch.utils._pytree.tree_map(lambda x: x.detach().cpu() if isinstance(x, torch.Tensor) else x, value)


class PlanTask(Protocol):
    """Work on one compiled plan, run where it lives; ``what`` names it in progress and crash messages."""

    @property
    def what(self) -> str: ...

    def __call__(self, explorer: Model, compiled: Compiled) -> Any: ...


@dataclass(frozen=True)
class RunPlan:
    """The compiled plan's outputs for one batch of positional inputs."""

    batch: Batch
    what: str = "run"

    def __call__(self, explorer: Model, compiled: Compiled) -> Any:
        from . import run_here

        return run_here(explorer, compiled, self.batch)


@dataclass(frozen=True)
class ProfilePlan:
    """Per-layer dtypes and latency of the compiled plan on one batch (``options``: the backend's own)."""

    batch: Batch
    runs: int
    warmup: int
    options: Mapping[str, Any] = field(default_factory=dict)
    what: str = "profile"

    def __call__(self, explorer: Model, compiled: Compiled) -> Any:
        from . import get_backend

        return get_backend(compiled.backend).profile(explorer, compiled, self.batch, self.runs, self.warmup,
                                                     **dict(self.options))


# -- requests the worker executes against what it stores ----------------------------------------------------------
@dataclass(frozen=True)
class LoadModel:
    """(worker) A :class:`~.subject.Subject` over the program :func:`~.shipping.save_program` wrote at ``path``, with
    the parent's calibration batches (the plan comes with each compile, so nothing is calibrated here)."""

    path: str
    example_inputs: Batch
    calibration_batches: tuple[Batch, ...] = ()
    shipment: Shipment = Shipment()
    what: str = "loading the model in the worker"

    def execute(self, store: Mapping[str, Any]) -> Subject:
        return subject_of(load_program(self.path, self.shipment), self.example_inputs, self.calibration_batches)


@dataclass(frozen=True)
class CompileRequest:
    """(worker) Compile ``plan`` (decided by the parent: it is passed to the backend, not re-derived) on ``backend``."""

    model: str  #: the worker's id of the explorer
    backend: str
    plan: PrecisionPlan
    device: str
    options: Mapping[str, Any] = field(default_factory=dict)
    what: str = "compile in the worker"

    def execute(self, store: Mapping[str, Any]) -> Compiled:
        from . import get_backend

        explorer = stored(store, "model", self.model)
        report_progress(f"compiling on {self.device}")
        compiled = get_backend(self.backend).compile(explorer, self.plan, self.device, **dict(self.options))
        return dataclasses.replace(compiled, plan=self.plan)  # profiles in the worker read the parent's plan


@dataclass(frozen=True)
class TaskRequest:
    """(worker) Run ``task`` on the compiled plan the worker holds as ``compiled``; tensors come back on the CPU."""

    model: str
    compiled: str
    task: PlanTask

    @property
    def what(self) -> str:
        return f"{self.task.what} in the worker"

    def execute(self, store: Mapping[str, Any]) -> Any:
        return to_cpu(self.task(stored(store, "model", self.model), stored(store, "compiled", self.compiled)))


@dataclass(frozen=True)
class TimeRequest:
    """(worker) End-to-end latency of several compiled plans timed in turns on one batch."""

    model: str
    compiled: tuple[str, ...]
    batch: Batch
    runs: int
    warmup: int
    what: str = "timing plans in the worker"

    def execute(self, store: Mapping[str, Any]) -> Any:
        from . import time_here

        return time_here(stored(store, "model", self.model), [stored(store, "compiled", c) for c in self.compiled],
                         self.batch, self.runs, self.warmup)
