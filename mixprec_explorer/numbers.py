"""One way to write numbers for people: errors and ratios to three significant digits, infinities as words.

Every figure, hover, report and panel goes through these, so an overflowed error reads ``inf`` everywhere
(never ``inf`` in one place and ``1e+308`` or a crash in another).
"""

from __future__ import annotations

import math

__all__ = ["format_number", "format_si"]


def format_number(value: float | None, digits: int = 3, missing: str = "-") -> str:
    """``value`` to ``digits`` significant digits; "inf", "-inf" and "nan" as words; ``missing`` for None.

    >>> format_number(0.00123456), format_number(float("inf")), format_number(None), format_number(12.5, 4)
    ('0.00123', 'inf', '-', '12.5')
    """
    if value is None:
        return missing
    value = float(value)
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:.{digits}g}"


def format_si(value: float) -> str:
    """A count with an SI prefix: 1234567 -> '1.23 M' (FLOPs, bytes, parameters).

    >>> format_si(1234567), format_si(512)
    ('1.23 M', '512')
    """
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            return f"{format_number(value / scale)} {unit}"
    return format_number(value, digits=12)
