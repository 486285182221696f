/* The public face of sparse layouts: argument checks, workspaces, statistics. */
#include <stdint.h>
#include "attn/attn_internal.h"
#include "attn/sparse_internal.h"
#include "core/internal.h"

#define BQ KAT_FLASH_BQ
#define BK KAT_FLASH_BK

size_t kat_sparse_tile_q(void) { return BQ; }
size_t kat_sparse_tile_k(void) { return BK; }

const kat_attn_desc *kat_sparse_layout_desc(const kat_sparse_layout *L) { return L ? &L->d : NULL; }

size_t kat_sparse_workspace_size(const kat_sparse_layout *L, kat_attn_pass pass)
{
    if (!L)
        return 0;
    return pass == KAT_ATTN_BACKWARD ? L->bwd_bytes : L->fwd_bytes;
}

/* Pairs the dense engine visits with the same shapes and causality. */
static size_t dense_pairs(const kat_attn_desc *d)
{
    size_t tpn = (d->N + BQ - 1) / BQ, nkt = (d->M + BK - 1) / BK, per_head = 0;
    if (!d->causal) {
        per_head = tpn * nkt;
    } else {
        for (size_t t = 0; t < tpn; t++) {
            size_t i0 = t * BQ, n = d->N - i0 < BQ ? d->N - i0 : BQ;
            int64_t lim = (int64_t)(i0 + n - 1) + (int64_t)d->M - (int64_t)d->N;
            size_t kend = lim < 0 ? 0 : ((size_t)lim + 1 < d->M ? (size_t)lim + 1 : d->M);
            per_head += (kend + BK - 1) / BK;
        }
    }
    return per_head * d->B * d->H;
}

kat_status kat_sparse_layout_stats(const kat_sparse_layout *L, kat_sparse_stats *out)
{
    if (!L)
        return kat_fail(KAT_EINVAL, "sparse stats: layout is NULL");
    if (!out)
        return kat_fail(KAT_EINVAL, "sparse stats: out is NULL");
    out->q_rows = L->qs.head_off[L->qs.heads];
    out->k_rows = L->ks.head_off[L->ks.heads];
    out->q_tiles = L->qs.ntiles;
    out->k_tiles = L->ks.ntiles;
    out->tile_pairs = L->npairs;
    out->masked_pairs = L->nmasked;
    out->pair_elements = L->pair_elements;
    out->dense_pairs = dense_pairs(&L->d);
    out->backward_units = L->nunits;
    return KAT_OK;
}

/* The caller's workspace, or a fresh one in *owned. */
static kat_status get_work(void *work, size_t bytes, unsigned char **mem, void **owned)
{
    *owned = NULL;
    if (work) {
        if ((uintptr_t)work % 64)
            return kat_fail(KAT_EINVAL, "work = %p is not 64-byte aligned", work);
        *mem = work;
        return KAT_OK;
    }
    *owned = kat_alloc_array(bytes ? bytes : 1, 1, "sparse attention workspace");
    if (!*owned)
        return KAT_ENOMEM;
    *mem = *owned;
    return KAT_OK;
}

kat_status kat_sparse_forward(const kat_sparse_layout *L, const kat_tensor *q,
                              const kat_tensor *k, const kat_tensor *v, const kat_tensor *o,
                              const kat_tensor *lse, void *work)
{
    if (!L)
        return kat_fail(KAT_EINVAL, "sparse forward: layout is NULL");
    kat_status st = kat_attn_check_forward(&L->d, q, k, v, o, lse);
    if (st)
        return st;
    unsigned char *mem = NULL;
    void *owned;
    if ((st = get_work(work, L->fwd_bytes, &mem, &owned)))
        return st;
    kat_sparse_run_forward(L, q, k, v, o, lse, mem);
    kat_free(owned);
    return KAT_OK;
}

kat_status kat_sparse_backward(const kat_sparse_layout *L, const kat_tensor *q,
                               const kat_tensor *k, const kat_tensor *v, const kat_tensor *o,
                               const kat_tensor *lse, const kat_tensor *dout,
                               const kat_tensor *dq, const kat_tensor *dk,
                               const kat_tensor *dv, void *work)
{
    if (!L)
        return kat_fail(KAT_EINVAL, "sparse backward: layout is NULL");
    kat_status st = kat_attn_check_backward(&L->d, q, k, v, o, lse, dout, dq, dk, dv, 1, 1);
    if (st)
        return st;
    unsigned char *mem = NULL;
    void *owned;
    if ((st = get_work(work, L->bwd_bytes, &mem, &owned)))
        return st;
    kat_sparse_run_backward(L, q, k, v, o, lse, dout, dq, dk, dv, mem);
    kat_free(owned);
    return KAT_OK;
}
