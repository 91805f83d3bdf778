"""Why BERT-base's cast graph in FP16 builds but gets no execution context on TensorRT-RTX: one build per variant.

Run on the lent GPU with torch-tensorrt-rtx importable: ``python benchmarks/gpu_diag_bert.py``. Each variant is the
cast-graph build of Hugging Face BERT-base (random weights, batch 32, sequence 128) with some modules kept in FP32;
a failure prints TensorRT's own error lines from Torch-TensorRT's log of that compile; a success prints the build
time, the end-to-end latency and the error against FP32 in PyTorch. Prints one markdown table at the end.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
import traceback
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gpu_live_engine import bert_base  # noqa: E402

from mixprec_explorer import Explorer, Settings, examples  # noqa: E402

FP16 = Settings(enable_autocast=True, autocast_low_precision_type=torch.float16)
TOP, EMB = "^bert$", r"^bert\.embeddings(\.|$)"
#: run 1 (docs/gpu/diag/bert_h200_run1.log): every FP16 variant of these failed at createExecutionContext with
#: "Myelin: cuDNN graph compilation failed"; FP32 built and ran
RUN1 = {
    "cast graph FP32 (no casts)": Settings(),
    "cast graph FP16": FP16,
    "cast graph FP16, ^bert$ in FP32 (the attention-mask nodes)": FP16.replace(autocast_excluded_nodes=frozenset({TOP})),
    "cast graph FP16, embeddings in FP32": FP16.replace(autocast_excluded_nodes=frozenset({EMB})),
    "cast graph FP16, ^bert$ and embeddings in FP32": FP16.replace(autocast_excluded_nodes=frozenset({TOP, EMB})),
    "cast graph FP16 + use_fp32_acc, ^bert$ and embeddings in FP32": FP16.replace(
        autocast_excluded_nodes=frozenset({TOP, EMB}), use_fp32_acc=True),
}
SDPA = "scaled_dot_product"  #: the fused attention op, whatever its aten overload after export


def variants(ex: Explorer, model: str, run: int) -> dict[str, tuple[Settings, dict]]:
    """Run 2: the attention op kept in FP32, or run in PyTorch (``torch_executed_ops``); run 3: bisect layer 0."""
    if model == "encoder":  # runs 1-4: built and profiled, then ex.accuracy failed on an aten.view (the explorer's
        # own FP32 program on CUDA, not use_fp32_acc: gpu_diag_fp32acc.py; fixed in torch_plan.load_module)
        return {"cast graph FP16 + use_fp32_acc": (FP16.replace(use_fp32_acc=True), {})}
    if run == 1:
        return {label: (s, {}) for label, s in RUN1.items()}
    if run == 4:  # run 3: layer 0 builds unless its attention.self or attention.output.dense is FP16: exclude those
        layer = r"^bert\.encoder\.layer\.\d+\.attention"
        attention, self_attn, dense = layer + r"(\.|$)", layer + r"\.self(\.|$)", layer + r"\.output\.dense$"
        return {
            "cast graph FP16, every layer's attention in FP32": (
                FP16.replace(autocast_excluded_nodes=frozenset({attention})), {}),
            "cast graph FP16, every attention.self and attention.output.dense in FP32": (
                FP16.replace(autocast_excluded_nodes=frozenset({self_attn, dense})), {}),
            "cast graph FP16, every attention.self in FP32": (
                FP16.replace(autocast_excluded_nodes=frozenset({self_attn})), {}),
        }
    if run == 3:  # run 2 failed with the attention op in FP32 or in PyTorch: one part of layer 0 low at a time
        parts = ["bert.encoder.layer.0", "bert.encoder.layer.0.attention.self", "bert.encoder.layer.0.attention.output",
                 "bert.encoder.layer.0.intermediate", "bert.encoder.layer.0.intermediate.dense",
                 "bert.encoder.layer.0.intermediate.intermediate_act_fn", "bert.encoder.layer.0.output",
                 "bert.encoder.layer.0.output.LayerNorm", "bert.encoder.layer.0.attention.output.LayerNorm"]
        only = {f"cast graph FP16 only in {p}": FP16.replace(
            autocast_excluded_nodes=frozenset({"^(?!" + re.escape(p) + r"(\.|$))"})) for p in parts}
        return {label: (s, {}) for label, s in only.items()}
    ops = sorted({info.op for info in ex.nodes.values() if SDPA in str(info.op)})
    print("attention ops in the graph:", ops, flush=True)
    fp32_attention = FP16.replace(autocast_excluded_ops=frozenset(ops))
    return {
        "cast graph FP16, attention op in FP32": (fp32_attention, {}),
        "cast graph FP16, attention op in PyTorch (torch_executed_ops)": (FP16, {"torch_executed_ops": set(ops)}),
        "cast graph FP16 + use_fp32_acc, attention op in FP32": (fp32_attention.replace(use_fp32_acc=True), {}),
    }


def trt_errors(message: str, limit: int = 25) -> list[str]:
    """TensorRT's error and warning lines in the Torch-TensorRT log the failure message points to."""
    found = re.search(r"log: (\S+torch_tensorrt_logging\.log)", message)
    if not found or not Path(found.group(1)).is_file():
        return ["(no Torch-TensorRT log)"]
    lines = Path(found.group(1)).read_text(errors="replace").splitlines()
    keep = [ln for ln in lines if re.search(r"\[E\]|\[W\]|ERROR|Error|error", ln)]
    return keep[-limit:] or lines[-limit:]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="comma-separated model names: bert, encoder")
    parser.add_argument("--run", type=int, default=2, help="1: the first run's variants; 2: the attention op's; "
                        "3: one part of layer 0 at a time; 4: every layer's failing parts in FP32")
    args = parser.parse_args()
    rows = []
    for model in ("bert", "encoder"):
        if args.only and model not in args.only.split(","):
            continue
        module, inputs = bert_base(32, 128) if model == "bert" else examples.transformer_encoder(batch=32, seq=128)
        ex = Explorer(module, inputs)
        for label, (settings, options) in variants(ex, model, args.run).items():
            print(f"== {model}: {label}", flush=True)
            row = {"model": model, "variant": label}
            start = time.perf_counter()
            try:
                compiled = ex.compile(settings, backend="tensorrt", device="cuda", isolate=False, build="cast_graph",
                                      **options)
                row["build_s"] = round(time.perf_counter() - start, 1)
                profile = ex.profile(compiled, inputs, runs=20)
                row["e2e_ms"] = round(profile.end_to_end.median_ms, 3)
                row["attributed"] = f"{profile.attributed_share:.1%}"
                row["rel_l2"] = f"{ex.accuracy(compiled, inputs).rel_l2_error:.2e}"
                dtypes = profile.node_dtypes()
                plan = ex.plan(settings)
                agree = sum(1 for n, d in dtypes.items() if n in plan and plan[n].dtype == d)
                row["dtype agrees"] = f"{agree}/{len(dtypes)}"
                row["result"] = "ok"
            except Exception as err:  # keep going: the next variant is the point
                row["build_s"] = round(time.perf_counter() - start, 1)
                message = f"{type(err).__name__}: {err}"
                row["result"] = message.splitlines()[0][:160]
                trace = traceback.format_exc()
                print(trace if args.run == 4 else trace[-1500:], flush=True)
                print("TensorRT says:\n  " + "\n  ".join(trt_errors(message)), flush=True)
            print(row, flush=True)
            rows.append(row)
    keys = ["model", "variant", "result", "build_s", "e2e_ms", "attributed", "dtype agrees", "rel_l2"]
    print("\n| " + " | ".join(keys) + " |\n|" + "---|" * len(keys))
    for row in rows:
        print("| " + " | ".join(str(row.get(k, "")) for k in keys) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
