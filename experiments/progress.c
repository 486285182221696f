/* One redrawn line of progress on a terminal, nothing elsewhere. */
#include <math.h>
#include <stdarg.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "progress.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void progress_clock(char *buf, size_t n, double s)
{
    long t = s > 0 && s < 1e9 ? (long)(s + 0.5) : 0;
    if (t >= 3600)
        snprintf(buf, n, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else
        snprintf(buf, n, "%ld:%02ld", t / 60, t % 60);
}

void progress_duration(char *buf, size_t n, double s)
{
    if (!(s > 0))
        snprintf(buf, n, "0 s");
    else if (s < 90)
        snprintf(buf, n, "%.0f s", s);
    else if (s < 90 * 60)
        snprintf(buf, n, "%.0f min", s / 60);
    else
        snprintf(buf, n, "%.1f h", s / 3600);
}

void progress_start(progress *p, FILE *out, const char *label, int quiet)
{
    memset(p, 0, sizeof *p);
    p->out = out;
    p->quiet = quiet;
    p->active = !quiet && out && isatty(fileno(out));
    p->t0 = now();
    p->last = -1.0;
    snprintf(p->label, sizeof p->label, "%s", label);
    pthread_mutex_init(&p->lock, NULL);
}

/* Clear the line in place (carriage return, erase to the end of the line). */
static void clear_line(progress *p)
{
    if (p->drawn)
        fputs("\r\033[K", p->out);
    p->drawn = 0;
}

/* done: the fraction of the work, < 0 when unknown (the time so far alone), > 1 when the work
 * ran past its estimate. */
static void draw(progress *p, double done, const char *what)
{
    double t = now(), elapsed = t - p->t0;
    char el[32], pct[16] = "", left[64] = "";
    progress_clock(el, sizeof el, elapsed);
    if (done >= 0)
        snprintf(pct, sizeof pct, " %3.0f%%", done > 1.0 ? 99.0 : 100.0 * done);
    if (done > 0.02 && done < 0.99) {
        char c[24];
        progress_clock(c, sizeof c, elapsed * (1.0 - done) / done);
        snprintf(left, sizeof left, ", about %s left", c);
    } else if (done > 1.0) {
        snprintf(left, sizeof left, ", longer than the estimate");
    }
    clear_line(p);
    fprintf(p->out, "%s: %s%s (%s elapsed%s)", p->label, what, pct, el, left);
    fflush(p->out);
    p->drawn = 1;
    p->last = t;
}

void progress_update(progress *p, double done, const char *fmt, ...)
{
    if (!p->active)
        return;
    pthread_mutex_lock(&p->lock);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->cur_what, sizeof p->cur_what, fmt, ap);
    va_end(ap);
    p->cur_done = done < 0 ? 0 : done > 1 ? 1 : done;
    if (p->last < 0 || now() - p->last >= 0.2)
        draw(p, p->cur_done, p->cur_what);
    pthread_mutex_unlock(&p->lock);
}

void progress_note(progress *p, const char *fmt, ...)
{
    if (p->quiet || !p->out)
        return;
    pthread_mutex_lock(&p->lock);
    clear_line(p);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(p->out, fmt, ap);
    va_end(ap);
    fputc('\n', p->out);
    fflush(p->out);
    pthread_mutex_unlock(&p->lock);
}

static void *tick(void *arg)
{
    progress *p = arg;
    for (;;) {
        pthread_mutex_lock(&p->lock);
        if (p->stop) {
            pthread_mutex_unlock(&p->lock);
            return NULL;
        }
        if (p->follow) {
            if (p->cur_what[0])
                draw(p, p->cur_done, p->cur_what);
            pthread_mutex_unlock(&p->lock);
            usleep(250000);
            continue;
        }
        double t = now() - p->tick_t0;
        /* A call of unknown length draws from its first second on: a quick one prints
         * nothing. */
        if (p->tick_expected > 0 || t >= 1.0)
            draw(p, p->tick_expected > 0 ? t / p->tick_expected : -1.0, p->tick_what);
        pthread_mutex_unlock(&p->lock);
        usleep(250000);   /* the clock moves by the second; four looks keep it on time */
    }
}

void progress_tick_start(progress *p, double expected_seconds, const char *what)
{
    if (!p->active || p->ticking)
        return;
    p->tick_t0 = now();
    p->tick_expected = expected_seconds > 0 ? fmax(expected_seconds, 0.1) : 0.0;
    p->stop = 0;
    snprintf(p->tick_what, sizeof p->tick_what, "%s", what);
    p->ticking = pthread_create(&p->thread, NULL, tick, p) == 0;
}

void progress_follow_start(progress *p)
{
    if (!p->active || p->ticking)
        return;
    p->follow = 1;
    p->stop = 0;
    p->ticking = pthread_create(&p->thread, NULL, tick, p) == 0;
}

void progress_call_start(progress *p, FILE *out, const char *label, int quiet, const char *fmt,
                         ...)
{
    char what[128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    progress_start(p, out, label, quiet);
    progress_tick_start(p, 0.0, what);
}

void progress_call_next(progress *p, const char *fmt, ...)
{
    char what[128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    progress_tick_stop(p);
    progress_tick_start(p, 0.0, what);
}

void progress_tick_stop(progress *p)
{
    if (!p->ticking)
        return;
    pthread_mutex_lock(&p->lock);
    p->stop = 1;
    pthread_mutex_unlock(&p->lock);
    pthread_join(p->thread, NULL);
    p->ticking = 0;
}

void progress_clear(progress *p)
{
    pthread_mutex_lock(&p->lock);
    if (p->active) {
        clear_line(p);
        fflush(p->out);
        p->last = -1.0;   /* redraw at the next update */
    }
    pthread_mutex_unlock(&p->lock);
}

void progress_finish(progress *p)
{
    progress_tick_stop(p);
    pthread_mutex_lock(&p->lock);
    if (p->active)
        clear_line(p);
    fflush(p->out);
    p->active = 0;
    pthread_mutex_unlock(&p->lock);
    pthread_mutex_destroy(&p->lock);
}
