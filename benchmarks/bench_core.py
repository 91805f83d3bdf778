"""Core benchmark: capture overhead (vs Google Model Explorer's adapter), full plan, toggle-to-new-plan.

Run: ``python benchmarks/run.py core [--quick] [--markdown FILE]``. Prints one table; medians of
several runs on this machine. torch.export itself is timed once per model and reported apart: both
tools start from the same ExportedProgram.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from _common import machine as this_machine
from _common import markdown_table

from mixprec_explorer import Explorer, Settings
from mixprec_explorer.capture import capture
from mixprec_explorer.examples import layer_stack, resnet50, transformer_encoder
from mixprec_explorer.policy import Policy


def median_s(fn: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def peer_convert(ep: torch.export.ExportedProgram) -> Callable[[], object] | None:
    try:
        from model_explorer.pytorch_exported_program_adapter_impl import PytorchExportedProgramAdapterImpl
    except ImportError:
        return None
    return lambda: PytorchExportedProgramAdapterImpl(ep, {"const_element_count_limit": 16}).convert()


def bench(name: str, model: torch.nn.Module, inputs: tuple, runs: int) -> dict[str, object]:
    start = time.perf_counter()
    ep = torch.export.export(model, inputs)
    export_s = time.perf_counter() - start
    capture_s = median_s(lambda: capture(ep, inputs), runs)
    peer = peer_convert(ep)
    peer_s = median_s(peer, runs) if peer else float("nan")
    ex = Explorer(ep, inputs)
    ex.calibrate([inputs])
    auto = Settings(enable_autocast=True, autocast_low_precision_type=torch.float16)
    ex.settings = auto
    plan_s = median_s(lambda: Policy(ex.captured, ex.calibration).plan(auto), runs)
    ex.plan()
    targets = [n for n, i in ex.nodes.items() if i.kind == "call_function" and i.module][:: max(1, len(ex.nodes) // 7)]
    toggles = []
    for target in targets[:7]:
        start = time.perf_counter()
        ex.toggle(target)
        ex.plan()
        toggles.append(time.perf_counter() - start)
    return {
        "graph": name,
        "nodes": len(ex.nodes),
        "export_s": export_s,
        "capture_ms": capture_s * 1e3,
        "peer_ms": peer_s * 1e3,
        "ratio": capture_s / peer_s if peer else float("nan"),
        "plan_ms": plan_s * 1e3,
        "toggle_ms": statistics.median(toggles) * 1e3,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="run.py core", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip the 10,000-node graph and the big models")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--markdown", help="also write the table as markdown to this file")
    args = parser.parse_args(argv)
    cases = [("stack ~100", *layer_stack(100)), ("stack ~1,000", *layer_stack(1000)),
             ("stack ~2,000", *layer_stack(2000))]
    if not args.quick:
        cases += [("stack ~10,000", *layer_stack(10000)), ("ResNet-50", *resnet50()),
                  ("encoder 12 layers", *transformer_encoder())]
    rows = [bench(name, model, inputs, args.runs) for name, model, inputs in cases]
    header = ["graph", "nodes", "export_s", "capture_ms", "peer_ms", "ratio", "plan_ms", "toggle_ms"]
    lines = markdown_table(rows, header)
    machine = this_machine()
    try:
        from importlib.metadata import version

        import model_explorer  # noqa: F401

        machine += f", ai-edge-model-explorer {version('ai-edge-model-explorer')}"
    except ImportError:
        machine += ", ai-edge-model-explorer not installed (peer columns are nan)"
    text = (f"Machine: {machine}; median of {args.runs} runs (export: 1 run; toggle: median of 7 toggles).\n\n"
            + "\n".join(lines) + "\n")
    print(text)
    if args.markdown:
        from mixprec_explorer.settings import write_atomic

        write_atomic(args.markdown, text)
    return 0
