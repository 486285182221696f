/* The rank probe: validate, build M (densely, or tile by tile for the randomized method),
 * take its spectrum, and report every rank measure with what theory predicts. */
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "core/internal.h"
#include "rank/rank_internal.h"

/* |M|_F = sqrt(sum sigma_i^2), scaled by sigma_1 so that neither huge nor tiny entries
 * overflow or underflow the squares (the dense paths have the whole spectrum). */
static double fro_from_spectrum(const double *sv, size_t k)
{
    if (k == 0 || sv[0] == 0.0)
        return 0.0;
    double acc = 0.0;
    for (size_t i = 0; i < k; i++)
        acc += (sv[i] / sv[0]) * (sv[i] / sv[0]);
    return sv[0] * sqrt(acc);
}

void kat_rank_opts_init(kat_rank_opts *o)
{
    if (!o)
        return;
    memset(o, 0, sizeof *o);
    o->form = KAT_RANK_INNER;
    o->scale = 1.0;
    o->method = KAT_RANK_DENSE;
    o->predict = 1;
    o->block = 64;
    o->oversample = 10;
    o->power_iters = 0;
    o->tile_rows = 512;
}

void kat_rank_result_free(kat_rank_result *res)
{
    if (!res)
        return;
    kat_free(res->sv);
    memset(res, 0, sizeof *res);
}

kat_status kat__rank_check_opts(const char *who, const kat_rank_opts *o)
{
    if (!o)
        return kat__fail(KAT_EINVAL, "%s: opts is NULL", who);
    if (o->method != KAT_RANK_DENSE && o->method != KAT_RANK_RANDOMIZED)
        return kat__fail(KAT_EINVAL, "%s: method = %d is not dense or randomized", who,
                        (int)o->method);
    if (!(o->rtol >= 0.0) || !isfinite(o->rtol))
        return kat__fail(KAT_EINVAL, "%s: rtol = %g must be finite and >= 0", who, o->rtol);
    if (!(o->atol >= 0.0) || !isfinite(o->atol))
        return kat__fail(KAT_EINVAL, "%s: atol = %g must be finite and >= 0", who, o->atol);
    if (!(o->eps >= 0.0) || !isfinite(o->eps))
        return kat__fail(KAT_EINVAL, "%s: eps = %g must be finite and >= 0", who, o->eps);
    if (o->method == KAT_RANK_RANDOMIZED && o->oversample == 0)
        return kat__fail(KAT_EINVAL, "%s: oversample = 0 would end the search after the first "
                        "block; use >= 1 (default 10)", who);
    if (o->power_iters < 0 || o->power_iters > 32)
        return kat__fail(KAT_EINVAL, "%s: power_iters = %d must be in [0, 32]", who,
                        o->power_iters);
    if (o->tile_rows > 65536)
        return kat__fail(KAT_EINVAL, "%s: tile_rows = %zu is above 65536", who, o->tile_rows);
    return KAT_OK;
}

static kat_status check_sizes(const char *who, size_t n, size_t m)
{
    if (n == 0 || m == 0)
        return kat__fail(KAT_EINVAL, "%s: the kernel matrix is %zu x %zu; n and m must be >= 1",
                        who, n, m);
    return KAT_OK;
}

static const char *const dense_hint =
    "; use the randomized method (--method randomized, KAT_RANK_RANDOMIZED), which never "
    "stores M";

/* Can an n x m dense matrix be held (with dgesdd's workspace)? */
static kat_status check_dense_size(const char *who, size_t n, size_t m)
{
    size_t count;
    if (kat_mul_overflow(n, m, &count) || count > SIZE_MAX / sizeof(double))
        return kat__fail(KAT_ERANGE, "%s: the dense %zu x %zu matrix has more entries than "
                        "size_t can count%s", who, n, m, dense_hint);
    size_t mn = n < m ? n : m, mx = n < m ? m : n;
    double words = (double)count + 4.0 * (double)mn + (double)(mx > 7 * mn ? mx : 7 * mn);
    char what[128];
    snprintf(what, sizeof what, "%s: the dense %zu x %zu matrix", who, n, m);
    return kat__rank_mem_check(words * sizeof(double), what, dense_hint);
}

/* Dense: build M, sum |M|_F^2, take all singular values, derive the measures. */
static kat_status dense_op(const char *who, const rank_op *op, const kat_rank_opts *o,
                           kat_rank_result *res)
{
    size_t n = op->rows, m = op->cols, mn = n < m ? n : m;
    kat_status st = check_dense_size(who, n, m);
    if (st)
        return st;
    double *M = kat__alloc_array(n * m, sizeof(double), "rank: dense kernel matrix");
    double *sv = kat__alloc_array(mn, sizeof(double), "rank: singular values");
    if (!M || !sv) {
        kat_free(M);
        kat_free(sv);
        /* A small matrix that does not fit means the process itself is short of memory
         * (an address-space limit, memory held elsewhere): another method would not help. */
        double gib = (double)n * (double)m * 8.0 / (1024.0 * 1024.0 * 1024.0);
        return kat__fail(KAT_ENOMEM, "%s: cannot allocate the dense %zu x %zu matrix (%.3g GiB)%s",
                        who, n, m, gib, gib >= 0.25 ? dense_hint
                                                    : ": the process has no memory left for it");
    }
    st = kat__rank_op_fill(op, M, m, o->tile_rows);
    if (!st)   /* Row-major n x m is column-major m x n: same singular values, no copy. */
        st = kat__rank_svd_values_inplace(m, n, M, m, sv);
    kat_free(M);
    if (st) {
        kat_free(sv);
        return st;
    }
    memset(res, 0, sizeof *res);
    res->n = n;
    res->m = m;
    res->method = KAT_RANK_DENSE;
    res->sv = sv;
    res->nsv = mn;
    res->sigma_max = sv[0];
    res->tol = kat__rank_tolerance(sv[0], n, m, o->rtol, o->atol);
    res->rank = kat__rank_count_above(sv, mn, res->tol);
    res->fro_norm = fro_from_spectrum(sv, mn);
    kat_rank_stable(sv, mn, &res->stable_rank);
    kat_rank_effective(sv, mn, &res->effective_rank);
    res->eps_rank_spectral = res->eps_rank_frobenius = KAT_RANK_NONE;
    if (o->eps > 0.0) {
        kat_rank_eps_spectral(sv, mn, o->eps, &res->eps_rank_spectral);
        kat_rank_eps_frobenius(sv, mn, o->eps, &res->eps_rank_frobenius);
    }
    res->converged = 1;
    res->predicted_rank = res->base_rank = KAT_RANK_NONE;
    return KAT_OK;
}

static kat_status run_op(const char *who, const rank_op *op, const kat_rank_opts *o,
                         kat_rank_result *res)
{
    if (o->method == KAT_RANK_RANDOMIZED)
        return kat__rank_randomized_op(op, o, res);
    return dense_op(who, op, o, res);
}

kat_status kat_rank_probe(const kat_fn *f, const kat_dmat *Q, const kat_dmat *K,
                          const kat_rank_opts *o, kat_rank_result *res)
{
    const char *who = "rank_probe";
    kat_status st = kat__rank_check_opts(who, o);
    if (st)
        return st;
    if (!res)
        return kat__fail(KAT_EINVAL, "%s: res is NULL", who);
    /* Shapes and sizes first, so an impossible request fails before reading any data. */
    if ((st = kat__rank_check_inputs(who, o->form, o->scale, Q, K, 0)) ||
        (st = check_sizes(who, Q->rows, K->rows)))
        return st;
    if (o->method == KAT_RANK_DENSE && (st = check_dense_size(who, Q->rows, K->rows)))
        return st;
    if ((st = kat__rank_check_inputs(who, o->form, o->scale, Q, K, 1)))
        return st;
    /* The prediction's base rank, for polynomial f only. */
    size_t base = KAT_RANK_NONE, pred = KAT_RANK_NONE;
    int poly = !f || kat_fn_poly_degree(f) >= 0;
    if (o->predict && poly && o->form != KAT_RANK_L1) {
        st = o->form == KAT_RANK_INNER ? kat_rank_inner_rank(Q, K, &base)
                                       : kat_rank_affine_dim(Q, K, &base);
        if (!st)
            st = kat_rank_predict(f, o->form, o->scale, base, Q->rows, K->rows, &pred);
        if (st)
            return st;
    }
    rank_op op;
    if ((st = kat__rank_op_init(&op, f, o->form, o->scale, Q, K)))
        return st;
    /* The randomized search's first block covers the predicted rank and the oversampling:
     * one block and two passes where doubling from 64 would take more (the search still
     * checks the prediction: a block must end with `oversample` values below the threshold). */
    kat_rank_opts ob = *o;
    if (pred != KAT_RANK_NONE && pred + o->oversample > ob.block)
        ob.block = pred + o->oversample;
    kat_rank_result r;
    st = run_op(who, &op, &ob, &r);
    kat__rank_op_free(&op);
    if (st)
        return st;
    r.d = Q->cols;
    r.base_rank = base;
    r.predicted_rank = pred;
    *res = r;
    return KAT_OK;
}

kat_status kat_rank_randomized(const kat_fn *f, const kat_dmat *Q, const kat_dmat *K,
                               const kat_rank_opts *opts, kat_rank_result *res)
{
    if (!opts)
        return kat__fail(KAT_EINVAL, "rank_randomized: opts is NULL");
    kat_rank_opts o = *opts;
    o.method = KAT_RANK_RANDOMIZED;
    return kat_rank_probe(f, Q, K, &o, res);
}

kat_status kat_rank_probe_featmap(const kat_featmap *fm, const kat_dmat *Q, const kat_dmat *K,
                                  const kat_rank_opts *o, kat_rank_result *res)
{
    const char *who = "rank_probe_featmap";
    kat_status st = kat__rank_check_opts(who, o);
    if (st)
        return st;
    if (!fm)
        return kat__fail(KAT_EINVAL, "%s: fm is NULL", who);
    if (!res)
        return kat__fail(KAT_EINVAL, "%s: res is NULL", who);
    if ((st = kat__rank_check_inputs(who, KAT_RANK_INNER, 1.0, Q, K, 0)) ||
        (st = check_sizes(who, Q->rows, K->rows)))
        return st;
    if (Q->cols != kat_featmap_in_dim(fm))
        return kat__fail(KAT_EINVAL, "%s: Q and K have d = %zu columns but map %s takes %zu",
                        who, Q->cols, kat_featmap_name(fm), kat_featmap_in_dim(fm));
    if (kat_featmap_out_dim(fm) > INT_MAX)
        return kat__fail(KAT_ERANGE, "%s: feature dimension %zu is above BLAS's limit %d", who,
                        kat_featmap_out_dim(fm), INT_MAX);
    if (o->method == KAT_RANK_DENSE && (st = check_dense_size(who, Q->rows, K->rows)))
        return st;
    if ((st = kat__rank_check_inputs(who, KAT_RANK_INNER, 1.0, Q, K, 1)))
        return st;
    kat_dmat Phi, Psi;
    if ((st = kat__rank_featmap_features(fm, Q, K, &Phi, &Psi)))
        return st;
    rank_op op;
    kat_rank_result r;
    st = kat__rank_op_init(&op, NULL, KAT_RANK_INNER, 1.0, &Phi, &Psi);
    if (!st)
        st = run_op(who, &op, o, &r);
    kat__rank_op_free(&op);
    kat_dmat_free(&Phi);
    kat_dmat_free(&Psi);
    if (st)
        return st;
    r.d = Q->cols;
    *res = r;
    return KAT_OK;
}

kat_status kat_rank_probe_matrix(const kat_dmat *M, const kat_rank_opts *o, kat_rank_result *res)
{
    const char *who = "rank_probe_matrix";
    kat_status st = kat__rank_check_opts(who, o);
    if (st)
        return st;
    if (!res)
        return kat__fail(KAT_EINVAL, "%s: res is NULL", who);
    if ((st = kat_dmat_check(M, "rank_probe_matrix: M", 0)) ||
        (st = check_sizes(who, M->rows, M->cols)))
        return st;
    if (o->method != KAT_RANK_DENSE)
        return kat__fail(KAT_ENOTSUP, "%s: a given matrix is probed with the dense method only",
                        who);
    if ((st = check_dense_size(who, M->rows, M->cols)) ||
        (st = kat_dmat_check(M, "rank_probe_matrix: M", 1)))
        return st;
    size_t n = M->rows, m = M->cols, mn = n < m ? n : m;
    double *sv = kat__alloc_array(mn, sizeof(double), "rank: singular values");
    if (!sv)
        return KAT_ENOMEM;
    if ((st = kat_rank_spectrum(M, sv, mn))) {
        kat_free(sv);
        return st;
    }
    kat_rank_result r;
    memset(&r, 0, sizeof r);
    r.n = n;
    r.m = m;
    r.method = KAT_RANK_DENSE;
    r.sv = sv;
    r.nsv = mn;
    r.sigma_max = sv[0];
    r.tol = kat__rank_tolerance(sv[0], n, m, o->rtol, o->atol);
    r.rank = kat__rank_count_above(sv, mn, r.tol);
    r.fro_norm = fro_from_spectrum(sv, mn);
    kat_rank_stable(sv, mn, &r.stable_rank);
    kat_rank_effective(sv, mn, &r.effective_rank);
    r.eps_rank_spectral = r.eps_rank_frobenius = KAT_RANK_NONE;
    if (o->eps > 0.0) {
        kat_rank_eps_spectral(sv, mn, o->eps, &r.eps_rank_spectral);
        kat_rank_eps_frobenius(sv, mn, o->eps, &r.eps_rank_frobenius);
    }
    r.converged = 1;
    r.predicted_rank = r.base_rank = KAT_RANK_NONE;
    *res = r;
    return KAT_OK;
}
