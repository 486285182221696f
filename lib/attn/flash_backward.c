/* The dense flash backward (FlashAttention-2 order: key tiles outer, query tiles inner). A
 * work unit owns one (batch, key/value head) and a range of its key tiles, so its dk and dv
 * rows have no other writer; it accumulates dq for every query head of the group. With few
 * such units (B * H_kv not a multiple of the threads) the keys are split into chunks, each
 * unit writes its dq into a private partial buffer, and a final pass sums the partials in a
 * fixed order. Every query tile is packed once per unit (Q^T, dO^T, lse, delta) and reused
 * for all its key tiles.
 *
 * Without a logsumexp (lse NULL) a first pass recomputes every row's softmax statistics (one
 * more Q K^T, no P V) so that P is as accurate as in the forward: an fp32 logsumexp carries a
 * rounding of |lse| 2^-24 into every probability, which for large |lse| dominates the
 * gradients' error. */
#include <string.h>
#include "attn/flash_plan.h"
#include "core/internal.h"
#include "core/kat_config.h"
#if KAT_HAVE_OPENMP
#include <omp.h>
#define THREAD_ID() omp_get_thread_num()
#else
#define THREAD_ID() 0
#endif

#define BQ KAT_FLASH_BQ
#define BK KAT_FLASH_BK

typedef struct {
    unsigned char *fwd;       /* forward-state scratch for the statistics pass */
    kat_flash_bwd_q *bq;      /* [g][tpn] prepared query tiles */
    float *bq_storage;        /* [g][tpn] * kat__flash_bwd_q_floats */
    const float **qrows;      /* [g][n_pad] */
    const float **drows;      /* [g][n_pad] */
    const float **orows;      /* [BQ] (preparation only) */
    const float **lse;        /* [BQ] */
    int32_t *qlim;            /* [BQ] */
    float *dq;                /* [g][n_pad][ldd] when the keys are not split */
    float *dk, *dv;           /* [BK][ldd] */
    float *scratch;           /* step scratch */
    const float **krows, **vrows;
    float **out_rows;         /* [max(BK, BQ)] rows being written */
    int32_t *kpos;
} bwd_thread;

/* Lay out (or, with mem NULL, only measure) a thread's scratch. */
static size_t bwd_thread_layout(const kat_flash_plan *p, bwd_thread *th, unsigned char *mem)
{
    size_t g = p->g, tiles = g * p->tpn, ldd = p->ctx.ldd;
    size_t sizes[] = {
        kat__flash_fwd_scratch_floats(&p->ctx) * sizeof(float),
        tiles * sizeof(kat_flash_bwd_q),
        tiles * kat__flash_bwd_q_floats(&p->ctx) * sizeof(float),
        g * p->n_pad * sizeof(void *),
        g * p->n_pad * sizeof(void *),
        BQ * sizeof(void *),
        BQ * sizeof(void *),
        BQ * sizeof(int32_t),
        p->bwd_chunks == 1 ? g * p->n_pad * ldd * sizeof(float) : 0,
        BK * ldd * sizeof(float),
        BK * ldd * sizeof(float),
        kat__flash_bwd_scratch_floats() * sizeof(float),
        BK * sizeof(void *),
        BK * sizeof(void *),
        (BK > BQ ? BK : BQ) * sizeof(void *),
        BK * sizeof(int32_t),
    };
    size_t total = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        total += kat_flash_round64(sizes[i]);
    if (mem) {
        size_t i = 0;
        th->fwd = kat_flash_carve(&mem, sizes[i++]);
        th->bq = kat_flash_carve(&mem, sizes[i++]);
        th->bq_storage = kat_flash_carve(&mem, sizes[i++]);
        th->qrows = kat_flash_carve(&mem, sizes[i++]);
        th->drows = kat_flash_carve(&mem, sizes[i++]);
        th->orows = kat_flash_carve(&mem, sizes[i++]);
        th->lse = kat_flash_carve(&mem, sizes[i++]);
        th->qlim = kat_flash_carve(&mem, sizes[i++]);
        th->dq = kat_flash_carve(&mem, sizes[i++]);
        th->dk = kat_flash_carve(&mem, sizes[i++]);
        th->dv = kat_flash_carve(&mem, sizes[i++]);
        th->scratch = kat_flash_carve(&mem, sizes[i++]);
        th->krows = kat_flash_carve(&mem, sizes[i++]);
        th->vrows = kat_flash_carve(&mem, sizes[i++]);
        th->out_rows = kat_flash_carve(&mem, sizes[i++]);
        th->kpos = kat_flash_carve(&mem, sizes[i++]);
    }
    return total;
}

kat_status kat__flash_backward_layout(kat_flash_plan *p)
{
    const kat_attn_desc *d = &p->d;
    size_t T = (size_t)p->threads, groups = d->B * d->H_kv;
    p->bwd_chunks = 1;
    if (groups > 0 && groups % T != 0 && groups < 4 * T && p->nkt > 1) {
        size_t c = (4 * T + groups - 1) / groups;
        p->bwd_chunks = c < p->nkt ? c : p->nkt;
    }
    p->bwd_units = groups * p->bwd_chunks;
    /* The per-thread sizes below are products of sizes already checked in the desc; check
     * the large ones anyway. */
    size_t t1, t2;
    if (kat_mul3_overflow(p->g, p->n_pad, p->ctx.ldd, &t1) ||
        kat_mul3_overflow(p->g * p->tpn, kat__flash_bwd_q_floats(&p->ctx), sizeof(float), &t2))
        return kat__fail(KAT_ERANGE, "backward: workspace size overflows");
    p->bwd_thread_bytes = bwd_thread_layout(p, NULL, NULL);
    size_t a, b = 0, st;
    if (kat_mul_overflow(T, p->bwd_thread_bytes, &a) ||
        (p->bwd_chunks > 1 &&
         (kat_mul3_overflow(d->B * d->H, p->bwd_chunks, p->n_pad, &b) ||
          kat_mul3_overflow(b, p->ctx.ldd, sizeof(float), &b))) ||
        kat_mul3_overflow(d->B * d->H, p->n_pad, sizeof(double), &st) ||
        kat_add_overflow(a, b, &p->bwd_bytes) ||
        kat_add_overflow(p->bwd_bytes, kat_flash_round64(st), &p->bwd_bytes))
        return kat__fail(KAT_ERANGE, "backward: workspace size overflows");
    p->bwd_part_bytes = kat_flash_round64(b);
    return KAT_OK;
}

typedef struct {
    const kat_tensor *q, *k, *v, *o, *lse, *dout, *dq, *dk, *dv;
} bwd_args;

static float *dq_partial(const kat_flash_plan *p, float *parts, size_t b, size_t h, size_t c)
{
    return parts + ((b * p->d.H + h) * p->bwd_chunks + c) * p->n_pad * p->ctx.ldd;
}

/* Statistics pass: the exact log2 logsumexp of every row of query tile idx (b, h, uq). */
static void bwd_stats_tile(const kat_flash_plan *p, const bwd_args *a, size_t idx,
                           bwd_thread *th, double *stats)
{
    const kat_attn_desc *d = &p->d;
    const kat_flash_ctx *ctx = &p->ctx;
    size_t uq = idx % p->tpn, bh = idx / p->tpn, b = bh / d->H, h = bh % d->H;
    size_t hk = h / p->g, i0 = uq * BQ, n = d->N - i0 < BQ ? d->N - i0 : BQ;
    int32_t shift = (int32_t)((int64_t)d->M - (int64_t)d->N);
    kat_flash_fwd st;
    kat__flash_fwd_init(ctx, &st, (float *)th->fwd);
    for (size_t i = 0; i < n; i++) {
        th->orows[i] = kat_tensor_row(a->q, b, h, i0 + i);
        th->qlim[i] = (int32_t)(i0 + i) + shift;
    }
    kat__flash_fwd_begin(ctx, &st, n, th->orows, d->causal ? th->qlim : NULL);
    int64_t minlim = (int64_t)i0 + shift, maxlim = minlim + (int64_t)n - 1;
    size_t kend = d->M;
    if (d->causal)
        kend = maxlim < 0 ? 0 : ((size_t)maxlim + 1 < d->M ? (size_t)maxlim + 1 : d->M);
    const float *kbase = a->k->data + b * a->k->sb + hk * a->k->sh;
    for (size_t j0 = 0; j0 < kend; j0 += BK) {
        size_t nk = kend - j0 < BK ? kend - j0 : BK;
        for (size_t j = 0; j < nk; j++) {
            th->krows[j] = kbase + (j0 + j) * a->k->sn;
            th->kpos[j] = (int32_t)(j0 + j);
        }
        kat_flash_ktile kt = {nk, th->krows, th->krows, th->kpos, 0, NULL};
        if (d->causal && (int64_t)(j0 + nk - 1) > minlim)
            kt.mask = KAT_FLASH_MASK_CAUSAL;
        kat__flash_fwd_stats_step(ctx, &st, &kt);
    }
    kat__flash_fwd_lse2(ctx, &st, stats + bh * p->n_pad + i0);
}

static void bwd_unit(const kat_flash_plan *p, const bwd_args *a, size_t u, bwd_thread *th,
                     float *parts, const double *stats)
{
    const kat_attn_desc *d = &p->d;
    const kat_flash_ctx *ctx = &p->ctx;
    size_t groups = d->B * d->H_kv, c = u / groups, bhk = u % groups;
    size_t b = bhk / d->H_kv, hk = bhk % d->H_kv, g = p->g, ldd = ctx->ldd;
    size_t C = p->bwd_chunks, qfloats = kat__flash_bwd_q_floats(ctx);
    int32_t shift = (int32_t)((int64_t)d->M - (int64_t)d->N);

    /* Pack every query tile of the group once. */
    for (size_t t = 0; t < g; t++) {
        size_t h = hk * g + t;
        const float **qr = th->qrows + t * p->n_pad, **dr = th->drows + t * p->n_pad;
        for (size_t i = 0; i < d->N; i++) {
            qr[i] = kat_tensor_row(a->q, b, h, i);
            dr[i] = kat_tensor_row(a->dout, b, h, i);
        }
        for (size_t uq = 0; uq < p->tpn; uq++) {
            size_t i0 = uq * BQ, n = d->N - i0 < BQ ? d->N - i0 : BQ;
            for (size_t i = 0; i < n; i++) {
                th->orows[i] = kat_tensor_row(a->o, b, h, i0 + i);
                th->lse[i] = a->lse ? kat_tensor_row(a->lse, b, h, i0 + i) : NULL;
                th->qlim[i] = (int32_t)(i0 + i) + shift;
            }
            kat_flash_bwd_q *bq = &th->bq[t * p->tpn + uq];
            float *store = th->bq_storage + (t * p->tpn + uq) * qfloats;
            if (a->lse)
                kat__flash_bwd_prepare(ctx, bq, store, n, qr + i0, dr + i0, th->orows, th->lse,
                                      d->causal ? th->qlim : NULL);
            else
                kat__flash_bwd_prepare_lse2(ctx, bq, store, n, qr + i0, dr + i0, th->orows,
                                           stats + (b * d->H + h) * p->n_pad + i0,
                                           d->causal ? th->qlim : NULL);
        }
        float *dq = C == 1 ? th->dq + t * p->n_pad * ldd : dq_partial(p, parts, b, h, c);
        memset(dq, 0, p->n_pad * ldd * sizeof(float));
    }

    const float *kbase = a->k->data + b * a->k->sb + hk * a->k->sh;
    const float *vbase = a->v->data + b * a->v->sb + hk * a->v->sh;
    size_t kt0 = p->nkt * c / C, kt1 = p->nkt * (c + 1) / C;
    for (size_t kt_i = kt0; kt_i < kt1; kt_i++) {
        size_t j0 = kt_i * BK, nk = d->M - j0 < BK ? d->M - j0 : BK;
        for (size_t j = 0; j < nk; j++) {
            th->krows[j] = kbase + (j0 + j) * a->k->sn;
            th->vrows[j] = vbase + (j0 + j) * a->v->sn;
            th->kpos[j] = (int32_t)(j0 + j);
        }
        memset(th->dk, 0, nk * ldd * sizeof(float));
        memset(th->dv, 0, nk * ldd * sizeof(float));
        for (size_t t = 0; t < g; t++) {
            size_t h = hk * g + t;
            float *dq = C == 1 ? th->dq + t * p->n_pad * ldd : dq_partial(p, parts, b, h, c);
            for (size_t uq = 0; uq < p->tpn; uq++) {
                const kat_flash_bwd_q *bq = &th->bq[t * p->tpn + uq];
                int64_t minlim = (int64_t)(uq * BQ) + shift;
                int64_t maxlim = minlim + (int64_t)bq->n - 1;
                kat_flash_ktile kt = {nk, th->krows, th->vrows, th->kpos, 0, NULL};
                if (d->causal) {
                    if (maxlim < (int64_t)j0)
                        continue;   /* no row of this tile sees these keys */
                    if ((int64_t)(j0 + nk - 1) > minlim)
                        kt.mask = KAT_FLASH_MASK_CAUSAL;
                }
                kat__flash_bwd_step(ctx, bq, &kt, dq + uq * BQ * ldd, th->dk, th->dv,
                                   th->scratch);
            }
        }
        for (size_t j = 0; j < nk; j++)
            th->out_rows[j] = kat_tensor_row(a->dk, b, hk, j0 + j);
        kat__flash_store_rows(ctx, nk, th->dk, ctx->scale, th->out_rows, ctx->D);
        for (size_t j = 0; j < nk; j++)
            th->out_rows[j] = kat_tensor_row(a->dv, b, hk, j0 + j);
        kat__flash_store_rows(ctx, nk, th->dv, 1.0f, th->out_rows, ctx->Dv);
    }

    if (C == 1)
        for (size_t t = 0; t < g; t++) {
            size_t h = hk * g + t;
            for (size_t uq = 0; uq < p->tpn; uq++) {
                size_t i0 = uq * BQ, n = d->N - i0 < BQ ? d->N - i0 : BQ;
                for (size_t i = 0; i < n; i++)
                    th->out_rows[i] = kat_tensor_row(a->dq, b, h, i0 + i);
                kat__flash_store_rows(ctx, n, th->dq + (t * p->n_pad + i0) * ldd, ctx->scale,
                                     th->out_rows, ctx->D);
            }
        }
}

/* Sum the key chunks' dq partials of one query tile, in chunk order. */
static void bwd_reduce_tile(const kat_flash_plan *p, const bwd_args *a, size_t idx,
                            float *parts)
{
    const kat_attn_desc *d = &p->d;
    size_t uq = idx % p->tpn, bh = idx / p->tpn, b = bh / d->H, h = bh % d->H;
    size_t i0 = uq * BQ, n = d->N - i0 < BQ ? d->N - i0 : BQ, ldd = p->ctx.ldd;
    for (size_t i = 0; i < n; i++) {
        float *dst = kat_tensor_row(a->dq, b, h, i0 + i);
        float *acc = dq_partial(p, parts, b, h, 0) + (i0 + i) * ldd;
        for (size_t c = 1; c < p->bwd_chunks; c++) {
            const float *src = dq_partial(p, parts, b, h, c) + (i0 + i) * ldd;
            for (size_t j = 0; j < d->D; j++)
                acc[j] += src[j];
        }
        for (size_t j = 0; j < d->D; j++)
            dst[j] = acc[j] * p->ctx.scale;
    }
}

void kat__flash_dense_backward(const kat_flash_plan *p, const kat_tensor *q,
                              const kat_tensor *k, const kat_tensor *v, const kat_tensor *o,
                              const kat_tensor *lse, const kat_tensor *dout,
                              const kat_tensor *dq, const kat_tensor *dk, const kat_tensor *dv,
                              unsigned char *work)
{
    bwd_args a = {q, k, v, o, lse, dout, dq, dk, dv};
    size_t units = p->bwd_units, tiles = p->d.B * p->d.H * p->tpn;
    int T = p->threads;
    float *parts = (float *)(work + (size_t)T * p->bwd_thread_bytes);
    double *stats = (double *)((unsigned char *)parts + p->bwd_part_bytes);
    (void)T;
#pragma omp parallel num_threads(T) if (p->parallel && T > 1 && (units > 1 || (!lse && tiles > 1)))
    {
        bwd_thread th;
        bwd_thread_layout(p, &th, work + (size_t)THREAD_ID() * p->bwd_thread_bytes);
        if (!lse) {
#pragma omp for schedule(dynamic, 1)
            for (size_t i = 0; i < tiles; i++)   /* last tiles first: heaviest when causal */
                bwd_stats_tile(p, &a, tiles - 1 - i, &th, stats);
        }
#pragma omp for schedule(dynamic, 1)
        for (size_t u = 0; u < units; u++)
            bwd_unit(p, &a, u, &th, parts, stats);
        if (p->bwd_chunks > 1) {
#pragma omp for schedule(dynamic, 1)
            for (size_t i = 0; i < tiles; i++)
                bwd_reduce_tile(p, &a, i, parts);
        }
    }
}
