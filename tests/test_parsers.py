"""Parsers on real TensorRT outputs (tests/data), the reference's three layer logs, hand-written Torch-TensorRT-style
inputs, and fuzzing: malformed input raises ParseError naming the place, never anything else."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mixprec_explorer.errors import ParseError
from mixprec_explorer.parsers import decode_layer_name, parse_layer_info, parse_layer_log, parse_profile
from mixprec_explorer.records import LayerRecord

from _data import REFERENCE, SAMPLES

SAMPLE_FILES = sorted(SAMPLES.glob("*.json"))
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _sample(kind: str) -> str:
    (path,) = [p for p in SAMPLE_FILES if p.name.startswith(f"resnet_A100_{kind}_") and "profile" not in p.name]
    return path.read_text()


def _profile(kind: str) -> str:
    (path,) = [p for p in SAMPLE_FILES if p.name.startswith(f"resnet_A100_{kind}_") and "profile" in p.name]
    return path.read_text()


def _reference_logs() -> list[str]:
    """The three ``# Layers:`` blocks of the reference text, exactly as printed there (``# `` prefixes kept)."""
    lines = REFERENCE.read_text().split("\n")
    blocks: list[str] = []
    for i, line in enumerate(lines):
        if line.strip() == "# Debug log info":
            block = []
            for following in lines[i + 1 :]:
                if not following.startswith("#"):
                    break
                block.append(following)
            blocks.append("\n".join(block))
    assert len(blocks) == 3, "the reference text should hold three layer logs"
    return blocks


# ---------------------------------------------------------------------------------------------- real samples


@pytest.mark.parametrize("path", SAMPLE_FILES, ids=lambda p: p.name)
def test_every_sample_parses_in_file_order(path: Path) -> None:
    raw = json.loads(path.read_text())
    if "profile" in path.name:
        records = parse_profile(path.read_text())
        assert [r.name for r in records] == [rec["name"] for rec in raw[1:]]
        assert all(r.count == raw[0]["count"] for r in records)
        assert all(r.latency_ms is not None and r.latency_ms >= 0 for r in records)
        assert math.isclose(sum(r.share for r in records), 1.0, abs_tol=1e-4)
    else:
        records = parse_layer_info(path.read_text())
        assert [r.name for r in records] == [layer["Name"] for layer in raw["Layers"]]
        assert [r.layer_type for r in records] == [layer["LayerType"] for layer in raw["Layers"]]
        for record in records:
            assert record.input_dtypes and None not in record.input_dtypes
            assert record.output_dtypes and None not in record.output_dtypes
            assert record.modules == ()  # ONNX names carry no module paths
            assert record.extra["verbosity"] == "DETAILED"
            assert "Dimensions" in record.extra["Inputs"][0]
    assert all(isinstance(r, LayerRecord) for r in records)


def test_fp16_graph_has_36_layers_running_in_fp16() -> None:
    records = parse_layer_info(_sample("fp16"))
    assert len(records) == 36
    *inner, last = records
    assert all(r.output_dtypes == (torch.float16,) for r in inner)
    assert records[0].input_dtypes == (torch.float32,)  # the FP32 engine input, reformatted
    assert last.name == "Reformatting CopyNode for Output Tensor 0 to reshape_after_Gemm_48"
    assert last.output_dtypes == (torch.float32,)
    conv = next(r for r in records if r.name == "Conv_0 + Relu_1")
    assert conv.layer_type == "CaskConvolution"
    assert "f16" in conv.tactic
    assert conv.extra["Weights"] == {"Type": "Half", "Count": 9408}
    assert records[0].extra["engine_io"] == ("input.1",)


def test_fp32_graph_has_32_fp32_layers() -> None:
    records = parse_layer_info(_sample("fp32"))
    assert len(records) == 32
    assert {d for r in records for d in (*r.input_dtypes, *r.output_dtypes)} == {torch.float32}


def test_qat_graph_has_int8_convolutions() -> None:
    records = parse_layer_info(_sample("qat"))
    assert len(records) == 37
    conv = next(r for r in records if r.name == "conv1.weight + QuantizeLinear_7 + Conv_9")
    assert conv.input_dtypes == (torch.int8,)
    assert conv.output_dtypes == (torch.float32,)
    assert sum(torch.int8 in r.input_dtypes for r in records) > 10


@pytest.mark.parametrize(("kind", "layers"), [("fp16", 36), ("fp32", 32)])
def test_profile_matches_its_graph(kind: str, layers: int) -> None:
    graph = parse_layer_info(_sample(kind))
    profile = parse_profile(_profile(kind))
    assert len(profile) == layers
    assert [r.name for r in profile] == [r.name for r in graph]
    for timed, layer in zip(profile, graph):
        # Only TensorRT's NoOp layers (elided reformats, the final reshape) take no time.
        assert (timed.latency_ms > 0) == (layer.layer_type != "NoOp"), layer.name
        assert timed.extra["format"] == "trtexec"
        assert timed.latency_ms == timed.extra["medianMs"]
    assert math.isclose(sum(r.share for r in profile), 1.0, abs_tol=1e-4)


def test_fp16_engine_is_faster_than_fp32() -> None:
    fp16 = sum(r.latency_ms for r in parse_profile(_profile("fp16")))
    fp32 = sum(r.latency_ms for r in parse_profile(_profile("fp32")))
    assert math.isclose(fp16, 1.016832, rel_tol=1e-6)
    assert math.isclose(fp32, 2.123776, rel_tol=1e-6)
    assert fp16 < fp32


# ------------------------------------------------------------------------------------- the reference's logs


def test_weak_typing_log_runs_everything_in_fp32() -> None:
    records = parse_layer_log(_reference_logs()[0])
    assert [r.name for r in records] == [
        "__myl_MulSum_myl0_0",
        "__myl_AddResMulSum_myl0_1",
        "__myl_AddResMulSumAdd_myl0_2",
    ]
    assert {d for r in records for d in (*r.input_dtypes, *r.output_dtypes)} == {torch.float32}
    assert all(r.layer_type == "kgen" and r.tactic.startswith("__myl_") for r in records)
    assert records[0].modules == ()  # only Myelin constants and the input x
    assert set(records[2].modules) == {"linear2", "linear3"}


def test_explicit_typing_log_runs_linear2_in_fp16() -> None:
    records = parse_layer_log(_reference_logs()[1])
    assert [r.modules for r in records] == [("linear1",), ("linear2",), ("linear3",)]
    first, linear2, last = records
    assert first.output_dtypes == (torch.float16,)  # linear1 output cast to half inside the kernel
    assert linear2.input_dtypes == (torch.float16,) * 3
    assert linear2.output_dtypes == (torch.float32,)
    assert last.input_dtypes == (torch.float32,) * 3
    assert linear2.extra["Inputs"][0]["Dimensions"] == [10, 30]
    assert linear2.extra["StreamId"] == 0
    assert linear2.extra["Metadata"] == ""
    assert all(r.accumulate_dtype is None for r in records)


def test_fp32_acc_excerpt_reports_float_accumulation() -> None:
    (record,) = parse_layer_log(_reference_logs()[2])
    assert record.name == "__myl_MulSumAddCas_myl0_0"
    assert record.layer_type == "kgen"
    assert record.accumulate_dtype == torch.float32
    assert record.input_dtypes == () and record.output_dtypes == ()  # elided as "[ ... ]"
    assert record.extra["Format/Datatype"] == "Half"


# ------------------------------------------------------------------------------------------- layer names


@pytest.mark.parametrize(
    ("name", "layer_type", "ir_op", "pairs"),
    [
        (
            "[MATRIX_MULTIPLY]-[aten_ops.linear.default]-[fc1/linear_matrix_multiply]",
            "MATRIX_MULTIPLY",
            "aten_ops.linear.default",
            (("fc1", "linear"),),
        ),
        ("[ELEMENTWISE]-[aten_ops.add.Tensor]-[/add]", "ELEMENTWISE", "aten_ops.add.Tensor", (("", "add"),)),
        (
            "[ELEMENTWISE]-[aten_ops.linear.default]-[layers.0.fc1/linear_3_add_bias]",
            "ELEMENTWISE",
            "aten_ops.linear.default",
            (("layers.0.fc1", "linear_3"),),
        ),
        (
            "[FILL]-[aten_ops.arange.start_step]-[arange_arange_fill]",
            "FILL",
            "aten_ops.arange.start_step",
            ((None, "arange_arange_fill"),),
        ),
        # Torch-TensorRT 2.2-2.4 wrote module paths with slashes.
        (
            "[CONVOLUTION]-[aten_ops.convolution.default]-[/features/0/convolution]",
            "CONVOLUTION",
            "aten_ops.convolution.default",
            (("features.0", "convolution"),),
        ),
        ("(Unnamed Layer* 12) [Constant]", "Constant", "", ()),
        ("__myl_MulSumAddCas_myl0_0", "", "", ()),
        ("Conv_5 + Add_6 + Relu_7", "", "", ()),
    ],
)
def test_decode_torch_tensorrt_names(name: str, layer_type: str, ir_op: str, pairs: tuple) -> None:
    decoded = decode_layer_name(name)
    assert (decoded.layer_type, decoded.ir_op, decoded.pairs) == (layer_type, ir_op, pairs)


def test_decode_fused_layer() -> None:
    name = (
        "[MATRIX_MULTIPLY]-[aten_ops.linear.default]-[fc1/linear_matrix_multiply] + "
        "[ELEMENTWISE]-[aten_ops.linear.default]-[fc1/linear_add_bias] + [RELU]-[aten_ops.relu.default]-[/relu]"
    )
    decoded = decode_layer_name(name)
    assert decoded.pairs == (("fc1", "linear"), ("", "relu"))
    assert decoded.modules == ("fc1", "")
    assert decoded.ir_ops == ("aten_ops.linear.default", "aten_ops.relu.default")
    assert len(decoded.parts) == 3
    assert [ref.raw for ref in decoded.refs] == ["linear_matrix_multiply", "linear_add_bias", "relu"]


def test_decode_cast_layers() -> None:
    decoded = decode_layer_name(
        "Cast ITensor [MATRIX_MULTIPLY]-[aten_ops.linear.default]-[fc1/linear_matrix_multiply]_output "
        "from DataType.HALF to DataType.FLOAT - [aten_ops.torch.ops.aten.to.dtype]-[blocks.1/to_2]"
    )
    assert decoded.is_cast and decoded.layer_type == "CAST"
    assert (decoded.cast_from, decoded.cast_to) == (torch.float16, torch.float32)
    assert decoded.ir_op == "aten_ops.to.dtype"
    assert decoded.pairs == (("blocks.1", "to_2"),)  # the cast's own node, not its input tensor's layer
    fp32_acc = decode_layer_name(
        "Cast ITensor x_casted from DataType.FLOAT to DataType.HALF - [unknown_ir_ops]-[fc1/linear_output_casted]"
    )
    assert fp32_acc.ir_op == "unknown_ir_ops"
    assert fp32_acc.pairs == (("fc1", "linear"),)
    assert fp32_acc.cast_to == torch.float16


def test_decode_foreign_node_and_reformat() -> None:
    foreign = decode_layer_name(
        "{ForeignNode[[MATRIX_MULTIPLY]-[aten_ops.linear.default]-[encoder.q/linear_matrix_multiply]"
        "...[ELEMENTWISE]-[aten_ops.add.Tensor]-[encoder/add_3]]}"
    )
    assert foreign.is_foreign and foreign.is_myelin and foreign.layer_type == "ForeignNode"
    assert foreign.pairs == (("encoder.q", "linear"), ("encoder", "add_3"))
    reformat = decode_layer_name(
        "Reformatting CopyNode for Input Tensor 0 to [CONVOLUTION]-[aten_ops.convolution.default]-[conv1/convolution]"
    )
    assert reformat.is_reformat and reformat.layer_type == "Reformat"
    assert reformat.pairs == (("conv1", "convolution"),)
    assert decode_layer_name("Reformatting CopyNode for Input Tensor 0 to Conv_0 + Relu_1").is_reformat


def test_myelin_tensor_names_carry_module_paths() -> None:
    from mixprec_explorer.parsers.names import decode_tensor_name

    refs = decode_tensor_name(
        "linear1/addmm_constant_0 _ linear1/addmm_add_broadcast_to_same_shape_lhs_broadcast_constantFloat"
    )
    assert [(r.module, r.node) for r in refs] == [("linear1", "addmm")] * 2
    # ONNX-style paths are not mistaken for module paths.
    assert decode_tensor_name("/layer1/layer1.0/conv1/Conv_output_0") == ()
    assert decode_tensor_name("onnx::MaxPool_125") == ()


@given(st.text(max_size=200))
@FUZZ
def test_decode_never_raises(name: str) -> None:
    decoded = decode_layer_name(name)
    assert all(ref.raw in name and ref.raw.startswith(ref.node) for ref in decoded.refs)


# ------------------------------------------------------------------------- hand-written layer information


def test_names_only_layer_info() -> None:
    text = json.dumps(
        {
            "Layers": [
                "[MATRIX_MULTIPLY]-[aten_ops.linear.default]-[fc1/linear_matrix_multiply] + "
                "[ELEMENTWISE]-[aten_ops.linear.default]-[fc1/linear_add_bias]",
                "[ACTIVATION]-[aten_ops.relu.default]-[/relu]",
                "(Unnamed Layer* 3) [Constant]",
            ],
            "Bindings": ["x", "output0"],
        }
    )
    records = parse_layer_info(text)
    assert [r.modules for r in records] == [("fc1",), ("",), ()]
    assert all(r.input_dtypes == () and r.extra["verbosity"] == "LAYER_NAMES_ONLY" for r in records)


def _trt10_layer(**overrides: object) -> dict:
    layer = {
        "Name": "[MATRIX_MULTIPLY]-[aten_ops.linear.default]-[fc1/linear_matrix_multiply]",
        "LayerType": "gemm",
        "Inputs": [
            {
                "Name": "x",
                "Location": "Device",
                "Dimensions": [4, 16],
                "Format/Datatype": "Row major linear FP16 format",
            }
        ],
        "Outputs": [
            {"Name": "y", "Location": "Device", "Dimensions": [4, 8], "Format/Datatype": "Row major linear FP32"}
        ],
        "ParameterType": "Gemm",
        "TacticName": "sm90_xmma_gemm_f16f16_f32f32",
        "TacticValue": "0x0000000000000001",
        "StreamId": 0,
        "Metadata": "",
    }
    layer.update(overrides)
    return layer


def test_trt10_detailed_layer_info() -> None:
    (record,) = parse_layer_info(json.dumps({"Layers": [_trt10_layer(Accumulation="Float")], "Bindings": ["x", "y"]}))
    assert record.input_dtypes == (torch.float16,)
    assert record.output_dtypes == (torch.float32,)
    assert record.accumulate_dtype == torch.float32
    assert record.tactic == "sm90_xmma_gemm_f16f16_f32f32"
    assert record.modules == ("fc1",)
    assert record.extra["StreamId"] == 0 and record.extra["TacticValue"] == "0x0000000000000001"
    assert record.extra["engine_io"] == ("x", "y")


def test_trt86_metadata_separators() -> None:
    layer = _trt10_layer(Metadata="[ONNX Layer: /fc/Gemm]\x1e[ONNX Layer: /relu/Relu]")
    (record,) = parse_layer_info(json.dumps({"Layers": [layer]}))
    assert record.extra["metadata_parts"] == ("[ONNX Layer: /fc/Gemm]", "[ONNX Layer: /relu/Relu]")
    # Raw control characters inside strings, as TensorRT writes them, are accepted.
    raw = '{"Layers": ["a\x1eb"], "Bindings": []}'
    assert parse_layer_info(raw)[0].name == "a\x1eb"


def test_trt11_io_tensors_and_single_layer_object() -> None:
    text = json.dumps({"Layers": [_trt10_layer()], "I/O Tensors": [{"Name": "x"}, "y"]})
    assert parse_layer_info(text)[0].extra["engine_io"] == ("x", "y")
    # IEngineInspector.getLayerInformation returns one layer object.
    assert parse_layer_info(json.dumps(_trt10_layer()))[0].modules == ("fc1",)


def test_kgen_layer_info_falls_back_to_tensor_names() -> None:
    layer = _trt10_layer(Name="__myl_MulSumAdd_myl0_0", LayerType="kgen")
    layer["Inputs"].append({"Name": "encoder.layers.0.fc/addmm_constant_0", "Format/Datatype": "Half"})
    (record,) = parse_layer_info(json.dumps({"Layers": [layer]}))
    assert record.modules == ("encoder.layers.0.fc",)


@pytest.mark.parametrize(
    ("text", "place"),
    [
        ("", "line 1 column 1"),
        ('{"Layers": [', "line 1"),
        ('{"Layers": {}}', "top level"),
        ("[1, 2]", "layer 0"),
        ('{"Layers": ["ok", {"LayerType": "x"}]}', "layer 1: 'Name'"),
        ('{"Layers": ["ok", "ok", "ok", {"Name": "n", "Inputs": [3]}]}', "layer 3: Inputs[0]"),
        ('{"Layers": [{"Name": "n", "Outputs": [{"Format/Datatype": 16}]}]}', "layer 0: Outputs[0]"),
        ('{"Layers": [{"Name": "n", "StreamId": "zero"}]}', "layer 0: 'StreamId'"),
        ('{"Layers": [], "Bindings": 3}', "top level: 'Bindings'"),
        ('"just a string"', "top level"),
        ("[" * 100_000, "layer information"),
    ],
)
def test_layer_info_errors_name_the_place(text: str, place: str) -> None:
    with pytest.raises(ParseError, match=re.escape(place)):
        parse_layer_info(text)


# ------------------------------------------------------------------------------------ hand-written profiles

_FC = "[MATRIX_MULTIPLY]-[aten_ops.linear.default]-[fc1/linear_matrix_multiply]"
_RELU = "[ACTIVATION]-[aten_ops.relu.default]-[/relu]"


def test_trex_trace() -> None:
    text = json.dumps(
        [
            {"name": _FC, "timeMs": 3.0, "averageMs": 0.3, "percentage": 75.0},
            {"name": _RELU, "timeMs": 1.0, "averageMs": 0.1, "percentage": 25.0},
        ]
    )
    fc, relu = parse_profile(text)
    assert (fc.latency_ms, fc.count, fc.share, fc.modules) == (0.3, 10, 0.75, ("fc1",))
    assert (relu.latency_ms, relu.share, relu.modules) == (0.1, 0.25, ("",))
    assert fc.extra["format"] == "trex" and fc.extra["timeMs"] == 3.0


def test_perfetto_trace() -> None:
    events = [
        {
            "name": _FC,
            "ph": "X",
            "ts": 0,
            "dur": 3000.0,
            "tid": 1,
            "pid": "_run_on_acc_0_engine Engine Execution",
            "args": {},
        },
        {
            "name": _RELU,
            "ph": "X",
            "ts": 3000.0,
            "dur": 1000.0,
            "tid": 1,
            "pid": "_run_on_acc_0_engine Engine Execution",
            "args": {},
        },
    ]
    fc, relu = parse_profile(json.dumps(events))
    assert (fc.latency_ms, fc.count, fc.share) == (3.0, None, 0.75)  # cumulative total: runs unknown
    assert relu.extra["format"] == "perfetto" and relu.extra["total_ms"] == 1.0
    fc, relu = parse_profile(json.dumps(events), runs=10)
    assert (fc.latency_ms, fc.count) == (0.3, 10)
    # Chrome's object form, with a metadata event that is not a layer.
    chrome = {"traceEvents": [{"name": "process_name", "ph": "M", "pid": 1, "args": {}}, *events]}
    assert [r.name for r in parse_profile(json.dumps(chrome))] == [_FC, _RELU]


def test_torch_tensorrt_hand_written_trace() -> None:
    # TRTEngineProfiler::dump_trace writes names unescaped, and nan percentages when nothing took time.
    text = (
        '[\n  {\n    "name": "Cast ITensor "x" from DataType.HALF to DataType.FLOAT - [aten_ops.to.dtype]-[blk/to]",\n'
        '    "timeMs": 0,\n    "averageMs": 0,\n    "percentage": -nan\n  },\n'
        '  {\n    "name": "' + _RELU + '",\n    "timeMs": 0,\n    "averageMs": 0,\n    "percentage": nan\n  }\n]\n'
    )
    cast, relu = parse_profile(text)
    assert cast.name.startswith('Cast ITensor "x"') and cast.modules == ("blk",)
    assert cast.latency_ms == 0 and cast.share is None and cast.count is None


@pytest.mark.parametrize(
    ("text", "place"),
    [
        ("", "profile: line 1"),
        ("{}", "top level"),
        ('[{"count": 1}, {"name": "a", "timeMs": 1}, {"name": "b"}]', "record 2: 'timeMs'"),
        ('[{"count": 1}, {"name": "a", "timeMs": -1}]', "record 1: 'timeMs'"),
        ('[{"count": -2}]', "record 0: 'count'"),
        ('[{"count": 1}, [1]]', "record 1"),
        ('[{"name": "a", "timeMs": 1}, {"name": 5, "timeMs": 1}]', "record 1: 'name'"),
        ('[{"name": "a", "ph": "X", "dur": "long"}]', "record 0: 'dur'"),
        ('[{"name": "a", "timeMs": 1, "percentage": "all"}]', "record 0: 'percentage'"),
        ('[{"what": 1}]', "record 0"),
    ],
)
def test_profile_errors_name_the_place(text: str, place: str) -> None:
    with pytest.raises(ParseError, match=re.escape(place)):
        parse_profile(text)


# ------------------------------------------------------------------------------------ hand-written logs


def test_log_in_a_noisy_debug_log() -> None:
    text = "\n".join(
        [
            "DEBUG:torch_tensorrt.dynamo._compiler:Engine built",
            "Layers:",
            "[TRT] [V] Name: PWN(Relu_1, Add_2), LayerType: PointWiseV2, Inputs: [ { Name: a, Dimensions: [2], "
            "Format/Datatype: BFloat16 }], Outputs: [ { Name: b, Dimensions: [2], Format/Datatype: BFloat16 }], "
            'ParameterType: PointWise, Weights: {"Type": "Half", "Count": 9}, TacticValue: 0x1, StreamId: 0, Metadata: ',
            "Bindings:",
            "x",
        ]
    )
    (record,) = parse_layer_log(text)
    assert record.name == "PWN(Relu_1, Add_2)"
    assert record.input_dtypes == record.output_dtypes == (torch.bfloat16,)
    assert record.extra["Weights"] == {"Type": "Half", "Count": 9}
    assert record.extra["Inputs"][0]["Dimensions"] == [2]


@pytest.mark.parametrize(
    ("text", "place"),
    [
        ("hello\nworld", "no layer lines"),
        ("Layers:\nName: a, LayerType: k, Inputs: [ { Name: x }, Outputs: []", "line 2: '['"),
        ("Name: a, LayerType: k, Inputs: [ ] ]", "line 1: unbalanced ']'"),
        ("\n\nName: a, LayerType: k, Inputs: [ x ]", "line 3: Inputs[0]"),
        ("Name: a, LayerType: k, Inputs: [ { Name: x, Dimensions: [1,2 } ]", "line 1: unbalanced '}'"),
        (
            "Name: a, LayerType: k, Inputs: [ { Name: x, Format/Datatype: Half }, { what } ]",
            "line 1: expected 'Key: value'",
        ),
        ("Name: a, LayerType: k, Inputs: [ { Name: x, Format/Datatype: Half } ], StreamId: one", "line 1: 'StreamId'"),
    ],
)
def test_log_errors_name_the_line(text: str, place: str) -> None:
    with pytest.raises(ParseError, match=re.escape(place)):
        parse_layer_log(text)


# ------------------------------------------------------------------------------------------------- fuzzing

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)
_KEYS = st.sampled_from(
    [
        "Name",
        "LayerType",
        "Inputs",
        "Outputs",
        "Format/Datatype",
        "TacticName",
        "Accumulation",
        "StreamId",
        "Metadata",
        "Layers",
        "Bindings",
        "I/O Tensors",
        "count",
        "name",
        "timeMs",
        "averageMs",
        "medianMs",
        "percentage",
        "ph",
        "dur",
        "ts",
        "traceEvents",
    ]
)
_LAYERISH = st.recursive(
    _JSON,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_KEYS, children, max_size=6),
    max_leaves=25,
)


def _parses_or_parse_error(parser, text) -> None:  # type: ignore[no-untyped-def]
    try:
        records = parser(text)
    except ParseError as exc:
        assert str(exc)
    else:
        assert isinstance(records, tuple) and all(isinstance(r, LayerRecord) for r in records)


@given(st.text(max_size=300))
@FUZZ
def test_fuzz_text(text: str) -> None:
    for parser in (parse_layer_info, parse_profile, parse_layer_log):
        _parses_or_parse_error(parser, text)


@given(_LAYERISH)
@FUZZ
def test_fuzz_json_structures(value: object) -> None:
    for text in (json.dumps(value), json.dumps({"Layers": value}), json.dumps([{"count": 1}, value])):
        _parses_or_parse_error(parse_layer_info, text)
        _parses_or_parse_error(parse_profile, text)


@given(st.data())
@FUZZ
def test_fuzz_mutated_sample_names_the_layer(data: st.DataObject) -> None:
    graph = json.loads(_sample("fp16"))
    index = data.draw(st.integers(0, len(graph["Layers"]) - 1), label="layer")
    key = data.draw(st.sampled_from(["Name", "LayerType", "Inputs", "Outputs", "TacticName", "Accumulation"]))
    graph["Layers"][index][key] = data.draw(_LAYERISH, label="value")
    try:
        parse_layer_info(json.dumps(graph))
    except ParseError as exc:
        assert str(exc).startswith(f"layer {index}: ")


@given(st.data())
@FUZZ
def test_fuzz_mutated_profile_names_the_record(data: st.DataObject) -> None:
    profile = json.loads(_profile("fp32"))
    index = data.draw(st.integers(1, len(profile) - 1), label="record")
    key = data.draw(st.sampled_from(["name", "timeMs", "averageMs", "medianMs", "percentage"]))
    profile[index][key] = data.draw(_JSON, label="value")
    try:
        parse_profile(json.dumps(profile))
    except ParseError as exc:
        assert str(exc).startswith(f"record {index}: ")


@given(st.data())
@FUZZ
def test_fuzz_mangled_reference_log_names_the_line(data: st.DataObject) -> None:
    lines = _reference_logs()[1].split("\n")
    lineno = data.draw(st.integers(2, len(lines)), label="line")  # line 1 is "# Layers:"
    line = lines[lineno - 1]
    cut = data.draw(st.integers(0, len(line)), label="cut")
    junk = data.draw(st.text(alphabet="[]{},: ", max_size=4), label="junk")
    lines[lineno - 1] = line[:cut] + junk + line[cut:]
    try:
        parse_layer_log("\n".join(lines))
    except ParseError as exc:
        assert str(exc).startswith(f"line {lineno}: ")


def test_a_profiling_folder_is_read_by_the_trace_parsers(tmp_path) -> None:
    from mixprec_explorer.parsers import engine_name, read_layer_info_dir, read_trace_dir, trace_records

    with pytest.raises(ParseError, match="not a folder"):
        read_layer_info_dir(tmp_path / "missing")
    with pytest.raises(ParseError, match="no \\*_layer_information.json"):
        read_layer_info_dir(tmp_path)
    (tmp_path / f"{engine_name('_run_on_acc_0')}_layer_information.json").write_text('{"Layers": []}')
    (tmp_path / f"{engine_name('_run_on_acc_0')}_engine_execution_profile.trace").write_text("not json")
    assert list(read_layer_info_dir(tmp_path)) == ["_run_on_acc_0"]
    traces = read_trace_dir(tmp_path, ["_run_on_acc_0", "_run_on_acc_1"])
    assert list(traces) == ["_run_on_acc_0"]
    records, notes = trace_records(traces["_run_on_acc_0"], 3, "_run_on_acc_0")
    assert records == () and "could not be read" in notes[0]
