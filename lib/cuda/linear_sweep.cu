/* The state sweep of linear attention with the Taylor-2 kernel (linear.cuh).
 *
 * With u = s x.y, f = 1 + u + u^2/2 splits into the running sums of the writers' rows
 *
 *   Z0 = sum_j u_j,   Z1 = sum_j y_j u_j^T (D x E),   Z2_a = sum_j y_ja y_j u_j^T (D x E, a < D):
 *
 *   readout  sum_j f(x, y_j) u_j = Z0 + s x^T Z1 + (s^2 / 2) sum_a x_a (x^T Z2_a),
 *   gradient dx_a = s (w . Z1_a) + s^2 (x^T Z2_a) . w       (Z1_a: row a of Z1).
 *
 * The state is D + 1 slices (Z2_0 .. Z2_{D-1}, then [Z1; Z0]) of about D x E floats each; a
 * block holds a few slices of one (batch, key/value head) in shared memory and walks the
 * sequence chunk by chunk, so that the blocks of a head share nothing but the atomic adds of
 * their readouts. Each block pays one chunk's worth of loads per slice group; the products
 * are fp32 on the CUDA cores. Causal: each chunk is read out before it is written, so that
 * the state holds the earlier chunks only (the chunk itself is linear_chunk.cu's). */
#include "linear.cuh"

namespace kat_cuda {

namespace {

struct sweep_smem {
    int ldx, lde, ldt;
    float *W, *XY, *UV, *T, *Racc, *dXacc;
};

__device__ sweep_smem carve(const lin_params &p, int spb, float *base) {
    sweep_smem m;
    m.ldx = (p.D + 1) | 1;
    m.lde = p.E | 1;
    m.ldt = m.ldx > m.lde ? m.ldx : m.lde;
    m.W = base;
    m.XY = m.W + spb * (p.D + 1) * m.lde;
    m.UV = m.XY + p.C * m.ldx;
    m.T = m.UV + p.C * m.lde;
    m.Racc = m.T + p.C * m.ldt;
    m.dXacc = m.Racc + p.C * m.lde;
    return m;
}

size_t sweep_bytes(const lin_params &p, int spb) {
    const int ldx = (p.D + 1) | 1, lde = p.E | 1, ldt = ldx > lde ? ldx : lde;
    return sizeof(float) *
           ((size_t)spb * (p.D + 1) * lde + (size_t)p.C * (2 * ldx + 2 * lde + ldt));
}

template <int RT>
__global__ void __launch_bounds__(256) sweep_kernel(const lin_params p, const lin_sweep w,
                                                    int spb) {
    extern __shared__ __align__(16) float smem_f[];
    const sweep_smem m = carve(p, spb, smem_f);
    const int D = p.D, E = p.E, C = p.C, tid = threadIdx.x;
    const int s0 = blockIdx.x * spb, s1 = min(D + 1, s0 + spb);
    const int hkv = blockIdx.y, b = blockIdx.z;
    const int Hx = p.Hkv * w.nread;
    const float s = p.s, s2 = p.s * p.s;

    for (int t = tid; t < spb * (D + 1) * m.lde; t += blockDim.x) m.W[t] = 0.0f;
    __syncthreads();

    /* the writers' rows of chunk c into every slice of the block */
    auto write_chunk = [&](int c) {
        const int r0 = c * C;
        for (int wi = 0; wi < w.nwrite; wi++) {
            const int h = hkv * w.nwrite + wi;
            lin_tile(m.XY, m.ldx, w.Y, b, h, r0, w.m, C);
            for (int i = tid; i < C; i += blockDim.x) m.XY[i * m.ldx + D] = r0 + i < w.m;
            lin_tile(m.UV, m.lde, w.U, b, h, r0, w.m, C);
            __syncthreads();
            for (int sl = s0; sl < s1; sl++) {
                float *Ws = m.W + (sl - s0) * (D + 1) * m.lde;
                if (sl == D) {   /* [Z1; Z0] += [y, 1]^T u */
                    lin_mm<RT>(Ws, m.lde, true, D + 1, E, C, m.XY, 1, m.ldx, m.UV, m.lde, 1);
                } else {         /* Z2_a += y^T (y_a u) */
                    for (int t = tid; t < C * E; t += blockDim.x) {
                        const int i = t / E, e = t % E;
                        m.T[i * m.ldt + e] = m.XY[i * m.ldx + sl] * m.UV[i * m.lde + e];
                    }
                    __syncthreads();
                    lin_mm<RT>(Ws, m.lde, true, D, E, C, m.XY, 1, m.ldx, m.T, m.ldt, 1);
                }
            }
        }
    };

    /* the readers' rows of chunk c: readout and gradient from the state as it stands */
    auto read_chunk = [&](int c) {
        const int r0 = c * C, nv = min(C, w.n - r0);
        for (int ri = 0; ri < w.nread; ri++) {
            const int h = hkv * w.nread + ri;
            lin_tile(m.XY, m.ldx, w.X, b, h, r0, w.n, C);
            if (w.dX) lin_tile(m.UV, m.lde, w.WV, b, h, r0, w.n, C);
            for (int t = tid; t < C * m.lde; t += blockDim.x) m.Racc[t] = 0.0f;
            for (int t = tid; t < C * m.ldx; t += blockDim.x) m.dXacc[t] = 0.0f;
            __syncthreads();
            for (int sl = s0; sl < s1; sl++) {
                const float *Ws = m.W + (sl - s0) * (D + 1) * m.lde;
                lin_mm<RT>(m.T, m.ldt, false, C, E, D, m.XY, m.ldx, 1, Ws, m.lde, 1);
                if (sl == D) {
                    if (w.R)
                        for (int t = tid; t < C * E; t += blockDim.x) {
                            const int i = t / E, e = t % E;
                            m.Racc[i * m.lde + e] += s * m.T[i * m.ldt + e] + Ws[D * m.lde + e];
                        }
                    if (w.dX) {   /* dx += s Z1 w */
                        __syncthreads();
                        lin_mm<RT>(m.T, m.ldt, false, C, D, E, m.UV, m.lde, 1, Ws, 1, m.lde);
                        for (int t = tid; t < C * D; t += blockDim.x) {
                            const int i = t / D, a = t % D;
                            m.dXacc[i * m.ldx + a] += s * m.T[i * m.ldt + a];
                        }
                    }
                } else {
                    if (w.R)
                        for (int t = tid; t < C * E; t += blockDim.x) {
                            const int i = t / E, e = t % E;
                            m.Racc[i * m.lde + e] +=
                                0.5f * s2 * m.XY[i * m.ldx + sl] * m.T[i * m.ldt + e];
                        }
                    if (w.dX) {   /* dx_a += s^2 (x^T Z2_a) . w: a warp per row */
                        const int warp = tid / 32, lane = tid % 32;
                        for (int i = warp; i < C; i += blockDim.x / 32) {
                            float acc = 0.0f;
                            for (int e = lane; e < E; e += 32)
                                acc += m.T[i * m.ldt + e] * m.UV[i * m.lde + e];
                            for (int o = 16; o; o /= 2) acc += __shfl_xor_sync(0xffffffffu, acc, o);
                            if (lane == 0) m.dXacc[i * m.ldx + sl] += s2 * acc;
                        }
                    }
                }
                __syncthreads();
            }
            if (w.R)
                for (int t = tid; t < nv * E; t += blockDim.x) {
                    const int i = t / E, e = t % E;
                    atomicAdd(w.R + (((int64_t)b * Hx + h) * w.n + r0 + i) * E + e,
                              m.Racc[i * m.lde + e]);
                }
            if (w.dX) {
                /* only the columns of this block's slices (all of them for [Z1; Z0]) */
                const int a0 = s1 == D + 1 ? 0 : s0, a1 = s1 == D + 1 ? D : s1;
                const int na = a1 - a0;
                for (int t = tid; t < nv * na; t += blockDim.x) {
                    const int i = t / na, a = a0 + t % na;
                    atomicAdd(w.dX + (((int64_t)b * Hx + h) * w.n + r0 + i) * D + a,
                              m.dXacc[i * m.ldx + a]);
                }
            }
            __syncthreads();
        }
    };

    if (p.causal) {   /* n = m */
        const int nch = (w.n + C - 1) / C;
        for (int step = 0; step < nch; step++) {
            const int c = w.reverse ? nch - 1 - step : step;
            if (step) read_chunk(c);
            write_chunk(c);
        }
    } else {
        for (int c = 0; c * C < w.m; c++) write_chunk(c);
        for (int c = 0; c * C < w.n; c++) read_chunk(c);
    }
}

template <int RT>
cudaError_t launch(const lin_params &p, const lin_sweep &w, cudaStream_t st) {
    /* as many slices a block as fit in about 100 KB, at least one */
    int spb = 4;
    while (spb > 1 && sweep_bytes(p, spb) > 100 * 1024) spb--;
    const size_t bytes = sweep_bytes(p, spb);
    cudaError_t e = cudaFuncSetAttribute(sweep_kernel<RT>,
                                         cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes);
    if (e != cudaSuccess) return e;
    dim3 grid((p.D + 1 + spb - 1) / spb, p.Hkv, p.B);
    sweep_kernel<RT><<<grid, 256, bytes, st>>>(p, w, spb);
    return cudaGetLastError();
}

} // namespace

cudaError_t lin_launch_sweep(const lin_params &p, const lin_sweep &w, cudaStream_t st) {
    return p.C == 64 ? launch<4>(p, w, st) : launch<2>(p, w, st);
}

} // namespace kat_cuda
