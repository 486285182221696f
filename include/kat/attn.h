/* kat attn: exact softmax attention on the CPU.
 *
 *   o[b,h,i,:] = sum_j softmax_j(scale * q[b,h,i,:] . k[b,h',j,:]) v[b,h',j,:]
 *
 * with h' = h / (H / H_kv) (grouped-query attention; H_kv = H is ordinary multi-head), and,
 * when causal, query i seeing key j only if j <= i + (M - N): the causal diagonal is aligned at
 * the bottom right, as when N new queries attend to a cache of M keys. A query that sees no key
 * (causal with N > M) gets o = 0, logsumexp = -inf and zero gradients.
 *
 * Three implementations of the same mathematics:
 *   - kat_attn_forward / kat_attn_backward: the flash engine (FlashAttention-2, arXiv
 *     2307.08691): tiles, online softmax in fp32, the row logsumexp kept for the backward,
 *     OpenMP over (batch, head, query tile) with dynamic scheduling, per-ISA micro-kernels
 *     (KAT_ARCH=ref|avx2|avx512), and a decode path that splits the keys across threads when
 *     there are too few query tiles to keep them busy;
 *   - kat_attn_reference_*: naive fp64, for tests;
 *   - kat_attn_unfused_*: sgemm -> softmax -> sgemm through the BLAS, the benchmark baseline.
 *
 * Tensors are kat_tensor views (include/kat/tensor.h): q and o are [B, H, N, D], k and v are
 * [B, H_kv, M, D], the logsumexp is a [B, H, N, 1] view (natural log of the softmax
 * denominator, including the scale). Strides are free (transposed [B, N, H, D] buffers need no
 * copy); outputs must not overlap any input or each other. All data must be finite. */
#ifndef KAT_ATTN_H
#define KAT_ATTN_H

#include "kat/core.h"
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
    int causal;    /* nonzero: query i sees key j iff j <= i + (M - N) */
    double scale;  /* logits are scale * q.k; 0 means 1/sqrt(D) */
} kat_attn_desc;

/* Fill *out from views: B, H, N, D from q, H_kv and M from k. */
KAT_API kat_status kat_attn_desc_from_views(const kat_tensor *q, const kat_tensor *k, int causal,
                                            double scale, kat_attn_desc *out);

/* Check a desc and resolve its defaults (H_kv = 0 -> H, scale = 0 -> 1/sqrt(D)) into *out
 * (which may be desc). Errors: KAT_EINVAL for D = 0, D > KAT_ATTN_MAX_D, H not a multiple of
 * H_kv; KAT_ERANGE for N or M >= 2^31 or a size product that overflows; KAT_EDOM for a
 * non-finite scale. */
KAT_API kat_status kat_attn_desc_check(const kat_attn_desc *desc, kat_attn_desc *out);

/* ---- the flash engine: plan, workspace, execute ------------------------------------------ */

typedef struct kat_attn_plan kat_attn_plan;

typedef enum { KAT_ATTN_FORWARD = 0, KAT_ATTN_BACKWARD = 1 } kat_attn_pass;

/* Fix shapes, options, the kernels (kat_arch_get() now) and the thread count
 * (kat_num_threads() now). */
KAT_API kat_status kat_attn_plan_create(const kat_attn_desc *desc, kat_attn_plan **out);
KAT_API void kat_attn_plan_destroy(kat_attn_plan *plan);   /* NULL ok */

/* The plan's resolved desc (H_kv and scale filled in). */
KAT_API const kat_attn_desc *kat_attn_plan_desc(const kat_attn_plan *plan);
/* Name of the kernels the plan uses ("ref", "avx2", "avx512") and its thread count. */
KAT_API const char *kat_attn_plan_isa(const kat_attn_plan *plan);
KAT_API int kat_attn_plan_threads(const kat_attn_plan *plan);

/* Bytes of workspace a pass needs (64-byte aligned). Forward needs little (tile buffers per
 * thread, plus partial results when the keys are split); backward holds packed Q^T and dO^T
 * and a dq accumulator per thread and head group. */
KAT_API size_t kat_attn_workspace_size(const kat_attn_plan *plan, kat_attn_pass pass);

/* Forward: o (and lse, when not NULL) from q, k, v. `work` is NULL (the call allocates and
 * frees its workspace) or 64-byte aligned memory of kat_attn_workspace_size(plan,
 * KAT_ATTN_FORWARD) bytes; with it the call allocates nothing, and several threads may run
 * the same plan at once on different data and workspaces. Shapes must match the plan. */
KAT_API kat_status kat_attn_forward(const kat_attn_plan *plan, const kat_tensor *q,
                                    const kat_tensor *k, const kat_tensor *v, const kat_tensor *o,
                                    const kat_tensor *lse, void *work);

/* Backward: dq, dk, dv from q, k, v, the forward's o, and dout = dL/do. dk and dv sum over
 * the query heads that share a key/value head.
 *
 * With lse (the forward's logsumexp) the probabilities are recomputed from it, as in
 * FlashAttention-2: five tile products per (query, key) pair. Being fp32, lse carries a
 * rounding of up to |lse| 2^-24 into every probability (relative), which dominates the
 * gradients' error when |lse| is large (huge logits). With lse NULL a first pass recomputes
 * every row's softmax statistics (one more Q K^T product, about 20% more time) and the
 * gradients are as accurate as a naive fp32 implementation's or better. */
KAT_API kat_status kat_attn_backward(const kat_attn_plan *plan, const kat_tensor *q,
                                     const kat_tensor *k, const kat_tensor *v, const kat_tensor *o,
                                     const kat_tensor *lse, const kat_tensor *dout,
                                     const kat_tensor *dq, const kat_tensor *dk, const kat_tensor *dv,
                                     void *work);

/* One-shot forms: build a plan from the views, run it, destroy it. */
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
 * contiguous: o [B, H, N, D] and lse [B, H, N] (lse may be NULL). */
KAT_API kat_status kat_attn_reference_forward(const kat_attn_desc *desc, const kat_tensor *q,
                                              const kat_tensor *k, const kat_tensor *v, double *o,
                                              double *lse);
/* Gradients in double: dq [B, H, N, D], dk and dv [B, H_kv, M, D], contiguous. */
KAT_API kat_status kat_attn_reference_backward(const kat_attn_desc *desc, const kat_tensor *q,
                                               const kat_tensor *k, const kat_tensor *v,
                                               const kat_tensor *dout, double *dq, double *dk,
                                               double *dv);

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
