/* kat attn: attention on the CPU, one front end for every pattern.
 *
 * Softmax attention
 *
 *   o[b,h,i,:] = sum_j softmax_j(scale * q[b,h,i,:] . k[b,h',j,:]) v[b,h',j,:]
 *
 * with h' = h / (H / H_kv) (grouped-query attention; H_kv = H is ordinary multi-head), and,
 * when causal, query i seeing key j only if j <= i + (M - N): the causal diagonal is aligned at
 * the bottom right, as when N new queries attend to a cache of M keys. A query that sees no key
 * (causal with N > M, or a sparse pattern that leaves it none) gets o = 0, logsumexp = -inf and
 * zero gradients. A pattern restricts which (i, j) pairs interact (QK-drop, hash buckets,
 * sliding windows, block masks); a feature map replaces the softmax kernel by phi(q).psi(k)
 * (linear attention, include/kat/linear.h).
 *
 * Use: describe the shapes (kat_attn_desc) and the pattern (kat_attn_pattern, or
 * kat_attn_pattern_parse("hash:16")), create a plan (it chooses a solver from one table and
 * fixes kernels, threads and workspace sizes), then run kat_attn_forward / kat_attn_backward
 * as often as the shapes hold. Data that changes with every call (bucket ids, keep lists,
 * block masks, linear-attention states) is passed in a kat_attn_args, not baked into the plan.
 *
 * Solvers (kat_attn_plan_solver names them):
 *   - "flash": the dense engine (FlashAttention-2, arXiv 2307.08691): tiles, online softmax in
 *     fp32, the row logsumexp kept for the backward, OpenMP over (batch, head, query tile),
 *     per-ISA micro-kernels (KAT_ARCH=ref|avx2|avx512), and a decode path that splits the keys
 *     across threads when there are too few query tiles to keep them busy;
 *   - "qkdrop", "hash", "lsh", "window", "blockmask": the sparse modes of include/kat/sparse.h
 *     on the same tiles;
 *   - "linear": the chunked linear-attention engine of include/kat/linear.h.
 * Beside them: kat_attn_reference_* (naive fp64, for tests) and kat_attn_unfused_* (sgemm ->
 * softmax -> sgemm through the BLAS, the benchmark baseline).
 *
 * Tensors are kat_tensor views (include/kat/tensor.h): q [B, H, N, D], k [B, H_kv, M, D],
 * v [B, H_kv, M, D_v], o [B, H, N, D_v] (values may have their own head dimension, as in SDPA;
 * every solver runs it); the logsumexp is a [B, H, N, 1] view (natural log of
 * the softmax denominator, including the scale). Strides are free (transposed [B, N, H, D]
 * buffers need no copy); outputs must not overlap any input or each other. Outputs are passed
 * as `const kat_tensor *` like inputs: the view is not changed, the memory it points to is
 * written. All data must be finite. */
#ifndef KAT_ATTN_H
#define KAT_ATTN_H

#include <stdint.h>
#include "kat/core.h"
#include "kat/featmap.h"
#include "kat/linear.h"
#include "kat/sparse.h"
#include "kat/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Largest head dimension the engine supports. */
#define KAT_ATTN_MAX_D 256

/* The shape and options of an attention call. Zero-initialise, then set what you need. */
typedef struct {
    size_t B;      /* batch size */
    size_t H;      /* query heads */
    size_t H_kv;   /* key/value heads (H must be a multiple); 0 means H */
    size_t N;      /* queries per head (< 2^31) */
    size_t M;      /* keys per head (< 2^31); may differ from N */
    size_t D;      /* head dimension, 1 .. KAT_ATTN_MAX_D */
    int causal;    /* nonzero: query i sees key j iff j <= i + (M - N); sparse patterns also
                      take KAT_SPARSE_CAUSAL_STRICT (j < i + M - N) */
    double scale;  /* logits are scale * q.k; 0 means 1/sqrt(D) (softmax solvers only) */
    size_t Dv;     /* value head dimension; 0 means D */
} kat_attn_desc;

/* Fill *out from views: B, H, N, D from q, H_kv and M from k (Dv = D). */
KAT_API kat_status kat_attn_desc_from_views(const kat_tensor *q, const kat_tensor *k, int causal,
                                            double scale, kat_attn_desc *out);

/* Check a desc and resolve its defaults (H_kv = 0 -> H, scale = 0 -> 1/sqrt(D), Dv = 0 -> D)
 * into *out (which may be desc); causal becomes 0 or 1. Errors: KAT_EINVAL for D = 0, D > KAT_ATTN_MAX_D, H not a multiple of
 * H_kv; KAT_ERANGE for N or M >= 2^31 or a size product that overflows; KAT_EDOM for a
 * non-finite scale. */
KAT_API kat_status kat_attn_desc_check(const kat_attn_desc *desc, kat_attn_desc *out);

/* ---- patterns ------------------------------------------------------------------------------ */

typedef enum {
    KAT_ATTN_DENSE = 0,   /* every pair (causal aside) */
    KAT_ATTN_QKDROP,      /* per call: args->q_keep, args->k_keep (kept rows; NULL keeps all) */
    KAT_ATTN_HASH,        /* per call: args->q_buckets, args->k_buckets in [0, buckets) */
    KAT_ATTN_LSH,         /* hash buckets from angular LSH of q and k (buckets, seed): no args */
    KAT_ATTN_WINDOW,      /* sliding window and global tokens (window, global): no args */
    KAT_ATTN_BLOCKMASK,   /* per call: args->mask (or a fixed pattern->mask) */
    KAT_ATTN_LINEAR       /* feature map (map, linear options); per call: the states */
} kat_attn_kind;

/* Number of pattern kinds (for tables indexed by kind). */
#define KAT_ATTN_KINDS 7

/* A pattern is a value: zero-initialise, set kind and the fields of that kind. */
typedef struct {
    kat_attn_kind kind;
    size_t buckets;                    /* HASH: bucket ids are in [0, buckets) (1: dense);
                                          LSH: even, >= 2 */
    uint64_t seed;                     /* LSH: draws the random rotations */
    size_t window;                     /* WINDOW: |i' - j| < window (0: no band) */
    size_t global;                     /* WINDOW: the first `global` tokens see and are seen
                                          by every token (causality still applies) */
    size_t block_q, block_k;           /* WINDOW: block sizes (0: the engine's tiles) */
    const kat_sparse_blockmask *mask;  /* BLOCKMASK: a fixed mask (copied at plan creation),
                                          or NULL: each call passes args->mask */
    const kat_featmap *map;            /* LINEAR: kept by reference, must outlive the plan */
    const char *map_spec;              /* LINEAR from kat_attn_pattern_parse("linear:SPEC"):
                                          SPEC, a pointer into the parsed string, for the
                                          feature-map parser (the plan reads map only) */
    kat_linear_opts linear;            /* LINEAR: unnormalized, chunk, intra (its causal field
                                          is ignored: desc->causal decides) */
} kat_attn_pattern;

/* Parse the pattern part of a spec: "dense", "hash:NB" (buckets given per call),
 * "lsh:NB[:SEED]", "window:W[:G]" (window W, G global tokens), "qkdrop" (keep lists per
 * call), "blockmask" (mask per call), "linear[:MAP]". The feature map is an object the caller
 * owns: for "linear:MAP" the parser sets pattern->map_spec to MAP (a pointer into spec) for the
 * feature-map parser, and the caller sets pattern->map before creating the plan. Errors:
 * KAT_EINVAL naming the spec and what was expected. */
KAT_API kat_status kat_attn_pattern_parse(const char *spec, kat_attn_pattern *out);

/* The kind's name as the parser spells it ("dense", "hash", ...); "" for a bad kind. */
KAT_API const char *kat_attn_kind_name(kat_attn_kind kind);

typedef struct kat_attn_index kat_attn_index;

/* Per-call data. Zero-initialise; set what the plan's pattern reads (others must stay NULL). */
typedef struct {
    const int32_t *q_buckets;          /* HASH: [B, H, N] contiguous */
    const int32_t *k_buckets;          /* HASH: [B, H_kv, M] contiguous */
    const kat_sparse_keep *q_keep;     /* QKDROP: kept query rows (NULL: all) */
    const kat_sparse_keep *k_keep;     /* QKDROP: kept key rows (NULL: all) */
    const kat_sparse_blockmask *mask;  /* BLOCKMASK without a fixed mask */
    const kat_tensor *state_in;        /* LINEAR: [B, H, D_f, D_v + 1], NULL: zero state */
    const kat_tensor *state_out;       /* LINEAR forward: the final state (may be state_in) */
    const kat_tensor *d_state_in;      /* LINEAR backward: dL/dstate_in (NULL: not wanted) */
    const kat_attn_index *index;       /* per-call sparse patterns: the index of these args
                                          (kat_attn_index_create), so that the pass does not
                                          build it again; NULL: built by the call */
} kat_attn_args;

/* ---- plans: create, inspect, size the workspace, execute ---------------------------------- */

typedef struct kat_attn_plan kat_attn_plan;

typedef enum { KAT_ATTN_FORWARD = 0, KAT_ATTN_BACKWARD = 1 } kat_attn_pass;

/* Check desc and pattern (NULL: dense), choose the first solver of the table that supports
 * them, and fix its kernels (kat_arch_get() now), thread count (kat_num_threads() now) and
 * workspace sizes. Fixed data of the pattern (a window's block lists, a fixed block mask) is
 * built here. Errors: those of kat_attn_desc_check; KAT_EINVAL for a bad pattern;
 * KAT_ENOTSUP when no solver supports the combination (the message says why). */
KAT_API kat_status kat_attn_plan_create(const kat_attn_desc *desc,
                                        const kat_attn_pattern *pattern, kat_attn_plan **out);
KAT_API void kat_attn_plan_destroy(kat_attn_plan *plan);   /* NULL ok */

/* The plan's resolved desc (H_kv, scale and Dv filled in) and pattern. */
KAT_API const kat_attn_desc *kat_attn_plan_desc(const kat_attn_plan *plan);
KAT_API const kat_attn_pattern *kat_attn_plan_pattern(const kat_attn_plan *plan);
/* The solver the plan chose ("flash", "hash", "linear", ...). */
KAT_API const char *kat_attn_plan_solver(const kat_attn_plan *plan);
/* Name of the kernels the plan uses ("ref", "avx2", "avx512") and its thread count. */
KAT_API const char *kat_attn_plan_isa(const kat_attn_plan *plan);
KAT_API int kat_attn_plan_threads(const kat_attn_plan *plan);

/* Bytes of workspace a pass needs (64-byte aligned), whatever the per-call data. */
KAT_API size_t kat_attn_workspace_size(const kat_attn_plan *plan, kat_attn_pass pass);

/* Forward: o (and lse, when not NULL: softmax solvers only) from q, k, v. `args` carries the
 * per-call data of the pattern (NULL when it needs none). `work` is NULL (the call allocates
 * and frees its workspace) or 64-byte aligned memory of kat_attn_workspace_size(plan,
 * KAT_ATTN_FORWARD) bytes; with it, dense, window, fixed block-mask and linear plans allocate
 * nothing. Patterns with per-call data (QK-drop, hash, LSH, per-call block masks) sort and
 * tile that data on every call and allocate that index (O(rows + tile pairs)), unless
 * args->index carries it (kat_attn_index_create): then they allocate nothing either, when the
 * index fits the plan's workspace (a heavy head split over threads may need more). Several threads may run the same plan at once on different data and workspaces.
 * Shapes must match the plan. */
KAT_API kat_status kat_attn_forward(const kat_attn_plan *plan, const kat_attn_args *args,
                                    const kat_tensor *q, const kat_tensor *k,
                                    const kat_tensor *v, const kat_tensor *o,
                                    const kat_tensor *lse, void *work);

/* Backward: dq, dk, dv from q, k, v, the forward's o, and dout = dL/do. dk and dv sum over
 * the query heads that share a key/value head. The args must be those of the forward.
 *
 * Dense flash: with lse (the forward's logsumexp) the probabilities are recomputed from it, as
 * in FlashAttention-2: five tile products per (query, key) pair. Being fp32, lse carries a
 * rounding of up to |lse| 2^-24 into every probability (relative), which dominates the
 * gradients' error when |lse| is large (huge logits). With lse NULL a first pass recomputes
 * every row's softmax statistics (one more Q K^T product, about 20% more time) and the
 * gradients are as accurate as a naive fp32 implementation's or better. Sparse solvers need
 * lse; linear ignores it (NULL) and can return dL/dstate_in in args->d_state_in. */
KAT_API kat_status kat_attn_backward(const kat_attn_plan *plan, const kat_attn_args *args,
                                     const kat_tensor *q, const kat_tensor *k,
                                     const kat_tensor *v, const kat_tensor *o,
                                     const kat_tensor *lse, const kat_tensor *dout,
                                     const kat_tensor *dq, const kat_tensor *dk,
                                     const kat_tensor *dv, void *work);

/* The index of per-call sparse data (QK-drop keep lists, hash or LSH buckets, a per-call
 * block mask): the rows sorted, tiled and paired once, for a forward and its backward to
 * share (set args->index). q and k are read by LSH plans only (the buckets come from them;
 * NULL otherwise). The index keeps no pointer into the args, except that of a per-call block
 * mask: its element predicate and dense-mask data are read by the passes, so that mask must
 * outlive the index (keep lists and bucket ids may be freed). Plans whose pattern is fixed (dense, window, fixed block mask, linear) have no index: KAT_EINVAL. */
KAT_API kat_status kat_attn_index_create(const kat_attn_plan *plan, const kat_attn_args *args,
                                         const kat_tensor *q, const kat_tensor *k,
                                         kat_attn_index **out);
KAT_API void kat_attn_index_destroy(kat_attn_index *index);   /* NULL ok */

/* What a sparse plan visits with these per-call args (kat_sparse_stats, include/kat/sparse.h;
 * KAT_ENOTSUP for the dense and linear solvers). Also a way to check per-call args without
 * running: their errors are the forward's. */
KAT_API kat_status kat_attn_plan_stats(const kat_attn_plan *plan, const kat_attn_args *args,
                                       kat_sparse_stats *out);

/* One-shot forms: build a dense plan from the views, run it, destroy it. */
KAT_API kat_status kat_attn_dense_forward(const kat_tensor *q, const kat_tensor *k,
                                          const kat_tensor *v, const kat_tensor *o,
                                          const kat_tensor *lse, int causal, double scale);
KAT_API kat_status kat_attn_dense_backward(const kat_tensor *q, const kat_tensor *k,
                                           const kat_tensor *v, const kat_tensor *o,
                                           const kat_tensor *lse, const kat_tensor *dout,
                                           const kat_tensor *dq, const kat_tensor *dk,
                                           const kat_tensor *dv, int causal, double scale);

/* ---- the fp64 reference ------------------------------------------------------------------ */

/* Naive attention in double precision from fp32 views (threaded over rows). Outputs are
 * contiguous: o [B, H, N, D] and lse [B, H, N] (lse may be NULL). D_v = D only
 * (kat_attn_reference_masked takes any D_v). */
KAT_API kat_status kat_attn_reference_forward(const kat_attn_desc *desc, const kat_tensor *q,
                                              const kat_tensor *k, const kat_tensor *v, double *o,
                                              double *lse);
/* Gradients in double: dq [B, H, N, D], dk and dv [B, H_kv, M, D], contiguous. */
KAT_API kat_status kat_attn_reference_backward(const kat_attn_desc *desc, const kat_tensor *q,
                                               const kat_tensor *k, const kat_tensor *v,
                                               const kat_tensor *dout, double *dq, double *dk,
                                               double *dv);

/* ---- the attention oracle ------------------------------------------------------------------ */

/* Masked softmax attention, the yardstick of every attention check: the forward and (when
 * dout is not NULL) backward from fp32 views, computed in double with precision = 64 (the
 * reference) or with the textbook algorithm in float with precision = 32 (a naive fp32
 * implementation: the yardstick of "no worse than 2x naive fp32"), written as doubles.
 * allowed is a contiguous [B, H, N, M] element mask (nonzero: query i may see key j;
 * causality is NOT added on top) or NULL for desc->causal's rule (0, 1, or 2 =
 * KAT_SPARSE_CAUSAL_STRICT). D_v = desc->Dv may differ from D. Contiguous outputs: o
 * [B, H, N, D_v], lse [B, H, N] (may be NULL; -inf for a row that sees no key, whose o and dq
 * are 0), and with dout: dq [B, H, N, D], dk [B, H_kv, M, D], dv [B, H_kv, M, D_v]. O(B H N M
 * (D + D_v)) time, single-threaded. */
KAT_API kat_status kat_attn_reference_masked(const kat_attn_desc *desc, const uint8_t *allowed,
                                             int precision, const kat_tensor *q,
                                             const kat_tensor *k, const kat_tensor *v,
                                             const kat_tensor *dout, double *o, double *lse,
                                             double *dq, double *dk, double *dv);

/* The error model of fp32 attention against the fp64 reference (FlashAttention's rule plus a
 * floor): an output may be off by
 *     2 naive_err + magnitude (2^-24 terms + 2 logit_err)
 * where naive_err is the naive fp32 implementation's error on the same inputs, magnitude the
 * largest sum of absolute terms of the output (sum_j P_ij |v_jd| for o, ...), terms the
 * roundings an fp32 implementation cannot avoid per term (1 for one rounding of each term;
 * M + D + 8 for a sum of M products of length D), and logit_err the largest rounding error of
 * a logit (a logit off by e scales its probability by a factor within e^{+-e}). The floor binds
 * only where the naive result happens to be exact. */
KAT_API double kat_attn_error_bound(double naive_err, double magnitude, double terms,
                                    double logit_err);

/* ---- the unfused baseline ------------------------------------------------------------------ */

/* S = scale q k^T (cblas_sgemm), row softmax (vectorised exp, threaded), o = P v (sgemm), in
 * blocks of query rows so that S stays below 256 MiB. Same contract as kat_attn_forward. */
KAT_API kat_status kat_attn_unfused_forward(const kat_attn_desc *desc, const kat_tensor *q,
                                            const kat_tensor *k, const kat_tensor *v,
                                            const kat_tensor *o, const kat_tensor *lse);
/* The unfused backward: recompute P, then dv = P^T dO, dP = dO v^T, dS = P o (dP - delta),
 * dq = scale dS k, dk = scale dS^T q, all through sgemm. lse is not needed (NULL ok). */
KAT_API kat_status kat_attn_unfused_backward(const kat_attn_desc *desc, const kat_tensor *q,
                                             const kat_tensor *k, const kat_tensor *v,
                                             const kat_tensor *o, const kat_tensor *dout,
                                             const kat_tensor *dq, const kat_tensor *dk,
                                             const kat_tensor *dv);

#ifdef __cplusplus
}
#endif
#endif
