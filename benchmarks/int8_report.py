"""The report of `benchmarks.int8_softmax`: targets (MET/MISSED), tables and the figure."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from benchmarks.machine_floor import ComputeFloor
from numfmt.cli import markdown_table, write_figure

__all__ = ["Target", "SPEEDUP", "AGREEMENT", "ACCURACY_POINTS", "FLOOR_SHARE", "targets",
           "results_table", "encodings_table", "floor_lines", "write_plot"]

SPEEDUP = 1.5          # integer_only against every other variant, batch 10000 and 256
AGREEMENT = 0.995      # with FP32's predictions
ACCURACY_POINTS = 0.5  # at most this many points below FP32
FLOOR_SHARE = 0.25     # of the measured compute floor at batch 10000
_BATCHES = (("images_per_s_b10000", "batch 10000"), ("images_per_s_b256", "batch 256"))


@dataclass(frozen=True)
class Target:
    """One target of the issue: what, the measured value, and whether it was met (None: not
    checkable in this run)."""

    what: str
    value: str
    met: bool | None

    @property
    def mark(self) -> str:
        """``MET``, ``MISSED`` or ``n/a``."""
        return {True: "MET", False: "MISSED", None: "n/a"}[self.met]


def _speed_targets(io: dict, others: list[dict]) -> list[Target]:
    out = []
    for key, label in _BATCHES:
        what = f"throughput at {label} >= {SPEEDUP}x every other variant"
        if not others:
            out.append(Target(what, "no other variant measured", None))
            continue
        best = max(others, key=lambda r: r[key])
        ratio = io[key] / best[key]
        out.append(Target(what, f"{ratio:.2f}x the fastest other ({best['name']}, "
                                f"{best[key]:,.0f} img/s)", ratio >= SPEEDUP))
    what = "batch-1 p50 latency no worse than the best other variant"
    if others:
        best = min(others, key=lambda r: r["latency_b1_p50_s"])
        mine, theirs = io["latency_b1_p50_s"], best["latency_b1_p50_s"]
        out.append(Target(what, f"{mine * 1e6:.1f} us vs {theirs * 1e6:.1f} us "
                                f"({best['name']})", mine <= theirs))
    else:
        out.append(Target(what, "no other variant measured", None))
    return out


def targets(records: Sequence[dict[str, Any]],
            floor: ComputeFloor | None = None) -> list[Target]:
    """The issue's targets for ``integer_only``, checked against this run's records.

    Parameters
    ----------
    records : sequence of dict
        Measured records (skipped ones, with ``accuracy`` None, are ignored).
    floor : ComputeFloor, optional
        The run's measured floor; without it the floor target is ``n/a``.
    """
    r = {rec["name"]: rec for rec in records if rec.get("accuracy") is not None}
    if "integer_only" not in r or "fp32" not in r:
        return [Target("integer_only and fp32 measured", "missing", None)]
    io, fp = r["integer_only"], r["fp32"]
    d = (fp["accuracy"] - io["accuracy"]) * 100
    out = [Target(f"accuracy within {ACCURACY_POINTS} points of FP32",
                  f"{io['accuracy']:.2%} vs {fp['accuracy']:.2%} ({-d:+.2f} points)",
                  d <= ACCURACY_POINTS),
           Target(f"agreement with FP32 >= {AGREEMENT:.1%}", f"{io['agreement']:.2%}",
                  io["agreement"] >= AGREEMENT)]
    same = io.get("bit_identical_to_reference")
    out.append(Target("output bit-identical to the reference path (softmax(logit_codes(x)))",
                      {True: "identical on every test image", False: "DIFFERENT",
                       None: "not checked"}[same], same))
    out += _speed_targets(io, [rec for name, rec in r.items() if name != "integer_only"])
    if floor is None:
        out.append(Target(f"at batch 10000 >= {FLOOR_SHARE:.0%} of the compute floor",
                          "floor not measured", None))
    else:
        share = floor.fraction(floor.rows / io["images_per_s_b10000"])
        out.append(Target(f"at batch 10000 >= {FLOOR_SHARE:.0%} of the compute floor",
                          f"{share:.1%} of the floor ({floor.floor_seconds * 1e3:.3f} ms)",
                          share >= FLOOR_SHARE))
    mr = fp.get("weight_matrix_bytes", 0) / max(io.get("weight_matrix_bytes", 0), 1)
    wr = fp["weight_bytes"] / io["weight_bytes"]
    out.append(Target("weight bytes 4x smaller than FP32 (the weight matrix; all-in shown too)",
                      f"matrix {fp.get('weight_matrix_bytes')} / {io.get('weight_matrix_bytes')} "
                      f"= {mr:.3f}x; all-in (bias, requantization constants) "
                      f"{fp['weight_bytes']} / {io['weight_bytes']} = {wr:.3f}x", mr >= 4))
    return out


def _rate(v: float | None) -> str:
    return "-" if v is None else f"{v:,.0f}"


def _us(v: float | None) -> str:
    return "-" if v is None else f"{v * 1e6:.1f}"


def results_table(records: Sequence[dict[str, Any]], skipped: dict[str, str]) -> str:
    """The results as a markdown table (skipped variants listed with their reason)."""
    fp = next((r for r in records if r["name"] == "fp32"), None)
    head = ["variant", "input", "accuracy", "agreement", "max \\|p-p32\\|", "img/s b10000",
            "img/s b256", "vs fp32 b10000", "vs fp32 b256", "b1 p50 (us)", "b1 p99 (us)",
            "weight bytes"]
    rows = []
    for r in records:
        vs = [f"{r[k] / fp[k]:.2f}x" if fp else "-" for k, _ in _BATCHES]
        rows.append([r["name"], r["input"], f"{r['accuracy']:.2%}", f"{r['agreement']:.2%}",
                     f"{r['max_abs_prob_err']:.2e}", _rate(r["images_per_s_b10000"]),
                     _rate(r["images_per_s_b256"]), *vs, _us(r["latency_b1_p50_s"]),
                     _us(r["latency_b1_p99_s"]), f"{r['weight_bytes']:,}"])
    for name, why in skipped.items():
        rows.append([name, f"skipped: {why}"] + [""] * (len(head) - 2))
    return markdown_table(head, rows, align="llrrrrrrrrrr")


def encodings_table(records: Sequence[dict[str, Any]]) -> str:
    """Where LogInt8 wins and loses against ScaledInt8 on this model: the weights'
    representable range, the share of nonzero weights flushed to zero, RMS relative weight
    error, and the end results. Empty if no encoding variant ran."""
    rows = [[r["name"], f"{r['weight_dynamic_range_db']:.1f}",
             f"{r['weights_flushed_to_zero']:.2%}", f"{r['weight_rms_rel_error']:.2%}",
             f"{r['accuracy']:.2%}", f"{r['agreement']:.2%}", f"{r['max_abs_prob_err']:.2e}",
             _rate(r["images_per_s_b10000"])]
            for r in records if "weight_dynamic_range_db" in r]
    if not rows:
        return ""
    return markdown_table(["encoding", "weight range (dB)", "weights flushed to 0",
                           "RMS rel. weight error", "accuracy", "agreement", "max \\|p-p32\\|",
                           "img/s b10000"], rows, align="lrrrrrrr")


def floor_lines(floor: ComputeFloor, records: Sequence[dict[str, Any]]) -> list[str]:
    """The measured limit and integer_only's fraction of it, as report lines."""
    lines = [f"- stream the {floor.rows}x{floor.inner} uint8 input once: "
             f"{floor.stream_seconds * 1e3:.3f} ms ({floor.stream_method})"]
    if floor.mac_per_s:
        lines.append(f"- int8 multiply-add rate: {floor.mac_per_s / 1e9:.1f} G/s "
                     f"({floor.mac_method}; exact: {floor.mac_exact}); the {floor.macs:,} "
                     f"multiply-adds take {floor.compute_seconds * 1e3:.3f} ms at that rate")
    else:
        lines.append(f"- int8 multiply-add rate: not measured ({floor.mac_method})")
    lines.append(f"- floor = max of the two: {floor.floor_seconds * 1e3:.3f} ms "
                 f"({floor.rows / floor.floor_seconds:,.0f} img/s)")
    for r in records:
        if r["name"] == "integer_only":
            t = floor.rows / r["images_per_s_b10000"]
            lines.append(f"- integer_only at batch {floor.rows}: {t * 1e3:.3f} ms (median) = "
                         f"{floor.fraction(t):.1%} of the floor")
            if floor.fraction(t) > 1:
                lines.append("- (above 100%: integer_only beat the library GEMM's rate, so that "
                             "rate is not this machine's peak and the true floor lies "
                             "below the one measured here)")
    return lines


def _dot_panel(ax: Any, vals: list[float], colors: list[str], title: str, ref: float | None,
               fmt: str) -> None:
    """A dot per row on a log axis, its value printed beside it (no bars: on a log axis a
    bar's length would depend on where the axis happens to start)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    y = range(len(vals))
    ax.hlines(y, min(vals) / 1.5, vals, color="0.85", lw=0.8, zorder=1)
    ax.scatter(vals, y, c=colors, s=36, zorder=3)
    for v, yy in zip(vals, y):
        ax.annotate(fmt.format(v), (v, yy), textcoords="offset points", xytext=(5, -3),
                    fontsize=7.5)
    ax.set_xscale("log")
    ax.set_xlim(min(vals) / 1.5, max(vals) * 4)  # room for the value labels
    ax.xaxis.set_major_locator(LogLocator(base=10))
    ax.xaxis.set_minor_formatter(NullFormatter())  # minor labels collide on short decades
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}" if v >= 1 else f"{v:g}"))
    ax.set_title(title, fontsize=10)
    ax.grid(True, axis="x", which="major", alpha=0.3)
    if ref is not None:
        ax.axvline(ref, color="gray", lw=0.8, ls="--", zorder=2)


def write_plot(records: Sequence[dict[str, Any]], path: str | Path,
               threads: int | None = None) -> list[Path]:
    """Per variant, one row in four panels sharing it: throughput at batch 10000 and 256 and
    batch-1 p50 latency (dots on log axes, values printed), and accuracy against FP32's
    (points, bars from 0). Rows are sorted by batch-10000 throughput; integer_only is red, the
    other uint8-input variants orange, float-input ones blue; dashed lines mark fp32. Written
    as PNG and SVG (``path`` checked by `numfmt.cli.check_figure_path`)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    rows = sorted(records, key=lambda r: r["images_per_s_b10000"])
    kinds = (("tab:red", "integer_only"), ("tab:orange", "other uint8-input variants"),
             ("tab:blue", "float-input variants"))
    colors = [kinds[0][0] if r["name"] == "integer_only" else
              kinds[1][0] if r["input"] == "uint8" else kinds[2][0] for r in rows]
    fp = next((r for r in records if r["name"] == "fp32"), None)
    fig, axes = plt.subplots(1, 4, figsize=(18, 0.4 * len(rows) + 2.4), sharey=True,
                             gridspec_kw={"width_ratios": [1, 1, 1, 0.8]})
    panels = (("images_per_s_b10000", "images/s at batch 10000 (higher is better)", 1.0,
               "{:,.0f}"),
              ("images_per_s_b256", "images/s at batch 256 (higher is better)", 1.0, "{:,.0f}"),
              ("latency_b1_p50_s", "batch-1 p50 latency, us (lower is better)", 1e6, "{:.1f}"))
    for ax, (key, title, unit, fmt) in zip(axes, panels):
        _dot_panel(ax, [r[key] * unit for r in rows], colors, title,
                   None if fp is None else fp[key] * unit, fmt)
    acc, y = axes[3], range(len(rows))
    base = fp["accuracy"] if fp else 0.0
    deltas = [(r["accuracy"] - base) * 100 for r in rows]
    acc.barh(y, deltas, color=colors)
    acc.set_xlim(min(-ACCURACY_POINTS, *deltas) - 0.15, max(0.0, *deltas) + 0.15)
    acc.axvline(0, color="gray", lw=0.8)
    acc.axvline(-ACCURACY_POINTS, color="gray", lw=0.8, ls=":")
    acc.set_title(f"accuracy - FP32's {base:.2%} (points; dotted: -{ACCURACY_POINTS})",
                  fontsize=10)
    acc.grid(True, axis="x", alpha=0.3)
    axes[0].set_yticks(list(y), [r["name"] for r in rows], fontsize=9)
    axes[0].set_ylim(-0.7, len(rows) - 0.3)
    handles = [Line2D([], [], marker="o", ls="", color=c, label=lab) for c, lab in kinds]
    handles.append(Line2D([], [], color="gray", ls="--", label="fp32"))
    fig.legend(handles=handles, loc="lower center", ncol=4, fontsize=9, frameon=False)
    fig.suptitle("Fashion-MNIST softmax regression, 10000 test images: throughput, latency and "
                 f"accuracy per variant ({threads or '?'} CPU threads)", fontsize=11)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return write_figure(fig, path, dpi=110)
