"""quant.blockscaled's fast float32 paths against the exact reference, exhaustively: every
element code (its value, the midpoints on both sides and their float32 neighbours, both signs)
under every scale edge (E8M0 exponents from -127 to the largest a float32 amax reaches; every
E4M3 block scale with and without NVFP4's tensor scale), for every rule; and the pieces the
fast paths rest on (FP6 as a stretch of FP8, the floor exponent from the amax bits, the
probed FP8 saturation, the strict NVFP4 thresholds) against independent arithmetic."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch

from numfmt import block_rules
from numfmt.block_codec import block_decode, block_encode
from numfmt.blocks import block_formats, get_block_format
from numfmt.registry import get
from quant.blockscaled import BlockScaled
from quant.blockscaled import fast

MX = [f.name for f in block_formats() if f.is_mx]


def _probes(grid: np.ndarray) -> np.ndarray:
    """Every grid value, every midpoint and the float32 neighbours of both, beyond the top
    too, as float64 (float32 numbers when the caller scales by a power of two in range)."""
    mids = (grid[:-1] + grid[1:]) / 2
    top = grid[-1] + (grid[-1] - grid[-2]) / 2
    pts = np.concatenate([grid, mids, [top, 2 * top]]).astype(np.float32)
    up = np.nextafter(pts, np.float32(np.inf))
    down = np.nextafter(pts, np.float32(-np.inf))
    return np.unique(np.concatenate([pts, up, down]).astype(np.float64))


def _blocks_with_amax(values: np.ndarray, amax: float, size: int) -> np.ndarray:
    """``values`` (both signs) cut into blocks of ``size`` whose last element is ``amax``;
    values above amax are replaced by amax (the block's scale stays the chosen one)."""
    v = np.concatenate([values, -values])
    v = np.where(np.abs(v) > amax, np.sign(v) * amax, v)
    per = size - 1
    v = np.concatenate([v, np.zeros((-len(v)) % per)]).reshape(-1, per)
    return np.concatenate([v, np.full((len(v), 1), amax)], 1).reshape(-1)


def _assert_same(x: torch.Tensor, name: str, rule: str | None = None) -> None:
    b = BlockScaled.encode(x, name, rule=rule)
    e = block_encode(x, name, rule=rule)
    assert torch.equal(b.scale_codes, e.scale_codes), name
    assert torch.equal(b.element_codes, e.element_codes), name
    assert b.tensor_scale == e.tensor_scale
    got, want = b.decode(), block_decode(e)
    assert torch.equal(torch.nan_to_num(got, nan=7.0), torch.nan_to_num(want, nan=7.0))
    assert torch.equal(torch.signbit(got), torch.signbit(want))


@pytest.mark.parametrize("name", MX)
def test_mx_every_element_code_at_every_scale_edge(name):
    f = get_block_format(name)
    grid = block_rules.positive_grid(f.element_format, f.element_shift)
    probes = _probes(grid)
    top_e = 127 - f.element_emax                  # the largest floor exponent of a float32
    rows = []
    # the block amax at the element's max, and at the top of its binade (saturating the rest)
    binade_top = float(np.nextafter(np.float32(2.0 ** (f.element_emax + 1)), np.float32(0)))
    for e in [-127, -126, -125, -100, -1, 0, 1, 64, top_e - 1, top_e]:
        scaled = np.ldexp(probes, e)
        for a in (float(f.element_max_exact), binade_top):
            amax = float(np.float32(np.ldexp(a, e)))
            rows.append(_blocks_with_amax(scaled, amax, f.block_size))
    x = torch.from_numpy(np.concatenate(rows).astype(np.float32))
    assert torch.isfinite(x).all()
    for rule in f.rules:
        _assert_same(x, name, rule)


@pytest.mark.parametrize("name", ["nvfp4", "nvfp4_no_tensor_scale"])
@pytest.mark.parametrize("tensor_amax", [2688.0, 1.0, 3.0e-30, 3.0e30])
def test_nvfp4_every_element_code_at_every_block_scale(name, tensor_amax):
    f = get_block_format(name)
    grid = block_rules.positive_grid(f.element_format)
    probes = _probes(grid)
    s_t = (block_rules.tensor_scale_fp32(tensor_amax, Fraction(448), Fraction(6))
           if f.tensor_scale else 1.0)
    sgrid = block_rules.positive_grid(get(f.scale))
    # each E4M3 scale, and the amax midway to the next one (the block-scale tie)
    targets = np.concatenate([sgrid[1:], (sgrid[1:-1] + sgrid[2:]) / 2])
    rows = []
    for s in targets:
        d = s * s_t
        amax = float(np.float32(6 * d))
        if not 0 < amax < 3.4e38:
            continue
        rows.append(_blocks_with_amax((probes * d).astype(np.float32).astype(np.float64),
                                      amax, f.block_size))
    x = torch.from_numpy(np.concatenate(rows).astype(np.float32))
    x[-1] = tensor_amax                  # the tensor scale is the one chosen above
    _assert_same(x, name)


def test_fp6_grid_is_a_stretch_of_fp8():
    """The identity the FP6 path rests on: times 2**shift every FP6 value is the FP8 value of
    the same magnitude code, and the FP8 grid between them has no other points."""
    for fp6_name, (fp8_name, shift) in fast.FP6_VIA_FP8.items():
        fp6, fp8 = get(fp6_name), get(fp8_name)
        codes = np.arange(32)
        want = np.ldexp(fp6.decode(codes), shift)
        assert np.array_equal(fp8.decode(codes), want)
        g8 = block_rules.positive_grid(fp8)
        assert np.array_equal(g8[g8 <= want[-1]], want)


@pytest.mark.parametrize("name", MX)
def test_floor_exponents_from_bits_match_the_exact_rule(name):
    f = get_block_format(name)
    amax = torch.tensor([0.0, 2.0 ** -149, 1e-40, 2.0 ** -126, 1.0, 1.5, 448.0, 2.0 ** 127,
                         3.4e38, float("inf"), float("nan")], dtype=torch.float32)
    e, nan_block = fast._floor_exponents(amax, f.element_emax)
    finite = amax.isfinite()
    exact = block_rules.mx_scale_exponents(amax.masked_fill(~finite, 0.0).double(), "floor",
                                           f.element_emax, f.element_mantissa_bits,
                                           f.element_max_exact).clamp(-127, 127)
    assert torch.equal(nan_block, ~finite)
    assert torch.equal(e[finite].long(), exact[finite])


def test_saturation_probe_matches_torch():
    for dtype in (torch.float8_e4m3fn, torch.float8_e5m2):
        top = float(torch.finfo(dtype).max)
        big = torch.tensor([top * 1.5, float("inf")]).to(dtype).float()
        assert fast._saturates(dtype) == bool((big == top).all())


def test_strict_thresholds_against_fractions():
    rng = np.random.default_rng(5)
    mids = np.array([0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0])
    scales = np.array([2.0 ** -9, 0.5, 1.0, 3.0, 448.0])
    for s_t in [1.0, float(np.float32(1 / 3)), float(np.float32(rng.random() * 1e-20))]:
        t = fast._strict_thresholds(scales, s_t, mids)
        assert t.dtype == np.float32
        for c, s in enumerate(scales):
            for j, m in enumerate(mids):
                exact = Fraction(s) * Fraction(s_t) * Fraction(m)
                tj = np.float32(t[c, j])
                above = np.nextafter(tj, np.float32(np.inf))
                # t is the largest float32 that does not pass: above it every x does
                passes = (lambda v: v >= exact) if j % 2 else (lambda v: v > exact)
                assert not passes(Fraction(float(tj))) and passes(Fraction(float(above)))


@pytest.mark.parametrize("name", ["mxfp8_e4m3", "mxfp8_e5m2", "mxfp6_e3m2", "mxfp4_e2m1",
                                  "mxint8", "nvfp4"])
def test_chunk_boundaries_and_other_axes(name, monkeypatch):
    """Chunks of a few blocks (the ranges run_chunks hands out) and a non-last axis give the
    reference's codes too."""
    monkeypatch.setattr(fast, "CHUNK_ELEMENTS", 3 * 32)
    g = torch.Generator().manual_seed(11)
    x = torch.randn(70, 50, generator=g) * torch.logspace(-30, 30, 50)
    x[5, 7] = float("nan")
    before = x.clone()
    for axis in (0, 1):
        b = BlockScaled.encode(x, name, axis=axis)
        e = block_encode(x, name, axis=axis)
        assert torch.equal(b.scale_codes, e.scale_codes)
        assert torch.equal(b.element_codes, e.element_codes)
        got, want = b.decode(), block_decode(e)
        assert torch.equal(torch.nan_to_num(got, nan=7.0), torch.nan_to_num(want, nan=7.0))
    assert torch.equal(torch.nan_to_num(x, nan=7.0), torch.nan_to_num(before, nan=7.0))


@pytest.mark.parametrize("bits", [4, 6, 8])
def test_pack_codes_into_a_slice(bits):
    from quant.blockscaled import pack_codes, packed_nbytes

    codes = torch.randint(0, 2**bits, (64,), generator=torch.Generator().manual_seed(bits),
                          dtype=torch.uint8)
    buf = torch.full((packed_nbytes(64, bits) + 6,), 0xAA, dtype=torch.uint8)
    got = pack_codes(codes, bits, out=buf[3:-3])
    assert got.data_ptr() == buf[3:].data_ptr()
    assert torch.equal(buf[3:-3], pack_codes(codes, bits))
    assert buf[:3].tolist() == [0xAA] * 3 and buf[-3:].tolist() == [0xAA] * 3
    with pytest.raises(ValueError, match="out must be a contiguous 1-D uint8"):
        pack_codes(codes, bits, out=buf[:5])
    with pytest.raises(ValueError, match="out must be a contiguous 1-D uint8"):
        pack_codes(codes, bits, out=torch.empty(packed_nbytes(64, bits), dtype=torch.int32))


def test_power_of_two_f32_both_ways():
    for ks in ([-126, 0, 127, 5], [-149, -127, 0, 127]):      # bit pattern, float64 route
        k = torch.tensor(ks, dtype=torch.int32)
        got = fast._power_of_two_f32(k)
        assert got.dtype == torch.float32
        assert got.double().tolist() == [2.0 ** v for v in ks]
