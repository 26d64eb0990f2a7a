"""numfmt.blocks / numfmt.block_codec against an exact Fraction reference written here.

The reference is independent of the module: element grids come from ml_dtypes' bit patterns
(MXINT8: the integers k / 64), scale exponents from integer bit lengths, every rounding is a
nearest search over the grid with Fractions, ties to the even code.
"""

from __future__ import annotations

import math
from fractions import Fraction

import ml_dtypes
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import numfmt
import numfmt.block_checks
from numfmt.block_codec import block_decode, block_encode, block_round
from numfmt.block_strategies import block_arrays, edge_blocks
from numfmt.blocks import block_format_names, block_formats, get_block_format

MX = ["mxfp8_e4m3", "mxfp8_e5m2", "mxfp6_e3m2", "mxfp6_e2m3", "mxfp4_e2m1", "mxint8"]
ML = {"fp8_e4m3fn": ("float8_e4m3fn", 8), "fp8_e5m2": ("float8_e5m2", 8),
      "fp6_e3m2fn": ("float6_e3m2fn", 6), "fp6_e2m3fn": ("float6_e2m3fn", 6),
      "fp4_e2m1fn": ("float4_e2m1fn", 4)}


# ---- the independent reference ---------------------------------------------------------------
def grid(element: str) -> list[Fraction]:
    """Non-negative finite element values in magnitude-code order (index parity = code parity)."""
    if element == "int8":
        return [Fraction(k, 64) for k in range(128)]
    name, bits = ML[element]
    v = np.arange(2 ** (bits - 1), dtype=np.uint8).view(getattr(ml_dtypes, name))
    return [Fraction(float(a)) for a in v.astype(np.float64) if math.isfinite(a)]


def nearest_even(q: Fraction, g: list[Fraction]) -> Fraction:
    """|q| rounded to the grid g (ties to the even index, saturating), with q's sign."""
    a = abs(q)
    best = min(range(len(g)), key=lambda i: (abs(a - g[i]), i % 2))
    return g[best] if q >= 0 else -g[best]


def flog2(q: Fraction) -> int:
    e = q.numerator.bit_length() - q.denominator.bit_length()
    while Fraction(2) ** e > q:
        e -= 1
    while Fraction(2) ** (e + 1) <= q:
        e += 1
    return e


def ref_exponent(amax: Fraction, rule: str, g: list[Fraction], m: int) -> int:
    top = g[-1]
    emax = flog2(top)
    if amax == 0:
        return -127
    f = flog2(amax)
    if rule == "floor":
        return f - emax
    if rule == "ceil":
        return f - emax + (Fraction(2) ** f != amax)
    if rule == "even":                         # round amax to m + 1 bits, ties away, then floor
        q = Fraction(2) ** (f - m)
        r = math.floor(amax / q + Fraction(1, 2)) * q
        return flog2(r) - emax
    e = -1200                                  # rceil: smallest e with amax <= top * 2**e
    while amax > top * Fraction(2) ** e:
        e += 1
    return e


def round_float(q: Fraction, p: int, emin: int) -> Fraction:
    """q rounded to nearest even onto a p-bit binary float grid with subnormals below 2**emin."""
    if q == 0:
        return Fraction(0)
    e = max(flog2(abs(q)), emin)
    quantum = Fraction(2) ** (e - p + 1)
    n = q / quantum
    k = math.floor(n)
    if n - k > Fraction(1, 2) or (n - k == Fraction(1, 2) and k % 2):
        k += 1
    return k * quantum


def ref_mx_block(vals: list[float], name: str, rule: str) -> list[float]:
    fmt = get_block_format(name)
    g = grid(fmt.element)
    if any(not math.isfinite(v) for v in vals):
        return [math.nan] * len(vals)
    qs = [Fraction(v) for v in vals]
    e = ref_exponent(max(abs(q) for q in qs), rule, g, fmt.element_mantissa_bits)
    if e > 127:
        return [math.nan] * len(vals)
    x = Fraction(2) ** max(e, -127)
    out = [nearest_even(q / x, g) * x for q in qs]
    if fmt.element == "int8":                     # two's complement: no -0
        return [float(o) for o in out]
    return [math.copysign(float(o), v) if o == 0 else float(o) for o, v in zip(out, vals)]


def ref_nvfp4(vals: list[float], with_tensor_scale: bool, block: int = 16) -> list[float]:
    g = grid("fp4_e2m1fn")
    finite = [abs(Fraction(v)) for v in vals if math.isfinite(v)]
    big = max(finite, default=Fraction(0))
    s_t = Fraction(1)
    if with_tensor_scale and big > 0:
        s_t = max(round_float(big / (448 * 6), 24, -126), Fraction(2) ** -149)
        s_t = min(s_t, (2 - Fraction(2) ** -23) * Fraction(2) ** 127)     # FP32 saturates
    out = []
    for i in range(0, len(vals), block):
        b = vals[i:i + block]
        if any(not math.isfinite(v) for v in b):
            out += [math.nan] * len(b)
            continue
        qs = [Fraction(v) for v in b]
        s_b = min(round_float(max(abs(q) for q in qs) / 6 / s_t, 4, -6), Fraction(448))
        d = s_b * s_t
        for q, v in zip(qs, b):
            o = nearest_even(q / d, g) * d if d else Fraction(0)
            out.append(math.copysign(0.0, v) if o == 0 else float(o))
    return out


def same(a, b) -> bool:
    """Equal as float64 bit patterns up to NaN payloads (-0 and +0 differ)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return bool(np.all((a == b) & (np.signbit(a) == np.signbit(b)) | (np.isnan(a) & np.isnan(b))))


def check_mx(vals: list[float], name: str, rule: str, dtype=torch.float64) -> None:
    x = torch.tensor(vals, dtype=dtype)
    got = block_round(x, name, rule=rule)
    bs = get_block_format(name).block_size
    xs = x.double().tolist()
    want = sum((ref_mx_block(xs[i:i + bs], name, rule) for i in range(0, len(xs), bs)), [])
    assert same(got, want), (name, rule, [(v, g, w) for v, g, w in zip(xs, got.tolist(), want)
                                          if not same(g, w)][:5])


# ---- definitions -------------------------------------------------------------------------------
def test_table_parameters_from_their_sources():
    f = {b.name: b for b in block_formats()}
    assert block_format_names() == tuple(f)
    assert set(f) == set(MX) | {"nvfp4", "nvfp4_no_tensor_scale"}
    for n in MX:
        assert f[n].block_size == 32 and f[n].rule == "floor" and f[n].scale == "fp8_e8m0fnu"
    # emax_elem as torchao's constants (F8E4M3_MAX_POW2 = 8, ...) and the spec
    assert [f[n].element_emax for n in MX] == [8, 15, 4, 2, 2, 0]
    assert f["mxint8"].element_max_exact == Fraction(127, 64)
    assert f["mxint8"].element_min_exact == Fraction(1, 64)
    assert f["nvfp4"].block_size == 16 and f["nvfp4"].tensor_scale == "fp32"
    assert f["nvfp4_no_tensor_scale"].tensor_scale is None
    assert [f[n].bits_per_element for n in MX] == [8.25, 8.25, 6.25, 6.25, 4.25, 8.25]
    assert f["nvfp4"].bits_per_element == 4.5
    # whole-format range: element max * 2**127 over element min * 2**-127
    fp4 = f["mxfp4_e2m1"]
    assert fp4.max_exact == 6 * Fraction(2) ** 127 and fp4.smallest_exact == Fraction(2) ** -128
    assert math.isclose(fp4.dynamic_range_db, 20 * math.log10(6 * 2.0 ** 255))
    assert math.isclose(f["nvfp4"].block_dynamic_range_db, 20 * math.log10(12))


def test_get_block_format_errors():
    assert get_block_format(" MXFP4_E2M1 ") is get_block_format("mxfp4_e2m1")
    with pytest.raises(ValueError, match="unknown block format 'mxfp5'.*mxfp8_e4m3"):
        get_block_format("mxfp5")
    with pytest.raises(TypeError):
        get_block_format(32)
    with pytest.raises(ValueError, match="rule"):
        numfmt.blocks.BlockFormat("x", "fp8_e4m3fn", "fp8_e8m0fnu", 32, "nvfp4")
    with pytest.raises(ValueError, match="block_size"):
        numfmt.blocks.BlockFormat("x", "fp8_e4m3fn", "fp8_e8m0fnu", 0, "floor")


# ---- exhaustive: every element code at scale edges --------------------------------------------
@pytest.mark.parametrize("name", MX)
@pytest.mark.parametrize("e", [-127, -126, -60, -1, 0, 1, 60, 127])
def test_every_element_value_round_trips_at_scale(name, e):
    """A block led by max_elem * 2**e gets scale 2**e under floor, so every value v * 2**e of
    the element format (both signs) must come back unchanged, with its code."""
    fmt = get_block_format(name)
    g = grid(fmt.element)
    top = float(g[-1])
    vals = [math.ldexp(float(v), e) * s for v in g for s in (1, -1)]
    rows = [[math.ldexp(top, e)] + vals[i:i + 31] for i in range(0, len(vals), 31)]
    rows[-1] += [0.0] * (32 - len(rows[-1]))
    x = torch.tensor(rows, dtype=torch.float64)
    enc = block_encode(x, name)
    assert (enc.scale_codes.long() == e + 127).all()
    assert same(block_decode(enc), x + 0.0 if name == "mxint8" else x)   # int8 has no -0


@pytest.mark.parametrize("name", MX)
@pytest.mark.parametrize("rule", ["floor", "ceil", "even", "rceil"])
def test_midpoints_and_neighbours_against_reference(name, rule):
    """Every midpoint between element neighbours, and the float64 numbers beside it, at two
    scales: the one rounding per element, ties to even, saturation past the top."""
    g = grid(get_block_format(name).element)
    mids = [(a + b) / 2 for a, b in zip(g, g[1:])] + [g[-1] + (g[-1] - g[-2]) / 2, g[-1] * 2]
    vals = []
    for m in mids:
        f = float(m)
        vals += [f, math.nextafter(f, 0), math.nextafter(f, math.inf), -f]
    for e in (0, -127):
        check_mx([math.ldexp(v, e) for v in vals], name, rule)


# ---- hypothesis blocks ------------------------------------------------------------------------
@settings(max_examples=150, deadline=None)
@given(st.sampled_from(MX), st.sampled_from(["floor", "ceil", "even", "rceil"]),
       st.lists(edge_blocks(), min_size=1, max_size=3))
def test_float64_blocks_against_reference(name, rule, blocks):
    check_mx(sum(blocks, []), name, rule)


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(MX), st.sampled_from(["floor", "ceil", "even", "rceil"]),
       edge_blocks(exp_lo=-149, exp_hi=127))
def test_float32_blocks_against_reference(name, rule, block):
    vals = np.array(block, dtype=np.float32).tolist()      # the float32 numbers themselves
    check_mx(vals, name, rule, dtype=torch.float32)


@settings(max_examples=120, deadline=None)
@given(st.booleans(), st.lists(edge_blocks(size=16, exp_lo=-160, exp_hi=140), min_size=1,
                               max_size=3))
def test_nvfp4_against_reference(with_scale, blocks):
    vals = sum(blocks, [])
    name = "nvfp4" if with_scale else "nvfp4_no_tensor_scale"
    got = block_round(torch.tensor(vals, dtype=torch.float64), name)
    assert same(got, ref_nvfp4(vals, with_scale))


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(["mxfp4_e2m1", "nvfp4"]), st.sampled_from(["float32", "float16"]),
       st.data())
def test_block_arrays_are_dtype_numbers_with_partial_blocks(name, dtype, data):
    a = data.draw(block_arrays(name, dtype=dtype))
    bs = get_block_format(name).block_size
    assert a.dtype == np.dtype(dtype) and 1 <= len(a) <= 3 * bs
    finite = a[np.isfinite(a)]
    assert (np.abs(finite) <= np.finfo(dtype).max).all()


def test_edge_blocks_reach_every_kind():
    seen = set()

    @settings(max_examples=300, deadline=None)
    @given(edge_blocks(size=8, exp_lo=-1074, exp_hi=-1070))
    def draw(block):
        finite = [abs(v) for v in block if math.isfinite(v)]
        if len(finite) < len(block):
            seen.add("special")
        m = max(finite)
        e = math.frexp(m)[1] - 1
        seen.add("power" if m == math.ldexp(1.0, e) else "other")
        if m < 2.0 ** -1022:
            seen.add("subnormal")

    draw()
    assert seen == {"special", "power", "other", "subnormal"}


def directed(q: Fraction, g: list[Fraction], mode: str) -> Fraction:
    """q rounded onto the signed grid +-g in a directed / odd / away mode, saturating at +-max."""
    top = g[-1]
    if q > top or q < -top:
        return top if q > 0 else -top
    signed = sorted(set(g) | {-v for v in g})
    lo = max(v for v in signed if v <= q)
    hi = min(v for v in signed if v >= q)
    if lo == hi:
        return lo
    odd = {v: g.index(abs(v)) % 2 == 1 for v in (lo, hi)}
    return {"toward_zero": lo if q > 0 else hi, "up": hi, "down": lo,
            "nearest_away": (lo if q - lo < hi - q else hi if hi - q < q - lo
                             else (hi if q > 0 else lo)),
            "odd": lo if odd[lo] else hi}[mode]


@pytest.mark.skipif(not numfmt.block_checks.ROUNDING_PASSED,
                    reason="numfmt.round_to has no rounding= in this tree")
@pytest.mark.parametrize("mode", ["toward_zero", "up", "down", "nearest_away", "odd"])
@pytest.mark.parametrize("name", ["mxfp8_e4m3", "mxfp6_e2m3", "mxfp4_e2m1"])
def test_element_rounding_modes_against_reference(name, mode):
    fmt = get_block_format(name)
    g = grid(fmt.element)
    mids = [(a + b) / 2 for a, b in zip(g, g[1:])]
    vals = [float(g[-1])] + [float(m) * s for m in mids for s in (1, -1)]
    vals += [math.nextafter(float(m), 0) for m in mids]
    vals = vals + [0.0] * (-len(vals) % 32)
    got = block_round(torch.tensor(vals, dtype=torch.float64), name, rounding=mode)
    want = []
    for i in range(0, len(vals), 32):
        b = [Fraction(v) for v in vals[i:i + 32]]
        x = Fraction(2) ** max(ref_exponent(max(map(abs, b)), "floor", g, 0), -127)
        want += [float(directed(q / x, g, mode) * x) for q in b]
    assert got.tolist() == want


@pytest.mark.skipif(not numfmt.block_checks.STOCHASTIC_PASSED,
                    reason="numfmt.round_to has no stochastic seed= in this tree")
@pytest.mark.parametrize("name", ["nvfp4", "nvfp4_no_tensor_scale"])
def test_nvfp4_stochastic_is_the_exact_decision(name):
    """Each NVFP4 element goes up exactly when round_to's uniform u (numfmt.stochastic, at the
    element's index) is below the exact fraction (q - lo) / (hi - lo) of q = x / (s * S)."""
    from numfmt.stochastic import uniforms

    g = torch.Generator().manual_seed(8)
    x = torch.randn(64 * 16, generator=g, dtype=torch.float64) * 3
    x[5] = float(get_block_format(name).block_size)          # an exact grid point stays
    enc = block_encode(x, name, rounding="stochastic", seed=11)
    got = block_decode(enc).tolist()
    assert got == block_round(x, name, rounding="stochastic", seed=11).tolist()
    assert got != block_round(x, name, rounding="stochastic", seed=12).tolist()
    u = uniforms(11, 0, x.numel(), torch).tolist()
    s_t = Fraction(enc.tensor_scale or 1)
    gr = grid("fp4_e2m1fn")
    for i, (v, r) in enumerate(zip(x.tolist(), got)):
        d = Fraction(float(enc.scales[i // 16])) * s_t
        q = abs(Fraction(v)) / d
        if q >= gr[-1]:
            want = gr[-1]
        else:
            lo = max(p for p in gr if p <= q)
            hi = min(p for p in gr if p > q)
            want = hi if Fraction(u[i]) < (q - lo) / (hi - lo) else lo
        assert Fraction(abs(r)) == want * d, (i, v, r)
