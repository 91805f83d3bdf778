"""Which step leaves the encoder's FP32 program unrunnable on CUDA: capture, a cast-graph build, or use_fp32_acc.

Run on the lent GPU with torch-tensorrt-rtx importable: ``python benchmarks/gpu_diag_fp32acc.py``. Prints, after each
step (capture, compile, profile), the program's reshape and view counts and whether it runs on CUDA, then the
accuracy. Found (docs/gpu/diag/encoder_fp32acc_h200.log): capture itself, a view valid only for CPU strides; the
program runs since ``load_module`` turns a moved copy's views into reshapes.
"""

from __future__ import annotations

import sys

import torch

from mixprec_explorer import Explorer, Settings, examples
from mixprec_explorer.backends.torch_plan import load_module


def report(ex: Explorer, inputs, step: str) -> None:
    ops = [str(n.target) for n in ex.exported_program.graph.nodes if n.op == "call_function"]
    try:
        with torch.no_grad():
            load_module(ex.exported_program, "cuda")(*[x.cuda() for x in inputs])
        runs = "runs"
    except Exception as err:  # the point of the diagnosis
        runs = f"fails: {type(err).__name__}: {str(err).splitlines()[0][:120]}"
    print(f"after {step}: reshape {sum('reshape' in o for o in ops)}, view {sum(o.endswith('view.default') for o in ops)},"
          f" id(graph_module) {id(ex.exported_program.graph_module)}; the FP32 program {runs}", flush=True)


def main() -> int:
    module, inputs = examples.transformer_encoder(batch=32, seq=128)
    ex = Explorer(module, inputs)
    report(ex, inputs, "capture")
    for acc in (False, True):
        s = Settings(enable_autocast=True, autocast_low_precision_type=torch.float16, use_fp32_acc=acc)
        compiled = ex.compile(s, backend="tensorrt", device="cuda", isolate=False, build="cast_graph")
        report(ex, inputs, f"compile (use_fp32_acc={acc})")
        ex.profile(compiled, inputs, runs=5)
        report(ex, inputs, f"profile (use_fp32_acc={acc})")
        try:
            print("accuracy", ex.accuracy(compiled, inputs).rel_l2_error, flush=True)
        except Exception as err:  # the point of the diagnosis
            print("accuracy fails:", type(err).__name__, str(err).splitlines()[0][:160], flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
