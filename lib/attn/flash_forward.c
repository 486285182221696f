/* The dense flash forward: query tiles handed to threads dynamically (heaviest first when
 * causal), each running the tile interface over its visible key tiles. When there are too few
 * query tiles to keep the threads busy (decoding: small N, large M) each tile's keys are
 * split into chunks processed as separate work items, whose partial softmax states are then
 * merged in a fixed order (deterministic for a given thread count). */
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

/* Per-thread scratch. */
typedef struct {
    kat_flash_fwd st;
    const float **qrows;
    float **orows;
    float **lse;
    int32_t *qlim;
    const float **krows;
    const float **vrows;
    int32_t *kpos;
} fwd_thread;

static size_t fwd_thread_bytes(const kat_flash_ctx *ctx)
{
    return kat_flash_round64(kat__flash_fwd_scratch_floats(ctx) * sizeof(float)) +
           kat_flash_round64(3 * BQ * sizeof(void *)) + kat_flash_round64(BQ * sizeof(int32_t)) +
           kat_flash_round64(2 * BK * sizeof(void *)) + kat_flash_round64(BK * sizeof(int32_t));
}

static void fwd_thread_init(const kat_flash_ctx *ctx, fwd_thread *th, unsigned char *mem)
{
    kat__flash_fwd_init(ctx, &th->st,
                       kat_flash_carve(&mem, kat__flash_fwd_scratch_floats(ctx) * sizeof(float)));
    void **ptrs = kat_flash_carve(&mem, 3 * BQ * sizeof(void *));
    th->qrows = (const float **)ptrs;
    th->orows = (float **)(ptrs + BQ);
    th->lse = (float **)(ptrs + 2 * BQ);
    th->qlim = kat_flash_carve(&mem, BQ * sizeof(int32_t));
    void **kp = kat_flash_carve(&mem, 2 * BK * sizeof(void *));
    th->krows = (const float **)kp;
    th->vrows = (const float **)(kp + BK);
    th->kpos = kat_flash_carve(&mem, BK * sizeof(int32_t));
}

kat_status kat__flash_forward_layout(kat_flash_plan *p)
{
    const kat_attn_desc *d = &p->d;
    size_t T = (size_t)p->threads, tiles_per_group, units;
    p->stack = d->N < BQ && p->g > 1;
    tiles_per_group = p->stack ? (p->g * d->N + BQ - 1) / BQ : p->g * p->tpn;
    if (kat_mul3_overflow(d->B, d->H_kv, tiles_per_group, &units))
        return kat__fail(KAT_ERANGE, "forward: too many query tiles");
    p->fwd_units = units;
    /* Split the keys when the query tiles alone cannot feed the threads; keep at least four
     * key tiles per chunk so merging stays negligible. */
    p->fwd_chunks = 1;
    if (units > 0 && units < 2 * T && p->nkt >= 8) {
        size_t c = (4 * T + units - 1) / units, cap = p->nkt / 4;
        p->fwd_chunks = c < cap ? c : cap;
    }
    p->fwd_thread_bytes = fwd_thread_bytes(&p->ctx);
    p->fwd_partial_floats = p->fwd_chunks > 1 ? 2 * BQ + BQ * p->ctx.ldd : 0;
    size_t a, b, items;
    if (kat_mul_overflow(T, p->fwd_thread_bytes, &a) ||
        kat_mul_overflow(units, p->fwd_chunks, &items) ||
        kat_mul3_overflow(items, p->fwd_partial_floats, sizeof(float), &b) ||
        kat_add_overflow(a, b, &p->fwd_bytes))
        return kat__fail(KAT_ERANGE, "forward: workspace size overflows");
    return KAT_OK;
}

/* Rows of unit u: fills the thread's row pointers and causal limits; returns the row count
 * and the batch and key/value head. */
static size_t unit_rows(const kat_flash_plan *p, const kat_tensor *q, const kat_tensor *o,
                        const kat_tensor *lse, size_t u, fwd_thread *th, size_t *b_out,
                        size_t *hk_out)
{
    const kat_attn_desc *d = &p->d;
    size_t b, n = 0;
    int32_t shift = (int32_t)((int64_t)d->M - (int64_t)d->N);
    if (p->stack) {
        size_t tps = (p->g * d->N + BQ - 1) / BQ, tile = u % tps, bhk = u / tps;
        size_t hk = bhk % d->H_kv, r0 = tile * BQ;
        b = bhk / d->H_kv;
        n = p->g * d->N - r0 < BQ ? p->g * d->N - r0 : BQ;
        for (size_t i = 0; i < n; i++) {
            size_t r = r0 + i, h = hk * p->g + r / d->N, nn = r % d->N;
            th->qrows[i] = kat_tensor_row(q, b, h, nn);
            th->orows[i] = kat_tensor_row(o, b, h, nn);
            th->lse[i] = lse ? kat_tensor_row(lse, b, h, nn) : NULL;
            th->qlim[i] = (int32_t)nn + shift;
        }
        *hk_out = hk;
    } else {
        /* Head-major order, each head's last (for causal, heaviest) tile first: the threads
         * share one head's keys and values in cache. */
        size_t rank = u % p->tpn, bh = u / p->tpn;
        size_t tile = p->tpn - 1 - rank, h = bh % d->H, i0 = tile * BQ;
        b = bh / d->H;
        n = d->N - i0 < BQ ? d->N - i0 : BQ;
        for (size_t i = 0; i < n; i++) {
            th->qrows[i] = kat_tensor_row(q, b, h, i0 + i);
            th->orows[i] = kat_tensor_row(o, b, h, i0 + i);
            th->lse[i] = lse ? kat_tensor_row(lse, b, h, i0 + i) : NULL;
            th->qlim[i] = (int32_t)(i0 + i) + shift;
        }
        *hk_out = h / p->g;
    }
    *b_out = b;
    return n;
}

static void fwd_item(const kat_flash_plan *p, const kat_tensor *q, const kat_tensor *k,
                     const kat_tensor *v, const kat_tensor *o, const kat_tensor *lse, size_t u,
                     size_t c, fwd_thread *th, float *partials)
{
    const kat_attn_desc *d = &p->d;
    const kat_flash_ctx *ctx = &p->ctx;
    size_t b, hk, n = unit_rows(p, q, o, lse, u, th, &b, &hk);
    int32_t minlim = INT32_MAX, maxlim = INT32_MIN;
    for (size_t i = 0; i < n; i++) {
        minlim = th->qlim[i] < minlim ? th->qlim[i] : minlim;
        maxlim = th->qlim[i] > maxlim ? th->qlim[i] : maxlim;
    }
    size_t kend = d->M;
    if (d->causal)
        kend = maxlim < 0 ? 0 : ((size_t)maxlim + 1 < d->M ? (size_t)maxlim + 1 : d->M);
    size_t nkt = (kend + BK - 1) / BK, C = p->fwd_chunks;
    size_t t0 = nkt * c / C, t1 = nkt * (c + 1) / C;
    kat__flash_fwd_begin(ctx, &th->st, n, th->qrows, d->causal ? th->qlim : NULL);
    const float *kbase = k->data + b * k->sb + hk * k->sh;
    const float *vbase = v->data + b * v->sb + hk * v->sh;
    for (size_t t = t0; t < t1; t++) {
        size_t j0 = t * BK, nk = kend - j0 < BK ? kend - j0 : BK;
        for (size_t j = 0; j < nk; j++) {
            th->krows[j] = kbase + (j0 + j) * k->sn;
            th->vrows[j] = vbase + (j0 + j) * v->sn;
        }
        kat_flash_ktile kt = {nk, th->krows, th->vrows, th->kpos, 0, NULL};
        /* Only tiles reaching past the first row's limit need the element mask. */
        if (d->causal && (int64_t)(j0 + nk - 1) > (int64_t)minlim) {
            kt.mask = KAT_FLASH_MASK_CAUSAL;
            for (size_t j = 0; j < nk; j++)
                th->kpos[j] = (int32_t)(j0 + j);
        }
        kat__flash_fwd_step(ctx, &th->st, &kt);
    }
    if (C == 1) {
        kat__flash_fwd_end(ctx, &th->st, th->orows, lse ? th->lse : NULL);
    } else {
        float *part = partials + (u * C + c) * p->fwd_partial_floats;
        kat__flash_fwd_save(ctx, &th->st, part, part + BQ, part + 2 * BQ);
    }
}

static void fwd_merge_unit(const kat_flash_plan *p, const kat_tensor *q, const kat_tensor *o,
                           const kat_tensor *lse, size_t u, fwd_thread *th,
                           const float *partials)
{
    size_t b, hk, n = unit_rows(p, q, o, lse, u, th, &b, &hk);
    kat__flash_fwd_reset(&p->ctx, &th->st, n, NULL);
    for (size_t c = 0; c < p->fwd_chunks; c++) {
        const float *part = partials + (u * p->fwd_chunks + c) * p->fwd_partial_floats;
        kat__flash_fwd_merge(&p->ctx, &th->st, part, part + BQ, part + 2 * BQ);
    }
    kat__flash_fwd_end(&p->ctx, &th->st, th->orows, lse ? th->lse : NULL);
}

void kat__flash_dense_forward(const kat_flash_plan *p, const kat_tensor *q, const kat_tensor *k,
                             const kat_tensor *v, const kat_tensor *o, const kat_tensor *lse,
                             unsigned char *work)
{
    size_t units = p->fwd_units, C = p->fwd_chunks, items = units * C;
    int T = p->threads;
    float *partials = (float *)(work + (size_t)T * p->fwd_thread_bytes);
    (void)T;
#pragma omp parallel num_threads(T) if (p->parallel && T > 1 && items > 1)
    {
        fwd_thread th;
        fwd_thread_init(&p->ctx, &th, work + (size_t)THREAD_ID() * p->fwd_thread_bytes);
#pragma omp for schedule(dynamic, 1)
        for (size_t it = 0; it < items; it++)
            fwd_item(p, q, k, v, o, lse, it / C, it % C, &th, partials);
        if (C > 1) {
#pragma omp for schedule(dynamic, 1)
            for (size_t u = 0; u < units; u++)
                fwd_merge_unit(p, q, o, lse, u, &th, partials);
        }
    }
}
