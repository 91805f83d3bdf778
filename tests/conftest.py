"""Shared fixtures: the reference models and small test models. The recorded data is under tests/data (_data.py)."""

from __future__ import annotations

import os
import tempfile
from collections import Counter

import pytest
import torch

from mixprec_explorer import Explorer
from mixprec_explorer.examples import reference_autocast_model, reference_explicit_model

# Under pytest-xdist (make test runs a process per core) each process takes its share of the cores for torch's
# own threads, rather than every process one thread per core.
if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))))


# torch.compile's kernel cache, one per test process and run: a cache shared across runs on one machine keeps a
# kernel library cut short by an interrupted run ("file too short"), and every later compile of that kernel fails.
_INDUCTOR_CACHE = tempfile.TemporaryDirectory(prefix="mixprec_inductor_")
os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", _INDUCTOR_CACHE.name)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """In pytest-xdist's processes (make test hands out whole files, in this order): the files with the most tests
    marked ``slow`` first, so that the longest starts at once instead of last; tests keep their order in a file."""
    if not hasattr(config, "workerinput"):
        return
    slow = Counter(item.path for item in items if item.get_closest_marker("slow"))
    first_seen = {path: i for i, path in enumerate(dict.fromkeys(item.path for item in items))}
    items.sort(key=lambda item: (-slow[item.path], first_seen[item.path]))


@pytest.fixture
def explicit_ex() -> Explorer:
    return Explorer(*reference_explicit_model())


@pytest.fixture
def autocast_ex() -> Explorer:
    return Explorer(*reference_autocast_model())


@pytest.fixture
def fp16() -> torch.dtype:
    return torch.float16
