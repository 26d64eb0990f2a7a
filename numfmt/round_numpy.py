"""The numpy path of `numfmt.round_to`: float64 arithmetic on the format's grid, exact.

Inputs float64 cannot carry (int64/uint64 beyond 2**53, long double) are rounded one by one in
exact rational arithmetic, never through float64.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import numpy as np

from numfmt import native
from numfmt.exact import round_exact
from numfmt.format import Format
from numfmt.overflow import RangeOverflowError
from numfmt.modes import STOCHASTIC, clamps_high, clamps_low, round_scaled
from numfmt.rangerule import (Overflow, apply_overflow, bottom_of_range, check_nan,
                              container_name, holds, raise_overflow, saturated_max, source_format)
from numfmt.registry import get
from numfmt.stochastic import uniforms

__all__ = ["round_array", "round_rational", "beyond_float64"]


def _np_round_float(a: np.ndarray, fmt: Format, mode: str, u: Any = None) -> np.ndarray:
    """float64 ``a`` rounded by ``mode`` onto the float format's grid, unbounded above."""
    if fmt.name == "fp64":
        return a.copy()
    _, e = np.frexp(a)  # a = f * 2**e with 0.5 <= |f| < 1, so the binade exponent is e - 1
    qexp = np.maximum(e - 1, fmt.emin) - fmt.mantissa_bits
    with np.errstate(invalid="ignore", over="ignore"):  # overflow to inf is the IEEE answer
        return np.ldexp(round_scaled(np.ldexp(a, -qexp), qexp, fmt, mode, np, u), qexp)


def beyond_float64(a: np.ndarray) -> np.ndarray | None:
    """The elements float64 cannot hold exactly, which must not be rounded twice.

    Parameters
    ----------
    a : numpy.ndarray

    Returns
    -------
    numpy.ndarray of bool or None
        int64/uint64 beyond 2**53 and long doubles with more precision; None when there are none.
    """
    if a.dtype.kind in "iu" and a.dtype.itemsize == 8:
        mask = (a > 2**53) | (a < -(2**53))
    elif a.dtype.kind == "f" and a.dtype.itemsize > 8:
        with np.errstate(over="ignore"):
            mask = (a != a.astype(np.float64)) & ~np.isnan(a)
    else:
        return None
    return np.asarray(mask) if mask.any() else None


def round_rational(q: Fraction, fmt: Format, rule: Overflow,
                   mode: str = "nearest_even", u: Any = None) -> float | int:
    """A rational rounded once, exactly, into the format under the overflow rule.

    Parameters
    ----------
    q : Fraction
    fmt : Format
    rule : {"inf", "nan", "saturate", "raise"}

    Returns
    -------
    float or int

    Raises
    ------
    RangeOverflowError
        For "raise" when ``q`` rounds beyond the range.
    """
    r = round_exact(q, fmt, mode, u)
    if fmt.lowest_exact <= r <= fmt.max_exact:
        return fmt.as_number(r)
    if (r > 0 and clamps_high(mode)) or (r < fmt.lowest_exact and clamps_low(mode)):
        return fmt.as_number(fmt.max_exact if r > 0 else fmt.lowest_exact)
    if rule == "raise":
        raise RangeOverflowError("round_to", (), q, fmt.lowest, fmt.max, what="value",
                                 hint=f"it overflows {fmt.name}")
    if rule == "inf":
        return math.inf if r > 0 else -math.inf
    if rule == "nan":
        return math.nan
    return fmt.as_number(fmt.max_exact if r > 0 else fmt.lowest_exact)


def _round_native(a: np.ndarray, fmt: Format, rule: Overflow, mode: str, seed: int | None,
                  start: int, out_dtype: np.dtype) -> np.ndarray | None:
    """The compiled loop's rounding (`numfmt.native`) of a float32/float64 array into an array
    of ``out_dtype`` -- the input's own dtype, or the format's storage dtype (the loop writes
    its codes) -- or None where it does not apply (or met an error the Python path raises: it
    runs again)."""
    if not (native.available() and a.dtype in (np.float32, np.float64)
            and native.supports(fmt, a.itemsize)):
        return None
    output = "same" if out_dtype == a.dtype else \
        native.code_output(fmt) if out_dtype == fmt.numpy_dtype else None
    if output is None:
        return None
    src = np.asarray(a)
    if not (src.flags.c_contiguous and src.dtype.isnative):
        src = src.astype(src.dtype.newbyteorder("="), order="C")
    out = np.empty(src.shape, dtype=out_dtype)
    native.advise_huge_pages(out.ctypes.data, out.nbytes)
    if native.round_buffer(src.ctypes.data, out.ctypes.data, src.size, src.itemsize, fmt, rule,
                           mode, seed, start, output):
        return out
    return None


def round_array_as(a: np.ndarray, fmt: Format, rule: Overflow, mode: str, seed: int | None,
                   dtype: np.dtype) -> np.ndarray:
    """`round_array`'s values held in ``dtype`` (checked by the caller to hold every value of
    ``fmt``): into the format's own storage dtype the compiled loop writes its codes directly;
    otherwise the result is converted, exactly."""
    compiled = _round_native(a, fmt, rule, mode, seed, 0, dtype)
    return compiled if compiled is not None else \
        round_array(a, fmt, rule, mode, seed).astype(dtype)


def round_array(a: np.ndarray, fmt: Format, rule: Overflow,
                mode: str = "nearest_even", seed: int | None = None,
                start: int = 0) -> np.ndarray:
    """A numpy array rounded into the format (the numpy path of `round_to`).

    Parameters
    ----------
    a : numpy.ndarray
        Any real dtype; not modified.
    fmt : Format
    rule : {"inf", "nan", "saturate", "raise"}
    mode : str
        A rounding mode (`numfmt.modes`).
    seed : int, optional
        The stochastic mode's seed (`numfmt.stochastic`).
    start : int
        The flat index of ``a``'s first element in the whole input (the uniforms' counter).

    Returns
    -------
    numpy.ndarray
        In the container `numfmt.rangerule.container_name` picks.
    """
    if a.dtype.kind in "bcmMOSUa" or (a.dtype.kind == "V" and source_format(a.dtype) is None):
        raise TypeError(f"cannot round an array of dtype {a.dtype} to {fmt.name}")
    src = source_format(a.dtype)
    out_fmt = get(container_name(src, a.dtype.kind in "iu", fmt))
    if src is not None and not src.is_float and holds(fmt, src):
        return a.astype(out_fmt.numpy_dtype)        # an integer format holding every input
    compiled = _round_native(a, fmt, rule, mode, seed, start, out_fmt.numpy_dtype)
    if compiled is not None:
        return compiled
    beyond = beyond_float64(a)
    with np.errstate(invalid="ignore"):   # a signalling NaN widens to a quiet NaN, silently
        x = a.astype(np.float64)
    if beyond is not None:
        x[beyond] = 0.0                 # rounded exactly below, never through float64
    check_nan(x, fmt, np)
    # ufuncs return numpy scalars for 0-d input; keep an array so masks can assign into it
    # (+ 0.0 turns rint's -0.0 into 0: integers have no negative zero)
    u = uniforms(seed, start, x.size).reshape(x.shape) if mode == STOCHASTIC else None
    with np.errstate(invalid="ignore"):
        r = np.asarray(_np_round_float(x, fmt, mode, u) if fmt.is_float else
                       round_scaled(x, None, fmt, mode, np, u) + 0.0)
    r = np.asarray(bottom_of_range(r, x, fmt, np))
    sat = saturated_max(r, x, fmt, rule)
    r, over = apply_overflow(r, x, fmt, rule, np, mode)
    if rule == "raise" and over.any():
        raise_overflow(over, x, fmt)
    out = np.asarray(r).astype(out_fmt.numpy_dtype)
    if sat is not None:
        out[sat] = fmt.max
    if beyond is not None:
        for j in np.flatnonzero(beyond):
            i = np.unravel_index(j, a.shape)
            v = a[i]
            q = Fraction(int(v)) if a.dtype.kind in "iu" else Fraction(*v.as_integer_ratio())
            out[i] = round_rational(q, fmt, rule, mode, None if u is None else u[i])
    return out
