"""`python -m benchmarks.int8_softmax`: --quick end to end on the real data, and bad input.

The real-data tests fail (never skip) when Fashion-MNIST is missing: the benchmark exits 2
with the loader's message and the assertion on its exit code fails.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from benchmarks import int8_measure, int8_variants
from benchmarks import int8_softmax as bench
from models.checkpoint import load_checkpoint, save_checkpoint
from models.data import load_split
from models.softmax_regression import SoftmaxRegression
from numfmt.cli import Progress

# torch.compile's first compile takes tens of seconds: its row has tests of its own below.
QUICK_VARIANTS = [n for n in int8_variants.VARIANTS if n != "torch_compile_fp32"]
REPO = Path(__file__).resolve().parents[1]


def _strict_json(text: str) -> object:
    def refuse(name: str) -> None:
        raise AssertionError(f"non-strict JSON constant {name}")
    return json.loads(text, parse_constant=refuse)


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One --quick run on the real data (module-scoped), its outputs and files."""
    d = tmp_path_factory.mktemp("bench")
    ck, js, plot = d / "quick.pt", d / "r.json", d / "acc_vs_speed.png"
    mp = pytest.MonkeyPatch()
    out = []
    mp.setattr("builtins.print", lambda *a, **k: out.append(" ".join(map(str, a)))
               if k.get("file") in (None, sys.stdout) else None)
    try:
        rc = bench.main(["--quick", "--quiet", "--checkpoint", str(ck), "--json", str(js),
                         "--plot", str(plot), "--latency-repeats", "20",
                         "--variants", ",".join(QUICK_VARIANTS)])
    finally:
        mp.undo()
    return {"rc": rc, "stdout": "\n".join(out), "dir": d, "ck": ck, "json": js, "plot": plot}


@pytest.mark.realdata
def test_quick_end_to_end(quick_run: dict) -> None:
    assert quick_run["rc"] == 0, "the benchmark failed (is Fashion-MNIST installed?)"
    result = _strict_json(quick_run["json"].read_text())
    records = result["variants"]
    assert [r["name"] for r in records] == QUICK_VARIANTS
    by = {r["name"]: r for r in records}
    for r in records:
        assert set(int8_measure.record_keys()) <= set(r)
        if r.get("skipped"):
            # Only optional pieces may be skipped, with a reason.
            assert r["name"] in int8_variants.OPTIONAL
            assert r["accuracy"] is None and len(r["skipped"]) > 10
            continue
        assert 0.6 < r["accuracy"] < 0.95
        assert 0.9 <= r["agreement"] <= 1
        assert 0 <= r["max_abs_prob_err"] <= 1
        assert r["images_per_s_b10000"] > 0 and r["images_per_s_b256"] > 0
        assert 0 < r["latency_b1_p50_s"] <= r["latency_b1_p99_s"]
        assert r["weight_bytes"] > 0
    fp, io = by["fp32"], by["integer_only"]
    assert fp["agreement"] == 1 and fp["max_abs_prob_err"] == 0
    assert fp["weight_bytes"] == 4 * (784 * 10 + 10)
    assert by["fp16"]["weight_bytes"] == by["bf16"]["weight_bytes"] == 2 * (784 * 10 + 10)
    assert io["weight_bytes"] == 784 * 10 + 4 * 10 + 4 * 10 + 10
    assert io["weight_matrix_bytes"] * 4 == fp["weight_matrix_bytes"] == 4 * 7840
    assert io["bit_identical_to_reference"] is True
    assert io["kernel"] in ("onednn", "int_mm", "int64") or io["kernel"]
    # The integer pipeline on a 2-epoch model: close to FP32 already.
    assert abs(io["accuracy"] - fp["accuracy"]) < 0.01
    assert io["agreement"] >= 0.98
    assert io["input"] == "uint8" and fp["input"] == "float32"
    ort_fp = by["ort_fp32"]
    if not ort_fp.get("skipped"):  # onnxruntime is installed in the project's .venv
        assert ort_fp["agreement"] >= 0.999 and ort_fp["max_abs_prob_err"] < 1e-5
        assert all(by[n]["ort_allow_spinning"] in ("0", "1") for n in int8_variants.ORT_VARIANTS)
        assert by["ort_int8_matmulinteger"]["input"] == "uint8"
    floor = result["floor"]
    assert floor["rows"] == 10000 and floor["macs"] == 10000 * 784 * 10
    assert floor["floor_seconds"] >= floor["stream_seconds"] > 0
    assert {t["met"] for t in result["targets"]} <= {True, False, None}
    text = quick_run["stdout"]
    assert "| integer_only | uint8 |" in text and "### Targets (integer_only)" in text
    assert "### The limit" in text and "of the floor" in text
    assert ("MET:" in text or "MISSED:" in text)
    png = quick_run["plot"].read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert quick_run["plot"].with_suffix(".svg").read_text().lstrip().startswith("<?xml")


@pytest.mark.realdata
def test_checkpoint_is_reused_and_validated(quick_run: dict, capsys) -> None:
    assert quick_run["rc"] == 0
    ck = load_checkpoint(quick_run["ck"])
    model = bench._reference_model(load_split(), quick_run["ck"], quick=True, retrain=False,
                                   progress=Progress())
    assert torch.equal(model.linear.weight, ck.model.linear.weight)
    assert "validated" in capsys.readouterr().err


@pytest.mark.realdata
def test_corrupt_checkpoint_is_a_clear_error(quick_run: dict, capsys) -> None:
    bad = quick_run["dir"] / "corrupt.pt"
    bad.write_bytes(quick_run["ck"].read_bytes()[:500])  # truncated
    assert bench.main(["--quick", "--checkpoint", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and f"checkpoint {bad}" in err
    # models.checkpoint's wording (being revised for issue 9 item 18): either form is clear
    assert "corrupt or truncated" in err or "not a checkpoint of this project" in err
    assert "Traceback" not in err and "weights_only=False" not in err


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


# ---- the command line, no data needed --------------------------------------------------
@pytest.mark.parametrize("args, message", [
    (["--json", "{dir}"], "is a directory"),
    (["--json", "{dir}/no/such/r.json"], "does not exist"),
    (["--plot", "{dir}/x.pdf"], "suffix '.pdf'"),
    (["--plot", "{dir}"], "is a directory"),
    (["--checkpoint", "{dir}"], "is a directory, not a checkpoint"),
    (["--checkpoint", "{dir}/no/such/ck.pt"], "does not exist"),
    (["--data-dir", "{dir}/missing"], "not a directory"),
    (["--variants", "fp32,fp64"], "unknown fp64"),
    (["--variants", "fp32,,bf16"], "empty name"),
])
def test_bad_arguments_are_clear_errors_before_work(tmp_path: Path, capsys, args: list,
                                                    message: str) -> None:
    argv = ["--quick"] + [a.format(dir=tmp_path) for a in args]
    assert bench.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("int8_softmax: error:") and message in err, err
    assert "Traceback" not in err and "training" not in err  # refused before any work
    assert not (tmp_path / "x.pdf").exists() and not (tmp_path / "no").exists()


@pytest.mark.parametrize("flag", ["--repeats", "--latency-repeats", "--threads"])
@pytest.mark.parametrize("value", ["0", "-5", "two"])
def test_counts_must_be_positive_integers(flag: str, value: str, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        bench.main(["--quick", flag, value])
    assert exc.value.code == 2
    assert "expected a positive integer" in capsys.readouterr().err


def test_omp_wait_policy_is_chosen_before_torch_loads(monkeypatch) -> None:
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    monkeypatch.setattr(bench, "machine_busy", lambda: True)
    assert bench.choose_omp_wait_policy() is None  # torch is already loaded in this process
    monkeypatch.delitem(sys.modules, "torch")
    assert bench.choose_omp_wait_policy() == "PASSIVE"
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")  # the user's choice wins
    assert bench.choose_omp_wait_policy() is None and os.environ["OMP_WAIT_POLICY"] == "ACTIVE"
    monkeypatch.setattr(bench, "machine_busy", lambda: False)
    monkeypatch.delenv("OMP_WAIT_POLICY")
    assert bench.choose_omp_wait_policy() is None and "OMP_WAIT_POLICY" not in os.environ


def test_importing_the_cli_does_not_load_torch() -> None:
    code = "import sys, benchmarks.int8_softmax; print('torch' in sys.modules)"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=REPO, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


@pytest.mark.realdata
def test_json_to_stdout_keeps_stdout_pure(quick_run: dict, capsys) -> None:
    assert bench.main(["--quick", "--quiet", "--checkpoint", str(quick_run["ck"]), "--json", "-",
                       "--variants", "integer_only", "--latency-repeats", "2"]) == 0
    out = capsys.readouterr()
    result = _strict_json(out.out)  # stdout is the JSON alone
    assert [r["name"] for r in result["variants"]] == ["fp32", "integer_only"]
    assert "### Targets (integer_only)" in out.err  # the report went to stderr
