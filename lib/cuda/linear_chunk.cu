/* Linear attention inside one chunk (the causal pairs j <= i of the same chunk, which the
 * state sweep leaves out), and the element-wise passes around the sweeps: the output and its
 * denominators, the backward's g, the fp32 gradients into the caller's type. */
#include "linear.cuh"

namespace kat_cuda {

namespace {

__device__ __forceinline__ void store(void *out, int dtype, int64_t i, float x) {
    if (dtype == LIN_BF16) static_cast<__nv_bfloat16 *>(out)[i] = __float2bfloat16(x);
    else if (dtype == LIN_FP16) static_cast<__half *>(out)[i] = __float2half(x);
    else static_cast<float *>(out)[i] = x;
}

/* f(u) and f'(u): Taylor-2, or the dot of given features itself */
__device__ __forceinline__ float kernel(const lin_params &p, float u) {
    return p.features ? u : 1.0f + u + 0.5f * u * u;
}
__device__ __forceinline__ float slope(const lin_params &p, float u) {
    return p.features ? 1.0f : 1.0f + u;
}

struct chunk_smem {
    int ldx, lde, ldc, ldt;
    float *Q, *K, *V, *G, *S, *P, *T;
};

__device__ chunk_smem carve(const lin_params &p, float *base) {
    chunk_smem m;
    m.ldx = p.D | 1;
    m.lde = p.E | 1;
    m.ldc = p.C + 1;
    m.ldt = m.ldx > m.lde ? m.ldx : m.lde;
    m.Q = base;
    m.K = m.Q + p.C * m.ldx;
    m.V = m.K + p.C * m.ldx;
    m.G = m.V + p.C * m.lde;
    m.S = m.G + p.C * m.lde;
    m.P = m.S + p.C * m.ldc;
    m.T = m.P + p.C * m.ldc;
    return m;
}

size_t chunk_bytes(const lin_params &p) {
    const int ldx = p.D | 1, lde = p.E | 1, ldt = ldx > lde ? ldx : lde;
    return sizeof(float) * (size_t)p.C * (2 * ldx + 2 * lde + 2 * (p.C + 1) + ldt);
}

/* The chunk's rows of q (head h) and of k and vbar (key head hk) from row r0 into m; the
 * caller syncs. */
__device__ __forceinline__ void load_qkv(const lin_params &p, const chunk_smem &m, int b, int h,
                                         int hk, int r0) {
    lin_tile(m.Q, m.ldx, p.q, b, h, r0, p.N, p.C);
    lin_tile(m.K, m.ldx, p.k, b, hk, r0, p.M, p.C);
    lin_tile(m.V, m.lde, p.vbar, b, hk, r0, p.M, p.C);
}

/* grid (chunks, H, B): R rows of the chunk = sum_{j <= i in the chunk} f vbar_j. */
template <int RT>
__global__ void __launch_bounds__(256) intra_fwd_kernel(const lin_params p, float *R) {
    extern __shared__ __align__(16) float smem_f[];
    const chunk_smem m = carve(p, smem_f);
    const int C = p.C, D = p.D, E = p.E, r0 = blockIdx.x * C, nv = min(C, p.N - r0);
    const int h = blockIdx.y, b = blockIdx.z, hk = h / (p.H / p.Hkv);
    load_qkv(p, m, b, h, hk, r0);
    __syncthreads();
    lin_mm<RT>(m.S, m.ldc, false, C, C, D, m.Q, m.ldx, 1, m.K, 1, m.ldx);
    for (int t = threadIdx.x; t < C * C; t += blockDim.x) {
        const int i = t / C, j = t % C;
        const float u = p.s * m.S[i * m.ldc + j];
        m.S[i * m.ldc + j] = j <= i && j < nv ? kernel(p, u) : 0.0f;
    }
    __syncthreads();
    lin_mm<RT>(m.T, m.ldt, false, C, E, C, m.S, m.ldc, 1, m.V, m.lde, 1);
    for (int t = threadIdx.x; t < nv * E; t += blockDim.x) {
        const int i = t / E, e = t % E;
        R[(((int64_t)b * p.H + h) * p.N + r0 + i) * E + e] = m.T[i * m.ldt + e];
    }
}

/* grid (chunks, H, B): with A_ij = f and dS_ij = (g_i . vbar_j) f'(u_ij) s on the chunk's
 * pairs j <= i, dq += dS K, dk += dS^T Q, dvbar += A^T G. */
template <int RT>
__global__ void __launch_bounds__(256) intra_bwd_kernel(const lin_params p, float *dq,
                                                        float *dk, float *dvbar) {
    extern __shared__ __align__(16) float smem_f[];
    const chunk_smem m = carve(p, smem_f);
    const int C = p.C, D = p.D, E = p.E, r0 = blockIdx.x * C, nv = min(C, p.N - r0);
    const int h = blockIdx.y, b = blockIdx.z, hk = h / (p.H / p.Hkv);
    load_qkv(p, m, b, h, hk, r0);
    lin_tile(m.G, m.lde, p.g, b, h, r0, p.N, C);
    __syncthreads();
    lin_mm<RT>(m.S, m.ldc, false, C, C, D, m.Q, m.ldx, 1, m.K, 1, m.ldx);
    lin_mm<RT>(m.P, m.ldc, false, C, C, E, m.G, m.lde, 1, m.V, 1, m.lde);
    for (int t = threadIdx.x; t < C * C; t += blockDim.x) {
        const int i = t / C, j = t % C;
        const bool on = j <= i && j < nv;
        const float u = p.s * m.S[i * m.ldc + j];
        m.S[i * m.ldc + j] = on ? kernel(p, u) : 0.0f;
        m.P[i * m.ldc + j] = on ? m.P[i * m.ldc + j] * slope(p, u) * p.s : 0.0f;
    }
    __syncthreads();
    const int64_t qrow = ((int64_t)b * p.H + h) * p.N + r0;
    const int64_t krow = ((int64_t)b * p.Hkv + hk) * p.M + r0;
    lin_mm<RT>(m.T, m.ldt, false, C, D, C, m.P, m.ldc, 1, m.K, m.ldx, 1);
    for (int t = threadIdx.x; t < nv * D; t += blockDim.x)
        atomicAdd(dq + (qrow + t / D) * D + t % D, m.T[(t / D) * m.ldt + t % D]);
    __syncthreads();
    lin_mm<RT>(m.T, m.ldt, false, C, D, C, m.P, 1, m.ldc, m.Q, m.ldx, 1);
    for (int t = threadIdx.x; t < nv * D; t += blockDim.x)
        atomicAdd(dk + (krow + t / D) * D + t % D, m.T[(t / D) * m.ldt + t % D]);
    __syncthreads();
    lin_mm<RT>(m.T, m.ldt, false, C, E, C, m.S, 1, m.ldc, m.G, m.lde, 1);
    for (int t = threadIdx.x; t < nv * E; t += blockDim.x)
        atomicAdd(dvbar + (krow + t / E) * E + t % E, m.T[(t / E) * m.ldt + t % E]);
}

template <int RT>
cudaError_t intra(const lin_params &p, bool bwd, float *a, float *b2, float *c,
                  cudaStream_t st) {
    const size_t bytes = chunk_bytes(p);
    dim3 grid((p.N + p.C - 1) / p.C, p.H, p.B);
    cudaError_t e;
    if (bwd) {
        e = cudaFuncSetAttribute(intra_bwd_kernel<RT>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                 (int)bytes);
        if (e != cudaSuccess) return e;
        intra_bwd_kernel<RT><<<grid, 256, bytes, st>>>(p, a, b2, c);
    } else {
        e = cudaFuncSetAttribute(intra_fwd_kernel<RT>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                 (int)bytes);
        if (e != cudaSuccess) return e;
        intra_fwd_kernel<RT><<<grid, 256, bytes, st>>>(p, a);
    }
    return cudaGetLastError();
}

__global__ void finish_fwd_kernel(const lin_params p, const float *R, void *o, int64_t os0,
                                  int64_t os1, int64_t os2, float *den) {
    const int64_t total = (int64_t)p.B * p.H * p.N * p.Dv;
    for (int64_t t = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; t < total;
         t += (int64_t)gridDim.x * blockDim.x) {
        const int c = (int)(t % p.Dv);
        const int64_t row = t / p.Dv;
        const int i = (int)(row % p.N), h = (int)(row / p.N % p.H), b = (int)(row / p.N / p.H);
        const float *r = R + row * p.E;
        const float z = r[p.Dv];
        store(o, p.q.dtype, b * os0 + h * os1 + i * os2 + c, p.normalize ? r[c] / z : r[c]);
        if (c == 0) den[row] = z;
    }
}

/* a warp per row */
__global__ void make_g_kernel(const lin_params p, const lin_src dout, const lin_src o,
                              const float *den, float *g) {
    const int64_t rows = (int64_t)p.B * p.H * p.N;
    const int lane = threadIdx.x % 32;
    for (int64_t row = (blockIdx.x * (int64_t)blockDim.x + threadIdx.x) / 32; row < rows;
         row += (int64_t)gridDim.x * blockDim.x / 32) {
        const int i = (int)(row % p.N), h = (int)(row / p.N % p.H), b = (int)(row / p.N / p.H);
        const float inv = p.normalize ? 1.0f / den[row] : 1.0f;
        float dot = 0.0f;
        for (int c = lane; c < p.Dv; c += 32) {
            const float d = lin_load(dout, b, h, i, c);
            dot += d * lin_load(o, b, h, i, c);
            g[row * p.E + c] = d * inv;
        }
        for (int off = 16; off; off /= 2) dot += __shfl_xor_sync(0xffffffffu, dot, off);
        if (lane == 0) g[row * p.E + p.Dv] = p.normalize ? -dot * inv : 0.0f;
    }
}

__global__ void store_kernel(int dtype, const float *acc, int B, int heads, int rows, int ld,
                             int cols, void *out, int64_t os0, int64_t os1, int64_t os2) {
    const int64_t total = (int64_t)B * heads * rows * cols;
    for (int64_t t = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; t < total;
         t += (int64_t)gridDim.x * blockDim.x) {
        const int c = (int)(t % cols);
        const int64_t row = t / cols;
        const int i = (int)(row % rows), h = (int)(row / rows % heads);
        const int b = (int)(row / rows / heads);
        store(out, dtype, b * os0 + h * os1 + i * os2 + c, acc[row * ld + c]);
    }
}

int blocks_for(int64_t n) {
    const int64_t b = (n + 255) / 256;
    return (int)(b < 65536 ? (b > 0 ? b : 1) : 65536);
}

} // namespace

cudaError_t lin_launch_intra_fwd(const lin_params &p, float *R, cudaStream_t st) {
    return p.C == 64 ? intra<4>(p, false, R, nullptr, nullptr, st)
                     : intra<2>(p, false, R, nullptr, nullptr, st);
}

cudaError_t lin_launch_intra_bwd(const lin_params &p, float *dq, float *dk, float *dvbar,
                                 cudaStream_t st) {
    return p.C == 64 ? intra<4>(p, true, dq, dk, dvbar, st) : intra<2>(p, true, dq, dk, dvbar, st);
}

cudaError_t lin_launch_finish_fwd(const lin_params &p, const float *R, void *o,
                                  const int64_t *os, float *den, cudaStream_t st) {
    finish_fwd_kernel<<<blocks_for((int64_t)p.B * p.H * p.N * p.Dv), 256, 0, st>>>(
        p, R, o, os[0], os[1], os[2], den);
    return cudaGetLastError();
}

cudaError_t lin_launch_make_g(const lin_params &p, const lin_src &dout, const lin_src &o,
                              const float *den, float *g, cudaStream_t st) {
    make_g_kernel<<<blocks_for((int64_t)p.B * p.H * p.N * 32), 256, 0, st>>>(p, dout, o, den, g);
    return cudaGetLastError();
}

cudaError_t lin_launch_store(const lin_params &p, const float *acc, int heads, int rows, int ld,
                             int cols, void *out, const int64_t *os, cudaStream_t st) {
    store_kernel<<<blocks_for((int64_t)p.B * heads * rows * cols), 256, 0, st>>>(
        p.q.dtype, acc, p.B, heads, rows, ld, cols, out, os[0], os[1], os[2]);
    return cudaGetLastError();
}

} // namespace kat_cuda
