/* Block masks (in the spirit of FlexAttention's BlockMask): per query block, the key blocks to
 * visit with a "full" flag for those that need no element mask, the transposed lists for the
 * backward, an element predicate for the rest; constructors for sliding windows, global tokens
 * and dense boolean masks; and the layout that runs them on the flash tiles (each block cut
 * into tiles of at most the engine's tile size, never across a block boundary). */
#include <string.h>
#include "attn/sparse_internal.h"
#include "core/internal.h"

#define BQ KAT_FLASH_BQ
#define BK KAT_FLASH_BK

void kat_sparse_blockmask_destroy(kat_sparse_blockmask *m)
{
    if (!m)
        return;
    kat_free(m->kv_off), kat_free(m->kv_idx), kat_free(m->kv_full);
    kat_free(m->q_off), kat_free(m->q_idx), kat_free(m->q_full);
    kat_free(m);
}

/* A mask with its shape checked and kv_off allocated (B*H*nqb + 1 entries). */
static kat_status bm_alloc(size_t B, size_t H, size_t N, size_t M, size_t bq, size_t bk,
                           kat_sparse_blockmask **out)
{
    if (bq == 0 || bk == 0)
        return kat__fail(KAT_EINVAL, "block sizes block_q = %zu, block_k = %zu must be >= 1", bq,
                        bk);
    if (N >= (size_t)INT32_MAX || M >= (size_t)INT32_MAX)
        return kat__fail(KAT_ERANGE, "block mask: N = %zu, M = %zu must be below 2^31 - 1", N, M);
    size_t nqb = (N + bq - 1) / bq, nkb = (M + bk - 1) / bk, lists, t;
    if (kat_mul3_overflow(B, H, nqb, &lists) || kat_mul3_overflow(B, H, nkb, &t) ||
        lists == SIZE_MAX || t == SIZE_MAX)
        return kat__fail(KAT_ERANGE, "block mask: B = %zu, H = %zu with %zu blocks overflows", B,
                        H, nqb > nkb ? nqb : nkb);
    kat_sparse_blockmask *m = kat_calloc(1, sizeof *m);
    if (!m)
        return KAT_ENOMEM;
    m->B = B, m->H = H, m->N = N, m->M = M, m->bq = bq, m->bk = bk, m->nqb = nqb, m->nkb = nkb;
    m->pred.B = B, m->pred.H = H, m->pred.N = N, m->pred.M = M;
    m->kv_off = kat__alloc_array(lists + 1, sizeof(size_t), "block mask offsets");
    if (!m->kv_off) {
        kat_free(m);
        return KAT_ENOMEM;
    }
    m->kv_off[0] = 0;
    *out = m;
    return KAT_OK;
}

/* Allocate the entries once kv_off is complete. */
static kat_status bm_alloc_entries(kat_sparse_blockmask *m)
{
    size_t E = m->kv_off[m->B * m->H * m->nqb];
    m->kv_idx = kat__alloc_array(E ? E : 1, sizeof(int32_t), "block mask entries");
    m->kv_full = kat__alloc_array(E ? E : 1, 1, "block mask flags");
    return m->kv_idx && m->kv_full ? KAT_OK : KAT_ENOMEM;
}

/* Per key block, the query blocks that list it (increasing, by counting). */
static kat_status bm_transpose(kat_sparse_blockmask *m)
{
    size_t heads = m->B * m->H, E = m->kv_off[heads * m->nqb];
    m->q_off = kat_calloc(heads * m->nkb + 1, sizeof(size_t));
    m->q_idx = kat__alloc_array(E ? E : 1, sizeof(int32_t), "block mask transposed entries");
    m->q_full = kat__alloc_array(E ? E : 1, 1, "block mask transposed flags");
    if (!m->q_off || !m->q_idx || !m->q_full)
        return KAT_ENOMEM;
    for (size_t hd = 0; hd < heads; hd++)
        for (size_t qb = 0; qb < m->nqb; qb++) {
            size_t l = hd * m->nqb + qb;
            for (size_t e = m->kv_off[l]; e < m->kv_off[l + 1]; e++)
                m->q_off[hd * m->nkb + (size_t)m->kv_idx[e] + 1]++;
        }
    for (size_t i = 0; i < heads * m->nkb; i++)
        m->q_off[i + 1] += m->q_off[i];
    size_t lists = heads * m->nkb;
    size_t *cur = kat__alloc_array(lists ? lists : 1, sizeof(size_t), "block mask transpose cursor");
    if (!cur)
        return KAT_ENOMEM;
    memcpy(cur, m->q_off, lists * sizeof(size_t));
    for (size_t hd = 0; hd < heads; hd++)
        for (size_t qb = 0; qb < m->nqb; qb++) {
            size_t l = hd * m->nqb + qb;
            for (size_t e = m->kv_off[l]; e < m->kv_off[l + 1]; e++) {
                size_t s = cur[hd * m->nkb + (size_t)m->kv_idx[e]]++;
                m->q_idx[s] = (int32_t)qb;
                m->q_full[s] = m->kv_full[e];
            }
        }
    kat_free(cur);
    return KAT_OK;
}

/* Validate explicit lists against nqb query blocks per head and nkb key blocks. */
static kat_status check_lists(const kat_sparse_blockmask_desc *desc, size_t lists, size_t nqb,
                              size_t nkb)
{
    const size_t *off = desc->offsets;
    if (!off)
        return kat__fail(KAT_EINVAL, "blockmask desc: offsets is NULL");
    if (off[0] != 0)
        return kat__fail(KAT_EINVAL, "blockmask desc: offsets[0] = %zu, must be 0", off[0]);
    for (size_t l = 0; l < lists; l++)
        if (off[l + 1] < off[l] || off[l + 1] - off[l] > nkb)
            return kat__fail(KAT_EINVAL,
                            "blockmask desc: offsets[%zu] = %zu after %zu: a list holds 0 .. "
                            "nkb = %zu key blocks",
                            l + 1, off[l + 1], off[l], nkb);
    if (off[lists] && !desc->kblocks)
        return kat__fail(KAT_EINVAL, "blockmask desc: kblocks is NULL for %zu entries", off[lists]);
    for (size_t l = 0; l < lists; l++)
        for (size_t e = off[l]; e < off[l + 1]; e++) {
            int32_t kb = desc->kblocks[e];
            size_t qb = l % nqb, hd = l / nqb;
            if (kb < 0 || (size_t)kb >= nkb)
                return kat__fail(KAT_EINVAL,
                                "blockmask desc: kblocks[%zu] = %d (head %zu, query block %zu) "
                                "is outside [0, nkb = %zu)",
                                e, (int)kb, hd, qb, nkb);
            if (e > off[l] && kb <= desc->kblocks[e - 1])
                return kat__fail(KAT_EINVAL,
                                "blockmask desc: kblocks of head %zu, query block %zu are not "
                                "strictly increasing (%d after %d)",
                                hd, qb, (int)kb, (int)desc->kblocks[e - 1]);
        }
    return KAT_OK;
}

kat_status kat_sparse_blockmask_create(const kat_sparse_blockmask_desc *desc,
                                       kat_sparse_blockmask **out)
{
    if (!out)
        return kat__fail(KAT_EINVAL, "blockmask_create: out is NULL");
    if (!desc)
        return kat__fail(KAT_EINVAL, "blockmask_create: desc is NULL");
    kat_sparse_blockmask *m = NULL;
    kat_status st = bm_alloc(desc->B, desc->H, desc->N, desc->M, desc->block_q, desc->block_k, &m);
    if (st)
        return st;
    size_t lists = m->B * m->H * m->nqb;
    const size_t *off = desc->offsets;
    if ((st = check_lists(desc, lists, m->nqb, m->nkb))) {
        kat_sparse_blockmask_destroy(m);
        return st;
    }
    memcpy(m->kv_off, off, (lists + 1) * sizeof(size_t));
    if ((st = bm_alloc_entries(m))) {
        kat_sparse_blockmask_destroy(m);
        return st;
    }
    memcpy(m->kv_idx, desc->kblocks, off[lists] * sizeof(int32_t));
    for (size_t e = 0; e < off[lists]; e++)
        m->kv_full[e] = desc->full ? desc->full[e] != 0 : 0;
    m->pred.kind = desc->fn ? SP_PRED_USER : SP_PRED_NONE;
    m->pred.fn = desc->fn;
    m->pred.arg = desc->arg;
    if ((st = bm_transpose(m))) {
        kat_sparse_blockmask_destroy(m);
        return st;
    }
    *out = m;
    return KAT_OK;
}

/* ---- constructors from built-in predicates -------------------------------------------------- */

typedef struct {
    size_t lo, hi;   /* key blocks [lo, hi] */
} block_range;

/* Key blocks that may hold an allowed key for query rows [a0, a1), as merged ranges. */
static size_t candidate_blocks(const kat_sparse_blockmask *m, size_t a0, size_t a1,
                               block_range *r)
{
    const sp_pred *p = &m->pred;
    int64_t s = (int64_t)m->M - (int64_t)m->N, W = (int64_t)p->window, M = (int64_t)m->M;
    int64_t first = (int64_t)a0 + s, last = (int64_t)a1 - 1 + s;   /* aligned query range */
    int64_t lo[3], hi[3];
    size_t n = 0;
    if (W > 0)
        lo[n] = first - W + 1, hi[n] = p->causal ? last : last + W - 1, n++;
    if (p->kind == SP_PRED_GLOBAL && p->global > 0) {
        lo[n] = 0, hi[n] = (int64_t)p->global - 1;
        if (p->causal && hi[n] > last)
            hi[n] = last;
        n++;
        if (!p->causal && a0 < p->global)
            lo[n] = 0, hi[n] = M - 1, n++;
    }
    /* Clip to [0, M), convert to blocks, sort by start (n <= 3) and merge. */
    block_range tmp[3];
    size_t c = 0;
    for (size_t i = 0; i < n; i++) {
        int64_t l = lo[i] < 0 ? 0 : lo[i], h = hi[i] > M - 1 ? M - 1 : hi[i];
        if (l <= h)
            tmp[c].lo = (size_t)l / m->bk, tmp[c].hi = (size_t)h / m->bk, c++;
    }
    for (size_t i = 1; i < c; i++)
        for (size_t j = i; j > 0 && tmp[j].lo < tmp[j - 1].lo; j--) {
            block_range t = tmp[j];
            tmp[j] = tmp[j - 1], tmp[j - 1] = t;
        }
    size_t out = 0;
    for (size_t i = 0; i < c; i++) {
        if (out && tmp[i].lo <= r[out - 1].hi + 1) {
            r[out - 1].hi = tmp[i].hi > r[out - 1].hi ? tmp[i].hi : r[out - 1].hi;
        } else {
            r[out++] = tmp[i];
        }
    }
    return out;
}

/* 0: no element of the block pair is allowed, 1: some, 2: all. */
static int classify_pred(const kat_sparse_blockmask *m, size_t a0, size_t a1, size_t kb)
{
    size_t n = a1 - a0, j0 = kb * m->bk, j1 = j0 + m->bk < m->M ? j0 + m->bk : m->M;
    int any = 0, all = 1;
    for (size_t j = j0; j < j1; j++) {
        size_t lo, hi, lo2, hi2;
        kat__sparse_pred_lanes(&m->pred, (int64_t)a0, n, (int64_t)j, &lo, &hi, &lo2, &hi2);
        int e1 = lo < hi, e2 = lo2 < hi2;
        any |= e1 | e2;
        int full = (e1 && lo == 0 && hi == n) || (e2 && lo2 == 0 && hi2 == n) ||
                   (e1 && e2 && (lo == 0 || lo2 == 0) && (hi == n || hi2 == n) &&
                    (lo <= hi2 && lo2 <= hi));
        all &= full;
    }
    return any ? (all ? 2 : 1) : 0;
}

/* Fill a B = H = 1 mask whose pred is set, by classifying each query block's candidates. */
static kat_status bm_fill_from_pred(kat_sparse_blockmask *m)
{
    kat_status st;
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1 && (st = bm_alloc_entries(m)))
            return st;
        size_t e = 0;
        for (size_t qb = 0; qb < m->nqb; qb++) {
            size_t a0 = qb * m->bq, a1 = a0 + m->bq < m->N ? a0 + m->bq : m->N;
            block_range r[3];
            size_t nr = candidate_blocks(m, a0, a1, r);
            for (size_t i = 0; i < nr; i++)
                for (size_t kb = r[i].lo; kb <= r[i].hi; kb++) {
                    int c = classify_pred(m, a0, a1, kb);
                    if (!c)
                        continue;
                    if (pass == 1)
                        m->kv_idx[e] = (int32_t)kb, m->kv_full[e] = c == 2;
                    e++;
                }
            if (pass == 0)
                m->kv_off[qb + 1] = e;
        }
    }
    return bm_transpose(m);
}

static kat_status bm_from_pred(sp_pred_kind kind, size_t N, size_t M, size_t global,
                               size_t window, int causal, size_t bq, size_t bk,
                               kat_sparse_blockmask **out)
{
    kat_sparse_blockmask *m = NULL;
    kat_status st = bm_alloc(1, 1, N, M, bq, bk, &m);
    if (st)
        return st;
    m->pred.kind = kind;
    m->pred.global = global;
    m->pred.window = window;
    m->pred.causal = causal != 0;
    if ((st = bm_fill_from_pred(m))) {
        kat_sparse_blockmask_destroy(m);
        return st;
    }
    *out = m;
    return KAT_OK;
}

kat_status kat_sparse_blockmask_sliding_window(size_t N, size_t M, size_t window, int causal,
                                               size_t block_q, size_t block_k,
                                               kat_sparse_blockmask **out)
{
    if (!out)
        return kat__fail(KAT_EINVAL, "sliding_window: out is NULL");
    if (window == 0)
        return kat__fail(KAT_EINVAL, "sliding_window: window = 0, must be >= 1");
    if (window >= (size_t)INT32_MAX)
        return kat__fail(KAT_ERANGE, "sliding_window: window = %zu is not below 2^31 - 1", window);
    return bm_from_pred(SP_PRED_WINDOW, N, M, 0, window, causal, block_q, block_k, out);
}

kat_status kat_sparse_blockmask_global(size_t N, size_t M, size_t n_global, size_t window,
                                       int causal, size_t block_q, size_t block_k,
                                       kat_sparse_blockmask **out)
{
    if (!out)
        return kat__fail(KAT_EINVAL, "blockmask_global: out is NULL");
    if (window >= (size_t)INT32_MAX || n_global >= (size_t)INT32_MAX)
        return kat__fail(KAT_ERANGE,
                        "blockmask_global: n_global = %zu, window = %zu must be below 2^31 - 1",
                        n_global, window);
    return bm_from_pred(SP_PRED_GLOBAL, N, M, n_global, window, causal, block_q, block_k, out);
}

kat_status kat_sparse_blockmask_from_dense(const uint8_t *mask, size_t B, size_t H, size_t N,
                                           size_t M, size_t block_q, size_t block_k,
                                           kat_sparse_blockmask **out)
{
    if (!out)
        return kat__fail(KAT_EINVAL, "blockmask_from_dense: out is NULL");
    size_t t;
    if (kat_mul3_overflow(B, H, N, &t) || kat_mul_overflow(t, M, &t))
        return kat__fail(KAT_ERANGE, "blockmask_from_dense: shape [%zu, %zu, %zu, %zu] overflows",
                        B, H, N, M);
    if (!mask && t)
        return kat__fail(KAT_EINVAL, "blockmask_from_dense: mask is NULL");
    kat_sparse_blockmask *m = NULL;
    kat_status st = bm_alloc(B, H, N, M, block_q, block_k, &m);
    if (st)
        return st;
    m->pred.kind = SP_PRED_DENSE;
    m->pred.dense = mask;
    size_t heads = B * H;
    uint8_t *cls = kat__alloc_array(m->nkb ? m->nkb : 1, 1, "block classes");
    if (!cls) {
        kat_sparse_blockmask_destroy(m);
        return KAT_ENOMEM;
    }
    for (int pass = 0; pass < 2 && !st; pass++) {
        if (pass == 1 && (st = bm_alloc_entries(m)))
            break;
        size_t e = 0;
        for (size_t hd = 0; hd < heads; hd++)
            for (size_t qb = 0; qb < m->nqb; qb++) {
                size_t a0 = qb * block_q, a1 = a0 + block_q < N ? a0 + block_q : N;
                /* cls: bit 0 = some allowed, bit 1 = some not allowed */
                memset(cls, 0, m->nkb);
                for (size_t i = a0; i < a1; i++) {
                    const uint8_t *row = mask + (hd * N + i) * M;
                    for (size_t j = 0; j < M; j++)
                        cls[j / block_k] |= row[j] ? 1 : 2;
                }
                for (size_t kb = 0; kb < m->nkb; kb++) {
                    if (!(cls[kb] & 1))
                        continue;
                    if (pass == 1)
                        m->kv_idx[e] = (int32_t)kb, m->kv_full[e] = !(cls[kb] & 2);
                    e++;
                }
                if (pass == 0)
                    m->kv_off[hd * m->nqb + qb + 1] = e;
            }
    }
    kat_free(cls);
    if (st || (st = bm_transpose(m))) {
        kat_sparse_blockmask_destroy(m);
        return st;
    }
    *out = m;
    return KAT_OK;
}

/* ---- inspection ------------------------------------------------------------------------------ */

void kat_sparse_blockmask_shape(const kat_sparse_blockmask *m, size_t *nqb, size_t *nkb,
                                size_t *block_q, size_t *block_k)
{
    if (nqb)
        *nqb = m ? m->nqb : 0;
    if (nkb)
        *nkb = m ? m->nkb : 0;
    if (block_q)
        *block_q = m ? m->bq : 0;
    if (block_k)
        *block_k = m ? m->bk : 0;
}

static kat_status bm_list(const kat_sparse_blockmask *m, size_t b, size_t h, size_t blk,
                          int transposed, size_t *count, const int32_t **idx,
                          const uint8_t **full)
{
    const char *name = transposed ? "q_list" : "kv_list";
    if (!m)
        return kat__fail(KAT_EINVAL, "blockmask %s: mask is NULL", name);
    if (!count || !idx || !full)
        return kat__fail(KAT_EINVAL, "blockmask %s: count, list or full is NULL", name);
    size_t nblk = transposed ? m->nkb : m->nqb;
    if (b >= m->B || h >= m->H || blk >= nblk)
        return kat__fail(KAT_EINVAL,
                        "blockmask %s: (b = %zu, h = %zu, block = %zu) is outside the mask's "
                        "[%zu, %zu, %zu]",
                        name, b, h, blk, m->B, m->H, nblk);
    size_t l = (b * m->H + h) * nblk + blk;
    const size_t *off = transposed ? m->q_off : m->kv_off;
    *count = off[l + 1] - off[l];
    *idx = (transposed ? m->q_idx : m->kv_idx) + off[l];
    *full = (transposed ? m->q_full : m->kv_full) + off[l];
    return KAT_OK;
}

kat_status kat_sparse_blockmask_kv_list(const kat_sparse_blockmask *m, size_t b, size_t h,
                                        size_t qb, size_t *count, const int32_t **kblocks,
                                        const uint8_t **full)
{
    return bm_list(m, b, h, qb, 0, count, kblocks, full);
}

kat_status kat_sparse_blockmask_q_list(const kat_sparse_blockmask *m, size_t b, size_t h,
                                       size_t kb, size_t *count, const int32_t **qblocks,
                                       const uint8_t **full)
{
    return bm_list(m, b, h, kb, 1, count, qblocks, full);
}

/* ---- the layout ------------------------------------------------------------------------------ */

static size_t block_pairs(const kat_sparse_layout *L, const void *ctx, size_t qt, size_t *kt,
                          uint8_t *mask)
{
    const kat_sparse_blockmask *m = ctx;
    const sp_tile *Q = &L->qs.tiles[qt];
    size_t b = Q->head / L->d.H, h = Q->head % L->d.H;
    size_t bm = m->B == 1 ? 0 : b, hm = m->H == 1 ? 0 : h, qb = (size_t)Q->pmin / m->bq;
    size_t l = (bm * m->H + hm) * m->nqb + qb, k0, k1, n = 0;
    size_t per_block = (m->bk + BK - 1) / BK;
    kat__sparse_group_tiles(L, qt, &k0, &k1);
    for (size_t e = m->kv_off[l]; e < m->kv_off[l + 1]; e++) {
        size_t kb = (size_t)m->kv_idx[e], j0 = kb * m->bk;
        size_t rows = m->M - j0 < m->bk ? m->M - j0 : m->bk, cnt = (rows + BK - 1) / BK;
        uint8_t elem = !m->kv_full[e] && m->pred.kind != SP_PRED_NONE ? SP_MASK_BITS : 0;
        for (size_t t = 0; t < cnt; t++) {
            size_t id = k0 + kb * per_block + t;
            int c = kat__sparse_causal_mask(L, Q, &L->ks.tiles[id]);
            if (c < 0)
                continue;
            if (kt)
                kt[n] = id, mask[n] = (uint8_t)(c | elem);
            n++;
        }
    }
    (void)k1;
    return n;
}

/* Natural order: every row of every head. */
static kat_status natural_side(sp_side *s, size_t heads, size_t len)
{
    kat_status st = kat__sparse_side_alloc(s, heads, len, heads * len, 0);
    if (st)
        return st;
    for (size_t hd = 0; hd <= heads; hd++)
        s->head_off[hd] = hd * len;
    for (size_t hd = 0; hd < heads; hd++)
        for (size_t n = 0; n < len; n++)
            s->pos[hd * len + n] = (int32_t)n;
    return KAT_OK;
}

kat_status kat__sparse_block_layout_create(const kat_attn_desc *desc, int threads,
                                          const kat_sparse_blockmask *mask,
                                          kat_sparse_layout **out)
{
    if (!out)
        return kat__fail(KAT_EINVAL, "block_layout_create: out is NULL");
    if (!mask)
        return kat__fail(KAT_EINVAL, "block_layout_create: mask is NULL");
    kat_sparse_layout *L = NULL;
    kat_status st = kat__sparse_layout_alloc(desc, threads, &L);
    if (st)
        return st;
    const kat_attn_desc *d = &L->d;
    if (mask->N != d->N || mask->M != d->M || (mask->B != 1 && mask->B != d->B) ||
        (mask->H != 1 && mask->H != d->H)) {
        st = kat__fail(KAT_EINVAL,
                      "mask: shape [B = %zu, H = %zu, N = %zu, M = %zu] does not match the "
                      "attention's [%zu, %zu, %zu, %zu] (B and H may be 1)",
                      mask->B, mask->H, mask->N, mask->M, d->B, d->H, d->N, d->M);
        kat__sparse_layout_destroy(L);
        return st;
    }
    L->bits_src = SP_BITS_PRED;
    L->pred = mask->pred;
    L->block_q = mask->bq;
    L->block_k = mask->bk;
    if ((st = natural_side(&L->qs, d->B * d->H, d->N)) ||
        (st = natural_side(&L->ks, d->B * d->H_kv, d->M)) ||
        (st = kat__sparse_side_tile(&L->qs, BQ, mask->bq)) ||
        (st = kat__sparse_side_tile(&L->ks, BK, mask->bk)) ||
        (st = kat__sparse_layout_finish(L, block_pairs, mask))) {
        kat__sparse_layout_destroy(L);
        return st;
    }
    *out = L;
    return KAT_OK;
}
