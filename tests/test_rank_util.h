/* Helpers shared by the rank suites (test_rank.c, test_rank_slow.c). */
#ifndef KAT_TEST_RANK_UTIL_H
#define KAT_TEST_RANK_UTIL_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "testutil.h"

#define TR_UNUSED __attribute__((unused))

/* n x d points (ld >= d) from a distribution with default parameters and a seed. */
static TR_UNUSED kat_dmat tr_points_ld(kat_rank_dist dist, size_t n, size_t d, size_t ld,
                                       uint64_t seed)
{
    kat_rank_points_opts o;
    kat_rank_points_opts_init(&o);
    o.dist = dist;
    kat_rng *rng;
    TU_OK(kat_rng_create(seed, &rng));
    size_t count = n * ld;
    kat_dmat X = {n, d, ld, kat_calloc(count ? count : 1, sizeof(double))};
    ck_assert_ptr_nonnull(X.data);
    TU_OK(kat_rank_points(&o, rng, &X));
    kat_rng_destroy(rng);
    return X;
}

static TR_UNUSED kat_dmat tr_points(kat_rank_dist dist, size_t n, size_t d, uint64_t seed)
{
    return tr_points_ld(dist, n, d, d, seed);
}

/* A function given by polynomial coefficients, or exp when ncoef = 0, and the rank it must
 * have (which is also the prediction for a polynomial). */
typedef struct {
    const char *name;
    double coef[8];
    size_t ncoef;
    size_t want;
} tr_case;

static TR_UNUSED void tr_check_generic(const tr_case *c, const kat_dmat *Q, const kat_dmat *K,
                                       kat_rank_method method)
{
    kat_fn *f;
    if (c->ncoef)
        TU_OK(kat_fn_poly(c->coef, c->ncoef, &f));
    else
        TU_OK(kat_fn_builtin("exp", &f));
    kat_rank_opts o;
    kat_rank_opts_init(&o);
    o.method = method;
    kat_rank_result r;
    TU_OK(kat_rank_probe(f, Q, K, &o, &r));
    fprintf(stderr, "# %s n=%zu d=%zu: rank %zu predicted %zd (want %zu)\n", c->name, Q->rows,
            Q->cols, r.rank, (ssize_t)r.predicted_rank, c->want);
    ck_assert_msg(r.rank == c->want, "%s: rank %zu, want %zu", c->name, r.rank, c->want);
    if (c->ncoef)
        ck_assert_msg(r.predicted_rank == c->want, "%s: predicted %zu, want %zu", c->name,
                      r.predicted_rank, c->want);
    else
        ck_assert_uint_eq(r.predicted_rank, KAT_RANK_NONE);
    kat_rank_result_free(&r);
    kat_fn_destroy(f);
}

/* The randomized spectral and Frobenius eps-ranks within a relative `rel` of the dense ones.
 * The randomized search is driven by rtol = eps (its numerical tolerance), the way a user
 * asks for an eps-rank without paying for the full numerical rank. */
static TR_UNUSED void tr_check_eps_agreement(const kat_fn *f, const kat_dmat *Q,
                                             const kat_dmat *K, double eps, double rel)
{
    kat_rank_opts o;
    kat_rank_opts_init(&o);
    o.eps = eps;
    kat_rank_result rd, rr;
    TU_OK(kat_rank_probe(f, Q, K, &o, &rd));
    o.method = KAT_RANK_RANDOMIZED;
    o.rtol = eps;
    TU_OK(kat_rank_probe(f, Q, K, &o, &rr));
    fprintf(stderr, "# eps-ranks n=%zu d=%zu eps=%g: spectral dense %zu randomized %zu, "
            "Frobenius dense %zu randomized %zu (%zu directions, %zu passes)\n", Q->rows,
            Q->cols, eps, rd.eps_rank_spectral, rr.eps_rank_spectral, rd.eps_rank_frobenius,
            rr.eps_rank_frobenius, rr.nsv, rr.passes);
    ck_assert(rr.converged);
    double ds = (double)rd.eps_rank_spectral, df = (double)rd.eps_rank_frobenius;
    ck_assert_msg(fabs((double)rr.eps_rank_spectral - ds) <= rel * ds,
                  "spectral eps-rank: dense %zu, randomized %zu", rd.eps_rank_spectral,
                  rr.eps_rank_spectral);
    ck_assert_msg(fabs((double)rr.eps_rank_frobenius - df) <= rel * df,
                  "Frobenius eps-rank: dense %zu, randomized %zu", rd.eps_rank_frobenius,
                  rr.eps_rank_frobenius);
    ck_assert_uint_eq(rr.rank, rr.eps_rank_spectral);   /* rtol = eps: the same count */
    kat_rank_result_free(&rd);
    kat_rank_result_free(&rr);
}

#endif
