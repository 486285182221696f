/* Load average and sgemm reference around a timing, and what they allow it to claim. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "timing_conditions.h"

static void load_now(double load[3])
{
    if (getloadavg(load, 3) != 3)
        load[0] = load[1] = load[2] = -1.0;
}

void timing_begin(timing_conditions *c, timing_sgemm_fn sgemm, size_t sgemm_n, int threads)
{
    memset(c, 0, sizeof *c);
    c->sgemm = sgemm;
    c->sgemm_n = sgemm ? sgemm_n : 0;
    c->threads = threads;
    load_now(c->load_before);
    if (c->sgemm_n)
        c->sgemm_before = sgemm(sgemm_n, threads, 3);
}

void timing_end(timing_conditions *c)
{
    if (c->sgemm_n)
        c->sgemm_after = c->sgemm(c->sgemm_n, c->threads, 3);
    load_now(c->load_after);
    c->ended = 1;
}

double timing_drift(const timing_conditions *c)
{
    double a = c->sgemm_before, b = c->sgemm_after;
    return a > 0 && b > 0 ? fabs(a - b) / fmax(a, b) : 0.0;
}

int timing_steady(const timing_conditions *c)
{
    return c->sgemm_before > 0 && c->sgemm_after > 0 &&
           timing_drift(c) <= TIMING_SGEMM_TOLERANCE;
}

double timing_reference(const timing_conditions *c)
{
    return timing_steady(c) ? fmax(c->sgemm_before, c->sgemm_after) : 0.0;
}

static int load_text(char *buf, size_t n, const double l[3])
{
    if (l[0] < 0)
        return snprintf(buf, n, "unknown");
    return snprintf(buf, n, "%.2f %.2f %.2f", l[0], l[1], l[2]);
}

void timing_describe(const timing_conditions *c, char *buf, size_t n)
{
    char before[64], after[64];
    load_text(before, sizeof before, c->load_before);
    load_text(after, sizeof after, c->load_after);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    int k = snprintf(buf, n, "load average (1, 5, 15 min) %s before, %s after, %ld CPUs", before,
                     c->ended ? after : "not measured", cpus);
    if (k < 0 || (size_t)k >= n)
        return;
    if (!c->sgemm_n)
        snprintf(buf + k, n - (size_t)k, "; no sgemm reference");
    else if (c->sgemm_before > 0 && c->sgemm_after > 0)
        snprintf(buf + k, n - (size_t)k, "; sgemm %zu^3 on %d threads: %.1f GFLOP/s before, %.1f "
                 "after (%.1f%% apart, tolerance %.0f%%)", c->sgemm_n, c->threads,
                 c->sgemm_before, c->sgemm_after, 100.0 * timing_drift(c),
                 100.0 * TIMING_SGEMM_TOLERANCE);
    else
        snprintf(buf + k, n - (size_t)k, "; sgemm %zu^3 on %d threads could not run (no memory "
                 "for its three matrices)", c->sgemm_n, c->threads);
}

void timing_warning(const timing_conditions *c, char *buf, size_t n)
{
    if (!c->sgemm_n || timing_steady(c))
        snprintf(buf, n, "%s", "");
    else if (!(c->sgemm_before > 0 && c->sgemm_after > 0))
        snprintf(buf, n, "the sgemm reference could not run (no memory for its three "
                 "matrices)");
    else
        snprintf(buf, n, "the sgemm reference moved from %.1f to %.1f GFLOP/s during the run "
                 "(%.0f%% apart, more than the %.0f%% tolerance): the machine's load changed",
                 c->sgemm_before, c->sgemm_after, 100.0 * timing_drift(c),
                 100.0 * TIMING_SGEMM_TOLERANCE);
}

double timing_share(const timing_conditions *c, double gflops)
{
    double ref = timing_reference(c);
    return ref > 0 && gflops <= ref ? 100.0 * gflops / ref : NAN;
}

void timing_share_warning(const timing_conditions *c, double gflops, char *buf, size_t n)
{
    double ref = timing_reference(c);
    if (ref > 0 && gflops > ref)
        snprintf(buf, n, "%.1f GFLOP/s is %.0f%% of the sgemm reference (%.1f GFLOP/s), above "
                 "what the machine's GEMM does: the load was lighter while the kernel ran than "
                 "when the reference was measured", gflops, 100.0 * gflops / ref, ref);
    else
        timing_warning(c, buf, n);
}

void timing_json(const timing_conditions *c, cli_json *j, const char *key)
{
    cli_json_open(j, key, '{');
    cli_json_array(j, "loadavg_before", c->load_before, 3);
    cli_json_array(j, "loadavg_after", c->load_after, 3);
    cli_json_int(j, "cpus", (long long)sysconf(_SC_NPROCESSORS_ONLN));
    cli_json_int(j, "sgemm_n", (long long)c->sgemm_n);
    cli_json_int(j, "sgemm_threads", c->threads);
    cli_json_num(j, "sgemm_gflops_before", c->sgemm_before > 0 ? c->sgemm_before : NAN);
    cli_json_num(j, "sgemm_gflops_after", c->sgemm_after > 0 ? c->sgemm_after : NAN);
    cli_json_num(j, "sgemm_drift", c->sgemm_before > 0 && c->sgemm_after > 0 ? timing_drift(c)
                                                                               : NAN);
    cli_json_num(j, "tolerance", TIMING_SGEMM_TOLERANCE);
    cli_json_bool(j, "steady", timing_steady(c));
    cli_json_close(j, '{');
}
