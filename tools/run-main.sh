#!/usr/bin/env bash
# `make run`: the main job.  With MODEL set, generates an answer to PROMPT with it;
# without, builds the demo model once (random weights) and runs on that.
set -euo pipefail
build=$1 model=${2:-} prompt=${3:-}
[ -n "$prompt" ] || prompt="Write a haiku about memory bandwidth."
args=()
if [ -z "$model" ]; then
  model="$build/demo-model"
  if [ ! -f "$model/config.json" ] || [ ! -f "$model/tokenizer.json" ]; then
    bash tools/demo-model.sh "$build"
  fi
  echo "nvmoe: running the built-in DEMO model ($model): its weights are random, so the text below is meaningless."
  echo "nvmoe: to run the real model: make run MODEL=/path/to/DeepSeek-V4-Flash [PROMPT='...']"
  args+=(--max-tokens 48)
fi
echo "nvmoe: prompt: $prompt"
exec "$build/nvmoe" run "$model" -p "$prompt" --stats "${args[@]}"
