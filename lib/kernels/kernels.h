/* The per-ISA micro-kernel table behind the attention engines (never installed).
 *
 * Attention tiles are laid out "query lanes last": a score tile holds s[j][i] for key row j and
 * query lane i at s[j * KAT_KERN_LANES + i]. Vectorising over queries makes the online-softmax
 * statistics (row max, row sum, logsumexp, delta) plain elementwise vector operations, and it
 * lets K and V be read in their natural row layout through row pointers (strided, gathered or
 * compacted rows all look the same), so nothing is packed but a tile of Q^T.
 *
 * Every kernel handles any row count (tails included) and lanes in {16, 32, 48}; lanes beyond
 * the valid queries hold padding that the caller ignores. Buffers named "tile" are 64-byte
 * aligned with rows of KAT_KERN_LANES floats, and so are the lane arrays (m, l, alpha, lse2,
 * delta); row pointers (krow, zrow) need no alignment. */
#ifndef KAT_KERNELS_H
#define KAT_KERNELS_H

#include <stddef.h>
#include <stdint.h>
#include "core/kat_config.h"
#include "kat/core.h"

/* Query lanes per tile: the row stride of every score tile. */
#define KAT_KERN_LANES 48
/* Lane granularity: lanes are always a multiple of this. */
#define KAT_KERN_LANE_STEP 16

typedef struct {
    const char *name;
    kat_arch arch;

    /* y[i] = 2^x[i] for i < n (x == y allowed). Inputs below -151 give +0, above 128 give +inf,
     * NaN gives NaN, -inf gives 0. Maximum error over every float input: see KAT_VEXP2_ULP_*
     * in lib/kernels/vexp.h (measured by tests/test_vexp.c). */
    void (*exp2)(size_t n, const float *x, float *y);

    /* Score tile: s[j*LANES + i] = sum_{d<D} xrow[j][d] * yt[d*LANES + i] for j < nrows,
     * i < lanes. yt is a packed Y^T tile (D rows of LANES floats). Used for S^T = K Q^T and
     * dP^T = V dO^T. */
    void (*scores)(size_t nrows, const float *const *xrow, size_t D, const float *yt,
                   size_t lanes, float *s);

    /* Row-block accumulation: for r < R and d < D,
     *   c[r*ldc + d] = beta[r] * c[r*ldc + d] + sum_{t<T} w[r*wr + t*wt] * zrow[t][d]
     * (beta NULL means 1). c is 64-byte aligned with ldc a multiple of 16; its padding columns
     * [D, ldc) may be overwritten. Used for O += P V (rows = queries: wr = 1, wt = LANES),
     * dQ += dS K (same), dV += P^T dO and dK += dS^T Q (rows = keys: wr = LANES, wt = 1). */
    void (*accum)(size_t R, size_t T, const float *w, size_t wr, size_t wt,
                  const float *const *zrow, size_t D, float *c, size_t ldc, const float *beta);

    /* Online softmax over a tile of raw scores s (q.k; c = c_hi + c_lo >= 0 converts them to
     * log2 units of the softmax: c = |scale| log2 e), for lanes i < lanes:
     *   m' = max(m, max_j s[j][i]);  alpha = 2^(c (m - m'));  s[j][i] = 2^(c (s[j][i] - m'));
     *   l = alpha*l + sum_j s[j][i];  m = m'.
     * The max is subtracted before scaling and c (s - m') is kept as a float pair (its
     * rounding error recovered with a fused multiply-add) through the range reduction, so
     * each probability carries only the exponential's own error, not |x| ulp(x) of a rounded
     * exponent. Masked scores are -inf and give 0. While a lane has seen no allowed key
     * (m' = -inf) its probabilities are 0, alpha is 0 and l stays 0 - never NaN. */
    void (*softmax_online)(size_t nrows, size_t lanes, float *s, float *m, float *l,
                           float *alpha, float c_hi, float c_lo);

    /* Backward probabilities: s[j][i] = 2^(c s[j][i] - lse2[i] - lse2[LANES + i]) with
     * c = c_hi + c_lo and the logsumexp in log2 units as the float pair hi + lo. The exponent
     * is formed and split into integer and fraction in double, so neither constant nor the
     * difference is rounded to one float: P carries only the exponential's error, even for
     * huge logits. Masked scores (-inf) and hi = +inf give 0. */
    void (*softmax_probs)(size_t nrows, size_t lanes, float *s, const float *lse2, float c_hi,
                          float c_lo);

    /* Row dots out[i] = sum_{d<D} a[i][d] * b[i][d] for i < n, in exactly the arithmetic of
     * `scores` (same order, same fused or unfused multiply-adds), so that delta = rowsum(dO o)
     * and dP cancel exactly where they should (a single key: o = v, dP = delta). */
    void (*rowdot)(size_t n, size_t D, const float *const *a, const float *const *b,
                   float *out);

    /* Row-pair dots g[i*ldg + j] = sum_{k<K} a[i*lda + k] * b[j*ldb + k] for i < m, j < n:
     * A B^T with both operands in their natural row layout, contracted along the rows (no
     * packing; for long rows, such as the feature vectors of linear attention). With lower
     * set only j <= i is wanted: entries above the diagonal may be left as they were or
     * written with their dot. No alignment needed. */
    void (*dots)(size_t m, size_t n, size_t K, const float *a, size_t lda, const float *b,
                 size_t ldb, float *g, size_t ldg, int lower);

    /* Softmax gradient: dp[j][i] = p[j][i] * (dp[j][i] - delta[i]). */
    void (*softmax_grad)(size_t nrows, size_t lanes, const float *p, float *dp,
                         const float *delta);

    /* Causal mask by positions: s[j][i] = -inf unless kpos[j] <= qlim[i]. */
    void (*mask_causal)(size_t nrows, size_t lanes, float *s, const int32_t *kpos,
                        const int32_t *qlim);

    /* Element mask: s[j][i] = -inf unless bit i of bits[j] is set. */
    void (*mask_bits)(size_t nrows, size_t lanes, float *s, const uint64_t *bits);
} kat_kernels;

/* The table of the ISA that kat_arch_get() selects (KAT_ARCH honoured). Never NULL. */
const kat_kernels *kat__kernels_get(void);
/* The table of one ISA, or NULL when this build or CPU lacks it. */
const kat_kernels *kat__kernels_for(kat_arch arch);

/* The per-ISA tables (defined in lib/kernels/<isa>/). */
extern const kat_kernels kat__kernels_ref;
#if KAT_HAVE_AVX2_KERNELS
extern const kat_kernels kat__kernels_avx2;
#endif
#if KAT_HAVE_AVX512_KERNELS
extern const kat_kernels kat__kernels_avx512;
#endif

#endif
