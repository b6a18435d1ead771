#!/usr/bin/env bash
# Device check: run on the GPU machine from the repository root (the device tool's `run`
# returns only the last 12,000 characters of the output and stops a command at 600 s).
#   deps      unpacks the Debian packages of .deps/ (made here by tools/fetch-deps.sh)
#             into a private prefix /tmp/nvmoe-deps (never into /); the build finds
#             liburing, pcre2, cJSON, xxHash and readline only there
#   build     CMake + ninja into build-dev/ (CUDA on, NVMOE_DEV_ARCHS, default ci)
#   gpu       test_cuda_ops (every op against the CPU, one process per group), then the
#             other gpu-labelled tests through ctest
#   sanitize  compute-sanitizer (when found): memcheck on every test_cuda_ops group and on
#             test_gpuslots_cuda, racecheck / synccheck on the shared-memory kernels,
#             initcheck on the GEMM engine; one log per tool
#   unit      ctest -L unit
#   bench     tools/device-bench.sh without the 24 GB model (NVMOE_BENCH_BIG=0 unless set)
# Stages run in that order (most important first) within a time budget
# (NVMOE_DEV_BUDGET seconds, default 540): each gets a time box, a stage that does not
# fit is reported as skipped.  Every stage prints one status line as it ends, details are
# capped, full logs go to $OUT (default ./device-out); a summary of the status lines
# ends the output.  NVMOE_DEV_STAGES picks stages (default "build gpu sanitize unit
# bench"; deps and build always run, ninja makes a warm rebuild a no-op).
# Golden data: ../shared does not travel to the device machine; a trimmed copy in
# .shared/ (git-ignored, made by tools/fetch-deps.sh --golden) is used when carried.
# Exit status: 0 when everything that ran passed.
set -uo pipefail
cd "$(dirname "$0")/.."
T0=$(date +%s)
OUT=${OUT:-$PWD/device-out}
mkdir -p "$OUT"
BUDGET=${NVMOE_DEV_BUDGET:-540}
STAGES=" ${NVMOE_DEV_STAGES:-build gpu sanitize unit bench} "
ARCHS=${NVMOE_DEV_ARCHS:-ci}
B=build-dev
SUM=$OUT/summary.txt
: >"$SUM"
NJ=$(nproc 2>/dev/null || echo 8)
RC=0

el() { echo $(( $(date +%s) - T0 )); }
left() { echo $(( BUDGET - $(date +%s) + T0 )); }
# say LINE: a status line, printed now and repeated in the final summary
say() { printf '[%3ds] %s\n' "$(el)" "$*" | tee -a "$SUM"; }
want() { [[ $STAGES == *" $1 "* ]]; }
# box CAP: seconds for the next step: min(CAP, what the budget leaves less a margin,
# what the current stage has left when STAGE_END is set)
STAGE_END=0
box() {
  local l=$(( $(left) - 15 )) c=$1
  [ "$l" -lt "$c" ] && c=$l
  if [ "$STAGE_END" -gt 0 ]; then l=$(( STAGE_END - $(date +%s) )); [ "$l" -lt "$c" ] && c=$l; fi
  echo "$c"
}
# detail FILE PATTERN N: the first N matching lines of a log, short
detail() { grep -E "$2" "$1" 2>/dev/null | head -n "$3" | cut -c1-220 | sed 's/^/    /'; }
fail() { RC=1; say "$@"; }

finish() {
  echo "==== device-check summary ($(el) s; logs in $OUT) ===="
  cat "$SUM"
  exit $RC
}

# ---------------------------------------------------------------- deps
{
  nvidia-smi -L || echo "nvidia-smi: none"
  nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv,noheader || true
  nvcc --version | tail -2
  cmake --version | head -1
  echo "cores: $NJ"
} >"$OUT/device.txt" 2>&1
say "machine: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -1 || echo 'no nvidia-smi'); $(nvcc --version 2>/dev/null | grep -o 'release [0-9.]*' || echo 'no nvcc'); $NJ cores"
prefix=/tmp/nvmoe-deps
lib="$prefix/usr/lib/x86_64-linux-gnu"
rm -rf "$prefix" && mkdir -p "$prefix"
ndeb=0
for f in .deps/*.deb; do
  [ -f "$f" ] || continue
  if command -v dpkg-deb >/dev/null; then
    dpkg-deb -x "$f" "$prefix" || fail "deps: cannot unpack $f"
  else # no dpkg: a .deb is an ar archive holding data.tar.{xz,zst,gz}
    m=$(ar t "$f" | grep '^data\.tar')
    case $m in
      *.xz) ar p "$f" "$m" | tar -xJ -C "$prefix" ;;
      *.zst) ar p "$f" "$m" | zstd -dc | tar -x -C "$prefix" ;;
      *) ar p "$f" "$m" | tar -xz -C "$prefix" ;;
    esac || fail "deps: cannot unpack $f"
  fi
  ndeb=$((ndeb + 1))
done
[ $ndeb -gt 0 ] || { fail "deps: .deps/ holds no .deb: run tools/fetch-deps.sh --golden here and carry .deps"; finish; }
# Debian's -dev symlinks may be absolute (usr/lib/.../libreadline.so -> /lib/.../libreadline.so.8):
# point them into the prefix, or the link would look for the system's copy (absent there).
nfix=0
while IFS= read -r l; do
  tgt=$(readlink "$l")
  case $tgt in /*) ln -sfn "$prefix$tgt" "$l"; nfix=$((nfix + 1)) ;; esac
done < <(find "$prefix" -type l)
# libraries live in usr/lib/<arch> and (readline, tinfo: Debian 12 packages) lib/<arch>
export LD_LIBRARY_PATH="$lib:$prefix/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
shared_arg=()
[ -d .shared/golden ] && shared_arg=(-DNVMOE_SHARED_DIR="$PWD/.shared")
say "deps: $ndeb packages unpacked into $prefix ($nfix absolute links redirected); golden data: $([ -d .shared/golden ] && echo .shared || echo 'absent (golden tests skip)')"

# ---------------------------------------------------------------- build
# NVMOE_DEV_CMAKE_ARGS: extra configure arguments (tools' own dry runs hide the system's
# copies of the packages with CMAKE_IGNORE_PATH, as on the device).
# shellcheck disable=SC2086
if ! timeout "$(box 120)" cmake -S . -B $B -G Ninja -DCMAKE_BUILD_TYPE=Release -DNVMOE_CUDA_ARCHS="$ARCHS" \
  -DCMAKE_PREFIX_PATH="$prefix/usr" -DCMAKE_LIBRARY_PATH="$lib;$prefix/lib/x86_64-linux-gnu" "${shared_arg[@]}" ${NVMOE_DEV_CMAKE_ARGS:-} \
  >"$OUT/build.log" 2>&1; then
  fail "configure: FAILED"
  tail -n 25 "$OUT/build.log" | cut -c1-220
  finish
fi
cuda=$(grep -o 'CUDA backend [A-Z]*' "$OUT/build.log" | tail -1)
where=""
for d in uring pcre2 cjson xxhash readline; do
  p=$(grep "^${d}_LIB:" $B/CMakeCache.txt | cut -d= -f2-)
  case $p in "$prefix"/*) where="$where $d=prefix" ;; *) where="$where $d=$p(NOT the prefix)" ;; esac
done
say "configure: $cuda, archs $ARCHS; libraries:$where"
[ "$cuda" = "CUDA backend ON" ] || fail "configure: the CUDA backend is OFF (nvcc not found?): the gpu tests cannot run"
t=$(date +%s)
if ! timeout "$(box 300)" cmake --build $B -j "$NJ" >>"$OUT/build.log" 2>&1; then
  fail "build: FAILED after $(( $(date +%s) - t )) s"
  detail "$OUT/build.log" 'error|FAILED|Error' 30
  finish
fi
missing=$(ldd $B/nvmoe 2>/dev/null | grep -E 'uring|pcre2|cjson|xxhash|readline|tinfo' | grep -v "$prefix" | tr -s ' \t' ' ' | tr '\n' ';')
say "build: ok in $(( $(date +%s) - t )) s${missing:+; WARNING libraries outside the prefix: $missing}"

# ---------------------------------------------------------------- gpu
ops=$B/tests/test_cuda_ops
probe=$("$ops" --probe 2>&1 | head -1)
have_dev=0
"$ops" --probe >/dev/null 2>&1 && have_dev=1
say "device: $probe"
if want gpu; then
  t=$(date +%s)
  NVMOE_TEST_GROUP_TIMEOUT=120 timeout "$(box 300)" "$ops" >"$OUT/test_cuda_ops.log" 2>&1
  r=$?
  line=$(grep '^test_cuda_ops:' "$OUT/test_cuda_ops.log" | tail -1)
  case $r in
    0) say "test_cuda_ops: PASS ($line, $(( $(date +%s) - t )) s)" ;;
    77) say "test_cuda_ops: skipped (no CUDA device)" ;;
    124) fail "test_cuda_ops: TIMEOUT after $(( $(date +%s) - t )) s (see test_cuda_ops.log)" ;;
    *) fail "test_cuda_ops: FAIL rc=$r: ${line:-no summary line}" ;;
  esac
  if [ $r -ne 0 ] && [ $r -ne 77 ]; then
    detail "$OUT/test_cuda_ops.log" '^group .*(FAIL|CRASH|TIMEOUT)' 20
    detail "$OUT/test_cuda_ops.log" 'FAIL|CUDA error|nvmoe:' 40
  fi
  t=$(date +%s)
  (cd $B && timeout "$(box 300)" ctest -L gpu -E '^test_cuda_ops$' --timeout 200 -j 4 --output-on-failure) \
    >"$OUT/ctest-gpu.log" 2>&1
  r=$?
  # "1/11 Test  #5: name .....***Skipped   0.05 sec" -> "skip name 0.05s;"
  res=$(grep -E 'Test +#[0-9]+:' "$OUT/ctest-gpu.log" | sed -E 's/.*#[0-9]+: ([^ ]+) [.* ]*([A-Za-z:]+).* ([0-9.]+) sec.*/\2 \1 \3s/' |
    sed -E 's/^Passed/PASS/; s/^Skipped/skip/; s/^Failed/FAIL/' | tr '\n' ';')
  if [ $r -eq 0 ]; then say "ctest gpu: ok: $res"; else fail "ctest gpu: rc=$r: $res"; fi
  [ $r -ne 0 ] && detail "$OUT/ctest-gpu.log" 'FAIL|CUDA error|nvmoe:|rror' 40
fi

# ---------------------------------------------------------------- sanitize
cs=$(command -v compute-sanitizer || true)
for c in /usr/local/cuda/bin/compute-sanitizer /usr/local/cuda/compute-sanitizer/compute-sanitizer; do
  [ -z "$cs" ] && [ -x "$c" ] && cs=$c
done
# san TOOL LOG CAP CMD...: one sanitizer run; prints the error count of each process
san() {
  local tool=$1 log=$2 cap=$3
  shift 3
  local b
  b=$(box "$cap")
  if [ "$b" -lt 20 ]; then echo "  $tool: skipped (time budget)" >>"$log"; return 2; fi
  echo "## $tool: $*" >>"$log"
  NVMOE_TEST_GROUP_TIMEOUT=$b timeout "$b" "$cs" --tool "$tool" --print-limit 20 --error-exitcode 86 "$@" >>"$log" 2>&1
}
if want sanitize; then
  if [ -z "$cs" ]; then
    say "sanitize: compute-sanitizer not found: skipped"
  elif [ $have_dev = 0 ]; then
    say "sanitize: no CUDA device: skipped"
  else
    # the whole stage gets NVMOE_DEV_SAN_SECS (default 200) so unit tests and the bench
    # still run; every group in its own process (a fault ends only that group)
    STAGE_END=$(( $(date +%s) + ${NVMOE_DEV_SAN_SECS:-200} ))
    for tool in memcheck racecheck initcheck synccheck; do
      case $tool in
        # the most intricate indexing first, in case the stage's time runs out
        memcheck) groups="gemm_fp8 gemm_grouped gemm_dense moe attn indexer hc bigrows compress quant norms rope route
                          memory elementwise" cap=60 ;;
        racecheck|synccheck) groups="norms quant hc indexer attn route" cap=40 ;;
        initcheck) groups="gemm_dense gemm_grouped moe memory" cap=40 ;;
      esac
      log=$OUT/sanitizer-$tool.log
      : >"$log"
      ok="" bad="" skipped=""
      for g in $groups; do
        san "$tool" "$log" $cap "$ops" --inproc --only "$g"
        case $? in 0) ok="$ok $g" ;; 2) skipped="$skipped $g" ;; *) bad="$bad $g" ;; esac
      done
      if [ "$tool" = memcheck ] && [ -x $B/tests/test_gpuslots_cuda ]; then
        san memcheck "$log" 90 $B/tests/test_gpuslots_cuda
        case $? in 0) ok="$ok gpuslots_cuda" ;; 2) skipped="$skipped gpuslots_cuda" ;; *) bad="$bad gpuslots_cuda" ;; esac
      fi
      msg="sanitize $tool: clean:${ok:- none}${bad:+; ERRORS or failures:$bad}${skipped:+; skipped (time):$skipped}"
      if [ -n "$bad" ]; then fail "$msg"; detail "$log" '^## |ERROR SUMMARY: [1-9]|========= (Invalid|Race|Barrier|Uninit|Program hit|Error)|FAIL' 30
      else say "$msg"; fi
    done
    STAGE_END=0
  fi
fi

# ---------------------------------------------------------------- unit
if want unit; then
  b=$(box 240)
  if [ "$b" -lt 30 ]; then
    say "unit: skipped (time budget)"
  else
    t=$(date +%s)
    # the tokenizer tests need ../shared/ref's 14 MB tokenizer files, not carried (64 MiB limit)
    excl='^(test_tok_ref|test_chat_ref|fuzz_tok)$'
    [ -f .shared/ref/deepseek-v4-flash/tokenizer.reconstructed.json ] && excl='^$'
    (cd $B && timeout "$b" ctest -L unit -E "$excl" -j "$NJ" --timeout 120) >"$OUT/ctest-unit.log" 2>&1
    r=$?
    line=$(grep -E 'tests passed' "$OUT/ctest-unit.log" | tail -1)
    [ "$excl" != '^$' ] && line="${line:-ok}; test_tok_ref, test_chat_ref, fuzz_tok left out (tokenizer files not carried)"
    if [ $r -eq 0 ]; then say "unit: ${line:-ok} ($(( $(date +%s) - t )) s)"
    else
      fail "unit: rc=$r ${line:-(cut at the time box)} ($(( $(date +%s) - t )) s)"
      sed -n '/The following tests FAILED/,$p' "$OUT/ctest-unit.log" | head -20 | cut -c1-160
    fi
  fi
fi

# ---------------------------------------------------------------- bench
if want bench; then
  b=$(box 600)
  if [ "$b" -lt 60 ]; then
    say "bench: skipped (time budget; run NVMOE_DEV_STAGES=bench bash tools/device-check.sh)"
  else
    t=$(date +%s)
    NVMOE_BENCH_BIG=${NVMOE_BENCH_BIG:-0} timeout "$b" bash tools/device-bench.sh $B "$OUT" >"$OUT/bench.log" 2>&1
    r=$?
    say "bench: rc=$r in $(( $(date +%s) - t )) s$([ $r = 124 ] && echo ' (cut at the time box)')"
    detail "$OUT/bench.log" 'ceiling|us  |tok/s|GB/s|no CUDA|rror|skip' 45
  fi
fi
finish
