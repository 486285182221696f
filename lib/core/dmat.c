/* Row-major double matrix views: allocation and validation. */
#include <string.h>
#include "core/internal.h"

kat_status kat_dmat_alloc(size_t rows, size_t cols, kat_dmat *out)
{
    if (!out)
        return kat__fail(KAT_EINVAL, "dmat_alloc: out is NULL");
    size_t count;
    if (kat_mul_overflow(rows, cols, &count))
        return kat__fail(KAT_ERANGE, "dmat_alloc: %zu x %zu overflows size_t", rows, cols);
    double *data = kat_calloc(count ? count : 1, sizeof(double));
    if (!data)
        return kat__fail(KAT_ENOMEM, "dmat_alloc: cannot allocate a %zu x %zu matrix", rows, cols);
    out->rows = rows;
    out->cols = cols;
    out->ld = cols;
    out->data = data;
    return KAT_OK;
}

void kat_dmat_free(kat_dmat *m)
{
    if (!m)
        return;
    kat_free(m->data);
    memset(m, 0, sizeof *m);
}

kat_status kat_dmat_check(const kat_dmat *m, const char *what, int check_finite)
{
    if (!m)
        return kat__fail(KAT_EINVAL, "%s is NULL", what);
    if (m->rows == 0 || m->cols == 0)
        return KAT_OK;
    if (!m->data)
        return kat__fail(KAT_EINVAL, "%s: data is NULL for a %zu x %zu matrix", what, m->rows,
                        m->cols);
    if (m->ld < m->cols)
        return kat__fail(KAT_EINVAL, "%s: ld = %zu is smaller than cols = %zu", what, m->ld,
                        m->cols);
    size_t span;
    if (kat_mul_overflow(m->rows - 1, m->ld, &span) || kat_add_overflow(span, m->cols, &span) ||
        kat_mul_overflow(span, sizeof(double), &span))
        return kat__fail(KAT_ERANGE, "%s: %zu rows with ld = %zu overflow size_t", what, m->rows,
                        m->ld);
    if (check_finite) {
        for (size_t i = 0; i < m->rows; i++) {
            const double *row = m->data + i * m->ld;
            if (!kat__all_finite(row, m->cols)) {
                size_t j = kat__first_nonfinite(row, m->cols);
                return kat__fail(KAT_EDOM, "%s: entry (%zu, %zu) is %g", what, i, j, row[j]);
            }
        }
    }
    return KAT_OK;
}
