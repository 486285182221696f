/* The attention front end: check a desc and a pattern, choose a solver from the table, size
 * and hand out the workspace, run a pass. Everything pattern-specific is in the solvers. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include "attn/attn_internal.h"
#include "attn/solver.h"
#include "core/internal.h"

static const char *const kind_names[KAT_ATTN_KINDS] = {
    "dense", "qkdrop", "hash", "lsh", "window", "blockmask", "linear",
};

const char *kat_attn_kind_name(kat_attn_kind kind)
{
    return (unsigned)kind < KAT_ATTN_KINDS ? kind_names[kind] : "";
}

kat_status kat__attn_args_unused(const kat_attn_args *a, const kat_attn_pattern *p)
{
    if (!a)
        return KAT_OK;
    struct {
        const void *ptr;
        const char *name;
        int used;
    } f[] = {
        {a->q_buckets, "q_buckets", p->kind == KAT_ATTN_HASH},
        {a->k_buckets, "k_buckets", p->kind == KAT_ATTN_HASH},
        {a->q_keep, "q_keep", p->kind == KAT_ATTN_QKDROP},
        {a->k_keep, "k_keep", p->kind == KAT_ATTN_QKDROP},
        {a->mask, "mask", p->kind == KAT_ATTN_BLOCKMASK && !p->mask},
        {a->state_in, "state_in", p->kind == KAT_ATTN_LINEAR},
        {a->state_out, "state_out", p->kind == KAT_ATTN_LINEAR},
        {a->d_state_in, "d_state_in", p->kind == KAT_ATTN_LINEAR},
        {a->index, "index", p->kind == KAT_ATTN_QKDROP || p->kind == KAT_ATTN_HASH ||
                                p->kind == KAT_ATTN_LSH || (p->kind == KAT_ATTN_BLOCKMASK && !p->mask)},
    };
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        if (f[i].ptr && !f[i].used)
            return kat__fail(KAT_EINVAL, "args->%s is set, but a plan of pattern %s%s does not "
                            "read it", f[i].name, kat_attn_kind_name(p->kind),
                            p->kind == KAT_ATTN_BLOCKMASK ? " with a fixed mask" : "");
    return KAT_OK;
}

kat_status kat__attn_softmax_check(const kat_attn_plan *plan, const kat_attn_args *args,
                                   const kat_attn_io *io, kat_attn_pass pass, int need_lse)
{
    kat_status st = kat__attn_args_unused(args, &plan->pattern);
    if (st)
        return st;
    if (pass == KAT_ATTN_FORWARD)
        return kat__attn_check_forward(&plan->d, io->q, io->k, io->v, io->o, io->lse);
    return kat__attn_check_backward(&plan->d, io->q, io->k, io->v, io->o, io->lse, io->dout,
                                    io->dq, io->dk, io->dv, 1, need_lse);
}

/* Resolve the desc; causal keeps the strict value of the sparse patterns. */
static kat_status resolve_desc(const kat_attn_desc *desc, kat_attn_desc *d)
{
    if (!desc)
        return kat__fail(KAT_EINVAL, "desc is NULL");
    if (desc->causal < 0 || desc->causal > KAT_SPARSE_CAUSAL_STRICT)
        return kat__fail(KAT_EINVAL, "desc->causal = %d: must be 0, 1 or 2 "
                        "(KAT_SPARSE_CAUSAL_STRICT, sparse patterns only)", desc->causal);
    kat_status st = kat_attn_desc_check(desc, d);
    if (st)
        return st;
    d->causal = desc->causal;
    return KAT_OK;
}

kat_status kat_attn_plan_create(const kat_attn_desc *desc, const kat_attn_pattern *pattern,
                                kat_attn_plan **out)
{
    if (!out)
        return kat__fail(KAT_EINVAL, "plan_create: out is NULL");
    static const kat_attn_pattern dense = {0};
    const kat_attn_pattern *pat = pattern ? pattern : &dense;
    if ((unsigned)pat->kind >= KAT_ATTN_KINDS)
        return kat__fail(KAT_EINVAL, "pattern->kind = %d is not a kat_attn_kind", (int)pat->kind);
    kat_attn_desc d;
    kat_status st = resolve_desc(desc, &d);
    if (st)
        return st;
    const kat_attn_solver *solver = NULL;
    char why[KAT_ATTN_WHY] = "";
    for (size_t i = 0; kat__attn_solvers[i] && !solver; i++)
        if (kat__attn_solvers[i]->supports(&d, pat, why[0] ? NULL : why))
            solver = kat__attn_solvers[i];
    if (!solver)
        return kat__fail(KAT_ENOTSUP, "no attention solver for pattern %s: %s",
                        kat_attn_kind_name(pat->kind), why[0] ? why : "none registered");
    kat_attn_plan *p = kat_calloc(1, sizeof *p);
    if (!p)
        return KAT_ENOMEM;
    p->d = d;
    p->pattern = *pat;
    p->solver = solver;
    if ((st = solver->create(p))) {
        kat_free(p);
        return st;
    }
    *out = p;
    return KAT_OK;
}

void kat_attn_plan_destroy(kat_attn_plan *plan)
{
    if (!plan)
        return;
    plan->solver->destroy(plan);
    kat_free(plan);
}

const kat_attn_desc *kat_attn_plan_desc(const kat_attn_plan *plan)
{
    return plan ? &plan->d : NULL;
}

const kat_attn_pattern *kat_attn_plan_pattern(const kat_attn_plan *plan)
{
    return plan ? &plan->pattern : NULL;
}

const char *kat_attn_plan_solver(const kat_attn_plan *plan)
{
    return plan ? plan->solver->name : "";
}

const char *kat_attn_plan_isa(const kat_attn_plan *plan)
{
    return plan ? plan->solver->isa(plan) : "";
}

int kat_attn_plan_threads(const kat_attn_plan *plan)
{
    return plan ? plan->solver->threads(plan) : 0;
}

size_t kat_attn_workspace_size(const kat_attn_plan *plan, kat_attn_pass pass)
{
    return plan ? plan->solver->workspace_size(plan, pass) : 0;
}

/* Check the call, then run it on the caller's workspace or a fresh one. */
static kat_status run(const kat_attn_plan *plan, const kat_attn_args *args,
                      const kat_attn_io *io, kat_attn_pass pass, void *work)
{
    if (!plan)
        return kat__fail(KAT_EINVAL, "plan is NULL");
    if (work && (uintptr_t)work % 64)
        return kat__fail(KAT_EINVAL, "work = %p is not 64-byte aligned", work);
    kat_status st = plan->solver->check(plan, args, io, pass);
    if (st)
        return st;
    void *owned = NULL;
    if (!work) {
        size_t bytes = plan->solver->workspace_size(plan, pass);
        if (!(owned = kat__alloc_array(bytes ? bytes : 1, 1, "attention workspace")))
            return KAT_ENOMEM;
        work = owned;
    }
    st = pass == KAT_ATTN_FORWARD ? plan->solver->forward(plan, args, io, work)
                                  : plan->solver->backward(plan, args, io, work);
    kat_free(owned);
    return st;
}

kat_status kat_attn_forward(const kat_attn_plan *plan, const kat_attn_args *args,
                            const kat_tensor *q, const kat_tensor *k, const kat_tensor *v,
                            const kat_tensor *o, const kat_tensor *lse, void *work)
{
    const kat_attn_io io = {q, k, v, o, lse, NULL, NULL, NULL, NULL};
    return run(plan, args, &io, KAT_ATTN_FORWARD, work);
}

kat_status kat_attn_backward(const kat_attn_plan *plan, const kat_attn_args *args,
                             const kat_tensor *q, const kat_tensor *k, const kat_tensor *v,
                             const kat_tensor *o, const kat_tensor *lse, const kat_tensor *dout,
                             const kat_tensor *dq, const kat_tensor *dk, const kat_tensor *dv,
                             void *work)
{
    const kat_attn_io io = {q, k, v, o, lse, dout, dq, dk, dv};
    return run(plan, args, &io, KAT_ATTN_BACKWARD, work);
}

kat_status kat_attn_index_create(const kat_attn_plan *plan, const kat_attn_args *args,
                                 const kat_tensor *q, const kat_tensor *k, kat_attn_index **out)
{
    if (!plan)
        return kat__fail(KAT_EINVAL, "plan is NULL");
    if (!out)
        return kat__fail(KAT_EINVAL, "index_create: out is NULL");
    if (!plan->solver->index_create)
        return kat__fail(KAT_EINVAL, "a plan of pattern %s (solver %s) has no per-call index",
                        kat_attn_kind_name(plan->pattern.kind), plan->solver->name);
    kat_status st = kat__attn_args_unused(args, &plan->pattern);
    if (st)
        return st;
    if (args && args->index)
        return kat__fail(KAT_EINVAL, "args->index is set: an index is built from the data alone");
    const kat_attn_io io = {q, k, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
    kat_attn_index *x = kat_calloc(1, sizeof *x);
    if (!x)
        return KAT_ENOMEM;
    x->plan = plan;
    if ((st = plan->solver->index_create(plan, args, &io, &x->impl))) {
        kat_free(x);
        return st;
    }
    *out = x;
    return KAT_OK;
}

void kat_attn_index_destroy(kat_attn_index *index)
{
    if (!index)
        return;
    index->plan->solver->index_destroy(index->impl);
    kat_free(index);
}

kat_status kat_attn_plan_stats(const kat_attn_plan *plan, const kat_attn_args *args,
                               kat_sparse_stats *out)
{
    if (!plan)
        return kat__fail(KAT_EINVAL, "plan is NULL");
    if (!out)
        return kat__fail(KAT_EINVAL, "stats: out is NULL");
    if (!plan->solver->stats)
        return kat__fail(KAT_ENOTSUP, "solver %s has no tile statistics (sparse solvers only)",
                        plan->solver->name);
    return plan->solver->stats(plan, args, out);
}

kat_status kat_attn_dense_forward(const kat_tensor *q, const kat_tensor *k,
                                  const kat_tensor *v, const kat_tensor *o,
                                  const kat_tensor *lse, int causal, double scale)
{
    kat_attn_desc d;
    kat_attn_plan *plan;
    kat_status st = kat_attn_desc_from_views(q, k, causal, scale, &d);
    if (st || (st = kat_attn_plan_create(&d, NULL, &plan)))
        return st;
    st = kat_attn_forward(plan, NULL, q, k, v, o, lse, NULL);
    kat_attn_plan_destroy(plan);
    return st;
}

kat_status kat_attn_dense_backward(const kat_tensor *q, const kat_tensor *k,
                                   const kat_tensor *v, const kat_tensor *o,
                                   const kat_tensor *lse, const kat_tensor *dout,
                                   const kat_tensor *dq, const kat_tensor *dk,
                                   const kat_tensor *dv, int causal, double scale)
{
    kat_attn_desc d;
    kat_attn_plan *plan;
    kat_status st = kat_attn_desc_from_views(q, k, causal, scale, &d);
    if (st || (st = kat_attn_plan_create(&d, NULL, &plan)))
        return st;
    st = kat_attn_backward(plan, NULL, q, k, v, o, lse, dout, dq, dk, dv, NULL);
    kat_attn_plan_destroy(plan);
    return st;
}
