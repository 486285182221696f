#!/bin/sh
# Build the libFuzzer harnesses (build-fuzz/, clang, -Dfuzz=true) if needed, then run every
# fuzz_* executable there for N seconds (default 30) on its seed corpus tests/fuzz/corpus/X/
# (and the dictionary tests/fuzz/X.dict when there is one). New inputs the fuzzer finds go to a
# scratch directory, so the committed corpus is not modified; crashing inputs are kept in
# build-fuzz/fuzz-artifacts/. Exits 1 if any harness crashed, leaked or timed out.
#   tests/fuzz/run_all.sh [SECONDS]      (environment: KAT_FUZZ_BUILD=dir to use another build)
set -u
secs=${1:-30}
case $secs in '' | *[!0-9]*) echo "usage: $0 [SECONDS]" >&2; exit 2 ;; esac
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${KAT_FUZZ_BUILD:-$root/build-fuzz}

if [ ! -f "$build/build.ninja" ]; then
    CC=clang meson setup "$build" "$root" -Dfuzz=true -Db_lundef=false >&2 || exit 1
fi
# Only the harnesses: the rest of the tree is built and tested by gcc elsewhere.
ninja -C "$build" $(ninja -C "$build" -t targets all |
    sed -n 's|^\(tests/fuzz/fuzz_[a-z0-9_]*\): .*|\1|p' | sort -u) >&2 || exit 1

artifacts=$build/fuzz-artifacts
mkdir -p "$artifacts"
scratch=$(mktemp -d) || exit 1
trap 'rm -rf "$scratch"' EXIT INT TERM
failed=0
found=0
for exe in "$build"/tests/fuzz/fuzz_*; do
    [ -f "$exe" ] && [ -x "$exe" ] || continue   # skips fuzz_X.p object directories
    found=$((found + 1))
    name=${exe##*/fuzz_}
    corpus=$root/tests/fuzz/corpus/$name
    mkdir -p "$scratch/$name"
    set -- -max_total_time="$secs" -print_final_stats=1 -artifact_prefix="$artifacts/$name-"
    [ -f "$root/tests/fuzz/$name.dict" ] && set -- "$@" -dict="$root/tests/fuzz/$name.dict"
    set -- "$@" "$scratch/$name"
    if [ -d "$corpus" ]; then
        set -- "$@" "$corpus"
    else
        echo "run_all: no seed corpus $corpus for fuzz_$name" >&2
    fi
    echo "== fuzz_$name for ${secs}s" >&2
    log=$scratch/$name.log
    "$exe" "$@" >"$log" 2>&1
    rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    if [ $rc -ne 0 ]; then
        failed=1
        echo "FAIL: fuzz_$name exited $rc after ${execs:-?} runs; log tail:" >&2
        tail -n 40 "$log" >&2
    else
        echo "ok: fuzz_$name: ${execs:-?} runs, no crash" >&2
    fi
done
if [ $found -eq 0 ]; then
    echo "run_all: no fuzz_* executables in $build/tests/fuzz" >&2
    exit 1
fi
exit $failed
