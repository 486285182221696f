#!/bin/sh
# Build the libFuzzer harnesses (build-fuzz/, clang, -Dfuzz=true) if needed, then run every
# fuzz_* executable there for N seconds (default 30) on its seed corpus tests/fuzz/corpus/X/
# (and the dictionary tests/fuzz/X.dict when there is one). New inputs the fuzzer finds go to a
# scratch directory, so the committed corpus is not modified; crashing inputs are kept in
# build-fuzz/fuzz-artifacts/. Exits 1 if any harness crashed, leaked, ran out of memory or
# timed out, or if there is no harness.
#
# The harnesses run KAT_FUZZ_JOBS at a time (default: the number of CPUs), each for the full N
# seconds of wall time, so 7 harnesses at 30 s take about 2 minutes on 2 cores instead of 3.5.
# One line per harness at the end: executions, executions per second, new inputs, peak memory
# (libFuzzer's -print_final_stats).
#   tests/fuzz/run_all.sh [SECONDS]      (environment: KAT_FUZZ_BUILD=dir to use another build,
#                                         KAT_FUZZ_JOBS=n harnesses at once)
set -u
secs=${1:-30}
case $secs in '' | *[!0-9]*) echo "usage: $0 [SECONDS]" >&2; exit 2 ;; esac
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${KAT_FUZZ_BUILD:-$root/build-fuzz}
jobs=${KAT_FUZZ_JOBS:-$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1)}
case $jobs in '' | *[!0-9]* | 0) jobs=1 ;; esac

if [ ! -f "$build/build.ninja" ]; then
    CC=clang meson setup "$build" "$root" -Dfuzz=true -Db_lundef=false -Dcuda=disabled >&2 || exit 1
fi
# Only the harnesses: the rest of the tree is built and tested by gcc elsewhere.
ninja -C "$build" $(ninja -C "$build" -t targets all |
    sed -n 's|^\(tests/fuzz/fuzz_[a-z0-9_]*\): .*|\1|p' | sort -u) >&2 || exit 1

artifacts=$build/fuzz-artifacts
mkdir -p "$artifacts"
scratch=$(mktemp -d) || exit 1
trap 'rm -rf "$scratch"' EXIT
trap 'exit 130' INT TERM

names=""
for exe in "$build"/tests/fuzz/fuzz_*; do
    [ -f "$exe" ] && [ -x "$exe" ] || continue   # skips fuzz_X.p object directories
    names="$names ${exe##*/fuzz_}"
done
if [ -z "$names" ]; then
    echo "run_all: no fuzz_* executables in $build/tests/fuzz" >&2
    exit 1
fi

# One harness: its exit status goes to $scratch/NAME.rc, its output to $scratch/NAME.log.
run_one() {
    name=$1
    corpus=$root/tests/fuzz/corpus/$name
    mkdir -p "$scratch/$name"
    set -- -max_total_time="$secs" -print_final_stats=1 -artifact_prefix="$artifacts/$name-"
    [ -f "$root/tests/fuzz/$name.dict" ] && set -- "$@" -dict="$root/tests/fuzz/$name.dict"
    set -- "$@" "$scratch/$name"
    if [ -d "$corpus" ]; then
        set -- "$@" "$corpus"
    else
        echo "run_all: no seed corpus $corpus for fuzz_$name" >"$scratch/$name.log"
    fi
    "$build/tests/fuzz/fuzz_$name" "$@" >>"$scratch/$name.log" 2>&1
    echo $? >"$scratch/$name.rc"
}

# Lanes: harness i runs in lane i mod jobs, the lanes side by side.
echo "== fuzzing$names for ${secs}s each, $jobs at a time" >&2
lane=0
while [ $lane -lt "$jobs" ]; do
    (
        i=0
        for name in $names; do
            [ $((i % jobs)) -eq $lane ] && run_one "$name"
            i=$((i + 1))
        done
    ) &
    lane=$((lane + 1))
done
wait

fuzz_stat() { sed -n "s/^stat::$1: *//p" "$2" | tail -n 1; }
failed=0
for name in $names; do
    log=$scratch/$name.log
    rc=$(cat "$scratch/$name.rc" 2>/dev/null || echo "?")
    execs=$(fuzz_stat number_of_executed_units "$log")
    if [ "$rc" != 0 ]; then
        failed=1
        echo "FAIL: fuzz_$name exited $rc after ${execs:-?} runs; log tail:" >&2
        tail -n 40 "$log" >&2
    else
        echo "ok: fuzz_$name: ${execs:-?} runs ($(fuzz_stat average_exec_per_sec "$log")/s)," \
             "$(fuzz_stat new_units_added "$log") new inputs, peak RSS $(fuzz_stat peak_rss_mb "$log") MB," \
             "no crash" >&2
    fi
done
exit $failed
