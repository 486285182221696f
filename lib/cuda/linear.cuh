/* What the linear-attention kernels share (linear_sweep.cu, linear_chunk.cu): operands read
 * from strided tensors of any of the three types, and the fp32 tile product of shared memory.
 *
 * Notation (include/kat/cuda.h): f(u) = 1 + u + u^2/2 with u = s q.k (with given features,
 * f = q.k: the degree-1 part alone, s = 1); vbar_j = [v_j, 1];
 * g_i = [do_i / den_i, -(do_i . o_i) / den_i] (g_i = [do_i, 0] unnormalized). */
#ifndef KAT_CUDA_LINEAR_CUH
#define KAT_CUDA_LINEAR_CUH

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>

#include "kat/cuda.h"

namespace kat_cuda {

/* Sets kat_cuda_last_error() to sentence and returns st (api.cu). */
kat_status report(kat_status st, const char *sentence);

enum { LIN_BF16 = 0, LIN_FP16 = 1, LIN_FP32 = 2 };

/* A [B, heads, rows, cols] operand; one = 1 appends a column of ones (vbar = [v | 1]). */
struct lin_src {
    const void *p;
    int dtype;
    int64_t s[3];
    int cols;
    int one;
};

__device__ __forceinline__ float lin_load(const lin_src &x, int b, int h, int r, int c) {
    if (c >= x.cols) return 1.0f;   /* the appended column */
    const int64_t i = b * x.s[0] + h * x.s[1] + r * x.s[2] + c;
    if (x.dtype == LIN_BF16) return __bfloat162float(static_cast<const __nv_bfloat16 *>(x.p)[i]);
    if (x.dtype == LIN_FP16) return __half2float(static_cast<const __half *>(x.p)[i]);
    return static_cast<const float *>(x.p)[i];
}

/* Rows [r0, r0 + C) of head h of x into a C x (x.cols + x.one) tile (row stride ld); rows
 * at or past n read as zeros. */
__device__ __forceinline__ void lin_tile(float *dst, int ld, const lin_src &x, int b, int h,
                                         int r0, int n, int C) {
    const int w = x.cols + x.one;
    for (int t = threadIdx.x; t < C * w; t += blockDim.x) {
        const int i = t / w, c = t % w;
        dst[i * ld + c] = r0 + i < n ? lin_load(x, b, h, r0 + i, c) : 0.0f;
    }
}

/* dst (rows x cols, row stride ldd) = (or +=, acc) A B with A(i, k) = A[i ar + k ac] and
 * B(k, j) = B[k br + j bc], all in shared memory; 256 threads, each owning RT rows (every
 * 16th group of RT) by 5 columns (every 16th). Ends with __syncthreads(). */
template <int RT>
__device__ void lin_mm(float *dst, int ldd, bool acc, int rows, int cols, int kdim,
                       const float *A, int ar, int ac, const float *B, int br, int bc) {
    constexpr int KC = 5;
    const int cl = threadIdx.x % 16, rg = threadIdx.x / 16;
    for (int r0 = rg * RT; r0 < rows; r0 += 16 * RT)
        for (int c0 = cl; c0 < cols; c0 += 16 * KC) {
            float s[RT][KC] = {};
            int ra[RT], cb[KC];
#pragma unroll
            for (int t = 0; t < RT; t++) ra[t] = (r0 + t < rows ? r0 + t : 0) * ar;
#pragma unroll
            for (int u = 0; u < KC; u++) cb[u] = (c0 + 16 * u < cols ? c0 + 16 * u : 0) * bc;
            for (int k = 0; k < kdim; k++) {
                float a[RT], bv[KC];
#pragma unroll
                for (int t = 0; t < RT; t++) a[t] = A[ra[t] + k * ac];
#pragma unroll
                for (int u = 0; u < KC; u++) bv[u] = B[k * br + cb[u]];
#pragma unroll
                for (int t = 0; t < RT; t++)
#pragma unroll
                    for (int u = 0; u < KC; u++) s[t][u] = fmaf(a[t], bv[u], s[t][u]);
            }
#pragma unroll
            for (int t = 0; t < RT; t++)
#pragma unroll
                for (int u = 0; u < KC; u++)
                    if (r0 + t < rows && c0 + 16 * u < cols) {
                        float *o = dst + (r0 + t) * ldd + c0 + 16 * u;
                        *o = acc ? *o + s[t][u] : s[t][u];
                    }
        }
    __syncthreads();
}

/* One call of the linear kernels, as linear_api.cu checks and fills it. */
struct lin_params {
    int B, H, Hkv, N, M, D, Dv, E;   /* E = Dv + 1 */
    int C;                           /* rows per chunk: 64, or 32 past D or Dv = 64 */
    int causal, normalize;
    int features;                    /* q and k are feature vectors: f = q.k (s = 1), D = F */
    float s;
    lin_src q, k, vbar;              /* vbar: v with its column of ones */
    lin_src g;                       /* backward: [B, H, N, E] fp32 */
};

/* The state sweep: readers X (nread heads per key/value head) read the running state built
 * from writers Y with values U (nwrite heads per key/value head). R [B, Hx, n, E] (Hx = Hkv
 * nread) += the readout sum_j f(x_i, y_j) u_j over the writers the mask leaves outside x_i's
 * own chunk; dX [B, Hx, n, D] += sum_j (w_i . u_j) f'(u_ij) s y_j with w_i read from WV. Either
 * output may be NULL. reverse: the causal mask seen from the keys (j >= i). */
struct lin_sweep {
    lin_src X, Y, U, WV;
    int nread, nwrite, n, m, reverse;
    float *R, *dX;
};

cudaError_t lin_launch_sweep(const lin_params &p, const lin_sweep &w, cudaStream_t st);
/* Forward, causal: R [B, H, N, E] = the in-chunk sums sum_{j <= i} f(q_i, k_j) vbar_j. */
cudaError_t lin_launch_intra_fwd(const lin_params &p, float *R, cudaStream_t st);
/* Backward, causal: the in-chunk gradients added to dq [B, H, N, D], dk [B, Hkv, M, D] and
 * dvbar [B, Hkv, M, E]. */
cudaError_t lin_launch_intra_bwd(const lin_params &p, float *dq, float *dk, float *dvbar,
                                 cudaStream_t st);
/* o = R[:, :Dv] / R[:, Dv] (or R[:, :Dv]) in o's type, den = R[:, Dv]. */
cudaError_t lin_launch_finish_fwd(const lin_params &p, const float *R, void *o,
                                  const int64_t *os, float *den, cudaStream_t st);
/* g [B, H, N, E] from dout, o and den. */
cudaError_t lin_launch_make_g(const lin_params &p, const lin_src &dout, const lin_src &o,
                              const float *den, float *g, cudaStream_t st);
/* out (strided, the call's type) = the first cols columns of the fp32 [B, heads, rows, ld]
 * array acc. */
cudaError_t lin_launch_store(const lin_params &p, const float *acc, int heads, int rows, int ld,
                             int cols, void *out, const int64_t *os, cudaStream_t st);

} // namespace kat_cuda

#endif
