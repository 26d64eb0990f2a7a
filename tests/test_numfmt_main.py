"""`python -m numfmt`: strict JSON to a file or stdout, --quiet, errors before work, audit."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import types

import pytest

import numfmt
from numfmt.__main__ import main
from numfmt.cli import run_cli


def test_json_to_stdout_is_strict_with_null_for_nan(capsys):
    assert run_cli(main, ["--no-audit", "--classes", "300", "--json", "-", "--quiet"]) == 0
    out, err = capsys.readouterr()
    rows = json.loads(out)                       # json.loads accepts NaN: check the text too
    assert "NaN" not in out and err == ""
    by = {r["format"]: r for r in rows}
    assert by["fp4_e2m1fn"]["stable_softmax_prob_zero_spread"] is None
    want = numfmt.softmax_safety("fp16", 300)
    assert by["fp16"]["naive_softmax_max_logit"] == want.naive_max_logit
    assert by["fp16"]["softmax_accumulation"] == "torch"
    assert {"int64", "uint32", "fp8_e8m0fnu", "fp8_e4m3fnuz", "fp8_e5m2fnuz", "fp8_e4m3",
            "fp8_e3m4", "int4", "uint4", "int2", "uint2", "p3109_k8p3se"} <= set(by)
    assert by["fp8_e8m0fnu"]["exp_max_arg"] == numfmt.exp_bounds("e8m0").max_arg == 64.0


def test_json_file_and_table_progress_goes_to_stderr(tmp_path, capsys):
    path = tmp_path / "f.json"
    assert run_cli(main, ["--no-audit", "--json", str(path)]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("| format |") and "computed in" in err and "computed" not in out
    assert json.loads(path.read_text())[0]["format"] == "fp64"
    assert run_cli(main, ["table", "--no-audit", "--quiet", "--accumulation", "sequential"]) == 0
    out, err = capsys.readouterr()
    assert err == "" and "'sequential'" in out


@pytest.mark.parametrize("argv,msg", [
    (["--json", "/nonexistent/dir/x.json"], "does not exist"),
    (["--json", "."], "is a directory"),
    (["audit", "--blocks", "--json", "/nonexistent/dir/x.json"], "does not exist"),
    (["audit"], "--casts"),
    (["audit", "--casts", "--blocks"], "one of --casts and --blocks"),
])
def test_bad_arguments_are_one_error_line_before_any_work(argv, msg, capsys):
    assert run_cli(main, argv, prog="python -m numfmt") == 2
    err = capsys.readouterr().err
    assert err.startswith("python -m numfmt: error:") and msg in err


def test_bad_class_count_is_an_argparse_error():
    with pytest.raises(SystemExit) as e:
        main(["--classes", "0"])
    assert e.value.code == 2


def test_audit_casts_hands_the_rest_to_cast_audit(monkeypatch):
    seen = {}
    fake = types.SimpleNamespace(main=lambda argv: seen.setdefault("argv", argv) and 0)
    monkeypatch.setitem(sys.modules, "numfmt.cast_audit", fake)
    assert main(["audit", "--casts", "--json", "-", "--quiet"]) == 0
    assert seen["argv"] == ["--json", "-", "--quiet"]


def test_audit_blocks_hands_the_rest_to_block_audit(monkeypatch):
    seen = {}
    fake = types.SimpleNamespace(main=lambda argv: seen.setdefault("argv", argv) and 0)
    monkeypatch.setitem(sys.modules, "numfmt.block_audit", fake)
    assert main(["audit", "--blocks", "--quiet"]) == 0
    assert seen["argv"] == ["--quiet"]


def test_module_runs_as_a_program_with_100000_classes():
    r = subprocess.run([sys.executable, "-m", "numfmt", "--no-audit", "--classes", "100000",
                        "--json", "-", "--quiet"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stderr == ""
    rows = json.loads(r.stdout)
    fp16 = next(x for x in rows if x["format"] == "fp16")
    assert fp16["softmax_classes"] == 100000
    assert math.isfinite(fp16["naive_softmax_max_logit"])
