#!/bin/bash
# tools/sanitize.sh [BUILD_DIR] - the ASan + UBSan pass (README "For developers"):
# configures BUILD_DIR (default build-san) with -DNVMOE_SANITIZE=ON (address,undefined,
# -fno-sanitize-recover=undefined), runs ctest (the libFuzzer tests are left out: they
# build their own sanitized binaries) and then the CLI paths tests may not reach (chat
# /file on bad files, Think High turns that rewind, Ctrl-C during a layer-major prefill,
# prompts longer than the context, layer-major eval with tiny host caches, bench --json,
# damaged stores).  Every sanitizer report is written under $LOGS (log_path), so a report
# from a process whose stderr a test swallows is still seen.  Exit 1 when any report was
# written or a step failed.  Stages: NV_SAN_STAGES="build ctest cli" (default all).
set -u
cd "$(dirname "$0")/.."
B=${1:-build-san}
STAGES=${NV_SAN_STAGES:-build ctest cli}
LOGS=$(mktemp -d /tmp/nvmoe-san-logs.XXXXXX)
T=$(mktemp -d /tmp/nvmoe-san.XXXXXX)
export ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:abort_on_error=1:print_stacktrace=1:log_path=$LOGS/asan
export UBSAN_OPTIONS=halt_on_error=1:abort_on_error=1:print_stacktrace=1:log_path=$LOGS/ubsan
fails=0
say() { echo "== $*"; }
# want RC CMD...: run CMD, its status must be RC (one line per step)
want() {
	local w=$1; shift
	"$@" > "$T/out" 2> "$T/err" < "${IN:-/dev/null}"
	local r=$?
	if [ "$r" = "$w" ]; then echo "ok   rc=$r $*" | cut -c1-160
	else echo "FAIL rc=$r (expected $w) $*"; head -c 600 "$T/err"; fails=$((fails + 1)); fi
}
if [[ $STAGES == *build* ]]; then
	say build
	cmake -S . -B "$B" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DNVMOE_CUDA=OFF -DNVMOE_SANITIZE=ON > /dev/null &&
		cmake --build "$B" -j2 > "$T/build.log" || { tail -30 "$T/build.log"; exit 1; }
fi
NV=$PWD/$B/nvmoe MK=$PWD/$B/mkmodel
if [[ $STAGES == *ctest* ]]; then
	say "ctest (sanitizers; fuzz tests excluded)"
	(cd "$B" && ctest -j2 --timeout 900 -E 'fuzz_parsers|fuzz_tok' --output-on-failure) > "$T/ctest.log" 2>&1 ||
		fails=$((fails + 1))
	grep -E "tests passed|\*\*\*|Failed" "$T/ctest.log"
fi
if [[ $STAGES == *cli* ]]; then
	say "cli paths"
	"$MK" --preset tiny-ci --tokenizer-dir tests/data/tok_chat --out "$T/ci" --quiet || exit 1
	"$MK" --preset tiny-edge --tokenizer-dir tests/data/tok_chat --out "$T/edge" --quiet || exit 1
	python3 - "$T" <<'PY'
import json, random, sys
t = sys.argv[1]
random.seed(1)
w = ["alpha", "beta", "gamma", "delta", "word", "the", "model", "runs", "fast", "on", "disk"]
open(t + "/huge.txt", "w").write(" ".join(random.choice(w) for _ in range(400000)))
open(t + "/long.txt", "w").write(" ".join(random.choice(w) for _ in range(3000)))
open(t + "/mid.txt", "w").write(" ".join(random.choice(w) for _ in range(200)))
open(t + "/bin.dat", "wb").write(b"abc\0def")
open(t + "/badutf.txt", "wb").write(b"ok\xff\xfe bad")
json.dump([random.randrange(0, 500) for _ in range(300)], open(t + "/toks.json", "w"))
PY
	printf '/file /nonexistent/x\n/file %s\n/file %s\n/file %s\n/file %s\nsummarise\n/file\n/think high\nfirst question here\nsecond one\nthird\n/think max\nfourth\n/think none\nfifth\n/stats\n/exit\n' \
		"$T/bin.dat" "$T" "$T/badutf.txt" "$T/huge.txt" > "$T/in1"
	IN=$T/in1 want 0 "$NV" chat "$T/ci" --max-tokens 4 --chunk 8
	printf '/think high\n/file %s\nfirst question here\nsecond one, a bit longer\nthird\n/stats\n/exit\n' "$T/mid.txt" > "$T/in2"
	IN=$T/in2 want 0 "$NV" chat "$T/edge" --max-tokens 6 --chunk 16 --host-cache 1M --prefill-order layer
	want 1 "$NV" run "$T/ci" --prompt-file "$T/long.txt" --max-tokens 4 --ctx 512
	want 1 "$NV" run "$T/ci" --prompt-file "$T/long.txt" --max-tokens 4 --host-cache 1M --prefill-order layer
	want 1 "$NV" run "$T/ci" --prompt-file "$T/bin.dat"
	want 0 "$NV" run "$T/ci" --prompt-file "$T/mid.txt" --max-tokens 8 --host-cache 1M --prefill-order layer --stats
	want 1 "$NV" eval "$T/ci" --tokens "$T/toks.json" --out "$T/ev.bin" --prefill-order layer --host-cache 1
	for m in ci edge; do
		for hc in 60K 256K 1M; do
			want 0 "$NV" eval "$T/$m" --tokens "$T/toks.json" --out "$T/ev.bin" --chunk 32 --prefill-order layer --host-cache $hc --stats
		done
		want 0 "$NV" bench "$T/$m" --json --prefill 48 --decode 4 --repeat 1 --threads 2
		want 0 "$NV" bench "$T/$m" --json --prefill 48 --decode 4 --repeat 1 --chunk 16 --prefill-order layer --host-cache 512K
	done
	want 0 "$NV" convert "$T/ci" --out "$T/store"
	want 0 "$NV" eval "$T/store" --tokens "$T/toks.json" --out "$T/ev.bin" --chunk 16 --prefill-order layer --host-cache 200K
	cp -r "$T/store" "$T/bad" && python3 -c "
f = open('$T/bad/experts.nvmoe', 'r+b'); f.seek(70000); b = f.read(64); f.seek(70000); f.write(bytes(x ^ 0x55 for x in b))"
	want 1 "$NV" eval "$T/bad" --tokens "$T/toks.json" --out "$T/ev.bin" --chunk 16 --prefill-order layer --host-cache 200K
	truncate -s 100000 "$T/bad/experts.nvmoe"
	want 1 "$NV" eval "$T/bad" --tokens "$T/toks.json" --out "$T/ev.bin"
	python3 tools/sanitize_ctrlc.py "$NV" "$MK" "$T" || fails=$((fails + 1))
fi
if ls "$LOGS"/* > /dev/null 2>&1; then
	say "sanitizer reports:"
	for f in "$LOGS"/*; do echo "--- $f"; head -40 "$f"; done
	fails=$((fails + 1))
else
	say "no sanitizer report"
fi
rm -rf "$T"
[ $fails = 0 ] && say "sanitize: clean" || say "sanitize: $fails problem(s)"
[ $fails = 0 ]
