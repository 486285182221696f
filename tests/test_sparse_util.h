/* Helpers of the sparse attention suites: random problems, the library's masked attention
 * oracle in fp64 (the yardstick) and in naive fp32 (the tolerance: "no worse than 2x a naive
 * fp32 implementation against fp64", kat_attn_error_bound), and the comparison of a sparse
 * plan's forward and backward against both. The masks here are built from the raw pattern (keep lists, buckets, window
 * rules) independently of the library. */
#ifndef KAT_TEST_SPARSE_UTIL_H
#define KAT_TEST_SPARSE_UTIL_H

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "sparse_plan.h"
#include "testutil.h"

typedef struct {
    size_t B, H, Hkv, N, M, D;
    int causal;      /* 0, 1 (j <= i'), 2 (j < i') with i' = i + M - N */
    double scale;
    float *q, *k, *v, *dout;
    uint8_t *allowed;   /* [B, H, N, M]: the element mask, causality included */
} ts_problem;

static void ts_fill(kat_rng *rng, float *x, size_t n, double sigma)
{
    for (size_t i = 0; i < n; i++)
        x[i] = (float)kat_rng_gaussian(rng, sigma);
}

/* Random data (q with a larger spread, so softmaxes are peaked) and an all-zero mask. */
static void ts_problem_init(ts_problem *p, size_t B, size_t H, size_t Hkv, size_t N, size_t M,
                            size_t D, int causal, uint64_t seed)
{
    memset(p, 0, sizeof *p);
    p->B = B, p->H = H, p->Hkv = Hkv, p->N = N, p->M = M, p->D = D, p->causal = causal;
    p->scale = 1.0 / sqrt((double)D);
    size_t nq = B * H * N * D, nk = B * Hkv * M * D;
    p->q = malloc((nq ? nq : 1) * sizeof(float));
    p->dout = malloc((nq ? nq : 1) * sizeof(float));
    p->k = malloc((nk ? nk : 1) * sizeof(float));
    p->v = malloc((nk ? nk : 1) * sizeof(float));
    p->allowed = calloc(B * H * N * M + 1, 1);
    kat_rng *rng;
    kat_rng_create(seed, &rng);
    ts_fill(rng, p->q, nq, 2.0);
    ts_fill(rng, p->k, nk, 1.0);
    ts_fill(rng, p->v, nk, 1.0);
    ts_fill(rng, p->dout, nq, 1.0);
    kat_rng_destroy(rng);
}

static void ts_problem_free(ts_problem *p)
{
    free(p->q), free(p->k), free(p->v), free(p->dout), free(p->allowed);
}

static int ts_causal_ok(const ts_problem *p, size_t i, size_t j)
{
    int64_t ip = (int64_t)i + (int64_t)p->M - (int64_t)p->N;
    if (p->causal == 1)
        return (int64_t)j <= ip;
    if (p->causal == 2)
        return (int64_t)j < ip;
    return 1;
}

static uint8_t *ts_allowed(ts_problem *p, size_t b, size_t h, size_t i, size_t j)
{
    return &p->allowed[((b * p->H + h) * p->N + i) * p->M + j];
}

/* Masked attention from the library's oracle (kat_attn_reference_masked): precision 64 is the
 * reference, 32 the naive fp32 yardstick (its doubles hold floats exactly). */
static void ts_masked(const ts_problem *p, int precision, double *o, double *lse, double *dq,
                      double *dk, double *dv)
{
    kat_attn_desc d = {p->B, p->H, p->Hkv, p->N, p->M, p->D, p->causal, p->scale, 0};
    kat_tensor tq = kat_tensor_view(p->q, p->B, p->H, p->N, p->D);
    kat_tensor tk = kat_tensor_view(p->k, p->B, p->Hkv, p->M, p->D);
    kat_tensor tv = kat_tensor_view(p->v, p->B, p->Hkv, p->M, p->D);
    kat_tensor tdo = kat_tensor_view(p->dout, p->B, p->H, p->N, p->D);
    TU_OK(kat_attn_reference_masked(&d, p->allowed, precision, &tq, &tk, &tv, &tdo, o, lse, dq,
                                    dk, dv));
}

static void ts_masked_f64(const ts_problem *p, double *o, double *lse, double *dq, double *dk,
                          double *dv)
{
    ts_masked(p, 64, o, lse, dq, dk, dv);
}

static void ts_masked_f32(const ts_problem *p, float *o, float *lse, float *dq, float *dk,
                          float *dv)
{
    size_t nq = p->B * p->H * p->N, nk = p->B * p->Hkv * p->M, D = p->D;
    double *x = malloc((2 * nq * D + nq + 2 * nk * D + 1) * sizeof(double));
    double *xo = x, *xl = xo + nq * D, *xq = xl + nq, *xk = xq + nq * D, *xv = xk + nk * D;
    ts_masked(p, 32, xo, xl, xq, xk, xv);
    for (size_t i = 0; i < nq * D; i++)
        o[i] = (float)xo[i], dq[i] = (float)xq[i];
    for (size_t i = 0; i < nq; i++)
        lse[i] = (float)xl[i];
    for (size_t i = 0; i < nk * D; i++)
        dk[i] = (float)xk[i], dv[i] = (float)xv[i];
    free(x);
}

static double ts_maxerr_f(const float *x, const double *ref, size_t n)
{
    double e = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)x[i] - ref[i]);
        e = d > e || isnan(d) ? d : e;
    }
    return e;
}

static double ts_maxabs(const double *ref, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++)
        m = isfinite(ref[i]) && fabs(ref[i]) > m ? fabs(ref[i]) : m;
    return m;
}

/* The largest sums of absolute terms of each output (the fp32 rounding floor of the error
 * model, as in tests/attn_testutil.h): mag[0] o: sum_j P_ij |v_jd|; mag[1] dq: scale sum_j
 * P_ij (|dO_i|.|v_j| + |dO_i|.|o_i|) |k_jd|; mag[2] dk: the same over i with |q_id|; mag[3]
 * dv: sum_i P_ij |dO_id|; mag[4]: max |lse|. P from the fp64 reference's lse. */
static void ts_magnitudes(const ts_problem *p, const double *o, const double *lse, double mag[5])
{
    size_t D = p->D, g = p->H / p->Hkv, M = p->M, nk = p->B * p->Hkv * M * D;
    double *mk = calloc(nk + 1, sizeof(double)), *mv = calloc(nk + 1, sizeof(double));
    double *mq = calloc(D, sizeof(double)), *mo = calloc(D, sizeof(double));
    for (int t = 0; t < 5; t++)
        mag[t] = 0;
    for (size_t b = 0; b < p->B; b++)
        for (size_t h = 0; h < p->H; h++)
            for (size_t i = 0; i < p->N; i++) {
                size_t r = (b * p->H + h) * p->N + i, hk = h / g;
                if (isinf(lse[r]))
                    continue;
                mag[4] = fmax(mag[4], fabs(lse[r]));
                const float *qi = p->q + r * D, *doi = p->dout + r * D;
                double absdelta = 0;
                for (size_t d = 0; d < D; d++)
                    absdelta += fabs(doi[d] * o[r * D + d]), mq[d] = 0, mo[d] = 0;
                for (size_t j = 0; j < M; j++) {
                    if (!p->allowed[r * M + j])
                        continue;
                    size_t kr = ((b * p->Hkv + hk) * M + j) * D;
                    const float *kj = p->k + kr, *vj = p->v + kr;
                    double s = 0, absdp = 0;
                    for (size_t d = 0; d < D; d++)
                        s += (double)qi[d] * kj[d], absdp += fabs((double)doi[d] * vj[d]);
                    double P = exp(s * p->scale - lse[r]), t = fabs(p->scale) * P * (absdp + absdelta);
                    for (size_t d = 0; d < D; d++) {
                        mo[d] += P * fabs(vj[d]);
                        mq[d] += t * fabs(kj[d]);
                        mk[kr + d] += t * fabs(qi[d]);
                        mv[kr + d] += P * fabs(doi[d]);
                    }
                }
                for (size_t d = 0; d < D; d++)
                    mag[0] = fmax(mag[0], mo[d]), mag[1] = fmax(mag[1], mq[d]);
            }
    for (size_t i = 0; i < nk; i++)
        mag[2] = fmax(mag[2], mk[i]), mag[3] = fmax(mag[3], mv[i]);
    free(mk), free(mv), free(mq), free(mo);
}

/* Error of `got` against ref within the library's error model (kat_attn_error_bound): 2x the
 * naive fp32 error, plus the floor of two roundings (FLT_EPSILON) of the terms' magnitude,
 * which no fp32 implementation avoids; it binds only where the naive result is exact. */
static void ts_check_close(const char *what, const float *got, const float *naive,
                           const double *ref, size_t n, double magnitude)
{
    double e = ts_maxerr_f(got, ref, n), en = ts_maxerr_f(naive, ref, n);
    double tol = kat_attn_error_bound(en, magnitude, 2.0, 0.0);
    ck_assert_msg(e <= tol, "%s: max error %.3g exceeds 2 x naive fp32 (%.3g) + floor = %.3g",
                  what, e, en, tol);
}

/* The logsumexp: -inf exactly where the reference has no key, else close. */
static void ts_check_lse(const float *got, const float *naive, const double *ref, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (isinf(ref[i]))
            ck_assert_msg(got[i] == -INFINITY, "lse[%zu] = %g, expected -inf", i, (double)got[i]);
    float *g2 = calloc(n + 1, sizeof(float)), *n2 = calloc(n + 1, sizeof(float));
    double *r2 = calloc(n + 1, sizeof(double));
    for (size_t i = 0; i < n; i++) {
        int fin = isfinite(ref[i]);
        g2[i] = fin ? got[i] : 0, n2[i] = fin ? naive[i] : 0, r2[i] = fin ? ref[i] : 0;
    }
    ts_check_close("lse", g2, n2, r2, n, ts_maxabs(r2, n));
    free(g2), free(n2), free(r2);
}

/* Run a layout's forward and backward on p and compare every output with the masked fp64
 * reference within the naive-fp32 tolerance. */
static void ts_check_layout(const ts_problem *p, const sp_handle *L)
{
    size_t nq = p->B * p->H * p->N, nk = p->B * p->Hkv * p->M, D = p->D;
    float *o = malloc((nq * D + 1) * sizeof(float)), *lse = malloc((nq + 1) * sizeof(float));
    float *dq = malloc((nq * D + 1) * sizeof(float)), *dk = malloc((nk * D + 1) * sizeof(float));
    float *dv = malloc((nk * D + 1) * sizeof(float));
    /* Poison the outputs: every element must be written. */
    for (size_t i = 0; i < nq * D; i++)
        o[i] = NAN, dq[i] = NAN;
    for (size_t i = 0; i < nq; i++)
        lse[i] = NAN;
    for (size_t i = 0; i < nk * D; i++)
        dk[i] = NAN, dv[i] = NAN;
    kat_tensor tq = kat_tensor_view(p->q, p->B, p->H, p->N, D);
    kat_tensor tk = kat_tensor_view(p->k, p->B, p->Hkv, p->M, D);
    kat_tensor tv = kat_tensor_view(p->v, p->B, p->Hkv, p->M, D);
    kat_tensor tdo = kat_tensor_view(p->dout, p->B, p->H, p->N, D);
    kat_tensor to = kat_tensor_view(o, p->B, p->H, p->N, D);
    kat_tensor tl = kat_tensor_view(lse, p->B, p->H, p->N, 1);
    kat_tensor tdq = kat_tensor_view(dq, p->B, p->H, p->N, D);
    kat_tensor tdk = kat_tensor_view(dk, p->B, p->Hkv, p->M, D);
    kat_tensor tdv = kat_tensor_view(dv, p->B, p->Hkv, p->M, D);
    TU_OK(sp_forward(L, &tq, &tk, &tv, &to, &tl, NULL));
    TU_OK(sp_backward(L, &tq, &tk, &tv, &to, &tl, &tdo, &tdq, &tdk, &tdv, NULL));

    double *ro = malloc((nq * D + 1) * sizeof(double)), *rl = malloc((nq + 1) * sizeof(double));
    double *rdq = malloc((nq * D + 1) * sizeof(double));
    double *rdk = malloc((nk * D + 1) * sizeof(double)), *rdv = malloc((nk * D + 1) * sizeof(double));
    float *no = malloc((nq * D + 1) * sizeof(float)), *nl = malloc((nq + 1) * sizeof(float));
    float *ndq = malloc((nq * D + 1) * sizeof(float)), *ndk = malloc((nk * D + 1) * sizeof(float));
    float *ndv = malloc((nk * D + 1) * sizeof(float));
    ts_masked_f64(p, ro, rl, rdq, rdk, rdv);
    ts_masked_f32(p, no, nl, ndq, ndk, ndv);
    /* The backward starts from the forward's fp32 logsumexp, whose rounding adds up to
     * eps |lse| to every probability's relative error (FlashAttention-2's documented cost):
     * the gradients' floor carries that factor. */
    double mag[5];
    ts_magnitudes(p, ro, rl, mag);
    double lse_factor = 1.0 + mag[4];
    ts_check_close("o", o, no, ro, nq * D, mag[0]);
    ts_check_lse(lse, nl, rl, nq);
    ts_check_close("dq", dq, ndq, rdq, nq * D, mag[1] * lse_factor);
    ts_check_close("dk", dk, ndk, rdk, nk * D, mag[2] * lse_factor);
    ts_check_close("dv", dv, ndv, rdv, nk * D, mag[3] * lse_factor);
    /* Rows with no allowed key: exactly zero output and gradient. */
    for (size_t r = 0; r < nq; r++)
        if (isinf(rl[r]))
            for (size_t d = 0; d < D; d++)
                ck_assert_msg(o[r * D + d] == 0.0f && dq[r * D + d] == 0.0f,
                              "row %zu sees no key but o or dq is nonzero", r);
    free(o), free(lse), free(dq), free(dk), free(dv);
    free(ro), free(rl), free(rdq), free(rdk), free(rdv);
    free(no), free(nl), free(ndq), free(ndk), free(ndv);
}

#endif
