/* Attention modes, --params, random tensors and the benchmark machinery shared by `kat attn`
 * and `kat bench attn`. */
#include <cblas.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include "attn_cli.h"

#define X(name, run, bench, summary)                                                          \
    kat_status run(const attn_opts *, attn_tensors *, int);                                   \
    kat_status bench(const attn_opts *, attn_tensors *, attn_bench_call *);
#include "attn_modes.def"
#undef X

static const attn_mode modes[] = {
#define X(name, run, bench, summary) {name, run, bench, summary},
#include "attn_modes.def"
#undef X
};

static const char *say_cmd = "attn";
static int said;   /* attn_say has printed a line */

void attn_say(const char *fmt, ...)
{
    said = 1;
    fprintf(stderr, "kat %s: ", say_cmd);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

kat_status attn_refused(void)
{
    kat_clear_error();
    return KAT_EINVAL;
}

const attn_mode *attn_mode_find(const char *cmd, const char *name)
{
    say_cmd = cmd;
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++)
        if (strcmp(modes[i].name, name) == 0)
            return &modes[i];
    cli_usage(cmd, "--mode: unknown attention mode '%s' (the modes: %s)", name,
              attn_mode_names());
    return NULL;
}

const char *attn_mode_names(void)
{
    static char buf[256];
    if (!buf[0])
        for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
            if (i)
                strncat(buf, "|", sizeof buf - strlen(buf) - 1);
            strncat(buf, modes[i].name, sizeof buf - strlen(buf) - 1);
        }
    return buf;
}

/* ---- --params ------------------------------------------------------------------------------ */

static const struct {
    const char *flag, *key, *help;
} mode_flags[ATTN_MODE_FLAGS] = {
    {"map", "map", "SPEC   linear: a feature map (taylor2, taylor:P, poly:EXPR, favor:M[:ortho], rff:M, elu1...)"},
    {"chunk", "chunk", "C      linear: tokens per causal chunk"},
    {"q-keep", "q_keep", "FILE   qk: kept queries (.npy of q's shape without D, nonzero keeps)"},
    {"k-keep", "k_keep", "FILE   qk: kept keys (.npy of k's shape without D, nonzero keeps)"},
    {"q-buckets", "q_buckets", "FILE   hash: query bucket ids (.npy of q's shape without D)"},
    {"k-buckets", "k_buckets", "FILE   hash: key bucket ids (.npy of k's shape without D)"},
    {"buckets", "buckets", "NB     hash: angular LSH with NB buckets"},
    {"window", "window", "W      window: causal sliding window of W keys"},
    {"drop", "drop", "P      bench qk: drop a fraction P of queries and keys"},
    {"strict", "strict", "0|1    qk, hash, window: with --causal, key j < query i"},
};

void attn_mode_flag_opts(attn_opts *o, cli_opt *opts, size_t *n)
{
    for (size_t i = 0; i < ATTN_MODE_FLAGS; i++)
        opts[(*n)++] = (cli_opt){mode_flags[i].flag, CLI_STR, &o->flag_params[i],
                                 mode_flags[i].help, NULL};
}

/* Is the key of length n one of the comma-separated keys? */
static int key_listed(const char *keys, const char *key, size_t n)
{
    for (const char *p = keys; *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == n && strncmp(p, key, n) == 0)
            return 1;
        if (!end)
            break;
        p = end + 1;
    }
    return 0;
}

int attn_params_check(const attn_opts *o, const char *mode, const char *where, const char *keys)
{
    struct {
        const char *key;
        size_t len;
        const char *flag;   /* the mode flag, or NULL for a --params item */
    } given[ATTN_MODE_FLAGS + 64];
    size_t ng = 0;
    for (size_t i = 0; i < ATTN_MODE_FLAGS; i++)
        if (o->flag_params[i]) {
            given[ng].key = mode_flags[i].key;
            given[ng].len = strlen(mode_flags[i].key);
            given[ng++].flag = mode_flags[i].flag;
        }
    for (const char *p = o->params; p && *p;) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        const char *eq = memchr(p, '=', n);
        if (!eq || eq == p) {
            attn_say("--params: '%.*s' is not key=value", (int)n, p);
            return -1;
        }
        if (ng == sizeof given / sizeof given[0]) {
            attn_say("--params: more than 64 settings");
            return -1;
        }
        given[ng].key = p;
        given[ng].len = (size_t)(eq - p);
        given[ng++].flag = NULL;
        p = end ? end + 1 : p + n;
    }
    for (size_t i = 0; i < ng; i++) {
        char what[96];
        if (given[i].flag)
            snprintf(what, sizeof what, "--%s", given[i].flag);
        else
            snprintf(what, sizeof what, "--params %.*s", (int)given[i].len, given[i].key);
        if (!key_listed(keys, given[i].key, given[i].len)) {
            attn_say("%s is not a setting of %s --mode %s (%s%s)", what, where, mode,
                     *keys ? "its settings: " : "it has none", keys);
            return -1;
        }
        for (size_t k = 0; k < i; k++)
            if (given[k].len == given[i].len &&
                strncmp(given[k].key, given[i].key, given[i].len) == 0) {
                attn_say("%s is given twice (as a flag and in --params, or twice in --params)",
                         what);
                return -1;
            }
    }
    return 0;
}

int attn_mode_fail(const char *cmd, const char *mode, kat_status st)
{
    if (!*kat_last_error() && st == KAT_EINVAL) {
        cli_see_help(cmd);
        return CLI_USAGE;
    }
    return said && !*kat_last_error() ? CLI_FAIL : cli_fail(cmd, mode, st);
}

/* Find key in "k=v,k=v", then among the mode flags: the value's start and length. */
static int param_find(const attn_opts *o, const char *key, const char **val, size_t *len)
{
    for (size_t i = 0; i < ATTN_MODE_FLAGS; i++)
        if (o->flag_params[i] && strcmp(mode_flags[i].key, key) == 0) {
            *val = o->flag_params[i];
            *len = strlen(*val);
            return 1;
        }
    size_t kl = strlen(key);
    for (const char *p = o->params; p && *p;) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n > kl && strncmp(p, key, kl) == 0 && p[kl] == '=') {
            *val = p + kl + 1;
            *len = n - kl - 1;
            return 1;
        }
        p = end ? end + 1 : p + n;
    }
    return 0;
}

int attn_param_has(const attn_opts *o, const char *key)
{
    const char *v;
    size_t n;
    return param_find(o, key, &v, &n);
}

int attn_param_str(const attn_opts *o, const char *key, char *out, size_t cap)
{
    const char *v;
    size_t n;
    if (!param_find(o, key, &v, &n))
        return 0;
    if (n + 1 > cap) {
        attn_say("--params %s: value too long", key);
        return -1;
    }
    memcpy(out, v, n);
    out[n] = '\0';
    return 1;
}

int attn_param_double(const attn_opts *o, const char *key, double *out)
{
    char buf[64], *end;
    int r = attn_param_str(o, key, buf, sizeof buf);
    if (r <= 0)
        return r;
    double x = strtod(buf, &end);
    if (end == buf || *end || !isfinite(x)) {
        attn_say("--params %s=%s is not a finite number", key, buf);
        return -1;
    }
    *out = x;
    return 1;
}

/* ---- timing -------------------------------------------------------------------------------- */

double attn_dense_flops(const kat_attn_desc *d, int backward)
{
    double f = 4.0 * (double)d->B * (double)d->H * (double)d->N * (double)d->M * (double)d->D;
    if (d->causal)
        f *= 0.5;
    return backward ? 2.5 * f : f;
}

static double median_of(double *t, int n)
{
    return timing_median(t, (size_t)n);
}

kat_status attn_time_median(const attn_bench_call *call, int warmup, int reps, double *ms,
                            double *runs)
{
    kat_status st;
    for (int i = 0; i < warmup; i++)
        if ((st = call->fn(call->ctx)))
            return st;
    reps = reps < 1 ? 1 : reps;
    double *t = kat_malloc((size_t)reps * sizeof *t);
    if (!t)
        return KAT_ENOMEM;
    for (int i = 0; i < reps; i++) {
        double t0 = cli_now();
        if ((st = call->fn(call->ctx))) {
            kat_free(t);
            return st;
        }
        t[i] = (cli_now() - t0) * 1e3;
        if (runs)
            runs[i] = t[i];
    }
    *ms = median_of(t, reps);
    kat_free(t);
    return KAT_OK;
}

kat_status attn_time_ratio(const attn_bench_call *a, const attn_bench_call *b, int warmup,
                           int reps, double *ms_a, double *ms_b, double *ratio)
{
    kat_status st;
    for (int i = 0; i < warmup; i++)
        if ((st = a->fn(a->ctx)) || (st = b->fn(b->ctx)))
            return st;
    reps = reps < 1 ? 1 : reps;
    double *t = kat_malloc(3 * (size_t)reps * sizeof *t);
    if (!t)
        return KAT_ENOMEM;
    double *ta = t, *tb = t + reps, *r = t + 2 * reps;
    for (int i = 0; i < reps; i++) {
        double t0 = cli_now();
        if ((st = a->fn(a->ctx)))
            break;
        double t1 = cli_now();
        if ((st = b->fn(b->ctx)))
            break;
        ta[i] = (t1 - t0) * 1e3;
        tb[i] = (cli_now() - t1) * 1e3;
        r[i] = ta[i] / tb[i];
    }
    if (!st) {
        *ms_a = median_of(ta, reps);
        *ms_b = median_of(tb, reps);
        *ratio = median_of(r, reps);
    }
    kat_free(t);
    return st;
}

double attn_sgemm_gflops(size_t n, int threads, int reps)
{
    float *a = kat_malloc(n * n * sizeof(float)), *b = kat_malloc(n * n * sizeof(float));
    float *c = kat_malloc(n * n * sizeof(float));
    if (!a || !b || !c) {
        kat_free(a), kat_free(b), kat_free(c);
        return 0.0;
    }
    for (size_t i = 0; i < n * n; i++) {
        a[i] = (float)((i * 7 % 13) - 6) / 6.0f;
        b[i] = (float)((i * 5 % 11) - 5) / 5.0f;
    }
    if (kat_blas_begin(threads) != KAT_OK) {   /* its buffers do not fit under ulimit -v */
        kat_free(a), kat_free(b), kat_free(c);
        return 0.0;
    }
    double best[16], flops = 2.0 * (double)n * (double)n * (double)n;
    reps = reps < 1 ? 1 : reps > 16 ? 16 : reps;
    for (int r = -1; r < reps; r++) {   /* r = -1: warm-up */
        double t0 = cli_now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)n, (int)n, 1.0f, a,
                    (int)n, b, (int)n, 0.0f, c, (int)n);
        if (r >= 0)
            best[r] = flops / (cli_now() - t0) / 1e9;
    }
    kat_blas_end();
    kat_free(a), kat_free(b), kat_free(c);
    return median_of(best, reps);
}

/* ---- random tensors ------------------------------------------------------------------------ */

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void attn_fill_random(kat_tensor *t, uint64_t seed)
{
    /* Each (b, h, n) row draws from its own stream: the same values whatever the threads. */
    size_t rows = t->B * t->H * t->N;
#pragma omp parallel for schedule(static) num_threads(kat_num_threads())
    for (size_t r = 0; r < rows; r++) {
        size_t n = r % t->N, bh = r / t->N, b = bh / t->H, h = bh % t->H;
        uint64_t s = seed * 0x100000001B3ull + r;
        float *row = kat_tensor_row(t, b, h, n);
        for (size_t d = 0; d < t->D; d++) {   /* uniform on [-sqrt 3, sqrt 3) */
            double u = (double)(uint32_t)(splitmix64(&s) >> 32) / 4294967296.0;
            row[d] = (float)((2.0 * u - 1.0) * 1.7320508075688772);
        }
    }
}

static kat_status alloc_view(kat_tensor *t, size_t B, size_t H, size_t N, size_t D,
                             const char *what)
{
    size_t n = B * H * N * D;   /* the desc check bounded B H N D * 8 bytes */
    float *p = kat_malloc((n ? n : 1) * sizeof(float));
    (void)what;
    if (!p)
        return KAT_ENOMEM;   /* kat_malloc said how many bytes */
    *t = kat_tensor_view(p, B, H, N, D);
    return KAT_OK;
}

kat_status attn_tensors_random(const attn_opts *o, int grad, attn_tensors *t)
{
    memset(t, 0, sizeof *t);
    kat_attn_desc d = {o->B, o->H, o->H_kv, o->N, o->M ? o->M : o->N, o->D, o->causal,
                       o->scale, 0};
    kat_status st = kat_attn_desc_check(&d, &t->desc);
    if (st)
        return st;
    d = t->desc;
    if ((st = alloc_view(&t->q, d.B, d.H, d.N, d.D, "q")) ||
        (st = alloc_view(&t->k, d.B, d.H_kv, d.M, d.D, "k")) ||
        (st = alloc_view(&t->v, d.B, d.H_kv, d.M, d.D, "v")) ||
        (st = alloc_view(&t->o, d.B, d.H, d.N, d.D, "o")) ||
        (st = alloc_view(&t->lse, d.B, d.H, d.N, 1, "lse")) ||
        (grad && ((st = alloc_view(&t->dout, d.B, d.H, d.N, d.D, "dout")) ||
                  (st = alloc_view(&t->dq, d.B, d.H, d.N, d.D, "dq")) ||
                  (st = alloc_view(&t->dk, d.B, d.H_kv, d.M, d.D, "dk")) ||
                  (st = alloc_view(&t->dv, d.B, d.H_kv, d.M, d.D, "dv"))))) {
        attn_tensors_free(t);
        return st;
    }
    attn_fill_random(&t->q, o->seed * 4 + 0);
    attn_fill_random(&t->k, o->seed * 4 + 1);
    attn_fill_random(&t->v, o->seed * 4 + 2);
    if (grad)
        attn_fill_random(&t->dout, o->seed * 4 + 3);
    return KAT_OK;
}

void attn_tensors_free(attn_tensors *t)
{
    kat_tensor *ts[] = {&t->q, &t->k, &t->v, &t->o, &t->lse, &t->dout, &t->dq, &t->dk, &t->dv};
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) {
        kat_free(ts[i]->data);
        ts[i]->data = NULL;
    }
}

double attn_peak_rss_bytes(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return 0.0;
    return (double)ru.ru_maxrss * 1024.0;   /* Linux reports kilobytes */
}
