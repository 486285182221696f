/* The flash tile interface (never installed): one query tile against any list of key tiles,
 * forward and backward. The dense engine (flash_forward.c, flash_backward.c) is built on it,
 * and so can be the sparse backends (query/key dropping, hash buckets, block masks).
 *
 * A query tile is up to KAT_FLASH_BQ query rows, a key tile up to KAT_FLASH_BK key rows. Both
 * are given as arrays of row pointers, so strided, gathered or compacted rows all look alike;
 * original positions drive the causal mask, so a tile of gathered rows is masked correctly.
 *
 * Score tiles hold raw dot products s = (sign(scale) q).k; the softmax runs on
 * 2^(c2 (s - max)) with c2 = |scale| log2(e) kept as a float pair (c2, c2_lo), so Q is never
 * rounded by a scale and each probability carries only the exponential's error. The running
 * max m is in raw score units. Masks per (query tile, key tile) pair:
 *   - none: every pair allowed (the fast path);
 *   - KAT_FLASH_MASK_CAUSAL: key row j is visible to query lane i iff kpos[j] <= qlim[i], with
 *     qlim = query position + (M - N) (or any limit the caller wants);
 *   - KAT_FLASH_MASK_BITS: bit i of bits[j] says whether lane i may see row j;
 * both may be combined. Typical use, forward:
 *
 *     kat_flash_fwd st;  kat__flash_fwd_init(&ctx, &st, scratch);
 *     kat__flash_fwd_begin(&ctx, &st, nq, qrows, qlim);
 *     for each key tile kt visible to this query tile: kat__flash_fwd_step(&ctx, &st, &kt);
 *     kat__flash_fwd_end(&ctx, &st, orows, lse_ptrs);
 *
 * and backward: kat__flash_bwd_prepare() each query tile once (from the forward's fp32
 * logsumexp; or, more accurate, kat__flash_bwd_prepare_lse2() after a statistics pass of
 * kat__flash_fwd_stats_step() and kat__flash_fwd_lse2()), then kat__flash_bwd_step() for each
 * (query tile, key tile) pair with the accumulators you want (dq for a query tile, dk and dv
 * for a key tile, or all three), then scale dq and dk by ctx.scale when writing them out.
 * Accumulator tiles are 64-byte aligned with rows of ctx.ldd floats, zeroed by the caller. */
#ifndef KAT_FLASH_INTERNAL_H
#define KAT_FLASH_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include "kernels/kernels.h"

#ifndef KAT_FLASH_BK_ROWS
#define KAT_FLASH_BK_ROWS 96
#endif
enum {
    KAT_FLASH_BQ = KAT_KERN_LANES,   /* query rows per tile */
    KAT_FLASH_BK = KAT_FLASH_BK_ROWS /* key rows per tile, at most */
};

enum { KAT_FLASH_MASK_CAUSAL = 1u, KAT_FLASH_MASK_BITS = 2u };

/* Constants of one attention call. */
typedef struct {
    const kat_kernels *kern;
    size_t D;        /* head dimension of q and k */
    size_t Dv;       /* head dimension of v (and o, dout, dv) */
    size_t ldd;      /* max(D, Dv) rounded up to 16: row stride of the accumulator tiles */
    float qsign;     /* sign of the scale, applied to Q when packed (exact) */
    float c2;        /* |scale| * log2(e): raw scores to log2 units, applied after the max */
    float c2_lo;     /* |scale| * log2(e) - c2: with c2, the constant unrounded */
    double abs_scale;   /* |scale|, for the logsumexp */
    float scale;     /* the softmax scale; dq and dk are multiplied by it at the end */
} kat_flash_ctx;

void kat__flash_ctx_init(kat_flash_ctx *ctx, const kat_kernels *kern, size_t D, size_t Dv,
                        double scale);

/* A key tile as one query tile sees it. */
typedef struct {
    size_t n;                  /* rows, 1 .. KAT_FLASH_BK */
    const float *const *k;     /* n key rows of D floats */
    const float *const *v;     /* n value rows of Dv floats */
    const int32_t *pos;        /* n key positions (read with KAT_FLASH_MASK_CAUSAL) */
    unsigned mask;             /* 0 or KAT_FLASH_MASK_* bits */
    const uint64_t *bits;      /* n words (read with KAT_FLASH_MASK_BITS) */
} kat_flash_ktile;

/* ---- forward ------------------------------------------------------------------------------ */

/* The online-softmax state of one query tile. The arrays are lane-indexed (KAT_FLASH_BQ). */
typedef struct {
    size_t n;        /* valid query rows */
    size_t lanes;    /* n rounded up to KAT_KERN_LANE_STEP */
    float *qt;       /* [D][BQ] packed Q^T * qsign */
    float *o;        /* [BQ][ldd] unnormalised output accumulators */
    float *s;        /* [BK][BQ] score / probability tile */
    float *m;        /* running max (raw score units) */
    float *l;        /* running sum */
    float *alpha;    /* last rescale factors */
    int32_t *qlim;   /* causal limits */
} kat_flash_fwd;

/* Floats of scratch one forward state needs (64-byte aligned). */
size_t kat__flash_fwd_scratch_floats(const kat_flash_ctx *ctx);
/* Carve the state's buffers out of scratch (kat__flash_fwd_scratch_floats floats). */
void kat__flash_fwd_init(const kat_flash_ctx *ctx, kat_flash_fwd *st, float *scratch);
/* Start a query tile: pack n <= BQ rows, reset m = -inf, l = 0, o = 0. qlim (n entries) may
 * be NULL when no step uses KAT_FLASH_MASK_CAUSAL. */
void kat__flash_fwd_begin(const kat_flash_ctx *ctx, kat_flash_fwd *st, size_t n,
                         const float *const *qrows, const int32_t *qlim);
/* Reset the state for n rows without packing queries (before merging saved partials). */
void kat__flash_fwd_reset(const kat_flash_ctx *ctx, kat_flash_fwd *st, size_t n,
                         const int32_t *qlim);
/* Process one key tile. */
void kat__flash_fwd_step(const kat_flash_ctx *ctx, kat_flash_fwd *st, const kat_flash_ktile *kt);
/* Statistics only (no output accumulation): the running max and sum, for a backward that
 * recomputes the softmax normaliser instead of trusting an fp32 logsumexp. */
void kat__flash_fwd_stats_step(const kat_flash_ctx *ctx, kat_flash_fwd *st,
                              const kat_flash_ktile *kt);
/* The rows' logsumexp in log2 units, in double: |scale| log2(e) m + log2(l) (-inf for a row
 * that saw no key). */
void kat__flash_fwd_lse2(const kat_flash_ctx *ctx, const kat_flash_fwd *st, double *lse2);
/* Save the partial state (m, l: BQ floats each; o: BQ * ldd floats), e.g. for a split over
 * keys, and merge a saved partial state into st (exact: rescales both to the larger max). */
void kat__flash_fwd_save(const kat_flash_ctx *ctx, const kat_flash_fwd *st, float *m, float *l,
                        float *o);
void kat__flash_fwd_merge(const kat_flash_ctx *ctx, kat_flash_fwd *st, const float *m,
                         const float *l, const float *o);
/* Finish: orows[i] = o / l for the n rows (D floats each), and *lse[i] = natural-log
 * logsumexp when lse is not NULL (entries may be NULL). A row that saw no key gets o = 0 and
 * lse = -inf. */
void kat__flash_fwd_end(const kat_flash_ctx *ctx, const kat_flash_fwd *st, float *const *orows,
                       float *const *lse);

/* ---- backward ----------------------------------------------------------------------------- */

/* A query tile prepared for the backward. */
typedef struct {
    size_t n, lanes;
    const float *const *q;      /* n query rows */
    const float *const *dout;   /* n rows of dL/do */
    float *qt;                  /* [D][BQ] Q^T * qsign */
    float *dot;                 /* [D][BQ] dO^T */
    float *lse2;                /* [2][BQ] lse * log2(e) as hi + lo; +inf for rows with no
                                   key and for padding */
    float *delta;               /* [BQ] rowsum(dO * O) */
    int32_t *qlim;              /* [BQ] causal limits */
} kat_flash_bwd_q;

/* Floats of storage for one prepared query tile (64-byte aligned). */
size_t kat__flash_bwd_q_floats(const kat_flash_ctx *ctx);
/* Prepare a query tile in `storage` (kat__flash_bwd_q_floats floats). The row pointer arrays
 * q and dout are kept by reference (they must outlive the tile); orows and lse (per-row
 * pointers to the forward's natural-log logsumexp, fp32) are read now. qlim may be NULL (no
 * causal mask). */
void kat__flash_bwd_prepare(const kat_flash_ctx *ctx, kat_flash_bwd_q *bq, float *storage,
                           size_t n, const float *const *q, const float *const *dout,
                           const float *const *orows, const float *const *lse,
                           const int32_t *qlim);
/* The same with the normaliser as n log2-unit logsumexps in double (kat__flash_fwd_lse2 after
 * a statistics pass): probabilities as accurate as the forward's, whatever |lse|. */
void kat__flash_bwd_prepare_lse2(const kat_flash_ctx *ctx, kat_flash_bwd_q *bq, float *storage,
                                size_t n, const float *const *q, const float *const *dout,
                                const float *const *orows, const double *lse2,
                                const int32_t *qlim);
/* Floats of step scratch (two BK x BQ tiles). */
size_t kat__flash_bwd_scratch_floats(void);
/* One (query tile, key tile) pair: add its contributions to whichever accumulators are not
 * NULL: dq [BQ][ldd] (rows = query lanes), dk and dv [BK][ldd] (rows = key rows). dq and dk
 * still lack the factor ctx->scale. */
void kat__flash_bwd_step(const kat_flash_ctx *ctx, const kat_flash_bwd_q *bq,
                        const kat_flash_ktile *kt, float *dq, float *dk, float *dv,
                        float *scratch);

/* Write n accumulator rows (stride ctx->ldd) times factor into rows of D floats. */
void kat__flash_store_rows(const kat_flash_ctx *ctx, size_t n, const float *acc, float factor,
                          float *const *rows, size_t cols);

#endif
