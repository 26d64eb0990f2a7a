"""Exact integer matrix products on torch's integer kernels, with a proven accumulator.

`int_matmul` multiplies integer operands whose value ranges are known, choosing the accumulator
from `accumulator_bound` *before* running: a single int32 matmul when int32 provably cannot
overflow, otherwise int32 matmuls over blocks of the contraction axis (each block proven safe)
summed in int64. (torch's int64 matmul on CPU is tens of times slower than its int32 one, and
int32 arithmetic wraps silently, so the proof is what makes the fast path safe.)
"""

from __future__ import annotations

import torch

from .accumulator import AccumulatorProof, accumulator_bound

__all__ = ["int_matmul"]


def _check_int(t: torch.Tensor, what: str) -> None:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{what} must be a torch tensor, got {type(t).__name__}")
    if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
        raise TypeError(f"{what} must be an integer tensor, got {t.dtype}")


def int_matmul(a: torch.Tensor, b: torch.Tensor, a_range: tuple[int, int],
               b_range: tuple[int, int]) -> tuple[torch.Tensor, AccumulatorProof]:
    """Exact `a @ b` of integer tensors, and the accumulator proof it relied on.

    a: (..., M, K) or (K,); b: (K, N) or (K,), values inside the declared inclusive ranges
    (checked: a value outside its range is a ValueError, since the proof would not cover it).
    Returns an int32 tensor when int32 is proven safe for K terms, else int64 (blockwise int32
    sums; raises OverflowError if even int64 cannot hold the bound).
    """
    _check_int(a, "a")
    _check_int(b, "b")
    if a.dim() == 0 or b.dim() == 0 or b.dim() > 2:
        raise ValueError(f"int_matmul needs a of shape (..., M, K) or (K,) and b of shape (K, N) "
                         f"or (K,); got {tuple(a.shape)} and {tuple(b.shape)}")
    k = a.shape[-1]
    if b.shape[0] != k:
        raise ValueError(f"int_matmul: contraction sizes differ: a has K={k}, b has "
                         f"K={b.shape[0]} (shapes {tuple(a.shape)} and {tuple(b.shape)})")
    for t, (lo, hi), name in ((a, a_range, "a"), (b, b_range, "b")):
        if t.numel():
            tmin, tmax = (int(v) for v in torch.aminmax(t))
            if tmin < lo or tmax > hi:
                raise ValueError(f"{name} holds values in [{tmin}, {tmax}], outside its declared "
                                 f"range [{lo}, {hi}]")
    proof = accumulator_bound(a_range, b_range, k, 32)
    a32, b32 = a.to(torch.int32), b.to(torch.int32)
    if proof.fits:
        return torch.matmul(a32, b32), proof
    if not proof.fits_int64:
        raise OverflowError(f"int_matmul: {accumulator_bound(a_range, b_range, k, 64).reason}")
    step = max(1, proof.max_k)
    acc = None
    for s in range(0, k, step):
        part = torch.matmul(a32[..., s:s + step], b32[s:s + step]).to(torch.int64)
        acc = part if acc is None else acc.add_(part)
    return acc, proof
