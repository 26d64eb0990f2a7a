"""Dense storage of narrow element codes: 4-bit codes two per byte, 6-bit codes four per 3 bytes.

Layouts (flat, row-major over the codes):

* 4 bits: byte j holds code 2j in its low nibble and code 2j+1 in its high nibble (torchao's
  ``pack_uint4``, ONNX's INT4/FP4 and ml_dtypes' packing order).
* 6 bits: the 24-bit little-endian word of bytes 3j..3j+2 holds codes 4j..4j+3 at bits 0, 6, 12
  and 18 (code 4j in the low bits of byte 3j).
* 8 bits: one code per byte.

A code count that is not a multiple of 2 (or 4) is padded with zero codes; the count is needed
to unpack (`unpack_codes` takes it).
"""

from __future__ import annotations

__all__ = ["pack_codes", "unpack_codes", "packed_nbytes"]


def packed_nbytes(count: int, bits: int) -> int:
    """Bytes that `pack_codes` uses for ``count`` codes of ``bits`` (4, 6 or 8) bits.

    Examples
    --------
    >>> packed_nbytes(32, 4), packed_nbytes(32, 6), packed_nbytes(5, 6)
    (16, 24, 6)
    """
    _check_bits(bits)
    if bits == 4:
        return (count + 1) // 2
    if bits == 6:
        return 3 * ((count + 3) // 4)
    return count


def _check_bits(bits: int) -> None:
    if bits not in (4, 6, 8):
        raise ValueError(f"codes are packed at 4, 6 or 8 bits, not {bits!r}")


def pack_codes(codes, bits: int, *, out=None):
    """Pack unsigned codes (any shape, each < 2**bits) into a flat uint8 tensor.

    Parameters
    ----------
    codes : torch.Tensor
        uint8 codes; flattened in row-major order.
    bits : {4, 6, 8}
    out : torch.Tensor, optional
        A contiguous 1-D uint8 tensor of ``packed_nbytes(codes.numel(), bits)`` bytes to
        write into (a slice of a larger buffer, say); a fresh tensor if omitted.

    Returns
    -------
    torch.Tensor
        uint8, ``packed_nbytes(codes.numel(), bits)`` bytes (``out`` when given).

    Raises
    ------
    ValueError
        For another width, a code that does not fit in ``bits``, or an ``out`` of the wrong
        size or dtype.
    """
    import torch

    _check_bits(bits)
    c = codes.reshape(-1).to(torch.uint8)
    if c.numel() and int(c.max()) >= 1 << bits:
        raise ValueError(f"a code {int(c.max())} does not fit in {bits} bits")
    need = packed_nbytes(c.numel(), bits)
    if out is None:
        out = torch.empty(need, dtype=torch.uint8)
    elif (out.dtype != torch.uint8 or out.dim() != 1 or out.numel() != need
          or not out.is_contiguous()):
        raise ValueError(f"out must be a contiguous 1-D uint8 tensor of {need} bytes, got "
                         f"{out.dtype} of shape {tuple(out.shape)}")
    if bits == 8:
        return out.copy_(c)
    group = 2 if bits == 4 else 4
    pad = (-c.numel()) % group
    if pad:
        c = torch.cat([c, c.new_zeros(pad)])
    if bits == 4:                    # codes < 16 (checked): low + 16 * high cannot wrap
        c = c.view(-1, 2)
        return torch.add(c[:, 0], c[:, 1], alpha=16, out=out)
    c, out = c.view(-1, 4), out.view(-1, 3)
    # uint8 shifts drop the bits that leave the byte: each byte is two codes' pieces
    for j, (lo, lo_shift, hi, hi_shift) in enumerate(((0, 0, 1, 6), (1, 2, 2, 4),
                                                      (2, 4, 3, 2))):
        torch.bitwise_right_shift(c[:, lo], lo_shift, out=out[:, j])
        out[:, j].bitwise_or_(torch.bitwise_left_shift(c[:, hi], hi_shift))
    return out.view(-1)


def unpack_codes(packed, bits: int, count: int):
    """Inverse of `pack_codes`: the first ``count`` codes, flat uint8.

    Parameters
    ----------
    packed : torch.Tensor
        uint8 bytes from `pack_codes`.
    bits : {4, 6, 8}
    count : int
        How many codes were packed.

    Returns
    -------
    torch.Tensor
        uint8, ``count`` codes (a fresh tensor).

    Raises
    ------
    ValueError
        If ``packed`` holds fewer bytes than ``count`` codes need.
    """
    import torch

    _check_bits(bits)
    need = packed_nbytes(count, bits)
    if packed.numel() < need:
        raise ValueError(f"{packed.numel()} bytes cannot hold {count} codes of {bits} bits "
                         f"({need} needed)")
    p = packed.reshape(-1)[:need]
    if bits == 8:
        return p.clone()
    if bits == 4:
        out = torch.stack([p & 0x0F, p >> 4], 1).view(-1)
    else:
        b = p.view(-1, 3).to(torch.int32)
        word = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        out = torch.stack([(word >> s) & 0x3F for s in (0, 6, 12, 18)], 1).view(-1)
    return out[:count].to(torch.uint8)
