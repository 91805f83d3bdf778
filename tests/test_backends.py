"""The backend registry and template: availability, "auto", the compile cache, and Explorer's compile/profile."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from mixprec_explorer import BackendUnavailable, Explorer, OptionError, OptionTypeError, Settings
from mixprec_explorer import backends as B
from mixprec_explorer.backends.base import Compiled, Profile
from mixprec_explorer.backends.fingerprint import describe_inputs, fingerprint_plan, fingerprint_program
from mixprec_explorer.examples import reference_autocast_model

from _models import MLP

FP16 = Settings(enable_autocast=True, autocast_low_precision_type=torch.float16)
HAS_TRT = importlib.util.find_spec("torch_tensorrt") is not None


@pytest.fixture
def ex() -> Explorer:
    return Explorer(*reference_autocast_model())


@pytest.fixture
def scratch_backend():
    """Register names for one test and remove them afterwards."""
    names = []

    def register(name, target, **kwargs):
        names.append(name)
        B.register_backend(name, target, **kwargs)

    yield register
    for name in names:
        B.unregister_backend(name)


def test_torch_is_always_available():
    status = B.available_backends()
    assert status["torch"] == (True, "")
    assert set(status) >= {"torch", "tensorrt"}


@pytest.mark.skipif(HAS_TRT, reason="torch_tensorrt is installed here")
def test_tensorrt_is_unavailable_with_an_install_hint():
    ok, reason = B.available_backends()["tensorrt"]
    assert not ok
    assert 'pip install "mixprec-explorer[tensorrt]"' in reason
    with pytest.raises(BackendUnavailable, match=r"mixprec-explorer\[tensorrt\]"):
        B.get_backend("tensorrt")


def test_a_broken_backend_module_is_listed_not_raised(scratch_backend):
    scratch_backend("broken", "mixprec_explorer.backends.no_such_module:Nothing", extra="tensorrt")
    scratch_backend("missing_lib", "mixprec_explorer.backends.torch_backend:TorchBackend",
                    requires=("no_such_library_xyz",), extra="tensorrt")
    status = B.available_backends()
    assert status["broken"][0] is False and "ModuleNotFoundError" in status["broken"][1]
    assert "no_such_library_xyz is not installed" in status["missing_lib"][1]
    assert "pip install" in status["broken"][1] and "pip install" in status["missing_lib"][1]
    with pytest.raises(BackendUnavailable, match="broken"):
        B.get_backend("broken")


def test_unknown_backend_name():
    with pytest.raises(BackendUnavailable, match="no backend named 'nope'"):
        B.choose_backend("nope")


@pytest.mark.skipif(HAS_TRT, reason="torch_tensorrt is installed here")
def test_auto_picks_torch_here_and_says_so(ex, capsys):
    name, note = B.choose_backend("auto")
    assert name == "torch" and "chose 'torch'" in note and "tensorrt unavailable" in note
    compiled = B.compile_plan(ex, FP16, device="cpu", backend="auto", isolate=False, use_cache=False)
    assert compiled.backend == "torch" and compiled.device == "cpu"
    assert compiled.notes[0].startswith("backend='auto' chose 'torch'")
    assert "chose 'torch'" in capsys.readouterr().err


def test_auto_prefers_the_first_usable_backend(monkeypatch, scratch_backend):
    scratch_backend("first", "mixprec_explorer.backends.torch_backend:TorchBackend")
    monkeypatch.setattr(B, "AUTO_ORDER", ("missing_one", "first", "torch"))
    name, note = B.choose_backend("auto")
    assert name == "first" and "missing_one unavailable" in note


def test_cache_returns_the_same_compiled_at_once(ex, monkeypatch):
    B.clear_cache()
    first = B.compile_plan(ex, FP16, device="cpu", backend="torch", isolate=False, progress=False)
    backend = B.get_backend("torch")
    compiles = []
    original = type(backend).compile
    monkeypatch.setattr(type(backend), "compile", lambda *a, **k: compiles.append(a) or original(*a, **k))
    again = B.compile_plan(ex, FP16, device="cpu", backend="torch", isolate=False, progress=False)
    assert again is first and compiles == [], "the cached Compiled, with no second compile"
    assert ex.compile(FP16, device="cpu", backend="torch", isolate=False, progress=False) is first
    other = B.compile_plan(ex, FP16.replace(use_fp32_acc=True), device="cpu", backend="torch", isolate=False, progress=False)
    assert other is not first and other.key != first.key
    assert B.compile_plan(ex, FP16, device="cpu", backend="torch", isolate=False, progress=False, use_cache=False) is not first


def test_an_analysis_keeps_every_plan_it_compiled_and_the_cache_shrinks_after(ex, monkeypatch):
    """Inside keep_compiled() (a search) a plan asked for again is never rebuilt, however many plans came between."""
    B.clear_cache()
    monkeypatch.setattr(B, "CACHE_SIZE", 2)
    plans = [FP16.replace(autocast_excluded_nodes=frozenset({f"^{n}$"})) for n in ("linear1", "linear2", "linear3")]
    with B.keep_compiled():
        first = [B.compile_plan(ex, s, device="cpu", backend="torch", isolate=False, progress=False) for s in plans]
        again = [B.compile_plan(ex, s, device="cpu", backend="torch", isolate=False, progress=False) for s in plans]
        assert all(a is b for a, b in zip(first, again))
    assert B.compile_plan(ex, plans[-1], device="cpu", backend="torch", isolate=False, progress=False) is first[-1]
    rebuilt = B.compile_plan(ex, plans[0], device="cpu", backend="torch", isolate=False, progress=False)
    assert rebuilt is not first[0], "after the block the cache holds CACHE_SIZE plans again: the oldest went"


def test_cache_key_covers_model_plan_inputs_device_and_options(ex):
    key = B.cache_key(ex, FP16, "torch", "cpu", {"mode": "eager"})
    assert key == B.cache_key(ex, FP16, "torch", "cpu", {"mode": "eager"})
    assert key.input_shapes == ((1, 10),) and key.input_dtypes == ("float32",)
    assert key != B.cache_key(ex, FP16, "torch", "cuda:0", {"mode": "eager"})
    assert key != B.cache_key(ex, FP16, "torch", "cpu", {"mode": "compiled"})
    # calibration changes the plan under the same settings, so the key changes with it
    ex.calibrate([(torch.randn(1, 10) * 1000,)])
    calibrated = B.cache_key(ex, FP16, "torch", "cpu", {"mode": "eager"})
    assert calibrated.plan_digest != key.plan_digest and calibrated.model_fingerprint == key.model_fingerprint
    other = Explorer(*reference_autocast_model())
    with torch.no_grad():
        other.exported_program.state_dict["linear1.weight"].add_(1.0)
    other_fp = fingerprint_program(other.exported_program)
    assert other_fp != key.model_fingerprint  # weights are part of the fingerprint
    assert fingerprint_plan(ex.plan(FP16)) == fingerprint_plan(ex.plan(FP16))
    assert describe_inputs((torch.zeros(2, 3, dtype=torch.float16), 4)) == (((2, 3), ()), ("float16", "int"))


def test_default_device_and_settings(ex):
    compiled = B.compile_plan(ex, backend="torch", isolate=False, progress=False)
    assert compiled.settings == ex.settings
    assert compiled.device == ("cuda:0" if torch.cuda.is_available() else "cpu")


def test_explorer_compile_profile_through_the_worker(ex):
    compiled = ex.compile(FP16, device="cpu", backend="torch", progress=False)
    assert isinstance(compiled, Compiled) and isinstance(compiled.handle, B.WorkerHandle)
    assert compiled.key.backend == "torch" and compiled.compile_s > 0
    profile = ex.profile(compiled, runs=3, warmup=1, progress=False)
    assert isinstance(profile, Profile) and ex.last_profile is profile
    assert [layer.name for layer in profile.layers] == ["linear", "linear_1", "linear_2"]
    assert set(profile.node_dtypes().values()) == {torch.float16}
    assert profile.layer_sum_ratio is not None
    outputs = B.run_compiled(ex, compiled, torch.randn(1, 10))
    assert outputs.dtype == torch.float16 and outputs.device.type == "cpu"


def test_progress_bar_and_in_process_profile(ex, capsys):
    compiled = B.compile_plan(ex, FP16, device="cpu", backend="torch", isolate=False, progress=True, use_cache=False)
    profile = B.profile_compiled(ex, compiled, inputs=torch.randn(1, 10), runs=2, warmup=0, progress=True)
    assert profile.end_to_end.runs == 2
    assert "torch profile" in capsys.readouterr().err


def test_backend_options_reach_the_backend():
    model = Explorer(MLP().eval(), (torch.randn(2, 8),))
    with pytest.raises(TypeError, match="no_such_option"):
        B.compile_plan(model, FP16, device="cpu", backend="torch", isolate=False, progress=False, no_such_option=1)


@pytest.mark.parametrize(("options", "error", "message"), [
    ({"mode": "fast"}, OptionError, r"mode must be one of 'eager', 'compiled'; got 'fast'"),
    ({"cast_non_float": "no"}, OptionTypeError, r"cast_non_float must be True or False"),
    ({"compile_options": {"fullgrph": True}}, OptionTypeError, r"'fullgrph' are not torch.compile keywords"),
    ({"compile_options": {"dynamic": True}}, OptionError, r"used only with mode='compiled'"),
    ({"mode": "compiled", "compile_options": {"mode": "fastest"}}, OptionError, r"one of 'default'.*'max-autotune'"),
])
def test_option_values_are_refused_before_any_worker_starts(ex, options, error, message):
    B.shutdown_worker()
    worker = B.get_worker()
    generation = worker.generation
    with pytest.raises(error, match=message):
        ex.compile(FP16, backend="torch", progress=False, **options)
    assert not worker.is_alive and worker.generation == generation  # nothing was started, shipped or compiled


def test_search_and_frontier_refuse_option_values_before_any_work(ex):
    B.shutdown_worker()
    worker = B.get_worker()
    with pytest.raises(OptionError, match="mode must be one of 'eager', 'compiled'; got 'fast'"):
        ex.search(backend="torch", compile_options={"mode": "fast"}, progress=False)
    with pytest.raises(OptionTypeError, match="unexpected option.*'fast_mode'"):
        ex.frontier(backend="torch", compile_options={"fast_mode": True}, progress=False)
    assert not worker.is_alive and ex.last_search is None


def test_profile_and_device_values_are_refused_before_any_work(ex):
    compiled = ex.compile(FP16, backend="torch", device="cpu", isolate=False, progress=False)
    with pytest.raises(OptionError, match="profile_runs must be at least 1"):
        ex.profile(compiled, progress=False, profile_runs=0)
    with pytest.raises(OptionError, match="device must be a torch device.*'gpu'"):
        ex.compile(FP16, backend="torch", device="gpu", progress=False)
    with pytest.raises(OptionError, match="timeout_s must be more than 0 .seconds, or None."):
        ex.compile(FP16, backend="torch", device="cpu", progress=False, timeout_s=0)


def test_interleaved_timing_takes_plans_in_blocks_in_a_new_order_each_turn():
    from mixprec_explorer.backends.timing import time_interleaved

    calls: list[str] = []
    plans = [lambda: calls.append("a"), lambda: calls.append("b"), lambda: calls.append("c")]
    times = time_interleaved(plans, runs=30, warmup=1, block=3)
    assert [len(t) for t in times] == [30, 30, 30], "each plan timed `runs` times"
    warm, rest = calls[:3], calls[3:]
    assert sorted(warm) == ["a", "b", "c"], "a warm-up turn runs each plan once"
    blocks = ["".join(rest[i:i + 4]) for i in range(0, len(rest), 4)]
    assert all(len(set(b)) == 1 and len(b) == 4 for b in blocks), "a block: one untimed run, then 3 timed in a row"
    turns = ["".join(b[0] for b in blocks[i:i + 3]) for i in range(0, len(blocks), 3)]
    assert len(turns) == 10 and all(sorted(t) == ["a", "b", "c"] for t in turns), "each turn runs every plan"
    assert len(set(turns)) > 1, "the order changes from turn to turn"
    assert {t[0] for t in turns} == {"a", "b", "c"}, "no plan always goes first"
    again: list[str] = []
    time_interleaved([lambda: again.append("a"), lambda: again.append("b"), lambda: again.append("c")],
                     runs=30, warmup=1, block=3)
    assert again == calls, "the same seed gives the same order"
    short = time_interleaved([lambda: None, lambda: None], runs=5, block=4)
    assert [len(t) for t in short] == [5, 5], "a last, shorter block tops the runs up exactly"
    assert all(ms >= 0 for t in times for ms in t)


def test_time_plans_compares_plans_in_one_place(ex):
    fp32 = ex.compile(FP16.replace(autocast_excluded_nodes=frozenset({".*"})), device="cpu", backend="torch",
                      progress=False)
    low = ex.compile(FP16, device="cpu", backend="torch", progress=False)
    timings = B.time_plans(ex, [fp32, low], runs=4, warmup=1, progress=False)
    assert [t.runs for t in timings] == [4, 4] and all(t.median_ms > 0 for t in timings)
    here = B.compile_plan(ex, FP16, device="cpu", backend="torch", isolate=False, progress=False)
    assert B.time_plans(ex, [here], runs=2, progress=False)[0].runs == 2
    with pytest.raises(ValueError, match="all with isolate=True or all with isolate=False"):
        B.time_plans(ex, [low, here], progress=False)
