"""Which FP16 plans of the encoder meet 1e-3 on the live engine? Hand-written plans, measured, to judge the search.

Run on a CUDA GPU with TensorRT-RTX: ``python benchmarks/gpu_diag_encoder_plans.py``. Compiles each plan below as a
cast graph on TensorRT (autocast cannot build the encoder), then prints its relative L2 error against the FP32
model in PyTorch and its median latency (30 runs, plans timed in turns) beside the all-FP32 and all-FP16 engines.
"""

from __future__ import annotations

import torch

from mixprec_explorer import Explorer, Settings
from mixprec_explorer.analysis import Build, all_fp32_settings, backend_error, with_exclusions
from mixprec_explorer.backends import time_plans
from mixprec_explorer.examples import transformer_encoder

FP16 = Settings(enable_autocast=True, autocast_low_precision_type=torch.float16)
EMBED = ("^embed$", "^pos$", "^norm$", "^$")  # the root module's own nodes: the embeddings' add, x[:, 0]
ADD, LN, LINEAR = "torch.ops.aten.add.Tensor", "torch.ops.aten.layer_norm.default", "torch.ops.aten.linear.default"


def layers(*index: int) -> list[str]:
    return [rf"^layers\.{i}(\.|$)" for i in index]


PLANS = {
    "all-FP32": all_fp32_settings(FP16),
    "all-FP16": FP16,
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


def main() -> None:
    model, inputs = transformer_encoder(batch=32, seq=128)
    model, inputs = model.cuda(), tuple(x.cuda() for x in inputs)
    ex = Explorer(model, inputs)
    build = Build("tensorrt", "cuda", False, {"build": "cast_graph"}, progress=False)
    compiled = {k: build.compile(ex, s) for k, s in PLANS.items()}
    errors = {k: backend_error(ex, s, inputs, "rel_l2", build) for k, s in PLANS.items()}
    times = dict(zip(compiled, time_plans(ex, list(compiled.values()), inputs, runs=30, progress=False)))
    fp32, low = times["all-FP32"].median_ms, times["all-FP16"].median_ms
    print(f"device {torch.cuda.get_device_name(0)}, torch {torch.__version__}; encoder batch 32, seq 128")
    print("\n| plan | FP32 nodes | rel L2 | median ms | share of all-FP16 speedup kept |\n|---|---|---|---|---|")
    for k, s in PLANS.items():
        ms = times[k].median_ms
        kept = sum(1 for a in ex.plan(s) if a.dtype == torch.float32)
        print(f"| {k} | {kept} | {errors[k]:.3g} | {ms:.3f} | {100 * (fp32 / ms) / (fp32 / low):.1f} % |")


if __name__ == "__main__":
    main()
