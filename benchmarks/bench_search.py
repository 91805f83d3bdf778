"""Search benchmark: sensitivity and search time, evaluations against bisection, compiles, speedup retained.

Run: ``python benchmarks/run.py search [--models resnet50,encoder] [--budgets 1e-3,1e-2] [--small] [--mode M]``.
On a GPU it uses the PyTorch backend in compiled mode (FP16); on CPU eager mode unless ``--mode compiled`` (BF16);
``--small`` takes the models' tiny CPU sizes. Models: the built-in examples or any zoo name.
Prints one table (the compile column: distinct plans compiled on the backend per search, in total and beyond the
all-FP32 and all-low calibration plans); ``--markdown FILE`` also writes it.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from _common import build_model, fmt, machine

from mixprec_explorer import Explorer, Settings
from mixprec_explorer.analysis import PlanEvaluator, PlanRunner
from mixprec_explorer.search import DEFAULT_MAX_PROBES
from mixprec_explorer.settings import module_pattern


def bisection_evaluations(ex: Explorer, inputs: tuple, budget: float, low: torch.dtype) -> tuple[int, int]:
    """Polygraphy-style: keep the first K modules (graph order) in FP32, bisect on K; (evaluations, K)."""
    order = list(dict.fromkeys(ex.nodes[n].module for n in ex.nodes if ex.nodes[n].kind == "call_function"))
    base = Settings(enable_autocast=True, autocast_low_precision_type=low)
    ev = PlanEvaluator(ex, PlanRunner(ex, [inputs]), "rel_l2")

    def error(k: int) -> float:
        return ev.error(base.replace(autocast_excluded_nodes=frozenset(module_pattern(m) for m in order[:k])))

    lo, hi = 0, len(order)
    while lo < hi:
        mid = (lo + hi) // 2
        if error(mid) <= budget:
            hi = mid
        else:
            lo = mid + 1
    return ev.count, lo


def run(name: str, small: bool, budgets: list[float], device: str, mode: str, low: torch.dtype) -> list[dict]:
    rows = []
    for budget in budgets:
        start = time.perf_counter()
        model, inputs = build_model(name, small=small, batch=32)
        model = model.to(device)
        inputs = tuple(x.to(device) for x in inputs)
        ex = Explorer(model, inputs)
        ex.settings = Settings(enable_autocast=True, autocast_low_precision_type=low)
        t0 = time.perf_counter()
        sens = ex.sensitivity(inputs, progress=False)
        sens_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            result = ex.search(inputs, budget=budget, backend="torch", device=device, compile_options={"mode": mode},
                               state_path=Path(tmp) / "state.json", progress=False, max_probes=DEFAULT_MAX_PROBES)
            ex.export_settings(Path(tmp) / "plan.json")
        search_s = time.perf_counter() - t0
        total_s = time.perf_counter() - start
        bis_evals, bis_k = bisection_evaluations(ex, inputs, budget, low)
        c = result.confirmed
        rows.append({
            "model": name, "budget": budget, "nodes": len(ex.plan()),
            "sensitivity_s": sens_s, "naive/ours evals": sens.naive_evaluations / max(sens.nodes_evaluated, 1),
            "search_s": search_s, "our evals": result.forward_evaluations,
            "compiles (total / beyond FP32+all-low)": f"{result.compiles} / {result.compiles_beyond_calibration}"
            + (f" ({result.compiles_reused} cached)" if result.compiles_reused else ""),
            "bisection evals": bis_evals, "bisection K": bis_k,
            "exclusions": len(result.exclusions), "error": result.error,
            "measured error": (c.get("chosen") or {}).get("error"),
            "within budget / floor": "yes" if result.within_budget else
            f"no (floor {result.floor_error:.3g}{'' if result.reachable else ', unreachable'})",
            "speedup": c.get("speedup_over_fp32"), "all-low speedup": c.get("all_low_speedup"),
            "time saved share": result.time_saved_share(), "total_s": total_s,
            "_detail": f"{name} at {budget:g}: " + (", ".join(f"`{e.value}`" for e in result.exclusions) or "none")
                       + "".join(f"; {s.action}" for s in result.steps if s.action.startswith(("bisect", "unreach")))
                       + "".join(f"; {p.label}: predicted {p.predicted_error:.3g}, measured {p.measured_error:.3g}"
                                 for p in result.backend_plans if p.role == "probe" and p.predicted_error is not None),
        })
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="run.py search", description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet50,encoder")
    parser.add_argument("--budgets", default="1e-3,1e-2")
    parser.add_argument("--small", action="store_true", help="the models' tiny CPU sizes")
    parser.add_argument("--mode", choices=("eager", "compiled"), help="torch backend mode (default: compiled on a "
                        "GPU, eager on a CPU)")
    parser.add_argument("--markdown")
    args = parser.parse_args(argv)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    mode = args.mode or ("compiled" if device == "cuda" else "eager")
    low = torch.float16 if device == "cuda" else torch.bfloat16
    budgets = [float(b) for b in args.budgets.split(",")]
    rows = []
    for name in args.models.split(","):
        rows += run(name, args.small, budgets, device, mode, low)
    header = [k for k in rows[0] if not k.startswith("_")] if rows else []
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(row[k]) for k in header) + " |" for row in rows]
    lines += ["", "Exclusions chosen:", ""] + [f"* {row['_detail']}" for row in rows]
    text = f"Device: {machine()}; backend torch ({mode}), low type {low}.\n\n" + "\n".join(lines)
    print(text)
    if args.markdown:
        Path(args.markdown).write_text(text + "\n")
    return 0
