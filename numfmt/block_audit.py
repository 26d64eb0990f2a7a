"""The block-format audit: torchao's and gfloat's MX / NVFP4 encoders against the exact reference.

For every library that has a block encoder (the ``library``: ``"torchao"`` -- ``MXTensor.to_mx``
under every ``ScaleCalculationMode`` and ``NVFP4Tensor.to_nvfp4`` with and without a per-tensor
scale -- and ``"gfloat"`` -- ``quantize_block`` with ``compute_scale_amax``, which calls
``encode_block``), each format and scale rule, the decoded values are compared bit for bit with
`numfmt.block_codec` (NaN equal to NaN, -0 distinct from +0) over float32 blocks: seeded random
blocks and edge blocks (amax just below / at / above a power of two from the float32 subnormals
to 2**127, elements on the element grid's midpoints, saturation ties, NaN, +-inf, zero and -0
blocks), the two sets encoded as separate tensors (NVFP4's tensor scale spans one tensor).
Every mismatching block gets one cause, the first that applies:

``nan_inf``     the block holds a NaN or an infinity;
``zero_block``  the block is all zeros;
``scale``       the library's block scale differs from the reference's;
``scale_applied`` the stored scales agree but the elements are exactly those of the reference
                rounding at twice or half that scale (the library divided by another scale than
                the one it stores);
``decode_rounding`` the scales and element codes agree, but the library decodes with the
                block scale times the tensor scale first rounded to float32 (two roundings
                where the reference has one);
``saturation``  the scales agree and a differing element is at the element's largest magnitude
                in either result (or at MXINT8's -2);
``rounding``    the scales agree and the elements were rounded differently.

A library that is not installed, or a format it lacks, is a row marked skipped with the reason;
a block on which the library raises counts under ``error`` with the message as its example.
``python -m numfmt.block_audit [--json FILE]`` (and ``python -m numfmt audit --blocks``) prints the
table.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from numfmt.block_codec import block_decode, block_encode
from numfmt.blocks import BlockFormat, get_block_format
from numfmt.cli import (Progress, check_output_file, markdown_table, positive_int, run_cli,
                        write_json)

__all__ = ["CAUSES", "AuditRow", "audit_blocks", "edge_blocks", "random_blocks", "main"]

CAUSES = ("nan_inf", "zero_block", "scale", "scale_applied", "decode_rounding", "saturation",
          "rounding", "error")
TORCHAO_ELEMENTS = {"mxfp8_e4m3": "float8_e4m3fn", "mxfp8_e5m2": "float8_e5m2",
                    "mxfp6_e3m2": "fp6_e3m2", "mxfp6_e2m3": "fp6_e2m3",
                    "mxfp4_e2m1": "float4_e2m1fn_x2"}
MX_NAMES = ("mxfp8_e4m3", "mxfp8_e5m2", "mxfp6_e3m2", "mxfp6_e2m3", "mxfp4_e2m1", "mxint8")


@dataclass
class AuditRow:
    """One (library, format, rule) comparison: counts per cause and one example per cause."""

    library: str
    format: str
    rule: str
    status: str = "ok"
    reason: str = ""
    blocks: int = 0
    mismatched_blocks: int = 0
    mismatched_elements: int = 0
    causes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CAUSES, 0))
    examples: dict[str, dict[str, Any]] = field(default_factory=dict)


# ---- inputs --------------------------------------------------------------------------------
def random_blocks(count: int, size: int, seed: int) -> np.ndarray:
    """``count`` float32 blocks of normal values, each at its own magnitude 2**U(-40, 40)."""
    rng = np.random.default_rng(seed)
    scale = np.exp2(rng.uniform(-40, 40, size=(count, 1)))
    return (rng.standard_normal((count, size)) * scale).astype(np.float32)


def edge_blocks(fmt: BlockFormat) -> np.ndarray:
    """Deterministic float32 edge blocks of ``fmt``'s block size (see the module docstring)."""
    size, rng = fmt.block_size, np.random.default_rng(12)
    grid = np.ldexp(fmt.element_format.finite_values(), fmt.element_shift)
    grid = grid[grid >= 0]
    mids = (grid[:-1] + grid[1:]) / 2
    top_mid = float(grid[-1] + (grid[-1] - grid[-2]) / 2)
    rows = []
    for k in (-149, -140, -133, -127, -126, -100, -10, -7, -5, -3, -1, 0, 1, 10, 100, 120, 126,
              127):
        base = np.float32(2.0 ** k)
        tops = [np.nextafter(base, np.float32(0)), base, np.nextafter(base, np.float32(np.inf))]
        if k <= 120:
            tops.append(np.float32(top_mid * 2.0 ** (k - fmt.element_emax)))
        for amax in tops:
            if not np.isfinite(amax) or amax == 0:
                continue
            r = (rng.uniform(-1, 1, size) * amax).astype(np.float32)
            r[rng.integers(size)] = amax
            rows.append(r)
            m = np.resize(np.concatenate([mids, -mids]), size) * 2.0 ** (k - fmt.element_emax)
            m[0] = grid[-1] * 2.0 ** (k - fmt.element_emax)
            rows.append(m.astype(np.float32))
    for special in (np.nan, np.inf, -np.inf):
        r = rng.standard_normal(size).astype(np.float32)
        r[size // 2] = special
        rows.append(r)
    rows += [np.zeros(size, np.float32), np.full(size, -0.0, np.float32),
             np.full(size, np.finfo(np.float32).max, np.float32)]
    with np.errstate(over="ignore", invalid="ignore"):
        return np.stack([r.astype(np.float32) for r in rows])


# ---- the peers -----------------------------------------------------------------------------
def _e8m0_values(codes: np.ndarray) -> np.ndarray:
    v = np.ldexp(1.0, codes.astype(np.int64) - 127)
    return np.where(codes == 255, np.nan, v)


def _torchao_mx(x: np.ndarray, fmt: BlockFormat, rule: str):
    import torch
    from torchao.prototype.mx_formats import ScaleCalculationMode
    from torchao.prototype.mx_formats.mx_tensor import MXTensor

    name = TORCHAO_ELEMENTS[fmt.name]
    elem = getattr(torch, name, name)
    mode = ScaleCalculationMode(rule)
    t = MXTensor.to_mx(torch.from_numpy(x), elem, fmt.block_size, scaling_mode=mode)
    vals = t.dequantize(torch.float32).numpy().astype(np.float64)
    return vals, _e8m0_values(t.scale.view(torch.uint8).numpy().reshape(len(x))), {}


def _torchao_nvfp4(x: np.ndarray, fmt: BlockFormat, rule: str):
    import torch
    from torchao.prototype.mx_formats.nvfp4_tensor import NVFP4Tensor, per_tensor_amax_to_scale

    t = torch.from_numpy(x)
    pts = None
    if fmt.tensor_scale:
        finite = t.abs()[torch.isfinite(t)]
        pts = per_tensor_amax_to_scale(finite.max() if finite.numel() else torch.tensor(0.0))
    n = NVFP4Tensor.to_nvfp4(t, fmt.block_size, per_tensor_scale=pts)
    vals = n.dequantize(torch.float32).numpy().astype(np.float64)
    scale = n.scale.to(torch.float32).numpy().astype(np.float64).reshape(len(x))
    return vals, scale * (float(pts) if pts is not None else 1.0), {}


def _gfloat_mx(x: np.ndarray, fmt: BlockFormat, rule: str):
    import gfloat
    from gfloat import formats as gf

    fi = getattr(gf, f"format_info_{fmt.name}")
    out, scales, errors = np.empty(x.shape), np.empty(len(x)), {}
    for i, row in enumerate(x.astype(np.float64)):
        try:
            scales[i] = gfloat.compute_scale_amax(fi.etype.emax, row)
            out[i] = gfloat.quantize_block(fi, row, gfloat.compute_scale_amax)
        except Exception as exc:          # noqa: BLE001 -- any failure of the peer is a finding
            out[i], scales[i] = np.inf, np.nan
            errors[i] = f"{type(exc).__name__}: {exc}"
    return out, scales, errors


def peers() -> list[tuple[str, Callable, list[tuple[str, str]], str]]:
    """(library, runner, [(format, rule)], skip reason or "") for every library audited."""
    out = []
    try:
        import torchao.prototype.mx_formats  # noqa: F401
        reason = ""
    except Exception as exc:              # noqa: BLE001 -- absent or broken: report it
        reason = f"torchao not importable ({type(exc).__name__}: {exc})"
    mx = [(n, r) for n in TORCHAO_ELEMENTS for r in ("floor", "ceil", "even", "rceil")]
    out.append(("torchao", _torchao_mx, mx, reason))
    out.append(("torchao", _torchao_nvfp4,
                [("nvfp4", "nvfp4"), ("nvfp4_no_tensor_scale", "nvfp4")], reason))
    try:
        import gfloat  # noqa: F401
        reason = "" if hasattr(gfloat, "quantize_block") else "gfloat has no quantize_block"
    except ImportError as exc:
        reason = f"gfloat not installed ({exc})"
    out.append(("gfloat", _gfloat_mx, [(n, "floor") for n in MX_NAMES], reason))
    return out


# ---- comparison ----------------------------------------------------------------------------
def _differs(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    both_nan = np.isnan(a) & np.isnan(b)
    return ~both_nan & ((a != b) | (np.signbit(a) != np.signbit(b)))


def _cause(x, ref, peer, rs, ps, bad, fmt: BlockFormat) -> str:
    if not np.isfinite(x).all():
        return "nan_inf"
    if (x == 0).all():
        return "zero_block"
    if not (rs == ps or (math.isnan(rs) and math.isnan(ps))):
        return "scale"
    for factor in (2.0, 0.5) if fmt.is_mx else ():
        if np.array_equal(peer, _round_at(x, rs * factor, fmt) / factor):
            return "scale_applied"
    if not fmt.is_mx and rs > 0:
        step = float(fmt.element_min_exact)              # ref is float32: back onto the grid
        elements = np.round(ref / rs / step) * step
        if np.array_equal(peer, (elements * np.float32(rs)).astype(np.float32)):
            return "decode_rounding"
    top = float(fmt.element_max_exact) * rs
    at_top = (np.abs(ref[bad]) == top) | (np.abs(peer[bad]) >= top)
    return "saturation" if at_top.any() else "rounding"


def _round_at(x: np.ndarray, scale: float, fmt: BlockFormat) -> np.ndarray:
    """The block's elements rounded (nearest even, saturating) at a given power-of-two scale,
    decoded at that scale (exact: dividing by a power of two, one rounding)."""
    from numfmt.rounding import round_to

    f = fmt.element_format
    k = np.asarray(x, np.float64) / scale / 2.0 ** fmt.element_shift
    r = np.asarray(round_to(k, f, overflow="saturate"), np.float64)
    if not f.is_float and fmt.symmetric:
        r = np.clip(r, -float(f.max_exact), float(f.max_exact))
    return r * 2.0 ** fmt.element_shift * scale


def compare(row: AuditRow, x, ref, ref_scales, peer, peer_scales, fmt: BlockFormat,
            errors: dict[int, str] | None = None) -> None:
    """Count the mismatching blocks of one run into ``row`` by cause, keeping one example each.

    ``errors`` maps a block index to the message of the exception the library raised there.
    """
    diff = _differs(ref, peer)
    row.blocks += len(x)
    for i in np.flatnonzero(diff.any(axis=1)):
        err = (errors or {}).get(int(i))
        cause = "error" if err else _cause(x[i], ref[i], peer[i], float(ref_scales[i]),
                                           float(peer_scales[i]), diff[i], fmt)
        row.mismatched_blocks += 1
        row.mismatched_elements += int(diff[i].sum())
        row.causes[cause] += 1
        if cause not in row.examples:
            j = int(np.flatnonzero(diff[i])[0])
            row.examples[cause] = {
                "block": x[i].astype(np.float64).tolist(), "element": j,
                "input": float(x[i, j]), "reference": float(ref[i, j]),
                "peer": float(peer[i, j]), "reference_scale": float(ref_scales[i]),
                "peer_scale": float(peer_scales[i]), "error": err or ""}


def _reference(x: np.ndarray, fmt: BlockFormat, rule: str, as_float64: bool):
    import torch

    enc = block_encode(torch.from_numpy(x), fmt, rule=rule)
    out = block_decode(enc, torch.float64 if as_float64 else torch.float32)
    scales = enc.scales.numpy().reshape(len(x)) * (enc.tensor_scale or 1.0)
    return out.numpy().astype(np.float64), scales


def audit_blocks(random_count: int = 2048, seed: int = 0, *, edges: bool = True,
                 progress: Callable[[str], None] | None = None) -> list[AuditRow]:
    """Run the audit; one `AuditRow` per (library, format, rule), skipped rows included.

    Parameters
    ----------
    random_count : int
        Seeded random blocks per format (the edge blocks are added to them).
    seed : int
    edges : bool
        Whether to add the edge blocks (`edge_blocks`).
    progress : callable, optional
        Called with one line per row.

    Returns
    -------
    list of AuditRow
    """
    rows = []
    for library, run, pairs, reason in peers():
        for name, rule in pairs:
            row = AuditRow(library, name, rule)
            rows.append(row)
            if reason:
                row.status, row.reason = "skipped", reason
                continue
            fmt = get_block_format(name)
            # two tensors: NVFP4's tensor scale would let an edge block's amax dwarf the rest
            inputs = [random_blocks(random_count, fmt.block_size, seed)]
            if edges:
                inputs.append(edge_blocks(fmt))
            for x in inputs:
                peer, peer_scales, errors = run(x, fmt, rule)
                ref, ref_scales = _reference(x, fmt, rule, as_float64=library == "gfloat")
                compare(row, x, ref, ref_scales, peer.reshape(x.shape), peer_scales, fmt,
                        errors)
            if progress:
                progress(f"{library} {name} {rule}: {row.mismatched_blocks} of {row.blocks} "
                         f"blocks differ")
    return rows


def table(rows: Sequence[AuditRow]) -> str:
    """The audit as a markdown table (blocks that differ, by cause)."""
    head = ["library", "format", "rule", "blocks", "differ", *CAUSES]
    body = [[r.library, r.format, r.rule, r.blocks if r.status == "ok" else "skipped",
             r.mismatched_blocks if r.status == "ok" else r.reason,
             *(r.causes[c] if r.status == "ok" else "" for c in CAUSES)] for r in rows]
    return markdown_table(head, body)


def main(argv: Sequence[str] | None = None) -> int:
    """The command line: ``[--blocks] [--json FILE] [--random N] [--seed S] [--quiet]``.

    Parameters
    ----------
    argv : sequence of str, optional
        The arguments (``sys.argv[1:]`` when None).

    Returns
    -------
    int
        0; errors in the arguments raise `numfmt.cli.CliError` (``run_cli`` prints them, 2).
    """
    p = argparse.ArgumentParser(prog="python -m numfmt audit --blocks", description=__doc__
                                .split("\n")[0])
    p.add_argument("--blocks", action="store_true", help="(the audit this command runs)")
    p.add_argument("--json", metavar="FILE", help="write the rows and examples as JSON ('-': "
                                                  "stdout)")
    p.add_argument("--random", type=positive_int, default=2048, metavar="N",
                   help="seeded random blocks per format (default 2048)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    args = p.parse_args(argv)
    check_output_file(args.json, "--json")
    rows = audit_blocks(args.random, args.seed, progress=Progress(args.quiet, "block audit: "))
    if args.json:
        write_json(args.json, {"random_blocks": args.random, "seed": args.seed,
                               "causes": list(CAUSES), "rows": [vars(r) for r in rows]})
    if args.json != "-":
        print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main, prog="numfmt.block_audit"))
