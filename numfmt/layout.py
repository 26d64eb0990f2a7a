"""Bit patterns to values, read straight from a format's layout.

This is written from the layout rules alone (sign, exponent field, fraction, where NaN and inf
sit), without the derived limits of `numfmt.Format`, so that the two can be checked against each
other and against the libraries that decode the same bits (numpy, ml_dtypes, torch, gfloat).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["decode_codes"]


def _decode_int(fmt: Any, c: np.ndarray) -> np.ndarray:
    if fmt.signed:
        c = np.where(c >= 2 ** (fmt.bits - 1), c - 2**fmt.bits, c)
    return c.astype(np.float64)


def decode_codes(fmt: Any, codes: Any) -> np.ndarray:
    """The values (float64) of bit patterns of a format.

    Parameters
    ----------
    fmt : Format
    codes : array_like of int
        Unsigned integers below 2**bits.

    Returns
    -------
    numpy.ndarray
        float64, the shape of ``codes``; NaN codes give NaN, inf codes +-inf.

    Raises
    ------
    ValueError
        For a code outside [0, 2**bits).
    """
    c = np.asarray(codes, dtype=np.int64)
    if np.any((c < 0) | (c >= 2**fmt.bits)):
        raise ValueError(f"{fmt.name}: codes must lie in [0, 2**{fmt.bits})")
    if not fmt.is_float:
        return _decode_int(fmt, c)
    m, e = fmt.mantissa_bits, fmt.exponent_bits
    mag = c & (2 ** (e + m) - 1)
    negative = ((c >> (fmt.bits - 1)) & 1).astype(bool) if fmt.signed else np.zeros(c.shape, bool)
    sign = np.where(negative, -1.0, 1.0)
    ef = mag >> m
    frac = (mag & (2**m - 1)).astype(np.float64)
    norm = np.ldexp(1.0 + frac / 2.0**m, (ef - fmt.bias).astype(np.int64))
    if fmt.has_zero:
        sub = np.ldexp(frac, 1 - fmt.bias - m) if fmt.has_subnormals else np.zeros(c.shape)
        v = sign * np.where(ef == 0, sub, norm)
    else:                                         # E8M0: field 0 is a binade like the others
        v = sign * norm
    top = 2 ** (e + m) - 1
    if fmt.nan == "ieee":
        v = np.where((ef == 2**e - 1) & (frac == 0), sign * np.inf, v)
        v = np.where((ef == 2**e - 1) & (frac != 0), np.nan, v)
        return v
    if fmt.nan == "max_code":
        v = np.where(mag == top, np.nan, v)
        if fmt.has_inf:
            v = np.where(mag == top - 1, sign * np.inf, v)
    elif fmt.nan == "negative_zero":
        v = np.where(negative & (mag == 0), np.nan, v)
        if fmt.has_inf:
            v = np.where(mag == top, sign * np.inf, v)
    return v
