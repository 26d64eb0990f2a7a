"""Error measures of an encoding against reference values, computed in float64.

Relative error at a reference value r with approximation a is |a - r| / |r|. At r = 0 it is 0
when a = 0 and infinite otherwise (an encoding that turns an exact zero into something else has
no finite relative error there). Empty inputs give 0.0 error and an infinite SQNR (nothing was
lost).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ._tensors import as_tensor

__all__ = ["db_ratio", "dynamic_range_db", "relative_errors", "max_rel_error",
           "rms_rel_error", "sqnr_db", "quantile_rows", "DecodeErrorMetrics"]


def quantile_rows(rows: torch.Tensor, q: float) -> torch.Tensor:
    """Per-row quantile with numpy's default linear interpolation.

    Parameters
    ----------
    rows : torch.Tensor
        (C, N) values, N >= 1.
    q : float
        The quantile, in [0, 1].

    Returns
    -------
    torch.Tensor
        float64 (C,): what ``numpy.quantile(rows, q, axis=1)`` gives.
    """
    n = rows.shape[1]
    h = (n - 1) * q
    lo_i = min(int(math.floor(h)), n - 1)
    frac = h - lo_i
    lo = torch.kthvalue(rows, lo_i + 1, dim=1).values.to(torch.float64)
    if frac == 0.0 or lo_i + 1 >= n:
        return lo
    hi = torch.kthvalue(rows, lo_i + 2, dim=1).values.to(torch.float64)
    return lo + frac * (hi - lo)


def _pair(reference: object, approx: object) -> tuple[torch.Tensor, torch.Tensor]:
    r = as_tensor(reference, "reference").to(torch.float64)
    a = as_tensor(approx, "approximation").to(torch.float64)
    if r.shape != a.shape:
        raise ValueError(f"reference has shape {tuple(r.shape)} but the approximation has "
                         f"{tuple(a.shape)}")
    if not bool(torch.isfinite(r).all()):
        raise ValueError("reference values must be finite")
    return r, a


def db_ratio(larger: float, smaller: float) -> float:
    """20 log10(larger / smaller) in dB.

    Parameters
    ----------
    larger, smaller : float
        Magnitudes (>= 0).

    Returns
    -------
    float
        inf when `smaller` is 0 and `larger` is not; 0.0 when both are 0.
    """
    if larger < 0 or smaller < 0:
        raise ValueError("dB ratios are of magnitudes (>= 0)")
    if smaller == 0:
        return math.inf if larger > 0 else 0.0
    return 20.0 * math.log10(larger / smaller)


def dynamic_range_db(values: torch.Tensor | np.ndarray) -> float:
    """20 log10(max |v| / min nonzero |v|) of the given values, in dB.

    Parameters
    ----------
    values : torch.Tensor or numpy.ndarray
        Finite values.

    Returns
    -------
    float
        0.0 if no value is nonzero.
    """
    v = as_tensor(values, "values").to(torch.float64).abs().reshape(-1)
    if not bool(torch.isfinite(v).all()):
        raise ValueError("dynamic_range_db needs finite values")
    nz = v[v > 0]
    if nz.numel() == 0:
        return 0.0
    return db_ratio(float(nz.max()), float(nz.min()))


def relative_errors(reference: object, approx: object) -> torch.Tensor:
    """Elementwise |approx - reference| / |reference|.

    Parameters
    ----------
    reference, approx : torch.Tensor or numpy.ndarray
        Same shape; the reference finite.

    Returns
    -------
    torch.Tensor
        float64; at reference 0: 0 if approx is 0, else inf (module docstring).
    """
    r, a = _pair(reference, approx)
    err = (a - r).abs()
    rel = err / r.abs()
    return torch.where(r == 0, torch.where(err == 0, 0.0, math.inf), rel)


def max_rel_error(reference: object, approx: object) -> float:
    """Largest relative error (`relative_errors`), 0.0 for empty input.

    Parameters
    ----------
    reference, approx : torch.Tensor or numpy.ndarray
        Same shape; the reference finite.

    Returns
    -------
    float
    """
    rel = relative_errors(reference, approx)
    return float(rel.max()) if rel.numel() else 0.0


def rms_rel_error(reference: object, approx: object) -> float:
    """Root mean square of the relative errors (`relative_errors`), 0.0 for empty input.

    Parameters
    ----------
    reference, approx : torch.Tensor or numpy.ndarray
        Same shape; the reference finite.

    Returns
    -------
    float
    """
    rel = relative_errors(reference, approx)
    return float(rel.square().mean().sqrt()) if rel.numel() else 0.0


def sqnr_db(reference: object, approx: object) -> float:
    """Signal-to-quantization-noise ratio 10 log10(sum r^2 / sum (a - r)^2), in dB.

    Parameters
    ----------
    reference, approx : torch.Tensor or numpy.ndarray
        Same shape; the reference finite.

    Returns
    -------
    float
        inf for an exact approximation, -inf for a zero signal with noise.
    """
    r, a = _pair(reference, approx)
    noise = float((a - r).square().sum())
    signal = float(r.square().sum())
    if noise == 0.0:
        return math.inf
    if signal == 0.0:
        return -math.inf
    return 10.0 * math.log10(signal / noise)


class DecodeErrorMetrics:
    """Error metrics of an encoding's ``decode(dtype)`` against reference values, for the
    encoded classes (`ScaledInt8`, `LogInt8`).

    Each metric measures the decode the user gets: float32 by default (the default of
    ``decode``), float64 when asked. The errors are then computed in float64.
    """

    def decode(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:  # pragma: no cover
        """The decoded values (each encoding defines it)."""
        raise NotImplementedError

    def max_rel_error(self, x: torch.Tensor | np.ndarray,
                      dtype: torch.dtype = torch.float32) -> float:
        """Largest |decode(dtype) - x| / |x| against the reference values `x`
        (see `quant.max_rel_error`)."""
        return max_rel_error(x, self.decode(dtype))

    def rms_rel_error(self, x: torch.Tensor | np.ndarray,
                      dtype: torch.dtype = torch.float32) -> float:
        """Root-mean-square relative error of decode(dtype) against `x`."""
        return rms_rel_error(x, self.decode(dtype))

    def sqnr_db(self, x: torch.Tensor | np.ndarray, dtype: torch.dtype = torch.float32) -> float:
        """Signal-to-quantization-noise ratio of decode(dtype) against `x`, in dB."""
        return sqnr_db(x, self.decode(dtype))
