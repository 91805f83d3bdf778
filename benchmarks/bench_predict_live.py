"""Predicted against measured: ``ex.predict`` checked on the live engine, plan by plan, then summarised.

Run on a CUDA machine with torch-tensorrt-rtx installed (README, "The live engine")::

    python benchmarks/run.py predict-live --out out/predict/predict.md

Per model (ResNet-50 and the BERT-sized encoder of ``mixprec_explorer.examples`` by default, or any zoo name; batch
32) and backend
(``tensorrt``: TensorRT, the encoder as ``build="cast_graph"`` since autocast cannot compile it; ``compiled``:
PyTorch with ``torch.compile``): the predictor is calibrated from the all-FP32 and all-FP16 plans (profiled, their
error measured) and sensitivity; then ``--plans`` plans (random module exclusions, and search-style ones: the most
sensitive modules, a block, an op type) are compiled, timed and checked, and each prediction is set against the
measurement. "LOO" columns predict each plan with the other measured plans recorded as well (leave one out): what
the predictor makes of measured plans. The summary gives the median and max |latency error| and the share of
error predictions within a factor of 2.

Keeping within ``--budget-s`` (default 420 s; the driver stops waiting 45 s later, so a run ends within 8 minutes):
each model and backend runs in its own process; all of them compile at once (builds are CPU-bound), then they take
turns on the GPU to measure, and predict only once all have measured, so no timing overlaps another process's
work (run nothing else on the machine meanwhile: compiled PyTorch's encoder is launch-bound). A process stops
compiling new plans when the time left is what the measurements need, and the report lists what was skipped.
``--small`` runs tiny models with the PyTorch backend on the CPU (the test suite runs it). Writes the markdown to
``--out`` and the rows as JSON beside it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import platform
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path
from typing import Any

import torch
from _common import build_model

from mixprec_explorer import Explorer, Settings, SettingsWarning
from mixprec_explorer.settings import module_pattern

ROOT = Path(__file__).resolve().parents[1]
RUN = Path(__file__).resolve().parent / "run.py"
FP16 = Settings(enable_autocast=True, autocast_low_precision_type=torch.float16)
#: backend key -> (ex.compile backend, options)
BACKENDS = {"tensorrt": ("tensorrt", {}), "compiled": ("torch", {"mode": "compiled"}),
            "eager": ("torch", {"mode": "eager"})}
MEASURE_RESERVE_S = 35.0  #: time one process's measurement turn is expected to need (GPU runs, profiles, checks)


# -- plans ---------------------------------------------------------------------------------------------------------
def _block_of(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) >= 3 else parts[0]


def make_plans(ex: Explorer, sens: Any, count: int, seed: int) -> list[dict[str, Any]]:
    """``count`` plans: two in five search-style (from sensitivity), the rest random module exclusions."""
    leaves = [m for m, nodes in ex.modules.items() if m and any(n in sens.node_low_error for n in nodes)]
    ranked = [m for m, gain in sens.ranking("module") if m in leaves and gain > 0] or leaves
    styled: list[tuple[str, frozenset[str], frozenset[str]]] = []

    def top(k: int) -> None:
        if len(ranked) >= k:
            styled.append((f"search: top {k} module{'s' if k > 1 else ''}",
                           frozenset(module_pattern(m) for m in ranked[:k]), frozenset()))

    top(1)
    if ranked:
        block = _block_of(ranked[0])
        styled.append((f"search: block {block}", frozenset({f"^{re.escape(block)}(\\.|$)"}), frozenset()))
    top(3)
    gains: dict[str, float] = {}
    counts: dict[str, int] = {}
    for node, gain in sens.node_fp32_gain.items():
        op = ex.nodes[node].op
        gains[op] = gains.get(op, 0.0) + (gain if math.isfinite(gain) else 0.0)
        counts[op] = counts.get(op, 0) + 1
    ops = sorted((op for op in gains if counts[op] >= 2), key=lambda op: -gains[op])
    if ops:
        styled.append((f"search: op {ops[0].split('.')[-2]}", frozenset(), frozenset({ops[0]})))
    top(8)
    styled = styled[:max(1, (2 * count) // 5)]  # 4 of 10: top module, its block, top 3, the top op
    rng = random.Random(seed)
    plans = [{"name": name, "kind": "search", "modules": sorted(mods), "ops": sorted(op)} for name, mods, op in styled]
    while len(plans) < count and leaves:
        k = rng.randint(1, max(2, len(leaves) // 8))
        chosen = sorted(rng.sample(leaves, min(k, len(leaves))))
        plans.append({"name": f"random: {len(chosen)} module{'s' if len(chosen) > 1 else ''}", "kind": "random",
                      "modules": [module_pattern(m) for m in chosen], "ops": []})
    return plans[:count]


def plan_settings(plan: dict[str, Any]) -> Settings:
    return FP16.replace(autocast_excluded_nodes=frozenset(plan["modules"]),
                        autocast_excluded_ops=frozenset(plan["ops"]))


# -- one process: one model on one backend ------------------------------------------------------------------------
@contextlib.contextmanager
def gpu_turn(workdir: Path):
    """An exclusive lock on the GPU among this run's processes (measurements never overlap)."""
    import fcntl

    with open(workdir / "gpu.lock", "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def wait_for_wave(workdir: Path, wave: list[str], deadline: float, stage: str = "compiled") -> None:
    """Block until every process of this wave has reached ``stage`` ("compiled", "measured") or the deadline passes."""
    while time.time() < deadline:
        if all((workdir / f"{stage}_{job}").exists() for job in wave):
            return
        time.sleep(0.5)


def rel_l2(reference: Any, outputs: Any) -> float:
    from mixprec_explorer.accuracy import compare_outputs

    error = compare_outputs(reference, outputs).rel_l2_error
    return math.inf if math.isnan(error) else error


def run_job(job: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    from mixprec_explorer.backends import run_compiled, time_plans
    from mixprec_explorer.predict import Predictor

    model_name, key = job.split(":")
    backend, options = BACKENDS[key]
    options = dict(options)
    if key == "tensorrt" and model_name == "encoder":
        options["build"] = "cast_graph"  # autocast casts the encoder's integer indices (README, "A live engine")
    device = args.device
    t0 = args.t0
    wave = args.wave.split(",")
    compile_deadline = t0 + args.budget_s - MEASURE_RESERVE_S * len(wave) - 15
    out: dict[str, Any] = {"job": job, "model": model_name, "backend": key, "options": options, "plans": [],
                           "calibration": {}, "notes": [], "timeline": {}}
    model, inputs = build_model(model_name, small=args.small, batch=args.batch)
    model, inputs = model.to(device), tuple(x.to(device) for x in inputs)
    ex = Explorer(model, inputs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SettingsWarning)  # the encoder's integer casts: we know (cast graph)
        ex.settings = FP16
    fp32 = FP16.replace(autocast_excluded_nodes=frozenset({".*"}))
    start = time.time()
    sens = ex.sensitivity(inputs, progress=False)
    out["sensitivity_s"] = time.time() - start
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    plans = make_plans(ex, sens, args.plans, args.seed)

    def build(settings: Settings) -> Any:
        return ex.compile(settings, backend=backend, device=device, isolate=False, progress=False, **options)

    calibration = {"all-FP32": fp32, "all-FP16": FP16}
    compiled = {label: build(s) for label, s in calibration.items()}
    pricing = {}
    if key == "compiled":  # Inductor fuses nodes: an eager run of the same plans splits its time over them
        pricing = {label: ex.compile(s, backend="torch", device=device, isolate=False, progress=False, mode="eager")
                   for label, s in calibration.items()}
    for c in compiled.values():
        run_compiled(ex, c, inputs)  # first run outside the timings (TensorRT-RTX compiles kernels here)
    for plan in plans:
        if time.time() > compile_deadline:
            plan["skipped"] = "time budget: not compiled"
            continue
        started = time.time()
        try:
            plan["compiled"] = build(plan_settings(plan))
            run_compiled(ex, plan["compiled"], inputs)
        except Exception as err:  # keep the row and say why it has no figures
            plan["error"] = f"{type(err).__name__}: {err}"[:400]
        plan["compile_s"] = time.time() - started
    out["timeline"]["compiled_at_s"] = time.time() - t0
    (workdir / f"compiled_{job.replace(':', '_')}").touch()
    wait_for_wave(workdir, [j.replace(":", "_") for j in wave], t0 + args.budget_s - 60)
    with gpu_turn(workdir):
        out["timeline"]["measure_from_s"] = time.time() - t0
        with torch.no_grad():
            reference = ex.exported_program.module()(*inputs)
        measured = {}
        for label, c in compiled.items():  # per-node times (and dtypes) of the two calibration plans
            profile = ex.profile(c, inputs, runs=args.runs, progress=False)
            measured[label] = (profile, rel_l2(reference, run_compiled(ex, c, inputs)))
            out["versions"] = dict(profile.versions)
            out["device"] = profile.device
        priced = {label: ex.profile(c, inputs, runs=args.runs, progress=False) for label, c in pricing.items()}
        ready = [p for p in plans if p.get("compiled") is not None]
        for plan in ready:
            try:
                plan["measured_error"] = rel_l2(reference, run_compiled(ex, plan["compiled"], inputs))
            except Exception as err:
                plan["error"] = f"{type(err).__name__}: {err}"[:400]
        ready = [p for p in ready if "error" not in p]
        # every plan of this process timed in turns, calibration included: a slow minute hits them all alike
        timed = time_plans(ex, [*compiled.values(), *(p["compiled"] for p in ready)], inputs, runs=args.runs,
                           progress=False)
        latency = {label: t.median_ms for label, t in zip(compiled, timed)}
        for plan, t in zip(ready, timed[len(compiled):]):
            plan["measured_ms"] = t.median_ms
        for label, (profile, error) in measured.items():
            out["calibration"][label] = {"latency_ms": latency[label], "profile_ms": profile.end_to_end.median_ms,
                                         "rel_l2": error, "attributed": profile.attributed_share}
        out["timeline"]["measured_at_s"] = time.time() - t0
    # Nobody computes while another process measures: a launch-bound module (compiled PyTorch's encoder) takes its
    # time from the host, so the predictions below wait until the whole wave has measured.
    (workdir / f"measured_{job.replace(':', '_')}").touch()
    wait_for_wave(workdir, [j.replace(":", "_") for j in wave], t0 + args.budget_s - 30, stage="measured")

    def calibrated() -> Predictor:
        predictor = Predictor(ex)
        predictor.record(sensitivity=sens)
        for label, (profile, error) in measured.items():
            predictor.record(compiled[label], profile=profile, latency_ms=latency[label], accuracy=error)
        for label, profile in priced.items():
            predictor.record(pricing[label], profile=profile)
        return predictor

    target = "tensorrt" if backend == "tensorrt" else f"torch {options['mode']}"
    base = calibrated()
    done = [p for p in plans if "measured_ms" in p]
    for plan in plans:
        settings = plan_settings(plan)
        prediction = base.predict(settings, backend=target)
        plan.update(predicted_ms=prediction.latency_ms, predicted_error=prediction.error,
                    cast_ms=prediction.cast_total_ms, low_nodes=prediction.low_nodes,
                    fp32_nodes=sum(1 for r in ex.plan(settings) if r.is_excluded), statement=prediction.statement)
        if plan in done and len(done) > 1:
            others = calibrated()
            for other in done:
                if other is not plan:
                    others.record(other["compiled"], latency_ms=other["measured_ms"], accuracy=other["measured_error"])
            loo = others.predict(settings, backend=target)
            plan.update(loo_ms=loo.latency_ms, loo_error=loo.error)
    summary = base.predict(FP16, backend=target)
    out["statement"], out["sources"] = summary.statement, summary.describe_sources()
    for plan in plans:
        plan.pop("compiled", None)
    out["plans"] = plans
    out["versions"] = {**out.get("versions", {}), "torch": torch.__version__,
                       "gpu": torch.cuda.get_device_name(0) if device.startswith("cuda") else platform.processor()}
    return out


# -- the report ------------------------------------------------------------------------------------------------------
def _pct(predicted: float | None, measured: float | None) -> float | None:
    if predicted is None or measured is None or not measured > 0:
        return None
    return 100.0 * (predicted - measured) / measured


def _ratio(predicted: float | None, measured: float | None) -> float | None:
    if predicted is None or measured is None:
        return None
    if measured == 0:
        return 1.0 if predicted == 0 else math.inf
    return predicted / measured


def _within2(ratio: float | None) -> bool:
    return ratio is not None and 0.5 <= ratio <= 2.0


def summarize(rows: list[dict[str, Any]], loo: bool = False) -> dict[str, Any]:
    """Median and max |latency error| (%), share of error predictions within 2x (0..1), over measured plans."""
    ms_key, error_key = ("loo_ms", "loo_error") if loo else ("predicted_ms", "predicted_error")
    pcts = [_pct(r.get(ms_key), r.get("measured_ms")) for r in rows]
    lat = [abs(x) for x in pcts if x is not None]
    ratios = [x for r in rows if (x := _ratio(r.get(error_key), r.get("measured_error"))) is not None]
    return {"plans": len(lat), "median_abs_pct": statistics.median(lat) if lat else None,
            "max_abs_pct": max(lat) if lat else None,
            "within2": (sum(_within2(x) for x in ratios) / len(ratios)) if ratios else None,
            "errors": len(ratios)}


def _f(value: Any, spec: str = ".3g", none: str = "-") -> str:
    if value is None:
        return none
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    return format(value, spec)


def report(jobs: list[dict[str, Any]], args: argparse.Namespace, wall_s: float) -> str:
    versions: dict[str, str] = {}
    devices = set()
    for job in jobs:
        versions.update(job.get("versions", {}))
        if job.get("device"):
            devices.add(job["device"])
    lib = ", ".join(f"{k} {v}" for k, v in sorted(versions.items()) if k not in ("gpu", "tensorrt_package", "python"))
    if "tensorrt_package" in versions:
        lib += f" ({versions['tensorrt_package']})"
    lines = [f"Device: {', '.join(sorted(devices)) or versions.get('gpu', '?')}; {lib}; Python "
             f"{platform.python_version()}; batch {args.batch if not args.small else 2}"
             f"{' (--small: tiny models on the CPU)' if args.small else ''}; latency: median of {args.runs} runs "
             f"after warm-up; error: relative L2 of the outputs against the FP32 program in PyTorch; wall time "
             f"{wall_s:.0f} s (budget {args.budget_s:.0f} s).", "",
             "Predicted from the all-FP32 and all-FP16 profiles and sensitivity; LOO: with every other measured plan "
             "of the same model and backend recorded too.", "",
             "| model | backend | plan | FP32 nodes | predicted ms | measured ms | latency err | LOO ms | LOO err "
             "| predicted error | measured error | ratio | LOO ratio | casts ms | compile s |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    all_rows = []
    for job in jobs:
        label = job["backend"] + (" (cast graph)" if job.get("options", {}).get("build") == "cast_graph" else "")
        if "failed" in job:
            lines.append(f"| {job['model']} | {label} | failed: {job['failed'][:200]} |" + " |" * 12)
            continue
        for name, cal in job["calibration"].items():
            lines.append(f"| {job['model']} | {label} | {name} (calibration) | | {_f(cal['latency_ms'], '.4g')} | "
                         f"{_f(cal['latency_ms'], '.4g')} | exact | | | {_f(cal['rel_l2'], '.2e')} | "
                         f"{_f(cal['rel_l2'], '.2e')} | 1 | | | |")
        for plan in job["plans"]:
            if "measured_ms" not in plan:
                why = plan.get("skipped") or plan.get("error") or "not measured"
                lines.append(f"| {job['model']} | {label} | {plan['name']} | | {_f(plan.get('predicted_ms'), '.4g')} "
                             f"| {why[:160]} |" + " |" * 9)
                continue
            all_rows.append(plan)
            fp32 = str(plan.get("fp32_nodes", ""))
            lines.append(
                f"| {job['model']} | {label} | {plan['name']} | {fp32} | {_f(plan['predicted_ms'], '.4g')} | "
                f"{_f(plan['measured_ms'], '.4g')} | {_f(_pct(plan['predicted_ms'], plan['measured_ms']), '+.1f')} % | "
                f"{_f(plan.get('loo_ms'), '.4g')} | {_f(_pct(plan.get('loo_ms'), plan['measured_ms']), '+.1f')} % | "
                f"{_f(plan['predicted_error'], '.2e')} | {_f(plan['measured_error'], '.2e')} | "
                f"{_f(_ratio(plan['predicted_error'], plan['measured_error']), '.2f')} | "
                f"{_f(_ratio(plan.get('loo_error'), plan['measured_error']), '.2f')} | "
                f"{_f(plan.get('cast_ms'), '.3f')} "
                f"| {_f(plan.get('compile_s'), '.1f')} |")
    lines += ["", "Summary (plans measured; |latency error| = |predicted - measured| / measured; error within 2x: "
              "0.5 <= predicted / measured <= 2):", "",
              "| model | backend | plans | latency median abs err | max | error within 2x | LOO median | LOO max "
              "| LOO within 2x |", "|---|---|---|---|---|---|---|---|---|"]
    groups = [(f"{j['model']}", j["backend"], [p for p in j["plans"] if "measured_ms" in p]) for j in jobs
              if "failed" not in j]
    groups.append(("all", "all", all_rows))
    for model, backend, rows in groups:
        s, loo = summarize(rows), summarize(rows, loo=True)
        lines.append(f"| {model} | {backend} | {s['plans']} | {_f(s['median_abs_pct'], '.1f')} % | "
                     f"{_f(s['max_abs_pct'], '.1f')} % | {_f(s['within2'] and 100 * s['within2'], '.0f')} % | "
                     f"{_f(loo['median_abs_pct'], '.1f')} % | {_f(loo['max_abs_pct'], '.1f')} % | "
                     f"{_f(loo['within2'] and 100 * loo['within2'], '.0f')} % |")
    lines += ["", "Calibration per model and backend (what the predictions rest on):", ""]
    for job in jobs:
        if "failed" in job:
            continue
        lines.append(f"- {job['model']} / {job['backend']}: sensitivity {job.get('sensitivity_s', 0):.1f} s; "
                     f"{job.get('statement', '')}")
    return "\n".join(lines) + "\n"


# -- the driver ----------------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="run.py predict-live", description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet50,encoder")
    parser.add_argument("--backends", default=None, help="comma-separated: tensorrt, compiled, eager "
                        "(default: tensorrt,compiled; with --small: eager,compiled)")
    parser.add_argument("--plans", type=int, default=10, help="plans per model and backend, beyond FP32 and all-FP16")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--runs", type=int, default=20, help="timed runs per latency (median)")
    parser.add_argument("--budget-s", type=float, default=420.0, help="wall-clock budget for the whole run")
    parser.add_argument("--parallel", type=int, default=0, help="processes compiling at once (0: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--small", action="store_true", help="tiny models, PyTorch backend, on the CPU")
    parser.add_argument("--device", default=None, help="default: cuda, or cpu with --small")
    parser.add_argument("--out", type=Path, default=Path("out") / "predict" / "predict.md")
    parser.add_argument("--job", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--t0", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--wave", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.device = args.device or ("cpu" if args.small else "cuda")
    if args.job:  # a child process: one model on one backend
        result_path = args.workdir / f"result_{args.job.replace(':', '_')}.json"
        try:
            result = run_job(args.job, args, args.workdir)
        except Exception as err:
            result = {"job": args.job, "model": args.job.split(":")[0], "backend": args.job.split(":")[1],
                      "failed": f"{type(err).__name__}: {err}", "trace": traceback.format_exc()[-3000:]}
        finally:
            (args.workdir / f"compiled_{args.job.replace(':', '_')}").touch()
        result_path.write_text(json.dumps(result, default=str, indent=1))
        return 0

    t0 = time.time()
    backends = (args.backends or ("eager,compiled" if args.small else "tensorrt,compiled")).split(",")
    if args.small and "tensorrt" in backends:
        raise SystemExit("--small runs on the CPU: the PyTorch backend only (eager, compiled)")
    for b in backends:
        if b not in BACKENDS:
            raise SystemExit(f"unknown backend {b!r}; known: {', '.join(BACKENDS)}")
    jobs = [f"{m}:{b}" for m in args.models.split(",") for b in backends]
    size = args.parallel or len(jobs)
    workdir = Path(tempfile.mkdtemp(prefix="mixprec_predict_"))
    print(f"{len(jobs)} processes ({', '.join(jobs)}), {size} at a time; logs in {workdir}", flush=True)
    results = []
    for first in range(0, len(jobs), size):
        wave = jobs[first:first + size]
        procs = []
        for job in wave:
            log = open(workdir / f"log_{job.replace(':', '_')}.txt", "w")  # noqa: SIM115 - closed after the wait
            command = [sys.executable, str(RUN), "predict-live", "--job", job, "--workdir", str(workdir), "--t0", str(t0),
                       "--wave", ",".join(wave), "--plans", str(args.plans), "--batch", str(args.batch),
                       "--runs", str(args.runs), "--budget-s", str(args.budget_s), "--seed", str(args.seed),
                       "--device", args.device] + (["--small"] if args.small else [])
            procs.append((job, subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT), log))
        for job, proc, log in procs:
            left = t0 + args.budget_s + 45 - time.time()
            try:
                proc.wait(timeout=max(left, 1))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.close()
            path = workdir / f"result_{job.replace(':', '_')}.json"
            if path.exists():
                results.append(json.loads(path.read_text()))
            else:
                tail = (workdir / f"log_{job.replace(':', '_')}.txt").read_text()[-1500:]
                results.append({"job": job, "model": job.split(":")[0], "backend": job.split(":")[1],
                                "failed": f"no result (exit {proc.returncode}): {tail}"})
            done = results[-1]
            measured = sum(1 for p in done.get("plans", []) if "measured_ms" in p)
            print(f"-- {job}: {done.get('failed', f'{measured} plans measured')[:300]}", flush=True)
    text = report(results, args, time.time() - t0)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    args.out.with_suffix(".json").write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                                         "jobs": results}, default=str, indent=1))
    print(text)
    return 0
