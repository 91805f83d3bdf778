"""The cast graph: the plan's casts in an ExportedProgram, floats only, run for real on CPU (no mocks)."""

from __future__ import annotations

import ast
import os
import stat
import subprocess
import sys

import pytest
import torch

from mixprec_explorer import Explorer, Settings
from mixprec_explorer.backends.cast_graph import (
    NODE_KEY,
    ROLE_KEY,
    CastGraphError,
    cast_program,
    compile_kwargs_for_cast_program,
    compile_snippet,
    node_dtypes,
    settings_for_cast_program,
)
from mixprec_explorer.errors import MixprecError, SettingsError
from mixprec_explorer.examples import transformer_encoder

FP16 = Settings(enable_autocast=True, autocast_low_precision_type=torch.float16)
#: FP16 autocast with a few FP32 exclusions (by op and by module) and FP32 accumulation
MIXED = FP16.replace(autocast_excluded_ops={"torch.ops.aten.layer_norm.default", "torch.ops.aten.softmax.int"},
                     autocast_excluded_nodes={r"^head$", r"^layers\.1\.linear2$"}, use_fp32_acc=True)


def rel_l2(out: torch.Tensor, ref: torch.Tensor) -> float:
    return float((out.detach().float() - ref.detach().float()).norm() / ref.detach().float().norm())


@pytest.fixture(scope="module")
def encoder_ex() -> Explorer:
    return Explorer(*transformer_encoder(layers=2, batch=2, seq=16, d_model=64, heads=4, ffn=128))


@pytest.fixture(scope="module")
def mixed_program(encoder_ex) -> torch.export.ExportedProgram:
    return cast_program(encoder_ex, MIXED)


def expected_dtypes(ex: Explorer, settings: Settings) -> dict[str, torch.dtype]:
    """The plan's dtype per node; nodes whose output is an integer keep it (the cast graph never casts those)."""
    out = {}
    for rec in ex.plan(settings):
        if rec.rule == "removed":
            continue
        info = ex.nodes[rec.name]
        out[rec.name] = rec.dtype if info.dtype.is_floating_point else info.dtype
    return out


def test_node_dtypes_are_the_plans(encoder_ex, mixed_program):
    plan = encoder_ex.plan(MIXED)
    assert {r.rule for r in plan} >= {"low_precision", "excluded_op", "excluded_node"}
    assert node_dtypes(mixed_program) == expected_dtypes(encoder_ex, MIXED)
    assert node_dtypes(mixed_program)["arange"] == torch.int64  # planned FP16 by the pass; an integer stays one


def test_integer_tensors_are_never_cast(encoder_ex, mixed_program):
    assert {(c.node, c.input) for c in encoder_ex.plan(MIXED).integer_casts} == {("embedding", "ids"),
                                                                                ("embedding_1", "arange")}
    casts = [n for n in mixed_program.graph.nodes
             if n.op == "call_function" and (n.meta.get("custom") or {}).get(ROLE_KEY) == "cast"]
    assert casts and all(n.target == torch.ops.aten.to.dtype for n in casts)
    assert all(n.args[0].meta["val"].dtype.is_floating_point for n in casts)
    embeddings = [n for n in mixed_program.graph.nodes if n.target == torch.ops.aten.embedding.default]
    assert [n.args[1].meta["val"].dtype for n in embeddings] == [torch.int64, torch.int64]
    assert [n.args[0].meta["val"].dtype for n in embeddings] == [torch.float16, torch.float16]


def test_casts_sit_in_the_module_they_serve(mixed_program):
    layer_norm_casts = [n for n in mixed_program.graph.nodes
                        if (n.meta.get("custom") or {}).get(ROLE_KEY) == "cast"
                        and n.meta["custom"][NODE_KEY] == "layer_norm_1"]
    assert layer_norm_casts
    assert all(list(n.meta["nn_module_stack"].values())[-1][0] == "layers.0.norm1" for n in layer_norm_casts)


def test_weights_stay_the_models_own_parameters(encoder_ex, mixed_program):
    assert set(mixed_program.state_dict) == set(encoder_ex.exported_program.state_dict)
    assert all(v.dtype == torch.float32 for v in mixed_program.state_dict.values())


def test_output_is_close_to_fp32(encoder_ex, mixed_program):
    torch.manual_seed(1)
    ids = torch.randint(0, 30522, (2, 16))
    ref = encoder_ex.exported_program.module()(ids)
    out = mixed_program.module()(ids)
    assert out.dtype == torch.float32  # the head is excluded, so it runs (and returns) FP32
    all_low = cast_program(encoder_ex, FP16).module()(ids)
    assert all_low.dtype == torch.float16
    assert 0 < rel_l2(out, ref) < 1e-2 and 0 < rel_l2(all_low, ref) < 2e-2


def test_fp32_accumulation_is_left_to_torch_tensorrt(encoder_ex, mixed_program):
    """use_fp32_acc goes to the compile; the graph holds FP16 linears, not FP32 ones behind casts."""
    plan = encoder_ex.plan(MIXED)
    accumulated = [r.name for r in plan if r.accumulate_dtype == torch.float32]
    assert accumulated
    built = node_dtypes(mixed_program)
    assert all(built[name] == torch.float16 for name in accumulated)
    assert compile_kwargs_for_cast_program(MIXED)["use_fp32_acc"] is True


def test_compile_kwargs_turn_autocast_off_and_keep_strong_typing():
    assert compile_kwargs_for_cast_program(FP16) == {"use_explicit_typing": True, "enable_autocast": False,
                                                     "use_fp32_acc": False}
    s = settings_for_cast_program(MIXED)
    assert (s.use_explicit_typing, s.enable_autocast, s.autocast_active, s.use_fp32_acc) == (True, False, False, True)
    with pytest.raises(SettingsError, match="strong typing") as err:
        compile_kwargs_for_cast_program(Settings(use_explicit_typing=False))
    assert isinstance(err.value, MixprecError)


def test_explicit_typing_gives_the_model_as_it_is(encoder_ex):
    program = cast_program(encoder_ex, Settings())
    assert not [n for n in program.graph.nodes if (n.meta.get("custom") or {}).get(ROLE_KEY) == "cast"]
    assert set(node_dtypes(program).values()) == {torch.float32, torch.int64}


def test_export_writes_the_program_and_a_compile_snippet(encoder_ex, mixed_program, tmp_path):
    encoder_ex.settings = settings_for_cast_program(FP16)  # the explorer's own settings are not what is saved
    target = tmp_path / "out" / "encoder_fp16.pt2"
    saved, snippet = encoder_ex.export_cast_program(target, MIXED)
    assert (saved, snippet) == (target, tmp_path / "out" / "encoder_fp16.py")
    assert sorted(p.name for p in target.parent.iterdir()) == ["encoder_fp16.pt2", "encoder_fp16.py"]  # no temp left
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask
    loaded = torch.export.load(target)
    assert node_dtypes(loaded) == node_dtypes(mixed_program)
    ids = encoder_ex.example_inputs[0]
    assert torch.equal(loaded.module()(ids), mixed_program.module()(ids))
    text = snippet.read_text()
    ast.parse(text)
    for part in ("torch.export.load(Path(__file__).with_name('encoder_fp16.pt2'))", "torch_tensorrt.dynamo.compile(",
                 "enable_autocast=False", "use_fp32_acc=True", '"use_explicit_typing": True',
                 "move_to_device_pass(ep, \"cuda\")", "dtype=torch.int64", '"^head$"'):
        assert part in text, part
    encoder_ex.export_cast_program(target, FP16)  # replaces both files in place
    assert "use_fp32_acc=False" in snippet.read_text()
    with pytest.raises(SettingsError, match=r"\.pt2"):
        encoder_ex.export_cast_program(tmp_path / "compile.py")


def test_explorer_cast_program_uses_the_current_settings(encoder_ex):
    ex = Explorer(encoder_ex.exported_program)
    ex.settings = Settings()
    assert set(node_dtypes(ex.cast_program()).values()) == {torch.float32, torch.int64}
    assert set(node_dtypes(ex.cast_program(FP16)).values()) == {torch.float16, torch.int64}


def test_dynamic_input_dims_stay_dynamic_with_their_range():
    class Tagged(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = torch.nn.Linear(8, 8)
            self.emb = torch.nn.Embedding(10, 8)

        def forward(self, x, ids):
            return self.fc(x) + self.emb(ids)

    torch.manual_seed(0)
    batch = torch.export.Dim("batch", min=2, max=64)
    ep = torch.export.export(Tagged().eval(), (torch.randn(4, 8), torch.randint(0, 10, (4,))),
                             dynamic_shapes=({0: batch}, {0: batch}))
    program = cast_program(Explorer(ep), FP16)
    (bounds,) = program.range_constraints.values()
    assert (int(bounds.lower), int(bounds.upper)) == (2, 64)
    out = program.module()(torch.randn(7, 8), torch.randint(0, 10, (7,)))
    assert out.shape == (7, 8) and out.dtype == torch.float16


def test_a_failed_re_export_is_our_error():
    assert issubclass(CastGraphError, MixprecError) and issubclass(CastGraphError, RuntimeError)


def test_snippet_without_tensor_examples_asks_for_inputs():
    text = compile_snippet("p.pt2", FP16, example_inputs=[object()], saved_on="cuda:0")
    ast.parse(text)
    assert "inputs = [...]" in text and "move_to_device_pass" not in text


def test_docstring_examples_run():
    import doctest

    from mixprec_explorer.backends import cast_graph

    result = doctest.testmod(cast_graph)
    assert result.attempted >= 3 and result.failed == 0


def test_importing_the_module_loads_no_tensorrt():
    code = ("import sys, mixprec_explorer.backends.cast_graph; "
            "print([m for m in ('tensorrt', 'torch_tensorrt', 'ipywidgets', 'plotly') if m in sys.modules])")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def _module(node: torch.fx.Node) -> str:
    stack = node.meta.get("nn_module_stack") or {}
    return list(stack.values())[-1][0] if stack else ""


@pytest.mark.parametrize("name", ["whisper_tiny_encoder", "timm_levit_128s"])
def test_every_rename_names_a_captured_node_of_the_same_op_and_module(name):
    """A real model's cast program labels each of its own nodes with the captured node it stands for: same op (the
    captured ``view`` may come back a ``reshape``), module and first output size; a split's outputs are its
    ``getitem`` nodes, not the split (re-export records them under the op that yields them)."""
    from mixprec_explorer import zoo

    ok, why = zoo.available(name)
    if not ok:
        pytest.skip(why)
    ex = Explorer(*zoo.build(name, size="small", batch=2, seed=0))
    captured = {n.name: n for n in ex.exported_program.graph.nodes}
    program = cast_program(ex, FP16, device="cpu")
    same_op = {("aten.view.default", "aten.reshape.default")}
    wrong = []
    for node in program.graph.nodes:
        custom = node.meta.get("custom") or {}
        if node.op != "call_function" or custom.get(ROLE_KEY) != "op":
            continue
        other = captured[custom[NODE_KEY]]
        ops = (str(other.target), str(node.target))
        shapes = [getattr(n.meta.get("val"), "shape", None) for n in (other, node)]
        if (ops[0] != ops[1] and ops not in same_op) or _module(other) != _module(node) or shapes[0] != shapes[1]:
            wrong.append(f"{node.name} ({ops[1]}, {_module(node)}) -> {other.name} ({ops[0]}, {_module(other)})")
    assert not wrong
