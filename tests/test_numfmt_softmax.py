"""softmax_safety under each accumulation model, against torch itself (brute force), numpy's own
float16 arithmetic, a step-by-step loop and exact Fractions."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import torch

import numfmt
from numfmt.exact import next_up, round_exact
from numfmt.softmax import sum_of_terms


def _torch_sum_finite(logit: float, n: int, dtype) -> bool:
    z = torch.full((n,), logit, dtype=dtype)
    return bool(torch.isfinite(torch.exp(z).sum()))


def _bisect_codes(values: np.ndarray, ok) -> float:
    """The largest entry of the ascending ``values`` with ok(v), for ok true below a cut."""
    lo, hi = 0, len(values) - 1
    assert ok(values[lo]) and not ok(values[hi])
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if ok(values[mid]):
            lo = mid
        else:
            hi = mid
    return float(values[lo])


@pytest.mark.parametrize("name,n", [("fp16", 10), ("fp16", 32000), ("fp16", 10**6),
                                    ("bf16", 1000), ("bf16", 128000), ("bf16", 10**6)])
def test_naive_limit_is_what_torch_exp_sum_does(name, n):
    """Brute force: torch.exp(z).sum() in the dtype, bisected over the format's values of L."""
    f = numfmt.get(name)
    dtype = f.torch_dtype
    v = f.finite_values()
    v = v[(v > -20) & (v < 100)]
    want = _bisect_codes(v, lambda L: _torch_sum_finite(float(L), n, dtype))
    assert numfmt.softmax_safety(f, n).naive_max_logit == want
    assert numfmt.softmax_safety(f, n, accumulation="torch").naive_max_logit == want


def test_the_issue_cases_torch_overflows_where_sequential_calls_it_safe():
    for name, n, logit in (("bf16", 1000, 82.0), ("bf16", 128000, 82.0), ("fp16", 32000, 2.77)):
        L = float(numfmt.round_to(logit, name))
        assert not _torch_sum_finite(L, n, numfmt.get(name).torch_dtype)
        assert numfmt.softmax_safety(name, n, accumulation="sequential").naive_max_logit >= L
        assert numfmt.softmax_safety(name, n).naive_max_logit < L


@pytest.mark.parametrize("n", [10, 10**5, 10**6])
def test_fp32_naive_limit_is_what_torch_float32_sum_does(n):
    s = numfmt.softmax_safety("fp32", n).naive_max_logit
    up = float(np.nextafter(np.float32(s), np.float32(np.inf)))
    assert _torch_sum_finite(s, n, torch.float32) and not _torch_sum_finite(up, n, torch.float32)


def _torch_stable_prob(spread: float, n: int, dtype) -> float:
    z = torch.zeros(n, dtype=dtype)
    z[-1] = -spread
    e = torch.exp(z - z.max())
    return float((e / e.sum())[-1])


@pytest.mark.parametrize("name,n", [("fp16", 2), ("fp16", 10), ("fp16", 1000), ("bf16", 10),
                                    ("bf16", 10**5)])
def test_stable_prob_spread_is_what_torch_softmax_steps_do(name, n):
    """Brute force in torch: n - 1 logits at the max and one at -spread; exp, sum, divide in
    the dtype. The last spread with p > 0, bisected over the format's values."""
    f = numfmt.get(name)
    v = f.finite_values()
    v = v[(v >= 0) & (v < 200)]
    want = _bisect_codes(v, lambda d: _torch_stable_prob(float(d), n, f.torch_dtype) > 0)
    got = numfmt.softmax_safety(f, n).stable_prob_zero_spread
    assert got == want
    assert _torch_stable_prob(got, n, f.torch_dtype) > 0
    assert _torch_stable_prob(float(next_up(got, f)), n, f.torch_dtype) == 0


def test_the_issue_numbers_fp16_ten_classes_and_fp4_two_classes():
    """numpy float16 arithmetic (every op correctly rounded): sum (n-1) ones + e, divide."""
    def p16(spread: float, n: int) -> float:
        e = np.float16(numfmt.exp_rounded(-spread, "fp16"))
        s = np.float16(np.float32(n - 1) + np.float32(e))
        return float(np.float16(np.float32(e) / np.float32(s)))

    assert p16(15.0, 10) == 2.0**-24 and p16(15.125, 10) > 0 and p16(15.1328125, 10) == 0
    for model in numfmt.ACCUMULATIONS:
        assert numfmt.softmax_safety("fp16", 10, accumulation=model).stable_prob_zero_spread \
            == 15.125
    # fp4 e2m1, 2 classes: spread 1 gives exp(-1) -> 0.5, sum 1.5, p = 1/3 -> 0.5; spread 1.5
    # gives exp(-1.5) = 0.22 -> 0 (below half of 0.5)
    assert numfmt.softmax_safety("fp4_e2m1fn", 2).stable_prob_zero_spread == 1.0


def _loop_sum(terms, f):
    s = Fraction(0)
    for v, c in terms:
        for _ in range(c):
            s = round_exact(s + v, f)
            if s > f.max_exact:
                return None
    return s


@pytest.mark.parametrize("name", ["fp16", "bf16", "fp8_e4m3fn", "fp8_e5m2", "fp4_e2m1fn", "int8",
                                  "uint16", "tf32"])
def test_sequential_sum_equals_the_step_by_step_loop(name):
    """The binade-at-a-time sum against a plain loop of rounded additions (independent)."""
    f = numfmt.get(name)
    vals = [round_exact(Fraction(v), f) for v in (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 3.0, 0.1, 7.0,
                                                  100.0, 0.3, 2.5)]
    for v in vals:
        for n in (1, 2, 5, 17, 300, 2500):
            assert sum_of_terms([(v, n)], f, "sequential") == _loop_sum([(v, n)], f), (v, n)
            start = [(Fraction(1), 3), (v, n)]          # ties whose parity changes after a step
            assert sum_of_terms(start, f, "sequential") == _loop_sum(start, f), (v, n)


@pytest.mark.parametrize("name", ["fp16", "bf16", "fp8_e5m2", "fp32", "int8"])
def test_exact_and_torch_models_against_fractions(name):
    f = numfmt.get(name)
    fp32 = numfmt.get("fp32")
    rng = np.random.default_rng(5)
    for _ in range(50):
        v = round_exact(Fraction(float(rng.exponential(3.0))), f)
        n = int(rng.integers(1, 10**6))
        total = v * n
        want_exact = round_exact(total, f)
        want_exact = None if want_exact > f.max_exact else want_exact
        assert sum_of_terms([(v, n)], f, "exact") == want_exact
        acc = round_exact(total, fp32) if f.is_float else total
        want_torch = None if acc > fp32.max_exact else round_exact(acc, f)
        if want_torch is not None and want_torch > f.max_exact:
            want_torch = None
        assert sum_of_terms([(v, n)], f, "torch") == want_torch


def test_every_n_up_to_2_31_answers_and_the_models_are_named():
    for name in ("fp16", "bf16", "fp32", "fp64", "fp8_e4m3fn", "int32"):
        for n in (1, 7, 65504, 10**9, 2**31):
            for model in numfmt.ACCUMULATIONS:
                s = numfmt.softmax_safety(name, n, accumulation=model)
                assert s.num_classes == n and s.accumulation == model
    with pytest.raises(ValueError, match="accumulation must be one of"):
        numfmt.softmax_safety("fp16", 10, accumulation="pairwise")


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_softmax_safety_rejects_bad_class_counts(bad):
    with pytest.raises(ValueError, match="num_classes must be a positive int"):
        numfmt.softmax_safety("fp16", bad)


def test_n_is_a_deprecated_alias():
    with pytest.warns(DeprecationWarning):
        s = numfmt.softmax_safety("fp16", n=1000)
    assert s.num_classes == s.n == 1000


def test_int8_naive_softmax_limit():
    # exp(2) = 7.39 -> 7, ten of them 70 <= 127; exp(3) = 20.1 -> 20, ten of them 200 > 127
    s = numfmt.softmax_safety("int8", 10)
    assert s.naive_max_logit == 2 and isinstance(s.naive_max_logit, int)


def test_no_safe_logit_is_nan_not_a_value_outside_the_format():
    """uint8 with 256 classes: 256 copies of exp(0) = 1 already overflow 255."""
    assert math.isnan(numfmt.softmax_safety("uint8", 256).naive_max_logit)
    assert math.isnan(numfmt.softmax_safety("uint16", 65536).naive_max_logit)
    assert numfmt.softmax_safety("uint8", 255).naive_max_logit == 0     # 255 ones fit


def test_zero_spread_is_minus_min_arg_and_bounds_the_prob_spread():
    for f in numfmt.formats():
        s = numfmt.softmax_safety(f, 10)
        if f.lowest > 0:    # no zero (E8M0): no difference z - max exists
            assert math.isnan(s.stable_zero_spread) and math.isnan(s.stable_prob_zero_spread)
            continue
        assert s.stable_zero_spread == -numfmt.exp_bounds(f).min_arg
        assert not math.copysign(1, s.stable_zero_spread) < 0
        assert math.isnan(s.stable_prob_zero_spread) or \
            s.stable_prob_zero_spread <= s.stable_zero_spread
