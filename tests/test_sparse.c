/* Sparse flash attention: QK-drop, hash buckets (given and LSH), block masks. Every mode,
 * forward and backward, against the fp64 masked reference with the element mask built here
 * from the raw pattern; edge cases (sizes off the tile grid, empty buckets, heads with every
 * key dropped, one bucket, nb = N); the paper's hash-backward regression; and every bad input
 * each entry point rejects. */
#include "test_sparse_util.h"

static size_t trials(size_t full) { return tu_quick() ? (full + 3) / 4 : full; }

/* Under valgrind and the sanitizers, sizes above two tiles are halved (still several tiles,
 * still off the tile grid). */
static size_t qsize(size_t n) { return tu_quick() && n > 200 ? n / 2 + 1 : n; }

/* ---- QK-drop ------------------------------------------------------------------------------- */

/* Random keep masks with drop rate `drop`; head 0 of batch 0 optionally keeps no key and head
 * 1 no query. Fills p->allowed. */
static void qk_masks(ts_problem *p, kat_rng *rng, double drop, int empty_heads, uint8_t *qm,
                     uint8_t *km)
{
    size_t g = p->H / p->Hkv;
    for (size_t i = 0; i < p->B * p->H * p->N; i++)
        qm[i] = kat_rng_uniform(rng) >= drop;
    for (size_t i = 0; i < p->B * p->Hkv * p->M; i++)
        km[i] = kat_rng_uniform(rng) >= drop;
    if (empty_heads) {
        memset(km, 0, p->M);                       /* (0, 0): every key dropped */
        if (p->H > 1)
            memset(qm + p->N, 0, p->N);            /* (0, 1): every query dropped */
    }
    for (size_t b = 0; b < p->B; b++)
        for (size_t h = 0; h < p->H; h++)
            for (size_t i = 0; i < p->N; i++)
                for (size_t j = 0; j < p->M; j++)
                    *ts_allowed(p, b, h, i, j) = qm[(b * p->H + h) * p->N + i] &&
                                                 km[(b * p->Hkv + h / g) * p->M + j] &&
                                                 ts_causal_ok(p, i, j);
}

static void run_qk(size_t B, size_t H, size_t Hkv, size_t N, size_t M, size_t D, int causal,
                   double drop, int empty_heads, uint64_t seed)
{
    N = qsize(N), M = qsize(M);
    ts_problem p;
    ts_problem_init(&p, B, H, Hkv, N, M, D, causal, seed);
    kat_rng *rng;
    kat_rng_create(seed + 1, &rng);
    uint8_t *qm = malloc(B * H * N + 1), *km = malloc(B * Hkv * M + 1);
    qk_masks(&p, rng, drop, empty_heads, qm, km);
    kat_sparse_keep qk, kk;
    TU_OK(kat_sparse_keep_from_mask(qm, B, H, N, &qk));
    TU_OK(kat_sparse_keep_from_mask(km, B, Hkv, M, &kk));
    kat_attn_desc d = {B, H, Hkv, N, M, D, causal, 0, 0};
    sp_handle *L;
    TU_OK(sp_qk(&d, &qk, &kk, &L));
    ts_check_layout(&p, L);
    sp_handle_destroy(L);
    kat_sparse_keep_free(&qk);
    kat_sparse_keep_free(&kk);
    free(qm), free(km);
    kat_rng_destroy(rng);
    ts_problem_free(&p);
}

START_TEST(test_qk_matches_reference)
{
    /* N off the tile grid, causal and not, strict, GQA, N != M, empty heads. */
    run_qk(1, 2, 2, 250, 250, 32, 1, 0.5, 1, 11);
    run_qk(2, 4, 2, 131, 131, 16, 1, 0.3, 1, 12);
    run_qk(1, 2, 1, 200, 230, 24, 0, 0.6, 0, 13);
    run_qk(1, 3, 3, 97, 150, 8, 1, 0.5, 0, 14);    /* M > N: bottom-right causal alignment */
    run_qk(1, 2, 2, 170, 170, 16, KAT_SPARSE_CAUSAL_STRICT, 0.4, 1, 15);
    run_qk(1, 1, 1, 300, 300, 64, 1, 0.0, 0, 16);  /* nothing dropped = dense causal */
    run_qk(1, 2, 2, 180, 180, 16, 1, 0.9, 0, 17);  /* mostly dropped */
}
END_TEST

START_TEST(test_qk_random_sizes)
{
    kat_rng *rng;
    kat_rng_create(99, &rng);
    for (size_t t = 0; t < trials(8); t++) {
        size_t H = 1 + kat_rng_uint(rng, 3), g = 1 + kat_rng_uint(rng, 2);
        size_t N = 1 + kat_rng_uint(rng, 260), M = kat_rng_uint(rng, 2) ? N : 1 + kat_rng_uint(rng, 260);
        size_t D = 1 + kat_rng_uint(rng, 40);
        run_qk(1 + kat_rng_uint(rng, 2), H * g, H, N, M, D, (int)kat_rng_uint(rng, 3),
               kat_rng_uniform(rng), (int)kat_rng_uint(rng, 2), 1000 + t);
    }
    kat_rng_destroy(rng);
}
END_TEST

/* NULL keep lists keep everything: the same as the dense engine. */
START_TEST(test_qk_null_keeps_is_dense)
{
    size_t N = 150, D = 16, H = 2;
    ts_problem p;
    ts_problem_init(&p, 1, H, H, N, N, D, 1, 5);
    kat_attn_desc d = {1, H, H, N, N, D, 1, 0, 0};
    sp_handle *L;
    TU_OK(sp_qk(&d, NULL, NULL, &L));
    float *o1 = malloc(H * N * D * sizeof(float)), *o2 = malloc(H * N * D * sizeof(float));
    float *l1 = malloc(H * N * sizeof(float)), *l2 = malloc(H * N * sizeof(float));
    kat_tensor q = kat_tensor_view(p.q, 1, H, N, D), k = kat_tensor_view(p.k, 1, H, N, D);
    kat_tensor v = kat_tensor_view(p.v, 1, H, N, D);
    kat_tensor to1 = kat_tensor_view(o1, 1, H, N, D), to2 = kat_tensor_view(o2, 1, H, N, D);
    kat_tensor tl1 = kat_tensor_view(l1, 1, H, N, 1), tl2 = kat_tensor_view(l2, 1, H, N, 1);
    TU_OK(sp_forward(L, &q, &k, &v, &to1, &tl1, NULL));
    TU_OK(kat_attn_dense_forward(&q, &k, &v, &to2, &tl2, 1, 0));
    /* Same tiles, same kernels, same order of key tiles: the same bits. */
    ck_assert_int_eq(memcmp(o1, o2, H * N * D * sizeof(float)), 0);
    ck_assert_int_eq(memcmp(l1, l2, H * N * sizeof(float)), 0);
    kat_sparse_stats s;
    TU_OK(sp_stats(L, &s));
    ck_assert_uint_eq(s.tile_pairs, s.dense_pairs);
    ck_assert_uint_eq(s.q_rows, H * N);
    free(o1), free(o2), free(l1), free(l2);
    sp_handle_destroy(L);
    ts_problem_free(&p);
}
END_TEST

START_TEST(test_keep_lists)
{
    uint8_t mask[2 * 5] = {1, 0, 1, 1, 0, 0, 0, 0, 0, 0};
    kat_sparse_keep k;
    TU_OK(kat_sparse_keep_from_mask(mask, 1, 2, 5, &k));
    ck_assert_uint_eq(k.offsets[0], 0);
    ck_assert_uint_eq(k.offsets[1], 3);
    ck_assert_uint_eq(k.offsets[2], 3);
    ck_assert_int_eq(k.idx[0], 0);
    ck_assert_int_eq(k.idx[1], 2);
    ck_assert_int_eq(k.idx[2], 3);
    TU_OK(kat_sparse_keep_check(&k, "k"));
    kat_sparse_keep_free(&k);
    ck_assert_ptr_null(k.offsets);
    kat_sparse_keep_free(NULL);
    /* Empty */
    TU_OK(kat_sparse_keep_from_mask(NULL, 0, 3, 5, &k));
    ck_assert_uint_eq(k.offsets[0], 0);
    kat_sparse_keep_free(&k);
}
END_TEST

START_TEST(test_qk_errors)
{
    kat_attn_desc d = {1, 2, 2, 10, 10, 8, 1, 0, 0};
    sp_handle *L = NULL;
    size_t off[3] = {0, 3, 5};
    int32_t ok[5] = {1, 4, 9, 0, 2};
    kat_sparse_keep q = {1, 2, 10, off, ok};
    TU_OK(sp_qk(&d, &q, &q, &L));
    sp_handle_destroy(L);
    L = NULL;
    int32_t unsorted[5] = {4, 1, 9, 0, 2};
    kat_sparse_keep bad = {1, 2, 10, off, unsorted};
    TU_EXPECT_ERR(sp_qk(&d, &bad, NULL, &L), KAT_EINVAL, "unsorted");
    TU_EXPECT_ERR(sp_qk(&d, &bad, NULL, &L), KAT_EINVAL, "q_keep");
    int32_t dup[5] = {1, 4, 4, 0, 2};
    bad.idx = dup;
    TU_EXPECT_ERR(sp_qk(&d, NULL, &bad, &L), KAT_EINVAL, "duplicated");
    TU_EXPECT_ERR(sp_qk(&d, NULL, &bad, &L), KAT_EINVAL, "k_keep");
    int32_t big[5] = {1, 4, 10, 0, 2};
    bad.idx = big;
    TU_EXPECT_ERR(sp_qk(&d, &bad, NULL, &L), KAT_EINVAL, "outside");
    int32_t neg[5] = {1, 4, 9, -1, 2};
    bad.idx = neg;
    TU_EXPECT_ERR(sp_qk(&d, &bad, NULL, &L), KAT_EINVAL, "-1");
    size_t off_dec[3] = {0, 3, 2};
    kat_sparse_keep dec = {1, 2, 10, off_dec, ok};
    TU_EXPECT_ERR(sp_qk(&d, &dec, NULL, &L), KAT_EINVAL, "offsets");
    size_t off_nz[3] = {1, 3, 5};
    kat_sparse_keep nz = {1, 2, 10, off_nz, ok};
    TU_EXPECT_ERR(sp_qk(&d, &nz, NULL, &L), KAT_EINVAL, "offsets[0]");
    kat_sparse_keep shape = {1, 3, 10, off, ok};
    TU_EXPECT_ERR(sp_qk(&d, &shape, NULL, &L), KAT_EINVAL, "does not match");
    kat_sparse_keep shape_n = {1, 2, 11, off, ok};
    TU_EXPECT_ERR(sp_qk(&d, NULL, &shape_n, &L), KAT_EINVAL, "k_keep");
    kat_sparse_keep noidx = {1, 2, 10, off, NULL};
    TU_EXPECT_ERR(sp_qk(&d, &noidx, NULL, &L), KAT_EINVAL, "idx is NULL");
    kat_sparse_keep nooff = {1, 2, 10, NULL, ok};
    TU_EXPECT_ERR(sp_qk(&d, &nooff, NULL, &L), KAT_EINVAL, "offsets is NULL");
    kat_attn_desc dc = d;
    dc.causal = 3;
    TU_EXPECT_ERR(sp_qk(&dc, NULL, NULL, &L), KAT_EINVAL, "causal");
    kat_attn_desc dd = d;
    dd.D = 0;
    TU_EXPECT_ERR(sp_qk(&dd, NULL, NULL, &L), KAT_EINVAL, "D = 0");
    TU_EXPECT_ERR(sp_qk(NULL, NULL, NULL, &L), KAT_EINVAL, "desc");
    TU_EXPECT_ERR(sp_qk(&d, NULL, NULL, NULL), KAT_EINVAL, "out");
    ck_assert_ptr_null(L);   /* untouched by every failure */
    TU_EXPECT_ERR(kat_sparse_keep_from_mask(NULL, 1, 1, 4, &q), KAT_EINVAL, "mask");
    TU_EXPECT_ERR(kat_sparse_keep_check(NULL, "q_keep"), KAT_EINVAL, "q_keep");
}
END_TEST

/* ---- hash ---------------------------------------------------------------------------------- */

static void hash_allowed(ts_problem *p, const int32_t *qb, const int32_t *kb)
{
    size_t g = p->H / p->Hkv;
    for (size_t b = 0; b < p->B; b++)
        for (size_t h = 0; h < p->H; h++)
            for (size_t i = 0; i < p->N; i++)
                for (size_t j = 0; j < p->M; j++)
                    *ts_allowed(p, b, h, i, j) =
                        qb[(b * p->H + h) * p->N + i] == kb[(b * p->Hkv + h / g) * p->M + j] &&
                        ts_causal_ok(p, i, j);
}

static void check_hash(ts_problem *p, size_t nb, const int32_t *qb, const int32_t *kb)
{
    hash_allowed(p, qb, kb);
    kat_attn_desc d = {p->B, p->H, p->Hkv, p->N, p->M, p->D, p->causal, 0, 0};
    sp_handle *L;
    TU_OK(sp_hash(&d, nb, qb, kb, &L));
    ts_check_layout(p, L);
    sp_handle_destroy(L);
}

/* Random buckets in [0, used) of nb (used < nb leaves empty buckets). */
static void run_hash(size_t B, size_t H, size_t Hkv, size_t N, size_t M, size_t D, int causal,
                     size_t nb, size_t used, uint64_t seed)
{
    N = qsize(N), M = qsize(M);
    ts_problem p;
    ts_problem_init(&p, B, H, Hkv, N, M, D, causal, seed);
    kat_rng *rng;
    kat_rng_create(seed + 7, &rng);
    int32_t *qb = malloc((B * H * N + 1) * sizeof(int32_t));
    int32_t *kb = malloc((B * Hkv * M + 1) * sizeof(int32_t));
    for (size_t i = 0; i < B * H * N; i++)
        qb[i] = (int32_t)kat_rng_uint(rng, used);
    for (size_t i = 0; i < B * Hkv * M; i++)
        kb[i] = (int32_t)kat_rng_uint(rng, used);
    check_hash(&p, nb, qb, kb);
    free(qb), free(kb);
    kat_rng_destroy(rng);
    ts_problem_free(&p);
}

START_TEST(test_hash_matches_reference)
{
    run_hash(1, 2, 2, 300, 300, 32, 1, 4, 4, 21);
    run_hash(1, 2, 2, 300, 300, 16, 1, 16, 16, 22);
    run_hash(2, 4, 2, 190, 190, 16, 1, 3, 3, 23);                       /* GQA */
    run_hash(1, 2, 2, 250, 250, 16, KAT_SPARSE_CAUSAL_STRICT, 5, 5, 24);
    run_hash(1, 2, 1, 200, 260, 24, 0, 6, 6, 25);                       /* not causal, N != M */
    run_hash(1, 2, 2, 220, 220, 16, 1, 64, 5, 26);                      /* empty buckets */
    run_hash(1, 1, 1, 230, 230, 16, 1, 230, 230, 27);                   /* nb = N */
    run_hash(1, 1, 1, 157, 157, 8, 1, 1000000, 1000000, 28);            /* nb >> N: sort path */
}
END_TEST

/* One bucket is dense attention: the same bits as the dense engine (all tiles single-bucket). */
START_TEST(test_hash_single_bucket_is_dense)
{
    size_t N = 200, D = 16, H = 2;
    ts_problem p;
    ts_problem_init(&p, 1, H, H, N, N, D, 1, 31);
    int32_t *zero = calloc(H * N, sizeof(int32_t));
    run_hash(1, H, H, N, N, D, 1, 1, 1, 31);
    kat_attn_desc d = {1, H, H, N, N, D, 1, 0, 0};
    sp_handle *L;
    TU_OK(sp_hash(&d, 1, zero, zero, &L));
    float *o1 = malloc(H * N * D * sizeof(float)), *o2 = malloc(H * N * D * sizeof(float));
    kat_tensor q = kat_tensor_view(p.q, 1, H, N, D), k = kat_tensor_view(p.k, 1, H, N, D);
    kat_tensor v = kat_tensor_view(p.v, 1, H, N, D);
    kat_tensor to1 = kat_tensor_view(o1, 1, H, N, D), to2 = kat_tensor_view(o2, 1, H, N, D);
    TU_OK(sp_forward(L, &q, &k, &v, &to1, NULL, NULL));
    TU_OK(kat_attn_dense_forward(&q, &k, &v, &to2, NULL, 1, 0));
    ck_assert_int_eq(memcmp(o1, o2, H * N * D * sizeof(float)), 0);
    kat_sparse_stats s;
    TU_OK(sp_stats(L, &s));
    ck_assert_uint_eq(s.tile_pairs, s.dense_pairs);
    free(o1), free(o2), free(zero);
    sp_handle_destroy(L);
    ts_problem_free(&p);
}
END_TEST

/* A regression case: with tile size 4, q buckets [1,1,1,1,0,0,0,0] and k buckets
 * [0,0,0,0,0,0,1,1] (buckets correlated with position, in opposite directions) make the
 * paper's hash backward skip query tiles and lose 7 of the 23 allowed pairs. Scaled to kat's
 * tiles: N = 2 key tiles, q bucket 1 on the first half and 0 on the second, k bucket 0 on the
 * first 3/4 and 1 on the last quarter. */
START_TEST(test_hash_backward_regression)
{
    size_t BKt = kat_sparse_tile_k(), N = 2 * BKt, D = 16;
    int32_t *qb = malloc(N * sizeof(int32_t)), *kb = malloc(N * sizeof(int32_t));
    for (size_t i = 0; i < N; i++) {
        qb[i] = i < N / 2 ? 1 : 0;
        kb[i] = i < 3 * N / 4 ? 0 : 1;
    }
    for (int causal = 0; causal <= 2; causal++) {
        ts_problem p;
        ts_problem_init(&p, 1, 1, 1, N, N, D, causal, 41 + causal);
        hash_allowed(&p, qb, kb);
        if (causal == 1) {
            /* The original's count, scaled: 23 allowed pairs at N = 8 become, per block of
             * N/8 x N/8 elements, exactly this many. */
            size_t s = N / 8, count = 0, expect = 0;
            for (size_t i = 0; i < N * N; i++)
                count += p.allowed[i];
            /* q tokens 4..7 (bucket 0) with k tokens 0..5 (bucket 0), j <= i: 23 token
             * pairs, of which (4, 4) and (5, 5) are on the diagonal: their s x s blocks are
             * triangular (s(s+1)/2 elements), the other 21 full. */
            expect = (23 - 2) * s * s + 2 * s * (s + 1) / 2;
            ck_assert_uint_eq(count, expect);
        }
        check_hash(&p, 2, qb, kb);
        /* And with the roles of the two sides swapped. */
        check_hash(&p, 2, kb, qb);
        ts_problem_free(&p);
    }
    free(qb), free(kb);
}
END_TEST

/* Buckets that follow position (monotone up, down, in blocks): tiles of either side span
 * several buckets and positions out of order. */
START_TEST(test_hash_correlated_layouts)
{
    size_t N = 333, D = 16;
    int32_t *qb = malloc(N * sizeof(int32_t)), *kb = malloc(N * sizeof(int32_t));
    for (int layout = 0; layout < 4; layout++) {
        size_t nb = 7;
        for (size_t i = 0; i < N; i++) {
            size_t up = i * nb / N, down = nb - 1 - up;
            switch (layout) {
            case 0: qb[i] = (int32_t)up, kb[i] = (int32_t)down; break;
            case 1: qb[i] = (int32_t)down, kb[i] = (int32_t)up; break;
            case 2: qb[i] = (int32_t)((i / 20) % nb), kb[i] = (int32_t)((i / 50) % nb); break;
            default: qb[i] = (int32_t)(i % nb), kb[i] = (int32_t)up; break;
            }
        }
        for (int causal = 1; causal <= 2; causal++) {
            ts_problem p;
            ts_problem_init(&p, 1, 1, 1, N, N, D, causal, 50 + layout);
            check_hash(&p, nb, qb, kb);
            ts_problem_free(&p);
        }
    }
    free(qb), free(kb);
}
END_TEST

START_TEST(test_hash_random_sizes)
{
    kat_rng *rng;
    kat_rng_create(77, &rng);
    for (size_t t = 0; t < trials(8); t++) {
        size_t H = 1 + kat_rng_uint(rng, 2), g = 1 + kat_rng_uint(rng, 2);
        size_t N = 1 + kat_rng_uint(rng, 300), M = kat_rng_uint(rng, 2) ? N : 1 + kat_rng_uint(rng, 300);
        size_t nb = 1 + kat_rng_uint(rng, 40), used = 1 + kat_rng_uint(rng, nb);
        run_hash(1 + kat_rng_uint(rng, 2), H * g, H, N, M, 1 + kat_rng_uint(rng, 33),
                 (int)kat_rng_uint(rng, 3), nb, used, 2000 + t);
    }
    kat_rng_destroy(rng);
}
END_TEST

START_TEST(test_hash_errors)
{
    kat_attn_desc d = {1, 1, 1, 4, 4, 8, 1, 0, 0};
    int32_t good[4] = {0, 1, 2, 1}, big[4] = {0, 1, 3, 1}, neg[4] = {0, -2, 1, 1};
    sp_handle *L = NULL;
    TU_EXPECT_ERR(sp_hash(&d, 3, big, good, &L), KAT_EINVAL, "q_buckets[0, 0, 2] = 3");
    TU_EXPECT_ERR(sp_hash(&d, 3, good, neg, &L), KAT_EINVAL, "k_buckets[0, 0, 1] = -2");
    TU_EXPECT_ERR(sp_hash(&d, 0, good, good, &L), KAT_EINVAL, "nb = 0");
    TU_EXPECT_ERR(sp_hash(&d, 3, NULL, good, &L), KAT_EINVAL, "q_buckets");
    TU_EXPECT_ERR(sp_hash(&d, 3, good, NULL, &L), KAT_EINVAL, "k_buckets");
    kat_attn_desc dc = d;
    dc.causal = -1;
    TU_EXPECT_ERR(sp_hash(&dc, 3, good, good, &L), KAT_EINVAL, "causal");
    kat_attn_desc dh = {1, 3, 2, 4, 4, 8, 1, 0, 0};
    TU_EXPECT_ERR(sp_hash(&dh, 3, good, good, &L), KAT_EINVAL, "multiple");
    ck_assert_ptr_null(L);
    TU_OK(sp_hash(&d, 3, good, good, &L));
    /* Views that disagree with the layout's shapes. */
    float buf[64] = {0}, out[64], out2[64];
    kat_tensor q = kat_tensor_view(buf, 1, 1, 4, 8), o = kat_tensor_view(out, 1, 1, 4, 8);
    kat_tensor k5 = kat_tensor_view(buf, 1, 1, 5, 8), o2 = kat_tensor_view(out2, 1, 1, 4, 8);
    TU_EXPECT_ERR(sp_forward(L, &q, &k5, &q, &o, NULL, NULL), KAT_EINVAL, "k:");
    TU_EXPECT_ERR(sp_forward(L, &q, &q, &q, &q, NULL, NULL), KAT_EINVAL, "overlaps");
    TU_EXPECT_ERR(sp_forward(NULL, &q, &q, &q, &o, NULL, NULL), KAT_EINVAL, "plan");
    void *unaligned = (char *)out2 + 4;
    kat_tensor tl = kat_tensor_view(out2, 1, 1, 4, 1);
    TU_EXPECT_ERR(sp_forward(L, &q, &q, &q, &o, &tl, unaligned), KAT_EINVAL, "aligned");
    buf[3] = NAN;
    TU_EXPECT_ERR(sp_forward(L, &q, &q, &q, &o, NULL, NULL), KAT_EDOM, "q");
    buf[3] = 0;
    TU_EXPECT_ERR(sp_backward(L, &q, &q, &q, &o, NULL, &q, &o2, &o2, &o2, NULL),
                  KAT_EINVAL, "lse is NULL");
    TU_EXPECT_ERR(sp_backward(NULL, &q, &q, &q, &o, &tl, &q, &o2, &o2, &o2, NULL),
                  KAT_EINVAL, "plan");
    sp_handle_destroy(L);
}
END_TEST

/* ---- LSH ----------------------------------------------------------------------------------- */

START_TEST(test_lsh_properties)
{
    size_t B = 2, H = 4, N = 300, D = 24, nb = 8, half = nb / 2;
    float *x = malloc(B * H * N * D * sizeof(float)), *y = malloc(B * H * N * D * sizeof(float));
    kat_rng *rng;
    kat_rng_create(3, &rng);
    ts_fill(rng, x, B * H * N * D, 1.0);
    kat_rng_destroy(rng);
    int32_t *b1 = malloc(B * H * N * sizeof(int32_t)), *b2 = malloc(B * H * N * sizeof(int32_t));
    kat_tensor tx = kat_tensor_view(x, B, H, N, D), ty = kat_tensor_view(y, B, H, N, D);
    TU_OK(kat_sparse_lsh_buckets(&tx, 1, nb, 42, b1));
    size_t hist[8] = {0};
    for (size_t i = 0; i < B * H * N; i++) {
        ck_assert(b1[i] >= 0 && (size_t)b1[i] < nb);
        hist[b1[i]]++;
    }
    for (size_t c = 0; c < nb; c++)   /* random directions: every bucket used */
        ck_assert_uint_gt(hist[c], 0);
    /* Deterministic; a positive scale keeps the bucket, negation maps c to c +- nb/2. */
    TU_OK(kat_sparse_lsh_buckets(&tx, 1, nb, 42, b2));
    ck_assert_int_eq(memcmp(b1, b2, B * H * N * sizeof(int32_t)), 0);
    for (size_t i = 0; i < B * H * N * D; i++)
        y[i] = 3.0f * x[i];
    TU_OK(kat_sparse_lsh_buckets(&ty, 1, nb, 42, b2));
    ck_assert_int_eq(memcmp(b1, b2, B * H * N * sizeof(int32_t)), 0);
    for (size_t i = 0; i < B * H * N * D; i++)
        y[i] = -x[i];
    TU_OK(kat_sparse_lsh_buckets(&ty, 1, nb, 42, b2));
    for (size_t i = 0; i < B * H * N; i++)
        ck_assert_int_eq(b2[i], (int32_t)(((size_t)b1[i] + half) % nb));
    /* A different seed gives different buckets. */
    TU_OK(kat_sparse_lsh_buckets(&tx, 1, nb, 43, b2));
    ck_assert_int_ne(memcmp(b1, b2, B * H * N * sizeof(int32_t)), 0);
    /* group = 2: heads 2t and 2t+1 use the matrix that head t uses with group 1. */
    memcpy(y, x, B * H * N * D * sizeof(float));
    for (size_t b = 0; b < B; b++)   /* head 1 := head 0, head 3 := head 2 */
        for (size_t h = 1; h < H; h += 2)
            memcpy(y + (b * H + h) * N * D, x + (b * H + h - 1) * N * D, N * D * sizeof(float));
    TU_OK(kat_sparse_lsh_buckets(&ty, 2, nb, 42, b2));
    for (size_t b = 0; b < B; b++)
        for (size_t h = 1; h < H; h += 2)
            ck_assert_int_eq(memcmp(b2 + (b * H + h) * N, b2 + (b * H + h - 1) * N,
                                    N * sizeof(int32_t)),
                             0);
    kat_tensor tx2 = kat_tensor_view(x, B, H / 2, N, D);   /* "keys": heads 0, 1 */
    int32_t *b3 = malloc(B * H / 2 * N * sizeof(int32_t));
    TU_OK(kat_sparse_lsh_buckets(&tx2, 1, nb, 42, b3));
    for (size_t n = 0; n < N; n++)   /* query head 0 (group 2) shares R with key head 0 */
        ck_assert_int_eq(b2[n], b3[n]);
    free(x), free(y), free(b1), free(b2), free(b3);
}
END_TEST

/* Basis vectors: e_d and -e_d fall in antipodal buckets (c and c + nb/2 mod nb), with nb/2
 * odd. */
START_TEST(test_lsh_basis_consistency)
{
    size_t D = 5, nb = 6;
    float x[2 * 5 * 5] = {0};
    for (size_t d = 0; d < D; d++)
        x[d * D + d] = 1.0f, x[(D + d) * D + d] = -1.0f;
    kat_tensor t = kat_tensor_view(x, 1, 1, 2 * D, D);
    int32_t b[10];
    TU_OK(kat_sparse_lsh_buckets(&t, 1, nb, 7, b));
    for (size_t d = 0; d < D; d++)
        ck_assert_int_eq(b[D + d], (b[d] + 3) % 6);
}
END_TEST

START_TEST(test_lsh_errors)
{
    float x[16] = {0};
    int32_t out[4];
    kat_tensor t = kat_tensor_view(x, 1, 2, 2, 4);
    TU_EXPECT_ERR(kat_sparse_lsh_buckets(&t, 1, 5, 1, out), KAT_EINVAL, "nb = 5");
    TU_EXPECT_ERR(kat_sparse_lsh_buckets(&t, 1, 0, 1, out), KAT_EINVAL, "nb = 0");
    TU_EXPECT_ERR(kat_sparse_lsh_buckets(&t, 3, 4, 1, out), KAT_EINVAL, "group = 3");
    TU_EXPECT_ERR(kat_sparse_lsh_buckets(&t, 0, 4, 1, out), KAT_EINVAL, "group = 0");
    TU_EXPECT_ERR(kat_sparse_lsh_buckets(&t, 1, 4, 1, NULL), KAT_EINVAL, "buckets");
    TU_EXPECT_ERR(kat_sparse_lsh_buckets(NULL, 1, 4, 1, out), KAT_EINVAL, "x");
    x[5] = INFINITY;
    TU_EXPECT_ERR(kat_sparse_lsh_buckets(&t, 1, 4, 1, out), KAT_EDOM, "x");
}
END_TEST

/* ---- block masks --------------------------------------------------------------------------- */

/* The test's own rules (independent of the library's). */
static int rule_window(size_t N, size_t M, size_t W, int causal, size_t i, size_t j)
{
    int64_t d = (int64_t)i + (int64_t)M - (int64_t)N - (int64_t)j;
    return d < (int64_t)W && d > -(int64_t)W && (!causal || d >= 0);
}

static int rule_global(size_t N, size_t M, size_t G, size_t W, int causal, size_t i, size_t j)
{
    int64_t d = (int64_t)i + (int64_t)M - (int64_t)N - (int64_t)j;
    int in = j < G || (d < (int64_t)W && d > -(int64_t)W) || (!causal && i < G);
    return in && (!causal || d >= 0);
}

/* Block lists must name exactly the blocks with an allowed element, "full" exactly the blocks
 * with all allowed, and the transposed lists must be their transpose. */
static void check_block_lists(const kat_sparse_blockmask *m, size_t N, size_t M,
                              const uint8_t *el /* [N][M] */)
{
    size_t nqb, nkb, bq, bk;
    kat_sparse_blockmask_shape(m, &nqb, &nkb, &bq, &bk);
    ck_assert_uint_eq(nqb, (N + bq - 1) / bq);
    ck_assert_uint_eq(nkb, (M + bk - 1) / bk);
    for (size_t qb = 0; qb < nqb; qb++) {
        size_t cnt;
        const int32_t *kbs;
        const uint8_t *full;
        TU_OK(kat_sparse_blockmask_kv_list(m, 0, 0, qb, &cnt, &kbs, &full));
        size_t e = 0;
        for (size_t kb = 0; kb < nkb; kb++) {
            int any = 0, all = 1;
            for (size_t i = qb * bq; i < N && i < (qb + 1) * bq; i++)
                for (size_t j = kb * bk; j < M && j < (kb + 1) * bk; j++)
                    any |= el[i * M + j], all &= el[i * M + j];
            if (!any)
                continue;
            ck_assert_uint_lt(e, cnt);
            ck_assert_int_eq(kbs[e], (int32_t)kb);
            ck_assert_int_eq(full[e], all);
            /* transposed: qb appears in kb's list with the same flag */
            size_t tc;
            const int32_t *qbs;
            const uint8_t *tf;
            TU_OK(kat_sparse_blockmask_q_list(m, 0, 0, kb, &tc, &qbs, &tf));
            int found = 0;
            for (size_t t = 0; t < tc; t++)
                if (qbs[t] == (int32_t)qb) {
                    found = 1;
                    ck_assert_int_eq(tf[t], all);
                }
            ck_assert(found);
            e++;
        }
        ck_assert_uint_eq(e, cnt);
    }
}

static void run_window(size_t N, size_t M, size_t W, int mask_causal, int desc_causal,
                       size_t bq, size_t bk, size_t G, int global, uint64_t seed)
{
    size_t D = 16, H = 2;
    N = qsize(N), M = qsize(M);
    ts_problem p;
    ts_problem_init(&p, 1, H, H, N, M, D, desc_causal, seed);
    uint8_t *el = malloc(N * M + 1);
    for (size_t i = 0; i < N; i++)
        for (size_t j = 0; j < M; j++)
            el[i * M + j] = global ? rule_global(N, M, G, W, mask_causal, i, j)
                                   : rule_window(N, M, W, mask_causal, i, j);
    for (size_t h = 0; h < H; h++)
        for (size_t i = 0; i < N; i++)
            for (size_t j = 0; j < M; j++)
                *ts_allowed(&p, 0, h, i, j) = el[i * M + j] && ts_causal_ok(&p, i, j);
    kat_sparse_blockmask *m;
    if (global) {
        TU_OK(kat_sparse_blockmask_global(N, M, G, W, mask_causal, bq, bk, &m));
    } else {
        TU_OK(kat_sparse_blockmask_sliding_window(N, M, W, mask_causal, bq, bk, &m));
    }
    check_block_lists(m, N, M, el);
    kat_attn_desc d = {1, H, H, N, M, D, desc_causal, 0, 0};
    sp_handle *L;
    TU_OK(sp_block(&d, m, &L));
    kat_sparse_blockmask_destroy(m);   /* the layout does not need it */
    ts_check_layout(&p, L);
    sp_handle_destroy(L);
    free(el);
    ts_problem_free(&p);
}

START_TEST(test_block_window)
{
    size_t tq = kat_sparse_tile_q(), tk = kat_sparse_tile_k();
    run_window(300, 300, 50, 1, 0, tq, tk, 0, 0, 61);
    run_window(300, 300, 50, 0, 0, tq, tk, 0, 0, 62);
    run_window(300, 300, 70, 0, 1, 20, 50, 0, 0, 63);    /* blocks off the tile grid, + causal */
    run_window(250, 280, 33, 1, 0, 64, 128, 0, 0, 64);   /* blocks larger than tiles, M > N */
    run_window(200, 200, 1, 1, 0, 16, 16, 0, 0, 65);     /* window 1: the diagonal */
    run_window(200, 200, 500, 1, 0, tq, tk, 0, 0, 66);   /* window wider than the sequence */
    run_window(200, 200, 30, 1, KAT_SPARSE_CAUSAL_STRICT, tq, tk, 0, 0, 67);
}
END_TEST

START_TEST(test_block_global)
{
    size_t tq = kat_sparse_tile_q(), tk = kat_sparse_tile_k();
    run_window(300, 300, 40, 1, 0, tq, tk, 10, 1, 71);   /* sinks + causal window */
    run_window(300, 300, 40, 0, 0, tq, tk, 70, 1, 72);   /* Longformer: global rows too */
    run_window(260, 260, 0, 1, 0, 32, 40, 5, 1, 73);     /* only global keys */
    run_window(260, 260, 0, 0, 1, 32, 40, 5, 1, 74);
}
END_TEST

typedef struct {
    size_t N, M;
    unsigned mod;
} stripes;

static int stripe_pred(void *arg, size_t b, size_t h, size_t i, size_t j)
{
    const stripes *s = arg;
    return (i + j + h + b) % s->mod != 0;
}

/* A dense random mask and a user predicate on explicit lists. */
START_TEST(test_block_dense_and_predicate)
{
    size_t B = 2, H = 2, N = 170, M = 190, D = 12;
    ts_problem p;
    ts_problem_init(&p, B, H, H, N, M, D, 1, 81);
    kat_rng *rng;
    kat_rng_create(82, &rng);
    uint8_t *mask = malloc(B * H * N * M);
    for (size_t b = 0; b < B; b++)
        for (size_t h = 0; h < H; h++)
            for (size_t i = 0; i < N; i++)
                for (size_t j = 0; j < M; j++) {
                    /* blocky structure so that some blocks are empty or full */
                    int band = (i / 30 + j / 40 + h) % 3;
                    int on = band == 0 ? 0 : band == 1 ? 1 : kat_rng_uniform(rng) < 0.5;
                    mask[((b * H + h) * N + i) * M + j] = (uint8_t)on;
                    *ts_allowed(&p, b, h, i, j) = on && ts_causal_ok(&p, i, j);
                }
    kat_sparse_blockmask *m;
    TU_OK(kat_sparse_blockmask_from_dense(mask, B, H, N, M, 30, 40, &m));
    kat_attn_desc d = {B, H, H, N, M, D, 1, 0, 0};
    sp_handle *L;
    TU_OK(sp_block(&d, m, &L));
    ts_check_layout(&p, L);
    sp_handle_destroy(L);
    kat_sparse_blockmask_destroy(m);

    /* Explicit lists: every other key block, first entry of each list flagged full, a
     * predicate for the rest; broadcast over B and H. */
    size_t bq = 25, bk = 60, nqb = (N + bq - 1) / bq, nkb = (M + bk - 1) / bk;
    size_t *off = malloc((nqb + 1) * sizeof(size_t));
    int32_t *kbs = malloc(nqb * nkb * sizeof(int32_t));
    uint8_t *full = malloc(nqb * nkb);
    size_t e = 0;
    off[0] = 0;
    for (size_t qb = 0; qb < nqb; qb++) {
        size_t first = e;
        for (size_t kb = qb % 2; kb < nkb; kb += 2)
            kbs[e] = (int32_t)kb, full[e] = e == first, e++;
        off[qb + 1] = e;
    }
    stripes st = {N, M, 3};
    kat_sparse_blockmask_desc bd = {1, 1, N, M, bq, bk, off, kbs, full, stripe_pred, &st};
    TU_OK(kat_sparse_blockmask_create(&bd, &m));
    for (size_t b = 0; b < B; b++)
        for (size_t h = 0; h < H; h++)
            for (size_t i = 0; i < N; i++)
                for (size_t j = 0; j < M; j++) {
                    size_t qb = i / bq, kb = j / bk;
                    int listed = kb % 2 == qb % 2;
                    int is_full = kb == qb % 2;
                    *ts_allowed(&p, b, h, i, j) =
                        listed && (is_full || stripe_pred(&st, b, h, i, j)) && ts_causal_ok(&p, i, j);
                }
    TU_OK(sp_block(&d, m, &L));
    ts_check_layout(&p, L);
    sp_handle_destroy(L);
    /* Without a predicate every listed block is attended in full. */
    bd.fn = NULL;
    kat_sparse_blockmask_destroy(m);
    TU_OK(kat_sparse_blockmask_create(&bd, &m));
    for (size_t b = 0; b < B; b++)
        for (size_t h = 0; h < H; h++)
            for (size_t i = 0; i < N; i++)
                for (size_t j = 0; j < M; j++)
                    *ts_allowed(&p, b, h, i, j) = (j / bk) % 2 == (i / bq) % 2 && ts_causal_ok(&p, i, j);
    TU_OK(sp_block(&d, m, &L));
    ts_check_layout(&p, L);
    sp_handle_destroy(L);
    kat_sparse_blockmask_destroy(m);
    free(off), free(kbs), free(full), free(mask);
    kat_rng_destroy(rng);
    ts_problem_free(&p);
}
END_TEST

START_TEST(test_block_errors)
{
    kat_sparse_blockmask *m = NULL;
    size_t off[3] = {0, 2, 3};
    int32_t kbs[3] = {0, 1, 1};
    kat_sparse_blockmask_desc bd = {1, 1, 20, 20, 10, 10, off, kbs, NULL, NULL, NULL};
    TU_OK(kat_sparse_blockmask_create(&bd, &m));
    kat_sparse_blockmask_destroy(m);
    m = NULL;
    int32_t out_of_range[3] = {0, 2, 1};
    bd.kblocks = out_of_range;
    TU_EXPECT_ERR(kat_sparse_blockmask_create(&bd, &m), KAT_EINVAL, "outside [0, nkb = 2)");
    int32_t neg[3] = {0, 1, -1};
    bd.kblocks = neg;
    TU_EXPECT_ERR(kat_sparse_blockmask_create(&bd, &m), KAT_EINVAL, "-1");
    int32_t unsorted[3] = {1, 0, 1};
    bd.kblocks = unsorted;
    TU_EXPECT_ERR(kat_sparse_blockmask_create(&bd, &m), KAT_EINVAL, "strictly increasing");
    bd.kblocks = kbs;
    size_t off_bad[3] = {0, 3, 3};   /* 3 entries in a list of at most 2 key blocks */
    bd.offsets = off_bad;
    TU_EXPECT_ERR(kat_sparse_blockmask_create(&bd, &m), KAT_EINVAL, "offsets[1]");
    bd.offsets = NULL;
    TU_EXPECT_ERR(kat_sparse_blockmask_create(&bd, &m), KAT_EINVAL, "offsets is NULL");
    bd.offsets = off;
    bd.block_q = 0;
    TU_EXPECT_ERR(kat_sparse_blockmask_create(&bd, &m), KAT_EINVAL, "block_q = 0");
    TU_EXPECT_ERR(kat_sparse_blockmask_create(NULL, &m), KAT_EINVAL, "desc");
    TU_EXPECT_ERR(kat_sparse_blockmask_sliding_window(10, 10, 0, 1, 4, 4, &m), KAT_EINVAL, "window = 0");
    TU_EXPECT_ERR(kat_sparse_blockmask_from_dense(NULL, 1, 1, 4, 4, 2, 2, &m), KAT_EINVAL, "mask");
    ck_assert_ptr_null(m);
    /* Layout shapes must agree with the mask. */
    TU_OK(kat_sparse_blockmask_sliding_window(20, 20, 5, 1, 8, 8, &m));
    kat_attn_desc d = {1, 2, 2, 21, 20, 8, 0, 0, 0};
    sp_handle *L = NULL;
    TU_EXPECT_ERR(sp_block(&d, m, &L), KAT_EINVAL, "does not match");
    TU_EXPECT_ERR(sp_block(&d, NULL, &L), KAT_EINVAL, "mask");
    ck_assert_ptr_null(L);
    size_t c;
    const int32_t *lst;
    const uint8_t *fl;
    TU_EXPECT_ERR(kat_sparse_blockmask_kv_list(m, 0, 0, 3, &c, &lst, &fl), KAT_EINVAL, "block = 3");
    TU_EXPECT_ERR(kat_sparse_blockmask_q_list(m, 1, 0, 0, &c, &lst, &fl), KAT_EINVAL, "b = 1");
    kat_sparse_blockmask_destroy(m);
    kat_sparse_blockmask_destroy(NULL);
    sp_handle_destroy(NULL);
}
END_TEST

/* ---- engine properties ----------------------------------------------------------------------- */

/* A caller's workspace, strided views (a [B, N, H, D] buffer), and determinism. */
START_TEST(test_workspace_strides_determinism)
{
    size_t B = 1, H = 3, N = 211, D = 20, nb = 5;
    size_t n = B * N * H * D;
    float *q = malloc(n * sizeof(float)), *k = malloc(n * sizeof(float));
    float *v = malloc(n * sizeof(float)), *o1 = malloc(n * sizeof(float)), *o2 = malloc(n * sizeof(float));
    float *dq = malloc(n * sizeof(float)), *dk = malloc(n * sizeof(float)), *dv = malloc(n * sizeof(float));
    float *dq2 = malloc(n * sizeof(float)), *lse = malloc(B * H * N * sizeof(float));
    kat_rng *rng;
    kat_rng_create(5, &rng);
    ts_fill(rng, q, n, 1), ts_fill(rng, k, n, 1), ts_fill(rng, v, n, 1);
    int32_t *bq = malloc(B * H * N * sizeof(int32_t));
    for (size_t i = 0; i < B * H * N; i++)
        bq[i] = (int32_t)kat_rng_uint(rng, nb);
    kat_rng_destroy(rng);
    kat_tensor tq = {q, B, H, N, D, N * H * D, D, H * D}, tk = tq, tv = tq, to1 = tq, to2 = tq;
    tk.data = k, tv.data = v, to1.data = o1, to2.data = o2;
    kat_tensor tdq = tq, tdk = tq, tdv = tq, tdq2 = tq;
    tdq.data = dq, tdk.data = dk, tdv.data = dv, tdq2.data = dq2;
    kat_tensor tl = kat_tensor_view(lse, B, H, N, 1);
    kat_attn_desc d = {B, H, H, N, N, D, 1, 0, 0};
    sp_handle *L;
    TU_OK(sp_hash(&d, nb, bq, bq, &L));
    ck_assert_ptr_nonnull(kat_attn_plan_desc(L->plan));
    ck_assert(kat_attn_plan_desc(L->plan)->scale > 0);
    size_t wf = sp_workspace(L, KAT_ATTN_FORWARD);
    size_t wb = sp_workspace(L, KAT_ATTN_BACKWARD);
    ck_assert_uint_gt(wf, 0);
    ck_assert_uint_gt(wb, 0);
    void *work = kat_malloc(wb > wf ? wb : wf);
    TU_OK(sp_forward(L, &tq, &tk, &tv, &to1, &tl, work));
    TU_OK(sp_forward(L, &tq, &tk, &tv, &to2, NULL, NULL));
    ck_assert_int_eq(memcmp(o1, o2, n * sizeof(float)), 0);
    TU_OK(sp_backward(L, &tq, &tk, &tv, &to1, &tl, &tv, &tdq, &tdk, &tdv, work));
    TU_OK(sp_backward(L, &tq, &tk, &tv, &to1, &tl, &tv, &tdq2, &tdk, &tdv, NULL));
    ck_assert_int_eq(memcmp(dq, dq2, n * sizeof(float)), 0);
    kat_free(work);
    sp_handle_destroy(L);
    free(q), free(k), free(v), free(o1), free(o2), free(dq), free(dk), free(dv), free(dq2);
    free(lse), free(bq);
}
END_TEST

/* One thread and several agree (within the error model); the backward splits heavy groups
 * into several units when the work is uneven, which this layout forces. */
START_TEST(test_threads_and_split_units)
{
    size_t N = 400, D = 16, H = 3;
    ts_problem p;
    ts_problem_init(&p, 1, H, H, N, N, D, 1, 91);
    /* head 0 keeps everything, the others almost nothing: head 0's group gets split. */
    uint8_t *qm = malloc(H * N), *km = malloc(H * N);
    for (size_t i = 0; i < H * N; i++)
        qm[i] = km[i] = i < N || i % 17 == 0;
    for (size_t h = 0; h < H; h++)
        for (size_t i = 0; i < N; i++)
            for (size_t j = 0; j < N; j++)
                *ts_allowed(&p, 0, h, i, j) = qm[h * N + i] && km[h * N + j] && j <= i;
    kat_sparse_keep qk, kk;
    TU_OK(kat_sparse_keep_from_mask(qm, 1, H, N, &qk));
    TU_OK(kat_sparse_keep_from_mask(km, 1, H, N, &kk));
    kat_attn_desc d = {1, H, H, N, N, D, 1, 0, 0};
    for (int threads = 1; threads <= 4; threads *= 2) {
        kat_set_num_threads(threads);
        sp_handle *L;
        TU_OK(sp_qk(&d, &qk, &kk, &L));
        kat_sparse_stats s;
        TU_OK(sp_stats(L, &s));
        if (threads > 1)
            ck_assert_uint_gt(s.backward_units, H);   /* head 0 was split */
        ck_assert_uint_lt(s.tile_pairs, s.dense_pairs);
        ts_check_layout(&p, L);
        sp_handle_destroy(L);
    }
    kat_set_num_threads(0);
    kat_sparse_keep_free(&qk), kat_sparse_keep_free(&kk);
    free(qm), free(km);
    ts_problem_free(&p);
}
END_TEST

/* Empty shapes: no rows, no keys, no batch. */
START_TEST(test_empty_and_tiny)
{
    /* N = 1, M = 1, D = 1 */
    run_qk(1, 1, 1, 1, 1, 1, 1, 0.0, 0, 101);
    run_hash(1, 1, 1, 1, 1, 1, 1, 1, 1, 102);
    run_window(1, 1, 1, 1, 0, 1, 1, 0, 0, 103);
    /* M = 0: every query sees nothing. */
    float x[8] = {1, 2, 3, 4, 5, 6, 7, 8}, o[8], l[2], dq[8];
    kat_attn_desc d = {1, 1, 1, 2, 0, 4, 0, 0, 0};
    sp_handle *L;
    TU_OK(sp_qk(&d, NULL, NULL, &L));
    kat_tensor q = kat_tensor_view(x, 1, 1, 2, 4), k = kat_tensor_view(NULL, 1, 1, 0, 4);
    kat_tensor to = kat_tensor_view(o, 1, 1, 2, 4), tl = kat_tensor_view(l, 1, 1, 2, 1);
    kat_tensor tdq = kat_tensor_view(dq, 1, 1, 2, 4);
    TU_OK(sp_forward(L, &q, &k, &k, &to, &tl, NULL));
    for (int i = 0; i < 8; i++)
        ck_assert(o[i] == 0.0f);
    ck_assert(l[0] == -INFINITY && l[1] == -INFINITY);
    TU_OK(sp_backward(L, &q, &k, &k, &to, &tl, &q, &tdq, &k, &k, NULL));
    for (int i = 0; i < 8; i++)
        ck_assert(dq[i] == 0.0f);
    sp_handle_destroy(L);
    /* B = 0 */
    kat_attn_desc d0 = {0, 2, 2, 5, 5, 4, 1, 0, 0};
    TU_OK(sp_hash(&d0, 3, NULL, NULL, &L));
    kat_tensor e = kat_tensor_view(NULL, 0, 2, 5, 4);
    kat_tensor el = kat_tensor_view(NULL, 0, 2, 5, 1);
    TU_OK(sp_forward(L, &e, &e, &e, &e, &el, NULL));
    sp_handle_destroy(L);
}
END_TEST

/* Every allocation failure is reported cleanly and leaks nothing (the sanitizer and valgrind
 * runs check the leaks). */
/* The pattern grammar and the window pattern of the front end: "window:W:G" is the block mask
 * of kat_sparse_blockmask_global (checked against the fp64 masked reference), the plan names
 * its solver, and with a workspace neither pass allocates. */
START_TEST(test_window_pattern_plan)
{
    kat_attn_pattern p;
    TU_OK(kat_attn_pattern_parse("window:24:3", &p));
    ck_assert_int_eq(p.kind, KAT_ATTN_WINDOW);
    ck_assert_uint_eq(p.window, 24);
    ck_assert_uint_eq(p.global, 3);
    size_t N = 150, D = 16, H = 2;
    ts_problem pr;
    ts_problem_init(&pr, 1, H, H, N, N, D, 1, 77);
    for (size_t h = 0; h < H; h++)
        for (size_t i = 0; i < N; i++)
            for (size_t j = 0; j < N; j++)
                *ts_allowed(&pr, 0, h, i, j) =
                    rule_global(N, N, 3, 24, 1, i, j) && ts_causal_ok(&pr, i, j);
    kat_attn_desc d = {1, H, H, N, N, D, 1, 0, 0};
    sp_handle *L;
    TU_OK(sp_handle_create(&d, &p, NULL, &L));
    ck_assert_str_eq(kat_attn_plan_solver(L->plan), "window");
    ts_check_layout(&pr, L);
    /* with a workspace: no allocation in either pass */
    size_t fb = kat_attn_workspace_size(L->plan, KAT_ATTN_FORWARD);
    size_t bb = kat_attn_workspace_size(L->plan, KAT_ATTN_BACKWARD), wb = fb > bb ? fb : bb;
    void *work = aligned_alloc(64, (wb + 63) / 64 * 64);
    float *buf = malloc((4 * N * D + N) * H * sizeof(float));
    kat_tensor q = kat_tensor_view(pr.q, 1, H, N, D), k = kat_tensor_view(pr.k, 1, H, N, D);
    kat_tensor v = kat_tensor_view(pr.v, 1, H, N, D), dout = kat_tensor_view(pr.dout, 1, H, N, D);
    kat_tensor o = kat_tensor_view(buf, 1, H, N, D), dq = kat_tensor_view(buf + H * N * D, 1, H, N, D);
    kat_tensor dk = kat_tensor_view(buf + 2 * H * N * D, 1, H, N, D);
    kat_tensor dv = kat_tensor_view(buf + 3 * H * N * D, 1, H, N, D);
    kat_tensor lse = kat_tensor_view(buf + 4 * H * N * D, 1, H, N, 1);
    kat_debug_fail_alloc_at(1);
    kat_status st = kat_attn_forward(L->plan, NULL, &q, &k, &v, &o, &lse, work);
    if (!st)
        st = kat_attn_backward(L->plan, NULL, &q, &k, &v, &o, &lse, &dout, &dq, &dk, &dv, work);
    size_t made = kat_debug_fail_alloc_at(0);
    ck_assert_msg(st == KAT_OK, "%s", kat_last_error());
    ck_assert_uint_eq(made, 0);
    free(work), free(buf);
    sp_handle_destroy(L);
    ts_problem_free(&pr);
    /* spellings and refusals */
    TU_OK(kat_attn_pattern_parse("dense", &p));
    ck_assert_int_eq(p.kind, KAT_ATTN_DENSE);
    TU_OK(kat_attn_pattern_parse("lsh:16:5", &p));
    ck_assert(p.kind == KAT_ATTN_LSH && p.buckets == 16 && p.seed == 5);
    TU_OK(kat_attn_pattern_parse("hash:8", &p));
    ck_assert(p.kind == KAT_ATTN_HASH && p.buckets == 8);
    TU_EXPECT_ERR(kat_attn_pattern_parse("hash", &p), KAT_EINVAL, "the bucket count NB is missing");
    TU_EXPECT_ERR(kat_attn_pattern_parse("hash:x", &p), KAT_EINVAL, "'x' is not a non-negative integer");
    TU_EXPECT_ERR(kat_attn_pattern_parse("dense:3", &p), KAT_EINVAL, "dense takes no fields");
    TU_EXPECT_ERR(kat_attn_pattern_parse("ring:2", &p), KAT_EINVAL, "unknown kind");
    const char *lin = "linear:poly:(1+x)^2";
    TU_OK(kat_attn_pattern_parse(lin, &p));
    ck_assert(p.kind == KAT_ATTN_LINEAR && p.map_spec == lin + 7 && p.map == NULL);
    TU_OK(kat_attn_pattern_parse("linear", &p));
    ck_assert(p.kind == KAT_ATTN_LINEAR && p.map_spec == NULL);
    TU_EXPECT_ERR(kat_attn_pattern_parse("linear:", &p), KAT_EINVAL, "feature map after");
    TU_EXPECT_ERR(kat_attn_pattern_parse(NULL, &p), KAT_EINVAL, "spec");
    /* a pattern no solver runs: the sentence says why */
    kat_attn_plan *plan = NULL;
    kat_attn_desc strict = {1, 2, 2, 10, 10, 16, 2, 0, 0};
    TU_EXPECT_ERR(kat_attn_plan_create(&strict, NULL, &plan), KAT_ENOTSUP, "strict");
    ck_assert_ptr_null(plan);
}
END_TEST

/* The per-call index (kat_attn_index_create): a forward and its backward that share it give
 * the results of calls that build it themselves, bit for bit; with it and a workspace neither
 * pass allocates; it is refused by another plan and by patterns without per-call data. */
START_TEST(test_index_shared)
{
    size_t N = 130, D = 16, H = 2, nq = H * N * D;
    ts_problem pr;
    ts_problem_init(&pr, 1, H, H, N, N, D, 1, 41);
    int32_t *qb = malloc(H * N * sizeof *qb), *kb = malloc(H * N * sizeof *kb);
    for (size_t i = 0; i < H * N; i++)
        qb[i] = (int32_t)((i * 7) % 5), kb[i] = (int32_t)((i * 3) % 5);
    kat_attn_desc d = {1, H, H, N, N, D, 1, 0, 0};
    kat_attn_pattern pat = {.kind = KAT_ATTN_HASH, .buckets = 5};
    kat_attn_plan *plan, *other;
    TU_OK(kat_attn_plan_create(&d, &pat, &plan));
    TU_OK(kat_attn_plan_create(&d, &pat, &other));
    kat_attn_args args = {.q_buckets = qb, .k_buckets = kb};
    kat_attn_index *ix;
    TU_OK(kat_attn_index_create(plan, &args, NULL, NULL, &ix));
    float *buf = malloc(2 * (4 * nq + H * N) * sizeof(float));
    kat_tensor q = kat_tensor_view(pr.q, 1, H, N, D), k = kat_tensor_view(pr.k, 1, H, N, D);
    kat_tensor v = kat_tensor_view(pr.v, 1, H, N, D), dout = kat_tensor_view(pr.dout, 1, H, N, D);
    kat_tensor out[2][5];
    for (int r = 0; r < 2; r++) {
        float *b = buf + r * (4 * nq + H * N);
        out[r][0] = kat_tensor_view(b, 1, H, N, D);
        out[r][1] = kat_tensor_view(b + nq, 1, H, N, D);
        out[r][2] = kat_tensor_view(b + 2 * nq, 1, H, N, D);
        out[r][3] = kat_tensor_view(b + 3 * nq, 1, H, N, D);
        out[r][4] = kat_tensor_view(b + 4 * nq, 1, H, N, 1);
    }
    TU_OK(kat_attn_forward(plan, &args, &q, &k, &v, &out[0][0], &out[0][4], NULL));
    TU_OK(kat_attn_backward(plan, &args, &q, &k, &v, &out[0][0], &out[0][4], &dout, &out[0][1],
                            &out[0][2], &out[0][3], NULL));
    size_t fb = kat_attn_workspace_size(plan, KAT_ATTN_FORWARD);
    size_t bb = kat_attn_workspace_size(plan, KAT_ATTN_BACKWARD), wb = fb > bb ? fb : bb;
    void *work = aligned_alloc(64, (wb + 63) / 64 * 64);
    kat_attn_args with = {.index = ix};
    kat_debug_fail_alloc_at(1);
    kat_status st = kat_attn_forward(plan, &with, &q, &k, &v, &out[1][0], &out[1][4], work);
    if (!st)
        st = kat_attn_backward(plan, &with, &q, &k, &v, &out[1][0], &out[1][4], &dout,
                               &out[1][1], &out[1][2], &out[1][3], work);
    size_t made = kat_debug_fail_alloc_at(0);
    ck_assert_msg(st == KAT_OK, "%s", kat_last_error());
    ck_assert_uint_eq(made, 0);
    ck_assert(!memcmp(buf, buf + 4 * nq + H * N, (4 * nq + H * N) * sizeof(float)));
    TU_EXPECT_ERR(kat_attn_forward(other, &with, &q, &k, &v, &out[1][0], NULL, NULL), KAT_EINVAL,
                  "another plan");
    kat_attn_plan *dense, *win;
    kat_attn_pattern wp = {.kind = KAT_ATTN_WINDOW, .window = 8};
    TU_OK(kat_attn_plan_create(&d, NULL, &dense));
    TU_OK(kat_attn_plan_create(&d, &wp, &win));
    TU_EXPECT_ERR(kat_attn_forward(dense, &with, &q, &k, &v, &out[1][0], NULL, NULL), KAT_EINVAL,
                  "args->index");
    kat_attn_index *none = NULL;
    TU_EXPECT_ERR(kat_attn_index_create(win, NULL, NULL, NULL, &none), KAT_EINVAL,
                  "no per-call index");
    TU_EXPECT_ERR(kat_attn_index_create(dense, NULL, NULL, NULL, &none), KAT_EINVAL,
                  "no per-call index");
    ck_assert_ptr_null(none);
    kat_attn_index_destroy(ix);
    kat_attn_index_destroy(NULL);
    kat_attn_plan_destroy(plan), kat_attn_plan_destroy(other);
    kat_attn_plan_destroy(dense), kat_attn_plan_destroy(win);
    free(work), free(buf), free(qb), free(kb);
    ts_problem_free(&pr);
}
END_TEST

START_TEST(test_allocation_failures)
{
    size_t N = 120, D = 8;
    int32_t *bk = malloc(N * sizeof(int32_t));
    for (size_t i = 0; i < N; i++)
        bk[i] = (int32_t)(i % 3);
    kat_attn_desc d = {1, 1, 1, N, N, D, 1, 0, 0};
    for (size_t n = 1;; n++) {
        sp_handle *L = NULL;
        kat_debug_fail_alloc_at(n);
        kat_status st = sp_hash(&d, 3, bk, bk, &L);
        kat_debug_fail_alloc_at(0);
        if (st == KAT_OK) {
            sp_handle_destroy(L);
            break;
        }
        ck_assert_int_eq(st, KAT_ENOMEM);
        ck_assert_ptr_null(L);
        ck_assert_uint_lt(n, 200);
    }
    for (size_t n = 1;; n++) {
        kat_sparse_blockmask *m = NULL;
        kat_debug_fail_alloc_at(n);
        kat_status st = kat_sparse_blockmask_sliding_window(N, N, 10, 1, 16, 16, &m);
        kat_debug_fail_alloc_at(0);
        if (st == KAT_OK) {
            kat_sparse_blockmask_destroy(m);
            break;
        }
        ck_assert_int_eq(st, KAT_ENOMEM);
        ck_assert_uint_lt(n, 200);
    }
    free(bk);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("sparse");
    TCase *tc = tcase_create("sparse");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_keep_lists);
    tcase_add_test(tc, test_qk_matches_reference);
    tcase_add_test(tc, test_qk_random_sizes);
    tcase_add_test(tc, test_qk_null_keeps_is_dense);
    tcase_add_test(tc, test_qk_errors);
    tcase_add_test(tc, test_hash_matches_reference);
    tcase_add_test(tc, test_hash_single_bucket_is_dense);
    tcase_add_test(tc, test_hash_backward_regression);
    tcase_add_test(tc, test_hash_correlated_layouts);
    tcase_add_test(tc, test_hash_random_sizes);
    tcase_add_test(tc, test_hash_errors);
    tcase_add_test(tc, test_lsh_properties);
    tcase_add_test(tc, test_lsh_basis_consistency);
    tcase_add_test(tc, test_lsh_errors);
    tcase_add_test(tc, test_block_window);
    tcase_add_test(tc, test_block_global);
    tcase_add_test(tc, test_block_dense_and_predicate);
    tcase_add_test(tc, test_block_errors);
    tcase_add_test(tc, test_workspace_strides_determinism);
    tcase_add_test(tc, test_threads_and_split_units);
    tcase_add_test(tc, test_empty_and_tiny);
    tcase_add_test(tc, test_allocation_failures);
    tcase_add_test(tc, test_window_pattern_plan);
    tcase_add_test(tc, test_index_shared);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
