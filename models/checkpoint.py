"""Saving, validating and reusing trained softmax-regression models.

A checkpoint is a ``torch.save`` file of plain data (loaded with ``weights_only=True``): the
weights, a SHA-256 of their bytes, the `TrainConfig`, the `History` and the fingerprint of the
data split it was trained on. Loading checks all of it and raises `CheckpointError` for a file
that is corrupt, truncated, from another program or version, holds non-finite or misshapen
weights, or was trained under another config or on other data -- it never hands back a model
that is not the one asked for. Writes are atomic (temporary file, then rename).

`load_or_train` is the entry point for reuse: the FP32 reference model, trained once with
`REFERENCE_CONFIG` and cached at a path (default `DEFAULT_CHECKPOINT`).
"""

from __future__ import annotations

import hashlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from models.data import Split, load_split
from models.softmax_regression import SoftmaxRegression
from models.config import TrainConfig
from models.history import History
from models.training import train

__all__ = ["CheckpointError", "Checkpoint", "REFERENCE_CONFIG", "DEFAULT_CHECKPOINT",
           "save_checkpoint", "load_checkpoint", "train_fp32_reference", "load_or_train"]

KIND = "numfmt-toolkit/softmax-regression"
VERSION = 1
DEFAULT_CHECKPOINT = Path("out") / "checkpoints" / "fp32_reference.pt"

# Tuned on the validation set (python -m models sweep-lr / sweep-epochs): plain SGD on [0, 1]
# pixels wants a large rate early and a small one late; cosine decay from 0.3 at batch 128
# gives the lowest validation loss of the settings tried, and early stopping keeps the best.
REFERENCE_CONFIG = TrainConfig(epochs=30, lr=0.3, batch_size=128, schedule="cosine",
                               early_stopping="val_loss", patience=10, seed=0)


class CheckpointError(ValueError):
    """A checkpoint file is corrupt, foreign, or does not match what was asked for."""


@dataclass(frozen=True)
class Checkpoint:
    """A validated checkpoint: the model (FP32 or FP64 parameters, on CPU) and its provenance."""

    model: SoftmaxRegression
    config: TrainConfig
    history: History
    split_fingerprint: str | None
    path: Path
    trained_now: bool = False


def _digest(state: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for k in sorted(state):
        t = state[k].detach().cpu().contiguous()
        h.update(k.encode())
        h.update(str(t.dtype).encode())
        h.update(repr(tuple(t.shape)).encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def save_checkpoint(path: str | os.PathLike, model: SoftmaxRegression, config: TrainConfig,
                    history: History, split_fingerprint: str | None = None) -> Path:
    """Write ``model`` and its provenance to ``path`` atomically (parents created)."""
    if not isinstance(model, SoftmaxRegression):
        raise TypeError(f"can only checkpoint a SoftmaxRegression, not {type(model).__name__}")
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    payload = {
        "kind": KIND, "version": VERSION,
        "in_features": model.in_features, "num_classes": model.num_classes,
        "state_dict": state, "sha256": _digest(state),
        "config": config.to_dict(), "history": history.to_dict(),
        "split_fingerprint": split_fingerprint, "torch_version": str(torch.__version__),
    }
    tmp = p.with_name(p.name + f".tmp{os.getpid()}")
    torch.save(payload, tmp)
    os.replace(tmp, p)
    return p


def _bad(path: Path, what: str) -> CheckpointError:
    return CheckpointError(f"checkpoint {path}: {what}. Delete it (or pass --retrain / "
                           f"retrain=True) to train a fresh one.")


def load_checkpoint(path: str | os.PathLike, *, expect_config: TrainConfig | None = None,
                    expect_split: str | None = None) -> Checkpoint:
    """Load and validate a checkpoint (see the module docstring).

    ``expect_config``/``expect_split``: if given, the checkpoint's config / split fingerprint
    must equal them. Raises FileNotFoundError for a missing file, `CheckpointError` otherwise.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"checkpoint {p}: no such file")
    try:
        payload = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # zip/pickle errors of every kind: the file is not usable
        # torch's own text is not relayed: it advises loading untrusted files with
        # weights_only=False or allow-listing their classes, which would run their code.
        raise _bad(p, f"is not a checkpoint of this project: it cannot be read as one "
                      f"(corrupt, truncated, or a file of another program; "
                      f"{type(exc).__name__} while reading)") from None
    if not isinstance(payload, dict) or payload.get("kind") != KIND:
        raise _bad(p, f"is not a {KIND} checkpoint")
    if payload.get("version") != VERSION:
        raise _bad(p, f"has version {payload.get('version')!r}, this code reads {VERSION}")
    try:
        n_in, n_out = int(payload["in_features"]), int(payload["num_classes"])
        state = payload["state_dict"]
        digest = payload["sha256"]
        config = TrainConfig.from_dict(payload["config"])
        history = History.from_dict(payload["history"])
    except (KeyError, TypeError, ValueError) as exc:
        raise _bad(p, f"has a malformed header ({type(exc).__name__}: {exc})") from None
    shapes = {"linear.weight": (n_out, n_in), "linear.bias": (n_out,)}
    if not isinstance(state, dict) or set(state) != set(shapes):
        raise _bad(p, f"holds parameters {sorted(state) if isinstance(state, dict) else state!r}, "
                      f"expected {sorted(shapes)}")
    for k, shape in shapes.items():
        t = state[k]
        if not isinstance(t, torch.Tensor) or tuple(t.shape) != shape:
            raise _bad(p, f"parameter {k} has shape {tuple(getattr(t, 'shape', ()))}, "
                          f"expected {shape}")
        if t.dtype not in (torch.float32, torch.float64):
            raise _bad(p, f"parameter {k} is {t.dtype}, expected float32 or float64")
    if _digest(state) != digest:
        raise _bad(p, "weights do not match their SHA-256 (the file was altered or damaged)")
    if not all(torch.isfinite(t).all() for t in state.values()):
        raise _bad(p, "weights contain NaN or infinity")
    if expect_config is not None and config != expect_config:
        diff = {k: (v, expect_config.to_dict()[k]) for k, v in config.to_dict().items()
                if expect_config.to_dict()[k] != v}
        raise _bad(p, "was trained with another config: " + ", ".join(
            f"{k}={a!r} (wanted {b!r})" for k, (a, b) in diff.items()))
    fp = payload.get("split_fingerprint")
    if expect_split is not None and fp != expect_split:
        raise _bad(p, f"was trained on another data split (fingerprint {fp}, this data's is "
                      f"{expect_split})")
    model = SoftmaxRegression(n_in, n_out, dtype=state["linear.weight"].dtype)
    model.load_state_dict(state)
    return Checkpoint(model=model, config=config, history=history, split_fingerprint=fp, path=p)


def train_fp32_reference(split: Split | None = None, *, config: TrainConfig = REFERENCE_CONFIG,
                         data_dir: str | os.PathLike | None = None,
                         progress: bool = False) -> tuple[SoftmaxRegression, History]:
    """Train the FP32 reference model on ``split`` (loaded from ``data_dir`` if not given)."""
    if config.precision.format != "fp32":
        raise ValueError(f"the reference is FP32; config.precision is {config.precision.label}")
    split = split if split is not None else load_split(data_dir)
    return train(split, config, progress=progress)


def load_or_train(path: str | os.PathLike = DEFAULT_CHECKPOINT, *,
                  config: TrainConfig = REFERENCE_CONFIG, split: Split | None = None,
                  data_dir: str | os.PathLike | None = None, retrain: bool = False,
                  progress: bool = False) -> Checkpoint:
    """The FP32 reference model from ``path`` if it is there and valid for ``config`` (and
    ``split``, when given), else trained now and saved there. A corrupt or mismatched file
    raises `CheckpointError` (it is not silently overwritten) unless ``retrain``."""
    p = Path(path)
    if p.exists() and not retrain:
        expect = split.fingerprint() if split is not None else None
        return load_checkpoint(p, expect_config=config, expect_split=expect)
    split = split if split is not None else load_split(data_dir)
    if progress:
        print(f"training the FP32 reference model ({p} {'replaced' if p.exists() else 'absent'})",
              file=sys.stderr, flush=True)
    model, history = train_fp32_reference(split, config=config, progress=progress)
    save_checkpoint(p, model, config, history, split.fingerprint())
    return Checkpoint(model=model, config=config, history=history,
                      split_fingerprint=split.fingerprint(), path=p, trained_now=True)
