/* The kat command over MPI processes (built when libkat-mpi is): `mpirun -np P kat rank
 * --engine slepc` and `mpirun -np P kat sweep`. Every function is collective. */
#ifndef KAT_MPI_CLI_H
#define KAT_MPI_CLI_H

#include <stddef.h>
#include "kat/rank.h"
#include "mpi_exec.h"

/* Start MPI, PETSc and SLEPc and check that every process got the same command line (an
 * error from every process otherwise). Returns CLI_OK or CLI_USAGE. */
int mpi_cli_begin(const char *cmd, int argc, char **argv);
void mpi_cli_end(void);
int mpi_cli_rank(void);    /* this process's number */
int mpi_cli_size(void);

/* The status agreed over the processes (kat_mpi_agree). */
kat_status mpi_cli_agree(kat_status st);

/* Statistics of a distributed probe, for the output. */
typedef struct {
    const char *svd;             /* SLEPc solver */
    int processes;
    size_t solves, products;
    double seconds_comm_max, seconds_compute_max;
    double peak_rss_mib[1024];   /* per process (the first 1024) */
} mpi_cli_stats;

/* kat_mpi_rank_probe on this process's block of the rows of Q and K (all of which every
 * process holds, from the same seed or files; checked equal across processes). engine is
 * "slepc" (SLEPc's randomized SVD). */
kat_status mpi_cli_probe(const char *engine, const kat_fn *f, const kat_dmat *Q,
                         const kat_dmat *K, const kat_rank_opts *o, kat_rank_result *res,
                         mpi_cli_stats *stats);

/* kat sweep's grid points handed out one at a time from a counter on process 0: the next
 * index this process computes (increasing), or total when none is left. */
size_t mpi_cli_next_point(size_t total);
/* Process 0 receives every process's rows (bytes; unset rows are zero) and per-point
 * statuses, merged; the status is agreed. */
kat_status mpi_cli_gather_rows(void *rows, size_t total, size_t row_bytes, kat_status st);

#endif
