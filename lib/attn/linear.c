/* Linear attention: argument validation, the choice of in-chunk scores, and the threading of
 * the forward and backward passes over (batch, head) items or over chunks of one sequence. */
#include <cblas.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "core/kat_config.h"
#include "core/internal.h"
#include "core/runtime.h"
#include "attn/linear_internal.h"
#if KAT_HAVE_OPENMP
#include <omp.h>
#endif

/* ---- validation ---------------------------------------------------------------------- */

static int same_view(const kat_tensor *a, const kat_tensor *b)
{
    return a->data == b->data && a->B == b->B && a->H == b->H && a->N == b->N && a->D == b->D &&
           a->sb == b->sb && a->sh == b->sh && a->sn == b->sn;
}

static kat_status check_state(const char *fn, const char *what, const kat_tensor *s,
                              const lin_problem *p, int finite)
{
    char name[96];
    snprintf(name, sizeof name, "%s: %s", fn, what);
    kat_status st = kat_tensor_check(s, name, finite);
    if (st)
        return st;
    if (s->B != p->B || s->H != p->H || s->N != p->Df || s->D != p->E)
        return kat__fail(KAT_EINVAL, "%s: %s has shape [%zu, %zu, %zu, %zu], but map %s and v "
                        "need [B, H, D, d_v + 1] = [%zu, %zu, %zu, %zu]", fn, what, s->B, s->H,
                        s->N, s->D, kat_featmap_name(p->fm), p->B, p->H, p->Df, p->E);
    return KAT_OK;
}

static kat_status overlap_error(const char *fn, const char *a, const char *b)
{
    return kat__fail(KAT_EINVAL, "%s: %s overlaps %s (outputs must not alias inputs or each other)",
                    fn, a, b);
}

/* Whether the map declares its kernel of the dot (the DOT in-chunk path). */
static int has_dot_kernel(const kat_featmap *fm)
{
    return kat_featmap_get_ops(fm)->dot_kernel_f32 != NULL &&
           (kat_featmap_flags(fm) & KAT_FEATMAP_EXACT);
}

/* AUTO is the d-dimensional dots where the map declares its kernel of the dot, else the
 * feature product (row-pair dots of the features): a per-pair score callback is a scalar fp64
 * chain of d multiply-adds, slower for every map measured (docs/benchmarks.md, "Linear
 * attention"). */
static kat_linear_intra resolve_intra(const kat_featmap *fm, kat_linear_intra intra)
{
    if (intra != KAT_LINEAR_INTRA_AUTO)
        return intra;
    return has_dot_kernel(fm) ? KAT_LINEAR_INTRA_DOT : KAT_LINEAR_INTRA_FEATURES;
}

kat_status kat__lin_configure(const char *fn, const kat_featmap *fm, const kat_linear_opts *opts,
                         int need_positive, size_t B, size_t H, size_t nq, size_t nk, size_t dq,
                         size_t dk, size_t dv, lin_problem *p)
{
    static const kat_linear_opts defaults = {0};
    memset(p, 0, sizeof *p);
    if (!fm)
        return kat__fail(KAT_EINVAL, "%s: fm (the feature map) is NULL", fn);
    if (!opts)
        opts = &defaults;
    p->fm = fm;
    p->ops = kat_featmap_get_ops(fm);
    p->mstate = kat_featmap_state(fm);
    p->causal = opts->causal != 0;
    p->normalize = opts->unnormalized == 0;
    p->C = opts->chunk ? opts->chunk : KAT_LINEAR_DEFAULT_CHUNK;
    if (p->C > KAT_LINEAR_MAX_CHUNK)
        return kat__fail(KAT_EINVAL, "%s: opts->chunk = %zu exceeds the maximum %d", fn,
                        opts->chunk, KAT_LINEAR_MAX_CHUNK);
    if ((int)opts->intra < KAT_LINEAR_INTRA_AUTO || (int)opts->intra > KAT_LINEAR_INTRA_DOT)
        return kat__fail(KAT_EINVAL, "%s: opts->intra = %d is not a kat_linear_intra value", fn,
                        (int)opts->intra);
    p->d = kat_featmap_in_dim(fm);
    p->Df = kat_featmap_out_dim(fm);
    if (dq != p->d || dk != p->d)
        return kat__fail(KAT_EINVAL, "%s: map %s takes vectors of dimension d = %zu, but the "
                        "heads of %s have dimension %zu", fn, kat_featmap_name(fm), p->d,
                        dq != p->d ? "q" : "k", dq != p->d ? dq : dk);
    if (p->causal && nq != nk)
        return kat__fail(KAT_EINVAL, "%s: causal attention needs as many queries as keys "
                        "(q has %zu tokens, k has %zu)", fn, nq, nk);
    p->B = B;
    p->H = H;
    p->nq = nq;
    p->nk = nk;
    /* A sequence shorter than a chunk is one chunk: size the workspace for it (decoding one
     * token at a time needs O(D d_v), not O(C D)). */
    size_t nmax = p->nq > p->nk ? p->nq : p->nk;
    if (p->C > nmax)
        p->C = nmax ? nmax : 1;
    p->dv = dv;
    if (kat_add_overflow(p->dv, 1, &p->E) || p->Df > INT_MAX / 2 || p->E > INT_MAX / 2 ||
        p->d > INT_MAX / 2)
        return kat__fail(KAT_ERANGE, "%s: feature dimension %zu or value dimension %zu is beyond "
                        "what sgemm takes", fn, p->Df, p->dv);
    size_t de;
    if (kat_mul_overflow(p->Df, p->E, &de) || de > INT_MAX)
        return kat__fail(KAT_ERANGE, "%s: the state (%zu x %zu) is too large", fn, p->Df, p->E);
    if (need_positive && p->normalize && !(kat_featmap_flags(fm) & KAT_FEATMAP_POSITIVE))
        return kat__fail(KAT_EINVAL, "%s: map %s is not KAT_FEATMAP_POSITIVE: its kernel can be "
                        "negative or zero, so the normalised attention sum_j f v_j / sum_j f "
                        "is refused (no epsilon patch); set opts->unnormalized = 1 to run "
                        "without the denominator", fn, kat_featmap_name(fm));
    /* in-chunk scores */
    int has_score = p->ops->score != NULL && (kat_featmap_flags(fm) & KAT_FEATMAP_EXACT);
    p->intra = opts->intra;
    if (p->intra == KAT_LINEAR_INTRA_SCORE && !has_score)
        return kat__fail(KAT_EINVAL, "%s: opts->intra = SCORE needs an EXACT map with a score "
                        "callback; map %s %s", fn, kat_featmap_name(fm),
                        p->ops->score ? "is not EXACT" : "has no score");
    if (p->intra == KAT_LINEAR_INTRA_DOT && !has_dot_kernel(fm))
        return kat__fail(KAT_EINVAL, "%s: opts->intra = DOT needs an EXACT map with a "
                        "dot_kernel_f32 callback; map %s %s", fn, kat_featmap_name(fm),
                        p->ops->dot_kernel_f32 ? "is not EXACT" : "has no dot_kernel_f32");
    p->intra = resolve_intra(fm, p->intra);
    p->kern = kat__kernels_get();
    return KAT_OK;
}

kat_status kat__lin_setup(const char *fn, const kat_featmap *fm, const kat_linear_opts *opts,
                     int need_positive, const kat_tensor *q, const kat_tensor *k,
                     const kat_tensor *v, const kat_tensor *state_in, lin_problem *p)
{
    memset(p, 0, sizeof *p);
    if (!fm)
        return kat__fail(KAT_EINVAL, "%s: fm (the feature map) is NULL", fn);
    char name[96];
    kat_status st;
    const kat_tensor *in[3] = {q, k, v};
    const char *in_name[3] = {"q", "k", "v"};
    for (int i = 0; i < 3; i++) {
        snprintf(name, sizeof name, "%s: %s", fn, in_name[i]);
        if ((st = kat_tensor_check(in[i], name, 1)))
            return st;
    }
    if (k->B != q->B || v->B != q->B || k->H != q->H || v->H != q->H)
        return kat__fail(KAT_EINVAL, "%s: batch and heads differ: q [%zu, %zu], k [%zu, %zu], "
                        "v [%zu, %zu]", fn, q->B, q->H, k->B, k->H, v->B, v->H);
    if (v->N != k->N)
        return kat__fail(KAT_EINVAL, "%s: v has %zu tokens but k has %zu", fn, v->N, k->N);
    if ((st = kat__lin_configure(fn, fm, opts, need_positive, q->B, q->H, q->N, k->N, q->D, k->D,
                            v->D, p)))
        return st;
    if (state_in && (st = check_state(fn, "state_in", state_in, p, 1)))
        return st;
    p->q = q;
    p->k = k;
    p->v = v;
    p->state_in = state_in;
    return KAT_OK;
}

void kat__lin_load_state(const lin_problem *p, size_t item, float *s)
{
    const size_t D = p->Df, E = p->E;
    if (!p->state_in) {
        memset(s, 0, D * E * sizeof(float));
        return;
    }
    for (size_t r = 0; r < D; r++)
        memcpy(s + r * E, lin_row(p->state_in, item, p->H, r), E * sizeof(float));
}

static void store_state(const lin_problem *p, const kat_tensor *out, size_t item, const float *s)
{
    for (size_t r = 0; r < p->Df; r++)
        memcpy((float *)lin_row(out, item, p->H, r), s + r * p->E, p->E * sizeof(float));
}

/* ---- threading ------------------------------------------------------------------------ */

static int thread_id(void)
{
#if KAT_HAVE_OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

/* Chunk split of one causal sequence over P threads: thread t first rebuilds the state of the
 * chunks before its segment (state-only, relative cost rho) and then runs its own segment, so
 * segment lengths fall geometrically: L_t ~ (1 - rho)^t. bounds[0..P]. */
static void split_chunks(size_t nc, int P, double rho, size_t *bounds)
{
    double w[64], sum = 0.0, acc = 0.0;
    for (int t = 0; t < P; t++) {
        w[t] = pow(1.0 - rho, t);
        sum += w[t];
    }
    bounds[0] = 0;
    for (int t = 0; t < P; t++) {
        acc += w[t];
        size_t b = (size_t)llround(acc / sum * (double)nc);
        bounds[t + 1] = b < bounds[t] ? bounds[t] : b > nc ? nc : b;
    }
    bounds[P] = nc;
}

/* Relative cost of the state-only sweep against the full one, per token (flop model). */
static double state_cost_ratio(const lin_problem *p)
{
    double de = (double)p->Df * (double)p->E, C = (double)p->C;
    double map = 4.0 * (double)p->Df;   /* applying a map: a few flops per feature */
    double intra = p->intra == KAT_LINEAR_INTRA_FEATURES ? 2.0 * C * (double)p->Df
                   : p->intra == KAT_LINEAR_INTRA_DOT      ? 2.0 * C * ((double)p->d + 4.0)
                                                           : 40.0 * C * ((double)p->d + 10.0);
    double full = 4.0 * de + 2.0 * map + intra + 2.0 * C * (double)p->E;
    return (2.0 * de + map) / full;
}

/* ---- schedules --------------------------------------------------------------------------- */

kat_status kat__lin_schedule(const char *fn, const lin_problem *p, int backward, int threads,
                        lin_sched *s)
{
    memset(s, 0, sizeof *s);
    const size_t items = p->B * p->H;
    kat_linear_opts o = {p->causal, !p->normalize, p->C, p->intra};
    double flops = kat_linear_flops(p->fm, &o, p->B, p->H, p->nq, p->nk, p->dv);
    int nt = threads < 1 ? 1 : threads;
    s->blas_single = 1;
    if (!backward) {
        if (nt > 64)
            nt = 64;
        /* Below ~a millisecond of work (a decoding step), waking threads costs more than it
         * saves. */
        if (flops < 4e6)
            nt = 1;
    } else {
        if ((size_t)nt > items && items > 0) {
            nt = (int)items;   /* fewer items than threads: BLAS threads the products instead */
            s->blas_single = 0;
        }
        if (2.5 * flops < 4e6) {
            nt = 1;
            s->blas_single = 1;
        }
        if (nt > 64)
            nt = 64;
    }
    s->nt = nt;
    s->ws_bytes = kat__lin_ws_bytes(p, backward);
    size_t a, st_bytes;
    if (!s->ws_bytes || kat_mul_overflow((size_t)nt, s->ws_bytes, &a) ||
        kat_mul3_overflow(items, p->Df * p->E, sizeof(float), &st_bytes) ||
        st_bytes > SIZE_MAX - 64 || kat_add_overflow(a, (st_bytes + 63) & ~(size_t)63, &s->bytes))
        return kat__fail(KAT_ERANGE, "%s: workspace for chunk %zu and D = %zu overflows", fn,
                        p->C, p->Df);
    s->states_off = a;
    return KAT_OK;
}

/* ---- forward ------------------------------------------------------------------------- */

kat_status kat__lin_check_forward(const char *fn, const kat_featmap *fm, const kat_linear_opts *opts,
                             const kat_tensor *q, const kat_tensor *k, const kat_tensor *v,
                             const kat_tensor *o, const kat_tensor *state_in,
                             const kat_tensor *state_out, lin_problem *p)
{
    kat_status st = kat__lin_setup(fn, fm, opts, 1, q, k, v, state_in, p);
    if (st)
        return st;
    char name[96];
    snprintf(name, sizeof name, "%s: o", fn);
    if ((st = kat_tensor_check(o, name, 0)))
        return st;
    if (o->B != p->B || o->H != p->H || o->N != p->nq || o->D != p->dv)
        return kat__fail(KAT_EINVAL, "%s: o has shape [%zu, %zu, %zu, %zu], expected [%zu, %zu, "
                        "%zu, %zu]", fn, o->B, o->H, o->N, o->D, p->B, p->H, p->nq, p->dv);
    if (state_out && (st = check_state(fn, "state_out", state_out, p, 0)))
        return st;
    const kat_tensor *ins[3] = {q, k, v};
    const char *in_names[3] = {"q", "k", "v"};
    for (int i = 0; i < 3; i++) {
        if (kat_tensor_overlap(o, ins[i]))
            return overlap_error(fn, "o", in_names[i]);
        if (state_out && kat_tensor_overlap(state_out, ins[i]))
            return overlap_error(fn, "state_out", in_names[i]);
    }
    if (state_in && kat_tensor_overlap(o, state_in))
        return overlap_error(fn, "o", "state_in");
    if (state_out && kat_tensor_overlap(o, state_out))
        return overlap_error(fn, "o", "state_out");
    if (state_in && state_out && kat_tensor_overlap(state_in, state_out) &&
        !same_view(state_in, state_out))
        return overlap_error(fn, "state_out", "state_in (only the very same view is allowed)");
    p->o = o;
    return KAT_OK;
}

kat_status kat__lin_forward_run(const lin_problem *pp, const lin_sched *sc,
                           const kat_tensor *state_out, unsigned char *work)
{
    const lin_problem p = *pp;
    const kat_tensor *o = p.o, *state_in = p.state_in;
    const size_t items = p.B * p.H, DE = p.Df * p.E;
    if (items == 0)
        return KAT_OK;
    if (!p.causal && p.nk == 0 && !state_in) {   /* no key at all: outputs 0, as for flash */
        for (size_t it = 0; it < items; it++)
            for (size_t n = 0; n < p.nq; n++)
                memset((float *)lin_row(o, it, p.H, n), 0, p.dv * sizeof(float));
        if (state_out)
            for (size_t it = 0; it < items; it++)
                for (size_t r = 0; r < p.Df; r++)
                    memset((float *)lin_row(state_out, it, p.H, r), 0, p.E * sizeof(float));
        return KAT_OK;
    }
    const int nt = sc->nt;
    /* Items in parallel when there are enough; else the chunks of one sequence. */
    int per_item = (size_t)nt <= items;
    /* Inside kat's parallel regions each thread calls a single-threaded sgemm; OpenBLAS's own
     * threads would oversubscribe the cores. On one thread (kat's thread count 1, or a call
     * too small to share) the products stay single-threaded too: OpenBLAS threading the
     * chunk-sized sgemms costs more than it gains, and a caller who asked for one thread gets
     * one. The count is set by the process-wide hold (core/runtime.h). */
    kat_status st = kat__blas_hold(1, nt, "linear attention");
    if (st)
        return st;
    lin_ws ws[64];
    for (int t = 0; t < nt; t++)
        kat__lin_ws_carve(&p, 0, work + (size_t)t * sc->ws_bytes, &ws[t]);
    /* Final states are kept apart and committed at the end: state_out may be state_in. */
    float *finals = state_out ? (float *)(work + sc->states_off) : NULL;
    kat_par_err err;
    kat__par_err_init(&err);
    const size_t nc = (p.nq + p.C - 1) / p.C;
    if (per_item) {
#if KAT_HAVE_OPENMP
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt)
#endif
        for (size_t it = 0; it < items; it++) {
            if (kat_par_err_failed(&err))
                continue;
            lin_ws *w = &ws[thread_id()];
            float *s = finals ? finals + it * DE : w->s;
            kat__lin_load_state(&p, it, s);
            kat_status s2;
            if (p.causal)
                s2 = kat__lin_fwd_causal(&p, w, it, 0, nc, s, 1);
            else if (!(s2 = kat__lin_fwd_keys(&p, w, it, 0, p.nk, s)))
                s2 = kat__lin_fwd_queries(&p, w, it, 0, p.nq, s);
            kat__par_err_record(&err, it, s2);
        }
    } else if (p.causal) {
        /* Segment g of the chunks runs on its own state, rebuilt from the chunks before it;
         * segments are handed out round-robin, so a smaller team than asked still covers all. */
        size_t bounds[65];
        split_chunks(nc, nt, state_cost_ratio(&p), bounds);
        for (size_t it = 0; it < items && !kat_par_err_failed(&err); it++) {
#if KAT_HAVE_OPENMP
#pragma omp parallel for schedule(static, 1) num_threads(nt)
#endif
            for (int g = 0; g < nt; g++) {
                lin_ws *w = &ws[thread_id()];
                float *s = ws[g].s;
                kat__lin_load_state(&p, it, s);
                kat_status s2 = kat__lin_fwd_causal(&p, w, it, 0, bounds[g], s, 0);
                if (!s2)
                    s2 = kat__lin_fwd_causal(&p, w, it, bounds[g], bounds[g + 1], s, 1);
                if (!s2 && g == nt - 1 && finals)
                    memcpy(finals + it * DE, s, DE * sizeof(float));
                kat__par_err_record(&err, (size_t)g, s2);
            }
        }
    } else {
        /* Keys split into nt parts, one partial state each (part 0 on top of state_in), summed;
         * then the queries split the same way read the complete state. */
        for (size_t it = 0; it < items && !kat_par_err_failed(&err); it++) {
            float *s = finals ? finals + it * DE : ws[0].s;
#if KAT_HAVE_OPENMP
#pragma omp parallel num_threads(nt)
#endif
            {
#if KAT_HAVE_OPENMP
#pragma omp for schedule(static, 1)
#endif
                for (int g = 0; g < nt; g++) {
                    float *part = g == 0 ? s : ws[g].s;
                    if (g == 0)
                        kat__lin_load_state(&p, it, part);
                    else
                        memset(part, 0, DE * sizeof(float));
                    size_t lo = p.nk * (size_t)g / (size_t)nt;
                    size_t hi = p.nk * (size_t)(g + 1) / (size_t)nt;
                    kat__par_err_record(&err, (size_t)g,
                                       kat__lin_fwd_keys(&p, &ws[thread_id()], it, lo, hi, part));
                }
#if KAT_HAVE_OPENMP
#pragma omp for schedule(static)
#endif
                for (size_t x = 0; x < DE; x++)
                    for (int u = 1; u < nt; u++)
                        s[x] += ws[u].s[x];
#if KAT_HAVE_OPENMP
#pragma omp for schedule(static, 1)
#endif
                for (int g = 0; g < nt; g++) {
                    if (kat_par_err_failed(&err))
                        continue;
                    size_t lo = p.nq * (size_t)g / (size_t)nt;
                    size_t hi = p.nq * (size_t)(g + 1) / (size_t)nt;
                    kat__par_err_record(&err, (size_t)(nt + g),
                                       kat__lin_fwd_queries(&p, &ws[thread_id()], it, lo, hi, s));
                }
            }
        }
    }
    kat__blas_release();
    st = kat__par_err_raise(&err);
    if (st == KAT_OK && finals && !kat__all_finite_f32(finals, items * DE))
        st = kat__fail(KAT_EDOM, "linear attention: the final state is not finite: map %s "
                      "overflows in fp32 on these keys (or the sums do)",
                      kat_featmap_name(p.fm));
    if (st == KAT_OK && state_out)
        for (size_t it = 0; it < items; it++)
            store_state(&p, state_out, it, finals + it * DE);
    return st;
}

/* ---- backward ------------------------------------------------------------------------ */

kat_status kat__lin_check_backward(const char *fn, const kat_featmap *fm,
                              const kat_linear_opts *opts, const kat_tensor *q,
                              const kat_tensor *k, const kat_tensor *v, const kat_tensor *o,
                              const kat_tensor *d_o, const kat_tensor *dq, const kat_tensor *dk,
                              const kat_tensor *dv, const kat_tensor *state_in,
                              const kat_tensor *d_state_in, lin_problem *p)
{
    kat_status st = kat__lin_setup(fn, fm, opts, 1, q, k, v, state_in, p);
    if (st)
        return st;
    if (!kat_featmap_has_vjp(fm))
        return kat__fail(KAT_ENOTSUP, "%s: map %s has no gradient (vjp)", fn,
                        kat_featmap_name(fm));
    const kat_tensor *ins[2] = {o, d_o};
    const char *in_names[2] = {"o", "d_o"};
    for (int i = 0; i < 2; i++) {
        char name[96];
        snprintf(name, sizeof name, "%s: %s", fn, in_names[i]);
        if ((st = kat_tensor_check(ins[i], name, 1)))
            return st;
        if (ins[i]->B != p->B || ins[i]->H != p->H || ins[i]->N != p->nq || ins[i]->D != p->dv)
            return kat__fail(KAT_EINVAL, "%s: %s has shape [%zu, %zu, %zu, %zu], expected "
                            "[%zu, %zu, %zu, %zu]", fn, in_names[i], ins[i]->B, ins[i]->H,
                            ins[i]->N, ins[i]->D, p->B, p->H, p->nq, p->dv);
    }
    const kat_tensor *outs[3] = {dq, dk, dv};
    const kat_tensor *like[3] = {q, k, v};
    const char *out_names[3] = {"dq", "dk", "dv"};
    for (int i = 0; i < 3; i++) {
        char name[96];
        snprintf(name, sizeof name, "%s: %s", fn, out_names[i]);
        if ((st = kat_tensor_check(outs[i], name, 0)))
            return st;
        if (outs[i]->B != like[i]->B || outs[i]->H != like[i]->H ||
            outs[i]->N != like[i]->N || outs[i]->D != like[i]->D)
            return kat__fail(KAT_EINVAL, "%s: %s has shape [%zu, %zu, %zu, %zu], expected the "
                            "shape of %s [%zu, %zu, %zu, %zu]", fn, out_names[i], outs[i]->B,
                            outs[i]->H, outs[i]->N, outs[i]->D, out_names[i] + 1, like[i]->B,
                            like[i]->H, like[i]->N, like[i]->D);
    }
    if (d_state_in && (st = check_state(fn, "d_state_in", d_state_in, p, 0)))
        return st;
    const kat_tensor *all_in[6] = {q, k, v, o, d_o, state_in};
    const char *all_names[6] = {"q", "k", "v", "o", "d_o", "state_in"};
    const kat_tensor *all_out[4] = {dq, dk, dv, d_state_in};
    const char *out4[4] = {"dq", "dk", "dv", "d_state_in"};
    for (int i = 0; i < 4; i++) {
        if (!all_out[i])
            continue;
        for (int j = 0; j < 6; j++)
            if (all_in[j] && kat_tensor_overlap(all_out[i], all_in[j]))
                return overlap_error(fn, out4[i], all_names[j]);
        for (int j = i + 1; j < 4; j++)
            if (all_out[j] && kat_tensor_overlap(all_out[i], all_out[j]))
                return overlap_error(fn, out4[i], out4[j]);
    }
    p->o_in = o;
    p->d_o = d_o;
    p->dq = dq;
    p->dk = dk;
    p->dvt = dv;
    return KAT_OK;
}

kat_status kat__lin_backward_run(const lin_problem *pp, const lin_sched *sc,
                            const kat_tensor *d_state_in, unsigned char *work)
{
    const lin_problem p = *pp;
    const size_t items = p.B * p.H, DE = p.Df * p.E;
    if (items == 0)
        return KAT_OK;
    if (!p.causal && p.nk == 0 && !p.state_in) {   /* outputs were 0: no gradient anywhere */
        for (size_t it = 0; it < items; it++)
            for (size_t n = 0; n < p.nq; n++)
                memset((float *)lin_row(p.dq, it, p.H, n), 0, p.d * sizeof(float));
        if (d_state_in)
            for (size_t it = 0; it < items; it++)
                for (size_t r = 0; r < p.Df; r++)
                    memset((float *)lin_row(d_state_in, it, p.H, r), 0, p.E * sizeof(float));
        return KAT_OK;
    }
    const int nt = sc->nt;
    kat_status st = kat__blas_hold(sc->blas_single ? 1 : kat_num_threads(), nt,
                                  "linear attention backward");
    if (st)
        return st;
    lin_ws ws[64];
    for (int t = 0; t < nt; t++)
        kat__lin_ws_carve(&p, 1, work + (size_t)t * sc->ws_bytes, &ws[t]);
    float *dstates = d_state_in ? (float *)(work + sc->states_off) : NULL;
    kat_par_err err;
    kat__par_err_init(&err);
#if KAT_HAVE_OPENMP
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt)
#endif
    for (size_t it = 0; it < items; it++) {
        if (kat_par_err_failed(&err))
            continue;
        kat__par_err_record(&err, it, kat__lin_bwd_item(&p, &ws[thread_id()], it,
                                                  dstates ? dstates + it * DE : NULL));
    }
    kat__blas_release();
    st = kat__par_err_raise(&err);
    /* a feature that overflowed shows up here (the features themselves are not scanned) */
    if (st == KAT_OK && ((st = kat_tensor_check(p.dq, "dq", 1)) ||
                         (st = kat_tensor_check(p.dk, "dk", 1)) ||
                         (st = kat_tensor_check(p.dvt, "dv", 1)))) {
        char what[256];
        snprintf(what, sizeof what, "%s", kat_last_error());
        kat__fail(st, "linear attention backward: a gradient is not finite (%s): map %s "
                 "overflows in fp32 on these inputs", what, kat_featmap_name(p.fm));
    }
    if (st == KAT_OK && dstates && !kat__all_finite_f32(dstates, items * DE))
        st = kat__fail(KAT_EDOM, "linear attention backward: d_state_in is not finite");
    if (st == KAT_OK && d_state_in)
        for (size_t it = 0; it < items; it++)
            store_state(&p, d_state_in, it, dstates + it * DE);
    return st;
}

/* ---- one-shot forms ------------------------------------------------------------------ */

/* The same engine with a workspace of this call (the plan's schedule for the threads of
 * now): kat_attn_plan_create with a KAT_ATTN_LINEAR pattern gives the allocation-free form. */
static kat_status run_once(const lin_problem *p, int backward, const kat_tensor *state)
{
    lin_sched sc;
    kat_status st = kat__lin_schedule(backward ? "linear_backward" : "linear_forward", p, backward,
                                 kat_num_threads(), &sc);
    if (st)
        return st;
    unsigned char *work = kat__alloc_array(sc.bytes ? sc.bytes : 1, 1, "linear attention workspace");
    if (!work)
        return KAT_ENOMEM;
    st = backward ? kat__lin_backward_run(p, &sc, state, work) : kat__lin_forward_run(p, &sc, state, work);
    kat_free(work);
    return st;
}

kat_status kat_linear_forward(const kat_featmap *fm, const kat_linear_opts *opts,
                              const kat_tensor *q, const kat_tensor *k, const kat_tensor *v,
                              const kat_tensor *o, const kat_tensor *state_in,
                              const kat_tensor *state_out)
{
    lin_problem p;
    kat_status st = kat__lin_check_forward("linear_forward", fm, opts, q, k, v, o, state_in,
                                      state_out, &p);
    return st ? st : run_once(&p, 0, state_out);
}

kat_status kat_linear_backward(const kat_featmap *fm, const kat_linear_opts *opts,
                               const kat_tensor *q, const kat_tensor *k, const kat_tensor *v,
                               const kat_tensor *o, const kat_tensor *d_o,
                               const kat_tensor *dq, const kat_tensor *dk,
                               const kat_tensor *dv, const kat_tensor *state_in,
                               const kat_tensor *d_state_in)
{
    lin_problem p;
    kat_status st = kat__lin_check_backward("linear_backward", fm, opts, q, k, v, o, d_o, dq, dk,
                                       dv, state_in, d_state_in, &p);
    return st ? st : run_once(&p, 1, d_state_in);
}

/* ---- flop model ---------------------------------------------------------------------- */

double kat_linear_flops(const kat_featmap *fm, const kat_linear_opts *opts, size_t B, size_t H,
                        size_t n_q, size_t n_k, size_t dv)
{
    if (!fm)
        return 0.0;
    double D = (double)kat_featmap_out_dim(fm), E = (double)dv + 1.0;
    double per = 2.0 * D * E * ((double)n_q + (double)n_k);
    if (opts && opts->causal) {
        double C = (double)(opts->chunk ? opts->chunk : KAT_LINEAR_DEFAULT_CHUNK);
        if (C > (double)n_q)
            C = (double)n_q;
        /* lower triangle of each chunk: the scores (dots of the D features, or with DOT of
         * the d inputs, whose kernel is then a few flops per score, not counted, like the
         * maps' own work), then times [V | 1] */
        double dots = resolve_intra(fm, opts->intra) == KAT_LINEAR_INTRA_DOT
                          ? (double)kat_featmap_in_dim(fm) : D;
        per += (double)n_q * (C + 1.0) / 2.0 * 2.0 * (dots + E);
    }
    return (double)B * (double)H * per;
}
