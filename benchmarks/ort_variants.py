"""The ONNX Runtime rows of `benchmarks.int8_softmax` (``onnxruntime`` and ``onnx``: optional).

Every graph is built in memory with ``onnx.helper`` from the FP32 model's weights (opset 17,
nothing downloaded):

* ``ort_fp32``: ``Gemm(x, W, b, transB=1) -> Softmax(axis=1)`` on float32 images.
* ``ort_int8_static``: that graph through ``onnxruntime.quantization.quantize_static``: QDQ
  format, per-channel int8 weights, uint8 activations (U8S8, the CPU guidance of its
  docstring), MinMax calibration on training images through a ``CalibrationDataReader``;
  ``reduce_range`` (7-bit weights) exactly where that guidance asks for it: a CPU without VNNI.
* ``ort_int8_dynamic``: ``MatMul + Add -> Softmax`` (``quantize_dynamic`` quantizes MatMul,
  not Gemm) through ``quantize_dynamic``: int8 weights per tensor (its default, which its
  docstring calls the fastest on CPU), activations quantized per call to uint8.
* ``ort_int8_matmulinteger``: hand-built on the uint8 pixels themselves:
  ``MatMulInteger(x_u8, W_s8) -> Cast(float) -> Mul(s_w / 255) -> Add(b) -> Softmax``, with
  the per-class `quant.ScaledInt8` weight codes the other per-channel rows use.

Each session runs with graph optimization level ALL, ``intra_op_num_threads`` = torch's thread
count, sequential execution, and the thread-spinning setting
(``session.intra_op.allow_spinning``) that was faster here on a short probe: both are tried and
the choice is reported in the row's note and record. A spinning session also sets
``session.force_spinning_stop`` (ORT's documented switch that stops the pool spinning when a
``Run`` returns): its workers spin while ORT works, not after, when they would take both cores
from whatever the benchmark runs next in the same process (measured here: the integer head
0.83 ms right after a spinning ORT call with the switch, 4.1 ms without it).
"""

from __future__ import annotations

import contextlib
import logging
import platform
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch

import quant
from benchmarks._timing import time_interleaved
from benchmarks.variant import Unavailable, Variant

__all__ = ["ORT_VARIANTS", "ORT_HINT", "OPSET", "SPINNING_KEY", "modules", "fp32_graph",
           "matmulinteger_graph", "static_quantized", "dynamic_quantized", "session",
           "tune_spinning", "initializer_bytes", "cpu_has_vnni", "build"]

ORT_VARIANTS = ("ort_fp32", "ort_int8_static", "ort_int8_dynamic", "ort_int8_matmulinteger")
ORT_HINT = "pip install onnxruntime onnx (the project's optional extra 'ort')"
OPSET = 17
SPINNING_KEY = "session.intra_op.allow_spinning"
SPINNING_STOP_KEY = "session.force_spinning_stop"
CALIBRATION_IMAGES = 10000  # training images the static quantization calibrates on
_PROBE_ROWS, _PROBE_BATCH = 2560, 256


def modules() -> tuple[Any, Any]:
    """``(onnx, onnxruntime)``, imported here.

    Raises
    ------
    Unavailable
        When either is not installed (the message says how to install them).
    """
    try:
        import onnx
        import onnxruntime
    except ImportError as exc:
        raise Unavailable(f"{exc.name or 'onnxruntime/onnx'} is not installed; {ORT_HINT}"
                          ) from None
    return onnx, onnxruntime


def _model(nodes: list, inputs: list, outputs: list, initializers: list) -> Any:
    onnx, _ = modules()
    graph = onnx.helper.make_graph(nodes, "softmax_regression", inputs, outputs, initializers)
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", OPSET)])
    model.ir_version = min(model.ir_version, 10)  # what onnxruntime 1.2x reads
    onnx.checker.check_model(model)
    return model


def fp32_graph(weight: torch.Tensor, bias: torch.Tensor, *, gemm: bool = True) -> Any:
    """``softmax(x @ weight.T + bias)`` as an ONNX model: input ``x`` float32 (N, K).

    Parameters
    ----------
    weight : torch.Tensor
        (num_classes, K), rounded to float32.
    bias : torch.Tensor
        (num_classes,), rounded to float32.
    gemm : bool
        One ``Gemm`` node (``transB=1``) if True, else ``MatMul`` then ``Add`` (the form
        ``quantize_dynamic`` quantizes).

    Returns
    -------
    onnx.ModelProto
        Output ``p``: float32 (N, num_classes) probabilities.
    """
    onnx, _ = modules()
    h, tp = onnx.helper, onnx.TensorProto
    w = weight.detach().to(torch.float32).numpy()
    b = bias.detach().to(torch.float32).numpy()
    k, m = w.shape[1], w.shape[0]
    if gemm:
        inits = [onnx.numpy_helper.from_array(w, "W"), onnx.numpy_helper.from_array(b, "b")]
        nodes = [h.make_node("Gemm", ["x", "W", "b"], ["z"], transB=1)]
    else:
        inits = [onnx.numpy_helper.from_array(np.ascontiguousarray(w.T), "Wt"),
                 onnx.numpy_helper.from_array(b, "b")]
        nodes = [h.make_node("MatMul", ["x", "Wt"], ["xw"]),
                 h.make_node("Add", ["xw", "b"], ["z"])]
    nodes.append(h.make_node("Softmax", ["z"], ["p"], axis=1))
    return _model(nodes, [h.make_tensor_value_info("x", tp.FLOAT, ["N", k])],
                  [h.make_tensor_value_info("p", tp.FLOAT, ["N", m])], inits)


def matmulinteger_graph(codes: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor, *,
                        accumulators_only: bool = False) -> Any:
    """The hand-built int8 graph on uint8 pixels ``x`` (N, K).

    ``acc = MatMulInteger(x, codes)`` (int32, zero points 0), then
    ``p = Softmax(Cast<float>(acc) * scale + bias, axis=1)``.

    Parameters
    ----------
    codes : torch.Tensor
        int8 (K, num_classes) weight codes (the weights transposed).
    scale : torch.Tensor
        (num_classes,) real value of one accumulator step per class (float32).
    bias : torch.Tensor
        (num_classes,) float32 bias.
    accumulators_only : bool
        If True the model ends at ``MatMulInteger``, its output ``acc`` (int32): what the
        tests hold to the exact integer product.

    Returns
    -------
    onnx.ModelProto
    """
    onnx, _ = modules()
    h, tp = onnx.helper, onnx.TensorProto
    if codes.dtype != torch.int8 or codes.dim() != 2:
        raise ValueError(f"codes must be a 2-d int8 tensor, got {codes.dtype} {tuple(codes.shape)}")
    k, m = codes.shape
    inits = [onnx.numpy_helper.from_array(codes.contiguous().numpy(), "Wq")]
    nodes = [h.make_node("MatMulInteger", ["x", "Wq"], ["acc"])]
    x_info = h.make_tensor_value_info("x", tp.UINT8, ["N", k])
    if accumulators_only:
        return _model(nodes, [x_info], [h.make_tensor_value_info("acc", tp.INT32, ["N", m])],
                      inits)
    inits += [onnx.numpy_helper.from_array(scale.detach().to(torch.float32).numpy(), "s"),
              onnx.numpy_helper.from_array(bias.detach().to(torch.float32).numpy(), "b")]
    nodes += [h.make_node("Cast", ["acc"], ["accf"], to=tp.FLOAT),
              h.make_node("Mul", ["accf", "s"], ["zs"]),
              h.make_node("Add", ["zs", "b"], ["z"]),
              h.make_node("Softmax", ["z"], ["p"], axis=1)]
    return _model(nodes, [x_info], [h.make_tensor_value_info("p", tp.FLOAT, ["N", m])], inits)


def session(model: Any, *, threads: int, spinning: str) -> Any:
    """An ``InferenceSession`` of ``model`` on the CPU in the configuration above.

    Parameters
    ----------
    model : onnx.ModelProto
    threads : int
        ``intra_op_num_threads`` (>= 1).
    spinning : str
        ``"0"`` or ``"1"``: ``session.intra_op.allow_spinning``; ``"1"`` also sets
        ``session.force_spinning_stop`` (spinning only inside ``Run``).
    """
    _, ort = modules()
    if spinning not in ("0", "1"):
        raise ValueError(f"spinning must be '0' or '1', got {spinning!r}")
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.intra_op_num_threads = int(threads)
    so.inter_op_num_threads = 1
    so.log_severity_level = 3  # errors only
    so.add_session_config_entry(SPINNING_KEY, spinning)
    so.add_session_config_entry(SPINNING_STOP_KEY, spinning)
    return ort.InferenceSession(model.SerializeToString(), so,
                                providers=["CPUExecutionProvider"])


def _runner(sess: Any) -> Callable[[torch.Tensor], np.ndarray]:
    inp, out = sess.get_inputs()[0].name, sess.get_outputs()[0].name
    run = sess.run

    def forward(x: torch.Tensor) -> np.ndarray:
        return run([out], {inp: x.numpy()})[0]   # x.numpy() shares the tensor's memory
    return forward


def tune_spinning(model: Any, probe: torch.Tensor, *, threads: int,
                  repeats: int = 3) -> tuple[Any, str, dict[str, float]]:
    """Build a session with spinning off and one with it on (inside ``Run``); keep the faster.

    The probe is one call on all of ``probe`` plus a pass over it in batches of 256
    (interleaved, median of ``repeats``).

    Returns
    -------
    (session, spinning, seconds)
        The kept session, its setting ``"0"``/``"1"``, and ``{setting: median seconds}``.
    """
    sessions = {s: session(model, threads=threads, spinning=s) for s in ("0", "1")}
    chunks = list(probe.split(_PROBE_BATCH))

    def job(sess: Any) -> Callable[[], object]:
        run = _runner(sess)
        return lambda: (run(probe), [run(c) for c in chunks])
    t = time_interleaved([(s, job(sess)) for s, sess in sessions.items()], repeats=repeats,
                         settle=1)
    seconds = {s: t[s].median for s in sessions}
    best = "1" if seconds["1"] < seconds["0"] else "0"
    return sessions[best], best, seconds


def initializer_bytes(model: Any) -> tuple[int, int]:
    """(bytes of all initializers, bytes of the largest one: the weight matrix)."""
    onnx, _ = modules()
    sizes = [onnx.numpy_helper.to_array(t).nbytes for t in model.graph.initializer]
    return sum(sizes), max(sizes, default=0)


def cpu_has_vnni() -> bool:
    """Whether this x86 CPU has an int8 dot-product instruction (AVX512-VNNI or AVX-VNNI),
    from /proc/cpuinfo's flags; False where that cannot be read."""
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False
    return "avx512_vnni" in flags or "avx_vnni" in flags


@contextlib.contextmanager
def _quiet_quantizer() -> Iterator[None]:
    root = logging.getLogger()
    old = root.level
    root.setLevel(logging.ERROR)  # "consider pre-processing" and per-node info lines
    try:
        yield
    finally:
        root.setLevel(old)


def static_quantized(fp32: Any, calibration: torch.Tensor, reduce_range: bool) -> Any:
    """``fp32`` through ``quantize_static``: QDQ, per-channel int8 weights, uint8 activations,
    MinMax calibration on ``calibration`` (float32 (N, K) images, fed in batches of 1000).

    Returns
    -------
    onnx.ModelProto
        The quantized model (written to a temporary directory and read back).
    """
    onnx, _ = modules()
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat,
                                          QuantType, quantize_static)

    class Reader(CalibrationDataReader):
        """Training images in batches of 1000, once."""

        def __init__(self) -> None:
            self._batches = iter([{"x": c.numpy()} for c in calibration.split(1000)])

        def get_next(self) -> dict | None:
            return next(self._batches, None)

    with tempfile.TemporaryDirectory(prefix="ort_static_") as tmp, _quiet_quantizer():
        out = Path(tmp) / "static.onnx"
        quantize_static(fp32, out, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        reduce_range=reduce_range, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax)
        return onnx.load(out)


def dynamic_quantized(fp32: Any, reduce_range: bool) -> Any:
    """``fp32`` (a MatMul graph) through ``quantize_dynamic``: int8 weights per tensor, the
    activations quantized to uint8 on every call.

    Returns
    -------
    onnx.ModelProto
    """
    onnx, _ = modules()
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory(prefix="ort_dynamic_") as tmp, _quiet_quantizer():
        out = Path(tmp) / "dynamic.onnx"
        quantize_dynamic(fp32, out, weight_type=QuantType.QInt8, per_channel=False,
                         reduce_range=reduce_range)
        return onnx.load(out)


def _graph(name: str, weight: torch.Tensor, bias: torch.Tensor,
           calibration: torch.Tensor | None) -> tuple[Any, str, str]:
    """(model, input kind, note) of one ORT row."""
    rr = not cpu_has_vnni() and platform.machine().lower() in ("x86_64", "amd64")
    if name == "ort_fp32":
        return fp32_graph(weight, bias), "float32", "Gemm + Softmax"
    if name == "ort_int8_static":
        if calibration is None or calibration.shape[0] == 0:
            raise Unavailable("quantize_static needs calibration images (none were given)")
        cal = calibration[:CALIBRATION_IMAGES].to(torch.float32).contiguous()
        return (static_quantized(fp32_graph(weight, bias), cal, rr), "float32",
                f"quantize_static QDQ per-channel U8S8, MinMax on {cal.shape[0]} training "
                f"images, reduce_range={rr}")
    if name == "ort_int8_dynamic":
        return (dynamic_quantized(fp32_graph(weight, bias, gemm=False), rr), "float32",
                f"quantize_dynamic (MatMul + Add) int8 weights per tensor, reduce_range={rr}")
    enc = quant.ScaledInt8.encode(weight.detach().T.contiguous(), zero_point=0, axis=1,
                                  calibration="minmax")
    scale = (enc.scale.reshape(-1).to(torch.float64) / 255).to(torch.float32)
    codes = enc.codes.to(torch.int8)
    return (matmulinteger_graph(codes, scale, bias), "uint8",
            "uint8 pixels -> MatMulInteger (per-class int8 weights) -> Cast/Mul/Add -> Softmax")


def build(name: str, weight: torch.Tensor, bias: torch.Tensor, *,
          calibration_images: torch.Tensor | None = None, threads: int | None = None) -> Variant:
    """The ORT row ``name`` (one of `ORT_VARIANTS`) for the model ``softmax(W x + b)``.

    Parameters
    ----------
    name : str
    weight, bias : torch.Tensor
        The FP32 model's (num_classes, K) weight and (num_classes,) bias.
    calibration_images : torch.Tensor, optional
        float32 (N, K) training images in [0, 1], for ``ort_int8_static``.
    threads : int, optional
        ``intra_op_num_threads``; default torch's current thread count.

    Raises
    ------
    Unavailable
        When onnx/onnxruntime are missing or refuse the model (the reason is kept).
    ValueError
        For an unknown ``name``.
    """
    if name not in ORT_VARIANTS:
        raise ValueError(f"unknown ONNX Runtime variant {name!r}; known: {ORT_VARIANTS}")
    _, ort = modules()
    threads = threads or torch.get_num_threads()
    try:
        model, kind, note = _graph(name, weight, bias, calibration_images)
        g = torch.Generator().manual_seed(0)
        k = weight.shape[1]
        probe = torch.randint(0, 256, (_PROBE_ROWS, k), generator=g, dtype=torch.uint8)
        probe = probe if kind == "uint8" else probe.to(torch.float32).div_(255)
        sess, spin, probe_s = tune_spinning(model, probe, threads=threads)
    except Unavailable:
        raise
    except Exception as exc:  # onnxruntime refusing a graph or a kernel fails in many ways
        raise Unavailable(f"onnxruntime {ort.__version__} could not run {name} "
                          f"({type(exc).__name__}: {exc})") from None
    total, matrix = initializer_bytes(model)
    return Variant(name, kind, _runner(sess), total, matrix,
                   note=f"onnxruntime {ort.__version__}: {note}; {threads} threads, "
                        f"spinning {'on, inside Run only' if spin == '1' else 'off'} (faster here)",
                   extra=(("ort_allow_spinning", spin), ("ort_threads", threads),
                          ("ort_spinning_probe_s", probe_s)))
