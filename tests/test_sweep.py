"""Sweeps: the same plans measured serially, in local worker processes and on a Ray cluster agree."""

from __future__ import annotations

import os

import pytest
import torch

from mixprec_explorer import Explorer, Settings
from mixprec_explorer.examples import layer_stack
from mixprec_explorer.sweep import run_sweep

pytestmark = pytest.mark.slow

BASE = Settings(enable_autocast=True, autocast_low_precision_type=torch.bfloat16)
PLANS = [BASE, BASE.replace(autocast_excluded_nodes=frozenset({".*"}))]  # all low, all FP32


@pytest.fixture(scope="module")
def ex() -> Explorer:
    return Explorer(*layer_stack(12))


def check(results):
    assert len(results) == 2 and all(r["backend"] == "torch" for r in results)
    assert results[0]["rel_l2_error"] > 0 and results[1]["rel_l2_error"] == 0.0
    assert all(r["latency_ms"] > 0 for r in results)


def test_serial_and_local_processes_agree(ex):
    serial = run_sweep(ex, PLANS, backend="torch", executor="serial", runs=3, progress=False)
    check(serial)
    local = run_sweep(ex, PLANS, backend="torch", executor="local", runs=3, progress=False)
    check(local)
    assert all(r["pid"] != os.getpid() for r in local), "local executor measures in worker processes"
    assert [r["rel_l2_error"] for r in local] == [r["rel_l2_error"] for r in serial]


def test_ray_executor_on_a_local_cpu_cluster(ex):
    """Ray 2.60 dropped ``local_mode``; ``ray.init()`` starts a real one-node cluster on this CPU instead."""
    ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'mixprec-explorer[ray]')")
    try:
        results = run_sweep(ex, PLANS, backend="torch", executor="ray", runs=3, progress=False)
    finally:
        ray.shutdown()
    check(results)
    assert all(r["pid"] != os.getpid() for r in results), "Ray tasks run in Ray worker processes"


def test_unknown_executor_is_named(ex):
    with pytest.raises(ValueError, match="executor must be"):
        run_sweep(ex, PLANS, executor="dask", progress=False)
