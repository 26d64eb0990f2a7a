"""`python -m numfmt`: every format's limits, exact exp bounds, softmax limits and backend audit.

Markdown by default, ``--json`` for machines. The exp bounds answer "for which arguments does exp
not overflow or underflow?" exactly; the backend columns show what numpy, torch and ml_dtypes
actually do (their measured bounds and how many inputs they round wrongly).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from numfmt.audit import BACKENDS, BackendAudit, audit_all
from numfmt.expbounds import exp_bounds
from numfmt.registry import formats
from numfmt.softmax import softmax_safety


def _num(x: float) -> str:
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


def collect(classes: int, audit: bool, progress=None) -> list[dict[str, Any]]:
    """One record per format: limits, exact exp bounds, softmax limits, backend audits."""
    audits = {(a.format.name, a.backend): a for a in audit_all(progress)} if audit else {}
    rows = []
    for f in formats():
        b = exp_bounds(f)
        s = softmax_safety(f, classes)
        row: dict[str, Any] = {
            "format": f.name, "bits": f.bits, "kind": f.kind,
            "exponent_bits": f.exponent_bits, "mantissa_bits": f.mantissa_bits,
            "max": f.max, "lowest": f.lowest, "min_normal": f.tiny,
            "min_subnormal": f.smallest_subnormal, "eps": f.eps,
            "has_inf": f.has_inf, "has_nan": f.has_nan,
            "exp_max_arg": b.max_arg, "exp_min_arg": b.min_arg,
            "exp_min_normal_arg": b.min_normal_arg,
            "exp_thresholds": b.threshold_digits(25),
            "softmax_classes": classes, "naive_softmax_max_logit": s.naive_max_logit,
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
    head = ["format", "bits", "e/m", "inf/NaN", "max", "min normal", "min subnormal", "eps",
            "exp max_arg", "exp min_arg", "exp min_normal_arg",
            f"naive softmax max logit (n={rows[0]['softmax_classes']})",
            "stable softmax: spread giving p=0"]
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
        "Softmax: sum accumulated left to right in the format; 'spread giving p=0' is the logit "
        "spread (max - z) past which the max-subtracted probability rounds to 0 when the sum is n "
        "(nan: every probability is 0 or the sum of n ones overflows).",
    ]
    return "\n".join(lines + notes)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m numfmt", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", action="store_true", help="print JSON records instead of markdown")
    p.add_argument("--classes", type=int, default=10, help="classes n for the softmax limits")
    p.add_argument("--no-audit", action="store_true", help="skip the backend audit (~10 s)")
    args = p.parse_args(argv)
    if args.classes < 1:
        p.error("--classes must be a positive integer")
    audit = not args.no_audit
    start = time.perf_counter()
    rows = collect(args.classes, audit, progress=lambda m: print(m, file=sys.stderr))
    print(f"computed in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    if args.json:
        for r in rows:
            r.pop("_audits")
        json.dump(rows, sys.stdout, indent=2)
        print()
    else:
        print(markdown(rows, audit))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
