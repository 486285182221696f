/* Feature maps from the characters of Z_2^d: f(<a, b XOR c>) on the hyperrectangle's corners
 * is sum_S (lambda_S / 2^d) chi_S(b) chi_S(c), so sqrt(|lambda_S| / 2^d) chi_S is a feature and
 * keeping the largest |lambda_S| is the best low-rank truncation (the chi_S are orthogonal). */
#include <float.h>
#include <math.h>
#include <string.h>
#include "core/internal.h"
#include "kat/group.h"

typedef struct {
    size_t d, n, rank;
    double *a;       /* sides, d values */
    double *g;       /* g[T] = f(<a, T>): the exact kernel, for score() */
    size_t *sets;    /* the kept characters S, rank values, by decreasing |lambda_S| */
    double *coef;    /* sqrt(|lambda_S| / 2^d) */
    double *sign;    /* sign(lambda_S): the key side's factor */
} group_map;

static void group_map_free(void *p)
{
    group_map *m = p;
    if (!m)
        return;
    kat_free(m->a);
    kat_free(m->g);
    kat_free(m->sets);
    kat_free(m->coef);
    kat_free(m->sign);
    kat_free(m);
}

/* Corner bits of a point: coordinate t must be 0 or a_t up to fp32 rounding. */
static kat_status decode(const group_map *m, size_t row, double x, size_t t, size_t *bits)
{
    double at = m->a[t], slack = 16.0 * FLT_EPSILON * at;
    if (fabs(x - at) <= slack)
        *bits |= (size_t)1 << t;
    else if (!(fabs(x) <= slack))
        return kat__fail(KAT_EDOM,
                        "group feature map: row %zu, coordinate %zu is %g, not a corner "
                        "coordinate (0 or a_%zu = %g)",
                        row, t, x, t, at);
    return KAT_OK;
}

static void features(const group_map *m, kat_side side, size_t b, double *out)
{
    for (size_t r = 0; r < m->rank; r++) {
        double v = __builtin_parityll((unsigned long long)(m->sets[r] & b)) ? -m->coef[r]
                                                                            : m->coef[r];
        out[r] = side == KAT_SIDE_KEY ? v * m->sign[r] : v;
    }
}

static kat_status group_apply(const void *state, kat_side side, size_t n, const double *x,
                              size_t ldx, double *f, size_t ldf)
{
    const group_map *m = state;
    for (size_t i = 0; i < n; i++) {
        size_t b = 0;
        for (size_t t = 0; t < m->d; t++) {
            kat_status st = decode(m, i, x[i * ldx + t], t, &b);
            if (st)
                return st;
        }
        features(m, side, b, f + i * ldf);
    }
    return KAT_OK;
}

static kat_status group_apply_f32(const void *state, kat_side side, size_t n, const float *x,
                                  size_t ldx, float *f, size_t ldf)
{
    const group_map *m = state;
    for (size_t i = 0; i < n; i++) {
        size_t b = 0;
        for (size_t t = 0; t < m->d; t++) {
            kat_status st = decode(m, i, (double)x[i * ldx + t], t, &b);
            if (st)
                return st;
        }
        float *fi = f + i * ldf;
        for (size_t r = 0; r < m->rank; r++) {
            double v = __builtin_parityll((unsigned long long)(m->sets[r] & b)) ? -m->coef[r]
                                                                                : m->coef[r];
            fi[r] = (float)(side == KAT_SIDE_KEY ? v * m->sign[r] : v);
        }
    }
    return KAT_OK;
}

/* Nearest corner without failing (score has no status): bit t set when x_t > a_t / 2. */
static size_t nearest_corner(const group_map *m, const double *x)
{
    size_t b = 0;
    for (size_t t = 0; t < m->d; t++)
        if (x[t] > 0.5 * m->a[t])
            b |= (size_t)1 << t;
    return b;
}

static double group_score(const void *state, const double *q, const double *k)
{
    const group_map *m = state;
    return m->g[nearest_corner(m, q) ^ nearest_corner(m, k)];
}

static const kat_featmap_ops group_ops = {
    .name = "group",
    .apply = group_apply,
    .apply_f32 = group_apply_f32,
    .score = group_score,
    .destroy = group_map_free,
};

/* Whether character X comes before Y: larger |lambda| first, then smaller S. */
static int comes_before(size_t X, size_t Y, const double *lambda)
{
    double x = fabs(lambda[X]), y = fabs(lambda[Y]);
    return x != y ? x > y : X < Y;
}

/* Restore the heap below root (the root holds the element that comes last). */
static void sift_down(size_t *sets, size_t root, size_t end, const double *lambda)
{
    size_t child;
    while ((child = 2 * root + 1) < end) {
        if (child + 1 < end && comes_before(sets[child], sets[child + 1], lambda))
            child++;
        if (!comes_before(sets[root], sets[child], lambda))
            return;
        size_t tmp = sets[root];
        sets[root] = sets[child];
        sets[child] = tmp;
        root = child;
    }
}

/* Heap sort by (|lambda| descending, S ascending): deterministic, allocation-free, and
 * reentrant (qsort would need the values in a file-static). */
static void sort_sets(size_t *sets, size_t n, const double *lambda)
{
    for (size_t i = n / 2; i-- > 0;)
        sift_down(sets, i, n, lambda);
    for (size_t end = n; end-- > 1;) {
        size_t tmp = sets[0];
        sets[0] = sets[end];
        sets[end] = tmp;
        sift_down(sets, 0, end, lambda);
    }
}

kat_status kat_group_featmap_create(const kat_fn *f, const double *a, size_t d, size_t rank,
                                    unsigned options, kat_featmap **out)
{
    static const char who[] = "group_featmap_create";
    if (!out)
        return kat__fail(KAT_EINVAL, "%s: out is NULL", who);
    if (d == 0)
        return kat__fail(KAT_EINVAL, "%s: d must be >= 1 (got 0)", who);
    if (d > KAT_GROUP_MAX_D)
        return kat__fail(KAT_ERANGE, "%s: d = %zu needs 2^%zu characters; kat supports d <= %d",
                        who, d, d, KAT_GROUP_MAX_D);
    size_t n = (size_t)1 << d;
    if (rank > n)
        return kat__fail(KAT_EINVAL, "%s: rank = %zu exceeds the 2^%zu = %zu characters", who, rank,
                        d, n);
    group_map *m = kat_calloc(1, sizeof *m);
    double *lambda = NULL;
    kat_status st = KAT_ENOMEM;
    if (!m)
        return KAT_ENOMEM;
    m->d = d;
    m->n = n;
    if (!(m->a = kat__alloc_array(d, sizeof(double), "group map sides")) ||
        !(m->g = kat__alloc_array(n, sizeof(double), "group map kernel values")) ||
        !(lambda = kat__alloc_array(n, sizeof(double), "group map spectrum")) ||
        !(m->sets = kat__alloc_array(n, sizeof(size_t), "group map characters")))
        goto fail;
    if ((st = kat_group_hyperrect_values(f, a, d, m->g)))
        goto fail;
    memcpy(m->a, a, d * sizeof(double));
    memcpy(lambda, m->g, n * sizeof(double));
    if ((st = kat_group_wht(lambda, d)))
        goto fail;
    double tol = kat_group_spectrum_tol(m->g, d);
    size_t nonzero = 0;
    for (size_t S = 0; S < n; S++) {
        if ((options & KAT_GROUP_MAP_REQUIRE_PSD) && lambda[S] < -tol) {
            st = kat__fail(KAT_EDOM,
                          "%s: f = %s is not positive definite on this hyperrectangle: "
                          "lambda_S = %.6g < 0 at S = %#zx (tolerance %.3g); a symmetric "
                          "(Gram) map needs every lambda_S >= 0",
                          who, kat_fn_name(f), lambda[S], S, tol);
            goto fail;
        }
        m->sets[S] = S;
        nonzero += fabs(lambda[S]) > tol;
    }
    sort_sets(m->sets, n, lambda);
    m->rank = rank ? rank : (nonzero ? nonzero : 1);
    if (!(m->coef = kat__alloc_array(m->rank, sizeof(double), "group map weights")) ||
        !(m->sign = kat__alloc_array(m->rank, sizeof(double), "group map signs"))) {
        st = KAT_ENOMEM;
        goto fail;
    }
    double scale = ldexp(1.0, -(int)d);
    for (size_t r = 0; r < m->rank; r++) {
        double l = lambda[m->sets[r]];
        m->coef[r] = sqrt(fabs(l) * scale);
        m->sign[r] = l < 0.0 ? -1.0 : 1.0;
    }
    unsigned flags = 0;
    if (m->rank >= nonzero) {
        flags |= KAT_FEATMAP_EXACT;
        /* Positive only with a margin above the product's rounding error, about
         * (2^d + d + 1) eps sum_T |g_T| (sum_S |lambda_S| / 2^d <= sum_T |g_T|). */
        double gmin = m->g[0], gsum = 0.0;
        for (size_t T = 0; T < n; T++) {
            gmin = m->g[T] < gmin ? m->g[T] : gmin;
            gsum += fabs(m->g[T]);
        }
        if (gmin > (double)(n + d + 1) * DBL_EPSILON * gsum)
            flags |= KAT_FEATMAP_POSITIVE;
    }
    kat_free(lambda);
    return kat_featmap_create(&group_ops, m, d, m->rank, flags, out);
fail:
    kat_free(lambda);
    group_map_free(m);
    return st;
}
