"""Choosing an affine scale and zero point from data: min-max, percentile, MSE-optimal search.

All methods work per tensor or per channel (any axis) and return float64 scales that are exactly
representable in float32 (encode and decode run in float32) and int64 zero points.

Conventions (stated once, used everywhere):
- A fixed zero point `zp` (symmetric: zp = 0) gets the smallest scale that keeps the observed
  range [lo, hi] inside the codes: `max(hi / (qmax - zp), lo / (qmin - zp))`, so with the full
  int8 range the negative side may use code -128.
- A free zero point (asymmetric) stretches [min(lo, 0), max(hi, 0)] over [qmin, qmax]: zero is
  always exactly representable (padding and ReLU outputs stay exact), as in torch's observers.
- A range of zero width (all-zero data) gets scale 1.0. A nonzero range whose scale would
  leave float32 (above its max, or below its smallest normal 2**-126, where the codes would
  flush towards zero) raises `quant.EncodingRangeError` instead of being clamped silently.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .._tensors import check_finite
from ..metrics import quantile_rows
from ..policy import EncodingRangeError
from .params import FP32, float32_scale

__all__ = ["CALIBRATIONS", "MSE_SAMPLE", "observed_range", "scale_for_range", "calibrate",
           "check_reachable"]

CALIBRATIONS = ("minmax", "percentile", "mse")
MSE_SAMPLE = 1 << 17
"""The MSE search evaluates candidates on at most this many values per channel (an evenly
strided, deterministic subsample; the whole channel when it is smaller)."""

_TINY32 = float(FP32.tiny)
_MAX32 = float(FP32.max)


def observed_range(x3: torch.Tensor, method: str = "minmax", percentile: float = 99.99,
                   symmetric: bool = False, source: torch.Tensor | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel observed range (lo, hi) of a (outer, C, inner) float tensor.

    Parameters
    ----------
    x3 : torch.Tensor
        The values, channels on axis 1.
    method : str
        'minmax' and 'mse' give the true extremes; 'percentile' the `percentile`-th and
        (100 - `percentile`)-th percentiles (numpy's linear interpolation).
    percentile : float
        In (0, 100].
    symmetric : bool
        For 'percentile': the `percentile`-th percentile of |x|, mirrored.
    source : torch.Tensor, optional
        The caller's tensor, named in the NaN / infinity error.

    Returns
    -------
    tuple of torch.Tensor
        float64 (C,) lows and highs.

    Raises
    ------
    ValueError
        On NaN / infinity (naming the index), empty input or a bad percentile.
    """
    if method not in CALIBRATIONS:
        raise ValueError(f"unknown calibration {method!r}; use one of {', '.join(CALIBRATIONS)}")
    if x3.numel() == 0:
        raise ValueError("cannot calibrate a scale from an empty tensor; pass scale= explicitly")
    rows = x3.transpose(0, 1).reshape(x3.shape[1], -1)
    lo, hi = torch.aminmax(rows, dim=1)
    if not (bool(torch.isfinite(lo).all()) and bool(torch.isfinite(hi).all())):
        check_finite(x3 if source is None else source, "calibration")
    lo, hi = lo.to(torch.float64), hi.to(torch.float64)
    if method != "percentile":
        return lo, hi
    if not 0.0 < percentile <= 100.0:
        raise ValueError(f"percentile must lie in (0, 100], got {percentile}")
    p = percentile / 100.0
    if symmetric:
        top = quantile_rows(rows.abs(), p)
        return -top, top
    return quantile_rows(rows, 1.0 - p), quantile_rows(rows, p)


def _round_scale(scale: torch.Tensor) -> torch.Tensor:
    s = torch.where(scale > 0, scale, torch.ones_like(scale))
    return float32_scale(s).clamp(min=_TINY32, max=_MAX32)


def check_reachable(lo: torch.Tensor, hi: torch.Tensor, qmin: int, qmax: int,
                    zero_point: int | None) -> None:
    """EncodingRangeError if a channel's range [lo, hi] needs a scale outside float32.

    Parameters
    ----------
    lo, hi : torch.Tensor
        float64 (C,) observed ranges.
    qmin, qmax, zero_point
        As for `scale_for_range`.

    Raises
    ------
    EncodingRangeError
        Naming the channel, its largest magnitude and the scale it would need.
    """
    raw = _raw_scale(lo, hi, qmin, qmax, zero_point)
    with np.errstate(over="ignore"):
        f32 = raw.numpy().astype(np.float32)
    for c in range(raw.numel()):
        r, top = float(raw[c]), max(-float(lo[c]), float(hi[c]))
        where = f"channel {c}: " if raw.numel() > 1 else ""
        if math.isinf(float(f32[c])):
            raise EncodingRangeError(
                f"ScaledInt8.encode: {where}the data reach |x| = {top:.4g}, which needs scale "
                f"{r:.4g}, beyond float32's max {_MAX32:.4g} (scales are float32 values); "
                f"scale the data down first")
        if top > 0 and r < _TINY32:
            raise EncodingRangeError(
                f"ScaledInt8.encode: {where}the data reach only |x| = {top:.4g}, which needs "
                f"scale {r:.4g}, below float32's smallest normal {_TINY32:.4g} (scales are "
                f"float32 values): the codes would flush towards 0; scale the data up first")


def _raw_scale(lo: torch.Tensor, hi: torch.Tensor, qmin: int, qmax: int,
               zero_point: int | None) -> torch.Tensor:
    """The exact (unrounded) float64 scale per channel of `scale_for_range`."""
    lo = lo.to(torch.float64).clamp(max=0.0)
    hi = hi.to(torch.float64).clamp(min=0.0)
    if zero_point is None:
        return (hi - lo) / (qmax - qmin)
    zp = int(zero_point)
    cands = [torch.zeros_like(lo)]
    if qmax > zp:
        cands.append(hi / (qmax - zp))
    if qmin < zp:
        cands.append(lo / (qmin - zp))
    return torch.stack(cands).amax(dim=0)


def scale_for_range(lo: torch.Tensor, hi: torch.Tensor, qmin: int, qmax: int,
                    zero_point: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale, zero_point) per channel that map the range [lo, hi] onto codes [qmin, qmax].

    Parameters
    ----------
    lo, hi : torch.Tensor
        (C,) ranges (widened to include 0).
    qmin, qmax : int
        The code range.
    zero_point : int or None
        None chooses it (asymmetric); an int fixes it.

    Returns
    -------
    tuple of torch.Tensor
        float64 scales holding float32 values (clamped into float32's normal range; see
        `check_reachable` for the check `calibrate` makes first) and int64 zero points. See
        the module docstring for the exact formulas.
    """
    scale = _round_scale(_raw_scale(lo, hi, qmin, qmax, zero_point))
    lo = lo.to(torch.float64).clamp(max=0.0)
    if zero_point is None:
        zp = (qmin - torch.round(lo / scale)).clamp(qmin, qmax).to(torch.int64)
        return scale, zp
    return scale, torch.full_like(lo, int(zero_point), dtype=torch.int64)


def _mse_rows(rows: torch.Tensor, scale: torch.Tensor, zp: torch.Tensor, qmin: int,
              qmax: int) -> torch.Tensor:
    s = scale[:, None]
    z = zp[:, None].to(torch.float64)
    q = torch.round(rows / s).add_(z).clamp_(qmin, qmax)
    err = q.sub_(z).mul_(s).sub_(rows)
    return err.square_().sum(dim=1)


def calibrate(x3: torch.Tensor, qmin: int, qmax: int, zero_point: int | None,
              method: str = "minmax", percentile: float = 99.99,
              source: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel (scale, zero_point) for a (outer, C, inner) float tensor.

    Parameters
    ----------
    x3 : torch.Tensor
        The values, channels on axis 1.
    qmin, qmax : int
        The code range.
    zero_point : int or None
        A fixed zero point, or None to calibrate it (asymmetric).
    method : str
        'minmax' (observed extremes), 'percentile' (clip at the given percentile) or 'mse'
        (search the clipping ratio that minimises the squared error of decode(encode(x)): 96
        ratios in [0.05, 1] then 17 around the best, per channel, on at most `MSE_SAMPLE`
        values per channel; ties keep the widest range).
    percentile : float
        For 'percentile', in (0, 100].
    source : torch.Tensor, optional
        The caller's tensor, named in errors.

    Returns
    -------
    tuple of torch.Tensor
        float64 scales holding float32 values, int64 zero points, each (C,).

    Raises
    ------
    EncodingRangeError
        When a channel's observed range needs a scale outside float32 (`check_reachable`).
    """
    symmetric = zero_point is not None
    lo, hi = observed_range(x3, method, percentile, symmetric=symmetric, source=source)
    check_reachable(lo, hi, qmin, qmax, zero_point)
    if method != "mse":
        return scale_for_range(lo, hi, qmin, qmax, zero_point)
    rows = x3.transpose(0, 1).reshape(x3.shape[1], -1)
    if rows.shape[1] > MSE_SAMPLE:
        step = -(-rows.shape[1] // MSE_SAMPLE)
        rows = rows[:, ::step]
    rows = rows.to(torch.float64)

    def search(ratios: np.ndarray, best_r: torch.Tensor | None
               ) -> tuple[torch.Tensor, torch.Tensor]:
        best_err = torch.full((rows.shape[0],), math.inf, dtype=torch.float64)
        best = torch.ones(rows.shape[0], dtype=torch.float64)
        for r in ratios[::-1]:                      # widest first: ties keep the widest
            rr = torch.full_like(best, float(r)) if best_r is None else (best_r * r).clamp(max=1)
            s, z = scale_for_range(lo * rr, hi * rr, qmin, qmax, zero_point)
            e = _mse_rows(rows, s, z, qmin, qmax)
            better = e < best_err
            best_err = torch.where(better, e, best_err)
            best = torch.where(better, rr, best)
        return best, best_err

    coarse, _ = search(np.linspace(0.05, 1.0, 96), None)
    fine, _ = search(np.linspace(1 - 1 / 95, 1 + 1 / 95, 17), coarse)
    return scale_for_range(lo * fine, hi * fine, qmin, qmax, zero_point)
