"""End-to-end timing shared by every backend: repeated synchronised runs, summarised as median and spread."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

from ..records import EndToEnd


def time_runs(fn: Callable[[], Any], runs: int, synchronize: Callable[[], None] | None = None) -> list[float]:
    """Wall-clock milliseconds of ``runs`` calls, each bracketed by ``synchronize`` (device work included)."""
    sync = synchronize or (lambda: None)
    times = []
    for _ in range(runs):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - start) * 1000.0)
    return times


def _quantile(ordered: Sequence[float], q: float) -> float:
    """Linear-interpolated quantile of sorted values (numpy's default method)."""
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summarize_ms(times_ms: Sequence[float]) -> EndToEnd:
    """Median, 10th and 90th percentile of per-run latencies; ValueError when there are none.

    >>> summarize_ms([float(ms) for ms in range(11)])
    EndToEnd(median_ms=5.0, p10_ms=1.0, p90_ms=9.0, runs=11)
    """
    if not times_ms:
        raise ValueError("no timings to summarize")
    ordered = sorted(float(t) for t in times_ms)
    return EndToEnd(median_ms=statistics.median(ordered), p10_ms=_quantile(ordered, 0.1),
                    p90_ms=_quantile(ordered, 0.9), runs=len(ordered))
