"""Checks of what a caller hands the models: images (pixels or features) and labels.

Both accept torch tensors and numpy arrays (converted without copying where torch can share
the memory; never modified) and raise a TypeError or ValueError naming the problem.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

__all__ = ["as_images", "as_labels"]


def as_images(images: Any, in_features: int | None = None) -> torch.Tensor:
    """``images`` as a CPU tensor, checked: (N, ...) uint8 pixels or float features in [0, 1].

    Parameters
    ----------
    images : Tensor or numpy array
        Numpy arrays are converted (not copied where torch can share them; never modified).
    in_features : int, optional
        The features per sample the model takes.

    Raises
    ------
    TypeError
        For something that is not a tensor or array, or a dtype that is neither uint8 nor float.
    ValueError
        For fewer than 2 dimensions, the wrong feature count, non-finite values, or float
        values outside [0, 1] (pixels left at 0..255 are not features).
    """
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(np.ascontiguousarray(images))
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images must be a torch.Tensor or numpy array, not "
                        f"{type(images).__name__}")
    if images.dim() < 2:
        raise ValueError(f"images must be (N, ...) with N samples, got shape "
                         f"{tuple(images.shape)}")
    features = math.prod(images.shape[1:])
    if in_features is not None and features != in_features:
        raise ValueError(f"images of shape {tuple(images.shape)} give {features} features per "
                         f"sample; the model takes {in_features}")
    images = images.cpu()
    if images.dtype == torch.uint8 or images.numel() == 0:
        return images
    if not images.dtype.is_floating_point:
        raise TypeError(f"images must be uint8 pixels or float features, not {images.dtype}")
    lo, hi = torch.aminmax(images.reshape(-1))
    if not (math.isfinite(lo.item()) and math.isfinite(hi.item())):
        raise ValueError("images contain NaN or infinity")
    if lo.item() < 0 or hi.item() > 1:
        hint = (" -- pixels left at 0..255? pass them as uint8 or divide by 255"
                if hi.item() > 1 else "")
        raise ValueError(f"evaluate takes uint8 pixels or float features in [0, 1] "
                         f"(pixels / 255); these floats span [{lo.item():g}, {hi.item():g}]"
                         f"{hint}")
    return images


def as_labels(labels: Any, n: int, num_classes: int, what: str = "") -> torch.Tensor:
    """``labels`` as an int64 tensor, checked: shape (n,), integers in 0..num_classes-1.

    ``what`` ("training", "validation") starts the error messages. The result is on the CPU
    for numpy input, else on the labels' own device.

    Raises
    ------
    TypeError
        For something that is not a tensor or array of integers.
    ValueError
        For another shape or a label out of range.
    """
    w = f"{what} " if what else ""
    if isinstance(labels, np.ndarray):
        labels = torch.from_numpy(np.ascontiguousarray(labels))
    if not isinstance(labels, torch.Tensor):
        raise TypeError(f"{w}labels must be a torch.Tensor or numpy array, not "
                        f"{type(labels).__name__}")
    if labels.dim() != 1 or labels.shape[0] != n:
        raise ValueError(f"{w}labels must have shape ({n},) to match the images, got "
                         f"{tuple(labels.shape)}")
    if labels.dtype.is_floating_point or labels.dtype.is_complex or labels.dtype == torch.bool:
        raise TypeError(f"{w}labels must be integers, not {labels.dtype}")
    if n and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"{w}labels must lie in 0..{num_classes - 1}")
    return labels.to(torch.int64)
