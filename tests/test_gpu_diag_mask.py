"""The padded-mask diagnosis (``benchmarks/run.py diag-mask``), run as its CPU dry run: each variant of a Hugging Face
model compiles and measures, and an error is placed in the sample and positions where it is."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def _module():
    if str(ROOT / "benchmarks") not in sys.path:  # its _common, as benchmarks/run.py finds it
        sys.path.insert(0, str(ROOT / "benchmarks"))
    spec = importlib.util.spec_from_file_location("gpu_diag_mask", ROOT / "benchmarks" / "gpu_diag_mask.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_an_error_in_the_padded_positions_is_reported_there_only():
    split_errors = _module().split_errors
    ref = torch.randn(2, 16, 8)
    out = ref.clone()
    out[1, 12:] += 1.0  # the zoo pads the last sample over its last quarter
    errors = split_errors((out,), (ref,), batch=2, seq=16)
    assert errors["sample 0"] == 0 and errors["last: valid"] == 0
    assert errors["sample 1"] > 0 and errors["last: padded"] > errors["sample 1"] > 0 and errors["all"] > 0


@pytest.mark.slow
def test_the_dry_run_measures_every_variant(tmp_path):
    pytest.importorskip("transformers", reason="the diagnosis builds Hugging Face models (pip install transformers)")
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "diag-mask", "--backend", "torch", "--device", "cpu",
         "--size", "small", "--only", "distilbert_base", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = json.loads((tmp_path / "diag_mask.json").read_text())["rows"]
    assert [r["variant"] for r in rows] == ["padded", "padded, attn_bias_is_causal=True", "all-ones mask",
                                           "padded, decomposed"]
    for row in rows:
        assert "error" not in row, row.get("trace")
        assert row["errors"]["all"] < 1e-6 and "last: padded" in row["errors"]  # the torch backend runs eager
        assert row["attention_timed"] == "2/2"
    assert "| distilbert_base | all-ones mask |" in (tmp_path / "diag_mask.md").read_text()
