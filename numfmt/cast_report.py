"""The cast audit's findings as markdown: the summary matrix and the per-row tables.

Split from `numfmt.cast_audit` (which computes the rows and runs the command line) so that each
module holds one concept; `numfmt.cast_audit` re-exports `markdown` and `summary_markdown`.
"""

from __future__ import annotations

from typing import Sequence

from numfmt.cast_compare import CastAuditRow
from numfmt.cli import markdown_table

__all__ = ["markdown", "summary_markdown"]


def _cause_cell(row: CastAuditRow) -> str:
    if row.skipped:
        return f"skipped: {row.skipped}"
    parts = [f"{c} {n}" for c, n in row.by_cause.items() if n]
    return ", ".join(parts) if parts else "-"


def _summary_cell(row: CastAuditRow | None) -> str:
    if row is None:
        return "-"
    if row.skipped:
        return "skipped"
    if not row.mismatches:
        return f"0 / {row.checked:,}"
    causes = ", ".join(f"{c} {n:,}" for c, n in row.by_cause.items() if n)
    return f"**{row.mismatches:,}** / {row.checked:,} ({causes})"


def summary_markdown(rows: Sequence[CastAuditRow]) -> str:
    """One line per (source, target), one column per library: mismatches / checked (causes).

    numpy and ml_dtypes share a column (``astype``: a pair has one or the other). Rows of
    absent libraries (source ``"*"``) are left out; `markdown` shows them.

    Parameters
    ----------
    rows : sequence of CastAuditRow

    Returns
    -------
    str
    """
    columns = {"torch": "torch `.to`", "numpy": "numpy / ml_dtypes `astype`",
               "ml_dtypes": "numpy / ml_dtypes `astype`", "gfloat": "gfloat `round_ndarray`"}
    present = list(dict.fromkeys(columns[r.library] for r in rows if r.source != "*"))
    cells: dict[tuple[str, str], dict[str, CastAuditRow]] = {}
    for r in rows:
        if r.source != "*":
            cells.setdefault((r.source, r.target), {})[columns[r.library]] = r
    return markdown_table(["source -> target", *present],
                          [[f"{s} -> {t}", *(_summary_cell(by.get(c)) for c in present)]
                           for (s, t), by in cells.items()])


def markdown(rows: Sequence[CastAuditRow]) -> str:
    """The findings as markdown: one table of rows, a note, one table of examples.

    Parameters
    ----------
    rows : sequence of CastAuditRow

    Returns
    -------
    str
    """
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
             "numfmt.cast_inputs.rounding_input_array (fp32/fp64 sources; the rest is the seeded "
             "sample; 16-bit sources are exhaustive). undefined: inputs with no exact answer "
             "(NaN into a format without NaN), not counted. The causes' rules: python -m "
             "numfmt.cast_audit --help.")
    return f"{table}\n\n{notes}\n\n{examples}"
