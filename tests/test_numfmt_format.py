"""Derived limits against torch/numpy/ml_dtypes finfo and against enumeration of every code."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
import torch

import numfmt
from tests.reference import values_from_dtype

FLOATS = [f for f in numfmt.formats() if f.is_float]
SMALL = [f for f in FLOATS if f.bits <= 19]


def test_registry_has_required_formats_in_stable_order():
    names = numfmt.names()
    for required in ("fp64", "fp32", "tf32", "bf16", "fp16", "int8", "uint8", "fp8_e4m3fn",
                     "fp8_e5m2"):
        assert required in names
    assert names == tuple(f.name for f in numfmt.formats())
    assert len(set(names)) == len(names)


@pytest.mark.parametrize("spec,name", [
    ("fp16", "fp16"), ("float16", "fp16"), ("HALF", "fp16"), ("bf16", "bf16"),
    ("bfloat16", "bf16"), ("tf32", "tf32"), ("fp32", "fp32"), ("float", "fp64"), (float, "fp64"),
    ("fp64", "fp64"), ("double", "fp64"), ("int8", "int8"), ("e4m3fn", "fp8_e4m3fn"),
    ("torch.float16", "fp16"), (torch.bfloat16, "bf16"), (torch.float32, "fp32"),
    (torch.int8, "int8"), (torch.float8_e5m2, "fp8_e5m2"), (np.float16, "fp16"),
    (np.dtype("float64"), "fp64"), (ml_dtypes.bfloat16, "bf16"),
    (np.dtype(ml_dtypes.float8_e4m3fn), "fp8_e4m3fn"), (np.uint8, "uint8"),
])
def test_get_accepts_names_aliases_and_dtypes(spec, name):
    assert numfmt.get(spec).name == name


@pytest.mark.parametrize("spec", ["fp12", "", "float128", None, 3, torch.complex64,
                                  np.dtype("complex64"), object()])
def test_get_rejects_unknown_with_the_list_of_names(spec):
    with pytest.raises(ValueError, match="known formats: fp64, fp32, tf32"):
        numfmt.get(spec)


def test_format_is_frozen():
    with pytest.raises(AttributeError):
        numfmt.get("fp16").mantissa_bits = 3  # type: ignore[misc]


def _finfo(f):
    if f.torch_dtype is not None and f.torch_dtype.is_floating_point:
        yield "torch", torch.finfo(f.torch_dtype)
    if f.numpy_dtype is not None:
        lib = ml_dtypes if f.numpy_dtype_name.startswith("ml_dtypes") else np
        yield lib.__name__, lib.finfo(f.numpy_dtype)


@pytest.mark.parametrize("f", [f for f in FLOATS if f.torch_dtype or f.numpy_dtype], ids=str)
def test_float_limits_match_library_finfo(f):
    seen = 0
    for lib, fi in _finfo(f):
        seen += 1
        assert f.bits == fi.bits, lib
        assert f.max == float(fi.max), lib
        assert f.lowest == float(fi.min), lib
        assert f.tiny == float(fi.smallest_normal), lib
        if not (lib == "torch" and f.name == "fp8_e5m2fnuz"):
            assert f.eps == float(fi.eps), lib
        else:   # torch.finfo says 0.125 (a bug): 2 fraction bits, the value above 1 is 1.25
            v = f.finite_values()
            assert float(fi.eps) == 0.125 and f.eps == v[v > 1].min() - 1 == 0.25
        if hasattr(fi, "smallest_subnormal"):  # torch.finfo has none
            assert f.smallest_subnormal == float(fi.smallest_subnormal), lib
        if lib == "numpy":
            assert f.resolution_digits == fi.precision
    assert seen >= 1


@pytest.mark.parametrize("name", [f.name for f in numfmt.formats() if not f.is_float])
def test_int_limits_match_iinfo(name):
    f = numfmt.get(name)
    infos = [ml_dtypes.iinfo(f.numpy_dtype)] if f.numpy_dtype_name.startswith("ml_dtypes") \
        else [np.iinfo(f.numpy_dtype)]
    if f.torch_dtype is not None:
        infos.append(torch.iinfo(f.torch_dtype))
        assert numfmt.get(f.torch_dtype) is f
    for info in infos:
        assert (f.lowest, f.max, f.bits) == (info.min, info.max, info.bits)
    assert not f.has_inf and not f.has_nan          # integers saturate or raise instead
    assert numfmt.get(np.dtype(f.numpy_dtype)) is f


def test_an_integer_format_with_infinity_is_refused():
    with pytest.raises(ValueError, match="no infinity or NaN"):
        numfmt.Format("int4", "int", 4)


@pytest.mark.parametrize("f", SMALL, ids=str)
def test_derived_limits_match_enumeration_of_every_code(f):
    v = f.finite_values()
    pos = v[v > 0]
    assert v.max() == f.max and v.min() == f.lowest
    assert pos.min() == f.smallest_subnormal
    codes = np.arange(2**f.bits)
    exp_field = (codes >> f.mantissa_bits) & (2**f.exponent_bits - 1)
    normal = f.decode(codes[(exp_field > 0) | (not f.has_zero)])
    assert np.nanmin(np.abs(normal[np.isfinite(normal)])) == f.tiny
    one = np.searchsorted(v, 1.0)
    assert v[one] == 1.0 and v[one + 1] - 1.0 == f.eps
    inf_codes = np.isinf(f.decode(codes)).sum()
    nan_codes = np.isnan(f.decode(codes)).sum()
    assert inf_codes == (0 if not f.has_inf else 2 if f.signed else 1)
    assert (nan_codes > 0) == f.has_nan


# NaN and inf codes are cast on purpose: numpy's cast warnings are expected here
@pytest.mark.filterwarnings("ignore:(invalid value|overflow) encountered in cast:RuntimeWarning")
@pytest.mark.parametrize("f", [f for f in FLOATS if f.bits in (8, 16) and f.numpy_dtype],
                         ids=str)
def test_decode_matches_the_library_bit_for_bit(f):
    raw = np.arange(2**f.bits, dtype=np.uint16 if f.bits == 16 else np.uint8)
    theirs = raw.view(f.numpy_dtype).astype(np.float64)
    ours = f.decode(raw)
    same = (ours == theirs) | (np.isnan(ours) & np.isnan(theirs))
    assert same.all()
    assert np.array_equal(np.signbit(ours[~np.isnan(ours)]), np.signbit(theirs[~np.isnan(theirs)]))
    np.testing.assert_array_equal(f.finite_values(), values_from_dtype(f.numpy_dtype, f.bits))


def test_tf32_is_fp32_range_with_fp16_precision():
    tf32, fp32, fp16 = (numfmt.get(n) for n in ("tf32", "fp32", "fp16"))
    assert tf32.tiny == fp32.tiny and tf32.eps == fp16.eps
    assert tf32.max == (2 - 2.0**-10) * 2.0**127
    assert tf32.finite_values().size == 2**19 - 2 * 2**10 - 1  # minus inf/NaN codes and -0


def test_dynamic_range_db():
    f = numfmt.get("fp16")
    assert f.dynamic_range_db == pytest.approx(20 * np.log10(65504 / 2.0**-24))
    assert numfmt.get("int8").dynamic_range_db == pytest.approx(20 * np.log10(127))


@pytest.mark.parametrize("spec", ["i8", "u8", "f16"])
def test_numpy_type_codes_are_not_read_as_other_formats(spec):
    """numpy reads 'i8' as int64, 'u8' as uint64 and 'f16' as float128: refuse, never guess."""
    with pytest.raises(ValueError, match="unknown number format"):
        numfmt.get(spec)


@pytest.mark.parametrize("args,match", [
    (("x", "float", 4, 5, -2), "mantissa_bits must be a non-negative int"),
    (("x", "float", 4, 0, 3), "needs exponent_bits >= 1"),
    (("x", "int", 0), "needs bits >= 2"),
    (("x", "float", 8, 4.0, 3), "exponent_bits must be a non-negative int"),
    (("x", "float", 8, 4, 4), "bits must be 1 \\+ exponent_bits"),
])
def test_format_refuses_parameters_that_define_no_format(args, match):
    kw = {"has_inf": False, "nan": "none"} if args[1] == "int" else {}
    with pytest.raises(ValueError, match=match):
        numfmt.Format(*args, **kw)
    with pytest.raises(ValueError, match="needs bits >= 1"):
        numfmt.Format("u0", "int", 0, has_inf=False, nan="none", signed=False)


def _numpy_like_finfo(f):
    if f.numpy_dtype is None:
        return None
    lib = ml_dtypes if f.numpy_dtype_name.startswith("ml_dtypes") else np
    return lib.finfo(f.numpy_dtype)


@pytest.mark.parametrize("f", [f for f in FLOATS if f.numpy_dtype is not None], ids=str)
def test_numpy_names_match_numpy_and_ml_dtypes_finfo(f):
    fi = _numpy_like_finfo(f)
    assert f.min == float(fi.min) and f.nmant == fi.nmant and f.nexp == fi.nexp
    assert f.epsneg == float(fi.epsneg)
    if f.numpy_dtype_name in ("float16", "float32", "float64", "ml_dtypes.bfloat16"):
        # numpy's formula; ml_dtypes types its FP8 precision in by hand (1 for E4M3FN)
        assert f.precision == fi.precision
        assert f.resolution == pytest.approx(float(fi.resolution), rel=1e-3)
    assert f.dtype == np.dtype(f.numpy_dtype) and f.dtype == fi.dtype
    assert numfmt.get("tf32").dtype is None


@pytest.mark.parametrize("f", [f for f in numfmt.formats() if not f.is_float], ids=str)
def test_integer_limits_are_python_ints_matching_iinfo(f):
    info = (ml_dtypes if f.numpy_dtype_name.startswith("ml_dtypes") else np).iinfo(f.numpy_dtype)
    for got, want in ((f.max, info.max), (f.lowest, info.min), (f.min, info.min)):
        assert type(got) is int and got == int(want)
    b = numfmt.exp_bounds(f)
    assert all(type(v) is int for v in (b.max_arg, b.min_arg, b.min_normal_arg))
    if f.torch_dtype is not None:
        ti = torch.iinfo(f.torch_dtype)
        assert (f.lowest, f.max) == (ti.min, ti.max)


def test_int64_and_uint32_are_in_the_one_table():
    assert numfmt.get(torch.int64).name == "int64" and numfmt.get(np.uint32).name == "uint32"
    assert numfmt.get("long").max == 2**63 - 1


def test_range_in_decibels_from_the_exact_ratio_fp64_included():
    import mpmath
    for f in numfmt.formats():
        with mpmath.workdps(30):
            ratio = mpmath.mpf(f.max_exact.numerator) / f.max_exact.denominator
            want = 20 * mpmath.log10(ratio / (mpmath.mpf(f.smallest_subnormal_exact.numerator)
                                              / f.smallest_subnormal_exact.denominator))
            want_n = 20 * mpmath.log10(ratio / (mpmath.mpf(f.tiny_exact.numerator)
                                                / f.tiny_exact.denominator))
        assert f.dynamic_range_db == pytest.approx(float(want), rel=1e-12)
        assert f.normal_range_db == pytest.approx(float(want_n), rel=1e-12)
    assert round(numfmt.get("fp64").dynamic_range_db, 2) == 12631.22
    assert round(numfmt.get("fp64").normal_range_db, 2) == 12318.15


@pytest.mark.parametrize("bad", [torch.tensor(1.0), np.array([1.0]), np.float32(1.0)])
def test_get_of_values_says_pass_the_dtype(bad):
    with pytest.raises(TypeError, match=r"pass its \.dtype"):
        numfmt.get(bad)


def test_neighbours_rounding_and_overflow_rule_take_names_and_dtypes():
    from fractions import Fraction
    assert numfmt.next_up(1, "fp16") == 1 + Fraction(1, 1024)
    assert numfmt.next_down(1, torch.bfloat16) == 1 - Fraction(1, 256)
    assert numfmt.round_exact(Fraction(1, 3), np.float16) == Fraction(1365, 4096)
    assert numfmt.default_overflow("e4m3fn") == "nan" and numfmt.default_overflow(torch.int8) \
        == "saturate"
    with pytest.raises(ValueError, match="unknown number format"):
        numfmt.next_up(1, "fp12")


def test_the_2026_formats_are_in_the_one_table_and_get_takes_their_dtypes():
    for name in ("fp8_e8m0fnu", "fp8_e4m3fnuz", "fp8_e5m2fnuz", "fp8_e4m3", "fp8_e3m4", "int4",
                 "uint4", "int2", "uint2", "int64", "p3109_k8p3se", "p3109_k8p4se"):
        assert name in numfmt.names()
    for dtype, name in ((torch.float8_e8m0fnu, "fp8_e8m0fnu"),
                        (torch.float8_e4m3fnuz, "fp8_e4m3fnuz"),
                        (torch.float8_e5m2fnuz, "fp8_e5m2fnuz"),
                        (ml_dtypes.float8_e4m3, "fp8_e4m3"), (ml_dtypes.float8_e3m4, "fp8_e3m4"),
                        (ml_dtypes.int4, "int4"), (ml_dtypes.uint2, "uint2")):
        assert numfmt.get(dtype).name == name
    e8m0 = numfmt.get("e8m0")
    assert (e8m0.lowest, e8m0.max) == (2.0**-127, 2.0**127) and not e8m0.signed
    assert numfmt.get("e4m3fnuz").max == 240 and numfmt.get("e5m2fnuz").max == 57344


def _gfloat_values(fi, k):
    import gfloat
    return np.array([gfloat.decode_float(fi, c).fval for c in range(2**k)])


@pytest.mark.parametrize("k", [3, 4, 6, 8])
def test_p3109_every_code_matches_gfloat(k):
    from gfloat import Domain, Signedness
    from gfloat.formats import format_info_p3109
    for signed in (True, False):
        for domain in ("extended", "finite"):
            for p in range(1, k if signed else k + 1):
                f = numfmt.p3109(k, p, signed=signed, domain=domain)
                fi = format_info_p3109(k, p, Signedness.Signed if signed else Signedness.Unsigned,
                                       Domain.Extended if domain == "extended" else Domain.Finite)
                theirs = _gfloat_values(fi, k)
                assert np.array_equal(f.decode(np.arange(2**k)), theirs, equal_nan=True), f.name
                fin = theirs[np.isfinite(theirs)]
                pos = fin[fin > 0]
                assert (f.max, f.lowest, f.smallest_subnormal) == (fin.max(), fin.min(),
                                                                   pos.min()), f.name
                assert numfmt.get(f.name) == f and f.has_inf == (domain == "extended")


@pytest.mark.parametrize("args,match", [((8, 8), "1 <= p <= 7"), ((1, 1), "k >= 2"),
                                        ((8, 0), "1 <= p"), ((8, 3.0), "must be an int")])
def test_p3109_refuses_parameters_outside_the_family(args, match):
    with pytest.raises(ValueError, match=match):
        numfmt.p3109(*args)
    with pytest.raises(ValueError, match="domain"):
        numfmt.p3109(8, 3, domain="saturating")
    assert numfmt.p3109(8, 8, signed=False).exponent_bits == 1


@pytest.mark.parametrize("layout,match", [
    ({"nan": "ieee", "has_inf": False}, "IEEE NaN encoding has infinities"),
    ({"nan": "none", "has_inf": True}, "needs a NaN encoding"),
    ({"nan": "negative_zero", "has_inf": False, "signed": False}, "needs a sign bit"),
    ({"nan": "max_code", "has_inf": False, "has_zero": False}, "has no subnormals"),
])
def test_format_refuses_inconsistent_special_value_layouts(layout, match):
    bits = 7 if layout.get("signed") is False else 8
    with pytest.raises(ValueError, match=match):
        numfmt.Format("x", "float", bits, 4, 3, **layout)
