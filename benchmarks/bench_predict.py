"""Prediction benchmark: what a click costs, ``ex.predict()`` after a one-node change, on CPU.

Run: ``python benchmarks/run.py predict [--quick] [--clicks N] [--markdown FILE]``. Prints one table. Per graph:
the predictor is calibrated for real (all-FP32 and all-FP16 profiles on the PyTorch eager backend, on CPU, and
sensitivity over a sample of 64 nodes: it leaves the tables their full size and keeps the run short),
then each click toggles one node's module exclusion, as a click in the widget does, and asks for the prediction.
Clicks accumulate and every one makes a plan not seen before (no cache answers). ``click_ms`` is the median over
``--clicks`` clicks of ``ex.toggle(node)`` + ``ex.predict()``; ``toggle_ms`` the explorer's part (settings checked,
new plan), ``predict_ms`` the prediction given the plan (the model's O(nodes) part); ``tables_ms`` the one-off
table build after a calibration. The issue's target: ``click_ms`` <= 20 ms on a 2,000-node graph.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
import warnings

import torch
from _common import machine as this_machine
from _common import markdown_table

from mixprec_explorer import Explorer, Settings, SettingsWarning
from mixprec_explorer.examples import layer_stack, resnet50, transformer_encoder
from mixprec_explorer.predict import measure_calibration
from mixprec_explorer.settings import module_pattern

TARGET_MS = 20.0


def bench(name: str, model: torch.nn.Module, inputs: tuple, clicks: int, sample: int | None) -> dict[str, object]:
    ex = Explorer(model, inputs, settings=Settings(enable_autocast=True, autocast_low_precision_type=torch.float16))
    ops = [n for n, i in ex.nodes.items() if i.kind == "call_function" and i.module]
    start = time.perf_counter()
    measure_calibration(ex, backend="torch", isolate=False, runs=10, sensitivity=False)
    nodes = random.Random(1).sample(ops, min(sample, len(ops))) if sample else None
    ex.sensitivity(nodes=nodes, progress=False)
    calibrate_s = time.perf_counter() - start
    start = time.perf_counter()
    first = ex.predict()  # builds the tables
    tables_ms = (time.perf_counter() - start) * 1e3
    assert first.latency_ms is not None and first.error is not None, first.statement
    rng = random.Random(0)
    click, toggle, predict = [], [], []
    seen = {ex.settings}
    while len(click) < clicks:
        target = rng.choice(ops)
        if ex.settings.replace(autocast_excluded_nodes=ex.settings.autocast_excluded_nodes
                               ^ {module_pattern(ex.nodes[target].module)}) in seen:
            continue  # a plan seen before would come from the caches: every click here is a new plan
        start = time.perf_counter()
        ex.toggle(target)  # the explorer's own part: settings checked, new plan made
        middle = time.perf_counter()
        prediction = ex.predict()
        end = time.perf_counter()
        assert prediction.latency_ms is not None and prediction.error is not None
        seen.add(ex.settings)
        click.append(end - start)
        toggle.append(middle - start)
        predict.append(end - middle)
    return {"graph": name, "nodes": len(ex.nodes), "calibrate_s": calibrate_s, "tables_ms": tables_ms,
            "click_ms": statistics.median(click) * 1e3, "p90_click_ms": sorted(click)[int(0.9 * len(click))] * 1e3,
            "toggle_ms": statistics.median(toggle) * 1e3, "predict_ms": statistics.median(predict) * 1e3,
            "within_target": "yes" if statistics.median(click) * 1e3 <= TARGET_MS else "no"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="run.py predict", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the 2,000-node stack only")
    parser.add_argument("--clicks", type=int, default=200)
    parser.add_argument("--markdown", help="also write the table as markdown to this file")
    args = parser.parse_args(argv)
    cases = [("stack ~2,000", *layer_stack(nodes=2000), 64)]
    if not args.quick:
        cases += [("ResNet-50 (batch 1)", *resnet50(), 64), ("encoder 12 layers (batch 1)", *transformer_encoder(), 64)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SettingsWarning)  # the encoder's integer casts (autocast), said once
        rows = [bench(name, model, inputs, args.clicks, sample) for name, model, inputs, sample in cases]
    header = ["graph", "nodes", "calibrate_s", "tables_ms", "click_ms", "p90_click_ms", "toggle_ms", "predict_ms",
              "within_target"]
    lines = markdown_table(rows, header)
    machine = this_machine()
    text = (f"Machine: {machine}; click = toggle one node's module + ex.predict(), median of {args.clicks} "
            f"(target <= {TARGET_MS:g} ms on the 2,000-node graph).\n\n" + "\n".join(lines) + "\n")
    print(text)
    if args.markdown:
        from mixprec_explorer.settings import write_atomic

        write_atomic(args.markdown, text)
    return 0
