/* What the flash kernels share: their parameters, the visibility rule of the mask and the
 * tile loader. */
#ifndef KAT_CUDA_FLASH_CUH
#define KAT_CUDA_FLASH_CUH

#include <cuda_runtime.h>
#include <stdint.h>

#include "layout.cuh"
#include "mma.cuh"

namespace kat_cuda {

/* One attention call as the kernels see it. Strides are in elements, for the b, h and row
 * axes; the last axis is contiguous. */
struct flash_params {
    const void *q, *k, *v;
    void *o;
    float *lse;                        /* [B, H, N] */
    int64_t qs[3], ks[3], vs[3], os[3];
    int B, H, Hkv, N, M, D;
    float scale;                       /* on the logits */
    float scale_log2;                  /* scale * log2(e): the softmax runs in base 2 */
    int causal;
    int window;                        /* 0: no band */
    /* backward */
    const void *dout;
    void *dq, *dk, *dv;
    int64_t dos[3], dqs[3], dks[3], dvs[3];
    float *dq_acc;                     /* [B, H, N, DP] fp32, zeroed before the pass */
    float *delta;                      /* [B, H, N]: rowsum(dout * o) */
    /* bucketed calls: the caller's ids ([B, H, N] and [B, H, M], -1 drops a row) and their
     * sorted layout */
    const int *q_bucket, *k_bucket;
    bucket_layout L;
};

constexpr int BK = 64;    /* keys per tile */
constexpr int PAD = 8;    /* elements added to each shared row: ldmatrix rows then fall in
                             different banks */

/* Query i sees key j (the causal diagonal at the bottom right: i' = i + M - N). */
__device__ __forceinline__ bool visible(const flash_params &p, int i, int j) {
    int ip = i + p.M - p.N;
    if (j >= p.M) return false;
    if (p.causal && j > ip) return false;
    if (p.window && (j <= ip - p.window || j >= ip + p.window)) return false;
    return true;
}

/* Keys [lo, hi) that some query of [q0, q1) sees, before the bound M. */
__device__ __forceinline__ void key_range(const flash_params &p, int q0, int q1, int *lo,
                                          int *hi) {
    int off = p.M - p.N;
    int l = 0, h = p.M;
    if (p.window) {
        l = q0 + off - p.window + 1;
        h = q1 - 1 + off + p.window;
    }
    if (p.causal && q1 + off < h) h = q1 + off;
    *lo = l < 0 ? 0 : l;
    *hi = h > p.M ? p.M : h;
}

/* Queries [lo, hi) that see some key of [k0, k1). */
__device__ __forceinline__ void query_range(const flash_params &p, int k0, int k1, int *lo,
                                            int *hi) {
    int off = p.M - p.N;
    int l = 0, h = p.N;
    if (p.causal) l = k0 - off;
    if (p.window) {
        h = k1 - 1 - off + p.window;
        if (!p.causal && k0 - off - p.window + 1 > l) l = k0 - off - p.window + 1;
    }
    *lo = l < 0 ? 0 : l;
    *hi = h > p.N ? p.N : h;
}

/* Whether some pair of the block [q0, q0+nq) x [k0, k0+nk) is hidden: then the block is
 * masked entry by entry. */
__device__ __forceinline__ bool block_needs_mask(const flash_params &p, int q0, int nq, int k0,
                                                 int nk) {
    int off = p.M - p.N;
    if (k0 + nk > p.M || q0 + nq > p.N) return true;
    if (p.causal && k0 + nk - 1 > q0 + off) return true;
    if (p.window && (k0 <= q0 + nq - 1 + off - p.window ||
                     k0 + nk - 1 >= q0 + off + p.window)) return true;
    return false;
}

/* Bucketed: whether a block of sorted queries (buckets qb0 of its first row, qb1 of its last,
 * qr0 the first row's original index) and sorted keys (buckets kb0, kb1 of the first and
 * last, kr1 the last key's original index) is masked entry by entry. Not when all share one
 * bucket and, with causal, every key comes before every query: rows past the sorted lists
 * carry bucket ids (-1 for queries, -2 for keys, nb for dropped keys) that match no query's. */
__device__ __forceinline__ bool sparse_block_needs_mask(const flash_params &p, int qb0, int qb1,
                                                        int qr0, int kb0, int kb1, int kr1) {
    if (p.window || qb0 != qb1 || kb0 != kb1 || qb0 != kb0 || qb0 < 0) return true;
    return p.causal && kr1 > qr0 + p.M - p.N;
}

/* rows x DP tile of a [rows, D] matrix with row stride ld into shared memory (row length DP +
 * PAD), 16 bytes a thread at a time; rows past nrows and columns past D read as zeros. With
 * a row list, tile row r is row rows[row0 + r] of the matrix. */
template <typename T, int ROWS, int DP, int THREADS>
__device__ __forceinline__ void load_tile(T *dst, const T *src, int64_t ld, int row0,
                                          int nrows, int D, const int *rows = nullptr) {
    constexpr int CHUNKS = DP / 8;
    for (int c = threadIdx.x; c < ROWS * CHUNKS; c += THREADS) {
        int r = c / CHUNKS, col = (c % CHUNKS) * 8;
        bool ok = row0 + r < nrows && col < D;
        const int row = ok ? (rows ? rows[row0 + r] : row0 + r) : 0;
        const T *s = ok ? src + (int64_t)row * ld + col : src;
        cp_async16(dst + r * (DP + PAD) + col, s, ok);
    }
}

/* Quad-wide reductions: the four lanes of a quad hold one row of a C fragment. */
__device__ __forceinline__ float quad_max(float x) {
    x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 1));
    return fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 2));
}
__device__ __forceinline__ float quad_sum(float x) {
    x += __shfl_xor_sync(0xffffffffu, x, 1);
    return x + __shfl_xor_sync(0xffffffffu, x, 2);
}

/* First index in [lo, hi) of the ascending a[] whose value exceeds x (hi if none), found by
 * the THREADS threads of a block, each of which calls it: in each round thread i tests one
 * of THREADS evenly spaced entries, and the count of those <= x narrows the range
 * THREADS-fold, so a search costs one or two global-memory latencies, not log2(n). */
template <int THREADS>
__device__ __forceinline__ int block_upper_bound(const int *a, int lo, int hi, int x) {
    while (lo < hi) {
        const int step = (hi - lo + THREADS - 1) / THREADS;
        const int pos = lo + (int)threadIdx.x * step;
        const int c = __syncthreads_count(pos < hi && a[pos] <= x);
        /* the entries at lo + i * step, i < c, are <= x; the one at lo + c * step is not */
        const int nlo = c == 0 ? lo : lo + (c - 1) * step + 1;
        hi = min(hi, lo + c * step);
        lo = nlo;
    }
    return lo;
}

/* Bucketed forward: sorted keys [lo, hi) that the sorted queries [q0, q1) of head bh may
 * see: the keys of their buckets, and with causal none past the last query's row. Every
 * thread of the block (128) calls it. */
__device__ __forceinline__ void sparse_key_range(const flash_params &p, int64_t bh, int q0,
                                                 int q1, int *lo, int *hi) {
    const int nb = p.L.nb;
    const int *qb = p.L.q_bkt + bh * p.N, *ko = p.L.k_off + bh * (nb + 2);
    const int bmax = qb[q1 - 1];
    *lo = ko[qb[q0]];
    *hi = ko[bmax + 1];
    if (p.causal)
        *hi = block_upper_bound<128>(p.L.k_rows + bh * p.M, ko[bmax], *hi,
                                p.L.q_rows[bh * p.N + q1 - 1] + p.M - p.N);
}

/* Bucketed backward: sorted queries [lo, hi) that may see the sorted keys [k0, k1). Every
 * thread of the block (THREADS) calls it. */
template <int THREADS>
__device__ __forceinline__ void sparse_query_range(const flash_params &p, int64_t bh, int k0,
                                                   int k1, int *lo, int *hi) {
    const int nb = p.L.nb;
    const int *kb = p.L.k_bkt + bh * p.M, *qo = p.L.q_off + bh * (nb + 2);
    const int bmin = kb[k0];
    *lo = qo[bmin];
    *hi = qo[kb[k1 - 1] + 1];
    if (p.causal)   /* first query of bucket bmin at or after the tile's first key */
        *lo = block_upper_bound<THREADS>(p.L.q_rows + bh * p.N, *lo, qo[bmin + 1],
                                p.L.k_rows[bh * p.M + k0] - (p.M - p.N) - 1);
}

cudaError_t launch_flash_forward(const flash_params &p, int dtype_bf16, cudaStream_t s);
cudaError_t launch_flash_backward(const flash_params &p, int dtype_bf16, cudaStream_t s);
/* Padded head dimension of the kernels: 64 or 128. */
inline int flash_dp(int D) { return D <= 64 ? 64 : 128; }

} // namespace kat_cuda

#endif
