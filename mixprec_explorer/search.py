"""Search: the fastest plan within an error budget, explained, confirmed by one compile, resumable.

Greedy over exclusions a user would write (anchored regexes for a module or a whole block, and op types), ranked by error
removed (from :mod:`sensitivity`, capped at what is still needed) per millisecond of estimated latency added, then
pruned. Every step's error is measured exactly with one forward pass of the mixed plan. A compile on the backend
confirms the plan; where the backend measures more error than the forward pass did, the greedy order is extended and
its length bisected on the backend's own error. The state is saved as JSON after each step, so a rerun with the same
``state_path`` continues where it stopped.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from . import dtypes
from .analysis import (
    Build,
    Inputs,
    LatencyModel,
    PlanEvaluator,
    PlanRunner,
    all_fp32_settings,
    backend_error,
    error_gain,
    get_metric,
    low_precision_settings,
    normalize_inputs,
    price_nodes,
    progress_steps,
    with_exclusions,
)
from .analysis.inputs import Batch
from .errors import OptionError
from .explorer import module_pattern
from .sensitivity import Sensitivity, compute_sensitivity
from .settings import Settings, write_atomic

if TYPE_CHECKING:
    from .explorer import Explorer

__all__ = ["STRATEGIES", "Candidate", "LatencyModel", "SearchResult", "SearchStep", "candidates", "run_search",
           "subtree_pattern"]

STATE_SCHEMA = "mixprec_explorer.search"
STATE_VERSION = 2  #: 2: greedy rules, calibration and bisection on the backend
#: How the greedy picks: the cheapest single exclusion that suffices, error per ms capped at what is still
#: needed, and plain error per ms. Each makes a plan; the cheapest within budget is kept.
STRATEGIES = ("single", "capped", "ratio")


@dataclass(frozen=True)
class Candidate:
    """One exclusion the search may add: a module regex or an op, with what it buys and costs."""

    kind: str  #: "module" or "op"
    value: str  #: the regex (``^layer1\\.0$``) or qualified op name
    nodes: tuple[str, ...]  #: nodes it keeps in FP32
    gain: float  #: error removed when only it stays FP32 from the all-low plan (metric units)
    low_error: float  #: error when only it runs low precision
    cost_ms: float  #: estimated latency added by keeping it in FP32 (ms; may be negative)


@dataclass(frozen=True)
class SearchStep:
    """One measured step: the exclusions in force, their exact error and estimated latency."""

    action: str  #: "start", "add <value>", "drop <value>"
    modules: tuple[str, ...]
    ops: tuple[str, ...]
    error: float
    latency_ms: float


@dataclass(frozen=True)
class SearchResult:
    """The chosen settings with the reason for each exclusion, and what the confirming compile measured."""

    settings: Settings
    budget: float
    metric: str
    within_budget: bool
    error: float  #: error measured by the search's forward pass (metric units)
    estimated_latency_ms: float
    exclusions: tuple[Candidate, ...]  #: each with its sensitivity (the explanation)
    steps: tuple[SearchStep, ...]
    forward_evaluations: int  #: full forward passes spent on error (sensitivity's partial runs not counted)
    latency_source: str
    confirmed: dict[str, Any] = field(default_factory=dict)  #: backend, measured error, latency, speedups
    backend_probes: int = 0  #: compiles spent bisecting on the backend's error, beyond all-low and the plan

    def decisions(self) -> list[str]:
        """How the plan was reached: the backend calibration, the greedy rule kept, the bisection on the backend."""
        return [s.action for s in self.steps if s.action.startswith(("calibrate", "keep the", "bisect"))]

    def explain(self) -> str:
        """One line per exclusion: what it is and why it was kept in FP32."""
        if not self.exclusions:
            return "no exclusions needed: the all-low-precision plan is within budget"
        return "\n".join(
            f"{c.kind} {c.value}: removes {c.gain:.3g} {self.metric} when kept in FP32 "
            f"(alone in low precision: {c.low_error:.3g}); costs ~{c.cost_ms:.3g} ms"
            for c in self.exclusions)


def subtree_pattern(prefix: str) -> str:
    """The regex for a module and everything under it (``^layer1(\\.|$)``), as ``re.match`` applies it."""
    return f"^{re.escape(prefix)}(\\.|$)"


def candidates(explorer: Explorer, sens: Sensitivity, latency: LatencyModel, *, ops: bool = True,
               inputs: Inputs = None, subtrees: bool = True, runner: PlanRunner | None = None) -> list[Candidate]:
    """Candidates with their gain and latency cost: each module, each module subtree, each op type.

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
        for op in explorer.ops():
            members = tuple(n for n, i in explorer.nodes.items() if i.op == op and n in run.classified)
            if len(members) >= 2:  # a one-node op is already a module candidate's business
                out.append(measured("op", op, members))
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
    return with_exclusions(base, (c.value for c in chosen if c.kind == "module"),
                           (c.value for c in chosen if c.kind == "op"))


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


def run_search(explorer: Explorer, inputs: Inputs = None, budget: float = 1e-2, metric: str = "rel_l2", *,
               objective: str = "latency", backend: str | None = "auto", device: str | None = None,
               isolate: bool = True, compile_options: Mapping[str, Any] | None = None,
               state_path: str | os.PathLike[str] | None = None, confirm: bool = True, use_ops: bool = True,
               use_subtrees: bool = True, low_dtype: torch.dtype | None = None, max_probes: int = 8,
               progress: bool = True) -> SearchResult:
    """Find exclusions meeting ``budget`` (metric units) with the best estimated latency; see module docs.

    ``inputs`` follow :mod:`mixprec_explorer.analysis.inputs` (a tensor, a tuple, a list of batches).
    ``objective="latency"`` profiles all-FP32 and all-low plans on ``backend`` to price each node
    (a FLOPs/bytes estimate when ``backend`` is None); ``objective="nodes"`` minimises FP32 nodes.
    ``device``, ``isolate`` and ``compile_options`` (the backend's own, e.g. ``{"mode": "compiled"}``) say how
    plans are compiled. With ``confirm``, all-low is measured on ``backend`` first to calibrate the aim, and the
    plan's pick order is bisected on the backend's own error with at most ``max_probes`` more compiles;
    ``within_budget`` then reports the backend's measurement. The result is loaded into ``explorer.settings``.
    Raises OptionError for a negative budget, an unknown metric/objective, or another search's state file;
    InputError for inputs that do not fit the captured program.
    """
    get_metric(metric)
    if objective not in ("latency", "nodes"):
        raise OptionError(f"objective must be 'latency' or 'nodes', got {objective!r}")
    if not (budget >= 0):
        raise OptionError(f"budget must be a non-negative error in {metric} units, got {budget!r}")
    build = Build(backend, device, isolate, dict(compile_options or {}), progress)
    search = _Search(explorer, normalize_inputs(explorer.captured, inputs), budget, metric, objective, build,
                     confirm and backend is not None, use_ops, use_subtrees, low_dtype, max_probes,
                     Path(state_path) if state_path is not None else None)
    result = search.run()
    explorer.settings = result.settings
    return result


class _Search:
    """One search, phase by phase (rank, greedy, confirm, bisect, done), its state saved as JSON after each step."""

    def __init__(self, explorer: Explorer, batches: list[Batch], budget: float, metric: str, objective: str,
                 build: Build, checked: bool, use_ops: bool, use_subtrees: bool, low_dtype: torch.dtype | None,
                 max_probes: int, path: Path | None) -> None:
        from .backends.fingerprint import fingerprint_program

        self.explorer, self.batches, self.budget, self.metric = explorer, batches, budget, metric
        self.objective, self.build, self.progress, self.max_probes = objective, build, build.progress, max_probes
        #: the backend that measures errors (None: the forward pass's word is final)
        self.checker = build.backend if checked else None
        self.use_ops, self.use_subtrees, self.path = use_ops, use_subtrees, path
        self.base = low_precision_settings(explorer.settings, low_dtype)
        low = self.base.autocast_low_precision_type
        key = {"model": fingerprint_program(explorer.exported_program), "budget": budget, "metric": metric,
               "low": dtypes.to_name(low), "objective": objective, "ops": use_ops, "subtrees": use_subtrees}
        self.state = _load_state(path, key) or {"schema": STATE_SCHEMA, "version": STATE_VERSION, "key": key,
                                                "phase": "rank"}
        self.runner = PlanRunner(explorer, batches)  # one set of cached activations for sensitivity, candidates, steps
        self.evaluator = PlanEvaluator(explorer, self.runner, metric)
        self.bar = progress_steps(None, self.progress, desc="search")

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
                                     tuple(sorted(s.autocast_excluded_ops)), err,
                                     self.latency.estimate_ms(self.evaluator.low_nodes(s))))
        self.state["chosen"] = [c.value for c in self.chosen]
        self.state["steps"] = [asdict(x) for x in self.steps]
        self.save()
        return err

    def backend_error(self, settings: Settings) -> float:
        return backend_error(self.explorer, settings, self.batches, self.metric, self.build, self.checker)

    def price(self, c: Candidate) -> float:
        return float(len(c.nodes)) if self.objective == "nodes" else c.cost_ms

    # -- phases ---------------------------------------------------------------------------------------------
    def run(self) -> SearchResult:
        if self.state["phase"] == "rank":
            self.rank()
        self._load()
        if self.state["phase"] == "greedy":
            self.greedy()
        if self.state["phase"] == "confirm":
            self.extend()
        if self.state["phase"] == "bisect":
            self.bisect()
        result = self.result()
        self.bar(0, close=True)
        self.state["phase"] = "done"
        self.save()
        return result

    def rank(self) -> None:
        """Price nodes, measure sensitivity and each candidate's gain and cost."""
        explorer, low = self.explorer, self.base.autocast_low_precision_type
        latency = price_nodes(explorer, self.base, self.build, self.objective)
        sens = compute_sensitivity(explorer, self.batches, self.metric, low_dtype=low, progress=self.progress,
                                   runner=self.runner)
        cands = candidates(explorer, sens, latency, ops=self.use_ops, subtrees=self.use_subtrees, runner=self.runner)
        self.state.update(phase="greedy", latency_source=latency.source, latency={"fp32": latency.fp32_ms,
                          "low": latency.low_ms}, candidates=[asdict(c) for c in cands], chosen=[], steps=[])
        self.save()

    def calibrate(self) -> None:
        """Measure all-low on the backend once and aim the forward pass's error in proportion.

        The backend's kernels (Inductor, TensorRT) may lose more or less than the forward pass that prices steps.
        """
        state, estimate = self.state, self.steps[0].error
        state["measured_all_low"] = measured = self.backend_error(self.base)
        ratio = measured / estimate if math.isfinite(measured) and 0 < estimate < math.inf else 1.0
        state["aim"] = self.budget / ratio if ratio > 0 else self.budget
        self.steps.append(SearchStep(f"calibrate: {self.checker} measures all-low at {measured:.3g}, the forward "
                                     f"pass at {estimate:.3g}; aim at {state['aim']:.3g}", (), (), estimate,
                                     self.steps[0].latency_ms))
        if measured <= self.budget:  # nothing to keep in FP32
            state["plans"] = {"backend": {"chosen": [], "error": estimate, "latency_ms": self.steps[0].latency_ms}}
        self.save()

    def greedy(self) -> None:
        """Build a plan with each greedy rule, prune it, keep the cheapest within the aim.

        Gains of single exclusions do not add up (errors add roughly in quadrature), so no one rule wins everywhere.
        """
        state = self.state
        if self.checker is not None and "measured_all_low" not in state:
            self.calibrate()
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
            low_nodes = self.evaluator.low_nodes(_apply(self.base, self.chosen))
            plans[rule] = {"chosen": [c.value for c in self.chosen], "error": self.err,
                           "latency_ms": self.latency.estimate_ms(low_nodes) if self.objective == "latency"
                           else float(sum(len(c.nodes) for c in self.chosen))}
            self.save()
        best = min(plans, key=lambda k: (k != "backend", plans[k]["error"] > aim, plans[k]["latency_ms"],
                                         plans[k]["error"]))
        self.chosen[:] = [self.by_value[v] for v in plans[best]["chosen"]]
        unit = "ms" if self.objective == "latency" else "nodes"
        self.err = self.measure(f"keep the {best} plan: "
                                + ", ".join(f"{k} {v['latency_ms']:.3g} {unit}" for k, v in plans.items()))
        state["phase"] = "confirm" if self.checker is not None else "done"
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

    def extend(self) -> None:
        """Measure the kept plan on the backend; if still over budget there, extend its pick order past the aim."""
        measured = self.backend_error(_apply(self.base, self.chosen))
        picked = len(self.chosen)
        if measured > self.budget and self.max_probes > 0:
            floor = self.err * min(1.0, self.budget / measured) * 0.1 if math.isfinite(measured) else 0.0
            self.add_until(floor, 48)
        probes = {0: float(self.state["measured_all_low"]), picked: measured}
        self.state.update(phase="bisect", sequence=[c.value for c in self.chosen],
                          probes={str(k): v for k, v in probes.items()})
        self.save()

    def bisect(self) -> None:
        """Cut the pick order to the shortest prefix the backend measures within budget (``max_probes`` compiles)."""
        state, budget = self.state, self.budget
        sequence = [self.by_value[v] for v in state["sequence"]]
        probes = {int(k): v for k, v in state["probes"].items()}
        known = len(probes)

        def probe(k: int) -> float:
            if k not in probes:
                probes[k] = self.backend_error(_apply(self.base, sequence[:k]))
                state["probes"] = {str(i): v for i, v in probes.items()}
                self.save()
            return probes[k]

        # over budget at lo (all-low, or a measured prefix); within budget at hi once a prefix passes
        lo = max((k for k, v in probes.items() if v > budget), default=0)
        passing = [k for k, v in probes.items() if v <= budget and k > lo]
        hi = min(passing) if passing else len(sequence)
        spent = 0 if passing or hi in probes else 1
        if passing or probe(hi) <= budget:
            while hi - lo > 1 and spent < self.max_probes:
                mid = (lo + hi) // 2
                spent += mid not in probes
                lo, hi = (lo, mid) if probe(mid) <= budget else (mid, hi)
        self.chosen[:] = sequence[:hi]
        if probes[0] > budget:
            self.err = self.measure(f"bisect on {self.checker}: {hi} of {len(sequence)} exclusions in order of "
                                    f"picking ({len(probes) - known} more compiles)")
        state["phase"] = "done"
        self.save()

    def result(self) -> SearchResult:
        final = _apply(self.base, self.chosen)
        err = self.evaluator.error(final)
        result = SearchResult(final, self.budget, self.metric, err <= self.budget, err,
                              self.latency.estimate_ms(self.evaluator.low_nodes(final)), tuple(self.chosen),
                              tuple(self.steps), self.evaluator.count, self.latency.source,
                              backend_probes=max(0, len(self.state.get("probes", ())) - 2))
        if self.checker is None:
            return result
        probes = self.state.get("probes", {})
        known = {"all_low": self.state.get("measured_all_low"), "chosen": probes.get(str(len(self.chosen)))}
        result = _confirm(self.explorer, result, self.base, self.batches, self.build, known)
        measured = (result.confirmed.get("chosen") or {}).get("error")
        return SearchResult(**{**vars(result), "within_budget": measured <= self.budget}) \
            if measured is not None else result


def _confirm(explorer: Explorer, result: SearchResult, base: Settings, batches: list[Batch], build: Build,
             known: dict[str, float | None] | None = None) -> SearchResult:
    """Compile the chosen plan (and the FP32 and all-low ones, cached): measured error, and latency timed in turns.

    ``known`` errors ("all_low", "chosen") already measured on the backend are not measured again. The chosen
    plan is also profiled, so ``explorer.last_profile`` overlays its per-node figures.
    """
    from .backends import time_plans

    plans = {"fp32": all_fp32_settings(base), "all_low": base, "chosen": result.settings}
    measured: dict[str, Any] = {}
    compiled = {}
    for label, s in plans.items():
        compiled[label] = build.compile(explorer, s)
        error = (known or {}).get(label)
        if error is None:
            error = backend_error(explorer, s, batches, result.metric, build)
        measured[label] = {"error": error}
    timings = time_plans(explorer, list(compiled.values()), batches, progress=build.progress)
    build.profile(explorer, compiled["chosen"], batches)  # per-node overlay of the chosen plan
    for label, timing in zip(compiled, timings):
        measured[label].update(latency_ms=timing.median_ms, p10_ms=timing.p10_ms, p90_ms=timing.p90_ms)
    measured["backend"] = compiled["chosen"].backend
    fp32, all_low, mine = (measured[k]["latency_ms"] for k in ("fp32", "all_low", "chosen"))
    measured["speedup_over_fp32"] = fp32 / mine if mine else None
    measured["all_low_speedup"] = fp32 / all_low if all_low else None
    if all_low and mine:
        measured["share_of_all_low_speedup"] = all_low / mine  # (fp32/mine) / (fp32/all_low)
    return replace(result, confirmed=measured)
