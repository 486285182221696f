/* The chunk-level building blocks of linear attention and the forward passes over a range of
 * chunks: feature maps in fp32 (or through fp64), in-chunk causal scores, the carried state
 * S = sum psi(k) [v | 1]^T updated by one sgemm per chunk and read out by the accumulation
 * kernel (an sgemm would pack all of S for the chunk's few queries). */
#include <cblas.h>
#include <math.h>
#include <string.h>
#include "core/internal.h"
#include "attn/linear_internal.h"

void kat__lin_gemm(int ta, int tb, size_t m, size_t n, size_t k, const float *a, size_t lda,
              const float *b, size_t ldb, float beta, float *c, size_t ldc)
{
    if (m == 0 || n == 0)
        return;
    if (k == 0) {   /* sgemm would do this too, but keep the contract explicit */
        for (size_t i = 0; i < m; i++)
            for (size_t j = 0; j < n; j++)
                c[i * ldc + j] = beta == 0.0f ? 0.0f : beta * c[i * ldc + j];
        return;
    }
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                (int)m, (int)n, (int)k, 1.0f, a, (int)lda, b, (int)ldb, beta, c, (int)ldc);
}

/* The buffers of one thread: fp32 parts, fp64 parts and row pointers, each part rounded up to
 * 64 bytes so every buffer stays aligned. With mem NULL only the size is computed. Returns
 * the bytes, 0 on overflow. */
static size_t ws_layout(const lin_problem *p, int backward, unsigned char *mem, lin_ws *w)
{
    lin_ws dummy;
    if (!w)
        w = &dummy;
    memset(w, 0, sizeof *w);
    const size_t C = p->C, ldo = lin_ldo(p), nptr = p->Df + C;
    size_t cd, cD, cc, ce, co, de;
    if (ldo < p->E || nptr < C || kat_mul_overflow(C, p->d, &cd) ||
        kat_mul_overflow(C, p->Df, &cD) || kat_mul_overflow(C, C, &cc) ||
        kat_mul_overflow(C, p->E, &ce) || kat_mul_overflow(C, ldo, &co) ||
        kat_mul_overflow(p->Df, p->E, &de) || nptr > SIZE_MAX / 16)
        return 0;
    const size_t nmax = p->nq > p->nk ? p->nq : p->nk;
    struct {
        float **ptr;
        size_t n;
        int bwd;
    } fparts[] = {
        {&w->phq, cD, 0},   {&w->psk, cD, 0}, {&w->a, cc, 0},     {&w->vbar, ce, 0},
        {&w->obar, co, 0},  {&w->s, de, 0},   {&w->z, p->Df, 0},  {&w->ones, C, 0},
        {&w->den, C, 0},    {&w->qx, cd, 0},  {&w->kx, cd, 0},
        {&w->dphi, cD, 1},  {&w->df, cc, 1},  {&w->g, ce, 1},     {&w->dvbar, ce, 1},
        {&w->r, de, 1},     {&w->bden, nmax, 1},
    };
    struct {
        double **ptr;
        size_t n;
    } dparts[] = {{&w->xd, cd}, {&w->fd, cD}, {&w->qd, cd}, {&w->kd, cd}, {&w->gx, cd}};
    size_t off = 0, r;
    for (size_t i = 0; i < sizeof fparts / sizeof fparts[0]; i++) {
        if (fparts[i].bwd && !backward)
            continue;
        r = (fparts[i].n + 15) & ~(size_t)15;
        if (r < fparts[i].n || r > SIZE_MAX / sizeof(float) ||
            kat_add_overflow(off, r * sizeof(float), &off))
            return 0;
        if (mem)
            *fparts[i].ptr = (float *)(mem + off - r * sizeof(float));
    }
    for (size_t i = 0; i < sizeof dparts / sizeof dparts[0]; i++) {
        r = (dparts[i].n + 7) & ~(size_t)7;
        if (r < dparts[i].n || r > SIZE_MAX / sizeof(double) ||
            kat_add_overflow(off, r * sizeof(double), &off))
            return 0;
        if (mem)
            *dparts[i].ptr = (double *)(mem + off - r * sizeof(double));
    }
    r = (nptr * sizeof(const float *) + 63) & ~(size_t)63;
    if (kat_add_overflow(off, r, &off))
        return 0;
    if (mem) {
        w->srow = (const float **)(mem + off - r);
        w->vrow = w->srow + p->Df;
        for (size_t i = 0; i < C; i++)
            w->ones[i] = 1.0f;
    }
    return off;
}

size_t kat__lin_ws_bytes(const lin_problem *p, int backward)
{
    return ws_layout(p, backward, NULL, NULL);
}

void kat__lin_ws_carve(const lin_problem *p, int backward, unsigned char *mem, lin_ws *w)
{
    ws_layout(p, backward, mem, w);
}

kat_status kat__lin_features(const lin_problem *p, lin_ws *w, kat_side side, const float *x,
                        size_t ldx, size_t n, float *f)
{
    const size_t d = p->d, D = p->Df;
    kat_status st;
    if (p->ops->apply_f32) {
        st = p->ops->apply_f32(p->mstate, side, n, x, ldx, f, D);
    } else {
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < d; j++)
                w->xd[i * d + j] = x[i * ldx + j];
        st = p->ops->apply(p->mstate, side, n, w->xd, d, w->fd, D);
        if (st == KAT_OK)
            for (size_t i = 0; i < n * D; i++)
                f[i] = (float)w->fd[i];
    }
    /* Non-finite features are not looked for here (that would cost a pass over C x D values
     * per chunk): through the ones column every feature reaches the denominators and the
     * state, whose checks (write_outputs, lin_check_state) report them. */
    return st;
}

kat_status kat__lin_vjp(const lin_problem *p, lin_ws *w, kat_side side, const float *x, size_t ldx,
                   size_t n, const float *g, float *dx, size_t lddx)
{
    const size_t d = p->d, D = p->Df;
    if (p->ops->vjp_f32)
        return p->ops->vjp_f32(p->mstate, side, n, x, ldx, g, D, dx, lddx);
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < d; j++) {
            w->xd[i * d + j] = x[i * ldx + j];
            w->gx[i * d + j] = 0.0;
        }
    for (size_t i = 0; i < n * D; i++)
        w->fd[i] = g[i];
    kat_status st = p->ops->vjp(p->mstate, side, n, w->xd, d, w->fd, D, w->gx, d);
    if (st != KAT_OK)
        return st;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < d; j++)
            dx[i * lddx + j] += (float)w->gx[i * d + j];
    return KAT_OK;
}

kat_status kat__lin_scores(const lin_problem *p, lin_ws *w, const float *q, size_t ldq,
                      const float *k, size_t ldk, size_t n)
{
    const size_t C = p->C, d = p->d;
    float *a = w->a;
    if (p->intra == KAT_LINEAR_INTRA_FEATURES) {
        p->kern->dots(n, n, p->Df, w->phq, p->Df, w->psk, p->Df, a, C, 1);
    } else if (p->intra == KAT_LINEAR_INTRA_DOT) {
        if (p->ops->dot_input_f32) {
            kat_status st;
            if ((st = p->ops->dot_input_f32(p->mstate, KAT_SIDE_QUERY, n, q, ldq, w->qx, d)) ||
                (st = p->ops->dot_input_f32(p->mstate, KAT_SIDE_KEY, n, k, ldk, w->kx, d)))
                return st;
            q = w->qx, ldq = d, k = w->kx, ldk = d;
        }
        p->kern->dots(n, n, d, q, ldq, k, ldk, a, C, 1);
        for (size_t i = 0; i < n; i++) {
            kat_status st = p->ops->dot_kernel_f32(p->mstate, i + 1, a + i * C);
            if (st != KAT_OK)
                return st;
        }
    } else {
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < d; j++) {
                w->qd[i * d + j] = q[i * ldq + j];
                w->kd[i * d + j] = k[i * ldk + j];
            }
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j <= i; j++) {
                double s = p->ops->score(p->mstate, w->qd + i * d, w->kd + j * d);
                if (!isfinite(s) || !isfinite((float)s))
                    return kat__fail(KAT_EDOM, "linear attention: map %s gave the score %g for "
                                    "query %zu and key %zu of a chunk", kat_featmap_name(p->fm),
                                    s, i, j);
                a[i * C + j] = (float)s;
            }
    }
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++)
            a[i * C + j] = 0.0f;
    return KAT_OK;
}

void kat__lin_load_vbar(const lin_problem *p, lin_ws *w, const float *v, size_t ldv, size_t n)
{
    const size_t E = p->E, dv = p->dv;
    for (size_t i = 0; i < n; i++) {
        if (dv)
            memcpy(w->vbar + i * E, v + i * ldv, dv * sizeof(float));
        w->vbar[i * E + dv] = 1.0f;
    }
}

/* o rows [r0, r0 + n) of an item from [numerator | denominator] rows (ld ldo): normalised by
 * the last column, or not. */
static kat_status write_outputs(const lin_problem *p, const float *obar, size_t ldo, size_t item,
                                size_t r0, size_t n)
{
    const size_t dv = p->dv;
    for (size_t i = 0; i < n; i++) {
        const float *ob = obar + i * ldo;
        float *orow = (float *)lin_row(p->o, item, p->H, r0 + i);
        if (!kat__all_finite_f32(ob, dv + 1))
            return kat__fail(KAT_EDOM, "linear attention: the output of query %zu of (batch, "
                            "head) = (%zu, %zu) is not finite: map %s overflows in fp32 on "
                            "these inputs (or the sums do)", r0 + i, item / p->H, item % p->H,
                            kat_featmap_name(p->fm));
        if (p->normalize) {
            float den = ob[dv];
            if (!(den > 0.0f))
                return kat__fail(KAT_EDOM, "linear attention: the denominator of query %zu of "
                                "(batch, head) = (%zu, %zu) is %g, not > 0 (map %s underflows "
                                "in fp32 here)", r0 + i, item / p->H, item % p->H,
                                (double)den, kat_featmap_name(p->fm));
            float inv = 1.0f / den;
            for (size_t j = 0; j < dv; j++)
                orow[j] = ob[j] * inv;
        } else if (dv) {
            memcpy(orow, ob, dv * sizeof(float));
        }
    }
    return KAT_OK;
}

void kat__lin_load_z(const lin_problem *p, lin_ws *w, const float *s)
{
    for (size_t r = 0; r < p->Df; r++)
        w->z[r] = s[r * p->E + p->dv];
}

void kat__lin_readout(const lin_problem *p, lin_ws *w, size_t n, const float *s, const float *a)
{
    const size_t D = p->Df, E = p->E, dv = p->dv, ldo = lin_ldo(p);
    for (size_t r = 0; r < D; r++)
        w->srow[r] = s + r * E;
    memset(w->obar, 0, n * ldo * sizeof(float));
    /* numerators over dv columns (a multiple of 16 for the usual head sizes: no vector
     * wasted on the denominator column), then the denominators as row dots with z */
    p->kern->accum(n, D, w->phq, D, 1, w->srow, dv, w->obar, ldo, NULL);
    p->kern->dots(n, 1, D, w->phq, D, w->z, D, w->den, 1, 0);
    for (size_t i = 0; i < n; i++)
        w->obar[i * ldo + dv] = w->den[i];
    if (a) {
        for (size_t j = 0; j < n; j++)
            w->vrow[j] = w->vbar + j * E;
        p->kern->accum(n, n, a, p->C, 1, w->vrow, E, w->obar, ldo, NULL);
    }
}

/* The causal sweep: per chunk, the outputs from the state so far plus the chunk's own causal
 * scores, then the state update S += psi(K_c)^T V_c and z += sum psi(K_c) (the denominator
 * column, kept contiguous in w->z during the sweep). */
kat_status kat__lin_fwd_causal(const lin_problem *p, lin_ws *w, size_t item, size_t c_lo, size_t c_hi,
                          float *s, int full)
{
    const size_t C = p->C, D = p->Df, E = p->E, H = p->H;
    kat_status st = KAT_OK;
    kat__lin_load_z(p, w, s);
    for (size_t ch = c_lo; ch < c_hi; ch++) {
        size_t r0 = ch * C, n = p->nk - r0 < C ? p->nk - r0 : C;
        const float *kr = lin_row(p->k, item, H, r0), *vr = lin_row(p->v, item, H, r0);
        if ((st = kat__lin_features(p, w, KAT_SIDE_KEY, kr, p->k->sn, n, w->psk)))
            break;
        kat__lin_load_vbar(p, w, vr, p->v->sn, n);
        if (full) {
            const float *qr = lin_row(p->q, item, H, r0);
            if ((st = kat__lin_features(p, w, KAT_SIDE_QUERY, qr, p->q->sn, n, w->phq)) ||
                (st = kat__lin_scores(p, w, qr, p->q->sn, kr, p->k->sn, n)))
                break;
            kat__lin_readout(p, w, n, s, w->a);
            if ((st = write_outputs(p, w->obar, lin_ldo(p), item, r0, n)))
                break;
        }
        kat__lin_gemm(1, 0, D, p->dv, n, w->psk, D, w->vbar, E, 1.0f, s, E);
        /* z += the column sums of psi(K_c): an accumulation with unit weights over the key
         * feature rows (vrow holds C pointers; the next readout resets them) */
        for (size_t j = 0; j < n; j++)
            w->vrow[j] = w->psk + j * D;
        p->kern->accum(1, n, w->ones, 0, 1, w->vrow, D, w->z, 0, NULL);
    }
    for (size_t r = 0; r < D; r++)
        s[r * E + p->dv] = w->z[r];
    return st;
}

kat_status kat__lin_fwd_keys(const lin_problem *p, lin_ws *w, size_t item, size_t k_lo, size_t k_hi,
                        float *s)
{
    const size_t C = p->C, D = p->Df, E = p->E;
    kat_status st;
    for (size_t r0 = k_lo; r0 < k_hi; r0 += C) {
        size_t n = k_hi - r0 < C ? k_hi - r0 : C;
        if ((st = kat__lin_features(p, w, KAT_SIDE_KEY, lin_row(p->k, item, p->H, r0), p->k->sn, n,
                               w->psk)))
            return st;
        kat__lin_load_vbar(p, w, lin_row(p->v, item, p->H, r0), p->v->sn, n);
        kat__lin_gemm(1, 0, D, E, n, w->psk, D, w->vbar, E, 1.0f, s, E);
    }
    return KAT_OK;
}

kat_status kat__lin_fwd_queries(const lin_problem *p, lin_ws *w, size_t item, size_t q_lo,
                           size_t q_hi, const float *s)
{
    const size_t C = p->C;
    kat_status st;
    kat__lin_load_z(p, w, s);
    for (size_t r0 = q_lo; r0 < q_hi; r0 += C) {
        size_t n = q_hi - r0 < C ? q_hi - r0 : C;
        if ((st = kat__lin_features(p, w, KAT_SIDE_QUERY, lin_row(p->q, item, p->H, r0), p->q->sn, n,
                               w->phq)))
            return st;
        kat__lin_readout(p, w, n, s, NULL);
        if ((st = write_outputs(p, w->obar, lin_ldo(p), item, r0, n)))
            return st;
    }
    return KAT_OK;
}
