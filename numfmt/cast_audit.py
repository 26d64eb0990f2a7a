"""The cast audit: what the casts people call return, against the exact round-to-nearest-even.

For each source format (fp64, fp32, bf16, fp16), each target format of at most 16 bits and each
library that has the cast, every result is compared with `numfmt.round_to` of the exact input
(one rounding, the target's default overflow rule, `numfmt.default_overflow`):

* ``torch``: ``tensor.to(target dtype)`` on a tensor of the source dtype;
* ``numpy`` / ``ml_dtypes``: ``array.astype(target dtype)`` (``ml_dtypes`` when either dtype is
  an ml_dtypes type);
* ``gfloat``: ``gfloat.round_ndarray(fi, x, RoundMode.TiesToEven, sat=...)`` for the gfloat
  `FormatInfo` whose decoded codes equal the target's, with ``sat`` True exactly when the
  target's default overflow rule is to saturate; fp32 inputs are passed as float32, the others
  as float64 (bf16 and fp16 widen exactly).

Inputs: every bit pattern of a source of at most 16 bits; for fp32 and fp64 a seeded sample (half
uniform random bit patterns, half random values whose binade is uniform over the target's range
widened by two binades each side) plus `numfmt.strategies.rounding_input_array` (midpoints and
their neighbours, the overflow tie, the underflow midpoint, double-rounding traps) and
+-0, +-inf, NaN. NaN results equal NaN; otherwise results must be equal with equal sign bits.

Inputs the target has no exact answer for (NaN into a format without NaN, or any input for which
`numfmt.round_to` raises) are counted as ``undefined``, not as mismatches, with one example.

Each mismatch gets the first cause whose rule holds, in this order (`CAUSES`):

``nan_inf``          the input is NaN or +-inf;
``zero``             the input is +0 (a format without zero, e8m0);
``sign``             the input is -0, or negative into a format with no negative values, or the
                     result and the exact answer are zeros of opposite sign;
``truncation``       (integer targets) the result is the input rounded toward zero: C's
                     float -> int conversion, which also explains the coincidences below;
``double_rounding``  the source is wider than float32 and the result is what rounding first to
                     float32 and then to the target (both RNE, the target's default overflow
                     rule) gives, the exact answer not (the libraries' casts are float32
                     kernels: float64 -> bf16, fp16 and fp8 go through float32);
``overflow``         the finite input lies beyond the target's [lowest, max], or the result is
                     inf/NaN for a finite input (saturate vs inf vs NaN);
``subnormal``        (float targets) the input's magnitude is below the target's smallest normal
                     (flush to zero, wrong underflow);
``truncation``       (float targets) the result is the input rounded toward zero;
``other``            anything else.
"""

from __future__ import annotations

import argparse
import warnings
import zlib
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from numfmt.cli import (CliError, Progress, check_output_file, markdown_table, positive_int,
                        run_cli, write_json)
from numfmt.format import Format
from numfmt.registry import formats, get
from numfmt.rounding import default_overflow, round_to
from numfmt.strategies import rounding_input_array, storage_dtype

__all__ = ["CAUSES", "LIBRARIES", "SOURCES", "CastAuditRow", "audit_casts", "audit_inputs",
           "compare_results", "default_targets", "library_cast", "main"]

CAUSES = ("nan_inf", "zero", "sign", "double_rounding", "overflow", "subnormal", "truncation",
          "other")
LIBRARIES = ("torch", "numpy", "ml_dtypes", "gfloat")
SOURCES = ("fp64", "fp32", "bf16", "fp16")
PROG = "python -m numfmt audit --casts"

Cast = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class CastAuditRow:
    """One library's cast from one source format to one target, against exact RNE.

    ``checked`` inputs had an exact answer; ``mismatches`` of them differ from it, split by
    cause in ``by_cause`` (every cause of `CAUSES`, zeros included); ``examples`` maps each
    cause met (and ``"undefined"``) to one input with the library's result and the exact one,
    as ``repr`` strings (``input_hex`` is ``float.hex``). ``undefined`` counts the inputs
    without an exact answer. ``skipped`` gives the reason when the cast could not be run.
    ``trap_checked`` and ``trap_mismatches`` are the part of ``checked`` and ``mismatches``
    that came from the targeted traps (fp32/fp64 sources; 0 for exhaustive sources), so the
    rest is the seeded random sample.
    """

    source: str
    target: str
    library: str
    checked: int
    mismatches: int
    by_cause: Mapping[str, int]
    examples: Mapping[str, Mapping[str, str]]
    undefined: int = 0
    skipped: str | None = None
    trap_checked: int = 0
    trap_mismatches: int = 0

    def as_dict(self) -> dict[str, Any]:
        """Plain dicts and numbers, for JSON."""
        return {"source": self.source, "target": self.target, "library": self.library,
                "checked": self.checked, "mismatches": self.mismatches,
                "by_cause": dict(self.by_cause),
                "examples": {k: dict(v) for k, v in self.examples.items()},
                "undefined": self.undefined, "skipped": self.skipped,
                "trap_checked": self.trap_checked, "trap_mismatches": self.trap_mismatches}


def _frozen(d: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType({k: (MappingProxyType(dict(v)) if isinstance(v, Mapping) else v)
                             for k, v in d.items()})


def _skipped(source: str, target: str, library: str, why: str) -> CastAuditRow:
    return CastAuditRow(source, target, library, 0, 0, _frozen({c: 0 for c in CAUSES}),
                        _frozen({}), 0, why)


# ---- the libraries' casts ---------------------------------------------------------------------
def _is_ml_dtypes(dtype: np.dtype) -> bool:
    return dtype.type.__module__.startswith("ml_dtypes")


def _torch_cast(source: Format, target: Format) -> Cast | str | None:
    import torch

    dst = getattr(target, "torch_dtype", None)
    if dst is None:
        return None
    if storage_dtype(target, "torch") != dst:
        return f"torch.{target.torch_dtype_name} has no element-wise cast"
    src = storage_dtype(source, "torch")

    def cast(x: np.ndarray) -> np.ndarray:
        if src == torch.bfloat16:            # numpy has no bfloat16: carry the bit patterns
            t = torch.from_numpy(x.view(np.int16)).view(torch.bfloat16)
        else:
            t = torch.from_numpy(x)
        return t.to(dst).to(torch.float64).numpy()
    return cast


def _numpy_cast(source: Format, target: Format, library: str) -> Cast | None:
    if getattr(target, "numpy_dtype_name", None) is None:
        return None
    dst, src = target.numpy_dtype, storage_dtype(source, "numpy")
    if ("ml_dtypes" if _is_ml_dtypes(dst) or _is_ml_dtypes(src) else "numpy") != library:
        return None

    def cast(x: np.ndarray) -> np.ndarray:
        # out-of-range and NaN casts warn on purpose: the audit measures what they return
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)
            return x.astype(dst).astype(np.float64)
    return cast


def _gfloat_infos() -> list[Any]:
    import gfloat.formats as gf
    from gfloat import Domain, Signedness

    infos = [v for k, v in vars(gf).items() if k.startswith("format_info_")
             and not callable(v) and hasattr(v, "k")]
    for p in range(1, 8):
        for sign in (Signedness.Signed, Signedness.Unsigned):
            for dom in (Domain.Extended, Domain.Finite):
                infos.append(gf.format_info_p3109(8, p, sign, dom))
    return infos


def _same_values(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Elementwise: equal with equal sign bits, or both NaN."""
    return ((a == b) & (np.signbit(a) == np.signbit(b))) | (np.isnan(a) & np.isnan(b))


def _gfloat_cast(source: Format, target: Format) -> Cast | None:
    from gfloat import RoundMode, decode_ndarray, round_ndarray

    if target.bits > 16:
        return None
    codes = np.arange(2**target.bits)
    ours = target.decode(codes)
    match = [fi for fi in _gfloat_infos() if fi.k == target.bits
             and bool(_same_values(decode_ndarray(fi, codes).astype(np.float64), ours).all())]
    if not match:
        return None
    fi, sat = match[0], default_overflow(target) == "saturate"

    def cast(x: np.ndarray) -> np.ndarray:
        with np.errstate(all="ignore"):
            carrier = x if x.dtype == np.float32 else x.astype(np.float64)
            return np.asarray(round_ndarray(fi, carrier, RoundMode.TiesToEven, sat=sat),
                              dtype=np.float64)
    return cast


def library_cast(library: str, source: Any, target: Any) -> Cast | str | None:
    """The cast ``library`` offers from ``source`` to ``target``.

    Returns
    -------
    callable, str or None
        A function from an array in the source's storage dtype (`numfmt.strategies.
        storage_dtype`) to the results as float64; a string saying why the library knows the
        target but cannot cast to it; None when the library has no such cast.

    Raises
    ------
    ImportError
        When the library is not installed.
    ValueError
        For an unknown library or format.
    """
    s, t = get(source), get(target)
    if library == "torch":
        return _torch_cast(s, t)
    if library in ("numpy", "ml_dtypes"):
        if library == "ml_dtypes":
            import ml_dtypes  # noqa: F401  (absent library: ImportError, reported as skipped)
        return _numpy_cast(s, t, library)
    if library == "gfloat":
        return _gfloat_cast(s, t)
    raise ValueError(f"unknown library {library!r}; known: {', '.join(LIBRARIES)}")


# ---- the exact answer and the causes ----------------------------------------------------------
def _input_classes(x: np.ndarray, target: Format) -> list[np.ndarray]:
    """Disjoint masks covering ``x`` (NaN, +-inf, +-0, and per sign: below the smallest normal,
    normal range, beyond the max), so that an input class `round_to` refuses (NaN into int8,
    say) leaves the others defined."""
    neg = np.signbit(x)
    mag = np.abs(x)
    finite = np.isfinite(x) & (x != 0)
    masks = [np.isnan(x), np.isinf(x) & ~neg, np.isinf(x) & neg, (x == 0) & ~neg, (x == 0) & neg]
    for side in (~neg, neg):
        masks += [finite & side & (mag < target.tiny),
                  finite & side & (mag >= target.tiny) & (mag <= target.max),
                  finite & side & (mag > target.max)]
    return masks


def _reference(x: np.ndarray, target: Format) -> tuple[np.ndarray, np.ndarray, str | None]:
    """(exact RNE results as float64, mask of inputs that have one, why some have none)."""
    ref = np.full(x.shape, np.nan)
    defined = np.zeros(x.shape, dtype=bool)
    why = None
    for m in _input_classes(x, target):
        if not m.any():
            continue
        try:
            ref[m] = np.asarray(round_to(x[m], target), dtype=np.float64)
        except (ValueError, OverflowError) as err:
            why = why or f"numfmt.round_to raises {type(err).__name__}: {err}"
            continue
        defined[m] = True
    return ref, defined, why


def _intermediates(source: Format, target: Format) -> list[Format]:
    """The format the libraries' casts round through first: float32, when its precision lies
    strictly between the target's and the source's."""
    fp32 = get("fp32")
    return [fp32] if target.precision_bits < fp32.precision_bits < source.precision_bits else []


def _via(x: np.ndarray, inter: Format, target: Format) -> np.ndarray | None:
    try:
        return np.asarray(round_to(round_to(x, inter), target), dtype=np.float64)
    except (ValueError, OverflowError):
        return None


def _toward_zero(x: np.ndarray, target: Format) -> np.ndarray:
    """Finite ``x`` rounded toward zero onto the target's grid (unbounded above)."""
    if not target.is_float:
        return np.trunc(x) + 0.0
    _, e = np.frexp(x)
    q = np.maximum(e.astype(np.int64) - 1, target.emin) - target.mantissa_bits
    return np.ldexp(np.trunc(np.ldexp(x, -q)), q)


def _classify(x: np.ndarray, got: np.ndarray, ref: np.ndarray, source: Format,
              target: Format) -> np.ndarray:
    """Index into `CAUSES` of each mismatch (the first rule that holds, module docstring)."""
    cause = np.full(x.shape, len(CAUSES) - 1)
    open_ = np.ones(x.shape, dtype=bool)

    def assign(name: str, rule: np.ndarray) -> None:
        hit = open_ & rule
        cause[hit] = CAUSES.index(name)
        open_[hit] = False

    unsigned = not getattr(target, "signed", True) or target.lowest >= 0
    with np.errstate(invalid="ignore"):
        assign("nan_inf", ~np.isfinite(x))
        assign("zero", (x == 0) & ~np.signbit(x))
        assign("sign", ((x == 0) & np.signbit(x)) | ((x < 0) & unsigned)
               | ((got == 0) & (ref == 0) & (np.signbit(got) != np.signbit(ref))))
        if not target.is_float:
            assign("truncation", _same_values(got, _toward_zero(x, target)))
        for inter in _intermediates(source, target):
            if open_.any():
                via = _via(x[open_], inter, target)
                if via is not None:
                    dr = np.zeros(x.shape, dtype=bool)
                    dr[open_] = _same_values(got[open_], via) & ~_same_values(ref[open_], via)
                    assign("double_rounding", dr)
        assign("overflow", (x > target.max) | (x < target.lowest) | ~np.isfinite(got))
        if target.is_float:
            assign("subnormal", np.abs(x) < target.tiny)
            assign("truncation", _same_values(got, _toward_zero(x, target)))
    return cause


def _example(x: float, got: float, ref: float) -> dict[str, str]:
    return {"input": repr(float(x)), "input_hex": float(x).hex(), "result": repr(float(got)),
            "exact": repr(float(ref))}


def _compare(source: Format, target: Format, library: str, x: np.ndarray, got: np.ndarray,
             ref: np.ndarray, defined: np.ndarray, why: str | None,
             trap: np.ndarray | None = None) -> CastAuditRow:
    wrong = defined & ~_same_values(got, ref)
    bad = np.flatnonzero(wrong)
    cause = _classify(x[bad], got[bad], ref[bad], source, target)
    by_cause = {c: int((cause == i).sum()) for i, c in enumerate(CAUSES)}
    examples: dict[str, dict[str, str]] = {}
    with np.errstate(divide="ignore", invalid="ignore"):
        # the example of a cause is its input nearest to 1 in magnitude (log scale)
        distance = np.nan_to_num(np.abs(np.log2(np.abs(x[bad]))), nan=np.inf)
    for i, c in enumerate(CAUSES):
        mine = np.flatnonzero(cause == i)
        if mine.size:
            j = int(bad[mine[np.argmin(distance[mine])]])
            examples[c] = _example(x[j], got[j], ref[j])
    undefined = np.flatnonzero(~defined)
    if undefined.size:
        j = int(undefined[0])
        examples["undefined"] = {"input": repr(float(x[j])), "input_hex": float(x[j]).hex(),
                                 "result": repr(float(got[j])), "why": str(why)}
    traps = (0, 0) if trap is None else (int((defined & trap).sum()), int((wrong & trap).sum()))
    return CastAuditRow(source.name, target.name, library, int(defined.sum()), int(bad.size),
                        _frozen(by_cause), _frozen(examples), int(undefined.size), None, *traps)


def compare_results(source: Any, target: Any, inputs: Any, results: Any,
                    library: str = "custom") -> CastAuditRow:
    """Compare one cast's ``results`` on ``inputs`` with exact RNE, mismatches by cause.

    Parameters
    ----------
    source, target : format specs
        Anything `numfmt.get` accepts; ``source`` is the format the inputs are values of
        (it decides which double rounding is possible: through float32 for fp64 sources).
    inputs : array_like
        The inputs (any real dtype numpy can widen exactly to float64: values of
        ``source``).
    results : array_like
        What the cast returned, same shape (anything convertible to float64).
    library : str
        The name the row carries.

    Returns
    -------
    CastAuditRow
        As in `audit_casts`; the causes are the module docstring's.

    Raises
    ------
    ValueError
        For unknown formats or inputs and results of different shapes.

    Examples
    --------
    >>> import ml_dtypes, numpy as np
    >>> x = np.array([1 + 2**-8 + 2**-40])          # float32 rounds it onto the bf16 tie
    >>> detour = x.astype(np.float32).astype(ml_dtypes.bfloat16)     # 1.0: ties to even
    >>> row = compare_results("fp64", "bf16", x, detour)
    >>> row.by_cause["double_rounding"], row.examples["double_rounding"]["exact"]
    (1, '1.0078125')
    """
    s, t = get(source), get(target)
    with np.errstate(invalid="ignore"):          # ml_dtypes warns on NaN, exact all the same
        x = np.asarray(inputs).astype(np.float64).ravel()
    got = np.asarray(results, dtype=np.float64).ravel()
    if np.shape(inputs) != np.shape(results):
        raise ValueError(f"inputs {np.shape(inputs)} and results {np.shape(results)} differ "
                         f"in shape")
    ref, defined, why = _reference(x, t)
    return _compare(s, t, library, x, got, ref, defined, why)


# ---- inputs -----------------------------------------------------------------------------------
def _binade_range(target: Format) -> tuple[int, int]:
    if target.is_float:
        return target.emin - target.mantissa_bits - 2, target.emax + 2
    return -2, target.bits + 1


def _sampled(source: Format, target: Format, n: int, seed: int) -> np.ndarray:
    """Half random bit patterns, half random values in the target's binades widened by two."""
    utype, ftype = (np.uint64, np.float64) if source.bits == 64 else (np.uint32, np.float32)
    key = zlib.crc32(f"{source.name}->{target.name}".encode())
    rng = np.random.default_rng([seed, key])
    raw = rng.integers(0, 2**source.bits, size=n - n // 2, dtype=np.uint64).astype(utype)
    m, ebits = source.mantissa_bits, source.exponent_bits
    lo, hi = _binade_range(target)
    k = n // 2
    e = np.clip(rng.integers(lo, hi + 1, size=k) + source.bias, 1, 2**ebits - 2)
    mant = rng.integers(0, 2**m, size=k, dtype=np.uint64)
    sign = rng.integers(0, 2, size=k, dtype=np.uint64)
    ranged = (sign << np.uint64(source.bits - 1)) | (e.astype(np.uint64) << np.uint64(m)) | mant
    return np.concatenate([raw.view(ftype), ranged.astype(utype).view(ftype)])


def audit_inputs(source: Any, target: Any, sample: int = 10**6, seed: int = 0) -> np.ndarray:
    """The inputs the audit casts from ``source`` to ``target``, in the source's storage dtype.

    Every bit pattern for sources of at most 16 bits; otherwise ``sample`` seeded values (see
    the module docstring), then `numfmt.strategies.rounding_input_array(target, source)`, then
    +-0, +-inf and NaN. The same arguments give the same array.
    """
    s, t = get(source), get(target)
    dtype = storage_dtype(s, "numpy")
    if s.bits <= 16:
        return np.arange(2**s.bits, dtype=np.uint16 if s.bits > 8 else np.uint8).view(dtype)
    if s.name not in ("fp32", "fp64"):
        raise ValueError(f"source {s.name}: the audit samples only fp32 and fp64")
    specials = np.array([0.0, -0.0, np.inf, -np.inf, np.nan], dtype=dtype)
    return np.concatenate([_sampled(s, t, sample, seed), rounding_input_array(t, s), specials])


# ---- the audit --------------------------------------------------------------------------------
def _installed(library: str) -> str | None:
    """None when ``library`` imports, else why not."""
    module = {"numpy": "numpy", "torch": "torch", "ml_dtypes": "ml_dtypes", "gfloat": "gfloat"}
    try:
        __import__(module[library])
    except ImportError as err:
        return f"{library} is not installed ({err})"
    return None


def _check_libraries(libraries: Iterable[str]) -> list[str]:
    libs = list(libraries)
    for lib in libs:
        if lib not in LIBRARIES:
            raise ValueError(f"unknown library {lib!r}; known: {', '.join(LIBRARIES)}")
    return libs


def default_targets(libraries: Iterable[str] = LIBRARIES) -> list[Format]:
    """Every registered format of at most 16 bits that some installed library casts to."""
    libs = [lib for lib in _check_libraries(libraries) if _installed(lib) is None]
    return [t for t in formats() if t.bits <= 16
            and any(library_cast(lib, "fp32", t) is not None for lib in libs)]


def _check_sources(sources: Iterable[Any]) -> list[Format]:
    out = []
    for spec in sources:
        s = get(spec)
        if not s.is_float or (s.bits > 16 and s.name not in ("fp32", "fp64")):
            raise ValueError(f"source {s.name}: sources are fp64, fp32 or float formats of at "
                             f"most 16 bits")
        storage_dtype(s, "numpy")
        out.append(s)
    return out


def _check_targets(targets: Iterable[Any] | None, libs: list[str]) -> list[Format]:
    if targets is None:
        return default_targets(libs)
    out = [get(t) for t in targets]
    for t in out:
        if t.bits > 16:
            raise ValueError(f"target {t.name} has {t.bits} bits; the audit covers <= 16")
    return out


def audit_casts(sources: Iterable[Any] = SOURCES, targets: Iterable[Any] | None = None,
                libraries: Iterable[str] = LIBRARIES, sample: int = 10**6, seed: int = 0,
                progress: Callable[[str], None] | None = None) -> list[CastAuditRow]:
    """Audit every library cast from each source to each target against exact RNE.

    Parameters
    ----------
    sources : iterable of format specs
        Source formats (default fp64, fp32, bf16, fp16); anything `numfmt.get` accepts.
    targets : iterable of format specs, optional
        Target formats of at most 16 bits; default `default_targets`.
    libraries : iterable of str
        From `LIBRARIES`.
    sample : int
        Seeded random inputs per (fp32/fp64 source, target) pair, on top of the traps.
    seed : int
        Seed of the sample (non-negative).
    progress : callable, optional
        Called with one line per (source, target) pair.

    Returns
    -------
    list of CastAuditRow
        One row per (source, target, library) where the library has the cast (same source and
        target skipped), in source, target, `LIBRARIES` order; first one skipped row
        (source and target ``"*"``) per library that is not installed, and skipped rows where
        a library knows the target's dtype but cannot cast to it.

    Raises
    ------
    ValueError
        For an unknown format or library, a source that is not a float format, a target of
        more than 16 bits, or a sample/seed that is not a positive/non-negative int.

    Notes
    -----
    The causes and their order are in the module docstring. Counts, not timings: the same
    arguments and library versions give the same rows.

    Examples
    --------
    >>> rows = audit_casts(["fp32"], ["fp8_e4m3fn"], ["torch"], sample=1000)
    >>> rows[0].by_cause["overflow"] > 0       # torch saturates where RNE gives NaN
    True
    """
    if isinstance(sample, bool) or not isinstance(sample, (int, np.integer)) or sample < 1:
        raise ValueError(f"sample must be a positive int, not {sample!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, not {seed!r}")
    libs = _check_libraries(libraries)
    srcs = _check_sources(sources)
    tgts = _check_targets(targets, libs)
    say = progress or (lambda msg: None)
    rows: list[CastAuditRow] = []
    ready = []
    for lib in libs:
        why = _installed(lib)
        if why is None:
            ready.append(lib)
        else:
            rows.append(_skipped("*", "*", lib, why))
    for s in srcs:
        for t in tgts:
            if s == t:
                continue
            casts = {lib: library_cast(lib, s, t) for lib in ready}
            casts = {lib: c for lib, c in casts.items() if c is not None}
            if casts:
                rows += _audit_pair(s, t, casts, int(sample), int(seed))
                say(f"cast audit: {s.name} -> {t.name} ({', '.join(casts)})")
    return rows


def _audit_pair(s: Format, t: Format, casts: Mapping[str, Cast | str], sample: int,
                seed: int) -> list[CastAuditRow]:
    x = audit_inputs(s, t, sample, seed)
    with np.errstate(invalid="ignore"):          # ml_dtypes warns on NaN, exact all the same
        x64 = x.astype(np.float64)
    ref, defined, why = _reference(x64, t)
    trap = np.arange(x.size) >= sample if s.bits > 16 else None   # audit_inputs' layout
    rows = []
    for lib, cast in casts.items():
        if isinstance(cast, str):
            rows.append(_skipped(s.name, t.name, lib, cast))
            continue
        try:
            got = cast(x)
        except Exception as err:      # a third-party cast failing is a finding, not a crash
            rows.append(_skipped(s.name, t.name, lib, f"the cast raises {type(err).__name__}: "
                                                      f"{err}"))
            continue
        rows.append(_compare(s, t, lib, x64, got, ref, defined, why, trap))
    return rows


# ---- the command line -------------------------------------------------------------------------
def _cause_cell(row: CastAuditRow) -> str:
    if row.skipped:
        return f"skipped: {row.skipped}"
    parts = [f"{c} {n}" for c, n in row.by_cause.items() if n]
    return ", ".join(parts) if parts else "-"


def markdown(rows: Sequence[CastAuditRow]) -> str:
    """The findings table, then one example per (row, cause)."""
    table = markdown_table(
        ["source", "target", "library", "checked (traps)", "mismatches (in traps)", "by cause",
         "undefined"],
        [[r.source, r.target, r.library, f"{r.checked} ({r.trap_checked})",
          f"{r.mismatches} ({r.trap_mismatches})", _cause_cell(r), r.undefined]
         for r in rows], align=["l", "l", "l", "r", "r", "l", "r"])
    examples = markdown_table(
        ["source", "target", "library", "cause", "count", "input", "result", "exact"],
        [[r.source, r.target, r.library, c, r.by_cause.get(c, r.undefined), e["input"],
          e["result"], e.get("exact", e.get("why", ""))]
         for r in rows for c, e in r.examples.items()],
        align=["l", "l", "l", "l", "r", "l", "l", "l"])
    notes = ("mismatches: results that differ from exact round-to-nearest-even (numfmt.round_to "
             "of the exact input, the target's default overflow rule; NaN equals NaN, zeros "
             "must have the same sign). traps: the targeted inputs of "
             "numfmt.strategies.rounding_input_array (fp32/fp64 sources; the rest is the seeded "
             "sample; 16-bit sources are exhaustive). undefined: inputs with no exact answer "
             "(NaN into a format without NaN), not counted. Causes: python -m "
             "numfmt.cast_audit --help.")
    return f"{table}\n\n{notes}\n\n{examples}"


def _names(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--casts", action="store_true", help="the cast audit (the only audit here)")
    p.add_argument("--json", metavar="FILE", help="write the rows as strict JSON ('-': stdout)")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.add_argument("--sample", type=positive_int, default=10**6,
                   help="random inputs per fp32/fp64 source and target (default 10**6)")
    p.add_argument("--seed", type=int, default=0, help="seed of the sample (default 0)")
    p.add_argument("--sources", type=_names, default=list(SOURCES),
                   help="comma-separated source formats (default fp64,fp32,bf16,fp16)")
    p.add_argument("--targets", type=_names, default=None,
                   help="comma-separated target formats (default: every <= 16-bit format a "
                        "library casts to)")
    p.add_argument("--libraries", type=_names, default=list(LIBRARIES),
                   help=f"comma-separated libraries (default {','.join(LIBRARIES)})")
    return p.parse_args(argv)


def _main(argv: Sequence[str] | None) -> int:
    args = _parse(argv)
    out = check_output_file(args.json, "--json")
    if args.seed < 0:
        raise CliError(f"--seed must be non-negative, not {args.seed}")
    try:
        rows = audit_casts(args.sources, args.targets, args.libraries, sample=args.sample,
                           seed=args.seed, progress=Progress(args.quiet))
    except ValueError as err:
        raise CliError(str(err)) from None
    if out is not None:
        write_json(out, {"rows": [r.as_dict() for r in rows], "causes": list(CAUSES),
                         "sample": args.sample, "seed": args.seed})
    if out is None or str(out) != "-":
        print(markdown(rows))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m numfmt audit --casts [--json FILE] [--quiet] [--sample N] ...``.

    Parameters
    ----------
    argv : sequence of str, optional
        The arguments after ``audit`` (``--casts`` accepted and optional); default sys.argv.

    Returns
    -------
    int
        0, or 2 after one ``error:`` line for bad arguments (unknown format or library,
        unwritable --json path: checked before any work).
    """
    return run_cli(_main, argv, prog=PROG)


if __name__ == "__main__":
    raise SystemExit(main())
