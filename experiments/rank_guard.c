/* Estimate, progress and refusal in front of a long dense SVD. */
#include <math.h>
#include <string.h>
#include <unistd.h>
#include "cli.h"
#include "rank_guard.h"

static double cost(size_t n, size_t m)
{
    return (double)n * (double)m * (double)(n < m ? n : m);
}

double rank_guard_estimate(size_t n, size_t m)
{
    const size_t s = RANK_GUARD_SAMPLE;
    kat_dmat M = {0};
    kat_rng *rng = NULL;
    double seconds = NAN;
    if (kat_dmat_alloc(s, s, &M) == KAT_OK && kat_rng_create(1, &rng) == KAT_OK) {
        for (size_t i = 0; i < s; i++)
            for (size_t j = 0; j < s; j++)
                M.data[i * M.ld + j] = kat_rng_gaussian(rng, 1.0);
        kat_rank_opts o;
        kat_rank_opts_init(&o);
        /* The median of three: one run on a busy machine can be ten times the others. */
        double t[3];
        int k = 0;
        for (; k < 3; k++) {
            kat_rank_result r;
            double t0 = cli_now();
            if (kat_rank_probe_matrix(&M, &o, &r) != KAT_OK)
                break;
            t[k] = cli_now() - t0;
            kat_rank_result_free(&r);
        }
        if (k == 3) {
            double lo = fmin(t[0], fmin(t[1], t[2])), hi = fmax(t[0], fmax(t[1], t[2]));
            seconds = (t[0] + t[1] + t[2] - lo - hi) * cost(n, m) / cost(s, s);
        }
    }
    kat_rng_destroy(rng);
    kat_dmat_free(&M);
    return seconds;
}

/* "about 47 min", or the words for an estimate that could not be made. */
static void estimate_words(char *buf, size_t len, double seconds)
{
    snprintf(buf, len, "long (the sample SVD could not run)");
    if (seconds > 0) {
        char d[32];
        progress_duration(d, sizeof d, seconds);
        snprintf(buf, len, "about %s", d);
    }
}

int rank_guard_check(const char *cmd, size_t n, size_t m, int force, int quiet,
                     double *estimate)
{
    if (estimate)
        *estimate = 0;
    double c = cost(n, m);
    /* A matrix beyond the machine's memory is the library's to refuse (KAT_ENOMEM). */
    double memory = (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGESIZE);
    int refused = c > cost(RANK_GUARD_REFUSE, RANK_GUARD_REFUSE);
    if (c <= cost(RANK_GUARD_TICK, RANK_GUARD_TICK) || 8.0 * (double)n * (double)m > memory ||
        (!estimate && !refused))
        return 0;
    double seconds = rank_guard_estimate(n, m);
    if (estimate)
        *estimate = seconds;
    if (!refused)
        return 0;
    char when[64];
    estimate_words(when, sizeof when, seconds);
    if (!force) {
        cli_usage(cmd, "a dense SVD of the %zu x %zu matrix would take %s here (from three "
                  "%d x %d SVDs timed now); --method randomized finds a low rank without it, "
                  "or give --force to run the dense SVD anyway", n, m, when,
                  RANK_GUARD_SAMPLE, RANK_GUARD_SAMPLE);
        return -1;
    }
    if (!quiet)
        fprintf(stderr, "kat %s: --force: a dense SVD of the %zu x %zu matrix, %s\n", cmd, n, m,
                when);
    return 0;
}

int rank_guard_begin(rank_guard *g, const char *cmd, size_t n, size_t m, int force, int quiet)
{
    memset(g, 0, sizeof *g);
    char label[64];
    snprintf(label, sizeof label, "kat %s", cmd);
    progress_start(&g->prog, stderr, label, quiet);
    if (rank_guard_check(cmd, n, m, force, quiet, &g->estimate)) {
        progress_finish(&g->prog);
        return -1;
    }
    if (g->estimate == 0)   /* small, or too large for memory; NaN (unknown) is drawn */
        return 0;
    char when[64], what[96];
    estimate_words(when, sizeof when, g->estimate);
    snprintf(what, sizeof what, "dense SVD of %zu x %zu (%s)", n, m, when);
    progress_tick_start(&g->prog, g->estimate, what);
    return 0;
}

void rank_guard_end(rank_guard *g)
{
    progress_finish(&g->prog);
}
