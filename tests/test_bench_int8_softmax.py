"""`python -m benchmarks.int8_softmax`: --quick end to end on the real data, and bad input.

The real-data tests fail (never skip) when Fashion-MNIST is missing: the benchmark exits 2
with the loader's message and the assertion on its exit code fails.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest
import torch

from benchmarks import int8_softmax as bench
from benchmarks._timing import time_interleaved
from models.checkpoint import load_checkpoint, save_checkpoint
from models.softmax_regression import SoftmaxRegression


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One --quick run on the real data (module-scoped: ~10 s), its outputs and files."""
    d = tmp_path_factory.mktemp("bench")
    ck, js, plot = d / "quick.pt", d / "r.json", d / "acc_vs_speed.png"
    mp = pytest.MonkeyPatch()
    out = []
    mp.setattr("builtins.print", lambda *a, **k: out.append(" ".join(map(str, a)))
               if k.get("file") in (None, sys.stdout) else None)
    try:
        rc = bench.main(["--quick", "--checkpoint", str(ck), "--json", str(js),
                         "--plot", str(plot)])
    finally:
        mp.undo()
    return {"rc": rc, "stdout": "\n".join(out), "dir": d, "ck": ck, "json": js, "plot": plot}


@pytest.mark.realdata
def test_quick_end_to_end(quick_run: dict) -> None:
    assert quick_run["rc"] == 0, "the benchmark failed (is Fashion-MNIST installed?)"
    records = json.loads(quick_run["json"].read_text())
    assert [r["name"] for r in records] == list(bench.VARIANTS)
    by = {r["name"]: r for r in records}
    for r in records:
        assert set(bench.RECORD_KEYS) <= set(r)
        if r.get("skipped"):
            # Only optional or not-yet-available pieces may be skipped, with a reason.
            assert r["name"] in ("torchao_int8_weight_only", "torchao_int8_dynamic",
                                 "scaled_int8_per_tensor", "scaled_int8_per_channel", "log_int8")
            assert r["accuracy"] is None and len(r["skipped"]) > 10
            continue
        assert 0.6 < r["accuracy"] < 0.95
        assert 0.9 <= r["agreement"] <= 1
        assert 0 <= r["max_abs_prob_err"] <= 1
        assert r["images_per_s_b10000"] > 0 and r["images_per_s_b256"] > 0
        assert r["weight_bytes"] > 0
    fp, io = by["fp32"], by["integer_only"]
    assert fp["agreement"] == 1 and fp["max_abs_prob_err"] == 0
    assert fp["weight_bytes"] == 4 * (784 * 10 + 10)
    assert by["fp16"]["weight_bytes"] == by["bf16"]["weight_bytes"] == 2 * (784 * 10 + 10)
    assert io["weight_bytes"] == 784 * 10 + 4 * 10 + 4 * 10 + 10
    assert io["weight_matrix_bytes"] * 4 == fp["weight_matrix_bytes"] == 4 * 7840
    # The integer pipeline on a 2-epoch model: close to FP32 already.
    assert abs(io["accuracy"] - fp["accuracy"]) < 0.01
    assert io["agreement"] >= 0.98
    assert io["input"] == "uint8" and fp["input"] == "float32"
    if "torchao_int8_dynamic" in by and by["torchao_int8_dynamic"].get("skipped"):
        assert "torchao" in quick_run["stdout"]  # the skip is said, with its reason
    text = quick_run["stdout"]
    assert "| integer_only | uint8 |" in text and "### Targets (integer_only)" in text
    png = quick_run["plot"].read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert quick_run["plot"].with_suffix(".svg").read_text().lstrip().startswith("<?xml")


@pytest.mark.realdata
def test_checkpoint_is_reused_and_validated(quick_run: dict, capsys) -> None:
    assert quick_run["rc"] == 0
    ck = load_checkpoint(quick_run["ck"])
    split = bench.load_split()
    model = bench._reference_model(split, quick_run["ck"], quick=True, retrain=False)
    assert torch.equal(model.linear.weight, ck.model.linear.weight)
    assert "validated" in capsys.readouterr().err


@pytest.mark.realdata
def test_corrupt_checkpoint_is_a_clear_error(quick_run: dict, capsys) -> None:
    bad = quick_run["dir"] / "corrupt.pt"
    bad.write_bytes(quick_run["ck"].read_bytes()[:500])  # truncated
    assert bench.main(["--quick", "--checkpoint", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"checkpoint {bad}" in err and "corrupt or truncated" in err


@pytest.mark.realdata
def test_mismatched_checkpoints_are_clear_errors(quick_run: dict, capsys) -> None:
    # The quick model is not the full reference: another training config.
    assert bench.main(["--checkpoint", str(quick_run["ck"])]) == 2
    assert "trained with another config" in capsys.readouterr().err
    # Same config and data, consistent SHA, but not the weights its history describes.
    ck = load_checkpoint(quick_run["ck"])
    with torch.no_grad():
        ck.model.linear.weight.mul_(-1)
    forged = quick_run["dir"] / "forged.pt"
    save_checkpoint(forged, ck.model, ck.config, ck.history, ck.split_fingerprint)
    assert bench.main(["--quick", "--checkpoint", str(forged)]) == 2
    assert "validation accuracy is" in capsys.readouterr().err
    # A model of another shape.
    other = SoftmaxRegression(784, 5)
    wrong = quick_run["dir"] / "wrong_shape.pt"
    save_checkpoint(wrong, other, ck.config, ck.history, ck.split_fingerprint)
    assert bench.main(["--quick", "--checkpoint", str(wrong)]) == 2
    assert "784->5" in capsys.readouterr().err


# ---- no data needed ------------------------------------------------------------------------
def _toy_model(seed: int = 0) -> SoftmaxRegression:
    g = torch.Generator().manual_seed(seed)
    m = SoftmaxRegression()
    with torch.no_grad():
        m.linear.weight.copy_(torch.randn(10, 784, generator=g) * 0.05)
        m.linear.bias.copy_(torch.randn(10, generator=g))
    return m


def test_measure_on_a_toy_model_without_data() -> None:
    model = _toy_model()
    g = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (300, 28, 28), generator=g, dtype=torch.uint8)
    labels = torch.randint(0, 10, (300,), generator=g)
    variants, skipped = bench.build_variants(
        model, ("fp32", "bf16", "torch_dynamic_int8", "integer_only"), progress=lambda s: None)
    assert not skipped
    records = bench.measure(variants, images, labels, repeats=1, warmup=0, small_batch=64,
                            progress=lambda s: None)
    by = {r["name"]: r for r in records}
    # Agreement and errors computed here independently from the variants' own outputs.
    x = images.reshape(300, -1)
    p32 = torch.softmax(x.double() / 255 @ model.linear.weight.double().T
                        + model.linear.bias.double(), 1)
    assert by["fp32"]["accuracy"] == pytest.approx(
        float((p32.argmax(1) == labels).double().mean()), abs=0.01)
    assert by["integer_only"]["agreement"] > 0.9
    assert by["integer_only"]["max_abs_prob_err"] < 0.1
    table = bench.markdown_table(records, {"log_int8": "not here"})
    assert table.count("\n") == 2 + 4 and "| log_int8 | skipped: not here |" in table


def test_targets_logic() -> None:
    def rec(name, acc, agree, speed, wb, mb):
        return {"name": name, "accuracy": acc, "agreement": agree, "images_per_s_b10000": speed,
                "weight_bytes": wb, "weight_matrix_bytes": mb}
    records = [rec("fp32", 0.85, 1.0, 100.0, 31400, 31360),
               rec("torch_dynamic_int8", 0.85, 0.99, 80, 8000, 7840),
               rec("integer_only", 0.846, 0.995, 130.0, 7930, 7840)]
    got = {t.what: t.met for t in bench.targets(records)}
    assert got["accuracy within 0.5 points of FP32"] is True
    assert got["agreement with FP32 >= 99%"] is True
    assert got["throughput (b10000) >= 1.25x fp32"] is True
    assert got["throughput (b10000) >= 1.25x torch_dynamic_int8"] is True
    assert got["throughput (b10000) >= 1.25x torchao_int8_dynamic"] is None  # not measured
    wb = "weight bytes 4x smaller than FP32 (the weight matrix; all-in shown too)"
    assert got[wb] is True
    records[2] = rec("integer_only", 0.84, 0.98, 120.0, 15700, 15680)
    got = {t.what: t.met for t in bench.targets(records)}
    assert not any(got[k] for k in ("accuracy within 0.5 points of FP32",
                                    "agreement with FP32 >= 99%",
                                    "throughput (b10000) >= 1.25x fp32", wb))


def test_torchao_absent_is_skipped_with_the_reason(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "torchao", None)  # import torchao -> ImportError
    variants, skipped = bench.build_variants(
        _toy_model(), ("fp32", "torchao_int8_weight_only", "torchao_int8_dynamic"),
        progress=lambda s: None)
    assert [v.name for v in variants] == ["fp32"]
    assert set(skipped) == {"torchao_int8_weight_only", "torchao_int8_dynamic"}
    assert all("torchao is not installed" in why and "torchao==0.18" in why
               for why in skipped.values())


def test_plot_writes_png_and_svg(tmp_path: Path) -> None:
    records = [{"name": "fp32", "input": "float32", "accuracy": 0.85, "images_per_s_b10000": 1e6,
                "images_per_s_b256": 5e5},
               {"name": "integer_only", "input": "uint8", "accuracy": 0.84,
                "images_per_s_b10000": 2e6, "images_per_s_b256": 4e5}]
    written = bench.write_plot(records, tmp_path / "sub" / "plot.svg")
    assert [p.name for p in written] == ["plot.png", "plot.svg"]
    assert all(p.stat().st_size > 1000 for p in written)


def test_bad_arguments_are_clear_errors(capsys) -> None:
    assert bench.main(["--quick", "--repeats", "0"]) == 2
    assert "--repeats must be >= 1" in capsys.readouterr().err
    with pytest.raises(ValueError, match="unknown variants \\['fp64'\\]"):
        bench.build_variants(_toy_model(), ("fp64",))


def test_timing_helper() -> None:
    calls = []
    t = time_interleaved([("a", lambda: calls.append("a")), ("b", lambda: calls.append("b"))],
                         repeats=3, warmup=1)
    assert calls.count("a") == 4 and calls.count("b") == 4
    assert calls[2:] == ["a", "b", "b", "a", "a", "b"]  # interleaved, order rotating
    assert all(len(v.seconds) == 3 and v.median >= 0 and math.isfinite(v.spread)
               for v in t.values())
    with pytest.raises(ValueError, match="unique"):
        time_interleaved([("a", lambda: None), ("a", lambda: None)], repeats=1)
