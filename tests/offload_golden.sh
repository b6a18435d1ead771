#!/usr/bin/env bash
# nvmoe golden through the streamed expert source: the golden case tiny-a with a
# host cache of a few experts (HF shards), and with its checkpoint converted to an
# expert store.  Skips (77) without ../shared.
set -u
G="$NV_SHARED/golden/tiny-a"
[ -f "$G/manifest.json" ] || { echo "SKIP: ../shared is absent"; exit 77; }
NV="$NV_BUILD/nvmoe"
T=$(mktemp -d "$NV_BUILD/ot-golden-XXXXXX")
trap 'rm -rf "$T"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
# 7 slots of 52 KiB for 56 experts
"$NV" golden "$G" --mode smooth --host-cache 400K --stats -v >"$T/o1" 2>"$T/e1" || fail "golden, HF shards, small cache: $(tail -3 "$T/o1") $(cat "$T/e1")"
grep -q "host cache 7 slot" "$T/e1" || fail "cache size not as asked: $(cat "$T/e1")"
grep -q "evictions" "$T/e1" || fail "no statistics: $(cat "$T/e1")"
mkdir "$T/case"
"$NV" convert "$G/ckpt" --out "$T/case/ckpt" >/dev/null 2>&1 || fail "convert"
for f in manifest.json tokens.json smooth exact faithful; do ln -s "$G/$f" "$T/case/$f"; done
"$NV" golden "$T/case" --mode smooth --host-cache 400K >"$T/o2" 2>"$T/e2" || fail "golden, store, small cache: $(tail -3 "$T/o2") $(cat "$T/e2")"
[ $fails -eq 0 ] && echo ok
[ $fails -eq 0 ]
