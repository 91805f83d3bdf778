"""Layer information in every schema a target may write: TensorRT 10 and TensorRT-RTX 1.4 (``Format/Datatype``,
``Bindings``), TensorRT 11 and TensorRT-RTX 1.5/1.6 (``Datatype`` + ``Format``, ``I/O Tensors``).

The TensorRT-RTX samples are real: the same tiny network built with TensorRT-RTX 1.4.0.76, 1.5.0.114 and 1.6.1.120
on an H100 (benchmarks/gpu_probe_rtx.py). No datacenter TensorRT installs here, so its two samples are built from
the documented schemas (SOURCES.md).
"""

from __future__ import annotations

import json

import pytest
import torch

from mixprec_explorer.parsers import parse_layer_info, parse_layer_log
from mixprec_explorer.parsers.layer_info import layer_info_schema

from _data import DATA

SAMPLES = DATA / "layer_info_versions"
RTX = {"1.4.0.76": "tensorrt-10", "1.5.0.114": "tensorrt-11", "1.6.1.120": "tensorrt-11"}


def _read(name: str) -> str:
    return (SAMPLES / name).read_text(encoding="utf-8")


def _summary(text: str) -> list[tuple[str, str, tuple, tuple, tuple]]:
    """Per layer: name, type, input dtypes, output dtypes, engine I/O it touches: what the explorer uses."""
    return [(r.name, r.layer_type, r.input_dtypes, r.output_dtypes, r.extra.get("engine_io", ()))
            for r in parse_layer_info(text)]


@pytest.mark.parametrize("version, schema", RTX.items())
@pytest.mark.parametrize("low", ["fp16", "bf16"])
def test_tensorrt_rtx_samples_parse_with_every_tensor_typed(version: str, schema: str, low: str) -> None:
    text = _read(f"rtx-{version}_h100_{low}.json")
    assert layer_info_schema(text) == schema
    records = parse_layer_info(text)
    assert records and all(None not in r.input_dtypes + r.output_dtypes for r in records)
    dtype = torch.float16 if low == "fp16" else torch.bfloat16
    convs = [r for r in records if "[CONVOLUTION]" in r.name and "dw/" in r.name]
    assert convs and all(r.input_dtypes == (dtype,) and r.output_dtypes == (dtype,) for r in convs)
    assert records[0].input_dtypes == (torch.float32,) and records[-1].output_dtypes == (torch.float32,)
    assert records[0].extra["engine_io"] == ("x",) and records[-1].extra["engine_io"] == ("y",)


@pytest.mark.parametrize("low", ["fp16", "bf16"])
def test_one_network_reads_the_same_in_both_tensorrt_rtx_schemas(low: str) -> None:
    summaries = {v: _summary(_read(f"rtx-{v}_h100_{low}.json")) for v in RTX}
    assert summaries["1.4.0.76"] == summaries["1.5.0.114"] == summaries["1.6.1.120"]


def test_tensorrt_11_splits_format_and_datatype_and_lists_io_tensors_as_objects() -> None:
    new = json.loads(_read("rtx-1.6.1.120_h100_fp16.json"))
    tensor = new["Layers"][0]["Inputs"][0]
    assert "Format/Datatype" not in tensor and tensor["Datatype"] == "Float" and "Format" in tensor
    assert [t["Name"] for t in new["I/O Tensors"]] == ["x", "y"] and "Bindings" not in new
    old = json.loads(_read("rtx-1.4.0.76_h100_fp16.json"))
    assert old["Bindings"] == ["x", "y"] and old["Layers"][0]["Inputs"][0]["Format/Datatype"] == "Float"


def test_the_documented_datacenter_schemas_give_the_same_records() -> None:
    old, new = _read("tensorrt-10_schema.json"), _read("tensorrt-11_schema.json")
    assert (layer_info_schema(old), layer_info_schema(new)) == ("tensorrt-10", "tensorrt-11")
    assert _summary(old) == _summary(new)
    conv, gemm = parse_layer_info(new)
    assert conv.input_dtypes == (torch.float16,) and conv.modules == ("conv1", "")
    assert gemm.output_dtypes == (torch.float32,) and gemm.accumulate_dtype == torch.float32
    assert gemm.extra["engine_io"] == ("y",)


def test_a_format_alone_still_names_its_dtype_and_a_layout_alone_names_none() -> None:
    layer = {"Name": "k", "LayerType": "kgen",
             "Inputs": [{"Name": "a", "Format": "Row major linear FP16 format (kLINEAR)"}],
             "Outputs": [{"Name": "b", "Format": "(NHWC) Channel major format"}]}
    (record,) = parse_layer_info(json.dumps({"Layers": [layer], "I/O Tensors": []}))
    assert record.input_dtypes == (torch.float16,) and record.output_dtypes == (None,)


def test_a_tensorrt_11_one_line_log_is_read_too() -> None:
    # kONELINE text with TensorRT 11's keys (built from the JSON schema above; no datacenter TensorRT 11 log here)
    line = ("# Name: [CONVOLUTION]-[aten_ops.convolution.default]-[dw/convolution]_myl0_1, LayerType: correlation, "
            "Inputs: [ { Name: x, Dimensions: [2,4,8,8], Strides: [256,1,32,4], StrideOrder: [3,0,2,1], "
            "Datatype: BFloat16, Format: (NHWC) Channel major format }], Outputs: [ { Name: y, Dimensions: [2,4,8,8],"
            " Datatype: BFloat16, Format: (NHWC) Channel major format }], TacticName: __myelin_CASK_STUB, "
            "StreamId: 0, Metadata: ")
    (record,) = parse_layer_log(line)
    assert record.input_dtypes == record.output_dtypes == (torch.bfloat16,) and record.modules == ("dw",)
