"""How far 256 codes stretch: plain INT8 vs ScaledInt8 vs LogInt8, measured.

`compare()` encodes samples from several distributions with each encoding and measures the
dynamic range, the relative errors and the SQNR; `op_exactness()` runs +, -, *, / on pairs of
encoded samples and classifies each operation from the numbers (exact / approximate with its
worst relative error / unsupported, plus how often the result overflowed). `python -m quant`
prints both (see quant.__main__).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import mpmath
import torch

from . import arith, metrics
from ._tensors import channel_broadcast
from .encodings import get_encoding
from .logdomain import CODE_MAX, LogInt8, gaussian_log_table, rel_error_bound
from .policy import OverflowPolicy
from .scaled import ScaledInt8

__all__ = ["ENCODINGS", "DISTRIBUTIONS", "Record", "OpResult", "sample", "encode", "compare",
           "op_exactness", "gaussian_log_error", "error_by_magnitude"]

ENCODINGS = ("int8", "scaled_int8_per_tensor", "scaled_int8_per_channel", "log_int8")
EXTRA_ENCODINGS = ("log_int8_frac2",)
"""Shown in the table only: LogInt8 with frac_bits=2 trades precision for twice the range."""
SHAPE = (32, 1024)
DISTRIBUTIONS = ("uniform", "gaussian", "gaussian_channel_spread", "heavy_tailed",
                 "log_uniform")
_EXACT_RTOL = 1e-9
"""Two float64 evaluations of the same exact real differ by ~1e-16 relative, while any other
representable result differs by at least a code step (> 1e-3 relative here), so a relative
difference below 1e-9 identifies an exact result."""


def sample(distribution: str, shape: tuple[int, int] = SHAPE, seed: int = 0
           ) -> torch.Tensor:
    """float32 samples (channels x values) from a named distribution, deterministic by seed.

    uniform: U(-1, 1). gaussian: N(0, 1). gaussian_channel_spread: N(0, 1) rows scaled by
    10**U(-2, 2) (weights of a layer whose channels differ by four decades). heavy_tailed:
    Student t with 2 degrees of freedom. log_uniform: random sign times 10**U(-6, 6), twelve
    decades (240 dB).

    Parameters
    ----------
    distribution : str
        One of `DISTRIBUTIONS`.
    shape : tuple of int
        (channels, values).
    seed : int
        Generator seed.

    Returns
    -------
    torch.Tensor
        float32 of `shape`.
    """
    g = torch.Generator().manual_seed(seed)
    if distribution == "uniform":
        x = torch.rand(shape, generator=g, dtype=torch.float64) * 2 - 1
    elif distribution == "gaussian":
        x = torch.randn(shape, generator=g, dtype=torch.float64)
    elif distribution == "gaussian_channel_spread":
        spread = 10.0 ** (torch.rand((shape[0], 1), generator=g, dtype=torch.float64) * 4 - 2)
        x = torch.randn(shape, generator=g, dtype=torch.float64) * spread
    elif distribution == "heavy_tailed":
        z = torch.randn(shape, generator=g, dtype=torch.float64)
        chi2 = torch.randn((2,) + shape, generator=g, dtype=torch.float64).square().sum(0)
        x = z / (chi2 / 2).sqrt()
    elif distribution == "log_uniform":
        mag = 10.0 ** (torch.rand(shape, generator=g, dtype=torch.float64) * 12 - 6)
        sign = torch.where(torch.rand(shape, generator=g) < 0.5, -1.0, 1.0)
        x = sign * mag
    else:
        raise ValueError(f"unknown distribution {distribution!r}; use one of "
                         f"{', '.join(DISTRIBUTIONS)}")
    return x.to(torch.float32)


def encode(encoding: str, x: torch.Tensor, like: ScaledInt8 | LogInt8 | None = None
           ) -> ScaledInt8 | LogInt8:
    """Encode `x` (channels on axis 0) with a named encoding.

    Parameters
    ----------
    encoding : str
        One of `ENCODINGS` or `EXTRA_ENCODINGS`: 'int8' (plain codes, scale 1), the
        `quant.encodings` table's weight encodings, or 'log_int8_frac2'.
    x : torch.Tensor
        The values.
    like : ScaledInt8 or LogInt8, optional
        Reuse that encoding's scale / offset instead of calibrating.

    Returns
    -------
    ScaledInt8 or LogInt8
    """
    if encoding == "int8":
        return ScaledInt8.encode(x, scale=1.0, narrow_range=False)
    if encoding not in ENCODINGS + EXTRA_ENCODINGS:
        raise ValueError(f"unknown encoding {encoding!r}; use one of "
                         f"{', '.join(ENCODINGS + EXTRA_ENCODINGS)}")
    if like is None and encoding in ENCODINGS:
        return get_encoding(encoding).encode_weight(x, channel_axis=0)
    if encoding.startswith("scaled_int8"):
        return ScaledInt8.encode(x, scale=like.scale, axis=0 if like.axis is not None else None)
    f = 3 if encoding == "log_int8" else 2
    return LogInt8.encode(x, offset=None if like is None else like.offset, frac_bits=f)


@dataclass(frozen=True)
class OpResult:
    """One operation on one (encoding, distribution): what the numbers say about it."""

    op: str
    supported: bool
    exact: bool
    max_rel_error: float          # over in-range results (0.0 when exact)
    overflow_fraction: float      # results beyond the largest representable magnitude
    underflow_fraction: float     # nonzero exact results that came back as 0
    count: int

    def cell(self) -> str:
        """Short table cell: 'exact', '<=0.043' or 'unsupported', then o<overflowed share>
        and u<underflowed share> when nonzero."""
        if not self.supported:
            return "unsupported"
        head = "exact" if self.exact else f"<={self.max_rel_error:.2g}"
        tail = []
        if self.overflow_fraction:
            tail.append(f"o{_pct(self.overflow_fraction)}")
        if self.underflow_fraction:
            tail.append(f"u{_pct(self.underflow_fraction)}")
        return head + (f" {' '.join(tail)}" if tail else "")


def _pct(v: float) -> str:
    return "<0.1%" if v < 0.001 else f"{100 * v:.1f}%" if v < 0.1 else f"{100 * v:.0f}%"


@dataclass(frozen=True)
class Record:
    """Measured accuracy of one encoding on one distribution (the JSON record)."""

    encoding: str
    distribution: str
    dynamic_range_db: float
    max_rel_error: float
    rms_rel_error: float
    sqnr_db: float
    max_rel_error_in_range: float = math.nan
    ops: tuple[OpResult, ...] = ()

    def as_json(self) -> dict[str, object]:
        """The JSON record: names and the four figures (None where not finite)."""
        def num(v: float) -> float | None:
            return v if math.isfinite(v) else None
        return {"encoding": self.encoding, "distribution": self.distribution,
                "dynamic_range_db": num(self.dynamic_range_db),
                "max_rel_error": num(self.max_rel_error),
                "rms_rel_error": num(self.rms_rel_error), "sqnr_db": num(self.sqnr_db)}


_OPS: dict[str, Callable[..., object]] = {"+": arith.add, "-": arith.sub, "*": arith.mul,
                                          "/": arith.div}


def _exact_values(op: str, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return {"+": a + b, "-": a - b, "*": a * b, "/": a / b}[op]


def _limits(e: ScaledInt8 | LogInt8, shape: torch.Size) -> tuple[torch.Tensor, torch.Tensor]:
    """Representable [low, high] per element and the smallest nonzero magnitude per element."""
    if isinstance(e, LogInt8):
        top = torch.full(shape, e.max_magnitude, dtype=torch.float64)
        return torch.stack([-top, top]), torch.full(shape, e.min_magnitude, dtype=torch.float64)
    s = channel_broadcast(e.scale.to(torch.float64), e.axis, len(shape))
    z = channel_broadcast(e.zero_point.to(torch.float64), e.axis, len(shape))
    lo = torch.broadcast_to(s * (e.qmin - z), shape)
    hi = torch.broadcast_to(s * (e.qmax - z), shape)
    return torch.stack([lo, hi]), torch.broadcast_to(s, shape)


def op_exactness(a: ScaledInt8 | LogInt8, b: ScaledInt8 | LogInt8, op: str) -> OpResult:
    """Run `op` on a and b under SATURATE and classify it against exact float64 arithmetic.

    The exact value is computed from the decoded operands (exact float64 values); results are
    split into overflowed (exact value beyond the representable interval), underflowed (a
    nonzero exact value returned as 0 because it lies below the smallest magnitude) and in
    range, where exactness and the worst relative error are measured.

    Parameters
    ----------
    a, b : ScaledInt8 or LogInt8
        Operands of one kind and shape.
    op : str
        '+', '-', '*' or '/'.

    Returns
    -------
    OpResult
    """
    fa, fb = a.decode(torch.float64), b.decode(torch.float64)
    keep = fb != 0 if op == "/" else torch.ones_like(fa, dtype=torch.bool)
    if op == "/" and isinstance(b, LogInt8):      # zero divisors are excluded via `keep`
        b = LogInt8(torch.where(b.codes == 0, 1, b.codes).to(torch.int8), b.offset,
                    b.frac_bits)
    try:
        r = _OPS[op](a, b, policy=OverflowPolicy.SATURATE)
    except TypeError:
        return OpResult(op, False, False, math.nan, 0.0, 0.0, fa.numel())
    exact = _exact_values(op, fa, fb)
    got = r.decode(torch.float64)
    (lo, hi), small = _limits(r, exact.shape)
    over = keep & ((exact < lo) | (exact > hi))
    under = keep & ~over & (exact != 0) & (got == 0) & (exact.abs() < small)
    inside = keep & ~over & ~under
    rel = metrics.relative_errors(exact[inside], got[inside])
    worst = float(rel.max()) if rel.numel() else 0.0
    n = int(keep.sum())
    return OpResult(op, True, worst <= _EXACT_RTOL, 0.0 if worst <= _EXACT_RTOL else worst,
                    int(over.sum()) / max(n, 1), int(under.sum()) / max(n, 1), n)


def compare(distributions: tuple[str, ...] = DISTRIBUTIONS,
            encodings: tuple[str, ...] = ENCODINGS, shape: tuple[int, int] = SHAPE,
            with_ops: bool = True) -> list[Record]:
    """One `Record` per (encoding, distribution), with the four operations classified.

    `max_rel_error_in_range` only counts values whose magnitude lies between the encoding's
    smallest and largest nonzero magnitude (where a finite bound can exist).

    Parameters
    ----------
    distributions : tuple of str
        From `DISTRIBUTIONS`.
    encodings : tuple of str
        From `ENCODINGS` + `EXTRA_ENCODINGS`.
    shape : tuple of int
        (channels, values) per sample.
    with_ops : bool
        Also classify +, -, *, / (`op_exactness`).

    Returns
    -------
    list of Record
    """
    records = []
    for dist in distributions:
        x = sample(dist, shape, seed=1)
        y = sample(dist, shape, seed=2)
        for name in encodings:
            e = encode(name, x)
            d = e.decode(torch.float64)
            ops: tuple[OpResult, ...] = ()
            if with_ops:
                f = encode(name, y, like=e)
                ops = tuple(op_exactness(e, f, op) for op in ("+", "-", "*", "/"))
            (lo, hi), small = _limits(e, x.shape)
            xd = x.to(torch.float64)
            inside = (xd.abs() >= small) & (xd >= lo) & (xd <= hi)
            rel = metrics.relative_errors(xd[inside], d[inside])
            records.append(Record(name, dist, e.dynamic_range_db, metrics.max_rel_error(x, d),
                                  metrics.rms_rel_error(x, d), metrics.sqnr_db(x, d),
                                  float(rel.max()) if rel.numel() else math.nan, ops))
    return records


def gaussian_log_error(frac_bits: int = 3) -> dict[str, float]:
    """Exhaustive check of the Gaussian-log table: every pair of nonzero codes, + and -.

    Operands are all 254 x 254 signed nonzero codes at offset -127; the exact sum of their
    exact values (160-bit mpmath for each distinct magnitude) is compared with the table
    result wherever that result is in range.

    Parameters
    ----------
    frac_bits : int
        The grid's fractional bits.

    Returns
    -------
    dict of str to float
        The worst relative errors of + and -, whether x - x is exactly 0, the table size, the
        pair count and the bound 2**(2**-(F+1)) - 1.
    """
    f = 1 << frac_bits
    off = -CODE_MAX
    codes = torch.tensor([c for c in range(-127, 128) if c], dtype=torch.int8)
    a = codes.repeat_interleave(codes.numel())
    b = codes.repeat(codes.numel())
    ea = LogInt8(a, off, frac_bits)
    eb = LogInt8(b, off, frac_bits)
    with mpmath.workprec(160):
        mags = torch.tensor([0.0] + [float(mpmath.power(2, mpmath.mpf(m + off) / f))
                                     for m in range(1, 128)], dtype=torch.float64)
    va = torch.sign(a.to(torch.float64)) * mags[a.to(torch.int64).abs()]
    vb = torch.sign(b.to(torch.float64)) * mags[b.to(torch.int64).abs()]
    out = {"bound": rel_error_bound(frac_bits),
           "table_entries": float(gaussian_log_table(frac_bits).size), "pairs": float(a.numel())}
    for name, fn, exact in (("add", arith.add, va + vb), ("sub", arith.sub, va - vb)):
        r = fn(ea, eb, out_offset=off + f, policy=OverflowPolicy.SATURATE)
        got = r.decode(torch.float64)
        ok = (exact.abs() >= r.min_magnitude) & (exact.abs() <= r.max_magnitude)
        zero = exact == 0
        out[f"{name}_max_rel_error"] = float(metrics.relative_errors(exact[ok], got[ok]).max())
        out[f"{name}_exact_zeros"] = float(bool((got[zero] == 0).all()))
    return out



def error_by_magnitude(distribution: str = "log_uniform", bins: int = 48,
                       shape: tuple[int, int] = SHAPE
                       ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Bin centres of |x| (log-spaced) and the worst relative error per bin per encoding.

    Parameters
    ----------
    distribution : str
        The sample's distribution.
    bins : int
        Log-spaced bins over the sample's nonzero magnitudes.
    shape : tuple of int
        The sample's shape.

    Returns
    -------
    tuple
        The (bins,) centres and {encoding name: (bins,) worst relative error (NaN where a
        bin is empty)}.
    """
    x = sample(distribution, shape, seed=1)
    mag = x.abs().to(torch.float64).reshape(-1)
    lo, hi = math.log10(float(mag[mag > 0].min())), math.log10(float(mag.max()))
    edges = torch.logspace(lo, hi + 1e-9, bins + 1, dtype=torch.float64)
    idx = torch.bucketize(mag, edges, right=True).clamp(1, bins) - 1
    centres = (edges[:-1] * edges[1:]).sqrt()
    curves = {}
    for name in ENCODINGS + EXTRA_ENCODINGS:
        rel = metrics.relative_errors(x, encode(name, x).decode(torch.float64)).reshape(-1)
        worst = torch.full((bins,), math.nan, dtype=torch.float64)
        worst = worst.scatter_reduce(0, idx, rel, reduce="amax", include_self=False)
        curves[name] = worst
    return centres, curves
