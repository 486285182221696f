/* QK-drop: keep lists (check, build from a boolean mask) and their layout. The kept rows of
 * each head are compacted in position order (no padding to the longest head), so the tiles'
 * positions increase and a query tile's visible key tiles are a prefix of its group's. */
#include <string.h>
#include "attn/sparse_internal.h"
#include "core/internal.h"

#define BQ KAT_FLASH_BQ
#define BK KAT_FLASH_BK

kat_status kat_sparse_keep_check(const kat_sparse_keep *keep, const char *what)
{
    if (!keep)
        return kat__fail(KAT_EINVAL, "%s is NULL", what);
    size_t heads;
    if (kat_mul_overflow(keep->B, keep->H, &heads) || heads == SIZE_MAX)
        return kat__fail(KAT_ERANGE, "%s: B = %zu times H = %zu overflows", what, keep->B,
                        keep->H);
    if (keep->N >= (size_t)INT32_MAX)
        return kat__fail(KAT_ERANGE, "%s: N = %zu is not below 2^31 - 1", what, keep->N);
    if (!keep->offsets)
        return kat__fail(KAT_EINVAL, "%s: offsets is NULL", what);
    if (keep->offsets[0] != 0)
        return kat__fail(KAT_EINVAL, "%s: offsets[0] = %zu, must be 0", what, keep->offsets[0]);
    for (size_t hd = 0; hd < heads; hd++) {
        size_t o0 = keep->offsets[hd], o1 = keep->offsets[hd + 1];
        if (o1 < o0)
            return kat__fail(KAT_EINVAL, "%s: offsets decrease at head %zu (%zu after %zu)", what,
                            hd, o1, o0);
        if (o1 - o0 > keep->N)
            return kat__fail(KAT_EINVAL, "%s: head %zu keeps %zu rows of N = %zu", what, hd,
                            o1 - o0, keep->N);
    }
    if (keep->offsets[heads] && !keep->idx)
        return kat__fail(KAT_EINVAL, "%s: idx is NULL for %zu kept rows", what,
                        keep->offsets[heads]);
    for (size_t hd = 0; hd < heads; hd++) {
        size_t b = hd / (keep->H ? keep->H : 1), h = hd % (keep->H ? keep->H : 1);
        for (size_t e = keep->offsets[hd]; e < keep->offsets[hd + 1]; e++) {
            int32_t x = keep->idx[e];
            if (x < 0 || (size_t)x >= keep->N)
                return kat__fail(KAT_EINVAL,
                                "%s: head (%zu, %zu) keeps row %d, outside [0, N = %zu)", what,
                                b, h, (int)x, keep->N);
            if (e > keep->offsets[hd] && x <= keep->idx[e - 1])
                return kat__fail(KAT_EINVAL,
                                "%s: head (%zu, %zu) rows are not strictly increasing (%d after "
                                "%d): %s",
                                what, b, h, (int)x, (int)keep->idx[e - 1],
                                x == keep->idx[e - 1] ? "duplicated" : "unsorted");
        }
    }
    return KAT_OK;
}

kat_status kat_sparse_keep_from_mask(const uint8_t *mask, size_t B, size_t H, size_t N,
                                     kat_sparse_keep *out)
{
    if (!out)
        return kat__fail(KAT_EINVAL, "keep_from_mask: out is NULL");
    size_t heads, total;
    if (kat_mul_overflow(B, H, &heads) || kat_mul_overflow(heads, N, &total) ||
        heads == SIZE_MAX)
        return kat__fail(KAT_ERANGE, "keep_from_mask: shape [%zu, %zu, %zu] overflows", B, H, N);
    if (N >= (size_t)INT32_MAX)
        return kat__fail(KAT_ERANGE, "keep_from_mask: N = %zu is not below 2^31 - 1", N);
    if (!mask && total)
        return kat__fail(KAT_EINVAL, "keep_from_mask: mask is NULL");
    size_t kept = 0;
    for (size_t i = 0; i < total; i++)
        kept += mask[i] != 0;
    size_t *off = kat__alloc_array(heads + 1, sizeof(size_t), "keep offsets");
    int32_t *idx = kat__alloc_array(kept ? kept : 1, sizeof(int32_t), "keep indices");
    if (!off || !idx) {
        kat_free(off), kat_free(idx);
        return KAT_ENOMEM;
    }
    size_t c = 0;
    for (size_t hd = 0; hd < heads; hd++) {
        off[hd] = c;
        for (size_t n = 0; n < N; n++)
            if (mask[hd * N + n])
                idx[c++] = (int32_t)n;
    }
    off[heads] = c;
    kat_sparse_keep k = {B, H, N, off, idx};
    *out = k;
    return KAT_OK;
}

void kat_sparse_keep_free(kat_sparse_keep *keep)
{
    if (!keep)
        return;
    kat_free((void *)keep->offsets);
    kat_free((void *)keep->idx);
    memset(keep, 0, sizeof *keep);
}

/* One side from a keep list, or every row when keep is NULL. */
static kat_status qk_side(sp_side *s, const kat_sparse_keep *keep, size_t heads, size_t len)
{
    size_t rows = keep ? keep->offsets[heads] : heads * len;
    kat_status st = kat__sparse_side_alloc(s, heads, len, rows, 0);
    if (st)
        return st;
    for (size_t hd = 0; hd <= heads; hd++)
        s->head_off[hd] = keep ? keep->offsets[hd] : hd * len;
    if (keep) {
        memcpy(s->pos, keep->idx, rows * sizeof(int32_t));
    } else {
        for (size_t hd = 0; hd < heads; hd++)
            for (size_t n = 0; n < len; n++)
                s->pos[hd * len + n] = (int32_t)n;
    }
    s->compact = rows < heads * len;
    return KAT_OK;
}

/* Key tiles are in position order: the visible ones are a prefix. */
static size_t qk_pairs(const kat_sparse_layout *L, const void *ctx, size_t qt, size_t *kt,
                       uint8_t *mask)
{
    (void)ctx;
    const sp_tile *Q = &L->qs.tiles[qt];
    size_t k0, k1, n = 0;
    kat__sparse_group_tiles(L, qt, &k0, &k1);
    for (size_t t = k0; t < k1; t++) {
        int c = kat__sparse_causal_mask(L, Q, &L->ks.tiles[t]);
        if (c < 0)
            break;
        if (kt)
            kt[n] = t, mask[n] = (uint8_t)c;
        n++;
    }
    return n;
}

static kat_status check_keep_shape(const kat_sparse_keep *keep, const char *what, size_t B,
                                   size_t H, size_t N)
{
    if (!keep)
        return KAT_OK;
    if (keep->B != B || keep->H != H || keep->N != N)
        return kat__fail(KAT_EINVAL,
                        "%s: shape [B = %zu, H = %zu, N = %zu] does not match the attention's "
                        "[%zu, %zu, %zu]",
                        what, keep->B, keep->H, keep->N, B, H, N);
    return kat_sparse_keep_check(keep, what);
}

kat_status kat__sparse_qk_layout_create(const kat_attn_desc *desc, int threads,
                                       const kat_sparse_keep *q_keep,
                                       const kat_sparse_keep *k_keep, kat_sparse_layout **out)
{
    if (!out)
        return kat__fail(KAT_EINVAL, "qk_layout_create: out is NULL");
    kat_sparse_layout *L = NULL;
    kat_status st = kat__sparse_layout_alloc(desc, threads, &L);
    if (st)
        return st;
    const kat_attn_desc *d = &L->d;
    if ((st = check_keep_shape(q_keep, "q_keep", d->B, d->H, d->N)) ||
        (st = check_keep_shape(k_keep, "k_keep", d->B, d->H_kv, d->M)) ||
        (st = qk_side(&L->qs, q_keep, d->B * d->H, d->N)) ||
        (st = qk_side(&L->ks, k_keep, d->B * d->H_kv, d->M))) {
        kat__sparse_layout_destroy(L);
        return st;
    }
    /* Rows with gaps stream better copied together (see sparse_internal.h). */
    L->gather_q = L->qs.compact;
    L->gather_k = L->ks.compact;
    if ((st = kat__sparse_side_tile(&L->qs, BQ, 0)) || (st = kat__sparse_side_tile(&L->ks, BK, 0)) ||
        (st = kat__sparse_layout_finish(L, qk_pairs, NULL))) {
        kat__sparse_layout_destroy(L);
        return st;
    }
    *out = L;
    return KAT_OK;
}
