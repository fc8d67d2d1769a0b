#!/usr/bin/env bash
# Makes (or reuses) the virtual environment with the current PyTorch from PyPI that the CPU comparisons
# run beside Debian's python3-torch (users compare us with the newest PyTorch). Only its CPU side is
# used. Prints the venv's python on the last line of stdout.
#
# usage: tools/bench/torch_venv.sh [DIR]     (default: .venv-torch in the repository root, git-ignored)
# The venv is built from Debian's /usr/bin/python3 with --system-site-packages off; numpy comes with
# torch's requirements or is installed beside it. An existing venv whose torch imports is reused as is.
set -euo pipefail
cd "$(dirname "$0")/../.."
dir="${1:-.venv-torch}"
if [[ -x "$dir/bin/python" ]] && "$dir/bin/python" -c 'import torch, numpy' 2>/dev/null; then
  echo "torch_venv.sh: reusing $dir (torch $("$dir/bin/python" -c 'import torch; print(torch.__version__)'))" >&2
else
  if [[ -e "$dir" ]]; then
    echo "torch_venv.sh: $dir exists but has no working torch; remove it or name another folder" >&2
    exit 1
  fi
  /usr/bin/python3 -m venv "$dir"
  "$dir/bin/python" -m pip install --quiet --upgrade pip
  "$dir/bin/python" -m pip install --quiet torch numpy
  echo "torch_venv.sh: installed torch $("$dir/bin/python" -c 'import torch; print(torch.__version__)') in $dir" >&2
fi
echo "$dir/bin/python"
