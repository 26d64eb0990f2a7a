"""models.training, models.config, models.history and models.softmax_regression on small
synthetic data."""

from __future__ import annotations

import json
import math

import numfmt
import pytest
import torch
import torch.nn.functional as F

from models.softmax_regression import SoftmaxRegression
from models.config import RECIPES, Precision, TrainConfig, lr_at_epoch, with_precision
from models.history import History
from models.training import Trainer


def blobs(n: int, d: int = 12, k: int = 3, seed: int = 0, sep: float = 4.0):
    """k well-separated Gaussian clusters in d dimensions (float32 features, int64 labels)."""
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(k, d, generator=g) * sep
    y = torch.randint(0, k, (n,), generator=g)
    x = centers[y] + torch.randn(n, d, generator=g)
    return x, y


def accuracy(model, x, y) -> float:
    with torch.no_grad():
        return (model(x.to(model.linear.weight.dtype)).argmax(1) == y).float().mean().item()


# ---- the model -------------------------------------------------------------------------------
def test_closed_form_gradient_matches_autograd():
    x, y = blobs(40, d=7, k=4)
    m = SoftmaxRegression(7, 4, dtype=torch.float64)
    torch.nn.init.normal_(m.linear.weight, std=0.3)
    torch.nn.init.normal_(m.linear.bias, std=0.3)
    x = x.double()
    loss = F.cross_entropy(m(x), y) * 3.0
    gw, gb = torch.autograd.grad(loss, (m.linear.weight, m.linear.bias))
    with torch.no_grad():
        z, (dw, db) = m.logits_and_gradients(x, y, scale=3.0)
    torch.testing.assert_close(dw, gw, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(db, gb, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(z, m(x), rtol=1e-12, atol=1e-12)


def test_model_shape_errors():
    m = SoftmaxRegression(5, 3)
    with pytest.raises(ValueError, match="expected 5 features"):
        m(torch.zeros(2, 6))
    with pytest.raises(ValueError):
        SoftmaxRegression(5, 1)


# ---- training ------------------------------------------------------------------------------
def test_learns_a_separable_problem():
    x, y = blobs(600)
    xt, yt = x[:500], y[:500]
    xv, yv = x[500:], y[500:]
    m = SoftmaxRegression(12, 3)
    h = Trainer(TrainConfig(epochs=15, lr=0.05, batch_size=32)).fit(m, xt, yt, xv, yv)
    assert accuracy(m, xv, yv) == 1.0
    assert h.final.val_accuracy == 1.0
    losses = h.column("train_loss")
    assert losses[0] < math.log(3) and losses[-1] < losses[0] / 4
    assert not h.diverged and h.label == "fp32"


def test_deterministic_under_seed():
    x, y = blobs(300)
    runs = []
    for seed in (5, 5, 6):
        m = SoftmaxRegression(12, 3)
        h = Trainer(TrainConfig(epochs=3, lr=0.1, batch_size=16, seed=seed)).fit(m, x, y)
        runs.append((m.linear.weight.detach().clone(), h.column("train_loss")))
    assert torch.equal(runs[0][0], runs[1][0]) and runs[0][1] == runs[1][1]
    assert not torch.equal(runs[0][0], runs[2][0])


def test_inputs_not_modified_and_dtype_kept():
    x, y = blobs(100)
    x0, y0 = x.clone(), y.clone()
    m = SoftmaxRegression(12, 3)
    Trainer(TrainConfig(epochs=2, precision=Precision("bf16", master_weights=True))).fit(m, x, y)
    assert torch.equal(x, x0) and torch.equal(y, y0)
    assert m.linear.weight.dtype == torch.float32


def test_uint8_images_are_scaled():
    g = torch.Generator().manual_seed(0)
    imgs = torch.randint(0, 256, (64, 28, 28), dtype=torch.uint8, generator=g)
    y = torch.randint(0, 10, (64,), generator=g)
    a, b = SoftmaxRegression(), SoftmaxRegression()
    Trainer(TrainConfig(epochs=1, batch_size=64)).fit(a, imgs, y)
    Trainer(TrainConfig(epochs=1, batch_size=64)).fit(b, imgs.double() / 255, y)
    torch.testing.assert_close(a.linear.weight, b.linear.weight, rtol=1e-6, atol=1e-7)


def test_one_step_is_plain_sgd_with_weight_decay():
    # One full batch, one epoch: W1 = W0 - lr * (grad + wd * W0), grad from autograd.
    x, y = blobs(20, d=4, k=3)
    m = SoftmaxRegression(4, 3, dtype=torch.float64)
    torch.nn.init.normal_(m.linear.weight)
    w0 = m.linear.weight.detach().clone()
    b0 = m.linear.bias.detach().clone()
    ref = SoftmaxRegression(4, 3, dtype=torch.float64)
    ref.load_state_dict(m.state_dict())
    gw, gb = torch.autograd.grad(F.cross_entropy(ref(x.double()), y),
                                 (ref.linear.weight, ref.linear.bias))
    cfg = TrainConfig(epochs=1, lr=0.5, batch_size=20, weight_decay=0.01,
                      precision=Precision("fp64"))
    Trainer(cfg).fit(m, x.double(), y)
    torch.testing.assert_close(m.linear.weight, w0 - 0.5 * (gw + 0.01 * w0), rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(m.linear.bias, b0 - 0.5 * (gb + 0.01 * b0), rtol=1e-12, atol=1e-14)


def test_schedules():
    c = TrainConfig(epochs=10, lr=0.4, schedule="cosine")
    assert lr_at_epoch(c, 0) == 0.4
    assert lr_at_epoch(c, 5) == pytest.approx(0.2)
    assert [lr_at_epoch(replace_sched(c, "step"), e) for e in (0, 4, 5, 7, 8, 9)] == \
        pytest.approx([0.4, 0.4, 0.04, 0.04, 0.004, 0.004])
    assert lr_at_epoch(replace_sched(c, "constant"), 9) == 0.4
    x, y = blobs(64)
    h = Trainer(TrainConfig(epochs=4, lr=0.2, schedule="cosine")).fit(
        SoftmaxRegression(12, 3), x, y)
    assert h.column("lr") == pytest.approx([0.2 * 0.5 * (1 + math.cos(math.pi * e / 4))
                                            for e in range(4)])


def replace_sched(c, s):
    from dataclasses import replace
    return replace(c, schedule=s)


def test_early_stopping_restores_the_best_epoch():
    # Validation: training inputs with every third label wrong, so validation loss rises as
    # the model grows confident (its best is epoch 1).
    x, y = blobs(400, sep=1.0)
    xv = x[:100]
    yv = torch.where(torch.arange(100) % 3 == 0, (y[:100] + 1) % 3, y[:100])
    cfg = TrainConfig(epochs=40, lr=0.5, batch_size=32, early_stopping="val_loss", patience=3)
    m = SoftmaxRegression(12, 3)
    h = Trainer(cfg).fit(m, x, y, xv, yv)
    assert h.stopped_early and h.restored_best
    assert len(h.epochs) == h.best_epoch + 3
    vl = h.column("val_loss")
    assert h.best_epoch == 1 + vl.index(min(vl))
    # The restored weights are those after best_epoch epochs: retrain exactly that long.
    again = SoftmaxRegression(12, 3)
    from dataclasses import replace
    Trainer(replace(cfg, epochs=h.best_epoch, early_stopping=None)).fit(again, x, y, xv, yv)
    assert torch.equal(m.linear.weight, again.linear.weight)


def test_history_json_round_trip(tmp_path):
    x, y = blobs(64)
    h = Trainer(TrainConfig(epochs=2, precision=Precision("bf16"))).fit(SoftmaxRegression(12, 3),
                                                                         x, y, x, y)
    p = tmp_path / "h.json"
    h.save_json(p)
    json.loads(p.read_text())  # valid JSON
    back = History.load_json(p)
    assert back == h
    assert TrainConfig.from_dict(h.config) == TrainConfig(epochs=2, precision=Precision("bf16"))


# ---- formats -------------------------------------------------------------------------------
def _one_feature_model(w: float, dtype=torch.float32) -> SoftmaxRegression:
    m = SoftmaxRegression(1, 2, dtype=dtype)
    with torch.no_grad():
        m.linear.weight.fill_(w)
    return m


def test_bf16_alone_loses_small_updates_master_weights_keep_them():
    # W = [[1], [1]], b = 0, x = 1, label 0: P = (1/2, 1/2), grad W = grad b = (-1/2, +1/2).
    # lr = 2**-10 moves every parameter by 2**-11. At 1.0 half a bf16 ulp is 2**-8, so W
    # cannot move; b (at 0) can. Exactly 2 of the 4 updates stall.
    x, y = torch.ones(1, 1), torch.zeros(1, dtype=torch.int64)
    cfg = TrainConfig(epochs=1, lr=2.0**-10, batch_size=1)
    m = _one_feature_model(1.0)
    h = Trainer(with_precision(cfg, "bf16")).fit(m, x, y)
    assert h.final.stalled_update_share == 0.5
    assert m.linear.weight.tolist() == [[1.0], [1.0]]
    assert m.linear.bias.tolist() == [2.0**-11, -(2.0**-11)]
    m = _one_feature_model(1.0)
    h = Trainer(with_precision(cfg, "bf16+master")).fit(m, x, y)
    assert h.final.stalled_update_share == 0.0
    assert m.linear.weight.tolist() == [[1.0 + 2.0**-11], [1.0 - 2.0**-11]]  # the FP32 master
    m = _one_feature_model(1.0)
    assert Trainer(cfg).fit(m, x, y).final.stalled_update_share is None  # fp32: not tracked


def test_dynamic_loss_scale_backs_off_on_fp16_overflow():
    # x = 100, one sample: the scaled gradient of W is 0.5 * 100 * S. FP16 holds it while
    # 50 * S <= 65504, i.e. S <= 1310: from 2**16 the scaler halves 6 times (to 1024), each
    # time skipping the step.
    x, y = torch.full((1, 1), 100.0), torch.zeros(1, dtype=torch.int64)
    cfg = TrainConfig(epochs=9, lr=2.0**-12, batch_size=1,
                      precision=RECIPES["fp16+master+dynamic-scale"])
    m = _one_feature_model(0.0)
    h = Trainer(cfg).fit(m, x, y)
    assert [e.overflow_steps for e in h.epochs] == [1] * 6 + [0] * 3
    assert [e.loss_scale for e in h.epochs] == [2.0**(16 - k) for k in range(1, 7)] + [1024.0] * 3
    w = m.linear.weight[:, 0].tolist()
    assert w[0] > 0 and w[1] == pytest.approx(-w[0], rel=1e-3)  # moved toward the label
    # the first clean step alone is exactly lr * 0.5 * 100 (P = 1/2 at W = 0)
    m = _one_feature_model(0.0)
    from dataclasses import replace
    Trainer(replace(cfg, epochs=7)).fit(m, x, y)
    assert m.linear.weight[0, 0].item() == 2.0**-12 * 50


def test_fp16_without_scaling_underflows_tiny_gradients():
    # With batch 2**12 a gradient entry of P/B below FP16's smallest subnormal (2**-24)
    # rounds to zero: the same data in FP32 moves the weight, FP16 does not.
    n = 4096
    x = torch.zeros(n, 1)
    x[0, 0] = 2.0**-13
    y = torch.zeros(n, dtype=torch.int64)
    cfg = TrainConfig(epochs=1, lr=1.0, batch_size=n)
    m32, m16 = _one_feature_model(0.0), _one_feature_model(0.0)
    Trainer(cfg).fit(m32, x, y)
    Trainer(with_precision(cfg, "fp16")).fit(m16, x, y)
    assert m32.linear.weight[0, 0].item() != 0.0
    assert m16.linear.weight[0, 0].item() == 0.0


def test_emulated_tf32_rounds_matmul_operands():
    x, y = blobs(256)
    a, b = SoftmaxRegression(12, 3), SoftmaxRegression(12, 3)
    Trainer(TrainConfig(epochs=2, batch_size=32)).fit(a, x, y)
    Trainer(TrainConfig(epochs=2, batch_size=32, precision=RECIPES["tf32+master"])).fit(b, x, y)
    assert not torch.equal(a.linear.weight, b.linear.weight)
    torch.testing.assert_close(a.linear.weight, b.linear.weight, rtol=2e-2, atol=2e-3)
    c = SoftmaxRegression(12, 3)
    Trainer(TrainConfig(epochs=2, batch_size=32, precision=Precision("tf32"))).fit(c, x, y)
    w = c.linear.weight.detach()
    assert torch.equal(numfmt.round_to(w, "tf32"), w)  # TF32 holds the weights alone


def test_every_recipe_trains():
    x, y = blobs(300)
    for name, prec in RECIPES.items():
        dtype = torch.float64 if prec.format == "fp64" else torch.float32
        m = SoftmaxRegression(12, 3, dtype=dtype)
        h = Trainer(TrainConfig(epochs=3, lr=0.05, batch_size=32, precision=prec)).fit(m, x, y)
        assert not h.diverged, name
        assert accuracy(m, x, y) > 0.95, name
        assert h.label == name


# ---- bad input -----------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, match", [
    (dict(format="fp8_e4m3fn"), "cannot train in fp8_e4m3fn"),
    (dict(format="fp32", master_weights=True), "master weights"),
    (dict(format="fp16", loss_scale=3.0), "power of two"),
    (dict(format="fp16", loss_scale=-2.0), "positive"),
    (dict(format="fp16", loss_scale="static"), "loss_scale"),
    (dict(format="fp13"), "unknown number format"),
])
def test_precision_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Precision(**kwargs)


def test_precision_accepts_dtypes_and_aliases():
    assert Precision(torch.bfloat16).format == "bf16"
    assert Precision("half", master_weights=True).label == "fp16+master"


@pytest.mark.parametrize("kwargs, match", [
    (dict(epochs=0), "epochs"), (dict(lr=float("nan")), "lr"), (dict(lr=-1.0), "lr"),
    (dict(batch_size=0), "batch_size"), (dict(schedule="linear"), "schedule"),
    (dict(weight_decay=-0.1), "weight_decay"), (dict(early_stopping="loss"), "early_stopping"),
])
def test_config_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**kwargs)


def test_fit_input_errors():
    x, y = blobs(32)
    t = Trainer(TrainConfig(epochs=1))
    with pytest.raises(ValueError, match="labels must have shape"):
        t.fit(SoftmaxRegression(12, 3), x, y[:5])
    with pytest.raises(ValueError, match="labels must lie in 0..2"):
        t.fit(SoftmaxRegression(12, 3), x, y + 1)
    with pytest.raises(ValueError, match="NaN"):
        t.fit(SoftmaxRegression(12, 3), x.masked_fill(x > 3, float("nan")), y)
    with pytest.raises(ValueError, match="early stopping needs validation"):
        Trainer(TrainConfig(early_stopping="val_loss")).fit(SoftmaxRegression(12, 3), x, y)
    with pytest.raises(ValueError, match="expected 12 features"):
        Trainer(TrainConfig(epochs=1)).fit(SoftmaxRegression(12, 3), x[:, :5], y)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error when no GPU exists")
def test_cuda_request_without_gpu_is_a_clear_error():
    x, y = blobs(16)
    with pytest.raises(RuntimeError, match="cuda.is_available"):
        Trainer(TrainConfig(device="cuda")).fit(SoftmaxRegression(12, 3), x, y)


def test_generic_module_trains_with_autograd():
    x, y = blobs(300)
    net = torch.nn.Sequential(torch.nn.Linear(12, 3))
    Trainer(TrainConfig(epochs=5, lr=0.05, batch_size=32)).fit(net, x, y)
    with torch.no_grad():
        assert (net(x).argmax(1) == y).float().mean() > 0.95
