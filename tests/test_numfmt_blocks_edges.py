"""numfmt.block_codec edges: special values, scale clamps, saturation, layout, codes, errors."""

from __future__ import annotations

import math

import ml_dtypes
import numpy as np
import pytest
import torch

from numfmt import RangeOverflowError
from numfmt.block_checks import ROUNDING_PASSED
from numfmt.block_codec import block_decode, block_encode, block_round
from numfmt.blocks import block_formats

ALL = [f.name for f in block_formats()]
MX = [f.name for f in block_formats() if f.is_mx]
ML_ELEM = {"mxfp8_e4m3": ml_dtypes.float8_e4m3fn, "mxfp8_e5m2": ml_dtypes.float8_e5m2,
           "mxfp6_e3m2": ml_dtypes.float6_e3m2fn, "mxfp6_e2m3": ml_dtypes.float6_e2m3fn,
           "mxfp4_e2m1": ml_dtypes.float4_e2m1fn, "nvfp4": ml_dtypes.float4_e2m1fn,
           "nvfp4_no_tensor_scale": ml_dtypes.float4_e2m1fn}


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("special", [math.nan, math.inf, -math.inf])
def test_nan_or_inf_makes_its_block_nan(name, special):
    bs = 32 if name in MX else 16
    x = torch.linspace(-3, 3, 3 * bs, dtype=torch.float64)
    x[bs + 5] = special
    enc = block_encode(x, name)
    nan_code = 0xFF if name in MX else 0x7F
    assert enc.scale_codes.tolist()[1] == nan_code
    assert (enc.element_codes[1] == 0).all()
    y = block_decode(enc)
    assert torch.isnan(y[bs:2 * bs]).all() and not torch.isnan(y[:bs]).any()
    assert torch.equal(y[2 * bs:], block_round(x[2 * bs:], name)) or name == "nvfp4"


@pytest.mark.parametrize("name", ALL)
def test_all_zero_block(name):
    x = torch.zeros(2, 40, dtype=torch.float32)
    x[1, 3] = -0.0
    enc = block_encode(x, name)
    assert (enc.scale_codes == 0).all()            # E8M0 code 0 is 2**-127; E4M3 code 0 is 0
    y = block_decode(enc)
    assert (y == 0).all() and y.dtype == torch.float32
    # -0 keeps its sign where the element has one (MXINT8, two's complement, has none)
    assert bool(torch.signbit(y[1, 3])) == (name != "mxint8")


def test_subnormal_and_tiny_amax_clamp_at_2_pow_minus_127():
    x = torch.tensor([5e-324, -5e-324, 2.0 ** -1000, 0.0], dtype=torch.float64)
    enc = block_encode(x, "mxfp8_e4m3")
    assert enc.scale_codes.tolist() == [0]
    assert (block_decode(enc) == 0).all()
    # float32 subnormals at scale 2**-127, where E4M3's step is 2**-9 * 2**-127 = 2**-136:
    # 2**-140 rounds to 0, 3 * 2**-136 is on the grid, 3 * 2**-137 is a tie -> 2**-135 (even)
    y = torch.tensor([2.0 ** -140, 3 * 2.0 ** -136, 3 * 2.0 ** -137], dtype=torch.float32)
    assert block_encode(y, "mxfp8_e4m3").scale_codes.tolist() == [0]
    assert block_round(y, "mxfp8_e4m3").tolist() == [0.0, 3 * 2.0 ** -136, 2.0 ** -135]


def test_scale_exponent_above_127():
    # float32's largest values give exponent 127 for mxint8 (emax 0): code 254
    big = torch.tensor([3.0e38, 1.0], dtype=torch.float32)
    assert block_encode(big, "mxint8").scale_codes.tolist() == [254]
    # float64 beyond 2**128 (mxint8) cannot be scaled: NaN scale, or an error when asked
    x = torch.tensor([2.0 ** 200, 1.0], dtype=torch.float64)
    assert block_encode(x, "mxint8").scale_codes.tolist() == [255]
    assert torch.isnan(block_round(x, "mxint8")).all()
    with pytest.raises(RangeOverflowError, match="exceeds E8M0"):
        block_encode(x, "mxint8", overflow="raise")


def test_element_saturation_and_raise():
    # floor: amax 1.96875 gives scale 2**-8; 504 rounds beyond E4M3's 448 and saturates
    x = torch.tensor([1.0, 1.96875, -1.96875, 1.8125], dtype=torch.float64)
    assert block_round(x, "mxfp8_e4m3").tolist() == [1.0, 1.75, -1.75, 1.8125 - 0.0625]
    with pytest.raises(RangeOverflowError, match=r"index \(0, 1\)"):
        block_encode(x, "mxfp8_e4m3", overflow="raise")
    # 1.8125 * 256 = 464 is the tie between 448 and 480: to even (448), not an overflow
    assert block_encode(x[[0, 3]], "mxfp8_e4m3", overflow="raise").element_codes[0, 1] == 0x7E
    # mxint8 saturates symmetrically: -1.999 -> -127/64, never the code -128
    y = torch.tensor([-1.999, 1.0], dtype=torch.float64)
    enc = block_encode(y, "mxint8")
    assert enc.element_codes[0, 0] == 0x81 and block_decode(enc).tolist() == [-127 / 64, 1.0]
    # rceil never saturates
    block_encode(x, "mxfp8_e4m3", rule="rceil", overflow="raise")


def test_partial_last_block_uses_its_own_amax():
    x = torch.cat([torch.full((32,), 1000.0), torch.full((8,), 0.001)]).to(torch.float64)
    enc = block_encode(x, "mxfp8_e4m3")
    assert enc.num_blocks == 2 and enc.padding == 24
    y = block_decode(enc)
    assert y.shape == x.shape
    assert y[-1] == float(np.float64(ml_dtypes.float8_e4m3fn(0.001 * 2 ** 17))) * 2.0 ** -17


@pytest.mark.parametrize("name", ["mxfp6_e2m3", "nvfp4"])
def test_axis_and_containers(name):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(48, 5, generator=g, dtype=torch.float64)
    keep = x.clone()
    a = block_round(x, name, axis=0)
    assert torch.equal(a, block_round(x.t().contiguous(), name).t())
    assert torch.equal(x, keep)                                     # input untouched
    n = block_round(x.numpy(), name, axis=-2)
    assert isinstance(n, np.ndarray) and n.dtype == np.float64 and np.array_equal(n, a.numpy())
    f32 = x.float()
    for half in (torch.float16, torch.bfloat16):
        h = f32.to(half)
        assert torch.equal(block_round(h, name, axis=0), block_round(h.float(), name, axis=0))
    assert block_round(f32.numpy(), name, axis=0).dtype == np.float32


@pytest.mark.parametrize("name", ALL)
def test_codes_are_the_ml_dtypes_bit_patterns(name):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(4, 64, generator=g) * torch.logspace(-3, 3, 64)
    enc = block_encode(x, name)
    vals = enc.element_values.numpy()
    if name == "mxint8":
        want = (vals * 64).astype(np.int64).astype(np.int8).view(np.uint8)
    else:
        want = vals.astype(ML_ELEM[name]).view(np.uint8)
    assert np.array_equal(enc.element_codes.numpy(), want)
    scale_type = ml_dtypes.float8_e8m0fnu if name in MX else ml_dtypes.float8_e4m3fn
    assert np.array_equal(enc.scale_codes.numpy(), enc.scales.numpy().astype(scale_type)
                          .view(np.uint8))


@pytest.mark.parametrize("name", ["mxfp8_e4m3", "mxfp8_e5m2", "mxfp6_e3m2", "mxfp6_e2m3",
                                  "mxfp4_e2m1"])
def test_floor_agrees_with_gfloat_quantize_block(name):
    gf = pytest.importorskip("gfloat")
    from gfloat import formats as gformats

    fi = getattr(gformats, f"format_info_{name}")
    g = torch.Generator().manual_seed(2)
    x = (torch.randn(40, 32, generator=g, dtype=torch.float64)
         * torch.logspace(-30, 30, 40, dtype=torch.float64)[:, None])
    want = np.stack([gf.quantize_block(fi, row, gf.compute_scale_amax) for row in x.numpy()])
    assert np.array_equal(block_round(x, name).numpy(), want)


def test_bad_input_errors():
    x = torch.ones(4, 32)
    with pytest.raises(TypeError, match="int64"):
        block_encode(torch.ones(32, dtype=torch.int64), "mxfp8_e4m3")
    with pytest.raises(TypeError, match="list"):
        block_encode([1.0] * 32, "mxfp8_e4m3")
    with pytest.raises(TypeError, match="int32"):
        block_encode(np.ones(32, dtype=np.int32), "mxfp8_e4m3")
    with pytest.raises(ValueError, match="at least one axis"):
        block_encode(torch.tensor(1.0), "mxfp8_e4m3")
    with pytest.raises(ValueError, match="one element"):
        block_encode(torch.ones(0, 32), "mxfp8_e4m3")
    with pytest.raises(ValueError, match="axis 2 is out of range"):
        block_encode(x, "mxfp8_e4m3", axis=2)
    with pytest.raises(TypeError, match="axis must be an int"):
        block_encode(x, "mxfp8_e4m3", axis=True)
    with pytest.raises(ValueError, match="not a scale rule of mxfp8_e4m3"):
        block_encode(x, "mxfp8_e4m3", rule="nvfp4")
    with pytest.raises(ValueError, match="not a scale rule of nvfp4"):
        block_encode(x, "nvfp4", rule="floor")
    with pytest.raises(ValueError, match="saturate"):
        block_encode(x, "mxfp8_e4m3", overflow="inf")
    with pytest.raises(ValueError, match="unknown block format"):
        block_encode(x, "mxfp3")
    with pytest.raises(TypeError, match="BlockEncoded"):
        block_decode(x)
    with pytest.raises(NotImplementedError, match="nvfp4"):
        block_encode(x, "nvfp4", rounding="toward_zero")
    if not ROUNDING_PASSED:
        with pytest.raises(NotImplementedError, match="round_to"):
            block_encode(x, "mxfp8_e4m3", rounding="stochastic")


def test_e8m0_scale_table_matches_registry_and_ml_dtypes():
    from numfmt.block_codec import BlockEncoded
    from numfmt.blocks import E8M0

    codes = torch.arange(256, dtype=torch.uint8).reshape(1, 256)
    enc = BlockEncoded(block_formats()[0], "floor", (1, 32), 1, torch.float32, "torch", codes,
                       torch.zeros(1, 256, 32, dtype=torch.uint8), None)
    ours = enc.scales.numpy()[0]
    want = np.arange(256, dtype=np.uint8).view(ml_dtypes.float8_e8m0fnu).astype(np.float64)
    assert np.array_equal(ours, want, equal_nan=True)
    registry = E8M0.format
    if registry is not None:            # numfmt's own entry, where the registry has it
        assert np.array_equal(registry.decode(np.arange(256)), want, equal_nan=True)


def test_element_rounding_modes_pass_through_to_round_to():
    """Other element roundings are numfmt.round_to's: passed on when it has them (checked
    against truncation computed here), a clear NotImplementedError until then."""
    x = torch.tensor([1.0, 1.3, -1.3, 0.7], dtype=torch.float64)
    if not ROUNDING_PASSED:
        with pytest.raises(NotImplementedError, match="round_to"):
            block_encode(x, "mxfp4_e2m1", rounding="toward_zero")
        return
    got = block_round(x, "mxfp4_e2m1", rounding="toward_zero")
    assert got.tolist() == [1.0, 1.0, -1.0, 0.5]          # scale 1: E2M1 grid 0.5, 1, 1.5


def test_asymmetric_mxint8_is_gfloats_convention():
    """gfloat saturates MXINT8 at -2 (code -128); a BlockFormat with symmetric=False encodes the
    same way, on the fast path as in the reference."""
    gf = pytest.importorskip("gfloat")
    from gfloat import formats as gformats

    from numfmt.blocks import BlockFormat
    from quant.blockscaled import BlockScaled

    asym = BlockFormat("mxint8_asym", "int8", "fp8_e8m0fnu", 32, "floor", element_shift=-6,
                       symmetric=False)
    g = torch.Generator().manual_seed(6)
    x = torch.randn(64, 32, generator=g) * torch.logspace(-20, 20, 64)[:, None]
    # a leading -1.999 * 2**k above the rest: scale 2**k, element -127.94 / 64 -> code -128
    x[:, 0] = -1.999 * torch.exp2(torch.ceil(torch.log2(x.abs().amax(1))) + 1)
    want = np.stack([gf.quantize_block(gformats.format_info_mxint8, r.astype(np.float64),
                                       gf.compute_scale_amax) for r in x.numpy()])
    assert np.array_equal(block_round(x.double(), asym).numpy(), want)
    fast = BlockScaled.encode(x, asym)
    assert torch.equal(fast.element_codes, block_encode(x, asym).element_codes)
    assert (fast.element_codes[:, 0, 0] == 0x80).all()


def test_asymmetric_int_overflow_rule():
    from numfmt.blocks import BlockFormat

    asym = BlockFormat("mxint8_asym", "int8", "fp8_e8m0fnu", 32, "floor", element_shift=-6,
                       symmetric=False)
    ok = torch.tensor([-1.999, 1.0], dtype=torch.float64)            # -127.94 -> -128 fits
    assert block_round(ok, asym, overflow="raise").tolist() == [-2.0, 1.0]
    with pytest.raises(RangeOverflowError):
        block_encode(torch.tensor([1.999, 1.0], dtype=torch.float64), asym, overflow="raise")
    with pytest.raises(RangeOverflowError):                       # symmetric: -128 is refused
        block_encode(ok, "mxint8", overflow="raise")


def test_stochastic_elements_pass_through_with_their_seed():
    """Stochastic element rounding is round_to's (with seed=): each result is one of the two
    grid neighbours, the same seed gives the same bits, and the share rounded up is the
    distance (here 1/4) within 5 standard deviations. A clear error until round_to has it."""
    from numfmt.block_checks import STOCHASTIC_PASSED

    x = torch.full((4096,), 1.125, dtype=torch.float64)   # E2M1 at scale 1: 1.0 or 1.5
    x[::32] = 4.0                                          # every block's amax: scale 2**0
    with pytest.raises(ValueError, match="seed= and generator= belong"):
        block_encode(x, "mxfp4_e2m1", seed=1)
    if not STOCHASTIC_PASSED:
        with pytest.raises(NotImplementedError, match="stochastic"):
            block_encode(x, "mxfp4_e2m1", rounding="stochastic", seed=1)
        return
    a = block_round(x, "mxfp4_e2m1", rounding="stochastic", seed=7)
    assert torch.equal(a, block_round(x, "mxfp4_e2m1", rounding="stochastic", seed=7))
    body = a[x == 1.125]
    assert set(body.tolist()) <= {1.0, 1.5}
    n = body.numel()
    up = int((body == 1.5).sum())
    assert abs(up - n / 4) < 5 * (n * 0.25 * 0.75) ** 0.5
