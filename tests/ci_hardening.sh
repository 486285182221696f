#!/bin/sh
# The hardening checks CI runs (docs/reliability.md says what each one proves):
#   1. valgrind memcheck on the fast suite (the 'valgrind' test setup of tests/meson.build);
#   2. every libFuzzer harness for SECONDS each (tests/fuzz/run_all.sh: clang, ASan + UBSan,
#      leak detection on);
#   3. the concurrency suite under ThreadSanitizer (tests/tsan.sh).
# Every step runs even when an earlier one failed; the script exits 1 if any failed and
# prints one summary line per step, and a closing "N passed, N failed" line.
#
#   tests/ci_hardening.sh [SECONDS]        (default 30 seconds per fuzz harness)
# Environment: KAT_BUILD (default build/: the release build the valgrind run uses, configured
# here if missing), KAT_FUZZ_BUILD (default build-fuzz/), KAT_TSAN_BUILD (default build-tsan/),
# KAT_HARDENING_SKIP (space-separated steps to skip: valgrind fuzz tsan).
#
# Budget on the 2-core development machine (docs/reliability.md has the measured times): about
# 12 minutes from a clean checkout with build/ already built, of which the fuzzers take
# 7 x SECONDS.
set -u
secs=${1:-30}
case $secs in '' | *[!0-9]*) echo "usage: $0 [SECONDS]" >&2; exit 2 ;; esac
root=$(cd "$(dirname "$0")/.." && pwd)
build=${KAT_BUILD:-$root/build}
skip=" ${KAT_HARDENING_SKIP:-} "
export OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-SkylakeX}   # as run.sh

passed=0
failed=0
summary=""
step_done() {   # name, status, seconds
    if [ "$2" -eq 0 ]; then
        passed=$((passed + 1)); summary="$summary
ok:   $1 (${3}s)"
    else
        failed=$((failed + 1)); summary="$summary
FAIL: $1 (${3}s)"
    fi
}
now() { date +%s; }

# 1. valgrind on the fast suite.
case $skip in
*" valgrind "*) ;;
*)
    t0=$(now)
    rc=0
    if [ ! -f "$build/build.ninja" ]; then
        meson setup "$build" "$root" --buildtype=release >&2 || rc=1
    fi
    [ $rc -eq 0 ] && { ninja -C "$build" >&2 || rc=1; }
    if [ $rc -eq 0 ]; then
        echo "== valgrind: meson test --setup valgrind --suite fast" >&2
        meson test -C "$build" --setup valgrind --suite fast --no-rebuild --print-errorlogs \
            --num-processes 2 >&2 || rc=1
    fi
    step_done "valgrind memcheck, fast suite" $rc $(($(now) - t0))
    ;;
esac

# 2. The fuzzers.
case $skip in
*" fuzz "*) ;;
*)
    t0=$(now)
    rc=0
    command -v clang >/dev/null 2>&1 || { echo "fuzz: clang not found" >&2; rc=1; }
    [ $rc -eq 0 ] && { "$root/tests/fuzz/run_all.sh" "$secs" || rc=1; }
    step_done "libFuzzer harnesses, ${secs}s each" $rc $(($(now) - t0))
    ;;
esac

# 3. ThreadSanitizer.
case $skip in
*" tsan "*) ;;
*)
    t0=$(now)
    rc=0
    "$root/tests/tsan.sh" || rc=1
    step_done "ThreadSanitizer, concurrency suite" $rc $(($(now) - t0))
    ;;
esac

echo "hardening:$summary" >&2
echo "hardening: $passed passed, $failed failed"
[ $failed -eq 0 ]
