"""The one timer of the benchmarks: warm-up, interleaved repeats, medians and percentiles.

Interleaving (one run of every candidate per round, the order rotating each round) spreads
whatever else the machine is doing over all candidates alike, so ratios measured in one run
stay fair on a shared machine; the median discards the rounds a burst of other work hit.
Every benchmark module times through `time_interleaved` (throughput, ratios), `latencies`
(many single calls, percentiles), `best_seconds` (a machine limit: the fastest repeat) or
`time_once` (one long run that cannot be repeated cheaply).
"""

from __future__ import annotations

import contextlib
import gc
import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

__all__ = ["Timing", "time_interleaved", "best_seconds", "latencies",
           "time_once", "gc_paused"]


@dataclass(frozen=True)
class Timing:
    """Seconds per call of one candidate: every repeat, in the order they were taken.

    Attributes
    ----------
    name : str
        The candidate's name.
    seconds : tuple of float
        Wall-clock seconds of each timed call (``time.perf_counter`` differences).
    """

    name: str
    seconds: tuple[float, ...]

    @property
    def median(self) -> float:
        """The median of `seconds`."""
        return statistics.median(self.seconds)

    @property
    def best(self) -> float:
        """The fastest repeat: what the machine can do when nothing else interferes."""
        return min(self.seconds)

    @property
    def spread(self) -> float:
        """(max - min) / median of the repeats: how noisy the machine was (0.0 if median is 0)."""
        return (max(self.seconds) - min(self.seconds)) / self.median if self.median else 0.0

    def percentile(self, q: float) -> float:
        """The ``q``-th percentile (0 <= q <= 100) of `seconds`, nearest rank.

        Nearest rank: the smallest sample with at least ``q`` percent of the samples at or
        below it (``q = 50`` of an even count is the lower middle sample, not their mean).
        """
        if not 0 <= q <= 100:
            raise ValueError(f"percentile must be in [0, 100], got {q}")
        s = sorted(self.seconds)
        rank = max(1, -(-len(s) * q // 100))  # ceil(n q / 100), at least the first sample
        return s[int(rank) - 1]


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector (tensors are still freed by reference counting), so
    that no timed call pays for a collection another one triggered."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _check_candidates(candidates: Sequence[tuple[str, Callable[[], object]]], repeats: int,
                      warmup: int) -> list[str]:
    if repeats < 1 or warmup < 0:
        raise ValueError(f"need repeats >= 1 and warmup >= 0, got {repeats}, {warmup}")
    names = [n for n, _ in candidates]
    if len(set(names)) != len(names):
        raise ValueError(f"candidate names must be unique: {names}")
    return names


def time_interleaved(candidates: Sequence[tuple[str, Callable[[], object]]], *, repeats: int,
                     warmup: int = 1, settle: int = 0,
                     progress: Callable[[str], None] | None = None) -> dict[str, Timing]:
    """Time each zero-argument callable ``repeats`` times, interleaved, after ``warmup`` calls.

    Parameters
    ----------
    candidates : sequence of (name, callable)
        Unique names; each callable is called with no arguments.
    repeats : int
        Timed calls per candidate (>= 1). Round ``r`` calls candidate ``(i + r) % k`` as its
        ``i``-th, so each candidate takes every position in turn.
    warmup : int
        Untimed calls per candidate before the first round (>= 0).
    settle : int
        Untimed calls of a candidate right before each of its timed calls (>= 0). Runtimes
        whose idle threads spin (OpenMP, ONNX Runtime) keep the cores busy for a while after
        a call; without settling, each timed call pays for the previous candidate's spinning
        threads rather than its own work.
    progress : callable, optional
        Called with a short message after each warm-up and each round.

    Returns
    -------
    dict
        ``{name: Timing}`` in the candidates' order.

    Raises
    ------
    ValueError
        For ``repeats < 1``, ``warmup < 0`` or repeated names.
    """
    names = _check_candidates(candidates, repeats, warmup)
    if settle < 0:
        raise ValueError(f"settle must be >= 0, not {settle}")
    for name, fn in candidates:
        for _ in range(warmup):
            fn()
        if progress:
            progress(f"warmed up {name}")
    times: dict[str, list[float]] = {n: [] for n in names}
    k = len(candidates)
    with gc_paused():
        for r in range(repeats):
            for i in range(k):
                name, fn = candidates[(i + r) % k]
                for _ in range(settle):
                    fn()
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
            if progress:
                progress(f"timing round {r + 1}/{repeats}")
    return {n: Timing(n, tuple(times[n])) for n in names}


def best_seconds(fn: Callable[[], object], *, repeats: int, warmup: int = 1) -> float:
    """The fastest of ``repeats`` calls of ``fn`` after ``warmup`` calls (for machine limits:
    on a shared machine the median also measures the other tenants)."""
    return time_interleaved([("fn", fn)], repeats=repeats, warmup=warmup)["fn"].best


def latencies(candidates: Sequence[tuple[str, Callable[[], object]]], *, repeats: int,
              warmup: int = 10) -> dict[str, Timing]:
    """Latency samples of many single calls, interleaved call by call, in nanosecond ticks.

    Like `time_interleaved`, but every candidate is called once per round (the rounds rotate
    the order) and each call is timed with ``time.perf_counter_ns``, so that sub-microsecond
    differences are not lost to float rounding; the samples are returned in seconds. Use
    `Timing.percentile` for p50/p99.

    Raises
    ------
    ValueError
        As `time_interleaved`.
    """
    names = _check_candidates(candidates, repeats, warmup)
    for _, fn in candidates:
        for _ in range(warmup):
            fn()
    ticks: dict[str, list[int]] = {n: [] for n in names}
    k = len(candidates)
    clock = time.perf_counter_ns
    with gc_paused():
        for r in range(repeats):
            for i in range(k):
                name, fn = candidates[(i + r) % k]
                t0 = clock()
                fn()
                ticks[name].append(clock() - t0)
    return {n: Timing(n, tuple(t * 1e-9 for t in ticks[n])) for n in names}


def time_once(fn: Callable[[], Any]) -> tuple[Any, float]:
    """``(fn(), seconds)``: one call, timed, for runs too long to repeat (a training run).

    No warm-up is done here: the caller warms up what its comparison needs.
    """
    t0 = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - t0
