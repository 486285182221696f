/* The attention oracle: masked softmax attention from fp32 inputs, computed in double (the
 * reference) or with the textbook algorithm in float (the naive fp32 yardstick), and the one
 * error model every attention check uses. */
#include <float.h>
#include <math.h>
#include <string.h>
#include "attn/attn_internal.h"
#include "core/internal.h"

/* Whether query i may see key j: the element mask, or desc's causal rule (0, 1, 2). */
static int allowed_at(const kat_attn_desc *d, int causal, const uint8_t *allowed, size_t b,
                      size_t h, size_t i, size_t j)
{
    if (allowed)
        return allowed[((b * d->H + h) * d->N + i) * d->M + j] != 0;
    int64_t ip = (int64_t)i + (int64_t)d->M - (int64_t)d->N;
    return causal == 1 ? (int64_t)j <= ip : causal == 2 ? (int64_t)j < ip : 1;
}

/* Forward and (with dout) backward in type T, written as doubles. The backward uses this
 * implementation's own probabilities and o. pr: M scratch values of T; oi, dqi: Dv and D. */
#define DEFINE_MASKED(NAME, T, EXPF, LOGF)                                                        \
    static void NAME(const kat_attn_desc *d, int causal, const uint8_t *allowed,                 \
                     const kat_tensor *q, const kat_tensor *k, const kat_tensor *v,              \
                     const kat_tensor *dout, double *o, double *lse, double *dq, double *dk,     \
                     double *dv, T *pr, T *oi, T *dqi, T *dk_acc, T *dv_acc)                     \
    {                                                                                             \
        size_t D = d->D, Dv = d->Dv, M = d->M, g = d->H_kv ? d->H / d->H_kv : 1;                \
        T sc = (T)d->scale;                                                                       \
        size_t nk = d->B * d->H_kv * M;                                                           \
        if (dout) {                                                                               \
            memset(dk_acc, 0, nk * D * sizeof(T));                                                \
            memset(dv_acc, 0, nk * Dv * sizeof(T));                                               \
        }                                                                                         \
        for (size_t b = 0; b < d->B; b++)                                                         \
            for (size_t h = 0; h < d->H; h++) {                                                   \
                size_t hk = h / g;                                                                \
                for (size_t i = 0; i < d->N; i++) {                                               \
                    size_t row = (b * d->H + h) * d->N + i;                                       \
                    const float *qi = kat_tensor_row(q, b, h, i);                                 \
                    T mx = -(T)INFINITY, l = 0;                                                   \
                    for (size_t j = 0; j < M; j++) {                                              \
                        if (!allowed_at(d, causal, allowed, b, h, i, j))                          \
                            continue;                                                             \
                        const float *kj = kat_tensor_row(k, b, hk, j);                            \
                        T s = 0;                                                                  \
                        for (size_t e = 0; e < D; e++)                                            \
                            s += (T)qi[e] * (T)kj[e];                                             \
                        pr[j] = s * sc;                                                           \
                        if (pr[j] > mx)                                                           \
                            mx = pr[j];                                                           \
                    }                                                                             \
                    for (size_t e = 0; e < Dv; e++)                                               \
                        oi[e] = 0;                                                                \
                    for (size_t e = 0; e < D; e++)                                                \
                        dqi[e] = 0;                                                               \
                    T lrow = -(T)INFINITY;                                                        \
                    if (mx != -(T)INFINITY) {                                                     \
                        for (size_t j = 0; j < M; j++)                                            \
                            if (allowed_at(d, causal, allowed, b, h, i, j))                       \
                                l += (pr[j] = EXPF(pr[j] - mx));                                  \
                        lrow = mx + LOGF(l);                                                      \
                        for (size_t j = 0; j < M; j++) {                                          \
                            if (!allowed_at(d, causal, allowed, b, h, i, j))                      \
                                continue;                                                         \
                            pr[j] /= l;                                                           \
                            const float *vj = kat_tensor_row(v, b, hk, j);                        \
                            for (size_t e = 0; e < Dv; e++)                                       \
                                oi[e] += pr[j] * (T)vj[e];                                        \
                        }                                                                         \
                    }                                                                             \
                    if (lse)                                                                      \
                        lse[row] = (double)lrow;                                                  \
                    for (size_t e = 0; e < Dv; e++)                                               \
                        o[row * Dv + e] = (double)oi[e];                                          \
                    if (!dout)                                                                    \
                        continue;                                                                 \
                    if (mx != -(T)INFINITY) {                                                     \
                        const float *di = kat_tensor_row(dout, b, h, i);                          \
                        T delta = 0;                                                              \
                        for (size_t e = 0; e < Dv; e++)                                           \
                            delta += (T)di[e] * oi[e];                                            \
                        for (size_t j = 0; j < M; j++) {                                          \
                            if (!allowed_at(d, causal, allowed, b, h, i, j))                      \
                                continue;                                                         \
                            const float *kj = kat_tensor_row(k, b, hk, j);                        \
                            const float *vj = kat_tensor_row(v, b, hk, j);                        \
                            size_t kr = (b * d->H_kv + hk) * M + j;                               \
                            T dp = 0;                                                             \
                            for (size_t e = 0; e < Dv; e++)                                       \
                                dp += (T)di[e] * (T)vj[e];                                        \
                            T ds = pr[j] * (dp - delta);                                          \
                            for (size_t e = 0; e < D; e++) {                                      \
                                dqi[e] += sc * ds * (T)kj[e];                                     \
                                dk_acc[kr * D + e] += sc * ds * (T)qi[e];                         \
                            }                                                                     \
                            for (size_t e = 0; e < Dv; e++)                                       \
                                dv_acc[kr * Dv + e] += pr[j] * (T)di[e];                          \
                        }                                                                         \
                    }                                                                             \
                    for (size_t e = 0; e < D; e++)                                                \
                        dq[row * D + e] = (double)dqi[e];                                         \
                }                                                                                 \
            }                                                                                     \
        if (dout) {                                                                               \
            for (size_t x = 0; x < nk * D; x++)                                                   \
                dk[x] = (double)dk_acc[x];                                                        \
            for (size_t x = 0; x < nk * Dv; x++)                                                  \
                dv[x] = (double)dv_acc[x];                                                        \
        }                                                                                         \
    }
DEFINE_MASKED(masked_f64, double, exp, log)
DEFINE_MASKED(masked_f32, float, expf, logf)

kat_status kat_attn_reference_masked(const kat_attn_desc *desc, const uint8_t *allowed,
                                     int precision, const kat_tensor *q, const kat_tensor *k,
                                     const kat_tensor *v, const kat_tensor *dout, double *o,
                                     double *lse, double *dq, double *dk, double *dv)
{
    if (precision != 32 && precision != 64)
        return kat__fail(KAT_EINVAL, "precision = %d: 64 (the reference) or 32 (naive fp32)",
                        precision);
    if (desc && (desc->causal < 0 || desc->causal > 2))
        return kat__fail(KAT_EINVAL, "desc->causal = %d: must be 0, 1 or 2", desc->causal);
    kat_attn_desc d;
    kat_status st = kat_attn_desc_check(desc, &d);
    if (st)
        return st;
    if (!o)
        return kat__fail(KAT_EINVAL, "o is NULL");
    if (dout && (!dq || !dk || !dv))
        return kat__fail(KAT_EINVAL, "with dout, dq, dk and dv must all be given");
    if ((st = kat__attn_check_view(q, "q", d.B, d.H, d.N, d.D, 1)) ||
        (st = kat__attn_check_view(k, "k", d.B, d.H_kv, d.M, d.D, 1)) ||
        (st = kat__attn_check_view(v, "v", d.B, d.H_kv, d.M, d.Dv, 1)) ||
        (dout && (st = kat__attn_check_view(dout, "dout", d.B, d.H, d.N, d.Dv, 1))))
        return st;
    size_t w = precision == 64 ? sizeof(double) : sizeof(float);
    size_t nk = d.B * d.H_kv * d.M, scratch = d.M + d.Dv + d.D + (dout ? nk * (d.D + d.Dv) : 0);
    unsigned char *buf = kat__alloc_array(scratch + 1, w, "attention oracle scratch");
    if (!buf)
        return KAT_ENOMEM;
    if (precision == 64) {
        double *p = (double *)buf;
        masked_f64(&d, desc->causal, allowed, q, k, v, dout, o, lse, dq, dk, dv, p, p + d.M,
                   p + d.M + d.Dv, p + d.M + d.Dv + d.D, p + d.M + d.Dv + d.D + nk * d.D);
    } else {
        float *p = (float *)buf;
        masked_f32(&d, desc->causal, allowed, q, k, v, dout, o, lse, dq, dk, dv, p, p + d.M,
                   p + d.M + d.Dv, p + d.M + d.Dv + d.D, p + d.M + d.Dv + d.D + nk * d.D);
    }
    kat_free(buf);
    return KAT_OK;
}

double kat_attn_error_bound(double naive_err, double magnitude, double terms, double logit_err)
{
    return 2.0 * naive_err + magnitude * (0x1p-24 * terms + 2.0 * logit_err);
}
