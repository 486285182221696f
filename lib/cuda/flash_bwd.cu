/* Flash attention backward (FlashAttention-2, arXiv 2307.08691) on tensor cores.
 *
 * Three launches: delta = rowsum(dO * O); the main pass, where a block of 4 warps (or 8,
 * KAT_CUDA_BWD_WARPS) owns 16 keys a warp of one (batch, kv head) and walks, for every query
 * head of its group, the query tiles that see them, the next tile's Q and dO copied in while
 * this one is computed: S^T = K Q^T, P^T = exp(S^T - lse), dV += P^T dO, dP^T = V dO^T,
 * dS^T = P^T (dP^T - delta), dK += dS^T Q, all in registers; dS^T then goes through shared
 * memory for dQ += dS K, which is added into an fp32 accumulator with atomics (several key
 * tiles feed one query row); last, the accumulator is scaled and cast into dq. dK and dV of
 * a key tile are summed over the whole group inside one block, so GQA needs no atomics. */
#include <math.h>

#include "flash.cuh"

/* Warps of a backward block, 16 keys each: a build-time choice for tuning (4 or 8). */
#ifndef KAT_CUDA_BWD_WARPS
#define KAT_CUDA_BWD_WARPS 4
#endif

namespace kat_cuda {

template <typename T>
__global__ void delta_kernel(const flash_params p) {
    const int row = blockIdx.x * 4 + threadIdx.x / 32, lane = threadIdx.x % 32;
    const int h = blockIdx.y, b = blockIdx.z;
    if (row >= p.N) return;
    const T *O = static_cast<const T *>(p.o) + b * p.os[0] + h * p.os[1] + row * p.os[2];
    const T *dO = static_cast<const T *>(p.dout) + b * p.dos[0] + h * p.dos[1] + row * p.dos[2];
    float acc = 0.f;
    for (int c = 2 * lane; c < p.D; c += 64) {
        float2 x = elem<T>::unpack(*reinterpret_cast<const uint32_t *>(O + c));
        float2 y = elem<T>::unpack(*reinterpret_cast<const uint32_t *>(dO + c));
        acc += x.x * y.x + x.y * y.y;
    }
    for (int w = 16; w > 0; w /= 2) acc += __shfl_xor_sync(0xffffffffu, acc, w);
    if (lane == 0) p.delta[((int64_t)b * p.H + h) * p.N + row] = acc;
}

template <typename T, int DP>
__global__ void dq_convert_kernel(const flash_params p) {
    const int row = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
    const float *acc = p.dq_acc + (((int64_t)b * p.H + h) * p.N + row) * DP;
    T *dq = static_cast<T *>(p.dq) + b * p.dqs[0] + h * p.dqs[1] + row * p.dqs[2];
    for (int c = 2 * threadIdx.x; c < p.D; c += 2 * blockDim.x)
        *reinterpret_cast<uint32_t *>(dq + c) =
            elem<T>::pack(acc[c] * p.scale, acc[c + 1] * p.scale);
}

/* acc[0] += x, acc[1] += y (acc 8-byte aligned): one vector atomic where the GPU has it */
__device__ __forceinline__ void atomic_add2(float *acc, float x, float y) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    atomicAdd(reinterpret_cast<float2 *>(acc), make_float2(x, y));
#else
    atomicAdd(acc, x);
    atomicAdd(acc + 1, y);
#endif
}

template <typename T, int DP, int BQ, int NW, bool SP>
__global__ void __launch_bounds__(32 * NW) flash_bwd_kernel(const flash_params p) {
    /* BN keys a block, 16 a warp */
    constexpr int THREADS = 32 * NW, BN = 16 * NW;
    constexpr int LD = DP + PAD, LDS = BQ + PAD, KS = DP / 16, DT = DP / 8, QT = BQ / 8;
    /* dQ = dS K: warps tile the BQ x DP block as WQ x WD */
    constexpr int WQ = BQ / 16, WD = NW / WQ, DTW = DT / WD;
    static_assert(WD >= 1 && DT % WD == 0 && DTW % 2 == 0, "dQ's warp tiling");
    extern __shared__ __align__(16) unsigned char smem[];
    T *sK = reinterpret_cast<T *>(smem);
    T *sV = sK + BN * LD;
    /* two buffers of the query tile's Q, dO and row data: the next tile loads during this one */
    T *sQ2 = sV + BN * LD;
    T *sdO2 = sQ2 + 2 * BQ * LD;
    T *sdS = sdO2 + 2 * BQ * LD;                          /* [BN][LDS]: dS^T */
    float *sLse2 = reinterpret_cast<float *>(sdS + BN * LDS);   /* lse * log2(e) */
    float *sDelta2 = sLse2 + 2 * BQ;
    int *sQrow2 = reinterpret_cast<int *>(sDelta2 + 2 * BQ);   /* bucketed: original row, bucket */
    int *sQbkt2 = sQrow2 + 2 * BQ;

    const int k0 = blockIdx.x * BN, hk = blockIdx.y, b = blockIdx.z;
    const int group = p.H / p.Hkv;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
    const T *K = static_cast<const T *>(p.k) + b * p.ks[0] + hk * p.ks[1];
    const T *V = static_cast<const T *>(p.v) + b * p.vs[0] + hk * p.vs[1];
    /* bucketed calls have H_kv = H: the key head is the query head */
    const int64_t bhk = (int64_t)b * p.Hkv + hk;
    const int *krows = SP ? p.L.k_rows + bhk * p.M : nullptr;
    const int nk = SP ? p.L.k_off[bhk * (p.L.nb + 2) + p.L.nb] : p.M;
    if (k0 >= nk) return;   /* dropped keys get zero gradients from zero_dropped_kernel */
    int krow[2], kbkt[2];
#pragma unroll
    for (int r = 0; r < 2; r++) {
        const int j = k0 + warp * 16 + g + 8 * r;
        krow[r] = SP ? (j < nk ? krows[j] : p.M) : j;
        kbkt[r] = SP && j < nk ? p.L.k_bkt[bhk * p.M + j] : -2;
    }

    /* bucketed: the tile's first and last key bucket and last key row (-2 past the list) */
    const int kb_first = SP ? p.L.k_bkt[bhk * p.M + k0] : 0;
    const int kb_last = SP ? (k0 + BN <= nk ? p.L.k_bkt[bhk * p.M + k0 + BN - 1] : -2) : 0;
    const int kr_last = SP && k0 + BN <= nk ? krows[k0 + BN - 1] : 0;

    int qlo, qhi;
    if (SP) sparse_query_range<THREADS>(p, bhk, k0, min(k0 + BN, nk), &qlo, &qhi);
    else query_range(p, k0, min(k0 + BN, p.M), &qlo, &qhi);
    const int qt_lo = qlo / BQ, qt_hi = qhi > qlo ? (qhi + BQ - 1) / BQ : qt_lo;
    const int nqt = qt_hi - qt_lo, iters = group * nqt;   /* (query head, query tile) pairs */

    /* iteration it: Q and dO of its tile into buffer buf (cp.async), and the row data of
     * thread i < BQ's row into registers, stored to shared memory once computed on */
    struct row_data {
        float lse, delta;
        int row, bkt;
    };
    auto load_q = [&](int it, int buf) {
        const int h = hk * group + it / nqt, q0 = (qt_lo + it % nqt) * BQ;
        const int64_t bh = (int64_t)b * p.H + h;
        const int *qrows = SP ? p.L.q_rows + bh * p.N : nullptr;
        const int nq = SP ? p.L.q_off[bh * (p.L.nb + 2) + p.L.nb] : p.N;
        load_tile<T, BQ, DP, THREADS>(sQ2 + buf * BQ * LD,
                                  static_cast<const T *>(p.q) + b * p.qs[0] + h * p.qs[1],
                                  p.qs[2], q0, nq, p.D, qrows);
        load_tile<T, BQ, DP, THREADS>(sdO2 + buf * BQ * LD,
                                  static_cast<const T *>(p.dout) + b * p.dos[0] + h * p.dos[1],
                                  p.dos[2], q0, nq, p.D, qrows);
        row_data d{INFINITY, 0.f, -1, -1};
        if (threadIdx.x < BQ) {
            const int i = q0 + threadIdx.x;
            d.row = i < nq ? (SP ? qrows[i] : i) : -1;
            if (d.row >= 0) {
                const float lse = p.lse[bh * p.N + d.row];
                /* a query that sees no key has lse = -inf and P = 0: +inf makes exp2 give 0 */
                d.lse = lse == -INFINITY ? INFINITY : lse * 1.4426950408889634f;
                d.delta = p.delta[bh * p.N + d.row];
                if (SP) d.bkt = p.L.q_bkt[bh * p.N + i];
            }
        }
        return d;
    };
    auto store_rows = [&](const row_data &d, int buf) {
        if (threadIdx.x < BQ) {
            sLse2[buf * BQ + threadIdx.x] = d.lse;
            sDelta2[buf * BQ + threadIdx.x] = d.delta;
            sQrow2[buf * BQ + threadIdx.x] = d.row;
            sQbkt2[buf * BQ + threadIdx.x] = d.bkt;
        }
    };

    load_tile<T, BN, DP, THREADS>(sK, K, p.ks[2], k0, nk, p.D, krows);
    load_tile<T, BN, DP, THREADS>(sV, V, p.vs[2], k0, nk, p.D, krows);
    if (iters > 0) store_rows(load_q(0, 0), 0);
    cp_async_commit();

    float dk[DT][4], dv[DT][4];
#pragma unroll
    for (int j = 0; j < DT; j++)
#pragma unroll
        for (int c = 0; c < 4; c++) dk[j][c] = dv[j][c] = 0.f;

    for (int it = 0; it < iters; it++) {
        const int h = hk * group + it / nqt, q0 = (qt_lo + it % nqt) * BQ, buf = it % 2;
        const int64_t bh = (int64_t)b * p.H + h;
        const int nq = SP ? p.L.q_off[bh * (p.L.nb + 2) + p.L.nb] : p.N;
        /* this tile is in; every warp is done with the last one (its buffers and dS^T) */
        cp_async_wait<0>();
        __syncthreads();
        row_data next{};
        if (it + 1 < iters) next = load_q(it + 1, buf ^ 1);
        cp_async_commit();
        const T *sQ = sQ2 + buf * BQ * LD, *sdO = sdO2 + buf * BQ * LD;
        const float *sLse = sLse2 + buf * BQ, *sDelta = sDelta2 + buf * BQ;
        const int *sQrow = sQrow2 + buf * BQ, *sQbkt = sQbkt2 + buf * BQ;

        /* S^T: this warp's 16 keys x BQ queries */
        float s[QT][4];
#pragma unroll
        for (int j = 0; j < QT; j++) s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.f;
#pragma unroll
        for (int kk = 0; kk < KS; kk++) {
            uint32_t a[4];
            ldmatrix_x4(a, sK + (warp * 16 + lane % 8 + (lane / 8 % 2) * 8) * LD + kk * 16 +
                               (lane / 16) * 8);
#pragma unroll
            for (int nj = 0; nj < QT / 2; nj++) {
                uint32_t r[4];
                ldmatrix_x4(r, sQ + (nj * 16 + lane % 8 + (lane / 16) * 8) * LD + kk * 16 +
                                   (lane / 8 % 2) * 8);
                mma<T>(s[2 * nj], a, r);
                mma<T>(s[2 * nj + 1], a, r + 2);
            }
        }
        const bool masked =
            SP ? sparse_block_needs_mask(p, sQbkt[0], sQbkt[BQ - 1], sQrow[0], kb_first,
                                         kb_last, kr_last)
               : block_needs_mask(p, q0, BQ, k0, BN);
#pragma unroll
        for (int j = 0; j < QT; j++)
#pragma unroll
            for (int c = 0; c < 4; c++) {
                const int col = j * 8 + 2 * t + c % 2;
                float x = fast_exp2(s[j][c] * p.scale_log2 - sLse[col]);
                if (masked) {
                    const bool ok = SP ? sQbkt[col] == kbkt[c / 2] &&
                                             visible(p, sQrow[col], krow[c / 2])
                                       : visible(p, q0 + col, krow[c / 2]);
                    if (!ok) x = 0.f;
                }
                s[j][c] = x;
            }
        /* dV += P^T dO */
        uint32_t pa[BQ / 16][4];
#pragma unroll
        for (int kk = 0; kk < BQ / 16; kk++) {
            pa[kk][0] = elem<T>::pack(s[2 * kk][0], s[2 * kk][1]);
            pa[kk][1] = elem<T>::pack(s[2 * kk][2], s[2 * kk][3]);
            pa[kk][2] = elem<T>::pack(s[2 * kk + 1][0], s[2 * kk + 1][1]);
            pa[kk][3] = elem<T>::pack(s[2 * kk + 1][2], s[2 * kk + 1][3]);
        }
#pragma unroll
        for (int kk = 0; kk < BQ / 16; kk++)
#pragma unroll
            for (int dj = 0; dj < DP / 16; dj++) {
                uint32_t r[4];
                ldmatrix_x4_trans(r, sdO + (kk * 16 + lane % 8 + (lane / 8 % 2) * 8) * LD +
                                         dj * 16 + (lane / 16) * 8);
                mma<T>(dv[2 * dj], pa[kk], r);
                mma<T>(dv[2 * dj + 1], pa[kk], r + 2);
            }
        /* dP^T = V dO^T */
        float dp[QT][4];
#pragma unroll
        for (int j = 0; j < QT; j++) dp[j][0] = dp[j][1] = dp[j][2] = dp[j][3] = 0.f;
#pragma unroll
        for (int kk = 0; kk < KS; kk++) {
            uint32_t a[4];
            ldmatrix_x4(a, sV + (warp * 16 + lane % 8 + (lane / 8 % 2) * 8) * LD + kk * 16 +
                               (lane / 16) * 8);
#pragma unroll
            for (int nj = 0; nj < QT / 2; nj++) {
                uint32_t r[4];
                ldmatrix_x4(r, sdO + (nj * 16 + lane % 8 + (lane / 16) * 8) * LD + kk * 16 +
                                    (lane / 8 % 2) * 8);
                mma<T>(dp[2 * nj], a, r);
                mma<T>(dp[2 * nj + 1], a, r + 2);
            }
        }
        /* dS^T = P^T (dP^T - delta), kept packed for dK and stored for dQ */
        uint32_t da[BQ / 16][4];
#pragma unroll
        for (int j = 0; j < QT; j++) {
            const int col = j * 8 + 2 * t;
            const float d0 = sDelta[col], d1 = sDelta[col + 1];
            const uint32_t lo = elem<T>::pack(s[j][0] * (dp[j][0] - d0), s[j][1] * (dp[j][1] - d1));
            const uint32_t hi = elem<T>::pack(s[j][2] * (dp[j][2] - d0), s[j][3] * (dp[j][3] - d1));
            da[j / 2][(j % 2) * 2] = lo;
            da[j / 2][(j % 2) * 2 + 1] = hi;
            *reinterpret_cast<uint32_t *>(sdS + (warp * 16 + g) * LDS + col) = lo;
            *reinterpret_cast<uint32_t *>(sdS + (warp * 16 + g + 8) * LDS + col) = hi;
        }
        /* dK += dS^T Q */
#pragma unroll
        for (int kk = 0; kk < BQ / 16; kk++)
#pragma unroll
            for (int dj = 0; dj < DP / 16; dj++) {
                uint32_t r[4];
                ldmatrix_x4_trans(r, sQ + (kk * 16 + lane % 8 + (lane / 8 % 2) * 8) * LD +
                                         dj * 16 + (lane / 16) * 8);
                mma<T>(dk[2 * dj], da[kk], r);
                mma<T>(dk[2 * dj + 1], da[kk], r + 2);
            }
        /* the next tile's row data, read from global memory while the above ran */
        if (it + 1 < iters) store_rows(next, buf ^ 1);
        __syncthreads();

        /* dQ += dS K: this warp's 16 query rows x DTW column tiles */
        const int wq = warp % WQ, wd = warp / WQ;
        float dq[DTW][4];
#pragma unroll
        for (int j = 0; j < DTW; j++) dq[j][0] = dq[j][1] = dq[j][2] = dq[j][3] = 0.f;
#pragma unroll
        for (int kk = 0; kk < BN / 16; kk++) {
            uint32_t a[4];
            ldmatrix_x4_trans(a, sdS + (kk * 16 + lane % 8 + (lane / 16) * 8) * LDS +
                                     wq * 16 + (lane / 8 % 2) * 8);
#pragma unroll
            for (int dj = 0; dj < DTW / 2; dj++) {
                uint32_t r[4];
                ldmatrix_x4_trans(r, sK + (kk * 16 + lane % 8 + (lane / 8 % 2) * 8) * LD +
                                         wd * (DP / WD) + dj * 16 + (lane / 16) * 8);
                mma<T>(dq[2 * dj], a, r);
                mma<T>(dq[2 * dj + 1], a, r + 2);
            }
        }
#pragma unroll
        for (int r = 0; r < 2; r++) {
            const int i = q0 + wq * 16 + g + 8 * r;
            if (i >= nq) continue;
            const int row = SP ? sQrow[i - q0] : i;
            float *acc = p.dq_acc + (bh * p.N + row) * DP + wd * (DP / WD) + 2 * t;
#pragma unroll
            for (int j = 0; j < DTW; j++) atomic_add2(acc + j * 8, dq[j][2 * r], dq[j][2 * r + 1]);
        }
    }

    T *dK = static_cast<T *>(p.dk) + b * p.dks[0] + hk * p.dks[1];
    T *dV = static_cast<T *>(p.dv) + b * p.dvs[0] + hk * p.dvs[1];
#pragma unroll
    for (int r = 0; r < 2; r++) {
        const int key = krow[r];
        if (k0 + warp * 16 + g + 8 * r >= nk) continue;
#pragma unroll
        for (int j = 0; j < DT; j++) {
            const int col = j * 8 + 2 * t;
            if (col >= p.D) continue;
            *reinterpret_cast<uint32_t *>(dK + key * p.dks[2] + col) =
                elem<T>::pack(dk[j][2 * r] * p.scale, dk[j][2 * r + 1] * p.scale);
            *reinterpret_cast<uint32_t *>(dV + key * p.dvs[2] + col) =
                elem<T>::pack(dv[j][2 * r], dv[j][2 * r + 1]);
        }
    }
}

/* dk = dv = 0 on the key rows a bucketed call drops. */
template <typename T>
__global__ void zero_dropped_kernel(const flash_params p) {
    const int row = blockIdx.x * 4 + threadIdx.x / 32, lane = threadIdx.x % 32;
    const int h = blockIdx.y, b = blockIdx.z;
    if (row >= p.M || p.k_bucket[((int64_t)b * p.Hkv + h) * p.M + row] >= 0) return;
    T *dK = static_cast<T *>(p.dk) + b * p.dks[0] + h * p.dks[1] + row * p.dks[2];
    T *dV = static_cast<T *>(p.dv) + b * p.dvs[0] + h * p.dvs[1] + row * p.dvs[2];
    for (int c = 2 * lane; c < p.D; c += 64)
        *reinterpret_cast<uint32_t *>(dK + c) = *reinterpret_cast<uint32_t *>(dV + c) = 0u;
}

template <typename T, int DP, bool SP>
static cudaError_t launch(const flash_params &p, cudaStream_t s) {
    constexpr int BQ = DP == 64 ? 64 : 32, NW = KAT_CUDA_BWD_WARPS, BN = 16 * NW;
    const int smem = ((2 * BN + 4 * BQ) * (DP + PAD) + BN * (BQ + PAD)) * (int)sizeof(T) +
                     8 * BQ * (int)sizeof(float);
    cudaError_t e = cudaMemsetAsync(p.dq_acc, 0, sizeof(float) * (size_t)p.B * p.H * p.N * DP, s);
    if (e != cudaSuccess) return e;
    delta_kernel<T><<<dim3((p.N + 3) / 4, p.H, p.B), 128, 0, s>>>(p);
    if ((e = cudaGetLastError()) != cudaSuccess) return e;
    e = cudaFuncSetAttribute(flash_bwd_kernel<T, DP, BQ, NW, SP>,
                             cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
    if (e != cudaSuccess) return e;
    const dim3 grid((p.M + BN - 1) / BN, p.Hkv, p.B);
    flash_bwd_kernel<T, DP, BQ, NW, SP><<<grid, 32 * NW, smem, s>>>(p);
    if ((e = cudaGetLastError()) != cudaSuccess) return e;
    if (SP) {
        zero_dropped_kernel<T><<<dim3((p.M + 3) / 4, p.Hkv, p.B), 128, 0, s>>>(p);
        if ((e = cudaGetLastError()) != cudaSuccess) return e;
    }
    dq_convert_kernel<T, DP><<<dim3(p.N, p.H, p.B), 64, 0, s>>>(p);
    return cudaGetLastError();
}

template <typename T, int DP>
static cudaError_t launch(const flash_params &p, cudaStream_t s) {
    return p.q_bucket ? launch<T, DP, true>(p, s) : launch<T, DP, false>(p, s);
}

cudaError_t launch_flash_backward(const flash_params &p, int dtype_bf16, cudaStream_t s) {
    if (dtype_bf16)
        return flash_dp(p.D) == 64 ? launch<__nv_bfloat16, 64>(p, s)
                                   : launch<__nv_bfloat16, 128>(p, s);
    return flash_dp(p.D) == 64 ? launch<__half, 64>(p, s) : launch<__half, 128>(p, s);
}

} // namespace kat_cuda
