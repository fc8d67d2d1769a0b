#!/usr/bin/env bash
# The whole training step with the sparse CPU kernels on against off (issue 17), and the accuracy the
# two paths reach, on this machine. Prints markdown tables (with the commands) to stdout.
#
#   speed:    sparsetrain bench --model M --density D --sparse-kernels off|on (random masks at density
#             D on every prunable tensor), the median images/s of --repeats runs, for lenet300, lenet5
#             and resnet20 at densities 10%, 5% and 2%
#   accuracy: sparsetrain train --model M --epochs 1 --density 0.1 --seed S, off against on, the test
#             accuracy of each (the paths sum in different orders, so they differ by rounding only)
#
# usage: tools/bench/sparse_step.sh [--build DIR] [--repeats 3] [--models "lenet300 lenet5 resnet20"]
#                                   [--densities "0.1 0.05 0.02"] [--seeds "1"] [--no-accuracy]
set -euo pipefail
cd "$(dirname "$0")/../.."
build=build repeats=3 models="lenet300 lenet5 resnet20" densities="0.1 0.05 0.02" seeds="1" accuracy=1
while [[ $# -gt 0 ]]; do
  case "$1" in
    --build) build="$2"; shift 2 ;;
    --repeats) repeats="$2"; shift 2 ;;
    --models) models="$2"; shift 2 ;;
    --densities) densities="$2"; shift 2 ;;
    --seeds) seeds="$2"; shift 2 ;;
    --no-accuracy) accuracy=0; shift ;;
    *) echo "sparse_step.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
bin="$build/sparsetrain"
[[ -x "$bin" ]] || { echo "sparse_step.sh: $bin not found (run tools/build.sh)" >&2; exit 1; }

steps_for() { case "$1" in resnet20) echo 30 ;; *) echo 200 ;; esac; }

# median images/s of $repeats bench runs
images_per_s() {
  local model=$1 density=$2 mode=$3 runs=()
  for ((i = 0; i < repeats; ++i)); do
    runs+=("$("$bin" bench --model "$model" --density "$density" --sparse-kernels "$mode" --steps "$(steps_for "$model")" \
      --json | tail -1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["images_per_s"])')")
  done
  printf '%s\n' "${runs[@]}" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'
}

echo "## Training step, --sparse-kernels on against off ($(nproc) cores, median of $repeats runs)"
echo
echo "| model | density | off (images/s) | on (images/s) | speed-up |"
echo "|---|---:|---:|---:|---:|"
for model in $models; do
  for density in $densities; do
    off=$(images_per_s "$model" "$density" off)
    on=$(images_per_s "$model" "$density" on)
    python3 -c "print(f'| $model | {100*$density:.0f}% | {$off:.0f} | {$on:.0f} | {$on/$off:.2f}x |')"
  done
done
echo
echo "Commands: \`$bin bench --model M --density D --sparse-kernels off|on --steps N --json\` (N = 30 for resnet20, 200 otherwise)."

[[ $accuracy == 1 ]] || exit 0
echo
echo "## Test accuracy after 1 epoch at 90% sparsity (random masks), off against on"
echo
echo "| model | seed | off | on | difference (points) |"
echo "|---|---:|---:|---:|---:|"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for model in $models; do
  for seed in $seeds; do
    declare -A acc=()
    for mode in off on; do
      "$bin" train --model "$model" --epochs 1 --density 0.1 --seed "$seed" --sparse-kernels "$mode" \
        --run-dir "$work/$model-$seed-$mode" >"$work/$model-$seed-$mode.log" 2>&1
      acc[$mode]=$(python3 -c "import csv; rows=list(csv.DictReader(open('$work/$model-$seed-$mode/summary.csv'))); print(rows[-1]['test_accuracy'])")
    done
    python3 -c "print(f'| $model | $seed | {${acc[off]}:.4f} | {${acc[on]}:.4f} | {100*(${acc[on]}-${acc[off]}):+.2f} |')"
  done
done
echo
echo "Commands: \`$bin train --model M --epochs 1 --density 0.1 --seed S --sparse-kernels off|on --run-dir DIR\`."
