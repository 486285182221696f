/* Per-token normalisation in front of a feature map: phi(x) = inner(n(x)) with
 * n(x) = scale * u / |u|, u = x - mean(x) (when centring) or x. FAST's Fastmax (Gerami et al.,
 * arXiv 2402.07901) normalises q and k this way before its Taylor kernel 1 + x + x^2/2; here
 * every token uses only its own mean and norm, so no statistic of the sequence leaks future
 * tokens into causal outputs. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "core/internal.h"
#include "kat/featmaps.h"

/* Rows normalised per block on the stack: no allocation in the engine's hot loop. */
enum { BLOCK_DOUBLES = 2048 };

typedef struct {
    kat_featmap_ops ops;   /* this map's vtable: which callbacks exist depends on inner */
    kat_featmap *inner;
    const kat_featmap_ops *iops;
    const void *istate;
    size_t d, D;
    int center;
    double scale;
    char name[64];
} norm_state;

/* sum of x[j] (or of (x[j] - m)^2 when sq) with four partial sums: a fixed order, so the
 * result is deterministic, without one long chain of dependent additions. */
static double sum4(const double *x, size_t d, double m, int sq)
{
    double a[4] = {0.0, 0.0, 0.0, 0.0};
    size_t j = 0;
    for (; j + 4 <= d; j += 4)
        for (int t = 0; t < 4; t++) {
            double u = x[j + t] - m;
            a[t] += sq ? u * u : u;
        }
    for (; j < d; j++) {
        double u = x[j] - m;
        a[0] += sq ? u * u : u;
    }
    return (a[0] + a[1]) + (a[2] + a[3]);
}

/* y = n(x) for one row of d values. */
static void normalise_row(const norm_state *s, const double *x, double *y)
{
    const size_t d = s->d;
    double mean = s->center ? sum4(x, d, 0.0, 0) / (double)d : 0.0;
    double nrm = sqrt(sum4(x, d, mean, 1)), c = nrm > 0.0 ? s->scale / nrm : 0.0;
    for (size_t j = 0; j < d; j++)
        y[j] = (x[j] - mean) * c;
}

/* Rows per stack block and whether the heap is needed (d beyond a block). */
static size_t block_rows(const norm_state *s) { return s->d <= BLOCK_DOUBLES ? BLOCK_DOUBLES / s->d : 1; }

static kat_status norm_apply(const void *state, kat_side side, size_t n, const double *x,
                             size_t ldx, double *f, size_t ldf)
{
    const norm_state *s = state;
    double stack[BLOCK_DOUBLES], *y = stack;
    if (s->d > BLOCK_DOUBLES && !(y = kat__alloc_array(s->d, sizeof(double), "token_norm row")))
        return KAT_ENOMEM;
    size_t nb = block_rows(s);
    kat_status st = KAT_OK;
    for (size_t i0 = 0; i0 < n && st == KAT_OK; i0 += nb) {
        size_t m = n - i0 < nb ? n - i0 : nb;
        for (size_t i = 0; i < m; i++)
            normalise_row(s, x + (i0 + i) * ldx, y + i * s->d);
        st = s->iops->apply(s->istate, side, m, y, s->d, f + i0 * ldf, ldf);
    }
    if (y != stack)
        kat_free(y);
    return st;
}

/* The kernel is the inner map's of the normalised tokens: t = n when the inner map's kernel is
 * of the plain dot. */
static kat_status norm_dot_input_f32(const void *state, kat_side side, size_t n, const float *x,
                                     size_t ldx, float *y, size_t ldy)
{
    (void)side;
    const norm_state *s = state;
    double xd[BLOCK_DOUBLES], yd[BLOCK_DOUBLES];
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < s->d; j++)
            xd[j] = x[i * ldx + j];
        normalise_row(s, xd, yd);
        for (size_t j = 0; j < s->d; j++)
            y[i * ldy + j] = (float)yd[j];
    }
    return KAT_OK;
}

static kat_status norm_dot_kernel_f32(const void *state, size_t n, float *z)
{
    const norm_state *s = state;
    return s->iops->dot_kernel_f32(s->istate, n, z);
}

static kat_status norm_apply_f32(const void *state, kat_side side, size_t n, const float *x,
                                 size_t ldx, float *f, size_t ldf)
{
    const norm_state *s = state;
    double xd[BLOCK_DOUBLES], yd[BLOCK_DOUBLES];
    float yf[BLOCK_DOUBLES];
    if (s->d > BLOCK_DOUBLES)   /* rare: through the fp64 path, which allocates */
        return kat__fail(KAT_ENOTSUP, "token_norm: d = %zu exceeds the fp32 block", s->d);
    size_t nb = block_rows(s);
    for (size_t i0 = 0; i0 < n; i0 += nb) {
        size_t m = n - i0 < nb ? n - i0 : nb;
        for (size_t i = 0; i < m; i++) {
            for (size_t j = 0; j < s->d; j++)
                xd[j] = x[(i0 + i) * ldx + j];
            normalise_row(s, xd, yd);
            for (size_t j = 0; j < s->d; j++)
                yf[i * s->d + j] = (float)yd[j];
        }
        kat_status st = s->iops->apply_f32(s->istate, side, m, yf, s->d, f + i0 * ldf, ldf);
        if (st)
            return st;
    }
    return KAT_OK;
}

static double norm_score(const void *state, const double *q, const double *k)
{
    const norm_state *s = state;
    double stack[2 * 256], *buf = stack;
    if (s->d > 256 && !(buf = kat__alloc_array(2 * s->d, sizeof(double), "token_norm score")))
        return NAN;   /* the engine reports a non-finite score */
    normalise_row(s, q, buf);
    normalise_row(s, k, buf + s->d);
    double r = s->iops->score(s->istate, buf, buf + s->d);
    if (buf != stack)
        kat_free(buf);
    return r;
}

/* dx += J_n(x)^T gy for one row: with u_hat = u / |u|, g_u = scale / |u| (gy - u_hat (u_hat .
 * gy)), and centring subtracts the mean of g_u. */
static void normalise_vjp_row(const norm_state *s, const double *x, const double *gy, double *gu)
{
    const size_t d = s->d;
    double mean = s->center ? sum4(x, d, 0.0, 0) / (double)d : 0.0, dotp = 0.0;
    double ss = sum4(x, d, mean, 1);
    double nrm = sqrt(ss);
    if (!(nrm > 0.0)) {   /* a constant row: n is not differentiable there; take 0 */
        memset(gu, 0, d * sizeof(double));
        return;
    }
    for (size_t j = 0; j < d; j++)
        dotp += (x[j] - mean) / nrm * gy[j];
    double gmean = 0.0;
    for (size_t j = 0; j < d; j++) {
        gu[j] = s->scale / nrm * (gy[j] - (x[j] - mean) / nrm * dotp);
        gmean += gu[j];
    }
    if (s->center) {
        gmean /= (double)d;
        for (size_t j = 0; j < d; j++)
            gu[j] -= gmean;
    }
}

static kat_status norm_vjp(const void *state, kat_side side, size_t n, const double *x,
                           size_t ldx, const double *g, size_t ldg, double *dx, size_t lddx)
{
    const norm_state *s = state;
    const size_t d = s->d;
    double *y = kat__alloc_array(3, d * sizeof(double), "token_norm vjp row");
    if (!y)
        return KAT_ENOMEM;
    double *gy = y + d, *gu = gy + d;
    kat_status st = KAT_OK;
    for (size_t i = 0; i < n && st == KAT_OK; i++) {
        normalise_row(s, x + i * ldx, y);
        memset(gy, 0, d * sizeof(double));
        st = s->iops->vjp(s->istate, side, 1, y, d, g + i * ldg, ldg, gy, d);
        if (st)
            break;
        normalise_vjp_row(s, x + i * ldx, gy, gu);
        for (size_t j = 0; j < d; j++)
            dx[i * lddx + j] += gu[j];
    }
    kat_free(y);
    return st;
}

static kat_status norm_vjp_f32(const void *state, kat_side side, size_t n, const float *x,
                               size_t ldx, const float *g, size_t ldg, float *dx, size_t lddx)
{
    const norm_state *s = state;
    const size_t d = s->d;
    double xd[BLOCK_DOUBLES], yd[BLOCK_DOUBLES], gyd[BLOCK_DOUBLES], gu[BLOCK_DOUBLES];
    float yf[BLOCK_DOUBLES], gyf[BLOCK_DOUBLES];
    if (d > BLOCK_DOUBLES)
        return kat__fail(KAT_ENOTSUP, "token_norm: d = %zu exceeds the fp32 block", d);
    size_t nb = block_rows(s);
    for (size_t i0 = 0; i0 < n; i0 += nb) {
        size_t m = n - i0 < nb ? n - i0 : nb;
        for (size_t i = 0; i < m; i++) {
            for (size_t j = 0; j < d; j++)
                xd[j] = x[(i0 + i) * ldx + j];
            normalise_row(s, xd, yd);
            for (size_t j = 0; j < d; j++) {
                yf[i * d + j] = (float)yd[j];
                gyf[i * d + j] = 0.0f;
            }
        }
        kat_status st = s->iops->vjp_f32(s->istate, side, m, yf, d, g + i0 * ldg, ldg, gyf, d);
        if (st)
            return st;
        for (size_t i = 0; i < m; i++) {
            for (size_t j = 0; j < d; j++) {
                xd[j] = x[(i0 + i) * ldx + j];
                gyd[j] = gyf[i * d + j];
            }
            normalise_vjp_row(s, xd, gyd, gu);
            for (size_t j = 0; j < d; j++)
                dx[(i0 + i) * lddx + j] += (float)gu[j];
        }
    }
    return KAT_OK;
}

static void norm_destroy(void *state)
{
    norm_state *s = state;
    kat_featmap_destroy(s->inner);
    kat_free(s);
}

kat_status kat_featmap_token_norm_create(kat_featmap *inner, int center, double scale,
                                         unsigned extra_flags, kat_featmap **out)
{
    kat_status st = KAT_OK;
    if (!inner)
        return kat__fail(KAT_EINVAL, "featmap_token_norm_create: inner is NULL");
    if (!(scale > 0.0) || !isfinite(scale))
        st = kat__fail(KAT_EINVAL, "featmap_token_norm_create: scale = %g must be finite and > 0",
                      scale);
    else if (!out)
        st = kat__fail(KAT_EINVAL, "featmap_token_norm_create: out is NULL");
    else if (extra_flags & ~(unsigned)(KAT_FEATMAP_POSITIVE | KAT_FEATMAP_EXACT))
        st = kat__fail(KAT_EINVAL, "featmap_token_norm_create: extra_flags = 0x%x has unknown bits",
                      extra_flags);
    norm_state *s = NULL;
    if (st == KAT_OK && !(s = kat_calloc(1, sizeof *s)))
        st = KAT_ENOMEM;
    if (st != KAT_OK) {
        kat_featmap_destroy(inner);
        return st;
    }
    const kat_featmap_ops *iops = kat_featmap_get_ops(inner);
    s->inner = inner;
    s->iops = iops;
    s->istate = kat_featmap_state(inner);
    s->d = kat_featmap_in_dim(inner);
    s->D = kat_featmap_out_dim(inner);
    s->center = center != 0;
    s->scale = scale;
    snprintf(s->name, sizeof s->name, "token_norm(%s)", kat_featmap_name(inner));
    s->ops.name = s->name;
    s->ops.apply = norm_apply;
    s->ops.apply_f32 = iops->apply_f32 && s->d <= BLOCK_DOUBLES ? norm_apply_f32 : NULL;
    s->ops.score = iops->score ? norm_score : NULL;
    s->ops.vjp = iops->vjp ? norm_vjp : NULL;
    s->ops.vjp_f32 = iops->vjp_f32 && s->d <= BLOCK_DOUBLES ? norm_vjp_f32 : NULL;
    s->ops.destroy = norm_destroy;
    if (iops->dot_kernel_f32 && !iops->dot_input_f32 && s->d <= BLOCK_DOUBLES) {
        s->ops.dot_kernel_f32 = norm_dot_kernel_f32;
        s->ops.dot_input_f32 = norm_dot_input_f32;
    }
    return kat_featmap_create(&s->ops, s, s->d, s->D, kat_featmap_flags(inner) | extra_flags, out);
}
