"""Which FP16 plans of the encoder meet 1e-3 on the live engine? Hand-written plans, measured, to judge the search.

Run on a CUDA GPU with TensorRT-RTX: ``python benchmarks/gpu_diag_encoder_plans.py [--set blocks|ops|attention]``.
``blocks`` (the first set) keeps modules and op pairs in FP32; ``ops`` every op type but the matmuls, as PyTorch's
own autocast does, with and without attention and the head; ``attention`` whole attention blocks. Compiles each
plan as a cast graph on TensorRT (autocast cannot build the encoder) in the worker process, so a plan whose build
crashes is reported as such (TensorRT-RTX 1.4's builder segfaults on attention kept FP32 between FP16 matmuls),
then prints its relative L2 error against the FP32 model in PyTorch and its median latency (30 runs, plans timed
in turns) beside the all-FP32 and all-FP16 engines.
"""

from __future__ import annotations

import argparse

import torch

from mixprec_explorer import Explorer, Settings
from mixprec_explorer.analysis import Build, all_fp32_settings, backend_error, with_exclusions
from mixprec_explorer.backends import time_plans
from mixprec_explorer.errors import WorkerCrashed
from mixprec_explorer.examples import transformer_encoder

FP16 = Settings(enable_autocast=True, autocast_low_precision_type=torch.float16)
EMBED = ("^embed$", "^pos$", "^norm$", "^$")  # the root module's own nodes: the embeddings' add, x[:, 0]
ADD, LN, LINEAR = "torch.ops.aten.add.Tensor", "torch.ops.aten.layer_norm.default", "torch.ops.aten.linear.default"
GELU, EMB = "torch.ops.aten.gelu.default", "torch.ops.aten.embedding.default"
SDPA = "torch.ops.aten.scaled_dot_product_attention.default"


def layers(*index: int) -> list[str]:
    return [rf"^layers\.{i}(\.|$)" for i in index]


CALIBRATION = {"all-FP32": all_fp32_settings(FP16), "all-FP16": FP16}
BLOCKS = {
    "embedding path (embed, pos, norm)": with_exclusions(FP16, EMBED),
    "embedding path + head": with_exclusions(FP16, (*EMBED, "^head$")),
    "embedding path + layers.0": with_exclusions(FP16, (*EMBED, *layers(0))),
    "embedding path + layers.0-2": with_exclusions(FP16, (*EMBED, *layers(0, 1, 2))),
    "embedding path + layers.0-5": with_exclusions(FP16, (*EMBED, *layers(*range(6)))),
    "layers.6-11 + head": with_exclusions(FP16, (*layers(*range(6, 12)), "^head$")),
    "ops add + layer_norm": with_exclusions(FP16, (), (ADD, LN)),
    "embedding path + ops add + layer_norm": with_exclusions(FP16, EMBED, (ADD, LN)),
    "op linear": with_exclusions(FP16, (), (LINEAR,)),
    "every layer (search's first pick)": with_exclusions(FP16, (r"^layers(\.|$)",)),
}
OPS = {
    "ops add + layer_norm + embedding": with_exclusions(FP16, (), (ADD, LN, EMB)),
    "ops add + layer_norm + embedding + gelu": with_exclusions(FP16, (), (ADD, LN, EMB, GELU)),
    "ops add + layer_norm + embedding + gelu, head": with_exclusions(FP16, ("^head$",), (ADD, LN, EMB, GELU)),
    "ops add + layer_norm + embedding + gelu + attention (linear alone FP16)":
        with_exclusions(FP16, (), (ADD, LN, EMB, GELU, SDPA)),
    "ops add + layer_norm + embedding + attention": with_exclusions(FP16, (), (ADD, LN, EMB, SDPA)),
    "ops add + layer_norm + embedding + gelu, use_fp32_acc":
        with_exclusions(FP16, (), (ADD, LN, EMB, GELU)).replace(use_fp32_acc=True),
    "op attention": with_exclusions(FP16, (), (SDPA,)),
}
ATTENTION = (r"^layers\.\d+\.self_attn(\.|$)",)  # attention with its projections: FP32 attention amid FP16 crashes
ATTN = {
    "every self_attn + embedding path + ops add + layer_norm (FFN FP16)": with_exclusions(FP16, (*ATTENTION, *EMBED),
                                                                                           (ADD, LN)),
    "the same + head": with_exclusions(FP16, (*ATTENTION, *EMBED, "^head$"), (ADD, LN)),
    "every self_attn + ops add + layer_norm": with_exclusions(FP16, ATTENTION, (ADD, LN)),
    "every self_attn": with_exclusions(FP16, ATTENTION),
    "every layer + embedding path (head FP16)": with_exclusions(FP16, (r"^layers(\.|$)", *EMBED)),
}
SETS = {"blocks": BLOCKS, "ops": OPS, "attention": ATTN}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", choices=sorted(SETS), default="blocks", help="which plans (default: blocks)")
    parser.add_argument("--leave-out", default="", help="leave out plans whose name contains this text")
    args = parser.parse_args()
    plans = {k: s for k, s in {**CALIBRATION, **SETS[args.set]}.items() if not (args.leave_out and args.leave_out in k)}
    model, inputs = transformer_encoder(batch=32, seq=128)
    model, inputs = model.cuda(), tuple(x.cuda() for x in inputs)
    ex = Explorer(model, inputs)
    build = Build("tensorrt", "cuda", True, {"build": "cast_graph"}, progress=False)
    compiled, crashed = {}, {}
    for k, s in plans.items():
        try:
            compiled[k] = build.compile(ex, s)
        except WorkerCrashed as err:
            crashed[k] = str(err).splitlines()[0].split(": ", 1)[-1]
    errors = {k: backend_error(ex, plans[k], inputs, "rel_l2", build) for k in compiled}
    times = dict(zip(compiled, time_plans(ex, list(compiled.values()), inputs, runs=30, progress=False)))
    fp32, low = times["all-FP32"].median_ms, times["all-FP16"].median_ms
    print(f"device {torch.cuda.get_device_name(0)}, torch {torch.__version__}; encoder batch 32, seq 128")
    print("\n| plan | FP32 nodes | rel L2 | median ms | share of all-FP16 speedup kept |\n|---|---|---|---|---|")
    for k, why in crashed.items():
        print(f"| {k} | {sum(1 for a in ex.plan(plans[k]) if a.dtype == torch.float32)} | not built: {why} | | |")
    for k, s in plans.items():
        if k in crashed:
            continue
        ms = times[k].median_ms
        kept = sum(1 for a in ex.plan(s) if a.dtype == torch.float32)
        print(f"| {k} | {kept} | {errors[k]:.3g} | {ms:.3f} | {100 * (fp32 / ms) / (fp32 / low):.1f} % |")


if __name__ == "__main__":
    main()
