/* The feature-map wrapper: validation and the fallbacks (fp32 through fp64, score through
 * the features) that let a user's map run with only `apply`. */
#include <string.h>
#include "core/internal.h"
#include "kat/featmap.h"

struct kat_featmap {
    const kat_featmap_ops *ops;
    void *state;
    size_t in_dim, out_dim;
    unsigned flags;
};

kat_status kat_featmap_create(const kat_featmap_ops *ops, void *state, size_t in_dim,
                              size_t out_dim, unsigned flags, kat_featmap **out)
{
    kat_status st = KAT_OK;
    if (!ops || !ops->apply)
        st = kat__fail(KAT_EINVAL, "featmap_create: ops%s is NULL", ops ? "->apply" : "");
    else if (in_dim == 0 || out_dim == 0)
        st = kat__fail(KAT_EINVAL, "featmap_create: in_dim = %zu and out_dim = %zu must be >= 1",
                      in_dim, out_dim);
    else if (!out)
        st = kat__fail(KAT_EINVAL, "featmap_create: out is NULL");
    kat_featmap *fm = NULL;
    if (st == KAT_OK && !(fm = kat_malloc(sizeof *fm)))
        st = KAT_ENOMEM;
    if (st != KAT_OK) {
        if (ops && ops->destroy)
            ops->destroy(state);
        return st;
    }
    fm->ops = ops;
    fm->state = state;
    fm->in_dim = in_dim;
    fm->out_dim = out_dim;
    fm->flags = flags;
    *out = fm;
    return KAT_OK;
}

void kat_featmap_destroy(kat_featmap *fm)
{
    if (!fm)
        return;
    if (fm->ops->destroy)
        fm->ops->destroy(fm->state);
    kat_free(fm);
}

size_t kat_featmap_in_dim(const kat_featmap *fm) { return fm ? fm->in_dim : 0; }
size_t kat_featmap_out_dim(const kat_featmap *fm) { return fm ? fm->out_dim : 0; }
unsigned kat_featmap_flags(const kat_featmap *fm) { return fm ? fm->flags : 0; }
const char *kat_featmap_name(const kat_featmap *fm)
{
    return fm && fm->ops->name ? fm->ops->name : "featmap";
}
int kat_featmap_has_vjp(const kat_featmap *fm)
{
    return fm && (fm->ops->vjp || fm->ops->vjp_f32);
}
const kat_featmap_ops *kat_featmap_get_ops(const kat_featmap *fm) { return fm ? fm->ops : NULL; }
const void *kat_featmap_state(const kat_featmap *fm) { return fm ? fm->state : NULL; }

kat_status kat_featmap_apply(const kat_featmap *fm, kat_side side, const kat_dmat *X, kat_dmat *F)
{
    if (!fm)
        return kat__fail(KAT_EINVAL, "featmap_apply: fm is NULL");
    if (side != KAT_SIDE_QUERY && side != KAT_SIDE_KEY)
        return kat__fail(KAT_EINVAL, "featmap_apply: side = %d is not QUERY or KEY", (int)side);
    kat_status st = kat_dmat_check(X, "featmap_apply: X", 1);
    if (st)
        return st;
    if ((st = kat_dmat_check(F, "featmap_apply: F", 0)))
        return st;
    if (X->cols != fm->in_dim)
        return kat__fail(KAT_EINVAL, "featmap_apply: X has %zu columns, the map takes d = %zu",
                        X->cols, fm->in_dim);
    if (F->cols != fm->out_dim || F->rows != X->rows)
        return kat__fail(KAT_EINVAL, "featmap_apply: F is %zu x %zu, expected %zu x %zu",
                        F->rows, F->cols, X->rows, fm->out_dim);
    if (X->rows == 0)
        return KAT_OK;
    st = fm->ops->apply(fm->state, side, X->rows, X->data, X->ld, F->data, F->ld);
    if (st)
        return st;
    for (size_t i = 0; i < F->rows; i++)
        if (!kat__all_finite(F->data + i * F->ld, F->cols))
            return kat__fail(KAT_EDOM, "featmap_apply: map %s gave a non-finite feature in row %zu",
                            kat_featmap_name(fm), i);
    return KAT_OK;
}

/* Rows per fp64 round trip: bounds the scratch so the fallback allocates O(block), not O(n). */
enum { F32_BLOCK = 64 };

kat_status kat_featmap_apply_f32(const kat_featmap *fm, kat_side side, size_t n, const float *x,
                                 size_t ldx, float *f, size_t ldf)
{
    if (fm->ops->apply_f32)
        return fm->ops->apply_f32(fm->state, side, n, x, ldx, f, ldf);
    size_t d = fm->in_dim, D = fm->out_dim;
    double *xd = kat__alloc_array(F32_BLOCK * (d + D), sizeof(double), "featmap fp32 scratch");
    if (!xd)
        return KAT_ENOMEM;
    double *fd = xd + F32_BLOCK * d;
    kat_status st = KAT_OK;
    for (size_t i0 = 0; i0 < n && st == KAT_OK; i0 += F32_BLOCK) {
        size_t nb = n - i0 < F32_BLOCK ? n - i0 : F32_BLOCK;
        for (size_t i = 0; i < nb; i++)
            for (size_t j = 0; j < d; j++)
                xd[i * d + j] = x[(i0 + i) * ldx + j];
        st = fm->ops->apply(fm->state, side, nb, xd, d, fd, D);
        for (size_t i = 0; i < nb && st == KAT_OK; i++)
            for (size_t j = 0; j < D; j++)
                f[(i0 + i) * ldf + j] = (float)fd[i * D + j];
    }
    kat_free(xd);
    return st;
}

kat_status kat_featmap_vjp_f32(const kat_featmap *fm, kat_side side, size_t n, const float *x,
                               size_t ldx, const float *g, size_t ldg, float *dx, size_t lddx)
{
    if (fm->ops->vjp_f32)
        return fm->ops->vjp_f32(fm->state, side, n, x, ldx, g, ldg, dx, lddx);
    if (!fm->ops->vjp)
        return kat__fail(KAT_ENOTSUP, "feature map %s has no gradient (vjp)", kat_featmap_name(fm));
    size_t d = fm->in_dim, D = fm->out_dim;
    double *xd = kat__alloc_array(F32_BLOCK * (2 * d + D), sizeof(double), "featmap vjp scratch");
    if (!xd)
        return KAT_ENOMEM;
    double *gd = xd + F32_BLOCK * d, *dxd = gd + F32_BLOCK * D;
    kat_status st = KAT_OK;
    for (size_t i0 = 0; i0 < n && st == KAT_OK; i0 += F32_BLOCK) {
        size_t nb = n - i0 < F32_BLOCK ? n - i0 : F32_BLOCK;
        for (size_t i = 0; i < nb; i++) {
            for (size_t j = 0; j < d; j++) {
                xd[i * d + j] = x[(i0 + i) * ldx + j];
                dxd[i * d + j] = 0.0;
            }
            for (size_t j = 0; j < D; j++)
                gd[i * D + j] = g[(i0 + i) * ldg + j];
        }
        st = fm->ops->vjp(fm->state, side, nb, xd, d, gd, D, dxd, d);
        for (size_t i = 0; i < nb && st == KAT_OK; i++)
            for (size_t j = 0; j < d; j++)
                dx[(i0 + i) * lddx + j] += (float)dxd[i * d + j];
    }
    kat_free(xd);
    return st;
}

kat_status kat_featmap_score(const kat_featmap *fm, const double *q, const double *k, double *out)
{
    if (!fm || !q || !k || !out)
        return kat__fail(KAT_EINVAL, "featmap_score: %s is NULL",
                        !fm ? "fm" : !q ? "q" : !k ? "k" : "out");
    if (fm->ops->score) {
        *out = fm->ops->score(fm->state, q, k);
        return KAT_OK;
    }
    double *buf = kat__alloc_array(2, fm->out_dim * sizeof(double), "featmap_score scratch");
    if (!buf)
        return KAT_ENOMEM;
    kat_status st = fm->ops->apply(fm->state, KAT_SIDE_QUERY, 1, q, fm->in_dim, buf, fm->out_dim);
    if (!st)
        st = fm->ops->apply(fm->state, KAT_SIDE_KEY, 1, k, fm->in_dim, buf + fm->out_dim,
                            fm->out_dim);
    if (!st) {
        double s = 0.0;
        for (size_t j = 0; j < fm->out_dim; j++)
            s += buf[j] * buf[fm->out_dim + j];
        *out = s;
    }
    kat_free(buf);
    return st;
}
