"""End-to-end timing shared by every backend: repeated synchronised runs, summarised as median and spread."""

from __future__ import annotations

import math
import random
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
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


#: A profile whose runs would take longer than this (seconds) times adaptively: fewer runs on slow plans.
SLOW_PROFILE_S = 10.0
#: Adaptive timing stops once one more run moves the median by less than this share.
STABLE_WITHIN = 0.01


def median_stable(times: Sequence[float], tolerance: float = STABLE_WITHIN, min_runs: int = 3) -> bool:
    """True once there are ``min_runs`` times and the last one moved the median by at most ``tolerance`` of it.

    >>> median_stable([10.0, 10.4, 10.1]), median_stable([10.0, 14.0, 11.0])
    (True, False)
    """
    if len(times) < max(2, min_runs):
        return False
    now, before = statistics.median(times), statistics.median(times[:-1])
    return abs(now - before) <= tolerance * now


def time_until_stable(fn: Callable[[], Any], runs: int, synchronize: Callable[[], None] | None = None, *,
                      budget_s: float = SLOW_PROFILE_S, tolerance: float = STABLE_WITHIN, min_runs: int = 3,
                      each: Callable[[int], None] | None = None) -> list[float]:
    """Milliseconds of at most ``runs`` calls, fewer once the median is stable (:func:`median_stable`) or
    ``budget_s`` seconds are spent (one call at least); ``each(k)`` after the k-th call."""
    times: list[float] = []
    spent = 0.0
    while len(times) < max(1, runs):
        times += time_runs(fn, 1, synchronize)
        spent += times[-1] / 1000.0
        if each is not None:
            each(len(times))
        if median_stable(times, tolerance, min_runs) or spent >= budget_s:
            break
    return times


@dataclass(frozen=True)
class ProfileRuns:
    """How a profile spends its runs, decided from how long a first run took (:func:`adaptive_plan`)."""

    first_s: float  #: the first run's wall time, seconds
    adaptive: bool  #: True: timed runs stop once the median is stable, within ``budget_s``
    warmup: int  #: further untimed runs
    profile_runs: int  #: profiled runs (per-node latency)
    budget_s: float  #: seconds the timed runs may take at most (adaptive only)
    expected_s: float  #: what the profile should take from now, seconds

    @property
    def announce(self) -> str:
        """Said before the runs: what one run takes and how long the profile will take."""
        if not self.adaptive:
            return f"one run takes {self.first_s:.2g} s: about {self.expected_s:.2g} s of runs"
        return (f"one run takes {self.first_s:.2g} s (slow: timing until the median is stable, at most "
                f"{self.budget_s:.0f} s, then {self.profile_runs} profiled run{'s' * (self.profile_runs > 1)}): "
                f"about {self.expected_s:.0f} s")

    def note(self, timed: int, asked: int) -> str:
        """The profile's note on an adaptive timing."""
        return (f"slow plan (one run {self.first_s:.3g} s): {timed} timed run{'s' * (timed > 1)} of the {asked} asked "
                f"for, stopped once the median was stable within {STABLE_WITHIN:.0%} or after {self.budget_s:.0f} s; "
                f"{self.profile_runs} profiled, {self.warmup + 1} warm-up")


def adaptive_plan(first_s: float, runs: int, warmup: int, profile_runs: int, *,
                  budget_s: float = SLOW_PROFILE_S) -> ProfileRuns:
    """The runs of a profile whose first (warm-up) run took ``first_s``: as asked where they fit in ``budget_s``,
    else adaptive: no more warm-up, timing until the median is stable within ``budget_s``, and as many profiled
    runs as fit in half of it (one at least).

    >>> adaptive_plan(0.002, 20, 5, 10).adaptive, adaptive_plan(3.0, 20, 5, 10).profile_runs
    (False, 1)
    """
    asked = first_s * (max(0, warmup - 1) + runs + 2 * profile_runs)
    if asked <= budget_s:
        return ProfileRuns(first_s, False, max(0, warmup - 1), profile_runs, budget_s, asked)
    profiled = max(1, min(profile_runs, int(budget_s / 2 / max(first_s, 1e-9))))
    timed = min(runs, max(3, math.ceil(budget_s / max(first_s, 1e-9))))
    return ProfileRuns(first_s, True, 0, profiled, budget_s, first_s * (min(timed, runs) + profiled))


def turns_within(per_run_ms: Sequence[float | None], runs: int = 30, warmup: int = 5, *,
                 budget_s: float = SLOW_PROFILE_S / 2) -> tuple[int, int]:
    """(runs, warmup) for :func:`time_interleaved` over plans of these per-run times (ms; None: unknown) so that
    the timing fits in ``budget_s``: as asked where it fits, else fewer runs (one at least) and no warm-up turns.

    >>> turns_within([1.0, 2.0]), turns_within([900.0, 2200.0])
    ((30, 5), (1, 0))
    """
    known = [float(t) for t in per_run_ms if t is not None and t > 0]
    turn_s = sum(known) / 1000.0
    if not known or turn_s * (runs + warmup + math.ceil(runs / 4)) <= budget_s:
        return runs, warmup
    # each block of four timed runs starts with an untimed one (time_interleaved), hence 1.25 runs per timed run
    return max(1, min(runs, int(budget_s / (turn_s * 1.25)) - 1)), 0


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
