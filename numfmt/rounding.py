"""`round_to`: correct round-to-nearest-even into a format, for floats, numpy arrays and tensors.

The value is rounded once, straight from the input's own precision into the target format (no
detour through float32, which double-rounds float64 inputs near halfway points). The result is
returned in the same container, held in a dtype wide enough to hold every value of the format.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any, Literal

import numpy as np

from numfmt.format import Format
from numfmt.registry import get

Overflow = Literal["inf", "nan", "saturate", "raise"]

__all__ = ["round_to", "default_overflow", "Overflow"]


def default_overflow(fmt: Format) -> Overflow:
    """The format's standard rule for a finite value that rounds beyond its range.

    IEEE formats give infinity; FP8 E4M3FN (no inf) gives NaN, as ml_dtypes and the OCP spec's
    non-saturating mode do; formats with neither inf nor NaN (FP6, FP4) and integers saturate.
    """
    if not fmt.is_float:
        return "saturate"
    if fmt.has_inf:
        return "inf"
    return "nan" if fmt.has_nan else "saturate"


def _check_overflow(fmt: Format, overflow: str | None) -> Overflow:
    rule = default_overflow(fmt) if overflow is None else overflow
    allowed = ("saturate", "raise") if not fmt.is_float else ("inf", "nan", "saturate", "raise")
    if rule not in allowed:
        raise ValueError(f"overflow={rule!r} is not a rule for {fmt.name}; choose one of {allowed}")
    if rule == "inf" and not fmt.has_inf:
        raise ValueError(f"{fmt.name} has no infinity: overflow='inf' is impossible")
    if rule == "nan" and not fmt.has_nan:
        raise ValueError(f"{fmt.name} has no NaN: overflow='nan' is impossible")
    return rule  # type: ignore[return-value]


def _holds(container: Format, fmt: Format) -> bool:
    """Whether every value of ``fmt`` is exactly a value of the float format ``container``."""
    if not container.is_float:
        return (not fmt.is_float and container.lowest_exact <= fmt.lowest_exact
                and fmt.max_exact <= container.max_exact)
    return (container.precision_bits >= fmt.precision_bits
            and container.max_exact >= fmt.max_exact
            and container.smallest_subnormal_exact <= fmt.smallest_subnormal_exact)


# ---- numpy ---------------------------------------------------------------------------------
def _np_round_float(a: np.ndarray, fmt: Format) -> np.ndarray:
    """RNE of float64 ``a`` onto the float format's grid, unbounded exponent above."""
    if fmt.name == "fp64":
        return a.copy()
    _, e = np.frexp(a)  # a = f * 2**e with 0.5 <= |f| < 1, so the binade exponent is e - 1
    qexp = np.maximum(e - 1, fmt.emin) - fmt.mantissa_bits
    with np.errstate(invalid="ignore", over="ignore"):  # overflow to inf is the IEEE answer
        return np.ldexp(np.rint(np.ldexp(a, -qexp)), qexp)


def _np_apply_overflow(r: np.ndarray, fmt: Format, rule: Overflow, src: np.ndarray) -> np.ndarray:
    """Apply the overflow rule in place to the fresh array ``r`` (rounded from ``src``)."""
    if not fmt.has_nan:                                # ints, and FP6/FP4 (no NaN code)
        bad = np.isnan(src)
        if bad.any():
            i = int(np.flatnonzero(bad.ravel())[0])
            raise ValueError(f"NaN at flat index {i} has no {fmt.name} value")
    with np.errstate(invalid="ignore"):
        over = (r > fmt.max) | (r < fmt.lowest)         # ints: lowest is not -max
    if not over.any():
        return r
    if rule == "raise":
        i = int(np.flatnonzero(over.ravel())[0])
        raise OverflowError(f"value {float(src.ravel()[i])!r} at flat index {i} overflows {fmt.name} "
                            f"(range {fmt.lowest:g}..{fmt.max:g})")
    if rule == "inf":
        r[over] = np.copysign(np.inf, r[over])
    elif rule == "nan":
        r[over] = np.nan
    else:
        r[over] = np.where(r[over] > 0, fmt.max, fmt.lowest)
    return r


def _round_numpy(a: np.ndarray, fmt: Format, rule: Overflow) -> np.ndarray:
    if a.dtype.kind in "bcmMOSUa" or (a.dtype.kind == "V" and not _is_known(a.dtype)):
        raise TypeError(f"cannot round an array of dtype {a.dtype} to {fmt.name}")
    out_dtype = _numpy_container(a.dtype, fmt)
    beyond = _beyond_float64(a)
    x = a.astype(np.float64)
    if beyond is not None:
        x[beyond] = 0.0                 # rounded exactly below, never through float64
    # ufuncs return numpy scalars for 0-d input; keep an array so masks can assign into it
    # (+ 0.0 turns rint's -0.0 into 0: integers have no negative zero)
    r = np.asarray(_np_round_float(x, fmt) if fmt.is_float else np.rint(x) + 0.0)
    r = _np_apply_overflow(r, fmt, rule, x)
    if beyond is not None:
        for j in np.flatnonzero(beyond):
            i = np.unravel_index(j, a.shape)
            v = a[i]
            q = Fraction(int(v)) if a.dtype.kind in "iu" else Fraction(*v.as_integer_ratio())
            r[i] = _round_rational(q, fmt, rule)
    return r.astype(out_dtype)


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


def _round_rational(q: Fraction, fmt: Format, rule: Overflow) -> float:
    """``q`` rounded once, exactly, into ``fmt`` under the overflow rule (for inputs that
    float64 cannot carry: big integers, long doubles)."""
    from numfmt.exact import round_exact

    r = round_exact(q, fmt)
    if fmt.lowest_exact <= r <= fmt.max_exact:
        return float(r)
    if rule == "raise":
        raise OverflowError(f"value {q} overflows {fmt.name} (range {fmt.lowest:g}..{fmt.max:g})")
    if rule == "inf":
        return math.inf if r > 0 else -math.inf
    if rule == "nan":
        return math.nan
    return float(fmt.max_exact if r > 0 else fmt.lowest_exact)


def _is_known(dtype: np.dtype) -> bool:
    try:
        get(dtype)
    except ValueError:
        return False
    return True


def _numpy_container(dtype: np.dtype, fmt: Format) -> np.dtype:
    try:
        src = get(dtype)
    except ValueError:
        src = None
    if src is not None and _holds(src, fmt) and (src.is_float or not fmt.is_float):
        return dtype
    if not fmt.is_float and dtype.kind in "iu":
        return np.dtype(np.int64)
    return np.dtype(np.float32) if _holds(get("fp32"), fmt) else np.dtype(np.float64)


# ---- torch ---------------------------------------------------------------------------------
def _torch_container(t, fmt: Format):
    import torch

    try:
        src = get(t.dtype)
    except ValueError:
        src = None
    if src is not None and _holds(src, fmt) and (src.is_float or not fmt.is_float):
        return t.dtype
    if not fmt.is_float and not t.dtype.is_floating_point:
        return torch.int64
    return torch.float32 if _holds(get("fp32"), fmt) else torch.float64


# Elements per block: a block's temporaries stay in cache, and each op is still large enough
# for torch to split it across threads (measured fastest on the 2-core CI machine).
_TF32_CHUNK = 1 << 18


def _tf32_from_fp32(t):
    """RNE of float32 -> TF32 on the bit pattern: add half an ulp (minus one unless the kept
    lsb is odd) and clear the 13 dropped bits. Exact for normals, subnormals and overflow to
    inf alike, because the encoding is monotone and the carry ripples into the exponent.

    Runs block by block so that its six passes hit cache rather than memory; NaNs are copied
    through (a NaN whose payload sits in the dropped bits would otherwise become inf)."""
    import torch

    src = t.detach().contiguous().view(-1)          # a result, not a graph node
    out = torch.empty_like(src)
    bits, obits = src.view(torch.int32), out.view(torch.int32)
    mask = torch.empty(min(_TF32_CHUNK, src.numel()), dtype=torch.bool, device=src.device)
    for i in range(0, src.numel(), _TF32_CHUNK):
        b, o = bits[i:i + _TF32_CHUNK], obits[i:i + _TF32_CHUNK]
        torch.bitwise_right_shift(b, 13, out=o)
        o.bitwise_and_(1).add_(b).add_(0xFFF).bitwise_and_(~0x1FFF)
        x, r, m = src[i:i + _TF32_CHUNK], out[i:i + _TF32_CHUNK], mask[:b.numel()]
        torch.ne(x, x, out=m)
        torch.where(m, x, r, out=r)
    return out.view(t.shape)


def _round_torch(t, fmt: Format, rule: Overflow):
    import torch

    if t.dtype == torch.bool or t.is_complex():
        raise TypeError(f"cannot round a tensor of dtype {t.dtype} to {fmt.name}")
    out_dtype = _torch_container(t, fmt)
    if t.dtype in (torch.int64, torch.uint64) and t.numel() and \
            bool(((t > 2**53) | (t < -(2**53))).any()):
        # float64 would round these first: the numpy path rounds them exactly, once
        r = _round_numpy(t.detach().cpu().numpy(), fmt, rule)
        return torch.from_numpy(r).to(device=t.device, dtype=out_dtype)
    if fmt.is_float and rule == default_overflow(fmt) and t.dtype == torch.float32:
        if fmt.name in ("fp16", "bf16"):
            # float32 -> fp16/bf16 is a single correctly rounded cast in torch (IEEE overflow).
            return t.to(fmt.torch_dtype).to(torch.float32)
        if fmt.name == "tf32":
            return _tf32_from_fp32(t)
        if fmt.name == "fp32":
            return t.clone()
        if fmt.name == "fp64":
            return t.detach().to(torch.float64)        # float32 does not hold every fp64 value
    if fmt.name == "fp64" and t.dtype == torch.float64 and rule == default_overflow(fmt):
        return t.clone()
    # General path: exact float64 arithmetic, same algorithm as numpy's.
    x = t.detach().to(torch.float64)
    if fmt.is_float and not fmt.has_nan and bool(torch.isnan(x).any()):
        i = int(torch.nonzero(torch.isnan(x).flatten())[0])
        raise ValueError(f"NaN at flat index {i} has no {fmt.name} value")
    if fmt.is_float:
        if fmt.name == "fp32":
            r = x.to(torch.float32).to(torch.float64)  # float64 -> float32 is correctly rounded
        else:
            _, e = torch.frexp(x)
            qexp = torch.clamp_min(e.to(torch.int64) - 1, fmt.emin) - fmt.mantissa_bits
            scale = torch.ldexp(torch.ones_like(x), qexp)
            # Division by a power of two is exact; torch.round is round-half-to-even.
            r = torch.round(x / scale) * scale
    else:
        if torch.isnan(x).any():
            i = int(torch.nonzero(torch.isnan(x).flatten())[0])
            raise ValueError(f"NaN at flat index {i} has no {fmt.name} value")
        r = torch.round(x) + 0.0                        # integers have no -0.0
    over = (r > fmt.max) | (r < fmt.lowest)             # ints: lowest is not -max
    if over.any():
        if rule == "raise":
            i = int(torch.nonzero(over.flatten())[0])
            raise OverflowError(f"value {x.flatten()[i].item()!r} at flat index {i} overflows "
                                f"{fmt.name} (range {fmt.lowest:g}..{fmt.max:g})")
        if rule == "inf":
            r = torch.where(over, torch.copysign(torch.full_like(r, float("inf")), r), r)
        elif rule == "nan":
            r = torch.where(over, torch.full_like(r, float("nan")), r)
        else:
            r = r.clamp(fmt.lowest, fmt.max)   # scalars stay float64 (a float32 max would round)
    return r.to(out_dtype)


# ---- public --------------------------------------------------------------------------------
def round_to(x: Any, fmt: Any, *, overflow: Overflow | None = None) -> Any:
    """Round ``x`` to the nearest value of ``fmt`` (ties to even), in the same container.

    * ``x``: a Python int/float, a numpy scalar or array, a torch tensor (any float or int
      dtype), or a list/tuple of numbers (returned as a float64 numpy array). Never modified.
    * ``fmt``: anything `numfmt.get` accepts (name, alias, torch/numpy/ml_dtypes dtype).
    * Result: exactly representable in ``fmt``; held in the input's dtype when that dtype holds
      every value of ``fmt`` (float32 stays float32 for bf16/fp16/tf32/fp8), else in float32
      or float64 (ints to int formats: the input's int dtype or int64). Python numbers give a
      Python float.
    * Subnormals are rounded on the subnormal grid; NaN passes through (float formats); -0
      keeps its sign; +-inf stays inf where the format has it.
    * ``overflow``: what a value beyond the range becomes. ``"inf"`` (IEEE), ``"nan"``,
      ``"saturate"`` (clamp to +-max, also for +-inf, as torch's FP8 cast does) or ``"raise"``
      (`OverflowError` naming the first offending index and value). Default:
      `default_overflow(fmt)`. For integer formats: ``"saturate"`` (default) or ``"raise"``;
      NaN raises ``ValueError`` as no integer holds it.
    """
    f = get(fmt)
    rule = _check_overflow(f, overflow)
    if type(x).__module__.startswith("torch"):
        import torch

        if isinstance(x, torch.Tensor):
            return _round_torch(x, f, rule)
    if isinstance(x, np.ndarray):
        return _round_numpy(x, f, rule)
    if isinstance(x, np.generic):
        r = _round_numpy(np.asarray(x), f, rule)
        return r[()]
    if isinstance(x, bool):
        raise TypeError("cannot round a bool")
    if isinstance(x, int) and abs(x) > 2**53:       # float(x) would round a big int first
        return _round_rational(Fraction(x), f, rule)
    if isinstance(x, (int, float)):
        return float(_round_numpy(np.asarray(float(x), dtype=np.float64), f, rule)[()])
    if isinstance(x, (list, tuple)):
        try:
            arr = np.asarray(x)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"cannot round {type(x).__name__} of non-numbers: {exc}") from None
        if arr.dtype == object and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                       for v in arr.ravel()):   # ints beyond int64
            flat = [round_to(v, f, overflow=rule) for v in arr.ravel()]
            return np.array(flat, dtype=np.float64).reshape(arr.shape)
        if arr.dtype.kind not in "iuf":
            raise TypeError(f"cannot round {type(x).__name__} of {arr.dtype} values")
        if _beyond_float64(arr) is not None:
            return _round_numpy(arr, f, rule).astype(np.float64)
        return _round_numpy(arr.astype(np.float64), f, rule)
    raise TypeError(f"round_to takes a float, int, numpy array or torch tensor, "
                    f"not {type(x).__name__}")
