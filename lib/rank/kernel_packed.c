/* The product of a row tile of M with X, built straight into the layout the multiply wants
 * (AVX-512). OpenBLAS's GEMM would copy every entry of the tile into its own panels, copy
 * X's chunk again for every tile, and clear the result first; here the entries are made in
 * panels of 16 rows (one column of a panel is two 512-bit registers), X is laid out once per
 * product in panels of 8 columns, and a 16 x 8 block of the result stays in registers for a
 * whole chunk of columns of M. */
#include <string.h>
#include "core/internal.h"
#include "rank/rank_internal.h"

enum { MR = 16, NR = 8, KC = RANK_PACKED_KC };

static size_t round_up(size_t a, size_t m) { return (a + m - 1) / m * m; }

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define KAT_RANK_PACKED 1
#define TARGET __attribute__((target("avx512f,avx512dq,avx512vl,fma")))
#else
#define KAT_RANK_PACKED 0
#define TARGET
#endif

int kat__rank_packed_available(void)
{
    return KAT_RANK_PACKED && kat_arch_get() == KAT_ARCH_AVX512;
}

size_t kat__rank_packed_x_size(size_t m, size_t b) { return m * round_up(b, NR); }

size_t kat__rank_packed_scratch(size_t tile_rows, size_t b, size_t d)
{
    size_t nip = round_up(tile_rows, MR);
    return nip * (KC + round_up(b, NR) + d + 1);
}

void kat__rank_packed_x(const double *X, size_t ldx, size_t m, size_t b, double *Xp)
{
    for (size_t p = 0; p < round_up(b, NR) / NR; p++) {
        double *dst = Xp + p * m * NR;
        for (size_t t = 0; t < NR; t++) {
            size_t c = p * NR + t;
            const double *x = X + c * ldx;
            if (c < b)
                for (size_t j = 0; j < m; j++)
                    dst[j * NR + t] = x[j];
            else
                for (size_t j = 0; j < m; j++)
                    dst[j * NR + t] = 0.0;
        }
    }
}

#if KAT_RANK_PACKED
/* c (16 x 8, column-major, ld ldc) += a (kc columns of 16) times x (kc rows of 8). */
TARGET static void kernel_16x8(size_t kc, const double *a, const double *x, double *c,
                               size_t ldc)
{
    __m512d lo[NR], hi[NR];
    for (int t = 0; t < NR; t++) {
        lo[t] = _mm512_loadu_pd(c + t * ldc);
        hi[t] = _mm512_loadu_pd(c + t * ldc + 8);
    }
    for (size_t j = 0; j < kc; j++) {
        __m512d a0 = _mm512_loadu_pd(a + j * MR), a1 = _mm512_loadu_pd(a + j * MR + 8);
        for (int t = 0; t < NR; t++) {
            __m512d xb = _mm512_set1_pd(x[j * NR + t]);
            lo[t] = _mm512_fmadd_pd(a0, xb, lo[t]);
            hi[t] = _mm512_fmadd_pd(a1, xb, hi[t]);
        }
    }
    for (int t = 0; t < NR; t++) {
        _mm512_storeu_pd(c + t * ldc, lo[t]);
        _mm512_storeu_pd(c + t * ldc + 8, hi[t]);
    }
}

/* Columns j0 .. j0+nj-1 of the panels' rows of M, before f: ap[(q nj + j) 16 + r] is the
 * argument for row 16q + r of the tile. xq holds the rows transposed per panel (d x 16) and
 * xn their squared norms (l2sq). */
TARGET static void build_packed(const rank_op *op, const double *xq, const double *xn,
                                size_t npan, size_t j0, size_t nj, double *ap)
{
    const size_t d = op->d;
    const __m512d s = _mm512_set1_pd(op->s), zero = _mm512_setzero_pd();
    for (size_t q = 0; q < npan; q++) {
        const double *xp = xq + q * d * MR;
        double *out = ap + q * nj * MR;
        if (op->form == KAT_RANK_L1) {
            for (size_t j = 0; j < nj; j++) {
                const double *y = op->b + (j0 + j) * op->ldb;
                __m512d a0 = zero, a1 = zero;
                for (size_t t = 0; t < d; t++) {
                    __m512d yb = _mm512_set1_pd(y[t]);
                    a0 = _mm512_add_pd(a0, _mm512_abs_pd(_mm512_sub_pd(
                                               _mm512_loadu_pd(xp + t * MR), yb)));
                    a1 = _mm512_add_pd(a1, _mm512_abs_pd(_mm512_sub_pd(
                                               _mm512_loadu_pd(xp + t * MR + 8), yb)));
                }
                _mm512_storeu_pd(out + j * MR, _mm512_mul_pd(s, a0));
                _mm512_storeu_pd(out + j * MR + 8, _mm512_mul_pd(s, a1));
            }
            continue;
        }
        const __m512d n0 = _mm512_loadu_pd(xn + q * MR), n1 = _mm512_loadu_pd(xn + q * MR + 8);
        for (size_t j = 0; j < nj; j++) {
            const double *y = op->b + (j0 + j) * op->ldb;
            __m512d a0 = zero, a1 = zero;
            for (size_t t = 0; t < d; t++) {
                __m512d yb = _mm512_set1_pd(y[t]);
                a0 = _mm512_fmadd_pd(_mm512_loadu_pd(xp + t * MR), yb, a0);
                a1 = _mm512_fmadd_pd(_mm512_loadu_pd(xp + t * MR + 8), yb, a1);
            }
            if (op->form == KAT_RANK_L2SQ) {
                /* |x|^2 + |y|^2 - 2<x, y>, the rounding below 0 clamped (max_pd gives 0
                 * for a NaN too, as the comparison in build_block does) */
                __m512d yn = _mm512_set1_pd(op->bn[j0 + j]), m2 = _mm512_set1_pd(-2.0);
                a0 = _mm512_max_pd(_mm512_fmadd_pd(m2, a0, _mm512_add_pd(n0, yn)), zero);
                a1 = _mm512_max_pd(_mm512_fmadd_pd(m2, a1, _mm512_add_pd(n1, yn)), zero);
            }
            _mm512_storeu_pd(out + j * MR, _mm512_mul_pd(s, a0));
            _mm512_storeu_pd(out + j * MR + 8, _mm512_mul_pd(s, a1));
        }
    }
}

void kat__rank_packed_tile(const rank_op *op, size_t i0, size_t ni, const double *Xp, size_t b,
                      double *Y, size_t ldy, double *scratch, rank_fro_acc *fro)
{
    const size_t d = op->d, nip = round_up(ni, MR), npan = nip / MR, bp = round_up(b, NR);
    double *ap = scratch, *ct = ap + nip * KC, *xq = ct + nip * bp, *xn = xq + nip * d;
    memset(ct, 0, nip * bp * sizeof(double));
    for (size_t row = 0; row < nip; row++) {
        double *dst = xq + (row / MR) * d * MR + row % MR;
        for (size_t t = 0; t < d; t++)
            dst[t * MR] = row < ni ? op->a[(i0 + row) * op->lda + t] : 0.0;
        xn[row] = op->an && row < ni ? op->an[i0 + row] : 0.0;
    }
    for (size_t j0 = 0; j0 < op->cols; j0 += KC) {
        size_t nj = op->cols - j0 < KC ? op->cols - j0 : KC;
        build_packed(op, xq, xn, npan, j0, nj, ap);
        if (op->f)
            kat_fn_eval_unchecked(op->f, ap, ap, nip * nj);
        /* The padding rows are 0, so that they add nothing to |M|_F and leave no NaN. */
        if (nip > ni) {
            double *last = ap + (npan - 1) * nj * MR;
            for (size_t j = 0; j < nj; j++)
                for (size_t r = ni - (npan - 1) * MR; r < MR; r++)
                    last[j * MR + r] = 0.0;
        }
        if (fro)
            kat__rank_fro_acc_add(fro, ap, npan, nj * MR, nj * MR);
        for (size_t p = 0; p < bp / NR; p++)
            for (size_t q = 0; q < npan; q++)
                kernel_16x8(nj, ap + q * nj * MR, Xp + (p * op->cols + j0) * NR,
                            ct + p * NR * nip + q * MR, nip);
    }
    for (size_t c = 0; c < b; c++)
        memcpy(Y + c * ldy + i0, ct + c * nip, ni * sizeof(double));
}
#else
void kat__rank_packed_tile(const rank_op *op, size_t i0, size_t ni, const double *Xp, size_t b,
                      double *Y, size_t ldy, double *scratch, rank_fro_acc *fro)
{
    (void)op, (void)i0, (void)ni, (void)Xp, (void)b, (void)Y, (void)ldy, (void)scratch,
        (void)fro;   /* never called: kat__rank_packed_available() is 0 */
}
#endif
