#!/usr/bin/env bash
# perf_bench.sh NVMOE: `nvmoe bench` on the tiny-a golden checkpoint: JSON keys present
# and consistent (ratios recomputed from the printed rates), threads honoured, bad
# input rejected with one message and a non-zero exit.  Skips (77) without ../shared.
set -u
nvmoe=$1
ck=${NV_SHARED:-}/golden/tiny-a/ckpt
if [ -z "${NV_SHARED:-}" ] || [ ! -d "$ck" ]; then echo "skip: $ck absent"; exit 77; fi
fail=0
out=$("$nvmoe" bench "$ck" --threads 2 --json --repeat 1 --prefill 8 --decode 3 2>/dev/null) || { echo "FAIL: bench exited $?"; exit 1; }
python3 - "$out" <<'PY' || fail=1
import json, sys
j = json.loads(sys.argv[1])
need = ["decode_tok_s", "prefill_tok_s", "fp4_kernel_gbs", "mem_bw_gbs", "fp4_fraction_of_mem_bw", "threads"]
bad = [k for k in need if k not in j]
if bad: sys.exit("FAIL: missing keys %s" % bad)
if j["threads"] != 2: sys.exit("FAIL: threads got %s expected 2" % j["threads"])
for k in ["decode_tok_s", "prefill_tok_s", "fp4_kernel_gbs", "mem_bw_gbs"]:
    if not (j[k] > 0): sys.exit("FAIL: %s = %s, expected > 0" % (k, j[k]))
r = j["fp4_kernel_gbs"] / j["mem_bw_gbs"]
if abs(r - j["fp4_fraction_of_mem_bw"]) > 1e-9 * r: sys.exit("FAIL: fraction got %s expected %s" % (j["fp4_fraction_of_mem_bw"], r))
# the same experts read in place from the mmapped checkpoint; ratios against copy and read
if not (j.get("fp4_mmap_gbs", 0) > 0): sys.exit("FAIL: fp4_mmap_gbs = %s, expected > 0" % j.get("fp4_mmap_gbs"))
for f, num, den in [("fp4_fraction_of_mem_read", "fp4_kernel_gbs", "mem_read_gbs"),
                    ("fp4_mmap_fraction_of_mem_bw", "fp4_mmap_gbs", "mem_bw_gbs"),
                    ("fp4_mmap_fraction_of_mem_read", "fp4_mmap_gbs", "mem_read_gbs")]:
    r = j[num] / j[den]
    if abs(r - j[f]) > 1e-9 * r: sys.exit("FAIL: %s got %s expected %s" % (f, j[f], r))
# per-repetition paired ratio: positive, best >= median >= worst
pb, pm, pw = (j.get("fp4_paired_fraction_of_mem_read" + x, 0) for x in ("", "_median", "_worst"))
if not (pb >= pm >= pw > 0): sys.exit("FAIL: paired ratio best/median/worst %s %s %s" % (pb, pm, pw))
# THP mode: the bracketed word of the kernel's setting, or "unavailable"
try:
    t = open("/sys/kernel/mm/transparent_hugepage/enabled").read()
    thp = t[t.index("[") + 1:t.index("]")]
except (OSError, ValueError):
    thp = "unavailable"
if j.get("thp") != thp: sys.exit("FAIL: thp got %r expected %r" % (j.get("thp"), thp))
# tiny-a: 6 layers x 8 experts of D=256, F=128 -> bytes per expert 3*F*D/2 + 3*F*D/32
exp = 3 * 128 * 256 / 2 + 3 * 128 * 256 / 32
if j["fp4_bytes_per_expert"] != exp: sys.exit("FAIL: bytes per expert got %s expected %s" % (j["fp4_bytes_per_expert"], exp))
print("ok: bench json", {k: j[k] for k in need})
PY
msg=$("$nvmoe" bench /nonexistent/model --repeat 1 2>&1 >/dev/null); rc=$?
if [ $rc -eq 0 ] || [ -z "$msg" ]; then echo "FAIL: missing model: rc=$rc msg='$msg'"; fail=1; else echo "ok: missing model -> rc $rc: $msg"; fi
msg=$("$nvmoe" bench "$ck" --threads x 2>&1 >/dev/null); rc=$?
if [ $rc -ne 2 ]; then echo "FAIL: --threads x: rc=$rc expected 2"; fail=1; else echo "ok: bad --threads -> $msg"; fi
exit $fail
