"""Input normalisation, argument checks and cache-sized block iteration shared by quant.

Everything here is the one place for a check that several modules make: an int that is not a
bool (`is_int`, `as_int`), the first offending index of a mask (`first_index`), the per-channel
broadcast view of a parameter (`channel_broadcast`), NaN / infinity (`check_finite`).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import numpy as np
import torch

BLOCK = 1 << 18
"""Elements per block of the fused elementwise loops: 1 MiB of float32 scratch, which stays in
cache, so the several cheap passes of an encode cost about one pass over memory."""


def is_int(v: object) -> bool:
    """Whether `v` is an integer scalar (Python or numpy), a bool not counting as one."""
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def as_int(v: object, what: str) -> int:
    """`v` as a Python int; TypeError naming `what` unless `is_int(v)`."""
    if not is_int(v):
        raise TypeError(f"{what} must be an int, got {type(v).__name__}")
    return int(v)


def renamed_keyword(value: object, old_value: object, name: str, old_name: str, what: str,
                    default: object) -> object:
    """The value of keyword `name`, or of its deprecated old name `old_name` (with a
    DeprecationWarning); `default` when neither is given; TypeError when both are."""
    if old_value is None:
        return default if value is None else value
    if value is not None:
        raise TypeError(f"{what}: pass {name}= ({old_name}= is its deprecated old name), "
                        f"not both")
    warnings.warn(f"{what}: {old_name}= is deprecated; pass {name}=", DeprecationWarning,
                  stacklevel=3)
    return old_value


def has_values(t: torch.Tensor) -> bool:
    """False for a meta tensor (shape and dtype only): value checks are skipped for it."""
    return t.device.type != "meta"


def as_tensor(x: object, what: str) -> torch.Tensor:
    """A torch tensor view of `x` (torch tensor or numpy array); never copies needlessly."""
    if isinstance(x, torch.Tensor):
        return x.detach()
    if isinstance(x, np.ndarray):
        if x.dtype.kind not in "biuf":
            raise TypeError(f"{what}: unsupported numpy dtype {x.dtype}")
        if x.dtype.kind == "u" and x.dtype != np.uint8:
            x = x.astype(np.int64)
        return torch.from_numpy(np.ascontiguousarray(x))
    raise TypeError(f"{what}: expected a torch tensor or numpy array, got {type(x).__name__}")


def as_float_input(x: object, what: str) -> torch.Tensor:
    """Real values to encode, as float32 or float64 (other dtypes are converted exactly).

    float16/bfloat16 become float32 and integers float64 (exact below 2**53); complex and bool
    are refused. The caller's tensor is never written to.
    """
    t = as_tensor(x, what)
    if t.is_complex():
        raise TypeError(f"{what}: complex input is not supported")
    if t.dtype == torch.bool:
        raise TypeError(f"{what}: expected real values, got a bool tensor")
    if t.dtype in (torch.float32, torch.float64):
        return t.resolve_neg()          # a lazily negated view cannot be reinterpreted as bits
    if t.is_floating_point():
        return t.to(torch.float32)
    return t.to(torch.float64)


def first_flat_index(mask: torch.Tensor) -> int:
    """Row-major position of the first True element of a boolean mask that has one."""
    return int(mask.reshape(-1).nonzero()[0, 0])


def first_index(mask: torch.Tensor) -> tuple[int, ...]:
    """Row-major index (a tuple, ``()`` for 0-d) of the first True element of a mask that
    has one."""
    flat = first_flat_index(mask)
    if mask.dim() == 0:
        return ()
    return tuple(int(i) for i in torch.unravel_index(torch.tensor(flat), mask.shape))


def channel_broadcast(t: torch.Tensor, axis: int | None, ndim: int) -> torch.Tensor:
    """A per-channel parameter of shape (C,) viewed to broadcast along `axis` of an `ndim`-d
    tensor; `t` itself when `axis` is None (per tensor)."""
    if axis is None:
        return t
    shape = [1] * ndim
    shape[axis] = -1
    return t.reshape(shape)


def check_same_shape(a: torch.Tensor, b: torch.Tensor, op: str) -> None:
    """ValueError naming `op` unless two elementwise operands have the same shape."""
    if a.shape != b.shape:
        raise ValueError(f"{op}: operand shapes {tuple(a.shape)} and {tuple(b.shape)} differ")


def check_finite(x: torch.Tensor, what: str) -> None:
    """Raise ValueError naming the first NaN or infinity in `x`, if any (none for meta)."""
    if not has_values(x):
        return
    bad = ~torch.isfinite(x)
    if bool(bad.any()):
        idx = first_index(bad)
        value = float(x[idx]) if idx else float(x)
        raise ValueError(f"{what}: input contains {value} at index {idx}; NaN and infinity "
                         f"have no code")


def normalize_axis(axis: int | None, ndim: int, what: str) -> int | None:
    """Non-negative axis (or None), with a clear error when out of range."""
    if axis is None:
        return None
    if not is_int(axis):
        raise TypeError(f"{what}: axis must be an int or None, got {type(axis).__name__}")
    axis = int(axis)
    if not -ndim <= axis < ndim:
        raise ValueError(f"{what}: axis {axis} is out of range for a {ndim}-d tensor")
    return axis % ndim


def channel_view(t: torch.Tensor, axis: int | None) -> torch.Tensor:
    """Contiguous 3-d view (outer, channels, inner) of `t`; one channel when `axis` is None."""
    t = t.contiguous()
    if axis is None:
        return t.reshape(1, 1, t.numel())
    outer = int(np.prod(t.shape[:axis], dtype=np.int64))
    inner = int(np.prod(t.shape[axis + 1:], dtype=np.int64))
    return t.reshape(outer, t.shape[axis], inner)


def blocks(shape3: tuple[int, int, int], budget: int = BLOCK
           ) -> Iterator[tuple[slice, slice, slice]]:
    """Slices covering a (outer, channels, inner) array in blocks of at most ~`budget` elements."""
    o_n, c_n, i_n = shape3
    if o_n * c_n * i_n == 0:
        return
    b2 = min(i_n, budget)
    b1 = min(c_n, max(1, budget // b2))
    b0 = min(o_n, max(1, budget // (b1 * b2)))
    for o in range(0, o_n, b0):
        for c in range(0, c_n, b1):
            for i in range(0, i_n, b2):
                yield slice(o, o + b0), slice(c, c + b1), slice(i, i + b2)


def block_shape(s: tuple[slice, slice, slice], shape3: tuple[int, int, int]) -> tuple[int, ...]:
    """Shape of the block `s` cut from an array of shape `shape3`."""
    return tuple(min(sl.stop, n) - sl.start for sl, n in zip(s, shape3))
