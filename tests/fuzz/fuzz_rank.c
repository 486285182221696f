/* libFuzzer harness for the rank entry points: the probe (dense and randomized, every form,
 * epsilon-ranks, prediction), the probe of a feature map and of a given matrix, the kernel
 * matrix builder, the spectrum, the rank measures on arbitrary singular values, the point
 * sets and the prediction. The input picks small shapes, leading dimensions, options and the
 * values (mostly moderate numbers, sometimes 0, subnormals, huge values, NaN or Inf).
 *
 * A refused call must return a known error status with a message, leave its output untouched
 * (the result struct byte for byte) and its inputs unchanged. An accepted call must give a
 * consistent result: rank <= min(n, m), singular values finite, non-negative and descending,
 * sigma_max = sv[0], the rank equal to kat_rank_numerical on the same values and tolerance,
 * epsilon-ranks and predictions within range, stable and effective ranks in [1, nsv] for a
 * nonzero matrix. A dense probe of an explicit matrix must agree with kat_rank_spectrum. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "kat/kat.h"
#include "fuzz_bytes.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    kat_set_num_threads(2);
    return 0;
}

/* A value: usually a moderate number from two bytes, sometimes a special one. */
static double take_value(bytes *in)
{
    static const double special[] = {0.0, -0.0, 1.0, -1.0, 1e-310, -4.9e-324, 1e-160, 1e154,
                                     -1e300, 3.0, 0.5, NAN, INFINITY, -INFINITY};
    unsigned s = take(in);
    if (s >= 240)
        return special[(s - 240) % (sizeof special / sizeof special[0])];
    int v = (int)(take(in) | (s & 0x0f) << 8) - 2048;
    return (double)v / 1024.0;
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        abort();
    return p;
}

/* A rows x cols matrix with a leading dimension >= cols (sometimes < cols, which is invalid). */
static kat_dmat take_matrix(bytes *in, size_t rows, size_t cols, int allow_bad_ld)
{
    unsigned pad = take(in);
    size_t ld = cols + pad % 3;
    if (allow_bad_ld && pad == 255 && cols > 1)
        ld = cols - 1;
    size_t len = rows ? (rows - 1) * ld + cols : 0;
    kat_dmat m = {rows, cols, ld, xmalloc((len ? len : 1) * sizeof(double))};
    for (size_t i = 0; i < len; i++)
        m.data[i] = take_value(in);
    return m;
}

static size_t dmat_len(const kat_dmat *m) { return m->rows ? (m->rows - 1) * m->ld + m->cols : 0; }

static int finite_matrix(const kat_dmat *m)
{
    for (size_t i = 0; i < m->rows; i++)
        for (size_t j = 0; j < m->cols; j++)
            if (!isfinite(m->data[i * m->ld + j]))
                return 0;
    return 1;
}

static const kat_status known[] = {KAT_EINVAL, KAT_EDOM, KAT_ERANGE, KAT_ENOMEM, KAT_ENOTSUP,
                                   KAT_ELAPACK};

static void expect_error(kat_status st)
{
    int ok = 0;
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        ok |= st == known[i];
    CHECK(ok);
    CHECK(kat_last_error()[0] != '\0');
}

/* Invariants of a successful probe. */
static void check_result(const kat_rank_result *r, size_t n, size_t m)
{
    size_t mn = n < m ? n : m;
    CHECK(r->n == n && r->m == m);
    CHECK(r->nsv <= mn && r->rank <= r->nsv && r->rank <= mn);
    CHECK(r->nsv == 0 || r->sv != NULL);
    for (size_t i = 0; i < r->nsv; i++) {
        CHECK(r->sv[i] >= 0.0 && isfinite(r->sv[i]));
        CHECK(i == 0 || r->sv[i] <= r->sv[i - 1]);
    }
    /* (+inf when a huge rtol times sigma_1 overflows: then nothing counts, rank 0) */
    CHECK(r->tol >= 0.0 && !isnan(r->tol));
    CHECK(!isinf(r->tol) || r->rank == 0);
    /* |M|_F may be +inf only when it truly exceeds DBL_MAX (sigma_i all finite): the scaled
     * sum of the dense spectrum says so. A randomized spectrum may hold only part of M's
     * energy and its values are estimates from below, so there only NaN is ruled out. */
    double scaled = 0;
    for (size_t i = 0; i < r->nsv; i++)
        scaled += (r->sv[i] / r->sv[0]) * (r->sv[i] / r->sv[0]);
    int fro_overflows = r->method == KAT_RANK_RANDOMIZED ||
                        (r->nsv > 0 && r->sv[0] * sqrt(scaled) > 1.7976931348623157e308);
    CHECK(r->fro_norm >= 0.0 && (isfinite(r->fro_norm) || fro_overflows));
    if (r->nsv > 0) {
        CHECK(r->sigma_max == r->sv[0]);
        /* |M|_2 <= |M|_F, up to rounding (a randomized basis that lost orthogonality broke
         * this once: test_rank.c, test_rank_randomized_noise_blocks) */
        CHECK(r->sigma_max <= r->fro_norm * (1.0 + 1e-10) + 1e-300);
    }
    CHECK(r->eps_rank_spectral == KAT_RANK_NONE || r->eps_rank_spectral <= r->nsv);
    CHECK(r->eps_rank_frobenius == KAT_RANK_NONE || r->eps_rank_frobenius <= mn);
    CHECK(r->predicted_rank == KAT_RANK_NONE || r->predicted_rank <= mn);
    /* (not for spectra near the subnormal range, DBL_MIN / eps = 2^-970, where entries carry
     * fewer than 52 bits and ratios of them can miss 1 by more than rounding: a fuzzed
     * matrix of 6.4e-323 entries gave a stable rank of 0.96) */
    if (r->nsv > 0 && r->sv[0] > 0x1p-970) {
        /* (randomized: sigma_max is an estimate from below, so only the lower bound holds) */
        CHECK(r->stable_rank >= 1.0 - 1e-12 &&
              (r->method == KAT_RANK_RANDOMIZED || r->stable_rank <= (double)mn * (1.0 + 1e-12)));
        CHECK(r->effective_rank >= 1.0 - 1e-12 &&
              r->effective_rank <= (double)r->nsv * (1.0 + 1e-12));
    }
    /* The rank is the count of values above the reported tolerance. */
    size_t above = 0;
    for (size_t i = 0; i < r->nsv; i++)
        above += r->sv[i] > r->tol;
    CHECK(above == r->rank || (r->method == KAT_RANK_RANDOMIZED && above >= r->rank));
}

/* A converged randomized rank (with a generous oversampling) against the dense spectrum of
 * the same matrix: every singular value clearly above the tolerance must be found, none
 * clearly below it counted. */
static void compare_with_dense(const kat_fn *f, const kat_dmat *Q, const kat_dmat *K,
                               const kat_rank_opts *opts, const kat_rank_result *rnd)
{
    kat_rank_opts dense = *opts;
    dense.method = KAT_RANK_DENSE;
    kat_rank_result r;
    if (kat_rank_probe(f, Q, K, &dense, &r) != KAT_OK)
        return;   /* (e.g. a LAPACK failure the randomized path did not meet) */
    double lo = r.tol < rnd->tol ? r.tol : rnd->tol, hi = r.tol > rnd->tol ? r.tol : rnd->tol;
    size_t big = r.n > r.m ? r.n : r.m;
    if (r.nsv == 0 || lo <= 64.0 * (double)big * 2.220446049250313e-16 * r.sv[0]) {
        kat_rank_result_free(&r);
        return;   /* a tolerance at or below the rounding level (0 included, and subnormal
                   * spectra where that level underflows) counts noise, differently per method */
    }
    size_t clearly = 0, maybe = 0;
    for (size_t i = 0; i < r.nsv; i++)
        clearly += r.sv[i] > 2.0 * hi, maybe += r.sv[i] > 0.5 * lo;
    if (!(clearly <= rnd->rank && rnd->rank <= maybe)) {
        fprintf(stderr, "fuzz_rank: randomized rank %zu (converged, tol %g), dense spectrum has "
                "%zu values above 2 tol and %zu above tol/2 (tol %g)\n", rnd->rank, rnd->tol,
                clearly, maybe, r.tol);
        abort();
    }
    kat_rank_result_free(&r);
}

static kat_fn *take_fn(bytes *in)
{
    static const char *const exprs[] = {"exp(x)", "x", "(1 + x)^3", "x^2 - 0.5*x + 2", "relu(x)",
                                        "exp(-abs(x))", "1/(1 + x^2)", "x != 0", "tanh(3*x)",
                                        "x^1.5", "log(x)", "exp(800*x)"};
    kat_fn *f = NULL;
    unsigned s = take(in) % (sizeof exprs / sizeof exprs[0] + 1);
    if (s == sizeof exprs / sizeof exprs[0])
        return NULL;   /* the identity */
    CHECK(kat_fn_parse(exprs[s], &f, NULL) == KAT_OK);
    return f;
}

static void take_opts(bytes *in, kat_rank_opts *o)
{
    kat_rank_opts_init(o);
    unsigned a = take(in), b = take(in);
    o->form = (kat_rank_form)(a % 4);   /* 3 is invalid */
    o->scale = a & 0x10 ? take_value(in) : 1.0;
    o->method = (kat_rank_method)((a >> 5) % 2);
    if (b & 1)
        o->rtol = fabs(take_value(in)) * 1e-3;
    if (b & 2)
        o->atol = fabs(take_value(in)) * 1e-3;
    if (b & 4)
        o->eps = b & 8 ? take_value(in) : 1e-3 * (1 + take(in) % 100);
    o->predict = (b >> 4) & 1;
    o->seed = take(in);
    o->block = take(in) % 9;
    o->oversample = take(in) % 13;   /* 0 is refused (it used to end the search at once) */
    o->power_iters = (int)(take(in) % 4) - (b == 255);
    o->max_rank = take(in) % 12;
    o->tile_rows = take(in) % 20;
}

static void probe_functions(bytes *in)
{
    size_t n = take(in) % 14, m = take(in) % 14, d = take(in) % 6;
    size_t dk = take(in) == 255 ? d + 1 : d;   /* sometimes mismatched */
    kat_dmat Q = take_matrix(in, n, d, 1), K = take_matrix(in, m, dk, 1);
    kat_fn *f = take_fn(in);
    kat_rank_opts opts;
    take_opts(in, &opts);
    /* The kernel matrix itself, into a caller's view. */
    kat_dmat M = {n, m, m + take(in) % 2, xmalloc((n * (m + 1) + 1) * sizeof(double))};
    for (size_t i = 0; i < n * (m + 1) + 1; i++)
        M.data[i] = 12345.0;
    kat_status st = kat_rank_kernel_matrix(f, opts.form, opts.scale, &Q, &K, &M);
    if (st == KAT_OK) {
        CHECK(finite_matrix(&M));
        for (size_t i = 0; i < n; i++)   /* the padding between rows is not written */
            for (size_t j = m; j < M.ld; j++)
                CHECK(M.data[i * M.ld + j] == 12345.0);
    } else {
        expect_error(st);
    }
    double *q0 = xmalloc(dmat_len(&Q) * sizeof(double) + 8), *k0 = xmalloc(dmat_len(&K) * 8 + 8);
    memcpy(q0, Q.data, dmat_len(&Q) * sizeof(double));
    memcpy(k0, K.data, dmat_len(&K) * sizeof(double));
    kat_rank_result res, before;
    memset(&res, 0x3c, sizeof res);
    before = res;
    kat_clear_error();
    int which = (int)(take(in) % 2);
    st = which ? kat_rank_randomized(f, &Q, &K, &opts, &res)
                          : kat_rank_probe(f, &Q, &K, &opts, &res);
    CHECK(memcmp(q0, Q.data, dmat_len(&Q) * sizeof(double)) == 0);
    CHECK(memcmp(k0, K.data, dmat_len(&K) * sizeof(double)) == 0);
    if (st == KAT_OK) {
        CHECK(finite_matrix(&Q) && finite_matrix(&K));   /* non-finite input must be refused */
        check_result(&res, n, m);
        if (res.method == KAT_RANK_RANDOMIZED && res.converged && opts.max_rank == 0 &&
            opts.oversample >= 8)
            compare_with_dense(f, &Q, &K, &opts, &res);
        kat_rank_result_free(&res);
    } else {
        expect_error(st);
        CHECK(memcmp(&res, &before, sizeof res) == 0);
    }
    kat_fn_destroy(f);
    free(M.data), free(Q.data), free(K.data), free(q0), free(k0);
}

static void probe_matrix(bytes *in)
{
    size_t rows = take(in) % 16, cols = take(in) % 16;
    kat_dmat M = take_matrix(in, rows, cols, 1);
    kat_rank_opts opts;
    take_opts(in, &opts);
    opts.method = KAT_RANK_DENSE;
    kat_rank_result res, before;
    memset(&res, 0x3c, sizeof res);
    before = res;
    kat_clear_error();
    kat_status st = kat_rank_probe_matrix(&M, &opts, &res);
    size_t mn = rows < cols ? rows : cols;
    double *sv = xmalloc((mn + 1) * sizeof(double));
    kat_status st2 = kat_rank_spectrum(&M, sv, mn);
    if (st == KAT_OK) {
        CHECK(finite_matrix(&M));
        check_result(&res, rows, cols);
        CHECK(st2 == KAT_OK && res.nsv == mn);
        CHECK(memcmp(sv, res.sv, mn * sizeof(double)) == 0);   /* the same dgesdd */
        size_t rank;
        double tol;
        CHECK(kat_rank_numerical(sv, mn, rows, cols, opts.rtol, opts.atol, &rank, &tol) == KAT_OK);
        CHECK(rank == res.rank && tol == res.tol);
        kat_rank_result_free(&res);
    } else {
        expect_error(st);
        CHECK(memcmp(&res, &before, sizeof res) == 0);
    }
    free(sv), free(M.data);
}

/* The rank measures on arbitrary values: sorted, unsorted, negative, non-finite. */
static void measures(bytes *in)
{
    size_t k = take(in) % 12, rows = take(in) % 14, cols = take(in) % 14;
    double *sv = xmalloc((k + 1) * sizeof(double));
    int sorted = take(in) & 1;
    for (size_t i = 0; i < k; i++)
        sv[i] = sorted ? fabs(take_value(in)) : take_value(in);
    if (sorted)   /* descending, by insertion */
        for (size_t i = 1; i < k; i++)
            for (size_t j = i; j > 0 && !(sv[j - 1] >= sv[j]); j--) {
                double t = sv[j];
                sv[j] = sv[j - 1], sv[j - 1] = t;
            }
    double rtol = take(in) & 1 ? take_value(in) : 0.0, atol = take(in) & 1 ? take_value(in) : 0.0;
    double eps = take_value(in);
    size_t rank = 777, r2 = 777, r3 = 777;
    double tol = 777.0, stable = 777.0, eff = 777.0;
    kat_status st = kat_rank_numerical(sv, k, rows, cols, rtol, atol, &rank, &tol);
    if (st == KAT_OK)
        CHECK(rank <= k && tol >= 0.0 && !isnan(tol));
    else {
        CHECK(rank == 777 && tol == 777.0);
        expect_error(st);
    }
    st = kat_rank_eps_spectral(sv, k, eps, &r2);
    if (st == KAT_OK)
        CHECK(r2 <= k);
    else {
        CHECK(r2 == 777);
        expect_error(st);
    }
    st = kat_rank_eps_frobenius(sv, k, eps, &r3);
    if (st == KAT_OK)
        CHECK(r3 <= k);
    else {
        CHECK(r3 == 777);
        expect_error(st);
    }
    st = kat_rank_stable(sv, k, &stable);
    if (st == KAT_OK)
        CHECK(stable >= 0.0 && isfinite(stable));
    else {
        CHECK(stable == 777.0);
        expect_error(st);
    }
    st = kat_rank_effective(sv, k, &eff);
    if (st == KAT_OK)
        CHECK(eff >= 0.0 && eff <= (double)k * (1.0 + 1e-12) + 1e-12);
    else {
        CHECK(eff == 777.0);
        expect_error(st);
    }
    free(sv);
}

static void points(bytes *in)
{
    kat_rank_points_opts o;
    kat_rank_points_opts_init(&o);
    size_t n = take(in) % 20, d = take(in) % 6;
    unsigned a = take(in);
    o.dist = (kat_rank_dist)(a % 7);   /* 6 is invalid */
    o.sigma = a & 8 ? take_value(in) : 0.0;
    o.bound = a & 16 ? take_value(in) : 1.0;
    o.pm1 = (a >> 5) & 1;
    o.levels = take(in) % 5;
    o.enumerate = (a >> 6) & 1;
    double sides[8];
    o.nsides = take(in) % 8;
    for (size_t i = 0; i < o.nsides; i++)
        sides[i] = take_value(in);
    o.sides = sides;
    kat_dmat X = {n, d, d + 1, xmalloc((n * (d + 1) + 1) * sizeof(double))};
    for (size_t i = 0; i < n * (d + 1) + 1; i++)
        X.data[i] = -3.5;
    kat_rng *rng;
    CHECK(kat_rng_create(take(in), &rng) == KAT_OK);
    kat_status st = kat_rank_points(&o, rng, &X);
    if (st == KAT_OK) {
        CHECK(finite_matrix(&X));
        for (size_t i = 0; i < n; i++)
            CHECK(X.data[i * X.ld + d] == -3.5);
    } else {
        expect_error(st);
        for (size_t i = 0; i < n * (d + 1) + 1; i++)
            CHECK(X.data[i] == -3.5);
    }
    kat_rng_destroy(rng);
    free(X.data);
}

static void predict(bytes *in)
{
    kat_fn *f = take_fn(in);
    kat_rank_form form = (kat_rank_form)(take(in) % 4);
    double s = take_value(in);
    size_t r = take(in) % 40, n = take(in) * 3u, m = take(in) * 7u, out = 777;
    kat_status st = kat_rank_predict(f, form, s, r, n, m, &out);
    if (st == KAT_OK)
        CHECK(out == KAT_RANK_NONE || (out <= n && out <= m));
    else {
        CHECK(out == 777);
        expect_error(st);
    }
    kat_fn_destroy(f);
}

static void probe_featmap(bytes *in)
{
    size_t d = 1 + take(in) % 4, qd = take(in) == 255 ? d + 1 : d;
    size_t n = take(in) % 12, m = take(in) % 12;
    unsigned msel = take(in);
    kat_featmap *fm;
    kat_status st = msel % 3 == 0   ? kat_featmap_taylor_create(d, (int)(msel / 3 % 4), 0, &fm)
                    : msel % 3 == 1 ? kat_featmap_elu1_create(d, &fm)
                                    : kat_featmap_rff_create(KAT_RFF_GAUSSIAN, KAT_RFF_PAIR, d,
                                                             1 + msel % 9, 1.0, msel, &fm);
    CHECK(st == KAT_OK);
    kat_dmat Q = take_matrix(in, n, qd, 0), K = take_matrix(in, m, d, 0);
    kat_dmat FM = {n, m, m, xmalloc((n * m + 1) * sizeof(double))};
    (void)kat_rank_featmap_matrix(fm, &Q, &K, &FM);   /* checked by the probes below */
    free(FM.data);
    kat_rank_opts opts;
    take_opts(in, &opts);
    kat_rank_result res, before;
    memset(&res, 0x3c, sizeof res);
    before = res;
    kat_clear_error();
    st = kat_rank_probe_featmap(fm, &Q, &K, &opts, &res);
    if (st == KAT_OK) {
        check_result(&res, n, m);
        /* (rank <= the feature dimension holds only up to rounding: products of large
         * features that cancel leave noise above the default tolerance) */
        kat_rank_result_free(&res);
    } else {
        expect_error(st);
        CHECK(memcmp(&res, &before, sizeof res) == 0);
    }
    kat_featmap_destroy(fm);
    free(Q.data), free(K.data);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    bytes in = {data, size};
    switch (take(&in) % 6) {
    case 0:
        probe_functions(&in);
        break;
    case 1:
        probe_matrix(&in);
        break;
    case 2:
        measures(&in);
        break;
    case 3:
        points(&in);
        break;
    case 4:
        predict(&in);
        break;
    default:
        probe_featmap(&in);
        break;
    }
    return 0;
}
