#!/usr/bin/env bash
# Everything a GPU session checks, in one script for the device tool (issue 3):
#   HERE first:   tools/gpu/pack_deps.sh            (packs .gpudeps/: headers, libs, Fashion-MNIST)
#   THERE:        run(command="tools/gpu/run_all.sh build tests kernelbench", carry=[".gpudeps"])
#                 run(command="tools/gpu/run_all.sh torch ours report", carry=[".gpudeps"])
# Stages (default: all, in this order): build tests kernelbench torch ours report. Every stage logs to
# $OUT (the device tool brings $OUT back); `report` joins the logs into $OUT/report.md. The build
# directory build-gpu/ stays on a warm machine between calls. A stage that fails is reported and the
# next one still runs; the exit status is that of the first failure.
set -uo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
OUT=${OUT:-$root/gpu-out}
mkdir -p "$OUT"
deps=$root/.gpudeps
stages=("$@")
[ ${#stages[@]} -eq 0 ] && stages=(build tests kernelbench torch ours report)
export LD_LIBRARY_PATH="$deps/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}"
status=0
note() { echo "run_all: $*" | tee -a "$OUT/stages.log"; }
fail() { note "FAILED: $*"; [ $status -eq 0 ] && status=1; }
data_dir=/usr/share/datasets/fashion-mnist
[ -f $data_dir/train-images-idx3-ubyte.gz ] || data_dir=$deps/data/fashion-mnist
# the tests look for the data at the Debian path; link it there where we may
if [ ! -e /usr/share/datasets/fashion-mnist ] && [ -d "$deps/data/fashion-mnist" ]; then
  mkdir -p /usr/share/datasets 2>/dev/null && ln -s "$deps/data/fashion-mnist" /usr/share/datasets/fashion-mnist 2>/dev/null
fi

for stage in "${stages[@]}"; do
  start=$(date +%s)
  case $stage in
    build)
      [ -d "$deps" ] || { fail "no .gpudeps/ (run tools/gpu/pack_deps.sh here and carry .gpudeps)"; continue; }
      cudnn_root=$(python3 -c 'import nvidia.cudnn, os; print(os.path.dirname(nvidia.cudnn.__file__))' 2>/dev/null || true)
      nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1
      { nvcc --version; g++ --version; cmake --version; } > "$OUT/toolchain.txt" 2>&1
      generator=(); command -v ninja > /dev/null && generator=(-G Ninja)
      cmake -S . -B build-gpu "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DST_USE_OPENBLAS=OFF \
            -DCMAKE_PREFIX_PATH="$deps" -DCUDNN_ROOT="$cudnn_root" > "$OUT/configure.log" 2>&1 \
        || { fail "configure (see configure.log)"; tail -30 "$OUT/configure.log"; continue; }
      cmake --build build-gpu -j "$(nproc)" > "$OUT/build.log" 2>&1 \
        || { fail "build (see build.log)"; grep -m 20 -E "error" "$OUT/build.log"; continue; }
      ;;
    tests)
      # GPU parity suite first (the reason for the session), then the CPU suites as a sanity check of
      # this build (plain-loop GEMM; the models suite is left to CI).
      timeout 300 build-gpu/sparsetrain_tests -ts=gpu -d > "$OUT/tests-gpu.log" 2>&1 || fail "gpu tests (see tests-gpu.log)"
      tail -5 "$OUT/tests-gpu.log"
      timeout 240 build-gpu/sparsetrain_tests -ts=unit,grad > "$OUT/tests-cpu.log" 2>&1 || fail "cpu tests (see tests-cpu.log)"
      tail -3 "$OUT/tests-cpu.log"
      ;;
    kernelbench)
      for tf32 in on off; do
        timeout 240 build-gpu/kernelbench --model all --batch 128 --tf32 $tf32 --out "$OUT/kernelbench-tf32-$tf32.md" \
          > "$OUT/kernelbench-tf32-$tf32.log" 2>&1 || fail "kernelbench --tf32 $tf32 (see its log)"
        tail -3 "$OUT/kernelbench-tf32-$tf32.log"
      done
      ;;
    torch)
      PYTHONUNBUFFERED=1 timeout 300 python3 tools/bench/gpu_vs_pytorch.py --models resnet20 --batches 128,512 \
        --out "$OUT/pytorch.md" > "$OUT/pytorch.log" 2>&1 || fail "pytorch benchmark (see pytorch.log)"
      cat "$OUT/pytorch.md" 2>/dev/null
      ;;
    ours)
      if build-gpu/sparsetrain bench --help 2>&1 | grep -q -- "--device"; then
        for kernels in ours vendor; do
          for batch in 128 512; do
            timeout 120 build-gpu/sparsetrain bench --model resnet20 --batch $batch --device cuda --kernels $kernels \
              --density 0.5 --json --data-dir "$data_dir" >> "$OUT/ours.jsonl" 2>> "$OUT/ours.log" \
              || fail "sparsetrain bench --kernels $kernels batch $batch (see ours.log)"
          done
        done
      else
        note "ours: sparsetrain bench has no --device yet (the engine's CUDA dispatch is not written): skipped"
      fi
      ;;
    report)
      {
        echo "# GPU run $(date -u +%F) ($(head -1 "$OUT/nvidia-smi.txt" 2>/dev/null))"
        echo; echo 'Command: `tools/gpu/run_all.sh` stages '"$*"' (see the script)'; echo
        grep -m1 -E "H100|H200|NVIDIA" "$OUT/nvidia-smi.txt" 2>/dev/null; echo
        echo "## Stages"; echo; echo '```'; cat "$OUT/stages.log" 2>/dev/null; echo '```'
        echo; echo "## GPU tests"; echo; echo '```'; tail -8 "$OUT/tests-gpu.log" 2>/dev/null; echo '```'
        for f in "$OUT"/kernelbench-tf32-*.md; do [ -f "$f" ] && { echo; echo "## $(basename "$f" .md)"; echo; cat "$f"; }; done
        echo; echo "## PyTorch"; echo; cat "$OUT/pytorch.md" 2>/dev/null
        echo; echo "## sparsetrain"; echo; echo '```'; cat "$OUT/ours.jsonl" 2>/dev/null; echo '```'
      } > "$OUT/report.md"
      ;;
    *) fail "unknown stage '$stage' (known: build tests kernelbench torch ours report)"; continue ;;
  esac
  note "$stage done in $(( $(date +%s) - start )) s"
done
exit $status
