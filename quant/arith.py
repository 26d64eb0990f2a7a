"""Checked arithmetic on encoded values: add, sub, mul, div, dot, matmul (dispatch only).

Every operation computes its integer result exactly in a wide type and then narrows it under
an explicit `OverflowPolicy` (RAISE by default; see `quant.policy`). Nothing wraps silently.
The rules of each encoding live beside it: `quant.scaled.arith` (ScaledInt8: exact code sums
and products at the operands' or the product scale, ``out_scale=`` requantization, matmul
returning the exact accumulator by default) and `quant.logdomain.arith` (LogInt8: exact code
addition for * and /, Gaussian-log tables for + and -). This module checks the operands'
kind, refuses the other encoding's output arguments, and calls the right one.
"""

from __future__ import annotations

from typing import Callable

from .logdomain import LogInt8
from .logdomain.arith import log_addsub, log_matmul, log_muldiv
from .policy import OverflowPolicy, as_policy
from .scaled import ScaledInt8
from .scaled.arith import matmul_accumulator_proof, scaled_addsub, scaled_matmul, scaled_mul

__all__ = ["add", "sub", "mul", "div", "dot", "matmul", "matmul_accumulator_proof"]

Encoded = ScaledInt8 | LogInt8


def _kind(a: object, b: object, op: str) -> type:
    for v in (a, b):
        if not isinstance(v, (ScaledInt8, LogInt8)):
            raise TypeError(f"{op} takes encoded values (ScaledInt8 or LogInt8), got "
                            f"{type(v).__name__}; encode it first")
    if type(a) is not type(b):
        raise TypeError(f"{op} cannot mix {type(a).__name__} and {type(b).__name__}")
    return type(a)


# ------------------------------------------------------------------------------ public
def add(a: Encoded, b: Encoded, *, policy: OverflowPolicy | str = OverflowPolicy.RAISE,
        out_scale: object = None, out_zero_point: object = None, out_dtype: object = None,
        out_offset: int | None = None) -> Encoded:
    """a + b, checked: exact code sums (ScaledInt8, shared scale and zero point unless
    requantized) or the Gaussian-log table (LogInt8, correctly rounded).

    Parameters
    ----------
    a, b : ScaledInt8 or LogInt8
        Operands of one kind and one shape.
    policy : OverflowPolicy or str
        RAISE (default), SATURATE or WRAP (WRAP: ScaledInt8 only).
    out_scale, out_zero_point, out_dtype
        ScaledInt8 only: requantize to that scale / zero point, store as that dtype.
    out_offset : int, optional
        LogInt8 only: the result's offset.

    Returns
    -------
    ScaledInt8 or LogInt8

    Raises
    ------
    QuantOverflowError
        Under RAISE, when the exact result leaves the result's code range.
    ValueError, TypeError
        For mismatched kinds, shapes, parameters, or the other encoding's arguments.

    Examples
    --------
    >>> import torch, quant
    >>> a = quant.ScaledInt8.encode(torch.tensor([0.5, 1.0]), scale=0.25)
    >>> quant.add(a, a).decode().tolist()
    [1.0, 2.0]
    """
    return _addsub(a, b, False, policy, out_scale, out_zero_point, out_dtype, out_offset,
                   "quant.add")


def sub(a: Encoded, b: Encoded, *, policy: OverflowPolicy | str = OverflowPolicy.RAISE,
        out_scale: object = None, out_zero_point: object = None, out_dtype: object = None,
        out_offset: int | None = None) -> Encoded:
    """a - b, checked (the rules of `add`).

    Parameters
    ----------
    a, b : ScaledInt8 or LogInt8
        Operands of one kind and one shape.
    policy : OverflowPolicy or str
        RAISE (default), SATURATE or WRAP (WRAP: ScaledInt8 only).
    out_scale, out_zero_point, out_dtype
        ScaledInt8 only: requantize to that scale / zero point, store as that dtype.
    out_offset : int, optional
        LogInt8 only: the result's offset.

    Returns
    -------
    ScaledInt8 or LogInt8

    Raises
    ------
    QuantOverflowError
        Under RAISE, when the exact result leaves the result's code range.
    ValueError, TypeError
        For mismatched kinds, shapes, parameters, or the other encoding's arguments.
    """
    return _addsub(a, b, True, policy, out_scale, out_zero_point, out_dtype, out_offset,
                   "quant.sub")


def _addsub(a: Encoded, b: Encoded, negate: bool, policy: object, out_scale: object,
            out_zero_point: object, out_dtype: object, out_offset: object, op: str) -> Encoded:
    return _dispatch(
        a, b, op, policy, out_scale, out_zero_point, out_dtype, out_offset,
        lambda a, b, sc, zp, dt, pol, op: scaled_addsub(a, b, -1 if negate else 1, sc, zp, dt,
                                                        pol, op),
        lambda a, b, off, pol, op: log_addsub(a, b, negate, off, pol, op))


def _dispatch(a: Encoded, b: Encoded, op: str, policy: object, out_scale: object,
              out_zero_point: object, out_dtype: object, out_offset: object,
              scaled: Callable[..., Encoded], log: Callable[..., Encoded]) -> Encoded:
    """Run ``scaled(a, b, out_scale, out_zero_point, out_dtype, policy, op)`` for ScaledInt8
    operands or ``log(a, b, out_offset, policy, op)`` for LogInt8 ones, refusing the other
    encoding's output arguments."""
    kind = _kind(a, b, op)
    pol = as_policy(policy, op)
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
    addition (LogInt8), unless `out_scale` / `out_offset` asks for another result scale.

    Parameters
    ----------
    a, b : ScaledInt8 or LogInt8
        Operands of one kind and one shape.
    policy : OverflowPolicy or str
        RAISE (default), SATURATE or WRAP (WRAP: ScaledInt8 only).
    out_scale, out_zero_point, out_dtype
        ScaledInt8 only: requantize to that scale / zero point, store as that dtype.
    out_offset : int, optional
        LogInt8 only: the result's offset.

    Returns
    -------
    ScaledInt8 or LogInt8

    Raises
    ------
    QuantOverflowError
        Under RAISE, when the exact result leaves the result's code range.
    ValueError, TypeError
        For mismatched kinds, shapes, parameters, or the other encoding's arguments.
    """
    return _dispatch(a, b, "quant.mul", policy, out_scale, out_zero_point, out_dtype, out_offset,
                     scaled_mul,
                     lambda a, b, off, pol, op: log_muldiv(a, b, False, off, pol, op))


def div(a: Encoded, b: Encoded, *, policy: OverflowPolicy | str = OverflowPolicy.RAISE,
        out_offset: int | None = None) -> LogInt8:
    """a / b elementwise for LogInt8: exact code subtraction.

    Parameters
    ----------
    a, b : LogInt8
        Operands of one shape and frac_bits.
    policy : OverflowPolicy or str
        RAISE (default) or SATURATE.
    out_offset : int, optional
        The result's offset (default centred: max_a / max_b gets code 64).

    Returns
    -------
    LogInt8

    Raises
    ------
    ZeroDivisionError
        For a zero divisor code, naming its index.
    TypeError
        For ScaledInt8 operands: a quotient of codes is not a code at any fixed scale.
    QuantOverflowError
        Under RAISE, for a quotient beyond the top magnitude.
    """
    op = "quant.div"
    kind = _kind(a, b, op)
    if kind is ScaledInt8:
        raise TypeError(f"{op}: ScaledInt8 division is not supported: a quotient of codes is not "
                        f"a code at any fixed scale; decode and re-encode, or use LogInt8, "
                        f"where division is exact")
    return log_muldiv(a, b, True, out_offset, as_policy(policy, op), op)


def matmul(a: Encoded, b: Encoded, *, policy: OverflowPolicy | str = OverflowPolicy.RAISE,
           out_scale: object = None, out_zero_point: object = None, out_dtype: object = None,
           out_offset: int | None = None) -> Encoded:
    """a @ b with a (..., M, K) or (K,) and b (K, N) or (K,), checked.

    Parameters
    ----------
    a, b : ScaledInt8 or LogInt8
        Operands of one kind. ScaledInt8: a may be per-row, b per-column, not both.
    policy : OverflowPolicy or str
        For narrowing: RAISE (default), SATURATE or WRAP (WRAP: ScaledInt8 only).
    out_scale, out_zero_point, out_dtype
        ScaledInt8 only. By default the result holds the exact integer accumulators (int32,
        or int64 where int32 is not proven safe by `matmul_accumulator_proof`) at the product
        scale: nothing can overflow. `out_scale=` requantizes (to int8 codes unless
        `out_dtype=`); `out_dtype=` ('int8', 'uint8', 'int32') narrows under `policy`.
    out_offset : int, optional
        LogInt8 only: the result's offset (default top-aligned for K terms).

    Returns
    -------
    ScaledInt8 or LogInt8

    Raises
    ------
    QuantOverflowError
        Under RAISE, when a narrowed result leaves its code range.
    ValueError, TypeError
        For mismatched shapes, kinds, per-channel axes or arguments.

    Notes
    -----
    LogInt8: exact products, then a pairwise Gaussian-log sum (`quant.logdomain.arith` states
    its error bound).
    """
    return _matmul(a, b, "quant.matmul", policy, out_scale, out_zero_point, out_dtype,
                   out_offset)


def _matmul(a: Encoded, b: Encoded, op: str, policy: object, out_scale: object,
            out_zero_point: object, out_dtype: object, out_offset: object) -> Encoded:
    return _dispatch(a, b, op, policy, out_scale, out_zero_point, out_dtype, out_offset,
                     scaled_matmul, log_matmul)


def dot(a: Encoded, b: Encoded, *, policy: OverflowPolicy | str = OverflowPolicy.RAISE,
        out_scale: object = None, out_zero_point: object = None, out_dtype: object = None,
        out_offset: int | None = None) -> Encoded:
    """Inner product of two 1-d encoded vectors; the rules of `matmul`, errors naming quant.dot.

    Parameters
    ----------
    a, b : ScaledInt8 or LogInt8
        1-d operands of one kind and length.
    policy, out_scale, out_zero_point, out_dtype, out_offset
        As for `matmul`.

    Returns
    -------
    ScaledInt8 or LogInt8
        A 0-d encoded result (ScaledInt8: the exact accumulator by default).
    """
    for v in (a, b):
        if isinstance(v, (ScaledInt8, LogInt8)) and v.codes.dim() != 1:
            raise ValueError(f"quant.dot takes 1-d operands, got shape {tuple(v.codes.shape)}")
    return _matmul(a, b, "quant.dot", policy, out_scale, out_zero_point, out_dtype, out_offset)
