"""exp, sum, softmax and cross-entropy computed in a format, vectorised on torch tensors.

Every operation is rounded into the format, and the sums follow the same accumulation models as
`numfmt.softmax_safety` (`numfmt.softmax.ACCUMULATIONS`), so that "a softmax overflows" means
the same thing here and there:

* ``"torch"`` (default): what torch does. fp16/bf16/fp32/fp64 are summed by ``torch.sum`` in
  that dtype itself (torch accumulates the half types in float32 and rounds the sum once);
  formats torch has no sum kernel for (tf32, FP8, FP6, FP4) are summed by ``torch.sum`` in
  float32, as if upcast, and rounded once; integer formats exactly (torch sums integers in
  int64), then into the format.
* ``"sequential"``: left to right along ``dim``, every partial sum rounded into the format.
* ``"exact"``: the exact sum, rounded once into the format.

Values are held in float64 tensors (every value of every float format here is a float64). A
float64 operation on two values of a format with at most 24 significand bits, rounded into the
format, is the correctly rounded operation (53 >= 2p + 2: double rounding is innocuous for
+, -, *, /), so each step below is the format's own correctly rounded arithmetic; exp and log
are float64's (within an ulp of the truth), then rounded once into the format.

"Overflowed" means rounded past the format's max: to inf or NaN, or, in formats with neither,
to a value the format clamps to max.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import numpy as np

from numfmt.exact import round_exact
from numfmt.format import Format
from numfmt.rangerule import overflow_limit
from numfmt.registry import get
from numfmt.rounding import round_to
from numfmt.softmax import Accumulation, accumulator_format, check_accumulation

__all__ = ["round_with_overflow", "exp_in_format", "sum_in_format", "softmax_in_format",
           "cross_entropy_in_format"]

_TORCH_SUMS = ("fp16", "bf16", "fp32", "fp64")     # formats torch.sum runs in natively


def _tensor(z: Any, what: str):
    import torch

    if not isinstance(z, torch.Tensor):
        raise TypeError(f"{what} must be a torch.Tensor, not {type(z).__name__}")
    if not (z.is_floating_point() or z.dtype in (torch.int8, torch.uint8, torch.int16,
                                                  torch.int32, torch.int64)):
        raise TypeError(f"{what} must hold real numbers, not {z.dtype}")
    return z.detach().to(torch.float64)


def round_with_overflow(t: Any, fmt: Any):
    """``t`` rounded into ``fmt`` (its default overflow rule), and where it overflowed.

    Parameters
    ----------
    t : torch.Tensor
        Real values (any float or int dtype).
    fmt : Format or anything `numfmt.get` accepts

    Returns
    -------
    (torch.Tensor, torch.Tensor)
        float64 values of ``fmt``, and a bool mask of the elements that rounded beyond the
        format's range at either end: past +-max for signed floats, below ``lowest`` for
        integers, below 0 for unsigned floats (inf or NaN results included, so NaN inputs
        count as overflowed).
    """
    import torch

    f = get(fmt)
    x = _tensor(t, "t")
    r = x if f.name == "fp64" else round_to(x, f).to(torch.float64)
    lim, tie_up = overflow_limit(f)
    over = ~torch.isfinite(r) | (x > lim)
    if tie_up:                         # the tie at the limit rounds up, beyond max
        over |= x == lim
    low, low_tie = _lower_limit(f, lim, tie_up)
    over |= x < low
    if low_tie:
        over |= x == low
    return r, over


def _lower_limit(f: Format, lim: float, tie_up: bool) -> tuple[float, bool]:
    """Where rounding to nearest leaves the range at the bottom, and whether the tie does.

    Signed floats are symmetric (-lim); integers end at lowest - 1/2, whose tie stays in range
    when lowest is even (int8's -128, uint8's 0); an unsigned float holds no negative value.
    """
    if not f.is_float:
        lowest = int(f.lowest_exact)
        return lowest - 0.5, lowest % 2 == 1
    if not f.signed:
        return 0.0, False
    return -lim, tie_up


def exp_in_format(z: Any, fmt: Any):
    """exp of every element of ``z``, rounded into ``fmt``, and where it overflowed.

    Parameters
    ----------
    z : torch.Tensor
        Arguments (values of ``fmt``; other values are taken as they are).
    fmt : Format or anything `numfmt.get` accepts

    Returns
    -------
    (torch.Tensor, torch.Tensor)
        float64 values of ``fmt`` and the overflow mask (see `round_with_overflow`).
    """
    import torch

    return round_with_overflow(torch.exp(_tensor(z, "z")), fmt)


def _exact_row_sums(x: np.ndarray, fmt: Format) -> np.ndarray:
    """Exact sums of the rows of the float64 matrix ``x``, rounded once into ``fmt``
    (unbounded above: the caller flags overflow)."""
    out = np.empty(x.shape[0])
    with np.errstate(all="ignore"):
        _, e = np.frexp(np.where(x == 0, 1.0, x))
        # every float64 is a multiple of 2**(e - 53); a row's float64 running sums are exact
        # when all of them stay below 2**(53 + smallest such exponent)
        q = (np.where(x == 0, 10**6, e) - 53).min(axis=1)
        bound = np.abs(x).sum(axis=1) * (1 + 2.0**-40)
        fast = np.isfinite(bound) & (np.log2(np.maximum(bound, 2.0**-1074)) < q + 53)
    sums = x.sum(axis=1)
    for i in range(x.shape[0]):
        if fast[i]:
            total = Fraction(float(sums[i]))
        else:
            row = [float(v) for v in x[i]]
            if not all(math.isfinite(v) for v in row):
                out[i] = sum(row)
                continue
            r1 = math.fsum(row)
            # r1 is the correctly rounded sum; the residual's sign decides a tie of fmt at r1
            total = Fraction(r1) + Fraction(math.fsum(row + [-r1]))
        out[i] = float(round_exact(total, fmt)) if total == total else math.nan
    return out


def sum_in_format(t: Any, fmt: Any, dim: int = -1, accumulation: Accumulation = "torch"):
    """The sum of ``t`` along ``dim`` in ``fmt`` under an accumulation model.

    Parameters
    ----------
    t : torch.Tensor
        Values of ``fmt`` (held in any float dtype).
    fmt : Format or anything `numfmt.get` accepts
    dim : int
        The dimension summed over.
    accumulation : {"torch", "sequential", "exact"}
        See the module docstring.

    Returns
    -------
    (torch.Tensor, torch.Tensor)
        The sums (float64 values of ``fmt``, ``dim`` removed) and the mask of sums that
        overflowed (a running sum, the accumulator or the final rounding past the max).

    Raises
    ------
    ValueError
        For an unknown accumulation model.
    """
    import torch

    f = get(fmt)
    model = check_accumulation(accumulation)
    x = _tensor(t, "t").movedim(dim, -1)
    if model == "sequential":
        s, over = round_with_overflow(x[..., 0], f)
        for k in range(1, x.shape[-1]):
            s, o = round_with_overflow(s + x[..., k], f)
            over |= o
        return s, over
    if model == "torch" and f.is_float:
        if f.name in _TORCH_SUMS:
            s = torch.sum(x.to(f.torch_dtype), dim=-1).to(torch.float64)
            return s, ~torch.isfinite(s)
        acc = accumulator_format(f)
        s = torch.sum(x.to(acc.torch_dtype), dim=-1)
        r, over = round_with_overflow(s, f)
        return r, over | ~torch.isfinite(s)
    flat = x.reshape(-1, x.shape[-1]).cpu().numpy()
    exact = torch.from_numpy(_exact_row_sums(flat, f)).reshape(x.shape[:-1]).to(x.device)
    return round_with_overflow(exact, f)


def _shift_overflow_matters(f: Format) -> bool:
    """Whether a shifted logit clamped at the format's lowest value changes its exp."""
    from numfmt.expbounds import exp_bounds

    return exp_bounds(f).min_arg <= f.lowest


def softmax_in_format(z: Any, fmt: Any, *, stable: bool = True,
                      accumulation: Accumulation = "torch", dim: int = -1):
    """Softmax along ``dim`` of ``z`` with every operation rounded into ``fmt``.

    Parameters
    ----------
    z : torch.Tensor
        Logits (values of ``fmt``).
    fmt : Format or anything `numfmt.get` accepts
    stable : bool
        Subtract the row max first (rounded into ``fmt``), as every library's softmax does;
        False gives the naive exp(z) / sum exp(z).
    accumulation : {"torch", "sequential", "exact"}
        How the exps are summed (module docstring); default what torch does.
    dim : int
        The class dimension.

    Returns
    -------
    (torch.Tensor, torch.Tensor)
        Probabilities (float64 values of ``fmt``, the shape of ``z``) and a mask (``z``'s
        shape without ``dim``) of the rows that overflowed: an exp, the sum or a probability
        rounded past the max. A max-subtracted logit below the format's range (-inf, or
        clamped to ``lowest`` in formats without inf) counts only where it changes the result:
        in formats whose exp of ``lowest`` is not already 0 (here only the unsigned ones),
        since otherwise both the clamped and the true shifted logit give an exp of exactly 0.

    Examples
    --------
    >>> import torch
    >>> p, bad = softmax_in_format(torch.tensor([[12.0, 0.0]]), "fp16", stable=False)
    >>> bool(bad[0])
    True
    """
    import torch

    f = get(fmt)
    x = _tensor(z, "z").movedim(dim, -1)
    failed = torch.zeros(x.shape[:-1], dtype=torch.bool, device=x.device)
    if stable:
        x, o = round_with_overflow(x - x.max(dim=-1, keepdim=True).values, f)
        if _shift_overflow_matters(f):
            failed |= o.any(dim=-1)
    e, o = exp_in_format(x, f)
    failed |= o.any(dim=-1)
    s, o = sum_in_format(e, f, dim=-1, accumulation=accumulation)
    failed |= o
    p, o = round_with_overflow(e / s[..., None], f)
    failed |= o.any(dim=-1)
    return p.movedim(-1, dim), failed


def cross_entropy_in_format(z: Any, labels: Any, fmt: Any, *,
                            accumulation: Accumulation = "torch"):
    """Per-sample cross-entropy log(sum_j exp(z_j - m)) - (z_y - m), m the row max, every
    operation rounded into ``fmt`` (the stable log-softmax a pipeline in ``fmt`` computes).

    Parameters
    ----------
    z : torch.Tensor
        (N, C) logits (values of ``fmt``).
    labels : torch.Tensor
        (N,) integer class indices in [0, C).
    fmt : Format or anything `numfmt.get` accepts
    accumulation : {"torch", "sequential", "exact"}
        How the exps are summed (module docstring).

    Returns
    -------
    torch.Tensor
        (N,) float64 values of ``fmt``.

    Raises
    ------
    ValueError
        For shapes that do not match or labels outside [0, C).
    """
    import torch

    f = get(fmt)
    x = _tensor(z, "z")
    if x.ndim != 2:
        raise ValueError(f"z must be (N, C) logits, not of shape {tuple(x.shape)}")
    if not isinstance(labels, torch.Tensor) or labels.dtype.is_floating_point \
            or labels.shape != (x.shape[0],):
        raise ValueError(f"labels must be an integer tensor of shape ({x.shape[0]},)")
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= x.shape[1]):
        raise ValueError(f"labels must lie in [0, {x.shape[1]})")
    d, _ = round_with_overflow(x - x.max(dim=-1, keepdim=True).values, f)
    e, _ = exp_in_format(d, f)
    s, _ = sum_in_format(e, f, dim=-1, accumulation=accumulation)
    log_s, _ = round_with_overflow(torch.log(s), f)
    out, _ = round_with_overflow(log_s - d.gather(-1, labels.long()[:, None])[:, 0], f)
    return out
