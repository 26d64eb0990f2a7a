"""A ScaledInt8's parameters: scale and zero-point tensors and their checks, written once.

Scales live at float32 precision (encode and decode run there): a scale must be finite, > 0,
finite and nonzero in float32, with a finite float32 reciprocal (above about 2**-128).
"""

from __future__ import annotations

import numpy as np
import torch

import numfmt

from .._tensors import as_tensor, is_int

__all__ = ["FP32", "param_tensor", "check_scale", "check_decode_scale", "format_values",
           "float32_scale"]

FP32 = numfmt.get("fp32")
"""The format scales are held in (its max and smallest normal bound calibrated scales)."""


def param_tensor(value: object, what: str, channels: int | None, floating: bool
                 ) -> torch.Tensor:
    """A scale (float64) or zero point (int64) as a fresh CPU tensor of shape () or (C,).

    Parameters
    ----------
    value : number or tensor or ndarray
        One value, or one per channel.
    what : str
        Names the parameter in errors.
    channels : int or None
        None for a per-tensor encoding, else the number of channels C (one value is
        broadcast to all of them).
    floating : bool
        True for a scale, False for a zero point (integers only).

    Returns
    -------
    torch.Tensor
        Never a view of the caller's tensor.
    """
    if isinstance(value, (torch.Tensor, np.ndarray)):
        t = as_tensor(value, what)
        if floating and t.is_complex():
            raise TypeError(f"{what} must be real")
        if not floating and (t.is_floating_point() or t.dtype == torch.bool):
            raise TypeError(f"{what} must hold integers, got {t.dtype}")
        t = t.to("cpu", torch.float64 if floating else torch.int64)
    elif floating and (is_int(value) or isinstance(value, (float, np.floating))):
        t = torch.tensor(float(value), dtype=torch.float64)
    elif not floating and is_int(value):
        t = torch.tensor(int(value), dtype=torch.int64)
    else:
        raise TypeError(f"{what} must be a {'number' if floating else 'integer'} or a tensor, "
                        f"got {type(value).__name__}")
    if channels is None:
        if t.numel() != 1:
            raise ValueError(f"{what} has {t.numel()} values but the encoding is per-tensor "
                             f"(axis=None); pass axis= for per-channel parameters")
        return t.reshape(()).clone()
    if t.numel() == 1:
        return t.reshape(1).expand(channels).clone()
    if t.dim() != 1 or t.numel() != channels:
        raise ValueError(f"{what} has shape {tuple(t.shape)} but the axis has {channels} "
                         f"channels")
    return t.clone()


def check_scale(scale: torch.Tensor, what: str = "scale") -> None:
    """ValueError unless every scale is finite, > 0 and usable in float32 (see the module).

    Works on one numpy array of the (few) scales, per tensor and per channel alike.
    """
    v = scale.detach().cpu().numpy().reshape(-1)
    if np.isnan(v).any():
        raise ValueError(f"{what} is NaN; a scale must be a finite number > 0")
    if np.isinf(v).any():
        raise ValueError(f"{what} is infinite; a scale must be a finite number > 0")
    if (v <= 0).any():
        raise ValueError(f"{what} must be > 0, got {float(v[v <= 0][0])}")
    with np.errstate(over="ignore", divide="ignore", under="ignore"):
        f32 = v.astype(np.float32)
        if np.isinf(f32).any():
            raise ValueError(f"{what} overflows float32 (a scale must be at most "
                             f"{float(FP32.max):.4g})")
        if (f32 == 0).any() or np.isinf(np.float32(1.0) / f32).any():
            raise ValueError(f"{what} is too small for float32 encode/decode (its float32 "
                             f"reciprocal overflows: a scale must exceed about 2**-128)")


def float32_scale(scale: torch.Tensor) -> torch.Tensor:
    """The checked scales rounded to float32, held as float64 (how every encoding keeps them)."""
    return scale.to(torch.float32).to(torch.float64)


def check_decode_scale(s: torch.Tensor, scale: torch.Tensor, dtype: torch.dtype) -> None:
    """ValueError unless every scale `s`, already rounded to `dtype`, is finite and nonzero."""
    if not bool(torch.isfinite(s).all()) or bool((s == 0).any()):
        hint = "; use decode(torch.float64)" if dtype != torch.float64 else ""
        raise ValueError(f"scale {format_values(scale)} is not representable in {dtype} "
                         f"(a product scale can underflow float32){hint}")


def format_values(t: torch.Tensor, collapse_equal: bool = False) -> str:
    """One value, or the '[min .. max]' span of several (one value where all are equal and
    `collapse_equal`), for messages and reprs."""
    v = t.reshape(-1)
    if v.numel() == 1 or (collapse_equal and v.numel() and bool((v == v[0]).all())):
        return f"{float(v[0]):.6g}" if v.is_floating_point() else f"{int(v[0])}"
    if v.is_floating_point():
        return f"[{float(v.min()):.6g} .. {float(v.max()):.6g}]"
    return f"[{int(v.min())} .. {int(v.max())}]"
