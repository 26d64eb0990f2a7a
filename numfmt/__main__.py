"""`python -m numfmt`: every format's limits, exact exp bounds, softmax limits and backend audit.

Markdown by default, ``--json FILE`` (``-``: stdout) for machines, ``--quiet`` for no progress;
``python -m numfmt audit --casts`` runs the cast audit. The exp bounds answer "for which arguments does exp
not overflow or underflow?" exactly; the backend columns show what numpy, torch and ml_dtypes
actually do (their measured bounds and how many inputs they round wrongly).
"""

from __future__ import annotations

import argparse
import importlib
import importlib
import sys
import time
from typing import Any, Callable

from numfmt.audit import BACKENDS, BackendAudit, audit_all
from numfmt.cli import CliError, Progress, check_output_file, positive_int, run_cli, write_json
from numfmt.expbounds import exp_bounds
from numfmt.registry import formats
from numfmt.softmax import ACCUMULATIONS, softmax_safety


def _num(x: float | int) -> str:
    if isinstance(x, int):
        return str(x)
    return repr(float(x)) if x == x else "nan"


def _audit_cell(a: BackendAudit | None) -> str:
    if a is None:
        return "n/a"
    b = exp_bounds(a.format)
    wrong = f"{a.mismatches}/{a.tested} wrong" + ("" if a.exhaustive else " (sampled)")
    diffs = [f"{name} {_num(got)}" for name, got, want in (
        ("max_arg", a.max_arg, b.max_arg), ("min_arg", a.min_arg, b.min_arg),
        ("min_normal_arg", a.min_normal_arg, b.min_normal_arg)) if got != want]
    return ("bounds exact; " if not diffs else "bounds " + ", ".join(diffs) + "; ") + wrong


def collect(num_classes: int, audit: bool, progress: Callable[[str], None] | None = None,
            accumulation: str = "torch") -> list[dict[str, Any]]:
    """One record per format: limits, exact exp bounds, softmax limits, backend audits.

    Parameters
    ----------
    num_classes : int
        The class count for the softmax limits.
    audit : bool
        Whether to run the backend exp audit (about 10 s).
    progress : callable, optional
        Called with one line per audit step.
    accumulation : str
        The softmax accumulation model (`numfmt.softmax.ACCUMULATIONS`).

    Returns
    -------
    list of dict
        JSON-ready records (plus the ``_audits`` objects for the markdown cells).
    """
    audits = {(a.format.name, a.backend): a for a in audit_all(progress)} if audit else {}
    rows = []
    for f in formats():
        b = exp_bounds(f)
        s = softmax_safety(f, num_classes, accumulation=accumulation)
        row: dict[str, Any] = {
            "format": f.name, "bits": f.bits, "kind": f.kind,
            "exponent_bits": f.exponent_bits, "mantissa_bits": f.mantissa_bits,
            "max": f.max, "lowest": f.lowest, "min_normal": f.tiny,
            "min_subnormal": f.smallest_subnormal, "eps": f.eps,
            "has_inf": f.has_inf, "has_nan": f.has_nan,
            "exp_max_arg": b.max_arg, "exp_min_arg": b.min_arg,
            "exp_min_normal_arg": b.min_normal_arg,
            "exp_thresholds": b.threshold_digits(25),
            "softmax_classes": num_classes, "softmax_accumulation": accumulation,
            "naive_softmax_max_logit": s.naive_max_logit,
            "stable_softmax_zero_spread": s.stable_zero_spread,
            "stable_softmax_prob_zero_spread": s.stable_prob_zero_spread,
            "backends": {},
        }
        for backend in BACKENDS:
            a = audits.get((f.name, backend))
            if a is not None:
                row["backends"][backend] = {
                    "tested": a.tested, "exhaustive": a.exhaustive, "mismatches": a.mismatches,
                    "max_arg": a.max_arg, "min_arg": a.min_arg,
                    "min_normal_arg": a.min_normal_arg, "bounds_exact": a.bounds_exact,
                    "example_wrong_input": a.worst_input,
                }
        row["_audits"] = {k: audits.get((f.name, k)) for k in BACKENDS}
        rows.append(row)
    return rows


def markdown(rows: list[dict[str, Any]], audit: bool) -> str:
    """The records of `collect` as one markdown table with its notes.

    Parameters
    ----------
    rows : list of dict
        From `collect`.
    audit : bool
        Whether the backend audit columns are shown.

    Returns
    -------
    str
    """
    head = ["format", "bits", "e/m", "inf/NaN", "max", "min normal", "min subnormal", "eps",
            "exp max_arg", "exp min_arg", "exp min_normal_arg",
            f"naive softmax max logit (n={rows[0]['softmax_classes']})",
            "stable softmax: last spread with p>0"]
    if audit:
        head += [f"{b} exp" for b in BACKENDS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        specials = ("inf+NaN" if r["has_inf"] else "NaN only" if r["has_nan"] else
                    "none (saturates)" if r["kind"] == "float" else "none (integer)")
        cells = [r["format"], str(r["bits"]), f"{r['exponent_bits']}/{r['mantissa_bits']}",
                 specials, _num(r["max"]), _num(r["min_normal"]),
                 _num(r["min_subnormal"]), _num(r["eps"]), _num(r["exp_max_arg"]),
                 _num(r["exp_min_arg"]), _num(r["exp_min_normal_arg"]),
                 _num(r["naive_softmax_max_logit"]),
                 _num(r["stable_softmax_prob_zero_spread"])]
        if audit:
            cells += [_audit_cell(r["_audits"][b]) for b in BACKENDS]
        lines.append("| " + " | ".join(cells) + " |")
    notes = [
        "",
        "exp max_arg: largest value of the format whose exp, correctly rounded into it, is finite "
        "(not clamped, for formats without inf); exp min_arg: most negative value whose exp is "
        "nonzero; exp min_normal_arg: most negative value whose exp is >= min normal. Proven with "
        "interval arithmetic. Integer formats: integer arguments, exp rounded to the nearest "
        "integer.",
        f"Softmax (sum accumulated as '{rows[0]['softmax_accumulation']}', see "
        "numfmt.softmax): naive max logit is the largest logit L with which n logits at L sum "
        "without overflow; 'spread giving p=0' is the largest spread (max - z) whose "
        "max-subtracted probability is still nonzero when the other n - 1 logits are at the max "
        "(every larger spread gives exactly 0; nan: every probability is 0 or n ones overflow).",
    ]
    return "\n".join(lines + notes)


def _table_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m numfmt", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--classes", "--num-classes", dest="num_classes", type=positive_int,
                   default=10, help="class count n for the softmax limits (default 10)")
    p.add_argument("--accumulation", choices=ACCUMULATIONS, default="torch",
                   help="how the softmax sum is accumulated (default: as torch does)")
    p.add_argument("--json", metavar="FILE", default=None,
                   help="also write the records as strict JSON to FILE ('-': stdout, no table)")
    p.add_argument("--no-audit", action="store_true", help="skip the backend audit (~10 s)")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    return p


def _audit_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m numfmt audit",
                                description="Audits of what other libraries compute, against the exact answer.")
    p.add_argument("--casts", action="store_true",
                   help="the cast audit (numfmt.cast_audit): every backend's casts against "
                        "exact rounding")
    p.add_argument("--blocks", action="store_true",
                   help="the block audit (numfmt.block_audit): torchao's mx_formats and gfloat's "
                        "block functions against the exact block reference")
    return p


def _run_table(argv: list[str]) -> int:
    args = _table_parser().parse_args(argv)
    out = check_output_file(args.json, what="--json")
    progress = Progress(args.quiet)
    audit = not args.no_audit
    start = time.perf_counter()
    rows = collect(args.num_classes, audit, progress=progress, accumulation=args.accumulation)
    progress(f"computed in {time.perf_counter() - start:.1f} s")
    table = markdown(rows, audit)
    if out is not None:
        for r in rows:
            r.pop("_audits")
        write_json(out, rows)
        if str(out) != "-":
            progress(f"wrote {out}")
    if out is None or str(out) != "-":
        print(table)
    return 0


_AUDITS = {"--casts": "numfmt.cast_audit", "--blocks": "numfmt.block_audit"}


def _run_audit(argv: list[str]) -> int:
    chosen = [flag for flag in _AUDITS if flag in argv]
    if len(chosen) > 1:
        raise CliError("audit: choose one of --casts and --blocks")
    if not chosen:
        _audit_parser().parse_args(argv)            # --help prints the choices
        raise CliError("audit: name what to audit: --casts or --blocks")
    flag = chosen[0]
    rest = [a for a in argv if a != flag]           # the rest (--help too) is that audit's
    module = importlib.import_module(_AUDITS[flag])
    return int(module.main(rest) or 0)


def main(argv: list[str] | None = None) -> int:
    """The command line: the format table (default, or ``table``) or ``audit``.

    Parameters
    ----------
    argv : list of str, optional
        Arguments without the program name; ``sys.argv[1:]`` when omitted.

    Returns
    -------
    int
        The exit status (0; argument errors raise `numfmt.cli.CliError`, which `run_cli`
        turns into an ``error:`` line and status 2).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "audit":
        return _run_audit(argv[1:])
    if argv and argv[0] == "table":
        argv = argv[1:]
    return _run_table(argv)


if __name__ == "__main__":
    raise SystemExit(run_cli(main, prog="python -m numfmt"))
