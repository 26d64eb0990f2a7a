#!/usr/bin/env bash
# The checks that need a CUDA GPU, as one short script for a machine lent for minutes:
#   1. benchmarks.matmul_formats: the GPU's real TF32 / BF16 / FP16 matmul against numfmt's
#      emulation, and which FP32 -> TF32 input rounding the hardware uses;
#   2. models train --device cuda: the FP32 reference and real TF32 (torch's TF32 switch), with
#      and without FP32 master weights, then their test accuracies and TF32-vs-FP32 agreement.
# Runs from a plain checkout (PYTHONPATH, no install). Python: $PYTHON, else the project's
# .venv/bin/python where it exists (the CPU dry run here), else python3 (a device image with its
# own torch).
# Data: FASHION_MNIST_DIR, else Debian's folder. Results: ${OUT:-out/gpu} (JSON + logs).
# DEVICE=cpu runs the same steps on the CPU (a dry run of this script, TF32 then emulated).
# On a lent device machine (the data lives outside the repo there, so carry a copy):
#   mkdir -p .gpu_data && cp /usr/share/datasets/fashion-mnist/*.gz .gpu_data/
#   device run: command 'FASHION_MNIST_DIR=.gpu_data OUT=$OUT bash scripts/gpu_check.sh',
#               carry ['.gpu_data'], timeout_s 420 (about 2 minutes of work on an H100).
set -euo pipefail
cd "$(dirname "$0")/.."
DEVICE=${DEVICE:-cuda}
EPOCHS=${EPOCHS:-30}
OUT=${OUT:-out/gpu}
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if [ -z "${PYTHON:-}" ]; then
    if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
"$PYTHON" - "$DEVICE" <<'PY' 2>&1 | tee "$OUT/device.log"
import sys, torch
dev = sys.argv[1]
print("torch", torch.__version__, "device", dev,
      torch.cuda.get_device_name() if dev.startswith("cuda") else "")
if dev.startswith("cuda") and not torch.cuda.is_available():
    sys.exit("gpu_check: torch.cuda.is_available() is False on this machine")
PY
"$PYTHON" -m benchmarks.matmul_formats --device "$DEVICE" --json "$OUT/matmul_formats.json" \
    --quiet 2>&1 | tee "$OUT/matmul_formats.log"
"$PYTHON" -m models train --device "$DEVICE" --epochs "$EPOCHS" --recipes fp32,tf32,tf32+master \
    --out "$OUT" --json "$OUT/train.json" --quiet 2>&1 | tee "$OUT/train.log"
"$PYTHON" -m models evaluate --device "$DEVICE" --out "$OUT" --json "$OUT/evaluate.json" \
    2>&1 | tee "$OUT/evaluate.log"
