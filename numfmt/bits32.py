"""Rounding float32 into formats with float32's exponent range (bf16, TF32) on the bit pattern.

Such a format keeps float32's 8 exponent bits and the top m of its 23 fraction bits, so every
mode is integer arithmetic on the sign-magnitude bits, dropping k = 23 - m bits: clear them
(toward zero), add one unit of the kept last place where they are nonzero and the direction
asks (up / down by sign), add half a unit (nearest; ties to even by adding one less when the
kept last bit is even), set the kept last bit where they are nonzero (odd), or add the top k
bits of the element's 53-bit uniform (stochastic: carry iff those bits are below the dropped
ones, exactly the float64 path's u < fraction). The encoding is monotone and a carry ripples
into the exponent, so subnormals, binade crossings and overflow to inf come out right; NaNs
are copied through.

It runs in chunks on a few threads (`numfmt.threads.run_chunks`): with one core busy elsewhere,
each op on a chunk runs inline instead of waiting for an OpenMP team.
"""

from __future__ import annotations

from typing import Any

from numfmt.stochastic import uniform_bits
from numfmt.threads import run_chunks

__all__ = ["round_float32_bits", "BIT_MODES"]

BIT_MODES = ("nearest_even", "nearest_away", "toward_zero", "up", "down", "odd", "stochastic")


def _round_magnitude(mag: Any, neg: Any, k: int, mode: str, r: Any) -> Any:
    """The rounded magnitude bits (int32) of one chunk."""
    import torch

    low_mask = (1 << k) - 1
    if mode == "nearest_even":
        lsb = torch.bitwise_right_shift(mag, k).bitwise_and_(1)
        return lsb.add_(mag).add_((1 << (k - 1)) - 1).bitwise_and_(~low_mask)
    if mode == "nearest_away":
        return (mag + (1 << (k - 1))).bitwise_and_(~low_mask)
    if mode == "stochastic":                # carry iff r < dropped bits
        return (mag + (low_mask - r)).bitwise_and_(~low_mask)
    trunc = mag & ~low_mask
    inexact = (mag & low_mask) != 0
    if mode == "toward_zero":
        return trunc
    if mode == "odd":
        return trunc | (inexact.to(torch.int32) << k)
    away = inexact & (neg if mode == "down" else ~neg)      # up: positives, down: negatives
    return trunc + (away.to(torch.int32) << k)


def round_float32_bits(t: Any, mantissa_bits: int, mode: str, seed: int | None = None) -> Any:
    """A float32 tensor rounded to ``mantissa_bits`` fraction bits, float32's exponent range.

    Parameters
    ----------
    t : torch.Tensor
        float32, any shape and device; not modified.
    mantissa_bits : int
        Kept fraction bits m, 1 <= m <= 22 (bf16: 7, TF32: 10).
    mode : str
        One of `BIT_MODES`.
    seed : int, optional
        The stochastic mode's seed (`numfmt.stochastic`); element i uses the top 23 - m bits
        of its 53-bit uniform, the same draw as the float64 path.

    Returns
    -------
    torch.Tensor
        float32, same shape and device: IEEE results (overflow to inf where the mode rounds
        past the max, never for toward_zero, odd, or down on positives / up on negatives).
    """
    import torch

    k = 23 - mantissa_bits
    src = t.detach().contiguous().reshape(-1)
    res = torch.empty_like(src)
    bits, obits = src.view(torch.int32), res.view(torch.int32)

    def job(lo: int, hi: int) -> None:
        b = bits[lo:hi]
        r = None
        if mode == "stochastic":
            r = torch.bitwise_right_shift(uniform_bits(seed, lo, hi - lo, torch, b.device),
                                          53 - k).to(torch.int32)
        if mode in ("up", "down"):
            neg = b < 0
            out = _round_magnitude(b & 0x7FFFFFFF, neg, k, mode, r)
            out = torch.where(neg, out | (-2**31), out)
        else:
            # symmetric in the sign: the same arithmetic on the signed bits moves the magnitude
            # (a carry reaches the sign bit only from NaN, copied through below)
            out = _round_magnitude(b, None, k, mode, r)
        x = src[lo:hi]
        obits[lo:hi] = torch.where(torch.isnan(x), b, out)

    if src.device.type == "cpu":
        run_chunks(job, src.numel())
    else:
        job(0, src.numel())
    return res.view(t.shape)
