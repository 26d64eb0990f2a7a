"""Checked arithmetic on encoded values: add, sub, mul, div, dot, matmul.

Every operation computes its integer result exactly in a wide type and then narrows it under
an explicit `OverflowPolicy` (RAISE by default; see quant.policy). Nothing wraps silently.

ScaledInt8 (real = scale * (code - zero_point))
  add, sub   operands must share their scale (else pass `out_scale=`) and zero point (else
             pass `out_zero_point=`); the exact code sum keeps that scale, so a sum that leaves
             the code range is an overflow and meets the policy.
  mul        the exact code product (q_a - z_a)(q_b - z_b) at the product scale s_a * s_b
             (zero point 0 unless `out_zero_point=`); per-channel scales multiply per channel.
  matmul/dot exact integer accumulation (int32 when `accumulator_bound` proves it safe,
             blockwise int32 summed in int64 otherwise) at the product scale.
  out_scale= requantizes instead: the exact integer result times the fixed-point multiplier
             of (input scale / out_scale) from `quantize_multiplier`, rounded once half away
             from zero (`quant.fixedpoint.requantize`), as integer-only kernels do. For add and
             sub each operand is requantized to 32 fractional bits first and the sum is then
             rounded, which differs from a single rounding only when the sum lies within
             2**-31 of a half-integer. Scale ratios above 2**20 are refused (ValueError).
  div        unsupported (TypeError): a quotient of codes is not a code at any fixed scale.
  Results are stored like the left operand (its dtype and code range) for add and sub, and as
  int8 (with the left operand's range when it is int8) for mul and matmul, whose results are
  signed; `out_dtype=` overrides. Under WRAP the result's code range is the whole storage
  type (a narrow-range encoding may come back holding -128).

LogInt8 (see quant.logdomain)
  mul, div   exact code addition / subtraction while in range. Default result offsets: for
             mul top-aligned (max_a * max_b gets code 127, so a product never overflows); for
             div centred (max_a / max_b gets code 64, so quotients within 2**(+-63/2**F) of it
             are representable and dividing by much smaller values overflows). `out_offset=`
             chooses another; overflow meets the policy.
  add, sub   Gaussian-logarithm table (`gaussian_log_table`): each result is the correctly
             rounded log-domain sum, relative error <= 2**(2**-(F+1)) - 1 while in range;
             operands must share their offset (or pass `out_offset=`).
  matmul/dot exact products, then a pairwise (tree) Gaussian-log sum over the contraction axis:
             for terms of one sign the relative error is at most (1 + eps)**ceil(log2 K) - 1
             with eps the bound above; cancellation has no relative bound. Default offset:
             top-aligned for K terms.
  Results below the smallest magnitude flush to zero (never an error). WRAP has no meaning for
  log codes and is refused.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Callable

import numpy as np
import torch

from .accumulator import AccumulatorProof, accumulator_bound
from .fixedpoint import quantize_multiplier, requantize
from .exact_matmul import contraction_size, int_matmul
from .logdomain.encoding import CODE_MAX, LogInt8, check_offset, gaussian_log_table, offset_limits
from .policy import OverflowPolicy, QuantOverflowError, as_policy, narrow
from .scaled.encoding import ScaledInt8, _check_scale, _param_tensor, storage_range
from .scaled.encoding import _fmt_scale as _fmt

__all__ = ["add", "sub", "mul", "div", "dot", "matmul", "matmul_accumulator_proof"]

Encoded = ScaledInt8 | LogInt8
_REQUANT_GUARD = 32          # fractional bits kept when two requantized terms are summed
_MAX_RATIO = 2.0 ** 20


# ------------------------------------------------------------------------------ helpers
def _kind(a: object, b: object, op: str) -> type:
    for v in (a, b):
        if not isinstance(v, (ScaledInt8, LogInt8)):
            raise TypeError(f"{op} takes encoded values (ScaledInt8 or LogInt8), got "
                            f"{type(v).__name__}; encode it first")
    if type(a) is not type(b):
        raise TypeError(f"{op} cannot mix {type(a).__name__} and {type(b).__name__}")
    return type(a)


def _same_shape(a: Encoded, b: Encoded, op: str) -> None:
    if a.codes.shape != b.codes.shape:
        raise ValueError(f"{op}: operand shapes {tuple(a.codes.shape)} and "
                         f"{tuple(b.codes.shape)} differ")


def _param_view(e: ScaledInt8) -> tuple[torch.Tensor, torch.Tensor]:
    """Scale and zero point shaped to broadcast against e.codes."""
    if e.axis is None:
        return e.scale, e.zero_point
    shape = [1] * e.codes.dim()
    shape[e.axis] = -1
    return e.scale.reshape(shape), e.zero_point.reshape(shape)


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
    scale = _param_tensor(out_scale, "out_scale", channels, floating=True)
    try:
        _check_scale(scale)
    except ValueError as err:
        raise ValueError(f"{op}: out_{err}") from None
    scale = scale.to(torch.float32).to(torch.float64)
    zp = _param_tensor(0 if out_zero_point is None else out_zero_point, "out_zero_point",
                       channels, floating=False)
    return scale, zp, res_axis


def _storage(a: ScaledInt8, out_dtype: object, signed_result: bool
             ) -> tuple[torch.dtype, int, int]:
    if out_dtype is None:
        if not signed_result or a.dtype == torch.int8:
            return a.dtype, a.qmin, a.qmax
        return storage_range("int8")
    dt, lo, hi = storage_range(out_dtype)
    if dt == a.dtype:
        return dt, a.qmin, a.qmax
    return dt, lo, hi


def _finish_scaled(wide: torch.Tensor, scale: torch.Tensor, zp: torch.Tensor,
                   axis: int | None, storage: tuple[torch.dtype, int, int],
                   policy: OverflowPolicy, op: str) -> ScaledInt8:
    dtype, qmin, qmax = storage
    rmin, rmax = storage_range(dtype)[1:] if policy is OverflowPolicy.WRAP else (qmin, qmax)
    if bool(((zp < rmin) | (zp > rmax)).any()):
        raise ValueError(f"{op}: result zero point {_fmt(zp)} lies outside the result code "
                         f"range [{rmin}, {rmax}]; pass an out_zero_point inside it")
    hint = ("pass policy=OverflowPolicy.SATURATE or WRAP, or out_scale= to requantize")
    codes = narrow(wide, qmin, qmax, dtype, policy, op, hint)
    return ScaledInt8._trusted(codes, scale, zp, axis, rmin, rmax)


def _zp_view(zp: torch.Tensor, axis: int | None, ndim: int) -> torch.Tensor:
    if axis is None:
        return zp
    shape = [1] * ndim
    shape[axis] = -1
    return zp.reshape(shape)


# -------------------------------------------------------------------- scaled elementwise
def _scaled_addsub(a: ScaledInt8, b: ScaledInt8, sign: int, out_scale: object,
                   out_zero_point: object, out_dtype: object, policy: OverflowPolicy,
                   op: str) -> ScaledInt8:
    _same_shape(a, b, op)
    axis = _result_axis(a, b, op)
    sa, za = _param_view(a)
    sb, zb = _param_view(b)
    qa = a.codes.to(torch.int32) - za.to(torch.int32)
    qb = b.codes.to(torch.int32) - zb.to(torch.int32)
    storage = _storage(a, out_dtype, signed_result=False)
    ndim = a.codes.dim()
    if out_scale is None:
        if not bool((sa == sb).all()):
            raise ValueError(f"{op}: operand scales differ ({_fmt(a.scale)} vs "
                             f"{_fmt(b.scale)}); pass out_scale= to requantize both to a "
                             f"common scale")
        src = a if a.axis is not None or b.axis is None else b
        if out_zero_point is None:
            if not bool((za == zb).all()):
                raise ValueError(f"{op}: operand zero points differ ({_fmt(a.zero_point)} vs "
                                 f"{_fmt(b.zero_point)}); pass out_zero_point=")
            zp = src.zero_point
        else:
            _, zp, _ = _out_params(src.scale, out_zero_point, src.axis, a.codes.shape, op)
        wide = qa + sign * qb + _zp_view(zp, src.axis, ndim).to(torch.int32)
        return _finish_scaled(wide, src.scale, zp, src.axis, storage, policy, op)
    so, zo, res_axis = _out_params(out_scale, out_zero_point, axis, a.codes.shape, op)
    so_v = so if res_axis is None else so.reshape([-1 if d == res_axis else 1
                                                   for d in range(ndim)])
    ma, sha = _exact_multipliers([sa], so_v)
    mb, shb = _exact_multipliers([sb], so_v)
    g = _REQUANT_GUARD
    # Each term keeps 32 fractional bits; the sum is then rounded once more to an integer.
    ta = requantize(qa, ma, sha - g)
    tb = requantize(qb, mb, shb - g)
    total = ta + sign * tb
    wide = requantize(total, 1 << 30, 30 + g) + _zp_view(zo, res_axis, ndim)
    return _finish_scaled(wide, so, zo, res_axis, storage, policy, op)


def _scaled_mul(a: ScaledInt8, b: ScaledInt8, out_scale: object, out_zero_point: object,
                out_dtype: object, policy: OverflowPolicy, op: str) -> ScaledInt8:
    _same_shape(a, b, op)
    axis = _result_axis(a, b, op)
    sa, za = _param_view(a)
    sb, zb = _param_view(b)
    wide = (a.codes.to(torch.int32) - za.to(torch.int32)) * \
        (b.codes.to(torch.int32) - zb.to(torch.int32))
    return _requant_or_keep(wide, sa, sb, axis, a, out_scale, out_zero_point, out_dtype,
                            policy, op)


def _requant_or_keep(wide: torch.Tensor, sa: torch.Tensor, sb: torch.Tensor,
                     axis: int | None, a: ScaledInt8, out_scale: object,
                     out_zero_point: object, out_dtype: object, policy: OverflowPolicy,
                     op: str) -> ScaledInt8:
    """Finish a product-type result (exact `wide` at scale sa * sb, broadcast views)."""
    storage = _storage(a, out_dtype, signed_result=True)
    ndim = wide.dim()
    if out_scale is None:
        prod = (sa * sb).reshape(-1) if axis is not None else (sa * sb).reshape(())
        if out_zero_point is None:
            zp = torch.zeros_like(prod, dtype=torch.int64)
        else:           # the product scale is exact and needs no float32 check: only the zp
            zp = _param_tensor(out_zero_point, "out_zero_point",
                               None if axis is None else prod.numel(), floating=False)
        return _finish_scaled(wide + _zp_view(zp, axis, ndim), prod, zp, axis, storage,
                              policy, op)
    so, zo, res_axis = _out_params(out_scale, out_zero_point, axis, wide.shape, op)
    so_v = so if res_axis is None else so.reshape([-1 if d == res_axis else 1
                                                   for d in range(ndim)])
    m, sh = _exact_multipliers([sa, sb], so_v)
    out = requantize(wide, m, sh) + _zp_view(zo, res_axis, ndim)
    return _finish_scaled(out, so, zo, res_axis, storage, policy, op)


# ------------------------------------------------------------------------ scaled matmul
def _matmul_operands(a: ScaledInt8, b: ScaledInt8, op: str
                     ) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int], tuple[int, int],
                                torch.Tensor, torch.Tensor, int | None]:
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
    sa, za = _param_view(a)
    sb, zb = _param_view(b)
    qa = a.codes.to(torch.int32) - za.to(torch.int32)
    qb = b.codes.to(torch.int32) - zb.to(torch.int32)
    ra, rb = _shifted_range(a), _shifted_range(b)
    out_ndim = a.codes.dim() + b.codes.dim() - 2
    if a.axis is not None:             # per-row scales become the result's axis out_ndim - 1
        axis = out_ndim - 1 if b.codes.dim() == 1 else out_ndim - 2
        s_a = a.scale.reshape([-1, 1] if b.codes.dim() == 2 else [-1])
        s_b = b.scale
    elif b.axis is not None:           # per-column scales: the result's last axis
        axis = out_ndim - 1
        s_a, s_b = a.scale, b.scale
    else:
        axis = None
        s_a, s_b = a.scale, b.scale
    return qa, qb, ra, rb, s_a, s_b, axis


def _scaled_matmul(a: ScaledInt8, b: ScaledInt8, out_scale: object, out_zero_point: object,
                   out_dtype: object, policy: OverflowPolicy, op: str) -> ScaledInt8:
    qa, qb, ra, rb, s_a, s_b, axis = _matmul_operands(a, b, op)
    acc, _ = int_matmul(qa, qb, ra, rb)
    return _requant_or_keep(acc.to(torch.int64), s_a, s_b, axis, a, out_scale,
                            out_zero_point, out_dtype, policy, op)


def matmul_accumulator_proof(a: ScaledInt8, b: ScaledInt8, acc_bits: int = 32
                             ) -> AccumulatorProof:
    """Static check, before running, that `matmul(a, b)` accumulates without overflow.

    Uses only the declared code ranges and zero points (not the data): the operands enter the
    products as code - zero_point, so their ranges are [qmin - max zp, qmax - min zp].
    """
    if not isinstance(a, ScaledInt8) or not isinstance(b, ScaledInt8):
        raise TypeError("matmul_accumulator_proof takes two ScaledInt8 operands")
    _, _, ra, rb, _, _, _ = _matmul_operands(a, b, "matmul_accumulator_proof")
    return accumulator_bound(ra, rb, a.codes.shape[-1], acc_bits)


# ---------------------------------------------------------------------------- log domain
def _shifted_range(e: ScaledInt8) -> tuple[int, int]:
    """Range of code - zero_point over every channel (the code range alone with no channels)."""
    if e.zero_point.numel() == 0:
        return e.qmin, e.qmax
    return e.qmin - int(e.zero_point.max()), e.qmax - int(e.zero_point.min())


def _log_parts(e: LogInt8) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(sign in {-1, 0, 1}, absolute log code |c| + offset, zero mask) as int64 tensors."""
    c = e.codes.to(torch.int64)
    return torch.sign(c), c.abs() + e.offset, c == 0


def _check_log_pair(a: LogInt8, b: LogInt8, policy: OverflowPolicy, op: str) -> None:
    if a.frac_bits != b.frac_bits:
        raise ValueError(f"{op}: operands have different frac_bits ({a.frac_bits} and "
                         f"{b.frac_bits}); their codes lie on different grids")
    if policy is OverflowPolicy.WRAP:
        raise ValueError(f"{op}: OverflowPolicy.WRAP is defined for two's complement (scaled) "
                         f"codes only; log-domain codes have no wraparound meaning")


def _finish_log(sign: torch.Tensor, big_l: torch.Tensor, zero: torch.Tensor, out_offset: int,
                frac_bits: int, policy: OverflowPolicy, op: str) -> LogInt8:
    m = big_l - out_offset
    zero = zero | (m <= 0)                                 # underflow flushes to zero
    over = (~zero) & (m > CODE_MAX)
    if bool(over.any()):
        if policy is OverflowPolicy.RAISE:
            flat = over.reshape(-1)
            first = int(flat.nonzero()[0, 0])
            idx = tuple(int(i) for i in torch.unravel_index(torch.tensor(first), over.shape)) \
                if over.dim() else ()
            value = int((sign * m).reshape(-1)[first])
            raise QuantOverflowError(op, idx, value, -CODE_MAX, CODE_MAX, int(flat.sum()),
                                     over.numel(), "the magnitude code exceeds 127; pass "
                                     "policy=OverflowPolicy.SATURATE or a larger out_offset=")
        m = m.clamp(max=CODE_MAX)
    codes = torch.where(zero, 0, sign * m).to(torch.int8)
    return LogInt8._trusted(codes, out_offset, frac_bits)


def _gauss_add(sa: torch.Tensor, la: torch.Tensor, za: torch.Tensor, sb: torch.Tensor,
               lb: torch.Tensor, zb: torch.Tensor, frac_bits: int
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Log-domain sum of (sign, absolute code, zero) triples; unbounded integer codes."""
    table = gaussian_log_table(frac_bits)
    a_big = la >= lb
    hi = torch.where(a_big, la, lb)
    d = (la - lb).abs()
    same = sa == sb
    delta = torch.where(same, table.lookup_plus(d), table.lookup_minus(d))
    big_l = hi + delta
    sign = torch.where(a_big, sa, sb)
    cancel = (~same) & (d == 0)
    # A zero operand contributes nothing: the result is the other operand, exactly.
    big_l = torch.where(za, lb, torch.where(zb, la, big_l))
    sign = torch.where(za, sb, torch.where(zb, sa, sign))
    zero = (za & zb) | ((~za) & (~zb) & cancel)
    return sign, big_l, zero


def _log_addsub(a: LogInt8, b: LogInt8, negate_b: bool, out_offset: object,
                policy: OverflowPolicy, op: str) -> LogInt8:
    _same_shape(a, b, op)
    _check_log_pair(a, b, policy, op)
    if out_offset is None:
        if a.offset != b.offset:
            raise ValueError(f"{op}: operand offsets differ ({a.offset} and {b.offset}); pass "
                             f"out_offset=")
        out_offset = a.offset
    out_offset = check_offset(out_offset, a.frac_bits, f"{op}: out_offset")
    sa, la, za = _log_parts(a)
    sb, lb, zb = _log_parts(b)
    if negate_b:
        sb = -sb
    sign, big_l, zero = _gauss_add(sa, la, za, sb, lb, zb, a.frac_bits)
    return _finish_log(sign, big_l, zero, out_offset, a.frac_bits, policy, op)


def _log_muldiv(a: LogInt8, b: LogInt8, divide: bool, out_offset: object,
                policy: OverflowPolicy, op: str) -> LogInt8:
    _same_shape(a, b, op)
    _check_log_pair(a, b, policy, op)
    sa, la, za = _log_parts(a)
    sb, lb, zb = _log_parts(b)
    if divide:
        if bool(zb.any()):
            first = int(zb.reshape(-1).nonzero()[0, 0])
            idx = tuple(int(i) for i in torch.unravel_index(torch.tensor(first), zb.shape)) \
                if zb.dim() else ()
            raise ZeroDivisionError(f"{op}: division by zero (divisor code 0) at index {idx}")
        default = a.offset - b.offset - 64                 # max_a / max_b gets code 64
        big_l, zero = la - lb, za
    else:
        default = a.offset + b.offset + CODE_MAX           # max_a * max_b gets code 127
        big_l, zero = la + lb, za | zb
    if out_offset is None:
        lo, hi = offset_limits(a.frac_bits)
        o = max(lo, min(hi, default))
    else:
        o = check_offset(out_offset, a.frac_bits, f"{op}: out_offset")
    return _finish_log(sa * sb, big_l, zero, o, a.frac_bits, policy, op)


def _log_matmul(a: LogInt8, b: LogInt8, out_offset: object, policy: OverflowPolicy,
                op: str) -> LogInt8:
    _check_log_pair(a, b, policy, op)
    k = contraction_size(a.codes.shape, b.codes.shape, op)
    f = a.frac_bits
    sa, la, za = _log_parts(a)
    sb, lb, zb = _log_parts(b)
    # Products as (..., M, K, N) triples: exact code additions.
    n_cols = b.codes.shape[1] if b.codes.dim() == 2 else 1

    def b_col(t: torch.Tensor) -> torch.Tensor:     # (K, N); reshape(k, -1) fails for K = 0
        return t.reshape(k, n_cols)

    sign = sa.unsqueeze(-1) * b_col(sb)
    big_l = la.unsqueeze(-1) + b_col(lb)
    zero = za.unsqueeze(-1) | b_col(zb)
    while sign.shape[-2] > 1:                          # pairwise Gaussian-log reduction
        n = sign.shape[-2]
        h = n // 2
        s2, l2, z2 = _gauss_add(sign[..., :h, :], big_l[..., :h, :], zero[..., :h, :],
                                sign[..., h:2 * h, :], big_l[..., h:2 * h, :],
                                zero[..., h:2 * h, :], f)
        if n % 2:
            s2 = torch.cat([s2, sign[..., 2 * h:, :]], dim=-2)
            l2 = torch.cat([l2, big_l[..., 2 * h:, :]], dim=-2)
            z2 = torch.cat([z2, zero[..., 2 * h:, :]], dim=-2)
        sign, big_l, zero = s2, l2, z2
    if k == 0:
        out_shape = a.codes.shape[:-1] + b.codes.shape[1:]
        sign = torch.zeros(out_shape, dtype=torch.int64)
        big_l = torch.zeros(out_shape, dtype=torch.int64)
        zero = torch.ones(out_shape, dtype=torch.bool)
    else:
        sign, big_l, zero = sign[..., 0, :], big_l[..., 0, :], zero[..., 0, :]
        if b.codes.dim() == 1:
            sign, big_l, zero = sign[..., 0], big_l[..., 0], zero[..., 0]
    if out_offset is None:
        grow = math.ceil((1 << f) * math.log2(k)) if k > 1 else 0
        lo, hi = offset_limits(f)
        o = max(lo, min(hi, a.offset + b.offset + CODE_MAX + grow))
    else:
        o = check_offset(out_offset, f, f"{op}: out_offset")
    return _finish_log(sign, big_l, zero, o, f, policy, op)


# ------------------------------------------------------------------------------ public
def add(a: Encoded, b: Encoded, *, policy: OverflowPolicy | str = OverflowPolicy.RAISE,
        out_scale: object = None, out_zero_point: object = None, out_dtype: object = None,
        out_offset: int | None = None) -> Encoded:
    """a + b, checked (see the module docstring for the rules of each encoding).

    ScaledInt8: `out_scale`, `out_zero_point`, `out_dtype` apply; LogInt8: `out_offset`.
    Overflow under RAISE raises QuantOverflowError (an OverflowError).
    """
    return _addsub(a, b, False, policy, out_scale, out_zero_point, out_dtype, out_offset,
                   "quant.add")


def sub(a: Encoded, b: Encoded, *, policy: OverflowPolicy | str = OverflowPolicy.RAISE,
        out_scale: object = None, out_zero_point: object = None, out_dtype: object = None,
        out_offset: int | None = None) -> Encoded:
    """a - b, checked (the rules of `add`)."""
    return _addsub(a, b, True, policy, out_scale, out_zero_point, out_dtype, out_offset,
                   "quant.sub")


def _addsub(a: Encoded, b: Encoded, negate: bool, policy: object, out_scale: object,
            out_zero_point: object, out_dtype: object, out_offset: object, op: str) -> Encoded:
    return _dispatch(
        a, b, op, policy, out_scale, out_zero_point, out_dtype, out_offset,
        lambda a, b, sc, zp, dt, pol, op: _scaled_addsub(a, b, -1 if negate else 1, sc, zp, dt,
                                                         pol, op),
        lambda a, b, off, pol, op: _log_addsub(a, b, negate, off, pol, op))


def _dispatch(a: Encoded, b: Encoded, op: str, policy: object, out_scale: object,
              out_zero_point: object, out_dtype: object, out_offset: object,
              scaled: Callable[..., Encoded], log: Callable[..., Encoded]) -> Encoded:
    """Run ``scaled(a, b, out_scale, out_zero_point, out_dtype, policy, op)`` for ScaledInt8
    operands or ``log(a, b, out_offset, policy, op)`` for LogInt8 ones, refusing the other
    encoding's output arguments."""
    kind = _kind(a, b, op)
    pol = as_policy(policy)
    if kind is ScaledInt8:
        if out_offset is not None:
            raise TypeError(f"{op}: out_offset applies to LogInt8; use out_scale= for ScaledInt8")
        return scaled(a, b, out_scale, out_zero_point, out_dtype, pol, op)
    _no_scaled_args(out_scale, out_zero_point, out_dtype, op)
    return log(a, b, out_offset, pol, op)


def _no_scaled_args(out_scale: object, out_zero_point: object, out_dtype: object,
                    op: str) -> None:
    if out_scale is not None or out_zero_point is not None or out_dtype is not None:
        raise TypeError(f"{op}: out_scale / out_zero_point / out_dtype apply to ScaledInt8; "
                        f"use out_offset= for LogInt8")


def mul(a: Encoded, b: Encoded, *, policy: OverflowPolicy | str = OverflowPolicy.RAISE,
        out_scale: object = None, out_zero_point: object = None, out_dtype: object = None,
        out_offset: int | None = None) -> Encoded:
    """a * b elementwise, checked: exact codes at the product scale (ScaledInt8) or exact code
    addition (LogInt8), unless `out_scale` / `out_offset` asks for another result scale."""
    return _dispatch(a, b, "quant.mul", policy, out_scale, out_zero_point, out_dtype, out_offset,
                     _scaled_mul,
                     lambda a, b, off, pol, op: _log_muldiv(a, b, False, off, pol, op))


def div(a: Encoded, b: Encoded, *, policy: OverflowPolicy | str = OverflowPolicy.RAISE,
        out_offset: int | None = None) -> LogInt8:
    """a / b elementwise for LogInt8 (exact code subtraction); division by a zero code raises
    ZeroDivisionError. ScaledInt8 division is unsupported (TypeError)."""
    op = "quant.div"
    kind = _kind(a, b, op)
    if kind is ScaledInt8:
        raise TypeError(f"{op}: ScaledInt8 division is not supported: a quotient of codes is not "
                        f"a code at any fixed scale; decode and re-encode, or use LogInt8, "
                        f"where division is exact")
    return _log_muldiv(a, b, True, out_offset, as_policy(policy), op)


def matmul(a: Encoded, b: Encoded, *, policy: OverflowPolicy | str = OverflowPolicy.RAISE,
           out_scale: object = None, out_zero_point: object = None, out_dtype: object = None,
           out_offset: int | None = None) -> Encoded:
    """a @ b with a (..., M, K) or (K,) and b (K, N) or (K,), checked.

    ScaledInt8: exact integer accumulation on torch's int32 kernels behind a static proof
    (`matmul_accumulator_proof`), result at the product scale or requantized to `out_scale`;
    a may be per-row, b per-column, not both. LogInt8: exact products, pairwise Gaussian-log
    sum (see the module docstring for its error bound).
    """
    return _dispatch(a, b, "quant.matmul", policy, out_scale, out_zero_point, out_dtype,
                     out_offset, _scaled_matmul, _log_matmul)


def dot(a: Encoded, b: Encoded, *, policy: OverflowPolicy | str = OverflowPolicy.RAISE,
        out_scale: object = None, out_zero_point: object = None, out_dtype: object = None,
        out_offset: int | None = None) -> Encoded:
    """Inner product of two 1-d encoded vectors (a 0-d encoded result); rules of `matmul`."""
    for v in (a, b):
        if isinstance(v, (ScaledInt8, LogInt8)) and v.codes.dim() != 1:
            raise ValueError(f"quant.dot takes 1-d operands, got shape {tuple(v.codes.shape)}")
    return matmul(a, b, policy=policy, out_scale=out_scale, out_zero_point=out_zero_point,
                  out_dtype=out_dtype, out_offset=out_offset)
