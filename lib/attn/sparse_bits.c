/* Element bits of masked tile pairs: bit i of bits[j] says whether query lane i may see key row
 * j. Hash buckets and the built-in block-mask predicates give each key row a contiguous range
 * of lanes (a few operations per row); dense masks and user predicates are read per element. */
#include "attn/sparse_internal.h"

/* Bits lo .. hi-1 (hi <= 64). */
static uint64_t lane_range(size_t lo, size_t hi)
{
    if (lo >= hi)
        return 0;
    uint64_t upto = hi >= 64 ? ~(uint64_t)0 : (((uint64_t)1 << hi) - 1);
    return upto & ~(((uint64_t)1 << lo) - 1);
}

/* Lanes [lo, hi) of a tile with positions p0 .. p0+n-1 whose position lies in [a, b]. */
static void clip_lanes(int64_t a, int64_t b, int64_t p0, size_t n, size_t *lo, size_t *hi)
{
    int64_t l = a - p0, h = b - p0 + 1;
    l = l < 0 ? 0 : l;
    h = h > (int64_t)n ? (int64_t)n : h;
    if (l >= h)
        l = h = 0;
    *lo = (size_t)l;
    *hi = (size_t)h;
}

void kat__sparse_pred_lanes(const sp_pred *p, int64_t p0, size_t n, int64_t j, size_t *lo,
                           size_t *hi, size_t *lo2, size_t *hi2)
{
    /* Aligned query position i' = i + s; the conditions below are on i'. */
    int64_t s = (int64_t)p->M - (int64_t)p->N, W = (int64_t)p->window;
    int64_t big = INT64_MAX / 4;
    *lo = *hi = *lo2 = *hi2 = 0;
    if (p->kind == SP_PRED_GLOBAL && j < (int64_t)p->global) {
        clip_lanes((p->causal ? j : -big) - s, big, p0, n, lo, hi);
        return;
    }
    if (W > 0) {
        int64_t a = p->causal ? j : j - W + 1, b = j + W - 1;
        clip_lanes(a - s, b - s, p0, n, lo, hi);
    }
    if (p->kind == SP_PRED_GLOBAL && !p->causal)
        clip_lanes(0, (int64_t)p->global - 1, p0, n, lo2, hi2);
}

int kat__sparse_pred_eval(const sp_pred *p, size_t b, size_t h, size_t i, size_t j)
{
    int64_t d = (int64_t)i + (int64_t)p->M - (int64_t)p->N - (int64_t)j;   /* i' - j */
    int64_t W = (int64_t)p->window;
    switch (p->kind) {
    case SP_PRED_WINDOW:
        return d < W && d > -W && (!p->causal || d >= 0);
    case SP_PRED_GLOBAL:
        return (j < p->global || (d < W && d > -W) || (!p->causal && i < p->global)) &&
               (!p->causal || d >= 0);
    case SP_PRED_DENSE: {
        size_t bm = p->B == 1 ? 0 : b, hm = p->H == 1 ? 0 : h;
        return p->dense[((bm * p->H + hm) * p->N + i) * p->M + j] != 0;
    }
    case SP_PRED_USER:
        return p->fn(p->arg, b, h, i, j) != 0;
    default:
        return 1;
    }
}

int kat__sparse_pair_bits(const kat_sparse_layout *L, const sp_tile *Q, const sp_tile *K,
                         size_t b, size_t h, uint64_t *bits)
{
    size_t n = Q->n, nk = K->n;
    const int32_t *kp = L->ks.pos + K->row0, *qp = L->qs.pos + Q->row0;
    if (L->bits_src == SP_BITS_BUCKET) {
        /* Both tiles are sorted by bucket: the lanes with key j's bucket are a range that
         * only moves forward. */
        const int32_t *qb = L->qs.bucket + Q->row0, *kb = L->ks.bucket + K->row0;
        size_t lo = 0, hi = 0;
        for (size_t j = 0; j < nk; j++) {
            int32_t x = kb[j];
            while (lo < n && qb[lo] < x)
                lo++;
            hi = hi > lo ? hi : lo;
            while (hi < n && qb[hi] == x)
                hi++;
            bits[j] = lane_range(lo, hi);
        }
    } else {
        const sp_pred *p = &L->pred;
        switch (p->kind) {
        case SP_PRED_WINDOW:
        case SP_PRED_GLOBAL:
            /* Block-mode tiles hold consecutive positions. */
            for (size_t j = 0; j < nk; j++) {
                size_t lo, hi, lo2, hi2;
                kat__sparse_pred_lanes(p, Q->pmin, n, kp[j], &lo, &hi, &lo2, &hi2);
                bits[j] = lane_range(lo, hi) | lane_range(lo2, hi2);
            }
            break;
        case SP_PRED_DENSE: {
            size_t bm = p->B == 1 ? 0 : b, hm = p->H == 1 ? 0 : h;
            for (size_t j = 0; j < nk; j++)
                bits[j] = 0;
            for (size_t i = 0; i < n; i++) {
                const uint8_t *row = p->dense + ((bm * p->H + hm) * p->N + (size_t)qp[i]) * p->M;
                for (size_t j = 0; j < nk; j++)
                    bits[j] |= (uint64_t)(row[kp[j]] != 0) << i;
            }
            break;
        }
        default:
            for (size_t j = 0; j < nk; j++) {
                uint64_t w = 0;
                for (size_t i = 0; i < n; i++)
                    w |= (uint64_t)kat__sparse_pred_eval(p, b, h, (size_t)qp[i], (size_t)kp[j])
                         << i;
                bits[j] = w;
            }
            break;
        }
    }
    uint64_t all = lane_range(0, n), any = 0, every = all;
    for (size_t j = 0; j < nk; j++) {
        any |= bits[j];
        every &= bits[j];
    }
    if (!any)
        return 0;
    return (every & all) == all ? 2 : 1;
}
