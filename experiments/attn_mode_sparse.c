/* The sparse modes of `kat attn` and `kat bench attn` (include/kat/sparse.h), causal on the
 * original positions with --causal:
 *
 *   qk      QK-drop. run: --params q_keep=F.npy,k_keep=F.npy (either may be left out: keep
 *           all; arrays of q's (k's) shape without D, [B, H, N], or [H, N] when B = 1, or [N]
 *           when B = H = 1: nonzero keeps). bench: the same files, or drop=P drops a
 *           fraction P of the queries and of the keys of every head at random (--seed;
 *           default 0.5).
 *   hash    Hash buckets. run: q_buckets=F.npy,k_buckets=F.npy (integer values in [0, nb),
 *           nb=NB or the largest id + 1), or buckets=NB[,seed=S] for angular LSH (seed
 *           default --seed). bench: the same files, or buckets=NB (default 16), LSH of the
 *           random q and k.
 *   window  Sliding window, a block mask: window=W keys (default 512 in bench); optional
 *           block_q, block_k (default: both the engine's query tile, kat_sparse_tile_q()).
 *   all     strict=1: with --causal, no token sees itself (key j < query i).
 *
 * `kat bench attn` times the whole sparse call - the plan, the pattern's index (sort, tile
 * lists) and the forward, gathers and scatters included - and, in the same run, kat's dense
 * flash with the same shapes and mask flag, on a workspace allocated once like ours; the note
 * reports both and the speed-up dense / sparse. With --backward the timed call is the plan,
 * the index and the backward (o and lse from this mode's forward), against the dense
 * backward; add --params step=1 to time a training step instead: plan + index (built once,
 * kat_attn_index_create) + forward + backward, against the dense forward + backward. The
 * reported FLOPs are those of the tile pairs visited. */
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include "attn_cli.h"
#include "kat/sparse.h"

/* A refusal of the mode: one line "kat CMD: MODE mode: ...", and no library error sentence. A
 * refused setting is KAT_EINVAL (a usage error: attn_mode_fail); a pattern file whose content
 * does not fit is KAT_EFORMAT (the data's failure). */
static kat_status mode_refuse(kat_status st, const char *mode, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static kat_status mode_refuse(kat_status st, const char *mode, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    attn_say("%s mode: %s", mode, msg);
    kat_clear_error();
    return st;
}
#define mode_error(mode, ...) mode_refuse(KAT_EINVAL, mode, __VA_ARGS__)
#define file_error(mode, ...) mode_refuse(KAT_EFORMAT, mode, __VA_ARGS__)

/* The desc of a sparse mode: the tensors' shapes, --causal, strict=1. */
static kat_status sparse_desc(const char *mode, const attn_opts *o, const attn_tensors *t,
                              kat_attn_desc *d)
{
    double strict = 0.0;
    if (attn_param_double(o, "strict", &strict) < 0)
        return attn_refused();
    if (strict != 0.0 && !o->causal)
        return mode_error(mode, "--params strict=1 needs --causal");
    *d = t->desc;
    d->causal = o->causal ? (strict != 0.0 ? KAT_SPARSE_CAUSAL_STRICT : KAT_SPARSE_CAUSAL) : 0;
    return KAT_OK;
}

/* "[a, b, c]" of the n sizes in dims. */
static void shape_text(char *buf, size_t cap, const size_t *dims, int n)
{
    size_t len = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < n && len < cap; i++)
        len += (size_t)snprintf(buf + len, cap - len, "%s%zu", i ? ", " : "", dims[i]);
    if (len < cap)
        snprintf(buf + len, cap - len, "]");
}

/* A per-row array from a .npy file: the shape of q (who = "q": [B, H, N]) or of k (who = "k":
 * [B, H_kv, M]) without D. Leading axes of size 1 may be left out, as for q, k, v themselves:
 * [H, N] when B = 1, [N] when B = H = 1. Exactly these shapes are accepted (not any shape
 * with the right count: [H, B, N] would silently mix the heads up). */
static kat_status read_rows(const char *mode, const char *key, const char *who,
                            const char *path, size_t B, size_t H, size_t N, kat_array *a)
{
    kat_status st = kat_npy_read(path, a);
    if (st) {
        attn_say("%s mode: %s: %s: %s", mode, key, kat_strerror(st), kat_last_error());
        kat_clear_error();
        return st;
    }
    const size_t want[3] = {B, H, N};
    int ok = a->ndim >= 1 && a->ndim <= 3;
    for (int i = 0; ok && i < 3; i++) {
        int axis = i - (3 - a->ndim);   /* the file's axis holding want[i]; < 0: left out */
        ok = axis >= 0 ? a->shape[axis] == want[i] : want[i] == 1;
    }
    if (ok)
        return KAT_OK;
    char got[128], shapes[3][64], accepted[200];
    int ns = 0;
    for (int drop = 0; drop < 3 && (drop == 0 || want[drop - 1] == 1); drop++, ns++)
        shape_text(shapes[ns], sizeof shapes[ns], want + drop, 3 - drop);
    size_t len = 0;
    for (int i = 0; i < ns && len < sizeof accepted; i++)
        len += (size_t)snprintf(accepted + len, sizeof accepted - len, "%s%s",
                                i == 0 ? "" : i + 1 < ns ? ", " : " or ", shapes[i]);
    shape_text(got, sizeof got, a->shape, a->ndim);
    kat_array_free(a);
    return file_error(mode, "%s: '%s' has shape %s, expected %s (%s's shape without D; "
                            "leading axes of size 1 may be left out)",
                      key, path, got, accepted, who);
}


/* A keep mask from a file (nonzero keeps); *out stays NULL when the key is absent. */
static kat_status keep_from_file(const attn_opts *o, const char *key, size_t B, size_t H,
                                 size_t N, uint8_t **out)
{
    char path[1024];
    int r = attn_param_str(o, key, path, sizeof path);
    if (r < 0)
        return attn_refused();
    if (!r)
        return KAT_OK;
    kat_array a;
    kat_status st = read_rows("qk", key, key[0] == 'q' ? "q" : "k", path, B, H, N, &a);
    if (st)
        return st;
    size_t n = B * H * N;
    uint8_t *mask = kat_malloc(n ? n : 1);
    if (!mask) {
        kat_array_free(&a);
        return KAT_ENOMEM;
    }
    for (size_t i = 0; i < n; i++)
        mask[i] = kat_array_get(&a, i) != 0.0;
    kat_array_free(&a);
    *out = mask;
    return KAT_OK;
}

/* Bucket ids from a file: integers in [0, 2^31 - 1). *max_id receives the largest. */
static kat_status buckets_from_file(const char *key, const char *path, size_t B, size_t H,
                                    size_t N, int32_t **out, size_t *max_id)
{
    kat_array a;
    kat_status st = read_rows("hash", key, key[0] == 'q' ? "q" : "k", path, B, H, N, &a);
    if (st)
        return st;
    size_t n = B * H * N;
    int32_t *ids = kat_malloc((n ? n : 1) * sizeof(int32_t));
    if (!ids) {
        kat_array_free(&a);
        return KAT_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        double x = kat_array_get(&a, i);
        if (!(x >= 0.0 && x < 2147483647.0) || x != floor(x)) {
            kat_array_free(&a);
            kat_free(ids);
            return file_error("hash", "%s: element %zu of '%s' is %g, not a bucket id (an "
                                      "integer >= 0)",
                              key, i, path, x);
        }
        ids[i] = (int32_t)x;
        *max_id = (size_t)x > *max_id ? (size_t)x : *max_id;
    }
    kat_array_free(&a);
    *out = ids;
    return KAT_OK;
}

/* LSH buckets of t's q and k (one matrix per key/value head). */
static kat_status lsh_buckets(const attn_tensors *t, size_t nb, uint64_t seed, int32_t **qb,
                              int32_t **kb)
{
    const kat_attn_desc *d = &t->desc;
    size_t nq = d->B * d->H * d->N, nk = d->B * d->H_kv * d->M;
    *qb = kat_malloc((nq ? nq : 1) * sizeof(int32_t));
    *kb = kat_malloc((nk ? nk : 1) * sizeof(int32_t));
    if (!*qb || !*kb)
        return KAT_ENOMEM;
    kat_status st = kat_sparse_lsh_buckets(&t->q, d->H / d->H_kv, nb, seed, *qb);
    return st ? st : kat_sparse_lsh_buckets(&t->k, 1, nb, seed, *kb);
}

/* The LSH seed: --params seed=S (an integer >= 0), else --seed (kept as an integer: a double
 * would round seeds above 2^53). 0, or -1 after printing why. */
static int lsh_seed(const char *mode, const attn_opts *o, uint64_t *seed)
{
    double s;
    int r = attn_param_double(o, "seed", &s);
    if (r < 0)
        return -1;
    *seed = o->seed;
    if (!r)
        return 0;
    if (!(s >= 0 && s < 18446744073709551616.0) || s != floor(s)) {
        mode_error(mode, "--params seed=%g must be an integer >= 0", s);
        return -1;
    }
    *seed = (uint64_t)s;
    return 0;
}

/* The inputs a pattern's index is built from, prepared once (files read, buckets hashed,
 * masks drawn), so that the timed calls of the benchmark only build the plan and index. */
typedef struct {
    int kind;                      /* 0 qk, 1 hash, 2 window */
    kat_attn_desc desc;
    uint8_t *qmask, *kmask;        /* qk: nonzero keeps (NULL: keep all) */
    int32_t *qb, *kb;              /* hash */
    size_t nb;
    size_t window, block_q, block_k;
} sparse_inputs;

static void inputs_free(sparse_inputs *in)
{
    kat_free(in->qmask);
    kat_free(in->kmask);
    kat_free(in->qb);
    kat_free(in->kb);
    memset(in, 0, sizeof *in);
}

/* An attention plan for the inputs with its per-call args: for QK-drop the masks become keep
 * lists here, so that the benchmark times them too. */
typedef struct {
    kat_attn_plan *plan;
    kat_attn_args args;
    kat_sparse_keep qk, kk;
} sparse_plan;

static void sparse_plan_free(sparse_plan *sp)
{
    kat_attn_plan_destroy(sp->plan);
    kat_sparse_keep_free(&sp->qk);
    kat_sparse_keep_free(&sp->kk);
    memset(sp, 0, sizeof *sp);
}

static kat_status sparse_plan_create(const sparse_inputs *in, sparse_plan *sp)
{
    const kat_attn_desc *d = &in->desc;
    kat_attn_pattern p = {0};
    kat_status st = KAT_OK;
    memset(sp, 0, sizeof *sp);
    if (in->kind == 0) {
        p.kind = KAT_ATTN_QKDROP;
        if (in->qmask)
            st = kat_sparse_keep_from_mask(in->qmask, d->B, d->H, d->N, &sp->qk);
        if (!st && in->kmask)
            st = kat_sparse_keep_from_mask(in->kmask, d->B, d->H_kv, d->M, &sp->kk);
        sp->args.q_keep = in->qmask ? &sp->qk : NULL;
        sp->args.k_keep = in->kmask ? &sp->kk : NULL;
    } else if (in->kind == 1) {
        p.kind = KAT_ATTN_HASH;
        p.buckets = in->nb;
        sp->args.q_buckets = in->qb;
        sp->args.k_buckets = in->kb;
    } else {
        p.kind = KAT_ATTN_WINDOW;
        p.window = in->window;
        p.block_q = in->block_q;
        p.block_k = in->block_k;
    }
    if (!st)
        st = kat_attn_plan_create(d, &p, &sp->plan);
    if (st)
        sparse_plan_free(sp);
    return st;
}

/* A positive integer parameter (default def when absent); -1 after printing why. */
static long param_count(const char *mode, const attn_opts *o, const char *key, long def)
{
    double x;
    int r = attn_param_double(o, key, &x);
    if (r < 0)
        return -1;
    if (!r)
        return def;
    if (x < 1 || x > 2147483646.0 || x != floor(x)) {
        mode_error(mode, "--params %s=%g must be a positive integer", key, x);
        return -1;
    }
    return (long)x;
}

/* Key blocks of a query tile's height by default: a band gains from small key blocks, whose
 * union hugs it more tightly (at N = 16384 and W = 512, 8% fewer score elements than with
 * the engine's key tiles, and fewer partly masked ones). */
static kat_status window_inputs(const attn_opts *o, long def_window, sparse_inputs *in)
{
    long w = param_count("window", o, "window", def_window);
    long bq = param_count("window", o, "block_q", (long)kat_sparse_tile_q());
    long bk = param_count("window", o, "block_k", (long)kat_sparse_tile_q());
    if (w == 0)
        return mode_error("window", "--params window=W is required");
    if (w < 0 || bq < 0 || bk < 0)
        return KAT_EINVAL;
    in->window = (size_t)w, in->block_q = (size_t)bq, in->block_k = (size_t)bk;
    return KAT_OK;
}

/* The inputs of `kat attn run|grad`: files and parameters. */
static kat_status run_inputs(const char *mode, const attn_opts *o, const attn_tensors *t,
                             sparse_inputs *in)
{
    memset(in, 0, sizeof *in);
    kat_status st = sparse_desc(mode, o, t, &in->desc);
    if (st)
        return st;
    const kat_attn_desc *d = &in->desc;
    if (strcmp(mode, "qk") == 0) {
        in->kind = 0;
        if ((st = keep_from_file(o, "q_keep", d->B, d->H, d->N, &in->qmask)) ||
            (st = keep_from_file(o, "k_keep", d->B, d->H_kv, d->M, &in->kmask)))
            return st;
        return KAT_OK;
    }
    if (strcmp(mode, "hash") == 0) {
        in->kind = 1;
        char qf[1024], kf[1024];
        int rq = attn_param_str(o, "q_buckets", qf, sizeof qf);
        int rk = attn_param_str(o, "k_buckets", kf, sizeof kf);
        long nb = param_count(mode, o, "nb", 0), lsh = param_count(mode, o, "buckets", 0);
        uint64_t seed;
        if (rq < 0 || rk < 0 || nb < 0 || lsh < 0 || lsh_seed(mode, o, &seed))
            return KAT_EINVAL;
        if (lsh) {
            if (rq || rk)
                return mode_error(mode, "give buckets=NB (LSH) or q_buckets and k_buckets "
                                        "files, not both");
            if (nb)
                return mode_error(mode, "nb=NB is the bucket count of bucket files; for LSH "
                                        "give buckets=NB");
            in->nb = (size_t)lsh;
            return lsh_buckets(t, in->nb, seed, &in->qb, &in->kb);
        }
        if (attn_param_has(o, "seed"))
            return mode_error(mode, "seed=S seeds the LSH (buckets=NB), not bucket files");
        if (!rq || !rk)
            return mode_error(mode, "--params q_buckets=F.npy,k_buckets=F.npy or buckets=NB");
        size_t max_id = 0;
        if ((st = buckets_from_file("q_buckets", qf, d->B, d->H, d->N, &in->qb, &max_id)) ||
            (st = buckets_from_file("k_buckets", kf, d->B, d->H_kv, d->M, &in->kb, &max_id)))
            return st;
        in->nb = nb ? (size_t)nb : max_id + 1;
        return KAT_OK;
    }
    in->kind = 2;
    return window_inputs(o, 0, in);
}

/* The --params keys each sparse mode reads in `kat attn` and in `kat bench attn`. */
static const char *mode_keys(const char *mode, int bench)
{
    if (strcmp(mode, "qk") == 0)
        return bench ? "drop,q_keep,k_keep,strict,step" : "q_keep,k_keep,strict";
    if (strcmp(mode, "hash") == 0)
        return bench ? "buckets,seed,q_buckets,k_buckets,nb,strict,step"
                     : "buckets,seed,q_buckets,k_buckets,nb,strict";
    return bench ? "window,block_q,block_k,strict,step" : "window,block_q,block_k,strict";
}

static kat_status sparse_run(const char *mode, const attn_opts *o, attn_tensors *t, int grad)
{
    if (attn_params_check(o, mode, "kat attn", mode_keys(mode, 0)))
        return attn_refused();
    if (o->precise)
        return mode_error(mode, "--precise is for the dense mode (the sparse backward uses "
                                "the forward's logsumexp)");
    sparse_inputs in;
    sparse_plan sp = {0};
    kat_status st = run_inputs(mode, o, t, &in);
    if (!st)
        st = sparse_plan_create(&in, &sp);
    if (!st)
        st = grad ? kat_attn_backward(sp.plan, &sp.args, &t->q, &t->k, &t->v, &t->o, &t->lse,
                                      &t->dout, &t->dq, &t->dk, &t->dv, NULL)
                  : kat_attn_forward(sp.plan, &sp.args, &t->q, &t->k, &t->v, &t->o, &t->lse,
                                     NULL);
    sparse_plan_free(&sp);
    inputs_free(&in);
    return st;
}

kat_status attn_qk_run(const attn_opts *o, attn_tensors *t, int grad)
{
    return sparse_run("qk", o, t, grad);
}

kat_status attn_hash_run(const attn_opts *o, attn_tensors *t, int grad)
{
    return sparse_run("hash", o, t, grad);
}

kat_status attn_window_run(const attn_opts *o, attn_tensors *t, int grad)
{
    return sparse_run("window", o, t, grad);
}

/* ---- the benchmark ----------------------------------------------------------------------- */

typedef struct {
    sparse_inputs in;
    attn_tensors *t;
    kat_tensor o, lse;    /* this mode's forward output (the dense one stays in t) */
    void *work;
    size_t work_bytes;
    int pass;             /* 0 forward, 1 backward, 2 forward + backward */
    /* the dense baseline */
    kat_attn_plan *plan;
    void *dense_work;
    double dense_ms, pair_pct, lsh_ms;
    /* our own record of the timed calls, for the speed-up in the note */
    char *note;
    double *times;
    int ncalls, warmup, reps;
} sparse_call;

/* The note: this mode's median so far (the calls after the warm-up ones), the dense time
 * and their ratio. */
static void write_note(sparse_call *c)
{
    int timed = c->ncalls - c->warmup;
    double med = 0.0;
    if (timed > 0) {
        double sorted[64];
        int n = timed < 64 ? timed : 64;
        memcpy(sorted, c->times + c->warmup, (size_t)n * sizeof(double));
        med = timing_median(sorted, (size_t)n);
    }
    const char *pass = c->pass == 2 ? "step" : c->pass ? "backward" : "forward";
    int len = snprintf(c->note, 128, "%s %s %.3f ms vs dense%s %.3f ms = %.2fx; pairs %.2f%%",
                       c->in.kind == 0 ? "qk" : c->in.kind == 1 ? "hash" : "window", pass, med,
                       c->in.desc.causal ? " causal" : "", c->dense_ms,
                       med > 0 ? c->dense_ms / med : 0.0, c->pair_pct);
    if (c->in.kind == 1 && len > 0 && len < 128)
        snprintf(c->note + len, 128 - (size_t)len, "; LSH %.1f ms untimed", c->lsh_ms);
}

static kat_status sparse_once(void *ctx)
{
    sparse_call *c = ctx;
    attn_tensors *t = c->t;
    double t0 = cli_now();
    sparse_plan sp;
    kat_status st = sparse_plan_create(&c->in, &sp);
    if (!st && kat_attn_workspace_size(sp.plan, KAT_ATTN_FORWARD) > c->work_bytes)
        st = KAT_ERANGE;   /* the same shapes every call: cannot happen */
    if (!st && kat_attn_workspace_size(sp.plan, KAT_ATTN_BACKWARD) > c->work_bytes)
        st = KAT_ERANGE;
    /* a training step sorts and tiles the per-call pattern once for both passes */
    kat_attn_index *ix = NULL;
    if (!st && c->pass == 2 && c->in.kind != 2)
        st = kat_attn_index_create(sp.plan, &sp.args, &t->q, &t->k, &ix);
    sp.args.index = ix;
    if (!st && c->pass != 1)
        st = kat_attn_forward(sp.plan, &sp.args, &t->q, &t->k, &t->v, &c->o, &c->lse, c->work);
    if (!st && c->pass != 0)
        st = kat_attn_backward(sp.plan, &sp.args, &t->q, &t->k, &t->v, &c->o, &c->lse,
                               &t->dout, &t->dq, &t->dk, &t->dv, c->work);
    kat_attn_index_destroy(ix);
    sparse_plan_free(&sp);
    if (c->ncalls < c->warmup + c->reps && c->ncalls < 64 + c->warmup) {
        c->times[c->ncalls++] = (cli_now() - t0) * 1e3;
        write_note(c);
    }
    return st;
}

static kat_status dense_once(void *ctx)
{
    sparse_call *c = ctx;
    attn_tensors *t = c->t;
    kat_status st = KAT_OK;
    if (c->pass != 1)
        st = kat_attn_forward(c->plan, NULL, &t->q, &t->k, &t->v, &t->o, &t->lse, c->dense_work);
    if (!st && c->pass != 0)
        st = kat_attn_backward(c->plan, NULL, &t->q, &t->k, &t->v, &t->o, &t->lse, &t->dout, &t->dq,
                               &t->dk, &t->dv, c->dense_work);
    return st;
}

static void sparse_cleanup(void *ctx)
{
    sparse_call *c = ctx;
    inputs_free(&c->in);
    kat_free(c->o.data);
    kat_free(c->lse.data);
    kat_free(c->work);
    kat_free(c->dense_work);
    kat_free(c->times);
    kat_attn_plan_destroy(c->plan);
    kat_free(c);
}

/* Bench inputs: the pattern files when given (as for `kat attn run`), else random keep lists
 * (qk, drop=P), LSH buckets of the random q and k (hash, buckets=NB), the window. */
static kat_status bench_inputs(const char *mode, const attn_opts *o, const attn_tensors *t,
                               sparse_inputs *in, double *lsh_ms)
{
    memset(in, 0, sizeof *in);
    int files = 0;
    if (strcmp(mode, "qk") == 0)
        files = attn_param_has(o, "q_keep") || attn_param_has(o, "k_keep");
    else if (strcmp(mode, "hash") == 0)
        files = attn_param_has(o, "q_buckets") || attn_param_has(o, "k_buckets");
    if (files) {
        if (attn_param_has(o, strcmp(mode, "qk") == 0 ? "drop" : "buckets"))
            return mode_error(mode, "give %s or pattern files, not both",
                              strcmp(mode, "qk") == 0 ? "drop=P" : "buckets=NB");
        return run_inputs(mode, o, t, in);
    }
    kat_status st = sparse_desc(mode, o, t, &in->desc);
    if (st)
        return st;
    const kat_attn_desc *d = &in->desc;
    if (strcmp(mode, "qk") == 0) {
        in->kind = 0;
        double drop = 0.5;
        if (attn_param_double(o, "drop", &drop) < 0)
            return KAT_EINVAL;
        if (!(drop >= 0.0 && drop <= 1.0))
            return mode_error(mode, "--params drop=%g must be in [0, 1]", drop);
        kat_rng *rng;
        if ((st = kat_rng_create(o->seed, &rng)))
            return st;
        size_t nq = d->B * d->H * d->N, nk = d->B * d->H_kv * d->M;
        in->qmask = kat_malloc(nq + 1);
        in->kmask = kat_malloc(nk + 1);
        if (in->qmask && in->kmask) {
            for (size_t i = 0; i < nq; i++)
                in->qmask[i] = kat_rng_uniform(rng) >= drop;
            for (size_t i = 0; i < nk; i++)
                in->kmask[i] = kat_rng_uniform(rng) >= drop;
        }
        kat_rng_destroy(rng);
        return in->qmask && in->kmask ? KAT_OK : KAT_ENOMEM;
    }
    if (strcmp(mode, "hash") == 0) {
        in->kind = 1;
        long nb = param_count(mode, o, "buckets", 16);
        uint64_t seed;   /* seed=S overrides --seed, as in `kat attn run` */
        if (nb < 0 || lsh_seed(mode, o, &seed))
            return KAT_EINVAL;
        if (attn_param_has(o, "nb"))
            return mode_error(mode, "nb=NB is the bucket count of bucket files; for LSH give "
                                    "buckets=NB");
        in->nb = (size_t)nb;
        double t0 = cli_now();
        st = lsh_buckets(t, in->nb, seed, &in->qb, &in->kb);
        *lsh_ms = (cli_now() - t0) * 1e3;
        return st;
    }
    in->kind = 2;
    return window_inputs(o, 512, in);
}

static kat_status sparse_bench(const char *mode, const attn_opts *o, attn_tensors *t,
                               attn_bench_call *call)
{
    if (attn_params_check(o, mode, "kat bench attn", mode_keys(mode, 1)))
        return attn_refused();
    if (o->precise)
        return mode_error(mode, "--precise is for the dense mode");
    double step = 0.0;
    if (attn_param_double(o, "step", &step) < 0)
        return KAT_EINVAL;
    if (step != 0.0 && !o->backward)
        return mode_error(mode, "--params step=1 times forward + backward: give --backward");
    sparse_call *c = kat_calloc(1, sizeof *c);
    if (!c)
        return KAT_ENOMEM;
    c->t = t;
    c->pass = !o->backward ? 0 : step != 0.0 ? 2 : 1;
    c->warmup = o->warmup;
    c->reps = o->reps;
    c->note = call->note;
    c->times = kat_calloc((size_t)(o->warmup + (o->reps < 64 ? o->reps : 64)) + 1, sizeof(double));
    kat_status st = c->times ? bench_inputs(mode, o, t, &c->in, &c->lsh_ms) : KAT_ENOMEM;
    const kat_attn_desc *d = &t->desc;
    sparse_plan sp = {0};
    if (!st)
        st = sparse_plan_create(&c->in, &sp);
    kat_sparse_stats s;
    memset(&s, 0, sizeof s);
    if (!st)
        st = kat_attn_plan_stats(sp.plan, &sp.args, &s);
    if (!st) {
        size_t f = kat_attn_workspace_size(sp.plan, KAT_ATTN_FORWARD);
        size_t b = kat_attn_workspace_size(sp.plan, KAT_ATTN_BACKWARD);
        c->work_bytes = f > b ? f : b;
        c->work = kat_malloc(c->work_bytes ? c->work_bytes : 1);
        c->o.data = kat_malloc(d->B * d->H * d->N * d->D * sizeof(float) + 1);
        c->lse.data = kat_malloc(d->B * d->H * d->N * sizeof(float) + 1);
        if (!c->work || !c->o.data || !c->lse.data)
            st = KAT_ENOMEM;
    }
    if (!st) {
        /* Touch every buffer now, so that no timed call pays for first-touch page faults. */
        memset(c->work, 0, c->work_bytes);
        memset(c->o.data, 0, d->B * d->H * d->N * d->D * sizeof(float));
        memset(c->lse.data, 0, d->B * d->H * d->N * sizeof(float));
        kat_tensor *outs[] = {&t->o, &t->lse, &t->dq, &t->dk, &t->dv};
        for (size_t i = 0; i < sizeof outs / sizeof outs[0]; i++)
            if (outs[i]->data)
                memset(outs[i]->data, 0, kat_tensor_numel(outs[i]) * sizeof(float));
        c->o = kat_tensor_view(c->o.data, d->B, d->H, d->N, d->D);
        c->lse = kat_tensor_view(c->lse.data, d->B, d->H, d->N, 1);
        /* the backward's o and lse come from this mode's forward */
        if (c->pass == 1)
            st = kat_attn_forward(sp.plan, &sp.args, &t->q, &t->k, &t->v, &c->o, &c->lse,
                                  c->work);
    }
    sparse_plan_free(&sp);
    /* The dense engine on the same tensors and mask flag, timed now: same run. */
    kat_attn_desc dd = *d;
    dd.causal = c->in.desc.causal != 0;
    if (!st)
        st = kat_attn_plan_create(&dd, NULL, &c->plan);
    if (!st) {
        size_t f = kat_attn_workspace_size(c->plan, KAT_ATTN_FORWARD);
        size_t b = kat_attn_workspace_size(c->plan, KAT_ATTN_BACKWARD);
        if (!(c->dense_work = kat_malloc((f > b ? f : b) + 1)))
            st = KAT_ENOMEM;
        else
            memset(c->dense_work, 0, (f > b ? f : b) + 1);
    }
    if (!st) {
        attn_bench_call dc = {.fn = dense_once, .ctx = c};
        st = attn_time_median(&dc, o->warmup, o->reps, &c->dense_ms, NULL);
    }
    if (st) {
        sparse_cleanup(c);
        return st;
    }
    c->pair_pct = s.dense_pairs
                      ? 100.0 * (double)s.tile_pairs / (double)s.dense_pairs : 0.0;
    /* FLOPs of the visited tile pairs (4 rows_q rows_k D each forward, x2.5 backward). */
    double fwd = 4.0 * (double)s.pair_elements * (double)d->D;
    call->fn = sparse_once;
    call->cleanup = sparse_cleanup;
    call->ctx = c;
    call->flops = c->pass == 0 ? fwd : c->pass == 1 ? 2.5 * fwd : 3.5 * fwd;
    call->baseline_ms = c->dense_ms;
    call->baseline_name = dd.causal ? "dense causal flash" : "dense flash";
    write_note(c);
    return KAT_OK;
}

kat_status attn_qk_bench(const attn_opts *o, attn_tensors *t, attn_bench_call *call)
{
    return sparse_bench("qk", o, t, call);
}

kat_status attn_hash_bench(const attn_opts *o, attn_tensors *t, attn_bench_call *call)
{
    return sparse_bench("hash", o, t, call);
}

kat_status attn_window_bench(const attn_opts *o, attn_tensors *t, attn_bench_call *call)
{
    return sparse_bench("window", o, t, call);
}
