"""numfmt.strategies: draws are values of the format, every code and value is reached, the
rounding inputs hold the known traps (checked in Fractions), and project properties run on them."""

from __future__ import annotations

import math
from fractions import Fraction

import ml_dtypes
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, find, given, settings, strategies as st

import numfmt
from numfmt import strategies
from tests.reference import nearest_even, values_from_dtype

ALL = list(numfmt.formats())
SMALL = [f for f in ALL if f.bits <= 8]
SMALL_FLOATS = [f for f in SMALL if f.is_float]
COVERAGE = settings(max_examples=3000, derandomize=True, database=None, deadline=None,
                    suppress_health_check=list(HealthCheck))


def _key(v: float) -> bytes | str:
    """Identity of a drawn value: its float64 bits (so -0.0 differs from 0.0), NaN as one."""
    return "nan" if v != v else np.float64(v).tobytes()


def _is_value(v, f) -> bool:
    r = numfmt.round_to(v, f)
    return (r != r and v != v) or (r == v and math.copysign(1, r) == math.copysign(1, v))


# ---- values / codes ---------------------------------------------------------------------------
@pytest.mark.parametrize("f", ALL, ids=str)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_every_draw_is_a_value_of_the_format(f, data):
    v = data.draw(strategies.values(f, allow_nan=f.has_nan, allow_infinity=f.has_inf))
    assert isinstance(v, float if f.is_float else int) and not isinstance(v, bool)
    assert _is_value(v, f)
    if f.numpy_dtype is not None and math.isfinite(v):   # the library's own round trip
        assert np.array(v).astype(f.numpy_dtype).astype(np.float64) == v


@pytest.mark.parametrize("f", SMALL, ids=str)
def test_every_code_and_every_value_of_small_formats_is_drawn(f):
    seen_codes: set[int] = set()
    seen_values: set = set()

    @COVERAGE
    @given(strategies.codes(f))
    def draw_codes(c):
        seen_codes.add(c)

    @COVERAGE
    @given(strategies.values(f, allow_nan=f.has_nan, allow_infinity=f.has_inf))
    def draw_values(v):
        seen_values.add(_key(v))

    draw_codes()
    draw_values()
    assert seen_codes == set(range(2**f.bits))
    decoded = f.decode(np.arange(2**f.bits))
    assert seen_values == {_key(float(v)) for v in decoded}   # -0 and NaN included


def _significant_bits(v: float) -> int:
    n = Fraction(v).numerator
    return abs(n).bit_length() - (abs(n) & -abs(n)).bit_length() + 1 if n else 0


@pytest.mark.parametrize("name", ["bf16", "fp16", "fp8_e4m3fn", "fp8_e5m2", "fp4_e2m1fn",
                                  "tf32", "fp32", "fp64"])
def test_values_shrink_to_simple_values(name):
    """0 and +-1 where they satisfy the property; otherwise values of at most 3 significant
    bits or an extreme (hypothesis' shrinker is a heuristic, so not always the simplest)."""
    settings_ = settings(database=None, max_examples=500, derandomize=True)
    s = strategies.values(name)
    assert find(s, lambda v: True, settings=settings_) == 0.0
    assert find(s, lambda v: v != 0, settings=settings_) in (1.0, -1.0)
    assert find(s, lambda v: abs(v) >= 1, settings=settings_) in (1.0, -1.0)
    f = numfmt.get(name)
    extremes = {f.max, f.lowest, f.smallest_subnormal, -f.smallest_subnormal}
    for pred in (lambda v: v > 3, lambda v: 0 < v < 1, lambda v: v < -3):
        shrunk = find(s, pred, settings=settings_)
        assert pred(shrunk) and (_significant_bits(shrunk) <= 3 or shrunk in extremes), shrunk
    assert find(strategies.values("int8"), lambda v: v < -3, settings=settings_) == -4


@pytest.mark.parametrize("name", ["fp8_e4m3fn", "fp16", "fp32", "int8", "uint8"])
@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_bounds_and_subnormal_options_are_respected(name, data):
    f = numfmt.get(name)
    lo = data.draw(st.floats(-2 * f.max, 2 * f.max), label="lo")
    hi = data.draw(st.floats(lo, 2 * f.max), label="hi")
    try:
        s = strategies.values(f, min_value=lo, max_value=hi, allow_subnormal=False)
    except ValueError as err:                 # only when no value of the format lies there
        assert "no" in str(err) and not _some_normal_value_between(f, lo, hi)
        return
    v = data.draw(s)
    assert lo <= v <= hi and _is_value(v, f)
    assert v == 0 or abs(v) >= f.tiny


def _some_normal_value_between(f, lo: float, hi: float) -> bool:
    """Independent of the strategies: a zero or normal value of ``f`` in [lo, hi]."""
    if not f.is_float:
        return math.ceil(lo) <= math.floor(hi) and math.floor(hi) >= f.lowest \
            and math.ceil(lo) <= f.max
    if f.bits > 16:
        with np.errstate(over="ignore"):
            c = np.float32(lo)                # the smallest float32 >= lo (fp32 only here)
        c = float(c) if float(c) >= lo else float(np.nextafter(c, np.float32(np.inf)))
        if 0 < abs(c) < f.tiny:
            c = 0.0 if c < 0 else f.tiny
        return c <= hi and abs(c) <= f.max
    v = values_from_dtype(f.numpy_dtype, f.bits)
    v = v[(v == 0) | (np.abs(v) >= f.tiny)]
    return bool(((v >= lo) & (v <= hi)).any())


def test_signed_zero_bounds_nan_and_infinity():
    assert find(strategies.values("fp16", min_value=0.0), lambda v: v == 0) == 0.0
    assert not math.copysign(1, find(strategies.values("fp16", min_value=0.0),
                                     lambda v: v == 0))  < 0
    neg_zero = find(strategies.values("fp16", max_value=-0.0), lambda v: v == 0)
    assert math.copysign(1, neg_zero) < 0
    strategies.values("fp16", min_value=0.0)           # (a cache must not mix up the zeros)
    assert math.copysign(1, find(strategies.values("fp16", min_value=-0.0),
                                 lambda v: v == 0 and math.copysign(1, v) < 0)) < 0
    assert math.isnan(find(strategies.values("bf16", allow_nan=True), math.isnan))
    assert find(strategies.values("fp8_e5m2", allow_infinity=True), math.isinf) in (
        math.inf, -math.inf)
    assert find(strategies.values("fp16", allow_subnormal=True),
                lambda v: 0 < v < numfmt.get("fp16").tiny) == 2.0**-24


@pytest.mark.parametrize("kwargs, match", [
    ({"allow_nan": True}, "no NaN"), ({"allow_infinity": True}, "no infinity"),
    ({"min_value": 3.0, "max_value": 2.0}, "greater"), ({"min_value": math.nan}, "NaN"),
    ({"min_value": 6.5}, "no fp4_e2m1fn value"),
])
def test_bad_options_are_refused_clearly(kwargs, match):
    with pytest.raises(ValueError, match=match):
        strategies.values("fp4_e2m1fn", **kwargs)
    with pytest.raises(ValueError, match="unknown number format"):
        strategies.values("fp7")
    with pytest.raises(TypeError, match="min_value"):
        strategies.values("fp16", min_value="1")


@pytest.mark.parametrize("spec", ["half", torch.bfloat16, ml_dtypes.float8_e4m3fn,
                                  np.dtype(np.int8), numfmt.get("fp6_e2m3fn")])
def test_accepts_everything_get_accepts(spec):
    f = numfmt.get(spec)
    quick = settings(database=None, max_examples=50)
    assert _is_value(find(strategies.values(spec), lambda v: v != 0, settings=quick), f)
    assert find(strategies.codes(spec), lambda c: c >= 2 ** (f.bits - 1), settings=quick) \
        == 2 ** (f.bits - 1)


# ---- arrays -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name, numpy_dtype, torch_dtype", [
    ("fp8_e4m3fn", ml_dtypes.float8_e4m3fn, torch.float8_e4m3fn),
    ("bf16", ml_dtypes.bfloat16, torch.bfloat16),
    ("fp4_e2m1fn", ml_dtypes.float4_e2m1fn, torch.float32),   # no element-wise torch dtype
    ("tf32", np.float32, torch.float32), ("int8", np.int8, torch.int8),
])
@settings(max_examples=20, deadline=None)
@given(data=st.data())
def test_arrays_hold_values_in_the_storage_dtype(name, numpy_dtype, torch_dtype, data):
    a = data.draw(strategies.arrays(name, (3, 2)))
    assert a.dtype == np.dtype(numpy_dtype) and a.shape == (3, 2)
    assert all(_is_value(float(v), name) for v in a.astype(np.float64).ravel())
    t = data.draw(strategies.arrays(name, 4, backend="torch", allow_nan=False))
    assert t.dtype == torch_dtype and t.shape == (4,)
    assert all(_is_value(float(v), name) for v in t.to(torch.float64).tolist())


def test_arrays_refuse_an_unknown_backend():
    with pytest.raises(ValueError, match="backend"):
        strategies.arrays("fp16", 3, backend="jax")


# ---- rounding inputs, checked in Fractions ----------------------------------------------------
def _rne_bits(q: Fraction, p: int) -> Fraction:
    """Independent reference: positive q rounded to p significant bits, ties to even."""
    e = q.numerator.bit_length() - q.denominator.bit_length()
    if Fraction(2) ** e > q:
        e -= 1
    step = Fraction(2) ** (e - p + 1)
    return round(q / step) * step      # Fraction.__round__: half to even


def _floor_log2(q: Fraction) -> int:
    e = q.numerator.bit_length() - q.denominator.bit_length()
    return e - 1 if Fraction(2) ** e > q else e


def _library_values(f) -> list[Fraction]:
    """Ascending nonnegative finite values, decoded by ml_dtypes from the bit patterns."""
    v = values_from_dtype(f.numpy_dtype, 16 if f.bits == 16 else 8)
    return [Fraction(float(x)) for x in v if x >= 0]


@pytest.mark.parametrize("f", [f for f in SMALL_FLOATS if f.numpy_dtype is not None], ids=str)
@pytest.mark.parametrize("source", ["float64", "float32"])
def test_rounding_inputs_hold_every_midpoint_the_overflow_tie_and_the_underflow_midpoint(f,
                                                                                        source):
    x = strategies.rounding_input_array(f, source)
    assert x.dtype == np.dtype(source) and np.all(np.diff(x.astype(np.float64)) >= 0)
    have = set(x.astype(np.float64).tolist())
    vals = _library_values(f)
    mids = [(a + b) / 2 for a, b in zip(vals, vals[1:])]
    step_top = vals[-1] - vals[-2] if f.mantissa_bits else vals[-1]
    smallest = min(v for v in vals if v > 0)                      # e8m0 has no zero
    must = mids + [vals[-1] + step_top / 2, smallest / 2]         # overflow tie, underflow mid
    dt = np.dtype(source).type
    for q in must:
        for v in (q, -q):
            assert float(v) in have, (f.name, v)
            assert float(np.nextafter(dt(v), dt(np.inf))) in have
            assert float(np.nextafter(dt(v), dt(-np.inf))) in have


def test_rounding_inputs_hold_the_float32_double_rounding_traps_of_bf16():
    x = strategies.rounding_input_array("bf16", "float64")
    trap = Fraction(1) + Fraction(1, 2**8) + Fraction(1, 2**40)
    assert float(trap) in set(x.tolist())
    assert _rne_bits(trap, 24) == 1 + Fraction(1, 2**8)        # float32 lands on the bf16 tie
    assert _rne_bits(trap, 8) == 1 + Fraction(1, 2**7)         # the correct bf16 result
    assert _rne_bits(_rne_bits(trap, 24), 8) == 1              # what the detour gives
    # many such traps, each one checked exactly on a sample
    pos = x[(x > 2.0**-100) & (x < 2.0**100)]
    on32 = pos.astype(np.float32).astype(np.float64)
    bf16 = numfmt.get("bf16")
    q = np.ldexp(1.0, np.floor(np.log2(on32)).astype(int) - bf16.mantissa_bits - 1)
    traps = pos[(on32 != pos) & (np.mod(on32 / q, 2) == 1)]       # float32 result is a tie
    assert traps.size > 10_000
    harmful = 0
    for t in traps[:: traps.size // 200]:
        tq = Fraction(float(t))
        t32 = _rne_bits(tq, 24)
        lo = _rne_bits(t32, 8) if _rne_bits(t32, 8) < t32 else t32 - (_rne_bits(t32, 8) - t32)
        assert t32 != tq and (t32 - lo) * 2 ** (1 + 7 - _floor_log2(t32)) % 2 == 1  # on a tie
        harmful += _rne_bits(t32, 8) != _rne_bits(tq, 8)
    assert harmful >= 80        # the side of the tie away from the even neighbour: about half


def test_rounding_inputs_other_sources_and_errors():
    x = strategies.rounding_input_array("fp8_e4m3fn", "bf16")
    assert x.dtype == ml_dtypes.bfloat16 and 464.0 in x.astype(np.float64)
    assert strategies.rounding_input_array("fp4_e2m1fn", "fp16").dtype == np.float16
    with pytest.raises(ValueError, match="float format"):
        strategies.rounding_input_array("fp16", "int8")
    a = strategies.rounding_input_array("fp16")
    a[0] = 1.0                                  # a fresh array: the cache is not touched
    assert strategies.rounding_input_array("fp16")[0] != 1.0


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_rounding_inputs_strategy_draws_from_the_array(data):
    name = data.draw(st.sampled_from(["fp8_e5m2", "int8", "fp6_e3m2fn"]))
    v = data.draw(strategies.rounding_inputs(name, "float32"))
    assert isinstance(v, float) and float(np.float32(v)) == v
    assert v in set(strategies.rounding_input_array(name, "float32").astype(float).tolist())


# ---- project properties on the strategies' inputs ---------------------------------------------
_TABLES: dict = {}


def _table(f):
    if f.name not in _TABLES:
        codes = np.arange(2 ** (f.bits - 1))
        v = f.decode(codes)
        keep = np.isfinite(v)
        _TABLES[f.name] = ([Fraction(float(x)) for x in v[keep]],
                           [bool(c % 2 == 0) for c in codes[keep]])
    return _TABLES[f.name]


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_property_round_to_matches_enumeration_on_rounding_inputs(data):
    """test_property_nearest_by_enumeration of test_numfmt_rounding, on the inputs that break
    casts (midpoints, their neighbours, double-rounding traps) instead of arbitrary floats."""
    f = numfmt.get(data.draw(st.sampled_from(["fp16", "bf16", "fp8_e4m3fn", "fp8_e5m2"])))
    x = data.draw(strategies.rounding_inputs(f, "float64"))
    values, even = _table(f)
    ax = Fraction(abs(x))
    top, ulp_top = values[-1], values[-1] - values[-2]
    got = numfmt.round_to(x, f)
    if ax > top + ulp_top / 2 or (ax == top + ulp_top / 2 and not even[-1]):
        assert math.isinf(got) or math.isnan(got)
    else:
        want = top if ax > top else nearest_even(values, even, ax)
        assert got == math.copysign(float(want), x)


@pytest.mark.filterwarnings("ignore:(invalid value|overflow) encountered in cast:RuntimeWarning")
@settings(max_examples=50, deadline=None)
@given(data=st.data())
def test_property_torch_and_numpy_paths_agree_on_strategy_arrays(data):
    """test_property_torch_and_numpy_paths_agree of test_numfmt_rounding, on arrays of values
    of a source format (any registered float format up to 16 bits) into every float target."""
    src = data.draw(st.sampled_from([f for f in ALL if f.is_float and f.bits <= 16]))
    dst = data.draw(st.sampled_from([f for f in ALL if f.is_float]))
    a = data.draw(strategies.arrays(src, st.integers(0, 30), allow_nan=dst.has_nan
                                    and src.has_nan)).astype(np.float64)
    r_np = np.asarray(numfmt.round_to(a, dst), dtype=np.float64)
    r_t = numfmt.round_to(torch.from_numpy(a.copy()), dst).double().numpy()
    same = (r_np == r_t) | (np.isnan(r_np) & np.isnan(r_t))
    assert same.all() and np.array_equal(np.signbit(r_np[~np.isnan(r_np)]),
                                         np.signbit(r_t[~np.isnan(r_t)]))


@pytest.mark.parametrize("f", [f for f in ALL if f.is_float and f.bits in (8, 16)
                               and f.numpy_dtype is not None and 0 in f.finite_values()], ids=str)
def test_float32_rounding_inputs_match_the_single_rounding_library_cast(f):
    """float32 -> format is one rounding in ml_dtypes/numpy: numfmt agrees bit for bit on every
    rounding input (the existing midpoint test, on the strategies' fuller set). Formats without
    a zero (e8m0) are left out: what underflow gives there is a choice, not a rounding."""
    x = strategies.rounding_input_array(f, "float32")
    with np.errstate(all="ignore"):
        theirs = x.astype(f.numpy_dtype).astype(np.float64)
    ours = np.asarray(numfmt.round_to(x, f), dtype=np.float64)
    assert np.array_equal(ours, theirs, equal_nan=True)
    real = ~np.isnan(theirs)
    assert np.array_equal(np.signbit(ours[real]), np.signbit(theirs[real]))


@pytest.mark.filterwarnings("ignore::hypothesis.errors.NonInteractiveExampleWarning")
@pytest.mark.parametrize("module", ["numfmt.strategies", "numfmt.cast_inputs"])
def test_docstring_examples_hold(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module))
    assert result.attempted > 0 and result.failed == 0
