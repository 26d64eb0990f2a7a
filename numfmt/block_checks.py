"""Argument checks and the block layout shared by the block encoders (reference and fast).

Each check raises a clear, named error before any work: the containers and dtypes a block
format encodes, the axis, the scale rule, the element rounding and the overflow rule.
`to_blocks` is the one place that cuts a tensor into blocks.
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np

from numfmt.blocks import BlockFormat
from numfmt.rounding import round_to

__all__ = ["ROUNDING_PASSED", "STOCHASTIC_PASSED", "check_input", "check_axis", "check_rule",
           "rounding_kwargs",
           "check_overflow", "to_blocks"]

# Whether numfmt.round_to takes rounding= (the element rounding modes beyond nearest-even).
ROUNDING_PASSED: bool = "rounding" in inspect.signature(round_to).parameters
# Whether it also takes the seed of stochastic rounding (seed= / generator=).
STOCHASTIC_PASSED: bool = {"seed", "generator"} <= set(inspect.signature(round_to).parameters)


def check_input(x: Any):
    """``(tensor, container)`` for a block encoder's input, or a clear error.

    Parameters
    ----------
    x : torch.Tensor or numpy.ndarray
        float16, bfloat16 (torch), float32 or float64, at least one axis and one element.

    Returns
    -------
    tuple
        The input as a torch tensor (a numpy array is wrapped, not copied) and ``"torch"`` or
        ``"numpy"``.

    Raises
    ------
    TypeError
        For another container or dtype (integers would need a rounding of their own).
    ValueError
        For a 0-d or empty input.
    """
    import torch

    container = "torch"
    if isinstance(x, np.ndarray):
        if x.dtype not in (np.float16, np.float32, np.float64):
            raise TypeError(f"block formats encode float16/32/64 arrays, not dtype {x.dtype}")
        container, x = "numpy", torch.from_numpy(np.ascontiguousarray(x))
    elif not isinstance(x, torch.Tensor):
        raise TypeError(f"block_encode takes a torch tensor or numpy array, not "
                        f"{type(x).__name__}")
    if x.dtype not in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
        raise TypeError(f"block formats encode float16/bfloat16/float32/float64 tensors, not "
                        f"{x.dtype} (integers would need a rounding of their own)")
    if x.dim() == 0 or x.numel() == 0:
        raise ValueError(f"block_encode needs a tensor with at least one axis and one element, "
                         f"got shape {tuple(x.shape)}")
    return x, container


def check_axis(axis: Any, ndim: int) -> int:
    """``axis`` as a non-negative axis of an ``ndim``-d tensor (TypeError / ValueError)."""
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"axis must be an int, not {type(axis).__name__}")
    if not -ndim <= axis < ndim:
        raise ValueError(f"axis {axis} is out of range for a tensor with {ndim} dimensions")
    return int(axis) % ndim


def check_rule(fmt: BlockFormat, rule: str | None) -> str:
    """The scale rule to use: ``rule``, or the format's own when None (ValueError if not one
    of ``fmt.rules``)."""
    rule = fmt.rule if rule is None else rule
    if rule not in fmt.rules:
        raise ValueError(f"rule {rule!r} is not a scale rule of {fmt.name}; choose one of "
                         f"{fmt.rules}")
    return rule


def rounding_kwargs(fmt: BlockFormat, rounding: str, seed: Any = None,
                    generator: Any = None) -> dict:
    """The keyword arguments that pass ``rounding`` on to `numfmt.round_to` ({} for nearest
    even; ``seed`` / ``generator`` go with ``"stochastic"``); NotImplementedError where it
    cannot be honoured exactly."""
    if (seed is not None or generator is not None) and rounding != "stochastic":
        raise ValueError(f"seed= and generator= belong to rounding='stochastic', not "
                         f"{rounding!r}")
    if rounding == "nearest_even":
        return {}
    if not fmt.is_mx and rounding != "stochastic":
        raise NotImplementedError(f"rounding={rounding!r} for {fmt.name}: its element quotient "
                                  f"x / (s * S) is not a float; nearest-even and stochastic "
                                  f"are rounded exactly here, the other modes are not")
    if not ROUNDING_PASSED:
        raise NotImplementedError(f"rounding={rounding!r}: numfmt.round_to rounds to nearest "
                                  f"even only in this version; block formats pass its modes on")
    if rounding == "stochastic":
        if not STOCHASTIC_PASSED:
            raise NotImplementedError("rounding='stochastic': numfmt.round_to takes no seed= "
                                      "in this version")
        return {"rounding": rounding, "seed": seed, "generator": generator}
    return {"rounding": rounding}


def check_overflow(overflow: Any) -> str:
    """``"saturate"`` or ``"raise"`` (an `OverflowPolicy` member or its name); ValueError else."""
    name = getattr(overflow, "value", overflow)
    if name not in ("saturate", "raise"):
        raise ValueError(f"overflow={overflow!r}: block formats saturate (the spec) or raise; "
                         f"use 'saturate' or 'raise'")
    return name


def to_blocks(x, axis: int, block_size: int):
    """``x`` with ``axis`` moved last, zero-padded to whole blocks: ``(*other, n, block_size)``.

    The padding zeros change no block maximum, so a short last block is scaled by its own amax.
    ``axis`` must already be a valid non-negative axis.
    """
    import torch

    t = x.movedim(axis, -1)
    pad = (-t.shape[-1]) % block_size
    if pad:
        t = torch.nn.functional.pad(t, (0, pad))
    return t.reshape(*t.shape[:-1], t.shape[-1] // block_size, block_size)
