/* Naive attention in double precision: the yardstick of the tests. Each output row is a
 * direct transcription of the definition (no tiling, no online softmax); rows are spread over
 * threads but every value is computed in the same order whatever the thread count. */
#include <math.h>
#include <string.h>
#include "attn/attn_internal.h"
#include "core/internal.h"
#ifdef _OPENMP
#include <omp.h>
#endif

/* Keys visible to query n: [0, count). */
static size_t visible_keys(const kat_attn_desc *d, size_t n)
{
    if (!d->causal)
        return d->M;
    int64_t lim = (int64_t)n + (int64_t)d->M - (int64_t)d->N;   /* last visible key */
    if (lim < 0)
        return 0;
    return (size_t)lim + 1 < d->M ? (size_t)lim + 1 : d->M;
}

static double dot_f32(const float *a, const float *b, size_t D)
{
    double s = 0.0;
    for (size_t d = 0; d < D; d++)
        s += (double)a[d] * (double)b[d];
    return s;
}

/* Row (b, h, n): probabilities p[0..count) (natural softmax), returns lse (or -inf). */
static double row_probs(const kat_attn_desc *d, const kat_tensor *q, const kat_tensor *k,
                        size_t b, size_t h, size_t n, double *p, size_t *count)
{
    size_t hk = h / (d->H / d->H_kv), cnt = visible_keys(d, n);
    const float *qr = kat_tensor_row(q, b, h, n);
    double mx = -INFINITY;
    for (size_t j = 0; j < cnt; j++) {
        p[j] = d->scale * dot_f32(qr, kat_tensor_row(k, b, hk, j), d->D);
        mx = p[j] > mx ? p[j] : mx;
    }
    double sum = 0.0;
    for (size_t j = 0; j < cnt; j++) {
        p[j] = exp(p[j] - mx);
        sum += p[j];
    }
    for (size_t j = 0; j < cnt; j++)
        p[j] /= sum;
    *count = cnt;
    return cnt ? mx + log(sum) : -INFINITY;
}

static kat_status check_ref(const kat_attn_desc *desc, kat_attn_desc *d, const kat_tensor *q,
                            const kat_tensor *k, const kat_tensor *v)
{
    kat_status st;
    if ((st = kat_attn_desc_check(desc, d)))
        return st;
    if (d->Dv != d->D)
        return kat__fail(KAT_ENOTSUP, "D_v = %zu != D = %zu: the dense reference takes D_v = D; "
                        "kat_attn_reference_masked takes any D_v", d->Dv, d->D);
    if ((st = kat__attn_check_view(q, "q", d->B, d->H, d->N, d->D, 1)) ||
        (st = kat__attn_check_view(k, "k", d->B, d->H_kv, d->M, d->D, 1)) ||
        (st = kat__attn_check_view(v, "v", d->B, d->H_kv, d->M, d->D, 1)))
        return st;
    return KAT_OK;
}

/* Forward into double o [B,H,N,D] and lse [B,H,N] (lse may be NULL). */
static kat_status ref_forward(const kat_attn_desc *d, const kat_tensor *q, const kat_tensor *k,
                              const kat_tensor *v, double *o, double *lse)
{
    size_t rows = d->B * d->H * d->N, threads = (size_t)kat_num_threads();
    double *pbuf = kat__alloc_array(threads * (d->M ? d->M : 1), sizeof(double),
                                   "reference probabilities");
    if (!pbuf)
        return KAT_ENOMEM;
    (void)threads;
#pragma omp parallel for schedule(dynamic, 16) num_threads((int)threads) if (rows * d->M * d->D > (1u << 18))
    for (size_t r = 0; r < rows; r++) {
#ifdef _OPENMP
        double *p = pbuf + (size_t)omp_get_thread_num() * (d->M ? d->M : 1);
#else
        double *p = pbuf;
#endif
        size_t n = r % d->N, bh = r / d->N, b = bh / d->H, h = bh % d->H;
        size_t hk = h / (d->H / d->H_kv), cnt;
        double L = row_probs(d, q, k, b, h, n, p, &cnt);
        double *orow = o + r * d->D;
        memset(orow, 0, d->D * sizeof(double));
        for (size_t j = 0; j < cnt; j++) {
            const float *vr = kat_tensor_row(v, b, hk, j);
            for (size_t e = 0; e < d->D; e++)
                orow[e] += p[j] * (double)vr[e];
        }
        if (lse)
            lse[r] = L;
    }
    kat_free(pbuf);
    return KAT_OK;
}

kat_status kat_attn_reference_forward(const kat_attn_desc *desc, const kat_tensor *q,
                                      const kat_tensor *k, const kat_tensor *v, double *o,
                                      double *lse)
{
    kat_attn_desc d;
    kat_status st = check_ref(desc, &d, q, k, v);
    if (st)
        return st;
    if (!o && d.B * d.H * d.N != 0)
        return kat__fail(KAT_EINVAL, "reference_forward: o is NULL");
    if (d.B * d.H * d.N == 0)
        return KAT_OK;
    return ref_forward(&d, q, k, v, o, lse);
}

kat_status kat_attn_reference_backward(const kat_attn_desc *desc, const kat_tensor *q,
                                       const kat_tensor *k, const kat_tensor *v,
                                       const kat_tensor *dout, double *dq, double *dk,
                                       double *dv)
{
    kat_attn_desc d;
    kat_status st = check_ref(desc, &d, q, k, v);
    if (st || (st = kat__attn_check_view(dout, "dout", d.B, d.H, d.N, d.D, 1)))
        return st;
    size_t qrows = d.B * d.H * d.N, krows = d.B * d.H_kv * d.M, g = d.H / (d.H_kv ? d.H_kv : 1);
    if ((!dq && qrows) || (!dk && krows) || (!dv && krows))
        return kat__fail(KAT_EINVAL, "reference_backward: dq, dk or dv is NULL");
    if (!qrows) {
        if (krows)
            memset(dk, 0, krows * d.D * sizeof(double)), memset(dv, 0, krows * d.D * sizeof(double));
        return KAT_OK;
    }
    double *o = kat__alloc_array(qrows * d.D, sizeof(double), "reference o");
    double *lse = kat__alloc_array(qrows, sizeof(double), "reference lse");
    double *delta = kat__alloc_array(qrows, sizeof(double), "reference delta");
    if (!o || !lse || !delta) {
        kat_free(o), kat_free(lse), kat_free(delta);
        return KAT_ENOMEM;
    }
    if ((st = ref_forward(&d, q, k, v, o, lse))) {
        kat_free(o), kat_free(lse), kat_free(delta);
        return st;
    }
    if (krows)   /* outputs are touched only once nothing can fail */
        memset(dk, 0, krows * d.D * sizeof(double)), memset(dv, 0, krows * d.D * sizeof(double));
    int threads = kat_num_threads();
    (void)threads;
#pragma omp parallel num_threads(threads) if (qrows * d.M * d.D > (1u << 18))
    {
#pragma omp for schedule(static)
        for (size_t r = 0; r < qrows; r++) {
            size_t n = r % d.N, bh = r / d.N, b = bh / d.H, h = bh % d.H;
            const float *dor = kat_tensor_row(dout, b, h, n);
            double s = 0.0;
            for (size_t e = 0; e < d.D; e++)
                s += (double)dor[e] * o[r * d.D + e];
            delta[r] = s;
        }
        /* dq[i] = scale sum_j P_ij (dP_ij - delta_i) k_j, with dP_ij = dO_i . v_j. */
#pragma omp for schedule(dynamic, 16)
        for (size_t r = 0; r < qrows; r++) {
            size_t n = r % d.N, bh = r / d.N, b = bh / d.H, h = bh % d.H, hk = h / g;
            const float *qr = kat_tensor_row(q, b, h, n), *dor = kat_tensor_row(dout, b, h, n);
            double *dqr = dq + r * d.D;
            memset(dqr, 0, d.D * sizeof(double));
            size_t cnt = visible_keys(&d, n);
            for (size_t j = 0; j < cnt; j++) {
                const float *kr = kat_tensor_row(k, b, hk, j), *vr = kat_tensor_row(v, b, hk, j);
                double p = exp(d.scale * dot_f32(qr, kr, d.D) - lse[r]);
                double ds = p * (dot_f32(dor, vr, d.D) - delta[r]);
                for (size_t e = 0; e < d.D; e++)
                    dqr[e] += d.scale * ds * (double)kr[e];
            }
        }
        /* dk[j] = scale sum_i dS_ij q_i, dv[j] = sum_i P_ij dO_i over the group's heads. */
#pragma omp for schedule(dynamic, 16)
        for (size_t r = 0; r < krows; r++) {
            size_t j = r % d.M, bhk = r / d.M, b = bhk / d.H_kv, hk = bhk % d.H_kv;
            const float *kr = kat_tensor_row(k, b, hk, j), *vr = kat_tensor_row(v, b, hk, j);
            double *dkr = dk + r * d.D, *dvr = dv + r * d.D;
            for (size_t t = 0; t < g; t++) {
                size_t h = hk * g + t;
                for (size_t n = 0; n < d.N; n++) {
                    if (visible_keys(&d, n) <= j)
                        continue;
                    size_t qi = (b * d.H + h) * d.N + n;
                    const float *qr = kat_tensor_row(q, b, h, n);
                    const float *dor = kat_tensor_row(dout, b, h, n);
                    double p = exp(d.scale * dot_f32(qr, kr, d.D) - lse[qi]);
                    double ds = p * (dot_f32(dor, vr, d.D) - delta[qi]);
                    for (size_t e = 0; e < d.D; e++) {
                        dvr[e] += p * (double)dor[e];
                        dkr[e] += d.scale * ds * (double)qr[e];
                    }
                }
            }
        }
    }
    kat_free(o), kat_free(lse), kat_free(delta);
    return KAT_OK;
}
