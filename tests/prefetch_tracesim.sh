#!/usr/bin/env bash
# tracesim end to end on a hand-made trace: the textbook reference string
# 7 0 1 2 0 3 0 4 2 3 0 3 2 1 2 0 1 7 0 1 (one layer, k = 1) with 3 slots gives
# 8 LRU hits and 11 MIN hits out of 20 (Silberschatz §10.4): 0.4000 and 0.5500;
# with 6 slots only the 6 compulsory misses remain: 0.7000 for every policy.
set -u
B=${NV_BUILD:?}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail=0
{
  echo "nvmoe-trace 1 layers=1 experts=8 k=1 hash=0 lookahead=1"
  p=0
  for x in 7 0 1 2 0 3 0 4 2 3 0 3 2 1 2 0 1 7 0 1; do
    echo "t $p 100"
    # lookahead prediction: right for even positions, wrong for odd ones
    if [ $((p % 2)) -eq 0 ]; then echo "r $p 0 s=$x d1=$x"; else echo "r $p 0 s=$x d1=$(((x + 1) % 8))"; fi
    p=$((p + 1))
  done
} > "$T/c.trace"
out=$("$B/tracesim" "$T/c.trace" --sizes 3,6 --policies lru,lfu,s3fifo --plot "$T/c.png") || { echo "FAIL: tracesim exit $?"; exit 1; }
echo "$out"
row3=$(echo "$out" | awk '$1 == 3')
row6=$(echo "$out" | awk '$1 == 6')
# columns: slots frac lru lfu s3fifo belady
[ "$(echo "$row3" | awk '{print $3}')" = "0.4000" ] || { echo "FAIL: lru at 3 slots: $row3 (expected 0.4000)"; fail=1; }
[ "$(echo "$row3" | awk '{print $6}')" = "0.5500" ] || { echo "FAIL: belady at 3 slots: $row3 (expected 0.5500)"; fail=1; }
[ "$(echo "$row6" | awk '{print $3, $4, $5, $6}')" = "0.7000 0.7000 0.7000 0.7000" ] || { echo "FAIL: 6 slots: $row6"; fail=1; }
# lookahead1: 10 of 20 predictions right
la=$(echo "$out" | awk '$1 == "lookahead1" {print $2, $3, $4}')
[ "$la" = "20 20 0.5000" ] || { echo "FAIL: lookahead1 accuracy '$la' (expected 20 records, 20 ids, 0.5000)"; fail=1; }
if command -v gnuplot >/dev/null; then
  [ "$(head -c 4 "$T/c.png" | od -An -c | tr -d ' ')" = "211PNG" ] || { echo "FAIL: no PNG written"; fail=1; }
else
  echo "$out" | grep -q "no plot: gnuplot" || { echo "FAIL: missing gnuplot not reported"; fail=1; }
fi
# bad input: one message, non-zero exit
msg=$("$B/tracesim" "$T/none.trace" 2>&1); rc=$?
[ $rc -eq 1 ] && echo "$msg" | grep -q "none.trace" || { echo "FAIL: missing file: rc $rc '$msg'"; fail=1; }
printf 'nvmoe-trace 1 layers=1 experts=8 k=1 hash=0 lookahead=0\nr 0 0 s=9\n' > "$T/bad.trace"
msg=$("$B/tracesim" "$T/bad.trace" 2>&1); rc=$?
[ $rc -eq 1 ] && echo "$msg" | grep -q "line 2" || { echo "FAIL: bad trace: rc $rc '$msg'"; fail=1; }
"$B/tracesim" "$T/c.trace" --policies nope >/dev/null 2>&1; rc=$?
[ $rc -eq 2 ] || { echo "FAIL: unknown policy exit $rc (expected 2)"; fail=1; }
[ $fail -eq 0 ] && echo ok
exit $fail
