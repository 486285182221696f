/* kat linear: subquadratic attention from any feature map.
 *
 * With a kernel f(q, k) = phi(q) . psi(k) (a kat_featmap), attention
 *     o_i = sum_j f(q_i, k_j) v_j / sum_j f(q_i, k_j)
 * costs O(N D d_v) instead of O(N^2 d): the keys are summarised in a state
 *     S = sum_j psi(k_j) [v_j | 1]^T          (D x (d_v + 1); the ones column is the denominator)
 * and o_i = phi(q_i)^T S, normalised by its last entry. Causal attention runs in chunks of C
 * tokens: exact masked scores inside a chunk, the carried state across chunks (as in
 * flash-linear-attention). Forward and backward keep O(N d + D d_v) memory: a state per chunk
 * boundary at most, never one per token.
 *
 * The state is an fp32 kat_tensor [B, H, D, d_v + 1] (rows: features, columns: value
 * channels then the denominator). A forward pass can start from a state and return the final
 * one, so a prefill followed by decoding one token at a time (N = 1 calls, state_in ==
 * state_out) equals the forward pass over the whole sequence.
 *
 * The engine runs behind the attention front end (include/kat/attn.h): a plan with a
 * kat_attn_pattern of kind KAT_ATTN_LINEAR (the map and these options; causality from the
 * desc), states in kat_attn_args, and a workspace of kat_attn_workspace_size bytes with which
 * no pass allocates. kat_linear_forward and kat_linear_backward below are its one-shot forms:
 * the same engine with a workspace allocated for the call. */
#ifndef KAT_LINEAR_H
#define KAT_LINEAR_H

#include "kat/core.h"
#include "kat/featmap.h"
#include "kat/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* How the scores inside a causal chunk are computed. */
typedef enum {
    /* DOT when the map declares dot_kernel_f32 (and is EXACT), else FEATURES: faster than a
     * per-pair score callback (a scalar loop) for every map measured. */
    KAT_LINEAR_INTRA_AUTO = 0,
    /* phi(Q_c) psi(K_c)^T as row dots of the features (the dispatched kernels): always
     * consistent with the carried state. */
    KAT_LINEAR_INTRA_FEATURES,
    /* The map's score(q, k) per pair (fp64): needs an EXACT map with a score callback. */
    KAT_LINEAR_INTRA_SCORE,
    /* fp32 dots q_i . k_j (d-dimensional) mapped by the map's dot_kernel_f32: equal to the
     * feature product up to rounding, at C d instead of C D per token; needs an EXACT map
     * that declares dot_kernel_f32. */
    KAT_LINEAR_INTRA_DOT
} kat_linear_intra;

/* Options; a zero-initialised struct (or NULL) means: non-causal, normalised, default chunk,
 * automatic in-chunk scores. */
typedef struct {
    int causal;         /* 1: query i attends to keys j <= i (needs N_q == N_k) */
    int unnormalized;   /* 1: o_i = sum_j f(q_i, k_j) v_j without the denominator. Required for
                         * maps that are not KAT_FEATMAP_POSITIVE: their kernel can be <= 0, so
                         * the normalised form is refused rather than patched with an epsilon */
    size_t chunk;       /* tokens per chunk, 0: KAT_LINEAR_DEFAULT_CHUNK; at most
                         * KAT_LINEAR_MAX_CHUNK */
    kat_linear_intra intra;
} kat_linear_opts;

/* 32: the in-chunk scores cost ~C D per token (~C d with intra DOT) and the state traffic
 * ~D d_v / C; 32 was the fastest of 16..96 for Taylor-2 at d = 32 and 64 with feature scores,
 * and 32, 64 and 128 were within the noise with DOT scores (docs/benchmarks.md). */
enum { KAT_LINEAR_DEFAULT_CHUNK = 32, KAT_LINEAR_MAX_CHUNK = 4096 };

/* Forward pass (one-shot form). q [B, H, N_q, d], k [B, H, N_k, d], v [B, H, N_k, d_v], o [B, H, N_q, d_v]
 * (strided views, last dimension contiguous), with d = kat_featmap_in_dim(fm).
 * state_in (may be NULL: zero state) and state_out (may be NULL) are [B, H, D, d_v + 1] with
 * D = kat_featmap_out_dim(fm); state_out receives state_in plus every key of this call.
 * state_out may be the very same view as state_in (in-place decoding) but must not otherwise
 * overlap an argument; o must not overlap q, k, v or the states.
 * Errors: KAT_EINVAL for a NULL map or tensor, mismatched shapes (the map's d against the
 * heads, state shapes), aliasing outputs, a chunk above the maximum, or a map that is not
 * POSITIVE under normalisation; KAT_EDOM for non-finite inputs, for an output or final state
 * that is not finite (a feature that overflowed fp32 reaches them through the ones column;
 * the features themselves are not scanned) and for a denominator that is not > 0 (fp32
 * underflow of a positive map); KAT_ERANGE when a size overflows. Validation and allocation
 * happen before any output is written; only if the map's own callback fails part way (its
 * status, or a non-finite value) may o be partly written. state_out is written only on
 * success. Threads (kat_num_threads; OpenBLAS is held at one thread inside the parallel
 * region): (batch, head) pairs in parallel, or, with fewer pairs than threads, the chunks of
 * one sequence (each thread rebuilds the state of the chunks before its segment; non-causal:
 * partial key states summed). A call of less than ~4 MFLOP (a decoding step) runs on the
 * calling thread. Deterministic for a given thread count. */
KAT_API kat_status kat_linear_forward(const kat_featmap *fm, const kat_linear_opts *opts,
                                      const kat_tensor *q, const kat_tensor *k, const kat_tensor *v,
                                      const kat_tensor *o, const kat_tensor *state_in,
                                      const kat_tensor *state_out);

/* Backward pass of kat_linear_forward: given o (the forward's output) and d_o = dL/do, writes
 * dq, dk, dv (same shapes as q, k, v; overwritten, not accumulated) and, when d_state_in is
 * not NULL, dL/dstate_in (shape of a state; needs state_in or is the gradient at a zero
 * state). The gradient does not flow back from state_out. The map needs a vjp (or vjp_f32):
 * KAT_ENOTSUP otherwise. Forward states are recomputed at chunk boundaries; memory stays
 * O(N + C D + D d_v) per (batch, head) pair in flight. Errors as for the forward; dq, dk, dv
 * must not overlap each other or any input. */
KAT_API kat_status kat_linear_backward(const kat_featmap *fm, const kat_linear_opts *opts,
                                       const kat_tensor *q, const kat_tensor *k, const kat_tensor *v,
                                       const kat_tensor *o, const kat_tensor *d_o,
                                       const kat_tensor *dq, const kat_tensor *dk,
                                       const kat_tensor *dv, const kat_tensor *state_in,
                                       const kat_tensor *d_state_in);

/* The quadratic reference, for tests and checks: f(q_i, k_j) = phi(q_i) . psi(k_j) with the
 * map's apply (or, when use_score is 1, the map's score: the exact kernel, which differs from
 * phi . psi for random-feature maps), summed in the plain order, in fp64 with precision = 64
 * (the reference) or in fp32 with precision = 32 (a naive fp32 implementation: the map's fp32
 * apply, every product and sum rounded to float; the yardstick of "no worse than 2x naive
 * fp32", with kat_attn_error_bound). O(N_q N_k) time and O((N_q + N_k) D) memory per head.
 * o_ref is a contiguous fp64 [B, H, N_q, d_v] array (fp32 values with precision 32);
 * state_in as for the forward (the state's keys are folded in through phi(q) . S).
 * Validation as for the forward (positivity is not required when opts->unnormalized). */
KAT_API kat_status kat_linear_reference(const kat_featmap *fm, const kat_linear_opts *opts,
                                        int use_score, int precision, const kat_tensor *q,
                                        const kat_tensor *k, const kat_tensor *v,
                                        const kat_tensor *state_in, double *o_ref);

/* fp64 quadratic reference gradients (through phi . psi and the map's fp64 vjp; KAT_ENOTSUP if
 * the map has only vjp_f32 or none). dq_ref, dk_ref, dv_ref: contiguous fp64 arrays of the
 * shapes of q, k, v. No initial state. */
KAT_API kat_status kat_linear_reference_backward(const kat_featmap *fm, const kat_linear_opts *opts,
                                                 const kat_tensor *q, const kat_tensor *k,
                                                 const kat_tensor *v, const kat_tensor *d_o,
                                                 double *dq_ref, double *dk_ref, double *dv_ref);

/* Floating-point operations of one forward pass as kat counts them (for GFLOP/s reports):
 * per (batch, head) pair, 2 D (d_v + 1) per key for the state and per query for the readout,
 * plus, when causal, the in-chunk scores and their product with [V | 1] over the lower
 * triangle: 2 (D + d_v + 1) per pair, or 2 (d + d_v + 1) where the scores are dots of the d
 * inputs (opts->intra DOT, or AUTO for a map with a kernel of the dot). The map's own work is
 * not counted. The backward counts 2.5x. */
KAT_API double kat_linear_flops(const kat_featmap *fm, const kat_linear_opts *opts, size_t B, size_t H,
                                size_t n_q, size_t n_k, size_t dv);

#ifdef __cplusplus
}
#endif
#endif
