"""The model zoo through every step a user takes, on the CPU (PyTorch backend), one table of outcomes.

Run: ``python benchmarks/zoo.py [--size small|real] [--only NAME ...] [--out docs/results/zoo_cpu.md]``
(or ``python benchmarks/run.py zoo ...``). Per model: capture, plan (FP16 autocast), exclude one block by its
container path, check_settings, figure, HTML report, export and reload of the settings, the cast program (where
the plan has integer casts), compile with the torch backend in the default worker process, profile and accuracy. Each step ends ``ok``, ``error``
(a MixprecError: the message is kept, it should name the fix) or ``failure`` (any other exception: a bug);
a step whose input failed is ``skipped``. Models whose library is missing are ``unavailable``, with the reason.
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mixprec_explorer import Explorer, Settings, zoo
from mixprec_explorer.errors import MixprecError
from mixprec_explorer.settings import write_atomic

#: The steps, in the order they run.
STEPS = ("capture", "plan", "exclude_block", "check_settings", "figure", "save_html", "export_reload", "cast_program", "compile",
         "profile", "accuracy")
#: A step's outcome; "n/a": the step does not apply (no integer casts to cast around).
OUTCOMES = ("ok", "n/a", "error", "failure", "skipped")
PROFILE_RUNS = 3
FP16 = Settings(enable_autocast=True, autocast_low_precision_type=torch.float16)


@dataclass(frozen=True)
class StepResult:
    """One step of one model: its outcome, the error's type and message where it raised, its wall time."""

    step: str
    outcome: str
    message: str = ""
    error_type: str = ""
    seconds_s: float = 0.0


@dataclass(frozen=True)
class ZooRecord:
    """One model's run: every step's result, and the figures the table shows."""

    name: str
    source: str
    task: str
    size: str
    steps: tuple[StepResult, ...]
    unavailable: str = ""  #: why the model could not be built here ("" when it was)
    nodes: int | None = None  #: the captured graph's call_function nodes
    latency_ms: float | None = None  #: the compiled plan's median end-to-end latency (torch backend, CPU)
    rel_l2_error: float | None = None  #: FP16 autocast plan vs FP32 reference
    accuracy_notes: tuple[str, ...] = ()
    seconds_s: float = 0.0

    @property
    def complete(self) -> bool:
        """Every step ran and passed (or did not apply)."""
        return not self.unavailable and all(s.outcome in ("ok", "n/a") for s in self.steps)

    @property
    def outcome(self) -> str:
        """"unavailable", "failure" (some raw exception), "error" (some MixprecError) or "ok"."""
        if self.unavailable:
            return "unavailable"
        kinds = {s.outcome for s in self.steps}
        return "failure" if "failure" in kinds else "error" if "error" in kinds else "ok"


class _Stop(Exception):
    """A step failed; the steps that need its result are skipped."""


def _step(results: list[StepResult], name: str, fn: Callable[[], Any]) -> Any:
    """Run one step, record its outcome; raise _Stop when it raised."""
    start = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a zoo model's library warnings are not the step's outcome
            value = fn()
    except MixprecError as err:
        results.append(StepResult(name, "error", _first_lines(err), type(err).__name__,
                                  time.perf_counter() - start))
        raise _Stop from err
    except Exception as err:
        results.append(StepResult(name, "failure", _first_lines(err), type(err).__name__,
                                  time.perf_counter() - start))
        raise _Stop from err
    outcome = "n/a" if value is _NOT_APPLICABLE else "ok"
    results.append(StepResult(name, outcome, seconds_s=time.perf_counter() - start))
    return value


_NOT_APPLICABLE = object()


def _first_lines(err: BaseException, limit: int = 600) -> str:
    text = " ".join(str(err).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def run_model(name: str, size: str = "small", *, batch: int = 2, folder: Path | None = None,
              profile_runs: int = PROFILE_RUNS, warmup: int = 1) -> ZooRecord:
    """Every step for one zoo model; never raises for the model's own failures (they are the record).

    ``profile_runs`` timed runs after ``warmup`` (and as many profiled ones); ``folder`` keeps the HTML report
    and the settings file (default: a temporary folder).
    """
    entry = zoo.entry(name)
    ok, reason = zoo.available(name)
    if not ok:
        return ZooRecord(name, entry.source, entry.task, size, (), unavailable=reason)
    start = time.perf_counter()
    results: list[StepResult] = []
    facts: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="mixprec-zoo-") as tmp:
        out = folder or Path(tmp)
        try:
            ex: Explorer = _step(results, "capture", lambda: Explorer(*zoo.build(name, size=size, batch=batch)))
            facts["nodes"] = sum(1 for i in ex.nodes.values() if i.kind == "call_function")

            def plan() -> Any:
                ex.settings = FP16
                return ex.plan()

            planned = _step(results, "plan", plan)
            _independent(results, "exclude_block", lambda: _exclude_block(ex, planned))
            _independent(results, "check_settings", ex.check_settings)
            _independent(results, "figure", ex.figure)
            _independent(results, "save_html", lambda: ex.save_html(out / f"{name}.html"))
            _independent(results, "export_reload", lambda: _export_reload(ex, out / f"{name}.json"))
            _independent(results, "cast_program",
                         lambda: ex.cast_program() if planned.integer_casts else _NOT_APPLICABLE)
            compiled = _step(results, "compile", lambda: ex.compile(FP16, backend="torch", progress=False))
            _independent(results, "profile", lambda: facts.update(
                latency_ms=ex.profile(compiled, runs=profile_runs, warmup=warmup, progress=False).end_to_end.median_ms))

            def accuracy() -> None:
                report = ex.accuracy(compiled)
                facts.update(rel_l2_error=report.rel_l2_error, accuracy_notes=tuple(report.notes))

            _step(results, "accuracy", accuracy)
        except _Stop:
            pass
    done = {r.step for r in results}
    results += [StepResult(s, "skipped") for s in STEPS if s not in done]
    order = {s: i for i, s in enumerate(STEPS)}
    return ZooRecord(name, entry.source, entry.task, size, tuple(sorted(results, key=lambda r: order[r.step])),
                     nodes=facts.get("nodes"), latency_ms=facts.get("latency_ms"),
                     rel_l2_error=facts.get("rel_l2_error"), accuracy_notes=facts.get("accuracy_notes", ()),
                     seconds_s=time.perf_counter() - start)


def _independent(results: list[StepResult], name: str, fn: Callable[[], Any]) -> Any:
    """A step later steps do not need: its failure is recorded and the run goes on."""
    try:
        return _step(results, name, fn)
    except _Stop:
        return None


def _exclude_block(ex: Explorer, planned: Any) -> str:
    """Keep one block (a container module, such as ``features.1`` or ``layer1.0``) in FP32 by its path, as a
    user would: every node inside it must leave FP16. The FP16 settings are restored afterwards."""
    block = _a_block(ex)
    try:
        ex.exclude(block)
        plan = ex.plan()
        inside = [n for m, members in ex.modules.items() if m.startswith(block + ".") for n in members]
        still = [n for n in inside if plan[n].dtype == torch.float16]
        if still:
            raise AssertionError(f"ex.exclude({block!r}) left {len(still)} of its nodes FP16: {still[:5]}")
    finally:
        ex.settings = FP16
    return block


def _a_block(ex: Explorer) -> str:
    """The first container module in graph order, two levels deep where the model has such (else one)."""
    paths = [m for m in ex.modules if m]
    for depth in (2, 1):
        for path in paths:
            parts = path.split(".")
            if len(parts) > depth:
                return ".".join(parts[:depth])
    raise AssertionError(f"no container module among {paths[:5]}")


def _export_reload(ex: Explorer, path: Path) -> None:
    """Export the settings, load them back; the reloaded settings must be the same and give the same plan."""
    before, plan = ex.settings, ex.plan()
    ex.export_settings(path)
    loaded = ex.load_settings(path)
    if loaded != before:
        raise AssertionError(f"the reloaded settings differ: {loaded!r} != {before!r}")
    if [(r.name, r.dtype) for r in ex.plan()] != [(r.name, r.dtype) for r in plan]:
        raise AssertionError("the reloaded settings give another plan")


def run_zoo(names: Sequence[str] | None = None, size: str = "small", *, batch: int = 2,
            profile_runs: int = PROFILE_RUNS, progress: bool = True) -> list[ZooRecord]:
    """Every step for each named zoo model (default: the whole zoo), printing a line per model."""
    from tqdm.auto import tqdm

    chosen = list(names) if names else zoo.names()
    records = []
    bar = tqdm(chosen, desc=f"zoo ({size})", unit="model", disable=not progress, file=sys.stderr)
    for name in bar:
        bar.set_postfix_str(name)
        record = run_model(name, size, batch=batch, profile_runs=profile_runs)
        records.append(record)
        if progress:
            failed = [f"{s.step}: {s.error_type}" for s in record.steps if s.outcome in ("error", "failure")]
            bar.write(f"{name:24s} {record.outcome:11s} {record.seconds_s:6.1f} s  "
                      f"{record.unavailable or '; '.join(failed)}")
    return records


_CELL = {"ok": "ok", "n/a": "n/a", "error": "**error**", "failure": "**FAILURE**", "skipped": "-"}


def markdown_table(records: Sequence[ZooRecord]) -> str:
    """The outcomes as markdown: a summary line, one row per model, then every error's message."""
    ran = [r for r in records if not r.unavailable]
    complete = sum(r.complete for r in ran)
    share = f"{complete / len(ran):.0%}" if ran else "-"
    lines = [f"{len(records)} models, {len(ran)} built here; **{complete} of {len(ran)} ({share}) complete every "
             f"step**; {sum(r.outcome == 'error' for r in ran)} stop at a MixprecError, "
             f"{sum(r.outcome == 'failure' for r in ran)} at a raw exception.", ""]
    header = ["model", "source", "task", "nodes", *STEPS, "latency_ms", "rel L2 (FP16)", "s"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in records:
        if r.unavailable:
            cells = [r.name, r.source, r.task, "-", f"unavailable: {r.unavailable}", *([""] * (len(STEPS) + 2))]
        else:
            by_step = {s.step: s for s in r.steps}
            cells = [r.name, r.source, r.task, _fmt(r.nodes), *(_CELL[by_step[s].outcome] for s in STEPS),
                     _fmt(r.latency_ms), _fmt(r.rel_l2_error), f"{r.seconds_s:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    problems = [(r, s) for r in records for s in r.steps if s.outcome in ("error", "failure")]
    if problems:
        lines += ["", "Errors and failures (model, step, type: message):", ""]
        lines += [f"- `{r.name}` {s.step}, {s.error_type}: {s.message.replace('|', '/')}" for r, s in problems]
    measured = [r for r in records if r.rel_l2_error is not None]
    common = [n for n in dict.fromkeys(n for r in measured for n in r.accuracy_notes)
              if len(measured) > 1 and all(n in r.accuracy_notes for r in measured)]
    notes = [(r, n) for r in records for n in r.accuracy_notes if n not in common]
    if common or notes:
        lines += ["", "Accuracy notes:", ""] + [f"- every model: {n}" for n in common]
        lines += [f"- `{r.name}`: {n}" for r, n in notes]
    return "\n".join(lines) + "\n"


def _fmt(value: float | int | None) -> str:
    if value is None:
        return "-"
    return str(value) if isinstance(value, int) else f"{value:.3g}"


def document(records: Sequence[ZooRecord], size: str, seconds_s: float, machine_note: str = "") -> str:
    """The results page: how it was made, on what, then :func:`markdown_table`."""
    versions = ", ".join(f"{m} {_version(m)}" for m in ("torch", "torchvision", "timm", "transformers"))
    return (f"# The model zoo on the CPU ({size} size)\n\n"
            f"Written by `python benchmarks/zoo.py --size {size} --out docs/results/zoo_cpu.md`. Each model "
            f"(`mixprec_explorer.zoo`, random weights, seeded, batch 2) goes through capture, plan (FP16 "
            f"autocast), `exclude` of one block by its container path (every node inside must leave FP16), "
            f"`check_settings`, `figure`, `save_html`, `export_settings` + `load_settings`, "
            f"`cast_program` (where `plan.integer_casts`), `compile(backend=\"torch\")` in the default worker "
            f"process, `profile(runs={PROFILE_RUNS})` and `accuracy`. `**error**`: a MixprecError (its message "
            f"is below); `**FAILURE**`: any other exception; `-`: skipped, a step it needs failed.\n\n"
            f"Machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
            f"Python {platform.python_version()}, {versions}{machine_note and '; ' + machine_note}; "
            f"{seconds_s / 60:.1f} min in all. `latency_ms`: the FP16 plan's median on the PyTorch backend on "
            f"this CPU (not a TensorRT figure; the notes say how the CPU runs low precision).\n\n"
            + markdown_table(records))


def _version(module: str) -> str:
    try:
        return str(__import__(module).__version__)
    except Exception:
        return "-"


def main(argv: Sequence[str] | None = None) -> int:
    """Command line; exit code 0 when every model that builds here completes every step, else 1."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=zoo.SIZES, default="small")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="these zoo models only (default: all)")
    parser.add_argument("--profile-runs", type=int, default=PROFILE_RUNS)
    parser.add_argument("--out", metavar="FILE", help="write the markdown page here (e.g. docs/results/zoo_cpu.md)")
    parser.add_argument("--machine-note", default="", metavar="TEXT",
                        help="said beside the machine (e.g. 'shared with other jobs')")
    args = parser.parse_args(argv)
    try:
        for name in args.only or ():
            zoo.entry(name)  # an unknown name fails here, naming close ones, before any work
    except MixprecError as err:
        parser.error(str(err))
    start = time.perf_counter()
    records = run_zoo(args.only, args.size, profile_runs=args.profile_runs)
    page = document(records, args.size, time.perf_counter() - start, args.machine_note)
    if args.out:
        print(f"wrote {write_atomic(args.out, page)}")
    else:
        print(page)
    return 0 if all(r.complete for r in records if not r.unavailable) else 1


if __name__ == "__main__":
    sys.exit(main())
