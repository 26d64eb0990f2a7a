"""Softmax safety: how far logits may go before softmax in a format overflows or underflows.

The model of computation: every operation is correctly rounded into the format (as a format's
own arithmetic would be); the sum is accumulated left to right in the format.

* naive softmax  p_i = exp(z_i) / sum_j exp(z_j): it overflows when exp or the running sum rounds
  past the format's max. The worst case for n classes is every logit at the largest value L, so
  ``naive_max_logit`` is the largest L for which n copies of exp(L) still sum to a finite value
  (NaN where no value of the format is safe, e.g. uint8 with n = 256: n ones already overflow).
* max-subtracted softmax  p_i = exp(z_i - m) / sum_j exp(z_j - m): it never overflows (every
  exp(.) <= 1), but a logit far below the max gives exactly 0. ``stable_zero_spread`` is the
  spread m - z_i past which exp(z_i - m) rounds to 0 (= -min_arg of `exp_bounds`), and
  ``stable_prob_zero_spread`` the (smaller or equal) spread past which the probability itself
  rounds to 0 in the worst case where the sum is n (all other logits at the max); NaN where
  even a spread of 0 gives probability 0 (integer formats, where 1/n rounds to 0) or
  where the sum of n ones itself overflows the format.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from typing import Any

from numfmt.exact import _floor_log2, next_down, next_up, quantum, round_exact
from numfmt.expbounds import _log_fraction, _smallest_above as _smallest_arg_above
from numfmt.expbounds import exp_bounds, exp_rounded
from numfmt.format import Format
from numfmt.registry import get


@dataclass(frozen=True)
class SoftmaxSafety:
    """Softmax limits for ``n`` classes in ``format`` (all values exact format values)."""

    format: Format
    n: int
    naive_max_logit: float
    stable_zero_spread: float
    stable_prob_zero_spread: float


def _sum_in_format(value: Fraction, n: int, fmt: Format) -> Fraction | None:
    """n copies of ``value`` (>= 0) summed left to right, each step rounded; None on overflow.

    Equal to the step-by-step loop (the tests compare them), but fast for large n: the steps
    that stay inside one binade all add the same rounded increment and are taken together, and
    a sum that rounding no longer moves stays where it is for every remaining step."""
    s = Fraction(0)
    left = n
    while left:
        if s and value:
            # Inside s's binade (grid spacing q) s + value rounds to s + k*q with k the nearest
            # integer to value/q, the same k at every step unless value/q is a tie (then the
            # even neighbour depends on s: step one at a time). Take the steps that stay in the
            # binade and below the max together.
            q = quantum(fmt, s)
            r = value / q
            if r.denominator != 2:
                k = round(r)
                if k == 0:
                    return s            # value is under half a spacing: s never moves again
                top = fmt.max_exact if not fmt.is_float else \
                    min(fmt.max_exact, Fraction(2) ** (_floor_log2(s) + 1) - q)
                jump = min(left, int((top - s) // (k * q)))
                if jump > 0:
                    s += jump * k * q
                    left -= jump
                    continue
        nxt = round_exact(s + value, fmt)
        if nxt > fmt.max_exact:
            return None
        if nxt == s:                    # a fixed point: later steps change nothing
            return s
        s, left = nxt, left - 1
    return s


def _naive_ok(logit: Fraction, n: int, fmt: Format) -> bool:
    e = exp_rounded(logit, fmt)
    if not e <= fmt.max:  # inf or NaN, or a saturated (clamped) result
        return False
    if e == fmt.max and not fmt.has_inf and exp_bounds(fmt).max_arg < float(logit):
        return False
    return _sum_in_format(Fraction(e), n, fmt) is not None


def _walk(start: Fraction, ok, fmt: Format) -> Fraction:
    """Largest format value x near ``start`` with ok(x), for a predicate true below a cut."""
    x = start
    while not ok(x):
        d = next_down(x, fmt)
        if d is None:
            return x
        x = d
    while True:
        u = next_up(x, fmt)
        if u is None or not ok(u):
            return x
        x = u


@lru_cache(maxsize=None)
def _softmax_safety(fmt: Format, n: int) -> SoftmaxSafety:
    b = exp_bounds(fmt)
    guess = min(Fraction(b.max_arg), _log_fraction(b.overflow_limit / n))
    start = max(round_exact(guess, fmt, "floor"), fmt.lowest_exact)   # a value of the format
    naive = _walk(start, lambda x: _naive_ok(x, n, fmt), fmt)
    # No logit at all is safe (e.g. uint8 with n = 256: n ones already overflow): NaN.
    naive_max = float(naive) if _naive_ok(naive, n, fmt) else float("nan")

    total = _sum_in_format(Fraction(1), n, fmt)  # the sum when every logit equals the max
    if total is None:  # even the max-subtracted sum of n ones overflows the format
        return SoftmaxSafety(format=fmt, n=n, naive_max_logit=naive_max,
                             stable_zero_spread=0.0 - b.min_arg,  # 0.0 - 0.0 is 0.0; -(0.0) is -0.0
                             stable_prob_zero_spread=float("nan"))

    # The smallest exp result g whose probability g/total rounds to nonzero; exp(d) rounds to
    # at least g exactly when exp(d) passes the midpoint below g.
    g = round_exact(total * fmt.smallest_subnormal_exact / 2, fmt, "ceil")
    while round_exact(g / total, fmt) == 0:
        g = next_up(g, fmt)
    below = next_down(g, fmt)
    mid = (g + below) / 2
    d = _smallest_arg_above(fmt, mid)
    # d > 0 means even a spread of 0 gives a zero probability (integers: 1 // n == 0).
    prob_spread = float(-d) if d <= 0 else float("nan")
    return SoftmaxSafety(format=fmt, n=n, naive_max_logit=naive_max,
                         stable_zero_spread=0.0 - b.min_arg, stable_prob_zero_spread=prob_spread)


def softmax_safety(fmt: Any, n: int = 10) -> SoftmaxSafety:
    """Softmax limits for ``n`` classes in ``fmt``; see `SoftmaxSafety`. Exact, cached."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n (the number of classes) must be a positive int, not {n!r}")
    return _softmax_safety(get(fmt), n)
