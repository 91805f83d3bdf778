"""GPU machine: does Torch-TensorRT (torch-tensorrt-rtx) build BF16 autocast on TensorRT-RTX, depthwise convs included?

Compiles a depthwise-conv + pointwise-conv + linear model and a dense one with ``enable_autocast=True`` and FP16 or
BF16, ``min_block_size=1``, and writes which submodules were built and the relative L2 error against FP32 eager to
``$OUT/ttrt_bf16.json``. Run with torch-tensorrt-rtx on PYTHONPATH (benchmarks/gpu_install_wheels.sh).
"""

from __future__ import annotations

import json
import os
import sys
import traceback

for _name in ("tensorrt_rtx.plugin", "tensorrt.plugin"):  # the plugin package TensorRT-RTX ships cannot import
    sys.modules.setdefault(_name, None)  # type: ignore[arg-type]

import torch  # noqa: E402
import torch_tensorrt  # noqa: E402


class Model(torch.nn.Module):
    def __init__(self, depthwise: bool) -> None:
        super().__init__()
        self.dw = torch.nn.Conv2d(4, 4, 3, padding=1, groups=4 if depthwise else 1)
        self.pw = torch.nn.Conv2d(4, 8, 1)
        self.fc = torch.nn.Linear(512, 10)

    def forward(self, x):
        return self.fc(self.pw(torch.relu(self.dw(x))).flatten(1))


def main() -> None:
    report: dict = {"torch": torch.__version__, "torch_tensorrt": torch_tensorrt.__version__}
    torch.manual_seed(0)
    x = torch.randn(2, 4, 8, 8, device="cuda")
    for depthwise in (True, False):
        model = Model(depthwise).eval().cuda()
        reference = model(x)
        program = torch.export.export(model, (x,))
        for low in (torch.float16, torch.bfloat16):
            key = f"{'depthwise' if depthwise else 'dense'}_{str(low).split('.')[-1]}"
            try:
                compiled = torch_tensorrt.dynamo.compile(program, arg_inputs=[x], enable_autocast=True,
                                                         autocast_low_precision_type=low, min_block_size=1)
                y = compiled(x).float()
                report[key] = {"ok": True, "children": [n for n, _ in compiled.named_children()],
                               "rel_err": float((y - reference).norm() / reference.norm())}
            except Exception:
                report[key] = {"ok": False, "error": traceback.format_exc()[-1200:]}
    print(json.dumps(report, indent=1))
    with open(os.path.join(os.environ["OUT"], "ttrt_bf16.json"), "w") as f:
        json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
