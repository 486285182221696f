#!/bin/sh
# Runs libkat-cuda's flash kernels (lib/cuda/flash_fwd.cu, flash_bwd.cu) on the CPU through the
# stand-in runtime of tests/gpu/emu and checks them against an fp64 reference: a check of the
# kernels' logic (tiles, masks, bucket lists, fragment layouts, the order of copies, waits and
# barriers) that needs no GPU. Timing, the real tensor cores and compute-sanitizer's memory
# checks stay with ./run.sh test-gpu.
#
#     [CPPFLAGS=-DKAT_CUDA_BWD_WARPS=8] tests/gpu/emulate.sh [--quick]
set -e
root=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for f in flash_fwd flash_bwd; do
    sed -e 's/extern __shared__ __align__(16) unsigned char smem\[\];/unsigned char *smem = emu::shared_mem;/' \
        -e 's/\([A-Za-z_][A-Za-z_0-9]*\(<[^<>]*>\)\{0,1\}\)<<<\(.*\)>>>(\(.*\));/emu::launch(\1, emu::cfg{\3}, \4);/' \
        "$root/lib/cuda/$f.cu" >"$tmp/$f.cpp"
done
cp "$root/lib/cuda/flash.cuh" "$root/lib/cuda/layout.cuh" "$root/tests/gpu/emu/mma.cuh" "$tmp/"
cxx="${CXX:-g++} -O2 -std=c++17 ${CPPFLAGS:-} -I$root/tests/gpu/emu -I$tmp"
pids=""
for f in flash_fwd flash_bwd; do $cxx -c "$tmp/$f.cpp" -o "$tmp/$f.o" & pids="$pids $!"; done
$cxx -c "$root/tests/gpu/emu/runtime.cpp" -o "$tmp/runtime.o"
$cxx -c "$root/tests/gpu/emu/check_attn.cpp" -o "$tmp/check_attn.o"
for p in $pids; do wait $p; done
$cxx "$tmp"/*.o -o "$tmp/check_attn"
"$tmp/check_attn" "$@"
