/* Shared by test_attn.c and test_attn_slow.c: problem set-up in several memory layouts, a naive
 * fp32 attention (the error yardstick), and the check "the flash engine's maximum error against
 * the fp64 reference is at most twice the naive fp32 one's" for every ISA's kernels.
 *
 * The 2x rule is FlashAttention's (arXiv 2205.14135, 2307.08691). Its floor: eps times the
 * largest sum of absolute terms of an output (e.g. sum_j P_ij |v_j| for o, or
 * scale sum_j P_ij (sum_d |dO_id v_jd| + sum_d |dO_id o_id|) |k_j| for dq) - one rounding of
 * the terms, which no fp32 implementation avoids - so a result passes where the naive
 * implementation happens to be exact (M = 1, or dq = 0 through exact cancellation). For large
 * problems the 2x term is the binding one. Small problems compare maxima over several random
 * instances (at_instances).
 *
 * The backward runs twice: without a logsumexp (the engine recomputes the softmax statistics)
 * under exactly that rule, and from the forward's fp32 logsumexp (FlashAttention-2's way),
 * whose rounding adds up to eps |lse| to every probability's relative error: that path gets
 * the extra term eps * max|lse| * magnitude, the documented cost of an fp32 logsumexp. */
#ifndef KAT_ATTN_TESTUTIL_H
#define KAT_ATTN_TESTUTIL_H

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "kernels/kernels.h"
#include "testutil.h"

static const char *kat_kernels_name(kat_arch a)
{
    const kat_kernels *k = kat__kernels_for(a);
    return k ? k->name : "?";
}

enum { LAYOUT_CONTIGUOUS = 0, LAYOUT_BNHD = 1, LAYOUT_PADDED = 2, LAYOUT_COUNT = 3 };
static const char *const layout_names[] = {"contiguous", "[B,N,H,D]", "padded rows"};

/* A view over fresh memory (malloc'd, freed with free(view.data)) in one of the layouts. */
static kat_tensor at_alloc_view(size_t B, size_t H, size_t N, size_t D, int layout)
{
    kat_tensor t = {NULL, B, H, N, D, 0, 0, 0};
    size_t total;
    switch (layout) {
    case LAYOUT_BNHD:   /* a [B, N, H, D] buffer seen as [B, H, N, D] */
        t.sn = H * D, t.sh = D, t.sb = N * H * D, total = B * N * H * D;
        break;
    case LAYOUT_PADDED:   /* rows of D + 5 floats, heads padded by one row */
        t.sn = D + 5, t.sh = (N + 1) * t.sn, t.sb = H * t.sh, total = B * t.sb;
        break;
    default:
        t.sn = D, t.sh = N * D, t.sb = H * N * D, total = B * H * N * D;
        break;
    }
    t.data = malloc((total ? total : 1) * sizeof(float));
    ck_assert_ptr_nonnull(t.data);
    for (size_t i = 0; i < total; i++)   /* padding holds a value that must never leak */
        t.data[i] = 12345.0f;
    return t;
}

static void at_fill(kat_tensor *t, kat_rng *rng, double sigma)
{
    for (size_t b = 0; b < t->B; b++)
        for (size_t h = 0; h < t->H; h++)
            for (size_t n = 0; n < t->N; n++)
                for (size_t d = 0; d < t->D; d++)
                    kat_tensor_row(t, b, h, n)[d] = (float)kat_rng_gaussian(rng, sigma);
}

/* Largest |t - ref| over the view's elements (ref contiguous); NaN/inf in t counts as +inf. */
static double at_err(const kat_tensor *t, const double *ref)
{
    double e = 0.0;
    size_t i = 0;
    for (size_t b = 0; b < t->B; b++)
        for (size_t h = 0; h < t->H; h++)
            for (size_t n = 0; n < t->N; n++)
                for (size_t d = 0; d < t->D; d++, i++) {
                    double x = kat_tensor_row(t, b, h, n)[d];
                    if (isinf(ref[i]) && x == ref[i])
                        continue;
                    double a = fabs(x - ref[i]);
                    if (!(a <= e))
                        e = isnan(a) ? INFINITY : a;
                }
    return e;
}

static double at_err_f(const float *x, const double *ref, size_t n)
{
    double e = 0.0;
    for (size_t i = 0; i < n; i++) {
        if (isinf(ref[i]) && (double)x[i] == ref[i])
            continue;
        double a = fabs((double)x[i] - ref[i]);
        if (!(a <= e))
            e = isnan(a) ? INFINITY : a;
    }
    return e;
}

static double at_maxabs(const double *x, size_t n)
{
    double m = 0.0;
    for (size_t i = 0; i < n; i++)
        if (isfinite(x[i]) && fabs(x[i]) > m)
            m = fabs(x[i]);
    return m;
}

static size_t at_visible(const kat_attn_desc *d, size_t n)
{
    if (!d->causal)
        return d->M;
    long long lim = (long long)n + (long long)d->M - (long long)d->N;
    if (lim < 0)
        return 0;
    return (size_t)lim + 1 < d->M ? (size_t)lim + 1 : d->M;
}

static float at_dot(const float *a, const float *b, size_t D)
{
    float s = 0.0f;
    for (size_t i = 0; i < D; i++)
        s += a[i] * b[i];
    return s;
}

static double at_absdot(const float *a, const float *b, size_t D)
{
    double s = 0.0;
    for (size_t i = 0; i < D; i++)
        s += fabs((double)a[i] * b[i]);
    return s;
}

/* The naive fp32 forward (and, with dout, backward) of the textbook: every row's logits, its
 * softmax, its outputs, all in float, in order. Outputs contiguous; any may be NULL. */
/* The logits, softmax and probabilities of query row (b, h, n) in float, in order: p[j] for
 * j < *cnt; returns the row's max and sum through mx, sum. */
static void at_naive_row(const kat_attn_desc *d, const kat_tensor *q, const kat_tensor *k,
                         size_t b, size_t h, size_t n, float *p, size_t *cnt, float *mx,
                         float *sum)
{
    size_t hk = h / (d->H / d->H_kv);
    const float *qr = kat_tensor_row(q, b, h, n);
    float sc = (float)d->scale, m = -INFINITY, s = 0.0f;
    *cnt = at_visible(d, n);
    for (size_t j = 0; j < *cnt; j++) {
        p[j] = at_dot(qr, kat_tensor_row(k, b, hk, j), d->D) * sc;
        m = p[j] > m ? p[j] : m;
    }
    for (size_t j = 0; j < *cnt; j++)
        s += (p[j] = expf(p[j] - m));
    for (size_t j = 0; j < *cnt; j++)
        p[j] /= s;
    *mx = m;
    *sum = s;
}

/* The naive fp32 attention of the textbook: every row's logits, softmax, output and, with
 * dout, gradients, all in float, each sum in order (rows are spread over threads, each value
 * computed as by a serial loop). Outputs contiguous; any may be NULL. mag[0..4] receive the
 * largest sums of absolute terms of o, lse, dq, dk, dv (see above). */
static void at_naive(const kat_attn_desc *d, const kat_tensor *q, const kat_tensor *k,
                     const kat_tensor *v, const kat_tensor *dout, float *o, float *lse,
                     float *dq, float *dk, float *dv, double mag[5])
{
    size_t g = d->H / d->H_kv, D = d->D, rows = d->B * d->H * d->N;
    size_t krows = d->B * d->H_kv * d->M;
    float sc = (float)d->scale;
    float *delta = malloc((rows + 1) * sizeof(float));
    float *rmax = malloc((rows + 1) * sizeof(float)), *rsum = malloc((rows + 1) * sizeof(float));
    double *absdelta = malloc((rows + 1) * sizeof(double));
    double m0 = 0, m1 = 0, m2 = 0, m3 = 0, m4 = 0;
#pragma omp parallel reduction(max : m0, m1, m2, m3, m4) if (rows * d->M * D > (1u << 16))
    {
        float *p = malloc((d->M ? d->M : 1) * sizeof(float)), *orow = malloc(D * sizeof(float));
        double *mq = malloc(D * sizeof(double));
#pragma omp for schedule(dynamic, 4)
        for (size_t r = 0; r < rows; r++) {
            size_t n = r % d->N, bh = r / d->N, b = bh / d->H, h = bh % d->H, hk = h / g, cnt;
            float mx, sum;
            at_naive_row(d, q, k, b, h, n, p, &cnt, &mx, &sum);
            rmax[r] = mx;
            rsum[r] = sum;
            for (size_t e = 0; e < D; e++) {
                float a = 0.0f;
                double m = 0.0;
                for (size_t j = 0; j < cnt; j++) {
                    a += p[j] * kat_tensor_row(v, b, hk, j)[e];
                    m += p[j] * fabs(kat_tensor_row(v, b, hk, j)[e]);
                }
                orow[e] = a;
                m0 = m > m0 ? m : m0;
            }
            if (cnt)
                m1 = fmax(m1, fabs((double)mx + log(sum)));
            if (o)
                memcpy(o + r * D, orow, D * sizeof(float));
            if (lse)
                lse[r] = cnt ? mx + logf(sum) : -INFINITY;
            if (!dout)
                continue;
            const float *dor = kat_tensor_row(dout, b, h, n);
            delta[r] = at_dot(dor, orow, D);
            absdelta[r] = at_absdot(dor, orow, D);
            for (size_t e = 0; e < D; e++)
                mq[e] = 0.0;
            if (dq)
                memset(dq + r * D, 0, D * sizeof(float));
            for (size_t j = 0; j < cnt; j++) {
                const float *kr = kat_tensor_row(k, b, hk, j), *vr = kat_tensor_row(v, b, hk, j);
                float ds = p[j] * (at_dot(dor, vr, D) - delta[r]);
                /* dS's terms: the products of dP_j's and delta's dot products */
                double dsa = fabs(sc) * p[j] * (at_absdot(dor, vr, D) + absdelta[r]);
                for (size_t e = 0; e < D; e++) {
                    if (dq)
                        dq[r * D + e] += sc * ds * kr[e];
                    mq[e] += dsa * fabs(kr[e]);
                }
            }
            for (size_t e = 0; e < D; e++)
                m2 = mq[e] > m2 ? mq[e] : m2;
        }
        /* dk and dv: key rows over threads, each summing its query rows in row order. */
        if (dout) {
            double *mk = malloc(D * sizeof(double)), *mv = malloc(D * sizeof(double));
#pragma omp for schedule(dynamic, 4)
            for (size_t kr_i = 0; kr_i < krows; kr_i++) {
                size_t j = kr_i % d->M, bhk = kr_i / d->M, b = bhk / d->H_kv, hk = bhk % d->H_kv;
                const float *kr = kat_tensor_row(k, b, hk, j), *vr = kat_tensor_row(v, b, hk, j);
                float *dkr = dk ? dk + kr_i * D : NULL, *dvr = dv ? dv + kr_i * D : NULL;
                for (size_t e = 0; e < D; e++) {
                    mk[e] = mv[e] = 0.0;
                    if (dkr)
                        dkr[e] = 0.0f;
                    if (dvr)
                        dvr[e] = 0.0f;
                }
                for (size_t t = 0; t < g; t++) {
                    size_t h = hk * g + t;
                    for (size_t n = 0; n < d->N; n++) {
                        size_t r = (b * d->H + h) * d->N + n;
                        if (at_visible(d, n) <= j)
                            continue;
                        const float *qr = kat_tensor_row(q, b, h, n);
                        const float *dor = kat_tensor_row(dout, b, h, n);
                        /* P_nj exactly as at_naive_row computed it */
                        float pj = expf(at_dot(qr, kr, D) * sc - rmax[r]) / rsum[r];
                        float ds = pj * (at_dot(dor, vr, D) - delta[r]);
                        double dsa = fabs(sc) * pj * (at_absdot(dor, vr, D) + absdelta[r]);
                        for (size_t e = 0; e < D; e++) {
                            if (dkr)
                                dkr[e] += sc * ds * qr[e];
                            if (dvr)
                                dvr[e] += pj * dor[e];
                            mk[e] += dsa * fabs(qr[e]);
                            mv[e] += pj * fabs(dor[e]);
                        }
                    }
                }
                for (size_t e = 0; e < D; e++) {
                    m3 = mk[e] > m3 ? mk[e] : m3;
                    m4 = mv[e] > m4 ? mv[e] : m4;
                }
            }
            free(mk), free(mv);
        }
        free(p), free(orow), free(mq);
    }
    mag[0] = m0, mag[1] = m1, mag[2] = m2, mag[3] = m3, mag[4] = m4;
    free(delta), free(absdelta), free(rmax), free(rsum);
}

/* Outputs compared: o, lse, dq, dk, dv, and dq, dk, dv of the backward from the fp32 lse. */
enum { AT_O, AT_LSE, AT_DQ, AT_DK, AT_DV, AT_DQ_LSE, AT_DK_LSE, AT_DV_LSE, AT_NOUT };
static const char *const at_out_names[AT_NOUT] = {"o",  "lse",    "dq",     "dk",
                                                  "dv", "dq/lse", "dk/lse", "dv/lse"};

/* Everything one random instance needs. */
typedef struct {
    kat_attn_desc d;   /* resolved */
    int layout;
    kat_tensor q, k, v, dout, o, lse, dq, dk, dv;
    double *ro, *rlse, *rdq, *rdk, *rdv;   /* fp64 reference */
    double naive[5];   /* the naive fp32 errors of o, lse, dq, dk, dv */
    double mag[5];     /* their largest sums of absolute terms */
    double lse_max;    /* max |lse| */
} at_case;

/* Allocate, fill, and compute the reference and the naive errors. logit_sigma is the spread
 * of the logits (1: unit variance). */
static void at_case_init(at_case *c, const kat_attn_desc *desc, int layout, uint64_t seed,
                         double logit_sigma, int backward)
{
    memset(c, 0, sizeof *c);
    TU_OK(kat_attn_desc_check(desc, &c->d));
    const kat_attn_desc *d = &c->d;
    c->layout = layout;
    c->q = at_alloc_view(d->B, d->H, d->N, d->D, layout);
    c->k = at_alloc_view(d->B, d->H_kv, d->M, d->D, layout);
    c->v = at_alloc_view(d->B, d->H_kv, d->M, d->D, layout);
    c->o = at_alloc_view(d->B, d->H, d->N, d->D, layout);
    c->lse = at_alloc_view(d->B, d->H, d->N, 1, layout);
    kat_rng *rng;
    TU_OK(kat_rng_create(seed, &rng));
    /* q.k has variance D sigma^4 and the scale is 1/sqrt(D): logits have spread sigma^2. */
    double sigma = sqrt(logit_sigma);
    at_fill(&c->q, rng, sigma);
    at_fill(&c->k, rng, sigma);
    at_fill(&c->v, rng, 1.0);
    size_t nq = d->B * d->H * d->N, nk = d->B * d->H_kv * d->M;
    c->ro = malloc((nq * d->D + 1) * sizeof(double));
    c->rlse = malloc((nq + 1) * sizeof(double));
    TU_OK(kat_attn_reference_forward(d, &c->q, &c->k, &c->v, c->ro, c->rlse));
    float *no = malloc((nq * d->D + 1) * sizeof(float)), *nl = malloc((nq + 1) * sizeof(float));
    float *ndq = NULL, *ndk = NULL, *ndv = NULL;
    if (backward) {
        c->dout = at_alloc_view(d->B, d->H, d->N, d->D, layout);
        c->dq = at_alloc_view(d->B, d->H, d->N, d->D, layout);
        c->dk = at_alloc_view(d->B, d->H_kv, d->M, d->D, layout);
        c->dv = at_alloc_view(d->B, d->H_kv, d->M, d->D, layout);
        at_fill(&c->dout, rng, 1.0);
        c->rdq = malloc((nq * d->D + 1) * sizeof(double));
        c->rdk = malloc((nk * d->D + 1) * sizeof(double));
        c->rdv = malloc((nk * d->D + 1) * sizeof(double));
        TU_OK(kat_attn_reference_backward(d, &c->q, &c->k, &c->v, &c->dout, c->rdq, c->rdk,
                                          c->rdv));
        ndq = malloc((nq * d->D + 1) * sizeof(float));
        ndk = malloc((nk * d->D + 1) * sizeof(float));
        ndv = malloc((nk * d->D + 1) * sizeof(float));
    }
    at_naive(d, &c->q, &c->k, &c->v, backward ? &c->dout : NULL, no, nl, ndq, ndk, ndv, c->mag);
    c->naive[AT_O] = at_err_f(no, c->ro, nq * d->D);
    c->naive[AT_LSE] = at_err_f(nl, c->rlse, nq);
    c->lse_max = at_maxabs(c->rlse, nq);
    if (backward) {
        c->naive[AT_DQ] = at_err_f(ndq, c->rdq, nq * d->D);
        c->naive[AT_DK] = at_err_f(ndk, c->rdk, nk * d->D);
        c->naive[AT_DV] = at_err_f(ndv, c->rdv, nk * d->D);
    }
    free(no), free(nl), free(ndq), free(ndk), free(ndv);
    kat_rng_destroy(rng);
}

static void at_case_free(at_case *c)
{
    kat_tensor *ts[] = {&c->q, &c->k, &c->v, &c->dout, &c->o, &c->lse, &c->dq, &c->dk, &c->dv};
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++)
        free(ts[i]->data);
    free(c->ro), free(c->rlse), free(c->rdq), free(c->rdk), free(c->rdv);
}

/* Run the flash engine with one ISA's kernels; err[] receives its errors (AT_NOUT). */
static void at_run_isa(at_case *c, kat_arch arch, int backward, double *err)
{
    kat_arch saved = kat_arch_get();
    TU_OK(kat_arch_set(arch));
    kat_attn_plan *plan;
    TU_OK(kat_attn_plan_create(&c->d, NULL, &plan));
    TU_OK(kat_arch_set(saved));
    for (int i = 0; i < AT_NOUT; i++)
        err[i] = 0.0;
    TU_OK(kat_attn_forward(plan, NULL, &c->q, &c->k, &c->v, &c->o, &c->lse, NULL));
    err[AT_O] = at_err(&c->o, c->ro);
    err[AT_LSE] = at_err(&c->lse, c->rlse);
    if (backward) {
        TU_OK(kat_attn_backward(plan, NULL, &c->q, &c->k, &c->v, &c->o, NULL, &c->dout, &c->dq,
                                &c->dk, &c->dv, NULL));
        err[AT_DQ] = at_err(&c->dq, c->rdq);
        err[AT_DK] = at_err(&c->dk, c->rdk);
        err[AT_DV] = at_err(&c->dv, c->rdv);
        TU_OK(kat_attn_backward(plan, NULL, &c->q, &c->k, &c->v, &c->o, &c->lse, &c->dout, &c->dq,
                                &c->dk, &c->dv, NULL));
        err[AT_DQ_LSE] = at_err(&c->dq, c->rdq);
        err[AT_DK_LSE] = at_err(&c->dk, c->rdk);
        err[AT_DV_LSE] = at_err(&c->dv, c->rdv);
    }
    kat_attn_plan_destroy(plan);
}

/* The tolerances from the naive errors, magnitudes and |lse| (maxima over instances). */
static void at_tolerances(const double *naive, const double *mag, double lse_max, double *tol)
{
    /* the library's error model: 2x naive plus two roundings (FLT_EPSILON) of the magnitude,
     * and for gradients from the fp32 logsumexp that floor times (1 + max |lse|) */
    for (int i = 0; i < 5; i++)
        tol[i] = kat_attn_error_bound(naive[i], mag[i], 2.0, 0.0);
    for (int i = 0; i < 3; i++)
        tol[AT_DQ_LSE + i] = kat_attn_error_bound(naive[AT_DQ + i], mag[AT_DQ + i],
                                                  2.0 * (1.0 + lse_max), 0.0);
}

static void at_assert(const double *err, const double *tol, int backward, const char *isa,
                      const kat_attn_desc *d, int layout, int instances)
{
    for (int i = 0; i < (backward ? AT_NOUT : 2); i++) {
        if (getenv("AT_VERBOSE"))
            printf("# %-6s %-7s N=%-5zu M=%-5zu D=%-4zu causal=%d x%d err/tol %.3f\n",
                   at_out_names[i], isa, d->N, d->M, d->D, d->causal, instances,
                   err[i] / tol[i]);
        ck_assert_msg(err[i] <= tol[i],
                      "%s (%s): max error %.3g exceeds 2x naive fp32 + floor = %.3g for B=%zu "
                      "H=%zu H_kv=%zu N=%zu M=%zu D=%zu causal=%d layout=%s (%d instances)",
                      at_out_names[i], isa, err[i], tol[i], d->B, d->H, d->H_kv, d->N, d->M,
                      d->D, d->causal, layout_names[layout], instances);
    }
}

/* Check one instance with one ISA against its own naive errors. */
static __attribute__((unused)) void at_check_isa(at_case *c, kat_arch arch, int backward)
{
    double err[AT_NOUT], tol[AT_NOUT];
    at_run_isa(c, arch, backward, err);
    at_tolerances(c->naive, c->mag, c->lse_max, tol);
    at_assert(err, tol, backward, kat_kernels_name(arch), &c->d, c->layout, 1);
}

/* Random instances for a problem: the maximum error over a small tensor is a noisy statistic
 * (variants of the naive algorithm itself differ by 4x on one instance of N = 1, M = 65), so
 * small problems take the maxima over several instances, enough for about at_pair_target
 * (query, key) pairs, at most at_max_instances (the fast suite uses fewer than the slow). */
static size_t at_pair_target = 32768;
static size_t at_max_instances = 8;

static int at_instances(const kat_attn_desc *d)
{
    size_t pairs = d->B * d->H * (d->N ? d->N : 1) * (d->M ? d->M : 1);
    size_t k = (at_pair_target + pairs - 1) / pairs;
    return (int)(k < 1 ? 1 : k > at_max_instances ? at_max_instances : k);
}

/* The whole check of one problem: every ISA this CPU and build support, the maxima of the
 * errors over at_instances() random instances compared with the naive's maxima. */
static void at_check(const kat_attn_desc *desc, int layout, uint64_t seed, int backward)
{
    int K = at_instances(desc);
    double naive[5] = {0}, mag[5] = {0}, lse_max = 0.0;
    double err[KAT_ARCH_COUNT][AT_NOUT] = {{0}};
    kat_attn_desc d = *desc;
    for (int s = 0; s < K; s++) {
        at_case c;
        at_case_init(&c, desc, layout, seed + 7919u * (uint64_t)s, 1.0, backward);
        d = c.d;
        for (int i = 0; i < 5; i++) {
            naive[i] = fmax(naive[i], c.naive[i]);
            mag[i] = fmax(mag[i], c.mag[i]);
        }
        lse_max = fmax(lse_max, c.lse_max);
        for (int a = 0; a < KAT_ARCH_COUNT; a++)
            if (kat_arch_supported((kat_arch)a)) {
                double e[AT_NOUT];
                at_run_isa(&c, (kat_arch)a, backward, e);
                for (int i = 0; i < AT_NOUT; i++)
                    err[a][i] = fmax(err[a][i], e[i]);
            }
        at_case_free(&c);
    }
    double tol[AT_NOUT];
    at_tolerances(naive, mag, lse_max, tol);
    for (int a = 0; a < KAT_ARCH_COUNT; a++)
        if (kat_arch_supported((kat_arch)a))
            at_assert(err[a], tol, backward, kat_kernels_name((kat_arch)a), &d, layout, K);
}

#endif
