"""The record of a training run: one `EpochStats` per epoch and the `History` of the run."""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from typing import Any

from numfmt.cli import write_json

__all__ = ["EpochStats", "History"]

# Figures that are NaN (not None) when a run diverged: they were measured, as NaN.
_MEASURED = ("train_loss", "train_accuracy")


@dataclass(frozen=True)
class EpochStats:
    """One epoch of a run.

    Attributes
    ----------
    epoch : int
        1-based.
    lr : float
        The rate used during the epoch.
    train_loss, train_accuracy : float
        Mean cross-entropy and accuracy of the minibatches during the epoch, each measured
        before its own update (the usual running figure).
    val_loss, val_accuracy : float or None
        On the validation set after the epoch, computed in the training format (None without
        validation data).
    seconds : float
        Wall time of the epoch.
    stalled_update_share : float or None
        Of the weight elements with a nonzero gradient, the share whose stored value did not
        change (None where not tracked: fp32/fp64).
    overflow_steps : int
        Steps whose gradients held inf/NaN.
    loss_scale : float or None
        The loss scale at the epoch's end.
    """

    epoch: int
    lr: float
    train_loss: float
    train_accuracy: float
    val_loss: float | None
    val_accuracy: float | None
    seconds: float
    stalled_update_share: float | None = None
    overflow_steps: int = 0
    loss_scale: float | None = None

    def summary(self, label: str) -> str:
        """One progress line, e.g. ``[fp16] epoch   3  lr 0.1  train loss 0.5123 ...``."""
        parts = [f"[{label}] epoch {self.epoch:3d}", f"lr {self.lr:.4g}",
                 f"train loss {self.train_loss:.4f}", f"acc {self.train_accuracy:.4f}"]
        if self.val_loss is not None:
            parts += [f"val loss {self.val_loss:.4f}", f"val acc {self.val_accuracy:.4f}"]
        if self.stalled_update_share is not None:
            parts.append(f"stalled {self.stalled_update_share:.1%}")
        if self.overflow_steps:
            parts.append(f"overflow steps {self.overflow_steps}")
        parts.append(f"{self.seconds:.2f}s")
        return "  ".join(parts)


@dataclass(frozen=True)
class History:
    """Per-epoch record of a run plus how it ended.

    Attributes
    ----------
    config : dict
        `TrainConfig.to_dict` of the run.
    label : str
        The precision's label.
    epochs : tuple of EpochStats
    best_epoch : int or None
        1-based epoch with the best monitored value (validation loss unless early stopping
        monitors accuracy; training loss without validation data), whether or not early
        stopping was on.
    stopped_early, restored_best, diverged : bool
    seconds : float
        Wall time of the whole run.
    """

    config: dict[str, Any]
    label: str
    epochs: tuple[EpochStats, ...]
    best_epoch: int | None
    stopped_early: bool
    restored_best: bool
    diverged: bool
    seconds: float

    def column(self, name: str) -> list[float | None]:
        """One `EpochStats` field across the epochs."""
        return [getattr(e, name) for e in self.epochs]

    @property
    def final(self) -> EpochStats:
        """The last epoch run."""
        return self.epochs[-1]

    @property
    def best(self) -> EpochStats | None:
        """The epoch ``best_epoch`` names (None if there is none)."""
        return None if self.best_epoch is None else self.epochs[self.best_epoch - 1]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (non-finite numbers become None, as JSON has no NaN/inf)."""
        d = asdict(self)
        d["epochs"] = [{k: (v if not isinstance(v, float) or math.isfinite(v) else None)
                        for k, v in asdict(e).items()} for e in self.epochs]
        return d

    def save_json(self, path: str | os.PathLike) -> None:
        """Write `to_dict` as strict JSON to ``path`` (``-``: stdout)."""
        write_json(path, self.to_dict())

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "History":
        """Inverse of `to_dict` (a None running loss/accuracy comes back as NaN)."""
        d = dict(d)
        d["epochs"] = tuple(EpochStats(**{k: (math.nan if v is None and k in _MEASURED else v)
                                          for k, v in e.items()}) for e in d["epochs"])
        return cls(**d)

    @classmethod
    def load_json(cls, path: str | os.PathLike) -> "History":
        """Read a file written by `save_json`."""
        with open(path) as f:
            return cls.from_dict(json.load(f))
