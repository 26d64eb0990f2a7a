"""Deprecated alias of `models.training` (with `models.config` and `models.history`).

The trainer module used to be ``models/train.py``, which clashed with the function
``models.train``: the package attribute is the function, so ``import models.train as m`` gave
the function, not the module. The module is now ``models.training``. This alias keeps
``from models.train import TrainConfig, Trainer`` working; importing it warns. Importing a
submodule makes it an attribute of its package, so this module would replace the function
``models.train``: it is therefore callable, with the function's signature and result.
"""

from __future__ import annotations

import sys
import types
import warnings
from typing import Any

from models.config import (RECIPES, TRAINABLE_FORMATS, Precision, TrainConfig, lr_at_epoch,
                           with_precision)
from models.history import EpochStats, History
from models.training import Trainer, train

__all__ = ["Precision", "RECIPES", "TRAINABLE_FORMATS", "TrainConfig", "EpochStats", "History",
           "Trainer", "train", "lr_at_epoch", "with_precision"]

warnings.warn("the module models.train is deprecated: import from models, models.training, "
              "models.config or models.history (models.train stays the training function)",
              DeprecationWarning, stacklevel=2)


class _CallableModule(types.ModuleType):
    """A module that, called, runs `models.training.train` (see the module docstring)."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return train(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
