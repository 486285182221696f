/* Flash attention forward (FlashAttention-2, arXiv 2307.08691) on tensor cores.
 *
 * A block of 4 warps owns 128 query rows (32 a warp, two 16-row slices) at D <= 64, 64 rows
 * at D = 128, of one (batch, head) and walks the key tiles that the mask leaves, 64 keys
 * each: S = Q K^T by mma with Q's fragments held in registers, the online softmax in base 2
 * in fp32, then O += P V with P taken straight from S's registers. Two slices a warp make
 * each K and V fragment read from shared memory feed two products. K and V have two
 * buffers: tile kt + 1 is copied in (cp.async) while tile kt is computed, one barrier a tile. */
#include <math.h>

#include "flash.cuh"

namespace kat_cuda {

template <typename T, int DP, int MT, bool SP>
__global__ void __launch_bounds__(128) flash_fwd_kernel(const flash_params p) {
    constexpr int BQ = 64 * MT, WQ = 16 * MT, LD = DP + PAD, KS = DP / 16, DT = DP / 8;
    extern __shared__ __align__(16) unsigned char smem[];
    T *sQ = reinterpret_cast<T *>(smem);
    T *sK = sQ + BQ * LD;       /* two buffers each of K and V: tile kt + 1 loads during kt */
    T *sV = sK + 2 * BK * LD;
    /* bucketed: the original row and bucket of each key of the two tiles in flight */
    int *sKrow = reinterpret_cast<int *>(sV + 2 * BK * LD);
    int *sKbkt = sKrow + 2 * BK;

    const int q0 = (gridDim.x - 1 - blockIdx.x) * BQ;   /* the longest causal rows first */
    const int h = blockIdx.y, b = blockIdx.z, hk = h / (p.H / p.Hkv);
    const int64_t bh = (int64_t)b * p.H + h;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
    const T *Q = static_cast<const T *>(p.q) + b * p.qs[0] + h * p.qs[1];
    const T *K = static_cast<const T *>(p.k) + b * p.ks[0] + hk * p.ks[1];
    const T *V = static_cast<const T *>(p.v) + b * p.vs[0] + hk * p.vs[1];
    const int *qrows = SP ? p.L.q_rows + bh * p.N : nullptr;
    const int *krows = SP ? p.L.k_rows + bh * p.M : nullptr;
    const int *kbkt = SP ? p.L.k_bkt + bh * p.M : nullptr;

    /* queries of this block: rows q0.. of q, or of the sorted kept rows */
    const int nq = SP ? p.L.q_off[bh * (p.L.nb + 2) + p.L.nb] : p.N;
    if (q0 >= nq) return;   /* dropped rows are written by fill_dropped_kernel */
    int klo, khi;
    if (SP) sparse_key_range(p, bh, q0, min(q0 + BQ, nq), &klo, &khi);
    else key_range(p, q0, min(q0 + BQ, p.N), &klo, &khi);
    const int kt_lo = klo / BK, kt_hi = khi > klo ? (khi + BK - 1) / BK : kt_lo;
    /* original row and bucket of this thread's query rows: m-th 16-row slice, g or g + 8 */
    int qrow[MT][2], qbkt[MT][2];
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int r = 0; r < 2; r++) {
            const int i = q0 + warp * WQ + mt * 16 + g + 8 * r;
            qrow[mt][r] = SP ? (i < nq ? qrows[i] : -1) : i;
            qbkt[mt][r] = SP && i < nq ? p.L.q_bkt[bh * p.N + i] : -1;
        }
    /* bucketed: the block's first and last query bucket and first query row */
    const int qb_first = SP ? p.L.q_bkt[bh * p.N + q0] : 0;
    const int qb_last = SP ? (q0 + BQ <= nq ? p.L.q_bkt[bh * p.N + q0 + BQ - 1] : -1) : 0;
    const int qr_first = SP ? qrows[q0] : 0;
    /* the first of this warp's query rows */
    const int w_first = q0 + warp * WQ;
    auto load_kv = [&](int kt, int buf) {
        load_tile<T, BK, DP, 128>(sK + buf * BK * LD, K, p.ks[2], kt * BK, p.M, p.D, krows);
        load_tile<T, BK, DP, 128>(sV + buf * BK * LD, V, p.vs[2], kt * BK, p.M, p.D, krows);
        if (SP && threadIdx.x < BK) {
            const int j = kt * BK + threadIdx.x;
            sKrow[buf * BK + threadIdx.x] = j < p.M ? krows[j] : p.M;
            sKbkt[buf * BK + threadIdx.x] = j < p.M ? kbkt[j] : -2;
        }
    };

    load_tile<T, BQ, DP, 128>(sQ, Q, p.qs[2], q0, nq, p.D, qrows);
    if (kt_lo < kt_hi) load_kv(kt_lo, 0);
    cp_async_commit();

    float o[MT][DT][4];
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int j = 0; j < DT; j++) o[mt][j][0] = o[mt][j][1] = o[mt][j][2] = o[mt][j][3] = 0.f;
    float m[MT][2], l[MT][2];
#pragma unroll
    for (int mt = 0; mt < MT; mt++) m[mt][0] = m[mt][1] = -INFINITY, l[mt][0] = l[mt][1] = 0.f;
    uint32_t qf[MT][KS][4];

    for (int kt = kt_lo; kt < kt_hi; kt++) {
        const int k0 = kt * BK, buf = (kt - kt_lo) % 2;
        /* tile kt is in; every warp is done with tile kt - 1, whose buffers now take kt + 1 */
        cp_async_wait<0>();
        __syncthreads();
        if (kt + 1 < kt_hi) load_kv(kt + 1, buf ^ 1);
        cp_async_commit();
        if (kt == kt_lo) {
#pragma unroll
            for (int mt = 0; mt < MT; mt++)
#pragma unroll
                for (int kk = 0; kk < KS; kk++)
                    ldmatrix_x4(qf[mt][kk], sQ + (warp * WQ + mt * 16 + lane % 8 +
                                                  (lane / 8 % 2) * 8) * LD +
                                                kk * 16 + (lane / 16) * 8);
        }
        /* a warp whose rows all end before the tile (causal), or lie past the last query,
         * sees none of it */
        if (w_first >= nq || (!SP && p.causal && w_first + WQ - 1 + p.M - p.N < k0)) continue;
        const T *cK = sK + buf * BK * LD, *cV = sV + buf * BK * LD;
        float s[MT][BK / 8][4];
#pragma unroll
        for (int mt = 0; mt < MT; mt++)
#pragma unroll
            for (int j = 0; j < BK / 8; j++)
                s[mt][j][0] = s[mt][j][1] = s[mt][j][2] = s[mt][j][3] = 0.f;
#pragma unroll
        for (int kk = 0; kk < KS; kk++) {
#pragma unroll
            for (int nj = 0; nj < BK / 16; nj++) {
                uint32_t r[4];
                ldmatrix_x4(r, cK + (nj * 16 + lane % 8 + (lane / 16) * 8) * LD + kk * 16 +
                                   (lane / 8 % 2) * 8);
#pragma unroll
                for (int mt = 0; mt < MT; mt++) {
                    mma<T>(s[mt][2 * nj], qf[mt][kk], r);
                    mma<T>(s[mt][2 * nj + 1], qf[mt][kk], r + 2);
                }
            }
        }

        const int *mrow = sKrow + buf * BK, *mbkt = sKbkt + buf * BK;
        const bool masked = SP ? sparse_block_needs_mask(p, qb_first, qb_last, qr_first, mbkt[0],
                                                         mbkt[BK - 1], mrow[BK - 1])
                               : block_needs_mask(p, q0, BQ, k0, BK);
        uint32_t pa[MT][BK / 16][4];
#pragma unroll
        for (int mt = 0; mt < MT; mt++) {
#pragma unroll
            for (int j = 0; j < BK / 8; j++)
#pragma unroll
                for (int c = 0; c < 4; c++) {
                    float x = s[mt][j][c] * p.scale_log2;
                    const int col = j * 8 + 2 * t + c % 2;
                    if (masked) {
                        const bool ok = SP ? mbkt[col] == qbkt[mt][c / 2] &&
                                                 visible(p, qrow[mt][c / 2], mrow[col])
                                           : visible(p, qrow[mt][c / 2], k0 + col);
                        if (!ok) x = -INFINITY;
                    }
                    s[mt][j][c] = x;
                }
            /* online softmax, rows g (r = 0) and g + 8 (r = 1) */
#pragma unroll
            for (int r = 0; r < 2; r++) {
                float mx = m[mt][r];
#pragma unroll
                for (int j = 0; j < BK / 8; j++)
                    mx = fmaxf(mx, fmaxf(s[mt][j][2 * r], s[mt][j][2 * r + 1]));
                mx = quad_max(mx);
                /* a row that has seen no key yet keeps a zero base: exp2(-inf - -inf) is NaN */
                const float base = mx == -INFINITY ? 0.f : mx;
                const float alpha = fast_exp2(m[mt][r] - base);
                m[mt][r] = mx;
                float sum = 0.f;
#pragma unroll
                for (int j = 0; j < BK / 8; j++) {
                    s[mt][j][2 * r] = fast_exp2(s[mt][j][2 * r] - base);
                    s[mt][j][2 * r + 1] = fast_exp2(s[mt][j][2 * r + 1] - base);
                    sum += s[mt][j][2 * r] + s[mt][j][2 * r + 1];
                }
                l[mt][r] = l[mt][r] * alpha + sum;
#pragma unroll
                for (int j = 0; j < DT; j++) {
                    o[mt][j][2 * r] *= alpha;
                    o[mt][j][2 * r + 1] *= alpha;
                }
            }
#pragma unroll
            for (int kk = 0; kk < BK / 16; kk++) {
                pa[mt][kk][0] = elem<T>::pack(s[mt][2 * kk][0], s[mt][2 * kk][1]);
                pa[mt][kk][1] = elem<T>::pack(s[mt][2 * kk][2], s[mt][2 * kk][3]);
                pa[mt][kk][2] = elem<T>::pack(s[mt][2 * kk + 1][0], s[mt][2 * kk + 1][1]);
                pa[mt][kk][3] = elem<T>::pack(s[mt][2 * kk + 1][2], s[mt][2 * kk + 1][3]);
            }
        }

#pragma unroll
        for (int kk = 0; kk < BK / 16; kk++) {
#pragma unroll
            for (int dj = 0; dj < DP / 16; dj++) {
                uint32_t r[4];
                ldmatrix_x4_trans(r, cV + (kk * 16 + lane % 8 + (lane / 8 % 2) * 8) * LD +
                                         dj * 16 + (lane / 16) * 8);
#pragma unroll
                for (int mt = 0; mt < MT; mt++) {
                    mma<T>(o[mt][2 * dj], pa[mt][kk], r);
                    mma<T>(o[mt][2 * dj + 1], pa[mt][kk], r + 2);
                }
            }
        }
    }
    cp_async_wait<0>();

    T *O = static_cast<T *>(p.o) + b * p.os[0] + h * p.os[1];
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int r = 0; r < 2; r++) {
            const float lsum = quad_sum(l[mt][r]);
            const float inv = lsum > 0.f ? 1.f / lsum : 0.f;
            const int row = qrow[mt][r];
            if (row < 0 || row >= p.N) continue;
#pragma unroll
            for (int j = 0; j < DT; j++) {
                const int col = j * 8 + 2 * t;
                if (col < p.D)
                    *reinterpret_cast<uint32_t *>(O + row * p.os[2] + col) =
                        elem<T>::pack(o[mt][j][2 * r] * inv, o[mt][j][2 * r + 1] * inv);
            }
            if (t == 0)
                p.lse[bh * p.N + row] =
                    lsum > 0.f ? (m[mt][r] + log2f(lsum)) * 0.69314718055994531f : -INFINITY;
        }
}

/* o = 0 and lse = -inf on the query rows a bucketed call drops. */
template <typename T>
__global__ void fill_dropped_kernel(const flash_params p) {
    const int row = blockIdx.x * 4 + threadIdx.x / 32, lane = threadIdx.x % 32;
    const int h = blockIdx.y, b = blockIdx.z;
    const int64_t bh = (int64_t)b * p.H + h;
    if (row >= p.N || p.q_bucket[bh * p.N + row] >= 0) return;
    T *O = static_cast<T *>(p.o) + b * p.os[0] + h * p.os[1] + row * p.os[2];
    for (int c = 2 * lane; c < p.D; c += 64) *reinterpret_cast<uint32_t *>(O + c) = 0u;
    if (lane == 0) p.lse[bh * p.N + row] = -INFINITY;
}

template <typename T, int DP, bool SP>
static cudaError_t launch(const flash_params &p, cudaStream_t s) {
    /* two 16-row slices a warp at DP = 64 (each K and V fragment feeds two products); one at
     * DP = 128, where the registers hold no more */
    constexpr int MT = DP == 64 ? 2 : 1, BQ = 64 * MT;
    const int smem = (BQ + 4 * BK) * (DP + PAD) * (int)sizeof(T) + 4 * BK * (int)sizeof(int);
    cudaError_t e = cudaFuncSetAttribute(flash_fwd_kernel<T, DP, MT, SP>,
                                         cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
    if (e != cudaSuccess) return e;
    dim3 grid((p.N + BQ - 1) / BQ, p.H, p.B);
    flash_fwd_kernel<T, DP, MT, SP><<<grid, 128, smem, s>>>(p);
    if (SP && (e = cudaGetLastError()) == cudaSuccess)
        fill_dropped_kernel<T><<<dim3((p.N + 3) / 4, p.H, p.B), 128, 0, s>>>(p);
    return cudaGetLastError();
}

template <typename T, int DP>
static cudaError_t launch(const flash_params &p, cudaStream_t s) {
    return p.q_bucket ? launch<T, DP, true>(p, s) : launch<T, DP, false>(p, s);
}

cudaError_t launch_flash_forward(const flash_params &p, int dtype_bf16, cudaStream_t s) {
    if (dtype_bf16)
        return flash_dp(p.D) == 64 ? launch<__nv_bfloat16, 64>(p, s)
                                   : launch<__nv_bfloat16, 128>(p, s);
    return flash_dp(p.D) == 64 ? launch<__half, 64>(p, s) : launch<__half, 128>(p, s);
}

} // namespace kat_cuda
