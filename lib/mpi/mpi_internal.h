/* Private pieces of libkat-mpi: the distributed kernel operator behind the PETSc shell matrix,
 * and PETSc error translation. */
#ifndef KAT_MPI_INTERNAL_H
#define KAT_MPI_INTERNAL_H

#include <petscmat.h>
#include "kat/mpi.h"
#include "rank/rank_internal.h"

/* M = f(s * a(Q, K)) spread over the processes of comm: this process owns rows
 * qoff[me] .. qoff[me + 1] - 1 of Q (rows of M) and koff[me] .. of K (rows of M^T). */
typedef struct kmpi_op kmpi_op;
typedef struct {
    kmpi_op *op;
    int transposed;   /* 0: the shell is M (n x m); 1: M^T */
} kmpi_side;

struct kmpi_op {
    MPI_Comm comm;
    int me, np;
    const kat_fn *f;
    kat_rank_form form;
    double s;
    const kat_dmat *Q, *K;   /* this process's rows */
    size_t n, m, d;
    size_t *qoff, *koff;     /* np + 1 offsets each */
    size_t tile;
    kmpi_side side[2];
    int want_fro;            /* the next product also sums |M|_F^2 into fro */
    rank_fro fro;
    kat_status failed;       /* an agreed failure inside a product (its sentence is set) */
    double *pts, *xbuf, *ytmp;   /* a remote block of points, of X, and a partial Y */
    size_t pcap, xcap, ycap;   /* their capacities in doubles */
    kat_mpi_stats stats;
};

/* Set up the operator: offsets from every process's row counts (collective). KAT_EINVAL,
 * agreed, for a process without rows or a d that differs. */
kat_status kat__mpi_op_init(kmpi_op *op, MPI_Comm comm, const kat_fn *f, kat_rank_form form,
                        double s, const kat_dmat *Qloc, const kat_dmat *Kloc, size_t tile);
void kat__mpi_op_free(kmpi_op *op);

/* Y = M X (transposed = 0) or M^T X on this process's rows: X holds this process's rows of
 * the other side (column-major, ldx), Y this process's rows of the result (ldy); b columns.
 * Collective; the status is agreed. */
kat_status kat__mpi_op_product(kmpi_op *op, int transposed, const double *X, size_t ldx, size_t b,
                           double *Y, size_t ldy);

/* The shell matrix for M (transposed = 0) or M^T, with MatMult, MatMultTranspose, the
 * product with a dense matrix and MatTranspose (which gives the other shell). */
PetscErrorCode kat__mpi_shell_create(kmpi_op *op, int transposed, Mat *A);

/* kat_rank_probe's prediction (base rank and predicted rank, KAT_RANK_NONE when theory gives
 * none) from the distributed rows (predict.c). Collective; the status is agreed. */
kat_status kat__mpi_predict(const kmpi_op *op, const kat_fn *f, const kat_rank_opts *o,
                        size_t *base, size_t *pred);

/* KAT_ENOTSUP with PETSc's sentence for error code ierr of `what`. */
kat_status kat__mpi_petsc_fail(PetscErrorCode ierr, const char *what);

#endif
