#!/usr/bin/env bash
# tools/fuzz-tok.sh [OUTDIR] [SECONDS] - build the tokenizer and chat-format fuzzers
# with clang (libFuzzer + ASan + UBSan) and run each for SECONDS (default 20).
# Exit 77 when clang (or libFuzzer) is unavailable; 1 when a fuzzer finds a bug
# (the reproducer is left in OUTDIR/<target>-crashes/).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${1:-$ROOT/build/fuzz-tok}
SECS=${2:-20}
CC=${FUZZ_CC:-$(command -v clang || command -v clang-14 || true)}
if [ -z "$CC" ]; then echo "SKIP: clang not found"; exit 77; fi
mkdir -p "$OUT"
if ! echo 'int LLVMFuzzerTestOneInput(const char *d, long n){return 0;}' |
	"$CC" -x c -fsanitize=fuzzer - -o "$OUT/probe" 2>/dev/null; then
	echo "SKIP: $CC has no libFuzzer"; exit 77
fi
CFLAGS=(-O1 -g -std=gnu11 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
	-fno-omit-frame-pointer -I"$ROOT")
SRC=("$ROOT"/core/tokenizer.c "$ROOT"/core/tok_decode.c "$ROOT"/core/chat.c "$ROOT"/core/chat_json.c
	"$ROOT"/core/chat_parse.c "$ROOT"/core/err.c)
LIBS=(-lpcre2-8 -lcjson -lxxhash -lm)
for t in fuzz_tokenizer fuzz_chat_parse; do
	"$CC" "${CFLAGS[@]}" "$ROOT/tests/fuzz/$t.c" "${SRC[@]}" "${LIBS[@]}" -o "$OUT/$t" &
done
wait

# seeds: the test data, and the reference vectors when ../shared is there
REF=${NV_SHARED:-$ROOT/../shared}/ref/deepseek-v4-flash
mkdir -p "$OUT/seed-tok" "$OUT/seed-chat" "$OUT/fuzz_tokenizer-crashes" "$OUT/fuzz_chat_parse-crashes"
printf 'Hello, world! 123\nsecond line' >"$OUT/seed-tok/a"
printf '你好，世界！ Καλημέρα κόσμε 🌍 <｜User｜>x<think>' >"$OUT/seed-tok/b"
printf 'r</think>c\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name="f">\n<｜DSML｜parameter name="a" string="true">v</｜DSML｜parameter>\n</｜DSML｜invoke>\n</｜DSML｜tool_calls><｜end▁of▁sentence｜>' >"$OUT/seed-chat/a"
printf '{"messages": [{"role": "user", "content": "q", "task": "action"}, {"role": "assistant", "content": "a"}], "tools": [{"type": "function", "function": {"name": "f", "parameters": {"x": 1.5}}}]}' >"$OUT/seed-chat/b"
TOKJSON=$ROOT/tests/data/tok_tiny.json
if [ -d "$REF" ]; then
	TOKJSON=$REF
	for f in "$REF"/encoding-tests/output_*.txt; do cp "$f" "$OUT/seed-tok/"; done
	for f in "$REF"/encoding-tests/input_*.json; do cp "$f" "$OUT/seed-chat/"; done
fi
rc=0
run() { # target seed-dir
	local t=$1 seeds=$2
	mkdir -p "$OUT/$t-corpus"
	echo "== $t: ${SECS}s"
	if ! (cd "$OUT/$t-crashes" && FUZZ_TOKENIZER=$TOKJSON "$OUT/$t" -max_total_time="$SECS" -max_len=8192 \
		-timeout=10 -rss_limit_mb=4096 -print_final_stats=1 "$OUT/$t-corpus" "$seeds" 2>"$OUT/$t.log"); then
		echo "FAIL: $t found a problem; log $OUT/$t.log, reproducer in $OUT/$t-crashes/"
		tail -40 "$OUT/$t.log"
		rc=1
	else
		grep -E "stat::number_of_executed_units|cov:" "$OUT/$t.log" | tail -2
	fi
}
run fuzz_tokenizer "$OUT/seed-tok"
run fuzz_chat_parse "$OUT/seed-chat"
exit $rc
