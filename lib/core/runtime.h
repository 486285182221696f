/* The library's runtime: the process-wide BLAS hold and the first-error capture of parallel
 * regions (private, never installed). */
#ifndef KAT_RUNTIME_H
#define KAT_RUNTIME_H

#include <stdatomic.h>
#include <stddef.h>
#include "kat/core.h"

/* ---- the BLAS hold -------------------------------------------------------------------------
 * OpenBLAS (0.3.21) has one thread count for the whole process and no per-call count, and the
 * bits of a BLAS or LAPACK result depend on that count. So every kat call that reaches the
 * BLAS takes this hold around that work: one holder at a time in the process (a recursive
 * mutex: a holder may hold again, e.g. a rank probe's tiles inside its randomized loop). The
 * hold sets OpenBLAS to `blas_threads` and puts back the count it found when released; what a
 * call computes then depends on its own inputs and kat's thread count only, whatever else runs
 * in the process, and the caller's OpenBLAS setting is the same after every call.
 *
 * `callers` is how many threads of the holder call the BLAS at once (the threads of a kat
 * parallel region whose members each call a single-threaded GEMM); with blas_threads, it
 * tells how many of OpenBLAS's work buffers the call needs. OpenBLAS takes a buffer of
 * 128 MiB of address space per thread inside a BLAS call (and per worker thread it starts)
 * and, when mapping one fails, retries forever: a hang under `ulimit -v`. So under an
 * address-space limit the hold first makes OpenBLAS hold enough free buffers, each checked
 * to fit, and otherwise refuses with KAT_ENOMEM naming the memory (holding nothing). OpenBLAS
 * also starts its workers, one buffer each, when it is loaded, before any kat code runs: a
 * process under a tight limit must start it with OPENBLAS_NUM_THREADS=1 (the kat command
 * does), after which the hold starts workers only where their buffers fit.
 *
 * blas_threads <= 0 keeps the count of the hold this one nests in, or takes kat's thread
 * count (kat_num_threads) when it nests in none.
 *
 * A thread deeper in nested OpenMP parallel regions than the holder (a callback run by a kat
 * parallel region, say) joins a busy hold instead of waiting, since the holder may be its
 * own team's master, which waits for it: its BLAS runs at the holder's count. Threads of a
 * user's own parallel loop of kat calls are at the holder's level and wait. */
kat_status kat__blas_hold(int blas_threads, int callers, const char *who);
void kat__blas_release(void);

/* OpenBLAS's buffer size (bytes of address space per buffer); 0 when the BLAS is not
 * OpenBLAS. Measured: the Debian 0.3.21 build maps 128 MiB per buffer (32 << 22). */
size_t kat__blas_buffer_bytes(void);

/* ---- the first error of a parallel region ---------------------------------------------------
 * Errors raised inside a parallel region: the one with the lowest work-item index wins, so
 * the message does not depend on thread timing; kat__par_err_raise re-raises it on the
 * calling thread (error sentences are thread-local). */
typedef struct {
    atomic_int failed;   /* read without the lock to skip the remaining work */
    kat_status st;
    size_t item;
    char msg[512];
} kat_par_err;

void kat__par_err_init(kat_par_err *e);
/* Thread-safe; st == KAT_OK records nothing. Takes the message from kat_last_error(). */
void kat__par_err_record(kat_par_err *e, size_t item, kat_status st);
static inline int kat_par_err_failed(kat_par_err *e) { return atomic_load(&e->failed); }
kat_status kat__par_err_raise(const kat_par_err *e);

#endif
