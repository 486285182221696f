/* Metric transforms: distance and kernel matrices, symmetric spectra, positive definiteness,
 * Schoenberg's MDS test, and finite-difference tests of complete monotonicity and of the
 * Bernstein property. */
#include <float.h>
#include <lapacke.h>
#include <limits.h>
#include <math.h>
#include <string.h>
#include "core/internal.h"
#include "kat/metric.h"

static const char *const metric_names[KAT_METRIC_COUNT] = {"l1", "l2", "l2sq", "inner"};

kat_status kat_metric_parse(const char *name, kat_metric *out)
{
    if (!name || !out)
        return kat__fail(KAT_EINVAL, "metric_parse: %s is NULL", name ? "out" : "name");
    for (int m = 0; m < KAT_METRIC_COUNT; m++)
        if (strcmp(name, metric_names[m]) == 0) {
            *out = (kat_metric)m;
            return KAT_OK;
        }
    return kat__fail(KAT_EINVAL, "metric '%s' is not one of l1, l2, l2sq, inner", name);
}

const char *kat_metric_name(kat_metric m)
{
    return (unsigned)m < KAT_METRIC_COUNT ? metric_names[m] : "unknown";
}

static double pair_value(const double *x, const double *y, size_t d, kat_metric m)
{
    double s = 0.0;
    switch (m) {
    case KAT_METRIC_L1:
        for (size_t t = 0; t < d; t++)
            s += fabs(x[t] - y[t]);
        return s;
    case KAT_METRIC_L2:
    case KAT_METRIC_L2SQ:
        for (size_t t = 0; t < d; t++)
            s += (x[t] - y[t]) * (x[t] - y[t]);
        return m == KAT_METRIC_L2 ? sqrt(s) : s;
    default:
        for (size_t t = 0; t < d; t++)
            s += x[t] * y[t];
        return s;
    }
}

/* Checks shared by the builders: X valid and finite, out square n x n and not overlapping X. */
static kat_status check_square_out(const kat_dmat *X, const kat_dmat *out, const char *who,
                                   const char *outname)
{
    if (!out)
        return kat__fail(KAT_EINVAL, "%s: %s is NULL", who, outname);
    if (out->rows != X->rows || out->cols != X->rows)
        return kat__fail(KAT_EINVAL, "%s: %s is %zu x %zu, expected %zu x %zu (one row and column "
                                    "per point)",
                        who, outname, out->rows, out->cols, X->rows, X->rows);
    kat_status st = kat_dmat_check(out, outname, 0);
    if (st)
        return st;
    if (X->rows && out->data == X->data)
        return kat__fail(KAT_EINVAL, "%s: %s overlaps X", who, outname);
    return KAT_OK;
}

static kat_status validate_points(const kat_dmat *X, kat_metric metric, const char *who)
{
    if ((unsigned)metric >= KAT_METRIC_COUNT)
        return kat__fail(KAT_EINVAL, "%s: metric = %d is not a kat_metric", who, (int)metric);
    return kat_dmat_check(X, "X (points)", 1);
}

kat_status kat_metric_distances(const kat_dmat *X, kat_metric metric, kat_dmat *D)
{
    static const char who[] = "metric_distances";
    kat_status st = validate_points(X, metric, who);
    if (st || (st = check_square_out(X, D, who, "D")))
        return st;
    size_t n = X->rows, d = X->cols;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j <= i; j++) {
            double v = pair_value(X->data + i * X->ld, X->data + j * X->ld, d, metric);
            D->data[i * D->ld + j] = v;
            D->data[j * D->ld + i] = v;
        }
    return KAT_OK;
}

kat_status kat_metric_kernel(const kat_fn *f, const kat_dmat *X, kat_metric metric, kat_dmat *K)
{
    static const char who[] = "metric_kernel";
    if (!f)
        return kat__fail(KAT_EINVAL, "%s: f is NULL", who);
    kat_status st = validate_points(X, metric, who);
    if (st || (st = check_square_out(X, K, who, "K")))
        return st;
    size_t n = X->rows;
    if (n == 0)
        return KAT_OK;
    kat_dmat S = {0};
    if ((st = kat_dmat_alloc(n, n, &S)))
        return st;
    st = kat_metric_distances(X, metric, &S);
    for (size_t i = 0; i < n && st == KAT_OK; i++) {
        double *row = S.data + i * n;
        kat_fn_eval_unchecked(f, row, row, n);
        size_t bad = kat__first_nonfinite(row, n);
        if (bad < n) {
            /* Recompute the argument for the message (the row now holds f values). */
            double arg = pair_value(X->data + i * X->ld, X->data + bad * X->ld, X->cols, metric);
            st = kat__fail(KAT_EDOM, "%s: f = %s is %g at %s = %.17g (points %zu and %zu)", who,
                          kat_fn_name(f), row[bad], kat_metric_name(metric), arg, i, bad);
        }
    }
    if (st == KAT_OK)
        for (size_t i = 0; i < n; i++)
            memcpy(K->data + i * K->ld, S.data + i * n, n * sizeof(double));
    kat_dmat_free(&S);
    return st;
}

kat_status kat_metric_corners(const double *a, size_t d, kat_dmat *X)
{
    static const char who[] = "metric_corners";
    if (d > 62 || d >= sizeof(size_t) * CHAR_BIT)
        return kat__fail(KAT_ERANGE, "%s: d = %zu: 2^%zu corners do not fit in memory", who, d, d);
    size_t n = (size_t)1 << d;
    if (d > 0 && !a)
        return kat__fail(KAT_EINVAL, "%s: sides a is NULL", who);
    for (size_t t = 0; t < d; t++) {
        if (!isfinite(a[t]))
            return kat__fail(KAT_EDOM, "%s: side a[%zu] is %g", who, t, a[t]);
        if (a[t] <= 0.0)
            return kat__fail(KAT_EINVAL, "%s: side a[%zu] = %g must be > 0", who, t, a[t]);
    }
    kat_status st = kat_dmat_check(X, "X (corners)", 0);
    if (st)
        return st;
    if (X->rows != n || X->cols != d)
        return kat__fail(KAT_EINVAL, "%s: X is %zu x %zu, expected 2^%zu x %zu = %zu x %zu", who,
                        X->rows, X->cols, d, d, n, d);
    for (size_t b = 0; b < n; b++)
        for (size_t t = 0; t < d; t++)
            X->data[b * X->ld + t] = (b >> t & 1) ? a[t] : 0.0;
    return KAT_OK;
}

/* ---- symmetric spectra ---------------------------------------------------------------------- */

/* A square, finite, symmetric (to 16 eps max|A|) matrix of LAPACK size, copied to a packed
 * n x n buffer. */
static kat_status sym_copy(const kat_dmat *A, const char *who, double **copy)
{
    kat_status st = kat_dmat_check(A, "A", 1);
    if (st)
        return st;
    if (A->rows != A->cols)
        return kat__fail(KAT_EINVAL, "%s: A is %zu x %zu, not square", who, A->rows, A->cols);
    size_t n = A->rows;
    if (n > (size_t)INT_MAX)
        return kat__fail(KAT_ERANGE, "%s: n = %zu exceeds LAPACK's limit %d", who, n, INT_MAX);
    double amax = 0.0;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++)
            amax = fmax(amax, fabs(A->data[i * A->ld + j]));
    double tol = 16.0 * DBL_EPSILON * amax;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < i; j++) {
            double x = A->data[i * A->ld + j], y = A->data[j * A->ld + i];
            if (fabs(x - y) > tol)
                return kat__fail(KAT_EINVAL,
                                "%s: A is not symmetric: A(%zu, %zu) = %.17g but A(%zu, %zu) = "
                                "%.17g",
                                who, i, j, x, j, i, y);
        }
    double *c = kat__alloc_array(n ? n * n : 1, sizeof(double), "symmetric matrix copy");
    if (!c)
        return KAT_ENOMEM;
    for (size_t i = 0; i < n; i++)
        memcpy(c + i * n, A->data + i * A->ld, n * sizeof(double));
    *copy = c;
    return KAT_OK;
}

/* Eigenvalues of the packed n x n symmetric c (destroyed), descending, into w; with vectors
 * when vecs (then c holds them, column i for ascending eigenvalue i). */
static kat_status syevd(double *c, size_t n, double *w, int vecs, const char *who)
{
    if (n == 0)
        return KAT_OK;
    lapack_int info = LAPACKE_dsyevd(LAPACK_ROW_MAJOR, vecs ? 'V' : 'N', 'L', (lapack_int)n, c,
                                     (lapack_int)n, w);
    if (info < 0)
        return kat__fail(KAT_ENOMEM, "%s: dsyevd could not allocate its workspace (info %d)", who,
                        (int)info);
    if (info > 0)
        return kat__fail(KAT_ELAPACK, "%s: dsyevd did not converge (info %d, n = %zu)", who,
                        (int)info, n);
    return KAT_OK;
}

static void reverse(double *w, size_t n)
{
    for (size_t i = 0; i < n / 2; i++) {
        double t = w[i];
        w[i] = w[n - 1 - i];
        w[n - 1 - i] = t;
    }
}

kat_status kat_metric_sym_eigenvalues(const kat_dmat *A, double *w)
{
    static const char who[] = "metric_sym_eigenvalues";
    if (!w)
        return kat__fail(KAT_EINVAL, "%s: w is NULL", who);
    double *c = NULL;
    kat_status st = sym_copy(A, who, &c);
    if (st)
        return st;
    size_t n = A->rows;
    double *tmp = kat__alloc_array(n ? n : 1, sizeof(double), "eigenvalues");
    if (!tmp)
        st = KAT_ENOMEM;
    if (st == KAT_OK && (st = syevd(c, n, tmp, 0, who)) == KAT_OK) {
        reverse(tmp, n);
        memcpy(w, tmp, n * sizeof(double));
    }
    kat_free(tmp);
    kat_free(c);
    return st;
}

kat_status kat_metric_cholesky_pd(const kat_dmat *A, int *is_pd)
{
    static const char who[] = "metric_cholesky_pd";
    if (!is_pd)
        return kat__fail(KAT_EINVAL, "%s: is_pd is NULL", who);
    double *c = NULL;
    kat_status st = sym_copy(A, who, &c);
    if (st)
        return st;
    size_t n = A->rows;
    lapack_int info = n ? LAPACKE_dpotrf(LAPACK_ROW_MAJOR, 'L', (lapack_int)n, c, (lapack_int)n)
                        : 0;
    kat_free(c);
    if (info < 0)
        return kat__fail(KAT_ENOMEM, "%s: dpotrf failed (info %d)", who, (int)info);
    *is_pd = info == 0;
    return KAT_OK;
}

kat_status kat_metric_pd_check(const kat_fn *f, const kat_dmat *X, kat_metric metric,
                               kat_metric_pd_report *rep, double *w)
{
    static const char who[] = "metric_pd_check";
    if (!rep)
        return kat__fail(KAT_EINVAL, "%s: rep is NULL", who);
    kat_status st = validate_points(X, metric, who);
    if (st)
        return st;
    size_t n = X->rows;
    kat_dmat K = {0};
    double *ev = NULL;
    if ((st = kat_dmat_alloc(n, n, &K)))
        return st;
    if (!(ev = kat__alloc_array(n ? n : 1, sizeof(double), "eigenvalues")))
        st = KAT_ENOMEM;
    kat_metric_pd_report r = {.n = n};
    if (st == KAT_OK)
        st = kat_metric_kernel(f, X, metric, &K);
    if (st == KAT_OK)
        st = kat_metric_sym_eigenvalues(&K, ev);
    if (st == KAT_OK)
        st = kat_metric_cholesky_pd(&K, &r.cholesky_pd);
    if (st == KAT_OK && n > 0) {
        r.max_eigenvalue = ev[0];
        r.min_eigenvalue = ev[n - 1];
        r.tol = (double)n * DBL_EPSILON * fmax(fabs(ev[0]), fabs(ev[n - 1]));
        for (size_t i = 0; i < n; i++) {
            r.n_positive += ev[i] > r.tol;
            r.n_negative += ev[i] < -r.tol;
        }
        r.psd = r.n_negative == 0;
    } else if (st == KAT_OK) {
        r.cholesky_pd = 1;
        r.psd = 1;
    }
    if (st == KAT_OK) {
        *rep = r;
        if (w)
            memcpy(w, ev, n * sizeof(double));
    }
    kat_free(ev);
    kat_dmat_free(&K);
    return st;
}

/* ---- Schoenberg / classical MDS ------------------------------------------------------------- */

/* B = -1/2 P D P into a packed n x n buffer: B_ij = -1/2 (D_ij - r_i - r_j + m) with r the row
 * means and m the grand mean (D symmetric, so column means equal row means). */
static kat_status double_centre(const kat_dmat *D, const char *who, double **out)
{
    double *B = NULL;
    kat_status st = sym_copy(D, who, &B);
    if (st)
        return st;
    size_t n = D->rows;
    double *r = kat__alloc_array(n ? n : 1, sizeof(double), "MDS row means");
    if (!r) {
        kat_free(B);
        return KAT_ENOMEM;
    }
    double m = 0.0;
    for (size_t i = 0; i < n; i++) {
        double s = 0.0;
        for (size_t j = 0; j < n; j++)
            s += B[i * n + j];
        r[i] = s / (double)n;
        m += r[i];
    }
    m /= (double)(n ? n : 1);
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++)
            B[i * n + j] = -0.5 * (B[i * n + j] - r[i] - r[j] + m);
    kat_free(r);
    *out = B;
    return KAT_OK;
}

kat_status kat_metric_mds_spectrum(const kat_dmat *D, double *w)
{
    static const char who[] = "metric_mds_spectrum";
    if (!w)
        return kat__fail(KAT_EINVAL, "%s: w is NULL", who);
    double *B = NULL;
    kat_status st = double_centre(D, who, &B);
    if (st)
        return st;
    size_t n = D->rows;
    double *tmp = kat__alloc_array(n ? n : 1, sizeof(double), "eigenvalues");
    if (!tmp)
        st = KAT_ENOMEM;
    if (st == KAT_OK && (st = syevd(B, n, tmp, 0, who)) == KAT_OK) {
        reverse(tmp, n);
        memcpy(w, tmp, n * sizeof(double));
    }
    kat_free(tmp);
    kat_free(B);
    return st;
}

kat_status kat_metric_mds_embed(const kat_dmat *D, size_t k, kat_dmat *Y)
{
    static const char who[] = "metric_mds_embed";
    kat_status st = kat_dmat_check(Y, "Y", 0);
    if (st)
        return st;
    if (!D)
        return kat__fail(KAT_EINVAL, "%s: D is NULL", who);
    if (k > D->rows)
        return kat__fail(KAT_EINVAL, "%s: k = %zu exceeds the %zu points", who, k, D->rows);
    if (Y->rows != D->rows || Y->cols != k)
        return kat__fail(KAT_EINVAL, "%s: Y is %zu x %zu, expected %zu x %zu", who, Y->rows,
                        Y->cols, D->rows, k);
    double *B = NULL;
    if ((st = double_centre(D, who, &B)))
        return st;
    size_t n = D->rows;
    double *ev = kat__alloc_array(n ? n : 1, sizeof(double), "eigenvalues");
    if (!ev)
        st = KAT_ENOMEM;
    if (st == KAT_OK)
        st = syevd(B, n, ev, 1, who);
    if (st == KAT_OK && n > 0) {
        double tol = (double)n * DBL_EPSILON * fmax(fabs(ev[0]), fabs(ev[n - 1]));
        for (size_t c = 0; c < k && st == KAT_OK; c++)
            if (ev[n - 1 - c] < -tol)
                st = kat__fail(KAT_EDOM,
                              "%s: D is not Euclidean in %zu dimensions: eigenvalue %zu of "
                              "-1/2 P D P is %.6g < 0 (tolerance %.3g)",
                              who, k, c + 1, ev[n - 1 - c], tol);
        for (size_t i = 0; i < n && st == KAT_OK; i++)
            for (size_t c = 0; c < k; c++) {
                double l = ev[n - 1 - c];
                Y->data[i * Y->ld + c] = B[i * n + (n - 1 - c)] * sqrt(l > 0.0 ? l : 0.0);
            }
    }
    kat_free(ev);
    kat_free(B);
    return st;
}

/* ---- finite-difference tests ---------------------------------------------------------------- */

kat_metric_grid kat_metric_grid_default(void)
{
    kat_metric_grid g = {.x0 = 0.0, .x1 = 8.0, .points = 161, .max_order = 8, .max_step = 4};
    return g;
}

typedef struct {
    const kat_metric_grid *g;
    double h;
    int bernstein;       /* sign convention: (-1)^(k-1) instead of (-1)^k */
    double **diff;       /* diff[k]: the current order-k difference at each grid point */
    double **loc;        /* loc[k]: max |f| over its stencil */
    size_t steps[KAT_METRIC_MAX_ORDER];
    kat_metric_report *rep;
    double worst_ratio;  /* of the reported violation */
} diff_walk;

static void note_violation(diff_walk *w, size_t k, size_t i, double value, double tol,
                           const char *condition)
{
    kat_metric_report *r = w->rep;
    r->violations++;
    double ratio = value / (tol > 0.0 ? tol : DBL_MIN);
    /* Keep the lowest order; within it the most negative value relative to its allowance. */
    if (r->holds || k < r->order || (k == r->order && ratio < w->worst_ratio)) {
        r->holds = 0;
        r->condition = condition;
        r->order = k;
        r->x = w->g->x0 + (double)i * w->h;
        for (size_t j = 0; j < KAT_METRIC_MAX_ORDER; j++)
            r->steps[j] = j < k ? (double)w->steps[j] * w->h : 0.0;
        r->value = value;
        r->tol = tol;
        w->worst_ratio = ratio;
    }
}

/* Depth-first over non-decreasing step multiples: order k's difference is the order-(k-1)
 * one differenced once more, so each multiset costs one pass over the grid. */
static void walk(diff_walk *w, size_t k, size_t span, size_t first_step)
{
    size_t P = w->g->points;
    for (size_t m = first_step; m <= w->g->max_step && span + m <= P - 1; m++) {
        size_t len = P - span - m;   /* points where the stencil fits */
        const double *v = w->diff[k - 1], *l = w->loc[k - 1];
        double *nv = w->diff[k], *nl = w->loc[k];
        /* CM: (-1)^k Delta^k f >= 0; Bernstein: (-1)^(k-1) Delta^k f >= 0. */
        double sign = ((k & 1) != 0) != (w->bernstein != 0) ? -1.0 : 1.0;
        double allowance = ldexp((double)(k + 4) * DBL_EPSILON, (int)k);
        w->steps[k - 1] = m;
        for (size_t i = 0; i < len; i++) {
            nv[i] = v[i + m] - v[i];
            nl[i] = fmax(l[i], l[i + m]);
            double s = sign * nv[i], tol = allowance * nl[i];
            w->rep->checked++;
            if (s < -tol)
                note_violation(w, k, i, s, tol,
                               w->bernstein ? "(-1)^(k-1) differences >= 0"
                                            : "(-1)^k differences >= 0");
        }
        if (k < w->g->max_order)
            walk(w, k + 1, span + m, m);
    }
}

static kat_status difference_test(const kat_fn *f, const kat_metric_grid *g,
                                  kat_metric_report *rep, int bernstein, const char *who)
{
    if (!f || !g || !rep)
        return kat__fail(KAT_EINVAL, "%s: %s is NULL", who, !f ? "f" : !g ? "grid" : "rep");
    if (!isfinite(g->x0) || !isfinite(g->x1) || g->x0 < 0.0 || !(g->x1 > g->x0))
        return kat__fail(KAT_EINVAL, "%s: grid [x0, x1] = [%g, %g] must satisfy 0 <= x0 < x1", who,
                        g->x0, g->x1);
    if (g->max_order < 1 || g->max_order > KAT_METRIC_MAX_ORDER)
        return kat__fail(KAT_EINVAL, "%s: grid max_order = %zu must be in 1..%d", who,
                        g->max_order, KAT_METRIC_MAX_ORDER);
    if (g->max_step < 1)
        return kat__fail(KAT_EINVAL, "%s: grid max_step must be >= 1 (got 0)", who);
    if (g->points < g->max_order + 1 || g->points > ((size_t)1 << 26))
        return kat__fail(KAT_EINVAL,
                        "%s: grid points = %zu must be in max_order + 1 = %zu .. 2^26", who,
                        g->points, g->max_order + 1);
    if (bernstein && g->x0 != 0.0)
        return kat__fail(KAT_EINVAL, "%s: the Bernstein test needs the grid to start at x0 = 0 "
                                    "(got %g) to check f(0) = 0",
                        who, g->x0);
    size_t P = g->points, K = g->max_order;
    double *buf = kat__alloc_array(2 * (K + 1), P * sizeof(double), "difference table");
    if (!buf)
        return KAT_ENOMEM;
    double *diff[KAT_METRIC_MAX_ORDER + 1], *loc[KAT_METRIC_MAX_ORDER + 1];
    for (size_t k = 0; k <= K; k++) {
        diff[k] = buf + 2 * k * P;
        loc[k] = diff[k] + P;
    }
    double h = (g->x1 - g->x0) / (double)(P - 1);
    for (size_t i = 0; i < P; i++)
        diff[0][i] = g->x0 + (double)i * h;
    kat_fn_eval_unchecked(f, diff[0], diff[0], P);
    size_t bad = kat__first_nonfinite(diff[0], P);
    if (bad < P) {
        kat_status st = kat__fail(KAT_EDOM, "%s: f = %s is %g at grid point x = %.17g", who,
                                 kat_fn_name(f), diff[0][bad], g->x0 + (double)bad * h);
        kat_free(buf);
        return st;
    }
    kat_metric_report r;
    memset(&r, 0, sizeof r);
    r.holds = 1;
    r.condition = "";
    diff_walk w = {.g = g, .h = h, .bernstein = bernstein, .diff = diff, .loc = loc, .rep = &r};
    double fmaxabs = 0.0;
    for (size_t i = 0; i < P; i++) {
        loc[0][i] = fabs(diff[0][i]);
        fmaxabs = fmax(fmaxabs, loc[0][i]);
    }
    if (bernstein) {
        double tol0 = 4.0 * DBL_EPSILON * fmaxabs;
        r.checked++;
        if (fabs(diff[0][0]) > tol0)
            note_violation(&w, 0, 0, -fabs(diff[0][0]), tol0, "f(0) = 0");
    }
    for (size_t i = 0; i < P; i++) {
        r.checked++;
        if (diff[0][i] < 0.0)
            note_violation(&w, 0, i, diff[0][i], 0.0, "f >= 0");
    }
    walk(&w, 1, 0, 1);
    *rep = r;
    kat_free(buf);
    return KAT_OK;
}

kat_status kat_metric_cm_check(const kat_fn *f, const kat_metric_grid *grid, kat_metric_report *rep)
{
    return difference_test(f, grid, rep, 0, "metric_cm_check");
}

kat_status kat_metric_bernstein_check(const kat_fn *f, const kat_metric_grid *grid,
                                      kat_metric_report *rep)
{
    return difference_test(f, grid, rep, 1, "metric_bernstein_check");
}
