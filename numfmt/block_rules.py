"""The scale rules and the exact element rounding of block-scaled formats, vectorised in torch.

Every function here takes the blocks as a float64 tensor of shape ``(..., num_blocks,
block_size)`` holding the input exactly (float16/bf16/float32 widen to float64 without
rounding) and returns exact results: exponents as integers, values as float64 numbers that
float64 holds exactly. Comparisons against products of a few-bit grid value and a scale are
exact because those products carry at most 31 significant bits; no quotient is ever rounded
before the one rounding into the target format. The rules are defined in `numfmt.blocks`.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from numfmt.exact import round_exact
from numfmt.format import Format
from numfmt.registry import get

__all__ = ["mx_scale_exponents", "tensor_scale_fp32", "grid_round", "grid_round_stochastic",
           "grid_overflow",
           "positive_grid", "E8M0_MIN_EXP", "E8M0_MAX_EXP"]

E8M0_MIN_EXP, E8M0_MAX_EXP = -127, 127


def mx_scale_exponents(amax, rule: str, emax_elem: int, mantissa_bits: int,
                       max_elem: Fraction):
    """The unclamped E8M0 exponent ``e`` of each block for an MX rule (int64 tensor).

    Parameters
    ----------
    amax : torch.Tensor
        float64 block maxima of |x|, finite and >= 0 (NaN/inf blocks are handled by the caller).
    rule : {"floor", "ceil", "even", "rceil"}
        The rule, as `numfmt.blocks` defines it.
    emax_elem, mantissa_bits : int
        The element's top-binade exponent and fraction bits (``m`` of ``even``).
    max_elem : Fraction
        The element's largest value (``rceil``).

    Returns
    -------
    torch.Tensor
        int64 exponents before clamping; an all-zero block gives -127 (the smallest scale).
        Values below -127 or above 127 are the caller's to clamp or reject.

    Notes
    -----
    ``torch.frexp`` gives ``amax = mant * 2**(f + 1)`` with ``0.5 <= mant < 1`` exactly, also for
    float64 subnormals, so ``f = floor(log2(amax))`` is exact and every test below compares the
    exact mantissa with a few-bit constant.
    """
    import torch

    mant, ex = torch.frexp(amax)
    f = ex.to(torch.int64) - 1
    if rule == "floor":
        e = f - emax_elem
    elif rule == "ceil":
        e = f + (mant != 0.5).to(torch.int64) - emax_elem
    elif rule == "even":
        # amax rounded to m + 1 significant bits (ties away) reaches 2**(f + 1)
        e = f + (mant >= 1.0 - 2.0 ** -(mantissa_bits + 2)).to(torch.int64) - emax_elem
    elif rule == "rceil":
        # smallest e with amax <= max_elem * 2**e: compare 2 * mant with max_elem / 2**emax_elem
        top = float(max_elem / Fraction(2) ** emax_elem)          # in [1, 2), few bits: exact
        e = f - emax_elem + (2.0 * mant > top).to(torch.int64)
    else:
        raise ValueError(f"rule {rule!r} is not an MX scale rule")
    return torch.where(amax == 0, torch.full_like(e, E8M0_MIN_EXP), e)


def tensor_scale_fp32(amax: float, scale_max: Fraction, elem_max: Fraction) -> float:
    """NVFP4's FP32 tensor scale ``S = fp32(amax / (scale_max * elem_max))``, rounded once.

    Parameters
    ----------
    amax : float
        The largest finite |x| of the tensor.
    scale_max, elem_max : Fraction
        448 (E4M3) and 6 (E2M1).

    Returns
    -------
    float
        The exact quotient rounded to nearest even into FP32 (one rounding, not float64 first);
        1.0 for an all-zero tensor; raised to FP32's smallest subnormal 2**-149 if it would
        round to 0, lowered to FP32's max if it would overflow.
    """
    if amax == 0:
        return 1.0
    fp32 = get("fp32")
    s = round_exact(Fraction(amax) / (scale_max * elem_max), fp32)
    s = min(max(s, fp32.smallest_subnormal_exact), fp32.max_exact)
    return float(s)


def positive_grid(fmt: Format, shift: int = 0) -> np.ndarray:
    """The non-negative finite values of ``fmt`` (times ``2**shift``), ascending, float64.

    Parameters
    ----------
    fmt : Format
        An element or scale format of at most 24 bits.
    shift : int
        An implied power of two (MXINT8: -6).

    Returns
    -------
    numpy.ndarray
        For the float formats here (and int8's positive half) entry i is the value of
        magnitude code i, so an index's parity is the parity of the code's last mantissa bit.

    Examples
    --------
    >>> positive_grid(get("fp4_e2m1fn")).tolist()
    [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0]
    """
    v = fmt.finite_values()
    return np.ldexp(v[v >= 0], shift)


def grid_round(mag, scale, grid: np.ndarray):
    """Index into ``grid`` of ``mag / scale`` rounded to nearest, ties to the even index.

    Parameters
    ----------
    mag : torch.Tensor
        float64 magnitudes, shape ``(..., n, block)``.
    scale : torch.Tensor
        float64 positive scales, shape ``(..., n, 1)`` (broadcasting) or a 1-element tensor;
        each ``scale * midpoint`` must be exact in float64 (few-bit scales and grids).
    grid : numpy.ndarray
        Ascending non-negative values starting at 0 (`positive_grid`).

    Returns
    -------
    torch.Tensor
        int64 indices in ``[0, len(grid) - 1]``: values beyond the top saturate to the last.

    Notes
    -----
    The comparison is ``mag`` against ``scale * midpoint`` for every midpoint between grid
    neighbours, exact, so the quotient is never formed (it is rarely a float64 number).
    """
    import torch

    mids = torch.tensor((grid[:-1] + grid[1:]) / 2, dtype=torch.float64, device=mag.device)
    odd = torch.arange(len(mids), device=mag.device) % 2 == 1
    if scale.numel() == 1:                        # one scale: a binary search per element
        thr = (mids * scale.reshape(())).contiguous()
        idx = torch.searchsorted(thr, mag.contiguous(), right=False)
        hit = idx < len(mids)
        tie = hit & (thr[idx.clamp_max(len(mids) - 1)] == mag)
        return idx + (tie & odd[idx.clamp_max(len(mids) - 1)]).to(torch.int64)
    thr = scale.unsqueeze(-1) * mids                                     # (..., n, 1, M)
    m = mag.unsqueeze(-1)
    above = (m > thr).sum(-1)
    ties = ((m == thr) & odd).sum(-1)
    return (above + ties).to(torch.int64)


def grid_overflow(mag, scale, top: Fraction, ulp_top: Fraction, top_is_odd: bool):
    """Mask of the magnitudes whose nearest-even rounding of ``mag / scale`` would pass ``top``.

    Parameters
    ----------
    mag, scale : torch.Tensor
        float64 magnitudes and (broadcasting) positive scales; ``scale * (top + ulp_top / 2)``
        must be exact in float64.
    top, ulp_top : Fraction
        The largest element and the grid step just below it (the step beyond it is the same).
    top_is_odd : bool
        Whether ``top``'s last significand digit is odd.

    Returns
    -------
    torch.Tensor
        bool: ``mag / scale`` overflows exactly when it exceeds ``top + ulp_top / 2``, or equals
        it and ``top`` is odd (the tie then goes to the next, even, grid point).
    """
    mid = float(top + ulp_top / 2) * scale
    return (mag > mid) | ((mag == mid) & top_is_odd)


def grid_round_stochastic(mag, scale, grid: np.ndarray, u):
    """Index into ``grid`` of ``mag / scale`` rounded stochastically, as `numfmt.round_to` does.

    Parameters
    ----------
    mag : torch.Tensor
        float64 magnitudes ``(..., n, block)``.
    scale : torch.Tensor
        float64 positive scales ``(..., n, 1)``.
    grid : numpy.ndarray
        Ascending non-negative values starting at 0 (`positive_grid`).
    u : torch.Tensor
        float64 uniforms ``K / 2**53`` in [0, 1), one per magnitude (`numfmt.stochastic`).

    Returns
    -------
    torch.Tensor
        int64 indices: between the grid neighbours ``lo <= q < hi`` of ``q = mag / scale`` the
        upper one exactly when ``u < (q - lo) / (hi - lo)``; ``q`` beyond the top saturates.

    Notes
    -----
    The fraction is formed in float64 (relative error below 2**-50); where ``u`` lies within
    2**-48 of it the comparison is redone in Fractions, so every decision is the exact one.
    """
    import torch

    g = torch.tensor(grid, dtype=torch.float64, device=mag.device)
    lo_idx = (torch.searchsorted(g, (mag / scale).contiguous(), right=True) - 1).clamp(
        0, len(grid) - 1).expand(mag.shape)
    top = len(grid) - 1
    for _ in range(2):          # the float64 quotient may sit one grid point off: move lo
        lo, hi = g[lo_idx], g[(lo_idx + 1).clamp_max(top)]
        # exact: lo * scale and (hi - lo) * scale have few bits, and mag - lo * scale is a
        # Sterbenz subtraction (lo * scale <= mag < 2 lo * scale) or mag itself (lo = 0)
        frac = torch.where(hi > lo, (mag - lo * scale) / ((hi - lo) * scale), 0.0)
        lo_idx = torch.where(frac < 0, lo_idx - 1, torch.where((frac >= 1) & (lo_idx < top),
                                                              lo_idx + 1, lo_idx))
    lo, hi = g[lo_idx], g[(lo_idx + 1).clamp_max(top)]
    frac = torch.where(hi > lo, (mag - lo * scale) / ((hi - lo) * scale), 0.0)
    up = u < frac
    unsure = ((u - frac).abs() <= frac.abs() * 2.0 ** -48) & (hi > lo)
    for i in torch.nonzero(unsure).tolist():          # rare: a uniform next to the fraction
        i, s = tuple(i), scale.expand_as(mag)[tuple(i)]
        q = Fraction(float(mag[i])) / Fraction(float(s))
        low, high = Fraction(float(lo[i])), Fraction(float(hi[i]))
        up[i] = Fraction(float(u[i])) < (q - low) / (high - low)
    # below: exact lo (q on the grid) never moves; at or above the top: the top
    return torch.where(up & (hi > lo), lo_idx + 1, lo_idx)
