/* Singular spectra (LAPACK dgesdd, no vectors) and the rank measures computed from them. */
#include <float.h>
#include <lapacke.h>
#include <limits.h>
#include <math.h>
#include <string.h>
#include "core/internal.h"
#include "core/runtime.h"
#include "rank/rank_internal.h"

kat_status kat__rank_svd_values_inplace(size_t rows, size_t cols, double *a, size_t lda, double *sv)
{
    size_t mn = rows < cols ? rows : cols;
    if (mn == 0)
        return KAT_OK;
    if (rows > INT_MAX || cols > INT_MAX || lda > INT_MAX)
        return kat__fail(KAT_ERANGE, "svd: a %zu x %zu matrix is above LAPACK's limit %d", rows,
                        cols, INT_MAX);
    lapack_int m = (lapack_int)rows, n = (lapack_int)cols, ld = (lapack_int)lda;
    double query = 0.0, dummy = 0.0;
    lapack_int *iwork = kat__alloc_array(8 * mn, sizeof(lapack_int), "svd: integer workspace");
    if (!iwork)
        return KAT_ENOMEM;
    /* LAPACK's bits depend on the BLAS thread count: the enclosing hold's or kat's. */
    kat_status hs = kat__blas_hold(0, 1, "svd");
    if (hs) {
        kat_free(iwork);
        return hs;
    }
    /* The _work interface in column-major order: no transposed copy inside LAPACKE. */
    lapack_int info = LAPACKE_dgesdd_work(LAPACK_COL_MAJOR, 'N', m, n, a, ld, sv, &dummy, 1,
                                          &dummy, 1, &query, -1, iwork);
    double *work = NULL;
    if (info == 0) {
        size_t lwork = (size_t)query + 1;
        work = kat__alloc_array(lwork, sizeof(double), "svd: workspace");
        if (!work) {
            kat__blas_release();
            kat_free(iwork);
            return KAT_ENOMEM;
        }
        info = LAPACKE_dgesdd_work(LAPACK_COL_MAJOR, 'N', m, n, a, ld, sv, &dummy, 1, &dummy, 1,
                                   work, (lapack_int)lwork, iwork);
    }
    kat__blas_release();
    kat_free(work);
    kat_free(iwork);
    if (info > 0)
        return kat__fail(KAT_ELAPACK, "svd: dgesdd did not converge on a %zu x %zu matrix "
                        "(info = %d)", rows, cols, (int)info);
    if (info < 0)
        return kat__fail(KAT_ELAPACK, "svd: dgesdd rejected argument %d", (int)-info);
    size_t k = rows < cols ? rows : cols;
    if (k && !isfinite(sv[0]))
        return kat__fail(KAT_ERANGE, "svd: the largest singular value of the %zu x %zu matrix "
                        "overflows double (entries too close to DBL_MAX)", rows, cols);
    return KAT_OK;
}

kat_status kat__rank_qr_inplace(size_t rows, size_t cols, double *a, size_t lda, double *tau,
                           int form_q)
{
    if (cols == 0)
        return KAT_OK;
    if (rows > INT_MAX || cols > INT_MAX || lda > INT_MAX)
        return kat__fail(KAT_ERANGE, "qr: a %zu x %zu matrix is above LAPACK's limit %d", rows,
                        cols, INT_MAX);
    lapack_int m = (lapack_int)rows, n = (lapack_int)cols, ld = (lapack_int)lda;
    double q1 = 0.0, q2 = 0.0;
    kat_status hs = kat__blas_hold(0, 1, "qr");
    if (hs)
        return hs;
    lapack_int info = LAPACKE_dgeqrf_work(LAPACK_COL_MAJOR, m, n, a, ld, tau, &q1, -1);
    if (info == 0 && form_q)
        info = LAPACKE_dorgqr_work(LAPACK_COL_MAJOR, m, n, n, a, ld, tau, &q2, -1);
    if (info != 0) {
        kat__blas_release();
        return kat__fail(KAT_ELAPACK, "qr: workspace query failed (info = %d)", (int)info);
    }
    size_t lwork = (size_t)(q1 > q2 ? q1 : q2) + 1;
    double *work = kat__alloc_array(lwork, sizeof(double), "qr: workspace");
    if (!work) {
        kat__blas_release();
        return KAT_ENOMEM;
    }
    info = LAPACKE_dgeqrf_work(LAPACK_COL_MAJOR, m, n, a, ld, tau, work, (lapack_int)lwork);
    if (info == 0 && form_q)
        info = LAPACKE_dorgqr_work(LAPACK_COL_MAJOR, m, n, n, a, ld, tau, work,
                                   (lapack_int)lwork);
    kat__blas_release();
    kat_free(work);
    if (info != 0)
        return kat__fail(KAT_ELAPACK, "qr: LAPACK failed on a %zu x %zu matrix (info = %d)", rows,
                        cols, (int)info);
    return KAT_OK;
}

kat_status kat_rank_spectrum(const kat_dmat *M, double *sv, size_t nsv)
{
    kat_status st = kat_dmat_check(M, "rank_spectrum: M", 0);
    if (st)
        return st;
    size_t mn = M->rows < M->cols ? M->rows : M->cols;
    if (mn == 0)
        return KAT_OK;
    if (!sv)
        return kat__fail(KAT_EINVAL, "rank_spectrum: sv is NULL");
    if (nsv < mn)
        return kat__fail(KAT_EINVAL, "rank_spectrum: nsv = %zu is less than min(%zu, %zu) = %zu",
                        nsv, M->rows, M->cols, mn);
    size_t count;
    if (kat_mul_overflow(M->rows, M->cols, &count) || count > SIZE_MAX / sizeof(double))
        return kat__fail(KAT_ERANGE, "rank_spectrum: a %zu x %zu matrix overflows size_t",
                        M->rows, M->cols);
    if ((st = kat__rank_mem_check((double)count * sizeof(double), "rank_spectrum: the copy of M",
                             "")))
        return st;
    if ((st = kat_dmat_check(M, "rank_spectrum: M", 1)))
        return st;
    /* Row-major rows x cols is column-major cols x rows: the transpose, same singular values. */
    double *a = kat__alloc_array(count, sizeof(double), "rank_spectrum: copy of M");
    double *s = kat__alloc_array(mn, sizeof(double), "rank_spectrum: singular values");
    if (!a || !s) {
        kat_free(a);
        kat_free(s);
        return KAT_ENOMEM;
    }
    for (size_t i = 0; i < M->rows; i++)
        memcpy(a + i * M->cols, M->data + i * M->ld, M->cols * sizeof(double));
    st = kat__rank_svd_values_inplace(M->cols, M->rows, a, M->cols, s);
    if (!st)
        memcpy(sv, s, mn * sizeof(double));
    kat_free(a);
    kat_free(s);
    return st;
}

/* ---- measures ------------------------------------------------------------------------ */

static kat_status check_sv(const char *who, const double *sv, size_t k)
{
    if (k && !sv)
        return kat__fail(KAT_EINVAL, "%s: sv is NULL", who);
    for (size_t i = 0; i < k; i++) {
        if (!isfinite(sv[i]))
            return kat__fail(KAT_EDOM, "%s: sv[%zu] is %g", who, i, sv[i]);
        if (sv[i] < 0.0)
            return kat__fail(KAT_EINVAL, "%s: sv[%zu] = %g is negative", who, i, sv[i]);
        if (i && sv[i] > sv[i - 1])
            return kat__fail(KAT_EINVAL, "%s: sv is not in descending order (sv[%zu] = %g > "
                            "sv[%zu] = %g)", who, i, sv[i], i - 1, sv[i - 1]);
    }
    return KAT_OK;
}

double kat__rank_tolerance(double sigma1, size_t rows, size_t cols, double rtol, double atol)
{
    if (rtol > 0.0 || atol > 0.0) {
        double r = rtol * sigma1;
        return atol > r ? atol : r;
    }
    return sigma1 * ((double)(rows > cols ? rows : cols) * DBL_EPSILON);   /* no overflow */
}

size_t kat__rank_count_above(const double *sv, size_t k, double tol)
{
    size_t r = 0;
    while (r < k && sv[r] > tol)
        r++;
    return r;
}

kat_status kat_rank_numerical(const double *sv, size_t k, size_t rows, size_t cols, double rtol,
                              double atol, size_t *rank, double *tol)
{
    const char *who = "rank_numerical";
    if (!rank)
        return kat__fail(KAT_EINVAL, "%s: rank is NULL", who);
    if (!(rtol >= 0.0) || !isfinite(rtol))
        return kat__fail(KAT_EINVAL, "%s: rtol = %g must be finite and >= 0", who, rtol);
    if (!(atol >= 0.0) || !isfinite(atol))
        return kat__fail(KAT_EINVAL, "%s: atol = %g must be finite and >= 0", who, atol);
    size_t mn = rows < cols ? rows : cols;
    if (k > mn)
        return kat__fail(KAT_EINVAL, "%s: k = %zu singular values for a %zu x %zu matrix", who, k,
                        rows, cols);
    kat_status st = check_sv(who, sv, k);
    if (st)
        return st;
    double t = kat__rank_tolerance(k ? sv[0] : 0.0, rows, cols, rtol, atol);
    *rank = kat__rank_count_above(sv, k, t);
    if (tol)
        *tol = t;
    return KAT_OK;
}

static kat_status check_eps(const char *who, double eps, const void *out)
{
    if (!out)
        return kat__fail(KAT_EINVAL, "%s: rank is NULL", who);
    if (!(eps >= 0.0) || !isfinite(eps))
        return kat__fail(KAT_EINVAL, "%s: eps = %g must be finite and >= 0", who, eps);
    return KAT_OK;
}

kat_status kat_rank_eps_spectral(const double *sv, size_t k, double eps, size_t *rank)
{
    kat_status st = check_eps("rank_eps_spectral", eps, rank);
    if (!st)
        st = check_sv("rank_eps_spectral", sv, k);
    if (st)
        return st;
    /* least r with sv[r] <= eps * sv[0]: the count of values above the threshold */
    *rank = k ? kat__rank_count_above(sv, k, eps * sv[0]) : 0;
    return KAT_OK;
}

double kat__rank_pow2_above(double x)
{
    if (!(x > 0.0) || !isfinite(x))
        return 1.0;
    int e;
    frexp(x, &e);   /* x < 2^e */
    /* 2^1024 is not a double (x / 2^1023 < 2 will do), and below 2^-1022 the reciprocal
     * overflows (subnormal x / 2^-1022 < 1 will do) */
    return ldexp(1.0, e > 1023 ? 1023 : e < -1022 ? -1022 : e);
}

size_t kat__rank_eps_frobenius_tail(const double *sv, size_t k, double unit, double tail_sq,
                               double fro_sq, double eps)
{
    double target = eps * eps * fro_sq, inv = 1.0 / unit;
    if (tail_sq > target)
        return KAT_RANK_NONE;
    /* Walk r down from k while the tail beyond r - 1 still fits: sums run smallest first. */
    double tail = tail_sq;
    size_t r = k;
    while (r > 0) {
        double x = sv[r - 1] * inv;
        double next = tail + x * x;
        if (next > target)
            break;
        tail = next;
        r--;
    }
    return r;
}

kat_status kat_rank_eps_frobenius(const double *sv, size_t k, double eps, size_t *rank)
{
    kat_status st = check_eps("rank_eps_frobenius", eps, rank);
    if (!st)
        st = check_sv("rank_eps_frobenius", sv, k);
    if (st)
        return st;
    /* in units of a power of two above sigma_1: no overflow, no underflow of the large terms */
    double unit = k ? kat__rank_pow2_above(sv[0]) : 1.0, inv = 1.0 / unit;
    rank_sum fro = {0.0, 0.0};
    for (size_t i = k; i-- > 0;)
        rank_sum_add(&fro, (sv[i] * inv) * (sv[i] * inv));
    *rank = kat__rank_eps_frobenius_tail(sv, k, unit, 0.0, rank_sum_value(&fro), eps);
    return KAT_OK;
}

kat_status kat_rank_stable(const double *sv, size_t k, double *out)
{
    if (!out)
        return kat__fail(KAT_EINVAL, "rank_stable: out is NULL");
    kat_status st = check_sv("rank_stable", sv, k);
    if (st)
        return st;
    if (k == 0 || sv[0] == 0.0) {
        *out = 0.0;
        return KAT_OK;
    }
    /* Scale by sv[0] first so squares of tiny or huge values neither underflow nor overflow. */
    rank_sum acc = {0.0, 0.0};
    for (size_t i = k; i-- > 0;) {
        double r = sv[i] / sv[0];
        rank_sum_add(&acc, r * r);
    }
    *out = rank_sum_value(&acc);
    return KAT_OK;
}

kat_status kat_rank_effective(const double *sv, size_t k, double *out)
{
    if (!out)
        return kat__fail(KAT_EINVAL, "rank_effective: out is NULL");
    kat_status st = check_sv("rank_effective", sv, k);
    if (st)
        return st;
    if (k == 0 || sv[0] == 0.0) {
        *out = 0.0;
        return KAT_OK;
    }
    rank_sum total = {0.0, 0.0};
    for (size_t i = k; i-- > 0;)
        rank_sum_add(&total, sv[i] / sv[0]);
    double sum = rank_sum_value(&total);
    rank_sum h = {0.0, 0.0};
    for (size_t i = k; i-- > 0;) {
        double p = sv[i] / sv[0] / sum;
        if (p > 0.0)
            rank_sum_add(&h, -p * log(p));
    }
    *out = exp(rank_sum_value(&h));
    return KAT_OK;
}
