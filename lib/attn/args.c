/* Attention descriptors and the argument checks every implementation shares. */
#include <math.h>
#include <stdint.h>
#include <string.h>
#include "attn/attn_internal.h"
#include "core/internal.h"

kat_status kat_attn_desc_check(const kat_attn_desc *desc, kat_attn_desc *out)
{
    if (!desc)
        return kat__fail(KAT_EINVAL, "desc is NULL");
    if (!out)
        return kat__fail(KAT_EINVAL, "out is NULL");
    kat_attn_desc d = *desc;
    if (d.D == 0 || d.D > KAT_ATTN_MAX_D)
        return kat__fail(KAT_EINVAL, "D = %zu: the head dimension must be in 1..%d", d.D,
                        KAT_ATTN_MAX_D);
    if (d.Dv == 0)
        d.Dv = d.D;
    if (d.Dv > KAT_ATTN_MAX_D)
        return kat__fail(KAT_EINVAL, "Dv = %zu: the value head dimension must be in 1..%d", d.Dv,
                        KAT_ATTN_MAX_D);
    if (d.H_kv == 0)
        d.H_kv = d.H;
    if (d.H_kv > d.H || (d.H && d.H % d.H_kv))
        return kat__fail(KAT_EINVAL,
                        "H = %zu query heads is not a multiple of H_kv = %zu key/value heads",
                        d.H, d.H_kv);
    if (d.N >= (size_t)INT32_MAX || d.M >= (size_t)INT32_MAX)
        return kat__fail(KAT_ERANGE, "N = %zu, M = %zu: sequence lengths must be below 2^31 - 1",
                        d.N, d.M);
    size_t t;
    if (kat_mul3_overflow(d.B, d.H, d.N, &t) || kat_mul_overflow(t, d.D, &t) ||
        kat_mul3_overflow(d.B, d.H, d.M, &t) || kat_mul_overflow(t, d.D, &t) ||
        kat_mul_overflow(t, sizeof(double), &t) || kat_mul3_overflow(d.B, d.H, d.N, &t) ||
        kat_mul_overflow(t, d.Dv, &t) || kat_mul3_overflow(d.B, d.H, d.M, &t) ||
        kat_mul_overflow(t, d.Dv, &t) || kat_mul_overflow(t, sizeof(double), &t))
        return kat__fail(KAT_ERANGE, "shape B = %zu, H = %zu, N = %zu, M = %zu, D = %zu overflows",
                        d.B, d.H, d.N, d.M, d.D);
    if (!isfinite(d.scale))
        return kat__fail(KAT_EDOM, "scale = %g is not finite", d.scale);
    if (d.scale == 0.0)
        d.scale = 1.0 / sqrt((double)d.D);
    d.causal = d.causal != 0;
    *out = d;
    return KAT_OK;
}

kat_status kat_attn_desc_from_views(const kat_tensor *q, const kat_tensor *k, int causal,
                                    double scale, kat_attn_desc *out)
{
    if (!q)
        return kat__fail(KAT_EINVAL, "q is NULL");
    if (!k)
        return kat__fail(KAT_EINVAL, "k is NULL");
    if (!out)
        return kat__fail(KAT_EINVAL, "out is NULL");
    if (k->B != q->B || k->D != q->D)
        return kat__fail(KAT_EINVAL,
                        "k: shape [%zu, %zu, %zu, %zu] does not match q [%zu, %zu, %zu, %zu]: "
                        "the %s is %zu for k but %zu for q",
                        k->B, k->H, k->N, k->D, q->B, q->H, q->N, q->D,
                        k->B != q->B ? "batch size B" : "head dimension D",
                        k->B != q->B ? k->B : k->D, k->B != q->B ? q->B : q->D);
    kat_attn_desc d = {q->B, q->H, k->H, q->N, k->N, q->D, causal, scale, q->D};
    if (d.H_kv == 0 && d.H != 0)
        return kat__fail(KAT_EINVAL, "k: H_kv = 0 key/value heads for H = %zu query heads", d.H);
    return kat_attn_desc_check(&d, out);
}

kat_status kat__attn_check_view(const kat_tensor *t, const char *what, size_t B, size_t H,
                               size_t N, size_t D, int check_finite)
{
    if (!t)
        return kat__fail(KAT_EINVAL, "%s is NULL", what);
    if (t->B != B || t->H != H || t->N != N || t->D != D)
        return kat__fail(KAT_EINVAL, "%s: shape [%zu, %zu, %zu, %zu] does not match the expected "
                        "[%zu, %zu, %zu, %zu]", what, t->B, t->H, t->N, t->D, B, H, N, D);
    return kat_tensor_check(t, what, check_finite);
}

kat_status kat__attn_check_lse_input(const kat_tensor *t, const char *what, size_t B, size_t H,
                                    size_t N)
{
    kat_status st = kat__attn_check_view(t, what, B, H, N, 1, 0);
    if (st)
        return st;
    for (size_t b = 0; b < B; b++)
        for (size_t h = 0; h < H; h++)
            for (size_t n = 0; n < N; n++) {
                float x = *kat_tensor_row(t, b, h, n);
                if (isnan(x) || x == INFINITY)
                    return kat__fail(KAT_EDOM, "%s: element [%zu, %zu, %zu, 0] is %g (a "
                                    "logsumexp is finite, or -inf for a row with no key)",
                                    what, b, h, n, (double)x);
            }
    return KAT_OK;
}

kat_status kat__attn_check_disjoint(const kat_tensor *const *outs, const char *const *out_names,
                                   size_t nout, const kat_tensor *const *ins,
                                   const char *const *in_names, size_t nin)
{
    for (size_t a = 0; a < nout; a++) {
        if (!outs[a])
            continue;
        for (size_t b = 0; b < nin; b++)
            if (ins[b] && kat_tensor_overlap(outs[a], ins[b]))
                return kat__fail(KAT_EINVAL, "%s overlaps the input %s in memory", out_names[a],
                                in_names[b]);
        for (size_t b = a + 1; b < nout; b++)
            if (outs[b] && kat_tensor_overlap(outs[a], outs[b]))
                return kat__fail(KAT_EINVAL, "%s overlaps the output %s in memory", out_names[a],
                                out_names[b]);
    }
    return KAT_OK;
}

/* Largest |element| of a view (finite data: checked before). The maximum is taken over the
 * magnitude bits as unsigned integers, which order finite floats like their values: a loop
 * the compiler vectorises (fmaxf is a libm call per element, a third of a sparse forward's
 * time at N = 16k before this). */
static double tensor_max_abs(const kat_tensor *t)
{
    uint32_t m = 0;
    for (size_t b = 0; b < t->B; b++)
        for (size_t h = 0; h < t->H; h++)
            for (size_t n = 0; n < t->N; n++) {
                const float *row = kat_tensor_row(t, b, h, n);
                for (size_t j = 0; j < t->D; j++) {
                    uint32_t u;
                    memcpy(&u, row + j, sizeof u);
                    u &= 0x7fffffffu;
                    m = u > m ? u : m;
                }
            }
    float f;
    memcpy(&f, &m, sizeof f);
    return f;
}

/* Finite q and k can still give q.k or scale*q.k beyond fp32 (|q.k| <= max|q| max|k| D): refuse
 * them instead of returning a silently wrong softmax. The unfused baseline forms q.k before
 * scaling, the flash kernels after, so both products are bounded. The limit is conservative by
 * 2^10 so that packed and accumulated values stay finite too. */
static kat_status check_logit_range(const kat_attn_desc *d, const kat_tensor *q,
                                    const kat_tensor *k)
{
    double mq = tensor_max_abs(q), mk = tensor_max_abs(k);
    double raw = mq * mk * (double)d->D, scaled = raw * fabs(d->scale) * 1.4426950408889634;
    if (raw > 0x1p118 || scaled > 0x1p118)
        return kat__fail(KAT_ERANGE,
                        "logits may overflow fp32: max|q| = %g, max|k| = %g and D = %zu bound "
                        "|q.k| by %g (scale %g: %g); the limit is 2^118 = %g",
                        mq, mk, d->D, raw, d->scale, scaled, 0x1p118);
    return KAT_OK;
}

kat_status kat__attn_check_forward(const kat_attn_desc *d, const kat_tensor *q,
                                  const kat_tensor *k, const kat_tensor *v,
                                  const kat_tensor *o, const kat_tensor *lse)
{
    kat_status st;
    if ((st = kat__attn_check_view(q, "q", d->B, d->H, d->N, d->D, 0)) ||
        (st = kat__attn_check_view(k, "k", d->B, d->H_kv, d->M, d->D, 0)) ||
        (st = kat__attn_check_view(v, "v", d->B, d->H_kv, d->M, d->Dv, 0)) ||
        (st = kat__attn_check_view(o, "o", d->B, d->H, d->N, d->Dv, 0)) ||
        (lse && (st = kat__attn_check_view(lse, "lse", d->B, d->H, d->N, 1, 0))))
        return st;
    const kat_tensor *outs[] = {o, lse}, *ins[] = {q, k, v};
    const char *on[] = {"o", "lse"}, *in[] = {"q", "k", "v"};
    if ((st = kat__attn_check_disjoint(outs, on, 2, ins, in, 3)))
        return st;
    if ((st = kat_tensor_check(q, "q", 1)) || (st = kat_tensor_check(k, "k", 1)) ||
        (st = kat_tensor_check(v, "v", 1)))
        return st;
    return check_logit_range(d, q, k);
}

kat_status kat__attn_check_backward(const kat_attn_desc *d, const kat_tensor *q,
                                   const kat_tensor *k, const kat_tensor *v,
                                   const kat_tensor *o, const kat_tensor *lse,
                                   const kat_tensor *dout, const kat_tensor *dq,
                                   const kat_tensor *dk, const kat_tensor *dv, int need_o,
                                   int need_lse)
{
    kat_status st;
    if ((st = kat__attn_check_view(q, "q", d->B, d->H, d->N, d->D, 0)) ||
        (st = kat__attn_check_view(k, "k", d->B, d->H_kv, d->M, d->D, 0)) ||
        (st = kat__attn_check_view(v, "v", d->B, d->H_kv, d->M, d->Dv, 0)) ||
        ((need_o || o) && (st = kat__attn_check_view(o, "o", d->B, d->H, d->N, d->Dv, 0))) ||
        ((need_lse || lse) && (st = kat__attn_check_view(lse, "lse", d->B, d->H, d->N, 1, 0))) ||
        (st = kat__attn_check_view(dout, "dout", d->B, d->H, d->N, d->Dv, 0)) ||
        (st = kat__attn_check_view(dq, "dq", d->B, d->H, d->N, d->D, 0)) ||
        (st = kat__attn_check_view(dk, "dk", d->B, d->H_kv, d->M, d->D, 0)) ||
        (st = kat__attn_check_view(dv, "dv", d->B, d->H_kv, d->M, d->Dv, 0)))
        return st;
    const kat_tensor *outs[] = {dq, dk, dv}, *ins[] = {q, k, v, o, lse, dout};
    const char *on[] = {"dq", "dk", "dv"}, *in[] = {"q", "k", "v", "o", "lse", "dout"};
    if ((st = kat__attn_check_disjoint(outs, on, 3, ins, in, 6)))
        return st;
    if ((st = kat_tensor_check(q, "q", 1)) || (st = kat_tensor_check(k, "k", 1)) ||
        (st = kat_tensor_check(v, "v", 1)) || (o && (st = kat_tensor_check(o, "o", 1))) ||
        (lse && (st = kat__attn_check_lse_input(lse, "lse", d->B, d->H, d->N))) ||
        (st = kat_tensor_check(dout, "dout", 1)))
        return st;
    return check_logit_range(d, q, k);
}
