#!/usr/bin/env bash
# tests/autoplan_cli.sh - the memory plan is the default of run/chat/bench/eval
# (cli_experts_open_auto).  TINY-CI from mkmodel (6 blocks x 8 experts):
#   - `nvmoe plan --backend cpu --ctx 150 --chunk 16` gives the fixed host bytes and the
#     expert size; `eval --ram` exactly the fixed part + all experts is resident, one
#     byte less streams (the same boundary as the plan's), and half the experts'
#     bytes streams through a host cache of exactly floor(slots) x expert bytes (-v);
#   - the streamed logits are bitwise those of the resident run (DESIGN.md §5);
#   - explicit --host-cache wins over --ram (even a --ram that cannot fit), and
#     --host-cache 0 means resident views;
#   - too little --ram: exit 1, one message with the numbers and a hint;
#   - bad --ram values: exit 2 with a message; golden does not take --ram;
#   - bench --json carries memory_plan; run --stats prints the plan line;
#   - the released (sparse) checkpoint on the CPU backend: --ram 8G is refused by the
#     plan before any weight is read (the decision itself: test_autoplan_plan).
set -u
B=${NV_BUILD:?}
NV=$B/nvmoe
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
expect() { # FILE STRING...: every string occurs
	local f=$1; shift
	for s in "$@"; do grep -qF -- "$s" "$f" || { fail "$(basename "$f") lacks '$s'"; sed 's/^/    | /' "$f" | head -20; }; done
}

"$B/mkmodel" --preset tiny-ci --out "$T/hf" --tokenizer-dir "${NV_TESTDATA:?}/tok_chat" --quiet >/dev/null 2>&1 ||
	{ echo "FAIL: mkmodel"; exit 1; }
python3 -c "
import random; r = random.Random(7)
print([r.randrange(2, 512) for _ in range(150)])" > "$T/tok.json"

# the plan's figures for eval's sequence (150 tokens, chunk 16) with RAM to spare
"$NV" plan "$T/hf" --backend cpu --ctx 150 --chunk 16 --ram 64G >"$T/plan.txt" 2>&1 || fail "plan: $(cat "$T/plan.txt")"
num() { sed -n "s/^  $1 *\([0-9,]*\) B .*/\1/p" "$T/plan.txt" | tr -d , | head -1; }
total=$(num total)
cache=$(num 'expert cache: [0-9,]* slots')
nslots=$(sed -n 's/^  expert cache: \([0-9,]*\) slots.*/\1/p' "$T/plan.txt" | tr -d ,)
[ -n "$total" ] && [ -n "$cache" ] && [ "${nslots:-0}" -gt 0 ] || { echo "FAIL: cannot read the plan"; cat "$T/plan.txt"; exit 1; }
exp_bytes=$("$NV" inspect "$T/hf" | sed -n 's/^one expert: [0-9]* tensors, \([0-9,]*\) bytes.*/\1/p' | tr -d ,)
[ "$exp_bytes" -gt 0 ] 2>/dev/null || { echo "FAIL: cannot read the expert size from inspect"; exit 1; }
# every expert of the 6 main blocks: 6 x 8 x the inspect size
[ "$nslots" -eq 48 ] || fail "plan: $nslots slots, expected 6 x 8 = 48 (all experts fit in 64G)"
[ "$cache" -eq $((48 * exp_bytes)) ] || fail "plan: cache $cache B, expected 48 x $exp_bytes"
fixed=$((total - cache))

ev() { # NAME ARGS...: eval, stderr -> NAME.err; returns the exit status
	local n=$1; shift
	"$NV" eval "$T/hf" --tokens "$T/tok.json" --chunk 16 --out "$T/$n.f32" "$@" >"$T/$n.out" 2>"$T/$n.err"
}
ev res --ram 64G -v || fail "eval --ram 64G: $(cat "$T/res.err")"
expect "$T/res.err" "memory plan: experts resident" "auto from RAM 64.00 GiB (--ram)"
grep -q "host cache" "$T/res.err" && fail "resident run describes a host cache: $(cat "$T/res.err")"
ev edge --ram $((fixed + 48 * exp_bytes)) -v || fail "eval at the exact fit: $(cat "$T/edge.err")"
expect "$T/edge.err" "memory plan: experts resident"
ev edge1 --ram $((fixed + 48 * exp_bytes - 1)) -v || fail "eval one byte short: $(cat "$T/edge1.err")"
expect "$T/edge1.err" "memory plan: experts stream through a host cache of" "(47 slots of 48 experts)"
half=$((fixed + 24 * exp_bytes + exp_bytes / 2))
ev str --ram "$half" -v || fail "eval --ram $half: $(cat "$T/str.err")"
expect "$T/str.err" "memory plan: experts stream through a host cache of" "(24 slots of 48 experts)" \
	"auto from RAM" "(--ram)"
# the host cache really built: offload_source_describe's line, with the plan's byte count
grep -Eq "host cache [0-9]+ slot\(s\)" "$T/str.err" || fail "no host-cache description: $(cat "$T/str.err")"
for f in edge edge1 str; do
	cmp -s "$T/res.f32" "$T/$f.f32" || fail "$f.f32 differs from the resident run"
done
[ "$(stat -c %s "$T/res.f32")" -eq $((150 * 512 * 4)) ] || fail "logits file size"

# explicit flags win: a --ram that cannot fit is not used; --host-cache 0 = resident views
small=$(( ( (exp_bytes + 4095) / 4096 * 4096 + 4096) * 3 * 7 ))
ev exp --ram 1M --host-cache "$small" -v || fail "explicit --host-cache with --ram 1M: $(cat "$T/exp.err")"
expect "$T/exp.err" "memory plan: explicit: --host-cache"
ev zero --ram "$half" --host-cache 0 -v || fail "--host-cache 0: $(cat "$T/zero.err")"
expect "$T/zero.err" "memory plan: explicit: --host-cache 0"
grep -q "host cache of" "$T/zero.err" && fail "--host-cache 0 streamed: $(cat "$T/zero.err")"
for f in exp zero; do cmp -s "$T/res.f32" "$T/$f.f32" || fail "$f.f32 differs from the resident run"; done

# too little RAM: exit 1, the numbers, a hint
ev tiny --ram 100M; rc=$?
[ $rc -eq 1 ] || fail "--ram 100M: exit $rc, expected 1"
expect "$T/tiny.err" "does not fit: the CPU backend needs" "--ram is 100.00 MiB" "(hint:"
[ "$(wc -l <"$T/tiny.err")" -eq 1 ] || fail "--ram 100M: more than one line: $(cat "$T/tiny.err")"
[ -e "$T/tiny.f32" ] && fail "--ram 100M left an output file"

# bad values: usage errors (2) naming the option
for v in banana 0 -5G 12X 1e30 ''; do
	ev bad --ram "$v"; rc=$?
	[ $rc -eq 2 ] || fail "--ram '$v': exit $rc, expected 2"
	expect "$T/bad.err" "bad value '$v' for --ram"
done
"$NV" golden "$T/hf" --ram 8G >"$T/g.out" 2>&1; rc=$?
[ $rc -eq 2 ] || fail "golden --ram: exit $rc, expected 2"
expect "$T/g.out" "option --ram does not apply to golden"

# bench --json: memory_plan
"$NV" bench "$T/hf" --backend cpu --json --repeat 1 --prefill 8 --decode 2 --ram "$half" >"$T/b.json" 2>"$T/b.err" ||
	fail "bench: $(tail -3 "$T/b.err")"
python3 - "$T/b.json" "$half" "$exp_bytes" <<'EOF' || fail "bench --json memory_plan"
import json, sys
j = json.load(open(sys.argv[1]))
mp = j.get("memory_plan")
ok = (mp and mp["auto"] is True and mp["stream"] is True and mp["ram_bytes"] == int(sys.argv[2])
      and mp["ram_from"] == "--ram" and mp["expert_bytes"] == int(sys.argv[3]) and mp["experts"] == 48
      and 12 <= mp["host_slots"] < 48 and mp["host_cache_bytes"] == mp["host_slots"] * int(sys.argv[3]))
if not ok:
    print("memory_plan:", mp)
    sys.exit(1)
EOF

# run --stats: the plan line (resident with RAM to spare)
"$NV" run "$T/hf" -p "Hi" --max-tokens 2 --ram 64G --stats >"$T/r.out" 2>"$T/r.err" || fail "run: $(cat "$T/r.err")"
expect "$T/r.err" "nvmoe: memory plan: experts resident"

# the released model (sparse checkpoint, headers only) on the CPU backend: 8 GiB is
# refused by the plan before any weight is read
"$B/mkmodel" --preset release --sparse --out "$T/rel" --quiet >/dev/null 2>&1 || fail "mkmodel release"
"$NV" eval "$T/rel" --backend cpu --tokens "$T/tok.json" --out "$T/rel.f32" --ram 8G >"$T/rel.err" 2>&1; rc=$?
[ $rc -eq 1 ] || fail "release with --ram 8G: exit $rc, expected 1"
expect "$T/rel.err" "does not fit: the CPU backend needs" "resident weights 7.25 GiB" "--ram is 8.00 GiB"

[ $fails -eq 0 ] && echo "ok: memory plan default (resident/streamed boundary, bitwise logits, explicit flags, errors)"
[ $fails -eq 0 ]
