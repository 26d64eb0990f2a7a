"""`ScaledInt8`: affine 8-bit codes, real = scale * (code - zero_point).

Symmetric encodings (zero_point 0) use the narrow int8 range [-127, 127] by default, so that
negation never overflows and the grid is symmetric about zero; `narrow_range=False` gives the
full [-128, 127]. Asymmetric encodings default to uint8 [0, 255] with a calibrated zero point;
int8 with a zero point is available through `dtype=`. Scales are per tensor or per channel
along any axis.

Rounding: code = clamp(round_half_even(x / scale) + zero_point, qmin, qmax), the quotient
correctly rounded in x's precision (float32, or float64 for float64 input) before it is
rounded to an integer; scales are float32 values. Only a quotient within one float32 rounding
of a half-integer can therefore land on the farther code (and stay within scale/2 * (1 + 2**-23)
of x). torch.quantize_per_tensor multiplies by a rounded reciprocal instead, so its codes can
differ by one right at such ties. NaN and infinity are refused.
decode = float32(scale) * (code - zero_point): the integer difference is exact and the product
is rounded once. Codes stay on the input's device (a meta tensor encodes to meta codes, with
no value checks: it has no values).

Results of exact matmuls keep their int32 / int64 accumulators as codes at the product scale
(zero point 0); every other encoding stores int8 or uint8 codes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .. import metrics
from .._tensors import (as_float_input, as_int, as_tensor, channel_view, has_values, is_int,
                        normalize_axis)
from ..policy import STORAGE_DTYPES, storage_range
from .calibrate import CALIBRATIONS, calibrate
from .kernels import decode_values, encode_codes
from .params import check_scale, float32_scale, format_values, param_tensor

__all__ = ["ScaledInt8", "storage_range"]


def _check_zero_point(zp: torch.Tensor, qmin: int, qmax: int) -> None:
    if bool(((zp < qmin) | (zp > qmax)).any()):
        raise ValueError(f"zero_point must lie in the code range [{qmin}, {qmax}]")


@dataclass(frozen=True, eq=False, repr=False)
class ScaledInt8(metrics.DecodeErrorMetrics):
    """Affine 8-bit encoding: real value = scale * (code - zero_point).

    Attributes
    ----------
    codes : torch.Tensor
        int8 or uint8 codes, each in [qmin, qmax] (int32 / int64 for exact matmul results).
        The constructor copies the caller's tensor: the encoding owns its codes.
    scale : torch.Tensor
        float64, shape () per tensor or (C,) per channel (C = codes.shape[axis]). Scales given
        to quant (here, to encode, as out_scale) are rounded to float32, the precision encode
        and decode run at; only the product scales of mul and matmul results carry more bits
        (exact products of float32 scales).
    zero_point : torch.Tensor
        int64 of the same shape as `scale`, inside [qmin, qmax].
    axis : int or None
        None (per tensor) or the channel axis (stored non-negative).
    qmin, qmax : int
        The code range; defaults to the whole storage range of ``codes.dtype``.

    Notes
    -----
    Build it from data with `ScaledInt8.encode`, or directly from codes and parameters
    (``ScaledInt8(codes, scale=0.05, zero_point=0)``); direct construction validates
    everything (float codes, out-of-range codes, bad scales are errors). Two encodings are
    ``==`` when their codes, dtype, scales, zero points, axis and code range are equal; being
    mutable tensors inside, encodings are unhashable.

    Examples
    --------
    >>> import torch, quant
    >>> e = quant.ScaledInt8.encode(torch.tensor([0.5, -1.0]), scale=0.25)
    >>> e.codes.tolist(), e.decode().tolist()
    ([2, -4], [0.5, -1.0])
    """

    codes: torch.Tensor
    scale: torch.Tensor
    zero_point: torch.Tensor | int = 0
    axis: int | None = None
    qmin: int | None = None
    qmax: int | None = None

    def __post_init__(self) -> None:
        codes = as_tensor(self.codes, "ScaledInt8 codes")
        if codes.dtype not in STORAGE_DTYPES.values():
            raise TypeError(f"ScaledInt8 codes must be an int8 or uint8 tensor (int32 / int64 "
                            f"for exact accumulators), got {codes.dtype}"
                            + ("; use ScaledInt8.encode to quantize real values"
                               if codes.is_floating_point() else ""))
        dtype, lo_s, hi_s = storage_range(codes.dtype, wide=True)
        codes = codes.clone()                   # the encoding owns its codes (never aliased)
        axis = normalize_axis(self.axis, codes.dim(), "ScaledInt8")
        channels = None if axis is None else codes.shape[axis]
        scale = param_tensor(self.scale, "scale", channels, floating=True)
        check_scale(scale)
        scale = float32_scale(scale)
        zp = param_tensor(self.zero_point, "zero_point", channels, floating=False)
        qmin = lo_s if self.qmin is None else as_int(self.qmin, "qmin")
        qmax = hi_s if self.qmax is None else as_int(self.qmax, "qmax")
        if not lo_s <= qmin < qmax <= hi_s:
            raise ValueError(f"code range [{qmin}, {qmax}] does not fit {dtype}")
        _check_zero_point(zp, qmin, qmax)
        if codes.numel() and has_values(codes):
            cmin, cmax = (int(v) for v in torch.aminmax(codes))
            if cmin < qmin or cmax > qmax:
                raise ValueError(f"codes span [{cmin}, {cmax}], outside the code range "
                                 f"[{qmin}, {qmax}]")
        for name, v in (("codes", codes), ("scale", scale), ("zero_point", zp), ("axis", axis),
                        ("qmin", qmin), ("qmax", qmax)):
            object.__setattr__(self, name, v)

    @classmethod
    def _trusted(cls, codes: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor,
                 axis: int | None, qmin: int, qmax: int) -> ScaledInt8:
        """Construct without validation (for results this package has just computed)."""
        obj = object.__new__(cls)
        for name, v in (("codes", codes), ("scale", scale), ("zero_point", zero_point),
                        ("axis", axis), ("qmin", qmin), ("qmax", qmax)):
            object.__setattr__(obj, name, v)
        return obj

    def __eq__(self, other: object) -> bool:
        """Equal by value: codes (dtype and values), scales, zero points, axis, code range."""
        if not isinstance(other, ScaledInt8):
            return NotImplemented
        return (self.codes.dtype == other.codes.dtype and self.axis == other.axis
                and (self.qmin, self.qmax) == (other.qmin, other.qmax)
                and self.codes.shape == other.codes.shape
                and torch.equal(self.scale, other.scale)
                and torch.equal(self.zero_point, other.zero_point)
                and torch.equal(self.codes.cpu(), other.codes.cpu()))

    __hash__ = None  # type: ignore[assignment]  # equal by (mutable) value: unhashable

    # ----------------------------------------------------------------------------- encode
    @classmethod
    def encode(cls, x: torch.Tensor | np.ndarray, scale: object = None,
               zero_point: int | torch.Tensor | None = 0, axis: int | None = None,
               calibration: str = "minmax", *, dtype: object = None,
               narrow_range: bool | None = None, percentile: float = 99.99) -> ScaledInt8:
        """Encode real values (torch tensor or numpy array; never modified).

        Parameters
        ----------
        x : torch.Tensor or numpy.ndarray
            Real values (float16/bfloat16 become float32, integers float64). The codes are
            made on x's device.
        scale : number or tensor, optional
            None: calibrate from `x` with `calibration`; otherwise a number, or per-channel
            values when `axis` is given; finite and > 0. Used at float32 precision.
        zero_point : int or tensor or None
            0 (default): symmetric. An int: that zero point (scale calibrated around it).
            None: asymmetric, zero point calibrated with the scale.
        axis : int, optional
            None: one scale for the tensor; an int: one scale per index along it.
        calibration : str
            'minmax', 'percentile' (at `percentile`) or 'mse' (see `quant.scaled.calibrate`).
        dtype : str or dtype, optional
            Storage 'int8' / 'uint8' (or torch / numpy dtypes). Default: int8, or uint8 when
            zero_point is None.
        narrow_range : bool, optional
            Codes -127..127 instead of -128..127; default True exactly for symmetric int8.
        percentile : float
            The percentile of 'percentile' calibration, in (0, 100].

        Returns
        -------
        ScaledInt8

        Raises
        ------
        ValueError
            NaN or infinity in `x`, bad parameters, or calibration of an empty tensor.
        EncodingRangeError
            When calibration would need a scale outside float32 (data beyond ~4e40 or whose
            magnitudes all lie below ~1e-36): those would silently become zeros otherwise.

        Notes
        -----
        Values outside the codes' reach saturate to qmin / qmax (with a given scale; a
        calibrated scale reaches every value except those clipped by 'percentile' / 'mse').
        An empty tensor encodes to empty codes when `scale` is given.
        """
        xf = as_float_input(x, "ScaledInt8.encode")
        if calibration not in CALIBRATIONS:
            raise ValueError(f"unknown calibration {calibration!r}; use one of "
                             f"{', '.join(CALIBRATIONS)}")
        if dtype is None:
            dtype = "uint8" if zero_point is None else "int8"
        tdtype, qmin, qmax = storage_range(dtype)
        symmetric = is_int(zero_point) and int(zero_point) == 0
        if narrow_range is None:
            narrow_range = symmetric and tdtype == torch.int8
        if narrow_range:
            qmin += 1
        ax = normalize_axis(axis, xf.dim(), "ScaledInt8.encode")
        x3 = channel_view(xf, ax)
        channels = None if ax is None else x3.shape[1]
        if scale is None:
            s, zp = _calibrated(x3, xf, zero_point, qmin, qmax, calibration, percentile)
            if channels is None:
                s, zp = s.reshape(()), zp.reshape(())
        else:
            if zero_point is None:
                raise ValueError("zero_point=None asks for calibration; with an explicit scale "
                                 "pass an integer zero point")
            s = param_tensor(scale, "scale", channels, floating=True)
            check_scale(s)
            s = float32_scale(s)
            zp = param_tensor(zero_point, "zero_point", channels, floating=False)
            _check_zero_point(zp, qmin, qmax)
        codes = encode_codes(x3, s, zp, qmin, qmax, tdtype, xf).reshape(xf.shape)
        return cls._trusted(codes, s, zp, ax, qmin, qmax)

    # ----------------------------------------------------------------------------- decode
    def decode(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Real values scale * (code - zero_point) as a new tensor on the codes' device.

        Parameters
        ----------
        dtype : torch.dtype
            torch.float32 (default) or torch.float64.

        Returns
        -------
        torch.Tensor
            The integer difference is exact; the product is rounded once (the scale is first
            rounded to `dtype`, as torch's dequantize does).

        Raises
        ------
        ValueError
            For another dtype, or a product scale that underflows float32 (decode in
            float64 then).
        """
        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"decode produces torch.float32 or torch.float64, not {dtype!r}")
        return decode_values(self.codes, self.scale, self.zero_point, self.axis, dtype)

    # ------------------------------------------------------------------------- properties
    @property
    def dtype(self) -> torch.dtype:
        """Storage dtype of the codes (torch.int8 or torch.uint8; int32/int64 accumulators)."""
        return self.codes.dtype

    @property
    def shape(self) -> torch.Size:
        """Shape of the encoded tensor."""
        return self.codes.shape

    @property
    def nbytes(self) -> int:
        """Bytes as stored: the codes, each scale as a float32 (quant uses scales at float32
        precision), and one byte per zero point when any is nonzero."""
        n = self.codes.numel() * self.codes.element_size() + 4 * self.scale.numel()
        return n + (self.zero_point.numel() if bool((self.zero_point != 0).any()) else 0)

    @property
    def per_channel(self) -> bool:
        """Whether the scale varies along `axis`."""
        return self.axis is not None

    def channel_scales(self) -> torch.Tensor:
        """Scales as a float64 (C,) tensor ((1,) for a per-tensor encoding)."""
        return self.scale.reshape(-1)

    @property
    def max_magnitude(self) -> float:
        """Largest |value| any code represents (over all channels)."""
        z = self.zero_point.reshape(-1).to(torch.float64)
        reach = torch.maximum(self.qmax - z, z - self.qmin)
        return float((self.channel_scales() * reach).max())

    @property
    def min_magnitude(self) -> float:
        """Smallest nonzero |value| any code represents: the smallest scale (one code step)."""
        return float(self.channel_scales().min())

    @property
    def dynamic_range_db(self) -> float:
        """20 log10(max_magnitude / min_magnitude): the span of representable magnitudes."""
        return metrics.db_ratio(self.max_magnitude, self.min_magnitude)

    def __repr__(self) -> str:
        return (f"ScaledInt8(shape={tuple(self.shape)}, dtype={str(self.dtype)[6:]}, "
                f"range=[{self.qmin}, {self.qmax}], scale={format_values(self.scale)}, "
                f"zero_point={format_values(self.zero_point, collapse_equal=True)}, "
                f"axis={self.axis})")


def _calibrated(x3: torch.Tensor, source: torch.Tensor, zero_point: object, qmin: int,
                qmax: int, calibration: str, percentile: float
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale, zero point) per channel calibrated from the (outer, C, inner) values."""
    fixed_zp = None
    if zero_point is not None:
        fixed_zp = as_int(zero_point, "zero_point (with a calibrated scale)")
        if not qmin <= fixed_zp <= qmax:
            raise ValueError(f"zero_point {fixed_zp} is outside the code range "
                             f"[{qmin}, {qmax}]")
    if not has_values(x3):
        raise ValueError("ScaledInt8.encode: a meta tensor has no values to calibrate a scale "
                         "from; pass scale=")
    return calibrate(x3, qmin, qmax, fixed_zp, calibration, percentile, source)
