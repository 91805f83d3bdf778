"""Does a compiled PyTorch plan run slower once ``ex.profile`` has run torch.profiler in the same process?

Run on a CUDA GPU: ``python benchmarks/gpu_diag_after_profile.py``. Compiles the encoder (batch 32, sequence 128)
with ``torch.compile`` three times: all-FP16 twice (A, B) and with ``layers.0.linear2`` kept FP32 (C); times them
in turns (median of ``RUNS``), profiles A with ``ex.profile`` (torch.profiler with CUDA activity), and times all
three again. Prints one table: milliseconds before and after, and the profile's own end-to-end figure. ``ex.profile``
lets Kineto release CUPTI when it ends (``TEARDOWN_CUPTI=1`` unless set); run it with ``TEARDOWN_CUPTI=0`` too, to
see what CUPTI left attached after profiling costs every later run. Then a second table: all-FP32, A and C timed
alone (runs in a row), in turns of single runs (as ``time_plans`` did before), by ``time_plans`` (turns of short
blocks) and in single-run turns with a 50 ms pause before each run.
"""

from __future__ import annotations

import os
import random
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from mixprec_explorer import Explorer, Settings, examples  # noqa: E402
from mixprec_explorer.backends import run_here, time_plans  # noqa: E402
from mixprec_explorer.backends.timing import summarize_ms, time_runs  # noqa: E402

RUNS = 50


def main() -> None:
    model, inputs = examples.transformer_encoder(batch=32, seq=128)
    inputs = tuple(x.cuda() for x in inputs)
    ex = Explorer(model.cuda(), inputs)
    fp16 = Settings(enable_autocast=True, autocast_low_precision_type=torch.float16)
    mixed = fp16.replace(autocast_excluded_nodes=frozenset({r"^layers\.0\.linear2$"}))

    def build(settings: Settings):
        return ex.compile(settings, backend="torch", mode="compiled", device="cuda", isolate=False, progress=False)

    plans = {"A all-FP16": build(fp16), "B all-FP16 (never profiled)": build(fp16), "C linear2 FP32": build(mixed)}
    before = time_plans(ex, list(plans.values()), inputs, runs=RUNS, progress=False)
    profile = ex.profile(plans["A all-FP16"], inputs, runs=20, progress=False)
    after = time_plans(ex, list(plans.values()), inputs, runs=RUNS, progress=False)
    again = time_plans(ex, list(plans.values()), inputs, runs=RUNS, progress=False)
    kernels_ms = sum(x.latency_ms or 0.0 for x in profile.unattributed)
    print(f"TEARDOWN_CUPTI={os.environ.get('TEARDOWN_CUPTI', '(unset)')}, torch {torch.__version__}, "
          f"{torch.cuda.get_device_name(0)}; A's profile: end to end {profile.end_to_end.median_ms:.3f} ms, "
          f"kernels {kernels_ms:.3f} ms per run")
    print("| plan | before profiling ms | after ms | after, again ms |")
    print("|---|---|---|---|")
    for name, b, a, g in zip(plans, before, after, again):
        print(f"| {name} | {b.median_ms:.3f} | {a.median_ms:.3f} | {g.median_ms:.3f} |")

    trio = {"all-FP32": build(fp16.replace(autocast_excluded_nodes=frozenset({".*"}))),
            "A all-FP16": plans["A all-FP16"], "C linear2 FP32": plans["C linear2 FP32"]}

    def once(compiled) -> float:
        with torch.no_grad():
            return time_runs(lambda: run_here(ex, compiled, inputs), 1, torch.cuda.synchronize)[0]

    def single_turns(pause_s: float) -> dict[str, float]:
        """One run per plan per turn, a new order each turn (time_plans before blocks), after ``pause_s``."""
        order, times = random.Random(0), {name: list[float]() for name in trio}
        for turn in range(RUNS + 5):
            names = list(trio)
            order.shuffle(names)
            for name in names:
                time.sleep(pause_s)
                ms = once(trio[name])
                if turn >= 5:
                    times[name].append(ms)
        return {name: summarize_ms(t).median_ms for name, t in times.items()}

    alone = {name: summarize_ms([once(c) for _ in range(RUNS + 5)][5:]).median_ms for name, c in trio.items()}
    turns, paused = single_turns(0.0), single_turns(0.05)
    blocks = time_plans(ex, list(trio.values()), inputs, runs=RUNS, progress=False)
    print("| plan | alone, runs in a row ms | single runs in turns ms | time_plans (turns of blocks) ms | "
          "single runs in turns, 50 ms pause before each ms |")
    print("|---|---|---|---|---|")
    for name, block in zip(trio, blocks):
        print(f"| {name} | {alone[name]:.3f} | {turns[name]:.3f} | {block.median_ms:.3f} | {paused[name]:.3f} |")


if __name__ == "__main__":
    main()
