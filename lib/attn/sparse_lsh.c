/* Angular LSH bucket ids: h(x) = argmax([x R, -x R]) with R a D x nb/2 matrix of random unit
 * columns, one R per head group, drawn from a seeded mt19937. The projections x R go through
 * cblas_sgemm, one block of rows at a time. */
#include <cblas.h>
#include <math.h>
#include "attn/sparse_internal.h"
#include "core/internal.h"
#include "core/runtime.h"

enum { LSH_ROWS = 2048 };   /* rows per sgemm block */

/* nr matrices R_r (D x half, row-major), columns Gaussian then normalised. */
static kat_status lsh_matrices(uint64_t seed, size_t nr, size_t D, size_t half, float *R)
{
    kat_rng *rng;
    kat_status st = kat_rng_create(seed, &rng);
    if (st)
        return st;
    double *col = kat__alloc_array(D, sizeof(double), "LSH column");
    if (!col) {
        kat_rng_destroy(rng);
        return KAT_ENOMEM;
    }
    for (size_t r = 0; r < nr; r++)
        for (size_t c = 0; c < half; c++) {
            double norm2 = 0.0;
            while (norm2 == 0.0) {   /* a zero column has probability 0; redraw if it happens */
                for (size_t d = 0; d < D; d++) {
                    col[d] = kat_rng_gaussian(rng, 1.0);
                    norm2 += col[d] * col[d];
                }
            }
            double inv = 1.0 / sqrt(norm2);
            for (size_t d = 0; d < D; d++)
                R[(r * D + d) * half + c] = (float)(col[d] * inv);
        }
    kat_free(col);
    kat_rng_destroy(rng);
    return KAT_OK;
}

kat_status kat_sparse_lsh_buckets(const kat_tensor *x, size_t group, size_t nb, uint64_t seed,
                                  int32_t *buckets)
{
    kat_status st = kat_tensor_check(x, "x", 1);
    if (st)
        return st;
    if (nb < 2 || nb % 2 || nb > (size_t)INT32_MAX)
        return kat__fail(KAT_EINVAL, "nb = %zu buckets: LSH needs an even number in 2 .. 2^31 - 2",
                        nb);
    if (group == 0 || (x->H && x->H % group))
        return kat__fail(KAT_EINVAL, "group = %zu does not divide the H = %zu heads of x", group,
                        x->H);
    size_t total = kat_tensor_numel(x);
    if (!total)
        return KAT_OK;
    if (!buckets)
        return kat__fail(KAT_EINVAL, "buckets is NULL");
    if (x->N > (size_t)INT32_MAX || x->D > (size_t)INT32_MAX || x->sn > (size_t)INT32_MAX)
        return kat__fail(KAT_ERANGE, "x: N = %zu, D = %zu or row stride %zu is too large for sgemm",
                        x->N, x->D, x->sn);
    size_t half = nb / 2, nr = x->H / group, D = x->D, rt;
    if (kat_mul3_overflow(nr, D, half, &rt))
        return kat__fail(KAT_ERANGE, "LSH matrices: %zu x %zu x %zu overflows", nr, D, half);
    size_t block = x->N < LSH_ROWS ? x->N : LSH_ROWS;
    float *R = kat__alloc_array(rt, sizeof(float), "LSH matrices");
    float *S = kat__alloc_array(block, half * sizeof(float), "LSH projections");
    if (!R || !S) {
        kat_free(R), kat_free(S);
        return KAT_ENOMEM;
    }
    if ((st = lsh_matrices(seed, nr, D, half, R))) {
        kat_free(R), kat_free(S);
        return st;
    }
    if ((st = kat__blas_hold(kat_num_threads(), 1, "sparse_lsh_buckets"))) {
        kat_free(R), kat_free(S);
        return st;
    }
    for (size_t b = 0; b < x->B; b++)
        for (size_t h = 0; h < x->H; h++) {
            const float *Rh = R + (h / group) * D * half;
            for (size_t n0 = 0; n0 < x->N; n0 += block) {
                size_t rows = x->N - n0 < block ? x->N - n0 : block;
                size_t lda = rows > 1 ? x->sn : D;
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)half,
                            (int)D, 1.0f, kat_tensor_row(x, b, h, n0), (int)lda, Rh, (int)half,
                            0.0f, S, (int)half);
                int32_t *out = buckets + (b * x->H + h) * x->N + n0;
                for (size_t i = 0; i < rows; i++) {
                    const float *s = S + i * half;
                    /* argmax over [s, -s]: first index of the largest value. */
                    size_t best = 0;
                    float bv = s[0];
                    for (size_t c = 1; c < half; c++)
                        if (s[c] > bv)
                            bv = s[c], best = c;
                    for (size_t c = 0; c < half; c++)
                        if (-s[c] > bv)
                            bv = -s[c], best = half + c;
                    out[i] = (int32_t)best;
                }
            }
        }
    kat__blas_release();
    kat_free(R), kat_free(S);
    return KAT_OK;
}
