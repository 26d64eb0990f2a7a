"""What every command line of the four packages needs, written once.

Output paths are checked before any long work starts (`check_output_file`, `check_output_dir`),
JSON is strict (NaN and inf become ``null``, ``-`` writes to stdout), figures are written as PNG
and SVG side by side from one path, markdown tables come from one function, progress goes to
stderr unless ``--quiet``, and argument errors end in one ``error:`` line and exit status 2.
This module lives in `numfmt` because `numfmt` is the bottom of the import graph; it imports
nothing of ours and nothing heavy (matplotlib only inside `write_figure`).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path
from typing import Any, Iterable, Sequence

__all__ = [
    "CliError", "FIGURE_SUFFIXES", "Progress", "check_output_dir", "check_output_file",
    "check_figure_path", "figure_paths", "json_safe", "markdown_table", "positive_int",
    "positive_float", "nonnegative_float", "run_cli", "write_figure", "write_json",
]

FIGURE_SUFFIXES = (".png", ".svg")


class CliError(Exception):
    """A user error a command line reports as one ``error:`` line with exit status 2."""


def _fail(msg: str) -> CliError:
    return CliError(msg)


def check_output_file(path: str | os.PathLike | None, what: str = "output file",
                      allow_stdout: bool = True) -> Path | None:
    """Check that ``path`` can be written as a file, before any work; create nothing.

    Parameters
    ----------
    path : path-like or None
        The file the user named; ``None`` passes through; ``"-"`` means stdout when
        ``allow_stdout`` (returned as ``Path("-")``).
    what : str
        Names the option in the error message (``"--json"``).
    allow_stdout : bool
        Whether ``"-"`` is accepted.

    Returns
    -------
    Path or None

    Raises
    ------
    CliError
        When the path is a directory, its parent does not exist or is not a directory, or the
        file or its parent is not writable. Directories are never created.
    """
    if path is None:
        return None
    p = Path(path)
    if str(path) == "-":
        if allow_stdout:
            return p
        raise _fail(f"{what}: '-' (stdout) is not accepted here")
    if p.is_dir():
        raise _fail(f"{what}: {p} is a directory, not a file")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.exists():
        raise _fail(f"{what}: directory {parent} does not exist")
    if not parent.is_dir():
        raise _fail(f"{what}: {parent} is not a directory")
    if p.exists() and not os.access(p, os.W_OK):
        raise _fail(f"{what}: {p} is not writable")
    if not p.exists() and not os.access(parent, os.W_OK | os.X_OK):
        raise _fail(f"{what}: directory {parent} is not writable")
    return p


def check_output_dir(path: str | os.PathLike, what: str = "--out", create: bool = True) -> Path:
    """Check (and, if ``create``, make) the output directory the user named or defaulted to.

    Only ``path`` itself and its missing parents below an existing writable directory are
    created; a path under a regular file, or under an unwritable directory, is refused.

    Raises
    ------
    CliError
        When ``path`` is a file, lies under a file, or cannot be written.
    """
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise _fail(f"{what}: {p} is a file, not a directory")
    anchor = p
    while not anchor.exists():
        anchor = anchor.parent
    if not anchor.is_dir():
        raise _fail(f"{what}: {anchor} is a file, so {p} cannot be a directory")
    if not os.access(anchor, os.W_OK | os.X_OK):
        raise _fail(f"{what}: {anchor} is not writable")
    if create:
        p.mkdir(parents=True, exist_ok=True)
    return p


def figure_paths(path: str | os.PathLike) -> tuple[Path, Path]:
    """The PNG and SVG files one figure path stands for (``x.png`` -> ``x.png``, ``x.svg``)."""
    p = Path(path)
    stem = p.with_suffix("") if p.suffix.lower() in FIGURE_SUFFIXES else p
    return stem.with_suffix(".png"), stem.with_suffix(".svg")


def check_figure_path(path: str | os.PathLike | None, what: str = "--plot") -> Path | None:
    """Check a figure path: no suffix, ``.png`` or ``.svg`` (both are written), and writable.

    Raises
    ------
    CliError
        For another suffix (``.pdf`` is refused rather than silently written as PNG/SVG), or a
        path `check_output_file` refuses.
    """
    if path is None:
        return None
    p = Path(path)
    if p.is_dir() or not p.name:
        raise _fail(f"{what}: {p} is a directory; name a figure file (x.png writes x.png and "
                    f"x.svg)")
    if p.suffix and p.suffix.lower() not in FIGURE_SUFFIXES:
        raise _fail(f"{what}: figures are written as PNG and SVG; {p.name!r} has suffix "
                    f"{p.suffix!r} (use .png, .svg or no suffix)")
    for q in figure_paths(p):
        check_output_file(q, what, allow_stdout=False)
    return p


def write_figure(fig: Any, path: str | os.PathLike, dpi: int = 150) -> list[Path]:
    """Write a matplotlib figure as PNG (``dpi``) and SVG beside it, close it, return both paths."""
    import matplotlib.pyplot as plt

    png, svg = figure_paths(path)
    fig.savefig(png, dpi=dpi, bbox_inches="tight")
    fig.savefig(svg, bbox_inches="tight")
    plt.close(fig)
    return [png, svg]


def json_safe(value: Any) -> Any:
    """``value`` with every non-finite float replaced by ``None`` (JSON's null), recursively.

    Tuples become lists, numpy scalars and 0-d arrays their Python values, Paths strings.
    """
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    item = getattr(value, "item", None)
    if callable(item) and getattr(value, "ndim", 1) == 0:
        return json_safe(item())
    return value


def write_json(path: str | os.PathLike, obj: Any, indent: int = 1) -> Path:
    """Write ``obj`` as strict JSON (NaN/inf -> null) to ``path`` (``-``: stdout), atomically.

    Returns
    -------
    Path
        The path written (``Path("-")`` for stdout).
    """
    text = json.dumps(json_safe(obj), indent=indent, allow_nan=False) + "\n"
    p = Path(path)
    if str(path) == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return p
    tmp = p.with_name(f".{p.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, p)
    return p


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[Any]],
                   align: Sequence[str] | None = None) -> str:
    """A GitHub markdown table; cells are written with ``str``; ``align`` is 'l'/'r' per column."""
    rows = [[str(c) for c in r] for r in rows]
    marks = ["---:" if a == "r" else "---" for a in (align or ["l"] * len(headers))]
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(marks) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


class Progress:
    """Progress lines on stderr, silenced by ``quiet`` (the ``--quiet`` flag of every CLI)."""

    def __init__(self, quiet: bool = False, prefix: str = "") -> None:
        self.quiet, self.prefix = quiet, prefix

    def __call__(self, msg: str) -> None:
        if not self.quiet:
            print(f"{self.prefix}{msg}", file=sys.stderr, flush=True)


def _number(kind: type, test, desc: str):
    def parse(text: str):
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {desc}, not {text!r}") from None
        if isinstance(v, float) and not math.isfinite(v) or not test(v):
            raise argparse.ArgumentTypeError(f"expected {desc}, not {text!r}")
        return v
    parse.__name__ = desc
    return parse


positive_int = _number(int, lambda v: v > 0, "a positive integer")
positive_float = _number(float, lambda v: v > 0, "a positive finite number")
nonnegative_float = _number(float, lambda v: v >= 0, "a non-negative finite number")


def run_cli(main: Any, argv: Sequence[str] | None = None, prog: str = "") -> int:
    """Run ``main(argv)`` and turn `CliError` into one ``error:`` line on stderr and status 2."""
    try:
        return int(main(argv) or 0)
    except CliError as err:
        print(f"{prog + ': ' if prog else ''}error: {err}", file=sys.stderr)
        return 2
