/* kat sparse: dynamic sparse flash attention on the CPU.
 *
 * The sparse backends of "Fast Attention Over Long Sequences With Dynamic Sparse Flash
 * Attention" (Pagliardini, Paliotta, Jaggi, Fleuret; NeurIPS 2023; arXiv 2306.01160), plus
 * FlexAttention-style block masks, all run on the tiles of kat's dense flash engine
 * (include/kat/attn.h). Sparsity that changes with the data costs no more than the pairs it
 * keeps: the rows to visit are ordered once per (batch, head), tiles are built from row
 * pointers into the caller's q, k, v (nothing is copied), outputs scatter back the same way.
 *
 * Three ways to say which (query i, key j) pairs interact:
 *   - QK-drop: per (batch, head), the sorted lists of kept query rows and kept key rows (v
 *     follows k). A dropped query row gets o = 0, lse = -inf and dq = 0; a dropped key gets
 *     dk = dv = 0.
 *   - Hash: per (batch, head, token) bucket ids for queries and for keys, given by the caller
 *     or from the angular LSH kat_sparse_lsh_buckets(). Query i sees key j only when their
 *     buckets are equal. The rows are stably sorted by bucket, tiled, and each tile pair is
 *     kept or skipped from the tiles' actual minimum and maximum bucket and position.
 *   - Block masks (kat_sparse_blockmask): per query block, the list of key blocks to visit,
 *     with a flag for blocks that need no element mask and an optional element predicate;
 *     constructors for sliding windows, global tokens and dense boolean masks.
 *
 * Causality (desc->causal) is on the original positions, with the bottom-right alignment of
 * kat_attn (i' = i + M - N; with M = N simply i' = i):
 *   0                        no causal mask;
 *   1 (KAT_SPARSE_CAUSAL)    query i sees key j only if j <= i';
 *   KAT_SPARSE_CAUSAL_STRICT query i sees key j only if j <  i' (no token sees itself).
 * It combines (AND) with the mode's own mask. A query that sees no key gets o = 0, lse = -inf
 * and zero gradients, as in kat_attn.
 *
 * These patterns run through the one attention front end (include/kat/attn.h): a plan with a
 * kat_attn_pattern of kind KAT_ATTN_QKDROP, HASH, LSH, WINDOW or BLOCKMASK, per-call data in
 * kat_attn_args. Every call sorts and tiles its pattern (the rows to visit, the tile pairs)
 * before running the tiles. This header holds the pattern's data types and constructors. */
#ifndef KAT_SPARSE_H
#define KAT_SPARSE_H

#include "kat/core.h"
#include "kat/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Values of kat_attn_desc.causal understood by the sparse layouts (see above). */
#define KAT_SPARSE_CAUSAL 1
#define KAT_SPARSE_CAUSAL_STRICT 2

/* Rows per query tile and per key tile of the engine: block sizes that are multiples of these
 * waste no lanes. */
KAT_API size_t kat_sparse_tile_q(void);
KAT_API size_t kat_sparse_tile_k(void);

/* ---- keep lists (QK-drop) ------------------------------------------------------------------ */

/* Sorted lists of kept rows, one per (batch, head), in CSR form: head (b, h) keeps the rows
 * idx[offsets[b*H + h]] .. idx[offsets[b*H + h + 1] - 1], strictly increasing, in [0, N).
 * The caller owns both arrays (or kat_sparse_keep_from_mask allocated them). */
typedef struct {
    size_t B, H;             /* batch and heads (H_kv for keys) */
    size_t N;                /* rows per head the indices refer to */
    const size_t *offsets;   /* B*H + 1 nondecreasing offsets, offsets[0] = 0 */
    const int32_t *idx;      /* offsets[B*H] row indices */
} kat_sparse_keep;

/* Keep lists from a boolean mask [B, H, N] (contiguous; nonzero = keep). The arrays are
 * allocated; free them with kat_sparse_keep_free. */
KAT_API kat_status kat_sparse_keep_from_mask(const uint8_t *mask, size_t B, size_t H, size_t N,
                                             kat_sparse_keep *out);
/* Free the arrays of a kat_sparse_keep_from_mask result and zero it; NULL ok. */
KAT_API void kat_sparse_keep_free(kat_sparse_keep *keep);
/* Check a keep list: offsets from 0, nondecreasing, and every head's indices strictly
 * increasing (sorted, no duplicate) and below N. `what` names the argument in the error. */
KAT_API kat_status kat_sparse_keep_check(const kat_sparse_keep *keep, const char *what);

/* ---- angular LSH (hash buckets) ------------------------------------------------------------ */

/* Bucket ids by angular LSH (Andoni et al. 2015, as in Reformer and the paper):
 *   h(x) = argmax([x R, -x R])
 * with R a D x nb/2 matrix of unit columns (Gaussian directions) drawn from `seed`, one R per
 * head group: head h of x uses matrix number h / group (queries pass group = H / H_kv and
 * keys group = 1, so a query head and its key/value head share their R). nb is even, >= 2.
 * Ties go to the lowest index. buckets: [B, H, N] int32, contiguous, written on success. */
KAT_API kat_status kat_sparse_lsh_buckets(const kat_tensor *x, size_t group, size_t nb, uint64_t seed,
                                          int32_t *buckets);

/* ---- block masks --------------------------------------------------------------------------- */

/* An element predicate for blocks not flagged full: nonzero when query i of head (b, h) may
 * see key j. Called for every element of those blocks (from several threads at once). */
typedef int (*kat_sparse_mask_fn)(void *arg, size_t b, size_t h, size_t i, size_t j);

typedef struct kat_sparse_blockmask kat_sparse_blockmask;

/* Explicit block lists. Queries are cut into blocks of block_q rows, keys into blocks of
 * block_k rows (the last block of each may be shorter): nqb = ceil(N / block_q) query blocks
 * and nkb = ceil(M / block_k) key blocks per head. */
typedef struct {
    size_t B, H;               /* mask heads: equal to the attention's, or 1 to broadcast */
    size_t N, M;               /* queries and keys per head */
    size_t block_q, block_k;   /* >= 1 */
    const size_t *offsets;     /* B*H*nqb + 1 offsets into kblocks, from 0, nondecreasing */
    const int32_t *kblocks;    /* per query block: key blocks, strictly increasing, < nkb */
    const uint8_t *full;       /* per entry: nonzero = no element mask needed; NULL = none */
    kat_sparse_mask_fn fn;     /* the element predicate of entries not full; NULL = allow all */
    void *arg;                 /* passed to fn */
} kat_sparse_blockmask_desc;

/* A block mask from explicit lists (copied), with the transposed lists (per key block, the
 * query blocks that visit it) for the backward. The predicate's arg is kept by reference. */
KAT_API kat_status kat_sparse_blockmask_create(const kat_sparse_blockmask_desc *desc,
                                               kat_sparse_blockmask **out);
KAT_API void kat_sparse_blockmask_destroy(kat_sparse_blockmask *mask);   /* NULL ok */

/* Sliding window of `window` keys (broadcast over batch and heads), with i' = i + M - N:
 * query i sees key j iff |i' - j| < window, and, when causal, j <= i' (each query then sees
 * itself and the window - 1 keys before it). window >= 1. Blocks entirely inside the band are
 * flagged full. */
KAT_API kat_status kat_sparse_blockmask_sliding_window(size_t N, size_t M, size_t window, int causal,
                                                       size_t block_q, size_t block_k,
                                                       kat_sparse_blockmask **out);

/* Global tokens plus an optional sliding window (Longformer; with causal and a window, the
 * "attention sink" pattern): query i sees key j iff j < n_global, or |i' - j| < window, or
 * (not causal) i < n_global; and, when causal, j <= i'. window = 0 means no band. */
KAT_API kat_status kat_sparse_blockmask_global(size_t N, size_t M, size_t n_global, size_t window,
                                               int causal, size_t block_q, size_t block_k,
                                               kat_sparse_blockmask **out);

/* Any element mask: mask[((b*H + h)*N + i)*M + j] nonzero when query i may see key j (B and
 * H may be 1 to broadcast). Blocks with no allowed element are left out, blocks with all
 * allowed are flagged full. The mask is kept by reference: it must stay valid and unchanged
 * while this block mask or a layout built from it is in use. */
KAT_API kat_status kat_sparse_blockmask_from_dense(const uint8_t *mask, size_t B, size_t H, size_t N,
                                                   size_t M, size_t block_q, size_t block_k,
                                                   kat_sparse_blockmask **out);

/* Shape of a block mask: number of query blocks and key blocks per head, and the block
 * sizes. Any pointer may be NULL. */
KAT_API void kat_sparse_blockmask_shape(const kat_sparse_blockmask *mask, size_t *nqb, size_t *nkb,
                                        size_t *block_q, size_t *block_k);
/* The key blocks listed for query block qb of mask head (b, h) (b < mask B, h < mask H):
 * *count entries in *kblocks (increasing) with their *full flags. */
KAT_API kat_status kat_sparse_blockmask_kv_list(const kat_sparse_blockmask *mask, size_t b, size_t h,
                                                size_t qb, size_t *count, const int32_t **kblocks,
                                                const uint8_t **full);
/* The transposed list: the query blocks that list key block kb, increasing, with the same
 * flags. */
KAT_API kat_status kat_sparse_blockmask_q_list(const kat_sparse_blockmask *mask, size_t b, size_t h,
                                               size_t kb, size_t *count, const int32_t **qblocks,
                                               const uint8_t **full);

/* ---- statistics ---------------------------------------------------------------------------- */

/* What a sparse plan visits with given per-call data (kat_attn_plan_stats). */
/* What a layout visits. */
typedef struct {
    size_t q_rows, k_rows;     /* rows kept, over all heads */
    size_t q_tiles, k_tiles;   /* tiles over all heads */
    size_t tile_pairs;         /* (query tile, key tile) pairs visited */
    size_t masked_pairs;       /* of which need a causal or element mask */
    size_t pair_elements;      /* sum over the visited pairs of query rows x key rows */
    size_t dense_pairs;        /* pairs kat_attn's engine visits with the same shapes and
                                  causal flag (strict counts as causal), for comparison */
    size_t backward_units;     /* work units of the backward */
} kat_sparse_stats;

#ifdef __cplusplus
}
#endif
#endif
