"""Exact (rational) rounding into a format, the neighbours of a format value, and exact search.

Everything here works on `fractions.Fraction` with integer arithmetic, so it is exact for any
input; it is the scalar reference that the vectorised `round_to`, the exp bounds and the softmax
limits stand on. The format values are numbered in order (`ordinal`), so that a search for the
cut of a monotone predicate (`last_true`) bisects codes instead of walking value by value.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any, Callable, Literal

from numfmt.format import Format
from numfmt.registry import get

__all__ = ["RoundingMode", "ROUNDING_MODES", "floor_log2", "quantum", "round_exact", "next_up",
           "next_down", "ordinal", "from_ordinal", "last_true"]

RoundingMode = Literal["nearest_even", "nearest_away", "toward_zero", "up", "down", "odd",
                       "nearest", "floor", "ceil"]
# The deterministic modes; "nearest", "floor" and "ceil" are older names of the first, "down", "up".
ROUNDING_MODES: tuple[str, ...] = ("nearest_even", "nearest_away", "toward_zero", "up", "down",
                                   "odd")
_ALIASES = {"nearest": "nearest_even", "floor": "down", "ceil": "up"}


def floor_log2(q: Fraction | int) -> int:
    """floor(log2(q)) of a positive rational, exactly (from bit lengths, no float).

    Parameters
    ----------
    q : Fraction or int
        A positive number.

    Returns
    -------
    int
        The e with 2**e <= q < 2**(e+1).

    Raises
    ------
    ValueError
        If q <= 0.

    Examples
    --------
    >>> floor_log2(Fraction(3, 8))
    -2
    """
    q = Fraction(q)
    if q <= 0:
        raise ValueError(f"floor_log2 needs a positive number, not {q}")
    e = q.numerator.bit_length() - q.denominator.bit_length()
    # 2**e is within a factor of two of q; correct by one step either way.
    if (q.numerator << max(-e, 0)) < (q.denominator << max(e, 0)):
        e -= 1
    return e


def quantum(fmt: Any, q: Fraction | int) -> Fraction:
    """Spacing of the format's grid in the binade holding |q| (ignoring the upper range limit).

    Parameters
    ----------
    fmt : Format or anything `numfmt.get` accepts
    q : Fraction or int
        Any rational; 0 gives the spacing of the bottom (subnormal) binade.

    Returns
    -------
    Fraction
        2**(max(floor(log2|q|), emin) - mantissa_bits) for floats; 1 for integers.
    """
    fmt = get(fmt)
    if not fmt.is_float:
        return Fraction(1)
    if q == 0:
        return fmt.smallest_subnormal_exact
    e = max(floor_log2(abs(Fraction(q))), fmt.emin)
    return Fraction(2) ** (e - fmt.mantissa_bits)


def _mode(mode: str) -> str:
    m = _ALIASES.get(mode, mode)
    if m not in ROUNDING_MODES + ("stochastic",):
        raise ValueError(f"rounding mode must be one of {ROUNDING_MODES} (or 'nearest', 'floor', "
                         f"'ceil'), not {mode!r}")
    return m


def _round_integer(k: Fraction, mode: str, u: Fraction | float | None = None) -> int:
    """The integer that ``mode`` rounds the rational ``k`` to (``u``: stochastic's uniform)."""
    lo = math.floor(k)
    if lo == k:
        return lo
    if mode == "stochastic":                    # away from zero iff u < the distance from
        t = math.floor(abs(k))                  # the neighbour nearer zero
        step = 1 if Fraction(u) < abs(k) - t else 0
        return (t + step) if k > 0 else -(t + step)
    if mode == "down":
        return lo
    if mode == "up":
        return lo + 1
    if mode == "toward_zero":
        return lo + 1 if k < 0 else lo
    if mode == "odd":
        return lo if lo % 2 else lo + 1
    twice = 2 * (k - lo)
    if twice != 1:
        return lo + (1 if twice > 1 else 0)
    if mode == "nearest_away":
        return lo + 1 if k > 0 else lo
    return lo if lo % 2 == 0 else lo + 1            # nearest_even


def _round_no_fraction(q: Fraction, fmt: Format, mode: str) -> Fraction:
    """Rounding in a normal binade of a format without fraction bits (E8M0, P3109 p=1): the
    neighbours 2**e and 2**(e+1) have consecutive codes e + bias and e + bias + 1, and the
    parity that nearest_even and odd look at is the code's."""
    e = floor_log2(abs(q))
    code = e + fmt.bias
    t = abs(q) / Fraction(2) ** e - 1 + code          # in [code, code + 1)
    mirrored = {"up": "down", "down": "up"}.get(mode, mode) if q < 0 else mode
    c = _round_integer(t, mirrored)
    r = Fraction(2) ** (e + c - code)
    return -r if q < 0 else r


def round_exact(q: Fraction | int | float, fmt: Any, mode: RoundingMode = "nearest_even",
                u: Fraction | float | None = None) -> Fraction:
    """Round the rational ``q`` onto the format's grid, with unbounded exponent range above.

    Parameters
    ----------
    q : Fraction, int or float
        The exact value (a float is taken exactly).
    fmt : Format or anything `numfmt.get` accepts
    mode : str
        ``"nearest_even"`` (ties to the even grid point), ``"nearest_away"`` (ties away from
        zero), ``"toward_zero"``, ``"up"`` (toward +inf), ``"down"`` (toward -inf) or ``"odd"``
        (an inexact result takes the neighbour with an odd last digit), or ``"stochastic"``
        (away from zero iff ``u`` < the distance from the neighbour nearer zero, in units of
        the spacing).
        ``"nearest"``, ``"floor"`` and ``"ceil"`` are older names of nearest_even, down, up.
    u : Fraction or float, optional
        The uniform in [0, 1) that ``"stochastic"`` compares with (required there).

    Returns
    -------
    Fraction
        A point of the format's grid (subnormal spacing below the tiny normal). A result beyond
        the finite range is returned as it is (``> fmt.max_exact``, or below ``lowest_exact``
        for negative input into unsigned formats) so that callers apply their own overflow
        rule. In a format without zero (E8M0) a positive q below the smallest value gives it.

    Raises
    ------
    ValueError
        For an unknown mode, or a non-finite float.

    Examples
    --------
    >>> round_exact(Fraction(1, 3), "fp16")
    Fraction(1365, 4096)
    """
    fmt = get(fmt)
    m = _mode(mode)
    if isinstance(q, float) and not math.isfinite(q):
        raise ValueError(f"round_exact needs a finite number, not {q}")
    if m == "stochastic" and u is None:
        raise ValueError("round_exact(..., 'stochastic') needs the uniform u in [0, 1)")
    q = Fraction(q)
    if q == 0:
        return Fraction(0)
    step = quantum(fmt, q)
    if fmt.is_float and fmt.mantissa_bits == 0 and abs(q) >= fmt.tiny_exact \
            and m in ("nearest_even", "odd"):         # the modes that look at parity
        return _round_no_fraction(q, fmt, m)
    r = _round_integer(q / step, m, u) * step
    if fmt.is_float and not fmt.has_zero and q > 0 and r < fmt.tiny_exact:
        return fmt.tiny_exact          # no zero (E8M0): the smallest value is the nearest
    return r


def next_up(x: Fraction | float | int, fmt: Any) -> Fraction | None:
    """The smallest format value greater than the format value ``x``.

    Parameters
    ----------
    x : Fraction, float or int
        A finite value of the format (taken exactly).
    fmt : Format or anything `numfmt.get` accepts

    Returns
    -------
    Fraction or None
        None when ``x`` is the max (or above it).

    Examples
    --------
    >>> next_up(1, "fp16")
    Fraction(1025, 1024)
    """
    fmt = get(fmt)
    x = Fraction(x)
    if not fmt.is_float:                 # two's complement is not symmetric: no mirroring
        return x + 1 if x + 1 <= fmt.max_exact else None
    if x >= fmt.max_exact:
        return None
    if x < 0:
        d = next_down(-x, fmt)
        return None if d is None else -d
    return x + quantum(fmt, x)


def next_down(x: Fraction | float | int, fmt: Any) -> Fraction | None:
    """The largest format value less than the format value ``x``.

    Parameters
    ----------
    x : Fraction, float or int
        A finite value of the format (taken exactly).
    fmt : Format or anything `numfmt.get` accepts

    Returns
    -------
    Fraction or None
        None when ``x`` is the lowest value (or below it).
    """
    fmt = get(fmt)
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


def ordinal(x: Fraction | float | int, fmt: Any) -> int:
    """The position of the format value ``x`` in the ordered set of values (0 at zero).

    Parameters
    ----------
    x : Fraction, float or int
        A value of the format.
    fmt : Format or anything `numfmt.get` accepts

    Returns
    -------
    int
        Consecutive format values have consecutive ordinals, negative values negative ones: the
        sign-magnitude code order for floats (subnormals first), x itself for integers.
    """
    fmt = get(fmt)
    x = Fraction(x)
    if not fmt.is_float:
        return int(x)
    if x < 0:
        return -ordinal(-x, fmt)
    m = fmt.mantissa_bits
    if x < fmt.tiny_exact:
        return int(x / fmt.smallest_subnormal_exact)
    e = floor_log2(x)
    return (e - fmt.emin + 1) * 2**m + int(x / Fraction(2) ** (e - m)) - 2**m


def from_ordinal(k: int, fmt: Any) -> Fraction:
    """The format value at ordinal ``k``: the inverse of `ordinal` (unbounded above).

    Parameters
    ----------
    k : int
    fmt : Format or anything `numfmt.get` accepts

    Returns
    -------
    Fraction
    """
    fmt = get(fmt)
    if not fmt.is_float:
        return Fraction(k)
    if k < 0:
        return -from_ordinal(-k, fmt)
    m = fmt.mantissa_bits
    if k < 2**m:
        return k * fmt.smallest_subnormal_exact
    e = (k >> m) + fmt.emin - 1
    return (2**m + (k & (2**m - 1))) * Fraction(2) ** (e - m)


def last_true(pred: Callable[[Fraction], bool], fmt: Any,
              start: Fraction | float | int | None = None) -> Fraction | None:
    """The largest finite format value x with ``pred(x)``, for a predicate true below a cut.

    Parameters
    ----------
    pred : callable
        Monotone over the format's finite values: True up to some value, False after it.
    fmt : Format or anything `numfmt.get` accepts
    start : number, optional
        A guess near the cut (rounded down onto the grid and clamped to the range); 0 if omitted.

    Returns
    -------
    Fraction or None
        The cut, ``fmt.max_exact`` if pred holds everywhere, None if it holds nowhere.

    Notes
    -----
    Gallops from ``start`` in steps that double, then bisects ordinals: O(log distance) calls to
    ``pred``, so a guess that is far off costs a few dozen calls, not a walk.
    """
    fmt = get(fmt)
    lo_k, hi_k = ordinal(fmt.lowest_exact, fmt), ordinal(fmt.max_exact, fmt)
    guess = Fraction(0) if start is None else round_exact(start, fmt, "down")
    k = min(max(ordinal(min(max(guess, fmt.lowest_exact), fmt.max_exact), fmt), lo_k), hi_k)

    def ok(i: int) -> bool:
        return bool(pred(from_ordinal(i, fmt)))

    # Gallop away from the guess (up if it holds, down if not) until the answer flips.
    up = ok(k)
    known, step = k, 1
    while True:
        nxt = min(known + step, hi_k) if up else max(known - step, lo_k)
        if nxt == known:                     # ran into the end of the range
            return from_ordinal(known, fmt) if up else None
        if ok(nxt) != up:
            break
        known, step = nxt, step * 2
    good, bad = (known, nxt) if up else (nxt, known)
    while bad - good > 1:
        mid = (good + bad) // 2
        if ok(mid):
            good = mid
        else:
            bad = mid
    return from_ordinal(good, fmt)
