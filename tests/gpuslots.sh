#!/usr/bin/env bash
# gpuslots.sh NVMOE PROBE MODEL: GPU expert slots never change numbers.  `nvmoe eval
# --backend cuda` logits are bitwise identical between the fully resident run (every
# expert uploaded once) and runs whose routed experts go through 3 GPU slots (so every
# layer copies experts on every chunk): from the mapped checkpoint, through a small
# page-locked host cache, from a converted store, and with the 2-slot minimum.
# MODEL: tiny-ci (mkmodel, HF shards: one copy per part) or tiny-a (../shared golden
# checkpoint).  Exit 77 without a CUDA device (or without ../shared for tiny-a).
set -euo pipefail
nvmoe=$1; probe=$2; model=$3
B=${NV_BUILD:?}
if ! "$probe" --probe >/dev/null 2>&1; then echo "skip: no CUDA device"; exit 77; fi
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
case $model in
tiny-ci)
  "$B/mkmodel" --preset tiny-ci --out "$T/hf" --quiet
  # 150 pseudo-random ids in [2, 512) (awk: the device machine may have no python3)
  awk 'BEGIN { x = 7; printf "["; for (i = 0; i < 150; i++) { x = (x * 1103515245 + 12345) % 2147483648;
       printf "%s%d", i ? ", " : "", 2 + int(x / 65536) % 510 } print "]" }' > "$T/tok.json"
  other() { "$B/mkmodel" --preset tiny-ci --seed 9 --out "$1" --quiet; } ;;
tiny-a)
  src=${NV_SHARED:-}/golden/tiny-a
  if [ -z "${NV_SHARED:-}" ] || [ ! -d "$src/ckpt" ]; then echo "skip: $src absent"; exit 77; fi
  cp -r "$src/ckpt" "$T/hf"
  cp "$src/tokens.json" "$T/tok.json"
  other() { "$B/mkmodel" --preset tiny-a-like --seed 9 --out "$1" --quiet; } ;;
*) echo "usage: gpuslots.sh NVMOE PROBE tiny-ci|tiny-a"; exit 2 ;;
esac
"$nvmoe" convert "$T/hf" --out "$T/store" >/dev/null 2>&1

run() { "$nvmoe" eval "$@" --backend cuda --tokens "$T/tok.json" --chunk 16; }
# go LOG ARGS...: a run that must succeed (its log shown when it does not)
go() { local log=$1; shift; if ! run "$@" 2> "$log" >/dev/null; then echo "FAIL: eval $*:"; cat "$log"; exit 1; fi; }
go "$T/res.log" "$T/hf" --out "$T/res.f32"

# The budget: what the backend holds with slots in use, plus 3.5 slots.
go "$T/probe.log" "$T/hf" --out "$T/probe.f32" --vram-budget 1T --verbose
line=$(grep 'GPU expert slots:' "$T/probe.log" || true)
slot=$(sed -n 's/.*GPU expert slots: [0-9]* x \([0-9]*\) bytes.*/\1/p' <<<"$line")
used=$(sed -n 's/.*backend holds \([0-9]*\) bytes.*/\1/p' <<<"$line")
if [ -z "$slot" ] || [ -z "$used" ]; then echo "FAIL: no slot size / backend usage in --verbose output:"; cat "$T/probe.log"; exit 1; fi
budget=$(( used + 3 * slot + slot / 2 ))
exp_bytes=$("$nvmoe" inspect "$T/hf" | sed -n 's/^one expert: [0-9]* tensors, \([0-9,]*\) bytes.*/\1/p' | tr -d ,)
hslot=$(( (exp_bytes + 4095) / 4096 * 4096 + 8192 ))
# blocks with routed experts: all (host cache size); the main ones (eval runs no MTP)
# config values and the token count without python3 (absent on the device machine)
cfg() { grep -o "\"$1\":[[:space:]]*[0-9]*" "$T/hf/config.json" | head -1 | grep -o '[0-9]*$'; }
nmain=$(cfg num_hidden_layers)
nmtp=$(cfg num_nextn_predict_layers)
nb=$(( nmain + ${nmtp:-0} ))
L=$(sed 's/.*\[//; s/\].*//' "$T/tok.json" | tr ',' '\n' | grep -c '[0-9]')
small=$(( hslot * 3 * nb ))   # host cache: about 3 experts per block

rc=0
check() { # name logfile: identical logits, 3 (or NSLOTS) slots, copies on every layer and chunk
  local name=$1 log=$2 want=${3:-3}
  if ! cmp -s "$T/res.f32" "$T/$name.f32"; then echo "FAIL: $name: logits differ from the resident run"; rc=1; fi
  local n mis
  n=$(sed -n 's/.*GPU expert slots: \([0-9]*\) x.*/\1/p' "$log")
  mis=$(sed -n 's/.*GPU slots: [0-9]*, [0-9]* hits, \([0-9]*\) misses.*/\1/p' "$log")
  if [ "$n" != "$want" ]; then echo "FAIL: $name: $n GPU slots, expected $want (budget $budget)"; cat "$log"; rc=1; fi
  local chunks=$(( (L + 15) / 16 ))
  if [ -z "$mis" ] || [ "$mis" -lt $(( nmain * chunks )) ]; then
    echo "FAIL: $name: $mis slot misses, expected at least one per block and chunk ($(( nmain * chunks )))"; rc=1
  fi
  grep -h 'GPU slots:\|GPU expert slots:' "$log" | sed "s/^/$name: /"
}
go "$T/a.log" "$T/hf" --out "$T/a.f32" --vram-budget "$budget" --verbose --stats; check a "$T/a.log"
go "$T/b.log" "$T/hf" --out "$T/b.f32" --vram-budget "$budget" --host-cache "$small" --no-mlock --verbose --stats
check b "$T/b.log"
grep -q "(page-locked)" "$T/b.log" || { echo "FAIL: b: the host cache was not page-locked"; cat "$T/b.log"; rc=1; }
go "$T/c.log" "$T/store" --out "$T/c.f32" --vram-budget "$budget" --verbose --stats; check c "$T/c.log"
NVMOE_GPU_SLOTS=2 go "$T/d.log" "$T/store" --out "$T/d.f32" --vram-budget "$budget" --host-cache "$small" --no-mlock \
  --verbose --stats
check d "$T/d.log" 2
# A budget below one slot fails with a message naming --vram-budget.
if run "$T/hf" --out "$T/e.f32" --vram-budget "$(( used + slot / 2 ))" 2> "$T/e.log" >/dev/null; then
  echo "FAIL: a budget below 2 slots was accepted"; rc=1
elif ! grep -q -- "--vram-budget" "$T/e.log"; then echo "FAIL: too-small budget: unclear message:"; cat "$T/e.log"; rc=1; fi
# The comparison can fail: another model gives other logits.
other "$T/hf2"
go "$T/f.log" "$T/hf2" --out "$T/f.f32" --vram-budget "$budget"
if cmp -s "$T/res.f32" "$T/f.f32"; then echo "FAIL: a different model gave identical logits"; rc=1; fi
[ $rc -eq 0 ] && echo "ok: $model: resident and 3-slot runs (mapped, host cache, store, 2 slots) agree bitwise"
exit $rc
