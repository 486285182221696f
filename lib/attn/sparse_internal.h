/* The sparse layout (never installed): the rows of each side in processing order, their tiles,
 * the (query tile, key tile) pairs to visit with each pair's mask, the transposed pairs and
 * the work units of the backward. Every mode (QK-drop, hash, block mask) only fills the two
 * sides and generates pairs; sparse_layout.c, sparse_forward.c and sparse_backward.c do the
 * rest the same way for all. */
#ifndef KAT_SPARSE_INTERNAL_H
#define KAT_SPARSE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include "attn/flash_internal.h"
#include "kat/attn.h"
#include "kat/sparse.h"

/* ---- layouts (built by the sparse solvers from a pattern and its per-call data) ----------- */

typedef struct kat_sparse_layout kat_sparse_layout;

/* QK-drop: keep the listed query rows (q_keep: B, H, N of the desc) and key rows (k_keep: B,
 * H_kv, M); NULL keeps every row of that side. */
kat_status kat__sparse_qk_layout_create(const kat_attn_desc *desc, int threads,
                                       const kat_sparse_keep *q_keep,
                                       const kat_sparse_keep *k_keep, kat_sparse_layout **out);
/* Hash: q_buckets [B, H, N] and k_buckets [B, H_kv, M] (contiguous int32, values in
 * [0, nb)); query i sees key j only if q_buckets[i] == k_buckets[j]. nb = 1 is dense. */
kat_status kat__sparse_hash_layout_create(const kat_attn_desc *desc, int threads, size_t nb,
                                         const int32_t *q_buckets, const int32_t *k_buckets,
                                         kat_sparse_layout **out);
/* Block mask: shapes must match the desc (mask B and H equal or 1). The layout copies what it
 * needs (a dense mask's data and a predicate's arg are kept by reference). */
kat_status kat__sparse_block_layout_create(const kat_attn_desc *desc, int threads,
                                          const kat_sparse_blockmask *mask,
                                          kat_sparse_layout **out);
void kat__sparse_layout_destroy(kat_sparse_layout *layout);   /* NULL ok */
kat_status kat__sparse_layout_stats(const kat_sparse_layout *layout, kat_sparse_stats *out);

/* Pair masks: the flash tile's mask bits (the element bits come from the pattern). */
enum { SP_MASK_CAUSAL = KAT_FLASH_MASK_CAUSAL, SP_MASK_BITS = KAT_FLASH_MASK_BITS };

/* Rows of one tile: a contiguous range of one head's ordered rows. */
typedef struct {
    size_t row0;          /* first row, an index into the side's pos[] */
    size_t head;          /* b*H + h (queries) or b*H_kv + hk (keys) */
    uint32_t n;           /* rows */
    int32_t pmin, pmax;   /* smallest and largest original position */
    int32_t bmin, bmax;   /* smallest and largest bucket (hash mode; 0 otherwise) */
} sp_tile;

/* One side (queries or keys). */
typedef struct {
    size_t heads;        /* B*H or B*H_kv */
    size_t len;          /* N or M: rows per head before dropping */
    size_t *head_off;    /* [heads + 1] offsets into pos */
    int32_t *pos;        /* original positions in processing order */
    int32_t *bucket;     /* bucket of each ordered row (hash mode), else NULL */
    int compact;         /* some rows are missing (QK-drop): they are zero-filled */
    size_t *tile_off;    /* [heads + 1] offsets into tiles */
    size_t ntiles;
    sp_tile *tiles;
} sp_side;

/* Element predicates of block masks. */
typedef enum { SP_PRED_NONE = 0, SP_PRED_WINDOW, SP_PRED_GLOBAL, SP_PRED_DENSE, SP_PRED_USER } sp_pred_kind;

typedef struct {
    sp_pred_kind kind;
    size_t B, H, N, M;       /* mask shape (B, H may be 1: broadcast) */
    size_t window, global;
    int causal;
    const uint8_t *dense;
    kat_sparse_mask_fn fn;
    void *arg;
} sp_pred;

/* Where the element bits of a masked pair come from. */
typedef enum { SP_BITS_NONE = 0, SP_BITS_BUCKET, SP_BITS_PRED } sp_bits_src;

/* A backward work unit: key tiles [kt0, kt1) of one key/value group. */
typedef struct {
    size_t group;        /* b*H_kv + hk */
    size_t kt0, kt1;     /* global key tile ids */
    size_t pairs;
    size_t touch0, touch1;   /* its query tiles: touch[touch0 .. touch1) */
    size_t part0;        /* first partial dq slot (split groups), else SIZE_MAX */
} sp_unit;

struct kat_sparse_layout {
    kat_attn_desc d;          /* resolved; d.causal as given (0, 1, 2) */
    int32_t shift;            /* query limit = position + shift (M - N, minus 1 if strict) */
    size_t g;                 /* query heads per key/value head */
    kat_flash_ctx ctx;
    int threads;
    sp_side qs, ks;
    sp_bits_src bits_src;
    sp_pred pred;             /* block mode */
    size_t block_q, block_k;  /* block mode */
    /* pairs by query tile (forward) and by key tile (backward) */
    size_t npairs, nmasked, pair_elements;
    size_t *fwd_off, *fwd_kt;
    uint8_t *fwd_mask;
    size_t *bwd_off, *bwd_qt;
    uint8_t *bwd_mask;
    size_t *fwd_order;        /* query tiles, most pairs first */
    /* backward units */
    size_t nunits;
    sp_unit *units;
    size_t *unit_order;       /* most pairs first */
    size_t *touch;            /* query tiles of each unit, increasing */
    size_t max_touch;
    size_t part_slots;        /* partial dq tiles of split groups */
    size_t nred;              /* query tiles the final pass writes: split or untouched */
    size_t *red_tile, *red_off, *red_src;
    /* Gather: copy the query side's rows (q; dout in the backward) and the key side's (k,
     * v) into processing order in the workspace first, when that order is not the tensors'
     * own (hash: bucket order; QK-drop: rows with gaps), so that tiles stream contiguous rows
     * instead of fetching scattered ones each time a tile is visited (measured: a quarter
     * of the CPU time of QK-drop at 50%, N = 32768). */
    int gather_q, gather_k;
    /* workspace: per-thread scratch, then (backward) partial dq tiles, then gathered rows */
    size_t fwd_thread_bytes, fwd_gather_off, fwd_bytes;
    size_t bwd_thread_bytes, bwd_part_off, bwd_gather_off, bwd_bytes;
};

/* ---- sparse_layout.c ---------------------------------------------------------------------- */

/* Check and resolve the desc (causal 0, 1 or 2), allocate a zeroed layout with the kernels
 * of now and `threads` threads (the plan's). */
kat_status kat__sparse_layout_alloc(const kat_attn_desc *desc, int threads,
                                   kat_sparse_layout **out);

/* Allocate a side's head_off (heads + 1) and pos (rows), and bucket when with_bucket. */
kat_status kat__sparse_side_alloc(sp_side *s, size_t heads, size_t len, size_t rows,
                                 int with_bucket);

/* Cut each head's ordered rows into tiles of at most `tile` rows; with seg > 0 no tile
 * crosses a multiple of seg ordered rows (block boundaries); with buckets, large buckets
 * start a new tile. Fills min/max position and bucket. */
kat_status kat__sparse_side_tile(sp_side *s, size_t tile, size_t seg);

/* Pair generator of a mode: for query tile qt, write its pairs (key tile ids, increasing, and
 * masks) when kt is not NULL; return their number. Must give the same list both times. */
typedef size_t (*sp_pair_gen)(const kat_sparse_layout *L, const void *ctx, size_t qt,
                              size_t *kt, uint8_t *mask);

/* Generate every pair, transpose, order the work and size the workspaces. */
kat_status kat__sparse_layout_finish(kat_sparse_layout *L, sp_pair_gen gen, const void *ctx);

/* The key tiles of query tile qt's key/value group: [*k0, *k1). */
void kat__sparse_group_tiles(const kat_sparse_layout *L, size_t qt, size_t *k0, size_t *k1);

/* Causal part of a pair's mask from the tiles' position ranges: -1 when no row of the key
 * tile is visible to any row of the query tile (skip), SP_MASK_CAUSAL when some are and some
 * are not, 0 when all are (or not causal). */
int kat__sparse_causal_mask(const kat_sparse_layout *L, const sp_tile *Q, const sp_tile *K);

/* ---- sparse_bits.c ------------------------------------------------------------------------ */

/* The element bits of a masked pair: bits[j] bit i set when lane i of Q may see row j of K
 * (causality aside). Returns 0 when no bit is set (skip the pair), 2 when all n lanes of all
 * rows are set (no element mask needed), 1 otherwise. b and h are the query head's. */
int kat__sparse_pair_bits(const kat_sparse_layout *L, const sp_tile *Q, const sp_tile *K,
                         size_t b, size_t h, uint64_t *bits);

/* Lane range [lo, hi) of a query tile with consecutive positions p0 .. p0+n-1 that a built-in
 * predicate lets see key j; also used to build block lists. */
void kat__sparse_pred_lanes(const sp_pred *p, int64_t p0, size_t n, int64_t j, size_t *lo,
                           size_t *hi, size_t *lo2, size_t *hi2);

/* One element of a predicate (any kind). */
int kat__sparse_pred_eval(const sp_pred *p, size_t b, size_t h, size_t i, size_t j);

/* ---- sparse_forward.c, sparse_backward.c ------------------------------------------------- */

void kat__sparse_run_forward(const kat_sparse_layout *L, const kat_tensor *q,
                            const kat_tensor *k, const kat_tensor *v, const kat_tensor *o,
                            const kat_tensor *lse, unsigned char *work);
void kat__sparse_run_backward(const kat_sparse_layout *L, const kat_tensor *q,
                             const kat_tensor *k, const kat_tensor *v, const kat_tensor *o,
                             const kat_tensor *lse, const kat_tensor *dout,
                             const kat_tensor *dq, const kat_tensor *dk, const kat_tensor *dv,
                             unsigned char *work);
/* Copy the rows of one head of t (B x heads_per_b heads) into processing order: dst[r] =
 * row (b, h, pos[r]) for the head's ordered rows r (D floats each). */
void kat__sparse_gather_head(const sp_side *s, const kat_tensor *t, size_t hd, float *dst);
/* 64-byte aligned regions of rows * D floats, carved from *cursor. */
float *kat__sparse_gather_region(unsigned char **cursor, size_t rows, size_t D);
/* Per-thread scratch sizes (bytes) of the two passes. */
size_t kat__sparse_fwd_thread_bytes(const kat_sparse_layout *L);
size_t kat__sparse_bwd_thread_bytes(const kat_sparse_layout *L);

/* ---- sparse_blockmask.c ------------------------------------------------------------------- */

struct kat_sparse_blockmask {
    size_t B, H, N, M, bq, bk, nqb, nkb;
    size_t *kv_off;       /* [B*H*nqb + 1] */
    int32_t *kv_idx;
    uint8_t *kv_full;
    size_t *q_off;        /* [B*H*nkb + 1], transposed */
    int32_t *q_idx;
    uint8_t *q_full;
    sp_pred pred;
};

#endif
