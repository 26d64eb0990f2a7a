#!/usr/bin/env bash
# Installs everything the project needs on a fresh Debian machine (run as root, or with sudo):
# the real Fashion-MNIST (Debian's dataset-fashion-mnist) and this package with its test and
# torchao extras (torchao only adds rows to the int8 benchmark; the code runs without it).
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null; then SUDO=sudo; fi
if [ ! -f /usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz ]; then
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist
fi
python3 -m pip install -q -e ".[test,torchao]"
