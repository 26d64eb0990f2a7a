"""Softmax regression on the real Fashion-MNIST, trained and evaluated under number formats.

Modules: `models.data` (loading and validating the IDX files, the seeded split),
`models.softmax_regression` (the model), `models.config` (`TrainConfig`, `Precision`: formats,
master weights, loss scaling), `models.training` (the fast seeded SGD trainer, early stopping;
its `train` function is `models.train`), `models.history` (what a run records),
`models.evaluation` (the model under every `numfmt` format, `quant` encoding and block
format), `models.checkpoint` (validated checkpoints and the cached
FP32 reference), `models.sweeps` and `models.plots` (learning-rate / epoch / format sweeps and
their figures). Command line: ``python -m models train|evaluate|sweep-lr|sweep-epochs``.
"""

from models.checkpoint import (DEFAULT_CHECKPOINT, REFERENCE_CONFIG, Checkpoint, CheckpointError,
                               load_checkpoint, load_or_train, save_checkpoint,
                               train_fp32_reference)
from models.data import (CLASSES, DatasetError, DatasetNotFoundError, FashionMNIST, Split,
                         fashion_mnist, load_split, split_train_validation)
from models.evaluation import (ENCODINGS, RESULT_KEYS, FormatResult, evaluate, evaluate_all,
                             run_in_format, softmax_in_format)
from models.softmax_regression import SoftmaxRegression
from models.config import RECIPES, Precision, TrainConfig
from models.history import EpochStats, History
from models.training import Trainer, train

__all__ = [
    "CLASSES", "DatasetError", "DatasetNotFoundError", "FashionMNIST", "Split", "fashion_mnist",
    "load_split", "split_train_validation", "SoftmaxRegression", "RECIPES", "EpochStats",
    "History", "Precision", "TrainConfig", "Trainer", "train", "ENCODINGS", "RESULT_KEYS",
    "FormatResult", "evaluate", "evaluate_all", "run_in_format", "softmax_in_format",
    "DEFAULT_CHECKPOINT", "REFERENCE_CONFIG", "Checkpoint", "CheckpointError", "load_checkpoint",
    "load_or_train", "save_checkpoint", "train_fp32_reference",
]
