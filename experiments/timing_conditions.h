/* The conditions a timing was taken under, measured in the same run: the load average and the
 * cblas_sgemm rate before and after the timed work. A rate quoted as a percentage of sgemm is a
 * measurement of the kernel only while the reference held still; when the two sgemm rates are
 * further apart than TIMING_SGEMM_TOLERANCE (the machine's other work changed during the run),
 * the run says so and quotes no percentage. Used by `kat bench` and `kat reproduce`. */
#ifndef KAT_TIMING_CONDITIONS_H
#define KAT_TIMING_CONDITIONS_H

#include <stddef.h>
#include "cli.h"

/* The largest relative difference of the sgemm rates before and after, |a - b| / max(a, b),
 * for which a percentage of sgemm is still quoted. */
#define TIMING_SGEMM_TOLERANCE 0.10

/* The sgemm measurement: GFLOP/s of an n^3 product on `threads` threads, median of `reps`;
 * 0 when it cannot run (attn_sgemm_gflops; tests pass their own). */
typedef double (*timing_sgemm_fn)(size_t n, int threads, int reps);

typedef struct {
    timing_sgemm_fn sgemm;
    size_t sgemm_n;             /* 0: no sgemm reference (load average only) */
    int threads;
    double load_before[3], load_after[3];   /* 1, 5, 15 minutes; -1 when unknown */
    double sgemm_before, sgemm_after;       /* GFLOP/s; 0: did not run */
    int ended;
} timing_conditions;

/* Before the timed work: the load average and the sgemm rate (3 runs; none when sgemm_n is 0). */
void timing_begin(timing_conditions *c, timing_sgemm_fn sgemm, size_t sgemm_n, int threads);
/* After it: the sgemm rate again, then the load average. */
void timing_end(timing_conditions *c);

/* The reference for percentages: the higher of the two sgemm rates (what the machine can do),
 * or 0 when the reference did not run or moved beyond the tolerance. */
double timing_reference(const timing_conditions *c);
/* |before - after| / max(before, after); 0 when either did not run. */
double timing_drift(const timing_conditions *c);
/* 1 when both sgemm rates ran and lie within the tolerance. */
int timing_steady(const timing_conditions *c);

/* One line, e.g. "load average 1.52 0.80 0.41 before, 2.10 1.01 0.48 after (2 CPUs); sgemm
 * 4096^3 on 2 threads: 151.2 GFLOP/s before, 149.8 after (0.9% apart, tolerance 10%)". */
void timing_describe(const timing_conditions *c, char *buf, size_t n);
/* Why the reference is not to be trusted (it moved beyond the tolerance, or did not run), or ""
 * when it is (or when there is none, sgemm_n = 0). */
void timing_warning(const timing_conditions *c, char *buf, size_t n);
/* A rate as a percentage of the reference, or NaN when none is to be quoted: the reference did
 * not run or moved beyond the tolerance, or the rate lies above it. The rates count the work
 * of GEMM-shaped kernels on the threads of the reference, so a rate above the sgemm rate says
 * that the machine's load was lighter while the kernel ran than around it, not that the
 * kernel outran the GEMM. */
double timing_share(const timing_conditions *c, double gflops);
/* Why timing_share(c, gflops) is NaN, or "" when it is a percentage (or there is no reference,
 * sgemm_n = 0). */
void timing_share_warning(const timing_conditions *c, double gflops, char *buf, size_t n);
/* The same as a JSON object under key. */
void timing_json(const timing_conditions *c, cli_json *j, const char *key);

#endif
