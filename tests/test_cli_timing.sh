#!/bin/sh
# kat bench attn: every timing carries the conditions of its run (the load average and the sgemm
# rate before and after), and a percentage of sgemm is printed only when it can be one: with a
# steady reference and at most 100%; otherwise a WARNING line says why. Which of the two a run
# gets depends on the machine's load, so both outcomes are checked for their words.
set -u
kat="$1"
# shellcheck source=SCRIPTDIR/cli_lib.sh
. "$(dirname "$0")/cli_lib.sh"

bench="$kat bench attn --h 1 --n 256 --d 32 --reps 3 --sgemm 512"
# shellcheck disable=SC2086 # $bench is a word list
check "bench attn (text)" 0 $bench
if grep -q "^  conditions load average (1, 5, 15 min) [0-9.]* [0-9.]* [0-9.]* before, [0-9.]* [0-9.]* [0-9.]* after, [0-9]* CPUs; sgemm 512^3 on [0-9]* threads: [0-9.]* GFLOP/s before, [0-9.]* after ([0-9.]*% apart, tolerance 10%)$" "$out"
then echo "ok: the conditions line"; else _cli_fail "no conditions line"; fi
pct=$(sed -n 's/^  rate      [0-9.]* GFLOP\/s = \([0-9.]*\)% of sgemm (.*, same run)$/\1/p' "$out")
if grep -q "^  WARNING   no % of sgemm: " "$out"; then
    if [ -z "$pct" ] && grep -q "^  rate      [0-9.]* GFLOP/s$" "$out" && grep -q \
        "^  WARNING   no % of sgemm: \(the sgemm reference moved from [0-9.]* to [0-9.]* GFLOP/s during the run ([0-9]*% apart, more than the 10% tolerance): the machine's load changed\|[0-9.]* GFLOP/s is [0-9]*% of the sgemm reference ([0-9.]* GFLOP/s), above what the machine's GEMM does: the load was lighter while the kernel ran than when the reference was measured\)$" "$out"
    then echo "ok: a warning, and no percentage"; else _cli_fail "the warning's words"; fi
elif [ -n "$pct" ] && awk "BEGIN { exit !($pct <= 100) }"; then
    echo "ok: a percentage of sgemm at most 100 ($pct%)"
else
    _cli_fail "neither a percentage at most 100 nor a warning"
fi
# shellcheck disable=SC2086
check "bench attn --json" 0 $bench --json
json_check "the conditions in the JSON" "len(j['conditions']['loadavg_before']) == 3 and len(j['conditions']['loadavg_after']) == 3 and j['conditions']['sgemm_gflops_before'] > 0 and j['conditions']['sgemm_gflops_after'] > 0 and j['conditions']['tolerance'] == 0.1"
json_check "pct_sgemm at most 100 without a warning, or null with one" "(j['pct_sgemm'] is None) == (j['warning'] != '') and (j['pct_sgemm'] is None or 0 < j['pct_sgemm'] <= 100) and (j['pct_sgemm'] is None or j['conditions']['steady'])"
exit "$fail"
