#!/usr/bin/env bash
# Offloading never changes numbers: `nvmoe eval` logits of one token sequence are
# bitwise identical on the HF directory (resident), the HF directory through a tiny
# host cache, the converted store (default cache) and the converted store through a
# tiny host cache.  Model: TINY-CI from mkmodel (8 experts per block, 7 blocks, so a
# 3-expert-per-block cache forces evictions and re-reads on every layer).
set -euo pipefail
B=${NV_BUILD:?}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
"$B/mkmodel" --preset tiny-ci --out "$T/hf" --quiet
python3 -c "
import random; r = random.Random(7)
print([r.randrange(2, 512) for _ in range(150)])" > "$T/tok.json"
"$B/nvmoe" convert "$T/hf" --out "$T/store" >/dev/null 2>&1
# The expert size comes from inspect; a host slot is that rounded up to 4 KiB plus a
# 4 KiB checksum page, so this cache holds about 3 experts per block (7 blocks incl. MTP).
exp_bytes=$("$B/nvmoe" inspect "$T/hf" | sed -n 's/^one expert: [0-9]* tensors, \([0-9,]*\) bytes.*/\1/p' | tr -d ,)
[ -n "$exp_bytes" ] || { echo "FAIL: cannot read the expert size from inspect"; exit 1; }
slot=$(( (exp_bytes + 4095) / 4096 * 4096 + 4096 ))
small=$(( slot * 3 * 7 ))
run() { "$B/nvmoe" eval "$@" --tokens "$T/tok.json" --chunk 16 >/dev/null; }
run "$T/hf" --out "$T/a.f32"
run "$T/hf" --out "$T/b.f32" --host-cache "$small"
run "$T/store" --out "$T/c.f32"
run "$T/store" --out "$T/d.f32" --host-cache "$small"
run "$T/hf" --out "$T/f.f32" --host-cache "$small" --policy lfu
run "$T/store" --out "$T/g.f32" --host-cache "$small" --policy s3fifo
n=$(stat -c %s "$T/a.f32")
[ "$n" -eq $(( 150 * 512 * 4 )) ] || { echo "FAIL: logits file has $n bytes, expected $(( 150 * 512 * 4 ))"; exit 1; }
rc=0
for f in b c d f g; do
  if ! cmp "$T/a.f32" "$T/$f.f32"; then echo "FAIL: $f.f32 differs from the resident run"; rc=1; fi
done
# The check can fail: a different seed's model gives different logits.
"$B/mkmodel" --preset tiny-ci --seed 9 --out "$T/hf2" --quiet
run "$T/hf2" --out "$T/e.f32"
if cmp -s "$T/a.f32" "$T/e.f32"; then echo "FAIL: a different model gave identical logits"; rc=1; fi
[ $rc -eq 0 ] && echo "ok: resident, tiny cache (lru, lfu, s3fifo), store and store+tiny cache agree bitwise ($small-byte cache)"
exit $rc
