"""Dtype mismatches explained (issue #21): where the engine's kernels show why a node's measured dtype differs from
the plan's, the profile's records and the graph figure's mismatch colour say so; everything else stays unexplained.

All on recorded TensorRT-RTX engines (tests/data/SOURCES.md): BERT-base's cast FP16 folder (the plan with every
layer's attention kept FP32, as recorded), the encoder's and ResNet-50's folders. The FP32-operand case has no
folder here; its kernel name and dtypes are the live H200 run's (docs/results/live_engine_h200.md).
"""

from __future__ import annotations

import dataclasses
import warnings

import pytest
import torch

from mixprec_explorer import Explorer, Settings, examples
from mixprec_explorer.dtypes import display_name
from mixprec_explorer.errors import ProfileMismatch
from mixprec_explorer.parsers.mapping import ProfileMatchWarning
from mixprec_explorer.parsers.mismatch import (
    FP32_OPERAND,
    NORM_STATISTICS,
    REASONS,
    explain_mismatch,
    mismatch_reasons,
)
from mixprec_explorer.viz import graph as vg
from mixprec_explorer.viz.colors import MISMATCH_COLORS

from _data import LIVE, RTX

FP16 = Settings(enable_autocast=True, autocast_low_precision_type=torch.float16)
#: the plan BERT-base's cast FP16 folder was built from: FP16, each layer's attention FP32 (docs/live-engine.md)
BERT_FP16 = FP16.replace(autocast_excluded_nodes=frozenset({r"^bert\.encoder\.layer\.\d+\.attention(\.|$)"}))
EXCL_LAYER4_FC = FP16.replace(autocast_excluded_nodes=frozenset({r"^layer4(\.|$)", "^fc$"}))


def _colour_of(fig, index: int) -> str:
    marker = fig.data[vg.NODES].marker
    frac = (float(marker.color[index]) - marker.cmin) / (marker.cmax - marker.cmin)
    return [c for p, c in marker.colorscale if p <= frac + 1e-12][-1]


def _differing(profile, plan) -> set[str]:
    """The nodes whose measured dtype differs from the plan's, counted here without the explainer."""
    return {n for n, got in profile.node_dtypes().items()
            if plan.get(n) is not None and plan[n].dtype is not None and display_name(got) != display_name(plan[n].dtype)}


@pytest.fixture(scope="module")
def bert() -> Explorer:
    """BERT-base (random weights, BertConfig()) as benchmarks/bench_live.py recorded it: ids in, last hidden state
    out, batch 32, sequence 128; the recorded cast FP16 folder loaded."""
    transformers = pytest.importorskip("transformers")

    class Bert(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = transformers.BertModel(transformers.BertConfig(), add_pooling_layer=False)

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            return self.bert(input_ids=ids).last_hidden_state

    torch.manual_seed(0)
    ex = Explorer(Bert().eval(), (torch.randint(0, 30522, (32, 128)),))
    with warnings.catch_warnings():  # this transformers release traces a few views differently: score 0.93
        warnings.simplefilter("ignore", ProfileMatchWarning)
        try:
            ex.load_profile(LIVE / "bert_base_b32_cast_fp16")
        except ProfileMismatch as err:
            if torch.__version__ >= "2.11":  # the folder's torch: its trace must match
                raise
            pytest.skip(f"torch {torch.__version__} traces BERT unlike torch 2.11, which recorded the folder: {err}")
    return ex


@pytest.fixture(scope="module")
def resnet() -> Explorer:
    return Explorer(*examples.resnet50(batch=8))


def _last_residual_add(ex: Explorer) -> str:
    """The last residual add: ``add__15`` (``add_.Tensor``) as torch 2.14 exports ``out += identity``, ``add_15``
    (``add.Tensor``) as torch 2.13 does."""
    return next(n for n, i in reversed(ex.nodes.items()) if i.op in ("torch.ops.aten.add_.Tensor",
                                                                        "torch.ops.aten.add.Tensor"))


def test_berts_fp16_layer_norms_come_back_explained_and_the_counts_add_up(bert: Explorer) -> None:
    profile, plan = bert.last_profile, bert.plan(BERT_FP16)
    found = profile.dtype_mismatches(plan)
    assert {m.node for m in found} == _differing(profile, plan)
    explained = [m for m in found if m.explained]
    unexplained = [m for m in found if not m.explained]
    assert len(explained) + len(unexplained) == len(found) == 16
    # every layer norm planned FP16 (the 12 output LayerNorms and the embeddings'; attention's are planned FP32)
    norms = [n for n, info in bert.nodes.items() if info.op == "torch.ops.aten.layer_norm.default"
             and plan[n].dtype == torch.float16]
    assert len(norms) == 13
    assert {m.node: m.reason for m in explained} == dict.fromkeys(norms, NORM_STATISTICS)
    second = next(m for m in found if m.node == "layer_norm_2")
    assert (second.planned, second.measured) == (torch.float16, torch.float32)
    assert second.layers == ("__myl_AddAddCastMeanSubMulMean_myl0_6",)
    # the embedding gather and its adds, fused before the first norm's cast, run FP32 too: nothing documents why
    assert sorted(m.node for m in unexplained) == ["add", "add_1", "embedding"]


def test_the_mismatch_colour_and_hover_say_the_reason(bert: Explorer) -> None:
    fig = bert.figure(settings=BERT_FP16, color_by="mismatch", group_by_module=None)
    points = list(fig.data[vg.NODES].customdata)
    hover = dict(zip(points, fig.data[vg.NODES].hovertext))
    assert _colour_of(fig, points.index("layer_norm_2")) == MISMATCH_COLORS[NORM_STATISTICS]
    assert _colour_of(fig, points.index("embedding")) == MISMATCH_COLORS["mismatch"]
    assert _colour_of(fig, points.index("layer_norm_1")) == MISMATCH_COLORS["match"]  # attention's, planned FP32
    assert f"explained: {NORM_STATISTICS}" in hover["layer_norm_2"]
    assert "differs from predicted FP16" in hover["embedding"] and "explained" not in hover["embedding"]
    assert NORM_STATISTICS in [t.name for t in fig.data]  # a legend entry
    collapsed = bert.figure(settings=BERT_FP16, color_by="mismatch", group_by_module=1)
    group = dict(zip(collapsed.data[vg.NODES].customdata, collapsed.data[vg.NODES].hovertext))["module:bert"]
    assert f"measured dtype differs: 16 nodes, 13 explained ({NORM_STATISTICS})" in group


def test_an_fp32_engine_explains_nothing_of_an_fp16_plan() -> None:
    """The encoder's FP32 engine against an FP16 plan: its 25 layer norms differ too, but no kernel casts, so the
    engine shows no reason (it was built FP32) and all stay unexplained."""
    ex = Explorer(*examples.transformer_encoder(batch=32, seq=128))
    profile = ex.load_profile(LIVE / "encoder_b32_fp32")
    plan = ex.plan(FP16)
    found = profile.dtype_mismatches(plan)
    planned_low = {n for n in profile.node_dtypes() if plan.get(n) is not None and plan[n].dtype == torch.float16}
    assert {m.node for m in found} == _differing(profile, plan) == planned_low and len(found) > 400
    assert [m for m in found if m.explained] == []
    assert sum(m.op == "torch.ops.aten.layer_norm.default" for m in found) == 25
    assert profile.dtype_mismatches(ex.plan(Settings())) == ()


def test_a_plan_the_engine_was_not_built_from_stays_unexplained(resnet: Explorer) -> None:
    """ResNet-50's engine with layer4 and fc FP32 against the all-FP16 plan: layer4's last batch norm, add and ReLU
    ran in ``__myl_MulAddAddReluCastMeanReshCast``, which casts and reduces, but after them (the pool's mean): no
    reason. The plan it was built from differs in one view only (flatten, fused into the FP32 fc)."""
    profile = resnet.load_profile(RTX / "resnet50_b8_fp16_excl_layer4_fc" / "profile")
    found = {m.node: m for m in profile.dtype_mismatches(resnet.plan(FP16))}
    assert len(found) == 34 and not any(m.explained for m in found.values())
    assert found["batch_norm_52"].layers == ("__myl_MulAddAddReluCastMeanReshCast_myl0_73",)
    assert {"batch_norm_52", _last_residual_add(resnet), "relu__48"} <= found.keys()
    own = profile.dtype_mismatches(resnet.plan(EXCL_LAYER4_FC))
    assert [(m.node, m.planned, m.measured, m.reason) for m in own] == [
        ("flatten", torch.float16, torch.float32, None)]


def test_an_elementwise_node_whose_kernel_reads_an_fp32_operand_is_explained(resnet: Explorer) -> None:
    """The live run's ResNet-50 case (autocast FP16): the last residual add and its ReLU, planned FP16, ran FP32 in
    ``__myl_CastReshAddMoveReluMean_myl0_71``, which reads the FP16 branch and an FP32 one. The recorded FP16 engine's
    kernel for them reads FP16 only, the layer4-FP32 engine's casts after them: no reason there."""
    plan, add = resnet.plan(FP16), _last_residual_add(resnet)
    assert plan[add].dtype == plan["relu__48"].dtype == torch.float16
    measured = {add: torch.float32, "relu__48": torch.float32}

    def reasons(kernel: str, reads: tuple[torch.dtype, ...] | None) -> dict[str, str | None]:
        return mismatch_reasons(plan, measured, dict.fromkeys(measured, (kernel,)),
                                None if reads is None else dict.fromkeys(measured, (reads,)))

    live = "__myl_CastReshAddMoveReluMean_myl0_71"
    assert reasons(live, (torch.float16, torch.float32)) == {add: FP32_OPERAND, "relu__48": FP32_OPERAND}
    assert reasons(live, None) == {add: None, "relu__48": None}  # no input dtypes, no evidence
    from mixprec_explorer.viz.colors import mismatch_explanations
    from mixprec_explorer.viz.overlay import gather_overlay

    profile = resnet.load_profile(RTX / "resnet50_b8_fp16" / "profile")  # the live kernel, on a real profile's layer
    layer = next(x for x in profile.layers if "relu__48" in x.nodes)
    live_layer = dataclasses.replace(layer, name=live, input_dtypes=(torch.float16, torch.float32))
    relabelled = dataclasses.replace(profile, layers=tuple(live_layer if x is layer else x for x in profile.layers))
    shown = mismatch_explanations(plan, dataclasses.replace(gather_overlay(relabelled), measured=measured))
    assert shown == {add: FP32_OPERAND, "relu__48": FP32_OPERAND}, "the figure gives the records' reason"
    for folder in ("resnet50_b8_fp16", "resnet50_b8_fp16_excl_layer4_fc"):
        layer = next(x for x in resnet.load_profile(RTX / folder / "profile").layers if "relu__48" in x.nodes)
        assert reasons(layer.name, layer.input_dtypes) == {add: None, "relu__48": None}, folder


@pytest.mark.parametrize(("op", "planned", "measured", "kernel", "operands", "reason"), [
    # kernels recorded live (docs/results/live_engine_h200.md) and in tests/data: a cast, then the statistics
    ("torch.ops.aten.layer_norm.default", torch.float16, torch.float32,
     "__myl_ReshTranAddCastMeanSubMulMeanAddSqrtDivMulCastMulAdd_myl0_10", (), NORM_STATISTICS),
    ("torch.ops.aten.native_layer_norm.default", torch.bfloat16, torch.float32,
     "__myl_GathAddCastMeanSubMulMean_myl0_0", (), NORM_STATISTICS),
    # the FP32 encoder's layer norm kernel: no cast, no reason
    ("torch.ops.aten.layer_norm.default", torch.float16, torch.float32,
     "__myl_ReshTranAddReshMeanSubMulMeanAddSqrtDivMulMulAdd_myl0_13", (), None),
    # planned FP32, measured FP16: never the engine keeping FP32
    ("torch.ops.aten.layer_norm.default", torch.float32, torch.float16,
     "__myl_AddAddCastMeanSubMulMean_myl0_6", (), None),
    # a matmul in a kernel that casts (the reference model's): no rule covers it
    ("torch.ops.aten.linear.default", torch.float16, torch.float32, "__myl_CastReshMulSumAddCast_myl0_0",
     (torch.float32,), None),
    # softmax is in ops.NORM_OPS, but no engine is known to keep it FP32 (the FP32 encoder's kernel)
    ("torch.ops.aten._softmax.default", torch.float16, torch.float32, "__myl_MaxrSubExpSumDivMul_myl0_8", (), None),
])
def test_explain_mismatch_on_recorded_kernel_names(op, planned, measured, kernel, operands, reason) -> None:
    assert explain_mismatch(op, planned, measured, [kernel], operands) == reason


def test_the_reasons_are_the_colour_categories() -> None:
    assert set(REASONS) < set(MISMATCH_COLORS) and len(set(MISMATCH_COLORS.values())) == len(MISMATCH_COLORS)
