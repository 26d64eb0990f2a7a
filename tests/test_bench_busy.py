"""benchmarks.busy: one bounded co-tenant, always stopped."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from benchmarks.busy import busy_cotenant


def _cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def test_the_cotenant_spins_and_is_stopped() -> None:
    with busy_cotenant(max_seconds=30, settle_s=0.2) as proc:
        assert proc.poll() is None
        if Path("/proc").is_dir():
            t0 = _cpu_ticks(proc.pid)
            time.sleep(0.5)
            assert _cpu_ticks(proc.pid) > t0  # it burns CPU
    assert proc.poll() is not None


@pytest.mark.parametrize("exc", [RuntimeError, KeyboardInterrupt])
def test_the_cotenant_is_stopped_on_errors(exc: type) -> None:
    with pytest.raises(exc):
        with busy_cotenant(max_seconds=30, settle_s=0.0) as proc:
            raise exc()
    assert proc.poll() is not None


def test_the_cotenant_ends_by_itself() -> None:
    with busy_cotenant(max_seconds=0.3, settle_s=0.0) as proc:
        assert proc.wait(timeout=20) == 0  # its own time bound, not our stop


def test_bad_bound() -> None:
    with pytest.raises(ValueError):
        with busy_cotenant(max_seconds=0):
            pass
