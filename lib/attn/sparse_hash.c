/* Hash-sparse layouts: rows stably sorted by bucket per head (counting sort, or a comparison
 * sort when there are far more buckets than rows), cut into tiles; a (query tile, key tile)
 * pair is visited when the tiles' bucket ranges [min, max] intersect and, when causal, some
 * key position is at or before some query limit. Both tests use each tile's actual minimum
 * and maximum — nothing assumes that buckets and positions grow together — so the transposed
 * lists of the backward hold every query tile that can reach a key tile, whatever the bucket
 * layout. */
#include <stdlib.h>
#include <string.h>
#include "attn/sparse_internal.h"
#include "core/internal.h"

#define BQ KAT_FLASH_BQ
#define BK KAT_FLASH_BK

static kat_status check_buckets(const int32_t *bk, const char *what, size_t B, size_t H,
                                size_t N, size_t nb)
{
    size_t total = B * H * N;
    if (!total)
        return KAT_OK;
    if (!bk)
        return kat__fail(KAT_EINVAL, "%s is NULL", what);
    for (size_t i = 0; i < total; i++)
        if (bk[i] < 0 || (size_t)bk[i] >= nb) {
            size_t n = i % N, h = i / N % H, b = i / N / H;
            return kat__fail(KAT_EINVAL, "%s[%zu, %zu, %zu] = %d is outside [0, nb = %zu)", what,
                            b, h, n, (int)bk[i], nb);
        }
    return KAT_OK;
}

static int by_key(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Sort every head's rows by bucket, ties by position. */
static kat_status hash_side(sp_side *s, const int32_t *bk, size_t heads, size_t len, size_t nb)
{
    kat_status st = kat__sparse_side_alloc(s, heads, len, heads * len, 1);
    if (st)
        return st;
    for (size_t hd = 0; hd <= heads; hd++)
        s->head_off[hd] = hd * len;
    if (!len)
        return KAT_OK;
    int counting = nb <= 2 * len + 1024;
    size_t *count = NULL;
    uint64_t *keys = NULL;
    if (counting)
        count = kat__alloc_array(nb + 1, sizeof(size_t), "bucket counts");
    else
        keys = kat__alloc_array(len, sizeof(uint64_t), "bucket sort keys");
    if (!count && !keys)
        return KAT_ENOMEM;
    for (size_t hd = 0; hd < heads; hd++) {
        const int32_t *src = bk + hd * len;
        int32_t *pos = s->pos + hd * len, *dst = s->bucket + hd * len;
        if (counting) {
            memset(count, 0, (nb + 1) * sizeof(size_t));
            for (size_t n = 0; n < len; n++)
                count[src[n] + 1]++;
            for (size_t c = 0; c < nb; c++)
                count[c + 1] += count[c];
            for (size_t n = 0; n < len; n++) {
                size_t r = count[src[n]]++;
                pos[r] = (int32_t)n;
                dst[r] = src[n];
            }
        } else {
            for (size_t n = 0; n < len; n++)
                keys[n] = (uint64_t)(uint32_t)src[n] << 32 | (uint64_t)n;
            qsort(keys, len, sizeof(uint64_t), by_key);
            for (size_t n = 0; n < len; n++) {
                pos[n] = (int32_t)(keys[n] & 0xffffffffu);
                dst[n] = (int32_t)(keys[n] >> 32);
            }
        }
    }
    kat_free(count);
    kat_free(keys);
    return KAT_OK;
}

/* Key tiles are sorted by bucket, so the ones whose range meets [Q.bmin, Q.bmax] are
 * consecutive; positions are not sorted across buckets, so causality is checked per tile. */
static size_t hash_pairs(const kat_sparse_layout *L, const void *ctx, size_t qt, size_t *kt,
                         uint8_t *mask)
{
    (void)ctx;
    const sp_tile *Q = &L->qs.tiles[qt], *tiles = L->ks.tiles;
    size_t k0, k1, n = 0;
    kat__sparse_group_tiles(L, qt, &k0, &k1);
    size_t lo = k0, hi = k1;   /* first tile with bmax >= Q.bmin */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (tiles[mid].bmax < Q->bmin)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (size_t t = lo; t < k1 && tiles[t].bmin <= Q->bmax; t++) {
        const sp_tile *K = &tiles[t];
        int c = kat__sparse_causal_mask(L, Q, K);
        if (c < 0)
            continue;
        int one_bucket = Q->bmin == Q->bmax && K->bmin == K->bmax && Q->bmin == K->bmin;
        if (kt)
            kt[n] = t, mask[n] = (uint8_t)(c | (one_bucket ? 0 : SP_MASK_BITS));
        n++;
    }
    return n;
}

kat_status kat__sparse_hash_layout_create(const kat_attn_desc *desc, int threads, size_t nb,
                                         const int32_t *q_buckets, const int32_t *k_buckets,
                                         kat_sparse_layout **out)
{
    if (!out)
        return kat__fail(KAT_EINVAL, "hash_layout_create: out is NULL");
    if (nb == 0 || nb > (size_t)INT32_MAX)
        return kat__fail(KAT_EINVAL, "nb = %zu buckets: must be in 1 .. 2^31 - 1", nb);
    kat_sparse_layout *L = NULL;
    kat_status st = kat__sparse_layout_alloc(desc, threads, &L);
    if (st)
        return st;
    const kat_attn_desc *d = &L->d;
    L->bits_src = SP_BITS_BUCKET;
    L->gather_q = L->gather_k = 1;   /* bucket order scatters rows over the sequence */
    if ((st = check_buckets(q_buckets, "q_buckets", d->B, d->H, d->N, nb)) ||
        (st = check_buckets(k_buckets, "k_buckets", d->B, d->H_kv, d->M, nb)) ||
        (st = hash_side(&L->qs, q_buckets, d->B * d->H, d->N, nb)) ||
        (st = hash_side(&L->ks, k_buckets, d->B * d->H_kv, d->M, nb)) ||
        (st = kat__sparse_side_tile(&L->qs, BQ, 0)) || (st = kat__sparse_side_tile(&L->ks, BK, 0)) ||
        (st = kat__sparse_layout_finish(L, hash_pairs, NULL))) {
        kat__sparse_layout_destroy(L);
        return st;
    }
    *out = L;
    return KAT_OK;
}
