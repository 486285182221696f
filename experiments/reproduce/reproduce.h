/* `kat reproduce`: the steps of the report, one file per part. */
#ifndef KAT_REPRODUCE_H
#define KAT_REPRODUCE_H

#include <stdint.h>
#include "../report.h"
#include "kat/kat.h"

typedef struct {
    report rep;
    int quick;          /* --quick: smaller grids, the whole run within 2 minutes */
    uint64_t seed;
    int failures;       /* checks that failed (theorems, errors); non-zero exit */
    char summary[4096]; /* lines for the terminal summary */
} repro;

/* Append a line to the terminal summary. */
void repro_note(repro *R, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Steps: each writes its section of report.md and its CSV/PNG files; returns 0, or -1 when it
 * could not run (the error is in the report and on stderr). */
int repro_theorems(repro *R);
int repro_rank_vs_n(repro *R);
int repro_eps_rank_vs_bound(repro *R);
int repro_cube_spectra(repro *R);
int repro_dense_rate(repro *R);
int repro_sparse_speedups(repro *R);
int repro_linear_crossover(repro *R);
int repro_attention_errors(repro *R);   /* attention_errors.c */

#endif
