"""The figure that answers the notebook's question with the 2026 formats: test accuracy
against bits per weight (scales included) for every float format, int8 encoding and block
format, written as PNG and SVG by `models.plots.save` (`numfmt.cli.write_figure`).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Mapping, Sequence

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from models.evaluation import BLOCK_TARGETS, ENCODINGS, INPUTS_SUFFIX, FormatResult
from models.plots import BLOCK_COLOR, ENCODING_COLOR, FLOAT_COLOR, save

__all__ = ["bits_accuracy_points", "plot_bits_accuracy"]


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


_LABEL_PT = 9.0  # vertical pitch of the stacked point labels, in points


def bits_accuracy_points(results: Sequence[FormatResult], bits_per_weight: Mapping[str, float],
                         ) -> list[tuple[str, float, float]]:
    """The points of `plot_bits_accuracy`: ``(format, bits per weight, accuracy)`` per result.

    Parameters
    ----------
    results : sequence of FormatResult
    bits_per_weight : mapping of str to float
        Bits per weight of W by format name, scales included (`models.evaluation.weight_bits`).

    Returns
    -------
    list of (str, float, float)
        In the order of ``results``.

    Raises
    ------
    ValueError
        If a result's format has no entry in ``bits_per_weight`` or a non-positive one.
    """
    points = []
    for r in results:
        b = bits_per_weight.get(r.format)
        if b is None or not b > 0:
            raise ValueError(f"no positive bits per weight for {r.format!r}")
        points.append((r.format, float(b), r.accuracy))
    return points


def _columns(points: list[tuple[str, float, float]], gap: float) -> list[list[int]]:
    """Indices of the points grouped into columns: a new column where log2(bits) jumps by more
    than ``gap``."""
    order = sorted(range(len(points)), key=lambda i: points[i][1])
    cols: list[list[int]] = []
    for i in order:
        if cols and math.log2(points[i][1]) - math.log2(points[cols[-1][-1]][1]) <= gap:
            cols[-1].append(i)
        else:
            cols.append([i])
    return cols


def _stacked(ys: list[float], pitch: float) -> list[float]:
    """Label heights for points at ``ys`` (ascending): at least ``pitch`` apart, the stack
    centred on the points."""
    pos: list[float] = []
    for y in ys:
        pos.append(y if not pos else max(y, pos[-1] + pitch))
    shift = sum(pos) / len(pos) - sum(ys) / len(ys)
    return [p - shift for p in pos]


def _kind(name: str) -> tuple[str, str, str]:
    """Marker, colour and face colour by kind: float format, int8 encoding, block format (hollow
    where the inputs are block-rounded too)."""
    if name in BLOCK_TARGETS:
        return "^", BLOCK_COLOR, "white" if name.endswith(INPUTS_SUFFIX) else BLOCK_COLOR
    if name in ENCODINGS:
        return "s", ENCODING_COLOR, ENCODING_COLOR
    return "o", FLOAT_COLOR, FLOAT_COLOR


def _merged(pts: list[tuple[str, float, float]]) -> list[tuple[str, float, float]]:
    """One label per distinct point: formats at the same (bits, accuracy) joined by '='."""
    by: dict[tuple[float, float], list[str]] = {}
    for name, b, a in pts:
        by.setdefault((b, a), []).append(name)
    return [(" = ".join(names), b, a) for (b, a), names in by.items()]


def _label_panel(ax, pts: list[tuple[str, float, float]], log_x: bool) -> None:
    """Markers for ``pts`` and their labels stacked right of each column of points (a leader
    line to each point), at least one label pitch apart in this panel's height."""
    for name, b, a in pts:
        marker, color, face = _kind(name)
        ax.plot([b], [a], marker, color=color, mfc=face, ms=7, zorder=3)
    labels = _merged(pts)
    lo, hi = ax.get_ylim()
    pitch = _LABEL_PT * (hi - lo) / (ax.get_window_extent().height * 72 / ax.figure.dpi)
    # on the log axis the columns are close: one stack right of the widest format
    cols = [list(range(len(labels)))] if log_x and labels else _columns(labels, 0.2)
    for col in cols:
        col.sort(key=lambda i: labels[i][2])
        right = max(labels[i][1] for i in col)
        right = right * 2 ** 0.25 if log_x else right + 0.25
        for i, y in zip(col, _stacked([labels[i][2] for i in col], pitch)):
            name, b, a = labels[i]
            t = ax.annotate(f"{name}  {a:.4f} ({b:.2f} b)", (b, a), xytext=(right, y),
                            textcoords="data", fontsize=7, va="center", ha="left",
                            arrowprops=dict(arrowstyle="-", color="#999999", lw=0.6))
            t.set_in_layout(False)  # labels stay inside the panel; layout ignores them


def _grid(fig, pts: list[tuple[str, float, float]], cut: float) -> dict:
    """The panels: rows by accuracy (at or above ``cut``, below it), columns by bits (up to
    12 on a linear axis, wider formats on a log2 axis); only the panels that hold points."""
    rows = [True] + ([False] if any(a < cut for _, _, a in pts) else [])
    cols = [True] + ([False] if any(b > 12 for _, b, _ in pts) else [])
    gs = fig.add_gridspec(len(rows), len(cols), height_ratios=[4, 1.2][:len(rows)],
                          width_ratios=[5, 2.2][:len(cols)])
    panels = {}
    for r, top in enumerate(rows):
        for c, narrow in enumerate(cols):
            ax = fig.add_subplot(gs[r, c], sharex=panels.get((True, narrow)),
                                 sharey=panels.get((top, True)))
            panels[(top, narrow)] = ax
            inside = [p for p in pts if (p[2] >= cut) == top and (p[1] <= 12) == narrow]
            ax.grid(alpha=0.3, which="both")
            ax.set_facecolor("white" if inside else "#f4f4f4")
    return panels


def plot_bits_accuracy(results: Sequence[FormatResult], bits_per_weight: Mapping[str, float],
                       out_dir: str | os.PathLike, stem: str = "bits_accuracy") -> list[Path]:
    """Test accuracy against bits per weight (scales included) for every result.

    The accuracies within 0.03 of the best fill the upper panels (zoomed: that is where the
    formats differ); the rest, down to 0, the lower ones. Formats up to 12 bits per weight are
    on a linear axis (left), wider ones on a log2 axis (right). Each distinct point is labelled
    (formats at the same point joined by '='), labels stacked beside their column of points at
    least one label pitch apart, a leader line to each point, so that none overlap. Circles:
    float formats; squares: int8 encodings; triangles: block formats (hollow: the inputs
    block-rounded too). The points are `bits_accuracy_points`.

    Parameters
    ----------
    results : sequence of FormatResult
        Rows of `models.evaluation.evaluate_all`; non-finite accuracies are not drawn.
    bits_per_weight : mapping of str to float
        Bits per weight of W by format (`models.evaluation.weight_bits`).
    out_dir : path
        Created if missing.
    stem : str
        File name without extension.

    Returns
    -------
    list of Path
        ``out_dir/stem.png`` and ``.svg``.

    Raises
    ------
    ValueError
        If a result has no positive bits per weight (`bits_accuracy_points`).
    """
    from matplotlib.lines import Line2D

    pts = bits_accuracy_points(results, bits_per_weight)
    finite = [p for p in pts if math.isfinite(p[2])]
    best = max(a for _, _, a in finite)
    cut = best - 0.03
    fig = _figure(15, 10)
    panels = _grid(fig, finite, cut)
    top_lo = min(a for _, _, a in finite if a >= cut)
    panels[(True, True)].set_ylim(top_lo - 0.1 * (best - top_lo) - 5e-4,
                                  best + 0.1 * (best - top_lo) + 5e-4)
    if (False, True) in panels:
        panels[(False, True)].set_ylim(0, cut)
    narrow = [b for _, b, _ in finite if b <= 12]
    panels[(True, True)].set_xlim(min(narrow) - 0.3, max(narrow) + 2.4)
    if (True, False) in panels:
        wide = panels[(True, False)]
        wide.set_xscale("log", base=2)
        wide.set_xlim(12, max(b for _, b, _ in finite) * 5)
        ticks = sorted({round(b) for _, b, _ in finite if b > 12})
        wide.set_xticks(ticks, [str(t) for t in ticks])
    fig.canvas.draw()  # the panels' final heights set the label pitch in data units
    for (top, narrow_col), ax in panels.items():
        _label_panel(ax, [p for p in finite if (p[2] >= cut) == top
                          and (p[1] <= 12) == narrow_col], not narrow_col)
    for (top, _), ax in panels.items():
        if top and (False, True) in panels:
            ax.tick_params(labelbottom=False)
    bottom = [ax for (top, _), ax in panels.items() if top == ((False, True) not in panels)]
    bottom[0].set_xlabel("bits per weight of W (scales included; block formats: padded "
                         "blocks, E8M0/E4M3 block scales, NVFP4's FP32 tensor scale)")
    for ax in bottom[1:]:
        ax.set_xlabel("bits per weight of W (log2 axis)")
    fig.supylabel("test accuracy (top label); upper panels zoomed to within 0.03 of the best",
                  fontsize=10)
    fig.suptitle("How to stretch 8 bits: test accuracy against storage per weight, with the "
                 "2026 block-scaled formats (MX, NVFP4)")
    handles = [Line2D([], [], ls="", marker=m, color=c, mfc=f, label=t) for m, c, f, t in (
        ("o", FLOAT_COLOR, FLOAT_COLOR, "float format (weights, inputs, logits in it)"),
        ("s", ENCODING_COLOR, ENCODING_COLOR, "int8 encoding (quant)"),
        ("^", BLOCK_COLOR, BLOCK_COLOR, "block format, weights (blocks along K)"),
        ("^", BLOCK_COLOR, "white", "block format, weights and inputs (_w_x)"))]
    fig.legend(handles=handles, loc="outside lower center", ncols=4, fontsize=8)
    return save(fig, out_dir, stem)
