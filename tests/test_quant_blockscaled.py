"""quant.blockscaled: the fast encoding against the exact reference bit for bit, packing, the
exact block matmul against Fraction sums, the accumulator widths, fp32's accumulation error."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from numfmt.block_codec import block_decode, block_encode
from numfmt.block_strategies import edge_blocks
from numfmt.blocks import block_formats
from quant.blockscaled import (BlockScaled, block_accumulator_bound, block_dot_exact,
                               block_matmul_exact, fp32_accumulation_error, pack_codes,
                               packed_nbytes, unpack_codes)

FORMATS = [f.name for f in block_formats()]
PAIRS = [(f.name, r) for f in block_formats() for r in f.rules]


def assert_same_codes(b: BlockScaled, e) -> None:
    assert torch.equal(b.scale_codes, e.scale_codes)
    assert torch.equal(b.element_codes, e.element_codes)
    assert b.tensor_scale == e.tensor_scale


@settings(max_examples=120, deadline=None)
@given(st.sampled_from(PAIRS), st.lists(edge_blocks(exp_lo=-149, exp_hi=127), min_size=1,
                                        max_size=3), st.integers(0, 31))
def test_fast_float32_is_the_reference(pair, blocks, cut):
    name, rule = pair
    vals = sum(blocks, [])
    x = torch.tensor(vals[:max(1, len(vals) - cut)], dtype=torch.float32)   # a partial block
    assert_same_codes(BlockScaled.encode(x, name, rule=rule), block_encode(x, name, rule=rule))


@pytest.mark.parametrize("name,rule", PAIRS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_fast_path_on_tensors_of_every_scale(name, rule, dtype):
    g = torch.Generator().manual_seed(3)
    x = (torch.randn(37, 80, generator=g) * torch.logspace(-44, 37, 80)).to(dtype)
    x[1, 3], x[2, 40], x[3] = math.nan, -math.inf, 0.0
    x[4, :20] = -0.0
    for axis in (0, 1):
        b = BlockScaled.encode(x, name, rule=rule, axis=axis)
        e = block_encode(x, name, rule=rule, axis=axis)
        assert_same_codes(b, e)
        for out in (torch.float32, torch.float64):
            got, want = b.decode(out), block_decode(e, out)
            assert got.shape == x.shape and got.dtype == out
            assert torch.equal(torch.nan_to_num(got, nan=7.0), torch.nan_to_num(want, nan=7.0))
            assert torch.equal(torch.signbit(got), torch.signbit(want))


def test_float64_input_takes_the_reference_and_decodes_float64():
    x = torch.randn(3, 32, dtype=torch.float64)
    b = BlockScaled.encode(x, "mxfp6_e3m2")
    assert torch.equal(b.decode(), block_decode(block_encode(x, "mxfp6_e3m2")))
    assert b.decode().dtype == torch.float64


def bit_string_pack(codes: list[int], bits: int) -> list[int]:
    """Independent packing: concatenate the codes LSB first into one bit string."""
    stream = "".join(format(c, f"0{bits}b")[::-1] for c in codes)
    stream += "0" * (-len(stream) % (24 if bits == 6 else 8))
    return [int(stream[i:i + 8][::-1], 2) for i in range(0, len(stream), 8)]


@pytest.mark.parametrize("bits", [4, 6, 8])
@pytest.mark.parametrize("count", [1, 2, 3, 4, 5, 31, 64])
def test_packing_layout_and_round_trip(bits, count):
    g = torch.Generator().manual_seed(count)
    codes = torch.randint(0, 2**bits, (count,), generator=g, dtype=torch.uint8)
    packed = pack_codes(codes, bits)
    assert packed.tolist() == bit_string_pack(codes.tolist(), bits)
    assert packed.numel() == packed_nbytes(count, bits)
    assert torch.equal(unpack_codes(packed, bits, count), codes)


def test_packing_matches_torchao_pack_uint4_and_errors():
    kernels = pytest.importorskip("torchao.prototype.mx_formats.kernels")
    codes = torch.arange(16, dtype=torch.uint8).repeat(3)
    assert torch.equal(pack_codes(codes, 4), kernels.pack_uint4(codes))
    with pytest.raises(ValueError, match="does not fit in 4 bits"):
        pack_codes(torch.tensor([16], dtype=torch.uint8), 4)
    with pytest.raises(ValueError, match="4, 6 or 8"):
        pack_codes(codes, 5)
    with pytest.raises(ValueError, match="cannot hold"):
        unpack_codes(pack_codes(codes, 6), 6, 100)


def test_nbytes():
    assert BlockScaled.encode(torch.ones(2, 64), "mxfp4_e2m1").nbytes == 64 + 4
    assert BlockScaled.encode(torch.ones(1, 32), "mxfp6_e2m3").nbytes == 24 + 1
    assert BlockScaled.encode(torch.ones(1, 40), "mxfp8_e4m3").nbytes == 64 + 2   # padded
    assert BlockScaled.encode(torch.ones(1, 16), "nvfp4").nbytes == 8 + 1 + 4


def exact_products(a: BlockScaled, b: BlockScaled):
    da, db = a.decode(torch.float64).tolist(), b.decode(torch.float64).tolist()
    return [[sum((Fraction(x) * Fraction(y) for x, y in zip(r, c)), Fraction(0))
             if all(map(math.isfinite, r + c)) else math.nan for c in db] for r in da]


@pytest.mark.parametrize("fa,fb", [("mxfp8_e4m3", "mxfp8_e4m3"), ("mxfp8_e5m2", "mxfp8_e5m2"),
                                   ("mxint8", "mxfp4_e2m1"), ("mxfp6_e3m2", "mxfp6_e2m3"),
                                   ("nvfp4", "nvfp4"), ("nvfp4_no_tensor_scale", "nvfp4")])
def test_block_matmul_is_exact(fa, fb):
    g = torch.Generator().manual_seed(4)
    a = torch.randn(5, 70, generator=g, dtype=torch.float64) * torch.logspace(
        -8, 8, 70, dtype=torch.float64)
    b = torch.randn(3, 70, generator=g, dtype=torch.float64)
    a[4, 40] = math.nan
    A, B = BlockScaled.encode(a, fa), BlockScaled.encode(b, fb)
    got = block_matmul_exact(A, B, as_fraction=True)
    want = exact_products(A, B)
    for i in range(5):
        for j in range(3):
            w = want[i][j]
            assert (math.isnan(got[i, j]) if w != w else got[i, j] == w), (i, j)
    f64 = block_matmul_exact(A, B)
    assert [[float(v) for v in r] for r in got[:4]] == f64[:4].tolist()
    assert torch.isnan(f64[4]).all()


def test_e5m2_block_sums_beyond_int64_stay_exact():
    # elements at both ends of E5M2 (2**15 and 2**-16 of the block scale) in one block:
    # one block sum of element integers needs 70 bits
    top = 57344.0
    x = torch.tensor([[top] * 31 + [2.0 ** -16]], dtype=torch.float64)
    A = BlockScaled.encode(x, "mxfp8_e5m2")
    got = block_dot_exact(A, A)
    assert got == 31 * Fraction(top) ** 2 + Fraction(2) ** -32
    assert block_accumulator_bound("mxfp8_e5m2", "mxfp8_e5m2", 32).block_bits == 70


@pytest.mark.parametrize("name,element_int", [("mxfp8_e4m3", 229376), ("mxfp8_e5m2", 57344 * 2**16),
                                              ("mxfp6_e3m2", 448), ("mxfp6_e2m3", 60),
                                              ("mxfp4_e2m1", 12), ("nvfp4", 12)])
def test_accumulator_widths(name, element_int):
    bs = 16 if name == "nvfp4" else 32
    p = block_accumulator_bound(name, name, 4096)
    worst = bs * element_int**2                          # every product at the corner
    assert p.block.highest == worst and p.block.lowest == -worst
    assert p.block_bits == worst.bit_length() + 1
    assert 2 ** (p.block_bits - 1) > worst >= 2 ** (p.block_bits - 2)
    assert p.block.fits == (p.block_bits <= 32)
    blocks = 4096 // bs
    span = 2 * 254 if name.startswith("mx") else 2 * 18
    assert p.grid_bits == p.block_bits + span + int(math.log2(blocks))
    # mxint8 allows the decodable code -128: corner (-128)**2
    assert block_accumulator_bound("mxint8", "mxint8", 32).block.highest == 32 * 128**2


def test_fp32_accumulation_error():
    g = torch.Generator().manual_seed(5)
    # one block of MXINT8 per row at one scale: products k*k' 2**(2e - 12), sums < 2**24 units
    a = BlockScaled.encode(torch.randn(4, 32, generator=g), "mxint8")
    b = BlockScaled.encode(torch.randn(3, 32, generator=g), "mxint8")
    err = fp32_accumulation_error(a, b)
    assert err["max_abs"] == 0.0 and err["mismatches"] == 0
    # wide K and spread magnitudes: fp32 loses something, bounded by K * 2**-24 relative
    x = torch.randn(6, 2048, generator=g) * torch.logspace(-3, 3, 2048)
    a, b = BlockScaled.encode(x, "mxfp8_e4m3"), BlockScaled.encode(x[:2], "mxfp8_e4m3")
    err = fp32_accumulation_error(a, b)
    assert 0 < err["max_rel"] <= 2048 * 2.0 ** -24


def test_errors():
    x = torch.ones(4, 32)
    with pytest.raises(TypeError, match="int64"):
        BlockScaled.encode(torch.ones(32, dtype=torch.int64), "mxfp4_e2m1")
    with pytest.raises(ValueError, match="axis 3 is out of range"):
        BlockScaled.encode(x, "mxfp4_e2m1", axis=3)
    with pytest.raises(ValueError, match="not a scale rule"):
        BlockScaled.encode(x, "mxfp4_e2m1", rule="nvfp4")
    with pytest.raises(TypeError, match="BlockEncoded"):
        BlockScaled.from_encoded(x)
    a = BlockScaled.encode(x, "mxfp4_e2m1")
    with pytest.raises(ValueError, match="contraction mismatch"):
        block_matmul_exact(a, BlockScaled.encode(torch.ones(2, 64), "mxfp4_e2m1"))
    with pytest.raises(ValueError, match="blocked along axis 1"):
        block_matmul_exact(a, BlockScaled.encode(x, "mxfp4_e2m1", axis=0))
    with pytest.raises(TypeError, match="BlockScaled"):
        block_matmul_exact(a, x)


def test_error_metrics_like_the_other_encodings():
    g = torch.Generator().manual_seed(7)
    x = torch.randn(8, 64, generator=g, dtype=torch.float64)
    b = BlockScaled.encode(x, "mxfp8_e4m3")
    d = b.decode(torch.float64)
    rel = (d - x).abs() / x.abs()
    assert b.max_rel_error(x, torch.float64) == pytest.approx(rel.max().item(), rel=1e-12)
    # E4M3 keeps 4 significant bits: at most 2**-4 relative error where x / scale is normal
    # (>= 2**-6) and not saturated (<= 448)
    scaled = x.abs() / b.to_encoded().scales.repeat_interleave(32, -1)
    normal = (scaled >= 2.0 ** -6) & (scaled <= 448)
    assert 0 < rel[normal].max().item() <= 2.0 ** -4
    assert b.sqnr_db(x) > 25
