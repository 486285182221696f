/* The AVX2 + FMA kernels: the same tiles as avx512 with 8-float vectors and 16 registers
 * (12 accumulators per block). */
#include <immintrin.h>
#include "kernels/kernels.h"
#include "kernels/masks.h"
#include "kernels/vexp.h"

#define LANES KAT_KERN_LANES
#define INLINE static inline __attribute__((always_inline))
#define UNROLL _Pragma("GCC unroll 16")

/* ---- 2^x ------------------------------------------------------------------------------- */

INLINE __m256 exp2_v(__m256 x)
{
    /* max/min return their second operand when either is NaN, so NaN passes through. */
    x = _mm256_max_ps(_mm256_set1_ps(KAT_VEXP2_LO), x);
    x = _mm256_min_ps(_mm256_set1_ps(KAT_VEXP2_HI), x);
    __m256 n = _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 f = _mm256_sub_ps(x, n);
    __m256 p = _mm256_set1_ps(KAT_VEXP2_C5);
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(KAT_VEXP2_C4));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(KAT_VEXP2_C3));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(KAT_VEXP2_C2));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(KAT_VEXP2_C1));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(KAT_VEXP2_C0));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.0f));
    /* 2^n as two normal factors 2^floor(n/2) * 2^ceil(n/2): the first product is exact, the
     * second rounds once, into the subnormals or to +inf when the result needs it. */
    __m256i ni = _mm256_cvtps_epi32(n);
    __m256i n1 = _mm256_srai_epi32(ni, 1);
    __m256i n2 = _mm256_sub_epi32(ni, n1);
    __m256i bias = _mm256_set1_epi32(127);
    __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, bias), 23));
    __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, bias), 23));
    return _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
}

/* 2^f for a reduced fraction f (|f| <= 1/2 + tiny). */
INLINE __m256 exp2_poly(__m256 f)
{
    __m256 p = _mm256_set1_ps(KAT_VEXP2_C5);
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(KAT_VEXP2_C4));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(KAT_VEXP2_C3));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(KAT_VEXP2_C2));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(KAT_VEXP2_C1));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(KAT_VEXP2_C0));
    return _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.0f));
}

/* p 2^n for integral n in [-151, 128], rounded once (two exact-ish exponent factors). */
INLINE __m256 scale_pow2(__m256 p, __m256 n)
{
    __m256i ni = _mm256_cvtps_epi32(n);
    __m256i n1 = _mm256_srai_epi32(ni, 1);
    __m256i n2 = _mm256_sub_epi32(ni, n1);
    __m256i bias = _mm256_set1_epi32(127);
    __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, bias), 23));
    __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, bias), 23));
    return _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
}

/* 2^(c d) for d <= 0 and c = ch + cl >= 0, the product kept as a float pair through the
 * range reduction; 0 where c d < -151 (and for d = -inf). */
INLINE __m256 exp2_scaled(__m256 d, __m256 ch, __m256 cl)
{
    __m256 xh = _mm256_mul_ps(ch, d);
    __m256 live = _mm256_cmp_ps(xh, _mm256_set1_ps(KAT_VEXP2_LO), _CMP_GE_OQ);
    __m256 xl = _mm256_fmadd_ps(cl, d, _mm256_fmsub_ps(ch, d, xh));
    xh = _mm256_max_ps(_mm256_set1_ps(KAT_VEXP2_LO), xh);   /* keep n in range; masked */
    __m256 n = _mm256_round_ps(xh, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 f = _mm256_add_ps(_mm256_sub_ps(xh, n), xl);
    return _mm256_and_ps(live, scale_pow2(exp2_poly(f), n));
}

INLINE __m256i tail_mask(size_t count)   /* lanes [0, count) set, count <= 8 */
{
    __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)count), idx);
}

static void avx2_exp2(size_t n, const float *x, float *y)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, exp2_v(_mm256_loadu_ps(x + i)));
    if (i < n) {
        __m256i m = tail_mask(n - i);
        _mm256_maskstore_ps(y + i, m, exp2_v(_mm256_maskload_ps(x + i, m)));
    }
}

/* ---- score tiles ----------------------------------------------------------------------- */

/* J key rows (jn real) x NV vectors of 8 lanes starting at lane i0. */
INLINE void scores_block(const int NV, const int J, size_t jn, const float *const *xrow,
                         size_t D, const float *yt, float *s)
{
    __m256 acc[6][3];
    const float *xr[6];
    UNROLL for (int j = 0; j < J; j++) {
        xr[j] = xrow[(size_t)j < jn ? j : 0];
        UNROLL for (int v = 0; v < NV; v++)
            acc[j][v] = _mm256_setzero_ps();
    }
    for (size_t d = 0; d < D; d++) {
        __m256 y[3];
        UNROLL for (int v = 0; v < NV; v++)
            y[v] = _mm256_load_ps(yt + d * LANES + 8 * v);
        UNROLL for (int j = 0; j < J; j++) {
            __m256 b = _mm256_broadcast_ss(xr[j] + d);
            UNROLL for (int v = 0; v < NV; v++)
                acc[j][v] = _mm256_fmadd_ps(b, y[v], acc[j][v]);
        }
    }
    UNROLL for (int j = 0; j < J; j++)
        if ((size_t)j < jn)
            UNROLL for (int v = 0; v < NV; v++)
                _mm256_store_ps(s + j * LANES + 8 * v, acc[j][v]);
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
DEFINE_SCORES(2, 6)
DEFINE_SCORES(3, 4)

static void avx2_scores(size_t nrows, const float *const *xrow, size_t D, const float *yt,
                        size_t lanes, float *s)
{
    if (lanes == 48) {   /* two groups of 24 lanes */
        scores_nv3(nrows, xrow, D, yt, s);
        scores_nv3(nrows, xrow, D, yt + 24, s + 24);
    } else {             /* groups of 16 lanes */
        for (size_t i0 = 0; i0 < lanes; i0 += 16)
            scores_nv2(nrows, xrow, D, yt + i0, s + i0);
    }
}

/* ---- accumulation tiles ---------------------------------------------------------------- */

INLINE void accum_block(const int NV, const int R, size_t rn, size_t T, const float *w,
                        size_t wr, size_t wt, const float *const *zrow, size_t d0,
                        __m256i tail, float *c, size_t ldc, const float *beta)
{
    __m256 acc[12][3];
    const float *wp[12];
    UNROLL for (int r = 0; r < R; r++) {
        size_t rr = (size_t)r < rn ? (size_t)r : 0;
        wp[r] = w + rr * wr;
        __m256 b = _mm256_set1_ps(beta ? beta[rr] : 1.0f);
        UNROLL for (int v = 0; v < NV; v++) {
            __m256 cv = _mm256_load_ps(c + rr * ldc + d0 + 8 * v);
            acc[r][v] = beta ? _mm256_mul_ps(b, cv) : cv;
        }
    }
    for (size_t t = 0; t < T; t++) {
        const float *z = zrow[t] + d0;
        __m256 zv[3];
        UNROLL for (int v = 0; v < NV; v++)
            zv[v] = v == NV - 1 ? _mm256_maskload_ps(z + 8 * v, tail) : _mm256_loadu_ps(z + 8 * v);
        UNROLL for (int r = 0; r < R; r++) {
            __m256 b = _mm256_broadcast_ss(wp[r] + t * wt);
            UNROLL for (int v = 0; v < NV; v++)
                acc[r][v] = _mm256_fmadd_ps(b, zv[v], acc[r][v]);
        }
    }
    UNROLL for (int r = 0; r < R; r++)
        if ((size_t)r < rn)
            UNROLL for (int v = 0; v < NV; v++)
                _mm256_store_ps(c + r * ldc + d0 + 8 * v, acc[r][v]);
}

#define DEFINE_ACCUM_MODE(NV, R, MODE, WR, WT)                                                \
    static void accum_nv##NV##_##MODE(size_t rows, size_t T, const float *w, size_t wr,      \
                                      size_t wt, const float *const *zrow, size_t d0,        \
                                      __m256i tail, float *c, size_t ldc, const float *beta)  \
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
DEFINE_ACCUM(2, 6)
DEFINE_ACCUM(3, 4)

typedef void (*accum_fn)(size_t, size_t, const float *, size_t, size_t, const float *const *,
                         size_t, __m256i, float *, size_t, const float *);
#define ACCUM_ROW(NV) {accum_nv##NV##_q, accum_nv##NV##_k, accum_nv##NV##_g}
static const accum_fn accum_table[3][3] = {ACCUM_ROW(1), ACCUM_ROW(2), ACCUM_ROW(3)};

static void avx2_accum(size_t R, size_t T, const float *w, size_t wr, size_t wt,
                       const float *const *zrow, size_t D, float *c, size_t ldc,
                       const float *beta)
{
    if (R == 0 || D == 0)
        return;
    int mode = (wr == 1 && wt == LANES) ? 0 : (wr == LANES && wt == 1) ? 1 : 2;
    size_t nv_total = (D + 7) / 8;
    size_t nchunks = (nv_total + 2) / 3;
    size_t per = (nv_total + nchunks - 1) / nchunks;
    for (size_t v0 = 0; v0 < nv_total; v0 += per) {
        size_t nv = nv_total - v0 < per ? nv_total - v0 : per;
        size_t d0 = 8 * v0, d_end = d0 + 8 * nv;
        __m256i tail = tail_mask(d_end <= D ? 8 : 8 - (d_end - D));
        accum_table[nv - 1][mode](R, T, w, wr, wt, zrow, d0, tail, c, ldc, beta);
    }
}

/* ---- softmax tiles ----------------------------------------------------------------------- */

static void avx2_softmax_online(size_t nrows, size_t lanes, float *s, float *m, float *l,
                                float *alpha, float c_hi, float c_lo)
{
    const __m256 neg_inf = _mm256_set1_ps(-__builtin_inff());
    const __m256 ch = _mm256_set1_ps(c_hi), cl = _mm256_set1_ps(c_lo);
    for (size_t v = 0; v < lanes; v += 8) {
        __m256 m_old = _mm256_load_ps(m + v), mx = m_old;
        for (size_t j = 0; j < nrows; j++)
            mx = _mm256_max_ps(mx, _mm256_load_ps(s + j * LANES + v));
        /* Lanes with no allowed key yet subtract 0, never -inf - (-inf). */
        __m256 empty = _mm256_cmp_ps(mx, neg_inf, _CMP_EQ_OQ);
        __m256 mu = _mm256_blendv_ps(mx, _mm256_setzero_ps(), empty);
        __m256 sum = _mm256_setzero_ps();
        for (size_t j = 0; j < nrows; j++) {
            __m256 p = exp2_scaled(_mm256_sub_ps(_mm256_load_ps(s + j * LANES + v), mu), ch, cl);
            _mm256_store_ps(s + j * LANES + v, p);
            sum = _mm256_add_ps(sum, p);
        }
        __m256 al = exp2_scaled(_mm256_sub_ps(m_old, mu), ch, cl);
        _mm256_store_ps(l + v, _mm256_fmadd_ps(al, _mm256_load_ps(l + v), sum));
        _mm256_store_ps(m + v, mx);
        _mm256_store_ps(alpha + v, al);
    }
}

/* 2^(c s - L) for 4 lanes with the exponent formed and split in double. */
INLINE void exponent_pd(__m128 s, __m256d c, __m256d L, __m128 *f, __m128 *n, __m128 *live)
{
    __m256d x = _mm256_fmsub_pd(c, _mm256_cvtps_pd(s), L);
    __m256d ok = _mm256_cmp_pd(x, _mm256_set1_pd(KAT_VEXP2_LO), _CMP_GE_OQ);
    x = _mm256_max_pd(_mm256_set1_pd(KAT_VEXP2_LO), x);   /* -inf and below: masked */
    __m256d nd = _mm256_round_pd(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    *f = _mm256_cvtpd_ps(_mm256_sub_pd(x, nd));
    *n = _mm256_cvtpd_ps(nd);
    *live = _mm256_cvtpd_ps(ok);   /* all-ones doubles become NaN floats: nonzero bits */
}

static void avx2_softmax_probs(size_t nrows, size_t lanes, float *s, const float *lse2,
                               float c_hi, float c_lo)
{
    const __m256d c = _mm256_set1_pd((double)c_hi + (double)c_lo);
    for (size_t v = 0; v < lanes; v += 8) {
        __m256d L0 = _mm256_add_pd(_mm256_cvtps_pd(_mm_load_ps(lse2 + v)),
                                   _mm256_cvtps_pd(_mm_load_ps(lse2 + LANES + v)));
        __m256d L1 = _mm256_add_pd(_mm256_cvtps_pd(_mm_load_ps(lse2 + v + 4)),
                                   _mm256_cvtps_pd(_mm_load_ps(lse2 + LANES + v + 4)));
        for (size_t j = 0; j < nrows; j++) {
            __m256 sv = _mm256_load_ps(s + j * LANES + v);
            __m128 f0, f1, n0, n1, k0, k1;
            exponent_pd(_mm256_castps256_ps128(sv), c, L0, &f0, &n0, &k0);
            exponent_pd(_mm256_extractf128_ps(sv, 1), c, L1, &f1, &n1, &k1);
            __m256 f = _mm256_insertf128_ps(_mm256_castps128_ps256(f0), f1, 1);
            __m256 n = _mm256_insertf128_ps(_mm256_castps128_ps256(n0), n1, 1);
            __m256 k = _mm256_insertf128_ps(_mm256_castps128_ps256(k0), k1, 1);
            /* masked scores (-inf) and empty rows (L = +inf) fall below the range: 0 */
            __m256 live = _mm256_cmp_ps(k, k, _CMP_UNORD_Q);
            _mm256_store_ps(s + j * LANES + v, _mm256_and_ps(live, scale_pow2(exp2_poly(f), n)));
        }
    }
}

/* fmaf in order from 0: the same bits as one lane of the scores tile. */
static void avx2_rowdot(size_t n, size_t D, const float *const *a, const float *const *b,
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

INLINE float hsum(__m256 v)
{
    __m128 x = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    x = _mm_add_ps(x, _mm_movehl_ps(x, x));
    x = _mm_add_ss(x, _mm_movehdup_ps(x));
    return _mm_cvtss_f32(x);
}

/* 4 rows of a (in real) x 3 rows of b (jn real); the others repeat row 0 and are not stored.
 * 12 accumulators and 7 loads fit the 16 ymm registers. */
INLINE void dots_block(size_t in, size_t jn, size_t K, const float *a, size_t lda,
                       const float *b, size_t ldb, float *g, size_t ldg)
{
    __m256 acc[4][3];
    const float *ar[4], *br[3];
    UNROLL for (int i = 0; i < 4; i++) {
        ar[i] = a + ((size_t)i < in ? (size_t)i : 0) * lda;
        UNROLL for (int j = 0; j < 3; j++)
            acc[i][j] = _mm256_setzero_ps();
    }
    UNROLL for (int j = 0; j < 3; j++)
        br[j] = b + ((size_t)j < jn ? (size_t)j : 0) * ldb;
    size_t k = 0;
    for (; k + 8 <= K; k += 8) {
        __m256 bv[3];
        UNROLL for (int j = 0; j < 3; j++)
            bv[j] = _mm256_loadu_ps(br[j] + k);
        UNROLL for (int i = 0; i < 4; i++) {
            __m256 av = _mm256_loadu_ps(ar[i] + k);
            UNROLL for (int j = 0; j < 3; j++)
                acc[i][j] = _mm256_fmadd_ps(av, bv[j], acc[i][j]);
        }
    }
    if (k < K) {
        __m256i tail = tail_mask(K - k);
        __m256 bv[3];
        UNROLL for (int j = 0; j < 3; j++)
            bv[j] = _mm256_maskload_ps(br[j] + k, tail);
        UNROLL for (int i = 0; i < 4; i++) {
            __m256 av = _mm256_maskload_ps(ar[i] + k, tail);
            UNROLL for (int j = 0; j < 3; j++)
                acc[i][j] = _mm256_fmadd_ps(av, bv[j], acc[i][j]);
        }
    }
    UNROLL for (int i = 0; i < 4; i++)
        UNROLL for (int j = 0; j < 3; j++)
            if ((size_t)i < in && (size_t)j < jn)
                g[i * ldg + j] = hsum(acc[i][j]);
}

static void avx2_dots(size_t m, size_t n, size_t K, const float *a, size_t lda, const float *b,
                      size_t ldb, float *g, size_t ldg, int lower)
{
    for (size_t i0 = 0; i0 < m; i0 += 4) {
        size_t in = m - i0 < 4 ? m - i0 : 4;
        /* lower: blocks starting past this block's last row hold only unwanted entries */
        size_t jend = lower && i0 + in < n ? i0 + in : n;
        for (size_t j0 = 0; j0 < jend; j0 += 3)
            dots_block(in, jend - j0 < 3 ? jend - j0 : 3, K, a + i0 * lda, lda, b + j0 * ldb,
                       ldb, g + i0 * ldg + j0, ldg);
    }
}

static void avx2_softmax_grad(size_t nrows, size_t lanes, const float *p, float *dp,
                              const float *delta)
{
    for (size_t v = 0; v < lanes; v += 8) {
        __m256 dl = _mm256_load_ps(delta + v);
        for (size_t j = 0; j < nrows; j++) {
            __m256 g = _mm256_sub_ps(_mm256_load_ps(dp + j * LANES + v), dl);
            _mm256_store_ps(dp + j * LANES + v, _mm256_mul_ps(_mm256_load_ps(p + j * LANES + v), g));
        }
    }
}

const kat_kernels kat__kernels_avx2 = {
    .name = "avx2",
    .arch = KAT_ARCH_AVX2,
    .exp2 = avx2_exp2,
    .scores = avx2_scores,
    .accum = avx2_accum,
    .softmax_online = avx2_softmax_online,
    .softmax_probs = avx2_softmax_probs,
    .rowdot = avx2_rowdot,
    .dots = avx2_dots,
    .softmax_grad = avx2_softmax_grad,
    .mask_causal = kat_masks_causal,
    .mask_bits = kat_masks_bits,
};
