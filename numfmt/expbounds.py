"""The exp-bound API: the exact arguments where exp stops being finite, nonzero or normal.

For a format F and correct rounding (round-to-nearest-even) of exp into F:

* exp(x) rounds to a finite value     iff exp(x) < max + ulp(max)/2      (``overflow_limit``)
* exp(x) rounds to a nonzero value    iff exp(x) > smallest_subnormal/2  (``underflow_limit``)
* exp(x) rounds to a value >= tiny    iff exp(x) > tiny - smallest_subnormal/2 (``normal_limit``)

Each limit L is a dyadic rational, so log(L) is irrational (Lindemann) and no argument ever lands
on a tie; the bound is the format value on the correct side of log(L). We find it from a 256-bit
log and then *prove* it with interval arithmetic (mpmath.iv): exp at the bound and at its
neighbour across the threshold are compared with L using rigorous enclosures, raising the
working precision until the comparison is decided. ``log(max)`` is not the bound: it ignores the
half ulp above max, and ``-log(max)`` is nowhere near the underflow bound, which is set by the
smallest subnormal.

For integer formats the argument is an integer of the format and exp(x) is rounded to the
nearest integer: the limits become max + 1/2 and 1/2, and there are no subnormals.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from functools import lru_cache
from typing import Any

import mpmath

from numfmt.exact import floor_log2, last_true, next_up, quantum, round_exact
from numfmt.format import Format
from numfmt.registry import get
from numfmt.rounding import default_overflow

_START_PREC = 128
_MAX_PREC = 1 << 14


def _iv_of(q: Fraction):
    return mpmath.iv.mpf(q.numerator) / mpmath.iv.mpf(q.denominator)


def _exp_enclosure(x: Fraction, prec: int) -> tuple[Fraction, Fraction]:
    """Rational lower and upper bounds of exp(x), from mpmath's outward-rounded intervals."""
    ctx = mpmath.iv
    saved = ctx.prec
    ctx.prec = prec
    try:
        lo, hi = ctx.exp(_iv_of(x))._mpi_
    finally:
        ctx.prec = saved

    return _raw_to_fraction(lo), _raw_to_fraction(hi)


def _raw_to_fraction(raw: tuple) -> Fraction:
    """The exact value of mpmath's raw (sign, mantissa, exponent, bitcount) tuple."""
    sign, man, exp, _ = raw
    if not man and exp:  # mpmath's encoding of inf/nan
        raise ArithmeticError("value out of mpmath's finite range")
    v = Fraction(int(man)) * Fraction(2) ** int(exp)
    return -v if sign else v


def _far_from(x: Fraction, limit: Fraction) -> int:
    """-1 or 1 when exp(x) is certainly below or above ``limit`` by a factor of e or more
    (decided from bit lengths alone, so huge |x| never reaches mpmath); 0 otherwise."""
    k = floor_log2(limit)                     # log2(limit) lies in [k, k + 1)
    ln2 = 0.6931471805599453
    if x < k * ln2 - 1:
        return -1
    if x > (k + 1) * ln2 + 1:
        return 1
    return 0


def compare_exp(x: Fraction | float | int, limit: Fraction) -> int:
    """The sign of exp(x) - limit, proven with interval arithmetic.

    Parameters
    ----------
    x : Fraction, float or int
        Taken exactly.
    limit : Fraction
        A positive rational.

    Returns
    -------
    int
        -1 or 1.

    Raises
    ------
    ValueError
        If exp(x) == limit, which for rational x happens only at x = 0, limit = 1.
    ArithmeticError
        If 16384 bits of working precision cannot separate them (never seen).
    """
    x, limit = Fraction(x), Fraction(limit)
    quick = _far_from(x, limit)
    if quick:
        return quick
    if x == 0:
        if limit == 1:
            raise ValueError("exp(0) == 1 exactly: no strict comparison")
        return 1 if limit < 1 else -1
    prec = _START_PREC
    while prec <= _MAX_PREC:
        lo, hi = _exp_enclosure(x, prec)
        if hi < limit:
            return -1
        if lo > limit:
            return 1
        prec *= 2
    raise ArithmeticError(f"could not separate exp({x}) from {limit} at {_MAX_PREC} bits")


def log_rational(q: Fraction) -> Fraction:
    """log(q) of a positive rational to 256 bits, as an exact Fraction.

    Parameters
    ----------
    q : Fraction

    Returns
    -------
    Fraction
        Only a starting guess for the searches, which then prove their answer; not a bound.
    """
    with mpmath.workprec(256):
        t = mpmath.log(mpmath.mpf(q.numerator) / q.denominator)
    return _raw_to_fraction(t._mpf_)


def largest_arg_below(fmt: Any, limit: Fraction) -> Fraction:
    """Largest value x of ``fmt`` with exp(x) < ``limit``, proven (the lowest value if none).

    Parameters
    ----------
    fmt : Format or anything `numfmt.get` accepts
    limit : Fraction
        A positive rational.

    Returns
    -------
    Fraction
    """
    f = get(fmt)
    x = last_true(lambda v: compare_exp(v, limit) < 0, f, start=log_rational(limit))
    return f.lowest_exact if x is None else x


def smallest_arg_above(fmt: Any, limit: Fraction) -> Fraction:
    """Smallest value x of ``fmt`` with exp(x) > ``limit``, proven (the max if none).

    Parameters
    ----------
    fmt : Format or anything `numfmt.get` accepts
    limit : Fraction
        A positive rational other than 1 (exp(0) == 1 exactly cannot be compared strictly).

    Returns
    -------
    Fraction
    """
    f = get(fmt)
    # exp(x) == limit never happens for rational x other than 0 (limit 1 is refused there).
    x = last_true(lambda v: compare_exp(v, limit) < 0, f, start=log_rational(limit))
    if x is None:
        return f.lowest_exact
    up = next_up(x, f)
    return x if up is None else up


@dataclass(frozen=True)
class ExpBounds:
    """Where exp, correctly rounded into ``format``, stops being finite, nonzero or normal.

    ``max_arg``, ``min_arg`` and ``min_normal_arg`` are values of the format (Python floats,
    exact). ``*_limit`` are the exact results (Fractions) at which rounding crosses over, and
    ``*_threshold`` are log of those limits (the real-valued argument thresholds, as the
    nearest float64; `threshold_digits` gives more digits).

    * every format value x <= max_arg has exp(x) rounding to a finite value (for formats that
      saturate rather than overflow: to a value that is not clamped), and the next one does not;
    * every x >= min_arg has a nonzero result; the next value below gives exactly 0;
    * every x >= min_normal_arg has a result >= the format's tiny (smallest normal).
    """

    format: Format
    max_arg: float | int
    min_arg: float | int
    min_normal_arg: float | int
    overflow_limit: Fraction = field(repr=False)
    underflow_limit: Fraction = field(repr=False)
    normal_limit: Fraction = field(repr=False)

    @property
    def overflow_threshold(self) -> float:
        """log(overflow_limit): exp(x) overflows iff x > this (real-valued)."""
        return float(log_rational(self.overflow_limit))

    @property
    def underflow_threshold(self) -> float:
        """log(underflow_limit): exp(x) rounds to 0 iff x < this (real-valued)."""
        return float(log_rational(self.underflow_limit))

    @property
    def normal_threshold(self) -> float:
        """log(normal_limit): exp(x) rounds below the tiny normal iff x < this."""
        return float(log_rational(self.normal_limit))

    def threshold_digits(self, digits: int = 30) -> dict[str, str]:
        """The three real thresholds as decimal strings.

        Parameters
        ----------
        digits : int
            Significant digits.

        Returns
        -------
        dict of str to str
            Keys "overflow", "underflow", "normal".
        """
        out = {}
        with mpmath.workdps(digits + 10):
            for key, lim in (("overflow", self.overflow_limit), ("underflow", self.underflow_limit),
                             ("normal", self.normal_limit)):
                out[key] = mpmath.nstr(mpmath.log(mpmath.mpf(lim.numerator) / lim.denominator),
                                       digits)
        return out

    @property
    def finite_interval(self) -> tuple[float, float]:
        """(min_arg, max_arg): the arguments whose exp is finite and nonzero."""
        return (self.min_arg, self.max_arg)


@lru_cache(maxsize=None)
def _exp_bounds(fmt: Format) -> ExpBounds:
    top = fmt.max_exact
    overflow_limit = top + quantum(fmt, top) / 2
    underflow_limit = fmt.smallest_subnormal_exact / 2
    normal_limit = fmt.tiny_exact - fmt.smallest_subnormal_exact / 2
    return ExpBounds(
        format=fmt,
        max_arg=fmt.as_number(largest_arg_below(fmt, overflow_limit)),
        min_arg=fmt.as_number(smallest_arg_above(fmt, underflow_limit)),
        min_normal_arg=fmt.as_number(smallest_arg_above(fmt, normal_limit)),
        overflow_limit=overflow_limit,
        underflow_limit=underflow_limit,
        normal_limit=normal_limit,
    )


def exp_bounds(fmt: Any) -> ExpBounds:
    """Exact exp bounds of a format; see `ExpBounds`.

    Parameters
    ----------
    fmt : Format or anything `numfmt.get` accepts

    Returns
    -------
    ExpBounds
        Computed from the format's parameters with exact rational arithmetic and proven with
        interval arithmetic; cached per format. Integer formats give ints.

    Examples
    --------
    >>> exp_bounds("fp16").max_arg
    11.0859375
    """
    return _exp_bounds(get(fmt))


def exp_rounded(x: Fraction | float | int, fmt: Any) -> float:
    """exp(x) correctly rounded (nearest, ties to even) into a format, x taken exactly.

    Parameters
    ----------
    x : Fraction, float or int
    fmt : Format or anything `numfmt.get` accepts

    Returns
    -------
    float
        Overflow follows the format's default rule (inf, NaN, or saturation); integer formats
        round to the nearest integer and saturate.

    Notes
    -----
    Interval arithmetic, raising the precision until both ends of the enclosure round to the
    same format value.
    """
    f = get(fmt)
    q = Fraction(x)
    if q == 0:
        return 1.0
    if _far_from(q, f.smallest_subnormal_exact / 2) < 0:
        return 0.0
    top = f.max_exact + quantum(f, f.max_exact) / 2
    if _far_from(q, top) > 0:
        rule = default_overflow(f)
        return {"inf": float("inf"), "nan": float("nan")}.get(rule, f.max)
    prec = _START_PREC
    while prec <= _MAX_PREC:
        lo, hi = _exp_enclosure(q, prec)
        r_lo, r_hi = round_exact(lo, f), round_exact(hi, f)
        if r_lo > f.max_exact:  # both ends overflow, whatever grid points they land on
            rule = default_overflow(f)
            return {"inf": float("inf"), "nan": float("nan")}.get(rule, f.max)
        if r_lo == r_hi:
            return float(r_lo)
        prec *= 2
    raise ArithmeticError(f"could not round exp({x}) into {f.name}")
