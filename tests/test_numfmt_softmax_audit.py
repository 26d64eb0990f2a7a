"""Softmax limits simulated with numpy's own IEEE arithmetic; the backend audit on small formats."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

import numfmt
from numfmt.audit import audit_exp, audit_inputs, correct_exp


def _naive_softmax_fp16_all_equal(logit: float, n: int) -> np.ndarray:
    """n equal logits, exp correctly rounded, sum and divide in numpy float16 (each op is
    correctly rounded: float16 ops run in float32, which holds 2p+2 bits)."""
    e = np.float16(numfmt.exp_rounded(logit, "fp16"))
    s = np.float16(0)
    with np.errstate(over="ignore", invalid="ignore"):
        for _ in range(n):
            s = np.float16(s + e)
        return np.array([e, s] + [e / s] * n, dtype=np.float16)


@pytest.mark.parametrize("n", [1, 2, 10, 1000])
def test_naive_softmax_limit_fp16(n):
    s = numfmt.softmax_safety("fp16", n)
    ok = _naive_softmax_fp16_all_equal(s.naive_max_logit, n)
    assert np.isfinite(ok).all() and (ok > 0).all()
    up = float(np.nextafter(np.float16(s.naive_max_logit), np.float16(np.inf)))
    bad = _naive_softmax_fp16_all_equal(up, n)
    # the sum overflows; e / inf then gives probabilities of exactly 0 (or NaN if exp did)
    assert not np.isfinite(bad[:2]).all() and not (bad[2:] > 0).any()


@pytest.mark.parametrize("n", [2, 10, 100])
def test_stable_softmax_spread_limit_fp16(n):
    s = numfmt.softmax_safety("fp16", n)
    total = np.float16(0)
    for _ in range(n):
        total = np.float16(total + np.float16(1))

    def p(spread: float) -> np.float16:
        return np.float16(np.float16(numfmt.exp_rounded(-spread, "fp16")) / total)

    assert p(s.stable_prob_zero_spread) > 0
    nxt = float(np.nextafter(np.float16(s.stable_prob_zero_spread), np.float16(np.inf)))
    assert p(nxt) == 0
    assert s.stable_zero_spread == -numfmt.exp_bounds("fp16").min_arg
    assert s.stable_prob_zero_spread <= s.stable_zero_spread


def test_naive_limit_fp32_against_numpy_float32():
    n = 10
    s = numfmt.softmax_safety("fp32", n)
    for logit, finite in ((s.naive_max_logit, True),
                          (float(np.nextafter(np.float32(s.naive_max_logit), np.float32(1e9))),
                           False)):
        e = np.float32(numfmt.exp_rounded(logit, "fp32"))
        acc = np.float32(0)
        with np.errstate(over="ignore"):
            for _ in range(n):
                acc = np.float32(acc + e)
        assert math.isfinite(acc) == finite


def test_int8_naive_softmax_limit():
    # exp(2) = 7.39 -> 7, ten of them 70 <= 127; exp(3) = 20.1 -> 20, ten of them 200 > 127
    assert numfmt.softmax_safety("int8", 10).naive_max_logit == 2.0


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_softmax_safety_rejects_bad_class_counts(bad):
    with pytest.raises(ValueError, match="number of classes"):
        numfmt.softmax_safety("fp16", bad)


def test_correct_exp_reference_agrees_with_exact_rounding():
    f = numfmt.get("bf16")
    x = f.finite_values()[::97]
    want = np.array([numfmt.exp_rounded(v, f) for v in x])
    got = correct_exp(f, x)
    assert np.array_equal(np.isnan(got), np.isnan(want))
    assert np.array_equal(got[~np.isnan(got)], want[~np.isnan(want)])


@pytest.mark.parametrize("name,backend", [("fp16", "numpy"), ("bf16", "ml_dtypes"),
                                          ("fp8_e4m3fn", "ml_dtypes"), ("fp16", "torch")])
def test_audit_exhaustive_small_formats(name, backend):
    a = audit_exp(name, backend)
    f = numfmt.get(name)
    assert a.exhaustive and a.tested == f.finite_values().size
    # The measured bounds are what the backend does: re-measure directly
    x = f.finite_values()
    with np.errstate(all="ignore"):
        if backend == "torch":
            import torch
            got = torch.exp(torch.from_numpy(x).to(f.torch_dtype)).double().numpy()
        else:
            got = np.exp(x.astype(f.numpy_dtype)).astype(np.float64)
    assert a.max_arg == x[np.isfinite(got)].max()
    assert a.min_arg == x[got != 0].min()
    assert 0 <= a.mismatches < a.tested // 100


def test_audit_reports_missing_backends_as_none():
    assert audit_exp("tf32", "torch") is None
    assert audit_exp("bf16", "numpy") is None
    with pytest.raises(ValueError, match="unknown backend"):
        audit_exp("fp16", "jax")


def test_fp32_audit_inputs_cover_the_bounds():
    x, exhaustive = audit_inputs(numfmt.get("fp32"))
    b = numfmt.exp_bounds("fp32")
    assert not exhaustive
    for bound in (b.max_arg, b.min_arg, b.min_normal_arg):
        assert bound in x
        assert float(np.nextafter(np.float32(bound), np.float32(np.inf))) in x


def test_no_safe_logit_is_nan_not_a_value_outside_the_format():
    """uint8 with 256 classes: 256 copies of exp(0) = 1 already overflow 255."""
    assert math.isnan(numfmt.softmax_safety("uint8", 256).naive_max_logit)
    assert math.isnan(numfmt.softmax_safety("uint16", 65536).naive_max_logit)
    assert numfmt.softmax_safety("uint8", 255).naive_max_logit == 0.0     # 255 ones fit


@pytest.mark.parametrize("name", ["fp16", "bf16", "fp8_e4m3fn", "fp8_e5m2", "fp4_e2m1fn", "int8",
                                  "uint16", "tf32"])
def test_batched_running_sum_equals_the_step_by_step_one(name):
    """softmax_safety's running sum takes many steps at once; a plain loop of rounded
    additions (independent reference) must give the same sum or the same overflow."""
    from numfmt.exact import round_exact
    from numfmt.softmax import _sum_in_format
    f = numfmt.get(name)

    def step_by_step(v, n):
        s = Fraction(0)
        for _ in range(n):
            s = round_exact(s + v, f)
            if s > f.max_exact:
                return None
        return s

    vals = [Fraction(v) for v in (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 3.0, 0.1, 7.0, 100.0)]
    vals = [round_exact(v, f) for v in vals]
    for v in vals:
        for n in (1, 2, 5, 17, 300, 2500):
            assert _sum_in_format(v, n, f) == step_by_step(v, n), (v, n)
