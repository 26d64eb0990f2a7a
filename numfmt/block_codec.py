"""Exact encode / decode of block-scaled formats: `block_encode`, `block_decode`, `block_round`.

The reference for every block format of `numfmt.blocks`: each element is rounded once, from
the input's own precision (float64 included), into the element format; the scales follow the
named rule exactly (`numfmt.block_rules`). Vectorised torch passes, no Python loop over
elements or blocks.

Layout. The tensor is cut along ``axis`` into blocks of ``block_size`` consecutive elements;
when the length is not a multiple of the block size the last block is shorter and is scaled by
its own amax (it is padded with zeros, which change no maximum, and the padding is dropped on
decode). The encoding keeps the blocks as ``(*other_dims, num_blocks, block_size)`` with the
encoded axis moved last.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from numfmt import block_rules as br
from numfmt.block_checks import (ROUNDING_PASSED, check_axis, check_input, check_overflow,
                                 check_rule, rounding_kwargs, to_blocks)
from numfmt.blocks import E8M0, BlockFormat, get_block_format
from numfmt.overflow import RangeOverflowError
from numfmt.registry import get
from numfmt.rounding import round_to

__all__ = ["BlockEncoded", "block_encode", "block_decode", "block_round"]

@dataclass(frozen=True)
class BlockEncoded:
    """A tensor encoded in a block format (the output of `block_encode`).

    Attributes
    ----------
    format : BlockFormat
    rule : str
        The scale rule used.
    shape : tuple of int
        The input's shape; ``axis`` (non-negative) is the blocked axis.
    axis : int
    dtype : torch.dtype
        The input's dtype (float64 input decodes to float64, any other to float32).
    container : {"torch", "numpy"}
        What the input was; `block_decode` returns the same.
    scale_codes : torch.Tensor
        uint8, ``(*other, num_blocks)``: E8M0 codes (``2**(c - 127)``, 0xFF NaN) or E4M3 codes.
    element_codes : torch.Tensor
        uint8, ``(*other, num_blocks, block_size)``: element bit patterns (MXINT8: two's
        complement). Codes of the padding, and of NaN blocks, are 0.
    tensor_scale : float or None
        NVFP4's FP32 tensor scale.
    """

    format: BlockFormat
    rule: str
    shape: tuple[int, ...]
    axis: int
    dtype: Any
    container: str
    scale_codes: Any
    element_codes: Any
    tensor_scale: float | None

    @property
    def num_blocks(self) -> int:
        """Blocks along the axis, ``ceil(length / block_size)``."""
        return int(self.scale_codes.shape[-1])

    @property
    def padding(self) -> int:
        """Zero elements appended to the last block along the axis."""
        return self.num_blocks * self.format.block_size - self.shape[self.axis]

    @property
    def scales(self):
        """The block scales as float64 (NaN for the NaN code), without the tensor scale."""
        return _scale_table(self.format, self.scale_codes.device)[self.scale_codes.long()]

    @property
    def element_values(self):
        """The element values as float64 (MXINT8: k * 2**-6), shape of `element_codes`."""
        return _element_table(self.format, self.element_codes.device)[self.element_codes.long()]


def _scale_table(fmt: BlockFormat, device):
    import torch

    if fmt.is_mx:
        v = np.ldexp(1.0, np.arange(256) - E8M0.bias)
        v[E8M0.nan_code] = np.nan
    else:
        v = get(fmt.scale).decode(np.arange(256))
    return torch.tensor(v, dtype=torch.float64, device=device)


def _element_table(fmt: BlockFormat, device):
    import torch

    f = fmt.element_format
    return torch.tensor(np.ldexp(f.decode(np.arange(2**f.bits)), fmt.element_shift),
                        dtype=torch.float64, device=device)


# ---- encode --------------------------------------------------------------------------------
def _raise_over(over, blocks, fmt: BlockFormat, what: str) -> None:
    import torch

    i = tuple(int(v) for v in torch.nonzero(over)[0])
    raise RangeOverflowError(f"block_encode({fmt.name})", i, float(blocks[i]),
                             -float(fmt.element_max_exact), float(fmt.element_max_exact),
                             int(over.sum()), over.numel(), what=what,
                             hint="index is (*other dims, block, position in block) with the "
                                  "encoded axis last; pass overflow='saturate' to clamp")


def _top(fmt: BlockFormat) -> tuple[Fraction, Fraction, bool]:
    """(element max, its ulp, whether its last digit is odd), after the implied shift."""
    f = fmt.element_format
    step = Fraction(2) ** ((f.emax - f.mantissa_bits) if f.is_float else 0)
    sig = f.max_exact / step
    return (fmt.element_max_exact, step * Fraction(2) ** fmt.element_shift,
            sig.numerator % 2 == 1)


def _element_codes(vals, fmt: BlockFormat):
    """uint8 codes of exact element values (float64, MXINT8 already as k * 2**-6)."""
    import torch

    f = fmt.element_format
    if not f.is_float:
        k = torch.ldexp(vals, torch.tensor(float(-fmt.element_shift))).to(torch.int64)
        return (k & 0xFF).to(torch.uint8)
    grid = torch.tensor(br.positive_grid(f), dtype=torch.float64, device=vals.device)
    mag = torch.searchsorted(grid, vals.abs().contiguous())
    return (mag | (torch.signbit(vals).to(torch.int64) << (f.bits - 1))).to(torch.uint8)


def _encode_mx(blocks, fmt: BlockFormat, rule: str, overflow: str, rkw: dict):
    import torch

    amax = blocks.abs().amax(-1)
    special = ~torch.isfinite(amax)                                  # NaN or inf in the block
    e = br.mx_scale_exponents(torch.where(special, 0.0, amax), rule, fmt.element_emax,
                              fmt.element_mantissa_bits, fmt.element_max_exact)
    too_big = (e > br.E8M0_MAX_EXP) & ~special
    if overflow == "raise" and bool(too_big.any()):
        _raise_over(too_big, amax, fmt, "block amax whose scale exponent exceeds E8M0's 127")
    nan_block = special | too_big
    e = e.clamp(br.E8M0_MIN_EXP, br.E8M0_MAX_EXP)
    y = torch.ldexp(torch.where(nan_block.unsqueeze(-1), 0.0, blocks),
                    (-(fmt.element_shift + e)).unsqueeze(-1).to(torch.float64))
    f = fmt.element_format
    # round_to's own overflow rule serves other rounding modes and the asymmetric integer range
    by_round_to = bool(rkw) or (not f.is_float and not fmt.symmetric)
    if overflow == "raise" and not by_round_to:      # the nearest-even overflow rule, exactly
        top, ulp, odd = _top(fmt)
        over = br.grid_overflow(y.abs(), torch.ones((), dtype=torch.float64), top / 2 **
                                fmt.element_shift, ulp / 2 ** fmt.element_shift, odd)
        if bool(over.any()):
            _raise_over(over, blocks, fmt, "element whose scaled value overflows the element")
    r = round_to(y, f, overflow=overflow if by_round_to else "saturate", **rkw)
    r = r.to(torch.float64)
    if not f.is_float and fmt.symmetric:
        if overflow == "raise" and by_round_to and bool((r < -float(f.max_exact)).any()):
            _raise_over(r < -float(f.max_exact), blocks, fmt, "element rounded to the unused "
                        "code -128 of a symmetric format")
        r = r.clamp(-float(f.max_exact), float(f.max_exact))
    vals = torch.ldexp(r, torch.tensor(float(fmt.element_shift)))
    codes = torch.where(nan_block, E8M0.nan_code, e + E8M0.bias).to(torch.uint8)
    return codes, _element_codes(vals, fmt)


def _nvfp4_elements(mag, d, fmt: BlockFormat, overflow: str, rkw: dict, blocks):
    """E2M1 magnitude indices of ``mag / d``: nearest even, or stochastic with round_to's
    uniforms (``numfmt.stochastic``, at the blocked layout's flat indices)."""
    import torch

    f = fmt.element_format
    top, ulp, odd = _top(fmt)
    stochastic = rkw.get("rounding") == "stochastic"
    if overflow == "raise":
        over = (mag > float(top) * d if stochastic else br.grid_overflow(mag, d, top, ulp, odd))
        if bool((over & (d > 0)).any()):
            _raise_over(over & (d > 0), blocks, fmt, "element whose scaled value overflows "
                        "the element")
    grid = br.positive_grid(f)
    if not stochastic:
        return torch.where(d > 0, br.grid_round(mag, d, grid), 0)
    from numfmt.stochastic import resolve_seed, uniforms

    u = uniforms(resolve_seed(rkw["seed"], rkw["generator"]), 0, mag.numel(), torch,
                 mag.device).view(mag.shape)
    safe = torch.where(d > 0, d, 1.0)
    return torch.where(d > 0, br.grid_round_stochastic(mag, safe, grid, u), 0)


def _encode_nvfp4(blocks, fmt: BlockFormat, overflow: str, rkw: dict):
    import torch

    scale_fmt, f = get(fmt.scale), fmt.element_format
    absb = blocks.abs()
    amax = absb.amax(-1)
    special = ~torch.isfinite(amax)
    finite = absb[torch.isfinite(absb)]
    big = float(finite.max()) if finite.numel() else 0.0
    s_t = (br.tensor_scale_fp32(big, scale_fmt.max_exact, f.max_exact)
           if fmt.tensor_scale else 1.0)
    sgrid = br.positive_grid(scale_fmt)
    unit = torch.tensor(s_t * float(f.max_exact), dtype=torch.float64)   # 6 * S: exact
    sidx = br.grid_round(torch.where(special, 0.0, amax), unit, sgrid)
    s_b = torch.tensor(sgrid, dtype=torch.float64, device=blocks.device)[sidx]
    d = (s_b * s_t).unsqueeze(-1)                                          # exact in float64
    mag = torch.where(special.unsqueeze(-1), 0.0, absb)
    idx = _nvfp4_elements(mag, d, fmt, overflow, rkw, blocks)
    neg = torch.signbit(blocks) & ~special.unsqueeze(-1)
    ecodes = (idx | (neg.to(torch.int64) << (f.bits - 1))).to(torch.uint8)
    nan_code = 0x7F                                       # E4M3FN's NaN (S.1111.111), positive
    scodes = torch.where(special, nan_code, sidx).to(torch.uint8)
    return scodes, ecodes, (s_t if fmt.tensor_scale else None)


def block_encode(x: Any, fmt: str | BlockFormat, *, rule: str | None = None, axis: int = -1,
                 rounding: str = "nearest_even", overflow: str = "saturate",
                 seed: int | None = None, generator: Any = None) -> BlockEncoded:
    """Encode ``x`` along ``axis`` into scales and element codes of a block format, exactly.

    Parameters
    ----------
    x : torch.Tensor or numpy.ndarray
        float16, bfloat16, float32 or float64, at least one axis and one element. Not modified.
    fmt : str or BlockFormat
        A name of `numfmt.blocks.block_format_names()` or a `BlockFormat`.
    rule : str, optional
        A scale rule of the format (`BlockFormat.rules`); the format's standard rule if omitted.
    axis : int
        The axis cut into blocks.
    rounding : str
        Element rounding: ``"nearest_even"``; the other modes of `numfmt.round_to` are passed
        through for MX formats when `round_to` has them (`ROUNDING_PASSED`); NVFP4 takes
        ``"stochastic"`` too (exact, with round_to's uniforms:
        `numfmt.block_rules.grid_round_stochastic`).
    seed, generator
        For ``rounding="stochastic"``: passed to `round_to`, whose draw for an element is the
        one at its index in the blocked layout ``(*other, num_blocks, block_size)`` (the same
        seed, shape and axis give the same bits).
    overflow : {"saturate", "raise"}
        An element whose scaled value rounds beyond the element's range is clamped to +-max
        (the spec) or raises `numfmt.RangeOverflowError`; with ``"raise"`` an E8M0 exponent
        above 127 raises too (with ``"saturate"`` that block gets the NaN scale).

    Returns
    -------
    BlockEncoded

    Raises
    ------
    TypeError
        For a container or dtype other than the above, or a non-int axis.
    ValueError
        For an empty or 0-d input, an axis out of range, an unknown format, rule or overflow.
    NotImplementedError
        For a rounding mode that cannot be honoured exactly (see ``rounding``).
    RangeOverflowError
        With ``overflow="raise"``, naming the first offending element.

    Notes
    -----
    A block holding NaN or +-inf gets the NaN scale (E8M0 0xFF, E4M3 0x7F) and zero element
    codes; it decodes to NaN. An all-zero block gets E8M0 code 0 (2**-127) or the E4M3 scale 0.
    NVFP4: the tensor scale is taken over the finite values; a block scale that rounds to 0
    gives zero elements (the block decodes to +-0).

    Examples
    --------
    >>> import torch
    >>> enc = block_encode(torch.tensor([1.0, 3.0, 5.0, -7.0]), "mxfp4_e2m1")
    >>> enc.scales.tolist(), enc.element_values[0, :4].tolist(), enc.padding
    ([1.0], [1.0, 3.0, 4.0, -6.0], 28)
    """
    import torch

    f = get_block_format(fmt)
    t, container = check_input(x)
    ax = check_axis(axis, t.dim())
    rule = check_rule(f, rule)
    over = check_overflow(overflow)
    rkw = rounding_kwargs(f, rounding, seed, generator)
    x64 = t.detach().to(torch.float64)
    blocks = to_blocks(x64, ax, f.block_size)
    if f.is_mx:
        scodes, ecodes = _encode_mx(blocks, f, rule, over, rkw)
        s_t = None
    else:
        scodes, ecodes, s_t = _encode_nvfp4(blocks, f, over, rkw)
    return BlockEncoded(f, rule, tuple(x64.shape), ax, t.dtype, container, scodes, ecodes, s_t)


def block_decode(enc: BlockEncoded, dtype: Any = None) -> Any:
    """The values of a `BlockEncoded`, in the input's shape and container.

    Parameters
    ----------
    enc : BlockEncoded
    dtype : torch.dtype, optional
        Result dtype; default float64 for a float64 input, float32 otherwise. Each value
        ``element * scale (* tensor scale)`` is exact in float64 and rounded once into
        ``dtype`` (float32 overflows to inf only past FP32's max, e.g. 2**128 from ``ceil``).

    Returns
    -------
    torch.Tensor or numpy.ndarray
        NaN throughout a NaN-scaled block.

    Examples
    --------
    >>> import torch
    >>> block_decode(block_encode(torch.tensor([0.1, 1.0]), "mxfp8_e4m3")).tolist()
    [0.1015625, 1.0]
    """
    import torch

    if not isinstance(enc, BlockEncoded):
        raise TypeError(f"block_decode takes a BlockEncoded, not {type(enc).__name__}")
    v = enc.element_values * enc.scales.unsqueeze(-1)
    if enc.tensor_scale is not None:
        v = v * enc.tensor_scale
    v = v.reshape(*v.shape[:-2], -1)[..., :enc.shape[enc.axis]].movedim(-1, enc.axis)
    out = dtype or (torch.float64 if enc.dtype == torch.float64 else torch.float32)
    v = v.to(out).contiguous()
    return v.numpy() if enc.container == "numpy" else v


def block_round(x: Any, fmt: str | BlockFormat, *, rule: str | None = None, axis: int = -1,
                rounding: str = "nearest_even", overflow: str = "saturate",
                seed: int | None = None, generator: Any = None) -> Any:
    """``x`` encoded into a block format and decoded back: same shape and container.

    Parameters and errors are those of `block_encode`; the result is float64 for a float64
    input and float32 otherwise (see `block_decode`).

    Examples
    --------
    >>> import torch
    >>> block_round(torch.tensor([1.0, 3.0, 5.0, -7.0], dtype=torch.float64), "mxfp4_e2m1")
    tensor([ 1.,  3.,  4., -6.], dtype=torch.float64)
    """
    return block_decode(block_encode(x, fmt, rule=rule, axis=axis, rounding=rounding,
                                     overflow=overflow, seed=seed, generator=generator))
