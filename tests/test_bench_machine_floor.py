"""benchmarks.machine_floor: the floor's arithmetic, and its microbenchmarks run here."""

from __future__ import annotations

import pytest
import torch

from benchmarks import machine_floor as mf


def test_floor_is_the_larger_bound() -> None:
    # 10000 x 784 x 10 = 78.4 M multiply-adds at 39.2 G/s: 2 ms; stream 1 ms -> floor 2 ms.
    f = mf.ComputeFloor(10000, 784, 10, 1e-3, "s", 39.2e9, "m", True)
    assert f.macs == 78_400_000
    assert f.compute_seconds == pytest.approx(2e-3)
    assert f.floor_seconds == pytest.approx(2e-3)
    assert f.fraction(8e-3) == pytest.approx(0.25)
    assert mf.ComputeFloor(10, 8, 2, 5e-3, "s", None, "none", None).floor_seconds == 5e-3
    with pytest.raises(ValueError):
        f.fraction(0.0)
    rec = f.as_record()
    assert rec["input_bytes"] == 7_840_000 and rec["floor_seconds"] == f.floor_seconds


def test_stream_and_mac_rate_are_measured() -> None:
    x = torch.randint(0, 256, (100, 784), dtype=torch.uint8)
    seconds, how = mf.stream_seconds(x, repeats=2)
    assert seconds > 0 and ("numpy" in how or "copy_" in how)
    with pytest.raises(ValueError, match="uint8"):
        mf.stream_seconds(x.float())
    rate, how, exact = mf.int8_mac_rate(repeats=1)
    if rate is not None:  # torch has _int_mm here: an exact int8 GEMM, checked
        assert rate > 1e6 and exact is True and "_int_mm" in how
    floor = mf.measure_floor(x, 10, quick=True)
    assert floor.rows == 100 and floor.floor_seconds >= floor.stream_seconds > 0
