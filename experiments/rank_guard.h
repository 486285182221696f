/* The guard in front of a dense rank: a dense SVD of an n x m matrix costs about n m min(n, m)
 * and runs as one LAPACK call with no output, minutes to hours at sizes that still fit in
 * memory. Above RANK_GUARD_TICK (in n m min(n, m) = RANK_GUARD_TICK^3) the time is estimated
 * and shown as a progress line on a terminal; above RANK_GUARD_REFUSE the dense method is
 * refused, with the estimate and the randomized method's hint, unless --force is given. */
#ifndef KAT_RANK_GUARD_H
#define KAT_RANK_GUARD_H

#include <stddef.h>
#include "progress.h"

#define RANK_GUARD_TICK 2000
#define RANK_GUARD_REFUSE 8000
/* The size of the SVD timed here to estimate the long one. */
#define RANK_GUARD_SAMPLE 800

typedef struct {
    progress prog;
    double estimate;   /* seconds; 0 below RANK_GUARD_TICK */
} rank_guard;

/* The decision alone, before any work on a dense SVD of n x m (kat sweep checks its largest
 * size this way): 0 to go on, with *estimate the seconds (0 at or below RANK_GUARD_TICK or
 * beyond the machine's memory, NaN when the sample cannot run; a NULL estimate: the sample
 * runs only where it decides) and, where --force overrides a refusal, a note on stderr unless
 * quiet; -1 after printing why the dense method is refused ("kat CMD: ..." and
 * "see kat CMD --help"). */
int rank_guard_check(const char *cmd, size_t n, size_t m, int force, int quiet,
                     double *estimate);
/* Before a dense SVD of an n x m matrix: rank_guard_check, then the progress line on a
 * terminal (unless quiet) above RANK_GUARD_TICK. */
int rank_guard_begin(rank_guard *g, const char *cmd, size_t n, size_t m, int force, int quiet);
/* After it: stops the progress line. */
void rank_guard_end(rank_guard *g);

/* The estimate alone: seconds for a dense SVD of n x m, from the median time of three of
 * RANK_GUARD_SAMPLE^2 timed now, scaled by n m min(n, m); NaN when the sample cannot run. */
double rank_guard_estimate(size_t n, size_t m);

#endif
