"""Wall-clock timing for benchmarks: warm-up, then interleaved repeats, then medians.

Interleaving (one run of every candidate per round, the order rotating each round) spreads
whatever else the machine is doing over all candidates alike, so ratios measured in one run
stay fair on a shared machine; the median discards the rounds a burst of other work hit.
"""

from __future__ import annotations

import gc
import statistics
import time
from dataclasses import dataclass
from typing import Callable, Sequence

__all__ = ["Timing", "time_interleaved"]


@dataclass(frozen=True)
class Timing:
    """Seconds per call of one candidate: every repeat, and their median and spread."""

    name: str
    seconds: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def spread(self) -> float:
        """(max - min) / median of the repeats: how noisy the machine was."""
        return (max(self.seconds) - min(self.seconds)) / self.median if self.median else 0.0


def time_interleaved(candidates: Sequence[tuple[str, Callable[[], object]]], *, repeats: int,
                     warmup: int = 1,
                     progress: Callable[[str], None] | None = None) -> dict[str, Timing]:
    """Time each zero-argument callable ``repeats`` times, interleaved, after ``warmup`` calls.

    Returns {name: Timing}. The cyclic garbage collector is paused during the timed rounds, so
    that no candidate pays for a collection another one triggered (tensors are freed by
    reference counting regardless).
    """
    if repeats < 1 or warmup < 0:
        raise ValueError(f"need repeats >= 1 and warmup >= 0, got {repeats}, {warmup}")
    names = [n for n, _ in candidates]
    if len(set(names)) != len(names):
        raise ValueError(f"candidate names must be unique: {names}")
    for name, fn in candidates:
        for _ in range(warmup):
            fn()
        if progress:
            progress(f"warmed up {name}")
    times: dict[str, list[float]] = {n: [] for n in names}
    k = len(candidates)
    enabled = gc.isenabled()
    gc.disable()
    try:
        for r in range(repeats):
            for i in range(k):
                name, fn = candidates[(i + r) % k]
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
            if progress:
                progress(f"timing round {r + 1}/{repeats}")
    finally:
        if enabled:
            gc.enable()
    return {n: Timing(n, tuple(times[n])) for n in names}
