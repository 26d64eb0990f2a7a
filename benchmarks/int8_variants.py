"""The rows of `benchmarks.int8_softmax`: every way of running the Fashion-MNIST model.

=========================== ============================================================ =======
variant                     what runs                                                    input
=========================== ============================================================ =======
fp32                        ``nn.Linear`` + ``torch.softmax``                            float32
fp16, bf16                  the same module and softmax in that dtype                    fp16/bf16
torch_compile_fp32          ``torch.compile`` of the fp32 module and softmax             float32
torch_dynamic_int8          ``torch.ao.quantization.quantize_dynamic`` (qint8)           float32
torchao_int8_weight_only    torchao ``Int8WeightOnlyConfig`` (optional extra)            float32
torchao_int8_dynamic        torchao ``Int8DynamicActivationInt8WeightConfig``            float32
ort_fp32                    ONNX Runtime: Gemm + Softmax (optional extra)                float32
ort_int8_static             ORT ``quantize_static``: QDQ, per channel, calibrated        float32
ort_int8_dynamic            ORT ``quantize_dynamic``: MatMulInteger, dynamic inputs      float32
ort_int8_matmulinteger      ORT hand-built graph: MatMulInteger on the pixels            uint8
scaled_int8_per_tensor      `quant.ScaledInt8` weights, one scale; checked int matmul    uint8
scaled_int8_per_channel     `quant.ScaledInt8` weights, a scale per class                uint8
log_int8_weights            `quant.LogInt8` weights x uint8 pixels (FP32 matmul)         uint8
integer_only                `quant.quantize_softmax_regression`: with the compiled int8  uint8
                            head (`quant.native.int8_head`) the whole data path, u8 x s8
                            into int32, fixed-point requant, LUT softmax -> uint8
                            probabilities, in one C call per batch; else the int8
                            matmul ``kernel`` and torch passes (the note says which)
=========================== ============================================================ =======

(``log_int8_weights`` is named for what is log-encoded: the weights only. `models.evaluate`'s
``log_int8`` log-encodes the weights and the inputs.) The ONNX Runtime rows live in
`benchmarks.ort_variants`.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import signal
import threading
import warnings
from typing import Any, Callable, Iterator, Sequence

import torch
from torch import nn

import quant
from quant.native import int8_head

from benchmarks import ort_variants
from benchmarks.variant import Unavailable, Variant, nbytes
from models.softmax_regression import SoftmaxRegression

__all__ = ["VARIANTS", "TORCH_INT8", "ORT_VARIANTS", "OPTIONAL", "TORCHAO_HINT",
           "COMPILE_TIME_LIMIT_S", "build_variants", "integer_only_kernel"]

VARIANTS: tuple[str, ...] = (
    "fp32", "fp16", "bf16", "torch_compile_fp32", "torch_dynamic_int8",
    "torchao_int8_weight_only", "torchao_int8_dynamic", *ort_variants.ORT_VARIANTS,
    "scaled_int8_per_tensor", "scaled_int8_per_channel", "log_int8_weights", "integer_only")
TORCH_INT8 = ("torch_dynamic_int8", "torchao_int8_weight_only", "torchao_int8_dynamic")
ORT_VARIANTS = ort_variants.ORT_VARIANTS
#: Rows that may say "skipped" (an optional package absent, or torch.compile unusable here).
OPTIONAL = ("torch_compile_fp32", "torchao_int8_weight_only", "torchao_int8_dynamic",
            *ORT_VARIANTS)
TORCHAO_HINT = "pip install 'torchao==0.18.*' (the project's optional extra 'torchao')"
#: Seconds torch.compile may take to compile the fp32 module before its row is skipped.
COMPILE_TIME_LIMIT_S = 180.0


def _module_runner(module: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    module.eval()

    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return torch.softmax(module(x), dim=1)
    return run


def _float_variant(model: SoftmaxRegression, dtype: torch.dtype, name: str) -> Variant:
    lin = copy.deepcopy(model.linear).to(dtype)
    return Variant(name, str(dtype).removeprefix("torch."), _module_runner(lin),
                   nbytes(lin.weight, lin.bias), nbytes(lin.weight),
                   note="nn.Linear + softmax" + ("" if dtype == torch.float32
                                                 else f" in {str(dtype)[6:]}"))


class _CompileTimeout(BaseException):
    """The compile's time ran out. A BaseException, like KeyboardInterrupt, so that no
    ``except Exception`` inside torch's compiler turns it into a silent eager fallback."""


@contextlib.contextmanager
def _time_bound(seconds: float) -> Iterator[None]:
    """Raise `_CompileTimeout` in the main thread after ``seconds`` (no bound elsewhere)."""
    if threading.current_thread() is not threading.main_thread() or \
            not hasattr(signal, "setitimer"):
        yield
        return

    def expire(signum: int, frame: Any) -> None:
        raise _CompileTimeout()
    old = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _torch_compile(model: SoftmaxRegression, time_limit_s: float) -> Variant:
    lin = copy.deepcopy(model.linear).eval()

    def forward(x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(lin(x), dim=1)
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)  # "No CUDA runtime"
    try:
        import torch._inductor.config as inductor_config
        inductor_config.compile_threads = 1  # no pool of compile workers on a small machine
        # dynamic=True: one compiled graph for every batch size (10000, 256, the last chunk, 1)
        compiled = torch.compile(forward, dynamic=True)
        with _time_bound(time_limit_s), torch.inference_mode():
            for rows in (2, 3):
                compiled(torch.zeros(rows, lin.in_features))
    except _CompileTimeout:
        raise Unavailable(f"torch.compile did not finish compiling within {time_limit_s:g} s"
                          ) from None
    except Exception as exc:  # a missing compiler or an unsupported CPU fail in many ways
        raise Unavailable(f"torch.compile failed here ({type(exc).__name__}: "
                          f"{str(exc).splitlines()[0] if str(exc) else ''})") from None

    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return compiled(x)
    return Variant("torch_compile_fp32", "float32", run, nbytes(lin.weight, lin.bias),
                   nbytes(lin.weight), note="torch.compile(dynamic=True), inductor C++ backend")


def _torch_dynamic(model: SoftmaxRegression) -> Variant:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # quantize_dynamic's deprecation notice (-> torchao)
        q = torch.ao.quantization.quantize_dynamic(nn.Sequential(copy.deepcopy(model.linear)),
                                                   {nn.Linear}, dtype=torch.qint8)
    w, b = q[0]._packed_params._weight_bias()
    scalars = 8 if w.qscheme() == torch.per_tensor_affine else \
        8 * w.q_per_channel_scales().numel()  # a 32-bit scale and zero point per group
    return Variant("torch_dynamic_int8", "float32", _module_runner(q),
                   w.int_repr().numel() + nbytes(b) + scalars, w.int_repr().numel(),
                   note=f"{torch.backends.quantized.engine} engine, {w.qscheme()}".replace(
                       "torch.", ""))


@contextlib.contextmanager
def _quiet_torch_logs() -> Iterator[None]:
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
    wbytes = nbytes(*(getattr(w, n) for n in names)) if names else nbytes(w)
    matrix = nbytes(getattr(w, "qdata", None)) or wbytes
    return Variant(name, "float32", _module_runner(m), wbytes + nbytes(m[0].bias), matrix,
                   note=f"torchao {torchao.__version__} {type(cfg).__name__}")


def integer_only_kernel(pipe: Any) -> str:
    """The integer matmul ``kernel`` the pipeline reports ("onednn", "int_mm", ...).

    Read from its public ``kernel`` attribute, or ``backend`` where the pipeline still uses the
    older name; ``"unknown"`` if it has neither.
    """
    return str(getattr(pipe, "kernel", None) or getattr(pipe, "backend", None) or "unknown")


def _integer_only(model: SoftmaxRegression) -> Variant:
    pipe = quant.quantize_softmax_regression(model.linear.weight, model.linear.bias,
                                             input_scale=1 / 255)
    kernel = integer_only_kernel(pipe)
    implementation = getattr(pipe, "implementation", None) or (
        "native" if quant.native.available() else "torch")
    out = str(pipe.softmax.out_dtype).removeprefix("torch.")
    if implementation == "native" and int8_head.available():
        # what runs for the benchmark's uint8 (N, K) pixels: the fused C head, one call
        note = (f"{int8_head.describe()}: u8 x s8 (int8 weights in +-{pipe.weight_max}) into "
                f"int32, fixed-point requant, LUT softmax -> {out}, one C call per batch")
    else:
        note = (f"{kernel} u8s8 matmul (int8 weights in +-{pipe.weight_max}), fixed-point "
                f"requant, LUT softmax -> {out}, {implementation}")
    top = pipe.softmax.out_max

    def reference(x: torch.Tensor) -> torch.Tensor:
        # The documented identity of the public API: probabilities(x) == softmax(logit_codes(x))
        return pipe.softmax(pipe.logit_codes(x))
    return Variant("integer_only", "uint8", pipe.probabilities, pipe.weight_bytes,
                   pipe.weight.codes.numel(), to_probs=lambda p: p.to(torch.float64) / top,
                   note=note,
                   extra=(("kernel", kernel), ("implementation", implementation),
                          ("logit_scale", pipe.logit_scale),
                          ("softmax_error_bound_steps", pipe.softmax.error_bound_steps)),
                   reference=reference)


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
    w_t = model.linear.weight.detach().T.contiguous()          # (784, 10): classes on axis 1
    enc = quant.ScaledInt8.encode(w_t, zero_point=0, axis=1 if per_channel else None,
                                  calibration="minmax")
    codes, ranges = enc.codes, ((0, 255), (enc.qmin, enc.qmax))
    # Pixels are exact uint8 codes of x / 255 (zero point 0): the product's scale is
    # s_w / 255 per class; the epilogue (scale, bias, softmax) is FP32.
    out_scale = (enc.scale.reshape(-1) / 255).to(torch.float32)
    bias = model.linear.bias.detach().to(torch.float32).clone()

    def run(x: torch.Tensor) -> torch.Tensor:
        acc, _ = quant.int_matmul(x, codes, *ranges)  # checked: input range, proof-chosen width
        return torch.softmax(torch.addcmul(bias, acc.to(torch.float32), out_scale), dim=1)

    name = "scaled_int8_per_channel" if per_channel else "scaled_int8_per_tensor"
    return Variant(name, "uint8", run, codes.numel() + 4 * enc.scale.numel() + nbytes(bias),
                   codes.numel(),
                   note="quant.ScaledInt8 weights, quant.int_matmul (int32), FP32 epilogue",
                   extra=_encoding_stats(enc, w_t.double()))


def _log_int8_weights(model: SoftmaxRegression) -> Variant:
    w_t = model.linear.weight.detach().T.contiguous()
    enc = quant.LogInt8.encode(w_t)
    bias = model.linear.bias.detach().to(torch.float32).clone()

    def run(x: torch.Tensor) -> torch.Tensor:
        # No log-domain matmul kernel exists in torch: decode (a 256-entry table) and
        # multiply in FP32; the pixels' 1/255 is applied to the 10 logits, not 784 inputs.
        w = enc.decode(torch.float32)
        z = torch.addmm(bias, x.to(torch.float32), w, alpha=1 / 255)
        return torch.softmax(z, dim=1)

    return Variant("log_int8_weights", "uint8", run, enc.codes.numel() + 4 + nbytes(bias),
                   enc.codes.numel(),
                   note=f"quant.LogInt8 weights (frac_bits {enc.frac_bits}) x uint8 pixels, "
                        f"decoded per call, FP32 matmul", extra=_encoding_stats(enc, w_t.double()))


def build_variants(model: SoftmaxRegression, names: Sequence[str] = VARIANTS, *,
                   calibration_images: torch.Tensor | None = None,
                   compile_time_limit_s: float = COMPILE_TIME_LIMIT_S,
                   progress: Callable[[str], None] = lambda s: None,
                   ) -> tuple[list[Variant], dict[str, str]]:
    """The runnable variants (in ``names`` order) and ``{name: reason}`` for those skipped.

    Parameters
    ----------
    model : SoftmaxRegression
        The FP32 reference model (not modified: every variant works on a copy).
    names : sequence of str
        Which of `VARIANTS` to build.
    calibration_images : torch.Tensor, optional
        float32 (N, 784) images in [0, 1] that ``ort_int8_static`` calibrates on (training
        images, never the test images); without them that row is skipped.
    compile_time_limit_s : float
        How long ``torch_compile_fp32`` may compile before its row is skipped.
    progress : callable
        Called with a line per variant built or skipped.

    Returns
    -------
    (list of Variant, dict)

    Raises
    ------
    ValueError
        For a name not in `VARIANTS`.
    """
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown variants {unknown}; known: {', '.join(VARIANTS)}")
    builders: dict[str, Callable[[], Variant]] = {
        "fp32": lambda: _float_variant(model, torch.float32, "fp32"),
        "fp16": lambda: _float_variant(model, torch.float16, "fp16"),
        "bf16": lambda: _float_variant(model, torch.bfloat16, "bf16"),
        "torch_compile_fp32": lambda: _torch_compile(model, compile_time_limit_s),
        "torch_dynamic_int8": lambda: _torch_dynamic(model),
        "torchao_int8_weight_only": lambda: _torchao(model, "torchao_int8_weight_only"),
        "torchao_int8_dynamic": lambda: _torchao(model, "torchao_int8_dynamic"),
        "scaled_int8_per_tensor": lambda: _scaled_int8(model, per_channel=False),
        "scaled_int8_per_channel": lambda: _scaled_int8(model, per_channel=True),
        "log_int8_weights": lambda: _log_int8_weights(model),
        "integer_only": lambda: _integer_only(model),
    }
    for name in ORT_VARIANTS:
        builders[name] = lambda n=name: ort_variants.build(
            n, model.linear.weight, model.linear.bias, calibration_images=calibration_images)
    out, skipped = [], {}
    for n in names:
        progress(f"building {n}")
        try:
            out.append(builders[n]())
        except Unavailable as exc:
            skipped[n] = str(exc)
            progress(f"skipped {n}: {exc}")
    return out, skipped
