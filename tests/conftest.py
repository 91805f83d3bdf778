"""Shared fixtures: the reference models and small test models. The recorded data is under tests/data (_data.py)."""

from __future__ import annotations

import os

import pytest
import torch

# Under pytest-xdist (make test runs a process per core) each process takes its share of the cores for torch's
# own threads, rather than every process one thread per core.
if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))))

from mixprec_explorer import Explorer
from mixprec_explorer.examples import reference_autocast_model, reference_explicit_model


@pytest.fixture
def explicit_ex() -> Explorer:
    return Explorer(*reference_explicit_model())


@pytest.fixture
def autocast_ex() -> Explorer:
    return Explorer(*reference_autocast_model())


@pytest.fixture
def fp16() -> torch.dtype:
    return torch.float16
