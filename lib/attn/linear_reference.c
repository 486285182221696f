/* The quadratic references of linear attention: every score f(q_i, k_j) formed explicitly
 * (features, or the map's exact score) and summed in the plain order, in fp64 (the reference)
 * or, with precision 32, in fp32 (the naive fp32 implementation, the yardstick of "no worse
 * than 2x naive fp32"). Slow on purpose: they are what the engine and its gradients are tested
 * against. */
#include <math.h>
#include <string.h>
#include "core/internal.h"
#include "attn/linear_internal.h"

/* One rounding to the working precision: fp32 emulated in double is exact, since a double
 * holds the exact product of two floats and rounds their sum so that rounding once more to
 * float gives the correctly rounded float sum (53 >= 2 x 24 + 2 bits). */
static inline double rnd(int p32, double x) { return p32 ? (double)(float)x : x; }

/* Features of all n rows of one item (n x D, as doubles): the map's fp64 apply, or with p32
 * its fp32 apply (f32: n x D floats of scratch). */
static kat_status features(const lin_problem *p, int p32, kat_side side, const kat_tensor *t,
                           size_t item, size_t n, double *x, float *f32, double *f)
{
    if (n == 0)
        return KAT_OK;
    kat_status st;
    if (p32) {
        st = kat_featmap_apply_f32(p->fm, side, n, lin_row(t, item, p->H, 0), t->sn, f32, p->Df);
        for (size_t i = 0; i < n * p->Df && st == KAT_OK; i++)
            f[i] = f32[i];
    } else {
        for (size_t i = 0; i < n; i++) {
            const float *row = lin_row(t, item, p->H, i);
            for (size_t j = 0; j < p->d; j++)
                x[i * p->d + j] = row[j];
        }
        st = p->ops->apply(p->mstate, side, n, x, p->d, f, p->Df);
    }
    if (st)
        return st;
    size_t bad = kat__first_nonfinite(f, n * p->Df);
    if (bad < n * p->Df)
        return kat__fail(KAT_EDOM, "linear_reference: map %s gave a non-finite feature for %s "
                        "%zu", kat_featmap_name(p->fm), side == KAT_SIDE_QUERY ? "query" : "key",
                        bad / p->Df);
    return KAT_OK;
}

static kat_status features64(const lin_problem *p, kat_side side, const kat_tensor *t,
                             size_t item, size_t n, double *x, double *f)
{
    return features(p, 0, side, t, item, n, x, NULL, f);
}

static double dot_p(int p32, const double *a, const double *b, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s = rnd(p32, s + rnd(p32, a[i] * b[i]));
    return s;
}

static double dot(const double *a, const double *b, size_t n) { return dot_p(0, a, b, n); }

kat_status kat_linear_reference(const kat_featmap *fm, const kat_linear_opts *opts, int use_score,
                                int precision, const kat_tensor *q, const kat_tensor *k,
                                const kat_tensor *v, const kat_tensor *state_in, double *o_ref)
{
    static const char fn[] = "linear_reference";
    if (precision != 32 && precision != 64)
        return kat__fail(KAT_EINVAL, "%s: precision = %d: 64 (the reference) or 32 (naive fp32)",
                         fn, precision);
    const int p32 = precision == 32;
    lin_problem p;
    kat_status st = kat__lin_setup(fn, fm, opts, 1, q, k, v, state_in, &p);
    if (st)
        return st;
    if (!o_ref && p.B && p.H && p.nq && p.dv)
        return kat__fail(KAT_EINVAL, "%s: o_ref is NULL", fn);
    const size_t d = p.d, D = p.Df, E = p.E, dv = p.dv, nq = p.nq, nk = p.nk;
    size_t nmax = nq > nk ? nq : nk, total, part, nout;
    if (kat_mul_overflow(nq + nk, D, &total) || kat_mul_overflow(nmax, d, &part) ||
        kat_add_overflow(total, part, &total) ||
        kat_add_overflow(total, D * E + 2 * d + E, &total) ||
        kat_mul3_overflow(p.B * p.H, nq, dv, &nout) || kat_add_overflow(total, nout, &total) ||
        (p32 && kat_add_overflow(total, nmax * D, &total)))   /* fp32 features, as doubles */
        return kat__fail(KAT_ERANGE, "%s: %zu + %zu tokens of %zu features overflow", fn, nq, nk, D);
    double *buf = kat__alloc_array(total, sizeof(double), "linear_reference: features");
    if (!buf)
        return KAT_ENOMEM;
    /* the outputs are built apart and copied only on success: a map callback that fails part
     * way leaves o_ref untouched */
    double *phi = buf, *psi = phi + nq * D, *x = psi + nk * D, *s0 = x + nmax * d;
    double *qd = s0 + D * E, *kd = qd + d, *acc = kd + d, *res = acc + E;
    float *f32 = p32 ? (float *)(res + nout) : NULL;
    const int need_phi = !use_score || state_in;
    for (size_t it = 0; it < p.B * p.H && st == KAT_OK; it++) {
        if ((need_phi && (st = features(&p, p32, KAT_SIDE_QUERY, q, it, nq, x, f32, phi))) ||
            (!use_score && (st = features(&p, p32, KAT_SIDE_KEY, k, it, nk, x, f32, psi))))
            break;
        if (state_in)
            for (size_t r = 0; r < D; r++)
                for (size_t c = 0; c < E; c++)
                    s0[r * E + c] = lin_row(state_in, it, p.H, r)[c];
        for (size_t i = 0; i < nq && st == KAT_OK; i++) {
            memset(acc, 0, E * sizeof(double));
            if (state_in)
                for (size_t r = 0; r < D; r++)
                    for (size_t c = 0; c < E; c++)
                        acc[c] = rnd(p32, acc[c] + rnd(p32, phi[i * D + r] * s0[r * E + c]));
            size_t jend = p.causal ? i + 1 : nk;
            if (use_score)
                for (size_t t = 0; t < d; t++)
                    qd[t] = lin_row(q, it, p.H, i)[t];
            for (size_t j = 0; j < jend; j++) {
                double f;
                if (use_score) {
                    for (size_t t = 0; t < d; t++)
                        kd[t] = lin_row(k, it, p.H, j)[t];
                    if ((st = kat_featmap_score(fm, qd, kd, &f)))
                        break;
                    f = rnd(p32, f);
                } else {
                    f = dot_p(p32, phi + i * D, psi + j * D, D);
                }
                const float *vr = lin_row(v, it, p.H, j);
                for (size_t c = 0; c < dv; c++)
                    acc[c] = rnd(p32, acc[c] + rnd(p32, f * vr[c]));
                acc[dv] = rnd(p32, acc[dv] + f);
            }
            double *out = res + (it * nq + i) * dv;
            if (st)
                break;
            if (!p.normalize) {
                memcpy(out, acc, dv * sizeof(double));
            } else if (jend == 0 && !state_in) {
                memset(out, 0, dv * sizeof(double));
            } else if (!(acc[dv] > 0.0) || !isfinite(acc[dv])) {
                st = kat__fail(KAT_EDOM, "%s: the denominator of query %zu is %g", fn, i, acc[dv]);
            } else {
                for (size_t c = 0; c < dv; c++)
                    out[c] = rnd(p32, acc[c] / acc[dv]);
            }
        }
    }
    if (st == KAT_OK && nout)
        memcpy(o_ref, res, nout * sizeof(double));
    kat_free(buf);
    return st;
}

kat_status kat_linear_reference_backward(const kat_featmap *fm, const kat_linear_opts *opts,
                                         const kat_tensor *q, const kat_tensor *k,
                                         const kat_tensor *v, const kat_tensor *d_o,
                                         double *dq_ref, double *dk_ref, double *dv_ref)
{
    static const char fn[] = "linear_reference_backward";
    lin_problem p;
    kat_status st = kat__lin_setup(fn, fm, opts, 1, q, k, v, NULL, &p);
    if (st)
        return st;
    if (!p.ops->vjp)
        return kat__fail(KAT_ENOTSUP, "%s: map %s has no fp64 vjp", fn, kat_featmap_name(fm));
    if ((st = kat_tensor_check(d_o, "linear_reference_backward: d_o", 1)))
        return st;
    if (d_o->B != p.B || d_o->H != p.H || d_o->N != p.nq || d_o->D != p.dv)
        return kat__fail(KAT_EINVAL, "%s: d_o has shape [%zu, %zu, %zu, %zu], expected "
                        "[%zu, %zu, %zu, %zu]", fn, d_o->B, d_o->H, d_o->N, d_o->D, p.B, p.H,
                        p.nq, p.dv);
    if (p.B && p.H && ((!dq_ref && p.nq) || ((!dk_ref || !dv_ref) && p.nk)))
        return kat__fail(KAT_EINVAL, "%s: %s is NULL", fn,
                        !dq_ref && p.nq ? "dq_ref" : !dk_ref ? "dk_ref" : "dv_ref");
    const size_t d = p.d, D = p.Df, E = p.E, dv = p.dv, nq = p.nq, nk = p.nk;
    size_t nmax = nq > nk ? nq : nk, total, part, nq_out, nk_out, nv_out;
    const size_t items = p.B * p.H;
    if (kat_mul3_overflow(2, nq + nk, D, &total) || kat_mul_overflow(nmax, d, &part) ||
        kat_add_overflow(total, part, &total) || kat_add_overflow(total, nk + 2 * E, &total) ||
        kat_mul3_overflow(items, nq, d, &nq_out) || kat_mul3_overflow(items, nk, d, &nk_out) ||
        kat_mul3_overflow(items, nk, dv, &nv_out) || kat_add_overflow(total, nq_out, &total) ||
        kat_add_overflow(total, nk_out, &total) || kat_add_overflow(total, nv_out, &total))
        return kat__fail(KAT_ERANGE, "%s: %zu + %zu tokens of %zu features overflow", fn, nq, nk, D);
    double *buf = kat__alloc_array(total, sizeof(double), "linear_reference_backward: buffers");
    if (!buf)
        return KAT_ENOMEM;
    double *phi = buf, *psi = phi + nq * D, *dphi = psi + nk * D, *dpsi = dphi + nq * D;
    double *x = dpsi + nk * D, *f = x + nmax * d, *acc = f + nk, *g = acc + E;
    /* gradients built apart and copied only on success (the map's vjp may fail part way) */
    double *rq = g + E, *rk = rq + nq_out, *rv = rk + nk_out;
    for (size_t it = 0; it < p.B * p.H && st == KAT_OK; it++) {
        if ((st = features64(&p, KAT_SIDE_QUERY, q, it, nq, x, phi)) ||
            (st = features64(&p, KAT_SIDE_KEY, k, it, nk, x, psi)))
            break;
        memset(dphi, 0, nq * D * sizeof(double));
        memset(dpsi, 0, nk * D * sizeof(double));
        double *dvo = rv + it * nk * dv;
        if (nk)
            memset(dvo, 0, nk * dv * sizeof(double));
        for (size_t i = 0; i < nq; i++) {
            size_t jend = p.causal ? i + 1 : nk;
            memset(acc, 0, E * sizeof(double));
            for (size_t j = 0; j < jend; j++) {
                f[j] = dot(phi + i * D, psi + j * D, D);
                const float *vr = lin_row(v, it, p.H, j);
                for (size_t c = 0; c < dv; c++)
                    acc[c] += f[j] * vr[c];
                acc[dv] += f[j];
            }
            const float *dor = lin_row(d_o, it, p.H, i);
            if (jend == 0 && p.normalize)
                continue;   /* output 0 whatever the inputs */
            if (p.normalize && !(acc[dv] > 0.0)) {
                st = kat__fail(KAT_EDOM, "%s: the denominator of query %zu is %g", fn, i, acc[dv]);
                break;
            }
            double inv = p.normalize ? 1.0 / acc[dv] : 1.0, dot_do = 0.0;
            for (size_t c = 0; c < dv; c++) {
                g[c] = dor[c] * inv;
                dot_do += dor[c] * acc[c] * inv;   /* do . o */
            }
            g[dv] = p.normalize ? -dot_do * inv : 0.0;
            for (size_t j = 0; j < jend; j++) {
                const float *vr = lin_row(v, it, p.H, j);
                double df = g[dv];
                for (size_t c = 0; c < dv; c++) {
                    df += g[c] * vr[c];
                    dvo[j * dv + c] += f[j] * g[c];
                }
                for (size_t r = 0; r < D; r++) {
                    dphi[i * D + r] += df * psi[j * D + r];
                    dpsi[j * D + r] += df * phi[i * D + r];
                }
            }
        }
        if (st)
            break;
        /* through the map: dq = J_phi^T dphi, dk = J_psi^T dpsi */
        double *dqo = rq + it * nq * d, *dko = rk + it * nk * d;
        if (nq) {
            memset(dqo, 0, nq * d * sizeof(double));
            for (size_t i = 0; i < nq; i++)
                for (size_t j = 0; j < d; j++)
                    x[i * d + j] = lin_row(q, it, p.H, i)[j];
            if ((st = p.ops->vjp(p.mstate, KAT_SIDE_QUERY, nq, x, d, dphi, D, dqo, d)))
                break;
        }
        if (nk) {
            memset(dko, 0, nk * d * sizeof(double));
            for (size_t i = 0; i < nk; i++)
                for (size_t j = 0; j < d; j++)
                    x[i * d + j] = lin_row(k, it, p.H, i)[j];
            if ((st = p.ops->vjp(p.mstate, KAT_SIDE_KEY, nk, x, d, dpsi, D, dko, d)))
                break;
        }
    }
    if (st == KAT_OK) {
        if (nq_out)
            memcpy(dq_ref, rq, nq_out * sizeof(double));
        if (nk_out)
            memcpy(dk_ref, rk, nk_out * sizeof(double));
        if (nv_out)
            memcpy(dv_ref, rv, nv_out * sizeof(double));
    }
    kat_free(buf);
    return st;
}
