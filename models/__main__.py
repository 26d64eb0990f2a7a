"""Command line: ``python -m models train|evaluate|sweep-lr|sweep-epochs``.

Results go to stdout as markdown tables followed by the paths written; progress goes to
stderr. Figures (PNG and SVG) and JSON land in ``--out`` (default ``out/models``).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

from models import checkpoint as ckpt
from models.data import DatasetError, DatasetNotFoundError, load_split
from models.evaluation import RESULT_KEYS, default_targets, evaluate, evaluate_all
from models.config import RECIPES, Precision, TrainConfig
from models.training import train

DEFAULT_OUT = Path("out") / "models"


# ---- output helpers ----------------------------------------------------------------------------
def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if not math.isfinite(v):
            return str(v)
        if v == 0:
            return "0"
        return f"{v:.4g}" if abs(v) < 1e-3 or abs(v) >= 1e5 else f"{v:.4f}"
    return str(v)


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-flavoured markdown table (numbers right-aligned)."""
    cells = [[_fmt(v) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    numeric = [all(isinstance(row[i], (int, float)) or row[i] is None for row in rows)
               for i in range(len(headers))]
    out = ["| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths)) + " |",
           "|" + "|".join(("-" * (w + 1) + ":") if num else ("-" * (w + 2))
                          for w, num in zip(widths, numeric)) + "|"]
    for r in cells:
        out.append("| " + " | ".join(c.rjust(w) if num else c.ljust(w)
                                     for c, w, num in zip(r, widths, numeric)) + " |")
    return "\n".join(out)


def _json_safe(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json_safe(x) for x in v]
    return v


def _write_json(path: Path, obj: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        json.dump(_json_safe(obj), f, indent=1, allow_nan=False)
        f.write("\n")
    return path


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---- arguments ---------------------------------------------------------------------------------
def _loss_scale(s: str) -> float | str | None:
    if s.lower() in ("none", "off", "0"):
        return None
    if s.lower() == "dynamic":
        return "dynamic"
    try:
        return float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"loss scale must be none, dynamic or a number, not {s!r}")


def _floats(s: str) -> list[float]:
    try:
        return [float(x) for x in s.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, not {s!r}")


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    g = common.add_argument_group("common")
    g.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory (%(default)s)")
    g.add_argument("--seed", type=int, default=0, help="seed of the per-epoch shuffles (0)")
    g.add_argument("--split-seed", type=int, default=0,
                   help="seed of the train/validation split (0)")
    g.add_argument("--device", default="cpu", help="cpu or cuda (cuda: real TF32 for tf32)")
    g.add_argument("--epochs", type=int, help="epochs (default depends on the command)")
    g.add_argument("--lr", type=float, help="learning rate (default depends on the command)")
    g.add_argument("--batch-size", type=int, help="minibatch size (default per command)")
    g.add_argument("--json", type=Path, help="also write the results to this JSON file")
    g.add_argument("--data-dir", type=Path, help="directory with the Fashion-MNIST IDX files")
    g.add_argument("--download", action="store_true",
                   help="download with torchvision if no local copy is found")
    g.add_argument("--quiet", action="store_true", help="no progress on stderr")

    p = argparse.ArgumentParser(prog="python -m models",
                                description="Softmax regression on Fashion-MNIST under number "
                                            "formats.")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", parents=[common], help="train one model (or one per format)",
                       description="Train softmax regression. Defaults: the tuned FP32 reference "
                                   f"({ckpt.REFERENCE_CONFIG.epochs} epochs, lr "
                                   f"{ckpt.REFERENCE_CONFIG.lr}, batch "
                                   f"{ckpt.REFERENCE_CONFIG.batch_size}, cosine decay, early "
                                   "stopping on validation loss).")
    t.add_argument("--format", default="fp32", help="fp64, fp32, tf32, bf16 or fp16 (fp32)")
    t.add_argument("--master-weights", action="store_true", help="keep FP32 master weights")
    t.add_argument("--loss-scale", type=_loss_scale, default=None,
                   help="none, dynamic, or a power of two (none)")
    t.add_argument("--recipes", help="comma-separated recipe labels, or 'all': train one model "
                                     f"per recipe ({', '.join(RECIPES)})")
    t.add_argument("--weight-decay", type=float)
    t.add_argument("--schedule", choices=("constant", "cosine", "step"))
    t.add_argument("--early-stopping", choices=("none", "val_loss", "val_accuracy"))
    t.add_argument("--patience", type=int)
    t.add_argument("--save", type=Path, help="checkpoint path (default OUT/model_<recipe>.pt)")

    e = sub.add_parser("evaluate", parents=[common], help="evaluate the FP32 model per format",
                       description="Load (or train and cache) the FP32 reference model and "
                                   "evaluate it on the test set under every number format and "
                                   "int8 encoding.")
    e.add_argument("--checkpoint", type=Path, default=ckpt.DEFAULT_CHECKPOINT,
                   help="cached FP32 model (%(default)s); trained if absent")
    e.add_argument("--retrain", action="store_true", help="retrain even if the checkpoint exists")
    e.add_argument("--formats", help="comma-separated formats/encodings (default: all: "
                                     f"{', '.join(default_targets())})")

    lr = sub.add_parser("sweep-lr", parents=[common], help="learning-rate sweep",
                        description="Train at each rate (constant schedule) and compare.")
    lr.add_argument("--rates", type=_floats, help="comma-separated rates (default "
                    "0.001,0.003,0.01,0.03,0.1,0.3,1,3,10)")

    ep = sub.add_parser("sweep-epochs", parents=[common], help="epoch sweep with remedies",
                        description="Long runs at a constant rate, with early stopping, weight "
                                    "decay and decaying rates.")
    ep.add_argument("--weight-decay", type=float, default=1e-3,
                    help="weight decay of the weight-decay variant (%(default)s)")
    return p


class UsageError(ValueError):
    """A command-line value that the library rejected."""


def _override(cfg: TrainConfig, a: argparse.Namespace, **extra: Any) -> TrainConfig:
    changes = {k: v for k, v in (("epochs", a.epochs), ("lr", a.lr),
                                 ("batch_size", a.batch_size)) if v is not None}
    changes.update(seed=a.seed, device=a.device)
    changes.update({k: v for k, v in extra.items() if v is not None})
    try:
        return replace(cfg, **changes)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


# ---- commands ----------------------------------------------------------------------------------
def _write_records(a: argparse.Namespace, name: str, records: Any) -> list[Path]:
    """Write ``records`` as JSON to ``a.out/name`` and, if asked, to ``--json``; the paths."""
    paths = [_write_json(a.out / name, records)]
    if a.json:
        paths.append(_write_json(a.json, records))
    return paths


def _cmd_train(a: argparse.Namespace) -> int:
    from models.checkpoint import save_checkpoint
    from models.plots import plot_history, plot_precision_runs
    from models.sweeps import sweep_precisions

    es = None if a.early_stopping == "none" else a.early_stopping
    written: list[Path] = []
    if not a.recipes:  # check the format before spending time on the data
        try:
            Precision(a.format, master_weights=a.master_weights, loss_scale=a.loss_scale)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    split = load_split(a.data_dir, seed=a.split_seed, download=a.download)
    if a.recipes:
        names = list(RECIPES) if a.recipes == "all" else [r.strip() for r in a.recipes.split(",")]
        unknown = [n for n in names if n not in RECIPES]
        if unknown:
            raise UsageError(f"unknown recipe(s) {unknown}; known: {', '.join(RECIPES)}")
        base = _override(TrainConfig(epochs=10, lr=0.1, batch_size=256), a,
                         weight_decay=a.weight_decay, schedule=a.schedule, early_stopping=es,
                         patience=a.patience)
        runs = sweep_precisions(split, [RECIPES[n] for n in names], base=base,
                                progress=not a.quiet)
        rows = []
        for r in runs:
            f = r.history.final
            stalls = f.stalled_update_share
            rows.append([r.precision.label, len(r.history.epochs), f.train_loss, f.val_loss,
                         f.val_accuracy, r.test_accuracy, stalls,
                         sum(e.overflow_steps for e in r.history.epochs), r.history.diverged,
                         r.history.seconds])
        print(f"Training under each format: {base.epochs} epochs, lr {base.lr}, batch "
              f"{base.batch_size}, {base.schedule} schedule. Test accuracy is evaluated in the "
              "training format.\n")
        print(markdown_table(["recipe", "epochs", "train loss", "val loss", "val acc",
                              "test acc", "stalled (last epoch)", "overflow steps", "diverged",
                              "seconds"], rows))
        written += plot_precision_runs(runs, a.out)
        out = [{"recipe": r.precision.label, "test_accuracy": r.test_accuracy,
                "history": r.history.to_dict()} for r in runs]
        written += _write_records(a, "train_formats.json", out)
    else:
        try:
            prec = Precision(a.format, master_weights=a.master_weights, loss_scale=a.loss_scale)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        cfg = _override(ckpt.REFERENCE_CONFIG, a, precision=prec, weight_decay=a.weight_decay,
                        schedule=a.schedule, patience=a.patience)
        if a.early_stopping is not None:
            cfg = replace(cfg, early_stopping=es)
        model, hist = train(split, cfg, progress=not a.quiet)
        test = evaluate(model, prec.format, split.test_images, split.test_labels)
        rows = [[e.epoch, e.lr, e.train_loss, e.train_accuracy, e.val_loss, e.val_accuracy,
                 e.stalled_update_share, e.overflow_steps] for e in hist.epochs]
        print(f"Training {prec.label}: lr {cfg.lr}, batch {cfg.batch_size}, {cfg.schedule} "
              f"schedule, weight decay {cfg.weight_decay}, early stopping "
              f"{cfg.early_stopping or 'off'}.\n")
        print(markdown_table(["epoch", "lr", "train loss", "train acc", "val loss", "val acc",
                              "stalled", "overflow steps"], rows))
        state = ("diverged" if hist.diverged else
                 f"stopped early, best epoch {hist.best_epoch} restored" if hist.restored_best
                 else f"best epoch {hist.best_epoch}")
        print(f"\n{state}; test accuracy ({prec.format}): {test.accuracy:.4f}; "
              f"{hist.seconds:.1f} s\n")
        stem = "training_" + prec.label.replace("+", "_")
        written += plot_history(hist, a.out, stem)
        written.append(save_checkpoint(a.save or a.out / f"model_{prec.label}.pt", model, cfg,
                                       hist, split.fingerprint()))
        out = {"recipe": prec.label, "test_accuracy": test.accuracy, "history": hist.to_dict()}
        written += _write_records(a, f"{stem}.json", out)
    _print_paths(written)
    return 0


def _cmd_evaluate(a: argparse.Namespace) -> int:
    from models.plots import plot_format_results

    cfg = _override(ckpt.REFERENCE_CONFIG, a)
    split = load_split(a.data_dir, seed=a.split_seed, download=a.download)
    cp = ckpt.load_or_train(a.checkpoint, config=cfg, split=split, retrain=a.retrain,
                            progress=not a.quiet)
    if not a.quiet:
        _log(f"{'trained and saved' if cp.trained_now else 'loaded'} {cp.path}")
    targets = [t.strip() for t in a.formats.split(",")] if a.formats else None
    results = evaluate_all(cp.model, split.test_images, split.test_labels, targets,
                           progress=not a.quiet)
    print(f"Softmax regression (FP32-trained, {cfg.epochs} epochs max, lr {cfg.lr}, batch "
          f"{cfg.batch_size}, {cfg.schedule}) on the {len(split.test_labels)} Fashion-MNIST test "
          "images, evaluated per format: weights and inputs rounded (or int8-encoded), logits "
          "and softmax computed in the format.\n")
    print(markdown_table(list(RESULT_KEYS), [[getattr(r, k) for k in RESULT_KEYS]
                                             for r in results]))
    print()
    records = [r.to_dict() for r in results]
    written = [cp.path]
    written += plot_format_results(results, a.out)
    written += _write_records(a, "formats.json", records)
    _print_paths(written)
    return 0


def _cmd_sweep_lr(a: argparse.Namespace) -> int:
    from models.plots import plot_lr_sweep
    from models.sweeps import DEFAULT_RATES, best_rate, sweep_learning_rates

    split = load_split(a.data_dir, seed=a.split_seed, download=a.download)
    base = _override(TrainConfig(epochs=20, batch_size=128), a)
    runs = sweep_learning_rates(split, a.rates or DEFAULT_RATES, base=base, progress=not a.quiet)
    rows = [[r.lr, r.history.final.train_loss, r.final_val_loss, r.best_val_loss,
             r.val_loss_spread, r.final_val_accuracy, r.test_accuracy, r.diverged]
            for r in runs]
    print(f"Learning-rate sweep: {base.epochs} epochs, batch {base.batch_size}, constant rate, "
          "plain SGD from zero weights. 'diverged': ended non-finite or above the untrained "
          "loss ln 10 = 2.3026. 'bounce': max - min validation loss over the last third.\n")
    print(markdown_table(["lr", "train loss", "val loss", "best val loss", "bounce", "val acc",
                          "test acc", "diverged"], rows))
    try:
        b = best_rate(runs)
        print(f"\nbest rate by final validation loss: {b.lr:g} (val loss {b.final_val_loss:.4f}, "
              f"val acc {b.final_val_accuracy:.4f})")
    except ValueError as exc:
        print(f"\n{exc}")
    div = [r.lr for r in runs if r.diverged]
    print(f"diverged: {', '.join(f'{x:g}' for x in div) if div else 'none'}\n")
    out = [{"lr": r.lr, "final_train_loss": r.history.final.train_loss,
            "final_val_loss": r.final_val_loss, "best_val_loss": r.best_val_loss,
            "final_val_accuracy": r.final_val_accuracy, "test_accuracy": r.test_accuracy,
            "diverged": r.diverged, "history": r.history.to_dict()} for r in runs]
    written = plot_lr_sweep(runs, a.out)
    written += _write_records(a, "lr_sweep.json", out)
    _print_paths(written)
    return 0


def _cmd_sweep_epochs(a: argparse.Namespace) -> int:
    from models.plots import plot_epoch_sweep
    from models.sweeps import epoch_variants, sweep_epochs

    split = load_split(a.data_dir, seed=a.split_seed, download=a.download)
    variants = epoch_variants(a.epochs or 50, lr=a.lr or 0.3, batch_size=a.batch_size or 128,
                              seed=a.seed, weight_decay=a.weight_decay)
    variants = [replace(v, config=replace(v.config, device=a.device)) for v in variants]
    runs = sweep_epochs(split, variants, progress=not a.quiet)
    rows = []
    for r in runs:
        h = r.history
        kept = h.best if h.restored_best else h.final
        rows.append([r.name, len(h.epochs), h.best_epoch, h.best.val_loss, h.final.val_loss,
                     h.final.train_loss, kept.epoch, kept.val_loss, kept.val_accuracy,
                     r.test_accuracy])
    cfg = variants[0].config
    print(f"Epoch sweep: up to {cfg.epochs} epochs, lr {cfg.lr}, batch {cfg.batch_size}. "
          "'best epoch': lowest validation loss (where validation stops improving); 'kept': "
          "the weights the run returns (the best epoch's where early stopping restored them). "
          "Test accuracy is each run's final figure, not used to choose.\n")
    print(markdown_table(["variant", "epochs run", "best epoch", "best val loss",
                          "last val loss", "last train loss", "kept epoch", "kept val loss",
                          "kept val acc", "test acc"], rows))
    print()
    out = [{"name": r.name, "config": r.history.config, "best_epoch": r.history.best_epoch,
            "stopped_early": r.history.stopped_early, "test_accuracy": r.test_accuracy,
            "history": r.history.to_dict()} for r in runs]
    written = plot_epoch_sweep(runs, a.out)
    written += _write_records(a, "epoch_sweep.json", out)
    _print_paths(written)
    return 0


def _print_paths(paths: Sequence[Path]) -> None:
    print("Wrote:")
    for p in paths:
        print(f"- {p}")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (2 for a data or checkpoint problem)."""
    args = _parser().parse_args(argv)
    commands = {"train": _cmd_train, "evaluate": _cmd_evaluate, "sweep-lr": _cmd_sweep_lr,
                "sweep-epochs": _cmd_sweep_epochs}
    if args.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            print(f"error: --device {args.device}: torch.cuda.is_available() is False (no GPU "
                  "or no CUDA build); use --device cpu", file=sys.stderr)
            return 2
    try:
        return commands[args.command](args)
    except (DatasetError, DatasetNotFoundError, ckpt.CheckpointError, UsageError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
