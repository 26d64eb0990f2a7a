"""A trained softmax regression evaluated under each number format and int8 encoding.

How the model computes under a format or encoding is `models.inference` (the in-format
softmax and loss are `numfmt.informat`'s, the encodings `quant.encodings`'); this module scores
it on labelled images.

Reported per format (`FormatResult`, `RESULT_KEYS`):

* ``accuracy``: argmax of the format's logits (first index on ties) against the labels;
* ``agreement_fp64``: share of predictions equal to the FP64 evaluation of the same model;
* ``cross_entropy_in_format``: mean over samples of the stable log-softmax loss computed with
  every operation rounded into the format. In narrow formats a confident sample's loss rounds
  to exactly 0, so this figure can *fall* as the format gets worse;
* ``cross_entropy_of_logits``: mean loss of the format's logits scored exactly in float64
  (``logsumexp(z) - z_y``): what the format's logits are worth, the figure to compare across
  formats;
* ``max_abs_prob_err``: the largest |p - p_fp64| over all probabilities (stable softmax);
* ``naive_softmax_overflow_share`` / ``stable_softmax_overflow_share``: the shares of samples
  whose naive / max-subtracted softmax overflowed (None for ``integer_only``, which has no
  naive softmax: not applicable, JSON null; tables print n/a);
* ``weight_bytes``: bytes of W and b stored in the format or encoding (block formats: the
  packed element codes, the block scales and NVFP4's tensor scale, plus the FP32 bias).

The targets are the float formats, the int8 encodings (`ENCODINGS`) and the block-scaled
formats (`BLOCK_TARGETS`: each block format with W blocked along its input-feature axis, then
``<format>_w_x`` with the pixel features block-rounded too; see `models.inference`).

Evaluation runs on one torch thread (``num_threads``): its operations are short passes over
(N, 10) tensors, where a second OpenMP thread gains nothing and, when another process holds a
core, spinning workers make every one of several hundred short ops wait (measured: 2.4 s on
one thread against 25-34 s on two with one busy co-tenant on a 2-core machine).
"""

from __future__ import annotations

import math
import sys
import warnings
from dataclasses import asdict, dataclass
from typing import Any, Iterable

import numfmt
import torch

from numfmt.blocks import block_format_names
from numfmt.informat import cross_entropy_in_format, exp_in_format, softmax_in_format
from numfmt.softmax import check_accumulation

from models.inference import (BLOCK_TARGETS, ENCODINGS, INPUTS_SUFFIX, FormatOutputs,
                              block_target, check_model, encoding_name, run_in_format,
                              weight_bits, weight_bytes)
from models.inputs import as_images, as_labels
from models.runtime import check_num_threads, torch_threads
from models.softmax_regression import SoftmaxRegression

__all__ = ["ENCODINGS", "BLOCK_TARGETS", "RESULT_KEYS", "FormatResult", "FormatOutputs", "evaluate",
           "evaluate_all", "default_targets", "run_in_format", "exp_in_format",
           "softmax_in_format", "cross_entropy_in_format", "weight_bytes", "weight_bits",
           "target_name"]

RESULT_KEYS: tuple[str, ...] = ("format", "accuracy", "agreement_fp64", "cross_entropy_in_format",
                                "cross_entropy_of_logits", "max_abs_prob_err",
                                "naive_softmax_overflow_share", "stable_softmax_overflow_share",
                                "weight_bytes")


@dataclass(frozen=True)
class FormatResult:
    """One row of the evaluation (see the module docstring for each field).

    `to_dict` gives exactly `RESULT_KEYS`, non-finite numbers as None (JSON null). A loss or
    probability error is NaN (inf for a loss) where the format's logits themselves overflowed
    (``fp8_e3m4``: max 15.5); tables print nan/inf, and n/a only for what does not apply.
    """

    format: str
    accuracy: float
    agreement_fp64: float
    cross_entropy_in_format: float
    cross_entropy_of_logits: float
    max_abs_prob_err: float
    naive_softmax_overflow_share: float | None
    stable_softmax_overflow_share: float
    weight_bytes: int

    @property
    def mean_cross_entropy(self) -> float:
        """Deprecated name of `cross_entropy_in_format` (see `cross_entropy_of_logits`)."""
        warnings.warn("FormatResult.mean_cross_entropy is now cross_entropy_in_format; "
                      "compare formats with cross_entropy_of_logits", DeprecationWarning,
                      stacklevel=2)
        return self.cross_entropy_in_format

    def to_dict(self) -> dict[str, Any]:
        """The fields in `RESULT_KEYS` order, NaN/inf as None."""
        return {k: (v if not isinstance(v, float) or math.isfinite(v) else None)
                for k, v in asdict(self).items()}


def _loss_of_logits(z: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean of logsumexp(z) - z_y in float64 (the logits are format values, held exactly)."""
    zf = z.to(torch.float64)
    return (torch.logsumexp(zf, 1) - zf.gather(1, labels[:, None])[:, 0]).mean().item()


def _result(out: FormatOutputs, ref: FormatOutputs, labels: torch.Tensor) -> FormatResult:
    pred = out.predictions
    err = (out.probs - ref.probs).abs()
    naive = None if out.naive_failed is None else out.naive_failed.double().mean().item()
    return FormatResult(
        format=out.name,
        accuracy=(pred == labels).double().mean().item(),
        agreement_fp64=(pred == ref.predictions).double().mean().item(),
        cross_entropy_in_format=out.cross_entropy.mean().item(),
        cross_entropy_of_logits=_loss_of_logits(out.logits, labels),
        max_abs_prob_err=math.nan if torch.isnan(err).any() else err.max().item(),
        naive_softmax_overflow_share=naive,
        stable_softmax_overflow_share=out.stable_failed.double().mean().item(),
        weight_bytes=out.weight_bytes,
    )


def target_name(fmt: Any) -> str:
    """The canonical name of a float format, encoding or block target; ValueError otherwise.

    Encodings and block targets (``"mxfp4_e2m1"``, ``"NVFP4_w_x"``) are matched ignoring case
    and surrounding spaces. Use it to check a list of targets before evaluating any of them.
    """
    enc, blk = encoding_name(fmt), block_target(fmt)
    if enc is not None:
        return enc
    if blk is not None:
        return blk[0] + (INPUTS_SUFFIX if blk[1] else "")
    try:
        f = numfmt.get(fmt)
    except ValueError as exc:
        # numfmt lists its own formats; the targets evaluate adds are named here
        raise ValueError(f"{exc}; also the encodings {', '.join(ENCODINGS)} and the block "
                         f"formats {', '.join(block_format_names())} (each also as "
                         f"<name>{INPUTS_SUFFIX}: the inputs block-rounded too)") from None
    if not f.is_float:
        raise ValueError(f"{f.name} is an integer format: evaluate it through an encoding with "
                         f"a scale, one of {', '.join(ENCODINGS)}")
    return f.name


def _checked(model: Any, images: Any, labels: Any) -> tuple[torch.Tensor, torch.Tensor]:
    check_model(model)
    images = as_images(images, model.in_features)
    if images.shape[0] == 0:
        raise ValueError("no images to evaluate")
    return images, as_labels(labels, images.shape[0], model.num_classes).cpu()


def evaluate(model: SoftmaxRegression, fmt: Any, images: Any, labels: Any, *,
             reference: FormatOutputs | None = None, accumulation: str = "torch",
             num_threads: int | None = 1) -> FormatResult:
    """Evaluate ``model`` under ``fmt`` on labelled images (see the module docstring).

    Parameters
    ----------
    model : SoftmaxRegression
        Not modified.
    fmt : format spec or str
        A float format (anything `numfmt.get` accepts) or one of `ENCODINGS`.
    images : Tensor or numpy array
        uint8 (N, 28, 28) pixels or float (N, 784) features in [0, 1].
    labels : Tensor or numpy array
        (N,) ints in 0..C-1.
    reference : FormatOutputs, optional
        The FP64 `run_in_format` outputs (with labels), to reuse across formats.
    accumulation : {"torch", "sequential", "exact"}
        How the in-format softmax sums (`run_in_format`); torch's by default.
    num_threads : int or None
        Torch threads during the call (None: leave as is).

    Returns
    -------
    FormatResult

    Raises
    ------
    TypeError, ValueError
        For a model that is not a SoftmaxRegression, unknown or integer formats, images or
        labels that do not fit (`as_images`, `as_labels`), before any work.
    """
    images, labels = _checked(model, images, labels)
    name = target_name(fmt)
    check_accumulation(accumulation)
    check_num_threads(num_threads)
    with torch_threads(num_threads):
        ref = reference if reference is not None else run_in_format(model, images, "fp64",
                                                                     labels)
        if ref.logits.shape[0] != images.shape[0]:
            raise ValueError("reference outputs are for a different number of images")
        out = run_in_format(model, images, name, labels, accumulation=accumulation)
        return _result(out, ref, labels)


def default_targets() -> tuple[str, ...]:
    """Every signed float format with a zero in `numfmt.formats()`, then every `ENCODINGS`
    entry, then every `BLOCK_TARGETS` entry.

    numfmt's integer formats need a scale, which is what the encodings add; unsigned scale
    formats without a zero (``fp8_e8m0fnu``, the MX block scale) cannot hold a weight matrix.
    """
    return tuple(f.name for f in numfmt.formats()
                 if f.is_float and f.signed and f.has_zero) + ENCODINGS + BLOCK_TARGETS


def evaluate_all(model: SoftmaxRegression, images: Any, labels: Any,
                 targets: Iterable[Any] | None = None, *, progress: bool = False,
                 accumulation: str = "torch", num_threads: int | None = 1,
                 ) -> list[FormatResult]:
    """`evaluate` for each of ``targets`` (default `default_targets`), FP64 reference shared.

    Every target is checked (`target_name`) before the first is evaluated; ``progress``
    prints one line per target on stderr.
    """
    images, labels = _checked(model, images, labels)
    names = [target_name(t) for t in (default_targets() if targets is None else targets)]
    check_accumulation(accumulation)
    check_num_threads(num_threads)
    with torch_threads(num_threads):
        ref = run_in_format(model, images, "fp64", labels)
        results = []
        for t in names:
            if progress:
                print(f"evaluating under {t} ...", file=sys.stderr, flush=True)
            results.append(evaluate(model, t, images, labels, reference=ref,
                                    accumulation=accumulation, num_threads=None))
    return results
