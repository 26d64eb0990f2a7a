"""The machine's limit for the int8 head, measured in the same run as the benchmark.

Two microbenchmarks bound how fast any implementation of ``uint8 (N, K) x int8 (K, M)`` can
be on this machine, with its threads and its current load:

* **stream**: the time to read the N x K uint8 input once. Measured two ways and the faster
  kept: numpy summing the bytes as 64-bit words on one thread (the sum wraps and its value is
  meaningless; only the read counts; up to 7 trailing bytes are left out), and torch copying
  the tensor (``dst.copy_(x)``, on torch's threads: a read and a write).
* **multiply-add rate**: int8 multiply-adds per second of an exact int8 GEMM, torch's
  ``torch._int_mm`` (oneDNN; int8 x int8 -> int32) on a compute-bound 1024 x 1024 x 1024
  problem of random full-range operands; its result is checked against the exact product
  (float64 matmul of the first 64 rows: every partial sum is an integer below 2**53). This is
  a rate a real library kernel reaches, not the instruction set's peak.

Both take the fastest of their repeats (a limit is what the machine can do; on a shared machine
the median also measures the other tenants). The floor is ``max(stream, N K M / rate)``: no
implementation that reads the input once and does the N K M multiply-adds at that rate can be
faster. `ComputeFloor.fraction` is how close a measured time comes to it (1.0 = at the floor).
Above 1.0 the kernel measured beat the library GEMM's rate (oneDNN's int8 x int8 path needs a
compensation that uint8 x int8 kernels do not): the rate is then not this machine's peak.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from benchmarks._timing import best_seconds

__all__ = ["ComputeFloor", "measure_floor", "stream_seconds", "int8_mac_rate", "MAC_SHAPE"]

MAC_SHAPE = (1024, 1024, 1024)  # (M, K, N) of the multiply-add microbenchmark


@dataclass(frozen=True)
class ComputeFloor:
    """The limit for one problem ``(rows, inner, classes)`` on this machine, this run.

    Attributes
    ----------
    rows, inner, classes : int
        N, K and M of ``uint8 (N, K) @ int8 (K, M)``.
    stream_seconds : float
        Seconds to read the N K input bytes once (the faster method, see the module doc).
    stream_method : str
    mac_per_s : float or None
        Exact int8 multiply-adds per second; None where no int8 GEMM could be timed.
    mac_method : str
        What was timed, or why nothing was.
    mac_exact : bool or None
        Whether that GEMM's checked rows equalled the exact product.
    """

    rows: int
    inner: int
    classes: int
    stream_seconds: float
    stream_method: str
    mac_per_s: float | None
    mac_method: str
    mac_exact: bool | None

    @property
    def macs(self) -> int:
        """N K M: the multiply-adds of the problem."""
        return self.rows * self.inner * self.classes

    @property
    def compute_seconds(self) -> float | None:
        """``macs / mac_per_s`` (None without a rate)."""
        return None if not self.mac_per_s else self.macs / self.mac_per_s

    @property
    def floor_seconds(self) -> float:
        """``max(stream_seconds, compute_seconds)``."""
        return max(self.stream_seconds, self.compute_seconds or 0.0)

    def fraction(self, seconds: float) -> float:
        """``floor_seconds / seconds``: the share of the floor a run of ``seconds`` reaches."""
        if not seconds > 0:
            raise ValueError(f"seconds must be positive, got {seconds}")
        return self.floor_seconds / seconds

    def as_record(self) -> dict:
        """The fields and derived figures, for JSON."""
        return {"rows": self.rows, "inner": self.inner, "classes": self.classes,
                "input_bytes": self.rows * self.inner, "macs": self.macs,
                "stream_seconds": self.stream_seconds, "stream_method": self.stream_method,
                "mac_per_s": self.mac_per_s, "mac_method": self.mac_method,
                "mac_exact": self.mac_exact, "compute_seconds": self.compute_seconds,
                "floor_seconds": self.floor_seconds}


def stream_seconds(x: torch.Tensor, *, repeats: int = 20) -> tuple[float, str]:
    """(seconds, method): the faster of the two reads of ``x``'s bytes, best of ``repeats``."""
    if x.dtype != torch.uint8 or x.numel() < 8:
        raise ValueError(f"need a uint8 tensor of at least 8 elements, got {x.dtype} "
                         f"{tuple(x.shape)}")
    flat = x.contiguous().reshape(-1)
    words = flat[: flat.numel() // 8 * 8].numpy().view(np.uint64)
    dst = torch.empty_like(flat)
    t_np = best_seconds(lambda: words.sum(), repeats=repeats)
    t_copy = best_seconds(lambda: dst.copy_(flat), repeats=repeats)
    if t_np <= t_copy:
        return t_np, "numpy sum of the bytes as uint64 words (1 thread)"
    return t_copy, f"torch copy_ ({torch.get_num_threads()} threads)"


def int8_mac_rate(*, repeats: int = 5) -> tuple[float | None, str, bool | None]:
    """(multiply-adds per second, method, exact?) of ``torch._int_mm`` on `MAC_SHAPE`, from
    the best of ``repeats`` calls."""
    m, k, n = MAC_SHAPE
    g = torch.Generator().manual_seed(0)
    a = torch.randint(-128, 128, (m, k), generator=g, dtype=torch.int8)
    b = torch.randint(-128, 128, (k, n), generator=g, dtype=torch.int8)
    int_mm = getattr(torch, "_int_mm", None)
    if int_mm is None:
        return None, f"torch {torch.__version__} has no _int_mm", None
    try:
        got = int_mm(a, b)
    except RuntimeError as exc:
        return None, f"torch._int_mm failed here ({str(exc).splitlines()[0]})", None
    exact = bool(torch.equal(got[:64].to(torch.float64), a[:64].double() @ b.double()))
    seconds = best_seconds(lambda: int_mm(a, b), repeats=repeats)
    return (m * k * n / seconds,
            f"torch._int_mm int8 x int8 -> int32, {m}x{k}x{n}, {torch.get_num_threads()} "
            f"threads", exact)


def measure_floor(x: torch.Tensor, classes: int, *, quick: bool = False) -> ComputeFloor:
    """The `ComputeFloor` of ``x`` (uint8 (N, K)) times int8 (K, ``classes``), measured now.

    Parameters
    ----------
    x : torch.Tensor
        The uint8 input as the benchmark holds it.
    classes : int
        M, the number of outputs per row.
    quick : bool
        Fewer repeats (a smoke run).
    """
    if x.dim() != 2:
        raise ValueError(f"x must be (N, K), got shape {tuple(x.shape)}")
    t_stream, how = stream_seconds(x, repeats=5 if quick else 30)
    rate, mac_how, exact = int8_mac_rate(repeats=3 if quick else 10)
    return ComputeFloor(int(x.shape[0]), int(x.shape[1]), int(classes), t_stream, how, rate,
                        mac_how, exact)
