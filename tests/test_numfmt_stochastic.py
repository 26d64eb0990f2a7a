"""Stochastic rounding: unbiased exactly (Fractions, every code of every <= 8-bit format), the
documented rule followed element by element, the draws uniform (statistics), and the same bits
for numpy, torch and any thread count."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import torch

import numfmt
from numfmt.stochastic import uniforms

EIGHT_BIT = [f for f in numfmt.formats() if f.is_float and f.bits <= 8]
INT_SMALL = [numfmt.get(n) for n in ("int8", "uint8", "int4", "uint2")]


def _pairs_and_inputs(f):
    v = f.finite_values()
    lo, hi = v[:-1], v[1:]
    j = np.arange(1, 8)[:, None]
    x = (lo + (hi - lo) * j / 8).ravel()          # exact in float64: hi - lo is a power of 2
    return x, np.tile(lo, 7), np.tile(hi, 7)


@pytest.mark.parametrize("f", EIGHT_BIT + INT_SMALL, ids=str)
def test_unbiased_exactly_and_the_rule_is_followed_for_every_element(f):
    x, lo, hi = _pairs_and_inputs(f)
    seed = 20261201
    got = numfmt.round_to(x, f, rounding="stochastic", seed=seed)
    u = uniforms(seed, 0, x.size)
    for xi, li, hi_, ui, gi in zip(x, lo, hi, u, got):
        near, far = (li, hi_) if xi > 0 else (hi_, li)       # the neighbour nearer zero
        frac = (Fraction(xi) - Fraction(near)) / (Fraction(far) - Fraction(near))
        p_far = Fraction(math.ceil(frac * 2**53), 2**53)      # the documented probability
        assert p_far == frac                                  # frac is a multiple of 2**-53
        assert Fraction(near) + p_far * (Fraction(far) - Fraction(near)) == Fraction(xi)  # E=x
        assert gi == (far if Fraction(ui) < frac else near)
    exact = numfmt.round_to(f.finite_values(), f, rounding="stochastic", seed=seed)
    assert np.array_equal(exact, f.finite_values())          # values of the format stay


@pytest.mark.parametrize("frac", [0.1, 0.25, 0.5, 0.875])
def test_draws_go_up_with_the_documented_frequency(frac):
    n = 200_000
    x = np.full(n, 1.0 + frac * 2.0**-10)                     # fp16: spacing 2**-10 at 1
    got = numfmt.round_to(x, "fp16", rounding="stochastic", seed=5)
    ups = int((got > 1.0).sum())
    sigma = math.sqrt(n * frac * (1 - frac))
    assert abs(ups - n * frac) < 5 * sigma


def test_uniforms_are_uniform_and_independent_of_the_counter_offset():
    u = uniforms(99, 0, 400_000)
    hist, _ = np.histogram(u, bins=20, range=(0.0, 1.0))
    expected = u.size / 20
    chi2 = float(((hist - expected) ** 2 / expected).sum())
    assert chi2 < 50                                          # 19 dof: p ~ 1e-4
    assert abs(float(np.corrcoef(u[:-1], u[1:])[0, 1])) < 0.01
    assert np.array_equal(uniforms(99, 1000, 10), u[1000:1010])
    assert np.array_equal(uniforms(99, 0, 1000, torch).numpy(), u[:1000])


def test_same_seed_same_bits_numpy_torch_threads_and_chunking():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(300_001, generator=g, dtype=torch.float64) * 3
    want = numfmt.round_to(x.numpy(), "bf16", rounding="stochastic", seed=42)
    saved = torch.get_num_threads()
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            got = numfmt.round_to(x, "bf16", rounding="stochastic", seed=42)
            assert np.array_equal(got.numpy(), want)
    finally:
        torch.set_num_threads(saved)
    other = numfmt.round_to(x.numpy(), "bf16", rounding="stochastic", seed=43)
    assert not np.array_equal(other, want)
    two_d = numfmt.round_to(x[:300_000].view(300, 1000), "bf16", rounding="stochastic", seed=42)
    assert np.array_equal(two_d.flatten().numpy(), want[:300_000])


def test_generators_and_argument_errors():
    a = numfmt.round_to(np.full(1000, 1.3), "fp8_e5m2", rounding="stochastic",
                        generator=np.random.default_rng(3))
    b = numfmt.round_to(np.full(1000, 1.3), "fp8_e5m2", rounding="stochastic",
                        generator=np.random.default_rng(3))
    assert np.array_equal(a, b) and len(set(a.tolist())) == 2
    g = torch.Generator().manual_seed(1)
    c = numfmt.round_to(torch.full((1000,), 1.3), "fp8_e5m2", rounding="stochastic", generator=g)
    d = numfmt.round_to(torch.full((1000,), 1.3), "fp8_e5m2", rounding="stochastic", generator=g)
    assert not torch.equal(c, d)                              # the generator advanced
    with pytest.raises(ValueError, match="not both"):
        numfmt.round_to(1.0, "fp16", rounding="stochastic", seed=1, generator=g)
    with pytest.raises(ValueError, match="belong to rounding='stochastic'"):
        numfmt.round_to(1.0, "fp16", seed=1)
    with pytest.raises(ValueError, match="seed must be an int"):
        numfmt.round_to(1.0, "fp16", rounding="stochastic", seed=1.5)


def test_stochastic_overflow_meets_the_rule_and_big_ints_round_once():
    x = np.full(4000, 452.0)                                  # e4m3fn: 448 or the next step
    got = numfmt.round_to(x, "e4m3fn", rounding="stochastic", seed=9)
    assert set(np.unique(got[~np.isnan(got)]).tolist()) == {448.0} and np.isnan(got).any()
    sat = numfmt.round_to(x, "e4m3fn", rounding="stochastic", seed=9, overflow="saturate")
    assert (sat == 448.0).all()
    big = np.array([2**62 + 2**38], dtype=np.int64)            # a tie in fp32, beyond float64's
    r = {float(numfmt.round_to(big, "fp32", rounding="stochastic", seed=s)[0]) for s in range(40)}
    assert r == {2.0**62, 2.0**62 + 2.0**39}
