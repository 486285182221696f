/* Hash buckets given per call: query i sees key j only when their buckets are equal. */
#include "attn/sparse_solver.h"
#include "core/internal.h"

static int supports(const kat_attn_desc *d, const kat_attn_pattern *p, char *why)
{
    return p->kind == KAT_ATTN_HASH && kat__sparse_solver_supports(d, p, why);
}

static kat_status build(const kat_attn_plan *plan, const kat_attn_args *args,
                        const kat_attn_io *io, int threads, kat_sparse_layout **out)
{
    (void)io;
    return kat__sparse_hash_layout_create(&plan->d, threads, plan->pattern.buckets,
                                         args ? args->q_buckets : NULL,
                                         args ? args->k_buckets : NULL, out);
}

static kat_status create(kat_attn_plan *plan)
{
    size_t nb = plan->pattern.buckets;
    if (nb == 0 || nb > (size_t)INT32_MAX)
        return kat__fail(KAT_EINVAL, "nb = %zu buckets (pattern->buckets): must be in "
                        "1 .. 2^31 - 1", nb);
    /* a bucket boundary inside a tile starts a new one: at most one extra tile per bucket */
    return kat__sparse_solver_create(plan, NULL, build, nb < plan->d.N ? nb : plan->d.N);
}

const kat_attn_solver kat__solver_hash = KAT_SPARSE_SOLVER("hash", supports, create);
