"""Capture: the graph Torch-TensorRT's autocast sees, with shapes, dtypes, params and cost estimates."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from mixprec_explorer import CaptureError, Explorer
from mixprec_explorer.capture import source_line
from mixprec_explorer.examples import layer_stack

from _models import ResidualCNN


def test_nodes_carry_what_the_autocast_pass_reads(explicit_ex):
    g = explicit_ex.graph
    lin = g.nodes["linear_1"]
    assert lin["op"] == "torch.ops.aten.linear.default"
    assert lin["module"] == "linear2" and lin["module_type"] == "torch.nn.modules.linear.Linear"
    assert lin["input_shapes"] == ((1, 10), (30, 10), (30,))
    assert lin["input_dtypes"] == (torch.float16,) * 3
    assert lin["output_shapes"] == ((1, 30),) and lin["output_dtypes"] == (torch.float16,)
    assert lin["param_count"] == 30 * 10 + 30
    assert lin["flops"] == 2 * 30 * 10 + 30
    assert lin["bytes_moved"] == (10 + 300 + 30 + 30) * 2
    assert g.nodes["to"]["module"] == "" and g.has_edge("to", "linear_1")
    assert set(g.predecessors("linear")) == {"x"}, "parameters fold into their node, user inputs stay"
    assert explicit_ex.graph_module is explicit_ex.exported_program.graph_module


def test_graph_is_not_decomposed():
    ex = Explorer(ResidualCNN().eval(), (torch.randn(1, 3, 8, 8),))
    ops = set(ex.ops())
    assert "torch.ops.aten.conv2d.default" in ops and "torch.ops.aten.batch_norm.default" in ops
    assert "torch.ops.aten.convolution.default" not in ops
    conv = ex.nodes["conv2d"]
    assert conv.flops == 2 * (1 * 8 * 8 * 8) * (3 * 3 * 3)


def test_accepts_an_exported_program():
    model, inputs = layer_stack(40)
    ep = torch.export.export(model, inputs)
    ex = Explorer(ep)
    assert ex.exported_program is ep and ex.example_inputs[0].shape == inputs[0].shape
    assert len(ex.plan()) == sum(1 for n in ep.graph.nodes if n.op == "call_function")


class DataDependent(torch.nn.Module):
    def forward(self, x):
        if x.sum() > 0:  # data-dependent control flow cannot be exported
            return x * 2
        return x


def test_unexportable_model_raises_capture_error_with_reason_and_hint():
    with pytest.raises(CaptureError) as info:
        Explorer(DataDependent().eval(), (torch.randn(3),))
    text = str(info.value)
    assert "torch.export could not capture DataDependent" in text and "Hint:" in text
    assert info.value.__cause__ is not None


def test_bad_arguments_are_named():
    with pytest.raises(CaptureError, match="example_inputs are required"):
        Explorer(torch.nn.Linear(2, 2))
    with pytest.raises(CaptureError, match="expected a torch.nn.Module"):
        Explorer("resnet", (torch.randn(1),))


def test_training_mode_warns():
    with pytest.warns(UserWarning, match="training mode"):
        Explorer(torch.nn.Linear(2, 2), (torch.randn(1, 2),))


class TwoLines(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(4, 4)
        self.block = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.GELU())

    def forward(self, x):
        y = self.fc(x) * 2.0
        return self.block(y)


def test_each_node_knows_the_user_line_that_made_it() -> None:
    ex = Explorer(TwoLines().eval(), (torch.randn(2, 4),))
    here = __file__
    lines = {name: info.source for name, info in ex.nodes.items() if info.kind == "call_function"}
    assert lines["mul"] == (here, _line_of("y = self.fc(x) * 2.0"), "y = self.fc(x) * 2.0")
    # inside nn.Linear the innermost frame is torch's F.linear: the user's call of the module is shown instead
    assert lines["linear"] == lines["mul"]
    # through nn.Sequential (torch's container.py): still the user's line that called the block
    assert lines["gelu"] == (here, _line_of("return self.block(y)"), "return self.block(y)")
    assert ex.nodes["x"].source is None and ex.nodes["output"].source is None


def _line_of(text: str) -> int:
    with open(__file__, encoding="utf-8") as f:
        return next(i for i, line in enumerate(f, 1) if line.strip() == text)


@pytest.mark.parametrize(("trace", "expected"), [
    (None, None),
    ("", None),
    # only torch frames: no user line to show
    ('File "/venv/lib/python3.12/site-packages/torch/nn/modules/container.py", line 250, in forward\n'
     "    input = module(input)", None),
    # the innermost frame outside torch wins, wherever torch lives on the machine that exported
    ('File "/home/me/net.py", line 30, in forward\n    x = self.layers(x)\n'
     '  File "/opt/conda/lib/python3.10/site-packages/torch/nn/modules/container.py", line 250, in forward\n'
     "    input = module(input)\n"
     '  File "/home/me/blocks.py", line 12, in forward\n    return self.attn(x) + x\n'
     '  File "/opt/conda/lib/python3.10/site-packages/torch/nn/modules/activation.py", line 1460, in forward\n'
     "    return F.multi_head_attention_forward(",
     ("/home/me/blocks.py", 12, "return self.attn(x) + x")),
])
def test_source_line_of_a_stack_trace(trace: str | None, expected: tuple[str, int, str] | None) -> None:
    assert source_line(trace) == expected


# -- hints for the common Hugging Face causes (transformers 5.x, tiny random configs) ----------------------------
def _ids(vocab: int = 100) -> torch.Tensor:
    torch.manual_seed(0)
    return torch.randint(0, vocab, (2, 16))


@pytest.mark.filterwarnings("ignore:.*bos_token_id|.*eos_token_id")
def test_a_key_value_cache_in_the_outputs_says_use_cache_false_and_that_fixes_it():
    transformers = pytest.importorskip("transformers")
    model = transformers.GPT2Model(transformers.GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=100)).eval()
    with pytest.raises(CaptureError) as info:
        Explorer(model, (_ids(),))
    text = str(info.value)
    assert "DynamicCache" in text and "not a known type" in text  # torch.export's own reason, kept
    assert "Hint: the model returns its key/value cache (DynamicCache)" in text
    assert "use_cache=False" in text and "model.config.use_cache = False" in text

    class NoCache(torch.nn.Module):  # the wrapper the hint offers
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            return self.model(ids, use_cache=False).last_hidden_state

    assert "embedding" in Explorer(NoCache().eval(), (_ids(),)).nodes
    model.config.use_cache = False  # and the config switch
    assert "embedding" in Explorer(model, (_ids(),)).nodes


def test_a_tokenizer_dict_as_input_says_to_pass_its_tensors_positionally():
    transformers = pytest.importorskip("transformers")
    config = transformers.BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                                     vocab_size=100)
    model = transformers.BertModel(config).eval()
    ids = _ids()
    encoding = transformers.BatchEncoding({"input_ids": ids, "attention_mask": torch.ones_like(ids)})
    for given in (encoding, dict(encoding)):
        with pytest.raises(CaptureError, match=r"Hint: an example input is of type (BatchEncoding|dict).*"
                                               r"\(enc\['input_ids'\], enc\['attention_mask'\]\)"):
            Explorer(model, (given,))
    assert "embedding" in Explorer(model, (encoding["input_ids"], encoding["attention_mask"])).nodes


def test_an_encoder_decoder_without_decoder_inputs_says_to_capture_its_encoder():
    transformers = pytest.importorskip("transformers")
    config = transformers.T5Config(d_model=32, d_ff=64, num_layers=1, num_heads=2, d_kv=16, vocab_size=100)
    model = transformers.T5Model(config).eval()
    with pytest.raises(CaptureError, match=r"input_ids or inputs_embeds\n.*Hint: an encoder-decoder needs decoder "
                                           r"inputs: capture its encoder alone \(model.get_encoder\(\)"):
        Explorer(model, (_ids(),))
    assert "embedding" in Explorer(model.get_encoder(), (_ids(),)).nodes


def test_an_output_type_export_cannot_flatten_says_return_dict_or_register():
    import dataclasses
    from types import SimpleNamespace

    @dataclasses.dataclass
    class EncoderOutput:
        last_hidden_state: torch.Tensor

    class Encoder(torch.nn.Module):  # shaped like a Hugging Face model: a config, a ModelOutput-like result
        def __init__(self) -> None:
            super().__init__()
            self.config = SimpleNamespace(return_dict=True)
            self.fc = torch.nn.Linear(4, 4)

        def forward(self, x: torch.Tensor) -> EncoderOutput:
            return EncoderOutput(self.fc(x))

    with pytest.raises(CaptureError, match=r"Hint: torch.export cannot flatten the model's output type EncoderOutput.*return_dict = False"):
        Explorer(Encoder().eval(), (torch.randn(2, 4),))
    plain = Encoder().eval()
    del plain.config
    with pytest.raises(CaptureError, match=r"Hint: the model's output type .*EncoderOutput is unknown to torch.export: "
                                           r"register it \(torch.export.register_dataclass"):
        Explorer(plain, (torch.randn(2, 4),))


class _CountsNonzero(torch.nn.Module):
    """Data-dependent control flow: torch.export stops at the branch (and prints the graph it had traced)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.nonzero().shape[0] > 3:
            return x * 2
        return x + 1


def test_a_failed_capture_keeps_torch_exports_partial_graph_in_a_file_the_error_names(capfd) -> None:
    """torch.export prints a failed trace's partial graph to stderr (180 kB for a torchvision detection model): the
    notebook shows the error, and the graph waits in the file it names."""
    with pytest.raises(CaptureError, match="data-dependent") as info:
        Explorer(_CountsNonzero().eval(), (torch.randn(8),))
    assert "def forward" not in capfd.readouterr().err
    saved = re.search(r"printed while failing.*: (\S+\.log)$", str(info.value))
    if torch.__version__ >= "2.7":  # torch 2.6 prints no partial graph: nothing to keep, and no file is named
        assert saved is not None, str(info.value)
    if saved is not None:
        text = Path(saved[1]).read_text(encoding="utf-8")
        assert "def forward" in text and "nonzero" in text


class _Chatty(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        import sys
        import warnings

        print("tracing the chatty model", file=sys.stderr)
        warnings.warn("a warning of the model's own", UserWarning, stacklevel=1)
        return x + 1


def test_a_capture_that_succeeds_passes_on_what_the_model_prints_and_warns(capfd) -> None:
    with pytest.warns(UserWarning, match="of the model's own"):
        Explorer(_Chatty().eval(), (torch.randn(3),))
    assert "tracing the chatty model" in capfd.readouterr().err
