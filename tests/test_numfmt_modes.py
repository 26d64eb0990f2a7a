"""Every deterministic rounding mode against an enumeration reference, gfloat's RoundMode and
exact Fractions; numpy and torch paths bit for bit; IEEE overflow by direction."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import torch

import numfmt

MODES = numfmt.ROUNDING_MODES
SMALL = [f for f in numfmt.formats() if f.is_float and f.bits <= 16]


def _table(f):
    """Ascending finite values of f (one zero) and each one's code parity (the last bit of the
    code, which is what 'even' and 'odd' mean), from the decoded bit patterns."""
    codes = np.arange(2**f.bits)
    v = f.decode(codes)
    keep = np.isfinite(v) & ~((v == 0) & np.signbit(v))
    v, codes = v[keep], codes[keep]
    order = np.argsort(v, kind="stable")
    return v[order], (codes[order] % 2 == 1)


def _reference(f, x, mode):
    """The mode's choice between the two table neighbours of each in-range x (float64 exact:
    x and its neighbours are within a factor of two, or one of them is 0)."""
    v, odd = _table(f)
    i = np.clip(np.searchsorted(v, x, side="right") - 1, 0, v.size - 2)
    lo, hi = v[i], v[i + 1]
    odd_lo, odd_hi = odd[i], odd[i + 1]
    exact_lo, exact_hi = x == lo, x == hi
    dlo, dhi = x - lo, hi - x
    tie = dlo == dhi
    nearest = np.where(dlo < dhi, lo, hi)
    pick = {
        "down": lo, "up": hi,
        "toward_zero": np.where(x > 0, lo, hi),
        "nearest_even": np.where(tie, np.where(odd_lo, hi, lo), nearest),
        "nearest_away": np.where(tie, np.where(x > 0, hi, lo), nearest),
        "odd": np.where(odd_lo, lo, hi),
    }[mode]
    return np.where(exact_lo, lo, np.where(exact_hi, hi, pick))


def _inputs(f):
    v, _ = _table(f)
    mids = (v[:-1] + v[1:]) / 2
    x = np.concatenate([v, mids, np.nextafter(mids, np.inf), np.nextafter(mids, -np.inf)])
    return x[(x >= v[0]) & (x <= v[-1])]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("f", SMALL, ids=str)
def test_every_code_and_midpoint_against_enumeration_numpy_and_torch(f, mode):
    x = _inputs(f)
    want = _reference(f, x, mode)
    got = numfmt.round_to(x, f, rounding=mode)
    got_t = numfmt.round_to(torch.from_numpy(x), f, rounding=mode).double().numpy()
    assert np.array_equal(got, want) and np.array_equal(got_t, want)
    if not f.has_negative_zero:
        assert not np.signbit(got[got == 0]).any()


_GFLOAT_MODES = {"nearest_even": "TiesToEven", "nearest_away": "TiesToAway",
                 "toward_zero": "TowardZero", "up": "TowardPositive", "down": "TowardNegative"}


def _gfloat_format(f):
    from gfloat import Domain, Signedness
    from gfloat import formats as gf
    known = {"fp16": gf.format_info_binary16, "bf16": gf.format_info_bfloat16,
             "fp8_e4m3fn": gf.format_info_ocp_e4m3, "fp8_e5m2": gf.format_info_ocp_e5m2,
             "fp6_e3m2fn": gf.format_info_ocp_e3m2, "fp6_e2m3fn": gf.format_info_ocp_e2m3,
             "fp4_e2m1fn": gf.format_info_ocp_e2m1, "fp8_e8m0fnu": gf.format_info_ocp_e8m0}
    if f.name.startswith("p3109_"):
        return gf.format_info_p3109(f.bits, f.precision_bits,
                                    Signedness.Signed if f.signed else Signedness.Unsigned,
                                    Domain.Extended if f.has_inf else Domain.Finite)
    return known.get(f.name)


@pytest.mark.parametrize("mode", sorted(_GFLOAT_MODES))
@pytest.mark.parametrize("f", [f for f in SMALL if f.bits <= 8 and _gfloat_format(f)], ids=str)
def test_in_range_modes_against_gfloat(f, mode):
    import gfloat
    fi = _gfloat_format(f)
    rm = getattr(gfloat.RoundMode, _GFLOAT_MODES[mode])
    v, _ = _table(f)
    x = np.concatenate([v, (v[:-1] + v[1:]) / 2])     # codes and exact midpoints
    want = np.array([gfloat.round_float(fi, float(t), rm) for t in x])
    got = numfmt.round_to(x, f, rounding=mode)
    assert np.array_equal(got, want)


def test_gfloat_ties_away_misrounds_just_below_a_subnormal_tie():
    """gfloat 0.5's TiesToAway sends 2**-10 - 2**-63 (just below the tie between 0 and
    E4M3FN's 2**-9) to 2**-9; the exact answer is 0, which is what we return."""
    import gfloat
    from gfloat.formats import format_info_ocp_e4m3
    x = float(np.nextafter(2.0**-10, 0))
    assert numfmt.round_exact(Fraction(x), "e4m3fn", "nearest_away") == 0
    assert numfmt.round_to(x, "e4m3fn", rounding="nearest_away") == 0.0
    assert gfloat.round_float(format_info_ocp_e4m3, x, gfloat.RoundMode.TiesToAway) == 2.0**-9


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", ["fp16", "bf16", "fp8_e4m3fn", "fp8_e5m2", "tf32", "int8"])
def test_random_float64_bit_patterns_against_exact_fractions(name, mode):
    """Random float64 bit patterns (every binade, the finite ones) scaled into the format's
    range: the vectorised paths against round_exact's rational arithmetic, overflow by
    direction included."""
    f = numfmt.get(name)
    rng = np.random.default_rng(hash((name, mode)) % 2**32)
    bits = rng.integers(0, 2**63, size=3000, dtype=np.int64)
    x = bits.view(np.float64)
    x = x[np.isfinite(x)]
    _, e = np.frexp(x)
    lo_e = f.emin - f.mantissa_bits - 3 if f.is_float else -3
    hi_e = f.emax + 3 if f.is_float else f.bits + 2
    x = np.ldexp(np.frexp(x)[0], lo_e + (e % (hi_e - lo_e)))
    x = np.where(rng.random(x.size) < 0.5, -x, x)
    got = numfmt.round_to(x, f, rounding=mode, overflow="saturate")
    got_t = numfmt.round_to(torch.from_numpy(x), f, rounding=mode, overflow="saturate")
    want = [min(max(numfmt.round_exact(Fraction(float(t)), f, mode), f.lowest_exact),
                f.max_exact) for t in x]
    assert got.tolist() == [float(w) for w in want] == got_t.double().tolist()


@pytest.mark.parametrize("fmt,x,mode,want", [
    ("fp16", 1e6, "toward_zero", 65504.0), ("fp16", -1e6, "toward_zero", -65504.0),
    ("fp16", 1e6, "up", math.inf), ("fp16", -1e6, "up", -65504.0),
    ("fp16", 1e6, "down", 65504.0), ("fp16", -1e6, "down", -math.inf),
    ("fp16", 65504.5, "nearest_away", 65504.0), ("fp16", 65520.0, "nearest_away", math.inf),
    ("fp16", 1e6, "odd", 65504.0), ("fp8_e4m3fn", 449.0, "up", math.nan),
    ("fp8_e4m3fn", 1e4, "toward_zero", 448.0), ("int8", 200.7, "toward_zero", 127),
    ("int8", -200.7, "up", -128), ("uint4", -3.0, "up", 0), ("fp8_e8m0fnu", 0.0, "up", 2.0**-127),
])
def test_overflow_follows_ieee_by_direction(fmt, x, mode, want):
    got = numfmt.round_to(x, fmt, rounding=mode)
    assert (math.isnan(got) and math.isnan(want)) or got == want
    if not (math.isinf(want) or math.isnan(want)):  # the mode's own answer: no overflow
        assert numfmt.round_to(x, fmt, rounding=mode, overflow="raise") == want


def test_raise_only_where_the_mode_rounds_past_the_range():
    with pytest.raises(numfmt.RangeOverflowError):
        numfmt.round_to(np.array([1e6]), "fp16", rounding="up", overflow="raise")
    with pytest.raises(numfmt.RangeOverflowError):
        numfmt.round_to(np.array([-1e6]), "fp16", rounding="down", overflow="raise")
    assert numfmt.round_to(np.array([-1e6]), "fp16", rounding="up", overflow="raise")[0] \
        == -65504.0


def test_integer_formats_and_exact_inputs_in_every_mode():
    x = [2.5, -2.5, -3.5, 2.0, 0.4, -0.4]
    want = {"nearest_even": [2, -2, -4, 2, 0, 0], "nearest_away": [3, -3, -4, 2, 0, 0],
            "toward_zero": [2, -2, -3, 2, 0, 0], "up": [3, -2, -3, 2, 1, 0],
            "down": [2, -3, -4, 2, 0, -1], "odd": [3, -3, -3, 2, 1, -1]}
    for mode, w in want.items():
        assert numfmt.round_to(np.array(x), "int8", rounding=mode).tolist() == w, mode
        assert [numfmt.round_to(v, "int8", rounding=mode) for v in x] == w, mode
    # Python ints and Fractions round once, exactly
    assert numfmt.round_to(2**60 + 2**36 + 1, "fp32", rounding="up") == 2**60 + 2**37
    assert numfmt.round_to(Fraction(1, 3), "fp16", rounding="down") == 1365 / 4096
    assert numfmt.round_to(Fraction(1, 3), "fp16", rounding="up") == 1366 / 4096
    big = np.array([2**62 + 1], dtype=np.int64)
    assert numfmt.round_to(big, "fp32", rounding="toward_zero")[0] == 2.0**62
    assert numfmt.round_to(big, "fp32", rounding="up")[0] == 2.0**62 + 2.0**39


def test_unknown_mode_is_refused_with_the_list():
    with pytest.raises(ValueError, match="rounding must be one of"):
        numfmt.round_to(1.0, "fp16", rounding="banker")
    assert numfmt.round_to(1.0 + 2**-11, "fp16", rounding="ceil") == 1.0 + 2**-10


@pytest.mark.parametrize("mode", MODES + ("stochastic",))
@pytest.mark.parametrize("name", ["bf16", "tf32"])
def test_float32_bit_path_equals_the_float64_path_on_random_bit_patterns(name, mode):
    """float32 tensors into bf16/TF32 take integer bit arithmetic (numfmt.bits32) in every
    mode: the same bits as the exact float64 numpy path, NaN, inf, -0 and overflow included."""
    g = torch.Generator().manual_seed(len(mode))
    bits = torch.randint(-2**31, 2**31 - 1, (200_000,), generator=g, dtype=torch.int32)
    bits[:6] = torch.tensor([0x7F7FFFFF, -0x00800001, 0x7F800000, 0, -2**31, 0x7FC00001],
                            dtype=torch.int32)                 # max, -max, inf, 0, -0, NaN
    x = bits.view(torch.float32)
    kw = {"seed": 11} if mode == "stochastic" else {}
    fast = numfmt.round_to(x, name, rounding=mode, **kw)
    assert fast.dtype == torch.float32
    ref = numfmt.round_to(x.double().numpy(), name, rounding=mode, **kw)
    f64 = fast.double().numpy()
    assert np.array_equal(f64, ref, equal_nan=True)
    real = ~np.isnan(ref)
    assert np.array_equal(np.signbit(f64[real]), np.signbit(ref[real]))


@pytest.mark.parametrize("mode", MODES + ("stochastic",))
@pytest.mark.parametrize("name", ["fp16", "fp8_e4m3fn", "fp8_e5m2fnuz", "fp8_e3m4", "fp4_e2m1fn",
                                  "p3109_k8p3se", "fp6_e2m3fn"])
def test_float32_grid_path_equals_the_float64_path(name, mode):
    """float32 tensors into the narrower formats are rounded in float32 arithmetic (exact
    power-of-two scalings): the same bits as the float64 numpy path, for every mode and the
    saturating rule, on random float32 bit patterns scaled around the format's range."""
    f = numfmt.get(name)
    g = torch.Generator().manual_seed(len(mode) + f.bits)
    m = torch.rand(100_000, generator=g, dtype=torch.float64) + 1
    e = torch.randint(f.emin - f.mantissa_bits - 3, f.emax + 3, (100_000,), generator=g)
    x = torch.ldexp(m, e).float() * torch.where(torch.rand(100_000, generator=g) < 0.5, -1, 1)
    x[:4] = torch.tensor([np.inf, -np.inf, 0.0, -0.0])
    if f.has_nan:
        x[4] = np.nan
    kw = {"seed": 3} if mode == "stochastic" else {}
    for rule in (None, "saturate"):
        got = numfmt.round_to(x, f, rounding=mode, overflow=rule, **kw)
        assert got.dtype == torch.float32
        want = numfmt.round_to(x.double().numpy(), f, rounding=mode, overflow=rule, **kw)
        g64 = got.double().numpy()
        assert np.array_equal(g64, want, equal_nan=True), rule
        real = ~np.isnan(want)
        assert np.array_equal(np.signbit(g64[real]), np.signbit(want[real]))
