/* The C API of linear attention on the GPU: argument checks with sentences, the workspace,
 * then the passes. Forward: the in-chunk sums (causal) or zeros, the state sweep of the keys
 * read by the queries, then o and den. Backward: g, the in-chunk gradients (causal), the
 * sweep of the keys' state read by the queries (dq), the sweep of the queries' gradient
 * state read by the keys (dk, dvbar), then the fp32 gradients into the caller's type. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <cuda_runtime.h>

#include "kat/cuda.h"
#include "linear.cuh"

using kat_cuda::lin_params;
using kat_cuda::lin_src;

namespace {

kat_status fail(kat_status st, const char *fmt, ...) {
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return kat_cuda::report(st, buf);
}

kat_status launched(cudaError_t e, const char *what) {
    if (e != cudaSuccess)
        return fail(KAT_EIO, "kat_cuda_linear: %s: CUDA error: %s", what, cudaGetErrorString(e));
    return KAT_OK;
}

const int64_t ROW_LIMIT = (int64_t)1 << 31;

size_t esize(int dtype) { return dtype == KAT_CUDA_FP32 ? 4 : 2; }

kat_status check_view(const char *name, const kat_cuda_view *v, int dtype) {
    if (!v->data) return fail(KAT_EINVAL, "kat_cuda_linear: %s.data is NULL", name);
    if ((uintptr_t)v->data % esize(dtype))
        return fail(KAT_EINVAL, "kat_cuda_linear: %s.data %p is not aligned to its %zu-byte elements",
                    name, v->data, esize(dtype));
    for (int i = 0; i < 3; i++)
        if (v->stride[i] < 0)
            return fail(KAT_EINVAL, "kat_cuda_linear: %s.stride[%d] = %lld is negative", name, i,
                        (long long)v->stride[i]);
    return KAT_OK;
}

lin_src src(const kat_cuda_view &v, int dtype, int cols, int one = 0) {
    lin_src s;
    s.p = v.data;
    s.dtype = dtype;
    for (int i = 0; i < 3; i++) s.s[i] = v.stride[i];
    s.cols = cols;
    s.one = one;
    return s;
}

size_t align256(size_t n) { return (n + 255) / 256 * 256; }

/* Check the call and fill the kernels' parameters. */
kat_status make_params(const kat_cuda_linear *a, lin_params *p) {
    if (!a) return fail(KAT_EINVAL, "kat_cuda_linear: the call is NULL");
    const kat_attn_desc *d = &a->desc;
    const size_t Hkv = d->H_kv ? d->H_kv : d->H, Dv = d->Dv ? d->Dv : d->D;
    if (!d->B || !d->H || !d->N || !d->M || !d->D)
        return fail(KAT_EINVAL,
                    "kat_cuda_linear: a zero size (B = %zu, H = %zu, N = %zu, M = %zu, D = %zu)",
                    d->B, d->H, d->N, d->M, d->D);
    if (d->H % Hkv)
        return fail(KAT_EINVAL, "kat_cuda_linear: H = %zu is not a multiple of H_kv = %zu", d->H,
                    Hkv);
    if (d->D > KAT_CUDA_MAX_D || Dv > KAT_CUDA_MAX_D)
        return fail(KAT_ENOTSUP, "kat_cuda_linear: %s = %zu is beyond the GPU kernels' %d",
                    d->D > KAT_CUDA_MAX_D ? "D" : "Dv", d->D > KAT_CUDA_MAX_D ? d->D : Dv,
                    KAT_CUDA_MAX_D);
    if (d->N >= (size_t)ROW_LIMIT || d->M >= (size_t)ROW_LIMIT || d->B >= 65536 ||
        d->H >= 65536)
        return fail(KAT_ERANGE,
                    "kat_cuda_linear: B = %zu, H = %zu, N = %zu or M = %zu is too large", d->B,
                    d->H, d->N, d->M);
    if (d->causal && d->N != d->M)
        return fail(KAT_EINVAL,
                    "kat_cuda_linear: causal linear attention needs N = M (N = %zu, M = %zu)",
                    d->N, d->M);
    if (!isfinite(d->scale) || d->scale < 0)
        return fail(KAT_EINVAL, "kat_cuda_linear: scale = %g must be finite and >= 0", d->scale);
    int dtype;   /* read as an int: a C caller can store any int in the enum */
    memcpy(&dtype, &a->dtype, sizeof dtype);
    if (dtype != KAT_CUDA_BF16 && dtype != KAT_CUDA_FP16 && dtype != KAT_CUDA_FP32)
        return fail(KAT_EINVAL,
                    "kat_cuda_linear: dtype = %d is not KAT_CUDA_BF16, KAT_CUDA_FP16 or KAT_CUDA_FP32",
                    dtype);
    int map;
    memcpy(&map, &a->map, sizeof map);
    if (map != KAT_CUDA_TAYLOR2 && map != KAT_CUDA_FEATURES)
        return fail(KAT_EINVAL,
                    "kat_cuda_linear: map = %d is neither KAT_CUDA_TAYLOR2 nor KAT_CUDA_FEATURES",
                    map);
    if (map == KAT_CUDA_FEATURES && d->scale != 0)
        return fail(KAT_EINVAL,
                    "kat_cuda_linear: scale = %g with KAT_CUDA_FEATURES (given features take "
                    "no scale; pass 0)", d->scale);
    kat_status st;
    if ((st = check_view("q", &a->q, dtype)) || (st = check_view("k", &a->k, dtype)) ||
        (st = check_view("v", &a->v, dtype)) || (st = check_view("o", &a->o, dtype)))
        return st;
    if (!a->den) return fail(KAT_EINVAL, "kat_cuda_linear: den is NULL");
    if ((uintptr_t)a->den % 4)
        return fail(KAT_EINVAL, "kat_cuda_linear: den %p is not 4-byte aligned", (void *)a->den);

    *p = lin_params{};
    p->B = (int)d->B;
    p->H = (int)d->H;
    p->Hkv = (int)Hkv;
    p->N = (int)d->N;
    p->M = (int)d->M;
    p->D = (int)d->D;
    p->Dv = (int)Dv;
    p->E = p->Dv + 1;
    p->C = p->D <= 64 && p->Dv <= 64 ? 64 : 32;
    p->causal = d->causal != 0;
    p->normalize = a->unnormalized == 0;
    p->features = map == KAT_CUDA_FEATURES;
    p->s = p->features ? 1.0f : (float)(d->scale ? d->scale : 1.0 / sqrt((double)d->D));
    p->q = src(a->q, dtype, p->D);
    p->k = src(a->k, dtype, p->D);
    p->vbar = src(a->v, dtype, p->Dv, 1);
    return KAT_OK;
}

size_t rows_bytes(const lin_params &p, int heads, int rows, int cols) {
    return align256((size_t)p.B * heads * rows * cols * sizeof(float));
}

size_t workspace(const lin_params &p, int backward) {
    if (!backward) return rows_bytes(p, p.H, p.N, p.E);
    return rows_bytes(p, p.H, p.N, p.E) + rows_bytes(p, p.H, p.N, p.D) +
           rows_bytes(p, p.Hkv, p.M, p.D) + rows_bytes(p, p.Hkv, p.M, p.E);
}

kat_status check_work(const lin_params &p, int backward, void *work, size_t work_bytes,
                      const char *fn) {
    const size_t need = workspace(p, backward);
    if (!work) return fail(KAT_EINVAL, "%s: work is NULL (%zu bytes needed)", fn, need);
    if ((uintptr_t)work % 256)
        return fail(KAT_EINVAL, "%s: work %p is not 256-byte aligned", fn, work);
    if (work_bytes < need)
        return fail(KAT_EINVAL, "%s: work_bytes = %zu, %zu needed", fn, work_bytes, need);
    return KAT_OK;
}

/* The sweep of the keys' state read by the queries: the forward's (into R) and the backward's
 * for dq (with the gradient rows, into dX). */
kat_cuda::lin_sweep query_sweep(const lin_params &p) {
    kat_cuda::lin_sweep w{};
    w.X = p.q;
    w.Y = p.k;
    w.U = p.vbar;
    w.nread = p.H / p.Hkv;
    w.nwrite = 1;
    w.n = p.N;
    w.m = p.M;
    return w;
}

} // namespace

extern "C" KAT_CUDA_API size_t kat_cuda_linear_workspace(const kat_cuda_linear *a, int backward) {
    lin_params p;
    if (make_params(a, &p)) return 0;
    return workspace(p, backward != 0);
}

extern "C" KAT_CUDA_API kat_status kat_cuda_linear_forward(const kat_cuda_linear *a, void *work,
                                                          size_t work_bytes,
                                                          kat_cuda_stream stream) {
    lin_params p;
    kat_status st = make_params(a, &p);
    if (st || (st = check_work(p, 0, work, work_bytes, "kat_cuda_linear_forward"))) return st;
    float *R = static_cast<float *>(work);
    cudaError_t e = p.causal ? kat_cuda::lin_launch_intra_fwd(p, R, stream)
                             : cudaMemsetAsync(R, 0, workspace(p, 0), stream);
    if ((st = launched(e, "in-chunk sums"))) return st;
    kat_cuda::lin_sweep w = query_sweep(p);
    w.R = R;
    if ((st = launched(kat_cuda::lin_launch_sweep(p, w, stream), "state sweep"))) return st;
    return launched(kat_cuda::lin_launch_finish_fwd(p, R, a->o.data, a->o.stride, a->den, stream),
                    "output");
}

extern "C" KAT_CUDA_API kat_status kat_cuda_linear_backward(const kat_cuda_linear *a,
                                                           kat_cuda_view dout, kat_cuda_view dq,
                                                           kat_cuda_view dk, kat_cuda_view dv,
                                                           void *work, size_t work_bytes,
                                                           kat_cuda_stream stream) {
    lin_params p;
    kat_status st = make_params(a, &p);
    if (st) return st;
    const int dtype = p.q.dtype;
    if ((st = check_view("dout", &dout, dtype)) || (st = check_view("dq", &dq, dtype)) ||
        (st = check_view("dk", &dk, dtype)) || (st = check_view("dv", &dv, dtype)) ||
        (st = check_work(p, 1, work, work_bytes, "kat_cuda_linear_backward")))
        return st;
    char *base = static_cast<char *>(work);
    float *g = reinterpret_cast<float *>(base);
    base += rows_bytes(p, p.H, p.N, p.E);
    float *dq_acc = reinterpret_cast<float *>(base);
    base += rows_bytes(p, p.H, p.N, p.D);
    float *dk_acc = reinterpret_cast<float *>(base);
    base += rows_bytes(p, p.Hkv, p.M, p.D);
    float *dvb_acc = reinterpret_cast<float *>(base);
    const size_t acc_bytes = rows_bytes(p, p.H, p.N, p.D) + rows_bytes(p, p.Hkv, p.M, p.D) +
                             rows_bytes(p, p.Hkv, p.M, p.E);

    const lin_src dsrc = src(dout, dtype, p.Dv), osrc = src(a->o, dtype, p.Dv);
    cudaError_t e = kat_cuda::lin_launch_make_g(p, dsrc, osrc, a->den, g, stream);
    if (e == cudaSuccess) e = cudaMemsetAsync(dq_acc, 0, acc_bytes, stream);
    if ((st = launched(e, "gradient rows"))) return st;
    p.g.p = g;
    p.g.dtype = kat_cuda::LIN_FP32;
    p.g.s[0] = (int64_t)p.H * p.N * p.E;
    p.g.s[1] = (int64_t)p.N * p.E;
    p.g.s[2] = p.E;
    p.g.cols = p.E;
    if (p.causal && (st = launched(kat_cuda::lin_launch_intra_bwd(p, dq_acc, dk_acc, dvb_acc, stream),
                                   "in-chunk gradients")))
        return st;
    kat_cuda::lin_sweep w = query_sweep(p);   /* dq */
    w.WV = p.g;
    w.dX = dq_acc;
    if ((st = launched(kat_cuda::lin_launch_sweep(p, w, stream), "dq sweep"))) return st;
    w = kat_cuda::lin_sweep{};   /* dk, dv: the queries' gradient state read by the keys */
    w.X = p.k;
    w.WV = p.vbar;
    w.Y = p.q;
    w.U = p.g;
    w.nread = 1;
    w.nwrite = p.H / p.Hkv;
    w.n = p.M;
    w.m = p.N;
    w.reverse = 1;
    w.R = dvb_acc;
    w.dX = dk_acc;
    if ((st = launched(kat_cuda::lin_launch_sweep(p, w, stream), "dk, dv sweep"))) return st;
    e = kat_cuda::lin_launch_store(p, dq_acc, p.H, p.N, p.D, p.D, dq.data, dq.stride, stream);
    if (e == cudaSuccess)
        e = kat_cuda::lin_launch_store(p, dk_acc, p.Hkv, p.M, p.D, p.D, dk.data, dk.stride, stream);
    if (e == cudaSuccess)
        e = kat_cuda::lin_launch_store(p, dvb_acc, p.Hkv, p.M, p.E, p.Dv, dv.data, dv.stride, stream);
    return launched(e, "gradients");
}
