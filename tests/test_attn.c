/* Attention: the flash engine (every ISA's kernels) against the fp64 reference under the
 * "2x naive fp32" rule, on the small and odd sizes; GQA, strided and transposed views; rows
 * with no key; huge logits; the decode split; the kernels against the ref kernels; the unfused
 * baseline; every rejected input. The big sizes (1000, 4097) are in test_attn_slow.c. */
#include <stdint.h>
#include "attn_testutil.h"
#include "kernels/kernels.h"

#define ALIGNED __attribute__((aligned(64)))

static const size_t dims[] = {16, 32, 64, 80, 128, 256};
/* The fast grid; test_attn_slow.c runs every length of the must-hold list. */
static const size_t small_lens[] = {1, 7, 64, 65};

/* Every (N, M) among the small lengths, causal or not, for one head dimension. */
START_TEST(test_grid_small)
{
    size_t D = dims[_i];
    size_t nl = sizeof small_lens / sizeof small_lens[0];
    if (tu_quick())
        nl = 2;
    for (size_t a = 0; a < nl; a++)
        for (size_t b = 0; b < nl; b++)
            for (int causal = 0; causal < 2; causal++) {
                kat_attn_desc d = {1, 2, 0, small_lens[a], small_lens[b], D, causal, 0, 0};
                at_check(&d, LAYOUT_CONTIGUOUS, 1000 + 10 * a + b, 1);
            }
}
END_TEST

/* Larger, tile-crossing sizes: N or M = 1000 against small partners. */
START_TEST(test_medium)
{
    /* under valgrind 301 for 1000: still several tiles each way, with tails */
    const size_t big = tu_quick() ? 301 : 1000;
    const size_t cases[][3] = {{big, 65, 64}, {7, big, 80}, {200, 300, 64}, {130, 97, 128}};
    size_t nc = tu_quick() ? 2 : sizeof cases / sizeof cases[0];
    for (size_t i = 0; i < nc; i++)
        for (int causal = 0; causal < 2; causal++) {
            kat_attn_desc d = {1, 1, 0, cases[i][0], cases[i][1], cases[i][2], causal, 0, 0};
            at_check(&d, LAYOUT_CONTIGUOUS, 7 + i, 1);
        }
}
END_TEST

/* Head dimensions that are not a multiple of the vector width (masked tails, odd chunks). */
START_TEST(test_odd_dims)
{
    const size_t odd[] = {1, 3, 17, 200, 255};
    const size_t M = tu_quick() ? 30 : 70;   /* valgrind: every D, fewer keys */
    for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++) {
        kat_attn_desc d = {1, 1, 0, 50, M, odd[i], (int)(i % 2), 0, 0};
        at_check(&d, LAYOUT_CONTIGUOUS, 30 + i, 1);
    }
}
END_TEST

/* Grouped-query attention, including the stacked tiles of small N and multi-query. */
START_TEST(test_gqa)
{
    const int q = tu_quick();   /* valgrind: the first case smaller, still two tiles each way */
    const kat_attn_desc cases[] = {
        {2, 4, 2, q ? 60 : 100, q ? 100 : 150, 64, 1, 0, 0},   /* GQA, causal */
        {1, 6, 3, 5, 200, 32, 0, 0, 0},     /* small N: the group's heads share tiles */
        {1, 6, 3, 5, 200, 32, 1, 0, 0},
        {1, 8, 1, 1, 300, 80, 1, 0, 0},     /* multi-query decoding */
        {1, 8, 2, 20, 20, 16, 1, 0, 0},     /* stacked tiles straddling heads, causal */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        at_check(&cases[i], LAYOUT_CONTIGUOUS, 50 + i, 1);
}
END_TEST

/* Strided and transposed views of q, k, v, o, lse and the gradients. */
START_TEST(test_layouts)
{
    const int q = tu_quick();   /* valgrind: smaller, still two tiles each way with tails */
    for (int layout = 1; layout < LAYOUT_COUNT; layout++)
        for (int causal = 0; causal < 2; causal++) {
            kat_attn_desc d = {2, 3, 0, q ? 50 : 65, q ? 100 : 130, 80, causal, 0, 0};
            at_check(&d, layout, 70 + layout, 1);
            kat_attn_desc g = {1, 4, 2, 49, 33, 16, causal, 0.3, 0};
            at_check(&g, layout, 80 + layout, 1);
        }
}
END_TEST

/* Few query tiles, many keys: the forward splits the keys across threads and merges; with one
 * key/value head group the backward splits them too. Also with one thread. */
START_TEST(test_decode_split)
{
    /* Under valgrind M = 700: eight key tiles, the fewest that still split the forward, and
     * enough work (B H N M D > 2^22) for the third case to run in parallel. */
    const int q = tu_quick();
    const kat_attn_desc cases[] = {
        {1, 1, 0, 1, q ? 700 : 3000, 64, 0, 0, 0},
        {1, 1, 0, 3, q ? 700 : 2000, 128, 1, 0, 0},
        {1, 2, 1, 50, q ? 700 : 1100, 64, 1, 0, 0},
        {1, 1, 0, 60, q ? 700 : 1000, 32, 0, 0, 0},
    };
    for (int threads = 2; threads >= 1; threads--) {
        kat_set_num_threads(threads);
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
            at_check(&cases[i], LAYOUT_CONTIGUOUS, 90 + i, 1);
    }
    kat_set_num_threads(0);
}
END_TEST

/* Causal with N > M: the first N - M rows see no key: o = 0, lse = -inf, dq = 0 exactly. And
 * M = 0: no row sees a key. */
START_TEST(test_rows_without_keys)
{
    for (int a = 0; a < KAT_ARCH_COUNT; a++) {
        if (!kat_arch_supported((kat_arch)a))
            continue;
        kat_arch saved = kat_arch_get();
        TU_OK(kat_arch_set((kat_arch)a));
        for (size_t M = 0; M <= 3; M += 3) {
            kat_attn_desc d = {1, 2, 0, 10, M, 16, 1, 0, 0};
            at_case c;
            at_case_init(&c, &d, LAYOUT_CONTIGUOUS, 5, 1.0, 1);
            kat_attn_plan *plan;
            TU_OK(kat_attn_plan_create(&c.d, NULL, &plan));
            TU_OK(kat_attn_forward(plan, NULL, &c.q, &c.k, &c.v, &c.o, &c.lse, NULL));
            TU_OK(kat_attn_backward(plan, NULL, &c.q, &c.k, &c.v, &c.o, &c.lse, &c.dout, &c.dq, &c.dk,
                                    &c.dv, NULL));
            for (size_t h = 0; h < 2; h++)
                for (size_t n = 0; n < 10; n++) {
                    int empty = n < 10 - M;
                    float L = *kat_tensor_row(&c.lse, 0, h, n);
                    ck_assert_msg(empty ? (isinf(L) && L < 0) : isfinite(L), "lse[%zu] = %g", n,
                                  (double)L);
                    for (size_t e = 0; e < 16; e++) {
                        float ov = kat_tensor_row(&c.o, 0, h, n)[e];
                        float gq = kat_tensor_row(&c.dq, 0, h, n)[e];
                        ck_assert(isfinite(ov) && isfinite(gq));
                        if (empty)
                            ck_assert(ov == 0.0f && gq == 0.0f);
                    }
                }
            at_check_isa(&c, (kat_arch)a, 1);
            kat_attn_plan_destroy(plan);
            at_case_free(&c);
        }
        TU_OK(kat_arch_set(saved));
    }
}
END_TEST

/* Logits up to |s| ~ 1e4 stay finite and within the 2x rule. */
START_TEST(test_huge_logits)
{
    for (int causal = 0; causal < 2; causal++) {
        kat_attn_desc d = {1, 1, 0, 70, 150, 64, causal, 0, 0};
        at_case c;
        at_case_init(&c, &d, LAYOUT_CONTIGUOUS, 11, 2500.0, 1);   /* logit spread 2500 */
        double mx = 0;
        for (size_t i = 0; i < 70; i++)
            mx = fmax(mx, fabs(c.rlse[i]));
        ck_assert_msg(mx > 5000.0, "logits too small for the test (%g)", mx);
        for (int a = 0; a < KAT_ARCH_COUNT; a++)
            if (kat_arch_supported((kat_arch)a)) {
                at_check_isa(&c, (kat_arch)a, 1);
                for (size_t n = 0; n < 70; n++)
                    for (size_t e = 0; e < 64; e++)
                        ck_assert(isfinite(kat_tensor_row(&c.o, 0, 0, n)[e]) &&
                                  isfinite(kat_tensor_row(&c.dq, 0, 0, n)[e]));
            }
        at_case_free(&c);
    }
}
END_TEST

/* Same inputs, same plan: the same bits; a caller's workspace gives the same bits as none. */
START_TEST(test_deterministic_and_workspace)
{
    /* valgrind: smaller, still above 2^22 multiply-adds, so the threads run */
    kat_attn_desc d = {1, 3, 0, tu_quick() ? 100 : 150, tu_quick() ? 250 : 400, 64, 1, 0, 0};
    at_case c;
    at_case_init(&c, &d, LAYOUT_CONTIGUOUS, 3, 1.0, 1);
    kat_attn_plan *plan;
    TU_OK(kat_attn_plan_create(&c.d, NULL, &plan));
    size_t n = 3 * d.N * 64, nk = 3 * d.M * 64;
    float *o1 = malloc(n * 4), *dq1 = malloc(n * 4), *dk1 = malloc(nk * 4);
    TU_OK(kat_attn_forward(plan, NULL, &c.q, &c.k, &c.v, &c.o, &c.lse, NULL));
    TU_OK(kat_attn_backward(plan, NULL, &c.q, &c.k, &c.v, &c.o, &c.lse, &c.dout, &c.dq, &c.dk, &c.dv,
                            NULL));
    memcpy(o1, c.o.data, n * 4), memcpy(dq1, c.dq.data, n * 4), memcpy(dk1, c.dk.data, nk * 4);
    size_t wf = kat_attn_workspace_size(plan, KAT_ATTN_FORWARD);
    size_t wb = kat_attn_workspace_size(plan, KAT_ATTN_BACKWARD);
    ck_assert_uint_gt(wf, 0);
    ck_assert_uint_gt(wb, 0);
    void *work = kat_malloc(wf > wb ? wf : wb);
    TU_OK(kat_attn_forward(plan, NULL, &c.q, &c.k, &c.v, &c.o, &c.lse, work));
    TU_OK(kat_attn_backward(plan, NULL, &c.q, &c.k, &c.v, &c.o, &c.lse, &c.dout, &c.dq, &c.dk, &c.dv,
                            work));
    ck_assert(memcmp(o1, c.o.data, n * 4) == 0);
    ck_assert(memcmp(dq1, c.dq.data, n * 4) == 0);
    ck_assert(memcmp(dk1, c.dk.data, nk * 4) == 0);
    /* A misaligned workspace is refused and o is left alone. */
    memset(c.o.data, 0, n * 4);
    TU_EXPECT_ERR(kat_attn_forward(plan, NULL, &c.q, &c.k, &c.v, &c.o, &c.lse, (char *)work + 4),
                  KAT_EINVAL, "64-byte aligned");
    ck_assert(c.o.data[0] == 0.0f);
    kat_free(work);
    free(o1), free(dq1), free(dk1);
    /* Accessors. */
    ck_assert_uint_eq(kat_attn_plan_desc(plan)->H_kv, 3);
    ck_assert(fabs(kat_attn_plan_desc(plan)->scale - 0.125) < 1e-15);
    ck_assert_int_ge(kat_attn_plan_threads(plan), 1);
    ck_assert_str_eq(kat_attn_plan_isa(plan), kat_arch_name());
    ck_assert_ptr_null(kat_attn_plan_desc(NULL));
    ck_assert_uint_eq(kat_attn_workspace_size(NULL, KAT_ATTN_FORWARD), 0);
    kat_attn_plan_destroy(plan);
    kat_attn_plan_destroy(NULL);
    at_case_free(&c);
}
END_TEST

/* The one-shot forms and the unfused baseline agree with the reference (the unfused one, with
 * sgemm's blocked accumulation orders, within twice the flash tolerance). */
static void fill_errors(at_case *c, double *err, const kat_tensor *dq, const kat_tensor *dk,
                        const kat_tensor *dv, int slot)
{
    err[AT_O] = at_err(&c->o, c->ro);
    err[AT_LSE] = at_err(&c->lse, c->rlse);
    err[slot] = at_err(dq, c->rdq);
    err[slot + 1] = at_err(dk, c->rdk);
    err[slot + 2] = at_err(dv, c->rdv);
}

START_TEST(test_one_shot_and_unfused)
{
    for (int causal = 0; causal < 2; causal++) {
        kat_attn_desc d = {2, 4, 2, 70, 90, 48, causal, 0.2, 0};
        at_case c;
        at_case_init(&c, &d, LAYOUT_BNHD, 21, 1.0, 1);
        double err[AT_NOUT], tol[AT_NOUT];
        at_tolerances(c.naive, c.mag, c.lse_max, tol);
        TU_OK(kat_attn_dense_forward(&c.q, &c.k, &c.v, &c.o, &c.lse, causal, 0.2));
        TU_OK(kat_attn_dense_backward(&c.q, &c.k, &c.v, &c.o, &c.lse, &c.dout, &c.dq, &c.dk,
                                      &c.dv, causal, 0.2));
        fill_errors(&c, err, &c.dq, &c.dk, &c.dv, AT_DQ_LSE);
        TU_OK(kat_attn_dense_backward(&c.q, &c.k, &c.v, &c.o, NULL, &c.dout, &c.dq, &c.dk,
                                      &c.dv, causal, 0.2));
        fill_errors(&c, err, &c.dq, &c.dk, &c.dv, AT_DQ);
        at_assert(err, tol, 1, "one-shot", &c.d, c.layout, 1);
        for (int i = 0; i < AT_NOUT; i++)
            tol[i] *= 2;
        TU_OK(kat_attn_unfused_forward(&c.d, &c.q, &c.k, &c.v, &c.o, &c.lse));
        TU_OK(kat_attn_unfused_backward(&c.d, &c.q, &c.k, &c.v, &c.o, &c.dout, &c.dq, &c.dk,
                                        &c.dv));
        fill_errors(&c, err, &c.dq, &c.dk, &c.dv, AT_DQ);
        fill_errors(&c, err, &c.dq, &c.dk, &c.dv, AT_DQ_LSE);
        at_assert(err, tol, 1, "unfused", &c.d, c.layout, 1);
        at_case_free(&c);
    }
    /* Causal with N > M through the unfused path: empty rows are 0 and -inf. */
    kat_attn_desc d = {1, 1, 0, 9, 4, 8, 1, 0, 0};
    at_case c;
    at_case_init(&c, &d, LAYOUT_CONTIGUOUS, 2, 1.0, 1);
    double err[AT_NOUT], tol[AT_NOUT];
    at_tolerances(c.naive, c.mag, c.lse_max, tol);
    for (int i = 0; i < AT_NOUT; i++)
        tol[i] *= 2;
    TU_OK(kat_attn_unfused_forward(&c.d, &c.q, &c.k, &c.v, &c.o, &c.lse));
    ck_assert(isinf(c.lse.data[0]) && c.o.data[0] == 0.0f);
    TU_OK(kat_attn_unfused_backward(&c.d, &c.q, &c.k, &c.v, &c.o, &c.dout, &c.dq, &c.dk, &c.dv));
    fill_errors(&c, err, &c.dq, &c.dk, &c.dv, AT_DQ);
    fill_errors(&c, err, &c.dq, &c.dk, &c.dv, AT_DQ_LSE);
    at_assert(err, tol, 1, "unfused", &c.d, c.layout, 1);
    at_case_free(&c);
}
END_TEST

/* Empty problems are fine and touch nothing. */
START_TEST(test_empty)
{
    float buf[4] = {1, 2, 3, 4};
    kat_tensor e = kat_tensor_view(NULL, 0, 2, 5, 8);
    kat_tensor o = kat_tensor_view(NULL, 0, 2, 5, 8), l = kat_tensor_view(NULL, 0, 2, 5, 1);
    TU_OK(kat_attn_dense_forward(&e, &e, &e, &o, &l, 1, 0));
    kat_tensor q0 = kat_tensor_view(NULL, 1, 1, 0, 4), k1 = kat_tensor_view(buf, 1, 1, 1, 4);
    kat_tensor o0 = kat_tensor_view(NULL, 1, 1, 0, 4);
    float g[4];
    kat_tensor dk = kat_tensor_view(g, 1, 1, 1, 4), dv = kat_tensor_view(g, 1, 1, 1, 4);
    TU_OK(kat_attn_dense_forward(&q0, &k1, &k1, &o0, NULL, 0, 0));
    /* N = 0: dk and dv are zero (dv overlapping dk is refused, so use two buffers). */
    float g2[4] = {9, 9, 9, 9};
    dv.data = g2;
    kat_tensor l0 = kat_tensor_view(NULL, 1, 1, 0, 1);
    TU_OK(kat_attn_dense_backward(&q0, &k1, &k1, &o0, &l0, &o0, &o0, &dk, &dv, 0, 0));
    for (int i = 0; i < 4; i++)
        ck_assert(g[i] == 0.0f && g2[i] == 0.0f);
    ck_assert(buf[0] == 1.0f);
}
END_TEST

/* Bad input: each a clear error naming the argument, the caller's buffers unchanged. */
START_TEST(test_bad_input)
{
    kat_attn_desc d = {1, 2, 0, 9, 11, 16, 0, 0, 0};
    at_case c;
    at_case_init(&c, &d, LAYOUT_CONTIGUOUS, 4, 1.0, 1);
    kat_attn_plan *plan;
    TU_OK(kat_attn_plan_create(&c.d, NULL, &plan));
    TU_OK(kat_attn_forward(plan, NULL, &c.q, &c.k, &c.v, &c.o, &c.lse, NULL));
    size_t no = 2 * 9 * 16;
    float *o_saved = malloc(no * 4), *dq_saved = malloc(no * 4);
    memcpy(o_saved, c.o.data, no * 4);
    for (size_t i = 0; i < no; i++)
        c.dq.data[i] = 7.0f;
    memcpy(dq_saved, c.dq.data, no * 4);
#define FWD(p, ...) kat_attn_forward(p, NULL, __VA_ARGS__, NULL)
#define UNCHANGED()                                                                        \
    do {                                                                                   \
        ck_assert(memcmp(o_saved, c.o.data, no * 4) == 0);                                 \
        ck_assert(memcmp(dq_saved, c.dq.data, no * 4) == 0);                               \
    } while (0)
    /* desc */
    kat_attn_desc bad = d;
    bad.D = 0;
    kat_attn_plan *p2 = (kat_attn_plan *)0x1;
    TU_EXPECT_ERR(kat_attn_plan_create(&bad, NULL, &p2), KAT_EINVAL, "D = 0");
    ck_assert_ptr_eq(p2, (kat_attn_plan *)0x1);
    bad.D = 257;
    TU_EXPECT_ERR(kat_attn_plan_create(&bad, NULL, &p2), KAT_EINVAL, "D = 257");
    bad = d, bad.H = 3, bad.H_kv = 2;
    TU_EXPECT_ERR(kat_attn_plan_create(&bad, NULL, &p2), KAT_EINVAL, "multiple of H_kv");
    bad = d, bad.H_kv = 4;
    TU_EXPECT_ERR(kat_attn_plan_create(&bad, NULL, &p2), KAT_EINVAL, "H_kv = 4");
    bad = d, bad.scale = NAN;
    TU_EXPECT_ERR(kat_attn_plan_create(&bad, NULL, &p2), KAT_EDOM, "scale");
    bad = d, bad.N = (size_t)1 << 31;
    TU_EXPECT_ERR(kat_attn_plan_create(&bad, NULL, &p2), KAT_ERANGE, "N = ");
    bad = d, bad.B = SIZE_MAX / 4;
    TU_EXPECT_ERR(kat_attn_plan_create(&bad, NULL, &p2), KAT_ERANGE, "overflows");
    TU_EXPECT_ERR(kat_attn_plan_create(NULL, NULL, &p2), KAT_EINVAL, "desc");
    TU_EXPECT_ERR(kat_attn_plan_create(&d, NULL, NULL), KAT_EINVAL, "out");
    /* NULL arguments */
    TU_EXPECT_ERR(FWD(NULL, &c.q, &c.k, &c.v, &c.o, &c.lse), KAT_EINVAL, "plan");
    TU_EXPECT_ERR(FWD(plan, NULL, &c.k, &c.v, &c.o, &c.lse), KAT_EINVAL, "q is NULL");
    TU_EXPECT_ERR(FWD(plan, &c.q, NULL, &c.v, &c.o, &c.lse), KAT_EINVAL, "k is NULL");
    TU_EXPECT_ERR(FWD(plan, &c.q, &c.k, NULL, &c.o, &c.lse), KAT_EINVAL, "v is NULL");
    TU_EXPECT_ERR(FWD(plan, &c.q, &c.k, &c.v, NULL, &c.lse), KAT_EINVAL, "o is NULL");
    kat_tensor t = c.q;
    t.data = NULL;
    TU_EXPECT_ERR(FWD(plan, &t, &c.k, &c.v, &c.o, &c.lse), KAT_EINVAL, "q: data is NULL");
    /* mismatched shapes */
    t = c.k, t.N = 10;
    TU_EXPECT_ERR(FWD(plan, &c.q, &t, &c.v, &c.o, &c.lse), KAT_EINVAL, "k: shape");
    t = c.v, t.D = 8;
    TU_EXPECT_ERR(FWD(plan, &c.q, &c.k, &t, &c.o, &c.lse), KAT_EINVAL, "v: shape");
    t = c.o, t.H = 1;
    TU_EXPECT_ERR(FWD(plan, &c.q, &c.k, &c.v, &t, &c.lse), KAT_EINVAL, "o: shape");
    t = c.lse, t.D = 2;
    TU_EXPECT_ERR(FWD(plan, &c.q, &c.k, &c.v, &c.o, &t), KAT_EINVAL, "lse: shape");
    t = c.q, t.sn = 3;
    TU_EXPECT_ERR(FWD(plan, &t, &c.k, &c.v, &c.o, &c.lse), KAT_EINVAL, "row stride");
    /* outputs overlapping inputs or each other */
    t = c.o, t.data = c.q.data;
    TU_EXPECT_ERR(FWD(plan, &c.q, &c.k, &c.v, &t, &c.lse), KAT_EINVAL, "o overlaps the input q");
    t = c.lse, t.data = c.o.data + 5;
    TU_EXPECT_ERR(FWD(plan, &c.q, &c.k, &c.v, &c.o, &t), KAT_EINVAL, "overlaps the output");
    /* NaN and Inf */
    float keep = c.q.data[17];
    c.q.data[17] = NAN;
    TU_EXPECT_ERR(FWD(plan, &c.q, &c.k, &c.v, &c.o, &c.lse), KAT_EDOM, "q: element [0, 0, 1, 1]");
    c.q.data[17] = keep;
    keep = c.v.data[3];
    c.v.data[3] = -INFINITY;
    TU_EXPECT_ERR(FWD(plan, &c.q, &c.k, &c.v, &c.o, &c.lse), KAT_EDOM, "v: element");
    c.v.data[3] = keep;
    keep = c.k.data[40];
    c.k.data[40] = INFINITY;
    TU_EXPECT_ERR(kat_attn_unfused_forward(&c.d, &c.q, &c.k, &c.v, &c.o, &c.lse), KAT_EDOM,
                  "k: element");
    TU_EXPECT_ERR(kat_attn_reference_forward(&c.d, &c.q, &c.k, &c.v, c.ro, NULL), KAT_EDOM,
                  "k: element");
    c.k.data[40] = keep;
    UNCHANGED();
    /* backward */
#define BWD(...) kat_attn_backward(plan, NULL, __VA_ARGS__, NULL)
    TU_EXPECT_ERR(BWD(&c.q, &c.k, &c.v, NULL, &c.lse, &c.dout, &c.dq, &c.dk, &c.dv), KAT_EINVAL,
                  "o is NULL");
    TU_EXPECT_ERR(BWD(&c.q, &c.k, &c.v, &c.o, &c.lse, NULL, &c.dq, &c.dk, &c.dv), KAT_EINVAL,
                  "dout is NULL");
    TU_EXPECT_ERR(BWD(&c.q, &c.k, &c.v, &c.o, &c.lse, &c.dout, &c.dq, &c.dk, NULL), KAT_EINVAL,
                  "dv is NULL");
    t = c.dk, t.data = c.dq.data;
    TU_EXPECT_ERR(BWD(&c.q, &c.k, &c.v, &c.o, &c.lse, &c.dout, &c.dq, &t, &c.dv), KAT_EINVAL,
                  "overlaps the output dk");
    t = c.dv, t.data = c.k.data;
    TU_EXPECT_ERR(BWD(&c.q, &c.k, &c.v, &c.o, &c.lse, &c.dout, &c.dq, &c.dk, &t), KAT_EINVAL,
                  "dv overlaps the input k");
    t = c.dq, t.data = c.o.data;
    TU_EXPECT_ERR(BWD(&c.q, &c.k, &c.v, &c.o, &c.lse, &c.dout, &t, &c.dk, &c.dv), KAT_EINVAL,
                  "dq overlaps the input o");
    keep = c.dout.data[2];
    c.dout.data[2] = NAN;
    TU_EXPECT_ERR(BWD(&c.q, &c.k, &c.v, &c.o, &c.lse, &c.dout, &c.dq, &c.dk, &c.dv), KAT_EDOM,
                  "dout: element");
    c.dout.data[2] = keep;
    keep = c.lse.data[1];
    c.lse.data[1] = INFINITY;
    TU_EXPECT_ERR(BWD(&c.q, &c.k, &c.v, &c.o, &c.lse, &c.dout, &c.dq, &c.dk, &c.dv), KAT_EDOM,
                  "lse: element");
    c.lse.data[1] = NAN;
    TU_EXPECT_ERR(BWD(&c.q, &c.k, &c.v, &c.o, &c.lse, &c.dout, &c.dq, &c.dk, &c.dv), KAT_EDOM,
                  "lse: element");
    c.lse.data[1] = keep;
    keep = c.o.data[0];
    c.o.data[0] = NAN;
    TU_EXPECT_ERR(BWD(&c.q, &c.k, &c.v, &c.o, &c.lse, &c.dout, &c.dq, &c.dk, &c.dv), KAT_EDOM,
                  "o: element");
    c.o.data[0] = keep;
    UNCHANGED();
    /* reference and unfused entry points */
    TU_EXPECT_ERR(kat_attn_reference_forward(NULL, &c.q, &c.k, &c.v, c.ro, NULL), KAT_EINVAL,
                  "desc");
    TU_EXPECT_ERR(kat_attn_reference_forward(&c.d, &c.q, &c.k, &c.v, NULL, NULL), KAT_EINVAL,
                  "o is NULL");
    TU_EXPECT_ERR(kat_attn_reference_backward(&c.d, &c.q, &c.k, &c.v, &c.dout, NULL, c.rdk,
                                              c.rdv), KAT_EINVAL, "dq");
    TU_EXPECT_ERR(kat_attn_unfused_backward(&c.d, &c.q, &c.k, &c.v, NULL, &c.dout, &c.dq, &c.dk,
                                            &c.dv), KAT_EINVAL, "o is NULL");
    /* desc from views */
    kat_attn_desc out;
    TU_EXPECT_ERR(kat_attn_desc_from_views(NULL, &c.k, 0, 0, &out), KAT_EINVAL, "q is NULL");
    t = c.k, t.D = 3;
    TU_EXPECT_ERR(kat_attn_desc_from_views(&c.q, &t, 0, 0, &out), KAT_EINVAL, "k: shape");
    TU_OK(kat_attn_desc_from_views(&c.q, &c.k, 1, 0, &out));
    ck_assert(out.B == 1 && out.H == 2 && out.H_kv == 2 && out.N == 9 && out.M == 11 &&
              out.D == 16 && out.causal == 1 && out.scale == 0.25);
    UNCHANGED();
    free(o_saved), free(dq_saved);
    kat_attn_plan_destroy(plan);
    at_case_free(&c);
#undef FWD
#undef BWD
#undef UNCHANGED
}
END_TEST

/* An allocation failure at any point is reported, leaves the outputs untouched and leaks
 * nothing (ASan checks leaks). */
static int same_floats(const kat_tensor *t, const float *snap)
{
    size_t n = t->B * t->H * t->N * t->D;
    return memcmp(t->data, snap, n * sizeof(float)) == 0;
}

START_TEST(test_alloc_failures)
{
    kat_attn_desc d = {1, 2, 1, 30, 40, 16, 1, 0, 0};
    at_case c;
    at_case_init(&c, &d, LAYOUT_CONTIGUOUS, 6, 1.0, 1);
    kat_attn_plan *plan;
    TU_OK(kat_attn_plan_create(&c.d, NULL, &plan));
    TU_OK(kat_attn_forward(plan, NULL, &c.q, &c.k, &c.v, &c.o, &c.lse, NULL));
    const kat_tensor *outs[] = {&c.o, &c.lse, &c.dq, &c.dk, &c.dv};
    float *snap[5];
    for (int i = 0; i < 5; i++) {
        size_t n = outs[i]->B * outs[i]->H * outs[i]->N * outs[i]->D;
        snap[i] = malloc(n * sizeof(float));
    }
    for (int call = 0; call < 7; call++)
        for (size_t n = 1; n <= 6; n++) {
            for (size_t i = 2; i < 5; i++)   /* sentinel gradients */
                for (size_t e = 0; e < outs[i]->B * outs[i]->H * outs[i]->N * outs[i]->D; e++)
                    outs[i]->data[e] = 99.0f;
            for (int i = 0; i < 5; i++)
                memcpy(snap[i], outs[i]->data,
                       outs[i]->B * outs[i]->H * outs[i]->N * outs[i]->D * sizeof(float));
            kat_attn_plan *p2 = NULL;
            kat_status st = KAT_OK;
            kat_debug_fail_alloc_at(n);
            switch (call) {
            case 0: st = kat_attn_plan_create(&c.d, NULL, &p2); break;
            case 1: st = kat_attn_forward(plan, NULL, &c.q, &c.k, &c.v, &c.o, &c.lse, NULL); break;
            case 2:
                st = kat_attn_backward(plan, NULL, &c.q, &c.k, &c.v, &c.o, &c.lse, &c.dout, &c.dq, &c.dk,
                                       &c.dv, NULL);
                break;
            case 3:
                st = kat_attn_backward(plan, NULL, &c.q, &c.k, &c.v, &c.o, NULL, &c.dout, &c.dq, &c.dk,
                                       &c.dv, NULL);
                break;
            case 4: st = kat_attn_unfused_forward(&c.d, &c.q, &c.k, &c.v, &c.o, &c.lse); break;
            case 5:
                st = kat_attn_unfused_backward(&c.d, &c.q, &c.k, &c.v, &c.o, &c.dout, &c.dq, &c.dk,
                                               &c.dv);
                break;
            default:
                st = kat_attn_dense_forward(&c.q, &c.k, &c.v, &c.o, &c.lse, 1, 0);
                break;
            }
            kat_debug_fail_alloc_at(0);
            ck_assert_msg(st == KAT_ENOMEM || st == KAT_OK, "call %d, failure %zu: %s", call, n,
                          kat_strerror(st));
            if (st == KAT_ENOMEM) {
                ck_assert_ptr_nonnull(strstr(kat_last_error(), "allocat"));
                ck_assert_ptr_null(p2);
                for (int i = 0; i < 5; i++)
                    ck_assert_msg(same_floats(outs[i], snap[i]),
                                  "call %d, failure %zu: output %d changed", call, n, i);
            }
            kat_attn_plan_destroy(p2);
        }
    for (int i = 0; i < 5; i++)
        free(snap[i]);
    kat_attn_plan_destroy(plan);
    at_case_free(&c);
}
END_TEST

/* ---- kernels against the ref kernels ------------------------------------------------------ */

static float *aligned_floats(size_t n)
{
    float *p = kat_malloc(n * sizeof(float));
    ck_assert_ptr_nonnull(p);
    return p;
}

/* |x - y| <= bound for kernel outputs computed in different fp32 orders: the bound is
 * 2 * terms * eps * sum|products| (a fp32 dot product's worst-case error, twice). */
static void expect_close(const float *x, const float *y, const float *absdot, size_t n,
                         size_t terms, const char *what, const char *isa)
{
    for (size_t i = 0; i < n; i++) {
        double bound = 2.0 * (double)terms * FLT_EPSILON * absdot[i] + FLT_MIN;
        ck_assert_msg(fabs((double)x[i] - y[i]) <= bound, "%s %s [%zu]: %g vs ref %g", isa,
                      what, i, (double)x[i], (double)y[i]);
    }
}

START_TEST(test_kernels_match_ref)
{
    const kat_kernels *ref = kat__kernels_for(KAT_ARCH_REF);
    const kat_kernels *kern = kat__kernels_for((kat_arch)_i);
    if (!kern || kern == ref)
        return;
    enum { L = KAT_KERN_LANES };
    kat_rng *rng;
    TU_OK(kat_rng_create(77, &rng));
    const size_t Ds[] = {1, 15, 16, 17, 64, 80, 129, 256};
    const size_t rows[] = {1, 5, 8, 13, 96};
    for (size_t di = 0; di < sizeof Ds / sizeof Ds[0]; di++)
        for (size_t ri = 0; ri < sizeof rows / sizeof rows[0]; ri++)
            for (size_t lanes = 16; lanes <= L; lanes += 16) {
                /* valgrind: D = 64 and 256 add no tail case (the engine tests run D = 256) */
                if (tu_quick() && (Ds[di] == 64 || Ds[di] == 256))
                    continue;
                size_t D = Ds[di], R = rows[ri], ldc = (D + 15) / 16 * 16;
                float *x = aligned_floats(R * (D + 3)), *yt = aligned_floats(D * L);
                float *s1 = aligned_floats(96 * L), *s2 = aligned_floats(96 * L);
                float *ab = aligned_floats(96 * L);
                const float *xr[96];
                for (size_t i = 0; i < R * (D + 3); i++)
                    x[i] = (float)kat_rng_gaussian(rng, 1);
                for (size_t i = 0; i < D * L; i++)
                    yt[i] = (float)kat_rng_gaussian(rng, 1);
                for (size_t j = 0; j < R; j++)
                    xr[j] = x + j * (D + 3);
                /* scores */
                kern->scores(R, xr, D, yt, lanes, s1);
                ref->scores(R, xr, D, yt, lanes, s2);
                for (size_t j = 0; j < R; j++)
                    for (size_t i = 0; i < lanes; i++) {
                        float a = 0;
                        for (size_t e = 0; e < D; e++)
                            a += fabsf(xr[j][e] * yt[e * L + i]);
                        ab[j * L + i] = a;
                    }
                for (size_t j = 0; j < R; j++)
                    expect_close(s1 + j * L, s2 + j * L, ab + j * L, lanes, D, "scores",
                                 kern->name);
                /* row dots: the scores' arithmetic on pairs of rows */
                kern->rowdot(R, D, xr, xr, s1);
                ref->rowdot(R, D, xr, xr, s2);
                for (size_t j = 0; j < R; j++)
                    ab[j] = s2[j];   /* x.x: every product is positive */
                expect_close(s1, s2, ab, R, D, "rowdot", kern->name);
                /* row-pair dots X X^T (R x R, ld 96), full and lower triangle; the lower
                 * call must leave the sentinel above the diagonal or write the dot there */
                for (int lower = 0; lower < 2; lower++) {
                    float *g1 = aligned_floats(96 * 96), *g2 = aligned_floats(96 * 96);
                    for (size_t i = 0; i < 96 * 96; i++)
                        g1[i] = g2[i] = -7.0f;
                    kern->dots(R, R, D, x, D + 3, x, D + 3, g1, 96, lower);
                    ref->dots(R, R, D, x, D + 3, x, D + 3, g2, 96, lower);
                    for (size_t i = 0; i < R; i++)
                        for (size_t j = 0; j < R; j++) {
                            double a = 0;
                            for (size_t e = 0; e < D; e++)
                                a += fabs((double)xr[i][e] * xr[j][e]);
                            ab[j] = (float)a;
                            if (lower && j > i)
                                ck_assert_msg(g1[i * 96 + j] == -7.0f ||
                                                  fabs((double)g1[i * 96 + j] - g2[j * 96 + i]) <=
                                                      2.0 * D * FLT_EPSILON * a + FLT_MIN,
                                              "%s dots above the diagonal [%zu][%zu]: %g",
                                              kern->name, i, j, (double)g1[i * 96 + j]);
                        }
                    for (size_t i = 0; i < R; i++) {
                        for (size_t j = 0; j < R; j++) {
                            double a = 0;
                            for (size_t e = 0; e < D; e++)
                                a += fabs((double)xr[i][e] * xr[j][e]);
                            ab[j] = (float)a;
                        }
                        size_t upto = lower ? i + 1 : R;
                        expect_close(g1 + i * 96, g2 + i * 96, ab, upto, D, "dots", kern->name);
                    }
                    for (size_t i = 0; i < 96 * 96; i++)   /* nothing outside R x R */
                        if (i / 96 >= R || i % 96 >= R)
                            ck_assert_msg(g1[i] == -7.0f, "%s dots wrote [%zu]", kern->name, i);
                    kat_free(g1);
                    kat_free(g2);
                }
                /* accum, both stride modes and a generic one, with and without beta */
                const size_t modes[3][2] = {{1, L}, {L, 1}, {2, 2 * L}};
                for (int m = 0; m < 3; m++) {
                    size_t wr = modes[m][0], wt = modes[m][1], T = R;
                    size_t CR = m == 1 ? R : (lanes < R ? lanes : R);
                    float *w = aligned_floats(4 * 96 * L), beta[96];
                    float *c1 = aligned_floats(96 * ldc), *c2 = aligned_floats(96 * ldc);
                    float *cb = aligned_floats(96 * ldc);
                    for (size_t i = 0; i < 4 * 96 * L; i++)
                        w[i] = (float)kat_rng_uniform(rng);
                    for (size_t i = 0; i < 96; i++)
                        beta[i] = (float)kat_rng_uniform(rng);
                    for (size_t i = 0; i < 96 * ldc; i++)
                        c1[i] = c2[i] = (float)kat_rng_gaussian(rng, 1);
                    for (int use_beta = 0; use_beta < 2; use_beta++) {
                        kern->accum(CR, T, w, wr, wt, xr, D, c1, ldc, use_beta ? beta : NULL);
                        ref->accum(CR, T, w, wr, wt, xr, D, c2, ldc, use_beta ? beta : NULL);
                        for (size_t r = 0; r < CR; r++)
                            for (size_t e = 0; e < D; e++) {
                                float a = fabsf(c2[r * ldc + e]);
                                for (size_t t = 0; t < T; t++)
                                    a += fabsf(w[r * wr + t * wt] * xr[t][e]);
                                cb[r * ldc + e] = a;
                            }
                        for (size_t r = 0; r < CR; r++)
                            expect_close(c1 + r * ldc, c2 + r * ldc, cb + r * ldc, D, T + 2,
                                         "accum", kern->name);
                    }
                    kat_free(w), kat_free(c1), kat_free(c2), kat_free(cb);
                }
                kat_free(x), kat_free(yt), kat_free(s1), kat_free(s2), kat_free(ab);
            }
    kat_rng_destroy(rng);
}
END_TEST

/* The softmax tiles and masks against the ref kernels (including -inf rows and lanes). */
START_TEST(test_softmax_kernels_match_ref)
{
    const kat_kernels *ref = kat__kernels_for(KAT_ARCH_REF);
    const kat_kernels *kern = kat__kernels_for((kat_arch)_i);
    if (!kern || kern == ref)
        return;
    enum { L = KAT_KERN_LANES, R = 37 };
    kat_rng *rng;
    TU_OK(kat_rng_create(78, &rng));
    float *s1 = aligned_floats(R * L), *s2 = aligned_floats(R * L);
    float *dp1 = aligned_floats(R * L), *dp2 = aligned_floats(R * L);
    /* The lane arrays are 64-byte aligned, as the kernels require. */
    float m1[L] ALIGNED, m2[L] ALIGNED, l1[L] ALIGNED, l2[L] ALIGNED, a1[L] ALIGNED,
        a2[L] ALIGNED, aux[L] ALIGNED;
    int32_t kpos[R], qlim[L];
    uint64_t bits[R];
    for (size_t j = 0; j < R; j++) {
        kpos[j] = (int32_t)(j * 2);
        bits[j] = ((uint64_t)kat_rng_uint(rng, UINT32_MAX) << 32) | kat_rng_uint(rng, UINT32_MAX);
    }
    for (size_t i = 0; i < L; i++) {
        qlim[i] = (int32_t)i - 5;   /* lanes 0..4 see no key */
        m1[i] = m2[i] = i % 3 ? (float)kat_rng_gaussian(rng, 3) : -INFINITY;
        l1[i] = l2[i] = m1[i] == -INFINITY ? 0.0f : (float)kat_rng_uniform(rng) + 1;
        aux[i] = (float)kat_rng_gaussian(rng, 2);
    }
    for (size_t lanes = 16; lanes <= L; lanes += 16) {
        for (size_t i = 0; i < R * L; i++)
            s1[i] = s2[i] = (float)kat_rng_gaussian(rng, 4);
        kern->mask_causal(R, lanes, s1, kpos, qlim);
        ref->mask_causal(R, lanes, s2, kpos, qlim);
        kern->mask_bits(R, lanes, s1, bits);
        ref->mask_bits(R, lanes, s2, bits);
        ck_assert(memcmp(s1, s2, R * L * sizeof(float)) == 0);
        memcpy(dp1, s1, R * L * sizeof(float));   /* the masked scores, kept */
        float mm1[L] ALIGNED, mm2[L] ALIGNED, ll1[L] ALIGNED, ll2[L] ALIGNED;
        memcpy(mm1, m1, sizeof mm1), memcpy(mm2, m2, sizeof mm2);
        memcpy(ll1, l1, sizeof ll1), memcpy(ll2, l2, sizeof ll2);
        kern->softmax_online(R, lanes, s1, mm1, ll1, a1, 0.7f, 1e-8f);
        ref->softmax_online(R, lanes, s2, mm2, ll2, a2, 0.7f, 1e-8f);
        for (size_t i = 0; i < lanes; i++) {
            ck_assert(mm1[i] == mm2[i] || (isinf(mm1[i]) && isinf(mm2[i])));
            ck_assert_msg(fabsf(ll1[i] - ll2[i]) <= 4 * (R + 2) * FLT_EPSILON * ll2[i],
                          "%s: l[%zu] %g vs %g", kern->name, i, (double)ll1[i], (double)ll2[i]);
            /* The kernels round d = s - max in float (the ref does not): eps |c d| more. */
            float mu = isinf(mm2[i]) ? 0.0f : mm2[i];
            float da = isinf(m1[i]) ? 0.0f : 0.7f * fabsf(m1[i] - mu);
            ck_assert_msg(fabsf(a1[i] - a2[i]) <= (2 + da) * FLT_EPSILON * a2[i],
                          "%s: alpha[%zu] %g vs %g", kern->name, i, (double)a1[i], (double)a2[i]);
            for (size_t j = 0; j < R; j++) {
                float ds = isinf(dp1[j * L + i]) ? 0.0f : 0.7f * fabsf(dp1[j * L + i] - mu);
                ck_assert_msg(fabsf(s1[j * L + i] - s2[j * L + i]) <=
                                  (2 + ds) * FLT_EPSILON * s2[j * L + i],
                              "%s: p[%zu][%zu] %g vs %g", kern->name, j, i,
                              (double)s1[j * L + i], (double)s2[j * L + i]);
            }
            if (i < 5)
                ck_assert(ll1[i] == l1[i] * a1[i] && isfinite(a1[i]));
        }
        /* probabilities against a logsumexp, +inf giving exact zeros */
        for (size_t i = 0; i < R * L; i++)
            s1[i] = s2[i] = dp1[i] = (float)kat_rng_gaussian(rng, 4);   /* dp1: a copy */
        float lse2[2 * L] ALIGNED;
        for (size_t i = 0; i < L; i++) {
            lse2[i] = i % 7 ? aux[i] + 6 : INFINITY;
            lse2[L + i] = i % 7 ? 1e-7f * aux[i] : 0.0f;
        }
        kern->softmax_probs(R, lanes, s1, lse2, 0.7f, 1e-8f);
        ref->softmax_probs(R, lanes, s2, lse2, 0.7f, 1e-8f);
        for (size_t j = 0; j < R; j++)
            for (size_t i = 0; i < lanes; i++) {
                /* both exp2 (1.4 ulp together) and the kernel's rounding of the exponent
                 * c s - lse2, eps |c s - lse2| */
                float arg = fabsf(0.7f * dp1[j * L + i] - lse2[i]);
                ck_assert_msg(s1[j * L + i] == s2[j * L + i] ||
                                  fabsf(s1[j * L + i] - s2[j * L + i]) <=
                                      (2 + arg) * FLT_EPSILON * s2[j * L + i],
                              "%s probs [%zu][%zu]: %g vs %g", kern->name, j, i,
                              (double)s1[j * L + i], (double)s2[j * L + i]);
                if (i % 7 == 0)
                    ck_assert(s1[j * L + i] == 0.0f);
            }
        for (size_t i = 0; i < R * L; i++)
            dp1[i] = dp2[i] = (float)kat_rng_gaussian(rng, 1);
        kern->softmax_grad(R, lanes, s2, dp1, aux);
        ref->softmax_grad(R, lanes, s2, dp2, aux);
        ck_assert(memcmp(dp1, dp2, R * L * sizeof(float)) == 0);
    }
    kat_free(s1), kat_free(s2), kat_free(dp1), kat_free(dp2);
    kat_rng_destroy(rng);
}
END_TEST


/* The library's attention oracle: with no element mask it is kat_attn_reference_* (fp64, the
 * causal rule of the desc); values with their own head dimension D_v give the first D_v
 * columns of o and dv of the full problem (a strided view of v and dout); the naive fp32
 * yardstick stays near the reference; the error model is the documented formula. */
START_TEST(test_oracle)
{
    kat_attn_desc desc = {2, 4, 2, 37, 53, 24, 1, 0, 0};
    at_case c;
    at_case_init(&c, &desc, 0, 91, 1.0, 1);
    const kat_attn_desc *d = &c.d;
    size_t nq = d->B * d->H * d->N, nk = d->B * d->H_kv * d->M, D = d->D;
    double *a = malloc((2 * (nq * D * 2 + nq + nk * D * 2) + 8) * sizeof(double));
    double *o1 = a, *l1 = o1 + nq * D, *q1 = l1 + nq, *k1 = q1 + nq * D, *v1 = k1 + nk * D;
    double *o2 = v1 + nk * D, *l2 = o2 + nq * D, *q2 = l2 + nq, *k2 = q2 + nq * D,
           *v2 = k2 + nk * D;
    TU_OK(kat_attn_reference_masked(d, NULL, 64, &c.q, &c.k, &c.v, &c.dout, o1, l1, q1, k1, v1));
    TU_OK(kat_attn_reference_forward(d, &c.q, &c.k, &c.v, o2, l2));
    TU_OK(kat_attn_reference_backward(d, &c.q, &c.k, &c.v, &c.dout, q2, k2, v2));
    double e = 0, m = 0;
    for (size_t i = 0; i < nq * D; i++)
        e = fmax(e, fmax(fabs(o1[i] - o2[i]), fabs(q1[i] - q2[i]))), m = fmax(m, fabs(o2[i]));
    for (size_t i = 0; i < nk * D; i++)
        e = fmax(e, fmax(fabs(k1[i] - k2[i]), fabs(v1[i] - v2[i])));
    for (size_t i = 0; i < nq; i++)
        ck_assert(l1[i] == l2[i] || fabs(l1[i] - l2[i]) <= 1e-12 * fabs(l2[i]));
    ck_assert_msg(e <= 1e-12 * (1 + m), "oracle vs reference: %g", e);
    /* D_v = 5: v and dout as views of their first 5 columns */
    kat_attn_desc dv5 = *d;
    dv5.Dv = 5;
    kat_tensor v5 = c.v, do5 = c.dout;
    v5.D = 5, do5.D = 5;
    TU_OK(kat_attn_reference_masked(&dv5, NULL, 64, &c.q, &c.k, &v5, NULL, o2, l2, NULL, NULL,
                                    NULL));
    TU_OK(kat_attn_reference_masked(d, NULL, 64, &c.q, &c.k, &c.v, NULL, o1, l1, NULL, NULL,
                                    NULL));
    for (size_t r = 0; r < nq; r++) {
        ck_assert(l1[r] == l2[r]);
        for (size_t j = 0; j < 5; j++)
            ck_assert(o2[r * 5 + j] == o1[r * D + j]);
    }
    TU_OK(kat_attn_reference_masked(&dv5, NULL, 64, &c.q, &c.k, &v5, &do5, o2, l2, q2, k2, v2));
    TU_EXPECT_ERR(kat_attn_reference_masked(&dv5, NULL, 64, &c.q, &c.k, &c.v, NULL, o2, NULL,
                                            NULL, NULL, NULL),
                  KAT_EINVAL, "v: shape");
    TU_EXPECT_ERR(kat_attn_reference_masked(d, NULL, 16, &c.q, &c.k, &c.v, NULL, o2, NULL, NULL,
                                            NULL, NULL),
                  KAT_EINVAL, "precision = 16");
    /* naive fp32: close to the reference, not equal */
    TU_OK(kat_attn_reference_masked(d, NULL, 32, &c.q, &c.k, &c.v, NULL, o2, l2, NULL, NULL,
                                    NULL));
    e = 0;
    for (size_t i = 0; i < nq * D; i++)
        e = fmax(e, fabs(o1[i] - o2[i]));
    ck_assert_msg(e > 0 && e < 1e-5, "naive fp32 error %g", e);
    ck_assert(kat_attn_error_bound(1e-7, 2.0, 3.0, 1e-8) == 2e-7 + 2.0 * (3.0 * 0x1p-24 + 2e-8));
    free(a);
    at_case_free(&c);
}
END_TEST


/* Values with their own head dimension through the flash tiles: the dense solver and a
 * sparse one (window, strict causality) against the oracle's fp64 masked reference, within the
 * error model (2x the oracle's naive fp32 + floor); D_v both below and above D, GQA, N and M
 * off the tile grid. */
static double dv_err(const float *x, const double *ref, size_t n)
{
    double e = 0;
    for (size_t i = 0; i < n; i++) {
        double d = isinf(ref[i]) && (double)x[i] == ref[i] ? 0 : fabs((double)x[i] - ref[i]);
        e = d > e || isnan(d) ? d : e;
    }
    return e;
}

static double dv_maxabs(const double *x, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++)
        m = isfinite(x[i]) ? fmax(m, fabs(x[i])) : m;
    return m;
}

START_TEST(test_value_dim)
{
    const size_t dvs[2] = {13, 40};
    for (int t = 0; t < 4; t++) {
        size_t B = 1, H = 4, Hkv = 2, N = 45, M = 71, D = 24, Dv = dvs[t % 2];
        int sparse = t >= 2;
        kat_attn_desc d = {B, H, Hkv, N, M, D, sparse ? 2 : 1, 0, Dv};
        size_t nq = B * H * N, nk = B * Hkv * M;
        kat_rng *rng;
        TU_OK(kat_rng_create(300 + t, &rng));
        float *f = malloc((nq * (D + 3 * Dv + D + 1) + nk * (2 * D + 2 * Dv)) * sizeof(float));
        float *q = f, *dout = q + nq * D, *o = dout + nq * Dv, *lse = o + nq * Dv;
        float *dq = lse + nq, *k = dq + nq * D, *v = k + nk * D, *dk = v + nk * Dv;
        float *dvv = dk + nk * D;
        for (size_t i = 0; i < nq * D; i++)
            q[i] = (float)kat_rng_gaussian(rng, 1.0);
        for (size_t i = 0; i < nk * D; i++)
            k[i] = (float)kat_rng_gaussian(rng, 1.0);
        for (size_t i = 0; i < nk * Dv; i++)
            v[i] = (float)kat_rng_gaussian(rng, 1.0);
        for (size_t i = 0; i < nq * Dv; i++)
            dout[i] = (float)kat_rng_gaussian(rng, 1.0);
        kat_rng_destroy(rng);
        kat_tensor tq = kat_tensor_view(q, B, H, N, D), tk = kat_tensor_view(k, B, Hkv, M, D);
        kat_tensor tv = kat_tensor_view(v, B, Hkv, M, Dv), tdo = kat_tensor_view(dout, B, H, N, Dv);
        kat_tensor to = kat_tensor_view(o, B, H, N, Dv), tl = kat_tensor_view(lse, B, H, N, 1);
        kat_tensor tdq = kat_tensor_view(dq, B, H, N, D), tdk = kat_tensor_view(dk, B, Hkv, M, D);
        kat_tensor tdv = kat_tensor_view(dvv, B, Hkv, M, Dv);
        kat_attn_pattern pat = {.kind = KAT_ATTN_WINDOW, .window = 20, .global = 3};
        uint8_t *allowed = malloc(nq * M);
        for (size_t r = 0; r < nq; r++)
            for (size_t j = 0; j < M; j++) {
                size_t i = r % N;
                int64_t ip = (int64_t)i + (int64_t)M - (int64_t)N;
                int in = sparse ? ((int64_t)j < ip && (j < 3 || ip - (int64_t)j < 20))
                                : (int64_t)j <= ip;
                allowed[r * M + j] = (uint8_t)in;
            }
        kat_attn_plan *plan;
        TU_OK(kat_attn_plan_create(&d, sparse ? &pat : NULL, &plan));
        ck_assert_str_eq(kat_attn_plan_solver(plan), sparse ? "window" : "flash");
        TU_OK(kat_attn_forward(plan, NULL, &tq, &tk, &tv, &to, &tl, NULL));
        TU_OK(kat_attn_backward(plan, NULL, &tq, &tk, &tv, &to, &tl, &tdo, &tdq, &tdk, &tdv,
                                NULL));
        kat_attn_plan_destroy(plan);
        size_t nr = 2 * (nq * Dv + nq + nq * D + nk * D + nk * Dv);
        double *r = malloc(nr * sizeof(double));
        double *ro = r, *rl = ro + nq * Dv, *rq = rl + nq, *rk = rq + nq * D, *rv = rk + nk * D;
        double *no = rv + nk * Dv, *nl = no + nq * Dv, *nqd = nl + nq, *nkd = nqd + nq * D,
               *nvd = nkd + nk * D;
        TU_OK(kat_attn_reference_masked(&d, allowed, 64, &tq, &tk, &tv, &tdo, ro, rl, rq, rk, rv));
        TU_OK(kat_attn_reference_masked(&d, allowed, 32, &tq, &tk, &tv, &tdo, no, nl, nqd, nkd,
                                        nvd));
        /* the naive errors, from its doubles (floats exactly) */
        float *nf = malloc((nq * Dv + nq * D + nk * D + nk * Dv) * sizeof(float));
        const double *ns[4] = {no, nqd, nkd, nvd}, *rs[4] = {ro, rq, rk, rv};
        const float *got[4] = {o, dq, dk, dvv};
        size_t len[4] = {nq * Dv, nq * D, nk * D, nk * Dv};
        const char *names[4] = {"o", "dq", "dk", "dv"};
        for (int i = 0; i < 4; i++) {
            for (size_t x = 0; x < len[i]; x++)
                nf[x] = (float)ns[i][x];
            double naive = dv_err(nf, rs[i], len[i]), err = dv_err(got[i], rs[i], len[i]);
            double mag = dv_maxabs(rs[i], len[i]) + 4.0;
            double tol = kat_attn_error_bound(naive, mag, (double)(M + D + Dv), 0.0);
            ck_assert_msg(err <= tol, "%s D_v = %zu %s: error %.3g > %.3g (naive %.3g)",
                          sparse ? "window" : "flash", Dv, names[i], err, tol, naive);
        }
        free(nf), free(r), free(allowed), free(f);
    }
}
END_TEST

int main(void)
{
    at_pair_target = 8192;
    at_max_instances = tu_quick() ? 2 : 4;   /* valgrind: error maxima over 2 instances */

    Suite *s = suite_create("attn");
    TCase *grid = tcase_create("grid"), *cases = tcase_create("cases");
    TCase *kernels = tcase_create("kernels"), *api = tcase_create("api");
    tcase_add_loop_test(grid, test_grid_small, 0, (int)(sizeof dims / sizeof dims[0]));
    tcase_add_test(cases, test_medium);
    tcase_add_test(cases, test_odd_dims);
    tcase_add_test(cases, test_gqa);
    tcase_add_test(cases, test_layouts);
    tcase_add_test(cases, test_decode_split);
    tcase_add_test(cases, test_rows_without_keys);
    tcase_add_test(cases, test_huge_logits);
    tcase_add_loop_test(kernels, test_kernels_match_ref, 0, KAT_ARCH_COUNT);
    tcase_add_loop_test(kernels, test_softmax_kernels_match_ref, 0, KAT_ARCH_COUNT);
    tcase_add_test(api, test_deterministic_and_workspace);
    tcase_add_test(api, test_one_shot_and_unfused);
    tcase_add_test(api, test_empty);
    tcase_add_test(api, test_bad_input);
    tcase_add_test(api, test_alloc_failures);
    tcase_add_test(api, test_oracle);
    tcase_add_test(api, test_value_dim);
    TCase *all[] = {grid, cases, kernels, api};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        tcase_set_timeout(all[i], 300);
        suite_add_tcase(s, all[i]);
    }
    return tu_run_suite(s);
}
