"""The search end to end on the live engine: Explorer to confirmed, exported plan, with few TensorRT builds.

Run on a CUDA machine with torch-tensorrt-rtx installed (README, "The live engine"; ``bash benchmarks/gpu_run.sh
search-live --out $OUT/search`` on the lent machine)::

    python benchmarks/run.py search-live --out out/search

Per model (ResNet-50 and the BERT-sized encoder of ``mixprec_explorer.examples``, ViT-B/16 from the zoo, or any zoo
name; random weights, batch 32) and budget (relative L2 ``1e-3`` and ``3e-4``), timed from the
``Explorer`` to the exported plan::

    ex = Explorer(model, inputs); ex.settings = Settings(enable_autocast=True, autocast_low_precision_type=fp16)
    result = ex.search(inputs, budget=budget, backend="tensorrt", compile_options=..., max_probes=4)
    ex.export_settings(out / "<model>_<budget>.json")

The encoder cannot be built under Torch-TensorRT's autocast (it casts the integer token ids), so its plans are built
as cast graphs (``compile_options={"build": "cast_graph"}``); a model whose autocast build fails is retried that way.
Every search starts from an empty compile cache (``--reuse`` keeps it: the second budget then takes the all-FP32
and all-low engines built for the first, and the ``cached`` count says so). ``--strict-fp32`` turns TF32 off for
the PyTorch reference and the engines (``disable_tf32=True``): the FP32 floor then drops from TF32's ~3e-4 on
ResNet-50 to FP32 rounding.

Prints and writes (``--out``: ``search_live.md`` and ``search_live.json``, rewritten after every search, so a run
stopped by its time limit keeps what it finished) one row per search: wall time, compiles (total / beyond all-FP32
and all-low), exclusions, measured error, within budget or the floor, the all-FP32, all-FP16 and chosen latencies
(timed in turns) and the share of all-FP16's time saving kept; then, per plan compiled on the backend, the latency
and error predicted before it was built against those measured. ``--small`` runs tiny models with the PyTorch backend
on the CPU (the test suite's check of this script).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
import traceback
import warnings
from pathlib import Path
from typing import Any

import torch
from _common import build_model, fmt, markdown_table, tensorrt_versions

from mixprec_explorer import Explorer, Settings, SettingsWarning
from mixprec_explorer.errors import CompileFailure
from mixprec_explorer.search import DEFAULT_MAX_PROBES

MODELS = ("resnet50", "encoder", "vit_b_16")
T0 = time.time()


def say(text: str) -> None:
    print(f"[{time.time() - T0:6.1f} s] {text}", flush=True)


def draw_zero_layers(model: torch.nn.Module) -> None:
    """Draw every all-zero linear weight like a linear layer's (normal, std 0.02): torchvision zero-initialises ViT's
    classification head, which makes every output 0 and every error 0/0."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.Linear) and not module.weight.any():
                torch.nn.init.normal_(module.weight, std=0.02)


def versions_line(backend: str) -> dict[str, str]:
    """Device and library versions, as the other GPU scripts report them."""
    out = {"python": platform.python_version(), "torch": torch.__version__}
    if torch.cuda.is_available():
        out.update(gpu=torch.cuda.get_device_name(0), cuda=str(torch.version.cuda))
    else:
        out["cpu"] = platform.processor() or platform.machine()
    if backend == "tensorrt":
        out.update(tensorrt_versions())
    try:
        import torchvision

        out["torchvision"] = torchvision.__version__
    except Exception:  # noqa: BLE001 - the small run needs none
        pass
    return out


# -- one search ---------------------------------------------------------------------------------------------------
def run_one(name: str, model: torch.nn.Module, inputs: tuple[torch.Tensor, ...], budget: float,
            args: argparse.Namespace, options: dict[str, Any]) -> dict[str, Any]:
    """Explorer to exported plan for one budget; the row and its backend plans."""
    from mixprec_explorer import backends

    if not args.reuse:
        backends.clear_cache()
    started = time.time()
    ex = Explorer(model, inputs)
    captured_s = time.time() - started
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SettingsWarning)  # the encoder's integer casts: built as a cast graph
        ex.settings = Settings(enable_autocast=True, autocast_low_precision_type=torch.float16)
    result = ex.search(inputs, budget=budget, backend=args.backend, device=args.device, isolate=args.isolate,
                       compile_options=options, max_probes=args.max_probes, progress=False)
    path = args.out / f"{name}_{budget:g}.json"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SettingsWarning)
        ex.export_settings(path)
    wall = time.time() - started
    c = result.confirmed
    fp32, low, mine = ((c.get(k) or {}).get("latency_ms") for k in ("fp32", "all_low", "chosen"))
    row = {
        "model": name, "budget": budget, "wall_s": wall, "capture_s": captured_s, "build": options.get("build", "autocast"),
        "compiles": result.compiles, "beyond": result.compiles_beyond_calibration, "cached": result.compiles_reused,
        "exclusions": [e.value for e in result.exclusions], "forward_error": result.error,
        "measured_error": (c.get("chosen") or {}).get("error"), "within_budget": result.within_budget,
        "reachable": result.reachable, "floor_error": result.floor_error, "floor_plan": result.floor_plan,
        "fp32_ms": fp32, "all_low_ms": low, "chosen_ms": mine,
        "time_saved_share": result.time_saved_share(), "exported": path.name,
        "decisions": result.decisions(), "explain": result.explain(),
        "plans": [{"label": p.label, "role": p.role, "exclusions": p.exclusions, "forward_error": p.forward_error,
                   "predicted_error": p.predicted_error, "measured_error": p.measured_error,
                   "predicted_ms": p.predicted_latency_ms, "measured_ms": p.measured_latency_ms}
                  for p in result.backend_plans],
    }
    return row


def run_model(name: str, args: argparse.Namespace, budgets: list[float], rows: list[dict[str, Any]],
              write) -> None:
    """Both budgets of one model; a failure is a row with its traceback, and the next model goes on."""
    try:
        say(f"{name}: building the model")
        model, inputs = build_model(name, small=args.small, batch=args.batch)
        draw_zero_layers(model)
        model, inputs = model.to(args.device), tuple(x.to(args.device) for x in inputs)
    except Exception as err:  # noqa: BLE001 - one model's failure must not stop the others
        traceback.print_exc()
        for budget in budgets:
            rows.append({"model": name, "budget": budget, "failed": f"{type(err).__name__}: {err}"[:500],
                         "trace": traceback.format_exc()[-3000:]})
        write()
        return
    options: dict[str, Any] = {"disable_tf32": True} if args.strict_fp32 and args.backend == "tensorrt" else {}
    if args.backend == "tensorrt" and name == "encoder":
        options["build"] = "cast_graph"  # autocast casts the encoder's integer indices (README, "A live engine")
    for budget in budgets:
        if time.time() - T0 > args.budget_s:
            rows.append({"model": name, "budget": budget, "failed": f"skipped: past the {args.budget_s:.0f} s budget"})
            write()
            continue
        say(f"{name} @ {budget:g}: search on {args.backend} ({options.get('build', 'default build')})")
        try:
            try:
                row = run_one(name, model, inputs, budget, args, options)
            except CompileFailure as err:
                if options.get("build") == "cast_graph" or args.backend != "tensorrt":
                    raise
                traceback.print_exc()
                say(f"{name}: the autocast build failed ({str(err).splitlines()[0][:160]}); again as a cast graph")
                options["build"] = "cast_graph"
                row = run_one(name, model, inputs, budget, args, options)
        except Exception as err:  # noqa: BLE001 - one model's failure must not stop the others
            traceback.print_exc()
            row = {"model": name, "budget": budget, "failed": f"{type(err).__name__}: {err}"[:500],
                   "trace": traceback.format_exc()[-3000:]}
        rows.append(row)
        if "failed" not in row:
            say(f"{name} @ {budget:g}: {row['wall_s']:.1f} s, {row['compiles']} compiles ({row['beyond']} beyond, "
                f"{row['cached']} cached), {len(row['exclusions'])} exclusions, measured {fmt(row['measured_error'])}"
                f", {'within budget' if row['within_budget'] else 'NOT within budget'}, "
                f"time saved share {fmt(row['time_saved_share'])}")
        write()
    del model
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


# -- the report -----------------------------------------------------------------------------------------------------
def report(rows: list[dict[str, Any]], versions: dict[str, str], args: argparse.Namespace) -> str:
    lib = ", ".join(f"{k} {v}" for k, v in versions.items() if k not in ("gpu", "cpu"))
    device = versions.get("gpu") or versions.get("cpu", "?")
    lines = [f"Device: {device}; {lib}; backend {args.backend}; batch {args.batch if not args.small else 2}"
             f"{' (--small: tiny models on the CPU)' if args.small else ''}"
             f"{'; strict FP32 (TF32 off in the reference and the engines)' if args.strict_fp32 else '; TF32 allowed'}"
             f"; compile cache {'kept between searches' if args.reuse else 'emptied before each search'}"
             f"; one batch of inputs; max_probes "
             f"{args.max_probes}; error: relative L2 of the outputs against the FP32 program in PyTorch; latency: "
             "median of 30 runs timed in turns (all-FP32, all-FP16 and every plan the search built); wall time from "
             f"the Explorer to the exported plan; total {time.time() - T0:.0f} s.", ""]
    table = []
    for r in rows:
        if "failed" in r:
            table.append({"model": r["model"], "budget": f"{r['budget']:g}", "wall s": "-",
                          "compiles (total / beyond FP32+all-low)": "-", "exclusions": "-", "measured error": "-",
                          "within budget / floor": f"failed: {r['failed'][:200]}", "FP32 ms": "-", "all-FP16 ms": "-",
                          "chosen ms": "-", "share of time saved": "-"})
            continue
        verdict = "yes" if r["within_budget"] else (
            f"NOT reachable: floor {fmt(r['floor_error'])} ({r['floor_plan']})" if not r["reachable"]
            else f"no: floor {fmt(r['floor_error'])} ({r['floor_plan']})")
        table.append({
            "model": r["model"] + (" (cast graph)" if r["build"] == "cast_graph" else ""), "budget": f"{r['budget']:g}",
            "wall s": r["wall_s"],
            "compiles (total / beyond FP32+all-low)": f"{r['compiles']} / {r['beyond']}"
            + (f" ({r['cached']} cached)" if r["cached"] else ""),
            "exclusions": len(r["exclusions"]), "measured error": fmt(r["measured_error"]),
            "within budget / floor": verdict, "FP32 ms": fmt(r["fp32_ms"], ".4g"), "all-FP16 ms": fmt(r["all_low_ms"], ".4g"),
            "chosen ms": fmt(r["chosen_ms"], ".4g"),
            "share of time saved": fmt(r["time_saved_share"], ".1%")})
    if table:
        lines += markdown_table(table, list(table[0]))
    lines += ["", "Share of time saved: the share of all-FP16's time saving the plan keeps, (FP32 - chosen) / "
              "(FP32 - all-FP16); 0 for an all-FP32 plan.", "",
              "Every plan built on the backend, predicted before it was built against measured (the calibration plans "
              "all-FP32 and all-low are what the model is built from: their predicted latency is their own timing "
              "before the search, against their timing at confirmation):", ""]
    plans = []
    for r in rows:
        for p in r.get("plans", []):
            pct = (100 * (p["predicted_ms"] - p["measured_ms"]) / p["measured_ms"]
                   if p["predicted_ms"] is not None and p["measured_ms"] else None)
            ratio = (p["predicted_error"] / p["measured_error"] if p["predicted_error"] is not None
                     and p["measured_error"] else None)
            plans.append({"model": r["model"], "budget": f"{r['budget']:g}", "plan": p["label"],
                          "exclusions": p["exclusions"], "predicted ms": fmt(p["predicted_ms"], ".4g"),
                          "measured ms": fmt(p["measured_ms"], ".4g"), "latency err": fmt(pct, "+.1f") + " %"
                          if pct is not None else "-", "forward-pass error": fmt(p["forward_error"]),
                          "predicted error": fmt(p["predicted_error"]), "measured error": fmt(p["measured_error"]),
                          "error ratio": fmt(ratio, ".2f")})
    if plans:
        lines += markdown_table(plans, list(plans[0]))
    lines += ["", "Exclusions and how each plan was reached:", ""]
    for r in rows:
        if "failed" in r:
            lines.append(f"* {r['model']} @ {r['budget']:g}: failed: {r['failed'][:300]}")
            continue
        lines.append(f"* {r['model']} @ {r['budget']:g} (exported to `{r['exported']}`): "
                     + (", ".join(f"`{e}`" for e in r["exclusions"]) or "no exclusions"))
        lines += [f"  * {d}" for d in r["decisions"]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="run.py search-live", description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated: built-in examples or zoo names")
    parser.add_argument("--budgets", default="1e-3,3e-4", help="comma-separated relative L2 budgets")
    parser.add_argument("--out", type=Path, default=Path("out") / "search")
    parser.add_argument("--backend", default=None, help="default: tensorrt, or torch with --small")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--max-probes", type=int, default=DEFAULT_MAX_PROBES)
    parser.add_argument("--budget-s", type=float, default=480.0, help="start no search after this many seconds")
    parser.add_argument("--isolate", action="store_true", help="compile in the worker process (default: in this one)")
    parser.add_argument("--reuse", action="store_true", help="keep the compile cache between searches")
    parser.add_argument("--strict-fp32", action="store_true", help="TF32 off in the reference and the engines")
    parser.add_argument("--small", action="store_true", help="tiny models, PyTorch eager backend, on the CPU")
    parser.add_argument("--device", default=None, help="default: cuda, or cpu with --small")
    args = parser.parse_args(argv)
    args.device = args.device or ("cpu" if args.small else "cuda")
    args.backend = args.backend or ("torch" if args.small else "tensorrt")
    args.out.mkdir(parents=True, exist_ok=True)
    if args.strict_fp32:  # the reference (and PyTorch plans) in strict FP32 too
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    versions = versions_line(args.backend)
    say("versions: " + json.dumps(versions))
    budgets = [float(b) for b in args.budgets.split(",")]
    rows: list[dict[str, Any]] = []

    def write() -> None:
        text = report(rows, versions, args)
        (args.out / "search_live.md").write_text(text)
        (args.out / "search_live.json").write_text(json.dumps(
            {"args": {k: str(v) for k, v in vars(args).items()}, "versions": versions, "rows": rows},
            indent=1, default=str))

    for name in args.models.split(","):
        run_model(name, args, budgets, rows, write)
    write()
    print(report(rows, versions, args), flush=True)
    return 0
