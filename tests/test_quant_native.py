"""The compiled loops (quant.native._native) against quant's pure-torch paths and exact references.

Every comparison runs the same public call twice, once with QUANT_NATIVE=0 (torch path), so
the two implementations are held to each other bit for bit; the torch paths themselves are
held to exact rational references in test_quant_log.py / test_quant_scaled.py.
"""

import os
from fractions import Fraction

import numpy as np
import pytest
import torch

from quant import LogInt8, ScaledInt8, native
from quant.logdomain import offset_limits


def test_extension_is_built():
    assert native._native is not None, (
        "quant.native._native did not build: pip install needs a C compiler (gcc/clang) and Python "
        "headers; reinstall with `pip install -e .`. quant still works on its slower torch "
        "paths without it.")
    if os.environ.get("QUANT_NATIVE", "1") != "0":        # the whole suite may run without
        assert native.available()                         # it, to test the torch paths alone
        assert native.describe().startswith("compiled loops")


def test_describe_names_the_fallback(monkeypatch):
    monkeypatch.setenv("QUANT_NATIVE", "0")
    assert native.describe() == "torch passes (QUANT_NATIVE=0)"
    monkeypatch.setattr(native, "_native", None)
    assert native.describe() == "torch passes (quant.native._native is not built)"
    with pytest.raises(RuntimeError, match="not built"):
        native.log_encode(torch.ones(3), torch.empty(3, dtype=torch.int8), 1.0, 4, 0.0, 1.0, 0)


def both(monkeypatch, fn, *args):
    """fn(*args) on the native path, then on the torch path."""
    monkeypatch.setenv("QUANT_NATIVE", "1")
    a = fn(*args)
    monkeypatch.setenv("QUANT_NATIVE", "0")
    assert not native.available()
    b = fn(*args)
    monkeypatch.setenv("QUANT_NATIVE", "1")
    return a, b


# ------------------------------------------------------------------------------- LogInt8
def log_codes(x: torch.Tensor, offset: int, frac_bits: int) -> torch.Tensor:
    return LogInt8.encode(x, offset, frac_bits).codes


@pytest.mark.parametrize("frac_bits", range(7))
def test_log_encode_every_float32_mantissa_matches_torch_path(monkeypatch, frac_bits):
    """All 2**23 mantissas, both signs, at the extreme and a middle offset (the extremes take
    the scaled windows), float32 and float64 inputs."""
    mant = torch.arange(0, 1 << 23, dtype=torch.int32)
    lo, hi = offset_limits(frac_bits)
    for offset in (lo, -127, hi):
        e = max(-126, min(127, (offset + 64) >> frac_bits))
        x = (mant | ((e + 127) << 23)).view(torch.float32)
        x = torch.cat([x, -x])
        a, b = both(monkeypatch, log_codes, x, offset, frac_bits)
        assert torch.equal(a, b), (frac_bits, offset)
        xd = x.double() * 0.75
        a, b = both(monkeypatch, log_codes, xd, offset, frac_bits)
        assert torch.equal(a, b), (frac_bits, offset, "float64")


def test_log_encode_extremes_subnormals_and_zeros(monkeypatch):
    g = torch.Generator().manual_seed(3)
    bits = torch.randint(0, 0x7f800000, (300_000,), generator=g, dtype=torch.int32)
    x = bits.view(torch.float32) * torch.where(bits % 3 == 0, -1.0, 1.0)
    x[:5] = torch.tensor([0.0, -0.0, 3.4028235e38, -3.4028235e38, 1e-45])
    for offset in (offset_limits(3)[0], -900, -127, 0, 500, offset_limits(3)[1]):
        a, b = both(monkeypatch, log_codes, x, offset, 3)
        assert torch.equal(a, b), offset
    # an exact reference on a few, independent of both paths
    for v in x[:5].tolist():
        c = int(LogInt8.encode(torch.tensor([v]), -127).codes)
        if v == 0:
            assert c == 0
        else:
            r = Fraction(abs(v))
            e = (r.numerator ** 16).bit_length() - (r.denominator ** 16).bit_length()
            if Fraction(r.numerator ** 16, r.denominator ** 16) < Fraction(2) ** e:
                e -= 1
            assert c == int(np.sign(v)) * max(0, min(127, (e + 1) // 2 + 127))


@pytest.mark.parametrize("n", [1, 63, 65_535, 65_536, 65_537, 3 * 65_536 + 5, 1_000_003])
@pytest.mark.parametrize("torch_openmp", [True, False])
def test_thread_split_matches_one_thread(monkeypatch, n, torch_openmp):
    """On torch's OpenMP threads (where the runtime is shared) and on Python threads."""
    if torch_openmp and not native._SHARED_OPENMP:
        pytest.skip("this build does not share torch's OpenMP runtime")
    monkeypatch.setattr(native, "_SHARED_OPENMP", torch_openmp)
    g = torch.Generator().manual_seed(n)
    x = torch.randn(n, generator=g) * 100
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = LogInt8.encode(x, -60).codes
        one_s = ScaledInt8.encode(x, scale=0.5, narrow_range=False).codes
        one_d = LogInt8(one, -60).decode()
        torch.set_num_threads(max(2, threads))
        many = LogInt8.encode(x, -60).codes
        many_s = ScaledInt8.encode(x, scale=0.5, narrow_range=False).codes
        many_d = LogInt8(one, -60).decode()
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(one, many) and torch.equal(one_s, many_s) and torch.equal(one_d, many_d)
    _, ref = both(monkeypatch, lambda: LogInt8.encode(x, -60).codes)
    assert torch.equal(one, ref)


@pytest.mark.parametrize("where", [0, 65_535, 65_536, 199_999, -1])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_nonfinite_is_found_in_every_chunk(where, bad):
    x = torch.ones(200_000)
    x[where] = bad
    idx = where % x.numel()
    with pytest.raises(ValueError, match=str(idx)):
        LogInt8.encode(x, -60)
    with pytest.raises(ValueError, match=str(idx)):
        ScaledInt8.encode(x, scale=0.5)
    assert bool(torch.isnan(x[where]) | torch.isinf(x[where]))    # input left alone


def test_noncontiguous_input_and_input_not_modified(monkeypatch):
    x = torch.randn(300, 500).t()
    before = x.clone()
    a, b = both(monkeypatch, lambda: LogInt8.encode(x, -40).codes)
    assert torch.equal(a, b) and a.shape == x.shape
    a, b = both(monkeypatch, lambda: ScaledInt8.encode(x, scale=0.02).codes)
    assert torch.equal(a, b)
    assert torch.equal(x, before)


def test_log_decode_matches_torch_path(monkeypatch):
    codes = torch.arange(-127, 128, dtype=torch.int8).repeat(700)
    for offset, f in ((-127, 3), (offset_limits(3)[0], 3), (-50, 0), (offset_limits(6)[1], 6)):
        e = LogInt8(codes, offset, f)
        for dt in (torch.float32, torch.float64):
            a, b = both(monkeypatch, e.decode, dt)
            assert a.dtype == dt and torch.equal(a, b)


# ---------------------------------------------------------------------------- ScaledInt8
def _ties_and_extremes(scale: float) -> torch.Tensor:
    k = torch.arange(-300, 301, dtype=torch.float64)
    ties = ((k + 0.5) * scale).to(torch.float32)
    near = torch.cat([torch.nextafter(ties, ties + 1), torch.nextafter(ties, ties - 1)])
    big = torch.tensor([3.4e38, -3.4e38, 1e-45, -1e-45, 0.0, -0.0])
    g = torch.Generator().manual_seed(5)
    return torch.cat([ties, near, big, torch.randn(100_000, generator=g) * 200 * scale])


@pytest.mark.parametrize("scale", [1.0, 0.1, 3.0e-5, 7.5])
@pytest.mark.parametrize("dtype,zero_point,narrow", [(torch.int8, 0, True), (torch.int8, 0, False),
                                                     (torch.int8, -7, False),
                                                     (torch.uint8, 128, False),
                                                     (torch.uint8, 0, False),
                                                     (torch.uint8, 255, False)])
def test_scaled_encode_matches_torch_path(monkeypatch, scale, dtype, zero_point, narrow):
    x = _ties_and_extremes(scale)
    a, b = both(monkeypatch, lambda: ScaledInt8.encode(
        x, scale=scale, zero_point=zero_point, dtype=dtype, narrow_range=narrow).codes)
    assert a.dtype == dtype and torch.equal(a, b)


def test_scaled_encode_exact_reference_on_ties():
    """Independent of both paths: round half to even of the float32 quotient, saturated."""
    scale = 0.1
    x = _ties_and_extremes(scale)[:1200 + 601]
    got = ScaledInt8.encode(x, scale=scale, narrow_range=False).codes.tolist()
    s32 = float(np.float32(scale))
    for v, c in zip(x.tolist(), got):
        y = float(np.float32(v) / np.float32(s32))       # one float32 division
        assert c == max(-128, min(127, round(y)))        # Python's round is half-to-even


@pytest.mark.parametrize("zero_point,dtype", [(0, torch.int8), (-3, torch.int8),
                                              (128, torch.uint8)])
def test_scaled_decode_matches_torch_path(monkeypatch, zero_point, dtype):
    g = torch.Generator().manual_seed(9)
    lo, hi = (-128, 127) if dtype == torch.int8 else (0, 255)
    codes = torch.randint(lo, hi + 1, (50_000,), generator=g).to(dtype)
    e = ScaledInt8(codes, torch.tensor(0.0123), torch.tensor(zero_point))
    for dt in (torch.float32, torch.float64):
        a, b = both(monkeypatch, e.decode, dt)
        assert a.dtype == dt and torch.equal(a, b)


# ------------------------------------------------------------------------- bad arguments
def test_native_calls_check_their_arguments():
    x = torch.randn(10)
    with pytest.raises(TypeError, match="float32/float64"):
        native.log_encode(x.half(), torch.empty(10, dtype=torch.int8), 1.0, 4, 0.0, 1.0, 0)
    with pytest.raises(ValueError, match="flat contiguous"):
        native.log_encode(torch.randn(4, 5).t(), torch.empty(20, dtype=torch.int8),
                          1.0, 4, 0.0, 1.0, 0)
    with pytest.raises(ValueError, match="10 inputs but 9 outputs"):
        native.log_encode(x, torch.empty(9, dtype=torch.int8), 1.0, 4, 0.0, 1.0, 0)
    with pytest.raises(ValueError, match="rounds"):
        native._native.log_encode(x.numpy(), np.empty(10, np.int8), 4, 1.0, 9, 0.0, 1.0, 0,
                                  1)
    with pytest.raises(TypeError, match="int8/uint8"):
        native.scaled_encode_f32(x, torch.empty(10, dtype=torch.int16), 1.0, -128, 127, 0)
    with pytest.raises(TypeError, match="256-entry"):
        native.byte_lookup(torch.zeros(10, dtype=torch.int8), torch.zeros(255), torch.zeros(10))
    with pytest.raises(ValueError, match="256-entry"):
        native._native.byte_lookup(np.zeros(10, np.uint8), np.zeros(256, np.int16),
                                   np.zeros(10, np.int16), 1)


# --------------------------------------------------------------------- integer pipeline
@pytest.mark.parametrize("backend", ["onednn", "int_mm"])
@pytest.mark.parametrize("out_dtype", ["uint8", "uint16"])
@pytest.mark.parametrize("weight_max", [127, 60])
def test_softmax_head_matches_torch_path(monkeypatch, backend, out_dtype, weight_max):
    """The fused post-matmul loop against the torch ops, on rows that straddle its blocks
    and on inputs that saturate gaps (|logits| large) as well as near-ties."""
    from quant import quantize_softmax_regression
    from quant.integer.matmul import onednn_available
    if backend == "onednn" and not onednn_available():
        pytest.skip("this PyTorch has no oneDNN int8 linear op")
    g = torch.Generator().manual_seed(weight_max)
    w = torch.randn(10, 784, generator=g) * 0.05
    b = torch.randn(10, generator=g)
    w[3] *= 40                                          # one class with huge logits
    pipe = quantize_softmax_regression(w, b, prob_dtype=out_dtype, weight_max=weight_max,
                                       kernel=backend)
    x = torch.randint(0, 256, (1031, 784), generator=g, dtype=torch.uint8)
    x[:5] = torch.tensor([0, 255, 1, 128, 254], dtype=torch.uint8).reshape(5, 1)
    a, c = both(monkeypatch, pipe.probabilities, x)
    assert a.dtype == c.dtype == pipe.softmax.prob_dtype and torch.equal(a, c)


def test_softmax_head_checks_its_arguments():
    t = torch.tensor
    ok = {"planes": 1, "multipliers": t([1 << 30] * 3), "offsets": t([0] * 3),
          "shifts": t([31] * 3), "table": torch.arange(256, 0, -1), "reciprocal_bits": 42,
          "out_max": 255, "out_dtype": torch.uint8}
    native.softmax_head(torch.zeros(4, 3), **ok)
    with pytest.raises(ValueError, match="6 columns, expected 1 x 3"):
        native.softmax_head(torch.zeros(4, 6), **ok)
    with pytest.raises(TypeError, match="float32 or int32"):
        native.softmax_head(torch.zeros(4, 3, dtype=torch.float64), **ok)
    with pytest.raises(TypeError, match="uint8 or uint16"):
        native.softmax_head(torch.zeros(4, 3), **{**ok, "out_dtype": torch.int8})
    with pytest.raises(ValueError, match="256 int64"):
        native.softmax_head(torch.zeros(4, 3), **{**ok, "table": torch.arange(255)})
    with pytest.raises(ValueError, match="not positive"):
        native.softmax_head(torch.zeros(4, 3), **{**ok, "table": torch.zeros(256)})


def test_softmax_head_refuses_or_survives_hostile_parameters():
    """Reachable only through quant.native directly: never a crash or an out-of-bounds read."""
    t = torch.tensor
    table = torch.arange(256, 0, -1)
    with pytest.raises(ValueError, match="shifts must lie in 1..62"):
        native.softmax_head(torch.zeros(1, 2), 1, t([1, 1]), t([2**62, -2**62]), t([0, 0]),
                            table, 42, 255, torch.uint8)
    # gaps beyond 2**63 (wrapping z) must still index the table inside its 256 entries
    p = native.softmax_head(torch.zeros(3, 2), 1, t([1, 1]), t([2**62, -2**62 - 2**40]),
                            t([1, 1]), table, 42, 255, torch.uint8)
    assert p.shape == (3, 2)
    with pytest.raises(ValueError, match="out_max << k"):
        native.softmax_head(torch.zeros(1, 2), 1, t([1, 1]), t([0, 0]), t([1, 1]), table,
                            62, 65535, torch.uint16)
    with pytest.raises(ValueError, match="not an accumulator"):
        native.softmax_head(torch.tensor([[float("nan"), 0.0]]), 1, t([1, 1]), t([0, 0]),
                            t([1, 1]), table, 42, 255, torch.uint8)


def test_integer_pipeline_with_many_classes_in_a_small_stack_thread(monkeypatch):
    import threading

    from quant import quantize_softmax_regression
    g = torch.Generator().manual_seed(11)
    pipe = quantize_softmax_regression(torch.randn(4100, 16, generator=g),
                                       torch.randn(4100, generator=g), prob_dtype="uint16")
    x = torch.randint(0, 256, (300, 16), generator=g, dtype=torch.uint8)
    result = {}
    old = threading.stack_size(256 * 1024)
    try:
        th = threading.Thread(target=lambda: result.setdefault("p", pipe.probabilities(x)))
        th.start()
        th.join()
    finally:
        threading.stack_size(old)
    _, ref = both(monkeypatch, pipe.probabilities, x)
    assert torch.equal(result["p"], ref)


def test_scaled_encode_f32_checks_scale_and_codes():
    x, out = torch.ones(4), torch.empty(4, dtype=torch.int8)
    for bad in (0.0, -1.0, float("nan"), float("inf"), 0.1):      # 0.1 is not a float32 value
        with pytest.raises(ValueError, match="scale"):
            native.scaled_encode_f32(x, out, bad, -128, 127, 0)
    with pytest.raises(ValueError, match="zero_point"):
        native.scaled_encode_f32(x, out, 0.5, -128, 127, 200)


def test_lazily_negated_input_is_encoded(monkeypatch):
    x = torch.randn(5, dtype=torch.cfloat).conj().imag                # a view with the neg bit
    assert x.is_neg()
    a, b = both(monkeypatch, lambda: ScaledInt8.encode(x, scale=0.01).codes)
    assert torch.equal(a, b)
    a, b = both(monkeypatch, log_codes, x, -60, 3)
    assert torch.equal(a, b)
