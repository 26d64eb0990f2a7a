"""The four commands of ``python -m models`` (arguments parsed and checked by `models.cli`).

Each takes the checked ``argparse.Namespace`` and returns the exit status. Tables go to the
report stream (stdout, or stderr when ``--json -`` claims stdout), progress to stderr unless
``--quiet``.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence, TextIO

from numfmt.cli import CliError, Progress, markdown_table, write_json

from models import checkpoint as ckpt
from models.config import RECIPES, Precision, TrainConfig
from models.data import load_split
from models.evaluation import RESULT_KEYS, evaluate, evaluate_all, weight_bits
from models.training import train as train_model

__all__ = ["train", "evaluate", "sweep_lr", "sweep_epochs", "cell", "table"]

# Table headers of the evaluation, by record key (the JSON keeps the keys).
_RESULT_HEADERS = {"agreement_fp64": "agrees with fp64",
                   "cross_entropy_in_format": "loss in format",
                   "cross_entropy_of_logits": "loss (logits scored in fp64)",
                   "max_abs_prob_err": "max abs p err",
                   "naive_softmax_overflow_share": "naive softmax overflow",
                   "stable_softmax_overflow_share": "stable softmax overflow",
                   "weight_bytes": "weight bytes"}


def cell(v: Any) -> str:
    """A table cell: None as 'n/a', bools yes/no, floats to 4 decimals (or 4 digits), NaN and
    inf as nan/inf."""
    if v is None:
        return "n/a"
    if isinstance(v, float) and math.isnan(v):
        return "nan"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if math.isinf(v) or v == 0:
            return str(v) if v else "0"
        return f"{v:.4g}" if abs(v) < 1e-3 or abs(v) >= 1e5 else f"{v:.4f}"
    return str(v)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A markdown table of ``rows`` (cells by `cell`, numeric columns right-aligned)."""
    numeric = [all(isinstance(r[i], (int, float)) or r[i] is None for r in rows)
               for i in range(len(headers))]
    return markdown_table(headers, [[cell(v) for v in r] for r in rows],
                          ["r" if n else "l" for n in numeric])


def _out(a: argparse.Namespace) -> TextIO:
    return sys.stderr if a.json is not None and str(a.json) == "-" else sys.stdout


def _finish(a: argparse.Namespace, name: str, records: Any, written: list[Path]) -> int:
    """Write ``records`` to ``--out/name`` and ``--json``; list the paths written."""
    written = written + [write_json(a.out / name, records)]
    if a.json is not None:
        write_json(a.json, records)
        if str(a.json) != "-":
            written.append(a.json)
    print("Wrote:", file=_out(a))
    for p in written:
        print(f"- {p}", file=_out(a))
    return 0


def _config(cfg: TrainConfig, a: argparse.Namespace, **extra: Any) -> TrainConfig:
    """``cfg`` with the command line's epochs/lr/batch size, seed, device and ``extra``."""
    changes = {k: v for k, v in (("epochs", a.epochs), ("lr", a.lr),
                                 ("batch_size", a.batch_size)) if v is not None}
    changes.update(seed=a.seed, device=a.device)
    changes.update({k: v for k, v in extra.items() if v is not None})
    try:
        return replace(cfg, **changes)
    except (TypeError, ValueError) as exc:
        raise CliError(str(exc)) from None


def _split(a: argparse.Namespace):
    return load_split(a.data_dir, seed=a.split_seed, download=a.download)


# ---- train -------------------------------------------------------------------------------------
def _train_recipes(a: argparse.Namespace, split: Any, es: str | None) -> int:
    from models.plots import plot_precision_runs
    from models.sweeps import sweep_precisions

    base = _config(TrainConfig(epochs=10, lr=0.1, batch_size=256), a,
                   weight_decay=a.weight_decay, schedule=a.schedule, early_stopping=es,
                   patience=a.patience)
    runs = sweep_precisions(split, [RECIPES[n] for n in a.recipes], base=base,
                            progress=not a.quiet)
    rows = [[r.precision.label, len(r.history.epochs), r.history.final.train_loss,
             r.history.final.val_loss, r.history.final.val_accuracy, r.test_accuracy,
             r.history.final.stalled_update_share,
             sum(e.overflow_steps for e in r.history.epochs), r.history.diverged,
             r.history.seconds] for r in runs]
    print(f"Training under each format: {base.epochs} epochs, lr {base.lr}, batch "
          f"{base.batch_size}, {base.schedule} schedule. Test accuracy is evaluated in the "
          "training format.\n", file=_out(a))
    print(table(["recipe", "epochs", "train loss", "val loss", "val acc", "test acc",
                 "stalled (last epoch)", "overflow steps", "diverged", "seconds"], rows),
          file=_out(a))
    written = plot_precision_runs(runs, a.out)
    out = [{"recipe": r.precision.label, "test_accuracy": r.test_accuracy,
            "history": r.history.to_dict()} for r in runs]
    return _finish(a, "train_formats.json", out, written)


def _train_one(a: argparse.Namespace, split: Any, es: str | None) -> int:
    from models.plots import plot_history

    prec = Precision(a.format, master_weights=a.master_weights, loss_scale=a.loss_scale)
    cfg = _config(ckpt.REFERENCE_CONFIG, a, precision=prec, weight_decay=a.weight_decay,
                  schedule=a.schedule, patience=a.patience)
    if a.early_stopping is not None:
        cfg = replace(cfg, early_stopping=es)
    model, hist = train_model(split, cfg, progress=not a.quiet)
    test = evaluate(model, prec.format, split.test_images, split.test_labels)
    rows = [[e.epoch, e.lr, e.train_loss, e.train_accuracy, e.val_loss, e.val_accuracy,
             e.stalled_update_share, e.overflow_steps] for e in hist.epochs]
    print(f"Training {prec.label}: lr {cfg.lr}, batch {cfg.batch_size}, {cfg.schedule} "
          f"schedule, weight decay {cfg.weight_decay}, early stopping "
          f"{cfg.early_stopping or 'off'}.\n", file=_out(a))
    print(table(["epoch", "lr", "train loss", "train acc", "val loss", "val acc", "stalled",
                 "overflow steps"], rows), file=_out(a))
    state = ("diverged" if hist.diverged else
             f"stopped early, best epoch {hist.best_epoch} restored" if hist.restored_best
             else f"best epoch {hist.best_epoch}")
    print(f"\n{state}; test accuracy ({prec.format}): {test.accuracy:.4f}; "
          f"{hist.seconds:.1f} s\n", file=_out(a))
    stem = "training_" + prec.label.replace("+", "_")
    written = plot_history(hist, a.out, stem)
    written.append(ckpt.save_checkpoint(a.save or a.out / f"model_{prec.label}.pt", model, cfg,
                                        hist, split.fingerprint()))
    out = {"recipe": prec.label, "test_accuracy": test.accuracy, "history": hist.to_dict()}
    return _finish(a, f"{stem}.json", out, written)


def train(a: argparse.Namespace) -> int:
    """``train``: one model under ``--format`` (saved as a checkpoint), or one per recipe."""
    es = None if a.early_stopping == "none" else a.early_stopping
    split = _split(a)
    return _train_recipes(a, split, es) if a.recipes else _train_one(a, split, es)


# ---- evaluate ----------------------------------------------------------------------------------
def evaluate(a: argparse.Namespace) -> int:
    """``evaluate``: the cached FP32 reference model under every format, encoding and block
    format; the per-format figure and accuracy against bits per weight."""
    from models.bits_plot import plot_bits_accuracy
    from models.plots import plot_format_results

    log = Progress(a.quiet)
    cfg = _config(ckpt.REFERENCE_CONFIG, a)
    split = _split(a)
    cp = ckpt.load_or_train(a.checkpoint, config=cfg, split=split, retrain=a.retrain,
                            progress=not a.quiet)
    log(f"{'trained and saved' if cp.trained_now else 'loaded'} {cp.path}")
    results = evaluate_all(cp.model, split.test_images, split.test_labels, a.formats,
                           progress=not a.quiet, accumulation=a.accumulation)
    print(f"Softmax regression (FP32-trained, {cfg.epochs} epochs max, lr {cfg.lr}, batch "
          f"{cfg.batch_size}, {cfg.schedule}) on the {len(split.test_labels)} Fashion-MNIST test "
          "images, evaluated per format: weights and inputs rounded (or int8-encoded), logits "
          f"and softmax computed in the format ({a.accumulation} accumulation of the softmax "
          "sum). 'loss in format': the cross-entropy computed "
          "in the format (narrow formats round confident samples' losses to 0); 'loss (logits "
          "scored in fp64)': the format's logits scored exactly. n/a: integer_only has no "
          "naive softmax. Block formats (mx*, nvfp4*): W blocked along its 784 input features "
          "(each class row cut into blocks of 32, 16 for NVFP4), inputs the exact pixels; "
          "'_w_x': the pixel features block-rounded too; FP32 bias, logits and softmax; weight "
          "bytes include the block scales.\n", file=_out(a))
    headers = [_RESULT_HEADERS.get(k, k) for k in RESULT_KEYS]
    print(table(headers, [[getattr(r, k) for k in RESULT_KEYS] for r in results]) + "\n",
          file=_out(a))
    bits = {r.format: weight_bits(cp.model, r.format) for r in results}
    written = [cp.path] + plot_format_results(results, a.out) + plot_bits_accuracy(
        results, bits, a.out)
    return _finish(a, "formats.json", [r.to_dict() for r in results], written)


# ---- sweeps ------------------------------------------------------------------------------------
def sweep_lr(a: argparse.Namespace) -> int:
    """``sweep-lr``: one constant-rate run per learning rate."""
    from models.plots import plot_lr_sweep
    from models.sweeps import DEFAULT_RATES, best_rate, sweep_learning_rates

    base = _config(TrainConfig(epochs=20, batch_size=128), a)
    split = _split(a)
    runs = sweep_learning_rates(split, a.rates if a.rates is not None else DEFAULT_RATES,
                                base=base, progress=not a.quiet)
    rows = [[r.lr, r.history.final.train_loss, r.final_val_loss, r.best_val_loss,
             r.val_loss_spread, r.final_val_accuracy, r.test_accuracy, r.diverged]
            for r in runs]
    out = _out(a)
    print(f"Learning-rate sweep: {base.epochs} epochs, batch {base.batch_size}, constant rate, "
          "plain SGD from zero weights. 'diverged': ended non-finite or above the untrained "
          "loss ln 10 = 2.3026. 'bounce': max - min validation loss over the last third.\n",
          file=out)
    print(table(["lr", "train loss", "val loss", "best val loss", "bounce", "val acc",
                 "test acc", "diverged"], rows), file=out)
    try:
        b = best_rate(runs)
        print(f"\nbest rate by final validation loss: {b.lr:g} (val loss "
              f"{b.final_val_loss:.4f}, val acc {b.final_val_accuracy:.4f})", file=out)
    except ValueError as exc:
        print(f"\n{exc}", file=out)
    div = [r.lr for r in runs if r.diverged]
    print(f"diverged: {', '.join(f'{x:g}' for x in div) if div else 'none'}\n", file=out)
    records = [{"lr": r.lr, "final_train_loss": r.history.final.train_loss,
                "final_val_loss": r.final_val_loss, "best_val_loss": r.best_val_loss,
                "final_val_accuracy": r.final_val_accuracy, "test_accuracy": r.test_accuracy,
                "diverged": r.diverged, "history": r.history.to_dict()} for r in runs]
    return _finish(a, "lr_sweep.json", records, plot_lr_sweep(runs, a.out))


def sweep_epochs(a: argparse.Namespace) -> int:
    """``sweep-epochs``: long constant-rate runs and one remedy each."""
    from models.plots import plot_epoch_sweep
    from models.sweeps import epoch_variants, sweep_epochs as run_sweep

    variants = epoch_variants(50 if a.epochs is None else a.epochs,
                              lr=0.3 if a.lr is None else a.lr,
                              batch_size=128 if a.batch_size is None else a.batch_size,
                              seed=a.seed, weight_decay=a.weight_decay)
    variants = [replace(v, config=replace(v.config, device=a.device)) for v in variants]
    runs = run_sweep(_split(a), variants, progress=not a.quiet)
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
          "Test accuracy is each run's final figure, not used to choose.\n", file=_out(a))
    print(table(["variant", "epochs run", "best epoch", "best val loss", "last val loss",
                 "last train loss", "kept epoch", "kept val loss", "kept val acc", "test acc"],
                rows) + "\n", file=_out(a))
    records = [{"name": r.name, "config": r.history.config, "best_epoch": r.history.best_epoch,
                "stopped_early": r.history.stopped_early, "test_accuracy": r.test_accuracy,
                "history": r.history.to_dict()} for r in runs]
    return _finish(a, "epoch_sweep.json", records, plot_epoch_sweep(runs, a.out))
