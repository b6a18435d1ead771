#!/usr/bin/env bash
# Rebuild tests/data/forward/tiny-a-smooth.tar.zst: the golden case tiny-a reduced to
# what a fresh clone needs to check the forward pass without ../shared: the
# checkpoint, the tokens and the smooth-mode outputs except the 3.9 MB `hidden`
# (the manifest is rewritten to list exactly the files shipped).
# Usage: make-compact-golden.sh [GOLDEN_DIR]   (default ../../../../shared/golden)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
golden=${1:-$here/../../../../shared/golden}
src=$golden/tiny-a
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/tiny-a/smooth"
cp -r "$src/ckpt" "$tmp/tiny-a/"
cp "$src/tokens.json" "$tmp/tiny-a/"
keep="logits_all logits_prefill_last logits_decode mtp_logits_last mtp_logits_all expert_ids mtp_expert_ids index_sel"
for f in $keep; do cp "$src/smooth/$f.bin" "$tmp/tiny-a/smooth/"; done
python3 - "$src/manifest.json" "$tmp/tiny-a/manifest.json" $keep <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
keep = set(sys.argv[3:])
sm = m["modes"]["smooth"]
sm["files"] = {k: v for k, v in sm["files"].items() if k in keep}
m["modes"] = {"smooth": sm}
m["note"] = "compact copy of tiny-a for nvmoe's own tests: smooth mode without hidden"
json.dump(m, open(sys.argv[2], "w"), indent=1)
PY
chmod -R u+w "$tmp/tiny-a"
tar cf - -C "$tmp" tiny-a | zstd -19 -q -f -o "$here/tiny-a-smooth.tar.zst"
ls -l "$here/tiny-a-smooth.tar.zst"
