"""Search: meets the budget with few exclusions, explains them, and resumes from its saved state."""

from __future__ import annotations

import json

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
    result = run_search(ex, None, budget=1e-2, backend="torch", isolate=False, progress=False, use_ops=False)
    c = result.confirmed
    assert c["backend"] == "torch"
    assert set(c) >= {"fp32", "all_low", "chosen", "speedup_over_fp32", "share_of_all_low_speedup"}
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
