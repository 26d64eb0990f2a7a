"""Checked arithmetic on LogInt8 (sign and fixed-point log2 magnitude); see `quant.arith`.

mul, div   exact code addition / subtraction while in range. Default result offsets: for mul
           top-aligned (max_a * max_b gets code 127, so a product never overflows); for div
           centred (max_a / max_b gets code 64, so quotients within 2**(+-63/2**F) of it are
           representable and dividing by much smaller values overflows). `out_offset=` chooses
           another; overflow meets the policy.
add, sub   Gaussian-logarithm table (`gaussian_log_table`): each result is the correctly
           rounded log-domain sum, relative error <= 2**(2**-(F+1)) - 1 while in range;
           operands must share their offset (or pass `out_offset=`).
matmul     exact products, then a pairwise (tree) Gaussian-log sum over the contraction axis:
           for terms of one sign the relative error is at most (1 + eps)**ceil(log2 K) - 1 with
           eps the bound above; cancellation has no relative bound. Default offset: top-aligned
           for K terms.
Results below the smallest magnitude flush to zero (never an error). WRAP has no meaning for
log codes and is refused.
"""

from __future__ import annotations

import math

import torch

from .._tensors import check_same_shape, first_index
from ..exact_matmul import contraction_size
from ..policy import OverflowPolicy, overflow_error
from .encoding import LogInt8
from .gaussian import gaussian_log_table
from .grid import CODE_MAX, check_offset, offset_limits

__all__ = ["log_addsub", "log_muldiv", "log_matmul"]


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
            raise overflow_error(op, over, sign * m, -CODE_MAX, CODE_MAX,
                                 "the magnitude code exceeds 127; pass "
                                 "policy=OverflowPolicy.SATURATE or a larger out_offset=",
                                 what="exact code")
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


def log_addsub(a: LogInt8, b: LogInt8, negate_b: bool, out_offset: object,
               policy: OverflowPolicy, op: str) -> LogInt8:
    """a + b (a - b when `negate_b`) through the Gaussian-log table (module docstring)."""
    check_same_shape(a.codes, b.codes, op)
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


def log_muldiv(a: LogInt8, b: LogInt8, divide: bool, out_offset: object,
               policy: OverflowPolicy, op: str) -> LogInt8:
    """a * b (a / b when `divide`): exact code addition / subtraction (module docstring)."""
    check_same_shape(a.codes, b.codes, op)
    _check_log_pair(a, b, policy, op)
    sa, la, za = _log_parts(a)
    sb, lb, zb = _log_parts(b)
    if divide:
        if bool(zb.any()):
            raise ZeroDivisionError(f"{op}: division by zero (divisor code 0) at index "
                                    f"{first_index(zb)}")
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


def _tree_sum(sign: torch.Tensor, big_l: torch.Tensor, zero: torch.Tensor, frac_bits: int
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pairwise (tree) Gaussian-log sum of (..., K, N) triples over the K axis, kept as
    (..., 1, N) (K >= 1)."""
    while sign.shape[-2] > 1:
        n = sign.shape[-2]
        h = n // 2
        s2, l2, z2 = _gauss_add(sign[..., :h, :], big_l[..., :h, :], zero[..., :h, :],
                                sign[..., h:2 * h, :], big_l[..., h:2 * h, :],
                                zero[..., h:2 * h, :], frac_bits)
        if n % 2:
            s2 = torch.cat([s2, sign[..., 2 * h:, :]], dim=-2)
            l2 = torch.cat([l2, big_l[..., 2 * h:, :]], dim=-2)
            z2 = torch.cat([z2, zero[..., 2 * h:, :]], dim=-2)
        sign, big_l, zero = s2, l2, z2
    return sign, big_l, zero


def log_matmul(a: LogInt8, b: LogInt8, out_offset: object, policy: OverflowPolicy,
               op: str) -> LogInt8:
    """a @ b: exact products, then a pairwise Gaussian-log sum (module docstring)."""
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
    sign, big_l, zero = _tree_sum(sign, big_l, zero, f)
    if k == 0:
        out_shape = a.codes.shape[:-1] + b.codes.shape[1:]
        sign = torch.zeros(out_shape, dtype=torch.int64, device=a.codes.device)
        big_l = torch.zeros_like(sign)
        zero = torch.ones(out_shape, dtype=torch.bool, device=a.codes.device)
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
