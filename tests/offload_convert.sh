#!/usr/bin/env bash
# nvmoe convert on a synthetic checkpoint: a complete conversion, refusal to
# overwrite without --force, a conversion killed with SIGKILL midway (a hook kills
# the process after N experts: deterministic, no sleeps) leaves no complete-looking
# output and no damage to an existing one, the next run removes the debris.
set -u
NV="$NV_BUILD/nvmoe"
MK="$NV_BUILD/mkmodel"
T=$(mktemp -d "$NV_BUILD/ot-conv-XXXXXX")
trap 'rm -rf "$T"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

"$MK" --preset tiny-ci --out "$T/hf" --quiet >/dev/null 2>&1 || { echo "mkmodel failed"; exit 1; }

# 1. complete conversion
"$NV" convert "$T/hf" --out "$T/out" >"$T/o1" 2>"$T/e1" || fail "convert exited $?: $(cat "$T/e1")"
for f in experts.nvmoe config.json generation_config.json model.safetensors.index.json model-00001-of-00001.safetensors; do
  [ -f "$T/out/$f" ] || fail "converted directory lacks $f"
done
grep -q "100%" "$T/e1" || fail "no progress bar reaching 100% on stderr"
grep -q "converted .* 56 experts" "$T/o1" || fail "summary line: $(cat "$T/o1")"
ls "$T" | grep -q 'out.tmp-' && fail "temporary directory left after success"
sum1=$(cksum < "$T/out/experts.nvmoe")

# 2. refuses to overwrite
if "$NV" convert "$T/hf" --out "$T/out" >/dev/null 2>"$T/e2"; then fail "overwrote without --force"; fi
grep -q -- "--force" "$T/e2" || fail "refusal message does not mention --force: $(cat "$T/e2")"
[ "$(cksum < "$T/out/experts.nvmoe")" = "$sum1" ] || fail "refused conversion changed the output"

# 3. killed midway (SIGKILL after 20 of 56 experts): nothing complete-looking
NVMOE_TEST_CONVERT_KILL_AFTER=20 "$NV" convert "$T/hf" --out "$T/k" >/dev/null 2>&1
rc=$?
[ $rc -eq 137 ] || fail "killed conversion exited $rc, expected 137 (SIGKILL)"
[ -e "$T/k" ] && fail "a killed conversion left $T/k"
tmpd=$(ls -d "$T"/k.tmp-* 2>/dev/null | head -1)
[ -n "$tmpd" ] || fail "no temporary directory (was the kill before any write?)"
if [ -n "$tmpd" ]; then
  [ -e "$tmpd/experts.nvmoe" ] && fail "killed conversion left a store under its final name"
  [ -f "$tmpd/experts.nvmoe.part" ] || fail "no partial store (kill came too early?)"
  # the partial store has no header: not mistaken for a store
  [ "$(head -c 8 "$tmpd/experts.nvmoe.part")" = "NVMOEXST" ] && fail "partial store carries the store magic"
fi

# 4. the next conversion into the same place removes the debris and succeeds
"$NV" convert "$T/hf" --out "$T/k" >/dev/null 2>"$T/e4" || fail "convert after a kill exited $?: $(cat "$T/e4")"
grep -q "removing .*k.tmp-.*interrupted" "$T/e4" || fail "stale temporary directory not reported: $(cat "$T/e4")"
ls "$T" | grep -q 'k.tmp-' && fail "stale temporary directory not removed"
cmp -s "$T/k/experts.nvmoe" "$T/out/experts.nvmoe" || fail "second conversion differs from the first"

# 5. --force killed midway leaves the old output intact; --force completes
NVMOE_TEST_CONVERT_KILL_AFTER=30 "$NV" convert "$T/hf" --out "$T/out" --force >/dev/null 2>&1
[ "$(cksum < "$T/out/experts.nvmoe")" = "$sum1" ] || fail "a killed --force conversion damaged the existing output"
"$NV" convert "$T/hf" --out "$T/out" --force >/dev/null 2>"$T/e5" || fail "--force exited $?: $(cat "$T/e5")"
[ "$(cksum < "$T/out/experts.nvmoe")" = "$sum1" ] || fail "--force result differs"
ls "$T" | grep -q 'out.old-\|out.tmp-' && fail "debris after --force: $(ls "$T")"

# 6. bad input: a missing source, a converted source
"$NV" convert "$T/nope" --out "$T/x" >/dev/null 2>"$T/e6" && fail "converted a missing directory"
grep -q "nope" "$T/e6" || fail "missing source not named: $(cat "$T/e6")"
"$NV" convert "$T/out" --out "$T/x" >/dev/null 2>"$T/e7" && fail "converted a converted directory"
grep -q "already converted" "$T/e7" || fail "converted source message: $(cat "$T/e7")"

# 7. inspect --verify: every record's checksum; a flipped byte is named precisely
"$NV" inspect "$T/out" --verify >"$T/o8" 2>"$T/e8" || fail "inspect --verify of a good store exited $?: $(cat "$T/e8")"
grep -q "56 records checked .*: 0 bad" "$T/o8" || fail "verify summary: $(grep store "$T/o8")"
cp -r "$T/out" "$T/bad"
# record of layer 1 expert 2: records start at 8192 (header + 1 KiB index, 4 KiB aligned),
# 53248-byte records (52224 payload + trailer, 4 KiB aligned), block-major with 8 experts
off=$((8192 + (1 * 8 + 2) * 53248))
printf '\xff' | dd of="$T/bad/experts.nvmoe" bs=1 seek=$((off + 777)) conv=notrunc 2>/dev/null
"$NV" inspect "$T/bad" --verify >"$T/o9" 2>"$T/e9" && fail "inspect --verify passed a corrupted store"
grep -q "bad record: .*experts.nvmoe: layer 1 expert 2: record at offset $off .*checksum" "$T/e9" ||
  fail "bad record message: $(cat "$T/e9")"
grep -q ": 1 bad" "$T/o9" || fail "bad count: $(grep store "$T/o9")"
# a missing store is named as such
rm "$T/bad/experts.nvmoe"
"$NV" inspect "$T/bad" >/dev/null 2>"$T/e10" && fail "inspect passed a converted directory without its store"
grep -q "expert store .*experts.nvmoe is missing" "$T/e10" || fail "missing store message: $(cat "$T/e10")"

# 8. bench --io on the converted model and on the HF shards (JSON)
for m in out hf; do
  "$NV" bench --io "$T/$m" --json >"$T/b.json" 2>"$T/eb" || fail "bench --io $m exited $?: $(cat "$T/eb")"
  [ "$(grep -c '"engine_gbps"' "$T/b.json")" -eq 4 ] || fail "bench --io $m: not 4 queue depths: $(cat "$T/b.json")"
  grep -q '"mmap_gbps"' "$T/b.json" || fail "bench --io $m: no mmap rate"
  grep -q '"fadvise_ok":	true' "$T/b.json" || fail "bench --io $m: cold-cache note missing"
  if command -v python3 >/dev/null; then python3 -m json.tool "$T/b.json" >/dev/null || fail "bench --io $m: invalid JSON"; fi
done

# 9. the compute bench runs on a converted store (its FP4 kernel figure on synthetic
#    experts of the model's shapes: the shards hold no experts)
"$NV" bench "$T/out" --json --repeat 1 --prefill 8 --decode 2 >"$T/bc.json" 2>"$T/ebc" ||
  fail "bench on a converted store exited $?: $(cat "$T/ebc")"
grep -q '"fp4_synthetic_experts":	true' "$T/bc.json" || fail "bench on a store: not marked synthetic: $(head -c 600 "$T/bc.json")"
grep -q '"decode_tok_s"' "$T/bc.json" || fail "bench on a store: no decode figure"
# the automatic memory plan names the store's host cache, not resident views
echo '[2, 3, 4, 5]' >"$T/tk.json"
"$NV" eval "$T/out" --tokens "$T/tk.json" --out "$T/tk.f32" -v 2>"$T/ev" || fail "eval on the store: $(cat "$T/ev")"
grep -q "memory plan: experts read from the expert store through a host cache" "$T/ev" ||
  fail "plan line on a store: $(grep 'memory plan' "$T/ev")"

[ $fails -eq 0 ] && echo ok
[ $fails -eq 0 ]
