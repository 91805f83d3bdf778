"""Where does a plan's error come from? Eager vs compiled, against TF32-allowed and true-FP32 references.

Run: ``python benchmarks/gpu_diag_error.py [--models resnet50,encoder]`` (a CUDA GPU; CPU works but says little).
Prints one table: relative L2 error of the all-FP32 and all-low plans, eager and compiled (PyTorch backend),
and of the search's own forward-pass estimate, against two references: the exported model run with PyTorch's
default TF32 flags (what ``ex.accuracy`` compares with) and with TF32 off everywhere (true FP32).
"""

from __future__ import annotations

import argparse
import contextlib

import torch

from mixprec_explorer import Explorer, Settings
from mixprec_explorer.analysis import PlanRunner, rel_l2
from mixprec_explorer.backends.torch_backend import load_module, to_device
from mixprec_explorer.examples import resnet50, transformer_encoder


@contextlib.contextmanager
def tf32(enabled: bool | None):
    """TF32 on (True), off (False) or PyTorch's defaults left alone (None)."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    if enabled is not None:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def leaves(value) -> list[torch.Tensor]:
    return [t.float() for t in torch.utils._pytree.tree_leaves(value) if isinstance(t, torch.Tensor)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", default="resnet50,encoder")
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    low = torch.float16 if device == "cuda" else torch.bfloat16
    makers = {"resnet50": lambda: resnet50(batch=32), "encoder": lambda: transformer_encoder(batch=32)}
    print(f"device {torch.cuda.get_device_name() if device == 'cuda' else 'cpu'}; torch {torch.__version__}; "
          f"default TF32 flags: matmul {torch.backends.cuda.matmul.allow_tf32}, cudnn {torch.backends.cudnn.allow_tf32}")
    print("| model | plan | mode | vs default-flags ref | vs true-FP32 ref |")
    print("|---|---|---|---|---|")
    for name in args.models.split(","):
        model, inputs = makers[name]()
        model = model.to(device).eval()
        inputs = tuple(x.to(device) for x in inputs)
        ex = Explorer(model, inputs)
        ref_module = load_module(ex.exported_program, device)
        with torch.no_grad():
            refs = {}
            for label, flag in (("default", None), ("true", False)):
                with tf32(flag):
                    refs[label] = leaves(ref_module(*to_device(inputs, device)))
        refs["tf32"] = None
        with torch.no_grad(), tf32(True):
            tf32_out = leaves(ref_module(*to_device(inputs, device)))
        print(f"| {name} | FP32 with TF32 on | eager | {rel_l2(tf32_out, refs['default']):.3g} | "
              f"{rel_l2(tf32_out, refs['true']):.3g} |")
        base = Settings(enable_autocast=True, autocast_low_precision_type=low)
        plans = {"all-FP32": base.replace(autocast_excluded_nodes=frozenset({".*"})), "all-low": base}
        for mode in ("eager", "compiled"):
            for label, settings in plans.items():
                compiled = ex.compile(settings, backend="torch", device=device, mode=mode, isolate=False,
                                      progress=False)
                with torch.no_grad():
                    out = leaves(compiled.handle(*inputs))
                print(f"| {name} | {label} | {mode} | {rel_l2(out, refs['default']):.3g} | "
                      f"{rel_l2(out, refs['true']):.3g} |")
        for flag_label, flag in (("default flags", None), ("TF32 off", False)):
            with tf32(flag):
                runner = PlanRunner(ex, [inputs])
                est = leaves(runner.outputs(runner.run_plan(lambda n: low)))
            print(f"| {name} | all-low | search estimate ({flag_label}) | {rel_l2(est, refs['default']):.3g} | "
                  f"{rel_l2(est, refs['true']):.3g} |")
        del ex, model


if __name__ == "__main__":
    main()
