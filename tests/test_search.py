"""Search: meets the budget with few exclusions, explains them, and resumes from its saved state."""

from __future__ import annotations

import json
import math

import pytest
import torch

from mixprec_explorer import Explorer, OptionError, Settings
from mixprec_explorer.analysis import PlanEvaluator, PlanRunner
from mixprec_explorer.search import run_search

from test_sensitivity import Fragile


def fragile():
    torch.manual_seed(0)
    return Explorer(Fragile().eval(), (torch.rand(3, 4),))


def test_search_keeps_only_the_overflowing_module_in_fp32(tmp_path):
    ex = fragile()
    ex.settings = Settings(enable_autocast=True, autocast_low_precision_type=torch.float16)
    result = run_search(ex, None, budget=1e-2, backend=None, state_path=tmp_path / "s.json", progress=False)
    assert result.within_budget and result.error <= 1e-2
    assert [c.value for c in result.exclusions] == ["^blowup$"]
    assert "module ^blowup$: removes inf rel_l2" in result.explain()
    assert ex.settings == result.settings, "the result is loaded into the explorer"
    assert ex.plan()["exp"].dtype == torch.float32 and ex.plan()["linear_1"].dtype == torch.float16
    state = json.loads((tmp_path / "s.json").read_text())
    assert state["phase"] == "done" and state["chosen"] == ["^blowup$"]


def test_a_generous_budget_needs_no_exclusion():
    ex = fragile()
    result = run_search(ex, None, budget=float("inf"), backend=None, progress=False)
    assert result.exclusions == () and result.forward_evaluations == 1


def test_search_resumes_after_an_interruption(tmp_path, monkeypatch):
    state = tmp_path / "state.json"
    ex = fragile()
    real = PlanEvaluator.error
    calls = {"n": 0}

    def interrupted(self, settings):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # the user stops the kernel mid-search
        return real(self, settings)

    monkeypatch.setattr(PlanEvaluator, "error", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_search(ex, None, budget=1e-2, backend=None, state_path=state, progress=False, use_ops=False)
    saved = json.loads(state.read_text())
    assert saved["phase"] == "greedy" and len(saved["steps"]) == 1 and saved["candidates"]
    monkeypatch.setattr(PlanEvaluator, "error", real)
    result = run_search(ex, None, budget=1e-2, backend=None, state_path=state, progress=False, use_ops=False)
    assert result.steps[0].action == "start" and result.within_budget
    assert [c.value for c in result.exclusions] == ["^blowup$"]


def test_state_of_another_search_is_refused(tmp_path):
    state = tmp_path / "state.json"
    run_search(fragile(), None, budget=1e-2, backend=None, state_path=state, progress=False, use_ops=False)
    with pytest.raises(OptionError, match="another model, budget or metric"):
        run_search(fragile(), None, budget=5e-2, backend=None, state_path=state, progress=False)


def test_bad_arguments_are_named():
    with pytest.raises(OptionError, match="budget must be"):
        run_search(fragile(), None, budget=-1, backend=None)
    with pytest.raises(OptionError, match="unknown metric"):
        run_search(fragile(), None, budget=1, metric="max", backend=None)


def test_confirm_compiles_on_the_backend_and_reports_measured_figures():
    ex = fragile()
    result = ex.search(None, budget=1e-2, backend="torch", isolate=False, progress=False, use_ops=False)
    assert ex.last_search is result and ex.settings == result.settings
    assert result.profile is not None and ex.last_profile is result.profile, "the chosen plan's profile, kept"
    c = result.confirmed
    assert c["backend"] == "torch"
    assert set(c) >= {"fp32", "all_low", "chosen", "speedup_over_fp32", "time_saved_share"}
    assert "share_of_all_low_speedup" not in c, "a ratio of speedups, not the share of the time saved: gone"
    assert c["time_saved_share"] == result.time_saved_share()
    low_nodes = PlanEvaluator(ex, PlanRunner(ex, [ex.example_inputs])).low_nodes
    assert c["fp32"]["low_nodes"] == 0 and c["chosen"]["low_nodes"] == len(low_nodes(result.settings)) > 0
    fp32, low, mine = (c[k]["latency_ms"] for k in ("fp32", "all_low", "chosen"))
    if low * 1.05 < fp32:  # all-low measurably faster on this CPU: the share is the plain formula
        assert c["time_saved_share"] == pytest.approx((fp32 - mine) / (fp32 - low))
    assert c["chosen"]["error"] <= 1e-2 and c["fp32"]["error"] == 0.0
    assert c["all_low"]["error"] == float("inf") or c["all_low"]["error"] > 1e-2
    assert result.latency_source == "profile:torch"


def _pessimistic_backend(monkeypatch, factor: float, floor: float = 0.0) -> list:
    """A backend whose kernels lose more precision than the search's forward pass (Inductor, TensorRT)."""
    import mixprec_explorer.search as search

    real, seen = search.backend_error, []

    def pessimistic(explorer, settings, *args, **kwargs):
        error = real(explorer, settings, *args, **kwargs)
        measured = error if settings.autocast_excluded_nodes == {".*"} else max(error * factor, floor)
        seen.append(measured)
        return measured

    monkeypatch.setattr(search, "backend_error", pessimistic)
    return seen


def stack_explorer():
    from mixprec_explorer.examples import layer_stack

    ex = Explorer(*layer_stack(48))  # 12 blocks
    ex.settings = Settings(enable_autocast=True, autocast_low_precision_type=torch.bfloat16)
    return ex


def all_low_error(ex: Explorer) -> float:
    """The forward pass's error of the explorer's settings (all low) on its example inputs."""
    return PlanEvaluator(ex, PlanRunner(ex, [ex.example_inputs])).error(ex.settings)


def test_search_aims_by_the_backends_error_and_bisects_on_it(monkeypatch, tmp_path):
    seen = _pessimistic_backend(monkeypatch, factor=3.0)
    ex = stack_explorer()
    all_low = all_low_error(ex)
    budget = all_low * 1.5  # the forward pass says all-low is fine; the backend measures 3x that
    result = run_search(ex, None, budget=budget, backend="torch", isolate=False, progress=False, use_ops=False,
                        use_subtrees=False, state_path=tmp_path / "s.json")
    calibrate = [s.action for s in result.steps if s.action.startswith("calibrate")]
    assert calibrate and f"aim at {budget / 3:.3g}" in calibrate[0]
    assert any(s.action.startswith("bisect on torch") for s in result.steps)
    assert result.exclusions, "the backend's excess error needs exclusions the forward pass did not"
    assert result.confirmed["chosen"]["error"] <= budget and result.within_budget
    state = json.loads((tmp_path / "s.json").read_text())
    assert state["phase"] == "done" and len(state["probes"]) <= 2 + 8
    assert len(seen) >= 3


def test_a_backend_with_less_error_needs_fewer_exclusions(monkeypatch):
    _pessimistic_backend(monkeypatch, factor=0.5)
    ex = stack_explorer()
    all_low = all_low_error(ex)
    result = run_search(ex, None, budget=all_low * 0.8, backend="torch", isolate=False, progress=False,
                        use_ops=False, use_subtrees=False)
    assert result.exclusions == (), "the backend measures all-low within budget: nothing to keep in FP32"
    assert result.within_budget and result.confirmed["chosen"]["error"] <= all_low * 0.8


def test_search_says_when_the_backend_stays_over_budget(monkeypatch):
    _pessimistic_backend(monkeypatch, factor=50.0, floor=2e-3)
    result = run_search(stack_explorer(), None, budget=1e-3, backend="torch", isolate=False, progress=False,
                        use_ops=False, use_subtrees=False, max_probes=3)
    assert any(step.action.startswith("bisect") for step in result.steps)
    assert not result.within_budget, "still over budget on the backend, and it says so"
    assert result.confirmed["chosen"]["error"] > 1e-3


def test_capped_gain_prefers_the_cheap_module_that_is_enough():
    from mixprec_explorer.search import Candidate, _pick

    block = Candidate("module", "^block(\\.|$)", ("a", "b", "c"), gain=1.0, low_error=1.0, cost_ms=5.0)
    small = Candidate("module", "^block\\.a$", ("a",), gain=0.05, low_error=0.05, cost_ms=0.5)
    assert _pick([block, small], remaining=0.04, objective="latency") is small
    assert _pick([block, small], remaining=2.0, objective="latency") is block  # 0.2 per ms beats 0.1 per ms
    useless = Candidate("op", "aten.relu.default", ("r",), gain=0.0, low_error=0.0, cost_ms=0.1)
    assert _pick([useless], remaining=1.0, objective="latency") is None


@pytest.mark.slow
def test_fused_builds_are_priced_from_an_eager_run():
    """torch.compile fuses nodes and times none alone: the search prices nodes from eager PyTorch instead."""
    ex = fragile()
    result = run_search(ex, None, budget=1e-2, backend="torch", compile_options={"mode": "compiled"}, isolate=False,
                        progress=False, use_ops=False)
    assert "torch eager" in result.latency_source
    assert result.within_budget
    # Inductor fuses exp with the division after it in FP32, so its build may not overflow where eager does:
    # the search follows what the backend measures
    if result.confirmed["all_low"]["error"] <= 1e-2:
        assert result.exclusions == ()
    else:
        assert [c.value for c in result.exclusions] == ["^blowup$"]


class _Block(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        from test_sensitivity import Exp

        self.first = Exp()
        self.second = torch.nn.Sequential(torch.nn.Linear(4, 4), Exp())

    def forward(self, x):
        return self.second(self.first(x))  # exp(~12.5)/1e5 ~ 2.7, + 9.5 in second[0]: exp overflows FP16 again


class _TwoOverflows(torch.nn.Module):
    """Two exp overflows inside one block: keeping either alone in FP32 fixes nothing, the block does."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(4, 4)
        self.block = _Block()
        with torch.no_grad():
            self.fc.weight.copy_(torch.eye(4))
            self.fc.bias.fill_(11.5)
            self.block.second[0].weight.copy_(torch.eye(4))
            self.block.second[0].bias.fill_(9.5)

    def forward(self, x):
        return self.block(self.fc(x))


def test_a_whole_block_is_one_regex_when_its_parts_only_help_together():
    ex = Explorer(_TwoOverflows().eval(), (torch.rand(3, 4),))
    ex.settings = Settings(enable_autocast=True, autocast_low_precision_type=torch.float16)
    result = run_search(ex, None, budget=1e-2, backend=None, progress=False, use_ops=False)
    assert result.within_budget
    assert [c.value for c in result.exclusions] == [r"^block(\.|$)"]
    assert all(ex.plan()[n].dtype == torch.float32 for n in result.exclusions[0].nodes)


def test_each_greedy_rule_makes_a_plan_and_the_cheapest_within_budget_is_kept(tmp_path):
    ex = stack_explorer()
    all_low = all_low_error(ex)
    result = run_search(ex, None, budget=all_low * 0.5, backend=None, state_path=tmp_path / "s.json", progress=False)
    plans = json.loads((tmp_path / "s.json").read_text())["plans"]
    assert set(plans) == {"single", "capped", "ratio"}
    feasible = {k: v for k, v in plans.items() if v["error"] <= all_low * 0.5}
    assert feasible, "at least one rule meets a budget of half the all-low error"
    cheapest = min(feasible.values(), key=lambda v: v["latency_ms"])
    assert sorted(c.value for c in result.exclusions) == sorted(cheapest["chosen"])
    assert result.estimated_latency_ms == pytest.approx(cheapest["latency_ms"])
    assert any(step.action.startswith("keep the") for step in result.steps)


def test_a_state_file_of_an_older_search_is_refused_not_misread(tmp_path):
    state = tmp_path / "state.json"
    run_search(fragile(), None, budget=1e-2, backend=None, state_path=state, progress=False, use_ops=False)
    old = json.loads(state.read_text())
    old["version"] = 1
    state.write_text(json.dumps(old))
    with pytest.raises(OptionError, match="another version of mixprec_explorer.*delete it"):
        run_search(fragile(), None, budget=1e-2, backend=None, state_path=state, progress=False, use_ops=False)
    assert json.loads(state.read_text())["version"] == 1, "the user's file is left as it was"


# -- few compiles: the predictor chooses what the backend builds (issue 12) ------------------------------------------
@pytest.fixture
def real_compiles(monkeypatch):
    """Every build the PyTorch backend really does, as (settings, mode), with the compile cache emptied first."""
    from mixprec_explorer import backends
    from mixprec_explorer.backends.torch_backend import TorchBackend

    backends.clear_cache()
    real, seen = TorchBackend.compile, []

    def counted(self, explorer, plan, device, **options):
        seen.append((plan.settings, options.get("mode", "eager")))
        return real(self, explorer, plan, device, **options)

    monkeypatch.setattr(TorchBackend, "compile", counted)
    return seen


def test_a_search_compiles_each_plan_once_and_at_most_four_beyond_fp32_and_all_low(monkeypatch, real_compiles):
    _pessimistic_backend(monkeypatch, factor=3.0)  # the forward pass alone would pick too few exclusions
    ex = stack_explorer()
    budget = all_low_error(ex) * 0.6
    result = run_search(ex, None, budget=budget, backend="torch", isolate=False, progress=False)
    fp32, all_low = (p.settings for p in result.backend_plans[:2])
    assert fp32.autocast_excluded_nodes == {".*"} and not all_low.autocast_excluded_nodes
    assert len(real_compiles) == len(set(real_compiles)), "no plan is built twice (price, calibrate, probe, confirm)"
    assert real_compiles.count((fp32, "eager")) == real_compiles.count((all_low, "eager")) == 1
    assert result.compiles == len(real_compiles) and result.compiles_reused == 0
    assert 1 <= result.compiles_beyond_calibration <= 4 and result.compiles == 2 + result.compiles_beyond_calibration
    assert result.backend_probes == result.compiles_beyond_calibration
    assert result.within_budget and result.reachable and result.confirmed["chosen"]["error"] <= budget
    labels = [p.label for p in result.backend_plans]
    assert labels[:2] == ["all-FP32", "all-low"] and all(label.startswith("prefix ") for label in labels[2:])
    assert result.settings in {p.settings for p in result.backend_plans}, "the chosen plan is one of those measured"
    for plan in result.backend_plans:
        assert plan.measured_error is not None and plan.measured_latency_ms > 0
        if plan.role == "probe":
            assert plan.predicted_error is not None and plan.predicted_latency_ms > 0
    again = run_search(ex, None, budget=budget, backend="torch", isolate=False, progress=False)
    assert len(real_compiles) == len(set(real_compiles)), "a second search takes the cached builds"
    assert again.compiles_reused >= 2, "all-FP32 and all-low, built for the first search"


def test_the_predictor_receives_every_plan_the_search_measured(real_compiles):
    ex = stack_explorer()
    result = run_search(ex, None, budget=all_low_error(ex) * 0.4, backend="torch", isolate=False, progress=False)
    assert ex.predictor.targets() == ["torch eager on cpu"]
    for plan in result.backend_plans:  # each one a calibration point, with its error and its time in turns
        p = ex.predict(plan.settings, backend="torch eager")
        assert p.measured_error == plan.measured_error and p.measured_latency_ms == plan.measured_latency_ms
        if plan.role == "probe":  # eager PyTorch rounds as the forward pass does: the anchored prediction is exact
            assert plan.predicted_error == pytest.approx(plan.measured_error, rel=1e-9)
    p = ex.predict(result.settings, backend="torch eager")
    assert {s.kind for s in p.sources} >= {"profile", "accuracy", "sensitivity"}
    assert "fitted on" in p.statement and "measured mixed plan" in p.statement
    anchored = ex.predictor.predict(result.settings, backend="torch eager", forward_error=result.error)
    assert anchored.error == pytest.approx(result.confirmed["chosen"]["error"], rel=1e-6)
    costs = {c.value: c.cost_ms for c in result.exclusions}
    assert all(math.isfinite(v) for v in costs.values()), "candidates are priced by the model (casts included)"


@pytest.mark.slow
def test_an_unreachable_budget_says_so_shows_the_floor_and_loads_the_floor_plan(real_compiles):
    """Inductor's FP32 build is ~1e-7 off the eager FP32 reference on a CPU (its own reduction order): no plan can
    meet a budget below that, and the search says so instead of presenting a plan as within budget."""
    ex = stack_explorer()
    result = run_search(ex, None, budget=1e-9, backend="torch", isolate=False, progress=False,
                        compile_options={"mode": "compiled"})
    floor = result.confirmed["fp32"]["error"]
    assert floor > 1e-9, "the FP32 build differs from the reference (else this test proves nothing)"
    assert not result.reachable and not result.within_budget
    assert result.floor_error == floor and result.floor_plan == "all-FP32"
    assert result.settings.autocast_excluded_nodes == {".*"} and ex.settings == result.settings, "the floor plan"
    assert result.compiles == 2 and result.compiles_beyond_calibration == 0, "nothing is searched"
    text = result.explain()
    assert text.startswith("budget 1e-09 rel_l2 is NOT reachable") and f"{floor:.3g} (all-FP32)" in text
    assert any(d.startswith("unreachable: torch measures all-FP32") for d in result.decisions())
    assert result.floor_text() == f"floor: {floor:.3g} rel_l2 (all-FP32), over the budget 1e-09"


def test_a_probe_limit_of_zero_compiles_only_the_calibration_plans(monkeypatch, real_compiles):
    _pessimistic_backend(monkeypatch, factor=3.0)
    ex = stack_explorer()
    result = run_search(ex, None, budget=all_low_error(ex) * 0.6, backend="torch", isolate=False, progress=False,
                        max_probes=0)
    assert result.backend_probes == 0 and result.compiles == 3, "all-FP32, all-low and the plan confirmed"
    assert any("the limit of 0 probes" in d for d in result.decisions())
    with pytest.raises(OptionError, match="max_probes"):
        run_search(ex, None, budget=1e-3, backend=None, max_probes=-1)


@pytest.mark.slow
def test_the_live_search_script_runs_small_on_the_cpu(tmp_path):
    """``benchmarks/run.py search-live`` end to end (tiny models, PyTorch eager): rows, compile counts, exported plans."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    run = subprocess.run([sys.executable, str(root / "benchmarks" / "run.py"), "search-live", "--small", "--models",
                          "resnet50,encoder", "--budgets", "1e-3", "--out", str(tmp_path)], capture_output=True,
                         text=True, timeout=600, cwd=root)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    doc = json.loads((tmp_path / "search_live.json").read_text())
    assert [r["model"] for r in doc["rows"]] == ["resnet50", "encoder"]
    for row in doc["rows"]:
        assert "failed" not in row, row.get("trace")
        assert row["compiles"] == 2 + row["beyond"] and row["beyond"] <= 4
        assert row["within_budget"] and row["measured_error"] <= 1e-3
        assert {p["label"] for p in row["plans"]} >= {"all-FP32", "all-low"}
        assert Settings.load(tmp_path / f"{row['model']}_0.001.json").enable_autocast
    text = (tmp_path / "search_live.md").read_text()
    assert "| compiles (total / beyond FP32+all-low) |" in text and "| resnet50 | 0.001 |" in text
    assert "predicted ms | measured ms" in text and text.startswith("Device: ")


def test_the_explorer_and_run_search_cap_probes_alike():
    """README promises ``max_probes`` defaults to 4 compiles beyond the calibration, from either door."""
    import inspect

    from mixprec_explorer import Explorer
    from mixprec_explorer.search import DEFAULT_MAX_PROBES
    assert inspect.signature(Explorer.search).parameters["max_probes"].default == DEFAULT_MAX_PROBES == 4
    assert inspect.signature(run_search).parameters["max_probes"].default == DEFAULT_MAX_PROBES


def test_a_plan_that_keeps_little_of_the_speedup_says_so():
    """The encoder on TensorRT-RTX at 1e-3 met its budget only at FP32 speed: the explanation says how little of
    the speed-up is left and why, instead of listing sixty exclusions as if they were a bargain."""
    from dataclasses import replace

    ex = stack_explorer()
    result = run_search(ex, None, budget=all_low_error(ex) * 0.6, backend=None, progress=False)

    def confirmed(fp32: float, all_low: float, chosen: float):
        return replace(result, within_budget=True, confirmed={
            "fp32": {"latency_ms": fp32}, "all_low": {"latency_ms": all_low}, "chosen": {"latency_ms": chosen}})

    slow = confirmed(4.859, 2.810, 4.862)  # the live engine's figures
    assert slow.time_saved_share() == pytest.approx(-0.0015, abs=1e-3)
    assert "saves none of the time all-low saves (4.862 ms against 4.859 ms all-FP32 and 2.81 ms" in slow.explain()
    assert "saves only 20% of" in confirmed(5.0, 3.0, 4.6).explain()
    fast = confirmed(2.993, 2.018, 1.979)  # ResNet-50 with fc in FP32
    assert fast.time_saved_share() > 1 and "of the time all-low saves" not in fast.explain()
    assert confirmed(3.0, 2.95, 3.0).time_saved_share() is None, "all-low is no faster: nothing to share"
    assert result.time_saved_share() is None, "not confirmed on a backend"
    # MobileNetV3-L on the live engine: an all-FP32 plan timed 0.1 % slower read 0.83 as a ratio of speedups
    counted = replace(result, within_budget=True, confirmed={
        "fp32": {"latency_ms": 4.859, "low_nodes": 0}, "all_low": {"latency_ms": 4.03, "low_nodes": 120},
        "chosen": {"latency_ms": 4.80, "low_nodes": 0}})
    assert counted.time_saved_share() == 0.0, "no node in low precision keeps none of the saving, whatever the noise"
    assert "saves none of the time all-low saves" in counted.explain()
    counted.confirmed["chosen"].update(low_nodes=120, latency_ms=4.1)
    assert counted.time_saved_share() == 1.0, "the all-low plan itself"
    counted.confirmed["chosen"].update(low_nodes=60, latency_ms=4.4445)
    assert counted.time_saved_share() == pytest.approx(0.5)


@pytest.mark.filterwarnings("ignore::mixprec_explorer.explorer.SettingsWarning")  # integer casts: TensorRT's concern
def test_a_pair_of_op_types_keeps_a_transformers_residual_path_fp32():
    """The encoder's FP16 error is spread over every layer: keeping the residual adds FP32 removes nothing while
    the layer norms round what they read, and the norms alone little, but the two together keep the residual
    path FP32 and remove most of it (0.41x of all-low's error here), for the price of two memory-bound op types
    instead of whole layers. The search offers the pair and picks it."""
    from mixprec_explorer import examples

    model, inputs = examples.transformer_encoder(layers=6, batch=4, seq=64, d_model=256, heads=4, ffn=1024)
    fp16 = Settings(enable_autocast=True, autocast_low_precision_type=torch.float16)
    ex = Explorer(model, inputs, settings=fp16)
    all_low = ex.accuracy(ex.compile(fp16, backend="torch", isolate=False, progress=False)).rel_l2_error
    result = run_search(ex, inputs, budget=0.39 * all_low, backend=None, progress=False)
    pair = "torch.ops.aten.layer_norm.default + torch.ops.aten.add.Tensor"
    assert pair in [c.value for c in result.exclusions if c.kind == "ops"]
    assert not any(c.value.startswith("^layers") for c in result.exclusions), "no whole layer kept FP32"
    assert {"torch.ops.aten.layer_norm.default", "torch.ops.aten.add.Tensor"} <= result.settings.autocast_excluded_ops
    assert result.error <= 0.39 * all_low


def _crash_probes(monkeypatch, how_many: int) -> list:
    """The first ``how_many`` probes (plans beyond all-FP32 and all-low) segfault the worker when built."""
    from mixprec_explorer.analysis import backend as analysis_backend

    real, crashed = analysis_backend.Build.compile, []

    def crash_probe(self, explorer, settings, backend=None, options=None):
        calibration = settings.autocast_excluded_nodes == {".*"} or not (
            settings.autocast_excluded_nodes or settings.autocast_excluded_ops)
        if calibration or len(crashed) >= how_many:
            return real(self, explorer, settings, backend, options)
        crashed.append(settings)
        return explorer.compile(settings, backend="torch", isolate=True, progress=False, _fault="segfault")

    monkeypatch.setattr(analysis_backend.Build, "compile", crash_probe)
    return crashed


@pytest.mark.slow
@pytest.mark.parametrize("margin", [None, 1.0])
def test_a_probe_whose_build_crashes_the_worker_is_over_budget_and_the_search_goes_on(monkeypatch, margin):
    """TensorRT-RTX 1.4's builder segfaults on some plans (the encoder with attention FP32 between FP16 matmuls); a
    probe that crashes the worker is a plan that cannot be built, not the end of the search. The crash is real: the
    worker process segfaults (the worker's own fault hook) when the first probe is built. With no margin below the
    budget after a probe, the crashed plan (the whole pick order) is one the model already calls within budget: the
    search must still extend the order and build another, never keep the plan that did not build."""
    import mixprec_explorer.search as search_module

    if margin is not None:
        monkeypatch.setattr(search_module, "STEP_MARGIN", margin)
    _pessimistic_backend(monkeypatch, factor=3.0)
    crashed = _crash_probes(monkeypatch, 1)
    ex = stack_explorer()
    before = ex.settings
    budget = all_low_error(ex) * 0.6
    result = run_search(ex, None, budget=budget, backend="torch", progress=False, use_ops=False, use_subtrees=False)
    assert crashed, "a probe was built (else this test proves nothing)"
    failed = [d for d in result.decisions() if "failed to build" in d]
    assert failed and "killed by signal SIGSEGV" in failed[0], result.decisions()
    assert result.within_budget and result.confirmed["chosen"]["error"] <= budget, "the search went on to a plan"
    assert result.settings != crashed[0] or result.backend_probes >= 2
    assert ex.settings == result.settings and before != ex.settings


@pytest.mark.slow
def test_when_every_probe_fails_to_build_the_search_keeps_a_plan_that_builds(monkeypatch):
    """A kept plan is one the backend built: where every probe crashed, the all-low plan (measured, over budget)
    rather than a plan whose error is unknown."""
    _pessimistic_backend(monkeypatch, factor=3.0)
    crashed = _crash_probes(monkeypatch, 100)
    ex = stack_explorer()
    budget = all_low_error(ex) * 0.6
    result = run_search(ex, None, budget=budget, backend="torch", progress=False, use_ops=False, use_subtrees=False,
                        max_probes=2)
    assert len(crashed) == 2, "both probes were built and crashed"
    assert any("every probe failed to build" in d for d in result.decisions()), result.decisions()
    assert result.exclusions == () and not result.within_budget
    assert math.isfinite(result.confirmed["chosen"]["error"]), "the kept plan was built and measured"


def test_a_search_interrupted_after_pricing_resumes_without_profiling_again(tmp_path, monkeypatch):
    """The backend's profiles (slow: real FP16 on a CPU) are saved as soon as they are priced."""
    from mixprec_explorer import search as search_module

    state = tmp_path / "state.json"
    ex = fragile()
    ex.settings = Settings(enable_autocast=True, autocast_low_precision_type=torch.float16)
    real_sensitivity, real_pricing = search_module.compute_sensitivity, search_module.calibration_profiles
    priced = {"n": 0}

    def counted(*args, **kwargs):
        priced["n"] += 1
        return real_pricing(*args, **kwargs)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt  # the user stops the kernel during sensitivity

    monkeypatch.setattr(search_module, "calibration_profiles", counted)
    monkeypatch.setattr(search_module, "compute_sensitivity", interrupted)
    options = dict(budget=1e-2, backend="torch", isolate=False, state_path=state, progress=False, use_ops=False)
    with pytest.raises(KeyboardInterrupt):
        run_search(ex, None, **options)
    saved = json.loads(state.read_text())
    assert saved["phase"] == "rank" and priced["n"] == 1
    assert set(saved["priced"]["fp32"]) >= {"linear", "exp", "linear_1"} and saved["priced"]["target"]
    monkeypatch.setattr(search_module, "compute_sensitivity", real_sensitivity)
    result = run_search(ex, None, **options)
    assert priced["n"] == 1, "the resumed search priced nodes from the saved state"
    assert json.loads(state.read_text())["phase"] == "done"
    assert [c.value for c in result.exclusions] == ["^blowup$"] and result.within_budget
