/* Sliding window and global tokens (Longformer; with causal, the "attention sink" pattern):
 * a fixed block mask, laid out once when the plan is created. */
#include "attn/sparse_solver.h"
#include "core/internal.h"

static int supports(const kat_attn_desc *d, const kat_attn_pattern *p, char *why)
{
    return p->kind == KAT_ATTN_WINDOW && kat__sparse_solver_supports(d, p, why);
}

static kat_status build(const kat_attn_plan *plan, const kat_attn_args *args,
                        const kat_attn_io *io, int threads, kat_sparse_layout **out)
{
    (void)args, (void)io;
    const kat_attn_pattern *p = &plan->pattern;
    const kat_attn_desc *d = &plan->d;
    if (p->window == 0 && p->global == 0)
        return kat__fail(KAT_EINVAL, "pattern window = 0 and global = 0: a window pattern needs "
                        "a band, global tokens or both");
    size_t bq = p->block_q ? p->block_q : kat_sparse_tile_q();
    size_t bk = p->block_k ? p->block_k : kat_sparse_tile_q();
    kat_sparse_blockmask *m = NULL;
    kat_status st = kat_sparse_blockmask_global(d->N, d->M, p->global, p->window, d->causal != 0, bq,
                                                bk, &m);
    if (!st)
        st = kat__sparse_block_layout_create(d, threads, m, out);
    kat_sparse_blockmask_destroy(m);
    return st;
}

static kat_status create(kat_attn_plan *plan)
{
    return kat__sparse_solver_create(plan, build, NULL, 0);
}

const kat_attn_solver kat__solver_window = KAT_SPARSE_SOLVER("window", supports, create);
