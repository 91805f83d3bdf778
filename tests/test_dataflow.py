"""Engine layers -> FX nodes through the dataflow, on real TensorRT-RTX engines recorded on an H200.

The folders of ``tests/data/trt_rtx_h200/`` hold the layer information and trex profiles of the
reference text's models and ``examples.resnet50(batch=8)`` (their ``meta.json`` gives the compile settings).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from mixprec_explorer import Explorer, Settings, examples
from mixprec_explorer.backends.base import Profile
from mixprec_explorer.errors import ParseError
from mixprec_explorer.parsers.dataflow import FxView, kernel_ops, match_engine_layers
from mixprec_explorer.records import LayerRecord

from _data import LIVE, RTX

CASES = sorted(p.name for p in RTX.iterdir() if p.is_dir())
#: Ops whose nodes must get a measured dtype and latency wherever they ran in an engine.
MEASURED_OPS = {"conv2d", "linear", "matmul", "batch_norm", "layer_norm", "relu_", "relu", "gelu", "softmax"}


@pytest.fixture(scope="module")
def explorers() -> dict[str, Explorer]:
    return {"resnet": Explorer(*examples.resnet50(batch=8)),
            "explicit": Explorer(*examples.reference_explicit_model()),
            "autocast": Explorer(*examples.reference_autocast_model())}


def _explorer(explorers: dict[str, Explorer], case: str) -> Explorer:
    return explorers["resnet" if "resnet" in case else "explicit" if "explicit" in case else "autocast"]


def _settings(case: str) -> Settings:
    """The settings the case was compiled with, read from its meta.json (strings as the recorder wrote them)."""
    kwargs = json.loads((RTX / case / "meta.json").read_text())["kwargs"]
    if not kwargs.get("enable_autocast"):
        return Settings()
    excluded = kwargs.get("autocast_excluded_nodes", "set()")
    patterns = {p.replace("\\\\", "\\") for p in excluded.strip("{}").replace("'", "").split(", ") if p and p != "set()"}
    return Settings(enable_autocast=True, autocast_low_precision_type=torch.float16,
                    autocast_excluded_nodes=patterns, use_fp32_acc=kwargs.get("use_fp32_acc") == "True")


@pytest.mark.parametrize("case", CASES)
def test_every_recorded_engine_lands_on_fx_nodes(explorers: dict[str, Explorer], case: str) -> None:
    ex = _explorer(explorers, case)
    profile = ex.load_profile(RTX / case / "profile")
    assert profile.attributed_share is not None and profile.attributed_share >= 0.95
    latency, dtypes = profile.node_latency_ms(), profile.node_dtypes()
    ran = [n for n, info in ex.nodes.items() if info.kind == "call_function" and info.removed_by is None]
    for name in ran:
        if ex.nodes[name].op.split(".")[-2] in MEASURED_OPS:
            assert latency.get(name, 0) > 0, f"{case}: {name} has no measured latency"
            assert dtypes.get(name) is not None, f"{case}: {name} has no measured dtype"
    # Per-node latencies add up to the engine's layer sum (nothing counted twice, nothing dropped).
    assert sum(latency.values()) == pytest.approx(profile.layer_sum_ms, rel=0.05)
    # Every layer says how sure its match is; only zero-time sync steps stay unmatched.
    for layer in profile.layers:
        assert layer.extra["match"]["confidence"] in ("exact", "likely", "partial", "glue", "named")
    assert all(not layer.latency_ms for layer in profile.unattributed)


@pytest.mark.parametrize("case", CASES)
def test_measured_dtypes_agree_with_the_prediction(explorers: dict[str, Explorer], case: str) -> None:
    """The fidelity check: each node's live-engine dtype equals the plan's (autocast mirrors the pass)."""
    ex = _explorer(explorers, case)
    profile = ex.load_profile(RTX / case / "profile")
    plan = ex.plan(_settings(case))
    measured = profile.node_dtypes()
    compared = [n for n in measured if n in ex.nodes and plan[n].dtype is not None
                and ex.nodes[n].op.split(".")[-2] in MEASURED_OPS]
    assert compared
    wrong = {n: (plan[n].dtype, measured[n]) for n in compared if plan[n].dtype != measured[n]}
    assert wrong == {}


def test_resnet_kernels_cover_conv_bn_relu(explorers: dict[str, Explorer]) -> None:
    profile = explorers["resnet"].load_profile(RTX / "resnet50_b8_fp16" / "profile")
    stem = next(r for r in profile.layers if r.name == "__myl_CorrMulAddRelu_myl0_1")
    assert stem.nodes == ("conv2d", "batch_norm", "relu_")
    assert stem.extra["match"]["confidence"] == "exact"
    assert dict(stem.node_dtypes) == dict.fromkeys(stem.nodes, torch.float16)
    # The conv carries most of a fused kernel's time, not a third of it.
    weights = dict(zip(stem.nodes, stem.node_weights))
    assert weights["conv2d"] > 0.5
    # The input cast + channel padding the engine adds is glue, charged to the stem that reads it.
    glue = next(r for r in profile.layers if r.name == "__myl_CastConc_myl0_0")
    assert glue.extra["match"]["confidence"] == "glue" and glue.nodes == stem.nodes


def test_casts_inside_a_kernel_split_its_dtypes(explorers: dict[str, Explorer]) -> None:
    """``...ReluCastMeanReshCast`` fed FP32: the ReLU ran in FP32, the mean after the cast in FP16."""
    profile = explorers["resnet"].load_profile(RTX / "resnet50_b8_fp16_excl_layer4_fc" / "profile")
    tail = next(r for r in profile.layers if "MeanResh" in r.name)
    dtypes = dict(tail.node_dtypes)
    assert dtypes["relu__48"] == torch.float32 and dtypes["adaptive_avg_pool2d"] == torch.float16


def test_bias_add_split_from_its_matmul_is_partial(explorers: dict[str, Explorer]) -> None:
    profile = explorers["autocast"].load_profile(RTX / "ref_autocast_excl_linear2" / "profile")
    by_name = {r.name: r for r in profile.layers}
    assert by_name["__myl_Add_myl0_3"].nodes == ("linear_2",)
    assert by_name["__myl_Add_myl0_3"].extra["match"]["confidence"] == "partial"
    assert dict(by_name["__myl_ReshMulSumAddCast_myl0_1"].node_dtypes) == {"linear_1": torch.float32}


def test_kernel_ops_reads_myelin_and_torch_tensorrt_names() -> None:
    assert kernel_ops("__myl_CorrMulAddRelu_myl0_1") == ("Corr", "Mul", "Add", "Relu")
    assert kernel_ops("[CONVOLUTION]-[aten_ops.convolution.default]-[layer4.2.conv3/convolution]_myl0_70") == ("Corr",)
    assert kernel_ops("something else") == ()
    # a [TYPE] word with no kernel word of its own: the op Torch-TensorRT names gives it
    assert kernel_ops("[UNARY]-[aten_ops.gelu.default]-[layers.0/gelu]") == ("Gelu",)


def test_a_layer_whose_output_fits_no_node_is_reported_not_guessed(explorers: dict[str, Explorer]) -> None:
    ex = explorers["autocast"]
    odd = LayerRecord("__myl_Relu_myl0_0", "kgen", extra={
        "Inputs": [{"Name": "x", "Dimensions": [1, 10]}], "Outputs": [{"Name": "t", "Dimensions": [1, 7]}]})
    (record,) = match_engine_layers([odd], FxView.of(ex.captured))
    assert record.nodes == () and record.extra["match"]["confidence"] == "unmatched"
    assert "7 elements" in record.extra["match"]["why"]


def test_load_profile_names_a_wrong_folder(explorers: dict[str, Explorer], tmp_path: Path) -> None:
    with pytest.raises(ParseError, match="enable_profiling"):
        explorers["autocast"].load_profile(tmp_path)
    with pytest.raises(ParseError, match="not a folder"):
        explorers["autocast"].load_profile(tmp_path / "nope")


def test_layers_on_a_second_stream_are_named_as_overlapping(explorers: dict[str, Explorer]) -> None:
    """ResNet-50 FP32 runs its four downsample branches on stream 1 beside the main path (12 layers with their
    zero-time sync steps): their time overlaps, which is why node latencies add up to more than end-to-end there
    (1.11-1.18x on the live H200, docs/timing.md)."""
    profile = explorers["resnet"].load_profile(RTX / "resnet50_b8_fp32" / "profile")
    assert any(n.startswith("12 layers (8.9 % of layer time) ran on a second stream") for n in profile.notes)
    assert profile.overlapped_ms == pytest.approx(0.089 * profile.layer_sum_ms, rel=0.01)
    downsample = {n for layer in profile.layers if layer.extra.get("StreamId") == 1 for n in layer.nodes}
    ex = explorers["resnet"]  # each stage's downsample conv and its batch norm (names differ between torch releases)
    assert downsample == {n for n, i in ex.nodes.items() if ".downsample." in f"{i.module}."}
    assert len(downsample) == 8
    profile = explorers["explicit"].load_profile(RTX / "ref_explicit" / "profile")
    assert not any("second stream" in n for n in profile.notes) and profile.overlapped_ms == 0.0


def test_a_folder_with_a_mapping_file_maps_through_it(explorers: dict[str, Explorer], tmp_path: Path) -> None:
    """ex.profile leaves mixprec_mapping.json beside the traces (post-decomposition names; for a cast-graph build
    the graph the engines came from): load_profile maps through it; a broken one is named, never half-used."""
    from mixprec_explorer.backends.tensorrt import TensorRTHandle, profile_from_dir, write_mapping_file
    from mixprec_explorer.parsers.assemble import MAPPING_FILE

    ex = explorers["resnet"]
    folder = tmp_path / "profile"
    shutil.copytree(RTX / "resnet50_b8_fp16" / "profile", folder)
    plain = ex.load_profile(folder)
    # the engines as if built from a copy of the graph whose every node carries a suffix, renamed back on load
    view = FxView.of(ex.captured).as_dict()
    suffix = {row["name"]: row["name"] + "_c" for row in view["nodes"] if row["kind"] == "call_function"}
    for row in view["nodes"]:
        row["name"], row["reads"] = suffix.get(row["name"], row["name"]), [suffix.get(r, r) for r in row["reads"]]
    handle = TensorRTHandle(module=None, engines=("_run_on_acc_0",), layer_info={}, runtime="cpp",
                            logging_dir=str(tmp_path), rename={v: k for k, v in suffix.items()})
    write_mapping_file(folder, handle)
    data = json.loads((folder / MAPPING_FILE).read_text())
    data["graph"] = view
    (folder / MAPPING_FILE).write_text(json.dumps({**data, "rename": {}}))
    assert set(profile_from_dir(folder, None).node_latency_ms()) <= set(suffix.values()), "placed on the file's graph"
    (folder / MAPPING_FILE).write_text(json.dumps(data))
    mapped = ex.load_profile(folder)  # and renamed back to the explorer's nodes
    assert mapped.attributed_share == pytest.approx(plain.attributed_share)
    assert mapped.node_dtypes() == plain.node_dtypes()
    assert mapped.node_latency_ms() == pytest.approx(plain.node_latency_ms())
    (folder / MAPPING_FILE).write_text('{"post_to_pre": []}')
    with pytest.raises(ParseError, match=MAPPING_FILE):
        ex.load_profile(folder)
    assert ex.last_profile is mapped


def test_a_graph_view_survives_json(explorers: dict[str, Explorer]) -> None:
    view = FxView.of(explorers["resnet"].captured)
    back = FxView.from_dict(json.loads(json.dumps(view.as_dict())))
    assert (back.inputs, back.outputs, dict(back.producers)) == (view.inputs, view.outputs, dict(view.producers))
    for name, info in view.nodes.items():
        got = back.nodes[name]
        assert (got.op, got.module, got.output_shapes, got.output_dtypes, got.flops) == (
            info.op, info.module, info.output_shapes, info.output_dtypes, info.flops)
    with pytest.raises(ParseError, match="as_dict"):
        FxView.from_dict({"nodes": [{"name": "x", "dtypes": ["torch.not_a_dtype"]}]})


def test_a_split_graph_without_a_mapping_file_says_what_it_lacks(explorers: dict[str, Explorer],
                                                                 tmp_path: Path) -> None:
    folder = tmp_path / "profile"
    shutil.copytree(RTX / "resnet50_b8_fp16" / "profile", folder)
    for path in list(folder.iterdir()):  # a second engine: the same files under _run_on_acc_2
        shutil.copy(path, folder / path.name.replace("_run_on_acc_0", "_run_on_acc_2"))
    notes = explorers["resnet"].load_profile(folder).notes
    assert any("2 engines and no mixprec_mapping.json" in n for n in notes)


ENCODER = LIVE / "encoder_b32_fp32"


def test_live_encoder_engine_lands_on_fx_nodes() -> None:
    """Recorded by ``benchmarks/run.py live`` on an H200 (TensorRT-RTX 1.4.0.76): attention decomposed into
    gemm + softmax kernels, layer norms split over two kernels, many view/transpose nodes."""
    ex = Explorer(*examples.transformer_encoder(batch=32, seq=128))
    profile = ex.load_profile(ENCODER)
    assert profile.attributed_share is not None and profile.attributed_share >= 0.95
    latency = profile.node_latency_ms()
    for name, info in ex.nodes.items():
        base = info.op.split(".")[-2] if info.op.count(".") > 2 else info.op
        if info.kind == "call_function" and base in MEASURED_OPS | {"scaled_dot_product_attention", "embedding"}:
            folded = name == "embedding_1"  # position embedding of a constant arange: folded at build time
            assert folded or latency.get(name, 0) > 0, name
    confidences = {layer.extra["match"]["confidence"] for layer in profile.layers}
    assert "split" in confidences  # attention scores and half layer norms are placed through their readers


def test_a_middle_engine_output_is_a_partition_edge_not_the_graph_output(explorers: dict[str, Explorer]) -> None:
    """A graph split into engines (``_run_on_acc_0``, PyTorch, ``_run_on_acc_2``...): an earlier engine's
    ``output0`` is what the next part reads, not graph output 0; engines run in number order (2 before 10)."""
    from mixprec_explorer.parsers.mapping import map_layers

    ex = explorers["autocast"]
    view = FxView.of(ex.captured)

    def gemm(engine: str, src: str, numel: int) -> LayerRecord:
        return LayerRecord("[MATRIX_MULTIPLY]_myl0_0", "gemm", extra={
            "engine": engine, "Inputs": [{"Name": src, "Dimensions": [1, 10]}],
            "Outputs": [{"Name": "output0", "Dimensions": [1, numel]}]})

    # linear1 (1x10) in the first engine, linear3 (1x40, the graph's output) in the last one
    attributed, _ = map_layers([gemm("_run_on_acc_2", "x", 10), gemm("_run_on_acc_10", "linear_1", 40)], view,
                               {n: i.module for n, i in ex.nodes.items() if i.kind == "call_function"})
    nodes = {r.extra["engine"]: r.nodes for r in attributed}
    assert nodes["_run_on_acc_2"] == ("linear",), "the first engine's output0 is linear1's output, 10 elements"
    assert nodes["_run_on_acc_10"] == ("linear_2",), "only the last engine's output0 is the graph's output"


class _TwoBlocks(torch.nn.Module):
    """Attention, residual + layer norm, GELU feed-forward, layer norm, and the next block's q/k/v attention."""

    def __init__(self, dim: int = 32, heads: int = 2) -> None:
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v, self.out = (torch.nn.Linear(dim, dim) for _ in range(4))
        self.ln1, self.ln2 = torch.nn.LayerNorm(dim), torch.nn.LayerNorm(dim)
        self.ff1, self.ff2 = torch.nn.Linear(dim, 4 * dim), torch.nn.Linear(4 * dim, dim)
        self.q2, self.k2, self.v2 = (torch.nn.Linear(dim, dim) for _ in range(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.view(b, n, self.heads, d // self.heads).transpose(1, 2)

        a = torch.nn.functional.scaled_dot_product_attention(split(self.q(x)), split(self.k(x)), split(self.v(x)))
        x = self.ln1(x + self.out(a.transpose(1, 2).reshape(b, n, d)))
        x = self.ln2(x + self.ff2(torch.nn.functional.gelu(self.ff1(x))))
        return torch.nn.functional.scaled_dot_product_attention(split(self.q2(x)), split(self.k2(x)),
                                                                split(self.v2(x)))


def _layer(name: str, ins: list[tuple[str, list[int]]], outs: list[tuple[str, list[int]]]) -> dict:
    def tensors(pairs: list[tuple[str, list[int]]]) -> list[dict]:
        return [{"Name": t, "Dimensions": dims, "Format/Datatype": "Float"} for t, dims in pairs]

    return {"Name": name, "LayerType": "gemm" if name.startswith("[") else "runtime_fusion",
            "Inputs": tensors(ins), "Outputs": tensors(outs), "Metadata": ""}


def test_an_engine_that_starts_inside_attention_lands_on_its_nodes() -> None:
    """BERT-base on TensorRT-RTX 1.4 (docs/live-engine.md): Torch-TensorRT runs each softmax in PyTorch, so every later
    engine starts at the softmax *inside* a decomposed scaled_dot_product_attention and ends at the next one's
    scores. Its kernels follow the layers recorded there (sizes scaled down): the attention finishes on its
    node, the second half of a split layer norm stays on that norm, the fused q/k/v gemm lands on its three
    linears, and a normalization kernel never lands on a linear."""
    from mixprec_explorer.parsers import parse_layer_info

    ex = Explorer(_TwoBlocks().eval(), (torch.randn(2, 8, 32),))
    # post-decomposition names, in graph order, as Torch-TensorRT's decomposition table gives them
    aliases = {"permute_2": "transpose_2", "mul": "scaled_dot_product_attention",
               "matmul": "scaled_dot_product_attention", "_safe_softmax": "scaled_dot_product_attention",
               "matmul_1": "scaled_dot_product_attention", "native_layer_norm": "layer_norm",
               "getitem": "layer_norm", "native_layer_norm_1": "layer_norm_1", "getitem_3": "layer_norm_1"}
    rows, d = 16, 32  # batch 2 x sequence 8 tokens, width 32
    qkv = "+".join(f"[MATRIX_MULTIPLY]-[aten_ops.linear.default]-[{m}/{n}_matrix_multiply]"
                   for m, n in (("v2", "linear_8"), ("k2", "linear_7"), ("q2", "linear_6")))
    layers = [
        _layer("[MATRIX_MULTIPLY]-[aten_ops.matmul.default]-[matmul_1]_myl0_0",
               [("_safe_softmax", [4, 8, 8]), ("permute_2", [4, 8, 16])], [("t1", [4, 8, 16])]),
        _layer("__myl_Tran_myl0_1", [("t1", [4, 8, 16])], [("t2", [4, 8, 16])]),
        _layer("[MATRIX_MULTIPLY]-[aten_ops.linear.default]-[out/linear_3_matrix_multiply]_myl0_2",
               [("t2", [rows, d])], [("t3", [rows, d])]),
        _layer("__myl_AddReshReshTranReshAddMeanSubMulMeanAddSqrtDivMulMulAdd_myl0_3",
               [("t3", [rows, d]), ("x", [2, 8, d])], [("t4", [rows, d])]),
        _layer("__myl_FcAddDivErfAddMulMul_myl0_4", [("t4", [rows, d])], [("t5", [rows, 4 * d])]),
        _layer("[MATRIX_MULTIPLY]-[aten_ops.linear.default]-[ff2/linear_5_matrix_multiply]_myl0_5",
               [("t5", [rows, 4 * d])], [("t6", [rows, d])]),
        _layer("__myl_AddAddMeanSubMulMean_myl0_6", [("t4", [rows, d]), ("t6", [rows, d])],
               [("t7", [rows, d]), ("t8", [rows, 1])]),
        _layer("__myl_AddSqrtDivMulMulAddReshTran_myl0_7", [("t7", [rows, d]), ("t8", [rows, 1])],
               [("output1", [2, 8, d]), ("t9", [rows, d])]),
        _layer(qkv + "_myl0_8", [("t9", [rows, d])], [("t10", [rows, 3 * d])]),
    ]
    records = parse_layer_info(json.dumps({"Layers": layers}))
    matched = match_engine_layers(records, FxView.of(ex.captured), aliases, first=False, last=False)
    nodes = {r.name.rsplit("_myl0_", 1)[-1]: set(r.nodes) for r in matched}
    assert nodes["0"] == {"scaled_dot_product_attention"}, "softmax @ V finishes the attention it came from"
    assert {"linear_3"} <= nodes["2"] and {"add", "layer_norm"} <= nodes["3"]
    assert {"linear_4", "gelu"} <= nodes["4"] and nodes["5"] == {"linear_5"}
    assert nodes["7"] == {"layer_norm_1"}, "the second half of a split layer norm stays on that norm"
    assert matched[7].extra["match"]["confidence"] == "partial"
    assert nodes["8"] == {"linear_6", "linear_7", "linear_8"}, "the fused q/k/v gemm runs the next block's linears"
    assert not any(ex.nodes[n].op.endswith("linear.default") for r in matched if "Gemm" not in
                   r.extra["match"]["ops"] and "Fc" not in r.extra["match"]["ops"] for n in r.nodes)


BERT = LIVE / "bert_base_b32_cast_fp16"


def test_live_bert_engines_that_start_inside_attention_land_on_fx_nodes() -> None:
    """Recorded by ``benchmarks/run.py live`` on an H200 (TensorRT-RTX 1.4.0.76, docs/live-engine.md): Hugging Face
    BERT-base (random weights, batch 32, sequence 128) built through the cast graph in FP16 with every layer's
    attention FP32, the exclusion its CompileFailure suggested. Torch-TensorRT runs each softmax in PyTorch, so 13
    engines each start inside an attention. ex.profile kept the cast graph in mixprec_mapping.json, so the folder
    maps without transformers."""
    from mixprec_explorer.backends.tensorrt import profile_from_dir
    from mixprec_explorer.parsers.assemble import read_mapping_file

    _, rename, view = read_mapping_file(BERT)
    assert view is not None
    profile = profile_from_dir(BERT, None)
    engines = list(dict.fromkeys(layer.extra["engine"] for layer in (*profile.layers, *profile.unattributed)))
    assert engines == [f"_run_on_acc_{k}" for k in range(0, 25, 2)], "execution order, not file-name order"
    assert profile.attributed_share is not None and profile.attributed_share >= 0.95
    latency, dtypes = profile.node_latency_ms(), profile.node_dtypes()
    ran = {rename[n]: info for n, info in view.nodes.items() if info.kind == "call_function" and n in rename
           and not rename[n].startswith("<cast>")
           and info.op.split(".")[-2] in MEASURED_OPS | {"scaled_dot_product_attention"}}
    assert len(ran) == 121  # 72 linears, 25 layer norms, 12 GELUs and 12 attentions
    for name, info in ran.items():
        assert latency.get(name, 0) > 0, f"{name} ({info.module}) has no measured latency"
        if info.op.endswith("linear.default"):
            want = torch.float32 if ".attention." in info.module else torch.float16
            assert dtypes.get(name) == want, (name, info.module, dtypes.get(name))


BERT_PLAIN = LIVE / "bert_base_b32_fp32_plain"


@pytest.mark.parametrize("names", ["plain", "with ex.profile's names"])
def test_a_split_graph_maps_the_same_from_a_folder_torch_tensorrt_wrote_alone(tmp_path, names) -> None:
    """Recorded on an H200 by a diagnosis since retired (TensorRT-RTX 1.4.0.76; docs/mapping.md): BERT-base FP32, batch 32,
    13 engines with PyTorch's softmax between them, the folder as Torch-TensorRT's runtime wrote it (layer
    information and traces only). Its later engines' inputs carry post-decomposition names (``_safe_softmax_1``)
    the captured graph lacks; their gemms' names place them. Live, both ways mapped 231 of 231 nodes as ex.profile
    did; here the plain folder must give the profile the post-decomposition names give."""
    from mixprec_explorer.backends.tensorrt import profile_from_dir
    from mixprec_explorer.parsers.assemble import MAPPING_FILE

    graph = json.loads((BERT_PLAIN.parent / "bert_base_b32_fp32_graph.json").read_text())
    recorded = json.loads((BERT_PLAIN.parent / "bert_base_b32_fp32_mixprec_mapping.json").read_text())

    def load(post_to_pre: dict) -> Profile:
        folder = tmp_path / str(len(post_to_pre))
        shutil.copytree(BERT_PLAIN, folder)  # the graph goes in as an explorer would give it (no transformers here)
        (folder / MAPPING_FILE).write_text(json.dumps({"format": 1, "post_to_pre": post_to_pre, "rename": {},
                                                       "graph": graph}))
        return profile_from_dir(folder, None)

    named = load(recorded["post_to_pre"])
    profile = load({}) if names == "plain" else named
    assert profile.attributed_share is not None and profile.attributed_share >= 0.95
    assert profile.node_latency_ms() == named.node_latency_ms() and profile.node_dtypes() == named.node_dtypes()
    view = FxView.from_dict(graph)
    ran = [n for n, info in view.nodes.items() if info.kind == "call_function"
           and info.op.split(".")[-2] in MEASURED_OPS | {"scaled_dot_product_attention"}]
    assert len(ran) == 121  # 72 linears, 25 layer norms, 12 GELUs and 12 attentions
    latency, dtypes = profile.node_latency_ms(), profile.node_dtypes()
    assert all(latency.get(n, 0) > 0 and dtypes.get(n) == torch.float32 for n in ran)
