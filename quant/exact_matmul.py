"""Exact integer matrix products on torch's kernels, with a proven accumulator.

`int_matmul` multiplies integer operands whose value ranges are known, choosing the accumulator
from `accumulator_bound` *before* running: a single int32 matmul when int32 provably cannot
overflow, otherwise int32 matmuls over blocks of the contraction axis (each block proven safe)
summed in int64. (torch's int64 matmul on CPU is tens of times slower than its int32 one, and
int32 arithmetic wraps silently, so the proof is what makes the fast path safe.)

On the CPU, 8-bit operands (every |value| <= 256) go through float32 GEMM instead, 5x faster
than torch's int32 matmul: over blocks of k terms with k * max|a| * max|b| <= 2**24 every
product and every partial sum, in whatever order the kernel adds them (with or without FMA),
is an integer of magnitude <= 2**24 and so a float32 value: each block is exact. The operands
have at most 8 significant bits, so even a bfloat16/TF32 internal precision setting
(`torch.set_float32_matmul_precision`) keeps them exact. Block results are summed as integers.
"""

from __future__ import annotations

import torch

import numfmt

from .accumulator import AccumulatorProof, accumulator_bound

__all__ = ["int_matmul"]


def _check_int(t: torch.Tensor, what: str) -> None:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{what} must be a torch tensor, got {type(t).__name__}")
    if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
        raise TypeError(f"{what} must be an integer tensor, got {t.dtype}")


_INT32_MIN, _INT32_MAX = int(numfmt.get("int32").lowest), int(numfmt.get("int32").max)
_FP32_EXACT = 1 << numfmt.get("fp32").precision_bits   # every |integer| <= 2**24 is a float32
_BYTE_MAGNITUDE = 256          # 8 significant bits: exact in bfloat16 and TF32 as well
_MIN_FP32_BLOCK = 64           # below this, many small GEMMs lose to one int32 matmul


def contraction_size(a_shape: tuple[int, ...], b_shape: tuple[int, ...], op: str) -> int:
    """K of ``a @ b`` for a (..., M, K) or (K,) and b (K, N) or (K,).

    Parameters
    ----------
    a_shape, b_shape : tuple of int
        The operands' shapes.
    op : str
        Names the operation in the error.

    Returns
    -------
    int

    Raises
    ------
    ValueError
        Naming `op` and both shapes, for shapes that do not contract.
    """
    if len(a_shape) == 0 or len(b_shape) not in (1, 2):
        raise ValueError(f"{op}: a must be (..., M, K) or (K,) and b (K, N) or (K,); got "
                         f"{tuple(a_shape)} and {tuple(b_shape)}")
    k = a_shape[-1]
    if b_shape[0] != k:
        raise ValueError(f"{op}: contraction sizes differ: a has K={k}, b has K={b_shape[0]} "
                         f"(shapes {tuple(a_shape)} and {tuple(b_shape)})")
    return k


def _fp32_block(a: torch.Tensor, b: torch.Tensor, a_range: tuple[int, int],
                b_range: tuple[int, int]) -> int:
    """Terms per exact float32 GEMM block (see the module docstring), or 0: not applicable."""
    if a.device.type != "cpu" or b.device.type != "cpu":
        return 0
    ma = max(abs(a_range[0]), abs(a_range[1]))
    mb = max(abs(b_range[0]), abs(b_range[1]))
    if ma > _BYTE_MAGNITUDE or mb > _BYTE_MAGNITUDE:
        return 0
    block = _FP32_EXACT // max(1, ma * mb)
    return block if block >= _MIN_FP32_BLOCK else 0


def int_matmul(a: torch.Tensor, b: torch.Tensor, a_range: tuple[int, int],
               b_range: tuple[int, int]) -> tuple[torch.Tensor, AccumulatorProof]:
    """Exact `a @ b` of integer tensors, and the accumulator proof it relied on.

    Parameters
    ----------
    a : torch.Tensor
        Integer (..., M, K) or (K,).
    b : torch.Tensor
        Integer (K, N) or (K,).
    a_range, b_range : tuple of int
        The operands' declared inclusive value ranges (checked: a value outside its range
        is a ValueError, since the proof would not cover it).

    Returns
    -------
    tuple
        The product -- int32 when int32 is proven safe for K terms, else int64 (sums of
        blocks that are each exact) -- and the `AccumulatorProof`.

    Raises
    ------
    OverflowError
        If even int64 cannot hold the bound.

    Notes
    -----
    8-bit operands on the CPU run as exact float32 GEMM blocks (module docstring), others as
    int32 matmuls, and as int64 ones where an operand or a single product leaves int32.
    """
    _check_int(a, "a")
    _check_int(b, "b")
    k = contraction_size(a.shape, b.shape, "int_matmul")
    for t, (lo, hi), name in ((a, a_range, "a"), (b, b_range, "b")):
        if t.numel():
            tmin, tmax = (int(v) for v in torch.aminmax(t))
            if tmin < lo or tmax > hi:
                raise ValueError(f"{name} holds values in [{tmin}, {tmax}], outside its declared "
                                 f"range [{lo}, {hi}]")
    proof = accumulator_bound(a_range, b_range, k, 32)
    if not proof.fits_int64:
        raise OverflowError(f"int_matmul: {accumulator_bound(a_range, b_range, k, 64).reason}")
    fp32_block = _fp32_block(a, b, a_range, b_range)
    if fp32_block:
        return _block_sum(a.to(torch.float32), b.to(torch.float32), fp32_block,
                          torch.int32 if proof.fits else torch.int64), proof
    operands_int32 = all(_INT32_MIN <= v <= _INT32_MAX for v in (*a_range, *b_range))
    if not operands_int32 or proof.max_k == 0:
        # an operand or a single product leaves int32: int64 throughout (slow, but proven)
        return torch.matmul(a.to(torch.int64), b.to(torch.int64)), proof
    a32, b32 = a.to(torch.int32), b.to(torch.int32)
    if proof.fits:
        return torch.matmul(a32, b32), proof
    return _block_sum(a32, b32, proof.max_k, torch.int64), proof


def _block_sum(a: torch.Tensor, b: torch.Tensor, step: int, out_dtype: torch.dtype
               ) -> torch.Tensor:
    """sum over blocks of `step` contraction terms of a_blk @ b_blk, each converted to
    `out_dtype` before the sum (the caller has proven every block exact in a's dtype)."""
    k = a.shape[-1]
    acc = None
    for s in range(0, max(k, 1), step):
        part = torch.matmul(a[..., s:s + step], b[s:s + step]).to(out_dtype)
        acc = part if acc is None else acc.add_(part)
    return acc
