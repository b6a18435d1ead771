#!/usr/bin/env bash
# tests/cli_usage.sh NVMOE MKMODEL - the command line's contract (DESIGN.md §6, HELPERS
# "Tests"): every command
#   - without arguments: exit 2, stderr names what is missing, stdout empty;
#   - with an unknown option, or one that does not apply to it: exit 2, stderr names it;
#   - with --help: exit 0, "usage: nvmoe <cmd>" on stdout, nothing on stderr;
# `nvmoe --help` lists the commands in the order of DESIGN.md §6; and bad input
# (a directory that is not a model, truncated / empty / garbage shards, broken JSON,
# garbage token files, out-of-range flags, a host cache too small for one expert)
# gives one error line naming the file and a hint, exit 1 (2 for flags), never a
# crash (signal) or a hang (timeout).  The model is TINY-CI with random weights.
set -u
NV=${1:?usage: cli_usage.sh NVMOE MKMODEL}
MK=${2:?usage: cli_usage.sh NVMOE MKMODEL}
DATA=${NV_TESTDATA:?}
T=$(mktemp -d "${TMPDIR:-/tmp}/nvmoe-usage-XXXXXX")
trap 'chmod -R u+rw "$T" 2>/dev/null; rm -rf "$T"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

# check NAME WANT_RC PATTERN... -- ARGS...: runs nvmoe ARGS (30 s limit, stdin empty);
# the exit status must be WANT_RC and every fixed-string PATTERN must occur in stderr.
check() {
	local name=$1 want=$2; shift 2
	local pats=()
	while [ "$1" != "--" ]; do pats+=("$1"); shift; done
	shift
	timeout 30 "$NV" "$@" </dev/null >"$T/out" 2>"$T/err"
	local rc=$?
	if [ $rc -ge 124 ]; then
		fail "$name: exit $rc (crash or hang): nvmoe $*"; sed 's/^/    | /' "$T/err" | head -5; return
	fi
	[ $rc -eq "$want" ] || { fail "$name: exit $rc, expected $want: nvmoe $*"; sed 's/^/    | /' "$T/err" | head -5; }
	for p in "${pats[@]}"; do
		grep -qF -- "$p" "$T/err" || { fail "$name: stderr lacks '$p'"; sed 's/^/    | /' "$T/err" | head -5; }
	done
	# one clear message: errors are a single line (the house format), not a usage dump
	if [ "$want" -ne 0 ] && [ "$(wc -l <"$T/err")" -gt 3 ]; then
		fail "$name: $(wc -l <"$T/err") lines on stderr, expected one message"; sed 's/^/    | /' "$T/err" | head -8
	fi
}

CMDS="inspect plan convert run chat bench eval golden tokenize detokenize template version"

# --- the command table ---
"$NV" --help >"$T/help" 2>&1 || fail "nvmoe --help: non-zero exit"
order=$(awk '/^commands:/ {on = 1; next} on && /^  [a-z]/ {print $1} on && /^$/ {exit}' "$T/help" | tr '\n' ' ')
[ "$order" = "$CMDS " ] || fail "nvmoe --help lists '$order', expected '$CMDS ' (DESIGN.md §6 order)"
"$NV" >"$T/out" 2>"$T/err"
[ $? -eq 2 ] || fail "nvmoe without a command: exit status not 2"
grep -qF "usage: nvmoe <command>" "$T/err" || fail "nvmoe without a command: no usage on stderr"
check "unknown command" 2 "unknown command 'frobnicate'" -- frobnicate

# --- every command: no args, --bogus, --help ---
for c in $CMDS; do
	if [ "$c" != version ]; then
		check "$c without arguments" 2 "nvmoe $c: missing" "--help" -- "$c"
		[ -s "$T/out" ] && fail "$c without arguments: wrote to stdout"
	fi
	check "$c --bogus" 2 "nvmoe $c: unknown option '--bogus'" -- "$c" --bogus
	timeout 30 "$NV" "$c" --help </dev/null >"$T/out" 2>"$T/err"
	[ $? -eq 0 ] || fail "$c --help: non-zero exit"
	grep -q "^usage: nvmoe $c" "$T/out" || fail "$c --help: stdout lacks 'usage: nvmoe $c'"
	[ -s "$T/err" ] && fail "$c --help: wrote to stderr"
done
check "version extra argument" 2 "unexpected argument 'x'" -- version x
check "inspect extra argument" 2 "unexpected argument 'b'" -- inspect a b
check "option without value" 2 "needs a value" -- run m --ctx
# options that mean nothing to a command are refused, not ignored
check "inspect --ctx" 2 "option --ctx does not apply to inspect" -- inspect m --ctx 5
check "tokenize --host-cache" 2 "option --host-cache does not apply to tokenize" -- tokenize m --text hi --host-cache 1G
check "run --json" 2 "option --json does not apply to run" -- run m -p hi --json
check "version --json" 2 "option --json does not apply to version" -- version --json

# --- a model and broken copies of it ---
"$MK" --preset tiny-ci --out "$T/m" --tokenizer-dir "$DATA/tok_chat" --quiet >/dev/null || { echo "mkmodel failed"; exit 1; }
M=$T/m
mkdir "$T/notmodel" && echo hi >"$T/notmodel/readme.txt"
broken() { # broken NAME: a copy of the model in $T/NAME
	cp -r "$M" "$T/$1"
}
S=model-00003-of-00009.safetensors
broken trunc && truncate -s 1000 "$T/trunc/$S"
broken empty && : >"$T/empty/$S"
broken garbage && head -c 5000 /dev/urandom >"$T/garbage/$S"
broken badcfg && echo '{not json' >"$T/badcfg/config.json"
broken nocfgkey && echo '{}' >"$T/nocfgkey/config.json"
broken badidx && echo junk >"$T/badidx/model.safetensors.index.json"
broken badtok && echo '{"model":' >"$T/badtok/tokenizer.json"

# --- flags out of range: usage errors (exit 2) naming the flag ---
check "--ctx 0" 2 "bad value '0' for --ctx" -- run "$M" -p hi --ctx 0
check "--threads -1" 2 "bad value '-1' for --threads" -- run "$M" -p hi --threads -1
check "--host-cache banana" 2 "bad value 'banana' for --host-cache" -- bench "$M" --host-cache banana
check "--temperature -1" 2 "--temperature" -- run "$M" -p hi --temperature -1
check "--top-p 2" 2 "--top-p" -- run "$M" -p hi --top-p 2
check "--lookahead past the predictor's maximum" 2 "bad value '17' for --lookahead" -- run "$M" -p hi --lookahead 17
check "--backend tpu" 2 "--backend" -- eval "$M" --backend tpu
check "--mode bogus" 2 "--mode" -- golden "$T/notmodel" --mode bogus
check "run without prompt" 2 "-p TEXT" -- run "$M"
check "eval without --tokens" 2 "missing --tokens" -- eval "$M" --out "$T/x.bin"
check "eval without --out" 2 "missing --out" -- eval "$M" --tokens "$T/tk"
check "convert without --out" 2 "missing --out" -- convert "$M"
check "tokenize without text" 2 "--text or --file" -- tokenize "$M"
check "template bogus" 2 "unknown subcommand 'bogus'" -- template bogus x

# --- a directory that is not a model ---
for c in inspect plan bench; do
	check "$c not a model" 1 "$T/notmodel/config.json" "hint:" -- "$c" "$T/notmodel"
done
check "convert not a model" 1 "config.json" "hint:" -- convert "$T/notmodel" --out "$T/cv"
check "run not a model" 1 "$T/notmodel" "hint:" -- run "$T/notmodel" -p hi
check "tokenize not a model" 1 "tokenizer.json" "hint:" -- tokenize "$T/notmodel" --text hi
check "golden not a case" 1 "$T/notmodel/manifest.json" "hint:" -- golden "$T/notmodel"
check "inspect a file" 1 "Not a directory" "hint:" -- inspect "$M/config.json"
check "inspect missing dir" 1 "/nonexistent" "hint:" -- inspect /nonexistent

# --- damaged shards, config, index, tokenizer ---
for c in inspect plan bench; do
	check "$c truncated shard" 1 "$T/trunc/$S" "hint:" -- "$c" "$T/trunc"
done
check "run truncated shard" 1 "$T/trunc/$S" "hint:" -- run "$T/trunc" -p hi
check "convert truncated shard" 1 "$T/trunc/$S" "hint:" -- convert "$T/trunc" --out "$T/cv"
[ -e "$T/cv" ] && fail "convert of a truncated checkpoint left $T/cv behind"
check "inspect empty shard" 1 "$T/empty/$S" "hint:" -- inspect "$T/empty"
check "inspect garbage shard" 1 "$T/garbage/$S" "hint:" -- inspect "$T/garbage"
check "run garbage shard" 1 "$T/garbage/$S" "hint:" -- run "$T/garbage" -p hi
check "inspect bad config" 1 "$T/badcfg/config.json" "not valid JSON" "hint:" -- inspect "$T/badcfg"
check "inspect config without keys" 1 "$T/nocfgkey/config.json" "missing key" "hint:" -- inspect "$T/nocfgkey"
check "inspect bad index" 1 "model.safetensors.index.json" "hint:" -- inspect "$T/badidx"
check "run bad tokenizer" 1 "$T/badtok/tokenizer.json" "hint:" -- run "$T/badtok" -p hi
check "tokenize bad tokenizer" 1 "$T/badtok/tokenizer.json" "hint:" -- tokenize "$T/badtok" --text hi

# --- a converted model with a damaged expert store ---
"$NV" convert "$M" --out "$T/cv" >/dev/null 2>&1 || fail "convert of the tiny model failed"
if [ -f "$T/cv/experts.nvmoe" ]; then
	X=experts.nvmoe
	cp -r "$T/cv" "$T/cvt" && truncate -s $(($(stat -c %s "$T/cv/$X") / 2)) "$T/cvt/$X"
	cp -r "$T/cv" "$T/cvh" && printf 'XXXX' | dd of="$T/cvh/$X" bs=1 seek=0 conv=notrunc 2>/dev/null
	# the first record starts after the 4 KiB header and the index; 20000 lies inside it
	cp -r "$T/cv" "$T/cvr" && printf 'XXXX' | dd of="$T/cvr/$X" bs=1 seek=20000 conv=notrunc 2>/dev/null
	check "inspect truncated store" 1 "$T/cvt/$X" "truncated" "hint:" -- inspect "$T/cvt"
	check "run truncated store" 1 "$T/cvt/$X" "hint:" -- run "$T/cvt" -p hi
	check "inspect store bad magic" 1 "$T/cvh/$X" "bad magic" "hint:" -- inspect "$T/cvh"
	check "inspect --verify bad record" 1 "$T/cvr/$X" "checksum" "hint:" -- inspect "$T/cvr" --verify
	check "run bad record" 1 "$T/cvr/$X" "checksum" "hint:" -- run "$T/cvr" -p hi --temperature 0
fi

# --- files that cannot be read (only meaningful when not root: root reads anything) ---
if [ "$(id -u)" -ne 0 ]; then
	broken unread && chmod 000 "$T/unread/$S"
	check "inspect unreadable shard" 1 "$T/unread/$S" "hint:" -- inspect "$T/unread"
	check "run unreadable shard" 1 "$T/unread/$S" "hint:" -- run "$T/unread" -p hi
fi

# --- token files ---
tok() { printf '%s' "$2" >"$T/$1"; }
tok tk_garbage 'garbage[['
tok tk_empty ''
tok tk_emptylist '[]'
tok tk_neg '[-1]'
tok tk_frac '[1.5]'
tok tk_str '{"tokens":"x"}'
tok tk_vocab '[1,2,99999999]'
tok tk_ok '[1,2,3]'
python3 -c 'print([1] * 2000)' >"$T/tk_long"
for f in tk_garbage tk_empty tk_emptylist tk_neg tk_frac tk_str; do
	check "eval $f" 1 "$T/$f" "hint:" -- eval "$M" --tokens "$T/$f" --out "$T/x.bin"
done
check "eval out of vocabulary" 1 "99999999" "vocab_size 512" "hint:" -- eval "$M" --tokens "$T/tk_vocab" --out "$T/x.bin"
check "eval past max_position_embeddings" 1 "max_position_embeddings 1024" "hint:" -- eval "$M" --tokens "$T/tk_long" --out "$T/x.bin"
check "eval missing tokens file" 1 "/nonexistent" "hint:" -- eval "$M" --tokens /nonexistent --out "$T/x.bin"
[ -e "$T/x.bin" ] && fail "a failed eval left $T/x.bin behind"
check "eval unwritable --out" 1 "/proc/nope" "hint:" -- eval "$M" --tokens "$T/tk_ok" --out /proc/nope/x.bin
check "detokenize garbage ids" 1 "--ids" "hint:" -- detokenize "$M" '[1,garbage]'
check "detokenize id out of range" 1 "99999999" "hint:" -- detokenize "$M" '[99999999]'
check "tokenize missing file" 1 "/nonexistent" "hint:" -- tokenize "$M" --file /nonexistent
check "run missing prompt file" 1 "/nonexistent" "hint:" -- run "$M" --prompt-file /nonexistent
tok bad.json '{bad'
check "template render bad JSON" 1 "$T/bad.json" "hint:" -- template render "$T/bad.json"

# --- resources too small ---
check "run --host-cache 1" 1 "host cache" "raise --host-cache" -- run "$M" -p hi --host-cache 1
check "bench --host-cache 1K" 1 "host cache" "raise --host-cache" -- bench "$M" --host-cache 1K --prefill 2 --decode 1 --repeat 1
check "run --ctx 1" 1 "context" "raise --ctx" -- run "$M" -p hi --ctx 1
check "run --ctx past the model's" 1 "exceeds the model's max_position_embeddings" "hint:" -- run "$M" -p hi --ctx 1048576
check "run --host-cache 1 names bytes" 1 "of 1 B holds no expert" -- run "$M" -p hi --host-cache 1
check "--chunk 0" 2 "bad value '0' for --chunk" -- run "$M" -p hi --chunk 0
check "run unwritable trace" 1 "/proc/nope/t" "hint:" -- run "$M" -p hi --host-cache 8M --max-tokens 1 --trace-experts /proc/nope/t
grep -q "trace written" "$T/err" && fail "run unwritable trace: claims the trace was written"

if [ $fails -ne 0 ]; then echo "$fails failure(s)"; exit 1; fi
echo "cli_usage: all checks passed"
