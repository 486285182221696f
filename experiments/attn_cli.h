/* What `kat attn` and `kat bench attn` share with every attention mode: the parsed options, the
 * tensors, and the benchmark machinery (warm-up, median of runs, the sgemm rate and the unfused
 * baseline measured in the same run, JSON keys).
 *
 * A mode is one file with two functions and one line in attn_modes.def:
 *
 *     X("name", run_fn, bench_fn, "one-line summary")
 *
 *   run_fn(opts, t, grad): compute t->o and t->lse (grad = 0), or t->dq, t->dk, t->dv from
 *       t->o, t->lse and t->dout (grad = 1), from the tensors loaded by `kat attn run|grad`.
 *   bench_fn(opts, t, call): set up one timed call on t (random tensors of the --b --h --n
 *       --m --d shape; for --backward t->o, t->lse and t->dout are ready) and describe it in
 *       *call; `kat bench attn` times call->fn(call->ctx), then calls call->cleanup.
 *
 * Mode-specific settings come in through --params "key=value,key=value" (attn_param_*). */
#ifndef KAT_ATTN_CLI_H
#define KAT_ATTN_CLI_H

#include <stddef.h>
#include <stdint.h>
#include "cli.h"

/* Mode options given as their own flags, as the documented CLI spells them: --map taylor2 is
 * the same as --params map=taylor2 (a dash in the flag is an underscore in the key). */
#define ATTN_MODE_FLAGS 10

typedef struct {
    const char *mode;       /* --mode (default "dense") */
    int causal;             /* --causal */
    double scale;           /* --scale (0: 1/sqrt(D)) */
    const char *params;     /* --params, mode-specific "k=v,k=v" (NULL if absent) */
    const char *flag_params[ATTN_MODE_FLAGS];   /* --map, --q-keep, ... (NULL if absent) */
    int json;               /* --json */
    uint64_t seed;          /* --seed: random tensors of `kat bench attn` */
    int threads;            /* --threads (0: kat's default) */
    int precise;            /* --precise: the dense backward recomputes the softmax statistics */
    int lse;                /* kat attn: --lse asks for the logsumexp (a mode without one refuses) */
    /* bench */
    size_t B, H, H_kv, N, M, D;
    int backward;           /* --backward: time the backward pass */
    int reps, warmup;       /* --reps (median of), --warmup */
    int crossover;          /* --crossover: linear mode, also find where it overtakes flash */
} attn_opts;

typedef struct {
    kat_attn_desc desc;     /* from the shapes, causal and scale of the options */
    kat_tensor q, k, v, o, lse, dout, dq, dk, dv;
} attn_tensors;

/* The largest N the linear mode's --crossover search times. */
#define ATTN_CROSSOVER_MAX_N ((size_t)1 << 17)

/* One timed call, set up by a mode's bench function. */
typedef struct {
    kat_status (*fn)(void *ctx);     /* one iteration */
    void (*cleanup)(void *ctx);      /* may be NULL */
    void *ctx;
    double flops;   /* FLOPs of one call; 0: the dense convention (attn_dense_flops) */
    char note[128]; /* optional, shown in the report (e.g. "ISA avx512, 2 threads") */
    /* A mode that times its own baseline in the same run (the sparse and linear modes: kat's
     * dense flash with the same mask on the same tensors) sets baseline_ms > 0 and names it;
     * `kat bench attn` then reports it as baseline_ms instead of the unfused one. */
    double baseline_ms;
    const char *baseline_name;
    double crossover_n;   /* --crossover: N where the mode overtakes the baseline, 0: none
                           * up to ATTN_CROSSOVER_MAX_N */
} attn_bench_call;

typedef kat_status (*attn_run_fn)(const attn_opts *o, attn_tensors *t, int grad);
typedef kat_status (*attn_bench_fn)(const attn_opts *o, attn_tensors *t, attn_bench_call *call);

/* The modes of attn_modes.def. */
typedef struct {
    const char *name;
    attn_run_fn run;
    attn_bench_fn bench;
    const char *summary;
} attn_mode;

/* The mode called `name`, or NULL after the usage error of `kat <cmd>` naming the modes. cmd
 * ("attn", "bench attn") is also the command that attn_say's lines name from then on. */
const attn_mode *attn_mode_find(const char *cmd, const char *name);
/* One line "kat <cmd>: <message>" on stderr, cmd as given to attn_mode_find: how the modes and
 * the --params parsing say why they refuse something. */
void attn_say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A refusal already said by attn_say: KAT_EINVAL with no library error sentence, which
 * attn_mode_fail turns into a usage error. */
kat_status attn_refused(void);
/* "dense|linear|..." for usage texts. */
const char *attn_mode_names(void);

/* Append the cli_opt entries of the mode flags (--map, --chunk, --q-keep, --k-keep,
 * --q-buckets, --k-buckets, --buckets, --window, --drop, --strict) to opts[*n], storing into
 * o->flag_params. */
void attn_mode_flag_opts(attn_opts *o, cli_opt *opts, size_t *n);

/* The exit of a mode's failed run: a mode refuses its own settings (--params, the mode flags)
 * by printing one line and returning KAT_EINVAL with no library error sentence (every failing
 * kat call leaves one; the caller clears it first), which is a usage error: "see kat CMD
 * --help" and CLI_USAGE. A data failure the mode has said itself (a pattern file that cannot
 * be read) is CLI_FAIL with nothing more printed; anything else is cli_fail's CLI_FAIL. */
int attn_mode_fail(const char *cmd, const char *mode, kat_status st);

/* Refuse settings the mode does not read, so that a typo or a flag of another mode is not
 * silently ignored: every --params key and every mode flag given must be in `keys` (comma-
 * separated), none given twice (as a flag and in --params, say), each item of --params must
 * be key=value. Returns 0, or -1 after printing why (naming what was given, the mode, `where`
 * - "kat attn" or "kat bench attn" - and the settings it takes). */
int attn_params_check(const attn_opts *o, const char *mode, const char *where, const char *keys);

/* --params lookup (then the mode flags): 1 and *out when key is present and parses (as a double, or as a string of
 * at most cap - 1 bytes), 0 when absent, -1 (after printing why) when malformed. */
int attn_param_double(const attn_opts *o, const char *key, double *out);
/* 1 when key is given (in --params or as its mode flag), else 0; prints nothing. */
int attn_param_has(const attn_opts *o, const char *key);
int attn_param_str(const attn_opts *o, const char *key, char *out, size_t cap);

/* Dense-convention FLOPs: 4 B H N M D forward, half of it causal, x2.5 for the backward. */
double attn_dense_flops(const kat_attn_desc *d, int backward);

/* Median wall time in ms of `reps` calls after `warmup` untimed ones; runs[] (reps entries,
 * may be NULL) receives every time. Returns the first failure. */
kat_status attn_time_median(const attn_bench_call *call, int warmup, int reps, double *ms,
                            double *runs);
/* a and b timed alternately (warm-ups of each first), so that both see the same drift of a
 * shared machine: the medians of each and the median of the per-round ratios a / b. */
kat_status attn_time_ratio(const attn_bench_call *a, const attn_bench_call *b, int warmup,
                           int reps, double *ms_a, double *ms_b, double *ratio);

/* cblas_sgemm rate (GFLOP/s) of an n x n x n product with the given OpenBLAS thread count,
 * median of reps runs after one warm-up. 0 when the memory cannot be had. */
double attn_sgemm_gflops(size_t n, int threads, int reps);

/* Fill a view with uniform values of unit variance, deterministic in seed (threaded). */
void attn_fill_random(kat_tensor *t, uint64_t seed);

/* Allocate contiguous random q, k, v (and o, lse; with grad also dout, dq, dk, dv) for the
 * options' shape. attn_tensors_free releases them. */
kat_status attn_tensors_random(const attn_opts *o, int grad, attn_tensors *t);
void attn_tensors_free(attn_tensors *t);

/* Peak resident memory of this process so far, in bytes. */
double attn_peak_rss_bytes(void);

#endif
