"""What a training run is asked to do: its number format (`Precision`) and hyperparameters.

`Precision` says how the numbers of a run are held and computed:

* ``format``: the format of the weights and of the arithmetic -- fp64, fp32, bf16, fp16 (torch
  dtypes: each op rounds its result, as the format's own arithmetic does), or tf32, emulated on
  CPU by rounding both operands of every matrix product to TF32 (products are then exact and
  accumulate in FP32, like tensor cores) and real on CUDA (torch's TF32 switch,
  ``torch.set_float32_matmul_precision('high')``), everything else in FP32.
* ``master_weights``: keep an FP32 master copy that receives the updates; the format's copy is
  re-rounded from it after every step. Without it the update ``w - lr * g`` is computed and
  rounded in the format itself, and updates smaller than half a unit in the last place of the
  weight are lost ("stalled").
* ``loss_scale``: multiply the loss (so every gradient) by S before the backward pass and divide
  it out in the update; ``"dynamic"`` starts at 2**16, halves and skips the step when a gradient
  overflows, and doubles after 2000 clean steps (torch.amp's defaults).

`RECIPES` is the table of the precisions the format sweep trains, keyed by their labels;
`TrainConfig` holds one run's hyperparameters and is validated when it is built.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Literal

import numpy as np
import numfmt
import torch

__all__ = ["Precision", "RECIPES", "TRAINABLE_FORMATS", "TrainConfig", "lr_at_epoch",
           "with_precision", "as_precision", "canonical_device"]

TRAINABLE_FORMATS: tuple[str, ...] = ("fp64", "fp32", "tf32", "bf16", "fp16")
Schedule = Literal["constant", "cosine", "step"]
Monitor = Literal["val_loss", "val_accuracy"]
_DEVICE_TYPES = ("cpu", "cuda")


def _format_name(spec: Any) -> str:
    """The canonical name of a training format given as a name, a dtype or a `numfmt.Format`."""
    if isinstance(spec, bool) or not isinstance(
            spec, (str, torch.dtype, np.dtype, numfmt.Format, type)):
        raise TypeError(f"a training format is a format name, a torch dtype or a numfmt.Format, "
                        f"not {type(spec).__name__} {spec!r}")
    name = numfmt.get(spec).name
    if name not in TRAINABLE_FORMATS:
        raise ValueError(f"cannot train in {name}: training formats are "
                         f"{', '.join(TRAINABLE_FORMATS)} (evaluate supports every format)")
    return name


@dataclass(frozen=True)
class Precision:
    """How the numbers of a training run are held and computed (see the module docstring).

    Parameters
    ----------
    format : str, torch.dtype or numfmt.Format
        One of `TRAINABLE_FORMATS`, in any spelling `numfmt.get` accepts (``" FP16"``,
        ``torch.float16``, ``numfmt.get("bf16")``); stored as the canonical name.
    master_weights : bool
        Keep an FP32 master copy (only for formats narrower than FP32).
    loss_scale : None, positive power of two, or ``"dynamic"``
        Static scales must be powers of two so that scaling is exact.

    Raises
    ------
    TypeError
        For a format that is not a name, a dtype or a Format.
    ValueError
        For a format that cannot be trained in, master weights on fp32/fp64, or a bad scale.

    Examples
    --------
    >>> Precision(torch.float16, master_weights=True).label
    'fp16+master'
    """

    format: str = "fp32"
    master_weights: bool = False
    loss_scale: float | Literal["dynamic"] | None = None

    def __post_init__(self) -> None:
        name = _format_name(self.format)
        object.__setattr__(self, "format", name)
        if not isinstance(self.master_weights, bool):
            raise TypeError(f"master_weights must be a bool, not {self.master_weights!r}")
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


def as_precision(spec: Any) -> Precision:
    """A `Precision` from itself, a `RECIPES` label, or a training format (name, dtype, Format).

    Raises
    ------
    TypeError, ValueError
        As `Precision` does for anything else.
    """
    if isinstance(spec, Precision):
        return spec
    if isinstance(spec, str) and spec.strip() in RECIPES:
        return RECIPES[spec.strip()]
    return Precision(spec)


def canonical_device(device: Any) -> str:
    """``device`` (a string or ``torch.device``) as torch spells it, checked to be cpu or cuda.

    Raises
    ------
    ValueError
        For a string torch does not parse as a device, or a device type other than cpu/cuda.
        (Whether CUDA is available is checked when training starts.)
    """
    if isinstance(device, torch.device):
        dev = device
    elif isinstance(device, str):
        try:
            dev = torch.device(device.strip())
        except RuntimeError:
            raise ValueError(f"unknown device {device!r}: use cpu or cuda (cuda:N)") from None
    else:
        raise TypeError(f"device must be a string or torch.device, not {device!r}")
    if dev.type not in _DEVICE_TYPES:
        raise ValueError(f"device {device!r}: this trainer runs on cpu or cuda, not {dev.type}")
    return str(dev)


def _positive_int(name: str, v: Any) -> None:
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ValueError(f"{name} must be a positive int, not {v!r}")


def _finite_number(name: str, v: Any, *, positive: bool) -> None:
    ok = not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v) and (
        v > 0 if positive else v >= 0)
    if not ok:
        raise ValueError(f"{name} must be a {'positive' if positive else 'non-negative'} "
                         f"finite number, not {v!r}")


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of one run, validated at construction.

    Parameters
    ----------
    epochs, batch_size, patience : int
        Positive ints.
    lr : float
        Base rate of plain SGD (no momentum), positive and finite.
    weight_decay : float
        Adds ``weight_decay * w`` to the gradient of W and b; finite, >= 0.
    schedule : {"constant", "cosine", "step"}
        How the rate changes per epoch (`lr_at_epoch`).
    early_stopping : {None, "val_loss", "val_accuracy"}
        Stop after ``patience`` epochs without a strictly better monitored value and restore
        the best weights.
    seed : int
        Seed of the per-epoch shuffles.
    precision : Precision, str, torch.dtype or numfmt.Format
        Converted with `as_precision` (a recipe label or a training format).
    device : str or torch.device
        ``"cpu"`` or ``"cuda[:N]"`` (checked by `canonical_device`, stored as torch spells it).
    num_threads : int or None
        Torch's CPU threads during the run (None: leave as is). 1 is fastest for these
        ~2-MFLOP steps, and spinning OpenMP threads collapse on a busy machine.

    Raises
    ------
    ValueError, TypeError
        Naming the first field that is out of range or of the wrong type.
    """

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
        for n in ("epochs", "batch_size", "patience"):
            _positive_int(n, getattr(self, n))
        if self.num_threads is not None:
            _positive_int("num_threads", self.num_threads)
        _finite_number("lr", self.lr, positive=True)
        _finite_number("weight_decay", self.weight_decay, positive=False)
        if self.schedule not in ("constant", "cosine", "step"):
            raise ValueError(f"schedule must be 'constant', 'cosine' or 'step', not "
                             f"{self.schedule!r}")
        if self.early_stopping not in (None, "val_loss", "val_accuracy"):
            raise ValueError(f"early_stopping must be None, 'val_loss' or 'val_accuracy', not "
                             f"{self.early_stopping!r}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise ValueError(f"seed must be an int, not {self.seed!r}")
        object.__setattr__(self, "precision", as_precision(self.precision))
        object.__setattr__(self, "device", canonical_device(self.device))

    def to_dict(self) -> dict[str, Any]:
        """The fields as plain JSON-ready data (``precision`` as a dict)."""
        d = asdict(self)
        d["precision"] = asdict(self.precision)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        """Inverse of `to_dict`; unknown fields are refused (``ValueError``)."""
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown TrainConfig fields: {sorted(unknown)}")
        d = dict(d)
        if isinstance(d.get("precision"), dict):
            d["precision"] = Precision(**d["precision"])
        return cls(**d)


def lr_at_epoch(config: TrainConfig, epoch: int) -> float:
    """Learning rate used during 0-based ``epoch`` (E = ``config.epochs``).

    Notes
    -----
    constant: lr. cosine: ``lr * (1 + cos(pi * epoch / E)) / 2``, from lr down to
    ``lr * (1 + cos(pi * (E-1) / E)) / 2`` at the last epoch. step: x0.1 from epoch ceil(E/2)
    and x0.01 from epoch ceil(3E/4).
    """
    e, n = epoch, config.epochs
    if config.schedule == "cosine":
        return config.lr * 0.5 * (1.0 + math.cos(math.pi * e / n))
    if config.schedule == "step":
        return config.lr * (0.1 if e >= math.ceil(n / 2) else 1.0) * (
            0.1 if e >= math.ceil(3 * n / 4) else 1.0)
    return config.lr


def with_precision(config: TrainConfig, precision: Any) -> TrainConfig:
    """``config`` with another precision (a `Precision`, a `RECIPES` label or a format)."""
    return replace(config, precision=as_precision(precision))
