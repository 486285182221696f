/* Feature maps of the theory module: exact polynomial and Taylor maps, random Fourier features,
 * FAVOR+ positive random features. Checks exactness against an independent long-double
 * evaluation of f(q.k), dimensions against the multiset count, Monte Carlo means against the
 * kernels within 3 standard errors, orthogonal blocks, gradients against central differences,
 * fp32 against fp64 under an error model, and every rejected input. */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "testutil.h"

static const double EPS = DBL_EPSILON;
static const double EPS32 = FLT_EPSILON;

/* ---- small helpers ---------------------------------------------------------------------- */

static double urand(kat_rng *r, double lo, double hi) { return lo + (hi - lo) * kat_rng_uniform(r); }

/* C(n, k) by the product formula in long double (independent of the library's integer code). */
static double binom_ld(unsigned n, unsigned k)
{
    long double r = 1.0L;
    for (unsigned i = 1; i <= k; i++)
        r = r * (long double)(n - k + i) / (long double)i;
    return (double)roundl(r);
}

static long double dot_ld(const double *a, const double *b, size_t n)
{
    long double s = 0.0L;
    for (size_t i = 0; i < n; i++)
        s += (long double)a[i] * b[i];
    return s;
}

static long double horner_ld(const double *a, int P, long double x)
{
    long double s = a[P];
    for (int t = P - 1; t >= 0; t--)
        s = s * x + a[t];
    return s;
}

/* phi(q).psi(k) through the public validated apply, summed in long double. */
static long double feature_product(const kat_featmap *fm, const double *q, const double *k)
{
    size_t d = kat_featmap_in_dim(fm), D = kat_featmap_out_dim(fm);
    kat_dmat X, F;
    double *fq = malloc(2 * D * sizeof(double));
    X.rows = 1; X.cols = d; X.ld = d; X.data = (double *)q;
    F.rows = 1; F.cols = D; F.ld = D; F.data = fq;
    TU_OK(kat_featmap_apply(fm, KAT_SIDE_QUERY, &X, &F));
    X.data = (double *)k;
    F.data = fq + D;
    TU_OK(kat_featmap_apply(fm, KAT_SIDE_KEY, &X, &F));
    long double s = dot_ld(fq, fq + D, D);
    free(fq);
    return s;
}

/* Features of one row, fp64 (caller frees). */
static double *features(const kat_featmap *fm, kat_side side, const double *x)
{
    size_t d = kat_featmap_in_dim(fm), D = kat_featmap_out_dim(fm);
    double *f = malloc(D * sizeof(double));
    kat_dmat X = {1, d, d, (double *)x}, F = {1, D, D, f};
    TU_OK(kat_featmap_apply(fm, side, &X, &F));
    return f;
}

/* ---- polynomial maps -------------------------------------------------------------------- */

static double poly_dim_formula(const double *a, int P, unsigned d)
{
    double s = 0.0;
    for (int t = 0; t <= P; t++)
        if (a[t] != 0.0)
            s += binom_ld(d + (unsigned)t - 1, (unsigned)t);
    return s;
}

START_TEST(test_poly_exact)
{
    /* Degree <= 4, d <= 16, negative coefficients and gaps included. */
    const double coefs[][5] = {
        {1, 1, 1, 1, 1},        {0, 0, 0, 0, 1},      {1, -2, 0.5, 0, -0.25},
        {0, 3, 0, -1, 0},       {-1.5, 0, 2, 0, 0},   {0.3, 0, 0, 0, 0},
        {0, 1, 0, 0, 0},        {2, -1, 1, -0.5, 0.125},
    };
    const int degs[] = {4, 4, 4, 3, 2, 0, 1, 4};
    const size_t dims[] = {1, 2, 3, 7, 13, 16};
    kat_rng *r;
    TU_OK(kat_rng_create(11, &r));
    for (size_t c = 0; c < sizeof degs / sizeof degs[0]; c++) {
        const double *a = coefs[c];
        int P = degs[c];
        for (size_t di = 0; di < sizeof dims / sizeof dims[0]; di++) {
            size_t d = dims[di];
            kat_featmap *fm;
            TU_OK(kat_featmap_poly_create(a, (size_t)P + 1, d, &fm));
            size_t dim;
            TU_OK(kat_featmap_poly_dim(a, 5, d, &dim));   /* trailing zeros ignored */
            ck_assert_double_eq((double)dim, poly_dim_formula(a, P, (unsigned)d));
            ck_assert_uint_eq(kat_featmap_out_dim(fm), dim);
            ck_assert_uint_eq(kat_featmap_in_dim(fm), d);
            ck_assert(kat_featmap_flags(fm) & KAT_FEATMAP_EXACT);
            double q[16], k[16];
            for (int trial = 0; trial < 6; trial++) {
                for (size_t j = 0; j < d; j++) {
                    q[j] = urand(r, -1, 1);
                    k[j] = urand(r, -1, 1);
                }
                long double ref = horner_ld(a, P, dot_ld(q, k, d));
                long double got = feature_product(fm, q, k);
                /* Error model: the D-term sum of products carries at most ~D eps of
                 * sum_t |a_t| (|q|.|k|)^t, the sum of the absolute terms; 1e-12 of that
                 * scale is the required accuracy (D <= 6000 keeps D eps below it). */
                double qk_abs = 0.0;
                for (size_t j = 0; j < d; j++)
                    qk_abs += fabs(q[j] * k[j]);
                double scale = 0.0;
                for (int t = 0; t <= P; t++)
                    scale += fabs(a[t]) * pow(qk_abs, t);
                ck_assert_msg(fabsl(got - ref) <= 1e-12 * scale,
                              "poly %zu d %zu: got %.17Lg want %.17Lg (scale %g)", c, d, got, ref,
                              scale);
                double sc;
                TU_OK(kat_featmap_score(fm, q, k, &sc));
                ck_assert(fabsl(sc - ref) <= 8 * EPS * scale);
            }
            /* Positive inputs and coefficients: no cancellation, so 1e-12 relative to f. */
            if (c == 0) {
                for (size_t j = 0; j < d; j++) {
                    q[j] = urand(r, 0.1, 1);
                    k[j] = urand(r, 0.1, 1);
                }
                long double ref = horner_ld(a, P, dot_ld(q, k, d));
                ck_assert(fabsl(feature_product(fm, q, k) - ref) <= 1e-12 * fabsl(ref));
            }
            kat_featmap_destroy(fm);
        }
    }
    kat_rng_destroy(r);
}
END_TEST

/* The monomial order, the multinomial weights and the sign on the key side, by hand. */
START_TEST(test_poly_explicit_features)
{
    const double a[3] = {-2.0, 0.0, 3.0};   /* f(x) = -2 + 3x^2 on R^2 */
    kat_featmap *fm;
    TU_OK(kat_featmap_poly_create(a, 3, 2, &fm));
    ck_assert_uint_eq(kat_featmap_out_dim(fm), 4);   /* 1 + C(3, 2) */
    double x[2] = {0.5, -3.0};
    double *fq = features(fm, KAT_SIDE_QUERY, x), *fk = features(fm, KAT_SIDE_KEY, x);
    const double s2 = sqrt(2.0), s3 = sqrt(3.0);
    const double want[4] = {s2, s3 * 0.25, s3 * s2 * 0.5 * -3.0, s3 * 9.0};
    for (int i = 0; i < 4; i++) {
        ck_assert_double_eq_tol(fq[i], want[i], 4 * EPS * fabs(want[i]));
        ck_assert_double_eq_tol(fk[i], i == 0 ? -want[i] : want[i], 4 * EPS * fabs(want[i]));
    }
    ck_assert_int_eq(kat_featmap_flags(fm), KAT_FEATMAP_EXACT);   /* f(0) < 0 */
    free(fq);
    free(fk);
    kat_featmap_destroy(fm);
    /* A constant: one feature, positive, and no gradient (dx is left as it was). */
    TU_OK(kat_featmap_poly_create((const double[]){3.0}, 1, 2, &fm));
    ck_assert_uint_eq(kat_featmap_out_dim(fm), 1);
    ck_assert_uint_eq(kat_featmap_flags(fm), KAT_FEATMAP_EXACT | KAT_FEATMAP_POSITIVE);
    fq = features(fm, KAT_SIDE_KEY, x);
    ck_assert_double_eq_tol(fq[0], sqrt(3.0), 2 * EPS);
    double g[1] = {1.5}, dx[2] = {0.25, -0.5};
    float g32[1] = {1.5f}, dx32[2] = {0.25f, -0.5f}, x32[2] = {0.5f, -3.0f};
    TU_OK(kat_featmap_get_ops(fm)->vjp(kat_featmap_state(fm), KAT_SIDE_QUERY, 1, x, 2, g, 1,
                                       dx, 2));
    TU_OK(kat_featmap_vjp_f32(fm, KAT_SIDE_KEY, 1, x32, 2, g32, 1, dx32, 2));
    ck_assert(dx[0] == 0.25 && dx[1] == -0.5 && dx32[0] == 0.25f && dx32[1] == -0.5f);
    free(fq);
    kat_featmap_destroy(fm);
}
END_TEST

START_TEST(test_poly_positive_flag)
{
    const struct {
        double a[5];
        int n, positive;
    } cases[] = {
        {{3}, 1, 1},                        /* constant > 0 */
        {{-1}, 1, 0},                       /* constant < 0 */
        {{2, 2, 1}, 3, 1},                  /* (1+x)^2 + 1 */
        {{1, 2, 1}, 3, 0},                  /* (1+x)^2: root at -1 */
        {{1, 1, 0.5}, 3, 1},                /* Taylor of exp, order 2 */
        {{0, 0, 1}, 3, 0},                  /* x^2: f(0) = 0 */
        {{-1, 0, -1}, 3, 0},                /* negative leading coefficient */
        {{1, 1}, 2, 0},                     /* odd degree */
        {{0.3, 0, -1, 0, 1}, 5, 1},         /* min 0.05 at x^2 = 1/2 */
        {{0.2, 0, -1, 0, 1}, 5, 0},         /* min -0.05 */
        {{1, -4, 6, -4, 1}, 5, 0},          /* (x-1)^4: a quadruple root */
        {{1, 1, 0.5, 1.0 / 6, 1.0 / 24}, 5, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        kat_featmap *fm;
        TU_OK(kat_featmap_poly_create(cases[i].a, (size_t)cases[i].n, 3, &fm));
        int pos = (kat_featmap_flags(fm) & KAT_FEATMAP_POSITIVE) != 0;
        ck_assert_msg(pos == cases[i].positive, "case %zu: POSITIVE = %d", i, pos);
        kat_featmap_destroy(fm);
    }
}
END_TEST

START_TEST(test_poly_from_fn)
{
    kat_fn *f;
    double c[5] = {1, 4, 6, 4, 1};   /* (1+x)^4 */
    TU_OK(kat_fn_poly(c, 5, &f));
    kat_featmap *fm;
    TU_OK(kat_featmap_poly_from_fn(f, 10, &fm));
    ck_assert_uint_eq(kat_featmap_out_dim(fm), 1001);   /* C(14, 4): all degrees <= 4 */
    double q[10], k[10];
    for (int j = 0; j < 10; j++) {
        q[j] = 0.1 * (j - 4.5);
        k[j] = 0.05 * (j + 1);
    }
    long double ref = powl(1.0L + dot_ld(q, k, 10), 4);
    ck_assert(fabsl(feature_product(fm, q, k) - ref) <= 1e-12 * fabsl(ref));
    kat_featmap_destroy(fm);
    kat_fn_destroy(f);
    TU_OK(kat_fn_pow(3.0, &f));
    TU_OK(kat_featmap_poly_from_fn(f, 4, &fm));
    ck_assert_uint_eq(kat_featmap_out_dim(fm), 20);   /* C(6, 3) */
    ck_assert_int_eq(kat_featmap_flags(fm), KAT_FEATMAP_EXACT);
    kat_featmap_destroy(fm);
    kat_fn_destroy(f);
    TU_OK(kat_fn_builtin("exp", &f));
    TU_EXPECT_ERR(kat_featmap_poly_from_fn(f, 4, &fm), KAT_EINVAL, "not a polynomial");
    kat_fn_destroy(f);
    TU_OK(kat_fn_pow(2.5, &f));
    TU_EXPECT_ERR(kat_featmap_poly_from_fn(f, 4, &fm), KAT_EINVAL, "x^2.5");
    kat_fn_destroy(f);
    TU_EXPECT_ERR(kat_featmap_poly_from_fn(NULL, 4, &fm), KAT_EINVAL, "f is NULL");
}
END_TEST

/* ---- Taylor maps -------------------------------------------------------------------------- */

START_TEST(test_taylor_matches_series)
{
    const int orders[] = {0, 1, 2, 3, 4, 6};
    const size_t dims[] = {1, 5, 16};
    const double taus[] = {0.0, 1.0, 2.5};
    kat_rng *r;
    TU_OK(kat_rng_create(5, &r));
    for (size_t oi = 0; oi < 6; oi++)
        for (size_t di = 0; di < 3; di++)
            for (size_t ti = 0; ti < 3; ti++) {
                int P = orders[oi];
                size_t d = dims[di];
                double tau = taus[ti] == 0.0 ? sqrt((double)d) : taus[ti];
                kat_featmap *fm;
                TU_OK(kat_featmap_taylor_create(d, P, taus[ti], &fm));
                size_t dim;
                TU_OK(kat_featmap_taylor_dim(d, P, &dim));
                ck_assert_double_eq((double)dim, binom_ld((unsigned)(d + P), (unsigned)P));
                ck_assert_uint_eq(kat_featmap_out_dim(fm), dim);
                if (P == 2)
                    ck_assert_uint_eq(dim, 1 + d + d * (d + 1) / 2);
                unsigned want_flags = KAT_FEATMAP_EXACT | (P % 2 == 0 ? KAT_FEATMAP_POSITIVE : 0);
                ck_assert_uint_eq(kat_featmap_flags(fm), want_flags);
                double q[16], k[16];
                for (int trial = 0; trial < 4; trial++) {
                    for (size_t j = 0; j < d; j++) {
                        q[j] = urand(r, -1.5, 1.5);
                        k[j] = urand(r, -1.5, 1.5);
                    }
                    /* sum_{t<=P} z^t/t! with z = q.k/tau, in long double. */
                    long double z = dot_ld(q, k, d) / tau, term = 1.0L, ref = 1.0L, absref = 1.0L;
                    for (int t = 1; t <= P; t++) {
                        term *= z / t;
                        ref += term;
                        absref += fabsl(term);
                    }
                    /* absref bounds the absolute terms only when the signs of q_j k_j agree;
                     * use the absolute dot product for the error scale. */
                    long double za = 0.0L, ta = 1.0L, scale = 1.0L;
                    for (size_t j = 0; j < d; j++)
                        za += fabsl((long double)q[j] * k[j]);
                    za /= tau;
                    for (int t = 1; t <= P; t++) {
                        ta *= za / t;
                        scale += ta;
                    }
                    (void)absref;
                    long double got = feature_product(fm, q, k);
                    ck_assert_msg(fabsl(got - ref) <= 1e-12L * scale,
                                  "P %d d %zu tau %g: got %.17Lg want %.17Lg", P, d, tau, got, ref);
                    double sc;
                    TU_OK(kat_featmap_score(fm, q, k, &sc));
                    ck_assert(fabsl(sc - ref) <= 8 * EPS * scale * (P + 1));
                }
                kat_featmap_destroy(fm);
            }
    kat_rng_destroy(r);
}
END_TEST

/* Base: order 2, tau = 1 is [1, x, x_i x_j / sqrt(2) or x_i x_j for i < j]. */
START_TEST(test_taylor_explicit_and_convergence)
{
    kat_featmap *fm;
    TU_OK(kat_featmap_taylor_create(2, 2, 1.0, &fm));
    double x[2] = {0.75, -2.0};
    double *f = features(fm, KAT_SIDE_QUERY, x);
    const double want[6] = {1.0, 0.75, -2.0, 0.5625 / sqrt(2.0), -1.5, 4.0 / sqrt(2.0)};
    for (int i = 0; i < 6; i++)
        ck_assert_double_eq_tol(f[i], want[i], 4 * EPS * fabs(want[i]));
    free(f);
    kat_featmap_destroy(fm);
    /* A high order reproduces exp(q.k/tau) to the series' truncation error. */
    TU_OK(kat_featmap_taylor_create(3, 24, 0.0, &fm));
    double q[3] = {0.9, -0.4, 0.7}, k[3] = {0.8, 0.3, 0.6};
    double z = (0.72 - 0.12 + 0.42) / sqrt(3.0);
    /* Remainder of exp after order 24 is < z^25/25! e^z, far below eps. */
    ck_assert(fabsl(feature_product(fm, q, k) - expl(z)) <= 64 * EPS * exp(z));
    kat_featmap_destroy(fm);
}
END_TEST

/* ---- random features ------------------------------------------------------------------- */

typedef struct {
    double mean, se, var, var_se;
} mc_stats;

static mc_stats stats_of(const double *s, size_t n)
{
    long double m = 0.0L;
    for (size_t i = 0; i < n; i++)
        m += s[i];
    m /= n;
    long double v = 0.0L, m4 = 0.0L;
    for (size_t i = 0; i < n; i++) {
        long double e = s[i] - m;
        v += e * e;
        m4 += e * e * e * e;
    }
    v /= (n - 1);
    m4 /= n;
    mc_stats st = {(double)m, sqrt((double)v / n), (double)v, sqrt((double)(m4 - v * v) / n)};
    return st;
}

/* Per-frequency samples of M phi(q).psi(k) (their mean is the map's estimate). */
static double *per_frequency(const kat_featmap *fm, const double *q, const double *k, size_t M,
                             int pair)
{
    double *fq = features(fm, KAT_SIDE_QUERY, q), *fk = features(fm, KAT_SIDE_KEY, k);
    double *s = malloc(M * sizeof(double));
    for (size_t m = 0; m < M; m++)
        s[m] = (double)M * (fq[m] * fk[m] + (pair ? fq[M + m] * fk[M + m] : 0.0));
    free(fq);
    free(fk);
    return s;
}

START_TEST(test_rff_monte_carlo)
{
    const size_t M = tu_quick() ? 4000 : 20000;
    /* Delta = q - k = (0.7, -0.2, 0.4): Gaussian kernel exp(-0.69/2) = 0.7082 for sigma 1. */
    double q[3] = {0.9, 0.1, -0.3}, k[3] = {0.2, 0.3, -0.7};
    const double l1 = 0.7 + 0.2 + 0.4, l2sq = 0.49 + 0.04 + 0.16;
    const double sigmas[] = {1.0, 0.8};
    for (int kern = 0; kern < 2; kern++)
        for (int form = 0; form < 2; form++)
            for (int si = 0; si < 2; si++) {
                double sigma = sigmas[si];
                kat_featmap *fm;
                TU_OK(kat_featmap_rff_create((kat_rff_kernel)kern, (kat_rff_form)form, 3, M, sigma,
                                             100 + kern * 4 + form * 2 + si, &fm));
                ck_assert_uint_eq(kat_featmap_out_dim(fm), form == KAT_RFF_PAIR ? 2 * M : M);
                ck_assert_uint_eq(kat_featmap_flags(fm), 0);
                double kv = kern == KAT_RFF_GAUSSIAN ? exp(-l2sq / (2 * sigma * sigma))
                                                     : exp(-l1 / sigma);
                double sc;
                TU_OK(kat_featmap_score(fm, q, k, &sc));
                ck_assert_double_eq_tol(sc, kv, 4 * EPS);
                double *s = per_frequency(fm, q, k, M, form == KAT_RFF_PAIR);
                mc_stats st = stats_of(s, M);
                ck_assert_msg(fabs(st.mean - kv) <= 3 * st.se,
                              "kernel %d form %d sigma %g: mean %g, kernel %g, se %g", kern, form,
                              sigma, st.mean, kv, st.se);
                /* Variance per frequency: E[cos^2(w.D)] - k^2 = (1 + k(2D))/2 - k^2 for the
                 * pair; the phase form adds 1/2 (the cos(w.(q+k) + 2b) term). */
                double k2 = kern == KAT_RFF_GAUSSIAN ? exp(-4 * l2sq / (2 * sigma * sigma))
                                                     : exp(-2 * l1 / sigma);
                double var = (1 + k2) / 2 - kv * kv + (form == KAT_RFF_PHASE ? 0.5 : 0.0);
                ck_assert_msg(fabs(st.var - var) <= 3 * st.var_se, "variance %g, want %g (se %g)",
                              st.var, var, st.var_se);
                free(s);
                kat_featmap_destroy(fm);
            }
}
END_TEST

START_TEST(test_favor_unbiased)
{
    const size_t M = tu_quick() ? 4000 : 20000;
    double q[4] = {0.5, -0.3, 0.2, 0.4}, k[4] = {0.3, 0.4, -0.1, 0.6};
    const double scales[] = {1.0, 0.5};
    for (int si = 0; si < 2; si++) {
        double s = scales[si], kv = exp(s * (double)dot_ld(q, k, 4));
        kat_featmap *fm;
        TU_OK(kat_featmap_favor_create(4, M, s, 0, 7 + si, &fm));
        ck_assert_uint_eq(kat_featmap_flags(fm), KAT_FEATMAP_POSITIVE);
        double sc;
        TU_OK(kat_featmap_score(fm, q, k, &sc));
        ck_assert_double_eq_tol(sc, kv, 4 * EPS * kv);
        double *samples = per_frequency(fm, q, k, M, 0);
        for (size_t m = 0; m < M; m++)
            ck_assert(samples[m] > 0.0);
        mc_stats st = stats_of(samples, M);
        ck_assert_msg(fabs(st.mean - kv) <= 3 * st.se, "iid: mean %g kernel %g se %g", st.mean,
                      kv, st.se);
        free(samples);
        kat_featmap_destroy(fm);
        /* Orthogonal blocks: features within a block are dependent, so replicate whole maps
         * (one block of d = 4 plus a partial block of 2) over independent seeds. */
        const size_t R = tu_quick() ? 500 : 3000;
        double *est = malloc(R * sizeof(double));
        for (size_t rep = 0; rep < R; rep++) {
            TU_OK(kat_featmap_favor_create(4, 6, s, KAT_FAVOR_ORTHOGONAL, 1000 + rep, &fm));
            est[rep] = (double)feature_product(fm, q, k);
            kat_featmap_destroy(fm);
        }
        st = stats_of(est, R);
        ck_assert_msg(fabs(st.mean - kv) <= 3 * st.se, "ortho: mean %g kernel %g se %g", st.mean,
                      kv, st.se);
        free(est);
    }
}
END_TEST

START_TEST(test_favor_orthogonal_blocks)
{
    const size_t d = 8, M = 20;   /* blocks of 8, 8 and 4 rows */
    kat_featmap *fm;
    kat_dmat W;
    TU_OK(kat_featmap_favor_create(d, M, 1.0, KAT_FAVOR_ORTHOGONAL, 3, &fm));
    TU_OK(kat_featmap_random_frequencies(fm, &W));
    ck_assert_uint_eq(W.rows, M);
    ck_assert_uint_eq(W.cols, d);
    /* W W^T restricted to a block is diagonal: |w_i.w_j| <= 4 d eps |w_i| |w_j| for i != j. */
    for (size_t b0 = 0; b0 < M; b0 += d) {
        size_t nb = M - b0 < d ? M - b0 : d;
        for (size_t i = b0; i < b0 + nb; i++)
            for (size_t j = b0; j < b0 + nb; j++) {
                double g = (double)dot_ld(W.data + i * d, W.data + j * d, d);
                double ni = sqrt((double)dot_ld(W.data + i * d, W.data + i * d, d));
                double nj = sqrt((double)dot_ld(W.data + j * d, W.data + j * d, d));
                if (i != j)
                    ck_assert_msg(fabs(g) <= 4 * d * EPS * ni * nj, "rows %zu %zu: %g", i, j, g);
            }
    }
    /* Rows of different blocks are independent, hence not orthogonal in general. */
    double cross = (double)dot_ld(W.data, W.data + d * d, d);
    ck_assert(fabs(cross) > 1e-3);
    kat_featmap_destroy(fm);
    /* Lengths are chi_d: mean |w|^2 = d, variance 2d, within 3 standard errors. */
    const size_t Mbig = 4000;
    TU_OK(kat_featmap_favor_create(d, Mbig, 1.0, KAT_FAVOR_ORTHOGONAL, 4, &fm));
    TU_OK(kat_featmap_random_frequencies(fm, &W));
    double *n2 = malloc(Mbig * sizeof(double));
    for (size_t i = 0; i < Mbig; i++)
        n2[i] = (double)dot_ld(W.data + i * d, W.data + i * d, d);
    mc_stats st = stats_of(n2, Mbig);
    ck_assert_msg(fabs(st.mean - d) <= 3 * st.se, "mean |w|^2 %g", st.mean);
    free(n2);
    kat_featmap_destroy(fm);
    /* The i.i.d. map is not block-orthogonal. */
    TU_OK(kat_featmap_favor_create(d, M, 1.0, 0, 3, &fm));
    TU_OK(kat_featmap_random_frequencies(fm, &W));
    ck_assert(fabs((double)dot_ld(W.data, W.data + d, d)) > 1e-3);
    kat_featmap_destroy(fm);
}
END_TEST

START_TEST(test_favor_stable)
{
    const size_t d = 5, M = 64;
    kat_featmap *plain, *stable;
    TU_OK(kat_featmap_favor_create(d, M, 0.7, 0, 21, &plain));
    TU_OK(kat_featmap_favor_create(d, M, 0.7, KAT_FAVOR_STABLE, 21, &stable));
    double x[5] = {3.0, -2.0, 4.0, 1.0, -3.5};   /* large norm: plain features are tiny */
    double *fp = features(plain, KAT_SIDE_QUERY, x), *fs = features(stable, KAT_SIDE_QUERY, x);
    /* Same features up to one positive per-query factor; the largest is 1/sqrt(M). */
    double ratio = fs[0] / fp[0], mx = 0.0;
    for (size_t m = 0; m < M; m++) {
        ck_assert_double_eq_tol(fs[m] / fp[m], ratio, 64 * EPS * ratio);
        mx = fs[m] > mx ? fs[m] : mx;
    }
    ck_assert_double_eq_tol(mx, 1.0 / sqrt((double)M), 4 * EPS);
    free(fp);
    free(fs);
    /* The key side is never rescaled. */
    fp = features(plain, KAT_SIDE_KEY, x);
    fs = features(stable, KAT_SIDE_KEY, x);
    for (size_t m = 0; m < M; m++)
        ck_assert_double_eq(fp[m], fs[m]);
    free(fp);
    free(fs);
    kat_featmap_destroy(plain);
    kat_featmap_destroy(stable);
}
END_TEST

START_TEST(test_random_deterministic)
{
    double x[3] = {0.3, -0.2, 0.9};
    for (int kind = 0; kind < 3; kind++) {
        kat_featmap *a, *b, *c;
        if (kind < 2) {
            TU_OK(kat_featmap_rff_create((kat_rff_kernel)kind, KAT_RFF_PHASE, 3, 50, 1.0, 9, &a));
            TU_OK(kat_featmap_rff_create((kat_rff_kernel)kind, KAT_RFF_PHASE, 3, 50, 1.0, 9, &b));
            TU_OK(kat_featmap_rff_create((kat_rff_kernel)kind, KAT_RFF_PHASE, 3, 50, 1.0, 10, &c));
        } else {
            TU_OK(kat_featmap_favor_create(3, 50, 1.0, KAT_FAVOR_ORTHOGONAL, 9, &a));
            TU_OK(kat_featmap_favor_create(3, 50, 1.0, KAT_FAVOR_ORTHOGONAL, 9, &b));
            TU_OK(kat_featmap_favor_create(3, 50, 1.0, KAT_FAVOR_ORTHOGONAL, 10, &c));
        }
        double *fa = features(a, KAT_SIDE_QUERY, x), *fb = features(b, KAT_SIDE_QUERY, x);
        double *fc = features(c, KAT_SIDE_QUERY, x);
        ck_assert_int_eq(memcmp(fa, fb, 50 * sizeof(double)), 0);
        ck_assert_int_ne(memcmp(fa, fc, 50 * sizeof(double)), 0);
        free(fa);
        free(fb);
        free(fc);
        kat_featmap_destroy(a);
        kat_featmap_destroy(b);
        kat_featmap_destroy(c);
    }
}
END_TEST

/* ---- every map: gradients, fp32, strided rows --------------------------------------------- */

typedef struct {
    const char *what;
    kat_featmap *fm;
    int family;      /* 0 polynomial, 1 RFF, 2 FAVOR */
    double s;        /* FAVOR scale */
    int P;           /* polynomial degree */
} map_case;

enum { NCASES = 13 };

static void make_cases(map_case *c, size_t d)
{
    const double a[5] = {0.5, -1.0, 0.0, 2.0, -0.75};   /* gap and negative coefficients */
    const double b[4] = {0.0, 0.0, 1.0, 0.5};          /* no constant, no linear term */
    size_t n = 0;
    c[n] = (map_case){"poly a", NULL, 0, 0, 4};
    TU_OK(kat_featmap_poly_create(a, 5, d, &c[n++].fm));
    c[n] = (map_case){"poly b", NULL, 0, 0, 3};
    TU_OK(kat_featmap_poly_create(b, 4, d, &c[n++].fm));
    c[n] = (map_case){"poly c", NULL, 0, 0, 1};   /* degree 1, negative top coefficient */
    TU_OK(kat_featmap_poly_create((const double[]){0.5, -2.0}, 2, d, &c[n++].fm));
    c[n] = (map_case){"taylor 2", NULL, 0, 0, 2};
    TU_OK(kat_featmap_taylor_create(d, 2, 0.0, &c[n++].fm));
    c[n] = (map_case){"taylor 3", NULL, 0, 0, 3};
    TU_OK(kat_featmap_taylor_create(d, 3, 1.5, &c[n++].fm));
    c[n] = (map_case){"taylor 1", NULL, 0, 0, 1};
    TU_OK(kat_featmap_taylor_create(d, 1, 0.0, &c[n++].fm));
    c[n] = (map_case){"rff gauss phase", NULL, 1, 0, 0};
    TU_OK(kat_featmap_rff_create(KAT_RFF_GAUSSIAN, KAT_RFF_PHASE, d, 37, 0.8, 1, &c[n++].fm));
    c[n] = (map_case){"rff gauss pair", NULL, 1, 0, 0};
    TU_OK(kat_featmap_rff_create(KAT_RFF_GAUSSIAN, KAT_RFF_PAIR, d, 37, 1.3, 2, &c[n++].fm));
    c[n] = (map_case){"rff laplace phase", NULL, 1, 0, 0};
    TU_OK(kat_featmap_rff_create(KAT_RFF_LAPLACE, KAT_RFF_PHASE, d, 37, 1.0, 3, &c[n++].fm));
    c[n] = (map_case){"rff laplace pair", NULL, 1, 0, 0};
    TU_OK(kat_featmap_rff_create(KAT_RFF_LAPLACE, KAT_RFF_PAIR, d, 37, 2.0, 4, &c[n++].fm));
    c[n] = (map_case){"favor", NULL, 2, 0.4, 0};
    TU_OK(kat_featmap_favor_create(d, 37, 0.4, 0, 5, &c[n++].fm));
    c[n] = (map_case){"favor ortho", NULL, 2, 1.0, 0};
    TU_OK(kat_featmap_favor_create(d, 37, 1.0, KAT_FAVOR_ORTHOGONAL, 6, &c[n++].fm));
    c[n] = (map_case){"favor stable", NULL, 2, 0.5, 0};
    TU_OK(kat_featmap_favor_create(d, 37, 0.5, KAT_FAVOR_STABLE | KAT_FAVOR_ORTHOGONAL, 7,
                                   &c[n++].fm));
    ck_assert_int_eq(n, NCASES);
}

static void free_cases(map_case *c)
{
    for (int i = 0; i < NCASES; i++)
        kat_featmap_destroy(c[i].fm);
}

/* Frequencies as used in z: sqrt(s) W for FAVOR (caller frees). */
static double *freq_z(const map_case *c)
{
    kat_dmat W;
    TU_OK(kat_featmap_random_frequencies(c->fm, &W));
    double *Wz = malloc(W.rows * W.cols * sizeof(double));
    double r = c->family == 2 ? sqrt(c->s) : 1.0;
    for (size_t i = 0; i < W.rows * W.cols; i++)
        Wz[i] = r * W.data[i];
    return Wz;
}

/* Error scales of one row of a random-feature map: za[m] bounds the size of the argument of
 * feature m (|Wz_m||x| summed, the phase, the FAVOR shift), gm[m] = |g| |d feature / dz|;
 * *zmax = max za. f holds the row's fp64 features. */
static void rf_row_scales(const map_case *c, const double *Wz, size_t M, size_t D, size_t d,
                          const double *x, const double *f, const double *g, double *za,
                          double *gm, double *zmax)
{
    double nx2 = 0.0;
    for (size_t j = 0; j < d; j++)
        nx2 += x[j] * x[j];
    *zmax = 0.0;
    for (size_t m = 0; m < M; m++) {
        za[m] = (c->family == 1 ? 2 * M_PI : 0.0) + 1 + c->s * nx2;   /* phase or shift */
        for (size_t j = 0; j < d; j++)
            za[m] += fabs(Wz[m * d + j] * x[j]);
        *zmax = fmax(*zmax, za[m]);
        double mag = c->family == 1 ? sqrt(2.0 / M) : fabs(f[m]);
        gm[m] = (fabs(g[m]) + (D > M ? fabs(g[M + m]) : 0.0)) * mag;
    }
}

/* Bound on the rounding error of dx_j of a random-feature vjp computed with unit roundoff u:
 * each h_m carries (d+4)(za_m + zmax) u relative error (argument and shift), the GEMM sums M
 * terms, and the FAVOR norm or argmax term adds s |x_j| or max |Wz_mj| times sum |h|. */
static double rf_vjp_bound(const map_case *c, const double *Wz, size_t M, size_t d,
                           const double *x, const double *za, double zmax, const double *gm,
                           size_t j, double u)
{
    double acc = 0.0, tot = 0.0, wmax = 0.0;
    for (size_t m = 0; m < M; m++) {
        double e = gm[m] * ((d + 4) * (za[m] + zmax) + M + 4);
        acc += fabs(Wz[m * d + j]) * e;
        tot += e;
        wmax = fmax(wmax, fabs(Wz[m * d + j]));
    }
    return u * (acc + (c->s * fabs(x[j]) + wmax) * tot + 1.0);
}

static double vjp_dot(const kat_featmap *fm, kat_side side, const double *x, const double *g,
                      const double *v)
{
    size_t d = kat_featmap_in_dim(fm);
    double dx[32] = {0};
    TU_OK(kat_featmap_get_ops(fm)->vjp(kat_featmap_state(fm), side, 1, x, d, g, 0, dx, d));
    return (double)dot_ld(dx, v, d);
}

static long double gdot(const kat_featmap *fm, kat_side side, const double *x, const double *g)
{
    double *f = features(fm, side, x);
    long double s = dot_ld(f, g, kat_featmap_out_dim(fm));
    free(f);
    return s;
}

START_TEST(test_vjp_central_differences)
{
    const size_t dims[] = {1, 3, 6};
    kat_rng *r;
    TU_OK(kat_rng_create(17, &r));
    for (size_t di = 0; di < 3; di++) {
        size_t d = dims[di];
        map_case cs[NCASES];
        make_cases(cs, d);
        for (int ci = 0; ci < NCASES; ci++) {
            const map_case *c = &cs[ci];
            size_t D = kat_featmap_out_dim(c->fm), M = c->family == 1 && D > 37 ? 37 : D;
            ck_assert(kat_featmap_has_vjp(c->fm));
            double *g = malloc(D * sizeof(double)), *Wz = c->family ? freq_z(c) : NULL;
            for (int side = 0; side < 2; side++)
                for (int trial = 0; trial < 3; trial++) {
                    double x[8], v[8], xa[8], xp[8], xm[8];
                    double minx = INFINITY, nx = 0, nv = 0;
                    for (size_t j = 0; j < d; j++) {
                        x[j] = (kat_rng_uniform(r) < 0.5 ? -1 : 1) * urand(r, 0.3, 1.0);
                        v[j] = urand(r, -1, 1);
                        minx = fmin(minx, fabs(x[j]));
                        nx += x[j] * x[j];
                        nv += v[j] * v[j];
                    }
                    nx = sqrt(nx);
                    nv = sqrt(nv);
                    for (size_t i = 0; i < D; i++)
                        g[i] = urand(r, -1, 1);
                    /* Error model: h'' and rounding terms of the central difference,
                     * (h^2/6) L^3 S + K eps S / h, with S = sum |g_i| B_i (B_i bounds |f_i|
                     * near x) and L a bound on the logarithmic derivative along v. */
                    double L, K, S = 0.0;
                    if (c->family == 0) {
                        L = c->P / (minx - 0.01) + 1;
                        K = 4.0 * (c->P + 1);
                    } else {
                        double wv = 0.0, za = 0.0;
                        for (size_t m = 0; m < M; m++) {
                            double t = 0.0, a = 0.0;
                            for (size_t j = 0; j < d; j++) {
                                t += Wz[m * d + j] * v[j];
                                a += fabs(Wz[m * d + j] * x[j]);
                            }
                            wv = fmax(wv, fabs(t));
                            za = fmax(za, a);
                        }
                        L = 2 * wv + c->s * nv * (nx + nv) + 1;
                        K = (d + 4.0) * (za + 2 * M_PI + c->s * nx * nx + 1);
                    }
                    double h = 1e-5 / L;
                    for (size_t j = 0; j < d; j++) {
                        xp[j] = x[j] + h * v[j];
                        xm[j] = x[j] - h * v[j];
                        xa[j] = fabs(x[j]) + 2 * h * fabs(v[j]);
                    }
                    double *B = c->family == 0 ? features(c->fm, KAT_SIDE_QUERY, xa) : NULL;
                    double *f0 = features(c->fm, (kat_side)side, x);
                    double *fpl = features(c->fm, (kat_side)side, xp);
                    for (size_t i = 0; i < D; i++) {
                        double bi = c->family == 0 ? fabs(B[i])
                                    : c->family == 1 ? 1.0 / sqrt((double)M)
                                                     : 1.01 * fmax(fabs(f0[i]), fabs(fpl[i]));
                        S += fabs(g[i]) * bi;
                    }
                    if (c->family == 1)
                        S *= sqrt(2.0);   /* the phase form's c is sqrt(2/M) */
                    long double fd = (gdot(c->fm, (kat_side)side, xp, g) -
                                      gdot(c->fm, (kat_side)side, xm, g)) / (2.0L * h);
                    double an = vjp_dot(c->fm, (kat_side)side, x, g, v);
                    double tol = 10 * ((h * h / 6) * L * L * L * S + K * EPS * S / h);
                    ck_assert_msg(fabsl(an - fd) <= tol,
                                  "%s d %zu side %d: vjp %.12g, differences %.12Lg, tol %g",
                                  c->what, d, side, an, fd, tol);
                    free(B);
                    free(f0);
                    free(fpl);
                }
            free(g);
            free(Wz);
        }
        free_cases(cs);
    }
    kat_rng_destroy(r);
}
END_TEST

/* fp32 apply and vjp against fp64 on the same (float-representable) inputs, strided rows. */
START_TEST(test_fp32_matches_fp64)
{
    const size_t d = 7, n = 5, ldx = 9;
    map_case cs[NCASES];
    make_cases(cs, d);
    kat_rng *r;
    TU_OK(kat_rng_create(23, &r));
    for (int ci = 0; ci < NCASES; ci++) {
        const map_case *c = &cs[ci];
        const kat_featmap_ops *ops = kat_featmap_get_ops(c->fm);
        const void *state = kat_featmap_state(c->fm);
        size_t D = kat_featmap_out_dim(c->fm), ldf = D + 3;
        size_t M = c->family == 1 && D > 37 ? 37 : D;
        float *x32 = malloc(n * ldx * sizeof(float)), *f32 = malloc(n * ldf * sizeof(float));
        float *g32 = malloc(n * ldf * sizeof(float)), *dx32 = malloc(n * ldx * sizeof(float));
        double *x = malloc(n * ldx * sizeof(double)), *f = malloc(n * ldf * sizeof(double));
        double *g = malloc(n * ldf * sizeof(double)), *dx = malloc(n * ldx * sizeof(double));
        double *xa = malloc(n * ldx * sizeof(double)), *ga = malloc(n * ldf * sizeof(double));
        double *A = malloc(n * ldx * sizeof(double));
        double *Wz = c->family ? freq_z(c) : NULL;
        for (size_t i = 0; i < n * ldx; i++) {
            x32[i] = (float)urand(r, -1, 1);
            x[i] = x32[i];
            xa[i] = fabs(x[i]);
        }
        for (size_t i = 0; i < n * ldf; i++) {
            g32[i] = (float)urand(r, -1, 1);
            g[i] = g32[i];
            ga[i] = fabs(g[i]);
        }
        for (int side = 0; side < 2; side++) {
            for (size_t i = 0; i < n * ldx; i++) {   /* vjp accumulates into dx */
                dx32[i] = 0.25f;
                dx[i] = 0.25;
                A[i] = 0.0;
            }
            TU_OK(kat_featmap_apply_f32(c->fm, (kat_side)side, n, x32, ldx, f32, ldf));
            TU_OK(ops->apply(state, (kat_side)side, n, x, ldx, f, ldf));
            TU_OK(kat_featmap_vjp_f32(c->fm, (kat_side)side, n, x32, ldx, g32, ldf, dx32, ldx));
            TU_OK(ops->vjp(state, (kat_side)side, n, x, ldx, g, ldf, dx, ldx));
            if (c->family == 0)   /* the sum of absolute terms of the backward pass */
                TU_OK(ops->vjp(state, KAT_SIDE_QUERY, n, xa, ldx, ga, ldf, A, ldx));
            for (size_t i = 0; i < n; i++) {
                const double *xi = x + i * ldx, *fi = f + i * ldf, *gi = g + i * ldf;
                double zmax = 0.0, *za = malloc(M * sizeof(double)), *gm = malloc(M * sizeof(double));
                if (c->family)
                    rf_row_scales(c, Wz, M, D, d, xi, fi, gi, za, gm, &zmax);
                for (size_t m = 0; m < D; m++) {
                    double got = f32[i * ldf + m], want = fi[m], tol;
                    if (c->family == 0)   /* <= 3 roundings per degree on a product chain */
                        tol = 4.0 * (c->P + 1) * EPS32 * fabs(want) + FLT_MIN;
                    else if (c->family == 1)
                        tol = sqrt(2.0 / M) * (d + 4) * EPS32 * za[m % M];
                    else
                        tol = fabs(want) * (d + 4) * EPS32 * (za[m] + zmax) + FLT_MIN;
                    ck_assert_msg(fabs(got - want) <= tol, "%s side %d row %zu f[%zu]: %.9g vs %.9g",
                                  c->what, side, i, m, got, want);
                }
                for (size_t j = 0; j < d; j++) {
                    double got = dx32[i * ldx + j], want = dx[i * ldx + j], tol;
                    if (c->family == 0)   /* per term <= 4(P+1) roundings; sums of <= D terms */
                        tol = (4.0 * (c->P + 1) + (double)D) * EPS32 * (A[i * ldx + j] + 0.25);
                    else
                        tol = rf_vjp_bound(c, Wz, M, d, xi, za, zmax, gm, j, EPS32);
                    ck_assert_msg(fabs(got - want) <= tol, "%s side %d row %zu dx[%zu]: %.9g vs %.9g "
                                  "(tol %g)", c->what, side, i, j, got, want, tol);
                }
                free(za);
                free(gm);
            }
        }
        free(x32); free(f32); free(g32); free(dx32);
        free(x); free(f); free(g); free(dx); free(xa); free(ga); free(A); free(Wz);
    }
    kat_rng_destroy(r);
    free_cases(cs);
}
END_TEST

/* The fp32 sine and cosine of the random Fourier features across many quadrants and both of
 * their paths (vector reduction for |t| <= 6000, libm above), against fp64: the error model is
 * the rounding of t = w x + b in fp32 plus a few ulp of 1. */
START_TEST(test_fp32_rff_range)
{
    const size_t n = 64, M = 512;
    const double sigmas[] = {0.02, 1e-4};   /* |z| up to ~3000, and beyond 6000 */
    for (int si = 0; si < 2; si++)
        for (int form = 0; form < 2; form++) {
            kat_featmap *fm;
            TU_OK(kat_featmap_rff_create(KAT_RFF_GAUSSIAN, (kat_rff_form)form, 1, M, sigmas[si],
                                         31, &fm));
            size_t D = kat_featmap_out_dim(fm);
            kat_dmat W;
            TU_OK(kat_featmap_random_frequencies(fm, &W));
            float *x32 = malloc(n * sizeof(float)), *f32 = malloc(n * D * sizeof(float));
            double *x = malloc(n * sizeof(double)), *f = malloc(n * D * sizeof(double));
            for (size_t i = 0; i < n; i++) {
                x32[i] = (float)(-1.0 + 2.0 * i / (n - 1));
                x[i] = x32[i];
            }
            TU_OK(kat_featmap_apply_f32(fm, KAT_SIDE_QUERY, n, x32, 1, f32, D));
            TU_OK(kat_featmap_get_ops(fm)->apply(kat_featmap_state(fm), KAT_SIDE_QUERY, n, x, 1,
                                                 f, D));
            double c = form == KAT_RFF_PHASE ? sqrt(2.0 / M) : sqrt(1.0 / M), worst = 0.0;
            for (size_t i = 0; i < n; i++)
                for (size_t m = 0; m < D; m++) {
                    double t = fabs(W.data[m % M] * x[i]) + 2 * M_PI;
                    double tol = c * EPS32 * (2 * t + 4);
                    double err = fabs(f32[i * D + m] - f[i * D + m]);
                    worst = fmax(worst, err / tol);
                    ck_assert_msg(err <= tol, "sigma %g form %d x %g f[%zu]: %.9g vs %.9g",
                                  sigmas[si], form, x[i], m, f32[i * D + m], f[i * D + m]);
                }
            ck_assert(worst > 0.0);   /* the comparison saw fp32 rounding, not a copy */
            free(x32); free(f32); free(x); free(f);
            kat_featmap_destroy(fm);
        }
}
END_TEST

/* Many rows through the validated apply: row i of a batch equals the single-row result (up to
 * the rounding of a GEMM against a GEMV-sized product), the vjp of a batch equals the row-by-row
 * vjp, and an empty batch is fine. */
START_TEST(test_batch_and_empty)
{
    const size_t d = 4, n = 300;   /* more rows than one GEMM block of the vjp */
    map_case cs[NCASES];
    make_cases(cs, d);
    kat_rng *r;
    TU_OK(kat_rng_create(29, &r));
    kat_dmat X;
    TU_OK(kat_dmat_alloc(n, d, &X));
    for (size_t i = 0; i < n * d; i++)
        X.data[i] = urand(r, -1, 1);
    for (int ci = 0; ci < NCASES; ci++) {
        const map_case *c = &cs[ci];
        const kat_featmap *fm = c->fm;
        size_t D = kat_featmap_out_dim(fm), M = c->family == 1 && D > 37 ? 37 : D;
        double *Wz = c->family ? freq_z(c) : NULL;
        double *za = malloc(M * sizeof(double)), *gm = malloc(M * sizeof(double)), zmax = 0;
        kat_dmat F;
        TU_OK(kat_dmat_alloc(n, D, &F));
        TU_OK(kat_featmap_apply(fm, KAT_SIDE_KEY, &X, &F));
        double *g = malloc(n * D * sizeof(double)), *dx = calloc(n * d, sizeof(double));
        for (size_t i = 0; i < n * D; i++)
            g[i] = urand(r, -1, 1);
        const kat_featmap_ops *ops = kat_featmap_get_ops(fm);
        TU_OK(ops->vjp(kat_featmap_state(fm), KAT_SIDE_KEY, n, X.data, d, g, D, dx, d));
        for (size_t i = 0; i < n; i += 37) {
            const double *xi = X.data + i * d;
            double *fi = features(fm, KAT_SIDE_KEY, xi);
            if (c->family)
                rf_row_scales(c, Wz, M, D, d, xi, fi, g + i * D, za, gm, &zmax);
            for (size_t m = 0; m < D; m++) {
                double tol = 4 * EPS * fabs(fi[m]);   /* polynomial maps: identical operations */
                if (c->family == 1)
                    tol = sqrt(2.0 / M) * (d + 4) * EPS * za[m % M];
                else if (c->family == 2)
                    tol = fabs(fi[m]) * (d + 4) * EPS * za[m];
                ck_assert_msg(fabs(F.data[i * D + m] - fi[m]) <= tol, "%s row %zu f[%zu]",
                              c->what, i, m);
            }
            double one[4] = {0};
            TU_OK(ops->vjp(kat_featmap_state(fm), KAT_SIDE_KEY, 1, xi, d, g + i * D, D, one, d));
            for (size_t j = 0; j < d; j++) {
                double tol = c->family ? rf_vjp_bound(c, Wz, M, d, xi, za, zmax, gm, j, EPS)
                                       : 4 * EPS * fabs(one[j]);
                ck_assert_msg(fabs(dx[i * d + j] - one[j]) <= tol, "%s row %zu dx[%zu]: %g vs %g",
                              c->what, i, j, dx[i * d + j], one[j]);
            }
            free(fi);
        }
        kat_dmat E = {0, d, d, NULL}, FE = {0, D, D, NULL};
        TU_OK(kat_featmap_apply(fm, KAT_SIDE_QUERY, &E, &FE));
        TU_OK(ops->vjp(kat_featmap_state(fm), KAT_SIDE_QUERY, 0, X.data, d, g, D, dx, d));
        free(g);
        free(dx);
        free(Wz);
        free(za);
        free(gm);
        kat_dmat_free(&F);
    }
    kat_dmat_free(&X);
    kat_rng_destroy(r);
    free_cases(cs);
}
END_TEST

/* ---- bad input ------------------------------------------------------------------------- */

START_TEST(test_bad_input)
{
    kat_featmap *fm = NULL;
    size_t dim;
    const double a[3] = {1, 2, 3};
    const double nan_c[3] = {1, NAN, 3}, inf_c[2] = {INFINITY, 1}, zero_c[3] = {0, 0, 0};
    /* d = 0 */
    TU_EXPECT_ERR(kat_featmap_poly_create(a, 3, 0, &fm), KAT_EINVAL, "d must be >= 1");
    TU_EXPECT_ERR(kat_featmap_taylor_create(0, 2, 0.0, &fm), KAT_EINVAL, "d must be >= 1");
    TU_EXPECT_ERR(kat_featmap_rff_create(KAT_RFF_GAUSSIAN, KAT_RFF_PHASE, 0, 10, 1.0, 1, &fm),
                  KAT_EINVAL, "d must be >= 1");
    TU_EXPECT_ERR(kat_featmap_favor_create(0, 10, 1.0, 0, 1, &fm), KAT_EINVAL, "d must be >= 1");
    TU_EXPECT_ERR(kat_featmap_taylor_dim(0, 2, &dim), KAT_EINVAL, "d must be >= 1");
    /* M = 0 */
    TU_EXPECT_ERR(kat_featmap_rff_create(KAT_RFF_LAPLACE, KAT_RFF_PAIR, 3, 0, 1.0, 1, &fm),
                  KAT_EINVAL, "M must be >= 1");
    TU_EXPECT_ERR(kat_featmap_favor_create(3, 0, 1.0, KAT_FAVOR_ORTHOGONAL, 1, &fm), KAT_EINVAL,
                  "M must be >= 1");
    /* non-finite or absent coefficients */
    TU_EXPECT_ERR(kat_featmap_poly_create(nan_c, 3, 2, &fm), KAT_EDOM, "coef[1] is nan");
    TU_EXPECT_ERR(kat_featmap_poly_create(inf_c, 2, 2, &fm), KAT_EDOM, "coef[0] is inf");
    TU_EXPECT_ERR(kat_featmap_poly_dim(nan_c, 3, 2, &dim), KAT_EDOM, "coef[1]");
    TU_EXPECT_ERR(kat_featmap_poly_create(zero_c, 3, 2, &fm), KAT_EINVAL, "every coefficient is zero");
    TU_EXPECT_ERR(kat_featmap_poly_create(NULL, 3, 2, &fm), KAT_EINVAL, "coef is NULL");
    TU_EXPECT_ERR(kat_featmap_poly_create(a, 0, 2, &fm), KAT_EINVAL, "ncoef must be >= 1");
    TU_EXPECT_ERR(kat_featmap_poly_create(a, 3, 2, NULL), KAT_EINVAL, "out is NULL");
    /* orders: negative, and so large the dimension overflows (the message gives the size) */
    TU_EXPECT_ERR(kat_featmap_taylor_create(4, -1, 0.0, &fm), KAT_EINVAL, "P = -1");
    TU_EXPECT_ERR(kat_featmap_taylor_dim(4, -3, &dim), KAT_EINVAL, "P = -3");
    TU_EXPECT_ERR(kat_featmap_taylor_create(64, 1000, 0.0, &fm), KAT_ERANGE, "exceeds the limit");
    TU_EXPECT_ERR(kat_featmap_taylor_create(64, 1000, 0.0, &fm), KAT_ERANGE, "e+");
    TU_EXPECT_ERR(kat_featmap_taylor_dim(64, 8, &dim), KAT_ERANGE, "C(d+P, P) = 1.197e+10");
    TU_OK(kat_featmap_taylor_dim(64, 4, &dim));   /* C(68, 4) = 814385 fits */
    ck_assert_uint_eq(dim, 814385);
    TU_EXPECT_ERR(kat_featmap_taylor_create(1, 2147483647, 0.0, &fm), KAT_ERANGE, "exceeds");
    double big[40] = {0};
    big[39] = 1.0;
    TU_EXPECT_ERR(kat_featmap_poly_create(big, 40, 64, &fm), KAT_ERANGE, "degree P = 39");
    TU_EXPECT_ERR(kat_featmap_poly_dim(big, 40, 64, &dim), KAT_ERANGE, "exceeds the limit");
    /* temperatures, bandwidths, scales */
    TU_EXPECT_ERR(kat_featmap_taylor_create(4, 2, -1.0, &fm), KAT_EINVAL, "tau = -1");
    TU_EXPECT_ERR(kat_featmap_taylor_create(4, 2, NAN, &fm), KAT_EINVAL, "tau = nan");
    TU_EXPECT_ERR(kat_featmap_rff_create(KAT_RFF_GAUSSIAN, KAT_RFF_PHASE, 3, 8, 0.0, 1, &fm),
                  KAT_EINVAL, "sigma = 0");
    TU_EXPECT_ERR(kat_featmap_rff_create(KAT_RFF_GAUSSIAN, KAT_RFF_PHASE, 3, 8, -2.0, 1, &fm),
                  KAT_EINVAL, "sigma = -2");
    TU_EXPECT_ERR(kat_featmap_rff_create(KAT_RFF_LAPLACE, KAT_RFF_PHASE, 3, 8, INFINITY, 1, &fm),
                  KAT_EINVAL, "sigma = inf");
    TU_EXPECT_ERR(kat_featmap_rff_create((kat_rff_kernel)7, KAT_RFF_PHASE, 3, 8, 1.0, 1, &fm),
                  KAT_EINVAL, "kernel = 7");
    TU_EXPECT_ERR(kat_featmap_rff_create(KAT_RFF_GAUSSIAN, (kat_rff_form)5, 3, 8, 1.0, 1, &fm),
                  KAT_EINVAL, "form = 5");
    TU_EXPECT_ERR(kat_featmap_rff_create(KAT_RFF_GAUSSIAN, KAT_RFF_PAIR, 3, (size_t)1 << 31, 1.0,
                                         1, &fm), KAT_ERANGE, "limit");
    TU_EXPECT_ERR(kat_featmap_favor_create(3, 8, 0.0, 0, 1, &fm), KAT_EINVAL, "scale = 0");
    TU_EXPECT_ERR(kat_featmap_favor_create(3, 8, -1.0, 0, 1, &fm), KAT_EINVAL, "scale = -1");
    TU_EXPECT_ERR(kat_featmap_favor_create(3, 8, 1.0, 0x10, 1, &fm), KAT_EINVAL, "flags");
    TU_EXPECT_ERR(kat_featmap_favor_create(3, 8, 1.0, 0, 1, NULL), KAT_EINVAL, "out is NULL");
    ck_assert_ptr_null(fm);   /* no failed call wrote it */
    /* frequencies of a map that has none */
    kat_dmat W;
    TU_OK(kat_featmap_taylor_create(3, 2, 0.0, &fm));
    TU_EXPECT_ERR(kat_featmap_random_frequencies(fm, &W), KAT_EINVAL, "not a random feature map");
    TU_EXPECT_ERR(kat_featmap_random_frequencies(NULL, &W), KAT_EINVAL, "fm is NULL");
    /* the validated apply refuses non-finite input */
    double x[3] = {1, NAN, 0}, f[10];
    kat_dmat X = {1, 3, 3, x}, F = {1, 10, 10, f};
    TU_EXPECT_ERR(kat_featmap_apply(fm, KAT_SIDE_QUERY, &X, &F), KAT_EDOM, "X");
    kat_featmap_destroy(fm);
    kat_featmap_destroy(NULL);
}
END_TEST

/* Every allocation of every constructor (and of a scratch-using apply) may fail: the call
 * reports it, writes no output and leaks nothing (checked by the sanitizer and valgrind runs). */
START_TEST(test_allocation_failures)
{
    const double a[4] = {0, 1, 0, -2}, even[5] = {1, 1, 0.5, 0, 0.25};   /* even: positivity test */
    for (int kind = 0; kind < 6; kind++) {
        int succeeded = 0;
        for (size_t k = 1; k < 100 && !succeeded; k++) {
            kat_featmap *fm = NULL;
            kat_debug_fail_alloc_at(k);
            kat_status st;
            switch (kind) {
            case 0: st = kat_featmap_poly_create(a, 4, 5, &fm); break;
            case 1: st = kat_featmap_taylor_create(5, 3, 0.0, &fm); break;
            case 2: st = kat_featmap_rff_create(KAT_RFF_GAUSSIAN, KAT_RFF_PHASE, 5, 9, 1, 1, &fm); break;
            case 3: st = kat_featmap_favor_create(5, 9, 1, KAT_FAVOR_ORTHOGONAL, 1, &fm); break;
            case 4: st = kat_featmap_poly_create(even, 5, 3, &fm); break;
            default: {
                kat_debug_fail_alloc_at(0);
                TU_OK(kat_featmap_poly_create(a, 4, 5, &fm));   /* gaps: apply needs scratch */
                double x[5] = {1, 2, 3, 4, 5}, f[64];
                kat_dmat X = {1, 5, 5, x}, F = {1, kat_featmap_out_dim(fm), 64, f};
                kat_debug_fail_alloc_at(k);
                st = kat_featmap_apply(fm, KAT_SIDE_QUERY, &X, &F);
                kat_debug_fail_alloc_at(0);
                kat_featmap_destroy(fm);
                fm = NULL;
                if (st == KAT_OK)
                    succeeded = 1;
                else
                    ck_assert_int_eq(st, KAT_ENOMEM);
                continue;
            }
            }
            kat_debug_fail_alloc_at(0);
            if (st == KAT_OK) {
                succeeded = 1;
                kat_featmap_destroy(fm);
            } else {
                ck_assert_msg(st == KAT_ENOMEM, "kind %d, failure %zu: %s", kind, k,
                              kat_strerror(st));
                ck_assert_ptr_null(fm);
            }
        }
        ck_assert_msg(succeeded, "kind %d never succeeded", kind);
    }
}
END_TEST

/* ---- the spec grammar ------------------------------------------------------------------- */

/* phi(x) of both maps on the same rows is bitwise equal (same map, same seed). */
static void assert_same_features(kat_featmap *a, kat_featmap *b, size_t d)
{
    ck_assert_uint_eq(kat_featmap_out_dim(a), kat_featmap_out_dim(b));
    ck_assert_uint_eq(kat_featmap_flags(a), kat_featmap_flags(b));
    size_t D = kat_featmap_out_dim(a), n = 5;
    double x[5 * 8], fa[5 * 64], fb[5 * 64];
    ck_assert(d <= 8 && D <= 64);
    for (size_t i = 0; i < n * d; i++)
        x[i] = 0.3 * sin(1.7 * (double)i + 0.2);
    kat_dmat X = {n, d, d, x}, FA = {n, D, D, fa}, FB = {n, D, D, fb};
    for (int side = 0; side < 2; side++) {
        ck_assert_int_eq(kat_featmap_apply(a, (kat_side)side, &X, &FA), KAT_OK);
        ck_assert_int_eq(kat_featmap_apply(b, (kat_side)side, &X, &FB), KAT_OK);
        ck_assert(memcmp(fa, fb, n * D * sizeof(double)) == 0);
    }
}

START_TEST(test_spec_spellings)
{
    const size_t d = 4;
    const uint64_t seed = 7;
    kat_featmap *a = NULL, *b = NULL;
    /* taylor2 and taylor:2: the Taylor map of exp(q.k / sqrt d) */
    ck_assert_int_eq(kat_featmap_parse("taylor2", d, seed, &a), KAT_OK);
    ck_assert_int_eq(kat_featmap_parse("taylor:2", d, seed, &b), KAT_OK);
    assert_same_features(a, b, d);
    kat_featmap_destroy(b);
    ck_assert_int_eq(kat_featmap_taylor_create(d, 2, 2.0, &b), KAT_OK);   /* tau = sqrt 4 */
    assert_same_features(a, b, d);
    kat_featmap_destroy(a);
    kat_featmap_destroy(b);
    struct {
        const char *spec;
        kat_status (*direct)(kat_featmap **);
    } cases[] = {
        {"favor:16:ortho", NULL}, {"favor:16:stable:ortho", NULL}, {"rff:8:pair", NULL},
        {"rff-laplace:8", NULL}, {"elu1", NULL}, {"poly:(1+x)^2", NULL},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        kat_featmap_spec s;
        ck_assert_int_eq(kat_featmap_spec_parse(cases[c].spec, &s), KAT_OK);
        ck_assert_int_eq(kat_featmap_spec_create(&s, d, seed, &a), KAT_OK);
        switch (c) {
        case 0:
            ck_assert_int_eq(kat_featmap_favor_create(d, 16, 0.5, KAT_FAVOR_ORTHOGONAL, seed, &b),
                             KAT_OK);
            break;
        case 1:
            ck_assert_int_eq(kat_featmap_favor_create(d, 16, 0.5,
                                                      KAT_FAVOR_ORTHOGONAL | KAT_FAVOR_STABLE,
                                                      seed, &b), KAT_OK);
            break;
        case 2:
            ck_assert_int_eq(kat_featmap_rff_create(KAT_RFF_GAUSSIAN, KAT_RFF_PAIR, d, 8,
                                                    sqrt(2.0), seed, &b), KAT_OK);
            break;
        case 3:
            ck_assert_int_eq(kat_featmap_rff_create(KAT_RFF_LAPLACE, KAT_RFF_PHASE, d, 8,
                                                    sqrt(2.0), seed, &b), KAT_OK);
            break;
        case 4:
            ck_assert_int_eq(kat_featmap_elu1_create(d, &b), KAT_OK);
            break;
        default: {
            const double coef[] = {1, 2, 1};
            ck_assert_int_eq(kat_featmap_poly_create(coef, 3, d, &b), KAT_OK);
        }
        }
        assert_same_features(a, b, d);
        kat_featmap_destroy(a);
        kat_featmap_destroy(b);
    }
}
END_TEST

START_TEST(test_spec_errors)
{
    kat_featmap_spec s;
    memset(&s, 0x5a, sizeof s);
    const kat_featmap_spec before = s;
    struct {
        const char *spec;
        kat_status st;
        const char *msg;
    } cases[] = {
        {"favor:0", KAT_EINVAL, "map 'favor:0': the feature count M must be >= 1"},
        {"rff:0:pair", KAT_EINVAL, "map 'rff:0:pair': the feature count M must be >= 1"},
        {"rff", KAT_EPARSE, "map 'rff': rff needs a feature count, e.g. rff:256"},
        {"rff:12x", KAT_EPARSE, "map 'rff:12x': '12x' is not a feature count M"},
        {"favor:8:orth", KAT_EPARSE,
         "map 'favor:8:orth': unknown option 'orth' (expected ortho or stable)"},
        {"rff:8:ortho", KAT_EPARSE, "map 'rff:8:ortho': unknown option 'ortho' (expected pair)"},
        {"taylor", KAT_EPARSE,
         "map 'taylor': taylor needs an order P >= 0 (taylor:P or taylorP), got ''"},
        {"taylor:-1", KAT_EPARSE,
         "map 'taylor:-1': taylor needs an order P >= 0 (taylor:P or taylorP), got '-1'"},
        {"taylor2000000", KAT_EINVAL, "map 'taylor2000000': the order P must be <= 1000000"},
        {"poly:", KAT_EPARSE, "map 'poly:': poly needs an expression in x, e.g. poly:(1+x)^2"},
        {"elu1:2", KAT_EPARSE, "map 'elu1:2': elu1 takes no argument"},
        {"group:x", KAT_EPARSE, "map 'group:x': group:R needs a rank R >= 0, got 'x'"},
        {"cosine", KAT_EPARSE,
         "unknown map 'cosine' (taylor:P, taylorP, poly:EXPR, rff:M[:pair], "
         "rff-laplace:M[:pair], favor:M[:ortho][:stable], elu1, group[:R])"},
        {"", KAT_EPARSE, "unknown map '' (taylor:P, taylorP, poly:EXPR, rff:M[:pair], "
                         "rff-laplace:M[:pair], favor:M[:ortho][:stable], elu1, group[:R])"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        ck_assert_int_eq(kat_featmap_spec_parse(cases[c].spec, &s), cases[c].st);
        ck_assert_str_eq(kat_last_error(), cases[c].msg);
        ck_assert(memcmp(&s, &before, sizeof s) == 0);   /* untouched on failure */
    }
    ck_assert_int_eq(kat_featmap_spec_parse(NULL, &s), KAT_EINVAL);
    /* values the constructors refuse: named by them */
    kat_featmap *fm = (kat_featmap *)&s;
    ck_assert_int_eq(kat_featmap_parse("taylor:2", 0, 1, &fm), KAT_EINVAL);
    ck_assert(fm == (kat_featmap *)&s);
    ck_assert_int_eq(kat_featmap_spec_parse("rff:8", &s), KAT_OK);
    s.scale = -1;
    ck_assert_int_eq(kat_featmap_spec_create(&s, 4, 1, &fm), KAT_EINVAL);
    ck_assert_str_eq(kat_last_error(),
                     "featmap_spec_create: rff map: sigma = -1 must be > 0 and finite");
    ck_assert_int_eq(kat_featmap_spec_parse("poly:x", &s), KAT_OK);
    s.scale = 2;
    ck_assert_int_eq(kat_featmap_spec_create(&s, 4, 1, &fm), KAT_EINVAL);
    ck_assert_str_eq(kat_last_error(), "featmap_spec_create: a poly map has no scale (got 2)");
    ck_assert(fm == (kat_featmap *)&s);
}
END_TEST

/* The normalised Taylor maps compute T_P(cos(q, k)) whatever d is (FAST's Fastmax), and
 * kat_featmap_spec_kernel gives the kernel each map stands for. */
START_TEST(test_spec_norm_and_kernel)
{
    const size_t d = 9;
    double q[9], k[9], qc[9], kc[9], mq = 0, mk = 0;
    for (size_t j = 0; j < d; j++) {
        q[j] = sin(0.9 * (double)j + 0.1);
        k[j] = cos(1.3 * (double)j);
        mq += q[j] / (double)d;
        mk += k[j] / (double)d;
    }
    double qq = 0, kk = 0, qk = 0;
    for (size_t j = 0; j < d; j++) {
        qc[j] = q[j] - mq, kc[j] = k[j] - mk;
        qq += qc[j] * qc[j], kk += kc[j] * kc[j], qk += qc[j] * kc[j];
    }
    const double c = qk / sqrt(qq * kk);
    for (int order = 1; order <= 2; order++) {
        kat_featmap_spec s;
        ck_assert_int_eq(kat_featmap_spec_parse(order == 1 ? "taylor1" : "taylor2", &s), KAT_OK);
        s.norm = 1;
        kat_featmap *fm;
        ck_assert_int_eq(kat_featmap_spec_create(&s, d, 0, &fm), KAT_OK);
        double v, x = order == 1 ? 0.5 * c : c;
        ck_assert_int_eq(kat_featmap_score(fm, q, k, &v), KAT_OK);
        ck_assert_double_eq_tol(v, order == 1 ? 1 + x : 1 + x + x * x / 2, 1e-13);
        ck_assert(kat_featmap_flags(fm) & KAT_FEATMAP_POSITIVE);
        ck_assert_int_eq(kat_featmap_spec_kernel(&s, fm, q, k, &v), KAT_ENOTSUP);
        kat_featmap_destroy(fm);
    }
    /* the kernels: exp(q.k / sqrt d) for taylor (not the series), the map's score otherwise */
    double dot = 0, l2 = 0;
    for (size_t j = 0; j < d; j++)
        dot += q[j] * k[j], l2 += (q[j] - k[j]) * (q[j] - k[j]);
    const struct {
        const char *spec;
        double want;
    } kern[] = {{"taylor:3", exp(dot / 3.0)}, {"favor:4", exp(dot / 3.0)},
                {"rff:4", exp(-l2 / (2 * 3.0))}, {"poly:1-x^2", 1 - dot * dot}};
    for (size_t t = 0; t < sizeof kern / sizeof kern[0]; t++) {
        kat_featmap_spec s;
        kat_featmap *fm;
        double v = 0;
        ck_assert_int_eq(kat_featmap_spec_parse(kern[t].spec, &s), KAT_OK);
        ck_assert_int_eq(kat_featmap_spec_create(&s, d, 3, &fm), KAT_OK);
        ck_assert_int_eq(kat_featmap_spec_kernel(&s, fm, q, k, &v), KAT_OK);
        ck_assert_double_eq_tol(v, kern[t].want, 1e-12 * fabs(kern[t].want));
        kat_featmap_destroy(fm);
    }
    ck_assert_str_eq(kat_featmap_kind_name(KAT_FEATMAP_KIND_RFF_LAPLACE), "rff-laplace");
    ck_assert_str_eq(kat_featmap_kind_name((kat_featmap_kind)99), "unknown");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("featmaps");
    TCase *tc = tcase_create("featmaps");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_poly_exact);
    tcase_add_test(tc, test_poly_explicit_features);
    tcase_add_test(tc, test_poly_positive_flag);
    tcase_add_test(tc, test_poly_from_fn);
    tcase_add_test(tc, test_taylor_matches_series);
    tcase_add_test(tc, test_taylor_explicit_and_convergence);
    tcase_add_test(tc, test_rff_monte_carlo);
    tcase_add_test(tc, test_favor_unbiased);
    tcase_add_test(tc, test_favor_orthogonal_blocks);
    tcase_add_test(tc, test_favor_stable);
    tcase_add_test(tc, test_random_deterministic);
    tcase_add_test(tc, test_vjp_central_differences);
    tcase_add_test(tc, test_fp32_matches_fp64);
    tcase_add_test(tc, test_fp32_rff_range);
    tcase_add_test(tc, test_batch_and_empty);
    tcase_add_test(tc, test_bad_input);
    tcase_add_test(tc, test_allocation_failures);
    tcase_add_test(tc, test_spec_spellings);
    tcase_add_test(tc, test_spec_errors);
    tcase_add_test(tc, test_spec_norm_and_kernel);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
