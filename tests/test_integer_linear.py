"""The integer softmax-regression pipeline against float references on small random models.

References: float64 torch (the float model and the quantized model's real-valued logits),
numpy int64 for the accumulators, exact fractions for the fixed-point multipliers.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from quant import fixedpoint
from quant.integer.linear import default_logit_scale, quantize_softmax_regression
from quant.integer.matmul import onednn_available


def _model(m: int, k: int, seed: int, spread: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(m, k, generator=g) * spread
    b = torch.randn(m, generator=g) * spread
    return w, b


def _pixels(n: int, k: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed + 1000)
    x = torch.randint(0, 256, (n, k), generator=g, dtype=torch.uint8)
    x[0] = 255
    if n > 1:
        x[1] = 0
    return x


@settings(max_examples=25, deadline=None)
@given(m=st.integers(2, 12), k=st.integers(1, 120), seed=st.integers(0, 10**6),
       spread=st.sampled_from([0.01, 0.1, 1.0, 5.0]), out=st.sampled_from(["uint8", "uint16"]),
       offset=st.sampled_from([0.0, -0.5]))
def test_pipeline_against_float_reference(m, k, seed, spread, out, offset) -> None:
    w, b = _model(m, k, seed, spread)
    x = _pixels(16, k, seed)
    pipe = quantize_softmax_regression(w, b, input_offset=offset, prob_dtype=out)
    s, top = pipe.logit_scale, pipe.softmax.prob_max

    # 1. The accumulators are the exact integer product of the stored codes (numpy int64).
    codes = pipe.weight.codes.numpy().astype(np.int64)
    acc = x.numpy().astype(np.int64) @ codes.T + np.array(pipe.bias_codes)
    np.testing.assert_array_equal(pipe.accumulators(x).numpy(), acc)

    # 2. The weight codes are W (input map folded in) rounded to the per-class step.
    w_eff = w.double() / 255
    s_w = torch.tensor(pipe.weight_scales, dtype=torch.float64)
    # (ScaledInt8 multiplies by a float32 reciprocal: a relative 2**-24 on 64 steps)
    assert ((pipe.weight.codes.double() * s_w[:, None] - w_eff).abs()
            <= s_w[:, None] * (0.5 + 64 * 2.0**-23)).all()
    assert (pipe.weight.codes.abs().amax(1) == pipe.weight_max).all()

    # 3a. The fixed-point logits are the real logits in steps of s, rounded (half a step),
    #     up to the multiplier's own rounding (2**-(shift+1) per accumulator unit).
    z = pipe.logits_fixed(x).double()
    y = torch.from_numpy(acc).double() * s_w            # real logits of the quantized model
    slack = (y / s).abs() * 2.0**-31 + 1e-6
    assert ((z - y / s).abs() <= 0.5 + slack).all()

    # 3b. The int8 logits are the quantized model's real logits relative to the row max, in
    #    steps of s, within one step (half a step each for the logit and the max), or
    #    saturated at -128 when further than 255 steps down.
    rel = (y - y.amax(1, keepdim=True)) / s
    q = pipe.logit_codes(x).to(torch.float64) - 127
    assert (q.amax(1) == 0).all()
    unsat = q > -255
    assert ((q - rel).abs()[unsat] <= 1 + 1e-6).all()
    assert (rel[~unsat] <= -254 + 1e-6).all()

    # 4. The probabilities are the integer softmax of those codes, bit for bit.
    p = pipe(x)
    assert torch.equal(p, pipe.softmax(pipe.logit_codes(x)))

    # 5. Against the float model itself: weight rounding moves each logit by at most
    #    s_w/2 * (sum of pixels + 1) (the +1 is the bias), requantization by s, saturation
    #    and the integer softmax as proven.
    feats = x.double() / 255 + offset
    p_float = torch.softmax(feats @ w.double().T + b.double(), 1)
    dw = (s_w[None, :] / 2) * (x.double().sum(1, keepdim=True) + 1)
    delta = (dw.amax(1) + s * (1 + 1e-9))[:, None]
    tol = (torch.exp(2 * delta) - 1) * p_float + (m - 1) * math.exp(-255 * s) \
        + pipe.softmax.error_bound
    assert ((p.double() / top - p_float).abs() <= tol + 1e-12).all()


def test_close_to_float_on_a_larger_model_and_all_backends_agree() -> None:
    w, b = _model(10, 784, seed=7, spread=0.05)
    x = torch.randint(0, 256, (500, 784), generator=torch.Generator().manual_seed(8),
                      dtype=torch.uint8)
    feats = x.double() / 255
    p_float = torch.softmax(feats @ w.double().T + b.double(), 1)
    pipe = quantize_softmax_regression(w, b)
    p = pipe(x).double() / 255
    assert (p - p_float).abs().mean() < 0.01
    assert (pipe.predict(x) == p_float.argmax(1)).double().mean() >= 0.95
    backends = ["int64", "int_mm"] + (["onednn"] if onednn_available() else [])
    outs = [quantize_softmax_regression(w, b, kernel=be)(x) for be in backends]
    assert all(torch.equal(o, outs[0]) for o in outs)
    assert pipe.kernel == ("onednn" if onednn_available() else "int_mm")


def test_weight_range_choices_agree_across_backends() -> None:
    w, b = _model(4, 50, seed=9)
    x = _pixels(20, 50, seed=9)
    for wmax in (127, 64, 5):
        ref = quantize_softmax_regression(w, b, weight_max=wmax, kernel="int64")
        assert ref.weight.codes.abs().max() == wmax
        for be in ["int_mm"] + (["onednn"] if onednn_available() else []):
            pipe = quantize_softmax_regression(w, b, weight_max=wmax, kernel=be)
            assert torch.equal(pipe(x), ref(x))
            if be == "onednn":
                assert pipe.weight.planes == (2 if wmax > 64 else 1)


def test_per_feature_input_map_is_folded() -> None:
    w, b = _model(3, 5, seed=11)
    a = torch.tensor([0.5, 1.0, 2.0, 0.25, 1.5]) / 255
    c = torch.tensor([0.1, -0.2, 0.0, 0.3, -1.0])
    x = _pixels(50, 5, seed=11)
    pipe = quantize_softmax_regression(w, b, input_scale=a, input_offset=c)
    p_float = torch.softmax((x.double() * a.double() + c.double()) @ w.double().T + b.double(), 1)
    assert (pipe(x).double() / 255 - p_float).abs().max() < 0.05
    assert (pipe.predict(x) == p_float.argmax(1)).double().mean() >= 0.9


def test_image_shaped_input_and_empty_batch() -> None:
    w, b = _model(10, 784, seed=12, spread=0.05)
    pipe = quantize_softmax_regression(w, b)
    x = torch.randint(0, 256, (4, 28, 28), generator=torch.Generator().manual_seed(0),
                      dtype=torch.uint8)
    assert torch.equal(pipe(x), pipe(x.reshape(4, 784)))
    empty = torch.zeros(0, 784, dtype=torch.uint8)
    assert pipe(empty).shape == (0, 10) and pipe.logit_codes(empty).shape == (0, 10)


def test_inputs_are_not_modified() -> None:
    w, b = _model(3, 8, seed=13)
    w0, b0 = w.clone(), b.clone()
    pipe = quantize_softmax_regression(w, b)
    x = _pixels(6, 8, seed=13)
    x0 = x.clone()
    pipe(x)
    pipe.accumulators(x)
    assert torch.equal(w, w0) and torch.equal(b, b0) and torch.equal(x, x0)


def test_weight_bytes_and_default_step() -> None:
    w, b = _model(10, 784, seed=14, spread=0.05)
    pipe = quantize_softmax_regression(w, b)
    assert pipe.weight_bytes == 784 * 10 + 4 * 10 + 4 * 10 + 10
    assert pipe.table_bytes == 256 * 4
    s = default_logit_scale(10)
    assert s == pytest.approx(math.log(4 * 9 * 255) / 255)
    assert 9 * math.exp(-255 * s) == pytest.approx(1 / (4 * 255))
    assert pipe.logit_scale == s and pipe.softmax.argmax_safe


def test_requantization_rounds_to_nearest_ties_up() -> None:
    w, b = _model(4, 30, seed=21, spread=0.3)
    x = _pixels(400, 30, seed=21)
    plain = quantize_softmax_regression(w, b)
    # A logit step of 8 weight steps of class 0 makes its multiplier exactly 1/8, so every
    # accumulator = 4 (mod 8) is a tie: the rounding direction is tested, not just the bulk.
    tied = quantize_softmax_regression(w, b, logit_scale=plain.weight_scales[0] * 8,
                                       prob_dtype="uint16")  # a tiny step: uint8 would warn
    assert (tied.multipliers[0], tied.shifts[0]) == (2**30, 33)
    assert (tied.accumulators(x)[:, 0] % 8 == 4).sum() > 10
    for pipe in (plain, tied):
        acc = pipe.accumulators(x).to(torch.int64)
        z = pipe.logits_fixed(x)
        # Exact rationals: floor(acc * m / 2**k + 1/2).
        for j, (m, k) in enumerate(zip(pipe.multipliers, pipe.shifts)):
            want = [math.floor(Fraction(a * m, 2**k) + Fraction(1, 2)) for a in acc[:, j].tolist()]
            assert z[:, j].tolist() == want
        # quant.fixedpoint's exact requantize (ties away from zero) agrees off negative ties.
        ref = fixedpoint.requantize(acc, torch.tensor(pipe.multipliers),
                                    torch.tensor(pipe.shifts), rounding="half_away")
        prod = acc * torch.tensor(pipe.multipliers)
        neg_tie = (prod < 0) & (prod % torch.tensor([2**k for k in pipe.shifts])
                                == torch.tensor([2 ** (k - 1) for k in pipe.shifts]))
        assert torch.equal(z[~neg_tie], ref[~neg_tie])
        assert torch.equal(z[neg_tie], ref[neg_tie] + 1)


def test_bad_models_and_inputs_have_clear_errors() -> None:
    w, b = _model(3, 8, seed=15)
    with pytest.raises(ValueError, match=r"bias must have shape \(3,\)"):
        quantize_softmax_regression(w, b[:2])
    with pytest.raises(ValueError, match="NaN or infinity"):
        quantize_softmax_regression(w.index_put((torch.tensor([0]), torch.tensor([0])),
                                                torch.tensor(float("nan"))), b)
    with pytest.raises(TypeError, match="weight must be a float tensor"):
        quantize_softmax_regression(w.to(torch.int8), b)
    with pytest.raises(ValueError, match="at least 2 classes"):
        quantize_softmax_regression(w[:1], b[:1])
    with pytest.raises(ValueError, match="weight_max must be an int in 1..127"):
        quantize_softmax_regression(w, b, weight_max=128)
    with pytest.raises(ValueError, match="input_scale must be > 0"):
        quantize_softmax_regression(w, b, input_scale=0.0)
    with pytest.raises(ValueError, match=r"input_offset must be a scalar or a \(8,\) vector"):
        quantize_softmax_regression(w, b, input_offset=torch.zeros(7))
    with pytest.raises(ValueError, match="logit_scale must be finite and > 0"):
        quantize_softmax_regression(w, b, logit_scale=-1.0)
    pipe = quantize_softmax_regression(w, b)
    with pytest.raises(TypeError, match="uint8 codes, got torch.float32.*raw uint8 pixels"):
        pipe(torch.rand(2, 8))
    with pytest.raises(ValueError, match=r"shape \(N, 8\), got \(2, 9\)"):
        pipe(torch.zeros(2, 9, dtype=torch.uint8))


def test_warns_when_uint8_cannot_keep_the_argmax() -> None:
    w, b = _model(100, 8, seed=17)
    with pytest.warns(RuntimeWarning, match="prob_dtype='uint16'"):
        pipe = quantize_softmax_regression(w, b)
    assert not pipe.softmax.argmax_safe
    assert quantize_softmax_regression(w, b, prob_dtype="uint16").softmax.argmax_safe


def test_all_zero_class_keeps_its_bias() -> None:
    w, b = _model(3, 8, seed=16)
    w[1] = 0
    b[1] = 2.5
    pipe = quantize_softmax_regression(w, b)
    x = _pixels(10, 8, seed=16)
    p_float = torch.softmax(x.double() / 255 @ w.double().T + b.double(), 1)
    assert (pipe(x).double() / 255 - p_float).abs().max() < 0.05


def test_implementation_names_the_loops_probabilities_run(monkeypatch) -> None:
    from quant import native
    g = torch.Generator().manual_seed(4)
    w, b = torch.randn(3, 16, generator=g), torch.randn(3, generator=g)
    x = torch.randint(0, 256, (5, 16), generator=g, dtype=torch.uint8)
    ref = quantize_softmax_regression(w, b, kernel="int64")
    assert ref.implementation == "torch"                    # the int64 kernel has no fused head
    fast = quantize_softmax_regression(w, b, kernel="int_mm")
    assert fast.implementation == ("native" if native.available() else "torch")
    monkeypatch.setenv("QUANT_NATIVE", "0")
    assert fast.implementation == "torch"
    assert torch.equal(fast(x), ref(x))
