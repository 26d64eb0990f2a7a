"""Audit of what the frameworks' exp really does in each format, against correct rounding.

For each backend (numpy, torch, ml_dtypes) that stores a format, we run its own ``exp`` on
inputs of that dtype and compare every result with the correctly rounded exp:

* 8- and 16-bit formats: every finite value (exhaustive);
* FP32: every value within 2**14 codes of each exact bound, plus every 1024th code over the whole
  interesting range [min_arg - 1, max_arg + 1] (about 2.2 million inputs);
* FP64: 2**10 values around each bound plus 4096 evenly spaced codes across the range.

The reference is float64 ``np.exp`` rounded into the format when a 2**-50 relative enclosure of
it rounds to a single value (glibc's exp is within one float64 ulp), and exact interval
arithmetic (`numfmt.exp_rounded`) for the few inputs where it does not, and for FP64 always.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from numfmt.expbounds import exp_bounds, exp_rounded
from numfmt.format import Format
from numfmt.registry import formats, get
from numfmt.rounding import round_to

BACKENDS = ("numpy", "torch", "ml_dtypes")


@dataclass(frozen=True)
class BackendAudit:
    """One backend's exp in one format: its measured bounds and how often it is wrong.

    The measured bounds are over the tested inputs: the largest input with a finite result, the
    smallest with a nonzero result and the smallest with a result >= the format's tiny.
    """

    backend: str
    format: Format
    tested: int
    exhaustive: bool
    mismatches: int
    max_arg: float
    min_arg: float
    min_normal_arg: float
    worst_input: float | None  # an input where the backend differs from correct rounding

    @property
    def bounds_exact(self) -> bool:
        """Whether the backend's measured bounds are the exact ones.
        """
        b = exp_bounds(self.format)
        return (self.max_arg, self.min_arg, self.min_normal_arg) == (
            b.max_arg, b.min_arg, b.min_normal_arg)


def _code_of(fmt: Format, x: float) -> int:
    """Sign-magnitude code of a format value, as an ordered integer (negative for x < 0)."""
    if fmt.name == "fp32":
        c = int(np.array(abs(x), dtype=np.float32).view(np.uint32))
    else:
        c = int(np.array(abs(x), dtype=np.float64).view(np.uint64))
    return -c if x < 0 else c


def audit_inputs(fmt: Format) -> tuple[np.ndarray, bool]:
    """The float64 inputs the audit runs for a format.

    Parameters
    ----------
    fmt : Format

    Returns
    -------
    (numpy.ndarray, bool)
        The inputs and whether they are all of the format's finite values.
    """
    if fmt.bits <= 24:
        return fmt.finite_values(), True
    if fmt.name not in ("fp32", "fp64"):
        raise ValueError(f"no audit input plan for {fmt.name}")
    b = exp_bounds(fmt)
    window, samples = (2**14, None) if fmt.name == "fp32" else (2**9, 4096)
    ordered: list[np.ndarray] = []
    for bound in (b.max_arg, b.min_arg, b.min_normal_arg):
        c = _code_of(fmt, bound)
        ordered.append(np.arange(c - window, c + window + 1, dtype=np.int64))
    lo, hi = _code_of(fmt, b.min_arg - 1.0), _code_of(fmt, b.max_arg + 1.0)
    if samples is None:
        ordered.append(np.arange(lo, hi + 1, 1024, dtype=np.int64))
    else:
        ordered.append(np.linspace(lo, hi, samples).astype(np.int64))
    signed = np.unique(np.concatenate(ordered))
    utype, ftype = (np.uint32, np.float32) if fmt.name == "fp32" else (np.uint64, np.float64)
    mags = np.abs(signed).astype(utype).view(ftype).astype(np.float64)
    vals = np.where(signed < 0, -mags, mags)
    vals = vals[np.isfinite(vals)]
    return np.unique(vals), False


def correct_exp(fmt: Format, x: np.ndarray) -> np.ndarray:
    """exp of each format value, correctly rounded into the format.

    Parameters
    ----------
    fmt : Format
    x : numpy.ndarray
        float64 values of ``fmt``.

    Returns
    -------
    numpy.ndarray
        float64.
    """
    out = np.empty_like(x)
    if fmt.name == "fp64":
        ambiguous = np.ones(x.shape, dtype=bool)
    else:
        with np.errstate(over="ignore", under="ignore"):
            y = np.exp(x)
            lo = round_to(y * (1 - 2.0**-50), fmt)
            hi = round_to(y * (1 + 2.0**-50), fmt)
        ambiguous = ~((lo == hi) | (np.isnan(lo) & np.isnan(hi)))
        out[:] = lo
    for i in np.flatnonzero(ambiguous):
        out[i] = exp_rounded(float(x[i]), fmt)
    return out


def _numpy_exp(dtype: np.dtype) -> Callable[[np.ndarray], np.ndarray]:
    def run(x: np.ndarray) -> np.ndarray:
        with np.errstate(all="ignore"):
            return np.exp(x.astype(dtype)).astype(np.float64)

    return run


def _torch_exp(dtype) -> Callable[[np.ndarray], np.ndarray]:
    import torch

    def run(x: np.ndarray) -> np.ndarray:
        t = torch.from_numpy(x).to(dtype)
        return torch.exp(t).to(torch.float64).numpy()

    return run


def backend_exp(backend: str, fmt: Format) -> Callable[[np.ndarray], np.ndarray] | None:
    """A library's exp on the format's dtype (float64 in, float64 out).

    Parameters
    ----------
    backend : {"numpy", "torch", "ml_dtypes"}
    fmt : Format

    Returns
    -------
    callable or None
        None where the library has no such dtype or kernel.
    """
    if backend == "numpy":
        if fmt.numpy_dtype_name in ("float16", "float32", "float64"):
            return _numpy_exp(fmt.numpy_dtype)
        return None
    if backend == "ml_dtypes":
        if fmt.is_float and (fmt.numpy_dtype_name or "").startswith("ml_dtypes."):
            return _numpy_exp(fmt.numpy_dtype)
        return None
    if backend == "torch":
        dt = fmt.torch_dtype
        if dt is None or not fmt.is_float:
            return None
        run = _torch_exp(dt)
        try:
            run(np.array([0.5, 1.0]))
        except (RuntimeError, TypeError, NotImplementedError):
            return None  # e.g. torch has no exp kernel for float8 on this device
        return run
    raise ValueError(f"unknown backend {backend!r}; known: {BACKENDS}")


def audit_exp(fmt: Any, backend: str) -> BackendAudit | None:
    """Audit a library's exp in a format.

    Parameters
    ----------
    fmt : Format or anything `numfmt.get` accepts
    backend : {"numpy", "torch", "ml_dtypes"}

    Returns
    -------
    BackendAudit or None
        None where the library has no such dtype or kernel.
    """
    f = get(fmt)
    run = backend_exp(backend, f)
    if run is None:
        return None
    x, exhaustive = audit_inputs(f)
    got = run(x)
    want = correct_exp(f, x)
    differ = ~((got == want) | (np.isnan(got) & np.isnan(want)))
    finite = np.isfinite(got) & (np.abs(got) <= f.max)
    if not f.has_inf and not f.has_nan:
        # A saturating format returns max for every overflow: count it as one where the true
        # exp lies beyond the rounding limit.
        with np.errstate(over="ignore"):
            finite &= ~((got == f.max) & (np.exp(x) > float(exp_bounds(f).overflow_limit)))
    nonzero = got != 0
    normal = got >= f.tiny

    def pick(mask: np.ndarray, which: Callable[[np.ndarray], Any]) -> float:
        return float(which(x[mask])) if mask.any() else float("nan")

    return BackendAudit(
        backend=backend, format=f, tested=int(x.size), exhaustive=exhaustive,
        mismatches=int(differ.sum()),
        max_arg=pick(finite, np.max), min_arg=pick(nonzero, np.min),
        min_normal_arg=pick(normal, np.min),
        worst_input=float(x[differ][0]) if differ.any() else None,
    )


def audit_all(progress: Callable[[str], None] | None = None) -> list[BackendAudit]:
    """Every (format, backend) audit that exists, in `formats()` order.

    Parameters
    ----------
    progress : callable, optional
        Called with one line per audit.

    Returns
    -------
    list of BackendAudit
    """
    out = []
    for f in formats():
        if not f.is_float:
            continue
        for backend in BACKENDS:
            if progress:
                progress(f"auditing {backend} exp in {f.name}")
            a = audit_exp(f, backend)
            if a is not None:
                out.append(a)
    return out
