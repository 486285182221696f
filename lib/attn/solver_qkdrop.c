/* QK-drop (kept query and key rows, given per call) on the sparse tiles. */
#include "attn/sparse_solver.h"

static int supports(const kat_attn_desc *d, const kat_attn_pattern *p, char *why)
{
    return p->kind == KAT_ATTN_QKDROP && kat__sparse_solver_supports(d, p, why);
}

static kat_status build(const kat_attn_plan *plan, const kat_attn_args *args,
                        const kat_attn_io *io, int threads, kat_sparse_layout **out)
{
    (void)io;
    return kat__sparse_qk_layout_create(&plan->d, threads, args ? args->q_keep : NULL,
                                       args ? args->k_keep : NULL, out);
}

static kat_status create(kat_attn_plan *plan)
{
    return kat__sparse_solver_create(plan, NULL, build, 0);
}

const kat_attn_solver kat__solver_qkdrop = KAT_SPARSE_SOLVER("qkdrop", supports, create);
