/* A CPU stand-in for the CUDA runtime, enough to run libkat-cuda's kernels on the host
 * (tests/gpu/emulate.sh): every thread of a block is a coroutine, and __syncthreads and the
 * warp-wide operations (shuffles, ldmatrix, mma) wait, by switching coroutines, until every
 * live thread of the block or warp has arrived. Blocks run one after another, so a block's
 * shared memory is one static array and atomics are plain additions. cp.async copies land
 * at the wait that retires them, late as on the GPU (other orders: compute-sanitizer). */
#ifndef KAT_EMU_CUDA_RUNTIME_H
#define KAT_EMU_CUDA_RUNTIME_H

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <tuple>
#include <utility>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__
#define __align__(n) alignas(n)

struct uint3 { unsigned x, y, z; };
struct float2 { float x, y; };
struct dim3 {
    unsigned x, y, z;
    dim3(unsigned a = 1, unsigned b = 1, unsigned c = 1) : x(a), y(b), z(c) {}
};
typedef int cudaError_t;
typedef struct CUstream_st *cudaStream_t;
enum {
    cudaSuccess = 0,
    cudaErrorInvalidValue = 1,
    cudaFuncAttributeMaxDynamicSharedMemorySize = 8
};

namespace emu {

constexpr size_t SMEM_BYTES = 227 * 1024;
struct lane_ctx;
extern lane_ctx *cur;
extern dim3 grid, block, blk;
uint3 thread_idx();
void syncthreads();
int syncthreads_count(int pred);
/* Warp collective: lane posts in; once every live lane of the warp posted, fn(ins, lane)
 * runs for each lane, reading the other lanes' posts. */
void warp_exchange(const void *in, void (*fn)(const void *const *ins, int lane, void *out),
                   void *out);
int lane_id();
/* cp.async: the data is read at the copy and lands in shared memory only at the wait that
 * retires its group, so a reader that runs ahead of its wait or barrier sees the poison */
void async_copy16(void *dst, const void *src, bool valid);
void async_commit();
void async_wait(int n);
float shfl_xor(float x, int m);
void run_grid(void (*body)(const void *), const void *args, dim3 g, dim3 b, size_t smem);
extern unsigned char shared_mem[SMEM_BYTES];

struct cfg {
    dim3 g, b;
    size_t smem;
    cudaStream_t s;
};
/* kernel<<<g, b, smem, s>>>(args...), rewritten by emulate.sh: the arguments converted to the
 * kernel's parameter types as a real launch does, then the grid run to its end. */
template <typename... P> struct kernel_call {
    static void (*fn)(P...);
    static void body(const void *a) { std::apply(fn, *static_cast<const std::tuple<P...> *>(a)); }
};
template <typename... P> void (*kernel_call<P...>::fn)(P...);
template <typename... P, typename... A> void launch(void (*k)(P...), cfg c, A &&...args) {
    kernel_call<P...>::fn = k;
    const std::tuple<P...> t(std::forward<A>(args)...);
    run_grid(&kernel_call<P...>::body, &t, c.g, c.b, c.smem);
}
cudaError_t last_error();

} // namespace emu

#define threadIdx (emu::thread_idx())
#define blockIdx (emu::blk)
#define gridDim (emu::grid)
#define blockDim (emu::block)

inline void __syncthreads() { emu::syncthreads(); }
inline int __syncthreads_count(int pred) { return emu::syncthreads_count(pred); }
inline float __shfl_xor_sync(unsigned, float x, int m) { return emu::shfl_xor(x, m); }

inline float atomicAdd(float *a, float v) {
    const float old = *a;
    *a = old + v;
    return old;
}
using std::max;
using std::min;

template <typename F> cudaError_t cudaFuncSetAttribute(F, int, int bytes) {
    return (size_t)bytes <= emu::SMEM_BYTES ? cudaSuccess : cudaErrorInvalidValue;
}
inline cudaError_t cudaMemsetAsync(void *p, int v, size_t n, cudaStream_t = nullptr) {
    std::memset(p, v, n);
    return cudaSuccess;
}
inline cudaError_t cudaGetLastError() { return emu::last_error(); }
inline const char *cudaGetErrorString(cudaError_t e) {   /* the runtime's own sentences */
    return e == cudaSuccess ? "no error" : e == cudaErrorInvalidValue ? "invalid argument"
                                                                      : "unknown error";
}

#endif
