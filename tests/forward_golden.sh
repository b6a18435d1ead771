#!/usr/bin/env bash
# forward_golden.sh NVMOE CASE MODE: `nvmoe golden` on ../shared/golden/CASE (skip 77 if absent).
set -u
nvmoe=$1; case_=$2; mode=$3
dir=${NV_SHARED:-}/golden/$case_
if [ -z "${NV_SHARED:-}" ] || [ ! -d "$dir" ]; then echo "skip: $dir absent"; exit 77; fi
exec "$nvmoe" golden "$dir" --mode "$mode"
