/* The sparse backward (FlashAttention-2 order: key tiles outer). A unit owns a range of one
 * key/value group's key tiles, so its dk and dv rows have no other writer. It prepares the
 * query tiles its key tiles' transposed lists name (Q^T, dO^T, lse, delta; once per unit),
 * accumulates their dq, and either writes dq out (the unit covers its whole group) or leaves
 * it in partial tiles that the last pass sums in unit order. Dropped rows get zero gradients. */
#include <math.h>
#include <string.h>
#include "attn/flash_plan.h"
#include "attn/sparse_internal.h"
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
    kat_flash_bwd_q *bq;       /* [max_touch] prepared query tiles */
    float *bq_store;           /* [max_touch][qfloats] */
    float *dq;                 /* [max_touch][BQ * ldd] */
    const float **qptr;        /* [max_touch][BQ] row pointers kept by the prepared tiles */
    const float **dptr;        /* [max_touch][BQ] */
    const float **orows;       /* [BQ] (preparation only) */
    const float **lse;         /* [BQ] */
    int32_t *qlim;             /* [BQ] */
    float *dk, *dv;            /* [BK][ldd] */
    float *scratch;
    const float **krows, **vrows;
    int32_t *kpos;
    uint64_t *bits;
    float **out_rows;          /* [max(BK, BQ)] */
} bwd_thread;

enum { BWD_BUFFERS = 16 };

/* Byte sizes of a thread's buffers, in the order bwd_thread_carve takes them. */
static void bwd_sizes(const kat_sparse_layout *L, size_t sizes[BWD_BUFFERS])
{
    size_t nt = L->max_touch ? L->max_touch : 1, ldd = L->ctx.ldd;
    size_t qfloats = kat__flash_bwd_q_floats(&L->ctx), i = 0;
    sizes[i++] = nt * sizeof(kat_flash_bwd_q);
    sizes[i++] = nt * qfloats * sizeof(float);
    sizes[i++] = nt * BQ * ldd * sizeof(float);
    sizes[i++] = nt * BQ * sizeof(void *);
    sizes[i++] = nt * BQ * sizeof(void *);
    sizes[i++] = BQ * sizeof(void *);
    sizes[i++] = BQ * sizeof(void *);
    sizes[i++] = BQ * sizeof(int32_t);
    sizes[i++] = BK * ldd * sizeof(float);
    sizes[i++] = BK * ldd * sizeof(float);
    sizes[i++] = kat__flash_bwd_scratch_floats() * sizeof(float);
    sizes[i++] = BK * sizeof(void *);
    sizes[i++] = BK * sizeof(void *);
    sizes[i++] = BK * sizeof(int32_t);
    sizes[i++] = BK * sizeof(uint64_t);
    sizes[i++] = (BK > BQ ? BK : BQ) * sizeof(void *);
}

static void bwd_thread_carve(const kat_sparse_layout *L, bwd_thread *th, unsigned char *mem)
{
    size_t sizes[BWD_BUFFERS], i = 0;
    bwd_sizes(L, sizes);
    th->bq = kat_flash_carve(&mem, sizes[i++]);
    th->bq_store = kat_flash_carve(&mem, sizes[i++]);
    th->dq = kat_flash_carve(&mem, sizes[i++]);
    th->qptr = kat_flash_carve(&mem, sizes[i++]);
    th->dptr = kat_flash_carve(&mem, sizes[i++]);
    th->orows = kat_flash_carve(&mem, sizes[i++]);
    th->lse = kat_flash_carve(&mem, sizes[i++]);
    th->qlim = kat_flash_carve(&mem, sizes[i++]);
    th->dk = kat_flash_carve(&mem, sizes[i++]);
    th->dv = kat_flash_carve(&mem, sizes[i++]);
    th->scratch = kat_flash_carve(&mem, sizes[i++]);
    th->krows = kat_flash_carve(&mem, sizes[i++]);
    th->vrows = kat_flash_carve(&mem, sizes[i++]);
    th->kpos = kat_flash_carve(&mem, sizes[i++]);
    th->bits = kat_flash_carve(&mem, sizes[i++]);
    th->out_rows = kat_flash_carve(&mem, sizes[i++]);
}

size_t kat__sparse_bwd_thread_bytes(const kat_sparse_layout *L)
{
    /* The per-tile buffers scale with max_touch, at most the query tiles of one group; check
     * their products anyway (0 means overflow). */
    size_t nt = L->max_touch ? L->max_touch : 1, t, total = 0, sizes[BWD_BUFFERS];
    if (kat_mul3_overflow(nt, kat__flash_bwd_q_floats(&L->ctx) + BQ * L->ctx.ldd, sizeof(float),
                          &t) ||
        kat_mul3_overflow(nt, 2 * BQ, sizeof(void *), &t))
        return 0;
    bwd_sizes(L, sizes);
    for (size_t i = 0; i < BWD_BUFFERS; i++)
        if (kat_add_overflow(total, kat_flash_round64(sizes[i]), &total))
            return 0;
    return total;
}

typedef struct {
    const kat_tensor *q, *k, *v, *o, *lse, *dout, *dq, *dk, *dv;
    const float *qg, *dg, *kg, *vg;   /* gathered rows in processing order, or NULL */
} bwd_args;

/* Position of qt in the increasing list tq[0 .. n). */
static size_t find_slot(const size_t *tq, size_t n, size_t qt)
{
    size_t lo = 0, hi = n;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (tq[mid] <= qt)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

static void bwd_unit(const kat_sparse_layout *L, const bwd_args *a, size_t u, bwd_thread *th,
                     float *parts)
{
    const kat_flash_ctx *ctx = &L->ctx;
    const sp_unit *U = &L->units[u];
    size_t H = L->d.H, Hkv = L->d.H_kv, b = U->group / Hkv, hk = U->group % Hkv;
    size_t ldd = ctx->ldd, tile_floats = BQ * ldd, qfloats = kat__flash_bwd_q_floats(ctx);
    const size_t *tq = L->touch + U->touch0;
    size_t ntouch = U->touch1 - U->touch0;

    for (size_t s = 0; s < ntouch; s++) {
        const sp_tile *Q = &L->qs.tiles[tq[s]];
        size_t h = Q->head % H;
        const int32_t *qp = L->qs.pos + Q->row0;
        const float **qr = th->qptr + s * BQ, **dr = th->dptr + s * BQ;
        for (size_t i = 0; i < Q->n; i++) {
            size_t p = (size_t)qp[i];
            qr[i] = a->qg ? a->qg + (Q->row0 + i) * L->d.D : kat_tensor_row(a->q, b, h, p);
            dr[i] = a->dg ? a->dg + (Q->row0 + i) * L->d.Dv : kat_tensor_row(a->dout, b, h, p);
            th->orows[i] = kat_tensor_row(a->o, b, h, p);
            th->lse[i] = kat_tensor_row(a->lse, b, h, p);
            th->qlim[i] = qp[i] + L->shift;
        }
        kat__flash_bwd_prepare(ctx, &th->bq[s], th->bq_store + s * qfloats, Q->n, qr, dr,
                              th->orows, th->lse, L->d.causal ? th->qlim : NULL);
        memset(th->dq + s * tile_floats, 0, Q->n * ldd * sizeof(float));
    }

    const kat_tensor *k = a->k, *v = a->v;
    const float *kbase = k->data + b * k->sb + hk * k->sh;
    const float *vbase = v->data + b * v->sb + hk * v->sh;
    for (size_t kt = U->kt0; kt < U->kt1; kt++) {
        const sp_tile *K = &L->ks.tiles[kt];
        const int32_t *kp = L->ks.pos + K->row0;
        for (size_t j = 0; j < K->n; j++) {
            th->krows[j] = a->kg ? a->kg + (K->row0 + j) * L->d.D : kbase + (size_t)kp[j] * k->sn;
            th->vrows[j] = a->vg ? a->vg + (K->row0 + j) * L->d.Dv : vbase + (size_t)kp[j] * v->sn;
            th->kpos[j] = kp[j];
        }
        memset(th->dk, 0, K->n * ldd * sizeof(float));
        memset(th->dv, 0, K->n * ldd * sizeof(float));
        for (size_t e = L->bwd_off[kt]; e < L->bwd_off[kt + 1]; e++) {
            size_t qt = L->bwd_qt[e], s = find_slot(tq, ntouch, qt);
            const sp_tile *Q = &L->qs.tiles[qt];
            unsigned mask = L->bwd_mask[e];
            if (mask & SP_MASK_BITS) {
                int r = kat__sparse_pair_bits(L, Q, K, b, Q->head % H, th->bits);
                if (r == 0)
                    continue;
                if (r == 2)
                    mask &= ~(unsigned)SP_MASK_BITS;
            }
            kat_flash_ktile ktile = {K->n, th->krows, th->vrows, th->kpos, mask, th->bits};
            kat__flash_bwd_step(ctx, &th->bq[s], &ktile, th->dq + s * tile_floats, th->dk,
                               th->dv, th->scratch);
        }
        for (size_t j = 0; j < K->n; j++)
            th->out_rows[j] = kat_tensor_row(a->dk, b, hk, (size_t)kp[j]);
        kat__flash_store_rows(ctx, K->n, th->dk, ctx->scale, th->out_rows, ctx->D);
        for (size_t j = 0; j < K->n; j++)
            th->out_rows[j] = kat_tensor_row(a->dv, b, hk, (size_t)kp[j]);
        kat__flash_store_rows(ctx, K->n, th->dv, 1.0f, th->out_rows, ctx->Dv);
    }

    for (size_t s = 0; s < ntouch; s++) {
        const sp_tile *Q = &L->qs.tiles[tq[s]];
        if (U->part0 == SIZE_MAX) {
            size_t h = Q->head % H;
            const int32_t *qp = L->qs.pos + Q->row0;
            for (size_t i = 0; i < Q->n; i++)
                th->out_rows[i] = kat_tensor_row(a->dq, b, h, (size_t)qp[i]);
            kat__flash_store_rows(ctx, Q->n, th->dq + s * tile_floats, ctx->scale, th->out_rows,
                                 ctx->D);
        } else {
            memcpy(parts + (U->part0 + s) * tile_floats, th->dq + s * tile_floats,
                   Q->n * ldd * sizeof(float));
        }
    }
}

/* dq of a query tile from the partial tiles of its split group, summed in unit order, or zero
 * when no unit touched it. */
static void bwd_reduce(const kat_sparse_layout *L, const bwd_args *a, size_t r,
                       const float *parts)
{
    size_t qt = L->red_tile[r], ldd = L->ctx.ldd, D = L->d.D;
    const sp_tile *Q = &L->qs.tiles[qt];
    size_t b = Q->head / L->d.H, h = Q->head % L->d.H;
    const int32_t *qp = L->qs.pos + Q->row0;
    size_t s0 = L->red_off[r], s1 = L->red_off[r + 1];
    for (size_t i = 0; i < Q->n; i++) {
        float *dst = kat_tensor_row(a->dq, b, h, (size_t)qp[i]);
        if (s0 == s1) {
            memset(dst, 0, D * sizeof(float));
            continue;
        }
        for (size_t d = 0; d < D; d++) {
            float acc = 0.0f;
            for (size_t s = s0; s < s1; s++)
                acc += parts[(L->red_src[s] * BQ + i) * ldd + d];
            dst[d] = acc * L->ctx.scale;
        }
    }
}

/* Zero the gradient rows of dropped rows: side 0 = queries (dq), 1 = keys (dk, dv). */
static void bwd_fill_dropped(const kat_sparse_layout *L, const bwd_args *a, int side, size_t hd)
{
    const sp_side *S = side ? &L->ks : &L->qs;
    size_t heads_per_b = side ? L->d.H_kv : L->d.H, b = hd / heads_per_b, h = hd % heads_per_b;
    size_t D = L->d.D;
    const int32_t *kept = S->pos + S->head_off[hd];
    size_t nk = S->head_off[hd + 1] - S->head_off[hd], c = 0;
    for (size_t n = 0; n < S->len; n++) {
        if (c < nk && (size_t)kept[c] == n) {
            c++;
            continue;
        }
        if (side) {
            memset(kat_tensor_row(a->dk, b, h, n), 0, D * sizeof(float));
            memset(kat_tensor_row(a->dv, b, h, n), 0, L->d.Dv * sizeof(float));
        } else {
            memset(kat_tensor_row(a->dq, b, h, n), 0, D * sizeof(float));
        }
    }
}

void kat__sparse_run_backward(const kat_sparse_layout *L, const kat_tensor *q,
                             const kat_tensor *k, const kat_tensor *v, const kat_tensor *o,
                             const kat_tensor *lse, const kat_tensor *dout,
                             const kat_tensor *dq, const kat_tensor *dk, const kat_tensor *dv,
                             unsigned char *work)
{
    bwd_args a = {q, k, v, o, lse, dout, dq, dk, dv, NULL, NULL, NULL, NULL};
    size_t units = L->nunits, nred = L->nred, D = L->d.D;
    size_t gq = L->gather_q ? L->qs.heads : 0, gk = L->gather_k ? L->ks.heads : 0;
    unsigned char *cur = work + L->bwd_gather_off;
    size_t qr = L->qs.head_off[L->qs.heads], kr = L->ks.head_off[L->ks.heads];
    if (L->gather_q) {
        a.qg = kat__sparse_gather_region(&cur, qr, D);
        a.dg = kat__sparse_gather_region(&cur, qr, L->d.Dv);
    }
    if (L->gather_k) {
        a.kg = kat__sparse_gather_region(&cur, kr, D);
        a.vg = kat__sparse_gather_region(&cur, kr, L->d.Dv);
    }
    size_t qfill = L->qs.compact ? L->qs.heads : 0, kfill = L->ks.compact ? L->ks.heads : 0;
    float *parts = (float *)(work + L->bwd_part_off);
    int T = L->threads;
    (void)T;
#pragma omp parallel num_threads(T) if (T > 1 && units + nred + qfill + kfill > 1)
    {
        bwd_thread th;
        bwd_thread_carve(L, &th, work + (size_t)THREAD_ID() * L->bwd_thread_bytes);
#pragma omp for schedule(dynamic, 1)
        for (size_t i = 0; i < gq + gk; i++) {
            if (i < gq) {
                kat__sparse_gather_head(&L->qs, q, i, (float *)a.qg);
                kat__sparse_gather_head(&L->qs, dout, i, (float *)a.dg);
            } else {
                kat__sparse_gather_head(&L->ks, k, i - gq, (float *)a.kg);
                kat__sparse_gather_head(&L->ks, v, i - gq, (float *)a.vg);
            }
        }
#pragma omp for schedule(dynamic, 1)
        for (size_t i = 0; i < units; i++)
            bwd_unit(L, &a, L->unit_order[i], &th, parts);
#pragma omp for schedule(dynamic, 4) nowait
        for (size_t r = 0; r < nred; r++)
            bwd_reduce(L, &a, r, parts);
#pragma omp for schedule(dynamic, 1) nowait
        for (size_t hd = 0; hd < qfill; hd++)
            bwd_fill_dropped(L, &a, 0, hd);
#pragma omp for schedule(dynamic, 1)
        for (size_t hd = 0; hd < kfill; hd++)
            bwd_fill_dropped(L, &a, 1, hd);
    }
}
