"""Encode / decode speed of quant's int8 encodings next to torch's own quantizer.

python -m benchmarks.quant_speed [--size N] [--repeats R] [--threads T]

Times, in the same process and interleaved (best of R), on N float32 Gaussian values (16M by
default, as a 4096-column matrix for the per-channel runs):
  ScaledInt8.encode / .decode            vs torch.quantize_per_tensor / .dequantize
  ScaledInt8.encode(axis=0) / .decode    vs torch.quantize_per_channel / .dequantize
  LogInt8.encode / .decode               vs torch.quantize_per_tensor / .dequantize
and prints each ratio against its target (ScaledInt8 within 1.5x, LogInt8 within 3x). All
encodes get their scale / offset up front, as torch's do, so no calibration is timed; ours
still checks for NaN and infinity, which torch's does not. The table says whether quant ran its
compiled loops (quant._native) or its torch fallback (QUANT_NATIVE=0 forces the latter).
Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from collections.abc import Callable

import torch

from quant import LogInt8, ScaledInt8, native

TARGETS = {"ScaledInt8": 1.5, "LogInt8": 3.0}


def best_of(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Best wall time in ms of each function, the functions interleaved round by round."""
    best = {k: float("inf") for k in fns}
    for f in fns.values():                                   # warm-up (allocator, caches)
        f()
    for _ in range(repeats):
        for k, f in fns.items():
            t0 = time.perf_counter()
            f()
            best[k] = min(best[k], (time.perf_counter() - t0) * 1e3)
    return best


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the table of times and ratios."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.quant_speed",
                                description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=1 << 24, help="values (default 16M)")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", message=".*quantiz.*deprecated.*")
    warnings.filterwarnings("ignore", category=UserWarning, module="torch")

    cols = 4096
    g = torch.Generator().manual_seed(0)
    x = torch.randn(args.size // cols, cols, generator=g)
    flat = x.reshape(-1)
    scale = float(flat.abs().max()) / 127
    ch_scale = (x.abs().amax(dim=1).double() / 127).to(torch.float32).to(torch.float64)
    ch_zp = torch.zeros(x.shape[0], dtype=torch.int64)

    kernels = native.describe()
    print(f"quant encode/decode speed: {flat.numel():,} float32 values, "
          f"{torch.get_num_threads()} torch threads, best of {args.repeats}; quant runs its "
          f"{kernels}", file=sys.stderr)
    ours_t = ScaledInt8.encode(flat, scale=scale, narrow_range=False)
    theirs_t = torch.quantize_per_tensor(flat, scale, 0, torch.qint8)
    ours_c = ScaledInt8.encode(x, scale=ch_scale, axis=0, narrow_range=False)
    theirs_c = torch.quantize_per_channel(x, ch_scale, ch_zp, 0, torch.qint8)
    log = LogInt8.encode(flat)
    differ = int((ours_t.codes != theirs_t.int_repr()).sum()) + \
        int((ours_c.codes != theirs_c.int_repr()).sum())

    rows = []
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
    for enc, what, ours, theirs in cases:
        print(f"  timing {enc} {what} ...", file=sys.stderr, flush=True)
        t = best_of({"ours": ours, "torch": theirs}, args.repeats)
        rows.append((enc, what, t["ours"], t["torch"]))

    print(f"\nquant kernels: {kernels}")
    print(f"{'encoding':11s} {'operation':20s} {'quant ms':>9s} {'torch ms':>9s} "
          f"{'ratio':>6s} {'target':>7s}")
    for enc, what, ours_ms, torch_ms in rows:
        ratio = ours_ms / torch_ms
        target = TARGETS[enc]
        verdict = "ok" if ratio <= target else "MISSED"
        print(f"{enc:11s} {what:20s} {ours_ms:9.1f} {torch_ms:9.1f} {ratio:6.2f} "
              f"{'<=' + format(target, '.1f'):>7s}  {verdict}")
    print(f"\nScaledInt8 codes that differ from torch's (per-tensor + per-channel, "
          f"{2 * flat.numel():,} codes): {differ}. quant rounds the correctly rounded x / scale;"
          f"\ntorch multiplies by a rounded reciprocal, which moves near-ties by one code.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
