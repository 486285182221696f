#!/usr/bin/env bash
# kat's one entry point: installs what is missing, configures build/ (release), builds, runs.
#   ./run.sh reproduce [ARGS]  - the main job: kat reproduce --out out/
#   ./run.sh test              - the whole test suite (then a 'N passed, N failed' line)
#   ./run.sh kat ARGS...       - the kat command, run in the caller's directory
#   ./run.sh install [PREFIX]  - install kat, libkat, its headers and kat.pc into PREFIX
#                                (default ~/.local)
#   ./run.sh python ARGS...    - Debian's python3 with the kat package of build/ importable
#   ./run.sh lm [--quick] ...  - byte-level LMs with kat's attention variants (docs/lm.md)
#   ./run.sh sanitize          - the fast suite under address + undefined-behaviour sanitizers
#   ./run.sh valgrind          - the fast suite under valgrind memcheck
#   ./run.sh docs              - the API reference (Doxygen) in build/docs/api/html/
#   ./run.sh test-gpu          - libkat-cuda's GPU tests (+ compute-sanitizer unless KAT_GPU_SANITIZE=0),
#                                needs nvcc, a GPU and torch
#   ./run.sh bench-gpu [ARGS]  - libkat-cuda against torch SDPA and FlexAttention on the GPU,
#                                then linear Taylor-2 against SDPA causal over N
set -euo pipefail
# The build lives in the repository; commands run in the caller's directory, so that the
# paths given to kat (and reproduce's out/) are the caller's.
repo=$(cd "$(dirname "$0")" && pwd)

PACKAGES=(gcc meson ninja-build pkg-config python3 liblapacke-dev libopenblas-dev libgsl-dev
          libfftw3-dev check libsubunit-dev gnuplot-nox valgrind clang libclang-rt-14-dev
          libomp-dev
          libopenmpi-dev openmpi-bin petsc-dev slepc-dev)   # the rank probe over MPI (lib/mpi)
PACKAGES+=(python3-dev python3-numpy python3-pytest python3-torch python3-mesonpy patchelf)
PACKAGES+=(python3-matplotlib)

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
        meson setup "$dir" "$repo" "$@" >&2
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
    # Off a terminal a line every 60 s of silence names the running tests (meson_heartbeat.py).
    python3 "$repo/tests/meson_heartbeat.py" 60 "$dir" meson test -C "$dir" --print-errorlogs "$@" || rc=$?
    summary_line "$dir/meson-logs/testlog.json"
    return $rc
}

build_gpu() {   # libkat-cuda alone into build-gpu/: the GPU machine needs none of the CPU stack
    cd "${repo:-.}"   # the GPU commands take no paths and run in the repository ($repo where set)
    command -v nvcc >/dev/null || { echo "run.sh: nvcc not found (libkat-cuda needs the CUDA toolkit)" >&2; exit 1; }
    mkdir -p build-gpu
    local so=build-gpu/libkat-cuda.so
    if [ ! -f $so ] || [ -n "$(find lib/cuda include/kat/cuda.h -newer $so)" ]; then
        nvcc -O3 -std=c++17 --threads 0 -shared -Xcompiler -fPIC,-fvisibility=hidden -DKAT_CUDA_BUILDING_LIBRARY \
            -Iinclude -Ilib/cuda -gencode arch=compute_80,code=sm_80 \
            -gencode arch=compute_90,code=sm_90 lib/cuda/*.cu -o $so >&2
    fi
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
    test)
        ensure_packages
        build_dir "$repo/build" --buildtype=release
        run_tests "$repo/build" "$@"
        ;;
    sanitize)
        ensure_packages
        build_dir "$repo/build-san" -Db_sanitize=address,undefined -Db_lundef=false --buildtype=debugoptimized \
            -Dmpi=disabled -Dcuda=disabled   # Open MPI is not clean under ASan; tests/mpi runs in ./run.sh test;
            # libkat-cuda's device code is checked by compute-sanitizer in ./run.sh test-gpu
        KAT_SANITIZE=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
            ASAN_OPTIONS=detect_leaks=1 run_tests "$repo/build-san" --suite fast "$@"
        ;;
    valgrind)
        ensure_packages
        build_dir "$repo/build" --buildtype=release
        run_tests "$repo/build" --setup valgrind --suite fast "$@"
        ;;
    reproduce)
        ensure_packages
        build_dir "$repo/build" --buildtype=release
        exec "$repo/build/experiments/kat" reproduce --out out "$@"
        ;;
    docs)
        PACKAGES+=(doxygen)
        ensure_packages
        build_dir "$repo/build" --buildtype=release
        [ -f "$repo/build/docs/Doxyfile" ] || meson setup --reconfigure "$repo/build" "$repo" >&2
        ninja -C "$repo/build" docs >&2
        echo "API reference: $repo/build/docs/api/html/index.html"
        ;;
    test-gpu)
        build_gpu
        python3 tests/gpu/model_fragments.py && python3 tests/gpu/model_ranges.py
        rc=0
        tests/gpu/emulate.sh linear --quick || rc=1
        python3 tests/gpu/test_attn.py "$@" || rc=1
        python3 tests/gpu/test_linear.py "$@" || rc=1
        python3 tests/gpu/test_torch.py || rc=1
        if [ "${KAT_GPU_SANITIZE:-1}" = 1 ] && command -v compute-sanitizer >/dev/null; then
            for tool in memcheck racecheck; do
                compute-sanitizer --tool $tool --error-exitcode 9 \
                    python3 tests/gpu/test_attn.py --small >build-gpu/sanitizer-$tool.log 2>&1 || rc=1
                tail -n 3 build-gpu/sanitizer-$tool.log
                compute-sanitizer --tool $tool --error-exitcode 9 \
                    python3 tests/gpu/test_linear.py --small >build-gpu/sanitizer-linear-$tool.log 2>&1 || rc=1
                tail -n 3 build-gpu/sanitizer-linear-$tool.log
            done
        fi
        exit $rc
        ;;
    bench-gpu)
        build_gpu
        python3 experiments/gpu/bench_attn.py "$@"
        exec python3 experiments/gpu/bench_linear.py
        ;;
    kat)
        ensure_packages
        build_dir "$repo/build" --buildtype=release
        exec "$repo/build/experiments/kat" "$@"
        ;;
    install)
        [ $# -le 1 ] || { echo "usage: ./run.sh install [PREFIX]" >&2; exit 2; }
        prefix=${1:-$HOME/.local}
        case $prefix in /*) ;; *) prefix=$PWD/$prefix ;; esac
        ensure_packages
        build_dir "$repo/build" --buildtype=release
        # libdir=lib: PREFIX/lib/pkgconfig and PREFIX/lib/libkat.so, the same on every distribution.
        meson configure "$repo/build" -Dprefix="$prefix" -Dlibdir=lib >&2
        meson install -C "$repo/build" --quiet >&2
        echo "installed kat into $prefix; to use it:"
        echo "  export PATH=\"$prefix/bin:\$PATH\" MANPATH=\"$prefix/share/man:\$MANPATH\""
        echo "  export PKG_CONFIG_PATH=\"$prefix/lib/pkgconfig\" LD_LIBRARY_PATH=\"$prefix/lib\""
        ;;
    python)
        ensure_packages
        build_dir "$repo/build" --buildtype=release
        PYTHONPATH="$repo/build/python${PYTHONPATH:+:$PYTHONPATH}" exec /usr/bin/python3 "$@"
        ;;
    lm)
        ensure_packages
        build_dir "$repo/build" --buildtype=release
        PYTHONPATH="$repo/build/python${PYTHONPATH:+:$PYTHONPATH}" \
            exec /usr/bin/python3 "$repo/python/examples/lm/lm.py" "$@"
        ;;
    *)
        echo "usage: ./run.sh reproduce [ARGS] | test | kat ARGS... | python ARGS... |" \
             "lm [--quick] ARGS... | install [PREFIX] | sanitize | valgrind | docs" >&2
        exit 2
        ;;
esac
