"""float32 decoding of packed block-scaled codes (`BlockScaled.decode`), chunk by chunk.

Each chunk of blocks (the chunking of `quant.blockscaled.fast`: about `fast.CHUNK_ELEMENTS`
values, fewer blocks than torch's parallel grain) is decoded in cache: element values by table
lookup (E5M2 by torch's exact cast), then times the block scale (and NVFP4's tensor scale) in
float32, each product exact or rounded once, as the float64 reference rounded once.
"""

from __future__ import annotations

import numpy as np

from numfmt.blocks import E8M0, BlockFormat
from numfmt.registry import get
from numfmt.threads import INLINE_CHUNK, run_chunks

from . import fast
from .packing import packed_nbytes, unpack_codes

__all__ = ["decode_float32"]


def _value_tables(fmt: BlockFormat):
    """float32 tables of the element values (by code; for 4 bits by packed byte: the low and
    the high nibble's values) and of the block scales (by scale code; NaN for the NaN code)."""
    import torch

    f = fmt.element_format
    values = np.ldexp(f.decode(np.arange(2**f.bits)), fmt.element_shift).astype(np.float32)
    if f.bits == 4:
        values = np.stack([np.tile(values, 16), np.repeat(values, 16)], 1)
    if fmt.is_mx:
        scales = np.ldexp(1.0, np.arange(256) - E8M0.bias)
        scales[E8M0.nan_code] = np.nan
    else:
        scales = get(fmt.scale).decode(np.arange(256))
    return torch.from_numpy(values), torch.from_numpy(scales.astype(np.float32))


def decode_float32(fmt: BlockFormat, packed, scale_codes, tensor_scale: float | None):
    """float32 values ``(num_blocks, block_size)`` of packed element codes and scale codes.

    Parameters
    ----------
    fmt : BlockFormat
    packed : torch.Tensor
        uint8, the codes of every block packed by `pack_codes`.
    scale_codes : torch.Tensor
        uint8 block scale codes (any shape; ``num_blocks`` of them).
    tensor_scale : float or None
        NVFP4's FP32 tensor scale.

    Returns
    -------
    torch.Tensor
        ``element * block scale`` (exact in float32 but where it falls into float32's
        subnormals, where it is rounded once), times the tensor scale (one rounding of that
        exact product): the float64 reference rounded once into float32.
    """
    import torch

    f, size = fmt.element_format, fmt.block_size
    values, scales = _value_tables(fmt)
    codes_per_block, sc = packed_nbytes(size, f.bits), scale_codes.reshape(-1)
    out = torch.empty((sc.numel(), size), dtype=torch.float32)
    by_cast = f.name == "fp8_e5m2"   # torch's E5M2 -> float32 cast: exact (inf, NaN) and fast

    def job(lo, hi):
        o, p = out[lo:hi], packed[lo * codes_per_block:hi * codes_per_block]
        if by_cast:
            o.copy_(p.view(f.torch_dtype).view(o.shape))
        elif f.bits == 4:
            torch.index_select(values, 0, p.to(torch.int32), out=o.view(-1, 2))
        else:
            codes = p if f.bits == 8 else unpack_codes(p, f.bits, o.numel())
            torch.index_select(values, 0, codes.to(torch.int32), out=o.view(-1))
        o.mul_(scales.index_select(0, sc[lo:hi].to(torch.int32)).unsqueeze_(-1))
        if tensor_scale is not None:
            o.mul_(tensor_scale)

    run_chunks(job, out.shape[0],
               chunk=min(INLINE_CHUNK, max(1, fast.CHUNK_ELEMENTS // size)))
    return out
