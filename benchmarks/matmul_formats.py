"""`python -m benchmarks.matmul_formats`: a device's real TF32/BF16/FP16 matmul against our emulation.

For random float32 matrices A (M x K) and B (K x N) it runs the device's own reduced-precision
matmul and compares it with references built from `numfmt.round_to`:

* tf32: torch with ``torch.backends.cuda.matmul.allow_tf32 = True`` (on CUDA; on the CPU torch has
  no TF32 and the row reports plain FP32). References: inputs rounded to TF32 by round-to-nearest-
  even (our emulation), by round-half-away (``cvt.rna``) and by truncation; products (exact in
  float64) summed in float64, whose error is orders of magnitude below an FP32 ulp at these
  sizes; the result rounded once to FP32.
* bf16 / fp16: ``A.to(dtype) @ B.to(dtype)``; reference: the rounded inputs' products summed in
  float64, rounded once to the dtype.

Reported per case: the share of outputs equal bit for bit to each reference and the largest error
relative to |A| @ |B| (the size of each dot product's terms), in units of the output format's eps. A device that accumulates in FP32 typically differs from the
single-rounding reference by a few ulps; the input-rounding column that matches best says how the
hardware converts FP32 to TF32. Run it where a GPU exists (``--device cuda``); ``--device cpu``
checks the CPU's bf16/fp16 kernels.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

import torch

import numfmt
from numfmt.cli import (CliError, Progress, check_output_file, markdown_table, positive_int,
                        run_cli, write_json)


def _round_inputs(x: torch.Tensor, fmt: str, mode: str) -> torch.Tensor:
    """x (float32) rounded to ``fmt`` by ``mode``: 'rne' (ours), 'rna' (ties away), 'trunc'."""
    if mode == "rne":
        return numfmt.round_to(x, fmt)
    f = numfmt.get(fmt)
    drop = 23 - f.mantissa_bits
    bits = x.view(torch.int32)
    if mode == "rna":
        bits = bits + (1 << (drop - 1))
    elif mode != "trunc":
        raise ValueError(f"unknown rounding mode {mode!r}")
    return (bits & ~((1 << drop) - 1)).view(torch.float32)


def _scaled_error(got: torch.Tensor, want: torch.Tensor, scale: torch.Tensor, fmt: str) -> float:
    """max |got - want| / (|A| @ |B|), in units of the output format's eps: the error measured
    against the size of the terms of each dot product, so cancellation does not inflate it."""
    eps = numfmt.get(fmt).eps
    return float(((got.double() - want.double()).abs() / scale.clamp_min(1e-300)).max() / eps)


def compare(a: torch.Tensor, b: torch.Tensor, fmt: str, device: str) -> dict:
    """Real device matmul in ``fmt`` against the references (see the module docstring)."""
    ad, bd = a.to(device), b.to(device)
    if fmt == "tf32":
        if device == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = True
        real = (ad @ bd).float().cpu()
        if device == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = False
        out_fmt, modes = "fp32", ("rne", "rna", "trunc")
    else:
        dt = numfmt.get(fmt).torch_dtype
        real = (ad.to(dt) @ bd.to(dt)).float().cpu()
        out_fmt, modes = fmt, ("rne",)
    row: dict = {"format": fmt, "device": device, "shape": [a.shape[0], a.shape[1], b.shape[1]]}
    scale = a.double().abs() @ b.double().abs()
    for mode in modes:
        exact = _round_inputs(a, fmt, mode).double() @ _round_inputs(b, fmt, mode).double()
        ref = numfmt.round_to(exact, out_fmt).float()
        row[f"equal_share_{mode}"] = float((real == ref).double().mean())
        row[f"max_err_eps_{mode}"] = _scaled_error(real, ref, scale, out_fmt)
    return row


def _device(text: str) -> str:
    """``--device``: a torch device name ("cpu", "cuda", "cuda:1"), checked to exist here."""
    try:
        dev = torch.device(text)
    except (RuntimeError, ValueError):
        raise CliError(f"--device: {text!r} is not a torch device (use cpu or cuda)") from None
    if dev.type not in ("cpu", "cuda"):
        raise CliError(f"--device: {text!r}: only cpu and cuda are checked here")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise CliError("--device: no CUDA device here: run with --device cpu, or on a machine "
                       "with a GPU")
    return str(dev)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.matmul_formats", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--m", type=positive_int, default=512, help="rows of A (default 512)")
    p.add_argument("--k", type=positive_int, default=1024, help="columns of A (default 1024)")
    p.add_argument("--n", type=positive_int, default=512, help="columns of B (default 512)")
    p.add_argument("--json", metavar="FILE", help="write the rows as JSON ('-': stdout)")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    return p


def _run(argv: Sequence[str] | None) -> int:
    args = _parser().parse_args(argv)
    device = _device(args.device)
    check_output_file(args.json, "--json")
    progress = Progress(args.quiet, prefix="[matmul_formats] ")
    out = sys.stderr if args.json == "-" else sys.stdout
    g = torch.Generator().manual_seed(0)
    a = torch.randn(args.m, args.k, generator=g)
    b = torch.randn(args.k, args.n, generator=g)
    rows = []
    for fmt in ("tf32", "bf16", "fp16"):
        progress(f"{fmt} on {device}")
        rows.append(compare(a, b, fmt, device))
    name = torch.cuda.get_device_name(device) if device.startswith("cuda") else "CPU"
    print(f"{name}, torch {torch.__version__}, A {args.m}x{args.k} @ B {args.k}x{args.n}\n",
          file=out)
    print(markdown_table(
        ["format", "inputs rounded by", "outputs equal to the single-rounding reference",
         "max error / (\\|A\\| @ \\|B\\|), in output eps"],
        [[r["format"], mode, f"{r[f'equal_share_{mode}']:.4%}", f"{r[f'max_err_eps_{mode}']:.3g}"]
         for r in rows for mode in ("rne", "rna", "trunc") if f"equal_share_{mode}" in r]),
        file=out)
    if device == "cpu":
        print("\n(CPU: torch has no TF32 here, so the tf32 row is plain FP32 against TF32 "
              "inputs.)", file=out)
    if args.json:
        write_json(args.json, rows)
        progress(f"wrote {args.json}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the check; 2 after an ``error:`` line for an unusable argument or device."""
    return run_cli(_run, argv, prog="matmul_formats")


if __name__ == "__main__":
    raise SystemExit(main())
