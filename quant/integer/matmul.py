"""uint8 x int8 -> int32 matrix products on PyTorch's integer kernels, exact by proof.

``x`` (N, K) uint8 codes times ``w.T`` for int8 weight codes ``w`` (M, K), giving the exact
accumulators ``acc[n, m] = sum_k x[n, k] * w[m, k]``. Every exactness condition below is a
`quant.accumulator_bound` proof over the declared operand ranges (pixels in [0, 255], weight
codes in [min w, max w]), made once when the weight is prepared. Kernels (the ``kernel``
argument; ``backend`` is its deprecated old name):

* ``"onednn"``: oneDNN's u8s8 int8 matmul (``torch.ops.onednn.qlinear_pointwise``, the
  kernel behind PyTorch's x86 int8 inference). On CPUs without VNNI (AVX2 only, like the one
  this was measured on) it multiplies with ``vpmaddubsw``, which adds *pairs* of u8*s8
  products in saturating int16: with full-range operands (2 * 255 * 127 = 64770 > 32767)
  results are silently wrong (we measured errors of 10**5..10**7 on random data). Whatever
  pairing the kernel uses, it is exact when a 2-term sum fits int16 --
  ``accumulator_bound((0, 255), w_range, 2, 16)``, i.e. ``max|w| <= 64``
  (`ONEDNN_SAFE_WEIGHT_MAX`). Wider codes are split into two planes, ``w = 2 * hi + lo`` with
  ``hi = w >> 1`` in [-64, 63] and ``lo = w & 1`` in {0, 1}, run as one matmul with 2M output
  channels (the kernel is bound by reading x, so the extra channels cost next to nothing) and
  recombined exactly in int64. PyTorch exposes no int32 output for this op, so the
  accumulators come back in fp32 lanes with unit scales: exact while each fits 25 signed bits
  (integers of magnitude <= 2**24 are fp32 values) -- ``accumulator_bound(..., K, 25)`` per
  plane -- and converted straight back to integers. A worst-case probe is also checked
  against the exact product when the weight is prepared.
* ``"int_mm"``: ``torch._int_mm`` (int32 accumulation, exact for any int8 weights under the
  int32 proof). On CPUs without AVX512-VNNI it is a plain loop: correct, ~10-30x slower.
* ``"int64"``: ``x.long() @ w.long().T``, the reference.

``"auto"`` picks ``"onednn"`` when its op exists and its proofs hold, else ``"int_mm"``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

import numfmt

from .._tensors import renamed_keyword
from ..accumulator import AccumulatorProof, accumulator_bound

__all__ = ["Kernel", "KERNELS", "Backend", "BACKENDS", "PIXEL_RANGE", "ONEDNN_SAFE_WEIGHT_MAX",
           "PreparedInt8Weight", "prepare_int8_weight", "onednn_available", "onednn_proofs"]

Kernel = Literal["auto", "onednn", "int_mm", "int64"]
KERNELS: tuple[str, ...] = ("auto", "onednn", "int_mm", "int64")
Backend = Kernel            # deprecated names of the same choice
BACKENDS = KERNELS
PIXEL_RANGE = (int(numfmt.get("uint8").lowest), int(numfmt.get("uint8").max))
ONEDNN_SAFE_WEIGHT_MAX = 64  # the largest w with accumulator_bound((0,255),(-w,w),2,16).fits
_PAIR_BITS = 16              # vpmaddubsw: two u8*s8 products summed in saturating int16
_FP32_CARRIER_BITS = 25      # |acc| <= 2**24: exact in an fp32 lane


def onednn_available() -> bool:
    """Whether this PyTorch build has oneDNN's int8 linear ops on CPU."""
    if not torch.backends.mkldnn.is_available():
        return False
    ops = torch.ops.onednn
    return hasattr(ops, "qlinear_prepack") and hasattr(ops, "qlinear_pointwise")


def _weight_range(codes: torch.Tensor) -> tuple[int, int]:
    lo, hi = (int(v) for v in torch.aminmax(codes))
    return lo, hi


def _planes(codes: torch.Tensor) -> list[torch.Tensor]:
    """The codes as oneDNN runs them: themselves if their pair sums fit int16, else the two
    planes hi = w >> 1 and lo = w & 1 (w = 2 hi + lo)."""
    if accumulator_bound(PIXEL_RANGE, _weight_range(codes), 2, _PAIR_BITS).fits:
        return [codes]
    return [codes >> 1, codes & 1]


def onednn_proofs(weight_codes: torch.Tensor) -> list[tuple[AccumulatorProof, AccumulatorProof]]:
    """Per plane oneDNN runs (see `_planes`): (int16 pair-sum proof, 25-bit fp32-carrier
    proof) for uint8 inputs against that plane's codes."""
    w = _check_weight(weight_codes)
    out = []
    for plane in _planes(w):
        rng = _weight_range(plane)
        out.append((accumulator_bound(PIXEL_RANGE, rng, 2, _PAIR_BITS),
                    accumulator_bound(PIXEL_RANGE, rng, w.shape[1], _FP32_CARRIER_BITS)))
    return out


def _check_weight(w: Any) -> torch.Tensor:
    if not isinstance(w, torch.Tensor):
        raise TypeError(f"weight codes must be a torch.Tensor, not {type(w).__name__}")
    if w.dtype != torch.int8:
        raise TypeError(f"weight codes must be int8, got {w.dtype}")
    if w.dim() != 2 or 0 in w.shape:
        raise ValueError(f"weight codes must be a non-empty (out_features, in_features) matrix, "
                         f"got shape {tuple(w.shape)}")
    if w.device.type != "cpu":
        raise ValueError(f"integer matmul runs on the CPU; weight codes are on {w.device}")
    return w.contiguous()


@dataclass(frozen=True)
class PreparedInt8Weight:
    """Int8 weight codes (M, K) ready for exact uint8 x int8 -> int32 products.

    Build with `prepare_int8_weight`; ``matmul(x)`` returns ``x @ codes.T`` as int32.
    ``kernel`` is the integer matmul kernel ("onednn", "int_mm" or "int64"); ``proof`` is the
    int32 accumulator proof (`quant.AccumulatorProof`) for uint8 inputs; ``planes`` is 2 when
    oneDNN runs the codes as hi/lo planes (see the module docstring).
    """

    codes: torch.Tensor = field(repr=False)
    kernel: str
    proof: AccumulatorProof = field(repr=False)
    planes: int = 1
    _packed: Any = field(default=None, repr=False, compare=False)
    _ones: Any = field(default=None, repr=False, compare=False)
    _zeros: Any = field(default=None, repr=False, compare=False)
    _codes_t: Any = field(default=None, repr=False, compare=False)

    @property
    def backend(self) -> str:
        """Deprecated name of `kernel`."""
        return self.kernel

    @property
    def in_features(self) -> int:
        """K, the length of an input row."""
        return self.codes.shape[1]

    @property
    def out_features(self) -> int:
        """M, the number of weight rows (output channels)."""
        return self.codes.shape[0]

    def check_input(self, x: Any) -> torch.Tensor:
        """``x`` if it is a uint8 (N, in_features) CPU tensor; a clear error otherwise."""
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"input must be a torch.Tensor of uint8 codes, not {type(x).__name__}")
        if x.dtype != torch.uint8:
            hint = " (pass the raw uint8 pixels, not scaled floats)" \
                if x.dtype.is_floating_point else ""
            raise TypeError(f"input must hold uint8 codes, got {x.dtype}{hint}")
        if x.dim() != 2 or x.shape[1] != self.in_features:
            raise ValueError(f"input must have shape (N, {self.in_features}), got "
                             f"{tuple(x.shape)}")
        if x.device.type != "cpu":
            raise ValueError(f"integer matmul runs on the CPU; input is on {x.device}")
        return x

    def matmul(self, x: torch.Tensor) -> torch.Tensor:
        """Exact ``x @ codes.T`` as an int32 (N, out_features) tensor, for uint8 x (N, K)."""
        x = self.check_input(x)
        if x.shape[0] == 0:
            return torch.zeros((0, self.out_features), dtype=torch.int32)
        return self.wide_product(x.contiguous()).to(torch.int32)

    def _onednn(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.onednn.qlinear_pointwise(
            x, 1.0, 0, self._packed, self._ones, self._zeros, None, 1.0, 0,
            torch.float32, "none", [], "")

    def kernel_output(self, x: torch.Tensor) -> torch.Tensor:
        """The kernel's own output for a checked (`check_input`) contiguous x: oneDNN's fp32
        lanes (exact integers, the `planes` weight planes side by side, hi first), the int32
        of `torch._int_mm`, or int64 -- what a fused consumer (`quant.native.softmax_head`)
        reads directly."""
        if self.kernel == "onednn":
            return self._onednn(x)
        if self.kernel == "int_mm":
            return torch._int_mm(x, self._codes_t)
        return x.to(torch.int64) @ self.codes.to(torch.int64).T

    def wide_product(self, x: torch.Tensor) -> torch.Tensor:
        """Exact ``x @ codes.T`` as int64 for a checked (`check_input`) contiguous x: the
        planes recombined (what the integer pipeline's torch path uses)."""
        out = self.kernel_output(x).to(torch.int64)
        if self.planes == 1:
            return out
        m = self.out_features
        return torch.add(out[:, m:], out[:, :m], alpha=2)  # lo + 2 hi, exact in int64


def _probe(codes: torch.Tensor) -> torch.Tensor:
    """Inputs that reach each channel's extreme accumulators (and so its extreme pair sums)."""
    pos = (codes > 0).to(torch.uint8) * PIXEL_RANGE[1]
    neg = (codes < 0).to(torch.uint8) * PIXEL_RANGE[1]
    full = torch.full((1, codes.shape[1]), PIXEL_RANGE[1], dtype=torch.uint8)
    return torch.cat([pos, neg, full]).contiguous()


def _build(codes: torch.Tensor, kernel: str, proof: AccumulatorProof) -> PreparedInt8Weight:
    if kernel == "onednn":
        planes = _planes(codes)
        stacked = torch.cat(planes).contiguous()
        m = stacked.shape[0]
        packed = torch.ops.onednn.qlinear_prepack(stacked, None)
        return PreparedInt8Weight(codes, "onednn", proof, len(planes), packed,
                                  torch.ones(m, dtype=torch.float32),
                                  torch.zeros(m, dtype=torch.int64))
    if kernel == "int_mm":
        # _int_mm wants the (K, M) right operand; the transposed view of the row-major codes
        # is the layout its CPU loop reads fastest.
        return PreparedInt8Weight(codes, "int_mm", proof, 1, _codes_t=codes.T)
    return PreparedInt8Weight(codes, "int64", proof)


def _onednn_unsafe_reason(codes: torch.Tensor) -> str | None:
    if not onednn_available():
        return "this PyTorch has no oneDNN int8 linear op"
    for _, carrier in onednn_proofs(codes):     # pair sums: fit by the hi/lo split
        if not carrier.fits:
            return f"accumulators would not come back exactly through the op's fp32 output " \
                   f"({carrier.reason})"
    return None


def prepare_int8_weight(weight_codes: torch.Tensor, kernel: Kernel | None = None, *,
                        backend: Kernel | None = None) -> PreparedInt8Weight:
    """Prepare int8 ``weight_codes`` (M, K) for exact uint8 x int8 products (see module doc).

    Parameters
    ----------
    weight_codes : torch.Tensor
        int8 (M, K), not empty; copied, never modified.
    kernel : str
        "auto" (default), "onednn", "int_mm" or "int64".
    backend : str, optional
        Deprecated name of `kernel`.

    Returns
    -------
    PreparedInt8Weight

    Raises
    ------
    ValueError
        If int32 could overflow for some uint8 input (quoting the proof), for an unknown
        kernel, or when "onednn" is asked for and its pair-sum / fp32-carrier proofs fail.
    RuntimeError
        When "onednn" is asked for and differs from the exact product on worst-case probe
        inputs ("auto" then warns and falls back to "int_mm").
    """
    kernel = renamed_keyword(kernel, backend, "kernel", "backend", "prepare_int8_weight", "auto")
    if kernel not in KERNELS:
        raise ValueError(f"unknown integer matmul kernel {kernel!r}; choose one of {KERNELS}")
    codes = _check_weight(weight_codes).clone()
    proof = accumulator_bound(PIXEL_RANGE, _weight_range(codes), codes.shape[1], 32)
    if not proof.fits:
        raise ValueError(f"int32 accumulators can overflow: {proof.reason}")
    if kernel in ("auto", "onednn"):
        reason = _onednn_unsafe_reason(codes)
        if reason is None:
            prepared = _build(codes, "onednn", proof)
            probe = _probe(codes)
            exact = probe.to(torch.int64) @ codes.to(torch.int64).T
            if torch.equal(prepared.wide_product(probe), exact):
                return prepared
            reason = "oneDNN's result differs from the exact product on worst-case probe inputs"
            if kernel == "onednn":
                raise RuntimeError(f"kernel 'onednn' is not exact here: {reason}")
            warnings.warn(f"integer matmul: {reason}; using torch._int_mm", RuntimeWarning,
                          stacklevel=2)
        elif kernel == "onednn":
            raise ValueError(f"kernel 'onednn' cannot be used: {reason}")
        kernel = "int_mm"
    return _build(codes, kernel, proof)
