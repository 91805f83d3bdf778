"""End-to-end timing shared by every backend: repeated synchronised runs, summarised as median and spread."""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch

from ..errors import OptionError
from ..records import EndToEnd


def device_synchronizer(device: str | torch.device) -> Callable[[], None]:
    """A call that waits for ``device``'s queued work (CUDA); a no-op on the CPU."""
    if torch.device(device).type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


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


def time_interleaved(fns: Sequence[Callable[[], Any]], runs: int, warmup: int = 0,
                     synchronize: Callable[[], None] | None = None, *, block: int = 4,
                     seed: int = 0) -> list[list[float]]:
    """Milliseconds of ``runs`` calls of each of ``fns``, taken in turns of short blocks, each turn in a new order.

    Turns spread clock, thermal and neighbour noise over all plans alike, where timing one plan after another lets
    a slow minute land on one plan only. Within a turn each plan runs once untimed, then ``block`` timed runs in a
    row: measured on an H200, a launch-bound plan (compiled PyTorch's encoder) ran 2.86 ms in a row but 3.45 ms
    when every run followed another plan's, and 4.78 ms after a 50 ms pause; its blocks gave 2.95 ms. A new order
    each turn (``seed``) gives no plan a fixed predecessor. ``warmup`` untimed turns (one run each) come first.
    """
    order = random.Random(seed)
    block = max(1, int(block))
    times: list[list[float]] = [[] for _ in fns]
    indices = list(range(len(fns)))
    for _ in range(max(0, warmup)):
        order.shuffle(indices)
        for index in indices:
            time_runs(fns[index], 1, synchronize)
    runs = max(1, runs)
    while any(len(t) < runs for t in times):
        order.shuffle(indices)
        for index in indices:
            time_runs(fns[index], 1, synchronize)  # the first run of a block finds the plan cold: untimed
            times[index] += time_runs(fns[index], min(block, runs - len(times[index])), synchronize)
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
        raise OptionError("no timings to summarize")
    ordered = sorted(float(t) for t in times_ms)
    return EndToEnd(median_ms=statistics.median(ordered), p10_ms=_quantile(ordered, 0.1),
                    p90_ms=_quantile(ordered, 0.9), runs=len(ordered))
