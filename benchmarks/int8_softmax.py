"""``python -m benchmarks.int8_softmax``: an int8 softmax regression against FP32 and PyTorch.

Trains the FP32 softmax regression on the real Fashion-MNIST (or reuses the cached checkpoint,
validated: SHA-256, config, data-split fingerprint, and its recorded validation accuracy
recomputed), then runs every variant on the 10000 test images, side by side in one process:

=========================== ============================================================ =======
variant                     what runs                                                    input
=========================== ============================================================ =======
fp32                        ``nn.Linear`` + ``torch.softmax``                            float32
fp16, bf16                  the same module and softmax in that dtype                    fp16/bf16
torch_dynamic_int8          ``torch.ao.quantization.quantize_dynamic`` (qint8)           float32
torchao_int8_weight_only    torchao ``Int8WeightOnlyConfig`` (optional extra)            float32
torchao_int8_dynamic        torchao ``Int8DynamicActivationInt8WeightConfig``            float32
scaled_int8_per_tensor      `quant.ScaledInt8` weights, one scale; checked int matmul    uint8
scaled_int8_per_channel     `quant.ScaledInt8` weights, a scale per class                uint8
log_int8                    `quant.LogInt8` weights                                      uint8
integer_only                `quant.integer_linear`: int8 matmul, fixed-point requant,    uint8
                            integer softmax -> uint8 probabilities
=========================== ============================================================ =======

Each is timed from the test images in the form it consumes to class probabilities (the
conversion of the images into that form is not timed): the median of interleaved repeats after
warm-up, at batch 10000 (one call) and batch 256 (a pass over all 10000 images). Reported per
variant: accuracy, agreement of its predictions (argmax of its probabilities, first index on
ties) with FP32's, mean and max |p - p_fp32|, images/s at both batch sizes, and weight bytes
(every stored parameter the variant reads: weights, bias, scales, zero points, multipliers).

Output: a markdown table and the issue's targets on stdout, progress on stderr; ``--json FILE``
(a list with one record per variant), ``--plot FILE`` (accuracy against throughput, PNG and
SVG). ``--quick`` is a smoke run in seconds (a 2-epoch model cached separately, one timing repeat,
the batch-256 pass over 1024 images): its timings are indicative only.
"""

from __future__ import annotations

import os

# libgomp's worker threads spin between parallel regions by default; on a shared machine (another
# process on a core) the spinning worker steals the core from the one doing the work, and a
# pipeline of many short ops (integer_only) slows down several-fold while one big op (fp32)
# barely notices. On an idle machine spinning is what makes short ops fast (integer_only:
# 1.5x fp32 with the default policy, 1.2x passive). So wait passively only when the machine is
# already busy (1-minute load above half the cores). It only takes effect when this module is
# the first to load torch (python -m benchmarks.int8_softmax); an explicit OMP_WAIT_POLICY wins.
def _machine_busy() -> bool:
    try:
        return os.getloadavg()[0] > 0.5 * (os.cpu_count() or 1)
    except OSError:  # no load average on this platform
        return False


if _machine_busy():
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import contextlib  # noqa: E402
import copy  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from dataclasses import dataclass, replace  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Callable, Sequence  # noqa: E402

import torch  # noqa: E402
from torch import nn  # noqa: E402

from benchmarks._timing import time_interleaved  # noqa: E402
from models.checkpoint import (DEFAULT_CHECKPOINT, REFERENCE_CONFIG,  # noqa: E402
                               CheckpointError, load_or_train)
from models.data import (DatasetError, DatasetNotFoundError, Split,  # noqa: E402
                         images_to_float, load_split)
from models.softmax_regression import SoftmaxRegression  # noqa: E402
from quant.integer_linear import (IntegerSoftmaxRegression,  # noqa: E402
                                  quantize_softmax_regression)

__all__ = ["VARIANTS", "RECORD_KEYS", "QUICK_CONFIG", "QUICK_CHECKPOINT", "Variant",
           "Unavailable", "Target", "build_variants", "measure", "targets", "markdown_table",
           "encodings_table", "write_plot", "main"]

VARIANTS: tuple[str, ...] = (
    "fp32", "fp16", "bf16", "torch_dynamic_int8", "torchao_int8_weight_only",
    "torchao_int8_dynamic", "scaled_int8_per_tensor", "scaled_int8_per_channel", "log_int8",
    "integer_only")
RECORD_KEYS: tuple[str, ...] = ("name", "accuracy", "agreement", "max_abs_prob_err",
                                "images_per_s_b10000", "images_per_s_b256", "weight_bytes")
TORCH_INT8 = ("torch_dynamic_int8", "torchao_int8_weight_only", "torchao_int8_dynamic")
QUICK_CONFIG = replace(REFERENCE_CONFIG, epochs=2)
QUICK_CHECKPOINT = DEFAULT_CHECKPOINT.with_name("fp32_quick.pt")
SMALL_BATCH = 256
QUICK_SMALL_IMAGES = 1024  # --quick times batch 256 over 4 batches only
TORCHAO_HINT = "pip install 'torchao==0.18.*' (the project's optional extra 'torchao')"


def cpu_busy(seconds: float = 0.5) -> float | None:
    """Share of all CPUs busy over the next ``seconds`` (Linux /proc/stat; None elsewhere)."""
    def sample() -> tuple[int, int]:
        with open("/proc/stat") as f:
            v = [int(t) for t in f.readline().split()[1:9]]
        return sum(v), v[3] + v[4]  # total, idle + iowait
    try:
        t0, i0 = sample()
        time.sleep(seconds)
        t1, i1 = sample()
    except (OSError, ValueError, IndexError):
        return None
    return 1 - (i1 - i0) / max(t1 - t0, 1)


def _log(msg: str) -> None:
    print(f"[int8_softmax] {msg}", file=sys.stderr, flush=True)


class Unavailable(Exception):
    """A variant cannot run here (an optional package is missing or refuses); says why."""


@dataclass(frozen=True)
class Variant:
    """One way of running the model: ``run`` maps a batch (in ``input_kind``) to probabilities
    (any dtype; ``to_probs`` turns them into float64 probabilities, outside the timing)."""

    name: str
    input_kind: str  # "float32", "float16", "bfloat16" or "uint8"
    run: Callable[[torch.Tensor], torch.Tensor]
    weight_bytes: int
    matrix_bytes: int
    to_probs: Callable[[torch.Tensor], torch.Tensor] = lambda p: p.to(torch.float64)
    note: str = ""
    extra: tuple[tuple[str, Any], ...] = ()


# ---- variants ----------------------------------------------------------------------------------
def _nbytes(*tensors: torch.Tensor | None) -> int:
    return sum(t.numel() * t.element_size() for t in tensors if t is not None)


def _module_runner(module: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    module.eval()

    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return torch.softmax(module(x), dim=1)
    return run


def _float_variant(model: SoftmaxRegression, dtype: torch.dtype, name: str) -> Variant:
    lin = copy.deepcopy(model.linear).to(dtype)
    return Variant(name, str(dtype).removeprefix("torch."), _module_runner(lin),
                   _nbytes(lin.weight, lin.bias), _nbytes(lin.weight),
                   note="nn.Linear + softmax" + ("" if dtype == torch.float32
                                                 else f" in {str(dtype)[6:]}"))


def _torch_dynamic(model: SoftmaxRegression) -> Variant:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # quantize_dynamic's deprecation notice (-> torchao)
        q = torch.ao.quantization.quantize_dynamic(nn.Sequential(copy.deepcopy(model.linear)),
                                                   {nn.Linear}, dtype=torch.qint8)
    w, b = q[0]._packed_params._weight_bias()
    scalars = 8 if w.qscheme() == torch.per_tensor_affine else \
        8 * w.q_per_channel_scales().numel()  # a 32-bit scale and zero point per group
    return Variant("torch_dynamic_int8", "float32", _module_runner(q),
                   w.int_repr().numel() + _nbytes(b) + scalars, w.int_repr().numel(),
                   note=f"{torch.backends.quantized.engine} engine, {w.qscheme()}".replace(
                       "torch.", ""))


@contextlib.contextmanager
def _quiet_torch_logs() -> Any:
    lg = logging.getLogger("torch.utils._pytree")
    old = lg.level
    lg.setLevel(logging.ERROR)  # torchao's import trips a deprecation log line in torch
    try:
        yield
    finally:
        lg.setLevel(old)


def _torchao(model: SoftmaxRegression, name: str) -> Variant:
    try:
        with _quiet_torch_logs(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import torchao
            from torchao.quantization import (Int8DynamicActivationInt8WeightConfig,
                                              Int8WeightOnlyConfig, quantize_)
    except ImportError as exc:
        raise Unavailable(f"torchao is not installed ({exc.msg}); {TORCHAO_HINT}") from None
    cfg = Int8WeightOnlyConfig() if name == "torchao_int8_weight_only" \
        else Int8DynamicActivationInt8WeightConfig()
    m = nn.Sequential(copy.deepcopy(model.linear))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quantize_(m, cfg)
    except Exception as exc:  # an incompatible torchao/torch pair fails in many ways
        raise Unavailable(f"torchao {torchao.__version__} could not quantize the model "
                          f"({type(exc).__name__}: {exc})") from None
    w = m[0].weight
    names = list(getattr(w, "tensor_data_names", ())) + [
        n for n in getattr(w, "optional_tensor_data_names", ()) if getattr(w, n, None) is not None]
    wbytes = _nbytes(*(getattr(w, n) for n in names)) if names else _nbytes(w)
    matrix = _nbytes(getattr(w, "qdata", None)) or wbytes
    return Variant(name, "float32", _module_runner(m), wbytes + _nbytes(m[0].bias), matrix,
                   note=f"torchao {torchao.__version__} {type(cfg).__name__}")


def _integer_only(model: SoftmaxRegression) -> tuple[Variant, IntegerSoftmaxRegression]:
    pipe = quantize_softmax_regression(model.linear.weight, model.linear.bias,
                                       input_scale=1 / 255)
    planes = " as hi/lo planes" if pipe.weight.planes == 2 else ""
    note = (f"{pipe.backend} u8s8 matmul (int8 weights in +-{pipe.weight_max}{planes}), "
            f"fixed-point requant, LUT softmax -> {str(pipe.softmax.out_dtype)[6:]}")
    top = pipe.softmax.out_max
    v = Variant("integer_only", "uint8", pipe.probabilities, pipe.weight_bytes,
                pipe.weight.codes.numel(),
                to_probs=lambda p: p.to(torch.float64) / top, note=note,
                extra=(("backend", pipe.backend), ("logit_scale", pipe.logit_scale),
                       ("softmax_error_bound_steps", pipe.softmax.error_bound_steps)))
    return v, pipe


def _encoding_stats(enc: Any, w: torch.Tensor) -> tuple[tuple[str, Any], ...]:
    """Where an encoding wins or loses on the weights themselves: its representable range,
    the share of nonzero weights it flushes to zero, and its RMS relative error."""
    dec = enc.decode(torch.float64)
    nonzero = w != 0
    flushed = float(((dec == 0) & nonzero).sum()) / max(int(nonzero.sum()), 1)
    return (("weight_dynamic_range_db", float(enc.dynamic_range_db)),
            ("weights_flushed_to_zero", flushed),
            ("weight_rms_rel_error", float(enc.rms_rel_error(w))))


def _scaled_int8(model: SoftmaxRegression, per_channel: bool) -> Variant:
    from quant import ScaledInt8, int_matmul

    w_t = model.linear.weight.detach().T.contiguous()          # (784, 10): classes on axis 1
    enc = ScaledInt8.encode(w_t, zero_point=0, axis=1 if per_channel else None,
                            calibration="minmax")
    codes, ranges = enc.codes, ((0, 255), (enc.qmin, enc.qmax))
    # Pixels are exact uint8 codes of x / 255 (zero point 0): the product's scale is
    # s_w / 255 per class; the epilogue (scale, bias, softmax) is FP32.
    out_scale = (enc.scale.reshape(-1) / 255).to(torch.float32)
    bias = model.linear.bias.detach().to(torch.float32).clone()

    def run(x: torch.Tensor) -> torch.Tensor:
        acc, _ = int_matmul(x, codes, *ranges)  # checked: input range, then proof-chosen width
        return torch.softmax(torch.addcmul(bias, acc.to(torch.float32), out_scale), dim=1)

    name = "scaled_int8_per_channel" if per_channel else "scaled_int8_per_tensor"
    return Variant(name, "uint8", run, codes.numel() + 4 * enc.scale.numel() + _nbytes(bias),
                   codes.numel(),
                   note="quant.ScaledInt8 weights, quant.int_matmul (int32), FP32 epilogue",
                   extra=_encoding_stats(enc, w_t.double()))


def _log_int8(model: SoftmaxRegression) -> Variant:
    from quant import LogInt8

    w_t = model.linear.weight.detach().T.contiguous()
    enc = LogInt8.encode(w_t)
    bias = model.linear.bias.detach().to(torch.float32).clone()

    def run(x: torch.Tensor) -> torch.Tensor:
        # No log-domain matmul kernel exists in torch: decode (a 256-entry table) and
        # multiply in FP32; the pixels' 1/255 is applied to the 10 logits, not 784 inputs.
        w = enc.decode(torch.float32)
        z = torch.addmm(bias, x.to(torch.float32), w, alpha=1 / 255)
        return torch.softmax(z, dim=1)

    return Variant("log_int8", "uint8", run, enc.codes.numel() + 4 + _nbytes(bias),
                   enc.codes.numel(),
                   note=f"quant.LogInt8 weights (frac_bits {enc.frac_bits}), decoded per call, "
                        f"FP32 matmul", extra=_encoding_stats(enc, w_t.double()))


def _quant_encoded(model: SoftmaxRegression, name: str) -> Variant:
    try:
        import quant
        quant.ScaledInt8, quant.LogInt8, quant.int_matmul  # noqa: B018 (presence check)
    except (ImportError, AttributeError) as exc:
        raise Unavailable(f"this quant lacks ScaledInt8 / LogInt8 / int_matmul ({exc})") from None
    if name == "log_int8":
        return _log_int8(model)
    return _scaled_int8(model, per_channel=name == "scaled_int8_per_channel")


def build_variants(model: SoftmaxRegression, names: Sequence[str] = VARIANTS,
                   progress: Callable[[str], None] = _log,
                   ) -> tuple[list[Variant], dict[str, str]]:
    """The runnable variants (in ``names`` order) and {name: reason} for those skipped."""
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown variants {unknown}; known: {', '.join(VARIANTS)}")
    builders: dict[str, Callable[[], Variant]] = {
        "fp32": lambda: _float_variant(model, torch.float32, "fp32"),
        "fp16": lambda: _float_variant(model, torch.float16, "fp16"),
        "bf16": lambda: _float_variant(model, torch.bfloat16, "bf16"),
        "torch_dynamic_int8": lambda: _torch_dynamic(model),
        "torchao_int8_weight_only": lambda: _torchao(model, "torchao_int8_weight_only"),
        "torchao_int8_dynamic": lambda: _torchao(model, "torchao_int8_dynamic"),
        "scaled_int8_per_tensor": lambda: _quant_encoded(model, "scaled_int8_per_tensor"),
        "scaled_int8_per_channel": lambda: _quant_encoded(model, "scaled_int8_per_channel"),
        "log_int8": lambda: _quant_encoded(model, "log_int8"),
        "integer_only": lambda: _integer_only(model)[0],
    }
    out, skipped = [], {}
    for n in names:
        try:
            out.append(builders[n]())
            progress(f"built {n}")
        except Unavailable as exc:
            skipped[n] = str(exc)
            progress(f"skipped {n}: {exc}")
    return out, skipped


# ---- measurement -------------------------------------------------------------------------------
def _inputs(images: torch.Tensor) -> dict[str, torch.Tensor]:
    x32 = images_to_float(images, torch.float32).contiguous()
    return {"float32": x32, "float16": x32.to(torch.float16), "bfloat16": x32.to(torch.bfloat16),
            "uint8": images.reshape(images.shape[0], -1).contiguous()}


def measure(variants: Sequence[Variant], images: torch.Tensor, labels: torch.Tensor, *,
            repeats: int, warmup: int = 2, small_batch: int = SMALL_BATCH,
            small_images: int | None = None,
            progress: Callable[[str], None] = _log) -> list[dict[str, Any]]:
    """One record per variant (see the module docstring); ``variants`` must include fp32.

    Accuracy and errors use every image; the big-batch timing runs all images in one call, the
    small-batch timing a pass over the first ``small_images`` (default all) in ``small_batch``
    chunks.
    """
    by_name = {v.name: v for v in variants}
    if "fp32" not in by_name:
        raise ValueError("the fp32 variant is the reference and must be measured")
    feeds = _inputs(images)
    n = images.shape[0]
    probs = {}
    for v in variants:
        p = v.to_probs(v.run(feeds[v.input_kind]))
        if p.shape != (n, 10) or not torch.isfinite(p).all():
            raise RuntimeError(f"variant {v.name} returned {tuple(p.shape)} probabilities with "
                               f"non-finite values or the wrong shape")
        probs[v.name] = p
    ref = probs["fp32"]
    ref_pred = ref.argmax(1)

    def whole(v: Variant) -> Callable[[], object]:
        x = feeds[v.input_kind]
        return lambda: v.run(x)

    n_small = n if small_images is None else max(1, min(n, small_images))

    def batched(v: Variant) -> Callable[[], object]:
        chunks = list(feeds[v.input_kind][:n_small].split(small_batch))
        run = v.run
        return lambda: [run(c) for c in chunks]

    progress(f"timing batch {n} ({repeats} repeats, {torch.get_num_threads()} threads)")
    t_big = time_interleaved([(v.name, whole(v)) for v in variants], repeats=repeats,
                             warmup=warmup)
    progress(f"timing batch {small_batch} over {n_small} images ({repeats} repeats)")
    t_small = time_interleaved([(v.name, batched(v)) for v in variants], repeats=repeats,
                               warmup=warmup)
    records = []
    for v in variants:
        p = probs[v.name]
        pred = p.argmax(1)
        err = (p - ref).abs()
        rec: dict[str, Any] = {
            "name": v.name,
            "accuracy": float((pred == labels).double().mean()),
            "agreement": float((pred == ref_pred).double().mean()),
            "max_abs_prob_err": float(err.max()),
            "images_per_s_b10000": n / t_big[v.name].median,
            "images_per_s_b256": n_small / t_small[v.name].median,
            "weight_bytes": int(v.weight_bytes),
            "weight_matrix_bytes": int(v.matrix_bytes),
            "mean_abs_prob_err": float(err.mean()),
            "input": v.input_kind,
            "timing_spread_b10000": t_big[v.name].spread,
            "note": v.note,
            "skipped": None,
        }
        rec.update(dict(v.extra))
        records.append(rec)
    return records


# ---- targets and report ------------------------------------------------------------------------
@dataclass(frozen=True)
class Target:
    what: str
    value: str
    met: bool | None  # None: could not be checked in this run


def targets(records: Sequence[dict[str, Any]]) -> list[Target]:
    """The issue's targets for ``integer_only``, checked against this run's records."""
    r = {rec["name"]: rec for rec in records if rec.get("accuracy") is not None}
    if "integer_only" not in r or "fp32" not in r:
        return [Target("integer_only and fp32 measured", "missing", None)]
    io, fp = r["integer_only"], r["fp32"]
    out = []
    d = (fp["accuracy"] - io["accuracy"]) * 100
    out.append(Target("accuracy within 0.5 points of FP32",
                      f"{io['accuracy']:.2%} vs {fp['accuracy']:.2%} ({-d:+.2f} points)", d <= 0.5))
    out.append(Target("agreement with FP32 >= 99%", f"{io['agreement']:.2%}",
                      io["agreement"] >= 0.99))
    for other in ("fp32",) + TORCH_INT8:
        if other not in r:
            out.append(Target(f"throughput (b10000) >= 1.25x {other}", "not measured", None))
            continue
        ratio = io["images_per_s_b10000"] / r[other]["images_per_s_b10000"]
        out.append(Target(f"throughput (b10000) >= 1.25x {other}", f"{ratio:.2f}x",
                          ratio >= 1.25))
    wr = fp["weight_bytes"] / io["weight_bytes"]
    mr = fp.get("weight_matrix_bytes", 0) / max(io.get("weight_matrix_bytes", 0), 1)
    out.append(Target("weight bytes 4x smaller than FP32 (the weight matrix; all-in shown too)",
                      f"matrix {fp.get('weight_matrix_bytes')} / {io.get('weight_matrix_bytes')} "
                      f"= {mr:.3f}x; all-in (bias, requantization constants) "
                      f"{fp['weight_bytes']} / {io['weight_bytes']} = {wr:.3f}x", mr >= 4))
    return out


def _fmt_rate(v: float | None) -> str:
    return "-" if v is None else f"{v:,.0f}"


def markdown_table(records: Sequence[dict[str, Any]], skipped: dict[str, str]) -> str:
    """The results as a markdown table (skipped variants listed with their reason)."""
    fp = next((r for r in records if r["name"] == "fp32"), None)
    head = ("| variant | input | accuracy | agreement | mean \\|p-p32\\| | max \\|p-p32\\| | "
            "img/s b10000 | img/s b256 | vs fp32 b10000 | weight bytes |")
    lines = [head, "|" + "---|" * 10]
    for r in records:
        speed = r["images_per_s_b10000"] / fp["images_per_s_b10000"] if fp else float("nan")
        lines.append(
            f"| {r['name']} | {r['input']} | {r['accuracy']:.2%} | {r['agreement']:.2%} | "
            f"{r['mean_abs_prob_err']:.2e} | {r['max_abs_prob_err']:.2e} | "
            f"{_fmt_rate(r['images_per_s_b10000'])} | {_fmt_rate(r['images_per_s_b256'])} | "
            f"{speed:.2f}x | {r['weight_bytes']:,} |")
    for name, why in skipped.items():
        lines.append(f"| {name} | skipped: {why} |" + " |" * 8)
    return "\n".join(lines)


def encodings_table(records: Sequence[dict[str, Any]]) -> str:
    """Where LogInt8 wins and loses against ScaledInt8 on this model: the weights' representable
    range, the share of nonzero weights flushed to zero, RMS relative weight error, and the
    end results. Empty if no encoding variant ran."""
    rows = [r for r in records if "weight_dynamic_range_db" in r]
    if not rows:
        return ""
    lines = ["| encoding | weight range (dB) | weights flushed to 0 | RMS rel. weight error | "
             "accuracy | agreement | max \\|p-p32\\| | img/s b10000 |", "|" + "---|" * 8]
    for r in rows:
        lines.append(f"| {r['name']} | {r['weight_dynamic_range_db']:.1f} | "
                     f"{r['weights_flushed_to_zero']:.2%} | {r['weight_rms_rel_error']:.2%} | "
                     f"{r['accuracy']:.2%} | {r['agreement']:.2%} | {r['max_abs_prob_err']:.2e} | "
                     f"{_fmt_rate(r['images_per_s_b10000'])} |")
    return "\n".join(lines)


def _skipped_record(name: str, why: str) -> dict[str, Any]:
    rec: dict[str, Any] = {k: None for k in RECORD_KEYS}
    rec.update(name=name, skipped=why)
    return rec


def write_plot(records: Sequence[dict[str, Any]], path: Path) -> list[Path]:
    """Accuracy against throughput at batch 10000 and batch 256, one labelled point per
    variant (squares: integer input); written as PNG and SVG next to each other."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(13, 5.5), sharey=True)
    fp = next((r for r in records if r["name"] == "fp32"), None)
    for ax, key, title in ((axes[0], "images_per_s_b10000", "batch 10000"),
                           (axes[1], "images_per_s_b256", "batch 256")):
        ranked = sorted(records, key=lambda r: r[key])
        for i, r in enumerate(ranked):
            integer = r["input"] == "uint8"
            color = "tab:red" if r["name"] == "integer_only" else (
                "tab:orange" if integer else "tab:blue")
            ax.scatter(r[key], r["accuracy"] * 100, s=60, marker="s" if integer else "o",
                       color=color, zorder=3)
            # cycle label heights so neighbours in speed do not collide
            ax.annotate(r["name"], (r[key], r["accuracy"] * 100), textcoords="offset points",
                        xytext=(5, (6, -12, 15)[i % 3]), fontsize=8, color=color)
        if fp:
            ax.axhline(fp["accuracy"] * 100, color="gray", lw=0.8, ls="--", label="fp32 accuracy")
            ax.axhline(fp["accuracy"] * 100 - 0.5, color="gray", lw=0.8, ls=":",
                       label="fp32 - 0.5 points")
            ax.axvline(fp[key] * 1.25, color="tab:green", lw=0.8, ls=":",
                       label="1.25x fp32 throughput")
        ax.set_xscale("log")
        ax.set_xlabel(f"images/s at {title} (median, log scale)")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("test accuracy (%)")
    axes[0].legend(loc="lower left", fontsize=8)
    fig.suptitle("Fashion-MNIST softmax regression: accuracy vs throughput "
                 f"({torch.get_num_threads()} CPU threads; squares take uint8 pixels)")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    base = path.with_suffix("") if path.suffix.lower() in (".png", ".svg") else path
    written = []
    for suffix in (".png", ".svg"):
        out = base.with_name(base.name + suffix)
        fig.savefig(out, dpi=110)
        written.append(out)
    plt.close(fig)
    return written


# ---- the model ---------------------------------------------------------------------------------
def _reference_model(split: Split, path: Path, quick: bool, retrain: bool) -> SoftmaxRegression:
    config = QUICK_CONFIG if quick else REFERENCE_CONFIG
    ck = load_or_train(path, config=config, split=split, retrain=retrain, progress=True)
    model = ck.model
    w = model.linear.weight
    if w.dtype != torch.float32 or model.in_features != 784 or model.num_classes != 10:
        raise CheckpointError(f"checkpoint {path}: holds a {model.in_features}->"
                              f"{model.num_classes} {w.dtype} model; this benchmark needs the "
                              f"FP32 784->10 Fashion-MNIST model")
    if not ck.trained_now:
        best = ck.history.best_epoch
        recorded = ck.history.epochs[best - 1].val_accuracy if best else None
        with torch.inference_mode():
            z = model(images_to_float(split.val_images)).double()
        acc = float((z.argmax(1) == split.val_labels).double().mean())
        if recorded is not None and abs(acc - recorded) > 1e-3:
            raise CheckpointError(f"checkpoint {path}: validation accuracy is {acc:.4f} here but "
                                  f"{recorded:.4f} was recorded at training time; the file does "
                                  f"not hold the model it claims. Delete it or pass --retrain.")
        _log(f"reusing {path} (validated: val accuracy {acc:.4f} as recorded)")
    return model


# ---- command line ------------------------------------------------------------------------------
def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks.int8_softmax",
        description="An integer-only (int8) softmax regression on Fashion-MNIST against FP32, "
                    "FP16/BF16 and PyTorch's and torchao's int8 paths: accuracy, agreement, "
                    "probability error, throughput and weight bytes.")
    ap.add_argument("--quick", action="store_true",
                    help="smoke run in seconds: a 2-epoch model, 1 timing repeat")
    ap.add_argument("--json", type=Path, metavar="FILE", help="write one record per variant")
    ap.add_argument("--plot", type=Path, metavar="FILE",
                    help="write accuracy vs throughput (FILE as .png and .svg)")
    ap.add_argument("--checkpoint", type=Path, metavar="PATH",
                    help=f"FP32 model checkpoint (default {DEFAULT_CHECKPOINT}, with --quick "
                         f"{QUICK_CHECKPOINT}); trained and saved there if absent")
    ap.add_argument("--retrain", action="store_true", help="train anew, replacing the checkpoint")
    ap.add_argument("--data-dir", type=Path, metavar="DIR",
                    help="Fashion-MNIST directory (default: models.data's search order)")
    ap.add_argument("--repeats", type=int, metavar="N",
                    help="timing repeats per batch size (default 15, 1 with --quick)")
    ap.add_argument("--threads", type=int, metavar="N", help="torch CPU threads (default: torch's)")
    ap.add_argument("--variants", metavar="A,B,...",
                    help=f"comma-separated subset of {','.join(VARIANTS)} (fp32 is always run)")
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; returns the process exit code (2 for unusable data/checkpoint/args)."""
    args = _parser().parse_args(argv)
    try:
        names = VARIANTS if not args.variants else tuple(
            dict.fromkeys(["fp32"] + [s.strip() for s in args.variants.split(",") if s.strip()]))
        repeats = args.repeats if args.repeats is not None else (1 if args.quick else 15)
        if repeats < 1:
            raise ValueError(f"--repeats must be >= 1, not {repeats}")
        if args.threads is not None:
            if args.threads < 1:
                raise ValueError(f"--threads must be >= 1, not {args.threads}")
            torch.set_num_threads(args.threads)
        split = load_split(args.data_dir)
        path = args.checkpoint or (QUICK_CHECKPOINT if args.quick else DEFAULT_CHECKPOINT)
        model = _reference_model(split, path, args.quick, args.retrain)
        variants, skipped = build_variants(model, names)
    except (DatasetError, DatasetNotFoundError, CheckpointError, FileNotFoundError,
            ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    busy = cpu_busy()
    if busy is not None and busy > 0.2:
        _log(f"warning: the CPUs were {busy:.0%} busy before timing; throughput figures from a "
             f"shared machine are noisy (rerun on an idle one, or compare --threads 1 runs)")
    records = measure(variants, split.test_images, split.test_labels, repeats=repeats,
                      warmup=1 if args.quick else 3,
                      small_images=QUICK_SMALL_IMAGES if args.quick else None)

    print(f"## int8 softmax regression on Fashion-MNIST ({len(split.test_labels)} test images)\n")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{platform.processor() or platform.machine()}, CPU capability "
          f"{torch.backends.cpu.get_cpu_capability()}, OMP_WAIT_POLICY="
          f"{os.environ.get('OMP_WAIT_POLICY', '(unset)')}; {repeats} repeats, median"
          + ("" if busy is None else f"; CPUs {busy:.0%} busy before timing")
          + (" (--quick: timings are indicative only)" if args.quick else "") + "\n")
    print(markdown_table(records, skipped))
    print("\n### Targets (integer_only)\n")
    for t in targets(records):
        mark = {True: "MET", False: "MISSED", None: "n/a"}[t.met]
        print(f"- {mark}: {t.what}: {t.value}")
    enc = encodings_table(records)
    if enc:
        print("\n### LogInt8 against ScaledInt8 (the weight encodings)\n")
        print(enc)
    if skipped:
        print("\n### Skipped\n")
        for name, why in skipped.items():
            print(f"- {name}: {why}")

    all_records = records + [_skipped_record(n, w) for n, w in skipped.items()]
    order = {n: i for i, n in enumerate(VARIANTS)}
    all_records.sort(key=lambda r: order[r["name"]])
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.json.with_name(args.json.name + f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(all_records, indent=2, allow_nan=False) + "\n")
        os.replace(tmp, args.json)
        _log(f"wrote {args.json}")
    if args.plot:
        for p in write_plot(records, args.plot):
            _log(f"wrote {p}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
