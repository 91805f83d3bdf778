"""The ../shared folder (recorded TensorRT samples, the reference text) and the rule for tests that need it:
skipped, with the path, where it is absent; with ``CI=true`` an absent path fails the test loudly instead."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
SAMPLES = SHARED / "trt-samples"
RTX = SAMPLES / "trt-rtx-h200"
REFERENCE = SHARED / "reference" / "torch-tensorrt-mixed-precision.txt"
CI = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def needs_shared(path: Path) -> pytest.MarkDecorator:
    """Mark a test (or module, as ``pytestmark``) that reads ``path`` under ../shared (see conftest.py)."""
    return pytest.mark.shared(path=str(path))


def absent_message(path: Path) -> str:
    return f"{path} is absent: the recorded TensorRT samples and the reference live in ../shared ({SHARED})"
