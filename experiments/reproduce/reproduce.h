/* `kat reproduce`: the steps of the report, one file per part. */
#ifndef KAT_REPRODUCE_H
#define KAT_REPRODUCE_H

#include <stdint.h>
#include "../progress.h"
#include "../report.h"
#include "../timing_conditions.h"
#include "kat/kat.h"

typedef struct {
    report rep;
    int quick;          /* --quick: smaller grids, the whole run within 2 minutes */
    uint64_t seed;
    int failures;       /* checks that failed (theorems, errors); non-zero exit */
    char summary[4096]; /* lines for the terminal summary */
    progress prog;      /* the line on a terminal */
    double done, share; /* the fraction of the run before this step, and this step's share */
    const char *step;   /* the running step's name */
    timing_conditions tc;   /* around a step that times: load and sgemm before and after */
} repro;

/* The sgemm size of the timing conditions (experiments/timing_conditions.h). */
enum { REPRO_SGEMM_N = 2048 };

/* Progress inside the running step: frac of it done, what it is doing now (printf format). */
void repro_progress(repro *R, double frac, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Append a line to the terminal summary. */
void repro_note(repro *R, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Steps: each writes its section of report.md and its CSV/PNG files; returns 0, or -1 when it
 * could not run (the error is in the report and on stderr). A step that times work runs
 * between timing_begin and timing_end of R->tc (the driver's; a step that needs the reference
 * for its own table ends it first) and its section closes with the conditions. */
int repro_theorems(repro *R);
int repro_rank_vs_n(repro *R);
int repro_eps_rank_vs_bound(repro *R);
int repro_cube_spectra(repro *R);
int repro_dense_rate(repro *R);
int repro_sparse_speedups(repro *R);
int repro_linear_crossover(repro *R);
int repro_attention_errors(repro *R);   /* attention_errors.c */

#endif
