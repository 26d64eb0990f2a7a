"""Command line: ``python -m models train|evaluate|sweep-lr|sweep-epochs``.

Every argument is checked before any data is read or any model trained: numbers by their
argparse types (`numfmt.cli.positive_int` and friends), format names and recipe labels all at
once, output paths with `numfmt.cli.check_output_file` / `check_output_dir` (nothing is created
outside ``--out`` and the checkpoint's directory). A bad value ends in one ``error:`` line and
exit status 2. Results go to stdout as markdown tables followed by the paths written (to stderr
instead when ``--json -`` puts the JSON on stdout); progress goes to stderr unless ``--quiet``.
Figures (PNG and SVG) and JSON land in ``--out`` (default ``out/models``). The commands
themselves are `models.commands`.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Sequence

from numfmt import ACCUMULATIONS
from numfmt.cli import (CliError, check_output_dir, check_output_file, nonnegative_float,
                        positive_float, positive_int, run_cli)

from models import checkpoint as ckpt
from models.config import RECIPES, Precision, canonical_device
from models.data import DatasetError, DatasetNotFoundError
from models.evaluation import default_targets, target_name

__all__ = ["DEFAULT_OUT", "build_parser", "check_arguments", "main"]

DEFAULT_OUT = Path("out") / "models"


# ---- argument types ----------------------------------------------------------------------------
def _loss_scale(s: str) -> float | str | None:
    if s.strip().lower() in ("none", "off"):
        return None
    if s.strip().lower() == "dynamic":
        return "dynamic"
    try:
        v = float(s)
    except ValueError:
        v = math.nan
    if not (math.isfinite(v) and v > 0 and math.frexp(v)[0] == 0.5):
        raise argparse.ArgumentTypeError(f"loss scale must be none, dynamic or a positive power "
                                         f"of two, not {s!r}")
    return v


def _rates(s: str) -> list[float]:
    parts = [x.strip() for x in s.split(",")]
    if any(not x for x in parts):
        raise argparse.ArgumentTypeError(f"empty entry in {s!r} (give comma-separated rates)")
    return [positive_float(x) for x in parts]


def _names(s: str) -> list[str]:
    parts = [x.strip() for x in s.split(",")]
    if any(not x for x in parts):
        raise argparse.ArgumentTypeError(f"empty name in {s!r} (give comma-separated names)")
    return parts


def _device(s: str) -> str:
    try:
        return canonical_device(s)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


# ---- the parser --------------------------------------------------------------------------------
class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad argument as `CliError` (one ``error:`` line, status 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise CliError(f"{message} (see {self.prog} --help)")


def _common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    g = common.add_argument_group("common")
    g.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory (%(default)s)")
    g.add_argument("--seed", type=int, default=0, help="seed of the per-epoch shuffles (0)")
    g.add_argument("--split-seed", type=int, default=0,
                   help="seed of the train/validation split (0)")
    g.add_argument("--device", type=_device, default="cpu",
                   help="cpu or cuda[:N] (cuda: real TF32 for tf32)")
    g.add_argument("--epochs", type=positive_int, help="epochs (default depends on the command)")
    g.add_argument("--lr", type=positive_float,
                   help="learning rate (default depends on the command)")
    g.add_argument("--batch-size", type=positive_int, help="minibatch size (default per command)")
    g.add_argument("--json", type=Path, metavar="FILE",
                   help="also write the results to this JSON file ('-': stdout)")
    g.add_argument("--data-dir", type=Path, help="directory with the Fashion-MNIST IDX files")
    g.add_argument("--download", action="store_true",
                   help="download with torchvision if no local copy is found")
    g.add_argument("--quiet", action="store_true", help="no progress on stderr")
    return common


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m models`` argument parser (four subcommands)."""
    common = _common()
    p = _Parser(prog="python -m models", description="Softmax regression on "
                                "Fashion-MNIST under number formats.")
    sub = p.add_subparsers(dest="command", required=True)
    ref = ckpt.REFERENCE_CONFIG
    t = sub.add_parser("train", parents=[common], help="train one model (or one per format)",
                       description=f"Train softmax regression. Defaults: the tuned FP32 "
                       f"reference ({ref.epochs} epochs, lr {ref.lr}, batch {ref.batch_size}, "
                       "cosine decay, early stopping on validation loss).")
    t.add_argument("--format", default="fp32", help="fp64, fp32, tf32, bf16 or fp16 (fp32)")
    t.add_argument("--master-weights", action="store_true", help="keep FP32 master weights")
    t.add_argument("--loss-scale", type=_loss_scale, default=None,
                   help="none, dynamic, or a power of two (none)")
    t.add_argument("--recipes", type=_names, help="comma-separated recipe labels, or 'all': "
                   f"train one model per recipe ({', '.join(RECIPES)})")
    t.add_argument("--weight-decay", type=nonnegative_float)
    t.add_argument("--schedule", choices=("constant", "cosine", "step"))
    t.add_argument("--early-stopping", choices=("none", "val_loss", "val_accuracy"))
    t.add_argument("--patience", type=positive_int)
    t.add_argument("--save", type=Path, help="checkpoint path (default OUT/model_<recipe>.pt)")

    e = sub.add_parser("evaluate", parents=[common], help="evaluate the FP32 model per format",
                       description="Load (or train and cache) the FP32 reference model and "
                       "evaluate it on the test set under every number format, int8 "
                       "encoding and block-scaled format (MX, NVFP4: weights blocked along "
                       "the input features; '<format>_w_x' block-rounds the inputs too); "
                       "writes formats.png and bits_accuracy.png (accuracy against bits per "
                       "weight) to --out.")
    e.add_argument("--checkpoint", type=Path, default=ckpt.DEFAULT_CHECKPOINT,
                   help="cached FP32 model (%(default)s); trained if absent")
    e.add_argument("--retrain", action="store_true", help="retrain even if the checkpoint exists")
    e.add_argument("--formats", type=_names, help="comma-separated formats/encodings (default: "
                   f"all: {', '.join(default_targets())})")
    e.add_argument("--accumulation", choices=ACCUMULATIONS, default="torch",
                   help="how the in-format softmax sums: as torch does (float32 accumulator "
                   "for the narrow formats, rounded once), every partial sum rounded "
                   "(sequential), or exactly (%(default)s)")

    lr = sub.add_parser("sweep-lr", parents=[common], help="learning-rate sweep",
                        description="Train at each rate (constant schedule) and compare.")
    lr.add_argument("--rates", type=_rates, help="comma-separated positive rates (default "
                    "0.001,0.003,0.01,0.03,0.1,0.3,1,3,10)")

    ep = sub.add_parser("sweep-epochs", parents=[common], help="epoch sweep with remedies",
                        description="Long runs at a constant rate, with early stopping, weight "
                        "decay and decaying rates.")
    ep.add_argument("--weight-decay", type=nonnegative_float, default=1e-3,
                    help="weight decay of the weight-decay variant (%(default)s)")
    return p


# ---- checks before any work --------------------------------------------------------------------
def _check_checkpoint(a: argparse.Namespace) -> None:
    p = a.checkpoint
    if p.is_dir():
        raise CliError(f"--checkpoint: {p} is a directory, not a checkpoint file")
    if p == ckpt.DEFAULT_CHECKPOINT:
        check_output_dir(p.parent, "--checkpoint", create=False)  # ours: created when saved
    elif not (p.is_file() and not a.retrain):
        check_output_file(p, "--checkpoint", allow_stdout=False)


def _check_recipes(a: argparse.Namespace) -> None:
    if a.recipes:
        names = list(RECIPES) if a.recipes == ["all"] else a.recipes
        unknown = [n for n in names if n not in RECIPES]
        if unknown:
            raise CliError(f"unknown recipe(s) {', '.join(unknown)}; known: "
                           f"{', '.join(RECIPES)}")
        a.recipes = names
        return
    try:
        Precision(a.format, master_weights=a.master_weights, loss_scale=a.loss_scale)
    except (TypeError, ValueError) as exc:
        raise CliError(f"--format {a.format}: {exc}") from None


def check_arguments(a: argparse.Namespace) -> None:
    """Check what argparse cannot (names, combinations, paths, the device); create ``--out``.

    Raises
    ------
    CliError
        For the first bad argument, before any data is read.
    """
    if a.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise CliError(f"--device {a.device}: torch.cuda.is_available() is False (no GPU "
                           "or no CUDA build); use --device cpu")
    if a.data_dir is not None and not a.data_dir.is_dir():
        raise CliError(f"--data-dir: {a.data_dir} is not a directory")
    if a.command == "train":
        _check_recipes(a)
        if a.save is not None:
            if a.recipes:
                raise CliError("--save names one checkpoint; --recipes trains several")
            check_output_file(a.save, "--save", allow_stdout=False)
    if a.command == "evaluate":
        if a.formats is not None:
            try:
                a.formats = [target_name(t) for t in a.formats]
            except ValueError as exc:
                raise CliError(f"--formats: {exc}") from None
        _check_checkpoint(a)
    check_output_file(a.json, "--json")
    check_output_dir(a.out, "--out")


def _main(argv: Sequence[str] | None) -> int:
    from models import commands

    args = build_parser().parse_args(argv)
    check_arguments(args)
    run = {"train": commands.train, "evaluate": commands.evaluate,
           "sweep-lr": commands.sweep_lr, "sweep-epochs": commands.sweep_epochs}[args.command]
    try:
        return run(args)
    except (DatasetError, DatasetNotFoundError, ckpt.CheckpointError) as exc:
        raise CliError(str(exc)) from None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (2 for a bad argument, data or checkpoint)."""
    return run_cli(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
