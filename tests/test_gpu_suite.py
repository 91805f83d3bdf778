"""The suite benchmark's CPU-sized run (``benchmarks/run.py suite --small``): every model, plan and mode produces a
row with latency and accuracy."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_suite_small_run(tmp_path):
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "suite", "--small", "--models", "stack,encoder",
         "--runs", "3", "--warmup", "1", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    doc = json.loads((tmp_path / "gpu_suite.json").read_text())
    rows = doc["rows"]
    configs = {"FP32", "all FP16", "all BF16", "FP16, exclusions", "FP16 + FP32 acc"}
    for model in ("stack", "encoder"):
        for mode in ("eager", "compiled"):
            mine = [r for r in rows if r["model"] == model and r["mode"] == mode]
            assert {r["config"] for r in mine} == configs, (model, mode)
            assert all("error" not in r and r["latency_ms"] > 0 for r in mine)
            fp32 = next(r for r in mine if r["config"] == "FP32")
            assert fp32["speedup"] == 1.0 and fp32["rel_l2"] < 1e-5
            assert all(0 < r["rel_l2"] < 0.1 for r in mine if r["config"] != "FP32")
    assert all(r["roofline_share_time_weighted"] is not None for r in rows if r["mode"] == "eager")
    assert "| stack | torch | eager | FP32 |" in (tmp_path / "gpu_suite.md").read_text()
    assert list(tmp_path.glob("nodes_*.csv")), "per-node roofline CSVs are written"
