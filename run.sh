#!/usr/bin/env bash
# kat's one entry point: installs what is missing, configures build/ (release), builds, runs.
#   ./run.sh reproduce [ARGS]  - the main job: kat reproduce --out out/
#   ./run.sh test              - the whole test suite (then a 'N passed, N failed' line)
#   ./run.sh kat ARGS...       - the kat command
#   ./run.sh sanitize          - the fast suite under address + undefined-behaviour sanitizers
#   ./run.sh valgrind          - the fast suite under valgrind memcheck
#   ./run.sh docs              - the API reference (Doxygen) in build/docs/api/html/
set -euo pipefail
cd "$(dirname "$0")"

PACKAGES=(gcc meson ninja-build pkg-config python3 liblapacke-dev libopenblas-dev libgsl-dev
          libfftw3-dev check libsubunit-dev gnuplot-nox valgrind clang libclang-rt-14-dev
          libomp-dev
          libopenmpi-dev openmpi-bin petsc-dev slepc-dev)   # the rank probe over MPI (lib/mpi)

ensure_packages() {
    local missing=() p
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
            missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        echo "kat needs these Debian packages; as root run:" >&2
        echo "  apt-get update && apt-get install -y ${missing[*]}" >&2
        exit 1
    fi
    echo "run.sh: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

# OpenBLAS 0.3.21 picks its AVX2 kernels on Zen 5; its AVX-512 ("SkylakeX") ones are ~2x faster.
# Use them whenever the CPU has AVX-512 (even over an inherited OPENBLAS_CORETYPE, which some
# machines preset to Haswell), so every BLAS baseline runs at its best; KAT_KEEP_CORETYPE=1 opts out.
if [ "${KAT_KEEP_CORETYPE:-0}" != 1 ] && grep -q avx512f /proc/cpuinfo 2>/dev/null; then
    export OPENBLAS_CORETYPE=SkylakeX
fi

build_dir() {   # build_dir DIR [meson options...]: configure once, then build
    local dir=$1; shift
    if [ ! -f "$dir/build.ninja" ]; then
        meson setup "$dir" "$@" >&2
    fi
    ninja -C "$dir" >&2
}

summary_line() {   # the plain closing line CI reads, from meson's test log
    python3 - "$1" <<'PY'
import json, sys
passed = failed = skipped = 0
for line in open(sys.argv[1]):
    r = json.loads(line).get("result")
    if r in ("OK", "EXPECTEDFAIL"): passed += 1
    elif r == "SKIP": skipped += 1
    else: failed += 1
print(f"{passed} passed, {failed} failed, {skipped} skipped")
PY
}

run_tests() {   # run_tests DIR [meson test options...]
    local dir=$1; shift
    local rc=0
    meson test -C "$dir" --print-errorlogs "$@" || rc=$?
    summary_line "$dir/meson-logs/testlog.json"
    return $rc
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
    test)
        ensure_packages
        build_dir build --buildtype=release
        run_tests build "$@"
        ;;
    sanitize)
        ensure_packages
        build_dir build-san -Db_sanitize=address,undefined -Db_lundef=false --buildtype=debugoptimized \
            -Dmpi=disabled   # Open MPI is not clean under ASan; tests/mpi runs in ./run.sh test
        KAT_SANITIZE=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
            ASAN_OPTIONS=detect_leaks=1 run_tests build-san --suite fast "$@"
        ;;
    valgrind)
        ensure_packages
        build_dir build --buildtype=release
        run_tests build --setup valgrind --suite fast "$@"
        ;;
    reproduce)
        ensure_packages
        build_dir build --buildtype=release
        exec ./build/experiments/kat reproduce --out out "$@"
        ;;
    docs)
        PACKAGES+=(doxygen)
        ensure_packages
        build_dir build --buildtype=release
        [ -f build/docs/Doxyfile ] || meson setup --reconfigure build >&2
        ninja -C build docs >&2
        echo "API reference: build/docs/api/html/index.html"
        ;;
    kat)
        ensure_packages
        build_dir build --buildtype=release
        exec ./build/experiments/kat "$@"
        ;;
    *)
        echo "usage: ./run.sh reproduce [ARGS] | test | kat ARGS... | sanitize | valgrind | docs" >&2
        exit 2
        ;;
esac
