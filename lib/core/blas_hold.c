/* The process-wide BLAS hold (see runtime.h): one holder at a time sets OpenBLAS's thread
 * count for its call and checks that OpenBLAS's work buffers fit the address space first. */
#define _GNU_SOURCE   /* pthread_getattr_default_np */
#include <cblas.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include "core/kat_config.h"
#include "core/internal.h"
#include "core/runtime.h"
#if KAT_HAVE_OPENMP
#include <omp.h>
#endif

/* OpenBLAS's own allocator of work buffers (exported by libopenblas, not in its headers).
 * A buffer taken and given back stays in OpenBLAS's table for later calls. */
void *blas_memory_alloc(int procpos);
void blas_memory_free(void *buffer);

enum {
    MAX_DEPTH = 16,     /* nested holds of one thread whose count is restored */
    MAX_BUFFERS = 48,   /* OpenBLAS 0.3.21's table holds at least 50 */
};

static pthread_mutex_t hold_lock = PTHREAD_MUTEX_INITIALIZER;
/* OpenBLAS's worker threads known to run (guarded by hold_lock; workers are never stopped). */
static int workers_known = -1;
static atomic_int holder_level;   /* the holder's OpenMP nesting level */

static _Thread_local int depth;   /* this thread's holds, nested */
static _Thread_local int guest;   /* 1 when this thread joined another thread's hold */
static _Thread_local int outer_count[MAX_DEPTH];
/* Threads of this thread's OpenMP teams known to run (itself included): libgomp keeps a
 * team's threads for the later regions this thread starts with as many threads or fewer. */
static _Thread_local int team_started = 1;

size_t kat__blas_buffer_bytes(void) { return (size_t)128 << 20; }

/* How deep in nested OpenMP parallel regions the calling thread is (0: in none). */
static int omp_level(void)
{
#if KAT_HAVE_OPENMP
    return omp_get_level();
#else
    return 0;
#endif
}

/* OMP_STACKSIZE's value in bytes (OpenMP's syntax: a number, then B, K, M or G; K when
 * none), 0 when unset or unreadable. */
static size_t omp_stacksize(void)
{
    const char *v = getenv("OMP_STACKSIZE");
    if (!v)
        v = getenv("GOMP_STACKSIZE");
    char *end;
    unsigned long long n = v ? strtoull(v, &end, 10) : 0;
    if (!v || end == v)
        return 0;
    while (*end == ' ')
        end++;
    int shift = *end == 'B' || *end == 'b' ? 0 : *end == 'M' || *end == 'm' ? 20
              : *end == 'G' || *end == 'g' ? 30 : 10;
    return n > (SIZE_MAX >> shift) ? 0 : (size_t)n << shift;
}

/* Address space a new thread takes: its stack (glibc's default, set from ulimit -s; OpenMP's
 * threads take OMP_STACKSIZE when it is set and larger) and a guard page, with a margin. */
static size_t stack_bytes(void)
{
    size_t bytes = 0;
    pthread_attr_t attr;
    if (pthread_getattr_default_np(&attr) == 0) {
        pthread_attr_getstacksize(&attr, &bytes);
        pthread_attr_destroy(&attr);
    }
    if (bytes == 0)
        bytes = (size_t)8 << 20;
    size_t omp = omp_stacksize();
    return (omp > bytes ? omp : bytes) + ((size_t)64 << 10);
}

/* The process's address-space limit (ulimit -v) in *rl; 0 when there is none. */
static int as_limited(struct rlimit *rl)
{
    return getrlimit(RLIMIT_AS, rl) == 0 && rl->rlim_cur != RLIM_INFINITY;
}

/* 1 when an mmap of `bytes` (address space only) would succeed now. */
static int can_map(size_t bytes)
{
    void *p = mmap(NULL, bytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        return 0;
    munmap(p, bytes);
    return 1;
}

/* Start this thread's OpenMP team of n threads (libgomp keeps them for later regions); how
 * many ran. The region has work, or the compiler may drop it. */
static int start_team(int n)
{
    atomic_int ran = 0;
#if KAT_HAVE_OPENMP
#pragma omp parallel num_threads(n)
    atomic_fetch_add(&ran, 1);
#else
    (void)n;
    ran = 1;
#endif
    return atomic_load(&ran);
}

/* Under an address-space limit (RLIMIT_AS), make sure OpenBLAS has `need` free work buffers
 * and that the stacks of the threads still to start fit (OpenBLAS's workers for blas_threads,
 * the calling thread's OpenMP team of `team` threads), before the call: OpenBLAS spins
 * forever on a buffer it cannot map, and libgomp ends the process when it cannot map a
 * stack. Each buffer is taken from OpenBLAS only after checking that a new one could be
 * mapped (OpenBLAS hands out a free one of its table first, or maps one); all are held until
 * the last check, then given back to its table. Counting the free buffers of the table instead
 * is not safe: OpenBLAS's workers take theirs when they start, beside the caller, and a count
 * one too high made the next take spin (kat reproduce --only rank with KAT_NUM_THREADS=4
 * under ulimit -v 1000000 hung so). The team is then
 * started here, so that what the call allocates next cannot leave its stacks without room.
 * Without a limit, address space does not run out first and nothing is checked. Called under
 * hold_lock. */
static kat_status reserve_buffers(int need, int blas_threads, int team, const char *who)
{
    int workers = openblas_get_num_threads() - 1;
    if (workers_known < 0)
        workers_known = workers;   /* started when OpenBLAS was loaded */
    if (workers > workers_known)   /* started by a count set outside the hold */
        workers_known = workers;
    struct rlimit rl;
    if (!as_limited(&rl))
        return KAT_OK;
    if (need > MAX_BUFFERS)
        need = MAX_BUFFERS;
    int nested = omp_level() > 0;   /* a nested region's threads are not kept */
    int new_team = nested ? team - 1 : team - team_started;
    int new_workers = blas_threads - 1 - workers_known;
    int threads = (new_team > 0 ? new_team : 0) + (new_workers > 0 ? new_workers : 0);
    size_t buf = kat__blas_buffer_bytes() + ((size_t)1 << 20);
    void *taken[MAX_BUFFERS];
    int got = 0;
    while (got < need && can_map(buf))
        taken[got++] = blas_memory_alloc(1);
    int stacks = got == need && (threads == 0 || can_map((size_t)threads * stack_bytes()));
    for (int i = got - 1; i >= 0; i--)
        blas_memory_free(taken[i]);
    if (stacks) {
        if (new_workers > 0)
            workers_known += new_workers;
        if (new_team > 0 && !nested) {
            team_started = start_team(team);
        }
        return KAT_OK;
    }
    if (got == need)
        return kat__fail(KAT_ENOMEM, "%s: out of memory for threads: %d new thread%s %zu MiB "
                         "of address space%s for %s and the process's address-space limit "
                         "(ulimit -v: %llu MiB) leaves less; fewer kat threads need less", who,
                         threads, threads == 1 ? " needs" : "s need", stack_bytes() >> 20,
                         threads == 1 ? "" : " each", threads == 1 ? "its stack" : "their stacks",
                         (unsigned long long)(rl.rlim_cur >> 20));
    return kat__fail(KAT_ENOMEM, "%s: out of memory for the BLAS: OpenBLAS needs %d work "
                    "buffer%s of %zu MiB of address space (one per BLAS thread) and the "
                    "process's address-space limit (ulimit -v: %llu MiB) leaves room for %d; "
                    "one kat thread needs the fewest", who, need, need == 1 ? "" : "s",
                    kat__blas_buffer_bytes() >> 20,
                    (unsigned long long)(rl.rlim_cur >> 20), got);
}

kat_status kat__blas_hold(int blas_threads, int callers, const char *who)
{
    if (blas_threads < 1)
        blas_threads = depth > 0 && !guest ? openblas_get_num_threads() : kat_num_threads();
    if (blas_threads < 1)
        blas_threads = 1;
    if (callers < 1)
        callers = 1;
    if (depth == 0) {
        int level = omp_level();
        if (pthread_mutex_trylock(&hold_lock) != 0) {
            /* A thread deeper in OpenMP regions than the holder may be a member of a region
             * the holder started, which the holder waits for: join its hold. Threads at the
             * holder's level or above (a user's own parallel loop of kat calls) wait. */
            if (level > 0 && level > atomic_load(&holder_level)) {
                depth = 1, guest = 1;
                return KAT_OK;
            }
            pthread_mutex_lock(&hold_lock);
        }
        atomic_store(&holder_level, level);
    } else if (guest) {
        depth++;
        return KAT_OK;
    }
    kat_status st = reserve_buffers(blas_threads * callers, blas_threads, callers, who);
    if (st) {
        if (depth == 0)
            pthread_mutex_unlock(&hold_lock);
        return st;
    }
    int now = openblas_get_num_threads();
    if (depth < MAX_DEPTH)
        outer_count[depth] = now;
    if (now != blas_threads && depth < MAX_DEPTH)
        openblas_set_num_threads(blas_threads);
    depth++;
    return KAT_OK;
}

void kat__blas_release(void)
{
    if (depth == 0)
        return;
    depth--;
    if (guest) {
        guest = depth > 0;
        return;
    }
    if (depth < MAX_DEPTH && openblas_get_num_threads() != outer_count[depth])
        openblas_set_num_threads(outer_count[depth]);
    if (depth == 0)
        pthread_mutex_unlock(&hold_lock);
}

kat_status kat_blas_reserve(void)
{
    if (depth > 0)
        return KAT_OK;
    /* The buffer of a first call stays in OpenBLAS's table: a later call (after raising kat's
     * thread count) checks the team's stacks only. */
    static int reserved;
    pthread_mutex_lock(&hold_lock);
    kat_status st = reserve_buffers(!reserved, 1, kat_num_threads(), "blas_reserve");
    reserved |= st == KAT_OK;
    pthread_mutex_unlock(&hold_lock);
    return st;
}

kat_status kat_blas_begin(int threads)
{
    return kat__blas_hold(threads, 1, "BLAS calls of the caller");
}

void kat_blas_end(void) { kat__blas_release(); }
