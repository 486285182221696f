/* Exact polynomial feature maps, phi(q).psi(k) = f(q.k), in the symmetric (monomial) basis,
 * and the Taylor maps of exp(q.k/tau) built on them.
 *
 * Layout. The working vector v holds every monomial of degree 0..P ("full layout"): degree t
 * occupies C(d+t-1, t) entries starting at O_t = C(d+t-1, t-1). Within degree t, monomials
 * are grouped by their largest index j = 0..d-1, and the group of j is "every degree-(t-1)
 * monomial whose largest index is <= j, times x_j" in the order of degree t-1. Those parents
 * form a prefix of the degree-(t-1) block, of length cnt[t-1][j+1], where cnt[t][j] =
 * C(j+t-1, t) counts the degree-t monomials in the first j variables. So each monomial costs
 * one multiply-add pass over a contiguous prefix: O(dim) per row, vectorisable.
 *
 * Weights. v_alpha = c_t sqrt(t!/alpha!) x^alpha, built with the per-entry growth factor
 * fac = rho_t sqrt(t/m), where m is the multiplicity of j in the new monomial (t!/alpha! gains
 * t/m when alpha gains j) and rho_t = c_t/c_{t-1}. With c_t = sqrt|a_t| the output needs only
 * the sign of a_t on the key side; Taylor maps use rho_t = 1/sqrt(t tau) directly, so no
 * factorial ever over- or underflows and |v|^2 stays bounded by exp(|x|^2/tau). */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <lapacke.h>
#include "core/internal.h"
#include "kat/featmaps.h"

typedef struct {
    size_t d;
    int P;                /* highest degree with a nonzero coefficient */
    size_t full_dim;      /* C(d+P, P): every degree 0..P */
    size_t dim;           /* output: the degrees with a_t != 0 */
    size_t *cnt;          /* (P+1) x (d+1): cnt[t*(d+1)+j] = C(j+t-1, t) */
    size_t *blk;          /* P+2: O_t, the start of degree t in the full layout; blk[P+1] = full */
    size_t *out_off;      /* P+1: start of degree t in the output, SIZE_MAX when a_t = 0 */
    signed char *sign;    /* P+1: sign of a_t (0 when absent) */
    double *fac;          /* full_dim growth factors (entry 0: c_0) */
    float *fac32;
    double *coef;         /* P+1 coefficients, for score (NULL for Taylor) */
    double tau;           /* Taylor temperature (0 for a general polynomial) */
    int direct;           /* every degree present: the output is the full layout */
} poly_map;

/* ---- sizes ---------------------------------------------------------------------------------- */

static size_t gcd_size(size_t a, size_t b)
{
    while (b) {
        size_t r = a % b;
        a = b;
        b = r;
    }
    return a;
}

/* C(n, k) into *out; 1 on overflow. Each step stays an exact integer: r = C(n-k+i-1, i-1)
 * and r*(n-k+i)/i = C(n-k+i, i); dividing by the gcd first keeps the product small. */
static int binom_checked(size_t n, size_t k, size_t *out)
{
    if (k > n) {
        *out = 0;
        return 0;
    }
    if (k > n - k)
        k = n - k;
    size_t r = 1;
    for (size_t i = 1; i <= k; i++) {
        size_t m = n - k + i, g = gcd_size(r, i);
        if (kat_mul_overflow(r / g, m / (i / g), &r))
            return 1;
    }
    *out = r;
    return 0;
}

/* C(n, k) as a double, for error messages about sizes that do not fit. */
static double binom_approx(double n, double k)
{
    return exp(lgamma(n + 1.0) - lgamma(k + 1.0) - lgamma(n - k + 1.0));
}

/* The full working size C(d+P, P) and the output size sum_{t: a_t != 0} C(d+t-1, t), both
 * checked against KAT_FEATMAP_MAX_DIM. `present` may be NULL (every degree present). */
static kat_status poly_sizes(const char *who, size_t d, int P, const double *coef,
                             size_t *full, size_t *dim)
{
    size_t f = 0, sum = 0;
    if (d > KAT_FEATMAP_MAX_DIM)
        return kat__fail(KAT_ERANGE, "%s: the input dimension d = %zu exceeds the limit %zu", who,
                        d, KAT_FEATMAP_MAX_DIM);
    if (binom_checked(d + (size_t)P, (size_t)P, &f) || f > KAT_FEATMAP_MAX_DIM)
        return kat__fail(KAT_ERANGE,
                        "%s: the feature dimension C(d+P, P) = %.4g for d = %zu and degree P = %d "
                        "exceeds the limit %zu",
                        who, binom_approx((double)d + P, P), d, P, KAT_FEATMAP_MAX_DIM);
    for (int t = 0; t <= P; t++) {
        if (coef && coef[t] == 0.0)
            continue;
        size_t c = 0;
        binom_checked(d + (size_t)t - 1, (size_t)t, &c);   /* <= f: cannot overflow */
        sum += c;
    }
    *full = f;
    *dim = sum;
    return KAT_OK;
}

/* Trim trailing zeros and validate; *P = degree, or -1 for the zero polynomial. */
static kat_status poly_check_coef(const char *who, const double *coef, size_t ncoef, size_t d,
                                  int *P)
{
    if (!coef)
        return kat__fail(KAT_EINVAL, "%s: coef is NULL", who);
    if (ncoef == 0)
        return kat__fail(KAT_EINVAL, "%s: ncoef must be >= 1 (got 0)", who);
    if (d == 0)
        return kat__fail(KAT_EINVAL, "%s: the input dimension d must be >= 1 (got 0)", who);
    size_t bad = kat__first_nonfinite(coef, ncoef);
    if (bad < ncoef)
        return kat__fail(KAT_EDOM, "%s: coef[%zu] is %g", who, bad, coef[bad]);
    size_t n = ncoef;
    while (n > 0 && coef[n - 1] == 0.0)
        n--;
    if (n == 0)
        return kat__fail(KAT_EINVAL, "%s: every coefficient is zero, so the map would have "
                                    "dimension 0", who);
    if (n - 1 > (size_t)KAT_FEATMAP_MAX_DIM)
        return kat__fail(KAT_ERANGE, "%s: degree %zu exceeds the limit %zu", who, n - 1,
                        KAT_FEATMAP_MAX_DIM);
    *P = (int)(n - 1);
    return KAT_OK;
}

kat_status kat_featmap_poly_dim(const double *coef, size_t ncoef, size_t d, size_t *dim)
{
    int P = 0;
    kat_status st = poly_check_coef("featmap_poly_dim", coef, ncoef, d, &P);
    if (st)
        return st;
    if (!dim)
        return kat__fail(KAT_EINVAL, "featmap_poly_dim: dim is NULL");
    size_t full, out;
    if ((st = poly_sizes("featmap_poly_dim", d, P, coef, &full, &out)))
        return st;
    *dim = out;
    return KAT_OK;
}

kat_status kat_featmap_taylor_dim(size_t d, int order, size_t *dim)
{
    if (d == 0)
        return kat__fail(KAT_EINVAL, "featmap_taylor_dim: the input dimension d must be >= 1 "
                                    "(got 0)");
    if (order < 0)
        return kat__fail(KAT_EINVAL, "featmap_taylor_dim: order P = %d must be >= 0", order);
    if (!dim)
        return kat__fail(KAT_EINVAL, "featmap_taylor_dim: dim is NULL");
    size_t full, out;
    kat_status st = poly_sizes("featmap_taylor_dim", d, order, NULL, &full, &out);
    if (!st)
        *dim = out;
    return st;
}

/* ---- positivity of a polynomial on the real line -------------------------------------------- */

static double horner(const double *a, int P, double x)
{
    double s = a[P];
    for (int t = P - 1; t >= 0; t--)
        s = s * x + a[t];
    return s;
}

static double horner_abs(const double *a, int P, double x)
{
    double s = fabs(a[P]), ax = fabs(x);
    for (int t = P - 1; t >= 0; t--)
        s = s * ax + fabs(a[t]);
    return s;
}

/* f'(x) and f''(x), by Horner. */
static void derivs(const double *a, int P, double x, double *d1, double *d2)
{
    double p1 = 0.0, p2 = 0.0;
    for (int t = P; t >= 1; t--)
        p1 = p1 * x + (double)t * a[t];
    for (int t = P; t >= 2; t--)
        p2 = p2 * x + (double)t * (t - 1) * a[t];
    *d1 = p1;
    *d2 = p2;
}

/* f evaluated at x and, after Newton steps on f' that reduce |f'|, at the polished point. */
static double min_near(const double *a, int P, double x)
{
    double best = horner(a, P, x);
    for (int it = 0; it < 60; it++) {
        double d1, d2;
        derivs(a, P, x, &d1, &d2);
        if (d1 == 0.0 || d2 == 0.0 || !isfinite(d1 / d2))
            break;
        double xn = x - d1 / d2, e1, e2;
        derivs(a, P, xn, &e1, &e2);
        if (!(fabs(e1) < fabs(d1)))
            break;
        x = xn;
        double v = horner(a, P, x);
        if (v < best)
            best = v;
    }
    return best;
}

/* 1 when f(x) > 0 for every real x, decided from the real critical points (see featmaps.h);
 * 0 otherwise; -1 when the scratch cannot be allocated, -2 when LAPACK fails. */
static int poly_positive_on_reals(const double *a, int P)
{
    if (P == 0)
        return a[0] > 0.0;
    if (P % 2 != 0 || a[P] <= 0.0 || a[0] <= 0.0)
        return 0;
    lapack_int n = P - 1;   /* degree of f' (odd, >= 1) */
    double *H = kat__alloc_array((size_t)n * (size_t)n + 3 * (size_t)n, sizeof(double),
                                "polynomial companion matrix");
    if (!H)
        return -1;
    double *wr = H + (size_t)n * n, *wi = wr + n, *work = wi + n;
    memset(H, 0, (size_t)n * n * sizeof(double));
    /* Companion matrix of the monic f'(x)/(P a_P) = x^n + c_{n-1} x^{n-1} + ... + c_0: first
     * row -c_{n-1} ... -c_0, ones below the diagonal: already upper Hessenberg. */
    double lead = (double)P * a[P];
    for (lapack_int j = 0; j < n; j++) {
        lapack_int i = n - 1 - j;   /* c_i = (i+1) a_{i+1} / lead */
        H[(size_t)j * n] = -(double)(i + 1) * a[i + 1] / lead;
        if (j + 1 < n)
            H[(j + 1) + (size_t)j * n] = 1.0;
    }
    lapack_int info = LAPACKE_dhseqr_work(LAPACK_COL_MAJOR, 'E', 'N', n, 1, n, H, n, wr, wi,
                                          NULL, 1, work, n);
    int pos = -2;
    if (info == 0) {
        /* The minimum of f sits at a real critical point; real parts of complex roots are
         * extra candidates, which can only make the test stricter. */
        double fmin = horner(a, P, 0.0), xmin = 0.0;
        for (lapack_int i = 0; i < n; i++) {
            double v = min_near(a, P, wr[i]);
            if (v < fmin) {
                fmin = v;
                xmin = wr[i];
            }
        }
        double margin = 64.0 * 2.220446049250313e-16 * (P + 1) * horner_abs(a, P, xmin);
        pos = fmin > margin;
    }
    kat_free(H);
    return pos;
}

/* ---- the map -------------------------------------------------------------------------------- */

static void poly_free(void *state)
{
    poly_map *m = state;
    if (!m)
        return;
    kat_free(m->cnt);
    kat_free(m->blk);
    kat_free(m->out_off);
    kat_free(m->sign);
    kat_free(m->fac);
    kat_free(m->fac32);
    kat_free(m->coef);
    kat_free(m);
}

/* Forward recurrence of one row into the full layout v (v[0] = fac[0] = c_0), degrees up to
 * tmax. Degree 1 is one pass (each of its groups has a single parent, the constant). */
#define POLY_FORWARD(T, NAME, FAC)                                                              \
    static void NAME(const poly_map *m, const T *x, T *restrict v, int tmax)                    \
    {                                                                                           \
        const size_t d = m->d, w = d + 1;                                                       \
        v[0] = m->FAC[0];                                                                       \
        if (tmax >= 1) {                                                                        \
            const T v0 = v[0], *restrict f1 = m->FAC + 1;                                       \
            T *restrict v1 = v + 1;                                                             \
            for (size_t j = 0; j < d; j++)                                                      \
                v1[j] = v0 * x[j] * f1[j];                                                      \
        }                                                                                       \
        for (int t = 2; t <= tmax; t++) {                                                       \
            const T *vp = v + m->blk[t - 1];                                                    \
            T *vt = v + m->blk[t];                                                              \
            const T *ft = m->FAC + m->blk[t];                                                   \
            const size_t *ct = m->cnt + (size_t)t * w, *cp = ct - w;                            \
            for (size_t j = 0; j < d; j++) {                                                    \
                const T xj = x[j];                                                              \
                T *restrict dst = vt + ct[j];                                                   \
                const T *restrict fj = ft + ct[j];                                              \
                const size_t len = cp[j + 1];                                                   \
                for (size_t r = 0; r < len; r++)                                                \
                    dst[r] = vp[r] * xj * fj[r];                                                \
            }                                                                                   \
        }                                                                                       \
    }
POLY_FORWARD(double, poly_forward, fac)
POLY_FORWARD(float, poly_forward_f32, fac32)

/* The reduction in the reverse pass may be reassociated (it is a dot product, summed in a
 * fixed, deterministic order by the vectoriser), so let OpenMP's simd say so. */
#define POLY_PRAGMA(x) _Pragma(#x)
#ifdef _OPENMP
#define POLY_SIMD_SUM(v) POLY_PRAGMA(omp simd reduction(+ : v))
#else
#define POLY_SIMD_SUM(v)
#endif

/* Reverse pass. The adjoint of the top degree P is read straight from the output gradient
 * gtop (times the sign sgn_top of a_P on the key side): it is never updated, so neither it nor
 * the forward values of degree P are stored. G holds the adjoints of degrees < P in the full
 * layout (seeded from the output gradient, updated in place); v the forward values up to
 * degree P-1. With G' = G_t * fac, each group j of degree t adds G'.v_{t-1} (over its parents)
 * to dx_j and x_j G' to the parents' adjoints, in one fused pass. */
#define POLY_BACKWARD(T, NAME, FAC)                                                             \
    static void NAME(const poly_map *m, const T *x, const T *v, const T *gtop, T sgn_top,       \
                     T *restrict G, T *dx)                                                      \
    {                                                                                           \
        const size_t d = m->d, w = d + 1;                                                       \
        for (int t = m->P; t >= 2; t--) {                                                       \
            const T *restrict vp = v + m->blk[t - 1];                                           \
            T *restrict gp = G + m->blk[t - 1];                                                 \
            const T *restrict gt = t == m->P ? gtop : G + m->blk[t];                            \
            const T sg = t == m->P ? sgn_top : (T)1;                                            \
            const T *restrict ft = m->FAC + m->blk[t];                                          \
            const size_t *ct = m->cnt + (size_t)t * w, *cp = ct - w;                            \
            for (size_t j = 0; j < d; j++) {                                                    \
                const T xs = x[j] * sg;                                                         \
                const T *restrict gj = gt + ct[j], *restrict fj = ft + ct[j];                   \
                const size_t len = cp[j + 1];                                                   \
                T acc = 0;                                                                      \
                POLY_SIMD_SUM(acc)                                                              \
                for (size_t r = 0; r < len; r++) {                                              \
                    const T gf = gj[r] * fj[r];                                                 \
                    acc += gf * vp[r];                                                          \
                    gp[r] += gf * xs;                                                           \
                }                                                                               \
                dx[j] += sg * acc;                                                              \
            }                                                                                   \
        }                                                                                       \
        if (m->P >= 1) { /* degree 1: one parent (the constant); degree 0 has no x */           \
            const T v0 = v[0], *g1 = m->P == 1 ? gtop : G + 1, *f1 = m->FAC + 1;                \
            const T s1 = m->P == 1 ? sgn_top * v0 : v0;                                         \
            for (size_t j = 0; j < d; j++)                                                      \
                dx[j] += g1[j] * f1[j] * s1;                                                    \
        }                                                                                       \
    }
POLY_BACKWARD(double, poly_backward, fac)
POLY_BACKWARD(float, poly_backward_f32, fac32)

/* Output of one row from the full layout v: the present degrees, signed on the key side. */
#define POLY_EMIT(T, NAME)                                                                      \
    static void NAME(const poly_map *m, kat_side side, const T *v, T *f)                        \
    {                                                                                           \
        for (int t = 0; t <= m->P; t++) {                                                       \
            if (!m->sign[t])                                                                    \
                continue;                                                                       \
            size_t n = m->blk[t + 1] - m->blk[t];                                               \
            const T *src = v + m->blk[t];                                                       \
            T *dst = f + m->out_off[t];                                                         \
            if (side == KAT_SIDE_KEY && m->sign[t] < 0)                                         \
                for (size_t r = 0; r < n; r++)                                                  \
                    dst[r] = -src[r];                                                           \
            else if (dst != src)                                                                \
                memcpy(dst, src, n * sizeof(T));                                                \
        }                                                                                       \
    }
POLY_EMIT(double, poly_emit)
POLY_EMIT(float, poly_emit_f32)

/* d(loss)/dv in the full layout from the output gradient g (zero for absent degrees), for the
 * degrees below P (the top degree is read from g directly). */
#define POLY_SEED(T, NAME)                                                                      \
    static void NAME(const poly_map *m, kat_side side, const T *g, T *G)                        \
    {                                                                                           \
        for (int t = 0; t < m->P; t++) {                                                        \
            size_t n = m->blk[t + 1] - m->blk[t];                                               \
            T *dst = G + m->blk[t];                                                             \
            if (!m->sign[t]) {                                                                  \
                memset(dst, 0, n * sizeof(T));                                                  \
                continue;                                                                       \
            }                                                                                   \
            const T *src = g + m->out_off[t];                                                   \
            if (side == KAT_SIDE_KEY && m->sign[t] < 0)                                         \
                for (size_t r = 0; r < n; r++)                                                  \
                    dst[r] = -src[r];                                                           \
            else                                                                                \
                memcpy(dst, src, n * sizeof(T));                                                \
        }                                                                                       \
    }
POLY_SEED(double, poly_seed)
POLY_SEED(float, poly_seed_f32)

#define POLY_APPLY(T, NAME, FWD, EMIT)                                                          \
    static kat_status NAME(const void *state, kat_side side, size_t n, const T *x, size_t ldx,  \
                           T *f, size_t ldf)                                                    \
    {                                                                                           \
        const poly_map *m = state;                                                              \
        T *v = NULL;                                                                            \
        if (!m->direct && n > 0) {                                                              \
            v = kat__alloc_array(m->full_dim, sizeof(T), "polynomial map scratch");              \
            if (!v)                                                                             \
                return KAT_ENOMEM;                                                              \
        }                                                                                       \
        for (size_t i = 0; i < n; i++) {                                                        \
            T *fi = f + i * ldf;                                                                \
            FWD(m, x + i * ldx, v ? v : fi, m->P);                                              \
            if (!m->direct || side == KAT_SIDE_KEY)                                             \
                EMIT(m, side, v ? v : fi, fi);                                                  \
        }                                                                                       \
        kat_free(v);                                                                            \
        return KAT_OK;                                                                          \
    }
POLY_APPLY(double, poly_apply, poly_forward, poly_emit)
POLY_APPLY(float, poly_apply_f32, poly_forward_f32, poly_emit_f32)

#define POLY_VJP(T, NAME, FWD, SEED, BWD)                                                       \
    static kat_status NAME(const void *state, kat_side side, size_t n, const T *x, size_t ldx,  \
                           const T *g, size_t ldg, T *dx, size_t lddx)                          \
    {                                                                                           \
        const poly_map *m = state;                                                              \
        if (n == 0)                                                                             \
            return KAT_OK;                                                                      \
        /* Degrees below P only, plus v[0] (written even when P = 0). */                        \
        const size_t lo = m->blk[m->P] + 1;                                                     \
        T *v = kat__alloc_array(lo, 2 * sizeof(T), "polynomial map vjp scratch");                \
        if (!v)                                                                                 \
            return KAT_ENOMEM;                                                                  \
        T *G = v + lo;                                                                          \
        const T sgn_top = side == KAT_SIDE_KEY && m->sign[m->P] < 0 ? (T)-1 : (T)1;             \
        for (size_t i = 0; i < n; i++) {                                                        \
            const T *gi = g + i * ldg;                                                          \
            FWD(m, x + i * ldx, v, m->P - 1);                                                   \
            SEED(m, side, gi, G);                                                               \
            BWD(m, x + i * ldx, v, gi + m->out_off[m->P], sgn_top, G, dx + i * lddx);           \
        }                                                                                       \
        kat_free(v);                                                                            \
        return KAT_OK;                                                                          \
    }
POLY_VJP(double, poly_vjp, poly_forward, poly_seed, poly_backward)
POLY_VJP(float, poly_vjp_f32, poly_forward_f32, poly_seed_f32, poly_backward_f32)

static double dot(const double *a, const double *b, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

static double poly_score(const void *state, const double *q, const double *k)
{
    const poly_map *m = state;
    return horner(m->coef, m->P, dot(q, k, m->d));
}

/* T_P(z) = sum_{t<=P} z^t/t! by the term recurrence (no factorial to overflow). */
static double taylor_score(const void *state, const double *q, const double *k)
{
    const poly_map *m = state;
    double z = dot(q, k, m->d) / m->tau, term = 1.0, s = 1.0;
    for (int t = 1; t <= m->P && term != 0.0; t++) {
        term *= z / t;
        s += term;
    }
    return s;
}

/* Degree 2, the common case, without the loop; higher orders by the term recurrence. */
static kat_status taylor_dot_kernel_f32(const void *state, size_t n, float *z)
{
    const poly_map *m = state;
    const float inv_tau = (float)(1.0 / m->tau);
    if (m->P == 2) {
        for (size_t i = 0; i < n; i++) {
            float x = z[i] * inv_tau;
            z[i] = 1.0f + x + 0.5f * x * x;
        }
        return KAT_OK;
    }
    for (size_t i = 0; i < n; i++) {
        float x = z[i] * inv_tau, term = 1.0f, s = 1.0f;
        for (int t = 1; t <= m->P && term != 0.0f; t++) {
            term *= x / (float)t;
            s += term;
        }
        z[i] = s;
    }
    return KAT_OK;
}

static const kat_featmap_ops poly_ops = {
    .name = "poly",
    .apply = poly_apply,
    .apply_f32 = poly_apply_f32,
    .score = poly_score,
    .vjp = poly_vjp,
    .vjp_f32 = poly_vjp_f32,
    .destroy = poly_free,
};

static const kat_featmap_ops taylor_ops = {
    .name = "taylor",
    .apply = poly_apply,
    .apply_f32 = poly_apply_f32,
    .score = taylor_score,
    .vjp = poly_vjp,
    .vjp_f32 = poly_vjp_f32,
    .destroy = poly_free,
    .dot_kernel_f32 = taylor_dot_kernel_f32,
};

/* Build the tables. coef (P+1 entries, trimmed) or, when NULL, the Taylor series with tau. */
static kat_status poly_build(const char *who, size_t d, int P, const double *coef, double tau,
                             poly_map **out)
{
    size_t full, dim;
    kat_status st = poly_sizes(who, d, P, coef, &full, &dim);
    if (st)
        return st;
    poly_map *m = kat_calloc(1, sizeof *m);
    if (!m)
        return KAT_ENOMEM;
    m->d = d;
    m->P = P;
    m->full_dim = full;
    m->dim = dim;
    m->tau = tau;
    size_t np = (size_t)P + 1, w = d + 1, ncnt;
    unsigned *mult = NULL;
    if (kat_mul_overflow(np, w, &ncnt)) {
        st = kat__fail(KAT_ERANGE, "%s: a table of (P+1) x (d+1) = %d x %zu entries overflows",
                      who, P + 1, w);
        goto fail;
    }
    m->cnt = kat__alloc_array(ncnt, sizeof(size_t), "polynomial map counts");
    m->blk = kat__alloc_array(np + 1, sizeof(size_t), "polynomial map blocks");
    m->out_off = kat__alloc_array(np, sizeof(size_t), "polynomial map offsets");
    m->sign = kat__alloc_array(np, 1, "polynomial map signs");
    m->fac = kat__alloc_array(full, sizeof(double), "polynomial map factors");
    m->fac32 = kat__alloc_array(full, sizeof(float), "polynomial map factors");
    mult = kat__alloc_array(full, sizeof(unsigned), "polynomial map multiplicities");
    if (coef && (m->coef = kat__alloc_array(np, sizeof(double), "polynomial coefficients")))
        memcpy(m->coef, coef, np * sizeof(double));
    if (!m->cnt || !m->blk || !m->out_off || !m->sign || !m->fac || !m->fac32 || !mult ||
        (coef && !m->coef)) {
        st = KAT_ENOMEM;
        goto fail;
    }
    /* cnt[t][j] = C(j+t-1, t): 1 for t = 0; C(j+t-1, t) = C(j+t-2, t) + C(j+t-2, t-1), i.e.
     * cnt[t][j] = cnt[t][j-1] + cnt[t-1][j]. All are <= full, so no overflow. */
    for (size_t j = 0; j < w; j++)
        m->cnt[j] = 1;
    for (size_t t = 1; t < np; t++) {
        m->cnt[t * w] = 0;
        for (size_t j = 1; j < w; j++)
            m->cnt[t * w + j] = m->cnt[t * w + j - 1] + m->cnt[(t - 1) * w + j];
    }
    m->blk[0] = 0;
    for (size_t t = 0; t < np; t++)
        m->blk[t + 1] = m->blk[t] + m->cnt[t * w + d];
    size_t off = 0;
    int all = 1;
    for (size_t t = 0; t < np; t++) {
        int s = coef ? (coef[t] > 0) - (coef[t] < 0) : 1;
        m->sign[t] = (signed char)s;
        m->out_off[t] = s ? off : SIZE_MAX;
        off += s ? m->blk[t + 1] - m->blk[t] : 0;
        all &= s != 0;
    }
    m->direct = all;
    /* Growth factors: c_t = sqrt|a_t| (kept from the last present degree across gaps), or
     * rho_t = 1/sqrt(t tau) for Taylor. */
    double c_prev = coef ? (coef[0] != 0.0 ? sqrt(fabs(coef[0])) : 1.0) : 1.0;
    m->fac[0] = c_prev;
    mult[0] = 0;
    for (size_t t = 1; t < np; t++) {
        double rho;
        if (coef) {
            double c = coef[t] != 0.0 ? sqrt(fabs(coef[t])) : c_prev;
            rho = c / c_prev;
            c_prev = c;
        } else {
            rho = 1.0 / sqrt((double)t * tau);
        }
        size_t bt = m->blk[t], bp = m->blk[t - 1];
        for (size_t j = 0; j < d; j++) {
            size_t lo = m->cnt[(t - 1) * w + j], len = m->cnt[(t - 1) * w + j + 1];
            size_t base = bt + m->cnt[t * w + j];
            for (size_t r = 0; r < len; r++) {
                /* The parent's largest index is j exactly when it lies past the first lo
                 * entries (those use only indices < j); then j's multiplicity grows by one. */
                unsigned mu = (t > 1 && r >= lo) ? mult[bp + r] + 1 : 1;
                mult[base + r] = mu;
                m->fac[base + r] = rho * sqrt((double)t / mu);
            }
        }
    }
    for (size_t i = 0; i < full; i++)
        m->fac32[i] = (float)m->fac[i];
    kat_free(mult);
    *out = m;
    return KAT_OK;
fail:
    kat_free(mult);
    poly_free(m);
    return st;
}

kat_status kat_featmap_poly_create(const double *coef, size_t ncoef, size_t d, kat_featmap **out)
{
    const char *who = "featmap_poly_create";
    int P = 0;
    kat_status st = poly_check_coef(who, coef, ncoef, d, &P);
    if (st)
        return st;
    if (!out)
        return kat__fail(KAT_EINVAL, "%s: out is NULL", who);
    poly_map *m;
    if ((st = poly_build(who, d, P, coef, 0.0, &m)))
        return st;
    int pos = poly_positive_on_reals(m->coef, P);
    if (pos < 0) {
        poly_free(m);
        return pos == -1 ? KAT_ENOMEM
                         : kat__fail(KAT_ELAPACK, "%s: the eigenvalues of the companion matrix "
                                                 "of f' did not converge", who);
    }
    unsigned flags = KAT_FEATMAP_EXACT | (pos ? KAT_FEATMAP_POSITIVE : 0u);
    return kat_featmap_create(&poly_ops, m, d, m->dim, flags, out);
}

kat_status kat_featmap_poly_from_fn(const kat_fn *f, size_t d, kat_featmap **out)
{
    if (!f)
        return kat__fail(KAT_EINVAL, "featmap_poly_from_fn: f is NULL");
    int deg = kat_fn_poly_coeffs(f, NULL, 0);
    if (deg < 0)
        return kat__fail(KAT_EINVAL, "featmap_poly_from_fn: f = %s is not a polynomial, so it "
                                    "has no exact polynomial feature map", kat_fn_name(f));
    double *c = kat__alloc_array((size_t)deg + 1, sizeof(double), "polynomial coefficients");
    if (!c)
        return KAT_ENOMEM;
    kat_fn_poly_coeffs(f, c, (size_t)deg + 1);
    kat_status st = kat_featmap_poly_create(c, (size_t)deg + 1, d, out);
    kat_free(c);
    return st;
}

kat_status kat_featmap_taylor_create(size_t d, int order, double tau, kat_featmap **out)
{
    const char *who = "featmap_taylor_create";
    if (d == 0)
        return kat__fail(KAT_EINVAL, "%s: the input dimension d must be >= 1 (got 0)", who);
    if (order < 0)
        return kat__fail(KAT_EINVAL, "%s: order P = %d must be >= 0", who, order);
    if (!(tau >= 0.0) || !isfinite(tau))
        return kat__fail(KAT_EINVAL, "%s: temperature tau = %g must be > 0 (or 0 for sqrt(d))",
                        who, tau);
    if (!out)
        return kat__fail(KAT_EINVAL, "%s: out is NULL", who);
    if (tau == 0.0)
        tau = sqrt((double)d);
    poly_map *m;
    kat_status st = poly_build(who, d, order, NULL, tau, &m);
    if (st)
        return st;
    unsigned flags = KAT_FEATMAP_EXACT | (order % 2 == 0 ? KAT_FEATMAP_POSITIVE : 0u);
    return kat_featmap_create(&taylor_ops, m, d, m->dim, flags, out);
}
