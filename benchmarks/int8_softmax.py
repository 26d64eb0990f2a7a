"""``python -m benchmarks.int8_softmax``: an int8 softmax regression against FP32, PyTorch, ORT.

Trains the FP32 softmax regression on the real Fashion-MNIST (or reuses the cached checkpoint,
validated: SHA-256, config, data-split fingerprint, and its recorded validation accuracy
recomputed), then runs every variant of `benchmarks.int8_variants` (FP32/FP16/BF16 torch,
torch.compile, PyTorch's and torchao's int8, ONNX Runtime FP32 and int8, quant's encodings and
the integer-only pipeline) on the 10000 test images, side by side in one process, measured as
`benchmarks.int8_measure` describes; `benchmarks.machine_floor` measures the machine's limit
in the same run. Reported per variant: accuracy, agreement with FP32, max ``|p - p_fp32|``,
images/s at batch 10000 and 256 (and against FP32), batch-1 p50/p99 latency, weight bytes;
then the issue's targets for ``integer_only`` (MET/MISSED: they never fail the run).

Output: the markdown report on stdout (on stderr when ``--json -`` takes stdout), progress on
stderr (``--quiet`` silences it); ``--json FILE`` (strict JSON: the machine, the records, the
floor and the targets), ``--plot FILE`` (PNG and SVG). ``--quick`` is a smoke run (a 2-epoch
model cached separately, one timing repeat, batch 256 over 1024 images): indicative only.

Every argument and output path is checked before any work: bad ones end in one ``error:``
line and exit status 2. torch is imported only after that, so that ``OMP_WAIT_POLICY`` can be
chosen first: libgomp's workers spin between parallel regions, which on a machine already
busy steals the core from the thread doing the work (a pipeline of short ops slows several-
fold). ``main`` sets ``OMP_WAIT_POLICY=PASSIVE`` when the 1-minute load is above half the
cores and the variable is unset, if torch is not loaded yet (as under ``python -m``).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from numfmt.cli import (CliError, Progress, check_figure_path, check_output_file,
                        positive_int, run_cli, write_json)

__all__ = ["QUICK_SMALL_IMAGES", "QUICK_LATENCY_REPEATS", "main", "machine_busy", "cpu_busy",
           "choose_omp_wait_policy"]

QUICK_SMALL_IMAGES = 1024  # --quick times batch 256 over 4 batches only
QUICK_LATENCY_REPEATS = 100
DEFAULT_REPEATS, DEFAULT_LATENCY_REPEATS = 15, 1000
CALIBRATION_IMAGES = 10000


def machine_busy() -> bool:
    """Whether the 1-minute load average is above half the CPUs (False where unknown)."""
    try:
        return os.getloadavg()[0] > 0.5 * (os.cpu_count() or 1)
    except OSError:  # no load average on this platform
        return False


def cpu_busy(seconds: float = 0.5) -> float | None:
    """Share of all CPUs busy over the next ``seconds`` (Linux /proc/stat; None elsewhere)."""
    def sample() -> tuple[int, int]:
        with open("/proc/stat") as f:
            v = [int(t) for t in f.readline().split()[1:9]]
        return sum(v), v[3] + v[4]  # total, idle + iowait
    try:
        t0, i0 = sample()
        time.sleep(seconds)
        t1, i1 = sample()
    except (OSError, ValueError, IndexError):
        return None
    return 1 - (i1 - i0) / max(t1 - t0, 1)


def choose_omp_wait_policy() -> str | None:
    """Set ``OMP_WAIT_POLICY=PASSIVE`` on a busy machine, before torch loads; returns the value
    set, or None where nothing was set (already set by the user, torch already loaded, or an
    idle machine, where spinning is what makes short ops fast)."""
    if "OMP_WAIT_POLICY" in os.environ or "torch" in sys.modules or not machine_busy():
        return None
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    return "PASSIVE"


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks.int8_softmax",
        description="An integer-only (int8) softmax regression on Fashion-MNIST against FP32, "
                    "FP16/BF16, torch.compile, PyTorch's, torchao's and ONNX Runtime's int8: "
                    "accuracy, agreement, probability error, throughput, batch-1 latency and "
                    "weight bytes, and the machine's measured limit.")
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: a 2-epoch model, 1 timing repeat, 100 latency calls")
    ap.add_argument("--json", metavar="FILE", help="write the results as JSON ('-': stdout)")
    ap.add_argument("--plot", metavar="FILE",
                    help="write the figure as FILE.png and FILE.svg (suffix .png/.svg/none)")
    ap.add_argument("--checkpoint", type=Path, metavar="PATH",
                    help="FP32 model checkpoint (default out/checkpoints/fp32_reference.pt, "
                         "with --quick fp32_quick.pt); trained and saved there if absent")
    ap.add_argument("--retrain", action="store_true", help="train anew, replacing the checkpoint")
    ap.add_argument("--data-dir", type=Path, metavar="DIR",
                    help="Fashion-MNIST directory (default: models.data's search order)")
    ap.add_argument("--repeats", type=positive_int, metavar="N",
                    help=f"timing repeats per batch size (default {DEFAULT_REPEATS}, 1 with "
                         f"--quick)")
    ap.add_argument("--latency-repeats", type=positive_int, metavar="N",
                    help=f"single-image calls per variant (default {DEFAULT_LATENCY_REPEATS}, "
                         f"{QUICK_LATENCY_REPEATS} with --quick)")
    ap.add_argument("--threads", type=positive_int, metavar="N",
                    help="torch (and ONNX Runtime) CPU threads (default: torch's)")
    ap.add_argument("--variants", metavar="A,B,...",
                    help="comma-separated subset of the variants (fp32 is always run)")
    ap.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    return ap


def _check_args(args: argparse.Namespace) -> None:
    """Refuse unusable paths before any work (nothing is created here)."""
    check_output_file(args.json, "--json")
    if args.plot is not None and Path(args.plot).is_dir():
        raise CliError(f"--plot: {args.plot} is a directory; name a figure file")
    check_figure_path(args.plot, "--plot")
    ck = args.checkpoint
    if ck is not None:
        if ck.is_dir():
            raise CliError(f"--checkpoint: {ck} is a directory, not a checkpoint file")
        if not ck.exists():
            check_output_file(ck, "--checkpoint", allow_stdout=False)
    if args.data_dir is not None and not args.data_dir.is_dir():
        raise CliError(f"--data-dir: {args.data_dir} is not a directory")


def _names(spec: str | None, known: Sequence[str]) -> tuple[str, ...]:
    if not spec:
        return tuple(known)
    names = [s.strip() for s in spec.split(",")]
    if any(not n for n in names):
        raise CliError(f"--variants: empty name in {spec!r}")
    unknown = [n for n in names if n not in known]
    if unknown:
        raise CliError(f"--variants: unknown {', '.join(unknown)}; known: {', '.join(known)}")
    return tuple(dict.fromkeys(["fp32", *names]))


def _reference_model(split: Any, path: Path, quick: bool, retrain: bool,
                     progress: Progress) -> Any:
    """The validated FP32 784 -> 10 model from ``path`` (trained there if absent)."""
    import torch
    from dataclasses import replace
    from models.checkpoint import REFERENCE_CONFIG, CheckpointError, load_or_train
    from models.data import images_to_float

    config = replace(REFERENCE_CONFIG, epochs=2) if quick else REFERENCE_CONFIG
    ck = load_or_train(path, config=config, split=split, retrain=retrain,
                       progress=not progress.quiet)
    model = ck.model
    w = model.linear.weight
    if w.dtype != torch.float32 or model.in_features != 784 or model.num_classes != 10:
        raise CheckpointError(f"checkpoint {path}: holds a {model.in_features}->"
                              f"{model.num_classes} {w.dtype} model; this benchmark needs the "
                              f"FP32 784->10 Fashion-MNIST model")
    if not ck.trained_now:
        best = ck.history.best_epoch
        recorded = ck.history.epochs[best - 1].val_accuracy if best else None
        with torch.inference_mode():
            z = model(images_to_float(split.val_images)).double()
        acc = float((z.argmax(1) == split.val_labels).double().mean())
        if recorded is not None and abs(acc - recorded) > 1e-3:
            raise CheckpointError(f"checkpoint {path}: validation accuracy is {acc:.4f} here but "
                                  f"{recorded:.4f} was recorded at training time; the file does "
                                  f"not hold the model it claims. Delete it or pass --retrain.")
        progress(f"reusing {path} (validated: val accuracy {acc:.4f} as recorded)")
    return model


def _setup(args: argparse.Namespace, progress: Progress) -> tuple[Any, Any, tuple, dict]:
    """(split, variants, names, skipped): the data, the model's variants, or CliError."""
    import torch
    from benchmarks import int8_variants
    from models.checkpoint import DEFAULT_CHECKPOINT, CheckpointError
    from models.data import DatasetError, DatasetNotFoundError, images_to_float, load_split

    names = _names(args.variants, int8_variants.VARIANTS)
    if args.threads:
        torch.set_num_threads(args.threads)
    path = args.checkpoint or (DEFAULT_CHECKPOINT.with_name("fp32_quick.pt") if args.quick
                               else DEFAULT_CHECKPOINT)
    try:
        split = load_split(args.data_dir)
        model = _reference_model(split, path, args.quick, args.retrain, progress)
    except (DatasetError, DatasetNotFoundError, CheckpointError) as exc:
        raise CliError(str(exc)) from None
    calibration = images_to_float(split.train_images[:CALIBRATION_IMAGES], torch.float32)
    variants, skipped = int8_variants.build_variants(model, names,
                                                     calibration_images=calibration,
                                                     progress=progress)
    return split, variants, names, skipped


def _report(args: argparse.Namespace, result: dict, records: list, skipped: dict,
            floor: Any, targets: list) -> None:
    from benchmarks import int8_report

    out = sys.stderr if args.json == "-" else sys.stdout
    m = result["machine"]

    def say(text: str = "") -> None:
        print(text, file=out)
    say(f"## int8 softmax regression on Fashion-MNIST ({floor.rows} test images)\n")
    say(f"torch {m['torch']}, {m['threads']} threads, {m['cpu']}, CPU capability "
        f"{m['cpu_capability']}, OMP_WAIT_POLICY={m['omp_wait_policy']}, load average "
        f"{m['load_average']}"
        + ("" if m["cpus_busy_before_timing"] is None
           else f", CPUs {m['cpus_busy_before_timing']:.0%} busy before timing")
        + f"; median of {m['repeats']} interleaved timing repeat(s), "
        f"{m['latency_repeats']} single-image calls per variant"
        + (" (--quick: timings are indicative only)" if args.quick else "") + "\n")
    say(int8_report.results_table(records, skipped))
    say("\n### The limit (measured in this run)\n")
    for line in int8_report.floor_lines(floor, records):
        say(line)
    say("\n### Targets (integer_only)\n")
    for t in targets:
        say(f"- {t.mark}: {t.what}: {t.value}")
    enc = int8_report.encodings_table(records)
    if enc:
        say("\n### LogInt8 against ScaledInt8 (the weight encodings)\n")
        say(enc)
    if skipped:
        say("\n### Skipped\n")
        for name, why in skipped.items():
            say(f"- {name}: {why}")


def _run(argv: Sequence[str] | None) -> int:
    args = _parser().parse_args(argv)
    _check_args(args)
    progress = Progress(args.quiet, prefix="[int8_softmax] ")
    policy = choose_omp_wait_policy()
    if policy:
        progress(f"the machine is busy: OMP_WAIT_POLICY={policy} for this run")
    import torch
    from benchmarks import int8_measure, int8_report, machine_floor

    split, variants, names, skipped = _setup(args, progress)
    busy = cpu_busy()
    if busy is not None and busy > 0.2:
        progress(f"warning: the CPUs were {busy:.0%} busy before timing; throughput figures "
                 f"from a shared machine are noisy (rerun on an idle one)")
    repeats = args.repeats or (1 if args.quick else DEFAULT_REPEATS)
    lat_repeats = args.latency_repeats or (QUICK_LATENCY_REPEATS if args.quick
                                           else DEFAULT_LATENCY_REPEATS)
    records = int8_measure.measure(
        variants, split.test_images, split.test_labels, repeats=repeats,
        warmup=1 if args.quick else 3, latency_repeats=lat_repeats,
        small_images=QUICK_SMALL_IMAGES if args.quick else None, progress=progress)
    progress("measuring the machine's floor (input stream, int8 multiply-add rate)")
    x_u8 = int8_measure.inputs(split.test_images)["uint8"]
    num_classes = next(r for r in records if r["name"] == "fp32")["num_classes"]
    floor = machine_floor.measure_floor(x_u8, num_classes, quick=args.quick)
    targets = int8_report.targets(records, floor)
    order = {n: i for i, n in enumerate(names)}
    rows = records + [dict({k: None for k in int8_measure.record_keys()}, name=n, skipped=w)
                      for n, w in skipped.items()]
    rows.sort(key=lambda r: order[r["name"]])
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    result = {"machine": {"torch": torch.__version__, "threads": torch.get_num_threads(),
                          "cpu": platform.processor() or platform.machine(),
                          "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                          "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "(unset)"),
                          "load_average": None if load is None else round(load, 2),
                          "cpus_busy_before_timing": busy,
                          "repeats": repeats, "latency_repeats": lat_repeats,
                          "quick": bool(args.quick)},
              "variants": rows, "floor": floor.as_record(),
              "targets": [{"what": t.what, "value": t.value, "met": t.met} for t in targets]}
    _report(args, result, records, skipped, floor, targets)
    if args.json:
        write_json(args.json, result)
        progress(f"wrote {args.json}")
    if args.plot:
        for p in int8_report.write_plot(records, args.plot, torch.get_num_threads()):
            progress(f"wrote {p}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; returns the exit status (2 after an ``error:`` line on stderr for an
    unusable argument, path, dataset or checkpoint; targets never fail the run)."""
    return run_cli(_run, argv, prog="int8_softmax")


if __name__ == "__main__":
    sys.exit(main())
