"""GPU machine: the engine-inspector JSON TensorRT-RTX writes, and its STRONGLY_TYPED flag, for one installed version.

Builds three tiny strongly typed networks with the ``tensorrt_rtx`` API alone (no torch, no torch_tensorrt), named
as Torch-TensorRT names layers: FP16 (depthwise 3x3 conv, ReLU, pointwise conv, matmul), BF16 (the same) and BF16
without the depthwise conv, at DETAILED verbosity. Writes ``$OUT/rtx<TAG>_<case>.json`` (the inspector's JSON) and
``$OUT/rtx<TAG>_report.json``. Usage: ``PYTHONPATH=<site with tensorrt_rtx> python3 gpu_probe_rtx.py 16``.
The samples in tests/data/layer_info_versions came from it (SOURCES.md).
"""

from __future__ import annotations

import json
import os
import sys
import traceback

import numpy as np
import tensorrt_rtx as trt

OUT, TAG = os.environ["OUT"], sys.argv[1]
ERRORS: list[str] = []


class Log(trt.ILogger):
    def __init__(self) -> None:
        trt.ILogger.__init__(self)

    def log(self, severity, msg):  # noqa: ANN001
        if severity <= trt.ILogger.Severity.WARNING:
            ERRORS.append(f"{severity.name}: {msg}")


LOGGER = Log()
BUILDER = trt.Builder(LOGGER)


def const(net, array, name, dt):
    c = net.add_constant(array.shape, trt.Weights(np.ascontiguousarray(array, dtype=np.float32)))
    c.name = f"[CONSTANT]-[aten_ops.constant]-[{name}]"
    cast = net.add_cast(c.get_output(0), dt)
    cast.name = f"[CAST]-[aten_ops._to_copy.default]-[{name}_cast]"
    return cast.get_output(0)


def conv(net, x, cin, cout, k, groups, dt, module):
    w = const(net, np.random.randn(cout, cin // groups, k, k), f"{module}/weight", dt)
    layer = net.add_convolution_nd(x, cout, (k, k), trt.Weights(), trt.Weights())
    layer.set_input(1, w)
    layer.num_groups = groups
    layer.padding_nd = (k // 2, k // 2)
    layer.name = f"[CONVOLUTION]-[aten_ops.convolution.default]-[{module}/convolution]"
    return layer.get_output(0)


def build(case: str) -> dict:
    dt = trt.float16 if case.startswith("fp16") else trt.bfloat16
    net = BUILDER.create_network(0)
    x = net.add_input("x", trt.float32, (2, 4, 8, 8))
    c = net.add_cast(x, dt)
    c.name = "[CAST]-[aten_ops._to_copy.default]-[/to]"
    h = c.get_output(0)
    if case != "bf16_pointwise":
        h = conv(net, h, 4, 4, 3, 4, dt, "dw")
        r = net.add_activation(h, trt.ActivationType.RELU)
        r.name = "[ACTIVATION]-[aten_ops.relu.default]-[dw/relu]"
        h = r.get_output(0)
    h = conv(net, h, 4, 8, 1, 1, dt, "pw")
    s = net.add_shuffle(h)
    s.reshape_dims = (2, 8 * 8 * 8)
    s.name = "[SHUFFLE]-[aten_ops.view.default]-[/view]"
    w = const(net, np.random.randn(512, 10), "fc/weight", dt)
    mm = net.add_matrix_multiply(s.get_output(0), trt.MatrixOperation.NONE, w, trt.MatrixOperation.NONE)
    mm.name = "[MATRIX_MULTIPLY]-[aten_ops.linear.default]-[fc/linear_matrix_multiply]"
    back = net.add_cast(mm.get_output(0), trt.float32)
    back.name = "[CAST]-[aten_ops._to_copy.default]-[/to_1]"
    back.get_output(0).name = "y"
    net.mark_output(back.get_output(0))
    config = BUILDER.create_builder_config()
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
    del ERRORS[:]
    blob = BUILDER.build_serialized_network(net, config)
    result: dict = {"built": blob is not None, "errors": ERRORS[-6:]}
    if blob is not None:
        engine = trt.Runtime(LOGGER).deserialize_cuda_engine(blob)
        info = engine.create_engine_inspector().get_engine_information(trt.LayerInformationFormat.JSON)
        with open(os.path.join(OUT, f"rtx{TAG}_{case}.json"), "w") as f:
            f.write(info)
        result["layers"] = len(json.loads(info, strict=False).get("Layers", []))
    return result


def main() -> None:
    flag = trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED
    report: dict = {"tensorrt_rtx": trt.__version__,
                    "flag_when_created_with_0": bool(BUILDER.create_network(0).get_flag(flag))}
    try:
        report["flag_when_requested"] = bool(BUILDER.create_network(1 << int(flag)).get_flag(flag))
    except Exception as err:  # a release that refuses the flag
        report["flag_when_requested"] = repr(err)
    for case in ("fp16", "bf16", "bf16_pointwise"):
        try:
            report[case] = build(case)
        except Exception:
            report[case] = {"exception": traceback.format_exc()[-1500:], "errors": ERRORS[-6:]}
    print(json.dumps(report, indent=1))
    with open(os.path.join(OUT, f"rtx{TAG}_report.json"), "w") as f:
        json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
