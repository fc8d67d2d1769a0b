#!/usr/bin/env bash
# Installs the dependencies, builds, and runs every test suite through ctest (unit, grad, e2e, gpu).
# GPU tests skip with one line on a machine without a GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
tools/build.sh
cd build
./sparsetrain_tests --test-suite=gpu 2>&1 | grep '^gpu:' || true  # the GPU suite's one-line status
ctest --output-on-failure
