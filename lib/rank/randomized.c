/* Matrix-free randomized rank: an adaptive blocked range finder with power iterations
 * (Halko, Martinsson and Tropp 2011; blocked QB form after Yu, Gu and Li 2018). M is only
 * ever built tile by tile inside kat__rank_op_apply; what is stored is O((n + m) k). */
#include <cblas.h>
#include <float.h>
#include <math.h>
#include <string.h>
#include "core/internal.h"
#include "core/runtime.h"
#include "rank/rank_internal.h"

typedef struct {
    const rank_op *op;
    rank_op opT;
    size_t n, m, tile;
    double *Qb, *Zb;     /* n x k and m x k, column-major: the basis and B^T = M^T Qb */
    size_t k, cap;
    double *Y, *W, *C;   /* n x b, m x b and cap x b scratch */
    double *tau, *svcopy, *sv, *svb;
    size_t bcap;
    size_t last_b;       /* width of the last block (its B^T rows end Zb) */
    size_t passes;
} sketch;

static void sketch_free(sketch *s)
{
    kat_free(s->Qb);
    kat_free(s->Zb);
    kat_free(s->Y);
    kat_free(s->W);
    kat_free(s->C);
    kat_free(s->tau);
    kat_free(s->svcopy);
    kat_free(s->sv);
    kat_free(s->svb);
    memset(s, 0, sizeof *s);
}

/* Replace *buf (rows x old columns) by a rows x cols buffer holding the same columns. */
static kat_status regrow(double **buf, size_t rows, size_t old, size_t cols, const char *what)
{
    double *nb = kat__alloc_array(rows * cols, sizeof(double), what);
    if (!nb)
        return KAT_ENOMEM;
    if (*buf && old)
        memcpy(nb, *buf, rows * old * sizeof(double));
    kat_free(*buf);
    *buf = nb;
    return KAT_OK;
}

/* Room for k + b basis columns and a block of b. The memory is checked first, so a rank
 * search that would not fit fails with a sentence instead of being killed. */
static kat_status sketch_reserve(sketch *s, size_t b)
{
    size_t need = s->k + b;
    double words = (double)(s->n + 2 * s->m) * (double)need       /* Qb, Zb, svd copy */
                   + (double)(s->n + s->m) * (double)b             /* Y, W */
                   + (double)(s->n > s->m ? s->n : s->m) * (double)b   /* packed X */
                   + (double)need * (double)b + 3.0 * (double)need;
    kat_status st = kat__rank_mem_check(words * sizeof(double), "the randomized rank's sketch",
                                   "; lower max_rank (--max-rank) or loosen the tolerance "
                                   "(--rtol)");
    if (st)
        return st;
    if (need > s->cap) {
        if ((st = regrow(&s->Qb, s->n, s->k, need, "randomized rank: basis")) ||
            (st = regrow(&s->Zb, s->m, s->k, need, "randomized rank: B^T")) ||
            (st = regrow(&s->svcopy, s->m, 0, need, "randomized rank: svd copy")) ||
            (st = regrow(&s->sv, 1, 0, need, "randomized rank: singular values")))
            return st;
        s->cap = need;
        kat_free(s->C);
        s->C = NULL;
        s->bcap = 0;
    }
    if (b > s->bcap || !s->C) {
        size_t bc = b > s->bcap ? b : s->bcap;
        if ((st = regrow(&s->Y, s->n, 0, bc, "randomized rank: block")) ||
            (st = regrow(&s->W, s->m, 0, bc, "randomized rank: block")) ||
            (st = regrow(&s->C, s->cap, 0, bc, "randomized rank: projections")) ||
            (st = regrow(&s->tau, 1, 0, bc, "randomized rank: QR")) ||
            (st = regrow(&s->svb, 1, 0, bc, "randomized rank: block values")))
            return st;
        s->bcap = bc;
    }
    return KAT_OK;
}

/* Y -= Qb (Qb^T Y) for the n x b block Y. */
static void project_out(sketch *s, double *Y, size_t b)
{
    if (s->k == 0)
        return;
    int n = (int)s->n, k = (int)s->k, bb = (int)b;
    cblas_dgemm(CblasColMajor, CblasTrans, CblasNoTrans, k, bb, n, 1.0, s->Qb, n, Y, n, 0.0,
                s->C, k);
    cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, n, bb, k, -1.0, s->Qb, n, s->C, k,
                1.0, Y, n);
}

static kat_status apply(sketch *s, int transposed, const double *X, size_t b, double *out,
                        rank_fro *fro)
{
    const rank_op *op = transposed ? &s->opT : s->op;
    s->passes++;
    return kat__rank_op_apply(op, X, op->cols, b, out, op->rows, s->tile, fro);
}

/* The least r whose Frobenius tail fits eps |M|_F (kat__rank_eps_frobenius_tail), computed in the
 * units of fro's scale so that huge entries neither overflow nor tiny ones vanish. */
size_t kat__rank_eps_frobenius_fro(const double *sv, size_t k, const rank_fro *fro, double eps)
{
    rank_sum cap = {0.0, 0.0};
    for (size_t i = k; i-- > 0;) {
        double x = sv[i] / fro->scale;   /* exact: the scale is a power of two */
        rank_sum_add(&cap, x * x);
    }
    double rest = fro->ssq - rank_sum_value(&cap);
    return kat__rank_eps_frobenius_tail(sv, k, fro->scale, rest > 0 ? rest : 0, fro->ssq, eps);
}

double kat__rank_search_threshold(double sigma1, size_t n, size_t m, const kat_rank_opts *o)
{
    double tau = kat__rank_tolerance(sigma1, n, m, o->rtol, o->atol);
    if (o->eps > 0.0 && o->eps * sigma1 < tau)
        tau = o->eps * sigma1;
    return tau;
}

void kat__rank_result_from_values(kat_rank_result *res, size_t n, size_t m, double *sv, size_t k,
                             const rank_fro *fro, const kat_rank_opts *o, int converged,
                             size_t passes)
{
    double sigma1 = k ? sv[0] : 0.0;
    double tol = kat__rank_tolerance(sigma1, n, m, o->rtol, o->atol);
    memset(res, 0, sizeof *res);
    res->n = n;
    res->m = m;
    res->method = KAT_RANK_RANDOMIZED;
    res->sv = sv;
    res->nsv = k;
    res->tol = tol;
    res->rank = kat__rank_count_above(sv, k, tol);
    res->sigma_max = sigma1;
    res->fro_norm = fro->scale * sqrt(fro->ssq);
    double s1 = sigma1 / fro->scale;   /* stable rank |M|_F^2 / sigma_1^2 in fro's units */
    res->stable_rank = s1 > 0.0 ? fro->ssq / (s1 * s1) : 0.0;
    kat_rank_effective(sv, k, &res->effective_rank);
    res->eps_rank_spectral = res->eps_rank_frobenius = KAT_RANK_NONE;
    if (o->eps > 0.0) {
        res->eps_rank_spectral = kat__rank_count_above(sv, k, o->eps * sigma1);
        res->eps_rank_frobenius = kat__rank_eps_frobenius_fro(sv, k, fro, o->eps);
    }
    res->converged = converged;
    res->passes = passes;
    res->predicted_rank = res->base_rank = KAT_RANK_NONE;
}

/* Singular values of the column-major rows x cols matrix a, not destroyed (copied). */
static kat_status values_of(sketch *s, const double *a, size_t rows, size_t cols, double *sv)
{
    memcpy(s->svcopy, a, rows * cols * sizeof(double));
    return kat__rank_svd_values_inplace(rows, cols, s->svcopy, rows, sv);
}

/* Make column c of the new block (stored after the k + c columns already in Qb) a unit vector
 * orthogonal to them. A column is projected out again until a pass keeps more than 1/sqrt 2
 * of its norm ("twice is enough", Kahan-Parlett): then it is orthogonal to working precision
 * even when it started as rounding noise, which a block QR would normalise into a direction
 * that still overlaps the basis. A column that lies in the span (nothing left) is replaced
 * by a fresh Gaussian vector: any unit direction outside the basis keeps B = Q^T M exact,
 * and it adds no singular value above the noise. */
static kat_status orthonormalise_column(sketch *s, size_t c, kat_rng *rng)
{
    size_t n = s->n, kc = s->k + c;
    double *y = s->Qb + kc * n;
    for (int attempt = 0; attempt < 4; attempt++) {
        double nrm = cblas_dnrm2((int)n, y, 1);
        /* (a norm below DBL_MIN counts as nothing left: its reciprocal would overflow) */
        for (int pass = 0; pass < 4 && nrm >= DBL_MIN && isfinite(nrm); pass++) {
            cblas_dscal((int)n, 1.0 / nrm, y, 1);
            if (kc) {
                cblas_dgemv(CblasColMajor, CblasTrans, (int)n, (int)kc, 1.0, s->Qb, (int)n, y, 1,
                            0.0, s->C, 1);
                cblas_dgemv(CblasColMajor, CblasNoTrans, (int)n, (int)kc, -1.0, s->Qb, (int)n,
                            s->C, 1, 1.0, y, 1);
            }
            nrm = cblas_dnrm2((int)n, y, 1);
            if (nrm > 0.70710678118654752) {
                cblas_dscal((int)n, 1.0 / nrm, y, 1);
                return KAT_OK;
            }
        }
        for (size_t i = 0; i < n; i++)
            y[i] = kat_rng_gaussian(rng, 1.0);
    }
    return kat__fail(KAT_ELAPACK, "randomized rank: no direction outside a basis of %zu vectors "
                    "in dimension %zu", kc, n);
}

/* One block: b new orthonormal directions in Qb (orthogonal to the old ones) and their rows
 * of B; svb receives the singular values of the new rows of B. */
static kat_status add_block(sketch *s, kat_rng *rng, size_t b, int power_iters, rank_fro *fro)
{
    kat_status st;
    /* Test matrix: up to half of it is the last block's M^T Q (orthonormalised), which makes
     * the next range a Krylov step (the power iteration's benefit without its passes); the
     * rest is Gaussian, which keeps every block a fresh random probe. */
    size_t kry = s->last_b < b / 2 ? s->last_b : b / 2;
    if (kry) {
        memcpy(s->W, s->Zb + (s->k - s->last_b) * s->m, s->m * kry * sizeof(double));
        if ((st = kat__rank_qr_inplace(s->m, kry, s->W, s->m, s->tau, 1)))
            return st;
    }
    for (size_t c = kry; c < b; c++)
        for (size_t i = 0; i < s->m; i++)
            s->W[c * s->m + i] = kat_rng_gaussian(rng, 1.0);
    if ((st = apply(s, 0, s->W, b, s->Y, fro)))
        return st;
    for (int it = 0; it < power_iters; it++) {
        project_out(s, s->Y, b);
        if ((st = kat__rank_qr_inplace(s->n, b, s->Y, s->n, s->tau, 1)) ||
            (st = apply(s, 1, s->Y, b, s->W, NULL)) ||
            (st = kat__rank_qr_inplace(s->m, b, s->W, s->m, s->tau, 1)) ||
            (st = apply(s, 0, s->W, b, s->Y, NULL)))
            return st;
    }
    /* Block Gram-Schmidt twice (BLAS 3), then column by column against the basis and the
     * block's earlier columns, which also catches columns that were only rounding noise. */
    project_out(s, s->Y, b);
    project_out(s, s->Y, b);
    double *qn = s->Qb + s->k * s->n, *zn = s->Zb + s->k * s->m;
    memcpy(qn, s->Y, s->n * b * sizeof(double));
    if (s->k == 0) {
        /* No basis yet: Householder's Q is orthonormal to working precision whatever the
         * block's rank (its columns for a rank-deficient block are directions that add no
         * singular value), at BLAS-3 speed, where column by column streams the block from
         * memory twice per column. */
        if ((st = kat__rank_qr_inplace(s->n, b, qn, s->n, s->tau, 1)))
            return st;
    } else {
        for (size_t c = 0; c < b; c++)
            if ((st = orthonormalise_column(s, c, rng)))
                return st;
    }
    if ((st = apply(s, 1, qn, b, zn, NULL)))   /* B_new^T = M^T Q_new */
        return st;
    if ((st = values_of(s, zn, s->m, b, s->svb)))
        return st;
    s->k += b;
    s->last_b = b;
    return KAT_OK;
}

kat_status kat__rank_randomized_op(const rank_op *op, const kat_rank_opts *o, kat_rank_result *res)
{
    size_t n = op->rows, m = op->cols, mn = n < m ? n : m;
    size_t K = o->max_rank && o->max_rank < mn ? o->max_rank : mn;
    size_t p = o->oversample;
    sketch s;
    memset(&s, 0, sizeof s);
    s.op = op;
    s.opT = kat__rank_op_transpose(op);
    s.n = n;
    s.m = m;
    s.tile = o->tile_rows;
    kat_rng *rng = NULL;
    kat_status st = kat_rng_create(o->seed, &rng);
    rank_fro fro = {1.0, 0.0};
    double sigma1 = 0.0;
    int converged = 0;
    size_t bcur = o->block ? o->block : 32;
    /* The basis products and factorisations run single-threaded, held for the loop: they are
     * small next to the tile products, and the result then does not depend on any thread
     * count. */
    int held = !st && !(st = kat__blas_hold(1, 1, "randomized rank"));
    while (!st && s.k < K) {
        size_t b = bcur < K - s.k ? bcur : K - s.k;
        if ((st = sketch_reserve(&s, b)) ||
            (st = add_block(&s, rng, b, o->power_iters, s.k == 0 ? &fro : NULL)))
            break;
        /* sigma_1(B) >= sigma_1 of every block's rows; the first block's is already close
         * (and a low estimate only makes the threshold stricter). The full spectrum of B is
         * needed inside the loop only for the Frobenius criterion. */
        if (s.svb[0] > sigma1)
            sigma1 = s.svb[0];
        double tau = kat__rank_search_threshold(sigma1, n, m, o);
        /* Saturated: the new block found at least p directions at or below the threshold,
         * so (with high probability) none above it is left outside the basis. */
        int done = b - kat__rank_count_above(s.svb, b, tau) >= p;
        if (done && o->eps > 0.0) {
            if ((st = values_of(&s, s.Zb, m, s.k, s.sv)))
                break;
            size_t kf = kat__rank_eps_frobenius_fro(s.sv, s.k, &fro, o->eps);
            done = kf != KAT_RANK_NONE && s.k - kf >= p;
        }
        if (done || s.k == mn) {
            converged = 1;
            break;
        }
        bcur = bcur > K / 2 ? K : 2 * bcur;
    }
    kat_rng_destroy(rng);
    if (!st && s.k && s.k == s.last_b)   /* one block: its values are B's */
        memcpy(s.sv, s.svb, s.k * sizeof(double));
    else if (!st && s.k)
        st = values_of(&s, s.Zb, m, s.k, s.sv);
    if (held)
        kat__blas_release();
    if (st) {
        sketch_free(&s);
        return st;
    }
    kat__rank_result_from_values(res, n, m, s.sv, s.k, &fro, o, converged, s.passes);
    s.sv = NULL;   /* res keeps the values */
    sketch_free(&s);
    return KAT_OK;
}
