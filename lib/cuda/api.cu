/* The C API of libkat-cuda: argument checks with sentences, then the launches. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <cuda_runtime.h>

#include "kat/cuda.h"
#include "flash.cuh"

using kat_cuda::flash_params;

static_assert(sizeof(kat_cuda_dtype) == sizeof(int), "kat_cuda_dtype is stored as an int");

static thread_local char last_error[512];

extern "C" KAT_CUDA_API const char *kat_cuda_last_error(void) { return last_error; }

static kat_status fail(kat_status st, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return st;
}

namespace kat_cuda {
/* The other entry points' errors (linear_api.cu) into this thread's sentence. */
kat_status report(kat_status st, const char *sentence) { return fail(st, "%s", sentence); }
} // namespace kat_cuda

static const int64_t ROW_LIMIT = (int64_t)1 << 31;

/* A view of [B, heads, rows, D]: data present and aligned, strides multiples of 8. */
static kat_status check_view(const char *name, const kat_cuda_view *v) {
    if (!v->data) return fail(KAT_EINVAL, "kat_cuda_attn: %s.data is NULL", name);
    if ((uintptr_t)v->data % 16)
        return fail(KAT_EINVAL, "kat_cuda_attn: %s.data %p is not 16-byte aligned", name, v->data);
    for (int i = 0; i < 3; i++)
        if (v->stride[i] < 0 || v->stride[i] % 8)
            return fail(KAT_EINVAL,
                        "kat_cuda_attn: %s.stride[%d] = %lld must be a non-negative multiple of 8",
                        name, i, (long long)v->stride[i]);
    return KAT_OK;
}

static kat_status launched(cudaError_t e, const char *what) {
    if (e != cudaSuccess)
        return fail(KAT_EIO, "kat_cuda_attn: %s: CUDA error: %s", what, cudaGetErrorString(e));
    return KAT_OK;
}

/* Check the call and fill the kernels' parameters. */
static kat_status make_params(const kat_cuda_attn *a, flash_params *p, bool with_layout = true) {
    if (!a) return fail(KAT_EINVAL, "kat_cuda_attn: the call is NULL");
    const kat_attn_desc *d = &a->desc;
    const size_t Hkv = d->H_kv ? d->H_kv : d->H;
    if (!d->B || !d->H || !d->N || !d->M || !d->D)
        return fail(KAT_EINVAL, "kat_cuda_attn: a zero size (B = %zu, H = %zu, N = %zu, M = %zu, D = %zu)",
                    d->B, d->H, d->N, d->M, d->D);
    if (d->H % Hkv)
        return fail(KAT_EINVAL, "kat_cuda_attn: H = %zu is not a multiple of H_kv = %zu", d->H, Hkv);
    if (d->D > KAT_CUDA_MAX_D)
        return fail(KAT_ENOTSUP, "kat_cuda_attn: D = %zu is beyond the GPU kernels' %d", d->D,
                    KAT_CUDA_MAX_D);
    if (d->D % 8) return fail(KAT_EINVAL, "kat_cuda_attn: D = %zu is not a multiple of 8", d->D);
    if (d->N >= (size_t)ROW_LIMIT || d->M >= (size_t)ROW_LIMIT || d->B >= 65536 ||
        d->H >= 65536)
        return fail(KAT_ERANGE, "kat_cuda_attn: B = %zu, H = %zu, N = %zu or M = %zu is too large",
                    d->B, d->H, d->N, d->M);
    if (a->window >= (size_t)ROW_LIMIT)
        return fail(KAT_ERANGE, "kat_cuda_attn: window = %zu is too large", a->window);
    if (!isfinite(d->scale) || d->scale < 0)
        return fail(KAT_EINVAL, "kat_cuda_attn: scale = %g must be finite and >= 0", d->scale);
    /* read as an int: in C++ an enum object holding a value outside its enumerators is
     * undefined behaviour, and a C caller can store any int there */
    int dtype;
    memcpy(&dtype, &a->dtype, sizeof dtype);
    if (dtype != KAT_CUDA_BF16 && dtype != KAT_CUDA_FP16)
        return fail(KAT_EINVAL, "kat_cuda_attn: dtype = %d is neither KAT_CUDA_BF16 nor KAT_CUDA_FP16",
                    dtype);
    kat_status st;
    if ((st = check_view("q", &a->q)) || (st = check_view("k", &a->k)) ||
        (st = check_view("v", &a->v)) || (st = check_view("o", &a->o)))
        return st;
    if (!a->lse) return fail(KAT_EINVAL, "kat_cuda_attn: lse is NULL");
    if (a->q_bucket || a->k_bucket) {
        if (!a->q_bucket || !a->k_bucket)
            return fail(KAT_EINVAL, "kat_cuda_attn: %s is NULL but %s is not",
                        a->q_bucket ? "k_bucket" : "q_bucket", a->q_bucket ? "q_bucket" : "k_bucket");
        if (a->nb < 1) return fail(KAT_EINVAL, "kat_cuda_attn: nb = %d must be >= 1", a->nb);
        if (Hkv != d->H)
            return fail(KAT_ENOTSUP, "kat_cuda_attn: bucketed attention needs H_kv = H (H = %zu, H_kv = %zu)",
                        d->H, Hkv);
        if ((uint64_t)d->B * d->H * ((uint64_t)a->nb + 1) >= ((uint64_t)1 << 32))
            return fail(KAT_ERANGE, "kat_cuda_attn: B * H * (nb + 1) = %llu is too large",
                        (unsigned long long)d->B * d->H * ((unsigned long long)a->nb + 1));
    }

    *p = flash_params{};
    p->q = a->q.data;
    p->k = a->k.data;
    p->v = a->v.data;
    p->o = a->o.data;
    p->lse = a->lse;
    for (int i = 0; i < 3; i++) {
        p->qs[i] = a->q.stride[i];
        p->ks[i] = a->k.stride[i];
        p->vs[i] = a->v.stride[i];
        p->os[i] = a->o.stride[i];
    }
    p->B = (int)d->B;
    p->H = (int)d->H;
    p->Hkv = (int)Hkv;
    p->N = (int)d->N;
    p->M = (int)d->M;
    p->D = (int)d->D;
    const double scale = d->scale ? d->scale : 1.0 / sqrt((double)d->D);
    p->scale = (float)scale;
    p->scale_log2 = (float)(scale * 1.4426950408889634);
    p->causal = d->causal != 0;
    p->window = (int)a->window;
    if (a->q_bucket && with_layout) {
        cudaError_t e;
        const size_t need = kat_cuda::layout_bytes(p->B * p->H, p->N, p->M, a->nb, &e);
        if (!need) return launched(e, "bucket layout size");
        if (!a->layout)
            return fail(KAT_EINVAL, "kat_cuda_attn: layout is NULL (%zu bytes needed)", need);
        if ((uintptr_t)a->layout % 256)
            return fail(KAT_EINVAL, "kat_cuda_attn: layout %p is not 256-byte aligned", a->layout);
        if (a->layout_bytes < need)
            return fail(KAT_EINVAL, "kat_cuda_attn: layout_bytes = %zu, %zu needed", a->layout_bytes,
                        need);
        p->q_bucket = a->q_bucket;
        p->k_bucket = a->k_bucket;
        void *ka, *kb, *temp;
        size_t temp_bytes;
        int *bad;
        kat_cuda::layout_carve(a->layout, p->B * p->H, p->N, p->M, a->nb, &p->L, &ka, &kb, &temp,
                               &temp_bytes, &bad);
    }
    return KAT_OK;
}

extern "C" KAT_CUDA_API size_t kat_cuda_attn_layout_size(const kat_cuda_attn *a) {
    if (!a || !a->q_bucket) return 0;
    flash_params p;
    if (make_params(a, &p, false)) return 0;
    cudaError_t e;
    const size_t n = kat_cuda::layout_bytes(p.B * p.H, p.N, p.M, a->nb, &e);
    if (!n) launched(e, "bucket layout size");
    return n;
}


extern "C" KAT_CUDA_API kat_status kat_cuda_attn_forward(const kat_cuda_attn *a, kat_cuda_stream stream) {
    flash_params p;
    kat_status st = make_params(a, &p);
    if (st) return st;
    if (a->q_bucket) {
        int bad = 0;
        if ((st = launched(kat_cuda::layout_build(a->layout, a->q_bucket, a->k_bucket,
                                                  p.B * p.H, p.N, p.M, a->nb, &p.L, &bad, stream),
                           "bucket layout")))
            return st;
        if (bad)
            return fail(KAT_EDOM, "kat_cuda_attn: a bucket id in q_bucket or k_bucket is outside [-1, %d)",
                        a->nb);
    }
    return launched(kat_cuda::launch_flash_forward(p, a->dtype == KAT_CUDA_BF16, stream),
                    "forward");
}

static size_t align256(size_t n) { return (n + 255) / 256 * 256; }

static size_t workspace_bytes(const flash_params &p) {
    const size_t rows = (size_t)p.B * p.H * p.N;
    return align256(rows * kat_cuda::flash_dp(p.D) * sizeof(float)) + align256(rows * sizeof(float));
}

extern "C" KAT_CUDA_API size_t kat_cuda_attn_backward_workspace(const kat_cuda_attn *a) {
    flash_params p;
    if (make_params(a, &p)) return 0;
    return workspace_bytes(p);
}

extern "C" KAT_CUDA_API kat_status kat_cuda_attn_backward(const kat_cuda_attn *a, kat_cuda_view dout,
                                                     kat_cuda_view dq, kat_cuda_view dk,
                                                     kat_cuda_view dv, void *work,
                                                     size_t work_bytes, kat_cuda_stream stream) {
    flash_params p;
    kat_status st = make_params(a, &p);
    if (st) return st;
    if ((st = check_view("dout", &dout)) || (st = check_view("dq", &dq)) ||
        (st = check_view("dk", &dk)) || (st = check_view("dv", &dv)))
        return st;
    const size_t need = workspace_bytes(p);
    if (!work) return fail(KAT_EINVAL, "kat_cuda_attn_backward: work is NULL (%zu bytes needed)", need);
    if ((uintptr_t)work % 256)
        return fail(KAT_EINVAL, "kat_cuda_attn_backward: work %p is not 256-byte aligned", work);
    if (work_bytes < need)
        return fail(KAT_EINVAL, "kat_cuda_attn_backward: work_bytes = %zu, %zu needed", work_bytes,
                    need);
    p.dout = dout.data;
    p.dq = dq.data;
    p.dk = dk.data;
    p.dv = dv.data;
    for (int i = 0; i < 3; i++) {
        p.dos[i] = dout.stride[i];
        p.dqs[i] = dq.stride[i];
        p.dks[i] = dk.stride[i];
        p.dvs[i] = dv.stride[i];
    }
    const size_t rows = (size_t)p.B * p.H * p.N;
    p.dq_acc = static_cast<float *>(work);
    p.delta = reinterpret_cast<float *>(static_cast<char *>(work) +
                                        align256(rows * kat_cuda::flash_dp(p.D) * sizeof(float)));
    return launched(kat_cuda::launch_flash_backward(p, a->dtype == KAT_CUDA_BF16, stream),
                    "backward");
}
