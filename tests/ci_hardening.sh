#!/bin/sh
# The hardening checks; .ci/run runs them after the tests and the ASan/UBSan run, as
# `sh tests/ci_hardening.sh 30` (CI_HARDENING=0 skips them). docs/reliability.md says what
# each one proves and has the measured times.
#   1. valgrind memcheck on the fast suite (the 'valgrind' test setup of tests/meson.build:
#      any invalid access, uninitialised read or definite leak fails the test; KAT_VALGRIND=1
#      shrinks the suites' sizes, keeping every code path);
#   2. every libFuzzer harness for SECONDS each, one per CPU at a time
#      (tests/fuzz/run_all.sh: clang, ASan + UBSan, leak detection on);
#   3. the concurrency suite under ThreadSanitizer (tests/tsan.sh, after its canary).
# Every step runs even when an earlier one failed; the script prints one summary line per step
# (wall and CPU seconds), a closing "N passed, N failed" line, and exits 1 if any step failed.
#
#   tests/ci_hardening.sh [SECONDS]        (default 30 seconds per fuzz harness)
# Environment: KAT_BUILD (default build/: the release build the valgrind run uses, configured
# here if missing), KAT_FUZZ_BUILD (default build-fuzz/), KAT_TSAN_BUILD (default build-tsan/),
# KAT_HARDENING_SKIP (space-separated steps to skip: valgrind fuzz tsan), KAT_FUZZ_JOBS.
# Needs clang, libclang-rt-14-dev, libomp-dev and valgrind (run.sh installs them).
#
# Measured on the 2-core development machine at load 2-3, build/ already built and no fuzz or
# TSan build yet (docs/reliability.md): valgrind 4.6-5.2 min, fuzz 35-40 s of clang build plus
# 4 x SECONDS (8 harnesses in 2 lanes), TSan 25 s with its build: 7.7-8.2 min for SECONDS = 30.
set -u
secs=${1:-30}
case $secs in '' | *[!0-9]*) echo "usage: $0 [SECONDS]" >&2; exit 2 ;; esac
root=$(cd "$(dirname "$0")/.." && pwd)
build=${KAT_BUILD:-$root/build}
skip=" ${KAT_HARDENING_SKIP:-} "
ncpu=$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 2)
# As run.sh: OpenBLAS's AVX-512 kernels where the CPU has them (the valgrind setup unsets it:
# valgrind cannot run AVX-512 code).
if grep -q avx512f /proc/cpuinfo 2>/dev/null; then
    export OPENBLAS_CORETYPE="${OPENBLAS_CORETYPE:-SkylakeX}"
fi

passed=0
failed=0
summary=""
timesf=$(mktemp) || exit 1
trap 'rm -f "$timesf"' EXIT
trap 'exit 130' INT TERM
# CPU seconds (user + system) of every child process waited for so far: `times` must run in
# this shell (a $(...) would run it in a subshell, which has no children), so cpu_mark saves
# its output and cpu_read reads it back.
cpu_mark() { times >"$timesf"; }
cpu_read() {
    awk 'NR == 2 { split($1, u, "m"); split($2, s, "m")
                   printf "%.0f", u[1] * 60 + u[2] + s[1] * 60 + s[2] }' "$timesf"
}
now() { date +%s; }
step_done() {   # name, status, start time, start CPU
    t=$(($(now) - $3))
    cpu_mark
    c=$(($(cpu_read) - $4))
    if [ "$2" -eq 0 ]; then
        passed=$((passed + 1)); summary="$summary
ok:   $1 (${t}s wall, ${c}s CPU)"
    else
        failed=$((failed + 1)); summary="$summary
FAIL: $1 (${t}s wall, ${c}s CPU)"
    fi
}
echo "hardening: start, load average $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null)" >&2

# 1. valgrind on the fast suite.
case $skip in
*" valgrind "*) ;;
*)
    t0=$(now); cpu_mark; c0=$(cpu_read)
    rc=0
    command -v valgrind >/dev/null 2>&1 || { echo "valgrind: not installed" >&2; rc=1; }
    if [ $rc -eq 0 ] && [ ! -f "$build/build.ninja" ]; then
        meson setup "$build" "$root" --buildtype=release >&2 || rc=1
    fi
    [ $rc -eq 0 ] && { ninja -C "$build" >&2 || rc=1; }
    if [ $rc -eq 0 ]; then
        echo "== valgrind: meson test --setup valgrind --suite fast" >&2
        meson test -C "$build" --setup valgrind --suite fast --no-rebuild --print-errorlogs \
            --num-processes "$ncpu" >&2 || rc=1
    fi
    step_done "valgrind memcheck, fast suite" $rc "$t0" "$c0"
    ;;
esac

# 2. The fuzzers.
case $skip in
*" fuzz "*) ;;
*)
    t0=$(now); cpu_mark; c0=$(cpu_read)
    rc=0
    command -v clang >/dev/null 2>&1 || { echo "fuzz: clang not found" >&2; rc=1; }
    [ $rc -eq 0 ] && { "$root/tests/fuzz/run_all.sh" "$secs" || rc=1; }
    step_done "libFuzzer harnesses, ${secs}s each" $rc "$t0" "$c0"
    ;;
esac

# 3. ThreadSanitizer.
case $skip in
*" tsan "*) ;;
*)
    t0=$(now); cpu_mark; c0=$(cpu_read)
    rc=0
    "$root/tests/tsan.sh" || rc=1
    step_done "ThreadSanitizer, concurrency suite" $rc "$t0" "$c0"
    ;;
esac

echo "hardening: end, load average $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null)" >&2
echo "hardening:$summary" >&2
echo "hardening: $passed passed, $failed failed"
[ $failed -eq 0 ]
