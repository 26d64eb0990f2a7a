"""MX encoding of float32 (and float16 / bf16) tensors by float32 bit manipulation.

The same bits as the exact reference `numfmt.block_codec.block_encode` (nearest-even elements,
saturation), in a handful of whole-tensor torch passes and without the float64 copy:

* scales: the block amax in float32 (exact: a maximum rounds nothing) and the rule's exponent
  from `numfmt.block_rules.mx_scale_exponents` on the ``num_blocks`` maxima only;
* elements: ``y = x * 2**-e`` in float32 is exact unless ``y`` falls below float32's normal
  range, and then ``|y| < 2**-126`` is far below half the smallest element (>= 2**-18), so it
  rounds to (signed) zero either way;
* round to nearest even onto the element's grid on the bit pattern: in the normal range add
  half an element ulp, minus one unless the kept last bit is odd, and clear the dropped bits;
  below the element's smallest normal ``(|y| + C) - C`` with ``C = 2**(emin - m + 23)``, whose
  float32 sum is rounded by the FPU to a multiple of the subnormal step; then clamp to max;
* element codes: the rounded float32's exponent and top mantissa bits re-biased.
"""

from __future__ import annotations

import numpy as np

from numfmt import block_rules
from numfmt.block_checks import to_blocks
from numfmt.blocks import E8M0, BlockFormat

__all__ = ["encode_mx_float32", "encode_nvfp4_float32", "FAST_DTYPES"]

FAST_DTYPES = ("float16", "bfloat16", "float32")


def _code_table(fmt_elem):
    """uint8 magnitude code of each rounded float32 ``r`` in [0, max], indexed by
    ``bits(r) >> (23 - m)`` (exponent and the top m mantissa bits)."""
    import torch

    g = block_rules.positive_grid(fmt_elem).astype(np.float32)
    keys = g.view(np.int32) >> (23 - fmt_elem.mantissa_bits)
    table = np.zeros(int(keys[-1]) + 1, dtype=np.uint8)
    table[keys] = np.arange(len(g), dtype=np.uint8)
    return torch.from_numpy(table)


def _float_codes(mag, negative, fmt_elem):
    """Element codes of float32 magnitudes ``mag`` (already divided by the scale), in place.

    Round to nearest even at the magnitude's own binade (the element's subnormal step below
    its smallest normal) with the FPU: ``(mag + c) - c`` where ``c = 2**(E + 23 - m)`` and ``E``
    the binade exponent, so the sum's ulp is the element's step; clamp to max (saturation);
    then look the code up by the rounded number's exponent and top mantissa bits.
    """
    import torch

    m = fmt_elem.mantissa_bits
    bits = mag.view(torch.int32)
    c = (bits & 0x7F800000).clamp_min_((127 + fmt_elem.emin) << 23).add_((23 - m) << 23)
    cf = c.view(torch.float32)
    mag.add_(cf).sub_(cf).clamp_max_(float(fmt_elem.max_exact))
    key = bits.bitwise_right_shift_(23 - m)
    codes = _code_table(fmt_elem).index_select(0, key.view(-1)).view(key.shape)
    return codes.bitwise_or_(negative.to(torch.uint8) << (fmt_elem.bits - 1))


def _round_int_codes(y, fmt: BlockFormat):
    """MXINT8 codes: ``round(y * 2**-shift)`` to nearest even, saturated to [-127, 127]."""
    import torch

    k = torch.round(y * 2.0 ** -fmt.element_shift)
    lim = float(fmt.element_format.max_exact)
    k = k.clamp(-lim if fmt.symmetric else float(fmt.element_format.lowest_exact), lim)
    return k.to(torch.int8).view(torch.uint8)


def encode_mx_float32(x, fmt: BlockFormat, rule: str, axis: int):
    """(scale codes, element codes) of ``x`` (float16/bf16/float32) in an MX format.

    Parameters
    ----------
    x : torch.Tensor
        float16, bfloat16 or float32; ``axis`` already validated and non-negative.
    fmt : BlockFormat
        An MX format (E8M0 scales).
    rule : str
        One of ``fmt.rules``.
    axis : int

    Returns
    -------
    tuple of torch.Tensor
        uint8 scale codes ``(*other, n)`` and element codes ``(*other, n, block_size)``, equal
        to those of `numfmt.block_codec.block_encode` with ``rounding="nearest_even"`` and
        ``overflow="saturate"`` (tested bit for bit).
    """
    import torch

    blocks = to_blocks(x.detach().to(torch.float32), axis, fmt.block_size)
    amax = blocks.abs().amax(-1)
    special = ~torch.isfinite(amax)
    e = block_rules.mx_scale_exponents(torch.where(special, 0.0, amax).double(), rule,
                                       fmt.element_emax, fmt.element_mantissa_bits,
                                       fmt.element_max_exact)
    nan_block = special | (e > block_rules.E8M0_MAX_EXP)
    e = e.clamp(block_rules.E8M0_MIN_EXP, block_rules.E8M0_MAX_EXP)
    inv = torch.ldexp(torch.ones_like(amax, dtype=torch.float64), -e).to(torch.float32)
    torch_fp8 = fmt.element_format.torch_dtype if fmt.element_format.bits == 8 else None
    if torch_fp8 is not None and fmt.element_format.is_float:
        # torch's float32 -> FP8 cast is one nearest-even rounding; clamping first saturates
        lim = float(fmt.element_format.max_exact)
        y = (blocks * inv.unsqueeze(-1)).clamp_(-lim, lim)
        if bool(nan_block.any()):
            y.masked_fill_(nan_block.unsqueeze(-1), 0.0)
        codes = y.to(torch_fp8).view(torch.uint8)
    elif fmt.element_format.is_float:
        mag = blocks.abs().mul_(inv.unsqueeze(-1))
        negative = torch.signbit(blocks)
        if bool(nan_block.any()):                            # NaN blocks: zero elements
            mag.masked_fill_(nan_block.unsqueeze(-1), 0.0)
            negative.masked_fill_(nan_block.unsqueeze(-1), False)
        codes = _float_codes(mag, negative, fmt.element_format)
    else:
        y = blocks * inv.unsqueeze(-1)
        if bool(nan_block.any()):
            y.masked_fill_(nan_block.unsqueeze(-1), 0.0)
        codes = _round_int_codes(y, fmt)
    scodes = torch.where(nan_block, E8M0.nan_code, e + E8M0.bias).to(torch.uint8)
    return scodes, codes


def _float32_thresholds(t64, up: bool):
    """float32 ``t`` with ``x > t`` iff ``x > t64`` (``up=False``) or ``x >= t`` iff
    ``x >= t64`` (``up=True``) for every float32 ``x``: the float32 at or below ``t64``, or at
    or above it."""
    import torch

    t = t64.to(torch.float32)
    back = t.double()
    if up:
        return torch.where(back < t64, torch.nextafter(t, torch.full_like(t, np.inf)), t)
    return torch.where(back > t64, torch.nextafter(t, torch.full_like(t, -np.inf)), t)


def _count_passed(absb, thresholds):
    """uint8 count of the thresholds each magnitude passes (``>`` at even j, ``>=`` at odd j).

    ``absb`` is ``(*other, n, block)``; each threshold is ``(*other, n)`` (one per block).
    """
    import torch

    codes = torch.zeros(absb.shape, dtype=torch.uint8)
    passed = torch.empty(absb.shape, dtype=torch.bool)
    for j, t in enumerate(thresholds):
        (torch.ge if j % 2 else torch.gt)(absb, t.unsqueeze(-1), out=passed)
        codes.add_(passed)
    return codes


def encode_nvfp4_float32(x, fmt: BlockFormat, axis: int):
    """(scale codes, element codes, tensor scale) of float16/bf16/float32 ``x`` in NVFP4.

    The block scales come from the exact rule on the block maxima (`numfmt.block_rules`); each
    element's E2M1 code counts the rounding thresholds ``mid_j * s_block * S`` (exact in
    float64) that its magnitude passes, compared in float32 against the float32 neighbour of
    each threshold on the correct side, with ties (``>=``) at the odd midpoints: the same
    nearest-even codes as the reference, without forming a quotient.
    """
    import torch

    from numfmt.registry import get

    blocks = to_blocks(x.detach().to(torch.float32), axis, fmt.block_size)
    absb = blocks.abs()
    amax = absb.amax(-1)
    special = ~torch.isfinite(amax)
    finite = absb[special][torch.isfinite(absb[special])] if bool(special.any()) else absb[:0]
    big = max(float(torch.where(special, 0.0, amax).max()),
              float(finite.max()) if finite.numel() else 0.0)
    scale_fmt, f = get(fmt.scale), fmt.element_format
    s_t = (block_rules.tensor_scale_fp32(big, scale_fmt.max_exact, f.max_exact)
           if fmt.tensor_scale else 1.0)
    sgrid = block_rules.positive_grid(scale_fmt)
    unit = torch.tensor(s_t * float(f.max_exact), dtype=torch.float64)
    sidx = block_rules.grid_round(torch.where(special, 0.0, amax).double(), unit, sgrid)
    d = torch.tensor(sgrid, dtype=torch.float64)[sidx] * s_t
    g = block_rules.positive_grid(f)
    mids = (g[:-1] + g[1:]) / 2
    thresholds = [_float32_thresholds(d * float(m), up=j % 2 == 1) for j, m in enumerate(mids)]
    codes = _count_passed(absb, thresholds)
    codes.masked_fill_((d == 0).unsqueeze(-1) | special.unsqueeze(-1), 0)
    neg = torch.signbit(blocks) & ~special.unsqueeze(-1)
    codes |= neg.to(torch.uint8) << (f.bits - 1)
    scodes = torch.where(special, 0x7F, sidx).to(torch.uint8)
    return scodes, codes, (s_t if fmt.tensor_scale else None)
