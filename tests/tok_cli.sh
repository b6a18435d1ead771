#!/usr/bin/env bash
# tests/tok_cli.sh NVMOE - the tokenize / detokenize / template commands end to end,
# including bad input: each must fail with exit 1 (2 for usage) and one clear
# message, never a crash.  The reference-vector part runs only when ../shared exists.
set -u
NV=${1:?usage: tok_cli.sh path/to/nvmoe}
DATA=${NV_TESTDATA:?}
TINY=$DATA/tok_tiny.json
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

# expect_out NAME WANT CMD...: exit 0 and stdout == WANT
expect_out() {
	local name=$1 want=$2; shift 2
	local got; got=$("$@" 2>"$T/err"); local rc=$?
	[ $rc -eq 0 ] || { fail "$name: exit $rc: $(cat "$T/err")"; return; }
	[ "$got" == "$want" ] || fail "$name: got '$got' expected '$want'"
}
# expect_err NAME RC NEEDLE CMD...: exit RC, stderr mentions NEEDLE
expect_err() {
	local name=$1 want_rc=$2 needle=$3; shift 3
	"$@" >"$T/out" 2>"$T/err"; local rc=$?
	[ $rc -eq "$want_rc" ] || fail "$name: exit $rc, expected $want_rc ($(head -c 300 "$T/err"))"
	grep -qF -- "$needle" "$T/err" || fail "$name: stderr lacks '$needle': $(head -c 300 "$T/err")"
}

expect_out "tokenize text" "[261, 266]" "$NV" tokenize "$TINY" --text "hello world"
printf 'hello<think>x' >"$T/in.txt"
expect_out "tokenize file" "[261, 300, 122]" "$NV" tokenize "$TINY" --file "$T/in.txt"
expect_out "tokenize raw" "[261, 62, 118, 106, 107, 112, 109, 64, 122]" "$NV" tokenize "$TINY" --file "$T/in.txt" --raw
expect_out "detokenize" "hello world" "$NV" detokenize "$TINY" --ids="[261, 266]"
expect_out "detokenize arg" "你" "$NV" detokenize "$TINY" "[273]"
# a directory holding tokenizer.json
mkdir "$T/model" && cp "$TINY" "$T/model/tokenizer.json"
expect_out "model dir" "[261]" "$NV" tokenize "$T/model" --text hello

# bad input
printf 'ok\xff\xfe' >"$T/bad.txt"
expect_err "invalid utf-8" 1 "invalid UTF-8 at byte offset 2" "$NV" tokenize "$TINY" --file "$T/bad.txt"
mkdir "$T/empty"
expect_err "no tokenizer.json" 1 "no tokenizer.json" "$NV" tokenize "$T/empty" --text x
expect_err "missing model" 1 "cannot access" "$NV" tokenize "$T/nope" --text x
mkdir "$T/broken" && head -c 3000 "$TINY" >"$T/broken/tokenizer.json"
expect_err "truncated tokenizer.json" 1 "not valid JSON" "$NV" tokenize "$T/broken" --text x
echo '{"messages": [{"role": "user", "content": "hi"}' >"$T/bad.json"
expect_err "messages not json" 1 "not valid JSON" "$NV" template render "$T/bad.json"
echo '{"messages": [{"role": "wizard", "content": "hi"}]}' >"$T/role.json"
expect_err "bad role" 1 "messages[0].role" "$NV" template render "$T/role.json"
printf '{"messages": [{"role": "user", "content": "a\xff"}]}' >"$T/u8.json"
expect_err "invalid utf-8 in messages" 1 "invalid UTF-8" "$NV" template render "$T/u8.json"
expect_err "bad ids" 1 "not a JSON array" "$NV" detokenize "$TINY" --ids="[1, 2"
expect_err "id out of range" 1 "outside the id space" "$NV" detokenize "$TINY" --ids="[5, 99999]"
expect_err "usage tokenize" 2 "exactly one of" "$NV" tokenize "$TINY"
expect_err "usage parse" 2 "--thinking-mode" "$NV" template parse "$T/in.txt"
expect_err "ids need tokenizer" 2 "needs a tokenizer" "$NV" template render "$T/role.json" --ids
printf 'no end' >"$T/c.txt"
expect_err "malformed completion" 1 "does not end with" "$NV" template parse "$T/c.txt" --thinking-mode chat

# template: render, ids with the tiny tokenizer, parse
echo '{"messages": [{"role": "user", "content": "hello"}], "thinking_mode": "thinking"}' >"$T/req.json"
expect_out "render" "<｜begin▁of▁sentence｜><｜User｜>hello<｜Assistant｜><think>" "$NV" template render "$T/req.json"
printf '{"messages": [{"role": "user", "content": "hello"}], "add_default_bos_token": false}' >"$T/req2.json"
# by hand: <｜User｜> 302, hello 261, "<｜Assistant｜>" is no added token of tok_tiny.json, so
# its bytes (id = 2 + byte; ｜ = EF BD 9C, no merge applies), then </think> 301
expect_out "render ids" "[302, 261, 62, 241, 191, 158, 67, 117, 117, 107, 117, 118, 99, 112, 118, 241, 191, 158, 64, 301]" \
	"$NV" template render "$T/req2.json" --ids --tokenizer "$TINY"
printf 'why</think>yes<｜end▁of▁sentence｜>' >"$T/c2.txt"
expect_out "parse" '{"role": "assistant", "content": "yes", "reasoning_content": "why", "tool_calls": []}' \
	"$NV" template parse "$T/c2.txt" --thinking-mode thinking

# reference vectors through the command line
REF=${NV_SHARED:-}/ref/deepseek-v4-flash/encoding-tests
if [ -d "$REF" ]; then
	for i in 1 2 3 4; do
		m=thinking; [ $i = 4 ] && m=chat
		"$NV" template render "$REF/input_$i.json" --thinking-mode $m >"$T/o$i.txt" || fail "render $i: exit $?"
		cmp -s "$T/o$i.txt" "$REF/output_$i.txt" || fail "render $i differs from output_$i.txt"
		"$NV" template render "$REF/input_$i.json" "$REF/.." --thinking-mode $m --ids | tr -d ' \n' >"$T/i$i"
		tr -d ' \n' <"$REF/output_$i.ids.json" >"$T/w$i"
		cmp -s "$T/i$i" "$T/w$i" || fail "render --ids $i differs from output_$i.ids.json"
		"$NV" detokenize "$REF/.." --file "$REF/output_$i.ids.json" >"$T/d$i.txt" || fail "detokenize $i"
		cmp -s "$T/d$i.txt" "$REF/output_$i.txt" || fail "detokenize $i differs from output_$i.txt"
	done
else
	echo "(../shared absent: reference vectors skipped)"
fi
[ $fails -eq 0 ] && echo ok
exit $((fails > 0))
