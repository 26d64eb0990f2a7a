"""Encode / decode speed of quant's encodings next to torch's quantizer and torchao's MX/NVFP4.

python -m benchmarks.quant_speed [--size N] [--repeats R] [--threads T] [--quick]
                                 [--json FILE] [--quiet]

Times, in the same process and interleaved (median of R after a warm-up), on N float32
Gaussian values (16M by default, as a matrix of min(N, 4096) columns for the per-channel runs;
N is rounded down to a whole number of rows):
  ScaledInt8.encode / .decode            vs torch.quantize_per_tensor / .dequantize
  ScaledInt8.encode(axis=0) / .decode    vs torch.quantize_per_channel / .dequantize
  LogInt8.encode / .decode               vs torch.quantize_per_tensor / .dequantize
  BlockScaled.encode(x, fmt) / .decode()  vs torchao MXTensor.to_mx / NVFP4Tensor.to_nvfp4
                                         and their .dequantize(torch.float32)
and prints each ratio against its target (ScaledInt8 within 1.5x, LogInt8 within 3x,
BlockScaled at least as fast as torchao: ratio <= 1.0; a MISSED target never fails the run). All
encodes get their scale / offset up front, as torch's do, so no calibration is timed; ours
still checks for NaN and infinity, which torch's does not. The table says whether quant ran its
compiled loops (quant._native) or its torch fallback (QUANT_NATIVE=0 forces the latter).
The block-scaled rows (`quant.blockscaled`, torchao optional: rows "skipped" with the reason
without it) run on the same matrix, blocked along its rows, and the output says what each side
computes (`BLOCK_NOTES`). ``--quick`` times 64K values once, to check that the run works.
Progress goes to stderr (``--quiet`` silences it); ``--json FILE`` (``-``: stdout) writes the
rows as strict JSON.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
import warnings
from typing import Sequence

import torch

from benchmarks._timing import time_interleaved
from numfmt.cli import Progress, check_output_file, positive_int, run_cli, write_json
from quant import LogInt8, ScaledInt8, native
from quant.blockscaled import BlockScaled

TARGETS = {"ScaledInt8": 1.5, "LogInt8": 3.0, "BlockScaled": 1.0}
MAX_COLUMNS = 4096
QUICK_SIZE, QUICK_REPEATS = 1 << 16, 1

# our block formats and torchao's element dtype for MXTensor.to_mx (None: NVFP4Tensor)
BLOCK_PEERS = {"mxfp8_e4m3": "float8_e4m3fn", "mxfp8_e5m2": "float8_e5m2",
               "mxfp6_e3m2": "fp6_e3m2", "mxfp6_e2m3": "fp6_e2m3",
               "mxfp4_e2m1": "float4_e2m1fn_x2", "nvfp4": None, "nvfp4_no_tensor_scale": None}
BLOCK_NOTES = (
    "ours: BlockScaled.encode(x, fmt): the exact reference's codes (numfmt.block_codec): MX scale "
    "2**(floor(log2 amax) - emax_elem) from the exact amax, NVFP4 block scale amax / 6 rounded "
    "once to E4M3 (and FP32 tensor scale amax / 2688), elements rounded once to nearest even "
    "and saturated, NaN/inf blocks NaN-scaled; output packed: 4-bit two per byte, 6-bit four "
    "per 3 bytes, 8-bit one per byte, one byte per scale. decode(): float32, element * scale "
    "(* tensor scale) rounded once.",
    "torchao: MXTensor.to_mx(x, elem, 32) (ScaleCalculationMode.FLOOR, emulated torch ops): the "
    "scale from amax's float32 exponent bits, x / scale (scale >= 2**-126), clamped, cast to "
    "nearest even; output fp4 packed two per byte, fp6 and fp8 one per byte. "
    "NVFP4Tensor.to_nvfp4(x, 16[, per_tensor_scale]): amax / 6 rounded to float32 then to E4M3, "
    "x times a float32 reciprocal, clamped, nearest even, two per byte; for nvfp4 the timed call "
    "also computes the tensor amax and per_tensor_amax_to_scale, as ours does. dequantize("
    "torch.float32): element * scale.",
)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.quant_speed",
                                description=__doc__.splitlines()[0])
    p.add_argument("--size", type=positive_int, default=None, help="values (default 16M)")
    p.add_argument("--repeats", type=positive_int, default=None, help="timed rounds (default 7)")
    p.add_argument("--threads", type=positive_int, default=None, help="torch intra-op threads")
    p.add_argument("--quick", action="store_true",
                   help=f"{QUICK_SIZE} values, {QUICK_REPEATS} round unless given (a smoke run)")
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


def _torchao_peers() -> tuple[object, object, object, str]:
    """(MXTensor, NVFP4Tensor, per_tensor_amax_to_scale, "") from torchao, or Nones and why not."""
    try:
        from torchao.prototype.mx_formats.mx_tensor import MXTensor
        from torchao.prototype.mx_formats.nvfp4_tensor import (NVFP4Tensor,
                                                               per_tensor_amax_to_scale)
    except Exception as exc:  # ImportError, or a torchao that fails on this torch
        return None, None, None, f"torchao not importable ({type(exc).__name__}: {exc})"
    return MXTensor, NVFP4Tensor, per_tensor_amax_to_scale, ""


def _block_cases(x: torch.Tensor) -> tuple[list, str]:
    """The (format, operation, ours, torchao's) block-scaled cases on ``x`` (blocked along its
    rows), and the reason they are skipped ("" when torchao is there)."""
    mx, nv, amax_to_scale, why = _torchao_peers()
    cases = []
    for name, elem in BLOCK_PEERS.items():
        ours = BlockScaled.encode(x, name)
        if why:
            cases += [(name, op, None, None) for op in ("encode", "decode")]
            continue
        if elem is not None:
            dtype = getattr(torch, elem, elem)          # fp6 element dtypes are torchao strings
            theirs = (lambda d=dtype: mx.to_mx(x, d, 32))
        elif name == "nvfp4":                           # the tensor scale inside the timed call
            theirs = (lambda: nv.to_nvfp4(x, 16, per_tensor_scale=amax_to_scale(x.abs().max())))
        else:
            theirs = (lambda: nv.to_nvfp4(x, 16))
        peer = theirs()
        cases += [(name, "encode", lambda n=name: BlockScaled.encode(x, n), theirs),
                  (name, "decode", ours.decode, lambda p=peer: p.dequantize(torch.float32))]
    return cases, why


def _time_rows(cases: list, encoding: str | None, peer: str, repeats: int,
               progress: Progress) -> list[dict]:
    """One row per case: medians, the ratio ours / peer and its target (or "skipped")."""
    rows = []
    for enc, what, ours, theirs in cases:
        enc_name = encoding or enc
        row = {"encoding": enc_name, "format": enc if encoding else None, "operation": what,
               "peer": peer, "target": TARGETS[enc_name]}
        if ours is None:
            rows.append({**row, "status": "skipped"})
            continue
        progress(f"timing {enc} {what}")
        t = time_interleaved([("ours", ours), (peer, theirs)], repeats=repeats)
        ours_ms, peer_ms = t["ours"].median * 1e3, t[peer].median * 1e3
        ratio = ours_ms / peer_ms if peer_ms > 0 else float("inf")
        rows.append({**row, "status": "timed", "quant_ms": ours_ms, f"{peer}_ms": peer_ms,
                     "ratio": ratio, "target_met": ratio <= TARGETS[enc_name]})
    return rows


def _print_rows(rows: list[dict], first: str, peer: str, out) -> None:
    print(f"{first:22s} {'operation':20s} {'quant ms':>9s} {peer + ' ms':>11s} "
          f"{'ratio':>6s} {'target':>7s}", file=out)
    for r in rows:
        label = r["format"] or r["encoding"]
        if r["status"] == "skipped":
            print(f"{label:22s} {r['operation']:20s} {'skipped':>9s}", file=out)
            continue
        print(f"{label:22s} {r['operation']:20s} {r['quant_ms']:9.2f} {r[peer + '_ms']:11.2f} "
              f"{r['ratio']:6.2f} {'<=' + format(r['target'], '.1f'):>7s}"
              f"  {'MET' if r['target_met'] else 'MISSED'}", file=out)


def _run(argv: Sequence[str] | None) -> int:
    args = _parser().parse_args(argv)
    check_output_file(args.json, "--json")
    progress = Progress(args.quiet, prefix="[quant_speed] ")
    out = sys.stderr if args.json == "-" else sys.stdout
    if args.threads:
        torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", message=".*quantiz.*deprecated.*")
    warnings.filterwarnings("ignore", category=UserWarning, module="torch")

    size = args.size or (QUICK_SIZE if args.quick else 1 << 24)
    repeats = args.repeats or (QUICK_REPEATS if args.quick else 7)
    cols = min(MAX_COLUMNS, size)
    x = torch.randn(size // cols, cols, generator=torch.Generator().manual_seed(0))
    kernels = native.describe()
    progress(f"{x.numel():,} float32 values, {torch.get_num_threads()} torch threads, median "
             f"of {repeats}; quant runs its {kernels}")
    cases, differ = _cases(x)
    rows = _time_rows(cases, None, "torch", repeats, progress)
    bcases, why = _block_cases(x)
    block_rows = _time_rows(bcases, "BlockScaled", "torchao", repeats, progress)

    print(f"quant kernels: {kernels}; {x.numel():,} values, median of {repeats}", file=out)
    _print_rows(rows, "encoding", "torch", out)
    print(f"\nScaledInt8 codes that differ from torch's (per-tensor + per-channel, "
          f"{2 * x.numel():,} codes): {differ}. quant rounds the correctly rounded x / scale;"
          f"\ntorch multiplies by a rounded reciprocal, which moves near-ties by one code.",
          file=out)
    print(f"\nBlockScaled ({x.shape[0]} x {x.shape[1]} float32, blocks along rows) against "
          f"torchao{': skipped, ' + why if why else ''}", file=out)
    _print_rows(block_rows, "format", "torchao", out)
    for note in BLOCK_NOTES:
        print(textwrap.fill(note, 96, subsequent_indent="  "), file=out)
    if args.json:
        write_json(args.json, {"values": x.numel(), "repeats": repeats,
                               "threads": torch.get_num_threads(), "kernels": kernels,
                               "rows": rows, "codes_differing_from_torch": differ,
                               "block_rows": block_rows, "block_skipped": why or None,
                               "block_notes": list(BLOCK_NOTES)})
        progress(f"wrote {args.json}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print the table of times and ratios (2 after an ``error:`` line
    for an unusable argument)."""
    return run_cli(_run, argv, prog="quant_speed")


if __name__ == "__main__":
    raise SystemExit(main())
