"""python -m quant [--plot FILE] [--json FILE] [--quiet]: how far can 256 codes stretch?

Prints, per distribution and encoding, the dynamic range, the max and RMS relative error, the
SQNR, and for +, -, *, / whether the checked operation is exact, approximate (with its measured
worst relative error) or unsupported, with the share of results that overflowed or underflowed.
Then the exhaustive Gaussian-log error and an accumulator proof. --plot writes the worst
relative error against magnitude (PNG and SVG); --json writes one record per (encoding,
distribution) as strict JSON ('-' for stdout; the table then goes to stderr). Output paths are
checked before any work; progress goes to stderr unless --quiet.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TextIO

import torch

import numfmt
from numfmt import cli

from .accumulator import accumulator_bound
from .report import (DISTRIBUTIONS, ENCODINGS, EXTRA_ENCODINGS, SHAPE, compare,
                     error_by_magnitude, gaussian_log_error)

__all__ = ["main", "table"]


def _num(v: float, fmt: str) -> str:
    width = int(fmt.split(".")[0])
    if v != v:                                        # NaN: nothing measured
        return "-".rjust(width)
    return format(v, fmt) if abs(v) != float("inf") else ("inf" if v > 0 else "-inf").rjust(width)


def table(records: list) -> str:
    """The comparison table of `quant.report.compare` records, as text.

    Parameters
    ----------
    records : list of Record
        From `quant.report.compare` (with the operations measured).

    Returns
    -------
    str
    """
    w = max(len(o.cell()) for r in records for o in r.ops)
    head = (f"{'distribution':24s} {'encoding':24s} {'range dB':>8s} {'max rel':>9s} "
            f"{'in range':>9s} {'rms rel':>9s} {'SQNR dB':>8s}  "
            + " ".join(f"{op:{w}s}" for op in "+-*/"))
    lines = [head, "-" * len(head)]
    last = None
    for r in records:
        if last is not None and r.distribution != last:
            lines.append("")
        last = r.distribution
        cells = " ".join(f"{o.cell():{w}s}" for o in r.ops)
        lines.append(f"{r.distribution:24s} {r.encoding:24s} {_num(r.dynamic_range_db, '8.1f')} "
                     f"{_num(r.max_rel_error, '9.2e')} {_num(r.max_rel_error_in_range, '9.2e')} "
                     f"{_num(r.rms_rel_error, '9.2e')} {_num(r.sqnr_db, '8.1f')}  {cells}")
    return "\n".join(lines)


_STYLES = {  # per-channel is drawn over per-tensor: on this sample the two coincide
    "int8": dict(color="tab:gray", marker="."),
    "scaled_int8_per_tensor": dict(color="tab:orange", linewidth=5, alpha=0.45),
    "scaled_int8_per_channel": dict(color="tab:red", linestyle="--", marker="x", markersize=4),
    "log_int8": dict(color="tab:blue", marker="."),
    "log_int8_frac2": dict(color="tab:green", linestyle="-.", marker="."),
}


def _plot(path: Path) -> list[Path]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    centres, curves = error_by_magnitude()
    fig, ax = plt.subplots(figsize=(8, 4.8))
    for name in ENCODINGS + EXTRA_ENCODINGS:
        label = name
        if name == "scaled_int8_per_channel":
            label += (f" ({SHAPE[0]} rows of one distribution:\n"
                      f"  drawn on top of per-tensor, equal)")
        ax.plot(centres.numpy(), curves[name].clamp(min=1e-9).numpy(), label=label,
                **_STYLES[name])
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("|x| (log-uniform sample, 12 decades)")
    ax.set_ylabel("worst relative error in bin (1: flushed to 0)")
    ax.set_title("Relative error against magnitude, 8-bit encodings")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="lower left", framealpha=0.9)
    fig.tight_layout()
    return cli.write_figure(fig, path)


def _report(out: TextIO, records: list, progress: cli.Progress) -> None:
    print("INT8 holds 256 codes. Per distribution (2 x 32,768 float32 samples) and encoding: "
          "dynamic range (largest / smallest\nnonzero magnitude), max relative error (all "
          "values; 'in range': values between those magnitudes), RMS relative\nerror, SQNR, "
          "and checked +, -, *, / on pairs of encoded samples under SATURATE: 'exact', or the "
          "worst relative error\nof in-range results, then o/u = share of results that "
          "overflowed the range / flushed to 0 (scaled * keeps the product scale)\n", file=out)
    print(table(records), file=out)
    progress("checking the Gaussian-log table on every pair of codes ...")
    g = gaussian_log_error(3)
    print(f"\nLogInt8 addition via the Gaussian-log table ({int(g['table_entries'])} entries, "
          f"frac_bits=3), all {int(g['pairs']):,} pairs of nonzero codes against the exact sum:",
          file=out)
    print(f"  +: max relative error {g['add_max_rel_error']:.4%}   -: "
          f"{g['sub_max_rel_error']:.4%}   bound 2**(1/16) - 1 = {g['bound']:.4%}   "
          f"x - x is exactly 0: {bool(g['sub_exact_zeros'])}", file=out)
    u8, s8 = numfmt.get("uint8"), numfmt.get("int8")
    proof = accumulator_bound((int(u8.lowest), int(u8.max)), (int(s8.lowest), int(s8.max)), 784)
    print(f"\nAccumulator proof, 784 uint8 pixels x int8 weights: {proof.reason}", file=out)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m quant", description=__doc__.splitlines()[0])
    p.add_argument("--plot", metavar="FILE",
                   help="write the error-vs-magnitude plot (PNG and SVG; .png, .svg or no suffix)")
    p.add_argument("--json", metavar="FILE",
                   help="write one record per (encoding, distribution) as strict JSON ('-': "
                        "stdout)")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    return p


def _main(argv: list[str] | None) -> int:
    args = _parser().parse_args(argv)
    if args.plot is not None and Path(args.plot).is_dir():     # numfmt.cli cannot name "."
        raise cli.CliError(f"--plot: {args.plot} is a directory, not a file")
    plot = cli.check_figure_path(args.plot, "--plot")          # before any work
    json_path = cli.check_output_file(args.json, "--json")
    progress = cli.Progress(args.quiet)
    # The tensors here are small (32K values); on a shared 2-core machine intra-op threads
    # cost far more in synchronisation than they save, so the CLI runs single-threaded.
    torch.set_num_threads(1)
    progress("measuring every encoding on every distribution ...")
    records = compare(DISTRIBUTIONS, ENCODINGS + EXTRA_ENCODINGS)
    out = sys.stderr if json_path is not None and str(json_path) == "-" else sys.stdout
    _report(out, records, progress)
    if plot is not None:
        progress("plotting ...")
        outs = _plot(plot)
        progress(f"wrote {', '.join(map(str, outs))}")
    if json_path is not None:
        cli.write_json(json_path, [r.as_json() for r in records if r.encoding in ENCODINGS])
        if str(json_path) != "-":
            progress(f"wrote {json_path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Print the comparison table; optionally write the plot and the JSON records.

    Parameters
    ----------
    argv : list of str, optional
        The arguments (``sys.argv[1:]`` when None).

    Returns
    -------
    int
        0, or 2 after an ``error:`` line for a bad output path (checked before any work).
    """
    return cli.run_cli(_main, argv, prog="python -m quant")


if __name__ == "__main__":
    raise SystemExit(main())
