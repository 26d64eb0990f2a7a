"""One bounded busy co-tenant: a CPU spinner process, for timing on a machine with a core taken.

`busy_cotenant` starts one child Python process that spins on one core and is always stopped
when the ``with`` block ends (normally, on an error or on KeyboardInterrupt). The child also
stops by itself after ``max_seconds`` or as soon as its parent is gone, so that it can never
outlive the benchmark that started it, even one killed by a signal.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from typing import Iterator

__all__ = ["SPINNER", "busy_cotenant", "stop"]

# The child: spin until the deadline, checking every ~10 ms that the parent still exists.
SPINNER = """
import os, sys, time
deadline = time.monotonic() + float(sys.argv[1])
parent = int(sys.argv[2])
x = 0
while time.monotonic() < deadline and os.getppid() == parent:
    for _ in range(20000):
        x += 1
"""


def stop(proc: subprocess.Popen, timeout: float = 5.0) -> None:
    """Terminate ``proc`` (SIGTERM, then SIGKILL after ``timeout`` s) and reap it."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def busy_cotenant(max_seconds: float = 900.0, settle_s: float = 0.3) -> Iterator[subprocess.Popen]:
    """Run one CPU-spinning child process for the duration of the ``with`` block.

    Parameters
    ----------
    max_seconds : float
        The child exits by itself after this long (> 0) even if never stopped.
    settle_s : float
        Seconds to wait after starting it, so that it is spinning when timing begins.

    Yields
    ------
    subprocess.Popen
        The child (stopped and reaped on exit from the block, whatever the exit).

    Raises
    ------
    ValueError
        For ``max_seconds <= 0``.
    """
    if not max_seconds > 0:
        raise ValueError(f"max_seconds must be positive, got {max_seconds}")
    proc = subprocess.Popen([sys.executable, "-I", "-S", "-c", SPINNER, repr(float(max_seconds)),
                             str(os.getpid())], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(settle_s)
        yield proc
    finally:
        stop(proc)
