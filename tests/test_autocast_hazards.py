"""Where Torch-TensorRT's own autocast breaks a plan, on real zoo models (CPU, small sizes, random weights): the
plan and ``build='auto'`` see it before any compile, and the cast graph the build then takes re-exports, runs and
stays close to FP32. Failures seen on the live engine (TensorRT-RTX 1.4, Torch-TensorRT 2.11, H100)."""

from __future__ import annotations

import ast
import math
import re
from pathlib import Path

import pytest
import torch
from torch.utils import _pytree as pytree

from mixprec_explorer import Explorer, Settings, zoo
from mixprec_explorer.backends.cast_graph import cast_program_with_notes, node_dtypes
from mixprec_explorer.backends.tensorrt import AUTO_CAST_GRAPH_NOTE, build_mode, compile_failure
from mixprec_explorer.backends.torch_plan import apply_plan, overflowing_fills
from mixprec_explorer.ops import SDPA_OP, op_basename

FP16 = Settings(enable_autocast=True, autocast_low_precision_type=torch.float16)


def _explorer(name: str) -> tuple[Explorer, torch.nn.Module, tuple]:
    pytest.importorskip(zoo.entry(name).requires[0])
    model, inputs = zoo.build(name, size="small", batch=2, seed=0)
    return Explorer(model, inputs), model, inputs


def _rel_l2(program: torch.export.ExportedProgram, model: torch.nn.Module, inputs: tuple) -> float:
    with torch.no_grad():
        ref = [t for t in pytree.tree_leaves(model(*inputs)) if isinstance(t, torch.Tensor)]
        out = [t for t in pytree.tree_leaves(program.module()(*inputs)) if isinstance(t, torch.Tensor)]
    assert len(ref) == len(out)
    num = sum(float((o.float() - r.float()).norm()) ** 2 for o, r in zip(out, ref))
    den = sum(float(r.float().norm()) ** 2 for r in ref)
    return math.sqrt(num / den)


def test_a_multi_output_op_sends_auto_to_the_cast_graph_which_runs() -> None:
    """ShuffleNetV2's chunk returns two tensors; 2.11's rule_based_autocast re-types a classified node's output with
    node.meta['val'].to(...), which a list lacks ("'tuple' object has no attribute 'to'", live)."""
    ex, model, inputs = _explorer("shufflenet_v2")
    plan = ex.plan(FP16)
    chunks = [n for n, i in ex.nodes.items() if op_basename(i.op) == "chunk"]
    assert chunks and set(chunks) <= {n for n, _ in plan.failures}
    mode, note = build_mode(plan, "auto", ex.captured.graph_module.graph)
    assert mode == "cast_graph" and note.startswith(AUTO_CAST_GRAPH_NOTE)
    assert "plan.failures" in note and chunks[0] in note
    assert build_mode(plan, "autocast", ex.captured.graph_module.graph) == ("autocast", "")  # forced: as given
    live = "'tuple' object has no attribute 'to'"
    failure = compile_failure(AttributeError(live), ex, ex, plan, {}, "autocast", Path("log.txt"))
    assert any(chunks[0] in r and "build='cast_graph'" in r for r in failure.remedies)
    assert build_mode(ex.plan(Settings()), "auto", ex.captured.graph_module.graph) == ("autocast", "")
    program = ex.cast_program(FP16)
    dtypes = node_dtypes(program)
    assert all(dtypes[n] == torch.float16 for n in chunks)
    assert _rel_l2(program, model, inputs) < 1e-2


def test_fill_values_beyond_fp16_are_written_as_its_extreme() -> None:
    """T5 masks with torch.finfo(float32).min through where.ScalarOther; decomposed for an FP16 self that becomes
    aten.scalar_tensor(-3.4e38, dtype=float16), which Torch-TensorRT's constant folding runs on the GPU: "value
    cannot be converted to type c10::Half without overflow" (live). The cast graph writes FP16's lowest instead."""
    ex, model, inputs = _explorer("t5_small_encoder")
    plan = ex.plan(FP16)
    graph = ex.captured.graph_module.graph
    fills = overflowing_fills(graph, plan)
    assert fills and all(op_basename(ex.nodes[n].op) == "where" and v < -65504 for n, v, _ in fills)
    assert not overflowing_fills(graph, ex.plan(Settings()))
    excluded = FP16.replace(autocast_excluded_nodes=frozenset({ex.nodes[fills[0][0]].module.replace(".", r"\.")}))
    assert fills[0][0] not in {n for n, _, _ in overflowing_fills(graph, ex.plan(excluded))}  # FP32: fits
    mode, note = build_mode(plan, "auto", graph)
    assert mode == "cast_graph" and f"{fills[0][0]}" in note and "overflow" in note
    # forced through autocast, the failure says where and what builds
    live = ("value cannot be converted to type c10::Half without overflow\n\nWhile executing %scalar_tensor : "
            "[num_users=1] = call_function[target=torch.ops.aten.scalar_tensor.default](args = (-3.4028234663852886e+38,)"
            ", kwargs = {dtype: torch.float16})")
    failure = compile_failure(RuntimeError(live), ex, ex, plan, {}, "autocast", Path("log.txt"))
    assert any(fills[0][0] in r and "build='cast_graph'" in r for r in failure.remedies)

    program, notes = cast_program_with_notes(ex, FP16)
    assert any("-65504" in n and fills[0][0] in n for n in notes)
    decomposed = program.run_decompositions()  # what Torch-TensorRT lowers before constant folding
    for node in decomposed.graph.nodes:
        if node.op == "call_function" and op_basename(str(node.target)) in ("scalar_tensor", "full", "where"):
            values = [a for a in node.args if isinstance(a, float)]
            assert all(abs(v) <= torch.finfo(torch.float16).max for v in values), (node.name, node.args)
    assert _rel_l2(program, model, inputs) < 1e-2


class _RotaryLike(torch.nn.Module):
    """A projection beside a rotary-style table computed with autocast off, as Hugging Face Llama's rotary embedding
    is written in transformers 4.x (``with torch.autocast(device_type, enabled=False)``): export makes a
    wrap_with_autocast region whose subgraph asserts the FP32 input it was traced with."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = torch.nn.Linear(16, 8)
        self.register_buffer("inv_freq", torch.linspace(0.1, 1.0, 8))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        table = self.inv_freq[None, :].expand(x.shape[0], 8)
        with torch.autocast("cpu", enabled=False):
            angles = table.float() * 3.0
            cos = angles.cos()
        return self.proj(x) * cos


def test_an_autocast_region_keeps_the_dtypes_it_was_traced_with() -> None:
    """Llama-small's FP16 cast graph failed live: "torch.export could not re-export the cast graph: AssertionError:
    Tensor dtype mismatch! Expected: torch.float32, Got: torch.float16" (the region's input had become FP16)."""
    torch.manual_seed(0)
    model, x = _RotaryLike().eval(), torch.randn(4, 16)
    ex = Explorer(model, (x,))
    plan = ex.plan(FP16)
    regions = [n for n, i in ex.nodes.items() if i.op.endswith("wrap_with_autocast")]
    assert regions and all(plan[n].rule == "autocast_region" for n in regions)
    (producer,) = [a.name for a in ex.captured.graph_module.graph.find_nodes(
        op="call_function", target=torch.ops.higher_order.wrap_with_autocast)[0].all_input_nodes
                   if a.op == "call_function"]
    assert plan[producer].dtype == torch.float16  # what made the region's input FP16

    program, notes = cast_program_with_notes(ex, FP16)
    assert any("torch.autocast region" in n and regions[0] in n for n in notes)
    region = next(n for n in program.graph.nodes if n.target is torch.ops.higher_order.wrap_with_autocast)
    assert all(a.meta["val"].dtype == torch.float32 for a in region.all_input_nodes if "val" in a.meta)
    assert node_dtypes(program)["linear"] == torch.float16
    assert _rel_l2(program, model, (x,)) < 1e-2
    # the PyTorch backend's copy of the plan runs too (the region's own asserts are dropped, as Torch-TensorRT's are)
    planned = apply_plan(ex.exported_program, plan)
    with torch.no_grad():
        assert torch.allclose(planned.module(x).float(), model(x), rtol=1e-2, atol=1e-2)


class _LlamaRotary(torch.nn.Module):
    """Hugging Face Llama's rotary embedding as transformers 4.x writes it: ``@torch.no_grad()`` around an
    autocast-off region. Export makes a wrap_with_set_grad_enabled region (two outputs) holding the autocast one."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("inv_freq", torch.linspace(0.1, 1.0, 4), persistent=False)

    @torch.no_grad()
    def forward(self, x: torch.Tensor, position_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        inv = self.inv_freq[None, :, None].float().expand(position_ids.shape[0], -1, 1)
        pos = position_ids[:, None, :].float()
        with torch.autocast(device_type="cpu", enabled=False):
            freqs = (inv.float() @ pos.float()).transpose(1, 2)
            emb = torch.cat((freqs, freqs), dim=-1)
            cos, sin = emb.cos(), emb.sin()
        return cos.to(dtype=x.dtype), sin.to(dtype=x.dtype)


class _Attention(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.q_proj = torch.nn.Linear(8, 8)
        self.rotary = _LlamaRotary()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(x.shape[1])[None].expand(x.shape[0], -1)
        cos, sin = self.rotary(x, positions)
        q = self.q_proj(x)
        return q * cos + q * sin


def test_a_rotary_embedding_under_no_grad_and_autocast_off_builds_through_the_cast_graph() -> None:
    """The live Llama failure as transformers 4.x writes the rotary embedding: the autocast pass raises on the
    no_grad region (two outputs), build='auto' takes the cast graph, whose re-export failed on the inner region's
    FP32 asserts ("Tensor dtype mismatch! Expected: torch.float32, Got: torch.float16")."""
    torch.manual_seed(0)
    model, x = _Attention().eval(), torch.randn(2, 5, 8)
    ex = Explorer(model, (x,))
    plan = ex.plan(FP16)
    region = next(n for n, i in ex.nodes.items() if i.op.endswith("wrap_with_set_grad_enabled"))
    assert region in {n for n, _ in plan.failures}
    assert build_mode(plan, "auto", ex.captured.graph_module.graph)[0] == "cast_graph"
    program = ex.cast_program(FP16)
    assert node_dtypes(program)["linear"] == torch.float16
    assert _rel_l2(program, model, (x,)) < 1e-2


#: The first lines Torch-TensorRT 2.11 raised live for GPT-2 under FP16 (the cast graph, chosen by build='auto').
GPT2_ERROR = ("add_cast(): incompatible function arguments. The following argument types are supported:\n"
              "    1. (self: tensorrt_rtx.INetworkDefinition, input: tensorrt_rtx.ITensor, to_type: "
              "tensorrt_rtx.DataType) -> tensorrt_rtx.ICastLayer\n\nWhile executing "
              "%_scaled_dot_product_cudnn_attention : [num_users=1] = call_function[target=torch.ops.aten."
              "_scaled_dot_product_cudnn_attention.default](args = (%mul, %mul_1, %to_3, %_frozen_param3, False, "
              "0.0, False, False), kwargs = {scale: 0.125})")


def test_a_failure_in_the_fused_attention_converter_names_its_cause_and_remedies_that_apply() -> None:
    ex, _, _ = _explorer("gpt2")
    plan = ex.plan(FP16)
    failure = compile_failure(TypeError(GPT2_ERROR), ex, ex, plan, {}, "cast_graph", Path("log.txt"))
    assert failure.op == "torch.ops.aten._scaled_dot_product_cudnn_attention.default"
    assert any("decompose_attention=True" in r and "pytorch/TensorRT#4370" in r for r in failure.remedies)
    (remedy,) = [r for r in failure.remedies if "autocast_excluded_nodes=" in r]
    (pattern,) = ast.literal_eval(remedy.split("autocast_excluded_nodes=")[1])
    assert pattern == r"^h\.\d+\.attn$"
    kept = ex.plan(FP16.replace(autocast_excluded_nodes=frozenset({pattern})))
    sdpa = [n for n, i in ex.nodes.items() if i.op == SDPA_OP]
    assert sdpa and all(kept[n].dtype == torch.float32 for n in sdpa)
    projections = [n for n, i in ex.nodes.items() if re.fullmatch(r"h\.\d+\.attn\.c_(attn|proj)", i.module)]
    assert projections and all(kept[n].dtype == torch.float16 for n in projections)
    # other failures name no attention remedy
    other = compile_failure(RuntimeError("boom"), ex, ex, plan, {}, "cast_graph", Path("log.txt"))
    assert not any("decompose_attention" in r for r in other.remedies)
