"""numfmt.block_audit: cause classification on synthetic peers, the known findings on the real
peers (from reading their sources), agreement on random blocks, the CLI and skipped peers."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from numfmt import block_audit as ba
from numfmt.blocks import get_block_format


def run_row(fmt_name: str, x: np.ndarray, peer_fn) -> ba.AuditRow:
    fmt = get_block_format(fmt_name)
    ref, scales = ba._reference(x, fmt, fmt.rule, as_float64=True)
    peer, peer_scales = peer_fn(ref.copy(), scales.copy())
    row = ba.AuditRow("fake", fmt_name, fmt.rule)
    ba.compare(row, x, ref, scales, peer, peer_scales, fmt)
    return row


def test_causes_on_a_synthetic_peer():
    x = ba.random_blocks(6, 32, seed=1)
    x[0, 3] = np.nan
    x[1] = 0.0

    def peer(ref, scales):
        ref[0] = 0.0                                  # NaN block decoded as zeros
        ref[1, 0] = -0.0                              # zero block: a -0
        scales[2] *= 2                                # another scale
        ref[2, 0] += 1.0
        ref[3, 5] = np.nextafter(ref[3, 5], np.inf)   # an element rounded differently
        return ref, scales

    row = run_row("mxfp8_e4m3", x, peer)
    assert row.blocks == 6 and row.mismatched_blocks == 4
    assert {c: n for c, n in row.causes.items() if n} == {"nan_inf": 1, "zero_block": 1,
                                                          "scale": 1, "rounding": 1}
    assert row.examples["rounding"]["element"] == 5


def test_saturation_and_scale_applied_causes():
    fmt = get_block_format("mxfp4_e2m1")
    x = np.array([[6.5, 1.0] + [0.0] * 30, [0.75, 0.25] + [0.0] * 30], dtype=np.float32)

    def peer(ref, scales):
        ref[0, 0] = 8.0                               # beyond max instead of saturating to 6
        ref[1] = ba._round_at(x[1], scales[1] * 2, fmt) / 2   # divided by twice the scale
        return ref, scales

    row = run_row("mxfp4_e2m1", x, peer)
    assert row.causes["saturation"] == 1 and row.causes["scale_applied"] == 1


torchao = pytest.importorskip("torchao.prototype.mx_formats")


def test_known_findings():
    rows = {(r.library, r.format, r.rule): r for r in ba.audit_blocks(random_count=8)}
    # torchao stores 2**-127 but divides by float32's smallest normal 2**-126 (mx_tensor.py:
    # "scale_fp32 = torch.clamp(scale_fp32, min=F32_MIN_NORMAL)")
    assert rows["torchao", "mxfp8_e4m3", "floor"].causes["scale_applied"] > 0
    # torchao's RCEIL multiplies by 1.0 for the exponent code 0 ("exponent == 0, 1.0")
    assert rows["torchao", "mxfp4_e2m1", "rceil"].causes["rounding"] > 0
    # an infinity gives finite blocks in torchao (the spec's reference gives NaN)
    assert rows["torchao", "mxfp8_e5m2", "floor"].causes["nan_inf"] > 0
    # torchao clamps NVFP4 block scales to E4M3's smallest normal 2**-6
    assert rows["torchao", "nvfp4_no_tensor_scale", "nvfp4"].causes["scale"] > 0
    # gfloat saturates MXINT8 at -2 and cannot encode a NaN block into FP4/FP6/INT8
    assert rows["gfloat", "mxint8", "floor"].causes["saturation"] > 0
    assert "No NaN" in rows["gfloat", "mxfp4_e2m1", "floor"].examples["error"]["error"]
    assert all(r.status == "ok" for r in rows.values())


def test_random_blocks_agree_with_torchao_and_gfloat():
    """On seeded random blocks every MX encoder agrees with the reference, but for gfloat's
    MXINT8 code -128 (-2) and NVFP4's small block scales and float32 scale products."""
    allowed = {"mxint8": {"saturation"}, "nvfp4": {"scale", "decode_rounding"},
               "nvfp4_no_tensor_scale": {"scale"}}
    rows = ba.audit_blocks(random_count=512, edges=False)
    for r in rows:
        found = {c for c, n in r.causes.items() if n}
        assert found <= allowed.get(r.format, set()), (r.library, r.format, r.rule, r.causes)
    nv = [r for r in rows if r.format == "nvfp4"][0]
    assert nv.causes["decode_rounding"] > 0 and nv.causes["scale"] > 0


def test_cli_json_and_errors(tmp_path, capsys, monkeypatch):
    out = tmp_path / "blocks.json"
    assert ba.main(["--blocks", "--json", str(out), "--random", "2", "--quiet"]) == 0
    doc = json.loads(out.read_text())
    assert doc["causes"] == list(ba.CAUSES) and len(doc["rows"]) == 28
    assert "| torchao | mxfp8_e4m3 | floor |" in capsys.readouterr().out
    assert ba.run_cli(ba.main, ["--json", str(tmp_path / "no" / "x.json")]) == 2
    assert "error:" in capsys.readouterr().err
    monkeypatch.setattr(ba, "peers", lambda: [("gfloat", None, [("mxint8", "floor")],
                                               "gfloat not installed (test)")])
    (row,) = ba.audit_blocks(random_count=1)
    assert row.status == "skipped" and "not installed" in row.reason
    assert "skipped" in ba.table([row])


def test_edge_blocks_cover_the_edges():
    e = ba.edge_blocks(get_block_format("mxfp8_e4m3"))
    amax = np.abs(e).max(axis=1)
    assert np.isnan(amax).any() and np.isinf(amax).any() and (amax == 0).any()
    assert (amax < np.finfo(np.float32).tiny).any()                    # subnormal amax
    for k in (-126, 0, 127):
        p = np.float32(2.0 ** k)
        assert {np.nextafter(p, np.float32(0)), p} <= set(amax.tolist())
    assert math.isclose(float(amax[np.isfinite(amax)].max()), float(np.finfo(np.float32).max))
