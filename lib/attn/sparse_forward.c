/* The sparse forward: query tiles handed to threads dynamically, most pairs first; each runs
 * the flash tile interface over its listed key tiles, gathered through row pointers into the
 * caller's k and v, and scatters o and lse back through row pointers. Dropped query rows get
 * o = 0 and lse = -inf. */
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

_Static_assert(BQ <= 64, "element bits are one uint64_t per key row");

typedef struct {
    kat_flash_fwd st;
    const float **qrows;
    float **orows;
    float **lse;
    int32_t *qlim;
    const float **krows, **vrows;
    int32_t *kpos;
    uint64_t *bits;
} fwd_thread;

/* Lay out (mem != NULL) or measure a thread's scratch. */
static size_t fwd_thread_layout(const kat_flash_ctx *ctx, fwd_thread *th, unsigned char *mem)
{
    size_t sizes[] = {
        kat__flash_fwd_scratch_floats(ctx) * sizeof(float),
        3 * BQ * sizeof(void *),
        BQ * sizeof(int32_t),
        2 * BK * sizeof(void *),
        BK * sizeof(int32_t),
        BK * sizeof(uint64_t),
    };
    size_t total = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        total += kat_flash_round64(sizes[i]);
    if (mem) {
        kat__flash_fwd_init(ctx, &th->st, kat_flash_carve(&mem, sizes[0]));
        void **p = kat_flash_carve(&mem, sizes[1]);
        th->qrows = (const float **)p;
        th->orows = (float **)(p + BQ);
        th->lse = (float **)(p + 2 * BQ);
        th->qlim = kat_flash_carve(&mem, sizes[2]);
        void **kp = kat_flash_carve(&mem, sizes[3]);
        th->krows = (const float **)kp;
        th->vrows = (const float **)(kp + BK);
        th->kpos = kat_flash_carve(&mem, sizes[4]);
        th->bits = kat_flash_carve(&mem, sizes[5]);
    }
    return total;
}

size_t kat__sparse_fwd_thread_bytes(const kat_sparse_layout *L)
{
    return fwd_thread_layout(&L->ctx, NULL, NULL);
}

typedef struct {
    const kat_tensor *q, *k, *v, *o, *lse;
    const float *qg, *kg, *vg;   /* gathered rows in processing order, or NULL */
} fwd_args;

void kat__sparse_gather_head(const sp_side *s, const kat_tensor *t, size_t hd, float *dst)
{
    size_t b = hd / t->H, h = hd % t->H, D = t->D;
    for (size_t r = s->head_off[hd]; r < s->head_off[hd + 1]; r++)
        memcpy(dst + r * D, kat_tensor_row(t, b, h, (size_t)s->pos[r]), D * sizeof(float));
}

float *kat__sparse_gather_region(unsigned char **cursor, size_t rows, size_t D)
{
    return kat_flash_carve(cursor, rows * D * sizeof(float));
}

static void fwd_tile(const kat_sparse_layout *L, const fwd_args *a, size_t qt, fwd_thread *th)
{
    const kat_flash_ctx *ctx = &L->ctx;
    const sp_tile *Q = &L->qs.tiles[qt];
    size_t H = L->d.H, b = Q->head / H, h = Q->head % H, hk = h / L->g;
    const int32_t *qp = L->qs.pos + Q->row0;
    for (size_t i = 0; i < Q->n; i++) {
        size_t p = (size_t)qp[i];
        th->qrows[i] = a->qg ? a->qg + (Q->row0 + i) * L->d.D : kat_tensor_row(a->q, b, h, p);
        th->orows[i] = kat_tensor_row(a->o, b, h, p);
        th->lse[i] = a->lse ? kat_tensor_row(a->lse, b, h, p) : NULL;
        th->qlim[i] = qp[i] + L->shift;
    }
    kat__flash_fwd_begin(ctx, &th->st, Q->n, th->qrows, L->d.causal ? th->qlim : NULL);
    const kat_tensor *k = a->k, *v = a->v;
    const float *kbase = k->data + b * k->sb + hk * k->sh;
    const float *vbase = v->data + b * v->sb + hk * v->sh;
    for (size_t e = L->fwd_off[qt]; e < L->fwd_off[qt + 1]; e++) {
        const sp_tile *K = &L->ks.tiles[L->fwd_kt[e]];
        unsigned mask = L->fwd_mask[e];
        if (mask & SP_MASK_BITS) {
            int r = kat__sparse_pair_bits(L, Q, K, b, h, th->bits);
            if (r == 0)
                continue;   /* no lane may see any of these keys */
            if (r == 2)
                mask &= ~(unsigned)SP_MASK_BITS;
        }
        const int32_t *kp = L->ks.pos + K->row0;
        if (a->kg) {
            const float *kr = a->kg + K->row0 * L->d.D, *vr = a->vg + K->row0 * L->d.Dv;
            for (size_t j = 0; j < K->n; j++) {
                th->krows[j] = kr + j * L->d.D;
                th->vrows[j] = vr + j * L->d.Dv;
                th->kpos[j] = kp[j];
            }
        } else {
            for (size_t j = 0; j < K->n; j++) {
                th->krows[j] = kbase + (size_t)kp[j] * k->sn;
                th->vrows[j] = vbase + (size_t)kp[j] * v->sn;
                th->kpos[j] = kp[j];
            }
        }
        kat_flash_ktile kt = {K->n, th->krows, th->vrows, th->kpos, mask, th->bits};
        kat__flash_fwd_step(ctx, &th->st, &kt);
    }
    kat__flash_fwd_end(ctx, &th->st, th->orows, a->lse ? th->lse : NULL);
}

/* o = 0 and lse = -inf for the query rows a QK-drop layout leaves out of head hd. */
static void fwd_fill_dropped(const kat_sparse_layout *L, const fwd_args *a, size_t hd)
{
    size_t H = L->d.H, b = hd / H, h = hd % H;
    const int32_t *kept = L->qs.pos + L->qs.head_off[hd];
    size_t nk = L->qs.head_off[hd + 1] - L->qs.head_off[hd], c = 0;
    for (size_t n = 0; n < L->d.N; n++) {
        if (c < nk && (size_t)kept[c] == n) {
            c++;
            continue;
        }
        memset(kat_tensor_row(a->o, b, h, n), 0, L->d.Dv * sizeof(float));
        if (a->lse)
            *kat_tensor_row(a->lse, b, h, n) = -INFINITY;
    }
}

void kat__sparse_run_forward(const kat_sparse_layout *L, const kat_tensor *q,
                            const kat_tensor *k, const kat_tensor *v, const kat_tensor *o,
                            const kat_tensor *lse, unsigned char *work)
{
    fwd_args a = {q, k, v, o, lse, NULL, NULL, NULL};
    size_t nqt = L->qs.ntiles, heads = L->qs.compact ? L->qs.heads : 0, D = L->d.D;
    size_t gq = L->gather_q ? L->qs.heads : 0, gk = L->gather_k ? L->ks.heads : 0;
    unsigned char *cur = work + L->fwd_gather_off;
    if (L->gather_q)
        a.qg = kat__sparse_gather_region(&cur, L->qs.head_off[L->qs.heads], D);
    if (L->gather_k) {
        a.kg = kat__sparse_gather_region(&cur, L->ks.head_off[L->ks.heads], D);
        a.vg = kat__sparse_gather_region(&cur, L->ks.head_off[L->ks.heads], L->d.Dv);
    }
    int T = L->threads;
    (void)T;
#pragma omp parallel num_threads(T) if (T > 1 && nqt + heads > 1)
    {
        fwd_thread th;
        fwd_thread_layout(&L->ctx, &th, work + (size_t)THREAD_ID() * L->fwd_thread_bytes);
#pragma omp for schedule(dynamic, 1)
        for (size_t i = 0; i < gq + gk; i++) {
            if (i < gq) {
                kat__sparse_gather_head(&L->qs, q, i, (float *)a.qg);
            } else {
                kat__sparse_gather_head(&L->ks, k, i - gq, (float *)a.kg);
                kat__sparse_gather_head(&L->ks, v, i - gq, (float *)a.vg);
            }
        }
#pragma omp for schedule(dynamic, 1) nowait
        for (size_t i = 0; i < nqt; i++)
            fwd_tile(L, &a, L->fwd_order[i], &th);
#pragma omp for schedule(dynamic, 1)
        for (size_t hd = 0; hd < heads; hd++)
            fwd_fill_dropped(L, &a, hd);
    }
}
