/* `kat reproduce`: theorems, rank figures and attention tables, computed on this machine and
 * written to OUT/report.md with CSV files and PNG plots. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <time.h>
#include "attn_cli.h"
#include "cli.h"
#include "reproduce/reproduce.h"

void repro_note(repro *R, const char *fmt, ...)
{
    size_t len = strlen(R->summary);
    if (len + 4 >= sizeof R->summary)
        return;
    va_list ap;
    va_start(ap, fmt);
    len += (size_t)snprintf(R->summary + len, sizeof R->summary - len, "  ");
    vsnprintf(R->summary + len, sizeof R->summary - len, fmt, ap);
    va_end(ap);
    len = strlen(R->summary);
    if (len + 1 < sizeof R->summary)
        strcat(R->summary, "\n");
}

void repro_progress(repro *R, double frac, const char *fmt, ...)
{
    char what[192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    frac = frac < 0 ? 0 : frac > 1 ? 1 : frac;
    progress_update(&R->prog, R->done + R->share * frac, "%s: %s", R->step, what);
}

/* The close of a timed step's section: its conditions, and a warning when they moved. */
static void repro_conditions(repro *R)
{
    if (!R->tc.ended)
        timing_end(&R->tc);
    char line[512], warning[512];
    timing_describe(&R->tc, line, sizeof line);
    timing_warning(&R->tc, warning, sizeof warning);
    report_printf(&R->rep, "Timing conditions of this section (measured around it in this run): "
                  "%s.\n\n", line);
    if (*warning)
        report_printf(&R->rep, "**Unsteady conditions:** %s; the times above were taken under "
                      "changing load, so they (and ratios of times taken at different moments) "
                      "measure more than the kernels.\n\n", warning);
}

/* weight: the step's share of a run, its seconds in a full run on the 2-core development
 * machine under load (only the ratios matter, for the estimate of the time left); timed: its
 * section reports timings. */
static const struct {
    const char *key, *name;
    int (*run)(repro *);
    double weight;
    int timed;
} steps[] = {
    {"theorems", "theorem table", repro_theorems, 57, 1},
    {"rank", "rank of f(QK^T) against n", repro_rank_vs_n, 44, 0},
    {"eps-rank", "eps-rank of exp(QK^T/d) against B", repro_eps_rank_vs_bound, 2, 0},
    {"spectra", "spectra on the hypercube", repro_cube_spectra, 1, 0},
    {"dense", "dense flash attention against sgemm", repro_dense_rate, 63, 1},
    {"sparse", "sparse flash speed-ups against N", repro_sparse_speedups, 453, 1},
    {"linear", "linear attention crossover", repro_linear_crossover, 80, 1},
    {"accuracy", "attention accuracy against fp64", repro_attention_errors, 8, 0},
};
enum { NSTEPS = sizeof steps / sizeof steps[0] };

/* --only "a,b": which steps run (all when only is NULL). Returns 0, or -1 after naming an
 * unknown step. */
static int select_steps(const char *only, int run[NSTEPS])
{
    for (size_t i = 0; i < NSTEPS; i++)
        run[i] = only == NULL;
    if (only && !*only) {
        fprintf(stderr, "kat reproduce: --only needs at least one step\n");
        return -1;
    }
    for (const char *p = only; p && *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p), i;
        for (i = 0; i < NSTEPS; i++)
            if (strlen(steps[i].key) == len && strncmp(steps[i].key, p, len) == 0)
                break;
        if (i == NSTEPS) {
            fprintf(stderr, "kat reproduce: --only: unknown step '%.*s' (the steps: ", (int)len,
                    p);
            for (size_t k = 0; k < NSTEPS; k++)
                fprintf(stderr, "%s%s", k ? ", " : "", steps[k].key);
            fprintf(stderr, ")\n");
            return -1;
        }
        run[i] = 1;
        if (!end)
            break;
        p = end + 1;
    }
    return 0;
}

int kat_cmd_reproduce(int argc, char **argv)
{
    const char *out = "out", *only = NULL;
    int quick = 0;
    uint64_t seed = 1;
    const cli_opt opts[] = {
        {"out", CLI_STR, &out, "DIR   where report.md, CSV and PNG files go (default out)", 0},
        {"quick", CLI_FLAG, &quick, "      smaller grids (about 2 minutes)", 0},
        {"seed", CLI_U64, &seed, "S     seed of the rank and attention draws (default 1; the "
         "theorems use fixed seeds)", 0},
        {"only", CLI_STR, &only, "LIST  run only these steps: theorems, rank, eps-rank, spectra, "
         "dense, sparse, linear, accuracy", 0},
    };
    const char *usage = "usage: kat reproduce [--out DIR] [--quick] [--seed S] [--only LIST]\n\n"
                        "Reproduce kat's theorems, rank experiments and attention results on "
                        "this machine\nand write DIR/report.md with tables, CSV files and plots.";
    int rc = cli_parse(usage, opts, sizeof opts / sizeof opts[0], argc, argv, NULL, 0, NULL);
    if (rc)
        return rc < 0 ? CLI_OK : rc;
    int run[NSTEPS];
    if (select_steps(only, run)) {
        cli_print_usage(stderr, usage, opts, sizeof opts / sizeof opts[0]);
        return CLI_USAGE;
    }
    static const char title[] = "kat reproduce: report";
    if (report_dir_check(out, title)) {
        cli_see_help("reproduce");
        return CLI_USAGE;
    }
    repro R;
    memset(&R, 0, sizeof R);
    R.quick = quick;
    R.seed = seed;
    if (report_open(&R.rep, out, title))
        return CLI_FAIL;
    time_t now = time(NULL);
    char when[64];
    strftime(when, sizeof when, "%Y-%m-%d %H:%M UTC", gmtime(&now));
    report_printf(&R.rep, "Generated by `kat reproduce%s --seed %llu%s%s` on %s: kat %s, ISA %s, "
                  "%d threads, %s. Every number below was computed in this run.\n\n",
                  quick ? " --quick" : "", (unsigned long long)seed, only ? " --only " : "",
                  only ? only : "", when, kat_version(), kat_arch_name(), kat_num_threads(),
                  kat_blas_info());
    const size_t nsteps = NSTEPS;
    double t0 = cli_now(), total = 0.0;
    for (size_t i = 0; i < nsteps; i++)
        total += run[i] ? steps[i].weight : 0.0;
    int errors = 0;
    progress_start(&R.prog, stderr, "kat reproduce", 0);
    progress_follow_start(&R.prog);   /* one timed point of a step can take a minute */
    for (size_t i = 0; i < nsteps; i++) {
        if (!run[i])
            continue;
        char step[64];
        snprintf(step, sizeof step, "[%zu/%zu] %s", i + 1, nsteps, steps[i].key);
        R.step = step;
        R.share = steps[i].weight / total;
        repro_progress(&R, 0.0, "starting");
        double t = cli_now();
        if (steps[i].timed)
            timing_begin(&R.tc, attn_sgemm_gflops, REPRO_SGEMM_N, kat_num_threads());
        int step_rc = steps[i].run(&R);
        errors += step_rc != 0;
        if (steps[i].timed)
            repro_conditions(&R);
        progress_note(&R.prog, "[%zu/%zu] %s: %s (%.1f s)", i + 1, nsteps, steps[i].name,
                      step_rc ? "FAILED" : "done", cli_now() - t);
        R.done += R.share;
        fflush(R.rep.md);
    }
    progress_finish(&R.prog);
    double load[3] = {-1, -1, -1};
    if (getloadavg(load, 3) == 3)
        report_printf(&R.rep, "---\nTotal time: %.1f s; load average at the end %.2f %.2f %.2f "
                      "(1, 5, 15 min).\n", cli_now() - t0, load[0], load[1], load[2]);
    else
        report_printf(&R.rep, "---\nTotal time: %.1f s.\n", cli_now() - t0);
    if (report_close(&R.rep))
        return CLI_FAIL;
    printf("kat reproduce: report written to %s/report.md (%.1f s, %d plots, %d not drawn)\n%s",
           out, cli_now() - t0, R.rep.plots, R.rep.plots_failed, R.summary);
    if (errors || R.failures) {
        printf("kat reproduce: %d step(s) failed to run, %d check(s) failed\n", errors,
               R.failures);
        return CLI_FAIL;
    }
    return CLI_OK;
}
