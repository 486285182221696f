/* The linear mode of `kat attn` and `kat bench attn`: subquadratic attention through a feature
 * map, o_i = sum_j phi(q_i).psi(k_j) v_j / sum_j phi(q_i).psi(k_j) (include/kat/linear.h).
 *
 * --params (all optional):
 *   map=SPEC     a feature map in the library's grammar (include/kat/featmaps.h): taylor2
 *                (default), taylor:P, poly:EXPR, favor:M[:ortho][:stable], rff:M[:pair], elu1...
 *   chunk=C      tokens per causal chunk (default KAT_LINEAR_DEFAULT_CHUNK, 32)
 *   norm=0|1     per-token normalisation of q and k in front of the map (default: 1 for the
 *                Taylor maps, which are FAST's Fastmax; 0 otherwise)
 *   unnormalized=1  o = sum_j f v_j without the denominator (needed by maps whose kernel can
 *                be negative: rff, odd polynomials)
 *   intra=dot|features|score  how the in-chunk scores are computed (default: dot for maps
 *                whose kernel is a function of q.k, such as the Taylor maps, else features;
 *                score calls the map's exact kernel per pair, for EXACT maps with a score
 *                callback)
 * and for `kat bench attn` only:
 *   flash=0      skip timing kat's dense flash on the same tensors (by default its forward,
 *                or with --backward its backward, is timed too and reported in the note)
 *   crossover=1  (or --crossover) also estimate the N where linear overtakes flash at the
 *                same B, H, D and mask (see crossover() below); JSON key crossover_n
 *   pass=state   time only the chunked state update S += psi(K)^T [V | 1] (no queries);
 *                its GFLOP/s count 2 D (d_v + 1) per key
 * With norm=1 the Taylor maps of exp(q.k / sqrt d) see tokens normalised to |x|^2 = sqrt d, so
 * taylor2 is f(x) = 1 + x + x^2/2 of x = cos(q, k) in [-1, 1]; taylor1 is 1 + x with |x| <= 1/2,
 * so that f >= 1/2 > 0 (kat_featmap_spec's norm). Random maps are seeded by --seed. */
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include "attn_cli.h"
#include "kat/featmaps.h"
#include "kat/linear.h"

/* A bad --params value or option: said on stderr (kat__fail is the library's own). */
static kat_status mode_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static kat_status mode_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    attn_say("linear mode: %s", msg);
    return attn_refused();
}

/* The options of the linear mode from --params. Returns 0, or -1 after printing why. */
typedef struct {
    char map[160];
    kat_linear_opts lopts;
    int norm;   /* -1: the map's default */
} linear_params;

static int linear_params_parse(const attn_opts *o, linear_params *p)
{
    memset(p, 0, sizeof *p);
    strcpy(p->map, "taylor2");
    p->norm = -1;
    double x;
    int r;
    if (attn_param_str(o, "map", p->map, sizeof p->map) < 0)
        return -1;
    if ((r = attn_param_double(o, "chunk", &x)) < 0)
        return -1;
    if (r && (x < 1 || x > KAT_LINEAR_MAX_CHUNK || x != floor(x))) {
        attn_say("--params chunk=%g must be an integer in [1, %d]", x, KAT_LINEAR_MAX_CHUNK);
        return -1;
    }
    p->lopts.chunk = r ? (size_t)x : 0;
    if ((r = attn_param_double(o, "norm", &x)) < 0)
        return -1;
    if (r)
        p->norm = x != 0.0;
    if ((r = attn_param_double(o, "unnormalized", &x)) < 0)
        return -1;
    p->lopts.unnormalized = r && x != 0.0;
    char intra[16];
    if ((r = attn_param_str(o, "intra", intra, sizeof intra)) < 0)
        return -1;
    if (r && strcmp(intra, "score") == 0)
        p->lopts.intra = KAT_LINEAR_INTRA_SCORE;
    else if (r && strcmp(intra, "dot") == 0)
        p->lopts.intra = KAT_LINEAR_INTRA_DOT;
    else if (r && strcmp(intra, "features") == 0)
        p->lopts.intra = KAT_LINEAR_INTRA_FEATURES;
    else if (r) {
        attn_say("--params intra=%s: dot, features or score", intra);
        return -1;
    }
    p->lopts.causal = o->causal;
    return 0;
}

/* The feature map of a --params map=SPEC (the library's grammar) for head dimension d, with
 * the per-token normalisation of norm=, by default on for the Taylor maps (FAST's Fastmax). */
static kat_status linear_map_create(const char *spec, int norm, size_t d, uint64_t seed,
                                    kat_featmap **out)
{
    kat_featmap_spec ms;
    kat_status st = kat_featmap_spec_parse(spec, &ms);
    if (st)
        return mode_error("%s", kat_last_error());
    ms.norm = norm < 0 ? ms.kind == KAT_FEATMAP_KIND_TAYLOR : norm;
    return kat_featmap_spec_create(&ms, d, seed, out);
}

kat_status attn_linear_run(const attn_opts *o, attn_tensors *t, int grad)
{
    linear_params p;
    if (attn_params_check(o, "linear", "kat attn", "map,chunk,norm,unnormalized,intra") ||
        linear_params_parse(o, &p))
        return attn_refused();
    if (o->scale != 0.0)
        return mode_error("--scale %g has no meaning here (the map defines the kernel)",
                          o->scale);
    /* Linear attention has no softmax, so no logsumexp to write: refused rather than filled
     * with a placeholder. (log sum_j phi(q_i).psi(k_j) is no substitute: a stabilised map
     * such as favor:M scales it by an unknown factor per query.) */
    if (o->lse)
        return mode_error("--lse: linear attention has no softmax and so no logsumexp; leave "
                          "out --lse");
    if (o->precise)
        return mode_error("--precise is for the dense mode (the linear backward has no "
                          "softmax statistics)");
    kat_featmap *fm;
    kat_status st = linear_map_create(p.map, p.norm, t->q.D, o->seed, &fm);
    if (st)
        return st;
    if (!grad) {
        st = kat_linear_forward(fm, &p.lopts, &t->q, &t->k, &t->v, &t->o, NULL, NULL);
    } else {
        st = kat_linear_backward(fm, &p.lopts, &t->q, &t->k, &t->v, &t->o, &t->dout, &t->dq,
                                 &t->dk, &t->dv, NULL, NULL);
    }
    kat_featmap_destroy(fm);
    return st;
}

/* ---- kat bench attn --mode linear ------------------------------------------------------------ */

typedef struct {
    kat_featmap *fm;
    kat_linear_opts lopts;
    const kat_tensor *q, *k, *v, *dout;
    kat_tensor *o, *dq, *dk, *dv, state;
    int pass;   /* 0 forward, 1 backward, 2 state only (no queries: the chunked update) */
    kat_attn_plan *plan;   /* the timed call's plan and workspace (plan / workspace / execute) */
    void *work;
} linear_call;

static kat_status linear_once(void *ctx)
{
    linear_call *c = ctx;
    if (c->plan && c->pass == 0)
        return kat_attn_forward(c->plan, NULL, c->q, c->k, c->v, c->o, NULL, c->work);
    if (c->plan && c->pass == 1)
        return kat_attn_backward(c->plan, NULL, c->q, c->k, c->v, c->o, NULL, c->dout, c->dq,
                                 c->dk, c->dv, c->work);
    if (c->pass == 1)
        return kat_linear_backward(c->fm, &c->lopts, c->q, c->k, c->v, c->o, c->dout, c->dq,
                                   c->dk, c->dv, NULL, NULL);
    if (c->pass == 2) {
        kat_tensor q0 = *c->q, o0 = *c->o;
        q0.N = o0.N = 0;
        return kat_linear_forward(c->fm, &c->lopts, &q0, c->k, c->v, &o0, NULL, &c->state);
    }
    return kat_linear_forward(c->fm, &c->lopts, c->q, c->k, c->v, c->o, NULL, NULL);
}

static void linear_cleanup(void *ctx)
{
    linear_call *c = ctx;
    kat_attn_plan_destroy(c->plan);
    kat_free(c->work);
    kat_featmap_destroy(c->fm);
    kat_free(c->state.data);
    kat_free(c);
}

/* Dense causal flash on the same shape, for the comparison and the crossover. */
typedef struct {
    const kat_tensor *q, *k, *v, *o, *lse;
    int causal;
} flash_call;

static kat_status flash_once(void *ctx)
{
    flash_call *f = ctx;
    return kat_attn_dense_forward(f->q, f->k, f->v, f->o, f->lse, f->causal, 0.0);
}

/* Flash's backward on t's q, k, v, dout (its own forward's o and lse, its own gradients). */
typedef struct {
    attn_tensors *t;
    kat_tensor o, lse, dq, dk, dv;
    int causal;
} flash_bwd_call;

static kat_status flash_bwd_once(void *ctx)
{
    flash_bwd_call *f = ctx;
    return kat_attn_dense_backward(&f->t->q, &f->t->k, &f->t->v, &f->o, &f->lse, &f->t->dout,
                                   &f->dq, &f->dk, &f->dv, f->causal, 0.0);
}

static kat_status time_flash_backward(const attn_opts *o, attn_tensors *t, double *ms)
{
    flash_bwd_call f = {t, t->o, t->lse, t->dq, t->dk, t->dv, o->causal};
    kat_tensor *bufs[5] = {&f.o, &f.lse, &f.dq, &f.dk, &f.dv};
    kat_status st = KAT_OK;
    for (int i = 0; i < 5; i++)
        bufs[i]->data = NULL;
    for (int i = 0; i < 5 && !st; i++) {
        kat_tensor *b = bufs[i];
        size_t n = b->B * b->H * b->N * b->D;
        if (!(b->data = kat_malloc((n ? n : 1) * sizeof(float))))
            st = KAT_ENOMEM;
        else
            *b = kat_tensor_view(b->data, b->B, b->H, b->N, b->D);
    }
    if (!st)
        st = kat_attn_dense_forward(&t->q, &t->k, &t->v, &f.o, &f.lse, o->causal, 0.0);
    attn_bench_call call = {.fn = flash_bwd_once, .ctx = &f};
    if (!st)
        st = attn_time_median(&call, o->warmup, o->reps, ms, NULL);
    for (int i = 0; i < 5; i++)
        kat_free(bufs[i]->data);
    return st;
}

/* Median times of linear (fm, lopts) and flash forward on random [B, H, n, D] tensors and the
 * median of their ratio, the two timed alternately. */
static kat_status time_pair(const attn_opts *o, kat_featmap *fm, const kat_linear_opts *lopts,
                            size_t n, double *lin_ms, double *flash_ms, double *ratio)
{
    attn_opts on = *o;
    on.N = n;
    on.M = 0;
    on.H_kv = 0;
    attn_tensors t;
    kat_status st = attn_tensors_random(&on, 0, &t);
    if (st)
        return st;
    linear_call lc = {fm,   *lopts, &t.q, &t.k, &t.v, NULL, &t.o, NULL, NULL, NULL, {0}, 0,
                      NULL, NULL};
    attn_bench_call call = {.fn = linear_once, .ctx = &lc};
    flash_call fc = {&t.q, &t.k, &t.v, &t.o, &t.lse, lopts->causal};
    attn_bench_call fcall = {.fn = flash_once, .ctx = &fc};
    st = attn_time_ratio(&call, &fcall, o->warmup, o->reps, lin_ms, flash_ms, ratio);
    attn_tensors_free(&t);
    return st;
}

/* Where linear overtakes flash: the ratio r(N) = linear / flash time (the median of
 * alternating pairs of calls) at N = 512, 1024, ...
 * (doubling until linear has been faster twice in a row, or 2^17), then the crossing of
 * r = 1 interpolated linearly in (log N, log r) between the first bracketing pair. Using
 * every size's median instead of a bisection keeps one noisy timing from moving the answer
 * far. 0 when linear is never faster. */
static kat_status crossover(const attn_opts *o, kat_featmap *fm, const kat_linear_opts *lopts,
                            double *out)
{
    double prev_n = 0.0, prev_r = 0.0;
    int wins = 0;
    *out = 0.0;
    for (size_t n = 512; n <= ATTN_CROSSOVER_MAX_N && wins < 2; n *= 2) {
        double l, f, r;
        kat_status st = time_pair(o, fm, lopts, n, &l, &f, &r);
        if (st)
            return st;
        if (r <= 1.0) {
            if (wins++ == 0)
                *out = prev_n == 0.0 ? (double)n
                                     : exp(log(prev_n) + (log((double)n) - log(prev_n)) *
                                                             (0.0 - log(prev_r)) /
                                                             (log(r) - log(prev_r)));
        } else {
            wins = 0;   /* a later loss (noise): search on */
            *out = 0.0;
        }
        prev_n = (double)n;
        prev_r = r;
    }
    return KAT_OK;
}

kat_status attn_linear_bench(const attn_opts *o, attn_tensors *t, attn_bench_call *call)
{
    linear_params p;
    if (attn_params_check(o, "linear", "kat bench attn",
                          "map,chunk,norm,unnormalized,intra,flash,crossover,pass") ||
        linear_params_parse(o, &p))
        return attn_refused();
    if (o->precise)
        return mode_error("--precise is for the dense mode");
    char pass_name[16] = "";
    double x = 0.0;
    int r;
    if (attn_param_str(o, "pass", pass_name, sizeof pass_name) < 0 ||
        (r = attn_param_double(o, "crossover", &x)) < 0)
        return attn_refused();
    int want_crossover = (r && x != 0.0) || o->crossover, want_flash = 1;
    if ((r = attn_param_double(o, "flash", &x)) < 0)
        return attn_refused();
    if (r)
        want_flash = x != 0.0;
    if (want_crossover && (!want_flash || o->backward || pass_name[0]))
        return mode_error("the crossover is found for the forward against flash: not with "
                          "flash=0, --backward or pass=state");
    if (pass_name[0] && strcmp(pass_name, "state") != 0)
        return mode_error("--params pass=%s (only pass=state)", pass_name);
    if (t->desc.H_kv != t->desc.H || o->scale != 0.0)
        return mode_error("no grouped-query heads and no --scale");
    linear_call *c = kat_calloc(1, sizeof *c);
    if (!c)
        return KAT_ENOMEM;
    kat_status st = linear_map_create(p.map, p.norm, t->desc.D, o->seed, &c->fm);
    if (st) {
        kat_free(c);
        return st;
    }
    c->lopts = p.lopts;
    c->q = &t->q, c->k = &t->k, c->v = &t->v, c->o = &t->o, c->dout = &t->dout;
    c->dq = &t->dq, c->dk = &t->dk, c->dv = &t->dv;
    c->pass = pass_name[0] ? 2 : o->backward ? 1 : 0;
    const size_t D = kat_featmap_out_dim(c->fm), B = t->desc.B, H = t->desc.H;
    if (c->pass == 2) {
        c->lopts.causal = 0;
        if (!(c->state.data = kat_malloc(B * H * D * (t->v.D + 1) * sizeof(float)))) {
            linear_cleanup(c);
            return KAT_ENOMEM;
        }
        c->state = (kat_tensor){c->state.data, B, H, D, t->v.D + 1, H * D * (t->v.D + 1),
                                D * (t->v.D + 1), t->v.D + 1};
    }
    /* The timed forward and backward run a plan with a workspace allocated here, outside the
     * timed calls, as the dense mode does. */
    if (c->pass != 2) {
        kat_attn_desc d = t->desc;
        d.causal = c->lopts.causal;
        d.Dv = t->v.D;
        kat_attn_pattern pat = {.kind = KAT_ATTN_LINEAR, .map = c->fm, .linear = c->lopts};
        if ((st = kat_attn_plan_create(&d, &pat, &c->plan))) {
            linear_cleanup(c);
            return st;
        }
        size_t fb = kat_attn_workspace_size(c->plan, KAT_ATTN_FORWARD);
        size_t bb = kat_attn_workspace_size(c->plan, KAT_ATTN_BACKWARD);
        if (!(c->work = kat_malloc(fb > bb ? fb : bb))) {
            linear_cleanup(c);
            return KAT_ENOMEM;
        }
        memset(c->work, 0, fb > bb ? fb : bb);
    }
    /* the backward's o must be this engine's forward output, not flash's */
    if (c->pass == 1 &&
        (st = kat_linear_forward(c->fm, &c->lopts, c->q, c->k, c->v, c->o, NULL, NULL))) {
        linear_cleanup(c);
        return st;
    }
    double fwd = kat_linear_flops(c->fm, &c->lopts, B, H, t->desc.N, t->desc.M, t->v.D);
    call->fn = linear_once;
    call->cleanup = linear_cleanup;
    call->ctx = c;
    call->flops = c->pass == 1 ? 2.5 * fwd
                : c->pass == 2 ? 2.0 * (double)D * (double)(t->v.D + 1) * (double)(B * H) *
                                     (double)t->desc.M
                               : fwd;
    call->baseline_name = c->lopts.causal ? "dense causal flash" : "dense flash";
    size_t chunk = p.lopts.chunk ? p.lopts.chunk : KAT_LINEAR_DEFAULT_CHUNK;
    int len = snprintf(call->note, sizeof call->note, "%s%s D=%zu chunk %zu%s",
                       c->pass == 2 ? "state update, " : "", kat_featmap_name(c->fm), D, chunk,
                       c->lopts.unnormalized ? " unnormalized" : "");
    if (c->pass == 1 && want_flash && len < (int)sizeof call->note) {
        double flash_ms;
        if ((st = time_flash_backward(o, t, &flash_ms))) {
            linear_cleanup(c);
            return st;
        }
        snprintf(call->note + len, sizeof call->note - (size_t)len, "; flash backward %.3f ms",
                 flash_ms);
        call->baseline_ms = flash_ms;
    }
    if (c->pass == 0 && want_flash && len < (int)sizeof call->note) {
        /* kat's dense flash on the same tensors, and where linear overtakes it */
        double lin_ms, flash_ms, ratio, cross = 0.0;
        if ((st = time_pair(o, c->fm, &c->lopts, t->desc.N, &lin_ms, &flash_ms, &ratio)) ||
            (want_crossover && (st = crossover(o, c->fm, &c->lopts, &cross)))) {
            linear_cleanup(c);
            return st;
        }
        len += snprintf(call->note + len, sizeof call->note - (size_t)len,
                        "; flash %.3f ms = %.2fx linear", flash_ms, 1.0 / ratio);
        call->baseline_ms = flash_ms;
        call->crossover_n = cross;
        if (want_crossover && len < (int)sizeof call->note) {
            if (cross > 0.0)
                snprintf(call->note + len, sizeof call->note - (size_t)len,
                         "; crossover N=%.0f", cross);
            else
                snprintf(call->note + len, sizeof call->note - (size_t)len,
                         "; no crossover up to N=%zu", ATTN_CROSSOVER_MAX_N);
        }
    }
    return KAT_OK;
}
