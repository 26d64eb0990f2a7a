"""Figures for the sweeps and the per-format evaluation, written as PNG and SVG.

Figures are built on `matplotlib.figure.Figure` with the Agg canvas directly (no pyplot, no
global backend switch, no display needed). Each function returns the paths it wrote.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Sequence

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from models.evaluation import ENCODINGS, FormatResult
from models.sweeps import UNTRAINED_LOSS, EpochRun, LrRun, PrecisionRun, best_rate
from models.history import History

__all__ = ["save", "plot_history", "plot_format_results", "plot_lr_sweep", "plot_epoch_sweep",
           "plot_precision_runs"]


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save(fig: Figure, out_dir: str | os.PathLike, stem: str) -> list[Path]:
    """Write ``fig`` as ``out_dir/stem.png`` (150 dpi) and ``.svg``; returns both paths."""
    d = Path(out_dir)
    d.mkdir(parents=True, exist_ok=True)
    paths = [d / f"{stem}.png", d / f"{stem}.svg"]
    fig.savefig(paths[0], dpi=150)
    fig.savefig(paths[1])
    return paths


def _epochs(h: History) -> list[int]:
    return [e.epoch for e in h.epochs]


def _clean(values: Sequence[float | None]) -> list[float]:
    return [math.nan if v is None else v for v in values]


def plot_history(history: History, out_dir: str | os.PathLike,
                 stem: str = "training") -> list[Path]:
    """Loss (train, validation) and accuracy per epoch of one run; the best epoch marked."""
    fig = _figure(10, 4)
    ax1, ax2 = fig.subplots(1, 2)
    ep = _epochs(history)
    ax1.plot(ep, _clean(history.column("train_loss")), label="train (running)")
    ax2.plot(ep, _clean(history.column("train_accuracy")), label="train (running)")
    if history.epochs and history.epochs[0].val_loss is not None:
        ax1.plot(ep, _clean(history.column("val_loss")), label="validation")
        ax2.plot(ep, _clean(history.column("val_accuracy")), label="validation")
    if history.best_epoch:
        for ax in (ax1, ax2):
            ax.axvline(history.best_epoch, color="grey", ls=":",
                       label=f"best epoch {history.best_epoch}")
    ax1.set(xlabel="epoch", ylabel="cross-entropy", title=f"{history.label}: loss")
    ax2.set(xlabel="epoch", ylabel="accuracy", title=f"{history.label}: accuracy")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        ax.legend()
    return save(fig, out_dir, stem)


def plot_format_results(results: Sequence[FormatResult], out_dir: str | os.PathLike,
                        stem: str = "formats") -> list[Path]:
    """Test accuracy per format (bars, FP64 as a reference line) above the share of samples
    whose naive and max-subtracted softmax overflowed."""
    names = [r.format for r in results]
    fig = _figure(11, 7.5)
    ax1, ax2 = fig.subplots(2, 1, sharex=True)
    xs = list(range(len(names)))
    acc = [r.accuracy for r in results]
    bars = ax1.bar(xs, acc, color=["#dd8452" if n in ENCODINGS else "#4c72b0" for n in names])
    ref = next((r.accuracy for r in results if r.format == "fp64"), None)
    lo = min(acc)
    bottom = max(0.0, min(lo - 0.05, (ref or lo) - 0.05))
    ax1.set_ylim(bottom, 1.0)
    for b, r in zip(bars, results):
        x = b.get_x() + b.get_width() / 2
        ax1.annotate(f"{r.accuracy:.4f}", (x, 1.0), xytext=(0, -3), textcoords="offset points",
                     ha="center", va="top", fontsize=8, fontweight="bold")
        agree = f"agrees\nwith FP64\n{math.floor(r.agreement_fp64 * 10000) / 100:.2f}%"
        inside = r.accuracy - bottom > 0.12
        ax1.annotate(agree, (x, r.accuracy if inside else r.accuracy),
                     xytext=(0, -4 if inside else 3), textcoords="offset points", ha="center",
                     va="top" if inside else "bottom", fontsize=7,
                     color="white" if inside else "black")
    if ref is not None:
        ax1.axhline(ref, color="black", lw=0.8, ls="--", label=f"FP64 accuracy {ref:.4f}")
        ax1.legend(loc="lower left")
    ax1.set(ylabel="test accuracy (top label)", title="Softmax regression on Fashion-MNIST: "
            "test accuracy per number format (weights, inputs, logits, softmax in the format)")
    w = 0.38
    naive = [r.naive_softmax_overflow_share for r in results]
    stable = [r.stable_softmax_overflow_share for r in results]
    ax2.bar([x - w / 2 for x in xs], naive, w, color="#c44e52", label="naive exp(z)/sum exp(z)")
    ax2.bar([x + w / 2 for x in xs], stable, w, color="#55a868",
            label="max-subtracted" + (" (0 for every format)" if not any(stable) else ""))
    for x, v in zip(xs, naive):
        ax2.annotate(f"{v:.1%}", (x - w / 2, v), ha="center", va="bottom", fontsize=7)
    ax2.set(ylabel="share of test samples", ylim=(0, 1.1),
            title="Softmax failures: share of test samples whose softmax gave inf/NaN (or a value "
                  "clamped at max, in formats with neither)")
    ax2.set_xticks(xs, names, rotation=30, ha="right")
    ax2.legend(loc="upper left")
    for ax in (ax1, ax2):
        ax.grid(axis="y", alpha=0.3)
    return save(fig, out_dir, stem)


def plot_lr_sweep(runs: Sequence[LrRun], out_dir: str | os.PathLike,
                  stem: str = "lr_sweep") -> list[Path]:
    """Validation loss per epoch for each rate (left) and final validation loss and accuracy
    against the rate (right); diverged rates marked, the best rate starred."""
    import matplotlib

    fig = _figure(13, 5.6)
    ax1, ax2 = fig.subplots(1, 2)
    cmap = matplotlib.colormaps["plasma"]
    n = max(len(runs) - 1, 1)
    for i, r in enumerate(runs):
        ax1.plot(_epochs(r.history), _clean(r.history.column("val_loss")), color=cmap(0.85 * i / n),
                 ls="--" if r.diverged else "-",
                 label=f"lr {r.lr:g}" + (" (diverged)" if r.diverged else ""))
    ax1.axhline(UNTRAINED_LOSS, color="red", lw=0.8, ls=":", label="untrained ln 10")
    ax1.set(xlabel="epoch", ylabel="validation cross-entropy (log scale)", yscale="log",
            title="Validation loss per learning rate")
    ax1.legend(fontsize=7, ncols=2, loc="upper right")
    ax1.grid(alpha=0.3, which="both")

    lrs = [r.lr for r in runs]
    loss = [r.final_val_loss if r.final_val_loss is not None else math.nan for r in runs]
    accs = [r.final_val_accuracy if r.final_val_accuracy is not None else math.nan for r in runs]
    ax2.plot(lrs, loss, "o-", color="#c44e52", label="final validation loss")
    ax2.set(xscale="log", yscale="log", xlabel="learning rate", ylabel="final validation loss",
            title="Final loss and accuracy against the rate")
    ax3 = ax2.twinx()
    ax3.plot(lrs, accs, "s-", color="#4c72b0", label="final validation accuracy")
    ax3.set(ylabel="final validation accuracy")
    labelled = False
    for r in runs:
        if r.diverged:
            y = r.final_val_loss if r.final_val_loss is not None and math.isfinite(
                r.final_val_loss) else min(max(v for v in loss if math.isfinite(v)), 1e3)
            ax2.plot([r.lr], [y], "x", color="red", ms=12, mew=2,
                     label=None if labelled else "diverged (ended above ln 10)")
            labelled = True
    try:
        b = best_rate(list(runs))
        ax2.plot([b.lr], [b.final_val_loss], "*", color="gold", ms=18, mec="black",
                 label=f"best lr {b.lr:g}")
    except ValueError:
        pass
    h1, l1 = ax2.get_legend_handles_labels()
    h2, l2 = ax3.get_legend_handles_labels()
    ax2.legend(h1 + h2, l1 + l2, fontsize=8, ncols=3, loc="upper center",
               bbox_to_anchor=(0.5, -0.14))
    ax2.grid(alpha=0.3, which="both")
    return save(fig, out_dir, stem)


def plot_epoch_sweep(runs: Sequence[EpochRun], out_dir: str | os.PathLike,
                     stem: str = "epoch_sweep") -> list[Path]:
    """Validation loss, training loss and validation accuracy per epoch for each variant; a dot
    marks each run's best validation epoch, a cross the epoch where early stopping ended it."""
    import matplotlib

    fig = _figure(16, 5.8)
    ax1, ax2, ax3 = fig.subplots(1, 3)
    colors = matplotlib.colormaps["tab10"]
    for i, r in enumerate(runs):
        h, c = r.history, colors(i)
        ep = _epochs(h)
        # runs cut short by early stopping are drawn on top, or the longer ones hide them
        lw, z = (2.4, 5) if h.stopped_early else (1.2, 2)
        ax1.plot(ep, _clean(h.column("val_loss")), color=c, lw=lw, zorder=z,
                 label=f"{r.name} (test acc {r.test_accuracy:.4f})")
        ax2.plot(ep, _clean(h.column("train_loss")), color=c, lw=lw, zorder=z, label=r.name)
        ax3.plot(ep, _clean(h.column("val_accuracy")), color=c, lw=lw, zorder=z, label=r.name)
        if h.best is not None:
            ax1.plot([h.best_epoch], [h.best.val_loss], "o", color=c, ms=7, mec="black", zorder=6)
            ax3.plot([h.best_epoch], [h.best.val_accuracy], "o", color=c, ms=7, mec="black",
                     zorder=6)
        if h.stopped_early:
            ax1.plot([ep[-1]], [h.final.val_loss], "X", color=c, ms=10, mec="black", zorder=6)
    vals = [v for r in runs for v in _clean(r.history.column("val_loss")) if math.isfinite(v)]
    lo = min(vals, default=0.3)
    ax1.set_ylim(lo * 0.95, lo * 2)
    ax1.set(xlabel="epoch", ylabel="validation cross-entropy",
            title="Validation loss (dot: best epoch, X: early stop)")
    trains = [v for r in runs for v in _clean(r.history.column("train_loss")) if math.isfinite(v)]
    tlo = min(trains, default=0.3)
    ax2.set_ylim(tlo * 0.95, tlo * 2)
    ax2.set(xlabel="epoch", ylabel="training cross-entropy (running)", title="Training loss")
    ax3.set(xlabel="epoch", ylabel="validation accuracy", title="Validation accuracy")
    accs = [v for r in runs for v in _clean(r.history.column("val_accuracy")) if math.isfinite(v)]
    if accs:
        ax3.set_ylim(max(accs) - 0.08, max(accs) + 0.01)
    handles, labels = ax1.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=3, fontsize=8)
    for ax in (ax1, ax2, ax3):
        ax.grid(alpha=0.3)
    return save(fig, out_dir, stem)


def plot_precision_runs(runs: Sequence[PrecisionRun], out_dir: str | os.PathLike,
                        stem: str = "train_formats") -> list[Path]:
    """Per training recipe: training loss, validation accuracy and the share of weight updates
    lost to rounding (stalled), per epoch. Dashed: the format holds the weights alone."""
    import matplotlib

    fig = _figure(15, 5.6)
    ax1, ax2, ax3 = fig.subplots(1, 3)
    colors = matplotlib.colormaps["tab10"]
    for i, r in enumerate(runs):
        h, c = r.history, colors(i % 10)
        ep = _epochs(h)
        ls = "-" if r.precision.master_weights or not r.precision.reduced else "--"
        acc = f"{r.test_accuracy:.4f}" if r.test_accuracy is not None else "diverged"
        ax1.plot(ep, _clean(h.column("train_loss")), color=c, ls=ls,
                 label=f"{r.precision.label} (test acc {acc})")
        ax2.plot(ep, _clean(h.column("val_accuracy")), color=c, ls=ls)
        stalls = h.column("stalled_update_share")
        if any(s is not None for s in stalls):
            ax3.plot(ep, _clean(stalls), color=c, ls=ls)
    ax1.set(xlabel="epoch", ylabel="training cross-entropy (running)", title="Training loss")
    ax2.set(xlabel="epoch", ylabel="validation accuracy", title="Validation accuracy")
    ax3.set(xlabel="epoch", ylabel="share of weight updates lost",
            title="Stalled updates: w - lr*g rounds back to w")
    for ax in (ax1, ax2, ax3):
        ax.grid(alpha=0.3)
    fig.suptitle("Training under each format (dashed: the format holds the weights alone, "
                 "no FP32 master copy)")
    handles, labels = ax1.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=4, fontsize=8)
    return save(fig, out_dir, stem)
