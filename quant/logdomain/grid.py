"""The LogInt8 grid: frac_bits, offsets and their limits, exact log codes, decode tables.

A magnitude code m in 1..127 stands for 2**((m + offset) / 2**frac_bits); these helpers check
the parameters, compute codes and decoded values in exact arithmetic (Fractions, 160-bit
mpmath), and the relative error bounds of the grid and of its float32 / float64 decodes.
"""

from __future__ import annotations

import functools
import math
from fractions import Fraction

import mpmath
import numpy as np
import torch

import numfmt

from .._tensors import is_int

__all__ = ["MAX_FRAC_BITS", "CODE_MAX", "check_frac_bits", "offset_limits", "check_offset",
           "exact_log_code", "decode_table", "exp2_float", "rel_error_bound",
           "decode_rel_error_bound"]

MAX_FRAC_BITS = 6
CODE_MAX = 127
_FP32 = numfmt.get("fp32")
_FP32_EMIN, _FP32_SUBNORMAL_EXP = _FP32.emin, _FP32.emin - _FP32.mantissa_bits   # -126, -149
_FP32_EMAX = _FP32.emax + 1                                                           # 2**128


def check_frac_bits(frac_bits: object) -> int:
    """`frac_bits` as an int after checking it is an int in [0, MAX_FRAC_BITS]."""
    if not is_int(frac_bits):
        raise TypeError(f"frac_bits must be an int, got {type(frac_bits).__name__}")
    if not 0 <= int(frac_bits) <= MAX_FRAC_BITS:
        raise ValueError(f"frac_bits must lie in [0, {MAX_FRAC_BITS}], got {frac_bits}")
    return int(frac_bits)


def offset_limits(frac_bits: int) -> tuple[int, int]:
    """Smallest and largest `offset` whose 127 magnitudes are finite, nonzero float32 values.

    Parameters
    ----------
    frac_bits : int
        0..6.

    Returns
    -------
    tuple of int
        The top magnitude stays below 2**128 and the bottom one at or above 2**-149 (float32's
        limits, from `numfmt.get("fp32")`).

    Examples
    --------
    >>> from quant.logdomain import offset_limits
    >>> offset_limits(3)
    (-1193, 896)
    """
    f = 1 << check_frac_bits(frac_bits)
    return _FP32_SUBNORMAL_EXP * f - 1, _FP32_EMAX * f - CODE_MAX - 1


def check_offset(offset: object, frac_bits: int, name: str = "offset") -> int:
    """``offset`` as an int, after checking it is an integer within `offset_limits`.

    Parameters
    ----------
    offset : int
        The offset to check.
    frac_bits : int
        The grid's fractional bits.
    name : str
        What the caller calls it in the error (e.g. "quant.mul: out_offset").

    Returns
    -------
    int

    Raises
    ------
    TypeError, ValueError
        For a non-integer or an offset outside `offset_limits`.
    """
    if not is_int(offset):
        raise TypeError(f"{name} must be an int, got {type(offset).__name__}")
    lo, hi = offset_limits(frac_bits)
    if not lo <= int(offset) <= hi:
        raise ValueError(f"{name} {offset} puts magnitudes outside float32; with "
                         f"frac_bits={frac_bits} it must lie in [{lo}, {hi}]")
    return int(offset)


def exact_log_code(a: float, frac_bits: int) -> int:
    """``round(2**frac_bits * log2(a))`` in exact rational arithmetic.

    Parameters
    ----------
    a : float
        Finite and > 0 (taken at its exact binary value).
    frac_bits : int
        0..6.

    Returns
    -------
    int
        The nearest integer (never a tie: that would need an irrational power of two to be
        rational): floor((floor(2**(F+1) log2 a) + 1) / 2), the inner floor read from the bit
        lengths of a**(2**(F+1)) as a fraction.

    Examples
    --------
    >>> from quant import exact_log_code
    >>> exact_log_code(float.fromhex("0x1.7a11473eb0187p-9"), 3)
    -67
    """
    if not (isinstance(a, (float, int)) and math.isfinite(a) and a > 0):
        raise ValueError(f"exact_log_code needs a finite a > 0, got {a}")
    n = 1 << (check_frac_bits(frac_bits) + 1)
    r = Fraction(a)
    num, den = r.numerator ** n, r.denominator ** n
    e = num.bit_length() - den.bit_length()          # floor(log2(num/den)) or one more
    if (num << max(0, -e)) < (den << max(0, e)):
        e -= 1
    return (e + 1) // 2


@functools.lru_cache(maxsize=256)
def decode_table(offset: int, frac_bits: int, dtype: torch.dtype) -> torch.Tensor:
    """256 values indexed by the code's byte (uint8 view): correctly rounded to `dtype`."""
    f = 1 << frac_bits
    table = np.zeros(256, dtype=np.float64)
    with mpmath.workprec(160):                          # leaves the global precision alone
        for m in range(1, CODE_MAX + 1):
            v = mpmath.power(2, mpmath.mpf(m + offset) / f)
            table[m] = float(v) if dtype == torch.float64 else _nearest_float32(v)
            table[256 - m] = -table[m]
    table[128] = math.nan                               # -128 is not a code
    return torch.tensor(table, dtype=dtype)


def exp2_float(k: int, frac_bits: int) -> float:
    """2**(k / 2**frac_bits) correctly rounded to float64."""
    with mpmath.workprec(160):
        return float(mpmath.power(2, mpmath.mpf(k) / (1 << frac_bits)))


def _nearest_float32(v: mpmath.mpf) -> float:
    c = np.float32(float(v))
    best = c
    for cand in (np.nextafter(c, np.float32(-np.inf)), np.nextafter(c, np.float32(np.inf))):
        if abs(mpmath.mpf(float(cand)) - v) < abs(mpmath.mpf(float(best)) - v):
            best = cand
    return float(best)


# --------------------------------------------------------------------------- Gaussian log

def rel_error_bound(frac_bits: int) -> float:
    """2**(2**-(frac_bits+1)) - 1: the in-range relative error bound of the LogInt8 grid.

    Parameters
    ----------
    frac_bits : int
        0..6.

    Returns
    -------
    float
        The bound for the exact value of each code (4.43% for frac_bits 3); a decoded float
        adds its own rounding (`decode_rel_error_bound`).
    """
    return math.expm1(math.log(2.0) * 2.0 ** -(check_frac_bits(frac_bits) + 1))



@functools.lru_cache(maxsize=256)
def decode_rel_error_bound(offset: int, frac_bits: int, dtype: torch.dtype) -> float:
    """Largest |decode(dtype) - x| / |x| for x inside the range of an encoding.

    Parameters
    ----------
    offset, frac_bits : int
        The encoding's grid.
    dtype : torch.dtype
        The decode's dtype (float32 or float64).

    Returns
    -------
    float
        For every code m, x encoding to m lies in [v 2**-h, v 2**h] (v = 2**((m + offset) /
        2**F), h = 2**-(F+1)), and the relative error of the decoded d = fl(v) is largest at
        an end: max(d / (v 2**-h) - 1, 1 - d / (v 2**h)). The maximum over the 127 codes,
        evaluated with 160-bit mpmath and rounded up to a float. It exceeds
        `rel_error_bound(frac_bits)` by about one rounding of `dtype` (more where float32
        decodes to subnormals).
    """
    f = 1 << check_frac_bits(frac_bits)
    table = decode_table(offset, frac_bits, dtype)
    worst = mpmath.mpf(0)
    with mpmath.workprec(160):
        half = mpmath.power(2, mpmath.mpf(1) / (2 * f))
        for m in range(1, CODE_MAX + 1):
            v = mpmath.power(2, mpmath.mpf(m + offset) / f)
            d = mpmath.mpf(float(table[m]))
            worst = max(worst, d / (v / half) - 1, 1 - d / (v * half))
        out = float(worst)
        if mpmath.mpf(out) < worst:
            out = math.nextafter(out, math.inf)
    return out
