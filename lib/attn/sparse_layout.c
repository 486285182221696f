/* Sparse layouts, the part every mode shares: the desc, the sides' tiles, the pair lists and
 * their transpose, the order of the work and the backward's units. A mode (sparse_qk.c,
 * sparse_hash.c, sparse_blockmask.c) fills the two sides and hands a pair generator to
 * kat__sparse_layout_finish. */
#include <stdlib.h>
#include <string.h>
#include "attn/sparse_internal.h"
#include "core/internal.h"
#include "kernels/kernels.h"

#define BQ KAT_FLASH_BQ
#define BK KAT_FLASH_BK

kat_status kat__sparse_layout_alloc(const kat_attn_desc *desc, int threads,
                                   kat_sparse_layout **out)
{
    if (!out)
        return kat__fail(KAT_EINVAL, "sparse layout: out is NULL");
    if (!desc)
        return kat__fail(KAT_EINVAL, "sparse layout: desc is NULL");
    int causal = desc->causal;
    if (causal < 0 || causal > KAT_SPARSE_CAUSAL_STRICT)
        return kat__fail(KAT_EINVAL,
                        "desc->causal = %d: must be 0, 1 (KAT_SPARSE_CAUSAL) or 2 "
                        "(KAT_SPARSE_CAUSAL_STRICT)",
                        causal);
    kat_attn_desc d;
    kat_status st = kat_attn_desc_check(desc, &d);
    if (st)
        return st;
    d.causal = causal;
    kat_sparse_layout *L = kat_calloc(1, sizeof *L);
    if (!L)
        return KAT_ENOMEM;
    L->d = d;
    L->g = d.H_kv ? d.H / d.H_kv : 1;
    L->shift = (int32_t)((int64_t)d.M - (int64_t)d.N - (causal == KAT_SPARSE_CAUSAL_STRICT));
    kat__flash_ctx_init(&L->ctx, kat__kernels_get(), d.D, d.Dv, d.scale);
    L->threads = threads > 0 ? threads : 1;
    *out = L;
    return KAT_OK;
}

static void side_free(sp_side *s)
{
    kat_free(s->head_off);
    kat_free(s->pos);
    kat_free(s->bucket);
    kat_free(s->tile_off);
    kat_free(s->tiles);
    memset(s, 0, sizeof *s);
}

void kat__sparse_layout_destroy(kat_sparse_layout *L)
{
    if (!L)
        return;
    side_free(&L->qs);
    side_free(&L->ks);
    kat_free(L->fwd_off), kat_free(L->fwd_kt), kat_free(L->fwd_mask);
    kat_free(L->bwd_off), kat_free(L->bwd_qt), kat_free(L->bwd_mask);
    kat_free(L->fwd_order);
    kat_free(L->units), kat_free(L->unit_order), kat_free(L->touch);
    kat_free(L->red_tile), kat_free(L->red_off), kat_free(L->red_src);
    kat_free(L);
}

kat_status kat__sparse_side_alloc(sp_side *s, size_t heads, size_t len, size_t rows,
                                 int with_bucket)
{
    s->heads = heads;
    s->len = len;
    s->head_off = kat__alloc_array(heads + 1, sizeof(size_t), "sparse head offsets");
    s->pos = kat__alloc_array(rows ? rows : 1, sizeof(int32_t), "sparse row order");
    if (with_bucket)
        s->bucket = kat__alloc_array(rows ? rows : 1, sizeof(int32_t), "sparse row buckets");
    if (!s->head_off || !s->pos || (with_bucket && !s->bucket))
        return KAT_ENOMEM;
    return KAT_OK;
}

/* Tiles of `count` ordered rows cut at multiples of seg (seg = 0: no cut). */
static size_t tiles_of(size_t count, size_t tile, size_t seg)
{
    if (!seg)
        return (count + tile - 1) / tile;
    size_t full = count / seg, rest = count % seg;
    return full * ((seg + tile - 1) / tile) + (rest + tile - 1) / tile;
}

/* With buckets: end the tile at a bucket boundary when it already holds a quarter of a tile
 * and the next bucket has at least half a tile of rows. Large buckets then start on a tile
 * boundary (their tiles need no element mask and skip the neighbours' key tiles), while
 * buckets smaller than half a tile are packed together. */
static size_t bucket_cut(const sp_side *s, size_t r, size_t end, size_t head_end, size_t tile)
{
    const int32_t *bk = s->bucket;
    for (size_t i = r + 1; i < end; i++) {
        if (bk[i] == bk[i - 1])
            continue;
        if (i - r < (tile + 3) / 4)
            continue;
        size_t run = 1;
        while (run < tile / 2 && i + run < head_end && bk[i + run] == bk[i])
            run++;
        if (run >= tile / 2)
            return i;
    }
    return end;
}

kat_status kat__sparse_side_tile(sp_side *s, size_t tile, size_t seg)
{
    s->tile_off = kat__alloc_array(s->heads + 1, sizeof(size_t), "sparse tile offsets");
    if (!s->tile_off)
        return KAT_ENOMEM;
    size_t total = 0;
    for (size_t hd = 0; hd < s->heads; hd++) {
        s->tile_off[hd] = total;
        if (!s->bucket) {
            total += tiles_of(s->head_off[hd + 1] - s->head_off[hd], tile, seg);
            continue;
        }
        size_t r1 = s->head_off[hd + 1];
        for (size_t r = s->head_off[hd]; r < r1; total++)
            r = bucket_cut(s, r, r + tile < r1 ? r + tile : r1, r1, tile);
    }
    s->tile_off[s->heads] = total;
    s->ntiles = total;
    s->tiles = kat__alloc_array(total ? total : 1, sizeof(sp_tile), "sparse tiles");
    if (!s->tiles)
        return KAT_ENOMEM;
    size_t t = 0;
    for (size_t hd = 0; hd < s->heads; hd++) {
        size_t r0 = s->head_off[hd], r1 = s->head_off[hd + 1];
        for (size_t r = r0; r < r1;) {
            size_t end = r + tile < r1 ? r + tile : r1;
            if (seg) {
                size_t seg_end = r0 + ((r - r0) / seg + 1) * seg;
                end = end < seg_end ? end : seg_end;
            }
            if (s->bucket)
                end = bucket_cut(s, r, end, r1, tile);
            sp_tile *T = &s->tiles[t++];
            T->row0 = r;
            T->head = hd;
            T->n = (uint32_t)(end - r);
            T->pmin = INT32_MAX, T->pmax = INT32_MIN;
            T->bmin = T->bmax = 0;
            for (size_t i = r; i < end; i++) {
                T->pmin = s->pos[i] < T->pmin ? s->pos[i] : T->pmin;
                T->pmax = s->pos[i] > T->pmax ? s->pos[i] : T->pmax;
            }
            if (s->bucket) {
                T->bmin = T->bmax = s->bucket[r];
                for (size_t i = r; i < end; i++) {
                    T->bmin = s->bucket[i] < T->bmin ? s->bucket[i] : T->bmin;
                    T->bmax = s->bucket[i] > T->bmax ? s->bucket[i] : T->bmax;
                }
            }
            r = end;
        }
    }
    return KAT_OK;
}

/* The key/value group (b*H_kv + hk) of query tile qt. */
static size_t qt_group(const kat_sparse_layout *L, size_t qt)
{
    size_t head = L->qs.tiles[qt].head, b = head / L->d.H, h = head % L->d.H;
    return b * L->d.H_kv + h / L->g;
}

void kat__sparse_group_tiles(const kat_sparse_layout *L, size_t qt, size_t *k0, size_t *k1)
{
    size_t group = qt_group(L, qt);
    *k0 = L->ks.tile_off[group];
    *k1 = L->ks.tile_off[group + 1];
}

int kat__sparse_causal_mask(const kat_sparse_layout *L, const sp_tile *Q, const sp_tile *K)
{
    if (!L->d.causal)
        return 0;
    int64_t minlim = (int64_t)Q->pmin + L->shift, maxlim = (int64_t)Q->pmax + L->shift;
    if ((int64_t)K->pmin > maxlim)
        return -1;
    return (int64_t)K->pmax > minlim ? SP_MASK_CAUSAL : 0;
}

/* ---- ordering helpers ----------------------------------------------------------------------- */

typedef struct {
    size_t weight, id;
} weighted;

/* Heaviest first; ties by id, so the order is the same on every run. */
static int by_weight_desc(const void *a, const void *b)
{
    const weighted *x = a, *y = b;
    if (x->weight != y->weight)
        return x->weight < y->weight ? 1 : -1;
    return x->id < y->id ? -1 : x->id > y->id;
}

static int by_size(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? -1 : x > y;
}

static kat_status order_heaviest_first(const size_t *off, size_t n, size_t **out)
{
    weighted *w = kat__alloc_array(n ? n : 1, sizeof *w, "sparse work order");
    size_t *order = kat__alloc_array(n ? n : 1, sizeof *order, "sparse work order");
    if (!w || !order) {
        kat_free(w), kat_free(order);
        return KAT_ENOMEM;
    }
    for (size_t i = 0; i < n; i++)
        w[i].weight = off[i + 1] - off[i], w[i].id = i;
    qsort(w, n, sizeof *w, by_weight_desc);
    for (size_t i = 0; i < n; i++)
        order[i] = w[i].id;
    kat_free(w);
    *out = order;
    return KAT_OK;
}

/* ---- pairs ---------------------------------------------------------------------------------- */

static kat_status make_pairs(kat_sparse_layout *L, sp_pair_gen gen, const void *ctx)
{
    size_t nqt = L->qs.ntiles, nkt = L->ks.ntiles;
    L->fwd_off = kat__alloc_array(nqt + 1, sizeof(size_t), "sparse pair offsets");
    L->bwd_off = kat_calloc(nkt + 1, sizeof(size_t));
    if (!L->fwd_off || !L->bwd_off)
        return KAT_ENOMEM;
    L->fwd_off[0] = 0;
    /* Serial: a few operations per pair, far below one pair's attention, and no thread
     * start-up or barrier on a busy machine. */
    for (size_t qt = 0; qt < nqt; qt++)
        L->fwd_off[qt + 1] = gen(L, ctx, qt, NULL, NULL);
    for (size_t qt = 0; qt < nqt; qt++)
        if (kat_add_overflow(L->fwd_off[qt], L->fwd_off[qt + 1], &L->fwd_off[qt + 1]))
            return kat__fail(KAT_ERANGE, "sparse layout: the number of tile pairs overflows");
    size_t P = L->fwd_off[nqt];
    L->npairs = P;
    L->fwd_kt = kat__alloc_array(P ? P : 1, sizeof(size_t), "sparse pairs");
    L->fwd_mask = kat__alloc_array(P ? P : 1, 1, "sparse pair masks");
    L->bwd_qt = kat__alloc_array(P ? P : 1, sizeof(size_t), "sparse transposed pairs");
    L->bwd_mask = kat__alloc_array(P ? P : 1, 1, "sparse transposed pair masks");
    if (!L->fwd_kt || !L->fwd_mask || !L->bwd_qt || !L->bwd_mask)
        return KAT_ENOMEM;
    for (size_t qt = 0; qt < nqt; qt++)
        gen(L, ctx, qt, L->fwd_kt + L->fwd_off[qt], L->fwd_mask + L->fwd_off[qt]);
    /* Transpose by counting: walking the query tiles in order keeps each key tile's list of
     * query tiles increasing. */
    size_t masked = 0, elements = 0;
    for (size_t qt = 0; qt < nqt; qt++)
        for (size_t e = L->fwd_off[qt]; e < L->fwd_off[qt + 1]; e++) {
            L->bwd_off[L->fwd_kt[e] + 1]++;
            masked += L->fwd_mask[e] != 0;
            elements += (size_t)L->qs.tiles[qt].n * L->ks.tiles[L->fwd_kt[e]].n;
        }
    L->nmasked = masked;
    L->pair_elements = elements;
    for (size_t kt = 0; kt < nkt; kt++)
        L->bwd_off[kt + 1] += L->bwd_off[kt];
    size_t *fill = kat__alloc_array(nkt ? nkt : 1, sizeof(size_t), "sparse transpose cursor");
    if (!fill)
        return KAT_ENOMEM;
    memcpy(fill, L->bwd_off, nkt * sizeof(size_t));
    for (size_t qt = 0; qt < nqt; qt++)
        for (size_t e = L->fwd_off[qt]; e < L->fwd_off[qt + 1]; e++) {
            size_t slot = fill[L->fwd_kt[e]]++;
            L->bwd_qt[slot] = qt;
            L->bwd_mask[slot] = L->fwd_mask[e];
        }
    kat_free(fill);
    return order_heaviest_first(L->fwd_off, nqt, &L->fwd_order);
}

/* ---- backward units -------------------------------------------------------------------------
 * A unit owns a range of one group's key tiles, so its dk and dv rows have no other writer.
 * A group is split into several units only when its pairs exceed a fair share of the work
 * (total / 4T); then each unit's dq goes to private partial tiles that a last pass sums in unit
 * order (deterministic for a given thread count). */

static kat_status make_units(kat_sparse_layout *L)
{
    size_t groups = L->ks.heads, nqt = L->qs.ntiles, T = (size_t)L->threads;
    size_t total = L->npairs, target = total / (4 * T) + 1;
    size_t *chunks = kat__alloc_array(groups ? groups : 1, sizeof(size_t), "sparse unit counts");
    if (!chunks)
        return KAT_ENOMEM;
    size_t nunits = 0;
    for (size_t g = 0; g < groups; g++) {
        size_t k0 = L->ks.tile_off[g], k1 = L->ks.tile_off[g + 1];
        size_t pg = L->bwd_off[k1] - L->bwd_off[k0], c = 1;
        if (T > 1 && pg > target)
            c = (pg + target / 2) / target;
        c = c < k1 - k0 ? c : k1 - k0;   /* 0 for a group without key tiles */
        chunks[g] = c;
        nunits += c;
    }
    L->nunits = nunits;
    L->units = kat__alloc_array(nunits ? nunits : 1, sizeof(sp_unit), "sparse units");
    size_t *stamp = kat__alloc_array(nqt ? nqt : 1, sizeof(size_t), "sparse unit stamps");
    size_t *touched_by = kat_calloc(nqt ? nqt : 1, sizeof(size_t));
    if (!L->units || !stamp || !touched_by) {
        kat_free(chunks), kat_free(stamp), kat_free(touched_by);
        return KAT_ENOMEM;
    }
    for (size_t i = 0; i < nqt; i++)
        stamp[i] = SIZE_MAX;
    /* First pass: cut the groups, count each unit's distinct query tiles. */
    size_t u = 0, touch_total = 0, slots = 0;
    for (size_t g = 0; g < groups; g++) {
        size_t k0 = L->ks.tile_off[g], k1 = L->ks.tile_off[g + 1], c = chunks[g];
        size_t pg = L->bwd_off[k1] - L->bwd_off[k0], kt = k0;
        for (size_t ci = 0; ci < c; ci++) {
            sp_unit *U = &L->units[u];
            U->group = g;
            U->kt0 = kt;
            /* Cut where the running pair count passes (ci+1)/c of the group's; keep at least
             * one key tile for each remaining unit. */
            size_t goal = L->bwd_off[k0] + pg * (ci + 1) / c;
            if (ci + 1 == c) {
                kt = k1;
            } else {
                kt++;
                while (kt < k1 - (c - 1 - ci) && L->bwd_off[kt] < goal)
                    kt++;
            }
            U->kt1 = kt;
            U->pairs = L->bwd_off[U->kt1] - L->bwd_off[U->kt0];
            size_t cnt = 0;
            for (size_t e = L->bwd_off[U->kt0]; e < L->bwd_off[U->kt1]; e++)
                if (stamp[L->bwd_qt[e]] != u)
                    stamp[L->bwd_qt[e]] = u, cnt++, touched_by[L->bwd_qt[e]]++;
            U->touch0 = touch_total;
            U->touch1 = touch_total + cnt;
            touch_total += cnt;
            U->part0 = SIZE_MAX;
            if (c > 1) {
                U->part0 = slots;
                slots += cnt;
            }
            L->max_touch = cnt > L->max_touch ? cnt : L->max_touch;
            u++;
        }
    }
    L->part_slots = slots;
    L->touch = kat__alloc_array(touch_total ? touch_total : 1, sizeof(size_t), "sparse touches");
    if (!L->touch) {
        kat_free(chunks), kat_free(stamp), kat_free(touched_by);
        return KAT_ENOMEM;
    }
    /* Second pass: list each unit's query tiles, increasing. */
    for (size_t i = 0; i < nqt; i++)
        stamp[i] = SIZE_MAX;
    for (u = 0; u < nunits; u++) {
        sp_unit *U = &L->units[u];
        size_t *list = L->touch + U->touch0, cnt = 0;
        for (size_t e = L->bwd_off[U->kt0]; e < L->bwd_off[U->kt1]; e++)
            if (stamp[L->bwd_qt[e]] != u)
                stamp[L->bwd_qt[e]] = u, list[cnt++] = L->bwd_qt[e];
        qsort(list, cnt, sizeof(size_t), by_size);
    }
    /* The final pass writes dq of query tiles in split groups (summing partials) and of query
     * tiles no unit touched (zeros). */
    size_t nred = 0, nsrc = 0;
    for (size_t qt = 0; qt < nqt; qt++) {
        int split = chunks[qt_group(L, qt)] > 1;
        if (split || touched_by[qt] == 0) {
            nred++;
            nsrc += split ? touched_by[qt] : 0;
        }
    }
    L->nred = nred;
    L->red_tile = kat__alloc_array(nred ? nred : 1, sizeof(size_t), "sparse dq tiles");
    L->red_off = kat_calloc(nred + 1, sizeof(size_t));
    L->red_src = kat__alloc_array(nsrc ? nsrc : 1, sizeof(size_t), "sparse dq sources");
    size_t *red_index = stamp;   /* reuse: query tile -> its entry in red_tile, or SIZE_MAX */
    if (!L->red_tile || !L->red_off || !L->red_src) {
        kat_free(chunks), kat_free(stamp), kat_free(touched_by);
        return KAT_ENOMEM;
    }
    size_t r = 0;
    for (size_t qt = 0; qt < nqt; qt++) {
        int split = chunks[qt_group(L, qt)] > 1;
        red_index[qt] = SIZE_MAX;
        if (split || touched_by[qt] == 0) {
            red_index[qt] = r;
            L->red_tile[r] = qt;
            L->red_off[r + 1] = L->red_off[r] + (split ? touched_by[qt] : 0);
            r++;
        }
    }
    /* Sources in unit order: walk the split units and their touched tiles. */
    size_t *cursor = touched_by;   /* reuse as fill cursors */
    for (size_t i = 0; i < nred; i++)
        cursor[L->red_tile[i]] = L->red_off[i];
    for (u = 0; u < nunits; u++) {
        sp_unit *U = &L->units[u];
        if (U->part0 == SIZE_MAX)
            continue;
        for (size_t s = U->touch0; s < U->touch1; s++)
            L->red_src[cursor[L->touch[s]]++] = U->part0 + (s - U->touch0);
    }
    (void)red_index;
    kat_free(chunks), kat_free(stamp), kat_free(touched_by);
    /* Heaviest units first. */
    size_t *uoff = kat__alloc_array(nunits + 1, sizeof(size_t), "sparse unit weights");
    if (!uoff)
        return KAT_ENOMEM;
    uoff[0] = 0;
    for (u = 0; u < nunits; u++)
        uoff[u + 1] = uoff[u] + L->units[u].pairs;
    kat_status st = order_heaviest_first(uoff, nunits, &L->unit_order);
    kat_free(uoff);
    return st;
}

static kat_status size_workspaces(kat_sparse_layout *L)
{
    size_t T = (size_t)L->threads, D = L->d.D, Dv = L->d.Dv, a, b, c, gq = 0, gk = 0, gd = 0,
           gv = 0, gf, gb;
    size_t qrows = L->qs.head_off[L->qs.heads], krows = L->ks.head_off[L->ks.heads];
    L->fwd_thread_bytes = kat__sparse_fwd_thread_bytes(L);
    L->bwd_thread_bytes = kat__sparse_bwd_thread_bytes(L);
    /* Gathered rows: forward q, k (D floats), v (Dv); backward q (D), dout (Dv), k, v (64-byte
     * rounded blocks). */
    if ((L->gather_q && (kat_mul3_overflow(qrows, D, sizeof(float), &gq) ||
                         kat_add_overflow(gq, 64, &gq) ||
                         kat_mul3_overflow(qrows, Dv, sizeof(float), &gd) ||
                         kat_add_overflow(gd, 64, &gd))) ||
        (L->gather_k && (kat_mul3_overflow(krows, D, sizeof(float), &gk) ||
                         kat_add_overflow(gk, 64, &gk) ||
                         kat_mul3_overflow(krows, Dv, sizeof(float), &gv) ||
                         kat_add_overflow(gv, 64, &gv))))
        return kat__fail(KAT_ERANGE, "sparse layout: gathered rows overflow");
    if (!L->bwd_thread_bytes || kat_mul_overflow(T, L->fwd_thread_bytes, &a) ||
        kat_add_overflow(gq, gk, &gf) || kat_add_overflow(gf, gv, &gf) ||
        kat_add_overflow(a, gf, &L->fwd_bytes))
        return kat__fail(KAT_ERANGE, "sparse layout: workspace size overflows");
    L->fwd_gather_off = a;
    if (kat_mul_overflow(T, L->bwd_thread_bytes, &a) ||
        kat_mul3_overflow(L->part_slots, (size_t)BQ * L->ctx.ldd, sizeof(float), &b) ||
        kat_add_overflow(a, b, &c) || kat_add_overflow(gq, gd, &gb) ||
        kat_add_overflow(gb, gk, &gb) || kat_add_overflow(gb, gv, &gb) ||
        kat_add_overflow(c, gb, &L->bwd_bytes))
        return kat__fail(KAT_ERANGE, "sparse layout: workspace size overflows");
    L->bwd_part_off = a;
    L->bwd_gather_off = c;
    return KAT_OK;
}

kat_status kat__sparse_layout_finish(kat_sparse_layout *L, sp_pair_gen gen, const void *ctx)
{
    kat_status st;
    if ((st = make_pairs(L, gen, ctx)) || (st = make_units(L)) || (st = size_workspaces(L)))
        return st;
    return KAT_OK;
}
