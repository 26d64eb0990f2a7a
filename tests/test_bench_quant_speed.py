"""benchmarks.quant_speed's block-scaled rows: one per format and operation against torchao,
"skipped" with the reason without it, strict JSON, and --quick's small size."""

from __future__ import annotations

import json

from benchmarks import quant_speed


def _strict(text: str) -> object:
    def refuse(name: str) -> None:
        raise AssertionError(f"non-strict JSON constant {name}")
    return json.loads(text, parse_constant=refuse)


def test_block_rows_against_torchao(capsys) -> None:
    assert quant_speed.main(["--size", "4096", "--repeats", "1", "--json", "-", "--quiet"]) == 0
    rec = _strict(capsys.readouterr().out)
    rows = rec["block_rows"]
    assert [(r["format"], r["operation"]) for r in rows] == [
        (f, op) for f in quant_speed.BLOCK_PEERS for op in ("encode", "decode")]
    skipped = rec["block_skipped"]
    for r in rows:
        assert r["encoding"] == "BlockScaled" and r["peer"] == "torchao" and r["target"] == 1.0
        if skipped:
            assert r["status"] == "skipped"
            continue
        assert r["status"] == "timed" and r["quant_ms"] > 0 and r["torchao_ms"] > 0
        assert r["ratio"] == r["quant_ms"] / r["torchao_ms"]
        assert r["target_met"] == (r["ratio"] <= 1.0)
    assert any("torchao" in note for note in rec["block_notes"])
    assert len(rec["rows"]) == 6 and all("torch_ms" in r for r in rec["rows"])


def test_block_rows_skipped_without_torchao(monkeypatch, capsys) -> None:
    why = "torchao not importable (ImportError: no module named torchao)"
    monkeypatch.setattr(quant_speed, "_torchao_peers", lambda: (None, None, None, why))
    assert quant_speed.main(["--size", "4096", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert f"against torchao: skipped, {why}" in out
    block = out[out.index("BlockScaled ("):]
    assert block.count("skipped") == 1 + 2 * len(quant_speed.BLOCK_PEERS)
    assert "MISSED" not in block and "MET" not in block


def test_quick_is_small(capsys) -> None:
    assert quant_speed.main(["--quick", "--json", "-", "--quiet"]) == 0
    rec = _strict(capsys.readouterr().out)
    assert rec["values"] == quant_speed.QUICK_SIZE and rec["repeats"] == 1
