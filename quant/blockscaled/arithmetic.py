"""Exact products of block-scaled operands, the accumulator they need, and fp32's error.

Every element of a block format is an integer on a fixed grid: ``value = n * 2**lsb`` with
``lsb`` the element's smallest step (E4M3: 2**-9, E2M1: 2**-1, MXINT8: 2**-6). A block scale
is ``ms * 2**se`` with an integer ``ms`` (E8M0: ``ms = 1``, ``se = e``; E4M3: ``ms`` the value
over 2**-9, ``se = -9``). One block's contribution to a dot product is therefore the integer
``D = sum_i nA_i * nB_i`` times ``msA * msB * 2**(seA + seB + 2 lsb)``: integer accumulation of
the element codes, then the scales applied exactly. `block_matmul_exact` computes ``D`` in
int64 (split into 16-bit halves where one block's sum could pass int64: MXFP8 E5M2) and sums
the blocks as Python integers on their common grid, so the result is exact; it is returned
correctly rounded to float64 (or as Fractions).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from quant.accumulator import AccumulatorProof, accumulator_bound

from .encoding import BlockScaled

__all__ = ["block_matmul_exact", "block_dot_exact", "block_accumulator_bound",
           "BlockAccumulatorProof", "fp32_accumulation_error"]


def _lsb(b: BlockScaled) -> int:
    return _lsb_of(b.format)


def _element_ints(b: BlockScaled):
    """int64 ``n`` with element value ``n * 2**lsb``, ``(*other, nb, bs)``."""
    import torch

    return torch.ldexp(b.to_encoded().element_values, torch.tensor(float(-_lsb(b)))).long()


def _scale_ints(b: BlockScaled):
    """(ms int64, se int64, nan mask) of each block scale ``ms * 2**se``."""
    import torch

    s = b.to_encoded().scales
    nan = torch.isnan(s)
    s = torch.where(nan, 1.0, s)
    if b.format.is_mx:
        return torch.ones_like(s, dtype=torch.int64), torch.frexp(s)[1].long() - 1, nan
    return torch.ldexp(s, torch.tensor(9.0)).long(), torch.full_like(s, -9, dtype=torch.int64), nan


def _check_pair(a: BlockScaled, b: BlockScaled) -> None:
    for name, t in (("a", a), ("b", b)):
        if not isinstance(t, BlockScaled):
            raise TypeError(f"{name} must be a BlockScaled, not {type(t).__name__}")
        if len(t.shape) != 2 or t.axis != 1:
            raise ValueError(f"{name} must be a 2-D BlockScaled blocked along axis 1 (rows of "
                             f"K), got shape {t.shape} blocked along axis {t.axis}")
    if a.shape[1] != b.shape[1] or a.format.block_size != b.format.block_size:
        raise ValueError(f"contraction mismatch: a is {a.shape} in blocks of "
                         f"{a.format.block_size}, b is {b.shape} in blocks of "
                         f"{b.format.block_size}")


def _block_sums(na, nb):
    """Exact per-block dot products ``D[m, n, j]`` as a numpy object array of Python ints."""
    import torch

    worst = na.abs().max().item() * nb.abs().max().item() * na.shape[-1] if na.numel() else 0
    if worst < 2**62:
        d = torch.einsum("mji,nji->mnj", na, nb)
        return d.numpy().astype(object)
    ha, la = na >> 16, na & 0xFFFF                 # n = h * 2**16 + l, 0 <= l < 2**16
    hb, lb = nb >> 16, nb & 0xFFFF
    hh = torch.einsum("mji,nji->mnj", ha, hb).numpy().astype(object)
    mid = (torch.einsum("mji,nji->mnj", ha, lb) + torch.einsum("mji,nji->mnj", la, hb))
    ll = torch.einsum("mji,nji->mnj", la, lb).numpy().astype(object)
    return (hh << 32) + (mid.numpy().astype(object) << 16) + ll


def block_matmul_exact(a: BlockScaled, b: BlockScaled, *, as_fraction: bool = False):
    """``decode(a) @ decode(b).T``, exactly.

    Parameters
    ----------
    a : BlockScaled
        ``(M, K)`` blocked along axis 1.
    b : BlockScaled
        ``(N, K)`` blocked along axis 1 (a weight as ``nn.Linear`` stores it), the same block
        size. The two may be in different block formats.
    as_fraction : bool
        Return a numpy object array of `fractions.Fraction` instead of float64.

    Returns
    -------
    torch.Tensor or numpy.ndarray
        ``(M, N)`` float64, each entry the exact sum correctly rounded once (Python's
        ``float(Fraction)``; beyond float64's range +-inf); NaN where a NaN-scaled block of
        either operand enters the sum.

    Raises
    ------
    TypeError, ValueError
        For operands that are not 2-D `BlockScaled` blocked along their last axis with equal K
        and block size.

    Notes
    -----
    The block sums are torch int64 contractions; combining the blocks on their common grid
    takes ``M * N * K / block_size`` Python-integer operations: a checked reference for
    tests and audits, not a fast kernel.
    """
    import torch

    _check_pair(a, b)
    na, nb = _element_ints(a), _element_ints(b)
    msa, sea, nana = _scale_ints(a)
    msb, seb, nanb = _scale_ints(b)
    d = _block_sums(na, nb)                                         # (M, N, nblocks)
    e = (sea[:, None, :] + seb[None, :, :]).numpy()
    base = e.min(axis=-1, keepdims=True)
    w = (msa[:, None, :] * msb[None, :, :]).numpy().astype(object)
    total = (d * w * (np.ones_like(e, dtype=object) << (e - base).astype(object))).sum(-1)
    unit = Fraction(2) ** (_lsb(a) + _lsb(b))
    for t in (a, b):
        if t.tensor_scale is not None:
            unit *= Fraction(t.tensor_scale)
    exp = base[..., 0].astype(object)
    frac = np.frompyfunc(lambda t, k: Fraction(t) * unit * Fraction(2) ** k, 2, 1)(total, exp)
    nan = (nana[:, None, :] | nanb[None, :, :]).any(-1).numpy()
    if as_fraction:
        frac[nan] = math.nan
        return frac
    out = torch.tensor(np.frompyfunc(_to_float, 1, 1)(frac).astype(np.float64))
    out[torch.from_numpy(nan)] = math.nan
    return out


def _to_float(q: Fraction) -> float:
    try:
        return float(q)
    except OverflowError:
        return math.copysign(math.inf, q)


def block_dot_exact(a: BlockScaled, b: BlockScaled) -> Fraction:
    """The exact dot product of two block-scaled row vectors.

    Parameters
    ----------
    a, b : BlockScaled
        Shape ``(1, K)``, blocked along axis 1 (as `block_matmul_exact`).

    Returns
    -------
    fractions.Fraction
        The exact sum of the products of the decoded values (NaN if a NaN block enters it).

    Raises
    ------
    TypeError, ValueError
        As `block_matmul_exact`, and for operands of more than one row.

    Examples
    --------
    >>> import torch
    >>> v = BlockScaled.encode(torch.tensor([[1.0, 0.5, -3.0]]), "mxfp4_e2m1")
    >>> block_dot_exact(v, v)
    Fraction(41, 4)
    """
    r = block_matmul_exact(a, b, as_fraction=True)
    if r.shape != (1, 1):
        raise ValueError(f"block_dot_exact takes two (1, K) operands, got {a.shape}, {b.shape}")
    return r[0, 0]


@dataclass(frozen=True)
class BlockAccumulatorProof:
    """How wide an integer accumulator a K-long block GEMM needs (`block_accumulator_bound`).

    block : AccumulatorProof
        One block's integer dot product of element integers (``sum nA * nB``).
    block_bits : int
        The fewest signed bits that hold every one-block sum.
    grid_bits : int
        Signed bits of one fixed-point accumulator for the whole K-long sum with every block
        scale allowed: the block sum, times the integer scale multipliers, shifted over the
        scales' exponent span, times the block count.
    reason : str
    """

    block: AccumulatorProof
    block_bits: int
    grid_bits: int
    reason: str


def _int_range(b: str) -> tuple[int, int]:
    from numfmt.blocks import get_block_format

    f = get_block_format(b)
    top = int(f.element_max_exact / Fraction(2) ** (_lsb_of(f)))
    low = -top if f.element_format.is_float else int(f.element_format.lowest_exact)
    return low, top


def _lsb_of(f) -> int:
    e = f.element_format
    return (e.emin - e.mantissa_bits if e.is_float else 0) + f.element_shift


def block_accumulator_bound(fmt_a: str, fmt_b: str, k: int,
                            acc_bits: int = 32) -> BlockAccumulatorProof:
    """The accumulator widths an exact K-long product of two block formats needs.

    Parameters
    ----------
    fmt_a, fmt_b : str
        Block format names (equal block sizes).
    k : int
        The contraction length (a multiple of the block size is not required: the last block
        is shorter).
    acc_bits : int
        The accumulator to test the one-block sum against (`quant.accumulator_bound`).

    Returns
    -------
    BlockAccumulatorProof

    Notes
    -----
    Element integers: E4M3 +-229,376 (448 / 2**-9), E5M2 +-3,758,096,384, E3M2 +-448, E2M3
    +-60, E2M1 +-12, MXINT8 [-128, 127] (the code -128 decodes, so it is allowed). The
    fixed-point width adds the E8M0 exponent span of both scales (2 * 254 binades) or, for
    E4M3 scales, the scale integers (18 bits each, E4M3 / 2**-9) and their span (none: one
    grid), and ``ceil(log2(number of blocks))``.
    """
    from numfmt.blocks import get_block_format

    fa, fb = get_block_format(fmt_a), get_block_format(fmt_b)
    if fa.block_size != fb.block_size:
        raise ValueError(f"block sizes differ: {fa.name} {fa.block_size}, {fb.name} "
                         f"{fb.block_size}")
    bs = fa.block_size
    proof = accumulator_bound(_int_range(fa.name), _int_range(fb.name), bs, acc_bits)
    block_bits = max(proof.worst_case.bit_length() + 1, 2)
    blocks = max(1, -(-k // bs))
    extra = 0
    for f in (fa, fb):
        extra += 2 * 127 if f.is_mx else 18       # exponent span / E4M3 scale integer bits
    grid_bits = block_bits + extra + math.ceil(math.log2(blocks))
    reason = (f"{proof.reason}; one block needs {block_bits} signed bits; a single fixed-point "
              f"accumulator over all {blocks} blocks and every scale needs {grid_bits} bits")
    return BlockAccumulatorProof(proof, block_bits, grid_bits, reason)


def fp32_accumulation_error(a: BlockScaled, b: BlockScaled) -> dict[str, float]:
    """What a float32 GEMM of the decoded operands loses against the exact product.

    Returns
    -------
    dict
        ``max_abs``: largest |fp32 - exact|; ``max_rel``: largest |fp32 - exact| /
        sum_i |a_i b_i| (the error relative to the magnitude accumulated); ``mismatches``:
        entries where the fp32 result differs from the (float64-rounded) exact result
        rounded to float32.
    """
    import torch

    exact = block_matmul_exact(a, b)
    got = (a.decode(torch.float32) @ b.decode(torch.float32).T).double()
    mag = a.decode(torch.float64).abs() @ b.decode(torch.float64).abs().T
    err = (got - exact).abs()
    finite = torch.isfinite(exact)
    rel = torch.where(mag > 0, err / mag, torch.zeros_like(err))
    return {"max_abs": float(err[finite].max()) if finite.any() else 0.0,
            "max_rel": float(rel[finite].max()) if finite.any() else 0.0,
            "mismatches": int((got != exact.float().double())[finite].sum())}
