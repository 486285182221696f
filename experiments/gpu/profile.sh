#!/bin/sh
# One device call's worth of evidence for tuning libkat-cuda, written under $1 (default out/)
# step by step, so a call cut short keeps what it finished: the GPU tests (compute-sanitizer
# too), the per-call breakdown (experiments/gpu/breakdown.py), the benchmark, and ncu's key
# counters for the forward and backward kernels, dense and QK-drop, at N = 8192; last, the
# backward with 8 warps a block (KAT_CUDA_BWD_WARPS=8): its GPU tests and breakdown.
#
#     experiments/gpu/profile.sh [DIR]
set -u
out=${1:-out}
mkdir -p "$out"
cd "$(dirname "$0")/../.."
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader >"$out/gpu.txt" 2>&1
./run.sh test-gpu >"$out/test-gpu.txt" 2>&1; echo "test-gpu rc=$?" >>"$out/test-gpu.txt"
tail -n 3 "$out/test-gpu.txt"
python3 experiments/gpu/breakdown.py --reps 5 2>&1 | tee "$out/breakdown.txt"
python3 experiments/gpu/bench_attn.py --no-flex 2>&1 | tee "$out/bench.txt" | tail -n 16
if command -v ncu >/dev/null; then
    # dense, QK-drop and N/2 forward and backward, each once (--once)
    timeout 240 ncu --kernel-name-base demangled --kernel-name regex:'kat_cuda::flash_(fwd|bwd)_kernel' --launch-count 6 \
        --section SpeedOfLight --section Occupancy --section LaunchStats \
        --section WarpStateStats --section SchedulerStats --section ComputeWorkloadAnalysis \
        --section MemoryWorkloadAnalysis_Tables \
        --metrics sm__pipe_tensor_op_hmma_cycles_active.avg.pct_of_peak_sustained_active,l1tex__data_bank_conflicts_pipe_lsu_mem_shared_op_ld.sum,l1tex__data_bank_conflicts_pipe_lsu_mem_shared_op_st.sum,l1tex__data_pipe_lsu_wavefronts_mem_shared.sum,lts__t_sectors_op_red.sum,smsp__inst_executed_op_ldsm.sum \
        python3 experiments/gpu/breakdown.py --n 8192 --once >"$out/ncu.txt" 2>&1
    grep -E "flash_|Achieved Occupancy|Registers Per|hmma|bank_conflicts|Stall|Duration|DRAM Throughput|L2 Cache Throughput|Compute \(SM\)|wavefronts|op_red|ldsm" "$out/ncu.txt" | head -n 200 >"$out/ncu-key.txt"
fi
nvcc -O3 -std=c++17 --threads 0 -shared -Xcompiler -fPIC,-fvisibility=hidden \
    -DKAT_CUDA_BUILDING_LIBRARY -DKAT_CUDA_BWD_WARPS=8 -Iinclude -Ilib/cuda \
    -gencode arch=compute_90,code=sm_90 lib/cuda/*.cu -o build-gpu/libkat-cuda-w8.so &&
    { KAT_CUDA_LIB=build-gpu/libkat-cuda-w8.so python3 tests/gpu/test_attn.py 2>&1 | tail -n 3
      KAT_CUDA_LIB=build-gpu/libkat-cuda-w8.so python3 experiments/gpu/breakdown.py; } \
    >"$out/bwd-8-warps.txt" 2>&1
