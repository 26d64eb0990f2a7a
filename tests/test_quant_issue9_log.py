"""quant.logdomain and quant.fixedpoint: issue 9's items 6, 7, 8, 9 and 19.

Expected values come from exact arithmetic: 300-bit mpmath logarithms (never a tie: a tie
would need an irrational power of two to be a float), Fractions for the decode error and
the requantized products.
"""

from fractions import Fraction

import mpmath
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import quant
from quant import EncodingRangeError, LogInt8
from quant.logdomain import offset_limits, rel_error_bound


@pytest.fixture(params=["native", "torch"])
def implementation(request, monkeypatch):
    monkeypatch.setenv("QUANT_NATIVE", "1" if request.param == "native" else "0")
    return request.param


def mp_code(x: float, offset: int, frac_bits: int) -> int:
    """The nearest LogInt8 code of x, from a 300-bit logarithm (clamped like the encoder)."""
    if x == 0:
        return 0
    with mpmath.workprec(300):
        m = int(mpmath.nint(mpmath.log(abs(mpmath.mpf(x)), 2) * (1 << frac_bits))) - offset
    m = min(127, max(0, m))
    return -m if x < 0 else m


# ------------------------------------------------------------------------------- item 7
def test_the_reported_float64_value_gets_the_nearest_code(implementation):
    x = float.fromhex("0x1.7a11473eb0187p-9")
    assert mp_code(x, -149, 3) == 82
    e = LogInt8.encode(torch.tensor([x, -x], dtype=torch.float64), offset=-149)
    assert e.codes.tolist() == [82, -82]


@given(st.integers(-1100, 800), st.integers(-3, 3), st.sampled_from([0, 2, 3, 6]),
       st.booleans())
@settings(max_examples=150, deadline=None)
def test_float64_values_next_to_a_boundary_get_the_nearest_code(k, ulps, frac_bits, negative):
    lo, hi = offset_limits(frac_bits)
    with mpmath.workprec(200):
        boundary = float(mpmath.power(2, (mpmath.mpf(k) + 0.5) / (1 << frac_bits)))
    x = boundary
    for _ in range(abs(ulps)):
        x = float(np.nextafter(x, np.inf if ulps > 0 else -np.inf))
    x = -x if negative else x
    offset = max(lo, min(hi, k - 60))
    want = mp_code(x, offset, frac_bits)
    for native in ("1", "0"):
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("QUANT_NATIVE", native)
            got = LogInt8.encode(torch.tensor([x, 1.0, 0.0], dtype=torch.float64),
                                 offset=offset, frac_bits=frac_bits).codes
        assert int(got[0]) == want
        assert int(got[1]) == mp_code(1.0, offset, frac_bits) and int(got[2]) == 0


# ------------------------------------------------------------------------------- item 8
def test_default_float32_decode_meets_its_stated_bound(implementation):
    x = np.float32(0.00021438625)
    e = LogInt8.encode(torch.tensor([x]), offset=-100)
    d = float(e.decode()[0])                                # the float32 decode the user gets
    exact_rel = abs(Fraction(d) - Fraction(float(x))) / Fraction(float(x))
    assert exact_rel > Fraction(rel_error_bound(3))         # the grid's bound alone is exceeded
    assert exact_rel <= Fraction(e.rel_error_bound)         # the bound of this decode holds
    assert e.max_rel_error(torch.tensor([x])) == float(exact_rel)
    d64 = float(e.decode(torch.float64)[0])
    rel64 = abs(Fraction(d64) - Fraction(float(x))) / Fraction(float(x))
    assert e.max_rel_error(torch.tensor([x]), torch.float64) == float(rel64)
    assert rel64 <= Fraction(e.rel_error_bound_for(torch.float64))


# ------------------------------------------------------------------------------- item 6
def test_log_calibration_refuses_data_it_cannot_reach(implementation):
    with pytest.raises(EncodingRangeError, match="saturate"):
        LogInt8.encode(torch.tensor([1e300, 1.0], dtype=torch.float64))
    with pytest.raises(EncodingRangeError, match="flush"):
        LogInt8.encode(torch.tensor([1e-300], dtype=torch.float64))
    # an explicit offset is the documented way to saturate on purpose
    e = LogInt8.encode(torch.tensor([1e300, 1.0], dtype=torch.float64), offset=-127)
    assert e.codes.tolist() == [127, 127]


def test_log_decode_error_messages_name_the_dtype():
    e = LogInt8.encode(torch.tensor([1.0]))
    with pytest.raises(ValueError, match="torch.float16"):
        e.decode(torch.float16)


# ------------------------------------------------------------------------------ item 19
def test_log_construction_copies_the_codes():
    c = torch.tensor([1, -5, 127], dtype=torch.int8)
    e = LogInt8(c, offset=-127)
    c[0] = -128                                             # not even a code
    assert e.codes.tolist() == [1, -5, 127]


# ------------------------------------------------------------------------------- item 9
def test_requantize_of_the_int64_minimum_is_exact():
    acc = torch.tensor([-2 ** 63, -2 ** 63, 5, -2 ** 63])
    shift = torch.tensor([40, 40, 40, 70])
    got = quant.requantize(acc, torch.tensor([2 ** 30, 0, 2 ** 30, 2 ** 31 - 1]), shift)
    want = [round(Fraction(-2 ** 63 * 2 ** 30, 2 ** 40)), 0, round(Fraction(5 * 2 ** 30, 2 ** 40)),
            -round(Fraction(2 ** 63 * (2 ** 31 - 1), 2 ** 70))]
    assert want[0] == -2 ** 53
    assert got.tolist() == want
    assert quant.requantize(torch.tensor([-2 ** 63]), 2 ** 30, 40).tolist() == [-2 ** 53]


def test_requantize_overflow_message_names_the_accumulator():
    with pytest.raises(quant.QuantOverflowError, match="requantized accumulator") as info:
        quant.requantize(torch.tensor([3, 2 ** 62]), 2 ** 30, 2)
    assert info.value.index == (1,)
    assert info.value.value == round(Fraction(2 ** 62 * 2 ** 30, 4))
    assert "exact result" not in str(info.value)


# ------------------------------------------------------------------------------ item 25
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_log_meta_tensors_stay_on_meta(dtype):
    x = torch.empty(2, 5, device="meta", dtype=dtype)
    e = LogInt8.encode(x, offset=-100)
    assert e.codes.device.type == "meta" and e.codes.shape == (2, 5)
    assert e.decode().device.type == "meta"
    with pytest.raises(ValueError, match="meta tensor has no values"):
        LogInt8.encode(x)
