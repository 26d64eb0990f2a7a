"""models.checkpoint: round trip, every rejection, and load_or_train's caching."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from models.checkpoint import (CheckpointError, load_checkpoint, load_or_train, save_checkpoint)
from models.data import FashionMNIST, split_train_validation
from models.softmax_regression import SoftmaxRegression
from models.config import TrainConfig
from models.training import Trainer

CFG = TrainConfig(epochs=2, lr=0.1, batch_size=32)


@pytest.fixture(scope="module")
def small_split():
    g = torch.Generator().manual_seed(0)
    data = FashionMNIST(
        train_images=torch.randint(0, 256, (120, 28, 28), dtype=torch.uint8, generator=g),
        train_labels=torch.randint(0, 10, (120,), generator=g),
        test_images=torch.randint(0, 256, (30, 28, 28), dtype=torch.uint8, generator=g),
        test_labels=torch.randint(0, 10, (30,), generator=g), source="synthetic")
    return split_train_validation(data, validation_size=20, seed=0)


@pytest.fixture()
def saved(tmp_path, small_split):
    m = SoftmaxRegression()
    h = Trainer(CFG).fit(m, small_split.train_images, small_split.train_labels,
                         small_split.val_images, small_split.val_labels)
    p = save_checkpoint(tmp_path / "sub" / "m.pt", m, CFG, h, small_split.fingerprint())
    return p, m, h


def test_round_trip(saved, small_split):
    p, m, h = saved
    cp = load_checkpoint(p, expect_config=CFG, expect_split=small_split.fingerprint())
    assert torch.equal(cp.model.linear.weight, m.linear.weight)
    assert torch.equal(cp.model.linear.bias, m.linear.bias)
    assert cp.config == CFG and cp.history == h and not cp.trained_now
    assert not list(p.parent.glob("*.tmp*"))  # atomic write left no temporary file


def test_missing(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "none.pt")


@pytest.mark.parametrize("damage", ["truncate", "garbage", "flip"])
def test_corrupt_file(saved, damage):
    p = saved[0]
    raw = bytearray(p.read_bytes())
    if damage == "truncate":
        raw = raw[: len(raw) // 2]
    elif damage == "garbage":
        raw = bytearray(b"not a checkpoint at all" * 10)
    else:
        # flip bytes inside the stored weight data (the float payload of linear.weight)
        w = saved[1].linear.weight.detach().numpy().tobytes()
        i = bytes(raw).find(w[64:96])
        assert i > 0
        raw[i:i + 8] = bytes(b ^ 0xFF for b in raw[i:i + 8])
    p.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(p)
    assert str(p) in str(e.value) and "--retrain" in str(e.value)


def _resave(p, mutate):
    payload = torch.load(p, weights_only=True)
    mutate(payload)
    torch.save(payload, p)


def test_altered_weights_fail_the_checksum(saved):
    p = saved[0]
    _resave(p, lambda d: d["state_dict"]["linear.bias"].add_(1e-3))
    with pytest.raises(CheckpointError, match="SHA-256"):
        load_checkpoint(p)


@pytest.mark.parametrize("mutate, match", [
    (lambda d: d.update(kind="something-else"), "not a"),
    (lambda d: d.update(version=99), "version 99"),
    (lambda d: d["state_dict"].pop("linear.bias"), "holds parameters"),
    (lambda d: d.update(in_features=100), "shape"),
    (lambda d: d.pop("config"), "malformed"),
])
def test_foreign_or_malformed(saved, mutate, match):
    p = saved[0]
    _resave(p, mutate)
    with pytest.raises(CheckpointError, match=match):
        load_checkpoint(p)


def test_non_finite_weights(tmp_path, saved):
    _, m, h = saved
    with torch.no_grad():
        m.linear.weight[3, 3] = float("inf")
    p = save_checkpoint(tmp_path / "inf.pt", m, CFG, h)
    with pytest.raises(CheckpointError, match="NaN or infinity"):
        load_checkpoint(p)


def test_mismatched_config_or_split(saved):
    p = saved[0]
    with pytest.raises(CheckpointError, match=r"lr=0.1 \(wanted 0.2\)"):
        load_checkpoint(p, expect_config=replace(CFG, lr=0.2))
    with pytest.raises(CheckpointError, match="another data split"):
        load_checkpoint(p, expect_split="0123456789abcdef")


def test_load_or_train_caches_and_refuses_bad_files(tmp_path, small_split):
    p = tmp_path / "ref.pt"
    first = load_or_train(p, config=CFG, split=small_split)
    assert first.trained_now and p.is_file()
    second = load_or_train(p, config=CFG, split=small_split)
    assert not second.trained_now
    assert torch.equal(first.model.linear.weight, second.model.linear.weight)
    with pytest.raises(CheckpointError, match="another config"):
        load_or_train(p, config=replace(CFG, epochs=3), split=small_split)
    p.write_bytes(b"\x00" * 100)
    with pytest.raises(CheckpointError):
        load_or_train(p, config=CFG, split=small_split)
    again = load_or_train(p, config=CFG, split=small_split, retrain=True)
    assert again.trained_now
    assert torch.equal(again.model.linear.weight, first.model.linear.weight)  # deterministic


@pytest.mark.parametrize("payload", [
    {"kind": __import__("fractions").Fraction(1, 3)},          # a class torch does not allow
    __import__("collections").OrderedDict(a=__import__("decimal").Decimal(1)),
])
def test_foreign_pickles_are_not_our_checkpoints_and_no_unsafe_advice(tmp_path, payload):
    """Files torch.load(weights_only=True) refuses: the error says the file is not one of
    ours and never relays torch's advice to load it with weights_only=False or to allowlist
    its classes (which would run the file's code)."""
    p = tmp_path / "foreign.pt"
    torch.save(payload, p)
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(p)
    msg = str(e.value)
    assert "not a checkpoint of this project" in msg and str(p) in msg
    for advice in ("weights_only", "safe_globals", "allowlist", "arbitrary code"):
        assert advice not in msg, advice
