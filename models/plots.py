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
from matplotlib.ticker import MaxNLocator
from numfmt.cli import write_figure

from models.evaluation import BLOCK_TARGETS, ENCODINGS, FormatResult
from models.sweeps import UNTRAINED_LOSS, EpochRun, LrRun, PrecisionRun, best_rate
from models.history import History

__all__ = ["save", "plot_history", "plot_format_results", "plot_lr_sweep", "plot_epoch_sweep",
           "plot_precision_runs", "FLOAT_COLOR", "ENCODING_COLOR", "BLOCK_COLOR"]

# The colours of the three kinds of target, shared by every figure of the formats.
FLOAT_COLOR, ENCODING_COLOR, BLOCK_COLOR = "#4c72b0", "#dd8452", "#55a868"


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save(fig: Figure, out_dir: str | os.PathLike, stem: str) -> list[Path]:
    """Write ``fig`` as ``out_dir/stem.png`` (150 dpi) and ``.svg`` (`numfmt.cli.write_figure`);
    ``out_dir`` is created if missing. Returns both paths."""
    d = Path(out_dir)
    d.mkdir(parents=True, exist_ok=True)
    return write_figure(fig, d / stem)


def _epoch_axis(ax) -> None:
    """Whole epochs only on the x axis (no 2.5-epoch ticks on short runs)."""
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _epochs(h: History) -> list[int]:
    return [e.epoch for e in h.epochs]


def _clean(values: Sequence[float | None]) -> list[float]:
    return [math.nan if v is None else v for v in values]


def _fit_ylim(ax, values: Sequence[float]) -> None:
    """y limits holding every finite value with a 5% margin (log scale past a 4x range)."""
    vals = [v for v in values if math.isfinite(v)]
    if not vals:
        return
    lo, hi = min(vals), max(vals)
    if lo > 0 and hi / lo > 4:
        ax.set_yscale("log")
        ax.set_ylim(lo / 1.1, hi * 1.1)
    else:
        pad = 0.05 * (hi - lo) or 0.05 * abs(hi) or 0.05
        ax.set_ylim(lo - pad, hi + pad)


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
        _epoch_axis(ax)
    return save(fig, out_dir, stem)


def _format_colors(names: Sequence[str]) -> list[str]:
    return [ENCODING_COLOR if n in ENCODINGS else BLOCK_COLOR if n in BLOCK_TARGETS
            else FLOAT_COLOR for n in names]


def _kind_legend(ax) -> None:
    """The legend of the bar colours (float formats, int8 encodings, block formats)."""
    from matplotlib.patches import Patch

    ax.legend(handles=[Patch(color=FLOAT_COLOR, label="float format (numfmt)"),
                       Patch(color=ENCODING_COLOR, label="int8 encoding (quant)"),
                       Patch(color=BLOCK_COLOR, label="block format (MX, NVFP4)")],
              loc="upper right", ncols=3, fontsize=8, framealpha=0.95)


def _accuracy_panel(ax, results: Sequence[FormatResult], xs: list[int]) -> None:
    acc = [r.accuracy for r in results]
    bars = ax.bar(xs, acc, color=_format_colors([r.format for r in results]))
    ax.set_ylim(0, 1.12)  # bars start at 0: their lengths are the accuracies
    for b, r in zip(bars, results):
        x = b.get_x() + b.get_width() / 2
        agree = math.floor(r.agreement_fp64 * 10000) / 100
        ax.annotate(f"{r.accuracy:.4f}", (x, r.accuracy), xytext=(0, 2),
                    textcoords="offset points", ha="center", va="bottom", fontsize=8,
                    fontweight="bold")
        ax.annotate(f"agrees\nwith FP64\n{agree:.2f}%", (x, min(r.accuracy, 0.97)),
                    xytext=(0, -4), textcoords="offset points", ha="center", va="top",
                    fontsize=7, color="white" if r.accuracy > 0.2 else "black")
    _kind_legend(ax)
    ax.set(ylabel="test accuracy (top label)", title="Softmax regression on Fashion-MNIST: "
           "test accuracy per number format (weights, inputs, logits, softmax in the format)")


def _loss_panel(ax, results: Sequence[FormatResult], xs: list[int], w: float) -> None:
    in_fmt = [r.cross_entropy_in_format for r in results]
    exact = [r.cross_entropy_of_logits for r in results]
    ax.bar([x - w / 2 for x in xs], exact, w, color="#8172b3",
           label="loss of the format's logits, scored exactly (fp64)")
    ax.bar([x + w / 2 for x in xs], in_fmt, w, color="#cccccc", edgecolor="#666666",
           label="loss computed in the format (confident samples round to 0)")
    top = max([v for v in exact + in_fmt if math.isfinite(v)], default=1.0)
    ax.set_ylim(0, top * 1.15)
    for x, v in zip(xs, exact):
        if not math.isfinite(v):  # the format's logits themselves overflowed
            ax.annotate("logits\noverflow", (x, 0), ha="center", va="bottom", fontsize=7,
                        color="#c44e52")
    ax.set(ylabel="mean cross-entropy", title="Test loss: the format's logits scored in fp64 "
           "(compare these) beside the loss the format itself computes")
    ax.legend(loc="upper left", fontsize=8)


def _overflow_panel(ax, results: Sequence[FormatResult], xs: list[int], w: float) -> None:
    naive = [r.naive_softmax_overflow_share for r in results]
    stable = [r.stable_softmax_overflow_share for r in results]
    ax.bar([x - w / 2 for x in xs], [0 if v is None else v for v in naive], w,
           color="#c44e52", label="naive exp(z)/sum exp(z)")
    ax.bar([x + w / 2 for x in xs], stable, w, color="#55a868",
           label="max-subtracted" + (" (0 for every format)" if not any(stable) else ""))
    for x, v in zip(xs, stable):
        if v:  # inside the bar: above it would collide with the naive bar's label
            inside = v > 0.1
            ax.annotate(f"{v:.1%}", (x + w / 2, v), xytext=(0, -2 if inside else 1),
                        textcoords="offset points", ha="center", fontsize=7,
                        va="top" if inside else "bottom", rotation=90 if inside else 0,
                        color="white" if inside else "black")
    for x, v in zip(xs, naive):
        ax.annotate("n/a" if v is None else f"{v:.1%}", (x - w / 2, 0 if v is None
                    else v), ha="center", va="bottom", fontsize=7)
    ax.set(ylabel="share of test samples", ylim=(0, 1.1),
           title="Softmax failures: share of test samples with inf/NaN (or, in formats "
                 "with neither, a value clamped at max); n/a: has no naive softmax")
    ax.legend(loc="upper left", fontsize=8)


def plot_format_results(results: Sequence[FormatResult], out_dir: str | os.PathLike,
                        stem: str = "formats") -> list[Path]:
    """Per format: test accuracy (bars from 0, the agreement with FP64 inside), the two test
    losses (the format's logits scored exactly, and the loss the format computes), and the
    share of samples whose naive and max-subtracted softmax overflowed."""
    names = [r.format for r in results]
    fig = _figure(max(11.0, 0.8 * len(names)), 11)  # room for each bar's labels
    ax1, ax2, ax3 = fig.subplots(3, 1, sharex=True)
    xs = list(range(len(names)))
    _accuracy_panel(ax1, results, xs)
    _loss_panel(ax2, results, xs, 0.38)
    _overflow_panel(ax3, results, xs, 0.38)
    ax3.set_xticks(xs, names, rotation=30, ha="right")
    for ax in (ax1, ax2, ax3):
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
    # below the axes: inside, it would cover the diverging curves at the top
    ax1.legend(fontsize=8, ncols=4, loc="upper center", bbox_to_anchor=(0.5, -0.14))
    ax1.grid(alpha=0.3, which="both")
    _epoch_axis(ax1)

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
        # A run cut short by early stopping follows another run until it stops: drawn wide and
        # translucent underneath, so both stay visible.
        style = dict(lw=5, alpha=0.45, zorder=1) if h.stopped_early else dict(lw=1.4, zorder=3)
        ax1.plot(ep, _clean(h.column("val_loss")), color=c,
                 label=f"{r.name} (test acc {r.test_accuracy:.4f})", **style)
        ax2.plot(ep, _clean(h.column("train_loss")), color=c, label=r.name, **style)
        ax3.plot(ep, _clean(h.column("val_accuracy")), color=c, label=r.name, **style)
        if h.best is not None:
            ax1.plot([h.best_epoch], [h.best.val_loss], "o", color=c, ms=7, mec="black", zorder=6)
            ax3.plot([h.best_epoch], [h.best.val_accuracy], "o", color=c, ms=7, mec="black",
                     zorder=6)
        if h.stopped_early:
            ax1.plot([ep[-1]], [h.final.val_loss], "X", color=c, ms=10, mec="black", zorder=6)
    # every curve stays inside its axes: the limits come from the data, not from a guess
    for ax, name in ((ax1, "val_loss"), (ax2, "train_loss"), (ax3, "val_accuracy")):
        _fit_ylim(ax, [v for r in runs for v in _clean(r.history.column(name))])
        _epoch_axis(ax)
    ax1.set(xlabel="epoch", ylabel="validation cross-entropy",
            title="Validation loss (dot: best epoch, X: early stop)")
    ax2.set(xlabel="epoch", ylabel="training cross-entropy (running)", title="Training loss")
    ax3.set(xlabel="epoch", ylabel="validation accuracy", title="Validation accuracy")
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
        _epoch_axis(ax)
    fig.suptitle("Training under each format (dashed: the format holds the weights alone, "
                 "no FP32 master copy)")
    handles, labels = ax1.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=4, fontsize=8)
    return save(fig, out_dir, stem)
