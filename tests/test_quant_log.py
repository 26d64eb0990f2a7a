"""LogInt8 against exact integer / mpmath references, including exhaustive mantissa checks."""

import math
from fractions import Fraction

import mpmath
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from quant import LogInt8, exact_log_code, gaussian_log_table
from quant.logdomain import offset_limits


def mantissa_thresholds(frac_bits: int) -> list[int]:
    """Smallest 23-bit mantissa M with (1 + M/2**23)**n >= 2**(2i+1), n = 2**(F+1), exactly."""
    n = 1 << (frac_bits + 1)
    out = []
    for i in range(1 << frac_bits):
        target = 1 << (2 * i + 1 + 23 * n)
        lo, hi = 0, 1 << 23
        while lo < hi:
            mid = (lo + hi) // 2
            if ((1 << 23) + mid) ** n >= target:
                hi = mid
            else:
                lo = mid + 1
        out.append(lo)
    return out


def reference_codes(mant: torch.Tensor, exponent: int, offset: int, frac_bits: int,
                    thresholds: list[int]) -> torch.Tensor:
    """Exact codes of (1 + mant/2**23) * 2**exponent: round(2**F log2 x) - offset, clamped."""
    j = torch.bucketize(mant.to(torch.int64), torch.tensor(thresholds), right=True)
    big_l = (exponent << frac_bits) + j
    return (big_l - offset).clamp(0, 127)


@pytest.fixture(params=["native", "torch"])
def backend(request, monkeypatch):
    """Runs a test on the compiled encoder and again on the pure-torch one (QUANT_NATIVE=0)."""
    monkeypatch.setenv("QUANT_NATIVE", "1" if request.param == "native" else "0")
    return request.param


def ref_code(x: float, offset: int, frac_bits: int) -> int:
    """Exact signed code of one float by rational arithmetic (independent of the library)."""
    if x == 0:
        return 0
    n = 1 << (frac_bits + 1)
    r = Fraction(abs(x))
    num, den = r.numerator ** n, r.denominator ** n
    e = num.bit_length() - den.bit_length()
    if Fraction(num, den) < Fraction(2) ** e:
        e -= 1
    m = max(0, min(127, (e + 1) // 2 - offset))
    return m if x > 0 else -m


@pytest.mark.slow
def test_every_float32_mantissa_of_an_octave_encodes_exactly(backend):
    """All 2**23 mantissas of one octave. The encoder's float64 squarings see only the
    mantissa (scaling by the window's power of two is exact), so with the threshold
    neighbours of every octave below this covers every float32 input."""
    f, offset = 3, -127
    thr = mantissa_thresholds(f)
    mant = torch.arange(0, 1 << 23, dtype=torch.int32)
    exponent = (offset + 64) >> f
    x = (mant | ((exponent + 127) << 23)).view(torch.float32)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)            # many cache-sized passes: threads only add contention
    try:
        got = LogInt8.encode(x, offset=offset, frac_bits=f).codes.to(torch.int64)
        assert torch.equal(got, reference_codes(mant, exponent, offset, f, thr))
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("frac_bits", range(0, 7))
def test_threshold_neighbours_in_every_octave_of_the_window(frac_bits, backend):
    """Mantissas next to every rounding threshold, in every octave the codes span (+-1)."""
    thr = mantissa_thresholds(frac_bits)
    near = sorted({min(max(t + d, 0), (1 << 23) - 1) for t in thr for d in range(-3, 4)}
                  | {0, (1 << 23) - 1})
    mant = torch.tensor(near, dtype=torch.int32)
    for offset in (-127 << max(0, frac_bits - 3), 0, offset_limits(frac_bits)[1]):
        lo_e = (offset >> frac_bits) - 1
        hi_e = ((offset + 127) >> frac_bits) + 1
        for exponent in range(max(lo_e, -126), min(hi_e, 127) + 1):
            x = (mant | ((exponent + 127) << 23)).view(torch.float32)
            got = LogInt8.encode(x, offset=offset, frac_bits=frac_bits).codes.to(torch.int64)
            assert torch.equal(got, reference_codes(mant, exponent, offset, frac_bits, thr)), \
                (offset, exponent)


def test_subnormal_window_and_float64_input(backend):
    lo, _ = offset_limits(3)
    g = torch.Generator().manual_seed(1)
    bits = torch.randint(1, 1 << 24, (4000,), generator=g, dtype=torch.int32)
    x = bits.view(torch.float32) * torch.where(bits % 2 == 0, 1.0, -1.0)   # subnormals, 2**-126
    e = LogInt8.encode(x, offset=lo)
    assert e.codes.tolist() == [ref_code(float(v), lo, 3) for v in x]
    xd = torch.randn(3000, generator=g, dtype=torch.float64) * 1e3
    e = LogInt8.encode(xd, offset=-20)
    assert e.codes.tolist() == [ref_code(float(v), -20, 3) for v in xd]


@given(st.lists(st.floats(min_value=-2.0 ** 100, max_value=2.0 ** 100, allow_nan=False,
                          width=32),
                min_size=1, max_size=50), st.integers(-300, 300))
@settings(max_examples=150, deadline=None)
def test_random_values_match_rational_reference(values, offset):
    x = torch.tensor(values, dtype=torch.float32)
    assert LogInt8.encode(x, offset=offset).codes.tolist() == \
        [ref_code(v, offset, 3) for v in values]


@given(st.lists(st.floats(allow_nan=False, allow_infinity=False, width=32), min_size=2,
                max_size=60), st.integers(-1000, 800), st.integers(0, 6))
@settings(max_examples=100, deadline=None)
def test_encode_is_monotonic(values, offset, frac_bits):
    lo, hi = offset_limits(frac_bits)
    offset = max(lo, min(hi, offset))
    x = torch.tensor(sorted(values), dtype=torch.float32)
    c = LogInt8.encode(x, offset=offset, frac_bits=frac_bits).codes.to(torch.int64)
    assert bool((c[1:] >= c[:-1]).all())


@given(st.lists(st.floats(min_value=2.0 ** -14, max_value=1.0, allow_nan=False, width=32),
                min_size=1, max_size=50), st.sampled_from([1, 2, 3, 4]))
@settings(max_examples=100, deadline=None)
def test_relative_error_bound_inside_the_range(values, frac_bits):
    x = torch.tensor(values, dtype=torch.float32)
    e = LogInt8.encode(x, offset=-(127 << max(0, frac_bits - 2)) + 10 if frac_bits > 2
                       else -127, frac_bits=frac_bits)
    with mpmath.workprec(100):
        bound = float(mpmath.power(2, mpmath.mpf(1) / (1 << (frac_bits + 1))) - 1)
    # the float64 decode adds one float64 rounding to the grid's bound, float32 one of its own
    assert bound <= e.rel_error_bound_for(torch.float64) <= bound + 2.0 ** -52
    assert bound <= e.rel_error_bound <= bound + 2.0 ** -23
    xd = x.to(torch.float64)
    inside = (xd >= e.min_magnitude * 2 ** -(2.0 ** -(frac_bits + 1))) & (xd <= e.max_magnitude)
    for dtype, limit in ((torch.float64, e.rel_error_bound_for(torch.float64)),
                         (torch.float32, e.rel_error_bound)):
        rel = ((e.decode(dtype).double() - xd).abs() / xd)[inside]
        assert bool((rel <= limit).all())


def test_layout_saturation_flush_and_sign():
    x = torch.tensor([0.0, -0.0, 1.0, -1.0, 2.0 ** 40, -(2.0 ** 40), 2.0 ** -40, 1.0 / 3])
    e = LogInt8.encode(x, offset=-127)                    # top magnitude exactly 1.0
    assert e.codes.tolist()[:7] == [0, 0, 127, -127, 127, -127, 0]
    assert e.max_magnitude == 1.0 and e.min_magnitude == 2.0 ** (-126 / 8)
    assert e.dynamic_range_db == pytest.approx(20 * math.log10(2) * 126 / 8)
    assert e.dynamic_range_db == pytest.approx(94.82, abs=0.01)
    assert e.sign_magnitude_bits().tolist()[:4] == [0, 0, 127, 255]
    assert exact_log_code(1.0 / 3, 3) == ref_code(1.0 / 3, -100, 3) - 100 == -13


def test_decode_is_correctly_rounded():
    for offset in (-127, -500, 300):
        e = LogInt8(torch.arange(-127, 128, dtype=torch.int8), offset)
        got32, got64 = e.decode(), e.decode(torch.float64)
        for c in (1, 2, 50, 126, 127):
            with mpmath.workprec(200):
                exact = mpmath.power(2, mpmath.mpf(c + offset) / 8)
            with mpmath.workprec(24):                     # round to a 24-bit significand
                as32 = float(+exact)
            with mpmath.workprec(53):
                as64 = float(+exact)
            assert float(got32[127 + c]) == as32 and float(got32[127 - c]) == -as32
            assert float(got64[127 + c]) == as64
        assert float(got32[127]) == 0.0


def test_calibration():
    x = torch.tensor([0.0, 3.0, -0.001, 12.5])
    e = LogInt8.encode(x)
    assert e.codes.tolist()[3] == 127
    assert e.offset == ref_code(12.5, 0, 3) - 127
    p = LogInt8.encode(torch.cat([torch.full((999,), 2.0), torch.tensor([1e6])]),
                       calibration="percentile", percentile=99.0)
    assert p.offset == ref_code(2.0, 0, 3) - 127
    z = LogInt8.encode(torch.zeros(5))
    assert z.max_magnitude == 1.0 and z.codes.abs().sum() == 0


def test_bad_input():
    with pytest.raises(ValueError, match=r"index \(1,\)"):
        LogInt8.encode(torch.tensor([1.0, float("nan")]))
    with pytest.raises(ValueError, match=r"index \(0,\)"):
        LogInt8.encode(torch.tensor([float("inf"), 1.0]), offset=0)
    with pytest.raises(ValueError, match="empty"):
        LogInt8.encode(torch.empty(0))
    assert LogInt8.encode(torch.empty(0, 2), offset=-127).decode().shape == (0, 2)
    with pytest.raises(TypeError, match="int8"):
        LogInt8(torch.tensor([1.0]), offset=0)
    with pytest.raises(ValueError, match="-128"):
        LogInt8(torch.tensor([-128], dtype=torch.int8), offset=0)
    with pytest.raises(ValueError, match="offset"):
        LogInt8(torch.tensor([1], dtype=torch.int8), offset=10_000)
    with pytest.raises(ValueError, match="frac_bits"):
        LogInt8.encode(torch.ones(2), frac_bits=7)
    with pytest.raises(ValueError, match="calibration"):
        LogInt8.encode(torch.ones(2), calibration="minmax")
    huge = LogInt8.encode(torch.tensor([3e38, -3e38]), offset=-127)    # saturates, no error
    assert huge.codes.tolist() == [127, -127]


def test_gaussian_log_table_sums_are_correctly_rounded_for_all_code_pairs():
    """Every pair of nonzero codes: table result == round(8 log2 |a +- b|) (exact sum)."""
    from quant import add, sub
    from quant.policy import OverflowPolicy

    off = -127
    codes = torch.tensor([c for c in range(-127, 128) if c], dtype=torch.int8)
    a = codes.repeat_interleave(codes.numel())
    b = codes.repeat(codes.numel())
    with mpmath.workprec(120):
        mags = [0.0] + [float(mpmath.power(2, mpmath.mpf(m + off) / 8)) for m in range(1, 128)]
    mag_t = torch.tensor(mags, dtype=torch.float64)
    va = torch.sign(a.double()) * mag_t[a.long().abs()]
    vb = torch.sign(b.double()) * mag_t[b.long().abs()]
    table = gaussian_log_table(3)
    assert table.size < 100                                      # a small lookup table
    for fn, exact in ((add, va + vb), (sub, va - vb)):
        r = fn(LogInt8(a, off), LogInt8(b, off), out_offset=off + 8,
               policy=OverflowPolicy.SATURATE)
        nz = exact != 0
        t = 8 * torch.log2(exact[nz].abs())
        assert float((t - torch.floor(t) - 0.5).abs().min()) > 1e-9   # float64 is decisive
        want = (torch.floor(t + 0.5).to(torch.int64) - (off + 8))
        got = r.codes.to(torch.int64)[nz]
        inside = (want >= 1) & (want <= 127)
        assert torch.equal(got.abs()[inside], want[inside])
        assert torch.equal(torch.sign(got[inside]), torch.sign(exact[nz][inside]).long())
        assert bool((r.codes[~nz] == 0).all())                      # x - x is exactly 0
        rel = ((r.decode(torch.float64)[nz] - exact[nz]).abs() / exact[nz].abs())[inside]
        assert float(rel.max()) <= r.rel_error_bound * (1 + 1e-12)
    assert np.isclose(r.rel_error_bound, 2 ** (1 / 16) - 1)
