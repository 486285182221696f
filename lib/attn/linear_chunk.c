/* The chunk-level building blocks of linear attention and the forward passes over a range of
 * chunks: feature maps in fp32 (or through fp64), in-chunk causal scores, the carried state
 * S = sum psi(k) [v | 1]^T updated by one sgemm per chunk. */
#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <string.h>
#include "core/internal.h"
#include "attn/linear_internal.h"

void lin_gemm(int ta, int tb, size_t m, size_t n, size_t k, const float *a, size_t lda,
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

int lin_ws_alloc(const lin_problem *p, int backward, lin_ws *w)
{
    memset(w, 0, sizeof *w);
    const size_t C = p->C, L = p->E + C;
    size_t cd, cD, cc, ce, de, dl, cl;
    if (L < C || kat_mul_overflow(C, p->d, &cd) || kat_mul_overflow(C, p->Df, &cD) ||
        kat_mul_overflow(C, C, &cc) || kat_mul_overflow(C, p->E, &ce) ||
        kat_mul_overflow(p->Df, p->E, &de) || kat_mul_overflow(p->Df, L, &dl) ||
        kat_mul_overflow(C, L, &cl))
        return 1;
    const size_t nmax = p->nq > p->nk ? p->nq : p->nk;
    struct {
        float **ptr;
        size_t n;
        int bwd;
    } fparts[] = {
        {&w->phq, cD, 0},   {&w->psk, cD, 0}, {&w->a, cc, 0},     {&w->vbar, ce, 0},
        {&w->obar, ce, 0},  {&w->s, de, 0},   {&w->bt, dl, 0},    {&w->xt, cl, 0},
        {&w->dphi, cD, 1},  {&w->df, cc, 1},  {&w->g, ce, 1},     {&w->dvbar, ce, 1},
        {&w->r, de, 1},     {&w->den, nmax, 1},
    };
    struct {
        double **ptr;
        size_t n;
    } dparts[] = {{&w->xd, cd}, {&w->fd, cD}, {&w->qd, cd}, {&w->kd, cd}, {&w->gx, cd}};
    const size_t nfp = sizeof fparts / sizeof fparts[0], ndp = sizeof dparts / sizeof dparts[0];
    /* each part rounded up to 64 bytes so every buffer stays aligned */
    size_t nf = 0, nd = 0;
    for (size_t i = 0; i < nfp; i++) {
        size_t r = (fparts[i].n + 15) & ~(size_t)15;
        if ((fparts[i].bwd && !backward))
            continue;
        if (r < fparts[i].n || kat_add_overflow(nf, r, &nf))
            return 1;
    }
    for (size_t i = 0; i < ndp; i++) {
        size_t r = (dparts[i].n + 7) & ~(size_t)7;
        if (r < dparts[i].n || kat_add_overflow(nd, r, &nd))
            return 1;
    }
    float *fb = kat_alloc_array(nf ? nf : 1, sizeof(float), "linear attention workspace");
    double *db = fb ? kat_alloc_array(nd ? nd : 1, sizeof(double), "linear attention workspace")
                    : NULL;
    if (!fb || !db) {
        kat_free(fb);
        return 2;
    }
    w->fbuf = fb;
    w->dbuf = db;
    for (size_t i = 0, off = 0; i < nfp; i++) {
        if (fparts[i].bwd && !backward)
            continue;
        *fparts[i].ptr = fb + off;
        off += (fparts[i].n + 15) & ~(size_t)15;
    }
    for (size_t i = 0, off = 0; i < ndp; i++) {
        *dparts[i].ptr = db + off;
        off += (dparts[i].n + 7) & ~(size_t)7;
    }
    return 0;
}

void lin_ws_free(lin_ws *w)
{
    if (!w)
        return;
    kat_free(w->fbuf);
    kat_free(w->dbuf);
    memset(w, 0, sizeof *w);
}

/* 1 when all n floats are finite: an integer test on the exponent bits, which vectorises
 * (a float reduction would not, without reassociation). */
int lin_all_finite(const float *x, size_t n)
{
    uint32_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, x + i, sizeof u);
        bad |= (uint32_t)((u & 0x7f800000u) == 0x7f800000u);
    }
    return bad == 0;
}

kat_status lin_features(const lin_problem *p, lin_ws *w, kat_side side, const float *x,
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

kat_status lin_vjp(const lin_problem *p, lin_ws *w, kat_side side, const float *x, size_t ldx,
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

kat_status lin_scores(const lin_problem *p, lin_ws *w, const float *q, size_t ldq,
                      const float *k, size_t ldk, size_t n)
{
    const size_t C = p->C, d = p->d;
    float *a = w->a;
    if (p->intra == KAT_LINEAR_INTRA_FEATURES) {
        lin_gemm(0, 1, n, n, p->Df, w->phq, p->Df, w->psk, p->Df, 0.0f, a, C);
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
                    return kat_fail(KAT_EDOM, "linear attention: map %s gave the score %g for "
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

void lin_load_vbar(const lin_problem *p, lin_ws *w, const float *v, size_t ldv, size_t n)
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
        if (!lin_all_finite(ob, dv + 1))
            return kat_fail(KAT_EDOM, "linear attention: the output of query %zu of (batch, "
                            "head) = (%zu, %zu) is not finite: map %s overflows in fp32 on "
                            "these inputs (or the sums do)", r0 + i, item / p->H, item % p->H,
                            kat_featmap_name(p->fm));
        if (p->normalize) {
            float den = ob[dv];
            if (!(den > 0.0f))
                return kat_fail(KAT_EDOM, "linear attention: the denominator of query %zu of "
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

/* o rows [r0, r0 + n) from the transposed [numerator ; denominator] (E x n, ld ldt). */
static kat_status write_outputs_t(const lin_problem *p, lin_ws *w, const float *ot, size_t ldt,
                                  size_t item, size_t r0, size_t n)
{
    const size_t E = p->E;
    for (size_t i = 0; i < n; i++)
        for (size_t c = 0; c < E; c++)
            w->obar[i * E + c] = ot[c * ldt + i];
    return write_outputs(p, w->obar, E, item, r0, n);
}

/* The causal sweep keeps the state transposed, S^T (E x D), on top of the key features of the
 * chunk, psi(K_c) (n x D), which the map writes in place: no transposition per chunk, and the
 * readout and the in-chunk scores come from one sgemm. */
kat_status lin_fwd_causal(const lin_problem *p, lin_ws *w, size_t item, size_t c_lo, size_t c_hi,
                          float *s, int full)
{
    const size_t C = p->C, D = p->Df, E = p->E, H = p->H;
    const int fused = p->intra == KAT_LINEAR_INTRA_FEATURES;
    float *st_ = w->bt, *psi = w->bt + E * D, *xt = w->xt;
    kat_status st;
    for (size_t r = 0; r < D; r++)
        for (size_t c = 0; c < E; c++)
            st_[c * D + r] = s[r * E + c];
    for (size_t ch = c_lo; ch < c_hi; ch++) {
        size_t r0 = ch * C, n = p->nk - r0 < C ? p->nk - r0 : C;
        const float *kr = lin_row(p->k, item, H, r0), *vr = lin_row(p->v, item, H, r0);
        if ((st = lin_features(p, w, KAT_SIDE_KEY, kr, p->k->sn, n, psi)))
            return st;
        lin_load_vbar(p, w, vr, p->v->sn, n);
        if (full) {
            const float *qr = lin_row(p->q, item, H, r0);
            if ((st = lin_features(p, w, KAT_SIDE_QUERY, qr, p->q->sn, n, w->phq)))
                return st;
            float *at = xt + E * C;   /* A^T[j][i] = f(q_i, k_j): rows E.. of the product */
            if (fused) {
                /* keys of the first half see every query of the chunk, keys of the second
                 * half only the second half of the queries: the block of later keys and
                 * earlier queries, zero under the causal mask, is never computed */
                size_t h1 = n >= 32 ? (n + 1) / 2 : n, h2 = n - h1;
                lin_gemm(0, 1, E + h1, n, D, st_, D, w->phq, D, 0.0f, xt, C);
                if (h2)
                    lin_gemm(0, 1, h2, h2, D, psi + h1 * D, D, w->phq + h1 * D, D, 0.0f,
                             at + h1 * C + h1, C);
                for (size_t j = 0; j < n; j++)
                    for (size_t i = 0; i < j; i++)
                        at[j * C + i] = 0.0f;
                /* O^T += [V_c | 1]^T A^T: the chunk's own keys (rows disjoint from at) */
                lin_gemm(1, 0, E, n, n, w->vbar, E, at, C, 1.0f, xt, C);
            } else {
                lin_gemm(0, 1, E, n, D, st_, D, w->phq, D, 0.0f, xt, C);
                if ((st = lin_scores(p, w, qr, p->q->sn, kr, p->k->sn, n)))
                    return st;
                lin_gemm(1, 1, E, n, n, w->vbar, E, w->a, C, 1.0f, xt, C);
            }
            if ((st = write_outputs_t(p, w, xt, C, item, r0, n)))
                return st;
        }
        /* carry: S^T += [V_c | 1]^T psi(K_c) */
        lin_gemm(1, 0, E, D, n, w->vbar, E, psi, D, 1.0f, st_, D);
    }
    for (size_t r = 0; r < D; r++)
        for (size_t c = 0; c < E; c++)
            s[r * E + c] = st_[c * D + r];
    return KAT_OK;
}

kat_status lin_fwd_keys(const lin_problem *p, lin_ws *w, size_t item, size_t k_lo, size_t k_hi,
                        float *s)
{
    const size_t C = p->C, D = p->Df, E = p->E;
    kat_status st;
    for (size_t r0 = k_lo; r0 < k_hi; r0 += C) {
        size_t n = k_hi - r0 < C ? k_hi - r0 : C;
        if ((st = lin_features(p, w, KAT_SIDE_KEY, lin_row(p->k, item, p->H, r0), p->k->sn, n,
                               w->psk)))
            return st;
        lin_load_vbar(p, w, lin_row(p->v, item, p->H, r0), p->v->sn, n);
        lin_gemm(1, 0, D, E, n, w->psk, D, w->vbar, E, 1.0f, s, E);
    }
    return KAT_OK;
}

kat_status lin_fwd_queries(const lin_problem *p, lin_ws *w, size_t item, size_t q_lo,
                           size_t q_hi, const float *s)
{
    const size_t C = p->C, D = p->Df, E = p->E;
    kat_status st;
    for (size_t r0 = q_lo; r0 < q_hi; r0 += C) {
        size_t n = q_hi - r0 < C ? q_hi - r0 : C;
        if ((st = lin_features(p, w, KAT_SIDE_QUERY, lin_row(p->q, item, p->H, r0), p->q->sn, n,
                               w->phq)))
            return st;
        lin_gemm(0, 0, n, E, D, w->phq, D, s, E, 0.0f, w->obar, E);
        if ((st = write_outputs(p, w->obar, E, item, r0, n)))
            return st;
    }
    return KAT_OK;
}
