/* Numerical extremes, for every attention backend (the dense flash engine with each ISA's
 * kernels, the unfused BLAS baseline, the sparse layouts: QK-drop, hash buckets, block masks,
 * and the linear engine), plus the rank probe:
 *   - huge logits (|scale q.k| in the thousands, the running maximum jumping between tiles),
 *     tiny logits (scale 1e-30: a uniform softmax), subnormal inputs, values near the fp32
 *     overflow threshold;
 *   - N = 1, M = 1, D = 1, empty batches;
 *   - every key masked (causal with N > M, M = 0, every key dropped, disjoint buckets, empty
 *     block lists, strict causality at position 0): o = 0, lse = -inf, zero gradients, exactly;
 *   - every token in one bucket (the hash layout is then dense attention);
 *   - NaN and +-Inf in every input tensor rejected with KAT_EDOM, naming the tensor, with the
 *     caller's outputs and inputs unchanged.
 *
 * Yardsticks (tests/masked_attention.h): an fp64 masked attention (the reference) and the
 * same loops in naive fp32, built here from the raw pattern, independently of the library;
 * the bound is the FlashAttention rule with an a-priori floor, explained there. */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "masked_attention.h"
#include "sparse_plan.h"
#include "testutil.h"

static void fill_gauss(float *x, size_t n, uint64_t seed, double sigma)
{
    kat_rng *rng;
    ck_assert(kat_rng_create(seed, &rng) == KAT_OK);
    for (size_t i = 0; i < n; i++)
        x[i] = (float)kat_rng_gaussian(rng, sigma);
    kat_rng_destroy(rng);
}

/* Integers in [-r, r]: their dot products are exact in fp32 (|q.k| < 2^24). */
static void fill_int(float *x, size_t n, uint64_t seed, int r)
{
    kat_rng *rng;
    ck_assert(kat_rng_create(seed, &rng) == KAT_OK);
    for (size_t i = 0; i < n; i++)
        x[i] = (float)((int)kat_rng_uint(rng, (uint64_t)(2 * r + 1)) - r);
    kat_rng_destroy(rng);
}

static void prob_fill(prob *p, uint64_t seed, double sq, double sk, double sv, double sd)
{
    fill_gauss(p->q, nq_(p), seed, sq);
    fill_gauss(p->k, nk_(p), seed + 1, sk);
    fill_gauss(p->v, nk_(p), seed + 2, sv);
    fill_gauss(p->dout, nq_(p), seed + 3, sd);
}

/* What a backend produced: contiguous fp32 arrays. */
typedef struct {
    float *o, *lse, *dq, *dk, *dv;
    int has_backward;
} result;

static void result_init(result *r, const prob *p)
{
    r->o = xcalloc(nq_(p), sizeof(float));
    r->lse = xcalloc(nl_(p), sizeof(float));
    r->dq = xcalloc(nq_(p), sizeof(float));
    r->dk = xcalloc(nk_(p), sizeof(float));
    r->dv = xcalloc(nk_(p), sizeof(float));
    r->has_backward = 0;
}

static void result_free(result *r) { free(r->o), free(r->lse), free(r->dq), free(r->dk), free(r->dv); }


static void expect_close(const char *label, const char *what, const float *x, const float *naive,
                         const double *ref, size_t n, double A, const prob *p, const yardstick *y)
{
    double err = max_err(x, ref, n), nerr = max_err(naive, ref, n);
    double tol = ma_bound(p, y, A, nerr);
    ck_assert_msg(err <= tol, "%s: %s error %.3g above the bound %.3g (naive fp32: %.3g)", label,
                  what, err, tol, nerr);
}

/* Rows that see no key: o = 0, lse = -inf, dq = 0, exactly. */
static void expect_empty_rows_exact(const char *label, const prob *p, const result *r)
{
    for (size_t row = 0; row < nl_(p); row++) {
        int any = 0;
        for (size_t j = 0; j < p->M; j++)
            any |= p->allowed[row * p->M + j];
        if (any)
            continue;
        ck_assert_msg(r->lse[row] == -INFINITY, "%s: row %zu sees no key but lse = %g", label,
                      row, (double)r->lse[row]);
        for (size_t e = 0; e < p->D; e++) {
            ck_assert_msg(r->o[row * p->D + e] == 0.0f, "%s: row %zu sees no key but o = %g",
                          label, row, (double)r->o[row * p->D + e]);
            if (r->has_backward)
                ck_assert_msg(r->dq[row * p->D + e] == 0.0f,
                              "%s: row %zu sees no key but dq = %g", label, row,
                              (double)r->dq[row * p->D + e]);
        }
    }
}

static void compare(const char *label, const prob *p, const result *r)
{
    yardstick y;
    yardstick_init(&y, p);
    expect_close(label, "o", r->o, y.no, y.o, nq_(p), y.A_o, p, &y);
    /* lse: its own fp32 rounding (eps |lse|), the logits' and the sum's. */
    double lerr = max_err(r->lse, y.lse, nl_(p)), lnerr = max_err(y.nlse, y.lse, nl_(p));
    double ltol = ma_lse_bound(p, &y, lnerr);
    ck_assert_msg(lerr <= ltol, "%s: lse error %.3g above the bound %.3g (naive fp32: %.3g)",
                  label, lerr, ltol, lnerr);
    if (r->has_backward) {
        expect_close(label, "dq", r->dq, y.ndq, y.dq, nq_(p), y.A_dq, p, &y);
        expect_close(label, "dk", r->dk, y.ndk, y.dk, nk_(p), y.A_dk, p, &y);
        expect_close(label, "dv", r->dv, y.ndv, y.dv, nk_(p), y.A_dv, p, &y);
    }
    expect_empty_rows_exact(label, p, r);
    yardstick_free(&y);
}

/* ---- backends ------------------------------------------------------------------------------- */

typedef struct {
    kat_tensor q, k, v, dout, o, lse, dq, dk, dv;
} tviews;

static tviews make_views(const prob *p, const result *r)
{
    tviews t;
    t.q = kat_tensor_view(p->q, p->B, p->H, p->N, p->D);
    t.k = kat_tensor_view(p->k, p->B, p->Hkv, p->M, p->D);
    t.v = kat_tensor_view(p->v, p->B, p->Hkv, p->M, p->D);
    t.dout = kat_tensor_view(p->dout, p->B, p->H, p->N, p->D);
    t.o = kat_tensor_view(r->o, p->B, p->H, p->N, p->D);
    t.lse = kat_tensor_view(r->lse, p->B, p->H, p->N, 1);
    t.dq = kat_tensor_view(r->dq, p->B, p->H, p->N, p->D);
    t.dk = kat_tensor_view(r->dk, p->B, p->Hkv, p->M, p->D);
    t.dv = kat_tensor_view(r->dv, p->B, p->Hkv, p->M, p->D);
    return t;
}

static kat_attn_desc desc_of(const prob *p)
{
    return (kat_attn_desc){p->B, p->H, p->Hkv, p->N, p->M, p->D, p->causal, p->scale, 0};
}

/* The dense flash engine with every ISA's kernels, backward with and without lse; and the
 * unfused baseline. */
static void run_dense_backends(const char *name, const prob *p)
{
    ck_assert_int_le(p->causal, 1);
    kat_attn_desc d = desc_of(p);
    kat_arch initial = kat_arch_get();
    char label[200];
    for (int a = 0; a < KAT_ARCH_COUNT; a++) {
        if (!kat_arch_supported((kat_arch)a))
            continue;
        TU_OK(kat_arch_set((kat_arch)a));
        kat_attn_plan *plan;
        TU_OK(kat_attn_plan_create(&d, NULL, &plan));
        for (int with_lse = 1; with_lse >= 0; with_lse--) {
            result r;
            result_init(&r, p);
            tviews t = make_views(p, &r);
            TU_OK(kat_attn_forward(plan, NULL, &t.q, &t.k, &t.v, &t.o, &t.lse, NULL));
            /* The backward from the forward's own o and lse (or none). */
            TU_OK(kat_attn_backward(plan, NULL, &t.q, &t.k, &t.v, &t.o, with_lse ? &t.lse : NULL,
                                    &t.dout, &t.dq, &t.dk, &t.dv, NULL));
            r.has_backward = 1;
            snprintf(label, sizeof label, "%s: flash %s%s", name, kat_arch_name(),
                     with_lse ? "" : " (backward without lse)");
            compare(label, p, &r);
            result_free(&r);
        }
        kat_attn_plan_destroy(plan);
    }
    TU_OK(kat_arch_set(initial));
    result r;
    result_init(&r, p);
    tviews t = make_views(p, &r);
    TU_OK(kat_attn_unfused_forward(&d, &t.q, &t.k, &t.v, &t.o, &t.lse));
    TU_OK(kat_attn_unfused_backward(&d, &t.q, &t.k, &t.v, &t.o, &t.dout, &t.dq, &t.dk, &t.dv));
    r.has_backward = 1;
    snprintf(label, sizeof label, "%s: unfused", name);
    compare(label, p, &r);
    result_free(&r);
}

/* A sparse layout (built by the caller from the same pattern as p->allowed). */
static void run_sparse_backend(const char *label, const prob *p, const sp_handle *L)
{
    result r;
    result_init(&r, p);
    tviews t = make_views(p, &r);
    TU_OK(sp_forward(L, &t.q, &t.k, &t.v, &t.o, &t.lse, NULL));
    TU_OK(sp_backward(L, &t.q, &t.k, &t.v, &t.o, &t.lse, &t.dout, &t.dq, &t.dk, &t.dv,
                              NULL));
    r.has_backward = 1;
    compare(label, p, &r);
    result_free(&r);
}

/* The pattern of p->allowed (causality included) as each sparse layout: a dense block mask
 * from the pattern without causality, with p->causal on the desc. */
static void run_block_from_allowed(const char *name, const prob *p, const uint8_t *pattern)
{
    kat_sparse_blockmask *bm;
    TU_OK(kat_sparse_blockmask_from_dense(pattern, p->B, p->H, p->N, p->M, 16, 32, &bm));
    kat_attn_desc d = desc_of(p);
    sp_handle *L;
    TU_OK(sp_block(&d, bm, &L));
    char label[200];
    snprintf(label, sizeof label, "%s: sparse block mask", name);
    run_sparse_backend(label, p, L);
    sp_handle_destroy(L);
    kat_sparse_blockmask_destroy(bm);
}

/* Every backend on an unmasked (causal or not) problem: dense, unfused, and the sparse layouts
 * that keep everything (QK-drop with NULL lists, one hash bucket, an all-ones block mask). */
static void run_all_backends(const char *name, const prob *p)
{
    char label[200];
    if (p->causal <= 1)
        run_dense_backends(name, p);
    kat_attn_desc d = desc_of(p);
    sp_handle *L;
    TU_OK(sp_qk(&d, NULL, NULL, &L));
    snprintf(label, sizeof label, "%s: sparse QK-drop (keep all)", name);
    run_sparse_backend(label, p, L);
    sp_handle_destroy(L);

    int32_t *qb = xcalloc(nl_(p), sizeof(int32_t)), *kb = xcalloc(p->B * p->Hkv * p->M, 4);
    for (size_t i = 0; i < nl_(p); i++)
        qb[i] = 2;
    for (size_t i = 0; i < p->B * p->Hkv * p->M; i++)
        kb[i] = 2;
    TU_OK(sp_hash(&d, 5, qb, kb, &L));   /* every token in bucket 2 */
    snprintf(label, sizeof label, "%s: sparse hash (one bucket)", name);
    run_sparse_backend(label, p, L);
    sp_handle_destroy(L);
    free(qb), free(kb);

    uint8_t *ones = xcalloc(p->B * p->H * p->N * p->M, 1);
    memset(ones, 1, p->B * p->H * p->N * p->M);
    run_block_from_allowed(name, p, ones);
    free(ones);
}

/* ---- huge and tiny logits, subnormals, large values ---------------------------------------- */

START_TEST(test_huge_logits)
{
    /* Integer q, k with scale 8: exact logits up to 8 * 16 * 64 = 8192; the first rows get
     * their largest logit in the last key tile, so the running maximum jumps by thousands and
     * every earlier partial sum is rescaled by exp(-thousands) = 0. */
    for (int causal = 0; causal <= 1; causal++) {
        prob p;
        prob_init(&p, 1, 2, 1, 70, 90, 16, causal, 8.0);
        fill_int(p.q, nq_(&p), 1, 8);
        fill_int(p.k, nk_(&p), 2, 8);
        fill_gauss(p.v, nk_(&p), 3, 1.0);
        fill_gauss(p.dout, nq_(&p), 4, 1.0);
        for (size_t e = 0; e < p.D; e++)   /* key M-1 aligns with query 0 of each head */
            p.k[(p.M - 1) * p.D + e] = 8.0f * (p.q[e] > 0 ? 1.0f : -1.0f);
        run_all_backends(causal ? "huge logits, causal" : "huge logits", &p);
        prob_free(&p);
    }
    /* A negative scale: the largest logit comes from the most negative q.k. */
    prob p;
    prob_init(&p, 1, 1, 1, 33, 65, 8, 0, -16.0);
    fill_int(p.q, nq_(&p), 5, 6);
    fill_int(p.k, nk_(&p), 6, 6);
    fill_gauss(p.v, nk_(&p), 7, 1.0);
    fill_gauss(p.dout, nq_(&p), 8, 1.0);
    run_all_backends("huge logits, negative scale", &p);
    prob_free(&p);
}
END_TEST

START_TEST(test_tiny_logits_and_subnormals)
{
    prob p;
    /* scale 1e-30: every logit rounds to 0 against 1, a uniform softmax: o = mean of v. */
    prob_init(&p, 2, 2, 2, 40, 50, 24, 1, 1e-30);
    prob_fill(&p, 11, 1.0, 1.0, 1.0, 1.0);
    run_all_backends("tiny logits", &p);
    prob_free(&p);
    /* Subnormal q, k, v (|x| ~ 1e-40 < FLT_MIN = 1.2e-38): logits underflow to 0, o is a mean
     * of subnormals, which must come out as computed by IEEE arithmetic (not flushed to 0). */
    prob_init(&p, 1, 2, 1, 35, 35, 16, 0, 0);
    prob_fill(&p, 12, 1e-40, 1e-40, 1e-40, 1.0);
    run_all_backends("subnormal inputs", &p);
    prob_free(&p);
    /* Subnormal dout: the gradients are subnormal. */
    prob_init(&p, 1, 1, 1, 20, 30, 8, 1, 0);
    prob_fill(&p, 13, 1.0, 1.0, 1.0, 1e-41);
    run_all_backends("subnormal dout", &p);
    prob_free(&p);
}
END_TEST

START_TEST(test_large_values)
{
    /* v near the fp32 range (1e36: a weighted mean stays below 3.4e38, and D * |v| * |dout|
     * too) and q, k whose products are large but finite. */
    prob p;
    prob_init(&p, 1, 2, 2, 30, 40, 8, 1, 0);
    prob_fill(&p, 21, 1.0, 1.0, 1e36, 1.0);
    run_all_backends("v of 1e36", &p);
    prob_free(&p);
    prob_init(&p, 1, 1, 1, 25, 25, 4, 0, 1e-30);
    prob_fill(&p, 22, 1e15, 1e15, 1.0, 1.0);   /* q.k ~ 1e30, logits ~ 1 */
    run_all_backends("q, k of 1e15 with scale 1e-30", &p);
    prob_free(&p);
}
END_TEST

/* q.k beyond the fp32 range: every input is finite and so is every logit scale * q.k (about
 * 1e8), but q.k itself (about 1e38 x D) is not representable in fp32. A backend may refuse
 * (an error status, outputs untouched), or must give the right answer: here the gaps between
 * a row's logits (about 1e7) dwarf their fp32 rounding (about 1e8 x D eps32 < 100), so the
 * softmax is exactly one-hot and o is the v of the row's largest logit, up to eps32. Never
 * NaN, Inf or a wrong value with KAT_OK. */
static char overflow_msgs[2048];

/* Appends a line to overflow_msgs when the backend neither refused cleanly nor was right. */
static void expect_refused_or_right(const char *label, const prob *p, kat_status st,
                                    const result *r, const yardstick *y)
{
    size_t len = strlen(overflow_msgs);
    for (size_t i = 0; i < nq_(p); i++) {
        int bad = st != KAT_OK ? r->o[i] != 42.0f
                               : !(fabs((double)r->o[i] - y->o[i]) <= 8.0 * EPS32 * y->A_o);
        if (bad) {
            snprintf(overflow_msgs + len, sizeof overflow_msgs - len,
                     "\n%s: status %s with o[%zu] = %g, the fp64 reference is %g", label,
                     kat_strerror(st), i, (double)r->o[i], y->o[i]);
            return;
        }
    }
}

START_TEST(test_logit_overflow)
{
    prob p;
    prob_init(&p, 1, 1, 1, 8, 12, 4, 0, 1e-30);
    prob_fill(&p, 31, 1e19, 1e19, 1.0, 1.0);
    yardstick y;
    yardstick_init(&y, &p);
    kat_attn_desc d = desc_of(&p);
    char label[160];
    kat_arch initial = kat_arch_get();
    for (int b = -1; b <= KAT_ARCH_COUNT; b++) {
        result r;
        result_init(&r, &p);
        for (size_t i = 0; i < nq_(&p); i++)
            r.o[i] = 42.0f;
        tviews t = make_views(&p, &r);
        kat_status st;
        if (b == -1) {
            st = kat_attn_unfused_forward(&d, &t.q, &t.k, &t.v, &t.o, &t.lse);
            snprintf(label, sizeof label, "unfused forward, q.k overflowing fp32");
        } else if (b == KAT_ARCH_COUNT) {
            sp_handle *L;
            TU_OK(sp_qk(&d, NULL, NULL, &L));
            st = sp_forward(L, &t.q, &t.k, &t.v, &t.o, &t.lse, NULL);
            sp_handle_destroy(L);
            snprintf(label, sizeof label, "sparse forward, q.k overflowing fp32");
        } else {
            if (!kat_arch_supported((kat_arch)b)) {
                result_free(&r);
                continue;
            }
            TU_OK(kat_arch_set((kat_arch)b));
            kat_attn_plan *plan;
            TU_OK(kat_attn_plan_create(&d, NULL, &plan));
            st = kat_attn_forward(plan, NULL, &t.q, &t.k, &t.v, &t.o, &t.lse, NULL);
            kat_attn_plan_destroy(plan);
            snprintf(label, sizeof label, "flash %s forward, q.k overflowing fp32",
                     kat_arch_name());
        }
        expect_refused_or_right(label, &p, st, &r, &y);
        result_free(&r);
    }
    TU_OK(kat_arch_set(initial));
    yardstick_free(&y);
    prob_free(&p);
    ck_assert_msg(overflow_msgs[0] == '\0', "silent wrong answers:%s", overflow_msgs);
}
END_TEST

/* ---- shapes ---------------------------------------------------------------------------------- */

START_TEST(test_small_shapes)
{
    /* {B, H, Hkv, N, M, D, causal} */
    const size_t shapes[][7] = {
        {1, 1, 1, 1, 1, 1, 0},   {1, 1, 1, 1, 1, 1, 1},   {1, 1, 1, 1, 300, 8, 0},
        {1, 1, 1, 1, 300, 8, 1}, {3, 2, 1, 17, 9, 1, 0},  {1, 4, 4, 2, 2, 1, 1},
        {2, 1, 1, 130, 1, 3, 0}, {1, 1, 1, 64, 64, 256, 1}, {1, 2, 2, 0, 5, 4, 0},
        {0, 2, 2, 3, 5, 4, 1},
    };
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const size_t *x = shapes[s];
        if (tu_quick() && x[5] == 256)
            continue;   /* the largest head dimension: minutes under valgrind */
        prob p;
        prob_init(&p, x[0], x[1], x[2], x[3], x[4], x[5], (int)x[6], 0);
        prob_fill(&p, 40 + s, 1.0, 1.0, 1.0, 1.0);
        char name[96];
        snprintf(name, sizeof name, "shape B=%zu H=%zu Hkv=%zu N=%zu M=%zu D=%zu causal=%zu", x[0],
                 x[1], x[2], x[3], x[4], x[5], x[6]);
        run_all_backends(name, &p);
        prob_free(&p);
    }
}
END_TEST

/* ---- every key masked ------------------------------------------------------------------------ */

static int refuse_all(void *arg, size_t b, size_t h, size_t i, size_t j) { return 0; }

START_TEST(test_every_key_masked)
{
    prob p;
    /* Causal with N > M: the first N - M queries see no key. */
    prob_init(&p, 1, 2, 1, 50, 10, 8, 1, 0);
    prob_fill(&p, 51, 1.0, 1.0, 1.0, 1.0);
    run_all_backends("causal, N > M", &p);
    prob_free(&p);
    /* M = 0: no key at all. */
    prob_init(&p, 1, 2, 2, 20, 0, 8, 0, 0);
    prob_fill(&p, 52, 1.0, 1.0, 1.0, 1.0);
    run_all_backends("M = 0", &p);
    prob_free(&p);
    /* Strict causality: query 0 sees nothing (sparse layouts only). */
    prob_init(&p, 1, 1, 1, 40, 40, 8, 2, 0);
    prob_fill(&p, 53, 1.0, 1.0, 1.0, 1.0);
    run_all_backends("strictly causal", &p);
    prob_free(&p);

    /* Every key dropped (QK-drop), disjoint buckets (hash), empty block lists. */
    prob_init(&p, 1, 2, 1, 70, 70, 8, 0, 0);
    prob_fill(&p, 54, 1.0, 1.0, 1.0, 1.0);
    memset(p.allowed, 0, p.B * p.H * p.N * p.M);
    kat_attn_desc d = desc_of(&p);
    size_t qoff[3] = {0, 70, 140}, koff[2] = {0, 0};
    int32_t *qidx = xcalloc(140, sizeof(int32_t));
    for (int i = 0; i < 140; i++)
        qidx[i] = i % 70;
    int32_t no_key[1] = {0};
    kat_sparse_keep qk = {1, 2, 70, qoff, qidx}, kk = {1, 1, 70, koff, no_key};
    sp_handle *L;
    TU_OK(sp_qk(&d, &qk, &kk, &L));
    run_sparse_backend("every key dropped: sparse QK-drop", &p, L);
    sp_handle_destroy(L);
    int32_t qb[140], kb[70];
    for (int i = 0; i < 140; i++)
        qb[i] = i % 2;   /* buckets 0 and 1 */
    for (int i = 0; i < 70; i++)
        kb[i] = 2 + i % 2;   /* buckets 2 and 3 */
    TU_OK(sp_hash(&d, 4, qb, kb, &L));
    run_sparse_backend("disjoint buckets: sparse hash", &p, L);
    sp_handle_destroy(L);
    size_t boff[6] = {0};
    int32_t none[1] = {0};
    kat_sparse_blockmask_desc bd = {1, 1, 70, 70, 16, 16, boff, none, NULL, NULL, NULL};
    kat_sparse_blockmask *bm;
    TU_OK(kat_sparse_blockmask_create(&bd, &bm));
    TU_OK(sp_block(&d, bm, &L));
    run_sparse_backend("empty block lists: sparse block mask", &p, L);
    sp_handle_destroy(L);
    kat_sparse_blockmask_destroy(bm);
    /* Diagonal blocks listed, not full, with a predicate that refuses every element. */
    size_t poff[6];
    int32_t pk[5];
    for (int i = 0; i < 5; i++)
        poff[i] = (size_t)i, pk[i] = i;
    poff[5] = 5;
    bd.offsets = poff, bd.kblocks = pk, bd.fn = refuse_all;
    TU_OK(kat_sparse_blockmask_create(&bd, &bm));
    TU_OK(sp_block(&d, bm, &L));
    run_sparse_backend("a predicate refusing everything: sparse block mask", &p, L);
    sp_handle_destroy(L);
    kat_sparse_blockmask_destroy(bm);
    free(qidx);
    prob_free(&p);

    /* Random drop patterns with some heads entirely empty, checked against the mask. */
    prob_init(&p, 2, 2, 1, 45, 45, 8, 1, 0);
    prob_fill(&p, 55, 2.0, 1.0, 1.0, 1.0);
    uint8_t qm[2 * 2 * 45], km[2 * 1 * 45];
    for (size_t i = 0; i < sizeof qm; i++)
        qm[i] = (i * 7) % 3 != 0;
    for (size_t i = 0; i < sizeof km; i++)
        km[i] = i >= 45 && (i * 5) % 4 != 0;   /* batch 0 keeps no key */
    for (size_t b = 0; b < 2; b++)
        for (size_t h = 0; h < 2; h++)
            for (size_t i = 0; i < 45; i++)
                for (size_t j = 0; j < 45; j++)
                    p.allowed[((b * 2 + h) * 45 + i) * 45 + j] =
                        qm[(b * 2 + h) * 45 + i] && km[b * 45 + j] && j <= i;
    kat_sparse_keep qk2, kk2;
    TU_OK(kat_sparse_keep_from_mask(qm, 2, 2, 45, &qk2));
    TU_OK(kat_sparse_keep_from_mask(km, 2, 1, 45, &kk2));
    d = desc_of(&p);
    TU_OK(sp_qk(&d, &qk2, &kk2, &L));
    run_sparse_backend("batch 0 keeps no key: sparse QK-drop", &p, L);
    sp_handle_destroy(L);
    kat_sparse_keep_free(&qk2);
    kat_sparse_keep_free(&kk2);
    prob_free(&p);
}
END_TEST

/* Every token in one bucket: the hash layout is dense (causal) attention, for each bucket id
 * and bucket count; with huge logits too. */
START_TEST(test_one_bucket)
{
    const size_t nbs[] = {1, 2, 64};
    for (size_t t = 0; t < 3; t++) {
        prob p;
        prob_init(&p, 1, 2, 1, 90, 90, 16, 1, t == 2 ? 8.0 : 0);
        if (t == 2) {
            fill_int(p.q, nq_(&p), 61, 8), fill_int(p.k, nk_(&p), 62, 8);
            fill_gauss(p.v, nk_(&p), 63, 1.0), fill_gauss(p.dout, nq_(&p), 64, 1.0);
        } else {
            prob_fill(&p, 60 + t, 1.0, 1.0, 1.0, 1.0);
        }
        int32_t qb[2 * 90], kb[90];
        for (int i = 0; i < 180; i++)
            qb[i] = (int32_t)(nbs[t] - 1);
        for (int i = 0; i < 90; i++)
            kb[i] = (int32_t)(nbs[t] - 1);
        kat_attn_desc d = desc_of(&p);
        sp_handle *L;
        TU_OK(sp_hash(&d, nbs[t], qb, kb, &L));
        char label[96];
        snprintf(label, sizeof label, "one bucket of %zu%s", nbs[t], t == 2 ? ", huge logits" : "");
        run_sparse_backend(label, &p, L);
        sp_handle_destroy(L);
        prob_free(&p);
    }
}
END_TEST

/* ---- NaN and Inf rejected -------------------------------------------------------------------- */

static const float bad_values[3] = {NAN, INFINITY, -INFINITY};

/* Snapshot of every buffer a call could touch. */
typedef struct {
    float *buf[12];
    size_t n[12];
    float *copy[12];
    int count;
} snapshot;

static void snap_add(snapshot *s, float *b, size_t n)
{
    s->buf[s->count] = b, s->n[s->count] = n;
    s->copy[s->count] = xcalloc(n, sizeof(float));
    memcpy(s->copy[s->count], b, n * sizeof(float));
    s->count++;
}

static void snap_expect_same(snapshot *s, const char *label)
{
    for (int i = 0; i < s->count; i++) {
        ck_assert_msg(memcmp(s->buf[i], s->copy[i], s->n[i] * sizeof(float)) == 0,
                      "%s: buffer %d changed by a call that was refused", label, i);
        free(s->copy[i]);
    }
    s->count = 0;
}

typedef enum { BK_FLASH, BK_UNFUSED, BK_SPARSE_QK, BK_SPARSE_HASH, BK_SPARSE_BLOCK, BK_COUNT } backend;
static const char *const backend_names[BK_COUNT] = {"flash", "unfused", "sparse QK-drop",
                                                    "sparse hash", "sparse block mask"};

typedef struct {
    kat_attn_plan *plan;
    sp_handle *layout[BK_COUNT];
    kat_attn_desc d;
} backends;

static kat_status call_forward(backends *be, backend b, tviews *t)
{
    switch (b) {
    case BK_FLASH:
        return kat_attn_forward(be->plan, NULL, &t->q, &t->k, &t->v, &t->o, &t->lse, NULL);
    case BK_UNFUSED:
        return kat_attn_unfused_forward(&be->d, &t->q, &t->k, &t->v, &t->o, &t->lse);
    default:
        return sp_forward(be->layout[b], &t->q, &t->k, &t->v, &t->o, &t->lse, NULL);
    }
}

static kat_status call_backward(backends *be, backend b, tviews *t, const kat_tensor *o,
                                const kat_tensor *lse)
{
    switch (b) {
    case BK_FLASH:
        return kat_attn_backward(be->plan, NULL, &t->q, &t->k, &t->v, o, lse, &t->dout, &t->dq, &t->dk,
                                 &t->dv, NULL);
    case BK_UNFUSED:
        return kat_attn_unfused_backward(&be->d, &t->q, &t->k, &t->v, o, &t->dout, &t->dq,
                                         &t->dk, &t->dv);
    default:
        return sp_backward(be->layout[b], &t->q, &t->k, &t->v, o, lse, &t->dout, &t->dq,
                                   &t->dk, &t->dv, NULL);
    }
}

START_TEST(test_nonfinite_rejected)
{
    prob p;
    prob_init(&p, 1, 2, 1, 40, 40, 8, 1, 0);
    prob_fill(&p, 71, 1.0, 1.0, 1.0, 1.0);
    backends be;
    memset(&be, 0, sizeof be);
    be.d = desc_of(&p);
    TU_OK(kat_attn_plan_create(&be.d, NULL, &be.plan));
    TU_OK(sp_qk(&be.d, NULL, NULL, &be.layout[BK_SPARSE_QK]));
    int32_t qb[80] = {0}, kb[40] = {0};
    TU_OK(sp_hash(&be.d, 1, qb, kb, &be.layout[BK_SPARSE_HASH]));
    kat_sparse_blockmask *bm;
    TU_OK(kat_sparse_blockmask_sliding_window(40, 40, 40, 1, 16, 16, &bm));
    TU_OK(sp_block(&be.d, bm, &be.layout[BK_SPARSE_BLOCK]));
    kat_sparse_blockmask_destroy(bm);

    /* A valid forward result, for the backward's o and lse. */
    result fw, r;
    result_init(&fw, &p);
    result_init(&r, &p);
    tviews t0 = make_views(&p, &fw);
    TU_OK(kat_attn_forward(be.plan, NULL, &t0.q, &t0.k, &t0.v, &t0.o, &t0.lse, NULL));
    kat_tensor fo = t0.o, flse = t0.lse;

    struct {
        const char *name;
        float *data;
        size_t n;
        int fwd;   /* also an input of the forward */
    } inputs[] = {
        {"q", p.q, nq_(&p), 1}, {"k", p.k, nk_(&p), 1}, {"v", p.v, nk_(&p), 1},
        {"dout", p.dout, nq_(&p), 0}, {"o", fw.o, nq_(&p), 0},
    };
    char label[160];
    for (int b = 0; b < BK_COUNT; b++)
        for (size_t in = 0; in < sizeof inputs / sizeof inputs[0]; in++)
            for (int bv = 0; bv < 3; bv++) {
                size_t at = (in * 7 + (size_t)bv * 13 + 5) % inputs[in].n;
                float saved = inputs[in].data[at];
                inputs[in].data[at] = bad_values[bv];
                tviews t = make_views(&p, &r);
                for (int pass = inputs[in].fwd ? 0 : 1; pass < 2; pass++) {
                    snprintf(label, sizeof label, "%s %s with %g in %s[%zu]", backend_names[b],
                             pass ? "backward" : "forward", (double)bad_values[bv],
                             inputs[in].name, at);
                    snapshot s = {0};
                    memset(r.o, 0x55, nq_(&p) * 4), memset(r.lse, 0x55, nl_(&p) * 4);
                    memset(r.dq, 0x55, nq_(&p) * 4), memset(r.dk, 0x55, nk_(&p) * 4);
                    memset(r.dv, 0x55, nk_(&p) * 4);
                    snap_add(&s, p.q, nq_(&p)), snap_add(&s, p.k, nk_(&p));
                    snap_add(&s, p.v, nk_(&p)), snap_add(&s, p.dout, nq_(&p));
                    snap_add(&s, fw.o, nq_(&p)), snap_add(&s, fw.lse, nl_(&p));
                    snap_add(&s, r.o, nq_(&p)), snap_add(&s, r.lse, nl_(&p));
                    snap_add(&s, r.dq, nq_(&p)), snap_add(&s, r.dk, nk_(&p));
                    snap_add(&s, r.dv, nk_(&p));
                    kat_clear_error();
                    kat_status st = pass ? call_backward(&be, (backend)b, &t, &fo, &flse)
                                         : call_forward(&be, (backend)b, &t);
                    ck_assert_msg(st == KAT_EDOM, "%s: status %s, expected KAT_EDOM (%s)", label,
                                  kat_strerror(st), kat_last_error());
                    char needle[16];
                    snprintf(needle, sizeof needle, "%s", inputs[in].name);
                    ck_assert_msg(strstr(kat_last_error(), needle) != NULL,
                                  "%s: the error '%s' does not name %s", label, kat_last_error(),
                                  needle);
                    snap_expect_same(&s, label);
                }
                inputs[in].data[at] = saved;
            }

    /* lse: NaN and +inf are refused; -inf is "no key" and accepted only where it is true. */
    for (int b = 0; b < BK_COUNT; b++) {
        if (b == BK_UNFUSED)
            continue;   /* takes no lse */
        for (int bv = 0; bv < 2; bv++) {
            float saved = fw.lse[17];
            fw.lse[17] = bad_values[bv];
            tviews t = make_views(&p, &r);
            snprintf(label, sizeof label, "%s backward with %g in lse", backend_names[b],
                     (double)bad_values[bv]);
            snapshot s = {0};
            snap_add(&s, r.dq, nq_(&p)), snap_add(&s, r.dk, nk_(&p)), snap_add(&s, r.dv, nk_(&p));
            kat_clear_error();
            kat_status st = call_backward(&be, (backend)b, &t, &fo, &flse);
            ck_assert_msg(st == KAT_EDOM && strstr(kat_last_error(), "lse"),
                          "%s: status %s (%s)", label, kat_strerror(st), kat_last_error());
            snap_expect_same(&s, label);
            fw.lse[17] = saved;
        }
    }
    result_free(&fw), result_free(&r);
    kat_attn_plan_destroy(be.plan);
    for (int b = 0; b < BK_COUNT; b++)
        sp_handle_destroy(be.layout[b]);
    prob_free(&p);
}
END_TEST

/* An lse of -inf claims "this row saw no key". For a row that does see keys the backward
 * would compute exp(s + inf) = inf probabilities: it must refuse (KAT_EDOM) or give finite
 * gradients, never Inf or NaN with KAT_OK. */
START_TEST(test_lse_minus_inf_on_a_live_row)
{
    prob p;
    prob_init(&p, 1, 1, 1, 20, 20, 8, 0, 0);
    prob_fill(&p, 81, 1.0, 1.0, 1.0, 1.0);
    kat_attn_desc d = desc_of(&p);
    kat_attn_plan *plan;
    sp_handle *L;
    TU_OK(kat_attn_plan_create(&d, NULL, &plan));
    TU_OK(sp_qk(&d, NULL, NULL, &L));
    result fw, r;
    result_init(&fw, &p);
    result_init(&r, &p);
    tviews t = make_views(&p, &fw);
    TU_OK(kat_attn_forward(plan, NULL, &t.q, &t.k, &t.v, &t.o, &t.lse, NULL));
    fw.lse[3] = -INFINITY;
    tviews tr = make_views(&p, &r);
    for (int which = 0; which < 2; which++) {
        memset(r.dq, 0, nq_(&p) * 4);
        kat_status st = which == 0
                            ? kat_attn_backward(plan, NULL, &tr.q, &tr.k, &tr.v, &t.o, &t.lse,
                                                &tr.dout, &tr.dq, &tr.dk, &tr.dv, NULL)
                            : sp_backward(L, &tr.q, &tr.k, &tr.v, &t.o, &t.lse,
                                                  &tr.dout, &tr.dq, &tr.dk, &tr.dv, NULL);
        if (st == KAT_OK)
            for (size_t i = 0; i < nq_(&p); i++)
                ck_assert_msg(isfinite(r.dq[i]),
                              "%s backward: lse[3] = -inf for a row that sees 20 keys gives "
                              "dq[%zu] = %g with KAT_OK", which ? "sparse" : "flash", i,
                              (double)r.dq[i]);
    }
    result_free(&fw), result_free(&r);
    sp_handle_destroy(L);
    kat_attn_plan_destroy(plan);
    prob_free(&p);
}
END_TEST

/* ---- the linear engine ----------------------------------------------------------------------- */

/* The forward against the fp64 quadratic reference: o within 4 eps32 (D + N_k + 16) max|v|
 * (o is a weighted mean of the v_j for a positive map; the features' fp32 rounding, a few eps
 * each, and the sums of N_k terms), plus the absolute error of gradual underflow. */
static void linear_check(const char *label, const kat_featmap *fm, int causal, size_t B, size_t H,
                         size_t N, size_t Nk, float scale_q, float scale_v)
{
    size_t d = kat_featmap_in_dim(fm), dv = 3, Df = kat_featmap_out_dim(fm);
    kat_linear_opts opts = {causal, 0, 8, KAT_LINEAR_INTRA_AUTO};
    float *q = xcalloc(B * H * N * d, 4), *k = xcalloc(B * H * Nk * d, 4);
    float *v = xcalloc(B * H * Nk * dv, 4), *o = xcalloc(B * H * N * dv, 4);
    double *ref = xcalloc(B * H * N * dv, sizeof(double));
    fill_gauss(q, B * H * N * d, 91, 1.0), fill_gauss(k, B * H * Nk * d, 92, 1.0);
    fill_gauss(v, B * H * Nk * dv, 93, 1.0);
    for (size_t i = 0; i < B * H * N * d; i++)
        q[i] *= scale_q;
    for (size_t i = 0; i < B * H * Nk * d; i++)
        k[i] *= scale_q;
    double vmax = 0;
    for (size_t i = 0; i < B * H * Nk * dv; i++)
        v[i] *= scale_v, vmax = fmax(vmax, fabs((double)v[i]));
    kat_tensor Q = kat_tensor_view(q, B, H, N, d), K = kat_tensor_view(k, B, H, Nk, d);
    kat_tensor V = kat_tensor_view(v, B, H, Nk, dv), O = kat_tensor_view(o, B, H, N, dv);
    TU_OK(kat_linear_forward(fm, &opts, &Q, &K, &V, &O, NULL, NULL));
    TU_OK(kat_linear_reference(fm, &opts, 0, 64, &Q, &K, &V, NULL, ref));
    /* Gradual underflow adds an absolute error of up to FLT_TRUE_MIN / 2 per operation. */
    double tol = (double)(Df + Nk + 16) * (4.0 * EPS32 * vmax + 2.0 * FLT_TRUE_MIN);
    for (size_t i = 0; i < B * H * N * dv; i++)
        ck_assert_msg(fabs((double)o[i] - ref[i]) <= tol, "%s: o[%zu] = %.9g, reference %.9g "
                      "(bound %.3g)", label, i, (double)o[i], ref[i], tol);
    free(q), free(k), free(v), free(o), free(ref);
}

START_TEST(test_linear_extremes)
{
    kat_featmap *elu, *taylor;
    TU_OK(kat_featmap_elu1_create(1, &elu));   /* D = 1 */
    TU_OK(kat_featmap_taylor_create(2, 2, 1.0, &taylor));
    for (int causal = 0; causal <= 1; causal++) {
        linear_check("linear elu+1, N = 1", elu, causal, 1, 1, 1, 1, 1.0f, 1.0f);
        linear_check("linear elu+1, d = 1, N = 77", elu, causal, 2, 3, 77, 77, 1.0f, 1.0f);
        linear_check("linear elu+1, subnormal q, k", elu, causal, 1, 2, 30, 30, 1e-40f, 1.0f);
        linear_check("linear elu+1, subnormal v", elu, causal, 1, 2, 30, 30, 1.0f, 1e-40f);
        linear_check("linear elu+1, v of 1e30", elu, causal, 1, 2, 30, 30, 1.0f, 1e30f);
        linear_check("linear taylor-2, N = 1", taylor, causal, 1, 1, 1, 1, 1.0f, 1.0f);
        linear_check("linear taylor-2, tiny q, k", taylor, causal, 1, 1, 40, 40, 1e-20f, 1.0f);
    }
    linear_check("linear elu+1, no key (N_k = 0)", elu, 0, 1, 2, 5, 0, 1.0f, 1.0f);

    /* Huge inputs overflow the features (elu+1 of 1e20, products of 1e40): refused with
     * KAT_EDOM, never Inf or NaN in o with KAT_OK. Very negative inputs give features of 0
     * and a zero denominator: refused as well (a positive map underflowing in fp32). */
    const float extremes[2] = {1e20f, -1e30f};
    for (int x = 0; x < 2; x++) {
        size_t N = 10, d = 1, dv = 2;
        float q[10], k[10], v[20], o[20];
        fill_gauss(v, 20, 95, 1.0);
        for (size_t i = 0; i < N; i++)
            q[i] = k[i] = extremes[x];
        for (size_t i = 0; i < 20; i++)
            o[i] = 7.0f;
        kat_tensor Q = kat_tensor_view(q, 1, 1, N, d), K = kat_tensor_view(k, 1, 1, N, d);
        kat_tensor V = kat_tensor_view(v, 1, 1, N, dv), O = kat_tensor_view(o, 1, 1, N, dv);
        kat_status st = kat_linear_forward(elu, NULL, &Q, &K, &V, &O, NULL, NULL);
        if (st == KAT_OK)
            for (size_t i = 0; i < N * dv; i++)
                ck_assert_msg(isfinite(o[i]), "linear elu+1 with inputs %g: o[%zu] = %g with "
                              "KAT_OK", (double)extremes[x], i, (double)o[i]);
        else
            ck_assert_msg(st == KAT_EDOM, "linear elu+1 with inputs %g: status %s (%s)",
                          (double)extremes[x], kat_strerror(st), kat_last_error());
    }

    /* NaN and Inf in q, k, v, state_in (forward) and o, d_o (backward): KAT_EDOM naming the
     * tensor, every output untouched. */
    size_t B = 1, H = 2, N = 12, d = 1, dv = 3, Df = kat_featmap_out_dim(elu);
    float q[24], k[24], v[72], dout[72], o[72], fo[72], st_in[2 * 4], st_out[2 * 4];
    float dq[24], dk[24], dvv[72];
    fill_gauss(q, 24, 96, 1.0), fill_gauss(k, 24, 97, 1.0), fill_gauss(v, 72, 98, 1.0);
    fill_gauss(dout, 72, 99, 1.0);
    kat_tensor Q = kat_tensor_view(q, B, H, N, d), K = kat_tensor_view(k, B, H, N, d);
    kat_tensor V = kat_tensor_view(v, B, H, N, dv), DO = kat_tensor_view(dout, B, H, N, dv);
    kat_tensor O = kat_tensor_view(o, B, H, N, dv), FO = kat_tensor_view(fo, B, H, N, dv);
    kat_tensor SI = kat_tensor_view(st_in, B, H, Df, dv + 1);
    kat_tensor SO = kat_tensor_view(st_out, B, H, Df, dv + 1);
    kat_tensor DQ = kat_tensor_view(dq, B, H, N, d), DK = kat_tensor_view(dk, B, H, N, d);
    kat_tensor DV = kat_tensor_view(dvv, B, H, N, dv);
    TU_OK(kat_linear_forward(elu, NULL, &Q, &K, &V, &FO, NULL, &SI));   /* a valid state */
    TU_OK(kat_linear_forward(elu, NULL, &Q, &K, &V, &FO, &SI, NULL));
    struct {
        const char *name;
        float *data;
        size_t n;
        int fwd;
    } ins[] = {{"q", q, 24, 1}, {"k", k, 24, 1}, {"v", v, 72, 1}, {"state_in", st_in, 8, 1},
               {"d_o", dout, 72, 0}, {"o", fo, 72, 0}};
    char label[128];
    for (size_t in = 0; in < sizeof ins / sizeof ins[0]; in++)
        for (int bv = 0; bv < 3; bv++)
            for (int pass = ins[in].fwd ? 0 : 1; pass < 2; pass++) {
                size_t at = (in * 5 + (size_t)bv) % ins[in].n;
                float saved = ins[in].data[at];
                ins[in].data[at] = bad_values[bv];
                snprintf(label, sizeof label, "linear %s with %g in %s[%zu]",
                         pass ? "backward" : "forward", (double)bad_values[bv], ins[in].name, at);
                memset(o, 0x55, sizeof o), memset(st_out, 0x55, sizeof st_out);
                memset(dq, 0x55, sizeof dq), memset(dk, 0x55, sizeof dk);
                memset(dvv, 0x55, sizeof dvv);
                snapshot s = {0};
                snap_add(&s, o, 72), snap_add(&s, st_out, 8), snap_add(&s, dq, 24);
                snap_add(&s, dk, 24), snap_add(&s, dvv, 72);
                kat_clear_error();
                kat_status st = pass ? kat_linear_backward(elu, NULL, &Q, &K, &V, &FO, &DO, &DQ,
                                                           &DK, &DV, &SI, NULL)
                                     : kat_linear_forward(elu, NULL, &Q, &K, &V, &O, &SI, &SO);
                ck_assert_msg(st == KAT_EDOM, "%s: status %s (%s)", label, kat_strerror(st),
                              kat_last_error());
                ck_assert_msg(strstr(kat_last_error(), ins[in].name) != NULL,
                              "%s: the error '%s' does not name %s", label, kat_last_error(),
                              ins[in].name);
                snap_expect_same(&s, label);
                ins[in].data[at] = saved;
            }
    kat_featmap_destroy(elu);
    kat_featmap_destroy(taylor);
}
END_TEST

/* ---- the rank probe -------------------------------------------------------------------------- */

START_TEST(test_rank_extremes)
{
    enum { n = 12, m = 9, d = 3 };
    double q[n * d], k[m * d];
    kat_rng *rng;
    TU_OK(kat_rng_create(101, &rng));
    for (int i = 0; i < n * d; i++)
        q[i] = kat_rng_gaussian(rng, 1.0);
    for (int i = 0; i < m * d; i++)
        k[i] = kat_rng_gaussian(rng, 1.0);
    kat_rng_destroy(rng);
    kat_dmat Q = {n, d, d, q}, K = {m, d, d, k};
    kat_rank_opts opts;
    kat_rank_opts_init(&opts);
    kat_fn *fexp, *fbig;
    TU_OK(kat_fn_builtin("exp", &fexp));
    TU_OK(kat_fn_parse("exp(1000*x)", &fbig, NULL));
    kat_rank_result res, untouched;
    for (int method = 0; method < 2; method++) {
        opts.method = method ? KAT_RANK_RANDOMIZED : KAT_RANK_DENSE;
        /* NaN / Inf in Q or K: KAT_EDOM naming the entry; the result untouched. */
        for (int bv = 0; bv < 3; bv++)
            for (int side = 0; side < 2; side++) {
                double *x = side ? k : q, saved = x[4];
                x[4] = (double)bad_values[bv];
                memset(&res, 0x5a, sizeof res);
                untouched = res;
                TU_EXPECT_ERR(kat_rank_probe(fexp, &Q, &K, &opts, &res), KAT_EDOM,
                              side ? "K" : "Q");
                ck_assert(memcmp(&res, &untouched, sizeof res) == 0);
                x[4] = saved;
            }
        /* f overflowing at some entry: KAT_EDOM naming f. */
        memset(&res, 0x5a, sizeof res);
        untouched = res;
        TU_EXPECT_ERR(kat_rank_probe(fbig, &Q, &K, &opts, &res), KAT_EDOM, "exp(1000*x)");
        ck_assert(memcmp(&res, &untouched, sizeof res) == 0);
        /* Subnormal inputs: every inner product underflows, M = exp(0) = all ones: rank 1. */
        double qs[n * d], ks[m * d];
        for (int i = 0; i < n * d; i++)
            qs[i] = q[i] * 1e-310;
        for (int i = 0; i < m * d; i++)
            ks[i] = k[i] * 1e-310;
        kat_dmat QS = {n, d, d, qs}, KS = {m, d, d, ks};
        TU_OK(kat_rank_probe(fexp, &QS, &KS, &opts, &res));
        ck_assert_uint_eq(res.rank, 1);
        ck_assert(isfinite(res.sigma_max) && fabs(res.sigma_max - sqrt((double)n * m)) <=
                                                 1e-12 * sqrt((double)n * m));
        kat_rank_result_free(&res);
        /* n = m = d = 1. */
        kat_dmat Q1 = {1, 1, 1, q}, K1 = {1, 1, 1, k};
        TU_OK(kat_rank_probe(fexp, &Q1, &K1, &opts, &res));
        ck_assert_uint_eq(res.rank, 1);
        ck_assert_uint_eq(res.nsv, 1);
        ck_assert(res.sv[0] == exp(q[0] * k[0]));
        kat_rank_result_free(&res);
    }
    kat_fn_destroy(fexp);
    kat_fn_destroy(fbig);
}
END_TEST

/* ---- regressions found by tests/fuzz/fuzz_rank.c ---------------------------------------------- */


/* oversample = 0 is accepted, and then the first block "has at least 0 directions below the
 * threshold", so the search stops there: a rank-3 matrix is reported as rank 1, converged.
 * Found by fuzz_rank (a 3 x 8 l1-distance kernel, f = x^1.5, blocks of 1). The option must be
 * refused or the search must go on until the basis is saturated. */
START_TEST(test_rank_randomized_oversample_zero)
{
    enum { n = 3, m = 8, d = 3 };
    double q[n * d], k[m * d];
    kat_rng *rng;
    TU_OK(kat_rng_create(7, &rng));
    for (int i = 0; i < n * d; i++)
        q[i] = kat_rng_gaussian(rng, 1.0);
    for (int i = 0; i < m * d; i++)
        k[i] = kat_rng_gaussian(rng, 1.0);
    kat_rng_destroy(rng);
    kat_dmat Q = {n, d, d, q}, K = {m, d, d, k};
    kat_fn *f;
    TU_OK(kat_fn_parse("x^1.5", &f, NULL));
    kat_rank_opts o;
    kat_rank_opts_init(&o);
    o.form = KAT_RANK_L1;
    kat_rank_result dense, rnd;
    TU_OK(kat_rank_probe(f, &Q, &K, &o, &dense));
    o.method = KAT_RANK_RANDOMIZED, o.block = 1, o.oversample = 0, o.power_iters = 0;
    kat_status st = kat_rank_probe(f, &Q, &K, &o, &rnd);
    size_t r_dense = dense.rank, r_rnd = st == KAT_OK ? rnd.rank : 0;
    int converged = st == KAT_OK && rnd.converged;
    if (st == KAT_OK)
        kat_rank_result_free(&rnd);
    kat_rank_result_free(&dense);
    kat_fn_destroy(f);
    ck_assert_msg(st == KAT_OK || st == KAT_EINVAL, "status %s", kat_strerror(st));
    ck_assert_msg(!converged || r_rnd == r_dense,
                  "oversample = 0: randomized rank %zu reported as converged, dense rank %zu",
                  r_rnd, r_dense);
}
END_TEST

/* The Frobenius norm is summed from the squares of the entries without scaling: an entry
 * above about 1.3e154 overflows the sum (fro_norm = NaN, and a NaN stable rank on the
 * randomized path), entries below about 1e-162 underflow it (fro_norm = 0 < sigma_1, stable
 * rank 0), all with KAT_OK. Found by fuzz_rank (an entry of -1e300 in K; a 3 x 1 matrix of
 * about 1e-263). The singular values themselves are right. */
START_TEST(test_rank_frobenius_overflow)
{
    const double big[4] = {1e300, 1, 2, 3}, tiny[4] = {3e-200, 0, 0, 4e-200};
    const double want[2] = {1e300, 5e-200};
    for (int c = 0; c < 2; c++) {
        double m[4];
        memcpy(m, c ? tiny : big, sizeof m);
        kat_dmat M = {2, 2, 2, m};
        kat_rank_opts o;
        kat_rank_opts_init(&o);
        kat_rank_result r;
        kat_status st = kat_rank_probe_matrix(&M, &o, &r);
        if (st == KAT_OK) {
            double fro = r.fro_norm, stable = r.stable_rank, s0 = r.sv[0];
            kat_rank_result_free(&r);
            ck_assert_msg(fabs(fro - want[c]) <= 1e-14 * want[c],
                          "|M|_F of [[%g, %g], [%g, %g]] reported as %g (sigma_1 = %g)", m[0],
                          m[1], m[2], m[3], fro, s0);
            ck_assert_msg(stable >= 1.0 - 1e-14 && stable <= 2.0, "stable rank %g", stable);
        } else {
            ck_assert_int_eq(st, KAT_ERANGE);
        }
    }
}
END_TEST

/* The default tolerance sigma_1 * max(m, n) * eps was evaluated left to right and overflowed
 * to +inf for sigma_1 near DBL_MAX, making the rank 0 (found by fuzz_rank; fixed in
 * lib/rank/spectrum.c by multiplying the small factors first). */
START_TEST(test_rank_tolerance_near_dbl_max)
{
    double sv[2] = {1.3e308, 1e307}, tol = 0;
    size_t rank = 0;
    TU_OK(kat_rank_numerical(sv, 2, 2, 5, 0, 0, &rank, &tol));
    ck_assert(isfinite(tol) && tol > 0);
    ck_assert_uint_eq(rank, 2);
}
END_TEST

/* A matrix whose largest singular value exceeds DBL_MAX (entries of 1.5e308: sigma_1 =
 * 3e308) came back with sv[0] = +inf and KAT_OK. Found by fuzz_rank. It must be refused
 * (KAT_ERANGE or KAT_EDOM) or scaled, never an infinite value with success. */
START_TEST(test_rank_sigma_overflow)
{
    double m[4] = {1.5e308, 1.5e308, 1.5e308, 1.5e308}, sv[2] = {-1, -1};
    kat_dmat M = {2, 2, 2, m};
    kat_status st = kat_rank_spectrum(&M, sv, 2);
    ck_assert_msg(st != KAT_OK || (isfinite(sv[0]) && isfinite(sv[1])),
                  "kat_rank_spectrum: KAT_OK with sv = {%g, %g}", sv[0], sv[1]);
    kat_rank_opts o;
    kat_rank_opts_init(&o);
    kat_rank_result r;
    st = kat_rank_probe_matrix(&M, &o, &r);
    if (st == KAT_OK) {
        double s0 = r.sv[0];
        kat_rank_result_free(&r);
        ck_assert_msg(isfinite(s0), "kat_rank_probe_matrix: KAT_OK with sigma_1 = %g", s0);
    }
}
END_TEST

/* M = Phi Psi^T from finite features can overflow: the Taylor map of order 2 on q = k = 1e154
 * has features up to 5e307 and products of 1e615. kat_rank_featmap_matrix returned KAT_OK
 * with M = +inf, and kat_rank_probe_featmap then a NaN tolerance and an infinite sigma_1.
 * Found by fuzz_rank. Either refuse (KAT_EDOM) or return finite values. */
START_TEST(test_rank_featmap_overflow)
{
    kat_featmap *fm;
    TU_OK(kat_featmap_taylor_create(1, 2, 1.0, &fm));
    double q[2] = {1e154, 1.0}, k[2] = {1e154, 2.0}, m[4] = {0, 0, 0, 0};
    kat_dmat Q = {2, 1, 1, q}, K = {2, 1, 1, k}, M = {2, 2, 2, m};
    kat_status st = kat_rank_featmap_matrix(fm, &Q, &K, &M);
    kat_rank_opts o;
    kat_rank_opts_init(&o);
    kat_rank_result r;
    kat_status st2 = kat_rank_probe_featmap(fm, &Q, &K, &o, &r);
    double s0 = st2 == KAT_OK ? r.sv[0] : 0, tol = st2 == KAT_OK ? r.tol : 0;
    if (st2 == KAT_OK)
        kat_rank_result_free(&r);
    kat_featmap_destroy(fm);
    ck_assert_msg(st != KAT_OK || (isfinite(m[0]) && isfinite(m[1]) && isfinite(m[2])),
                  "kat_rank_featmap_matrix: KAT_OK with M = [[%g, %g], [%g, %g]]", m[0], m[1],
                  m[2], m[3]);
    ck_assert_msg(isfinite(s0) && isfinite(tol),
                  "kat_rank_probe_featmap: KAT_OK with sigma_1 = %g, tol = %g", s0, tol);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("extremes");
    TCase *tc = tcase_create("extremes");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_huge_logits);
    tcase_add_test(tc, test_tiny_logits_and_subnormals);
    tcase_add_test(tc, test_large_values);
    tcase_add_test(tc, test_logit_overflow);
    tcase_add_test(tc, test_small_shapes);
    tcase_add_test(tc, test_every_key_masked);
    tcase_add_test(tc, test_one_bucket);
    tcase_add_test(tc, test_nonfinite_rejected);
    tcase_add_test(tc, test_lse_minus_inf_on_a_live_row);
    tcase_add_test(tc, test_linear_extremes);
    tcase_add_test(tc, test_rank_extremes);
    tcase_add_test(tc, test_rank_randomized_oversample_zero);
    tcase_add_test(tc, test_rank_frobenius_overflow);
    tcase_add_test(tc, test_rank_tolerance_near_dbl_max);
    tcase_add_test(tc, test_rank_sigma_overflow);
    tcase_add_test(tc, test_rank_featmap_overflow);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
