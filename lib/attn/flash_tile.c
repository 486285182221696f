/* Flash tiles: one query tile against key tiles, forward (online softmax) and backward
 * (dq, dk, dv from the saved logsumexp), on top of the per-ISA kernels. See flash_internal.h. */
#include <math.h>
#include <string.h>
#include "attn/flash_internal.h"

#define BQ KAT_FLASH_BQ
#define BK KAT_FLASH_BK
#define LOG2E 1.4426950408889634
#define LN2 0.6931471805599453

static size_t round16(size_t n) { return (n + 15) & ~(size_t)15; }

void kat__flash_ctx_init(kat_flash_ctx *ctx, const kat_kernels *kern, size_t D, size_t Dv,
                        double scale)
{
    ctx->kern = kern;
    ctx->D = D;
    ctx->Dv = Dv ? Dv : D;
    ctx->ldd = round16(D > ctx->Dv ? D : ctx->Dv);
    ctx->qsign = scale < 0 ? -1.0f : 1.0f;
    ctx->c2 = (float)(fabs(scale) * LOG2E);
    ctx->c2_lo = (float)(fabs(scale) * LOG2E - (double)ctx->c2);
    ctx->abs_scale = fabs(scale);
    ctx->scale = (float)scale;
}

/* qt[d][i] = rows[i][d] * factor for i < n, 0 for the padding lanes up to `lanes`. */
static void pack_transposed(size_t D, size_t n, size_t lanes, const float *const *rows,
                            float factor, float *qt)
{
    for (size_t i = 0; i < n; i++) {
        const float *r = rows[i];
        for (size_t d = 0; d < D; d++)
            qt[d * BQ + i] = r[d] * factor;
    }
    for (size_t d = 0; d < D; d++)
        for (size_t i = n; i < lanes; i++)
            qt[d * BQ + i] = 0.0f;
}

static size_t lanes_for(size_t n)
{
    size_t l = (n + KAT_KERN_LANE_STEP - 1) / KAT_KERN_LANE_STEP * KAT_KERN_LANE_STEP;
    return l ? l : KAT_KERN_LANE_STEP;
}

/* ---- forward ------------------------------------------------------------------------------ */

size_t kat__flash_fwd_scratch_floats(const kat_flash_ctx *ctx)
{
    return round16(ctx->D * BQ) + BQ * ctx->ldd + BK * BQ + 4 * BQ;
}

void kat__flash_fwd_init(const kat_flash_ctx *ctx, kat_flash_fwd *st, float *scratch)
{
    st->n = 0;
    st->lanes = KAT_KERN_LANE_STEP;
    st->qt = scratch;
    scratch += round16(ctx->D * BQ);
    st->o = scratch;
    scratch += BQ * ctx->ldd;
    st->s = scratch;
    scratch += BK * BQ;
    st->m = scratch;
    st->l = scratch + BQ;
    st->alpha = scratch + 2 * BQ;
    st->qlim = (int32_t *)(scratch + 3 * BQ);
}

void kat__flash_fwd_reset(const kat_flash_ctx *ctx, kat_flash_fwd *st, size_t n,
                         const int32_t *qlim)
{
    st->n = n;
    st->lanes = lanes_for(n);
    for (size_t i = 0; i < BQ; i++) {
        st->m[i] = -INFINITY;
        st->l[i] = 0.0f;
        st->alpha[i] = 1.0f;
        st->qlim[i] = i < n ? (qlim ? qlim[i] : INT32_MAX) : INT32_MIN;
    }
    memset(st->o, 0, st->lanes * ctx->ldd * sizeof(float));
}

void kat__flash_fwd_begin(const kat_flash_ctx *ctx, kat_flash_fwd *st, size_t n,
                         const float *const *qrows, const int32_t *qlim)
{
    kat__flash_fwd_reset(ctx, st, n, qlim);
    pack_transposed(ctx->D, n, st->lanes, qrows, ctx->qsign, st->qt);
}

static void apply_masks(const kat_kernels *kern, const kat_flash_ktile *kt, size_t lanes,
                        float *s, const int32_t *qlim)
{
    if (kt->mask & KAT_FLASH_MASK_CAUSAL)
        kern->mask_causal(kt->n, lanes, s, kt->pos, qlim);
    if (kt->mask & KAT_FLASH_MASK_BITS)
        kern->mask_bits(kt->n, lanes, s, kt->bits);
}

void kat__flash_fwd_step(const kat_flash_ctx *ctx, kat_flash_fwd *st, const kat_flash_ktile *kt)
{
    const kat_kernels *kern = ctx->kern;
    if (kt->n == 0 || st->n == 0)
        return;
    kern->scores(kt->n, kt->k, ctx->D, st->qt, st->lanes, st->s);
    apply_masks(kern, kt, st->lanes, st->s, st->qlim);
    kern->softmax_online(kt->n, st->lanes, st->s, st->m, st->l, st->alpha, ctx->c2, ctx->c2_lo);
    /* o = alpha o + P V, rows = queries (the rescale rides on the accumulator load). */
    kern->accum(st->n, kt->n, st->s, 1, BQ, kt->v, ctx->Dv, st->o, ctx->ldd, st->alpha);
}

void kat__flash_fwd_stats_step(const kat_flash_ctx *ctx, kat_flash_fwd *st,
                              const kat_flash_ktile *kt)
{
    const kat_kernels *kern = ctx->kern;
    if (kt->n == 0 || st->n == 0)
        return;
    kern->scores(kt->n, kt->k, ctx->D, st->qt, st->lanes, st->s);
    apply_masks(kern, kt, st->lanes, st->s, st->qlim);
    kern->softmax_online(kt->n, st->lanes, st->s, st->m, st->l, st->alpha, ctx->c2, ctx->c2_lo);
}

void kat__flash_fwd_lse2(const kat_flash_ctx *ctx, const kat_flash_fwd *st, double *lse2)
{
    for (size_t i = 0; i < st->n; i++)
        lse2[i] = st->l[i] > 0.0f
                      ? ctx->abs_scale * LOG2E * (double)st->m[i] + log2((double)st->l[i])
                      : -INFINITY;
}

void kat__flash_fwd_save(const kat_flash_ctx *ctx, const kat_flash_fwd *st, float *m, float *l,
                        float *o)
{
    memcpy(m, st->m, BQ * sizeof(float));
    memcpy(l, st->l, BQ * sizeof(float));
    memcpy(o, st->o, st->lanes * ctx->ldd * sizeof(float));
}

void kat__flash_fwd_merge(const kat_flash_ctx *ctx, kat_flash_fwd *st, const float *m,
                         const float *l, const float *o)
{
    for (size_t i = 0; i < st->n; i++) {
        float mn = fmaxf(st->m[i], m[i]);
        if (mn == -INFINITY)
            continue;   /* neither part saw a key */
        double c = (double)ctx->c2 + ctx->c2_lo;
        float a = (float)exp2(c * ((double)st->m[i] - mn)), b = (float)exp2(c * ((double)m[i] - mn));
        st->l[i] = a * st->l[i] + b * l[i];
        float *dst = st->o + i * ctx->ldd;
        const float *src = o + i * ctx->ldd;
        for (size_t d = 0; d < ctx->Dv; d++)
            dst[d] = a * dst[d] + b * src[d];
        st->m[i] = mn;
    }
}

void kat__flash_fwd_end(const kat_flash_ctx *ctx, const kat_flash_fwd *st, float *const *orows,
                       float *const *lse)
{
    for (size_t i = 0; i < st->n; i++) {
        float *dst = orows[i];
        const float *acc = st->o + i * ctx->ldd;
        float li = st->l[i];
        if (li > 0.0f) {
            for (size_t d = 0; d < ctx->Dv; d++)
                dst[d] = acc[d] / li;
        } else {
            for (size_t d = 0; d < ctx->Dv; d++)
                dst[d] = 0.0f;
        }
        if (lse && lse[i])
            *lse[i] = li > 0.0f ? (float)(ctx->abs_scale * st->m[i] + log((double)li))
                                : -INFINITY;
    }
}

/* ---- backward ----------------------------------------------------------------------------- */

size_t kat__flash_bwd_q_floats(const kat_flash_ctx *ctx)
{
    return round16(ctx->D * BQ) + round16(ctx->Dv * BQ) + 4 * BQ;
}

static void bwd_prepare(const kat_flash_ctx *ctx, kat_flash_bwd_q *bq, float *storage,
                        size_t n, const float *const *q, const float *const *dout,
                        const float *const *orows, const float *const *lse,
                        const double *lse2, const int32_t *qlim)
{
    size_t D = ctx->D, Dv = ctx->Dv;
    bq->n = n;
    bq->lanes = lanes_for(n);
    bq->q = q;
    bq->dout = dout;
    bq->qt = storage;
    bq->dot = storage + round16(D * BQ);
    bq->lse2 = storage + round16(D * BQ) + round16(Dv * BQ);
    bq->delta = bq->lse2 + 2 * BQ;
    bq->qlim = (int32_t *)(bq->delta + BQ);
    pack_transposed(D, n, bq->lanes, q, ctx->qsign, bq->qt);
    pack_transposed(Dv, n, bq->lanes, dout, 1.0f, bq->dot);
    /* delta = rowsum(dO o) in the arithmetic of the dP tile. */
    ctx->kern->rowdot(n, Dv, orows, dout, bq->delta);
    for (size_t i = 0; i < BQ; i++) {
        if (i < n) {
            /* lse in log2 units as hi + lo, not rounded a second time. A row that saw no key
             * has lse = -inf: +inf here makes all its P exactly 0. */
            double L2 = lse ? (double)*lse[i] * LOG2E : lse2[i];
            float hi = L2 == -INFINITY ? INFINITY : (float)L2;
            bq->lse2[i] = hi;
            bq->lse2[BQ + i] = L2 == -INFINITY ? 0.0f : (float)(L2 - (double)hi);
            bq->qlim[i] = qlim ? qlim[i] : INT32_MAX;
        } else {
            bq->lse2[i] = INFINITY;
            bq->lse2[BQ + i] = 0.0f;
            bq->delta[i] = 0.0f;
            bq->qlim[i] = INT32_MIN;
        }
    }
}

void kat__flash_bwd_prepare(const kat_flash_ctx *ctx, kat_flash_bwd_q *bq, float *storage,
                           size_t n, const float *const *q, const float *const *dout,
                           const float *const *orows, const float *const *lse,
                           const int32_t *qlim)
{
    bwd_prepare(ctx, bq, storage, n, q, dout, orows, lse, NULL, qlim);
}

void kat__flash_bwd_prepare_lse2(const kat_flash_ctx *ctx, kat_flash_bwd_q *bq, float *storage,
                                size_t n, const float *const *q, const float *const *dout,
                                const float *const *orows, const double *lse2,
                                const int32_t *qlim)
{
    bwd_prepare(ctx, bq, storage, n, q, dout, orows, NULL, lse2, qlim);
}

size_t kat__flash_bwd_scratch_floats(void) { return 2 * BK * BQ; }

void kat__flash_bwd_step(const kat_flash_ctx *ctx, const kat_flash_bwd_q *bq,
                        const kat_flash_ktile *kt, float *dq, float *dk, float *dv,
                        float *scratch)
{
    const kat_kernels *kern = ctx->kern;
    size_t nk = kt->n, lanes = bq->lanes, D = ctx->D, Dv = ctx->Dv, ldd = ctx->ldd;
    if (nk == 0 || bq->n == 0)
        return;
    float *p = scratch, *ds = scratch + BK * BQ;
    kern->scores(nk, kt->k, D, bq->qt, lanes, p);                 /* S^T, raw */
    apply_masks(kern, kt, lanes, p, bq->qlim);
    kern->softmax_probs(nk, lanes, p, bq->lse2, ctx->c2, ctx->c2_lo);   /* P^T */
    if (dv)                                                        /* dV += P^T dO */
        kern->accum(nk, bq->n, p, BQ, 1, bq->dout, Dv, dv, ldd, NULL);
    kern->scores(nk, kt->v, Dv, bq->dot, lanes, ds);               /* dP^T = V dO^T */
    kern->softmax_grad(nk, lanes, p, ds, bq->delta);              /* dS^T = P (dP - delta) */
    if (dk)                                                        /* dK += dS^T Q */
        kern->accum(nk, bq->n, ds, BQ, 1, bq->q, D, dk, ldd, NULL);
    if (dq)                                                        /* dQ += dS K */
        kern->accum(bq->n, nk, ds, 1, BQ, kt->k, D, dq, ldd, NULL);
}

void kat__flash_store_rows(const kat_flash_ctx *ctx, size_t n, const float *acc, float factor,
                          float *const *rows, size_t cols)
{
    for (size_t r = 0; r < n; r++)
        for (size_t d = 0; d < cols; d++)
            rows[r][d] = acc[r * ctx->ldd + d] * factor;
}
