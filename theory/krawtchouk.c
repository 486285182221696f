/* The hypercube {0,1}^d: the spectrum of [f(|b XOR c|)] through Krawtchouk polynomials.
 *
 * For |S| = j, lambda_S = sum_T (-1)^{|S n T|} f(|T|) = sum_k f(k) K_k(j), where K_k(j) sums the
 * signs over the C(d, k) sets of size k. K_k(j) grows like C(d, k), so we carry the normalised
 * k_k(j) = K_k(j) / C(d, k), which lies in [-1, 1], and multiply by the binomial only once. From
 * (k + 1) K_{k+1} = (d - 2j) K_k - (d - k + 1) K_{k-1} and C(d, k+1) = C(d, k) (d - k) / (k + 1):
 *     (d - k) k_{k+1}(j) = (d - 2j) k_k(j) - k k_{k-1}(j). */
#include <gsl/gsl_sf_gamma.h>
#include <math.h>
#include "core/internal.h"
#include "kat/group.h"

/* k_k(j) for k = 0..d into col[0..d]. The forward recurrence in k is stable only up to the
 * middle: beyond it the wanted solution is the recessive one and the error grows like 2^k, so
 * the upper half comes from the reflection K_{d-k}(j) = (-1)^j K_k(j) instead. */
static void krawtchouk_column(size_t d, size_t j, double *col)
{
    double c = (double)d - 2.0 * (double)j;
    size_t half = d / 2;
    col[0] = 1.0;
    if (half >= 1)
        col[1] = c / (double)d;
    for (size_t k = 1; k < half; k++)
        col[k + 1] = (c * col[k] - (double)k * col[k - 1]) / (double)(d - k);
    for (size_t k = half + 1; k <= d; k++)
        col[k] = (j & 1) ? -col[d - k] : col[d - k];
}

static kat_status check_cube_d(size_t d, const char *who)
{
    if (d > KAT_GROUP_MAX_CUBE_D)
        return kat__fail(KAT_ERANGE,
                        "%s: d = %zu is too large: the multiplicity C(d, d/2) overflows a double "
                        "beyond d = %d",
                        who, d, KAT_GROUP_MAX_CUBE_D);
    return KAT_OK;
}

kat_status kat_group_krawtchouk_table(size_t d, double *out)
{
    kat_status st = check_cube_d(d, "group_krawtchouk_table");
    if (st)
        return st;
    if (!out)
        return kat__fail(KAT_EINVAL, "group_krawtchouk_table: out is NULL");
    double *col = kat__alloc_array(d + 1, sizeof(double), "Krawtchouk column");
    if (!col)
        return KAT_ENOMEM;
    for (size_t j = 0; j <= d; j++) {
        krawtchouk_column(d, j, col);
        for (size_t k = 0; k <= d; k++)
            out[k * (d + 1) + j] = col[k];
    }
    kat_free(col);
    return KAT_OK;
}

kat_status kat_group_hypercube_spectrum(const kat_fn *f, size_t d, double *lambda, double *mult)
{
    static const char who[] = "group_hypercube_spectrum";
    kat_status st = check_cube_d(d, who);
    if (st)
        return st;
    if (!f || !lambda)
        return kat__fail(KAT_EINVAL, "%s: %s is NULL", who, f ? "lambda" : "f");
    /* w[k] = f(k) C(d, k): the weight of the distance-k shell. */
    double *w = kat__alloc_array(3 * (d + 1), sizeof(double), "hypercube weights");
    if (!w)
        return KAT_ENOMEM;
    double *res = w + d + 1, *col = res + d + 1;
    for (size_t k = 0; k <= d; k++)
        w[k] = (double)k;
    kat_fn_eval_unchecked(f, w, w, d + 1);
    size_t bad = kat__first_nonfinite(w, d + 1);
    if (bad <= d) {
        st = kat__fail(KAT_EDOM, "%s: f = %s is %g at distance %zu", who, kat_fn_name(f), w[bad],
                      bad);
        goto done;
    }
    for (size_t k = 0; k <= d; k++)
        w[k] *= gsl_sf_choose((unsigned)d, (unsigned)k);
    for (size_t j = 0; j <= d; j++) {
        krawtchouk_column(d, j, col);
        double s = 0.0;
        for (size_t k = 0; k <= d; k++)
            s += w[k] * col[k];
        if (!isfinite(s)) {
            st = kat__fail(KAT_ERANGE, "%s: lambda_%zu overflows a double (d = %zu, f = %s)", who,
                          j, d, kat_fn_name(f));
            goto done;
        }
        res[j] = s;
    }
    for (size_t j = 0; j <= d; j++) {
        lambda[j] = res[j];
        if (mult)
            mult[j] = gsl_sf_choose((unsigned)d, (unsigned)j);
    }
done:
    kat_free(w);
    return st;
}
