#!/usr/bin/env bash
# Device check: run on the GPU machine from the repository root.
#   1. unpacks the Debian packages of .deps/ (made here by tools/fetch-deps.sh) into a
#      private prefix (never into /),
#   2. builds with CMake + ninja against it (CUDA on),
#   3. runs the gpu-labelled tests (and the unit tests, cheap) and a short benchmark,
#   4. writes logs under $OUT (or ./device-out when OUT is unset).
# Golden data: ../shared does not travel to the device machine; a trimmed copy in
# .shared/ (git-ignored, made by tools/fetch-deps.sh --golden) is used when carried.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/device-out}
mkdir -p "$OUT"
prefix=/tmp/nvmoe-deps
mkdir -p "$prefix"
for f in .deps/*.deb; do dpkg -x "$f" "$prefix"; done
lib="$prefix/usr/lib/x86_64-linux-gnu"
export LD_LIBRARY_PATH="$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
shared_arg=()
[ -d .shared ] && shared_arg=(-DNVMOE_SHARED_DIR="$PWD/.shared")
{
  nvidia-smi || true
  nvcc --version | tail -2
} >"$OUT/device.txt" 2>&1
set -e
cmake -S . -B build-dev -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$prefix/usr" \
  -DCMAKE_LIBRARY_PATH="$lib" "${shared_arg[@]}" >"$OUT/build.log" 2>&1
cmake --build build-dev -j 16 >>"$OUT/build.log" 2>&1 || { tail -50 "$OUT/build.log"; exit 1; }
set +e
(cd build-dev && ctest -L gpu --output-on-failure -j 4) 2>&1 | tee "$OUT/ctest-gpu.log"
gpu_rc=${PIPESTATUS[0]}
(cd build-dev && ctest -L unit -j 8) >"$OUT/ctest-unit.log" 2>&1
unit_rc=$?
if [ -x tools/device-bench.sh ]; then
  bash tools/device-bench.sh build-dev "$OUT" >"$OUT/bench.log" 2>&1
fi
echo "device-check: gpu tests rc=$gpu_rc, unit tests rc=$unit_rc (logs in $OUT)"
exit $(( gpu_rc != 0 || unit_rc != 0 ))
