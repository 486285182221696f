/* bench_expr: the compiled expression evaluator against hand-written C loops on the same
 * values, one thread. The two are timed alternately, REPS times each; it prints the fastest
 * and the median time per value of each, and the ratio expr / C both as the ratio of the
 * fastest runs and as the median of the per-pair ratios (neighbouring runs share the noise
 * of a busy machine).
 *
 *   bench_expr [N] [REPS]     (defaults 1000000 and 21) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "kat/kat.h"
#include "timing.h"

/* The hand-written loops: what a user would write in C for each expression. */
static void c_exp8(const double *x, double *y, size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] = exp(x[i] / 8);
}
static void c_poly4(const double *x, double *y, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        double t = 1 + x[i], t2 = t * t;
        y[i] = t2 * t2;
    }
}
static void c_relu13(const double *x, double *y, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        double t = x[i] - 1.3;
        y[i] = t > 0 ? t : 0;
    }
}
static void c_gelu(const double *x, double *y, size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] = 0.5 * x[i] * (1 + erf(x[i] * M_SQRT1_2));
}
static void c_mix(const double *x, double *y, size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] = sin(x[i]) * x[i] + exp(-x[i] * x[i] / 2);
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? (size_t)strtoull(argv[1], NULL, 10) : 1000000;
    int reps = argc > 2 ? atoi(argv[2]) : 21;
    if (n == 0 || reps < 1) {
        fprintf(stderr, "usage: bench_expr [N >= 1] [REPS >= 1]\n");
        return 2;
    }
    const struct {
        const char *src;
        void (*c)(const double *, double *, size_t);
    } cases[] = {
        {"exp(x/8)", c_exp8},
        {"(1+x)^4", c_poly4},
        {"max(x-1.3, 0)", c_relu13},
        {"gelu(x)", c_gelu},
        {"sin(x)*x + exp(-x^2/2)", c_mix},
    };
    double *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y), *r = malloc(n * sizeof *r);
    double *te = malloc((size_t)reps * sizeof *te), *tc = malloc((size_t)reps * sizeof *tc);
    double *tr = malloc((size_t)reps * sizeof *tr);
    if (!x || !y || !r || !te || !tc || !tr)
        return 1;
    kat_rng *rng;
    if (kat_rng_create(1, &rng))
        return 1;
    for (size_t i = 0; i < n; i++)
        x[i] = 8.0 * (2.0 * kat_rng_uniform(rng) - 1.0);
    kat_rng_destroy(rng);

    printf("bench_expr: n = %zu values, %d runs each (median), 1 thread, isa %s\n", n, reps,
           kat_arch_name());
    printf("%-24s %21s %21s %17s %10s\n", "", "expr ns/value", "C ns/value", "expr / C", "");
    printf("%-24s %10s %10s %10s %10s %8s %8s %10s\n", "expression", "min", "median", "min",
           "median", "of min", "median", "max|diff|");
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        kat_fn *f;
        kat_status st = kat_fn_parse(cases[k].src, &f, NULL);
        if (st) {
            fprintf(stderr, "bench_expr: %s: %s\n", cases[k].src, kat_last_error());
            return 1;
        }
        for (int w = 0; w < 2; w++) {   /* warm-up: caches, page faults, CPU clock */
            kat_fn_eval_unchecked(f, x, y, n);
            cases[k].c(x, r, n);
        }
        for (int t = 0; t < reps; t++) {
            double t0 = timing_now();
            kat_fn_eval_unchecked(f, x, y, n);
            double t1 = timing_now();
            cases[k].c(x, r, n);
            double t2 = timing_now();
            te[t] = t1 - t0;
            tc[t] = t2 - t1;
            tr[t] = te[t] / tc[t];
        }
        double diff = 0;
        for (size_t i = 0; i < n; i++)
            diff = fmax(diff, fabs(y[i] - r[i]));
        /* timing_median sorts: te[0] and tc[0] are then the fastest runs */
        double me = timing_median(te, (size_t)reps), mc = timing_median(tc, (size_t)reps);
        double mr = timing_median(tr, (size_t)reps), ns = 1e9 / (double)n;
        printf("%-24s %10.3f %10.3f %10.3f %10.3f %8.3f %8.3f %10.3g\n", cases[k].src,
               ns * te[0], ns * me, ns * tc[0], ns * mc, te[0] / tc[0], mr, diff);
        kat_fn_destroy(f);
    }
    free(x);
    free(y);
    free(r);
    free(te);
    free(tc);
    free(tr);
    return 0;
}
