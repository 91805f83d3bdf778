"""What an analysis measures on a backend: per-node prices (a latency model) and a plan's error as built.

:class:`Build` says how an analysis compiles (backend, device, in the worker or not, backend options), so search
and the frontier pass one object rather than forwarding ``**options`` through three layers. What compiles, profiles
and checks a plan is a :class:`Bench` (the facade, ``Explorer``, is one): this module names the three calls it
makes and nothing else of the explorer.
"""

from __future__ import annotations

import math
import time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import torch

from ..costs import MATMUL_FAMILY, op_basename, roofline_ms
from ..errors import OptionError
from ..inputs import Inputs
from .metrics import METRICS
from .plans import all_fp32_settings

if TYPE_CHECKING:
    from ..backends.base import Compiled, Profile
    from ..records import NodeInfo
    from ..settings import Settings

__all__ = ["Bench", "Build", "CompileLog", "CompiledEntry", "LatencyModel", "backend_error", "calibration_profiles",
           "price_nodes"]


class Bench(Protocol):
    """What an analysis compiles, profiles and checks plans with (``Explorer`` is one): its graph's node records
    and three calls."""

    @property
    def nodes(self) -> Mapping[str, NodeInfo]: ...

    def compile(self, settings: Settings | None = None, backend: str = "auto", device: str | None = None, *,
                isolate: bool = True, progress: bool = True, **backend_options: Any) -> Compiled: ...

    def profile(self, compiled: Compiled, inputs: Inputs = None, *, progress: bool = True) -> Profile: ...

    def accuracy(self, compiled: Compiled, inputs: Inputs = None) -> Any: ...

#: Every Compiled an analysis was handed in this process, by id (weakly): a later analysis handed the same object
#: (the compile cache's) knows it was not built for it.
_HANDED: weakref.WeakValueDictionary[int, Compiled] = weakref.WeakValueDictionary()


@dataclass(frozen=True)
class CompiledEntry:
    """One distinct plan an analysis compiled: its settings, where, and whether it was built for this analysis."""

    settings: Settings
    backend: str | None  #: None: the build's own backend (with the build's options)
    options: tuple[tuple[str, str], ...]  #: the options it was compiled with, as text
    built: bool  #: False where the compile cache handed back a plan an earlier analysis of this process had
    seconds: float  #: wall time of the compile call (about 0 when it came from the cache)
    compiled: Any = field(compare=False, repr=False)


class CompileLog:
    """The ledger of the distinct plans one analysis compiled, in order, counted: not a cache.

    A search asks for the all-FP32 and all-low plans to price nodes, again to measure their error and again to
    confirm; the backends' compile cache hands back the same Compiled each time (an analysis runs inside
    :func:`~mixprec_explorer.backends.keep_compiled`, so nothing is evicted meanwhile), and the log records each
    plan once, for the count and for timing them in turns.
    """

    def __init__(self) -> None:
        self.entries: dict[tuple[Any, ...], CompiledEntry] = {}

    def count(self, own: bool = True) -> int:
        """Distinct plans compiled on the build's own backend (``own``), or on any."""
        return sum(1 for e in self.entries.values() if e.backend is None or not own)

    def own(self) -> list[CompiledEntry]:
        """The entries on the build's own backend, in the order they were first compiled."""
        return [e for e in self.entries.values() if e.backend is None]


@dataclass(frozen=True)
class Build:
    """How an analysis compiles its plans.

    ``backend`` is a registered name ("auto", "torch", "tensorrt") or None (nothing is compiled: latency comes
    from a FLOPs/bytes estimate and errors from the forward pass alone); ``device`` defaults as in
    :meth:`Explorer.compile`; ``isolate`` compiles in the worker process; ``options`` are the backend's own
    (torch: ``{"mode": "compiled"}``; tensorrt: ``{"build": "cast_graph", "min_block_size": 1}``).
    """

    backend: str | None = "auto"
    device: str | None = None
    isolate: bool = True
    options: Mapping[str, Any] = field(default_factory=dict)
    progress: bool = True
    #: where given, every plan is compiled once per analysis and counted (see :class:`CompileLog`)
    log: CompileLog | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.backend is not None and self.options:  # a bad option value is refused before the analysis starts
            from ..backends import check_options, choose_backend

            check_options(choose_backend(self.backend)[0], "compile", self.options)

    def compile(self, bench: Bench, settings: Settings, backend: str | None = None,
                options: Mapping[str, Any] | None = None) -> Compiled:
        """The compiled plan for ``settings`` (from the backends' compile cache where it was compiled before), on this
        build's backend unless given."""
        name = backend or self.backend
        if name is None:
            raise OptionError("this analysis has backend=None: nothing is compiled")
        chosen = dict(self.options if options is None else options)
        own = name == self.backend and chosen == dict(self.options)
        key = (settings, None if own else name, tuple(sorted((str(k), repr(v)) for k, v in chosen.items())))
        started = time.perf_counter()
        compiled = bench.compile(settings, backend=name, device=self.device, isolate=self.isolate,
                                    progress=self.progress, **chosen)
        seconds = time.perf_counter() - started
        built = _HANDED.get(id(compiled)) is not compiled
        _HANDED[id(compiled)] = compiled
        if self.log is not None and key not in self.log.entries:
            self.log.entries[key] = CompiledEntry(settings, key[1], key[2], built, seconds, compiled)
        return compiled

    def profile(self, bench: Bench, compiled: Compiled, inputs: Inputs = None) -> Profile:
        return bench.profile(compiled, inputs, progress=self.progress)


@dataclass(frozen=True)
class LatencyModel:
    """Per-node latency in FP32 and in low precision (ms), from two profiles or a FLOPs/bytes estimate."""

    fp32_ms: dict[str, float]
    low_ms: dict[str, float]
    source: str  #: "profile:<backend>" or "estimate:roofline"

    def estimate_ms(self, low_nodes: set[str]) -> float:
        """Estimated model latency (ms) when ``low_nodes`` run low precision and the rest FP32."""
        return sum(self.low_ms.get(n, 0.0) if n in low_nodes else v for n, v in self.fp32_ms.items())

    @classmethod
    def from_profiles(cls, fp32: Profile, low: Profile) -> LatencyModel:
        return cls(fp32.node_latency_ms(), low.node_latency_ms(), f"profile:{fp32.backend}")

    @classmethod
    def roofline(cls, nodes: Mapping[str, NodeInfo], low: torch.dtype) -> LatencyModel:
        """Crude model from FLOPs and bytes, the cost model's roofline (:func:`~mixprec_explorer.costs.roofline_ms`:
        H100-like rates, the matmul family 4x faster in low precision, bytes scaled by the item size)."""
        fp32, lowd = {}, {}
        for name, info in nodes.items():
            if info.kind != "call_function":
                continue
            dense = op_basename(info.op) in MATMUL_FAMILY
            fp32[name] = roofline_ms(info.flops, info.bytes_moved, dense)
            lowd[name] = roofline_ms(info.flops, info.bytes_moved, dense, low.itemsize)
        return cls(fp32, lowd, "estimate:roofline")


def calibration_profiles(bench: Bench, base: Settings, build: Build, objective: str = "latency"
                         ) -> tuple[LatencyModel, list[tuple[Compiled, Profile]]]:
    """Per-node prices for ``base`` (all low) and all-FP32, and the (compiled, profile) pairs measured for them.

    Two profiles on ``build``'s backend; the roofline estimate (and no pairs) where ``build.backend`` is None or the
    objective is not latency. Fused builds (torch.compile, TensorRT without layer names) time no single node: nodes
    are then priced from an eager PyTorch run on the same device, which keeps their relative costs; those pairs come
    first in the list, the build's own last (as :func:`mixprec_explorer.predict.measure_calibration` records them).
    """
    low = base.autocast_low_precision_type or torch.float16
    if objective != "latency" or build.backend is None:
        return LatencyModel.roofline(bench.nodes, low), []
    settings = (all_fp32_settings(base), base)
    compiled = [build.compile(bench, s) for s in settings]
    profiles = [build.profile(bench, c) for c in compiled]
    pairs = list(zip(compiled, profiles))
    model = LatencyModel.from_profiles(*profiles)
    if model.fp32_ms and model.low_ms:
        return model, pairs
    eager = {"mode": "eager"}  # the torch backend's own option; the build's are for its own backend
    priced = [build.compile(bench, s, backend="torch", options=eager) for s in settings]
    profiles = [build.profile(bench, c) for c in priced]
    pairs = list(zip(priced, profiles)) + pairs
    model = LatencyModel.from_profiles(*profiles)
    if not (model.fp32_ms and model.low_ms):
        return LatencyModel.roofline(bench.nodes, low), pairs
    return LatencyModel(model.fp32_ms, model.low_ms, f"profile:torch eager (per-node prices for {build.backend})"), \
        pairs


def price_nodes(bench: Bench, base: Settings, build: Build, objective: str = "latency") -> LatencyModel:
    """Per-node prices for ``base`` (all low) and all-FP32: two profiles on ``build``'s backend.

    The roofline estimate where ``build.backend`` is None or the objective is not latency; see
    :func:`calibration_profiles`, which also returns the profiles.
    """
    return calibration_profiles(bench, base, build, objective)[0]


def backend_error(bench: Bench, settings: Settings, inputs: Inputs, metric: str, build: Build,
                  backend: str | None = None) -> float:
    """The plan's error (metric units) as ``build``'s backend (or ``backend``) compiles and runs it.

    Raises OptionError for a metric the accuracy report does not carry. Non-finite outputs score inf.
    """
    if metric not in METRICS:
        raise OptionError(f"unknown metric {metric!r}; known: {', '.join(METRICS)}")
    compiled = build.compile(bench, settings, backend=backend)
    error = getattr(bench.accuracy(compiled, inputs), f"{metric}_error", None)
    if error is None:
        raise OptionError(f"the accuracy report has no {metric} error; use one of {', '.join(METRICS)}")
    return math.inf if math.isnan(error) else float(error)
