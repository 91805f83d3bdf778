"""Search: the fastest plan within an error budget, explained, confirmed on the backend with few compiles, resumable.

Greedy over exclusions a user would write (anchored regexes for a module or a whole block, and op types), ranked by error
removed (from :mod:`sensitivity`, capped at what is still needed) per millisecond the plan's latency model adds, then
pruned. Every step's error is measured exactly with one forward pass of the mixed plan. The latency model is the
explorer's :class:`~mixprec_explorer.predict.Predictor`, fed with the all-FP32 and all-low profiles the search
measures (so a plan's latency includes the casts at its precision boundaries). On the backend, only a few plans are
compiled: the all-FP32 and all-low ones (calibration: their profiles, their errors), then the prefixes of the pick
order that the predictor, calibrated on those errors and anchored on each prefix's exact forward-pass error, says just
meet the budget; each measured plan is recorded as a calibration point before the next one is chosen. Where even
all-FP32 misses the budget, the result says so and shows the floor. The state is saved as JSON after each step, so a
rerun with the same ``state_path`` continues where it stopped.
"""

from __future__ import annotations

import itertools
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import torch

from .analysis import (
    ALL_MODULES,
    Build,
    CompileLog,
    Inputs,
    LatencyModel,
    PlanEvaluator,
    PlanRunner,
    all_fp32_settings,
    backend_error,
    calibration_profiles,
    error_gain,
    get_metric,
    low_precision_settings,
    normalize_inputs,
    progress_steps,
    with_exclusions,
)
from .analysis.backend import Bench
from .analysis.subject import Catalogued
from .backends import keep_compiled
from .backends.subject import Planner
from .calibration import record_stats
from .costs import error_above_floor, error_with_floor
from .dtypes import to_name
from .errors import CompileFailure, OptionError, WorkerCrashed, check_number
from .inputs import Batch
from .sensitivity import Sensitivity, compute_sensitivity
from .settings import Settings, module_pattern, subtree_pattern, write_atomic

if TYPE_CHECKING:
    from .backends.base import Compiled, Profile
    from .predict import Predictor
    from .records import CalibrationStat, EndToEnd, NodeInfo

__all__ = ["DEFAULT_MAX_PROBES", "ROOT_PATTERN", "STRATEGIES", "BackendPlan", "Candidate", "LatencyModel",
           "SearchResult", "SearchStep", "Searched", "candidates", "run_search", "subtree_pattern"]


class Searched(Catalogued, Bench, Planner, Protocol):
    """What a search reads of the model it searches (the facade), and the one thing it sets: the exclusions a user
    could write (:class:`~mixprec_explorer.analysis.subject.Catalogued`), compiles, profiles and checks
    (:class:`~mixprec_explorer.analysis.Bench`), plans timed in turns by the backends
    (:class:`~mixprec_explorer.backends.subject.Planner`), the calibration (the ranges its notes name), the
    predictor (prices each plan and takes each measurement) and the settings :func:`run_search` loads its result
    into."""

    settings: Settings

    @property
    def nodes(self) -> dict[str, NodeInfo]: ...

    @property
    def calibration(self) -> Mapping[str, CalibrationStat]: ...

    @property
    def predictor(self) -> Predictor: ...

STATE_SCHEMA = "mixprec_explorer.search"
#: 3: the predictor picks the prefixes compiled on the backend; all-FP32 measured first (floor, reachability)
STATE_VERSION = 3
#: How the greedy picks: the cheapest single exclusion that suffices, error per ms capped at what is still
#: needed, and plain error per ms. Each makes a plan; the cheapest within budget is kept.
STRATEGIES = ("single", "capped", "ratio")
#: Compiles beyond all-FP32 and all-low a search spends on prefixes of its pick order (the chosen plan included).
DEFAULT_MAX_PROBES = 4
#: After a prefix was measured, the next is compiled where its estimate is within this share of the budget: a miss
#: costs a compile, a few more exclusions than needed only a little speed.
STEP_MARGIN = 0.9
#: A shorter prefix is probed after one met the budget only where the model predicts it faster by at least this
#: share of the gap between all-FP32 and all-low (less is within timing noise, and not worth a compile).
MIN_GAIN_SHARE = 0.01
#: below this share of the time all-low saves, explain() says the plan kept little of the speed-up and why
LITTLE_SAVED = 0.5
#: Op types (those that err most for what keeping them FP32 costs) whose pairs are candidates too: 4 give 6 pairs
PAIRED_OPS = 4
#: Joins the two op names of an "ops" candidate's value
OPS_JOIN = " + "
#: Fewer timed runs than this per plan (slow plans: FP16 arithmetic on a CPU) and the confirmation reuses the
#: calibration plans' times in turns from pricing rather than timing them again
SLOW_TURNS = 3
#: The regex of the root module (module path ""): the ops of the model's own forward, outside any submodule (a
#: residual add written there); Torch-TensorRT matches it, and it is the only module regex that keeps just them FP32
ROOT_PATTERN = module_pattern("")


@dataclass(frozen=True)
class Candidate:
    """One exclusion the search may add: a module regex, an op or a pair of ops, with what it buys and costs."""

    kind: str  #: "module", "op" or "ops" (a pair of op types, joined by :data:`OPS_JOIN`)
    value: str  #: the regex (``^layer1\\.0$``), qualified op name or op names
    nodes: tuple[str, ...]  #: nodes it keeps in FP32
    gain: float  #: error removed when only it stays FP32 from the all-low plan (metric units)
    low_error: float  #: error when only it runs low precision
    cost_ms: float  #: predicted latency added by keeping it in FP32, casts included (ms; may be negative)

    def describe(self) -> str:
        """``"module ^layer1$"``, ``"op torch.ops.aten.add.Tensor"``; the root's regex ``^$`` in words."""
        if self.kind == "module" and self.value == ROOT_PATTERN:
            return f"the model's own forward (its {len(self.nodes)} ops outside any submodule; module regex ^$)"
        return f"{self.kind} {self.value}"


@dataclass(frozen=True)
class SearchStep:
    """One measured step: the exclusions in force, their exact error and predicted latency."""

    action: str  #: "start", "add <value>", "drop <value>", "calibrate: ...", "bisect on <backend>: ..."
    modules: tuple[str, ...]
    ops: tuple[str, ...]
    error: float
    latency_ms: float


@dataclass(frozen=True)
class BackendPlan:
    """One plan the search compiled and measured on the backend: what the model predicted before, what was measured.

    Calibration plans (all-FP32, all-low) have no predicted error: they are what the model is built from; their
    predicted latency is their calibration (timed in turns before the search), against their time at confirmation.
    """

    label: str  #: "all-FP32", "all-low", "prefix 3 of 7" (the first 3 exclusions of the pick order)
    role: str  #: "calibration" or "probe"
    settings: Settings
    exclusions: int  #: module regexes and ops kept in FP32
    forward_error: float | None  #: the search's forward pass's exact error of the plan
    predicted_error: float | None  #: the backend's error predicted before it was compiled
    measured_error: float | None
    predicted_latency_ms: float | None  #: predicted before it was compiled (casts included)
    measured_latency_ms: float | None = None  #: median when timed in turns with the others (None: not confirmed)


@dataclass(frozen=True)
class SearchResult:
    """The chosen settings with the reason for each exclusion, and what the confirming compile measured.

    Where the budget is not reachable (``reachable`` False: even the plan with the least error measured, usually
    all-FP32, misses it), the settings are that floor plan and ``floor_error`` / ``floor_plan`` say what it reached;
    ``within_budget`` is then False. ``compiles`` counts the distinct plans compiled on the backend for this search
    (each once: the all-FP32 and all-low calibration plans and the prefixes probed); ``compiles_beyond_calibration``
    those beyond all-FP32 and all-low; ``compiles_reused`` those the compile cache held from an earlier analysis of
    this process (not built again).
    """

    settings: Settings
    budget: float
    metric: str
    within_budget: bool
    error: float  #: error measured by the search's forward pass (metric units)
    estimated_latency_ms: float  #: predicted (the explorer's predictor where calibrated, casts included)
    exclusions: tuple[Candidate, ...]  #: each with its sensitivity (the explanation)
    steps: tuple[SearchStep, ...]
    forward_evaluations: int  #: full forward passes spent on error (sensitivity's partial runs not counted)
    latency_source: str
    confirmed: dict[str, Any] = field(default_factory=dict)  #: backend, measured error, latency, speedups
    backend_probes: int = 0  #: prefixes of the pick order compiled and measured, beyond all-FP32 and all-low
    reachable: bool = True  #: False: no plan reaches the budget, not even the floor plan
    floor_error: float | None = None  #: the least error any measured plan reached (backend where checked)
    floor_plan: str = ""  #: the plan that reached it ("all-FP32", "prefix 3 of 7", ...)
    compiles: int = 0  #: distinct plans compiled on the backend for this search
    compiles_beyond_calibration: int = 0  #: of those, beyond all-FP32 and all-low
    compiles_reused: int = 0  #: of those, handed back by the compile cache (built earlier in this process)
    backend_plans: tuple[BackendPlan, ...] = ()  #: every plan measured on the backend, predicted against measured
    #: what the errors alone do not say: the all-low plan's output is all zeros, mostly flushed or inf, and after
    #: which node the low type's range is left (see :func:`~mixprec_explorer.accuracy.numerics_notes`)
    notes: tuple[str, ...] = ()
    #: the chosen plan's profile on the backend, where the search confirmed it there (what ``ex.search`` keeps as
    #: ``last_profile``, for the graph's per-node overlay); None otherwise
    profile: Profile | None = field(default=None, compare=False, repr=False)

    def _with_counts(self, compiles: int, beyond: int, reused: int) -> SearchResult:
        """This result with its compile counts."""
        return replace(self, compiles=compiles, compiles_beyond_calibration=beyond, compiles_reused=reused)

    def decisions(self) -> list[str]:
        """How the plan was reached: the backend calibration, the greedy rule kept, the probes on the backend."""
        return [s.action for s in self.steps if s.action.startswith(("calibrate", "keep the", "bisect",
                                                                     "unreachable"))]

    def time_saved_share(self) -> float | None:
        """The share of all-low's time saving this plan keeps, (t_fp32 - t_plan) / (t_fp32 - t_low), as confirmed on
        the backend (``confirmed["time_saved_share"]``): 0 for a plan with no node in low precision, 1 for the
        all-low plan, whatever the timing noise; None where not confirmed, or where all-low is not at least 5 %
        faster than all-FP32 (nothing to share). Timing noise can put a plan slightly below 0 or above 1."""
        chosen, all_low = self.confirmed.get("chosen") or {}, self.confirmed.get("all_low") or {}
        mine, low, fp32 = chosen.get("latency_ms"), all_low.get("latency_ms"), \
            (self.confirmed.get("fp32") or {}).get("latency_ms")
        if mine is None:
            return None
        if chosen.get("low_nodes") == 0:
            return 0.0
        if chosen.get("low_nodes") is not None and chosen.get("low_nodes") == all_low.get("low_nodes"):
            return 1.0  # exclusions only take nodes out of the all-low plan: as many is the same set
        if fp32 is None or low is None or not low * 1.05 < fp32:
            return None
        return float((fp32 - mine) / (fp32 - low))

    def floor_text(self) -> str:
        """The floor in words: ``"floor: 4.2e-04 rel_l2 (all-FP32), over the budget 3e-04"``; "" when unknown."""
        if self.floor_error is None:
            return ""
        where = f" ({self.floor_plan})" if self.floor_plan else ""
        side = "within" if self.floor_error <= self.budget else "over"
        return f"floor: {self.floor_error:.3g} {self.metric}{where}, {side} the budget {self.budget:.3g}"

    def explain(self) -> str:
        """Why the plan is what it is: one line per exclusion (what it is, why it stays FP32); first, where the
        budget is missed, that it is missed and the floor (the least error any measured plan reached)."""
        lines = list(self.notes)
        measured = (self.confirmed.get("chosen") or {}).get("error") if self.confirmed else None
        if not self.reachable:
            lines.append(f"budget {self.budget:.3g} {self.metric} is NOT reachable: no plan meets it. The least "
                         f"error any measured plan reached is {self.floor_error:.3g} ({self.floor_plan}); that floor "
                         "plan is loaded. Raise the budget to at least the floor, or lower the floor (for example "
                         "strict FP32 without TF32).")
        elif not self.within_budget:
            error = measured if measured is not None else self.error
            lines.append(f"NOT within budget: this plan's error is {error:.3g} {self.metric}, over {self.budget:.3g}; "
                         "no plan the search measured met it"
                         + (f" ({self.floor_text()})" if self.floor_error is not None else ""))
        saved = self.time_saved_share()
        if self.within_budget and saved is not None and saved < LITTLE_SAVED:
            ms = {k: (self.confirmed.get(k) or {}).get("latency_ms") for k in ("fp32", "all_low", "chosen")}
            part = "none" if saved < 0.005 else f"only {saved:.0%}"
            lines.append(f"within budget, but this plan saves {part} of the time all-low saves ("
                         f"{ms['chosen']:.4g} ms against {ms['fp32']:.4g} ms all-FP32 and {ms['all_low']:.4g} ms "
                         "all-low): no cheaper plan the search measured or estimated meets the budget, which sits "
                         "close to the floor" + (f" ({self.floor_text()})" if self.floor_error is not None else "")
                         + "; a looser budget buys the speed back")
        if not self.exclusions:
            lines.append("no exclusions: the all-low-precision plan" + (" is within budget" if self.within_budget
                                                                        else ""))
        lines += [f"{c.describe()}: removes {c.gain:.3g} {self.metric} when kept in FP32 "
                  f"(alone in low precision: {c.low_error:.3g}); costs ~{c.cost_ms:.3g} ms" for c in self.exclusions]
        return "\n".join(lines)


def candidates(explorer: Catalogued, sens: Sensitivity, latency: LatencyModel, *, ops: bool = True,
               inputs: Inputs = None, subtrees: bool = True, runner: PlanRunner | None = None) -> list[Candidate]:
    """Candidates with their gain and latency cost: each module, each module subtree, each op type of ``explorer``
    (the facade, any :class:`~mixprec_explorer.analysis.subject.Catalogued`).

    A subtree (``^layer4(\\.|$)``) keeps a whole block in FP32 with one regex and one pair of casts at
    its edges, where its leaf modules would each need their own.
    """
    out = []

    def cost_of(members: Sequence[str]) -> float:
        return sum(latency.fp32_ms.get(n, 0.0) - latency.low_ms.get(n, 0.0) for n in members)

    for module, gain in sens.module_fp32_gain.items():
        members = tuple(n for n in explorer.modules.get(module, ()) if n in sens.node_low_error)
        out.append(Candidate("module", module_pattern(module), members, gain, sens.module_low_error[module],
                             cost_of(members)))
    if not (ops or subtrees):
        return out
    run = runner or PlanRunner(explorer, normalize_inputs(explorer.captured, inputs))
    measure = get_metric(sens.metric)
    reference = run.reference()

    def measured(kind: str, value: str, members: tuple[str, ...]) -> Candidate:
        if sens.estimator is not None:  # the linear sensitivity's model prices any set of nodes at no cost
            kept, alone = sens.estimator.kept_error(members), sens.estimator.low_error(members)
        else:
            kept = measure(run.perturbed(sens.low_dtype, dict.fromkeys(members, torch.float32)), reference)
            alone = measure(run.perturbed(torch.float32, dict.fromkeys(members, sens.low_dtype)), reference)
        return Candidate(kind, value, members, error_gain(sens.all_low_error, kept), alone, cost_of(members))

    if subtrees:
        prefixes = {".".join(m.split(".")[:k]) for m in explorer.modules if m for k in range(1, m.count(".") + 1)}
        for prefix in sorted(prefixes):
            inside = [m for m in explorer.modules if m == prefix or m.startswith(prefix + ".")]
            members = tuple(n for m in inside for n in explorer.modules[m] if n in run.classified)
            if len(inside) >= 2 and members:
                out.append(measured("module", subtree_pattern(prefix), members))
    if ops:
        singles = []
        for op in explorer.ops():
            members = tuple(n for n, i in explorer.nodes.items() if i.op == op and n in run.classified)
            if len(members) >= 2:  # a one-node op is already a module candidate's business
                singles.append(measured("op", op, members))
        out.extend(singles)
        # Pairs of the op types that err most for what they cost: together they can keep a whole path FP32 (a
        # transformer's residual adds and layer norms) where neither alone removes anything, each still rounding
        # what the other reads.
        erring = sorted((c for c in singles if c.low_error > 0 and c.cost_ms > 0),  # views and copies cost nothing
                        key=lambda c: c.low_error / max(c.cost_ms, 1e-6), reverse=True)[:PAIRED_OPS]
        for a, b in itertools.combinations(erring, 2):
            out.append(measured("ops", OPS_JOIN.join((a.value, b.value)), a.nodes + b.nodes))
    return out


def _pick(pool: Sequence[Candidate], remaining: float, objective: str) -> Candidate | None:
    """The candidate removing the most of the ``remaining`` error per ms (or per node) it costs; None if none helps.

    Gain is capped at what is still needed, so a big block that removes far more error than needed does not beat
    a cheap module that removes just enough (the usual greedy rule for covering at least cost).
    """
    def key(c: Candidate) -> tuple[float, float]:
        gain = min(c.gain, remaining)
        if not gain > 0:
            return (-math.inf, 0.0)
        price = max(len(c.nodes), 1) if objective == "nodes" else max(c.cost_ms, 1e-6)
        return (gain / price, -price)  # free or speed-up exclusions first; then the cheaper of equals

    best = max(pool, key=key, default=None)
    return best if best is not None and key(best)[0] > -math.inf else None


def _apply(base: Settings, chosen: Sequence[Candidate]) -> Settings:
    ops = [op for c in chosen if c.kind in ("op", "ops") for op in c.value.split(OPS_JOIN)]
    return with_exclusions(base, (c.value for c in chosen if c.kind == "module"), ops)


def _load_state(path: Path | None, key: dict[str, Any]) -> dict[str, Any] | None:
    if path is None or not path.exists():
        return None
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise OptionError(f"search state {path} is unreadable ({err}); delete it to start over") from None
    if isinstance(state, dict) and state.get("schema") == STATE_SCHEMA and state.get("version") != STATE_VERSION:
        raise OptionError(f"search state {path} was written by another version of mixprec_explorer "
                            f"(state version {state.get('version')}, this one reads {STATE_VERSION}); delete it "
                            "to start over")
    if not isinstance(state, dict) or state.get("schema") != STATE_SCHEMA or state.get("key") != key:
        raise OptionError(
            f"search state {path} belongs to another model, budget or metric; pass another state_path or delete it")
    return state



def run_search(explorer: Searched, inputs: Inputs = None, budget: float = 1e-2, metric: str = "rel_l2", *,
               objective: str = "latency", backend: str | None = "auto", device: str | None = None,
               isolate: bool = True, compile_options: Mapping[str, Any] | None = None,
               state_path: str | os.PathLike[str] | None = None, confirm: bool = True, use_ops: bool = True,
               use_subtrees: bool = True, low_dtype: torch.dtype | None = None, max_probes: int = DEFAULT_MAX_PROBES,
               progress: bool = True) -> SearchResult:
    """Find exclusions meeting ``budget`` (metric units) with the best predicted latency; see module docs.

    ``inputs`` follow :mod:`mixprec_explorer.inputs` (a tensor, a tuple, a list of batches).
    ``objective="latency"`` profiles all-FP32 and all-low plans on ``backend`` and records them in
    ``explorer.predictor``, which prices each plan (casts included; a FLOPs/bytes estimate when ``backend`` is None);
    ``objective="nodes"`` minimises FP32 nodes. ``device``, ``isolate`` and ``compile_options`` (the backend's own:
    ``{"mode": "compiled"}`` for torch, ``{"build": "cast_graph"}`` for TensorRT where autocast cannot build the
    model) say how plans are compiled; each plan is compiled once per search (``result.compiles`` counts them).

    With ``confirm``, the all-FP32 and all-low errors are measured on ``backend`` first: all-low within budget needs
    no exclusion; all-FP32 over budget means no plan reaches it (``reachable=False``). Otherwise the greedy aims the
    forward pass at what the backend's errors imply, and at most ``max_probes`` prefixes of its pick order are
    compiled, each the one the predictor says just meets the budget given what was measured so far (the chosen plan
    among them); ``within_budget`` then reports the backend's measurement, and all measured plans are timed in turns.

    ``explorer`` is the facade (what a search reads of it: :class:`Searched`). The result is loaded into
    ``explorer.settings``: the chosen plan, or, where the budget is not reachable, the floor plan (the measured plan
    with the least error, usually all-FP32), which is as close as the backend gets; where the probes found no plan
    within a reachable budget, the measured prefix with the least error (``within_budget`` False; all-FP32 meets the
    budget). A confirmed result carries the chosen plan's profile (``result.profile``). Raises OptionError for a negative budget, an unknown metric/objective, or
    another search's state file; InputError for inputs that do not fit the captured program.
    """
    get_metric(metric)
    if objective not in ("latency", "nodes"):
        raise OptionError(f"objective must be 'latency' or 'nodes', got {objective!r}")
    check_number("budget", budget, what=f"an error in {metric} units")
    check_number("max_probes", max_probes, whole=True, what="compiles")
    build = Build(backend, device, isolate, dict(compile_options or {}), progress, log=CompileLog())
    search = _Search(explorer, normalize_inputs(explorer.captured, inputs), budget, metric, objective, build,
                     confirm and backend is not None, use_ops, use_subtrees, low_dtype, max_probes,
                     Path(state_path) if state_path is not None else None)
    with keep_compiled():  # the search asks for its plans again: each is compiled once
        result = search.run()
    explorer.settings = result.settings
    return result


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


class _Search:
    """One search, phase by phase (rank, greedy, probe, done), its state saved as JSON after each step."""

    def __init__(self, explorer: Searched, batches: list[Batch], budget: float, metric: str, objective: str,
                 build: Build, checked: bool, use_ops: bool, use_subtrees: bool, low_dtype: torch.dtype | None,
                 max_probes: int, path: Path | None) -> None:
        from .backends.fingerprint import fingerprint_program

        self.explorer, self.batches, self.budget, self.metric = explorer, batches, budget, metric
        self.objective, self.build, self.progress, self.max_probes = objective, build, build.progress, max_probes
        #: the backend that measures errors (None: the forward pass's word is final)
        self.checker = build.backend if checked else None
        self.use_ops, self.use_subtrees, self.path = use_ops, use_subtrees, path
        self.base = low_precision_settings(explorer.settings, low_dtype)
        self.fp32 = all_fp32_settings(self.base)
        low = self.base.autocast_low_precision_type
        key = {"model": fingerprint_program(explorer.exported_program), "budget": budget, "metric": metric,
               "low": to_name(low), "objective": objective, "ops": use_ops, "subtrees": use_subtrees}
        self.state = _load_state(path, key) or {"schema": STATE_SCHEMA, "version": STATE_VERSION, "key": key,
                                                "phase": "rank"}
        self.runner = PlanRunner(explorer, batches)  # one set of cached activations for sensitivity, candidates, steps
        self.evaluator = PlanEvaluator(explorer, self.runner, metric)
        self.bar = progress_steps(None, self.progress, desc="search")
        #: the calibration profiles measured by this process (re-recorded with their times in turns at confirm)
        self.profiles: dict[Settings, Profile] = {}
        #: their times in turns at pricing (this process), reused at confirmation where plans are slow
        self.timed: dict[Settings, EndToEnd] = {}

    # -- bookkeeping ----------------------------------------------------------------------------------------
    def save(self) -> None:
        if self.path is not None:
            write_atomic(self.path, json.dumps(self.state, indent=1, default=str))

    def _load(self) -> None:
        state = self.state
        self.latency = LatencyModel(state["latency"]["fp32"], state["latency"]["low"], state["latency_source"])
        self.cands = [Candidate(**{**c, "nodes": tuple(c["nodes"])}) for c in state["candidates"]]
        self.by_value = {c.value: c for c in self.cands}
        self.chosen = [self.by_value[v] for v in state["chosen"]]
        self.steps = [SearchStep(**{**s, "modules": tuple(s["modules"]), "ops": tuple(s["ops"])})
                      for s in state["steps"]]
        self.err = self.steps[-1].error if self.steps else self.measure("start")

    def measure(self, action: str) -> float:
        """The exact forward-pass error of the exclusions chosen now, recorded as a step."""
        s = _apply(self.base, self.chosen)
        err = self.evaluator.error(s)
        self.steps.append(SearchStep(action, tuple(sorted(s.autocast_excluded_nodes)),
                                     tuple(sorted(s.autocast_excluded_ops)), err, self.plan_ms(s)))
        self.state["chosen"] = [c.value for c in self.chosen]
        self.state["steps"] = [asdict(x) for x in self.steps]
        self.save()
        return err

    def backend_error(self, settings: Settings) -> float:
        return backend_error(self.explorer, settings, self.batches, self.metric, self.build, self.checker)

    def price(self, c: Candidate) -> float:
        return float(len(c.nodes)) if self.objective == "nodes" else c.cost_ms

    # -- the model: the explorer's predictor where this search calibrated it, else the state's own figures ------
    @property
    def target(self) -> str | None:
        """The predictor's label of the search's backend, where this process recorded its calibration there."""
        target = self.state.get("target")
        return target if target is not None and target in self.explorer.predictor.targets() else None

    def plan_ms(self, settings: Settings) -> float:
        """Predicted latency of a plan: the predictor's (casts included), else the per-node sum."""
        if self.target is not None and self.objective == "latency":
            predicted = self.explorer.predictor.predict(settings, backend=self.target).latency_ms
            if predicted is not None:
                return predicted
        return self.latency.estimate_ms(self.evaluator.low_nodes(settings))

    def _scale(self) -> tuple[float, float]:
        """(backend's FP32 floor, backend/forward scale of the error above it), from the calibration's measurements."""
        state = self.state
        floor = float(state.get("measured_fp32") or 0.0)
        floor = floor if math.isfinite(floor) else 0.0
        measured, estimate = float(state.get("measured_all_low", math.nan)), self.steps[0].error
        if not (math.isfinite(measured) and 0 < estimate < math.inf):
            return floor, 1.0
        above = error_above_floor(measured, floor)
        return floor, (above / estimate if above > 0 else measured / estimate if measured > 0 else 1.0)

    def predicted_error(self, settings: Settings, forward: float) -> float:
        """The backend's error of a plan, predicted from its exact forward-pass error: the predictor's calibrated
        model (scaled like all-low, FP32 floor, corrected by the plans measured so far), else the same without the
        correction from the state's figures (a resumed search in a new process)."""
        if self.target is not None:
            p = self.explorer.predictor.predict(settings, backend=self.target, forward_error=forward)
            if p.error is not None and p.error_basis == "backend":
                return p.error
        if not math.isfinite(forward):
            return math.inf
        floor, scale = self._scale()
        return error_with_floor(floor, (scale * forward) ** 2)

    def record(self, compiled: Compiled, **measured: Any) -> None:
        """A measurement of the backend's in the explorer's predictor (a calibration point for every later plan)."""
        if self.metric == "rel_l2":
            self.explorer.predictor.record(compiled, **measured)

    # -- phases ---------------------------------------------------------------------------------------------
    def run(self) -> SearchResult:
        if self.state["phase"] == "rank":
            self.rank()
        self._load()
        if self.state["phase"] == "greedy":
            self.greedy()
        if self.state["phase"] == "probe":
            self.probe()
        result = self.result()
        self.bar(0, close=True)
        self.state["phase"] = "done"
        self.save()
        return result

    def prices(self) -> tuple[LatencyModel, str | None]:
        """Profile all-FP32 and all-low (recorded in the predictor) and save the per-node prices in the state, so an
        interrupted search does not profile again; (the latency model, the predictor's label of the backend)."""
        priced = self.state.get("priced")
        if priced is not None:
            return LatencyModel(priced["fp32"], priced["low"], priced["source"]), priced["target"]
        explorer = self.explorer
        latency, pairs = calibration_profiles(explorer, self.base, self.build, self.objective)
        if pairs:  # the build's own two, timed in turns: one profile's median can fall in a slow minute
            from .backends import time_plans
            from .backends.timing import turns_within

            own = pairs[-2:]
            runs, warmup = turns_within([p.end_to_end.median_ms for _, p in own])  # slow plans: fewer runs
            timed = time_plans(explorer, [c for c, _ in own], self.batches, runs, warmup, progress=self.progress)
            times = [None] * (len(pairs) - 2) + [t.median_ms for t in timed]
            self.timed.update({c.settings: t for (c, _), t in zip(own, timed)})
            for (compiled, profile), ms in zip(pairs, times):
                self.record(compiled, profile=profile, latency_ms=ms)
                self.profiles[compiled.settings] = profile
        target = None
        if pairs:
            from .predict import target_label

            target = target_label(pairs[-1][0])
        self.state["priced"] = {"fp32": latency.fp32_ms, "low": latency.low_ms, "source": latency.source,
                                "target": target}
        self.save()
        return latency, target

    def rank(self) -> None:
        """Price nodes (profiles recorded in the predictor), measure sensitivity and each candidate's gain and cost."""
        explorer, low = self.explorer, self.base.autocast_low_precision_type
        latency, target = self.prices()
        sens = compute_sensitivity(explorer, self.batches, self.metric, low_dtype=low, progress=self.progress,
                                   runner=self.runner)
        if self.metric == "rel_l2":
            explorer.predictor.record(sensitivity=sens)
        cands = candidates(explorer, sens, latency, ops=self.use_ops, subtrees=self.use_subtrees, runner=self.runner)
        self.state.update(target=target, latency_source=latency.source)
        if target is not None and self.objective == "latency" and self.target is not None:
            # each candidate priced as the predictor prices it alone: its nodes at FP32 and the casts at its edges
            all_low = explorer.predictor.predict(self.base, backend=target).latency_ms
            if all_low is not None:
                priced = []
                for c in cands:
                    ms = explorer.predictor.predict(_apply(self.base, [c]), backend=target).latency_ms
                    priced.append(replace(c, cost_ms=ms - all_low) if ms is not None else c)
                cands = priced
        self.state.update(phase="greedy", latency={"fp32": latency.fp32_ms, "low": latency.low_ms},
                          candidates=[asdict(c) for c in cands], chosen=[], steps=[])
        self.save()

    def calibrate(self) -> None:
        """Measure all-FP32 and all-low on the backend (their compiles are the profiled ones) and aim the forward pass.

        The backend's kernels (Inductor, TensorRT) may lose more or less than the forward pass that prices steps; its
        all-FP32 error (TF32, kernel order) is a floor no plan goes below. Both go into the predictor.
        """
        state, estimate = self.state, self.steps[0].error
        for settings, name in ((self.fp32, "measured_fp32"), (self.base, "measured_all_low")):
            state[name] = self.backend_error(settings)
            self.record(self.build.compile(self.explorer, settings), accuracy=state[name],
                        forward_error=0.0 if settings is self.fp32 else estimate)
        fp32, measured = state["measured_fp32"], state["measured_all_low"]
        floor, scale = self._scale()
        room = error_above_floor(self.budget, floor)
        state["aim"] = room / scale if scale > 0 else self.budget
        self.steps.append(SearchStep(f"calibrate: {self.checker} measures all-low at {measured:.3g} and all-FP32 at "
                                     f"{fp32:.3g}, the forward pass all-low at {estimate:.3g}; aim at "
                                     f"{state['aim']:.3g}", (), (), estimate, self.steps[0].latency_ms))
        if measured <= self.budget:  # nothing to keep in FP32
            state["plans"] = {"backend": {"chosen": [], "error": estimate, "latency_ms": self.steps[0].latency_ms}}
        elif fp32 > self.budget:  # not even all-FP32: no plan reaches the budget
            state["unreachable"] = True
            self.steps.append(SearchStep(f"unreachable: {self.checker} measures all-FP32 at {fp32:.3g}, over the "
                                         f"budget {self.budget:.3g}; the floor plan is kept, no plan is searched",
                                         (ALL_MODULES,), (), 0.0, self.plan_ms(self.fp32)))
        self.save()

    def greedy(self) -> None:
        """Build a plan with each greedy rule, prune it, keep the cheapest within the aim.

        Gains of single exclusions do not add up (errors add roughly in quadrature), so no one rule wins everywhere.
        """
        state = self.state
        if self.checker is not None and "measured_all_low" not in state:
            self.calibrate()
        if state.get("unreachable"):
            state["phase"] = "done"
            self.save()
            return
        aim = float(state.get("aim", self.budget))
        plans = state.setdefault("plans", {})
        all_low_error = self.steps[0].error
        for rule in () if "backend" in plans else STRATEGIES:  # the backend found all-low within budget
            if rule in plans:
                continue
            if state.get("strategy") != rule:  # a rerun goes on with the rule it stopped in
                state["strategy"] = rule
                self.chosen.clear()
                if rule == "single":  # sensitivity measured each alone from all-low: exact, no guess
                    fits = [c for c in self.cands if c.gain > 0 and all_low_error - c.gain <= aim < all_low_error]
                    self.chosen.extend(sorted(fits, key=self.price)[:1])
                self.err = self.measure(f"{rule}: start") if self.chosen or rule != "single" else all_low_error
            if rule != "single":
                self.add_until(aim, len(self.cands), capped=rule == "capped")
            self.prune(aim)
            settings = _apply(self.base, self.chosen)
            plans[rule] = {"chosen": [c.value for c in self.chosen], "error": self.err,
                           "latency_ms": self.plan_ms(settings) if self.objective == "latency"
                           else float(sum(len(c.nodes) for c in self.chosen))}
            self.save()
        best = min(plans, key=lambda k: (k != "backend", plans[k]["error"] > aim, plans[k]["latency_ms"],
                                         plans[k]["error"]))
        self.chosen[:] = [self.by_value[v] for v in plans[best]["chosen"]]
        unit = "ms" if self.objective == "latency" else "nodes"
        self.err = self.measure(f"keep the {best} plan: "
                                + ", ".join(f"{k} {v['latency_ms']:.3g} {unit}" for k, v in plans.items()))
        probing = self.checker is not None and "backend" not in plans
        state.update(phase="probe" if probing else "done", sequence=[c.value for c in self.chosen],
                     probes={"0": state.get("measured_all_low")}, probe_log=[])
        self.save()

    def add_until(self, goal: float, limit: int, capped: bool = True) -> None:
        """Add the best candidate, one exact step at a time, until the error is at most ``goal``."""
        while self.err > goal and limit > 0:
            pool = [c for c in self.cands if c not in self.chosen]
            pick = _pick(pool, self.err - goal if capped else math.inf, self.objective)
            if pick is None:
                # past what single-exclusion gains explain: next, what hurts most when alone in low precision
                pick = _pick([replace(c, gain=c.low_error) for c in pool], math.inf, self.objective)
                pick = next((c for c in pool if pick is not None and c.value == pick.value), None)
            if pick is None:
                break
            self.chosen.append(pick)
            limit -= 1
            self.err = self.measure(f"add {pick.value}")
            self.bar(1, note=f"{len(self.chosen)} exclusions, {self.metric} {self.err:.3g} "
                             f"(budget {self.budget:.3g})")

    def prune(self, goal: float) -> None:
        """Drop exclusions that change nothing or are not needed for ``goal``, keeping the order of picking."""
        for c in sorted(list(self.chosen), key=lambda c: c.gain):
            before = self.evaluator.low_nodes(_apply(self.base, self.chosen))
            at = self.chosen.index(c)
            self.chosen.remove(c)
            after = _apply(self.base, self.chosen)
            if self.evaluator.low_nodes(after) == before or self.evaluator.error(after) <= goal:
                self.err = self.measure(f"drop {c.value}")
            else:
                self.chosen.insert(at, c)

    # -- the probes: prefixes of the pick order, each chosen by the model and measured on the backend -----------
    def _estimate(self, k: int, settings: Settings, forward: float) -> tuple[float, str]:
        """(the backend's error of prefix ``k``, predicted before compiling it, and what the figure rests on).

        Before any prefix is measured: the predictor's calibrated model anchored on the prefix's exact forward-pass
        error. After: the measured prefix nearest in the pick order says how the backend scales the forward pass's
        error here (its measured error above the floor over its forward-pass error), the floor added in quadrature.
        """
        if not math.isfinite(forward):
            return math.inf, "the forward pass overflows"
        floor, _ = self._scale()
        measured = []
        for entry in self.state.get("probe_log", []):
            above = error_above_floor(entry["measured_error"], floor) \
                if math.isfinite(entry["measured_error"]) else math.inf
            if entry["forward_error"] > 0 and 0 < above < math.inf:
                measured.append((abs(entry["k"] - k), -above / entry["forward_error"], entry["k"]))
        if not measured:
            return self.predicted_error(settings, forward), "model"
        _, ratio, near = min(measured)
        return error_with_floor(floor, (ratio * forward) ** 2), f"as measured prefix {near}"

    def _threshold(self) -> float:
        """The estimate a prefix must reach to be compiled: the budget for the first, a margin below it after."""
        return self.budget * (STEP_MARGIN if self.state.get("probe_log") else 1.0)

    def _prefix(self, sequence: Sequence[Candidate], k: int) -> tuple[Settings, float, float, str]:
        """(settings, exact forward-pass error, estimated backend error, its basis) of the first ``k`` exclusions."""
        settings = _apply(self.base, sequence[:k])
        forward = self.evaluator.error(settings)
        return (settings, forward, *self._estimate(k, settings, forward))

    def _extend(self, sequence: list[Candidate]) -> bool:
        """Extend the pick order past its end (forward passes only) until its estimate meets the threshold; past a
        whole pick order that failed to build, by at least one exclusion, so that the next probe is another plan."""
        floor, _ = self._scale()
        _, forward, estimate, _ = self._prefix(sequence, len(sequence))
        room = error_above_floor(self._threshold(), floor)
        above = error_above_floor(estimate, floor) if math.isfinite(estimate) else math.inf
        goal = forward * room / above if 0 < above < math.inf and math.isfinite(forward) \
            else float(self.state.get("aim", self.budget)) * 0.5
        if len(sequence) in self._failed():  # strictly below the order's own error: one more exclusion at least
            goal = min(goal, forward * (1 - 1e-9))
        self.chosen[:] = sequence
        self.err = forward
        before = len(self.chosen)
        self.add_until(goal, 48)
        sequence[:] = self.chosen
        self.state["sequence"] = [c.value for c in sequence]
        self.save()
        return len(sequence) > before

    def _failed(self) -> set[int]:
        """The prefixes whose build failed: plans that cannot be built, which say nothing about their error."""
        return {int(k) for k in self.state.get("failed", [])}

    def _next(self, sequence: list[Candidate], probes: dict[int, float]) -> tuple[int | None, str]:
        """The next prefix to compile and why; None (and why not) when the measurements so far settle it."""
        budget, failed = self.budget, self._failed()
        lo = max((k for k, v in probes.items() if not v <= budget and k not in failed), default=0)
        passing = [k for k, v in probes.items() if v <= budget and k > lo]
        hi = min(passing) if passing else None
        while True:
            top = hi - 1 if hi is not None else len(sequence)
            threshold = self._threshold()
            pick = next((k for k in range(lo + 1, top + 1) if k not in probes
                         and self._prefix(sequence, k)[2] <= threshold), None)
            if hi is not None:
                if pick is None:
                    return None, f"no shorter prefix than {hi} is estimated within {threshold:.3g}"
                gain = self.plan_ms(_apply(self.base, sequence[:hi])) - self.plan_ms(_apply(self.base, sequence[:pick]))
                gap = abs(self.plan_ms(self.fp32) - self.plan_ms(self.base))
                if gain < MIN_GAIN_SHARE * gap:
                    return None, (f"prefix {pick} is estimated within {threshold:.3g} but predicted only "
                                  f"{gain:.3g} ms faster than {hi}: not worth a compile")
                return pick, f"a shorter prefix estimated within {threshold:.3g}, predicted {gain:.3g} ms faster"
            if pick is not None:
                return pick, f"the shortest prefix estimated within {threshold:.3g}"
            if self._extend(sequence):
                continue
            if len(sequence) > lo and len(sequence) not in probes:
                return len(sequence), f"no prefix is estimated within {threshold:.3g}: the whole pick order"
            return None, "no longer prefix to try"

    def probe(self) -> None:
        """Compile at most ``max_probes`` prefixes of the pick order, each the one the model (recalibrated on every
        measurement) predicts just meets the budget; keep the shortest the backend measures within budget."""
        state, budget = self.state, self.budget
        sequence = [self.by_value[v] for v in state["sequence"]]
        probes = {int(k): float(v) for k, v in state["probes"].items()}
        log: list[dict[str, Any]] = state["probe_log"]
        while True:
            if len(probes) - 1 >= self.max_probes:
                why = f"the limit of {self.max_probes} probes (max_probes)"
                break
            k, why = self._next(sequence, probes)
            if k is None:
                break
            settings, forward, predicted, basis = self._prefix(sequence, k)
            predicted_ms = self.plan_ms(settings)
            try:
                measured = self.backend_error(settings)
            # A plan the backend cannot build, or whose build kills the worker (TensorRT-RTX 1.4's builder segfaults
            # on the encoder's attention kept FP32 between FP16 matmuls), is as far from the budget as it gets.
            except (CompileFailure, WorkerCrashed) as err:
                measured, why = math.inf, f"prefix {k} failed to build: {str(err).splitlines()[0][:200]}"
                state["failed"] = sorted(self._failed() | {k})
            else:
                self.record(self.build.compile(self.explorer, settings), accuracy=measured, forward_error=forward)
            probes[k] = measured
            log.append({"k": k, "of": len(sequence), "forward_error": forward, "predicted_error": predicted,
                        "basis": basis, "predicted_latency_ms": predicted_ms, "measured_error": measured, "why": why})
            state.update(probes={str(i): v for i, v in probes.items()}, sequence=[c.value for c in sequence])
            verdict = "within budget" if measured <= budget else "over budget"
            self.steps.append(SearchStep(
                f"bisect on {self.checker}: compile {k} of {len(sequence)} exclusions in order of picking ({why}): "
                f"estimated {predicted:.3g} ({basis}), measured {measured:.3g}, {verdict}",
                tuple(sorted(settings.autocast_excluded_nodes)), tuple(sorted(settings.autocast_excluded_ops)),
                forward, predicted_ms))
            state["steps"] = [asdict(x) for x in self.steps]
            self.save()
        passing = [k for k, v in probes.items() if v <= budget]
        built = [k for k in probes if k > 0 and k not in self._failed()]
        if passing:
            keep, how = min(passing), "the shortest prefix measured within budget"
        elif built:
            keep = min(built, key=lambda k: (probes[k], k))
            how = "no probe met the budget: the prefix with the least measured error"
        elif len(probes) > 1:
            keep, how = 0, "every probe failed to build: no exclusion (the all-low plan, which builds)"
        else:
            keep, how = len(sequence), "nothing probed: the whole pick order"
        self.chosen[:] = sequence[:keep]
        self.err = self.measure(f"bisect on {self.checker}: keep {keep} of {len(sequence)} exclusions in order of "
                                f"picking, {how} ({len(probes) - 1} compiles beyond all-FP32 and all-low; {why})")
        state["phase"] = "done"
        self.save()

    # -- the result -------------------------------------------------------------------------------------------
    def _floor_candidate(self) -> Candidate:
        nodes = tuple(sorted(self.evaluator.low_nodes(self.base)))
        forward = self.steps[0].error
        return Candidate("module", ALL_MODULES, nodes, error_gain(forward, 0.0), forward,
                         self.plan_ms(self.fp32) - self.plan_ms(self.base))

    def result(self) -> SearchResult:
        state = self.state
        unreachable = bool(state.get("unreachable"))
        chosen = tuple(self.chosen)
        if unreachable:
            fp32, low = state["measured_fp32"], state["measured_all_low"]
            chosen = (self._floor_candidate(),) if fp32 <= low else ()
        final = _apply(self.base, chosen)
        err = self.evaluator.error(final)
        beyond = [k for k in state.get("probes", {}) if k != "0"]
        result = SearchResult(final, self.budget, self.metric, err <= self.budget, err, self.plan_ms(final), chosen,
                              tuple(self.steps), self.evaluator.count, state.get("latency_source", self.latency.source),
                              backend_probes=len(beyond), notes=tuple(self.numerics_notes()))
        if self.checker is None:  # the forward pass's word is final: its least error, all-FP32's where needed
            best = min(self.steps, key=lambda s: s.error, default=None)
            floor, where = (best.error, f"forward pass: {best.action}") if best is not None else (err, "chosen")
            if floor > self.budget:
                fp32 = self.evaluator.error(self.fp32)
                floor, where = (fp32, "all-FP32 (forward pass)") if fp32 < floor else (floor, where)
            return replace(result, reachable=floor <= self.budget, floor_error=floor, floor_plan=where)._with_counts(
                *self._counts())
        return self._confirm(result, unreachable)

    def numerics_notes(self) -> list[str]:
        """Where the all-low plan's forward-pass output is all zeros, mostly flushed or inf: that, and after which
        node (the explorer's calibration, else the ranges of the search's own FP32 run)."""
        from .accuracy import numerics_notes

        run, low = self.runner, self.base.autocast_low_precision_type
        if low is None:
            return []

        def ranges() -> tuple[Mapping[str, Any], str]:
            if self.explorer.calibration:
                return self.explorer.calibration, "calibrated"
            return record_stats(env.items() for env in run.base(torch.float32)), "measured"

        return numerics_notes(run.reference(), run.outputs(run.base(low)), low, ranges,
                              nodes=self.evaluator.low_nodes(self.base), infos=self.explorer.nodes,
                              what="the all-low plan's output")

    def _counts(self) -> tuple[int, int, int]:
        """(distinct plans compiled on the backend, of those beyond all-FP32 and all-low, of those reused)."""
        log = self.build.log
        own = log.own() if log is not None else []
        calibration = {self.fp32, self.base}
        return len(own), sum(1 for e in own if e.settings not in calibration), sum(1 for e in own if not e.built)

    def _confirm(self, result: SearchResult, unreachable: bool) -> SearchResult:
        """Compile the chosen plan (the others are compiled already): measured error, and latency timed in turns.

        Every plan measured on the backend is timed in turns with all-FP32, all-low and the chosen one (so a slow
        minute hits them all alike) and its time recorded in the predictor; the chosen plan is also profiled, so
        the result's ``profile`` (``ex.search`` keeps it as ``last_profile``) overlays its per-node figures.
        """
        from .backends import time_plans
        from .backends.timing import turns_within

        state, explorer, build = self.state, self.explorer, self.build
        sequence = [self.by_value[v] for v in state.get("sequence", [])]
        known = {self.fp32: state.get("measured_fp32"), self.base: state.get("measured_all_low")}
        rows: list[tuple[str, str, Settings, float | None, float | None, float | None]] = [
            ("all-FP32", "calibration", self.fp32, 0.0, None, self.plan_ms(self.fp32)),
            ("all-low", "calibration", self.base, self.steps[0].error, None, self.plan_ms(self.base))]
        for entry in state.get("probe_log", []):
            settings = _apply(self.base, sequence[:entry["k"]])
            known[settings] = entry["measured_error"]
            if math.isfinite(entry["measured_error"]):
                rows.append((f"prefix {entry['k']} of {entry['of']}", "probe", settings, entry["forward_error"],
                             entry["predicted_error"], entry["predicted_latency_ms"]))
        if result.settings not in {r[2] for r in rows}:
            rows.append(("chosen", "probe", result.settings, result.error,
                         self.predicted_error(result.settings, result.error), result.estimated_latency_ms))
        measured: dict[str, Any] = {}
        compiled = {}
        for _, _, s, _, _, _ in rows:
            compiled[s] = build.compile(explorer, s)
            if known.get(s) is None:
                known[s] = self.backend_error(s)
                self.record(compiled[s], accuracy=known[s], forward_error=self.evaluator.error(s))
        runs, warmup = turns_within([self.plan_ms(s) for s in compiled])  # slow plans (FP16 on a CPU): fewer runs
        # slow plans: the calibration plans keep their times in turns from pricing; only the others are timed
        again = [s for s in compiled if runs >= SLOW_TURNS or s not in self.timed]
        timings = {**{s: self.timed[s] for s in compiled if s not in again},
                   **dict(zip(again, time_plans(explorer, [compiled[s] for s in again], self.batches, runs, warmup,
                                                progress=build.progress)))}
        chosen_profile = self.profiles.get(result.settings)  # a calibration plan: its profile is in hand
        if chosen_profile is None:  # the per-node overlay of the chosen plan
            chosen_profile = build.profile(explorer, compiled[result.settings], self.batches)
        for s, c in compiled.items():  # each time a calibration point (the calibration profiles' times replaced)
            profile = self.profiles.get(s)
            if profile is not None or s not in (self.fp32, self.base):
                self.record(c, profile=profile, latency_ms=timings[s].median_ms)
        for label, s in (("fp32", self.fp32), ("all_low", self.base), ("chosen", result.settings)):
            t = timings[s]
            measured[label] = {"error": known[s], "latency_ms": t.median_ms, "p10_ms": t.p10_ms, "p90_ms": t.p90_ms,
                               "low_nodes": len(self.evaluator.low_nodes(s))}
        measured["backend"] = compiled[result.settings].backend
        fp32, all_low, mine = (measured[k]["latency_ms"] for k in ("fp32", "all_low", "chosen"))
        measured["speedup_over_fp32"] = fp32 / mine if mine else None
        measured["all_low_speedup"] = fp32 / all_low if all_low else None
        measured["time_saved_share"] = replace(result, confirmed=measured).time_saved_share()
        plans = tuple(BackendPlan(label, role, s, len(s.autocast_excluded_nodes) + len(s.autocast_excluded_ops),
                                  forward, predicted, known[s], predicted_ms, timings[s].median_ms)
                      for label, role, s, forward, predicted, predicted_ms in rows)
        errors = {p.label: p.measured_error for p in plans if p.measured_error is not None}
        floor_plan = min(errors, key=lambda k: errors[k])
        mine_error = measured["chosen"]["error"]
        return replace(result, confirmed=measured, within_budget=not unreachable and mine_error <= self.budget,
                       reachable=not unreachable, floor_error=errors[floor_plan], floor_plan=floor_plan,
                       backend_plans=plans, profile=chosen_profile)._with_counts(*self._counts())
