/* The dense flash solver: every (query, key) pair, causal or not (flash_forward.c,
 * flash_backward.c on the tiles of flash_tile.c). */
#include <stdio.h>
#include "attn/attn_internal.h"
#include "attn/flash_plan.h"
#include "attn/solver.h"
#include "core/internal.h"

#define BQ KAT_FLASH_BQ
#define BK KAT_FLASH_BK

kat_status kat__flash_plan_init(kat_flash_plan *p, const kat_attn_desc *d)
{
    p->d = *d;
    kat__flash_ctx_init(&p->ctx, kat__kernels_get(), d->D, d->Dv, d->scale);
    p->threads = kat_num_threads();
    p->parallel = (double)d->B * (double)d->H * (double)d->N * (double)d->M * (double)d->D >=
                  KAT_FLASH_PARALLEL_MIN;
    p->g = d->H_kv ? d->H / d->H_kv : 1;
    p->tpn = (d->N + BQ - 1) / BQ;
    p->n_pad = p->tpn * BQ;
    p->nkt = (d->M + BK - 1) / BK;
    kat_status st = kat__flash_forward_layout(p);
    return st ? st : kat__flash_backward_layout(p);
}

static int supports(const kat_attn_desc *d, const kat_attn_pattern *p, char *why)
{
    if (p->kind != KAT_ATTN_DENSE)
        return 0;
    if (d->causal == KAT_SPARSE_CAUSAL_STRICT) {
        if (why)
            snprintf(why, KAT_ATTN_WHY, "causal = %d (strict) is a sparse-pattern option; "
                     "dense attention takes 0 or 1", d->causal);
        return 0;
    }
    return 1;
}

static kat_status create(kat_attn_plan *plan)
{
    kat_flash_plan *p = kat_calloc(1, sizeof *p);
    if (!p)
        return KAT_ENOMEM;
    kat_status st = kat__flash_plan_init(p, &plan->d);
    if (st) {
        kat_free(p);
        return st;
    }
    plan->impl = p;
    return KAT_OK;
}

static void destroy(kat_attn_plan *plan) { kat_free(plan->impl); }

static size_t workspace_size(const kat_attn_plan *plan, kat_attn_pass pass)
{
    const kat_flash_plan *p = plan->impl;
    return pass == KAT_ATTN_BACKWARD ? p->bwd_bytes : p->fwd_bytes;
}

static kat_status check(const kat_attn_plan *plan, const kat_attn_args *args,
                        const kat_attn_io *io, kat_attn_pass pass)
{
    return kat__attn_softmax_check(plan, args, io, pass, 0);
}

static kat_status forward(const kat_attn_plan *plan, const kat_attn_args *args,
                          const kat_attn_io *io, unsigned char *work)
{
    (void)args;
    kat__flash_dense_forward(plan->impl, io->q, io->k, io->v, io->o, io->lse, work);
    return KAT_OK;
}

static kat_status backward(const kat_attn_plan *plan, const kat_attn_args *args,
                           const kat_attn_io *io, unsigned char *work)
{
    (void)args;
    kat__flash_dense_backward(plan->impl, io->q, io->k, io->v, io->o, io->lse, io->dout, io->dq,
                             io->dk, io->dv, work);
    return KAT_OK;
}

static const char *isa(const kat_attn_plan *plan)
{
    return ((const kat_flash_plan *)plan->impl)->ctx.kern->name;
}

static int threads(const kat_attn_plan *plan)
{
    return ((const kat_flash_plan *)plan->impl)->threads;
}

const kat_attn_solver kat__solver_flash = {
    .name = "flash", .supports = supports, .create = create, .destroy = destroy,
    .workspace_size = workspace_size, .check = check, .forward = forward,
    .backward = backward, .stats = NULL, .isa = isa, .threads = threads,
};
