"""The smaller benchmark CLIs: bad input is an ``error:`` and exit 2 before any work; small runs
write strict JSON (``-`` for stdout) and put progress on stderr."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from benchmarks import matmul_formats, numfmt_speed, quant_speed, train_speed

DATA = Path("/usr/share/datasets/fashion-mnist")


def _strict(text: str) -> object:
    def refuse(name: str) -> None:
        raise AssertionError(f"non-strict JSON constant {name}")
    return json.loads(text, parse_constant=refuse)


@pytest.mark.parametrize("main, argv", [
    (numfmt_speed.main, ["--elements", "0"]),
    (numfmt_speed.main, ["--repeats", "-1"]),
    (quant_speed.main, ["--size", "0"]),
    (quant_speed.main, ["--size", "-5"]),
    (matmul_formats.main, ["--device", "cpu", "--m", "0"]),
    (train_speed.main, ["--epochs", "0"]),
    (train_speed.main, ["--lr", "nan"]),
    (train_speed.main, ["--batch-size", "0"]),
])
def test_counts_must_be_positive(main, argv: list, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert "expected a positive" in capsys.readouterr().err


@pytest.mark.parametrize("main, extra", [
    (numfmt_speed.main, []), (quant_speed.main, []),
    (matmul_formats.main, ["--device", "cpu"]), (train_speed.main, []),
])
@pytest.mark.parametrize("where", ["{dir}", "{dir}/missing/out.json"])
def test_json_path_is_checked_before_work(main, extra: list, where: str, tmp_path: Path,
                                          capsys) -> None:
    assert main(extra + ["--json", where.format(dir=tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "error: --json:" in err and "Traceback" not in err
    assert not (tmp_path / "missing").exists()


def test_matmul_formats_device_errors(capsys) -> None:
    assert matmul_formats.main(["--device", "banana"]) == 2
    assert "not a torch device" in capsys.readouterr().err


def test_train_speed_corrupt_data_is_a_clean_error(tmp_path: Path, capsys) -> None:
    for f in DATA.glob("*.gz"):
        shutil.copy(f, tmp_path / f.name)
    bad = tmp_path / "train-images-idx3-ubyte.gz"
    bad.write_bytes(bad.read_bytes()[:5000])  # truncated copy
    assert train_speed.main(["--data-dir", str(tmp_path), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("train_speed: error:") and "truncated" in err
    assert "Traceback" not in err
    assert train_speed.main(["--data-dir", str(tmp_path / "nowhere")]) == 2
    assert "not a directory" in capsys.readouterr().err


def test_small_runs_write_strict_json_to_stdout(capsys) -> None:
    assert numfmt_speed.main(["--elements", "4096", "--repeats", "1", "--json", "-",
                              "--quiet"]) == 0
    out = capsys.readouterr()
    rec = _strict(out.out)  # stdout holds the JSON alone; the report went to stderr
    assert [r["format"] for r in rec["round_to"]] == ["bf16", "fp16", "tf32"]
    assert all(r["ours_s"] > 0 and r["native_s"] > 0 for r in rec["round_to"])
    assert "MET" in out.err or "MISSED" in out.err
    assert quant_speed.main(["--size", "5000", "--repeats", "1", "--json", "-",
                             "--quiet"]) == 0
    rec = _strict(capsys.readouterr().out)
    assert rec["values"] == 4096 and len(rec["rows"]) == 6  # 5000 -> one row of 4096
    assert matmul_formats.main(["--device", "cpu", "--m", "8", "--k", "16", "--n", "4",
                                "--json", "-", "--quiet"]) == 0
    rows = _strict(capsys.readouterr().out)
    assert [r["format"] for r in rows] == ["tf32", "bf16", "fp16"]


def test_numfmt_speed_busy_mode(capsys) -> None:
    assert numfmt_speed.main(["--elements", "4096", "--repeats", "1", "--busy",
                              "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "with one busy co-tenant process" in out
    assert "round_to within 2x of the native cast for every format" in out
