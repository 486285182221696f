/* What theory predicts, over distributed rows: the base rank of kat_rank_predict (rank of
 * Q K^T, or the affine dimension of the points) from R factors, never gathering the points.
 * Each process's rows X_p give a d x d matrix R_p with R_p^T R_p = X_p^T X_p (their QR's R,
 * or the rows themselves padded with zeros); the R of the stacked R_p's has the singular
 * values of X, and R_Q R_K^T those of Q K^T. The tolerances are kat_rank_inner_rank's and
 * kat_rank_affine_dim's, with the global sizes. */
#include <string.h>
#include "core/internal.h"
#include "mpi/mpi_internal.h"

/* R (d x d, column-major) of the rows of X over all processes; rows[] = X's local rows, which
 * may be two blocks (Q's and K's, centred by mean when mean is not NULL). */
static kat_status stacked_r(MPI_Comm comm, const kat_dmat *const *blocks, int nblocks,
                            const double *mean, size_t d, double *R)
{
    int np;
    MPI_Comm_size(comm, &np);
    size_t nl = 0;
    for (int b = 0; b < nblocks; b++)
        nl += blocks[b]->rows;
    size_t rows = nl > d ? nl : d, P = (size_t)np;
    double *a = kat_calloc(rows * d, sizeof(double));
    double *all = kat__alloc_array(P * d * d, sizeof(double), "mpi rank: R factors");
    double *tau = kat__alloc_array(d, sizeof(double), "mpi rank: QR");
    kat_status st = a && all && tau ? KAT_OK : KAT_ENOMEM;
    if (!st) {   /* column-major copy of the local rows (zero rows below when nl < d) */
        size_t i = 0;
        for (int b = 0; b < nblocks; b++)
            for (size_t r = 0; r < blocks[b]->rows; r++, i++)
                for (size_t t = 0; t < d; t++)
                    a[t * rows + i] = blocks[b]->data[r * blocks[b]->ld + t] -
                                      (mean ? mean[t] : 0.0);
        st = kat__rank_qr_inplace(rows, d, a, rows, tau, 0);
    }
    if (!(st = kat_mpi_agree(comm, st))) {
        double *mine = tau && all ? kat_calloc(d * d, sizeof(double)) : NULL;
        st = kat_mpi_agree(comm, mine ? KAT_OK : KAT_ENOMEM);
        if (!st) {
            for (size_t j = 0; j < d; j++)   /* the upper triangle of a's first d rows */
                for (size_t i = 0; i <= j; i++)
                    mine[j * d + i] = a[j * rows + i];
            MPI_Allgather(mine, (int)(d * d), MPI_DOUBLE, all, (int)(d * d), MPI_DOUBLE, comm);
            /* Stack: P d x d column-major blocks into one (P d) x d column-major matrix. */
            double *stack = kat__alloc_array(P * d * d, sizeof(double), "mpi rank: R stack");
            st = stack ? KAT_OK : KAT_ENOMEM;
            for (size_t p = 0; !st && p < P; p++)
                for (size_t j = 0; j < d; j++)
                    memcpy(stack + j * P * d + p * d, all + p * d * d + j * d,
                           d * sizeof(double));
            if (!st)
                st = kat__rank_qr_inplace(P * d, d, stack, P * d, tau, 0);
            for (size_t j = 0; !st && j < d; j++)
                for (size_t i = 0; i < d; i++)
                    R[j * d + i] = i <= j ? stack[j * P * d + i] : 0.0;
            kat_free(stack);
            st = kat_mpi_agree(comm, st);
        }
        kat_free(mine);
    }
    kat_free(a);
    kat_free(all);
    kat_free(tau);
    return st;
}

kat_status kat__mpi_predict(const kmpi_op *op, const kat_fn *f, const kat_rank_opts *o,
                        size_t *base, size_t *pred)
{
    *base = *pred = KAT_RANK_NONE;
    int poly = !f || kat_fn_poly_degree(f) >= 0;
    if (!o->predict || !poly || o->form == KAT_RANK_L1)
        return KAT_OK;
    size_t d = op->d;
    double *rq = kat__alloc_array(2 * d * d, sizeof(double), "mpi rank: R factors");
    double *sv = kat__alloc_array(d, sizeof(double), "mpi rank: singular values");
    kat_status st = kat_mpi_agree(op->comm, rq && sv ? KAT_OK : KAT_ENOMEM);
    double *rk = rq ? rq + d * d : NULL;
    if (!st && o->form == KAT_RANK_INNER) {
        const kat_dmat *q[1] = {op->Q}, *k[1] = {op->K};
        if (!(st = stacked_r(op->comm, q, 1, NULL, d, rq)) &&
            !(st = stacked_r(op->comm, k, 1, NULL, d, rk))) {
            /* p = R_Q R_K^T (d x d, column-major), into rq's place after use */
            double *p = kat__alloc_array(d * d, sizeof(double), "mpi rank: R_Q R_K^T");
            st = p ? KAT_OK : KAT_ENOMEM;
            for (size_t j = 0; !st && j < d; j++)
                for (size_t i = 0; i < d; i++) {
                    double acc = 0.0;
                    for (size_t t = 0; t < d; t++)
                        acc += rq[t * d + i] * rk[t * d + j];
                    p[j * d + i] = acc;
                }
            if (!st)
                st = kat__rank_svd_values_inplace(d, d, p, d, sv);
            if (!st)
                *base = kat__rank_count_above(sv, d, kat__rank_tolerance(sv[0], op->n, op->m, 0.0, 0.0));
            kat_free(p);
        }
    } else if (!st) {   /* l2sq: the affine dimension of all n + m points */
        double *sum = kat_calloc(d, sizeof(double)), *mean = kat_calloc(d, sizeof(double));
        st = kat_mpi_agree(op->comm, sum && mean ? KAT_OK : KAT_ENOMEM);
        if (!st) {
            const kat_dmat *both[2] = {op->Q, op->K};
            for (int b = 0; b < 2; b++)
                for (size_t r = 0; r < both[b]->rows; r++)
                    for (size_t t = 0; t < d; t++)
                        sum[t] += both[b]->data[r * both[b]->ld + t];
            MPI_Allreduce(sum, mean, (int)d, MPI_DOUBLE, MPI_SUM, op->comm);
            for (size_t t = 0; t < d; t++)
                mean[t] /= (double)(op->n + op->m);
            if (!(st = stacked_r(op->comm, both, 2, mean, d, rq)) &&
                !(st = kat__rank_svd_values_inplace(d, d, rq, d, sv)))
                *base = kat__rank_count_above(sv, d,
                                         kat__rank_tolerance(sv[0], op->n + op->m, d, 0.0, 0.0));
        }
        kat_free(sum);
        kat_free(mean);
    }
    if (!st)
        st = kat_rank_predict(f, o->form, o->scale, *base, op->n, op->m, pred);
    kat_free(rq);
    kat_free(sv);
    return kat_mpi_agree(op->comm, st);
}
