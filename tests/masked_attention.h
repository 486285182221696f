/* Masked softmax attention in fp64 (the reference) and in naive fp32 from the library's oracle
 * (kat_attn_reference_masked), with the terms of the library's error model
 * (kat_attn_error_bound) that the extremes suite and the attention fuzz harnesses use: the
 * FlashAttention rule (no worse than 2x a naive fp32 implementation against fp64) plus an
 * a-priori floor, eps32 x A x (M + D + 8) + 2 x A x dL, where A is the largest sum of
 * absolute terms of an output element and dL the largest rounding error of a logit,
 * (D + 4) eps32 |scale| sum_e |q_e k_e| (a logit off by dL scales each probability by a factor
 * within e^{+-dL}). Header-only, no Check dependency: the fuzz harnesses (fuzz_attn,
 * fuzz_sparse) include it and check through ma_expect_all. */
#ifndef KAT_MASKED_ATTENTION_H
#define KAT_MASKED_ATTENTION_H

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "kat/kat.h"

#define EPS32 5.9604644775390625e-08   /* 2^-24 */

/* ---- a problem and its yardsticks -------------------------------------------------------- */

typedef struct {
    size_t B, H, Hkv, N, M, D;
    int causal;       /* 0, 1 (j <= i + M - N), 2 (j < i + M - N, sparse only) */
    double scale;     /* as given to the engines (0 would mean 1/sqrt(D)) */
    float *q, *k, *v, *dout;
    uint8_t *allowed;   /* [B, H, N, M]: the element mask, causality included */
} prob;

static size_t nq_(const prob *p) { return p->B * p->H * p->N * p->D; }
static size_t nk_(const prob *p) { return p->B * p->Hkv * p->M * p->D; }
static size_t nl_(const prob *p) { return p->B * p->H * p->N; }

static int causal_ok(const prob *p, size_t i, size_t j)
{
    int64_t ip = (int64_t)i + (int64_t)p->M - (int64_t)p->N;
    return p->causal == 1 ? (int64_t)j <= ip : p->causal == 2 ? (int64_t)j < ip : 1;
}

static void *xcalloc(size_t n, size_t sz)
{
    void *x = calloc(n ? n : 1, sz);
    if (!x)
        abort();
    return x;
}

/* Shapes and an all-allowed (causality only) mask; data zero. */
static void prob_init(prob *p, size_t B, size_t H, size_t Hkv, size_t N, size_t M, size_t D,
                      int causal, double scale)
{
    *p = (prob){B, H, Hkv, N, M, D, causal, scale, NULL, NULL, NULL, NULL, NULL};
    p->q = xcalloc(nq_(p), sizeof(float));
    p->dout = xcalloc(nq_(p), sizeof(float));
    p->k = xcalloc(nk_(p), sizeof(float));
    p->v = xcalloc(nk_(p), sizeof(float));
    p->allowed = xcalloc(B * H * N * M, 1);
    for (size_t bh = 0; bh < B * H; bh++)
        for (size_t i = 0; i < N; i++)
            for (size_t j = 0; j < M; j++)
                p->allowed[(bh * N + i) * M + j] = (uint8_t)causal_ok(p, i, j);
}

static void prob_free(prob *p)
{
    free(p->q), free(p->k), free(p->v), free(p->dout), free(p->allowed);
}
static double real_scale(const prob *p)
{
    return p->scale != 0.0 ? p->scale : 1.0 / sqrt((double)p->D);
}

/* Masked attention from the library's oracle (kat_attn_reference_masked): precision 64 is the
 * reference, 32 the naive fp32 implementation (its doubles hold floats exactly). The backward
 * uses that implementation's own o. */
static void masked_run(const prob *p, int precision, double *o, double *lse, double *dq,
                       double *dk, double *dv)
{
    kat_attn_desc d = {p->B, p->H, p->Hkv, p->N, p->M, p->D, p->causal, p->scale, 0};
    kat_tensor tq = kat_tensor_view(p->q, p->B, p->H, p->N, p->D);
    kat_tensor tk = kat_tensor_view(p->k, p->B, p->Hkv, p->M, p->D);
    kat_tensor tv = kat_tensor_view(p->v, p->B, p->Hkv, p->M, p->D);
    kat_tensor tdo = kat_tensor_view(p->dout, p->B, p->H, p->N, p->D);
    if (kat_attn_reference_masked(&d, p->allowed, precision, &tq, &tk, &tv, &tdo, o, lse, dq, dk,
                                  dv)) {
        fprintf(stderr, "masked attention oracle: %s\n", kat_last_error());
        abort();
    }
}

static void masked_f64(const prob *p, double *o, double *lse, double *dq, double *dk,
                       double *dv)
{
    masked_run(p, 64, o, lse, dq, dk, dv);
}

static void masked_f32(const prob *p, float *o, float *lse, float *dq, float *dk, float *dv)
{
    double *x = xcalloc(2 * nq_(p) + nl_(p) + 2 * nk_(p) + 1, sizeof(double));
    double *xo = x, *xl = xo + nq_(p), *xq = xl + nl_(p), *xk = xq + nq_(p), *xv = xk + nk_(p);
    masked_run(p, 32, xo, xl, xq, xk, xv);
    for (size_t i = 0; i < nq_(p); i++)
        o[i] = (float)xo[i], dq[i] = (float)xq[i];
    for (size_t i = 0; i < nl_(p); i++)
        lse[i] = (float)xl[i];
    for (size_t i = 0; i < nk_(p); i++)
        dk[i] = (float)xk[i], dv[i] = (float)xv[i];
    free(x);
}

/* ---- comparison ----------------------------------------------------------------------------- */

typedef struct {
    double *o, *lse, *dq, *dk, *dv;   /* fp64 reference */
    float *no, *nlse, *ndq, *ndk, *ndv;   /* naive fp32 */
    double A_o, A_dq, A_dk, A_dv;   /* largest sums of absolute terms */
    double dL;                      /* largest logit rounding error */
    double lse_max;
} yardstick;

static void yardstick_init(yardstick *y, const prob *p)
{
    y->o = xcalloc(nq_(p), sizeof(double)), y->lse = xcalloc(nl_(p), sizeof(double));
    y->dq = xcalloc(nq_(p), sizeof(double)), y->dk = xcalloc(nk_(p), sizeof(double));
    y->dv = xcalloc(nk_(p), sizeof(double));
    y->no = xcalloc(nq_(p), sizeof(float)), y->nlse = xcalloc(nl_(p), sizeof(float));
    y->ndq = xcalloc(nq_(p), sizeof(float)), y->ndk = xcalloc(nk_(p), sizeof(float));
    y->ndv = xcalloc(nk_(p), sizeof(float));
    masked_f64(p, y->o, y->lse, y->dq, y->dk, y->dv);
    masked_f32(p, y->no, y->nlse, y->ndq, y->ndk, y->ndv);
    /* The floor's magnitudes, from the reference probabilities. */
    size_t D = p->D, M = p->M, g = p->Hkv ? p->H / p->Hkv : 1;
    double sc = fabs(real_scale(p));
    double *pr = xcalloc(M, sizeof(double)), *ds = xcalloc(M, sizeof(double));
    double *ak = xcalloc(nk_(p), sizeof(double)), *av = xcalloc(nk_(p), sizeof(double));
    y->A_o = y->A_dq = y->A_dk = y->A_dv = y->dL = y->lse_max = 0;
    for (size_t b = 0; b < p->B; b++)
        for (size_t h = 0; h < p->H; h++)
            for (size_t i = 0; i < p->N; i++) {
                size_t row = (b * p->H + h) * p->N + i, hk = h / g;
                const float *qi = p->q + row * D, *di = p->dout + row * D;
                const uint8_t *al = p->allowed + row * M;
                double lse = y->lse[row];
                if (isinf(lse))
                    continue;
                if (fabs(lse) > y->lse_max)
                    y->lse_max = fabs(lse);
                double dabs = 0;   /* |delta_i| <= sum_e |dO_ie o_ie| */
                for (size_t e = 0; e < D; e++)
                    dabs += fabs((double)di[e] * y->o[row * D + e]);
                /* Per key: the probability and |dS_ij| <= P_ij (sum_e |dO_ie v_je| + dabs). */
                for (size_t j = 0; j < M; j++) {
                    pr[j] = ds[j] = 0;
                    if (!al[j])
                        continue;
                    size_t kr = ((b * p->Hkv + hk) * M + j) * D;
                    double s = 0, sa = 0, dpa = 0;
                    for (size_t e = 0; e < D; e++) {
                        s += (double)qi[e] * p->k[kr + e];
                        sa += fabs((double)qi[e] * p->k[kr + e]);
                        dpa += fabs((double)di[e] * p->v[kr + e]);
                    }
                    pr[j] = exp(s * real_scale(p) - lse);
                    ds[j] = pr[j] * (dpa + dabs);
                    double dl = (double)(D + 4) * EPS32 * sc * sa;
                    if (dl > y->dL)
                        y->dL = dl;
                    for (size_t e = 0; e < D; e++) {
                        ak[kr + e] += sc * ds[j] * fabs((double)qi[e]);
                        av[kr + e] += pr[j] * fabs((double)di[e]);
                    }
                }
                for (size_t e = 0; e < D; e++) {
                    double ao = 0, aq = 0;
                    for (size_t j = 0; j < M; j++) {
                        if (!al[j])
                            continue;
                        size_t kr = ((b * p->Hkv + hk) * M + j) * D;
                        ao += pr[j] * fabs((double)p->v[kr + e]);
                        aq += sc * ds[j] * fabs((double)p->k[kr + e]);
                    }
                    if (ao > y->A_o)
                        y->A_o = ao;
                    if (aq > y->A_dq)
                        y->A_dq = aq;
                }
            }
    for (size_t i = 0; i < nk_(p); i++) {
        if (ak[i] > y->A_dk)
            y->A_dk = ak[i];
        if (av[i] > y->A_dv)
            y->A_dv = av[i];
    }
    free(pr), free(ds), free(ak), free(av);
}

static void yardstick_free(yardstick *y)
{
    free(y->o), free(y->lse), free(y->dq), free(y->dk), free(y->dv);
    free(y->no), free(y->nlse), free(y->ndq), free(y->ndk), free(y->ndv);
}

/* Largest |x - ref|; non-finite x counts as +inf unless it equals an infinite ref. */
static double max_err(const float *x, const double *ref, size_t n)
{
    double e = 0;
    for (size_t i = 0; i < n; i++) {
        if (isinf(ref[i]) && (double)x[i] == ref[i])
            continue;
        double a = fabs((double)x[i] - ref[i]);
        if (!(a <= e))
            e = isnan(a) ? INFINITY : a;
    }
    return e;
}

/* The bound for an output whose naive fp32 error is nerr and whose magnitude is A. */
static double ma_bound(const prob *p, const yardstick *y, double A, double nerr)
{
    return kat_attn_error_bound(nerr, A, (double)(p->M + p->D + 8), y->dL);
}

/* The bound for the logsumexp: its own fp32 rounding, the logits' and the sum's. */
static double ma_lse_bound(const prob *p, const yardstick *y, double nerr)
{
    return kat_attn_error_bound(nerr, 1.0, (double)(p->M + 4) * (1.0 + y->lse_max), y->dL / 2);
}

/* ---- the fuzz harnesses' check ------------------------------------------------------------ */

/* Outputs of an engine (contiguous floats; lse and the gradients may be NULL) against the
 * reference within the bound, rows that see no key exactly 0 with lse = -inf; aborts naming
 * `who` and the output otherwise. */
static inline void ma_expect_within(const float *x, const float *naive, const double *ref,
                                    size_t n, double A, const prob *p, const yardstick *y,
                                    const char *who, const char *what)
{
    double err = max_err(x, ref, n), bound = ma_bound(p, y, A, max_err(naive, ref, n));
    if (!(err <= bound)) {
        fprintf(stderr, "%s: %s error %.3g above the bound %.3g\n", who, what, err, bound);
        abort();
    }
}

static inline void ma_expect_all(const prob *p, const float *o, const float *lse,
                                 const float *dq, const float *dk, const float *dv,
                                 const char *who)
{
    yardstick y;
    yardstick_init(&y, p);
    ma_expect_within(o, y.no, y.o, nq_(p), y.A_o, p, &y, who, "o");
    if (lse) {
        double err = max_err(lse, y.lse, nl_(p)), nerr = max_err(y.nlse, y.lse, nl_(p));
        if (!(err <= ma_lse_bound(p, &y, nerr))) {
            fprintf(stderr, "%s: lse error %.3g above the bound %.3g\n", who, err,
                    ma_lse_bound(p, &y, nerr));
            abort();
        }
    }
    for (size_t r = 0; r < nl_(p); r++) {
        if (!isinf(y.lse[r]))
            continue;
        int ok = !lse || isinf(lse[r]);
        for (size_t e = 0; e < p->D; e++)
            ok &= o[r * p->D + e] == 0.0f && (!dq || dq[r * p->D + e] == 0.0f);
        if (!ok) {
            fprintf(stderr, "%s: row %zu sees no key but is not 0 with lse = -inf\n", who, r);
            abort();
        }
    }
    if (lse)
        for (size_t r = 0; r < nl_(p); r++)
            if (isinf(lse[r]) && !isinf(y.lse[r])) {
                fprintf(stderr, "%s: row %zu has lse = -inf but sees a key\n", who, r);
                abort();
            }
    if (dq) {
        ma_expect_within(dq, y.ndq, y.dq, nq_(p), y.A_dq, p, &y, who, "dq");
        ma_expect_within(dk, y.ndk, y.dk, nk_(p), y.A_dk, p, &y, who, "dk");
        ma_expect_within(dv, y.ndv, y.dv, nk_(p), y.A_dv, p, &y, who, "dv");
    }
    yardstick_free(&y);
}

#endif
