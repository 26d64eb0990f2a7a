"""Which instruction sequences of the fused int8 head are exact, proven per weight range and K.

Each sequence (`ISAS`, fastest first) needs its own `quant.accumulator_bound` proofs over uint8
pixels in [0, 255] and the weight codes' range: ``avx512_vnni`` (``vpdpbusd``: each u8 x s8
product exact in 16 bits, K-term sums in int32), ``avx2`` (``vpmaddwd`` on zero-extended pixels:
pair sums in int32, K-term sums in int32) and ``scalar`` (int32 sums, or int64 where int32's
proof fails). `quant.native.int8_head` runs the fastest one the plan allows and the CPU has.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numfmt
from quant.accumulator import AccumulatorProof, accumulator_bound

__all__ = ["ISAS", "AccumulationPlan", "plan_accumulation"]

ISAS: tuple[str, ...] = ("avx512_vnni", "avx2", "scalar")  # fastest first
PIXEL_RANGE = (numfmt.get("uint8").lowest, numfmt.get("uint8").max)  # the head's inputs
# The proofs each instruction sequence needs (AccumulationPlan.proofs' keys); scalar sums in
# int64 where int32's fails.
_ISA_NEEDS = {"avx512_vnni": ("int32", "vnni_product_16"), "avx2": ("int32", "avx2_pair_32"),
              "scalar": ("int64",)}


@dataclass(frozen=True)
class AccumulationPlan:
    """Which instruction sequences are exact for a weight range and feature count, and why.

    ``isas`` lists the exact ones fastest first (see the module docstring); ``accumulator_bits``
    is 32 when the K-term int32 proof holds, else 64 (scalar only). ``proofs`` maps each
    condition (``"int32"``, ``"int64"``, ``"vnni_product_16"``, ``"avx2_pair_32"``) to its
    `quant.AccumulatorProof`.
    """

    weight_range: tuple[int, int]
    in_features: int
    isas: tuple[str, ...]
    accumulator_bits: int
    proofs: dict[str, AccumulatorProof] = field(repr=False)

    @property
    def reason(self) -> str:
        """The deciding proof in words: int32's, or int64's where int32 fails."""
        return self.proofs["int32" if self.accumulator_bits == 32 else "int64"].reason

    def why_not(self, isa: str) -> str:
        """The failed proof that rules `isa` out, in words ("" if it is exact)."""
        return next((self.proofs[p].reason for p in _ISA_NEEDS.get(isa, ())
                     if not self.proofs[p].fits), "")


def plan_accumulation(weight_range: tuple[int, int], in_features: int) -> AccumulationPlan:
    """The exact instruction sequences for uint8 pixels against weight codes in
    ``weight_range`` (inclusive, within int8) over ``in_features`` products per output.

    Parameters
    ----------
    weight_range : (int, int)
        Smallest and largest weight code, within [-128, 127].
    in_features : int
        K, the number of products per accumulator (>= 1).

    Returns
    -------
    AccumulationPlan
        The instruction sets whose every intermediate provably holds the exact sum.

    Raises
    ------
    ValueError
        If the range is not within int8, K < 1, or even int64 sums could overflow.

    Examples
    --------
    >>> plan_accumulation((-128, 127), 784).isas
    ('avx512_vnni', 'avx2', 'scalar')
    >>> plan_accumulation((-128, 127), 70_000).accumulator_bits
    64
    """
    lo, hi = weight_range
    if not (-128 <= lo <= hi <= 127):
        raise ValueError(f"weight codes must lie within int8 [-128, 127], got {weight_range}")
    if isinstance(in_features, bool) or not isinstance(in_features, int) or in_features < 1:
        raise ValueError(f"in_features must be an int >= 1, got {in_features!r}")
    proofs = {"int32": accumulator_bound(PIXEL_RANGE, (lo, hi), in_features, 32),
              "int64": accumulator_bound(PIXEL_RANGE, (lo, hi), in_features, 64),
              "vnni_product_16": accumulator_bound(PIXEL_RANGE, (lo, hi), 1, 16),
              "avx2_pair_32": accumulator_bound(PIXEL_RANGE, (lo, hi), 2, 32)}
    if not proofs["int64"].fits:
        raise ValueError(f"int8 head: even int64 sums can overflow: {proofs['int64'].reason}")
    isas = tuple(isa for isa in ISAS if all(proofs[p].fits for p in _ISA_NEEDS[isa]))
    return AccumulationPlan((lo, hi), in_features, isas, 32 if proofs["int32"].fits else 64,
                            proofs)
