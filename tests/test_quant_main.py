"""python -m quant: the table, the JSON records and the plot files."""

import json
import math

import pytest
import torch

from quant.__main__ import main
from quant.report import DISTRIBUTIONS, ENCODINGS, compare, op_exactness, sample, encode


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    d = tmp_path_factory.mktemp("quant_main")
    threads = torch.get_num_threads()
    try:
        code = main(["--json", str(d / "r.json"), "--plot", str(d / "err.png")])
    finally:
        torch.set_num_threads(threads)
    return code, d


def test_json_records(run, capsys):
    code, d = run
    assert code == 0
    rows = json.loads((d / "r.json").read_text())
    assert {(r["encoding"], r["distribution"]) for r in rows} == \
        {(e, dist) for e in ENCODINGS for dist in DISTRIBUTIONS}
    keys = {"encoding", "distribution", "dynamic_range_db", "max_rel_error", "rms_rel_error",
            "sqnr_db"}
    for r in rows:
        assert set(r) == keys
        assert all(isinstance(r[k], float) and math.isfinite(r[k]) for k in keys - {
            "encoding", "distribution"})
    by = {(r["encoding"], r["distribution"]): r for r in rows}
    assert by[("log_int8", "gaussian")]["dynamic_range_db"] == pytest.approx(94.82, abs=0.01)
    assert by[("int8", "uniform")]["dynamic_range_db"] == pytest.approx(20 * math.log10(128))
    # per-channel scales stretch the range where channels differ by decades
    assert by[("scaled_int8_per_channel", "gaussian_channel_spread")]["sqnr_db"] > \
        by[("scaled_int8_per_tensor", "gaussian_channel_spread")]["sqnr_db"] + 5


def test_plot_files(run):
    _, d = run
    for suffix in (".png", ".svg"):
        assert (d / ("err" + suffix)).stat().st_size > 1000


def test_op_classification_is_backed_by_numbers():
    x, y = sample("gaussian", (4, 64), seed=1), sample("gaussian", (4, 64), seed=2)
    s = encode("scaled_int8_per_tensor", x)
    t = encode("scaled_int8_per_tensor", y, like=s)
    assert op_exactness(s, t, "+").exact
    assert not op_exactness(s, t, "/").supported
    lg = encode("log_int8", x)
    lh = encode("log_int8", y, like=lg)
    add = op_exactness(lg, lh, "+")
    assert not add.exact and 0 < add.max_rel_error <= lg.rel_error_bound * (1 + 1e-12)
    assert op_exactness(lg, lh, "*").exact and op_exactness(lg, lh, "/").exact
    recs = compare(("uniform",), ("int8",), shape=(2, 16))
    assert len(recs) == 1 and len(recs[0].ops) == 4


@pytest.mark.parametrize("args, needle", [
    (["--json", "/nonexistent/dir/q.json"], "does not exist"),
    (["--json", "."], "is a directory"),
    (["--plot", "."], "is a directory"),
    (["--plot", "out/q.pdf"], "PNG and SVG"),
])
def test_bad_output_paths_fail_before_any_work(args, needle, capsys, monkeypatch):
    import quant.__main__ as qm

    def no_work(*a, **k):
        raise AssertionError("the measurement ran before the output path was checked")
    monkeypatch.setattr(qm, "compare", no_work)
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("python -m quant: error:") and needle in err[-1]


def test_unwritable_json_directory(tmp_path, capsys, monkeypatch):
    import os
    import quant.__main__ as qm
    if os.geteuid() == 0:
        # root writes anywhere: make the check itself see an unwritable directory
        monkeypatch.setattr(os, "access", lambda p, mode: False)
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    monkeypatch.setattr(qm, "compare", lambda *a, **k: pytest.fail("work started"))
    assert main(["--json", str(locked / "q.json")]) == 2
    assert "not writable" in capsys.readouterr().err


def test_json_to_stdout_is_strict_and_quiet_silences_progress(capsys, monkeypatch):
    import quant.__main__ as qm
    real = qm.compare
    monkeypatch.setattr(qm, "compare", lambda d, e: real(("uniform",), e, shape=(2, 64)))
    threads = torch.get_num_threads()
    try:
        assert main(["--json", "-", "--quiet"]) == 0
    finally:
        torch.set_num_threads(threads)
    out, err = capsys.readouterr()
    rows = json.loads(out)                               # stdout holds the JSON alone
    assert {r["distribution"] for r in rows} == {"uniform"}
    assert "NaN" not in out and "Infinity" not in out
    assert "measuring" not in err and "INT8 holds 256 codes" in err   # table on stderr
