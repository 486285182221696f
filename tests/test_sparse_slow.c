/* Sparse flash attention, the long checks: many random configurations of every mode at sizes
 * up to a thousand rows (several tiles on both sides, split backward units), on every ISA's
 * kernels and on 1 and 3 threads, each against the fp64 masked reference. */
#include "test_sparse_util.h"

/* A random pattern of mode m on p (fills p->allowed), and its layout. */
static void random_layout(ts_problem *p, kat_rng *rng, int m, sp_handle **L)
{
    size_t B = p->B, H = p->H, Hkv = p->Hkv, N = p->N, M = p->M, g = H / Hkv;
    kat_attn_desc d = {B, H, Hkv, N, M, p->D, p->causal, 0, 0};
    if (m == 0) {   /* QK-drop, per-head drop rates, sometimes a head with nothing */
        uint8_t *qm = malloc(B * H * N + 1), *km = malloc(B * Hkv * M + 1);
        for (size_t hd = 0; hd < B * H; hd++) {
            double drop = kat_rng_uniform(rng);
            for (size_t i = 0; i < N; i++)
                qm[hd * N + i] = kat_rng_uniform(rng) >= drop;
        }
        for (size_t hd = 0; hd < B * Hkv; hd++) {
            double drop = kat_rng_uint(rng, 5) == 0 ? 1.0 : kat_rng_uniform(rng);
            for (size_t j = 0; j < M; j++)
                km[hd * M + j] = kat_rng_uniform(rng) >= drop;
        }
        for (size_t b = 0; b < B; b++)
            for (size_t h = 0; h < H; h++)
                for (size_t i = 0; i < N; i++)
                    for (size_t j = 0; j < M; j++)
                        *ts_allowed(p, b, h, i, j) = qm[(b * H + h) * N + i] &&
                                                     km[(b * Hkv + h / g) * M + j] &&
                                                     ts_causal_ok(p, i, j);
        kat_sparse_keep qk, kk;
        TU_OK(kat_sparse_keep_from_mask(qm, B, H, N, &qk));
        TU_OK(kat_sparse_keep_from_mask(km, B, Hkv, M, &kk));
        TU_OK(sp_qk(&d, &qk, &kk, L));
        kat_sparse_keep_free(&qk), kat_sparse_keep_free(&kk);
        free(qm), free(km);
    } else if (m == 1) {   /* hash: random, or following position, few or many buckets */
        size_t nb = 1 + kat_rng_uint(rng, kat_rng_uint(rng, 2) ? 8 : N + 1);
        int follow = (int)kat_rng_uint(rng, 3);
        int32_t *qb = malloc((B * H * N + 1) * sizeof(int32_t));
        int32_t *kb = malloc((B * Hkv * M + 1) * sizeof(int32_t));
        for (size_t i = 0; i < B * H * N; i++)
            qb[i] = follow == 1 ? (int32_t)((i % N) * nb / N) : (int32_t)kat_rng_uint(rng, nb);
        for (size_t i = 0; i < B * Hkv * M; i++)
            kb[i] = follow ? (int32_t)(nb - 1 - (i % M) * nb / M) : (int32_t)kat_rng_uint(rng, nb);
        for (size_t b = 0; b < B; b++)
            for (size_t h = 0; h < H; h++)
                for (size_t i = 0; i < N; i++)
                    for (size_t j = 0; j < M; j++)
                        *ts_allowed(p, b, h, i, j) = qb[(b * H + h) * N + i] ==
                                                         kb[(b * Hkv + h / g) * M + j] &&
                                                     ts_causal_ok(p, i, j);
        TU_OK(sp_hash(&d, nb, qb, kb, L));
        free(qb), free(kb);
    } else {   /* a sliding window with random block sizes */
        size_t W = 1 + kat_rng_uint(rng, N / 2 + 2), bq = 1 + kat_rng_uint(rng, 100);
        size_t bk = 1 + kat_rng_uint(rng, 200);
        int mc = (int)kat_rng_uint(rng, 2);
        for (size_t b = 0; b < B; b++)
            for (size_t h = 0; h < H; h++)
                for (size_t i = 0; i < N; i++)
                    for (size_t j = 0; j < M; j++) {
                        int64_t dd = (int64_t)i + (int64_t)M - (int64_t)N - (int64_t)j;
                        int in = dd < (int64_t)W && dd > -(int64_t)W && (!mc || dd >= 0);
                        *ts_allowed(p, b, h, i, j) = in && ts_causal_ok(p, i, j);
                    }
        kat_sparse_blockmask *bm;
        TU_OK(kat_sparse_blockmask_sliding_window(N, M, W, mc, bq, bk, &bm));
        TU_OK(sp_block(&d, bm, L));
        kat_sparse_blockmask_destroy(bm);
    }
}

START_TEST(test_random_configurations)
{
    kat_rng *rng;
    kat_rng_create(4242, &rng);
    size_t trials = tu_quick() ? 6 : 60;
    for (size_t t = 0; t < trials; t++) {
        size_t Hkv = 1 + kat_rng_uint(rng, 2), g = 1 + kat_rng_uint(rng, 2);
        size_t N = 1 + kat_rng_uint(rng, tu_quick() ? 300 : 1000);
        size_t M = kat_rng_uint(rng, 3) ? N : 1 + kat_rng_uint(rng, tu_quick() ? 300 : 1000);
        ts_problem p;
        ts_problem_init(&p, 1 + kat_rng_uint(rng, 2), Hkv * g, Hkv, N, M,
                        1 + kat_rng_uint(rng, 64), (int)kat_rng_uint(rng, 3), 5000 + t);
        int threads = kat_rng_uint(rng, 2) ? 1 : 3;
        kat_set_num_threads(threads);
        sp_handle *L;
        random_layout(&p, rng, (int)(t % 3), &L);
        ts_check_layout(&p, L);
        sp_handle_destroy(L);
        ts_problem_free(&p);
    }
    kat_set_num_threads(0);
    kat_rng_destroy(rng);
}
END_TEST

/* Every ISA's kernels run the same layouts (the layout fixes the kernels at creation). */
START_TEST(test_every_isa)
{
    kat_arch saved = kat_arch_get();
    for (int a = 0; a < KAT_ARCH_COUNT; a++) {
        if (!kat_arch_supported((kat_arch)a))
            continue;
        TU_OK(kat_arch_set((kat_arch)a));
        kat_rng *rng;
        kat_rng_create(77 + (uint64_t)a, &rng);
        for (int m = 0; m < 3; m++) {
            ts_problem p;
            ts_problem_init(&p, 1, 2, 1, 333, 333, 40, 1, 600 + (uint64_t)(a * 3 + m));
            sp_handle *L;
            random_layout(&p, rng, m, &L);
            ts_check_layout(&p, L);
            sp_handle_destroy(L);
            ts_problem_free(&p);
        }
        kat_rng_destroy(rng);
    }
    TU_OK(kat_arch_set(saved));
}
END_TEST

int main(void)
{
    /* One case per test: meson runs each as its own test. */
    const tu_case cases[] = {
        {"random_configurations", test_random_configurations},
        {"every_isa", test_every_isa},
    };
    Suite *s = tu_suite_per_case("sparse_slow", 1200, cases, sizeof cases / sizeof cases[0]);
    return tu_run_suite(s);
}
