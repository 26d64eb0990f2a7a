"""An integer-only softmax regression: uint8 pixels -> uint8 class probabilities, no floats.

The data path of `IntegerSoftmaxRegression` (``N`` images of ``K`` uint8 pixels, ``M`` classes):

1. ``acc = x @ w.T + beta``: uint8 pixels times int8 weight codes (per-channel scales) on
   PyTorch's integer kernels (`quant.integer_matmul`), int32 accumulators, the bias folded in
   as int32 codes ``beta``. `quant.accumulator_bound` proves, once per weight matrix, that no
   uint8 input can overflow them, with the bias added (and the kernel's own narrower
   intermediates, see `quant.integer_matmul`). The weight codes are a per-class symmetric
   `quant.ScaledInt8` encoding.
2. ``z = floor((acc * m_j + 2**(k_j-1)) / 2**k_j)``: requantization to one common logit step
   ``s`` with a per-class fixed-point multiplier ``m_j`` in [2**30, 2**31) and shift ``k_j``
   from `quant.fixedpoint.quantize_multiplier` (``m_j 2**-k_j`` is ``s_w[j] / s`` to a relative
   2**-31), rounded to nearest with ties up: one fused multiply-add (the bias rides in its
   constant) and one shift in int64 (`requantize_ties_up`, and the same operations in C). It
   equals `quant.fixedpoint.requantize`, the one reference requantizer (~40 tensor ops, any
   int64 accumulator and shift), except that exact negative ties go up rather than away from
   0: the fused form trades that tie rule for one multiply-add and one shift per logit, which
   is what lets it run inside the C row loop; both are exact roundings of the same product.
3. ``q = 127 - min(max(z) - z, 255)`` as int8: the logits relative to the row max, so the top
   logit of every row is code 127 and the int8 range spans the 255 steps below it (that is
   where softmax has its resolution; a logit further down saturates at -128).
4. `IntegerSoftmax` of ``q``: a 256-entry exp table, int64 sum, one integer reciprocal per
   row, to uint8 (or uint16) probabilities. The pipeline feeds it the gaps ``max - q`` that
   step 3 already holds.

Steps 2-4 run as one fused loop per row (`quant.native.softmax_head`) where quant's C
extension is built, in the same int64 operations as the torch ops that run otherwise; the
tests hold the two to each other bit for bit.

Error budget against the float model (logits ``W (a x + c) + b`` for pixels ``x``, with the
input map ``a`` = ``input_scale``, ``c`` = ``input_offset`` folded into W and b):

* weights: per-channel symmetric rounding to ``+-weight_max`` codes, ``|dW| <= s_w/2``;
  bias rounding ``|d b| <= s_w/2``. This is the only model-dependent error (measured by the
  benchmark, not bounded here).
* requantization: ``|z - acc * s_w / s| <= 1/2 + |acc * s_w / s| 2**-31`` steps of ``s``.
* saturation: a logit more than 255 steps below its row max is read as exactly 255 below,
  which changes no probability by more than ``(n - 1) exp(-255 s)``. The default step
  ``s = log(4 (n - 1) P) / 255`` (0.0358 for 10 classes, P = 255) makes that a quarter of an
  output step and keeps `IntegerSoftmax.argmax_safe`.
* softmax: `IntegerSoftmax.error_bound_steps` (0.5003 output steps for uint8).
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import torch

import numfmt

from .._tensors import is_int, renamed_keyword
from ..fixedpoint import quantize_multipliers
from ..scaled import ScaledInt8
from .matmul import Kernel, prepare_int8_weight
from .regression import IntegerSoftmaxRegression, requantize_ties_up
from .softmax import make_integer_softmax, softmax_out_dtype

__all__ = ["IntegerSoftmaxRegression", "quantize_softmax_regression", "default_logit_scale",
           "requantize_ties_up", "DEFAULT_WEIGHT_MAX"]

DEFAULT_WEIGHT_MAX = int(numfmt.get("int8").max)  # symmetric narrow int8, as ScaledInt8's default
_INT32 = numfmt.get("int32")
_INT32_MAX, _INT32_MIN = int(_INT32.max), int(_INT32.lowest)


def default_logit_scale(num_classes: int, prob_dtype: Any = "uint8") -> float:
    """``log(4 (n - 1) P) / 255``: the int8 logit step at which saturating a logit 255 steps
    below the row max costs at most a quarter of an output step.

    Parameters
    ----------
    num_classes : int
        n, the class count.
    prob_dtype : str or torch.dtype
        "uint8" (P = 255) or "uint16" (P = 65535).

    Returns
    -------
    float
    """
    _, top = softmax_out_dtype(prob_dtype)
    return math.log(4 * max(num_classes - 1, 1) * top) / 255


def _as_tensor(v: Any, name: str, k: int) -> torch.Tensor:
    t = torch.as_tensor(v, dtype=torch.float64) if not isinstance(v, torch.Tensor) \
        else v.detach().to(torch.float64)
    if t.dim() > 1 or (t.dim() == 1 and t.shape[0] != k):
        raise ValueError(f"{name} must be a scalar or a ({k},) vector (one per input feature), "
                         f"got shape {tuple(t.shape)}")
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} contains NaN or infinity")
    return t


def _fold_input_map(weight: torch.Tensor, bias: torch.Tensor, input_scale: object,
                    input_offset: object) -> tuple[torch.Tensor, torch.Tensor]:
    """float64 (W a, b + W c): the features' map f = a x + c folded into W and b."""
    w = weight.detach().to(torch.float64)
    b = bias.detach().to(torch.float64)
    if not (torch.isfinite(w).all() and torch.isfinite(b).all()):
        raise ValueError("weight or bias contains NaN or infinity")
    k = w.shape[1]
    a = _as_tensor(input_scale, "input_scale", k)
    c = _as_tensor(input_offset, "input_offset", k)
    if not (a > 0).all():
        raise ValueError("input_scale must be > 0 (the real value of one pixel step)")
    return w * a, b + (w @ c if c.dim() == 1 else w.sum(1) * c)


def _check_model(weight: object, bias: object, weight_max: object) -> None:
    for name, t in (("weight", weight), ("bias", bias)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, not {type(t).__name__}")
        if not t.dtype.is_floating_point:
            raise TypeError(f"{name} must be a float tensor (the trained model's), got {t.dtype}")
    if weight.dim() != 2 or 0 in weight.shape:
        raise ValueError(f"weight must be a non-empty (classes, features) matrix, got "
                         f"{tuple(weight.shape)}")
    m = weight.shape[0]
    if m < 2:
        raise ValueError(f"softmax regression needs at least 2 classes, weight has {m} row")
    if bias.shape != (m,):
        raise ValueError(f"bias must have shape ({m},) to match weight {tuple(weight.shape)}, got "
                         f"{tuple(bias.shape)}")
    if not is_int(weight_max) or not 1 <= weight_max <= DEFAULT_WEIGHT_MAX:
        raise ValueError(f"weight_max must be an int in 1..127, not {weight_max!r}")


def _encode_weight_and_bias(w_eff: torch.Tensor, b_eff: torch.Tensor, weight_max: int
                            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(int8 codes per class in +-weight_max, int64 bias codes, float64 per-class steps)."""
    row_max = w_eff.abs().amax(1)
    # A class with all-zero weights keeps a step that still holds its bias in int32.
    fallback = torch.where(b_eff != 0, b_eff.abs() / 2 ** 24, torch.ones_like(b_eff))
    enc = ScaledInt8.encode(w_eff, scale=torch.where(row_max > 0, row_max / weight_max, fallback),
                            zero_point=0, axis=0)
    codes = enc.codes
    if int(codes.to(torch.int16).abs().max()) > weight_max:  # float32 scales round down rarely
        raise ValueError(f"weight codes exceed +-{weight_max} after encoding; this is a bug")
    s_w = enc.scale.to(torch.float64)  # the float32-rounded steps the codes are on
    beta = torch.round(b_eff / s_w)
    if beta.abs().max() > _INT32_MAX:
        raise ValueError("bias codes overflow int32: the bias is more than 2**31 weight steps")
    return codes, beta.to(torch.int64), s_w


def quantize_softmax_regression(weight: torch.Tensor, bias: torch.Tensor, *,
                                input_scale: float | torch.Tensor = 1 / 255,
                                input_offset: float | torch.Tensor = 0.0,
                                logit_scale: float | None = None,
                                prob_dtype: Any = None,
                                weight_max: int = DEFAULT_WEIGHT_MAX,
                                kernel: Kernel | None = None, out_dtype: Any = None,
                                backend: Kernel | None = None) -> IntegerSoftmaxRegression:
    """The integer pipeline for a float softmax regression ``logits = W f + b``.

    Parameters
    ----------
    weight, bias : torch.Tensor
        The float model's (M, K) weight and (M,) bias (any float dtype, not modified).
    input_scale, input_offset : float or torch.Tensor
        The features are ``f = input_scale * x + input_offset`` for uint8 pixels ``x``
        (scalars or per-feature (K,) vectors; the default is ``x / 255``,
        `models.data.images_to_float`).
    logit_scale : float, optional
        The int8 logit step; defaults to `default_logit_scale`.
    prob_dtype : str or torch.dtype
        "uint8" (default) or "uint16" probability codes.
    weight_max : int
        Weight codes lie in ``-weight_max..weight_max`` (1..127).
    kernel : str
        The integer matmul kernel: "auto" (default), "onednn", "int_mm", "int64".
    out_dtype, backend
        Deprecated names of `prob_dtype` and `kernel`.

    Returns
    -------
    IntegerSoftmaxRegression

    Raises
    ------
    ValueError
        On shape mismatches, non-finite values, a non-positive input scale, an unusable
        weight_max, or accumulators that could overflow int32.

    Warns
    -----
    RuntimeWarning
        When the probability type cannot guarantee the argmax (`IntegerSoftmax.argmax_safe`,
        e.g. uint8 with many classes: use uint16).

    Notes
    -----
    The input map is folded into W and b in float64; W is quantized per class to int8 codes
    (`quant.ScaledInt8`, symmetric, round half to even; every kernel takes the full 127,
    oneDNN through its hi/lo planes), b to int32 codes of the same per-class step.
    """
    what = "quantize_softmax_regression"
    prob_dtype = renamed_keyword(prob_dtype, out_dtype, "prob_dtype", "out_dtype", what, "uint8")
    kernel = renamed_keyword(kernel, backend, "kernel", "backend", what, "auto")
    _check_model(weight, bias, weight_max)
    m = weight.shape[0]
    w_eff, b_eff = _fold_input_map(weight, bias, input_scale, input_offset)
    codes, beta, s_w = _encode_weight_and_bias(w_eff, b_eff, weight_max)
    prepared = prepare_int8_weight(codes, kernel)
    proof = prepared.proof
    if proof.lowest + int(beta.min()) < _INT32_MIN or proof.highest + int(beta.max()) > _INT32_MAX:
        raise ValueError(f"int32 accumulators plus bias codes in [{int(beta.min())}, "
                         f"{int(beta.max())}] can overflow: {proof.reason}")
    s = default_logit_scale(m, prob_dtype) if logit_scale is None else logit_scale
    softmax = make_integer_softmax(s, m, prob_dtype)
    if not softmax.argmax_safe:
        warnings.warn(f"with {m} classes and logit step {softmax.logit_scale:.4g}, "
                      f"{str(softmax.prob_dtype)[6:]} probabilities can collapse near-ties onto "
                      f"one code, so their argmax is not guaranteed to follow the logits; use "
                      f"prob_dtype='uint16' or a larger logit_scale", RuntimeWarning,
                      stacklevel=2)
    mults, shifts = quantize_multipliers(s_w / softmax.logit_scale)
    if not ((shifts >= 1) & (shifts <= 62)).all():
        raise ValueError(f"weight steps {s_w.tolist()} against logit step {softmax.logit_scale} "
                         f"need requantization shifts outside 1..62 ({shifts.tolist()})")
    return IntegerSoftmaxRegression(weight=prepared, bias_codes=tuple(beta.tolist()),
                                    multipliers=tuple(mults.tolist()),
                                    shifts=tuple(shifts.tolist()), softmax=softmax,
                                    weight_scales=tuple(float(v) for v in s_w),
                                    weight_max=weight_max)
