/* Strided fp32 tensor views: construction, validation, overlap. */
#include <stdint.h>
#include "core/internal.h"
#include "kat/tensor.h"

kat_tensor kat_tensor_view(float *data, size_t B, size_t H, size_t N, size_t D)
{
    kat_tensor t = {data, B, H, N, D, H * N * D, N * D, D};
    return t;
}

size_t kat_tensor_numel(const kat_tensor *t)
{
    size_t n;
    if (kat_mul3_overflow(t->B, t->H, t->N, &n) || kat_mul_overflow(n, t->D, &n))
        return 0;
    return n;
}

/* Largest element offset + 1, or 0 for an empty view; 1 on overflow. */
static int tensor_extent(const kat_tensor *t, size_t *extent)
{
    *extent = 0;
    if (!t->B || !t->H || !t->N || !t->D)
        return 0;
    size_t a, b, c, e;
    if (kat_mul_overflow(t->B - 1, t->sb, &a) || kat_mul_overflow(t->H - 1, t->sh, &b) ||
        kat_mul_overflow(t->N - 1, t->sn, &c) || kat_add_overflow(a, b, &e) ||
        kat_add_overflow(e, c, &e) || kat_add_overflow(e, t->D, &e) ||
        kat_mul_overflow(e, sizeof(float), &a))
        return 1;
    *extent = e;
    return 0;
}

kat_status kat_tensor_check(const kat_tensor *t, const char *what, int check_finite)
{
    if (!t)
        return kat__fail(KAT_EINVAL, "%s is NULL", what);
    size_t extent;
    if (tensor_extent(t, &extent) || !kat_tensor_numel(t) != !(t->B && t->H && t->N && t->D))
        return kat__fail(KAT_ERANGE,
                        "%s: shape [%zu, %zu, %zu, %zu] with strides (%zu, %zu, %zu) overflows",
                        what, t->B, t->H, t->N, t->D, t->sb, t->sh, t->sn);
    if (extent == 0)
        return KAT_OK;
    if (!t->data)
        return kat__fail(KAT_EINVAL, "%s: data is NULL for shape [%zu, %zu, %zu, %zu]", what,
                        t->B, t->H, t->N, t->D);
    if (t->N > 1 && t->sn < t->D)
        return kat__fail(KAT_EINVAL, "%s: row stride sn = %zu is smaller than D = %zu", what,
                        t->sn, t->D);
    if (check_finite) {
        for (size_t b = 0; b < t->B; b++)
            for (size_t h = 0; h < t->H; h++)
                for (size_t n = 0; n < t->N; n++) {
                    const float *row = kat_tensor_row(t, b, h, n);
                    if (!kat__all_finite_f32(row, t->D)) {
                        size_t j = 0;
                        while (j < t->D && __builtin_isfinite(row[j]))
                            j++;
                        return kat__fail(KAT_EDOM, "%s: element [%zu, %zu, %zu, %zu] is %g", what,
                                        b, h, n, j, (double)row[j]);
                    }
                }
    }
    return KAT_OK;
}

int kat_tensor_overlap(const kat_tensor *a, const kat_tensor *b)
{
    size_t ea, eb;
    if (tensor_extent(a, &ea) || tensor_extent(b, &eb))
        return 1;
    if (!ea || !eb)
        return 0;
    uintptr_t a0 = (uintptr_t)a->data, a1 = a0 + ea * sizeof(float);
    uintptr_t b0 = (uintptr_t)b->data, b1 = b0 + eb * sizeof(float);
    return a0 < b1 && b0 < a1;
}
