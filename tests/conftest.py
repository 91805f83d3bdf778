"""Shared fixtures: the reference models, small test models, and the ../shared folder."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mixprec_explorer import Explorer
from mixprec_explorer.examples import reference_autocast_model, reference_explicit_model

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"../shared is absent ({SHARED}): the recorded TensorRT samples and reference live there")
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
