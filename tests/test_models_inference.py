"""models.inference and the loss figures of models.evaluation, against independent references."""

from __future__ import annotations

import math

import mpmath
import numfmt
import numpy as np
import pytest
import torch

from models.config import TrainConfig
from models.evaluation import evaluate, evaluate_all, target_name
from models.inference import run_in_format
from models.softmax_regression import SoftmaxRegression
from models.training import Trainer


@pytest.fixture(scope="module")
def confident():
    """A model trained to confident predictions on separable features in (0, 1)."""
    g = torch.Generator().manual_seed(1)
    centers = torch.randn(4, 30, generator=g) * 3
    y = torch.randint(0, 4, (500,), generator=g)
    x = (centers[y] + 0.5 * torch.randn(500, 30, generator=g)).sigmoid()
    m = SoftmaxRegression(30, 4)
    Trainer(TrainConfig(epochs=20, lr=1.0, batch_size=32)).fit(m, x[:300], y[:300])
    return m, x[300:], y[300:]


def mp_mean_loss(z: torch.Tensor, y: torch.Tensor) -> float:
    """Mean of -log softmax(z)_y over the rows, in 60-digit arithmetic (mpmath)."""
    with mpmath.workdps(60):
        total = mpmath.mpf(0)
        for row, label in zip(z.tolist(), y.tolist()):
            lse = mpmath.log(mpmath.fsum(mpmath.exp(mpmath.mpf(v)) for v in row))
            total += lse - mpmath.mpf(row[label])
        return float(total / z.shape[0])


@pytest.mark.parametrize("fmt", ["fp64", "bf16", "fp8_e5m2", "fp6_e3m2fn", "fp4_e2m1fn",
                                 "scaled_int8_per_channel", "integer_only"])
def test_loss_of_logits_is_the_exact_loss_of_the_formats_logits(confident, fmt):
    m, x, y = confident
    r = evaluate(m, fmt, x, y)
    z = run_in_format(m, x, fmt).logits
    assert r.cross_entropy_of_logits == pytest.approx(mp_mean_loss(z, y), rel=1e-12, abs=1e-15)


def test_in_format_loss_rounds_confident_samples_to_zero_and_both_figures_are_reported(
        confident):
    # Item 11: in fp6_e3m2fn the stable log-softmax of confident samples rounds to exactly 0
    # (log(sum) and z_y - max both round to 0 there), so the in-format mean is smaller than the
    # exact loss of the very same logits; the exact figure (mpmath) is positive on every row.
    m, x, y = confident
    out = run_in_format(m, x, "fp6_e3m2fn", y)
    zeros = int((out.cross_entropy == 0).sum())
    assert zeros > 0
    r = evaluate(m, "fp6_e3m2fn", x, y)
    assert r.cross_entropy_in_format < r.cross_entropy_of_logits
    assert r.cross_entropy_of_logits == pytest.approx(mp_mean_loss(out.logits, y), rel=1e-12)
    d = r.to_dict()
    assert d["cross_entropy_in_format"] == r.cross_entropy_in_format
    assert d["cross_entropy_of_logits"] == r.cross_entropy_of_logits
    with pytest.warns(DeprecationWarning, match="cross_entropy_in_format"):
        assert r.mean_cross_entropy == r.cross_entropy_in_format


def test_numpy_images_and_labels_give_the_tensor_result(confident):
    m, x, y = confident
    assert evaluate(m, "bf16", x.numpy(), y.numpy()) == evaluate(m, "bf16", x, y)
    px = (torch.arange(30 * 4).reshape(4, 30) % 256).to(torch.uint8)
    assert evaluate(m, "fp16", px.numpy(), np.array([0, 1, 2, 3])) == \
        evaluate(m, "fp16", px, torch.tensor([0, 1, 2, 3]))


def test_one_dimensional_images_blame_the_images(confident):
    m, _, _ = confident
    with pytest.raises(ValueError, match=r"images must be \(N, \.\.\.\)"):
        evaluate(m, "fp32", torch.rand(30), torch.tensor([0]))


def test_float_images_left_at_0_255_are_refused(confident):
    m, x, y = confident
    with pytest.raises(ValueError, match="pixels left at 0..255"):
        evaluate(m, "fp32", x * 255, y)
    with pytest.raises(ValueError, match=r"float features in \[0, 1\]"):
        evaluate(m, "fp32", x - 0.5, y)
    with pytest.raises(TypeError, match="torch.Tensor or numpy array"):
        evaluate(m, "fp32", x.tolist(), y)
    with pytest.raises(TypeError, match="labels must be integers"):
        evaluate(m, "fp32", x, y.double())


@pytest.mark.parametrize("spelling, name", [(" FP16", "fp16"), ("Scaled_Int8_Per_Tensor",
                                                                 "scaled_int8_per_tensor"),
                                            (" LOG_INT8 ", "log_int8"),
                                            ("Integer_Only", "integer_only")])
def test_encoding_names_are_case_and_space_insensitive_like_format_names(
        confident, spelling, name):
    m, x, y = confident
    assert target_name(spelling) == name
    assert evaluate(m, spelling, x, y) == evaluate(m, name, x, y)


def test_every_target_is_checked_before_any_is_evaluated(confident, monkeypatch):
    import models.evaluation as ev

    m, x, y = confident
    calls = []
    real = ev.run_in_format
    monkeypatch.setattr(ev, "run_in_format", lambda *a, **k: calls.append(a) or real(*a, **k))
    with pytest.raises(ValueError, match="unknown number format 'bogus'"):
        evaluate_all(m, x, y, ["fp16", "bogus"])
    assert calls == []


def test_evaluation_leaves_torchs_thread_count_as_it_was(confident):
    m, x, y = confident
    before = torch.get_num_threads()
    evaluate_all(m, x, y, ["fp16", "log_int8"])
    assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match="num_threads"):
        evaluate(m, "fp16", x, y, num_threads=0)


def test_integer_only_has_no_naive_softmax(confident):
    m, x, y = confident
    r = evaluate(m, "integer_only", x, y)
    assert r.naive_softmax_overflow_share is None
    assert r.to_dict()["naive_softmax_overflow_share"] is None
    assert r.stable_softmax_overflow_share == 0.0
    assert numfmt.get("fp16").name == target_name(torch.float16)
