/* The ref kernels: plain portable C, the yardstick every optimised kernel is tested against.
 * Written for clarity, not speed; the loops follow the definitions in kernels.h. */
#include <math.h>
#include "kernels/kernels.h"
#include "kernels/masks.h"

#define LANES KAT_KERN_LANES

static void ref_exp2(size_t n, const float *x, float *y)
{
    for (size_t i = 0; i < n; i++)
        y[i] = exp2f(x[i]);
}

static void ref_scores(size_t nrows, const float *const *xrow, size_t D, const float *yt,
                       size_t lanes, float *s)
{
    for (size_t j = 0; j < nrows; j++)
        for (size_t i = 0; i < lanes; i++) {
            float acc = 0.0f;
            for (size_t d = 0; d < D; d++)
                acc += xrow[j][d] * yt[d * LANES + i];
            s[j * LANES + i] = acc;
        }
}

static void ref_accum(size_t R, size_t T, const float *w, size_t wr, size_t wt,
                      const float *const *zrow, size_t D, float *c, size_t ldc,
                      const float *beta)
{
    for (size_t r = 0; r < R; r++) {
        float *cr = c + r * ldc;
        if (beta)
            for (size_t d = 0; d < D; d++)
                cr[d] *= beta[r];
        for (size_t t = 0; t < T; t++) {
            float wv = w[r * wr + t * wt];
            for (size_t d = 0; d < D; d++)
                cr[d] += wv * zrow[t][d];
        }
    }
}

/* 2^x for x in double, split as 2^n 2^f so that only exp2f's own error remains. */
static float exp2_split(double x)
{
    if (!(x >= -151.0))
        return 0.0f;   /* -inf, or below the smallest subnormal */
    double n = nearbyint(x);
    return ldexpf(exp2f((float)(x - n)), (int)n);
}

static void ref_softmax_online(size_t nrows, size_t lanes, float *s, float *m, float *l,
                               float *alpha, float c_hi, float c_lo)
{
    double c = (double)c_hi + c_lo;
    for (size_t i = 0; i < lanes; i++) {
        float mx = m[i];
        for (size_t j = 0; j < nrows; j++)
            mx = fmaxf(mx, s[j * LANES + i]);
        /* A lane that has seen no allowed key subtracts 0 so that -inf - (-inf) never
         * appears; its scores are all -inf and give 0. */
        float mu = isinf(mx) && mx < 0 ? 0.0f : mx;
        float sum = 0.0f;
        for (size_t j = 0; j < nrows; j++) {
            float p = exp2_split(c * ((double)s[j * LANES + i] - mu));
            s[j * LANES + i] = p;
            sum += p;
        }
        alpha[i] = exp2_split(c * ((double)m[i] - mu));
        l[i] = alpha[i] * l[i] + sum;
        m[i] = mx;
    }
}

static void ref_softmax_probs(size_t nrows, size_t lanes, float *s, const float *lse2,
                              float c_hi, float c_lo)
{
    double c = (double)c_hi + c_lo;
    for (size_t j = 0; j < nrows; j++)
        for (size_t i = 0; i < lanes; i++) {
            float x = s[j * LANES + i];   /* masked (-inf) scores give 0, never NaN */
            double e = c * x - ((double)lse2[i] + lse2[LANES + i]);
            s[j * LANES + i] = x == -INFINITY ? 0.0f : exp2_split(e);
        }
}

static void ref_rowdot(size_t n, size_t D, const float *const *a, const float *const *b,
                       float *out)
{
    for (size_t i = 0; i < n; i++) {
        float acc = 0.0f;
        for (size_t d = 0; d < D; d++)
            acc += a[i][d] * b[i][d];   /* as ref_scores: unfused, in order */
        out[i] = acc;
    }
}

static void ref_dots(size_t m, size_t n, size_t K, const float *a, size_t lda, const float *b,
                     size_t ldb, float *g, size_t ldg, int lower)
{
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < n && (!lower || j <= i); j++) {
            float acc = 0.0f;
            for (size_t k = 0; k < K; k++)
                acc += a[i * lda + k] * b[j * ldb + k];
            g[i * ldg + j] = acc;
        }
}

static void ref_softmax_grad(size_t nrows, size_t lanes, const float *p, float *dp,
                             const float *delta)
{
    for (size_t j = 0; j < nrows; j++)
        for (size_t i = 0; i < lanes; i++)
            dp[j * LANES + i] = p[j * LANES + i] * (dp[j * LANES + i] - delta[i]);
}

const kat_kernels kat__kernels_ref = {
    .name = "ref",
    .arch = KAT_ARCH_REF,
    .exp2 = ref_exp2,
    .scores = ref_scores,
    .accum = ref_accum,
    .softmax_online = ref_softmax_online,
    .softmax_probs = ref_softmax_probs,
    .rowdot = ref_rowdot,
    .dots = ref_dots,
    .softmax_grad = ref_softmax_grad,
    .mask_causal = kat_masks_causal,
    .mask_bits = kat_masks_bits,
};
