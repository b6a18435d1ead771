#!/usr/bin/env bash
# `make run`: the main job.  With MODEL set, runs nvmoe on it; without, builds the
# demo model once (random weights) and runs on that.
set -euo pipefail
build=$1 model=${2:-} prompt=${3:-}
if [ -z "$model" ]; then
  model="$build/demo-model"
  if [ ! -f "$model/config.json" ]; then
    bash tools/demo-model.sh "$build"
  fi
  echo "nvmoe: running the built-in DEMO model ($model): its weights are random, so its text is meaningless."
  echo "nvmoe: to run the real model: make run MODEL=/path/to/DeepSeek-V4-Flash"
fi
exec "$build/nvmoe" inspect "$model"
