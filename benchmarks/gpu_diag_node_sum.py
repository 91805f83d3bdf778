"""How steady is the per-node sum against end to end? The two plans over ±15 % in run 9, profiled five times each.

Run on a CUDA GPU with TensorRT-RTX: ``python benchmarks/gpu_diag_node_sum.py``. Builds ResNet-50 FP32 and the
encoder's cast graph FP16 with ``head``, ``norm`` and the ``layer_norm`` op in FP32 (batch 32) once each, then
profiles each five times (``ex.profile``, 30 timed runs) and prints, per profile, the sum of the per-node latencies
over the end-to-end median, the same less the time a second stream overlapped, and the profiled run's wall time.
"""

from __future__ import annotations

import statistics

import torch

from mixprec_explorer import Explorer, Settings, examples

FP16 = Settings(enable_autocast=True, autocast_low_precision_type=torch.float16)
PLANS = {
    "ResNet-50 FP32": (lambda: examples.resnet50(batch=32), Settings(), {}),
    "encoder cast graph FP16, head, norm, layer_norm op": (
        lambda: examples.transformer_encoder(batch=32, seq=128),
        FP16.replace(autocast_excluded_nodes=frozenset({"^head$", "^norm$"}),
                     autocast_excluded_ops=frozenset({"torch.ops.aten.layer_norm.default"})),
        {"build": "cast_graph"}),
}


def main() -> None:
    print(f"device {torch.cuda.get_device_name(0)}, torch {torch.__version__}\n")
    print("| plan | profile | per-node sum ms | e2e ms | ratio | less overlap | profiled run ms |")
    print("|---|---|---|---|---|---|---|")
    for label, (make, settings, options) in PLANS.items():
        model, inputs = make()
        inputs = tuple(x.cuda() for x in inputs)
        ex = Explorer(model.cuda(), inputs)
        compiled = ex.compile(settings, backend="tensorrt", device="cuda", isolate=False, **options)
        ratios = []
        for k in range(5):
            profile = ex.profile(compiled, inputs, runs=30, progress=False)
            total, e2e = sum(profile.node_latency_ms().values()), profile.end_to_end.median_ms
            ratios.append(total / e2e)
            less = (total - profile.overlapped_ms) / e2e
            print(f"| {label} | {k + 1} | {total:.3f} | {e2e:.3f} | {total / e2e:.3f} | {less:.3f} | "
                  f"{profile.profiled_run_ms or float('nan'):.2f} |", flush=True)
        print(f"| {label} | median of 5 | | | {statistics.median(ratios):.3f} | | |")


if __name__ == "__main__":
    main()
