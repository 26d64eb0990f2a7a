"""What happens when an exact integer result does not fit its code range.

Every checked operation in `quant` first computes its result exactly in a wide integer type
(int32 or int64), then narrows it to its storage type through `narrow`, which applies an
explicit overflow policy. Nothing wraps silently: wraparound only happens when asked for.

The vocabulary is numfmt's (`numfmt.overflow`): `OverflowPolicy` *is* `numfmt.OverflowPolicy`
and `QuantOverflowError` *is* `numfmt.RangeOverflowError`, so ``round_to(..., overflow=...)``
and ``quant.add(..., policy=...)`` take the same members (or their names) and raise the same
error. quant's integer codes accept RAISE, SATURATE and WRAP; INF and NAN, which need a float
destination, are refused with a clear error.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

import numfmt
from numfmt import overflow
from numfmt.overflow import OverflowPolicy, RangeOverflowError

from ._tensors import first_flat_index, first_index

__all__ = ["OverflowPolicy", "QuantOverflowError", "EncodingRangeError", "QUANT_POLICIES",
           "STORAGE_DTYPES",
           "as_policy", "storage_range", "narrow", "overflow_error", "wrap_to_dtype"]

QuantOverflowError = RangeOverflowError
"""quant's name for `numfmt.RangeOverflowError` (the same class)."""

QUANT_POLICIES = (OverflowPolicy.RAISE, OverflowPolicy.SATURATE, OverflowPolicy.WRAP)
"""The policies integer codes can follow (INF and NAN need a float destination)."""

STORAGE_DTYPES = {"int8": torch.int8, "uint8": torch.uint8, "int32": torch.int32,
                  "int64": torch.int64}
"""Integer storage of encoded codes: 8-bit codes, and the int32 / int64 accumulators that
exact matmul results are kept in."""


def as_policy(policy: OverflowPolicy | str, what: str = "quant") -> OverflowPolicy:
    """The `OverflowPolicy` for a member or its name, restricted to `QUANT_POLICIES`.

    Parameters
    ----------
    policy : OverflowPolicy or str
        ``OverflowPolicy.RAISE`` / ``SATURATE`` / ``WRAP`` or ``'raise'``, ``'saturate'``,
        ``'wrap'`` (any case).
    what : str
        Names the caller in the error message.

    Returns
    -------
    OverflowPolicy

    Raises
    ------
    ValueError
        For an unknown name, or ``INF`` / ``NAN`` (integer codes hold neither).
    """
    return overflow.as_policy(policy, QUANT_POLICIES, what)


def storage_range(dtype: object, wide: bool = False) -> tuple[torch.dtype, int, int]:
    """(torch dtype, lowest, highest) of an integer storage format, from `numfmt.get`.

    Parameters
    ----------
    dtype : str or dtype
        Anything `numfmt.get` accepts ('int8', 'uint8', torch.int8, numpy.uint8, ...).
    wide : bool
        Also accept 'int32' and 'int64' (storage of exact accumulators).

    Returns
    -------
    tuple
        The torch dtype and its integer range.

    Raises
    ------
    ValueError
        For any other format.
    """
    fmt = numfmt.get(dtype)
    allowed = tuple(STORAGE_DTYPES) if wide else ("int8", "uint8")
    if fmt.name not in allowed:
        raise ValueError(f"codes are stored as {' or '.join(allowed)}, not {fmt.name}")
    return STORAGE_DTYPES[fmt.name], int(fmt.lowest), int(fmt.max)


def wrap_to_dtype(wide: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Reduce integers modulo 2**bits into `dtype` (two's complement), like numpy's casts.

    Parameters
    ----------
    wide : torch.Tensor
        Integer values.
    dtype : torch.dtype
        int8, uint8, int32 or int64 storage.

    Returns
    -------
    torch.Tensor
        The wrapped values, of `dtype`.
    """
    names = {v: k for k, v in STORAGE_DTYPES.items()}
    if dtype not in names:
        raise ValueError(f"wraparound is defined for {', '.join(STORAGE_DTYPES)} storage, "
                         f"not {dtype}")
    bits = numfmt.get(names[dtype]).bits
    if bits >= 64:
        return wide.to(torch.int64)
    low = torch.bitwise_and(wide.to(torch.int64), (1 << bits) - 1)
    if numfmt.get(names[dtype]).signed:
        low = torch.where(low >= (1 << (bits - 1)), low - (1 << bits), low)
    return low.to(dtype)


def overflow_error(op: str, mask: torch.Tensor, values: torch.Tensor | Callable[[int], int],
                   lowest: int, highest: int, hint: str = "", what: str = "exact result"
                   ) -> QuantOverflowError:
    """The `QuantOverflowError` for the first True element of `mask` (the one place that
    builds it): its index, the exact value there (from `values` broadcast like `mask`, or
    ``values(flat_index)``), and how many of the elements overflow."""
    flat = first_flat_index(mask)
    value = values(flat) if callable(values) else \
        int(torch.broadcast_to(values, mask.shape).reshape(-1)[flat])
    return QuantOverflowError(op, first_index(mask), value, lowest, highest, int(mask.sum()),
                              mask.numel(), hint, what=what)


def narrow(wide: torch.Tensor, qmin: int, qmax: int, dtype: torch.dtype,
           policy: OverflowPolicy | str = OverflowPolicy.RAISE, op: str = "quant",
           hint: str = "") -> torch.Tensor:
    """Narrow exact wide-integer results to `dtype` codes under `policy`.

    Parameters
    ----------
    wide : torch.Tensor
        Integer tensor of exact results.
    qmin, qmax : int
        The code range; it must lie inside the range of `dtype`.
    dtype : torch.dtype
        int8 or uint8 codes, or int32 / int64 accumulators.
    policy : OverflowPolicy or str
        RAISE (default), SATURATE (clamp to [qmin, qmax]) or WRAP (modulo 2**bits of `dtype`).
    op : str
        Names the operation in errors.
    hint : str
        Appended to the overflow message (what the caller can do).

    Returns
    -------
    torch.Tensor
        The codes, of `dtype`. Elements inside [qmin, qmax] are unchanged under every policy.

    Raises
    ------
    QuantOverflowError
        Under RAISE, naming `op`, the first offending index and its exact value.
    TypeError
        If `wide` is not an integer tensor.
    ValueError
        For a storage type or code range that does not fit.
    """
    policy = as_policy(policy, op)
    if wide.is_floating_point() or wide.dtype == torch.bool or wide.is_complex():
        raise TypeError(f"{op}: narrow expects exact integer results, got a {wide.dtype} tensor")
    names = {v: k for k, v in STORAGE_DTYPES.items()}
    if dtype not in names:
        raise ValueError(f"{op}: codes are stored as int8 or uint8 (results as int32 or "
                         f"int64), not {dtype}")
    _, lo_s, hi_s = storage_range(names[dtype], wide=True)
    if not lo_s <= qmin <= qmax <= hi_s:
        raise ValueError(f"{op}: code range [{qmin}, {qmax}] does not fit {dtype}")
    if policy is OverflowPolicy.WRAP:
        return wrap_to_dtype(wide, dtype)
    if policy is OverflowPolicy.SATURATE:
        return wide.clamp(qmin, qmax).to(dtype)
    bad = (wide < qmin) | (wide > qmax)
    if wide.device.type != "meta" and bool(bad.any()):
        raise overflow_error(op, bad, wide, qmin, qmax,
                             hint or "pass policy=OverflowPolicy.SATURATE or WRAP to narrow "
                                     "anyway")
    return wide.to(dtype)


class EncodingRangeError(ValueError):
    """Data whose range an encoding's parameters cannot reach (a calibrated ScaledInt8 scale
    or LogInt8 offset outside float32, where both live): encoding it would silently flush
    every value to zero or saturate it, so quant refuses instead.

    A subclass of ValueError; the message names the encoding, the data's extreme and the
    representable limit.
    """
