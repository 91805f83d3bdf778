"""The predicted plan against Torch-TensorRT's rules, re-derived independently from the raw FX graph."""

from __future__ import annotations

import operator
import re

import pytest
import torch
from torch._higher_order_ops.wrap import wrap_with_autocast  # torch 2.6 registers the op on this import

from mixprec_explorer import Explorer, Settings
from mixprec_explorer.policy import FP32_ACC_OPS

from _models import cases

SKIP_TARGETS = (wrap_with_autocast, operator.getitem)
REMOVED = (torch.ops.aten._assert_scalar.default, torch.ops.aten._assert_tensor_metadata.default,
           torch.ops.aten.detach.default)
GEMMS = (torch.ops.aten.matmul.default, torch.ops.aten.mm.default, torch.ops.aten.bmm.default,
         torch.ops.aten.mv.default, torch.ops.aten.dot.default)


def reference_outputs(ep, batches):
    """Full reference tensors per call_function node, concatenated on dim 0, as Torch-TensorRT records them."""
    outs: dict[str, torch.Tensor] = {}

    class Tracer(torch.fx.Interpreter):
        def run_node(self, n):
            out = super().run_node(n)
            if n.op == "call_function" and n.target not in SKIP_TARGETS and isinstance(out, torch.Tensor):
                outs[n.name] = torch.cat([outs[n.name], out]) if n.name in outs else out
            return out

    tracer = Tracer(ep.module())
    for batch in batches:
        tracer.run(tuple(batch))
    return outs


def oracle(ep, s: Settings, ref: dict[str, torch.Tensor] | None):
    """{node: (dtype, rule)} written straight from the rules, on the un-decomposed FX graph."""
    graph = ep.graph_module.graph
    gone = {n for n in graph.nodes if n.op == "call_function" and n.target in REMOVED}
    out = {}
    for node in graph.nodes:
        if node.op != "call_function" or node in gone or node.target in SKIP_TARGETS:
            continue
        val = node.meta["val"]
        if not (s.enable_autocast and s.autocast_low_precision_type is not None):
            out[node.name] = (val.dtype, "explicit")
            continue
        path = list(node.meta["nn_module_stack"].values())[-1][0]
        ins = [a for a in node.all_input_nodes]
        users = [u for u in node.users if u not in gone]
        rule = None
        if any(re.match(p, path) for p in s.autocast_excluded_nodes):
            rule = "excluded_node"
        elif torch.fx.node._get_qualified_name(node.target) in s.autocast_excluded_ops:
            rule = "excluded_op"
        elif ref and any(n.name in ref and ref[n.name].numel() and
                         bool((ref[n.name].abs() > s.autocast_max_output_threshold).any())
                         for n in ins + users):
            rule = "io_range"
        elif s.autocast_max_depth_of_reduction is not None and ref and ins and ins[0].name in ref:
            depth = ref[ins[0].name].shape[-1] if node.target in GEMMS else 0
            if node.target == torch.ops.aten.scaled_dot_product_attention.default:
                d = ref[ins[0].name].shape
                depth = d[2] if len(d) == 3 else d[1] * d[3]
            if depth > s.autocast_max_depth_of_reduction:
                rule = "depth"
        out[node.name] = (torch.float32, rule) if rule else (s.autocast_low_precision_type, "low_precision")
    return out


def settings_grid(ex: Explorer):
    first_module = next((m for m in ex.modules if m), "")  # root-only models: "^$" excludes the root
    common_op = next(iter(ex.ops()))
    auto16 = Settings(enable_autocast=True, autocast_low_precision_type=torch.float16)
    return {
        "explicit": (Settings(), False),
        "autocast_fp16": (auto16, False),
        "autocast_bf16_excluded_module": (
            Settings(enable_autocast=True, autocast_low_precision_type=torch.bfloat16,
                     autocast_excluded_nodes={f"^{re.escape(first_module)}$"}), False),
        "excluded_op": (auto16.replace(autocast_excluded_ops={common_op}), False),
        "range_rule": (auto16.replace(autocast_max_output_threshold=1.0), True),
        "depth_limit": (auto16.replace(autocast_max_depth_of_reduction=4), True),
        "fp32_acc": (auto16.replace(use_fp32_acc=True), True),
    }


@pytest.mark.parametrize("case", cases(), ids=lambda c: c[0])
def test_plan_matches_the_rules(case):
    _, model, inputs = case
    ex = Explorer(model, inputs)
    batches = [inputs, tuple(x * 3 for x in inputs) if inputs[0].is_floating_point() else inputs]
    ref = reference_outputs(ex.exported_program, batches)
    for label, (s, calibrated) in settings_grid(ex).items():
        if calibrated:
            ex.calibrate(batches)
        plan = ex.plan(s)
        got = {r.name: (r.dtype, r.rule) for r in plan if r.rule not in ("removed", "getitem", "autocast_region")}
        assert got == oracle(ex.exported_program, s, ref if calibrated else None), label
        for r in plan:
            expect_acc = (s.use_fp32_acc and r.op in FP32_ACC_OPS and r.dtype == torch.float16)
            assert (r.accumulate_dtype == torch.float32) == expect_acc, (label, r)


def test_range_rule_actually_fires_and_says_why():
    _, model, inputs = cases()[0]
    ex = Explorer(model, inputs)
    ex.calibrate([(inputs[0] * 1000,)])
    plan = ex.plan(Settings(enable_autocast=True, autocast_low_precision_type=torch.float16))
    fired = [r for r in plan if r.rule == "io_range"]
    assert fired, "inputs scaled by 1000 must push some activations over 512"
    assert "> autocast_max_output_threshold 512" in fired[0].reason


def test_depth_rule_fires_on_gemms_only():
    _, model, inputs = cases()[-1]
    ex = Explorer(model, inputs)
    ex.calibrate([inputs])
    plan = ex.plan(Settings(enable_autocast=True, autocast_low_precision_type=torch.float16,
                            autocast_max_depth_of_reduction=3))
    depth = {r.name for r in plan if r.rule == "depth"}
    # the @ reduces over 4 > 3; bmm's first input is a graph input, which Torch-TensorRT never records
    assert depth == {"matmul"}
    assert "depth of reduction 4 > autocast_max_depth_of_reduction 3" in plan["matmul"].reason
    assert plan["bmm"].rule == "low_precision"


def test_depth_and_range_rules_need_calibration():
    _, model, inputs = cases()[-1]
    ex = Explorer(model, inputs)
    plan = ex.plan(Settings(enable_autocast=True, autocast_low_precision_type=torch.float16,
                            autocast_max_depth_of_reduction=0, autocast_max_output_threshold=0.0))
    assert all(r.rule == "low_precision" for r in plan)


def test_reference_explicit_typing(explicit_ex):
    plan = explicit_ex.plan()
    by_module = {r.module: r.dtype for r in plan if r.op == "torch.ops.aten.linear.default"}
    assert by_module == {"linear1": torch.float32, "linear2": torch.float16, "linear3": torch.float32}


def test_reference_autocast_with_linear2_excluded(autocast_ex):
    s = Settings(enable_autocast=True, use_explicit_typing=True, autocast_low_precision_type=torch.float16,
                 autocast_excluded_nodes={"^linear2$"})
    by_module = {r.module: r for r in autocast_ex.plan(s)}
    assert by_module["linear2"].dtype == torch.float32
    assert by_module["linear2"].rule == "excluded_node" and "'^linear2$'" in by_module["linear2"].reason
    assert by_module["linear1"].dtype == by_module["linear3"].dtype == torch.float16


def test_reference_fp32_accumulation():
    from mixprec_explorer.examples import AutocastModel

    ex = Explorer(AutocastModel().half().eval(), (torch.randn(1, 10, dtype=torch.float16),))
    plan = ex.plan(Settings(use_fp32_acc=True, use_explicit_typing=True))
    linears = [r for r in plan if r.op == "torch.ops.aten.linear.default"]
    assert len(linears) == 3
    assert all(r.dtype == torch.float16 and r.accumulate_dtype == torch.float32 for r in linears)
    # without fp16 inputs there is nothing to accumulate differently
    assert all(r.accumulate_dtype is None for r in Explorer(AutocastModel().eval(), (torch.randn(1, 10),))
               .plan(Settings(use_fp32_acc=True)))


def test_autocast_region_and_half_submodule_keep_their_dtypes():
    by_id = {c[0]: c for c in cases()}
    _, model, inputs = by_id["autocast_region"]
    plan = Explorer(model, inputs).plan(Settings(enable_autocast=True, autocast_low_precision_type=torch.float16))
    region = [r for r in plan if r.rule == "autocast_region"]
    assert len(region) == 1 and region[0].dtype == torch.bfloat16
    _, model, inputs = by_id["half_sub"]
    plan = Explorer(model, inputs).plan()
    assert {r.module: r.dtype for r in plan if r.op.endswith("linear.default")} == {
        "pre": torch.float32, "sub.0": torch.float16, "post": torch.float32}


def test_assert_nodes_are_reported_removed(explicit_ex):
    asserts = [n for n, i in explicit_ex.nodes.items() if i.op == "torch.ops.aten._assert_tensor_metadata.default"]
    if not asserts:
        pytest.skip(f"torch {torch.__version__} exports no dtype checks for .to() (torch 2.7+ does)")
    removed = [r for r in explicit_ex.plan() if r.rule == "removed"]
    assert {r.name for r in removed} == set(asserts)
    assert all(r.dtype is None and "remove_assert_nodes" in r.reason for r in removed)


def test_weak_typing_leaves_precision_to_tensorrt(autocast_ex):
    plan = autocast_ex.plan(Settings(use_explicit_typing=False, target="2.12"))  # weak typing ended with 2.12
    assert all(r.dtype is None and r.rule == "weak_typing" for r in plan)


FP16 = Settings(enable_autocast=True, autocast_low_precision_type=torch.float16)


class GatherWhere(torch.nn.Module):
    """Integer indices into gather, a bool mask into where, and an integer tensor added to a float one."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(8, 8)

    def forward(self, x, idx):
        y = self.fc(x)
        picked = torch.gather(y, 1, idx)
        masked = torch.where(x > 0, y, 0.0)[:, :3]
        return picked + masked + idx


@pytest.fixture(scope="module")
def encoder_ex() -> Explorer:
    """The built-in BERT-base-sized encoder: token ids feed one embedding, arange positions another."""
    from mixprec_explorer.examples import transformer_encoder

    return Explorer(*transformer_encoder())


@pytest.fixture
def gather_ex() -> Explorer:
    torch.manual_seed(0)
    return Explorer(GatherWhere().eval(), (torch.randn(2, 8), torch.randint(0, 8, (2, 3))))


def test_non_float_inputs_get_a_note_in_the_reason():
    emb = torch.nn.Sequential(torch.nn.Embedding(10, 4)).eval()
    ex = Explorer(emb, (torch.tensor([[1, 2, 3]]),))
    rec = ex.plan(FP16)["embedding"]
    assert rec.dtype == torch.float16
    assert "input (int64 'indices') into FP16" in rec.reason and "2.10-2.14" in rec.reason


def test_encoder_integer_casts_are_predicted(encoder_ex):
    plan = encoder_ex.plan(FP16)
    casts = {(c.node, c.input): c for c in plan.integer_casts}
    assert set(casts) == {("embedding", "ids"), ("embedding_1", "arange")}
    ids, positions = casts["embedding", "ids"], casts["embedding_1", "arange"]
    assert (ids.op, ids.module, ids.argument) == ("torch.ops.aten.embedding.default", "embed", "indices")
    assert (ids.input_dtype, ids.cast_dtype, ids.via, ids.fails) == (torch.int64, torch.float16, "cast", True)
    assert "Long, Int" in ids.why  # the error the live engine gave
    # arange is classified FP16 too: the pass relabels its int64 output, so it inserts no cast before embedding_1
    assert (positions.module, positions.via, positions.fails) == ("pos", "relabel", True)
    assert "relabels its int64 output as FP16" in plan["arange"].reason
    assert "2 integer cast(s)" in repr(plan)


def test_a_gather_model_flags_indices_and_masks(gather_ex):
    casts = {(c.node, c.input): c for c in gather_ex.plan(FP16).integer_casts}
    gather, where, add = casts["gather", "idx"], casts["where", "gt"], casts["add_1", "idx"]
    assert (gather.argument, gather.via, gather.fails) == ("index", "cast", True)
    assert "gather(): Expected dtype int32/int64 for index, but got torch.float16" in gather.why
    assert (where.argument, where.input_dtype, where.via, where.fails) == ("condition", torch.bool, "relabel", True)
    # an integer added to a float is not rejected, but its values change: FP16 is exact only up to 2048
    assert (add.fails, add.via) == (False, "cast") and "2048" in add.why


def test_exclusion_only_changes_the_float_the_integers_become(encoder_ex):
    from mixprec_explorer import SettingsWarning

    ex = Explorer(encoder_ex.exported_program)
    with pytest.warns(SettingsWarning, match="cast to FP32"):
        ex.settings = FP16.replace(autocast_excluded_ops={"torch.ops.aten.embedding.default"})
    plan = ex.plan()
    assert {c.node: c.cast_dtype for c in plan.integer_casts} == {"embedding": torch.float32,
                                                                  "embedding_1": torch.float32}
    # arange stays FP16, so embedding_1's relabelled positions now get a real cast FP16 -> FP32
    assert {c.node: c.via for c in plan.integer_casts} == {"embedding": "cast", "embedding_1": "cast"}
    with pytest.warns(SettingsWarning, match="integer"):
        ex.exclude("embed")  # the incremental plan re-decides the touched nodes and recomputes the findings
    assert ex.plan().changed is not None and len(ex.plan().integer_casts) == 2


@pytest.mark.parametrize("settings", [Settings(), Settings(use_explicit_typing=False, target="2.12"),
                                      Settings(enable_autocast=True)], ids=["explicit", "weak", "no_low_type"])
def test_no_integer_casts_without_the_autocast_pass(gather_ex, settings):
    plan = gather_ex.plan(settings)
    assert plan.integer_casts == () and plan.warnings() == []


def test_check_settings_names_nodes_versions_and_the_remedy(encoder_ex, gather_ex):
    from mixprec_explorer import SettingsWarning

    ex = Explorer(encoder_ex.exported_program)
    message = next(m for m in ex.check_settings(FP16) if "integer" in m)
    for part in ("Torch-TensorRT 2.10-2.14", "embedding <- ids (int64 'indices') cast to FP16",
                 "embedding_1 <- arange", "fails at embedding, embedding_1", "build='auto'",
                 "export_cast_program", "autocast off"):
        assert part in message, part
    assert not [m for m in ex.check_settings(Settings()) if "integer" in m]
    with pytest.warns(SettingsWarning, match="turns integer tensors into floats"):
        gather_ex.settings = FP16


def test_predicted_failures_really_fail_when_the_pass_casts_are_applied(encoder_ex, gather_ex):
    """Apply the plan's casts to every tensor as Torch-TensorRT's pass does: what the plan says fails, fails."""
    from mixprec_explorer.backends.torch_plan import apply_plan

    for ex, error in ((encoder_ex, "indices"), (gather_ex, "index")):
        plan = ex.plan(FP16)
        assert any(c.fails for c in plan.integer_casts)
        as_the_pass = apply_plan(ex.exported_program, plan, cast_non_float=True)
        with pytest.raises(RuntimeError, match=error):
            as_the_pass.module(*ex.example_inputs)
        kept = apply_plan(ex.exported_program, plan)  # integer tensors kept: runs
        assert kept.module(*ex.example_inputs).dtype == torch.float16


def test_plan_shows_as_a_table_in_notebooks(autocast_ex):
    autocast_ex.settings = Settings(enable_autocast=True, autocast_low_precision_type=torch.float16,
                                    autocast_excluded_nodes={"^linear2$"})
    plan = autocast_ex.plan()
    rows = plan.to_rows()
    assert [(r["module"], r["dtype"]) for r in rows] == [("linear1", "FP16"), ("linear2", "FP32"), ("linear3", "FP16")]
    html = plan._repr_html_()
    assert html.count("<tr>") == 4 and "^linear2$" in html and "#0072B2" in html  # FP32 in its palette colour
