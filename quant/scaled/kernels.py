"""ScaledInt8's encode and decode loops: the compiled loop where `quant.native` picks it, torch
passes otherwise; both compute the same bits (tested).

Encode: code = clamp(round_half_even(x / scale) + zero_point, qmin, qmax), x / scale one
correctly rounded division in x's precision; the zero point is added after the rounding (a tie
of x / scale breaks to even before the shift, as in torch.quantize_per_channel). Decode:
float(scale) * (code - zero_point), the integer difference exact and the product rounded once.
Outputs are allocated on the input's device.
"""

from __future__ import annotations

import functools
import math
import warnings

import torch

from .. import native
from .._tensors import (block_shape, blocks, channel_broadcast, channel_view, check_finite,
                        has_values)
from ..policy import STORAGE_DTYPES, storage_range
from .params import check_decode_scale

__all__ = ["encode_codes", "decode_values"]

# Round-to-integer by addition: for |y| < 2**(p-2), float(M + y) with M = 1.5 * 2**(p-1) is
# M + round_half_even(y), and its bit pattern is bits(M) + that integer.
_MAGIC = {torch.float32: (12582912.0, torch.int32),
          torch.float64: (6755399441055744.0, torch.int64)}
_QUANTIZED = {torch.int8: torch.qint8, torch.uint8: torch.quint8}
_FUSED_BLOCK = 1 << 18
"""Elements per block of the fused per-tensor float32 encode: 1 MiB of quotients (mostly still
cached for the rounding pass; smaller blocks lose more to per-call overhead than they gain)."""


def encode_codes(x3: torch.Tensor, scale: torch.Tensor, zp: torch.Tensor, qmin: int, qmax: int,
                 out_dtype: torch.dtype, source: torch.Tensor) -> torch.Tensor:
    """Codes of a (outer, C, inner) float32/float64 tensor, on its device.

    Parameters
    ----------
    x3 : torch.Tensor
        The values, channels on axis 1 (one channel for a per-tensor encoding).
    scale, zp : torch.Tensor
        float64 scales (float32 values) and int64 zero points, shape () or (C,).
    qmin, qmax : int
        The code range, inside `out_dtype`'s.
    out_dtype : torch.dtype
        int8 or uint8.
    source : torch.Tensor
        The caller's tensor, named in the NaN / infinity error.

    Returns
    -------
    torch.Tensor
        Codes of `out_dtype`, shape of `x3`.
    """
    per_tensor = scale.dim() == 0 and x3.numel() > 0
    if x3.dtype == torch.float32 and per_tensor and native.implementation(x3) == "native":
        codes = torch.empty(x3.numel(), dtype=out_dtype)
        if native.scaled_encode_f32(x3.contiguous().reshape(-1), codes, float(scale),
                                    qmin, qmax, int(zp)):
            check_finite(source, "ScaledInt8.encode")
        return codes.reshape(x3.shape)
    if x3.dtype == torch.float32 and per_tensor and x3.device.type == "cpu" and \
            _fused_rounding_ok():
        return _encode_fused_float32(x3, float(scale), int(zp), qmin, qmax, out_dtype, source)
    return _encode_blocks(x3, scale, zp, qmin, qmax, out_dtype, source)


def _encode_blocks(x3: torch.Tensor, scale: torch.Tensor, zp: torch.Tensor, qmin: int,
                   qmax: int, out_dtype: torch.dtype, source: torch.Tensor) -> torch.Tensor:
    """The general torch encode, in one cache-blocked sweep.

    Per block: y = x / scale (correctly rounded); y + M rounds half to even inside the float
    add (M the magic constant above), so the bit pattern of y + M is bits(M) + round(y); the
    zero point is added to those bits as an integer and the result clamped in the bit domain
    (float order equals integer order for the positive floats involved; everything else, NaN
    and infinities included, clamps to an end); the low byte of the pattern is the code. A
    per-block sum catches NaN / inf without another pass over memory.
    """
    fdt, dev = x3.dtype, x3.device
    magic, idt = _MAGIC[fdt]
    mbits = int(torch.tensor(magic, dtype=fdt).view(idt))
    lo_bits, hi_bits = mbits + qmin, mbits + qmax
    shape3 = tuple(x3.shape)
    codes = torch.empty(shape3, dtype=out_dtype, device=dev)
    per_channel = scale.dim() == 1
    has_zp = bool((zp != 0).any())
    if per_channel:
        s3 = channel_broadcast(scale.to(dev, fdt), 1, 3)   # float32 values: exact in both
        z3 = channel_broadcast(zp.to(dev, idt), 1, 3)
    blist = list(blocks(shape3))
    sums = torch.empty(len(blist), dtype=fdt, device=dev)
    budget = max((math.prod(block_shape(b, shape3)) for b in blist), default=0)
    scratch = torch.empty(budget, dtype=fdt, device=dev)
    for k, blk in enumerate(blist):
        bs = block_shape(blk, shape3)
        y = scratch[:math.prod(bs)].view(bs)
        torch.div(x3[blk], s3[:, blk[1]] if per_channel else float(scale), out=y)
        y.add_(magic)
        torch.sum(y.view(-1), dim=0, out=sums[k])
        yb = y.view(idt)
        if has_zp:
            yb.add_(z3[:, blk[1]] if per_channel else int(zp))
        yb.clamp_(lo_bits, hi_bits)
        codes[blk].copy_(yb)
    if has_values(sums) and not bool(torch.isfinite(sums).all()):
        check_finite(source, "ScaledInt8.encode")   # raises unless the sum merely overflowed
    return codes


def _quantize_scratch(n: int, zero_point: int, out_dtype: torch.dtype
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """(quantized tensor with scale 1 and `zero_point`, plain int8/uint8 view of its bytes)."""
    with warnings.catch_warnings():       # torch deprecates quantized tensors (we only borrow
        warnings.simplefilter("ignore")   # their fused round-and-saturate kernel)
        q = torch._empty_affine_quantized([n], scale=1.0, zero_point=zero_point,
                                          dtype=_QUANTIZED[out_dtype])
    codes = torch.empty(0, dtype=out_dtype).set_(q.untyped_storage(), 0, (n,), (1,))
    return q, codes


@functools.lru_cache(maxsize=None)
def _fused_rounding_ok() -> bool:
    """Whether torch's quantizer, fed exact float32 quotients at scale 1, rounds half to even
    and saturates exactly as the contract says (probed once, on ties, extremes and NaN-free
    values in both its vector body and its scalar tail); otherwise encode uses its own kernel."""
    ties = [k + 0.5 for k in range(-140, 140)] + [k + d for k in (-129, -128, 0, 127, 255, 256)
                                                   for d in (-2.0 ** -9, 2.0 ** -9)]
    y = torch.tensor(ties + [3e38, -3e38, 2.0 ** 24, -(2.0 ** 24), 0.0, -0.0],
                     dtype=torch.float32)
    try:
        for dt, zps in ((torch.int8, (0, -7, 100)), (torch.uint8, (0, 128, 255))):
            _, lo, hi = storage_range(dt)
            for zp in zps:
                for n in (y.numel(), 7):                 # vector body and a scalar-only call
                    q, codes = _quantize_scratch(n, zp, dt)
                    _round_into(q, y[:n].clone(), zp)
                    want = (torch.round(y[:n].double()) + zp).clamp(lo, hi).to(torch.int64)
                    if not torch.equal(codes.to(torch.int64), want):
                        return False
    except (RuntimeError, AttributeError, TypeError, NotImplementedError):
        return False
    return True


def _round_into(q: torch.Tensor, y: torch.Tensor, zero_point: int) -> None:
    """q <- saturate(round_half_even(y) + zero_point); may overwrite y.

    torch adds a nonzero zero point to the int32 conversion of y, which wraps around for
    |y| near 2**31, so y is first clamped to +-2**30 (far beyond any code, so harmless).
    """
    if zero_point:
        y.clamp_(-2.0 ** 30, 2.0 ** 30)
    q.copy_(y)


def _encode_fused_float32(x3: torch.Tensor, scale: float, zero_point: int, qmin: int,
                          qmax: int, out_dtype: torch.dtype, source: torch.Tensor
                          ) -> torch.Tensor:
    """Per-tensor float32 codes in two cache-resident passes per block.

    y = x / scale is correctly rounded (a true division, as the contract says); torch's fused
    quantizer then rounds y at scale 1 (multiplying by 1 is exact), adds the zero point (exact
    for every y that does not saturate) and saturates to the storage range in one pass, writing
    straight into the result's bytes. `_fused_rounding_ok` checks those semantics once. A
    narrower [qmin, qmax] is a clamp of the bytes; a per-block sum of y catches NaN / inf.
    """
    flat = x3.reshape(-1)
    total = flat.numel()
    q, codes = _quantize_scratch(total, zero_point, out_dtype)
    _, lo_s, hi_s = storage_range(out_dtype)
    narrow = (qmin, qmax) != (lo_s, hi_s)
    bsz = min(total, _FUSED_BLOCK)
    y = torch.empty(bsz, dtype=torch.float32)
    sums = torch.empty(-(-total // bsz), dtype=torch.float32)
    for xb, qb, cb, sb in zip(flat.split(bsz), q.split(bsz), codes.split(bsz), sums.split(1)):
        yb = y[:xb.numel()]
        torch.div(xb, scale, out=yb)
        torch.sum(yb, dim=0, out=sb[0])
        _round_into(qb, yb, zero_point)
        if narrow:
            cb.clamp_(qmin, qmax)
    if not bool(torch.isfinite(sums).all()):
        check_finite(source, "ScaledInt8.encode")   # raises unless the sum merely overflowed
    return codes.reshape(x3.shape)


@functools.lru_cache(maxsize=256)
def _decode_table(scale: float, zero_point: int, code_dtype: torch.dtype,
                  dtype: torch.dtype) -> torch.Tensor:
    """The 256 decoded values indexed by the code's byte, with the same two roundings as the
    decode loop (scale rounded to `dtype`, then one rounded product)."""
    codes = torch.arange(256, dtype=torch.int16).to(torch.uint8).view(code_dtype)
    s = torch.tensor(scale, dtype=torch.float64).to(dtype)
    check_decode_scale(s, torch.tensor(scale, dtype=torch.float64), dtype)
    z = torch.tensor(zero_point, dtype=torch.int64).to(dtype)
    return ((codes.to(dtype) - z) * s if zero_point else codes.to(dtype) * s).contiguous()


def decode_values(codes: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor,
                  axis: int | None, dtype: torch.dtype) -> torch.Tensor:
    """scale * (code - zero_point) as a new `dtype` tensor on the codes' device.

    Parameters
    ----------
    codes : torch.Tensor
        Integer codes (int8 / uint8, or int32 / int64 accumulators).
    scale, zero_point : torch.Tensor
        float64 scales and int64 zero points, shape () or (C,) along `axis`.
    axis : int or None
        The channel axis of per-channel parameters.
    dtype : torch.dtype
        float32 or float64.

    Returns
    -------
    torch.Tensor
        The decoded values. 8-bit codes: the integer difference exact, then one rounded
        product with the scale rounded to `dtype` (as torch's dequantize does). Accumulators:
        the difference and product in float64 (exact difference below 2**53), rounded once to
        `dtype`.
    """
    eight_bit = codes.dtype in (STORAGE_DTYPES["int8"], STORAGE_DTYPES["uint8"])
    if axis is None and eight_bit and native.implementation(codes) == "native":
        table = _decode_table(float(scale), int(zero_point), codes.dtype, dtype)
        out = torch.empty(codes.shape, dtype=dtype)
        native.byte_lookup(codes.contiguous().reshape(-1), table, out.view(-1))
        return out
    s = scale.to(dtype)
    check_decode_scale(s, scale, dtype)
    if not eight_bit:       # accumulators: (code - zp) * scale in float64, then one rounding
        z64 = channel_broadcast(zero_point.to(codes.device), axis, codes.dim())
        s64 = channel_broadcast(scale.to(codes.device), axis, codes.dim())
        return ((codes.to(torch.int64) - z64).to(torch.float64) * s64).to(dtype)
    c3 = channel_view(codes, axis)
    out = torch.empty(c3.shape, dtype=dtype, device=codes.device)
    s, z = s.to(codes.device), zero_point.to(codes.device, dtype)
    has_zp = bool((zero_point != 0).any())
    if axis is not None:
        s, z = channel_broadcast(s, 1, 3), channel_broadcast(z, 1, 3)
    for blk in blocks(tuple(c3.shape), 1 << 20):
        sb = s[:, blk[1]] if axis is not None else s
        o = out[blk]
        if has_zp:
            torch.sub(c3[blk], z[:, blk[1]] if axis is not None else z, out=o)
            o.mul_(sb)
        else:                           # an int8 x float multiply is a slow path
            o.copy_(c3[blk])
            o.mul_(sb)
    return out.reshape(codes.shape)
