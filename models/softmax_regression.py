"""Softmax regression: flatten, one linear layer, cross-entropy from the logits."""

from __future__ import annotations

import numbers
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["SoftmaxRegression"]


class SoftmaxRegression(nn.Module):
    """logits = flatten(x) @ W.T + b, with W (num_classes, in_features) and b (num_classes,).

    Parameters
    ----------
    in_features : int
        Features per sample (>= 1; 784 for 28x28 images).
    num_classes : int
        Classes (>= 2).
    dtype, device : optional
        Of the parameters, as for ``nn.Linear``.

    Raises
    ------
    TypeError
        For a count that is not an integer (``10.5``, ``True``).
    ValueError
        For a count below its minimum.

    Notes
    -----
    Parameters start at zero: the loss is convex, so the optimum does not depend on the start,
    and a zero start makes runs depend on the shuffling seed alone.
    """

    def __init__(self, in_features: int = 784, num_classes: int = 10, *,
                 dtype: torch.dtype | None = None, device: torch.device | str | None = None):
        super().__init__()
        for name, v, least in (("in_features", in_features, 1), ("num_classes", num_classes, 2)):
            if isinstance(v, bool) or not isinstance(v, numbers.Integral):
                raise TypeError(f"{name} must be an int, not {type(v).__name__} {v!r}")
            if v < least:
                raise ValueError(f"{name} must be >= {least}, not {v}")
        self.linear = nn.Linear(int(in_features), int(num_classes), dtype=dtype, device=device)
        with torch.no_grad():
            self.linear.weight.zero_()
            self.linear.bias.zero_()

    @property
    def in_features(self) -> int:
        """Features per sample."""
        return self.linear.in_features

    @property
    def num_classes(self) -> int:
        """Classes (rows of W)."""
        return self.linear.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N, num_classes) of x (N, ...) with prod(...) == in_features."""
        x = x.flatten(1)
        if x.shape[1] != self.in_features:
            raise ValueError(f"expected {self.in_features} features per sample, got "
                             f"{x.shape[1]} (input shape {tuple(x.shape)})")
        return self.linear(x)

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy of the logits of x against integer labels y."""
        return F.cross_entropy(self(x), y)

    def logits_and_gradients(self, x: torch.Tensor, y: torch.Tensor, *, scale: float = 1.0,
                             matmul_round: Callable[[torch.Tensor], torch.Tensor] | None = None,
                             ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """Logits (B, C) and (dW, db), the gradient of ``scale`` * mean cross-entropy, no autograd.

        x is (B, in_features) in the parameters' dtype, y (B,) int64. The softmax-regression
        gradient is closed-form: with P = softmax(logits), G = (P - onehot(y)) * scale / B,
        dW = G.T @ x and db = G.sum(0). Every op runs in the parameters' dtype (so FP16/BF16
        round each result as their own arithmetic does). ``matmul_round``, if given, rounds
        the operands of each matrix product (x is expected pre-rounded), emulating a
        matmul-input format such as TF32 whose exact products then accumulate in the dtype.

        Logits are computed as W @ x.T, a (C, B) layout: with MKL on this machine's CPUs that
        is ~3x faster than x @ W.T for these shapes; the returned logits are its transpose view.
        """
        w, b = self.linear.weight, self.linear.bias
        if matmul_round is not None:
            w = matmul_round(w)
        zt = torch.mm(w, x.T)
        zt += b[:, None]
        g = torch.softmax(zt, dim=0)
        g.scatter_add_(0, y[None, :], torch.full((1, x.shape[0]), -1.0, dtype=g.dtype,
                                                 device=g.device))  # P - onehot(y)
        g *= scale / x.shape[0]
        if matmul_round is not None:
            g = matmul_round(g)
        return zt.T, (torch.mm(g, x), g.sum(dim=1))
