"""The ONNX Runtime rows: each graph computes what it claims; without ORT the rows are skipped."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from benchmarks import int8_variants, ort_variants
from benchmarks.variant import Unavailable

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


def _session(model):
    return ort_variants.session(model, threads=1, spinning="0")


def _run(model, x: np.ndarray) -> np.ndarray:
    sess = _session(model)
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


@pytest.mark.parametrize("seed, n, k, m", [(0, 7, 33, 5), (1, 64, 784, 10), (2, 1, 16, 3)])
def test_matmulinteger_is_the_exact_integer_product(seed: int, n: int, k: int, m: int) -> None:
    # Operands small enough that no pair sum of any kernel can clip (2 * 15 * 8 < 2**15).
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 16, (n, k), generator=g, dtype=torch.uint8)
    w = torch.randint(-8, 9, (k, m), generator=g, dtype=torch.int8)
    acc = _run(ort_variants.matmulinteger_graph(w, torch.ones(m), torch.zeros(m),
                                                accumulators_only=True), x.numpy())
    xs, ws = x.tolist(), w.tolist()
    exact = [[sum(xs[i][t] * ws[t][j] for t in range(k)) for j in range(m)] for i in range(n)]
    assert acc.dtype == np.int32 and acc.tolist() == exact


def test_matmulinteger_graph_is_scaled_softmax_of_the_accumulators() -> None:
    g = torch.Generator().manual_seed(3)
    x = torch.randint(0, 16, (50, 40), generator=g, dtype=torch.uint8)
    w = torch.randint(-8, 9, (40, 6), generator=g, dtype=torch.int8)
    scale = torch.rand(6, generator=g) * 0.01
    bias = torch.randn(6, generator=g)
    p = _run(ort_variants.matmulinteger_graph(w, scale, bias), x.numpy())
    acc = x.double() @ w.double()  # exact: small integers
    want = torch.softmax(acc * scale.double() + bias.double(), 1)
    assert p.dtype == np.float32
    np.testing.assert_allclose(p, want.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("gemm", [True, False])
def test_fp32_graph_agrees_with_torch_softmax(gemm: bool) -> None:
    g = torch.Generator().manual_seed(4)
    w, b = torch.randn(10, 784, generator=g) * 0.05, torch.randn(10, generator=g)
    x = torch.rand(100, 784, generator=g)
    p = _run(ort_variants.fp32_graph(w, b, gemm=gemm), x.numpy())
    want = torch.softmax(x.double() @ w.double().T + b.double(), 1)
    np.testing.assert_allclose(p, want.numpy(), rtol=1e-5, atol=1e-6)
    assert ort_variants.initializer_bytes(ort_variants.fp32_graph(w, b)) == (4 * 7850, 4 * 7840)


def test_sessions_use_the_requested_configuration() -> None:
    model = ort_variants.fp32_graph(torch.zeros(3, 8), torch.zeros(3))
    sess, spin, seconds = ort_variants.tune_spinning(model, torch.rand(300, 8), threads=1,
                                                     repeats=1)
    assert spin in ("0", "1") and set(seconds) == {"0", "1"}
    assert spin == ("1" if seconds["1"] < seconds["0"] else "0")
    opts = sess.get_session_options()
    assert opts.get_session_config_entry(ort_variants.SPINNING_KEY) == spin
    # a spinning pool stops when Run returns, so it cannot slow the next row's call
    assert opts.get_session_config_entry(ort_variants.SPINNING_STOP_KEY) == spin
    assert opts.intra_op_num_threads == 1
    assert opts.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    with pytest.raises(ValueError, match="spinning"):
        ort_variants.session(model, threads=1, spinning="yes")


def _toy():
    g = torch.Generator().manual_seed(5)
    w, b = torch.randn(10, 784, generator=g) * 0.05, torch.randn(10, generator=g)
    x = torch.randint(0, 256, (400, 784), generator=g, dtype=torch.uint8)
    return w, b, x


def test_quantized_rows_are_int8_graphs_close_to_fp32() -> None:
    w, b, x = _toy()
    xf = x.to(torch.float32) / 255
    p32 = torch.softmax(xf.double() @ w.double().T + b.double(), 1)
    for name in ("ort_int8_static", "ort_int8_dynamic", "ort_int8_matmulinteger"):
        v = ort_variants.build(name, w, b, calibration_images=xf[:200], threads=1)
        p = v.to_probs(v.run(x if v.input_kind == "uint8" else xf))
        agree = float((p.argmax(1) == p32.argmax(1)).double().mean())
        assert agree > 0.9 and float((p - p32).abs().max()) < 0.2, name
        assert v.matrix_bytes == 7840 and 7840 < v.weight_bytes < 7840 + 400, name
        assert dict(v.extra)["ort_allow_spinning"] in ("0", "1")
        assert "spinning" in v.note and "threads" in v.note


def test_static_quantization_is_qdq_per_channel() -> None:
    w, b, x = _toy()
    xf = x.to(torch.float32) / 255
    model = ort_variants.static_quantized(ort_variants.fp32_graph(w, b), xf[:100],
                                          reduce_range=False)
    ops = [n.op_type for n in model.graph.node]
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops and "Gemm" in ops
    shapes = {t.name: tuple(t.dims) for t in model.graph.initializer}
    w_scales = [s for name, s in shapes.items() if "W" in name and "scale" in name]
    assert (10,) in w_scales  # one scale per class: per channel


def test_static_needs_calibration_images() -> None:
    w, b, _ = _toy()
    with pytest.raises(Unavailable, match="calibration images"):
        ort_variants.build("ort_int8_static", w, b, calibration_images=None)


@pytest.mark.parametrize("missing", ["onnxruntime", "onnx"])
def test_without_onnxruntime_the_rows_are_skipped(monkeypatch, missing: str) -> None:
    monkeypatch.setitem(sys.modules, missing, None)  # import -> ImportError
    from models.softmax_regression import SoftmaxRegression
    names = ("fp32", *int8_variants.ORT_VARIANTS)
    variants, skipped = int8_variants.build_variants(SoftmaxRegression(), names)
    assert [v.name for v in variants] == ["fp32"]
    assert set(skipped) == set(int8_variants.ORT_VARIANTS)
    for why in skipped.values():
        assert f"{missing} is not installed" in why and ort_variants.ORT_HINT in why


def test_unknown_ort_name_is_refused() -> None:
    w, b, _ = _toy()
    with pytest.raises(ValueError, match="unknown ONNX Runtime variant"):
        ort_variants.build("ort_fp64", w, b)
