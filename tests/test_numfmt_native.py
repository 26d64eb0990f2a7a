"""numfmt's compiled rounding loop (numfmt._native) against the Python paths, bit for bit.

The Python paths (exact float64 arithmetic, tested against Fractions, gfloat and enumeration in
the other numfmt tests) are the reference: on random float32/float64 bit patterns (NaN, inf,
-0, subnormals included) and on values around every format's range, every mode and every
overflow rule must give the same bits with the loop and with NUMFMT_NATIVE=0.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import numfmt
from numfmt import native
from numfmt.overflow import RangeOverflowError

pytestmark = pytest.mark.skipif(not native.available(), reason="numfmt._native is not built")

MODES = ("nearest_even", "nearest_away", "toward_zero", "up", "down", "odd", "stochastic")
FORMATS = ("bf16", "fp16", "tf32", "fp8_e4m3fn", "fp8_e5m2", "fp8_e4m3", "fp8_e4m3fnuz",
           "fp8_e5m2fnuz", "fp8_e3m4", "fp6_e3m2fn", "fp4_e2m1fn", "fp32")


def _inputs(dtype, n: int, seed: int) -> np.ndarray:
    """Random bit patterns plus values spread over the formats' ranges and their edges."""
    g = np.random.default_rng(seed)
    ut = np.uint32 if dtype == np.float32 else np.uint64
    raw = g.integers(0, np.iinfo(ut).max, n, dtype=ut, endpoint=True).view(dtype)
    spread = (g.standard_normal(n) * np.exp2(g.integers(-150, 130, n))).astype(dtype)
    edges = []
    for name in FORMATS:
        f = numfmt.get(name)
        for v in (f.max, f.smallest_subnormal, f.smallest_normal):
            edges += [v * s for s in (1.0, 1.5, 0.5, 1 + 2.0**-12, 2.0, 0.75)]
    edges = np.array(edges + [0.0, np.inf, np.nan], dtype=dtype)
    edges = np.concatenate([edges, -edges, np.array([-0.0], dtype=dtype)])
    return np.concatenate([raw, spread, edges])


def _both(x, fmt: str, mode: str, rule: str | None, monkeypatch):
    kw = {"seed": 12345} if mode == "stochastic" else {}
    if rule is not None:
        kw["overflow"] = rule
    out = []
    for flag in ("1", "0"):
        monkeypatch.setenv("NUMFMT_NATIVE", flag)
        try:
            out.append(numfmt.round_to(x, fmt, rounding=mode, **kw))
        except (RangeOverflowError, ValueError) as exc:
            out.append(type(exc))
    return out


def _same_bits(a, b) -> bool:
    if isinstance(a, type) or isinstance(b, type):
        return a is b
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    na, nb = np.isnan(a), np.isnan(b)
    # NaN payloads are not part of the contract; every other value's bits are
    return bool(np.array_equal(na, nb)
                and np.array_equal(np.where(na, 0, a).view(f"u{a.itemsize}"),
                                   np.where(nb, 0, b).view(f"u{b.itemsize}")))


def _rules(fmt: str):
    f = numfmt.get(fmt)
    rules = ["saturate", "raise", None]
    if f.has_nan:
        rules.append("nan")
    if f.has_inf:
        rules.append("inf")
    return rules


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("fmt", FORMATS)
def test_native_matches_python_paths(dtype, fmt, monkeypatch):
    x = _inputs(dtype, 3000, seed=FORMATS.index(fmt))
    if not numfmt.get(fmt).has_nan:
        x = x[~np.isnan(x)]
    for mode in MODES:
        for rule in _rules(fmt):
            for arr in (x, torch.from_numpy(x)):
                a, b = _both(arr, fmt, mode, rule, monkeypatch)
                assert _same_bits(a, b), (fmt, mode, rule, type(arr).__name__)


def test_native_is_used_and_disabled_by_env(monkeypatch):
    monkeypatch.setenv("NUMFMT_NATIVE", "0")
    assert not native.available()
    monkeypatch.setenv("NUMFMT_NATIVE", "1")
    assert native.available()
    assert native.supports(numfmt.get("fp8_e4m3fn"), 4)
    assert native.supports(numfmt.get("fp32"), 8) and not native.supports(numfmt.get("fp32"), 4)
    assert not native.supports(numfmt.get("fp8_e8m0fnu"))    # no fraction bits: Python path
    assert not native.supports(numfmt.get("int8"))


def test_raise_and_nan_errors_come_from_the_python_path(monkeypatch):
    monkeypatch.setenv("NUMFMT_NATIVE", "1")
    with pytest.raises(RangeOverflowError):
        numfmt.round_to(torch.tensor([1.0, 1e6]), "fp8_e4m3fn", overflow="raise")
    with pytest.raises(ValueError, match="NaN"):
        numfmt.round_to(np.array([1.0, np.nan], np.float32), "fp4_e2m1fn")


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_native_same_bits_on_any_thread_count(threads, monkeypatch):
    monkeypatch.setenv("NUMFMT_NATIVE", "1")
    x = torch.from_numpy(_inputs(np.float32, 150_000, seed=7))     # several chunks
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        ref = {m: numfmt.round_to(x, "fp16", rounding=m, **({"seed": 9} if m == "stochastic"
                                                            else {})) for m in MODES}
        torch.set_num_threads(threads)
        for m, r in ref.items():
            got = numfmt.round_to(x, "fp16", rounding=m, **({"seed": 9} if m == "stochastic"
                                                           else {}))
            assert _same_bits(got, r), m
    finally:
        torch.set_num_threads(before)


def test_stochastic_native_matches_numpy_counter(monkeypatch):
    # element i of a slice uses the counter of its flat index in the whole input
    monkeypatch.setenv("NUMFMT_NATIVE", "1")
    x = np.linspace(-3, 3, 70_001, dtype=np.float32)
    a = numfmt.round_to(torch.from_numpy(x), "fp8_e5m2", rounding="stochastic", seed=3)
    monkeypatch.setenv("NUMFMT_NATIVE", "0")
    b = numfmt.round_to(x, "fp8_e5m2", rounding="stochastic", seed=3)
    assert _same_bits(np.asarray(a), b)


def test_non_contiguous_and_0d_inputs(monkeypatch):
    x = torch.randn(64, 33, dtype=torch.float64).t()[::2]
    a, b = _both(x, "bf16", "up", None, monkeypatch)
    assert _same_bits(a, b) and a.shape == x.shape
    s = np.float32(1.0 + 2.0**-9)
    a, b = _both(np.asarray(s), "bf16", "nearest_away", None, monkeypatch)
    assert _same_bits(a, b) and np.asarray(a).shape == ()


def test_import_order_keeps_every_loop_on_torchs_openmp_team():
    """numfmt first (as the CLIs import it), a numpy-only rounding before torch is imported:
    every extension must still resolve to torch's OpenMP runtime. (Loaded before torch, an
    extension pulled the system's libgomp in and then ran on one thread: the int8 head at
    half speed under `python -m benchmarks.int8_softmax`.)"""
    import subprocess
    import sys

    code = (
        "import sys, numpy as np, numfmt.cli, numfmt\n"
        "assert 'torch' not in sys.modules, 'importing numfmt must not import torch'\n"
        "numfmt.round_to(np.arange(100, dtype=np.float32), 'bf16')\n"
        "from numfmt import native\n"
        "from numfmt.threads import uses_torch_openmp\n"
        "import quant.native as qn\n"
        "from quant.native import int8_head\n"
        "libs = [native._extension().openmp_library(), qn._native.openmp_library(),\n"
        "        int8_head._int8_head.openmp_library()]\n"
        "print(libs)\n"
        "assert all(uses_torch_openmp(lib) for lib in libs), libs\n"
        "assert 'OpenMP threads' in int8_head.describe(), int8_head.describe()\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr


def test_large_outputs_are_split_on_huge_page_boundaries_without_gaps():
    """Outputs from 32 MiB on are cut into 2 MiB-of-output work items from the buffer's first
    2 MiB boundary (one thread per fresh huge page): every element must still be written,
    with its own flat index's uniform. Checked against the same loop run on small pieces
    (the element-count chunks) and, for nearest-even, against ml_dtypes."""
    import ml_dtypes

    n = (9 << 20) + 12345                       # 36 MiB of float32, not a multiple of anything
    g = torch.Generator().manual_seed(11)
    x = torch.randn(n, generator=g) * 10.0 ** torch.randint(-3, 4, (n,), generator=g)
    fmt = numfmt.get("bf16")
    for mode in ("stochastic", "nearest_even"):
        big = numfmt.round_to(x, fmt, rounding=mode, seed=5 if mode == "stochastic" else None)
        pieces = torch.full((n,), float("nan"))
        step = 1 << 20
        for lo in range(0, n, step):
            hi = min(n, lo + step)
            assert native.round_buffer(x.data_ptr() + 4 * lo, pieces.data_ptr() + 4 * lo,
                                       hi - lo, 4, fmt, "inf", mode,
                                       5 if mode == "stochastic" else None, lo)
        assert torch.equal(big.view(torch.int32), pieces.view(torch.int32)), mode
    want = x.numpy().astype(ml_dtypes.bfloat16).astype(np.float32)
    assert np.array_equal(big.numpy().view(np.int32), want.view(np.int32))


def test_advise_huge_pages_is_advice_only():
    buf = np.arange(3 << 20, dtype=np.float32)      # 12 MiB
    before = buf.copy()
    assert native.advise_huge_pages(buf.ctypes.data, buf.nbytes) in (True, False)
    assert native.advise_huge_pages(buf.ctypes.data, 1024) is False   # below the threshold
    assert np.array_equal(buf, before)


@pytest.mark.parametrize("fmt", FORMATS)
def test_float64_traps_through_the_round_to_odd_float32_pass(fmt, monkeypatch):
    """float64 input of deterministic modes goes through float32 rounded to odd: on the
    inputs that break casts (target midpoints and their float64 neighbours, max + ulp/2, half
    the smallest subnormal, double-rounding traps: `numfmt.cast_inputs`), all signs, the loop
    must give the exact Python path's bits in every deterministic mode and overflow rule."""
    from numfmt.cast_inputs import rounding_input_array

    f = numfmt.get(fmt)
    base = rounding_input_array(f, numfmt.get("fp64"))
    x = np.concatenate([base, -base, np.nextafter(base, np.inf), np.nextafter(base, -np.inf),
                        [1e300, -1e300, 5e-324, -5e-324, 3.5e38, 1.2e-38, 1.5e-45]])
    rules = ["saturate"] + (["inf"] if f.has_inf else []) + (["nan"] if f.has_nan else [])
    for rule in rules:
        for mode in MODES[:-1]:
            got = numfmt.round_to(x, f, overflow=rule, rounding=mode)
            with monkeypatch.context() as m:
                m.setenv("NUMFMT_NATIVE", "0")
                want = numfmt.round_to(x, f, overflow=rule, rounding=mode)
            assert np.array_equal(got.view(np.uint64), want.view(np.uint64)), (rule, mode)
