"""Static proof that an integer dot product / matmul accumulator cannot overflow.

For k terms a_i * b_i with a_i in [a_lo, a_hi] and b_i in [b_lo, b_hi], every product lies in
[p_min, p_max], the extremes of the four corner products (a product is bilinear, so its extremes
over a box sit at corners). A partial sum of j <= k terms therefore lies in
[j * p_min, j * p_max], and, counting the empty sum 0, every partial sum in any summation order
lies in [min(0, k * p_min), max(0, k * p_max)]. Both ends are attained (all terms at the same
corner), so the bound is tight: the accumulator is safe exactly when this interval fits it.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._tensors import is_int

__all__ = ["AccumulatorProof", "accumulator_bound", "signed_range"]


def signed_range(bits: int) -> tuple[int, int]:
    """[-2**(bits-1), 2**(bits-1) - 1], the range of a two's complement accumulator."""
    if not is_int(bits) or bits < 2:
        raise ValueError(f"accumulator width must be an int >= 2 bits, got {bits!r}")
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


@dataclass(frozen=True)
class AccumulatorProof:
    """The outcome of `accumulator_bound`: what every partial sum can reach, and whether it fits.

    lowest, highest   the tight bounds on every partial sum (including the empty sum 0).
    fits              whether [lowest, highest] fits an `acc_bits`-bit signed accumulator.
    max_k             the largest number of terms that still fits (so k can be split into
                      blocks of max_k terms, each summed in `acc_bits` bits).
    reason            the argument in words, with the numbers.
    """

    a_range: tuple[int, int]
    b_range: tuple[int, int]
    k: int
    acc_bits: int
    product_range: tuple[int, int]
    lowest: int
    highest: int
    fits: bool
    max_k: int | None
    reason: str

    @property
    def worst_case(self) -> int:
        """Largest |partial sum| possible."""
        return max(-self.lowest, self.highest)

    @property
    def fits_int32(self) -> bool:
        """Whether every partial sum fits a 32-bit signed accumulator."""
        lo, hi = signed_range(32)
        return lo <= self.lowest and self.highest <= hi

    @property
    def fits_int64(self) -> bool:
        """Whether every partial sum fits a 64-bit signed accumulator."""
        lo, hi = signed_range(64)
        return lo <= self.lowest and self.highest <= hi


def _check_range(r: object, what: str) -> tuple[int, int]:
    try:
        lo, hi = r                                           # type: ignore[misc]
    except (TypeError, ValueError):
        raise TypeError(f"{what} must be a (low, high) pair of ints, got {r!r}") from None
    for v in (lo, hi):
        if not is_int(v):
            raise TypeError(f"{what} must hold ints, got {type(v).__name__}")
    if lo > hi:
        raise ValueError(f"{what} is empty: low {lo} > high {hi}")
    return int(lo), int(hi)


def accumulator_bound(a_range: tuple[int, int], b_range: tuple[int, int], k: int,
                      acc_bits: int = 32) -> AccumulatorProof:
    """Prove (or refute) that k-term sums of a*b products fit an `acc_bits`-bit accumulator.

    Parameters
    ----------
    a_range, b_range : tuple of int
        Inclusive integer ranges of the operands as they enter the products (for affine codes:
        code range minus zero point).
    k : int
        Terms per sum, >= 0.
    acc_bits : int
        The signed accumulator's width (>= 2).

    Returns
    -------
    AccumulatorProof
        The tight bounds of every partial sum, whether they fit, and the largest k that does.

    Examples
    --------
    >>> from quant import accumulator_bound
    >>> p = accumulator_bound((0, 255), (-128, 127), 784)
    >>> p.fits, p.lowest, p.highest
    (True, -25589760, 25389840)
    """
    a_lo, a_hi = _check_range(a_range, "a_range")
    b_lo, b_hi = _check_range(b_range, "b_range")
    if not is_int(k) or k < 0:
        raise ValueError(f"k must be an int >= 0, got {k!r}")
    acc_lo, acc_hi = signed_range(acc_bits)
    corners = (a_lo * b_lo, a_lo * b_hi, a_hi * b_lo, a_hi * b_hi)
    p_min, p_max = min(corners), max(corners)
    lowest, highest = min(0, k * p_min), max(0, k * p_max)
    fits = acc_lo <= lowest and highest <= acc_hi
    limits = []
    if p_max > 0:
        limits.append(acc_hi // p_max)
    if p_min < 0:
        limits.append(acc_lo // p_min)             # floor(acc_lo / p_min) for p_min < 0
    max_k = min(limits) if limits else None       # None: every k fits (all products are 0)
    head = (f"{k} terms x products in [{p_min:,}, {p_max:,}] (a in [{a_lo}, {a_hi}], b in "
            f"[{b_lo}, {b_hi}]): every partial sum lies in [{lowest:,}, {highest:,}]")
    if fits:
        reason = f"{head}, inside int{acc_bits} [{acc_lo:,}, {acc_hi:,}]: cannot overflow"
    else:
        side = (f"{highest:,} > {acc_hi:,}" if highest > acc_hi else f"{lowest:,} < {acc_lo:,}")
        reason = (f"{head}; {side}, so int{acc_bits} can overflow; at most {max_k:,} terms "
                  f"fit")
    return AccumulatorProof((a_lo, a_hi), (b_lo, b_hi), k, acc_bits, (p_min, p_max), lowest,
                            highest, fits, max_k, reason)
