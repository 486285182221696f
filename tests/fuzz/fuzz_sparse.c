/* libFuzzer harness for the sparse attention layouts: the input picks a mode (QK-drop, hash,
 * explicit block lists, sliding window, global tokens, dense mask), small random shapes and
 * the pattern itself - keep lists, bucket ids, block lists - either well formed or raw bytes
 * (unsorted, duplicated, out of range). A rejected pattern must come back as an error with a
 * message and no output; an accepted one must run forward and backward and agree with the
 * library's oracle (kat_attn_reference_masked) on the element mask built here from the same
 * raw pattern, within its error model (tests/masked_attention.h: twice the naive fp32 error
 * plus the a-priori floor), rows that see no key exactly 0 with lse = -inf. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "../masked_attention.h"
#include "../sparse_plan.h"
#include "fuzz_bytes.h"

static int stripe(void *arg, size_t b, size_t h, size_t i, size_t j)
{
    (void)b, (void)h;   /* the mask is broadcast over batch and heads */
    unsigned m = *(const unsigned *)arg;
    return (i * 7 + j * 3) % m != 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    bytes in = {data, size};
    unsigned mode = take(&in) % 6, flags = take(&in);
    size_t B = 1 + take(&in) % 2, Hkv = 1 + take(&in) % 2;
    size_t H = Hkv * (1 + take(&in) % 2), N = take(&in) % 160;
    size_t M = flags & 1 ? N : take(&in) % 160, D = 1 + take(&in) % 16;
    prob s;   /* the pattern's element mask goes into s.allowed, causality included */
    prob_init(&s, B, H, Hkv, N, M, D, (int)(take(&in) % 4) /* 3 is invalid */, 0.0);
    size_t nq = s.B * s.H * s.N, nk = s.B * s.Hkv * s.M;
    memset(s.allowed, 0, nq * s.M);
    kat_attn_desc desc = {s.B, s.H, s.Hkv, s.N, s.M, s.D, s.causal, 0, 0};
    sp_handle *L = NULL;
    kat_sparse_blockmask *bm = NULL;
    kat_status st = KAT_OK;
    void *f1 = NULL, *f2 = NULL, *f3 = NULL, *f4 = NULL;
    unsigned stripe_mod = 2 + (flags >> 4) % 3;
    size_t g = s.H / s.Hkv;

    if (mode == 0) {   /* QK-drop from masks (well formed) or raw lists */
        uint8_t *qm = calloc(nq + 1, 1), *km = calloc(nk + 1, 1);
        f1 = qm, f2 = km;
        for (size_t i = 0; i < nq; i++)
            qm[i] = (take(&in) & 3) != 0;
        for (size_t i = 0; i < nk; i++)
            km[i] = (take(&in) & 3) != 0;
        kat_sparse_keep qk = {0}, kk = {0};
        if (kat_sparse_keep_from_mask(qm, s.B, s.H, s.N, &qk) ||
            kat_sparse_keep_from_mask(km, s.B, s.Hkv, s.M, &kk))
            __builtin_trap();
        int32_t *raw = NULL;
        const int32_t *own_idx = qk.idx;
        if (flags & 2) {   /* overwrite one list entry with a raw value */
            size_t tot = qk.offsets[s.B * s.H];
            if (tot) {
                raw = malloc(tot * sizeof(int32_t));
                memcpy(raw, qk.idx, tot * sizeof(int32_t));
                raw[take(&in) % tot] = (int32_t)(take16(&in) % (s.N + 3)) - 1;
                qk.idx = raw;
            }
        }
        st = sp_qk(&desc, &qk, flags & 4 ? NULL : &kk, &L);
        int valid = s.causal < 3;
        if (raw) {   /* the raw list is valid iff it stays sorted and in range */
            for (size_t hd = 0; hd < s.B * s.H && valid; hd++)
                for (size_t e = qk.offsets[hd]; e < qk.offsets[hd + 1]; e++)
                    if (raw[e] < 0 || (size_t)raw[e] >= s.N ||
                        (e > qk.offsets[hd] && raw[e] <= raw[e - 1]))
                        valid = 0;
        }
        if (valid != (st == KAT_OK))
            __builtin_trap();
        if (st == KAT_OK) {
            for (size_t hd = 0; hd < s.B * s.H; hd++)
                for (size_t e = qk.offsets[hd]; e < qk.offsets[hd + 1]; e++) {
                    size_t b = hd / s.H, h = hd % s.H, i = (size_t)qk.idx[e];
                    for (size_t j = 0; j < s.M; j++)
                        s.allowed[((b * s.H + h) * s.N + i) * s.M + j] =
                            (flags & 4 || km[(b * s.Hkv + h / g) * s.M + j]) && causal_ok(&s, i, j);
                }
        }
        free(raw);
        qk.idx = own_idx;
        kat_sparse_keep_free(&qk);
        kat_sparse_keep_free(&kk);
    } else if (mode == 1) {   /* hash: buckets in [0, nb], nb itself is out of range */
        size_t nb = 1 + take(&in) % (flags & 8 ? 200 : 8);
        int32_t *qb = calloc(nq + 1, sizeof(int32_t)), *kb = calloc(nk + 1, sizeof(int32_t));
        f1 = qb, f2 = kb;
        int bad = 0;
        for (size_t i = 0; i < nq; i++)
            bad |= (qb[i] = (int32_t)(take(&in) % (nb + (flags & 2 ? 1 : 0)))) >= (int32_t)nb;
        for (size_t i = 0; i < nk; i++)
            bad |= (kb[i] = (int32_t)(take(&in) % nb)) >= (int32_t)nb;
        st = sp_hash(&desc, nb, qb, kb, &L);
        if ((st == KAT_OK) != (!bad && s.causal < 3))
            __builtin_trap();
        for (size_t r = 0; r < nq && st == KAT_OK; r++) {
            size_t i = r % s.N, h = r / s.N % s.H, b = r / s.N / s.H;
            for (size_t j = 0; j < s.M; j++)
                s.allowed[r * s.M + j] =
                    qb[r] == kb[(b * s.Hkv + h / g) * s.M + j] && causal_ok(&s, i, j);
        }
    } else {   /* block masks */
        size_t bq = 1 + take(&in) % 70, bk = 1 + take(&in) % 120;
        size_t nqb = (s.N + bq - 1) / bq, nkb = (s.M + bk - 1) / bk;
        uint8_t *el = calloc(s.N * s.M + 1, 1);   /* broadcast element mask [N][M] */
        f1 = el;
        if (mode == 2) {   /* explicit lists with full flags and a predicate */
            size_t *off = calloc(nqb + 1, sizeof(size_t));
            int32_t *kbs = calloc(nqb * nkb + 1, sizeof(int32_t));
            uint8_t *full = calloc(nqb * nkb + 1, 1);
            f2 = off, f3 = kbs, f4 = full;
            int bad = 0;
            for (size_t qb = 0; qb < nqb; qb++) {
                off[qb + 1] = off[qb];
                for (size_t kb = 0; kb < nkb; kb++) {
                    unsigned c = take(&in);
                    if (c & 1) {
                        kbs[off[qb + 1]] = (int32_t)kb, full[off[qb + 1]] = (c >> 1) & 1;
                        off[qb + 1]++;
                    }
                }
            }
            if ((flags & 2) && off[nqb]) {   /* one raw entry */
                size_t e = take(&in) % off[nqb];
                kbs[e] = (int32_t)(take(&in) % (nkb + 2)) - 1;
                for (size_t qb = 0; qb < nqb; qb++)
                    for (size_t x = off[qb]; x < off[qb + 1]; x++)
                        bad |= kbs[x] < 0 || (size_t)kbs[x] >= nkb || (x > off[qb] && kbs[x] <= kbs[x - 1]);
            }
            kat_sparse_blockmask_desc bd = {1, 1, s.N, s.M, bq, bk, off, kbs, full,
                                            flags & 16 ? stripe : NULL, &stripe_mod};
            st = kat_sparse_blockmask_create(&bd, &bm);
            if ((st == KAT_OK) != !bad)
                __builtin_trap();
            for (size_t qb = 0; qb < nqb && st == KAT_OK; qb++)
                for (size_t x = off[qb]; x < off[qb + 1]; x++)
                    for (size_t i = qb * bq; i < s.N && i < (qb + 1) * bq; i++)
                        for (size_t j = (size_t)kbs[x] * bk; j < s.M && j < ((size_t)kbs[x] + 1) * bk; j++)
                            el[i * s.M + j] = full[x] || !(flags & 16) || stripe(&stripe_mod, 0, 0, i, j);
        } else if (mode == 3 || mode == 4) {
            size_t W = take(&in) % 90, G = mode == 4 ? take(&in) % 40 : 0;
            int mc = (flags >> 5) & 1;
            st = mode == 3 ? kat_sparse_blockmask_sliding_window(s.N, s.M, W, mc, bq, bk, &bm)
                           : kat_sparse_blockmask_global(s.N, s.M, G, W, mc, bq, bk, &bm);
            if ((st == KAT_OK) != (mode == 4 || W > 0))
                __builtin_trap();
            for (size_t i = 0; i < s.N; i++)
                for (size_t j = 0; j < s.M; j++) {
                    int64_t d = (int64_t)i + (int64_t)s.M - (int64_t)s.N - (int64_t)j;
                    int band = d < (int64_t)W && d > -(int64_t)W;
                    int in_ = mode == 3 ? band : (j < G || band || (!mc && i < G));
                    el[i * s.M + j] = in_ && (!mc || d >= 0);
                }
        } else {   /* dense */
            for (size_t i = 0; i < s.N * s.M; i++)
                el[i] = (take(&in) & 1) != 0;
            st = kat_sparse_blockmask_from_dense(el, 1, 1, s.N, s.M, bq, bk, &bm);
            if (st != KAT_OK)
                __builtin_trap();
        }
        if (st == KAT_OK) {
            st = sp_block(&desc, bm, &L);
            if ((st == KAT_OK) != (s.causal < 3))
                __builtin_trap();
            for (size_t r = 0; r < nq && st == KAT_OK; r++) {
                size_t i = r % s.N;
                for (size_t j = 0; j < s.M; j++)
                    s.allowed[r * s.M + j] = el[i * s.M + j] && causal_ok(&s, i, j);
            }
        }
    }
    if (st != KAT_OK) {
        if (kat_last_error()[0] == '\0' || L)   /* every failure explains itself */
            __builtin_trap();
    } else {
        uint32_t x = 12345u + (uint32_t)size;
        for (size_t i = 0; i < nq * D; i++)
            x = x * 1664525u + 1013904223u, s.q[i] = (float)((x >> 8) % 2001) / 500.0f - 2.0f,
            s.dout[i] = (float)((x >> 3) % 101) / 50.0f - 1.0f;
        for (size_t i = 0; i < nk * D; i++)
            x = x * 1664525u + 1013904223u, s.k[i] = (float)((x >> 8) % 2001) / 1000.0f - 1.0f,
            s.v[i] = (float)((x >> 4) % 2001) / 1000.0f - 1.0f;
        float *o = xcalloc(nq * D, 4), *lse = xcalloc(nq, 4), *dq = xcalloc(nq * D, 4);
        float *dk = xcalloc(nk * D, 4), *dv = xcalloc(nk * D, 4);
        kat_tensor tq = kat_tensor_view(s.q, s.B, s.H, s.N, D), tk = kat_tensor_view(s.k, s.B, s.Hkv, s.M, D);
        kat_tensor tv = kat_tensor_view(s.v, s.B, s.Hkv, s.M, D), tdo = kat_tensor_view(s.dout, s.B, s.H, s.N, D);
        kat_tensor to = kat_tensor_view(o, s.B, s.H, s.N, D), tl = kat_tensor_view(lse, s.B, s.H, s.N, 1);
        kat_tensor tdq = kat_tensor_view(dq, s.B, s.H, s.N, D), tdk = kat_tensor_view(dk, s.B, s.Hkv, s.M, D);
        kat_tensor tdv = kat_tensor_view(dv, s.B, s.Hkv, s.M, D);
        if (sp_forward(L, &tq, &tk, &tv, &to, &tl, NULL) ||
            sp_backward(L, &tq, &tk, &tv, &to, &tl, &tdo, &tdq, &tdk, &tdv, NULL))
            __builtin_trap();
        ma_expect_all(&s, o, lse, dq, dk, dv, "fuzz_sparse");
        free(o), free(lse), free(dq), free(dk), free(dv);
    }
    sp_handle_destroy(L);
    kat_sparse_blockmask_destroy(bm);
    free(f1), free(f2), free(f3), free(f4);
    prob_free(&s);
    return 0;
}
