#!/usr/bin/env bash
# Writes the small demo model (random weights, real tokenizer) into BUILD/demo-model.
set -euo pipefail
build=${1:-build}
out="$build/demo-model"
tok_dir="$(cd "$(dirname "$0")/.." && pwd)/../shared/ref/deepseek-v4-flash"
args=()
[ -d "$tok_dir" ] && args+=(--tokenizer-dir "$tok_dir")
"$build/mkmodel" --preset demo --out "$out.tmp" "${args[@]}"
rm -rf "$out" && mv "$out.tmp" "$out"
