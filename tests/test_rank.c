/* Rank module: point sets, kernel matrices, spectra, rank measures, predictions, the dense and
 * the randomized probe, determinism, and every bad input. The n = 1024 generic ranks and the
 * n = 4096 agreement live in test_rank_slow.c. */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "rank/rank_internal.h"
#include "test_rank_util.h"

/* ---- point sets ------------------------------------------------------------------------ */

START_TEST(test_points_gauss_default_sigma)
{
    size_t n = 4000, d = 5;
    kat_dmat X = tr_points(KAT_RANK_DIST_GAUSS, n, d, 7);
    double sum = 0, sumsq = 0;
    for (size_t i = 0; i < n * d; i++) {
        sum += X.data[i];
        sumsq += X.data[i] * X.data[i];
    }
    double N = (double)(n * d), var = sumsq / N;
    /* N(0, 1/d): mean within 5 standard errors, variance within 5 standard errors of its
     * estimate (the variance of x^2 is 2 sigma^4). */
    ck_assert_double_lt(fabs(sum / N), 5.0 * sqrt(1.0 / d / N));
    ck_assert_double_lt(fabs(var - 1.0 / d), 5.0 * sqrt(2.0 / N) / d);
    kat_dmat_free(&X);
}
END_TEST

START_TEST(test_points_sets)
{
    kat_rng *rng;
    TU_OK(kat_rng_create(3, &rng));
    kat_rank_points_opts o;
    kat_dmat X;
    TU_OK(kat_dmat_alloc(200, 4, &X));
    kat_rank_points_opts_init(&o);
    o.dist = KAT_RANK_DIST_UNIFORM;
    o.bound = 2.5;
    TU_OK(kat_rank_points(&o, rng, &X));
    for (size_t i = 0; i < 800; i++)
        ck_assert(X.data[i] >= -2.5 && X.data[i] <= 2.5);
    o.dist = KAT_RANK_DIST_SPHERE;
    TU_OK(kat_rank_points(&o, rng, &X));
    for (size_t i = 0; i < 200; i++) {
        double r = 0;
        for (size_t t = 0; t < 4; t++)
            r += X.data[i * 4 + t] * X.data[i * 4 + t];
        ck_assert_double_eq_tol(r, 1.0, 8 * DBL_EPSILON);
    }
    o.dist = KAT_RANK_DIST_HYPERCUBE;
    TU_OK(kat_rank_points(&o, rng, &X));
    for (size_t i = 0; i < 800; i++)
        ck_assert(X.data[i] == 0.0 || X.data[i] == 1.0);
    o.pm1 = 1;
    TU_OK(kat_rank_points(&o, rng, &X));
    for (size_t i = 0; i < 800; i++)
        ck_assert(X.data[i] == -1.0 || X.data[i] == 1.0);
    double sides[4] = {0.5, 2, 3, -1};
    o.dist = KAT_RANK_DIST_RECT;
    o.sides = sides;
    o.nsides = 4;
    TU_OK(kat_rank_points(&o, rng, &X));
    for (size_t i = 0; i < 200; i++)
        for (size_t t = 0; t < 4; t++)
            ck_assert(X.data[i * 4 + t] == 0.0 || X.data[i * 4 + t] == sides[t]);
    o.dist = KAT_RANK_DIST_GRID;
    o.levels = 5;
    TU_OK(kat_rank_points(&o, rng, &X));
    int seen_top = 0;
    for (size_t i = 0; i < 800; i++) {
        double v = X.data[i];
        ck_assert(v >= 0 && v <= 4 && v == floor(v));
        seen_top |= v == 4.0;
    }
    ck_assert(seen_top);
    kat_dmat_free(&X);
    kat_rng_destroy(rng);
}
END_TEST

START_TEST(test_points_enumerate)
{
    kat_rank_points_opts o;
    kat_rank_points_opts_init(&o);
    o.dist = KAT_RANK_DIST_HYPERCUBE;
    o.enumerate = 1;
    kat_dmat X;
    TU_OK(kat_dmat_alloc(8, 3, &X));
    TU_OK(kat_rank_points(&o, NULL, &X));   /* no rng needed */
    for (size_t i = 0; i < 8; i++)
        for (size_t t = 0; t < 3; t++)   /* coordinate 0 varies slowest: binary digits of i */
            ck_assert_double_eq(X.data[i * 3 + t], (double)((i >> (2 - t)) & 1));
    /* a grid of 3 levels in d = 2, first 5 points: (0,0) (0,1) (0,2) (1,0) (1,1) */
    kat_dmat G;
    TU_OK(kat_dmat_alloc(5, 2, &G));
    o.dist = KAT_RANK_DIST_GRID;
    o.levels = 3;
    TU_OK(kat_rank_points(&o, NULL, &G));
    const double want[10] = {0, 0, 0, 1, 0, 2, 1, 0, 1, 1};
    for (int i = 0; i < 10; i++)
        ck_assert_double_eq(G.data[i], want[i]);
    /* 9 points exist, 10 asked */
    kat_dmat_free(&G);
    TU_OK(kat_dmat_alloc(10, 2, &G));
    TU_EXPECT_ERR(kat_rank_points(&o, NULL, &G), KAT_EINVAL, "only 9");
    kat_dmat_free(&G);
    kat_dmat_free(&X);
}
END_TEST

START_TEST(test_points_deterministic_and_errors)
{
    kat_dmat A = tr_points(KAT_RANK_DIST_SPHERE, 50, 3, 11);
    kat_dmat B = tr_points(KAT_RANK_DIST_SPHERE, 50, 3, 11);
    kat_dmat C = tr_points(KAT_RANK_DIST_SPHERE, 50, 3, 12);
    ck_assert(memcmp(A.data, B.data, 150 * sizeof(double)) == 0);
    ck_assert(memcmp(A.data, C.data, 150 * sizeof(double)) != 0);
    kat_rng *rng;
    TU_OK(kat_rng_create(1, &rng));
    kat_rank_points_opts o;
    kat_rank_points_opts_init(&o);
    kat_dmat E = {0, 3, 3, NULL};   /* n = 0: nothing to draw */
    TU_OK(kat_rank_points(&o, rng, &E));
    memcpy(B.data, A.data, 150 * sizeof(double));
    TU_EXPECT_ERR(kat_rank_points(NULL, rng, &A), KAT_EINVAL, "opts");
    TU_EXPECT_ERR(kat_rank_points(&o, rng, NULL), KAT_EINVAL, "X is NULL");
    TU_EXPECT_ERR(kat_rank_points(&o, NULL, &A), KAT_EINVAL, "rng");
    kat_dmat Z = {4, 0, 0, A.data};
    TU_EXPECT_ERR(kat_rank_points(&o, rng, &Z), KAT_EINVAL, "d >= 1");
    kat_dmat S = {4, 3, 2, A.data};
    TU_EXPECT_ERR(kat_rank_points(&o, rng, &S), KAT_EINVAL, "ld = 2");
    o.sigma = -1;
    TU_EXPECT_ERR(kat_rank_points(&o, rng, &A), KAT_EINVAL, "sigma");
    kat_rank_points_opts_init(&o);
    o.dist = KAT_RANK_DIST_UNIFORM;
    o.bound = 0;
    TU_EXPECT_ERR(kat_rank_points(&o, rng, &A), KAT_EINVAL, "bound");
    o.dist = KAT_RANK_DIST_GRID;
    o.levels = 0;
    TU_EXPECT_ERR(kat_rank_points(&o, rng, &A), KAT_EINVAL, "levels");
    double sides[3] = {1, NAN, 2};
    o.dist = KAT_RANK_DIST_RECT;
    o.sides = sides;
    o.nsides = 2;
    TU_EXPECT_ERR(kat_rank_points(&o, rng, &A), KAT_EINVAL, "nsides = 2");
    o.nsides = 3;
    TU_EXPECT_ERR(kat_rank_points(&o, rng, &A), KAT_EINVAL, "sides[1]");
    o.sides = NULL;
    TU_EXPECT_ERR(kat_rank_points(&o, rng, &A), KAT_EINVAL, "sides");
    kat_rank_points_opts_init(&o);
    o.enumerate = 1;
    TU_EXPECT_ERR(kat_rank_points(&o, rng, &A), KAT_EINVAL, "enumerate");
    o.dist = (kat_rank_dist)17;
    TU_EXPECT_ERR(kat_rank_points(&o, rng, &A), KAT_EINVAL, "17");
    ck_assert(memcmp(A.data, B.data, 150 * sizeof(double)) == 0);   /* untouched */
    kat_rank_dist dist;
    TU_OK(kat_rank_dist_parse("rect", &dist));
    ck_assert_int_eq(dist, KAT_RANK_DIST_RECT);
    ck_assert_str_eq(kat_rank_dist_name(KAT_RANK_DIST_GRID), "grid");
    ck_assert_ptr_null(kat_rank_dist_name((kat_rank_dist)99));
    TU_EXPECT_ERR(kat_rank_dist_parse("normal", &dist), KAT_EINVAL, "'normal'");
    kat_rank_form form;
    TU_OK(kat_rank_form_parse("l2sq", &form));
    ck_assert_int_eq(form, KAT_RANK_L2SQ);
    TU_EXPECT_ERR(kat_rank_form_parse("cosine", &form), KAT_EINVAL, "'cosine'");
    kat_rng_destroy(rng);
    kat_dmat_free(&A);
    kat_dmat_free(&B);
    kat_dmat_free(&C);
}
END_TEST

/* ---- kernel matrices --------------------------------------------------------------------- */

/* Naive M(i, j) and an error bound for the GEMM-built value from the error model: the
 * argument carries at most (2d + 4) eps relative to the sum of the magnitudes of its terms,
 * and f moves it by |f'| times that (f' = f for exp, 1 for the identity). */
static void naive_entry(kat_rank_form form, double s, const double *q, const double *k,
                        size_t d, int use_exp, double *val, double *bound)
{
    double arg = 0, mag = 0;
    for (size_t t = 0; t < d; t++) {
        double diff = q[t] - k[t];
        if (form == KAT_RANK_INNER) {
            arg += q[t] * k[t];
            mag += fabs(q[t] * k[t]);
        } else if (form == KAT_RANK_L2SQ) {
            arg += diff * diff;
            mag += q[t] * q[t] + k[t] * k[t];
        } else {
            arg += fabs(diff);
            mag += fabs(diff);
        }
    }
    arg *= s;
    double err_arg = (2.0 * d + 4) * DBL_EPSILON * fabs(s) * mag;
    *val = use_exp ? exp(arg) : arg;
    *bound = (use_exp ? *val * (err_arg + 2 * DBL_EPSILON) : err_arg) + DBL_MIN;
}

START_TEST(test_kernel_matrix_matches_naive)
{
    /* n = 300 is not a multiple of the 256-row tile; the views have padding (ld > cols). */
    size_t n = tu_quick() ? 70 : 300, m = 37, d = 5;
    kat_dmat Q = tr_points_ld(KAT_RANK_DIST_GAUSS, n, d, d + 3, 1);
    kat_dmat K = tr_points_ld(KAT_RANK_DIST_UNIFORM, m, d, d + 1, 2);
    kat_dmat M = {n, m, m + 5, calloc(n * (m + 5), sizeof(double))};
    kat_fn *fexp;
    TU_OK(kat_fn_builtin("exp", &fexp));
    for (int form = 0; form < KAT_RANK_FORM_COUNT; form++)
        for (int use_exp = 0; use_exp < 2; use_exp++) {
            double s = use_exp ? 0.7 : -1.3;
            TU_OK(kat_rank_kernel_matrix(use_exp ? fexp : NULL, (kat_rank_form)form, s, &Q, &K,
                                         &M));
            for (size_t i = 0; i < n; i++)
                for (size_t j = 0; j < m; j++) {
                    double want, bound;
                    naive_entry((kat_rank_form)form, s, Q.data + i * Q.ld, K.data + j * K.ld, d,
                                use_exp, &want, &bound);
                    double got = M.data[i * M.ld + j];
                    ck_assert_msg(fabs(got - want) <= bound,
                                  "form %d exp %d M(%zu,%zu) = %.17g, naive %.17g, bound %g",
                                  form, use_exp, i, j, got, want, bound);
                }
        }
    /* Edge sizes: 1 x 1, and an empty side. */
    kat_dmat Q1 = {1, d, Q.ld, Q.data}, K1 = {1, d, K.ld, K.data};
    double one;
    kat_dmat M1 = {1, 1, 1, &one};
    TU_OK(kat_rank_kernel_matrix(fexp, KAT_RANK_INNER, 1.0, &Q1, &K1, &M1));
    double want, bound;
    naive_entry(KAT_RANK_INNER, 1.0, Q.data, K.data, d, 1, &want, &bound);
    ck_assert(fabs(one - want) <= bound);
    kat_dmat K0 = {0, d, d, NULL}, M0 = {n, 0, 0, NULL};
    TU_OK(kat_rank_kernel_matrix(fexp, KAT_RANK_L1, 1.0, &Q, &K0, &M0));
    kat_fn_destroy(fexp);
    free(M.data);
    kat_dmat_free(&Q);
    kat_dmat_free(&K);
}
END_TEST

START_TEST(test_kernel_matrix_errors)
{
    size_t n = 6, m = 4, d = 3;
    kat_dmat Q = tr_points(KAT_RANK_DIST_GAUSS, n, d, 1);
    kat_dmat K = tr_points(KAT_RANK_DIST_GAUSS, m, d, 2);
    kat_dmat M;
    TU_OK(kat_dmat_alloc(n, m, &M));
    kat_fn *f;
    TU_OK(kat_fn_builtin("exp", &f));
    TU_EXPECT_ERR(kat_rank_kernel_matrix(f, KAT_RANK_INNER, 1, NULL, &K, &M), KAT_EINVAL,
                  "Q is NULL");
    TU_EXPECT_ERR(kat_rank_kernel_matrix(f, KAT_RANK_INNER, 1, &Q, NULL, &M), KAT_EINVAL,
                  "K is NULL");
    TU_EXPECT_ERR(kat_rank_kernel_matrix(f, KAT_RANK_INNER, 1, &Q, &K, NULL), KAT_EINVAL,
                  "M is NULL");
    kat_dmat K2 = {m, 2, 3, K.data};
    TU_EXPECT_ERR(kat_rank_kernel_matrix(f, KAT_RANK_INNER, 1, &Q, &K2, &M), KAT_EINVAL,
                  "K has d = 2");
    kat_dmat Qz = {n, 0, 0, Q.data};
    kat_dmat Kz = {m, 0, 0, K.data};
    TU_EXPECT_ERR(kat_rank_kernel_matrix(f, KAT_RANK_INNER, 1, &Qz, &Kz, &M), KAT_EINVAL,
                  "d >= 1");
    kat_dmat Qs = {n, d, 2, Q.data};   /* stride smaller than a row */
    TU_EXPECT_ERR(kat_rank_kernel_matrix(f, KAT_RANK_INNER, 1, &Qs, &K, &M), KAT_EINVAL,
                  "ld = 2");
    kat_dmat Qo = {SIZE_MAX / 4, d, d, Q.data};   /* rows * ld overflows */
    TU_EXPECT_ERR(kat_rank_kernel_matrix(f, KAT_RANK_INNER, 1, &Qo, &K, &M), KAT_ERANGE,
                  "overflow");
    kat_dmat Mw = {n, m + 1, m + 1, M.data};
    TU_EXPECT_ERR(kat_rank_kernel_matrix(f, KAT_RANK_INNER, 1, &Q, &K, &Mw), KAT_EINVAL,
                  "expected n x m = 6 x 4");
    kat_dmat Ma = {n, m, m, Q.data + 2};   /* output on top of an input */
    TU_EXPECT_ERR(kat_rank_kernel_matrix(f, KAT_RANK_INNER, 1, &Q, &K, &Ma), KAT_EINVAL,
                  "overlaps Q");
    TU_EXPECT_ERR(kat_rank_kernel_matrix(f, (kat_rank_form)9, 1, &Q, &K, &M), KAT_EINVAL,
                  "form = 9");
    TU_EXPECT_ERR(kat_rank_kernel_matrix(f, KAT_RANK_INNER, NAN, &Q, &K, &M), KAT_EINVAL,
                  "scale");
    double saved = Q.data[4];
    Q.data[4] = NAN;
    TU_EXPECT_ERR(kat_rank_kernel_matrix(f, KAT_RANK_INNER, 1, &Q, &K, &M), KAT_EDOM,
                  "Q: entry (1, 1)");
    Q.data[4] = saved;
    K.data[11] = INFINITY;
    TU_EXPECT_ERR(kat_rank_kernel_matrix(f, KAT_RANK_L1, 1, &Q, &K, &M), KAT_EDOM,
                  "K: entry (3, 2)");
    K.data[11] = 0.5;
    /* f not finite: exp overflows at s = 1e4; the message names f and the entry. */
    TU_EXPECT_ERR(kat_rank_kernel_matrix(f, KAT_RANK_L2SQ, 1e4, &Q, &K, &M), KAT_EDOM,
                  "f = exp is inf at M(");
    kat_fn_destroy(f);
    kat_dmat_free(&M);
    kat_dmat_free(&Q);
    kat_dmat_free(&K);
}
END_TEST

/* phi(x) = psi(x) = [1, sqrt(2) x, x (x) x]: phi(q).psi(k) = (1 + q.k)^2 with D = 1 + d + d^2
 * features, of which only C(d + 2, 2) are independent. */
static kat_status quad_apply(const void *state, kat_side side, size_t n, const double *x,
                             size_t ldx, double *f, size_t ldf)
{
    size_t d = *(const size_t *)state;
    for (size_t i = 0; i < n; i++) {
        const double *xi = x + i * ldx;
        double *fi = f + i * ldf;
        fi[0] = 1.0;
        for (size_t t = 0; t < d; t++)
            fi[1 + t] = sqrt(2.0) * xi[t];
        for (size_t t = 0; t < d; t++)
            for (size_t u = 0; u < d; u++)
                fi[1 + d + t * d + u] = xi[t] * xi[u];
    }
    return KAT_OK;
}
static const kat_featmap_ops quad_ops = {.name = "quad", .apply = quad_apply};

START_TEST(test_featmap_matrix_and_probe)
{
    static size_t d = 3;
    size_t n = 40, m = 33, D = 1 + d + d * d;
    kat_featmap *fm;
    TU_OK(kat_featmap_create(&quad_ops, &d, d, D, KAT_FEATMAP_EXACT, &fm));
    kat_dmat Q = tr_points(KAT_RANK_DIST_GAUSS, n, d, 5);
    kat_dmat K = tr_points(KAT_RANK_DIST_GAUSS, m, d, 6);
    kat_dmat M, R;
    TU_OK(kat_dmat_alloc(n, m, &M));
    TU_OK(kat_dmat_alloc(n, m, &R));
    TU_OK(kat_rank_featmap_matrix(fm, &Q, &K, &M));
    double c[3] = {1, 2, 1};
    kat_fn *f;
    TU_OK(kat_fn_poly(c, 3, &f));
    TU_OK(kat_rank_kernel_matrix(f, KAT_RANK_INNER, 1, &Q, &K, &R));
    for (size_t i = 0; i < n * m; i++)   /* both ~ (1 + q.k)^2 <= 16; D-term sums */
        ck_assert_double_eq_tol(M.data[i], R.data[i], 4.0 * D * DBL_EPSILON * 16);
    /* Through the same probe: rank C(d + 2, 2) = 10, not D = 13. */
    kat_rank_opts o;
    kat_rank_opts_init(&o);
    kat_rank_result res;
    TU_OK(kat_rank_probe_featmap(fm, &Q, &K, &o, &res));
    ck_assert_uint_eq(res.rank, 10);
    ck_assert_uint_eq(res.predicted_rank, KAT_RANK_NONE);
    kat_rank_result_free(&res);
    o.method = KAT_RANK_RANDOMIZED;
    TU_OK(kat_rank_probe_featmap(fm, &Q, &K, &o, &res));
    ck_assert_uint_eq(res.rank, 10);
    kat_rank_result_free(&res);
    /* errors: d differs from the map's, NULL map */
    kat_dmat Q2 = tr_points(KAT_RANK_DIST_GAUSS, n, 2, 5), K2 = tr_points(KAT_RANK_DIST_GAUSS, m, 2, 6);
    TU_EXPECT_ERR(kat_rank_featmap_matrix(fm, &Q2, &K2, &M), KAT_EINVAL, "takes 3");
    TU_EXPECT_ERR(kat_rank_probe_featmap(fm, &Q2, &K2, &o, &res), KAT_EINVAL, "takes 3");
    TU_EXPECT_ERR(kat_rank_featmap_matrix(NULL, &Q, &K, &M), KAT_EINVAL, "fm is NULL");
    TU_EXPECT_ERR(kat_rank_probe_featmap(NULL, &Q, &K, &o, &res), KAT_EINVAL, "fm is NULL");
    kat_dmat_free(&Q2);
    kat_dmat_free(&K2);
    kat_fn_destroy(f);
    kat_featmap_destroy(fm);
    kat_dmat_free(&M);
    kat_dmat_free(&R);
    kat_dmat_free(&Q);
    kat_dmat_free(&K);
}
END_TEST

/* ---- spectra ----------------------------------------------------------------------------- */

/* Householder reflector H = I - 2 v v^T / |v|^2 applied to the rows (left) of a n x m matrix. */
static void reflect_left(double *A, size_t n, size_t m, const double *v)
{
    double vv = 0;
    for (size_t i = 0; i < n; i++)
        vv += v[i] * v[i];
    for (size_t j = 0; j < m; j++) {
        double dot = 0;
        for (size_t i = 0; i < n; i++)
            dot += v[i] * A[i * m + j];
        for (size_t i = 0; i < n; i++)
            A[i * m + j] -= 2 * v[i] * dot / vv;
    }
}
static void reflect_right(double *A, size_t n, size_t m, const double *v)
{
    double vv = 0;
    for (size_t j = 0; j < m; j++)
        vv += v[j] * v[j];
    for (size_t i = 0; i < n; i++) {
        double dot = 0;
        for (size_t j = 0; j < m; j++)
            dot += A[i * m + j] * v[j];
        for (size_t j = 0; j < m; j++)
            A[i * m + j] -= 2 * dot * v[j] / vv;
    }
}

/* M = H_1 diag(sigma) H_2 for reflectors H: its singular values are sigma, exactly known. */
static double *known_spectrum_matrix(size_t n, size_t m, const double *sigma, uint64_t seed)
{
    double *A = calloc(n * m, sizeof(double));
    size_t mn = n < m ? n : m;
    for (size_t i = 0; i < mn; i++)
        A[i * m + i] = sigma[(i * 7) % mn];   /* permuted: the routine must sort */
    kat_rng *rng;
    kat_rng_create(seed, &rng);
    double *v = malloc((n > m ? n : m) * sizeof(double));
    for (int r = 0; r < 2; r++) {
        for (size_t i = 0; i < n; i++)
            v[i] = kat_rng_gaussian(rng, 1);
        reflect_left(A, n, m, v);
        for (size_t j = 0; j < m; j++)
            v[j] = kat_rng_gaussian(rng, 1);
        reflect_right(A, n, m, v);
    }
    free(v);
    kat_rng_destroy(rng);
    return A;
}

START_TEST(test_spectrum_known)
{
    const size_t shapes[][2] = {{30, 30}, {45, 20}, {20, 45}, {1, 1}, {1, 9}, {9, 1}};
    for (size_t sh = 0; sh < sizeof shapes / sizeof shapes[0]; sh++) {
        size_t n = shapes[sh][0], m = shapes[sh][1], mn = n < m ? n : m;
        double *sigma = malloc(mn * sizeof(double));
        for (size_t i = 0; i < mn; i++)   /* 7 is coprime with the sizes: a permutation */
            sigma[i] = pow(10.0, -0.5 * (double)i) * (i % 3 == 2 ? 0.0 : 1.0) + (i == 0 ? 2 : 0);
        double *A = known_spectrum_matrix(n, m, sigma, 100 + sh);
        /* a padded view of A */
        size_t ld = m + 3;
        double *P = malloc(n * ld * sizeof(double));
        for (size_t i = 0; i < n; i++) {
            memcpy(P + i * ld, A + i * m, m * sizeof(double));
            for (size_t j = m; j < ld; j++)
                P[i * ld + j] = NAN;   /* padding must never be read */
        }
        double *copy = malloc(n * ld * sizeof(double));
        memcpy(copy, P, n * ld * sizeof(double));
        kat_dmat M = {n, m, ld, P};
        double *sv = malloc((mn + 1) * sizeof(double));
        TU_OK(kat_rank_spectrum(&M, sv, mn + 1));
        ck_assert(memcmp(P, copy, n * ld * sizeof(double)) == 0 || mn == 0);   /* untouched */
        double *want = malloc(mn * sizeof(double));
        memcpy(want, sigma, mn * sizeof(double));
        for (size_t i = 0; i < mn; i++)   /* sort descending */
            for (size_t j = i + 1; j < mn; j++)
                if (want[j] > want[i]) {
                    double t = want[i];
                    want[i] = want[j];
                    want[j] = t;
                }
        /* Backward-stable SVD: |sigma_i - computed| <= c max(n, m) eps sigma_1 (the reflections
         * that built A add as much again). */
        double tol = 20.0 * (double)(n > m ? n : m) * DBL_EPSILON * want[0];
        for (size_t i = 0; i < mn; i++) {
            ck_assert_msg(fabs(sv[i] - want[i]) <= tol, "%zux%zu sv[%zu] = %.17g, want %.17g",
                          n, m, i, sv[i], want[i]);
            if (i)
                ck_assert(sv[i] <= sv[i - 1]);
        }
        free(A);
        free(P);
        free(copy);
        free(sv);
        free(want);
        free(sigma);
    }
}
END_TEST

START_TEST(test_spectrum_rank_one_and_errors)
{
    /* u v^T has the single singular value |u| |v|. */
    double u[5] = {1, -2, 3, 0.5, 4}, v[3] = {2, 2, -1}, A[15], sv[3];
    for (int i = 0; i < 5; i++)
        for (int j = 0; j < 3; j++)
            A[i * 3 + j] = u[i] * v[j];
    kat_dmat M = {5, 3, 3, A};
    TU_OK(kat_rank_spectrum(&M, sv, 3));
    double nu = sqrt(1 + 4 + 9 + 0.25 + 16), nv = 3;
    ck_assert_double_eq_tol(sv[0], nu * nv, 10 * 5 * DBL_EPSILON * nu * nv);
    ck_assert_double_le(sv[1], 10 * 5 * DBL_EPSILON * nu * nv);
    size_t r;
    double tol;
    TU_OK(kat_rank_numerical(sv, 3, 5, 3, 0, 0, &r, &tol));
    ck_assert_uint_eq(r, 1);
    /* empty */
    kat_dmat E = {0, 4, 4, NULL};
    TU_OK(kat_rank_spectrum(&E, NULL, 0));
    /* errors; sv untouched */
    double keep[3] = {-1, -1, -1};
    TU_EXPECT_ERR(kat_rank_spectrum(NULL, keep, 3), KAT_EINVAL, "M is NULL");
    TU_EXPECT_ERR(kat_rank_spectrum(&M, NULL, 3), KAT_EINVAL, "sv is NULL");
    TU_EXPECT_ERR(kat_rank_spectrum(&M, keep, 2), KAT_EINVAL, "nsv = 2");
    kat_dmat S = {5, 3, 2, A};
    TU_EXPECT_ERR(kat_rank_spectrum(&S, keep, 3), KAT_EINVAL, "ld = 2");
    kat_dmat O = {SIZE_MAX / 2, 3, 3, A};
    TU_EXPECT_ERR(kat_rank_spectrum(&O, keep, 3), KAT_ERANGE, "overflow");
    kat_dmat Big = {1u << 20, 1u << 20, 1u << 20, A};   /* 8 TiB: more than any machine here */
    TU_EXPECT_ERR(kat_rank_spectrum(&Big, keep, 1u << 20), KAT_ENOMEM, "GiB");
    A[7] = NAN;
    TU_EXPECT_ERR(kat_rank_spectrum(&M, keep, 3), KAT_EDOM, "entry (2, 1)");
    for (int i = 0; i < 3; i++)
        ck_assert_double_eq(keep[i], -1);
}
END_TEST

/* ---- rank measures ------------------------------------------------------------------------ */

START_TEST(test_measures)
{
    const double sv[5] = {10, 5, 1, 1e-3, 0};
    size_t r;
    double tol;
    /* default: 10 * max(7, 5) * eps */
    TU_OK(kat_rank_numerical(sv, 5, 7, 5, 0, 0, &r, &tol));
    ck_assert_double_eq(tol, 10 * 7 * DBL_EPSILON);
    ck_assert_uint_eq(r, 4);
    TU_OK(kat_rank_numerical(sv, 5, 7, 5, 0.1, 0, &r, &tol));   /* tol 1: 1 is not > 1 */
    ck_assert_uint_eq(r, 2);
    ck_assert_double_eq(tol, 1.0);
    TU_OK(kat_rank_numerical(sv, 5, 7, 5, 0.01, 2.0, &r, &tol));   /* max(2, 0.1) */
    ck_assert_uint_eq(r, 2);
    ck_assert_double_eq(tol, 2.0);
    TU_OK(kat_rank_numerical(sv, 5, 7, 5, 0, 1e-4, &r, NULL));
    ck_assert_uint_eq(r, 4);
    TU_OK(kat_rank_numerical(sv, 0, 0, 5, 0, 0, &r, &tol));   /* empty */
    ck_assert_uint_eq(r, 0);
    const double zero[3] = {0, 0, 0};
    TU_OK(kat_rank_numerical(zero, 3, 3, 3, 0, 0, &r, &tol));
    ck_assert_uint_eq(r, 0);

    /* eps-ranks: spectral least r with sv[r] <= eps sv[0] */
    TU_OK(kat_rank_eps_spectral(sv, 5, 0.1, &r));   /* 1 <= 1 */
    ck_assert_uint_eq(r, 2);
    TU_OK(kat_rank_eps_spectral(sv, 5, 0.0, &r));
    ck_assert_uint_eq(r, 4);
    TU_OK(kat_rank_eps_spectral(sv, 5, 1.0, &r));
    ck_assert_uint_eq(r, 0);
    /* Frobenius: |M|_F^2 = 126.000001; tails: r=2 -> 1.000001, r=3 -> 1e-6, r=4 -> 0 */
    double fro = sqrt(100 + 25 + 1 + 1e-6);
    TU_OK(kat_rank_eps_frobenius(sv, 5, 1.0000005 / fro, &r));   /* tail^(1/2) at r=2 is 1.0000005 */
    ck_assert_uint_eq(r, 2);
    TU_OK(kat_rank_eps_frobenius(sv, 5, 0.999 / fro, &r));
    ck_assert_uint_eq(r, 3);
    TU_OK(kat_rank_eps_frobenius(sv, 5, 0.0, &r));
    ck_assert_uint_eq(r, 4);
    TU_OK(kat_rank_eps_frobenius(sv, 5, 1.0, &r));
    ck_assert_uint_eq(r, 0);

    double x;
    TU_OK(kat_rank_stable(sv, 5, &x));
    ck_assert_double_eq_tol(x, (100 + 25 + 1 + 1e-6) / 100, 4 * DBL_EPSILON);
    TU_OK(kat_rank_stable(zero, 3, &x));
    ck_assert_double_eq(x, 0);
    const double flat[4] = {3, 3, 3, 3}, one[2] = {2, 0};
    TU_OK(kat_rank_effective(flat, 4, &x));   /* uniform p: exp(log 4) = 4 */
    ck_assert_double_eq_tol(x, 4.0, 8 * DBL_EPSILON);
    TU_OK(kat_rank_effective(one, 2, &x));
    ck_assert_double_eq_tol(x, 1.0, 2 * DBL_EPSILON);
    TU_OK(kat_rank_effective(sv, 5, &x));
    double s = 16.001, h = 0;
    for (int i = 0; i < 4; i++)
        h -= sv[i] / s * log(sv[i] / s);
    ck_assert_double_eq_tol(x, exp(h), 16 * DBL_EPSILON * exp(h));
    TU_OK(kat_rank_effective(zero, 3, &x));
    ck_assert_double_eq(x, 0);

    /* errors */
    TU_EXPECT_ERR(kat_rank_numerical(sv, 5, 7, 5, -1, 0, &r, &tol), KAT_EINVAL, "rtol = -1");
    TU_EXPECT_ERR(kat_rank_numerical(sv, 5, 7, 5, 0, INFINITY, &r, &tol), KAT_EINVAL, "atol");
    TU_EXPECT_ERR(kat_rank_numerical(sv, 5, 4, 4, 0, 0, &r, &tol), KAT_EINVAL, "k = 5");
    TU_EXPECT_ERR(kat_rank_numerical(NULL, 5, 7, 5, 0, 0, &r, &tol), KAT_EINVAL, "sv is NULL");
    TU_EXPECT_ERR(kat_rank_numerical(sv, 5, 7, 5, 0, 0, NULL, &tol), KAT_EINVAL, "rank is NULL");
    const double up[3] = {1, 2, 0}, neg[2] = {1, -1}, nan3[2] = {NAN, 0};
    TU_EXPECT_ERR(kat_rank_numerical(up, 3, 3, 3, 0, 0, &r, &tol), KAT_EINVAL, "descending");
    TU_EXPECT_ERR(kat_rank_stable(neg, 2, &x), KAT_EINVAL, "negative");
    TU_EXPECT_ERR(kat_rank_effective(nan3, 2, &x), KAT_EDOM, "sv[0]");
    TU_EXPECT_ERR(kat_rank_eps_spectral(sv, 5, -0.1, &r), KAT_EINVAL, "eps");
    TU_EXPECT_ERR(kat_rank_eps_frobenius(sv, 5, NAN, &r), KAT_EINVAL, "eps");
    TU_EXPECT_ERR(kat_rank_eps_frobenius(sv, 5, 0.1, NULL), KAT_EINVAL, "rank is NULL");
    TU_EXPECT_ERR(kat_rank_stable(sv, 5, NULL), KAT_EINVAL, "out");
    TU_EXPECT_ERR(kat_rank_effective(sv, 5, NULL), KAT_EINVAL, "out");
}
END_TEST

/* ---- predictions ------------------------------------------------------------------------- */

START_TEST(test_binomial)
{
    /* Pascal's triangle with saturating sums is an independent reference. */
    static size_t row[102];
    memset(row, 0, sizeof row);
    row[0] = 1;
    for (size_t n = 0; n <= 100; n++) {
        for (size_t k = 0; k <= n; k++)
            ck_assert_msg(kat_rank_binomial(n, k) == row[k], "C(%zu, %zu)", n, k);
        ck_assert_uint_eq(kat_rank_binomial(n, n + 1), 0);
        for (size_t k = n + 1; k > 0; k--)
            row[k] = row[k] > SIZE_MAX - row[k - 1] ? SIZE_MAX : row[k] + row[k - 1];
    }
    ck_assert_uint_eq(kat_rank_binomial(14, 10), 1001);
    ck_assert_uint_eq(kat_rank_binomial(66, 33), 7219428434016265740ull);
    ck_assert_uint_eq(kat_rank_binomial(68, 34), SIZE_MAX);
    ck_assert_uint_eq(kat_rank_binomial(SIZE_MAX, 1), SIZE_MAX);
    ck_assert_uint_eq(kat_rank_binomial(SIZE_MAX, 2), SIZE_MAX);
    ck_assert_uint_eq(kat_rank_binomial(SIZE_MAX, SIZE_MAX), 1);
    ck_assert_uint_eq(kat_rank_binomial(1u << 20, 3), (size_t)(1u << 20) * ((1u << 20) - 1) / 2 *
                                                          ((1u << 20) - 2) / 3);
}
END_TEST

START_TEST(test_predict)
{
    size_t p;
    double c1[4] = {1, 3, 3, 1}, c2[5] = {0, 1, 0, 0, 1}, c3[3] = {0, 0, 0}, c4[3] = {2, 0, 5};
    kat_fn *f1, *f2, *f3, *f4, *fe, *fs;
    TU_OK(kat_fn_poly(c1, 4, &f1));
    TU_OK(kat_fn_poly(c2, 5, &f2));
    TU_OK(kat_fn_poly(c3, 3, &f3));
    TU_OK(kat_fn_poly(c4, 3, &f4));
    TU_OK(kat_fn_builtin("exp", &fe));
    TU_OK(kat_fn_pow(3, &fs));
    TU_OK(kat_rank_predict(f1, KAT_RANK_INNER, 1, 6, 400, 400, &p));
    ck_assert_uint_eq(p, 84);   /* 1 + 6 + 21 + 56 */
    TU_OK(kat_rank_predict(f2, KAT_RANK_INNER, 1, 6, 400, 400, &p));
    ck_assert_uint_eq(p, 132);   /* 6 + 126 */
    TU_OK(kat_rank_predict(fs, KAT_RANK_INNER, 1, 6, 400, 50, &p));
    ck_assert_uint_eq(p, 50);   /* 56 clamped to min(n, m) */
    TU_OK(kat_rank_predict(f1, KAT_RANK_INNER, 1, 8, 65536, 65536, &p));
    ck_assert_uint_eq(p, 165);
    TU_OK(kat_rank_predict(NULL, KAT_RANK_INNER, 1, 6, 400, 400, &p));   /* identity */
    ck_assert_uint_eq(p, 6);
    TU_OK(kat_rank_predict(f3, KAT_RANK_INNER, 1, 6, 400, 400, &p));   /* zero polynomial */
    ck_assert_uint_eq(p, 0);
    TU_OK(kat_rank_predict(f1, KAT_RANK_INNER, 0, 6, 400, 400, &p));   /* s = 0: f(0) = 1 */
    ck_assert_uint_eq(p, 1);
    TU_OK(kat_rank_predict(fs, KAT_RANK_INNER, 1, 0, 400, 400, &p));   /* QK^T = 0, f(0) = 0 */
    ck_assert_uint_eq(p, 0);
    TU_OK(kat_rank_predict(fs, KAT_RANK_INNER, 1, 1000000, 1u << 30, 1u << 30, &p));
    ck_assert_uint_eq(p, 1u << 30);   /* C(1000002, 3) > 2^30 */
    /* l2sq: C(p + r, r) + C(p + r - 1, r) */
    TU_OK(kat_rank_predict(f4, KAT_RANK_L2SQ, 1, 3, 300, 300, &p));
    ck_assert_uint_eq(p, 14);   /* 10 + 4 */
    TU_OK(kat_rank_predict(NULL, KAT_RANK_L2SQ, 1, 5, 300, 300, &p));
    ck_assert_uint_eq(p, 7);   /* distance matrices: d + 2 */
    TU_OK(kat_rank_predict(fs, KAT_RANK_L2SQ, 1, 5, 300, 300, &p));
    ck_assert_uint_eq(p, 77);   /* 56 + 21 */
    /* no prediction */
    TU_OK(kat_rank_predict(fe, KAT_RANK_INNER, 1, 6, 400, 400, &p));
    ck_assert_uint_eq(p, KAT_RANK_NONE);
    TU_OK(kat_rank_predict(f1, KAT_RANK_L1, 1, 6, 400, 400, &p));
    ck_assert_uint_eq(p, KAT_RANK_NONE);
    TU_EXPECT_ERR(kat_rank_predict(f1, KAT_RANK_INNER, 1, 6, 4, 4, NULL), KAT_EINVAL, "out");
    TU_EXPECT_ERR(kat_rank_predict(f1, (kat_rank_form)-1, 1, 6, 4, 4, &p), KAT_EINVAL, "form");
    TU_EXPECT_ERR(kat_rank_predict(f1, KAT_RANK_INNER, INFINITY, 6, 4, 4, &p), KAT_EINVAL,
                  "scale");
    kat_fn_destroy(f1);
    kat_fn_destroy(f2);
    kat_fn_destroy(f3);
    kat_fn_destroy(f4);
    kat_fn_destroy(fe);
    kat_fn_destroy(fs);
}
END_TEST

START_TEST(test_inner_rank_and_affine_dim)
{
    /* Q = A B with A 50 x 3, B 3 x 6: rank(Q K^T) = 3 whatever K is (K full rank). */
    size_t n = 50, m = 40, d = 6, r;
    kat_dmat A = tr_points(KAT_RANK_DIST_GAUSS, n, 3, 1), B = tr_points(KAT_RANK_DIST_GAUSS, 3, d, 2);
    kat_dmat K = tr_points(KAT_RANK_DIST_GAUSS, m, d, 3), Q;
    TU_OK(kat_dmat_alloc(n, d, &Q));
    for (size_t i = 0; i < n; i++)
        for (size_t t = 0; t < d; t++)
            for (size_t u = 0; u < 3; u++)
                Q.data[i * d + t] += A.data[i * 3 + u] * B.data[u * d + t];
    TU_OK(kat_rank_inner_rank(&Q, &K, &r));
    ck_assert_uint_eq(r, 3);
    TU_OK(kat_rank_inner_rank(&K, &K, &r));
    ck_assert_uint_eq(r, 6);
    kat_dmat K4 = {4, d, d, K.data};   /* fewer rows than d: R is 4 x 6 trapezoidal */
    TU_OK(kat_rank_inner_rank(&K4, &K, &r));
    ck_assert_uint_eq(r, 4);
    /* affine: the rows of Q shifted by a constant span a 3-dim affine set */
    for (size_t i = 0; i < n * d; i++)
        Q.data[i] += 5.0;
    kat_dmat Q10 = {10, d, d, Q.data}, Q12 = {12, d, d, Q.data + 10 * d};
    TU_OK(kat_rank_affine_dim(&Q10, &Q12, &r));
    ck_assert_uint_eq(r, 3);
    TU_OK(kat_rank_affine_dim(&Q, &K, &r));   /* with K: all of R^6 */
    ck_assert_uint_eq(r, 6);
    kat_dmat Q1 = {1, d, d, Q.data}, K0 = {0, d, d, NULL};
    TU_OK(kat_rank_affine_dim(&Q1, &K0, &r));   /* one point */
    ck_assert_uint_eq(r, 0);
    TU_EXPECT_ERR(kat_rank_inner_rank(&Q, &A, &r), KAT_EINVAL, "K has d = 3");
    TU_EXPECT_ERR(kat_rank_inner_rank(&Q, &K, NULL), KAT_EINVAL, "r is NULL");
    TU_EXPECT_ERR(kat_rank_affine_dim(NULL, &K, &r), KAT_EINVAL, "Q is NULL");
    kat_dmat_free(&A);
    kat_dmat_free(&B);
    kat_dmat_free(&K);
    kat_dmat_free(&Q);
}
END_TEST

/* ---- the probe ------------------------------------------------------------------------- */

/* The generic ranks at n = 400, d = 6 (numpy.linalg.matrix_rank gives the same). */
START_TEST(test_generic_ranks_n400)
{
    /* under valgrind n = 200 (every rank still below n); the theorem registry's quick
     * generic-ranks entry checks n = 400 there too */
    size_t n = tu_quick() ? 200 : 400, d = 6;
    kat_dmat Q = tr_points(KAT_RANK_DIST_GAUSS, n, d, 1);
    kat_dmat K = tr_points(KAT_RANK_DIST_GAUSS, n, d, 2);
    const tr_case cases[] = {
        {"x^2", {0, 0, 1}, 3, 21},  {"x^3", {0, 0, 0, 1}, 4, 56},
        {"(1+x)^3", {1, 3, 3, 1}, 4, 84}, {"x^4+x", {0, 1, 0, 0, 1}, 5, 132},
        {"exp", {0}, 0, n},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
        tr_check_generic(&cases[c], &Q, &K, KAT_RANK_DENSE);
    kat_dmat_free(&Q);
    kat_dmat_free(&K);
}
END_TEST

/* l2sq: the count C(p + d, d) + C(p + d - 1, d) against the dense rank. */
START_TEST(test_l2sq_prediction)
{
    size_t n = tu_quick() ? 120 : 200;
    for (size_t d = 3; d <= 5; d += 2) {
        kat_dmat Q = tr_points(KAT_RANK_DIST_GAUSS, n, d, 10 + d);
        kat_dmat K = tr_points(KAT_RANK_DIST_GAUSS, n, d, 20 + d);
        double polys[3][4] = {{0, 1}, {1, 2, 1}, {0, -0.5, 0, 1}};   /* x, (1+x)^2, x^3 - x/2 */
        size_t deg[3] = {1, 2, 3};
        for (int k = 0; k < 3; k++) {
            kat_fn *f;
            TU_OK(kat_fn_poly(polys[k], deg[k] + 1, &f));
            kat_rank_opts o;
            kat_rank_opts_init(&o);
            o.form = KAT_RANK_L2SQ;
            kat_rank_result r;
            TU_OK(kat_rank_probe(f, &Q, &K, &o, &r));
            size_t want = kat_rank_binomial(deg[k] + d, d) + kat_rank_binomial(deg[k] + d - 1, d);
            ck_assert_uint_eq(r.base_rank, d);
            ck_assert_uint_eq(r.predicted_rank, want);
            ck_assert_msg(r.rank == want, "d %zu poly %d: rank %zu, predicted %zu", d, k, r.rank,
                          want);
            kat_rank_result_free(&r);
            kat_fn_destroy(f);
        }
        kat_dmat_free(&Q);
        kat_dmat_free(&K);
    }
}
END_TEST

START_TEST(test_probe_hypercube_below_generic)
{
    /* On {0,1}^d, x^2 = x coordinate-wise, so (q.k)^2 has rank 1 + d + C(d, 2) < C(d + 1, 2) + ...:
     * the generic prediction is an upper bound there, and the probe sees the lower rank. */
    size_t d = 6, n = 64;
    kat_rank_points_opts po;
    kat_rank_points_opts_init(&po);
    po.dist = KAT_RANK_DIST_HYPERCUBE;
    po.enumerate = 1;
    kat_dmat Q;
    TU_OK(kat_dmat_alloc(n, d, &Q));
    TU_OK(kat_rank_points(&po, NULL, &Q));
    kat_fn *f;
    TU_OK(kat_fn_pow(2, &f));
    kat_rank_opts o;
    kat_rank_opts_init(&o);
    kat_rank_result r;
    TU_OK(kat_rank_probe(f, &Q, &Q, &o, &r));
    /* (q.k)^2 = sum_t q_t k_t + 2 sum_{t<u} q_t q_u k_t k_u: d + C(d, 2) = 21 monomials */
    ck_assert_uint_eq(r.rank, d + d * (d - 1) / 2);
    ck_assert_uint_eq(r.predicted_rank, 21);   /* generic C(7, 5) = 21 happens to agree */
    kat_rank_result_free(&r);
    kat_fn_destroy(f);
    TU_OK(kat_fn_pow(3, &f));
    TU_OK(kat_rank_probe(f, &Q, &Q, &o, &r));
    /* cube: distinct-index monomials of degree <= 3 minus none of degree 0: d + C(d,2) + C(d,3) */
    ck_assert_uint_eq(r.rank, 6 + 15 + 20);
    ck_assert_uint_lt(r.rank, r.predicted_rank);   /* generic 56 */
    kat_rank_result_free(&r);
    kat_fn_destroy(f);
    kat_dmat_free(&Q);
}
END_TEST

/* ---- the matrix-free product M X ------------------------------------------------------- */

/* Y = M X and |M|_F^2 from the entries one at a time, in long double. */
static void op_reference(const rank_op *op, const double *X, size_t b, double *Y, double *fro2)
{
    long double f2 = 0;
    for (size_t i = 0; i < op->rows; i++) {
        double *row = malloc((op->cols ? op->cols : 1) * sizeof(double));
        TU_OK(kat__rank_op_block(op, i, 1, 0, op->cols, row, op->cols));
        for (size_t j = 0; j < op->cols; j++)
            f2 += (long double)row[j] * row[j];
        for (size_t c = 0; c < b; c++) {
            long double acc = 0;
            for (size_t j = 0; j < op->cols; j++)
                acc += (long double)row[j] * X[c * op->cols + j];
            Y[c * op->rows + i] = (double)acc;
        }
        free(row);
    }
    *fro2 = (double)f2;
}

START_TEST(test_op_apply_matches_reference)
{
    /* Sizes that are not multiples of the packed panels (16 rows, 8 vectors, 256 columns) or
     * of the portable chunk (1024 columns), size 1, and tiles of 7 rows; every kernel set the
     * CPU has (the packed product is the AVX-512 one). */
    size_t sizes[][5] = {{1, 1, 1, 1, 0},   {7, 5, 3, 1, 7},     {33, 257, 8, 9, 0},
                         {300, 1100, 5, 13, 7}, {64, 2048, 2, 175, 0}, {17, 31, 4, 16, 16}};
    double poly[4] = {1, 3, 3, 1};
    kat_fn *f;
    TU_OK(kat_fn_poly(poly, 4, &f));
    kat_arch initial = kat_arch_get();
    for (int a = 0; a < KAT_ARCH_COUNT; a++) {
        if (!kat_arch_supported((kat_arch)a))
            continue;
        TU_OK(kat_arch_set((kat_arch)a));
        for (size_t sz = 0; sz < sizeof sizes / sizeof sizes[0]; sz++) {
            size_t n = sizes[sz][0], m = sizes[sz][1], d = sizes[sz][2], b = sizes[sz][3];
            if (tu_quick() && n * m * b > 2000000)
                continue;
            kat_dmat Q = tr_points(KAT_RANK_DIST_GAUSS, n, d, 60 + sz);
            kat_dmat K = tr_points(KAT_RANK_DIST_GAUSS, m, d, 70 + sz);
            double *X = malloc(m * b * sizeof(double)), *Y = malloc(n * b * sizeof(double));
            double *R = malloc(n * b * sizeof(double));
            for (size_t i = 0; i < m * b; i++)
                X[i] = sin(0.7 * (double)i + 0.3) - 0.25;
            for (int form = 0; form < KAT_RANK_FORM_COUNT; form++)
                for (int withf = 0; withf < 2; withf++) {
                    rank_op op;
                    TU_OK(kat__rank_op_init(&op, withf ? f : NULL, (kat_rank_form)form, 0.5, &Q, &K));
                    double fro2;
                    op_reference(&op, X, b, R, &fro2);
                    rank_fro fro;
                    TU_OK(kat__rank_op_apply(&op, X, m, b, Y, n, sizes[sz][4], &fro));
                    /* Each entry of Y is a sum of m products: compare against the sum of
                     * their magnitudes' scale. */
                    double scale = sqrt(fro2) * sqrt((double)m) + 1e-300;
                    for (size_t i = 0; i < n * b; i++)
                        if (fabs(Y[i] - R[i]) > 1e-13 * scale)
                            ck_abort_msg("arch %s, %zu x %zu, d %zu, b %zu, form %d, f %d: Y[%zu] "
                                         "= %.17g, reference %.17g", kat_arch_name(), n, m, d,
                                         b, form, withf, i, Y[i], R[i]);
                    double got = fro.scale * fro.scale * fro.ssq;
                    ck_assert_double_le(fabs(got - fro2), 1e-13 * fro2);
                    kat__rank_op_free(&op);
                }
            free(X);
            free(Y);
            free(R);
            kat_dmat_free(&Q);
            kat_dmat_free(&K);
        }
    }
    TU_OK(kat_arch_set(initial));
    kat_fn_destroy(f);
}
END_TEST

START_TEST(test_randomized_matches_dense_poly)
{
    /* Tiles of 7 rows and n = 300 or m = 1100 (not multiples of the tile or the column chunk)
     * exercise the edges of the matrix-free products. */
    size_t sizes[][3] = {{300, 300, 6}, {97, 1100, 5}, {1100, 97, 5}, {1, 50, 3}};
    double polys[3][5] = {{0, 0, 1}, {1, 3, 3, 1}, {0, 1, 0, 0, 1}};
    size_t ncoef[3] = {3, 4, 5};
    for (size_t sz = 0; sz < 4; sz++) {
        size_t n = sizes[sz][0], m = sizes[sz][1], d = sizes[sz][2];
        if (tu_quick() && n * m > 40000)
            continue;
        kat_dmat Q = tr_points(KAT_RANK_DIST_GAUSS, n, d, 30 + sz);
        kat_dmat K = tr_points(KAT_RANK_DIST_GAUSS, m, d, 40 + sz);
        for (int k = 0; k < 3; k++)
            for (int form = 0; form < KAT_RANK_FORM_COUNT; form++) {
                if (form == KAT_RANK_L1 && k > 0)
                    continue;
                kat_fn *f;
                TU_OK(kat_fn_poly(polys[k], ncoef[k], &f));
                kat_rank_opts o;
                kat_rank_opts_init(&o);
                o.form = (kat_rank_form)form;
                kat_rank_result rd, rr;
                TU_OK(kat_rank_probe(f, &Q, &K, &o, &rd));
                o.method = KAT_RANK_RANDOMIZED;
                o.tile_rows = 7;
                TU_OK(kat_rank_probe(f, &Q, &K, &o, &rr));
                ck_assert_msg(rd.rank == rr.rank, "%zux%zu d %zu poly %d form %d: dense %zu, "
                              "randomized %zu", n, m, d, k, form, rd.rank, rr.rank);
                ck_assert(rr.converged);
                ck_assert_uint_eq(rd.predicted_rank, rr.predicted_rank);
                /* Frobenius norms: two summation orders of the same entries */
                ck_assert_double_eq_tol(rd.fro_norm, rr.fro_norm, 1e-12 * rd.fro_norm);
                /* leading singular values agree to the randomized error model: the captured
                 * directions are exact up to rounding */
                for (size_t i = 0; i < rd.rank && i < rr.nsv; i++)
                    ck_assert_double_eq_tol(rd.sv[i], rr.sv[i], 1e-8 * rd.sv[0]);
                kat_rank_result_free(&rd);
                kat_rank_result_free(&rr);
                kat_fn_destroy(f);
            }
        kat_dmat_free(&Q);
        kat_dmat_free(&K);
    }
}
END_TEST

START_TEST(test_randomized_eps_ranks_exp)
{
    size_t n = tu_quick() ? 300 : 1024, d = 4;
    kat_dmat Q = tr_points(KAT_RANK_DIST_GAUSS, n, d, 50);
    kat_dmat K = tr_points(KAT_RANK_DIST_GAUSS, n, d, 51);
    kat_fn *f;
    TU_OK(kat_fn_builtin("exp", &f));
    tr_check_eps_agreement(f, &Q, &K, 1e-6, 0.02);
    kat_fn_destroy(f);
    kat_dmat_free(&Q);
    kat_dmat_free(&K);
}
END_TEST

START_TEST(test_deterministic)
{
    size_t n = tu_quick() ? 200 : 600, d = 5;
    kat_dmat Q = tr_points(KAT_RANK_DIST_GAUSS, n, d, 60);
    kat_dmat K = tr_points(KAT_RANK_DIST_GAUSS, n, d, 61);
    kat_fn *f;
    TU_OK(kat_fn_builtin("exp", &f));
    kat_rank_opts o;
    kat_rank_opts_init(&o);
    o.method = KAT_RANK_RANDOMIZED;
    o.rtol = 1e-8;
    o.eps = 1e-4;
    o.seed = 99;
    kat_rank_result a, b, c;
    TU_OK(kat_rank_probe(f, &Q, &K, &o, &a));
    TU_OK(kat_rank_probe(f, &Q, &K, &o, &b));
    ck_assert_uint_eq(a.nsv, b.nsv);
    ck_assert(memcmp(a.sv, b.sv, a.nsv * sizeof(double)) == 0);
    ck_assert(memcmp(&a.fro_norm, &b.fro_norm, sizeof(double)) == 0);
    ck_assert_uint_eq(a.rank, b.rank);
    /* the tile products do not depend on the thread count */
    kat_set_num_threads(1);
    TU_OK(kat_rank_probe(f, &Q, &K, &o, &c));
    kat_set_num_threads(0);
    ck_assert_uint_eq(a.nsv, c.nsv);
    ck_assert(memcmp(a.sv, c.sv, a.nsv * sizeof(double)) == 0);
    kat_rank_result_free(&c);
    /* another seed: other test vectors, (almost surely) other bits, same rank */
    o.seed = 100;
    TU_OK(kat_rank_probe(f, &Q, &K, &o, &c));
    ck_assert(a.nsv != c.nsv || memcmp(a.sv, c.sv, a.nsv * sizeof(double)) != 0);
    kat_rank_result_free(&a);
    kat_rank_result_free(&b);
    kat_rank_result_free(&c);
    /* dense: same bits too */
    o.method = KAT_RANK_DENSE;
    TU_OK(kat_rank_probe(f, &Q, &K, &o, &a));
    TU_OK(kat_rank_probe(f, &Q, &K, &o, &b));
    ck_assert(memcmp(a.sv, b.sv, a.nsv * sizeof(double)) == 0);
    kat_rank_result_free(&a);
    kat_rank_result_free(&b);
    kat_fn_destroy(f);
    kat_dmat_free(&Q);
    kat_dmat_free(&K);
}
END_TEST

START_TEST(test_probe_small_and_special)
{
    kat_dmat Q = tr_points(KAT_RANK_DIST_GAUSS, 1, 3, 70), K = tr_points(KAT_RANK_DIST_GAUSS, 1, 3, 71);
    kat_fn *f;
    TU_OK(kat_fn_builtin("exp", &f));
    kat_rank_opts o;
    kat_rank_opts_init(&o);
    kat_rank_result r;
    for (int meth = 0; meth < 2; meth++) {   /* 1 x 1 */
        o.method = (kat_rank_method)meth;
        TU_OK(kat_rank_probe(f, &Q, &K, &o, &r));
        ck_assert_uint_eq(r.rank, 1);
        ck_assert_uint_eq(r.nsv, 1);
        double q = 0;
        for (int t = 0; t < 3; t++)
            q += Q.data[t] * K.data[t];
        ck_assert_double_eq_tol(r.sv[0], exp(q), 8 * DBL_EPSILON * exp(q));
        ck_assert_double_eq_tol(r.stable_rank, 1.0, 8 * DBL_EPSILON);
        kat_rank_result_free(&r);
    }
    kat_dmat_free(&Q);
    kat_dmat_free(&K);
    /* the zero matrix: rank 0 both ways (f = x on orthogonal points) */
    double qz[4] = {1, 0, 0, 1}, kz[4] = {0, 0, 0, 0};
    kat_dmat Qz = {2, 2, 2, qz}, Kz = {2, 2, 2, kz};
    for (int meth = 0; meth < 2; meth++) {
        o.method = (kat_rank_method)meth;
        TU_OK(kat_rank_probe(NULL, &Qz, &Kz, &o, &r));
        ck_assert_uint_eq(r.rank, 0);
        ck_assert_double_eq(r.stable_rank, 0);
        ck_assert_uint_eq(r.predicted_rank, 0);
        kat_rank_result_free(&r);
    }
    /* a user matrix: rank 2 */
    double a[12] = {1, 2, 3, 4, 2, 4, 6, 8, 1, 0, 0, 1};
    kat_dmat M = {3, 4, 4, a};
    o.method = KAT_RANK_DENSE;
    o.eps = 0.5;
    TU_OK(kat_rank_probe_matrix(&M, &o, &r));
    ck_assert_uint_eq(r.rank, 2);
    ck_assert_uint_eq(r.nsv, 3);
    ck_assert_uint_eq(r.eps_rank_spectral, 1);
    ck_assert_double_eq_tol(r.fro_norm, sqrt(1 + 4 + 9 + 16 + 4 + 16 + 36 + 64 + 2), 1e-14);
    kat_rank_result_free(&r);
    o.method = KAT_RANK_RANDOMIZED;
    TU_EXPECT_ERR(kat_rank_probe_matrix(&M, &o, &r), KAT_ENOTSUP, "dense");
    /* a capped search reports a lower bound */
    Q = tr_points(KAT_RANK_DIST_GAUSS, 200, 4, 72);
    o.eps = 0;
    o.max_rank = 40;
    TU_OK(kat_rank_probe(f, &Q, &Q, &o, &r));
    ck_assert_uint_eq(r.nsv, 40);
    ck_assert_int_eq(r.converged, 0);
    ck_assert_uint_le(r.rank, 40);
    kat_rank_result_free(&r);
    kat_dmat_free(&Q);
    kat_fn_destroy(f);
}
END_TEST

START_TEST(test_probe_errors)
{
    size_t n = 20, d = 3;
    kat_dmat Q = tr_points(KAT_RANK_DIST_GAUSS, n, d, 80), K = tr_points(KAT_RANK_DIST_GAUSS, n, d, 81);
    kat_fn *f;
    TU_OK(kat_fn_builtin("exp", &f));
    kat_rank_opts o;
    kat_rank_opts_init(&o);
    kat_rank_result r, keep;
    memset(&keep, 0xAB, sizeof keep);
    r = keep;
    for (int meth = 0; meth < 2; meth++) {
        o.method = (kat_rank_method)meth;
        TU_EXPECT_ERR(kat_rank_probe(f, NULL, &K, &o, &r), KAT_EINVAL, "Q is NULL");
        TU_EXPECT_ERR(kat_rank_probe(f, &Q, NULL, &o, &r), KAT_EINVAL, "K is NULL");
        TU_EXPECT_ERR(kat_rank_probe(f, &Q, &K, NULL, &r), KAT_EINVAL, "opts is NULL");
        TU_EXPECT_ERR(kat_rank_probe(f, &Q, &K, &o, NULL), KAT_EINVAL, "res is NULL");
        kat_dmat Q0 = {0, d, d, NULL};
        TU_EXPECT_ERR(kat_rank_probe(f, &Q0, &K, &o, &r), KAT_EINVAL, "0 x 20");
        kat_dmat K2 = {n, 2, 3, K.data};
        TU_EXPECT_ERR(kat_rank_probe(f, &Q, &K2, &o, &r), KAT_EINVAL, "K has d = 2");
        kat_dmat Qs = {n, d, 1, Q.data};
        TU_EXPECT_ERR(kat_rank_probe(f, &Qs, &K, &o, &r), KAT_EINVAL, "ld = 1");
        kat_dmat Qo = {SIZE_MAX / 8, d, d, Q.data};
        TU_EXPECT_ERR(kat_rank_probe(f, &Qo, &K, &o, &r), KAT_ERANGE, "overflow");
        kat_dmat Qi = {(size_t)1 << 32, d, d, Q.data};   /* above BLAS's 32-bit sizes */
        TU_EXPECT_ERR(kat_rank_probe(f, &Qi, &K, &o, &r), KAT_ERANGE, "BLAS");
        Q.data[5] = NAN;
        TU_EXPECT_ERR(kat_rank_probe(f, &Q, &K, &o, &r), KAT_EDOM, "Q: entry (1, 2) is nan");
        Q.data[5] = 0.25;
        K.data[0] = -INFINITY;
        TU_EXPECT_ERR(kat_rank_probe(f, &Q, &K, &o, &r), KAT_EDOM, "K: entry (0, 0) is -inf");
        K.data[0] = 0.25;
        kat_rank_opts bad = o;
        bad.rtol = -1;
        TU_EXPECT_ERR(kat_rank_probe(f, &Q, &K, &bad, &r), KAT_EINVAL, "rtol");
        bad = o;
        bad.eps = NAN;
        TU_EXPECT_ERR(kat_rank_probe(f, &Q, &K, &bad, &r), KAT_EINVAL, "eps");
        bad = o;
        bad.scale = INFINITY;
        TU_EXPECT_ERR(kat_rank_probe(f, &Q, &K, &bad, &r), KAT_EINVAL, "scale");
        bad = o;
        bad.form = (kat_rank_form)5;
        TU_EXPECT_ERR(kat_rank_probe(f, &Q, &K, &bad, &r), KAT_EINVAL, "form = 5");
        bad = o;
        bad.method = (kat_rank_method)7;
        TU_EXPECT_ERR(kat_rank_probe(f, &Q, &K, &bad, &r), KAT_EINVAL, "method = 7");
        bad = o;
        bad.power_iters = -1;
        TU_EXPECT_ERR(kat_rank_probe(f, &Q, &K, &bad, &r), KAT_EINVAL, "power_iters");
        bad = o;
        bad.scale = 1e4;   /* exp overflows */
        TU_EXPECT_ERR(kat_rank_probe(f, &Q, &K, &bad, &r), KAT_EDOM, "f = exp is inf at M(");
    }
    /* unknown function names are refused where functions are made */
    kat_fn *g = NULL;
    TU_EXPECT_ERR(kat_fn_builtin("expp", &g), KAT_EINVAL, "'expp'");
    /* a dense matrix too large to hold: the message gives the size and the way out */
    o.method = KAT_RANK_DENSE;
    kat_dmat Qh = {1000000, d, d, Q.data}, Kh = {1000000, d, d, K.data};   /* never read */
    TU_EXPECT_ERR(kat_rank_probe(f, &Qh, &Kh, &o, &r), KAT_ENOMEM, "1000000 x 1000000");
    ck_assert_ptr_nonnull(strstr(kat_last_error(), "--method randomized"));
    ck_assert_ptr_nonnull(strstr(kat_last_error(), "GiB"));
    kat_dmat Qx = {2000000000, d, d, Q.data}, Kx = {2000000000, d, d, K.data};
    TU_EXPECT_ERR(kat_rank_probe(f, &Qx, &Kx, &o, &r), KAT_ERANGE, "size_t");
    ck_assert_ptr_nonnull(strstr(kat_last_error(), "randomized"));
    ck_assert(memcmp(&r, &keep, sizeof r) == 0);   /* untouched by every failure */
    kat_fn_destroy(f);
    kat_dmat_free(&Q);
    kat_dmat_free(&K);
}
END_TEST

/* Every allocation in turn fails: the probe reports ENOMEM (or succeeds), leaves the result
 * untouched and leaks nothing (the sanitizer and valgrind runs check the leaks). */
START_TEST(test_probe_alloc_failures)
{
    size_t n = 40, d = 3;
    kat_dmat Q = tr_points(KAT_RANK_DIST_GAUSS, n, d, 90), K = tr_points(KAT_RANK_DIST_GAUSS, n, d, 91);
    kat_fn *f;
    TU_OK(kat_fn_pow(2, &f));
    static size_t fd = 3;
    kat_featmap *fm;
    TU_OK(kat_featmap_create(&quad_ops, &fd, 3, 13, 0, &fm));
    for (int which = 0; which < 5; which++) {
        kat_rank_opts o;
        kat_rank_opts_init(&o);
        o.method = which == 1 || which == 3 ? KAT_RANK_RANDOMIZED : KAT_RANK_DENSE;
        o.form = which == 4 ? KAT_RANK_L2SQ : KAT_RANK_INNER;
        o.eps = 1e-3;
        int ok = 0;
        for (size_t k = 1; k < 2000 && !ok; k++) {
            kat_rank_result r, keep;
            memset(&keep, 0x5A, sizeof keep);
            r = keep;
            kat_debug_fail_alloc_at(k);
            kat_status st = which >= 2 && which <= 3 ? kat_rank_probe_featmap(fm, &Q, &K, &o, &r)
                                                     : kat_rank_probe(f, &Q, &K, &o, &r);
            kat_debug_fail_alloc_at(0);
            if (st == KAT_OK) {
                ok = 1;
                kat_rank_result_free(&r);
            } else {
                ck_assert_msg(st == KAT_ENOMEM, "case %d alloc %zu: %s: %s", which, k,
                              kat_strerror(st), kat_last_error());
                ck_assert(memcmp(&r, &keep, sizeof r) == 0);
            }
        }
        ck_assert(ok);
    }
    kat_featmap_destroy(fm);
    kat_fn_destroy(f);
    kat_dmat_free(&Q);
    kat_dmat_free(&K);
}
END_TEST

/* The randomized probe on a 10 x 8 Gaussian-kernel matrix whose query rows repeat (numerical
 * rank 4), blocks of 2: later blocks add only rounding noise, which a block QR normalised into
 * directions overlapping the basis; sigma_1 came out 0.104 for a true 0.0602, above |M|_F.
 * Found by fuzz_rank; fixed by orthonormalising column by column with reorthogonalisation. */
START_TEST(test_rank_randomized_noise_blocks)
{
    /* The fuzzer's rows (leading dimensions removed): seven equal query rows. */
    double q[20] = {-0.405273, 1.11426, -1.89258, 1.86328};
    for (int i = 4; i < 18; i++)
        q[i] = 1.7959;
    q[18] = 1.75293, q[19] = 0.0126953;
    double k[16] = {-1.42188, -1.15723, -0.675781, -0.916016, -2, -2, -1.75098, -0.0,
                    -0.0,     -0.0,     -2,        -2,        -2, -2, -2,       -2};
    kat_dmat Q = {10, 2, 2, q}, K = {8, 2, 2, k};
    kat_fn *f;
    TU_OK(kat_fn_builtin("exp", &f));
    kat_rank_opts o;
    kat_rank_opts_init(&o);
    o.form = KAT_RANK_L2SQ, o.scale = -2.0;
    kat_rank_result dense, rnd;
    TU_OK(kat_rank_probe(f, &Q, &K, &o, &dense));
    o.method = KAT_RANK_RANDOMIZED, o.block = 2, o.oversample = 12, o.power_iters = 3;
    TU_OK(kat_rank_probe(f, &Q, &K, &o, &rnd));
    double s_true = dense.sv[0], s_rnd = rnd.sv[0], fro = dense.fro_norm;
    size_t r_true = dense.rank, r_rnd = rnd.rank;
    kat_rank_result_free(&dense), kat_rank_result_free(&rnd);
    kat_fn_destroy(f);
    ck_assert_uint_eq(r_rnd, r_true);
    ck_assert_msg(s_rnd <= fro * (1 + 1e-12),
                  "randomized sigma_1 = %.6g exceeds the Frobenius norm %.6g (dense sigma_1 = "
                  "%.6g)", s_rnd, fro, s_true);
    ck_assert_msg(fabs(s_rnd - s_true) <= 1e-6 * s_true, "randomized sigma_1 = %.9g, dense %.9g",
                  s_rnd, s_true);
}
END_TEST

/* The randomized probe summed |M|_F from unscaled squares: M = [1e200, 2e200] gave NaN with
 * KAT_OK (found by fuzz_rank, entries of 6e231), and entries of 1e-200 gave 0. It is summed
 * in a power-of-two scale now; the stable rank and the Frobenius eps-rank use it too. */
START_TEST(test_rank_randomized_frobenius_overflow)
{
    double q[1] = {1e100}, k[2] = {1e100, 2e100};
    kat_dmat Q = {1, 1, 1, q}, K = {2, 1, 1, k};
    kat_rank_opts o;
    kat_rank_opts_init(&o);
    o.method = KAT_RANK_RANDOMIZED;
    kat_rank_result r;
    kat_status st = kat_rank_probe(NULL, &Q, &K, &o, &r);
    double fro = st == KAT_OK ? r.fro_norm : 0;
    if (st == KAT_OK)
        kat_rank_result_free(&r);
    ck_assert_msg(st != KAT_OK || fabs(fro - sqrt(5.0) * 1e200) <= 1e-14 * 1e200,
                  "randomized |M|_F of [1e200, 2e200] reported as %g", fro);
    /* an entry just below DBL_MAX: a scale of 2^1024 would be inf (fuzz_rank found NaN) */
    double qb[1] = {1.3e154}, kb[1] = {1.3e154};
    kat_dmat Qb = {1, 1, 1, qb}, Kb = {1, 1, 1, kb};
    TU_OK(kat_rank_probe(NULL, &Qb, &Kb, &o, &r));
    ck_assert_msg(fabs(r.fro_norm - 1.69e308) <= 1e-14 * 1.69e308, "|M|_F of [1.69e308]: %g",
                  r.fro_norm);
    kat_rank_result_free(&r);
    /* a subnormal entry: a scale of 2^-1066 has no finite reciprocal (fuzz_rank found NaN) */
    double qt[1] = {1e-161}, kt[1] = {3e-160};
    kat_dmat Qt = {1, 1, 1, qt}, Kt = {1, 1, 1, kt};
    TU_OK(kat_rank_probe(NULL, &Qt, &Kt, &o, &r));
    ck_assert_msg(fabs(r.fro_norm - 3e-321) <= 1e-3 * 3e-321, "|M|_F of [3e-321]: %g",
                  r.fro_norm);
    kat_rank_result_free(&r);
    /* tiny entries, with the eps-ranks: the same answers as the dense path */
    double qs[6] = {1e-100, 2e-100, -1e-100, 4e-100, 3e-100, -5e-101};
    double ks[6] = {1e-100, 3e-100, -2e-100, 1e-100, 5e-101, 0.0};
    kat_dmat Qs = {3, 2, 2, qs}, Ks = {3, 2, 2, ks};
    kat_rank_result rd, rr;
    o.eps = 1e-3;
    o.method = KAT_RANK_DENSE;
    TU_OK(kat_rank_probe(NULL, &Qs, &Ks, &o, &rd));
    o.method = KAT_RANK_RANDOMIZED;
    TU_OK(kat_rank_probe(NULL, &Qs, &Ks, &o, &rr));
    ck_assert_msg(fabs(rr.fro_norm - rd.fro_norm) <= 1e-13 * rd.fro_norm && rd.fro_norm > 0,
                  "randomized |M|_F %g, dense %g", rr.fro_norm, rd.fro_norm);
    ck_assert(fabs(rr.stable_rank - rd.stable_rank) <= 1e-10 * rd.stable_rank);
    ck_assert_uint_eq(rr.rank, rd.rank);
    ck_assert_uint_eq(rr.eps_rank_frobenius, rd.eps_rank_frobenius);
    ck_assert_uint_eq(rr.eps_rank_spectral, rd.eps_rank_spectral);
    kat_rank_result_free(&rd), kat_rank_result_free(&rr);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("rank");
    TCase *tc = tcase_create("rank");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_points_gauss_default_sigma);
    tcase_add_test(tc, test_points_sets);
    tcase_add_test(tc, test_points_enumerate);
    tcase_add_test(tc, test_points_deterministic_and_errors);
    tcase_add_test(tc, test_kernel_matrix_matches_naive);
    tcase_add_test(tc, test_kernel_matrix_errors);
    tcase_add_test(tc, test_featmap_matrix_and_probe);
    tcase_add_test(tc, test_spectrum_known);
    tcase_add_test(tc, test_spectrum_rank_one_and_errors);
    tcase_add_test(tc, test_measures);
    tcase_add_test(tc, test_binomial);
    tcase_add_test(tc, test_predict);
    tcase_add_test(tc, test_inner_rank_and_affine_dim);
    tcase_add_test(tc, test_generic_ranks_n400);
    tcase_add_test(tc, test_l2sq_prediction);
    tcase_add_test(tc, test_probe_hypercube_below_generic);
    tcase_add_test(tc, test_op_apply_matches_reference);
    tcase_add_test(tc, test_randomized_matches_dense_poly);
    tcase_add_test(tc, test_randomized_eps_ranks_exp);
    tcase_add_test(tc, test_deterministic);
    tcase_add_test(tc, test_probe_small_and_special);
    tcase_add_test(tc, test_probe_errors);
    tcase_add_test(tc, test_probe_alloc_failures);
    tcase_add_test(tc, test_rank_randomized_noise_blocks);
    tcase_add_test(tc, test_rank_randomized_frobenius_overflow);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
