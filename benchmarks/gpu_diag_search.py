"""Why does the search keep what it keeps? Its candidates, the plan each greedy rule built, and measured checks.

Run: ``python benchmarks/gpu_diag_search.py [--model encoder] [--budget 1e-3] [--top 25]`` on a CUDA GPU.
Prints the top candidates (gain, estimated cost), the plan of each greedy rule with its estimated latency, and,
for the chosen plan and every single candidate among the top ones, the error and latency the backend measures.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch

from mixprec_explorer import Explorer, Settings
from mixprec_explorer.analysis import Build, all_fp32_settings, backend_error
from mixprec_explorer.backends import time_plans
from mixprec_explorer.examples import resnet50, transformer_encoder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="encoder")
    parser.add_argument("--budget", type=float, default=1e-3)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--measure", type=int, default=10, help="measure this many single candidates on the backend")
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    mode = "compiled" if device == "cuda" else "eager"
    low = torch.float16 if device == "cuda" else torch.bfloat16
    make = {"resnet50": lambda: resnet50(batch=32), "encoder": lambda: transformer_encoder(batch=32)}
    if device == "cpu":
        make = {"encoder": lambda: transformer_encoder(2, 2, 16, 64, 4, 128)}
    model, inputs = make[args.model]()
    model, inputs = model.to(device), tuple(x.to(device) for x in inputs)
    ex = Explorer(model, inputs)
    ex.settings = base = Settings(enable_autocast=True, autocast_low_precision_type=low)
    build = Build("torch", device, True, {"mode": mode}, progress=False)
    with tempfile.TemporaryDirectory() as tmp:
        result = ex.search(inputs, budget=args.budget, backend="torch", state_path=Path(tmp) / "s.json",
                           progress=False, device=device, compile_options={"mode": mode})
        state = json.loads((Path(tmp) / "s.json").read_text())
    print(f"model {args.model}, budget {args.budget:g}, latency source {state['latency_source']}")
    print("\n| candidate | nodes | gain | alone low | est cost ms |\n|---|---|---|---|---|")
    cands = sorted(state["candidates"], key=lambda c: -c["gain"])[: args.top]
    for c in cands:
        print(f"| `{c['value']}` | {len(c['nodes'])} | {c['gain']:.3g} | {c['low_error']:.3g} | {c['cost_ms']:.3g} |")
    print("\n| rule | error (est) | latency (est ms) | exclusions |\n|---|---|---|---|")
    for rule, plan in state.get("plans", {}).items():
        print(f"| {rule} | {plan['error']:.3g} | {plan['latency_ms']:.4g} | {', '.join(plan['chosen'])} |")
    print("\nsteps: " + " / ".join(s.action for s in result.steps if not s.action.startswith("add")))
    print("confirmed:", {k: v for k, v in result.confirmed.items() if k != "backend"})
    # measured: the chosen plan and single exclusions, timed in turns with FP32 and all-low
    plans = {"fp32": all_fp32_settings(base), "all-low": base, "chosen": result.settings}
    for c in cands[: args.measure]:
        key = "op" if c["kind"] == "op" else "module"
        plans[f"{key} {c['value']}"] = base.replace(**(
            {"autocast_excluded_ops": frozenset({c["value"]})} if key == "op"
            else {"autocast_excluded_nodes": frozenset({c["value"]})}))
    compiled = {k: build.compile(ex, s) for k, s in plans.items()}
    errors = {k: backend_error(ex, s, inputs, "rel_l2", build) for k, s in plans.items()}
    times = dict(zip(compiled, time_plans(ex, list(compiled.values()), inputs, runs=30, progress=False)))
    fp32 = times["fp32"].median_ms
    print("\n| plan | measured error | median ms | p10-p90 ms | speedup over FP32 |\n|---|---|---|---|---|")
    for k in plans:
        t = times[k]
        print(f"| {k} | {errors[k]:.3g} | {t.median_ms:.3f} | {t.p10_ms:.3f}-{t.p90_ms:.3f} | {fp32 / t.median_ms:.2f} |")


if __name__ == "__main__":
    main()
