"""Torch settings a run needs for its duration, and the dynamic loss scale.

`torch_threads` and `matmul_precision` set one torch setting and restore it afterwards, also
when the body raises. The trainer and the evaluation run on one thread by default: their
operations are short passes over small tensors, where more OpenMP threads gain little and,
when another process holds a core, spinning workers make every short op wait.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch

__all__ = ["DynamicLossScaler", "torch_threads", "matmul_precision", "resolve_device",
           "check_num_threads"]


class DynamicLossScaler:
    """Loss scale that halves on overflow (not below 1) and doubles after ``interval`` clean
    steps, as torch.amp's GradScaler does with its defaults (init 2**16, interval 2000)."""

    def __init__(self, init: float = 2.0**16, interval: int = 2000):
        self.scale, self.interval, self.clean = init, interval, 0

    def update(self, finite: bool) -> None:
        """Record one step whose gradients were (``finite``) or were not all finite."""
        if finite:
            self.clean += 1
            if self.clean >= self.interval:
                self.scale, self.clean = self.scale * 2.0, 0
        else:
            self.scale, self.clean = max(self.scale / 2.0, 1.0), 0


def check_num_threads(num_threads: int | None) -> None:
    """Raise ValueError unless ``num_threads`` is None or a positive int."""
    if num_threads is not None and (isinstance(num_threads, bool) or not isinstance(
            num_threads, int) or num_threads < 1):
        raise ValueError(f"num_threads must be None or a positive int, not {num_threads!r}")


@contextlib.contextmanager
def torch_threads(num_threads: int | None) -> Iterator[None]:
    """Run the body with ``torch.set_num_threads(num_threads)`` (None: unchanged)."""
    check_num_threads(num_threads)
    old = torch.get_num_threads()
    try:
        if num_threads is not None:
            torch.set_num_threads(num_threads)
        yield
    finally:
        torch.set_num_threads(old)


@contextlib.contextmanager
def matmul_precision(precision: str) -> Iterator[None]:
    """Run the body with ``torch.set_float32_matmul_precision(precision)``."""
    old = torch.get_float32_matmul_precision()
    try:
        torch.set_float32_matmul_precision(precision)
        yield
    finally:
        torch.set_float32_matmul_precision(old)


def resolve_device(device: str) -> torch.device:
    """``torch.device(device)``; RuntimeError for CUDA where torch has none."""
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} requested but torch.cuda.is_available() is False "
                           "(no GPU or no CUDA build); use --device cpu")
    return dev
