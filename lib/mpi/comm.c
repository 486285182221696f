/* Starting PETSc and SLEPc, and agreeing on a status across the processes. */
#include <slepcsys.h>
#include <stdio.h>
#include <string.h>
#include "core/internal.h"
#include "mpi/mpi_internal.h"

static int started_mpi;

kat_status kat_mpi_init(int *argc, char ***argv)
{
    int up = 0;
    MPI_Initialized(&up);
    if (!up) {
        if (MPI_Init(argc, argv) != MPI_SUCCESS)
            return kat__fail(KAT_ENOTSUP, "kat_mpi_init: MPI_Init failed");
        started_mpi = 1;
    }
    /* Errors come back as statuses: no tracebacks on stderr from every process. */
    PetscErrorCode ierr = SlepcInitialize(argc, argv, NULL, NULL);
    if (ierr)
        return kat__fail(KAT_ENOTSUP, "kat_mpi_init: SlepcInitialize failed with error %d",
                        (int)ierr);
    PetscPushErrorHandler(PetscReturnErrorHandler, NULL);
    return KAT_OK;
}

void kat_mpi_finalize(void)
{
    PetscPopErrorHandler();
    SlepcFinalize();
    if (started_mpi) {
        MPI_Finalize();
        started_mpi = 0;
    }
}

kat_status kat_mpi_agree(MPI_Comm comm, kat_status st)
{
    int me, np, mine, first;
    MPI_Comm_rank(comm, &me);
    MPI_Comm_size(comm, &np);
    mine = st ? me : np;
    MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, comm);
    if (first == np)
        return KAT_OK;
    /* The failing process's status and sentence, to everyone. */
    struct {
        int st;
        char msg[600];
    } what;
    memset(&what, 0, sizeof what);
    if (me == first) {
        what.st = (int)st;
        const char *msg = kat_last_error();
        /* An agreed sentence already names its process. */
        if (np > 1 && strncmp(msg, "process ", 8) != 0)
            snprintf(what.msg, sizeof what.msg, "process %d of %d: %s", me, np, msg);
        else
            snprintf(what.msg, sizeof what.msg, "%s", msg);
    }
    MPI_Bcast(&what, (int)sizeof what, MPI_BYTE, first, comm);
    return kat__fail((kat_status)what.st, "%s", what.msg);
}

static uint64_t fnv1a(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

kat_status kat_mpi_check_same(MPI_Comm comm, const kat_dmat *X, const char *what)
{
    int me, np;
    MPI_Comm_rank(comm, &me);
    MPI_Comm_size(comm, &np);
    uint64_t h = 1469598103934665603ull;
    if (X) {
        size_t shape[2] = {X->rows, X->cols};
        h = fnv1a(h, shape, sizeof shape);
        for (size_t i = 0; X->data && i < X->rows; i++)
            h = fnv1a(h, X->data + i * X->ld, X->cols * sizeof(double));
    }
    uint64_t *all = kat__alloc_array((size_t)np, sizeof *all, "mpi: hashes");
    kat_status st = kat_mpi_agree(comm, all ? KAT_OK : KAT_ENOMEM);
    if (st) {
        kat_free(all);
        return st;
    }
    MPI_Allgather(&h, 1, MPI_UINT64_T, all, 1, MPI_UINT64_T, comm);
    int bad = -1;
    for (int r = 1; r < np && bad < 0; r++)
        if (all[r] != all[0])
            bad = r;
    kat_free(all);
    if (bad < 0)
        return KAT_OK;
    return kat__fail(KAT_EINVAL, "%s differs between processes: process %d of %d holds other "
                    "values (or another shape) than process 0 (a file with other content on "
                    "that node?)", what ? what : "the data", bad, np);
}
