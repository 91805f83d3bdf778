"""Multi-GPU sweep: a frontier whose every point is compiled and timed, spread over all local GPUs.

Run: ``python benchmarks/run.py sweep [--executor local|ray|serial] [--points 6] [--model resnet50]``; prints the
points, which GPU (process) measured each, and the wall time against a serial sweep of the same points. Without a
GPU (or with ``--small``) the model's tiny size runs on the CPU.
"""

from __future__ import annotations

import argparse
import time

import torch
from _common import build_model, machine, markdown_table

from mixprec_explorer import Explorer, Settings
from mixprec_explorer.sweep import run_sweep


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="run.py sweep", description=__doc__.splitlines()[0])
    parser.add_argument("--executor", default="local")
    parser.add_argument("--points", type=int, default=6)
    parser.add_argument("--small", action="store_true")
    parser.add_argument("--model", default="resnet50", help="a built-in example or a zoo name")
    parser.add_argument("--mode", default="eager", choices=["eager", "compiled"])
    args = parser.parse_args(argv)
    cuda = torch.cuda.is_available() and not args.small
    model, inputs = build_model(args.model, small=not cuda, batch=32)
    if cuda:  # capture on the device the plans run on: attention graphs exported on CPU may not run on CUDA
        model, inputs = model.cuda(), tuple(x.cuda() for x in inputs)
    ex = Explorer(model, inputs)
    low = torch.float16 if cuda else torch.bfloat16
    base = Settings(enable_autocast=True, autocast_low_precision_type=low)
    modules = [m for m in ex.modules if m][: args.points - 1]
    plans = [base] + [base.replace(autocast_excluded_nodes=frozenset({f"^{m.replace('.', chr(92) + '.')}$"
                                                                       for m in modules[:k]}))
                      for k in range(1, len(modules) + 1)]
    options = {"mode": args.mode}
    timings, rows = {}, []
    for executor in (args.executor, "serial"):
        start = time.perf_counter()
        results = run_sweep(ex, plans, backend="torch", executor=executor, runs=20, progress=False,
                            compile_options=options)
        timings[executor] = time.perf_counter() - start
        rows += [{"executor": executor, "plan": i, "latency_ms": r["latency_ms"], "rel_l2": r["rel_l2_error"],
                  "pid": r["pid"], "CUDA_VISIBLE_DEVICES": r["gpu"] or "-", "device": r["device"]}
                 for i, r in enumerate(results)]
    gpus = torch.cuda.device_count() if cuda else 0
    print(f"Device: {machine()}; {gpus} GPUs; model {args.model}{'' if cuda else ' (small, CPU)'}, torch backend "
          f"({args.mode}); {len(plans)} plans; wall: " + ", ".join(f"{e} {t:.1f} s" for e, t in timings.items())
          + f"; speedup of {args.executor} over serial {timings['serial'] / timings[args.executor]:.2f}x\n")
    print("\n".join(markdown_table(rows, list(rows[0]))))
    return 0
