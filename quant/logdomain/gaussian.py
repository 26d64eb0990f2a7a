"""The Gaussian-logarithm tables of log-domain addition and subtraction."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import mpmath
import torch

from .grid import check_frac_bits

__all__ = ["GaussianLogTable", "gaussian_log_table"]


@dataclass(frozen=True, eq=False)
class GaussianLogTable:
    """Integer tables of the Gaussian logarithms for log-domain addition and subtraction.

    For a code difference d >= 0 (in steps of 2**-frac_bits octaves):
    plus[d]  = round(2**F * log2(1 + 2**(-d / 2**F)))   so |a| + |b| has code  Lmax + plus[d]
    minus[d] = round(2**F * log2(1 - 2**(-d / 2**F)))   so |a| - |b| has code  Lmax + minus[d]
    (d >= 1; d = 0 in a subtraction is an exact zero). Both vanish for d >= len(plus) and d >=
    len(minus). Because the operands lie on the grid, Lmax + round(g(d)) = round(Lmax + g(d)):
    each table sum or difference is the correctly rounded log-domain result, so its relative
    error obeys the encoder's bound 2**(2**-(F+1)) - 1 (checked exhaustively in the tests).
    """

    frac_bits: int
    plus: torch.Tensor
    minus: torch.Tensor

    @property
    def size(self) -> int:
        """Entries stored (both tables)."""
        return self.plus.numel() + self.minus.numel()

    def lookup_plus(self, d: torch.Tensor) -> torch.Tensor:
        """plus[d] for a tensor of differences d >= 0 (0 beyond the table)."""
        n = self.plus.numel()
        return torch.where(d < n, self.plus[d.clamp(max=n - 1)], 0)

    def lookup_minus(self, d: torch.Tensor) -> torch.Tensor:
        """minus[d] for d >= 1 (0 beyond the table; the d = 0 entry is never used)."""
        n = self.minus.numel()
        return torch.where(d < n, self.minus[d.clamp(max=n - 1)], 0)


@functools.lru_cache(maxsize=None)
def gaussian_log_table(frac_bits: int = 3) -> GaussianLogTable:
    """The `GaussianLogTable` for `frac_bits`.

    Parameters
    ----------
    frac_bits : int
        0..6 (default 3).

    Returns
    -------
    GaussianLogTable
        Computed once (cached) with 160-bit mpmath, each entry the nearest integer.
    """
    f = 1 << check_frac_bits(frac_bits)

    def entry(d: int, sign: int) -> int:
        with mpmath.workprec(160):
            return int(mpmath.nint(f * mpmath.log(1 + sign * mpmath.power(2, -mpmath.mpf(d) / f),
                                                  2)))

    plus, minus = [], [0]
    while (v := entry(len(plus), 1)) != 0:             # both shrink monotonically to 0
        plus.append(v)
    while (v := entry(len(minus), -1)) != 0:
        minus.append(v)
    return GaussianLogTable(frac_bits, torch.tensor(plus, dtype=torch.int64),
                            torch.tensor(minus, dtype=torch.int64))


# ------------------------------------------------------------------------------- LogInt8