"""quant.fixedpoint against exact rational arithmetic (fractions.Fraction)."""

import math
from fractions import Fraction

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from quant import QuantOverflowError, quantize_multiplier, requantize, rounding_right_shift
from quant.fixedpoint import quantize_multipliers


def exact_round(value: Fraction, mode: str) -> int:
    fl = math.floor(value)
    rest = value - fl
    if rest != Fraction(1, 2):
        return fl + (rest > Fraction(1, 2))
    if mode == "half_even":
        return fl + (fl % 2)
    return fl + 1 if value > 0 else fl


@given(st.floats(min_value=1e-30, max_value=1e12, allow_nan=False, allow_infinity=False))
@settings(max_examples=300, deadline=None)
def test_quantize_multiplier_is_the_nearest_31_bit_mantissa(real):
    m, shift = quantize_multiplier(real)
    assert 1 << 30 <= m < 1 << 31
    r = Fraction(real)
    approx = Fraction(m) / Fraction(2) ** shift
    assert abs(approx / r - 1) <= Fraction(1, 1 << 31)
    # nearest: neither neighbour is closer
    for other in (m - 1, m + 1):
        assert abs(Fraction(other) / Fraction(2) ** shift - r) >= abs(approx - r)


def test_quantize_multiplier_edges():
    assert quantize_multiplier(1.0) == (1 << 30, 30)
    assert quantize_multiplier(0.5) == (1 << 30, 31)
    assert quantize_multiplier(Fraction(1, 3))[0] == round(Fraction(1 << 32, 3))
    m, s = quantize_multiplier(1 - 2.0 ** -40)           # rounds up into the next binade
    assert (m, s) == (1 << 30, 30)
    for bad in (0.0, -1.0, math.nan, math.inf):
        with pytest.raises(ValueError):
            quantize_multiplier(bad)
    with pytest.raises(TypeError):
        quantize_multiplier("0.5")
    ms, ss = quantize_multipliers(torch.tensor([0.25, 3.0], dtype=torch.float64))
    assert (ms.tolist(), ss.tolist()) == ([1 << 30, 3 << 29], [32, 29])


@given(st.integers(-(1 << 63) + 1, (1 << 63) - 1), st.integers(0, (1 << 31) - 1),
       st.integers(-40, 120), st.sampled_from(["half_away", "half_even"]))
@settings(max_examples=250, deadline=None)
def test_requantize_is_exact(acc, m, shift, mode):
    expected = exact_round(Fraction(acc * m) / Fraction(2) ** shift, mode)
    if abs(expected) >= 1 << 62:
        with pytest.raises(QuantOverflowError):
            requantize(torch.tensor([acc]), m, shift, rounding=mode)
    else:
        got = requantize(torch.tensor([acc]), m, shift, rounding=mode)
        assert got.dtype == torch.int64 and int(got[0]) == expected


@given(st.lists(st.integers(-(1 << 40), 1 << 40), min_size=1, max_size=20),
       st.integers(1 << 30, (1 << 31) - 1), st.integers(25, 80))
@settings(max_examples=200, deadline=None)
def test_requantize_vectorised_with_zero_point(accs, m, shift):
    got = requantize(torch.tensor(accs), m, shift, zero_point=7)
    assert got.tolist() == [exact_round(Fraction(a * m) / Fraction(2) ** shift, "half_away") + 7
                            for a in accs]


def test_requantize_per_channel_multipliers():
    acc = torch.tensor([[100, -100, 7], [5, 6, -7]])
    m = torch.tensor([[1 << 30], [3 << 29]])
    s = torch.tensor([[33], [31]])
    got = requantize(acc, m, s)
    for i in range(2):
        for j in range(3):
            exact = Fraction(int(acc[i, j]) * int(m[i, 0])) / Fraction(2) ** int(s[i, 0])
            assert int(got[i, j]) == exact_round(exact, "half_away")


def test_ties_follow_the_stated_rounding():
    acc = torch.tensor([-5, -3, -1, 1, 3, 5])             # x / 2 lands on ties
    assert requantize(acc, 1 << 30, 31).tolist() == [-3, -2, -1, 1, 2, 3]
    assert requantize(acc, 1 << 30, 31, rounding="half_even").tolist() == [-2, -2, 0, 0, 2, 2]
    assert rounding_right_shift(torch.tensor([6, 7, -7, 1 << 62]), 2).tolist() == \
        [2, 2, -2, 1 << 60]


def test_requantize_bad_input():
    with pytest.raises(TypeError):
        requantize(torch.tensor([1.0]), 1 << 30, 31)
    with pytest.raises(ValueError, match="multiplier"):
        requantize(torch.tensor([1]), 1 << 31, 31)
    with pytest.raises(ValueError, match="rounding"):
        requantize(torch.tensor([1]), 1 << 30, 31, rounding="floor")
    with pytest.raises(ValueError, match="broadcast"):
        requantize(torch.zeros(3, dtype=torch.int64), torch.tensor([1, 2], dtype=torch.int64), 3)
    with pytest.raises(ValueError):
        rounding_right_shift(torch.tensor([1]), -1)
