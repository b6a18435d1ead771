#!/usr/bin/env bash
# cuda_golden.sh NVMOE PROBE CASE MODE: `nvmoe golden` on ../shared/golden/CASE with
# --backend cuda (skip 77 without a CUDA device or without the golden case).
set -u
nvmoe=$1; probe=$2; case_=$3; mode=$4
"$probe" --probe >/dev/null; rc=$?
if [ $rc -ne 0 ]; then echo "skip: no CUDA device"; exit 77; fi
dir=${NV_SHARED:-}/golden/$case_
if [ -z "${NV_SHARED:-}" ] || [ ! -d "$dir/$mode" ]; then echo "skip: $dir/$mode absent"; exit 77; fi
exec "$nvmoe" golden "$dir" --mode "$mode" --backend cuda
