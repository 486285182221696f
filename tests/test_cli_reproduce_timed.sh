#!/bin/sh
# `kat reproduce --quick --only dense,sparse` (about a minute on 2 cores, so in the slow suite):
# the sparse figure shows its CSV rows, and each timed section carries its conditions; the
# dense table quotes a percentage of sgemm only when the reference held still, and says why not
# otherwise.
set -u
kat="$1"
# shellcheck source=SCRIPTDIR/cli_lib.sh
. "$(dirname "$0")/cli_lib.sh"

check "reproduce --quick --only dense,sparse" 0 "$kat" reproduce --quick --only dense,sparse \
    --out "$tmp/r"
rep="$tmp/r/report.md"
python3 "$(dirname "$0")/plot_readback.py" report "$tmp/r" || fail=1
n=$(grep -c "^Timing conditions of this section (measured around it in this run): load average (1, 5, 15 min) [0-9.]* [0-9.]* [0-9.]* before, [0-9.]* [0-9.]* [0-9.]* after, [0-9]* CPUs; sgemm 2048^3 on [0-9]* threads: [0-9.]* GFLOP/s before, [0-9.]* after ([0-9.]*% apart, tolerance 10%)\.$" "$rep")
if [ "$n" = 2 ]; then echo "ok: both timed sections give their conditions"
else echo "FAIL: $n conditions lines, expected 2"; grep -n "conditions" "$rep"; fail=1; fi
# The dense table: a percentage in every row with a steady reference, else none and the reason.
rows=$(sed -n '/^## Dense flash/,/^## /p' "$rep" | grep -c '^| \(forward\|backward\)|')
pct=$(sed -n '/^## Dense flash/,/^## /p' "$rep" | grep -c '^| \(forward\|backward\)|[^|]*|[^|]*|[^|]*|[^|]*|[0-9]*%|')
dense=$(sed -n '/^## Dense flash/,/^## /p' "$rep")
if printf '%s\n' "$dense" | grep -q '^\*\*No % of sgemm:\*\* the sgemm reference \(moved from [0-9.]* to [0-9.]* GFLOP/s during the run ([0-9]*% apart, more than the 10% tolerance): the machine.s load changed\|could not run (no memory for its three matrices)\); the % of sgemm column is left empty\.$'; then
    if [ "$pct" = 0 ] && [ "$rows" = 5 ]; then echo "ok: no steady reference: no % of sgemm, and why"
    else echo "FAIL: no steady reference but $pct of $rows rows quote a %"; fail=1; fi
elif [ "$pct" = 5 ] && [ "$rows" = 5 ]; then echo "ok: steady reference: % of sgemm in every row"
else
    echo "FAIL: $pct of $rows rows quote a %, and no line says why not"; fail=1
fi
[ "$fail" = 0 ] || printf '%s\n' "$dense" | sed 's/^/  | /'
exit "$fail"
