/* bench_rank: kat_rank_spectrum against a direct LAPACKE_dgesdd call on the same matrix, in
 * the same run (interleaved, median of several), so the ratio holds on a noisy machine.
 *   bench_rank [n] [d] [reps]     (defaults 4096 8 3; M = exp(QK^T), Q, K ~ N(0, 1/d))
 * Baselines: LAPACKE_dgesdd in row-major order (what a C user of LAPACKE writes; LAPACKE
 * transposes internally) and in column-major order on the transposed view (no transpose: the
 * fastest direct call). Copies for the baselines are made outside their timings; kat's own
 * copy of M is inside its timing. */
#include <float.h>
#include <lapacke.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "kat/kat.h"
#include "timing.h"

static double median(double *v, int n)
{
    return timing_median(v, (size_t)n);
}

static void loadavg(char *buf, size_t len)
{
    FILE *f = fopen("/proc/loadavg", "r");
    if (!f || !fgets(buf, (int)len, f))
        snprintf(buf, len, "unknown\n");
    if (f)
        fclose(f);
}

static int check(kat_status st, const char *what)
{
    if (st)
        fprintf(stderr, "bench_rank: %s: %s: %s\n", what, kat_strerror(st), kat_last_error());
    return st != KAT_OK;
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? (size_t)atol(argv[1]) : 4096, d = argc > 2 ? (size_t)atol(argv[2]) : 8;
    int reps = argc > 3 ? atoi(argv[3]) : 3;
    if (n < 2 || d < 1 || reps < 1 || reps > 50) {
        fprintf(stderr, "usage: bench_rank [n >= 2] [d >= 1] [reps 1..50]\n");
        return 2;
    }
    char load0[128], load1[128];
    loadavg(load0, sizeof load0);
    printf("bench_rank: n = %zu, d = %zu, M = exp(QK^T), %d repetitions\nblas: %s\n"
           "threads: %d, OPENBLAS_CORETYPE=%s\nload average at start: %s",
           n, d, reps, kat_blas_info(), kat_num_threads(),
           getenv("OPENBLAS_CORETYPE") ? getenv("OPENBLAS_CORETYPE") : "(unset)", load0);
    kat_rng *rng;
    kat_dmat Q, K, M;
    kat_fn *f;
    kat_rank_points_opts po;
    kat_rank_points_opts_init(&po);
    if (check(kat_rng_create(1, &rng), "rng") || check(kat_dmat_alloc(n, d, &Q), "Q") ||
        check(kat_dmat_alloc(n, d, &K), "K") || check(kat_dmat_alloc(n, n, &M), "M") ||
        check(kat_rank_points(&po, rng, &Q), "points") ||
        check(kat_rank_points(&po, rng, &K), "points") ||
        check(kat_fn_builtin("exp", &f), "exp") ||
        check(kat_rank_kernel_matrix(f, KAT_RANK_INNER, 1.0, &Q, &K, &M), "kernel matrix"))
        return 1;
    double *a = malloc(n * n * sizeof(double));
    double *s_kat = malloc(n * sizeof(double)), *s_row = malloc(n * sizeof(double));
    double *s_col = malloc(n * sizeof(double));
    double *t_kat = malloc((size_t)reps * sizeof(double));
    double *t_row = malloc((size_t)reps * sizeof(double));
    double *t_col = malloc((size_t)reps * sizeof(double));
    double *c_kat = malloc((size_t)reps * sizeof(double));
    double *c_row = malloc((size_t)reps * sizeof(double));
    double *c_col = malloc((size_t)reps * sizeof(double));
    if (!a || !s_kat || !s_row || !s_col || !t_kat || !t_row || !t_col || !c_kat || !c_row ||
        !c_col) {
        fprintf(stderr, "bench_rank: out of memory\n");
        return 1;
    }
    double dummy = 0;
    for (int r = 0; r < reps; r++) {
        double t = timing_now(), c = timing_cpu_now();
        if (check(kat_rank_spectrum(&M, s_kat, n), "kat_rank_spectrum"))
            return 1;
        t_kat[r] = timing_now() - t;
        c_kat[r] = timing_cpu_now() - c;

        memcpy(a, M.data, n * n * sizeof(double));
        t = timing_now();
        /* Row-major LAPACKE checks ldvt >= n even when no vectors are asked for. */
        lapack_int info = LAPACKE_dgesdd(LAPACK_ROW_MAJOR, 'N', (lapack_int)n, (lapack_int)n, a,
                                         (lapack_int)n, s_row, &dummy, 1, &dummy, (lapack_int)n);
        t_row[r] = timing_now() - t;
        c_row[r] = timing_cpu_now() - c;

        memcpy(a, M.data, n * n * sizeof(double));
        t = timing_now();
        c = timing_cpu_now();
        lapack_int info2 = LAPACKE_dgesdd(LAPACK_COL_MAJOR, 'N', (lapack_int)n, (lapack_int)n, a,
                                          (lapack_int)n, s_col, &dummy, 1, &dummy, 1);
        t_col[r] = timing_now() - t;
        c_col[r] = timing_cpu_now() - c;
        if (info || info2) {
            fprintf(stderr, "bench_rank: LAPACKE_dgesdd info %d / %d\n", (int)info, (int)info2);
            return 1;
        }
        printf("rep %d: kat_rank_spectrum %.3f s (cpu %.3f), LAPACKE_dgesdd row-major %.3f s "
               "(cpu %.3f), column-major %.3f s (cpu %.3f)\n", r + 1, t_kat[r], c_kat[r],
               t_row[r], c_row[r], t_col[r], c_col[r]);
        fflush(stdout);
    }
    double diff = 0;
    for (size_t i = 0; i < n; i++) {
        double e1 = fabs(s_kat[i] - s_row[i]), e2 = fabs(s_kat[i] - s_col[i]);
        diff = e1 > diff ? e1 : diff;
        diff = e2 > diff ? e2 : diff;
    }
    double mk = median(t_kat, reps), mr = median(t_row, reps), mc = median(t_col, reps);
    loadavg(load1, sizeof load1);
    printf("median: kat_rank_spectrum %.3f s, LAPACKE_dgesdd row-major %.3f s, column-major "
           "%.3f s\n", mk, mr, mc);
    printf("ratio kat / LAPACKE row-major: %.3f   kat / LAPACKE column-major: %.3f   "
           "(< 1: kat is faster)\n", mk / mr, mk / mc);
    double ck = median(c_kat, reps), cr = median(c_row, reps), cc = median(c_col, reps);
    printf("median cpu: kat %.3f s, row-major %.3f s, column-major %.3f s; ratios %.3f and "
           "%.3f\n", ck, cr, cc, ck / cr, ck / cc);
    printf("max |sigma_kat - sigma_lapacke| / sigma_1 = %.3g (n * eps = %.3g)\n", diff / s_kat[0],
           (double)n * DBL_EPSILON);
    printf("load average at end: %s", load1);
    free(a);
    free(s_kat);
    free(s_row);
    free(s_col);
    free(t_kat);
    free(t_row);
    free(t_col);
    free(c_kat);
    free(c_row);
    free(c_col);
    kat_dmat_free(&Q);
    kat_dmat_free(&K);
    kat_dmat_free(&M);
    kat_fn_destroy(f);
    kat_rng_destroy(rng);
    return 0;
}
