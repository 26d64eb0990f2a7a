"""The range side of rounding, shared by the numpy and torch paths of `numfmt.round_to`.

Which container holds a result, where a float64 result leaves the format's range, and what the
overflow rule (`numfmt.OverflowPolicy`'s words) makes of it, written once for both array
libraries (``xp`` is numpy or torch: the few functions used exist in both under one name).
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any, Literal

import numpy as np

from numfmt.format import Format
from numfmt.overflow import RangeOverflowError
from numfmt.modes import clamps_high, clamps_low
from numfmt.registry import get

Overflow = Literal["inf", "nan", "saturate", "raise"]

__all__ = ["Overflow", "default_overflow", "float64_range", "holds", "container_name",
           "source_format", "first_index", "raise_overflow", "apply_overflow", "check_nan",
           "saturated_max", "bottom_of_range", "overflow_limit"]


def default_overflow(fmt: Any) -> Overflow:
    """The format's standard rule for a finite value that rounds beyond its range.

    Parameters
    ----------
    fmt : Format or anything `numfmt.get` accepts

    Returns
    -------
    str
        ``"inf"`` for IEEE formats; ``"nan"`` for FP8 E4M3FN (no inf), as ml_dtypes and the OCP
        spec's non-saturating mode do; ``"saturate"`` for formats with neither (FP6, FP4) and
        for integers.
    """
    fmt = get(fmt)
    if not fmt.is_float:
        return "saturate"
    if fmt.has_inf:
        return "inf"
    return "nan" if fmt.has_nan else "saturate"


def float64_range(fmt: Any) -> tuple[float, float]:
    """The format's range as float64 bounds for float64 results.

    Parameters
    ----------
    fmt : Format or anything `numfmt.get` accepts

    Returns
    -------
    (float, float)
        (lowest, high) such that a float64 r is in range iff lowest <= r <= high; ``high`` is the
        largest float64 not above the max (the max itself unless float64 cannot hold it, as for
        int64's 2**63 - 1).
    """
    f = get(fmt)
    hi = float(f.max_exact)
    if Fraction(hi) > f.max_exact:
        hi = math.nextafter(hi, 0.0)
    return float(f.lowest_exact), hi


def holds(container: Format, fmt: Format) -> bool:
    """Whether every value of ``fmt`` is exactly a value of the format ``container``.

    Parameters
    ----------
    container, fmt : Format

    Returns
    -------
    bool
    """
    if not container.is_float:
        return (not fmt.is_float and container.lowest_exact <= fmt.lowest_exact
                and fmt.max_exact <= container.max_exact)
    if not fmt.is_float:
        return fmt.max_exact <= 2**container.precision_bits \
            and -fmt.lowest_exact <= 2**container.precision_bits
    return (container.precision_bits >= fmt.precision_bits
            and container.max_exact >= fmt.max_exact
            and container.smallest_subnormal_exact <= fmt.smallest_subnormal_exact)


def container_name(src: Format | None, src_is_int: bool, fmt: Format) -> str:
    """The name of the format whose dtype holds a rounding's result (see `numfmt.round_to`).

    Parameters
    ----------
    src : Format or None
        The input's format (None for dtypes the registry lacks).
    src_is_int : bool
        Whether the input dtype is an integer type.
    fmt : Format
        The target.

    Returns
    -------
    str
        The input's own format when it holds every value of ``fmt``; int64 for integer targets
        from integer input or beyond float64; else fp32 or fp64.
    """
    if src is not None and holds(src, fmt) and (src.is_float or not fmt.is_float):
        return src.name
    if not fmt.is_float and (src_is_int or not holds(get("fp64"), fmt)):
        return "int64"
    return "fp32" if holds(get("fp32"), fmt) else "fp64"


def source_format(dtype: Any) -> Format | None:
    """The registered format of a dtype, or None.

    Parameters
    ----------
    dtype : numpy dtype or torch.dtype

    Returns
    -------
    Format or None
    """
    try:
        return get(dtype)
    except ValueError:
        return None


# ---- the overflow rule, shared by the numpy and torch paths --------------------------------
def first_index(mask: Any) -> tuple[int, int]:
    """The flat index of the first True of a mask, and how many there are.

    Parameters
    ----------
    mask : numpy.ndarray or torch.Tensor of bool
        With at least one True.

    Returns
    -------
    (int, int)
    """
    if isinstance(mask, (np.ndarray, np.generic, bool)):     # a Python number's mask is 0-d
        flat = np.flatnonzero(np.asarray(mask).ravel())
        return int(flat[0]), int(flat.size)
    flat = mask.reshape(-1).nonzero()
    return int(flat[0, 0]), int(flat.shape[0])


def raise_overflow(mask: Any, x: Any, fmt: Format) -> None:
    """Raise `RangeOverflowError` for the first True of ``mask``.

    Parameters
    ----------
    mask : numpy.ndarray or torch.Tensor of bool
    x : numpy.ndarray or torch.Tensor
        The input, the shape of ``mask`` (its value is reported).
    fmt : Format

    Raises
    ------
    RangeOverflowError
        Always, naming the index, the value and the count.
    """
    i, count = first_index(mask)
    shape = tuple(x.shape)
    index = tuple(int(j) for j in np.unravel_index(i, shape)) if shape else ()
    value = float(x.reshape(-1)[i])
    raise RangeOverflowError("round_to", index, value, fmt.lowest, fmt.max, count=count,
                             total=int(np.prod(shape, dtype=np.int64)), what="value",
                             hint=f"it overflows {fmt.name}")


def apply_overflow(r: Any, x: Any, fmt: Format, rule: Overflow, xp: Any,
                   mode: str = "nearest_even") -> tuple[Any, Any]:
    """The overflow rule applied to the float64 rounding ``r`` of the float64 input ``x``.

    Parameters
    ----------
    r, x : numpy.ndarray or torch.Tensor
        float64, same shape.
    fmt : Format
    rule : {"inf", "nan", "saturate", "raise"}
    xp : module
        numpy or torch.
    mode : str
        The rounding mode that produced ``r`` (`numfmt.modes`).

    Returns
    -------
    (array, mask)
        The result and the mask of elements that met the rule. For "raise" ``r`` comes back
        unchanged and the caller raises where the mask has a True.

    Notes
    -----
    A finite value rounding beyond the range meets the rule, where the mode directs it there
    (IEEE 754): toward zero (and odd) never overflows, up only on the positive side and down
    only on the negative side; the other side gets the max or lowest value, the mode's own
    answer. An infinite input stays infinite
    where the format has inf (every rule but "saturate", which clamps it); where the format has no
    inf it meets the rule like a finite overflow ("raise" raises, "nan" gives NaN).
    """
    lo, hi = float64_range(fmt)
    with np.errstate(invalid="ignore"):
        above, below = r > hi, r < lo
    finite = ~xp.isinf(x)
    if clamps_high(mode):                          # the mode's answer is max, not overflow
        r, above = xp.where(above & finite, hi, r), above & ~finite
    if clamps_low(mode):
        r, below = xp.where(below & finite, lo, r), below & ~finite
    over = above | below
    if fmt.has_inf and rule != "saturate":        # inf inputs the format holds stay inf
        over = over & ~(xp.isinf(x) & ((x > 0) | fmt.signed))
    if rule == "raise" or not bool(over.any()):
        return r, over
    if rule == "inf":                              # an unsigned format has no -inf: NaN
        neg = -math.inf if fmt.signed else math.nan
        return xp.where(over, xp.where(r > 0, math.inf, neg), r), over
    if rule == "nan":
        return xp.where(over, math.nan, r), over
    return xp.clip(r, lo, hi), over               # NaN stays NaN


def check_nan(x: Any, fmt: Format, xp: Any) -> None:
    """Refuse NaN where the format has none.

    Parameters
    ----------
    x : numpy.ndarray or torch.Tensor
    fmt : Format
    xp : module
        numpy or torch.

    Raises
    ------
    ValueError
        Naming the first NaN's flat index, for formats without NaN (integers, FP6, FP4).
    """
    if fmt.has_nan:
        return
    bad = xp.isnan(x)
    if bool(bad.any()):
        i, _ = first_index(bad)
        raise ValueError(f"NaN at flat index {i} has no {fmt.name} value")


def saturated_max(r: Any, x: Any, fmt: Format, rule: Overflow) -> Any:
    """Where a saturating result must be the max exactly although float64 cannot hold it.

    Parameters
    ----------
    r, x : numpy.ndarray or torch.Tensor
        The float64 rounding and the float64 input.
    fmt : Format
    rule : str

    Returns
    -------
    mask or None
        None unless the max is no float64 (int64: 2**63 - 1) and the rule saturates.
    """
    lo, hi = float64_range(fmt)
    if Fraction(hi) == fmt.max_exact or rule != "saturate":
        return None
    with np.errstate(invalid="ignore"):
        return x > hi


def bottom_of_range(r: Any, x: Any, fmt: Format, xp: Any) -> Any:
    """A grid rounding ``r`` of ``x`` moved onto the values the format has near zero.

    Parameters
    ----------
    r, x : numpy.ndarray or torch.Tensor
        The float64 rounding (unbounded grid) and the float64 input.
    fmt : Format
    xp : module
        numpy or torch.

    Returns
    -------
    array
        -0 becomes +0 where the format has no -0 (the fnuz layouts, P3109 signed, unsigned
        formats); a positive input below the smallest value of a format without zero (E8M0)
        becomes that smallest value, its nearest. Zero and negative inputs into a format
        without them are left for the overflow rule (they lie below ``lowest``).
    """
    if fmt.is_float and not fmt.has_negative_zero:
        r = r + 0.0                                 # -0.0 + 0.0 is +0.0
    if fmt.is_float and not fmt.has_zero:
        tiny = float(fmt.tiny_exact)
        r = xp.where((x > 0) & (r < tiny), tiny, r)
    return r


def overflow_limit(fmt: Any) -> tuple[float, bool]:
    """Where rounding to nearest leaves the format's range.

    Parameters
    ----------
    fmt : Format or anything `numfmt.get` accepts

    Returns
    -------
    (float, bool)
        max + ulp(max)/2 as a float64 (inf when float64 cannot hold it, as for fp64), and
        whether a tie exactly there rounds beyond the max (the max's last digit is odd).
    """
    from numfmt.exact import quantum

    f = get(fmt)
    step = quantum(f, f.max_exact)
    lim = f.max_exact + step / 2
    tie_up = (f.max_exact / step) % 2 == 1
    try:
        return float(lim), bool(tie_up)
    except OverflowError:
        return math.inf, bool(tie_up)
