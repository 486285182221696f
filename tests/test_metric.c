/* Metric transforms: distances and kernels, symmetric spectra, Cholesky, Schoenberg/MDS,
 * complete monotonicity and Bernstein tests, and the explicit corner embeddings. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "testutil.h"

static double f_exp_neg(double x, void *p) { (void)p; return exp(-x); }
static double f_exp_pos(double x, void *p) { (void)p; return exp(x); }
static double f_gauss(double x, void *p) { (void)p; return exp(-x * x); }
static double f_inv1p(double x, void *p) { (void)p; return 1.0 / (1.0 + x); }
static double f_xexp(double x, void *p) { (void)p; return x * exp(-x); }
static double f_one_minus_exp(double x, void *p) { (void)p; return -expm1(-x); }
static double f_x_over_1px(double x, void *p) { (void)p; return x / (1.0 + x); }
static double f_relu13(double x, void *p) { (void)p; return x > 1.3 ? x - 1.3 : 0.0; }
static double f_one_plus_x(double x, void *p) { (void)p; return 1.0 + x; }
static double f_log(double x, void *p) { (void)p; return log(x); }
static double f_pow4(double x, void *p) { (void)p; return x * x * x * x; }
static double f_pow03(double x, void *p) { (void)p; return pow(x, 0.3); }

static kat_fn *cb(kat_fn_scalar s, const char *name)
{
    kat_fn *f = NULL;
    TU_OK(kat_fn_callback(s, NULL, NULL, name, &f));
    return f;
}

static kat_fn *builtin(const char *name)
{
    kat_fn *f = NULL;
    TU_OK(kat_fn_builtin(name, &f));
    return f;
}

static kat_dmat random_points(size_t n, size_t d, unsigned seed)
{
    kat_dmat X;
    TU_OK(kat_dmat_alloc(n, d, &X));
    kat_rng *r = NULL;
    TU_OK(kat_rng_create(seed, &r));
    for (size_t i = 0; i < n * d; i++)
        X.data[i] = kat_rng_gaussian(r, 1.0);
    kat_rng_destroy(r);
    return X;
}

START_TEST(test_parse_names)
{
    kat_metric m;
    TU_OK(kat_metric_parse("l1", &m));
    ck_assert_int_eq(m, KAT_METRIC_L1);
    TU_OK(kat_metric_parse("inner", &m));
    ck_assert_str_eq(kat_metric_name(m), "inner");
    ck_assert_str_eq(kat_metric_name((kat_metric)99), "unknown");
    TU_EXPECT_ERR(kat_metric_parse("l3", &m), KAT_EINVAL, "'l3'");
    TU_EXPECT_ERR(kat_metric_parse(NULL, &m), KAT_EINVAL, "name is NULL");
    kat_embed_kind k;
    TU_OK(kat_metric_embed_parse("l2sq", &k));
    ck_assert_int_eq(k, KAT_EMBED_L2SQ);
    TU_EXPECT_ERR(kat_metric_embed_parse("l2", &k), KAT_EINVAL, "'l2'");
}
END_TEST

START_TEST(test_distances_and_kernel)
{
    size_t n = 13, d = 3;   /* not a multiple of anything */
    kat_dmat X = random_points(n, d, 1), D, K;
    TU_OK(kat_dmat_alloc(n, n, &D));
    TU_OK(kat_dmat_alloc(n, n, &K));
    kat_fn *f = cb(f_exp_neg, "exp(-x)");
    for (int m = 0; m < KAT_METRIC_COUNT; m++) {
        TU_OK(kat_metric_distances(&X, (kat_metric)m, &D));
        TU_OK(kat_metric_kernel(f, &X, (kat_metric)m, &K));
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < n; j++) {
                double l1 = 0, l2 = 0, ip = 0;
                for (size_t t = 0; t < d; t++) {
                    double u = X.data[i * d + t], v = X.data[j * d + t];
                    l1 += fabs(u - v);
                    l2 += (u - v) * (u - v);
                    ip += u * v;
                }
                double want = m == KAT_METRIC_L1 ? l1 : m == KAT_METRIC_L2 ? sqrt(l2)
                                                     : m == KAT_METRIC_L2SQ ? l2 : ip;
                ck_assert(fabs(D.data[i * n + j] - want) <= 4 * DBL_EPSILON * (fabs(want) + l2));
                ck_assert(D.data[i * n + j] == D.data[j * n + i]);
                ck_assert(K.data[i * n + j] == exp(-D.data[i * n + j]));
            }
    }
    kat_fn_destroy(f);
    kat_dmat_free(&X), kat_dmat_free(&D), kat_dmat_free(&K);
}
END_TEST

START_TEST(test_distances_errors)
{
    kat_dmat X = random_points(4, 2, 2), D, bad;
    TU_OK(kat_dmat_alloc(4, 4, &D));
    TU_OK(kat_dmat_alloc(4, 3, &bad));
    kat_fn *flog = cb(f_log, "log(x)");
    TU_EXPECT_ERR(kat_metric_distances(&X, KAT_METRIC_L1, &bad), KAT_EINVAL, "4 x 3");
    TU_EXPECT_ERR(kat_metric_distances(&X, (kat_metric)7, &D), KAT_EINVAL, "metric = 7");
    TU_EXPECT_ERR(kat_metric_distances(NULL, KAT_METRIC_L1, &D), KAT_EINVAL, "X");
    TU_EXPECT_ERR(kat_metric_distances(&X, KAT_METRIC_L1, NULL), KAT_EINVAL, "D is NULL");
    for (size_t i = 0; i < 16; i++)
        D.data[i] = 9.0;
    /* log of the zero diagonal is -inf: named, K untouched. */
    TU_EXPECT_ERR(kat_metric_kernel(flog, &X, KAT_METRIC_L2, &D), KAT_EDOM, "points 0 and 0");
    for (size_t i = 0; i < 16; i++)
        ck_assert(D.data[i] == 9.0);
    X.data[3] = NAN;
    TU_EXPECT_ERR(kat_metric_distances(&X, KAT_METRIC_L1, &D), KAT_EDOM, "entry (1, 1)");
    kat_dmat empty = {0, 2, 2, NULL}, D0 = {0, 0, 0, NULL};
    TU_OK(kat_metric_distances(&empty, KAT_METRIC_L1, &D0));
    kat_fn_destroy(flog);
    kat_dmat_free(&X), kat_dmat_free(&D), kat_dmat_free(&bad);
}
END_TEST

START_TEST(test_corners)
{
    double a[3] = {0.5, 2.0, 1.0};
    kat_dmat X;
    TU_OK(kat_dmat_alloc(8, 3, &X));
    TU_OK(kat_metric_corners(a, 3, &X));
    ck_assert(X.data[5 * 3 + 0] == 0.5 && X.data[5 * 3 + 1] == 0.0 && X.data[5 * 3 + 2] == 1.0);
    double bad[3] = {0.5, 0.0, 1.0};
    TU_EXPECT_ERR(kat_metric_corners(bad, 3, &X), KAT_EINVAL, "a[1] = 0");
    TU_EXPECT_ERR(kat_metric_corners(a, 2, &X), KAT_EINVAL, "expected 2^2");
    TU_EXPECT_ERR(kat_metric_corners(a, 70, &X), KAT_ERANGE, "2^70");
    kat_dmat_free(&X);
}
END_TEST

/* Q diag(lam) Q^T with Q a product of random Householder reflections. */
static kat_dmat with_spectrum(const double *lam, size_t n, unsigned seed)
{
    kat_dmat A;
    TU_OK(kat_dmat_alloc(n, n, &A));
    for (size_t i = 0; i < n; i++)
        A.data[i * n + i] = lam[i];
    kat_rng *r = NULL;
    TU_OK(kat_rng_create(seed, &r));
    double *v = malloc(n * sizeof *v), *w = malloc(n * sizeof *w);
    for (int rep = 0; rep < 3; rep++) {
        double nv = 0;
        for (size_t i = 0; i < n; i++) {
            v[i] = kat_rng_gaussian(r, 1.0);
            nv += v[i] * v[i];
        }
        /* A <- H A H with H = I - 2 v v^T / (v.v). */
        for (size_t i = 0; i < n; i++) {   /* w = A v */
            w[i] = 0;
            for (size_t j = 0; j < n; j++)
                w[i] += A.data[i * n + j] * v[j];
        }
        double vAv = 0;
        for (size_t i = 0; i < n; i++)
            vAv += v[i] * w[i];
        double c = 2.0 / nv;
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < n; j++)
                A.data[i * n + j] += -c * (v[i] * w[j] + w[i] * v[j]) + c * c * vAv * v[i] * v[j];
        for (size_t i = 0; i < n; i++)   /* symmetrise the rounding */
            for (size_t j = 0; j < i; j++)
                A.data[j * n + i] = A.data[i * n + j];
    }
    free(v), free(w);
    kat_rng_destroy(r);
    return A;
}

START_TEST(test_sym_eigenvalues)
{
    size_t n = 37;
    double lam[37], w[37];
    for (size_t i = 0; i < n; i++)
        lam[i] = (double)(n - i) - 10.5;   /* descending, mixed signs */
    kat_dmat A = with_spectrum(lam, n, 4);
    TU_OK(kat_metric_sym_eigenvalues(&A, w));
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(fabs(w[i] - lam[i]) <= 16 * (double)n * DBL_EPSILON * 26.5, "i=%zu", i);
    int pd = 1;
    TU_OK(kat_metric_cholesky_pd(&A, &pd));
    ck_assert_int_eq(pd, 0);
    kat_dmat_free(&A);
    for (size_t i = 0; i < n; i++)
        lam[i] = 1.0 + (double)i;
    A = with_spectrum(lam, n, 5);
    TU_OK(kat_metric_cholesky_pd(&A, &pd));
    ck_assert_int_eq(pd, 1);
    /* Not symmetric: refused, naming the entry. */
    A.data[2 * n + 1] += 1.0;
    TU_EXPECT_ERR(kat_metric_sym_eigenvalues(&A, w), KAT_EINVAL, "A(2, 1)");
    TU_EXPECT_ERR(kat_metric_sym_eigenvalues(&A, NULL), KAT_EINVAL, "w is NULL");
    kat_dmat rect = {2, 3, 3, A.data};
    TU_EXPECT_ERR(kat_metric_sym_eigenvalues(&rect, w), KAT_EINVAL, "not square");
    TU_EXPECT_ERR(kat_metric_cholesky_pd(&rect, &pd), KAT_EINVAL, "not square");
    /* n = 1 and n = 0. */
    kat_dmat one = {1, 1, 1, (double[]){-3.0}}, zero = {0, 0, 0, NULL};
    TU_OK(kat_metric_sym_eigenvalues(&one, w));
    ck_assert(w[0] == -3.0);
    TU_OK(kat_metric_sym_eigenvalues(&zero, w));
    kat_dmat_free(&A);
}
END_TEST

START_TEST(test_pd_check)
{
    size_t n = 40;
    kat_dmat X = random_points(n, 3, 8);
    kat_fn *fexp = cb(f_exp_neg, "exp(-x)"), *fg = cb(f_gauss, "exp(-x^2)"),
           *fid = builtin("identity");
    kat_metric_pd_report r;
    double w[40];
    /* Completely monotone f of l1 and of l2 (Schoenberg): positive definite. */
    TU_OK(kat_metric_pd_check(fexp, &X, KAT_METRIC_L1, &r, w));
    ck_assert(r.psd && r.cholesky_pd && r.min_eigenvalue > 0 && r.n_positive == n);
    ck_assert(r.min_eigenvalue == w[n - 1] && r.max_eigenvalue == w[0]);
    TU_OK(kat_metric_pd_check(fg, &X, KAT_METRIC_L2, &r, NULL));
    ck_assert(r.psd && r.cholesky_pd);
    /* A Euclidean distance matrix itself has one positive eigenvalue and n - 1 negative. */
    TU_OK(kat_metric_pd_check(fid, &X, KAT_METRIC_L2, &r, NULL));
    ck_assert_uint_eq(r.n_positive, 1);
    ck_assert_uint_eq(r.n_negative, n - 1);
    ck_assert(!r.psd && !r.cholesky_pd);
    TU_EXPECT_ERR(kat_metric_pd_check(fexp, &X, KAT_METRIC_L1, NULL, NULL), KAT_EINVAL, "rep");
    kat_fn_destroy(fexp), kat_fn_destroy(fg), kat_fn_destroy(fid);
    kat_dmat_free(&X);
}
END_TEST

START_TEST(test_mds)
{
    size_t n = 30, k = 3;
    kat_dmat X = random_points(n, k, 12), D, Y, DY;
    TU_OK(kat_dmat_alloc(n, n, &D));
    TU_OK(kat_dmat_alloc(n, n, &DY));
    TU_OK(kat_dmat_alloc(n, k, &Y));
    TU_OK(kat_metric_distances(&X, KAT_METRIC_L2SQ, &D));
    double w[30], dmax = 0;
    for (size_t i = 0; i < n * n; i++)
        dmax = fmax(dmax, D.data[i]);
    TU_OK(kat_metric_mds_spectrum(&D, w));
    double tol = 16 * (double)n * DBL_EPSILON * dmax;
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(i < k ? w[i] > tol : fabs(w[i]) <= tol, "i=%zu w=%g", i, w[i]);
    /* The coordinates reproduce the squared distances. */
    TU_OK(kat_metric_mds_embed(&D, k, &Y));
    TU_OK(kat_metric_distances(&Y, KAT_METRIC_L2SQ, &DY));
    for (size_t i = 0; i < n * n; i++)
        ck_assert(fabs(DY.data[i] - D.data[i]) <= tol);
    /* Squared distances to the 4th power are not Euclidean: a negative eigenvalue, and the
     * full embedding is refused. */
    for (size_t i = 0; i < n * n; i++)
        D.data[i] = D.data[i] * D.data[i];
    TU_OK(kat_metric_mds_spectrum(&D, w));
    ck_assert(w[n - 1] < -tol);
    kat_dmat Yn;
    TU_OK(kat_dmat_alloc(n, n, &Yn));
    TU_EXPECT_ERR(kat_metric_mds_embed(&D, n, &Yn), KAT_EDOM, "not Euclidean");
    TU_EXPECT_ERR(kat_metric_mds_embed(&D, n + 1, &Yn), KAT_EINVAL, "k = 31");
    TU_EXPECT_ERR(kat_metric_mds_embed(&D, 2, &Yn), KAT_EINVAL, "expected 30 x 2");
    kat_dmat_free(&Yn);
    kat_dmat_free(&X), kat_dmat_free(&D), kat_dmat_free(&Y), kat_dmat_free(&DY);
}
END_TEST

START_TEST(test_mds_hypercube_l1)
{
    /* l1 distances of hypercube corners are Hamming distances = squared Euclidean: the MDS
     * spectrum is d eigenvalues 2^d / 4 and zeros. */
    size_t d = 5, n = 32;
    double a[5] = {1, 1, 1, 1, 1}, w[32];
    kat_dmat X, D;
    TU_OK(kat_dmat_alloc(n, d, &X));
    TU_OK(kat_dmat_alloc(n, n, &D));
    TU_OK(kat_metric_corners(a, d, &X));
    TU_OK(kat_metric_distances(&X, KAT_METRIC_L1, &D));
    TU_OK(kat_metric_mds_spectrum(&D, w));
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(fabs(w[i] - (i < d ? 8.0 : 0.0)) <= 64 * (double)n * DBL_EPSILON, "%zu", i);
    kat_dmat_free(&X), kat_dmat_free(&D);
}
END_TEST

START_TEST(test_completely_monotone)
{
    kat_metric_grid g = kat_metric_grid_default();
    kat_metric_report r;
    kat_fn *yes[2] = {cb(f_exp_neg, "exp(-x)"), cb(f_inv1p, "1/(1+x)")};
    for (int i = 0; i < 2; i++) {
        TU_OK(kat_metric_cm_check(yes[i], &g, &r));
        ck_assert_msg(r.holds, "%d: order %zu at x = %g: %g (tol %g)", i, r.order, r.x, r.value,
                      r.tol);
        ck_assert_uint_eq(r.violations, 0);
        ck_assert_uint_gt(r.checked, 10000);
        kat_fn_destroy(yes[i]);
    }
    /* exp(-x^2) is positive and decreasing but concave near 0: order 2 fails at x = 0. */
    kat_fn *fg = cb(f_gauss, "exp(-x^2)");
    TU_OK(kat_metric_cm_check(fg, &g, &r));
    ck_assert(!r.holds);
    ck_assert_uint_eq(r.order, 2);
    ck_assert(r.x < 0.5);
    ck_assert(r.value < -r.tol);
    ck_assert(r.steps[0] > 0 && r.steps[1] >= r.steps[0] && r.steps[2] == 0);
    kat_fn_destroy(fg);
    /* x e^-x increases first: order 1 at x = 0. cos goes negative: order 0. */
    kat_fn *fx = cb(f_xexp, "x exp(-x)"), *fc = builtin("cos");
    TU_OK(kat_metric_cm_check(fx, &g, &r));
    ck_assert(!r.holds && r.order == 1 && r.x == 0.0);
    TU_OK(kat_metric_cm_check(fc, &g, &r));
    ck_assert(!r.holds && r.order == 0 && cos(r.x) < 0 && r.value == cos(r.x));
    ck_assert_str_eq(r.condition, "f >= 0");
    kat_fn_destroy(fx), kat_fn_destroy(fc);
}
END_TEST

START_TEST(test_bernstein)
{
    kat_metric_grid g = kat_metric_grid_default();
    kat_metric_report r;
    kat_fn *yes[5] = {builtin("sqrt"), builtin("log1p"), cb(f_one_minus_exp, "1-exp(-x)"),
                      cb(f_x_over_1px, "x/(1+x)"), cb(f_pow03, "x^0.3")};
    for (int i = 0; i < 5; i++) {
        TU_OK(kat_metric_bernstein_check(yes[i], &g, &r));
        ck_assert_msg(r.holds, "%s: %s order %zu at x = %g: %g (tol %g)", kat_fn_name(yes[i]),
                      r.condition, r.order, r.x, r.value, r.tol);
        kat_fn_destroy(yes[i]);
    }
    kat_fn *sq = NULL, *relu = cb(f_relu13, "relu(x-1.3)"), *opx = cb(f_one_plus_x, "1+x"),
           *e = cb(f_exp_neg, "exp(-x)");
    TU_OK(kat_fn_pow(2.0, &sq));
    TU_OK(kat_metric_bernstein_check(sq, &g, &r));
    ck_assert(!r.holds && r.order == 2);
    TU_OK(kat_metric_bernstein_check(relu, &g, &r));
    ck_assert(!r.holds && r.order == 2 && r.x > 1.0 && r.x < 1.3);
    TU_OK(kat_metric_bernstein_check(opx, &g, &r));
    ck_assert(!r.holds && r.order == 0);
    ck_assert_str_eq(r.condition, "f(0) = 0");
    /* exp(-x): f(0) = 1, and decreasing. */
    TU_OK(kat_metric_bernstein_check(e, &g, &r));
    ck_assert(!r.holds && r.order == 0);
    kat_fn_destroy(sq), kat_fn_destroy(relu), kat_fn_destroy(opx), kat_fn_destroy(e);
}
END_TEST

START_TEST(test_difference_errors)
{
    kat_fn *f = cb(f_exp_neg, "exp(-x)"), *flog = cb(f_log, "log(x)");
    kat_metric_report r;
    r.holds = 77;
    kat_metric_grid g = kat_metric_grid_default();
    TU_EXPECT_ERR(kat_metric_cm_check(flog, &g, &r), KAT_EDOM, "x = 0");
    ck_assert_int_eq(r.holds, 77);   /* untouched */
    g.x0 = -1;
    TU_EXPECT_ERR(kat_metric_cm_check(f, &g, &r), KAT_EINVAL, "0 <= x0 < x1");
    g = kat_metric_grid_default();
    g.points = 5;
    TU_EXPECT_ERR(kat_metric_cm_check(f, &g, &r), KAT_EINVAL, "points = 5");
    g = kat_metric_grid_default();
    g.max_order = 0;
    TU_EXPECT_ERR(kat_metric_cm_check(f, &g, &r), KAT_EINVAL, "max_order = 0");
    g.max_order = KAT_METRIC_MAX_ORDER + 1;
    TU_EXPECT_ERR(kat_metric_cm_check(f, &g, &r), KAT_EINVAL, "max_order = 13");
    g = kat_metric_grid_default();
    g.max_step = 0;
    TU_EXPECT_ERR(kat_metric_cm_check(f, &g, &r), KAT_EINVAL, "max_step");
    g = kat_metric_grid_default();
    g.x0 = 1.0;
    TU_OK(kat_metric_cm_check(f, &g, &r));   /* fine for complete monotonicity ... */
    TU_EXPECT_ERR(kat_metric_bernstein_check(f, &g, &r), KAT_EINVAL, "x0 = 0");   /* not here */
    TU_EXPECT_ERR(kat_metric_cm_check(NULL, &g, &r), KAT_EINVAL, "f is NULL");
    TU_EXPECT_ERR(kat_metric_cm_check(f, NULL, &r), KAT_EINVAL, "grid is NULL");
    kat_fn_destroy(f), kat_fn_destroy(flog);
}
END_TEST

/* ||u - v||_1 and ||u - v||^2 and u.v of two rows. */
static void row_measures(const kat_dmat *P, size_t b, size_t c, double *l1, double *l2sq,
                         double *dot)
{
    *l1 = *l2sq = *dot = 0;
    for (size_t j = 0; j < P->cols; j++) {
        double u = P->data[b * P->ld + j], v = P->data[c * P->ld + j];
        *l1 += fabs(u - v);
        *l2sq += (u - v) * (u - v);
        *dot += u * v;
    }
}

START_TEST(test_embeddings)
{
    size_t d = 5, n = 32;
    double a[5] = {0.7, 1.3, 0.55, 1.1, 0.9};
    kat_fn *bern[3] = {builtin("sqrt"), builtin("log1p"), cb(f_pow03, "x^0.3")};
    kat_fn *cm = cb(f_exp_neg, "exp(-x)");
    kat_dmat P, G;
    size_t rows, cols;
    TU_OK(kat_metric_embed_shape(KAT_EMBED_L1, d, &rows, &cols));
    ck_assert(rows == n && cols == n - 1);   /* 2^d - 1 coordinates, not 2d */
    TU_OK(kat_dmat_alloc(n, n - 1, &P));
    TU_OK(kat_dmat_alloc(n, n, &G));
    for (int i = 0; i < 3; i++)
        for (int kind = KAT_EMBED_L1; kind <= KAT_EMBED_L2SQ; kind++) {
            TU_OK(kat_metric_embed((kat_embed_kind)kind, bern[i], a, d, &P));
            for (size_t b = 0; b < n; b++)
                for (size_t c = 0; c < n; c++) {
                    double dist = 0, l1, l2sq, dot;
                    for (size_t t = 0; t < d; t++)
                        dist += ((b ^ c) >> t & 1) ? a[t] : 0.0;
                    double want = kat_fn_eval1(bern[i], dist);
                    row_measures(&P, b, c, &l1, &l2sq, &dot);
                    double got = kind == KAT_EMBED_L1 ? l1 : l2sq;
                    ck_assert_msg(fabs(got - want) <= 1e-12 * fmax(want, 1.0),
                                  "%s kind %d b=%zu c=%zu: %.17g vs %.17g", kat_fn_name(bern[i]),
                                  kind, b, c, got, want);
                }
        }
    TU_OK(kat_metric_embed(KAT_EMBED_GRAM, cm, a, d, &G));
    for (size_t b = 0; b < n; b++)
        for (size_t c = 0; c < n; c++) {
            double dist = 0, l1, l2sq, dot;
            for (size_t t = 0; t < d; t++)
                dist += ((b ^ c) >> t & 1) ? a[t] : 0.0;
            row_measures(&G, b, c, &l1, &l2sq, &dot);
            ck_assert(fabs(dot - exp(-dist)) <= 1e-12 * exp(-dist));
        }
    for (int i = 0; i < 3; i++)
        kat_fn_destroy(bern[i]);
    kat_fn_destroy(cm);
    kat_dmat_free(&P), kat_dmat_free(&G);
}
END_TEST

START_TEST(test_embedding_errors)
{
    double a[3] = {1.0, 0.5, 2.0};
    kat_dmat P, G, wrong;
    TU_OK(kat_dmat_alloc(8, 7, &P));
    TU_OK(kat_dmat_alloc(8, 8, &G));
    TU_OK(kat_dmat_alloc(8, 6, &wrong));
    for (size_t i = 0; i < 56; i++)
        P.data[i] = -5.0;
    kat_fn *e = cb(f_exp_neg, "exp(-x)"), *ep = cb(f_exp_pos, "exp(x)"), *sq = NULL,
           *p4 = cb(f_pow4, "x^4");
    TU_OK(kat_fn_pow(2.0, &sq));
    TU_EXPECT_ERR(kat_metric_embed(KAT_EMBED_L1, e, a, 3, &P), KAT_EDOM, "f(0) = 1");
    TU_EXPECT_ERR(kat_metric_embed(KAT_EMBED_L2SQ, sq, a, 3, &P), KAT_EDOM, "negative type");
    TU_EXPECT_ERR(kat_metric_embed(KAT_EMBED_L1, p4, a, 3, &P), KAT_EDOM, "lambda_S");
    TU_EXPECT_ERR(kat_metric_embed(KAT_EMBED_GRAM, ep, a, 3, &G), KAT_EDOM,
                  "not positive definite");
    TU_EXPECT_ERR(kat_metric_embed(KAT_EMBED_L1, sq, a, 3, &wrong), KAT_EINVAL, "8 x 6");
    TU_EXPECT_ERR(kat_metric_embed(KAT_EMBED_GRAM, e, a, 3, &P), KAT_EINVAL, "expected 2^3");
    double bad[3] = {1.0, -0.5, 2.0};
    TU_EXPECT_ERR(kat_metric_embed(KAT_EMBED_GRAM, e, bad, 3, &G), KAT_EINVAL, "a[1]");
    size_t r, c;
    TU_EXPECT_ERR(kat_metric_embed_shape(KAT_EMBED_L1, 40, &r, &c), KAT_ERANGE, "d = 40");
    TU_EXPECT_ERR(kat_metric_embed_shape((kat_embed_kind)9, 3, &r, &c), KAT_EINVAL, "kind = 9");
    for (size_t i = 0; i < 56; i++)
        ck_assert(P.data[i] == -5.0);   /* untouched by the failures */
    kat_fn_destroy(e), kat_fn_destroy(ep), kat_fn_destroy(sq), kat_fn_destroy(p4);
    kat_dmat_free(&P), kat_dmat_free(&G), kat_dmat_free(&wrong);
}
END_TEST

START_TEST(test_alloc_failures)
{
    kat_dmat X = random_points(6, 2, 3), K;
    TU_OK(kat_dmat_alloc(6, 6, &K));
    kat_fn *f = cb(f_exp_neg, "exp(-x)"), *s = builtin("sqrt");
    kat_metric_grid g = kat_metric_grid_default();
    double a[3] = {1, 2, 3};
    kat_dmat P;
    TU_OK(kat_dmat_alloc(8, 7, &P));
    for (size_t k = 1; k < 8; k++) {
        kat_metric_pd_report r;
        kat_metric_report mr;
        kat_status st;
        kat_debug_fail_alloc_at(k);
        st = kat_metric_pd_check(f, &X, KAT_METRIC_L1, &r, NULL);
        kat_debug_fail_alloc_at(0);
        ck_assert_msg(st == KAT_OK || st == KAT_ENOMEM, "k=%zu: %s", k, kat_last_error());
        kat_debug_fail_alloc_at(k);
        st = kat_metric_cm_check(f, &g, &mr);
        kat_debug_fail_alloc_at(0);
        ck_assert(st == KAT_OK || st == KAT_ENOMEM);
        kat_debug_fail_alloc_at(k);
        st = kat_metric_embed(KAT_EMBED_L1, s, a, 3, &P);
        kat_debug_fail_alloc_at(0);
        ck_assert(st == KAT_OK || st == KAT_ENOMEM);
        kat_debug_fail_alloc_at(k);
        double w[6];
        st = kat_metric_mds_spectrum(&K, w);
        kat_debug_fail_alloc_at(0);
        ck_assert(st == KAT_OK || st == KAT_ENOMEM);
    }
    kat_fn_destroy(f), kat_fn_destroy(s);
    kat_dmat_free(&X), kat_dmat_free(&K), kat_dmat_free(&P);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("metric");
    TCase *tc = tcase_create("metric");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_parse_names);
    tcase_add_test(tc, test_distances_and_kernel);
    tcase_add_test(tc, test_distances_errors);
    tcase_add_test(tc, test_corners);
    tcase_add_test(tc, test_sym_eigenvalues);
    tcase_add_test(tc, test_pd_check);
    tcase_add_test(tc, test_mds);
    tcase_add_test(tc, test_mds_hypercube_l1);
    tcase_add_test(tc, test_completely_monotone);
    tcase_add_test(tc, test_bernstein);
    tcase_add_test(tc, test_difference_errors);
    tcase_add_test(tc, test_embeddings);
    tcase_add_test(tc, test_embedding_errors);
    tcase_add_test(tc, test_alloc_failures);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
