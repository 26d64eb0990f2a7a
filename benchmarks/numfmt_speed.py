"""`python -m benchmarks.numfmt_speed`: round_to against torch's native casts, and exp-bound cost.

Times `numfmt.round_to` on a float32 tensor (16M elements by default) into BF16, FP16 and TF32,
beside torch's own round trip ``x.to(dtype).float()`` in the same run, and prints the ratios.
Targets: round_to no worse than 2x the native cast; TF32 emulation within 2x of the BF16 cast.
Also times computing every format's exp bounds from scratch, with their interval proofs
(target: under 1 s in total).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

import numfmt
from numfmt.expbounds import _exp_bounds


def _median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.numfmt_speed", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--elements", type=int, default=16 * 2**20)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--json", metavar="FILE", help="write the figures as JSON")
    args = p.parse_args(argv)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(args.elements, generator=g) * 100
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{args.elements} float32 elements, median of {args.repeats}")
    native = {
        "bf16": _median_seconds(lambda: x.to(torch.bfloat16).float(), args.repeats),
        "fp16": _median_seconds(lambda: x.to(torch.float16).float(), args.repeats),
    }
    ours = {name: _median_seconds(lambda n=name: numfmt.round_to(x, n), args.repeats)
            for name in ("bf16", "fp16", "tf32")}
    rows = []
    print("\n| format | numfmt.round_to (ms) | native cast (ms) | ratio | target |")
    print("|---|---|---|---|---|")
    for name in ("bf16", "fp16", "tf32"):
        ref_name = name if name in native else "bf16"
        ratio = ours[name] / native[ref_name]
        ok = ratio <= 2.0
        note = "x.to(bfloat16).float()" if name == "tf32" else f"x.to({name}).float()"
        print(f"| {name} | {ours[name] * 1e3:.1f} | {native[ref_name] * 1e3:.1f} ({note}) | "
              f"{ratio:.2f}x | <= 2x: {'met' if ok else 'MISSED'} |")
        rows.append({"format": name, "ours_s": ours[name], "native_s": native[ref_name],
                     "ratio": ratio, "target_met": ok})

    _exp_bounds.cache_clear()
    t0 = time.perf_counter()
    for f in numfmt.formats():
        numfmt.exp_bounds(f)
    bounds_s = time.perf_counter() - t0
    print(f"\nexp bounds of all {len(numfmt.formats())} formats, proven: {bounds_s * 1e3:.1f} ms "
          f"(target < 1000 ms: {'met' if bounds_s < 1 else 'MISSED'})")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"round_to": rows, "exp_bounds_seconds": bounds_s}, fh, indent=2)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
