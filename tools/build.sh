#!/usr/bin/env bash
# Configures and builds sparsetrain into build/ (Release, warnings as errors). Extra arguments go
# to cmake, e.g. tools/build.sh -DST_CUDA_ARCHITECTURES=80 or -DST_WITH_CUDA=OFF.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/cuda/bin:$PATH"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
cmake --build build -j"$(nproc)"
