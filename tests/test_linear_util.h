/* Helpers shared by the linear-attention suites (test_linear.c, test_linear_slow.c): tensors,
 * two user-written feature maps, the fp32 yardsticks (a token-by-token recurrence written
 * here, the library's naive fp32 quadratic attention) and error measures. Header-only: each
 * suite is one file. */
#ifndef KAT_TEST_LINEAR_UTIL_H
#define KAT_TEST_LINEAR_UTIL_H

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "testutil.h"

#define EPS32 5.960464477539063e-08   /* unit roundoff of fp32, 2^-24 */

/* ---- tensors --------------------------------------------------------------------------- */

static inline kat_tensor tl_tensor(size_t B, size_t H, size_t N, size_t D)
{
    size_t n = B * H * N * D;
    float *data = calloc(n ? n : 1, sizeof(float));
    ck_assert_ptr_nonnull(data);
    return kat_tensor_view(data, B, H, N, D);
}

/* A [B, N, H, D] buffer seen as [B, H, N, D]: strided, not contiguous. */
static inline kat_tensor tl_tensor_bnhd(size_t B, size_t H, size_t N, size_t D)
{
    size_t n = B * H * N * D;
    float *data = calloc(n ? n : 1, sizeof(float));
    ck_assert_ptr_nonnull(data);
    kat_tensor t = {data, B, H, N, D, N * H * D, D, H * D};
    return t;
}

static inline void tl_free(kat_tensor *t)
{
    free(t->data);
    t->data = NULL;
}

static inline void tl_fill(kat_tensor *t, kat_rng *rng, double sigma, double shift)
{
    for (size_t b = 0; b < t->B; b++)
        for (size_t h = 0; h < t->H; h++)
            for (size_t n = 0; n < t->N; n++)
                for (size_t j = 0; j < t->D; j++)
                    kat_tensor_row(t, b, h, n)[j] = (float)(shift + kat_rng_gaussian(rng, sigma));
}

static inline void tl_copy(kat_tensor *dst, const kat_tensor *src)
{
    for (size_t b = 0; b < src->B; b++)
        for (size_t h = 0; h < src->H; h++)
            for (size_t n = 0; n < src->N; n++)
                memcpy(kat_tensor_row(dst, b, h, n), kat_tensor_row(src, b, h, n),
                       src->D * sizeof(float));
}

/* Rows [n0, n0 + n) of t as a view. */
static inline kat_tensor tl_rows(const kat_tensor *t, size_t n0, size_t n)
{
    kat_tensor v = *t;
    v.data = t->data + n0 * t->sn;
    v.N = n;
    return v;
}

/* Relative Frobenius error |x - ref| / |ref| of a tensor against a contiguous fp64 array. */
static inline double tl_rel_err(const kat_tensor *x, const double *ref)
{
    double num = 0.0, den = 0.0;
    size_t i = 0;
    for (size_t b = 0; b < x->B; b++)
        for (size_t h = 0; h < x->H; h++)
            for (size_t n = 0; n < x->N; n++)
                for (size_t j = 0; j < x->D; j++, i++) {
                    double e = kat_tensor_row(x, b, h, n)[j] - ref[i];
                    num += e * e;
                    den += ref[i] * ref[i];
                }
    return den > 0.0 ? sqrt(num / den) : sqrt(num);
}

static inline double tl_rel_err64(const double *x, const double *ref, size_t n)
{
    double num = 0.0, den = 0.0;
    for (size_t i = 0; i < n; i++) {
        num += (x[i] - ref[i]) * (x[i] - ref[i]);
        den += ref[i] * ref[i];
    }
    return den > 0.0 ? sqrt(num / den) : sqrt(num);
}

static inline double *tl_dalloc(size_t n)
{
    double *p = calloc(n ? n : 1, sizeof(double));
    ck_assert_ptr_nonnull(p);
    return p;
}

/* ---- user maps written here, independent of the library's ---------------------------------- */

/* f(x) = 1 + x + x^2/2 through features [1, x, x (x) x / sqrt 2] (D = 1 + d + d^2): positive
 * (no real root) and exact; fp64 callbacks only, so the engine's fp64 round trip is used. */
typedef struct {
    size_t d;
} tl_poly2_state;

static kat_status tl_poly2_apply(const void *st, kat_side side, size_t n, const double *x,
                                 size_t ldx, double *f, size_t ldf)
{
    size_t d = ((const tl_poly2_state *)st)->d;
    for (size_t i = 0; i < n; i++) {
        const double *xi = x + i * ldx;
        double *fi = f + i * ldf;
        fi[0] = 1.0;
        for (size_t a = 0; a < d; a++)
            fi[1 + a] = xi[a];
        for (size_t a = 0; a < d; a++)
            for (size_t b = 0; b < d; b++)
                fi[1 + d + a * d + b] = xi[a] * xi[b] / sqrt(2.0);
    }
    return KAT_OK;
}

static double tl_poly2_score(const void *st, const double *q, const double *k)
{
    size_t d = ((const tl_poly2_state *)st)->d;
    double x = 0.0;
    for (size_t a = 0; a < d; a++)
        x += q[a] * k[a];
    return 1.0 + x + 0.5 * x * x;
}

static kat_status tl_poly2_vjp(const void *st, kat_side side, size_t n, const double *x,
                               size_t ldx, const double *g, size_t ldg, double *dx, size_t lddx)
{
    size_t d = ((const tl_poly2_state *)st)->d;
    for (size_t i = 0; i < n; i++) {
        const double *xi = x + i * ldx, *gi = g + i * ldg;
        for (size_t a = 0; a < d; a++) {
            double s = gi[1 + a];
            for (size_t b = 0; b < d; b++)
                s += (gi[1 + d + a * d + b] + gi[1 + d + b * d + a]) * xi[b] / sqrt(2.0);
            dx[i * lddx + a] += s;
        }
    }
    return KAT_OK;
}

static void tl_free_state(void *st) { free(st); }

static const kat_featmap_ops tl_poly2_ops = {.name = "user_poly2", .apply = tl_poly2_apply,
                                             .score = tl_poly2_score, .vjp = tl_poly2_vjp,
                                             .destroy = tl_free_state};

static inline kat_featmap *tl_poly2(size_t d)
{
    tl_poly2_state *s = malloc(sizeof *s);
    s->d = d;
    kat_featmap *fm = NULL;
    TU_OK(kat_featmap_create(&tl_poly2_ops, s, d, 1 + d + d * d,
                             KAT_FEATMAP_POSITIVE | KAT_FEATMAP_EXACT, &fm));
    return fm;
}

/* phi(x) = psi(x) = x: the linear kernel q . k, which can be negative (no flags). */
static kat_status tl_ident_apply(const void *st, kat_side side, size_t n, const double *x,
                                 size_t ldx, double *f, size_t ldf)
{
    size_t d = ((const tl_poly2_state *)st)->d;
    for (size_t i = 0; i < n; i++)
        memcpy(f + i * ldf, x + i * ldx, d * sizeof(double));
    return KAT_OK;
}
static kat_status tl_ident_vjp(const void *st, kat_side side, size_t n, const double *x,
                               size_t ldx, const double *g, size_t ldg, double *dx, size_t lddx)
{
    size_t d = ((const tl_poly2_state *)st)->d;
    for (size_t i = 0; i < n; i++)
        for (size_t a = 0; a < d; a++)
            dx[i * lddx + a] += g[i * ldg + a];
    return KAT_OK;
}
static const kat_featmap_ops tl_ident_ops = {.name = "user_identity", .apply = tl_ident_apply,
                                             .vjp = tl_ident_vjp, .destroy = tl_free_state};

static inline kat_featmap *tl_ident(size_t d)
{
    tl_poly2_state *s = malloc(sizeof *s);
    s->d = d;
    kat_featmap *fm = NULL;
    TU_OK(kat_featmap_create(&tl_ident_ops, s, d, d, 0, &fm));
    return fm;
}

/* ---- fp32 implementations (the "naive same-precision" yardsticks) ------------------------- */

/* Causal attention one token at a time: S += psi(k_t) [v_t | 1]^T, o_t = phi(q_t) S, all in
 * fp32 in the plain order. state_in may be NULL. Writes o; returns the final states in
 * a malloc'd [B*H][D][E] array when final != NULL. */
static inline void tl_recurrence_f32(const kat_featmap *fm, int normalize, const kat_tensor *q,
                                     const kat_tensor *k, const kat_tensor *v, kat_tensor *o,
                                     const kat_tensor *state_in, float **final)
{
    size_t D = kat_featmap_out_dim(fm), dv = v->D, E = dv + 1;
    float *S = calloc(q->B * q->H * D * E + 1, sizeof(float));
    float *phi = malloc(D * sizeof(float)), *psi = malloc(D * sizeof(float));
    double *acc = malloc(E * sizeof(double));
    for (size_t b = 0; b < q->B; b++)
        for (size_t h = 0; h < q->H; h++) {
            float *s = S + (b * q->H + h) * D * E;
            if (state_in)
                for (size_t r = 0; r < D; r++)
                    memcpy(s + r * E, kat_tensor_row(state_in, b, h, r), E * sizeof(float));
            for (size_t t = 0; t < q->N; t++) {
                TU_OK(kat_featmap_apply_f32(fm, KAT_SIDE_KEY, 1, kat_tensor_row(k, b, h, t),
                                            k->D, psi, D));
                TU_OK(kat_featmap_apply_f32(fm, KAT_SIDE_QUERY, 1, kat_tensor_row(q, b, h, t),
                                            q->D, phi, D));
                const float *vt = kat_tensor_row(v, b, h, t);
                for (size_t r = 0; r < D; r++) {
                    for (size_t c = 0; c < dv; c++)
                        s[r * E + c] += psi[r] * vt[c];
                    s[r * E + dv] += psi[r];
                }
                float *ot = kat_tensor_row(o, b, h, t);
                for (size_t c = 0; c < E; c++) {
                    float a = 0.0f;
                    for (size_t r = 0; r < D; r++)
                        a += phi[r] * s[r * E + c];
                    acc[c] = a;
                }
                for (size_t c = 0; c < dv; c++)
                    ot[c] = normalize ? (float)acc[c] / (float)acc[dv] : (float)acc[c];
            }
        }
    free(phi);
    free(psi);
    free(acc);
    if (final)
        *final = S;
    else
        free(S);
}

/* Quadratic attention in fp32 (the library's naive fp32 reference, kat_linear_reference with
 * precision 32) written into the float tensor o. */
static inline void tl_naive_f32(const kat_featmap *fm, int causal, int normalize,
                                const kat_tensor *q, const kat_tensor *k, const kat_tensor *v,
                                kat_tensor *o)
{
    kat_linear_opts opts = {.causal = causal, .unnormalized = !normalize};
    double *x = tl_dalloc(q->B * q->H * q->N * v->D);
    TU_OK(kat_linear_reference(fm, &opts, 0, 32, q, k, v, NULL, x));
    size_t i = 0;
    for (size_t b = 0; b < o->B; b++)
        for (size_t h = 0; h < o->H; h++)
            for (size_t n = 0; n < o->N; n++)
                for (size_t c = 0; c < o->D; c++)
                    kat_tensor_row(o, b, h, n)[c] = (float)x[i++];
    free(x);
}

#endif
