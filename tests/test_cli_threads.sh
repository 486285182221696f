#!/bin/sh
# Thread counts and the small messages of kat bench attn: every --threads, KAT_NUM_THREADS and
# --map value that is not a usable count is refused with exit 2 and a message that names it
# (checked word for word); 0 means the default; the largest accepted count runs.
set -u
kat="$1"
# shellcheck source=SCRIPTDIR/cli_lib.sh
. "$(dirname "$0")/cli_lib.sh"

npy_python "$tmp" <<'PY'
import math, sys
d = sys.argv[1]
for i, name in enumerate(["q", "k", "v"]):
    save(d + "/" + name + ".npy", (1, 2, 32, 8), [math.cos(j * (0.2 + i)) for j in range(512)])
PY
cd "$tmp" || exit 1
cpus=$(getconf _NPROCESSORS_ONLN)
most=$((4 * cpus))
limit="the limit of $most threads (4 per CPU, $cpus CPU$([ "$cpus" = 1 ] || echo s))"
bench="bench attn --h 1 --n 64 --d 16 --reps 1 --sgemm 64 --baseline 0"
run="attn run --q q.npy --k k.npy --v v.npy --o o.npy"

# --threads: above the limit, negative, not a number, beyond an int; 0 and the limit run
for cmd in "bench attn" "attn"; do
    if [ "$cmd" = attn ]; then args=$run; else args=$bench; fi
    check "$cmd --threads 10000: usage error" 2 $kat $args --threads 10000
    expect_usage "$cmd names --threads and the limit" \
        "kat $cmd: --threads 10000 is above $limit" "kat $cmd"
    check "$cmd --threads -1: usage error" 2 $kat $args --threads -1
    expect_usage "$cmd: a negative count" "kat $cmd: --threads must be >= 0, got -1" "kat $cmd"
    check "$cmd --threads abc: usage error" 2 $kat $args --threads abc
    expect_usage "$cmd: not a number" "kat $cmd: --threads expects an integer, got 'abc'" \
        "kat $cmd"
    check "$cmd --threads 2.5: usage error" 2 $kat $args --threads 2.5
    expect_usage "$cmd: not a whole number" \
        "kat $cmd: --threads expects an integer, got '2.5'" "kat $cmd"
    check "$cmd --threads 99999999999: usage error" 2 $kat $args --threads 99999999999
    expect_usage "$cmd: beyond an int, said so" \
        "kat $cmd: --threads 99999999999 is out of range (-2147483647 to 2147483647)" "kat $cmd"
    check "$cmd --threads 0 (the default) runs" 0 $kat $args --threads 0
    check "$cmd --threads $most (the limit) runs" 0 $kat $args --threads $most
done
check "--threads 0 is the default count" 0 $kat $run --threads 0 --json
json_check "threads = the default" "j['threads'] >= 1 and j['threads'] <= $most"

# KAT_NUM_THREADS: every command refuses a value it cannot use, before any work
for v in 0 -3 abc 2.5; do
    check "KAT_NUM_THREADS=$v: usage error" 2 env KAT_NUM_THREADS=$v $kat $run
    expect_usage "KAT_NUM_THREADS=$v named" "kat: KAT_NUM_THREADS='$v' is not a thread count \
(a whole number from 1 to $most; unset it for the default)" "kat"
done
check "KAT_NUM_THREADS=10000: usage error" 2 env KAT_NUM_THREADS=10000 $kat $run
expect_usage "KAT_NUM_THREADS above the limit" "kat: KAT_NUM_THREADS=10000 is above $limit" "kat"
check "KAT_NUM_THREADS=$most runs" 0 env KAT_NUM_THREADS=$most $kat $run --json
json_check "threads = KAT_NUM_THREADS" "j['threads'] == $most"
check "KAT_NUM_THREADS empty: the default" 0 env KAT_NUM_THREADS= $kat $run

# bench attn: a zero size names its option; a map's count names the map
check "bench attn --d 0: usage error" 2 $kat bench attn --h 1 --n 64 --d 0
expect_usage "--d 0 named" "kat bench attn: --d must be >= 1 (got 0)" "kat bench attn"
check "bench attn --mode linear --map favor:0: usage error" 2 $kat $bench --mode linear \
    --map favor:0
expect_usage "favor:0 names the count" \
    "kat bench attn: linear mode: map 'favor:0': the feature count M must be >= 1" "kat bench attn"
check "bench attn --mode linear --map favor:x: usage error" 2 $kat $bench --mode linear \
    --map favor:x
expect_usage "favor:x names the text" \
    "kat bench attn: linear mode: map 'favor:x': 'x' is not a feature count M" "kat bench attn"
check "bench attn --map in the dense mode: usage error" 2 $kat $bench --map favor:8
expect_usage "--map belongs to another mode" \
    "kat bench attn: --map is not a setting of kat bench attn --mode dense (it has none)" "kat bench attn"
check "bench attn --mode linear --map favor:8 runs" 0 $kat $bench --mode linear --map favor:8

exit "$fail"
