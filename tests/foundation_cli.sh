#!/usr/bin/env bash
# tests/foundation_cli.sh - `nvmoe inspect` and `nvmoe plan` against numbers known in
# advance: CHECKPOINT.md §4.2 and MODEL.md §13 for a release-shaped (sparse)
# checkpoint; for golden tiny-a/tiny-b, totals summed here (python3) from the
# safetensors headers.  Bad input must give one message and exit 1.
set -u
NVMOE=${NV_BUILD:?}/nvmoe
GEN=$NV_BUILD/tests/test_foundation_release
tmp=$(mktemp -d "${TMPDIR:-/tmp}/nvmoe-cli-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
# expect OUTPUT_FILE FIXED_STRING...: every string must occur in the file
expect() {
	local f=$1; shift
	for s in "$@"; do
		grep -qF -- "$s" "$f" || { fail "$(basename "$f"): lacks '$s'"; sed 's/^/    | /' "$f" | head -60; }
	done
}
# expect_line OUTPUT_FILE REGEX: one line matches (for aligned table rows)
expect_line() {
	grep -qE -- "$2" "$1" || { fail "$(basename "$1"): no line matches /$2/"; sed 's/^/    | /' "$1" | head -60; }
}

# --- release-shaped checkpoint (46 sparse shards, 69,187 tensors) ---
"$GEN" --write "$tmp/rel" || { echo "FAIL: cannot write the release-shaped checkpoint"; exit 1; }
"$NVMOE" inspect "$tmp/rel" >"$tmp/inspect.txt" 2>&1 || fail "inspect of the release-shaped checkpoint failed"
expect "$tmp/inspect.txt" \
	"total: 69,187 tensors, 159,609,485,896 bytes" \
	"resident: 1,603 tensors, 9,017,195,080 bytes" \
	"of it the embedding, 1,059,061,760 bytes" \
	"routed: 67,584 tensors, 150,592,290,816 bytes" \
	"one expert: 6 tensors, 13,369,344 bytes" \
	"a decoded token reads 6 x 43 of them (3,449,290,752 bytes)" \
	"warnings: 3"
expect_line "$tmp/inspect.txt" "^  ffn\.experts\.\*\.w1\.weight +11264 +47,244,640,256$"
expect_line "$tmp/inspect.txt" "^  attn\.compressor\.ape +41 +"

# plan: KV state of MODEL.md §13.1 (worked numbers), resident = 6,727,565,512 + head group
plan() { # plan CTX VRAM RAM OUT
	"$NVMOE" plan "$1" --ctx "$2" --vram "$3" --ram "$4" >"$5" 2>&1
}
plan "$tmp/rel" 65536 24G 128G "$tmp/p64k.txt" || fail "plan 24G/128G/65536 refused"
expect_line "$tmp/p64k.txt" "KV state at 65,536 tokens +456,654,848 B"
expect_line "$tmp/p64k.txt" "resident weights \(incl\. head\) +7,786,897,628 B"
expect_line "$tmp/p64k.txt" "compressor state +12,206,080 B"
expect_line "$tmp/p64k.txt" "embedding +1,059,061,760 B"
expect "$tmp/p64k.txt" "43 blocks x 6 experts x 13,369,344 B = 3,449,290,752 B routed"
plan "$tmp/rel" 1048576 48G 128G "$tmp/p1m.txt" || fail "plan 48G/128G/1M refused"
expect_line "$tmp/p1m.txt" "KV state at 1,048,576 tokens +7,219,970,048 B"
plan "$tmp/rel" 4096 24G 128G "$tmp/p4k.txt" || fail "plan 24G/128G/4096 refused"
expect_line "$tmp/p4k.txt" "KV state at 4,096 tokens +33,947,648 B"
# 0% hit rate: all 3.449 GB over PCIe and from disk; 25 GB/s, 6 GB/s, 60 GB/s DRAM:
# overlapped bound = 3.449/6 s = 574.9 ms, serial = 3.449 (1/25 + 1/6 + 2/60) = 827.8 ms
expect_line "$tmp/p4k.txt" "host hit rate +0%.*disk +3\.449 GB, PCIe +3\.449 GB -> +574\.9 \.\. +827\.8 ms/token"
# does not fit: 8 GiB of VRAM at 1M tokens
if plan "$tmp/rel" 1048576 8G 128G "$tmp/pbad.txt"; then fail "plan 8G at 1M tokens must be refused"; fi
expect "$tmp/pbad.txt" "nvmoe: error: plan: --vram: does not fit" "--vram is 8.00 GiB" "(hint:"
if plan "$tmp/rel" 4096 24G 2G "$tmp/pbad2.txt"; then fail "plan with 2G of RAM must be refused"; fi
expect "$tmp/pbad2.txt" "does not fit: the host needs" "--ram is 2.00 GiB"
# a plan from config.json alone (before the download)
mkdir "$tmp/cfgonly" && cp "$tmp/rel/config.json" "$tmp/cfgonly/"
plan "$tmp/cfgonly" 65536 24G 128G "$tmp/pcfg.txt" || fail "plan from config.json alone refused"
expect "$tmp/pcfg.txt" "config.json only"
expect_line "$tmp/pcfg.txt" "KV state at 65,536 tokens +456,654,848 B"

# context beyond the model's max_position_embeddings (TINY-CI: 1,024)
mkdir "$tmp/tinyci" && cp "${NV_TESTDATA:?}/foundation/tiny-ci-config.json" "$tmp/tinyci/config.json"
if plan "$tmp/tinyci" 4096 1G 8G "$tmp/pctx.txt"; then fail "plan past max_position_embeddings must be refused"; fi
expect "$tmp/pctx.txt" "--ctx 4096 exceeds the model's max_position_embeddings 1,024"

# --- bad input: one message, exit 1 ---
"$NVMOE" inspect "$tmp/nonexistent" >"$tmp/bad1.txt" 2>&1
[ $? -eq 1 ] || fail "inspect of a missing dir: exit status not 1"
expect "$tmp/bad1.txt" "nvmoe: error: $tmp/nonexistent/config.json: cannot open"
[ "$(wc -l <"$tmp/bad1.txt")" -eq 1 ] || fail "inspect of a missing dir: more than one line"
truncate -s -1000 "$tmp/rel/model-00003-of-00046.safetensors"
"$NVMOE" inspect "$tmp/rel" >"$tmp/bad2.txt" 2>&1
[ $? -eq 1 ] || fail "inspect of a truncated shard: exit status not 1"
expect "$tmp/bad2.txt" "model-00003-of-00046.safetensors" "truncated?"
"$NVMOE" inspect >"$tmp/bad3.txt" 2>&1
[ $? -eq 2 ] || fail "inspect without MODEL: exit status not 2"
"$NVMOE" plan "$tmp/cfgonly" --vram banana >"$tmp/bad4.txt" 2>&1
[ $? -eq 2 ] || fail "plan --vram banana: exit status not 2"
"$NVMOE" inspect --help >"$tmp/help.txt" 2>&1 || fail "inspect --help: non-zero exit"
expect "$tmp/help.txt" "usage: nvmoe inspect MODEL"

# --- golden tiny-a / tiny-b: totals from the headers ---
if [ -n "${NV_SHARED:-}" ] && [ -d "$NV_SHARED/golden" ] && command -v python3 >/dev/null; then
	for case in tiny-a tiny-b; do
		d=$NV_SHARED/golden/$case/ckpt
		"$NVMOE" inspect "$d" --verify >"$tmp/$case.txt" 2>&1 || fail "inspect $case failed"
		python3 - "$d" >"$tmp/$case.want" <<'EOF' || fail "python3 header sums for $case"
import json, os, struct, sys
d = sys.argv[1]
n = nb = rn = rb = eb = 0
for f in sorted(os.listdir(d)):
    if not f.endswith(".safetensors"):
        continue
    with open(os.path.join(d, f), "rb") as fh:
        hl = struct.unpack("<Q", fh.read(8))[0]
        h = json.loads(fh.read(hl))
    for k, v in h.items():
        if k == "__metadata__":
            continue
        b = v["data_offsets"][1] - v["data_offsets"][0]
        n += 1; nb += b
        if ".ffn.experts." in k:
            rn += 1; rb += b
        if k == "embed.weight":
            eb = b
print(f"total: {n:,} tensors, {nb:,} bytes")
print(f"resident: {n - rn:,} tensors, {nb - rb:,} bytes")
print(f"of it the embedding, {eb:,} bytes")
print(f"routed: {rn:,} tensors, {rb:,} bytes")
EOF
		while IFS= read -r line; do expect "$tmp/$case.txt" "$line"; done <"$tmp/$case.want"
		expect "$tmp/$case.txt" "checks: 1-14 passed; 15 (NaN scan): passed" "warnings: 0"
	done
else
	echo "note: ../shared or python3 absent: golden inspect totals skipped"
fi

if [ $fails -ne 0 ]; then echo "$fails failure(s)"; exit 1; fi
echo ok
