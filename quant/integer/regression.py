"""`IntegerSoftmaxRegression`: the integer-only model's data path (built by
`quant.integer.linear.quantize_softmax_regression`, which documents the pipeline and its error
budget), and its fused requantizer."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from .. import native
from ..native import int8_head
from ..accumulator import AccumulatorProof
from .matmul import PreparedInt8Weight
from .softmax import IntegerSoftmax

__all__ = ["IntegerSoftmaxRegression", "requantize_ties_up"]


def requantize_ties_up(acc: torch.Tensor, multipliers: torch.Tensor, offsets: torch.Tensor,
                       shifts: torch.Tensor) -> torch.Tensor:
    """The pipeline's fused requantizer: ``floor((acc * m + c) / 2**k)`` per class, in int64.

    Parameters
    ----------
    acc : torch.Tensor
        int64 (N, classes) accumulators.
    multipliers, offsets, shifts : torch.Tensor
        int64 (classes,): m, c = beta * m + 2**(k-1) (the bias codes beta folded in) and k.

    Returns
    -------
    torch.Tensor
        int64 (N, classes): ``(acc + beta) * m / 2**k`` rounded to nearest, ties up (toward
        +inf) -- the bias add, the multiply and the rounding in one fused multiply-add and one
        arithmetic shift (the C loop `quant.native.softmax_head` runs the same operations).

    Notes
    -----
    `quant.fixedpoint.requantize` is the reference requantizer: exact for any int64
    accumulator and shift, ties away from zero, ~40 tensor ops. This one needs the
    pipeline's proof (``|acc + beta| < 2**31`` and ``m < 2**31`` keep every intermediate
    below 2**63) and differs from the reference only on exact negative ties (up here, away
    from zero there), which is what lets it be one multiply-add and one shift per logit.
    """
    z = torch.addcmul(offsets, acc, multipliers)
    z >>= shifts
    return z


@dataclass(frozen=True)
class IntegerSoftmaxRegression:
    """uint8 images -> uint8/uint16 class probabilities, integer-only (`quant.integer.linear`).

    Build with `quantize_softmax_regression`. Fields are the integer model: int8 weight codes
    (in ``weight``), int32 ``bias_codes``, the per-class fixed-point ``multipliers`` (in
    [2**30, 2**31)) and ``shifts`` of the requantization (`quant.fixedpoint`), and the
    ``softmax``. ``weight_scales`` (real logit units per accumulator unit, per class) and
    ``logit_scale`` document the codes; the data path never uses them.
    """

    weight: PreparedInt8Weight
    bias_codes: tuple[int, ...]
    multipliers: tuple[int, ...]
    shifts: tuple[int, ...]
    softmax: IntegerSoftmax
    weight_scales: tuple[float, ...]
    weight_max: int
    _bias_t: torch.Tensor = field(init=False, repr=False, compare=False, hash=False)
    _mult_t: torch.Tensor = field(init=False, repr=False, compare=False, hash=False)
    _offset_t: torch.Tensor = field(init=False, repr=False, compare=False, hash=False)
    _shift_t: torch.Tensor = field(init=False, repr=False, compare=False, hash=False)
    _head: Any = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        if not all(1 <= k <= 62 for k in self.shifts):
            raise ValueError(f"requantization shifts must lie in 1..62, got {self.shifts}")
        if not all(0 < m < 2**31 for m in self.multipliers):
            raise ValueError("requantization multipliers must lie in 1..2**31-1")
        as_t = lambda v: torch.tensor(v, dtype=torch.int64)  # noqa: E731
        object.__setattr__(self, "_bias_t", as_t(self.bias_codes))
        object.__setattr__(self, "_mult_t", as_t(self.multipliers))
        object.__setattr__(self, "_shift_t", as_t(self.shifts))
        object.__setattr__(self, "_offset_t", as_t([
            b * m + (1 << (k - 1)) for b, m, k in zip(self.bias_codes, self.multipliers,
                                                      self.shifts)]))
        # The whole data path in one C call per batch (quant.native.int8_head), same bits;
        # the int64 kernel stays the torch reference.
        object.__setattr__(self, "_head", int8_head.prepare_int8_head(
            self.weight.codes, self._mult_t, self._offset_t, self._shift_t, self.softmax)
            if int8_head.supported_isas() and self.weight.kernel != "int64" else None)

    # -- description --
    @property
    def in_features(self) -> int:
        """K, the pixels per image."""
        return self.weight.in_features

    @property
    def num_classes(self) -> int:
        """M, the class count."""
        return self.weight.out_features

    @property
    def kernel(self) -> str:
        """The integer matmul kernel in use ("onednn", "int_mm" or "int64")."""
        return self.weight.kernel

    @property
    def backend(self) -> str:
        """Deprecated name of `kernel`."""
        return self.weight.kernel

    @property
    def implementation(self) -> str:
        """Which loops `probabilities` runs for CPU inputs: "native" (the whole head in one C
        call, `quant.native.int8_head`, for uint8 (N, K) input; else the fused C head after
        the integer kernel) or "torch" (the int64 torch ops), as `quant.native` picks."""
        fused = self.weight.kernel in ("onednn", "int_mm") and native.available()
        return "native" if fused else "torch"

    @property
    def logit_scale(self) -> float:
        """Real logit value of one int8 logit step."""
        return self.softmax.logit_scale

    @property
    def accumulator_proof(self) -> AccumulatorProof:
        """The int32 proof for the products before the bias (the bias is checked against
        its ``lowest``/``highest`` at build time)."""
        return self.weight.proof

    @property
    def weight_bytes(self) -> int:
        """Bytes of the parameters the data path reads: int8 weights, int32 bias, int32
        multipliers and one-byte shifts (the per-channel scales' integer stand-ins)."""
        return self.weight.codes.numel() + 4 * len(self.bias_codes) + 4 * len(self.multipliers) \
            + len(self.shifts)

    @property
    def table_bytes(self) -> int:
        """Bytes of the softmax's exp table (a constant of the logit step, not learned)."""
        return 4 * len(self.softmax.table)

    # -- data path --
    def _gaps(self, x: torch.Tensor) -> torch.Tensor:
        z = requantize_ties_up(self.weight.wide_product(x), self._mult_t, self._offset_t,
                               self._shift_t)
        gaps = z.amax(1, keepdim=True) - z
        return gaps.clamp_(max=255)

    def _checked(self, x: Any) -> torch.Tensor:
        x = self.weight.check_input(x if not isinstance(x, torch.Tensor) or x.dim() != 3
                                    else x.reshape(x.shape[0], -1))
        return x.contiguous()

    def accumulators(self, x: torch.Tensor) -> torch.Tensor:
        """int32 (N, classes): ``x @ w.T + bias_codes``, exact. ``x``: uint8 (N, K) or
        (N, H, W) with H*W = K."""
        x = self._checked(x)
        return (self.weight.matmul(x).to(torch.int64) + self._bias_t).to(torch.int32)

    def logits_fixed(self, x: torch.Tensor) -> torch.Tensor:
        """int64 (N, classes): `accumulators` requantized to one common step, ``logit_scale``:
        ``floor(acc * m / 2**shift + 1/2)`` (nearest, ties up), before the row max is
        subtracted."""
        x = self._checked(x)
        return requantize_ties_up(self.weight.matmul(x).to(torch.int64), self._mult_t,
                                  self._offset_t, self._shift_t)

    def logit_codes(self, x: torch.Tensor) -> torch.Tensor:
        """int8 (N, classes) logits relative to the row max: 127 at the top, saturating at -128;
        real logit differences are ``(q - 127) * logit_scale``."""
        x = self._checked(x)
        if x.shape[0] == 0:
            return torch.zeros((0, self.num_classes), dtype=torch.int8)
        return (127 - self._gaps(x)).to(torch.int8)

    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        """Probability codes (N, classes) of ``softmax.prob_dtype``; probability = code /
        ``softmax.prob_max``. Equal to ``softmax(logit_codes(x))`` exactly."""
        if self._head is not None and self._head.accepts(x) and native.available():
            return self._head.run_accepted(x)
        x = self._checked(x)
        if x.shape[0] == 0:
            return torch.zeros((0, self.num_classes), dtype=self.softmax.prob_dtype)
        if self.weight.kernel in ("onednn", "int_mm") and native.implementation(x) == "native":
            carrier = self.weight.kernel_output(x).contiguous()     # fp32 lanes or int32
            sm = self.softmax
            return native.softmax_head(carrier, self.weight.planes, self._mult_t,
                                       self._offset_t, self._shift_t, sm.table_tensor,
                                       sm.reciprocal_bits, sm.prob_max, sm.prob_dtype)
        return self.softmax.from_gaps(self._gaps(x))

    __call__ = probabilities

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """int64 (N,) class of the largest probability code (first on ties)."""
        if self._head is not None and self._head.accepts(x) and native.available():
            return self._head.predict(x, "native")
        p = self.probabilities(x)
        return (p if p.dtype == torch.uint8 else p.to(torch.int32)).argmax(1)
