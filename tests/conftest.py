"""Shared fixtures: the reference models and small test models. The recorded data is under tests/data (_data.py)."""

from __future__ import annotations

import pytest
import torch

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
