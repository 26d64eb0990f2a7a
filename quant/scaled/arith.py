"""Checked arithmetic on ScaledInt8 (real = scale * (code - zero_point)); see `quant.arith`.

add, sub   operands must share their scale (else pass `out_scale=`) and zero point (else pass
           `out_zero_point=`); the exact code sum keeps that scale, so a sum that leaves the
           code range is an overflow and meets the policy.
mul        the exact code product (q_a - z_a)(q_b - z_b) at the product scale s_a * s_b (zero
           point 0 unless `out_zero_point=`); per-channel scales multiply per channel.
matmul     exact integer accumulation (`quant.exact_matmul.int_matmul`: int32 when
           `accumulator_bound` proves it safe, blockwise int32 summed in int64 otherwise). By
           default the result *is* that accumulator, at the product scale: int32 (or int64)
           codes that cannot overflow, what ``torch.matmul`` users expect. `out_dtype=`
           ('int8', 'uint8', 'int32') narrows it under the policy.
out_scale= requantizes instead: the exact integer result times the fixed-point multiplier of
           (input scale / out_scale) from `quantize_multiplier`, rounded once half away from
           zero (`quant.fixedpoint.requantize`, the reference requantizer), as integer-only
           kernels do; the result is int8 unless `out_dtype=`, narrowed under the policy. For
           add and sub each operand is requantized to 32 fractional bits first and the sum is
           then rounded, which differs from a single rounding only when the sum lies within
           2**-31 of a half-integer. Scale ratios above 2**20 are refused (ValueError).
Results are stored like the left operand (its dtype and code range) for add and sub, and as
int8 (with the left operand's range when it is int8) for mul, whose results are signed. Under
WRAP the result's code range is the whole storage type (a narrow-range encoding may come back
holding -128).
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import torch

from .._tensors import channel_broadcast, check_same_shape
from ..accumulator import AccumulatorProof, accumulator_bound
from ..exact_matmul import contraction_size, int_matmul
from ..fixedpoint import quantize_multiplier, requantize
from ..policy import OverflowPolicy, narrow, storage_range
from .encoding import ScaledInt8
from .params import check_scale, float32_scale, format_values, param_tensor

__all__ = ["scaled_addsub", "scaled_mul", "scaled_matmul", "matmul_accumulator_proof"]

_REQUANT_GUARD = 32          # fractional bits kept when two requantized terms are summed
_MAX_RATIO = 2.0 ** 20


def _views(e: ScaledInt8) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(scale, zero point) shaped to broadcast against e.codes, and the exact code -
    zero_point (int32 for 8-bit codes, int64 for accumulators)."""
    s = channel_broadcast(e.scale, e.axis, e.codes.dim())
    z = channel_broadcast(e.zero_point, e.axis, e.codes.dim()).to(e.codes.device)
    idt = torch.int32 if e.codes.element_size() == 1 else torch.int64   # accumulators: int64
    return s, z, e.codes.to(idt) - z.to(idt)


def _exact_multipliers(numer: list[torch.Tensor], denom: torch.Tensor
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """Fixed-point (m, shift) of prod(numer) / denom, elementwise after broadcasting, exactly.

    Scales are float64 values, so each ratio is an exact rational before it is rounded to a
    31-bit multiplier.
    """
    parts = torch.broadcast_tensors(*numer, denom)
    shape = parts[0].shape
    flat = [p.reshape(-1).tolist() for p in parts]
    ms, ss = [], []
    for vals in zip(*flat):
        r = Fraction(1)
        for v in vals[:-1]:
            r *= Fraction(v)
        r /= Fraction(vals[-1])
        if r > _MAX_RATIO:
            raise ValueError(f"out_scale is {float(r):.3g} times finer than the input scale; "
                             f"every nonzero code would overflow (ratios above 2**20 are refused)")
        m, s = quantize_multiplier(r)
        ms.append(m)
        ss.append(s)
    return (torch.tensor(ms, dtype=torch.int64).reshape(shape),
            torch.tensor(ss, dtype=torch.int64).reshape(shape))


def _result_axis(a: ScaledInt8, b: ScaledInt8, op: str) -> int | None:
    axes = {e.axis for e in (a, b) if e.axis is not None}
    if len(axes) > 1:
        raise ValueError(f"{op}: operands are per-channel along different axes "
                         f"({a.axis} and {b.axis}); requantize one of them first")
    return axes.pop() if axes else None


def _out_params(out_scale: object, out_zero_point: object, axis: int | None,
                shape: torch.Size, op: str) -> tuple[torch.Tensor, torch.Tensor, int | None]:
    """Validated (scale, zero point, axis) of a requantized result.

    A per-channel `out_scale` or `out_zero_point` takes the operands' channel axis. The scale
    is rounded to float32 like every encoding scale.
    """
    def count(v: object) -> int:
        if isinstance(v, torch.Tensor):
            return v.numel()
        return int(v.size) if isinstance(v, np.ndarray) else 1

    res_axis = None
    channels = None
    if count(out_scale) != 1 or count(out_zero_point) != 1:
        if axis is None:
            raise ValueError(f"{op}: per-channel out_scale / out_zero_point need a per-channel "
                             f"operand to take the axis from")
        res_axis, channels = axis, shape[axis]
    scale = param_tensor(out_scale, "out_scale", channels, floating=True)
    check_scale(scale, f"{op}: out_scale")
    zp = param_tensor(0 if out_zero_point is None else out_zero_point, "out_zero_point",
                      channels, floating=False)
    return float32_scale(scale), zp, res_axis


def _storage(a: ScaledInt8, out_dtype: object, signed_result: bool
             ) -> tuple[torch.dtype, int, int]:
    if out_dtype is None:
        if not signed_result or a.dtype == torch.int8:
            return a.dtype, a.qmin, a.qmax
        return storage_range("int8")
    dt, lo, hi = storage_range(out_dtype, wide=True)
    if dt == a.dtype:
        return dt, a.qmin, a.qmax
    return dt, lo, hi


def _finish(wide: torch.Tensor, scale: torch.Tensor, zp: torch.Tensor, axis: int | None,
            storage: tuple[torch.dtype, int, int], policy: OverflowPolicy, op: str
            ) -> ScaledInt8:
    dtype, qmin, qmax = storage
    rmin, rmax = storage_range(dtype, wide=True)[1:] if policy is OverflowPolicy.WRAP \
        else (qmin, qmax)
    if bool(((zp < rmin) | (zp > rmax)).any()):
        raise ValueError(f"{op}: result zero point {format_values(zp)} lies outside the result "
                         f"code range [{rmin}, {rmax}]; pass an out_zero_point inside it")
    hint = "pass policy=OverflowPolicy.SATURATE or WRAP, or out_scale= to requantize"
    codes = narrow(wide, qmin, qmax, dtype, policy, op, hint)
    return ScaledInt8._trusted(codes, scale, zp, axis, rmin, rmax)


def scaled_addsub(a: ScaledInt8, b: ScaledInt8, sign: int, out_scale: object,
                  out_zero_point: object, out_dtype: object, policy: OverflowPolicy,
                  op: str) -> ScaledInt8:
    """a + sign * b, checked (module docstring); `sign` is 1 or -1."""
    check_same_shape(a.codes, b.codes, op)
    axis = _result_axis(a, b, op)
    sa, za, qa = _views(a)
    sb, zb, qb = _views(b)
    storage = _storage(a, out_dtype, signed_result=False)
    ndim = a.codes.dim()
    if out_scale is None:
        if not bool((sa == sb).all()):
            raise ValueError(f"{op}: operand scales differ ({format_values(a.scale)} vs "
                             f"{format_values(b.scale)}); pass out_scale= to requantize both to "
                             f"a common scale")
        src = a if a.axis is not None or b.axis is None else b
        if out_zero_point is None:
            if not bool((za == zb).all()):
                raise ValueError(f"{op}: operand zero points differ "
                                 f"({format_values(a.zero_point)} vs "
                                 f"{format_values(b.zero_point)}); pass out_zero_point=")
            zp = src.zero_point
        else:
            _, zp, _ = _out_params(src.scale, out_zero_point, src.axis, a.codes.shape, op)
        wide = qa.to(torch.int64) + sign * qb + channel_broadcast(zp, src.axis, ndim)
        return _finish(wide, src.scale, zp, src.axis, storage, policy, op)
    so, zo, res_axis = _out_params(out_scale, out_zero_point, axis, a.codes.shape, op)
    so_v = channel_broadcast(so, res_axis, ndim)
    ma, sha = _exact_multipliers([sa], so_v)
    mb, shb = _exact_multipliers([sb], so_v)
    g = _REQUANT_GUARD
    # Each term keeps 32 fractional bits; the sum is then rounded once more to an integer.
    total = requantize(qa, ma, sha - g) + sign * requantize(qb, mb, shb - g)
    wide = requantize(total, 1 << 30, 30 + g) + channel_broadcast(zo, res_axis, ndim)
    return _finish(wide, so, zo, res_axis, storage, policy, op)


def scaled_mul(a: ScaledInt8, b: ScaledInt8, out_scale: object, out_zero_point: object,
               out_dtype: object, policy: OverflowPolicy, op: str) -> ScaledInt8:
    """a * b elementwise, checked (module docstring)."""
    check_same_shape(a.codes, b.codes, op)
    axis = _result_axis(a, b, op)
    sa, _, qa = _views(a)
    sb, _, qb = _views(b)
    storage = _storage(a, out_dtype, signed_result=True)
    return _product_result(qa.to(torch.int64) * qb, sa, sb, axis, storage, out_scale,
                           out_zero_point, policy, op)


def _product_result(wide: torch.Tensor, sa: torch.Tensor, sb: torch.Tensor, axis: int | None,
                    storage: tuple[torch.dtype, int, int], out_scale: object,
                    out_zero_point: object, policy: OverflowPolicy, op: str) -> ScaledInt8:
    """Finish a product-type result (exact `wide` at scale sa * sb, broadcast views)."""
    ndim = wide.dim()
    if out_scale is None:
        prod = (sa * sb).reshape(-1) if axis is not None else (sa * sb).reshape(())
        if out_zero_point is None:
            zp = torch.zeros_like(prod, dtype=torch.int64)
        else:           # the product scale is exact and needs no float32 check: only the zp
            zp = param_tensor(out_zero_point, "out_zero_point",
                              None if axis is None else prod.numel(), floating=False)
        return _finish(wide + channel_broadcast(zp, axis, ndim).to(wide.device), prod, zp, axis,
                       storage, policy, op)
    so, zo, res_axis = _out_params(out_scale, out_zero_point, axis, wide.shape, op)
    m, sh = _exact_multipliers([sa, sb], channel_broadcast(so, res_axis, ndim))
    out = requantize(wide, m, sh) + channel_broadcast(zo, res_axis, ndim)
    return _finish(out, so, zo, res_axis, storage, policy, op)


def _shifted_range(e: ScaledInt8) -> tuple[int, int]:
    """Range of code - zero_point over every channel (the code range alone with no channels)."""
    if e.zero_point.numel() == 0:
        return e.qmin, e.qmax
    return e.qmin - int(e.zero_point.max()), e.qmax - int(e.zero_point.min())


def _matmul_axis(a: ScaledInt8, b: ScaledInt8, op: str) -> int | None:
    """The result's channel axis (per-row a, per-column b), after checking the pair."""
    contraction_size(a.codes.shape, b.codes.shape, op)
    if a.axis is not None and a.axis == a.codes.dim() - 1:
        raise ValueError(f"{op}: a is per-channel along its contraction axis; the sum would mix "
                         f"scales")
    if b.axis is not None and b.axis == 0:
        raise ValueError(f"{op}: b is per-channel along its contraction axis; the sum would mix "
                         f"scales")
    if a.axis is not None and a.axis != a.codes.dim() - 2:
        raise ValueError(f"{op}: a may be per-tensor or per-row (axis {a.codes.dim() - 2}), "
                         f"not per-channel along axis {a.axis}")
    if a.axis is not None and b.axis is not None:
        raise ValueError(f"{op}: both operands are per-channel, so the product scale varies "
                         f"along two axes; make one of them per-tensor")
    out_ndim = a.codes.dim() + b.codes.dim() - 2
    if a.axis is not None:             # per-row scales become the result's axis out_ndim - 1
        return out_ndim - 1 if b.codes.dim() == 1 else out_ndim - 2
    return out_ndim - 1 if b.axis is not None else None


def scaled_matmul(a: ScaledInt8, b: ScaledInt8, out_scale: object, out_zero_point: object,
                  out_dtype: object, policy: OverflowPolicy, op: str) -> ScaledInt8:
    """a @ b, checked (module docstring): the exact accumulator at the product scale unless
    `out_scale` or `out_dtype` asks for narrower codes."""
    axis = _matmul_axis(a, b, op)
    acc, _ = int_matmul(_views(a)[2], _views(b)[2], _shifted_range(a), _shifted_range(b))
    s_a = a.scale.reshape([-1, 1] if b.codes.dim() == 2 else [-1]) if a.axis is not None \
        else a.scale
    if out_dtype is None and out_scale is None:
        _, lo, hi = storage_range(acc.dtype if out_zero_point is None else torch.int64,
                                  wide=True)
        storage = (torch.int64 if out_zero_point is not None else acc.dtype, lo, hi)
    elif out_dtype is None:
        storage = _storage(a, None, signed_result=True)
    else:
        storage = _storage(a, out_dtype, signed_result=True)
    return _product_result(acc.to(torch.int64), s_a, b.scale, axis, storage, out_scale,
                           out_zero_point, policy, op)


def matmul_accumulator_proof(a: ScaledInt8, b: ScaledInt8, acc_bits: int = 32
                             ) -> AccumulatorProof:
    """Static check, before running, that `quant.matmul(a, b)` accumulates without overflow.

    Parameters
    ----------
    a, b : ScaledInt8
        The operands (shapes and per-channel axes as `quant.matmul` takes them).
    acc_bits : int
        The accumulator width to prove.

    Returns
    -------
    AccumulatorProof
        From the declared code ranges and zero points only (not the data): the operands
        enter the products as code - zero_point, in [qmin - max zp, qmax - min zp].
    """
    if not isinstance(a, ScaledInt8) or not isinstance(b, ScaledInt8):
        raise TypeError("matmul_accumulator_proof takes two ScaledInt8 operands")
    _matmul_axis(a, b, "matmul_accumulator_proof")
    return accumulator_bound(_shifted_range(a), _shifted_range(b), a.codes.shape[-1], acc_bits)
