#!/usr/bin/env bash
# `nvmoe bench --json` with a host cache carries the tier statistics of issue 6, and
# they are consistent: hash prefetches are all used (tid2eid is exact), hits + misses
# count every acquisition, bytes were read.
set -euo pipefail
B=${NV_BUILD:?}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
"$B/mkmodel" --preset tiny-ci --out "$T/m" --quiet
"$B/nvmoe" bench "$T/m" --host-cache 1M --json --prefill 16 --decode 8 --repeat 1 2>"$T/err" >"$T/out.json" || {
  cat "$T/err"; exit 1; }
python3 - "$T/out.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
bad = []
for k in ["decode_tok_s", "prefill_tok_s", "stall_ms_per_token"]:
    if not isinstance(d.get(k), (int, float)) or d[k] < 0: bad.append(f"{k}: got {d.get(k)!r}, expected a number >= 0")
hc, pf, io = d.get("host_cache", {}), d.get("prefetch", {}), d.get("io", {})
for k in ["hits", "misses", "evictions", "bytes_read"]:
    if k not in hc: bad.append(f"host_cache.{k} missing")
for p in ["hash", "lookahead"]:
    for k in ["issued", "used"]:
        if k not in pf.get(p, {}): bad.append(f"prefetch.{p}.{k} missing")
if "wasted_bytes" not in pf: bad.append("prefetch.wasted_bytes missing")
if not bad:
    h = pf["hash"]
    if h["issued"] <= 0 or h["used"] != h["issued"]:
        bad.append(f"prefetch.hash: used {h['used']} of {h['issued']} issued, expected all (tid2eid is exact)")
    if hc["bytes_read"] <= 0 or io.get("bytes", 0) <= 0:
        bad.append(f"bytes read: host_cache {hc['bytes_read']}, io {io.get('bytes')}; expected > 0 with a 1M cache")
    if hc["evictions"] <= 0:
        bad.append("no evictions with a 1 MiB cache of a 2.8 MiB expert set")
for b in bad: print("FAIL:", b)
sys.exit(1 if bad else 0)
PY
echo "ok: bench --json tier statistics"
