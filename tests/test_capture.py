"""Capture: the graph Torch-TensorRT's autocast sees, with shapes, dtypes, params and cost estimates."""

from __future__ import annotations

import pytest
import torch

from mixprec_explorer import CaptureError, Explorer
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
