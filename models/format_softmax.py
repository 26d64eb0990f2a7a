"""exp, softmax and cross-entropy with every operation rounded into a number format.

Each operation (subtraction of the row max, exp, each step of the left-to-right sum over the
classes, the division, the log) is computed in float64 and rounded once into the format
(`numfmt.round_to`, nearest even, the format's own overflow rule). For formats of at most 25
significand bits the float64 result of one +, -, / is close enough that the double rounding is
harmless; exp and log are float64 libm-accurate, so their rounding is correct except within an
ulp of float64 of a rounding boundary. For fp64 the float64 arithmetic is used directly.

An operation *overflows* when its result rounds past the format's largest value: to inf or NaN,
or, for formats with neither (FP6, FP4), to a value clamped at max, which is flagged too.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import numfmt
import torch

__all__ = ["round_in_format", "round_with_overflow", "exp_in_format", "softmax_in_format",
           "cross_entropy_in_format", "softmax_and_cross_entropy"]


def _float64_limit(fmt: numfmt.Format) -> float:
    """The exact value past which rounding into ``fmt`` overflows, as a float64 (inf if larger)."""
    lim: Fraction = numfmt.exp_bounds(fmt).overflow_limit
    try:
        return float(lim)
    except OverflowError:
        return math.inf


def round_in_format(t: torch.Tensor, fmt: Any) -> torch.Tensor:
    """float64 tensor -> float64 tensor of ``fmt`` values (identity for fp64)."""
    f = numfmt.get(fmt)
    return t if f.name == "fp64" else numfmt.round_to(t, f)


def round_with_overflow(t: torch.Tensor, fmt: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Round float64 ``t`` into ``fmt``; also the mask of entries that overflowed.

    Returns
    -------
    rounded : Tensor
        float64 holding ``fmt`` values.
    overflowed : Tensor of bool
        Rounded past max (to inf/NaN, or clamped for formats with neither), NaN inputs included.
    """
    f = numfmt.get(fmt)
    r = round_in_format(t, f)
    over = ~torch.isfinite(r)
    if not (f.has_inf or f.has_nan):
        # Saturating formats clamp silently; a value at or past max + ulp/2 would round past max
        # (their max has an odd significand, so the tie at the limit rounds up too).
        over |= t.abs() >= _float64_limit(f)
    return r, over


def exp_in_format(z: torch.Tensor, fmt: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """(exp(z) rounded into ``fmt``, overflow mask) for a tensor ``z`` of ``fmt`` values."""
    return round_with_overflow(torch.exp(z.to(torch.float64)), fmt)


def _sum_in_format(e: torch.Tensor, f: numfmt.Format) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-to-right sum over the last axis, each partial sum rounded; per-row overflow."""
    s = e[..., 0]
    failed = torch.zeros(s.shape, dtype=torch.bool)
    for k in range(1, e.shape[-1]):
        s, o = round_with_overflow(s + e[..., k], f)
        failed |= o
    return s, failed


def _softmax(d: torch.Tensor, f: numfmt.Format,
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """exp(d) / sum exp(d) in ``f`` for exponents ``d`` already in ``f``: (p, failed, sum)."""
    e, over = exp_in_format(d, f)
    s, failed = _sum_in_format(e, f)
    p, o = round_with_overflow(e / s[..., None], f)
    return p, failed | over.any(dim=-1) | o.any(dim=-1), s


def _shifted(z: torch.Tensor, f: numfmt.Format) -> torch.Tensor:
    return round_in_format(z - z.max(dim=-1, keepdim=True).values, f)


def softmax_in_format(z: torch.Tensor, fmt: Any, *, stable: bool = True,
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax over the last axis of ``z`` (values of ``fmt``), every op rounded into ``fmt``.

    Parameters
    ----------
    z : Tensor
        Logits holding ``fmt`` values (any float dtype).
    fmt : format spec
        Anything `numfmt.get` accepts.
    stable : bool
        Subtract the row max first (the subtraction rounded too); otherwise exp(z) / sum exp(z).

    Returns
    -------
    probs : Tensor
        float64 holding ``fmt`` values.
    failed : Tensor of bool
        Per row: an exp or the running sum rounded past max, or a probability came out
        inf/NaN. The sum runs left to right over the classes.
    """
    f = numfmt.get(fmt)
    z = z.to(torch.float64)
    p, failed, _ = _softmax(_shifted(z, f) if stable else z, f)
    return p, failed


def cross_entropy_in_format(z: torch.Tensor, labels: torch.Tensor, fmt: Any) -> torch.Tensor:
    """Per-sample ``log(sum_j exp(z_j - m)) - (z_y - m)``, m = max_j z_j, each op rounded.

    The stable log-softmax a pipeline in ``fmt`` computes; a float64 tensor of ``fmt`` values.
    In narrow formats a confident sample's loss rounds to exactly 0, so the mean over samples
    can fall as the format gets worse: compare with the float64 loss of the same logits.
    """
    f = numfmt.get(fmt)
    return softmax_and_cross_entropy(z, labels, f)[3]


def softmax_and_cross_entropy(z: torch.Tensor, labels: torch.Tensor, fmt: Any,
                              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The stable softmax, both overflow masks and the in-format cross-entropy in one pass.

    Returns
    -------
    probs, stable_failed, naive_failed, cross_entropy : Tensor
        As `softmax_in_format` (stable, then naive) and `cross_entropy_in_format` return them;
        equal to calling those, with the naive and the stable softmax computed side by side
        (one loop over the classes instead of three).
    """
    f = numfmt.get(fmt)
    z = z.to(torch.float64)
    d = _shifted(z, f)
    both = torch.stack([d, z])
    p, failed, s = _softmax(both, f)
    log_s = round_in_format(torch.log(s[0]), f)
    ce = round_in_format(log_s - d.gather(-1, labels.to(torch.int64)[:, None])[:, 0], f)
    return p[0], failed[0], failed[1], ce
