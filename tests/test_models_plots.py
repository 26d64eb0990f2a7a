"""models.plots: what a reader of the figures would trip on (issue 9, item 23), checked on the
figure objects themselves (axes limits, legends, annotations, ticks)."""

from __future__ import annotations

import math

import pytest

import models.plots as plots
from models.evaluation import FormatResult
from models.history import EpochStats, History
from models.sweeps import EpochRun, LrRun


@pytest.fixture()
def captured(monkeypatch, tmp_path):
    figs = []

    def fake_write(fig, path, dpi=150):
        figs.append(fig)
        return [path]
    monkeypatch.setattr(plots, "write_figure", fake_write)
    return figs, tmp_path


def result(name, acc, naive, stable=0.0, ce=0.44):
    return FormatResult(name, acc, 0.99, ce * 0.9, ce, 0.01, naive, stable, 100)


def history(losses, accs, *, stopped_early=False, best=None):
    eps = tuple(EpochStats(i + 1, 0.1, l * 0.9, a, l, a, 0.1)
                for i, (l, a) in enumerate(zip(losses, accs)))
    best = best or min(range(len(losses)), key=losses.__getitem__) + 1
    return History({}, "fp32", eps, best, stopped_early, stopped_early, False, 1.0)


def texts(ax):
    return [t.get_text() for t in ax.texts]


def test_formats_figure_bars_start_at_zero_with_a_legend_and_n_a(captured):
    figs, out = captured
    rs = [result("fp64", 0.85, 0.0), result("fp4_e2m1fn", 0.35, 1.0, 0.98),
          result("scaled_int8_per_tensor", 0.84, 0.0), result("integer_only", 0.84, None)]
    plots.plot_format_results(rs, out)
    acc_ax, loss_ax, fail_ax = figs[0].axes
    assert acc_ax.get_ylim()[0] == 0 and loss_ax.get_ylim()[0] == 0  # lengths are values
    legend = [t.get_text() for t in acc_ax.get_legend().get_texts()]
    assert any("int8 encoding" in t for t in legend) and any("float" in t for t in legend)
    assert "n/a" in texts(fail_ax) and "0.0%" in texts(fail_ax)  # integer_only: n/a, not 0.0%
    assert texts(fail_ax).count("n/a") == 1
    loss_legend = " ".join(t.get_text() for t in loss_ax.get_legend().get_texts())
    assert "fp64" in loss_legend and "in the format" in loss_legend


def test_epoch_sweep_keeps_every_curve_inside_its_axes(captured):
    figs, out = captured
    spike = [0.7, 0.55, 1.6, 0.5, 0.48, 0.52]  # a spike 3x the minimum
    runs = [EpochRun("constant lr", history(spike, [0.8, 0.82, 0.77, 0.83, 0.84, 0.83]), 0.8),
            EpochRun("early stopping", history(spike[:4], [0.8, 0.82, 0.77, 0.83],
                                               stopped_early=True), 0.82)]
    plots.plot_epoch_sweep(runs, out)
    for ax in figs[0].axes[:3]:
        lo, hi = ax.get_ylim()
        for line in ax.get_lines():
            ys = [y for y in line.get_ydata() if math.isfinite(y)]
            assert all(lo <= y <= hi for y in ys), (ax.get_title(), ys, (lo, hi))
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert all(float(t).is_integer() for t in ticks)  # whole epochs


def test_lr_sweep_legend_is_outside_the_curves_and_epochs_are_whole(captured):
    figs, out = captured
    runs = [LrRun(lr, history([l, l * 0.9, l * 0.8], [0.7, 0.75, 0.8]), 0.8)
            for lr, l in ((0.1, 0.6), (3.0, 8.0), (10.0, 30.0))]
    plots.plot_lr_sweep(runs, out)
    ax = figs[0].axes[0]
    fig = figs[0]
    fig.canvas.draw()
    legend_box = ax.get_legend().get_window_extent()
    axes_box = ax.get_window_extent()
    assert legend_box.y1 <= axes_box.y0  # below the axes, not over the top curves
    ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    assert ticks and all(float(t).is_integer() for t in ticks)
