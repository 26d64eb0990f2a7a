"""Minibatch SGD for softmax regression, fast, seeded, and in a chosen number format.

The trainer keeps the whole training set in memory as one tensor in the training format, draws
one seeded permutation per epoch and slices minibatches from it; the softmax-regression gradient
is closed-form (`SoftmaxRegression.gradients`), so a step is two small matrix products and a
softmax, with no autograd graph and no optimizer object. Any other ``nn.Module`` is trained
with autograd in plain torch dtypes.

Formats (`Precision`):

* ``format``: the format of the weights and of the arithmetic -- fp64, fp32, bf16, fp16 (torch
  dtypes: each op rounds its result, as the format's own arithmetic does), or tf32, emulated on
  CPU by rounding both operands of every matrix product to TF32 (products are then exact and
  accumulate in FP32, like tensor cores) and real on CUDA (torch's TF32 switch,
  ``torch.set_float32_matmul_precision('high')``), everything else in FP32.
* ``master_weights``: keep an FP32 master copy that receives the updates; the format's copy is
  re-rounded from it after every step. Without it the update ``w - lr * g`` is computed and
  rounded in the format itself, and updates smaller than half a unit in the last place of the
  weight are lost ("stalled"): `EpochStats.stalled_update_share` counts them.
* ``loss_scale``: multiply the loss (so every gradient) by S before the backward pass and divide
  it out in the update; ``"dynamic"`` starts at 2**16, halves and skips the step when a gradient
  overflows, and doubles after 2000 clean steps (torch.amp's defaults).
  `EpochStats.overflow_steps` counts steps whose gradients held inf/NaN, with or without a
  scaler: without one, such a step poisons the weights and the run is reported as diverged.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Callable, Iterator, Literal

import numfmt
import torch
import torch.nn.functional as F
from torch import nn

from models.data import Split, images_to_float
from models.softmax_regression import SoftmaxRegression

__all__ = [
    "Precision", "RECIPES", "TRAINABLE_FORMATS", "TrainConfig", "EpochStats", "History",
    "Trainer", "train", "lr_at_epoch",
]

TRAINABLE_FORMATS: tuple[str, ...] = ("fp64", "fp32", "tf32", "bf16", "fp16")
Schedule = Literal["constant", "cosine", "step"]
Monitor = Literal["val_loss", "val_accuracy"]


# ---- configuration -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Precision:
    """How the numbers of a training run are held and computed (see the module docstring).

    ``format`` accepts anything `numfmt.get` does and is stored as the canonical name.
    ``loss_scale``: None (no scaling), a positive power of two (static), or ``"dynamic"``.
    """

    format: str = "fp32"
    master_weights: bool = False
    loss_scale: float | Literal["dynamic"] | None = None

    def __post_init__(self) -> None:
        name = numfmt.get(self.format).name
        if name not in TRAINABLE_FORMATS:
            raise ValueError(f"cannot train in {name}: training formats are "
                             f"{', '.join(TRAINABLE_FORMATS)} (evaluate supports every format)")
        object.__setattr__(self, "format", name)
        if self.master_weights and name in ("fp32", "fp64"):
            raise ValueError(f"FP32 master weights only make sense for a format narrower than "
                             f"FP32, not {name}")
        ls = self.loss_scale
        if ls is not None and ls != "dynamic":
            if isinstance(ls, bool) or not isinstance(ls, (int, float)) or not (
                    math.isfinite(ls) and ls > 0):
                raise ValueError(f"loss_scale must be None, 'dynamic' or a positive finite "
                                 f"number, not {ls!r}")
            if math.frexp(ls)[0] != 0.5:
                raise ValueError(f"a static loss_scale must be a power of two (so scaling is "
                                 f"exact), not {ls!r}")
            object.__setattr__(self, "loss_scale", float(ls))

    @property
    def label(self) -> str:
        """e.g. 'fp32', 'bf16+master', 'fp16+master+dynamic-scale', 'fp16+scale-1024'."""
        s = self.format + ("+master" if self.master_weights else "")
        if self.loss_scale == "dynamic":
            s += "+dynamic-scale"
        elif self.loss_scale is not None:
            s += f"+scale-{self.loss_scale:g}"
        return s

    @property
    def reduced(self) -> bool:
        """Narrower than FP32: the runs where stalls and overflows are tracked."""
        return self.format not in ("fp32", "fp64")


RECIPES: dict[str, Precision] = {p.label: p for p in (
    Precision("fp64"),
    Precision("fp32"),
    Precision("tf32", master_weights=True),  # how GPUs run TF32: FP32 weights, TF32 matmuls
    Precision("tf32"),  # weights rounded to TF32 after every step as well
    Precision("bf16"),
    Precision("bf16", master_weights=True),
    Precision("fp16"),
    Precision("fp16", master_weights=True),
    Precision("fp16", loss_scale="dynamic"),  # scaled gradients can overflow FP16 weights' math
    Precision("fp16", master_weights=True, loss_scale="dynamic"),  # torch.amp's recipe
)}


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of one run. ``lr`` is the base rate of plain SGD (no momentum);
    ``weight_decay`` adds ``weight_decay * w`` to the gradient of W and b; ``schedule`` changes
    the rate per epoch (`lr_at_epoch`); ``early_stopping`` stops after ``patience`` epochs
    without a strictly better monitored value and restores the best weights; ``num_threads``
    sets torch's CPU threads during the run (None: leave as is; 1 is fastest for these
    ~2-MFLOP steps, and spinning OpenMP threads collapse on a busy machine)."""

    epochs: int = 20
    lr: float = 0.1
    batch_size: int = 256
    weight_decay: float = 0.0
    schedule: Schedule = "constant"
    early_stopping: Monitor | None = None
    patience: int = 5
    seed: int = 0
    precision: Precision = field(default_factory=Precision)
    device: str = "cpu"
    num_threads: int | None = 1

    def __post_init__(self) -> None:
        def positive_int(name: str) -> None:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive int, not {v!r}")

        for n in ("epochs", "batch_size", "patience"):
            positive_int(n)
        if self.num_threads is not None:
            positive_int("num_threads")
        if isinstance(self.lr, bool) or not (isinstance(self.lr, (int, float))
                                             and math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a positive finite number, not {self.lr!r}")
        if not (isinstance(self.weight_decay, (int, float)) and math.isfinite(self.weight_decay)
                and self.weight_decay >= 0):
            raise ValueError(f"weight_decay must be a finite number >= 0, not "
                             f"{self.weight_decay!r}")
        if self.schedule not in ("constant", "cosine", "step"):
            raise ValueError(f"schedule must be 'constant', 'cosine' or 'step', not "
                             f"{self.schedule!r}")
        if self.early_stopping not in (None, "val_loss", "val_accuracy"):
            raise ValueError(f"early_stopping must be None, 'val_loss' or 'val_accuracy', not "
                             f"{self.early_stopping!r}")
        if isinstance(self.precision, str):
            object.__setattr__(self, "precision", Precision(self.precision))
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise ValueError(f"seed must be an int, not {self.seed!r}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["precision"] = asdict(self.precision)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown TrainConfig fields: {sorted(unknown)}")
        d = dict(d)
        if isinstance(d.get("precision"), dict):
            d["precision"] = Precision(**d["precision"])
        return cls(**d)


def lr_at_epoch(config: TrainConfig, epoch: int) -> float:
    """Learning rate used during 0-based ``epoch``: constant; cosine from lr down to
    lr*(1+cos(pi*(E-1)/E))/2 at the last epoch; or step: x0.1 from epoch ceil(E/2) and x0.01
    from epoch ceil(3E/4) (0-based, E = config.epochs)."""
    e, n = epoch, config.epochs
    if config.schedule == "cosine":
        return config.lr * 0.5 * (1.0 + math.cos(math.pi * e / n))
    if config.schedule == "step":
        return config.lr * (0.1 if e >= math.ceil(n / 2) else 1.0) * (
            0.1 if e >= math.ceil(3 * n / 4) else 1.0)
    return config.lr


# ---- results -----------------------------------------------------------------------------------
def _finite_or_none(v: float | None) -> float | None:
    return v if v is None or math.isfinite(v) else None


@dataclass(frozen=True)
class EpochStats:
    """One epoch. ``train_loss``/``train_accuracy``: mean cross-entropy and accuracy of the
    minibatches during the epoch, each measured before its own update (the usual running
    figure). ``val_*``: on the validation set after the epoch, computed in the training format.
    ``stalled_update_share``: of the weight elements with a nonzero gradient, the share whose
    stored value did not change (None where not tracked: fp32/fp64).
    ``overflow_steps``: steps whose gradients held inf/NaN. ``loss_scale``: at the epoch's end."""

    epoch: int
    lr: float
    train_loss: float
    train_accuracy: float
    val_loss: float | None
    val_accuracy: float | None
    seconds: float
    stalled_update_share: float | None = None
    overflow_steps: int = 0
    loss_scale: float | None = None


@dataclass(frozen=True)
class History:
    """Per-epoch record of a run plus how it ended. ``best_epoch`` (1-based) is the epoch with
    the best monitored value (validation loss unless early stopping monitors accuracy; training
    loss without validation data), whether or not early stopping was on."""

    config: dict[str, Any]
    label: str
    epochs: tuple[EpochStats, ...]
    best_epoch: int | None
    stopped_early: bool
    restored_best: bool
    diverged: bool
    seconds: float

    def column(self, name: str) -> list[float | None]:
        """One `EpochStats` field across the epochs."""
        return [getattr(e, name) for e in self.epochs]

    @property
    def final(self) -> EpochStats:
        return self.epochs[-1]

    @property
    def best(self) -> EpochStats | None:
        return None if self.best_epoch is None else self.epochs[self.best_epoch - 1]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (non-finite numbers become None, as JSON has no NaN/inf)."""
        d = asdict(self)
        d["epochs"] = [{k: (_finite_or_none(v) if isinstance(v, float) else v)
                        for k, v in asdict(e).items()} for e in self.epochs]
        return d

    def save_json(self, path: str | os.PathLike) -> None:
        with open(path, "w") as f:
            json.dump(self.to_dict(), f, indent=1)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "History":
        d = dict(d)
        d["epochs"] = tuple(EpochStats(**{k: (float("nan") if v is None and k in (
            "train_loss", "train_accuracy") else v) for k, v in e.items()}) for e in d["epochs"])
        return cls(**d)

    @classmethod
    def load_json(cls, path: str | os.PathLike) -> "History":
        with open(path) as f:
            return cls.from_dict(json.load(f))


# ---- machinery ---------------------------------------------------------------------------------
class _DynamicScaler:
    """Loss scale that halves on overflow and doubles after ``interval`` clean steps."""

    def __init__(self, init: float = 2.0**16, interval: int = 2000):
        self.scale, self.interval, self.clean = init, interval, 0

    def update(self, finite: bool) -> None:
        if finite:
            self.clean += 1
            if self.clean >= self.interval:
                self.scale, self.clean = self.scale * 2.0, 0
        else:
            self.scale, self.clean = max(self.scale / 2.0, 1.0), 0


@contextlib.contextmanager
def _torch_settings(num_threads: int | None, tf32: bool) -> Iterator[None]:
    old_threads = torch.get_num_threads()
    old_prec = torch.get_float32_matmul_precision()
    try:
        if num_threads is not None:
            torch.set_num_threads(num_threads)
        torch.set_float32_matmul_precision("high" if tf32 else "highest")
        yield
    finally:
        torch.set_num_threads(old_threads)
        torch.set_float32_matmul_precision(old_prec)


def _resolve_device(device: str) -> torch.device:
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise ValueError(f"unknown device {device!r}: {exc}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} requested but torch.cuda.is_available() is False "
                           "(no GPU or no CUDA build); use --device cpu")
    return dev


def _check_labels(labels: torch.Tensor, n: int, what: str, num_classes: int) -> torch.Tensor:
    if labels.dim() != 1 or labels.shape[0] != n:
        raise ValueError(f"{what} labels must have shape ({n},), got {tuple(labels.shape)}")
    if labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise TypeError(f"{what} labels must be integers, not {labels.dtype}")
    if n and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"{what} labels must lie in 0..{num_classes - 1}")
    return labels.to(torch.int64)


class Trainer:
    """Trains a model in place with minibatch SGD under ``config`` (see `TrainConfig`).

    ``progress``: print one line per epoch on stderr.
    """

    def __init__(self, config: TrainConfig, *, progress: bool = False):
        self.config = config
        self.progress = progress

    # -- public --
    def fit(self, model: nn.Module, train_images: torch.Tensor, train_labels: torch.Tensor,
            val_images: torch.Tensor | None = None,
            val_labels: torch.Tensor | None = None) -> History:
        """Train ``model`` in place and return the `History`.

        Images: uint8 (N, 28, 28) pixels (scaled to [0, 1]) or float (N, ...) features.
        Labels: int (N,) in 0..C-1. The model's parameters keep their dtype: at the end they
        hold the trained values (the FP32 master copy where there is one, otherwise the
        format's values, converted exactly or rounded to the model's dtype). On divergence
        (non-finite loss or weights) training stops and the history says so; with early
        stopping the best weights are restored, including after divergence.
        """
        cfg = self.config
        prec = cfg.precision
        dev = _resolve_device(cfg.device)
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
        fmt = numfmt.get(prec.format)
        dtype = fmt.torch_dtype or torch.float32  # TF32 lives in FP32 containers

        in_features = getattr(model, "in_features", None)
        for imgs, what in ((train_images, "training"), (val_images, "validation")):
            if imgs is not None and in_features is not None and (
                    imgs.dim() < 2 or imgs[0].numel() != in_features):
                raise ValueError(f"{what} inputs have shape {tuple(imgs.shape)}: the model "
                                 f"expected {in_features} features per sample")
        x = self._features(train_images, dtype, dev, prec.format if prec.format == "tf32" else None)
        if x.shape[0] == 0:
            raise ValueError("no training samples")
        num_classes = getattr(model, "num_classes", None)
        if num_classes is None:
            with torch.no_grad():  # probe a copy: the model is not touched before training
                num_classes = copy.deepcopy(model).to(device=dev, dtype=dtype)(x[:1]).shape[1]
        y = _check_labels(train_labels, x.shape[0], "training", num_classes).to(dev)
        if val_images is not None:
            xv = self._features(val_images, dtype, dev,
                                prec.format if prec.format == "tf32" else None)
            yv = _check_labels(val_labels, xv.shape[0], "validation", num_classes).to(dev)
        else:
            xv = yv = None

        orig = [(p.dtype, p.device) for p in params]
        masters: list[torch.Tensor] | None = None
        with torch.no_grad():
            for p in params:
                p.data = p.data.to(device=dev, dtype=dtype)
                if prec.format == "tf32" and not prec.master_weights:
                    p.data = numfmt.round_to(p.data, "tf32")
            if prec.master_weights:
                masters = [p.detach().to(torch.float32).clone() for p in params]
        # TF32 matmul inputs: rounded explicitly on CPU, by the tensor cores on CUDA.
        mround: Callable | None = (lambda t: numfmt.round_to(t, "tf32")) if emulated else None

        scaler = _DynamicScaler() if prec.loss_scale == "dynamic" else None
        static_scale = prec.loss_scale if isinstance(prec.loss_scale, float) else None
        gen = torch.Generator().manual_seed(cfg.seed)
        n, bs = x.shape[0], cfg.batch_size
        monitor = cfg.early_stopping or "val_loss"
        best_val, best_epoch, best_state, waited = None, None, None, 0
        records: list[EpochStats] = []
        stopped_early = diverged = False
        t_start = time.perf_counter()
        zbuf = torch.empty(n, num_classes, device=dev,
                           dtype=torch.float64 if dtype == torch.float64 else torch.float32)

        restored = False
        try:
            real_tf32 = prec.format == "tf32" and dev.type == "cuda"
            with _torch_settings(cfg.num_threads if dev.type == "cpu" else None,
                                 tf32=real_tf32), torch.no_grad():
                for epoch in range(cfg.epochs):
                    t0 = time.perf_counter()
                    lr = lr_at_epoch(cfg, epoch)
                    perm = torch.randperm(n, generator=gen).to(dev)
                    stalled = torch.zeros((), dtype=torch.int64, device=dev)
                    moved = torch.zeros((), dtype=torch.int64, device=dev)
                    overflow = torch.zeros((), dtype=torch.int64, device=dev)
                    track = prec.reduced
                    for start in range(0, n, bs):
                        idx = perm[start:start + bs]
                        xb, yb = x.index_select(0, idx), y.index_select(0, idx)
                        scale = scaler.scale if scaler else (static_scale or 1.0)
                        if fast:
                            z, grads = model.logits_and_gradients(xb, yb, scale=scale,
                                                                  matmul_round=mround)
                        else:
                            z, grads = self._autograd_grads(model, params, xb, yb, scale)
                        # Logits are kept (one small copy) and scored once per epoch: cheaper than
                        # a logsumexp and an argmax per step, and the same running figures.
                        zbuf[start:start + bs].copy_(z)
                        if scaler is not None or static_scale is not None or track:
                            finite = torch.stack([torch.isfinite(g).all() for g in grads]).all()
                            overflow += ~finite
                            if (scaler is not None or static_scale is not None) and not finite:
                                if scaler:
                                    scaler.update(False)
                                continue  # skip the step: the scaled gradient overflowed
                            if scaler:
                                scaler.update(True)
                        self._update(params, masters, grads, lr, cfg.weight_decay, scale, dtype,
                                     prec, track, stalled, moved)
                    yp = y.index_select(0, perm)
                    steps_loss = (torch.logsumexp(zbuf, 1) - zbuf.gather(1, yp[:, None])[:, 0]
                                  ).sum().item() / n
                    train_acc = (zbuf.argmax(1) == yp).sum().item() / n
                    weights_ok = all(bool(torch.isfinite(p).all()) for p in params)
                    val_loss = val_acc = None
                    if xv is not None:
                        val_loss, val_acc = self._score(model, xv, yv, fast, mround)
                    rec = EpochStats(
                        epoch=epoch + 1, lr=lr, train_loss=steps_loss, train_accuracy=train_acc,
                        val_loss=val_loss, val_accuracy=val_acc, seconds=time.perf_counter() - t0,
                        stalled_update_share=(stalled.item() / max(moved.item(), 1)
                                              if track else None),
                        overflow_steps=int(overflow.item()),
                        loss_scale=scaler.scale if scaler else static_scale)
                    records.append(rec)
                    if self.progress:
                        self._print(prec.label, rec)
                    if not (math.isfinite(steps_loss) and weights_ok) or (
                            val_loss is not None and not math.isfinite(val_loss)):
                        diverged = True
                        break
                    value = (val_loss if monitor == "val_loss" else -val_acc) if xv is not None \
                        else steps_loss
                    if best_val is None or value < best_val:
                        best_val, best_epoch, waited = value, epoch + 1, 0
                        if cfg.early_stopping:
                            best_state = ([p.detach().clone() for p in params],
                                          None if masters is None else [m.clone() for m in masters])
                    else:
                        waited += 1
                        if cfg.early_stopping and waited >= cfg.patience:
                            stopped_early = True
                            break

                if cfg.early_stopping and best_state is not None and (
                        best_epoch != len(records) or diverged):
                    for p, s in zip(params, best_state[0]):
                        p.copy_(s)
                    if masters is not None:
                        for m, s in zip(masters, best_state[1]):
                            m.copy_(s)
                    restored = True
        finally:
            # The parameters go back to their own dtype and device even if training raised.
            with torch.no_grad():
                for i, p in enumerate(params):
                    value = masters[i] if masters is not None else p.data
                    p.data = value.to(device=orig[i][1], dtype=orig[i][0])

        return History(config=cfg.to_dict(), label=prec.label, epochs=tuple(records),
                       best_epoch=best_epoch, stopped_early=stopped_early, restored_best=restored,
                       diverged=diverged, seconds=time.perf_counter() - t_start)

    # -- steps --
    @staticmethod
    def _features(images: torch.Tensor, dtype: torch.dtype, dev: torch.device,
                  round_fmt: str | None) -> torch.Tensor:
        x = images_to_float(images, torch.float64 if dtype == torch.float64 else torch.float32)
        if round_fmt is not None:
            x = numfmt.round_to(x, round_fmt)
        return x.to(dtype).to(dev).contiguous()

    @staticmethod
    def _autograd_grads(model, params, xb, yb, scale):
        with torch.enable_grad():
            z = model(xb)
            loss = F.cross_entropy(z, yb) * scale
            grads = torch.autograd.grad(loss, params)
        return z.detach(), grads

    @staticmethod
    def _update(params, masters, grads, lr, wd, scale, dtype, prec, track, stalled, moved):
        for i, (p, g) in enumerate(zip(params, grads)):
            if masters is not None:
                m = masters[i]
                g = g.to(torch.float32)
                if scale != 1.0:
                    g = g / scale
                if wd:
                    g = g + wd * m
                before = m.clone() if track else None
                m.add_(g, alpha=-lr)
                target = m
                if prec.format == "tf32":
                    p.copy_(numfmt.round_to(m, "tf32"))
                else:
                    p.copy_(m)  # one correctly rounded cast into the format
            else:
                if scale != 1.0:
                    g = g / scale
                if wd:
                    g = g + wd * p
                before = p.clone() if track else None
                if prec.format == "tf32":
                    # computed in float64 and rounded once into TF32
                    p.copy_(numfmt.round_to(p.double() - lr * g.double(), "tf32"))
                else:
                    p.add_(g, alpha=-lr)
                target = p
            if track:
                nz = g != 0
                moved += nz.sum()
                stalled += (nz & (target == before)).sum()

    @staticmethod
    def _score(model, xv, yv, fast, mround) -> tuple[float, float]:
        if fast:
            w, b = model.linear.weight, model.linear.bias
            z = torch.mm(mround(w) if mround else w, xv.T).T + b
        else:
            z = model(xv)
        zf = z.double()
        loss = (torch.logsumexp(zf, 1) - zf.gather(1, yv[:, None])[:, 0]).mean().item()
        acc = (zf.argmax(1) == yv).double().mean().item()
        return loss, acc

    @staticmethod
    def _print(label: str, r: EpochStats) -> None:
        parts = [f"[{label}] epoch {r.epoch:3d}", f"lr {r.lr:.4g}",
                 f"train loss {r.train_loss:.4f}", f"acc {r.train_accuracy:.4f}"]
        if r.val_loss is not None:
            parts += [f"val loss {r.val_loss:.4f}", f"val acc {r.val_accuracy:.4f}"]
        if r.stalled_update_share is not None:
            parts.append(f"stalled {r.stalled_update_share:.1%}")
        if r.overflow_steps:
            parts.append(f"overflow steps {r.overflow_steps}")
        parts.append(f"{r.seconds:.2f}s")
        print("  ".join(parts), file=sys.stderr, flush=True)


def train(split: Split, config: TrainConfig = TrainConfig(), *, progress: bool = False,
          use_validation: bool = True) -> tuple[SoftmaxRegression, History]:
    """A fresh `SoftmaxRegression` (FP64 parameters for an FP64 run, FP32 otherwise) trained on
    ``split``'s training set under ``config``, validated on its validation set unless
    ``use_validation`` is False. The test set is not touched."""
    dtype = torch.float64 if config.precision.format == "fp64" else torch.float32
    model = SoftmaxRegression(dtype=dtype)
    trainer = Trainer(config, progress=progress)
    if use_validation:
        hist = trainer.fit(model, split.train_images, split.train_labels, split.val_images,
                           split.val_labels)
    else:
        hist = trainer.fit(model, split.train_images, split.train_labels)
    return model, hist


def with_precision(config: TrainConfig, precision: Precision | str) -> TrainConfig:
    """``config`` with another `Precision` (a `RECIPES` label or a format name also works)."""
    if isinstance(precision, str):
        precision = RECIPES.get(precision) or Precision(precision)
    return replace(config, precision=precision)
