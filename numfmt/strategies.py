"""Hypothesis strategies for every registered format: values, bit patterns, cast-breaking inputs.

hypothesis's own ``floats(width=)`` stops at 16/32/64 bits and ``from_dtype`` fails for the
ml_dtypes types; these strategies work for any format `numfmt.get` accepts (a name, alias,
`Format`, torch / numpy / ml_dtypes dtype), new registry entries included, because everything is
derived from the `Format` (its decoded bit patterns, ``bits``, ``kind``, limits).

* `values`: values of the format only (Python floats; Python ints for integer formats),
  shrinking toward simple ones (0, then 1, -1, 2, 0.5, ... then values with more significant
  bits).
* `codes`: bit patterns ``0 .. 2**bits - 1`` (every one reachable), shrinking toward 0.
* `rounding_inputs` / `rounding_input_array`: the inputs of a wider source format that break
  casts into the format (midpoints, their source neighbours, the overflow tie, the underflow
  midpoint, powers of two, double-rounding traps).
* `arrays`: arrays of `values` in the format's storage dtype, numpy or torch.

hypothesis is imported only by this module, so ``import numfmt`` does not need it.

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

from numfmt.format import Format
from numfmt.registry import formats, get

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
        heuristic, not a search). One more group holds the extremes (max, lowest, smallest subnormal, +-inf,
        NaN), so they are drawn often on purpose. Simple values are drawn more often than
        uniform sampling would.
        fp32 and fp64 use ``hypothesis.strategies.floats`` of that width.

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
    >>> sorted({s.example() for _ in range(200)}) <= [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0]
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
        return _table_values(f, allow_nan, allow_infinity, allow_subnormal, lo, hi)
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


def _table_values(f: Format, allow_nan: bool, allow_infinity: bool, allow_subnormal: bool,
                  lo: float | None, hi: float | None) -> st.SearchStrategy:
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


# ---- inputs that break casts ------------------------------------------------------------------
def _quantum(m: np.ndarray, f: Format) -> np.ndarray:
    """Grid spacing of the float format ``f`` in the binade of each nonzero ``m``."""
    _, e = np.frexp(np.abs(m))
    return np.ldexp(1.0, np.maximum(e.astype(np.int64) - 1, f.emin) - f.mantissa_bits)


def _neighbour_pairs(f: Format) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (a, b) of neighbouring values of ``f`` (a < b): all of them for formats up to
    16 bits, else the first and last steps of every binade (floats: nonnegative side only)."""
    if not f.is_float:
        lo, hi = int(f.lowest_exact), int(f.max_exact)
        if f.bits <= 16:
            a = np.arange(lo, hi, dtype=np.float64)
        else:
            pow2 = [2.0**k for k in range(1, f.bits) if 2.0**k <= hi]
            ends = [lo + k for k in range(4)] + list(range(-4, 4)) + [hi - k for k in range(1, 5)]
            a = np.array(ends + [p - 1 for p in pow2] + [p for p in pow2 if p < hi], float)
            a = np.unique(a[(np.abs(a) < 2.0**52) & (a >= lo) & (a < hi)])
        return a, a + 1
    if f.bits <= 16:
        v = np.unique(_value_table(f)[_value_table(f) >= 0] + 0.0)
        return v[:-1], v[1:]
    m = f.mantissa_bits
    steps = np.array([0, 1, 2, 2**m - 2, 2**m - 1, 2**m], dtype=np.float64)
    e = np.arange(f.emin, f.emax + 1)[:, None]
    with np.errstate(over="ignore"):             # fp64: the binade above max is inf
        grid = np.ldexp(1.0 + steps / 2.0**m, e).ravel()
    sub = f.smallest_subnormal * np.array([0, 1, 2, 3])
    tiny_edge = f.tiny - f.smallest_subnormal * np.array([2, 1])
    v = np.unique(np.concatenate([grid, sub, tiny_edge if f.has_subnormals else [0.0]]))
    v = v[v <= f.max]
    a, b = v[:-1], v[1:]
    true_pair = b - a == np.where(a < f.tiny, f.smallest_subnormal, _quantum(a, f))
    return a[true_pair], b[true_pair]


def _exact_sum(m: np.ndarray, d: np.ndarray) -> np.ndarray:
    """m + d where float64 computes it exactly (Fast2Sum error 0, |m| >= |d|), else NaN."""
    s = m + d
    return np.where(d - (s - m) == 0, s, np.nan)


def _trap_candidates(f: Format, source: Format) -> np.ndarray:
    """Exact float64 candidates (not yet snapped to the source) for casts into ``f``."""
    a, b = _neighbour_pairs(f)
    mids = (a + b) / 2 if f.precision_bits < 53 else np.empty(0)
    if f.is_float:
        top = float(f.max_exact)
        q_top = float(_quantum(np.array([top]), f)[0])
        ties = [top + q_top / 2, top + q_top, 2 * top]
        lowest_ties: list[float] = []
        mids = np.concatenate([mids, -mids])
        p2 = np.arange(max(f.emin - f.mantissa_bits - 2, -1074), min(f.emax + 3, 1024))
    else:
        ties = [f.max + 0.5, f.max + 1.0]
        lowest_ties = [f.lowest - 0.5, f.lowest - 1.0]
        p2 = np.arange(0, min(f.bits + 2, 63))
    edges = np.array(ties + lowest_ties + [-t for t in ties] + [f.smallest_subnormal / 2])
    pow2 = np.ldexp(1.0, p2)
    cands = [mids, edges, -edges, pow2, -pow2]
    # double-rounding traps: a quarter ulp (and 2**-17 ulp) of an intermediate format off
    # a midpoint or tie, so the intermediate rounds onto the tie and the target to even
    ties_all = np.concatenate([mids, edges[:-1]])
    for inter in formats():
        if not (inter.is_float and f.precision_bits < inter.precision_bits
                < source.precision_bits) or inter.bits > 32:
            continue
        if inter.numpy_dtype_name is None and inter.torch_dtype_name is None:
            continue   # no library stores it, so no cast goes through it
        t = ties_all[(ties_all != 0) & (np.abs(ties_all) <= inter.max)]
        q = _quantum(t, inter)
        for d in (q / 4, np.ldexp(q, -17)):
            cands += [_exact_sum(t, d), _exact_sum(t, -d)]
    c = np.concatenate(cands)
    return c[np.isfinite(c) & (np.abs(c) <= source.max)]


def _source_grid(source: Format) -> np.ndarray | None:
    """Ascending distinct finite values of a narrow source (None: fp32/fp64 use nextafter)."""
    if source.name in ("fp64", "fp32"):
        return None
    if source.bits > _TABLE_BITS:
        raise ValueError(f"source {source.name}: only fp64, fp32 and formats of up to "
                         f"{_TABLE_BITS} bits are supported")
    return np.unique(_value_table(source) + 0.0)


def _snap(c: np.ndarray, source: Format) -> np.ndarray:
    """The source values bracketing each exact ``c``; for a ``c`` of the source itself, ``c``
    and its two source neighbours (one source ulp either side)."""
    grid = _source_grid(source)
    if grid is None:
        dt = np.float64 if source.name == "fp64" else np.float32
        with np.errstate(over="ignore"):
            r = c.astype(dt)
        up, down = np.nextafter(r, dt(np.inf)), np.nextafter(r, dt(-np.inf))
        lo = np.where(r > c, down, r).astype(np.float64)
        hi = np.where(r < c, up, r).astype(np.float64)
        exact = lo == hi
        out = [lo, hi, down[exact].astype(np.float64), up[exact].astype(np.float64)]
    else:
        i = np.clip(np.searchsorted(grid, c), 0, grid.size - 1)
        exact = grid[i] == c
        j = np.clip(np.where(exact, i, i - 1), 0, grid.size - 1)
        lo, hi = grid[j], grid[i]
        out = [lo, hi, grid[np.clip(i[exact] - 1, 0, None)],
               grid[np.clip(i[exact] + 1, None, grid.size - 1)]]
    v = np.concatenate(out)
    return v[np.isfinite(v)]


@lru_cache(maxsize=32)
def _rounding_inputs_cached(f: Format, source: Format) -> np.ndarray:
    v = np.concatenate([_snap(_trap_candidates(f, source), source), [0.0, -0.0]])
    _, first = np.unique(v.view(np.int64), return_index=True)   # distinct bit patterns
    v = np.sort(v[first], kind="stable")
    v.setflags(write=False)
    return v


def rounding_input_array(fmt: Any, source: Any = "float64") -> np.ndarray:
    """Every input of ``source`` that a cast into ``fmt`` is likely to get wrong, ascending.

    Parameters
    ----------
    fmt : Format, str, or dtype
        The target format (anything `numfmt.get` accepts).
    source : Format, str, or dtype
        The float format the inputs are values of: fp64 (default), fp32, or any float format
        of up to 20 bits (bf16, fp16, ...).

    Returns
    -------
    ndarray
        A new array in the source's storage dtype (`storage_dtype`), sorted ascending, one entry
        per distinct bit pattern (+0 and -0 both), finite. It holds, snapped to the source
        (the two source values around each, or the value and its two source neighbours when
        the source holds it exactly), both signs of:

        * every midpoint between neighbouring values of ``fmt`` (formats up to 16 bits; the
          first and last steps of every binade for wider ones);
        * the overflow tie ``max + ulp/2`` (ulp of the top binade), ``max + ulp``, ``2 max``
          (integers: ``max + 1/2``, ``lowest - 1/2``, ``max + 1``, ``lowest - 1``);
        * half the smallest positive value (the underflow midpoint);
        * the powers of two from 4 binades below the smallest subnormal to 2 above the max;
        * double-rounding traps: each midpoint and tie moved by a quarter ulp (and 2**-17 ulp)
          of every registered float format with a storage dtype whose precision lies strictly
          between the target's and the source's (float32 for float64 -> bf16: e.g.
          ``1 + 2**-8 + 2**-40``, which float32 rounds onto the bf16 tie ``1 + 2**-8``).

        Candidates beyond the source's range are dropped.

    Raises
    ------
    ValueError
        For an unknown format, or a source that is not a supported float format.

    Examples
    --------
    >>> from numfmt import strategies
    >>> x = strategies.rounding_input_array("bf16", "float64")
    >>> bool(1 + 2**-8 + 2**-40 in x), bool(1 + 2**-8 in x)
    (True, True)
    """
    f, s = get(fmt), get(source)
    if not s.is_float:
        raise ValueError(f"source must be a float format, not {s.name}")
    v = _rounding_inputs_cached(f, s)
    return v.astype(storage_dtype(s, "numpy"))


def rounding_inputs(fmt: Any, source: Any = "float64") -> st.SearchStrategy:
    """A strategy drawing from `rounding_input_array` (as Python floats), shrinking toward
    the inputs of smallest magnitude.

    Examples
    --------
    >>> from numfmt import strategies
    >>> x = strategies.rounding_inputs("fp8_e4m3fn", "float32").example()
    >>> isinstance(x, float)
    True
    """
    v = rounding_input_array(fmt, source).astype(np.float64)
    v = v[np.argsort(np.abs(v), kind="stable")]
    return st.integers(0, v.size - 1).map(lambda i: float(v[i]))


# ---- arrays -----------------------------------------------------------------------------------
def _holds_all(container: Format, f: Format) -> bool:
    """Whether every value of ``f`` is a value of the float format ``container``."""
    if not f.is_float:
        return container.precision_bits >= f.bits
    return (container.precision_bits >= f.precision_bits and container.max_exact >= f.max_exact
            and container.smallest_subnormal_exact <= f.smallest_subnormal_exact
            and container.emin <= f.emin)


@lru_cache(maxsize=None)
def _usable_torch_dtype(f: Format) -> Any:
    """``f.torch_dtype`` when torch can cast element-wise to it (not packed dtypes such as
    float4_e2m1fn_x2 or int4), else None."""
    td = getattr(f, "torch_dtype", None)
    if td is None:
        return None
    import torch

    try:
        torch.zeros(2, dtype=torch.float64).to(td).to(torch.float64)
    except (RuntimeError, NotImplementedError, TypeError):
        return None
    return td


def storage_dtype(fmt: Any, backend: str = "numpy") -> Any:
    """The dtype that holds ``fmt``'s values in ``backend`` ("numpy" or "torch").

    The format's own numpy/ml_dtypes or torch dtype where one exists (and, for torch, can be
    cast to element-wise); otherwise the container `numfmt.round_to` returns: float32 when
    float32 holds every value of the format, else float64; int64 for integer formats.
    """
    f = get(fmt)
    if backend not in ("numpy", "torch"):
        raise ValueError(f"backend must be 'numpy' or 'torch', not {backend!r}")
    if backend == "numpy":
        own = f.numpy_dtype if getattr(f, "numpy_dtype_name", None) else None
        if own is not None:
            return own
        if not f.is_float:
            return np.dtype(np.int64)
        return np.dtype(np.float32 if _holds_all(get("fp32"), f) else np.float64)
    import torch

    own = _usable_torch_dtype(f)
    if own is not None:
        return own
    if not f.is_float:
        return torch.int64
    return torch.float32 if _holds_all(get("fp32"), f) else torch.float64


def arrays(fmt: Any, shape: Any, *, backend: str = "numpy", **value_options: Any
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
