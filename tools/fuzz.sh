#!/usr/bin/env bash
# tools/fuzz.sh [OUTDIR] - build the parser fuzzers (libFuzzer, ASan, UBSan) with clang
# and run each for FUZZ_SECONDS (default 30) seconds.  Targets:
#   fuzz_safetensors  core_st_parse_header (one safetensors header, checks 5-10)
#   fuzz_config       core_config_parse (+ core_expected_tensors)
#   fuzz_store        offload_store_open + offload_store_verify (edits of a valid store)
# Seeds: tests/fuzz/seeds/<target>/, plus the golden shards' headers and configs when
# ../shared exists.  The corpus grows in OUTDIR (default ./fuzz-out) across runs.
# Exit: 0 no finding, 1 a crash/leak/UB/timeout (reproducer saved in OUTDIR), 77 no
# clang/libFuzzer here (skipped).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/fuzz-out}
secs=${FUZZ_SECONDS:-30}
cc=${FUZZ_CC:-clang}
mkdir -p "$out"
out=$(cd "$out" && pwd)

if ! command -v "$cc" >/dev/null; then echo "SKIP: $cc not found"; exit 77; fi
echo 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { return 0; }' >"$out/probe.c"
if ! "$cc" -fsanitize=fuzzer "$out/probe.c" -o "$out/probe" 2>/dev/null; then
	echo "SKIP: $cc cannot link -fsanitize=fuzzer (libFuzzer missing)"
	exit 77
fi

libs=$(pkg-config --cflags --libs libcjson libxxhash 2>/dev/null || echo "-lcjson -lxxhash")
flags=(-g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
	-I"$root" -std=gnu11)
core=("$root/core/safetensors.c" "$root/core/config.c" "$root/core/expected.c" "$root/core/err.c")
for t in safetensors config; do
	# shellcheck disable=SC2086
	"$cc" "${flags[@]}" "$root/tests/fuzz/fuzz_$t.c" "${core[@]}" $libs -lm -o "$out/fuzz_$t"
done
# shellcheck disable=SC2086
"$cc" "${flags[@]}" "$root/tests/fuzz/fuzz_store.c" "$root/offload/store.c" "$root/core/err.c" $libs -lm -o "$out/fuzz_store"

# Seeds from the golden checkpoints: 8-byte data length + the header JSON.
shared=${NV_SHARED:-$root/../shared}
mkdir -p "$out/corpus_safetensors" "$out/corpus_config" "$out/corpus_store"
if [ -d "$shared/golden" ]; then
	for f in "$shared"/golden/*/ckpt/*.safetensors; do
		[ -f "$f" ] || continue
		n=$(od -An -tu8 -N8 "$f" | tr -d ' ')
		size=$(stat -c %s "$f")
		d=$((size - 8 - n))
		seed="$out/corpus_safetensors/golden_$(basename "$(dirname "$(dirname "$f")")")_$(basename "$f" .safetensors)"
		{
			for k in 0 1 2 3 4 5 6 7; do printf "\\x$(printf %02x $(((d >> (8 * k)) & 255)))"; done
			head -c $((8 + n)) "$f" | tail -c +9
		} >"$seed"
	done
	for f in "$shared"/golden/*/ckpt/config.json; do
		cp "$f" "$out/corpus_config/golden_$(basename "$(dirname "$(dirname "$f")")").json"
	done
fi

status=0
for t in safetensors config store; do
	echo "== fuzz_$t: $secs s"
	log="$out/fuzz_$t.log"
	if ! (cd "$out" && "./fuzz_$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
		-print_final_stats=1 -artifact_prefix="$out/crash_$t-" "corpus_$t" "$root/tests/fuzz/seeds/$t") \
		>"$log" 2>&1; then
		echo "FAIL: fuzz_$t found a problem; reproducer: $(ls "$out"/crash_"$t"-* 2>/dev/null | head -1)"
		tail -40 "$log"
		status=1
	else
		grep -E "^stat::number_of_executed_units|^stat::new_units_added|^#[0-9]+ *DONE" "$log" || true
		echo "   corpus: $(ls "$out/corpus_$t" | wc -l) inputs"
	fi
done
exit $status
