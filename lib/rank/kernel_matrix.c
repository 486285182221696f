/* Dense kernel matrices for the caller: M = f(s * a(Q, K)) and M = phi(Q) psi(K)^T. */
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include "core/internal.h"
#include "rank/rank_internal.h"

int kat__rank_dmat_overlap(const kat_dmat *a, const kat_dmat *b)
{
    if (!a->rows || !a->cols || !b->rows || !b->cols)
        return 0;
    uintptr_t a0 = (uintptr_t)a->data, b0 = (uintptr_t)b->data;
    uintptr_t a1 = a0 + ((a->rows - 1) * a->ld + a->cols) * sizeof(double);
    uintptr_t b1 = b0 + ((b->rows - 1) * b->ld + b->cols) * sizeof(double);
    return a0 < b1 && b0 < a1;
}

/* M must be a valid n x m view, within BLAS limits, and not overlap Q or K. */
static kat_status check_output(const char *who, const kat_dmat *Q, const kat_dmat *K,
                               const kat_dmat *M)
{
    char what[96];
    snprintf(what, sizeof what, "%s: M", who);
    kat_status st = kat_dmat_check(M, what, 0);
    if (st)
        return st;
    if (M->rows != Q->rows || M->cols != K->rows)
        return kat__fail(KAT_EINVAL, "%s: M is %zu x %zu, expected n x m = %zu x %zu", who,
                        M->rows, M->cols, Q->rows, K->rows);
    if (M->ld > INT_MAX)
        return kat__fail(KAT_ERANGE, "%s: M's ld = %zu is above BLAS's limit %d", who, M->ld,
                        INT_MAX);
    if (kat__rank_dmat_overlap(M, Q) || kat__rank_dmat_overlap(M, K))
        return kat__fail(KAT_EINVAL, "%s: M overlaps %s in memory", who,
                        kat__rank_dmat_overlap(M, Q) ? "Q" : "K");
    return KAT_OK;
}

kat_status kat_rank_kernel_matrix(const kat_fn *f, kat_rank_form form, double s,
                                  const kat_dmat *Q, const kat_dmat *K, kat_dmat *M)
{
    const char *who = "rank_kernel_matrix";
    kat_status st = kat__rank_check_inputs(who, form, s, Q, K, 0);
    if (!st)
        st = check_output(who, Q, K, M);
    if (!st)
        st = kat__rank_check_inputs(who, form, s, Q, K, 1);
    if (st)
        return st;
    rank_op op;
    if ((st = kat__rank_op_init(&op, f, form, s, Q, K)))
        return st;
    st = kat__rank_op_fill(&op, M->data, M->ld, 256);
    kat__rank_op_free(&op);
    return st;
}

kat_status kat__rank_featmap_features(const kat_featmap *fm, const kat_dmat *Q, const kat_dmat *K,
                                 kat_dmat *Phi, kat_dmat *Psi)
{
    size_t D = kat_featmap_out_dim(fm);
    kat_dmat P = {0}, S = {0};
    kat_status st = kat_dmat_alloc(Q->rows, D, &P);
    if (!st)
        st = kat_dmat_alloc(K->rows, D, &S);
    if (!st)
        st = kat_featmap_apply(fm, KAT_SIDE_QUERY, Q, &P);
    if (!st)
        st = kat_featmap_apply(fm, KAT_SIDE_KEY, K, &S);
    if (st) {
        kat_dmat_free(&P);
        kat_dmat_free(&S);
        return st;
    }
    *Phi = P;
    *Psi = S;
    return KAT_OK;
}

kat_status kat_rank_featmap_matrix(const kat_featmap *fm, const kat_dmat *Q, const kat_dmat *K,
                                   kat_dmat *M)
{
    const char *who = "rank_featmap_matrix";
    if (!fm)
        return kat__fail(KAT_EINVAL, "%s: fm is NULL", who);
    kat_status st = kat__rank_check_inputs(who, KAT_RANK_INNER, 1.0, Q, K, 0);
    if (!st)
        st = check_output(who, Q, K, M);
    if (st)
        return st;
    if (Q->cols != kat_featmap_in_dim(fm))
        return kat__fail(KAT_EINVAL, "%s: Q and K have d = %zu columns but map %s takes %zu",
                        who, Q->cols, kat_featmap_name(fm), kat_featmap_in_dim(fm));
    if (kat_featmap_out_dim(fm) > INT_MAX)
        return kat__fail(KAT_ERANGE, "%s: feature dimension %zu is above BLAS's limit %d", who,
                        kat_featmap_out_dim(fm), INT_MAX);
    if ((st = kat__rank_check_inputs(who, KAT_RANK_INNER, 1.0, Q, K, 1)))
        return st;
    kat_dmat Phi, Psi;
    if ((st = kat__rank_featmap_features(fm, Q, K, &Phi, &Psi)))
        return st;
    rank_op op;
    st = kat__rank_op_init(&op, NULL, KAT_RANK_INNER, 1.0, &Phi, &Psi);
    if (!st)
        st = kat__rank_op_fill(&op, M->data, M->ld, 256);
    kat__rank_op_free(&op);
    kat_dmat_free(&Phi);
    kat_dmat_free(&Psi);
    return st;
}
