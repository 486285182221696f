/* Linear attention at length: N = 65536 in fp32 against fp64 references on sampled rows (the
 * relative error must stay <= 1e-5), with and without an initial state, a chunk that does not
 * divide N, the token-by-token recurrence at that length, and the backward at N = 2048. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "test_linear_util.h"
#include "kat/featmaps.h"

/* Rows checked against fp64: the last ones, spread ones and the first (short prefixes). */
static size_t sample_row(size_t s, size_t nsamples, size_t n0, size_t N)
{
    if (s == 0)
        return N - 1;
    if (s == nsamples - 1)
        return n0;
    return n0 + (N - n0) / nsamples * s + s % 7;
}

/* x / |x - mean|, the per-token normalisation of token_norm(center = 1, scale = 1), in fp64. */
static void normalise64(const float *x, size_t d, double *y)
{
    double mean = 0.0, ss = 0.0;
    for (size_t a = 0; a < d; a++)
        mean += x[a];
    mean /= (double)d;
    for (size_t a = 0; a < d; a++)
        ss += (x[a] - mean) * (x[a] - mean);
    for (size_t a = 0; a < d; a++)
        y[a] = (x[a] - mean) / sqrt(ss);
}

/* Relative errors (Frobenius over the sampled rows, and the worst row) of causal attention
 * rows [n0, N) of head (0, 0) against fp64 with kernel f = kernel(phi_q, psi_k) computed by
 * `score`: rows see every key j <= i, from 0. */
typedef double (*row_kernel)(const double *qn, const double *kn, size_t d);

static double taylor2_kernel(const double *qn, const double *kn, size_t d)
{
    double x = 0.0;
    for (size_t a = 0; a < d; a++)
        x += qn[a] * kn[a];
    return 1.0 + x + 0.5 * x * x;
}

static double elu1_kernel(const double *q, const double *k, size_t d)
{
    double s = 0.0;
    for (size_t a = 0; a < d; a++)
        s += (q[a] > 0 ? q[a] + 1.0 : exp(q[a])) * (k[a] > 0 ? k[a] + 1.0 : exp(k[a]));
    return s;
}

static void sampled_errors(const kat_tensor *q, const kat_tensor *k, const kat_tensor *v,
                           const kat_tensor *o, size_t n0, int normalise, row_kernel kernel,
                           size_t nsamples, double *frob, double *worst)
{
    const size_t N = q->N, d = q->D, dv = v->D;
    double *kn = tl_dalloc(N * d), *qn = tl_dalloc(d), *acc = tl_dalloc(dv + 1);
    for (size_t j = 0; j < N; j++) {
        const float *kr = kat_tensor_row(k, 0, 0, j);
        if (normalise)
            normalise64(kr, d, kn + j * d);
        else
            for (size_t a = 0; a < d; a++)
                kn[j * d + a] = kr[a];
    }
    double num = 0.0, den = 0.0;
    *worst = 0.0;
    for (size_t s = 0; s < nsamples; s++) {
        size_t i = sample_row(s, nsamples, n0, N);
        const float *qr = kat_tensor_row(q, 0, 0, i);
        if (normalise)
            normalise64(qr, d, qn);
        else
            for (size_t a = 0; a < d; a++)
                qn[a] = qr[a];
        memset(acc, 0, (dv + 1) * sizeof(double));
        for (size_t j = 0; j <= i; j++) {
            double f = kernel(qn, kn + j * d, d);
            const float *vr = kat_tensor_row(v, 0, 0, j);
            for (size_t c = 0; c < dv; c++)
                acc[c] += f * vr[c];
            acc[dv] += f;
        }
        double rn = 0.0, rd = 0.0;
        for (size_t c = 0; c < dv; c++) {
            double ref = acc[c] / acc[dv], e = kat_tensor_row(o, 0, 0, i - n0)[c] - ref;
            rn += e * e;
            rd += ref * ref;
        }
        num += rn;
        den += rd;
        if (sqrt(rn / rd) > *worst)
            *worst = sqrt(rn / rd);
    }
    *frob = sqrt(num / den);
    free(kn);
    free(qn);
    free(acc);
}

/* Taylor-2 (Fastmax) at N = 65536, d = d_v = 64, in one pass and as a prefill of half the
 * sequence followed by the second half from the state. */
START_TEST(test_taylor2_65536)
{
    const size_t N = tu_quick() ? 4096 : 65536, d = 64, dv = 64, half = N / 2 + 13;
    kat_featmap *inner, *fm;
    TU_OK(kat_featmap_taylor_create(d, 2, 1.0, &inner));
    TU_OK(kat_featmap_token_norm_create(inner, 1, 1.0, 0, &fm));
    size_t D = kat_featmap_out_dim(fm);
    kat_rng *rng;
    TU_OK(kat_rng_create(2024, &rng));
    kat_tensor q = tl_tensor(1, 1, N, d), k = tl_tensor(1, 1, N, d), v = tl_tensor(1, 1, N, dv);
    kat_tensor o = tl_tensor(1, 1, N, dv), st = tl_tensor(1, 1, D, dv + 1);
    tl_fill(&q, rng, 1.0, 0.0);
    tl_fill(&k, rng, 1.0, 0.0);
    tl_fill(&v, rng, 1.0, 0.0);
    kat_rng_destroy(rng);
    kat_linear_opts opts = {.causal = 1};   /* the default chunk */
    TU_OK(kat_linear_forward(fm, &opts, &q, &k, &v, &o, NULL, NULL));
    double frob, worst;
    sampled_errors(&q, &k, &v, &o, 0, 1, taylor2_kernel, 48, &frob, &worst);
    fprintf(stderr, "taylor2 N=%zu: relative error %.3g (worst row %.3g)\n", N, frob, worst);
    ck_assert_msg(frob <= 1e-5 && worst <= 1e-5, "taylor2 N=%zu: error %.3g, worst row %.3g",
                  N, frob, worst);
    /* prefill [0, half) -> state -> [half, N) from the state; chunk 100 divides neither */
    kat_linear_opts opts100 = {.causal = 1, .chunk = 100};
    kat_tensor qa = tl_rows(&q, 0, half), ka = tl_rows(&k, 0, half), va = tl_rows(&v, 0, half);
    kat_tensor oa = tl_rows(&o, 0, half);
    TU_OK(kat_linear_forward(fm, &opts100, &qa, &ka, &va, &oa, NULL, &st));
    kat_tensor qb = tl_rows(&q, half, N - half), kb = tl_rows(&k, half, N - half);
    kat_tensor vb = tl_rows(&v, half, N - half), ob = tl_tensor(1, 1, N - half, dv);
    TU_OK(kat_linear_forward(fm, &opts100, &qb, &kb, &vb, &ob, &st, NULL));
    sampled_errors(&q, &k, &v, &ob, half, 1, taylor2_kernel, 48, &frob, &worst);
    fprintf(stderr, "taylor2 from a state: relative error %.3g (worst row %.3g)\n", frob, worst);
    ck_assert_msg(frob <= 1e-5 && worst <= 1e-5, "from the state: error %.3g, worst row %.3g",
                  frob, worst);
    tl_free(&q), tl_free(&k), tl_free(&v), tl_free(&o), tl_free(&st), tl_free(&ob);
    kat_featmap_destroy(fm);
}
END_TEST

/* elu + 1 at N = 65536 with chunk 100 and an initial state: chunked = recurrence = fp64. The
 * state is a prefill of 3000 tokens, so the fp64 reference just sees 3000 more keys. */
START_TEST(test_elu1_65536_recurrence)
{
    const size_t P = 3000, N = tu_quick() ? 4096 : 65536, d = 32, dv = 32;
    kat_featmap *fm;
    TU_OK(kat_featmap_elu1_create(d, &fm));
    kat_rng *rng;
    TU_OK(kat_rng_create(99, &rng));
    kat_tensor q = tl_tensor(1, 1, P + N, d), k = tl_tensor(1, 1, P + N, d);
    kat_tensor v = tl_tensor(1, 1, P + N, dv), st = tl_tensor(1, 1, d, dv + 1);
    tl_fill(&q, rng, 0.5, 0.0);
    tl_fill(&k, rng, 0.5, 0.0);
    tl_fill(&v, rng, 1.0, 0.3);
    kat_rng_destroy(rng);
    kat_linear_opts opts = {.causal = 1, .chunk = 100};
    kat_tensor qa = tl_rows(&q, 0, P), ka = tl_rows(&k, 0, P), va = tl_rows(&v, 0, P);
    kat_tensor oa = tl_tensor(1, 1, P, dv);
    TU_OK(kat_linear_forward(fm, &opts, &qa, &ka, &va, &oa, NULL, &st));
    kat_tensor qb = tl_rows(&q, P, N), kb = tl_rows(&k, P, N), vb = tl_rows(&v, P, N);
    kat_tensor ob = tl_tensor(1, 1, N, dv), orec = tl_tensor(1, 1, N, dv);
    TU_OK(kat_linear_forward(fm, &opts, &qb, &kb, &vb, &ob, &st, NULL));
    tl_recurrence_f32(fm, 1, &qb, &kb, &vb, &orec, &st, NULL);
    double frob, worst, rfrob, rworst;
    sampled_errors(&q, &k, &v, &ob, P, 0, elu1_kernel, 48, &frob, &worst);
    sampled_errors(&q, &k, &v, &orec, P, 0, elu1_kernel, 48, &rfrob, &rworst);
    fprintf(stderr, "elu1 N=%zu chunk 100 from a state: chunked %.3g (worst %.3g), "
            "fp32 recurrence %.3g (worst %.3g)\n", N, frob, worst, rfrob, rworst);
    ck_assert_msg(frob <= 1e-5 && worst <= 1e-5, "elu1: error %.3g, worst row %.3g", frob,
                  worst);
    ck_assert_msg(frob <= 2.0 * rfrob + 2.0 * EPS32, "chunked %.3g vs recurrence %.3g", frob,
                  rfrob);
    tl_free(&q), tl_free(&k), tl_free(&v), tl_free(&st), tl_free(&oa), tl_free(&ob);
    tl_free(&orec);
    kat_featmap_destroy(fm);
}
END_TEST

/* The backward at N = 2048 (32 chunks, a partial last one) against the fp64 gradient. */
START_TEST(test_backward_2048)
{
    const size_t N = tu_quick() ? 300 : 2048 + 37, d = 16, dv = 16;
    kat_featmap *inner, *fm;
    TU_OK(kat_featmap_taylor_create(d, 2, 1.0, &inner));
    TU_OK(kat_featmap_token_norm_create(inner, 1, 1.0, 0, &fm));
    size_t D = kat_featmap_out_dim(fm);
    kat_rng *rng;
    TU_OK(kat_rng_create(7, &rng));
    kat_tensor q = tl_tensor(1, 2, N, d), k = tl_tensor(1, 2, N, d), v = tl_tensor(1, 2, N, dv);
    kat_tensor o = tl_tensor(1, 2, N, dv), d_o = tl_tensor(1, 2, N, dv);
    kat_tensor dq = tl_tensor(1, 2, N, d), dk = tl_tensor(1, 2, N, d), dvt = tl_tensor(1, 2, N, dv);
    tl_fill(&q, rng, 1.0, 0.0);
    tl_fill(&k, rng, 1.0, 0.0);
    tl_fill(&v, rng, 1.0, 0.0);
    tl_fill(&d_o, rng, 1.0, 0.0);
    kat_rng_destroy(rng);
    for (int causal = 0; causal < 2; causal++) {
        kat_linear_opts opts = {.causal = causal, .chunk = 64};
        TU_OK(kat_linear_forward(fm, &opts, &q, &k, &v, &o, NULL, NULL));
        TU_OK(kat_linear_backward(fm, &opts, &q, &k, &v, &o, &d_o, &dq, &dk, &dvt, NULL, NULL));
        double *gq = tl_dalloc(2 * N * d), *gk = tl_dalloc(2 * N * d), *gv = tl_dalloc(2 * N * dv);
        TU_OK(kat_linear_reference_backward(fm, &opts, &q, &k, &v, &d_o, gq, gk, gv));
        double eq = tl_rel_err(&dq, gq), ek = tl_rel_err(&dk, gk), ev = tl_rel_err(&dvt, gv);
        double tol = 8.0 * EPS32 * (double)(64 + D);   /* chunk-length sums and D-long dots */
        fprintf(stderr, "backward N=%zu causal %d: dq %.3g dk %.3g dv %.3g (tol %.3g)\n", N,
                causal, eq, ek, ev, tol);
        ck_assert_msg(eq <= tol && ek <= tol && ev <= tol, "causal %d: %.3g %.3g %.3g > %.3g",
                      causal, eq, ek, ev, tol);
        free(gq), free(gk), free(gv);
    }
    kat_tensor *all[] = {&q, &k, &v, &o, &d_o, &dq, &dk, &dvt};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        tl_free(all[i]);
    kat_featmap_destroy(fm);
}
END_TEST

int main(void)
{
    /* One case per test: meson runs each as its own test. */
    const tu_case cases[] = {
        {"taylor2_65536", test_taylor2_65536},
        {"elu1_65536_recurrence", test_elu1_65536_recurrence},
        {"backward_2048", test_backward_2048},
    };
    Suite *s = tu_suite_per_case("linear_slow", 600, cases, sizeof cases / sizeof cases[0]);
    return tu_run_suite(s);
}
