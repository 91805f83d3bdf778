"""The backend protocol: compile a plan, profile it, return records mapped onto FX nodes.

A backend is a small class with ``name``, ``availability()``, ``compile(explorer, plan, device, **options)`` and
``profile()`` (it never derives the plan itself: the caller passes the one it decided);
the public template (validation, caching, progress, worker process) lives in
:mod:`mixprec_explorer.backends` so that backends only write the part that differs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import torch

from ..parsers.mismatch import mismatch_reasons
from ..records import DtypeMismatch, EndToEnd, LayerRecord
from ..settings import Settings

if TYPE_CHECKING:
    from ..policy import PrecisionPlan
    from .subject import Model


@dataclass(frozen=True)
class CacheKey:
    """What makes two compiles the same: model, settings, input shapes, backend, device (+ backend options)."""

    model_fingerprint: str  #: hash of the ExportedProgram's graph, weights' shapes/dtypes and values
    settings: Settings
    input_shapes: tuple[tuple[int, ...], ...]
    backend: str
    device: str
    options: tuple[tuple[str, Any], ...] = ()
    plan_digest: str = ""  #: hash of the plan's (node, dtype, accumulation, rule): settings + calibration as compiled
    input_dtypes: tuple[str, ...] = ()  #: dtype names of the example inputs, beside their shapes


@dataclass(frozen=True)
class Compiled:
    """A compiled plan, ready to profile. ``handle`` is backend-private (a module, or a worker-side id).

    A backend returns it with ``key`` and ``plan`` unset; :func:`~mixprec_explorer.backends.compile_plan` sets
    both (the one cache key, and the plan it passed to the backend).
    """

    backend: str  #: registered name ("torch", "tensorrt")
    device: str  #: "cpu", "cuda:0", ...
    settings: Settings
    compile_s: float  #: wall-clock seconds the compile took
    handle: Any = field(default=None, compare=False, hash=False, repr=False)
    notes: tuple[str, ...] = ()  #: what the backend chose or could not honour, in plain words
    key: CacheKey | None = None  #: what makes two compiles the same (set by compile_plan)
    plan: PrecisionPlan | None = field(default=None, compare=False, hash=False, repr=False)  #: the plan compiled


@dataclass(frozen=True)
class Profile:
    """Measured per-layer datatypes and latency, mapped back onto FX nodes, plus end-to-end timing."""

    backend: str
    device: str  #: device name in words ("NVIDIA H100 80GB HBM3", "cpu")
    versions: dict[str, str]  #: library versions (torch, torch_tensorrt, tensorrt, cuda)
    layers: tuple[LayerRecord, ...]  #: attributed layers, in execution order
    unattributed: tuple[LayerRecord, ...]  #: layers that could not be mapped to a node (not guessed)
    end_to_end: EndToEnd  #: whole-model latency with profiling switched off
    mode: str = ""  #: backend mode ("eager", "compiled", "tensorrt")
    notes: tuple[str, ...] = ()
    profiled_run_ms: float | None = None  #: median wall time of one profiled run (profiler and ranges on), if known
    recorded_in: str | None = None  #: the folder of traces :meth:`Explorer.load_profile` maps again anywhere, if any
    #: 0..1, for a folder loaded with :meth:`Explorer.load_profile`: how well its engines fit the graph (1: inputs,
    #: outputs, module names and layer sizes all agree); None where not checked (a live profile)
    match_score: float | None = None

    def node_latency_ms(self) -> dict[str, float]:
        """Latency per FX node (ms); a fused layer's time is split by its ``node_weights`` (evenly without)."""
        out: dict[str, float] = {}
        for layer in self.layers:
            if layer.latency_ms is None or not layer.nodes:
                continue
            weights = layer.node_weights or (1.0 / len(layer.nodes),) * len(layer.nodes)
            for n, w in zip(layer.nodes, weights):
                out[n] = out.get(n, 0.0) + layer.latency_ms * w
        return out

    def node_dtypes(self) -> dict[str, torch.dtype | None]:
        """Measured dtype per FX node: the dtype its layer computed in where inferred, else the layer's output dtype.

        Glue layers (casts the engine inserted, attributed to the nodes reading their output) say nothing about
        those nodes' dtype and are skipped; where several layers cover a node, the last one wins.
        """
        out: dict[str, torch.dtype | None] = {}
        for layer in self.layers:
            if layer.extra.get("match", {}).get("confidence") in ("glue", "split"):
                continue
            if layer.node_dtypes:
                out.update(layer.node_dtypes)
                continue
            for n in layer.nodes:
                out[n] = layer.output_dtypes[0] if layer.output_dtypes else None
        return out

    def dtype_mismatches(self, plan: PrecisionPlan) -> tuple[DtypeMismatch, ...]:
        """Every node whose measured dtype (:meth:`node_dtypes`) differs from ``plan``'s, in graph order, each with
        the reason where the engine's kernels show one (``record.reason``; None: unexplained), e.g.
        ``ex.last_profile.dtype_mismatches(ex.plan())``. The graph figure's ``color_by="mismatch"`` colours the same
        nodes (:func:`mixprec_explorer.parsers.mismatch.mismatch_reasons`).
        """
        kernels: dict[str, list[str]] = {}
        reads: dict[str, list[tuple[torch.dtype | None, ...]]] = {}
        for layer in self.layers:
            for node in layer.nodes:
                kernels.setdefault(node, []).append(layer.name)
                reads.setdefault(node, []).append(layer.input_dtypes)
        measured = self.node_dtypes()
        records = {rec.name: rec for rec in plan}
        return tuple(DtypeMismatch(node, records[node].op, records[node].dtype, measured[node], reason,
                                   tuple(kernels.get(node, ())))
                     for node, reason in mismatch_reasons(records.values(), measured, kernels, reads).items())

    def layers_of(self, node: str) -> tuple[LayerRecord, ...]:
        """The engine layers (or backend records) that ran part of FX node ``node``, in execution order."""
        return tuple(layer for layer in self.layers if node in layer.nodes)

    @property
    def attributed_share(self) -> float | None:
        """Fraction (0..1) of the summed layer time that landed on FX nodes; None without layer timings."""
        total = self.layer_sum_ms
        if total <= 0:
            return None
        return sum(x.latency_ms or 0.0 for x in self.layers if x.nodes) / total

    @property
    def layer_sum_ms(self) -> float:
        """Sum of per-layer latencies (attributed and not), to set against end-to-end."""
        return sum(x.latency_ms or 0.0 for x in (*self.layers, *self.unattributed))

    @property
    def overlapped_ms(self) -> float:
        """Time of the layers that ran on a second stream beside the main one (TensorRT's ``StreamId`` > 0), ms:
        it overlaps the main stream's, so ``layer_sum_ms`` exceeds the wall time by up to this much; 0 for one."""
        return sum(x.latency_ms or 0.0 for x in (*self.layers, *self.unattributed) if x.on_second_stream)

    @property
    def layer_sum_ratio(self) -> float | None:
        """``layer_sum_ms`` over the end-to-end median (about 1 when time is counted once); None without timing."""
        median = self.end_to_end.median_ms
        return self.layer_sum_ms / median if median and median > 0 else None


class Backend(Protocol):
    """What a backend implements. Raise BackendUnavailable (naming what to install) when it cannot run."""

    name: str

    def availability(self) -> tuple[bool, str]:
        """(usable here, reason in words when not)."""
        ...

    def compile(self, explorer: Model, plan: PrecisionPlan, device: str, **options: Any) -> Compiled:
        """Build ``plan`` (its ``settings`` included) for ``device``; reject unknown ``options`` with TypeError."""
        ...

    def profile(self, explorer: Model, compiled: Compiled, inputs: tuple[Any, ...], runs: int,
                warmup: int) -> Profile:
        ...
