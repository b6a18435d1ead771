#!/usr/bin/env bash
# Writes the small demo model (random weights) into BUILD/demo-model.
# Tokenizer: DeepSeek-V4's real one from ../shared/ref/deepseek-v4-flash when that
# exists (vocabulary 129,280); otherwise the small in-repo chat tokenizer
# tests/data/tok_chat (512 ids, DeepSeek's chat special tokens), with the model's
# vocabulary cut to match, so that a fresh clone without ../shared still works.
set -euo pipefail
build=${1:-build}
out="$build/demo-model"
root="$(cd "$(dirname "$0")/.." && pwd)"
tok_dir="$root/../shared/ref/deepseek-v4-flash"
args=()
if [ -f "$tok_dir/tokenizer.json" ] || [ -f "$tok_dir/tokenizer.reconstructed.json" ]; then
  args+=(--tokenizer-dir "$tok_dir")
  what="DeepSeek-V4 tokenizer from $tok_dir"
else
  args+=(--tokenizer-dir "$root/tests/data/tok_chat" --set vocab_size=512)
  what="small in-repo tokenizer tests/data/tok_chat ($tok_dir not found)"
fi
echo "demo-model: writing $out (random weights; $what)"
rm -rf "$out.tmp"
"$build/mkmodel" --preset demo --out "$out.tmp" --quiet "${args[@]}"
rm -rf "$out" && mv "$out.tmp" "$out"
