"""The torch path of `numfmt.round_to`: native casts where torch's are correct, else the
numpy path's exact float64 algorithm, run in chunks on CPU threads (`numfmt.threads`)."""

from __future__ import annotations

import math

from numfmt import native
from numfmt.format import Format
from numfmt.modes import STOCHASTIC, round_scaled
from numfmt.rangerule import (Overflow, apply_overflow, bottom_of_range, check_nan,
                              container_name, default_overflow, holds, overflow_limit,
                              raise_overflow, saturated_max, source_format)
from numfmt.registry import get
from numfmt.round_numpy import round_array
from numfmt.stochastic import uniforms
from numfmt.bits32 import round_float32_bits
from numfmt.threads import run_chunks

__all__ = ["round_tensor", "straight_through"]


def _round_torch_float64(x, fmt: Format, mode: str, u=None):
    """float64 tensor ``x`` rounded by ``mode`` onto the format's grid (unbounded above)."""
    import torch

    if not fmt.is_float:
        return round_scaled(x, None, fmt, mode, torch, u) + 0.0   # integers have no -0.0
    if fmt.name == "fp64":
        return x.clone()
    if fmt.name == "fp32" and mode == "nearest_even":
        return x.to(torch.float32).to(torch.float64)    # float64 -> float32 is correctly rounded
    _, e = torch.frexp(x)
    qexp = torch.clamp_min(e.to(torch.int64) - 1, fmt.emin) - fmt.mantissa_bits
    scale = torch.ldexp(torch.ones_like(x), qexp)
    # Division by a power of two is exact.
    return round_scaled(x / scale, qexp, fmt, mode, torch, u) * scale


# torch's float32 casts that round to nearest even correctly inside the range (tested against
# the exact path on every code, midpoint and neighbour); E8M0's drops the sign and is not here.
_CORRECT_CASTS = ("fp16", "bf16", "fp8_e4m3fn", "fp8_e5m2", "fp8_e4m3fnuz", "fp8_e5m2fnuz")


def _run_chunked(job, src, out, over_all, t, fmt: Format):
    """Run ``job(lo, hi)`` over the flat ``src`` (in chunks on threads on the CPU, whole
    elsewhere), then raise for the first overflow ``over_all`` recorded, or return ``out`` in
    ``t``'s shape."""
    if src.device.type == "cpu":
        run_chunks(job, src.numel())
    else:
        job(0, src.numel())
    if over_all is not None and bool(over_all.any()):
        raise_overflow(over_all.view(t.shape), t, fmt)
    return out.view(t.shape)


def _native_cast(t, fmt: Format, rule: Overflow):
    """torch's cast into ``fmt`` and back for float32 ``t``, with our overflow rule imposed
    (torch saturates E4M3FN and gives NaN for the fnuz formats), in chunks on threads."""
    import torch

    src = t.contiguous().reshape(-1)
    out = torch.empty_like(src)
    lim, tie_up = overflow_limit(fmt)
    top = float(fmt.max)
    over_all = torch.empty(src.shape, dtype=torch.bool, device=src.device) \
        if rule == "raise" else None

    def job(lo: int, hi: int) -> None:
        x = src[lo:hi]
        r = x.to(fmt.torch_dtype).to(torch.float32)
        a = x.abs()
        over = (a >= lim) if tie_up else (a > lim)        # NaN compares False
        if fmt.has_inf and rule != "saturate":
            over &= ~torch.isinf(x)                        # inf stays inf
        if over_all is not None:
            over_all[lo:hi] = over
        elif rule == "saturate":
            r = torch.where(over, torch.where(x > 0, top, -top), r)
        elif rule == "nan":
            r = torch.where(over, math.nan, r)
        elif rule == "inf":
            r = torch.where(over, torch.where(x > 0, math.inf, -math.inf), r)
        out[lo:hi] = r

    return _run_chunked(job, src, out, over_all, t, fmt)


def _float32_grid_ok(fmt: Format) -> bool:
    """Whether every spacing 2**qexp of the format's grid, and its inverse, is a normal
    float32, so that float32 input can be rounded in float32 arithmetic, exactly."""
    return (fmt.is_float and fmt.mantissa_bits >= 1 and fmt.emin - fmt.mantissa_bits >= -126
            and fmt.max_exact <= get("fp32").max_exact)


def _round_float32_grid(t, fmt: Format, rule: Overflow, mode: str, seed: int | None):
    """float32 ``t`` rounded onto the grid in float32 arithmetic (the float64 path's algorithm;
    every step exact: scaling by powers of two built from their bits), in chunks on threads."""
    import torch

    src = t.contiguous().reshape(-1)
    out = torch.empty_like(src)
    over_all = torch.empty(src.shape, dtype=torch.bool, device=src.device) \
        if rule == "raise" else None

    def job(lo: int, hi: int) -> None:
        x = src[lo:hi]
        qexp = torch.frexp(x)[1].sub_(1).clamp_min_(fmt.emin).sub_(fmt.mantissa_bits)
        down = ((127 - qexp) << 23).view(torch.float32)       # 2**-qexp
        up = ((127 + qexp) << 23).view(torch.float32)         # 2**qexp
        u = uniforms(seed, lo, hi - lo, torch, x.device) if mode == STOCHASTIC else None
        r = round_scaled(x * down, qexp, fmt, mode, torch, u) * up
        r = bottom_of_range(r, x, fmt, torch)
        r, over = apply_overflow(r, x, fmt, rule, torch, mode)
        if over_all is not None:
            over_all[lo:hi] = over
        out[lo:hi] = r

    _check_nan(src, fmt)
    return _run_chunked(job, src, out, over_all, t, fmt)


def _check_nan(x, fmt: Format) -> None:
    import torch

    check_nan(x, fmt, torch)


def _fast_torch(t, fmt: Format, rule: Overflow, mode: str, seed: int | None):
    """float32 input: torch's own cast where it rounds correctly (nearest even into fp16/bf16),
    bit arithmetic for every mode into bf16/TF32; None where neither applies."""
    import torch

    if not (fmt.is_float and t.dtype == torch.float32):
        return None
    if fmt.name in ("fp16", "bf16") and mode == "nearest_even" and rule == "inf":
        # float32 -> fp16/bf16 is a single correctly rounded cast in torch (IEEE overflow).
        return t.to(fmt.torch_dtype).to(torch.float32)
    if fmt.name in _CORRECT_CASTS and mode == "nearest_even":
        return _native_cast(t, fmt, rule)
    if fmt.name not in ("bf16", "tf32") and _float32_grid_ok(fmt):
        return _round_float32_grid(t, fmt, rule, mode, seed)
    if rule != default_overflow(fmt):
        return None
    if fmt.name in ("bf16", "tf32"):             # float32's exponent range: bits only
        return round_float32_bits(t, fmt.mantissa_bits, mode, seed)
    if mode != "nearest_even":
        return None
    if fmt.name == "fp32":
        return t.clone()
    if fmt.name == "fp64":
        return t.to(torch.float64)                  # float32 does not hold every fp64 value
    return None


def _round_native(t, fmt: Format, rule: Overflow, mode: str, seed: int | None, out_dtype):
    """The compiled loop's rounding (`numfmt.native`) of a CPU float32/float64 tensor into a
    tensor of ``out_dtype`` -- the input's own dtype, or the format's storage dtype (the loop
    writes its codes) -- or None where it does not apply (or met an error the Python paths
    raise: they run again)."""
    import torch

    if not (native.available() and t.device.type == "cpu"
            and t.dtype in (torch.float32, torch.float64)
            and native.supports(fmt, t.element_size())):
        return None
    output = "same" if out_dtype == t.dtype else \
        native.code_output(fmt) if out_dtype == fmt.torch_dtype else None
    if output is None:
        return None
    src = t.contiguous()
    out = torch.empty(src.shape, dtype=out_dtype)
    native.advise_huge_pages(out.data_ptr(), out.numel() * out.element_size())
    if native.round_buffer(src.data_ptr(), out.data_ptr(), src.numel(), src.element_size(),
                           fmt, rule, mode, seed, 0, output):
        return out
    return None


def round_tensor_as(t, fmt: Format, rule: Overflow, mode: str, seed: int | None, dtype):
    """`round_tensor`'s values held in ``dtype`` (checked by the caller to hold every value of
    ``fmt``): into the format's own storage dtype (``torch.bfloat16`` for bf16, ...) the
    compiled loop writes its codes directly, as ``x.to(dtype)`` writes its own; otherwise the
    result is converted, exactly."""
    t = t.detach()
    compiled = _round_native(t, fmt, rule, mode, seed, dtype)
    return compiled if compiled is not None else round_tensor(t, fmt, rule, mode, seed).to(dtype)


def round_tensor(t, fmt: Format, rule: Overflow, mode: str = "nearest_even",
                 seed: int | None = None):
    """A tensor rounded into the format (the torch path of `round_to`).

    Parameters
    ----------
    t : torch.Tensor
        Any real dtype, any device; not modified, detached.
    fmt : Format
    rule : {"inf", "nan", "saturate", "raise"}
    mode : str
        A rounding mode (`numfmt.modes`).
    seed : int, optional
        The stochastic mode's seed (`numfmt.stochastic`).

    Returns
    -------
    torch.Tensor
        On ``t``'s device, in the container `numfmt.rangerule.container_name` picks.
    """
    import torch

    if t.dtype == torch.bool or t.is_complex():
        raise TypeError(f"cannot round a tensor of dtype {t.dtype} to {fmt.name}")
    src = source_format(t.dtype)
    out_fmt = get(container_name(src, not t.dtype.is_floating_point, fmt))
    out_dtype = getattr(torch, out_fmt.torch_dtype_name)
    t = t.detach()
    if src is not None and not src.is_float and holds(fmt, src):
        return t.to(out_dtype, copy=True)           # an integer format holding every input
    if t.dtype in (torch.int64, torch.uint64) and t.numel() and \
            bool(((t > 2**53) | (t < -(2**53))).any()):
        # float64 would round these first: the numpy path rounds them exactly, once
        r = round_array(t.cpu().numpy(), fmt, rule, mode, seed)
        return torch.from_numpy(r).to(device=t.device, dtype=out_dtype)
    compiled = _round_native(t, fmt, rule, mode, seed, out_dtype)
    if compiled is not None:
        return compiled
    fast = _fast_torch(t, fmt, rule, mode, seed)
    if fast is not None:
        return fast
    if fmt.name == "fp64" and t.dtype == torch.float64 and rule == default_overflow(fmt):
        return t.clone()
    return _round_torch_general(t, fmt, rule, out_dtype, mode, seed)


def _round_torch_general(t, fmt: Format, rule: Overflow, out_dtype, mode: str, seed):
    """Exact float64 arithmetic (the numpy path's algorithm), chunk by chunk on CPU threads
    (`numfmt.threads.run_chunks`: fast on a shared machine), in one pass per op elsewhere."""
    import torch

    src = t.contiguous().reshape(-1)
    check_nan(src, fmt, torch)
    out = torch.empty(src.shape, dtype=out_dtype, device=src.device)
    over_all = torch.empty(src.shape, dtype=torch.bool, device=src.device) \
        if rule == "raise" else None

    def job(lo: int, hi: int) -> None:
        x = src[lo:hi].to(torch.float64)
        u = uniforms(seed, lo, hi - lo, torch, x.device) if mode == STOCHASTIC else None
        r = bottom_of_range(_round_torch_float64(x, fmt, mode, u), x, fmt, torch)
        sat = saturated_max(r, x, fmt, rule)
        r, over = apply_overflow(r, x, fmt, rule, torch, mode)
        if over_all is not None:
            over_all[lo:hi] = over
        out[lo:hi] = r
        if sat is not None:
            out[lo:hi][sat] = fmt.max

    return _run_chunked(job, src, out, over_all, t, fmt)


def straight_through(x, r):
    """``r`` as the output of a graph node whose gradient with respect to ``x`` is 1.

    Parameters
    ----------
    x : torch.Tensor
        The input that requires grad.
    r : torch.Tensor
        Its rounding (same shape).

    Returns
    -------
    torch.Tensor
        ``r``'s values; backward passes the gradient through unchanged (cast to ``x``'s dtype).
    """
    import torch

    class StraightThrough(torch.autograd.Function):
        @staticmethod
        def forward(ctx, inp, rounded):            # noqa: D102 - torch's protocol
            ctx.in_dtype = inp.dtype
            return rounded

        @staticmethod
        def backward(ctx, grad):                   # noqa: D102
            return grad.to(ctx.in_dtype), None

    return StraightThrough.apply(x, r)
