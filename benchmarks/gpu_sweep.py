"""Multi-GPU sweep: a frontier whose every point is compiled and timed, spread over all local GPUs.

Run: ``python benchmarks/gpu_sweep.py [--executor local|ray|serial] [--points 6]``; prints the points,
which GPU (process) measured each, and the wall time against a serial sweep of the same points.
"""

from __future__ import annotations

import argparse
import time

import torch

from mixprec_explorer import Explorer, Settings
from mixprec_explorer.examples import layer_stack, resnet50, transformer_encoder
from mixprec_explorer.sweep import run_sweep


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--executor", default="local")
    parser.add_argument("--points", type=int, default=6)
    parser.add_argument("--small", action="store_true")
    parser.add_argument("--model", default="resnet50", choices=["resnet50", "encoder"])
    parser.add_argument("--mode", default="eager", choices=["eager", "compiled"])
    args = parser.parse_args()
    cuda = torch.cuda.is_available() and not args.small
    if not cuda:
        model, inputs = layer_stack(24, 16)
    else:
        model, inputs = resnet50(batch=32) if args.model == "resnet50" else transformer_encoder(batch=32)
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
    timings = {}
    for executor in (args.executor, "serial"):
        start = time.perf_counter()
        results = run_sweep(ex, plans, backend="torch", executor=executor, runs=20, progress=False,
                            compile_options=options)
        timings[executor] = time.perf_counter() - start
        print(f"executor={executor}: {timings[executor]:.1f} s for {len(plans)} plans")
        for i, r in enumerate(results):
            print(f"  plan {i}: {r['latency_ms']:.3f} ms, rel_l2 {r['rel_l2_error']:.2e}, pid {r['pid']}, "
                  f"CUDA_VISIBLE_DEVICES={r['gpu'] or '-'}, {r['device']}")
    gpus = torch.cuda.device_count() if cuda else 0
    print(f"GPUs: {gpus}; speedup of {args.executor} over serial: {timings['serial'] / timings[args.executor]:.2f}x")


if __name__ == "__main__":
    main()
