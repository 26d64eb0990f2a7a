"""models.cli: every bad argument is one ``error:`` line and exit 2, before any work.

"Before any work" is checked two ways: ``--data-dir`` names an empty directory (reading the
data would fail with a dataset error, so the argument error must come first) and nothing is
created under ``--out``. The runs that do work use the real data (marked realdata).
"""

from __future__ import annotations

import json
import os

import pytest

from models.cli import main


@pytest.fixture()
def empty_dir(tmp_path):
    d = tmp_path / "no-data"
    d.mkdir()
    return d


def run(capsys, *argv):
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def expect_usage_error(capsys, tmp_path, empty_dir, argv, match):
    out_dir = tmp_path / "out"
    rc, out, err = run(capsys, *argv, "--data-dir", str(empty_dir), "--out", str(out_dir))
    assert rc == 2, (argv, err)
    assert "error:" in err and match in err, err
    assert "Traceback" not in err and out == ""
    assert not out_dir.exists()  # nothing created, nothing computed
    assert "Fashion-MNIST" not in err  # the data was never looked at


@pytest.mark.parametrize("argv, match", [
    (["evaluate", "--formats", "fp16,bogus"], "unknown number format 'bogus'"),
    (["evaluate", "--formats", "fp16,,bf16"], "empty name"),
    (["evaluate", "--formats", "int8"], "integer format"),
    (["evaluate", "--formats", "mxfp4_e2m1,mxfp5_w_x"], "unknown number format"),
    (["sweep-lr", "--rates", "0,-1"], "positive finite number, not '0'"),
    (["sweep-lr", "--rates", "0.1,-1"], "not '-1'"),
    (["sweep-lr", "--rates", "nan"], "not 'nan'"),
    (["sweep-lr", "--rates", "0.1,inf"], "not 'inf'"),
    (["sweep-epochs", "--weight-decay", "-5"], "non-negative finite number"),
    (["sweep-epochs", "--epochs", "0"], "--epochs: expected a positive integer, not '0'"),
    (["sweep-epochs", "--lr", "0"], "--lr: expected a positive finite number, not '0'"),
    (["sweep-epochs", "--batch-size", "0"], "--batch-size: expected a positive integer"),
    (["train", "--patience", "0"], "--patience"),
    (["evaluate", "--device", "banana"], "unknown device 'banana'"),
    (["train", "--device", "mps"], "cpu or cuda"),
    (["train", "--recipes", "fp16,bogus"], "unknown recipe(s) bogus"),
    (["train", "--format", "fp8_e4m3fn"], "cannot train in fp8_e4m3fn"),
    (["train", "--loss-scale", "3"], "power of two"),
    (["train", "--recipes", "all", "--save", "m.pt"], "--recipes trains several"),
])
def test_bad_values_are_one_error_line_before_any_work(capsys, tmp_path, empty_dir, argv, match):
    expect_usage_error(capsys, tmp_path, empty_dir, argv, match)


def test_bad_paths_are_refused_before_any_work(capsys, tmp_path, empty_dir):
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    cases = [
        (["evaluate", "--json", str(tmp_path)], "is a directory, not a file"),
        (["evaluate", "--json", str(tmp_path / "nowhere" / "r.json")], "does not exist"),
        (["evaluate", "--json", str(a_file / "r.json")], "is not a directory"),
        (["evaluate", "--checkpoint", str(tmp_path)], "is a directory, not a checkpoint"),
        (["evaluate", "--checkpoint", str(tmp_path / "nowhere" / "c.pt")], "does not exist"),
        (["train", "--save", str(a_file / "m.pt")], "is not a directory"),
        (["train", "--save", str(tmp_path)], "is a directory"),
    ]
    for argv, match in cases:
        expect_usage_error(capsys, tmp_path, empty_dir, argv, match)
    for argv in (["evaluate", "--out", str(a_file)], ["evaluate", "--out", str(a_file / "x")]):
        rc, _, err = run(capsys, *argv, "--data-dir", str(empty_dir))
        assert rc == 2 and "error: --out" in err, err
    assert not (tmp_path / "nowhere").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_unwritable_paths_are_refused(capsys, tmp_path, empty_dir):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        expect_usage_error(capsys, tmp_path, empty_dir, ["evaluate", "--json",
                                                         str(ro / "r.json")], "not writable")
        rc, _, err = run(capsys, "evaluate", "--out", str(ro / "x"), "--data-dir",
                         str(empty_dir))
        assert rc == 2 and "not writable" in err
    finally:
        ro.chmod(0o755)


def test_data_problems_are_one_error_line(capsys, tmp_path, empty_dir):
    rc, out, err = run(capsys, "sweep-lr", "--data-dir", str(empty_dir), "--out",
                       str(tmp_path / "o"), "--epochs", "1")
    assert rc == 2 and err.startswith("error: ") and "Fashion-MNIST" in err
    assert "Traceback" not in err
    rc, _, err = run(capsys, "sweep-lr", "--data-dir", str(tmp_path / "nowhere"))
    assert rc == 2 and "is not a directory" in err


def test_a_corrupt_copy_of_the_data_is_one_error_line(capsys, tmp_path):
    from models.data import DEBIAN_DIR, FILES

    if not DEBIAN_DIR.is_dir():
        pytest.skip("needs the Debian Fashion-MNIST files to copy")
    d = tmp_path / "copy"
    d.mkdir()
    for stem in FILES.values():
        src = DEBIAN_DIR / (stem + ".gz")
        (d / src.name).write_bytes(src.read_bytes())
    victim = d / "train-images-idx3-ubyte.gz"
    victim.write_bytes(victim.read_bytes()[:50000])
    rc, out, err = run(capsys, "train", "--data-dir", str(d), "--out", str(tmp_path / "o"),
                       "--epochs", "1", "--quiet")
    assert rc == 2 and err.startswith("error: ") and "truncated" in err and str(victim) in err
    assert "Traceback" not in err and out == ""


@pytest.mark.realdata
def test_json_to_stdout_is_pure_json_and_quiet_is_silent(capsys, tmp_path):
    argv = ["evaluate", "--epochs", "1", "--formats", "fp16, Scaled_Int8_Per_Tensor",
            "--checkpoint", str(tmp_path / "ck.pt"), "--out", str(tmp_path / "out")]
    rc, out, err = run(capsys, *argv, "--json", "-", "--quiet")
    assert rc == 0
    records = json.loads(out)  # stdout holds the JSON alone
    assert [r["format"] for r in records] == ["fp16", "scaled_int8_per_tensor"]
    assert "| format" in err and "loss (logits scored in fp64)" in err  # the report moved
    assert "evaluating under" not in err and "loaded" not in err  # --quiet: no progress
    rc, out, err = run(capsys, *argv)
    assert rc == 0 and "| format" in out
    assert "evaluating under fp16" in err and "evaluating under" not in out  # progress: stderr
