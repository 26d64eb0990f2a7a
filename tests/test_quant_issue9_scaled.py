"""quant.scaled: issue 9's items 5, 6, 19 and 25 against independent references.

Expected values come from torch's own quantizer (torch.quantize_per_channel / per_tensor),
exact float64 arithmetic on small integers, or the definition of the invariant.
"""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import quant
from quant import EncodingRangeError, QuantOverflowError, ScaledInt8
from quant.scaled.params import check_decode_scale


@pytest.fixture(params=["native", "torch"])
def implementation(request, monkeypatch):
    monkeypatch.setenv("QUANT_NATIVE", "1" if request.param == "native" else "0")
    assert quant.native.implementation(torch.zeros(1)) == request.param or \
        not quant.native.available()
    return request.param


# ------------------------------------------------------------------------------- item 5
@pytest.mark.filterwarnings("ignore:torch.quantize_per_tensor:UserWarning")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_odd_zero_point_rounds_the_quotient_before_the_shift(implementation, dtype):
    x = torch.tensor([[1.25, -0.25]], dtype=dtype)
    per_channel = ScaledInt8.encode(x, scale=torch.tensor([0.5]), zero_point=1, axis=0,
                                    dtype="uint8")
    per_tensor = ScaledInt8.encode(x, scale=0.5, zero_point=1, dtype="uint8")
    ref = torch.quantize_per_channel(x.float(), torch.tensor([0.5], dtype=torch.float64),
                                     torch.tensor([1]), 0, torch.quint8).int_repr()
    assert ref.tolist() == [[3, 1]]
    assert per_channel.codes.tolist() == ref.tolist()
    assert per_tensor.codes.tolist() == ref.tolist()


@pytest.mark.filterwarnings("ignore:torch.quantize_per_tensor:UserWarning")
@given(st.lists(st.integers(-300, 300), min_size=1, max_size=40), st.integers(-4, 4),
       st.lists(st.integers(0, 255), min_size=3, max_size=3), st.booleans())
@settings(max_examples=60, deadline=None)
def test_ties_with_any_zero_point_match_torch_quantize_per_channel(halves, log_scale, zps,
                                                                  wide):
    # x / s = k + 1/2 exactly (s a power of two, so torch's reciprocal multiply is exact too)
    s = 2.0 ** log_scale
    x = torch.tensor([[(k + 0.5) * s for k in halves]] * 3,
                     dtype=torch.float64 if wide else torch.float32)
    scales = torch.full((3,), s, dtype=torch.float64)
    zp = torch.tensor(zps)
    for native in ("1", "0"):
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("QUANT_NATIVE", native)
            got = ScaledInt8.encode(x, scale=scales, zero_point=zp, axis=0, dtype="uint8")
        ref = torch.quantize_per_channel(x.float(), scales, zp, 0, torch.quint8).int_repr()
        assert got.codes.tolist() == ref.tolist()


# ------------------------------------------------------------------------------- item 6
@pytest.mark.parametrize("calibration", ["minmax", "percentile", "mse"])
@pytest.mark.parametrize("axis", [None, 0])
def test_data_beyond_float32_scales_raise_a_named_error(calibration, axis):
    x = torch.tensor([[1e41, 1.0], [2.0, -3e45]], dtype=torch.float64)
    with pytest.raises(EncodingRangeError, match="beyond float32"):
        ScaledInt8.encode(x, axis=axis, calibration=calibration)
    with pytest.raises(EncodingRangeError):
        ScaledInt8.encode(x, axis=axis, zero_point=None, calibration=calibration)
    assert issubclass(EncodingRangeError, ValueError)


@pytest.mark.parametrize("x", [torch.tensor([1e-300, -2e-300], dtype=torch.float64),
                               torch.tensor([1e-40, 3e-41], dtype=torch.float32)])
def test_tiny_data_is_refused_instead_of_flushed_to_zeros(x):
    with pytest.raises(EncodingRangeError, match="flush"):
        ScaledInt8.encode(x)
    # all-zero data is fine (scale 1.0 by the calibration convention) and exact
    z = ScaledInt8.encode(torch.zeros(3, dtype=x.dtype))
    assert z.decode().tolist() == [0.0, 0.0, 0.0]


def test_every_encoding_keeps_its_invariants_at_the_float32_edges():
    # the largest and smallest data a calibrated float32 scale still reaches
    for top in (1e38, 2.0 ** -126 * 127):
        e = ScaledInt8.encode(torch.tensor([top, -top / 3], dtype=torch.float64))
        assert math.isfinite(float(e.scale)) and float(e.scale) > 0
        again = ScaledInt8(e.codes, e.scale, e.zero_point, e.axis, e.qmin, e.qmax)
        assert again == e                       # the constructor accepts what encode made
        assert int(e.codes.abs().max()) == 127


def test_decode_error_only_suggests_float64_where_it_helps():
    a = ScaledInt8(torch.tensor([3], dtype=torch.int8), scale=2.0 ** -100)
    p = quant.mul(a, a)                          # product scale 2**-200: not a float32 value
    with pytest.raises(ValueError, match=r"use decode\(torch.float64\)"):
        p.decode()
    assert p.decode(torch.float64).tolist() == [9 * 2.0 ** -200]
    with pytest.raises(ValueError) as info:
        check_decode_scale(torch.tensor(0.0, dtype=torch.float64),
                           torch.tensor(1e-400, dtype=torch.float64), torch.float64)
    assert "use decode" not in str(info.value)


# ------------------------------------------------------------------------------ item 19
def test_construction_copies_the_callers_tensors():
    c = torch.tensor([1, 2, 3], dtype=torch.int8)
    s = torch.tensor(0.5, dtype=torch.float64)
    z = torch.tensor(0)
    e = ScaledInt8(c, scale=s, zero_point=z, qmin=-10, qmax=10)
    c[0], s.fill_(7.0), z.fill_(5)
    assert e.codes.tolist() == [1, 2, 3] and float(e.scale) == 0.5 and int(e.zero_point) == 0
    x = torch.tensor([1.0, -2.0])
    enc = ScaledInt8.encode(x, scale=0.5)
    x[0] = 100.0
    assert enc.codes.tolist() == [2, -4]


# ------------------------------------------------------------------------------ item 25
def test_meta_tensors_encode_and_decode_on_meta():
    x = torch.empty(3, 4, device="meta")
    e = ScaledInt8.encode(x, scale=0.1)
    assert e.codes.device.type == "meta" and e.codes.shape == (3, 4)
    assert e.codes.dtype == torch.int8
    pc = ScaledInt8.encode(x, scale=torch.full((4,), 0.1), axis=1)
    assert pc.codes.device.type == "meta"
    assert e.decode().device.type == "meta" and pc.decode(torch.float64).shape == (3, 4)
    with pytest.raises(ValueError, match="meta tensor has no values"):
        ScaledInt8.encode(x)


def test_default_matmul_is_the_exact_accumulator_at_the_product_scale():
    g = torch.Generator().manual_seed(0)
    x, w = torch.randn(3, 4, generator=g), torch.randn(4, 5, generator=g)
    a, b = ScaledInt8.encode(x, scale=0.02), ScaledInt8.encode(w, scale=0.02)
    r = quant.matmul(a, b)                       # 15 of 15 overflowed int8 before
    exact = a.codes.to(torch.int64) @ b.codes.to(torch.int64)
    assert r.codes.dtype == torch.int32 and torch.equal(r.codes.to(torch.int64), exact)
    assert float(r.scale) == float(torch.tensor(0.02).to(torch.float32).double() ** 2)
    # small integers times float32 scales: float64 decode is exact, equal to torch's product
    ref = a.decode(torch.float64) @ b.decode(torch.float64)
    assert torch.allclose(r.decode(torch.float64), ref, rtol=1e-15, atol=0)
    as_int32 = quant.matmul(a, b, out_dtype="int32")
    assert as_int32 == r
    with pytest.raises(QuantOverflowError):      # narrowing stays checked
        quant.matmul(a, b, out_scale=1e-4)
    with pytest.raises(QuantOverflowError):
        quant.matmul(a, b, out_dtype="int8")


def test_equal_encodings_compare_equal_and_are_unhashable():
    x = torch.tensor([[0.5, -1.0], [2.0, 0.25]])
    a, b = ScaledInt8.encode(x, axis=0), ScaledInt8.encode(x.clone(), axis=0)
    assert a == b and not (a != b)
    assert a != ScaledInt8.encode(x)             # per tensor: other scales, other axis
    assert a != ScaledInt8.encode(x * 2, axis=0)
    assert ScaledInt8.encode(x, zero_point=None) != ScaledInt8.encode(x)
    with pytest.raises(TypeError):
        hash(a)
    la = quant.LogInt8.encode(x)
    assert la == quant.LogInt8.encode(x.clone()) and la != quant.LogInt8.encode(x, frac_bits=2)


def test_dot_errors_name_quant_dot():
    v = ScaledInt8(torch.tensor([1, 2, 3], dtype=torch.int8), scale=0.5)
    u = ScaledInt8(torch.tensor([1, 2], dtype=torch.int8), scale=0.5)
    with pytest.raises(ValueError, match=r"^quant\.dot"):
        quant.dot(v, u)
    with pytest.raises(ValueError, match=r"quant\.dot"):
        quant.dot(v, v, policy="inf")
