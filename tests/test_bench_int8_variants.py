"""The int8 benchmark's rows, measurement and report, on a toy model (no data needed)."""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

import pytest
import torch

from benchmarks import int8_measure, int8_report, int8_variants
from benchmarks.machine_floor import ComputeFloor
from models.softmax_regression import SoftmaxRegression


def _toy_model(seed: int = 0) -> SoftmaxRegression:
    g = torch.Generator().manual_seed(seed)
    m = SoftmaxRegression()
    with torch.no_grad():
        m.linear.weight.copy_(torch.randn(10, 784, generator=g) * 0.05)
        m.linear.bias.copy_(torch.randn(10, generator=g))
    return m


def _toy_data(n: int = 300) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (n, 28, 28), generator=g, dtype=torch.uint8)
    return images, torch.randint(0, 10, (n,), generator=g)


def test_measure_on_a_toy_model_without_data() -> None:
    model = _toy_model()
    images, labels = _toy_data()
    names = ("fp32", "bf16", "torch_dynamic_int8", "log_int8_weights", "integer_only")
    variants, skipped = int8_variants.build_variants(model, names)
    assert not skipped and [v.name for v in variants] == list(names)
    records = int8_measure.measure(variants, images, labels, repeats=1, warmup=0,
                                   latency_repeats=5, small_batch=64)
    by = {r["name"]: r for r in records}
    # Accuracy, agreement and errors recomputed here from float64 arithmetic.
    x = images.reshape(300, -1)
    p64 = torch.softmax(x.double() / 255 @ model.linear.weight.double().T
                        + model.linear.bias.double(), 1)
    assert by["fp32"]["accuracy"] == pytest.approx(
        float((p64.argmax(1) == labels).double().mean()), abs=0.01)
    assert by["fp32"]["agreement"] == 1.0 and by["fp32"]["bit_identical_to_reference"] is None
    assert by["integer_only"]["agreement"] > 0.9
    assert by["integer_only"]["max_abs_prob_err"] < 0.1
    assert by["integer_only"]["bit_identical_to_reference"] is True
    assert all(r["latency_b1_p50_s"] > 0 for r in records)
    table = int8_report.results_table(records, {"ort_fp32": "not here"})
    assert table.count("\n") == 2 + len(names)
    assert "| ort_fp32 | skipped: not here |" in table


def test_a_reference_mismatch_is_reported() -> None:
    variants, _ = int8_variants.build_variants(_toy_model(), ("fp32", "integer_only"))
    io = variants[1]
    # A reference that differs in one code: the check must see it.
    broken = dataclasses.replace(io, reference=lambda x: io.run(x).clone().fill_(0))
    images, labels = _toy_data(40)
    rec = int8_measure.measure([variants[0], broken], images, labels, repeats=1, warmup=0,
                               latency_repeats=2, small_batch=16)
    assert rec[1]["bit_identical_to_reference"] is False


def _rec(name: str, acc: float, agree: float, b10000: float, b256: float, p50: float,
         wb: int = 7930, mb: int = 7840) -> dict:
    return {"name": name, "accuracy": acc, "agreement": agree, "images_per_s_b10000": b10000,
            "images_per_s_b256": b256, "latency_b1_p50_s": p50, "weight_bytes": wb,
            "weight_matrix_bytes": mb, "bit_identical_to_reference": None}


def test_targets_logic() -> None:
    fp = _rec("fp32", 0.85, 1.0, 1e6, 1e6, 50e-6, 31400, 31360)
    ort = _rec("ort_int8_matmulinteger", 0.85, 0.99, 2e6, 1.2e6, 20e-6)
    io = dict(_rec("integer_only", 0.846, 0.996, 3.1e6, 1.9e6, 19e-6),
              bit_identical_to_reference=True)
    # floor: 10000 rows in 1 ms; integer_only takes 10000 / 3.1e6 s = 3.2 ms: 31% of it
    floor = ComputeFloor(10000, 784, 10, 1e-3, "stream", 78.4e9, "mm", True)
    got = {t.what: t for t in int8_report.targets([fp, ort, io], floor)}
    met = {k: t.met for k, t in got.items()}
    assert met["accuracy within 0.5 points of FP32"] is True
    assert met["agreement with FP32 >= 99.5%"] is True
    assert met["output bit-identical to the reference path (softmax(logit_codes(x)))"] is True
    assert met["throughput at batch 10000 >= 1.5x every other variant"] is True  # 1.55x
    assert met["throughput at batch 256 >= 1.5x every other variant"] is True    # 1.58x
    assert met["batch-1 p50 latency no worse than the best other variant"] is True
    assert met["at batch 10000 >= 25% of the compute floor"] is True
    assert "31.0% of the floor" in got["at batch 10000 >= 25% of the compute floor"].value
    assert "ort_int8_matmulinteger" in got[
        "throughput at batch 10000 >= 1.5x every other variant"].value
    slow = dict(_rec("integer_only", 0.84, 0.99, 2.4e6, 1.7e6, 21e-6, 15700, 15680),
                bit_identical_to_reference=False)
    missed = int8_report.targets([fp, ort, slow], floor)
    by = {t.what: t for t in missed}
    assert all(t.met is False for t in missed), [(t.what, t.met) for t in missed]
    assert by["at batch 10000 >= 25% of the compute floor"].mark == "MISSED"
    no_floor = {t.what: t.met for t in int8_report.targets([fp, io])}
    assert no_floor["at batch 10000 >= 25% of the compute floor"] is None


def test_torchao_absent_is_skipped_with_the_reason(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "torchao", None)  # import torchao -> ImportError
    variants, skipped = int8_variants.build_variants(
        _toy_model(), ("fp32", "torchao_int8_weight_only", "torchao_int8_dynamic"))
    assert [v.name for v in variants] == ["fp32"]
    assert set(skipped) == {"torchao_int8_weight_only", "torchao_int8_dynamic"}
    assert all("torchao is not installed" in why and "torchao==0.18" in why
               for why in skipped.values())


def test_torch_compile_failure_is_a_skipped_row(monkeypatch) -> None:
    def broken(*args, **kwargs):
        raise RuntimeError("no C++ compiler found")
    monkeypatch.setattr(torch, "compile", broken)
    variants, skipped = int8_variants.build_variants(_toy_model(),
                                                     ("fp32", "torch_compile_fp32"))
    assert [v.name for v in variants] == ["fp32"]
    assert "RuntimeError: no C++ compiler found" in skipped["torch_compile_fp32"]


def test_torch_compile_is_time_bounded(monkeypatch) -> None:
    def slow(fn, **kwargs):
        def compiled(x):
            time.sleep(3)  # a compile that takes too long (the alarm interrupts the sleep)
            return fn(x)
        return compiled
    monkeypatch.setattr(torch, "compile", slow)
    t0 = time.perf_counter()
    _, skipped = int8_variants.build_variants(_toy_model(), ("fp32", "torch_compile_fp32"),
                                              compile_time_limit_s=0.2)
    assert time.perf_counter() - t0 < 2.5
    assert "did not finish compiling within 0.2 s" in skipped["torch_compile_fp32"]


def test_integer_only_kernel_name() -> None:
    class New:
        kernel = "onednn"

    class Old:
        backend = "int_mm"
    assert int8_variants.integer_only_kernel(New()) == "onednn"
    assert int8_variants.integer_only_kernel(Old()) == "int_mm"
    assert int8_variants.integer_only_kernel(object()) == "unknown"


def test_unknown_variant_names_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown variants \\['fp64'\\]"):
        int8_variants.build_variants(_toy_model(), ("fp64",))
    assert "log_int8" not in int8_variants.VARIANTS  # renamed: only the weights are log-coded
    assert "log_int8_weights" in int8_variants.VARIANTS


def test_plot_writes_png_and_svg(tmp_path: Path) -> None:
    base = {"latency_b1_p50_s": 5e-5}
    records = [dict(base, name="fp32", input="float32", accuracy=0.85,
                    images_per_s_b10000=1e6, images_per_s_b256=5e5),
               dict(base, name="ort_int8_matmulinteger", input="uint8", accuracy=0.848,
                    images_per_s_b10000=1.01e6, images_per_s_b256=5.1e5),
               dict(base, name="integer_only", input="uint8", accuracy=0.84,
                    images_per_s_b10000=2e6, images_per_s_b256=4e5)]
    (tmp_path / "sub").mkdir()
    written = int8_report.write_plot(records, tmp_path / "sub" / "plot.svg", threads=2)
    assert [p.name for p in written] == ["plot.png", "plot.svg"]
    assert all(p.stat().st_size > 1000 for p in written)


def test_a_variant_with_the_wrong_class_count_is_refused() -> None:
    variants, _ = int8_variants.build_variants(_toy_model(), ("fp32", "bf16"))
    short = dataclasses.replace(variants[1], run=lambda x: torch.zeros(x.shape[0], 9))
    images, labels = _toy_data(20)
    with pytest.raises(RuntimeError, match="bf16 returned \\(20, 9\\)"):
        int8_measure.measure([short, variants[0]], images, labels, repeats=1, warmup=0,
                             latency_repeats=1, small_batch=8)
    with pytest.raises(ValueError, match="fp32 variant is the reference"):
        int8_measure.measure([variants[1]], images, labels, repeats=1)
