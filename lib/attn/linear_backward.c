/* Backward pass of linear attention for one (batch, head) item.
 *
 * With f_ij = phi_i . psi_j, [v | 1] = vbar, den_i = sum_j f_ij and o_i = num_i / den_i, the
 * row gradient g_i = [do_i / den_i | -(do_i . o_i) / den_i] gives df_ij = g_i . vbar_j and
 *     dphi_i  = S_i g_i         with S_i = sum_{j <= i} psi_j vbar_j^T  (forward state)
 *     dpsi_j  = R_j vbar_j      with R_j = sum_{i >= j} phi_i g_i^T     (reverse state)
 *     dvbar_j = R_j^T psi_j.
 * Causal: a forward sweep over chunks rebuilds S chunk by chunk (for dq and the denominators,
 * kept per token: O(N)), then a reverse sweep carries R (for dk and dv). Inside a chunk the
 * same quantities come from the C x C masked scores. No per-token state is ever stored. */
#include <cblas.h>
#include <math.h>
#include <string.h>
#include "core/internal.h"
#include "attn/linear_internal.h"

/* den_i for n rows: phi_i . z (z: column dv of s, stride E) plus the in-chunk scores. */
static void chunk_den(const lin_problem *p, lin_ws *w, const float *s, size_t n, int causal_part,
                      float *den)
{
    const size_t D = p->Df, E = p->E;
    if (s)
        cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)n, (int)D, 1.0f, w->phq, (int)D,
                    s + p->dv, (int)E, 0.0f, den, 1);
    else
        memset(den, 0, n * sizeof(float));
    if (causal_part)
        for (size_t i = 0; i < n; i++) {
            float t = 0.0f;
            for (size_t j = 0; j <= i; j++)
                t += w->a[i * p->C + j];
            den[i] += t;
        }
}

/* w->g for n rows starting at r0, from do, o and den. */
static kat_status chunk_g(const lin_problem *p, lin_ws *w, size_t item, size_t r0, size_t n,
                          const float *den)
{
    const size_t E = p->E, dv = p->dv;
    for (size_t i = 0; i < n; i++) {
        const float *dor = lin_row(p->d_o, item, p->H, r0 + i);
        const float *orow = lin_row(p->o_in, item, p->H, r0 + i);
        float *g = w->g + i * E;
        if (!p->normalize) {
            if (dv)
                memcpy(g, dor, dv * sizeof(float));
            g[dv] = 0.0f;
            continue;
        }
        float dn = den[i];
        if (!(dn > 0.0f) || !isfinite(dn))
            return kat__fail(KAT_EDOM, "linear attention backward: the denominator of query %zu "
                            "of (batch, head) = (%zu, %zu) is %g, not > 0", r0 + i, item / p->H,
                            item % p->H, (double)dn);
        float inv = 1.0f / dn, dot = 0.0f;
        for (size_t j = 0; j < dv; j++) {
            g[j] = dor[j] * inv;
            dot += dor[j] * orow[j];
        }
        g[dv] = -dot * inv;
    }
    return KAT_OK;
}

/* w->df = G Vbar^T under the causal mask (n x n, ld C). */
static void chunk_df(const lin_problem *p, lin_ws *w, size_t n)
{
    const size_t C = p->C;
    kat__lin_gemm(0, 1, n, n, p->E, w->g, p->E, w->vbar, p->E, 0.0f, w->df, C);
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++)
            w->df[i * C + j] = 0.0f;
}

static void zero_rows(const kat_tensor *t, size_t item, size_t H, size_t r0, size_t n)
{
    for (size_t i = 0; i < n; i++)
        memset((float *)lin_row(t, item, H, r0 + i), 0, t->D * sizeof(float));
}

/* dk and dv of n key rows at r0 from dpsi (w->dphi) and dvbar. */
static kat_status write_key_grads(const lin_problem *p, lin_ws *w, size_t item, size_t r0,
                                  size_t n)
{
    const size_t H = p->H, E = p->E, dv = p->dv;
    for (size_t i = 0; i < n; i++)
        if (dv)
            memcpy((float *)lin_row(p->dvt, item, H, r0 + i), w->dvbar + i * E,
                   dv * sizeof(float));
    zero_rows(p->dk, item, H, r0, n);
    return kat__lin_vjp(p, w, KAT_SIDE_KEY, lin_row(p->k, item, H, r0), p->k->sn, n, w->dphi,
                   (float *)lin_row(p->dk, item, H, r0), p->dk->sn);
}

static kat_status bwd_causal(const lin_problem *p, lin_ws *w, size_t item, float *ds0)
{
    const size_t C = p->C, D = p->Df, E = p->E, H = p->H, N = p->nq;
    const size_t nc = (N + C - 1) / C;
    float *s = w->s, *r = w->r;
    kat_status st;
    kat__lin_load_state(p, item, s);
    /* forward sweep: denominators, dq */
    for (size_t c = 0; c < nc; c++) {
        size_t r0 = c * C, n = N - r0 < C ? N - r0 : C;
        const float *qr = lin_row(p->q, item, H, r0), *kr = lin_row(p->k, item, H, r0);
        if ((st = kat__lin_features(p, w, KAT_SIDE_QUERY, qr, p->q->sn, n, w->phq)) ||
            (st = kat__lin_features(p, w, KAT_SIDE_KEY, kr, p->k->sn, n, w->psk)) ||
            (st = kat__lin_scores(p, w, qr, p->q->sn, kr, p->k->sn, n)))
            return st;
        kat__lin_load_vbar(p, w, lin_row(p->v, item, H, r0), p->v->sn, n);
        chunk_den(p, w, s, n, 1, w->bden + r0);
        if ((st = chunk_g(p, w, item, r0, n, w->bden + r0)))
            return st;
        chunk_df(p, w, n);
        kat__lin_gemm(0, 1, n, D, E, w->g, E, s, E, 0.0f, w->dphi, D);
        kat__lin_gemm(0, 0, n, D, n, w->df, C, w->psk, D, 1.0f, w->dphi, D);
        zero_rows(p->dq, item, H, r0, n);
        if ((st = kat__lin_vjp(p, w, KAT_SIDE_QUERY, qr, p->q->sn, n, w->dphi,
                          (float *)lin_row(p->dq, item, H, r0), p->dq->sn)))
            return st;
        kat__lin_gemm(1, 0, D, E, n, w->psk, D, w->vbar, E, 1.0f, s, E);
    }
    /* reverse sweep: dk, dv */
    memset(r, 0, D * E * sizeof(float));
    for (size_t c = nc; c-- > 0;) {
        size_t r0 = c * C, n = N - r0 < C ? N - r0 : C;
        const float *qr = lin_row(p->q, item, H, r0), *kr = lin_row(p->k, item, H, r0);
        if ((st = kat__lin_features(p, w, KAT_SIDE_QUERY, qr, p->q->sn, n, w->phq)) ||
            (st = kat__lin_features(p, w, KAT_SIDE_KEY, kr, p->k->sn, n, w->psk)) ||
            (st = kat__lin_scores(p, w, qr, p->q->sn, kr, p->k->sn, n)))
            return st;
        kat__lin_load_vbar(p, w, lin_row(p->v, item, H, r0), p->v->sn, n);
        if ((st = chunk_g(p, w, item, r0, n, w->bden + r0)))
            return st;
        chunk_df(p, w, n);
        kat__lin_gemm(0, 1, n, D, E, w->vbar, E, r, E, 0.0f, w->dphi, D);
        kat__lin_gemm(1, 0, n, D, n, w->df, C, w->phq, D, 1.0f, w->dphi, D);
        kat__lin_gemm(0, 0, n, E, D, w->psk, D, r, E, 0.0f, w->dvbar, E);
        kat__lin_gemm(1, 0, n, E, n, w->a, C, w->g, E, 1.0f, w->dvbar, E);
        if ((st = write_key_grads(p, w, item, r0, n)))
            return st;
        kat__lin_gemm(1, 0, D, E, n, w->phq, D, w->g, E, 1.0f, r, E);
    }
    if (ds0)
        memcpy(ds0, r, D * E * sizeof(float));
    return KAT_OK;
}

static kat_status bwd_full(const lin_problem *p, lin_ws *w, size_t item, float *ds0)
{
    const size_t C = p->C, D = p->Df, E = p->E, H = p->H;
    float *s = w->s, *r = w->r;
    kat_status st;
    kat__lin_load_state(p, item, s);
    if ((st = kat__lin_fwd_keys(p, w, item, 0, p->nk, s)))
        return st;
    memset(r, 0, D * E * sizeof(float));
    for (size_t r0 = 0; r0 < p->nq; r0 += C) {
        size_t n = p->nq - r0 < C ? p->nq - r0 : C;
        const float *qr = lin_row(p->q, item, H, r0);
        if ((st = kat__lin_features(p, w, KAT_SIDE_QUERY, qr, p->q->sn, n, w->phq)))
            return st;
        chunk_den(p, w, s, n, 0, w->bden + r0);
        if ((st = chunk_g(p, w, item, r0, n, w->bden + r0)))
            return st;
        kat__lin_gemm(0, 1, n, D, E, w->g, E, s, E, 0.0f, w->dphi, D);
        zero_rows(p->dq, item, H, r0, n);
        if ((st = kat__lin_vjp(p, w, KAT_SIDE_QUERY, qr, p->q->sn, n, w->dphi,
                          (float *)lin_row(p->dq, item, H, r0), p->dq->sn)))
            return st;
        kat__lin_gemm(1, 0, D, E, n, w->phq, D, w->g, E, 1.0f, r, E);
    }
    for (size_t r0 = 0; r0 < p->nk; r0 += C) {
        size_t n = p->nk - r0 < C ? p->nk - r0 : C;
        if ((st = kat__lin_features(p, w, KAT_SIDE_KEY, lin_row(p->k, item, H, r0), p->k->sn, n,
                               w->psk)))
            return st;
        kat__lin_load_vbar(p, w, lin_row(p->v, item, H, r0), p->v->sn, n);
        kat__lin_gemm(0, 1, n, D, E, w->vbar, E, r, E, 0.0f, w->dphi, D);
        kat__lin_gemm(0, 0, n, E, D, w->psk, D, r, E, 0.0f, w->dvbar, E);
        if ((st = write_key_grads(p, w, item, r0, n)))
            return st;
    }
    if (ds0)
        memcpy(ds0, r, D * E * sizeof(float));
    return KAT_OK;
}

kat_status kat__lin_bwd_item(const lin_problem *p, lin_ws *w, size_t item, float *ds0)
{
    return p->causal ? bwd_causal(p, w, item, ds0) : bwd_full(p, w, item, ds0);
}
