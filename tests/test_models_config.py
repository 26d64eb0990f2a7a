"""models.config: precisions and configs are checked and normalised when they are built."""

from __future__ import annotations

import importlib
import types

import numfmt
import numpy as np
import pytest
import torch

import models
from models.config import RECIPES, Precision, TrainConfig, as_precision, canonical_device


@pytest.mark.parametrize("spec, name", [
    (torch.float16, "fp16"), (torch.bfloat16, "bf16"), (torch.float64, "fp64"),
    (np.dtype(np.float32), "fp32"), (" FP16", "fp16"), ("half", "fp16"),
])
def test_precision_formats_given_as_dtypes_or_spellings_become_names(spec, name):
    # the expected names are torch's / numpy's own dtype identities, not ours
    assert Precision(spec).format == name
    assert TrainConfig(precision=spec).precision == Precision(name)


def test_a_numfmt_format_is_accepted():
    assert TrainConfig(precision=numfmt.get("bf16")).precision == Precision("bf16")


@pytest.mark.parametrize("bad, err, match", [
    (123, TypeError, "format name, a torch dtype or a numfmt.Format"),
    (1.5, TypeError, "format name"),
    (True, TypeError, "format name"),
    (None, TypeError, "format name"),
    ("int8", ValueError, "cannot train in int8"),
    (torch.int8, ValueError, "cannot train in int8"),
    ("fp8_e4m3fn", ValueError, "cannot train in fp8_e4m3fn"),
    ("bogus", ValueError, "unknown number format"),
])
def test_bad_precisions_fail_at_construction(bad, err, match):
    with pytest.raises(err, match=match):
        TrainConfig(precision=bad)


def test_recipe_labels_are_precisions():
    for label, p in RECIPES.items():
        assert TrainConfig(precision=label).precision == p
        assert as_precision(label).label == label


@pytest.mark.parametrize("device, want", [("cpu", "cpu"), (" cpu", "cpu"),
                                          (torch.device("cpu"), "cpu"), ("cuda:1", "cuda:1")])
def test_devices_are_spelled_as_torch_spells_them(device, want):
    assert canonical_device(device) == want == str(torch.device(want))


@pytest.mark.parametrize("device", ["banana", "mps", "meta", ""])
def test_unknown_devices_fail_at_construction(device):
    with pytest.raises(ValueError, match="device"):
        TrainConfig(device=device)


@pytest.mark.parametrize("field, value", [("epochs", 0), ("batch_size", 0), ("lr", 0.0),
                                          ("lr", float("nan")), ("weight_decay", -5.0),
                                          ("patience", 0), ("epochs", 2.0)])
def test_out_of_range_hyperparameters_are_refused(field, value):
    with pytest.raises(ValueError, match=field):
        TrainConfig(**{field: value})


def test_models_train_is_the_training_function_and_the_old_module_is_gone():
    # The deprecated alias module models/train.py is removed (nothing imports it): the package
    # attribute is the training function, and the trainer's names come from the package.
    assert callable(models.train) and not isinstance(models.train, types.ModuleType)
    assert models.train is importlib.import_module("models.training").train
    from models import TrainConfig as C, Trainer as T
    assert C is TrainConfig and T.__module__ == "models.training"
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("models.train")


def test_models_train_is_seeded_and_reproducible():
    from models.data import Split

    g = torch.Generator().manual_seed(0)
    imgs = torch.randint(0, 256, (40, 28, 28), generator=g, dtype=torch.uint8)
    labels = torch.randint(0, 10, (40,), generator=g)
    split = Split(imgs[:20], labels[:20], imgs[20:30], labels[20:30], imgs[30:], labels[30:],
                  torch.arange(20), torch.arange(20, 30), 0, "synthetic")
    cfg = TrainConfig(epochs=2, lr=0.1, batch_size=8)
    got, _ = models.train(split, cfg)
    want, _ = models.train(split, cfg)
    assert not torch.equal(got.linear.weight, torch.zeros_like(got.linear.weight))  # it trained
    assert torch.equal(got.linear.weight, want.linear.weight)
