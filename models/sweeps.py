"""Sweeps over learning rate, epochs (with the usual remedies) and training formats.

Choices are made on the validation set; the test set enters only as each run's final figure
(``test_accuracy``), never to pick anything.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, replace
from typing import Iterable

from models.data import NUM_CLASSES, Split
from models.evaluation import evaluate
from models.softmax_regression import SoftmaxRegression
from models.config import RECIPES, Precision, TrainConfig, with_precision
from models.history import History
from models.training import train

__all__ = ["DEFAULT_RATES", "LrRun", "sweep_learning_rates", "best_rate", "EpochVariant",
           "epoch_variants", "EpochRun", "sweep_epochs", "PrecisionRun", "sweep_precisions",
           "UNTRAINED_LOSS"]

DEFAULT_RATES: tuple[float, ...] = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)
# Cross-entropy of the zero-initialised model (uniform prediction): ln(10).
UNTRAINED_LOSS = math.log(NUM_CLASSES)


def _test_accuracy(model: SoftmaxRegression, split: Split, fmt: str) -> float:
    return evaluate(model, fmt, split.test_images, split.test_labels).accuracy


# ---- learning rate -----------------------------------------------------------------------------
@dataclass(frozen=True)
class LrRun:
    """One rate of the sweep. ``diverged``: the run ended non-finite, or with a validation loss
    above the untrained model's ln(10) (it ended worse than where it started)."""

    lr: float
    history: History
    test_accuracy: float | None

    @property
    def final_val_loss(self) -> float:
        """Validation loss after the last epoch."""
        return self.history.final.val_loss

    @property
    def final_val_accuracy(self) -> float:
        """Validation accuracy after the last epoch."""
        return self.history.final.val_accuracy

    @property
    def best_val_loss(self) -> float:
        """The lowest finite validation loss of any epoch (inf if none)."""
        v = [x for x in self.history.column("val_loss") if x is not None and math.isfinite(x)]
        return min(v) if v else math.inf

    @property
    def diverged(self) -> bool:
        """Ended non-finite or above the untrained loss ln(10) (see the class docstring)."""
        v = self.final_val_loss
        return self.history.diverged or v is None or not math.isfinite(v) or v > UNTRAINED_LOSS

    @property
    def val_loss_spread(self) -> float:
        """max - min validation loss over the last third of the epochs: how much it bounces."""
        v = self.history.column("val_loss")[-max(1, len(self.history.epochs) // 3):]
        return max(v) - min(v)


def sweep_learning_rates(split: Split, rates: Iterable[float] = DEFAULT_RATES, *,
                         base: TrainConfig = TrainConfig(epochs=20, batch_size=128),
                         progress: bool = False) -> list[LrRun]:
    """Train once per rate (constant schedule, no early stopping, everything else from
    ``base``) and record each history and final test accuracy."""
    runs = []
    for lr in rates:
        cfg = replace(base, lr=float(lr), schedule="constant", early_stopping=None)
        if progress:
            print(f"-- lr {lr:g}", file=sys.stderr, flush=True)
        model, hist = train(split, cfg, progress=progress)
        acc = None if hist.diverged else _test_accuracy(model, split, cfg.precision.format)
        runs.append(LrRun(lr=float(lr), history=hist, test_accuracy=acc))
    return runs


def best_rate(runs: list[LrRun]) -> LrRun:
    """The run with the lowest final validation loss among those that did not diverge."""
    ok = [r for r in runs if not r.diverged]
    if not ok:
        raise ValueError("every learning rate diverged")
    return min(ok, key=lambda r: r.final_val_loss)


# ---- epochs ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EpochVariant:
    """One run of the epoch sweep: a name for the table and figure, and its config."""

    name: str
    config: TrainConfig


def epoch_variants(epochs: int = 50, *, lr: float = 0.3, batch_size: int = 128,
                   seed: int = 0, weight_decay: float = 1e-3) -> tuple[EpochVariant, ...]:
    """The runs of the epoch sweep: a constant rate, then one remedy each."""
    base = TrainConfig(epochs=epochs, lr=lr, batch_size=batch_size, seed=seed)
    return (
        EpochVariant("constant lr", base),
        EpochVariant("early stopping (val loss, patience 5)",
                     replace(base, early_stopping="val_loss", patience=5)),
        EpochVariant(f"weight decay {weight_decay:g}", replace(base, weight_decay=weight_decay)),
        EpochVariant("cosine lr decay", replace(base, schedule="cosine")),
        EpochVariant("step lr decay (x0.1 at 50%, 75%)", replace(base, schedule="step")),
    )


@dataclass(frozen=True)
class EpochRun:
    """A trained variant: its history and final test accuracy (FP32)."""

    name: str
    history: History
    test_accuracy: float

    @property
    def config(self) -> TrainConfig:
        """The run's `TrainConfig`, rebuilt from the history."""
        return TrainConfig.from_dict(self.history.config)


def sweep_epochs(split: Split, variants: Iterable[EpochVariant] | None = None, *,
                 progress: bool = False) -> list[EpochRun]:
    """Train each variant (default `epoch_variants`) and record history and test accuracy."""
    runs = []
    for v in (epoch_variants() if variants is None else variants):
        if progress:
            print(f"-- {v.name}", file=sys.stderr, flush=True)
        model, hist = train(split, v.config, progress=progress)
        runs.append(EpochRun(v.name, hist, _test_accuracy(model, split, "fp32")))
    return runs


# ---- training formats --------------------------------------------------------------------------
@dataclass(frozen=True)
class PrecisionRun:
    """A run trained under ``precision``; its test accuracy is evaluated in the same format
    (the weights the format holds; with master weights, the FP32 masters rounded to it)."""

    precision: Precision
    history: History
    test_accuracy: float | None


def sweep_precisions(split: Split, recipes: Iterable[Precision | str] | None = None, *,
                     base: TrainConfig = TrainConfig(epochs=10, lr=0.1, batch_size=256),
                     progress: bool = False) -> list[PrecisionRun]:
    """Train under each recipe (default: every `RECIPES` entry) with ``base``'s settings."""
    runs = []
    for r in (RECIPES.values() if recipes is None else recipes):
        cfg = with_precision(base, r)
        if progress:
            print(f"-- {cfg.precision.label}", file=sys.stderr, flush=True)
        model, hist = train(split, cfg, progress=progress)
        acc = None
        if not hist.diverged:
            acc = _test_accuracy(model, split, cfg.precision.format)
        runs.append(PrecisionRun(cfg.precision, hist, acc))
    return runs
