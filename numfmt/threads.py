"""Elementwise torch work that stays fast when another process holds a core.

Every torch op on a large CPU tensor is one OpenMP parallel region whose work is split evenly
across torch's threads, and the region ends only when the slowest thread ends. When another
process holds one of the cores, the thread on that core gets a fraction of it, so every region
waits for it; a pipeline of many ops (or of many blocks) pays that wait every time, which is how
an emulated cast ended up at 18.9x torch's native one with one busy core.

`run_chunks` avoids the wait instead of the ops: the tensor is cut into chunks below torch's
parallel grain (so each op on a chunk runs inline in the calling thread, with no OpenMP region),
and a few Python threads (torch releases the GIL inside its ops) take chunks from a shared
counter until none are left. A thread on a busy core simply takes fewer chunks. Chunks also stay
in the L2 cache between the ops of one pipeline. Models and benchmarks may use it for their own
elementwise pipelines.
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
from types import ModuleType
from typing import Callable

__all__ = ["INLINE_CHUNK", "import_extension", "run_chunks", "uses_torch_openmp", "worker_count"]

# torch runs an elementwise op inline (no OpenMP region) below at::internal::GRAIN_SIZE = 32768
# elements; a chunk just under it keeps that true with room for alignment (a multiple of 16).
INLINE_CHUNK = 32768 - 16


def uses_torch_openmp(library: str | None) -> bool:
    """Whether the OpenMP runtime at path ``library`` is the one the loaded torch ships.

    A compiled loop that reports its libgomp path (``openmp_library()`` in each of this
    project's extensions) can run on torch's own OpenMP team only then; a second runtime's
    threads would compete with torch's spinning workers.

    Parameters
    ----------
    library : str or None
        The shared library the extension's OpenMP symbols resolve to (None: built without).

    Returns
    -------
    bool
        False when ``library`` is empty or torch is not imported.
    """
    torch = sys.modules.get("torch")
    if not library or torch is None:
        return False
    root = os.path.dirname(os.path.dirname(os.path.realpath(torch.__file__)))
    real = os.path.realpath(library)
    return any(real.startswith(os.path.join(root, d) + os.sep) for d in ("torch", "torch.libs"))


def import_extension(name: str) -> ModuleType | None:
    """Import this project's compiled module ``name`` after torch; None when it is not built.

    Every extension here links ``libgomp.so.1``. Loaded before torch, one pulls the system's
    libgomp into the process, torch then loads the copy it ships, and the extension's loops
    can never share torch's OpenMP team (`uses_torch_openmp` is False, so they fall back to
    one thread: the int8 head ran at half speed under a CLI that imported `numfmt` first).
    Importing torch first makes the dynamic linker resolve the extension to torch's runtime.

    Parameters
    ----------
    name : str
        The absolute module name, e.g. ``"numfmt._native"``.

    Returns
    -------
    module or None
        None when the module cannot be imported (no C compiler at install time).
    """
    import torch  # noqa: F401  (loaded for its OpenMP runtime, see above)

    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def worker_count() -> int:
    """The number of threads `run_chunks` uses by default: torch's intra-op thread count."""
    import torch

    return max(1, int(torch.get_num_threads()))


def run_chunks(job: Callable[[int, int], None], total: int, *, chunk: int = INLINE_CHUNK,
               workers: int | None = None) -> None:
    """Call ``job(lo, hi)`` for consecutive ranges covering ``range(total)``, on a few threads.

    Parameters
    ----------
    job : callable
        Does the work for elements ``lo:hi`` (writing into preallocated outputs). Chunks are
        taken in increasing order by whichever thread is free, so ``job`` must not depend on
        the order in which chunks finish.
    total : int
        The number of elements (>= 0).
    chunk : int
        Elements per chunk (default `INLINE_CHUNK`: torch runs each op on it inline).
    workers : int, optional
        Threads to use (the caller's included); default `worker_count()`.

    Raises
    ------
    Exception
        The exception of the lowest-numbered chunk that raised, after every thread stopped;
        the remaining chunks are not started once one has raised.

    Notes
    -----
    With one worker, or at most one chunk, everything runs in the calling thread.
    """
    if chunk < 1:
        raise ValueError(f"chunk must be a positive int, not {chunk!r}")
    n_workers = worker_count() if workers is None else int(workers)
    if total <= chunk or n_workers <= 1:
        for lo in range(0, total, chunk):
            job(lo, min(lo + chunk, total))
        return
    lock = threading.Lock()
    state = {"next": 0, "errors": []}

    def work() -> None:
        while True:
            with lock:
                lo = state["next"]
                if lo >= total or state["errors"]:
                    return
                state["next"] = lo + chunk
            try:
                job(lo, min(lo + chunk, total))
            except Exception as exc:  # noqa: BLE001 - re-raised in the caller's thread
                with lock:
                    state["errors"].append((lo, exc))
                return

    helpers = [threading.Thread(target=work, daemon=True) for _ in range(n_workers - 1)]
    for h in helpers:
        h.start()
    work()
    for h in helpers:
        h.join()
    if state["errors"]:
        raise min(state["errors"], key=lambda e: e[0])[1]
