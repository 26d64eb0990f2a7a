"""What one row of `benchmarks.int8_softmax` is: a `Variant` (a way of running the model).

Shared by the variant builders (`benchmarks.int8_variants`, `benchmarks.ort_variants`) and the
measurement (`benchmarks.int8_measure`), so that neither imports the other's internals.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch

__all__ = ["Variant", "Unavailable", "INPUT_KINDS", "nbytes", "as_float64"]

#: The input forms a variant may consume: images as float32/float16/bfloat16 in [0, 1], or
#: the uint8 pixels themselves (all (N, 784)).
INPUT_KINDS = ("float32", "float16", "bfloat16", "uint8")


class Unavailable(Exception):
    """A variant cannot run here (an optional package is missing or refuses); says why."""


def as_float64(p: Any) -> torch.Tensor:
    """Probabilities of any dtype (a torch tensor or a numpy array) as a float64 tensor."""
    t = torch.from_numpy(np.asarray(p)) if not isinstance(p, torch.Tensor) else p
    return t.to(torch.float64)


@dataclass(frozen=True)
class Variant:
    """One way of running the model on a batch of images.

    Attributes
    ----------
    name : str
        The row's name (one of `benchmarks.int8_variants.VARIANTS`).
    input_kind : str
        The form ``run`` consumes (one of `INPUT_KINDS`); the conversion of the images into it
        is not timed.
    run : callable
        (N, 784) batch -> (N, num_classes) probabilities (any dtype, torch or numpy).
    weight_bytes : int
        Every stored parameter ``run`` reads: weights, bias, scales, zero points, multipliers.
    matrix_bytes : int
        The weight matrix alone.
    to_probs : callable
        ``run``'s output -> float64 probabilities (applied outside the timing).
    note : str
        What runs, in a few words (configuration choices included).
    extra : tuple of (key, value)
        Further fields of the variant's JSON record.
    reference : callable, optional
        A second path that must return the same bits as ``run`` (the measurement checks it on
        every image and reports ``bit_identical_to_reference``).
    """

    name: str
    input_kind: str
    run: Callable[[torch.Tensor], Any]
    weight_bytes: int
    matrix_bytes: int
    to_probs: Callable[[Any], torch.Tensor] = as_float64
    note: str = ""
    extra: tuple[tuple[str, Any], ...] = ()
    reference: Callable[[torch.Tensor], Any] | None = None

    def __post_init__(self) -> None:
        if self.input_kind not in INPUT_KINDS:
            raise ValueError(f"variant {self.name}: input_kind {self.input_kind!r} is not one "
                             f"of {INPUT_KINDS}")


def nbytes(*tensors: torch.Tensor | np.ndarray | None) -> int:
    """Total bytes of the given tensors or arrays (``None`` entries count 0)."""
    total = 0
    for t in tensors:
        if t is None:
            continue
        total += int(t.nbytes) if isinstance(t, np.ndarray) else t.numel() * t.element_size()
    return total
