"""A trained softmax regression evaluated under each number format and int8 encoding.

The model of computation for a float format F (``fp64`` ... ``fp4_e2m1fn``):

* inputs (pixels k/255) and the weights and bias are rounded to F (`numfmt.round_to`, nearest
  even, the format's own overflow rule);
* logits: products of F values accumulated in FP32 (FP64 for fp64) with the bias, the sum
  rounded once to F -- what a tensor core does (F x F products are exact in FP32 for every
  format narrower than FP32). TF32 is a matmul-input format only, so its logits and softmax
  are FP32;
* softmax: every operation (exp, subtraction, the left-to-right sum, the division) is rounded
  to F, as F's own arithmetic would be. Each is computed in float64 and rounded once (for
  formats of at most 25 significand bits the float64 result of one +, -, / is close enough that
  the double rounding is harmless; exp is float64 libm-accurate, so its rounding is correct
  except within an ulp of float64 of a rounding boundary). For fp64, torch's float64
  arithmetic is used directly.

  *Naive* softmax is exp(z) / sum exp(z); it *fails* for a sample when an exp or the running
  sum rounds past F's largest value (to inf or NaN, or, for formats with neither -- FP6, FP4
  -- to a value clamped at max, which is counted too), or a probability comes out NaN (0/0
  when every exp underflows). *Stable* softmax subtracts the
  row max first. Cross-entropy is the stable log-softmax in F: log(sum) - (z_y - max).

For the int8 encodings (`ENCODINGS`), weights and inputs are encoded with `quant`:
``scaled_int8_per_tensor`` (W: symmetric int8, one min-max scale), ``scaled_int8_per_channel``
(W: one scale per class row), both with the inputs as asymmetric uint8 per tensor over the
static range [0, 1] (scale 1/255 and zero point 0: pixel codes are exact, as in int8 pipelines,
and no image's codes depend on the rest of its batch);
``log_int8`` (W and the inputs log-encoded, `quant.LogInt8`, 3 fractional bits). The bias
stays FP32. Logits are the decoded values' products accumulated exactly (float64, as an int32
accumulator times the scales would be), rounded to FP32; the softmax is FP32.
``integer_only`` runs `quant.quantize_softmax_regression` end to end in integers (uint8 pixels,
int8 weights, int32 accumulators and bias, int8 logits, integer softmax to uint8 probabilities);
its logits are reported dequantized and relative to the row max.

Reported per format: test accuracy (argmax of F's logits, first index on ties), agreement of
those predictions with the FP64 evaluation of the same model, mean cross-entropy, the largest
|p - p_fp64| over all probabilities (stable softmax), the shares of samples whose naive and
stable softmax overflowed, and the bytes of W and b stored in F.
"""

from __future__ import annotations

import math
import sys
from dataclasses import asdict, dataclass
from fractions import Fraction
from typing import Any, Iterable

import numfmt
import torch

from models.data import images_to_float
from models.softmax_regression import SoftmaxRegression

__all__ = ["ENCODINGS", "RESULT_KEYS", "FormatResult", "FormatOutputs", "evaluate",
           "evaluate_all", "default_targets", "run_in_format", "exp_in_format",
           "softmax_in_format", "cross_entropy_in_format", "weight_bytes"]

ENCODINGS: tuple[str, ...] = ("scaled_int8_per_tensor", "scaled_int8_per_channel", "log_int8",
                              "integer_only")
RESULT_KEYS: tuple[str, ...] = ("format", "accuracy", "agreement_fp64", "mean_cross_entropy",
                                "max_abs_prob_err", "naive_softmax_overflow_share",
                                "stable_softmax_overflow_share", "weight_bytes")
# TF32 exists only inside tensor cores: results, elementwise math and stored weights are FP32.
_HELD_IN = {"tf32": "fp32"}


def _float64_limit(fmt: numfmt.Format) -> float:
    """The exact value past which rounding into ``fmt`` overflows, as a float64 (inf if larger)."""
    lim: Fraction = numfmt.exp_bounds(fmt).overflow_limit
    try:
        return float(lim)
    except OverflowError:
        return math.inf


def _round(t: torch.Tensor, fmt: numfmt.Format) -> torch.Tensor:
    """float64 tensor -> float64 tensor of ``fmt`` values (identity for fp64)."""
    return t if fmt.name == "fp64" else numfmt.round_to(t, fmt)


def _round_flag(t: torch.Tensor, fmt: numfmt.Format) -> tuple[torch.Tensor, torch.Tensor]:
    """Round float64 ``t`` to ``fmt``; also a mask of the entries that overflowed (rounded
    past max: inf/NaN, or clamped for formats without either), NaN inputs included."""
    r = _round(t, fmt)
    over = ~torch.isfinite(r)
    if not (fmt.has_inf or fmt.has_nan):
        # Saturating formats clamp silently; a value at or past max + ulp/2 would round past max
        # (their max has an odd significand, so the tie at the limit rounds up too).
        over |= t.abs() >= _float64_limit(fmt)
    return r, over


def exp_in_format(z: torch.Tensor, fmt: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """(exp(z) rounded into ``fmt``, overflow mask) for a float64 tensor ``z`` of fmt values."""
    f = numfmt.get(fmt)
    return _round_flag(torch.exp(z.to(torch.float64)), f)


def softmax_in_format(z: torch.Tensor, fmt: Any, *, stable: bool = True,
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax over the last axis of ``z`` (values of ``fmt``), every op rounded to ``fmt``.

    Returns (probabilities as float64 holding fmt values, per-row mask of rows that overflowed:
    an exp or the running sum rounded past max, or a probability came out inf/NaN).
    The sum runs left to right over the classes.
    """
    f = numfmt.get(fmt)
    z = z.to(torch.float64)
    if stable:
        d = _round(z - z.max(dim=-1, keepdim=True).values, f)
    else:
        d = z
    e, over = exp_in_format(d, f)
    failed = over.any(dim=-1)
    s = e[..., 0]
    for k in range(1, e.shape[-1]):
        s, o = _round_flag(s + e[..., k], f)
        failed |= o
    p, o = _round_flag(e / s[..., None], f)
    failed |= o.any(dim=-1)
    return p, failed


def cross_entropy_in_format(z: torch.Tensor, labels: torch.Tensor, fmt: Any) -> torch.Tensor:
    """Per-sample cross-entropy log(sum_j exp(z_j - m)) - (z_y - m), m = max_j z_j, each op
    rounded to ``fmt`` (the stable log-softmax a pipeline in fmt computes). float64 result."""
    f = numfmt.get(fmt)
    z = z.to(torch.float64)
    d = _round(z - z.max(dim=-1, keepdim=True).values, f)
    e = _round(torch.exp(d), f)
    s = e[..., 0]
    for k in range(1, e.shape[-1]):
        s = _round(s + e[..., k], f)
    log_s = _round(torch.log(s), f)
    return _round(log_s - d.gather(-1, labels[:, None])[:, 0], f)


# ---- one model, one format -----------------------------------------------------------------
@dataclass(frozen=True)
class FormatOutputs:
    """What the model computes under one format (float64 tensors of the format's values)."""

    name: str
    logits: torch.Tensor           # (N, C)
    probs: torch.Tensor            # (N, C), stable softmax
    naive_failed: torch.Tensor     # (N,) bool
    stable_failed: torch.Tensor    # (N,) bool
    softmax_format: str            # the format the softmax ran in
    weight_bytes: int

    @property
    def predictions(self) -> torch.Tensor:
        return self.logits.argmax(dim=1)


def weight_bytes(model: SoftmaxRegression, fmt: Any) -> int:
    """Bytes to store W and b in a float format: ceil(elements * bits / 8) (FP6/FP4 packed);
    TF32 is held in FP32 (4 bytes)."""
    f = numfmt.get(_HELD_IN.get(numfmt.get(fmt).name, fmt))
    n = sum(p.numel() for p in model.parameters())
    return math.ceil(n * f.bits / 8)


def _check_model(model: Any) -> None:
    if not isinstance(model, SoftmaxRegression):
        raise TypeError(f"evaluate needs a SoftmaxRegression, not {type(model).__name__}")


def _params64(model: SoftmaxRegression) -> tuple[torch.Tensor, torch.Tensor]:
    _check_model(model)
    w = model.linear.weight.detach().to("cpu", torch.float64)
    b = model.linear.bias.detach().to("cpu", torch.float64)
    if not (torch.isfinite(w).all() and torch.isfinite(b).all()):
        raise ValueError("the model's weights contain NaN or infinity (did training diverge?)")
    return w, b


def _inputs_in(images: torch.Tensor, f: numfmt.Format) -> torch.Tensor:
    """Inputs as float64 values of ``f``: uint8 pixels through a 256-entry table of k/255
    correctly rounded (exact and fast), float features rounded directly."""
    if images.dtype == torch.uint8:
        table = _round(torch.arange(256, dtype=torch.float64) / 255.0, f)
        idx = images.reshape(-1).to(torch.int32)
        return table.index_select(0, idx).reshape(images.shape[0], -1)
    return _round(images_to_float(images, torch.float64), f)


def _float_outputs(model: SoftmaxRegression, images: torch.Tensor,
                   f: numfmt.Format) -> FormatOutputs:
    w, b = _params64(model)
    xf, wf, bf = _inputs_in(images, f), _round(w, f), _round(b, f)
    held = numfmt.get(_HELD_IN.get(f.name, f.name))
    if f.name == "fp64":
        z = torch.mm(wf, xf.T).T + bf
    else:
        z32 = torch.mm(wf.float(), xf.float().T).T + bf.float()
        z = _round(z32.double(), held)
    p, stable_failed = softmax_in_format(z, held, stable=True)
    _, naive_failed = softmax_in_format(z, held, stable=False)
    return FormatOutputs(f.name, z, p, naive_failed, stable_failed, held.name,
                         weight_bytes(model, f))


def _encoded_bytes(enc: Any) -> int:
    """Bytes to store an encoded weight tensor: one per code; each scale as a float32 (quant
    uses scales at float32 precision); each nonzero zero point as one byte; LogInt8's offset
    and frac_bits as one byte each."""
    n = enc.codes.numel() * enc.codes.element_size()
    if hasattr(enc, "scale"):
        n += 4 * enc.scale.numel()
        zp = torch.as_tensor(enc.zero_point)
        if bool((zp != 0).any()):
            n += zp.numel()
    else:
        n += 2
    return n


def _encode_weight(name: str, w: torch.Tensor) -> Any:
    import quant

    if name == "log_int8":
        return quant.LogInt8.encode(w)  # offset calibrated so that max |w| gets the top code
    # symmetric int8 (codes -127..127), scale from min-max, one per tensor or per class row
    return quant.ScaledInt8.encode(w, axis=0 if name == "scaled_int8_per_channel" else None,
                                   calibration="minmax")


def _encode_inputs(name: str, x: torch.Tensor) -> Any:
    """Inputs quantized statically over [0, 1] (pixel features), widened to the batch's own
    range only for data outside it, so an image's codes never depend on its batch mates."""
    import quant

    lo = min(0.0, float(x.min())) if x.numel() else 0.0
    hi = max(1.0, float(x.max())) if x.numel() else 1.0
    if name == "log_int8":
        anchor = quant.LogInt8.encode(torch.tensor([max(hi, -lo)], dtype=torch.float64))
        return quant.LogInt8.encode(x, offset=anchor.offset)
    # Asymmetric uint8 with a min-max scale, as int8 pipelines quantize activations. For pixels
    # k/255 that is scale 1/255, zero point 0: the codes are k, exactly.
    anchor = quant.ScaledInt8.encode(torch.tensor([lo, hi], dtype=torch.float64),
                                     zero_point=None, calibration="minmax")
    return quant.ScaledInt8.encode(x, scale=float(anchor.scale),
                                   zero_point=int(anchor.zero_point), dtype=anchor.dtype)


def _encoded_outputs(model: SoftmaxRegression, x64: torch.Tensor, name: str) -> FormatOutputs:
    w, b = _params64(model)
    w_enc = _encode_weight(name, w)
    x_enc = _encode_inputs(name, x64)
    wd = w_enc.decode(torch.float64)
    xd = x_enc.decode(torch.float64)
    fp32 = numfmt.get("fp32")
    b32 = b.float().double()
    # Products of decoded values summed in float64: what an int32 accumulator times the
    # scales gives (exact up to float64 rounding), then dequantized to FP32.
    z = _round(torch.mm(wd, xd.T).T + b32, fp32)
    p, stable_failed = softmax_in_format(z, fp32, stable=True)
    _, naive_failed = softmax_in_format(z, fp32, stable=False)
    nbytes = _encoded_bytes(w_enc) + b.numel() * 4
    return FormatOutputs(name, z, p, naive_failed, stable_failed, "fp32", nbytes)


def _integer_only_outputs(model: SoftmaxRegression, images: torch.Tensor) -> FormatOutputs:
    """The integer-only pipeline (`quant.quantize_softmax_regression`): uint8 pixels (float
    features in [0, 1] are quantized to k/255 codes) x int8
    per-class weights into int32, fixed-point requantized int8 logits and an integer softmax
    to uint8 probabilities. Its logits are relative to the row max (the top class at 0), which
    changes neither the softmax nor the cross-entropy. It has no naive softmax to overflow."""
    import quant

    x = images.reshape(images.shape[0], -1)
    if x.dtype != torch.uint8:
        # Float features are taken as pixels k/255 and quantized to their uint8 codes, as an
        # int8 pipeline quantizes its input (exact for real pixels).
        if not x.is_floating_point() or not torch.isfinite(x).all() or x.min() < 0 or x.max() > 1:
            raise ValueError("integer_only consumes uint8 pixels, or float features in [0, 1] "
                             f"(pixels / 255); got dtype {x.dtype} outside that")
        x = torch.round(x.double() * 255).to(torch.uint8)
    w, b = _params64(model)
    pipe = quant.quantize_softmax_regression(w.float(), b.float())
    codes = pipe.logit_codes(x).to(torch.float64)
    z = (codes - 127.0) * pipe.logit_scale
    probs = pipe.probabilities(x).to(torch.float64) / pipe.softmax.out_max
    none = torch.zeros(x.shape[0], dtype=torch.bool)
    # The cross-entropy is reported from the dequantized int8 logits, evaluated in float64.
    return FormatOutputs("integer_only", z, probs, none, none.clone(), "fp64",
                         pipe.weight_bytes)


def run_in_format(model: SoftmaxRegression, images: torch.Tensor, fmt: Any) -> FormatOutputs:
    """The model's logits and softmax for ``images`` (uint8 pixels or float features) under
    ``fmt``: a float format (anything `numfmt.get` accepts) or one of `ENCODINGS`."""
    if images.dim() < 2:
        raise ValueError(f"images must be (N, ...) with N samples, got shape "
                         f"{tuple(images.shape)}")
    features = math.prod(images.shape[1:])
    if features != model.in_features:
        raise ValueError(f"images of shape {tuple(images.shape)} give {features} features per "
                         f"sample; the model takes {model.in_features}")
    if fmt == "integer_only":
        return _integer_only_outputs(model, images)
    if isinstance(fmt, str) and fmt in ENCODINGS:
        return _encoded_outputs(model, images_to_float(images, torch.float64), fmt)
    f = numfmt.get(fmt)
    if not f.is_float:
        raise ValueError(f"{f.name} is an integer format: evaluate it through an encoding with "
                         f"a scale, one of {', '.join(ENCODINGS)}")
    return _float_outputs(model, images, f)


# ---- the report --------------------------------------------------------------------------------
def _finite_or_none(v: float) -> float | None:
    return v if math.isfinite(v) else None


@dataclass(frozen=True)
class FormatResult:
    """One row of the evaluation; `to_dict` gives exactly `RESULT_KEYS` (non-finite -> None)."""

    format: str
    accuracy: float
    agreement_fp64: float
    mean_cross_entropy: float
    max_abs_prob_err: float
    naive_softmax_overflow_share: float
    stable_softmax_overflow_share: float
    weight_bytes: int

    def to_dict(self) -> dict[str, Any]:
        return {k: (_finite_or_none(v) if isinstance(v, float) else v)
                for k, v in asdict(self).items()}


def _check_labels(labels: torch.Tensor, n: int, c: int) -> torch.Tensor:
    if labels.dim() != 1 or labels.shape[0] != n:
        raise ValueError(f"labels must have shape ({n},) to match the images, got "
                         f"{tuple(labels.shape)}")
    if labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise TypeError(f"labels must be integers, not {labels.dtype}")
    if n and (labels.min() < 0 or labels.max() >= c):
        raise ValueError(f"labels must lie in 0..{c - 1}")
    return labels.to("cpu", torch.int64)


def _result(out: FormatOutputs, ref: FormatOutputs, labels: torch.Tensor) -> FormatResult:
    pred = out.predictions
    ce = cross_entropy_in_format(out.logits, labels, out.softmax_format)
    err = (out.probs - ref.probs).abs()
    max_err = float("nan") if torch.isnan(err).any() else err.max().item()
    return FormatResult(
        format=out.name,
        accuracy=(pred == labels).double().mean().item(),
        agreement_fp64=(pred == ref.predictions).double().mean().item(),
        mean_cross_entropy=ce.mean().item(),
        max_abs_prob_err=max_err,
        naive_softmax_overflow_share=out.naive_failed.double().mean().item(),
        stable_softmax_overflow_share=out.stable_failed.double().mean().item(),
        weight_bytes=out.weight_bytes,
    )


def evaluate(model: SoftmaxRegression, fmt: Any, images: torch.Tensor, labels: torch.Tensor,
             *, reference: FormatOutputs | None = None) -> FormatResult:
    """Evaluate ``model`` under ``fmt`` (a float format or one of `ENCODINGS`) on ``images``
    (uint8 (N, 28, 28) or float (N, 784)) with ``labels`` (N,); see the module docstring.
    ``reference``: the FP64 `run_in_format` outputs, to reuse across formats. The model is
    not modified."""
    _check_model(model)
    if images.shape[0] == 0:
        raise ValueError("no images to evaluate")
    labels = _check_labels(labels, images.shape[0], model.num_classes)
    ref = reference if reference is not None else run_in_format(model, images, "fp64")
    if ref.logits.shape[0] != images.shape[0]:
        raise ValueError("reference outputs are for a different number of images")
    return _result(run_in_format(model, images, fmt), ref, labels)


def default_targets() -> tuple[str, ...]:
    """Every float format in `numfmt.formats()` then every `ENCODINGS` entry (numfmt's integer
    formats need a scale, which is what the encodings add)."""
    return tuple(f.name for f in numfmt.formats() if f.is_float) + ENCODINGS


def evaluate_all(model: SoftmaxRegression, images: torch.Tensor, labels: torch.Tensor,
                 targets: Iterable[Any] | None = None, *,
                 progress: bool = False) -> list[FormatResult]:
    """`evaluate` for each of ``targets`` (default `default_targets`), FP64 reference shared."""
    _check_model(model)
    labels = _check_labels(labels, images.shape[0], model.num_classes)
    ref = run_in_format(model, images, "fp64")
    results = []
    for t in (default_targets() if targets is None else targets):
        if progress:
            print(f"evaluating under {t} ...", file=sys.stderr, flush=True)
        results.append(evaluate(model, t, images, labels, reference=ref))
    return results
