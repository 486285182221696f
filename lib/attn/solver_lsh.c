/* Hash buckets from angular LSH of each call's q and k (kat_sparse_lsh_buckets): a query
 * head and its key/value head share their random rotations. */
#include "attn/sparse_solver.h"
#include "core/internal.h"

static int supports(const kat_attn_desc *d, const kat_attn_pattern *p, char *why)
{
    return p->kind == KAT_ATTN_LSH && kat__sparse_solver_supports(d, p, why);
}

static kat_status build(const kat_attn_plan *plan, const kat_attn_args *args,
                        const kat_attn_io *io, int threads, kat_sparse_layout **out)
{
    (void)args;
    const kat_attn_desc *d = &plan->d;
    if (!io->q || !io->k)
        return kat__fail(KAT_ENOTSUP, "LSH buckets come from the call's q and k: a plan of "
                        "pattern lsh has no statistics without them");
    size_t nq = d->B * d->H * d->N, nk = d->B * d->H_kv * d->M;
    int32_t *qb = kat__alloc_array(nq ? nq : 1, sizeof(int32_t), "LSH query buckets");
    int32_t *kb = qb ? kat__alloc_array(nk ? nk : 1, sizeof(int32_t), "LSH key buckets") : NULL;
    kat_status st = kb ? KAT_OK : KAT_ENOMEM;
    size_t nb = plan->pattern.buckets, g = d->H_kv ? d->H / d->H_kv : 1;
    if (!st)
        st = kat_sparse_lsh_buckets(io->q, g, nb, plan->pattern.seed, qb);
    if (!st)
        st = kat_sparse_lsh_buckets(io->k, 1, nb, plan->pattern.seed, kb);
    if (!st)
        st = kat__sparse_hash_layout_create(d, threads, nb, qb, kb, out);
    kat_free(qb);
    kat_free(kb);
    return st;
}

static kat_status create(kat_attn_plan *plan)
{
    size_t nb = plan->pattern.buckets;
    if (nb < 2 || nb % 2 || nb > (size_t)INT32_MAX)
        return kat__fail(KAT_EINVAL, "pattern->buckets = %zu: LSH needs an even number in "
                        "2 .. 2^31 - 2", nb);
    return kat__sparse_solver_create(plan, NULL, build, nb < plan->d.N ? nb : plan->d.N);
}

const kat_attn_solver kat__solver_lsh = KAT_SPARSE_SOLVER("lsh", supports, create);
