#!/usr/bin/env bash
# Prefetch never changes numbers: `nvmoe eval` logits, token by token (--chunk 1,
# so the router lookahead and the arrival-order pipeline run on every step) and in
# chunks, are bitwise identical with prefetch on (lookahead 0, 1, 2, 4), off, and
# with every expert resident.  Model: TINY-CI from mkmodel; the host cache holds
# about 3 of the 8 experts of each block, so prefetches evict and get cancelled.
# Also: the routing trace written by --trace-experts replays in tracesim (MIN >=
# every policy), and an unwritable trace path fails with one message.
set -euo pipefail
B=${NV_BUILD:?}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
"$B/mkmodel" --preset tiny-ci --out "$T/hf" --quiet
python3 -c "
import random; r = random.Random(11)
print([r.randrange(2, 512) for _ in range(60)])" > "$T/tok.json"
exp_bytes=$("$B/nvmoe" inspect "$T/hf" | sed -n 's/^one expert: [0-9]* tensors, \([0-9,]*\) bytes.*/\1/p' | tr -d ,)
[ -n "$exp_bytes" ] || { echo "FAIL: cannot read the expert size from inspect"; exit 1; }
small=$(( (exp_bytes + 8191) / 4096 * 4096 * 3 * 7 ))
# chunk-major: token-by-token steps, as in decode (auto would run layer-major here)
ev() { "$B/nvmoe" eval "$T/hf" --tokens "$T/tok.json" --prefill-order chunk "$@" >/dev/null; }
ev --chunk 1 --out "$T/ref.f32"
rc=0
ev --chunk 1 --out "$T/on.f32" --host-cache "$small" --stats --trace-experts "$T/t.trace" 2>"$T/on.err"
ev --chunk 1 --out "$T/off.f32" --host-cache "$small" --no-prefetch
ev --chunk 1 --out "$T/l0.f32" --host-cache "$small" --lookahead 0
ev --chunk 1 --out "$T/l1.f32" --host-cache "$small" --lookahead 1
ev --chunk 1 --out "$T/l4.f32" --host-cache "$small" --lookahead 4
ev --chunk 7 --out "$T/c7.f32" --host-cache "$small"
for f in on off l0 l1 l4 c7; do
  cmp "$T/ref.f32" "$T/$f.f32" || { echo "FAIL: $f.f32 differs from the resident run"; rc=1; }
done
grep -q "hash prefetch [1-9][0-9]*/[1-9]" "$T/on.err" || { echo "FAIL: no hash prefetch in the stats: $(cat "$T/on.err")"; rc=1; }
grep -q "lookahead prefetch [0-9]*/[1-9]" "$T/on.err" || { echo "FAIL: no lookahead prefetch in the stats: $(cat "$T/on.err")"; rc=1; }
# the trace: 60 tokens x 6 main blocks of routing records, replayable
n=$(grep -c '^r ' "$T/t.trace")
[ "$n" -eq $(( 60 * 6 )) ] || { echo "FAIL: trace has $n routing records, expected 360"; rc=1; }
out=$("$B/tracesim" "$T/t.trace" --sizes 6,12,24 --policies lru,lfu,s3fifo)
echo "$out" | awk '$1 ~ /^[0-9]+$/ && NF == 6 { rows++; for (i = 3; i <= 5; i++) if ($i > $6) bad = 1 }
  END { exit (rows == 3 && !bad) ? 0 : 1 }' || { echo "FAIL: tracesim table (MIN must bound every policy):"; echo "$out"; rc=1; }
# bad trace path: one message naming it, exit 1
if "$B/nvmoe" eval "$T/hf" --tokens "$T/tok.json" --out "$T/x.f32" --trace-experts /nonexistent-dir/t.trace >/dev/null 2>"$T/bad.err"; then
  echo "FAIL: unwritable trace path accepted"; rc=1
fi
grep -q "/nonexistent-dir/t.trace" "$T/bad.err" || { echo "FAIL: message does not name the trace: $(cat "$T/bad.err")"; rc=1; }
[ $rc -eq 0 ] && echo "ok: prefetch on/off/lookahead 0,1,4/chunked agree bitwise with the resident run; trace replays"
exit $rc
