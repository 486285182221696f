/* Seeded point sets for kernel matrices: Gaussian, uniform, sphere, and the corners and grids
 * on which the metric-transform theorems are stated. */
#include <math.h>
#include <string.h>
#include "core/internal.h"
#include "rank/rank_internal.h"

static const char *const dist_names[KAT_RANK_DIST_COUNT] = {"gauss", "uniform", "sphere",
                                                            "hypercube", "rect", "grid"};

const char *kat_rank_dist_name(kat_rank_dist dist)
{
    return (int)dist >= 0 && dist < KAT_RANK_DIST_COUNT ? dist_names[dist] : NULL;
}

kat_status kat_rank_dist_parse(const char *name, kat_rank_dist *out)
{
    if (!name || !out)
        return kat__fail(KAT_EINVAL, "rank_dist_parse: %s is NULL", name ? "out" : "name");
    for (int k = 0; k < KAT_RANK_DIST_COUNT; k++)
        if (strcmp(name, dist_names[k]) == 0) {
            *out = (kat_rank_dist)k;
            return KAT_OK;
        }
    return kat__fail(KAT_EINVAL,
                    "unknown distribution '%s' (expected gauss, uniform, sphere, hypercube, "
                    "rect or grid)",
                    name);
}

void kat_rank_points_opts_init(kat_rank_points_opts *o)
{
    if (!o)
        return;
    memset(o, 0, sizeof *o);
    o->dist = KAT_RANK_DIST_GAUSS;
    o->bound = 1.0;
    o->levels = 3;
}

/* Points per axis of a discrete set (0 for the continuous ones). */
static size_t axis_levels(const kat_rank_points_opts *o)
{
    switch (o->dist) {
    case KAT_RANK_DIST_HYPERCUBE:
    case KAT_RANK_DIST_RECT:
        return 2;
    case KAT_RANK_DIST_GRID:
        return o->levels;
    default:
        return 0;
    }
}

/* Coordinate t's value for level v of a discrete set. */
static double level_value(const kat_rank_points_opts *o, size_t t, size_t v)
{
    switch (o->dist) {
    case KAT_RANK_DIST_HYPERCUBE:
        return o->pm1 ? (v ? 1.0 : -1.0) : (double)v;
    case KAT_RANK_DIST_RECT:
        return v ? o->sides[t] : 0.0;
    default:
        return (double)v;
    }
}

static kat_status check_opts(const kat_rank_points_opts *o, size_t n, size_t d)
{
    const char *who = "rank_points";
    switch (o->dist) {
    case KAT_RANK_DIST_GAUSS:
        if (!(o->sigma >= 0.0) || !isfinite(o->sigma))
            return kat__fail(KAT_EINVAL, "%s: sigma = %g must be finite and >= 0", who, o->sigma);
        break;
    case KAT_RANK_DIST_UNIFORM:
        if (!(o->bound > 0.0) || !isfinite(o->bound))
            return kat__fail(KAT_EINVAL, "%s: bound = %g must be finite and > 0", who, o->bound);
        break;
    case KAT_RANK_DIST_SPHERE:
    case KAT_RANK_DIST_HYPERCUBE:
        break;
    case KAT_RANK_DIST_RECT:
        if (!o->sides)
            return kat__fail(KAT_EINVAL, "%s: rect needs sides (got NULL)", who);
        if (o->nsides != d)
            return kat__fail(KAT_EINVAL, "%s: rect has nsides = %zu sides but d = %zu", who,
                            o->nsides, d);
        for (size_t t = 0; t < d; t++)
            if (!isfinite(o->sides[t]))
                return kat__fail(KAT_EINVAL, "%s: sides[%zu] = %g is not finite", who, t,
                                o->sides[t]);
        break;
    case KAT_RANK_DIST_GRID:
        if (o->levels == 0)
            return kat__fail(KAT_EINVAL, "%s: grid needs levels >= 1 (got 0)", who);
        break;
    default:
        return kat__fail(KAT_EINVAL, "%s: dist = %d is not a known distribution", who,
                        (int)o->dist);
    }
    if (o->enumerate) {
        size_t L = axis_levels(o);
        if (L == 0)
            return kat__fail(KAT_EINVAL, "%s: enumerate needs hypercube, rect or grid, not %s",
                            who, kat_rank_dist_name(o->dist));
        /* L^d, saturating: the set must have at least n points. */
        size_t count = 1;
        for (size_t t = 0; t < d && count < n; t++)
            if (kat_mul_overflow(count, L, &count))
                count = (size_t)-1;
        if (count < n)
            return kat__fail(KAT_EINVAL, "%s: enumerate asks for n = %zu points but %s has only "
                            "%zu in d = %zu",
                            who, n, kat_rank_dist_name(o->dist), count, d);
    }
    return KAT_OK;
}

kat_status kat_rank_points(const kat_rank_points_opts *o, kat_rng *rng, kat_dmat *X)
{
    const char *who = "rank_points";
    if (!o)
        return kat__fail(KAT_EINVAL, "%s: opts is NULL", who);
    kat_status st = kat_dmat_check(X, "rank_points: X", 0);
    if (st)
        return st;
    size_t n = X->rows, d = X->cols;
    if (d == 0)
        return kat__fail(KAT_EINVAL, "%s: X needs d >= 1 columns (got 0)", who);
    if ((st = check_opts(o, n, d)))
        return st;
    if (!rng && !o->enumerate)
        return kat__fail(KAT_EINVAL, "%s: rng is NULL", who);
    for (size_t i = 0; i < n; i++) {
        double *x = X->data + i * X->ld;
        switch (o->dist) {
        case KAT_RANK_DIST_GAUSS: {
            double sigma = o->sigma > 0.0 ? o->sigma : 1.0 / sqrt((double)d);
            for (size_t t = 0; t < d; t++)
                x[t] = kat_rng_gaussian(rng, sigma);
            break;
        }
        case KAT_RANK_DIST_UNIFORM:
            for (size_t t = 0; t < d; t++)
                x[t] = o->bound * (2.0 * kat_rng_uniform(rng) - 1.0);
            break;
        case KAT_RANK_DIST_SPHERE: {
            double norm2;
            do {   /* a Gaussian direction, normalised; redraw the (measure-zero) origin */
                norm2 = 0.0;
                for (size_t t = 0; t < d; t++) {
                    x[t] = kat_rng_gaussian(rng, 1.0);
                    norm2 += x[t] * x[t];
                }
            } while (norm2 == 0.0);
            double inv = 1.0 / sqrt(norm2);
            for (size_t t = 0; t < d; t++)
                x[t] *= inv;
            break;
        }
        default: {   /* discrete sets: random levels, or the i-th point in lexicographic order */
            size_t L = axis_levels(o);
            if (o->enumerate) {
                size_t rest = i;
                for (size_t t = d; t-- > 0;) {
                    x[t] = level_value(o, t, rest % L);
                    rest /= L;
                }
            } else {
                for (size_t t = 0; t < d; t++)
                    x[t] = level_value(o, t, (size_t)kat_rng_uint(rng, L));
            }
            break;
        }
        }
    }
    return KAT_OK;
}
