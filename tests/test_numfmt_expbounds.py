"""exp bounds against mpmath and enumeration, independently of numfmt's exact module."""

from __future__ import annotations

import math
from fractions import Fraction

import mpmath
import numpy as np
import pytest
from hypothesis import given, strategies as st

import numfmt
from tests.reference import exp_mp, mp_less

FLOATS = [f for f in numfmt.formats() if f.is_float]
ENUMERABLE = [f for f in FLOATS if f.bits <= 19]


def _neighbours(f):
    """(values ascending, overflow limit, underflow limit, normal limit), all independent of
    numfmt's derivations: from the enumerated table or from numpy's finfo and nextafter."""
    if f.bits <= 19:
        v = f.finite_values()
        pos = v[v > 0]
        top, below_top = Fraction(v[-1]), Fraction(v[-2])
        sub = Fraction(pos[0])
        # the smallest normal: the smallest value whose exponent field is nonzero
        codes = np.arange(2 ** (f.bits - 1))
        normal_codes = codes[(codes >> f.mantissa_bits) > 0]
        normals = f.decode(normal_codes)
        tiny = Fraction(float(normals[np.isfinite(normals)].min()))
        return v, top + (top - below_top) / 2, sub / 2, tiny - sub / 2
    fi = np.finfo(f.numpy_dtype)
    top = Fraction(float(fi.max))
    below_top = Fraction(float(np.nextafter(fi.max, 0, dtype=f.numpy_dtype)))
    sub = Fraction(float(fi.smallest_subnormal))
    return None, top + (top - below_top) / 2, sub / 2, Fraction(float(fi.smallest_normal)) - sub / 2


def _next(f, values, x, direction):
    if values is not None:
        i = np.searchsorted(values, x)
        assert values[i] == x
        return values[i + direction]
    dt = f.numpy_dtype.type
    return float(np.nextafter(dt(x), dt(direction * np.inf)))


@pytest.mark.parametrize("f", FLOATS, ids=str)
def test_bounds_sit_exactly_at_the_rounding_limits(f):
    b = numfmt.exp_bounds(f)
    values, over, under, normal = _neighbours(f)
    assert mp_less(exp_mp(b.max_arg), over)
    assert not mp_less(exp_mp(_next(f, values, b.max_arg, +1)), over)
    assert not mp_less(exp_mp(b.min_arg), under)
    assert not mp_less(exp_mp(b.min_normal_arg), normal)
    if f.lowest > 0:        # E8M0: every value is positive, exp of the lowest is above both
        assert b.min_arg == b.min_normal_arg == f.lowest
        return
    assert mp_less(exp_mp(_next(f, values, b.min_arg, -1)), under)
    assert mp_less(exp_mp(_next(f, values, b.min_normal_arg, -1)), normal)
    for x in (b.max_arg, b.min_arg, b.min_normal_arg):
        assert numfmt.round_to(x, f) == x  # each bound is a value of the format


@pytest.mark.parametrize("f", ENUMERABLE, ids=str)
def test_exhaustive_every_value_is_on_the_right_side(f):
    """For every value x of the format: exp(x) < overflow limit iff x <= max_arg, etc.
    float64 exp decides all but the values within 1e-12 of a limit; mpmath decides those."""
    b = numfmt.exp_bounds(f)
    v, over, under, normal = _neighbours(f)
    with np.errstate(over="ignore", under="ignore"):
        y = np.exp(v)
    for limit, expect_below in ((over, v <= b.max_arg), (under, v < b.min_arg),
                                (normal, v < b.min_normal_arg)):
        lim = float(limit)
        below = y < lim
        close = np.abs(y - lim) <= 1e-12 * lim
        for i in np.flatnonzero(close):
            below[i] = mp_less(exp_mp(v[i]), limit)
        assert np.array_equal(below, expect_below)


def test_known_values_from_first_principles():
    # fp16: max 65504, ulp at the top 32, so exp overflows past log(65520)
    assert numfmt.exp_bounds("fp16").max_arg == 11.0859375
    assert math.exp(11.0859375) < 65520 < math.exp(11.09375)
    # fp16 underflow: exp(x) < 2**-25 rounds to 0, and -log(max) (about -11.09) is far off
    assert numfmt.exp_bounds("fp16").min_arg == -17.328125
    # int8: exp(4) = 54.6 rounds to 55; exp(5) = 148.4 > 127; exp(-1) = 0.37 rounds to 0
    b = numfmt.exp_bounds("int8")
    assert (b.max_arg, b.min_arg, b.min_normal_arg) == (4.0, 0.0, 0.0)
    assert numfmt.exp_bounds("uint8").max_arg == 5.0  # exp(5) = 148.4 <= 255
    # wider integers, from math.exp: the largest integer k whose exp rounds into the range
    for name, top in (("int16", 32767), ("uint16", 65535), ("int32", 2**31 - 1)):
        k = max(k for k in range(60) if round(math.exp(k)) <= top)
        assert numfmt.exp_bounds(name).max_arg == k, name
    # fp32 and fp64 against the classic constants
    assert numfmt.exp_bounds("fp64").max_arg == float(np.nextafter(709.782712893384, 0)) or \
        numfmt.exp_bounds("fp64").max_arg == 709.782712893384
    assert math.isfinite(math.exp(numfmt.exp_bounds("fp64").max_arg))
    with pytest.raises(OverflowError):
        math.exp(float(np.nextafter(numfmt.exp_bounds("fp64").max_arg, np.inf)))
    assert math.exp(numfmt.exp_bounds("fp64").min_arg) > 0
    assert math.exp(float(np.nextafter(numfmt.exp_bounds("fp64").min_arg, -np.inf))) == 0


def test_log_max_is_not_the_bound():
    f = numfmt.get("fp32")
    b = numfmt.exp_bounds(f)
    log_max = float(np.log(np.float32(f.max)))
    assert b.max_arg != log_max or b.overflow_threshold != math.log(f.max)
    assert b.min_arg < -log_max - 15  # the underflow bound is set by the smallest subnormal


@pytest.mark.parametrize("f", FLOATS, ids=str)
def test_thresholds_are_logs_of_the_limits(f):
    b = numfmt.exp_bounds(f)
    with mpmath.workdps(40):
        for thr, lim in ((b.overflow_threshold, b.overflow_limit),
                         (b.underflow_threshold, b.underflow_limit),
                         (b.normal_threshold, b.normal_limit)):
            want = mpmath.log(mpmath.mpf(lim.numerator) / lim.denominator)
            assert abs(thr - want) <= abs(want) * 2.0**-52
        digits = b.threshold_digits(30)
        assert mpmath.almosteq(mpmath.mpf(digits["overflow"]), mpmath.log(
            mpmath.mpf(b.overflow_limit.numerator) / b.overflow_limit.denominator), 1e-28)
    assert b.min_arg >= b.underflow_threshold and b.max_arg <= b.overflow_threshold


@given(st.sampled_from([f.name for f in FLOATS]), st.floats(0, 1))
def test_property_inside_the_bounds_exp_is_finite_and_nonzero(name, u):
    f = numfmt.get(name)
    b = numfmt.exp_bounds(f)
    x = numfmt.round_to(b.min_arg + u * (b.max_arg - b.min_arg), f)
    x = min(max(x, b.min_arg), b.max_arg)
    r = numfmt.exp_rounded(x, f)
    assert math.isfinite(r) and r != 0 and r <= f.max
    if x >= b.min_normal_arg:
        assert r >= f.tiny


@given(st.sampled_from([f.name for f in ENUMERABLE]), st.integers(0, 2**19))
def test_property_exp_rounded_is_the_nearest_value(name, k):
    f = numfmt.get(name)
    v = f.finite_values()
    x = v[k % v.size]
    r = numfmt.exp_rounded(x, f)
    e = exp_mp(x)
    if mp_less(e, Fraction(f.max)):
        i = np.searchsorted(v, float(e))
        lo, hi = v[i - 1], v[min(i, v.size - 1)]
        with mpmath.workdps(60):
            want = lo if abs(e - mpmath.mpf(lo)) < abs(mpmath.mpf(hi) - e) else hi
        assert r == want
