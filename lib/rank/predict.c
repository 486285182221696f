/* What theory predicts: the Guillot-Khare-Rajaratnam count for polynomials of an inner
 * product, a count for polynomials of a squared distance, and the ranks they are stated in
 * (rank of QK^T, dimension of the affine hull of the points). */
#include <float.h>
#include <lapacke.h>
#include <limits.h>
#include <math.h>
#include <string.h>
#include "core/internal.h"
#include "core/runtime.h"
#include "rank/rank_internal.h"

size_t kat_rank_binomial(size_t n, size_t k)
{
    if (k > n)
        return 0;
    if (k > n - k)
        k = n - k;
    /* C(n-k+i, i) = C(n-k+i-1, i-1) * (n-k+i) / i is exact at every step, and grows with i,
     * so once it passes SIZE_MAX it stays there. 128-bit products cannot overflow. */
    unsigned __int128 c = 1;
    for (size_t i = 1; i <= k; i++) {
        c = c * (unsigned __int128)(n - k + i) / i;
        if (c > SIZE_MAX)
            return SIZE_MAX;
    }
    return (size_t)c;
}

static size_t sat_add(size_t a, size_t b)
{
    size_t s;
    return kat_add_overflow(a, b, &s) ? SIZE_MAX : s;
}

static size_t min3(size_t a, size_t b, size_t c)
{
    size_t m = a < b ? a : b;
    return m < c ? m : c;
}

kat_status kat_rank_predict(const kat_fn *f, kat_rank_form form, double s, size_t r, size_t n,
                            size_t m, size_t *out)
{
    const char *who = "rank_predict";
    if (!out)
        return kat__fail(KAT_EINVAL, "%s: out is NULL", who);
    if ((int)form < 0 || form >= KAT_RANK_FORM_COUNT)
        return kat__fail(KAT_EINVAL, "%s: form = %d is not inner, l2sq or l1", who, (int)form);
    if (!isfinite(s))
        return kat__fail(KAT_EINVAL, "%s: scale s = %g is not finite", who, s);
    int deg = f ? kat_fn_poly_degree(f) : 1;   /* NULL is the identity, x */
    if (deg < 0 || form == KAT_RANK_L1) {
        *out = KAT_RANK_NONE;
        return KAT_OK;
    }
    double *coef = kat__alloc_array((size_t)deg + 1, sizeof(double), "rank_predict: coefficients");
    if (!coef)
        return KAT_ENOMEM;
    if (f)
        kat_fn_poly_coeffs(f, coef, (size_t)deg + 1);
    else {
        coef[0] = 0.0;
        coef[1] = 1.0;
    }
    size_t count = 0;
    if (s == 0.0 || r == 0) {
        /* Every argument is 0 (s = 0, or QK^T = 0, or all points equal): M is f(0). */
        count = coef[0] != 0.0;
    } else if (form == KAT_RANK_INNER) {
        /* x^i of a rank-r matrix: symmetric i-tensors on R^r, dimension C(i + r - 1, r - 1). */
        for (size_t t = 0; t <= (size_t)deg; t++)
            if (coef[t] != 0.0)
                count = sat_add(count, kat_rank_binomial(sat_add(t, r - 1), r - 1));
    } else {
        /* l2sq, degree p. |q - k|^2 = |q|^2 + |k|^2 - 2<q, k>, so f(|q - k|^2) expands into
         * terms |q|^{2a} |k|^{2b} <q, k>^c with a + b + c <= p: as functions of k, |k|^{2b}
         * times a homogeneous polynomial of degree c, b + c <= p. Their homogeneous part of
         * degree D = 2b + c is every polynomial of degree D when D <= p (b = 0), and for
         * p < D <= 2p it is |k|^{2(D-p)} times every polynomial of degree 2p - D (b >= D - p,
         * and |k|^2 h for smaller b is already inside). Summing the dimensions,
         *   sum_{D<=p} C(D + r - 1, r - 1) + sum_{e<p} C(e + r - 1, r - 1)
         *   = C(p + r, r) + C(p - 1 + r, r),
         * with r the dimension the points span (affinely: translations leave M unchanged).
         * Generic points reach it (the tests check). A zero polynomial has degree 0. */
        size_t p = (size_t)deg;
        if (p == 0)
            count = coef[0] != 0.0;
        else
            count = sat_add(kat_rank_binomial(sat_add(p, r), r),
                            kat_rank_binomial(sat_add(p - 1, r), r));
    }
    kat_free(coef);
    *out = min3(n, m, count);
    return KAT_OK;
}

/* Column-major copy (rows x d) of a row-major view: what LAPACK's QR wants. */
static void to_colmajor(const kat_dmat *X, double *out, size_t ldo, size_t row0)
{
    for (size_t i = 0; i < X->rows; i++)
        for (size_t t = 0; t < X->cols; t++)
            out[t * ldo + row0 + i] = X->data[i * X->ld + t];
}

/* R (min(rows, d) x d, upper trapezoidal, column-major with ld ldr) of a QR of X. */
static kat_status qr_r(const kat_dmat *X, double *R, size_t ldr)
{
    size_t n = X->rows, d = X->cols, k = n < d ? n : d;
    double *a = kat__alloc_array(n * d, sizeof(double), "rank: QR copy");
    double *tau = kat__alloc_array(k ? k : 1, sizeof(double), "rank: QR tau");
    if (!a || !tau) {
        kat_free(a);
        kat_free(tau);
        return KAT_ENOMEM;
    }
    to_colmajor(X, a, n, 0);
    /* n < d: factor the n x n leading block; the rest of R is U^T times the other columns. */
    kat_status st = kat__blas_hold(0, 1, "rank");
    if (st) {
        kat_free(a);
        kat_free(tau);
        return st;
    }
    st = kat__rank_qr_inplace(n, k, a, n, tau, 0);
    if (!st && d > k) {
        size_t lwork = d + 64;
        double *work = kat__alloc_array(lwork, sizeof(double), "rank: QR apply workspace");
        if (!work)
            st = KAT_ENOMEM;
        else if (LAPACKE_dormqr_work(LAPACK_COL_MAJOR, 'L', 'T', (lapack_int)n,
                                     (lapack_int)(d - k), (lapack_int)k, a, (lapack_int)n, tau,
                                     a + k * n, (lapack_int)n, work, (lapack_int)lwork) != 0)
            st = kat__fail(KAT_ELAPACK, "rank: dormqr failed on a %zu x %zu matrix", n, d);
        kat_free(work);
    }
    kat__blas_release();
    if (!st)
        for (size_t j = 0; j < d; j++)
            for (size_t i = 0; i < k; i++)
                R[j * ldr + i] = i <= j ? a[j * n + i] : 0.0;
    kat_free(a);
    kat_free(tau);
    return st;
}

kat_status kat_rank_inner_rank(const kat_dmat *Q, const kat_dmat *K, size_t *r)
{
    const char *who = "rank_inner_rank";
    kat_status st = kat__rank_check_inputs(who, KAT_RANK_INNER, 1.0, Q, K, 1);
    if (st)
        return st;
    if (!r)
        return kat__fail(KAT_EINVAL, "%s: r is NULL", who);
    size_t n = Q->rows, m = K->rows, d = Q->cols;
    size_t kq = n < d ? n : d, kk = m < d ? m : d;
    if (kq == 0 || kk == 0) {
        *r = 0;
        return KAT_OK;
    }
    /* Q K^T = (U_Q R_Q)(U_K R_K)^T: same singular values as the small R_Q R_K^T. */
    double *rq = kat__alloc_array(kq * d, sizeof(double), "rank: R of Q");
    double *rk = kat__alloc_array(kk * d, sizeof(double), "rank: R of K");
    double *p = kat__alloc_array(kq * kk, sizeof(double), "rank: R_Q R_K^T");
    double *sv = kat__alloc_array(kq < kk ? kq : kk, sizeof(double), "rank: singular values");
    if (!rq || !rk || !p || !sv)
        st = KAT_ENOMEM;
    if (!st)
        st = qr_r(Q, rq, kq);
    if (!st)
        st = qr_r(K, rk, kk);
    if (!st) {
        /* p (kq x kk) = rq (kq x d) * rk^T (d x kk), column-major. */
        for (size_t j = 0; j < kk; j++)
            for (size_t i = 0; i < kq; i++) {
                double acc = 0.0;
                for (size_t t = 0; t < d; t++)
                    acc += rq[t * kq + i] * rk[t * kk + j];
                p[j * kq + i] = acc;
            }
        st = kat__rank_svd_values_inplace(kq, kk, p, kq, sv);
    }
    if (!st) {
        size_t mn = kq < kk ? kq : kk;
        *r = kat__rank_count_above(sv, mn, kat__rank_tolerance(sv[0], n, m, 0.0, 0.0));
    }
    kat_free(rq);
    kat_free(rk);
    kat_free(p);
    kat_free(sv);
    return st;
}

kat_status kat_rank_affine_dim(const kat_dmat *Q, const kat_dmat *K, size_t *r)
{
    const char *who = "rank_affine_dim";
    kat_status st = kat__rank_check_inputs(who, KAT_RANK_INNER, 1.0, Q, K, 1);
    if (st)
        return st;
    if (!r)
        return kat__fail(KAT_EINVAL, "%s: r is NULL", who);
    size_t n = Q->rows, m = K->rows, d = Q->cols, N;
    if (kat_add_overflow(n, m, &N))
        return kat__fail(KAT_ERANGE, "%s: n + m overflows", who);
    if (N <= 1) {
        *r = 0;
        return KAT_OK;
    }
    size_t Nd;
    if (kat_mul_overflow(N, d, &Nd))
        return kat__fail(KAT_ERANGE, "%s: (n + m) x d = %zu x %zu overflows", who, N, d);
    double *a = kat__alloc_array(Nd, sizeof(double), "rank: centred points");
    double *sv = kat__alloc_array(N < d ? N : d, sizeof(double), "rank: singular values");
    if (!a || !sv) {
        kat_free(a);
        kat_free(sv);
        return KAT_ENOMEM;
    }
    to_colmajor(Q, a, N, 0);
    to_colmajor(K, a, N, n);
    for (size_t t = 0; t < d; t++) {
        double *col = a + t * N;
        rank_sum acc = {0.0, 0.0};
        for (size_t i = 0; i < N; i++)
            rank_sum_add(&acc, col[i]);
        double mean = rank_sum_value(&acc) / (double)N;
        for (size_t i = 0; i < N; i++)
            col[i] -= mean;
    }
    st = kat__rank_svd_values_inplace(N, d, a, N, sv);
    if (!st) {
        size_t mn = N < d ? N : d;
        *r = kat__rank_count_above(sv, mn, kat__rank_tolerance(sv[0], N, d, 0.0, 0.0));
    }
    kat_free(a);
    kat_free(sv);
    return st;
}
