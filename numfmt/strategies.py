"""Hypothesis strategies for every registered format: values, bit patterns, cast-breaking inputs.

hypothesis's own ``floats(width=)`` stops at 16/32/64 bits and ``from_dtype`` fails for the
ml_dtypes types; these strategies work for any format `numfmt.get` accepts (a name, alias,
`Format`, torch / numpy / ml_dtypes dtype), new registry entries included, because everything is
derived from the `Format` (its decoded bit patterns, ``bits``, ``kind``, limits).

* `values`: values of the format only (Python floats; Python ints for integer formats),
  shrinking toward simple ones (0, then 1, -1, 2, 0.5, ... then values with more significant
  bits).
* `codes`: bit patterns ``0 .. 2**bits - 1`` (every one reachable), shrinking toward 0.
* `rounding_inputs`: the inputs of a wider source format that break casts into the format
  (midpoints, their source neighbours, the overflow tie, the underflow midpoint, powers of
  two, double-rounding traps), drawn from `numfmt.cast_inputs.rounding_input_array`
  (re-exported here with `storage_dtype`).
* `arrays`: arrays of `values` in the format's storage dtype, numpy or torch.

hypothesis is imported only by this module, so ``import numfmt`` (and the cast audit) does
not need it.

Examples
--------
>>> from hypothesis import given
>>> from numfmt import strategies
>>> import numfmt
>>> @given(strategies.values("fp8_e4m3fn", allow_nan=True))
... def test_decode_roundtrip(v):
...     r = numfmt.round_to(v, "fp8_e4m3fn")
...     assert r == v or (r != r and v != v)
>>> test_decode_roundtrip()
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from numfmt.cast_inputs import rounding_input_array, storage_dtype
from numfmt.format import Format
from numfmt.registry import get

__all__ = ["values", "codes", "rounding_inputs", "rounding_input_array", "arrays",
           "storage_dtype"]

# Formats up to this many bits are drawn from their decoded table of values (2**20 codes at
# most: tf32's 19 bits fit); wider ones from hypothesis' own floats or integers.
_TABLE_BITS = 20


# ---- values -----------------------------------------------------------------------------------
def _significant_bits(v: np.ndarray) -> np.ndarray:
    """Significant bits of each finite float64 (0 for zero): 1 for powers of two."""
    frac, _ = np.frexp(np.abs(v))
    mant = np.ldexp(frac, 53).astype(np.int64)             # exact: |v| has <= 53 bits
    low_bit = mant & -mant
    return np.where(mant == 0, 0, 53 - np.log2(np.maximum(low_bit, 1)).astype(np.int64))


def _simplicity_order(v: np.ndarray) -> np.ndarray:
    """Permutation sorting finite float64 ``v`` from simple to complex: zero (+0 before -0),
    then by the number of significant bits, then by |binade| (1, 2, 0.5, 4, 0.25, ...),
    positive before negative."""
    _, exp = np.frexp(np.abs(v))
    binade = np.where(v == 0, 0, exp.astype(np.int64) - 1)
    # lexsort: the last key is the primary one
    return np.lexsort((np.signbit(v), binade < 0, np.abs(binade), _significant_bits(v)))


@lru_cache(maxsize=None)
def _value_table(fmt: Format) -> np.ndarray:
    """Every distinct finite value of ``fmt`` (-0 apart from +0 where the format has -0),
    simplest first. Read-only."""
    v = fmt.decode(np.arange(2**fmt.bits))
    v = v[np.isfinite(v)]
    _, first = np.unique(v.view(np.int64), return_index=True)    # distinct bit patterns
    v = v[np.sort(first)]
    v = v[_simplicity_order(v)]
    v.setflags(write=False)
    return v


def _check_bound(name: str, bound: Any) -> float | None:
    if bound is None:
        return None
    if isinstance(bound, bool) or not isinstance(bound, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number or None, not {type(bound).__name__}")
    b = float(bound)
    if math.isnan(b):
        raise ValueError(f"{name} must not be NaN")
    return b


def _in_bounds(v: np.ndarray, lo: float | None, hi: float | None) -> np.ndarray:
    """``lo <= v <= hi`` with -0.0 ordered just below +0.0 (hypothesis' rule for floats)."""
    keep = np.ones(v.shape, dtype=bool)
    neg_zero = (v == 0) & np.signbit(v)
    if lo is not None:
        keep &= v >= lo
        if lo == 0 and not math.copysign(1.0, lo) < 0:
            keep &= ~neg_zero
    if hi is not None:
        keep &= v <= hi
        if hi == 0 and math.copysign(1.0, hi) < 0:
            keep &= ~((v == 0) & ~np.signbit(v))
    return keep


def values(fmt: Any, *, allow_nan: bool = False, allow_infinity: bool = False,
           allow_subnormal: bool = True, min_value: float | None = None,
           max_value: float | None = None) -> st.SearchStrategy:
    """A strategy drawing values of ``fmt`` only.

    Parameters
    ----------
    fmt : Format, str, or dtype
        Anything `numfmt.get` accepts.
    allow_nan, allow_infinity : bool
        Also draw NaN / +-inf. Asking for one the format does not have is an error.
    allow_subnormal : bool
        Whether values of magnitude below the smallest normal (but not 0) are drawn.
    min_value, max_value : float, optional
        Inclusive bounds; -0.0 counts as below +0.0, so ``min_value=0.0`` excludes -0.0.

    Returns
    -------
    SearchStrategy
        Python floats (float formats; -0.0 included where the format has it) or Python ints
        (integer formats), each exactly a value of ``fmt``: ``numfmt.round_to(v, fmt) == v``.
        Formats of up to 20 bits draw a number of significant bits, then a value with that
        many (smaller binades first), so failures shrink toward simple values (0, +-1,
        powers of two, then few significant bits, or an extreme: hypothesis' shrinker is a
        heuristic, not a search). One more group holds the extremes (max, lowest, smallest
        subnormal, +-inf, NaN), so they are drawn often on purpose. Simple values are drawn
        more often than uniform sampling would. fp32 and fp64 use
        ``hypothesis.strategies.floats`` of that width.

    Raises
    ------
    ValueError
        For an unknown format, NaN/inf asked of a format without them, a NaN bound,
        ``min_value > max_value``, or bounds that hold no value of the format.
    TypeError
        For a bound that is not a real number.

    Examples
    --------
    >>> from numfmt import strategies
    >>> s = strategies.values("fp4_e2m1fn", min_value=0)
    >>> {s.example() for _ in range(200)} <= {0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0}
    True
    """
    f = get(fmt)
    lo, hi = _check_bound("min_value", min_value), _check_bound("max_value", max_value)
    if lo is not None and hi is not None and lo > hi:
        raise ValueError(f"min_value={lo!r} is greater than max_value={hi!r}")
    if allow_nan and not f.has_nan:
        raise ValueError(f"{f.name} has no NaN: allow_nan=True is impossible")
    if allow_infinity and not f.has_inf:
        raise ValueError(f"{f.name} has no infinity: allow_infinity=True is impossible")
    if not f.is_float:
        return _integer_values(f, lo, hi)
    if f.bits <= _TABLE_BITS:
        # the cache key carries the bounds as hex: 0.0 == -0.0 would share one entry
        return _table_values(f, allow_nan, allow_infinity, allow_subnormal,
                             None if lo is None else lo.hex(), None if hi is None else hi.hex())
    if (f.bits, f.exponent_bits) in ((32, 8), (64, 11)) and f.has_inf and f.has_subnormals:
        return _ieee_values(f, allow_nan, allow_infinity, allow_subnormal, lo, hi)
    raise ValueError(f"{f.name}: no value strategy for a {f.bits}-bit non-IEEE float format")


def _integer_values(f: Format, lo: float | None, hi: float | None) -> st.SearchStrategy:
    low, high = int(f.lowest_exact), int(f.max_exact)
    if lo is not None:
        low = max(low, math.ceil(lo))
    if hi is not None:
        high = min(high, math.floor(hi))
    if low > high:
        raise ValueError(f"no {f.name} value lies in [{lo}, {hi}]")
    return st.integers(low, high)    # hypothesis shrinks integers toward 0


@lru_cache(maxsize=256)      # strategies are immutable: build each one once
def _table_values(f: Format, allow_nan: bool, allow_infinity: bool, allow_subnormal: bool,
                  lo_hex: str | None, hi_hex: str | None) -> st.SearchStrategy:
    lo = None if lo_hex is None else float.fromhex(lo_hex)
    hi = None if hi_hex is None else float.fromhex(hi_hex)
    table = _value_table(f)
    keep = _in_bounds(table, lo, hi)
    if not allow_subnormal:
        keep &= ~((table != 0) & (np.abs(table) < f.tiny))
    pool = table[keep]
    specials = [v for v in (math.inf, -math.inf) if allow_infinity and bool(_in_bounds(
        np.array([v]), lo, hi)[0])] + ([math.nan] if allow_nan else [])
    if pool.size == 0 and not specials:
        raise ValueError(f"no {f.name} value lies in [{lo}, {hi}] with "
                         f"allow_subnormal={allow_subnormal}")
    edges: list[float] = []
    if pool.size:
        pool = pool.copy()        # the strategy closes over its own array
        mag = np.abs(pool[pool != 0])
        ends = {float(pool.min()), float(pool.max())}
        if mag.size:
            ends |= {float(v) for v in pool[np.abs(pool) == mag.min()]}
        edges = sorted(ends, key=abs)
    edges += specials
    if pool.size == 0:
        return st.sampled_from(edges)
    # Two draws: a group of equally many significant bits (0: zero, 1: powers of two, ...;
    # the last group is the edges), then a value in it, simplest first. Both shrink toward 0,
    # so failures shrink to simple values and the edges are still drawn often.
    cuts = np.flatnonzero(np.diff(_significant_bits(pool))) + 1
    groups = [*np.split(pool, cuts), np.array(edges)]

    def in_group(g: int) -> st.SearchStrategy:
        grp = groups[g]
        return st.integers(0, grp.size - 1).map(lambda j: float(grp[j]))
    return st.integers(0, len(groups) - 1).flatmap(in_group)


def _ieee_values(f: Format, allow_nan: bool, allow_infinity: bool, allow_subnormal: bool,
                 lo: float | None, hi: float | None) -> st.SearchStrategy:
    width = f.bits
    cast = np.float32 if width == 32 else np.float64
    # hypothesis wants bounds of the width: snap them inward onto the format (beyond the
    # finite range a bound only decides whether the infinity of that side is drawn)
    if lo is not None:
        if lo < f.lowest:
            lo = None if allow_infinity or lo == -math.inf else f.lowest
        elif lo > f.max:
            lo = math.inf
        elif float(cast(lo)) != lo:
            r = cast(lo)            # compared as float64: numpy would compare in float32
            lo = float(r) if float(r) > lo else float(np.nextafter(r, cast(np.inf)))
    if hi is not None:
        if hi > f.max:
            hi = None if allow_infinity or hi == math.inf else f.max
        elif hi < f.lowest:
            hi = -math.inf
        elif float(cast(hi)) != hi:
            r = cast(hi)
            hi = float(r) if float(r) < hi else float(np.nextafter(r, cast(-np.inf)))
    if (lo is not None and hi is not None and lo > hi) or (
            not allow_infinity and math.inf in (lo, -hi if hi is not None else None)):
        raise ValueError(f"no {f.name} value lies in [{lo}, {hi}]")
    s = st.floats(min_value=lo, max_value=hi, allow_nan=allow_nan,
                  allow_infinity=allow_infinity, allow_subnormal=allow_subnormal, width=width)
    if allow_subnormal:
        return s
    tiny = f.tiny       # hypothesis returns a subnormal bound itself when min == max
    return s.filter(lambda v: not 0 < abs(v) < tiny)


# ---- codes ------------------------------------------------------------------------------------
def codes(fmt: Any) -> st.SearchStrategy:
    """A strategy drawing bit patterns of ``fmt``: Python ints in ``[0, 2**bits)``.

    Every pattern is reachable (NaN payloads, -0, the unused codes of formats with few
    specials alike); ``Format.decode`` turns them into values. Shrinks toward 0, the +0 code
    of the float formats.

    Examples
    --------
    >>> from numfmt import strategies
    >>> 0 <= strategies.codes("fp8_e5m2").example() < 256
    True
    """
    f = get(fmt)
    return st.integers(0, 2**f.bits - 1)


def rounding_inputs(fmt: Any, source: Any = "float64") -> st.SearchStrategy:
    """A strategy drawing from `rounding_input_array` (as Python floats), shrinking toward
    the inputs of smallest magnitude.

    Parameters
    ----------
    fmt : Format, str, or dtype
        The target format (anything `numfmt.get` accepts).
    source : Format, str, or dtype
        fp64 (default), fp32, or a float format of up to 20 bits; every draw is a value of it.

    Returns
    -------
    SearchStrategy
        Python floats (finite, +-0 included).

    Raises
    ------
    ValueError
        As `rounding_input_array`.

    Examples
    --------
    >>> from numfmt import strategies
    >>> x = strategies.rounding_inputs("fp8_e4m3fn", "float32").example()
    >>> isinstance(x, float)
    True
    """
    v = _by_magnitude(get(fmt), get(source))
    return st.integers(0, v.size - 1).map(lambda i: float(v[i]))


@lru_cache(maxsize=32)
def _by_magnitude(f: Format, source: Format) -> np.ndarray:
    v = rounding_input_array(f, source).astype(np.float64)
    v = v[np.argsort(np.abs(v), kind="stable")]
    v.setflags(write=False)
    return v


# ---- arrays -----------------------------------------------------------------------------------
def arrays(fmt: Any, shape: Any, backend: str = "numpy", **value_options: Any
           ) -> st.SearchStrategy:
    """A strategy for arrays of values of ``fmt`` in its storage dtype.

    Parameters
    ----------
    fmt : Format, str, or dtype
        Anything `numfmt.get` accepts.
    shape : int, tuple of int, or SearchStrategy
        As ``hypothesis.extra.numpy.arrays`` takes it.
    backend : {"numpy", "torch"}
        numpy arrays or CPU torch tensors, in ``storage_dtype(fmt, backend)``.
    **value_options
        Passed to `values` (``allow_nan``, ``min_value``, ...).

    Returns
    -------
    SearchStrategy
        Arrays whose every element is a value of ``fmt`` (``-0.0`` and NaN kept).

    Examples
    --------
    >>> import ml_dtypes
    >>> from numfmt import strategies
    >>> strategies.arrays("fp8_e5m2", (2, 3)).example().dtype == ml_dtypes.float8_e5m2
    True
    """
    f = get(fmt)
    target = storage_dtype(f, backend)
    elements = values(f, **value_options)
    carrier = np.float64 if f.is_float else np.int64
    base = hnp.arrays(carrier, shape, elements=elements)
    if backend == "numpy":
        return base.map(lambda a: a.astype(target))

    def to_torch(a: np.ndarray) -> Any:
        import torch

        return torch.from_numpy(a).to(target)
    return base.map(to_torch)
