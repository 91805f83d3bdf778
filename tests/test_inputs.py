"""One set of rules for inputs at every door, typed keywords, and results as typed attributes."""

from __future__ import annotations

import math

import pytest
import torch

from mixprec_explorer import Explorer, InputError, Settings
from mixprec_explorer.analysis import as_batches, normalize_inputs

from _models import MLP

FP16 = Settings(enable_autocast=True, autocast_low_precision_type=torch.float16)


@pytest.fixture(scope="module")
def static() -> Explorer:
    torch.manual_seed(0)
    ex = Explorer(MLP().eval(), (torch.randn(2, 8),))
    ex.settings = FP16
    return ex


def test_a_tensor_a_tuple_and_a_list_of_batches_mean_the_same_everywhere(static: Explorer) -> None:
    x = torch.randn(2, 8)
    assert as_batches(x, ()) == as_batches((x,), ()) == [(x,)]
    assert len(as_batches([x, (x,)], ())) == 2
    for inputs in (x, (x,), [x], [(x,), (x.clone(),)]):
        assert normalize_inputs(static.captured, inputs)[0][0].shape == (2, 8)
        sens = static.sensitivity(inputs, progress=False)
        assert sens.all_low_error > 0 and math.isfinite(sens.all_low_error)
    one = static.sensitivity(x, progress=False).all_low_error
    assert static.sensitivity([x, x], progress=False).all_low_error == pytest.approx(one, rel=1e-6)
    compiled = static.compile(backend="torch", device="cpu", isolate=False, progress=False)
    reports = [static.accuracy(compiled, inputs) for inputs in (x, (x,), [x, x])]
    assert reports[0].rel_l2_error == reports[1].rel_l2_error == pytest.approx(reports[2].rel_l2_error, rel=1e-9)
    assert reports[2].numel == 2 * reports[0].numel
    assert static.profile(compiled, [x, x], runs=2, warmup=0, progress=False).notes[-1].startswith(
        "measured on the first of the 2 batches")
    frontier = static.frontier(x, progress=False)
    assert frontier.points[0].label == "all low"
    result = static.search(x, budget=1e9, backend=None, progress=False)
    assert result.within_budget and result.exclusions == ()


@pytest.mark.parametrize("call", ["sensitivity", "search", "frontier", "accuracy", "profile", "calibrate"])
def test_another_batch_size_is_a_named_error_not_a_guard_assertion(static: Explorer, call: str) -> None:
    wrong = (torch.randn(4, 8),)
    compiled = static.compile(backend="torch", device="cpu", isolate=False, progress=False)
    calls = {
        "sensitivity": lambda: static.sensitivity(wrong, progress=False),
        "search": lambda: static.search(wrong, backend=None, progress=False),
        "frontier": lambda: static.frontier(wrong, progress=False),
        "accuracy": lambda: static.accuracy(compiled, wrong),
        "profile": lambda: static.profile(compiled, wrong, runs=1, progress=False),
        "calibrate": lambda: static.calibrate([wrong]),
    }
    with pytest.raises(InputError, match=r"input 0 \('x'\) has shape \(4, 8\).*captured with \(2, 8\).*dimension 0 "
                                         r"is fixed at 2.*dynamic_shapes") as info:
        calls[call]()
    assert info.value.index == 0
    assert not isinstance(info.value, AssertionError)


def test_wrong_count_rank_and_dtype_are_named(static: Explorer) -> None:
    with pytest.raises(InputError, match=r"takes 1 input\(s\) \(x\), got 2"):
        static.sensitivity((torch.randn(2, 8), torch.randn(2, 8)), progress=False)
    with pytest.raises(InputError, match=r"a 1-d tensor; the program takes \(2, 8\)"):
        static.sensitivity(torch.randn(8), progress=False)
    with pytest.raises(InputError, match="is float64; the program was captured with float32"):
        static.sensitivity(torch.randn(2, 8, dtype=torch.float64), progress=False)
    with pytest.raises(InputError, match=r"batch 1: input 0"):
        static.sensitivity([torch.randn(2, 8), torch.randn(3, 8)], progress=False)
    with pytest.raises(InputError, match="no batches"):
        static.sensitivity([], progress=False)


def test_a_program_exported_with_a_dynamic_batch_takes_other_batch_sizes() -> None:
    torch.manual_seed(0)
    model = MLP().eval()
    batch = torch.export.Dim("batch", min=1, max=64)
    ep = torch.export.export(model, (torch.randn(2, 8),), dynamic_shapes=({0: batch},))
    ex = Explorer(ep, (torch.randn(2, 8),), settings=FP16)
    for size in (1, 4, 16):
        assert ex.sensitivity(torch.randn(size, 8), progress=False).all_low_error > 0
    compiled = ex.compile(backend="torch", device="cpu", isolate=False, progress=False)
    assert ex.accuracy(compiled, [torch.randn(4, 8), torch.randn(7, 8)]).numel == 11 * 4
    with pytest.raises(InputError, match=r"dimension 0 must be in \[1, 64\]"):
        ex.sensitivity(torch.randn(65, 8), progress=False)


def test_misspelled_keywords_raise_type_error(static: Explorer) -> None:
    with pytest.raises(TypeError, match="use_op"):
        static.search(budget=1e-2, backend=None, use_op=False)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="progres"):
        static.sensitivity(progres=False)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="max_point"):
        static.frontier(max_point=3)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="per_nod"):
        static.accuracy(static.compile(backend="torch", device="cpu", isolate=False, progress=False),
                        per_nod=True)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="'mdoe'.*'mode'"):
        static.compile(backend="torch", device="cpu", isolate=False, progress=False, mdoe="eager")
    with pytest.raises(TypeError, match="profile_run"):
        static.profile(static.compile(backend="torch", device="cpu", isolate=False, progress=False), profile_run=2)


def test_results_are_typed_attributes_and_extensions_is_a_deprecated_view() -> None:
    torch.manual_seed(0)
    ex = Explorer(MLP().eval(), (torch.randn(2, 8),), settings=FP16)
    assert (ex.last_profile, ex.last_accuracy, ex.last_sensitivity, ex.last_search, ex.last_frontier) == (None,) * 5
    sens = ex.sensitivity(progress=False)
    compiled = ex.compile(backend="torch", device="cpu", isolate=False, progress=False)
    profile = ex.profile(compiled, runs=2, warmup=0, progress=False)
    report = ex.accuracy(compiled)
    ex.calibrate([torch.randn(2, 8)])
    assert (ex.last_sensitivity, ex.last_profile, ex.last_accuracy) == (sens, profile, report)
    assert len(ex.calibration_batches) == 1 and ex.calibration_batches[0][0].shape == (2, 8)
    with pytest.deprecated_call():
        view = ex.extensions
    assert view["profile"] is profile and view.get("search") is None and "sensitivity" in view
    assert len(view["calibration_batches"]) == 1
    view["frontier"] = "set through the old name"
    assert ex.last_frontier == "set through the old name"
    del view["frontier"]
    assert ex.last_frontier is None and "frontier" not in view
