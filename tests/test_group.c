/* Group spectra: the Walsh-Hadamard transform (FFTW against a butterfly and the definition),
 * hyperrectangle spectra against a dense eigensolver, Krawtchouk polynomials against exact
 * integer arithmetic, circulant spectra against the DFT sum, and character feature maps. */
#include <float.h>
#include <gsl/gsl_sf_gamma.h>
#include <lapacke.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "testutil.h"

static double f_exp_neg(double x, void *p) { (void)p; return exp(-x); }
static double f_exp_pos(double x, void *p) { (void)p; return exp(x); }
static double f_relu13(double x, void *p) { (void)p; return x > 1.3 ? x - 1.3 : 0.0; }
static double f_inv(double x, void *p) { (void)p; return 1.0 / x; }
static double f_inf_above_2(double x, void *p) { (void)p; return x > 2.0 ? INFINITY : x; }

static kat_fn *cb(kat_fn_scalar s, const char *name)
{
    kat_fn *f = NULL;
    TU_OK(kat_fn_callback(s, NULL, NULL, name, &f));
    return f;
}

static void random_sides(double *a, size_t d, unsigned seed)
{
    kat_rng *r = NULL;
    TU_OK(kat_rng_create(seed, &r));
    for (size_t t = 0; t < d; t++)
        a[t] = 0.5 + kat_rng_uniform(r);
    kat_rng_destroy(r);
}

/* The definition, O(4^d). */
static void wht_naive(const double *x, double *y, size_t d)
{
    size_t n = (size_t)1 << d;
    for (size_t S = 0; S < n; S++) {
        double s = 0.0;
        for (size_t T = 0; T < n; T++)
            s += __builtin_parityll(S & T) ? -x[T] : x[T];
        y[S] = s;
    }
}

static double sum_abs(const double *x, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += fabs(x[i]);
    return s;
}

START_TEST(test_wht_matches_butterfly_and_definition)
{
    size_t dmax = tu_quick() ? 9 : 12;
    for (size_t d = 0; d <= dmax; d++) {
        size_t n = (size_t)1 << d;
        double *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y), *z = malloc(n * sizeof *z),
               *ref = malloc(n * sizeof *ref);
        kat_rng *r = NULL;
        TU_OK(kat_rng_create(100 + d, &r));
        for (size_t i = 0; i < n; i++)
            x[i] = kat_rng_gaussian(r, 1.0);
        kat_rng_destroy(r);
        memcpy(y, x, n * sizeof *x);
        memcpy(z, x, n * sizeof *x);
        TU_OK(kat_group_wht(y, d));
        TU_OK(kat_group_wht_butterfly(z, d));
        /* Both sum 2^d terms through d levels: each within d eps sum|x| of the exact value. */
        double tol = (double)(d + 1) * DBL_EPSILON * sum_abs(x, n);
        if (d <= 10) {
            wht_naive(x, ref, d);
            for (size_t i = 0; i < n; i++) {
                ck_assert_msg(fabs(y[i] - ref[i]) <= 2 * tol, "d=%zu S=%zu fftw %g ref %g", d, i,
                              y[i], ref[i]);
                ck_assert_msg(fabs(z[i] - ref[i]) <= 2 * tol, "d=%zu S=%zu butterfly", d, i);
            }
        }
        for (size_t i = 0; i < n; i++)
            ck_assert_msg(fabs(y[i] - z[i]) <= 2 * tol, "d=%zu S=%zu", d, i);
        /* H H = 2^d I. */
        TU_OK(kat_group_wht(y, d));
        for (size_t i = 0; i < n; i++)
            ck_assert(fabs(y[i] - (double)n * x[i]) <= 4 * (double)n * tol);
        free(x), free(y), free(z), free(ref);
    }
}
END_TEST

START_TEST(test_wht_errors)
{
    double x[2] = {1, 2};
    TU_EXPECT_ERR(kat_group_wht(NULL, 3), KAT_EINVAL, "x is NULL");
    TU_EXPECT_ERR(kat_group_wht_butterfly(NULL, 1), KAT_EINVAL, "x is NULL");
    TU_EXPECT_ERR(kat_group_wht(x, KAT_GROUP_MAX_D + 1), KAT_ERANGE, "2^31");
    TU_EXPECT_ERR(kat_group_wht(x, KAT_GROUP_MAX_D + 1), KAT_ERANGE, "GiB");
    TU_EXPECT_ERR(kat_group_wht_butterfly(x, 200), KAT_ERANGE, "do not fit in memory");
    TU_OK(kat_group_wht(x, 0));   /* d = 0: one value, unchanged */
    ck_assert(x[0] == 1 && x[1] == 2);
    TU_OK(kat_group_wht(x, 1));
    ck_assert(x[0] == 3 && x[1] == -1);
}
END_TEST

typedef struct {
    size_t d;
    int ok;
} wht_job;

static void *wht_thread(void *p)
{
    wht_job *job = p;
    size_t n = (size_t)1 << job->d;
    double *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y);
    job->ok = 1;
    for (int rep = 0; rep < 20; rep++) {
        for (size_t i = 0; i < n; i++)
            x[i] = y[i] = (double)((i * 7 + (size_t)rep) % 13) - 6.0;   /* small integers: exact */
        if (kat_group_wht(x, job->d) || kat_group_wht_butterfly(y, job->d))
            job->ok = 0;
        for (size_t i = 0; i < n; i++)
            if (x[i] != y[i])
                job->ok = 0;
    }
    free(x), free(y);
    return NULL;
}

START_TEST(test_wht_threads)
{
    /* Plans are created and destroyed from several threads at once; results stay exact. */
    pthread_t th[4];
    wht_job jobs[4];
    for (int i = 0; i < 4; i++) {
        jobs[i].d = 3 + (size_t)i * 2;
        pthread_create(&th[i], NULL, wht_thread, &jobs[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        ck_assert_msg(jobs[i].ok, "thread %d", i);
    }
}
END_TEST

/* Dense eigenvalues (ascending) of a row-major n x n symmetric matrix, by dsyevd. */
static void dense_eigs(const kat_dmat *D, double *w)
{
    size_t n = D->rows;
    double *c = malloc(n * n * sizeof *c);
    memcpy(c, D->data, n * n * sizeof *c);
    ck_assert_int_eq(LAPACKE_dsyevd(LAPACK_ROW_MAJOR, 'N', 'L', (int)n, c, (int)n, w), 0);
    free(c);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

START_TEST(test_hyperrect_spectrum_dense)
{
    kat_fn *fs[4] = {cb(f_exp_neg, "exp(-x)"), cb(f_exp_pos, "exp(x)"), cb(f_relu13, "relu"),
                     NULL};
    TU_OK(kat_fn_builtin("sqrt", &fs[3]));
    for (size_t d = 1; d <= 7; d++) {
        size_t n = (size_t)1 << d;
        double a[8];
        random_sides(a, d, 7 + (unsigned)d);
        for (int k = 0; k < 4; k++) {
            kat_dmat D;
            TU_OK(kat_dmat_alloc(n, n, &D));
            TU_OK(kat_group_hyperrect_matrix(fs[k], a, d, &D));
            /* Entry (b, c) is f of the l1 distance between corners b and c. */
            for (size_t b = 0; b < n; b++)
                for (size_t c = 0; c < n; c++) {
                    double dist = 0.0;
                    for (size_t t = 0; t < d; t++)
                        dist += ((b ^ c) >> t & 1) ? a[t] : 0.0;
                    ck_assert(D.data[b * n + c] == kat_fn_eval1(fs[k], dist));
                }
            double *lam = malloc(n * sizeof *lam), *g = malloc(n * sizeof *g),
                   *w = malloc(n * sizeof *w), *v = malloc(n * sizeof *v);
            TU_OK(kat_group_hyperrect_spectrum(fs[k], a, d, lam));
            TU_OK(kat_group_hyperrect_values(fs[k], a, d, g));
            double tol = kat_group_spectrum_tol(g, d);
            /* Each chi_S is an eigenvector: D chi_S = lambda_S chi_S (a dense matvec, whose
             * rounding is below n eps sum|g|). */
            for (size_t S = 0; S < n; S++) {
                for (size_t b = 0; b < n; b++) {
                    double s = 0.0;
                    for (size_t c = 0; c < n; c++)
                        s += D.data[b * n + c] * (__builtin_parityll(S & c) ? -1.0 : 1.0);
                    double want = lam[S] * (__builtin_parityll(S & b) ? -1.0 : 1.0);
                    ck_assert_msg(fabs(s - want) <= tol + (double)n * DBL_EPSILON * sum_abs(g, n),
                                  "d=%zu f=%d S=%zu b=%zu: %g vs %g", d, k, S, b, s, want);
                }
            }
            dense_eigs(&D, w);
            memcpy(v, lam, n * sizeof *v);
            qsort(v, n, sizeof *v, cmp_double);
            double scale = fmax(fabs(w[0]), fabs(w[n - 1]));
            for (size_t i = 0; i < n; i++)   /* dsyevd: backward stable, O(n eps ||D||) */
                ck_assert_msg(fabs(v[i] - w[i]) <= tol + 8.0 * (double)n * DBL_EPSILON * scale,
                              "d=%zu f=%d i=%zu: %.17g vs %.17g", d, k, i, v[i], w[i]);
            free(lam), free(g), free(w), free(v);
            kat_dmat_free(&D);
        }
    }
    for (int k = 0; k < 4; k++)
        kat_fn_destroy(fs[k]);
}
END_TEST

START_TEST(test_laplace_closed_form)
{
    /* f = exp(-x): g factorises over coordinates, so lambda_S = prod_{t not in S}(1 + e^-a_t)
     * prod_{t in S}(1 - e^-a_t). */
    kat_fn *f = cb(f_exp_neg, "exp(-x)");
    size_t d = tu_quick() ? 8 : 12, n = (size_t)1 << d;
    double a[12];
    random_sides(a, d, 3);
    double *lam = malloc(n * sizeof *lam);
    TU_OK(kat_group_hyperrect_spectrum(f, a, d, lam));
    for (size_t S = 0; S < n; S++) {
        double p = 1.0;
        for (size_t t = 0; t < d; t++)
            p *= (S >> t & 1) ? -expm1(-a[t]) : 1.0 + exp(-a[t]);
        ck_assert_msg(fabs(lam[S] - p) <= 1e-13 * lam[0], "S=%zu %.17g vs %.17g", S, lam[S], p);
        ck_assert(lam[S] > 0);
    }
    free(lam);
    kat_fn_destroy(f);
}
END_TEST

START_TEST(test_hyperrect_errors_leave_output)
{
    kat_fn *f = cb(f_exp_neg, "exp(-x)"), *finf = cb(f_inf_above_2, "inf-above-2");
    double a[3] = {1.0, 0.7, 1.2}, out[8];
    for (int i = 0; i < 8; i++)
        out[i] = 42.0;
    TU_EXPECT_ERR(kat_group_hyperrect_spectrum(NULL, a, 3, out), KAT_EINVAL, "f is NULL");
    TU_EXPECT_ERR(kat_group_hyperrect_spectrum(f, NULL, 3, out), KAT_EINVAL, "sides a");
    TU_EXPECT_ERR(kat_group_hyperrect_spectrum(f, a, 3, NULL), KAT_EINVAL, "NULL");
    double bad[3] = {1.0, 0.0, 1.0};
    TU_EXPECT_ERR(kat_group_hyperrect_spectrum(f, bad, 3, out), KAT_EINVAL, "a[1] = 0");
    bad[1] = -2.0;
    TU_EXPECT_ERR(kat_group_hyperrect_values(f, bad, 3, out), KAT_EINVAL, "must be > 0");
    bad[1] = NAN;
    TU_EXPECT_ERR(kat_group_hyperrect_spectrum(f, bad, 3, out), KAT_EDOM, "a[1]");
    /* f is infinite where <a, T> > 2: only T = {0,1,2} (sum 2.9) and {0,2} (2.2). */
    TU_EXPECT_ERR(kat_group_hyperrect_spectrum(finf, a, 3, out), KAT_EDOM, "inf-above-2");
    TU_EXPECT_ERR(kat_group_hyperrect_spectrum(finf, a, 3, out), KAT_EDOM, "subset T = 0x5");
    TU_EXPECT_ERR(kat_group_hyperrect_spectrum(f, a, 40, out), KAT_ERANGE, "2^40");
    for (int i = 0; i < 8; i++)
        ck_assert(out[i] == 42.0);   /* failed calls leave the output untouched */
    kat_dmat D;
    TU_OK(kat_dmat_alloc(8, 7, &D));
    TU_EXPECT_ERR(kat_group_hyperrect_matrix(f, a, 3, &D), KAT_EINVAL, "expected 2^3");
    TU_EXPECT_ERR(kat_group_hyperrect_matrix(f, a, 3, NULL), KAT_EINVAL, "D");
    kat_dmat_free(&D);
    /* d = 0: one corner, lambda = f(0). */
    TU_OK(kat_group_hyperrect_spectrum(f, NULL, 0, out));
    ck_assert(out[0] == 1.0);
    kat_fn_destroy(f);
    kat_fn_destroy(finf);
}
END_TEST

static __int128 binom128(int n, int k)
{
    if (k < 0 || k > n)
        return 0;
    __int128 r = 1;
    for (int i = 1; i <= k; i++)
        r = r * (n - k + i) / i;
    return r;
}

START_TEST(test_krawtchouk_exact)
{
    /* Against K_k(j) = sum_i (-1)^i C(j, i) C(d - j, k - i) in exact 128-bit integers. The
     * recurrence divides by exact integers and subtracts bounded values: a few eps. */
    for (int d = 0; d <= 62; d += (d < 12 ? 1 : 5)) {
        size_t m = (size_t)d + 1;
        double *T = malloc(m * m * sizeof *T);
        TU_OK(kat_group_krawtchouk_table((size_t)d, T));
        for (int k = 0; k <= d; k++)
            for (int j = 0; j <= d; j++) {
                __int128 K = 0;
                for (int i = 0; i <= k; i++) {
                    __int128 t = binom128(j, i) * binom128(d - j, k - i);
                    K += (i & 1) ? -t : t;
                }
                double want = (double)K / (double)binom128(d, k);
                ck_assert_msg(fabs(T[(size_t)k * m + (size_t)j] - want) <= 8 * DBL_EPSILON,
                              "d=%d k=%d j=%d: %.17g vs %.17g", d, k, j,
                              T[(size_t)k * m + (size_t)j], want);
            }
        free(T);
    }
}
END_TEST

START_TEST(test_krawtchouk_orthogonal_large_d)
{
    /* Orthogonality sum_x 2^-d C(d, x) k_i(x) k_j(x) = delta_ij / C(d, i) at d = 1000, where the
     * unnormalised recurrence would overflow and a forward-only one loses every digit. */
    size_t d = tu_quick() ? 300 : 1000, m = d + 1;
    double *T = malloc(m * m * sizeof *T), *w = malloc(m * sizeof *w);
    TU_OK(kat_group_krawtchouk_table(d, T));
    for (size_t x = 0; x <= d; x++)
        w[x] = exp(gsl_sf_lnchoose((unsigned)d, (unsigned)x) - (double)d * M_LN2);
    size_t idx[] = {0, 1, 2, 7, d / 3, d / 2 - 1, d / 2, d - 5, d};
    for (size_t p = 0; p < sizeof idx / sizeof idx[0]; p++)
        for (size_t q = 0; q < sizeof idx / sizeof idx[0]; q++) {
            size_t i = idx[p], j = idx[q];
            double s = 0.0;
            for (size_t x = 0; x <= d; x++)
                s += w[x] * T[i * m + x] * T[j * m + x];
            double want = i == j ? exp(-gsl_sf_lnchoose((unsigned)d, (unsigned)i)) : 0.0;
            /* The reference weights exp(lnchoose - d ln 2) carry a relative error of about
             * 2 d eps (the exponent's rounding); the recurrence adds a few eps. */
            ck_assert_msg(fabs(s - want) <= 4.0 * (double)d * DBL_EPSILON, "d=%zu i=%zu j=%zu: "
                          "%g vs %g", d, i, j, s, want);
        }
    for (size_t i = 0; i < m * m; i++)
        ck_assert(fabs(T[i]) <= 1.0 + 8 * DBL_EPSILON);
    free(T), free(w);
}
END_TEST

START_TEST(test_hypercube_matches_wht)
{
    kat_fn *fs[3] = {NULL, cb(f_exp_neg, "exp(-x)"), cb(f_relu13, "relu")};
    TU_OK(kat_fn_builtin("sqrt", &fs[0]));
    for (size_t d = 0; d <= 14; d++) {
        size_t n = (size_t)1 << d;
        double ones[14], lj[15], mult[15];
        for (size_t t = 0; t < d; t++)
            ones[t] = 1.0;
        for (int k = 0; k < 3; k++) {
            double *lam = malloc(n * sizeof *lam), *g = malloc(n * sizeof *g);
            TU_OK(kat_group_hypercube_spectrum(fs[k], d, lj, mult));
            TU_OK(kat_group_hyperrect_spectrum(fs[k], ones, d, lam));
            TU_OK(kat_group_hyperrect_values(fs[k], ones, d, g));
            double tol = 2 * kat_group_spectrum_tol(g, d);
            size_t count[15] = {0};
            for (size_t S = 0; S < n; S++) {
                size_t j = (size_t)__builtin_popcountll(S);
                count[j]++;
                ck_assert_msg(fabs(lam[S] - lj[j]) <= tol, "d=%zu S=%zu: %.17g vs %.17g", d, S,
                              lam[S], lj[j]);
            }
            for (size_t j = 0; j <= d; j++)
                ck_assert(mult[j] == (double)count[j]);
            free(lam), free(g);
        }
    }
    /* mult may be NULL; a large d works without 2^d memory. */
    double big[801];
    TU_OK(kat_group_hypercube_spectrum(fs[0], 800, big, NULL));
    for (int k = 0; k < 3; k++)
        kat_fn_destroy(fs[k]);
}
END_TEST

START_TEST(test_hypercube_errors)
{
    kat_fn *f = cb(f_inv, "1/x"), *g = NULL, *e = cb(f_exp_pos, "exp(x)");
    TU_OK(kat_fn_builtin("sqrt", &g));
    double l[8] = {5, 5, 5, 5, 5, 5, 5, 5};
    TU_EXPECT_ERR(kat_group_hypercube_spectrum(f, 4, l, NULL), KAT_EDOM, "at distance 0");
    TU_EXPECT_ERR(kat_group_hypercube_spectrum(NULL, 4, l, NULL), KAT_EINVAL, "f is NULL");
    TU_EXPECT_ERR(kat_group_hypercube_spectrum(g, 4, NULL, NULL), KAT_EINVAL, "lambda is NULL");
    TU_EXPECT_ERR(kat_group_hypercube_spectrum(g, 5000, l, NULL), KAT_ERANGE, "d = 5000");
    TU_EXPECT_ERR(kat_group_krawtchouk_table(5000, l), KAT_ERANGE, "too large");
    TU_EXPECT_ERR(kat_group_krawtchouk_table(3, NULL), KAT_EINVAL, "out is NULL");
    /* exp(k) C(1000, k) overflows near k = 1000. */
    static double big[1001];
    TU_EXPECT_ERR(kat_group_hypercube_spectrum(e, 1000, big, NULL), KAT_EDOM, "exp(x)");
    for (int i = 0; i < 8; i++)
        ck_assert(l[i] == 5);
    kat_fn_destroy(f), kat_fn_destroy(g), kat_fn_destroy(e);
}
END_TEST

START_TEST(test_circulant_and_cyclic)
{
    size_t Ns[] = {1, 2, 3, 7, 8, 64, 100};
    kat_fn *f = cb(f_exp_neg, "exp(-x)");
    for (size_t q = 0; q < sizeof Ns / sizeof Ns[0]; q++) {
        size_t N = Ns[q];
        double *c = malloc(N * sizeof *c), *re = malloc(N * sizeof *re),
               *im = malloc(N * sizeof *im), *lam = malloc(N * sizeof *lam);
        kat_rng *r = NULL;
        TU_OK(kat_rng_create(N, &r));
        for (size_t k = 0; k < N; k++)
            c[k] = kat_rng_gaussian(r, 1.0);
        kat_rng_destroy(r);
        TU_OK(kat_group_circulant_spectrum(c, N, re, im));
        double tol = 4.0 * (double)N * DBL_EPSILON * sum_abs(c, N);
        for (size_t m = 0; m < N; m++) {
            /* The eigen-equation itself: sum_j C_ij v_j = lambda v_i with v_j = e^{2 pi i mj/N}
             * and C_ij = c[(j - i) mod N], at row i = 0 and i = N - 1. */
            for (size_t i = 0; i < N; i += (N > 1 ? N - 1 : 1)) {
                double sr = 0.0, si = 0.0;
                for (size_t j = 0; j < N; j++) {
                    double ang = 2.0 * M_PI * (double)((m * j) % N) / (double)N;
                    double cij = c[(j + N - i) % N];
                    sr += cij * cos(ang);
                    si += cij * sin(ang);
                }
                double ang = 2.0 * M_PI * (double)((m * i) % N) / (double)N;
                double wr = re[m] * cos(ang) - im[m] * sin(ang);
                double wi = re[m] * sin(ang) + im[m] * cos(ang);
                ck_assert_msg(fabs(sr - wr) <= tol && fabs(si - wi) <= tol,
                              "N=%zu m=%zu i=%zu: (%g,%g) vs (%g,%g)", N, m, i, sr, si, wr, wi);
            }
        }
        /* Cyclic: f of the cyclic distance, a real symmetric spectrum. */
        TU_OK(kat_group_cyclic_spectrum(f, N, lam));
        for (size_t m = 0; m < N; m++) {
            double s = 0.0, sabs = 0.0;
            for (size_t k = 0; k < N; k++) {
                double delta = (double)(k <= N - k ? k : N - k);
                s += exp(-delta) * cos(2.0 * M_PI * (double)((m * k) % N) / (double)N);
                sabs += exp(-delta);
            }
            ck_assert_msg(fabs(lam[m] - s) <= 4.0 * (double)N * DBL_EPSILON * sabs, "N=%zu m=%zu",
                          N, m);
            ck_assert(lam[m] == lam[(N - m) % N] || fabs(lam[m] - lam[(N - m) % N]) <=
                                                        4.0 * (double)N * DBL_EPSILON * sabs);
        }
        free(c), free(re), free(im), free(lam);
    }
    kat_fn_destroy(f);
}
END_TEST

START_TEST(test_cyclic_errors)
{
    kat_fn *f = cb(f_inv, "1/x"), *g = cb(f_exp_neg, "exp(-x)");
    double out[4] = {7, 7, 7, 7}, c[4] = {1, 2, NAN, 4};
    TU_EXPECT_ERR(kat_group_cyclic_spectrum(g, 0, out), KAT_EINVAL, "N must be >= 1");
    TU_EXPECT_ERR(kat_group_circulant_spectrum(c, 0, out, NULL), KAT_EINVAL, "N must be >= 1");
    TU_EXPECT_ERR(kat_group_cyclic_spectrum(f, 4, out), KAT_EDOM, "cyclic distance 0");
    TU_EXPECT_ERR(kat_group_circulant_spectrum(c, 4, out, NULL), KAT_EDOM, "c[2]");
    TU_EXPECT_ERR(kat_group_cyclic_spectrum(NULL, 4, out), KAT_EINVAL, "f is NULL");
    TU_EXPECT_ERR(kat_group_circulant_spectrum(NULL, 4, out, NULL), KAT_EINVAL, "c is NULL");
    for (int i = 0; i < 4; i++)
        ck_assert(out[i] == 7);
    kat_fn_destroy(f), kat_fn_destroy(g);
}
END_TEST

/* Corner points of the hyperrectangle: row b has a_t where bit t of b is set. */
static double *corners(const double *a, size_t d)
{
    size_t n = (size_t)1 << d;
    double *X = malloc(n * d * sizeof *X);
    for (size_t b = 0; b < n; b++)
        for (size_t t = 0; t < d; t++)
            X[b * d + t] = (b >> t & 1) ? a[t] : 0.0;
    return X;
}

START_TEST(test_featmap_exact_psd)
{
    /* exp(-x) is completely monotone: every lambda_S > 0, phi = psi, F(b).F(c) = f(<a, b^c>). */
    size_t d = 6, n = 64;
    double a[6];
    random_sides(a, d, 11);
    kat_fn *f = cb(f_exp_neg, "exp(-x)");
    kat_featmap *fm = NULL;
    TU_OK(kat_group_featmap_create(f, a, d, 0, KAT_GROUP_MAP_REQUIRE_PSD, &fm));
    ck_assert_uint_eq(kat_featmap_in_dim(fm), d);
    ck_assert_uint_eq(kat_featmap_out_dim(fm), n);
    ck_assert_uint_eq(kat_featmap_flags(fm), KAT_FEATMAP_EXACT | KAT_FEATMAP_POSITIVE);
    double *X = corners(a, d);
    kat_dmat Xm = {n, d, d, X}, Fq, Fk;
    TU_OK(kat_dmat_alloc(n, n, &Fq));
    TU_OK(kat_dmat_alloc(n, n, &Fk));
    TU_OK(kat_featmap_apply(fm, KAT_SIDE_QUERY, &Xm, &Fq));
    TU_OK(kat_featmap_apply(fm, KAT_SIDE_KEY, &Xm, &Fk));
    for (size_t i = 0; i < n * n; i++)
        ck_assert(Fq.data[i] == Fk.data[i]);
    for (size_t b = 0; b < n; b++)
        for (size_t c = 0; c < n; c++) {
            double s = 0.0, dist = 0.0;
            for (size_t j = 0; j < n; j++)
                s += Fq.data[b * n + j] * Fk.data[c * n + j];
            for (size_t t = 0; t < d; t++)
                dist += fabs(X[b * d + t] - X[c * d + t]);
            double want = exp(-dist);
            ck_assert_msg(fabs(s - want) <= 1e-12 * want, "b=%zu c=%zu %.17g vs %.17g", b, c, s,
                          want);
            double sc;
            TU_OK(kat_featmap_score(fm, X + b * d, X + c * d, &sc));
            ck_assert(fabs(sc - want) <= 4 * DBL_EPSILON * want);
        }
    /* fp32 inputs and outputs agree with fp64 to float rounding. */
    float *xf = malloc(n * d * sizeof *xf), *ff = malloc(n * n * sizeof *ff);
    for (size_t i = 0; i < n * d; i++)
        xf[i] = (float)X[i];
    TU_OK(kat_featmap_apply_f32(fm, KAT_SIDE_KEY, n, xf, d, ff, n));
    for (size_t i = 0; i < n * n; i++)
        ck_assert(fabs(ff[i] - Fk.data[i]) <= FLT_EPSILON * fabs(Fk.data[i]));
    free(xf), free(ff), free(X);
    kat_dmat_free(&Fq), kat_dmat_free(&Fk);
    kat_featmap_destroy(fm);
    kat_fn_destroy(f);
}
END_TEST

START_TEST(test_featmap_signed_and_truncated)
{
    size_t d = 5, n = 32;
    double a[5];
    random_sides(a, d, 5);
    kat_fn *f = cb(f_exp_pos, "exp(x)");
    kat_featmap *fm = NULL;
    /* exp(x) has 16 negative eigenvalues here: the Gram map is refused ... */
    TU_EXPECT_ERR(kat_group_featmap_create(f, a, d, 0, KAT_GROUP_MAP_REQUIRE_PSD, &fm), KAT_EDOM,
                  "not positive definite");
    ck_assert_ptr_null(fm);
    /* ... the signed map is exact. */
    double *lam = malloc(n * sizeof *lam), *X = corners(a, d);
    TU_OK(kat_group_hyperrect_spectrum(f, a, d, lam));
    size_t ranks[] = {0, 1, 5, 17, 32};
    for (size_t q = 0; q < sizeof ranks / sizeof ranks[0]; q++) {
        size_t r = ranks[q];
        TU_OK(kat_group_featmap_create(f, a, d, r, 0, &fm));
        size_t D = kat_featmap_out_dim(fm);
        ck_assert_uint_eq(D, r ? r : n);
        ck_assert_uint_eq(!!(kat_featmap_flags(fm) & KAT_FEATMAP_EXACT), D == n);
        kat_dmat Xm = {n, d, d, X}, Fq, Fk;
        TU_OK(kat_dmat_alloc(n, D, &Fq));
        TU_OK(kat_dmat_alloc(n, D, &Fk));
        TU_OK(kat_featmap_apply(fm, KAT_SIDE_QUERY, &Xm, &Fq));
        TU_OK(kat_featmap_apply(fm, KAT_SIDE_KEY, &Xm, &Fk));
        /* Eckart-Young: ||D_f - Phi Psi^T||_F^2 = sum of the dropped lambda_S^2. */
        double err2 = 0.0, norm2 = 0.0;
        for (size_t b = 0; b < n; b++)
            for (size_t c = 0; c < n; c++) {
                double s = 0.0, dist = 0.0;
                for (size_t j = 0; j < D; j++)
                    s += Fq.data[b * D + j] * Fk.data[c * D + j];
                for (size_t t = 0; t < d; t++)
                    dist += ((b ^ c) >> t & 1) ? a[t] : 0.0;
                err2 += (s - exp(dist)) * (s - exp(dist));
                norm2 += exp(dist) * exp(dist);
            }
        double *mag = malloc(n * sizeof *mag), dropped = 0.0;
        for (size_t S = 0; S < n; S++)
            mag[S] = fabs(lam[S]);
        qsort(mag, n, sizeof *mag, cmp_double);   /* ascending: the n - D smallest dropped */
        for (size_t i = 0; i < n - D; i++)
            dropped += mag[i] * mag[i];
        ck_assert_msg(fabs(err2 - dropped) <= 1e-12 * norm2, "rank %zu: %g vs %g", r, err2,
                      dropped);
        free(mag);
        kat_dmat_free(&Fq), kat_dmat_free(&Fk);
        kat_featmap_destroy(fm);
        fm = NULL;
    }
    free(lam), free(X);
    kat_fn_destroy(f);
}
END_TEST

START_TEST(test_featmap_low_rank_polynomial)
{
    /* f = x^2 on the hyperrectangle has rank 1 + d + C(d, 2): the exact map keeps only those. */
    size_t d = 6;
    double a[6];
    random_sides(a, d, 9);
    kat_fn *f = NULL;
    kat_featmap *fm = NULL;
    TU_OK(kat_fn_pow(2.0, &f));
    TU_OK(kat_group_featmap_create(f, a, d, 0, 0, &fm));
    ck_assert_uint_eq(kat_featmap_out_dim(fm), 1 + 6 + 15);
    ck_assert(kat_featmap_flags(fm) & KAT_FEATMAP_EXACT);
    ck_assert(!(kat_featmap_flags(fm) & KAT_FEATMAP_POSITIVE));   /* f(0) = 0 */
    kat_featmap_destroy(fm);
    kat_fn_destroy(f);
}
END_TEST

START_TEST(test_featmap_errors)
{
    double a[3] = {1.0, 2.0, 0.5};
    kat_fn *f = cb(f_exp_neg, "exp(-x)");
    kat_featmap *fm = NULL;
    TU_EXPECT_ERR(kat_group_featmap_create(f, a, 3, 9, 0, &fm), KAT_EINVAL, "rank = 9");
    TU_EXPECT_ERR(kat_group_featmap_create(f, a, 0, 0, 0, &fm), KAT_EINVAL, "d must be >= 1");
    TU_EXPECT_ERR(kat_group_featmap_create(f, a, 3, 0, 0, NULL), KAT_EINVAL, "out is NULL");
    TU_EXPECT_ERR(kat_group_featmap_create(f, a, 45, 0, 0, &fm), KAT_ERANGE, "d = 45");
    double neg[3] = {1.0, -1.0, 1.0};
    TU_EXPECT_ERR(kat_group_featmap_create(f, neg, 3, 0, 0, &fm), KAT_EINVAL, "a[1]");
    ck_assert_ptr_null(fm);
    TU_OK(kat_group_featmap_create(f, a, 3, 4, 0, &fm));
    /* Not a corner: coordinate 1 must be 0 or 2. */
    double x[3] = {1.0, 1.0, 0.0}, F[8];
    kat_dmat Xm = {1, 3, 3, x}, Fm = {1, 4, 4, F};
    TU_EXPECT_ERR(kat_featmap_apply(fm, KAT_SIDE_QUERY, &Xm, &Fm), KAT_EDOM, "coordinate 1");
    kat_featmap_destroy(fm);
    kat_featmap_destroy(NULL);
    kat_fn_destroy(f);
}
END_TEST

START_TEST(test_alloc_failures)
{
    /* Every allocation failure is reported as KAT_ENOMEM and leaks nothing (the sanitizer
     * build checks the leaks). */
    double a[4] = {1.0, 0.6, 0.9, 1.4}, lam[16];
    kat_fn *f = cb(f_exp_neg, "exp(-x)");
    for (size_t k = 1; k < 12; k++) {
        kat_featmap *fm = NULL;
        kat_debug_fail_alloc_at(k);
        kat_status st = kat_group_featmap_create(f, a, 4, 0, 0, &fm);
        kat_debug_fail_alloc_at(0);
        ck_assert(st == KAT_OK || st == KAT_ENOMEM);
        if (st == KAT_ENOMEM)
            ck_assert_ptr_null(fm);
        kat_featmap_destroy(fm);
        kat_debug_fail_alloc_at(k);
        st = kat_group_hyperrect_spectrum(f, a, 4, lam);
        kat_debug_fail_alloc_at(0);
        ck_assert(st == KAT_OK || st == KAT_ENOMEM);
        double h[5];
        kat_debug_fail_alloc_at(k);
        st = kat_group_hypercube_spectrum(f, 4, h, NULL);
        kat_debug_fail_alloc_at(0);
        ck_assert(st == KAT_OK || st == KAT_ENOMEM);
    }
    kat_fn_destroy(f);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("group");
    TCase *tc = tcase_create("group");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_wht_matches_butterfly_and_definition);
    tcase_add_test(tc, test_wht_errors);
    tcase_add_test(tc, test_wht_threads);
    tcase_add_test(tc, test_hyperrect_spectrum_dense);
    tcase_add_test(tc, test_laplace_closed_form);
    tcase_add_test(tc, test_hyperrect_errors_leave_output);
    tcase_add_test(tc, test_krawtchouk_exact);
    tcase_add_test(tc, test_krawtchouk_orthogonal_large_d);
    tcase_add_test(tc, test_hypercube_matches_wht);
    tcase_add_test(tc, test_hypercube_errors);
    tcase_add_test(tc, test_circulant_and_cyclic);
    tcase_add_test(tc, test_cyclic_errors);
    tcase_add_test(tc, test_featmap_exact_psd);
    tcase_add_test(tc, test_featmap_signed_and_truncated);
    tcase_add_test(tc, test_featmap_low_rank_polynomial);
    tcase_add_test(tc, test_featmap_errors);
    tcase_add_test(tc, test_alloc_failures);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
