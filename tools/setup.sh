#!/usr/bin/env bash
# Installs every dependency of sparsetrain from Debian, idempotently (safe to run again).
#   build:      cmake, g++, doctest, fmt, CLI11, nlohmann-json, toml++, OpenBLAS, zlib (gzip IDX files),
#               libjpeg + libpng (image-folder data sets: ImageNet / Tiny-ImageNet JPEG and PNG files)
#   data:       dataset-fashion-mnist (the default experiment's data, /usr/share/datasets/fashion-mnist)
#   benchmarks: python3-torch (the PyTorch CPU twin), numpy, matplotlib (report plots),
#               python3-torchvision (torchvision's ResNets for the import/export tests)
# The CUDA toolkit (nvcc, cuBLAS, cuDNN, cuSPARSE) is expected under /usr/local/cuda; without it
# the CPU backend still builds (cmake prints a warning).
set -euo pipefail
packages=(cmake g++ make doctest-dev libfmt-dev libcli11-dev nlohmann-json3-dev libtomlplusplus-dev libopenblas-dev zlib1g-dev
          libjpeg-dev libpng-dev
          dataset-fashion-mnist python3 python3-torch python3-torchvision python3-numpy python3-matplotlib)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#packages[@]} packages already installed"
  exit 0
fi
echo "setup: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
