#!/bin/sh
# Runs libkat-cuda's kernels on the CPU through the stand-in runtime of tests/gpu/emu and checks
# them against an fp64 reference: a check of the kernels' logic (tiles, masks, bucket lists,
# fragment layouts, the order of copies, waits and barriers, shuffles, atomics) that needs no
# GPU. Timing, the real tensor cores and compute-sanitizer's memory checks stay with
# ./run.sh test-gpu.
#
#     [CPPFLAGS=-DKAT_CUDA_BWD_WARPS=8] tests/gpu/emulate.sh attn [--quick]
#     [PYTHON=python3] tests/gpu/emulate.sh linear [--quick]
#
# attn: the flash kernels (flash_fwd.cu, flash_bwd.cu), driven by emu/check_attn.cpp.
# linear: the linear-attention kernels (linear_*.cu) as a shared library, driven through their
# C API by emu/check_linear.py against tests/gpu/linear_ref.py (needs torch; exit 77 without).
set -e
root=$(cd "$(dirname "$0")/../.." && pwd)
emu=$root/tests/gpu/emu
what=${1:-}
[ $# -gt 0 ] && shift
case $what in
attn) srcs="flash_fwd flash_bwd" ;;
linear)
    srcs="linear_sweep linear_chunk linear_api"
    python=${PYTHON:-python3}
    if ! "$python" -c "import torch" 2>/dev/null; then
        echo "emulate.sh linear: $python has no torch; skipped"
        exit 77
    fi ;;
*)
    echo "usage: tests/gpu/emulate.sh attn|linear [--quick]" >&2
    exit 2 ;;
esac
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# The one rewrite of the CUDA sources for the host: dynamic shared memory becomes a pointer
# into emu::shared_mem, and a launch kernel<<<config>>>(args) (over several lines too) a call
# of emu::launch. The headers come along, emu's mma.cuh in place of the real one.
for f in $srcs; do
    sed -z -e 's/extern __shared__ __align__(16) \([A-Za-z_ ]*[A-Za-z_]\) \([A-Za-z_][A-Za-z_0-9]*\)\[\];/\1 *\2 = reinterpret_cast<\1 *>(emu::shared_mem);/g' \
        -e 's/\([A-Za-z_][A-Za-z_0-9]*\(<[^<>]*>\)\{0,1\}\)<<<\([^;]*\)>>>(\([^;]*\));/emu::launch(\1, emu::cfg{\3}, \4);/g' \
        "$root/lib/cuda/$f.cu" >"$tmp/$f.cpp"
done
cp "$root"/lib/cuda/*.cuh "$tmp/"
cp "$emu/mma.cuh" "$tmp/"
cxx="${CXX:-g++} -O2 -std=c++17 -fPIC ${CPPFLAGS:-} -I$emu -I$tmp -I$root/include"
objs="$tmp/runtime.o"
pids=""
for f in $srcs; do
    $cxx -c "$tmp/$f.cpp" -o "$tmp/$f.o" & pids="$pids $!"
    objs="$objs $tmp/$f.o"
done
$cxx -c "$emu/runtime.cpp" -o "$tmp/runtime.o"
for p in $pids; do wait $p; done
case $what in
attn)
    $cxx -c "$emu/check_attn.cpp" -o "$tmp/check_attn.o"
    $cxx $objs "$tmp/check_attn.o" -o "$tmp/check_attn"
    "$tmp/check_attn" "$@" ;;
linear)
    $cxx -c "$emu/report.cpp" -o "$tmp/report.o"
    $cxx -shared $objs "$tmp/report.o" -o "$tmp/libkat-cuda-emu.so"
    "$python" "$emu/check_linear.py" "$tmp/libkat-cuda-emu.so" "$@" ;;
esac
