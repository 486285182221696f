/* Clocks and the median of repeated timings, shared by the kat command and the benchmark
 * programs (each timing loop reports a median, so one slow run does not move the figure). */
#ifndef KAT_TIMING_H
#define KAT_TIMING_H

#include <stddef.h>

/* Seconds on the monotonic clock. */
double timing_now(void);
/* Process CPU seconds (all threads): on a loaded shared machine it moves far less than the
 * wall clock. */
double timing_cpu_now(void);
/* The median of v[0..n-1] (the mean of the two middle values for even n); sorts v in place.
 * 0 for n = 0. */
double timing_median(double *v, size_t n);

#endif
