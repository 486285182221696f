/* Attention plans: create, inspect, size the workspace, execute (forward and backward). */
#include <stdint.h>
#include "attn/attn_internal.h"
#include "attn/flash_plan.h"
#include "core/internal.h"

#define BQ KAT_FLASH_BQ
#define BK KAT_FLASH_BK

kat_status kat_attn_plan_create(const kat_attn_desc *desc, kat_attn_plan **out)
{
    if (!out)
        return kat_fail(KAT_EINVAL, "plan_create: out is NULL");
    kat_attn_desc d;
    kat_status st = kat_attn_desc_check(desc, &d);
    if (st)
        return st;
    kat_attn_plan *p = kat_calloc(1, sizeof *p);
    if (!p)
        return KAT_ENOMEM;
    p->d = d;
    kat_flash_ctx_init(&p->ctx, kat_kernels_get(), d.D, d.scale);
    p->threads = kat_num_threads();
    p->parallel = (double)d.B * (double)d.H * (double)d.N * (double)d.M * (double)d.D >=
                  KAT_FLASH_PARALLEL_MIN;
    p->g = d.H_kv ? d.H / d.H_kv : 1;
    p->tpn = (d.N + BQ - 1) / BQ;
    p->n_pad = p->tpn * BQ;
    p->nkt = (d.M + BK - 1) / BK;
    if ((st = kat_flash_forward_layout(p)) || (st = kat_flash_backward_layout(p))) {
        kat_free(p);
        return st;
    }
    *out = p;
    return KAT_OK;
}

void kat_attn_plan_destroy(kat_attn_plan *plan) { kat_free(plan); }

const kat_attn_desc *kat_attn_plan_desc(const kat_attn_plan *plan)
{
    return plan ? &plan->d : NULL;
}

const char *kat_attn_plan_isa(const kat_attn_plan *plan)
{
    return plan ? plan->ctx.kern->name : "";
}

int kat_attn_plan_threads(const kat_attn_plan *plan) { return plan ? plan->threads : 0; }

size_t kat_attn_workspace_size(const kat_attn_plan *plan, kat_attn_pass pass)
{
    if (!plan)
        return 0;
    return pass == KAT_ATTN_BACKWARD ? plan->bwd_bytes : plan->fwd_bytes;
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
    *owned = kat_alloc_array(bytes ? bytes : 1, 1, "attention workspace");
    if (!*owned)
        return KAT_ENOMEM;
    *mem = *owned;
    return KAT_OK;
}

kat_status kat_attn_forward(const kat_attn_plan *plan, const kat_tensor *q,
                            const kat_tensor *k, const kat_tensor *v, const kat_tensor *o,
                            const kat_tensor *lse, void *work)
{
    if (!plan)
        return kat_fail(KAT_EINVAL, "plan is NULL");
    kat_status st = kat_attn_check_forward(&plan->d, q, k, v, o, lse);
    if (st)
        return st;
    unsigned char *mem = NULL;
    void *owned;
    if ((st = get_work(work, plan->fwd_bytes, &mem, &owned)))
        return st;
    kat_flash_dense_forward(plan, q, k, v, o, lse, mem);
    kat_free(owned);
    return KAT_OK;
}

kat_status kat_attn_backward(const kat_attn_plan *plan, const kat_tensor *q,
                             const kat_tensor *k, const kat_tensor *v, const kat_tensor *o,
                             const kat_tensor *lse, const kat_tensor *dout,
                             const kat_tensor *dq, const kat_tensor *dk, const kat_tensor *dv,
                             void *work)
{
    if (!plan)
        return kat_fail(KAT_EINVAL, "plan is NULL");
    kat_status st = kat_attn_check_backward(&plan->d, q, k, v, o, lse, dout, dq, dk, dv, 1, 0);
    if (st)
        return st;
    unsigned char *mem = NULL;
    void *owned;
    if ((st = get_work(work, plan->bwd_bytes, &mem, &owned)))
        return st;
    kat_flash_dense_backward(plan, q, k, v, o, lse, dout, dq, dk, dv, mem);
    kat_free(owned);
    return KAT_OK;
}

kat_status kat_attn_dense_forward(const kat_tensor *q, const kat_tensor *k,
                                  const kat_tensor *v, const kat_tensor *o,
                                  const kat_tensor *lse, int causal, double scale)
{
    kat_attn_desc d;
    kat_attn_plan *plan;
    kat_status st = kat_attn_desc_from_views(q, k, causal, scale, &d);
    if (st || (st = kat_attn_plan_create(&d, &plan)))
        return st;
    st = kat_attn_forward(plan, q, k, v, o, lse, NULL);
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
    if (st || (st = kat_attn_plan_create(&d, &plan)))
        return st;
    st = kat_attn_backward(plan, q, k, v, o, lse, dout, dq, dk, dv, NULL);
    kat_attn_plan_destroy(plan);
    return st;
}
