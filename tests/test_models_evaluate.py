"""models.evaluation (models.evaluate): identities against exact references."""

from __future__ import annotations

import math
from fractions import Fraction

import numfmt
import pytest
import torch

from models.evaluation import (ENCODINGS, RESULT_KEYS, default_targets, evaluate, evaluate_all,
                             run_in_format, softmax_in_format, weight_bytes)
from models.softmax_regression import SoftmaxRegression
from models.config import TrainConfig
from models.training import Trainer

FLOATS = [f.name for f in numfmt.formats() if f.is_float and f.signed and f.has_zero]
HELD = {"tf32": "fp32"}  # TF32 results are FP32


def trained(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(4, 30, generator=g) * 2
    y = torch.randint(0, 4, (600,), generator=g)
    x = (centers[y] + torch.randn(600, 30, generator=g)).sigmoid()  # features in (0, 1)
    m = SoftmaxRegression(30, 4)
    Trainer(TrainConfig(epochs=5, lr=0.5, batch_size=32)).fit(m, x[:400], y[:400])
    return m, x[400:], y[400:]


@pytest.fixture(scope="module")
def model_and_data():
    return trained()


def one_logit_model(logits: list[float], dtype=torch.float64) -> SoftmaxRegression:
    """A model whose logits for the input x = [1] are exactly ``logits`` (W = logits, b = 0)."""
    m = SoftmaxRegression(1, len(logits), dtype=dtype)
    with torch.no_grad():
        m.linear.weight.copy_(torch.tensor(logits, dtype=dtype)[:, None])
    return m


# ---- identities ------------------------------------------------------------------------------
def test_fp64_is_the_plain_float64_computation(model_and_data):
    m, x, y = model_and_data
    r = evaluate(m, "fp64", x, y)
    with torch.no_grad():
        z = x.double() @ m.linear.weight.double().T + m.linear.bias.double()
    assert r.accuracy == (z.argmax(1) == y).double().mean().item()
    assert r.agreement_fp64 == 1.0 and r.max_abs_prob_err == 0.0
    ce = (torch.logsumexp(z, 1) - z.gather(1, y[:, None])[:, 0]).mean().item()
    assert r.cross_entropy_in_format == pytest.approx(ce, rel=1e-12)
    assert r.cross_entropy_of_logits == pytest.approx(ce, rel=1e-12)
    assert r.weight_bytes == 8 * (30 * 4 + 4)


def test_fp32_agrees_with_fp64_and_with_torch(model_and_data):
    m, x, y = model_and_data
    r = evaluate(m, "fp32", x, y)
    assert r.agreement_fp64 >= 0.999
    out = run_in_format(m, x, torch.float32)  # dtypes are accepted as formats
    with torch.no_grad():
        p = torch.softmax(x.float() @ m.linear.weight.T + m.linear.bias, 1).double()
    torch.testing.assert_close(out.probs, p, rtol=0, atol=4e-7)
    assert r.max_abs_prob_err < 1e-5


def test_result_keys_are_exact(model_and_data):
    m, x, y = model_and_data
    d = evaluate(m, "bf16", x, y).to_dict()
    assert tuple(d) == RESULT_KEYS
    assert d["format"] == "bf16" and isinstance(d["weight_bytes"], int)


@pytest.mark.parametrize("name", FLOATS)
def test_naive_softmax_overflows_exactly_past_numfmts_exp_bound(name):
    # Logit 0 is L, the others the format's lowest value (exp gives exactly 0): the naive
    # softmax overflows iff exp(L) does, iff L > exp_bounds(...).max_arg (proven by numfmt).
    f = numfmt.get(name)
    held = numfmt.get(HELD.get(name, name))
    bound = numfmt.exp_bounds(held).max_arg
    # the input format's values on either side of the bound (for TF32 the weights are TF32,
    # the logits and the softmax FP32)
    below = numfmt.round_exact(Fraction(bound), f, "floor")
    above = numfmt.next_up(below, f)
    assert below <= bound < above
    for logit, overflows in ((float(below), False), (float(above), True)):
        m = one_logit_model([logit] + [f.lowest] * 9)
        out = run_in_format(m, torch.ones(1, 1, dtype=torch.float64), name)
        assert out.logits[0, 0].item() == logit
        assert bool(out.naive_failed[0]) is overflows, (name, logit)
        # The stable softmax does not fail: lowest - L may round below the range (-inf or
        # clamped to lowest), but exp of the format's lowest is already exactly 0 here, as
        # exp of the true shifted logit is (checked from numfmt's proven underflow bound).
        assert numfmt.exp_bounds(held).min_arg > held.lowest
        assert not bool(out.stable_failed[0]), (name, logit)
        assert out.probs[0, 0].item() == 1.0


@pytest.mark.parametrize("name", ["fp32", "bf16", "fp16", "fp8_e4m3fn", "fp8_e5m2", "fp4_e2m1fn"])
def test_naive_softmax_sum_overflow_matches_numfmts_softmax_safety(name):
    # Ten equal logits L: the sum of ten exp(L) (torch's accumulation, the default of both)
    # stays finite iff L <= softmax_safety(...).naive_max_logit (numfmt's exact computation).
    f = numfmt.get(name)
    limit = numfmt.softmax_safety(f, 10).naive_max_logit
    for logit, overflows in ((limit, False), (float(numfmt.next_up(limit, f)), True)):
        z = torch.full((1, 10), logit, dtype=torch.float64)
        p, failed = softmax_in_format(z, f, stable=False)
        assert bool(failed[0]) is overflows, (name, logit)
        _, failed = softmax_in_format(z, f, stable=True)
        # stable: ten exp(0) = 1 summed (exactly 10 in float32) then rounded into the format:
        # it overflows iff 10 reaches max + ulp(max)/2 (only fp4_e2m1fn, max 6, here)
        top = Fraction(f.max)
        assert bool(failed[0]) is (10 >= top + (top - Fraction(numfmt.next_down(f.max, f))) / 2)


def test_softmax_in_format_rounds_every_operation():
    # Three logits in bf16, every op rounded: compare with a hand computation in exact
    # rationals rounded by numfmt's independent exact rounding (round_exact).
    import mpmath
    z = [0.5, -1.25, 2.0]
    f = numfmt.get("bf16")
    p, _ = softmax_in_format(torch.tensor([z], dtype=torch.float64), f, stable=False,
                             accumulation="sequential")

    def rnd(q):
        return numfmt.round_exact(Fraction(q), f)

    def exact(v: float) -> Fraction:  # exp(v) to 200 bits, as a Fraction
        with mpmath.workprec(200):
            man, exp = mpmath.exp(mpmath.mpf(v)).man_exp
        return Fraction(int(man)) * Fraction(2) ** int(exp)

    e = [rnd(exact(v)) for v in z]
    s = rnd(e[0] + e[1])
    s = rnd(s + e[2])
    want = [float(rnd(v / s)) for v in e]
    assert p[0].tolist() == want


def test_weight_bytes_follow_the_format_width():
    m = SoftmaxRegression()
    n = 784 * 10 + 10
    assert [weight_bytes(m, f) for f in ("fp64", "fp32", "tf32", "bf16", "fp8_e5m2",
                                         "fp6_e2m3fn", "fp4_e2m1fn")] == \
        [8 * n, 4 * n, 4 * n, 2 * n, n, math.ceil(n * 6 / 8), math.ceil(n / 2)]


def test_every_target_runs_and_saturating_formats_report_overflow(model_and_data):
    m, x, y = model_and_data
    results = evaluate_all(m, x, y)
    assert [r.format for r in results] == list(default_targets())
    assert set(ENCODINGS) <= set(default_targets()) and "int8" not in default_targets()
    by = {r.format: r for r in results}
    assert by["fp64"].agreement_fp64 == 1.0
    for r in results:
        assert 0.0 <= r.accuracy <= 1.0, r
        # a max-subtracted softmax fails only in formats too narrow for the row's spread or
        # for the sum of the exps (max below 32 here); never more often than the naive one
        if numfmt.get(r.format).max >= 32 if r.format in FLOATS else True:
            assert r.stable_softmax_overflow_share == 0.0, r
        if r.naive_softmax_overflow_share is not None:
            assert r.stable_softmax_overflow_share <= r.naive_softmax_overflow_share, r
    # INT8 weights: 1 byte per weight plus scales, FP32 bias
    assert by["scaled_int8_per_tensor"].weight_bytes == 120 + 4 + 4 * 4
    assert by["scaled_int8_per_channel"].weight_bytes == 120 + 4 * 4 + 4 * 4
    assert by["scaled_int8_per_channel"].accuracy >= by["fp32"].accuracy - 0.02


# ---- bad input -----------------------------------------------------------------------------
def test_errors(model_and_data):
    m, x, y = model_and_data
    with pytest.raises(ValueError, match="integer format"):
        evaluate(m, "int8", x, y)
    with pytest.raises(ValueError, match="unknown number format"):
        evaluate(m, "fp7", x, y)
    with pytest.raises(ValueError, match="labels must have shape"):
        evaluate(m, "fp32", x, y[:3])
    with pytest.raises(ValueError, match="labels must lie in"):
        evaluate(m, "fp32", x, y + 4)
    bad = SoftmaxRegression(30, 4)
    with torch.no_grad():
        bad.linear.weight[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN or infinity"):
        evaluate(bad, "fp32", x, y)
    with pytest.raises(TypeError, match="SoftmaxRegression"):
        evaluate(torch.nn.Linear(30, 4), "fp32", x, y)


def test_model_is_not_modified(model_and_data):
    m, x, y = model_and_data
    before = {k: v.clone() for k, v in m.state_dict().items()}
    x0 = x.clone()
    evaluate_all(m, x, y, ["fp8_e4m3fn", "scaled_int8_per_channel"])
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())
    assert torch.equal(x, x0)


def test_package_level_api(model_and_data):
    import models

    m, x, y = model_and_data
    assert models.evaluate(m, "fp16", x, y) == evaluate(m, "fp16", x, y)


def test_integer_only_matches_the_quant_pipeline_and_a_float_reference():
    """The integer_only entry is quant's integer pipeline: same predictions as calling it
    directly, probabilities within its proven bound of the float64 softmax of its own logits."""
    import quant

    g = torch.Generator().manual_seed(3)
    model = SoftmaxRegression(784, 10)
    with torch.no_grad():
        model.linear.weight.copy_(torch.randn(10, 784, generator=g) * 0.02)
        model.linear.bias.copy_(torch.randn(10, generator=g) * 0.1)
    images = torch.randint(0, 256, (64, 28, 28), generator=g, dtype=torch.uint8)
    labels = torch.randint(0, 10, (64,), generator=g)
    out = run_in_format(model, images, "integer_only")
    pipe = quant.quantize_softmax_regression(model.linear.weight.detach(),
                                             model.linear.bias.detach())
    x = images.reshape(64, -1)
    assert torch.equal(out.predictions, pipe.logit_codes(x).to(torch.int64).argmax(1))
    ref = torch.softmax(out.logits, dim=1)
    assert (out.probs - ref).abs().max().item() <= pipe.softmax.error_bound + 1e-12
    r = evaluate(model, "integer_only", images, labels)
    assert r.naive_softmax_overflow_share is None  # no naive softmax: not applicable
    assert r.to_dict()["naive_softmax_overflow_share"] is None
    assert r.weight_bytes == pipe.weight_bytes
    as_float = run_in_format(model, images.float() / 255, "integer_only")
    assert torch.equal(as_float.probs, out.probs)
    with pytest.raises(ValueError, match="float features in \\[0, 1\\]"):
        run_in_format(model, images.float(), "integer_only")


@pytest.mark.parametrize("name", ENCODINGS)
def test_encoded_inputs_do_not_depend_on_the_batch(name):
    """Static input quantization: one image gives the same logits alone or in a batch, also
    when its own largest pixel is below 255 (min-max per batch would change its scale)."""
    g = torch.Generator().manual_seed(3)
    m = SoftmaxRegression()
    torch.nn.init.normal_(m.linear.weight, std=0.05, generator=g)
    x = torch.randint(0, 256, (6, 28, 28), generator=g, dtype=torch.uint8)
    x[2] = x[2] // 2                                          # this image never reaches 255
    full = run_in_format(m, x, name).logits
    for i in range(x.shape[0]):
        assert torch.equal(run_in_format(m, x[i:i + 1], name).logits[0], full[i]), i


def test_wrong_feature_count_is_a_clear_error():
    m = SoftmaxRegression()
    with pytest.raises(ValueError, match="700 features per sample; the model takes 784"):
        run_in_format(m, torch.zeros(5, 700), "fp32")
    with pytest.raises(ValueError, match=r"\(N, \.\.\.\)"):
        run_in_format(m, torch.zeros(784), "fp32")
    with pytest.raises(ValueError, match="lr must be"):
        TrainConfig(lr=True)
