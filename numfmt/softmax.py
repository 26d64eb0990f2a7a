"""Softmax safety: how far logits may go before a softmax in a format overflows or underflows.

The model of computation. Every exp is correctly rounded into the format; the sum of the n exps
is formed by one of three named accumulation models (`ACCUMULATIONS`), and the division is
correctly rounded into the format:

* ``"torch"`` (default): what ``torch.exp(z).sum()`` does in the dtype. torch accumulates the
  half types (fp16, bf16) in float32 and rounds the sum once to the format. The model is: the
  exact sum, rounded to the accumulator (float32), then rounded to the format. Formats torch has
  no kernels for (tf32, the FP8/FP6/FP4 formats) are modelled as if upcast the same way (float32
  accumulator). fp32 and fp64 are accumulated in their own precision, modelled as the exact sum
  rounded once; integer formats as the exact sum (torch sums integers in int64), then into the
  format. torch's own float32 summation is a cascade whose error is a few float32 ulps; the
  tests check by brute force (``torch.exp(z).sum()``, n up to 10**6) that it gives the same
  overflow decisions as this model.
* ``"sequential"``: left to right in the format, every partial sum rounded (a running sum that
  stagnates once the increments fall below half a spacing).
* ``"exact"``: the exact sum, rounded once into the format.

A sum "overflows" when its rounding (with unbounded exponent) lands beyond the format's max: inf
for IEEE formats, NaN or a clamped value for the others.

The two quantities:

* naive softmax p_i = exp(z_i) / sum_j exp(z_j). The worst case for n classes is every logit at
  the largest value L; ``naive_max_logit`` is the largest format value L for which exp(L) is
  finite (not clamped) and the sum of n copies of exp(L) does not overflow. NaN where no value
  is safe (uint8 with n = 256: n ones already overflow).
* max-subtracted softmax p_i = exp(z_i - m) / sum_j exp(z_j - m) never overflows, but a logit
  far below the max gets probability exactly 0. The worst case for one logit at spread d = m - z
  (a format value) is the other n - 1 logits at the max, so the sum is (n - 1) ones and
  exp(-d), added in that order (the small term last). ``stable_prob_zero_spread`` is the
  largest spread whose probability round(exp(-d) / sum) is nonzero; every larger spread gives
  0. NaN where even spread 0 gives 0 (integer formats, where 1/n rounds to 0) or where n ones
  overflow. ``stable_zero_spread`` is the spread past which exp(-d) itself is 0 (-min_arg of
  `exp_bounds`), whatever the sum. Both are NaN for formats without zero (E8M0), where no
  difference z - max exists.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from typing import Any, Literal

from numfmt.exact import floor_log2, last_true, next_up, quantum, round_exact
from numfmt.expbounds import exp_bounds, exp_rounded, log_rational
from numfmt.format import Format
from numfmt.registry import get

__all__ = ["Accumulation", "ACCUMULATIONS", "SoftmaxSafety", "softmax_safety",
           "accumulator_format", "check_accumulation", "sum_of_terms"]

Accumulation = Literal["torch", "sequential", "exact"]
ACCUMULATIONS: tuple[str, ...] = ("torch", "sequential", "exact")


def check_accumulation(accumulation: Any) -> str:
    """Check that ``accumulation`` names a model of `ACCUMULATIONS`.

    Parameters
    ----------
    accumulation : str

    Returns
    -------
    str
        ``accumulation`` itself.

    Raises
    ------
    ValueError
        For anything else, listing the models.
    """
    if not isinstance(accumulation, str) or accumulation not in ACCUMULATIONS:
        raise ValueError(f"accumulation must be one of {ACCUMULATIONS}, not {accumulation!r}")
    return accumulation


def accumulator_format(fmt: Any) -> Format | None:
    """The format the ``"torch"`` model accumulates ``fmt``'s sums in.

    Parameters
    ----------
    fmt : Format or anything `numfmt.get` accepts

    Returns
    -------
    Format or None
        fp32 for float formats whose values fp32 holds (fp16, bf16, tf32, FP8, FP6, FP4); the
        format itself for fp32 and wider; None (exact) for integer formats.
    """
    f = get(fmt)
    if not f.is_float:
        return None
    fp32 = get("fp32")
    narrower = (f.precision_bits <= fp32.precision_bits and f.max_exact <= fp32.max_exact
                and f.smallest_subnormal_exact >= fp32.smallest_subnormal_exact)
    return fp32 if narrower and f != fp32 else f


@dataclass(frozen=True)
class SoftmaxSafety:
    """Softmax limits for ``num_classes`` classes in ``format`` under ``accumulation``.

    Attributes
    ----------
    format : Format
    num_classes : int
    naive_max_logit : float or int
        Largest logit L (a format value) with which n logits at L sum without overflow.
    stable_zero_spread : float or int
        Spread past which exp(-spread) rounds to 0.
    stable_prob_zero_spread : float or int
        Largest spread whose probability is nonzero when the other n - 1 logits are at the max.
    accumulation : str
        The accumulation model (see `ACCUMULATIONS`).
    """

    format: Format
    num_classes: int
    naive_max_logit: float | int
    stable_zero_spread: float | int
    stable_prob_zero_spread: float | int
    accumulation: str = "torch"

    @property
    def n(self) -> int:
        """Deprecated alias of `num_classes`."""
        return self.num_classes


def _repeat_add(s: Fraction, value: Fraction, count: int, fmt: Format) -> Fraction | None:
    """``count`` copies of ``value`` (>= 0) added to ``s`` left to right, each step rounded to
    nearest even; None on overflow.

    Equal to the step-by-step loop (the tests compare them) in O(binades) steps: inside one
    binade (spacing q) every step adds the same k*q, k the nearest integer to value/q, so the
    steps that stay inside it are taken together. At a tie the even neighbour depends on the
    parity of s/q: after one step s/q is even and k is the even one from then on."""
    left = count
    while left:
        if s and value:
            q = quantum(fmt, s)
            r, pos = value / q, s / q          # pos: s's integer significand on this grid
            k = round(r)
            if r.denominator == 2 and (pos + k) % 2:
                k += 1 if k < r else -1        # the tie goes to the even neighbour
            if k == 0:
                return s                       # under half a spacing: s never moves again
            if r.denominator != 2 or k % 2 == 0:
                top = fmt.max_exact if not fmt.is_float else \
                    min(fmt.max_exact, Fraction(2) ** (floor_log2(s) + 1) - q)
                jump = min(left, int((top - s) // (k * q)))
                if jump > 0:
                    s += jump * k * q
                    left -= jump
                    continue
        nxt = round_exact(s + value, fmt)
        if nxt > fmt.max_exact:
            return None
        if nxt == s:                           # a fixed point: later steps change nothing
            return s
        s, left = nxt, left - 1
    return s


def sum_of_terms(terms: list[tuple[Fraction, int]], fmt: Any,
                 accumulation: Accumulation = "torch") -> Fraction | None:
    """The sum of nonnegative format values under an accumulation model, exactly.

    Parameters
    ----------
    terms : list of (Fraction, int)
        (value, count) pairs in summation order: ``count`` copies of ``value`` each.
    fmt : Format or anything `numfmt.get` accepts
    accumulation : {"torch", "sequential", "exact"}
        See the module docstring.

    Returns
    -------
    Fraction or None
        The rounded sum (a format value), or None when it overflows (rounds beyond the max, or
        past float32's max in the torch model's accumulator).
    """
    f = get(fmt)
    model = check_accumulation(accumulation)
    if model == "sequential":
        s: Fraction | None = Fraction(0)
        for value, count in terms:
            s = _repeat_add(s, Fraction(value), count, f)
            if s is None:
                return None
        return s
    total = sum((Fraction(v) * c for v, c in terms), Fraction(0))
    acc = accumulator_format(f) if model == "torch" else f
    if acc is not None and acc != f:
        total = round_exact(total, acc)
        if total > acc.max_exact:
            return None
    r = round_exact(total, f)
    return None if r > f.max_exact else r


def _naive_max_logit(fmt: Format, n: int, model: str) -> float | int:
    b = exp_bounds(fmt)

    def ok(logit: Fraction) -> bool:
        if logit > b.max_arg:          # exp itself overflows (or is clamped)
            return False
        e = Fraction(exp_rounded(logit, fmt))
        return sum_of_terms([(e, n)], fmt, model) is not None

    guess = min(Fraction(b.max_arg), log_rational(b.overflow_limit / n))
    cut = last_true(ok, fmt, start=guess)
    return float("nan") if cut is None else fmt.as_number(cut)


def _prob_zero_spread(fmt: Format, n: int, model: str) -> float | int:
    ones = sum_of_terms([(Fraction(1), n - 1)], fmt, model) if n > 1 else Fraction(0)
    if sum_of_terms([(Fraction(1), n)], fmt, model) is None or ones is None:
        return float("nan")            # even the max-subtracted sum of n ones overflows

    def prob_is_zero(arg: Fraction) -> bool:      # arg = -spread, a value of the format
        if arg > 0:
            return False
        e = Fraction(exp_rounded(arg, fmt))
        total = sum_of_terms([(Fraction(1), n - 1), (e, 1)], fmt, model)
        # total 0 (one class, exp(arg) 0) makes the probability 0/0: not a nonzero one
        return not total or round_exact(e / total, fmt) == 0

    guess = log_rational(max(ones, Fraction(1)) * fmt.smallest_subnormal_exact / 2)
    cut = last_true(prob_is_zero, fmt, start=guess)   # the largest argument giving p = 0
    if cut is None:                    # nonzero down to the lowest argument
        return fmt.as_number(-fmt.lowest_exact)
    if cut >= 0:                       # p = 0 even at spread 0
        return float("nan")
    return fmt.as_number(0 - next_up(cut, fmt))     # cut < 0, so a value lies above it


@lru_cache(maxsize=4096)
def _softmax_safety(fmt: Format, n: int, model: str) -> SoftmaxSafety:
    naive = _naive_max_logit(fmt, n, model)
    if fmt.lowest_exact > 0:           # no zero (E8M0): no difference z - max exists
        return SoftmaxSafety(format=fmt, num_classes=n, accumulation=model,
                             naive_max_logit=naive, stable_zero_spread=float("nan"),
                             stable_prob_zero_spread=float("nan"))
    zero_spread = 0 - exp_bounds(fmt).min_arg          # 0 - 0.0 is 0.0; -(0.0) would be -0.0
    return SoftmaxSafety(format=fmt, num_classes=n, accumulation=model,
                         naive_max_logit=naive, stable_zero_spread=zero_spread,
                         stable_prob_zero_spread=_prob_zero_spread(fmt, n, model))


def softmax_safety(fmt: Any, num_classes: int = 10, *, accumulation: Accumulation = "torch",
                   n: int | None = None) -> SoftmaxSafety:
    """Exact softmax limits for ``num_classes`` classes in ``fmt``; see `SoftmaxSafety`.

    Parameters
    ----------
    fmt : Format or anything `numfmt.get` accepts
    num_classes : int
        The number of classes n (>= 1).
    accumulation : {"torch", "sequential", "exact"}
        How the n exps are summed (module docstring). Default: what torch does.
    n : int, optional
        Deprecated alias of ``num_classes``.

    Returns
    -------
    SoftmaxSafety

    Raises
    ------
    ValueError
        For a class count that is not a positive int, or an unknown accumulation model.

    Notes
    -----
    Computed exactly (rational arithmetic, exp proven with interval arithmetic) by bisection
    over the format's codes and binade-at-a-time sums: any n up to 2**31 answers in well under a
    second. Cached.

    Examples
    --------
    >>> softmax_safety("fp16", 10).stable_prob_zero_spread
    15.125
    """
    if n is not None:
        warnings.warn("softmax_safety(n=...) is deprecated; use num_classes=",
                      DeprecationWarning, stacklevel=2)
        num_classes = n
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, not {num_classes!r}")
    return _softmax_safety(get(fmt), num_classes, check_accumulation(accumulation))
