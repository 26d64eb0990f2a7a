"""Encode / decode speed of quant's int8 encodings next to torch's own quantizer.

python -m benchmarks.quant_speed [--size N] [--repeats R] [--threads T] [--json FILE] [--quiet]

Times, in the same process and interleaved (median of R after a warm-up), on N float32
Gaussian values (16M by default, as a matrix of min(N, 4096) columns for the per-channel runs;
N is rounded down to a whole number of rows):
  ScaledInt8.encode / .decode            vs torch.quantize_per_tensor / .dequantize
  ScaledInt8.encode(axis=0) / .decode    vs torch.quantize_per_channel / .dequantize
  LogInt8.encode / .decode               vs torch.quantize_per_tensor / .dequantize
and prints each ratio against its target (ScaledInt8 within 1.5x, LogInt8 within 3x). All
encodes get their scale / offset up front, as torch's do, so no calibration is timed; ours
still checks for NaN and infinity, which torch's does not. The table says whether quant ran its
compiled loops (quant._native) or its torch fallback (QUANT_NATIVE=0 forces the latter).
Progress goes to stderr (``--quiet`` silences it); ``--json FILE`` (``-``: stdout) writes the
rows as strict JSON.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from typing import Sequence

import torch

from benchmarks._timing import time_interleaved
from numfmt.cli import Progress, check_output_file, positive_int, run_cli, write_json
from quant import LogInt8, ScaledInt8, native

TARGETS = {"ScaledInt8": 1.5, "LogInt8": 3.0}
MAX_COLUMNS = 4096


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.quant_speed",
                                description=__doc__.splitlines()[0])
    p.add_argument("--size", type=positive_int, default=1 << 24, help="values (default 16M)")
    p.add_argument("--repeats", type=positive_int, default=7, help="timed rounds (default 7)")
    p.add_argument("--threads", type=positive_int, default=None, help="torch intra-op threads")
    p.add_argument("--json", metavar="FILE", help="write the rows as JSON ('-': stdout)")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    return p


def _cases(x: torch.Tensor) -> tuple[list, int]:
    """The (encoding, operation, ours, torch's) cases on ``x``, and how many of our
    ScaledInt8 codes differ from torch's."""
    flat = x.reshape(-1)
    scale = float(flat.abs().max()) / 127
    ch_scale = (x.abs().amax(dim=1).double() / 127).to(torch.float32).to(torch.float64)
    ch_zp = torch.zeros(x.shape[0], dtype=torch.int64)
    ours_t = ScaledInt8.encode(flat, scale=scale, narrow_range=False)
    theirs_t = torch.quantize_per_tensor(flat, scale, 0, torch.qint8)
    ours_c = ScaledInt8.encode(x, scale=ch_scale, axis=0, narrow_range=False)
    theirs_c = torch.quantize_per_channel(x, ch_scale, ch_zp, 0, torch.qint8)
    log = LogInt8.encode(flat)
    differ = int((ours_t.codes != theirs_t.int_repr()).sum()) + \
        int((ours_c.codes != theirs_c.int_repr()).sum())
    cases = [
        ("ScaledInt8", "encode per-tensor",
         lambda: ScaledInt8.encode(flat, scale=scale, narrow_range=False),
         lambda: torch.quantize_per_tensor(flat, scale, 0, torch.qint8)),
        ("ScaledInt8", "decode per-tensor", ours_t.decode, theirs_t.dequantize),
        ("ScaledInt8", "encode per-channel",
         lambda: ScaledInt8.encode(x, scale=ch_scale, axis=0, narrow_range=False),
         lambda: torch.quantize_per_channel(x, ch_scale, ch_zp, 0, torch.qint8)),
        ("ScaledInt8", "decode per-channel", ours_c.decode, theirs_c.dequantize),
        ("LogInt8", "encode", lambda: LogInt8.encode(flat, offset=log.offset),
         lambda: torch.quantize_per_tensor(flat, scale, 0, torch.qint8)),
        ("LogInt8", "decode", log.decode, theirs_t.dequantize),
    ]
    return cases, differ


def _run(argv: Sequence[str] | None) -> int:
    args = _parser().parse_args(argv)
    check_output_file(args.json, "--json")
    progress = Progress(args.quiet, prefix="[quant_speed] ")
    out = sys.stderr if args.json == "-" else sys.stdout
    if args.threads:
        torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", message=".*quantiz.*deprecated.*")
    warnings.filterwarnings("ignore", category=UserWarning, module="torch")

    cols = min(MAX_COLUMNS, args.size)
    x = torch.randn(args.size // cols, cols, generator=torch.Generator().manual_seed(0))
    kernels = native.describe()
    progress(f"{x.numel():,} float32 values, {torch.get_num_threads()} torch threads, median "
             f"of {args.repeats}; quant runs its {kernels}")
    cases, differ = _cases(x)
    rows = []
    for enc, what, ours, theirs in cases:
        progress(f"timing {enc} {what}")
        t = time_interleaved([("ours", ours), ("torch", theirs)], repeats=args.repeats)
        ours_ms, torch_ms = t["ours"].median * 1e3, t["torch"].median * 1e3
        ratio = ours_ms / torch_ms if torch_ms > 0 else float("inf")
        rows.append({"encoding": enc, "operation": what, "quant_ms": ours_ms,
                     "torch_ms": torch_ms, "ratio": ratio, "target": TARGETS[enc],
                     "target_met": ratio <= TARGETS[enc]})

    print(f"quant kernels: {kernels}; {x.numel():,} values, median of {args.repeats}", file=out)
    print(f"{'encoding':11s} {'operation':20s} {'quant ms':>9s} {'torch ms':>9s} "
          f"{'ratio':>6s} {'target':>7s}", file=out)
    for r in rows:
        print(f"{r['encoding']:11s} {r['operation']:20s} {r['quant_ms']:9.2f} "
              f"{r['torch_ms']:9.2f} {r['ratio']:6.2f} {'<=' + format(r['target'], '.1f'):>7s}"
              f"  {'MET' if r['target_met'] else 'MISSED'}", file=out)
    print(f"\nScaledInt8 codes that differ from torch's (per-tensor + per-channel, "
          f"{2 * x.numel():,} codes): {differ}. quant rounds the correctly rounded x / scale;"
          f"\ntorch multiplies by a rounded reciprocal, which moves near-ties by one code.",
          file=out)
    if args.json:
        write_json(args.json, {"values": x.numel(), "repeats": args.repeats,
                               "threads": torch.get_num_threads(), "kernels": kernels,
                               "rows": rows, "codes_differing_from_torch": differ})
        progress(f"wrote {args.json}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print the table of times and ratios (2 after an ``error:`` line
    for an unusable argument)."""
    return run_cli(_run, argv, prog="quant_speed")


if __name__ == "__main__":
    raise SystemExit(main())
