"""round_to against enumeration, exact arithmetic, and the libraries' own single-rounding casts."""

from __future__ import annotations

import math
from fractions import Fraction

import ml_dtypes
import numpy as np
import pytest
import torch
from hypothesis import given, strategies as st
from hypothesis.extra import numpy as hnp

import numfmt
from tests.reference import nearest_even

SMALL = [f for f in numfmt.formats() if f.is_float and f.bits <= 19]
LIB_CASTS = [f for f in numfmt.formats() if f.is_float and f.bits in (8, 16) and f.numpy_dtype
             and f.name != "fp8_e8m0fnu"]      # E8M0: its own test below


def _same(a, b) -> bool:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return bool(np.all((a == b) | (np.isnan(a) & np.isnan(b))))


def _table(f):
    """(ascending nonnegative values, is the code even) from the bit patterns."""
    codes = np.arange(2 ** (f.bits - 1) if f.signed else 2**f.bits)  # sign bit clear
    v = f.decode(codes)
    keep = np.isfinite(v)
    return [Fraction(float(x)) for x in v[keep]], [bool(c % 2 == 0) for c in codes[keep]]


def _midpoints(f) -> np.ndarray:
    v = f.finite_values()
    v = v[v >= 0]
    mids = (v[:-1] + v[1:]) / 2  # exact in float64 for these formats
    return np.concatenate([mids, -mids]) if f.signed else mids


@pytest.mark.parametrize("f", SMALL, ids=str)
def test_every_value_rounds_to_itself(f):
    v = f.finite_values()
    assert _same(numfmt.round_to(v, f), v)
    assert _same(numfmt.round_to(torch.from_numpy(v), f).numpy(), v)


@pytest.mark.parametrize("f", SMALL, ids=str)
def test_every_midpoint_and_its_neighbours_match_enumeration(f):
    """Exhaustive: each midpoint (a tie) and the float64 values just beside it."""
    values, even = _table(f)
    mids = _midpoints(f)
    mids = mids[np.abs(mids) <= f.max]
    for x in (mids, np.nextafter(mids, np.inf), np.nextafter(mids, -np.inf)):
        got = numfmt.round_to(x, f)
        # reference on a deterministic subsample of up to 4096 points (Fraction search is slow)
        idx = np.linspace(0, x.size - 1, min(x.size, 4096)).astype(int)
        want = [float(np.sign(xx) * nearest_even(values, even, Fraction(abs(float(xx)))))
                for xx in x[idx]]
        assert _same(got[idx], want)


# overflowing, NaN and inf inputs are cast on purpose
@pytest.mark.filterwarnings("ignore:(invalid value|overflow) encountered in cast:RuntimeWarning")
@pytest.mark.parametrize("f", LIB_CASTS, ids=str)
def test_float32_inputs_match_ml_dtypes_and_numpy_casts_bit_for_bit(f):
    """float32 -> format is a single rounding in numpy/ml_dtypes: ours must agree everywhere,
    at every midpoint, one float32 ulp either side, in the subnormals and past the max."""
    mids = _midpoints(f).astype(np.float32)
    big = np.array([f.max * k for k in (1.0, 1.01, 1.0625, 1.5, 2, 1e3)] + [np.inf, np.nan],
                   dtype=np.float32)
    x = np.concatenate([mids, np.nextafter(mids, np.float32(np.inf)),
                        np.nextafter(mids, np.float32(-np.inf)), big, -big,
                        f.finite_values().astype(np.float32)])
    theirs = x.astype(f.numpy_dtype).astype(np.float64)
    ours = numfmt.round_to(x, f)
    assert ours.dtype == np.float32
    assert _same(ours, theirs)
    real = ~np.isnan(theirs)  # NaN sign bits are not part of the contract
    assert np.array_equal(np.signbit(ours[real]), np.signbit(theirs[real]))


@pytest.mark.filterwarnings("ignore:(invalid value|overflow) encountered in cast:RuntimeWarning")
def test_e8m0_against_ml_dtypes_torch_and_gfloat():
    """E8M0 has no fraction bits: a tie 1.5 * 2**e goes to the even *code* (as gfloat rounds;
    ml_dtypes and torch round every such tie up). Away from ties and from float32's subnormals
    (which ml_dtypes sends to 2**-126 whatever their value) all three agree with us; zero and
    negative inputs, which E8M0 cannot hold, give NaN like ml_dtypes (torch: 2**-127, |x|)."""
    import gfloat
    from gfloat.formats import format_info_ocp_e8m0
    f = numfmt.get("fp8_e8m0fnu")
    v = f.finite_values()
    x = np.concatenate([v * 1.25, v * 1.75, v, v * 1.5]).astype(np.float32)
    x = x[np.isfinite(x) & (x >= 2.0**-126)]
    ours = numfmt.round_to(x, f)
    ties = x == (2.0 ** np.floor(np.log2(x.astype(np.float64)))) * 1.5
    theirs = x.astype(f.numpy_dtype).astype(np.float64)
    assert _same(ours[~ties], theirs[~ties])
    up = ties & (x < f.max)
    assert (theirs[up] > x[up]).all() and up.sum() > 100          # ml_dtypes: ties up
    g = [gfloat.round_float(format_info_ocp_e8m0, float(t), gfloat.RoundMode.TiesToEven)
         for t in x]
    assert _same(ours, g)
    t = numfmt.round_to(torch.from_numpy(x), f)
    assert _same(t.numpy(), ours)
    special = numfmt.round_to(np.array([0.0, -1.0, 2.0**-140, 2.0**128, np.inf]), f)
    assert _same(special, [np.nan, np.nan, 2.0**-127, np.nan, np.nan])
    assert numfmt.round_to(np.array([0.0, -1.0]), f, overflow="saturate").tolist() == \
        [2.0**-127, 2.0**-127]


@pytest.mark.parametrize("name", ["fp8_e4m3fnuz", "fp8_e5m2fnuz", "p3109_k8p4se", "p3109_k8p3se"])
def test_formats_without_negative_zero_give_plus_zero(name):
    x = np.array([-0.0, -1e-30, -2.0**-40])
    for got in (numfmt.round_to(x, name), numfmt.round_to(torch.from_numpy(x), name).numpy()):
        assert (got == 0).all() and not np.signbit(got).any()


def test_unsigned_formats_negative_inputs_meet_the_overflow_rule():
    """A negative value that rounds to a nonzero magnitude is below the range of an unsigned
    format ([0 or its smallest value, max]); tiny negatives round to +0 where 0 exists."""
    u = numfmt.p3109(8, 4, signed=False)
    x = np.array([-1.0, -1e-30, 3.0])
    assert _same(numfmt.round_to(x, u), [np.nan, 0.0, 3.0])          # extended: no -inf
    assert numfmt.round_to(x, u, overflow="saturate").tolist() == [0.0, 0.0, 3.0]
    with pytest.raises(numfmt.RangeOverflowError, match=r"index \(0,\)"):
        numfmt.round_to(x, u, overflow="raise")
    assert _same(numfmt.round_to(np.array([np.inf, -np.inf]), u), [np.inf, np.nan])
    assert numfmt.round_to(np.array([-3.0, 20.0]), "uint4").tolist() == [0, 15]


@pytest.mark.parametrize("name", ["fp16", "bf16", "fp8_e5m2"])
def test_float32_tensors_match_torch_casts_bit_for_bit(name):
    f = numfmt.get(name)
    mids = torch.from_numpy(_midpoints(f).astype(np.float32))
    x = torch.cat([mids, torch.nextafter(mids, torch.tensor(np.inf)),
                   torch.nextafter(mids, torch.tensor(-np.inf)),
                   torch.tensor([np.inf, -np.inf, np.nan, f.max * 1.5, 0.0, -0.0])])
    ours = numfmt.round_to(x, f)
    theirs = x.to(f.torch_dtype).to(torch.float32)
    assert ours.dtype == torch.float32
    assert torch.equal(torch.isnan(ours), torch.isnan(theirs))
    m = ~torch.isnan(ours)
    assert torch.equal(ours[m], theirs[m])


@pytest.mark.parametrize("name", ["fp16", "bf16"])
def test_float64_inputs_round_once_not_through_float32(name):
    """A float64 just above a midpoint must round up; the libraries' float32 detour ties it
    to even instead (the documented double-rounding error)."""
    f = numfmt.get(name)
    values, even = _table(f)
    mids = _midpoints(f)
    mids = mids[(mids > 0) & (mids < f.max)]
    x = mids + np.spacing(mids) * 2  # above the tie, but rounds back onto it in float32
    x = x[x.astype(np.float32).astype(np.float64) == mids]
    assert x.size > 1000
    want = np.array([float(nearest_even(values, even, Fraction(float(v)))) for v in x[:2000]])
    assert _same(numfmt.round_to(x[:2000], f), want)
    assert _same(numfmt.round_to(torch.from_numpy(x[:2000]), f).numpy(), want)
    # torch 2.14 (pinned) casts float64 to bf16/fp16 through float32: it double-rounds here
    # (ml_dtypes did too before 0.7; the cast audit reports whichever version is installed).
    dtype = torch.bfloat16 if name == "bf16" else torch.float16
    theirs = torch.from_numpy(x[:2000]).to(dtype).double().numpy()
    assert (theirs != want).sum() > 100


@given(st.floats(allow_nan=False, allow_infinity=False, width=64),
       st.sampled_from(["fp16", "bf16", "fp8_e4m3fn", "fp8_e5m2", "tf32"]))
def test_property_nearest_by_enumeration(x, name):
    f = numfmt.get(name)
    got = numfmt.round_to(x, f)
    if abs(x) > f.max * 2:
        assert np.isinf(got) or np.isnan(got)
        return
    if name not in _TABLES:
        _TABLES[name] = _table(f)
    values, even = _TABLES[name]
    ax = Fraction(abs(x))
    top = values[-1]
    ulp_top = top - values[-2]
    if ax > top + ulp_top / 2 or (ax == top + ulp_top / 2 and not even[-1]):
        assert np.isinf(got) or np.isnan(got)
        return
    if ax > top:
        want = top
    else:
        want = nearest_even(values, even, ax)
    assert got == float(want) * (1 if x >= 0 else -1)


_TABLES: dict = {}


@given(st.floats(width=64))
def test_property_fp32_matches_numpy_float64_to_float32(x):
    with np.errstate(over="ignore"):
        want = np.float64(np.float32(x))
    assert _same(numfmt.round_to(x, "fp32"), want)


# overflowing, NaN and inf inputs are cast on purpose
@pytest.mark.filterwarnings("ignore:(invalid value|overflow) encountered in cast:RuntimeWarning")
@given(hnp.arrays(np.float64, st.integers(0, 50), elements=st.floats(width=64)),
       st.sampled_from(["fp16", "bf16", "tf32", "fp8_e4m3fn", "fp32", "int8", "fp6_e2m3fn"]))
def test_property_torch_and_numpy_paths_agree(a, name):
    f = numfmt.get(name)
    if not f.has_nan and np.isnan(a).any():          # both paths refuse NaN alike
        for x in (a, torch.from_numpy(a.copy())):
            with pytest.raises(ValueError, match="has no"):
                numfmt.round_to(x, f)
        a = a[~np.isnan(a)]
    t = torch.from_numpy(a.copy())
    assert _same(numfmt.round_to(a, f), numfmt.round_to(t, f).numpy())
    assert _same(numfmt.round_to(a.astype(np.float32), f),
                 numfmt.round_to(t.float(), f).double().numpy())


# overflowing, NaN and inf inputs are cast on purpose
@pytest.mark.filterwarnings("ignore:(invalid value|overflow) encountered in cast:RuntimeWarning")
def test_tf32_bit_trick_matches_exact_path_on_random_float32_patterns():
    rng = np.random.default_rng(0)
    bits = rng.integers(0, 2**32, size=1 << 20, dtype=np.uint64).astype(np.uint32)
    x32 = bits.view(np.float32)
    fast = numfmt.round_to(torch.from_numpy(x32.copy()), "tf32").double().numpy()
    exact = numfmt.round_to(x32.astype(np.float64), "tf32")
    assert _same(fast, exact)
    v = numfmt.get("tf32").finite_values()
    assert np.isin(fast[np.isfinite(fast)], v).all()


def test_overflow_rules():
    x = np.array([1e6, -1e6, np.inf, 100.0])
    assert _same(numfmt.round_to(x, "fp16"), [np.inf, -np.inf, np.inf, 100.0])
    assert _same(numfmt.round_to(x, "fp16", overflow="saturate"), [65504, -65504, 65504, 100])
    assert _same(numfmt.round_to(x, "e4m3fn"), [np.nan, np.nan, np.nan, 96.0])
    assert _same(numfmt.round_to(x, "e4m3fn", overflow="saturate"), [448, -448, 448, 96])
    with pytest.raises(OverflowError, match=r"index \(0,\) .*overflows fp16"):
        numfmt.round_to(x, "fp16", overflow="raise")
    with pytest.raises(ValueError, match="no infinity"):
        numfmt.round_to(x, "e4m3fn", overflow="inf")
    # E4M3FN: 464 is the tie between 448 (even) and the NaN code: it stays finite
    assert numfmt.round_to(464.0, "e4m3fn") == 448.0
    assert np.isnan(numfmt.round_to(464.0001, "e4m3fn"))
    assert numfmt.round_to(65519.99, "fp16") == 65504 and numfmt.round_to(65520.0, "fp16") == np.inf


def test_int8_rounding_saturates_or_raises_and_rejects_nan():
    x = np.array([-128.5, -3.5, -2.5, 2.5, 126.5, 127.5, 300.0])
    assert _same(numfmt.round_to(x, "int8"), [-128, -4, -2, 2, 126, 127, 127])
    with pytest.raises(OverflowError, match=r"value 127.5 at index \(4,\)"):
        numfmt.round_to(x[1:], "int8", overflow="raise")
    with pytest.raises(ValueError, match="NaN"):
        numfmt.round_to(np.array([1.0, np.nan]), "int8")
    with pytest.raises(ValueError, match="not one for round_to into int8"):
        numfmt.round_to(x, "int8", overflow="inf")
    t = torch.tensor([300, -7], dtype=torch.int32)
    assert numfmt.round_to(t, "int8").tolist() == [127, -7]


def test_containers_and_dtypes_are_preserved_and_inputs_untouched():
    a32 = np.array([1.1, 2.2], dtype=np.float32)
    before = a32.copy()
    assert numfmt.round_to(a32, "bf16").dtype == np.float32
    assert np.array_equal(a32, before)
    assert numfmt.round_to(a32, "fp64").dtype == np.float64  # float32 cannot hold fp64
    assert numfmt.round_to(np.float16(1.5), "fp8_e4m3fn").dtype == np.float16
    assert numfmt.round_to(np.array([1.0], dtype=np.float16), "bf16").dtype == np.float32
    assert isinstance(numfmt.round_to(1.1, "fp16"), float)
    assert numfmt.round_to(1.1, "fp16") == float(np.float16(1.1))
    assert numfmt.round_to(2**60 + 1, "fp64") == 2.0**60
    assert isinstance(numfmt.round_to([1.1, 2.0], "fp16"), np.ndarray)
    t = torch.tensor([1.1, -0.0, float("nan")], dtype=torch.float64)
    tb = t.clone()
    r = numfmt.round_to(t, "tf32")
    assert r.dtype == torch.float64 and torch.equal(t[:2], tb[:2])
    assert torch.signbit(r[1]) and torch.isnan(r[2])
    assert numfmt.round_to(torch.tensor([3], dtype=torch.int64), "fp16").dtype == torch.float32
    assert numfmt.round_to(torch.tensor([1.5], dtype=torch.bfloat16), "fp8_e4m3fn").dtype \
        == torch.bfloat16


@pytest.mark.parametrize("bad", ["1.0", {"a": 1}, True, np.array(["x"]), torch.tensor([True])])
def test_bad_inputs_get_clear_type_errors(bad):
    with pytest.raises(TypeError, match="round"):
        numfmt.round_to(bad, "fp16")


def test_subnormals_round_on_the_subnormal_grid():
    f = numfmt.get("fp16")
    s = f.smallest_subnormal
    x = np.array([s * 0.5, s * 0.5000001, s * 1.5, s * 2.5, -s * 0.25])
    assert _same(numfmt.round_to(x, f), [0.0, s, 2 * s, 2 * s, -0.0])
    assert np.signbit(numfmt.round_to(x, f)[-1])


@pytest.mark.parametrize("name", ["tf32", "bf16", "fp8_e4m3fn"])
def test_shapes_empty_scalar_and_non_contiguous_tensors(name):
    g = torch.Generator().manual_seed(1)
    base = torch.randn(100_001, 3, generator=g) * 1e3  # > 2**18: more than one TF32 block
    nc = base.t()  # non-contiguous, and more than one TF32 block
    got = numfmt.round_to(nc, name)
    assert got.shape == nc.shape
    assert _same(got.double().numpy(), numfmt.round_to(nc.double().numpy(), name))
    assert numfmt.round_to(torch.empty(0, 4), name).shape == (0, 4)
    s = numfmt.round_to(torch.tensor(1.0009765625 + 2**-12), name)
    assert s.shape == () and s.item() == numfmt.round_to(1.0009765625 + 2**-12, name)


INT_FORMATS = [f for f in numfmt.formats() if not f.is_float and f.max_exact <= 2**53]


@pytest.mark.parametrize("f", INT_FORMATS, ids=str)
def test_int_formats_round_half_even_and_saturate_to_their_own_range(f):
    """Independent reference: Python's round (half to even), clamped to [lowest, max]."""
    lo, hi = int(f.lowest), int(f.max)
    xs = [lo - 1e6, lo - 1.5, lo - 0.5, lo - 0.4, lo, lo + 0.5, -2.5, -0.5, -0.4, 0.0, 0.5,
          1.5, 2.5, hi - 0.5, hi, hi + 0.4, hi + 0.5, hi + 1e6]
    want = [min(hi, max(lo, round(v))) for v in xs]
    a = np.array(xs)
    got_np = numfmt.round_to(a, f)
    got_t = numfmt.round_to(torch.tensor(xs, dtype=torch.float64), f)
    assert got_np.tolist() == want and got_t.tolist() == want
    assert not np.signbit(got_np[np.array(want) == 0]).any()          # no -0.0 for integers
    inside = [v for v, w in zip(xs, want) if lo - 0.5 <= v <= hi + 0.5 and w == round(v)]
    assert numfmt.round_to(np.array(inside), f, overflow="raise").tolist() == \
        [round(v) for v in inside]
    for v in (lo - 0.6, hi + 0.6):
        with pytest.raises(OverflowError, match=f.name):
            numfmt.round_to(np.array([v]), f, overflow="raise")
        with pytest.raises(OverflowError, match=f.name):
            numfmt.round_to(torch.tensor([v], dtype=torch.float64), f, overflow="raise")


@pytest.mark.parametrize("rule", ["inf", "nan", "saturate", "raise"])
@pytest.mark.parametrize("name", ["fp64", "fp32", "fp16", "fp8_e4m3fn", "fp4_e2m1fn", "int8"])
def test_infinite_inputs_stay_inf_where_the_format_has_inf_else_meet_the_rule(name, rule):
    """The documented decision: +-inf stays +-inf in a format with inf under every rule but
    "saturate" (which clamps to +-max, like torch's saturating FP8 casts); in a format without
    inf it meets the rule as an overflow. The numpy and torch paths, every container alike."""
    f = numfmt.get(name)
    xs = [np.inf, -np.inf, 1.0]
    if rule == "saturate":
        want = [float(f.max), float(f.lowest), 1.0]
    elif f.has_inf:
        want = [np.inf, -np.inf, 1.0]
    elif rule == "nan" and f.has_nan:
        want = [np.nan, np.nan, 1.0]
    else:
        want = None               # "raise" (or a rule the format cannot follow)
    allowed = (rule in ("saturate", "raise") or (rule == "inf" and f.has_inf)
               or (rule == "nan" and f.has_nan))
    for x in (np.array(xs), np.array(xs, dtype=np.float32), torch.tensor(xs, dtype=torch.float64),
              torch.tensor(xs, dtype=torch.float32)):
        if not allowed:
            with pytest.raises(ValueError, match="impossible|not one for"):
                numfmt.round_to(x, f, overflow=rule)
        elif want is None:
            with pytest.raises(numfmt.RangeOverflowError, match=r"index \(0,\)"):
                numfmt.round_to(x, f, overflow=rule)
        else:
            got = np.asarray(numfmt.round_to(x, f, overflow=rule), dtype=np.float64)
            np.testing.assert_array_equal(got, want)


def test_raise_is_only_for_finite_overflow_in_formats_with_inf():
    x = np.array([np.inf, 7e4])
    with pytest.raises(numfmt.RangeOverflowError, match=r"70000.0 at index \(1,\)") as err:
        numfmt.round_to(x, "fp16", overflow=numfmt.OverflowPolicy.RAISE)
    assert isinstance(err.value, OverflowError) and err.value.count == 1 and err.value.total == 2
    assert numfmt.round_to(np.array([np.inf]), "fp64", overflow="raise")[0] == np.inf


def test_overflow_takes_policy_members_and_refuses_wrap():
    P = numfmt.OverflowPolicy
    assert numfmt.round_to(1e6, "fp16", overflow=P.SATURATE) == 65504.0
    assert numfmt.round_to(1e6, "fp16", overflow="SATURATE") == 65504.0
    assert math.isnan(numfmt.round_to(1e6, "e4m3fn", overflow=P.NAN))
    with pytest.raises(ValueError, match="'saturate', 'raise'"):
        numfmt.round_to(1.0, "int8", overflow=P.WRAP)
    with pytest.raises(ValueError, match="not one for"):
        numfmt.round_to(1.0, "fp16", overflow="clip")
    assert numfmt.Overflow is not None


def _rne_int(v: int, p: int) -> int:
    """Independent reference: an integer rounded to p significant bits, ties to even."""
    s, v = (-1 if v < 0 else 1), abs(v)
    e = v.bit_length() - p
    if e <= 0:
        return s * v
    q, r = divmod(v, 1 << e)
    half = 1 << (e - 1)
    if r > half or (r == half and q % 2):
        q += 1
    return s * (q << e)


@pytest.mark.parametrize("name,p", [("fp32", 24), ("bf16", 8), ("fp16", 11), ("fp64", 53)])
def test_integers_beyond_float64_round_once(name, p):
    """int64/uint64 arrays and tensors, lists and Python ints above 2**53 are not rounded to
    float64 first (that would round twice: 2**62 + 2**38 + 1 became 2**62 in fp32)."""
    vals = [2**62 + 2**38 + 1, -(2**62 + 2**54 + 1), 2**53 + 1, 2**62 + 2**39, 2**62 + 2**38,
            2**63 - 1]
    if name == "fp16":
        vals = [v for v in vals if abs(v) < 65504]        # all overflow fp16: checked below
    want = [float(_rne_int(v, p)) for v in vals]
    assert numfmt.round_to(np.array(vals, dtype=np.int64), name).tolist() == want
    assert numfmt.round_to(torch.tensor(vals, dtype=torch.int64), name).tolist() == want
    assert numfmt.round_to(vals, name).tolist() == want
    assert [numfmt.round_to(v, name) for v in vals] == want
    u = [2**63 + 2**39 + 1, 2**64 - 1]
    if name != "fp16":
        assert numfmt.round_to(np.array(u, dtype=np.uint64), name).tolist() == \
            [float(_rne_int(v, p)) for v in u]


def test_huge_python_ints_meet_the_overflow_rule():
    assert numfmt.round_to(2**1024, "int8") == 127
    assert numfmt.round_to(-(2**2000), "int8") == -128
    assert numfmt.round_to(2**1024, "bf16", overflow="saturate") == numfmt.get("bf16").max
    assert numfmt.round_to(2**1024 - 1, "fp64") == math.inf
    half_ulp_above_max = 2**1024 - 2**970                   # fp64 max + ulp/2: ties away to inf
    assert numfmt.round_to(half_ulp_above_max, "fp64") == math.inf
    assert numfmt.round_to(half_ulp_above_max - 1, "fp64") == numfmt.get("fp64").max
    assert math.isnan(numfmt.round_to(2**1100, "fp16", overflow="nan"))
    with pytest.raises(OverflowError, match="fp16"):
        numfmt.round_to(2**2000, "fp16", overflow="raise")
    assert numfmt.round_to([2**2000, 1.5], "fp16").tolist() == [math.inf, 1.5]


def test_long_double_rounds_once():
    x = np.longdouble(1) + np.longdouble(2) ** -24 + np.longdouble(2) ** -60
    if x == np.longdouble(1) + np.longdouble(2) ** -24:
        pytest.skip("long double is float64 on this platform")
    assert numfmt.round_to(np.array([x]), "fp32")[0] == 1 + 2**-23


def test_nan_has_no_value_in_formats_without_nan():
    for name in ("fp6_e3m2fn", "fp6_e2m3fn", "fp4_e2m1fn", "int8"):
        for x in (np.array([1.0, np.nan]), torch.tensor([1.0, float("nan")])):
            with pytest.raises(ValueError, match=f"index 1 has no {name} value"):
                numfmt.round_to(x, name)
    assert math.isnan(numfmt.round_to(float("nan"), "fp8_e4m3fn"))     # it has a NaN code


def test_tf32_fast_path_takes_parameters_and_other_devices():
    p = torch.nn.Parameter(torch.tensor([1.0, 1.0 + 2**-11, 3.0]))
    r = numfmt.round_to(p, "tf32")
    assert r.requires_grad and r.tolist() == [1.0, 1.0, 3.0]   # 1 + 2**-11 ties to even
    assert numfmt.round_to(torch.ones(4, device="meta"), "tf32").device.type == "meta"
    assert numfmt.round_to(torch.ones(3), "fp64").dtype == torch.float64


def test_neighbours_of_twos_complement_ends():
    from numfmt.exact import next_down, next_up
    for name in ("int8", "int16", "int32"):
        f = numfmt.get(name)
        lo, hi = int(f.lowest), int(f.max)
        assert next_down(lo + 1, f) == lo and next_down(lo, f) is None
        assert next_up(hi - 1, f) == hi and next_up(hi, f) is None and next_up(lo, f) == lo + 1


@pytest.mark.parametrize("name", ["tf32", "fp8_e4m3fn", "fp64", "bf16", "fp16", "fp4_e2m1fn",
                                  "int8"])
def test_round_to_has_a_straight_through_gradient_for_every_format(name):
    """QAT's straight-through estimator: d round_to(x) / dx == 1 everywhere (saturated values
    included), the forward values those of the detached call."""
    x = torch.tensor([0.3, -1.7, 2.5, 1e4], requires_grad=True)
    y = numfmt.round_to(x, name, overflow="saturate")
    assert y.requires_grad
    assert torch.equal(y.detach(), numfmt.round_to(x.detach(), name, overflow="saturate"))
    (y * torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=y.dtype)).sum().backward()
    assert x.grad.dtype == x.dtype and x.grad.tolist() == [1.0, 2.0, 3.0, 4.0]
    with torch.no_grad():
        assert not numfmt.round_to(x, name, overflow="saturate").requires_grad


def test_int64_format_saturates_and_raises_exactly():
    """2**63 - 1 is no float64: a float input saturating into int64 gives it exactly, in an
    int64 container; inputs that fit come back exact."""
    x = np.array([2.0**63, -2.0**64, 2.0**62 + 2048, -2.5, 2.0**63 - 1024])
    got = numfmt.round_to(x, "int64")
    assert got.dtype == np.int64
    assert got.tolist() == [2**63 - 1, -2**63, 2**62 + 2048, -2, 2**63 - 1024]
    t = numfmt.round_to(torch.tensor(x), "int64")
    assert t.dtype == torch.int64 and t.tolist() == got.tolist()
    with pytest.raises(numfmt.RangeOverflowError, match=r"index \(0,\)"):
        numfmt.round_to(x, "int64", overflow="raise")
    big = np.array([2**63 - 1, -2**63, 12345], dtype=np.int64)
    assert numfmt.round_to(big, "int64").tolist() == big.tolist()
    assert numfmt.round_to(2**63 + 5, "int64") == 2**63 - 1
    assert numfmt.round_to(np.array([-1.0, 5e9]), "uint32").tolist() == [0, 2**32 - 1]


def test_the_chunked_torch_path_names_the_global_first_overflow():
    """round_to runs big CPU tensors in chunks on several threads: the error still names the
    first offending element of the whole tensor and the count over all of it."""
    x = torch.zeros(300_000, dtype=torch.float64)
    x[123_456] = 1e6
    x[250_000] = -1e6
    with pytest.raises(numfmt.RangeOverflowError, match=r"index \(123456,\)") as err:
        numfmt.round_to(x, "fp8_e4m3fn", overflow="raise")
    assert err.value.count == 2 and err.value.total == 300_000
    y = numfmt.round_to(x.view(600, 500), "fp8_e4m3fn", overflow="saturate")
    assert y.shape == (600, 500) and float(y.flatten()[123_456]) == 448.0


def test_run_chunks_covers_every_element_once_and_reraises_the_first_error():
    from numfmt.threads import run_chunks
    hits = np.zeros(100_003, dtype=np.int64)

    def mark(lo, hi):
        hits[lo:hi] += 1

    run_chunks(mark, hits.size, chunk=1000, workers=3)
    assert (hits == 1).all()
    run_chunks(mark, 0)
    run_chunks(mark, 10, workers=1)

    def fail(lo, hi):
        if lo >= 5000:
            raise KeyError(lo)

    with pytest.raises(KeyError):
        run_chunks(fail, 100_000, chunk=1000, workers=2)
    with pytest.raises(ValueError, match="chunk"):
        run_chunks(mark, 10, chunk=0)


def test_tf32_threads_match_the_exact_path_with_nans_in_some_chunks():
    rng = np.random.default_rng(11)
    bits = rng.integers(0, 2**32, size=200_000, dtype=np.uint64).astype(np.uint32)
    bits[::7919] = 0x7F800001                      # NaNs whose payload sits in dropped bits
    x = torch.from_numpy(bits.view(np.float32).copy())
    fast = numfmt.round_to(x, "tf32").double().numpy()
    exact = numfmt.round_to(x.double().numpy(), "tf32")
    assert _same(fast, exact) and np.isnan(fast[::7919]).all()


@pytest.mark.filterwarnings("ignore:(invalid value|overflow) encountered in cast:RuntimeWarning")
@pytest.mark.parametrize("rule", ["default", "saturate", "nan", "inf", "raise"])
@pytest.mark.parametrize("name", ["fp8_e4m3fn", "fp8_e5m2", "fp8_e4m3fnuz", "fp8_e5m2fnuz",
                                  "fp16", "bf16"])
def test_native_cast_fast_path_with_every_overflow_rule_equals_the_exact_path(name, rule):
    """float32 tensors take torch's own cast (correct inside the range) with our overflow rule
    imposed after it: the same values as the exact numpy path, every code, midpoint and
    neighbour, the overflow boundary, inf and NaN."""
    f = numfmt.get(name)
    if (rule == "inf" and not f.has_inf) or (rule == "nan" and not f.has_nan):
        pytest.skip("a rule this format cannot follow")
    v = f.finite_values()
    mids = ((v[:-1] + v[1:]) / 2).astype(np.float32)
    lim = float(f.max) + float(numfmt.exact.quantum(f, f.max_exact)) / 2
    x = np.concatenate([v.astype(np.float32), mids, np.nextafter(mids, np.float32(np.inf)),
                        np.nextafter(mids, np.float32(-np.inf)),
                        np.array([lim, -lim, lim * 1.001, np.inf, -np.inf, np.nan], np.float32)])
    kw = {} if rule == "default" else {"overflow": rule}
    t = torch.from_numpy(x)
    if rule == "raise":
        with pytest.raises(numfmt.RangeOverflowError) as fast_err:
            numfmt.round_to(t, f, **kw)
        with pytest.raises(numfmt.RangeOverflowError) as exact_err:
            numfmt.round_to(x.astype(np.float64), f, **kw)
        assert fast_err.value.index == exact_err.value.index
        return
    got = numfmt.round_to(t, f, **kw).double().numpy()
    want = numfmt.round_to(x.astype(np.float64), f, **kw)
    assert _same(got, want)
