"""The TensorRT backend's failure report and cast-graph build, on CPU (their pure parts; the GPU runs test them live)."""

from __future__ import annotations

import ast
import pickle
from pathlib import Path

import pytest
import torch

from mixprec_explorer import Explorer, Settings, examples
from mixprec_explorer.backends.cast_graph import cast_program
from mixprec_explorer.backends.tensorrt import AUTO_CAST_GRAPH_NOTE, BUILDS, build_mode, compile_failure, rename_profile
from mixprec_explorer.backends.torch_plan import copy_program, move_program
from mixprec_explorer.errors import CompileFailure, MixprecError, OptionError

from _data import RTX

FP16 = Settings(enable_autocast=True, autocast_low_precision_type=torch.float16)
#: The first lines of the error Torch-TensorRT 2.11 raised on the live engine for the encoder under autocast.
ENCODER_ERROR = ("__len__() should return >= 0\n\nWhile executing %add : [num_users=1] = call_function["
                 "target=torch.ops.aten.add.Tensor](args = (%embedding, %_frozen_param0), kwargs = {})")


def test_a_failed_build_names_its_fx_node_and_the_remedies() -> None:
    ex = Explorer(*examples.transformer_encoder(layers=1, seq=16))
    failure = compile_failure(ValueError(ENCODER_ERROR), ex, ex, ex.plan(FP16), {}, "autocast", Path("log.txt"))
    assert isinstance(failure, CompileFailure) and isinstance(failure, MixprecError)
    assert failure.node == "add" and failure.op == "torch.ops.aten.add.Tensor"
    assert any("build='cast_graph'" in r for r in failure.remedies)  # autocast casts the embedding indices
    assert any("torch_executed_ops" in r for r in failure.remedies)
    assert "at FX node 'add'" in str(failure) and "log.txt" in str(failure)
    again = pickle.loads(pickle.dumps(failure))  # it crosses the worker process boundary intact
    assert (again.node, again.remedies) == (failure.node, failure.remedies)


def test_a_message_without_a_node_still_reads_clearly() -> None:
    ex = Explorer(*examples.reference_autocast_model())
    failure = compile_failure(RuntimeError("Unable to create TensorRT execution context"), ex, ex, ex.plan(FP16), {},
                              "cast_graph", Path("log.txt"))
    assert failure.node is None and "Unable to create TensorRT execution context" in str(failure)


def test_a_cast_program_profile_comes_back_under_the_captured_names() -> None:
    ex = Explorer(*examples.resnet50(batch=8))
    profile = ex.load_profile(RTX / "resnet50_b8_fp16" / "profile")
    # As if conv2d were a cast the plan inserted in front of batch_norm, and relu_ a renamed model node.
    renamed = rename_profile(profile, {"conv2d": "<cast>batch_norm", "relu_": "relu_"})
    stem = next(r for r in renamed.layers if r.name == "__myl_CorrMulAddRelu_myl0_1")
    assert stem.nodes == ("batch_norm", "relu_") and sum(stem.node_weights) == pytest.approx(1.0)
    assert "conv2d" not in dict(stem.node_dtypes)
    assert sum(renamed.node_latency_ms().values()) == pytest.approx(sum(profile.node_latency_ms().values()))


def test_an_engine_without_execution_context_points_at_fp16_attention() -> None:
    """TensorRT-RTX 1.4 built BERT-base's FP16 cast graph but gave it no execution context until the attention
    blocks stayed FP32: the failure says so, with one regex that covers every layer's attention."""
    ex = Explorer(*examples.transformer_encoder(layers=2, seq=16))
    message = ("[Error thrown at core/runtime/TRTEngine.cpp:143] Expected (exec_ctx.get() != nullptr) to be true "
               "but got false\nUnable to create TensorRT execution context")
    failure = compile_failure(RuntimeError(message), ex, ex, ex.plan(FP16), {}, "cast_graph", Path("log.txt"))
    (remedy,) = [r for r in failure.remedies if "execution context" in r]
    (pattern,) = ast.literal_eval(remedy.split("autocast_excluded_nodes=")[1])  # a Python set, ready to paste
    assert pattern == r"^layers\.\d+\.self_attn(\.|$)"
    plan = ex.plan(FP16.replace(autocast_excluded_nodes=frozenset({pattern})))
    attention = [n for n, i in ex.nodes.items() if i.module.startswith("layers.") and ".self_attn" in i.module
                 and n in plan]
    assert attention and all(plan[n].dtype == torch.float32 for n in attention)
    assert any(plan[n].dtype == torch.float16 for n, i in ex.nodes.items() if i.module.endswith("linear1"))
    # all-FP32 plans have no attention in FP16 to blame
    plain = compile_failure(RuntimeError(message), ex, ex, ex.plan(Settings()), {}, "cast_graph", Path("log.txt"))
    assert not any("execution context" in r for r in plain.remedies)


# -- build="auto": the cast graph where autocast would break integer tensors -------------------------------------
@pytest.fixture(scope="module")
def tiny_bert() -> Explorer:
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                                     vocab_size=100)
    return Explorer(transformers.BertModel(config).eval(), (torch.randint(0, 100, (2, 16)),))


@pytest.mark.filterwarnings("ignore:Torch-TensorRT .* autocast turns integer tensors")
def test_auto_builds_the_cast_graph_where_autocast_would_cast_embedding_indices(tiny_bert) -> None:
    plan = tiny_bert.plan(FP16)
    failing = {c.node for c in plan.integer_casts if c.fails}
    assert "embedding" in failing  # the captured BERT's token ids reach an FP16-classified embedding
    mode, note = build_mode(plan)
    assert mode == "cast_graph"
    assert note.startswith(AUTO_CAST_GRAPH_NOTE) and "build='autocast' forces autocast" in note
    assert "which fails at gather, embedding, embedding_1" in note
    # what it builds instead: the plan's casts on floats only, so the embeddings still read integer ids
    program = cast_program(tiny_bert, FP16, plan=plan)
    embeddings = [n for n in program.graph.nodes if n.target is torch.ops.aten.embedding.default]
    assert embeddings and all(not n.args[1].meta["val"].dtype.is_floating_point for n in embeddings)
    # explicit values are taken as given
    assert build_mode(plan, "autocast") == ("autocast", "")
    assert build_mode(plan, "cast_graph") == ("cast_graph", "")


def test_auto_keeps_autocast_where_no_integer_tensor_is_cast(tiny_bert) -> None:
    assert build_mode(tiny_bert.plan(Settings())) == ("autocast", "")  # FP32: autocast off, nothing cast
    mlp = Explorer(*examples.reference_autocast_model())
    plan = mlp.plan(FP16)
    assert not plan.integer_casts and build_mode(plan) == ("autocast", "")
    assert BUILDS[0] == "auto"
    with pytest.raises(OptionError, match="build must be one of 'auto', 'autocast', 'cast_graph'; got 'graph'"):
        build_mode(plan, "graph")


# -- moving the program to the build's device ------------------------------------------------------------------
@pytest.fixture(scope="module")
def lraspp() -> Explorer:
    """torchvision's LRASPP takes ``forward(self, input)``: a placeholder named like a Python builtin."""
    pytest.importorskip("torchvision")
    from mixprec_explorer import zoo

    return Explorer(*zoo.build("lraspp_mobilenet_v3", size="small", batch=2, seed=0))


def test_a_program_whose_input_is_named_like_a_builtin_copies_and_moves(lraspp) -> None:
    """Live, every compile of LRASPP raised torch's raw SpecViolationError ("Input spec name input does not match
    node name input_1"): copy.deepcopy renames the placeholder and move_to_device_pass validates the copy."""
    ep = lraspp.exported_program
    user = ep.graph_signature.user_inputs
    assert user == ("input",)
    copied = copy_program(ep)
    copied.validate()
    assert [n.name for n in copied.graph.nodes if n.op == "placeholder"][-1] == "input"
    moved = move_program(ep, "meta")  # another device: the pass runs (as for cuda:0 live)
    moved.validate()
    assert {v.device.type for v in moved.state_dict.values()} == {"meta"}
    assert {v.device.type for v in ep.state_dict.values()} == {"cpu"}  # the captured program stays where it was
    x = lraspp.example_inputs[0]
    with torch.no_grad():
        assert torch.equal(copied.module()(x)["out"], ep.module()(x)["out"])
    assert move_program(ep, "cpu").graph_signature.user_inputs == ("input",)  # already there: copied, not moved


def test_a_program_torch_cannot_move_is_a_compile_failure_naming_the_way_around(lraspp) -> None:
    broken = copy_program(lraspp.exported_program)
    del broken._state_dict[next(iter(broken.state_dict))]  # a parameter the signature names but the program lacks
    with pytest.raises(CompileFailure, match="move_to_device_pass could not move the captured program to meta") as e:
        move_program(broken, "meta")
    assert any("capture the model on meta" in r for r in e.value.remedies)
