"""The real Fashion-MNIST (Debian's dataset-fashion-mnist or $FASHION_MNIST_DIR).

These tests fail -- never skip -- when the data is missing: CI installs it.
"""

from __future__ import annotations

import json

import pytest
import torch

from models.data import DatasetNotFoundError, fashion_mnist, split_train_validation
from models.evaluation import RESULT_KEYS, evaluate_all
from models.config import TrainConfig
from models.training import train

pytestmark = pytest.mark.realdata


@pytest.fixture(scope="module")
def data():
    try:
        return fashion_mnist()
    except DatasetNotFoundError as exc:
        missing = str(exc)
    pytest.fail(f"the real Fashion-MNIST is required for these tests and was not found: "
                f"{missing}", pytrace=False)


@pytest.fixture(scope="module")
def split(data):
    return split_train_validation(data)


def test_real_files(data):
    assert data.train_images.shape == (60000, 28, 28) and data.test_images.shape == (10000, 28, 28)
    assert data.train_images.dtype == torch.uint8 and data.train_labels.dtype == torch.int64
    # Fashion-MNIST is balanced: 6000 training and 1000 test images per class.
    assert torch.bincount(data.train_labels, minlength=10).tolist() == [6000] * 10
    assert torch.bincount(data.test_labels, minlength=10).tolist() == [1000] * 10
    assert data.train_images.min() == 0 and data.train_images.max() == 255


def test_split_sizes(split):
    assert len(split.train_labels) == 50000 and len(split.val_labels) == 10000
    assert len(set(split.train_indices.tolist()) & set(split.val_indices.tolist())) == 0


def test_short_training_run_and_formats(split):
    model, hist = train(split, TrainConfig(epochs=2, lr=0.1, batch_size=256))
    assert not hist.diverged and hist.final.val_accuracy > 0.79
    results = {r.format: r for r in evaluate_all(
        model, split.test_images, split.test_labels,
        ["fp64", "fp32", "tf32", "bf16", "scaled_int8_per_channel", "mxint8", "mxfp8_e4m3"])}
    assert results["fp32"].accuracy >= 0.80  # 2 epochs; tuned training reaches >= 0.84
    for name in ("fp32", "tf32"):
        assert results[name].agreement_fp64 >= 0.999, name
    assert abs(results["scaled_int8_per_channel"].accuracy - results["fp32"].accuracy) <= 0.005
    assert abs(results["bf16"].accuracy - results["fp32"].accuracy) <= 0.01
    # MXINT8 keeps ~int8 per-block precision (7 bits below a per-32 power-of-two scale), as
    # per-channel int8 does; MXFP8 E4M3 (3 mantissa bits) within bf16's margin
    assert abs(results["mxint8"].accuracy - results["fp32"].accuracy) <= 0.005
    assert abs(results["mxfp8_e4m3"].accuracy - results["fp32"].accuracy) <= 0.01
    # No logit of a trained model comes near FP32's exp bound (88.72): nothing overflows.
    assert results["fp32"].naive_softmax_overflow_share == 0.0


def test_cli_evaluate_writes_the_json_contract(tmp_path, capsys, data):
    from models.__main__ import main

    out_json = tmp_path / "r.json"
    rc = main(["evaluate", "--epochs", "1", "--formats",
               "fp32,scaled_int8_per_tensor, MXFP4_E2M1,nvfp4_w_x",
               "--checkpoint", str(tmp_path / "ck.pt"), "--out", str(tmp_path / "out"),
               "--json", str(out_json), "--quiet"])
    assert rc == 0
    records = json.loads(out_json.read_text())
    assert [r["format"] for r in records] == ["fp32", "scaled_int8_per_tensor", "mxfp4_e2m1",
                                              "nvfp4_w_x"]
    assert all(tuple(r) == RESULT_KEYS for r in records)
    text = capsys.readouterr().out
    assert "| format" in text and str(out_json) in text
    assert all((tmp_path / "out" / f"{stem}.{ext}").is_file() for ext in ("png", "svg")
               for stem in ("formats", "bits_accuracy"))
    # the cached FP32 model is a valid checkpoint of the reference config with 1 epoch
    from dataclasses import replace

    from models.checkpoint import REFERENCE_CONFIG, load_checkpoint
    cp = load_checkpoint(tmp_path / "ck.pt", expect_config=replace(REFERENCE_CONFIG, epochs=1))
    assert len(cp.history.epochs) == 1
