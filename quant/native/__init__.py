"""Optional fused C loops (`quant.native._native`) and the thread split that drives them.

The extension is built by ``pip install`` where a C compiler exists; without it every caller
uses its pure-torch path, which computes the same results (the tests hold both to the same
exact references and to each other). Set ``QUANT_NATIVE=0`` in the environment to force the
torch paths. `available()` says which one runs.
"""

from __future__ import annotations

import functools
import math
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from numfmt.threads import import_extension, uses_torch_openmp

# After torch, so that the loops share its OpenMP team; None: no compiler at install time.
_native = import_extension("quant.native._native")

__all__ = ["IMPLEMENTATIONS", "available", "implementation", "byte_lookup", "describe",
           "log_encode", "scaled_encode_f32", "softmax_head"]

IMPLEMENTATIONS = ("native", "torch")
"""The two implementations of every loop: the compiled one and the torch passes."""

_MIN_CHUNK = 1 << 16                    # below this a thread hand-off costs more than it saves


_SHARED_OPENMP = uses_torch_openmp(_native.openmp_library() if _native is not None else None)


def available() -> bool:
    """Whether the compiled loops are built and not disabled by ``QUANT_NATIVE=0``.

    Returns
    -------
    bool
    """
    return _native is not None and os.environ.get("QUANT_NATIVE", "1") != "0"


def implementation(*tensors: torch.Tensor) -> str:
    """Which loops quant runs for these tensors: "native" or "torch".

    The one place that picks. "native" when the compiled loops are `available` and every
    tensor given is a CPU tensor (the loops read host memory); "torch" otherwise (no
    extension, ``QUANT_NATIVE=0``, or a CUDA / meta tensor). Both compute the same bits.

    Parameters
    ----------
    *tensors : torch.Tensor
        The tensors the loop would read or write.

    Returns
    -------
    str
        "native" or "torch".
    """
    if available() and all(t.device.type == "cpu" for t in tensors):
        return "native"
    return "torch"


def describe() -> str:
    """One line saying which loops quant runs, and on which threads.

    Returns
    -------
    str
    """
    if not available():
        why = "QUANT_NATIVE=0" if _native is not None else "quant.native._native is not built"
        return f"torch passes ({why})"
    return "compiled loops (quant.native._native) on " + \
        ("torch's OpenMP threads" if _SHARED_OPENMP else "Python threads")


def _require() -> None:
    if _native is None:
        raise RuntimeError("quant.native._native is not built (no C compiler at install time?)")


@functools.lru_cache(maxsize=8)
def _pool(workers: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(workers, thread_name_prefix="quant-native")


def _parallel(n: int, run: Callable[[int, int, int], bool]) -> bool:
    """run(i, j, nthreads) over [0, n), on torch.get_num_threads() threads. Where the
    extension shares torch's OpenMP runtime, one call runs on torch's own thread team (whose
    workers may still be spinning from the last torch op: a second team would fight them).
    Otherwise chunks are shared by the caller and pool threads, handed out one at a time, so
    a thread slowed by another process simply takes fewer. Returns the OR of the results."""
    workers = max(1, min(torch.get_num_threads(), n // _MIN_CHUNK))
    if workers == 1 or _SHARED_OPENMP:
        return bool(run(0, n, workers))
    chunk = max(_MIN_CHUNK, (n // (8 * workers) + 63) // 64 * 64)
    starts = iter(range(0, n, chunk))
    lock = threading.Lock()

    def work() -> bool:
        bad = False
        while True:
            with lock:
                i = next(starts, None)
            if i is None:
                return bad
            bad |= bool(run(i, min(n, i + chunk), 1))

    futures = [_pool(workers - 1).submit(work) for _ in range(workers - 1)]
    bad = work()
    results = [f.result() for f in futures]     # wait for every chunk before returning
    return any(results) or bad


def _np(t: torch.Tensor) -> object:
    """A zero-copy numpy view of a CPU tensor (a copy only for a lazily negated view)."""
    return t.detach().resolve_neg().numpy()


def _flat(t: torch.Tensor, what: str) -> None:
    if t.dim() != 1 or not t.is_contiguous() or t.device.type != "cpu":
        raise ValueError(f"{what} must be a flat contiguous CPU tensor")


def log_encode(x: torch.Tensor, out: torch.Tensor, scale: float, rounds: int, lo: float,
               hi: float, k2: int) -> bool:
    """Fill int8 `out` with LogInt8 codes of the flat contiguous float32/float64 tensor `x`.

    Parameters
    ----------
    x, out : torch.Tensor
        Flat contiguous CPU tensors of one length: float32/float64 values, int8 codes.
    scale, rounds, lo, hi, k2
        The encoder's window, from `quant.logdomain.kernels.encode_window`.

    Returns
    -------
    bool
        True if `x` holds NaN or infinity (the codes are then meaningless). For float64 `x`,
        values next to a code boundary get -128 (never a code), which the caller resolves
        exactly (`quant.logdomain.kernels.resolve_marked`). Requires `available()`.
    """
    _require()
    if x.dtype not in (torch.float32, torch.float64) or out.dtype != torch.int8:
        raise TypeError(f"log_encode maps float32/float64 to int8, got {x.dtype} -> {out.dtype}")
    _flat(x, "log_encode input")
    _flat(out, "log_encode output")
    if out.numel() != x.numel():
        raise ValueError(f"log_encode: {x.numel()} inputs but {out.numel()} outputs")
    xs, cs = _np(x), out.numpy()                       # zero-copy views (buffer protocol)
    args = (x.element_size(), float(scale), int(rounds), float(lo), float(hi), int(k2))
    return _parallel(x.numel(), lambda i, j, t: _native.log_encode(xs[i:j], cs[i:j], *args, t))


def scaled_encode_f32(x: torch.Tensor, out: torch.Tensor, scale: float, qmin: int, qmax: int,
                      zero_point: int) -> bool:
    """Fill int8/uint8 `out` with clamp(round_half_even(x / scale) + zero_point, qmin, qmax).

    Parameters
    ----------
    x, out : torch.Tensor
        Flat contiguous CPU tensors of one length: float32 values, int8/uint8 codes.
    scale : float
        A float32 value > 0; x / scale is one float32 division.
    qmin, qmax, zero_point : int
        qmin <= zero_point <= qmax, within a byte's codes.

    Returns
    -------
    bool
        True if `x` holds NaN or infinity (the codes are then meaningless). Requires
        `available()`.
    """
    _require()
    if x.dtype != torch.float32 or out.dtype not in (torch.int8, torch.uint8):
        raise TypeError(f"scaled_encode_f32 maps float32 to int8/uint8, got {x.dtype} -> "
                        f"{out.dtype}")
    _flat(x, "scaled_encode_f32 input")
    _flat(out, "scaled_encode_f32 output")
    if out.numel() != x.numel():
        raise ValueError(f"scaled_encode_f32: {x.numel()} inputs but {out.numel()} outputs")
    if not (0.0 < scale < math.inf) or float(np.float32(scale)) != scale:
        raise ValueError(f"scaled_encode_f32: scale must be a finite float32 value > 0, got "
                         f"{scale!r}")
    if not (qmin <= zero_point <= qmax and -256 <= qmin <= qmax <= 255):
        raise ValueError(f"scaled_encode_f32: need qmin <= zero_point <= qmax within a byte's "
                         f"codes, got {qmin}, {zero_point}, {qmax}")
    xs, cs = _np(x), out.view(torch.uint8).numpy()
    args = (float(scale), float(qmin - zero_point), float(qmax - zero_point), int(zero_point))
    return _parallel(x.numel(),
                     lambda i, j, t: _native.scaled_encode_f32(xs[i:j], cs[i:j], *args, t))


def byte_lookup(codes: torch.Tensor, table: torch.Tensor, out: torch.Tensor) -> None:
    """out[i] = table[codes[i] as a byte]: decoding by lookup.

    Parameters
    ----------
    codes : torch.Tensor
        Flat int8/uint8 codes.
    table : torch.Tensor
        256 float32 or float64 entries, indexed by the code's unsigned byte.
    out : torch.Tensor
        Flat, of the table's dtype and the codes' length; written in place.
    """
    _require()
    if codes.dtype not in (torch.int8, torch.uint8) or table.dtype != out.dtype or \
            table.dtype not in (torch.float32, torch.float64) or table.shape != (256,):
        raise TypeError("byte_lookup takes int8/uint8 codes, a 256-entry float32/float64 "
                        "table and an output of the table's dtype")
    for t, what in ((codes, "codes"), (table, "table"), (out, "output")):
        _flat(t, f"byte_lookup {what}")
    if out.numel() != codes.numel():
        raise ValueError(f"byte_lookup: {codes.numel()} codes but {out.numel()} outputs")
    cs, ts, os_ = _np(codes.view(torch.uint8)), _np(table), out.numpy()
    _parallel(codes.numel(), lambda i, j, t: _native.byte_lookup(cs[i:j], ts, os_[i:j], t))


def softmax_head(carrier: torch.Tensor, planes: int, multipliers: torch.Tensor,
                 offsets: torch.Tensor, shifts: torch.Tensor, table: torch.Tensor,
                 reciprocal_bits: int, out_max: int, out_dtype: torch.dtype) -> torch.Tensor:
    """The integer pipeline after its matmul, fused per row: probability codes (N, M).

    Parameters
    ----------
    carrier : torch.Tensor
        The matmul's (N, planes * M) output: fp32 carriers of exact integers (oneDNN) or int32
        accumulators; planes = 2 means columns [hi | lo] with acc = lo + 2 hi.
    planes : int
        1 or 2.
    multipliers, offsets, shifts : torch.Tensor
        Per class: z = (acc * m + offset) >> shift (`quant.integer.linear.requantize_ties_up`).
    table : torch.Tensor
        The 256-entry int64 exp table (`IntegerSoftmax.table_tensor`).
    reciprocal_bits : int
        K of the per-row reciprocal.
    out_max : int
        The probability code of 1 (`IntegerSoftmax.prob_max`).
    out_dtype : torch.dtype
        uint8 or uint16 (`IntegerSoftmax.prob_dtype`).

    Returns
    -------
    torch.Tensor
        Per row: d = min(max z - z, 255), e = table[d], r = (out_max << K) // sum e,
        p = (e * r + 2**(K-1)) >> K, all in int64, exactly as quant.integer.linear's torch
        path. The caller keeps that path's no-overflow contract (proven when the model is
        built).
    """
    _require()
    if carrier.dtype not in (torch.float32, torch.int32) or carrier.dim() != 2 or \
            not carrier.is_contiguous():
        raise TypeError("softmax_head takes a contiguous 2-D float32 or int32 carrier")
    if out_dtype not in (torch.uint8, torch.uint16):
        raise TypeError(f"softmax_head writes uint8 or uint16, not {out_dtype}")
    m = multipliers.numel()
    if carrier.shape[1] != planes * m:
        raise ValueError(f"carrier has {carrier.shape[1]} columns, expected {planes} x {m}")
    out = torch.empty((carrier.shape[0], m), dtype=out_dtype)
    rows = carrier.shape[0]
    nthreads = max(1, min(torch.get_num_threads(), rows // 2048)) if _SHARED_OPENMP else 1

    def as_np(t: torch.Tensor) -> object:
        return t.detach().contiguous().to(torch.int64).numpy()

    out_bytes = out.view(torch.uint8) if out_dtype == torch.uint8 else out.view(torch.int16)
    _native.softmax_head(_np(carrier), int(carrier.dtype == torch.float32),
                         int(planes), as_np(multipliers), as_np(offsets), as_np(shifts),
                         as_np(table), int(reciprocal_bits), int(out_max), out_bytes.numpy(),
                         nthreads)
    return out
