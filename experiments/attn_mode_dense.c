/* The dense mode of `kat attn` and `kat bench attn`: the exact flash engine. --precise makes
 * the backward recompute the softmax statistics instead of using the fp32 logsumexp. */
#include <string.h>
#include "attn_cli.h"

/* The dense mode has no --params: anything given there (or a flag of another mode) is refused
 * rather than ignored. */
static kat_status no_params(const attn_opts *o, const char *where)
{
    if (!attn_params_check(o, "dense", where, ""))
        return KAT_OK;
    kat_clear_error();
    return KAT_EINVAL;
}

kat_status attn_dense_run(const attn_opts *o, attn_tensors *t, int grad)
{
    kat_status st = no_params(o, "kat attn");
    if (st)
        return st;
    kat_attn_plan *plan;
    if ((st = kat_attn_plan_create(&t->desc, NULL, &plan)))
        return st;
    st = grad ? kat_attn_backward(plan, NULL, &t->q, &t->k, &t->v, &t->o,
                                  o->precise ? NULL : &t->lse, &t->dout, &t->dq, &t->dk, &t->dv,
                                  NULL)
              : kat_attn_forward(plan, NULL, &t->q, &t->k, &t->v, &t->o, &t->lse, NULL);
    kat_attn_plan_destroy(plan);
    return st;
}

typedef struct {
    kat_attn_plan *plan;
    attn_tensors *t;
    void *work;
    int backward, precise;
} dense_call;

static kat_status dense_once(void *ctx)
{
    dense_call *c = ctx;
    attn_tensors *t = c->t;
    if (!c->backward)
        return kat_attn_forward(c->plan, NULL, &t->q, &t->k, &t->v, &t->o, &t->lse, c->work);
    return kat_attn_backward(c->plan, NULL, &t->q, &t->k, &t->v, &t->o, c->precise ? NULL : &t->lse,
                             &t->dout, &t->dq, &t->dk, &t->dv, c->work);
}

static void dense_cleanup(void *ctx)
{
    dense_call *c = ctx;
    kat_attn_plan_destroy(c->plan);
    kat_free(c->work);
    kat_free(c);
}

kat_status attn_dense_bench(const attn_opts *o, attn_tensors *t, attn_bench_call *call)
{
    kat_status st = no_params(o, "kat bench attn");
    if (st)
        return st;
    dense_call *c = kat_calloc(1, sizeof *c);
    if (!c)
        return KAT_ENOMEM;
    st = kat_attn_plan_create(&t->desc, NULL, &c->plan);
    if (st) {
        kat_free(c);
        return st;
    }
    c->t = t;
    c->backward = o->backward;
    c->precise = o->precise;
    /* The workspace is allocated once, outside the timed calls (plan / workspace / execute). */
    size_t bytes = kat_attn_workspace_size(c->plan, o->backward ? KAT_ATTN_BACKWARD
                                                                : KAT_ATTN_FORWARD);
    if (!(c->work = kat_malloc(bytes ? bytes : 1))) {
        dense_cleanup(c);
        return KAT_ENOMEM;
    }
    call->fn = dense_once;
    call->cleanup = dense_cleanup;
    call->ctx = c;
    call->flops = 0.0;
    snprintf(call->note, sizeof call->note, "flash %s%s, isa %s, %d threads",
             o->backward ? "backward" : "forward",
             o->backward && o->precise ? " (recomputed statistics)" : "",
             kat_attn_plan_isa(c->plan), kat_attn_plan_threads(c->plan));
    return KAT_OK;
}
