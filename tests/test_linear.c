/* Linear attention: the chunked engine against the fp64 quadratic reference, an fp32
 * token-by-token recurrence and a naive fp32 quadratic attention; decoding from a prefill
 * state; the backward against the reference gradient and finite differences; the elu+1 and
 * per-token normalisation maps; every rejected input. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "test_linear_util.h"
#include "kat/featmaps.h"
#include "kat/group.h"

/* The design's error rule: the engine's relative error against fp64 is no worse than twice
 * that of a naive fp32 implementation, plus one fp32 rounding of the output. */
static void assert_within_rule(double err, double naive_err, const char *what)
{
    if (getenv("TL_VERBOSE"))
        fprintf(stderr, "%s: err %.3g naive %.3g\n", what, err, naive_err);
    ck_assert_msg(err <= kat_attn_error_bound(naive_err, 1.0, 2.0, 0.0),
                  "%s: relative error %.3g exceeds 2 x naive fp32 (%.3g) + 2 eps", what, err,
                  naive_err);
}

typedef struct {
    size_t B, H, nq, nk, d, dv;
    kat_tensor q, k, v, o, naive, s0;
    double *ref;
} problem;

static problem make_problem(size_t B, size_t H, size_t nq, size_t nk, size_t d, size_t dv,
                            size_t D, uint64_t seed, double sigma, int with_state)
{
    problem p = {.B = B, .H = H, .nq = nq, .nk = nk, .d = d, .dv = dv};
    kat_rng *rng;
    TU_OK(kat_rng_create(seed, &rng));
    p.q = tl_tensor(B, H, nq, d);
    p.k = tl_tensor(B, H, nk, d);
    p.v = tl_tensor(B, H, nk, dv);
    p.o = tl_tensor(B, H, nq, dv);
    p.naive = tl_tensor(B, H, nq, dv);
    tl_fill(&p.q, rng, sigma, 0.0);
    tl_fill(&p.k, rng, sigma, 0.0);
    tl_fill(&p.v, rng, 1.0, 0.0);
    p.s0 = tl_tensor(B, H, with_state ? D : 0, dv + 1);
    if (with_state) {
        /* a plausible state: the keys of a random prefix of 20 tokens, built by the engine's
         * definition S = sum psi(k) [v | 1]^T with positive psi (|N(0,1)| entries) */
        for (size_t b = 0; b < B; b++)
            for (size_t h = 0; h < H; h++)
                for (size_t r = 0; r < D; r++) {
                    float *row = kat_tensor_row(&p.s0, b, h, r);
                    double z = 0.0;
                    for (int t = 0; t < 20; t++) {
                        double psi = fabs(kat_rng_gaussian(rng, 1.0)) / (double)D;
                        for (size_t c = 0; c < dv; c++)
                            row[c] += (float)(psi * kat_rng_gaussian(rng, 1.0));
                        z += psi;
                    }
                    row[dv] = (float)z;
                }
    }
    p.ref = tl_dalloc(B * H * nq * dv);
    kat_rng_destroy(rng);
    return p;
}

static void free_problem(problem *p)
{
    tl_free(&p->q);
    tl_free(&p->k);
    tl_free(&p->v);
    tl_free(&p->o);
    tl_free(&p->naive);
    tl_free(&p->s0);
    free(p->ref);
}

/* ---- forward ------------------------------------------------------------------------- */

START_TEST(test_noncausal_matches_reference)
{
    kat_featmap *maps[2] = {NULL, tl_poly2(4)};
    TU_OK(kat_featmap_elu1_create(8, &maps[0]));
    size_t ds[2] = {8, 4};
    for (int m = 0; m < 2; m++) {
        size_t D = kat_featmap_out_dim(maps[m]);
        problem p = make_problem(2, 3, 37, 53, ds[m], 5, D, 11 + m, 0.5, 0);
        kat_linear_opts opts = {.chunk = 16};
        TU_OK(kat_linear_forward(maps[m], &opts, &p.q, &p.k, &p.v, &p.o, NULL, NULL));
        TU_OK(kat_linear_reference(maps[m], &opts, 0, 64, &p.q, &p.k, &p.v, NULL, p.ref));
        tl_naive_f32(maps[m], 0, 1, &p.q, &p.k, &p.v, &p.naive);
        assert_within_rule(tl_rel_err(&p.o, p.ref), tl_rel_err(&p.naive, p.ref), "non-causal");
        free_problem(&p);
        kat_featmap_destroy(maps[m]);
    }
}
END_TEST

/* The reference in fp32 (precision 32, the naive yardstick) holds floats, is off the fp64
 * reference by the roundings of a plain fp32 sum, and another precision is refused. */
START_TEST(test_reference_precision)
{
    kat_featmap *fm;
    TU_OK(kat_featmap_elu1_create(6, &fm));
    problem p = make_problem(2, 2, 40, 40, 6, 5, 6, 17, 0.8, 1);
    double *r32 = tl_dalloc(2 * 2 * 40 * 5);
    for (int causal = 0; causal < 2; causal++) {
        kat_linear_opts opts = {.causal = causal};
        TU_OK(kat_linear_reference(fm, &opts, 0, 64, &p.q, &p.k, &p.v, &p.s0, p.ref));
        TU_OK(kat_linear_reference(fm, &opts, 0, 32, &p.q, &p.k, &p.v, &p.s0, r32));
        for (size_t i = 0; i < 2 * 2 * 40 * 5; i++)
            ck_assert(r32[i] == (double)(float)r32[i]);
        double err = tl_rel_err64(r32, p.ref, 2 * 2 * 40 * 5);
        ck_assert_msg(err > 0.0 && err < 40.0 * 6 * EPS32, "causal %d: fp32 error %.3g", causal,
                      err);
    }
    kat_linear_opts opts = {0};
    TU_EXPECT_ERR(kat_linear_reference(fm, &opts, 0, 16, &p.q, &p.k, &p.v, NULL, r32),
                  KAT_EINVAL, "linear_reference: precision = 16: 64 (the reference) or 32 (naive fp32)");
    free(r32);
    free_problem(&p);
    kat_featmap_destroy(fm);
}
END_TEST

/* Causal, N around the chunk size, with and without an initial state, with every ISA's
 * readout and in-chunk kernels: chunked engine = token-by-token recurrence = fp64 quadratic
 * reference. */
START_TEST(test_causal_chunks_recurrence_reference)
{
    const size_t Ns[] = {1, 2, 15, 16, 17, 31, 33, 64, 65};
    kat_featmap *maps[2] = {NULL, tl_poly2(3)};
    TU_OK(kat_featmap_elu1_create(6, &maps[0]));
    size_t ds[2] = {6, 3};
    kat_arch saved = kat_arch_get();
    for (int am = 0; am < 2 * KAT_ARCH_COUNT; am++)   /* every ISA x both maps */
        for (size_t ni = 0; ni < sizeof Ns / sizeof Ns[0]; ni++)
            for (int with_state = 0; with_state < 2; with_state++) {
                int a = am / 2, m = am % 2;
                if (!kat_arch_supported((kat_arch)a))
                    continue;
                size_t N = Ns[ni], D = kat_featmap_out_dim(maps[m]);
                TU_OK(kat_arch_set((kat_arch)a));
                problem p = make_problem(2, 2, N, N, ds[m], 4, D, 100 + N, 0.6, with_state);
                const kat_tensor *s0 = with_state ? &p.s0 : NULL;
                kat_linear_opts opts = {.causal = 1, .chunk = 16};
                TU_OK(kat_linear_forward(maps[m], &opts, &p.q, &p.k, &p.v, &p.o, s0, NULL));
                TU_OK(kat_linear_reference(maps[m], &opts, 0, 64, &p.q, &p.k, &p.v, s0, p.ref));
                tl_recurrence_f32(maps[m], 1, &p.q, &p.k, &p.v, &p.naive, s0, NULL);
                double err = tl_rel_err(&p.o, p.ref), rec = tl_rel_err(&p.naive, p.ref);
                ck_assert_msg(err <= kat_attn_error_bound(rec, 1.0, 2.0, 0.0),
                              "%s map %d N %zu state %d: chunked %.3g vs recurrence %.3g",
                              kat_arch_name(), m, N, with_state, err, rec);
                free_problem(&p);
            }
    TU_OK(kat_arch_set(saved));
    kat_featmap_destroy(maps[0]);
    kat_featmap_destroy(maps[1]);
}
END_TEST

/* The exact in-chunk scores by score() and by the features agree (EXACT map). */
START_TEST(test_intra_score_equals_features)
{
    kat_featmap *fm = tl_poly2(5);
    problem p = make_problem(1, 2, 50, 50, 5, 3, kat_featmap_out_dim(fm), 7, 0.5, 0);
    kat_tensor o2 = tl_tensor(1, 2, 50, 3);
    kat_linear_opts a = {.causal = 1, .chunk = 24, .intra = KAT_LINEAR_INTRA_SCORE};
    kat_linear_opts b = {.causal = 1, .chunk = 24, .intra = KAT_LINEAR_INTRA_FEATURES};
    TU_OK(kat_linear_forward(fm, &a, &p.q, &p.k, &p.v, &p.o, NULL, NULL));
    TU_OK(kat_linear_forward(fm, &b, &p.q, &p.k, &p.v, &o2, NULL, NULL));
    TU_OK(kat_linear_reference(fm, &a, 1, 64, &p.q, &p.k, &p.v, NULL, p.ref));
    tl_naive_f32(fm, 1, 1, &p.q, &p.k, &p.v, &p.naive);
    double naive = tl_rel_err(&p.naive, p.ref);
    assert_within_rule(tl_rel_err(&p.o, p.ref), naive, "score path");
    assert_within_rule(tl_rel_err(&o2, p.ref), naive, "feature path");
    tl_free(&o2);
    free_problem(&p);
    kat_featmap_destroy(fm);
}
END_TEST

/* The in-chunk scores as d-dimensional dots mapped by the map's kernel of the dot (DOT, what
 * AUTO picks for Taylor maps, also behind per-token normalisation) agree with the feature product and the fp64
 * reference: chunks that divide N and chunks that do not, N = 1, N = 0, with a state. */
START_TEST(test_intra_dot_equals_features)
{
    const size_t d = 7, dv = 5;
    kat_featmap *maps[3], *inner;   /* the unrolled order 2, the general loop, token_norm's t */
    TU_OK(kat_featmap_taylor_create(d, 2, 2.5, &maps[0]));
    TU_OK(kat_featmap_taylor_create(d, 4, 2.0, &maps[1]));
    TU_OK(kat_featmap_taylor_create(d, 2, 1.0, &inner));
    TU_OK(kat_featmap_token_norm_create(inner, 1, 1.0, 0, &maps[2]));
    ck_assert(kat_featmap_get_ops(maps[2])->dot_input_f32 != NULL);
    const size_t Ns[] = {0, 1, 31, 64, 77};
    const size_t chunks[] = {1, 8, 32, 50, 128};
    for (int m = 0; m < 3; m++) {
        size_t D = kat_featmap_out_dim(maps[m]);
        for (size_t a = 0; a < sizeof Ns / sizeof Ns[0]; a++)
            for (size_t c = 0; c < sizeof chunks / sizeof chunks[0]; c++) {
                size_t N = Ns[a];
                problem p = make_problem(1, 2, N, N, d, dv, D, 40 + a, 0.6, a % 2);
                kat_tensor o2 = tl_tensor(1, 2, N, dv);
                const kat_tensor *s0 = a % 2 ? &p.s0 : NULL;
                kat_linear_opts dot = {.causal = 1, .chunk = chunks[c],
                                       .intra = KAT_LINEAR_INTRA_DOT};
                kat_linear_opts auto_ = {.causal = 1, .chunk = chunks[c]};
                kat_linear_opts feat = {.causal = 1, .chunk = chunks[c],
                                        .intra = KAT_LINEAR_INTRA_FEATURES};
                TU_OK(kat_linear_forward(maps[m], &dot, &p.q, &p.k, &p.v, &p.o, s0, NULL));
                TU_OK(kat_linear_forward(maps[m], &auto_, &p.q, &p.k, &p.v, &o2, s0, NULL));
                for (size_t h = 0; h < 2; h++)   /* AUTO is DOT for these maps */
                    for (size_t i = 0; i < N; i++)
                        ck_assert(memcmp(kat_tensor_row(&o2, 0, h, i),
                                         kat_tensor_row(&p.o, 0, h, i), dv * sizeof(float)) == 0);
                TU_OK(kat_linear_forward(maps[m], &feat, &p.q, &p.k, &p.v, &o2, s0, NULL));
                if (N == 0) {
                    tl_free(&o2);
                    free_problem(&p);
                    continue;
                }
                TU_OK(kat_linear_reference(maps[m], &dot, 0, 64, &p.q, &p.k, &p.v, s0, p.ref));
                tl_recurrence_f32(maps[m], 1, &p.q, &p.k, &p.v, &p.naive, s0, NULL);
                double naive = tl_rel_err(&p.naive, p.ref);
                assert_within_rule(tl_rel_err(&p.o, p.ref), naive, "dot path");
                assert_within_rule(tl_rel_err(&o2, p.ref), naive, "feature path");
                tl_free(&o2);
                free_problem(&p);
            }
    }
    /* a map without a kernel of the dot is refused by name */
    kat_featmap *elu;
    TU_OK(kat_featmap_elu1_create(d, &elu));
    problem p = make_problem(1, 1, 4, 4, d, dv, d, 3, 1.0, 0);
    kat_linear_opts dot = {.causal = 1, .intra = KAT_LINEAR_INTRA_DOT};
    TU_EXPECT_ERR(kat_linear_forward(elu, &dot, &p.q, &p.k, &p.v, &p.o, NULL, NULL), KAT_EINVAL,
                  "opts->intra = DOT needs an EXACT map with a dot_kernel_f32 callback; map "
                  "elu1 has no dot_kernel_f32");
    free_problem(&p);
    kat_featmap_destroy(elu);
    for (int m = 0; m < 3; m++)
        kat_featmap_destroy(maps[m]);
}
END_TEST

/* Prefill then one token at a time (N = 1 calls, state_in == state_out) = the full forward. */
START_TEST(test_decode_equals_forward)
{
    const size_t N = 45, P = 19, d = 6, dv = 3;
    kat_featmap *fm;
    TU_OK(kat_featmap_elu1_create(d, &fm));
    size_t D = kat_featmap_out_dim(fm);
    problem p = make_problem(2, 2, N, N, d, dv, D, 5, 0.7, 0);
    kat_linear_opts opts = {.causal = 1, .chunk = 8};
    TU_OK(kat_linear_forward(fm, &opts, &p.q, &p.k, &p.v, &p.o, NULL, NULL));
    kat_tensor st = tl_tensor(2, 2, D, dv + 1), o2 = tl_tensor(2, 2, N, dv);
    kat_tensor qa = tl_rows(&p.q, 0, P), ka = tl_rows(&p.k, 0, P), va = tl_rows(&p.v, 0, P);
    kat_tensor oa = tl_rows(&o2, 0, P);
    TU_OK(kat_linear_forward(fm, &opts, &qa, &ka, &va, &oa, NULL, &st));
    for (size_t t = P; t < N; t++) {
        kat_tensor qt = tl_rows(&p.q, t, 1), kt = tl_rows(&p.k, t, 1), vt = tl_rows(&p.v, t, 1);
        kat_tensor ot = tl_rows(&o2, t, 1);
        TU_OK(kat_linear_forward(fm, &opts, &qt, &kt, &vt, &ot, &st, &st));
    }
    TU_OK(kat_linear_reference(fm, &opts, 0, 64, &p.q, &p.k, &p.v, NULL, p.ref));
    tl_recurrence_f32(fm, 1, &p.q, &p.k, &p.v, &p.naive, NULL, NULL);
    double naive = tl_rel_err(&p.naive, p.ref);
    assert_within_rule(tl_rel_err(&o2, p.ref), naive, "decoded");
    assert_within_rule(tl_rel_err(&p.o, p.ref), naive, "full forward");
    /* and the final state equals the full forward's */
    kat_tensor st_full = tl_tensor(2, 2, D, dv + 1);
    TU_OK(kat_linear_forward(fm, &opts, &p.q, &p.k, &p.v, &p.o, NULL, &st_full));
    for (size_t i = 0; i < 4 * D * (dv + 1); i++)
        ck_assert_msg(fabsf(st.data[i] - st_full.data[i]) <=
                          4.0 * EPS32 * (float)N * (fabsf(st_full.data[i]) + 1.0f),
                      "state entry %zu: %g vs %g", i, st.data[i], st_full.data[i]);
    tl_free(&st);
    tl_free(&st_full);
    tl_free(&o2);
    free_problem(&p);
    kat_featmap_destroy(fm);
}
END_TEST

/* fp64 reference of 1 + x + x^2/2 on per-token normalised q and k, written out here. */
static void taylor2_reference(const kat_tensor *q, const kat_tensor *k, const kat_tensor *v,
                              int causal, double *ref)
{
    size_t d = q->D, dv = v->D;
    double *qn = tl_dalloc(d), *kn = tl_dalloc(k->N * d);
    size_t idx = 0;
    for (size_t b = 0; b < q->B; b++)
        for (size_t h = 0; h < q->H; h++) {
            for (size_t j = 0; j < k->N; j++) {
                const float *kr = kat_tensor_row(k, b, h, j);
                double mean = 0.0, ss = 0.0;
                for (size_t a = 0; a < d; a++)
                    mean += kr[a];
                mean /= (double)d;
                for (size_t a = 0; a < d; a++)
                    ss += (kr[a] - mean) * (kr[a] - mean);
                for (size_t a = 0; a < d; a++)
                    kn[j * d + a] = (kr[a] - mean) / sqrt(ss);
            }
            for (size_t i = 0; i < q->N; i++, idx++) {
                const float *qr = kat_tensor_row(q, b, h, i);
                double mean = 0.0, ss = 0.0, den = 0.0;
                for (size_t a = 0; a < d; a++)
                    mean += qr[a];
                mean /= (double)d;
                for (size_t a = 0; a < d; a++)
                    ss += (qr[a] - mean) * (qr[a] - mean);
                for (size_t a = 0; a < d; a++)
                    qn[a] = (qr[a] - mean) / sqrt(ss);
                double *out = ref + idx * dv;
                memset(out, 0, dv * sizeof(double));
                for (size_t j = 0; j < (causal ? i + 1 : k->N); j++) {
                    double x = 0.0;
                    for (size_t a = 0; a < d; a++)
                        x += qn[a] * kn[j * d + a];
                    double f = 1.0 + x + 0.5 * x * x;
                    for (size_t c = 0; c < dv; c++)
                        out[c] += f * kat_tensor_row(v, b, h, j)[c];
                    den += f;
                }
                for (size_t c = 0; c < dv; c++)
                    out[c] /= den;
            }
        }
    free(qn);
    free(kn);
}

/* Taylor-2 (the exact polynomial map of theory/polynomial.c) behind per-token normalisation,
 * through the engine = quadratic attention with f(x) = 1 + x + x^2/2 on the same normalised q and k. */
START_TEST(test_taylor2_equals_quadratic)
{
    const size_t d = 8, dv = 4;
    kat_featmap *inner, *fm;
    TU_OK(kat_featmap_taylor_create(d, 2, 1.0, &inner));
    TU_OK(kat_featmap_token_norm_create(inner, 1, 1.0, 0, &fm));
    ck_assert(kat_featmap_flags(fm) & KAT_FEATMAP_POSITIVE);
    for (int causal = 0; causal < 2; causal++)
        for (int intra = 1; intra <= 2; intra++) {
            problem p = make_problem(2, 2, 70, 70, d, dv, kat_featmap_out_dim(fm), 21, 1.0, 0);
            kat_linear_opts opts = {.causal = causal, .chunk = 32, .intra = intra};
            TU_OK(kat_linear_forward(fm, &opts, &p.q, &p.k, &p.v, &p.o, NULL, NULL));
            taylor2_reference(&p.q, &p.k, &p.v, causal, p.ref);
            tl_naive_f32(fm, causal, 1, &p.q, &p.k, &p.v, &p.naive);
            assert_within_rule(tl_rel_err(&p.o, p.ref), tl_rel_err(&p.naive, p.ref), "taylor2");
            free_problem(&p);
        }
    kat_featmap_destroy(fm);
}
END_TEST

/* Strided [B, N, H, D] views give the contiguous result bit for bit. */
START_TEST(test_strided_views)
{
    const size_t B = 2, H = 3, N = 29, d = 5, dv = 4;
    kat_featmap *fm;
    TU_OK(kat_featmap_elu1_create(d, &fm));
    problem p = make_problem(B, H, N, N, d, dv, d, 3, 1.0, 0);
    kat_tensor q = tl_tensor_bnhd(B, H, N, d), k = tl_tensor_bnhd(B, H, N, d);
    kat_tensor v = tl_tensor_bnhd(B, H, N, dv), o = tl_tensor_bnhd(B, H, N, dv);
    tl_copy(&q, &p.q);
    tl_copy(&k, &p.k);
    tl_copy(&v, &p.v);
    kat_linear_opts opts = {.causal = 1, .chunk = 8};
    TU_OK(kat_linear_forward(fm, &opts, &p.q, &p.k, &p.v, &p.o, NULL, NULL));
    TU_OK(kat_linear_forward(fm, &opts, &q, &k, &v, &o, NULL, NULL));
    for (size_t b = 0; b < B; b++)
        for (size_t h = 0; h < H; h++)
            for (size_t n = 0; n < N; n++)
                ck_assert(memcmp(kat_tensor_row(&o, b, h, n), kat_tensor_row(&p.o, b, h, n),
                                 dv * sizeof(float)) == 0);
    tl_free(&q);
    tl_free(&k);
    tl_free(&v);
    tl_free(&o);
    free_problem(&p);
    kat_featmap_destroy(fm);
}
END_TEST

/* Fewer (batch, head) pairs than threads: chunks split across threads (causal: each segment
 * rebuilds its prefix state; non-causal: partial key states summed). Same result as one
 * thread up to rounding, and bit-identical across runs with the same thread count. */
START_TEST(test_threads_segments)
{
    /* large enough (> 4e6 flops) for the engine to use its threads; under valgrind just
     * above that (the fp32 naive check is quadratic in N) */
    const size_t N = tu_quick() ? 1003 : 2503, d = 64, dv = 16;
    kat_featmap *fm;
    TU_OK(kat_featmap_elu1_create(d, &fm));
    for (int causal = 0; causal < 2; causal++) {
        problem p = make_problem(1, 1, N, N, d, dv, d, 8, 0.8, 1);
        kat_tensor o2 = tl_tensor(1, 1, N, dv), o3 = tl_tensor(1, 1, N, dv);
        kat_tensor s2 = tl_tensor(1, 1, d, dv + 1), s3 = tl_tensor(1, 1, d, dv + 1);
        kat_linear_opts opts = {.causal = causal, .chunk = 16};
        ck_assert(kat_linear_flops(fm, &opts, 1, 1, N, N, dv) > 4e6);
        kat_set_num_threads(1);
        TU_OK(kat_linear_forward(fm, &opts, &p.q, &p.k, &p.v, &p.o, &p.s0, NULL));
        kat_set_num_threads(2);
        TU_OK(kat_linear_forward(fm, &opts, &p.q, &p.k, &p.v, &o2, &p.s0, &s2));
        TU_OK(kat_linear_forward(fm, &opts, &p.q, &p.k, &p.v, &o3, &p.s0, &s3));
        kat_set_num_threads(0);
        ck_assert(memcmp(o2.data, o3.data, N * dv * sizeof(float)) == 0);
        ck_assert(memcmp(s2.data, s3.data, d * (dv + 1) * sizeof(float)) == 0);
        TU_OK(kat_linear_reference(fm, &opts, 0, 64, &p.q, &p.k, &p.v, &p.s0, p.ref));
        if (causal)
            tl_recurrence_f32(fm, 1, &p.q, &p.k, &p.v, &p.naive, &p.s0, NULL);
        else
            tl_naive_f32(fm, 0, 1, &p.q, &p.k, &p.v, &p.naive);   /* without the state */
        double e1 = tl_rel_err(&p.o, p.ref), e2 = tl_rel_err(&o2, p.ref);
        ck_assert_msg(e2 <= kat_attn_error_bound(e1, 1.0, 2.0, 0.0),
                      "2 threads %.3g vs 1 thread %.3g", e2, e1);
        if (causal)
            assert_within_rule(e2, tl_rel_err(&p.naive, p.ref), "segments");
        /* final state = state_in + every key */
        for (size_t r = 0; r < d; r++) {
            double z = p.s0.data[r * (dv + 1) + dv];
            float psi[64];
            for (size_t t = 0; t < N; t++) {
                TU_OK(kat_featmap_apply_f32(fm, KAT_SIDE_KEY, 1, kat_tensor_row(&p.k, 0, 0, t),
                                            d, psi, d));
                z += psi[r];
            }
            ck_assert_msg(fabs(s2.data[r * (dv + 1) + dv] - z) <= 4.0 * EPS32 * N * z,
                          "z[%zu] = %g, expected %g", r, s2.data[r * (dv + 1) + dv], z);
        }
        tl_free(&o2);
        tl_free(&o3);
        tl_free(&s2);
        tl_free(&s3);
        free_problem(&p);
    }
    kat_featmap_destroy(fm);
}
END_TEST

/* The theory module's maps plug in unchanged: Taylor-1 behind a normalisation that makes it
 * positive, FAVOR+ (positive random features), RFF (signed: un-normalised), an exact
 * polynomial map from an expression, and a group-character map on the cube's corners; forward
 * (causal and not) against the fp64 reference, and the backward where the map has a gradient. */
START_TEST(test_theory_maps)
{
    const size_t d = 4, dv = 3, N = 45;
    kat_featmap *maps[5] = {NULL};
    int unnorm[5] = {0, 0, 1, 0, 0};
    kat_featmap *t1;
    TU_OK(kat_featmap_taylor_create(d, 1, 1.0, &t1));
    TU_OK(kat_featmap_token_norm_create(t1, 1, sqrt(0.5), KAT_FEATMAP_POSITIVE, &maps[0]));
    TU_OK(kat_featmap_favor_create(d, 64, 0.5, KAT_FAVOR_ORTHOGONAL | KAT_FAVOR_STABLE, 3,
                                   &maps[1]));
    TU_OK(kat_featmap_rff_create(KAT_RFF_GAUSSIAN, KAT_RFF_PAIR, d, 32, 1.5, 4, &maps[2]));
    kat_fn *f;
    TU_OK(kat_fn_parse("1 + x/2 + (x/2)^2", &f, NULL));
    TU_OK(kat_featmap_poly_from_fn(f, d, &maps[3]));
    kat_fn_destroy(f);
    TU_OK(kat_fn_parse("exp(-x)", &f, NULL));
    const double a[4] = {1.0, 1.0, 1.0, 1.0};
    TU_OK(kat_group_featmap_create(f, a, d, 0, 0, &maps[4]));
    kat_fn_destroy(f);
    ck_assert(kat_featmap_flags(maps[4]) & KAT_FEATMAP_POSITIVE);
    for (int m = 0; m < 5; m++)
        for (int causal = 0; causal < 2; causal++) {
            size_t D = kat_featmap_out_dim(maps[m]);
            problem p = make_problem(1, 2, N, N, d, dv, D, 70 + m, 0.7, 0);
            if (m == 4)   /* the group map lives on the corners {0, 1}^4 */
                for (size_t i = 0; i < 2 * N * d; i++) {
                    p.q.data[i] = p.q.data[i] > 0.0f ? 1.0f : 0.0f;
                    p.k.data[i] = p.k.data[i] > 0.0f ? 1.0f : 0.0f;
                }
            kat_linear_opts opts = {.causal = causal, .unnormalized = unnorm[m], .chunk = 16};
            TU_OK(kat_linear_forward(maps[m], &opts, &p.q, &p.k, &p.v, &p.o, NULL, NULL));
            TU_OK(kat_linear_reference(maps[m], &opts, 0, 64, &p.q, &p.k, &p.v, NULL, p.ref));
            tl_naive_f32(maps[m], causal, !unnorm[m], &p.q, &p.k, &p.v, &p.naive);
            char what[64];
            snprintf(what, sizeof what, "%s causal %d", kat_featmap_name(maps[m]), causal);
            assert_within_rule(tl_rel_err(&p.o, p.ref), tl_rel_err(&p.naive, p.ref), what);
            if (m == 3 || m == 4) {   /* exact maps: the same as the kernel itself */
                TU_OK(kat_linear_reference(maps[m], &opts, 1, 64, &p.q, &p.k, &p.v, NULL, p.ref));
                assert_within_rule(tl_rel_err(&p.o, p.ref), tl_rel_err(&p.naive, p.ref), what);
            }
            if (kat_featmap_get_ops(maps[m])->vjp) {   /* the reference needs the fp64 vjp */
                kat_tensor d_o = tl_tensor(1, 2, N, dv), dq = tl_tensor(1, 2, N, d);
                kat_tensor dk = tl_tensor(1, 2, N, d), dvt = tl_tensor(1, 2, N, dv);
                kat_rng *rng;
                TU_OK(kat_rng_create(9, &rng));
                tl_fill(&d_o, rng, 1.0, 0.0);
                kat_rng_destroy(rng);
                TU_OK(kat_linear_backward(maps[m], &opts, &p.q, &p.k, &p.v, &p.o, &d_o, &dq, &dk,
                                          &dvt, NULL, NULL));
                double *gq = tl_dalloc(2 * N * d), *gk = tl_dalloc(2 * N * d);
                double *gv = tl_dalloc(2 * N * dv);
                TU_OK(kat_linear_reference_backward(maps[m], &opts, &p.q, &p.k, &p.v, &d_o, gq, gk,
                                                    gv));
                double tol = 8.0 * EPS32 * (double)(N + D);
                ck_assert_msg(tl_rel_err(&dq, gq) <= tol && tl_rel_err(&dk, gk) <= tol &&
                                  tl_rel_err(&dvt, gv) <= tol,
                              "%s: gradients %.3g %.3g %.3g > %.3g", what, tl_rel_err(&dq, gq),
                              tl_rel_err(&dk, gk), tl_rel_err(&dvt, gv), tol);
                free(gq), free(gk), free(gv);
                tl_free(&d_o), tl_free(&dq), tl_free(&dk), tl_free(&dvt);
            }
            free_problem(&p);
        }
    for (int m = 0; m < 5; m++)
        kat_featmap_destroy(maps[m]);
}
END_TEST

/* A map that can be negative: refused normalised, fine un-normalised. */
START_TEST(test_unnormalized_signed_map)
{
    kat_featmap *fm = tl_ident(4);
    problem p = make_problem(1, 2, 30, 30, 4, 3, 4, 9, 1.0, 0);
    kat_linear_opts opts = {.causal = 1, .chunk = 8};
    TU_EXPECT_ERR(kat_linear_forward(fm, &opts, &p.q, &p.k, &p.v, &p.o, NULL, NULL), KAT_EINVAL,
                  "not KAT_FEATMAP_POSITIVE");
    TU_EXPECT_ERR(kat_linear_reference(fm, &opts, 0, 64, &p.q, &p.k, &p.v, NULL, p.ref), KAT_EINVAL,
                  "unnormalized");
    opts.unnormalized = 1;
    TU_OK(kat_linear_forward(fm, &opts, &p.q, &p.k, &p.v, &p.o, NULL, NULL));
    TU_OK(kat_linear_reference(fm, &opts, 0, 64, &p.q, &p.k, &p.v, NULL, p.ref));
    tl_naive_f32(fm, 1, 0, &p.q, &p.k, &p.v, &p.naive);
    assert_within_rule(tl_rel_err(&p.o, p.ref), tl_rel_err(&p.naive, p.ref), "unnormalised");
    free_problem(&p);
    kat_featmap_destroy(fm);
}
END_TEST

START_TEST(test_empty_and_tiny)
{
    kat_featmap *fm;
    TU_OK(kat_featmap_elu1_create(3, &fm));
    kat_linear_opts causal = {.causal = 1}, full = {0};
    /* B = 0 and N = 0: nothing to do; state_out = state_in */
    kat_tensor q = tl_tensor(0, 2, 5, 3), k = tl_tensor(0, 2, 5, 3), v = tl_tensor(0, 2, 5, 2);
    kat_tensor o = tl_tensor(0, 2, 5, 2);
    TU_OK(kat_linear_forward(fm, &causal, &q, &k, &v, &o, NULL, NULL));
    tl_free(&q), tl_free(&k), tl_free(&v), tl_free(&o);
    q = tl_tensor(1, 1, 0, 3), k = tl_tensor(1, 1, 0, 3), v = tl_tensor(1, 1, 0, 2);
    o = tl_tensor(1, 1, 0, 2);
    kat_tensor s0 = tl_tensor(1, 1, 3, 3), s1 = tl_tensor(1, 1, 3, 3);
    for (int i = 0; i < 9; i++)
        s0.data[i] = (float)(i + 1);
    TU_OK(kat_linear_forward(fm, &causal, &q, &k, &v, &o, &s0, &s1));
    ck_assert(memcmp(s0.data, s1.data, 9 * sizeof(float)) == 0);
    /* non-causal, no key and no state: outputs 0 */
    kat_tensor q2 = tl_tensor(1, 1, 4, 3), o2 = tl_tensor(1, 1, 4, 2);
    for (int i = 0; i < 8; i++)
        o2.data[i] = 7.0f;
    TU_OK(kat_linear_forward(fm, &full, &q2, &k, &v, &o2, NULL, NULL));
    for (int i = 0; i < 8; i++)
        ck_assert(o2.data[i] == 0.0f);
    /* N = 1, chunk 1: o = v exactly (one key, weight 1) */
    kat_tensor q1 = tl_tensor(1, 1, 1, 3), k1 = tl_tensor(1, 1, 1, 3), v1 = tl_tensor(1, 1, 1, 2);
    kat_tensor o1 = tl_tensor(1, 1, 1, 2);
    q1.data[0] = 0.3f, k1.data[1] = -2.0f, v1.data[0] = 1.5f, v1.data[1] = -0.25f;
    kat_linear_opts c1 = {.causal = 1, .chunk = 1};
    TU_OK(kat_linear_forward(fm, &c1, &q1, &k1, &v1, &o1, NULL, NULL));
    ck_assert_float_eq_tol(o1.data[0], 1.5f, 4 * EPS32);
    ck_assert_float_eq_tol(o1.data[1], -0.25f, 4 * EPS32);
    kat_tensor *all[] = {&q, &k, &v, &o, &s0, &s1, &q2, &o2, &q1, &k1, &v1, &o1};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        tl_free(all[i]);
    kat_featmap_destroy(fm);
}
END_TEST

/* ---- backward ------------------------------------------------------------------------ */

/* L = sum do . o through the fp64 reference, for finite differences. */
static double loss64(const kat_featmap *fm, const kat_linear_opts *opts, const problem *p,
                     const kat_tensor *d_o, const kat_tensor *s0)
{
    TU_OK(kat_linear_reference(fm, opts, 0, 64, &p->q, &p->k, &p->v, s0, p->ref));
    double L = 0.0;
    size_t i = 0;
    for (size_t b = 0; b < p->B; b++)
        for (size_t h = 0; h < p->H; h++)
            for (size_t n = 0; n < p->nq; n++)
                for (size_t c = 0; c < p->dv; c++, i++)
                    L += kat_tensor_row(d_o, b, h, n)[c] * p->ref[i];
    return L;
}

/* Central difference of L in one float entry, with a power-of-two step (exact in fp32). */
static double fd(const kat_featmap *fm, const kat_linear_opts *opts, problem *p,
                 const kat_tensor *d_o, float *x, const kat_tensor *s0)
{
    const float h = 1.0f / 1024.0f, x0 = *x;
    *x = x0 + h;
    double lp = loss64(fm, opts, p, d_o, s0);
    *x = x0 - h;
    double lm = loss64(fm, opts, p, d_o, s0);
    *x = x0;
    return (lp - lm) / (2.0 * h);
}

/* The fp64 reference gradient matches finite differences, and the engine matches it. */
START_TEST(test_backward_reference_and_fd)
{
    kat_featmap *maps[3] = {NULL, tl_poly2(3), NULL};
    TU_OK(kat_featmap_elu1_create(4, &maps[0]));
    kat_featmap *inner;
    TU_OK(kat_featmap_taylor_create(4, 2, 1.0, &inner));
    TU_OK(kat_featmap_token_norm_create(inner, 1, 1.0, 0, &maps[2]));
    size_t ds[3] = {4, 3, 4};
    for (int m = 0; m < 3; m++)
        for (int causal = 0; causal < 2; causal++) {
            const size_t B = 1, H = 2, N = 21, d = ds[m], dv = 3;
            size_t D = kat_featmap_out_dim(maps[m]);
            problem p = make_problem(B, H, N, N, d, dv, D, 40 + m, 0.7, 0);
            kat_tensor d_o = tl_tensor(B, H, N, dv), dq = tl_tensor(B, H, N, d);
            kat_tensor dk = tl_tensor(B, H, N, d), dvt = tl_tensor(B, H, N, dv);
            kat_rng *rng;
            TU_OK(kat_rng_create(77, &rng));
            tl_fill(&d_o, rng, 1.0, 0.0);
            kat_rng_destroy(rng);
            kat_linear_opts opts = {.causal = causal, .chunk = 8};
            TU_OK(kat_linear_forward(maps[m], &opts, &p.q, &p.k, &p.v, &p.o, NULL, NULL));
            TU_OK(kat_linear_backward(maps[m], &opts, &p.q, &p.k, &p.v, &p.o, &d_o, &dq, &dk,
                                      &dvt, NULL, NULL));
            double *gq = tl_dalloc(B * H * N * d), *gk = tl_dalloc(B * H * N * d);
            double *gv = tl_dalloc(B * H * N * dv);
            TU_OK(kat_linear_reference_backward(maps[m], &opts, &p.q, &p.k, &p.v, &d_o, gq, gk,
                                                gv));
            /* reference vs finite differences on a few entries of each input (the FD error
             * is O(h^2) of the third derivative: a relative 1e-5 is ample for h = 2^-10) */
            kat_tensor *ins[3] = {&p.q, &p.k, &p.v};
            double *gr[3] = {gq, gk, gv};
            for (int t = 0; t < 3; t++)
                for (size_t e = 0; e < 7; e++) {
                    size_t n = (e * 5 + 3) % N, c = e % ins[t]->D, h = e % H;
                    float *x = kat_tensor_row(ins[t], 0, h, n) + c;
                    double g_fd = fd(maps[m], &opts, &p, &d_o, x, NULL);
                    double g_ref = gr[t][(h * N + n) * ins[t]->D + c];
                    ck_assert_msg(fabs(g_fd - g_ref) <= 1e-5 * (1.0 + fabs(g_ref)),
                                  "map %d causal %d input %d: fd %.9g vs reference %.9g", m,
                                  causal, t, g_fd, g_ref);
                }
            /* engine vs reference: fp32 error model, eps x (N + D) x |g|_max */
            kat_tensor *outs[3] = {&dq, &dk, &dvt};
            for (int t = 0; t < 3; t++) {
                double err = tl_rel_err(outs[t], gr[t]);
                double tol = 8.0 * EPS32 * (double)(N + D);
                ck_assert_msg(err <= tol, "map %d causal %d grad %d: relative error %.3g > %.3g",
                              m, causal, t, err, tol);
            }
            free(gq), free(gk), free(gv);
            tl_free(&d_o), tl_free(&dq), tl_free(&dk), tl_free(&dvt);
            free_problem(&p);
        }
    for (int m = 0; m < 3; m++)
        kat_featmap_destroy(maps[m]);
}
END_TEST

/* d_state_in against finite differences of the state; with a state, dq sees it too. */
START_TEST(test_backward_state_gradient)
{
    kat_featmap *fm;
    TU_OK(kat_featmap_elu1_create(3, &fm));
    for (int causal = 0; causal < 2; causal++) {
        const size_t N = 13, d = 3, dv = 2, E = 3;
        problem p = make_problem(1, 1, N, N, d, dv, d, 61, 0.8, 1);
        kat_tensor d_o = tl_tensor(1, 1, N, dv), dq = tl_tensor(1, 1, N, d);
        kat_tensor dk = tl_tensor(1, 1, N, d), dvt = tl_tensor(1, 1, N, dv);
        kat_tensor ds = tl_tensor(1, 1, d, E);
        kat_rng *rng;
        TU_OK(kat_rng_create(5, &rng));
        tl_fill(&d_o, rng, 1.0, 0.0);
        kat_rng_destroy(rng);
        kat_linear_opts opts = {.causal = causal, .chunk = 4};
        TU_OK(kat_linear_forward(fm, &opts, &p.q, &p.k, &p.v, &p.o, &p.s0, NULL));
        TU_OK(kat_linear_backward(fm, &opts, &p.q, &p.k, &p.v, &p.o, &d_o, &dq, &dk, &dvt,
                                  &p.s0, &ds));
        for (size_t i = 0; i < d * E; i++) {
            double g = fd(fm, &opts, &p, &d_o, p.s0.data + i, &p.s0);
            ck_assert_msg(fabs(g - ds.data[i]) <= 1e-4 * (1.0 + fabs(g)),
                          "causal %d: d_state[%zu] = %.7g, finite difference %.7g", causal, i,
                          ds.data[i], g);
        }
        for (size_t i = 0; i < 4; i++) {
            float *x = p.q.data + i * 3;
            double g = fd(fm, &opts, &p, &d_o, x, &p.s0);
            ck_assert_msg(fabs(g - dq.data[i * 3]) <= 1e-4 * (1.0 + fabs(g)),
                          "dq with a state: %.7g vs fd %.7g", dq.data[i * 3], g);
        }
        tl_free(&d_o), tl_free(&dq), tl_free(&dk), tl_free(&dvt), tl_free(&ds);
        free_problem(&p);
    }
    kat_featmap_destroy(fm);
}
END_TEST

/* ---- maps ------------------------------------------------------------------------------ */

START_TEST(test_elu1_map)
{
    kat_featmap *fm;
    TU_OK(kat_featmap_elu1_create(3, &fm));
    ck_assert_uint_eq(kat_featmap_out_dim(fm), 3);
    ck_assert_uint_eq(kat_featmap_flags(fm), KAT_FEATMAP_POSITIVE | KAT_FEATMAP_EXACT);
    double x[6] = {-1.0, 0.0, 2.0, -30.0, 1e-3, 0.5}, f[6];
    kat_dmat X = {2, 3, 3, x}, F = {2, 3, 3, f};
    TU_OK(kat_featmap_apply(fm, KAT_SIDE_QUERY, &X, &F));
    for (int i = 0; i < 6; i++) {
        ck_assert_double_eq_tol(f[i], x[i] > 0 ? x[i] + 1.0 : exp(x[i]), 1e-15);
        ck_assert(f[i] > 0.0);
    }
    float xf[6], ff[6], g[6] = {1, 2, 3, 4, 5, 6}, dx[6] = {0};
    for (int i = 0; i < 6; i++)
        xf[i] = (float)x[i];
    TU_OK(kat_featmap_apply_f32(fm, KAT_SIDE_KEY, 2, xf, 3, ff, 3));
    for (int i = 0; i < 6; i++)
        ck_assert_float_eq_tol(ff[i], (float)f[i], 2 * EPS32 * (float)f[i]);
    TU_OK(kat_featmap_vjp_f32(fm, KAT_SIDE_KEY, 2, xf, 3, g, 3, dx, 3));
    for (int i = 0; i < 6; i++) {
        double h = 1e-6, deriv = ((x[i] + h > 0 ? x[i] + h + 1 : exp(x[i] + h)) -
                                  (x[i] - h > 0 ? x[i] - h + 1 : exp(x[i] - h))) / (2 * h);
        if (fabs(x[i]) > 1e-5)   /* the two branches meet at 0 (C1 only): skip it */
            ck_assert_double_eq_tol(dx[i], g[i] * deriv, 1e-5 * g[i]);
    }
    kat_featmap_destroy(fm);
    TU_EXPECT_ERR(kat_featmap_elu1_create(0, &fm), KAT_EINVAL, "d = 0");
    TU_EXPECT_ERR(kat_featmap_elu1_create(2, NULL), KAT_EINVAL, "out");
}
END_TEST

START_TEST(test_token_norm_map)
{
    kat_featmap *inner = tl_ident(4), *fm;
    TU_OK(kat_featmap_token_norm_create(inner, 1, 2.0, 0, &fm));
    ck_assert_uint_eq(kat_featmap_flags(fm), 0);
    ck_assert_str_eq(kat_featmap_name(fm), "token_norm(user_identity)");
    double x[8] = {1, 2, 3, 6, 5, 5, 5, 5}, f[8];
    kat_dmat X = {2, 4, 4, x}, F = {2, 4, 4, f};
    TU_OK(kat_featmap_apply(fm, KAT_SIDE_QUERY, &X, &F));
    /* row 0: mean 3, u = (-2, -1, 0, 3), |u| = sqrt 14, times 2 */
    double u[4] = {-2, -1, 0, 3};
    for (int j = 0; j < 4; j++)
        ck_assert_double_eq_tol(f[j], 2.0 * u[j] / sqrt(14.0), 1e-15);
    for (int j = 4; j < 8; j++)   /* a constant row has no direction: 0 */
        ck_assert(f[j] == 0.0);
    /* the vjp (through the fp64 inner vjp) against central differences */
    double g[4] = {0.3, -1.0, 0.7, 2.0}, dx[4] = {0};
    const kat_featmap_ops *ops = kat_featmap_get_ops(fm);
    TU_OK(ops->vjp(kat_featmap_state(fm), KAT_SIDE_KEY, 1, x, 4, g, 4, dx, 4));
    for (int a = 0; a < 4; a++) {
        double xp[4], xm[4], fp[4], fmn[4], h = 1e-6, s = 0.0;
        memcpy(xp, x, sizeof xp);
        memcpy(xm, x, sizeof xm);
        xp[a] += h;
        xm[a] -= h;
        TU_OK(ops->apply(kat_featmap_state(fm), KAT_SIDE_KEY, 1, xp, 4, fp, 4));
        TU_OK(ops->apply(kat_featmap_state(fm), KAT_SIDE_KEY, 1, xm, 4, fmn, 4));
        for (int j = 0; j < 4; j++)
            s += g[j] * (fp[j] - fmn[j]) / (2 * h);
        ck_assert_double_eq_tol(dx[a], s, 1e-7);
    }
    kat_featmap_destroy(fm);
    /* positivity claimed by the caller: 1 + x on a sphere of radius 0.5 is >= 0.75 */
    kat_featmap *t1;
    TU_OK(kat_featmap_taylor_create(4, 1, 1.0, &inner));
    ck_assert(!(kat_featmap_flags(inner) & KAT_FEATMAP_POSITIVE));
    TU_OK(kat_featmap_token_norm_create(inner, 1, 0.5, KAT_FEATMAP_POSITIVE, &t1));
    ck_assert(kat_featmap_flags(t1) & KAT_FEATMAP_POSITIVE);
    kat_featmap_destroy(t1);
    /* errors: inner is consumed even then */
    TU_EXPECT_ERR(kat_featmap_token_norm_create(NULL, 1, 1.0, 0, &fm), KAT_EINVAL, "inner");
    TU_EXPECT_ERR(kat_featmap_token_norm_create(tl_ident(2), 1, 0.0, 0, &fm), KAT_EINVAL,
                  "scale");
    TU_EXPECT_ERR(kat_featmap_token_norm_create(tl_ident(2), 1, NAN, 0, &fm), KAT_EINVAL,
                  "scale");
    TU_EXPECT_ERR(kat_featmap_token_norm_create(tl_ident(2), 1, 1.0, 0x80, &fm), KAT_EINVAL,
                  "extra_flags");
    TU_EXPECT_ERR(kat_featmap_token_norm_create(tl_ident(2), 1, 1.0, 0, NULL), KAT_EINVAL,
                  "out");
}
END_TEST

/* ---- rejected inputs ------------------------------------------------------------------- */

START_TEST(test_bad_inputs)
{
    const size_t d = 4, dv = 3;
    kat_featmap *fm, *fm5, *signed_map = tl_ident(d), *nograd;
    TU_OK(kat_featmap_elu1_create(d, &fm));
    TU_OK(kat_featmap_elu1_create(5, &fm5));
    static const kat_featmap_ops no_vjp_ops = {.name = "no_vjp", .apply = tl_poly2_apply,
                                               .destroy = tl_free_state};
    tl_poly2_state *ps = malloc(sizeof *ps);
    ps->d = 2;
    TU_OK(kat_featmap_create(&no_vjp_ops, ps, 2, 7, KAT_FEATMAP_POSITIVE, &nograd));
    problem p = make_problem(1, 2, 10, 10, d, dv, d, 1, 1.0, 1);
    kat_linear_opts causal = {.causal = 1};
    kat_tensor *q = &p.q, *k = &p.k, *v = &p.v, *o = &p.o;
    TU_EXPECT_ERR(kat_linear_forward(NULL, NULL, q, k, v, o, NULL, NULL), KAT_EINVAL, "fm");
    TU_EXPECT_ERR(kat_linear_forward(fm, NULL, NULL, k, v, o, NULL, NULL), KAT_EINVAL, "q");
    TU_EXPECT_ERR(kat_linear_forward(fm, NULL, q, k, v, NULL, NULL, NULL), KAT_EINVAL, "o");
    /* the map's dimension disagrees with the heads */
    TU_EXPECT_ERR(kat_linear_forward(fm5, NULL, q, k, v, o, NULL, NULL), KAT_EINVAL, "d = 5");
    /* a kernel that can be negative under normalisation */
    TU_EXPECT_ERR(kat_linear_forward(signed_map, NULL, q, k, v, o, NULL, NULL), KAT_EINVAL,
                  "user_identity is not KAT_FEATMAP_POSITIVE");
    /* mismatched state shapes */
    kat_tensor bad_state = tl_tensor(1, 2, d, dv);   /* d_v columns, not d_v + 1 */
    TU_EXPECT_ERR(kat_linear_forward(fm, NULL, q, k, v, o, &bad_state, NULL), KAT_EINVAL,
                  "state_in has shape [1, 2, 4, 3]");
    TU_EXPECT_ERR(kat_linear_forward(fm, NULL, q, k, v, o, NULL, &bad_state), KAT_EINVAL,
                  "state_out");
    kat_tensor bad_state2 = tl_tensor(1, 1, d, dv + 1);
    TU_EXPECT_ERR(kat_linear_forward(fm, NULL, q, k, v, o, &bad_state2, NULL), KAT_EINVAL,
                  "state_in");
    /* other shapes */
    kat_tensor short_v = tl_rows(v, 0, 9), short_q = tl_rows(q, 0, 9), short_o = tl_rows(o, 0, 9);
    TU_EXPECT_ERR(kat_linear_forward(fm, NULL, q, k, &short_v, o, NULL, NULL), KAT_EINVAL,
                  "v has 9 tokens");
    TU_EXPECT_ERR(kat_linear_forward(fm, &causal, &short_q, k, v, &short_o, NULL, NULL),
                  KAT_EINVAL, "causal");
    TU_EXPECT_ERR(kat_linear_forward(fm, NULL, q, k, v, &short_o, NULL, NULL), KAT_EINVAL,
                  "o has shape");
    /* options */
    kat_linear_opts big = {.chunk = KAT_LINEAR_MAX_CHUNK + 1};
    TU_EXPECT_ERR(kat_linear_forward(fm, &big, q, k, v, o, NULL, NULL), KAT_EINVAL, "chunk");
    kat_linear_opts score = {.causal = 1, .intra = KAT_LINEAR_INTRA_SCORE};
    TU_EXPECT_ERR(kat_linear_forward(fm, &score, q, k, v, o, NULL, NULL), KAT_EINVAL,
                  "has no score");
    kat_linear_opts bad_intra = {.intra = (kat_linear_intra)9};
    TU_EXPECT_ERR(kat_linear_forward(fm, &bad_intra, q, k, v, o, NULL, NULL), KAT_EINVAL,
                  "intra");
    /* non-finite input */
    float keep = q->data[5];
    q->data[5] = NAN;
    TU_EXPECT_ERR(kat_linear_forward(fm, NULL, q, k, v, o, NULL, NULL), KAT_EDOM, "q");
    q->data[5] = keep;
    keep = p.s0.data[2];
    p.s0.data[2] = INFINITY;
    TU_EXPECT_ERR(kat_linear_forward(fm, NULL, q, k, v, o, &p.s0, NULL), KAT_EDOM, "state_in");
    p.s0.data[2] = keep;
    /* aliasing: o over v; state_out over part of state_in */
    kat_tensor o_on_v = *v;
    TU_EXPECT_ERR(kat_linear_forward(fm, NULL, q, k, v, &o_on_v, NULL, NULL), KAT_EINVAL,
                  "o overlaps v");
    kat_tensor shifted = p.s0;
    float *tmp = calloc(2 * d * (dv + 1) * 2 + 8, sizeof(float));
    kat_tensor s_in = kat_tensor_view(tmp, 1, 2, d, dv + 1), s_out = s_in;
    s_out.data = tmp + 1;
    (void)shifted;
    TU_EXPECT_ERR(kat_linear_forward(fm, NULL, q, k, v, o, &s_in, &s_out), KAT_EINVAL,
                  "state_out overlaps state_in");
    free(tmp);
    /* an output state untouched by a failed call */
    kat_tensor s_ok = tl_tensor(1, 2, d, dv + 1);
    s_ok.data[0] = 42.0f;
    q->data[0] = NAN;
    TU_EXPECT_ERR(kat_linear_forward(fm, NULL, q, k, v, o, NULL, &s_ok), KAT_EDOM, "q");
    q->data[0] = 0.5f;
    ck_assert(s_ok.data[0] == 42.0f);
    /* backward: a map without a gradient, shapes of the gradients, aliasing */
    kat_tensor dq = tl_tensor(1, 2, 10, d), dk = tl_tensor(1, 2, 10, d);
    kat_tensor dvt = tl_tensor(1, 2, 10, dv), d_o = tl_tensor(1, 2, 10, dv);
    kat_tensor q2 = tl_tensor(1, 2, 10, 2), k2 = tl_tensor(1, 2, 10, 2);
    kat_tensor dq2 = tl_tensor(1, 2, 10, 2), dk2 = tl_tensor(1, 2, 10, 2);
    TU_EXPECT_ERR(kat_linear_backward(nograd, NULL, &q2, &k2, v, o, &d_o, &dq2, &dk2, &dvt,
                                      NULL, NULL), KAT_ENOTSUP, "no gradient");
    TU_EXPECT_ERR(kat_linear_backward(fm, NULL, q, k, v, o, &d_o, &dk2, &dk, &dvt, NULL, NULL),
                  KAT_EINVAL, "dq has shape");
    TU_EXPECT_ERR(kat_linear_backward(fm, NULL, q, k, v, o, &d_o, &dq, &dq, &dvt, NULL, NULL),
                  KAT_EINVAL, "dq overlaps dk");
    TU_EXPECT_ERR(kat_linear_backward(fm, NULL, q, k, v, o, &short_o, &dq, &dk, &dvt, NULL,
                                      NULL), KAT_EINVAL, "d_o has shape");
    TU_EXPECT_ERR(kat_linear_backward(fm, NULL, q, k, v, o, &d_o, &dq, &dk, &dvt, NULL,
                                      &bad_state), KAT_EINVAL, "d_state_in");
    TU_EXPECT_ERR(kat_linear_reference_backward(nograd, NULL, &q2, &k2, v, &d_o, NULL, NULL,
                                                NULL), KAT_ENOTSUP, "vjp");
    kat_tensor *all[] = {&bad_state, &bad_state2, &s_ok, &dq, &dk, &dvt, &d_o, &q2, &k2, &dq2,
                         &dk2};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        tl_free(all[i]);
    free_problem(&p);
    kat_featmap_destroy(fm);
    kat_featmap_destroy(fm5);
    kat_featmap_destroy(signed_map);
    kat_featmap_destroy(nograd);
}
END_TEST

/* A denominator that underflows in fp32 is an error, never an epsilon or a NaN. */
START_TEST(test_denominator_underflow)
{
    kat_featmap *fm;
    TU_OK(kat_featmap_elu1_create(2, &fm));
    kat_tensor q = tl_tensor(1, 1, 3, 2), k = tl_tensor(1, 1, 3, 2), v = tl_tensor(1, 1, 3, 1);
    kat_tensor o = tl_tensor(1, 1, 3, 1);
    for (int i = 0; i < 6; i++)
        q.data[i] = k.data[i] = -80.0f;   /* e^-80 . e^-80 underflows fp32 */
    kat_linear_opts opts = {.causal = 1};
    TU_EXPECT_ERR(kat_linear_forward(fm, &opts, &q, &k, &v, &o, NULL, NULL), KAT_EDOM,
                  "denominator");
    tl_free(&q), tl_free(&k), tl_free(&v), tl_free(&o);
    kat_featmap_destroy(fm);
}
END_TEST

/* phi(x) = exp(x) per coordinate (positive), fp32 only: overflows for x > 88. */
static kat_status exp_apply(const void *st, kat_side side, size_t n, const double *x, size_t ldx,
                            double *f, size_t ldf)
{
    size_t d = ((const tl_poly2_state *)st)->d;
    for (size_t i = 0; i < n; i++)
        for (size_t a = 0; a < d; a++)
            f[i * ldf + a] = exp(x[i * ldx + a]);
    return KAT_OK;
}
static kat_status exp_apply_f32(const void *st, kat_side side, size_t n, const float *x,
                                size_t ldx, float *f, size_t ldf)
{
    size_t d = ((const tl_poly2_state *)st)->d;
    for (size_t i = 0; i < n; i++)
        for (size_t a = 0; a < d; a++)
            f[i * ldf + a] = expf(x[i * ldx + a]);
    return KAT_OK;
}
static kat_status exp_vjp_f32(const void *st, kat_side side, size_t n, const float *x,
                              size_t ldx, const float *g, size_t ldg, float *dx, size_t lddx)
{
    size_t d = ((const tl_poly2_state *)st)->d;
    for (size_t i = 0; i < n; i++)
        for (size_t a = 0; a < d; a++)
            dx[i * lddx + a] += g[i * ldg + a] * expf(x[i * ldx + a]);
    return KAT_OK;
}
static const kat_featmap_ops exp_ops = {.name = "user_exp", .apply = exp_apply,
                                        .apply_f32 = exp_apply_f32, .vjp_f32 = exp_vjp_f32,
                                        .destroy = tl_free_state};

/* A feature that overflows fp32 is reported (through the outputs and the final state, which
 * every feature reaches), never passed on as Inf or NaN. */
START_TEST(test_nonfinite_features)
{
    tl_poly2_state *ps = malloc(sizeof *ps);
    ps->d = 2;
    kat_featmap *fm;
    TU_OK(kat_featmap_create(&exp_ops, ps, 2, 2, KAT_FEATMAP_POSITIVE, &fm));
    kat_tensor q = tl_tensor(1, 1, 40, 2), k = tl_tensor(1, 1, 40, 2), v = tl_tensor(1, 1, 40, 2);
    kat_tensor o = tl_tensor(1, 1, 40, 2), s = tl_tensor(1, 1, 2, 3);
    kat_tensor dq = tl_tensor(1, 1, 40, 2), dk = tl_tensor(1, 1, 40, 2), dvt = tl_tensor(1, 1, 40, 2);
    for (int i = 0; i < 80; i++)
        v.data[i] = 1.0f;
    kat_linear_opts causal = {.causal = 1, .chunk = 16}, full = {.chunk = 16};
    TU_OK(kat_linear_forward(fm, &causal, &q, &k, &v, &o, NULL, &s));
    k.data[2 * 30 + 1] = 100.0f;   /* e^100 overflows fp32 */
    TU_EXPECT_ERR(kat_linear_forward(fm, &causal, &q, &k, &v, &o, NULL, NULL), KAT_EDOM,
                  "not finite");
    TU_EXPECT_ERR(kat_linear_forward(fm, &full, &q, &k, &v, &o, NULL, NULL), KAT_EDOM,
                  "not finite");
    kat_tensor q0 = tl_rows(&q, 0, 0), o0 = tl_rows(&o, 0, 0);
    s.data[0] = 7.0f;
    TU_EXPECT_ERR(kat_linear_forward(fm, &full, &q0, &k, &v, &o0, NULL, &s), KAT_EDOM,
                  "final state");
    ck_assert(s.data[0] == 7.0f);
    k.data[2 * 30 + 1] = 0.0f;
    TU_OK(kat_linear_forward(fm, &causal, &q, &k, &v, &o, NULL, NULL));
    q.data[5] = 100.0f;
    TU_EXPECT_ERR(kat_linear_backward(fm, &causal, &q, &k, &v, &o, &v, &dq, &dk, &dvt, NULL,
                                      NULL), KAT_EDOM, "denominator");
    kat_tensor *all[] = {&q, &k, &v, &o, &s, &dq, &dk, &dvt};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        tl_free(all[i]);
    kat_featmap_destroy(fm);
}
END_TEST

/* Every allocation of the forward and backward failing in turn: a clean error, outputs
 * (the states) untouched, nothing leaked (the sanitizer run checks that). */
START_TEST(test_alloc_failures)
{
    kat_featmap *fm;
    TU_OK(kat_featmap_elu1_create(3, &fm));
    problem p = make_problem(1, 3, 20, 20, 3, 2, 3, 2, 1.0, 1);
    kat_tensor so = tl_tensor(1, 3, 3, 3), dq = tl_tensor(1, 3, 20, 3);
    kat_tensor dk = tl_tensor(1, 3, 20, 3), dvt = tl_tensor(1, 3, 20, 2);
    kat_tensor ds = tl_tensor(1, 3, 3, 3);
    kat_linear_opts opts = {.causal = 1, .chunk = 8};
    for (int pass = 0; pass < 2; pass++) {
        for (size_t n = 1; n < 50; n++) {
            for (size_t i = 0; i < 27; i++)
                so.data[i] = ds.data[i] = -1.0f;
            kat_debug_fail_alloc_at(n);
            kat_status st = pass == 0 ? kat_linear_forward(fm, &opts, &p.q, &p.k, &p.v, &p.o,
                                                           &p.s0, &so)
                                      : kat_linear_backward(fm, &opts, &p.q, &p.k, &p.v, &p.o,
                                                            &p.o, &dq, &dk, &dvt, &p.s0, &ds);
            size_t made = kat_debug_fail_alloc_at(0);
            if (st == KAT_OK) {
                ck_assert_uint_lt(made, n);
                break;
            }
            ck_assert_int_eq(st, KAT_ENOMEM);
            for (size_t i = 0; i < 27; i++)
                ck_assert(so.data[i] == -1.0f && ds.data[i] == -1.0f);
        }
    }
    tl_free(&so), tl_free(&dq), tl_free(&dk), tl_free(&dvt), tl_free(&ds);
    free_problem(&p);
    kat_featmap_destroy(fm);
}
END_TEST

/* The planned engine (kat_attn_plan_create with a KAT_ATTN_LINEAR pattern) gives the one-shot
 * forms' results bit for bit, with D_v != D, states in args, and a caller's workspace with
 * which no pass allocates: every allocation failing in turn still succeeds, without a single
 * allocation. */
START_TEST(test_plan_workspace_no_alloc)
{
    kat_featmap *fm;
    TU_OK(kat_featmap_elu1_create(3, &fm));
    for (int causal = 0; causal < 2; causal++) {
        problem p = make_problem(2, 3, 40, 40, 3, 5, 3, 11 + causal, 1.0, 1);
        kat_attn_desc d = {2, 3, 3, 40, 40, 3, causal, 0, 5};
        kat_attn_pattern pat = {.kind = KAT_ATTN_LINEAR, .map = fm, .linear = {.chunk = 8}};
        kat_attn_plan *plan;
        TU_OK(kat_attn_plan_create(&d, &pat, &plan));
        ck_assert_str_eq(kat_attn_plan_solver(plan), "linear");
        kat_linear_opts opts = {.causal = causal, .chunk = 8};
        kat_tensor so1 = tl_tensor(2, 3, 3, 6), so2 = tl_tensor(2, 3, 3, 6);
        kat_tensor o2 = tl_tensor(2, 3, 40, 5), dq1 = tl_tensor(2, 3, 40, 3);
        kat_tensor dk1 = tl_tensor(2, 3, 40, 3), dv1 = tl_tensor(2, 3, 40, 5);
        kat_tensor dq2 = tl_tensor(2, 3, 40, 3), dk2 = tl_tensor(2, 3, 40, 3);
        kat_tensor dv2 = tl_tensor(2, 3, 40, 5);
        kat_tensor ds1 = tl_tensor(2, 3, 3, 6), ds2 = tl_tensor(2, 3, 3, 6);
        TU_OK(kat_linear_forward(fm, &opts, &p.q, &p.k, &p.v, &p.o, &p.s0, &so1));
        TU_OK(kat_linear_backward(fm, &opts, &p.q, &p.k, &p.v, &p.o, &p.o, &dq1, &dk1, &dv1,
                                  &p.s0, &ds1));
        size_t fb = kat_attn_workspace_size(plan, KAT_ATTN_FORWARD);
        size_t bb = kat_attn_workspace_size(plan, KAT_ATTN_BACKWARD);
        void *work = aligned_alloc(64, ((fb > bb ? fb : bb) + 63) / 64 * 64);
        kat_attn_args fa = {.state_in = &p.s0, .state_out = &so2};
        kat_attn_args ba = {.state_in = &p.s0, .d_state_in = &ds2};
        for (int pass = 0; pass < 2; pass++) {
            kat_debug_fail_alloc_at(1);   /* the first allocation would fail */
            kat_status st =
                pass == 0 ? kat_attn_forward(plan, &fa, &p.q, &p.k, &p.v, &o2, NULL, work)
                          : kat_attn_backward(plan, &ba, &p.q, &p.k, &p.v, &p.o, NULL, &p.o,
                                              &dq2, &dk2, &dv2, work);
            size_t made = kat_debug_fail_alloc_at(0);
            ck_assert_msg(st == KAT_OK, "pass %d: %s", pass, kat_last_error());
            ck_assert_uint_eq(made, 0);
        }
        ck_assert(!memcmp(p.o.data, o2.data, 2 * 3 * 40 * 5 * sizeof(float)));
        ck_assert(!memcmp(so1.data, so2.data, 2 * 3 * 3 * 6 * sizeof(float)));
        ck_assert(!memcmp(dq1.data, dq2.data, 2 * 3 * 40 * 3 * sizeof(float)));
        ck_assert(!memcmp(dk1.data, dk2.data, 2 * 3 * 40 * 3 * sizeof(float)));
        ck_assert(!memcmp(dv1.data, dv2.data, 2 * 3 * 40 * 5 * sizeof(float)));
        ck_assert(!memcmp(ds1.data, ds2.data, 2 * 3 * 3 * 6 * sizeof(float)));
        /* misuse: a logsumexp, a softmax-only field, views of other shapes */
        kat_tensor lse = tl_tensor(2, 3, 40, 1);
        TU_EXPECT_ERR(kat_attn_forward(plan, NULL, &p.q, &p.k, &p.v, &o2, &lse, work), KAT_EINVAL,
                      "lse");
        int32_t buckets[1] = {0};
        kat_attn_args stray = {.q_buckets = buckets};
        TU_EXPECT_ERR(kat_attn_forward(plan, &stray, &p.q, &p.k, &p.v, &o2, NULL, work),
                      KAT_EINVAL, "q_buckets");
        kat_tensor short_q = tl_rows(&p.q, 0, 39), short_k = tl_rows(&p.k, 0, 39);
        kat_tensor short_v = tl_rows(&p.v, 0, 39), short_o = tl_rows(&o2, 0, 39);
        TU_EXPECT_ERR(kat_attn_forward(plan, NULL, &short_q, &short_k, &short_v, &short_o, NULL,
                                       work),
                      KAT_EINVAL, "plan was made for");
        free(work);
        kat_attn_plan_destroy(plan);
        tl_free(&so1), tl_free(&so2), tl_free(&o2), tl_free(&dq1), tl_free(&dk1), tl_free(&dv1);
        tl_free(&dq2), tl_free(&dk2), tl_free(&dv2), tl_free(&ds1), tl_free(&ds2), tl_free(&lse);
        free_problem(&p);
    }
    /* what the plan refuses: grouped heads, no map, strict causality */
    kat_attn_plan *plan = NULL;
    kat_attn_pattern pat = {.kind = KAT_ATTN_LINEAR, .map = fm};
    kat_attn_desc gqa = {1, 4, 2, 8, 8, 3, 0, 0, 0};
    TU_EXPECT_ERR(kat_attn_plan_create(&gqa, &pat, &plan), KAT_ENOTSUP, "H_kv = H");
    kat_attn_pattern nomap = {.kind = KAT_ATTN_LINEAR};
    kat_attn_desc ok = {1, 4, 4, 8, 8, 3, 0, 0, 0};
    TU_EXPECT_ERR(kat_attn_plan_create(&ok, &nomap, &plan), KAT_ENOTSUP, "map");
    kat_attn_desc d4 = {1, 4, 4, 8, 8, 4, 0, 0, 0};
    TU_EXPECT_ERR(kat_attn_plan_create(&d4, &pat, &plan), KAT_EINVAL, "d = 3");
    ck_assert_ptr_null(plan);
    kat_featmap_destroy(fm);
}
END_TEST

START_TEST(test_flops)
{
    kat_featmap *fm;
    TU_OK(kat_featmap_elu1_create(4, &fm));
    kat_linear_opts full = {0}, causal = {.causal = 1, .chunk = 8};
    /* 2 D E per key and per query: 2 * 4 * 3 * (10 + 6) = 384 per head */
    ck_assert_double_eq(kat_linear_flops(fm, &full, 1, 2, 10, 6, 2), 2 * 384.0);
    /* causal adds n (C + 1)/2 pairs of 2 (D + E) */
    ck_assert_double_eq(kat_linear_flops(fm, &causal, 1, 1, 16, 16, 2),
                        2.0 * 4 * 3 * 32 + 16 * 4.5 * 2 * 7);
    ck_assert_double_eq(kat_linear_flops(NULL, &full, 1, 1, 1, 1, 1), 0.0);
    kat_featmap_destroy(fm);
    /* Taylor-2 on d = 4 (D = 1 + 4 + 10 = 15) has a kernel of the dot: AUTO and DOT count the
     * in-chunk scores as 4-dimensional dots, FEATURES as 15-dimensional ones */
    TU_OK(kat_featmap_taylor_create(4, 2, 0.0, &fm));
    ck_assert_uint_eq(kat_featmap_out_dim(fm), 15);
    double state = 2.0 * 15 * 3 * 32;
    kat_linear_opts dot = {.causal = 1, .chunk = 8, .intra = KAT_LINEAR_INTRA_DOT};
    kat_linear_opts feat = {.causal = 1, .chunk = 8, .intra = KAT_LINEAR_INTRA_FEATURES};
    ck_assert_double_eq(kat_linear_flops(fm, &causal, 1, 1, 16, 16, 2), state + 16 * 4.5 * 2 * 7);
    ck_assert_double_eq(kat_linear_flops(fm, &dot, 1, 1, 16, 16, 2), state + 16 * 4.5 * 2 * 7);
    ck_assert_double_eq(kat_linear_flops(fm, &feat, 1, 1, 16, 16, 2), state + 16 * 4.5 * 2 * 18);
    kat_featmap_destroy(fm);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("linear");
    TCase *tc = tcase_create("linear");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_noncausal_matches_reference);
    tcase_add_test(tc, test_causal_chunks_recurrence_reference);
    tcase_add_test(tc, test_reference_precision);
    tcase_add_test(tc, test_intra_score_equals_features);
    tcase_add_test(tc, test_intra_dot_equals_features);
    tcase_add_test(tc, test_decode_equals_forward);
    tcase_add_test(tc, test_taylor2_equals_quadratic);
    tcase_add_test(tc, test_strided_views);
    tcase_add_test(tc, test_threads_segments);
    tcase_add_test(tc, test_theory_maps);
    tcase_add_test(tc, test_unnormalized_signed_map);
    tcase_add_test(tc, test_empty_and_tiny);
    tcase_add_test(tc, test_backward_reference_and_fd);
    tcase_add_test(tc, test_backward_state_gradient);
    tcase_add_test(tc, test_elu1_map);
    tcase_add_test(tc, test_token_norm_map);
    tcase_add_test(tc, test_bad_inputs);
    tcase_add_test(tc, test_denominator_underflow);
    tcase_add_test(tc, test_nonfinite_features);
    tcase_add_test(tc, test_alloc_failures);
    tcase_add_test(tc, test_plan_workspace_no_alloc);
    tcase_add_test(tc, test_flops);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
