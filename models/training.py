"""Minibatch SGD for softmax regression, fast, seeded, and in a chosen number format.

The trainer keeps the whole training set in memory as one tensor in the training format, draws
one seeded permutation per epoch and slices minibatches from it; the softmax-regression gradient
is closed-form (`SoftmaxRegression.logits_and_gradients`), so a step is two small matrix
products and a softmax, with no autograd graph and no optimizer object. Any other ``nn.Module``
is trained with autograd in plain torch dtypes. What the formats, master weights and loss
scales mean is in `models.config`; the record a run returns is `models.history`.

`EpochStats.stalled_update_share` counts the updates lost to rounding (without master weights,
``w - lr * g`` is rounded in the format and small updates vanish); `EpochStats.overflow_steps`
counts steps whose gradients held inf/NaN, with or without a scaler: without one, such a step
poisons the weights and the run is reported as diverged. (`train` is also ``models.train``,
the package attribute: hence the module's name.)
"""

from __future__ import annotations

import copy
import math
import sys
import time
from dataclasses import dataclass
from typing import Callable

import numfmt
import torch
import torch.nn.functional as F
from torch import nn

from models.config import Precision, TrainConfig, lr_at_epoch
from models.data import Split, images_to_float
from models.history import EpochStats, History
from models.inputs import as_labels
from models.runtime import DynamicLossScaler, matmul_precision, resolve_device, torch_threads
from models.softmax_regression import SoftmaxRegression

__all__ = ["Trainer", "train"]


@dataclass
class _Run:
    """The mutable state of one `Trainer.fit` call."""

    model: nn.Module
    params: list[torch.Tensor]
    masters: list[torch.Tensor] | None
    x: torch.Tensor
    y: torch.Tensor
    xv: torch.Tensor | None
    yv: torch.Tensor | None
    dtype: torch.dtype
    dev: torch.device
    fast: bool
    mround: Callable[[torch.Tensor], torch.Tensor] | None
    scaler: DynamicLossScaler | None
    static_scale: float | None
    zbuf: torch.Tensor  # the epoch's logits, scored once per epoch
    gen: torch.Generator


@dataclass
class _Best:
    """Which epoch was best so far, and (with early stopping) its weights."""

    value: float | None = None
    epoch: int | None = None
    state: tuple[list[torch.Tensor], list[torch.Tensor] | None] | None = None
    waited: int = 0


class Trainer:
    """Trains a model in place with minibatch SGD under ``config`` (see `TrainConfig`).

    Parameters
    ----------
    config : TrainConfig
    progress : bool
        Print one line per epoch on stderr.
    """

    def __init__(self, config: TrainConfig, *, progress: bool = False):
        if not isinstance(config, TrainConfig):
            raise TypeError(f"config must be a TrainConfig, not {type(config).__name__}")
        self.config = config
        self.progress = progress

    def fit(self, model: nn.Module, train_images: torch.Tensor, train_labels: torch.Tensor,
            val_images: torch.Tensor | None = None,
            val_labels: torch.Tensor | None = None) -> History:
        """Train ``model`` in place and return the `History`.

        Parameters
        ----------
        model : nn.Module
            `SoftmaxRegression` takes the closed-form fast path; other modules autograd.
        train_images, val_images : Tensor
            uint8 (N, 28, 28) pixels (scaled to [0, 1]) or float (N, ...) features.
        train_labels, val_labels : Tensor
            int (N,) in 0..C-1. Give both validation tensors or neither.

        Returns
        -------
        History

        Raises
        ------
        ValueError, TypeError
            For inputs that do not fit the model or each other, before any step.

        Notes
        -----
        The model's parameters keep their dtype: at the end they hold the trained values (the
        FP32 master copy where there is one, otherwise the format's values, converted exactly
        or rounded to the model's dtype). On divergence (non-finite loss or weights) training
        stops and the history says so; with early stopping the best weights are restored,
        including after divergence.
        """
        cfg = self.config
        run = self._prepare(model, train_images, train_labels, val_images, val_labels)
        orig = [(p.dtype, p.device) for p in run.params]
        run.masters = self._cast_parameters(run.params, run.dtype, run.dev)
        records: list[EpochStats] = []
        best = _Best()
        stopped_early = diverged = restored = False
        t_start = time.perf_counter()
        try:
            real_tf32 = cfg.precision.format == "tf32" and run.dev.type == "cuda"
            with torch_threads(cfg.num_threads if run.dev.type == "cpu" else None), \
                    matmul_precision("high" if real_tf32 else "highest"), torch.no_grad():
                for epoch in range(cfg.epochs):
                    rec = self._epoch(run, epoch)
                    records.append(rec)
                    if self.progress:
                        print(rec.summary(cfg.precision.label), file=sys.stderr, flush=True)
                    if not self._finite(run, rec):
                        diverged = True
                        break
                    if self._track_best(run, best, rec):
                        stopped_early = True
                        break
                restored = self._restore_best(run, best, len(records), diverged)
        finally:
            # The parameters go back to their own dtype and device even if training raised.
            with torch.no_grad():
                for i, p in enumerate(run.params):
                    value = run.masters[i] if run.masters is not None else p.data
                    p.data = value.to(device=orig[i][1], dtype=orig[i][0])
        return History(config=cfg.to_dict(), label=cfg.precision.label, epochs=tuple(records),
                       best_epoch=best.epoch, stopped_early=stopped_early,
                       restored_best=restored, diverged=diverged,
                       seconds=time.perf_counter() - t_start)

    def _prepare(self, model: nn.Module, train_images: torch.Tensor, train_labels: torch.Tensor,
                 val_images: torch.Tensor | None, val_labels: torch.Tensor | None) -> _Run:
        """Check everything and build the run's tensors; the model is not touched yet."""
        cfg, prec = self.config, self.config.precision
        dev = resolve_device(cfg.device)
        if (val_images is None) != (val_labels is None):
            raise ValueError("give both val_images and val_labels, or neither")
        if cfg.early_stopping and val_images is None:
            raise ValueError("early stopping needs validation data (val_images, val_labels)")
        params = list(model.parameters())
        if not params:
            raise ValueError("model has no parameters")
        fast = isinstance(model, SoftmaxRegression)
        emulated = prec.format == "tf32" and dev.type != "cuda"
        if not fast and emulated:
            raise ValueError("emulated TF32 is implemented for SoftmaxRegression only")
        dtype = numfmt.get(prec.format).torch_dtype or torch.float32  # TF32 lives in FP32
        self._check_features(model, train_images, "training")
        self._check_features(model, val_images, "validation")
        round_fmt = "tf32" if prec.format == "tf32" else None
        x = self._features(train_images, dtype, dev, round_fmt)
        if x.shape[0] == 0:
            raise ValueError("no training samples")
        num_classes = getattr(model, "num_classes", None)
        if num_classes is None:
            with torch.no_grad():  # probe a copy: the model is not touched before training
                num_classes = copy.deepcopy(model).to(device=dev, dtype=dtype)(x[:1]).shape[1]
        y = as_labels(train_labels, x.shape[0], num_classes, "training").to(dev)
        xv = yv = None
        if val_images is not None:
            xv = self._features(val_images, dtype, dev, round_fmt)
            yv = as_labels(val_labels, xv.shape[0], num_classes, "validation").to(dev)
        # TF32 matmul inputs: rounded explicitly on CPU, by the tensor cores on CUDA.
        mround = (lambda t: numfmt.round_to(t, "tf32")) if emulated else None
        zdtype = torch.float64 if dtype == torch.float64 else torch.float32
        return _Run(model=model, params=params, masters=None, x=x, y=y, xv=xv, yv=yv,
                    dtype=dtype, dev=dev, fast=fast, mround=mround,
                    scaler=DynamicLossScaler() if prec.loss_scale == "dynamic" else None,
                    static_scale=prec.loss_scale if isinstance(prec.loss_scale, float) else None,
                    zbuf=torch.empty(x.shape[0], num_classes, device=dev, dtype=zdtype),
                    gen=torch.Generator().manual_seed(cfg.seed))

    @staticmethod
    def _check_features(model: nn.Module, images: torch.Tensor | None, what: str) -> None:
        if images is not None and not isinstance(images, torch.Tensor):
            raise TypeError(f"{what} images must be a torch.Tensor, not {type(images).__name__}")
        in_features = getattr(model, "in_features", None)
        if images is not None and in_features is not None and (
                images.dim() < 2 or images[0].numel() != in_features):
            raise ValueError(f"{what} inputs have shape {tuple(images.shape)}: the model "
                             f"expected {in_features} features per sample")

    def _cast_parameters(self, params: list[torch.Tensor], dtype: torch.dtype,
                         dev: torch.device) -> list[torch.Tensor] | None:
        """Move the parameters into the training format; the FP32 masters, if any."""
        prec = self.config.precision
        with torch.no_grad():
            for p in params:
                p.data = p.data.to(device=dev, dtype=dtype)
                if prec.format == "tf32" and not prec.master_weights:
                    p.data = numfmt.round_to(p.data, "tf32")
            if prec.master_weights:
                return [p.detach().to(torch.float32).clone() for p in params]
        return None

    def _epoch(self, run: _Run, epoch: int) -> EpochStats:
        """One pass over a fresh seeded permutation; the epoch's figures."""
        cfg = self.config
        t0 = time.perf_counter()
        lr = lr_at_epoch(cfg, epoch)
        n, bs = run.x.shape[0], cfg.batch_size
        perm = torch.randperm(n, generator=run.gen).to(run.dev)
        counts = torch.zeros(3, dtype=torch.int64, device=run.dev)  # stalled, moved, overflow
        for start in range(0, n, bs):
            idx = perm[start:start + bs]
            self._step(run, run.x.index_select(0, idx), run.y.index_select(0, idx), lr, start,
                       counts)
        yp = run.y.index_select(0, perm)
        z = run.zbuf
        train_loss = (torch.logsumexp(z, 1) - z.gather(1, yp[:, None])[:, 0]).sum().item() / n
        train_acc = (z.argmax(1) == yp).sum().item() / n
        val_loss = val_acc = None
        if run.xv is not None:
            val_loss, val_acc = self._score(run)
        stalled, moved, overflow = counts.tolist()
        return EpochStats(
            epoch=epoch + 1, lr=lr, train_loss=train_loss, train_accuracy=train_acc,
            val_loss=val_loss, val_accuracy=val_acc, seconds=time.perf_counter() - t0,
            stalled_update_share=stalled / max(moved, 1) if cfg.precision.reduced else None,
            overflow_steps=overflow,
            loss_scale=run.scaler.scale if run.scaler else run.static_scale)

    def _step(self, run: _Run, xb: torch.Tensor, yb: torch.Tensor, lr: float, start: int,
              counts: torch.Tensor) -> None:
        """One minibatch: logits and gradients, the overflow check, the update."""
        prec = self.config.precision
        scaler, static = run.scaler, run.static_scale
        scale = scaler.scale if scaler else (static or 1.0)
        if run.fast:
            z, grads = run.model.logits_and_gradients(xb, yb, scale=scale,
                                                      matmul_round=run.mround)
        else:
            z, grads = self._autograd_grads(run.model, run.params, xb, yb, scale)
        # Logits are kept (one small copy) and scored once per epoch: cheaper than a logsumexp
        # and an argmax per step, and the same running figures.
        run.zbuf[start:start + xb.shape[0]].copy_(z)
        if scaler is not None or static is not None or prec.reduced:
            finite = torch.stack([torch.isfinite(g).all() for g in grads]).all()
            counts[2] += ~finite
            if (scaler is not None or static is not None) and not finite:
                if scaler:
                    scaler.update(False)
                return  # skip the step: the scaled gradient overflowed
            if scaler:
                scaler.update(True)
        self._update(run, grads, lr, scale, counts)

    def _update(self, run: _Run, grads: tuple[torch.Tensor, ...], lr: float, scale: float,
                counts: torch.Tensor) -> None:
        """SGD on each parameter (through the master copy if there is one); stalls counted."""
        prec, wd = self.config.precision, self.config.weight_decay
        track = prec.reduced
        for i, (p, g) in enumerate(zip(run.params, grads)):
            target = run.masters[i] if run.masters is not None else p
            if run.masters is not None:
                g = g.to(torch.float32)
            if scale != 1.0:
                g = g / scale
            if wd:
                g = g + wd * target
            before = target.clone() if track else None
            if run.masters is not None:
                target.add_(g, alpha=-lr)
                # one correctly rounded cast into the format
                p.copy_(numfmt.round_to(target, "tf32") if prec.format == "tf32" else target)
            elif prec.format == "tf32":
                # computed in float64 and rounded once into TF32
                p.copy_(numfmt.round_to(p.double() - lr * g.double(), "tf32"))
            else:
                p.add_(g, alpha=-lr)
            if track:
                nz = g != 0
                counts[1] += nz.sum()
                counts[0] += (nz & (target == before)).sum()

    @staticmethod
    def _finite(run: _Run, rec: EpochStats) -> bool:
        """Whether the epoch ended with a finite loss and finite weights (else: diverged)."""
        weights_ok = all(bool(torch.isfinite(p).all()) for p in run.params)
        return math.isfinite(rec.train_loss) and weights_ok and (
            rec.val_loss is None or math.isfinite(rec.val_loss))

    def _track_best(self, run: _Run, best: _Best, rec: EpochStats) -> bool:
        """Update the best epoch; True when early stopping says stop."""
        cfg = self.config
        if run.xv is None:
            value = rec.train_loss
        else:
            value = rec.val_loss if (cfg.early_stopping or "val_loss") == "val_loss" \
                else -rec.val_accuracy
        if best.value is None or value < best.value:
            best.value, best.epoch, best.waited = value, rec.epoch, 0
            if cfg.early_stopping:
                best.state = ([p.detach().clone() for p in run.params],
                              None if run.masters is None else [m.clone() for m in run.masters])
            return False
        best.waited += 1
        return bool(cfg.early_stopping) and best.waited >= cfg.patience

    def _restore_best(self, run: _Run, best: _Best, epochs_run: int, diverged: bool) -> bool:
        """With early stopping, put the best epoch's weights back; whether that happened."""
        if not (self.config.early_stopping and best.state is not None and (
                best.epoch != epochs_run or diverged)):
            return False
        for p, s in zip(run.params, best.state[0]):
            p.copy_(s)
        if run.masters is not None:
            for m, s in zip(run.masters, best.state[1]):
                m.copy_(s)
        return True

    @staticmethod
    def _features(images: torch.Tensor, dtype: torch.dtype, dev: torch.device,
                  round_fmt: str | None) -> torch.Tensor:
        x = images_to_float(images, torch.float64 if dtype == torch.float64 else torch.float32)
        if round_fmt is not None:
            x = numfmt.round_to(x, round_fmt)
        return x.to(dtype).to(dev).contiguous()

    @staticmethod
    def _autograd_grads(model: nn.Module, params: list[torch.Tensor], xb: torch.Tensor,
                        yb: torch.Tensor, scale: float,
                        ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        with torch.enable_grad():
            z = model(xb)
            loss = F.cross_entropy(z, yb) * scale
            grads = torch.autograd.grad(loss, params)
        return z.detach(), grads

    @staticmethod
    def _score(run: _Run) -> tuple[float, float]:
        """Validation loss and accuracy of the current weights (logits in the format)."""
        if run.fast:
            w, b = run.model.linear.weight, run.model.linear.bias
            z = torch.mm(run.mround(w) if run.mround else w, run.xv.T).T + b
        else:
            z = run.model(run.xv)
        zf = z.double()
        loss = (torch.logsumexp(zf, 1) - zf.gather(1, run.yv[:, None])[:, 0]).mean().item()
        acc = (zf.argmax(1) == run.yv).double().mean().item()
        return loss, acc


def train(split: Split, config: TrainConfig = TrainConfig(), *, progress: bool = False,
          use_validation: bool = True) -> tuple[SoftmaxRegression, History]:
    """Train a fresh `SoftmaxRegression` on ``split``'s training set under ``config``.

    Parameters
    ----------
    split : Split
        Training and validation sets are used; the test set is not touched.
    config : TrainConfig
    progress : bool
        One line per epoch on stderr.
    use_validation : bool
        Validate on ``split``'s validation set after every epoch.

    Returns
    -------
    model : SoftmaxRegression
        FP64 parameters for an FP64 run, FP32 otherwise.
    history : History

    Examples
    --------
    >>> model, hist = train(load_split(), TrainConfig(epochs=2))  # doctest: +SKIP
    """
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, not {type(config).__name__}")
    dtype = torch.float64 if config.precision.format == "fp64" else torch.float32
    model = SoftmaxRegression(dtype=dtype)
    trainer = Trainer(config, progress=progress)
    if use_validation:
        return model, trainer.fit(model, split.train_images, split.train_labels,
                                  split.val_images, split.val_labels)
    return model, trainer.fit(model, split.train_images, split.train_labels)
