"""Independent references for the tests: enumeration and mpmath, sharing no code with numfmt.

Nearest-value rounding here searches the sorted table of a format's values (decoded by numpy
or ml_dtypes from raw bit patterns where a dtype exists), so it checks numfmt's derived
arithmetic against plain enumeration.
"""

from __future__ import annotations

import bisect
from fractions import Fraction

import mpmath
import numpy as np


def values_from_dtype(dtype: np.dtype, bits: int) -> np.ndarray:
    """All finite values of an 8- or 16-bit numpy/ml_dtypes dtype, decoded by that library."""
    raw = np.arange(2**bits, dtype=np.uint16 if bits == 16 else np.uint8)
    v = raw.view(dtype).astype(np.float64)
    return np.unique(v[np.isfinite(v)] + 0.0)


def nearest_even(values: list[Fraction], codes_even: list[bool], x: Fraction) -> Fraction:
    """Nearest entry of the ascending ``values`` to x; ties to the entry whose code is even."""
    i = bisect.bisect_left(values, x)
    if i < len(values) and values[i] == x:
        return x
    lo, hi = values[i - 1], values[i]
    if x - lo < hi - x:
        return lo
    if hi - x < x - lo:
        return hi
    return lo if codes_even[i - 1] else hi


def exp_mp(x: float, dps: int = 60) -> mpmath.mpf:
    with mpmath.workdps(dps):
        return mpmath.exp(mpmath.mpf(x))


def mp_less(a: mpmath.mpf, b: Fraction | float) -> bool:
    """a < b, where a carries 60 digits and b is exact; fails loudly if too close to tell."""
    with mpmath.workdps(60):
        bb = mpmath.mpf(b.numerator) / b.denominator if isinstance(b, Fraction) else mpmath.mpf(b)
        diff = a - bb
        assert abs(diff) > abs(bb) * mpmath.mpf(10) ** -50, "too close to decide"
        return diff < 0
