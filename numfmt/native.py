"""The optional compiled loop of `numfmt.round_to` (`numfmt._native`) and when it is used.

The extension is built by ``pip install`` / ``setup.py build_ext`` where a C compiler exists.
It rounds contiguous CPU float32 / float64 values into a float target that float32 holds and
that has fraction bits and a zero (fp32, TF32, bf16, fp16, every FP8 but E8M0, FP6, FP4, the
P3109 formats with p >= 2), in every rounding mode and under every overflow rule, with
exactly the results of the numpy / torch paths (the tests compare them bit for bit; the
Python paths stay the reference and the fallback). Set ``NUMFMT_NATIVE=0`` in the environment
to force the Python paths; `available()` says whether the loop is used.

The extension is loaded on first use, after torch (`numfmt.threads.import_extension`), so that
importing `numfmt` loads neither, and the loop always shares torch's OpenMP team.
"""

from __future__ import annotations

import functools
import os
import sys
from typing import Any

from numfmt.format import Format
from numfmt.rangerule import float64_range, holds
from numfmt.registry import get
from numfmt.threads import import_extension, uses_torch_openmp

__all__ = ["available", "supports", "code_output", "round_buffer", "advise_huge_pages",
           "MODES", "RULES", "OUTPUTS", "HUGE_PAGE_MIN_BYTES"]

MODES = ("nearest_even", "nearest_away", "toward_zero", "up", "down", "odd", "stochastic")
"""The modes in the order numfmt/_native.c numbers them."""
RULES = ("inf", "nan", "saturate", "raise")
"""The overflow rules in the order numfmt/_native.c numbers them."""
OUTPUTS = ("same", "code8", "code16", "bfloat16")
"""What the loop writes, in numfmt/_native.c's order: the input's float type, the format's
codes in one byte (FP8, FP6, FP4 as torch and ml_dtypes store them: the code in the low
bits) or two (FP16), or bfloat16 (the top half of float32)."""

_FLAG_OVERFLOW, _FLAG_NAN = 1, 2
HUGE_PAGE_MIN_BYTES = 4 << 20
"""Fresh outputs from this size on are offered huge pages (`advise_huge_pages`)."""


def available() -> bool:
    """Whether the compiled loop is built and not disabled by ``NUMFMT_NATIVE=0``.

    Returns
    -------
    bool
    """
    return os.environ.get("NUMFMT_NATIVE", "1") != "0" and _extension() is not None


@functools.lru_cache(maxsize=None)
def _extension() -> Any:
    return import_extension("numfmt._native")   # None: no compiler at install time


@functools.lru_cache(maxsize=None)
def supports(fmt: Format, itemsize: int = 8) -> bool:
    """Whether the compiled loop rounds inputs of ``itemsize`` bytes into the target ``fmt``.

    Parameters
    ----------
    fmt : Format
    itemsize : {4, 8}
        float32 or float64 input.

    Returns
    -------
    bool
        True for float formats with at least one fraction bit, a zero, and every value a
        float32 (so that a float32 input's result is float32), with fewer fraction bits than
        a float32 input has (fp32 from float32 is a copy). Formats without fraction bits
        (E8M0) and integers use the Python paths.
    """
    return (itemsize in (4, 8) and fmt.is_float and 1 <= fmt.mantissa_bits
            and (itemsize == 8 or fmt.mantissa_bits < 23) and fmt.has_zero
            and holds(get("fp32"), fmt))


def _shares_torch_openmp() -> bool:
    ext = _extension()
    return uses_torch_openmp(ext.openmp_library() if ext is not None else None)


@functools.lru_cache(maxsize=None)
def code_output(fmt: Format) -> str | None:
    """Which of `OUTPUTS` writes ``fmt``'s own codes (its storage dtype's bytes), or None.

    Parameters
    ----------
    fmt : Format
        A format `supports` accepts.

    Returns
    -------
    str or None
        "bfloat16" for bf16, "code8" for float formats of at most 8 bits, "code16" for the
        other 16-bit ones (FP16); None for the rest (TF32, FP32: no storage of their own).
    """
    if not fmt.is_float or fmt.bits > 16:
        return None
    if fmt.name == "bf16":
        return "bfloat16"
    if fmt.mantissa_bits - fmt.emin > 120:      # the encoder's scale 2**(m - emin) as a float32
        return None
    return "code8" if fmt.bits <= 8 else "code16"


@functools.lru_cache(maxsize=None)
def _special_codes(fmt: Format) -> tuple[int, int, int]:
    """(NaN, +inf, -inf) codes from the format's own layout (0 where it has none): the
    largest NaN code with the sign bit clear (a quiet NaN), else the smallest NaN code (fnuz:
    the one NaN, 0x80)."""
    import numpy as np

    codes = np.arange(2**fmt.bits)
    v = fmt.decode(codes)
    nan = codes[np.isnan(v)]
    positive = nan[nan < 2 ** (fmt.bits - 1)] if fmt.signed else nan
    nan_code = int(positive.max()) if positive.size else int(nan.min()) if nan.size else 0
    pos, neg = codes[v == np.inf], codes[v == -np.inf]
    return nan_code, int(pos[0]) if pos.size else 0, int(neg[0]) if neg.size else 0


@functools.lru_cache(maxsize=None)
def _params(fmt: Format) -> tuple:
    lo, hi = float64_range(fmt)
    return (fmt.mantissa_bits, fmt.emin, int(fmt.signed), int(fmt.has_inf), int(fmt.has_nan),
            int(fmt.has_negative_zero), hi, lo)


def round_buffer(x_ptr: int, out_ptr: int, n: int, itemsize: int, fmt: Format, rule: str,
                 mode: str, seed: int | None, start: int = 0, output: str = "same") -> bool:
    """Round ``n`` contiguous CPU floats at ``x_ptr`` into ``fmt``, writing them at ``out_ptr``.

    Parameters
    ----------
    x_ptr, out_ptr : int
        Addresses of ``n`` contiguous float32 (``itemsize`` 4) or float64 (8) values, and of
        ``n`` outputs of the kind ``output`` names; the caller keeps both buffers alive and
        sized.
    n, itemsize : int
    fmt : Format
        A format `supports` accepts for ``itemsize``.
    rule : {"inf", "nan", "saturate", "raise"}
    mode : str
        One of `MODES`.
    seed : int or None
        The stochastic mode's seed (`numfmt.stochastic`); element j draws the uniform of flat
        index ``start + j``.
    start : int
    output : str
        One of `OUTPUTS`: "same" (the input's type) or ``code_output(fmt)``.

    Returns
    -------
    bool
        True when the output is complete; False when an element overflowed under "raise" or
        a NaN met a format without NaN: the caller then runs the Python path, which raises.
    """
    if output not in ("same", code_output(fmt)):
        raise ValueError(f"output {output!r} does not write {fmt.name} values")
    params = _params(fmt)
    seed64 = 0 if seed is None else int(seed) & ((1 << 64) - 1)
    args = (*params[:6], MODES.index(mode), RULES.index(rule), *params[6:], seed64)
    tail = (OUTPUTS.index(output), fmt.bits,
            *(_special_codes(fmt) if output != "same" else (0, 0, 0)))
    out_size = {"same": itemsize, "code8": 1}.get(output, 2)
    ext = _extension()
    if _shares_torch_openmp():
        threads = _threads()
        flags = ext.round_float(x_ptr, out_ptr, n, itemsize, *args, start, threads, *tail)
        return flags == 0
    from numfmt.threads import run_chunks      # another OpenMP runtime: split on Python threads

    found = [0]

    def job(lo: int, hi: int) -> None:
        found[0] |= ext.round_float(x_ptr + lo * itemsize, out_ptr + lo * out_size, hi - lo,
                                    itemsize, *args, start + lo, 1, *tail)

    run_chunks(job, n, chunk=1 << 18)
    return found[0] == 0


def advise_huge_pages(address: int, nbytes: int) -> bool:
    """Ask the kernel to back a fresh output buffer with transparent huge pages.

    Writing a new many-MB output costs one page fault per 4 KiB page on its first touch: at
    16 M float32 values that was about two thirds of `round_to`'s time (torch's own casts pay
    it too, unless torch runs with ``THP_MEM_ALLOC_ENABLE=1``). With huge pages (Linux, THP in
    "madvise" or "always" mode) it is one fault per 2 MiB. Values are never changed; only
    whole 2 MiB pages inside the buffer are advised; buffers below `HUGE_PAGE_MIN_BYTES` and
    machines without the extension or THP are left alone.

    Parameters
    ----------
    address, nbytes : int
        The buffer (the caller's, freshly allocated and not yet written).

    Returns
    -------
    bool
        Whether the advice was given and accepted.
    """
    ext = _extension()
    if ext is None or nbytes < HUGE_PAGE_MIN_BYTES or not sys.platform.startswith("linux"):
        return False
    return bool(ext.advise_huge_pages(int(address), int(nbytes)))


def _threads() -> int:
    import torch                        # loaded already: `_extension` loads it first

    return max(1, int(torch.get_num_threads()))
