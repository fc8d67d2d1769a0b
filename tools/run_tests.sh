#!/usr/bin/env bash
# Installs the dependencies, builds, and runs every test suite through ctest (unit, grad, e2e, gpu).
# GPU tests skip with one line on a machine without a GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
tools/build.sh
cd build && ctest --output-on-failure
