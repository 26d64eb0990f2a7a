"""LogInt8's encode and decode loops: the compiled loop where `quant.native` picks it, torch
passes otherwise; both compute the same bits (tested on every float32 mantissa).

Outputs are allocated on the input's device.
"""

from __future__ import annotations

import math

import torch

from .. import native
from .._tensors import check_finite, has_values
from .grid import CODE_MAX, decode_table, exact_log_code

__all__ = ["encode_window", "encode_codes", "encode_torch", "resolve_marked", "decode_values",
           "MARKER"]

_LOG_BLOCK = 1 << 18
MARKER = -128
"""Written by both encoders for a float64 input next to a code boundary (never a code);
`resolve_marked` replaces it by the exact code."""


def encode_window(offset: int, frac_bits: int) -> tuple[float, float, float, int]:
    """(scale, w_lo, w_hi, k) of the encoder: see `encode_torch`."""
    n = 1 << (frac_bits + 1)
    c = 0 if -1022 < 2 * offset + 1 - 64 and 2 * offset + 253 + 64 < 1023 else \
        round((2 * offset + 128) / n)
    k = n * c - 2 * offset - 1022
    w_lo = 2.0 ** (-k - 1023)
    w_hi = math.ldexp(2.0 - 2.0 ** -52, 255 - k - 1023)
    return 2.0 ** -c, w_lo, w_hi, k


def encode_codes(x: torch.Tensor, offset: int, frac_bits: int, source: torch.Tensor
                 ) -> torch.Tensor:
    """int8 codes of a flat float32/float64 tensor, on its device.

    Parameters
    ----------
    x : torch.Tensor
        Flat contiguous float32 or float64 values.
    offset, frac_bits : int
        The checked grid.
    source : torch.Tensor
        The caller's tensor, named in the NaN / infinity error.

    Returns
    -------
    torch.Tensor
        The nearest code of every value (ties cannot occur), saturated to +-127 and flushed
        to 0 outside the range: the compiled loop where `quant.native` picks it, else the
        torch passes; float64 values next to a code boundary are decided exactly
        (`resolve_marked`).
    """
    if native.implementation(x) == "native":
        codes = torch.empty(x.numel(), dtype=torch.int8)
        scale, w_lo, w_hi, k = encode_window(offset, frac_bits)
        if native.log_encode(x, codes, scale, frac_bits + 1, w_lo, w_hi, k // 2):
            check_finite(source, "LogInt8.encode")
    else:
        codes = encode_torch(x, offset, frac_bits, source)
    if x.dtype == torch.float64:
        resolve_marked(codes, x, offset, frac_bits)
    return codes


def resolve_marked(codes: torch.Tensor, x: torch.Tensor, offset: int, frac_bits: int) -> None:
    """Replace every `MARKER` in `codes` (in place) by the exact code of the value there.

    The float64 squarings of a 53-bit mantissa carry a relative error below 2**(F+2-53), so a
    w within 2**(F+4) ulps of a power of two (a code boundary) may fall on its wrong side;
    the encoders mark those elements and this decides them with `exact_log_code` (exact
    rational arithmetic). For random data about one value in 2**40 is marked.
    """
    if not has_values(codes):
        return
    marked = (codes == MARKER).nonzero().reshape(-1)
    for i in marked.tolist():
        v = float(x[i])
        m = min(CODE_MAX, max(0, exact_log_code(abs(v), frac_bits) - offset))
        codes[i] = -m if v < 0 else m


def _near_boundary(w: torch.Tensor, xb: torch.Tensor, rounds: int) -> torch.Tensor:
    """The marker condition of the C loop: w (unclamped) normal and within 2**(rounds+3)
    ulps of a power of two, x neither zero nor a power of two (whose squares are exact)."""
    band, mant = 1 << (rounds + 3), (1 << 52) - 1
    wb = w.view(torch.int64)
    wm = torch.bitwise_and(wb, mant)
    we = torch.bitwise_right_shift(wb, 52)
    return (we != 0) & (we != 0x7FF) & ((wm <= band) | (wm >= mant - band)) & \
        (torch.bitwise_and(xb, mant) != 0)


def encode_torch(x: torch.Tensor, offset: int, frac_bits: int, source: torch.Tensor
                 ) -> torch.Tensor:
    """Codes of a flat float tensor: "Exactness of the encoder" in `quant.logdomain.encoding`.

    With n = 2**(F+1), v = |x| * 2**-c and w = v**n (n float64 squarings), the code is
    m = (e >> 1) + K/2 where e is w's biased exponent and K = n*c - 2*offset - 1022 (even).
    c centres the code window so that every rounding boundary falls on a normal w (c = 0
    whenever that already holds, saving a pass); clamping w first keeps m in [0, 127] (values
    beyond saturate / flush). The sign comes from the input's sign bit: code = (m ^ s) - s
    with s in {0, -1}. float64 values next to a boundary get `MARKER` (see `resolve_marked`).
    A per-block sum of x catches NaN and infinity.
    """
    scale, w_lo, w_hi, k = encode_window(offset, frac_bits)
    wide = x.dtype == torch.float64
    ibits = torch.int64 if wide else torch.int32
    xb = x.view(ibits)
    total, dev = x.numel(), x.device
    codes = torch.empty(total, dtype=torch.int8, device=dev)
    bsz = min(total, _LOG_BLOCK)
    w = torch.empty(bsz, dtype=torch.float64, device=dev)
    sbits = torch.empty(bsz, dtype=ibits, device=dev)
    s8 = torch.empty(bsz, dtype=torch.int8, device=dev)
    nblocks = -(-total // bsz) if total else 0
    sums = torch.empty(nblocks, dtype=x.dtype, device=dev)
    for b in range(nblocks):
        i = b * bsz
        j = min(total, i + bsz)
        wb, sb, cb = w[:j - i], s8[:j - i], codes[i:j]
        wb.copy_(x[i:j])                                # the one read of x from memory
        torch.bitwise_right_shift(xb[i:j], 63 if wide else 31, out=sbits[:j - i])
        if scale != 1.0:
            wb.mul_(scale)                              # exact: a power of two
        for _ in range(frac_bits + 1):
            wb.square_()
        torch.sum(x[i:j], dim=0, out=sums[b])           # NaN / inf show up here (cached)
        near = _near_boundary(wb, xb[i:j], frac_bits + 1) if wide else None
        wb.clamp_(w_lo, w_hi)
        e = wb.view(torch.int64)
        e.bitwise_right_shift_(53)
        cb.copy_(e)                                     # byte arithmetic is exact mod 256,
        cb.add_(k // 2)                                 # and the code lies in [0, 127]
        sb.copy_(sbits[:j - i])
        cb.bitwise_xor_(sb)
        cb.sub_(sb)
        if near is not None:
            cb.masked_fill_(near, MARKER)
    if nblocks and has_values(sums) and not bool(torch.isfinite(sums).all()):
        check_finite(source, "LogInt8.encode")     # raises unless the sum merely overflowed
    return codes


def decode_values(codes: torch.Tensor, offset: int, frac_bits: int, dtype: torch.dtype
                  ) -> torch.Tensor:
    """sign * 2**((|code| + offset) / 2**frac_bits), correctly rounded to `dtype`, on the
    codes' device: one lookup of the code's byte in a 256-entry table per value."""
    table = decode_table(offset, frac_bits, dtype)
    flat = codes.contiguous().reshape(-1).view(torch.uint8)
    if native.implementation(flat) == "native":
        out = torch.empty(flat.shape, dtype=dtype)
        native.byte_lookup(flat, table, out)
        return out.reshape(codes.shape)
    table = table.to(codes.device)
    out = torch.empty(flat.shape, dtype=dtype, device=codes.device)
    idx = torch.empty(max(1, min(flat.numel(), 1 << 20)), dtype=torch.int32, device=codes.device)
    for i in range(0, flat.numel(), idx.numel()):
        n = min(idx.numel(), flat.numel() - i)
        ib = idx[:n]
        ib.copy_(flat[i:i + n])
        torch.index_select(table, 0, ib, out=out[i:i + n])
    return out.reshape(codes.shape)
