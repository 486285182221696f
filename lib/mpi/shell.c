/* The distributed kernel operator: M = f(s * a(Q, K)) with this process's rows of Q and K,
 * its products computed by kat's block evaluator (kat__rank_op_apply) one remote block at a time,
 * and the PETSc shell matrix around it. */
#include <string.h>
#include "core/internal.h"
#include "mpi/mpi_internal.h"

kat_status kat__mpi_petsc_fail(PetscErrorCode ierr, const char *what)
{
    const char *text = NULL;
    PetscErrorMessage(ierr, &text, NULL);
    return kat__fail(KAT_ENOTSUP, "PETSc/SLEPc: %s failed with error %d (%s)", what, (int)ierr,
                    text ? text : "no message");
}

kat_status kat__mpi_op_init(kmpi_op *op, MPI_Comm comm, const kat_fn *f, kat_rank_form form,
                        double s, const kat_dmat *Qloc, const kat_dmat *Kloc, size_t tile)
{
    memset(op, 0, sizeof *op);
    op->comm = comm;
    MPI_Comm_rank(comm, &op->me);
    MPI_Comm_size(comm, &op->np);
    op->f = f;
    op->form = form;
    op->s = s;
    op->Q = Qloc;
    op->K = Kloc;
    op->tile = tile;
    op->side[0] = (kmpi_side){op, 0};
    op->side[1] = (kmpi_side){op, 1};
    kat_status st = kat__rank_check_inputs("kat_mpi_rank_probe (this process's rows)", form, s, Qloc,
                                      Kloc, 1);
    if ((st = kat_mpi_agree(comm, st)))
        return st;
    /* Every process's row counts and d, to check and to lay the rows out. */
    size_t np = (size_t)op->np;
    unsigned long long mine[3] = {Qloc->rows, Kloc->rows, Qloc->cols};
    unsigned long long *all = kat__alloc_array(3 * np, sizeof *all, "mpi rank: row counts");
    op->qoff = kat__alloc_array(np + 1, sizeof(size_t), "mpi rank: offsets");
    op->koff = kat__alloc_array(np + 1, sizeof(size_t), "mpi rank: offsets");
    st = all && op->qoff && op->koff ? KAT_OK : KAT_ENOMEM;
    if ((st = kat_mpi_agree(comm, st))) {
        kat_free(all);
        kat__mpi_op_free(op);
        return st;
    }
    MPI_Allgather(mine, 3, MPI_UNSIGNED_LONG_LONG, all, 3, MPI_UNSIGNED_LONG_LONG, comm);
    op->qoff[0] = op->koff[0] = 0;
    for (size_t r = 0; r < np; r++) {
        op->qoff[r + 1] = op->qoff[r] + (size_t)all[3 * r];
        op->koff[r + 1] = op->koff[r] + (size_t)all[3 * r + 1];
    }
    op->n = op->qoff[np];
    op->m = op->koff[np];
    op->d = Qloc->cols;
    if (Qloc->cols != (size_t)all[2])
        st = kat__fail(KAT_EINVAL, "kat_mpi_rank_probe: this process's points have d = %zu but "
                      "process 0's have d = %llu; every process needs the same d", Qloc->cols,
                      all[2]);
    else if (Qloc->rows == 0 || Kloc->rows == 0)
        st = kat__fail(KAT_EINVAL, "kat_mpi_rank_probe: this process holds no rows of %s (n = %zu "
                      "and m = %zu rows over %d processes); every process needs at least one "
                      "row of Q and of K: run on at most %zu processes", Qloc->rows ? "K" : "Q",
                      op->n, op->m, op->np, op->n < op->m ? op->n : op->m);
    kat_free(all);
    if ((st = kat_mpi_agree(comm, st)))
        kat__mpi_op_free(op);
    return st;
}

void kat__mpi_op_free(kmpi_op *op)
{
    kat_free(op->qoff);
    kat_free(op->koff);
    kat_free(op->pts);
    kat_free(op->xbuf);
    kat_free(op->ytmp);
    op->qoff = op->koff = NULL;
    op->pts = op->xbuf = op->ytmp = NULL;
}

/* acc += x for two scaled sums of squares (scales are powers of two; exact rescaling). */
static void fro_merge(rank_fro *acc, rank_fro x)
{
    if (x.ssq == 0.0)
        return;
    if (acc->ssq == 0.0) {
        *acc = x;
        return;
    }
    double big = acc->scale > x.scale ? acc->scale : x.scale;
    double ra = acc->scale / big, rx = x.scale / big;
    *acc = (rank_fro){big, acc->ssq * ra * ra + x.ssq * rx * rx};
}

/* The same over all processes: the largest scale, then the rescaled sums added up. */
static void fro_allreduce(MPI_Comm comm, rank_fro *fro)
{
    double scale = fro->ssq > 0.0 ? fro->scale : 0.0, big, ssq;
    MPI_Allreduce(&scale, &big, 1, MPI_DOUBLE, MPI_MAX, comm);
    if (big == 0.0) {
        *fro = (rank_fro){1.0, 0.0};
        return;
    }
    double r = fro->ssq > 0.0 ? fro->scale / big : 0.0, part = fro->ssq * r * r;
    MPI_Allreduce(&part, &ssq, 1, MPI_DOUBLE, MPI_SUM, comm);
    *fro = (rank_fro){big, ssq};
}

static kat_status reserve(double **buf, size_t *cap, size_t count, const char *what)
{
    if (count <= *cap)
        return KAT_OK;
    kat_free(*buf);
    *buf = kat__alloc_array(count, sizeof(double), what);
    *cap = *buf ? count : 0;
    return *buf ? KAT_OK : KAT_ENOMEM;
}

kat_status kat__mpi_op_product(kmpi_op *op, int transposed, const double *X, size_t ldx, size_t b,
                           double *Y, size_t ldy)
{
    const kat_dmat *mine = transposed ? op->K : op->Q, *other = transposed ? op->Q : op->K;
    const size_t *off = transposed ? op->qoff : op->koff, *moff = transposed ? op->koff
                                                                              : op->qoff;
    size_t d = op->d, most = 0;
    for (int r = 0; r < op->np; r++)
        if (off[r + 1] - off[r] > most)
            most = off[r + 1] - off[r];
    /* Buffers first, agreed, so that no process leaves the broadcasts below early. */
    kat_status st = reserve(&op->pts, &op->pcap, most * d, "mpi rank: remote points");
    if (!st)
        st = reserve(&op->xbuf, &op->xcap, most * b, "mpi rank: remote vectors");
    if (!st && op->np > 1)
        st = reserve(&op->ytmp, &op->ycap, mine->rows * b, "mpi rank: partial products");
    if ((st = kat_mpi_agree(op->comm, st)))
        return st;
    rank_fro fro = {1.0, 0.0};
    int want_fro = op->want_fro;
    for (int r = 0; r < op->np; r++) {
        size_t nr = off[r + 1] - off[r];
        /* The root packs its block (points row-major with ld d, X column-major with ld nr). */
        double t0 = MPI_Wtime();
        if (r == op->me) {
            for (size_t i = 0; i < nr; i++)
                memcpy(op->pts + i * d, other->data + i * other->ld, d * sizeof(double));
            for (size_t c = 0; c < b; c++)
                memcpy(op->xbuf + c * nr, X + c * ldx, nr * sizeof(double));
        }
        MPI_Bcast(op->pts, (int)(nr * d), MPI_DOUBLE, r, op->comm);
        MPI_Bcast(op->xbuf, (int)(nr * b), MPI_DOUBLE, r, op->comm);
        double t1 = MPI_Wtime();
        op->stats.seconds_comm += t1 - t0;
        if (st)
            continue;   /* keep taking part in the broadcasts; the failure is agreed below */
        kat_dmat P = {nr, d, d, op->pts};
        rank_op rop;
        if ((st = kat__rank_op_init(&rop, op->f, op->form, op->s, mine, &P)))
            continue;
        rop.row0 = moff[op->me];
        rop.col0 = off[r];
        rop.transposed = transposed;   /* the rule of M^T names M's entries in messages */
        double *out = r == 0 || op->np == 1 ? Y : op->ytmp;
        size_t ldo = out == Y ? ldy : mine->rows;
        rank_fro part;
        st = kat__rank_op_apply(&rop, op->xbuf, nr, b, out, ldo, op->tile, want_fro ? &part : NULL);
        kat__rank_op_free(&rop);
        if (!st && want_fro)
            fro_merge(&fro, part);
        if (!st && out != Y)
            for (size_t c = 0; c < b; c++) {
                double *y = Y + c * ldy;
                const double *t = op->ytmp + c * mine->rows;
                for (size_t i = 0; i < mine->rows; i++)
                    y[i] += t[i];
            }
        op->stats.seconds_compute += MPI_Wtime() - t1;
    }
    if ((st = kat_mpi_agree(op->comm, st)))
        return st;
    if (want_fro) {
        fro_allreduce(op->comm, &fro);
        op->fro = fro;
        op->want_fro = 0;
    }
    return KAT_OK;
}

/* ---- the PETSc shell ------------------------------------------------------------------ */

/* A failed product has set kat's sentence on every process; PETSc only needs to unwind. */
#define KMPI_PRODUCT_FAILED PETSC_ERR_USER

static PetscErrorCode shell_mult_dir(Mat A, Vec x, Vec y, int flip)
{
    kmpi_side *side;
    PetscCall(MatShellGetContext(A, &side));
    kmpi_op *op = side->op;
    int t = side->transposed ^ flip;
    const PetscScalar *xa;
    PetscScalar *ya;
    PetscInt nx, ny;
    PetscCall(VecGetLocalSize(x, &nx));
    PetscCall(VecGetLocalSize(y, &ny));
    PetscCall(VecGetArrayRead(x, &xa));
    PetscCall(VecGetArrayWrite(y, &ya));
    kat_status st = kat__mpi_op_product(op, t, xa, (size_t)(nx ? nx : 1), 1, ya,
                                    (size_t)(ny ? ny : 1));
    PetscCall(VecRestoreArrayRead(x, &xa));
    PetscCall(VecRestoreArrayWrite(y, &ya));
    if (st) {
        op->failed = st;
        return KMPI_PRODUCT_FAILED;
    }
    op->stats.vector_products++;
    return 0;
}

static PetscErrorCode shell_mult(Mat A, Vec x, Vec y) { return shell_mult_dir(A, x, y, 0); }
static PetscErrorCode shell_mult_t(Mat A, Vec x, Vec y) { return shell_mult_dir(A, x, y, 1); }

/* C = A B for a dense B: one pass over M for all of B's columns. */
static PetscErrorCode shell_matmat(Mat A, Mat B, Mat C, void *data)
{
    (void)data;
    kmpi_side *side;
    PetscCall(MatShellGetContext(A, &side));
    kmpi_op *op = side->op;
    const PetscScalar *xa;
    PetscScalar *ya;
    PetscInt b, ldx, ldy, nx, ny;
    PetscCall(MatGetSize(B, NULL, &b));
    PetscCall(MatGetLocalSize(B, &nx, NULL));
    PetscCall(MatGetLocalSize(C, &ny, NULL));
    PetscCall(MatDenseGetLDA(B, &ldx));
    PetscCall(MatDenseGetLDA(C, &ldy));
    PetscCall(MatDenseGetArrayRead(B, &xa));
    PetscCall(MatDenseGetArrayWrite(C, &ya));
    kat_status st = kat__mpi_op_product(op, side->transposed, xa, (size_t)(ldx ? ldx : 1),
                                    (size_t)b, ya, (size_t)(ldy ? ldy : 1));
    (void)nx, (void)ny;
    PetscCall(MatDenseRestoreArrayRead(B, &xa));
    PetscCall(MatDenseRestoreArrayWrite(C, &ya));
    if (st) {
        op->failed = st;
        return KMPI_PRODUCT_FAILED;
    }
    op->stats.products++;
    return 0;
}

static PetscErrorCode shell_transpose(Mat A, MatReuse reuse, Mat *B)
{
    kmpi_side *side;
    PetscCall(MatShellGetContext(A, &side));
    if (reuse == MAT_INPLACE_MATRIX)
        SETERRQ(PetscObjectComm((PetscObject)A), PETSC_ERR_SUP,
                "kat's kernel shell has no in-place transpose");
    if (reuse == MAT_INITIAL_MATRIX)
        PetscCall(kat__mpi_shell_create(side->op, !side->transposed, B));
    return 0;
}

PetscErrorCode kat__mpi_shell_create(kmpi_op *op, int transposed, Mat *A)
{
    const size_t *rows = transposed ? op->koff : op->qoff, *cols = transposed ? op->qoff
                                                                               : op->koff;
    PetscInt nloc = (PetscInt)(rows[op->me + 1] - rows[op->me]);
    PetscInt mloc = (PetscInt)(cols[op->me + 1] - cols[op->me]);
    PetscInt N = (PetscInt)(transposed ? op->m : op->n), M = (PetscInt)(transposed ? op->n
                                                                                    : op->m);
    PetscCall(MatCreateShell(op->comm, nloc, mloc, N, M, &op->side[transposed ? 1 : 0], A));
    PetscCall(MatShellSetOperation(*A, MATOP_MULT, (void (*)(void))shell_mult));
    PetscCall(MatShellSetOperation(*A, MATOP_MULT_TRANSPOSE, (void (*)(void))shell_mult_t));
    PetscCall(MatShellSetOperation(*A, MATOP_TRANSPOSE, (void (*)(void))shell_transpose));
    const MatType dense[3] = {MATDENSE, MATSEQDENSE, MATMPIDENSE};
    for (int i = 0; i < 3; i++)
        PetscCall(MatShellSetMatProductOperation(*A, MATPRODUCT_AB, NULL, shell_matmat, NULL,
                                                 dense[i], dense[i]));
    return 0;
}
