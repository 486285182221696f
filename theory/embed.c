/* Explicit embeddings of f(<a, b XOR c>) on the hyperrectangle's corners, read off the Walsh
 * spectrum. With g(x) = f(<a, x>) = 2^-d sum_S lambda_S chi_S(x) and [|S n x| odd] =
 * (1 - chi_S(x)) / 2:
 *   sum_{S != 0} (-lambda_S / 2^d)(1 - chi_S(b XOR c)) = g(b XOR c) - g(0),
 * which is ||q_b - q_c||_1 for the l1 points and ||p_b - p_c||^2 for the l2^2 points when every
 * lambda_S (S != 0) is <= 0, and equals g itself when g(0) = f(0) = 0. The Gram features
 * reproduce g(b XOR c) = 2^-d sum_S lambda_S chi_S(b) chi_S(c) when every lambda_S >= 0. */
#include <math.h>
#include <string.h>
#include "core/internal.h"
#include "kat/group.h"
#include "kat/metric.h"

static const char *const embed_names[KAT_EMBED_COUNT] = {"l1", "l2sq", "gram"};

kat_status kat_metric_embed_parse(const char *name, kat_embed_kind *out)
{
    if (!name || !out)
        return kat__fail(KAT_EINVAL, "metric_embed_parse: %s is NULL", name ? "out" : "name");
    for (int k = 0; k < KAT_EMBED_COUNT; k++)
        if (strcmp(name, embed_names[k]) == 0) {
            *out = (kat_embed_kind)k;
            return KAT_OK;
        }
    return kat__fail(KAT_EINVAL, "embedding '%s' is not one of l1, l2sq, gram", name);
}

kat_status kat_metric_embed_shape(kat_embed_kind kind, size_t d, size_t *rows, size_t *cols)
{
    static const char who[] = "metric_embed_shape";
    if ((unsigned)kind >= KAT_EMBED_COUNT)
        return kat__fail(KAT_EINVAL, "%s: kind = %d is not a kat_embed_kind", who, (int)kind);
    if (!rows || !cols)
        return kat__fail(KAT_EINVAL, "%s: %s is NULL", who, rows ? "cols" : "rows");
    if (d > KAT_GROUP_MAX_D)
        return kat__fail(KAT_ERANGE, "%s: d = %zu: 2^%zu corners do not fit in memory (kat "
                                    "supports d <= %d)",
                        who, d, d, KAT_GROUP_MAX_D);
    size_t n = (size_t)1 << d, c = kind == KAT_EMBED_GRAM ? n : n - 1, total;
    if (kat_mul3_overflow(n, c ? c : 1, sizeof(double), &total))
        return kat__fail(KAT_ERANGE, "%s: a 2^%zu x %zu embedding (%.3g GiB) does not fit in memory",
                        who, d, c, ldexp((double)n * (double)c, -27));
    *rows = n;
    *cols = c;
    return KAT_OK;
}

kat_status kat_metric_embed(kat_embed_kind kind, const kat_fn *f, const double *a, size_t d,
                            kat_dmat *P)
{
    static const char who[] = "metric_embed";
    size_t n, cols;
    kat_status st = kat_metric_embed_shape(kind, d, &n, &cols);
    if (st)
        return st;
    if ((st = kat_dmat_check(P, "P (embedding)", 0)))
        return st;
    if (P->rows != n || P->cols != cols)
        return kat__fail(KAT_EINVAL, "%s: P is %zu x %zu, expected 2^%zu x %zu = %zu x %zu", who,
                        P->rows, P->cols, d, cols, n, cols);
    double *g = kat__alloc_array(n, 2 * sizeof(double), "embedding spectrum");
    if (!g)
        return KAT_ENOMEM;
    double *lambda = g + n;
    if ((st = kat_group_hyperrect_values(f, a, d, g)) != KAT_OK)
        goto done;
    memcpy(lambda, g, n * sizeof(double));
    if ((st = kat_group_wht(lambda, d)) != KAT_OK)
        goto done;
    double tol = kat_group_spectrum_tol(g, d);
    const char *name = embed_names[kind];
    if (kind != KAT_EMBED_GRAM) {
        if (fabs(g[0]) > tol) {
            st = kat__fail(KAT_EDOM,
                          "%s: f(0) = %.6g must be 0 for the %s embedding (it would represent "
                          "f - f(0))",
                          who, g[0], name);
            goto done;
        }
        for (size_t S = 1; S < n; S++)
            if (lambda[S] > tol) {
                st = kat__fail(KAT_EDOM,
                              "%s: f = %s is not of negative type on this hyperrectangle: "
                              "lambda_S = %.6g > 0 at S = %#zx (tolerance %.3g); the %s "
                              "embedding needs lambda_S <= 0 for every S != 0 (Bernstein f "
                              "with f(0) = 0 qualify)",
                              who, kat_fn_name(f), lambda[S], S, tol, name);
                goto done;
            }
    } else {
        for (size_t S = 0; S < n; S++)
            if (lambda[S] < -tol) {
                st = kat__fail(KAT_EDOM,
                              "%s: f = %s is not positive definite on this hyperrectangle: "
                              "lambda_S = %.6g < 0 at S = %#zx (tolerance %.3g); Gram features "
                              "need every lambda_S >= 0 (completely monotone f qualify)",
                              who, kat_fn_name(f), lambda[S], S, tol);
                goto done;
            }
    }
    double inv = ldexp(1.0, -(int)d);
    for (size_t S = 0; S < n; S++) {
        /* Eigenvalues within rounding of the required sign count as zero. */
        double l = kind == KAT_EMBED_GRAM ? fmax(lambda[S], 0.0) : fmax(-lambda[S], 0.0);
        lambda[S] = kind == KAT_EMBED_L1 ? 2.0 * l * inv
                    : kind == KAT_EMBED_L2SQ ? sqrt(0.5 * l * inv)
                                             : sqrt(l * inv);
    }
    size_t first = kind == KAT_EMBED_GRAM ? 0 : 1;
    for (size_t b = 0; b < n; b++) {
        double *row = P->data + b * P->ld;
        for (size_t S = first; S < n; S++) {
            int odd = __builtin_parityll((unsigned long long)(S & b));
            row[S - first] = kind == KAT_EMBED_L1 ? (odd ? lambda[S] : 0.0)
                                                  : (odd ? -lambda[S] : lambda[S]);
        }
    }
done:
    kat_free(g);
    return st;
}
