"""attribute_layers: engine layers -> FX nodes of the pre-decomposition graph, never guessed."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from mixprec_explorer.parsers import attribute_layers, parse_layer_info, parse_layer_log, parse_profile
from mixprec_explorer.parsers.dataflow import FxView
from mixprec_explorer.parsers.mapping import check_engines, map_layers
from mixprec_explorer.records import LayerRecord

from _data import REFERENCE, SAMPLES

#: The reference's MyModule: three Linear layers, exported node names, and the decomposed addmm names
#: Torch-TensorRT's layer and tensor names carry.
REFERENCE_NODES = {"linear": "linear1", "_to_copy": "", "linear_1": "linear2", "_to_copy_1": "", "linear_2": "linear3"}
REFERENCE_POST_TO_PRE = {"addmm": "linear", "addmm_1": "linear_1", "addmm_2": "linear_2"}

#: A small block: fc1 -> relu -> fc2 -> root add.
NODES = {"linear": "block.fc1", "relu": "block", "linear_1": "block.fc2", "add": "", "mul": ""}


def _explicit_log() -> str:
    text = REFERENCE.read_text()
    block = text.split("# Debug log info")[2].split("\n")[1:]
    return "\n".join(line for line in block[: next(i for i, x in enumerate(block) if not x.startswith("#"))])


def test_reference_myelin_layers_map_to_their_linears() -> None:
    layers = parse_layer_log(_explicit_log())
    done, left = attribute_layers(layers, REFERENCE_NODES, REFERENCE_POST_TO_PRE)
    assert left == ()
    assert [r.nodes for r in done] == [("linear",), ("linear_1",), ("linear_2",)]
    # Without the post->pre map, the module paths still attribute them (all nodes of that module).
    done, left = attribute_layers(layers, REFERENCE_NODES)
    assert [r.nodes for r in done] == [("linear",), ("linear_1",), ("linear_2",)]


def test_suffixes_resolve_against_real_node_names() -> None:
    layers = [
        LayerRecord("[MATRIX_MULTIPLY]-[aten_ops.linear.default]-[block.fc2/linear_1_matrix_multiply]"),
        LayerRecord("[ELEMENTWISE]-[aten_ops.linear.default]-[block.fc1/linear_add_bias]"),
        LayerRecord("[ELEMENTWISE]-[aten_ops.add.Tensor]-[/add]"),
        LayerRecord(
            "Cast ITensor t from DataType.FLOAT to DataType.HALF - [unknown_ir_ops]-[block.fc2/linear_1_output_casted]"
        ),
    ]
    done, left = attribute_layers(layers, NODES)
    assert left == ()
    assert [r.nodes for r in done] == [("linear_1",), ("linear",), ("add",), ("linear_1",)]
    assert done[0].modules == layers[0].modules  # other fields untouched


def test_fused_and_foreign_layers_get_several_nodes() -> None:
    fused = LayerRecord(
        "[MATRIX_MULTIPLY]-[aten_ops.linear.default]-[block.fc1/linear_matrix_multiply] + "
        "[ELEMENTWISE]-[aten_ops.linear.default]-[block.fc1/linear_add_bias] + [ACTIVATION]-[aten_ops.relu.default]-[block/relu]"
    )
    foreign = LayerRecord(
        "{ForeignNode[[MATRIX_MULTIPLY]-[aten_ops.linear.default]-[block.fc1/linear_matrix_multiply]...[ELEMENTWISE]-[aten_ops.add.Tensor]-[/add]]}"
    )
    done, _ = attribute_layers([fused, foreign], NODES)
    assert [r.nodes for r in done] == [("linear", "relu"), ("linear", "add")]


def test_node_in_another_module_is_not_taken() -> None:
    # The name says block.fc1, but the graph's "linear_1" lives in block.fc2: fall back to block.fc1's nodes.
    (record,), _ = attribute_layers(
        [LayerRecord("[SHUFFLE]-[aten_ops.view.default]-[block.fc1/linear_1_reshape]")], NODES
    )
    assert record.nodes == ("linear",)


def test_unknown_node_falls_back_to_its_module() -> None:
    layers = [
        LayerRecord("[SHUFFLE]-[aten_ops.permute.default]-[block.fc2/permute_7]"),  # decomposition-only node
        LayerRecord("[ELEMENTWISE]-[aten_ops.sub.Tensor]-[/sub_9]"),  # root, unknown: not all root nodes
        LayerRecord("[SHUFFLE]-[aten_ops.view.default]-[view_3]"),  # no module path, unknown node
    ]
    done, left = attribute_layers(layers, NODES)
    assert [r.nodes for r in done] == [("linear_1",), ("add", "mul")]
    assert [r.name for r in left] == [layers[2].name]


def test_module_without_direct_nodes_uses_its_submodules() -> None:
    (record,), _ = attribute_layers(
        [LayerRecord("[X]-[aten_ops.y]-[block.fc1.inner/thing]")], {"a": "block.fc1.inner.q"}
    )
    assert record.nodes == ("a",)
    (record,), _ = attribute_layers([LayerRecord("[X]-[aten_ops.y]-[block/z]")], {"a": "block.fc1", "b": "blocks.x"})
    assert record.nodes == ("a",)  # "blocks.x" is not under "block"


def test_what_cannot_be_attributed_is_left_alone() -> None:
    layers = [
        LayerRecord("(Unnamed Layer* 12) [Constant]"),
        LayerRecord("__myl_MulSum_myl0_0"),
        LayerRecord("Reformatting CopyNode for Input Tensor 0 to Conv_0 + Relu_1"),
        LayerRecord("[X]-[aten_ops.y]-[other.module/linear]"),
    ]
    done, left = attribute_layers(layers, NODES)
    assert done == () and left == tuple(layers)


def test_records_that_already_name_nodes_or_modules() -> None:
    torch_rows = [
        LayerRecord("aten.addmm", nodes=("addmm",)),
        LayerRecord("fc2 block", modules=("block.fc2",)),
        LayerRecord("nothing", nodes=("ghost",)),
    ]
    done, left = attribute_layers(torch_rows, NODES, {"addmm": "linear"})
    assert [r.nodes for r in done] == [("linear",), ("linear_1",)]
    assert [r.name for r in left] == ["nothing"]


def test_onnx_engine_layers_stay_unattributed() -> None:
    path = next(SAMPLES.glob("resnet_A100_fp16_*graph.json"))
    layers = parse_layer_info(path.read_text())
    done, left = attribute_layers(layers, {"conv2d": "conv1", "relu": "relu"})
    assert done == () and len(left) == 36


def test_profile_and_layer_info_attribute_alike() -> None:
    name = "[MATRIX_MULTIPLY]-[aten_ops.linear.default]-[block.fc1/linear_matrix_multiply]"
    info = parse_layer_info(json.dumps({"Layers": [name]}))
    profile = parse_profile(json.dumps([{"name": name, "timeMs": 1.0, "averageMs": 1.0, "percentage": 100.0}]))
    (a,), _ = attribute_layers(info, NODES)
    (b,), _ = attribute_layers(profile, NODES)
    assert a.nodes == b.nodes == ("linear",)
    assert b.latency_ms == 1.0


@given(
    st.lists(st.text(max_size=60), max_size=8), st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=6)
)
@settings(max_examples=150, deadline=None)
def test_fuzz_partition_is_complete_and_only_uses_graph_nodes(names: list[str], node_modules: dict[str, str]) -> None:
    layers = [LayerRecord(n) for n in names]
    done, left = attribute_layers(layers, node_modules)
    assert len(done) + len(left) == len(layers)
    assert all(r.nodes and set(r.nodes) <= set(node_modules) for r in done)


def _linear_engine(batch: int, modules: tuple[str, ...] = ("linear1", "linear2", "linear3")) -> list[LayerRecord]:
    """One engine of the reference autocast model's three linears (10 -> 10 -> 30 -> 40) as Torch-TensorRT names
    its gemms, reading ``x`` of ``batch`` rows."""
    widths, tensors = (10, 10, 30, 40), ("x", "t1", "t2", "output0")
    return [LayerRecord(f"[MATRIX_MULTIPLY]-[aten_ops.linear.default]-[{m}/linear_matrix_multiply]", "gemm", extra={
        "engine": "_run_on_acc_0", "Inputs": [{"Name": tensors[k], "Dimensions": [batch, widths[k]]}],
        "Outputs": [{"Name": tensors[k + 1], "Dimensions": [batch, widths[k + 1]]}]}) for k, m in enumerate(modules)]


def test_engine_check_weighs_inputs_names_and_placement(autocast_ex) -> None:
    view = FxView.of(autocast_ex.captured)
    modules = {n: i.module for n, i in autocast_ex.nodes.items() if i.kind == "call_function"}

    def check(layers: list[LayerRecord]):
        done, left = map_layers(layers, view, modules)
        return check_engines([*done, *left], view)

    right = check(_linear_engine(1))
    assert (right.score, right.contradicts, right.differences) == (1.0, False, ())
    assert right.summary() == "inputs 1/1, outputs 1/1, module names 3/3, compute layers placed 3/3, tensor sizes 4/4"
    batch = check(_linear_engine(2))
    assert batch.contradicts and batch.inputs == (0, 1)
    assert "input 'x' is [2, 10]; this graph's input 'x' is [1, 10]" in batch.differences[0]
    renamed = check(_linear_engine(1, ("linear1", "linear2", "head")))
    assert renamed.names == (2, 3) and renamed.contradicts and "modules this graph lacks: 'head'" in renamed.differences[0]
