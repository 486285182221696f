/* kat cuda: exact softmax attention on an NVIDIA GPU (sm_80 and later), forward and backward.
 *
 * The same mathematics as kat/attn.h (the flash engine, FlashAttention-2, arXiv 2307.08691):
 *
 *   o[b,h,i,:] = sum_j softmax_j(scale * q[b,h,i,:] . k[b,h',j,:]) v[b,h',j,:]
 *
 * with h' = h / (H / H_kv), the causal diagonal at the bottom right (query i sees key j iff
 * j <= i + M - N), and optionally a sliding window (query i sees key j only if
 * |i + M - N - j| < window). A query that sees no key gets o = 0, lse = -inf and zero
 * gradients. Inputs are bf16 or fp16 on the device, products on the tensor cores with fp32
 * accumulation and an fp32 softmax; the logsumexp is fp32.
 *
 * Bucketed attention (hash buckets, QK-drop) adds one rule: query i sees key j only if their
 * bucket ids are equal. Ids are per (batch, head) row, in [-1, nb); -1 drops the row (a
 * dropped query gets o = 0, lse = -inf and dq = 0, a dropped key dk = dv = 0). QK-drop is
 * nb = 1 with ids 0 (kept) and -1 (dropped). The forward sorts each head's rows by (bucket,
 * row) on the GPU into the call's layout memory, and the kernels then visit only the key tiles
 * of a query tile's buckets; the backward reads the same layout.
 *
 * The library libkat-cuda stands alone: it links only the CUDA runtime, so its errors are
 * read with kat_cuda_last_error(), not kat_last_error(). Calls are asynchronous on the given
 * stream; argument errors are reported before anything is queued. */
#ifndef KAT_CUDA_H
#define KAT_CUDA_H

#include <stdint.h>

#include "kat/attn.h"

/* KAT_CUDA_API marks libkat-cuda's public functions, the only symbols libkat-cuda.so exports
 * (the library is built with hidden visibility). It is not KAT_API, which marks what libkat.so
 * itself exports. */
#if defined(KAT_CUDA_BUILDING_LIBRARY) && defined(__GNUC__)
#define KAT_CUDA_API __attribute__((visibility("default")))
#else
#define KAT_CUDA_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* A CUDA stream: the same type as the runtime's cudaStream_t (NULL is the default stream),
 * named here so that this header needs no CUDA header. */
typedef struct CUstream_st *kat_cuda_stream;

/* Largest head dimension of the GPU kernels; D must also be a multiple of 8. */
#define KAT_CUDA_MAX_D 128

/* The flash kernels take BF16 and FP16; linear attention also FP32. */
typedef enum { KAT_CUDA_BF16 = 0, KAT_CUDA_FP16 = 1, KAT_CUDA_FP32 = 2 } kat_cuda_dtype;

/* A [B, heads, rows, D] tensor in device memory: stride[0..2] are the element strides of the
 * b, head and row axes (multiples of 8), the D axis is contiguous; data is 16-byte aligned. */
typedef struct {
    void *data;
    int64_t stride[3];
} kat_cuda_view;

/* One attention call: shapes as in kat_attn_desc (H_kv = 0 means H, scale = 0 means
 * 1/sqrt(D)); q and o are [B, H, N, D], k and v [B, H_kv, M, D]; lse is a contiguous fp32
 * [B, H, N] device array (written by the forward, read by the backward). */
typedef struct {
    kat_attn_desc desc;
    kat_cuda_dtype dtype;
    size_t window;          /* 0: no band */
    kat_cuda_view q, k, v, o;
    float *lse;
    /* bucketed calls only (q_bucket = NULL: every key is a candidate); they need H_kv = H */
    const int32_t *q_bucket;   /* [B, H, N] contiguous int32 device array */
    const int32_t *k_bucket;   /* [B, H, M] */
    int nb;                    /* number of buckets, >= 1 */
    void *layout;              /* kat_cuda_attn_layout_size(a) bytes of device memory, 256-byte
                                  aligned: written by the forward, read by the backward */
    size_t layout_bytes;
} kat_cuda_attn;

/* Bytes of layout memory a bucketed call needs; 0 for a dense or an invalid call. */
KAT_CUDA_API size_t kat_cuda_attn_layout_size(const kat_cuda_attn *a);

/* o and lse from q, k, v. A bucketed forward also builds the layout, and waits for the stream
 * once, to check the ids (KAT_EDOM naming q_bucket or k_bucket if one is outside [-1, nb)).
 * Errors: KAT_EINVAL naming the argument (NULL data, D not a multiple
 * of 8, unaligned data or stride, H not a multiple of H_kv, a zero size); KAT_ENOTSUP for
 * D > KAT_CUDA_MAX_D; KAT_ERANGE for N, M or a stride product past 2^31 rows; KAT_EIO when
 * the CUDA runtime refuses the launch (its message in the sentence). */
KAT_CUDA_API kat_status kat_cuda_attn_forward(const kat_cuda_attn *a, kat_cuda_stream stream);

/* Bytes of device workspace the backward needs (an fp32 dq accumulator and the row sums of
 * dout * o); 0 for an invalid call. */
KAT_CUDA_API size_t kat_cuda_attn_backward_workspace(const kat_cuda_attn *a);

/* dq [B, H, N, D], dk and dv [B, H_kv, M, D] from a->q, k, v, the forward's o and lse (and
 * layout, for a bucketed call: a the same as the forward's), and dout [B, H, N, D]. work: work_bytes >= kat_cuda_attn_backward_workspace(a) of device
 * memory, 256-byte aligned (cudaMalloc's). Errors as the forward's, and KAT_EINVAL for a
 * workspace that is missing or too small. */
KAT_CUDA_API kat_status kat_cuda_attn_backward(const kat_cuda_attn *a, kat_cuda_view dout,
                                          kat_cuda_view dq, kat_cuda_view dk, kat_cuda_view dv,
                                          void *work, size_t work_bytes, kat_cuda_stream stream);

/* Linear attention with the Taylor-2 map, the GPU form of kat's "taylor:2" feature map
 * (theory/polynomial.c): the kernel of q and k is
 *
 *   f(q, k) = 1 + u + u^2 / 2,   u = s q.k,   s = desc.scale (0 means 1/sqrt(D)),
 *
 * the dot of phi(q) and phi(k) with phi(x) = [1, x sqrt(s), (x (x) x) s / sqrt(2)], and
 *
 *   o[b,h,i,:] = sum_j f(q_i, k_j) v_j / sum_j f(q_i, k_j)    (unnormalized: no denominator)
 *
 * over every key j (non-causal) or j <= i (causal, which needs N = M). With map =
 * KAT_CUDA_FEATURES, q and k hold the caller's feature vectors phi(q_i) and phi(k_j) (D is
 * their length, up to KAT_CUDA_MAX_D) and f = q . k: linear attention with any feature map
 * the caller evaluates (the gradients dq, dk are then those of the features; the map's own
 * chain rule is the caller's). Normalised, the sums sum_j f must be positive (elu + 1,
 * FAVOR+ and other positive maps); a zero sum gives inf or NaN. k and v have H_kv
 * heads (h' = h / (H / H_kv)). The sum runs in chunks of 64 rows (32 for D or Dv over 64):
 * inside a chunk the C x C kernel values directly, across chunks through the running state
 * sum_j phi(k_j) [v_j, 1]^T, split by its rows over blocks (D + 1 rows of Dv + 1 a block);
 * everything in fp32 whatever the inputs' type. The backward runs two sweeps of the same
 * kind over the states of the gradients (docs/benchmarks.md, "Linear attention (Taylor-2)
 * on the GPU"). */
typedef enum { KAT_CUDA_TAYLOR2 = 0, KAT_CUDA_FEATURES = 1 } kat_cuda_linear_map;

typedef struct {
    kat_attn_desc desc;    /* B, H, H_kv, N, M, D (q and k), Dv (0: D), causal, scale (0 with
                              KAT_CUDA_FEATURES) */
    kat_cuda_dtype dtype;  /* of q, k, v, o (and dout, dq, dk, dv): BF16, FP16 or FP32 */
    int unnormalized;      /* nonzero: o = sum_j f v_j, no denominator */
    kat_cuda_linear_map map;   /* the Taylor-2 kernel of q and k, or q and k as features */
    kat_cuda_view q, k, v, o;   /* as kat_cuda_attn's, but any strides (in elements) and
                                   data aligned to the element size */
    float *den;            /* [B, H, N] fp32 device array: the denominators sum_j f (written
                              by the forward, read by the backward; unused when unnormalized
                              but still required) */
} kat_cuda_linear;

/* Bytes of 256-byte aligned device workspace a linear forward (backward = 0) or backward
 * (backward = 1) needs; 0 for an invalid call (kat_cuda_last_error() says why). */
KAT_CUDA_API size_t kat_cuda_linear_workspace(const kat_cuda_linear *a, int backward);

/* o and den from q, k, v. Errors: KAT_EINVAL naming the argument (NULL or misaligned data,
 * a negative stride, a zero size, H not a multiple of H_kv, causal with N != M, a workspace
 * missing or too small, a bad dtype or map, a scale with KAT_CUDA_FEATURES); KAT_ENOTSUP
 * for D or Dv beyond KAT_CUDA_MAX_D;
 * KAT_ERANGE for sizes past 2^31 rows; KAT_EIO when the CUDA runtime refuses a launch. */
KAT_CUDA_API kat_status kat_cuda_linear_forward(const kat_cuda_linear *a, void *work,
                                                size_t work_bytes, kat_cuda_stream stream);

/* dq [B, H, N, D], dk [B, H_kv, M, D] and dv [B, H_kv, M, Dv] from a's q, k, v, the
 * forward's o and den, and dout [B, H, N, Dv]; dk and dv sum over the query heads sharing a
 * key/value head. Errors as the forward's. */
KAT_CUDA_API kat_status kat_cuda_linear_backward(const kat_cuda_linear *a, kat_cuda_view dout,
                                                 kat_cuda_view dq, kat_cuda_view dk,
                                                 kat_cuda_view dv, void *work,
                                                 size_t work_bytes, kat_cuda_stream stream);

/* The calling thread's last error sentence from this library, or "" when none. */
KAT_CUDA_API const char *kat_cuda_last_error(void);

#ifdef __cplusplus
}
#endif

#endif
