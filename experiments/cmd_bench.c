/* `kat bench attn`: time an attention mode on random tensors, with the ratios that survive a
 * noisy machine: the sgemm rate and the unfused BLAS baseline measured in the same run, and
 * optionally the same call on one thread (--scaling) or without the causal mask
 * (--causal-ratio). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "attn_cli.h"
#include "progress.h"
#include "timing_conditions.h"

static const char *const usage_text =
    "usage: kat bench attn [--mode M] --b B --h H [--hkv H_KV] --n N [--m M] --d D [--causal]\n"
    "                      [--backward [--precise]] [--threads T] [--reps R] [--json] ...\n"
    "\n"
    "Times one attention call (median of --reps after --warmup) on seeded random tensors and\n"
    "reports GFLOP/s (4 B H N M D forward, half of it causal, x2.5 backward), the percentage\n"
    "of the cblas_sgemm rate measured in the same run (an n^3 product, --sgemm n), and the\n"
    "speedup over a baseline timed in the same run: for --mode dense the unfused attention\n"
    "(sgemm -> softmax -> sgemm through the same BLAS), for the sparse and linear modes kat's\n"
    "dense flash with the same mask on the same tensors (its time is then baseline_ms).\n"
    "Run it with OPENBLAS_CORETYPE=SkylakeX on AVX-512 machines (run.sh sets it) so that\n"
    "OpenBLAS uses its AVX-512 kernels for both references.";

/* One call of the unfused baseline: the same tensors, the same direction. */
typedef struct {
    attn_tensors *t;
    int backward;
} base_ctx;

static kat_status base_once(void *ctx)
{
    base_ctx *b = ctx;
    attn_tensors *t = b->t;
    if (!b->backward)
        return kat_attn_unfused_forward(&t->desc, &t->q, &t->k, &t->v, &t->o, &t->lse);
    return kat_attn_unfused_backward(&t->desc, &t->q, &t->k, &t->v, &t->o, &t->dout, &t->dq,
                                     &t->dk, &t->dv);
}

static int bench_attn(int argc, char **argv)
{
    attn_opts o;
    memset(&o, 0, sizeof o);
    o.mode = "dense";
    o.reps = 5;
    o.warmup = 1;
    o.B = 1;
    size_t sgemm_n = 4096;
    int baseline = -1, scaling = 0, causal_ratio = 0;   /* -1: the mode's own */
    int seen_h = 0, seen_n = 0, seen_d = 0;
    char mode_help[300];
    snprintf(mode_help, sizeof mode_help, "M      %s (default dense)", attn_mode_names());
    const cli_opt base_opts[] = {
        {"mode", CLI_STR, &o.mode, mode_help, NULL},
        {"b", CLI_SIZE, &o.B, "B      batch (default 1)", NULL},
        {"h", CLI_SIZE, &o.H, "H      query heads", &seen_h},
        {"hkv", CLI_SIZE, &o.H_kv, "H      key/value heads (default H; H a multiple)", NULL},
        {"n", CLI_SIZE, &o.N, "N      queries per head", &seen_n},
        {"m", CLI_SIZE, &o.M, "M      keys per head (default N)", NULL},
        {"d", CLI_SIZE, &o.D, "D      head dimension (1..256)", &seen_d},
        {"causal", CLI_FLAG, &o.causal, "       causal mask (bottom-right aligned)", NULL},
        {"scale", CLI_DOUBLE, &o.scale, "S      softmax scale (default 1/sqrt(D))", NULL},
        {"backward", CLI_FLAG, &o.backward, "       time the backward pass", NULL},
        {"precise", CLI_FLAG, &o.precise,
         "       dense backward: recompute the softmax statistics, not the fp32 lse", NULL},
        {"params", CLI_STR, &o.params, "K=V,.. mode-specific settings (man kat lists them)",
         NULL},
        {"threads", CLI_INT, &o.threads, "T      threads (default: KAT_NUM_THREADS or all)",
         NULL},
        {"reps", CLI_INT, &o.reps, "R      timed runs, the median is reported (default 5)", NULL},
        {"warmup", CLI_INT, &o.warmup, "W      untimed runs first (default 1)", NULL},
        {"seed", CLI_U64, &o.seed, "S      seed of the random tensors (default 0)", NULL},
        {"baseline", CLI_INT, &baseline, "0|1    1: time the unfused N^2 attention as the "
         "baseline (default for --mode dense; the other modes time dense flash unless "
         "flash=0, then none)", NULL},
        {"sgemm", CLI_SIZE, &sgemm_n, "N      size of the sgemm reference, 0: skip (4096)", NULL},
        {"scaling", CLI_FLAG, &scaling, "       also time the call on one thread", NULL},
        {"causal-ratio", CLI_FLAG, &causal_ratio,
         "       with --causal: also time the call without the mask", NULL},
        {"crossover", CLI_FLAG, &o.crossover,
         "       linear: also find the N where it overtakes dense flash", NULL},
        {"json", CLI_FLAG, &o.json, "       machine-readable output", NULL},
    };
    cli_opt opts[sizeof base_opts / sizeof base_opts[0] + ATTN_MODE_FLAGS];
    size_t nopts = sizeof base_opts / sizeof base_opts[0];
    memcpy(opts, base_opts, sizeof base_opts);
    attn_mode_flag_opts(&o, opts, &nopts);
    int rc = cli_parse(usage_text, opts, nopts, argc, argv, NULL, 0, NULL);
    if (rc)
        return rc < 0 ? CLI_OK : rc;
    if (!seen_h || !seen_n || !seen_d) {
        fprintf(stderr, "kat bench attn: --h, --n and --d are required\n");
        cli_print_usage(stderr, usage_text, opts, nopts);
        return CLI_USAGE;
    }
    if (!o.H || !o.N || !o.D)
        return cli_usage("bench attn", "--%s must be >= 1 (got 0)", !o.H ? "h" : !o.N ? "n" : "d");
    if ((rc = cli_check_threads("bench attn", o.threads)))
        return rc;
    if (o.reps < 1)
        return cli_usage("bench attn", "--reps must be >= 1, got %d", o.reps);
    if (o.warmup < 0)
        return cli_usage("bench attn", "--warmup must be >= 0, got %d", o.warmup);
    if (o.threads < 0)
        return cli_usage("bench attn", "--threads must be >= 0, got %d", o.threads);
    if (baseline < -1 || baseline > 1)
        return cli_usage("bench attn", "--baseline must be 0 or 1, got %d", baseline);
    const attn_mode *mode = attn_mode_find("bench attn", o.mode);
    if (!mode)
        return CLI_USAGE;
    if (causal_ratio && !o.causal)
        return cli_usage("bench attn", "--causal-ratio compares with the causal call: give "
                                       "--causal too");
    if (o.crossover && strcmp(o.mode, "linear") != 0)
        return cli_usage("bench attn", "--crossover is for --mode linear, not --mode %s",
                         o.mode);
    if (o.threads && (rc = cli_set_threads("bench attn", o.threads)))
        return rc;
    int T = kat_num_threads();

    attn_tensors t;
    kat_status st = attn_tensors_random(&o, o.backward, &t);
    if (st == KAT_EINVAL)   /* the shape is the command line's (--h, --hkv, --n, --m, --d) */
        return cli_usage("bench attn", "%s", kat_last_error());
    if (st)
        return cli_fail("bench attn", "tensors", st);
    if (o.backward &&
        (st = kat_attn_dense_forward(&t.q, &t.k, &t.v, &t.o, &t.lse, o.causal, o.scale))) {
        attn_tensors_free(&t);
        return cli_fail("bench attn", "forward for the backward's inputs", st);
    }

    /* The mode, timed, between two measurements of the conditions (load, sgemm). */
    progress prog;   /* on a terminal: the step of the benchmark and the time so far */
    progress_call_start(&prog, stderr, "kat bench attn", o.json, "sgemm %zu^3 before", sgemm_n);
    timing_conditions tc;
    timing_begin(&tc, attn_sgemm_gflops, sgemm_n, T);
    progress_call_next(&prog, "%s %s: %d + %d runs", o.mode, o.backward ? "backward" : "forward",
                       o.warmup, o.reps);
    attn_bench_call call;
    memset(&call, 0, sizeof call);
    double *runs = kat_calloc((size_t)o.reps, sizeof *runs);
    double ms = 0.0, ms1 = 0.0, ms_nc = 0.0, base_ms = 0.0, peak = 0.0;
    kat_clear_error();
    if (!runs || (st = mode->bench(&o, &t, &call))) {
        progress_finish(&prog);
        kat_free(runs);
        attn_tensors_free(&t);
        return attn_mode_fail("bench attn", o.mode, runs ? st : KAT_ENOMEM);
    }
    st = attn_time_median(&call, o.warmup, o.reps, &ms, runs);
    peak = attn_peak_rss_bytes();   /* before the baseline's and sgemm's buffers */
    double flops = call.flops > 0 ? call.flops : attn_dense_flops(&t.desc, o.backward);
    char note[128];
    memcpy(note, call.note, sizeof note);
    /* A mode's own baseline (dense flash, same run) replaces the unfused one. */
    const char *base_name = "unfused";
    if (call.baseline_ms > 0.0) {
        base_ms = call.baseline_ms;
        base_name = call.baseline_name ? call.baseline_name : "dense flash";
        baseline = 1;
    }
    int own_baseline = call.baseline_ms > 0.0;
    /* The unfused N^2 attention is the dense mode's baseline; another mode times it only when
     * asked (--baseline 1): at long N it runs far longer than the call it is compared with. */
    if (baseline < 0)
        baseline = own_baseline || strcmp(o.mode, "dense") == 0;
    double crossover_n = call.crossover_n;
    if (call.cleanup)
        call.cleanup(call.ctx);

    /* The same call on one thread, and without the mask. */
    if (!st && scaling) {
        progress_call_next(&prog, "%s on 1 thread", o.mode);
        kat_set_num_threads(1);
        attn_bench_call c1 = {0};
        if (!(st = mode->bench(&o, &t, &c1))) {
            st = attn_time_median(&c1, o.warmup, o.reps, &ms1, NULL);
            if (c1.cleanup)
                c1.cleanup(c1.ctx);
        }
        kat_set_num_threads(o.threads);
    }
    double flops_nc = 0.0;
    if (!st && causal_ratio && o.causal) {
        attn_opts onc = o;
        onc.causal = 0;
        t.desc.causal = 0;
        progress_call_next(&prog, "%s without the mask", o.mode);
        attn_bench_call c2 = {0};
        if (!(st = mode->bench(&onc, &t, &c2))) {
            st = attn_time_median(&c2, o.warmup, o.reps, &ms_nc, NULL);
            flops_nc = c2.flops > 0 ? c2.flops : attn_dense_flops(&t.desc, o.backward);
            if (c2.cleanup)
                c2.cleanup(c2.ctx);
        }
        t.desc.causal = 1;
    }

    /* The unfused baseline with the same threads (OpenBLAS's too). */
    if (!st && baseline && !own_baseline) {
        attn_bench_call bc = {0};
        progress_call_next(&prog, "unfused baseline: %d + %d runs", o.warmup, o.reps);
        base_ctx bx = {&t, o.backward};
        bc.ctx = &bx;
        bc.fn = base_once;
        st = attn_time_median(&bc, o.warmup, o.reps, &base_ms, NULL);
    }
    progress_call_next(&prog, "sgemm %zu^3 after", sgemm_n);
    timing_end(&tc);
    progress_finish(&prog);
    double sgemm = timing_reference(&tc);   /* 0: none, or it moved beyond the tolerance */
    char conditions[512], warning[512];
    timing_describe(&tc, conditions, sizeof conditions);
    if (st) {
        kat_free(runs);
        attn_tensors_free(&t);
        return cli_fail("bench attn", o.mode, st);
    }

    const kat_attn_desc *d = &t.desc;
    double gflops = flops / (ms * 1e6);
    double pct = timing_share(&tc, gflops);   /* NaN: not to be quoted (the warning says why) */
    timing_share_warning(&tc, gflops, warning, sizeof warning);
    double tensor_bytes = 4.0 * (double)d->D *
                          (2.0 * (double)(d->B * d->H * d->N) + 2.0 * (double)(d->B * d->H_kv * d->M));
    double load[3] = {0, 0, 0};
    if (getloadavg(load, 3) < 0)
        load[0] = load[1] = load[2] = -1;
    if (o.json) {
        cli_json j;
        cli_json_begin(&j, stdout);
        cli_json_str(&j, "mode", o.mode);
        cli_json_str(&j, "note", note);
        cli_json_str(&j, "isa", kat_arch_name());
        cli_json_int(&j, "threads", T);
        cli_json_int(&j, "b", (long long)d->B);
        cli_json_int(&j, "h", (long long)d->H);
        cli_json_int(&j, "h_kv", (long long)d->H_kv);
        cli_json_int(&j, "n", (long long)d->N);
        cli_json_int(&j, "m", (long long)d->M);
        cli_json_int(&j, "d", (long long)d->D);
        cli_json_bool(&j, "causal", d->causal);
        cli_json_bool(&j, "backward", o.backward);
        cli_json_bool(&j, "precise", o.precise);
        cli_json_int(&j, "reps", o.reps);
        cli_json_num(&j, "ms", ms);
        cli_json_array(&j, "ms_runs", runs, (size_t)o.reps);
        cli_json_num(&j, "flops", flops);
        cli_json_num(&j, "gflops", gflops);
        cli_json_num(&j, "sgemm_gflops", sgemm > 0 ? sgemm : NAN);
        cli_json_int(&j, "sgemm_n", (long long)sgemm_n);
        cli_json_num(&j, "pct_sgemm", pct);
        cli_json_str(&j, "warning", warning);
        cli_json_str(&j, "baseline", baseline ? base_name : "none");
        cli_json_num(&j, "baseline_ms", baseline ? base_ms : NAN);
        cli_json_num(&j, "speedup", baseline ? base_ms / ms : NAN);
        if (o.crossover)
            cli_json_num(&j, "crossover_n", crossover_n > 0.0 ? crossover_n : NAN);
        if (scaling) {
            cli_json_num(&j, "ms_1thread", ms1);
            cli_json_num(&j, "thread_speedup", ms1 / ms);
        }
        if (causal_ratio && o.causal) {
            cli_json_num(&j, "ms_noncausal", ms_nc);
            cli_json_num(&j, "causal_speedup", ms_nc / ms);
            cli_json_num(&j, "noncausal_gflops", flops_nc / (ms_nc * 1e6));
        }
        cli_json_num(&j, "peak_rss_mb", peak / 1048576.0);
        cli_json_num(&j, "tensor_mb", tensor_bytes / 1048576.0);
        cli_json_num(&j, "peak_over_tensors", peak / tensor_bytes);
        cli_json_array(&j, "loadavg", load, 3);
        timing_json(&tc, &j, "conditions");
        cli_json_str(&j, "blas", kat_blas_info());
        cli_json_end(&j);
    } else {
        printf("kat bench attn: mode %s, B=%zu H=%zu H_kv=%zu N=%zu M=%zu D=%zu, %s%s\n", o.mode,
               d->B, d->H, d->H_kv, d->N, d->M, d->D, d->causal ? "causal " : "",
               o.backward ? "backward" : "forward");
        printf("  %s\n", note);
        printf("  time      %.3f ms (median of %d)\n", ms, o.reps);
        printf("  rate      %.1f GFLOP/s", gflops);
        if (isfinite(pct))
            printf(" = %.1f%% of sgemm (%.1f GFLOP/s, %zu^3, %d threads, same run)", pct, sgemm,
                   sgemm_n, T);
        printf("\n");
        if (*warning)
            printf("  WARNING   no %% of sgemm: %s\n", warning);
        if (baseline)
            printf("  baseline  %s %.3f ms -> speedup %.2fx\n", base_name, base_ms,
                   base_ms / ms);
        else
            printf("  baseline  none (--baseline 1 times the unfused N^2 attention)\n");
        if (o.crossover && crossover_n > 0.0)
            printf("  crossover N = %.0f\n", crossover_n);
        else if (o.crossover)
            printf("  crossover none: linear never overtook flash up to N = %zu\n",
                   ATTN_CROSSOVER_MAX_N);
        if (scaling)
            printf("  1 thread  %.3f ms -> %d threads are %.2fx faster\n", ms1, T, ms1 / ms);
        if (causal_ratio && o.causal)
            printf("  no mask   %.3f ms -> causal is %.2fx faster\n", ms_nc, ms_nc / ms);
        printf("  memory    peak RSS %.1f MiB = %.2fx the %.1f MiB of q, k, v, o\n",
               peak / 1048576.0, peak / tensor_bytes, tensor_bytes / 1048576.0);
        printf("  conditions %s\n", conditions);
    }
    kat_free(runs);
    attn_tensors_free(&t);
    return CLI_OK;
}

int kat_cmd_bench(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "attn") == 0)
        return bench_attn(argc - 1, argv + 1);
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        printf("usage: kat bench attn [options]   (kat bench attn --help for the options)\n");
        return CLI_OK;
    }
    if (argc < 2)
        return cli_usage("bench", "which benchmark? (the benchmarks: attn)");
    return cli_usage("bench", "unknown benchmark '%s' (the benchmarks: attn)", argv[1]);
}
