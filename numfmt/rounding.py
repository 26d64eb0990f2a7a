"""`round_to`: correct rounding into a format, for Python numbers, numpy arrays and tensors.

The value is rounded once, straight from the input's own precision into the target format (no
detour through float32, which double-rounds float64 inputs near halfway points). The result is
returned in the same container, held in a dtype wide enough to hold every value of the format.
Tensors that require grad get a straight-through gradient (1) through the rounding.

The contract of `round_to`:

* Rounding is done once, from the input's own precision (float64, int64 and Python ints
  are never routed through float32 or float64 first), in the mode asked for.
* Overflow follows IEEE 754 where the mode directs it: ``"toward_zero"`` (and
  ``"odd"``) never overflow (a value beyond the range gives +-max), ``"up"`` overflows only
  on the positive side (below the lowest value it gives the lowest), ``"down"`` only on the
  negative side; the ``overflow`` rule applies where the mode rounds past the range.
* Unsigned formats (uint*, E8M0, P3109 unsigned): a negative value that rounds to a nonzero
  magnitude lies below the range (overflow on the negative side); tiny negatives give +0.
  Formats without -0 (the fnuz layouts, P3109 signed) give +0 for every zero result.
  E8M0 has no zero: positive values below 2**-127 give 2**-127 (its nearest, in every
  mode); 0 lies below its range. Without fraction bits (E8M0, P3109 p=1), nearest_even and
  odd look at the parity of the code (gfloat's choice; ml_dtypes and torch round E8M0 ties
  up).
* Subnormals are rounded on the subnormal grid; NaN passes through (float formats);
  -0 keeps its sign (integers have no -0).
* Infinite inputs: +-inf stays +-inf where the format has inf, under every rule except
  ``"saturate"``, which clamps it to +-max like any overflow; ``"raise"`` raises only for
  finite values where the format has inf. Where the format has no inf, +-inf meets the
  rule as an overflow: NaN (``"nan"``), +-max (``"saturate"``) or an error (``"raise"``).
* Autograd: a tensor that requires grad gives a result that requires grad, with a
  straight-through gradient of exactly 1 everywhere (saturated and overflowed elements
  too), for every format: what quantization-aware training expects.
* ``dtype=``: the same values held in another dtype (a torch dtype for tensors, a numpy or
  ml_dtypes one for arrays and lists). Into the format's own storage dtype (``torch.bfloat16``
  for "bf16", ``torch.float8_e4m3fn`` for "fp8_e4m3fn", ``ml_dtypes.float4_e2m1fn``, ...) the
  compiled loop writes the codes directly, as ``x.to(dtype)`` does, in any mode; any other
  dtype that holds the format gets the result converted, which is exact.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any, Literal

import numpy as np

from numfmt.exact import RoundingMode
from numfmt.format import Format
from numfmt.modes import STOCHASTIC, check_mode
from numfmt.overflow import OverflowPolicy, as_policy
from numfmt.rangerule import Overflow, default_overflow, holds
from numfmt.registry import get
from numfmt.round_numpy import beyond_float64, round_array, round_array_as, round_rational
from numfmt.round_torch import round_tensor, round_tensor_as, straight_through
from numfmt.stochastic import resolve_seed, uniforms

__all__ = ["round_to", "default_overflow", "Overflow"]


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


def _round_python(x: Any, f: Format, rule: Overflow, mode: str, seed: int | None) -> Any:
    u = None if seed is None else float(uniforms(seed, 0, 1)[0])     # element 0's uniform
    if isinstance(x, bool):
        raise TypeError("cannot round a bool")
    if isinstance(x, Fraction):
        return round_rational(x, f, rule, mode, u)
    if isinstance(x, int) and (abs(x) > 2**53 or not f.is_float):
        return round_rational(Fraction(x), f, rule, mode, u)   # float(x) would round a big int
    if isinstance(x, (int, float)):
        r = round_array(np.asarray(float(x), dtype=np.float64), f, rule, mode, seed)[()]
        return r.item() if not f.is_float else float(r)
    if isinstance(x, (list, tuple)):
        try:
            arr = np.asarray(x)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"cannot round {type(x).__name__} of non-numbers: {exc}") from None
        if arr.dtype == object and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                       for v in arr.ravel()):   # ints beyond int64
            if mode == STOCHASTIC:
                u_all = uniforms(seed, 0, arr.size)
                flat = [float(round_rational(Fraction(v), f, rule, mode, u_all[i]))
                        for i, v in enumerate(arr.ravel())]
            else:
                flat = [float(round_rational(Fraction(v), f, rule, mode)) for v in arr.ravel()]
            return np.array(flat, dtype=np.float64).reshape(arr.shape)
        if arr.dtype.kind not in "iuf":
            raise TypeError(f"cannot round {type(x).__name__} of {arr.dtype} values")
        if beyond_float64(arr) is not None:
            return round_array(arr, f, rule, mode, seed).astype(np.float64)
        return round_array(arr.astype(np.float64), f, rule, mode, seed)
    raise TypeError(f"round_to takes a float, int, numpy array or torch tensor, "
                    f"not {type(x).__name__}")


def round_to(x: Any, fmt: Any, *, overflow: OverflowPolicy | Overflow | None = None,
             rounding: RoundingMode | Literal["stochastic"] = "nearest_even",
             seed: int | None = None, generator: Any = None, dtype: Any = None) -> Any:
    """Round ``x`` into ``fmt`` (by default to nearest, ties to even), in the same container.

    Parameters
    ----------
    x : int, float, Fraction, list, tuple, numpy scalar or array, or torch.Tensor
        Any float or int dtype; never modified. Lists/tuples give a float64 numpy array;
        a Fraction is rounded exactly (a Python float or int results).
    fmt : Format or anything `numfmt.get` accepts
        Name, alias, Format, torch/numpy/ml_dtypes dtype.
    overflow : OverflowPolicy or str, optional
        What a finite value beyond the range becomes: ``"inf"`` (IEEE), ``"nan"``,
        ``"saturate"`` (clamp to [lowest, max]) or ``"raise"``. Default
        `default_overflow(fmt)`. Integer formats take ``"saturate"`` (default) or ``"raise"``.
    rounding : str
        ``"nearest_even"`` (default), ``"nearest_away"``, ``"toward_zero"``, ``"up"`` (toward
        +inf), ``"down"`` (toward -inf), ``"odd"`` or ``"stochastic"`` (see `numfmt.modes`).
    seed : int, optional
        ``"stochastic"`` only: element i (flat, row-major) rounds up iff its counter-based
        uniform u_i (`numfmt.stochastic`) is below its distance from the lower neighbour in
        units of the spacing. The same seed gives the same bits for numpy and torch inputs
        and any thread count.
    generator : numpy.random.Generator or torch.Generator, optional
        ``"stochastic"`` only: draws the seed (advancing the generator). Neither given: a fresh
        random seed.
    dtype : torch.dtype (tensors) or numpy / ml_dtypes dtype (arrays, lists), optional
        Hold the result in this dtype instead of the container below: any dtype whose format
        holds every value of ``fmt``, its infinities and NaN included (see the module
        docstring; e.g. ``torch.bfloat16`` for "bf16", ``torch.float8_e4m3fn``).

    Returns
    -------
    same container as ``x``
        Exactly representable in ``fmt``. Held in the input's dtype when that dtype holds every
        value of ``fmt`` (float32 stays float32 for bf16/fp16/tf32/fp8), else in float32 or
        float64; integer formats: the input's int dtype or int64, and int64 also for float
        input into a format float64 cannot hold (int64). Python numbers give a Python float
        (an int for integer formats). With ``dtype=``: that dtype.

    Raises
    ------
    RangeOverflowError
        (a subclass of OverflowError) for ``overflow="raise"``, naming the first offending
        index and value.
    ValueError
        NaN into a format without NaN (integers, FP6, FP4); an overflow rule the format cannot
        follow ("inf" without inf, "nan" without NaN); an unknown rule; a ``dtype`` numfmt
        does not know, or one that cannot hold every value of ``fmt``.
    TypeError
        For inputs that are not numbers; ``dtype=`` for a Python number, or of the wrong
        library (a numpy dtype for a tensor).

    Notes
    -----
    The full contract (single rounding, IEEE overflow by direction, unsigned / fnuz / E8M0
    specifics, infinite inputs, the straight-through gradient) is in the module docstring.

    Examples
    --------
    >>> round_to(1 / 3, "fp16")
    0.333251953125
    >>> round_to(1e6, "fp16", overflow="saturate")
    65504.0
    """
    f = get(fmt)
    rule = _check_overflow(f, overflow)
    mode = check_mode(rounding)
    if mode != STOCHASTIC and (seed is not None or generator is not None):
        raise ValueError("seed= and generator= belong to rounding='stochastic'")
    seed = resolve_seed(seed, generator) if mode == STOCHASTIC else None
    if type(x).__module__.startswith("torch"):
        import torch

        if isinstance(x, torch.Tensor):
            return _round_tensor_to(x, f, rule, mode, seed, dtype)
    return _round_other(x, f, rule, mode, seed, dtype)


def _round_other(x: Any, f: Format, rule: Overflow, mode: str, seed: int | None,
                 dtype: Any) -> Any:
    """`round_to` of numpy arrays and scalars, lists and tuples, and Python numbers."""
    if isinstance(x, (list, tuple)) and dtype is not None:
        x = np.asarray(x, dtype=np.float64)
    if isinstance(x, np.ndarray):
        if dtype is not None:
            return round_array_as(x, f, rule, mode, seed, _result_dtype(dtype, f, np))
        return round_array(x, f, rule, mode, seed)
    if dtype is not None:
        raise TypeError("dtype= applies to numpy arrays, lists and torch tensors, not to "
                        f"{type(x).__name__}")
    if isinstance(x, np.generic):
        return round_array(np.asarray(x), f, rule, mode, seed)[()]
    return _round_python(x, f, rule, mode, seed)


def _round_tensor_to(x: Any, f: Format, rule: Overflow, mode: str, seed: int | None,
                     dtype: Any) -> Any:
    """`round_to` of a tensor: the straight-through gradient where autograd records, and the
    result in ``dtype`` when one is given."""
    import torch

    want = None if dtype is None else _result_dtype(dtype, f, torch)
    if x.requires_grad and torch.is_grad_enabled():
        r = round_tensor(x, f, rule, mode, seed)
        r = straight_through(x, r) if r.is_floating_point() else r
        return r if want is None else r.to(want)
    if want is not None:
        return round_tensor_as(x, f, rule, mode, seed, want)
    return round_tensor(x, f, rule, mode, seed)


def _result_dtype(dtype: Any, f: Format, lib: Any) -> Any:
    """``dtype`` as the library's dtype, checked to hold every value of ``f``."""
    if lib is np:
        try:
            want = np.dtype(dtype)
        except TypeError:
            raise TypeError(f"dtype= for an array must be a numpy (or ml_dtypes) dtype, not "
                            f"{dtype!r}") from None
    else:
        if not isinstance(dtype, lib.dtype):
            raise TypeError(f"dtype= for a tensor must be a torch.dtype, not {dtype!r}")
        want = dtype
    try:
        held = get(want)
    except (KeyError, ValueError, TypeError):
        raise ValueError(f"dtype {dtype!r} is not a number format numfmt knows") from None
    if not holds(held, f) or (f.has_inf and not held.has_inf) or \
            (f.has_nan and not held.has_nan):
        raise ValueError(f"dtype {dtype!r} ({held.name}) cannot hold every value of {f.name}; "
                         f"its own storage dtype or a wider one can")
    return want
