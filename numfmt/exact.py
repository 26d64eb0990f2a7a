"""Exact (rational) rounding into a format, and the neighbours of a format value.

Everything here works on `fractions.Fraction` with integer arithmetic, so it is exact for any
input; it is the scalar reference that the vectorised `round_to` and the exp bounds stand on.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Literal

from numfmt.format import Format

Mode = Literal["nearest", "floor", "ceil"]


def _floor_log2(q: Fraction) -> int:
    """floor(log2(q)) for q > 0, exactly."""
    e = q.numerator.bit_length() - q.denominator.bit_length()
    # 2**e is within a factor of two of q; correct by one step either way.
    if Fraction(2) ** e > q:
        e -= 1
    elif Fraction(2) ** (e + 1) <= q:
        e += 1
    return e


def quantum(fmt: Format, q: Fraction) -> Fraction:
    """Spacing of the format's grid in the binade holding |q| (ignoring the upper range limit).

    For floats this is 2**(max(floor(log2|q|), emin) - mantissa_bits); for integers, 1.
    """
    if not fmt.is_float:
        return Fraction(1)
    if q == 0:
        return fmt.smallest_subnormal_exact
    e = max(_floor_log2(abs(q)), fmt.emin)
    return Fraction(2) ** (e - fmt.mantissa_bits)


def round_exact(q: Fraction | int, fmt: Format, mode: Mode = "nearest") -> Fraction | float:
    """Round the rational ``q`` onto the format's grid, with unbounded exponent range.

    ``nearest`` breaks ties to the even grid point (round-to-nearest-even); ``floor`` and
    ``ceil`` round toward -inf / +inf. The result is a `Fraction` on the format's grid; a
    result beyond the finite range is returned as it is (``> fmt.max``) so that callers apply
    their own overflow rule. Formats without subnormals flush to zero or the tiny normal.
    """
    q = Fraction(q)
    if q == 0:
        return Fraction(0)
    step = quantum(fmt, q)
    k = q / step
    if mode == "nearest":
        n = round(k)  # Fraction.__round__ rounds half to even
    elif mode == "floor":
        n = math.floor(k)
    elif mode == "ceil":
        n = math.ceil(k)
    else:
        raise ValueError(f"mode must be 'nearest', 'floor' or 'ceil', not {mode!r}")
    r = n * step
    if fmt.is_float and not fmt.has_subnormals and 0 < abs(r) < fmt.tiny_exact:
        raise NotImplementedError(f"{fmt.name}: rounding without subnormals is not modelled")
    return r


def next_up(x: Fraction | float | int, fmt: Format) -> Fraction | None:
    """Smallest format value greater than the format value ``x``; None above the max."""
    x = Fraction(x)
    if not fmt.is_float:                 # two's complement is not symmetric: no mirroring
        return x + 1 if x + 1 <= fmt.max_exact else None
    if x >= fmt.max_exact:
        return None
    if x < 0:
        d = next_down(-x, fmt)
        return None if d is None else -d
    return x + quantum(fmt, x)


def next_down(x: Fraction | float | int, fmt: Format) -> Fraction | None:
    """Largest format value less than the format value ``x``; None below the lowest."""
    x = Fraction(x)
    if not fmt.is_float:
        return x - 1 if x - 1 >= fmt.lowest_exact else None
    if x <= fmt.lowest_exact:
        return None
    if x <= 0:
        u = next_up(-x, fmt)
        return None if u is None else -u
    # At a power of two the grid below is twice as fine as the one above.
    return x - quantum(fmt, x - quantum(fmt, x) / 2)


def is_representable(x: Fraction | float | int, fmt: Format) -> bool:
    """Whether the finite number ``x`` is exactly a value of the format."""
    x = Fraction(x)
    if not fmt.lowest_exact <= x <= fmt.max_exact:
        return False
    return round_exact(x, fmt) == x
