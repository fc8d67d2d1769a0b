#!/usr/bin/env bash
# The whole GPU check of issue 16 in ONE device call of at most 8 minutes:
#   HERE, once per session:  tools/gpu/pack_deps.sh [--backup]   (.gpudeps/: headers, libs, data, backup build)
#   HERE, before the call:   tools/gpu/check.sh --dry-run         (the same stages without a GPU)
#   THERE:                   run(command="tools/gpu/check.sh --label <commit>", carry=[".gpudeps"], timeout_s=540)
#
# Stages, in this order, each under its own timeout and all under one deadline (--budget, default 450 s
# from the script's start; a stage that would not fit is skipped and says so):
#   probe        $OUT/env.txt in about 5 s: OS, g++/cmake/nvcc, nvidia-smi, where cuDNN/cuBLAS were found, CPU
#   build        build-gpu/ with the device's options (ST_WERROR=OFF, nvcc named explicitly, cuDNN from
#                nvidia.cudnn.__path__ of the image's PyTorch, cuBLAS from the toolkit or else the wheel,
#                ST_MARCH=native, no OpenBLAS); if it fails, the carried backup build (.gpudeps/backup) runs
#   gpu-tests    the GPU suite with ST_REQUIRE_GPU=1 (a skip is a failure), then CUDA-compiled-in checks
#   default      `sparsetrain` with no flags: must train on the GPU and name it (first 40 s)
#   train        resnet20 on Fashion-MNIST, same seed and schedule, on the GPU and on the CPU (the CPU run
#                starts in the background right after the build and is collected here): test accuracies
#   kernelbench  our kernels vs cuDNN/cuBLAS on resnet20 shapes, TF32 on and off; then vgg19, mobilenetv2
#                and vit-tiny while time remains
#   step         resnet20 training step, ours (ours and vendor kernels) and PyTorch eager / bf16 on the same
#                input (1x28x28) fed the same way (uploaded every step with a loss read, and resident), batch
#                128 and 512; torch.compile last, only if time remains
#   sanitizer    compute-sanitizer memcheck and racecheck on the convolution tests, if time remains
# $OUT keeps six files: env.txt, stages.log, tests-gpu.log, kernelbench.md, report.md (rebuilt after every
# stage, so a timeout still returns what ran) and logs.tgz (every other log, re-packed after every stage).
#
# --dry-run runs the same stages here, without a GPU: the build (CUDA compiled, nothing run on a device),
# the probe, the suite's refusal to skip under ST_REQUIRE_GPU=1, the CPU halves of the comparisons at a
# tiny size, and the report assembly. Exit status: 0 when every stage that ran passed.
#
# usage: tools/gpu/check.sh [--dry-run] [--budget SECONDS] [--build-dir DIR] [--jobs N] [--label TEXT]
#   --label names the tree in the report (default: `git describe`; the device's copy may have no .git, so
#   pass the commit there: --label "$(git rev-parse --short HEAD)"); --use-backup skips the build and runs
#   the carried backup build (to test it here, or there when the build is known to fail).
set -uo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
start=$(date +%s)

dry_run=0
budget=450
build_dir=""
jobs=$(nproc)
label=""
use_backup=0
while [ $# -gt 0 ]; do
  case $1 in
    --dry-run) dry_run=1 ;;
    --budget) budget=${2:?--budget needs seconds}; shift ;;
    --build-dir) build_dir=${2:?--build-dir needs a folder}; shift ;;
    --jobs) jobs=${2:?--jobs needs a number}; shift ;;
    --label) label=${2:?--label needs a text}; shift ;;
    --use-backup) use_backup=1 ;;
    -h|--help) sed -n '2,38p' "$0"; exit 0 ;;
    *) echo "check.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
case $budget in ''|*[!0-9]*) echo "check.sh: --budget: expected whole seconds, got '$budget'" >&2; exit 2 ;; esac

[ -z "$label" ] && label=$(git describe --always --dirty 2>/dev/null || echo "unknown tree (no .git; pass --label)")
OUT=${OUT:-$root/gpu-out}
work=$root/gpu-work  # every log beside the six files of $OUT (ignored by git; packed into logs.tgz)
mkdir -p "$OUT" "$work"
deps=$root/.gpudeps
if [ -z "$build_dir" ]; then
  build_dir=$root/build-gpu
  [ $dry_run -eq 1 ] && build_dir=$root/build-check
fi
mode=device
[ $dry_run -eq 1 ] && mode=dry-run
status=0
declare -A stage_result=()
stage_order=()

elapsed() { echo $(( $(date +%s) - start )); }
left() { echo $(( start + budget - $(date +%s) )); }
note() { echo "[$(printf '%3d' "$(elapsed)") s] $*" | tee -a "$OUT/stages.log"; }
fail() { note "FAILED: $*"; status=1; }
# Seconds a stage may take: its own cap, cut to what is left before the deadline minus a reserve for the
# report; prints 0 when less than `need` seconds remain.
stage_time() {
  local cap=$1 need=$2 reserve=8 t
  t=$(( $(left) - reserve ))
  [ "$t" -gt "$cap" ] && t=$cap
  [ "$t" -lt "$need" ] && t=0
  echo "$t"
}
# run_timed LOG SECONDS CMD...: runs CMD with its output in LOG (appended) under `timeout`; 124 = timed out.
run_timed() {
  local log=$1 seconds=$2
  shift 2
  echo "\$ $*" >> "$log"
  timeout -k 5 "$seconds" "$@" >> "$log" 2>&1
}
record() { stage_result[$1]=$2; stage_order+=("$1"); }

: > "$OUT/stages.log"
note "check.sh ($mode) at $label, budget ${budget} s, OUT=$OUT"

# ---- the libraries: .gpudeps (fmt, zlib, png, jpeg, data) and cuDNN/cuBLAS from PyTorch's wheels ------------------
py=python3
if ! $py -c 'import torch' 2>/dev/null && [ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import torch' 2>/dev/null; then
  py=/usr/bin/python3  # here: pyenv's python3 has no torch, Debian's has
fi
nvcc_path=$(command -v nvcc || true)
[ -z "$nvcc_path" ] && [ -x /usr/local/cuda/bin/nvcc ] && nvcc_path=/usr/local/cuda/bin/nvcc
wheel_root=$($py -c 'import nvidia, os; print(os.path.dirname(list(nvidia.__path__)[0]))' 2>/dev/null || true)
cudnn_pkg=$($py -c 'import nvidia.cudnn; print(list(nvidia.cudnn.__path__)[0])' 2>/dev/null || true)
find_first() { find "$@" 2>/dev/null | sort | head -1; }
cudnn_header="" cudnn_lib="" cublas_dir=""
if [ -n "$cudnn_pkg" ]; then
  cudnn_header=$(find_first "$cudnn_pkg" -name cudnn.h)
  cudnn_lib=$(find_first "$cudnn_pkg" -name 'libcudnn.so.9*')
fi
toolkit_lib=""
[ -n "$nvcc_path" ] && toolkit_lib=$(cd "$(dirname "$nvcc_path")/.." && pwd)
toolkit_cublas=$(find_first "$toolkit_lib/lib64/" "$toolkit_lib/lib/" "$toolkit_lib/targets/" -name 'libcublas.so*')
if [ -z "$toolkit_cublas" ] && [ -n "$wheel_root" ]; then
  wheel_cublas=$(find_first "$wheel_root/nvidia" -name 'libcublas.so.*')
  [ -n "$wheel_cublas" ] && cublas_dir=$(dirname "$wheel_cublas")
fi
libpath="$deps/lib/x86_64-linux-gnu:$deps/backup/lib"
[ -n "$cudnn_lib" ] && libpath="$libpath:$(dirname "$cudnn_lib")"
[ -n "$cublas_dir" ] && libpath="$libpath:$cublas_dir"
if [ -n "$wheel_root" ]; then  # every lib folder of the nvidia wheels (cudart, nvrtc, cublasLt ...), last
  for d in $(find "$wheel_root/nvidia" -maxdepth 3 -type d -name lib 2>/dev/null | sort); do libpath="$libpath:$d"; done
fi
export LD_LIBRARY_PATH="$libpath:${LD_LIBRARY_PATH:-}"

data_dir=/usr/share/datasets/fashion-mnist
if [ ! -f $data_dir/train-images-idx3-ubyte.gz ] && [ -d "$deps/data/fashion-mnist" ]; then
  data_dir=$deps/data/fashion-mnist
  # the tests and the default experiment look at the Debian path: link it there where we may
  if [ ! -e /usr/share/datasets/fashion-mnist ]; then
    mkdir -p /usr/share/datasets 2>/dev/null && ln -s "$data_dir" /usr/share/datasets/fashion-mnist 2>/dev/null \
      && data_dir=/usr/share/datasets/fashion-mnist
  fi
fi

# ---- the report: rebuilt after every stage --------------------------------------------------------------------------
gpu_name=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
[ -z "$gpu_name" ] && gpu_name="no GPU ($mode)"
write_report() {
  {
    echo "# GPU check, $(date -u +%F) on ${gpu_name}"
    echo
    echo "Command: \`tools/gpu/check.sh$([ $dry_run -eq 1 ] && echo ' --dry-run')\` (budget ${budget} s) at $label." \
         "Script wall time so far: $(elapsed) s (the device time of the call is this plus the machine's start" \
         "and the transfers)."
    echo
    echo "| stage | result |"
    echo "|---|---|"
    for s in "${stage_order[@]}"; do echo "| $s | ${stage_result[$s]} |"; done
    for section in "$work"/report-*.md; do
      [ -f "$section" ] && { echo; cat "$section"; }
    done
    echo
    echo "## Stage log"
    echo
    echo '```'
    cat "$OUT/stages.log"
    echo '```'
  } > "$OUT/report.md.tmp" && mv "$OUT/report.md.tmp" "$OUT/report.md"
  tar -czf "$OUT/logs.tgz.tmp" -C "$work" . 2>/dev/null && mv "$OUT/logs.tgz.tmp" "$OUT/logs.tgz"
}
section() { cat > "$work/report-$1.md"; }  # a report section from stdin (sections sort by name)

# ---- stage probe ----------------------------------------------------------------------------------------------------
probe() {
  {
    echo "## mode: $mode; date: $(date -u '+%F %T') UTC; host: $(hostname 2>/dev/null)"
    echo "## OS"; timeout 5 sh -c 'uname -a; cat /etc/os-release 2>/dev/null | head -4'
    echo "## g++"; timeout 5 g++ --version 2>&1 | head -1
    echo "## cmake"; timeout 5 cmake --version 2>&1 | head -1
    echo "## ninja"; timeout 5 ninja --version 2>&1 | head -1
    echo "## nvcc ($nvcc_path)"; [ -n "$nvcc_path" ] && timeout 5 "$nvcc_path" --version 2>&1 | tail -2
    echo "## nvidia-smi"; timeout 5 nvidia-smi 2>&1 | head -20
    timeout 5 nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,clocks.sm,power.limit,driver_version \
      --format=csv 2>&1 | head -3
    echo "## python ($py)"; timeout 10 $py -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version(), "gpu", torch.cuda.is_available())' 2>&1 | tail -1
    echo "## cuDNN: package ${cudnn_pkg:-none}; header ${cudnn_header:-none, the toolkit one}; library ${cudnn_lib:-none, the toolkit one}"
    echo "## cuBLAS: toolkit ${toolkit_cublas:-none}; wheel folder ${cublas_dir:-not needed or none}"
    echo "## compute-sanitizer: $(command -v compute-sanitizer || ls "$toolkit_lib"/bin/compute-sanitizer 2>/dev/null || echo none)"
    echo "## data: $data_dir ($(ls "$data_dir" 2>/dev/null | wc -l) files)"
    echo "## backup build: $(ls "$deps/backup/bin" 2>/dev/null | tr '\n' ' ' || true)"
    echo "## CPU"; timeout 5 sh -c 'nproc; grep -m1 "model name" /proc/cpuinfo; grep -m1 flags /proc/cpuinfo | tr " " "\n" | grep -E "^(avx2|avx512f|avx512bw|avx512_bf16|amx_tile|fma)$" | tr "\n" " "; echo; free -g | head -2'
    echo "## LD_LIBRARY_PATH"; echo "$LD_LIBRARY_PATH" | tr ':' '\n'
  } > "$OUT/env.txt" 2>&1
}
probe
record probe "env.txt ($(elapsed) s)"
note "probe done: ${gpu_name}"
write_report

# ---- stage build ----------------------------------------------------------------------------------------------------
bin=""
build_stage() {
  local log=$work/build.log t
  t=$(stage_time 240 30)
  [ "$t" -eq 0 ] && { record build "skipped: no time"; return 1; }
  local generator=()
  command -v ninja > /dev/null && generator=(-G Ninja)
  local args=(-S . -B "$build_dir" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DST_USE_OPENBLAS=OFF -DST_WERROR=OFF
              -DST_MARCH=native -DCMAKE_PREFIX_PATH="$deps" -DCMAKE_CUDA_COMPILER="$nvcc_path")
  [ -n "$cudnn_header" ] && args+=(-DCUDNN_INCLUDE_DIR="$(dirname "$cudnn_header")")
  [ -n "$cudnn_lib" ] && args+=(-DCUDNN_LIBRARY="$cudnn_lib")
  [ -n "$cublas_dir" ] && args+=(-DST_CUBLAS_DIR="$cublas_dir")
  if [ $dry_run -eq 1 ] && [ ! -d "$deps" ]; then
    args=("${args[@]/-DST_USE_OPENBLAS=OFF/-DST_USE_OPENBLAS=ON}")  # here Debian's libraries are installed
  fi
  [ -z "$nvcc_path" ] && { fail "build: no nvcc on PATH or in /usr/local/cuda/bin"; record build "FAILED: no nvcc"; return 1; }
  if run_timed "$log" "$t" cmake "${args[@]}" && run_timed "$log" "$(stage_time 240 10)" cmake --build "$build_dir" -j "$jobs"; then
    bin=$build_dir
    return 0
  fi
  grep -m 15 -E "error|Error" "$log" | tee -a "$OUT/stages.log"
  return 1
}
if [ $use_backup -eq 1 ] && [ -x "$deps/backup/bin/sparsetrain_tests" ]; then
  bin=$deps/backup/bin
  record build "skipped (--use-backup): the carried backup build (.gpudeps/backup)"
elif [ $use_backup -eq 1 ]; then
  fail "--use-backup: no backup build in .gpudeps/backup (tools/gpu/pack_deps.sh --backup)"
  record build "FAILED, no backup"
  write_report
  exit 1
elif build_stage; then
  record build "built in $build_dir ($(elapsed) s)"
  note "build done"
elif [ -x "$deps/backup/bin/sparsetrain_tests" ]; then
  bin=$deps/backup/bin
  fail "build (see build.log in logs.tgz): using the carried backup build $bin"
  record build "FAILED; using the carried backup build (.gpudeps/backup)"
else
  fail "build (see build.log in logs.tgz), and no carried backup build in .gpudeps/backup"
  record build "FAILED, no backup"
  write_report
  exit 1
fi
write_report
for b in sparsetrain sparsetrain_tests kernelbench; do
  [ -x "$bin/$b" ] || fail "build: $bin/$b is missing"
done

# The CPU half of the training comparison starts now, in the background, on half the cores.
train_args=(--model resnet20 --data fashion-mnist --data-dir "$data_dir" --seed 0 --epochs 3 --train-limit 20000
            --val-size 2000 --batch 128 --lr 0.1 --overwrite --checkpoint-every 0)
cpu_threads=$(( $(nproc) / 2 ))
[ $dry_run -eq 1 ] && train_args=(--model resnet20 --data fashion-mnist --data-dir "$data_dir" --seed 0 --epochs 1
                                  --train-limit 512 --val-size 256 --batch 64 --lr 0.1 --overwrite --checkpoint-every 0)
cpu_train_pid=""
if [ -x "$bin/sparsetrain" ]; then
  ( timeout -k 5 300 "$bin/sparsetrain" train "${train_args[@]}" --device cpu --threads "$cpu_threads" \
      --run-dir "$work/train-cpu" > "$work/train-cpu.log" 2>&1; echo $? > "$work/train-cpu.status" ) &
  cpu_train_pid=$!
fi

# ---- stage gpu-tests ------------------------------------------------------------------------------------------------
gpu_tests() {
  local t log=$OUT/tests-gpu.log
  t=$(stage_time 200 20)
  [ "$t" -eq 0 ] && { record gpu-tests "skipped: no time"; return; }
  : > "$log"
  if [ $dry_run -eq 1 ]; then
    # Here: the suite must skip with its one line, and refuse to skip when ST_REQUIRE_GPU=1.
    run_timed "$log" "$t" "$bin/sparsetrain_tests" -ts=gpu
    local plain=$?
    ST_REQUIRE_GPU=1 run_timed "$log" "$t" "$bin/sparsetrain_tests" -ts=gpu
    local required=$?
    if [ $plain -eq 0 ] && grep -q '^gpu: skipped' "$log" && [ $required -eq 3 ] \
       && grep -q '^gpu: FAILED: ST_REQUIRE_GPU=1' "$log"; then
      record gpu-tests "dry run: skips with one line; with ST_REQUIRE_GPU=1 it fails (status 3)"
    else
      fail "gpu-tests (dry run): plain status $plain, ST_REQUIRE_GPU=1 status $required (want 0 and 3; see tests-gpu.log)"
      record gpu-tests "FAILED (dry run)"
    fi
    return
  fi
  ST_REQUIRE_GPU=1 run_timed "$log" "$t" "$bin/sparsetrain_tests" -ts=gpu -d
  local rc=$?
  local summary
  summary=$(grep -E '^\[doctest\] (test cases|assertions)' "$log" | tail -2 | tr '\n' ' ')
  if [ $rc -eq 0 ] && ! grep -q 'gpu: skipped' "$log"; then
    record gpu-tests "passed: $summary"
  else
    fail "gpu-tests: status $rc ($summary)"
    record gpu-tests "FAILED (status $rc): $summary"
  fi
  grep -E 'normalised error|FAILED|ERROR' "$log" | head -60 > "$work/tests-gpu-errors.txt"
  { echo "## GPU tests"; echo; echo '```'; grep -E '^\[doctest\]|ERROR|FAILED' "$log" | head -40; echo '```'; } | section 10-tests
}
gpu_tests
note "gpu-tests: ${stage_result[gpu-tests]}"
write_report

# ---- stage default: `sparsetrain` with no flags names the GPU and trains on it ---------------------------------------
default_run() {
  local t log=$work/default.log
  t=$(stage_time 40 15)
  [ "$t" -eq 0 ] && { record default "skipped: no time"; return; }
  mkdir -p "$work/default" && cd "$work/default" || return
  if [ $dry_run -eq 1 ]; then t=10; fi
  run_timed "$log" "$t" "$bin/sparsetrain"
  cd "$root" || return
  local line
  line=$(grep -v '^\$ ' "$log" | grep -m1 -iE 'device|GPU|cuda')
  if [ $dry_run -eq 0 ] && ! grep -qiE 'cuda|H100|H200|GPU' <<< "$line"; then
    fail "default: the first device line does not name the GPU: '$line'"
    record default "FAILED: '$line'"
  else
    record default "'$line'"
  fi
  { echo "## \`sparsetrain\` with no flags (first lines)"; echo; echo '```'; grep -v '^\$' "$log" | head -8; echo '```'; } | section 20-default
}
default_run
note "default: ${stage_result[default]}"
write_report

# ---- stage train: resnet20, same seed and schedule, GPU vs CPU -------------------------------------------------------
test_accuracy() {  # the last test accuracy of a run's summary.csv
  tail -1 "$1/summary.csv" 2>/dev/null | awk -F, '{print $5}'
}
train_stage() {
  local t log=$work/train-gpu.log device=cuda
  [ $dry_run -eq 1 ] && device=cpu
  t=$(stage_time 150 30)
  [ "$t" -eq 0 ] && { record train "skipped: no time"; return; }
  run_timed "$log" "$t" "$bin/sparsetrain" train "${train_args[@]}" --device "$device" --run-dir "$work/train-gpu"
  local rc=$?
  local waited=0
  while [ -n "$cpu_train_pid" ] && kill -0 "$cpu_train_pid" 2>/dev/null && [ "$(left)" -gt 20 ]; do
    sleep 2; waited=$((waited + 2))
  done
  local gpu_acc cpu_acc
  gpu_acc=$(test_accuracy "$work/train-gpu")
  cpu_acc=$(test_accuracy "$work/train-cpu")
  local verdict
  verdict=$(awk -v g="$gpu_acc" -v c="$cpu_acc" 'BEGIN { if (g == "" || c == "") print "incomplete";
            else { d = (g - c) * 100; if (d < 0) d = -d; printf "%s (|difference| %.2f points, limit 0.5)", (d <= 0.5 ? "within" : "OUTSIDE"), d } }')
  record train "$device $gpu_acc vs cpu $cpu_acc: $verdict (gpu run status $rc, waited $waited s for the CPU run)"
  case $verdict in within*) ;; *) [ $dry_run -eq 0 ] && fail "train: $verdict" ;; esac
  {
    echo "## resnet20 on Fashion-MNIST, GPU vs CPU, same seed and schedule"
    echo
    echo "\`sparsetrain train ${train_args[*]} --device cuda|cpu\` (the CPU run on $cpu_threads threads)"
    echo
    echo "| device | test accuracy | seconds |"
    echo "|---|---:|---:|"
    echo "| $device | ${gpu_acc:-?} | $(tail -1 "$work/train-gpu/summary.csv" 2>/dev/null | awk -F, '{print $6}') |"
    echo "| cpu | ${cpu_acc:-?} | $(tail -1 "$work/train-cpu/summary.csv" 2>/dev/null | awk -F, '{print $6}') |"
    echo
    echo "Verdict: $verdict"
  } | section 30-train
}
train_stage
note "train: ${stage_result[train]}"
write_report

# ---- stage vit: vit-tiny trains under --device cuda -----------------------------------------------------------------
vit_stage() {
  local t log=$work/train-vit.log device=cuda limit=4096 val=512 model=vit-tiny cap=60
  # here the CPU evaluates the 10,000 test images slowly: the 6-block twin, with time for it
  [ $dry_run -eq 1 ] && device=cpu limit=256 val=64 model=vit-tiny6 cap=300
  t=$(stage_time $cap 20)
  [ "$t" -eq 0 ] && { record vit "skipped: no time"; return; }
  run_timed "$log" "$t" "$bin/sparsetrain" train --model $model --data fashion-mnist --data-dir "$data_dir" --seed 0 \
    --epochs 1 --train-limit "$limit" --val-size "$val" --batch 128 --optimizer adamw --lr 1e-3 --device "$device" \
    --overwrite --checkpoint-every 0 --run-dir "$work/train-vit"
  local rc=$? acc
  acc=$(test_accuracy "$work/train-vit")
  if [ $rc -eq 0 ] && [ -n "$acc" ]; then
    record vit "$model, 1 epoch on $limit images, --device $device: test accuracy $acc ($(grep -v '^\$ ' "$log" | grep -m1 -o 'device [^,]*'))"
  else
    fail "vit: $model --device $device (status $rc; see train-vit.log in logs.tgz)"
    record vit "FAILED (status $rc)"
  fi
}
vit_stage
note "vit: ${stage_result[vit]}"
write_report

# ---- stage kernelbench ----------------------------------------------------------------------------------------------
kernelbench_stage() {  # kernelbench_stage NAME MODEL:TF32...
  local stage=$1 md=$OUT/kernelbench.md log=$work/kernelbench.log ran=""
  shift
  if [ $dry_run -eq 1 ]; then
    run_timed "$log" 20 "$bin/kernelbench" --list --model all
    if grep -q 'attention 65 tokens' "$log"; then record "$stage" "dry run: kernelbench --list answers"; else
      fail "kernelbench --list"; record "$stage" "FAILED (dry run)"; fi
    echo "(dry run: no kernels timed)" > "$md"
    return
  fi
  local model tf32 t
  for spec in "$@"; do
    model=${spec%%:*} tf32=${spec##*:}
    t=$(stage_time 90 25)
    [ "$t" -eq 0 ] && { note "kernelbench $model tf32 $tf32: skipped (no time)"; continue; }
    if run_timed "$log" "$t" "$bin/kernelbench" --model "$model" --batch 128 --tf32 "$tf32" --out "$work/kb-$model-$tf32.md"; then
      ran="$ran $model/tf32-$tf32"
    else
      fail "kernelbench $model --tf32 $tf32 (status $?; see kernelbench.log in logs.tgz)"
    fi
    # the table is written even when a check failed (status 2): keep it
    [ -f "$work/kb-$model-$tf32.md" ] && { echo "## kernelbench --model $model --batch 128 --tf32 $tf32"; echo;
      cat "$work/kb-$model-$tf32.md"; echo; } >> "$md"
    write_report
  done
  record "$stage" "checks passed:${ran:- none} (every table in kernelbench.md; failures in stages.log)"
}
: > "$OUT/kernelbench.md"
kernelbench_stage kernelbench resnet20:on resnet20:off vit-tiny:on
note "kernelbench: ${stage_result[kernelbench]}"
write_report

# ---- stage step: resnet20 training step, ours vs PyTorch, like with like ---------------------------------------------
step_stage() {
  local log=$work/step.log device=cuda steps=50 warmup=15 batches=(128 512) t
  if [ $dry_run -eq 1 ]; then device=cpu steps=2 warmup=1 batches=(32); fi
  local rows=()
  for batch in "${batches[@]}"; do
    for kernels in ours vendor; do
      t=$(stage_time 40 10)
      [ "$t" -eq 0 ] && continue
      local line
      if line=$(timeout -k 5 "$t" "$bin/sparsetrain" bench --model resnet20 --batch "$batch" --device "$device" \
                 --kernels "$kernels" --density 1 --steps "$steps" --warmup "$warmup" --json --data-dir "$data_dir" 2>> "$log"); then
        echo "$line" >> "$log"
        rows+=("| sparsetrain ($kernels kernels) | $batch | fp32/TF32 | upload + loss read | $(sed -E 's/.*"images_per_s":([0-9.]+).*/\1/' <<< "$line" | awk '{printf "%.0f", $1}') |")
      else
        fail "sparsetrain bench --kernels $kernels --batch $batch (see step.log in logs.tgz)"
      fi
    done
  done
  t=$(stage_time 150 30)
  local torch_md=$work/pytorch.md
  if [ "$t" -gt 0 ]; then
    PYTHONUNBUFFERED=1 run_timed "$log" "$t" $py tools/bench/gpu_vs_pytorch.py --device "$device" --models resnet20 \
      --batches "$(IFS=,; echo "${batches[*]}")" --modes eager,bf16 --feed upload,resident --input 1x28x28 --density 1 \
      --steps "$steps" --warmup "$warmup" --out "$torch_md" || fail "PyTorch eager/bf16 (see step.log in logs.tgz)"
  fi
  {
    echo "## resnet20 training step (Fashion-MNIST shape 1x28x28, density 1, SGD momentum)"
    echo
    echo "sparsetrain: \`sparsetrain bench --model resnet20 --batch B --device $device --kernels ours|vendor --density 1 --steps $steps --warmup $warmup\`"
    echo "(it uploads every batch and reads the loss: compare it with PyTorch's \`upload\` rows)."
    echo "PyTorch: \`tools/bench/gpu_vs_pytorch.py --models resnet20 --input 1x28x28 --density 1 --feed upload,resident\`."
    echo
    echo "| engine | batch | mode | feed | images/s |"
    echo "|---|---:|---|---|---:|"
    printf '%s\n' "${rows[@]}"
    grep -E '^\| resnet20' "$torch_md" 2>/dev/null | sed -E 's/^\| resnet20 /| PyTorch /'
    echo
    head -1 "$torch_md" 2>/dev/null
  } | section 50-step
  record step "${#rows[@]} sparsetrain rows, PyTorch $(grep -c '^| resnet20' "$torch_md" 2>/dev/null || echo 0) rows"
}
step_stage
note "step: ${stage_result[step]}"
write_report

# ---- while time remains: more kernelbench models, torch.compile ------------------------------------------------------
kernelbench_stage kernelbench-more vgg19:on mobilenetv2:on
note "kernelbench-more: ${stage_result[kernelbench-more]}"
write_report

compile_stage() {
  local t log=$work/step.log
  if [ $dry_run -eq 1 ]; then record compile "dry run: skipped"; return; fi
  t=$(stage_time 150 60)
  [ "$t" -eq 0 ] && { record compile "skipped: no time"; return; }
  if PYTHONUNBUFFERED=1 run_timed "$log" "$t" $py tools/bench/gpu_vs_pytorch.py --models resnet20 --batches 128,512 \
       --modes compile --feed resident --input 1x28x28 --density 1 --out "$work/pytorch-compile.md"; then
    record compile "$(grep -c '^| resnet20' "$work/pytorch-compile.md") rows"
    { echo "## resnet20 training step, PyTorch torch.compile (same input; resident batch)"; echo
      echo "| engine | batch | mode | feed | images/s |"; echo "|---|---:|---|---|---:|"
      grep -E '^\| resnet20' "$work/pytorch-compile.md" | sed -E 's/^\| resnet20 /| PyTorch /'; } | section 51-compile
  else
    record compile "did not finish (see step.log)"
  fi
}
compile_stage
note "compile: ${stage_result[compile]}"
write_report

# ---- stage sanitizer -------------------------------------------------------------------------------------------------
sanitizer_stage() {
  local sanitizer log=$work/sanitizer.log t
  sanitizer=$(command -v compute-sanitizer || ls "$toolkit_lib"/bin/compute-sanitizer 2>/dev/null || true)
  [ -z "$sanitizer" ] && { record sanitizer "skipped: no compute-sanitizer"; return; }
  if [ $dry_run -eq 1 ]; then record sanitizer "dry run: $sanitizer found; not run"; return; fi
  local done_tools=""
  for tool in memcheck racecheck; do
    t=$(stage_time 90 30)
    [ "$t" -eq 0 ] && continue
    if ST_REQUIRE_GPU=1 run_timed "$log" "$t" "$sanitizer" --tool "$tool" --error-exitcode 9 \
         "$bin/sparsetrain_tests" -ts=gpu -tc='conv2d*'; then
      done_tools="$done_tools $tool:clean"
    else
      done_tools="$done_tools $tool:status-$?"
      fail "compute-sanitizer --tool $tool (see sanitizer.log in logs.tgz)"
    fi
  done
  record sanitizer "${done_tools:-skipped: no time}"
  { echo "## compute-sanitizer on the conv2d tests"; echo; echo '```'; grep -E '=========|\[doctest\]' "$log" | tail -20; echo '```'; } | section 60-sanitizer
}
sanitizer_stage
note "sanitizer: ${stage_result[sanitizer]}"

[ -n "$cpu_train_pid" ] && kill "$cpu_train_pid" 2>/dev/null
note "check.sh ($mode) finished in $(elapsed) s with status $status"
write_report
ls "$OUT" | tee -a "$work/out-files.txt" > /dev/null
exit $status
