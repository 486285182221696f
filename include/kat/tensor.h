/* kat tensor: strided fp32 [B, H, N, D] views for the attention engines. */
#ifndef KAT_TENSOR_H
#define KAT_TENSOR_H

#include "kat/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Element (b, h, n, j) lives at data[b*sb + h*sh + n*sn + j]: strides in elements, the last
 * dimension contiguous. Transposed layouts need no copy: a [B, N, H, D] buffer is the view
 * {B, H, N, D, sb = N*H*D, sh = D, sn = H*D}. The caller owns the memory. */
typedef struct {
    float *data;
    size_t B, H, N, D;
    size_t sb, sh, sn;
} kat_tensor;

/* A contiguous [B, H, N, D] view of data. */
KAT_API kat_tensor kat_tensor_view(float *data, size_t B, size_t H, size_t N, size_t D);

/* Validate a view: non-NULL data when non-empty, sn >= D, strides whose largest offset fits in
 * size_t, and (when check_finite) every element finite. `what` names the argument. */
KAT_API kat_status kat_tensor_check(const kat_tensor *t, const char *what, int check_finite);

/* Number of elements B*H*N*D (0 on overflow; kat_tensor_check reports that). */
KAT_API size_t kat_tensor_numel(const kat_tensor *t);

/* 1 when the memory ranges spanned by a and b intersect (a conservative overlap test, used to
 * refuse an output view that aliases an input). */
KAT_API int kat_tensor_overlap(const kat_tensor *a, const kat_tensor *b);

/* Pointer to row (b, h, n). */
static inline float *kat_tensor_row(const kat_tensor *t, size_t b, size_t h, size_t n)
{
    return t->data + b * t->sb + h * t->sh + n * t->sn;
}

#ifdef __cplusplus
}
#endif
#endif
