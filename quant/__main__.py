"""python -m quant [--plot FILE] [--json FILE]: how far can 256 codes stretch?

Prints, per distribution and encoding, the dynamic range, the max and RMS relative error, the
SQNR, and for +, -, *, / whether the checked operation is exact, approximate (with its measured
worst relative error) or unsupported, with the share of results that overflowed or underflowed.
Then the exhaustive Gaussian-log error and an accumulator proof. --plot writes the worst
relative error against magnitude (PNG and SVG); --json writes one record per (encoding,
distribution).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import torch

from .accumulator import accumulator_bound
from .report import (DISTRIBUTIONS, ENCODINGS, EXTRA_ENCODINGS, compare, error_by_magnitude,
                     gaussian_log_error)


def _num(v: float, fmt: str) -> str:
    width = int(fmt.split(".")[0])
    if math.isnan(v):
        return "-".rjust(width)
    return format(v, fmt) if math.isfinite(v) else ("inf" if v > 0 else "-inf").rjust(width)


def _table(records: list) -> str:
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


def _plot(path: Path) -> list[Path]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    centres, curves = error_by_magnitude()
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    styles = {"scaled_int8_per_channel": "--", "log_int8_frac2": "-."}
    for name in ENCODINGS + EXTRA_ENCODINGS:
        ax.plot(centres.numpy(), curves[name].clamp(min=1e-9).numpy(), marker=".", label=name,
                linestyle=styles.get(name, "-"))
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("|x| (log-uniform sample, 12 decades)")
    ax.set_ylabel("worst relative error in bin")
    ax.set_title("Relative error against magnitude, 8-bit encodings")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    stem = path.with_suffix("") if path.suffix.lower() in (".png", ".svg") else path
    outs = [stem.with_suffix(".png"), stem.with_suffix(".svg")]
    for out in outs:
        fig.savefig(out)
    plt.close(fig)
    return outs


def main(argv: list[str] | None = None) -> int:
    """Print the comparison table; optionally write the plot and the JSON records."""
    p = argparse.ArgumentParser(prog="python -m quant", description=__doc__.splitlines()[0])
    p.add_argument("--plot", type=Path, help="write error-vs-magnitude plot (PNG and SVG)")
    p.add_argument("--json", type=Path, help="write one record per (encoding, distribution)")
    args = p.parse_args(argv)
    # The tensors here are small (32K values); on a shared 2-core machine intra-op threads
    # cost far more in synchronisation than they save, so the CLI runs single-threaded.
    torch.set_num_threads(1)

    print("measuring ...", file=sys.stderr, flush=True)
    records = compare(DISTRIBUTIONS, ENCODINGS + EXTRA_ENCODINGS)
    print("INT8 holds 256 codes. Per distribution (2 x 32,768 float32 samples) and encoding: "
          "dynamic range (largest / smallest\nnonzero magnitude), max relative error (all "
          "values; 'in range': values between those magnitudes), RMS relative\nerror, SQNR, "
          "and checked +, -, *, / on pairs of encoded samples under SATURATE: 'exact', or the "
          "worst relative error\nof in-range results, then o/u = share of results that "
          "overflowed the range / flushed to 0 (scaled * keeps the product scale)\n")
    print(_table(records))
    g = gaussian_log_error(3)
    print(f"\nLogInt8 addition via the Gaussian-log table ({int(g['table_entries'])} entries, "
          f"frac_bits=3), all {int(g['pairs']):,} pairs of nonzero codes against the exact sum:")
    print(f"  +: max relative error {g['add_max_rel_error']:.4%}   -: "
          f"{g['sub_max_rel_error']:.4%}   bound 2**(1/16) - 1 = {g['bound']:.4%}   "
          f"x - x is exactly 0: {bool(g['sub_exact_zeros'])}")
    proof = accumulator_bound((0, 255), (-128, 127), 784)
    print(f"\nAccumulator proof, 784 uint8 pixels x int8 weights: {proof.reason}")
    if args.plot:
        outs = _plot(args.plot)
        print(f"\nwrote {', '.join(map(str, outs))}", file=sys.stderr)
    if args.json:
        rows = [r.as_json() for r in records if r.encoding in ENCODINGS]
        args.json.write_text(json.dumps(rows, indent=1, allow_nan=False) + "\n")
        print(f"wrote {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
