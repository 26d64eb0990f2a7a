"""numfmt.informat against torch's own ops in the dtype, exact Fractions, and softmax_safety."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import torch

import numfmt
from numfmt.exact import next_up, round_exact
from numfmt.informat import (cross_entropy_in_format, exp_in_format, round_with_overflow,
                             softmax_in_format, sum_in_format)


def _logits(name, shape=(500, 10), scale=4.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    return numfmt.round_to(torch.randn(*shape, generator=g, dtype=torch.float64) * scale, name)


@pytest.mark.parametrize("name", ["fp16", "bf16", "fp32"])
def test_torch_model_sum_is_torch_sum_in_the_dtype(name):
    f = numfmt.get(name)
    z = _logits(name).abs() * 100
    got, over = sum_in_format(z, f)
    want = z.to(f.torch_dtype).sum(dim=-1).double()
    assert torch.equal(got, want) and torch.equal(over, ~torch.isfinite(want))


@pytest.mark.parametrize("name", ["fp16", "bf16"])
def test_softmax_is_torch_step_by_step_and_close_to_torch_softmax(name):
    """exp, sum and divide run by torch in the dtype give the same bits. torch.softmax keeps
    z - max and the intermediates in float32: the in-format difference z - max is rounded to
    the format (relative error 2**-(m+1)), which moves exp by up to |z - max| * 2**-(m+1), plus
    a few roundings of exp, sum and quotient."""
    f = numfmt.get(name)
    z = _logits(name).to(f.torch_dtype)
    p, bad = softmax_in_format(z, f)
    e = torch.exp(z - z.max(dim=-1, keepdim=True).values)
    steps = (e / e.sum(dim=-1, keepdim=True)).double()
    assert not bad.any()
    assert (p != steps).sum() <= 2                    # torch's exp misrounds a rare input
    ref = torch.softmax(z, dim=-1).double()
    spread = (z - z.max(dim=-1, keepdim=True).values).double().abs()
    bound = ref * (spread + 4) * 2.0 ** -f.mantissa_bits + 2 * f.smallest_subnormal
    assert ((p - ref).abs() <= bound).all()


@pytest.mark.parametrize("name", ["bf16", "fp8_e4m3fn", "fp16"])
def test_exact_model_is_the_fraction_sum_rounded_once(name):
    f = numfmt.get(name)
    g = torch.Generator().manual_seed(3)
    mags = torch.exp(torch.randn(200, 7, generator=g, dtype=torch.float64) * 8)
    x = numfmt.round_to(mags, f, overflow="saturate").double()
    got, over = sum_in_format(x, f, accumulation="exact")
    for i in range(x.shape[0]):
        total = sum((Fraction(float(v)) for v in x[i]), Fraction(0))
        r = round_exact(total, f)
        if r > f.max_exact:
            assert over[i]
        else:
            assert not over[i] and got[i].item() == float(r)


def test_exact_model_handles_rows_float64_cannot_sum_exactly():
    f = numfmt.get("fp32")
    x = torch.tensor([[2.0**100, 1.0, -2.0**100, 2.0**-140], [1.0, 2.0**-60, 0.0, 0.0]],
                     dtype=torch.float64)
    got, _ = sum_in_format(x, f, accumulation="exact")
    assert got.tolist() == [1.0, 1.0]
    # 1 + 2**-24 is a tie in fp32 only without the 2**-149 behind it
    y = torch.tensor([[1.0, 2.0**-24, 2.0**-149]], dtype=torch.float64)
    assert sum_in_format(y, f, accumulation="exact")[0].item() == 1.0 + 2.0**-23


def test_sequential_model_is_the_left_to_right_loop():
    f = numfmt.get("fp16")
    x = torch.tensor([[2048.0] + [1.0] * 9, [1.0] * 9 + [2048.0]], dtype=torch.float64)
    got, _ = sum_in_format(x, f, accumulation="sequential")
    assert got.tolist() == [2048.0, 2056.0]      # 2048 + 1 ties back to 2048; 9 + 2048 = 2057 -> 2056
    assert sum_in_format(x, f, accumulation="exact")[0].tolist() == [2056.0, 2056.0]


@pytest.mark.parametrize("name,n,model", [
    (name, n, model) for model in numfmt.ACCUMULATIONS
    for name, n in (("fp16", 10), ("bf16", 1000), ("fp8_e4m3fn", 10), ("fp16", 32000),
                    ("fp6_e3m2fn", 3))
    if not (model == "sequential" and n > 1000)])      # a Python loop over the classes
def test_overflow_means_what_softmax_safety_says(name, n, model):
    """n logits at naive_max_logit do not overflow, at the next value up they do: the same
    accumulation model in both places."""
    f = numfmt.get(name)
    L = numfmt.softmax_safety(f, n, accumulation=model).naive_max_logit
    for logit, overflows in ((L, False), (float(next_up(L, f)), True)):
        z = torch.full((2, n), logit, dtype=torch.float64)
        _, bad = softmax_in_format(z, f, stable=False, accumulation=model)
        assert bad.tolist() == [overflows, overflows], (logit, model)


def test_stable_softmax_never_overflows_and_gives_the_prob_zero_spread():
    f = numfmt.get("fp16")
    d = numfmt.softmax_safety(f, 10).stable_prob_zero_spread
    for spread, nonzero in ((d, True), (float(next_up(d, f)), False)):
        z = torch.zeros(1, 10, dtype=torch.float64)
        z[0, -1] = -spread
        p, bad = softmax_in_format(z, f)
        assert not bad.any() and (p[0, -1] > 0) == nonzero


def test_exp_and_round_with_overflow_flag_saturating_formats():
    e, over = exp_in_format(torch.tensor([0.0, 1.0, 2.0, 3.0]), "fp4_e2m1fn")
    assert e.tolist() == [1.0, 3.0, 6.0, 6.0] and over.tolist() == [False, False, True, True]
    r, over = round_with_overflow(torch.tensor([7.0, 6.9, -8.0, float("nan")]), "fp8_e4m3fn")
    assert over.tolist() == [False, False, False, True]
    # -128.5 is a tie that rounds to the even -128, inside int8; -128.51 rounds to -129.
    r, over = round_with_overflow(torch.tensor([127.4, 127.5, -128.5, -128.51]), "int8")
    assert r.tolist() == [127.0, 127.0, -128.0, -128.0]
    assert over.tolist() == [False, True, False, True]


def test_cross_entropy_against_float64_and_checks_its_inputs():
    z = _logits("fp32", shape=(100, 10))
    labels = torch.arange(100) % 10
    got = cross_entropy_in_format(z, labels, "fp64")
    want = torch.nn.functional.cross_entropy(z, labels, reduction="none")
    assert torch.allclose(got, want, rtol=1e-12, atol=1e-12)
    f16 = cross_entropy_in_format(numfmt.round_to(z, "fp16"), labels, "fp16")
    assert torch.allclose(f16, want, atol=0.02)
    assert torch.equal(numfmt.round_to(f16, "fp16").double(), f16)
    with pytest.raises(ValueError, match="labels must lie"):
        cross_entropy_in_format(z, labels + 5, "fp16")
    with pytest.raises(ValueError, match="labels must be an integer tensor"):
        cross_entropy_in_format(z, labels[:5], "fp16")
    with pytest.raises(TypeError, match="torch.Tensor"):
        softmax_in_format(np.zeros((2, 3)), "fp16")
    with pytest.raises(ValueError, match="accumulation must be one of"):
        sum_in_format(z, "fp16", accumulation="kahan")


def test_inputs_are_not_modified_and_dim_is_honoured():
    z = _logits("bf16", shape=(4, 6, 3))
    before = z.clone()
    p, bad = softmax_in_format(z, "bf16", dim=1)
    assert torch.equal(z, before) and p.shape == z.shape and bad.shape == (4, 3)
    assert torch.allclose(p.sum(dim=1), torch.ones(4, 3, dtype=torch.float64), atol=0.05)
    assert not math.isnan(float(p.sum()))


def test_stable_softmax_shift_below_the_range_is_not_a_failure_when_exp_flushes_it():
    # fp6_e2m3fn: max 7.5, and exp(-7.5) = 5.5e-4 is far below its smallest value 0.125, so a
    # shifted logit clamped at -7.5 gives the same exact 0 as the true -20; the row is fine.
    import math
    import torch
    from numfmt.informat import softmax_in_format

    z = torch.tensor([[7.5, -7.5, 0.0]], dtype=torch.float64)   # shift -15 clamps to -7.5
    p, bad = softmax_in_format(z, "fp6_e2m3fn", stable=True)
    assert not bool(bad[0])
    assert float(p[0, 1]) == 0.0 and math.exp(-15) < 0.125 / 2
    # In an unsigned format a negative shifted logit cannot be held at all: that row fails.
    _, bad_u = softmax_in_format(torch.tensor([[3.0, 1.0]]), "uint8", stable=True)
    assert bool(bad_u[0])


@pytest.mark.parametrize("fmt, inside, outside", [
    ("int8", [-128.0, -128.4, 127.0, 127.49], [-128.6, 127.5, 128.0]),
    ("uint8", [0.0, -0.5, 255.0], [-0.51, -1.0, 255.5]),
    ("fp16", [-65504.0, 65519.0], [-65520.0, 65520.0]),
])
def test_round_with_overflow_knows_both_ends_of_the_range(fmt, inside, outside):
    # Expected from the formats' integer / IEEE ranges and round-half-even at the limits.
    import torch
    from numfmt.informat import round_with_overflow

    _, over = round_with_overflow(torch.tensor(inside + outside, dtype=torch.float64), fmt)
    assert over.tolist() == [False] * len(inside) + [True] * len(outside)
