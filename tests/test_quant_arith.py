"""Checked arithmetic against Python integers, numpy int8 wraparound and exact rationals."""

import math
from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import quant
from quant import LogInt8, OverflowPolicy, QuantOverflowError, ScaledInt8

code_lists = st.lists(st.tuples(st.integers(-127, 127), st.integers(-127, 127)), min_size=1,
                      max_size=40)


def scaled(codes, scale=0.25, zp=0, dtype=torch.int8, **kw) -> ScaledInt8:
    return ScaledInt8(torch.tensor(codes, dtype=dtype), scale=scale, zero_point=zp, **kw)


def pyround(v: Fraction) -> int:
    """Round half away from zero (the requantization convention)."""
    fl = math.floor(v)
    rest = v - fl
    if rest != Fraction(1, 2):
        return fl + (rest > Fraction(1, 2))
    return fl + 1 if v > 0 else fl


@given(code_lists, st.sampled_from(["add", "sub", "mul"]))
@settings(max_examples=150, deadline=None)
def test_scaled_ops_equal_python_ints_or_meet_the_policy(pairs, op):
    a = [p[0] for p in pairs]
    b = [p[1] for p in pairs]
    exact = {"add": [x + y for x, y in pairs], "sub": [x - y for x, y in pairs],
             "mul": [x * y for x, y in pairs]}[op]
    fn = getattr(quant, op)
    ea, eb = scaled(a, qmin=-127), scaled(b, qmin=-127)
    fits = all(-127 <= v <= 127 for v in exact)
    if fits:
        r = fn(ea, eb)
        assert r.codes.tolist() == exact
    else:
        first = next(i for i, v in enumerate(exact) if not -127 <= v <= 127)
        with pytest.raises(QuantOverflowError) as info:
            fn(ea, eb)
        assert info.value.index == (first,) and info.value.value == exact[first]
        assert f"quant.{op}" in str(info.value)
    sat = fn(ea, eb, policy=OverflowPolicy.SATURATE)
    assert sat.codes.tolist() == [min(max(v, -127), 127) for v in exact]
    wrap = fn(ea, eb, policy="wrap")
    na, nb = np.array(a, dtype=np.int8), np.array(b, dtype=np.int8)
    with np.errstate(over="ignore"):
        ref = {"add": na + nb, "sub": na - nb, "mul": na * nb}[op]
    assert wrap.codes.tolist() == ref.tolist()                 # numpy int8 wraparound
    assert (wrap.qmin, wrap.qmax) == (-128, 127)
    scale = 0.25 if op != "mul" else 0.0625                   # product scale for mul
    assert float(sat.scale) == scale


def test_uint8_asymmetric_add_keeps_scale_and_zero_point():
    a = scaled([10, 200, 128], scale=0.5, zp=128, dtype=torch.uint8)
    b = scaled([140, 20, 128], scale=0.5, zp=128, dtype=torch.uint8)
    r = quant.add(a, b)
    assert r.codes.dtype == torch.uint8 and int(r.zero_point) == 128
    assert r.codes.tolist() == [10 + 140 - 128, 200 + 20 - 128, 128]
    assert r.decode().tolist() == (a.decode() + b.decode()).tolist()
    w = quant.add(a, a, policy="wrap")
    want = (np.array([10, 200, 128], np.int64) * 2 - 128).astype(np.uint8)
    assert w.codes.tolist() == want.tolist()


def test_mismatched_parameters_are_clear_errors():
    a = scaled([1, 2], scale=0.25)
    b = scaled([1, 2], scale=0.5)
    with pytest.raises(ValueError, match="scales differ.*out_scale"):
        quant.add(a, b)
    c = scaled([1, 2], scale=0.25, zp=3)
    with pytest.raises(ValueError, match="zero points differ"):
        quant.sub(a, c)
    with pytest.raises(ValueError, match="shapes"):
        quant.add(a, scaled([1, 2, 3]))
    with pytest.raises(TypeError, match="encoded values"):
        quant.add(a, torch.tensor([1.0, 2.0]))
    with pytest.raises(TypeError, match="encoded values"):
        quant.mul(torch.tensor([1, 2], dtype=torch.int8), a)
    with pytest.raises(TypeError, match="cannot mix"):
        quant.add(a, LogInt8(torch.tensor([1, 2], dtype=torch.int8), offset=0))
    with pytest.raises(TypeError, match="not supported"):
        quant.div(a, a)
    with pytest.raises(ValueError, match="policy"):
        quant.add(a, a, policy="clamp")
    with pytest.raises(TypeError, match="out_offset"):
        quant.add(a, a, out_offset=3)
    pc0 = ScaledInt8.encode(torch.randn(3, 4), axis=0)
    pc1 = ScaledInt8.encode(torch.randn(3, 4), axis=1)
    with pytest.raises(ValueError, match="different axes"):
        quant.mul(pc0, pc1)


@given(code_lists, st.floats(min_value=0.05, max_value=4.0), st.floats(min_value=0.05,
                                                                        max_value=4.0))
@settings(max_examples=60, deadline=None)
def test_requantized_add_and_mul_match_exact_rationals(pairs, sb, so):
    sa = 0.25
    sb = float(np.float32(sb))
    so = float(np.float32(so))
    a = scaled([p[0] for p in pairs], scale=sa)
    b = scaled([p[1] for p in pairs], scale=sb)
    for fn, exact_of in ((quant.add, lambda x, y: Fraction(sa) * x + Fraction(sb) * y),
                         (quant.mul, lambda x, y: Fraction(sa) * x * Fraction(sb) * y)):
        r = fn(a, b, out_scale=so, policy="saturate")
        assert float(r.scale) == so
        for (x, y), got in zip(pairs, r.codes.tolist()):
            want = exact_of(x, y) / Fraction(so)
            # the 31-bit multiplier moves the value by < 2**-30 relative: only a value within
            # that of a tie may round the other way
            if abs(abs(want - math.floor(want)) - Fraction(1, 2)) > abs(want) * 2 ** -29:
                assert got == max(-128, min(127, pyround(want))), (x, y, want)


def test_per_channel_mul_and_add():
    x = torch.tensor([[1.0, 2.0, 3.0], [10.0, 20.0, 30.0]])
    a = ScaledInt8.encode(x, axis=0)
    b = ScaledInt8.encode(x / 10, axis=0)
    p = quant.mul(a, b, policy="saturate")
    assert p.axis == 0 and torch.equal(p.scale, a.scale * b.scale)
    r = quant.mul(a, b, out_scale=torch.tensor([0.1, 1.0]))
    assert r.axis == 0
    assert torch.allclose(r.decode(), (a.decode() * b.decode()).round(decimals=1), atol=0.51)
    s = quant.add(a, a, out_scale=a.scale * 2)
    assert torch.equal(s.codes, a.codes)                       # 2x at twice the scale


@pytest.mark.parametrize("m,k,n", [(1, 1, 1), (3, 7, 5), (16, 784, 10), (2, 0, 3)])
def test_matmul_equals_integer_reference(m, k, n):
    g = torch.Generator().manual_seed(m * 1000 + k + n)
    qa = torch.randint(0, 256, (m, k), generator=g, dtype=torch.int64)
    qb = torch.randint(-127, 128, (k, n), generator=g, dtype=torch.int64)
    a = ScaledInt8(qa.to(torch.uint8), scale=1 / 255, zero_point=3)
    b = ScaledInt8(qb.to(torch.int8), scale=0.02, zero_point=0)
    acc = (qa - 3) @ qb                                          # exact int64 reference
    exact = quant.matmul(a, b)                       # default: the exact accumulator
    assert exact.codes.dtype == torch.int32 and exact.codes.tolist() == acc.tolist()
    assert float(exact.scale) == float(np.float32(1 / 255)) * float(np.float32(0.02))  # exact
    big = quant.matmul(a, b, out_dtype="int8", policy="saturate")
    assert big.codes.tolist() == acc.clamp(-128, 127).tolist()
    assert torch.equal(big.scale, exact.scale)
    if bool((acc.abs() > 127).any()):
        with pytest.raises(QuantOverflowError):
            quant.matmul(a, b, out_dtype="int8")
    so = 0.05
    r = quant.matmul(a, b, out_scale=so, policy="saturate")
    ratio = Fraction(float(a.scale)) * Fraction(float(b.scale)) / Fraction(so)
    for got, v in zip(r.codes.reshape(-1).tolist(), acc.reshape(-1).tolist()):
        want = ratio * v
        if abs(abs(want - math.floor(want)) - Fraction(1, 2)) > abs(want) * 2 ** -29:
            assert got == max(-128, min(127, pyround(want)))


def test_matmul_wrap_equals_numpy_int8_matmul_and_accumulators_respect_the_proof():
    rng = np.random.default_rng(9)
    for m, k, n in ((2, 3, 4), (5, 17, 3), (1, 64, 1)):
        qa = rng.integers(-128, 128, (m, k)).astype(np.int8)
        qb = rng.integers(-128, 128, (k, n)).astype(np.int8)
        a = ScaledInt8(torch.from_numpy(qa), scale=1.0)
        b = ScaledInt8(torch.from_numpy(qb), scale=1.0)
        wrap = quant.matmul(a, b, out_dtype="int8", policy=OverflowPolicy.WRAP)
        assert np.array_equal(wrap.codes.numpy(), qa @ qb)       # numpy int8 wraparound
        exact = qa.astype(np.int64) @ qb.astype(np.int64)
        proof = quant.matmul_accumulator_proof(a, b)
        assert proof.lowest <= exact.min() and exact.max() <= proof.highest
        assert proof.worst_case == k * 128 * 128


def test_matmul_per_row_and_per_column_batched_and_dot():
    g = torch.Generator().manual_seed(11)
    x = torch.randn(2, 4, 6, generator=g)
    w = torch.randn(6, 3, generator=g) * torch.tensor([1.0, 10.0, 0.1])
    a = ScaledInt8.encode(x)
    b = ScaledInt8.encode(w, axis=1)
    r = quant.matmul(a, b, out_scale=0.01, policy="saturate")
    ref = a.decode(torch.float64) @ b.decode(torch.float64)
    assert r.codes.shape == (2, 4, 3)
    so = float(r.scale)                                         # float32(0.01)
    assert a.qmin == -127                                       # the result keeps a's range
    clamped = ref.clamp(-127 * so, 127 * so)
    assert bool(((r.decode(torch.float64) - clamped).abs() <= so / 2 * (1 + 1e-6)).all())
    p = quant.matmul(a, b, policy="saturate")
    assert p.axis == 2 and p.scale.shape == (3,)
    rows = ScaledInt8.encode(x[0], axis=0)
    pr = quant.matmul(rows, ScaledInt8.encode(w), policy="saturate")
    assert pr.axis == 0 and pr.scale.shape == (4,)
    v = ScaledInt8(torch.tensor([1, 2, 3], dtype=torch.int8), scale=0.5)
    d = quant.dot(v, v)
    assert d.codes.shape == () and int(d.codes) == 14 and float(d.scale) == 0.25
    with pytest.raises(ValueError, match="contraction"):
        quant.matmul(a, ScaledInt8.encode(torch.randn(5, 3)))
    with pytest.raises(ValueError, match="both operands are per-channel"):
        quant.matmul(rows, b)
    with pytest.raises(ValueError, match="contraction axis"):
        quant.matmul(ScaledInt8.encode(x[0], axis=1), ScaledInt8.encode(w))


def test_log_mul_div_are_exact_code_arithmetic():
    g = torch.Generator().manual_seed(2)
    ca = torch.randint(-127, 128, (500,), generator=g).to(torch.int8)
    cb = torch.randint(-127, 128, (500,), generator=g).to(torch.int8)
    cb = torch.where(cb == 0, 1, cb).to(torch.int8)
    a, b = LogInt8(ca, -100), LogInt8(cb, -90)
    for fn, default, combine in ((quant.mul, -100 - 90 + 127, lambda x, y: x + y),
                                 (quant.div, -100 + 90 - 64, lambda x, y: x - y)):
        r = fn(a, b, policy="saturate")
        assert r.offset == default
        for x, y, got in zip(ca.tolist(), cb.tolist(), r.codes.tolist()):
            if x == 0:
                assert got == 0
                continue
            m = combine(abs(x) - 100, (abs(y) - 90)) - default
            sign = (1 if x > 0 else -1) * (1 if y > 0 else -1)
            assert got == (0 if m <= 0 else sign * min(m, 127))
    with pytest.raises(QuantOverflowError, match="quant.mul"):
        quant.mul(LogInt8(torch.tensor([127], dtype=torch.int8), 0),
                  LogInt8(torch.tensor([127], dtype=torch.int8), 0), out_offset=0)
    with pytest.raises(ZeroDivisionError, match=r"index \(1,\)"):
        quant.div(a, LogInt8(torch.tensor([1, 0] * 250, dtype=torch.int8), 0))
    with pytest.raises(ValueError, match="WRAP"):
        quant.mul(a, b, policy=OverflowPolicy.WRAP)
    with pytest.raises(ValueError, match="offsets differ"):
        quant.add(a, b)
    with pytest.raises(ValueError, match="frac_bits"):
        quant.mul(a, LogInt8(cb, -90, frac_bits=2))


def test_log_add_and_matmul_within_their_bounds():
    g = torch.Generator().manual_seed(4)
    x = torch.rand(8, 33, generator=g, dtype=torch.float64) + 0.01
    w = torch.rand(33, 5, generator=g, dtype=torch.float64) + 0.01
    a, b = LogInt8.encode(x), LogInt8.encode(w)
    r = quant.matmul(a, b)
    exact = a.decode(torch.float64) @ b.decode(torch.float64)   # exact sums of the operands
    eps = a.rel_error_bound
    depth = math.ceil(math.log2(33))
    rel = (r.decode(torch.float64) - exact).abs() / exact
    assert float(rel.max()) <= (1 + eps) ** (depth + 1) - 1     # + the final narrowing
    s = quant.add(a, LogInt8.encode(x, offset=a.offset), out_offset=a.offset + 8)
    rel = (s.decode(torch.float64) - 2 * a.decode(torch.float64)).abs() / \
        (2 * a.decode(torch.float64))
    assert float(rel.max()) <= eps * (1 + 1e-12)
    d = quant.dot(LogInt8.encode(x[0]), LogInt8.encode(w[:, 0]))
    assert d.codes.shape == ()
    neg = quant.sub(a, a)
    assert int(neg.codes.abs().sum()) == 0                      # x - x is exactly zero


def test_empty_contractions_and_channels():
    z = quant.matmul(LogInt8(torch.zeros(2, 0, dtype=torch.int8), 0),
                     LogInt8(torch.zeros(0, 3, dtype=torch.int8), 0))
    assert z.codes.shape == (2, 3) and not bool(z.codes.any())
    z = quant.matmul(LogInt8(torch.zeros(0, dtype=torch.int8), 0),
                     LogInt8(torch.zeros(0, 3, dtype=torch.int8), 0))
    assert z.codes.shape == (3,) and not bool(z.codes.any())
    rows = ScaledInt8(torch.zeros(0, 3, dtype=torch.int8), torch.ones(0), axis=0)
    z = quant.matmul(rows, ScaledInt8(torch.zeros(3, 2, dtype=torch.int8), 0.5))
    assert z.codes.shape == (0, 2)
    cols = ScaledInt8(torch.zeros(3, 0, dtype=torch.int8), torch.ones(0), axis=1)
    assert quant.matmul(ScaledInt8(torch.zeros(4, 3, dtype=torch.int8), 0.5),
                        cols).codes.shape == (4, 0)


def test_parameter_errors_name_what_is_wrong():
    from quant.fixedpoint import requantize
    with pytest.raises(quant.QuantOverflowError, match=r"index \(1,\)"):
        requantize(torch.tensor([5, -2**63]), 1, 1)
    x = ScaledInt8(torch.tensor([3, -2], dtype=torch.int8), 2.0**-70)
    p = quant.mul(x, x, out_zero_point=0)              # exact product scale 2**-140 is fine
    assert float(p.scale) == 2.0**-140 and p.codes.tolist() == [9, 4]
    u = ScaledInt8(torch.tensor([250, 250], dtype=torch.uint8), 1.0)
    with pytest.raises(ValueError, match="zero point 300 lies outside"):
        quant.add(u, u, out_zero_point=300)
    for bad, what in ((float("nan"), "out_scale is NaN"), (0.0, "out_scale must be > 0")):
        with pytest.raises(ValueError, match=what):
            quant.add(u, u, out_scale=bad)
