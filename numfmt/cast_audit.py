"""The cast audit: what the casts people call return, against the exact round-to-nearest-even.

For each source format (fp64, fp32, bf16, fp16), each target format of at most 16 bits and each
library that has the cast (`numfmt.library_casts`), every result is compared with the exact
answer and each mismatch given a cause (`numfmt.cast_compare`: the rules and their order).

Inputs: every bit pattern of a source of at most 16 bits; for fp32 and fp64 a seeded sample (half
uniform random bit patterns, half random values whose binade is uniform over the target's range
widened by two binades each side) plus the targeted traps of
`numfmt.cast_inputs.rounding_input_array` (midpoints and their neighbours, the overflow tie, the
underflow midpoint, double-rounding traps) and +-0, +-inf, NaN.

``python -m numfmt audit --casts`` (or ``python -m numfmt.cast_audit``) prints the findings as a
markdown table; ``--json FILE`` writes them as strict JSON.
"""

from __future__ import annotations

import argparse
import zlib
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

import numfmt.cast_compare as cast_compare
from numfmt.cast_compare import (CAUSES, CastAuditRow, compare_results, compare_with_reference,
                                 exact_reference, skipped_row)
from numfmt.cast_inputs import rounding_input_array, storage_dtype
from numfmt.cast_report import markdown, summary_markdown
from numfmt.cli import (CliError, Progress, check_output_file, positive_int,
                        run_cli, write_json)
from numfmt.format import Format
from numfmt.library_casts import LIBRARIES, Cast, installed, library_cast
from numfmt.registry import formats, get

__all__ = ["CAUSES", "LIBRARIES", "SOURCES", "CastAuditRow", "audit_casts", "audit_inputs",
           "compare_results", "default_targets", "library_cast", "library_versions", "main",
           "markdown", "summary_markdown"]

SOURCES = ("fp64", "fp32", "bf16", "fp16")
PROG = "python -m numfmt audit --casts"


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
    """The inputs the audit casts from ``source`` to ``target``.

    Parameters
    ----------
    source, target : format specs
        Anything `numfmt.get` accepts; the source is fp64, fp32 or a format of <= 16 bits.
    sample : int
        Seeded random inputs for fp32/fp64 sources (ignored for exhaustive sources).
    seed : int
        Seed; the same arguments give the same array.

    Returns
    -------
    ndarray
        In the source's storage dtype: every bit pattern for sources of at most 16 bits;
        otherwise ``sample`` seeded values (the module docstring says how), then
        `numfmt.cast_inputs.rounding_input_array(target, source)`, then +-0, +-inf and NaN.

    Raises
    ------
    ValueError
        For an unknown format, or a source wider than 16 bits other than fp32/fp64.
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
def _check_libraries(libraries: Iterable[str]) -> list[str]:
    libs = list(libraries)
    for lib in libs:
        if lib not in LIBRARIES:
            raise ValueError(f"unknown library {lib!r}; known: {', '.join(LIBRARIES)}")
    return libs


def default_targets(libraries: Iterable[str] = LIBRARIES) -> list[Format]:
    """Every registered format of at most 16 bits that some installed library casts to.

    Parameters
    ----------
    libraries : iterable of str
        From `LIBRARIES`; those not installed are ignored.

    Returns
    -------
    list of Format
        In `numfmt.formats` order.
    """
    libs = [lib for lib in _check_libraries(libraries) if installed(lib) is None]
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
    # one name is one format, not its letters
    libs = _check_libraries([libraries] if isinstance(libraries, str) else libraries)
    srcs = _check_sources([sources] if isinstance(sources, str) else sources)
    tgts = _check_targets([targets] if isinstance(targets, str) else targets, libs)
    say = progress or (lambda msg: None)
    rows: list[CastAuditRow] = []
    ready = []
    for lib in libs:
        why = installed(lib)
        if why is None:
            ready.append(lib)
        else:
            rows.append(skipped_row("*", "*", lib, why))
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
    ref, defined, why = exact_reference(x64, t)
    trap = np.arange(x.size) >= sample if s.bits > 16 else None   # audit_inputs' layout
    rows = []
    for lib, cast in casts.items():
        if isinstance(cast, str):
            rows.append(skipped_row(s.name, t.name, lib, cast))
            continue
        try:
            got = cast(x)
        except Exception as err:      # a third-party cast failing is a finding, not a crash
            rows.append(skipped_row(s.name, t.name, lib, f"the cast raises {type(err).__name__}: "
                                                      f"{err}"))
            continue
        rows.append(compare_with_reference(s, t, lib, x64, got, ref, defined, why, trap))
    return rows


# ---- the command line -------------------------------------------------------------------------
def library_versions(libraries: Iterable[str] = LIBRARIES) -> dict[str, str]:
    """The installed version of each library (``"not installed"`` otherwise), for the record.

    Parameters
    ----------
    libraries : iterable of str
        Distribution names (`LIBRARIES`).

    Returns
    -------
    dict of str to str
    """
    from importlib import metadata

    out = {}
    for lib in libraries:
        try:
            out[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            out[lib] = "not installed"
    return out


def _names(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__, epilog=cast_compare.__doc__,
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
    versions = library_versions(args.libraries)
    if out is not None:
        write_json(out, {"rows": [r.as_dict() for r in rows], "causes": list(CAUSES),
                         "sample": args.sample, "seed": args.seed, "versions": versions})
    if out is None or str(out) != "-":
        print(summary_markdown(rows) + "\n\n" + markdown(rows))
        print("\nversions: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
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
