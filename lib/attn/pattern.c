/* The pattern part of the spec grammar: "dense", "hash:16", "lsh:16:7", "window:512:4",
 * "qkdrop", "blockmask", "linear[:MAP]" (MAP is the feature-map parser's). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "attn/solver.h"
#include "core/internal.h"

/* One unsigned field of a spec; `what` names it in errors. */
static kat_status parse_count(const char *spec, const char *s, size_t len, const char *what,
                              unsigned long long *out)
{
    char buf[32];
    if (len == 0 || len >= sizeof buf)
        return kat__fail(KAT_EINVAL, "pattern '%s': %s is %s", spec, what,
                        len ? "too long" : "missing");
    memcpy(buf, s, len);
    buf[len] = '\0';
    char *end;
    errno = 0;
    unsigned long long v = strtoull(buf, &end, 10);
    if (*end || buf[0] == '-' || buf[0] == '+' || errno)
        return kat__fail(KAT_EINVAL, "pattern '%s': %s '%s' is not a non-negative integer", spec,
                        what, buf);
    *out = v;
    return KAT_OK;
}

kat_status kat_attn_pattern_parse(const char *spec, kat_attn_pattern *out)
{
    if (!spec)
        return kat__fail(KAT_EINVAL, "pattern spec is NULL");
    if (!out)
        return kat__fail(KAT_EINVAL, "pattern_parse: out is NULL");
    const char *colon = strchr(spec, ':');
    size_t nlen = colon ? (size_t)(colon - spec) : strlen(spec);
    int kind = -1;
    for (int k = 0; k < KAT_ATTN_KINDS; k++) {
        const char *name = kat_attn_kind_name((kat_attn_kind)k);
        if (strlen(name) == nlen && !strncmp(spec, name, nlen))
            kind = k;
    }
    if (kind < 0)
        return kat__fail(KAT_EINVAL, "pattern '%s': unknown kind; expected dense, hash:NB, "
                        "lsh:NB[:SEED], window:W[:G], qkdrop, blockmask or linear", spec);
    /* the numeric fields of each kind: names, and how many are required */
    static const struct {
        const char *f[2];
        int required;
    } fields[KAT_ATTN_KINDS] = {
        [KAT_ATTN_HASH] = {{"the bucket count NB", NULL}, 1},
        [KAT_ATTN_LSH] = {{"the bucket count NB", "the seed"}, 1},
        [KAT_ATTN_WINDOW] = {{"the window W", "the global tokens G"}, 1},
    };
    if (kind == KAT_ATTN_LINEAR) {
        /* the map's own grammar follows: hand it over untouched */
        if (colon && !colon[1])
            return kat__fail(KAT_EINVAL, "pattern '%s': the feature map after 'linear:' is "
                            "missing (e.g. linear:taylor2)", spec);
        kat_attn_pattern p = {.kind = KAT_ATTN_LINEAR, .map_spec = colon ? colon + 1 : NULL};
        *out = p;
        return KAT_OK;
    }
    unsigned long long v[2] = {0, 0};
    int n = 0;
    const char *s = colon ? colon + 1 : NULL;
    while (s) {
        if (n >= 2 || !fields[kind].f[n])
            return kat__fail(KAT_EINVAL, "pattern '%s': %s takes %s", spec,
                            kat_attn_kind_name((kat_attn_kind)kind),
                            fields[kind].f[0] ? "fewer fields" : "no fields");
        const char *next = strchr(s, ':');
        size_t len = next ? (size_t)(next - s) : strlen(s);
        kat_status st = parse_count(spec, s, len, fields[kind].f[n], &v[n]);
        if (st)
            return st;
        n++;
        s = next ? next + 1 : NULL;
    }
    if (n < fields[kind].required)
        return kat__fail(KAT_EINVAL, "pattern '%s': %s is missing (e.g. %s:16)", spec,
                        fields[kind].f[0], kat_attn_kind_name((kat_attn_kind)kind));
    kat_attn_pattern p = {0};
    p.kind = (kat_attn_kind)kind;
    if (kind == KAT_ATTN_HASH || kind == KAT_ATTN_LSH) {
        p.buckets = (size_t)v[0];
        p.seed = v[1];
    } else if (kind == KAT_ATTN_WINDOW) {
        p.window = (size_t)v[0];
        p.global = (size_t)v[1];
    }
    *out = p;
    return KAT_OK;
}
