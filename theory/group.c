/* Spectra on the groups Z_2^d (hyperrectangle corners) and Z_N (cyclic), through FFTW. */
#include <fftw3.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <string.h>
#include "core/internal.h"
#include "kat/group.h"

/* FFTW's planner keeps global state: creating and destroying plans must be serialised, while
 * executing a finished plan on its own arrays is thread-safe. */
static pthread_mutex_t plan_lock = PTHREAD_MUTEX_INITIALIZER;

/* 2^d as a count of doubles, refusing d beyond what kat builds (the message says the size). */
static kat_status cube_size(size_t d, const char *who, size_t *n)
{
    if (d > KAT_GROUP_MAX_D) {
        if (d < 64)
            return kat__fail(KAT_ERANGE,
                            "%s: d = %zu needs vectors of 2^%zu = %.3g values (%.3g GiB each); "
                            "kat supports d <= %d",
                            who, d, d, ldexp(1.0, (int)d), ldexp(1.0, (int)d - 27),
                            KAT_GROUP_MAX_D);
        return kat__fail(KAT_ERANGE, "%s: d = %zu: 2^%zu values do not fit in memory "
                                    "(kat supports d <= %d)",
                        who, d, d, KAT_GROUP_MAX_D);
    }
    *n = (size_t)1 << d;
    return KAT_OK;
}

kat_status kat_group_wht(double *x, size_t d)
{
    size_t n = 0;
    kat_status st = cube_size(d, "group_wht", &n);
    if (st)
        return st;
    if (!x)
        return kat__fail(KAT_EINVAL, "group_wht: x is NULL");
    if (d == 0)
        return KAT_OK;
    int dims[KAT_GROUP_MAX_D];
    fftw_r2r_kind kinds[KAT_GROUP_MAX_D];
    for (size_t t = 0; t < d; t++) {
        dims[t] = 2;   /* a size-2 R2HC is (x0 + x1, x0 - x1): one Hadamard factor */
        kinds[t] = FFTW_R2HC;
    }
    pthread_mutex_lock(&plan_lock);
    fftw_plan p = fftw_plan_r2r((int)d, dims, x, x, kinds, FFTW_ESTIMATE);
    pthread_mutex_unlock(&plan_lock);
    if (!p)
        return kat__fail(KAT_ENOMEM, "group_wht: FFTW could not plan a rank-%zu transform", d);
    fftw_execute(p);
    pthread_mutex_lock(&plan_lock);
    fftw_destroy_plan(p);
    pthread_mutex_unlock(&plan_lock);
    return KAT_OK;
}

kat_status kat_group_wht_butterfly(double *x, size_t d)
{
    size_t n = 0;
    kat_status st = cube_size(d, "group_wht_butterfly", &n);
    if (st)
        return st;
    if (!x)
        return kat__fail(KAT_EINVAL, "group_wht_butterfly: x is NULL");
    for (size_t h = 1; h < n; h <<= 1)
        for (size_t i = 0; i < n; i += 2 * h)
            for (size_t j = i; j < i + h; j++) {
                double u = x[j], v = x[j + h];
                x[j] = u + v;
                x[j + h] = u - v;
            }
    return KAT_OK;
}

static kat_status check_sides(const double *a, size_t d, const char *who)
{
    if (d > 0 && !a)
        return kat__fail(KAT_EINVAL, "%s: sides a is NULL", who);
    for (size_t t = 0; t < d; t++) {
        if (!isfinite(a[t]))
            return kat__fail(KAT_EDOM, "%s: side a[%zu] is %g", who, t, a[t]);
        if (a[t] <= 0.0)
            return kat__fail(KAT_EINVAL, "%s: side a[%zu] = %g must be > 0", who, t, a[t]);
    }
    return KAT_OK;
}

/* g[T] = f(<a, T>) into g (2^d values) after validation; on failure g is partly written. */
static kat_status fill_values(const kat_fn *f, const double *a, size_t d, size_t n, double *g,
                              const char *who)
{
    /* <a, T> built from T without its lowest bit: one addition per subset. */
    g[0] = 0.0;
    for (size_t T = 1; T < n; T++) {
        size_t low = T & (~T + 1);
        g[T] = g[T ^ low] + a[__builtin_ctzll((unsigned long long)low)];
    }
    /* Evaluate in blocks so a failure can still name the subset and its argument. */
    enum { BLOCK = 256 };
    double y[BLOCK];
    for (size_t i0 = 0; i0 < n; i0 += BLOCK) {
        size_t nb = n - i0 < BLOCK ? n - i0 : BLOCK;
        kat_fn_eval_unchecked(f, g + i0, y, nb);
        size_t bad = kat__first_nonfinite(y, nb);
        if (bad < nb)
            return kat__fail(KAT_EDOM, "%s: f = %s is %g at <a, T> = %.17g (subset T = %#zx)", who,
                            kat_fn_name(f), y[bad], g[i0 + bad], i0 + bad);
        memcpy(g + i0, y, nb * sizeof(double));
    }
    return KAT_OK;
}

/* Validate, then g (or the transform of g when wht) into a scratch buffer and copy it to out
 * only on success, so a failed call leaves out untouched. */
static kat_status hyperrect(const kat_fn *f, const double *a, size_t d, double *out, int wht,
                            const char *who)
{
    size_t n = 0;
    kat_status st = cube_size(d, who, &n);
    if (st)
        return st;
    if (!f || !out)
        return kat__fail(KAT_EINVAL, "%s: %s is NULL", who, f ? "output" : "f");
    if ((st = check_sides(a, d, who)))
        return st;
    double *g = kat__alloc_array(n, sizeof(double), "hyperrectangle values");
    if (!g)
        return KAT_ENOMEM;
    st = fill_values(f, a, d, n, g, who);
    if (st == KAT_OK && wht)
        st = kat_group_wht(g, d);
    if (st == KAT_OK)
        memcpy(out, g, n * sizeof(double));
    kat_free(g);
    return st;
}

kat_status kat_group_hyperrect_values(const kat_fn *f, const double *a, size_t d, double *g)
{
    return hyperrect(f, a, d, g, 0, "group_hyperrect_values");
}

kat_status kat_group_hyperrect_spectrum(const kat_fn *f, const double *a, size_t d, double *lambda)
{
    return hyperrect(f, a, d, lambda, 1, "group_hyperrect_spectrum");
}

kat_status kat_group_hyperrect_matrix(const kat_fn *f, const double *a, size_t d, kat_dmat *D)
{
    static const char who[] = "group_hyperrect_matrix";
    size_t n = 0, n2;
    kat_status st = cube_size(d, who, &n);
    if (st)
        return st;
    if (kat_mul_overflow(n, n, &n2))
        return kat__fail(KAT_ERANGE, "%s: a %zu x %zu matrix overflows size_t", who, n, n);
    if ((st = kat_dmat_check(D, "group_hyperrect_matrix: D", 0)))
        return st;
    if (D->rows != n || D->cols != n)
        return kat__fail(KAT_EINVAL, "%s: D is %zu x %zu, expected 2^%zu x 2^%zu = %zu x %zu", who,
                        D->rows, D->cols, d, d, n, n);
    if (!f)
        return kat__fail(KAT_EINVAL, "%s: f is NULL", who);
    if ((st = check_sides(a, d, who)))
        return st;
    double *g = kat__alloc_array(n, sizeof(double), "hyperrectangle values");
    if (!g)
        return KAT_ENOMEM;
    st = fill_values(f, a, d, n, g, who);
    if (st == KAT_OK)
        for (size_t b = 0; b < n; b++)
            for (size_t c = 0; c < n; c++)
                D->data[b * D->ld + c] = g[b ^ c];
    kat_free(g);
    return st;
}

double kat_group_spectrum_tol(const double *g, size_t d)
{
    if (!g || d > KAT_GROUP_MAX_D)
        return 0.0;
    size_t n = (size_t)1 << d;
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += fabs(g[i]);
    return (double)(d + 1) * DBL_EPSILON * s;
}

/* ---- the cyclic group Z_N ------------------------------------------------------------------- */

kat_status kat_group_circulant_spectrum(const double *c, size_t N, double *re, double *im)
{
    static const char who[] = "group_circulant_spectrum";
    if (N == 0)
        return kat__fail(KAT_EINVAL, "%s: N must be >= 1 (got 0)", who);
    if (N > INT_MAX)
        return kat__fail(KAT_ERANGE, "%s: N = %zu exceeds FFTW's limit %d", who, N, INT_MAX);
    if (!c || !re)
        return kat__fail(KAT_EINVAL, "%s: %s is NULL", who, c ? "re" : "c");
    size_t bad = kat__first_nonfinite(c, N);
    if (bad < N)
        return kat__fail(KAT_EDOM, "%s: c[%zu] is %g", who, bad, c[bad]);
    double *buf = kat__alloc_array(N, 2 * sizeof(double), "circulant scratch");
    if (!buf)
        return KAT_ENOMEM;
    double *in = buf, *hc = buf + N;
    pthread_mutex_lock(&plan_lock);
    fftw_plan p = fftw_plan_r2r_1d((int)N, in, hc, FFTW_R2HC, FFTW_ESTIMATE);
    pthread_mutex_unlock(&plan_lock);
    if (!p) {
        kat_free(buf);
        return kat__fail(KAT_ENOMEM, "%s: FFTW could not plan a size-%zu transform", who, N);
    }
    memcpy(in, c, N * sizeof(double));   /* after planning: a planner may scribble on arrays */
    fftw_execute(p);
    pthread_mutex_lock(&plan_lock);
    fftw_destroy_plan(p);
    pthread_mutex_unlock(&plan_lock);
    /* FFTW gives Y_m = sum_k c_k e^{-2 pi i m k/N} as r_0..r_{N/2}, then i_{(N+1)/2-1}..i_1 with
     * i_m at hc[N-m]. The eigenvalue is conj(Y_m); for m > N/2, Y_m = conj(Y_{N-m}). */
    for (size_t m = 0; m < N; m++) {
        size_t mm = m <= N / 2 ? m : N - m;   /* the stored half */
        double r = hc[mm];
        double i = (mm == 0 || 2 * mm == N) ? 0.0 : hc[N - mm];
        re[m] = r;
        if (im)
            im[m] = m <= N / 2 ? -i : i;
    }
    kat_free(buf);
    return KAT_OK;
}

kat_status kat_group_cyclic_spectrum(const kat_fn *f, size_t N, double *lambda)
{
    static const char who[] = "group_cyclic_spectrum";
    if (N == 0)
        return kat__fail(KAT_EINVAL, "%s: N must be >= 1 (got 0)", who);
    if (!f || !lambda)
        return kat__fail(KAT_EINVAL, "%s: %s is NULL", who, f ? "lambda" : "f");
    double *c = kat__alloc_array(N, sizeof(double), "cyclic first row");
    if (!c)
        return KAT_ENOMEM;
    for (size_t k = 0; k < N; k++)
        c[k] = (double)(k <= N - k ? k : N - k);
    kat_status st = KAT_OK;
    kat_fn_eval_unchecked(f, c, c, N);
    size_t bad = kat__first_nonfinite(c, N);
    if (bad < N) {
        size_t delta = bad <= N - bad ? bad : N - bad;
        st = kat__fail(KAT_EDOM, "%s: f = %s is %g at cyclic distance %zu", who, kat_fn_name(f),
                      c[bad], delta);
    }
    if (st == KAT_OK)
        st = kat_group_circulant_spectrum(c, N, lambda, NULL);
    kat_free(c);
    return st;
}
