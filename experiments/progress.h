/* Progress of long work on a terminal: one line on stderr, redrawn in place, with the step,
 * the fraction done, the time so far and an estimate of the time left. It prints nothing when
 * stderr is not a terminal or the caller is quiet (--json), so logs and pipes stay clean. */
#ifndef KAT_PROGRESS_H
#define KAT_PROGRESS_H

#include <pthread.h>
#include <stdio.h>

typedef struct {
    FILE *out;
    int quiet;             /* the caller asked for no progress and no notes (--json) */
    int active;            /* out is a terminal and the caller is not quiet */
    int drawn;             /* a progress line is on the screen */
    double t0, last;       /* start; last redraw */
    char label[64];        /* "kat reproduce" */
    /* the ticker: a thread that redraws while one long call runs */
    pthread_t thread;
    pthread_mutex_t lock;
    int ticking, stop;
    double tick_t0;        /* when the ticked call started */
    double tick_expected;  /* seconds the call is expected to take */
    char tick_what[128];
    int follow;            /* the ticker redraws the last update's line */
    double cur_done;
    char cur_what[256];
} progress;

/* Start: active when out is a terminal and quiet is 0. */
void progress_start(progress *p, FILE *out, const char *label, int quiet);
/* Redraw (at most 5 times a second) with `done` in [0, 1] of the whole work, and what is being
 * done now (printf format); the estimate of the time left is elapsed * (1 - done) / done. */
void progress_update(progress *p, double done, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Print a line that stays (a step's result): clears the progress line first. Printed whether or
 * not the progress is active, unless quiet. */
void progress_note(progress *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* For one call that reports nothing while it runs (a LAPACK SVD): a thread redraws once a
 * second with the time so far against the expected seconds ("longer than the estimate" past
 * them), or the time so far alone when expected_seconds is 0 (unknown). Stopped by
 * progress_tick_stop. */
void progress_tick_start(progress *p, double expected_seconds, const char *what);
void progress_tick_stop(progress *p);
/* One call of unknown length (a dense eigensolver, an attention call): progress_start, then the
 * ticker with the time so far, drawn from the call's first second on; progress_finish ends it
 * (before the command prints its result). */
void progress_call_start(progress *p, FILE *out, const char *label, int quiet, const char *fmt,
                         ...) __attribute__((format(printf, 5, 6)));
/* The next step of such work: the line names it (the time so far counts from the start). */
void progress_call_next(progress *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* For work whose updates can be far apart (a step of kat reproduce): a thread redraws the last
 * update's line once a second, so its clock and estimate move between updates. Only for a
 * command that writes nothing else to the terminal until progress_finish. */
void progress_follow_start(progress *p);
/* Clear the line for other output (on stdout, say); the next update draws it again. */
void progress_clear(progress *p);
/* Clear the line; the progress prints nothing more. */
void progress_finish(progress *p);

/* A duration in words: "40 s", "6 min", "1.5 h" (rounded; for estimates). */
void progress_duration(char *buf, size_t n, double seconds);
/* "1:05" for 65 seconds, "1:01:05" above an hour, "0:00" for a negative or unknown time. */
void progress_clock(char *buf, size_t n, double seconds);

#endif
