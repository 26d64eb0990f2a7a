"""Rounding modes on arrays: the integer step of rounding onto a format's grid, by mode.

`numfmt.round_to` scales each value by its binade's spacing (exact: a power of two), rounds
the scaled value s to an integer here, and scales back. Every step is exact float64 (or torch
float64) arithmetic, so the result is the one rounding of the input, in every mode:

* ``"nearest_even"``  nearest, ties to the even neighbour;
* ``"nearest_away"``  nearest, ties away from zero;
* ``"toward_zero"``, ``"up"`` (toward +inf), ``"down"`` (toward -inf);
* ``"odd"``           exact results stay, the others take the neighbour whose last digit is odd
  (round-to-odd: a later rounding to a format with at least two fewer digits is then correct).
* ``"stochastic"``    away from zero with probability equal to the distance from the neighbour
  nearer zero, in units of the spacing: iff u < |s| - floor(|s|), u a counter-based uniform of
  53 bits
  (`numfmt.stochastic`). The probability is exactly that fraction whenever it is a multiple of
  2**-53 (every input within 53 bits of the grid: all float64 inputs into a normal binade);
  otherwise it is that fraction rounded up to one (a bias below 2**-53 of a spacing).

In a format without fraction bits (E8M0, P3109 with p = 1) the last digit of a normal value's
code is its exponent's, so "even" and "odd" there look at the code (as gfloat does).
"""

from __future__ import annotations

from typing import Any

from numfmt.exact import ROUNDING_MODES

__all__ = ["ROUNDING_MODES", "STOCHASTIC", "check_mode", "round_scaled", "odd_code_tie",
           "clamps_high", "clamps_low"]

STOCHASTIC = "stochastic"

_ALIASES = {"nearest": "nearest_even", "floor": "down", "ceil": "up"}


def check_mode(rounding: Any) -> str:
    """The canonical name of a deterministic rounding mode.

    Parameters
    ----------
    rounding : str
        One of `ROUNDING_MODES` (or the older names "nearest", "floor", "ceil").

    Returns
    -------
    str

    Raises
    ------
    ValueError
        For anything else, listing the modes.
    """
    m = _ALIASES.get(rounding, rounding) if isinstance(rounding, str) else rounding
    if m not in ROUNDING_MODES + (STOCHASTIC,):
        raise ValueError(f"rounding must be one of {ROUNDING_MODES + ('stochastic',)}, "
                         f"not {rounding!r}")
    return m


def odd_code_tie(qexp: Any, fmt: Any, xp: Any) -> Any:
    """Where a format without fraction bits puts a tie 1.5 * 2**e under nearest_even.

    Parameters
    ----------
    qexp : array of int
        The binade exponents e.
    fmt : Format
        mantissa_bits == 0.
    xp : module
        numpy or torch.

    Returns
    -------
    array
        1 or 2 (the multiple of 2**e): the neighbour whose code is even. 2**e has code
        e + bias, 2**(e+1) the next one. (gfloat does the same; ml_dtypes and torch round
        such ties up in magnitude.)
    """
    return xp.where((qexp + fmt.bias) % 2 == 0, 1.0, 2.0)


def round_scaled(s: Any, qexp: Any, fmt: Any, mode: str, xp: Any, u: Any = None) -> Any:
    """The integer a mode rounds each scaled value ``s`` to (exact float64 arithmetic).

    Parameters
    ----------
    s : array
        float64 values divided by their binade's grid spacing 2**qexp.
    qexp : array of int
        Those spacings' exponents (used only by formats without fraction bits).
    fmt : Format
    mode : str
        A canonical mode of `ROUNDING_MODES`.
    xp : module
        numpy or torch.
    u : array, optional
        The uniforms of ``"stochastic"`` (the shape of ``s``).

    Returns
    -------
    array
        float64 integers (NaN and inf pass through).
    """
    if mode == STOCHASTIC:                             # on magnitudes: away from zero iff u < f
        a = xp.abs(s)
        t = xp.floor(a)
        return xp.copysign(xp.where(u < a - t, t + 1, t), s)  # a - t exact; keeps -0
    if mode == "nearest_even":
        k = xp.round(s) if xp.__name__ == "torch" else xp.rint(s)
        if fmt.is_float and fmt.mantissa_bits == 0:
            k = xp.where(xp.abs(s) == 1.5, xp.sign(s) * odd_code_tie(qexp, fmt, xp), k)
        return k
    if mode == "toward_zero":
        return xp.trunc(s)
    if mode == "up":
        return xp.ceil(s)
    if mode == "down":
        return xp.floor(s)
    t = xp.trunc(s)
    if mode == "nearest_away":
        # t + sign(s) where the dropped part is at least a half: s - t is exact
        return xp.where(xp.abs(s - t) >= 0.5, t + xp.sign(s), t)
    a = xp.abs(s)                                      # odd, on magnitudes
    lo = xp.floor(a)
    odd_lo = lo % 2 == 1
    if fmt.is_float and fmt.mantissa_bits == 0:        # the code's parity, normal binades
        odd_lo = xp.where(a >= 1, (qexp + fmt.bias) % 2 == 1, odd_lo)
    return xp.where(a == lo, s, xp.sign(s) * xp.where(odd_lo, lo, lo + 1))


def clamps_high(mode: str) -> bool:
    """Whether ``mode`` turns a result beyond +max into +max.

    Parameters
    ----------
    mode : str

    Returns
    -------
    bool
        True for toward_zero, down and odd (IEEE 754: they never round up past the max; odd
        as a sticky toward-zero).
    """
    return mode in ("toward_zero", "down", "odd")


def clamps_low(mode: str) -> bool:
    """Whether ``mode`` turns a result below the lowest value into the lowest value.

    Parameters
    ----------
    mode : str

    Returns
    -------
    bool
        True for toward_zero, up and odd (for unsigned formats the lowest value is then the
        nearest value above a negative input).
    """
    return mode in ("toward_zero", "up", "odd")
