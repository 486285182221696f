/* The state sweep of linear attention with the Taylor-2 kernel (linear.cuh).
 *
 * With u = s x.y, f = 1 + u + u^2/2 splits into the running sums of the writers' rows
 *
 *   Z0 = sum_j u_j,   Z1 = sum_j y_j u_j^T (D x E),   Z2[a][b] = sum_j y_ja y_jb u_j^T (E each):
 *
 *   readout  sum_j f(x, y_j) u_j = Z0 + s x^T Z1 + (s^2 / 2) sum_{a, b} x_a x_b Z2[a][b].
 *
 * Z2 is symmetric, so slice a keeps its rows b >= a only (D - a rows of E), and with c = 1 on
 * the diagonal and 2 off it, T_a = sum_{b >= a} c x_b Z2[a][b] = 2 x[a:] Z2_a - x_a Z2[a][a]:
 *
 *   readout  += (s^2 / 2) x_a T_a,
 *   gradient dx_a += (s^2 / 2) T_a . w,   dx_b += (s^2 / 2) x_a c (Z2[a][b] . w)  (b >= a),
 *            dx   += s Z1 w                                      (w: the reader's row vector).
 *
 * A block holds two slices, a and D - 1 - a (D + 1 rows together, so every block does the
 * same work), or the last block [Z1; Z0], in shared memory, for one (batch, key/value head),
 * and walks the sequence chunk by chunk; the blocks of a head share nothing but the atomic
 * adds of their readouts. The products are fp32 on the CUDA cores. Causal: each chunk is
 * read out before it is written, so that the state holds the earlier chunks only (the chunk
 * itself is linear_chunk.cu's). */
#include "linear.cuh"

namespace kat_cuda {

namespace {

struct sweep_smem {
    int ldx, lde, ldt;
    float *W, *XY, *UV, *T, *Racc, *dXacc;
};

__device__ sweep_smem carve(const lin_params &p, float *base) {
    sweep_smem m;
    m.ldx = (p.D + 1) | 1;
    m.lde = p.E | 1;
    m.ldt = m.ldx > m.lde ? m.ldx : m.lde;
    m.W = base;
    m.XY = m.W + (p.D + 1) * m.lde;
    m.UV = m.XY + p.C * m.ldx;
    m.T = m.UV + p.C * m.lde;
    m.Racc = m.T + p.C * m.ldt;
    m.dXacc = m.Racc + p.C * m.lde;
    return m;
}

size_t sweep_bytes(const lin_params &p) {
    const int ldx = (p.D + 1) | 1, lde = p.E | 1, ldt = ldx > lde ? ldx : lde;
    return sizeof(float) * ((size_t)(p.D + 1) * lde + (size_t)p.C * (2 * ldx + 2 * lde + ldt));
}

template <int RT>
__global__ void __launch_bounds__(256) sweep_kernel(const lin_params p, const lin_sweep w) {
    extern __shared__ __align__(16) float smem_f[];
    const sweep_smem m = carve(p, smem_f);
    const int D = p.D, E = p.E, C = p.C, tid = threadIdx.x;
    const int npairs = (D + 1) / 2;
    /* [Z1; Z0] (given features: Z1 alone, every block, no degree-2 slices) */
    const bool first = p.features || blockIdx.x == (unsigned)npairs;
    /* the block's degree-2 slices and where their rows start in W */
    const int sa[2] = {(int)blockIdx.x, D - 1 - (int)blockIdx.x};
    const int nsl = first ? 0 : sa[0] == sa[1] ? 1 : 2;
    float *const Wsl[2] = {m.W, m.W + (D - sa[0]) * m.lde};
    const int hkv = blockIdx.y, b = blockIdx.z;
    const int Hx = p.Hkv * w.nread;
    const float s = p.s, h2 = 0.5f * p.s * p.s;

    for (int t = tid; t < (D + 1) * m.lde; t += blockDim.x) m.W[t] = 0.0f;
    __syncthreads();

    /* the writers' rows of chunk c into the block's slices */
    auto write_chunk = [&](int c) {
        const int r0 = c * C;
        for (int wi = 0; wi < w.nwrite; wi++) {
            const int h = hkv * w.nwrite + wi;
            lin_tile(m.XY, m.ldx, w.Y, b, h, r0, w.m, C);
            for (int i = tid; i < C; i += blockDim.x)   /* Z0 stays 0 for given features */
                m.XY[i * m.ldx + D] = r0 + i < w.m && !p.features;
            lin_tile(m.UV, m.lde, w.U, b, h, r0, w.m, C);
            __syncthreads();
            if (first)   /* [Z1; Z0] += [y, 1]^T u */
                lin_mm<RT>(m.W, m.lde, true, D + 1, E, C, m.XY, 1, m.ldx, m.UV, m.lde, 1);
            for (int k = 0; k < nsl; k++) {   /* Z2[a][a:] += y[a:]^T (y_a u) */
                const int a = sa[k];
                for (int t = tid; t < C * E; t += blockDim.x) {
                    const int i = t / E, e = t % E;
                    m.T[i * m.ldt + e] = m.XY[i * m.ldx + a] * m.UV[i * m.lde + e];
                }
                __syncthreads();
                lin_mm<RT>(Wsl[k], m.lde, true, D - a, E, C, m.XY + a, 1, m.ldx, m.T, m.ldt, 1);
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
            if (first) {
                lin_mm<RT>(m.T, m.ldt, false, C, E, D, m.XY, m.ldx, 1, m.W, m.lde, 1);
                if (w.R)
                    for (int t = tid; t < C * E; t += blockDim.x) {
                        const int i = t / E, e = t % E;
                        m.Racc[i * m.lde + e] += s * m.T[i * m.ldt + e] + m.W[D * m.lde + e];
                    }
                if (w.dX) {   /* dx += s Z1 w */
                    __syncthreads();
                    lin_mm<RT>(m.T, m.ldt, false, C, D, E, m.UV, m.lde, 1, m.W, 1, m.lde);
                    for (int t = tid; t < C * D; t += blockDim.x) {
                        const int i = t / D, a = t % D;
                        m.dXacc[i * m.ldx + a] += s * m.T[i * m.ldt + a];
                    }
                }
                __syncthreads();
            }
            for (int k = 0; k < nsl; k++) {
                const int a = sa[k], nr = D - a;
                const float *Wa = Wsl[k];
                /* T = 2 x[a:] Z2_a - x_a Z2[a][a] */
                lin_mm<RT>(m.T, m.ldt, false, C, E, nr, m.XY + a, m.ldx, 1, Wa, m.lde, 1);
                for (int t = tid; t < C * E; t += blockDim.x) {
                    const int i = t / E, e = t % E;
                    const float xa = m.XY[i * m.ldx + a];
                    const float te = 2.0f * m.T[i * m.ldt + e] - xa * Wa[e];
                    m.T[i * m.ldt + e] = te;
                    if (w.R) m.Racc[i * m.lde + e] += h2 * xa * te;
                }
                __syncthreads();
                if (w.dX) {
                    /* dx_a += (s^2/2) T . w: a warp per row */
                    const int warp = tid / 32, lane = tid % 32;
                    for (int i = warp; i < C; i += blockDim.x / 32) {
                        float acc = 0.0f;
                        for (int e = lane; e < E; e += 32)
                            acc += m.T[i * m.ldt + e] * m.UV[i * m.lde + e];
                        for (int o = 16; o; o /= 2) acc += __shfl_xor_sync(0xffffffffu, acc, o);
                        if (lane == 0) m.dXacc[i * m.ldx + a] += h2 * acc;
                    }
                    __syncthreads();
                    /* dx_b += (s^2/2) x_a c (Z2[a][b] . w), b >= a */
                    lin_mm<RT>(m.T, m.ldt, false, C, nr, E, m.UV, m.lde, 1, Wa, 1, m.lde);
                    for (int t = tid; t < C * nr; t += blockDim.x) {
                        const int i = t / nr, r = t % nr;
                        m.dXacc[i * m.ldx + a + r] +=
                            h2 * (r ? 2.0f : 1.0f) * m.XY[i * m.ldx + a] * m.T[i * m.ldt + r];
                    }
                    __syncthreads();
                }
            }
            if (w.R)
                for (int t = tid; t < nv * E; t += blockDim.x) {
                    const int i = t / E, e = t % E;
                    atomicAdd(w.R + (((int64_t)b * Hx + h) * w.n + r0 + i) * E + e,
                              m.Racc[i * m.lde + e]);
                }
            if (w.dX) {
                /* the columns the block's slices touch: [Z1; Z0] all, slice a those >= a */
                const int a0 = first ? 0 : sa[0], na = D - a0;
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
    const size_t bytes = sweep_bytes(p);
    cudaError_t e = cudaFuncSetAttribute(sweep_kernel<RT>,
                                         cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes);
    if (e != cudaSuccess) return e;
    /* the slice pairs, then [Z1; Z0]; given features: Z1 only */
    dim3 grid(p.features ? 1 : (p.D + 1) / 2 + 1, p.Hkv, p.B);
    sweep_kernel<RT><<<grid, 256, bytes, st>>>(p, w);
    return cudaGetLastError();
}

} // namespace

cudaError_t lin_launch_sweep(const lin_params &p, const lin_sweep &w, cudaStream_t st) {
    return p.C == 64 ? launch<4>(p, w, st) : launch<2>(p, w, st);
}

} // namespace kat_cuda
