"""ScaledInt8: round trip, saturation, monotonicity, per-channel, calibration, bad input."""

import dataclasses
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from quant import EncodingRangeError, ScaledInt8

finite32 = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False,
                     width=32)


def f32(v: float) -> float:
    return float(np.float32(v))


@given(st.lists(finite32, min_size=1, max_size=64),
       st.floats(min_value=1e-4, max_value=1e3, allow_nan=False).map(f32))
@settings(max_examples=150, deadline=None)
def test_round_trip_within_half_a_step_and_saturation(values, scale):
    x = torch.tensor(values, dtype=torch.float32)
    e = ScaledInt8.encode(x, scale=scale)
    assert e.codes.dtype == torch.int8 and (e.qmin, e.qmax) == (-127, 127)
    d = e.decode(torch.float64)
    xd = x.to(torch.float64)
    inside = xd.abs() <= 127 * scale
    # half a step, plus the float32 rounding of the quotient x / scale (|x/scale| <= 127.5)
    tol = scale * (0.5 + 128 * 2.0 ** -24)
    assert bool(((d - xd).abs() <= tol)[inside].all())
    assert bool((e.codes[~inside] == torch.where(xd[~inside] > 0, 127, -127)).all())


def test_codes_equal_numpy_float32_division_and_rint():
    """The stated contract, computed by numpy: rint(float32(x / scale)) + zp, clamped."""
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((37, 53)) * 3).astype(np.float32)
    for zp, dt, lo, hi in ((0, "int8", -128, 127), (-5, "int8", -128, 127),
                           (128, "uint8", 0, 255)):
        s = np.float32(0.0417139865)
        e = ScaledInt8.encode(x, scale=float(s), zero_point=zp, dtype=dt, narrow_range=False)
        ref = np.clip(np.rint(x / s) + zp, lo, hi)
        assert np.array_equal(e.codes.numpy().astype(np.int64), ref.astype(np.int64))
        assert np.array_equal(e.decode().numpy(), (s * (ref - zp)).astype(np.float32))
    scales = (rng.random(53) * 0.1 + 0.01).astype(np.float32)
    zps = rng.integers(-20, 20, 53)
    e = ScaledInt8.encode(x, scale=torch.from_numpy(scales), zero_point=torch.from_numpy(zps),
                          axis=1, narrow_range=False)
    ref = np.clip(np.rint(x / scales) + zps, -128, 127).astype(np.int64)
    assert np.array_equal(e.codes.numpy().astype(np.int64), ref)


def test_codes_agree_with_torch_quantize_except_at_near_ties():
    torch.manual_seed(0)
    x = torch.randn(200_000) * 3
    s = float(np.float32(0.0417139865))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        q = torch.quantize_per_tensor(x, s, 0, torch.qint8).int_repr()
    e = ScaledInt8.encode(x, scale=s, narrow_range=False)
    differ = e.codes != q
    frac = (x.double() / s).abs() % 1
    assert bool(((frac[differ] - 0.5).abs() < 1e-5).all())   # only where x/s is a near tie
    assert int(differ.sum()) < 20


@given(st.lists(finite32, min_size=2, max_size=64))
@settings(max_examples=100, deadline=None)
def test_encode_is_monotonic(values):
    x = torch.tensor(sorted(values), dtype=torch.float32)
    for kw in ({}, {"zero_point": None}, {"scale": 0.5, "zero_point": 3}):
        try:
            c = ScaledInt8.encode(x, **kw).codes.to(torch.int64)
        except EncodingRangeError:       # calibrating data below ~1e-36 is refused (item 6)
            assert "scale" not in kw and float(x.abs().max()) < 2.0 ** -126 * 255
            continue
        assert bool((c[1:] >= c[:-1]).all())


@pytest.mark.parametrize("axis", [0, 1, 2, -1])
@pytest.mark.parametrize("calibration", ["minmax", "percentile", "mse"])
def test_per_channel_equals_per_tensor_on_each_slice(axis, calibration):
    g = torch.Generator().manual_seed(axis + 7)
    x = torch.randn(4, 5, 6, generator=g) * torch.logspace(-2, 2, 6)
    e = ScaledInt8.encode(x, axis=axis, calibration=calibration)
    for i in range(x.shape[axis]):
        s = ScaledInt8.encode(x.select(axis, i), calibration=calibration)
        assert float(e.scale[i]) == float(s.scale)
        assert torch.equal(e.codes.select(axis, i), s.codes)
        assert torch.equal(e.decode().select(axis, i), s.decode())


def test_minmax_maps_extremes_to_the_end_codes_and_zero_exactly():
    x = torch.tensor([-3.0, -1.0, 0.0, 0.5, 2.0])
    sym = ScaledInt8.encode(x)
    assert sym.codes.tolist()[0] == -127 and float(sym.scale) == f32(3.0 / 127)
    asym = ScaledInt8.encode(x, zero_point=None)
    assert asym.codes.dtype == torch.uint8
    assert asym.codes.min() == 0 and asym.codes.max() == 255
    assert asym.decode()[2] == 0.0                       # zero is exactly representable
    pos = ScaledInt8.encode(torch.tensor([1.0, 2.0, 4.0]), zero_point=None)
    assert int(pos.zero_point) == 0 and pos.codes.max() == 255    # range stretched to hold 0
    full = ScaledInt8.encode(x, narrow_range=False)
    assert (full.qmin, full.qmax) == (-128, 127)
    i8z = ScaledInt8.encode(x, zero_point=None, dtype="int8")
    assert (i8z.qmin, i8z.qmax) == (-128, 127) and i8z.codes.min() == -128


def test_percentile_matches_numpy():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(1001, generator=g, dtype=torch.float64)
    e = ScaledInt8.encode(x, calibration="percentile", percentile=99.0)
    top = np.percentile(np.abs(x.numpy()), 99.0)
    assert float(e.scale) == f32(top / 127)
    a = ScaledInt8.encode(x, zero_point=None, calibration="percentile", percentile=95.0)
    lo, hi = np.percentile(x.numpy(), [5.0, 95.0])
    assert float(a.scale) == f32((hi - lo) / 255)


def test_mse_search_beats_or_matches_minmax():
    torch.manual_seed(5)
    x = torch.distributions.StudentT(2.0).sample((4000,))  # heavy tails: clipping pays
    mm = ScaledInt8.encode(x)
    ms = ScaledInt8.encode(x, calibration="mse")
    err = lambda e: float((e.decode(torch.float64) - x.double()).square().sum())  # noqa: E731
    assert err(ms) <= err(mm)
    assert float(ms.scale) < float(mm.scale)


def test_numpy_input_and_inputs_are_not_modified():
    x = np.linspace(-2, 2, 11, dtype=np.float32)
    before = x.copy()
    e = ScaledInt8.encode(x, scale=0.1)
    assert np.array_equal(x, before)
    t = torch.tensor(x)
    tc = t.clone()
    ScaledInt8.encode(t)
    assert torch.equal(t, tc)
    assert e.codes.tolist() == [-20, -16, -12, -8, -4, 0, 4, 8, 12, 16, 20]
    ints = ScaledInt8.encode(np.arange(-3, 4), scale=1.0)
    assert ints.codes.tolist() == list(range(-3, 4))
    half = ScaledInt8.encode(torch.tensor([0.5, 1.5], dtype=torch.float16), scale=1.0)
    assert half.codes.tolist() == [0, 2]                  # ties to even


def test_float64_input_and_decode():
    x = torch.tensor([1e-3, -0.25, 0.3333333333333333], dtype=torch.float64)
    e = ScaledInt8.encode(x, scale=2.0 ** -8)
    assert e.codes.tolist() == [0, -64, 85]
    assert e.decode(torch.float64).dtype == torch.float64


def test_direct_construction_and_its_validation():
    c = torch.tensor([[-3, 4], [5, -6]], dtype=torch.int8)
    e = ScaledInt8(c, scale=torch.tensor([0.5, 0.25]), zero_point=0, axis=1)
    assert e.decode().tolist() == [[-1.5, 1.0], [2.5, -1.5]]
    u = ScaledInt8(torch.tensor([0, 10, 255], dtype=torch.uint8), scale=0.5, zero_point=10)
    assert u.decode().tolist() == [-5.0, 0.0, 122.5]
    with pytest.raises(TypeError, match="int8 or uint8"):
        ScaledInt8(torch.tensor([1.0, 2.0]), scale=1.0)
    with pytest.raises(TypeError, match="int8 or uint8"):
        ScaledInt8(torch.tensor([1, 2], dtype=torch.int16), scale=1.0)
    wide = ScaledInt8(torch.tensor([1, 70000], dtype=torch.int32), scale=0.5)  # an accumulator
    assert (wide.qmin, wide.qmax) == (-2 ** 31, 2 ** 31 - 1)
    assert wide.decode(torch.float64).tolist() == [0.5, 35000.0]
    with pytest.raises(ValueError, match="outside the code range"):
        ScaledInt8(torch.tensor([-128], dtype=torch.int8), scale=1.0, qmin=-127)
    with pytest.raises(ValueError, match="zero_point"):
        ScaledInt8(torch.tensor([1], dtype=torch.int8), scale=1.0, zero_point=200)
    with pytest.raises(ValueError, match="channels"):
        ScaledInt8(c, scale=torch.tensor([1.0, 2.0, 3.0]), axis=0)
    with pytest.raises(ValueError, match="per-tensor"):
        ScaledInt8(c, scale=torch.tensor([1.0, 2.0]))
    with pytest.raises(TypeError, match="integers"):
        ScaledInt8(c, scale=1.0, zero_point=torch.tensor(0.5))
    with pytest.raises(dataclasses.FrozenInstanceError):
        e.scale = 3.0


@pytest.mark.parametrize("scale", [0.0, -1.0, float("nan"), float("inf"), 1e-300])
def test_bad_scales(scale):
    with pytest.raises(ValueError, match="scale"):
        ScaledInt8.encode(torch.ones(3), scale=scale)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_nan_and_inf_are_refused_with_their_index(bad):
    x = torch.zeros(2, 3)
    x[1, 2] = bad
    for kw in ({}, {"scale": 0.1}, {"axis": 0}, {"scale": 0.1, "axis": 1},
               {"calibration": "percentile"}):
        with pytest.raises(ValueError, match=r"index \(1, 2\)"):
            ScaledInt8.encode(x, **kw)


def test_huge_finite_values_saturate_rather_than_error():
    e = ScaledInt8.encode(torch.tensor([3e38, -3e38, 1.0]), scale=1e-30)
    assert e.codes.tolist() == [127, -127, 127]


def test_empty_input():
    e = ScaledInt8.encode(torch.empty(0, 3), scale=0.5)
    assert e.codes.shape == (0, 3) and e.decode().shape == (0, 3)
    with pytest.raises(ValueError, match="empty"):
        ScaledInt8.encode(torch.empty(0))


def test_other_bad_arguments():
    x = torch.ones(2, 3)
    with pytest.raises(ValueError, match="axis"):
        ScaledInt8.encode(x, axis=2)
    with pytest.raises(ValueError, match="calibration"):
        ScaledInt8.encode(x, calibration="kl")
    with pytest.raises(ValueError, match="int8 or uint8"):
        ScaledInt8.encode(x, dtype="fp16")
    with pytest.raises(ValueError, match="unknown number format"):
        ScaledInt8.encode(x, dtype="int9")
    with pytest.raises(TypeError):
        ScaledInt8.encode([1.0, 2.0])
    with pytest.raises(TypeError, match="complex"):
        ScaledInt8.encode(torch.ones(2, dtype=torch.complex64))
    with pytest.raises(ValueError, match="zero_point=None"):
        ScaledInt8.encode(x, scale=1.0, zero_point=None)
    with pytest.raises(ValueError, match="channels"):
        ScaledInt8.encode(x, scale=torch.tensor([1.0, 2.0]), axis=1)
    with pytest.raises(ValueError, match="percentile"):
        ScaledInt8.encode(x, calibration="percentile", percentile=0.0)


def test_properties():
    x = torch.tensor([[1.0, -2.0], [100.0, 50.0]])
    e = ScaledInt8.encode(x, axis=0)
    assert e.min_magnitude == float(e.scale.min())
    assert e.max_magnitude == pytest.approx(100.0, rel=1e-6)
    assert e.dynamic_range_db == pytest.approx(20 * np.log10(100.0 / e.min_magnitude))
    assert e.sqnr_db(x) > 40 and 0 <= e.max_rel_error(x) < 0.01
    assert "ScaledInt8" in repr(e)


@pytest.mark.parametrize("zp, dt, lo, hi", [(0, "int8", -128, 127), (-7, "int8", -128, 127),
                                            (100, "int8", -128, 127), (0, "uint8", 0, 255),
                                            (255, "uint8", 0, 255)])
def test_large_tensor_ties_and_huge_values_match_numpy(zp, dt, lo, hi):
    """Several blocks plus a ragged tail: exact ties, near-ties and values whose quotient is
    near 2**31 (where a quantizer that adds the zero point in int32 would wrap) all follow
    rint(float32(x / scale)) + zp, clamped, as computed by numpy."""
    rng = np.random.default_rng(11)
    s = np.float32(0.0417139865)
    n = (1 << 19) + 12_345
    x = (rng.standard_normal(n) * 4).astype(np.float32)
    k = rng.integers(-300, 300, n // 8)
    x[: n // 8] = (k + 0.5).astype(np.float32) * s           # exact and near ties of x / s
    x[n // 8: n // 8 + 8] = [3e38, -3e38, 9e7, -9e7, 2.0 ** 31 * s, -(2.0 ** 31) * s, 0.0, -0.0]
    e = ScaledInt8.encode(x, scale=float(s), zero_point=zp, dtype=dt, narrow_range=False)
    with np.errstate(over="ignore"):                        # 3e38 / s is inf: saturates
        ref = np.clip(np.rint(x / s).astype(np.float64) + zp, lo, hi).astype(np.int64)
    assert np.array_equal(e.codes.numpy().astype(np.int64), ref)
    if dt == "int8" and zp == 0:
        narrow = ScaledInt8.encode(x, scale=float(s))
        assert np.array_equal(narrow.codes.numpy().astype(np.int64), np.clip(ref, -127, 127))


@pytest.mark.parametrize("pos", [0, 5, (1 << 18) + 3, (1 << 19) + 12_344])
def test_nan_anywhere_in_a_large_tensor_is_refused(pos):
    x = torch.zeros((1 << 19) + 12_345)
    x[pos] = float("nan")
    with pytest.raises(ValueError, match=rf"index \({pos},\)"):
        ScaledInt8.encode(x, scale=0.1)


@pytest.mark.parametrize("v", [float("nan"), float("inf"), -float("inf"), 0.0, -1.0, 1e-50,
                               2.0 ** -127, 2.0 ** -128, 3.4e38, 3.5e38, 1e300, 0.01])
def test_scalar_and_vector_scale_checks_agree(v):
    """The per-tensor fast check says exactly what the per-channel tensor check says."""
    outcomes = []
    for scale, axis in ((v, None), (torch.tensor([v, 1.0], dtype=torch.float64), 0)):
        try:
            ScaledInt8.encode(torch.ones(2, 3), scale=scale, axis=axis)
            outcomes.append("ok")
        except ValueError as err:
            outcomes.append(str(err).split(",")[0])
    assert outcomes[0] == outcomes[1]
    with np.errstate(over="ignore", divide="ignore"):
        f32 = np.float32(v) if v == v else np.float32("nan")
        usable = bool(np.isfinite(f32) and f32 > 0 and np.isfinite(np.float32(1) / f32))
    assert (outcomes[0] == "ok") == usable
