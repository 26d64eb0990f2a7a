"""What happens when an exact integer result does not fit its code range.

Every checked operation in `quant` first computes its result exactly in a wide integer type
(int32 or int64), then narrows it to the 8-bit storage type through `narrow`, which applies
an explicit `OverflowPolicy`. Nothing wraps silently: wraparound only happens when asked for.
"""

from __future__ import annotations

import enum

import torch

__all__ = ["OverflowPolicy", "QuantOverflowError", "as_policy", "narrow", "wrap_to_dtype"]


class OverflowPolicy(enum.Enum):
    """How a result outside the code range [qmin, qmax] is narrowed.

    RAISE     raise `QuantOverflowError` (the default everywhere in `quant`).
    SATURATE  clamp to qmin / qmax.
    WRAP      reduce modulo 2**8 into the storage dtype (two's complement for int8), exactly what
              numpy int8 / uint8 arithmetic gives; the result may therefore hold codes outside a
              narrow range such as [-127, 127] (e.g. -128).
    """

    RAISE = "raise"
    SATURATE = "saturate"
    WRAP = "wrap"


class QuantOverflowError(OverflowError):
    """An exact result does not fit the code range of its destination.

    Attributes: `op` (operation name), `index` (tuple, first offending element in row-major
    order), `value` (the exact integer result there, a Python int), `qmin`, `qmax` (the range it
    had to fit), `count` (how many elements overflow) and `total` (how many elements there are).
    """

    def __init__(self, op: str, index: tuple[int, ...], value: int, qmin: int, qmax: int,
                 count: int, total: int, hint: str = "") -> None:
        self.op, self.index, self.value = op, index, value
        self.qmin, self.qmax, self.count, self.total = qmin, qmax, count, total
        msg = (f"{op}: exact result {value} at index {index} is outside the code range "
               f"[{qmin}, {qmax}] ({count} of {total} elements overflow)")
        if hint:
            msg += f"; {hint}"
        super().__init__(msg)


def as_policy(policy: OverflowPolicy | str) -> OverflowPolicy:
    """Accept an `OverflowPolicy` or its name ('raise', 'saturate', 'wrap', any case)."""
    if isinstance(policy, OverflowPolicy):
        return policy
    if isinstance(policy, str):
        try:
            return OverflowPolicy(policy.lower())
        except ValueError:
            pass
    raise ValueError(f"unknown overflow policy {policy!r}; use one of "
                     f"{', '.join('OverflowPolicy.' + p.name for p in OverflowPolicy)}")


_STORAGE = {torch.int8: (-128, 127), torch.uint8: (0, 255)}


def wrap_to_dtype(wide: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Reduce integers modulo 2**8 into int8 (two's complement) or uint8, like numpy's casts."""
    if dtype not in _STORAGE:
        raise ValueError(f"wraparound is defined for int8 and uint8 storage, not {dtype}")
    low = torch.bitwise_and(wide.to(torch.int64), 0xFF)
    if dtype == torch.int8:
        low = torch.where(low >= 128, low - 256, low)
    return low.to(dtype)


def narrow(wide: torch.Tensor, qmin: int, qmax: int, dtype: torch.dtype,
           policy: OverflowPolicy | str = OverflowPolicy.RAISE, op: str = "quant",
           hint: str = "") -> torch.Tensor:
    """Narrow exact wide-integer results to `dtype` codes under `policy`.

    `wide` must be an integer tensor holding exact results; [qmin, qmax] must lie inside the
    range of `dtype` (int8 or uint8). Elements inside [qmin, qmax] are returned unchanged under
    every policy. RAISE raises `QuantOverflowError` naming `op`, the first offending index and
    its exact value; SATURATE clamps; WRAP reduces modulo 2**8 (see `OverflowPolicy`).
    """
    policy = as_policy(policy)
    if wide.is_floating_point() or wide.dtype == torch.bool or wide.is_complex():
        raise TypeError(f"{op}: narrow expects exact integer results, got a {wide.dtype} tensor")
    lo_s, hi_s = _STORAGE.get(dtype, (None, None))
    if lo_s is None:
        raise ValueError(f"{op}: codes are stored as int8 or uint8, not {dtype}")
    if not lo_s <= qmin <= qmax <= hi_s:
        raise ValueError(f"{op}: code range [{qmin}, {qmax}] does not fit {dtype}")
    if policy is OverflowPolicy.WRAP:
        return wrap_to_dtype(wide, dtype)
    if policy is OverflowPolicy.SATURATE:
        return wide.clamp(qmin, qmax).to(dtype)
    bad = (wide < qmin) | (wide > qmax)
    if bool(bad.any()):
        flat = bad.reshape(-1)
        first = int(flat.nonzero()[0, 0])
        index = tuple(int(i) for i in torch.unravel_index(torch.tensor(first), wide.shape)) \
            if wide.dim() else ()
        value = int(wide.reshape(-1)[first])
        raise QuantOverflowError(op, index, value, qmin, qmax, int(flat.sum()), wide.numel(),
                                 hint or "pass policy=OverflowPolicy.SATURATE or WRAP to narrow "
                                         "anyway")
    return wide.to(dtype)
