/* The unfused baseline: S = scale Q K^T with cblas_sgemm, a row softmax (the same vector exp
 * as the flash kernels, threaded), O = P V with sgemm. Blocks of query rows keep S under
 * 256 MiB. This is what "attention without a fused kernel" costs on the same BLAS, and the
 * yardstick of `kat bench attn`. OpenBLAS runs with the plan's thread count. */
#include <cblas.h>
#include <math.h>
#include <string.h>
#include "attn/attn_internal.h"
#include "core/internal.h"
#include "core/runtime.h"
#include "kernels/kernels.h"

#define LOG2E 1.4426950408889634
#define S_BLOCK_FLOATS ((size_t)64 << 20)   /* 256 MiB of scores per block */

/* Keys visible to query n: [0, count). */
static size_t visible_keys(const kat_attn_desc *d, size_t n)
{
    if (!d->causal)
        return d->M;
    int64_t lim = (int64_t)n + (int64_t)d->M - (int64_t)d->N;
    if (lim < 0)
        return 0;
    return (size_t)lim + 1 < d->M ? (size_t)lim + 1 : d->M;
}

/* cblas takes int sizes and leading dimensions. */
static kat_status check_int_strides(const kat_tensor *const *ts, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (ts[i] && ts[i]->sn > (size_t)INT32_MAX)
            return kat__fail(KAT_ERANGE, "unfused: row stride %zu exceeds the BLAS int range",
                            ts[i]->sn);
    return KAT_OK;
}

static size_t block_rows(const kat_attn_desc *d)
{
    size_t rb = d->M ? S_BLOCK_FLOATS / d->M : d->N;
    rb = rb < 1 ? 1 : rb;
    return rb < d->N ? rb : d->N;
}

static const float *head_ptr(const kat_tensor *t, size_t b, size_t h)
{
    return t->data + b * t->sb + h * t->sh;
}

/* Softmax of each row of s (rows [i0, i0+rb), row stride ld, `cols` computed columns) in
 * place; masked columns become 0. Row sums' logs go to lse_out[i] when not NULL. */
static void softmax_rows(const kat_attn_desc *d, const kat_kernels *kern, float *s, size_t ld,
                         size_t i0, size_t rb, size_t cols, float *lse_out, int threads)
{
    (void)threads;
#pragma omp parallel for schedule(static) num_threads(threads)
    for (size_t r = 0; r < rb; r++) {
        float *row = s + r * ld;
        size_t cnt = visible_keys(d, i0 + r);
        cnt = cnt < cols ? cnt : cols;
        float mx = -INFINITY;
        for (size_t j = 0; j < cnt; j++)
            mx = row[j] > mx ? row[j] : mx;
        for (size_t j = 0; j < cnt; j++)
            row[j] = (row[j] - mx) * (float)LOG2E;
        kern->exp2(cnt, row, row);
        float sum = 0.0f;
        for (size_t j = 0; j < cnt; j++)
            sum += row[j];
        float inv = cnt ? 1.0f / sum : 0.0f;
        for (size_t j = 0; j < cnt; j++)
            row[j] *= inv;
        for (size_t j = cnt; j < cols; j++)
            row[j] = 0.0f;
        if (lse_out)
            lse_out[r] = cnt ? mx + logf(sum) : -INFINITY;
    }
}

kat_status kat_attn_unfused_forward(const kat_attn_desc *desc, const kat_tensor *q,
                                    const kat_tensor *k, const kat_tensor *v,
                                    const kat_tensor *o, const kat_tensor *lse)
{
    kat_attn_desc d;
    kat_status st = kat_attn_desc_check(desc, &d);
    if (!st && d.Dv != d.D)
        st = kat__fail(KAT_ENOTSUP, "D_v = %zu != D = %zu: the unfused baseline takes D_v = D",
                      d.Dv, d.D);
    const kat_tensor *all[] = {q, k, v, o};
    if (st || (st = kat__attn_check_forward(&d, q, k, v, o, lse)) ||
        (st = check_int_strides(all, 4)))
        return st;
    size_t rb = block_rows(&d), g = d.H / (d.H_kv ? d.H_kv : 1);
    if (d.B * d.H * d.N == 0)
        return KAT_OK;
    float *s = kat__alloc_array(rb * (d.M ? d.M : 1), sizeof(float), "unfused scores");
    float *lrow = kat__alloc_array(rb, sizeof(float), "unfused logsumexp");
    if (!s || !lrow) {
        kat_free(s), kat_free(lrow);
        return KAT_ENOMEM;
    }
    const kat_kernels *kern = kat__kernels_get();
    int threads = kat_num_threads();
    if ((st = kat__blas_hold(threads, 1, "attn_unfused_forward"))) {
        kat_free(s), kat_free(lrow);
        return st;
    }
    for (size_t b = 0; b < d.B; b++)
        for (size_t h = 0; h < d.H; h++) {
            size_t hk = h / g;
            for (size_t i0 = 0; i0 < d.N; i0 += rb) {
                size_t n = d.N - i0 < rb ? d.N - i0 : rb;
                size_t cols = visible_keys(&d, i0 + n - 1);   /* the block's widest row */
                float *orow = (float *)head_ptr(o, b, h) + i0 * o->sn;
                if (cols == 0) {
                    for (size_t r = 0; r < n; r++)
                        memset(orow + r * o->sn, 0, d.D * sizeof(float));
                    for (size_t r = 0; r < n; r++)
                        lrow[r] = -INFINITY;
                } else {
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)cols,
                                (int)d.D, (float)d.scale, head_ptr(q, b, h) + i0 * q->sn,
                                (int)q->sn, head_ptr(k, b, hk), (int)k->sn, 0.0f, s, (int)cols);
                    softmax_rows(&d, kern, s, cols, i0, n, cols, lrow, threads);
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)d.D,
                                (int)cols, 1.0f, s, (int)cols, head_ptr(v, b, hk), (int)v->sn,
                                0.0f, orow, (int)o->sn);
                }
                if (lse)
                    for (size_t r = 0; r < n; r++)
                        *kat_tensor_row(lse, b, h, i0 + r) = lrow[r];
            }
        }
    kat__blas_release();
    kat_free(s), kat_free(lrow);
    return KAT_OK;
}

kat_status kat_attn_unfused_backward(const kat_attn_desc *desc, const kat_tensor *q,
                                     const kat_tensor *k, const kat_tensor *v,
                                     const kat_tensor *o, const kat_tensor *dout,
                                     const kat_tensor *dq, const kat_tensor *dk,
                                     const kat_tensor *dv)
{
    kat_attn_desc d;
    kat_status st = kat_attn_desc_check(desc, &d);
    if (!st && d.Dv != d.D)
        st = kat__fail(KAT_ENOTSUP, "D_v = %zu != D = %zu: the unfused baseline takes D_v = D",
                      d.Dv, d.D);
    const kat_tensor *all[] = {q, k, v, o, dout, dq, dk, dv};
    if (st || (st = kat__attn_check_backward(&d, q, k, v, o, NULL, dout, dq, dk, dv, 1, 0)) ||
        (st = check_int_strides(all, 8)))
        return st;
    size_t rb = block_rows(&d) / 2 + 1, g = d.H / (d.H_kv ? d.H_kv : 1);
    rb = rb < d.N ? rb : (d.N ? d.N : 1);
    size_t mcols = d.M ? d.M : 1;
    float *p = kat__alloc_array(rb * mcols, sizeof(float), "unfused probabilities");
    float *dp = kat__alloc_array(rb * mcols, sizeof(float), "unfused dP");
    if (!p || !dp) {   /* before touching any output */
        kat_free(p), kat_free(dp);
        return KAT_ENOMEM;
    }
    for (size_t b = 0; b < d.B; b++)
        for (size_t hk = 0; hk < d.H_kv; hk++)
            for (size_t j = 0; j < d.M; j++) {
                memset(kat_tensor_row(dk, b, hk, j), 0, d.D * sizeof(float));
                memset(kat_tensor_row(dv, b, hk, j), 0, d.D * sizeof(float));
            }
    if (d.B * d.H * d.N == 0) {
        kat_free(p), kat_free(dp);
        return KAT_OK;
    }
    const kat_kernels *kern = kat__kernels_get();
    int threads = kat_num_threads();
    if ((st = kat__blas_hold(threads, 1, "attn_unfused_backward"))) {
        kat_free(p), kat_free(dp);
        return st;
    }
    float sc = (float)d.scale;
    for (size_t b = 0; b < d.B; b++)
        for (size_t h = 0; h < d.H; h++) {
            size_t hk = h / g;
            const float *Q = head_ptr(q, b, h), *K = head_ptr(k, b, hk), *V = head_ptr(v, b, hk);
            const float *O = head_ptr(o, b, h), *dO = head_ptr(dout, b, h);
            float *dQ = (float *)head_ptr(dq, b, h), *dK = (float *)head_ptr(dk, b, hk);
            float *dV = (float *)head_ptr(dv, b, hk);
            for (size_t i0 = 0; i0 < d.N; i0 += rb) {
                size_t n = d.N - i0 < rb ? d.N - i0 : rb;
                size_t cols = visible_keys(&d, i0 + n - 1);
                if (cols == 0) {
                    for (size_t r = 0; r < n; r++)
                        memset(dQ + (i0 + r) * dq->sn, 0, d.D * sizeof(float));
                    continue;
                }
                int in = (int)n, ic = (int)cols, iD = (int)d.D;
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, in, ic, iD, sc,
                            Q + i0 * q->sn, (int)q->sn, K, (int)k->sn, 0.0f, p, ic);
                softmax_rows(&d, kern, p, cols, i0, n, cols, NULL, threads);
                /* dV += P^T dO */
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, ic, iD, in, 1.0f, p, ic,
                            dO + i0 * dout->sn, (int)dout->sn, 1.0f, dV, (int)dv->sn);
                /* dP = dO V^T */
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, in, ic, iD, 1.0f,
                            dO + i0 * dout->sn, (int)dout->sn, V, (int)v->sn, 0.0f, dp, ic);
                /* dS = P (dP - delta), delta = rowsum(dO O) */
                (void)threads;
#pragma omp parallel for schedule(static) num_threads(threads)
                for (size_t r = 0; r < n; r++) {
                    const float *dor = dO + (i0 + r) * dout->sn, *orow = O + (i0 + r) * o->sn;
                    float delta = 0.0f;
                    for (size_t e = 0; e < d.D; e++)
                        delta += dor[e] * orow[e];
                    float *pr = p + r * cols, *dpr = dp + r * cols;
                    for (size_t j = 0; j < cols; j++)
                        dpr[j] = pr[j] * (dpr[j] - delta);
                }
                /* dQ = scale dS K;  dK += scale dS^T Q */
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, in, iD, ic, sc, dp, ic,
                            K, (int)k->sn, 0.0f, dQ + i0 * dq->sn, (int)dq->sn);
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, ic, iD, in, sc, dp, ic,
                            Q + i0 * q->sn, (int)q->sn, 1.0f, dK, (int)dk->sn);
            }
        }
    kat__blas_release();
    kat_free(p), kat_free(dp);
    return KAT_OK;
}
