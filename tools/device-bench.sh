#!/usr/bin/env bash
# Device benchmark (called by tools/device-check.sh): BUILD OUT
#   1. cudabench ops: per-kernel time, GB/s and TFLOP/s at released shapes against the
#      copy / cuBLAS BF16 / cuBLASLt FP8 ceilings measured in the same run;
#   2. cudabench fwd on a full-width mkmodel checkpoint (2 layers, 32 experts):
#      prefill and decode tokens per second with every expert resident on the GPU;
#   3. `nvmoe bench --backend cuda` on the same model once that command exists.
set -uo pipefail
build=${1:-build-dev}
out=${2:-device-out}
mkdir -p "$out"
"$build/cudabench" ops 2>&1 | tee "$out/cudabench-ops.txt"
model=/tmp/nvmoe-full-2l
if [ -x "$build/mkmodel" ]; then
  [ -d "$model" ] || "$build/mkmodel" --preset full --layers 2 --experts 32 --out "$model" --quiet \
    --threads "$(nproc)" >"$out/mkmodel.log" 2>&1 || { echo "mkmodel failed (see mkmodel.log)"; exit 0; }
  "$build/cudabench" fwd "$model" --prefill 64 --decode 32 2>&1 | tee "$out/cudabench-fwd.txt"
  if "$build/nvmoe" bench --help >/dev/null 2>&1; then
    "$build/nvmoe" bench "$model" --backend cuda 2>&1 | tee "$out/nvmoe-bench.txt"
  fi
fi
