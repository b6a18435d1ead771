#!/usr/bin/env bash
# tests/repl_run.sh NVMOE MKMODEL - `nvmoe run` end to end on a TINY-CI model (random
# weights) with the in-repo chat tokenizer tests/data/tok_chat.  Outputs are compared
# between runs (never against text taken from an earlier run):
#   - greedy (--temperature 0) is deterministic, equals --top-k 1 sampling (another
#     sampler path) and does not depend on the prefill chunk, the host cache or a
#     converted expert store (logits are bitwise the same, DESIGN.md §5);
#   - the chat template: --raw on the text of `nvmoe template render` gives the
#     same tokens as the templated run (so run renders exactly CHAT.md's prompt);
#   - the same seed twice gives the same text, different seeds differ (temperature 1);
#   - --max-tokens N stops after N tokens (stats line), 0 generates nothing;
#   - --think high/max: the reasoning marker line comes first; none: no marker;
#   - a tokenizer with fewer ids than the model's vocabulary: ids without a string
#     are never sampled (otherwise decoding fails);
#   - bad input: one clear message, exit 1 (2 for usage), no crash.
set -u
NV=${1:?usage: repl_run.sh NVMOE MKMODEL}
MK=${2:?usage: repl_run.sh NVMOE MKMODEL}
DATA=${NV_TESTDATA:?}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

"$MK" --preset tiny-ci --out "$T/m" --tokenizer-dir "$DATA/tok_chat" --quiet >/dev/null || { echo "mkmodel failed"; exit 1; }
M=$T/m

# run NAME ARGS...: stdout -> $T/NAME.out, stderr -> $T/NAME.err; fails on exit != 0
run() {
	local name=$1; shift
	"$NV" run "$M" "$@" >"$T/$name.out" 2>"$T/$name.err"
	local rc=$?
	[ $rc -eq 0 ] || fail "$name: exit $rc: $(head -c 400 "$T/$name.err")"
}
same() { cmp -s "$T/$1.out" "$T/$2.out" || fail "$3: outputs of $1 and $2 differ: '$(head -c 200 "$T/$1.out")' vs '$(head -c 200 "$T/$2.out")'"; }
differ() { cmp -s "$T/$1.out" "$T/$2.out" && fail "$3: outputs of $1 and $2 are identical: '$(head -c 200 "$T/$1.out")'"; }
# generated count from the --stats line
ngen() { sed -n 's/.*generated \([0-9]*\) tokens.*/\1/p' "$T/$1.err"; }

P="Hello, how are you today?"
run g1 -p "$P" --temperature 0 --max-tokens 24 --stats
run g2 -p "$P" --temperature 0 --max-tokens 24
run gk -p "$P" --temperature 1 --top-k 1 --seed 99 --max-tokens 24
run gc -p "$P" --temperature 0 --max-tokens 24 --chunk 1
run gc3 -p "$P" --temperature 0 --max-tokens 24 --chunk 3
same g1 g2 "greedy twice"
same g1 gk "greedy vs top-k 1"
same g1 gc "greedy, chunk 64 vs 1"
same g1 gc3 "greedy, chunk 64 vs 3"
[ -s "$T/g1.out" ] || fail "greedy: empty output"
grep -q '^nvmoe: prompt [0-9]* tokens, [0-9.]* tok/s; generated [0-9]* tokens, [0-9.]* tok/s' "$T/g1.err" ||
	fail "--stats line missing or malformed: $(cat "$T/g1.err")"

# streamed experts (a small host cache; a converted store) give the same greedy text
run gh -p "$P" --temperature 0 --max-tokens 24 --host-cache 2M --no-mlock
same g1 gh "greedy, resident vs --host-cache 2M"
if "$NV" convert "$M" --out "$T/store" >"$T/conv.log" 2>&1; then
	"$NV" run "$T/store" -p "$P" --temperature 0 --max-tokens 24 >"$T/gs.out" 2>"$T/gs.err" || fail "store: $(cat "$T/gs.err")"
	same g1 gs "greedy, checkpoint vs converted store"
else
	fail "nvmoe convert: $(tail -3 "$T/conv.log")"
fi

# the template: render the same one-turn chat and feed it raw
printf '[{"role": "user", "content": "%s"}]' "$P" >"$T/msg.json"
"$NV" template render "$T/msg.json" >"$T/prompt.txt" || fail "template render"
run raw --prompt-file "$T/prompt.txt" --raw --temperature 0 --max-tokens 24
same g1 raw "templated run vs --raw on the rendered prompt"
run raw2 -p "$P" --raw --temperature 0 --max-tokens 24
differ g1 raw2 "--raw must skip the template"
# --prompt-file - reads stdin
printf '%s' "$P" | "$NV" run "$M" --prompt-file - --temperature 0 --max-tokens 24 >"$T/stdin.out" 2>"$T/stdin.err" ||
	fail "--prompt-file -: $(cat "$T/stdin.err")"
same g1 stdin "-p vs --prompt-file -"

# seeds at temperature 1
run s1a -p "$P" --temperature 1 --seed 1 --max-tokens 40
run s1b -p "$P" --temperature 1 --seed 1 --max-tokens 40
run s2 -p "$P" --temperature 1 --seed 2 --max-tokens 40
same s1a s1b "same seed twice"
differ s1a s2 "seeds 1 and 2"

# --max-tokens: exactly N unless EOS came first (then fewer, and said so)
for n in 1 7 33; do
	run mt$n -p "$P" --temperature 1 --seed 5 --max-tokens $n --stats
	got=$(ngen mt$n)
	if grep -q '(max tokens)' "$T/mt$n.err"; then
		[ "$got" = "$n" ] || fail "--max-tokens $n: generated '$got'"
	else
		grep -q '(end of sequence)' "$T/mt$n.err" && [ "$got" -le "$n" ] || fail "--max-tokens $n: $(cat "$T/mt$n.err")"
	fi
done
run mt0 -p "$P" --max-tokens 0 --stats
[ "$(ngen mt0)" = 0 ] || fail "--max-tokens 0: $(cat "$T/mt0.err")"
[ ! -s "$T/mt0.out" ] || fail "--max-tokens 0: output '$(cat "$T/mt0.out")'"

# reasoning marker (stdout is not a terminal here)
run th -p "$P" --think high --max-tokens 8
run tm -p "$P" --think max --max-tokens 8 --stats
run tn -p "$P" --think none --max-tokens 8
[ "$(head -n1 "$T/th.out")" = "[reasoning]" ] || fail "--think high: first line '$(head -n1 "$T/th.out")'"
[ "$(head -n1 "$T/tm.out")" = "[reasoning]" ] || fail "--think max: first line '$(head -n1 "$T/tm.out")'"
grep -q '^\[reasoning\]$' "$T/tn.out" && fail "--think none: reasoning marker shown"
# Think Max puts the 476-byte prefix of CHAT.md B.3 in the prompt: many more tokens
pm=$(sed -n 's/.*prompt \([0-9]*\) tokens.*/\1/p' "$T/tm.err")
pg=$(sed -n 's/.*prompt \([0-9]*\) tokens.*/\1/p' "$T/g1.err")
[ -n "$pm" ] && [ -n "$pg" ] && [ "$pm" -gt $((pg + 100)) ] || fail "--think max prompt $pm tokens vs none $pg"

# a tokenizer with fewer ids (304, holes 274..299) than the vocabulary (512)
mkdir "$T/small" && cp "$M"/*.json "$M"/*.safetensors "$T/small/" && cp "$DATA/tok_tiny.json" "$T/small/tokenizer.json"
"$NV" run "$T/small" -p "hello world" --temperature 1 --seed 3 --max-tokens 200 >"$T/small.out" 2>"$T/small.err" ||
	fail "tokenizer smaller than the vocabulary: $(cat "$T/small.err")"

# EOS stop: a tokenizer whose only id inside the model's vocabulary (0..511) with a
# string is EOS (1): BOS and the byte symbols move to ids >= 600.  Every other id is
# masked, so the first sampled token must be EOS: generation stops at once, nothing shown.
mkdir "$T/eos" && cp "$M"/*.json "$M"/*.safetensors "$T/eos/"
python3 - "$DATA/tok_chat/tokenizer.json" "$T/eos/tokenizer.json" <<'EOF' || fail "making the EOS-only tokenizer"
import json, sys
t = json.load(open(sys.argv[1], encoding="utf-8"))
v = t["model"]["vocab"]
eos = [k for k, i in v.items() if i == 1][0]
nv = {k: (1 if i == 1 else 600 + i) for k, i in v.items()}
t["model"]["vocab"] = nv
t["added_tokens"] = [dict(a, id=nv.get(a["content"], 600 + a["id"])) for a in t["added_tokens"]]
json.dump(t, open(sys.argv[2], "w", encoding="utf-8"), ensure_ascii=False)
EOF
"$NV" run "$T/eos" --raw -p "$(printf '<\xef\xbd\x9cend\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>')" --temperature 1 --seed 4 --stats \
	>"$T/eos.out" 2>"$T/eos.err" || fail "EOS-only: $(cat "$T/eos.err")"
grep -q 'prompt 1 tokens.*generated 1 tokens.*(end of sequence)' "$T/eos.err" || fail "EOS stop: $(cat "$T/eos.err")"
[ ! -s "$T/eos.out" ] || fail "EOS stop: output '$(cat "$T/eos.out")'"

# bad input
# expect_err NAME RC NEEDLE ARGS...
expect_err() {
	local name=$1 want=$2 needle=$3; shift 3
	"$NV" "$@" >"$T/e.out" 2>"$T/e.err"
	local rc=$?
	[ $rc -eq "$want" ] || fail "$name: exit $rc, expected $want ($(head -c 300 "$T/e.err"))"
	grep -qF -- "$needle" "$T/e.err" || fail "$name: stderr lacks '$needle': $(head -c 300 "$T/e.err")"
	[ "$(wc -l <"$T/e.err")" -le 2 ] || fail "$name: more than one message: $(cat "$T/e.err")"
}
expect_err "invalid UTF-8" 1 "invalid UTF-8 at byte 2" run "$M" -p $'ok\xff\xfe'
printf 'fine\n\xc3' >"$T/bad.txt"
expect_err "invalid UTF-8 file" 1 "invalid UTF-8 at byte 5" run "$M" --prompt-file "$T/bad.txt"
expect_err "no prompt" 2 "-p TEXT or --prompt-file" run "$M"
expect_err "two prompts" 2 "-p TEXT or --prompt-file" run "$M" -p a --prompt-file "$T/bad.txt"
expect_err "no model" 2 "missing MODEL" run -p hi
expect_err "missing prompt file" 1 "$T/nope.txt" run "$M" --prompt-file "$T/nope.txt"
expect_err "bad think" 2 "none, high or max" run "$M" -p hi --think medium
expect_err "context too small" 1 "raise --ctx" run "$M" -p "$P" --ctx 8
expect_err "no such model" 1 "$T/none" run "$T/none" -p hi
mkdir "$T/notok" && cp "$M"/*.json "$M"/*.safetensors "$T/notok/" && rm "$T/notok/tokenizer.json"
expect_err "missing tokenizer.json" 1 "tokenizer.json" run "$T/notok" -p hi
mkdir "$T/badtok" && cp "$M"/*.json "$M"/*.safetensors "$T/badtok/"
head -c 3000 "$DATA/tok_chat/tokenizer.json" >"$T/badtok/tokenizer.json"
expect_err "truncated tokenizer.json" 1 "tokenizer.json" run "$T/badtok" -p hi
echo '{"model": {"type": "WordPiece"}}' >"$T/badtok/tokenizer.json"
expect_err "wrong tokenizer type" 1 "tokenizer.json" run "$T/badtok" -p hi
mkdir "$T/badgen" && cp -r "$M"/* "$T/badgen/" && echo '{"temperature": ' >"$T/badgen/generation_config.json"
expect_err "malformed generation_config.json" 1 "generation_config.json" run "$T/badgen" -p hi

if [ $fails -ne 0 ]; then echo "$fails failure(s)"; exit 1; fi
echo ok
