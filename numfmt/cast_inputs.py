"""The inputs that break casts into a format, and the dtype that stores a format's values.

`rounding_input_array` builds, with exact float64 arithmetic and no randomness, the values of a
source format (fp64, fp32, or a narrow float) on which a cast into a target format is most
likely to go wrong: midpoints between neighbouring target values and their source neighbours,
the overflow tie, the underflow midpoint, powers of two and double-rounding traps.
`numfmt.strategies.rounding_inputs` draws from it and `numfmt.cast_audit` casts it; this module
needs numpy only (no hypothesis), so the audit runs without the test extras.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

from numfmt.format import Format
from numfmt.registry import formats, get

__all__ = ["rounding_input_array", "storage_dtype"]

# Narrow sources are snapped onto their table of values (2**20 codes at most: tf32 fits).
_TABLE_BITS = 20


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
        v = f.finite_values()
        v = v[v >= 0]
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
    return source.finite_values()


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


# ---- storage ---------------------------------------------------------------------------------
def _holds_all(container: Format, f: Format) -> bool:
    """Whether every value of the float format ``f`` is a value of the float ``container``."""
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
    """The dtype that holds ``fmt``'s values in ``backend``.

    Parameters
    ----------
    fmt : Format, str, or dtype
        Anything `numfmt.get` accepts.
    backend : {"numpy", "torch"}

    Returns
    -------
    numpy.dtype or torch.dtype
        The format's own numpy/ml_dtypes or torch dtype where one exists (for torch: one it
        casts to element by element, so not the packed ``float4_e2m1fn_x2`` or ``int4``);
        otherwise the container `numfmt.round_to` returns: float32 when float32 holds every
        value of the format, else float64; int64 for integer formats.

    Raises
    ------
    ValueError
        For an unknown format or backend.

    Examples
    --------
    >>> storage_dtype("bf16")
    dtype(bfloat16)
    >>> storage_dtype("fp4_e2m1fn", "torch")
    torch.float32
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


