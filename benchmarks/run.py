"""Every benchmark behind one command: ``python benchmarks/run.py SUBCOMMAND [OPTIONS]``; each prints one table.

``python benchmarks/run.py`` lists the subcommands; ``python benchmarks/run.py SUBCOMMAND --help`` gives one's
options. Models are the built-in examples (``resnet50``, ``encoder``, ``stack``, the reference models) or any name
of the zoo (``mixprec_explorer.zoo``). Current figures: docs/benchmarks.md; full outputs: docs/results/.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

#: subcommand -> (its module in benchmarks/, what it measures and where it runs)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "core": ("bench_core", "capture (against Model Explorer's adapter), a full plan, a click's new plan; CPU"),
    "figure": ("bench_figure", "figure build, recolour, payload, a widget click; CPU"),
    "predict": ("bench_predict", "ex.predict() after a click on 2,000-node, ResNet-50 and encoder graphs; CPU"),
    "predict-live": ("bench_predict_live", "predicted against measured latency and error, plan by plan, on "
                     "TensorRT and compiled PyTorch; GPU (--small: CPU)"),
    "search": ("bench_search", "sensitivity and search against a bisection, on the PyTorch backend; GPU "
               "(--small: CPU)"),
    "search-live": ("bench_search_live", "the search end to end on the live engine: wall time, compiles, "
                    "speedup kept, floors; GPU (--small: CPU)"),
    "live": ("bench_live", "compile, profile, time attributed, dtype fidelity and error per plan on the live "
             "engine, beside eager and compiled PyTorch; GPU with TensorRT"),
    "suite": ("bench_suite", "five plans per model on the PyTorch backend (and TensorRT where it imports), with "
              "roofline shares; GPU (--small: CPU)"),
    "sweep": ("bench_sweep", "a sweep over all local GPUs (--executor local or ray) against a serial one; GPU "
              "(CPU: small)"),
    "zoo": ("zoo", "every zoo model through capture, plan, figure, export, compile, profile, accuracy; CPU"),
    "zoo-live": ("gpu_zoo", "the zoo on the live engine: FP32 and FP16 compiled, profiled, mapped; the search beside "
                 "single-block sweeps; GPU with TensorRT"),
    "diag-mask": ("gpu_diag_mask", "why padded-mask Hugging Face models err in FP32 on the live engine: the error by "
                  "sample and position, with a mask of ones and with decomposed attention; GPU with TensorRT"),
    "laptop": ("bench_laptop", "a laptop CPU's targets: sensitivity, search, profile, FP16 simulated against real "
               "FP16, the command line's start; CPU"),
    "reference": ("bench_reference", "the reference text's examples beside the recorded TensorRT-RTX engines, "
                  "layer by layer (recorded: no GPU)"),
}


def usage() -> str:
    """The subcommands, one a line."""
    width = max(map(len, SUBCOMMANDS))
    return ("usage: python benchmarks/run.py SUBCOMMAND [OPTIONS]   (SUBCOMMAND --help for its options)\n\n"
            + "\n".join(f"  {name:<{width}}  {what}" for name, (_, what) in SUBCOMMANDS.items()))


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand's ``main(argv)``; its exit status is the command's."""
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in SUBCOMMANDS:
        print(f"unknown subcommand {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    module = importlib.import_module(SUBCOMMANDS[name][0])
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
