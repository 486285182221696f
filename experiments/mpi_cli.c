/* The kat command over MPI processes: start-up checks, the distributed rank probe, and the
 * sweep's work sharing. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"
#include "kat/mpi.h"
#include "mpi_cli.h"

static MPI_Win point_win = MPI_WIN_NULL;
static long long *point_counter;

int mpi_cli_rank(void)
{
    int r;
    MPI_Comm_rank(MPI_COMM_WORLD, &r);
    return r;
}

int mpi_cli_size(void)
{
    int r;
    MPI_Comm_size(MPI_COMM_WORLD, &r);
    return r;
}

kat_status mpi_cli_agree(kat_status st) { return kat_mpi_agree(MPI_COMM_WORLD, st); }

static uint64_t fnv1a(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

/* The first process whose value differs from process 0's, or -1. */
static int first_differing(uint64_t mine)
{
    int np = mpi_cli_size(), bad = -1;
    uint64_t *all = malloc((size_t)np * sizeof *all);
    if (!all)
        return -1;
    MPI_Allgather(&mine, 1, MPI_UINT64_T, all, 1, MPI_UINT64_T, MPI_COMM_WORLD);
    for (int r = 1; r < np && bad < 0; r++)
        if (all[r] != all[0])
            bad = r;
    free(all);
    return bad;
}

int mpi_cli_begin(const char *cmd, int argc, char **argv)
{
    kat_status st = kat_mpi_init(NULL, NULL);
    if (st) {
        fprintf(stderr, "kat %s: %s\n", cmd, kat_last_error());
        return CLI_FAIL;
    }
    uint64_t h = 1469598103934665603ull;
    for (int i = 0; i < argc; i++)
        h = fnv1a(h, argv[i], strlen(argv[i]) + 1);
    int bad = first_differing(h);
    if (bad >= 0) {
        fprintf(stderr, "kat %s: process %d of %d was started with other arguments than process "
                "0; mpirun must start every process with the same command line\n", cmd, bad,
                mpi_cli_size());
        mpi_cli_end();
        return CLI_USAGE;
    }
    MPI_Aint bytes = mpi_cli_rank() == 0 ? (MPI_Aint)sizeof(long long) : 0;
    MPI_Win_allocate(bytes, sizeof(long long), MPI_INFO_NULL, MPI_COMM_WORLD, &point_counter,
                     &point_win);
    if (mpi_cli_rank() == 0)
        *point_counter = 0;
    MPI_Barrier(MPI_COMM_WORLD);
    return CLI_OK;
}

void mpi_cli_end(void)
{
    if (point_win != MPI_WIN_NULL)
        MPI_Win_free(&point_win);
    kat_mpi_finalize();
}

kat_status mpi_cli_probe(const char *engine, const kat_fn *f, const kat_dmat *Q,
                         const kat_dmat *K, const kat_rank_opts *o, kat_rank_result *res,
                         mpi_cli_stats *stats)
{
    int me = mpi_cli_rank(), np = mpi_cli_size();
    (void)me;
    (void)engine;
    /* Every process drew or read all the points: a file that differs between nodes shows. */
    kat_status st = kat_mpi_check_same(MPI_COMM_WORLD, Q, "the points Q");
    if (st || (st = kat_mpi_check_same(MPI_COMM_WORLD, K, "the points K")))
        return st;
    /* This process's block of rows: an even split, the first n mod P processes one more. */
    kat_dmat q = *Q, k = *K;
    size_t P = (size_t)np, r = (size_t)me;
    size_t q0 = Q->rows / P * r + (r < Q->rows % P ? r : Q->rows % P);
    size_t k0 = K->rows / P * r + (r < K->rows % P ? r : K->rows % P);
    q.rows = Q->rows / P + (r < Q->rows % P);
    k.rows = K->rows / P + (r < K->rows % P);
    q.data = Q->data + q0 * Q->ld;
    k.data = K->data + k0 * K->ld;
    kat_mpi_stats s;
    memset(&s, 0, sizeof s);
    st = kat_mpi_rank_probe(MPI_COMM_WORLD, f, &q, &k, o, res, &s);
    memset(stats, 0, sizeof *stats);
    stats->svd = "randomized";
    stats->processes = np;
    stats->solves = s.solves;
    stats->products = s.products + s.vector_products;
    MPI_Allreduce(&s.seconds_comm, &stats->seconds_comm_max, 1, MPI_DOUBLE, MPI_MAX,
                  MPI_COMM_WORLD);
    MPI_Allreduce(&s.seconds_compute, &stats->seconds_compute_max, 1, MPI_DOUBLE, MPI_MAX,
                  MPI_COMM_WORLD);
    double *rss = malloc((size_t)np * sizeof *rss);
    if (rss) {
        MPI_Allgather(&s.peak_rss_mib, 1, MPI_DOUBLE, rss, 1, MPI_DOUBLE, MPI_COMM_WORLD);
        for (int r = 0; r < np && r < 1024; r++)
            stats->peak_rss_mib[r] = rss[r];
        free(rss);
    }
    return st;
}

size_t mpi_cli_next_point(size_t total)
{
    long long one = 1, got;
    MPI_Win_lock(MPI_LOCK_SHARED, 0, 0, point_win);
    MPI_Fetch_and_op(&one, &got, MPI_LONG_LONG, 0, 0, MPI_SUM, point_win);
    MPI_Win_unlock(0, point_win);
    return got < 0 || (size_t)got > total ? total : (size_t)got;
}

kat_status mpi_cli_gather_rows(void *rows, size_t total, size_t row_bytes, kat_status st)
{
    /* Each row is set on exactly one process and zero elsewhere: a bitwise OR merges them. */
    size_t bytes = total * row_bytes;
    unsigned char *p = rows;
    for (size_t off = 0; off < bytes; off += 1u << 30) {
        size_t chunk = bytes - off < (1u << 30) ? bytes - off : (1u << 30);
        if (mpi_cli_rank() == 0)
            MPI_Reduce(MPI_IN_PLACE, p + off, (int)chunk, MPI_BYTE, MPI_BOR, 0, MPI_COMM_WORLD);
        else
            MPI_Reduce(p + off, NULL, (int)chunk, MPI_BYTE, MPI_BOR, 0, MPI_COMM_WORLD);
    }
    return kat_mpi_agree(MPI_COMM_WORLD, st);
}
