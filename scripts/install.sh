#!/usr/bin/env bash
# Installs everything the project needs on a fresh Debian machine (as root, or with sudo):
# the real Fashion-MNIST (Debian's dataset-fashion-mnist) and this package with its test extras
# and the optional peers (torchao, ONNX Runtime + onnx, gfloat: they only add rows to the
# benchmarks and audits; the code runs without them).
#
# PEP 668: the system python3 refuses pip installs, so everything goes into a project virtual
# environment, .venv. Inside an active virtual environment that one is used instead, and .venv
# becomes a link to it, so that the README's `.venv/bin/python` means the same interpreter.
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null; then SUDO=sudo; fi
apt_install() {
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
}
if [ ! -f /usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz ]; then
  apt_install dataset-fashion-mnist
fi
if [ -n "${VIRTUAL_ENV:-}" ] && [ "$(readlink -f "${VIRTUAL_ENV}")" != "$(readlink -f .venv 2>/dev/null || true)" ]; then
  if [ -e .venv ] && [ ! -L .venv ]; then
    echo "error: .venv exists and is not the active virtual environment ${VIRTUAL_ENV}" >&2
    exit 2
  fi
  ln -sfn "${VIRTUAL_ENV}" .venv
elif [ ! -x .venv/bin/python ]; then
  PY=$(command -v python3 || true)
  if [ -z "$PY" ]; then apt_install python3 python3-venv python3-dev gcc; PY=$(command -v python3); fi
  if ! "$PY" -m venv .venv 2>/dev/null; then
    rm -rf .venv
    apt_install python3-venv python3-dev gcc
    "$PY" -m venv .venv
  fi
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[test,peers]"
