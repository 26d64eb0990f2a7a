"""The static accumulator proof against brute force over every operand assignment."""

import itertools
import random

import pytest

from quant import accumulator_bound


def brute_force(a_range, b_range, k):
    """Smallest and largest partial sum (empty sum included) over all assignments and orders."""
    a_vals = range(a_range[0], a_range[1] + 1)
    b_vals = range(b_range[0], b_range[1] + 1)
    products = sorted({x * y for x in a_vals for y in b_vals})
    lo = hi = 0
    for terms in itertools.product(products, repeat=k):
        s = 0
        for t in terms:
            s += t
            lo, hi = min(lo, s), max(hi, s)
    return lo, hi


@pytest.mark.parametrize("seed", range(40))
def test_bound_is_tight_and_fits_agrees_with_brute_force(seed):
    rng = random.Random(seed)
    a_lo = rng.randint(-6, 5)
    a_range = (a_lo, rng.randint(a_lo, 6))
    b_lo = rng.randint(-6, 5)
    b_range = (b_lo, rng.randint(b_lo, 6))
    k = rng.randint(0, 3)
    lo, hi = brute_force(a_range, b_range, k)
    for bits in (4, 5, 6, 7, 8):
        p = accumulator_bound(a_range, b_range, k, acc_bits=bits)
        assert (p.lowest, p.highest) == (lo, hi)
        acc_lo, acc_hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        assert p.fits == (acc_lo <= lo and hi <= acc_hi)
        if p.max_k is not None:                 # max_k terms fit, one more does not
            assert accumulator_bound(a_range, b_range, p.max_k, bits).fits
            assert not accumulator_bound(a_range, b_range, p.max_k + 1, bits).fits
        assert ("cannot overflow" in p.reason) == p.fits


def test_pixels_times_weights_fits_int32():
    p = accumulator_bound((0, 255), (-128, 127), 784)
    assert p.fits and p.fits_int32 and p.worst_case == 784 * 255 * 128
    assert (p.lowest, p.highest) == (-784 * 255 * 128, 784 * 255 * 127)
    big = accumulator_bound((-128, 127), (-128, 127), 131_073)
    assert not big.fits and big.fits_int64 and big.max_k == (2**31 - 1) // 16384
    assert "2,147,483,647" in big.reason and "at most" in big.reason


def test_bad_arguments():
    with pytest.raises(ValueError, match="empty"):
        accumulator_bound((3, 2), (0, 1), 4)
    with pytest.raises(TypeError):
        accumulator_bound((0.5, 2), (0, 1), 4)
    with pytest.raises(ValueError, match="k"):
        accumulator_bound((0, 1), (0, 1), -1)
    with pytest.raises(ValueError, match="width"):
        accumulator_bound((0, 1), (0, 1), 1, acc_bits=1)
    assert accumulator_bound((0, 0), (-5, 5), 10**9).max_k is None
