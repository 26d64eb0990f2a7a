"""Integer-only softmax: int8 logit codes -> uint8 (or uint16) probabilities, no floats.

The data path, for int8 codes ``q`` of shape (..., n) whose real values are ``q * s``
(``s`` = ``logit_scale``):

1. ``d = max(q) - q``: the row max subtracted in integers; ``d`` is in 0..255 for int8 codes.
2. ``e = T[d]``: a lookup in a 256-entry table ``T[k] = round(2**F * exp(-k * s))`` (round to
   nearest; the entries are proven with interval arithmetic, `numfmt.expbounds.compare_exp`).
   ``T[0] = 2**F`` exactly, and ``T`` is non-increasing because exp is decreasing.
3. ``S = sum(e)``, in int64.
4. ``r = floor(P * 2**K / S)`` once per row (``P`` = 255 for uint8, 65535 for uint16), then
   ``p = floor((e * r + 2**(K-1)) / 2**K)``, i.e. ``e * P / S`` rounded by a multiply and a shift.
   The output step (scale) is ``1 / P``.

Error bound (what `IntegerSoftmax.error_bound_steps` states). Let ``E_j = 2**F exp(-d_j s)``
be the exact exponentials, ``S* = sum E``, ``p*_j = E_j / S*`` the exact softmax of the
dequantized logits ``q * s``. Write ``e_j = E_j + delta_j``: ``|delta_j| <= 1/2``, and
``delta_j = 0`` at the row max (``d = 0``), so at most ``n - 1`` of them are nonzero. Then

    e_j/S - p*_j = (delta_j S* - E_j sum(delta)) / (S S*)
                 = (delta_j (1 - p*_j) - p*_j sum_{k != j} delta_k) / S,

and since ``S >= T[0] = 2**F``, ``|e_j/S - p*_j| <= (1 + p*_j (n - 2)) / 2**(F+1)
<= (n - 1) / 2**(F+1)``. Step 4: ``P * 2**K / S - 1 < r <= P * 2**K / S``, so
``e_j r / 2**K`` lies in ``(P e_j / S - e_j / 2**K, P e_j / S]`` with ``e_j / 2**K <= 2**(F-K)``,
and adding ``1/2`` then flooring moves it by at most ``1/2``. In output steps (units of
``1/P``)::

    |p_j - P * p*_j| <= 1/2 + 2**(F-K) + P (n - 1) / 2**(F+1).

With ``F = 22``, ``K = 42``, ``n = 10``: 0.50028 steps for uint8, 0.5703 steps for uint16 --
independent of ``s`` and of the logits. (The 255-step int8 range itself is the caller's
clipping: logits more than 255 steps below the max do not exist in int8.)

Argmax. If the top logit exceeds every other by at least 2 codes ("more than one logit
step"), every other ``d_k >= 2``, so ``e_k <= T[2]``, ``S <= S_max = 2**F + (n - 1) T[2]`` and
``r >= r_min = floor(P 2**K / S_max)``; ``p`` is non-decreasing in ``e`` for a fixed row, and
``(e_top - e_k) r >= (2**F - T[2]) r_min >= 2**K`` forces ``p_top >= p_k + 1``. That last
inequality is an exact integer check made once per table: `IntegerSoftmax.argmax_safe`. It
holds when ``s`` is not too small for the output resolution (roughly ``s > n / (2 P)``; for 10
classes it holds from ``s = 0.0194`` in uint8 and ``s = 7.7e-5`` in uint16); when it fails,
near-ties can collapse onto one output code and ``argmax`` (first index) may pick the wrong one.

Integer widths: ``e <= 2**22``, ``S <= n 2**22``, ``P 2**K < 2**58``, ``e r <= P 2**K``: all in
int64 with room to spare for any ``n < 2**30``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from functools import lru_cache
from typing import Any

import mpmath
import torch

import numfmt
from numfmt.expbounds import compare_exp

from .._tensors import is_int, renamed_keyword

__all__ = ["IntegerSoftmax", "make_integer_softmax", "integer_softmax", "softmax_out_dtype",
           "TABLE_FRAC_BITS", "RECIPROCAL_BITS"]

TABLE_FRAC_BITS = 22  # F: the exp table holds round(2**F * exp(-k s))
RECIPROCAL_BITS = 42  # K: the per-row reciprocal is floor(P * 2**K / S)
_TABLE_LEN = 256      # d = max - q for int8 codes lies in 0..255

_OUT = {name: (getattr(torch, name), int(numfmt.get(name).max)) for name in ("uint8", "uint16")}


def softmax_out_dtype(spec: Any) -> tuple[torch.dtype, int]:
    """(torch dtype, P) for an output spec: "uint8"/"uint16" or the torch dtype itself.

    ``P`` is the code of probability 1: probabilities are ``code / P``.
    """
    if isinstance(spec, torch.dtype):
        for dt, top in _OUT.values():
            if spec == dt:
                return dt, top
    elif isinstance(spec, str):
        key = spec.strip().lower().removeprefix("torch.")
        key = {"u8": "uint8", "u16": "uint16"}.get(key, key)
        if key in _OUT:
            return _OUT[key]
    raise ValueError(f"softmax output type must be 'uint8' or 'uint16' (or torch.uint8 / "
                     f"torch.uint16), not {spec!r}")


def _exp_code(d: int, scale: Fraction, frac_bits: int) -> int:
    """round(2**frac_bits * exp(-d * scale)) to nearest, proven (never a tie for d > 0)."""
    if d == 0:
        return 1 << frac_bits
    x = -d * scale
    with mpmath.workprec(96):
        guess = int(mpmath.nint(mpmath.ldexp(mpmath.exp(mpmath.mpf(x.numerator) / x.denominator),
                                             frac_bits)))
    k = max(guess, 0)
    one = Fraction(1, 1 << frac_bits)
    # k is right iff (k - 1/2) 2**-F < exp(x) < (k + 1/2) 2**-F; walk if the guess was off.
    while compare_exp(x, (k + Fraction(1, 2)) * one) > 0:
        k += 1
    while k > 0 and compare_exp(x, (k - Fraction(1, 2)) * one) < 0:
        k -= 1
    return k


@lru_cache(maxsize=64)
def _table(scale: float, frac_bits: int) -> tuple[int, ...]:
    s = Fraction(scale)
    out: list[int] = []
    for d in range(_TABLE_LEN):
        out.append(_exp_code(d, s, frac_bits) if not out or out[-1] else 0)
    return tuple(out)


@dataclass(frozen=True)
class IntegerSoftmax:
    """An integer softmax for ``num_classes`` int8 logit codes of real step ``logit_scale``.

    Build it with `make_integer_softmax`; call it on int8 codes (..., num_classes) to get
    probability codes of ``prob_dtype`` (probability = code / ``prob_max``). See the module
    docstring for the algorithm, the error bound and the argmax guarantee.

    ``n_classes``, ``out_dtype``, ``out_max`` and ``out_scale`` are the deprecated old names of
    ``num_classes``, ``prob_dtype``, ``prob_max`` and ``prob_scale`` (``out_*`` meant something
    else in `quant.arith`).
    """

    logit_scale: float
    num_classes: int
    prob_dtype: torch.dtype
    prob_max: int
    table: tuple[int, ...] = field(repr=False)
    frac_bits: int = TABLE_FRAC_BITS
    reciprocal_bits: int = RECIPROCAL_BITS
    _table_t: torch.Tensor = field(init=False, repr=False, compare=False, hash=False)
    _half_t: torch.Tensor = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_table_t", torch.tensor(self.table, dtype=torch.int64))
        object.__setattr__(self, "_half_t",
                           torch.tensor(1 << (self.reciprocal_bits - 1), dtype=torch.int64))

    @property
    def table_tensor(self) -> torch.Tensor:
        """The exp table as an int64 (256,) tensor (what a fused consumer reads; not a copy:
        do not modify)."""
        return self._table_t

    @property
    def prob_scale(self) -> float:
        """The real value of one probability step, ``1 / prob_max``."""
        return 1.0 / self.prob_max

    @property
    def n_classes(self) -> int:
        """Deprecated name of `num_classes`."""
        return self.num_classes

    @property
    def out_dtype(self) -> torch.dtype:
        """Deprecated name of `prob_dtype`."""
        return self.prob_dtype

    @property
    def out_max(self) -> int:
        """Deprecated name of `prob_max`."""
        return self.prob_max

    @property
    def out_scale(self) -> float:
        """Deprecated name of `prob_scale`."""
        return self.prob_scale

    @property
    def error_bound_steps(self) -> float:
        """Proven bound on |p_code - prob_max * softmax(q * logit_scale)|, in output steps."""
        f, k, n, top = self.frac_bits, self.reciprocal_bits, self.num_classes, self.prob_max
        return 0.5 + 2.0 ** (f - k) + top * (n - 1) / 2.0 ** (f + 1)

    @property
    def error_bound(self) -> float:
        """`error_bound_steps` in probability units (divided by ``prob_max``)."""
        return self.error_bound_steps / self.prob_max

    @property
    def argmax_safe(self) -> bool:
        """True iff a top logit >= 2 codes above all others always gets the strictly largest
        probability code (an exact integer check; see the module docstring)."""
        f, k = self.frac_bits, self.reciprocal_bits
        t2 = self.table[2]
        s_max = (1 << f) + (self.num_classes - 1) * t2
        r_min = (self.prob_max << k) // s_max
        return ((1 << f) - t2) * r_min >= (1 << k)

    def check_codes(self, codes: Any) -> torch.Tensor:
        """``codes`` if it is an int8 tensor (..., num_classes); a clear error otherwise."""
        if not isinstance(codes, torch.Tensor):
            raise TypeError(f"integer softmax takes a torch.Tensor of int8 logit codes, not "
                            f"{type(codes).__name__}")
        if codes.dtype != torch.int8:
            hint = (" (real-valued logits: quantize them to int8 codes first, e.g. "
                    "torch.round(z / logit_scale).clamp(-128, 127).to(torch.int8))"
                    if codes.dtype.is_floating_point else "")
            raise TypeError(f"integer softmax expects int8 logit codes, got {codes.dtype}{hint}")
        if codes.dim() == 0 or codes.shape[-1] != self.num_classes:
            raise ValueError(f"integer softmax built for {self.num_classes} classes expects codes "
                             f"of shape (..., {self.num_classes}), got {tuple(codes.shape)}")
        return codes

    def __call__(self, codes: torch.Tensor) -> torch.Tensor:
        """Probability codes (same shape, ``prob_dtype``) of int8 logit codes
        (..., num_classes).

        The input is not modified. Each row's codes sum to ``prob_max`` within
        ``num_classes * error_bound_steps``.
        """
        codes = self.check_codes(codes)
        if codes.numel() == 0:
            return torch.empty(codes.shape, dtype=self.prob_dtype)
        gaps = codes.amax(-1, keepdim=True).to(torch.int64) - codes.to(torch.int64)
        return self.from_gaps(gaps)

    def from_gaps(self, gaps: torch.Tensor) -> torch.Tensor:
        """Probability codes from int64 gaps ``d = max - q`` in 0..255 (one 0 per row).

        The fast path for callers that already hold the gaps (the integer pipeline); the
        contract on ``gaps`` is the caller's to keep.
        """
        e = torch.take(self._table_t, gaps)
        s = e.sum(-1, keepdim=True)
        k = self.reciprocal_bits
        r = torch.div(self.prob_max << k, s, rounding_mode="floor")
        p = torch.addcmul(self._half_t, e, r)
        p >>= k
        return p.to(self.prob_dtype)


def make_integer_softmax(logit_scale: float, num_classes: int | None = None,
                         prob_dtype: Any = None, *, n_classes: int | None = None,
                         out_dtype: Any = None) -> IntegerSoftmax:
    """An `IntegerSoftmax` for int8 logits of real step ``logit_scale``.

    Parameters
    ----------
    logit_scale : float
        The real value of one logit code step; finite and > 0.
    num_classes : int
        The class count (the codes' last dimension), 1..2**30-1.
    prob_dtype : str or torch.dtype
        "uint8" (default: probabilities in steps of 1/255) or "uint16" (1/65535).
    n_classes, out_dtype
        Deprecated names of `num_classes` and `prob_dtype`.

    Returns
    -------
    IntegerSoftmax
        With its exp table built exactly (cached per scale).

    Raises
    ------
    ValueError
        For a bad scale, class count or probability type.
    """
    what = "make_integer_softmax"
    num_classes = renamed_keyword(num_classes, n_classes, "num_classes", "n_classes", what, None)
    prob_dtype = renamed_keyword(prob_dtype, out_dtype, "prob_dtype", "out_dtype", what, "uint8")
    if isinstance(logit_scale, bool) or not isinstance(logit_scale, (int, float)):
        raise TypeError(f"logit_scale must be a real number, not {type(logit_scale).__name__}")
    if not (math.isfinite(logit_scale) and logit_scale > 0):
        raise ValueError(f"logit_scale must be finite and > 0, not {logit_scale!r}")
    if not is_int(num_classes) or not 1 <= num_classes < 2**30:
        raise ValueError(f"num_classes must be an int in 1..2**30-1, not {num_classes!r}")
    dtype, top = softmax_out_dtype(prob_dtype)
    return IntegerSoftmax(logit_scale=float(logit_scale), num_classes=int(num_classes),
                          prob_dtype=dtype, prob_max=top,
                          table=_table(float(logit_scale), TABLE_FRAC_BITS))


def integer_softmax(codes: torch.Tensor, logit_scale: float, prob_dtype: Any = None, *,
                    out_dtype: Any = None) -> torch.Tensor:
    """Integer softmax over the last dim of int8 ``codes`` (real logits ``codes * logit_scale``).

    Parameters
    ----------
    codes : torch.Tensor
        int8 logit codes (..., num_classes).
    logit_scale : float
        The real value of one code step.
    prob_dtype : str or torch.dtype
        "uint8" (default) or "uint16"; ``out_dtype`` is its deprecated name.

    Returns
    -------
    torch.Tensor
        Probability codes (probability = code / 255 or / 65535); see `IntegerSoftmax` for the
        proven error bound. A convenience around `make_integer_softmax`.
    """
    if not isinstance(codes, torch.Tensor) or codes.dim() == 0:
        raise ValueError("integer_softmax needs a tensor of int8 codes with a class dimension")
    prob_dtype = renamed_keyword(prob_dtype, out_dtype, "prob_dtype", "out_dtype",
                                 "integer_softmax", "uint8")
    return make_integer_softmax(logit_scale, codes.shape[-1], prob_dtype)(codes)
