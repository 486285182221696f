/* The attention solver interface (never installed). A plan (lib/attn/plan.c) holds a checked
 * desc and pattern and the solver chosen for them from the table in lib/attn/solvers.c; the
 * solver keeps its own state in plan->impl. The front end validates nothing about tensors: a
 * solver's check() does, before any memory is taken, and its forward() and backward() run on
 * checked arguments with a workspace of at least workspace_size() bytes (64-byte aligned). */
#ifndef KAT_ATTN_SOLVER_H
#define KAT_ATTN_SOLVER_H

#include "kat/attn.h"

/* The tensors of one call; the backward's fields are NULL in a forward. */
typedef struct {
    const kat_tensor *q, *k, *v, *o, *lse;
    const kat_tensor *dout, *dq, *dk, *dv;
} kat_attn_io;

typedef struct kat_attn_solver kat_attn_solver;

struct kat_attn_plan {
    kat_attn_desc d;            /* resolved (Dv filled in; causal 0, 1 or 2 as given) */
    kat_attn_pattern pattern;   /* as given (the kind's fields only) */
    const kat_attn_solver *solver;
    void *impl;                 /* the solver's state */
};

struct kat_attn_solver {
    const char *name;
    /* 1 when the solver runs this desc and pattern; else 0 and, when why is not NULL, a
     * sentence saying what it lacks (written into why, at most KAT_ATTN_WHY bytes). */
    int (*supports)(const kat_attn_desc *d, const kat_attn_pattern *p, char *why);
    /* Build plan->impl (threads, kernels, fixed layouts, workspace sizes). */
    kat_status (*create)(kat_attn_plan *plan);
    void (*destroy)(kat_attn_plan *plan);
    size_t (*workspace_size)(const kat_attn_plan *plan, kat_attn_pass pass);
    /* Validate the call: tensors against the desc, per-call args against the pattern. */
    kat_status (*check)(const kat_attn_plan *plan, const kat_attn_args *args,
                        const kat_attn_io *io, kat_attn_pass pass);
    kat_status (*forward)(const kat_attn_plan *plan, const kat_attn_args *args,
                          const kat_attn_io *io, unsigned char *work);
    kat_status (*backward)(const kat_attn_plan *plan, const kat_attn_args *args,
                           const kat_attn_io *io, unsigned char *work);
    /* Optional: what the plan visits (sparse solvers). */
    kat_status (*stats)(const kat_attn_plan *plan, const kat_attn_args *args,
                        kat_sparse_stats *out);
    /* Optional: the index of per-call data (sparse solvers with per-call patterns). */
    kat_status (*index_create)(const kat_attn_plan *plan, const kat_attn_args *args,
                               const kat_attn_io *io, void **impl);
    void (*index_destroy)(void *impl);
    const char *(*isa)(const kat_attn_plan *plan);
    int (*threads)(const kat_attn_plan *plan);
};

enum { KAT_ATTN_WHY = 192 };

/* An index of per-call data, built by its plan's solver. */
struct kat_attn_index {
    const kat_attn_plan *plan;
    void *impl;
};

/* The table, in order of preference (solvers.c); NULL-terminated. */
extern const kat_attn_solver *const kat__attn_solvers[];

/* The solvers (one file each). */
extern const kat_attn_solver kat__solver_flash;      /* solver_flash.c */
extern const kat_attn_solver kat__solver_qkdrop;     /* solver_qkdrop.c */
extern const kat_attn_solver kat__solver_hash;       /* solver_hash.c */
extern const kat_attn_solver kat__solver_lsh;        /* solver_lsh.c */
extern const kat_attn_solver kat__solver_window;     /* solver_window.c */
extern const kat_attn_solver kat__solver_blockmask;  /* solver_blockmask.c */
extern const kat_attn_solver kat__solver_linear;     /* solver_linear.c */

/* A pattern's per-call fields that the kind does not read must be NULL: a caller who passes
 * buckets to a dense plan has the wrong plan. Names the first stray field. */
kat_status kat__attn_args_unused(const kat_attn_args *args, const kat_attn_pattern *p);

/* The check of a softmax solver's call: no stray per-call field, then the tensors of the pass
 * (the backward always needs o, and the forward's lse when need_lse). */
kat_status kat__attn_softmax_check(const kat_attn_plan *plan, const kat_attn_args *args,
                                   const kat_attn_io *io, kat_attn_pass pass, int need_lse);

#endif
