/* The part of every sparse solver that does not depend on its pattern: the plan's threads and
 * workspace, the checks of a call, and the running of a layout (fixed, or built per call from
 * the args). */
#include <stdint.h>
#include <stdio.h>
#include "attn/attn_internal.h"
#include "attn/sparse_solver.h"
#include "core/internal.h"

#define BQ KAT_FLASH_BQ
#define BK KAT_FLASH_BK

size_t kat_sparse_tile_q(void) { return BQ; }
size_t kat_sparse_tile_k(void) { return BK; }

int kat__sparse_solver_supports(const kat_attn_desc *d, const kat_attn_pattern *p, char *why)
{
    (void)d, (void)p, (void)why;
    return 1;
}

/* Gathered rows of every query and key row: the most a per-call layout can copy. */
static kat_status gather_bound(const kat_attn_desc *d, size_t *fwd, size_t *bwd)
{
    size_t gq, gk, gd, gv;
    if (kat_mul3_overflow(d->B * d->H, d->N, d->D * sizeof(float), &gq) ||
        kat_mul3_overflow(d->B * d->H_kv, d->M, d->D * sizeof(float), &gk) ||
        kat_mul3_overflow(d->B * d->H, d->N, d->Dv * sizeof(float), &gd) ||
        kat_mul3_overflow(d->B * d->H_kv, d->M, d->Dv * sizeof(float), &gv) ||
        gq > SIZE_MAX / 8 - 64 || gk > SIZE_MAX / 8 - 64 || gd > SIZE_MAX / 8 - 64 ||
        gv > SIZE_MAX / 8 - 64)
        return kat__fail(KAT_ERANGE, "sparse plan: the workspace size overflows");
    gq += 64, gk += 64, gd += 64, gv += 64;
    *fwd = gq + gk + gv;
    *bwd = gq + gd + gk + gv;
    return KAT_OK;
}

/* The bound of a per-call layout's workspace: thread scratch for as many query tiles per
 * group as an undropped sequence has (plus what the pattern adds), every row gathered. A
 * layout that needs more (a heavy head split over threads, whose partial dq sums live in the
 * workspace) gets its own from the call. */
static kat_status per_call_bound(sp_plan *sp, const kat_attn_desc *d, size_t extra_q_tiles)
{
    kat_sparse_layout *L;
    kat_status st = kat__sparse_layout_alloc(d, sp->threads, &L);
    if (st)
        return st;
    size_t g = d->H_kv ? d->H / d->H_kv : 1, fg = 0, bg = 0;
    L->max_touch = g * ((d->N + BQ - 1) / BQ + extra_q_tiles);
    size_t ftb = kat__sparse_fwd_thread_bytes(L), btb = kat__sparse_bwd_thread_bytes(L), a, b;
    kat__sparse_layout_destroy(L);
    if ((st = gather_bound(d, &fg, &bg)))
        return st;
    if (!btb || kat_mul_overflow((size_t)sp->threads, ftb, &a) ||
        kat_add_overflow(a, fg, &sp->fwd_bytes) ||
        kat_mul_overflow((size_t)sp->threads, btb, &b) || kat_add_overflow(b, bg, &sp->bwd_bytes))
        return kat__fail(KAT_ERANGE, "sparse plan: the workspace size overflows");
    return KAT_OK;
}

kat_status kat__sparse_solver_create(kat_attn_plan *plan, sp_build_fn fixed_build,
                                    sp_build_fn call_build, size_t extra_q_tiles)
{
    sp_plan *sp = kat_calloc(1, sizeof *sp);
    if (!sp)
        return KAT_ENOMEM;
    sp->threads = kat_num_threads();
    if (sp->threads < 1)
        sp->threads = 1;
    sp->isa = kat__kernels_get()->name;
    sp->build = call_build;
    kat_status st;
    if (fixed_build) {
        st = fixed_build(plan, NULL, NULL, sp->threads, &sp->fixed);
        if (!st) {
            sp->fwd_bytes = sp->fixed->fwd_bytes;
            sp->bwd_bytes = sp->fixed->bwd_bytes;
        }
    } else {
        st = per_call_bound(sp, &plan->d, extra_q_tiles);
    }
    if (st) {
        kat_free(sp);
        return st;
    }
    plan->impl = sp;
    return KAT_OK;
}

void kat__sparse_solver_destroy(kat_attn_plan *plan)
{
    sp_plan *sp = plan->impl;
    if (sp)
        kat__sparse_layout_destroy(sp->fixed);
    kat_free(sp);
}

size_t kat__sparse_solver_workspace(const kat_attn_plan *plan, kat_attn_pass pass)
{
    const sp_plan *sp = plan->impl;
    return pass == KAT_ATTN_BACKWARD ? sp->bwd_bytes : sp->fwd_bytes;
}

const char *kat__sparse_solver_isa(const kat_attn_plan *plan)
{
    return ((const sp_plan *)plan->impl)->isa;
}

int kat__sparse_solver_threads(const kat_attn_plan *plan)
{
    return ((const sp_plan *)plan->impl)->threads;
}

kat_status kat__sparse_solver_check(const kat_attn_plan *plan, const kat_attn_args *args,
                                   const kat_attn_io *io, kat_attn_pass pass)
{
    return kat__attn_softmax_check(plan, args, io, pass, 1);
}

/* The layout of this call: the plan's, the args' index, or built now into *owned. */
static kat_status call_layout(const kat_attn_plan *plan, const kat_attn_args *args,
                              const kat_attn_io *io, const kat_sparse_layout **L,
                              kat_sparse_layout **owned)
{
    const sp_plan *sp = plan->impl;
    *owned = NULL;
    if (sp->fixed) {
        *L = sp->fixed;
        return KAT_OK;
    }
    if (args && args->index) {
        if (args->index->plan != plan)
            return kat__fail(KAT_EINVAL, "args->index was built for another plan");
        *L = args->index->impl;
        return KAT_OK;
    }
    kat_status st = sp->build(plan, args, io, sp->threads, owned);
    *L = *owned;
    return st;
}

/* The call's workspace: the plan-sized one when the layout fits in it, else its own. */
static kat_status layout_work(size_t need, size_t have, unsigned char *work,
                              unsigned char **mem, void **extra)
{
    *extra = NULL;
    *mem = work;
    if (need <= have)
        return KAT_OK;
    *extra = kat__alloc_array(need, 1, "sparse attention workspace");
    if (!*extra)
        return KAT_ENOMEM;
    *mem = *extra;
    return KAT_OK;
}

/* One pass: the call's layout (the plan's, the index's or built now), its workspace, the run. */
static kat_status run_pass(const kat_attn_plan *plan, const kat_attn_args *args,
                           const kat_attn_io *io, unsigned char *work, int backward)
{
    const sp_plan *sp = plan->impl;
    const kat_sparse_layout *L = NULL;
    kat_sparse_layout *owned;
    unsigned char *mem;
    void *extra = NULL;
    kat_status st = call_layout(plan, args, io, &L, &owned);
    if (!st)
        st = layout_work(backward ? L->bwd_bytes : L->fwd_bytes,
                         backward ? sp->bwd_bytes : sp->fwd_bytes, work, &mem, &extra);
    if (!st && backward)
        kat__sparse_run_backward(L, io->q, io->k, io->v, io->o, io->lse, io->dout, io->dq,
                                 io->dk, io->dv, mem);
    else if (!st)
        kat__sparse_run_forward(L, io->q, io->k, io->v, io->o, io->lse, mem);
    kat_free(extra);
    kat__sparse_layout_destroy(owned);
    return st;
}

kat_status kat__sparse_solver_forward(const kat_attn_plan *plan, const kat_attn_args *args,
                                      const kat_attn_io *io, unsigned char *work)
{
    return run_pass(plan, args, io, work, 0);
}

kat_status kat__sparse_solver_backward(const kat_attn_plan *plan, const kat_attn_args *args,
                                       const kat_attn_io *io, unsigned char *work)
{
    return run_pass(plan, args, io, work, 1);
}

kat_status kat__sparse_solver_index_create(const kat_attn_plan *plan, const kat_attn_args *args,
                                          const kat_attn_io *io, void **impl)
{
    const sp_plan *sp = plan->impl;
    if (sp->fixed)
        return kat__fail(KAT_EINVAL, "a plan of pattern %s lays its pattern out once: it has no "
                        "per-call index", kat_attn_kind_name(plan->pattern.kind));
    kat_sparse_layout *L = NULL;
    kat_status st = sp->build(plan, args, io, sp->threads, &L);
    *impl = L;
    return st;
}

void kat__sparse_solver_index_destroy(void *impl) { kat__sparse_layout_destroy(impl); }

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

kat_status kat__sparse_layout_stats(const kat_sparse_layout *L, kat_sparse_stats *out)
{
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

kat_status kat__sparse_solver_stats(const kat_attn_plan *plan, const kat_attn_args *args,
                                   kat_sparse_stats *out)
{
    kat_status st = kat__attn_args_unused(args, &plan->pattern);
    if (st)
        return st;
    const kat_sparse_layout *L = NULL;
    kat_sparse_layout *owned;
    const kat_attn_io none = {0};
    if ((st = call_layout(plan, args, &none, &L, &owned)))
        return st;
    st = kat__sparse_layout_stats(L, out);
    kat__sparse_layout_destroy(owned);
    return st;
}
