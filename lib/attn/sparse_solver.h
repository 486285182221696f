/* What the sparse solvers share (never installed): a plan's thread count, its fixed layout
 * (window, fixed block mask) or the bound on a per-call layout's workspace, and the running
 * of a layout. A sparse solver file only says how its layout is built. */
#ifndef KAT_SPARSE_SOLVER_H
#define KAT_SPARSE_SOLVER_H

#include "attn/solver.h"
#include "attn/sparse_internal.h"

/* Build the layout of one call (per-call patterns) or of the plan (fixed patterns). */
typedef kat_status (*sp_build_fn)(const kat_attn_plan *plan, const kat_attn_args *args,
                                  const kat_attn_io *io, int threads, kat_sparse_layout **out);

typedef struct {
    int threads;
    const char *isa;
    kat_sparse_layout *fixed;   /* built once at plan creation, or NULL */
    sp_build_fn build;          /* per-call builder when fixed is NULL */
    size_t fwd_bytes, bwd_bytes;
    size_t extra_q_tiles;       /* per head, beyond ceil(N / tile): tiles a pattern may add */
} sp_plan;

/* Softmax patterns: every desc the tiles run (causal 0, 1 or 2, any D_v). */
int kat__sparse_solver_supports(const kat_attn_desc *d, const kat_attn_pattern *p, char *why);
/* Create the plan's sp_plan: with fixed_build, build the layout now; else size the workspace
 * bound of per-call layouts (extra_q_tiles: see above). */
kat_status kat__sparse_solver_create(kat_attn_plan *plan, sp_build_fn fixed_build,
                                    sp_build_fn call_build, size_t extra_q_tiles);
void kat__sparse_solver_destroy(kat_attn_plan *plan);
size_t kat__sparse_solver_workspace(const kat_attn_plan *plan, kat_attn_pass pass);
kat_status kat__sparse_solver_check(const kat_attn_plan *plan, const kat_attn_args *args,
                                   const kat_attn_io *io, kat_attn_pass pass);
kat_status kat__sparse_solver_forward(const kat_attn_plan *plan, const kat_attn_args *args,
                                     const kat_attn_io *io, unsigned char *work);
kat_status kat__sparse_solver_backward(const kat_attn_plan *plan, const kat_attn_args *args,
                                      const kat_attn_io *io, unsigned char *work);
kat_status kat__sparse_solver_stats(const kat_attn_plan *plan, const kat_attn_args *args,
                                   kat_sparse_stats *out);
kat_status kat__sparse_solver_index_create(const kat_attn_plan *plan, const kat_attn_args *args,
                                          const kat_attn_io *io, void **impl);
void kat__sparse_solver_index_destroy(void *impl);
const char *kat__sparse_solver_isa(const kat_attn_plan *plan);
int kat__sparse_solver_threads(const kat_attn_plan *plan);

/* The solver table entry of a sparse solver named NAME with its supports function. */
#define KAT_SPARSE_SOLVER(NAME, SUPPORTS, CREATE)                                               \
    {                                                                                           \
        .name = NAME, .supports = SUPPORTS, .create = CREATE,                                   \
        .destroy = kat__sparse_solver_destroy, .workspace_size = kat__sparse_solver_workspace,    \
        .check = kat__sparse_solver_check, .forward = kat__sparse_solver_forward,                 \
        .backward = kat__sparse_solver_backward, .stats = kat__sparse_solver_stats,               \
        .index_create = kat__sparse_solver_index_create,                                         \
        .index_destroy = kat__sparse_solver_index_destroy, .isa = kat__sparse_solver_isa,         \
        .threads = kat__sparse_solver_threads                                                    \
    }

#endif
