"""Editing through the Explorer: exclusions as users write them, undo/redo, export, incremental re-plans."""

from __future__ import annotations

import re

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mixprec_explorer import Explorer, InputError, Settings, SettingsError, SettingsWarning
from mixprec_explorer.examples import layer_stack, reference_autocast_model
from mixprec_explorer.policy import Policy

from _models import ResidualCNN

AUTO = Settings(enable_autocast=True, autocast_low_precision_type=torch.float16)


def test_click_exclusion_writes_an_anchored_module_regex(autocast_ex):
    autocast_ex.settings = AUTO
    result = autocast_ex.exclude("linear_1")  # the node name a click gives
    assert result.pattern == "^linear2$" and result.nodes == ("linear_1",) and result.note == ""
    assert autocast_ex.settings.autocast_excluded_nodes == {"^linear2$"}
    assert autocast_ex.plan()["linear_1"].dtype == torch.float32
    autocast_ex.include("linear2")  # or the module path
    assert autocast_ex.plan()["linear_1"].dtype == torch.float16


def test_root_level_ops_cannot_be_singled_out_and_the_note_says_so():
    ex = Explorer(ResidualCNN().eval(), (torch.randn(1, 3, 8, 8),))
    ex.settings = AUTO
    result = ex.exclude("add")  # the residual add lives in the root forward
    assert result.pattern == "^$" and "add" in result.nodes and len(result.nodes) > 1
    assert "root module's forward" in result.note and "relu" in result.note
    plan = ex.plan()
    assert all(plan[n].dtype == torch.float32 for n in result.nodes)
    assert plan["conv2d"].dtype == torch.float16


def test_dotted_module_paths_are_escaped():
    model, inputs = layer_stack(12)
    ex = Explorer(model, inputs)
    ex.settings = AUTO
    result = ex.exclude("blocks.1.0")
    assert result.pattern == r"^blocks\.1\.0$"
    assert [ex.nodes[n].module for n in result.nodes] == ["blocks.1.0"]


def test_unknown_target_suggests_close_matches(autocast_ex):
    before = autocast_ex.settings
    with pytest.raises(SettingsError, match="did you mean 'linear2'"):
        autocast_ex.exclude("linea2")
    assert autocast_ex.settings is before


def test_op_exclusion_accepts_short_names(autocast_ex):
    autocast_ex.settings = AUTO
    assert autocast_ex.exclude_op("linear") == "torch.ops.aten.linear.default"
    assert all(r.rule == "excluded_op" for r in autocast_ex.plan())
    autocast_ex.include_op("aten.linear.default")
    assert not autocast_ex.settings.autocast_excluded_ops
    with pytest.raises(SettingsError, match="not an op of this model"):
        autocast_ex.exclude_op("softmaxx")


def test_undo_redo_walks_the_history(autocast_ex):
    autocast_ex.settings = AUTO
    autocast_ex.exclude("linear2")
    autocast_ex.exclude("linear3")
    assert autocast_ex.undo().autocast_excluded_nodes == {"^linear2$"}
    assert autocast_ex.undo() == AUTO
    assert autocast_ex.redo().autocast_excluded_nodes == {"^linear2$"}
    autocast_ex.exclude("linear1")  # a new edit drops the redo branch
    assert not autocast_ex.can_redo
    assert autocast_ex.settings.autocast_excluded_nodes == {"^linear1$", "^linear2$"}


def test_regex_matching_nothing_warns(autocast_ex):
    with pytest.warns(SettingsWarning, match="matches no module path"):
        autocast_ex.settings = AUTO.replace(autocast_excluded_nodes={"^decoder"})


def test_export_and_load_round_trip(tmp_path, autocast_ex):
    autocast_ex.settings = AUTO.replace(use_fp32_acc=True)
    autocast_ex.exclude("linear2")
    path = autocast_ex.export_settings(tmp_path / "plan.json")
    assert Settings.load(path) == autocast_ex.settings
    snippet = autocast_ex.export_settings(tmp_path / "compile.py").read_text()
    assert "torch_tensorrt.dynamo.compile(" in snippet and "'^linear2$'" in snippet
    other = Explorer(*reference_autocast_model())
    assert other.load_settings(path) == autocast_ex.settings


def test_bad_settings_file_leaves_state_intact(tmp_path, autocast_ex):
    autocast_ex.settings = AUTO
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema": "mixprec_explorer.settings", "version": 1, "settings": {"use_fp16": true}}')
    with pytest.raises(SettingsError, match="unknown settings"):
        autocast_ex.load_settings(bad)
    assert autocast_ex.settings == AUTO and bad.read_text().startswith("{")


def test_calibration_failure_keeps_previous_calibration(autocast_ex):
    autocast_ex.calibrate([(torch.randn(1, 10),), (torch.randn(1, 10) * 10,)])
    before = autocast_ex.calibration
    assert before["linear"].shape == (2, 10), "batches concatenate on dim 0 as in Torch-TensorRT"
    with pytest.raises(InputError, match=r"batch 1: input 0 \('x'\) has shape \(2, 10\).*fixed at 1"):
        autocast_ex.calibrate([torch.randn(1, 10), torch.randn(2, 10)])  # a list of bare tensors is a list of batches
    with pytest.raises(InputError, match=r"input 0 \('x'\) has shape \(2, 10\)"):
        autocast_ex.calibrate([(torch.randn(2, 10),)])
    assert autocast_ex.calibration == before


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from(["node", "op"]), st.integers(0, 10**6)), min_size=1, max_size=12))
def test_incremental_replan_equals_a_full_plan(toggles):
    ex = _stack()
    ex._history = [AUTO]  # skip warnings: this test is about planning
    ex._cursor = 0
    names = [n for n, i in ex.nodes.items() if i.kind == "call_function"]
    ops = list(ex.ops())
    for kind, index in toggles:
        if kind == "node":
            ex.toggle(names[index % len(names)])
        else:
            op = ops[index % len(ops)]
            (ex.include_op if op in ex.settings.autocast_excluded_ops else ex.exclude_op)(op)
        incremental = ex.plan()
        full = Policy(ex.captured, ex.calibration).plan(ex.settings)
        assert list(incremental) == list(full)


_CACHE: dict[str, Explorer] = {}


def _stack() -> Explorer:
    if "stack" not in _CACHE:
        model, inputs = layer_stack(60)
        ex = Explorer(model, inputs)
        ex.calibrate([inputs])
        _CACHE["stack"] = ex
    return _CACHE["stack"]


def test_toggle_replans_incrementally():
    model, inputs = layer_stack(400)
    ex = Explorer(model, inputs)
    ex.settings = AUTO
    ex.plan()
    ex.exclude("blocks.3.0")
    plan = ex.plan()
    assert plan.changed is not None and set(plan.changed) == set(ex.modules["blocks.3.0"])


def test_summary_shares_add_up(autocast_ex):
    autocast_ex.settings = AUTO
    autocast_ex.exclude("linear3")
    summary = autocast_ex.summary()
    assert summary["FP32"]["nodes"] == 1 and summary["FP16"]["nodes"] == 2
    assert sum(v["flops_share"] for v in summary.values()) == pytest.approx(1.0)
    assert re.search(r"FP16: 2", repr(autocast_ex))


@pytest.fixture(scope="module")
def mobilenet():
    """torchvision MobileNetV3-Small (random weights): blocks nested three deep, in-place ops, SE modules."""
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    ex = Explorer(torchvision.models.mobilenet_v3_small(weights=None).eval(), (torch.randn(1, 3, 32, 32),))
    ex.settings = AUTO
    return ex


def _under(ex: Explorer, module: str) -> set[str]:
    return {n for n, i in ex.nodes.items() if i.kind == "call_function" and not i.removed_by
            and (i.module == module or i.module.startswith(module + "."))}


@pytest.mark.parametrize("path", ["features.1", "features", "classifier", "features.1.block.1"])
def test_a_container_path_keeps_its_whole_subtree_in_fp32(mobilenet, path):
    ex = mobilenet
    ex.settings = AUTO
    result = ex.exclude(path)
    assert result.pattern == rf"^{re.escape(path)}(\.|$)" and set(result.nodes) == _under(ex, path)
    plan = ex.plan()
    assert all(plan[n].dtype == torch.float32 and plan[n].rule == "excluded_node" for n in result.nodes)
    if path == "features.1":  # the regex stops at the dot: features.10 and features.11 stay low
        assert _under(ex, "features.10") and all(plan[n].dtype == torch.float16 for n in _under(ex, "features.10"))
    ex.include(path)
    assert ex.settings == AUTO and not any(ex.plan()[n].rule == "excluded_node" for n in result.nodes)


def test_a_leaf_module_and_a_node_keep_the_exact_regex_and_toggle_undoes_either(mobilenet):
    ex = mobilenet
    ex.settings = AUTO
    assert ex.exclude("features.0.0").pattern == r"^features\.0\.0$"
    se_mul = next(n for n in ex.modules["features.1.block.1"])  # the SE block's own op (its children are convs)
    clicked = ex.toggle(se_mul)  # a click on the node: only that module's own ops
    assert clicked.pattern == r"^features\.1\.block\.1$" and clicked.nodes == (se_mul,)
    assert ex.toggle("features.1.block.1").pattern == r"^features\.1\.block\.1$"  # by path: undone
    assert ex.settings.autocast_excluded_nodes == {r"^features\.0\.0$"}
    ex.toggle("features.1.block.1")  # by path again: the whole SE block
    assert ex.settings.autocast_excluded_nodes == {r"^features\.0\.0$", r"^features\.1\.block\.1(\.|$)"}
    ex.toggle(se_mul)  # a click inside it undoes the block's exclusion
    assert ex.settings.autocast_excluded_nodes == {r"^features\.0\.0$"}


def test_notes_say_what_other_regexes_already_do(mobilenet):
    ex = mobilenet
    ex.settings = AUTO
    ex.exclude("features")
    inner = ex.exclude("features.1")
    assert "already kept in FP32 by '^features(\\\\.|$)'" in inner.note
    left = ex.include("features.1")
    assert "still excluded by '^features(\\\\.|$)'" in left.note
    assert all(ex.plan()[n].dtype == torch.float32 for n in left.nodes)


def test_a_wrong_module_path_is_answered_with_real_modules(mobilenet):
    before = mobilenet.settings
    with pytest.raises(SettingsError, match="did you mean 'features'"):
        mobilenet.exclude("feature")
    with pytest.raises(SettingsError, match="top-level modules: 'features', 'avgpool', 'classifier'"):
        mobilenet.exclude("backbone")
    with pytest.raises(SettingsError, match="graph input"):
        mobilenet.exclude("x")
    assert mobilenet.settings is before


def test_op_names_resolve_among_the_models_own_ops(mobilenet):
    ex = mobilenet
    ex.settings = AUTO
    assert ex.exclude_op("add") == "torch.ops.aten.add_.Tensor"  # the only add here is in place
    assert ex.exclude_op(torch.nn.Conv2d) == "torch.ops.aten.conv2d.default"  # the op its instances call
    assert ex.exclude_op("aten.hardswish") == "torch.ops.aten.hardswish_.default"
    plan = ex.plan()
    assert all(plan[n].dtype == torch.float32 for n, i in ex.nodes.items() if i.op == "torch.ops.aten.add_.Tensor")
    ex.include_op("add")
    assert ex.settings.autocast_excluded_ops == {"torch.ops.aten.conv2d.default",
                                                 "torch.ops.aten.hardswish_.default"}


@pytest.mark.parametrize("query, named, not_named", [
    ("conv", ["torch.ops.aten.conv2d.default"], []),
    ("add.Tensor", ["torch.ops.aten.add_.Tensor"], ["add.Scalar"]),
    ("relu", ["torch.ops.aten.relu.default", "torch.ops.aten.relu_.default"], []),  # ambiguous: both named
    ("softmax", ["torch.ops.aten.linear.default"], ["softmax.int"]),  # none close: the model's own ops listed
])
def test_op_suggestions_come_from_the_model(mobilenet, query, named, not_named):
    with pytest.raises(SettingsError) as caught:
        mobilenet.exclude_op(query)
    message = str(caught.value)
    assert all(repr(n) in message for n in named) and not any(n in message for n in not_named)


def test_a_module_type_without_ops_here_is_refused_with_the_models_types(mobilenet):
    with pytest.raises(SettingsError, match="LayerNorm.*module types: .*Conv2d"):
        mobilenet.exclude_op(torch.nn.LayerNorm)
