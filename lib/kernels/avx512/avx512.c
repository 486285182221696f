/* The AVX-512 kernels: register-blocked tiles for Zen 4/5 and Skylake-X class cores (32 zmm
 * registers, two 512-bit FMA pipes). Score tiles keep 24 accumulators (8 key rows x 48 query
 * lanes); accumulation tiles keep up to 24 (R rows x NV vectors of the head dimension). */
#include <immintrin.h>
#include "kernels/kernels.h"
#include "kernels/masks.h"
#include "kernels/vexp.h"

#define LANES KAT_KERN_LANES
#define INLINE static inline __attribute__((always_inline))
#define UNROLL _Pragma("GCC unroll 16")
/* Accumulation tiles cover at most this many vectors of the head dimension: D = 128 runs as
 * two chunks of 4 vectors x 6 rows rather than one of 8 x 3 (fewer broadcasts per FMA; it
 * measured 60-62% against 55-59% of the sgemm rate in interleaved runs). */
#ifndef KAT_AVX512_CHUNK_NV
#define KAT_AVX512_CHUNK_NV 5
#endif

/* ---- 2^x ------------------------------------------------------------------------------- */

INLINE __m512 exp2_v(__m512 x)
{
    /* max/min return their second operand when either is NaN, so NaN passes through. */
    x = _mm512_max_ps(_mm512_set1_ps(KAT_VEXP2_LO), x);
    x = _mm512_min_ps(_mm512_set1_ps(KAT_VEXP2_HI), x);
    __m512 n = _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 f = _mm512_sub_ps(x, n);
    __m512 p = _mm512_set1_ps(KAT_VEXP2_C5);
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(KAT_VEXP2_C4));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(KAT_VEXP2_C3));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(KAT_VEXP2_C2));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(KAT_VEXP2_C1));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(KAT_VEXP2_C0));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);   /* rounds once, into the subnormals when needed */
}

/* 2^f 2^n for a reduced fraction f (|f| <= 1/2 + tiny) and an integral n. */
INLINE __m512 exp2_poly(__m512 f)
{
    __m512 p = _mm512_set1_ps(KAT_VEXP2_C5);
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(KAT_VEXP2_C4));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(KAT_VEXP2_C3));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(KAT_VEXP2_C2));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(KAT_VEXP2_C1));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(KAT_VEXP2_C0));
    return _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f));
}

/* 2^(c d) for d <= 0 and c = ch + cl >= 0: the product is kept as the pair xh + xl (the
 * product's rounding error from a fused multiply-add, plus cl d), xh is split into integer
 * and fraction exactly, and xl joins the fraction. 0 where c d < -151 (and for d = -inf). */
INLINE __m512 exp2_scaled(__m512 d, __m512 ch, __m512 cl)
{
    __m512 xh = _mm512_mul_ps(ch, d);
    __mmask16 live = _mm512_cmp_ps_mask(xh, _mm512_set1_ps(KAT_VEXP2_LO), _CMP_GE_OQ);
    __m512 xl = _mm512_fmadd_ps(cl, d, _mm512_fmsub_ps(ch, d, xh));
    __m512 n = _mm512_roundscale_ps(xh, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 f = _mm512_add_ps(_mm512_sub_ps(xh, n), xl);
    return _mm512_maskz_scalef_ps(live, exp2_poly(f), n);
}

static void avx512_exp2(size_t n, const float *x, float *y)
{
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(y + i, exp2_v(_mm512_loadu_ps(x + i)));
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        _mm512_mask_storeu_ps(y + i, m, exp2_v(_mm512_maskz_loadu_ps(m, x + i)));
    }
}

/* ---- score tiles: s[j][i] = sum_d xrow[j][d] * yt[d][i] ------------------------------- */

/* J key rows (jn of them real: the others repeat row 0 and are not stored) x NV vectors. */
INLINE void scores_block(const int NV, const int J, size_t jn, const float *const *xrow,
                         size_t D, const float *yt, float *s)
{
    /* Fixed-size arrays indexed by constants after full unrolling live in registers. */
    __m512 acc[16][3];
    const float *xr[16];
    UNROLL for (int j = 0; j < J; j++) {
        xr[j] = xrow[(size_t)j < jn ? j : 0];
        UNROLL for (int v = 0; v < NV; v++)
            acc[j][v] = _mm512_setzero_ps();
    }
    for (size_t d = 0; d < D; d++) {
        __m512 y[3];
        UNROLL for (int v = 0; v < NV; v++)
            y[v] = _mm512_load_ps(yt + d * LANES + 16 * v);
        UNROLL for (int j = 0; j < J; j++) {
            __m512 b = _mm512_set1_ps(xr[j][d]);
            UNROLL for (int v = 0; v < NV; v++)
                acc[j][v] = _mm512_fmadd_ps(b, y[v], acc[j][v]);
        }
    }
    UNROLL for (int j = 0; j < J; j++)
        if ((size_t)j < jn)
            UNROLL for (int v = 0; v < NV; v++)
                _mm512_store_ps(s + j * LANES + 16 * v, acc[j][v]);
}

#define DEFINE_SCORES(NV, J)                                                                  \
    static void scores_nv##NV(size_t nrows, const float *const *xrow, size_t D,              \
                              const float *yt, float *s)                                      \
    {                                                                                         \
        size_t j = 0;                                                                         \
        for (; j + J <= nrows; j += J)                                                        \
            scores_block(NV, J, J, xrow + j, D, yt, s + j * LANES);                           \
        if (j < nrows)                                                                        \
            scores_block(NV, J, nrows - j, xrow + j, D, yt, s + j * LANES);                   \
    }
DEFINE_SCORES(1, 16)
DEFINE_SCORES(2, 12)
DEFINE_SCORES(3, 8)

static void avx512_scores(size_t nrows, const float *const *xrow, size_t D, const float *yt,
                          size_t lanes, float *s)
{
    if (lanes <= 16)
        scores_nv1(nrows, xrow, D, yt, s);
    else if (lanes <= 32)
        scores_nv2(nrows, xrow, D, yt, s);
    else
        scores_nv3(nrows, xrow, D, yt, s);
}

/* ---- accumulation tiles: c[r][d] = beta[r] c[r][d] + sum_t w[r*wr + t*wt] zrow[t][d] ---- */

/* R rows (rn real; the others repeat row 0 and are not stored) x NV vectors of columns
 * d0 .. d0 + 16 NV; the last vector's loads from zrow are masked by `tail`. */
INLINE void accum_block(const int NV, const int R, size_t rn, size_t T, const float *w,
                        size_t wr, size_t wt, const float *const *zrow, size_t d0,
                        __mmask16 tail, float *c, size_t ldc, const float *beta)
{
    __m512 acc[12][8];
    const float *wp[12];
    UNROLL for (int r = 0; r < R; r++) {
        size_t rr = (size_t)r < rn ? (size_t)r : 0;
        wp[r] = w + rr * wr;
        __m512 b = _mm512_set1_ps(beta ? beta[rr] : 1.0f);
        UNROLL for (int v = 0; v < NV; v++) {
            __m512 cv = _mm512_load_ps(c + rr * ldc + d0 + 16 * v);
            acc[r][v] = beta ? _mm512_mul_ps(b, cv) : cv;
        }
    }
    for (size_t t = 0; t < T; t++) {
        const float *z = zrow[t] + d0;
        __m512 zv[8];
        UNROLL for (int v = 0; v < NV; v++)
            zv[v] = v == NV - 1 ? _mm512_maskz_loadu_ps(tail, z + 16 * v)
                                : _mm512_loadu_ps(z + 16 * v);
        UNROLL for (int r = 0; r < R; r++) {
            __m512 b = _mm512_set1_ps(wp[r][t * wt]);
            UNROLL for (int v = 0; v < NV; v++)
                acc[r][v] = _mm512_fmadd_ps(b, zv[v], acc[r][v]);
        }
    }
    UNROLL for (int r = 0; r < R; r++)
        if ((size_t)r < rn)
            UNROLL for (int v = 0; v < NV; v++)
                _mm512_store_ps(c + r * ldc + d0 + 16 * v, acc[r][v]);
}

/* One function per (NV, stride mode): the two layouts the engines use have compile-time
 * strides (rows = query lanes: wr = 1, wt = LANES; rows = keys: wr = LANES, wt = 1) and a
 * generic one takes them at run time. */
#define DEFINE_ACCUM_MODE(NV, R, MODE, WR, WT)                                                \
    static void accum_nv##NV##_##MODE(size_t rows, size_t T, const float *w, size_t wr,      \
                                      size_t wt, const float *const *zrow, size_t d0,        \
                                      __mmask16 tail, float *c, size_t ldc,                  \
                                      const float *beta)                                      \
    {                                                                                         \
        (void)wr;                                                                             \
        (void)wt;                                                                             \
        size_t r = 0;                                                                         \
        for (; r + R <= rows; r += R)                                                         \
            accum_block(NV, R, R, T, w + r * (WR), WR, WT, zrow, d0, tail, c + r * ldc, ldc,  \
                        beta ? beta + r : NULL);                                              \
        if (r < rows)                                                                         \
            accum_block(NV, R, rows - r, T, w + r * (WR), WR, WT, zrow, d0, tail,             \
                        c + r * ldc, ldc, beta ? beta + r : NULL);                            \
    }
#define DEFINE_ACCUM(NV, R)                                                                   \
    DEFINE_ACCUM_MODE(NV, R, q, 1, LANES)                                                     \
    DEFINE_ACCUM_MODE(NV, R, k, LANES, 1)                                                     \
    DEFINE_ACCUM_MODE(NV, R, g, wr, wt)
DEFINE_ACCUM(1, 12)
DEFINE_ACCUM(2, 12)
DEFINE_ACCUM(3, 8)
DEFINE_ACCUM(4, 6)
DEFINE_ACCUM(5, 4)
DEFINE_ACCUM(6, 4)
DEFINE_ACCUM(7, 3)
DEFINE_ACCUM(8, 3)

typedef void (*accum_fn)(size_t, size_t, const float *, size_t, size_t, const float *const *,
                         size_t, __mmask16, float *, size_t, const float *);
#define ACCUM_ROW(NV) {accum_nv##NV##_q, accum_nv##NV##_k, accum_nv##NV##_g}
static const accum_fn accum_table[8][3] = {ACCUM_ROW(1), ACCUM_ROW(2), ACCUM_ROW(3),
                                           ACCUM_ROW(4), ACCUM_ROW(5), ACCUM_ROW(6),
                                           ACCUM_ROW(7), ACCUM_ROW(8)};

static void avx512_accum(size_t R, size_t T, const float *w, size_t wr, size_t wt,
                         const float *const *zrow, size_t D, float *c, size_t ldc,
                         const float *beta)
{
    if (R == 0 || D == 0)
        return;
    int mode = (wr == 1 && wt == LANES) ? 0 : (wr == LANES && wt == 1) ? 1 : 2;
    /* Split the head dimension into as few chunks of at most KAT_AVX512_CHUNK_NV vectors as
     * possible, evenly. */
    size_t nv_total = (D + 15) / 16;
    size_t nchunks = (nv_total + KAT_AVX512_CHUNK_NV - 1) / KAT_AVX512_CHUNK_NV;
    size_t per = (nv_total + nchunks - 1) / nchunks;
    for (size_t v0 = 0; v0 < nv_total; v0 += per) {
        size_t nv = nv_total - v0 < per ? nv_total - v0 : per;
        size_t d0 = 16 * v0, d_end = d0 + 16 * nv;
        size_t tail_cols = (d_end <= D ? 16 : 16 - (d_end - D));
        __mmask16 tail = (__mmask16)((1u << tail_cols) - 1);
        accum_table[nv - 1][mode](R, T, w, wr, wt, zrow, d0, tail, c, ldc, beta);
    }
}

/* ---- softmax tiles ------------------------------------------------------------------- */

static void avx512_softmax_online(size_t nrows, size_t lanes, float *s, float *m, float *l,
                                  float *alpha, float c_hi, float c_lo)
{
    const __m512 neg_inf = _mm512_set1_ps(-__builtin_inff());
    const __m512 ch = _mm512_set1_ps(c_hi), cl = _mm512_set1_ps(c_lo);
    for (size_t v = 0; v < lanes; v += 16) {
        __m512 m_old = _mm512_load_ps(m + v);
        __m512 mx0 = m_old, mx1 = m_old;
        size_t j = 0;
        for (; j + 2 <= nrows; j += 2) {
            mx0 = _mm512_max_ps(mx0, _mm512_load_ps(s + j * LANES + v));
            mx1 = _mm512_max_ps(mx1, _mm512_load_ps(s + (j + 1) * LANES + v));
        }
        if (j < nrows)
            mx0 = _mm512_max_ps(mx0, _mm512_load_ps(s + j * LANES + v));
        __m512 mx = _mm512_max_ps(mx0, mx1);
        /* Lanes with no allowed key yet subtract 0, never -inf - (-inf). */
        __mmask16 empty = _mm512_cmp_ps_mask(mx, neg_inf, _CMP_EQ_OQ);
        __m512 mu = _mm512_mask_mov_ps(mx, empty, _mm512_setzero_ps());
        __m512 sum0 = _mm512_setzero_ps(), sum1 = _mm512_setzero_ps();
        for (j = 0; j + 2 <= nrows; j += 2) {
            __m512 p0 = exp2_scaled(_mm512_sub_ps(_mm512_load_ps(s + j * LANES + v), mu), ch, cl);
            __m512 p1 =
                exp2_scaled(_mm512_sub_ps(_mm512_load_ps(s + (j + 1) * LANES + v), mu), ch, cl);
            _mm512_store_ps(s + j * LANES + v, p0);
            _mm512_store_ps(s + (j + 1) * LANES + v, p1);
            sum0 = _mm512_add_ps(sum0, p0);
            sum1 = _mm512_add_ps(sum1, p1);
        }
        if (j < nrows) {
            __m512 p0 = exp2_scaled(_mm512_sub_ps(_mm512_load_ps(s + j * LANES + v), mu), ch, cl);
            _mm512_store_ps(s + j * LANES + v, p0);
            sum0 = _mm512_add_ps(sum0, p0);
        }
        __m512 al = exp2_scaled(_mm512_sub_ps(m_old, mu), ch, cl);
        _mm512_store_ps(l + v, _mm512_fmadd_ps(al, _mm512_load_ps(l + v),
                                               _mm512_add_ps(sum0, sum1)));
        _mm512_store_ps(m + v, mx);
        _mm512_store_ps(alpha + v, al);
    }
}

/* The exponent c s - L of 8 lanes in double: fraction (float) and integer part. */
INLINE void exponent_pd(__m256 s, __m512d c, __m512d L, __m256 *f, __m256 *n, __mmask8 *live)
{
    __m512d x = _mm512_fmsub_pd(c, _mm512_cvtps_pd(s), L);
    __m512d nd = _mm512_roundscale_pd(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    *live = _mm512_cmp_pd_mask(x, _mm512_set1_pd(KAT_VEXP2_LO), _CMP_GE_OQ);
    *f = _mm512_cvtpd_ps(_mm512_sub_pd(x, nd));
    *n = _mm512_cvtpd_ps(nd);
}

static void avx512_softmax_probs(size_t nrows, size_t lanes, float *s, const float *lse2,
                                 float c_hi, float c_lo)
{
    const __m512d c = _mm512_set1_pd((double)c_hi + (double)c_lo);
    for (size_t v = 0; v < lanes; v += 16) {
        __m512d L0 = _mm512_add_pd(_mm512_cvtps_pd(_mm256_load_ps(lse2 + v)),
                                   _mm512_cvtps_pd(_mm256_load_ps(lse2 + LANES + v)));
        __m512d L1 = _mm512_add_pd(_mm512_cvtps_pd(_mm256_load_ps(lse2 + v + 8)),
                                   _mm512_cvtps_pd(_mm256_load_ps(lse2 + LANES + v + 8)));
        for (size_t j = 0; j < nrows; j++) {
            __m512 sv = _mm512_load_ps(s + j * LANES + v);
            __m256 f0, f1, n0, n1;
            __mmask8 k0, k1;
            exponent_pd(_mm512_castps512_ps256(sv), c, L0, &f0, &n0, &k0);
            exponent_pd(_mm512_extractf32x8_ps(sv, 1), c, L1, &f1, &n1, &k1);
            __m512 f = _mm512_insertf32x8(_mm512_castps256_ps512(f0), f1, 1);
            __m512 n = _mm512_insertf32x8(_mm512_castps256_ps512(n0), n1, 1);
            /* masked scores (-inf) and empty rows (L = +inf) fall below the range: 0 */
            __mmask16 live = (__mmask16)(k0 | ((unsigned)k1 << 8));
            _mm512_store_ps(s + j * LANES + v, _mm512_maskz_scalef_ps(live, exp2_poly(f), n));
        }
    }
}

/* fmaf in order from 0: the same bits as one lane of the scores tile. */
static void avx512_rowdot(size_t n, size_t D, const float *const *a, const float *const *b,
                          float *out)
{
    for (size_t i = 0; i < n; i++) {
        float acc = 0.0f;
        for (size_t d = 0; d < D; d++)
            acc = __builtin_fmaf(a[i][d], b[i][d], acc);
        out[i] = acc;
    }
}

/* ---- row-pair dots: g[i][j] = a_i . b_j, vectorised along the rows --------------------- */

/* 4 rows of a (in real) x 4 rows of b (jn real); the others repeat row 0 and are not stored.
 * 16 accumulators, 8 loads per 16 fused multiply-adds. */
INLINE void dots_block(size_t in, size_t jn, size_t K, const float *a, size_t lda,
                       const float *b, size_t ldb, float *g, size_t ldg)
{
    __m512 acc[4][4];
    const float *ar[4], *br[4];
    UNROLL for (int i = 0; i < 4; i++) {
        ar[i] = a + ((size_t)i < in ? (size_t)i : 0) * lda;
        br[i] = b + ((size_t)i < jn ? (size_t)i : 0) * ldb;
        UNROLL for (int j = 0; j < 4; j++)
            acc[i][j] = _mm512_setzero_ps();
    }
    size_t k = 0;
    for (; k + 16 <= K; k += 16) {
        __m512 av[4], bv[4];
        UNROLL for (int i = 0; i < 4; i++) {
            av[i] = _mm512_loadu_ps(ar[i] + k);
            bv[i] = _mm512_loadu_ps(br[i] + k);
        }
        UNROLL for (int i = 0; i < 4; i++)
            UNROLL for (int j = 0; j < 4; j++)
                acc[i][j] = _mm512_fmadd_ps(av[i], bv[j], acc[i][j]);
    }
    if (k < K) {
        __mmask16 tail = (__mmask16)((1u << (K - k)) - 1);
        __m512 av[4], bv[4];
        UNROLL for (int i = 0; i < 4; i++) {
            av[i] = _mm512_maskz_loadu_ps(tail, ar[i] + k);
            bv[i] = _mm512_maskz_loadu_ps(tail, br[i] + k);
        }
        UNROLL for (int i = 0; i < 4; i++)
            UNROLL for (int j = 0; j < 4; j++)
                acc[i][j] = _mm512_fmadd_ps(av[i], bv[j], acc[i][j]);
    }
    UNROLL for (int i = 0; i < 4; i++)
        UNROLL for (int j = 0; j < 4; j++)
            if ((size_t)i < in && (size_t)j < jn)
                g[i * ldg + j] = _mm512_reduce_add_ps(acc[i][j]);
}

static void avx512_dots(size_t m, size_t n, size_t K, const float *a, size_t lda,
                        const float *b, size_t ldb, float *g, size_t ldg, int lower)
{
    for (size_t i0 = 0; i0 < m; i0 += 4) {
        size_t in = m - i0 < 4 ? m - i0 : 4;
        /* lower: blocks starting past this block's last row hold only unwanted entries */
        size_t jend = lower && i0 + in < n ? i0 + in : n;
        for (size_t j0 = 0; j0 < jend; j0 += 4)
            dots_block(in, jend - j0 < 4 ? jend - j0 : 4, K, a + i0 * lda, lda, b + j0 * ldb,
                       ldb, g + i0 * ldg + j0, ldg);
    }
}

static void avx512_softmax_grad(size_t nrows, size_t lanes, const float *p, float *dp,
                                const float *delta)
{
    for (size_t v = 0; v < lanes; v += 16) {
        __m512 dl = _mm512_load_ps(delta + v);
        for (size_t j = 0; j < nrows; j++) {
            __m512 g = _mm512_sub_ps(_mm512_load_ps(dp + j * LANES + v), dl);
            _mm512_store_ps(dp + j * LANES + v, _mm512_mul_ps(_mm512_load_ps(p + j * LANES + v), g));
        }
    }
}

const kat_kernels kat__kernels_avx512 = {
    .name = "avx512",
    .arch = KAT_ARCH_AVX512,
    .exp2 = avx512_exp2,
    .scores = avx512_scores,
    .accum = avx512_accum,
    .softmax_online = avx512_softmax_online,
    .softmax_probs = avx512_softmax_probs,
    .rowdot = avx512_rowdot,
    .dots = avx512_dots,
    .softmax_grad = avx512_softmax_grad,
    .mask_causal = kat_masks_causal,
    .mask_bits = kat_masks_bits,
};
