"""Measuring the rows of `benchmarks.int8_softmax`: accuracy, agreement, error, speed, latency.

Each variant is timed from the test images in the form it consumes to class probabilities (the
conversion of the images into that form is not timed), interleaved with the others:

* throughput: the median of the repeats after warm-up, at batch 10000 (one call on all test
  images) and batch 256 (a pass over the images in chunks of 256);
* batch-1 latency: p50 and p99 of many single-image calls (``time.perf_counter_ns``), the
  variants interleaved call by call, cycling through the first 64 test images.

Accuracy, agreement with FP32 (argmax, first index on ties) and ``|p - p_fp32|`` use every
image. A variant with a ``reference`` path is checked against it bit for bit on every image.
"""

from __future__ import annotations

import itertools
from typing import Any, Callable, Sequence

import numpy as np
import torch

from benchmarks._timing import Timing, latencies, time_interleaved
from benchmarks.variant import Variant
from models.data import images_to_float

__all__ = ["SMALL_BATCH", "LATENCY_IMAGES", "inputs", "measure", "record_keys"]

SMALL_BATCH = 256
LATENCY_IMAGES = 64  # single-image calls cycle through this many test images


def record_keys() -> tuple[str, ...]:
    """The fields every measured record has (skipped ones have them too, as None)."""
    return ("name", "accuracy", "agreement", "max_abs_prob_err", "images_per_s_b10000",
            "images_per_s_b256", "latency_b1_p50_s", "latency_b1_p99_s", "weight_bytes")


def inputs(images: torch.Tensor) -> dict[str, torch.Tensor]:
    """The test images in every input form of `benchmarks.variant.INPUT_KINDS`, (N, 784)."""
    x32 = images_to_float(images, torch.float32).contiguous()
    return {"float32": x32, "float16": x32.to(torch.float16), "bfloat16": x32.to(torch.bfloat16),
            "uint8": images.reshape(images.shape[0], -1).contiguous()}


def _same_bits(a: Any, b: Any) -> bool:
    ta = torch.from_numpy(np.asarray(a)) if not isinstance(a, torch.Tensor) else a
    tb = torch.from_numpy(np.asarray(b)) if not isinstance(b, torch.Tensor) else b
    return ta.dtype == tb.dtype and ta.shape == tb.shape and bool(torch.equal(ta, tb))


def _outputs(variants: Sequence[Variant], feeds: dict[str, torch.Tensor],
             n: int) -> tuple[dict[str, torch.Tensor], dict[str, bool | None]]:
    """Every variant's float64 probabilities on all images, and its bit check (or None)."""
    probs, identical = {}, {}
    num_classes = None  # every variant must give fp32's (the first measured) class count
    for v in sorted(variants, key=lambda v: v.name != "fp32"):
        x = feeds[v.input_kind]
        raw = v.run(x)
        p = v.to_probs(raw)
        num_classes = p.shape[-1] if num_classes is None else num_classes
        if tuple(p.shape) != (n, num_classes) or not torch.isfinite(p).all():
            raise RuntimeError(f"variant {v.name} returned {tuple(p.shape)} probabilities with "
                               f"non-finite values or the wrong shape")
        probs[v.name] = p
        identical[v.name] = None if v.reference is None else _same_bits(raw, v.reference(x))
    return probs, identical


def _throughput(variants: Sequence[Variant], feeds: dict[str, torch.Tensor], *, repeats: int,
                warmup: int, small_batch: int, n_small: int,
                progress: Callable[[str], None]) -> tuple[dict[str, Timing], dict[str, Timing]]:
    def whole(v: Variant) -> Callable[[], object]:
        x, run = feeds[v.input_kind], v.run
        return lambda: run(x)

    def batched(v: Variant) -> Callable[[], object]:
        chunks, run = list(feeds[v.input_kind][:n_small].split(small_batch)), v.run
        return lambda: [run(c) for c in chunks]

    n = next(iter(feeds.values())).shape[0]
    progress(f"timing batch {n} ({repeats} repeats, {torch.get_num_threads()} threads)")
    # settle=1: each timed call follows one untimed call of the same variant, so it does not
    # pay for the previous variant's spinning threads (ORT's and OpenMP's pools spin when idle).
    big = time_interleaved([(v.name, whole(v)) for v in variants], repeats=repeats,
                           warmup=warmup, settle=1)
    progress(f"timing batch {small_batch} over {n_small} images ({repeats} repeats)")
    small = time_interleaved([(v.name, batched(v)) for v in variants], repeats=repeats,
                             warmup=warmup, settle=1)
    return big, small


def _latency(variants: Sequence[Variant], feeds: dict[str, torch.Tensor], *, repeats: int,
             progress: Callable[[str], None]) -> dict[str, Timing]:
    def single(v: Variant) -> Callable[[], object]:
        x = feeds[v.input_kind]
        rows = itertools.cycle([x[i:i + 1] for i in range(min(LATENCY_IMAGES, x.shape[0]))])
        run = v.run
        return lambda: run(next(rows))
    progress(f"timing batch-1 latency ({repeats} calls per variant, interleaved)")
    return latencies([(v.name, single(v)) for v in variants], repeats=repeats,
                     warmup=min(repeats, 20))


def measure(variants: Sequence[Variant], images: torch.Tensor, labels: torch.Tensor, *,
            repeats: int, warmup: int = 2, latency_repeats: int = 1000,
            small_batch: int = SMALL_BATCH, small_images: int | None = None,
            progress: Callable[[str], None] = lambda s: None) -> list[dict[str, Any]]:
    """One record per variant (fields: `record_keys` and more); ``variants`` must include fp32.

    Parameters
    ----------
    variants : sequence of Variant
    images : torch.Tensor
        uint8 (N, 28, 28) or (N, 784) test images.
    labels : torch.Tensor
        (N,) class labels.
    repeats, warmup : int
        Timed and untimed calls per variant at each batch size.
    latency_repeats : int
        Single-image calls per variant for the latency percentiles.
    small_batch : int
        The small batch size (256).
    small_images : int, optional
        Time the small batches over the first this many images only (default all).
    progress : callable
        Called with a line per phase.

    Raises
    ------
    ValueError
        Without an fp32 variant.
    RuntimeError
        When a variant returns probabilities of the wrong shape or non-finite ones.
    """
    if "fp32" not in {v.name for v in variants}:
        raise ValueError("the fp32 variant is the reference and must be measured")
    feeds = inputs(images)
    n = images.shape[0]
    probs, identical = _outputs(variants, feeds, n)
    ref = probs["fp32"]
    ref_pred = ref.argmax(1)
    n_small = n if small_images is None else max(1, min(n, small_images))
    big, small = _throughput(variants, feeds, repeats=repeats, warmup=warmup,
                             small_batch=small_batch, n_small=n_small, progress=progress)
    lat = _latency(variants, feeds, repeats=latency_repeats, progress=progress)
    records = []
    for v in variants:
        p = probs[v.name]
        pred = p.argmax(1)
        err = (p - ref).abs()
        rec: dict[str, Any] = {
            "name": v.name, "input": v.input_kind, "num_classes": int(p.shape[1]),
            "accuracy": float((pred == labels).double().mean()),
            "agreement": float((pred == ref_pred).double().mean()),
            "max_abs_prob_err": float(err.max()), "mean_abs_prob_err": float(err.mean()),
            "images_per_s_b10000": n / big[v.name].median,
            "images_per_s_b256": n_small / small[v.name].median,
            "latency_b1_p50_s": lat[v.name].percentile(50),
            "latency_b1_p99_s": lat[v.name].percentile(99),
            "weight_bytes": int(v.weight_bytes), "weight_matrix_bytes": int(v.matrix_bytes),
            "bit_identical_to_reference": identical[v.name],
            "timing_spread_b10000": big[v.name].spread, "note": v.note, "skipped": None,
        }
        rec.update(dict(v.extra))
        records.append(rec)
    return records
