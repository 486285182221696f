/* The feature-map spec grammar (include/kat/featmaps.h): text such as "taylor:2" or
 * "favor:256:ortho" to a kat_featmap_spec, and a spec to a map. The kat command and every other
 * caller go through here, so one spelling means one map everywhere. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "core/internal.h"
#include "kat/featmaps.h"
#include "kat/group.h"

#define SPEC_LIST "taylor:P, taylorP, poly:EXPR, rff:M[:pair], rff-laplace:M[:pair], " \
                  "favor:M[:ortho][:stable], elu1, group[:R]"

enum { MAX_TAYLOR_ORDER = 1000000 };

/* A whole field of decimal digits [s, s + len): 0 and *out, or -1 when it is not one
 * (empty, a sign, another character), or -2 when it overflows size_t. */
static int parse_digits(const char *s, size_t len, size_t *out)
{
    if (len == 0)
        return -1;
    size_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        size_t digit = (size_t)(s[i] - '0');
        if (v > (SIZE_MAX - digit) / 10)
            return -2;
        v = 10 * v + digit;
    }
    *out = v;
    return 0;
}

static kat_status parse_order(const char *spec, const char *field, size_t len,
                              kat_featmap_spec *out)
{
    size_t P = 0;
    int r = parse_digits(field, len, &P);
    if (r == -1)
        return kat__fail(KAT_EPARSE, "map '%s': taylor needs an order P >= 0 (taylor:P or "
                        "taylorP), got '%.*s'", spec, (int)len, field);
    if (r == -2 || P > MAX_TAYLOR_ORDER)
        return kat__fail(KAT_EINVAL, "map '%s': the order P must be <= %d", spec,
                        MAX_TAYLOR_ORDER);
    out->order = (int)P;
    return KAT_OK;
}

/* The count M and the options of rff, rff-laplace and favor: rest = "M[:opt]...". */
static kat_status parse_random(const char *spec, const char *name, const char *rest,
                               kat_featmap_spec *out)
{
    if (!rest)
        return kat__fail(KAT_EPARSE, "map '%s': %s needs a feature count, e.g. %s:256", spec,
                        name, name);
    const char *colon = strchr(rest, ':');
    size_t len = colon ? (size_t)(colon - rest) : strlen(rest);
    int r = parse_digits(rest, len, &out->count);
    if (r == -1)
        return kat__fail(KAT_EPARSE, "map '%s': '%.*s' is not a feature count M", spec, (int)len,
                        rest);
    if (r == -2 || out->count > KAT_FEATMAP_MAX_DIM)
        return kat__fail(KAT_EINVAL, "map '%s': the feature count M must be <= %zu", spec,
                        KAT_FEATMAP_MAX_DIM);
    if (out->count == 0)
        return kat__fail(KAT_EINVAL, "map '%s': the feature count M must be >= 1", spec);
    while (colon) {
        const char *opt = colon + 1;
        colon = strchr(opt, ':');
        size_t olen = colon ? (size_t)(colon - opt) : strlen(opt);
#define OPT_IS(word) (olen == sizeof(word) - 1 && strncmp(opt, word, olen) == 0)
        if (out->kind == KAT_FEATMAP_KIND_FAVOR && OPT_IS("ortho"))
            out->favor_flags |= KAT_FAVOR_ORTHOGONAL;
        else if (out->kind == KAT_FEATMAP_KIND_FAVOR && OPT_IS("stable"))
            out->favor_flags |= KAT_FAVOR_STABLE;
        else if (out->kind != KAT_FEATMAP_KIND_FAVOR && OPT_IS("pair"))
            out->pair = 1;
        else
            return kat__fail(KAT_EPARSE, "map '%s': unknown option '%.*s' (expected %s)", spec,
                            (int)olen, opt,
                            out->kind == KAT_FEATMAP_KIND_FAVOR ? "ortho or stable" : "pair");
#undef OPT_IS
    }
    return KAT_OK;
}

kat_status kat_featmap_spec_parse(const char *spec, kat_featmap_spec *out)
{
    if (!spec || !out)
        return kat__fail(KAT_EINVAL, "featmap_spec_parse: %s is NULL", spec ? "out" : "spec");
    kat_featmap_spec s;
    memset(&s, 0, sizeof s);
    const char *colon = strchr(spec, ':');
    size_t head = colon ? (size_t)(colon - spec) : strlen(spec);
    const char *rest = colon ? colon + 1 : NULL;
#define HEAD_IS(word) (head == sizeof(word) - 1 && strncmp(spec, word, head) == 0)
    kat_status st = KAT_OK;
    if (HEAD_IS("taylor")) {
        s.kind = KAT_FEATMAP_KIND_TAYLOR;
        st = parse_order(spec, rest ? rest : "", rest ? strlen(rest) : 0, &s);
    } else if (head > 6 && strncmp(spec, "taylor", 6) == 0 && !rest) {
        s.kind = KAT_FEATMAP_KIND_TAYLOR;
        st = parse_order(spec, spec + 6, head - 6, &s);
    } else if (HEAD_IS("poly")) {
        s.kind = KAT_FEATMAP_KIND_POLY;
        if (!rest || !*rest)
            st = kat__fail(KAT_EPARSE, "map '%s': poly needs an expression in x, e.g. "
                          "poly:(1+x)^2", spec);
        else if (strlen(rest) > KAT_FEATMAP_SPEC_EXPR_MAX)
            st = kat__fail(KAT_EINVAL, "map '%.40s...': the expression is longer than %d bytes",
                          spec, KAT_FEATMAP_SPEC_EXPR_MAX);
        else
            strcpy(s.expr, rest);
    } else if (HEAD_IS("rff")) {
        s.kind = KAT_FEATMAP_KIND_RFF;
        st = parse_random(spec, "rff", rest, &s);
    } else if (HEAD_IS("rff-laplace")) {
        s.kind = KAT_FEATMAP_KIND_RFF_LAPLACE;
        st = parse_random(spec, "rff-laplace", rest, &s);
    } else if (HEAD_IS("favor")) {
        s.kind = KAT_FEATMAP_KIND_FAVOR;
        st = parse_random(spec, "favor", rest, &s);
    } else if (HEAD_IS("elu1")) {
        s.kind = KAT_FEATMAP_KIND_ELU1;
        if (rest)
            st = kat__fail(KAT_EPARSE, "map '%s': elu1 takes no argument", spec);
    } else if (HEAD_IS("group")) {
        s.kind = KAT_FEATMAP_KIND_GROUP;
        int r = rest ? parse_digits(rest, strlen(rest), &s.rank) : 0;
        if (r == -1)
            st = kat__fail(KAT_EPARSE, "map '%s': group:R needs a rank R >= 0, got '%s'", spec,
                          rest);
        else if (r == -2)
            st = kat__fail(KAT_EINVAL, "map '%s': the rank R is too large", spec);
    } else {
        st = kat__fail(KAT_EPARSE, "unknown map '%s' (%s)", spec, SPEC_LIST);
    }
#undef HEAD_IS
    if (!st)
        *out = s;
    return st;
}

double kat_featmap_spec_scale(const kat_featmap_spec *spec, size_t d)
{
    if (!spec)
        return 0.0;
    switch (spec->kind) {
    case KAT_FEATMAP_KIND_TAYLOR:
    case KAT_FEATMAP_KIND_FAVOR:
        return spec->scale != 0.0 ? spec->scale : d ? 1.0 / sqrt((double)d) : 1.0;
    case KAT_FEATMAP_KIND_RFF:
    case KAT_FEATMAP_KIND_RFF_LAPLACE:
        return spec->scale != 0.0 ? spec->scale : pow((double)(d ? d : 1), 0.25);
    default:
        return 0.0;
    }
}

const char *kat_featmap_kind_name(kat_featmap_kind kind)
{
    static const char *const names[] = {"taylor", "poly", "rff", "rff-laplace", "favor", "elu1",
                                        "group"};
    return (unsigned)kind < sizeof names / sizeof names[0] ? names[kind] : "unknown";
}

static kat_status group_create(const kat_featmap_spec *spec, size_t d, kat_featmap **out)
{
    kat_fn *own_f = NULL;
    double *own_a = NULL;
    kat_status st = KAT_OK;
    if (!spec->group_f)
        st = kat_fn_parse("exp(-x)", &own_f, NULL);
    if (!st && !spec->group_sides && d >= 1 && d <= KAT_GROUP_MAX_D) {
        if (!(own_a = kat__alloc_array(d, sizeof *own_a, "group map sides")))
            st = KAT_ENOMEM;
        for (size_t t = 0; own_a && t < d; t++)
            own_a[t] = 1.0;
    }
    static const double one = 1.0;   /* d out of range: the constructor refuses d first */
    const double *a = spec->group_sides ? spec->group_sides : own_a ? own_a : &one;
    if (!st)
        st = kat_group_featmap_create(spec->group_f ? spec->group_f : own_f, a, d, spec->rank,
                                      0u, out);
    kat_fn_destroy(own_f);
    kat_free(own_a);
    return st;
}

/* The map of spec without the normalisation. */
static kat_status base_create(const kat_featmap_spec *spec, size_t d, uint64_t seed,
                              kat_featmap **out)
{
    const double s = kat_featmap_spec_scale(spec, d);
    switch (spec->kind) {
    case KAT_FEATMAP_KIND_TAYLOR:
        return kat_featmap_taylor_create(d, spec->order, 1.0 / s, out);
    case KAT_FEATMAP_KIND_POLY: {
        kat_fn *f = NULL;
        kat_status st = kat_fn_parse(spec->expr, &f, NULL);
        if (!st)
            st = kat_featmap_poly_from_fn(f, d, out);
        kat_fn_destroy(f);
        return st;
    }
    case KAT_FEATMAP_KIND_RFF:
    case KAT_FEATMAP_KIND_RFF_LAPLACE:
        return kat_featmap_rff_create(spec->kind == KAT_FEATMAP_KIND_RFF ? KAT_RFF_GAUSSIAN
                                                                         : KAT_RFF_LAPLACE,
                                      spec->pair ? KAT_RFF_PAIR : KAT_RFF_PHASE, d, spec->count,
                                      s, seed, out);
    case KAT_FEATMAP_KIND_FAVOR:
        return kat_featmap_favor_create(d, spec->count, s, spec->favor_flags, seed, out);
    case KAT_FEATMAP_KIND_ELU1:
        return kat_featmap_elu1_create(d, out);
    case KAT_FEATMAP_KIND_GROUP:
        return group_create(spec, d, out);
    }
    return kat__fail(KAT_EINVAL, "featmap_spec_create: unknown kind %d", (int)spec->kind);
}

kat_status kat_featmap_spec_create(const kat_featmap_spec *spec, size_t d, uint64_t seed,
                                   kat_featmap **out)
{
    const char *who = "featmap_spec_create";
    if (!spec || !out)
        return kat__fail(KAT_EINVAL, "%s: %s is NULL", who, spec ? "out" : "spec");
    if (spec->scale != 0.0) {
        const int has_scale = kat_featmap_spec_scale(spec, 1) != 0.0;
        const char *what = spec->kind == KAT_FEATMAP_KIND_RFF ||
                                   spec->kind == KAT_FEATMAP_KIND_RFF_LAPLACE
                               ? "sigma"
                               : "s";
        if (!has_scale)
            return kat__fail(KAT_EINVAL, "%s: a %s map has no scale (got %g)", who,
                            kat_featmap_kind_name(spec->kind), spec->scale);
        if (!(spec->scale > 0.0) || !isfinite(spec->scale))
            return kat__fail(KAT_EINVAL, "%s: %s map: %s = %g must be > 0 and finite", who,
                            kat_featmap_kind_name(spec->kind), what, spec->scale);
    }
    kat_featmap *fm = NULL;
    kat_status st = base_create(spec, d, seed, &fm);
    if (st || !spec->norm) {
        if (!st)
            *out = fm;
        return st;
    }
    double radius = 1.0;
    unsigned claim = 0;
    if (spec->kind == KAT_FEATMAP_KIND_TAYLOR) {
        radius = sqrt(1.0 / kat_featmap_spec_scale(spec, d));
        if (spec->order == 1) {   /* 1 + s q.k with s q.k in [-1/2, 1/2]: >= 1/2 */
            radius *= sqrt(0.5);
            claim = KAT_FEATMAP_POSITIVE;
        }
    }
    return kat_featmap_token_norm_create(fm, 1, radius, claim, out);   /* owns fm */
}

kat_status kat_featmap_parse(const char *spec, size_t d, uint64_t seed, kat_featmap **out)
{
    kat_featmap_spec s;
    kat_status st = kat_featmap_spec_parse(spec, &s);
    return st ? st : kat_featmap_spec_create(&s, d, seed, out);
}

kat_status kat_featmap_spec_kernel(const kat_featmap_spec *spec, const kat_featmap *fm,
                                   const double *q, const double *k, double *out)
{
    const char *who = "featmap_spec_kernel";
    if (!spec || !fm || !q || !k || !out)
        return kat__fail(KAT_EINVAL, "%s: NULL argument", who);
    if (spec->norm)
        return kat__fail(KAT_ENOTSUP, "%s: the map normalises its tokens (norm = 1); its kernel "
                        "is one of the normalised tokens", who);
    if (spec->kind != KAT_FEATMAP_KIND_TAYLOR)
        return kat_featmap_score(fm, q, k, out);
    const size_t d = kat_featmap_in_dim(fm);
    double dot = 0.0;
    for (size_t j = 0; j < d; j++)
        dot += q[j] * k[j];
    *out = exp(kat_featmap_spec_scale(spec, d) * dot);
    return KAT_OK;
}
