"""Shared fixtures: the reference models, small test models, and the ../shared folder."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mixprec_explorer import Explorer
from mixprec_explorer.examples import reference_autocast_model, reference_explicit_model

from _shared import CI, SHARED, absent_message


def pytest_sessionstart(session: pytest.Session) -> None:
    """With CI=true the suite needs ../shared: its absence stops the run at once, naming the path."""
    if CI and not SHARED.is_dir():
        raise pytest.UsageError(f"CI=true but {absent_message(SHARED)}; CI lays a copy of shared/ beside the clone")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """``@needs_shared(path)``: skip where the path is absent, fail (loudly, with the path) under CI=true."""
    for mark in item.iter_markers("shared"):
        path = Path(mark.kwargs["path"])
        if not path.exists():
            if CI:
                pytest.fail(f"CI=true: {absent_message(path)}", pytrace=False)
            pytest.skip(absent_message(path))


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        if CI:
            pytest.fail(f"CI=true: {absent_message(SHARED)}", pytrace=False)
        pytest.skip(absent_message(SHARED))
    return SHARED


@pytest.fixture
def explicit_ex() -> Explorer:
    return Explorer(*reference_explicit_model())


@pytest.fixture
def autocast_ex() -> Explorer:
    return Explorer(*reference_autocast_model())


@pytest.fixture
def fp16() -> torch.dtype:
    return torch.float16
