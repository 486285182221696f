/* The sparse suites' handle on a sparse pattern: an attention plan (include/kat/attn.h) with
 * its per-call args, holding private copies of the keep lists and bucket ids so that a test
 * may free its own after creation. Creation runs kat_attn_plan_stats once, so a bad pattern
 * fails there with the error the forward would give. */
#ifndef KAT_TEST_SPARSE_PLAN_H
#define KAT_TEST_SPARSE_PLAN_H

#include <stdlib.h>
#include <string.h>
#include "kat/kat.h"

typedef struct {
    kat_attn_plan *plan;
    kat_attn_args args;
    kat_sparse_keep keeps[2];
    int32_t *buckets[2];
} sp_handle;

static inline void sp_handle_destroy(sp_handle *h)
{
    if (!h)
        return;
    kat_attn_plan_destroy(h->plan);
    for (int s = 0; s < 2; s++) {
        free((void *)h->keeps[s].offsets), free((void *)h->keeps[s].idx);
        free(h->buckets[s]);
    }
    free(h);
}

static inline const kat_sparse_keep *sp_keep_copy(const kat_sparse_keep *k, kat_sparse_keep *dst)
{
    if (!k)
        return NULL;
    size_t heads = k->B * k->H, n = k->offsets[heads];
    size_t *off = malloc((heads + 1) * sizeof *off);
    int32_t *idx = malloc((n ? n : 1) * sizeof *idx);
    memcpy(off, k->offsets, (heads + 1) * sizeof *off);
    memcpy(idx, k->idx, n * sizeof *idx);
    *dst = *k;
    dst->offsets = off, dst->idx = idx;
    return dst;
}

static inline int32_t *sp_buckets_copy(const int32_t *b, size_t n)
{
    int32_t *c = malloc((n ? n : 1) * sizeof *c);
    memcpy(c, b, n * sizeof *c);
    return c;
}

/* Plan for desc and pattern, check the args by a statistics pass, keep copies of their data. */
static inline kat_status sp_handle_create(const kat_attn_desc *desc, const kat_attn_pattern *pattern,
                                   const kat_attn_args *args, sp_handle **out)
{
    if (!out)
        return kat_attn_plan_create(desc, pattern, NULL);
    sp_handle *h = calloc(1, sizeof *h);
    kat_status st = kat_attn_plan_create(desc, pattern, &h->plan);
    kat_sparse_stats s;
    if (!st)
        st = kat_attn_plan_stats(h->plan, args, &s);
    if (st) {
        sp_handle_destroy(h);
        return st;
    }
    const kat_attn_desc *d = kat_attn_plan_desc(h->plan);
    if (args) {
        h->args = *args;
        h->args.q_keep = sp_keep_copy(args->q_keep, &h->keeps[0]);
        h->args.k_keep = sp_keep_copy(args->k_keep, &h->keeps[1]);
        if (args->q_buckets)
            h->args.q_buckets = h->buckets[0] = sp_buckets_copy(args->q_buckets, d->B * d->H * d->N);
        if (args->k_buckets)
            h->args.k_buckets = h->buckets[1] =
                sp_buckets_copy(args->k_buckets, d->B * d->H_kv * d->M);
    }
    *out = h;
    return KAT_OK;
}

static inline kat_status sp_qk(const kat_attn_desc *d, const kat_sparse_keep *q_keep,
                        const kat_sparse_keep *k_keep, sp_handle **out)
{
    kat_attn_pattern p = {.kind = KAT_ATTN_QKDROP};
    kat_attn_args a = {.q_keep = q_keep, .k_keep = k_keep};
    return sp_handle_create(d, &p, &a, out);
}

static inline kat_status sp_hash(const kat_attn_desc *d, size_t nb, const int32_t *q_buckets,
                          const int32_t *k_buckets, sp_handle **out)
{
    kat_attn_pattern p = {.kind = KAT_ATTN_HASH, .buckets = nb};
    kat_attn_args a = {.q_buckets = q_buckets, .k_buckets = k_buckets};
    return sp_handle_create(d, &p, &a, out);
}

/* A block mask fixed in the pattern: the plan copies it (the mask may be destroyed after). */
static inline kat_status sp_block(const kat_attn_desc *d, const kat_sparse_blockmask *mask,
                           sp_handle **out)
{
    kat_attn_pattern p = {.kind = KAT_ATTN_BLOCKMASK, .mask = mask};
    return sp_handle_create(d, &p, NULL, out);
}

static inline kat_status sp_forward(const sp_handle *h, const kat_tensor *q, const kat_tensor *k,
                             const kat_tensor *v, const kat_tensor *o, const kat_tensor *lse,
                             void *work)
{
    return kat_attn_forward(h ? h->plan : NULL, h ? &h->args : NULL, q, k, v, o, lse, work);
}

static inline kat_status sp_backward(const sp_handle *h, const kat_tensor *q, const kat_tensor *k,
                              const kat_tensor *v, const kat_tensor *o, const kat_tensor *lse,
                              const kat_tensor *dout, const kat_tensor *dq,
                              const kat_tensor *dk, const kat_tensor *dv, void *work)
{
    return kat_attn_backward(h ? h->plan : NULL, h ? &h->args : NULL, q, k, v, o, lse, dout, dq,
                             dk, dv, work);
}

static inline kat_status sp_stats(const sp_handle *h, kat_sparse_stats *out)
{
    return kat_attn_plan_stats(h ? h->plan : NULL, h ? &h->args : NULL, out);
}

static inline size_t sp_workspace(const sp_handle *h, kat_attn_pass pass)
{
    return kat_attn_workspace_size(h ? h->plan : NULL, pass);
}

#endif
