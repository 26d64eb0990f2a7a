"""`round_to`: correct rounding into a format, for Python numbers, numpy arrays and tensors.

The value is rounded once, straight from the input's own precision into the target format (no
detour through float32, which double-rounds float64 inputs near halfway points). The result is
returned in the same container, held in a dtype wide enough to hold every value of the format.
Tensors that require grad get a straight-through gradient (1) through the rounding.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any, Literal

import numpy as np

from numfmt.exact import round_exact
from numfmt.format import Format
from numfmt.overflow import OverflowPolicy, RangeOverflowError, as_policy
from numfmt.registry import get
from numfmt.tf32 import tf32_from_float32
from numfmt.threads import run_chunks

Overflow = Literal["inf", "nan", "saturate", "raise"]

__all__ = ["round_to", "default_overflow", "Overflow", "float64_range"]


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


def _check_overflow(fmt: Format, overflow: Any) -> Overflow:
    if overflow is None:
        return default_overflow(fmt)
    rules = ((OverflowPolicy.SATURATE, OverflowPolicy.RAISE) if not fmt.is_float else
             (OverflowPolicy.INF, OverflowPolicy.NAN, OverflowPolicy.SATURATE,
              OverflowPolicy.RAISE))
    rule = as_policy(overflow, rules, what=f"round_to into {fmt.name}").value
    if rule == "inf" and not fmt.has_inf:
        raise ValueError(f"{fmt.name} has no infinity: overflow='inf' is impossible")
    if rule == "nan" and not fmt.has_nan:
        raise ValueError(f"{fmt.name} has no NaN: overflow='nan' is impossible")
    return rule  # type: ignore[return-value]


def float64_range(fmt: Any) -> tuple[float, float]:
    """(lowest, high) as float64 numbers such that a float64 r is in range iff lowest <= r <= high.

    ``high`` is the largest float64 not above the format's max (the max itself unless float64
    cannot hold it, as for int64's 2**63 - 1).
    """
    f = get(fmt)
    hi = float(f.max_exact)
    if Fraction(hi) > f.max_exact:
        hi = math.nextafter(hi, 0.0)
    return float(f.lowest_exact), hi


def _holds(container: Format, fmt: Format) -> bool:
    """Whether every value of ``fmt`` is exactly a value of the format ``container``."""
    if not container.is_float:
        return (not fmt.is_float and container.lowest_exact <= fmt.lowest_exact
                and fmt.max_exact <= container.max_exact)
    if not fmt.is_float:
        return fmt.max_exact <= 2**container.precision_bits \
            and -fmt.lowest_exact <= 2**container.precision_bits
    return (container.precision_bits >= fmt.precision_bits
            and container.max_exact >= fmt.max_exact
            and container.smallest_subnormal_exact <= fmt.smallest_subnormal_exact)


def _container_name(src: Format | None, src_is_int: bool, fmt: Format) -> str:
    """Name of the format whose dtype holds the result (see `round_to`)."""
    if src is not None and _holds(src, fmt) and (src.is_float or not fmt.is_float):
        return src.name
    if not fmt.is_float and (src_is_int or not _holds(get("fp64"), fmt)):
        return "int64"
    return "fp32" if _holds(get("fp32"), fmt) else "fp64"


def _source(dtype: Any) -> Format | None:
    try:
        return get(dtype)
    except ValueError:
        return None


# ---- the overflow rule, shared by the numpy and torch paths --------------------------------
def _first(mask: Any) -> tuple[int, int]:
    """(flat index of the first True, count of True)."""
    if isinstance(mask, np.ndarray):
        flat = np.flatnonzero(mask.ravel())
        return int(flat[0]), int(flat.size)
    flat = mask.reshape(-1).nonzero()
    return int(flat[0, 0]), int(flat.shape[0])


def _raise_overflow(mask: Any, x: Any, fmt: Format) -> None:
    """Raise `RangeOverflowError` for the first True of ``mask`` (x: the input, same shape)."""
    i, count = _first(mask)
    shape = tuple(x.shape)
    index = tuple(int(j) for j in np.unravel_index(i, shape)) if shape else ()
    value = float(x.reshape(-1)[i])
    raise RangeOverflowError("round_to", index, value, fmt.lowest, fmt.max, count=count,
                             total=int(np.prod(shape, dtype=np.int64)), what="value",
                             hint=f"it overflows {fmt.name}")


def _apply_overflow(r: Any, x: Any, fmt: Format, rule: Overflow, xp: Any) -> tuple[Any, Any]:
    """(the overflow rule applied to the float64 rounding ``r`` of the float64 input ``x``,
    the mask of elements that meet the rule). For "raise" ``r`` comes back unchanged and the
    caller raises where the mask has a True.

    A finite value rounding beyond the range meets the rule. An infinite input stays infinite
    where the format has inf (every rule but "saturate", which clamps it); where the format has
    no inf it meets the rule like a finite overflow ("raise" raises, "nan" gives NaN)."""
    lo, hi = float64_range(fmt)
    with np.errstate(invalid="ignore"):
        over = (r > hi) | (r < lo)
    if fmt.has_inf and rule != "saturate":
        over = over & ~xp.isinf(x)                 # inf inputs stay inf
    if rule == "raise" or not bool(over.any()):
        return r, over
    if rule == "inf":
        return xp.where(over, xp.where(r > 0, math.inf, -math.inf), r), over
    if rule == "nan":
        return xp.where(over, math.nan, r), over
    return xp.clip(r, lo, hi), over               # NaN stays NaN


def _check_nan(x: Any, fmt: Format, xp: Any) -> None:
    if fmt.has_nan:
        return
    bad = xp.isnan(x)
    if bool(bad.any()):
        i, _ = _first(bad)
        raise ValueError(f"NaN at flat index {i} has no {fmt.name} value")


def _saturated_max(r: Any, x: Any, fmt: Format, rule: Overflow) -> Any:
    """Mask of the results that must be ``fmt``'s max exactly although float64 cannot hold it
    (int64: 2**63 - 1); None when there are none."""
    lo, hi = float64_range(fmt)
    if Fraction(hi) == fmt.max_exact or rule != "saturate":
        return None
    with np.errstate(invalid="ignore"):
        return x > hi


# ---- numpy ---------------------------------------------------------------------------------
def _np_round_float(a: np.ndarray, fmt: Format) -> np.ndarray:
    """RNE of float64 ``a`` onto the float format's grid, unbounded exponent above."""
    if fmt.name == "fp64":
        return a.copy()
    _, e = np.frexp(a)  # a = f * 2**e with 0.5 <= |f| < 1, so the binade exponent is e - 1
    qexp = np.maximum(e - 1, fmt.emin) - fmt.mantissa_bits
    with np.errstate(invalid="ignore", over="ignore"):  # overflow to inf is the IEEE answer
        return np.ldexp(np.rint(np.ldexp(a, -qexp)), qexp)


def _beyond_float64(a: np.ndarray) -> np.ndarray | None:
    """Mask of the elements float64 cannot hold exactly (int64/uint64 beyond 2**53, long
    double), which must not be rounded twice; None when there are none."""
    if a.dtype.kind in "iu" and a.dtype.itemsize == 8:
        mask = (a > 2**53) | (a < -(2**53))
    elif a.dtype.kind == "f" and a.dtype.itemsize > 8:
        with np.errstate(over="ignore"):
            mask = (a != a.astype(np.float64)) & ~np.isnan(a)
    else:
        return None
    return np.asarray(mask) if mask.any() else None


def _round_rational(q: Fraction, fmt: Format, rule: Overflow) -> float | int:
    """``q`` rounded once, exactly, into ``fmt`` under the overflow rule (for inputs that
    float64 cannot carry: big integers, long doubles)."""
    r = round_exact(q, fmt)
    if fmt.lowest_exact <= r <= fmt.max_exact:
        return fmt.as_number(r)
    if rule == "raise":
        raise RangeOverflowError("round_to", (), q, fmt.lowest, fmt.max, what="value",
                                 hint=f"it overflows {fmt.name}")
    if rule == "inf":
        return math.inf if r > 0 else -math.inf
    if rule == "nan":
        return math.nan
    return fmt.as_number(fmt.max_exact if r > 0 else fmt.lowest_exact)


def _round_numpy(a: np.ndarray, fmt: Format, rule: Overflow) -> np.ndarray:
    if a.dtype.kind in "bcmMOSUa" or (a.dtype.kind == "V" and _source(a.dtype) is None):
        raise TypeError(f"cannot round an array of dtype {a.dtype} to {fmt.name}")
    src = _source(a.dtype)
    out_fmt = get(_container_name(src, a.dtype.kind in "iu", fmt))
    if src is not None and not src.is_float and _holds(fmt, src):
        return a.astype(out_fmt.numpy_dtype)        # an integer format holding every input
    beyond = _beyond_float64(a)
    x = a.astype(np.float64)
    if beyond is not None:
        x[beyond] = 0.0                 # rounded exactly below, never through float64
    _check_nan(x, fmt, np)
    # ufuncs return numpy scalars for 0-d input; keep an array so masks can assign into it
    # (+ 0.0 turns rint's -0.0 into 0: integers have no negative zero)
    r = np.asarray(_np_round_float(x, fmt) if fmt.is_float else np.rint(x) + 0.0)
    sat = _saturated_max(r, x, fmt, rule)
    r, over = _apply_overflow(r, x, fmt, rule, np)
    if rule == "raise" and over.any():
        _raise_overflow(over, x, fmt)
    out = np.asarray(r).astype(out_fmt.numpy_dtype)
    if sat is not None:
        out[sat] = fmt.max
    if beyond is not None:
        for j in np.flatnonzero(beyond):
            i = np.unravel_index(j, a.shape)
            v = a[i]
            q = Fraction(int(v)) if a.dtype.kind in "iu" else Fraction(*v.as_integer_ratio())
            out[i] = _round_rational(q, fmt, rule)
    return out


# ---- torch ---------------------------------------------------------------------------------
def _round_torch_float64(x, fmt: Format):
    """RNE of float64 tensor ``x`` onto the format's grid (unbounded above)."""
    import torch

    if not fmt.is_float:
        return torch.round(x) + 0.0                 # integers have no -0.0
    if fmt.name == "fp64":
        return x.clone()
    if fmt.name == "fp32":
        return x.to(torch.float32).to(torch.float64)    # float64 -> float32 is correctly rounded
    _, e = torch.frexp(x)
    qexp = torch.clamp_min(e.to(torch.int64) - 1, fmt.emin) - fmt.mantissa_bits
    scale = torch.ldexp(torch.ones_like(x), qexp)
    # Division by a power of two is exact; torch.round is round-half-to-even.
    return torch.round(x / scale) * scale


def _fast_torch(t, fmt: Format, rule: Overflow):
    """One native op for the float32 casts torch does correctly; None where there is none."""
    import torch

    if not (fmt.is_float and rule == default_overflow(fmt) and t.dtype == torch.float32):
        return None
    if fmt.name in ("fp16", "bf16"):
        # float32 -> fp16/bf16 is a single correctly rounded cast in torch (IEEE overflow).
        return t.to(fmt.torch_dtype).to(torch.float32)
    if fmt.name == "tf32":
        return tf32_from_float32(t)
    if fmt.name == "fp32":
        return t.clone()
    if fmt.name == "fp64":
        return t.to(torch.float64)                  # float32 does not hold every fp64 value
    return None


def _round_torch(t, fmt: Format, rule: Overflow):
    import torch

    if t.dtype == torch.bool or t.is_complex():
        raise TypeError(f"cannot round a tensor of dtype {t.dtype} to {fmt.name}")
    src = _source(t.dtype)
    out_fmt = get(_container_name(src, not t.dtype.is_floating_point, fmt))
    out_dtype = getattr(torch, out_fmt.torch_dtype_name)
    t = t.detach()
    if src is not None and not src.is_float and _holds(fmt, src):
        return t.to(out_dtype, copy=True)           # an integer format holding every input
    if t.dtype in (torch.int64, torch.uint64) and t.numel() and \
            bool(((t > 2**53) | (t < -(2**53))).any()):
        # float64 would round these first: the numpy path rounds them exactly, once
        r = _round_numpy(t.cpu().numpy(), fmt, rule)
        return torch.from_numpy(r).to(device=t.device, dtype=out_dtype)
    fast = _fast_torch(t, fmt, rule)
    if fast is not None:
        return fast
    if fmt.name == "fp64" and t.dtype == torch.float64 and rule == default_overflow(fmt):
        return t.clone()
    return _round_torch_general(t, fmt, rule, out_dtype)


def _round_torch_general(t, fmt: Format, rule: Overflow, out_dtype):
    """Exact float64 arithmetic (the numpy path's algorithm), chunk by chunk on CPU threads
    (`numfmt.threads.run_chunks`: fast on a shared machine), in one pass per op elsewhere."""
    import torch

    src = t.contiguous().reshape(-1)
    _check_nan(src, fmt, torch)
    out = torch.empty(src.shape, dtype=out_dtype, device=src.device)
    over_all = torch.empty(src.shape, dtype=torch.bool, device=src.device) \
        if rule == "raise" else None

    def job(lo: int, hi: int) -> None:
        x = src[lo:hi].to(torch.float64)
        r = _round_torch_float64(x, fmt)
        sat = _saturated_max(r, x, fmt, rule)
        r, over = _apply_overflow(r, x, fmt, rule, torch)
        if over_all is not None:
            over_all[lo:hi] = over
        out[lo:hi] = r
        if sat is not None:
            out[lo:hi][sat] = fmt.max

    if src.device.type == "cpu":
        run_chunks(job, src.numel())
    else:
        job(0, src.numel())
    if over_all is not None and bool(over_all.any()):
        _raise_overflow(over_all.view(t.shape), t, fmt)
    return out.view(t.shape)


def _straight_through(x, r):
    """``r`` as the output of a graph node whose gradient with respect to ``x`` is 1."""
    import torch

    class StraightThrough(torch.autograd.Function):
        @staticmethod
        def forward(ctx, inp, rounded):            # noqa: D102 - torch's protocol
            ctx.in_dtype = inp.dtype
            return rounded

        @staticmethod
        def backward(ctx, grad):                   # noqa: D102
            return grad.to(ctx.in_dtype), None

    return StraightThrough.apply(x, r)


# ---- public --------------------------------------------------------------------------------
def _round_python(x: Any, f: Format, rule: Overflow) -> Any:
    if isinstance(x, bool):
        raise TypeError("cannot round a bool")
    if isinstance(x, int) and (abs(x) > 2**53 or not f.is_float):
        return _round_rational(Fraction(x), f, rule)    # float(x) would round a big int first
    if isinstance(x, (int, float)):
        r = _round_numpy(np.asarray(float(x), dtype=np.float64), f, rule)[()]
        return r.item() if not f.is_float else float(r)
    if isinstance(x, (list, tuple)):
        try:
            arr = np.asarray(x)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"cannot round {type(x).__name__} of non-numbers: {exc}") from None
        if arr.dtype == object and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                       for v in arr.ravel()):   # ints beyond int64
            flat = [float(round_to(v, f, overflow=rule)) for v in arr.ravel()]
            return np.array(flat, dtype=np.float64).reshape(arr.shape)
        if arr.dtype.kind not in "iuf":
            raise TypeError(f"cannot round {type(x).__name__} of {arr.dtype} values")
        if _beyond_float64(arr) is not None:
            return _round_numpy(arr, f, rule).astype(np.float64)
        return _round_numpy(arr.astype(np.float64), f, rule)
    raise TypeError(f"round_to takes a float, int, numpy array or torch tensor, "
                    f"not {type(x).__name__}")


def round_to(x: Any, fmt: Any, *, overflow: OverflowPolicy | Overflow | None = None) -> Any:
    """Round ``x`` to the nearest value of ``fmt`` (ties to even), in the same container.

    Parameters
    ----------
    x : int, float, list, tuple, numpy scalar or array, or torch.Tensor
        Any float or int dtype; never modified. Lists/tuples give a float64 numpy array.
    fmt : Format or anything `numfmt.get` accepts
        Name, alias, Format, torch/numpy/ml_dtypes dtype.
    overflow : OverflowPolicy or str, optional
        What a finite value beyond the range becomes: ``"inf"`` (IEEE), ``"nan"``,
        ``"saturate"`` (clamp to [lowest, max]) or ``"raise"``. Default
        `default_overflow(fmt)`. Integer formats take ``"saturate"`` (default) or ``"raise"``.

    Returns
    -------
    same container as ``x``
        Exactly representable in ``fmt``. Held in the input's dtype when that dtype holds every
        value of ``fmt`` (float32 stays float32 for bf16/fp16/tf32/fp8), else in float32 or
        float64; integer formats: the input's int dtype or int64, and int64 also for float
        input into a format float64 cannot hold (int64). Python numbers give a Python float
        (an int for integer formats).

    Raises
    ------
    RangeOverflowError
        (a subclass of OverflowError) for ``overflow="raise"``, naming the first offending
        index and value.
    ValueError
        NaN into a format without NaN (integers, FP6, FP4); an overflow rule the format cannot
        follow ("inf" without inf, "nan" without NaN); an unknown rule.
    TypeError
        For inputs that are not numbers.

    Notes
    -----
    * Rounding is to nearest, ties to even, once, from the input's own precision (float64,
      int64 and Python ints are never routed through float32 or float64 first).
    * Subnormals are rounded on the subnormal grid; NaN passes through (float formats);
      -0 keeps its sign (integers have no -0).
    * Infinite inputs: +-inf stays +-inf where the format has inf, under every rule except
      ``"saturate"``, which clamps it to +-max like any overflow; ``"raise"`` raises only for
      finite values where the format has inf. Where the format has no inf, +-inf meets the
      rule as an overflow: NaN (``"nan"``), +-max (``"saturate"``) or an error (``"raise"``).
    * Autograd: a tensor that requires grad gives a result that requires grad, with a
      straight-through gradient of exactly 1 everywhere (saturated and overflowed elements
      too), for every format: what quantization-aware training expects.

    Examples
    --------
    >>> round_to(1 / 3, "fp16")
    0.333251953125
    >>> round_to(1e6, "fp16", overflow="saturate")
    65504.0
    """
    f = get(fmt)
    rule = _check_overflow(f, overflow)
    if type(x).__module__.startswith("torch"):
        import torch

        if isinstance(x, torch.Tensor):
            r = _round_torch(x, f, rule)
            if x.requires_grad and torch.is_grad_enabled() and r.is_floating_point():
                return _straight_through(x, r)
            return r
    if isinstance(x, np.ndarray):
        return _round_numpy(x, f, rule)
    if isinstance(x, np.generic):
        return _round_numpy(np.asarray(x), f, rule)[()]
    return _round_python(x, f, rule)
