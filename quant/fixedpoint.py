"""Fixed-point requantization: multiply an integer accumulator by a real ratio, integers only.

Integer-only kernels (gemmlowp, TFLite, this package) never touch floats at run time: a real
ratio such as `input_scale / output_scale` is stored once as a 31-bit integer multiplier `m`
and a right shift `shift`, meaning `m * 2**-shift`, and applied as

    requantize(acc, m, shift) = round(acc * m / 2**shift) + zero_point.

Here that product is evaluated *exactly* (a 94-bit intermediate split over two int64 limbs) and
rounded once, half away from zero by default or half to even on request. TFLite's
`MultiplyByQuantizedMultiplier` rounds twice (a doubling high multiply, then a rounding shift),
so it can differ from this by one code on rare ties; this module is the exact reference.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Literal

import torch

import numfmt

from ._tensors import is_int
from .policy import overflow_error

__all__ = ["MULTIPLIER_BITS", "quantize_multiplier", "quantize_multipliers", "requantize",
           "rounding_right_shift"]

MULTIPLIER_BITS = 31
"""Multipliers m satisfy 2**30 <= m < 2**31 (a Q0.31 mantissa, as in gemmlowp)."""

Rounding = Literal["half_away", "half_even"]
_INT64 = numfmt.get("int64")
_INT64_MAX = int(_INT64.max)
_RESULT_LIMIT = 1 << 62


def quantize_multiplier(real: float | int | Fraction) -> tuple[int, int]:
    """The fixed-point multiplier `(m, shift)` of a real ratio.

    Parameters
    ----------
    real : float, int or Fraction
        Finite and > 0 (a float is taken at its exact binary value).

    Returns
    -------
    tuple of int
        `(m, shift)` with ``2**30 <= m < 2**31`` and ``m * 2**-shift`` closest to `real`:
        ``m = round_half_even(real * 2**shift)`` in exact rational arithmetic, so the relative
        error ``|m * 2**-shift / real - 1|`` is at most 2**-31. `shift` may be any integer; it
        is negative only for ``real >= 2**31``.

    Raises
    ------
    TypeError, ValueError
        For a non-number, a non-finite value or one <= 0.

    Examples
    --------
    >>> from quant import quantize_multiplier
    >>> quantize_multiplier(0.75)
    (1610612736, 31)
    """
    if isinstance(real, bool) or not isinstance(real, (int, float, Fraction)):
        raise TypeError(f"quantize_multiplier expects a real number, got {type(real).__name__}")
    if isinstance(real, float) and not math.isfinite(real):
        raise ValueError(f"quantize_multiplier needs a finite multiplier, got {real}")
    if real <= 0:
        raise ValueError(f"quantize_multiplier needs a multiplier > 0, got {real}")
    r = Fraction(real)
    # floor(log2 r) from the bit lengths, corrected by at most one step.
    e = r.numerator.bit_length() - r.denominator.bit_length()
    if r < Fraction(2) ** e:
        e -= 1
    shift = (MULTIPLIER_BITS - 1) - e          # puts r * 2**shift in [2**30, 2**31)
    m = round(r * Fraction(2) ** shift)        # Fraction.__round__ rounds half to even
    if m == 1 << MULTIPLIER_BITS:              # rounded up into the next binade
        m >>= 1
        shift -= 1
    return m, shift


def quantize_multipliers(reals: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Elementwise `quantize_multiplier` (e.g. per-channel ratios).

    Parameters
    ----------
    reals : torch.Tensor
        Floating-point ratios, each finite and > 0, taken at their exact float64 values.

    Returns
    -------
    tuple of torch.Tensor
        int64 `(m, shift)` of the same shape. Meant for per-channel sizes (the loop runs in
        Python, once per element).
    """
    if not isinstance(reals, torch.Tensor) or not reals.is_floating_point():
        raise TypeError("quantize_multipliers expects a floating-point tensor of ratios")
    pairs = [quantize_multiplier(float(r)) for r in reals.detach().to(torch.float64).reshape(-1)]
    m = torch.tensor([p[0] for p in pairs], dtype=torch.int64).reshape(reals.shape)
    s = torch.tensor([p[1] for p in pairs], dtype=torch.int64).reshape(reals.shape)
    return m, s


def _as_int64(x: torch.Tensor | int, name: str) -> torch.Tensor:
    if is_int(x):
        return torch.tensor(int(x), dtype=torch.int64)
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be an integer or an integer tensor, got {type(x).__name__}")
    if x.is_floating_point() or x.is_complex() or x.dtype == torch.bool:
        raise TypeError(f"{name} must be an integer tensor, got {x.dtype}")
    return x.to(torch.int64)


def _round_mul_shift(acc: torch.Tensor, m: torch.Tensor, shift: torch.Tensor,
                     rounding: Rounding, op: str) -> torch.Tensor:
    """Exact `round(acc * m / 2**shift)` for int64 acc, 0 <= m < 2**31, any integer shift.

    The int64 minimum -2**63 has no int64 magnitude; it is taken as 2**62 * 2 with one shift
    less, which is the same product exactly.
    """
    shift_in = shift
    at_min = acc == int(_INT64.lowest)
    shift = shift - at_min.to(torch.int64) if bool(at_min.any()) else shift
    sign = torch.where(acc < 0, -1, 1)
    mag = torch.where(at_min, 1 << 62, acc).abs()
    # P = |acc| * m as two limbs: P = H * 2**32 + L with 0 <= L < 2**32, H < 2**63.
    p_lo = torch.bitwise_and(mag, 0xFFFFFFFF) * m              # < 2**63
    p_hi = torch.bitwise_right_shift(mag, 32) * m              # < 2**62
    L = torch.bitwise_and(p_lo, 0xFFFFFFFF)
    H = p_hi + torch.bitwise_right_shift(p_lo, 32)

    s = torch.broadcast_to(shift, H.shape) if shift.dim() else shift
    # Shift amounts are clamped into [0, 63] in every branch; torch.where picks the valid one.
    # Branch A: shift >= 33 (everything comes from H, L only feeds the sticky bit).
    t = (s - 32).clamp(1, 63)
    qa = torch.bitwise_right_shift(H, t)
    half_a = torch.bitwise_and(torch.bitwise_right_shift(H, t - 1), 1)
    mask_a = torch.where(t - 1 >= 63, _INT64_MAX,
                         torch.bitwise_left_shift(torch.ones_like(t), (t - 1).clamp(0, 62)) - 1)
    sticky_a = (torch.bitwise_and(H, mask_a) != 0) | (L != 0)
    # Branch B: 1 <= shift <= 32 (quotient spans both limbs; overflows if H >= 2**(31 + shift)).
    u = s.clamp(1, 32)
    qb = torch.bitwise_left_shift(H, 32 - u) + torch.bitwise_right_shift(L, u)
    half_b = torch.bitwise_and(torch.bitwise_right_shift(L, u - 1), 1)
    sticky_b = torch.bitwise_and(L, torch.bitwise_left_shift(torch.ones_like(u), u - 1) - 1) != 0
    over_b = torch.bitwise_right_shift(H, (31 + u).clamp(max=63)) != 0
    # Branch C: shift <= 0 (exact left shift; overflows unless P << -shift < 2**63).
    v = (-s).clamp(0, 63)
    p_small = H < (1 << 31)
    P = torch.bitwise_left_shift(torch.where(p_small, H, 0), 32) + L
    qc = torch.bitwise_left_shift(P, v.clamp(max=62))
    over_c = (~p_small) | ((v >= 63) & (P != 0)) | \
        (torch.bitwise_right_shift(P, (63 - v).clamp(0, 63)) != 0)

    in_a, in_b = s >= 33, (s >= 1) & (s <= 32)
    q = torch.where(in_a, qa, torch.where(in_b, qb, qc))
    half = torch.where(in_a, half_a, torch.where(in_b, half_b, 0))
    sticky = torch.where(in_a, sticky_a, torch.where(in_b, sticky_b, False))
    overflow = torch.where(in_a, False, torch.where(in_b, over_b, over_c))
    if rounding == "half_away":
        up = half
    else:
        up = half * (sticky | (torch.bitwise_and(q, 1) == 1)).to(torch.int64)
    q = q + up
    overflow = overflow | (q >= _RESULT_LIMIT)
    if bool(overflow.any()):
        def exact(i: int) -> int:
            def at(t: torch.Tensor) -> int:
                return int(torch.broadcast_to(t, acc.shape).reshape(-1)[i])
            return round(Fraction(at(acc) * at(m)) / Fraction(2) ** at(shift_in))

        raise overflow_error(op, torch.broadcast_to(overflow, acc.shape), exact,
                             -_RESULT_LIMIT + 1, _RESULT_LIMIT - 1,
                             "the requantized magnitude must stay below 2**62",
                             what="requantized accumulator")
    return sign * q


def requantize(acc: torch.Tensor, multiplier: torch.Tensor | int, shift: torch.Tensor | int,
               zero_point: torch.Tensor | int = 0, rounding: Rounding = "half_away"
               ) -> torch.Tensor:
    """Exact ``round(acc * multiplier * 2**-shift) + zero_point`` as an int64 tensor.

    This is the one reference requantizer of quant (the fused integer pipeline's
    `quant.integer.linear.requantize_ties_up` differs only in its tie rule, see there).

    Parameters
    ----------
    acc : torch.Tensor
        Integers of any integer dtype (e.g. int32 or int64 matmul accumulators), the int64
        minimum included.
    multiplier : int or torch.Tensor
        In [0, 2**31) (as `quantize_multiplier` returns), broadcastable against `acc`.
    shift : int or torch.Tensor
        Any integer (negative means a left shift), broadcastable.
    zero_point : int or torch.Tensor
        Added after the rounding; |zero_point| <= 2**31.
    rounding : {'half_away', 'half_even'}
        Ties away from zero (symmetric in sign, TFLite's convention) or to even (torch.round).

    Returns
    -------
    torch.Tensor
        int64: the product formed exactly (no int64 overflow for any int64 `acc`) and rounded
        once. Narrowing to 8-bit codes is a separate, policy-checked step (`quant.narrow`).

    Raises
    ------
    QuantOverflowError
        If the rounded magnitude reaches 2**62 (the message names the requantized accumulator
        and its exact value).

    Examples
    --------
    >>> import torch, quant
    >>> quant.requantize(torch.tensor([-2**63, 7]), 2**30, 40).tolist()
    [-9007199254740992, 0]
    """
    if rounding not in ("half_away", "half_even"):
        raise ValueError(f"unknown rounding {rounding!r}; use 'half_away' or 'half_even'")
    acc64 = _as_int64(acc, "acc")
    m = _as_int64(multiplier, "multiplier")
    s = _as_int64(shift, "shift")
    zp = _as_int64(zero_point, "zero_point")
    if bool((m < 0).any()) or bool((m >= (1 << MULTIPLIER_BITS)).any()):
        raise ValueError("multiplier must lie in [0, 2**31); build it with quantize_multiplier")
    try:
        shape = torch.broadcast_shapes(acc64.shape, m.shape, s.shape, zp.shape)
    except RuntimeError as e:
        raise ValueError(f"requantize: cannot broadcast acc {tuple(acc64.shape)}, multiplier "
                         f"{tuple(m.shape)}, shift {tuple(s.shape)} and zero_point "
                         f"{tuple(zp.shape)}") from e
    acc64 = torch.broadcast_to(acc64, shape)
    if bool((zp.abs() > (1 << 31)).any()):
        raise ValueError("zero_point magnitude must not exceed 2**31")
    return _round_mul_shift(acc64, m, s, rounding, "requantize") + zp


def rounding_right_shift(x: torch.Tensor, shift: torch.Tensor | int,
                         rounding: Rounding = "half_away") -> torch.Tensor:
    """Exact ``round(x / 2**shift)`` of an integer tensor, as int64.

    Parameters
    ----------
    x : torch.Tensor
        Integers, |x| < 2**62.
    shift : int or torch.Tensor
        >= 0, broadcastable against `x`.
    rounding : {'half_away', 'half_even'}
        As in `requantize`.

    Returns
    -------
    torch.Tensor

    Raises
    ------
    QuantOverflowError
        Beyond |x| < 2**62, as for `requantize`.

    Notes
    -----
    The integer-only division by a power of two used between fixed-point stages.
    """
    s = _as_int64(shift, "shift")
    if bool((s < 0).any()):
        raise ValueError("rounding_right_shift needs shift >= 0")
    # Multiplying by 2**30 and shifting 30 further keeps the arithmetic in requantize's domain.
    return requantize(x, 1 << 30, s + 30, 0, rounding)
