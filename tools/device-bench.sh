#!/usr/bin/env bash
# Device benchmark (called by tools/device-check.sh): BUILD OUT
#   1. cudabench ops: per-kernel time, GB/s and TFLOP/s at released shapes against the
#      copy / cuBLAS BF16 / cuBLASLt FP8 ceilings measured in the same run;
#   1b. cudabench prefill: the prefill FP8 GEMM on the model's shapes (S = 64, 512, 4096),
#      own engine kernel against cuBLASLt's block-scaled FP8 path (NVMOE_CUDA_GEMM=lt):
#      TFLOP/s, share of the cuBLASLt FP8 ceiling, max |difference| per row max;
#   2. cudabench fwd on a full-width mkmodel checkpoint (2 layers, 32 experts):
#      prefill and decode tokens per second with every expert resident on the GPU;
#   3. `nvmoe bench --backend cuda` on the same model (experts resident): host->device
#      bandwidth from page-locked and pageable memory, prefill/decode tok/s;
#   4. `nvmoe bench --backend cuda` on a full-width model whose routed experts (~24 GB:
#      6 layers + MTP x 256 experts) exceed the budget: fully resident, then
#      --vram-budget 16G with a --host-cache of 8G (smaller than the experts), so the
#      GPU expert slots are fed from a page-locked host cache fed from the disk.
#      Skipped when /tmp has less than 40 GB free, or with NVMOE_BENCH_BIG=0 (what
#      tools/device-check.sh passes: writing the 24 GB model takes minutes).
# Exits 0 with one line when there is no build or no CUDA device.
set -uo pipefail
build=${1:-build-dev}
out=${2:-device-out}
mkdir -p "$out"
if [ ! -x "$build/cudabench" ]; then echo "device-bench: no $build/cudabench (build with CUDA first)"; exit 0; fi
if [ -x "$build/tests/test_cuda_ops" ] && ! "$build/tests/test_cuda_ops" --probe >/dev/null 2>&1; then
  echo "device-bench: no CUDA device: nothing to measure"; exit 0
fi
"$build/cudabench" ops 2>&1 | tee "$out/cudabench-ops.txt"
"$build/cudabench" prefill 2>&1 | tee "$out/cudabench-prefill.txt"
model=/tmp/nvmoe-full-2l
if [ -x "$build/mkmodel" ]; then
  [ -d "$model" ] || "$build/mkmodel" --preset full --layers 2 --experts 32 --out "$model" --quiet \
    --threads "$(nproc)" >"$out/mkmodel.log" 2>&1 || { echo "mkmodel failed (see mkmodel.log)"; exit 0; }
  "$build/cudabench" fwd "$model" --prefill 64 --decode 32 2>&1 | tee "$out/cudabench-fwd.txt"
  "$build/nvmoe" bench "$model" --backend cuda --prefill 64 --decode 32 --json \
    >"$out/nvmoe-bench-resident-2l.json" 2>"$out/nvmoe-bench-resident-2l.txt"
  cat "$out/nvmoe-bench-resident-2l.txt"
  big=/tmp/nvmoe-full-6l
  free_gb=$(df -BG --output=avail /tmp | tail -1 | tr -dc 0-9)
  if [ "${NVMOE_BENCH_BIG:-1}" = 0 ]; then
    echo "skip: the 6-layer budget benchmark (NVMOE_BENCH_BIG=0)"
  elif [ -d "$big" ] || [ "${free_gb:-0}" -ge 40 ]; then
    [ -d "$big" ] || "$build/mkmodel" --preset full --layers 6 --experts 256 --out "$big" --quiet \
      --threads "$(nproc)" >>"$out/mkmodel.log" 2>&1 || { echo "mkmodel (6 layers) failed"; exit 0; }
    for run in resident budget16g; do
      args=()
      [ $run = budget16g ] && args=(--vram-budget 16G --host-cache 8G --no-mlock --stats)
      echo "== nvmoe bench $big ${args[*]}"
      "$build/nvmoe" bench "$big" --backend cuda --prefill 64 --decode 32 --json "${args[@]}" \
        >"$out/nvmoe-bench-$run-6l.json" 2>"$out/nvmoe-bench-$run-6l.txt"
      echo "rc=$?"
      cat "$out/nvmoe-bench-$run-6l.txt"
    done
  else
    echo "skip: the 6-layer budget benchmark needs 40 GB free in /tmp (${free_gb:-?} GB)"
  fi
fi
