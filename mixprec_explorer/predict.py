"""Predict a plan's latency and error before any compile, calibrated from what the explorer has measured.

The model, per node of the captured graph:

* **Latency.** Each node costs what the calibration profiles measured for it at the dtype the plan gives it: the
  all-FP32 profile's time for an FP32 node, the all-low profile's for a low one (``Profile.node_latency_ms()``).
  Each profile's per-node times are scaled so that they add up to its end-to-end median, so the unattributed share
  (launch gaps, glue) is spread in proportion and both calibration plans are predicted exactly. A profile without
  per-node times (``torch.compile`` fuses nodes) is split like a profile of the same plan with per-node times on the
  same device (the PyTorch eager run), else by FLOPs and bytes, and the statement says which.
* **Casts.** Where the plan puts a precision boundary (a producer's float output reaches a classified node of
  another dtype), one cast per consumer is priced at ``scale * max(floor, bytes / bandwidth)``: the time of a small
  kernel (floor) or of streaming the tensor, both read off the memory-bound nodes of the FP32 profile. Casts the
  calibration profiles already paid (the input cast of the all-low plan) are in those nodes' times, so only the
  difference is added. ``scale`` starts at 1 and is fitted on every measured mixed plan (least squares, the prior
  counting as one plan).
* **Error** (relative L2 of the outputs, the search's metric). Errors add roughly in quadrature, so the squared
  error of a plan is a sum over its low-precision nodes. Sensitivity gives two exact measurements per node: the
  error when only it runs low (``a``, exact for a plan with one low node), and the error removed when only it
  stays FP32 (``b``, normalised to add up to the all-low error: exact for all-low). A plan's nodes are weighted
  by ``(1 - lam) * a + lam * b``, ``lam`` being the share of the all-low error the plan keeps. The sum is scaled to
  the backend's measured all-low error (its rounding differs from the forward pass's), the backend's all-FP32 error
  (TF32, kernel order) adds in quadrature as a floor, and a correction fitted on measured mixed plans fades out
  towards all-low, which stays exact.

A prediction is O(nodes) over tables built once per calibration: no torch work (about 2 ms on a 2,000-node graph,
``python benchmarks/run.py predict``). Measurements are registered with :meth:`Predictor.record`: ``ex.profile`` and
``ex.accuracy`` of a compiled plan do so by themselves (the ``Compiled`` says which plan and target it measured),
``ex.record_measurement`` takes what was measured otherwise. A plan measured again replaces its earlier figure.
:func:`measure_calibration` runs the whole calibration for one backend.

For a view that answers every click: ``ex.predict()`` (cached per settings until a measurement is recorded;
``ex.predictor.version`` counts those), ``after.minus(before).text()`` for the change (``"+0.041 ms, −2.1e-4"``),
``prediction.measured_latency_ms`` / ``measured_error`` where the very plan was measured, and
``ex.predictor.fp32_cost_ms()`` for each node's cost of staying FP32. For a search: ``ex.predict(settings,
backend=...)`` prices a candidate plan, and each plan it compiles goes back in with ``ex.record_measurement``.

>>> import torch
>>> from mixprec_explorer import Explorer, Settings
>>> from mixprec_explorer.examples import reference_autocast_model
>>> ex = Explorer(*reference_autocast_model(), settings=Settings(enable_autocast=True))
>>> p = ex.predict()
>>> p.latency_ms is None, p.statement.split(":")[0]
(True, 'No profile recorded')
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import torch

from .analysis.subject import Captured, Plans
from .costs import BYTES_PER_MS, MATMUL_FAMILY, error_above_floor, error_with_floor, op_basename, roofline_ms
from .errors import OptionError, OptionTypeError
from .numbers import format_number
from .policy import CLASSIFIED_RULES
from .settings import Settings

if TYPE_CHECKING:
    from collections.abc import Mapping

    from .backends.base import Compiled, Profile
    from .capture import CapturedGraph
    from .inputs import Inputs
    from .records import CalibrationStat

__all__ = ["CastCost", "Delta", "Prediction", "Predictor", "Source", "delta", "measure_calibration", "target_label"]


# -- what the predictor reads of the facade --------------------------------------------------------------------------
class Planned(Plans, Captured, Protocol):
    """What a :class:`Predictor` reads of the model it predicts for (the facade): each plan (:class:`Plans`), the
    captured graph (its fixed tables), the current settings (the plan predicted by default), the calibration
    (a new one rebuilds the tables: plans may change). Sensitivity runs are handed over by the facade
    (:meth:`Predictor.take_sensitivity`), never read off it."""

    @property
    def settings(self) -> Settings: ...

    @property
    def calibration(self) -> Mapping[str, CalibrationStat]: ...


class Workbench(Protocol):
    """What :func:`measure_calibration` drives (the facade): its settings (the plans measured are built from
    them), compiles, profiles and checks (each recorded in its predictor by the facade), a sensitivity run where
    none was made, and the predictor it returns."""

    @property
    def settings(self) -> Settings: ...

    @property
    def predictor(self) -> Predictor: ...

    def compile(self, settings: Settings | None = None, backend: str = "auto", device: str | None = None, *,
                progress: bool = True, **backend_options: Any) -> Compiled: ...

    def profile(self, compiled: Compiled, inputs: Inputs = None, *, runs: int = 20,
                progress: bool = True) -> Profile: ...

    def accuracy(self, compiled: Compiled, inputs: Inputs = None) -> Any: ...

    def sensitivity(self, inputs: Inputs = None, *, low_dtype: torch.dtype | None = None,
                    progress: bool = True) -> Any: ...


_LOW = (torch.float16, torch.bfloat16)
_EXCLUDING_RULES = frozenset({"excluded_node", "excluded_op"})
#: No memory streams faster than this (bytes per ms = 8 TB/s; an H200 does 4.8): fused layers' time, split by cost
#: over their nodes, can make a node look faster than any memory, which would price casts at nothing.
_MAX_BYTES_PER_MS = 8e9
_CACHE = 64


# -- records ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Source:
    """One measurement a prediction rests on: what it is, where it ran, and when it was recorded."""

    kind: str  #: "profile", "latency" (an end-to-end time alone), "accuracy" or "sensitivity"
    plan: str  #: "all-FP32", "all-FP16" / "all-BF16", "mixed (3 exclusions)", or "" for sensitivity
    #: the target it was measured on ("torch eager on cpu", "tensorrt cast_graph on cuda:0"); "" for sensitivity
    backend: str
    detail: str  #: the measured figure in words ("2.31 ms end to end", "rel_l2 1.2e-03", "rel_l2 over 156 nodes")
    recorded_at: float  #: ``time.time()`` when it was recorded (handed over, for a sensitivity run)
    versions: tuple[tuple[str, str], ...] = ()  #: library versions the profile names (torch, tensorrt, ...)

    def age_s(self, now: float | None = None) -> float:
        """Seconds since it was recorded."""
        return max(0.0, (time.time() if now is None else now) - self.recorded_at)

    def describe(self, now: float | None = None) -> str:
        """One line: ``"profile all-FP32, torch eager on cpu: 2.31 ms end to end (recorded 12 s ago)"``."""
        where = f", {self.backend}" if self.backend else ""
        plan = f" {self.plan}" if self.plan else ""
        return f"{self.kind}{plan}{where}: {self.detail} (recorded {_age(self.age_s(now))} ago)"


@dataclass(frozen=True)
class CastCost:
    """One cast the plan inserts at a precision boundary, before ``consumer``."""

    producer: str  #: FX node (or graph input) whose float output is cast
    consumer: str  #: the classified node that reads it in another dtype
    to_dtype: torch.dtype  #: the dtype it is cast to
    bytes_moved: int  #: bytes read plus written by the cast
    latency_ms: float  #: predicted cost; 0 where the calibration profile already paid it inside ``consumer``'s time
    in_calibration: bool  #: True where the calibration profile of ``consumer``'s dtype had the same cast


@dataclass(frozen=True)
class Delta:
    """What changed between two predictions (``after - before``); None where either side is unknown."""

    latency_ms: float | None
    error: float | None

    def text(self) -> str:
        """``"+0.041 ms, −2.1e-4"`` (a true minus sign); ``"? ms"`` / ``"?"`` where a side is unknown."""
        ms = "? ms" if self.latency_ms is None else f"{_signed(self.latency_ms, 'ms')} ms"
        err = "?" if self.error is None else _signed(self.error, "error")
        return f"{ms}, {err}"

    __str__ = text


@dataclass(frozen=True)
class Prediction:
    """Predicted end-to-end latency and error of one plan, with per-node contributions and what they rest on.

    ``latency_ms == sum(node_latency_ms.values()) + sum(cast_ms.values()) + mixed_ms`` and
    ``error ** 2 == error_floor ** 2 + (error ** 2 - error_floor ** 2) * sum(error_share.values())``.
    """

    settings: Settings  #: the settings whose plan this is
    latency_ms: float | None  #: predicted end-to-end latency; None when nothing was measured (see ``statement``)
    error: float | None  #: predicted relative L2 error of the outputs against FP32; None without sensitivity
    #: node -> its time at its planned dtype (calibrated; the casts it was measured with included)
    node_latency_ms: dict[str, float]
    #: consumer node -> cost of the casts before it that its calibration profile did not pay (< 0 where it paid more)
    cast_ms: dict[str, float]
    casts: tuple[CastCost, ...]  #: every cast the plan inserts at a precision boundary
    #: what measured mixed plans ran beyond (< 0: under) the sum of their parts on this backend, fitted (fusion the
    #: calibration plans lack); 0 for the calibration plans and before any mixed plan is measured
    mixed_ms: float
    error_share: dict[str, float]  #: low-precision node -> its share of the error above the floor (squared; sums to 1)
    error_floor: float  #: the backend's error on the all-FP32 plan (0 where not measured)
    low_nodes: int  #: nodes the plan runs in low precision
    backend: str  #: the target the figures are for ("torch eager on cpu"); "" when there is none
    latency_basis: str  #: "profiles", "profiles, split by <how>", "estimate from FLOPs and bytes" or "none"
    error_basis: str  #: "backend", "forward pass" or "none"
    sources: tuple[Source, ...]  #: the profiles, accuracies and sensitivity run it is calibrated from
    statement: str  #: in plain words: what the figures rest on, or why there are none
    measured_latency_ms: float | None = None  #: end-to-end latency measured for this very plan, where recorded
    measured_error: float | None = None  #: error measured for this very plan on the same backend, where recorded
    made_at: float = field(default_factory=time.time)  #: when the prediction was made (``time.time()``)
    metric: str = "rel_l2"  #: the error metric (the search's)

    @property
    def cast_total_ms(self) -> float:
        """Sum of :attr:`cast_ms`: what the plan's precision boundaries add."""
        return sum(self.cast_ms.values())

    def minus(self, other: Prediction) -> Delta:
        """``self - other``, e.g. ``after.minus(before).text() == "+0.041 ms, −2.1e-4"``."""
        return Delta(_difference(self.latency_ms, other.latency_ms), _difference(self.error, other.error))

    def summary(self) -> str:
        """One line for a status bar: ``"2.31 ms, rel L2 1.2e-03 (torch eager on cpu)"``."""
        ms = "latency unknown" if self.latency_ms is None else f"{format_number(self.latency_ms)} ms"
        err = "error unknown" if self.error is None else f"rel L2 {format_number(self.error, 2)}"
        measured = []
        if self.measured_latency_ms is not None:
            measured.append(f"{format_number(self.measured_latency_ms)} ms")
        if self.measured_error is not None:
            measured.append(f"{format_number(self.measured_error, 2)}")
        where = f" ({self.backend})" if self.backend else ""
        return f"{ms}, {err}{where}" + (f"; measured {', '.join(measured)}" if measured else "")

    def describe_sources(self) -> str:
        """One line per source, with its age at the time of the prediction."""
        return "\n".join(s.describe(self.made_at) for s in self.sources) or "no measurements"

    def __str__(self) -> str:
        return f"{self.summary()}\n{self.statement}"


def delta(before: Prediction, after: Prediction) -> Delta:
    """The change a click made: ``after - before``; ``str(delta(a, b))`` reads ``"+0.041 ms, −2.1e-4"``."""
    return after.minus(before)


def _difference(a: float | None, b: float | None) -> float | None:
    if a is None or b is None:
        return None
    if math.isinf(a) or math.isinf(b):
        return 0.0 if a == b else (math.inf if a > b else -math.inf)
    return a - b


def _signed(value: float, unit: str) -> str:
    """``+0.041`` / ``−2.1e-4``: two significant digits, a true minus sign, exponents without padding."""
    sign = "−" if value < 0 else "+" if value > 0 else "±"
    size = abs(value)
    if math.isinf(size):
        return f"{sign}inf"
    if size == 0:
        return "±0"
    if unit == "ms" and 1e-3 <= size < 1e4:
        digits = max(0, 1 - math.floor(math.log10(size)))
        return f"{sign}{size:.{digits}f}"
    mantissa, _, exponent = f"{size:.1e}".partition("e")
    return f"{sign}{mantissa}e{int(exponent)}"


def _age(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def _dtype_name(dtype: torch.dtype | None) -> str:
    names = {torch.float32: "FP32", torch.float16: "FP16", torch.bfloat16: "BF16"}
    return names.get(dtype, str(dtype)) if dtype is not None else "None"


# -- measurements --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Target:
    """Where a plan was measured: backend, variant (torch mode, TensorRT build) and device."""

    backend: str
    variant: str
    device: str

    @property
    def label(self) -> str:
        where = "" if not self.device else f" ({self.device})" if self.device.startswith("recorded") \
            else f" on {self.device}"
        return " ".join(x for x in (self.backend, self.variant) if x) + where

    def covers(self, other: _Target) -> bool:
        """True where ``other`` is this target, a field left empty here standing for any value (an accuracy
        recorded with Settings knows its backend only)."""
        return all(mine in ("", theirs) for mine, theirs in zip((self.backend, self.variant, self.device),
                                                                  (other.backend, other.variant, other.device)))


@dataclass(frozen=True)
class _Measurement:
    settings: Settings
    target: _Target
    kind: str  #: "fp32", "all_low" or "mixed"
    plan_label: str
    end_to_end_ms: float | None  #: profile's end-to-end median (or its layer sum where none was timed)
    node_ms: dict[str, float] | None  #: per-node latency, None where the profile has none
    error: float | None  #: rel L2 against FP32
    profile_device: str
    recorded_at: float
    sources: tuple[Source, ...]
    forward_error: float | None = None  #: the plan's exact forward-pass error, where the recorder measured it


@dataclass(frozen=True)
class _Sens:
    value: Any  #: the Sensitivity record
    recorded_at: float
    source: Source


def _target_of(compiled: Compiled) -> _Target:
    try:
        options = dict(compiled.key.options) if compiled.key is not None else {}
    except (TypeError, ValueError):
        options = {}
    handle = compiled.handle
    if compiled.backend == "torch":
        variant = str(options.get("mode", getattr(handle, "mode", "eager")))
    elif compiled.backend == "tensorrt":
        variant = str(options.get("build", "autocast")).strip("'\"")
    else:
        variant = str(options.get("mode", ""))
    return _Target(compiled.backend, variant, str(compiled.device))


def target_label(compiled: Compiled) -> str:
    """The label a compiled plan's measurements are recorded under ("torch eager on cpu", "tensorrt cast_graph on
    cuda:0"): what ``predict(settings, backend=...)`` takes to predict for that very target."""
    return _target_of(compiled).label


def _end_to_end(profile: Profile) -> float | None:
    median = getattr(profile.end_to_end, "median_ms", None)
    if median is not None and math.isfinite(median) and median > 0:
        return float(median)
    total = profile.layer_sum_ms
    return float(total) if total > 0 else None


# -- the graph's fixed structure -------------------------------------------------------------------------------------
class _Structure:
    """Settings-independent tables: nodes in graph order, producer edges with their cast priors, FLOPs and bytes."""

    def __init__(self, captured: CapturedGraph) -> None:
        nodes = captured.nodes
        producers = captured.producers
        ops = [n for n in producers if n in nodes]
        inputs = sorted({p for n in ops for p in producers[n] if p in nodes and nodes[p].kind == "input"},
                        key=list(nodes).index)
        self.names: list[str] = inputs + ops
        self.first_op = len(inputs)
        self.index = {n: i for i, n in enumerate(self.names)}
        infos = [nodes[n] for n in self.names]
        self.captured_dtype = [i.dtype for i in infos]
        self.is_float = [d is not None and d.is_floating_point for d in self.captured_dtype]
        self.numel = [math.prod(i.output_shapes[0]) if i.output_shapes else 0 for i in infos]
        self.flops = [i.flops for i in infos]
        self.bytes_moved = [i.bytes_moved for i in infos]
        self.dense = [op_basename(i.op) in MATMUL_FAMILY for i in infos]
        #: (producer index, consumer index) for every float producer of an op
        self.edges = [(self.index[p], self.index[n]) for n in ops for p in producers[n]
                      if p in self.index and self.is_float[self.index[p]]]

    def view(self, plan: Any) -> _PlanView:
        """Per node under ``plan``: the dtype it yields, the dtype autocast casts its inputs to, the one it runs in."""
        out = list(self.captured_dtype)
        target: list[torch.dtype | None] = [None] * len(self.names)
        get = plan.get
        for i in range(self.first_op, len(self.names)):
            rec = get(self.names[i])
            if rec is None or rec.dtype is None:
                continue
            if self.is_float[i]:
                out[i] = rec.dtype
            if rec.rule in CLASSIFIED_RULES:
                target[i] = rec.dtype
        return _PlanView(out, target, [t if t is not None else o for o, t in zip(out, target)])


@dataclass(frozen=True)
class _PlanView:
    """A plan as the tables read it, per node of :class:`_Structure`."""

    out: list[torch.dtype | None]  #: dtype of the value its users receive (integer outputs stay integer)
    target: list[torch.dtype | None]  #: dtype autocast casts its float inputs to; None where it is not classified
    compute: list[torch.dtype | None]  #: dtype it runs in: the target, else its output's


def _kind(plan: Any, structure: _Structure) -> tuple[str, torch.dtype | None, str]:
    """("fp32" | "all_low" | "mixed", the low dtype or None, a label) for a plan."""
    compute = structure.view(plan).compute
    ops = range(structure.first_op, len(structure.names))
    lows = {compute[i] for i in ops if compute[i] in _LOW}
    if not lows:
        return "fp32", None, "all-FP32"
    low = next(iter(lows)) if len(lows) == 1 else None
    settings = plan.settings
    excluded = sum(1 for r in plan if r.rule in _EXCLUDING_RULES)
    if settings.autocast_active and excluded == 0 and low is not None:
        return "all_low", low, f"all-{_dtype_name(low)}"
    count = len(settings.autocast_excluded_nodes) + len(settings.autocast_excluded_ops)
    return "mixed", low, f"mixed ({count} exclusion{'s' if count != 1 else ''}, {excluded} nodes FP32)"


# -- the calibrated tables for one target -----------------------------------------------------------------------------
class _LatencyTables:
    """Per-node FP32 and low times (ms, scaled to end to end), calibration dtypes, cast priors and their scale."""

    def __init__(self, structure: _Structure, fp32_ms: Sequence[float], low_ms: Sequence[float],
                 fp32_plan: Any, low_plan: Any, low_dtype: torch.dtype, device: str) -> None:
        s = structure
        self.structure, self.low_dtype = s, low_dtype
        self.f, self.l = list(fp32_ms), list(low_ms)
        vf, vl = s.view(fp32_plan), s.view(low_plan)
        self.df, self.dl = vf.compute, vl.compute
        n = len(s.names)
        self.changing = [self.df[i] != self.dl[i] for i in range(n)]
        self.phi_nodes = max(1, sum(1 for i in range(s.first_op, n) if self.dl[i] in _LOW and self.changing[i]))
        # bandwidth and per-kernel floor from the memory-bound nodes of the FP32 profile
        memory = [i for i in range(s.first_op, n) if not s.dense[i] and s.bytes_moved[i] > 0 and self.f[i] > 0]
        cpu = "cpu" in device.lower() or not device
        self.bytes_per_ms = min(_MAX_BYTES_PER_MS, (sum(s.bytes_moved[i] for i in memory)
                                                     / sum(self.f[i] for i in memory))) if memory \
            else (1e7 if cpu else 1e9)
        times = sorted(self.f[i] for i in memory)
        self.floor_ms = times[len(times) // 10] if times else 0.0
        self.edges = []  #: (producer, consumer, prior ms, bytes, cast in the low calibration, in the FP32 one)
        for u, v in s.edges:
            size = s.numel[u] * 6  # read 4 bytes and write 2, or the reverse
            in_low = vl.target[v] is not None and vl.out[u] != vl.target[v]
            in_fp32 = vf.target[v] is not None and vf.out[u] != vf.target[v]
            self.edges.append((u, v, max(self.floor_ms, size / self.bytes_per_ms), size, in_low, in_fp32))
        self.cast_scale = 1.0
        self.mixed_ms = 0.0  #: what measured mixed plans ran beyond the sum of their parts (fitted; 0 before any)
        self.points = 0

    def evaluate(self, view: _PlanView) -> tuple[list[float], list[bool]]:
        """(per-node ms, per-node 'timed from the low profile') of a plan."""
        s = self.structure
        dtypes = view.compute
        n = len(s.names)
        lows = sum(1 for i in range(s.first_op, n) if self.changing[i] and dtypes[i] in _LOW)
        phi = min(1.0, lows / self.phi_nodes)
        times = [0.0] * n
        from_low = [False] * n
        f, low, df, dl = self.f, self.l, self.df, self.dl
        for i in range(s.first_op, n):
            d = dtypes[i]
            if not self.changing[i]:
                times[i] = f[i] + (low[i] - f[i]) * phi
                from_low[i] = phi >= 0.5
            elif d == dl[i]:
                times[i], from_low[i] = low[i], True
            elif d == df[i]:
                times[i] = f[i]
            else:  # a dtype neither calibration plan had: the nearer one
                from_low[i] = d in _LOW
                times[i] = low[i] if from_low[i] else f[i]
        return times, from_low

    def cast_terms(self, view: _PlanView, from_low: Sequence[bool]
                   ) -> tuple[float, list[tuple[int, int, float, int, bool, torch.dtype]], dict[int, float]]:
        """(sum of prior extra cast cost, casts the plan inserts, per-consumer prior extra cost)."""
        extra = 0.0
        casts: list[tuple[int, int, float, int, bool, torch.dtype]] = []
        per_consumer: dict[int, float] = {}
        out, targets = view.out, view.target
        for u, v, prior, size, in_low, in_fp32 in self.edges:
            target = targets[v]
            here = target is not None and out[u] != target
            paid = in_low if from_low[v] else in_fp32
            if target is not None and here:
                casts.append((u, v, prior, size, paid, target))
            if here != paid:
                change = prior if here else -prior
                extra += change
                per_consumer[v] = per_consumer.get(v, 0.0) + change
        return extra, casts, per_consumer

    def fit(self, points: Sequence[tuple[_PlanView, float]]) -> None:
        """Fit the cast scale and the mixed-plan offset on measured mixed plans ``(plan, end-to-end ms)``: least
        squares of ``measured - node times = cast_scale * cast costs + mixed_ms``, the priors (scale 1, offset 0)
        each counting as one plan. The offset is what a backend's mixed plans run beyond (or under) the sum of their
        parts, e.g. Inductor fusing the compiled encoder's mixed plans unlike either calibration plan (10-25 %
        under); the calibration plans themselves stay exact."""
        rows = []
        for view, measured in points:
            times, from_low = self.evaluate(view)
            extra, _, _ = self.cast_terms(view, from_low)
            rows.append((measured - sum(times), extra))
        self.points = len(rows)
        self.cast_scale, self.mixed_ms = 1.0, 0.0
        if not rows:
            return
        w_b = sum(b * b for _, b in rows) / len(rows)  # the cast prior's weight: one plan's worth
        a11, a12, a22 = sum(b * b for _, b in rows) + w_b, sum(b for _, b in rows), len(rows) + 1.0
        r1, r2 = sum(r * b for r, b in rows) + w_b, sum(r for r, _ in rows)
        det = a11 * a22 - a12 * a12
        scale = min(max((r1 * a22 - a12 * r2) / det, 0.0), 25.0) if w_b > 0 and det > 0 else 1.0
        self.cast_scale = scale
        self.mixed_ms = (r2 - scale * a12) / a22


class _ErrorTables:
    """Per-node squared-error weights from sensitivity, scaled to the backend's measured all-low and FP32 errors."""

    def __init__(self, structure: _Structure, sens: Any) -> None:
        self.structure = structure
        self.low_dtype = sens.low_dtype
        n = len(structure.names)
        A = float(sens.all_low_error)
        self.all_low = A
        a = [0.0] * n
        b_raw = [0.0] * n
        self.overflow = [False] * n
        self.covered = 0
        for name, err in sens.node_low_error.items():
            i = structure.index.get(name)
            if i is None:
                continue
            self.covered += 1
            if math.isinf(err) or math.isnan(err):
                self.overflow[i] = True
                continue
            a[i] = float(err) ** 2
            gain = float(sens.node_fp32_gain.get(name, 0.0))
            if math.isfinite(A) and math.isfinite(gain):
                kept = max(0.0, A - max(gain, 0.0))
                b_raw[i] = max(0.0, A * A - kept * kept)
        self.a = a
        total_b = sum(b_raw)
        total_a = sum(a)
        if math.isfinite(A) and A > 0 and total_b > 0:
            self.b = [x * A * A / total_b for x in b_raw]
        elif math.isfinite(A) and A > 0 and total_a > 0:
            self.b = [x * A * A / total_a for x in a]
        else:  # all-low overflows (or is exact): single-node errors are all there is
            self.b = list(a)
        self.norm = A * A if math.isfinite(A) and A > 0 else (sum(self.b) or 1.0)
        #: single-node errors overlap (a cast rounds the tensor its neighbour rounds too; on a GPU each rerun adds its
        #: own noise), so their squares over-count: summed over all nodes they reach ``total_a``, not A squared.
        self.total_a = total_a
        self.overlap = min(1.0, A * A / total_a) if math.isfinite(A) and A > 0 and total_a > 0 else 1.0
        self.scale = 1.0  #: backend all-low error over the forward pass's (above the floor)
        self.floor = 0.0  #: the backend's all-FP32 error
        self.correction = 1.0  #: fitted on mixed plans, applied in full at all-FP32 and not at all at all-low
        self.points = 0
        #: the same correction for predictions anchored on a plan's exact forward-pass error (:meth:`anchored`)
        self.anchored_correction = 1.0
        self.anchored_points = 0

    def core(self, view: _PlanView) -> tuple[float, float, dict[int, float], bool]:
        """(sum of weights, lam, per-node weights, overflow) for the low nodes of a plan, before scaling."""
        s = self.structure
        low, target = self.low_dtype, view.target
        members = [i for i in range(s.first_op, len(s.names)) if target[i] == low]
        if any(self.overflow[i] for i in members):
            return math.inf, 1.0, {}, True
        lam = min(1.0, sum(self.b[i] for i in members) / self.norm)
        # The single-node sum shrinks from 1x (one node low) to ``overlap`` (every node low), where it equals A^2.
        shrink = 1.0 - (1.0 - self.overlap) * sum(self.a[i] for i in members) / self.total_a if self.total_a else 1.0
        weights = {i: (1 - lam) * shrink * self.a[i] + lam * self.b[i] for i in members}
        return sum(weights.values()), lam, weights, False

    def value(self, total: float, lam: float, overflow: bool) -> float:
        if overflow or math.isinf(total):
            return math.inf
        grown = self.scale * self.correction ** (1.0 - lam)
        return error_with_floor(self.floor, grown * grown * total)

    def _lam(self, forward: float) -> float:
        """The share of the (squared) all-low forward-pass error a plan with this forward error keeps."""
        A = self.all_low
        return min(1.0, (forward / A) ** 2) if math.isfinite(A) and A > 0 else 0.0

    def anchored(self, forward: float) -> float:
        """A plan's error on the backend from its exact forward-pass error: scaled like all-low, the floor added in
        quadrature, the anchored correction applied in full towards all-FP32 and not at all at all-low (exact)."""
        if math.isnan(forward) or math.isinf(forward):
            return math.inf
        grown = self.scale * self.anchored_correction ** (1.0 - self._lam(forward))
        return error_with_floor(self.floor, (grown * forward) ** 2)

    def fit(self, fp32_error: float | None, all_low_error: float | None,
            points: Sequence[tuple[_PlanView, float]], anchored: Sequence[tuple[float, float]] = ()) -> None:
        """Floor from the backend's FP32 error, scale from its all-low error, correction from mixed ``points``
        ((plan, measured error)); the anchored correction from ``anchored`` ((forward-pass error, measured error))."""
        self.floor = fp32_error if fp32_error is not None and math.isfinite(fp32_error) else 0.0
        A = self.all_low
        self.scale = 1.0
        if all_low_error is not None and math.isfinite(all_low_error) and math.isfinite(A) and A > 0:
            above = error_above_floor(all_low_error, self.floor)
            self.scale = above / A if above > 0 else 1.0
        xs, ys = [], []
        for view, measured in points:
            total, lam, _, overflow = self.core(view)
            above = error_above_floor(measured, self.floor) if math.isfinite(measured) else math.inf
            if overflow or total <= 0 or not (0 < above < math.inf):
                continue
            xs.append(1.0 - lam)
            ys.append(math.log(above / (self.scale * math.sqrt(total))))
        self.points = len(xs)
        if xs:
            log_g = sum(x * y for x, y in zip(xs, ys)) / (sum(x * x for x in xs) + 0.25)
            self.correction = math.exp(max(-math.log(10), min(math.log(10), log_g)))
        else:
            self.correction = 1.0
        xs, ys = [], []
        for forward, measured in anchored:
            above = error_above_floor(measured, self.floor) if math.isfinite(measured) else math.inf
            if not (0 < forward < math.inf and 0 < above < math.inf):
                continue
            xs.append(1.0 - self._lam(forward))
            ys.append(math.log(above / (self.scale * forward)))
        self.anchored_points = len(xs)
        if xs:  # a ridge towards 1, worth a quarter of a plan measured far from all-low
            log_g = sum(x * y for x, y in zip(xs, ys)) / (sum(x * x for x in xs) + 0.25)
            self.anchored_correction = math.exp(max(-math.log(10), min(math.log(10), log_g)))
        else:
            self.anchored_correction = 1.0


# -- the predictor -------------------------------------------------------------------------------------------------
class Predictor:
    """Latency and error of any plan of one explorer, from its recorded measurements; see the module docs.

    ``ex.predictor`` holds the explorer's; :meth:`record` registers a measurement, :meth:`predict` answers in
    O(nodes) from tables built once per calibration change. ``explorer`` is the facade (what it reads of it:
    ``predict.Planned``).
    """

    def __init__(self, explorer: Planned) -> None:
        self.explorer = explorer
        self._measurements: list[_Measurement] = []
        self._sensitivities: list[_Sens] = []
        self._structure: _Structure | None = None
        self._calibration_id: int | None = None
        self._latency: dict[tuple[_Target, bool], tuple[_LatencyTables | None, tuple[Source, ...], str, str]] = {}
        self._error: dict[_Target | None, tuple[_ErrorTables | None, tuple[Source, ...], str, str]] = {}
        self._cache: OrderedDict[tuple, Prediction] = OrderedDict()
        self.version = 0  #: bumped by every recorded measurement (a widget can compare it)

    # -- recording -----------------------------------------------------------------------------------------------
    def record(self, plan: Compiled | Settings | None = None, *, profile: Profile | None = None,
               latency_ms: float | None = None, accuracy: Any = None, sensitivity: Any = None,
               forward_error: float | None = None) -> tuple[Source, ...]:
        """Register measurements; returns the sources added.

        ``plan`` is the ``Compiled`` that was profiled or checked (its settings, backend, mode/build and device name
        the target) or its ``Settings`` (the target then comes from ``profile``, or from ``accuracy.backend``).
        ``profile`` is what ``ex.profile`` / ``ex.load_profile`` returned; ``latency_ms`` an end-to-end time
        measured otherwise (``time_plans``, plans timed in turns), which replaces the profile's own where both are
        given; ``accuracy`` an ``AccuracyReport`` or a relative L2 error; ``sensitivity`` what ``ex.sensitivity``
        returned (``ex.sensitivity()`` hands its run over by itself); ``forward_error`` the plan's exact
        forward-pass error (what ``predict(..., forward_error=)`` is anchored on; the search passes it). All-FP32
        and all-low plans calibrate (their profiles give per-node times); any other plan is a calibration point that
        fits the cast cost (latency) and the error correction. Raises OptionTypeError for a plan that is neither a Compiled nor
        Settings, OptionError for a measurement without its plan.
        """
        now = time.time()
        added: list[Source] = []
        if sensitivity is not None:
            added.append(self._adopt_sensitivity(sensitivity, now, "given to record_measurement"))
        if profile is None and accuracy is None and latency_ms is None:
            if plan is not None:
                raise OptionError("record(plan) needs profile=, latency_ms= and/or accuracy= measured for it")
            return tuple(added)
        if plan is None:
            raise OptionError("a measurement needs the plan it measured: record(compiled, profile=...) "
                                "or record(settings, profile=...)")
        if isinstance(plan, Settings) and profile is None and accuracy is None:
            raise OptionError("record(settings, latency_ms=...) cannot tell where it was measured: pass the "
                                "Compiled (record(compiled, latency_ms=...))")
        if isinstance(plan, Settings):
            settings = plan
            if profile is not None:
                mode = "" if profile.mode in ("", profile.backend) else profile.mode
                target = _Target(profile.backend, mode, profile.device)
            else:
                target = _Target(str(getattr(accuracy, "backend", "") or ""), "", "")
        elif hasattr(plan, "settings") and hasattr(plan, "backend"):
            settings, target = plan.settings, _target_of(plan)
        else:
            raise OptionTypeError(f"plan must be a Compiled (from ex.compile) or Settings, got {type(plan).__name__}")
        structure = self._structure_now()
        kind, low, label = _kind(self.explorer.plan(settings), structure)
        sources = []
        end_to_end = node_ms = None
        versions: tuple[tuple[str, str], ...] = ()
        device = target.device
        if profile is not None:
            end_to_end = _end_to_end(profile)
            node_ms = profile.node_latency_ms() or None
            versions = tuple(sorted((str(k), str(v)) for k, v in (profile.versions or {}).items()))
            device = profile.device or device
            timed = "end to end" if end_to_end == getattr(profile.end_to_end, "median_ms", None) else \
                "summed over layers (no end-to-end timing)"
            detail = (f"{format_number(end_to_end, 4)} ms {timed}" if end_to_end is not None else "no timing") + \
                ("" if node_ms else "; no per-node times")
            if latency_ms is not None:  # timed otherwise (in turns with other plans): that figure is the one kept
                end_to_end = float(latency_ms)
                detail = f"{format_number(end_to_end, 4)} ms end to end as timed apart (the profile's own: {detail})"
            sources.append(Source("profile", label, target.label, detail, now, versions))
        elif latency_ms is not None:
            end_to_end = float(latency_ms)
            sources.append(Source("latency", label, target.label, f"{format_number(end_to_end, 4)} ms end to end", now))
        error = None
        if accuracy is not None:
            error = float(accuracy) if isinstance(accuracy, (int, float)) else float(accuracy.rel_l2_error)
            if math.isnan(error):
                error = math.inf
            sources.append(Source("accuracy", label, target.label, f"rel_l2 {format_number(error)}", now))
        forward = float(forward_error) if forward_error is not None else None
        self._supersede(settings, target, timed=end_to_end is not None, checked=error is not None)
        self._measurements.append(_Measurement(settings, target, kind, label, end_to_end, node_ms, error, device,
                                               now, tuple(sources), forward))
        self._changed()
        return tuple(added + sources)

    def _supersede(self, settings: Settings, target: _Target, *, timed: bool, checked: bool) -> None:
        """Drop what a new measurement of the same plan on the same target replaces (its timing, its error), so a
        plan recorded twice (``ex.profile`` records by itself, then the search with its forward error) counts once."""
        kept = []
        for m in self._measurements:
            if m.settings == settings and m.target == target:
                if timed:
                    m = dataclasses.replace(m, end_to_end_ms=None, node_ms=None,
                                            sources=tuple(x for x in m.sources if x.kind not in ("profile", "latency")))
                if checked:
                    m = dataclasses.replace(m, error=None, forward_error=None,
                                            sources=tuple(x for x in m.sources if x.kind != "accuracy"))
                if m.end_to_end_ms is None and m.error is None:
                    continue
            kept.append(m)
        self._measurements[:] = kept

    def _adopt_sensitivity(self, sens: Any, now: float, how: str) -> Source:
        nodes = len(getattr(sens, "node_low_error", {}))
        source = Source("sensitivity", "", "", f"{sens.metric} over {nodes} nodes, {_dtype_name(sens.low_dtype)}, "
                        f"all-low {format_number(sens.all_low_error)}; {how}", now)
        self._sensitivities.append(_Sens(sens, now, source))
        self._changed()
        return source

    def _changed(self) -> None:
        self.version += 1
        self._latency.clear()
        self._error.clear()
        self._cache.clear()

    def _structure_now(self) -> _Structure:
        calibration = id(self.explorer.calibration)
        if self._structure is None or calibration != self._calibration_id:
            if self._structure is not None:  # new calibration: plans may differ, tables are rebuilt
                self._changed()
            self._structure = _Structure(self.explorer.captured)
            self._calibration_id = calibration
        return self._structure

    def take_sensitivity(self, sensitivity: Any, how: str) -> Source | None:
        """Record a sensitivity run the facade hands over (``ex.sensitivity()``), once; ``how`` says where from."""
        if any(s.value is sensitivity for s in self._sensitivities):
            return None
        return self._adopt_sensitivity(sensitivity, time.time(), how)

    @property
    def has_sensitivity(self) -> bool:
        """Whether a sensitivity run is recorded (error predictions need one)."""
        return bool(self._sensitivities)

    # -- targets -------------------------------------------------------------------------------------------------
    def targets(self) -> list[str]:
        """Labels of the targets with any recorded profile, newest first."""
        seen: dict[str, None] = {}
        for m in sorted(self._measurements, key=lambda m: -m.recorded_at):
            if m.end_to_end_ms is not None:
                seen.setdefault(m.target.label, None)
        return list(seen)

    def _choose(self, backend: str | None) -> tuple[_Target | None, str]:
        """The target to predict for: the newest with FP32 and all-low profiles that matches ``backend``."""
        matching = [m for m in self._measurements if m.end_to_end_ms is not None
                    and (backend is None or m.target.label.startswith(backend) or m.target.backend == backend)]
        if not matching:
            if backend is not None and self._measurements:
                return None, (f"nothing measured on {backend!r}; measured: "
                              + ", ".join(self.targets() or ["accuracy only"]))
            return None, ""
        complete = []
        for m in matching:
            kinds = {x.kind for x in matching if x.target == m.target}
            if {"fp32", "all_low"} <= kinds:
                complete.append(m)
        pool = complete or matching
        return max(pool, key=lambda m: m.recorded_at).target, ""

    def _latest(self, target: _Target, kind: str, profiled: bool) -> _Measurement | None:
        found = [m for m in self._measurements if m.kind == kind and (
            m.target == target and m.end_to_end_ms is not None if profiled
            else m.target.covers(target) and m.error is not None)]
        return max(found, key=lambda m: m.recorded_at) if found else None

    # -- latency tables ------------------------------------------------------------------------------------------
    def _split(self, measurement: _Measurement, structure: _Structure, low: torch.dtype | None
               ) -> tuple[list[float], str, tuple[Source, ...]]:
        """Raw per-node ms of a calibration profile (before scaling), how they were split, extra sources."""
        names = structure.names
        if measurement.node_ms:
            return [measurement.node_ms.get(n, 0.0) for n in names], "", ()
        same_device = [m for m in self._measurements if m.kind == measurement.kind and m.node_ms
                       and m.profile_device == measurement.profile_device]
        if same_device:
            donor = max(same_device, key=lambda m: m.recorded_at)
            times = donor.node_ms or {}
            return ([times.get(n, 0.0) for n in names], f"split like {donor.target.label}",
                    tuple(s for s in donor.sources if s.kind == "profile"))
        return _roofline(structure, low if measurement.kind == "all_low" else None), \
            "split by FLOPs and bytes", ()

    def _latency_tables(self, target: _Target) -> tuple[_LatencyTables | None, tuple[Source, ...], str, str]:
        key = (target, False)
        if key in self._latency:
            return self._latency[key]
        structure = self._structure_now()
        fp32, low = self._latest(target, "fp32", True), self._latest(target, "all_low", True)
        if fp32 is None or low is None:
            missing = " and ".join(k for k, m in (("all-FP32", fp32), ("all-low", low)) if m is None)
            have = fp32 or low
            result: tuple = (None, have.sources if have else (), "none",
                             f"No {missing} profile on {target.label}: profile one "
                             "(ex.profile(ex.compile(settings)) records it) or run "
                             "ex.measure_calibration(backend=...)")
            self._latency[key] = result
            return result
        low_plan = self.explorer.plan(low.settings)
        _, low_dtype, _ = _kind(low_plan, structure)
        sources = list(fp32.sources) + list(low.sources)
        raw = []
        how = []
        for m in (fp32, low):
            values, split, extra = self._split(m, structure, low_dtype)
            sources.extend(x for x in extra if x not in sources)
            if split:
                how.append(split)
            scaled_total = sum(values[structure.first_op:])
            factor = (m.end_to_end_ms or 0.0) / scaled_total if scaled_total > 0 else 0.0
            raw.append([v * factor for v in values])
        tables = _LatencyTables(structure, raw[0], raw[1], self.explorer.plan(fp32.settings), low_plan,
                                low_dtype or torch.float16, fp32.profile_device or target.device)
        mixed = [m for m in self._measurements if m.target == target and m.kind == "mixed"
                 and m.end_to_end_ms is not None]
        tables.fit([(structure.view(self.explorer.plan(m.settings)), m.end_to_end_ms) for m in mixed
                    if m.end_to_end_ms is not None])
        for m in mixed:
            sources.extend(s for s in m.sources if s.kind in ("profile", "latency"))
        basis = "profiles" + (f", {'; '.join(dict.fromkeys(how))}" if how else "")
        note = (f"Latency from {target.label} profiles (all-FP32 {format_number(fp32.end_to_end_ms, 4)} ms, "
                f"{low.plan_label} {format_number(low.end_to_end_ms, 4)} ms)"
                + (f", per-node times {'; '.join(dict.fromkeys(how))}" if how else "")
                + f"; casts at {format_number(tables.cast_scale, 2)}x the bandwidth estimate"
                + (f" and mixed plans {format_number(tables.mixed_ms, 2)} ms beyond their parts, fitted on "
                   f"{tables.points} measured mixed plan{'s' if tables.points != 1 else ''}" if tables.points
                   else " (no mixed plan measured yet)"))
        result = (tables, tuple(sources), basis, note)
        self._latency[key] = result
        return result

    def _estimate_tables(self, low: torch.dtype) -> _LatencyTables:
        key = (_Target("estimate", "", ""), True)
        if key not in self._latency:
            structure = self._structure_now()
            base = self.explorer.settings.replace(enable_autocast=True, autocast_low_precision_type=low,
                                                  autocast_excluded_nodes=frozenset(),
                                                  autocast_excluded_ops=frozenset())
            fp32_plan = self.explorer.plan(base.replace(autocast_excluded_nodes=frozenset({".*"})))
            tables = _LatencyTables(structure, _roofline(structure, None), _roofline(structure, low), fp32_plan,
                                    self.explorer.plan(base), low, "cuda")
            tables.floor_ms, tables.bytes_per_ms = 0.0, BYTES_PER_MS
            tables.edges = [(u, v, size / BYTES_PER_MS, size, a, b) for u, v, _, size, a, b in tables.edges]
            self._latency[key] = (tables, (), "estimate from FLOPs and bytes",
                                  "Latency is an estimate from FLOPs and bytes at H100-like rates, not measured")
        return self._latency[key][0]  # type: ignore[return-value]

    # -- error tables ----------------------------------------------------------------------------------------------
    def _error_tables(self, target: _Target | None) -> tuple[_ErrorTables | None, tuple[Source, ...], str, str]:
        if target in self._error:
            return self._error[target]
        if not self._sensitivities:
            result: tuple = (None, (), "none", "No sensitivity run: the error needs ex.sensitivity(inputs) "
                             "(or record_measurement(sensitivity=...))")
            self._error[target] = result
            return result
        sens = max(self._sensitivities, key=lambda s: s.recorded_at)
        if sens.value.metric != "rel_l2":
            result = (None, (sens.source,), "none", f"the sensitivity run measured {sens.value.metric}, not rel_l2")
            self._error[target] = result
            return result
        structure = self._structure_now()
        tables = _ErrorTables(structure, sens.value)
        sources = [sens.source]
        fp32 = low = None
        points = []
        anchored = []
        if target is not None:
            fp32, low = self._latest(target, "fp32", False), self._latest(target, "all_low", False)
            for m in self._measurements:
                if m.target.covers(target) and m.kind == "mixed" and m.error is not None:
                    points.append((structure.view(self.explorer.plan(m.settings)), m.error))
                    sources.extend(s for s in m.sources if s.kind == "accuracy")
                    if m.forward_error is not None:
                        anchored.append((m.forward_error, m.error))
        tables.fit(fp32.error if fp32 else None, low.error if low else None, points, anchored)
        sources = [s for m in (fp32, low) if m is not None for s in m.sources if s.kind == "accuracy"] + sources
        if low is not None and target is not None:
            basis = "backend"
            note = (f"Error from sensitivity scaled to {target.label}'s measured all-low error "
                    f"({format_number(low.error)}; the forward pass measured {format_number(tables.all_low)})")
        else:
            basis = "forward pass"
            note = ("Error from sensitivity (the forward pass in PyTorch" + (
                f"; {target.label} has no all-low accuracy recorded, so its own rounding is not in it)"
                if target is not None else ")"))
        if fp32 is not None and tables.floor > 0:
            note += f", FP32 floor {format_number(tables.floor, 2)}"
        if tables.points:
            note += f", corrected by {format_number(tables.correction, 2)}x from {tables.points} measured mixed plan(s)"
        missing = len(structure.names) - structure.first_op - tables.covered
        if missing > 0:
            note += f"; {missing} node(s) have no sensitivity and count as error-free"
        result = (tables, tuple(sources), basis, note)
        self._error[target] = result
        return result

    # -- prediction ------------------------------------------------------------------------------------------------
    def predict(self, settings: Settings | None = None, *, backend: str | None = None,
                estimate: bool = False, forward_error: float | None = None) -> Prediction:
        """Predicted latency and error of the plan for ``settings`` (None: the explorer's current settings).

        ``backend`` picks the target by label prefix ("tensorrt", "torch compiled"); by default the newest one with
        all-FP32 and all-low profiles. With no profile, ``latency_ms`` is None and ``statement`` says what to
        measure, unless ``estimate`` asks for a FLOPs/bytes estimate (said so in ``latency_basis``).
        ``forward_error``, where the caller measured the plan's exact forward-pass error (relative L2, the
        sensitivity run's inputs), replaces the sensitivity sum: the error is that figure scaled to the backend
        like all-low, with the FP32 floor, and corrected from measured plans recorded with theirs (the search).
        """
        s = self.explorer.settings if settings is None else settings
        structure = self._structure_now()
        key = (s, backend, estimate, self.version, forward_error)
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached
        plan = self.explorer.plan(s)
        target, problem = self._choose(backend)
        statements = []
        sources: list[Source] = []
        latency_tables, basis = None, "none"
        if target is not None:
            latency_tables, found, basis, note = self._latency_tables(target)
            sources.extend(found)
            statements.append(note)
        elif problem:
            statements.append(problem[0].upper() + problem[1:])
        else:
            statements.append("No profile recorded: nothing to predict a latency from. Profile an all-FP32 and an "
                              "all-low plan (ex.profile(ex.compile(settings)) records each; or "
                              "ex.measure_calibration(backend=...)) or ask for estimate=True")
        if latency_tables is None and estimate:
            low = s.autocast_low_precision_type or torch.float16
            latency_tables, basis = self._estimate_tables(low), "estimate from FLOPs and bytes"
            statements.append("Latency is an estimate from FLOPs and bytes at H100-like rates, not measured")
        error_tables, found, error_basis, note = self._error_tables(target)
        sources.extend(x for x in found if x not in sources)
        statements.append(note)
        if s.use_fp32_acc:
            statements.append("use_fp32_acc is not modelled (calibrated as measured)")
        names = structure.names
        view = structure.view(plan)
        low_count = sum(1 for t in view.target if t in _LOW)
        latency = None
        node_ms: dict[str, float] = {}
        cast_ms: dict[str, float] = {}
        casts: tuple[CastCost, ...] = ()
        mixed_ms = 0.0
        if latency_tables is not None:
            times, from_low = latency_tables.evaluate(view)
            _, inserted, per_consumer = latency_tables.cast_terms(view, from_low)
            scale = latency_tables.cast_scale
            node_ms = {names[i]: times[i] for i in range(structure.first_op, len(names))}
            cast_ms = {names[v]: scale * x for v, x in per_consumer.items()}
            casts = tuple(CastCost(names[u], names[v], d, size, 0.0 if paid else scale * prior, paid)
                          for u, v, prior, size, paid, d in inserted)
            if _kind(plan, structure)[0] == "mixed":
                mixed_ms = latency_tables.mixed_ms
            latency = sum(node_ms.values()) + sum(cast_ms.values()) + mixed_ms
        error = None
        share: dict[str, float] = {}
        floor = 0.0
        if error_tables is not None:
            plan_low = set(view.target) & set(_LOW)
            if plan_low - {error_tables.low_dtype}:
                statements.append(f"the plan runs {', '.join(map(_dtype_name, plan_low))} but the sensitivity run "
                                  f"measured {_dtype_name(error_tables.low_dtype)}: no error predicted")
                error_basis = "none"
            else:
                total, lam, weights, overflow = error_tables.core(view)
                error = error_tables.value(total, lam, overflow)
                floor = error_tables.floor
                if forward_error is not None:
                    error = error_tables.anchored(float(forward_error))
                    statements.append(
                        f"error anchored on the plan's forward-pass error ({format_number(forward_error, 2)})"
                        + (f", corrected by {format_number(error_tables.anchored_correction, 2)}x from "
                           f"{error_tables.anchored_points} measured plan(s) anchored alike"
                           if error_tables.anchored_points else ""))
                if total > 0 and not overflow:
                    share = {names[i]: w / total for i, w in weights.items() if w > 0}
        measured_ms, measured_error = self._measured(s, target)
        statement = ". ".join(x.rstrip(".") for x in statements if x) + "."
        result = Prediction(settings=s, latency_ms=latency, error=error, node_latency_ms=node_ms, cast_ms=cast_ms,
                            mixed_ms=mixed_ms,
                            casts=casts, error_share=share, error_floor=floor, low_nodes=low_count,
                            backend=target.label if target is not None else "", latency_basis=basis,
                            error_basis=error_basis, sources=tuple(sources), statement=statement,
                            measured_latency_ms=measured_ms, measured_error=measured_error)
        self._cache[key] = result
        if len(self._cache) > _CACHE:
            self._cache.popitem(last=False)
        return result

    def _measured(self, settings: Settings, target: _Target | None) -> tuple[float | None, float | None]:
        if target is None:
            return None, None
        ms = err = None
        for m in sorted(self._measurements, key=lambda m: m.recorded_at):
            if m.target.covers(target) and m.settings == settings:
                ms = m.end_to_end_ms if m.end_to_end_ms is not None else ms
                err = m.error if m.error is not None else err
        return ms, err

    def fp32_cost_ms(self, backend: str | None = None) -> dict[str, float]:
        """Per node: latency added by keeping it in FP32 rather than low precision (ms; casts not included).

        The colour a widget gives each node's "cost of staying FP32"; {} before both calibration profiles exist.
        """
        self._structure_now()
        target, _ = self._choose(backend)
        if target is None:
            return {}
        tables = self._latency_tables(target)[0]
        if tables is None:
            return {}
        names = tables.structure.names
        return {names[i]: tables.f[i] - tables.l[i] for i in range(tables.structure.first_op, len(names))
                if tables.changing[i]}


def _roofline(structure: _Structure, low: torch.dtype | None) -> list[float]:
    """Per-node ms from FLOPs and bytes, the cost model's roofline (:func:`~mixprec_explorer.costs.roofline_ms`);
    FP32 where ``low`` is None."""
    itemsize = low.itemsize if low is not None else None
    return [roofline_ms(structure.flops[i], structure.bytes_moved[i], structure.dense[i], itemsize)
            if i >= structure.first_op else 0.0 for i in range(len(structure.names))]


def measure_calibration(explorer: Workbench, backend: str = "auto", inputs: Sequence[Any] | None = None, *,
                        low_dtype: torch.dtype | None = None, runs: int = 20, sensitivity: bool = True,
                        progress: bool = False, **options: Any) -> Predictor:
    """Compile, profile and check the all-FP32 and all-low plans on ``backend``, run sensitivity, record them all.

    The plans are the explorer's settings with autocast on and no exclusions (all-low), and with every module
    excluded (all-FP32), as the search builds them. A build that fuses nodes (``mode="compiled"``) is also
    profiled in PyTorch eager on the same device, to split its time over nodes. ``options`` go to ``ex.compile``
    (``mode=``, ``build=``, ``isolate=``, ``device=``). Returns ``explorer.predictor``.
    """
    low = low_dtype or explorer.settings.autocast_low_precision_type or torch.float16
    base = explorer.settings.replace(enable_autocast=True, use_explicit_typing=True, autocast_low_precision_type=low,
                                     autocast_excluded_nodes=frozenset(), autocast_excluded_ops=frozenset())
    fp32 = base.replace(autocast_excluded_nodes=frozenset({".*"}))
    predictor: Predictor = explorer.predictor
    args = tuple(inputs) if inputs is not None else None
    measured = []
    for settings in (fp32, base):
        compiled = explorer.compile(settings, backend=backend, progress=progress, **options)
        profile = explorer.profile(compiled, inputs=args, runs=runs, progress=progress)
        measured.append((compiled, profile, explorer.accuracy(compiled, inputs=args)))
    for compiled, profile, _ in measured:
        if not profile.node_latency_ms() and compiled.backend == "torch":  # recorded first: the build is the newest
            priced = explorer.compile(compiled.settings, backend="torch", progress=progress,
                                      **{**options, "mode": "eager"})
            predictor.record(priced, profile=explorer.profile(priced, inputs=args, runs=runs, progress=progress))
    for compiled, profile, accuracy in measured:
        predictor.record(compiled, profile=profile, accuracy=accuracy)
    if sensitivity and not predictor.has_sensitivity:
        explorer.sensitivity(args, low_dtype=low, progress=progress)  # the facade hands the run to its predictor
    return predictor
