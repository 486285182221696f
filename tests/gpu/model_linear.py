"""A CPU run of libkat-cuda's linear-attention kernels (lib/cuda/linear_*.cu): the CUDA
sources, compiled as C++20 for the host against a small emulation of the CUDA runtime (a block
is blockDim OS threads with a sleeping barrier for __syncthreads, a warp's shuffles go through a
per-warp barrier, atomicAdd is an atomic_ref, shared memory starts as NaN so that a read of
an unwritten element shows), driven through the C API on host memory and checked against
an fp64 reference. It checks the kernels' index arithmetic, synchronisation and API without a
GPU; speed and the hardware's own behaviour are tests/gpu/test_linear.py's (on a GPU).

    python3 tests/gpu/model_linear.py        (needs g++ with C++20 and torch)
"""
import ctypes
import importlib.util
import math
import os
import re
import subprocess
import sys
import tempfile

import torch

from linear_ref import features_naive, naive

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

PRELUDE = r"""
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __align__(n)
struct dim3 {
    unsigned x, y, z;
    dim3(unsigned a = 1, unsigned b = 1, unsigned c = 1) : x(a), y(b), z(c) {}
};
typedef int cudaError_t;
typedef struct CUstream_st *cudaStream_t;
enum { cudaSuccess = 0, cudaErrorInvalidValue = 1, cudaFuncAttributeMaxDynamicSharedMemorySize = 8 };
inline thread_local dim3 threadIdx, blockIdx, blockDim, gridDim;
namespace kat_emu {
/* a sleeping barrier: 256 spinning threads would swamp a small machine */
struct barrier {
    std::mutex m;
    std::condition_variable cv;
    unsigned n, count = 0, gen = 0;
    explicit barrier(unsigned n_) : n(n_) {}
    void arrive_and_wait() {
        std::unique_lock<std::mutex> l(m);
        const unsigned g = gen;
        if (++count == n) {
            count = 0;
            gen++;
            cv.notify_all();
        } else {
            cv.wait(l, [&] { return gen != g; });
        }
    }
};
inline thread_local barrier *block_bar;
inline thread_local barrier *warp_bar;
inline thread_local float *warp_buf;
inline thread_local unsigned char *smem_base;
inline unsigned char *smem() { return smem_base; }
inline cudaError_t last = cudaSuccess;
template <typename K, typename... A>
void launch(K kernel, dim3 grid, dim3 block, size_t bytes, cudaStream_t, A... args) {
    const unsigned nt = block.x * block.y * block.z;
    for (unsigned z = 0; z < grid.z; z++)
        for (unsigned y = 0; y < grid.y; y++)
            for (unsigned x = 0; x < grid.x; x++) {
                std::vector<unsigned char> mem(bytes + 16, 0xFF);   /* NaN floats */
                barrier bar(nt);
                std::vector<std::unique_ptr<barrier>> wbar;
                for (unsigned w = 0; w < (nt + 31) / 32; w++)
                    wbar.emplace_back(new barrier(std::min(32u, nt - 32 * w)));
                std::vector<float> wbuf(nt + 32);
                std::vector<std::thread> th;
                for (unsigned t = 0; t < nt; t++)
                    th.emplace_back([&, t] {
                        threadIdx = dim3(t);
                        blockIdx = dim3(x, y, z);
                        blockDim = block;
                        gridDim = grid;
                        block_bar = &bar;
                        warp_bar = wbar[t / 32].get();
                        warp_buf = wbuf.data() + t / 32 * 32;
                        smem_base = mem.data();
                        kernel(args...);
                    });
                for (auto &t : th) t.join();
            }
}
}
inline void __syncthreads() { kat_emu::block_bar->arrive_and_wait(); }
inline float __shfl_xor_sync(unsigned, float v, int o) {
    const int lane = threadIdx.x % 32;
    kat_emu::warp_buf[lane] = v;
    kat_emu::warp_bar->arrive_and_wait();
    const float r = kat_emu::warp_buf[lane ^ o];
    kat_emu::warp_bar->arrive_and_wait();
    return r;
}
inline float atomicAdd(float *p, float v) { return std::atomic_ref<float>(*p).fetch_add(v); }
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
/* the H100's largest dynamic shared memory a block */
template <typename K> cudaError_t cudaFuncSetAttribute(K, int, int bytes) {
    return bytes <= 232448 ? cudaSuccess : cudaErrorInvalidValue;
}
inline cudaError_t cudaGetLastError() { return kat_emu::last; }
inline const char *cudaGetErrorString(cudaError_t) { return "emulated error"; }
inline cudaError_t cudaMemsetAsync(void *p, int v, size_t n, cudaStream_t) {
    std::memset(p, v, n);
    return cudaSuccess;
}
struct __nv_bfloat16 { uint16_t u; };
struct __half { _Float16 h; };
inline float __bfloat162float(__nv_bfloat16 b) {
    uint32_t u = (uint32_t)b.u << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}
inline __nv_bfloat16 __float2bfloat16(float f) {   /* round to nearest even */
    uint32_t u;
    std::memcpy(&u, &f, 4);
    u += 0x7FFF + ((u >> 16) & 1);
    return __nv_bfloat16{(uint16_t)(u >> 16)};
}
inline float __half2float(__half h) { return (float)h.h; }
inline __half __float2half(float f) { return __half{(_Float16)f}; }
"""

ERRORS = r"""
#include <cstdio>
#include "kat/core.h"
namespace kat_cuda {
static thread_local char emu_error[512];
kat_status report(kat_status st, const char *s) {
    std::snprintf(emu_error, sizeof emu_error, "%s", s);
    return st;
}
}
extern "C" const char *kat_cuda_last_error(void) { return kat_cuda::emu_error; }
"""


def build(tmp):
    """The three linear sources, their launches and shared memory rewritten for the host,
    into one shared library."""
    emu = os.path.join(tmp, "emu")
    os.makedirs(emu)
    for h in ("cuda_runtime.h", "cuda_bf16.h", "cuda_fp16.h"):
        open(os.path.join(emu, h), "w").write("#pragma once\n")
    open(os.path.join(emu, "prelude.h"), "w").write(PRELUDE)
    srcs = [os.path.join(tmp, "errors.cpp")]
    open(srcs[0], "w").write(ERRORS)
    for name in ("linear_sweep.cu", "linear_chunk.cu", "linear_api.cu"):
        text = open(os.path.join(ROOT, "lib", "cuda", name)).read()
        text, n = re.subn(r"(\w+(?:<\w+>)?)<<<(.*?)>>>\((.*?)\);",
                          r"kat_emu::launch(\1, \2, \3);", text, flags=re.S)
        text, m = re.subn(r"extern __shared__ __align__\(16\) float (\w+)\[\];",
                          r"float *\1 = reinterpret_cast<float *>(kat_emu::smem());", text)
        out = os.path.join(tmp, name.replace(".cu", ".cpp"))
        open(out, "w").write(text)
        srcs.append(out)
    lib = os.path.join(tmp, "libkat-cuda-emu.so")
    subprocess.run(["g++", "-std=c++20", "-O1", "-g", "-fPIC", "-shared", "-pthread",
                    "-DKAT_CUDA_BUILDING_LIBRARY", "-include", os.path.join(emu, "prelude.h"),
                    "-I" + emu, "-I" + os.path.join(ROOT, "include"),
                    "-I" + os.path.join(ROOT, "lib", "cuda"), *srcs, "-o", lib], check=True)
    return lib


def load_structs():
    """python/kat/_cuda.py's ctypes structures (the module imports nothing of kat)."""
    spec = importlib.util.spec_from_file_location(
        "kat_cuda_structs", os.path.join(ROOT, "python", "kat", "_cuda.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


DT = {torch.bfloat16: 0, torch.float16: 1, torch.float32: 2}
failures = []


def run_case(lib, S, name, B, H, Hkv, N, M, D, Dv=None, causal=False, dtype=torch.float32,
             strided=False, unnormalized=False, features=False):
    Dv = Dv or D
    torch.manual_seed(N * 7 + D)
    if strided:
        mk = lambda h, n, d: torch.randn(B, n, h, d).to(dtype).transpose(1, 2)
    else:
        mk = lambda h, n, d: torch.randn(B, h, n, d).to(dtype)
    q, k, v, dout = mk(H, N, D), mk(Hkv, M, D), mk(Hkv, M, Dv), mk(H, N, Dv)
    if features:   # positive features (elu + 1), as normalised attention needs
        q, k = (torch.nn.functional.elu(x.float()).add(1).to(dtype) for x in (q, k))
    o = torch.full((B, H, N, Dv), float("nan"), dtype=dtype)
    den = torch.full((B, H, N), float("nan"))
    view = lambda t: S._View(t.data_ptr(), (ctypes.c_int64 * 3)(*t.stride()[:3]))
    call = S._Linear(S._Desc(B, H, Hkv, N, M, D, int(causal), 0.0, Dv), DT[dtype],
                     int(unnormalized), int(features), view(q), view(k), view(v), view(o), den.data_ptr())
    grads = [torch.full(x.shape, float("nan"), dtype=dtype) for x in (q, k, v)]
    problems = []
    for bwd in (0, 1):
        work = torch.empty(lib.kat_cuda_linear_workspace(ctypes.byref(call), bwd) + 256,
                           dtype=torch.uint8)
        ptr = (work.data_ptr() + 255) // 256 * 256
        if bwd:
            st = lib.kat_cuda_linear_backward(ctypes.byref(call), view(dout), *map(view, grads),
                                              ptr, work.numel() - 256, None)
        else:
            st = lib.kat_cuda_linear_forward(ctypes.byref(call), ptr, work.numel() - 256, None)
        if st:
            problems.append(f"status {st}: {lib.kat_cuda_last_error().decode()}")
    qq, kk, vv = (x.double().requires_grad_() for x in (q, k, v))
    ref = (features_naive if features else naive)(qq, kk, vv, causal, 1 / math.sqrt(D),
                                                   unnormalized)
    ref.backward(dout.double())
    tol = 2e-5 if dtype == torch.float32 else 1e-2
    for what, mine, r in zip(("o", "dq", "dk", "dv"), (o, *grads),
                             (ref, qq.grad, kk.grad, vv.grad)):
        e = ((mine.double() - r).abs().max() / (1 + r.abs().max())).item()
        if not e <= tol:
            problems.append(f"{what}: relative error {e:.3g} > {tol}")
    print(f"{name:<48} {'FAIL ' + '; '.join(problems) if problems else 'ok'}", flush=True)
    if problems:
        failures.append(name)


def main():
    S = load_structs()
    with tempfile.TemporaryDirectory() as tmp:
        lib = ctypes.CDLL(build(tmp))
        lib.kat_cuda_linear_workspace.argtypes = [ctypes.POINTER(S._Linear), ctypes.c_int]
        lib.kat_cuda_linear_workspace.restype = ctypes.c_size_t
        lib.kat_cuda_linear_forward.argtypes = [ctypes.POINTER(S._Linear), ctypes.c_void_p,
                                                ctypes.c_size_t, ctypes.c_void_p]
        lib.kat_cuda_linear_backward.argtypes = [ctypes.POINTER(S._Linear), S._View, S._View,
                                                 S._View, S._View, ctypes.c_void_p,
                                                 ctypes.c_size_t, ctypes.c_void_p]
        lib.kat_cuda_last_error.restype = ctypes.c_char_p
        cases = [
            ("N = M = 1, causal, D = 8", dict(B=1, H=1, Hkv=1, N=1, M=1, D=8, causal=True)),
            ("causal 70 (2 chunks), GQA 2:1, D = 8, Dv = 5", dict(B=1, H=2, Hkv=1, N=70, M=70,
                                                                 D=8, Dv=5, causal=True)),
            ("non-causal N = 40, M = 75, D = 6, strided", dict(B=2, H=1, Hkv=1, N=40, M=75,
                                                               D=6, strided=True)),
            ("causal 130, bf16, D = 16", dict(B=1, H=1, Hkv=1, N=130, M=130, D=16, causal=True,
                                              dtype=torch.bfloat16)),
            ("non-causal fp16, unnormalized, D = 8", dict(B=1, H=2, Hkv=2, N=20, M=33, D=8,
                                                          dtype=torch.float16,
                                                          unnormalized=True)),
            ("causal 50, odd D = 5 (a slice alone), Dv = 3", dict(B=1, H=1, Hkv=1, N=50, M=50,
                                                                 D=5, Dv=3, causal=True)),
            ("given features, causal 70, GQA 2:1, F = 12", dict(B=1, H=2, Hkv=1, N=70, M=70,
                                                               D=12, causal=True,
                                                               features=True)),
            ("given features, non-causal, F = 8, Dv = 4", dict(B=1, H=1, Hkv=1, N=30, M=50,
                                                               D=8, Dv=4, features=True)),
            ("causal 40, D = 8, Dv = 72 (chunk 32)", dict(B=1, H=1, Hkv=1, N=40, M=40, D=8,
                                                          Dv=72, causal=True)),
        ]
        if "--quick" not in sys.argv:
            cases += [("causal 100, D = 64, GQA 2:1", dict(B=1, H=2, Hkv=1, N=100, M=100,
                                                           D=64, causal=True))]
        for name, kw in cases:
            run_case(lib, S, name, **kw)
    print(f"{len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
