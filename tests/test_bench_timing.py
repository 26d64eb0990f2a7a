"""benchmarks._timing, the one timer: interleaving, medians, percentiles, latencies."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from benchmarks._timing import Timing, best_seconds, latencies, time_interleaved, time_once


def test_interleaved_order_and_warmup() -> None:
    calls = []
    t = time_interleaved([("a", lambda: calls.append("a")), ("b", lambda: calls.append("b"))],
                         repeats=3, warmup=1)
    assert calls.count("a") == 4 and calls.count("b") == 4
    assert calls[2:] == ["a", "b", "b", "a", "a", "b"]  # interleaved, order rotating
    assert all(len(v.seconds) == 3 and v.median >= 0 and math.isfinite(v.spread)
               for v in t.values())
    with pytest.raises(ValueError, match="unique"):
        time_interleaved([("a", lambda: None), ("a", lambda: None)], repeats=1)
    with pytest.raises(ValueError, match="repeats >= 1"):
        time_interleaved([("a", lambda: None)], repeats=0)


def test_best_of_a_known_sleep() -> None:
    assert 0.004 <= best_seconds(lambda: time.sleep(0.005), repeats=3, warmup=0) < 0.5
    assert Timing("x", (3.0, 1.0, 2.0)).best == 1.0


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(0, 1e3, allow_nan=False), min_size=1, max_size=50),
       st.floats(0, 100))
def test_percentile_is_numpys_nearest_rank(samples: list, q: float) -> None:
    # numpy's 'inverted_cdf' is the nearest-rank definition: the smallest sample whose
    # empirical CDF reaches q.
    want = float(np.percentile(samples, q, method="inverted_cdf"))
    assert Timing("x", tuple(samples)).percentile(q) == want


def test_percentile_bounds() -> None:
    t = Timing("x", (3.0, 1.0, 2.0))
    assert t.percentile(0) == 1.0 and t.percentile(100) == 3.0 and t.median == 2.0
    with pytest.raises(ValueError):
        t.percentile(101)


def test_latencies_interleave_single_calls() -> None:
    calls = []
    t = latencies([("a", lambda: calls.append("a")), ("b", lambda: calls.append("b"))],
                  repeats=4, warmup=2)
    assert calls[:4] == ["a", "a", "b", "b"]  # warm-up per candidate
    assert calls[4:] == ["a", "b", "b", "a", "a", "b", "b", "a"]
    assert all(len(v.seconds) == 4 and min(v.seconds) >= 0 for v in t.values())
    slow = latencies([("sleep", lambda: time.sleep(0.002))], repeats=3, warmup=0)["sleep"]
    assert slow.percentile(50) >= 0.0015


def test_time_once_returns_the_result() -> None:
    value, seconds = time_once(lambda: 42)
    assert value == 42 and 0 <= seconds < 1


def test_settle_calls_the_same_candidate_untimed_right_before_each_timed_call():
    calls = []
    time_interleaved([("a", lambda: calls.append("a")), ("b", lambda: calls.append("b"))],
                     repeats=2, warmup=0, settle=1)
    assert calls == ["a", "a", "b", "b", "b", "b", "a", "a"]
    with pytest.raises(ValueError):
        time_interleaved([("a", lambda: None)], repeats=1, settle=-1)
