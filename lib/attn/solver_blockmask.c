/* Block masks (FlexAttention-style): fixed in the pattern (laid out with the plan) or given
 * per call in args->mask. */
#include "attn/sparse_solver.h"
#include "core/internal.h"

static int supports(const kat_attn_desc *d, const kat_attn_pattern *p, char *why)
{
    return p->kind == KAT_ATTN_BLOCKMASK && kat__sparse_solver_supports(d, p, why);
}

static kat_status build_fixed(const kat_attn_plan *plan, const kat_attn_args *args,
                              const kat_attn_io *io, int threads, kat_sparse_layout **out)
{
    (void)args, (void)io;
    return kat__sparse_block_layout_create(&plan->d, threads, plan->pattern.mask, out);
}

static kat_status build_call(const kat_attn_plan *plan, const kat_attn_args *args,
                             const kat_attn_io *io, int threads, kat_sparse_layout **out)
{
    (void)io;
    if (!args || !args->mask)
        return kat__fail(KAT_EINVAL, "args->mask is NULL: a blockmask plan without a fixed "
                        "pattern->mask takes the mask with every call");
    return kat__sparse_block_layout_create(&plan->d, threads, args->mask, out);
}

static kat_status create(kat_attn_plan *plan)
{
    if (plan->pattern.mask)
        return kat__sparse_solver_create(plan, build_fixed, NULL, 0);
    return kat__sparse_solver_create(plan, NULL, build_call, 0);
}

const kat_attn_solver kat__solver_blockmask = KAT_SPARSE_SOLVER("blockmask", supports, create);
