"""numfmt.cli: the checks and writers every command line uses (expected values from json/stdlib)."""

import argparse
import json
import math

import numpy as np
import pytest

from numfmt import cli


def test_json_is_strict_nan_and_inf_become_null(tmp_path):
    out = cli.write_json(tmp_path / "r.json", {"a": math.nan, "b": [math.inf, -math.inf, 1.5],
                                               "c": np.float32(2.0), "d": (1, 2)})
    text = out.read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"a": None, "b": [None, None, 1.5], "c": 2.0, "d": [1, 2]}


def test_json_dash_writes_stdout(capsys):
    cli.write_json("-", [math.nan])
    assert json.loads(capsys.readouterr().out) == [None]


@pytest.mark.parametrize("bad, words", [
    (".", "is a directory"),
    ("/nonexistent-dir-xyz/q.json", "does not exist"),
    ("/etc/hostname/q.json", "is not a directory"),
])
def test_output_file_refused_before_work(bad, words):
    with pytest.raises(cli.CliError, match=words):
        cli.check_output_file(bad, "--json")


def test_output_file_accepts_new_file_and_stdout(tmp_path):
    assert cli.check_output_file(tmp_path / "new.json") == tmp_path / "new.json"
    assert str(cli.check_output_file("-")) == "-"
    with pytest.raises(cli.CliError):
        cli.check_output_file("-", allow_stdout=False)
    assert not (tmp_path / "new.json").exists()          # checking creates nothing


def test_output_dir_under_a_file_is_refused_and_nothing_is_created(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(cli.CliError, match="is a file"):
        cli.check_output_dir(f / "sub" / "deeper")
    assert not (f.parent / "sub").exists()
    made = cli.check_output_dir(tmp_path / "a" / "b")
    assert made.is_dir()


@pytest.mark.parametrize("path, expected", [("x.png", ("x.png", "x.svg")), ("x", ("x.png", "x.svg")),
                                            ("d/x.SVG", ("d/x.png", "d/x.svg"))])
def test_figure_paths(path, expected):
    assert tuple(str(p) for p in cli.figure_paths(path)) == expected


@pytest.mark.parametrize("bad", [".", "x.pdf", "/nonexistent-dir-xyz/f.png"])
def test_figure_path_refused(bad):
    with pytest.raises(cli.CliError):
        cli.check_figure_path(bad)


def test_markdown_table_shape():
    t = cli.markdown_table(["a", "b"], [[1, 2.5], ["x", None]], align="lr")
    assert t.splitlines() == ["| a | b |", "|---|---:|", "| 1 | 2.5 |", "| x | None |"]


@pytest.mark.parametrize("parse, good, bad", [
    (cli.positive_int, ("1", "50"), ("0", "-5", "1.5", "x")),
    (cli.positive_float, ("0.1", "3"), ("0", "-1", "nan", "inf")),
    (cli.nonnegative_float, ("0", "1e-3"), ("-5", "nan")),
])
def test_argument_types(parse, good, bad):
    for g in good:
        assert parse(g) == type(parse(g))(g)
    for b in bad:
        with pytest.raises(argparse.ArgumentTypeError):
            parse(b)


def test_run_cli_turns_cli_error_into_exit_2(capsys):
    def main(argv):
        raise cli.CliError("bad thing")
    assert cli.run_cli(main, [], prog="tool") == 2
    assert capsys.readouterr().err.strip() == "tool: error: bad thing"


def test_progress_goes_to_stderr_and_quiet_silences(capsys):
    cli.Progress()("working")
    cli.Progress(quiet=True)("hidden")
    cap = capsys.readouterr()
    assert cap.out == "" and cap.err == "working\n"
