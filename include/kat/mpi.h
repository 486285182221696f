/* kat/mpi.h: the rank probe spread over MPI processes, on SLEPc's singular value solvers.
 *
 * M = f(s * a(Q, K)) (n x m, a = <q, k>, |q - k|^2 or |q - k|_1) is a PETSc shell matrix: each
 * process owns a block of consecutive rows of Q (its rows of M) and of K (its rows of M^T),
 * and kat's threaded block evaluator computes the products M X and M^T X block by block,
 * never forming M. The other side's points and the matching rows of X reach every process
 * one process's block at a time (broadcasts), so a process holds O((n + m) / P) rows of
 * points and of the solver's vectors. SLEPc's randomized SVD (subspace iteration on blocks of
 * vectors: one pass over M per block, not one per vector as in Lanczos) gives the leading
 * singular values; the number asked for doubles until at least opts->oversample of them fall
 * below the rank threshold, the stopping rule of kat_rank_randomized.
 *
 * Part of libkat-mpi (pkg-config kat-mpi), built when MPI, PETSc and SLEPc are found. Every
 * function here is collective over its communicator: call it on every process with the same
 * arguments (apart from each process's own rows). A failure on any process is a failure on
 * all: every process returns the same status, and kat_last_error() on each holds the sentence
 * of the lowest-numbered process that failed ("process 1 of 2: ..."). */
#ifndef KAT_MPI_H
#define KAT_MPI_H

#include <mpi.h>
#include "kat/rank.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Start MPI (unless already started), PETSc and SLEPc, with the program's arguments (PETSc
 * and SLEPc options such as -svd_view are read from them). KAT_ENOTSUP when PETSc cannot
 * start. Call once, before any other function here. */
KAT_API kat_status kat_mpi_init(int *argc, char ***argv);
/* Stop SLEPc and PETSc, and MPI when kat_mpi_init started it. */
KAT_API void kat_mpi_finalize(void);

/* What the solver did (the same on every process). */
typedef struct {
    size_t solves;        /* SVDSolve calls (the number of values asked for doubles each time) */
    size_t products;      /* block products with M or M^T */
    size_t vector_products;   /* single-vector products (MatMult: none in the probe itself) */
    double seconds_compute, seconds_comm;   /* this process: inside the block evaluator, and
                                               in the broadcasts of points and vectors */
    double peak_rss_mib;  /* this process's peak resident memory (getrusage) */
} kat_mpi_stats;

/* The rank probe of kat_rank_probe, distributed: Qloc and Kloc are this process's blocks of
 * consecutive rows of Q and K, in process order (process 0 holds the first rows); n and m are
 * the sums. opts as kat_rank_probe's randomized method (form, scale, rtol, atol, eps,
 * predict, seed, block, oversample, max_rank, tile_rows; power_iters adds subspace
 * iterations to each solve). The result, the same on every process, is that of
 * kat_rank_randomized (method KAT_RANK_RANDOMIZED: matrix-free); stats may be NULL.
 * Errors (on every process): KAT_EINVAL for a process without rows of Q or of K, d or the
 * options differing between processes, and whatever kat_rank_probe refuses; KAT_EDOM naming
 * the entry of M where f is not finite; KAT_ENOTSUP when PETSc or SLEPc fail (their message).
 * Free the result with kat_rank_result_free. */
KAT_API kat_status kat_mpi_rank_probe(MPI_Comm comm, const kat_fn *f, const kat_dmat *Qloc,
                                      const kat_dmat *Kloc, const kat_rank_opts *opts,
                                      kat_rank_result *res, kat_mpi_stats *stats);

/* Make a status agreed: every process learns whether any failed, and all return the status
 * and sentence of the lowest-numbered one that did (prefixed "process r of P: " when P > 1).
 * For callers that read their own inputs (a file one process cannot read) before a probe. */
KAT_API kat_status kat_mpi_agree(MPI_Comm comm, kat_status st);

/* KAT_EINVAL on every process, naming `what` and the first process that differs, unless X
 * (its shape and values, bit for bit) is the same on every process: for data that each
 * process reads from its own copy of a file. */
KAT_API kat_status kat_mpi_check_same(MPI_Comm comm, const kat_dmat *X, const char *what);

#ifdef __cplusplus
}
#endif
#endif
