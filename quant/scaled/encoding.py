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
is rounded once.
"""

from __future__ import annotations

import functools
import math
import warnings
from dataclasses import dataclass

import numpy as np
import torch

import numfmt

from .. import metrics, native
from .._tensors import (as_float_input, as_tensor, block_shape, blocks, channel_view,
                       check_finite, normalize_axis)
from .calibrate import CALIBRATIONS, calibrate

__all__ = ["ScaledInt8", "storage_range"]

# Round-to-integer by addition: for |y| < 2**(p-2), float(M + y) with M = 1.5 * 2**(p-1) is
# M + round_half_even(y), and its bit pattern is bits(M) + that integer.
_MAGIC = {torch.float32: (12582912.0, torch.int32),
          torch.float64: (6755399441055744.0, torch.int64)}
_STORAGE_DTYPES = {"int8": torch.int8, "uint8": torch.uint8}
_QUANTIZED = {torch.int8: torch.qint8, torch.uint8: torch.quint8}
_FUSED_BLOCK = 1 << 18
"""Elements per block of the fused per-tensor float32 encode: 1 MiB of quotients (mostly still
cached for the rounding pass; smaller blocks lose more to per-call overhead than they gain)."""


def storage_range(dtype: object) -> tuple[torch.dtype, int, int]:
    """(torch dtype, lowest, highest) of an 8-bit integer storage format.

    Accepts anything `numfmt.get` accepts ('int8', 'uint8', torch.int8, numpy.uint8, ...).
    """
    fmt = numfmt.get(dtype)
    if fmt.name not in _STORAGE_DTYPES:
        raise ValueError(f"ScaledInt8 stores int8 or uint8 codes, not {fmt.name}")
    return _STORAGE_DTYPES[fmt.name], int(fmt.lowest), int(fmt.max)


def _scalar_int(v: object, what: str) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise TypeError(f"{what} must be an integer, got {type(v).__name__}")
    return int(v)


def _param_tensor(value: object, what: str, channels: int | None, floating: bool
                  ) -> torch.Tensor:
    """Scale / zero point as a float64 / int64 tensor of shape () or (channels,)."""
    if isinstance(value, (torch.Tensor, np.ndarray)):
        t = as_tensor(value, what)
        if floating and t.is_complex():
            raise TypeError(f"{what} must be real")
        if not floating and (t.is_floating_point() or t.dtype == torch.bool):
            raise TypeError(f"{what} must hold integers, got {t.dtype}")
        t = t.to(torch.float64 if floating else torch.int64)
    elif isinstance(value, bool):
        raise TypeError(f"{what} must be a number, not bool")
    elif floating and isinstance(value, (int, float, np.floating, np.integer)):
        t = torch.tensor(float(value), dtype=torch.float64)
    elif not floating and isinstance(value, (int, np.integer)):
        t = torch.tensor(int(value), dtype=torch.int64)
    else:
        raise TypeError(f"{what} must be a {'number' if floating else 'integer'} or a tensor, "
                        f"got {type(value).__name__}")
    if channels is None:
        if t.numel() != 1:
            raise ValueError(f"{what} has {t.numel()} values but the encoding is per-tensor "
                             f"(axis=None); pass axis= for per-channel parameters")
        return t.reshape(())
    if t.numel() == 1:
        return t.reshape(1).expand(channels).clone()
    if t.dim() != 1 or t.numel() != channels:
        raise ValueError(f"{what} has shape {tuple(t.shape)} but the axis has {channels} "
                         f"channels")
    return t.clone()


def _check_scale(scale: torch.Tensor) -> None:
    if scale.numel() == 1:                  # per tensor: the same checks on one Python float
        _check_scale_value(float(scale))
        return
    if bool(torch.isnan(scale).any()):
        raise ValueError("scale is NaN; a scale must be a finite number > 0")
    if not bool(torch.isfinite(scale).all()):
        raise ValueError("scale is infinite; a scale must be a finite number > 0")
    if bool((scale <= 0).any()):
        bad = float(scale.reshape(-1)[(scale.reshape(-1) <= 0).nonzero()[0, 0]])
        raise ValueError(f"scale must be > 0, got {bad}")
    if bool((scale.to(torch.float32) == 0).any()) or \
            bool(torch.isinf(1.0 / scale.to(torch.float32)).any()):
        raise ValueError("scale is too small for float32 encode/decode (its float32 "
                         "reciprocal overflows: a scale must exceed about 2**-128)")
    if bool(torch.isinf(scale.to(torch.float32)).any()):
        raise ValueError("scale overflows float32")


def _check_decode_scale(s: torch.Tensor, scale: torch.Tensor, dtype: torch.dtype) -> None:
    """ValueError unless every scale `s`, already rounded to `dtype`, is finite and nonzero."""
    if not bool(torch.isfinite(s).all()) or bool((s == 0).any()):
        raise ValueError(f"scale {_fmt_scale(scale)} is not representable in {dtype} "
                         f"(a product scale can underflow float32); use decode(torch.float64)")


@functools.lru_cache(maxsize=256)
def _decode_table(scale: float, zero_point: int, code_dtype: torch.dtype,
                  dtype: torch.dtype) -> torch.Tensor:
    """The 256 decoded values indexed by the code's byte, with the same two roundings as
    `ScaledInt8.decode`'s loop (scale rounded to `dtype`, then one rounded product)."""
    codes = torch.arange(256, dtype=torch.int16).to(torch.uint8).view(code_dtype)
    s = torch.tensor(scale, dtype=torch.float64).to(dtype)
    _check_decode_scale(s, torch.tensor(scale, dtype=torch.float64), dtype)
    z = torch.tensor(zero_point, dtype=torch.int64).to(dtype)
    return ((codes.to(dtype) - z) * s if zero_point else codes.to(dtype) * s).contiguous()


def _check_scale_value(v: float) -> None:
    if math.isnan(v):
        raise ValueError("scale is NaN; a scale must be a finite number > 0")
    if math.isinf(v):
        raise ValueError("scale is infinite; a scale must be a finite number > 0")
    if v <= 0:
        raise ValueError(f"scale must be > 0, got {v}")
    with np.errstate(over="ignore", divide="ignore"):
        f32 = np.float32(v)
        if f32 == 0 or math.isinf(np.float32(1.0) / f32):
            raise ValueError("scale is too small for float32 encode/decode (its float32 "
                             "reciprocal overflows: a scale must exceed about 2**-128)")
    if math.isinf(f32):
        raise ValueError("scale overflows float32")


@dataclass(frozen=True, eq=False, repr=False)
class ScaledInt8(metrics.DecodeErrorMetrics):
    """Affine 8-bit encoding: real value = scale * (code - zero_point).

    Fields
    codes       int8 or uint8 tensor of codes, each in [qmin, qmax].
    scale       float64 tensor, shape () per tensor or (C,) per channel (C = codes.shape[axis]).
                Scales given to quant (here, to encode, as out_scale) are rounded to float32,
                the precision encode and decode run at; only the product scales of mul and
                matmul results carry more bits (exact products of float32 scales).
    zero_point  int64 tensor of the same shape as `scale`, inside [qmin, qmax].
    axis        None (per tensor) or the channel axis (stored non-negative).
    qmin, qmax  the code range; defaults to the whole storage range of `codes.dtype`.

    Build it from data with `ScaledInt8.encode`, or directly from codes and parameters
    (`ScaledInt8(codes, scale=0.05, zero_point=0)`); direct construction validates everything
    (float codes, out-of-range codes, bad scales are errors).
    """

    codes: torch.Tensor
    scale: torch.Tensor
    zero_point: torch.Tensor | int = 0
    axis: int | None = None
    qmin: int | None = None
    qmax: int | None = None

    def __post_init__(self) -> None:
        codes = as_tensor(self.codes, "ScaledInt8 codes")
        if codes.dtype not in (torch.int8, torch.uint8):
            raise TypeError(f"ScaledInt8 codes must be an int8 or uint8 tensor, got {codes.dtype}"
                            + ("; use ScaledInt8.encode to quantize real values"
                               if codes.is_floating_point() else ""))
        dtype, lo_s, hi_s = storage_range(codes.dtype)
        axis = normalize_axis(self.axis, codes.dim(), "ScaledInt8")
        channels = None if axis is None else codes.shape[axis]
        scale = _param_tensor(self.scale, "scale", channels, floating=True)
        _check_scale(scale)
        scale = scale.to(torch.float32).to(torch.float64)
        zp = _param_tensor(self.zero_point, "zero_point", channels, floating=False)
        qmin = lo_s if self.qmin is None else _scalar_int(self.qmin, "qmin")
        qmax = hi_s if self.qmax is None else _scalar_int(self.qmax, "qmax")
        if not lo_s <= qmin < qmax <= hi_s:
            raise ValueError(f"code range [{qmin}, {qmax}] does not fit {dtype}")
        if bool(((zp < qmin) | (zp > qmax)).any()):
            raise ValueError(f"zero_point must lie in the code range [{qmin}, {qmax}]")
        if codes.numel():
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

    # ----------------------------------------------------------------------------- encode
    @classmethod
    def encode(cls, x: torch.Tensor | np.ndarray, scale: object = None,
               zero_point: int | torch.Tensor | None = 0, axis: int | None = None,
               calibration: str = "minmax", *, dtype: object = None,
               narrow_range: bool | None = None, percentile: float = 99.99) -> ScaledInt8:
        """Encode real values (torch tensor or numpy array; never modified).

        scale       None: calibrate from `x` with `calibration` ('minmax', 'percentile' at
                    `percentile`, or 'mse'); otherwise a number, or per-channel values when
                    `axis` is given; finite and > 0. Used at float32 precision.
        zero_point  0 (default): symmetric. An int: that zero point (scale calibrated around
                    it). None: asymmetric, zero point calibrated with the scale.
        axis        None: one scale for the tensor; an int: one scale per index along it.
        dtype       storage 'int8' / 'uint8' (or torch / numpy dtypes). Default: int8, or
                    uint8 when zero_point is None.
        narrow_range  codes -127..127 instead of -128..127; default True exactly for
                    symmetric int8.
        Out-of-range values saturate to qmin/qmax. NaN or infinity raise ValueError; an empty
        tensor encodes to empty codes when `scale` is given (calibration needs data).
        """
        xf = as_float_input(x, "ScaledInt8.encode")
        if calibration not in CALIBRATIONS:
            raise ValueError(f"unknown calibration {calibration!r}; use one of "
                             f"{', '.join(CALIBRATIONS)}")
        if dtype is None:
            dtype = "uint8" if zero_point is None else "int8"
        tdtype, qmin, qmax = storage_range(dtype)
        symmetric = isinstance(zero_point, (int, np.integer)) and not isinstance(zero_point, bool) \
            and int(zero_point) == 0
        if narrow_range is None:
            narrow_range = symmetric and tdtype == torch.int8
        if narrow_range:
            qmin += 1
        ax = normalize_axis(axis, xf.dim(), "ScaledInt8.encode")
        x3 = channel_view(xf, ax)
        channels = None if ax is None else x3.shape[1]
        if scale is None:
            fixed_zp = None
            if zero_point is not None:
                fixed_zp = _scalar_int(zero_point, "zero_point (with a calibrated scale)")
                if not qmin <= fixed_zp <= qmax:
                    raise ValueError(f"zero_point {fixed_zp} is outside the code range "
                                     f"[{qmin}, {qmax}]")
            s, zp = calibrate(x3, qmin, qmax, fixed_zp, calibration, percentile, xf)
            if channels is None:
                s, zp = s.reshape(()), zp.reshape(())
        else:
            if zero_point is None:
                raise ValueError("zero_point=None asks for calibration; with an explicit scale "
                                 "pass an integer zero point")
            s = _param_tensor(scale, "scale", channels, floating=True)
            _check_scale(s)
            s = s.to(torch.float32).to(torch.float64)
            zp = _param_tensor(zero_point, "zero_point", channels, floating=False)
            if bool(((zp < qmin) | (zp > qmax)).any()):
                raise ValueError(f"zero_point must lie in the code range [{qmin}, {qmax}]")
        codes = _encode_kernel(x3, s, zp, qmin, qmax, tdtype, xf).reshape(xf.shape)
        return cls._trusted(codes, s, zp, ax, qmin, qmax)

    # ----------------------------------------------------------------------------- decode
    def decode(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Real values scale * (code - zero_point) as a new `dtype` tensor (float32 default).

        The integer difference is exact; the product is rounded once (the scale is first
        rounded to `dtype`, as torch's dequantize does).
        """
        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"decode produces float32 or float64, not {dtype}")
        per_channel = self.axis is not None
        if not per_channel and native.available() and self.codes.device.type == "cpu":
            table = _decode_table(float(self.scale), int(self.zero_point), self.codes.dtype,
                                  dtype)
            out = torch.empty(self.codes.shape, dtype=dtype)
            native.byte_lookup(self.codes.contiguous().reshape(-1), table, out.view(-1))
            return out
        c3 = channel_view(self.codes, self.axis)
        out = torch.empty(c3.shape, dtype=dtype)
        s = self.scale.to(dtype)
        _check_decode_scale(s, self.scale, dtype)
        z = self.zero_point.to(dtype)
        has_zp = bool((self.zero_point != 0).any())
        shape3 = tuple(c3.shape)
        if per_channel:
            s, z = s.reshape(1, -1, 1), z.reshape(1, -1, 1)
        for blk in blocks(shape3, 1 << 20):
            sb = s[:, blk[1]] if per_channel else s
            o = out[blk]
            if has_zp:
                torch.sub(c3[blk], z[:, blk[1]] if per_channel else z, out=o)
                o.mul_(sb)
            else:                       # an int8 x float multiply is a slow path
                o.copy_(c3[blk])
                o.mul_(sb)
        return out.reshape(self.codes.shape)

    # ------------------------------------------------------------------------- properties
    @property
    def dtype(self) -> torch.dtype:
        """Storage dtype of the codes (torch.int8 or torch.uint8)."""
        return self.codes.dtype

    @property
    def shape(self) -> torch.Size:
        """Shape of the encoded tensor."""
        return self.codes.shape

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
        s = self.channel_scales()
        sc = f"{float(s[0]):.6g}" if s.numel() == 1 else \
            f"[{float(s.min()):.6g} .. {float(s.max()):.6g}]"
        z = self.zero_point.reshape(-1)
        zs = f"{int(z[0])}" if z.numel() == 1 or bool((z == z[0]).all()) else \
            f"[{int(z.min())} .. {int(z.max())}]"
        return (f"ScaledInt8(shape={tuple(self.shape)}, dtype={str(self.dtype)[6:]}, "
                f"range=[{self.qmin}, {self.qmax}], scale={sc}, zero_point={zs}, "
                f"axis={self.axis})")


def _fmt_scale(scale: torch.Tensor) -> str:
    v = scale.reshape(-1)
    return f"{float(v[0]):.6g}" if v.numel() == 1 else \
        f"[{float(v.min()):.6g} .. {float(v.max()):.6g}]"


def _encode_kernel(x3: torch.Tensor, scale: torch.Tensor, zp: torch.Tensor, qmin: int,
                   qmax: int, out_dtype: torch.dtype, source: torch.Tensor) -> torch.Tensor:
    """Codes for a (outer, C, inner) float tensor in one cache-blocked sweep.

    float32 per tensor goes to the fused C loop where it is built (`quant.native`: the same
    division and round-half-even as `_encode_fused_float32`, bit for bit), else to torch.

    Per block: y = x / scale (correctly rounded), then y + (M + zp) rounds half to even to an
    integer inside the float add (M is the magic constant above); the integer is clamped in the
    bit domain (float order equals integer order for the positive floats involved; everything
    else, NaN and infinities included, clamps to an end) and the low byte of the bit pattern
    is the code. A per-block sum catches NaN/inf without another pass over memory.
    """
    fdt = x3.dtype
    if fdt == torch.float32 and scale.dim() == 0 and x3.numel() and native.available() \
            and x3.device.type == "cpu":
        codes = torch.empty(x3.numel(), dtype=out_dtype)
        if native.scaled_encode_f32(x3.contiguous().reshape(-1), codes, float(scale),
                                    qmin, qmax, int(zp)):
            check_finite(source, "ScaledInt8.encode")
        return codes.reshape(x3.shape)
    if fdt == torch.float32 and scale.dim() == 0 and x3.numel() and _fused_rounding_ok():
        return _encode_fused_float32(x3, float(scale), int(zp), qmin, qmax, out_dtype, source)
    magic, idt = _MAGIC[fdt]
    mbits = int(torch.tensor(magic, dtype=fdt).view(idt))
    lo_bits, hi_bits = mbits + qmin, mbits + qmax
    shape3 = tuple(x3.shape)
    codes = torch.empty(shape3, dtype=out_dtype)
    per_channel = scale.dim() == 1
    if per_channel:
        s3 = scale.to(fdt).reshape(1, -1, 1)           # float32 values: exact in either dtype
        base3 = (zp.to(fdt) + magic).reshape(1, -1, 1)
    else:
        s_val, base = float(scale), magic + int(zp)
    blist = list(blocks(shape3))
    sums = torch.empty(len(blist), dtype=fdt)
    budget = max((math.prod(block_shape(b, shape3)) for b in blist), default=0)
    scratch = torch.empty(budget, dtype=fdt)
    for k, blk in enumerate(blist):
        bs = block_shape(blk, shape3)
        y = scratch[:math.prod(bs)].view(bs)
        if per_channel:
            torch.div(x3[blk], s3[:, blk[1]], out=y)
            y.add_(base3[:, blk[1]])
        else:
            torch.div(x3[blk], s_val, out=y)
            y.add_(base)
        torch.sum(y.view(-1), dim=0, out=sums[k])
        yb = y.view(idt)
        yb.clamp_(lo_bits, hi_bits)
        codes[blk].copy_(yb)
    if not bool(torch.isfinite(sums).all()):
        check_finite(source, "ScaledInt8.encode")   # raises unless the sum merely overflowed
    return codes


def _quantize_scratch(n: int, zero_point: int, out_dtype: torch.dtype
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """(quantized tensor with scale 1 and `zero_point`, plain int8/uint8 view of its bytes)."""
    with warnings.catch_warnings():       # torch deprecates quantized tensors (we only borrow
        warnings.simplefilter("ignore")   # their fused round-and-saturate kernel)
        q = torch._empty_affine_quantized([n], scale=1.0, zero_point=zero_point,
                                          dtype=_QUANTIZED[out_dtype])
    codes = torch.empty(0, dtype=out_dtype).set_(q.untyped_storage(), 0, (n,), (1,))
    return q, codes


@functools.lru_cache(maxsize=None)
def _fused_rounding_ok() -> bool:
    """Whether torch's quantizer, fed exact float32 quotients at scale 1, rounds half to even
    and saturates exactly as the contract says (probed once, on ties, extremes and NaN-free
    values in both its vector body and its scalar tail); otherwise encode uses its own kernel."""
    ties = [k + 0.5 for k in range(-140, 140)] + [k + d for k in (-129, -128, 0, 127, 255, 256)
                                                   for d in (-2.0 ** -9, 2.0 ** -9)]
    y = torch.tensor(ties + [3e38, -3e38, 2.0 ** 24, -(2.0 ** 24), 0.0, -0.0],
                     dtype=torch.float32)
    try:
        for dt, zps in ((torch.int8, (0, -7, 100)), (torch.uint8, (0, 128, 255))):
            lo, hi = (-128, 127) if dt == torch.int8 else (0, 255)
            for zp in zps:
                for n in (y.numel(), 7):                 # vector body and a scalar-only call
                    q, codes = _quantize_scratch(n, zp, dt)
                    _round_into(q, y[:n].clone(), zp)
                    want = (torch.round(y[:n].double()) + zp).clamp(lo, hi).to(torch.int64)
                    if not torch.equal(codes.to(torch.int64), want):
                        return False
    except (RuntimeError, AttributeError, TypeError, NotImplementedError):
        return False
    return True


def _round_into(q: torch.Tensor, y: torch.Tensor, zero_point: int) -> None:
    """q <- saturate(round_half_even(y) + zero_point); may overwrite y.

    torch adds a nonzero zero point to the int32 conversion of y, which wraps around for
    |y| near 2**31, so y is first clamped to +-2**30 (far beyond any code, so harmless).
    """
    if zero_point:
        y.clamp_(-2.0 ** 30, 2.0 ** 30)
    q.copy_(y)


def _encode_fused_float32(x3: torch.Tensor, scale: float, zero_point: int, qmin: int,
                          qmax: int, out_dtype: torch.dtype, source: torch.Tensor
                          ) -> torch.Tensor:
    """Per-tensor float32 codes in two cache-resident passes per block.

    y = x / scale is correctly rounded (a true division, as the contract says); torch's fused
    quantizer then rounds y at scale 1 (multiplying by 1 is exact), adds the zero point (exact
    for every y that does not saturate) and saturates to the storage range in one pass, writing
    straight into the result's bytes. `_fused_rounding_ok` checks those semantics once. A
    narrower [qmin, qmax] is a clamp of the bytes; a per-block sum of y catches NaN / inf.
    """
    flat = x3.reshape(-1)
    total = flat.numel()
    q, codes = _quantize_scratch(total, zero_point, out_dtype)
    lo_s, hi_s = (-128, 127) if out_dtype == torch.int8 else (0, 255)
    narrow = (qmin, qmax) != (lo_s, hi_s)
    bsz = min(total, _FUSED_BLOCK)
    y = torch.empty(bsz, dtype=torch.float32)
    sums = torch.empty(-(-total // bsz), dtype=torch.float32)
    for xb, qb, cb, sb in zip(flat.split(bsz), q.split(bsz), codes.split(bsz), sums.split(1)):
        yb = y[:xb.numel()]
        torch.div(xb, scale, out=yb)
        torch.sum(yb, dim=0, out=sb[0])
        _round_into(qb, yb, zero_point)
        if narrow:
            cb.clamp_(qmin, qmax)
    if not bool(torch.isfinite(sums).all()):
        check_finite(source, "ScaledInt8.encode")   # raises unless the sum merely overflowed
    return codes.reshape(x3.shape)
