"""Block-scaled encode / decode of float32 (and float16 / bf16) tensors in float32, by chunks.

The same bits as the exact reference `numfmt.block_codec.block_encode` (nearest-even elements,
saturation), without the float64 copy. The blocks are cut into chunks of about a million values
taken by a few threads (`numfmt.threads.run_chunks`), so a pipeline's temporaries are small and
a core another process holds does not stall every op:

* block amax: ``max(amax(x), -amin(x))`` per block in float32 (exact: a maximum rounds
  nothing); the ``floor`` rule's E8M0 exponent straight from its float32 exponent bits, the
  other rules from `numfmt.block_rules.mx_scale_exponents` on the maxima only;
* elements: ``y = x * 2**(shift - e)`` in float32 is exact unless ``y`` falls below float32's
  normal range, and then ``|y| < 2**-126`` is far below half the smallest element step, so it
  rounds to (signed) zero either way;
* FP8 elements: torch's float32 -> FP8 cast (one nearest-even rounding) after a clamp to +-max
  (skipped where the cast itself saturates: probed); FP6 elements: the same cast into E4M3
  (E2M3, shift -6) or E5M2 (E3M2, shift -12), whose grid there is the FP6 grid times
  2**shift, subnormal steps included; the FP8 code's low five bits are the FP6 magnitude;
* FP4 elements: nearest even with the FPU, ``(|y| + c) - c`` with ``c`` a power of two whose
  ulp is the element step at ``|y|``'s binade, then a code lookup (`_float_codes`);
* NVFP4: each E2M1 code counts the exact rounding thresholds ``mid_j * s_block * S`` its
  magnitude passes, compared in float32 against the threshold's float32 neighbour on the
  correct side (a table per E4M3 scale code: `_strict_thresholds`).

The element codes come back packed (`quant.blockscaled.packing`), chunk by chunk; an MX chunk
computes its own maxima, exponents and codes in one go (its per-block ops below torch's
parallel grain run inline). `quant.blockscaled.decoding` is the way back, chunked the same way.
"""

from __future__ import annotations

import numpy as np

from numfmt import block_rules
from numfmt.block_checks import to_blocks
from numfmt.blocks import E8M0, BlockFormat
from numfmt.registry import get
from numfmt.threads import INLINE_CHUNK, run_chunks

from .packing import pack_codes, packed_nbytes

__all__ = ["encode_mx_float32", "encode_nvfp4_float32", "FAST_DTYPES", "CHUNK_ELEMENTS"]

FAST_DTYPES = ("float16", "bfloat16", "float32")

# Values per chunk of the pipelines: measured on 2 shared cores, 1M (4 MB of float32) beat
# both torch's inline size (`numfmt.threads.INLINE_CHUNK`: Python overhead per op dominated)
# and whole-tensor passes (every op waited for the slower core, and nothing stayed in cache).
CHUNK_ELEMENTS = 1 << 20

# The FP6 elements rounded by torch's FP8 cast: times 2**shift their grid is a stretch of the
# FP8 format's (same fraction bits, smallest normal on the FP8's, so the subnormal steps agree).
FP6_VIA_FP8 = {"fp6_e2m3fn": ("fp8_e4m3fn", -6), "fp6_e3m2fn": ("fp8_e5m2", -12)}


def _flat_blocks(x, axis: int, block_size: int):
    """float32 blocks ``(num_blocks, block_size)`` (a view where the layout allows) and the
    leading shape ``(*other, n)``."""
    import torch

    blocks = to_blocks(x.detach().to(torch.float32), axis, block_size)
    return blocks.reshape(-1, block_size), tuple(blocks.shape[:-1])


def _per_chunk(job, flat) -> None:
    """``job(lo, hi)`` over block ranges of ``flat`` of about `CHUNK_ELEMENTS` values, and
    fewer blocks than torch's parallel grain (the per-block ops then run inline)."""
    blocks = min(INLINE_CHUNK, max(1, CHUNK_ELEMENTS // flat.shape[1]))
    run_chunks(job, flat.shape[0], chunk=blocks)


def _chunk_amax(b):
    """float32 block maxima of |x| of blocks ``b`` ``(k, block_size)``: two reductions, no |x|
    temporary (NaN propagates through amax, amin and maximum)."""
    import torch

    return torch.maximum(b.amax(-1), b.amin(-1).neg_())


def _block_amax(flat):
    """`_chunk_amax` of every block ``(num_blocks,)``, chunk by chunk."""
    import torch

    amax = torch.empty(flat.shape[0], dtype=torch.float32)

    def job(lo, hi):
        torch.maximum(flat[lo:hi].amax(-1), flat[lo:hi].amin(-1).neg_(), out=amax[lo:hi])

    _per_chunk(job, flat)
    return amax


def _floor_exponents(amax, emax_elem: int):
    """(E8M0 exponents, NaN-block mask) of the ``floor`` rule from float32 maxima's bits.

    For a normal amax ``floor(log2(amax))`` is its biased exponent minus 127. A subnormal or
    zero amax gives ``-127 - emax_elem <= -127`` here, and its exact exponent is below -127
    too: both clamp to -127. NaN and inf (biased exponent 255) are the NaN blocks; no finite
    float32 amax passes 127 (``e <= 127 - emax_elem``).
    """
    import torch

    biased = torch.bitwise_right_shift(amax.view(torch.int32), 23).bitwise_and_(0xFF)
    nan_block = biased == 0xFF
    return biased.sub_(127 + emax_elem).clamp_(block_rules.E8M0_MIN_EXP,
                                               block_rules.E8M0_MAX_EXP), nan_block


def _scale_exponents(amax, fmt: BlockFormat, rule: str):
    """(clamped E8M0 exponents ``(num_blocks,)``, NaN-block mask) of float32 maxima."""
    if rule == "floor":
        return _floor_exponents(amax, fmt.element_emax)
    special = ~amax.isfinite()
    e = block_rules.mx_scale_exponents(amax.masked_fill(special, 0.0).double(), rule,
                                       fmt.element_emax, fmt.element_mantissa_bits,
                                       fmt.element_max_exact)
    nan_block = special | (e > block_rules.E8M0_MAX_EXP)
    return e.clamp_(block_rules.E8M0_MIN_EXP, block_rules.E8M0_MAX_EXP), nan_block


_SATURATES: dict = {}


def _saturates(dtype) -> bool:
    """Whether torch's float32 -> ``dtype`` cast saturates finite and infinite overflow to
    +-max (a clamp before it then changes nothing); probed once per dtype, as torch versions
    differ (2.14: E4M3FN saturates, E5M2 overflows to inf)."""
    import torch

    if dtype not in _SATURATES:
        top = float(torch.finfo(dtype).max)
        probe = torch.tensor([top * 1.0625, top * 2, 3.0e38, np.inf, -np.inf])
        got = probe.to(dtype).to(torch.float64).abs()
        _SATURATES[dtype] = bool(torch.equal(got, torch.full_like(got, top)))
    return _SATURATES[dtype]


def _code_table(fmt_elem):
    """uint8 magnitude code of each rounded float32 ``r`` in [0, max], indexed by
    ``bits(r) >> (23 - m)`` (exponent and the top m mantissa bits)."""
    import torch

    g = block_rules.positive_grid(fmt_elem).astype(np.float32)
    keys = g.view(np.int32) >> (23 - fmt_elem.mantissa_bits)
    table = np.zeros(int(keys[-1]) + 1, dtype=np.uint8)
    table[keys] = np.arange(len(g), dtype=np.uint8)
    return torch.from_numpy(table)


def _float_codes(mag, negative, fmt_elem, table):
    """Element codes of float32 magnitudes ``mag`` (already divided by the scale), in place.

    Round to nearest even at the magnitude's own binade (the element's subnormal step below
    its smallest normal) with the FPU: ``(mag + c) - c`` where ``c = 2**(E + 23 - m)`` and ``E``
    the binade exponent, so the sum's ulp is the element's step; clamp to max (saturation);
    then look the code up (``table``: `_code_table`) by the rounded number's exponent and top
    mantissa bits, and add the sign bit.
    """
    import torch

    m = fmt_elem.mantissa_bits
    bits = mag.view(torch.int32)
    c = (bits & 0x7F800000).clamp_min_((127 + fmt_elem.emin) << 23).add_((23 - m) << 23)
    cf = c.view(torch.float32)
    mag.add_(cf).sub_(cf).clamp_max_(float(fmt_elem.max_exact))
    key = bits.bitwise_right_shift_(23 - m)
    codes = table.index_select(0, key.view(-1)).view(key.shape)
    # magnitudes < 2**(b-1): adding the sign bit is an or; bool as uint8 (uint8 + bool is slow)
    return codes.add_(negative.view(torch.uint8), alpha=1 << (fmt_elem.bits - 1))


def _round_int_codes(y, fmt: BlockFormat):
    """MXINT8 codes: ``round(y * 2**-shift)`` to nearest even, saturated to [-127, 127]."""
    import torch

    k = torch.round(y * 2.0 ** -fmt.element_shift)
    lim = float(fmt.element_format.max_exact)
    k = k.clamp(-lim if fmt.symmetric else float(fmt.element_format.lowest_exact), lim)
    return k.to(torch.int8).view(torch.uint8)


def _power_of_two_f32(k):
    """float32 ``2**k`` for integer exponents ``k`` in [-149, 127] (exact): the bit pattern
    ``(k + 127) << 23`` when every ``k`` is a normal exponent, else through float64."""
    import torch

    if int(k.min()) >= -126 and int(k.max()) <= 127:
        return (k.to(torch.int32) + 127).bitwise_left_shift_(23).view(torch.float32)
    return torch.ldexp(torch.ones_like(k, dtype=torch.float64), k).to(torch.float32)


def _mx_chunk_coder(fmt: BlockFormat, rule: str, scodes):
    """``code(lo, hi, blocks, out)``: encodes blocks ``lo:hi`` (``blocks``, float32
    ``(hi - lo, block_size)``), writing their scale codes into ``scodes[lo:hi]`` and their
    packed element codes into ``out`` (see the module text)."""
    import torch

    f = fmt.element_format
    if f.is_float and (f.bits == 8 or f.name in FP6_VIA_FP8):
        via, shift = (f, 0) if f.bits == 8 else (get(FP6_VIA_FP8[f.name][0]),
                                                  FP6_VIA_FP8[f.name][1])
        lim = (None if f.bits == 8 and _saturates(via.torch_dtype)
               else float(f.max_exact) * 2.0 ** shift)
    else:
        shift, lim = 0, None
    table = _code_table(f) if f.is_float and f.bits == 4 else None

    def scales(lo: int, hi: int, b):
        e, nan_block = _scale_exponents(_chunk_amax(b), fmt, rule)
        torch.add(e, E8M0.bias, out=scodes[lo:hi]).masked_fill_(nan_block, E8M0.nan_code)
        nan_rows = nan_block.unsqueeze_(-1) if bool(nan_block.any()) else None
        return _power_of_two_f32(shift - e).unsqueeze_(-1), nan_rows

    def code(lo: int, hi: int, b, out) -> None:
        inv, nan_rows = scales(lo, hi, b)
        if table is not None:
            mag = b.abs().mul_(inv)
            negative = torch.signbit(b)
            if nan_rows is not None:
                mag.masked_fill_(nan_rows, 0.0)
                negative.masked_fill_(nan_rows, False)
            pack_codes(_float_codes(mag, negative, f, table), f.bits, out=out)
            return
        y = torch.mul(b, inv)
        if lim is not None:
            y.clamp_(-lim, lim)
        if nan_rows is not None:
            y.masked_fill_(nan_rows, 0.0)
        if not f.is_float:
            out.view(b.shape).copy_(_round_int_codes(y, fmt))
        elif f.bits == 8:            # the cast writes the codes in place
            out.view(via.torch_dtype).view(b.shape).copy_(y)
        else:                        # the five magnitude bits kept, the sign from bit 7 to 5
            codes = y.to(via.torch_dtype).view(torch.uint8)
            sign = torch.bitwise_right_shift(codes, 2).bitwise_and_(0x20)
            pack_codes(codes.bitwise_and_(0x1F).bitwise_or_(sign), f.bits, out=out)

    return code


def _packed_codes(flat, bits: int, code):
    """Packed element codes of every block: ``code(lo, hi, blocks, out)`` chunk by chunk,
    ``out`` the slice of the packed bytes that holds blocks ``lo:hi``."""
    import torch

    per_block = packed_nbytes(flat.shape[1], bits)          # whole bytes: 16 and 32 blocks
    packed = torch.empty(flat.shape[0] * per_block, dtype=torch.uint8)

    def job(lo, hi):
        code(lo, hi, flat[lo:hi], packed[lo * per_block:hi * per_block])

    _per_chunk(job, flat)
    return packed


def encode_mx_float32(x, fmt: BlockFormat, rule: str, axis: int):
    """(scale codes, packed element codes) of ``x`` (float16/bf16/float32) in an MX format.

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
        uint8 scale codes ``(*other, n)`` and the element codes of ``(*other, n, block_size)``
        packed by `pack_codes`, equal to those of `numfmt.block_codec.block_encode` with
        ``rounding="nearest_even"`` and ``overflow="saturate"`` (tested bit for bit).
    """
    import torch

    flat, lead = _flat_blocks(x, axis, fmt.block_size)
    scodes = torch.empty(flat.shape[0], dtype=torch.uint8)
    packed = _packed_codes(flat, fmt.element_format.bits, _mx_chunk_coder(fmt, rule, scodes))
    return scodes.view(lead), packed


def _strict_thresholds(scale_values: np.ndarray, s_t: float, mids: np.ndarray) -> np.ndarray:
    """float32 ``t[c, j]`` with ``|x| > t`` iff ``|x| / (s_c * S)`` rounds past grid point j.

    For every float32 ``x``: ``x > t[c, j]`` iff ``x > mid_j * s_c * S`` at even j and iff
    ``x >= mid_j * s_c * S`` at odd j (the tie goes up to the even grid point j + 1). The
    exact threshold (at most 31 significant bits: exact in float64) is rounded down to the
    float32 at or below it (even j) or strictly below it (odd j).
    """
    exact = scale_values[:, None] * s_t * mids[None, :]
    t = exact.astype(np.float32)
    down = t.astype(np.float64) > exact
    odd = (np.arange(len(mids)) % 2 == 1)[None, :]
    down |= odd & (t.astype(np.float64) == exact)
    return np.where(down, np.nextafter(t, np.float32(-np.inf)), t)


def _nvfp4_tensor_scale(flat, amax, special, any_special: bool, fmt: BlockFormat) -> float:
    """NVFP4's FP32 tensor scale from the largest finite |x| (1.0 without a tensor scale)."""
    if not fmt.tensor_scale:
        return 1.0
    big = float(amax.masked_fill(special, 0.0).max())
    if any_special:                  # the finite values inside NaN / inf blocks count too
        inner = flat[special].abs()
        finite = inner[inner.isfinite()]
        big = max(big, float(finite.max()) if finite.numel() else 0.0)
    return block_rules.tensor_scale_fp32(big, get(fmt.scale).max_exact,
                                         fmt.element_format.max_exact)


def encode_nvfp4_float32(x, fmt: BlockFormat, axis: int):
    """(scale codes, packed element codes, tensor scale) of float16/bf16/float32 ``x`` in NVFP4.

    The block scales come from the exact rule on the block maxima (`numfmt.block_rules`); each
    element's E2M1 code counts the thresholds of `_strict_thresholds` its magnitude exceeds:
    the same nearest-even codes as the reference, without forming a quotient.
    """
    import torch

    flat, lead = _flat_blocks(x, axis, fmt.block_size)
    amax = _block_amax(flat)
    special = ~amax.isfinite()
    any_special = bool(special.any())
    s_t = _nvfp4_tensor_scale(flat, amax, special, any_special, fmt)
    f, sgrid = fmt.element_format, block_rules.positive_grid(get(fmt.scale))
    unit = torch.tensor(s_t * float(f.max_exact), dtype=torch.float64)
    sidx = block_rules.grid_round(amax.masked_fill_(special, 0.0).double(), unit, sgrid)
    g = block_rules.positive_grid(f)
    table = _strict_thresholds(sgrid, s_t, (g[:-1] + g[1:]) / 2)
    table[0] = np.inf        # scale 0 (also a NaN block's, its amax taken as 0): codes 0
    thresholds = torch.from_numpy(np.ascontiguousarray(table.T)).index_select(1, sidx)
    special_rows = special.unsqueeze(-1)

    def code(lo: int, hi: int, b, out) -> None:
        absb = b.abs()
        codes = torch.zeros(b.shape, dtype=torch.uint8)
        passed = torch.empty(b.shape, dtype=torch.bool)
        counted = passed.view(torch.uint8)               # uint8 + bool is a slow path
        for j in range(thresholds.shape[0]):
            torch.gt(absb, thresholds[j, lo:hi].unsqueeze(-1), out=passed)
            codes.add_(counted)
        torch.signbit(b, out=passed)
        if any_special:
            passed.masked_fill_(special_rows[lo:hi], False)
        pack_codes(codes.add_(counted, alpha=1 << (f.bits - 1)), f.bits, out=out)  # mags < 8

    packed = _packed_codes(flat, f.bits, code)
    scodes = torch.where(special, 0x7F, sidx).to(torch.uint8)
    return scodes.view(lead), packed, (s_t if fmt.tensor_scale else None)

