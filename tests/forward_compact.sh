#!/usr/bin/env bash
# forward_compact.sh NVMOE: the in-repo compact golden case (tiny-a, smooth, no hidden),
# then the same case perturbed (must FAIL):
#   - one logits_all row scaled by 1.01 (1% change; tolerance is 1e-4 of the row max)
#   - one expert id changed
#   - one index_sel entry changed
# A check that cannot fail is a defect, so each perturbation must give exit != 0,
# and the unperturbed case must give exit 0.
set -u
nvmoe=$1; perturb_tool=$2
tar_=${NV_TESTDATA:?}/forward/tiny-a-smooth.tar.zst
command -v zstd >/dev/null || { echo "skip: zstd CLI absent"; exit 77; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
zstd -dc "$tar_" | tar xf - -C "$tmp" || { echo "FAIL: cannot unpack $tar_"; exit 1; }
d=$tmp/tiny-a
"$nvmoe" golden "$d" --mode smooth || { echo "FAIL: unperturbed compact case"; exit 1; }
fail=0
# nvmoe eval (chunks of 7, smooth) against the golden per-position logits, 1e-4 of the row max
"$nvmoe" eval "$d/ckpt" --tokens "$d/tokens.json" --out "$tmp/eval.bin" --chunk 7 --smooth || { echo "FAIL: eval"; exit 1; }
"$perturb_tool" cmp "$tmp/eval.bin" "$d/smooth/logits_all.bin" 512 1e-4 || { echo "FAIL: eval logits vs golden logits_all"; fail=1; }
perturb() { # perturb NAME: run, expect failure, restore
	"$nvmoe" golden "$d" --mode smooth >"$tmp/out.txt" 2>&1
	rc=$?
	if [ $rc -eq 0 ]; then echo "FAIL: perturbation '$1' was not detected"; cat "$tmp/out.txt"; fail=1;
	else echo "ok: perturbation '$1' detected (exit $rc):"; grep FAIL "$tmp/out.txt" | head -3; fi
}
cp "$d/smooth/logits_all.bin" "$tmp/la.bin"
"$perturb_tool" scale "$d/smooth/logits_all.bin" 512 37 1.01 || exit 1
perturb "logits_all row 37 x 1.01"
cp "$tmp/la.bin" "$d/smooth/logits_all.bin"
cp "$d/smooth/expert_ids.bin" "$tmp/ei.bin"
"$perturb_tool" id "$d/smooth/expert_ids.bin" 8 100 || exit 1
perturb "expert_ids element 100 changed"
cp "$tmp/ei.bin" "$d/smooth/expert_ids.bin"
"$perturb_tool" id "$d/smooth/index_sel.bin" 8 $((150*6*8 + 3*8 + 2)) || exit 1
perturb "index_sel position 150 layer 3 entry changed"
exit $fail
