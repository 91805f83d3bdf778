"""Do the profiled warm-up runs inflate the layer times? Per-node sum over end to end, with and without them.

Run on a CUDA GPU with TensorRT-RTX: ``python benchmarks/gpu_diag_warmup.py``. For ResNet-50 FP32 and the encoder's
FP16 plan with its head and norms FP32 (batch 32), ``ex.profile`` records its folder with the warm-up runs kept in
``warmup/``; the same folder loaded without that subfolder counts them in, as a plain Torch-TensorRT folder does.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import torch

from mixprec_explorer import Explorer, Settings, examples

FP16 = Settings(enable_autocast=True, autocast_low_precision_type=torch.float16)
CASES = {
    "resnet50 FP32": (lambda: examples.resnet50(batch=32), Settings(), {}),
    "encoder FP16, head+norms FP32": (lambda: examples.transformer_encoder(batch=32, seq=128), FP16.replace(
        autocast_excluded_nodes=frozenset({"^head$", "^norm$"}),
        autocast_excluded_ops=frozenset({"torch.ops.aten.layer_norm.default"})), {"build": "cast_graph"}),
}


def main() -> None:
    print(f"device {torch.cuda.get_device_name(0)}, torch {torch.__version__}; median of 30 runs, 5 warm-up")
    print("\n| plan | e2e ms | layer sum, warm-up left out / e2e | the same, warm-up counted in / e2e | "
          "second stream ms |\n|---|---|---|---|---|")
    for label, (build, settings, options) in CASES.items():
        model, inputs = build()
        ex = Explorer(model.cuda(), tuple(x.cuda() for x in inputs))
        compiled = ex.compile(settings, backend="tensorrt", device="cuda", isolate=False, **options)
        profile = ex.profile(compiled, runs=30)
        e2e = profile.end_to_end.median_ms
        with tempfile.TemporaryDirectory() as tmp:
            plain = Path(tmp) / "plain"
            shutil.copytree(profile.recorded_in, plain, ignore=shutil.ignore_patterns("warmup"))
            counted = ex.load_profile(plain)
        print(f"| {label} | {e2e:.3f} | {profile.layer_sum_ms / e2e:.3f} | {counted.layer_sum_ms / e2e:.3f} | "
              f"{profile.overlapped_ms:.3f} |", flush=True)


if __name__ == "__main__":
    main()
