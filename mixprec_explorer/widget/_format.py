"""Small text helpers the app's panels share: HTML escaping and number formatting."""

from __future__ import annotations

import html
from typing import Any

__all__ = ["esc", "num", "opt"]


def esc(value: Any) -> str:
    """``value`` as text, escaped for HTML."""
    return html.escape(str(value))


def num(value: float) -> str:
    """Three significant digits, or "inf"."""
    return "inf" if value == float("inf") else f"{value:.3g}"


def opt(value: Any, spec: str = ".3g") -> str:
    """An optional number: "-" for None, else :func:`num` (or ``format(value, spec)`` for another spec)."""
    return "-" if value is None else num(value) if spec == ".3g" else format(value, spec)
