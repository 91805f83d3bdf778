"""The zoo on the live engine: each model that captures, FP32 and FP16, compiled, profiled and mapped; and for a few
models the search at 1e-3 beside an exhaustive sweep of single-block exclusions measured on the engine (the oracle).

Run on a CUDA machine with torch-tensorrt-rtx: ``python benchmarks/gpu_zoo.py --out DIR [--only a,b] [--search a,b]``.
Writes ``zoo_live.md`` and ``zoo_live.json`` under ``--out`` after every row, so a cut run keeps what it measured.
Every compile takes the default path (``ex.compile(settings, backend="tensorrt")``: the worker process, the cast graph
where autocast would cast integer tensors); a failure is kept as its message, and a ``CompileFailure``'s suggested
exclusion is built once, as a user would paste it.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import torch
from _common import KEY_OPS, key_nodes, suggested_exclusions

from mixprec_explorer import Explorer, Settings, zoo
from mixprec_explorer.costs import op_basename

FP16 = Settings(enable_autocast=True, autocast_low_precision_type=torch.float16)
BUDGET = 1e-3



#: compile options a ``CompileFailure`` remedy may name, as written there (``decompose_attention=True``)
_OPTION_REMEDIES = {"decompose_attention=True": {"decompose_attention": True}}


def suggested_options(err: Exception) -> dict[str, Any]:
    """The compile options a ``CompileFailure`` remedy suggests (``ex.compile(..., decompose_attention=True)``)."""
    out: dict[str, Any] = {}
    for remedy in getattr(err, "remedies", ()):
        for text, options in _OPTION_REMEDIES.items():
            if text in remedy:
                out.update(options)
    return out


def measure(ex: Explorer, settings: Settings, inputs: tuple, runs: int, keep: Path | None = None,
            **options: Any) -> dict[str, Any]:
    """Compile (default path), profile and score one plan; the compiled plan under ``compiled``. Where a key node
    is left unmeasured, the profile folder is copied to ``keep`` (it maps again offline: ``ex.load_profile``)."""
    row: dict[str, Any] = {}
    start = time.perf_counter()
    compiled = ex.compile(settings, backend="tensorrt", device="cuda", **options)
    row["build_s"] = round(time.perf_counter() - start, 1)
    profile = ex.profile(compiled, inputs, runs=runs, warmup=5)
    row["e2e_ms"] = profile.end_to_end.median_ms
    row["attributed"] = profile.attributed_share
    latency = profile.node_latency_ms()
    key, missing = key_nodes(ex.nodes, latency)
    row["key_nodes"] = f"{len(key) - len(missing)}/{len(key)}"
    # which key nodes no layer was mapped to, by op, with a few names and modules (the folder stays on this machine)
    row["unmeasured_key_nodes"] = {op: sum(1 for n in missing if op_basename(ex.nodes[n].op) == op)
                                   for op in sorted({op_basename(ex.nodes[n].op) for n in missing})}
    row["unmeasured_examples"] = [f"{n} ({ex.nodes[n].module})" for n in missing[:6]]
    row["recorded_in"] = profile.recorded_in
    if missing and keep is not None and profile.recorded_in:
        shutil.copytree(profile.recorded_in, keep, dirs_exist_ok=True)
        row["kept_folder"] = keep.name
    plan, measured = ex.plan(settings), profile.node_dtypes()
    wrong = [f"{n} ({ex.nodes[n].module}): planned {plan[n].dtype}, engine {d}"
             for n, d in measured.items() if n in ex.nodes and op_basename(ex.nodes[n].op) in KEY_OPS
             and plan[n].dtype is not None and d is not None and plan[n].dtype != d]
    row["dtype_mismatches"] = wrong
    report = ex.accuracy(compiled, inputs)
    row["rel_l2"] = report.rel_l2_error
    row["notes"] = [*compiled.notes, *profile.notes, *getattr(report, "notes", ())]
    row["compiled"] = compiled
    return row


def plan_rows(name: str, ex: Explorer, inputs: tuple, runs: int, keep: Path | None = None) -> list[dict[str, Any]]:
    """FP32 and FP16 rows of one model (FP16 retried once with a failure's suggested exclusion); the profile folders
    of plans with unmeasured key nodes go under ``keep``."""
    rows: list[dict[str, Any]] = []
    queue: list[tuple[str, Settings, dict[str, Any]]] = [("FP32", Settings(), {}), ("FP16", FP16, {})]
    fp32_ms = None
    while queue:
        label, settings, options = queue.pop(0)
        print(f"-- {name}: {label}", flush=True)
        row: dict[str, Any] = {"model": name, "plan": label}
        try:
            folder = keep / re.sub(r"\W+", "_", f"{name}_{label}").strip("_") if keep is not None else None
            row.update(measure(ex, settings, inputs, runs, folder, **options))
        except Exception as err:
            row["error"] = f"{type(err).__name__}: {err}"[:600]
            row["trace"] = traceback.format_exc()[-1500:]
            remedy, suggested = suggested_exclusions(err), suggested_options(err)
            # an option first (it keeps the plan as it is), then the exclusion; each remedy once
            if suggested and any(options.get(k) != v for k, v in suggested.items()):
                shown = ", ".join(f"{k}={v!r}" for k, v in suggested.items())
                queue.insert(0, (f"{label}, remedy applied ({shown})", settings, {**options, **suggested}))
            elif remedy and not remedy <= settings.autocast_excluded_nodes:
                queue.insert(0, (f"{label}, remedy applied", settings.replace(
                    autocast_excluded_nodes=settings.autocast_excluded_nodes | remedy), options))
        row.pop("compiled", None)
        if label == "FP32" and "e2e_ms" in row:
            fp32_ms = row["e2e_ms"]
        if fp32_ms and "e2e_ms" in row:
            row["speedup"] = fp32_ms / row["e2e_ms"]
        rows.append(row)
    return rows


def blocks(ex: Explorer) -> list[str]:
    """The model's top-level blocks (module paths one or two levels down) as subtree regexes, 3 to 12 of them."""
    paths = [i.module for i in ex.nodes.values() if i.kind == "call_function" and i.module]
    levels = [sorted({".".join(p.split(".")[:depth]) for p in paths}) for depth in (1, 2, 3)]
    fitting = [found for found in levels if 3 <= len(found) <= 12]
    chosen = fitting[-1] if fitting else levels[0][:12]  # the finest split that still fits 12 compiles
    return ["^" + re.escape(b) + r"(\.|$)" for b in chosen]


def search_against_oracle(name: str, ex: Explorer, inputs: tuple) -> dict[str, Any]:
    """The search's plan at 1e-3 against every single-block exclusion measured on the engine."""
    from mixprec_explorer.backends import time_plans

    started = time.perf_counter()
    result = ex.search(inputs, budget=BUDGET, backend="tensorrt")
    out: dict[str, Any] = {"model": name, "search_s": round(time.perf_counter() - started, 1),
                           "search_settings": result.settings.to_json(), "within_budget": result.within_budget,
                           "reachable": result.reachable, "search_compiles": result.compiles,
                           "time_saved_share": result.time_saved_share()}
    plans = {"all-FP32": Settings(), "all-FP16": FP16, "search": result.settings}
    for regex in blocks(ex):
        plans[f"block {regex}"] = FP16.replace(autocast_excluded_nodes=frozenset({regex}))
    compiled, errors = {}, {}
    for label, settings in plans.items():
        try:
            compiled[label] = ex.compile(settings, backend="tensorrt", device="cuda")
            errors[label] = ex.accuracy(compiled[label], inputs).rel_l2_error
        except Exception as err:
            out.setdefault("oracle_failures", {})[label] = f"{type(err).__name__}: {err}"[:300]
            compiled.pop(label, None)
    labels = list(compiled)
    times = time_plans(ex, [compiled[k] for k in labels], inputs, runs=20)
    points = {k: {"ms": t.median_ms, "error": errors[k]} for k, t in zip(labels, times)}
    out["points"] = points
    if "search" in points:
        s = points["search"]
        # the same plan compiled twice (the search's plan is all-FP32 where the budget is out of reach) is no rival
        others = {k: p for k, p in points.items() if k != "search" and plans[k] != result.settings}
        feasible = {k: p for k, p in others.items() if p["error"] <= BUDGET}
        best = min(feasible.values(), key=lambda p: p["ms"]) if feasible else None
        dominated = any(p["ms"] < s["ms"] and p["error"] <= s["error"] for p in others.values())
        out["search_on_front"] = not dominated
        out["best_oracle_ms"] = best["ms"] if best else None
        out["search_vs_best_oracle"] = (s["ms"] / best["ms"]) if best else None
        # no measured plan meets the budget: the search's answer is right when it says so and keeps the floor
        out["unreachable"] = best is None and s["error"] > BUDGET
        floor = min(p["error"] for p in points.values())
        out["search_ok"] = (not dominated) or (best is not None and s["ms"] <= 1.05 * best["ms"]) or (
            out["unreachable"] and not result.reachable and s["error"] <= 1.05 * floor)
    return out


def write(out: Path, versions: dict[str, Any], rows: list[dict[str, Any]], searches: list[dict[str, Any]],
          args: argparse.Namespace) -> None:
    """``zoo_live.json`` and ``zoo_live.md`` (rewritten after every row)."""
    (out / "zoo_live.json").write_text(json.dumps({"versions": versions, "batch": args.batch, "size": args.size,
                                                   "runs": args.runs, "rows": rows, "searches": searches},
                                                  indent=1, default=str))
    lines = [f"Device: {versions['gpu']}; torch {versions['torch']}, torch_tensorrt {versions['torch_tensorrt']}, "
             f"{versions['tensorrt']}, CUDA {versions['cuda']}; zoo size {args.size}, batch {args.batch}; "
             f"median of {args.runs} runs. Every compile took the default path (worker process).", "",
             "| model | plan | build s | e2e ms | speedup | attributed | key nodes measured | dtype mismatches "
             "| rel L2 | notes |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['model']} | {r['plan']} | failed: {' '.join(r['error'].split())[:200]} | | | | | | | |")
            continue
        speedup = f"{r['speedup']:.2f}" if "speedup" in r else ""
        notes = "; ".join(n for n in r.get("notes", []) if "cast graph" in n or "underflow" in n.lower())[:160]
        lines.append(f"| {r['model']} | {r['plan']} | {r['build_s']} | {r['e2e_ms']:.3f} | {speedup} | "
                     f"{100 * (r['attributed'] or 0):.1f} % | {r['key_nodes']} | {len(r['dtype_mismatches'])} | "
                     f"{r['rel_l2']:.2e} | {notes} |")
    if searches:
        lines += ["", f"Search at {BUDGET:g} against single-block exclusions measured on the engine:", "",
                  "| model | search plan ms | error | best oracle ms within budget | ratio | on the front | ok |",
                  "|---|---|---|---|---|---|---|"]
        for s in searches:
            p = s.get("points", {}).get("search")
            if p is None:
                lines.append(f"| {s['model']} | failed: {s.get('error', 'search plan not measured')[:160]} | | | | | |")
                continue
            best = s.get("best_oracle_ms")
            ratio = s.get("search_vs_best_oracle")
            if s.get("unreachable"):
                lines.append(f"| {s['model']} | {p['ms']:.3f} | {p['error']:.2e} | none: no measured plan meets "
                             f"{BUDGET:g} (the search said reachable={s['reachable']}) | | {s.get('search_on_front')} "
                             f"| {s.get('search_ok')} |")
                continue
            lines.append(f"| {s['model']} | {p['ms']:.3f} | {p['error']:.2e} | "
                         f"{'' if best is None else f'{best:.3f}'} | {'' if ratio is None else f'{ratio:.3f}'} | "
                         f"{s.get('search_on_front')} | {s.get('search_ok')} |")
    lines.append("")
    for r in rows:
        for w in r.get("dtype_mismatches", [])[:5]:
            lines.append(f"- {r['model']} / {r['plan']}: {w}")
    (out / "zoo_live.md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/results"))
    parser.add_argument("--only", default="", help="comma-separated zoo names (default: every available one)")
    parser.add_argument("--search", default="", help="comma-separated zoo names to search and sweep")
    parser.add_argument("--size", default="real")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--deadline-s", type=float, default=540.0, help="start no model after this many seconds")
    parser.add_argument("--merge", type=Path, nargs="+", help="only join these runs' zoo_live.json into --out")
    parser.add_argument("--keep-unmapped", action="store_true",
                        help="copy the profile folder of every plan with an unmeasured key node to --out/unmapped/ "
                             "(gpu_run.sh packs it as one unmapped.tgz)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.merge:
        parts = [json.loads((p / "zoo_live.json").read_text()) for p in args.merge if (p / "zoo_live.json").is_file()]
        order = {n: i for i, n in enumerate(zoo.names())}
        rows = sorted((r for d in parts for r in d["rows"]), key=lambda r: order.get(r["model"], len(order)))
        searches = [s for d in parts for s in d["searches"]]
        write(args.out, parts[0]["versions"], rows, searches, args)
        print((args.out / "zoo_live.md").read_text())
        return 0
    from mixprec_explorer.backends.tensorrt import _load

    mods = _load()
    versions = {"torch": torch.__version__, "torch_tensorrt": mods.torch_tensorrt.__version__,
                "tensorrt": f"{mods.tensorrt._package_name} {mods.tensorrt.__version__}",
                "gpu": torch.cuda.get_device_name(0), "cuda": torch.version.cuda}
    print(json.dumps(versions), flush=True)
    names = args.only.split(",") if args.only else zoo.names(available=True)
    searched = set(args.search.split(",")) if args.search else set()
    rows: list[dict[str, Any]] = []
    searches: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    for name in names:
        if time.perf_counter() - t0 > args.deadline_s:
            rows.append({"model": name, "plan": "-", "error": "not run: the call's time ran out"})
            continue
        try:
            model, inputs = zoo.build(name, size=args.size, batch=args.batch, seed=0)
            model = model.cuda()
            inputs = tuple(x.cuda() if isinstance(x, torch.Tensor) else x for x in inputs)
            ex = Explorer(model, inputs)
        except Exception as err:
            rows.append({"model": name, "plan": "capture", "error": f"{type(err).__name__}: {err}"[:600]})
            write(args.out, versions, rows, searches, args)
            continue
        if name in searched:
            try:
                searches.append(search_against_oracle(name, ex, inputs))
            except Exception as err:
                searches.append({"model": name, "error": f"{type(err).__name__}: {err}"[:600],
                                 "trace": traceback.format_exc()[-1500:]})
        else:
            rows.extend(plan_rows(name, ex, inputs, args.runs, args.out / "unmapped" if args.keep_unmapped else None))
        write(args.out, versions, rows, searches, args)
        del ex, model
        torch.cuda.empty_cache()
    print((args.out / "zoo_live.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
