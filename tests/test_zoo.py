"""The model zoo: its registry's contract, the CLI's ``zoo:NAME``, and every zoo model through every step.

Each zoo model (small size, CPU) goes through benchmarks/zoo.py's steps: capture, plan (FP16 autocast),
check_settings, figure, HTML report, settings export and reload, cast program, torch-backend compile in the
default worker, profile and accuracy. Every step must pass or raise a MixprecError whose message names a fix;
a raw exception fails the model's test. At least 90 % of the models that build here must complete every step.
"""

from __future__ import annotations

import functools
import importlib.util
import re
import sys
from pathlib import Path

import pytest
import torch

from mixprec_explorer import Explorer, zoo
from mixprec_explorer.cli import main
from mixprec_explorer.errors import CaptureError, MixprecError, ZooError

ROOT = Path(__file__).resolve().parent.parent


def _load_runner():
    """benchmarks/zoo.py, the one step runner the benchmark and this test share."""
    spec = importlib.util.spec_from_file_location("mixprec_zoo_benchmark", ROOT / "benchmarks" / "zoo.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


runner = _load_runner()

#: Words a message uses when it tells the user what to do (the team's rule: every MixprecError names the fix).
FIX_WORDS = re.compile(r"\b(hint|fix|use|pass|set|call|try|install|instead|remove|export|exclude|wrap|see|keep|"
                       r"give|make|run|check|add|choose|build)\b", re.IGNORECASE)
REQUIRED = {"resnet18", "resnet50", "mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large", "efficientnet_b0",
            "convnext_tiny", "regnet_y_400mf", "swin_t", "vit_b_16", "densenet121", "googlenet", "bert_base",
            "distilbert_base", "roberta_base", "gpt2", "t5_small_encoder", "vit_base_hf", "whisper_tiny_encoder",
            "llama_small", "lraspp_mobilenet_v3"}


def _needs(name: str) -> None:
    ok, reason = zoo.available(name)
    if not ok:
        pytest.skip(f"{name}: {reason}")


# -- the registry's contract ------------------------------------------------------------------------------------------
def test_registry_has_the_issue_architectures_from_three_libraries():
    names = zoo.names()
    assert len(names) >= 25 and names == sorted(names)
    assert set(names) >= REQUIRED
    entries = [zoo.entry(n) for n in names]
    assert {e.source for e in entries} == {"torchvision", "timm", "transformers"}
    assert len({e.family for e in entries if e.source == "timm"}) >= 5
    assert {"text encoder", "text decoder", "encoder-decoder", "segmentation"} <= {e.task for e in entries}
    assert set(zoo.names(available=True)) <= set(names)


def test_unknown_name_and_bad_arguments_raise_zoo_errors_naming_the_fix():
    with pytest.raises(ZooError, match="convnext_tiny") as info:
        zoo.build("convnext_tine")
    assert isinstance(info.value, MixprecError)
    with pytest.raises(ZooError, match="small, real"):
        zoo.build("resnet18", size="huge")
    with pytest.raises(ZooError, match="positive"):
        zoo.build("resnet18", batch=0)


def test_a_missing_library_is_a_zoo_error_naming_the_extra(monkeypatch):
    zoo._importable.cache_clear()
    monkeypatch.setitem(sys.modules, "timm", None)  # what importing an uninstalled module does
    try:
        ok, reason = zoo.available("timm_resnet26d")
        assert not ok and "timm is not installed" in reason and "mixprec-explorer[zoo]" in reason
        assert "timm_resnet26d" not in zoo.names(available=True)
        with pytest.raises(ZooError, match=r"pip install \"mixprec-explorer\[zoo\]\""):
            zoo.build("timm_resnet26d")
    finally:
        zoo._importable.cache_clear()


@pytest.mark.parametrize("name", ["mobilenet_v3_small", "timm_levit_128s", "bert_base"])
def test_builds_are_seeded_and_leave_the_callers_random_state(name):
    _needs(name)
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    model_a, inputs_a = zoo.build(name, seed=0)
    assert torch.equal(torch.rand(3), expected)  # the caller's generator did not move
    model_b, inputs_b = zoo.build(name, seed=0)
    model_c, inputs_c = zoo.build(name, seed=1)
    assert not model_a.training
    state_a, state_b, state_c = model_a.state_dict(), model_b.state_dict(), model_c.state_dict()
    assert all(torch.equal(state_a[k], state_b[k]) for k in state_a)
    assert all(torch.equal(a, b) for a, b in zip(inputs_a, inputs_b))
    assert any(not torch.equal(state_a[k], state_c[k]) for k in state_a if state_a[k].is_floating_point())
    assert not torch.equal(inputs_a[0], inputs_c[0])


def test_real_sizes_are_the_real_architectures():
    for name in ("resnet50", "inception_v3"):
        _needs(name)
    assert zoo.build("resnet50", size="real", batch=1)[1][0].shape == (1, 3, 224, 224)
    assert zoo.build("inception_v3", size="real", batch=1)[1][0].shape == (1, 3, 299, 299)
    _needs("bert_base")
    model, (ids, mask) = zoo.build("bert_base", size="real", batch=2)
    assert (model.config.hidden_size, model.config.num_hidden_layers) == (768, 12)
    assert ids.shape == mask.shape == (2, 128) and int(mask.sum()) == 128 + 96  # the second sentence is padded
    _needs("bart_base")
    model, inputs = zoo.build("bart_base", size="real", batch=1)
    assert (model.config.d_model, model.config.encoder_layers) == (768, 6)  # bart-base, not BartConfig()'s large
    assert [tuple(x.shape) for x in inputs] == [(1, 128), (1, 128), (1, 64)]


def test_decoders_are_built_without_a_cache():
    for name in ("gpt2", "llama_small"):
        _needs(name)
        model, _ = zoo.build(name)
        assert model.config.use_cache is False


def test_cli_plans_a_zoo_model_and_names_close_ones_for_a_typo(capsys):
    _needs("mobilenet_v3_small")
    assert main(["plan", "zoo:mobilenet_v3_small", "--no-color"]) == 0
    out = capsys.readouterr().out
    assert "Precision plan" in out and "features.0.0" in out
    assert main(["plan", "zoo:mobilenet_v3_smal"]) == 2
    assert "did you mean 'mobilenet_v3_small'" in capsys.readouterr().err
    assert main(["plan", "zoo:mobilenet_v3_small:huge"]) == 2
    assert "size must be one of small, real" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["gpt2", "llama_small"])
def test_a_decoder_built_with_its_cache_captures_or_names_use_cache_false(name):
    """Decoders load with ``use_cache=True``; torch.export cannot return their cache: the hint names the fix."""
    _needs(name)
    model, inputs = zoo.build(name)
    model.config.use_cache = True
    try:
        Explorer(model, inputs)
    except CaptureError as err:
        assert "use_cache=False" in str(err)


# -- every zoo model through every step ---------------------------------------------------------------------------
@functools.cache
def _record(name: str):
    """One model's run, shared by its own test and the aggregate one: one timed and one profiled run, no
    warm-up (FP16 convolutions are slow on a CPU); text models at batch 2, so that one sentence is padded."""
    batch = 2 if zoo.entry(name).source == "transformers" else 1
    return runner.run_model(name, "small", batch=batch, profile_runs=1, warmup=0)


@pytest.mark.slow
@pytest.mark.parametrize("name", zoo.names())
def test_zoo_model_through_every_step(name):
    _needs(name)
    record = _record(name)
    assert [s.step for s in record.steps] == list(runner.STEPS)
    failures = [f"{s.step}: {s.error_type}: {s.message}" for s in record.steps if s.outcome == "failure"]
    assert not failures, f"{name}: raw exceptions escaped the public API: {failures}"
    for step in record.steps:
        if step.outcome == "error":
            assert FIX_WORDS.search(step.message), f"{name} {step.step}: the message names no fix: {step.message}"
    if record.complete:
        assert record.latency_ms is not None and record.latency_ms > 0
        assert record.rel_l2_error is not None
        if not record.rel_l2_error < 0.5:  # FP16 broke the output (random-init MobileNets underflow): say why
            assert any(re.search("underflow|overflow", n, re.IGNORECASE) for n in record.accuracy_notes), (
                f"{name}: FP16 rel L2 {record.rel_l2_error} and no note on underflow or overflow: "
                f"{record.accuracy_notes}")


@pytest.mark.slow
def test_nine_in_ten_zoo_models_complete_every_step():
    names = zoo.names(available=True)
    if not names:
        pytest.skip(f"no zoo library imports here: {zoo.available(zoo.names()[0])[1]}")
    records = [_record(n) for n in names]
    incomplete = {r.name: [f"{s.step}: {s.error_type}" for s in r.steps if s.outcome in ("error", "failure")]
                  for r in records if not r.complete}
    assert len(records) - len(incomplete) >= 0.9 * len(records), f"incomplete: {incomplete}"
    table = runner.markdown_table(records)  # the page benchmarks/zoo.py writes to docs/results
    assert f"{len(records) - len(incomplete)} of {len(records)}" in table
    assert all(f"| {r.name} | {r.source} |" in table for r in records)
