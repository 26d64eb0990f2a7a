"""TF32 from float32 on the bit pattern, in few whole-tensor passes.

TF32 (NVIDIA TensorFloat-32) keeps float32's 8 exponent bits and 10 of its 23 fraction bits; its
values are held in float32 (`numfmt.registry.HELD_IN`). Rounding to nearest even is integer
arithmetic on the float32 bits: add half an ulp (minus one unless the kept last bit is odd) and
clear the 13 dropped bits. The encoding is monotone and the carry ripples into the exponent, so
this is exact for normals, subnormals and overflow to inf alike.

Why in chunks on a few threads (`numfmt.threads.run_chunks`): every torch op is one OpenMP
parallel region, and when another process holds one of the cores each region waits for the
thread that core deschedules. Cache-sized blocks of whole-team ops multiplied the regions
(hundreds for 16 M values) and the waits with them (18.9x the native cast with one busy core);
chunks below torch's parallel grain run each op inline, so a busy core only slows its own share.
"""

from __future__ import annotations

from numfmt.threads import run_chunks

__all__ = ["tf32_from_float32"]


def tf32_from_float32(t):
    """Round a float32 tensor to TF32 (nearest even), returning a new float32 tensor.

    Parameters
    ----------
    t : torch.Tensor
        float32, any shape, device and layout; not modified and not part of the result's graph.

    Returns
    -------
    torch.Tensor
        float32, same shape and device; NaNs are copied through unchanged (a NaN whose payload
        sits in the dropped bits would otherwise become inf).
    """
    import torch

    src = t.detach().contiguous().reshape(-1)
    bits = src.view(torch.int32)
    if src.device.type != "cpu":                 # one whole-tensor pass per op off the CPU
        obits = torch.bitwise_right_shift(bits, 13)
        obits.bitwise_and_(1).add_(bits).add_(0xFFF).bitwise_and_(~0x1FFF)
        res = obits.view(torch.float32)
        return torch.where(torch.isnan(src), src, res).view(t.shape)
    res = torch.empty_like(src)
    obits_all = res.view(torch.int32)

    def job(lo: int, hi: int) -> None:
        b, o = bits[lo:hi], obits_all[lo:hi]
        torch.bitwise_right_shift(b, 13, out=o)
        o.bitwise_and_(1).add_(b).add_(0xFFF).bitwise_and_(~0x1FFF)
        x = src[lo:hi]
        nan = torch.isnan(x)
        if bool(nan.any()):
            o.copy_(torch.where(nan, x, res[lo:hi]).view(torch.int32))

    run_chunks(job, src.numel())
    return res.view(t.shape)
