/* Linear attention from a feature map (linear.c, linear_chunk.c, linear_backward.c): the
 * plan fixes the problem's shapes, threads and workspace, so that a call with a workspace
 * allocates nothing. */
#include <stdio.h>
#include "attn/linear_internal.h"
#include "attn/solver.h"
#include "core/internal.h"

typedef struct {
    kat_linear_opts opts;   /* the pattern's, causal from the desc */
    lin_problem shape;      /* the problem without tensors */
    lin_sched fwd, bwd;
    int threads;
} lin_plan;

static int supports(const kat_attn_desc *d, const kat_attn_pattern *p, char *why)
{
    if (p->kind != KAT_ATTN_LINEAR)
        return 0;
    const char *no = NULL;
    if (!p->map)
        no = "pattern->map (the feature map) is NULL";
    else if (d->H_kv != d->H)
        no = "linear attention needs H_kv = H (no grouped-query heads)";
    else if (d->causal == KAT_SPARSE_CAUSAL_STRICT)
        no = "causal = 2 (strict) is a sparse-pattern option";
    if (no && why)
        snprintf(why, KAT_ATTN_WHY, "%s", no);
    return !no;
}

static kat_status create(kat_attn_plan *plan)
{
    lin_plan *lp = kat_calloc(1, sizeof *lp);
    if (!lp)
        return KAT_ENOMEM;
    const kat_attn_desc *d = &plan->d;
    lp->opts = plan->pattern.linear;
    lp->opts.causal = d->causal;
    lp->threads = kat_num_threads();
    kat_status st = kat__lin_configure("linear plan", plan->pattern.map, &lp->opts, 1, d->B, d->H,
                                  d->N, d->M, d->D, d->D, d->Dv, &lp->shape);
    if (!st)
        st = kat__lin_schedule("linear plan", &lp->shape, 0, lp->threads, &lp->fwd);
    if (!st)
        st = kat__lin_schedule("linear plan", &lp->shape, 1, lp->threads, &lp->bwd);
    if (st) {
        kat_free(lp);
        return st;
    }
    plan->impl = lp;
    return KAT_OK;
}

static void destroy(kat_attn_plan *plan) { kat_free(plan->impl); }

static size_t workspace_size(const kat_attn_plan *plan, kat_attn_pass pass)
{
    const lin_plan *lp = plan->impl;
    return pass == KAT_ATTN_BACKWARD ? lp->bwd.bytes : lp->fwd.bytes;
}

/* The views of a call must have the plan's shapes (the engine's own checks compare them with
 * each other and the map only). */
static kat_status same_shape(const kat_attn_plan *plan, const lin_problem *p)
{
    const kat_attn_desc *d = &plan->d;
    if (p->B != d->B || p->H != d->H || p->nq != d->N || p->nk != d->M || p->dv != d->Dv)
        return kat__fail(KAT_EINVAL, "linear attention: the views give B = %zu, H = %zu, "
                        "N = %zu, M = %zu, D_v = %zu, but the plan was made for %zu, %zu, %zu, "
                        "%zu, %zu", p->B, p->H, p->nq, p->nk, p->dv, d->B, d->H, d->N, d->M,
                        d->Dv);
    return KAT_OK;
}

static kat_status check(const kat_attn_plan *plan, const kat_attn_args *args,
                        const kat_attn_io *io, kat_attn_pass pass)
{
    kat_status st = kat__attn_args_unused(args, &plan->pattern);
    if (st)
        return st;
    if (io->lse)
        return kat__fail(KAT_EINVAL, "lse: linear attention has no logsumexp (pass NULL)");
    const lin_plan *lp = plan->impl;
    static const kat_attn_args none = {0};
    const kat_attn_args *a = args ? args : &none;
    lin_problem p;
    if (pass == KAT_ATTN_FORWARD)
        st = kat__lin_check_forward("linear attention", plan->pattern.map, &lp->opts, io->q, io->k,
                               io->v, io->o, a->state_in, a->state_out, &p);
    else
        st = kat__lin_check_backward("linear attention backward", plan->pattern.map, &lp->opts,
                                io->q, io->k, io->v, io->o, io->dout, io->dq, io->dk, io->dv,
                                a->state_in, a->d_state_in, &p);
    return st ? st : same_shape(plan, &p);
}

/* The checked problem of a call: the plan's shape with the call's views. */
static lin_problem call_problem(const kat_attn_plan *plan, const kat_attn_args *args,
                                const kat_attn_io *io)
{
    const lin_plan *lp = plan->impl;
    lin_problem p = lp->shape;
    p.q = io->q, p.k = io->k, p.v = io->v, p.o = io->o;
    p.state_in = args ? args->state_in : NULL;
    p.o_in = io->o, p.d_o = io->dout, p.dq = io->dq, p.dk = io->dk, p.dvt = io->dv;
    return p;
}

static kat_status forward(const kat_attn_plan *plan, const kat_attn_args *args,
                          const kat_attn_io *io, unsigned char *work)
{
    const lin_plan *lp = plan->impl;
    lin_problem p = call_problem(plan, args, io);
    return kat__lin_forward_run(&p, &lp->fwd, args ? args->state_out : NULL, work);
}

static kat_status backward(const kat_attn_plan *plan, const kat_attn_args *args,
                           const kat_attn_io *io, unsigned char *work)
{
    const lin_plan *lp = plan->impl;
    lin_problem p = call_problem(plan, args, io);
    return kat__lin_backward_run(&p, &lp->bwd, args ? args->d_state_in : NULL, work);
}

static const char *isa(const kat_attn_plan *plan)
{
    return ((const lin_plan *)plan->impl)->shape.kern->name;
}

static int threads(const kat_attn_plan *plan) { return ((const lin_plan *)plan->impl)->threads; }

const kat_attn_solver kat__solver_linear = {
    .name = "linear", .supports = supports, .create = create, .destroy = destroy,
    .workspace_size = workspace_size, .check = check, .forward = forward,
    .backward = backward, .stats = NULL, .isa = isa, .threads = threads,
};
