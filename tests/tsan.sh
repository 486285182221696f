#!/bin/sh
# ThreadSanitizer run of the concurrency suite (tests/test_concurrency.c).
#
# Configures build-tsan/ (or $KAT_TSAN_BUILD) with clang, -Db_sanitize=thread and LLVM's
# OpenMP runtime (libomp: clang's -fopenmp links it; GCC's libgomp is not instrumented and
# its barriers look like races to TSan). libomp itself is not instrumented either, so its
# OMPT tool Archer (libarcher.so, shipped with libomp-dev) is loaded: it tells TSan about
# OpenMP's barriers, task dependences and reductions.
#
# Suppressions: none. One runtime option instead: ignore_noninstrumented_modules=1, which
# Archer asks for. It drops accesses made inside libraries that were not compiled with TSan
# (libomp, OpenBLAS, LAPACK, FFTW, GSL, libc): TSan cannot see their synchronisation, so what
# it would report there is noise; kat's own code and the tests stay fully checked.
#
# Before the suite, a canary (a program with one OpenMP race and one pthreads race, built the
# same way) must be reported, and its race-free part must not: a setup that reports nothing
# proves nothing unless it can report something.
#
#   tests/tsan.sh                 exit 0: no report and the suite passed; 1 otherwise
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
build=${KAT_TSAN_BUILD:-$root/build-tsan}
llvm_lib=$(dirname "$(clang -print-file-name=libomp.so 2>/dev/null)")
archer=${KAT_ARCHER:-}
for cand in "$llvm_lib/libarcher.so" /usr/lib/llvm-*/lib/libarcher.so; do
    [ -n "$archer" ] && break
    [ -f "$cand" ] && archer=$cand
done
if [ -z "$archer" ] || [ ! -f "$archer" ]; then
    echo "tsan: libarcher.so not found (Debian: apt-get install libomp-dev)" >&2
    exit 1
fi

if [ ! -f "$build/build.ninja" ]; then
    CC=clang meson setup "$build" "$root" --buildtype=debugoptimized -Db_sanitize=thread \
        -Db_lundef=false -Dopenmp=enabled -Dtests=enabled -Dcuda=disabled >&2 || exit 1
fi
ninja -C "$build" tests/test_concurrency >&2 || exit 1

export OMP_TOOL_LIBRARIES="$archer"
export TSAN_OPTIONS="ignore_noninstrumented_modules=1 halt_on_error=0 exitcode=66 ${TSAN_OPTIONS:-}"

# The canary.
canary_dir=$(mktemp -d) || exit 1
trap 'rm -rf "$canary_dir"' EXIT
trap 'exit 130' INT TERM
cat >"$canary_dir/canary.c" <<'EOF'
#include <pthread.h>
#include <stdio.h>
static long counter;
static void *bump(void *p) { for (int i = 0; i < 1000; i++) counter++; return p; }
int main(int argc, char **argv)
{
    double a[1000], sum = 0;
    int racy = argc > 1;
#pragma omp parallel for
    for (int i = 0; i < 1000; i++) {
        a[i] = i;              /* distinct elements: no race */
        if (racy)
            sum += i;          /* unsynchronised shared sum: a race */
    }
#pragma omp parallel
    {
#pragma omp single
        a[0] = -1;             /* published by the implicit barrier: no race */
        volatile double seen = a[0];
        (void)seen;
    }
    if (racy) {
        pthread_t t[2];
        for (int i = 0; i < 2; i++) pthread_create(&t[i], NULL, bump, NULL);
        for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
    }
    printf("%g %ld\n", sum, counter);
    return 0;
}
EOF
clang -g -O1 -fsanitize=thread -fopenmp "$canary_dir/canary.c" -o "$canary_dir/canary" || exit 1
OMP_NUM_THREADS=2 "$canary_dir/canary" >"$canary_dir/clean.log" 2>&1
clean_rc=$?
OMP_NUM_THREADS=2 "$canary_dir/canary" racy >"$canary_dir/racy.log" 2>&1
racy_reports=$(grep -c '^WARNING: ThreadSanitizer: data race' "$canary_dir/racy.log")
if [ $clean_rc -ne 0 ] || grep -q 'WARNING: ThreadSanitizer' "$canary_dir/clean.log" ||
   [ "$racy_reports" -lt 2 ]; then
    echo "tsan: the canary check failed (race-free run exit $clean_rc; $racy_reports of 2" \
         "races reported): this setup cannot be trusted" >&2
    cat "$canary_dir/clean.log" "$canary_dir/racy.log" >&2
    exit 1
fi
echo "tsan: canary ok (race-free part silent, both races reported)" >&2

# The suite. CK_FORK=no: one process, so every report lands in one log.
log=$build/tsan-concurrency.log
CK_FORK=no CK_VERBOSITY=normal KAT_SANITIZE=1 OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=1 \
    "$build/tests/test_concurrency" >"$log" 2>&1
rc=$?
reports=$(grep -c '^WARNING: ThreadSanitizer' "$log")
grep -E '^[0-9]+%: Checks' "$log" >&2
if [ "$reports" -ne 0 ]; then
    echo "tsan: $reports ThreadSanitizer report(s); the first:" >&2
    awk '/^WARNING: ThreadSanitizer/{p=1} p{print} /^SUMMARY/{if(p) exit}' "$log" >&2
fi
if [ $rc -ne 0 ]; then
    echo "tsan: test_concurrency exited $rc (log: $log)" >&2
    grep -E ':[FE]:' "$log" >&2
    exit 1
fi
echo "tsan: test_concurrency passed with 0 ThreadSanitizer reports" >&2
exit 0
