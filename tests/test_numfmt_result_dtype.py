"""round_to(..., dtype=): the same values held in another dtype, and the compiled loop's direct
writing of a format's own codes (torch's and ml_dtypes' storage types), bit for bit.

The references are independent of the code under test: the values come from the Python
paths (``NUMFMT_NATIVE=0``: exact float64 arithmetic, tested against Fractions and gfloat
elsewhere) and the codes from torch's and ml_dtypes' own casts of those exact values (which do
not round them); and every code of every <= 8-bit format must encode to itself.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
import torch

import numfmt
from numfmt import native

MODES = ("nearest_even", "nearest_away", "toward_zero", "up", "down", "odd", "stochastic")
TORCH_FORMATS = ("bf16", "fp16", "fp8_e4m3fn", "fp8_e5m2", "fp8_e4m3fnuz", "fp8_e5m2fnuz")
NUMPY_FORMATS = TORCH_FORMATS + ("fp8_e4m3", "fp8_e3m4", "fp6_e3m2fn", "fp6_e2m3fn",
                                 "fp4_e2m1fn")


def _inputs(dtype: np.dtype, n: int, seed: int, fmt: numfmt.Format) -> np.ndarray:
    """Random bit patterns, values spread over the format's range, its edges and specials."""
    g = np.random.default_rng(seed)
    ut = np.uint32 if dtype == np.float32 else np.uint64
    raw = g.integers(0, np.iinfo(ut).max, n, dtype=ut, endpoint=True).view(dtype)
    with np.errstate(over="ignore"):      # beyond float32 on purpose: inf inputs too
        spread = (g.standard_normal(n) * 2.0 ** g.integers(fmt.emin - fmt.mantissa_bits - 2,
                                                           fmt.emax + 2, n)).astype(dtype)
    edges = np.array([0.0, -0.0, np.inf, -np.inf, fmt.max, -fmt.max, fmt.smallest_subnormal,
                      fmt.smallest_subnormal / 2, fmt.max * (1 + 2.0 ** -(fmt.mantissa_bits + 1))],
                     dtype=np.float64).astype(dtype)
    x = np.concatenate([raw, spread, edges])
    if not fmt.has_nan:
        x = x[~np.isnan(x)]             # NaN into a format without NaN raises (tested elsewhere)
    return x


def _rules(fmt: numfmt.Format) -> list[str]:
    rules = ["saturate"]
    if fmt.has_inf:
        rules.append("inf")
    if fmt.has_nan:
        rules.append("nan")
    return rules


def _same_codes(got: np.ndarray, want: np.ndarray) -> bool:
    """Bit-equal except that any NaN code stands for NaN."""
    gv, wv = got.astype(np.float64), want.astype(np.float64)
    nan = np.isnan(wv)
    if not np.array_equal(np.isnan(gv), nan):
        return False
    width = np.uint8 if got.dtype.itemsize == 1 else np.uint16
    return np.array_equal(got.view(width)[~nan], want.view(width)[~nan])


@pytest.mark.skipif(not native.available(), reason="numfmt._native is not built")
@pytest.mark.parametrize("name", NUMPY_FORMATS)
def test_codes_written_directly_equal_the_exact_values_cast_by_the_library(name, monkeypatch):
    fmt = numfmt.get(name)
    for src in (np.float32, np.float64):
        x = _inputs(np.dtype(src), 4000, 7, fmt)
        for rule in _rules(fmt):
            for mode in MODES:
                seed = 11 if mode == "stochastic" else None
                got = numfmt.round_to(x, fmt, overflow=rule, rounding=mode, seed=seed,
                                      dtype=fmt.numpy_dtype)
                with monkeypatch.context() as m:
                    m.setenv("NUMFMT_NATIVE", "0")
                    exact = numfmt.round_to(x, fmt, overflow=rule, rounding=mode, seed=seed)
                assert got.dtype == fmt.numpy_dtype and got.shape == x.shape
                assert _same_codes(got, exact.astype(fmt.numpy_dtype)), (src, rule, mode)


@pytest.mark.skipif(not native.available(), reason="numfmt._native is not built")
@pytest.mark.parametrize("name", TORCH_FORMATS)
def test_torch_codes_equal_torchs_cast_of_the_exact_values(name, monkeypatch):
    fmt = numfmt.get(name)
    dtype = fmt.torch_dtype
    for src in (np.float32, np.float64):
        x = torch.from_numpy(_inputs(np.dtype(src), 4000, 3, fmt))
        x = x[: x.numel() // 5 * 5].reshape(-1, 5)
        for mode in MODES:
            seed = 5 if mode == "stochastic" else None
            got = numfmt.round_to(x, fmt, rounding=mode, seed=seed, dtype=dtype)
            with monkeypatch.context() as m:
                m.setenv("NUMFMT_NATIVE", "0")
                want = numfmt.round_to(x, fmt, rounding=mode, seed=seed).to(dtype)
            assert got.dtype == dtype and got.shape == x.shape
            nan = torch.isnan(want.double())
            assert torch.equal(torch.isnan(got.double()), nan), (src, mode)
            bits = torch.uint8 if dtype.itemsize == 1 else torch.int16
            assert torch.equal(got.view(bits)[~nan], want.view(bits)[~nan]), (src, mode)


@pytest.mark.skipif(not native.available(), reason="numfmt._native is not built")
@pytest.mark.parametrize("name", [n for n in NUMPY_FORMATS if numfmt.get(n).bits <= 8])
def test_every_code_encodes_to_itself(name):
    """Every non-NaN code's value, rounded into the format, is written as that very code
    (-0 included where the format has it): an enumeration, independent of any library."""
    fmt = numfmt.get(name)
    codes = np.arange(2**fmt.bits)
    v = fmt.decode(codes)
    keep = ~np.isnan(v)
    for src in (np.float32, np.float64):
        got = numfmt.round_to(v[keep].astype(src), fmt, overflow="saturate" if not fmt.has_inf
                              else "inf", dtype=fmt.numpy_dtype)
        assert np.array_equal(got.view(np.uint8), codes[keep].astype(np.uint8)), src


def test_other_dtypes_hold_the_same_values_and_keep_the_gradient():
    x = torch.linspace(-3, 3, 101, dtype=torch.float64, requires_grad=True)
    r = numfmt.round_to(x, "fp8_e4m3fn", dtype=torch.float16)
    assert r.dtype == torch.float16
    assert torch.equal(r.double(), numfmt.round_to(x.detach(), "fp8_e4m3fn"))
    r.float().sum().backward()                  # the straight-through gradient survives
    assert torch.equal(x.grad, torch.ones_like(x))
    a = numfmt.round_to([0.1, 1e9], "bf16", dtype=np.float32)
    # bf16 keeps 8 significant bits: 1e9 = 238.42 * 2**22 and 0.1 = 204.8 * 2**-11
    assert a.dtype == np.float32 and a.tolist() == [205 * 2.0**-11, 238 * 2.0**22]
    i = numfmt.round_to(np.array([1.5, 300.0]), "int8", dtype=np.int16)
    assert i.dtype == np.int16 and i.tolist() == [2, 127]
    before = x.detach().clone()
    numfmt.round_to(x.detach(), "bf16", dtype=torch.bfloat16)
    assert torch.equal(x.detach(), before)


@pytest.mark.parametrize("x, fmt, dtype, err, match", [
    (torch.zeros(3), "bf16", np.float32, TypeError, "must be a torch.dtype"),
    (np.zeros(3), "bf16", torch.bfloat16, TypeError, "numpy"),
    (1.0, "bf16", np.float32, TypeError, "not to float"),
    (torch.zeros(3), "fp16", torch.bfloat16, ValueError, "cannot hold every value of fp16"),
    (torch.zeros(3), "fp8_e5m2", torch.float8_e4m3fn, ValueError, "cannot hold"),
    (np.zeros(3), "fp8_e4m3", ml_dtypes.float8_e4m3fn, ValueError, "cannot hold"),
    (np.zeros(3), "int16", np.int8, ValueError, "cannot hold"),
    (np.zeros(3), "bf16", np.complex64, ValueError, "not a number format"),
])
def test_bad_dtypes_are_refused_before_any_work(x, fmt, dtype, err, match):
    with pytest.raises(err, match=match):
        numfmt.round_to(x, fmt, dtype=dtype)


@pytest.mark.skipif(not native.available(), reason="numfmt._native is not built")
def test_large_code_outputs_cover_every_element_with_its_own_uniform():
    """A 36 MiB bfloat16 output takes the 2 MiB-page work items: against the same loop on
    small pieces, stochastic (each element's own counter) and nearest-even."""
    n = (18 << 20) + 777
    x = torch.randn(n, generator=torch.Generator().manual_seed(2)) * 1e3
    fmt = numfmt.get("bf16")
    for mode, seed in (("stochastic", 9), ("nearest_even", None)):
        big = numfmt.round_to(x, fmt, rounding=mode, seed=seed, dtype=torch.bfloat16)
        pieces = torch.empty(n, dtype=torch.bfloat16)
        step = 1 << 20
        for lo in range(0, n, step):
            hi = min(n, lo + step)
            assert native.round_buffer(x.data_ptr() + 4 * lo, pieces.data_ptr() + 2 * lo,
                                       hi - lo, 4, fmt, "inf", mode, seed, lo, "bfloat16")
        assert torch.equal(big.view(torch.int16), pieces.view(torch.int16)), mode
    assert torch.equal(big, x.to(torch.bfloat16))
