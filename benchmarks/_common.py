"""What the benchmark scripts share: a markdown table of result rows, and the machine they ran on."""

from __future__ import annotations

import platform
from collections.abc import Mapping, Sequence
from typing import Any

import torch


def markdown_table(rows: Sequence[Mapping[str, Any]], header: Sequence[str]) -> list[str]:
    """The rows as markdown lines, floats to 3 significant digits."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        lines.append("| " + " | ".join(f"{row[h]:.3g}" if isinstance(row[h], float) else str(row[h])
                                       for h in header) + " |")
    return lines


def machine() -> str:
    """Processor, torch threads, Python and torch versions, in one line."""
    return (f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
            f"Python {platform.python_version()}, torch {torch.__version__}")
