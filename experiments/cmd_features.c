/* `kat features`: build a feature map and measure phi(q).psi(k) against the exact kernel on
 * random pairs (q, k with N(0, 1/d) entries; hyperrectangle corners for group maps). */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"
#include "progress.h"

static const char usage[] =
    "usage: kat features --map SPEC --d D [--n N] [--seed S] [--scale s] [--fp32] [--bench]\n"
    "                    [--json]\n"
    "\n"
    "SPEC is one of (the grammar of every kat command that takes a map)\n"
    "  taylor:P, taylorP   order-P Taylor map of exp(s q.k)           (s = --scale, 1/sqrt(d))\n"
    "  poly:EXPR           exact map of a polynomial f(q.k), e.g. poly:'(1+x)^4'\n"
    "  rff:M[:pair]        random Fourier features, Gaussian kernel exp(-|q-k|^2/(2 s^2))\n"
    "                      (s = --scale, d^(1/4))\n"
    "  rff-laplace:M[:pair]  the same for the Laplace kernel exp(-|q-k|_1/s)   (s as for rff)\n"
    "  favor:M[:ortho][:stable]  positive random features (FAVOR+) for exp(s q.k)\n"
    "                      (s = --scale, 1/sqrt(d))\n"
    "  elu1                elu(x) + 1\n"
    "  group[:R]           character map of f(<a, b xor c>) on hyperrectangle corners, rank R\n"
    "                      (0 or absent: exact); --f EXPR (default exp(-x)), --a LIST (all 1)\n"
    "Prints the feature dimension and the max and mean absolute and relative errors over N pairs\n"
    "(relative errors over the pairs whose exact kernel value is not zero).\n"
    "--bench also times the fp32 features and their gradient (vjp) for N rows, median of 7 runs\n"
    "(wall clock and process CPU time), against the GEMM that consumes them in linear attention,\n"
    "phi(K)^T V with V of width d (OpenBLAS sgemm, measured in the same run); group maps are\n"
    "timed on random corners, without a vjp (they have none).";

/* The kernel a map stands for (kat_featmap_spec_kernel computes it), for the output. */
static const char *kernel_text(kat_featmap_kind k)
{
    switch (k) {
    case KAT_FEATMAP_KIND_TAYLOR: return "exp(s q.k)";
    case KAT_FEATMAP_KIND_POLY: return "f(q.k)";
    case KAT_FEATMAP_KIND_RFF: return "exp(-|q-k|_2^2/(2 s^2))";
    case KAT_FEATMAP_KIND_RFF_LAPLACE: return "exp(-|q-k|_1/s)";
    case KAT_FEATMAP_KIND_FAVOR: return "exp(s q.k)";
    case KAT_FEATMAP_KIND_ELU1: return "phi(q).psi(k)";
    case KAT_FEATMAP_KIND_GROUP: return "f(<a, b xor c>)";
    }
    return "";
}

enum { BENCH_REPS = 7 };

typedef struct {
    double apply_ms, vjp_ms, gemm_ms;          /* wall clock */
    double apply_cpu, vjp_cpu, gemm_cpu;       /* process CPU time (all threads), ms */
} bench_result;

/* Median times of the fp32 map (query side), its vjp and the sgemm phi^T V over n rows: rows
 * with N(0, 1/d) entries, or random corners of the box with these sides (group maps take
 * nothing else). */
static kat_status bench_map(const kat_featmap *fm, size_t n, uint64_t seed,
                            const double *corner_sides, bench_result *out)
{
    size_t d = kat_featmap_in_dim(fm), D = kat_featmap_out_dim(fm);
    if (n > (size_t)INT32_MAX || D > (size_t)INT32_MAX || d > (size_t)INT32_MAX)
        return KAT_ERANGE;
    float *x = kat_calloc(n, 2 * d * sizeof(float));
    float *f = kat_calloc(n, 2 * D * sizeof(float));
    float *S = kat_calloc(D, d * sizeof(float));
    kat_rng *rng = NULL;
    kat_status st = x && f && S ? kat_rng_create(seed, &rng) : KAT_ENOMEM;
    float *v = x + n * d, *g = f + n * D;   /* V doubles as the vjp's dx */
    const int has_vjp = kat_featmap_has_vjp(fm);
    for (size_t i = 0; !st && i < n * d; i++)
        x[i] = corner_sides ? (kat_rng_uniform(rng) < 0.5 ? 0.0f : (float)corner_sides[i % d])
                            : (float)kat_rng_gaussian(rng, 1.0 / sqrt((double)d));
    for (size_t i = 0; !st && i < n * D; i++)
        g[i] = (float)kat_rng_gaussian(rng, 1.0);
    double t[6][BENCH_REPS];
    for (int r = -1; r < BENCH_REPS && !st; r++) {   /* r = -1 warms up */
        double c0 = timing_cpu_now(), t0 = timing_now();
        st = kat_featmap_apply_f32(fm, KAT_SIDE_QUERY, n, x, d, f, D);
        double c1 = timing_cpu_now(), t1 = timing_now();
        if (!st && has_vjp)   /* a map without a gradient (group maps) times the map only */
            st = kat_featmap_vjp_f32(fm, KAT_SIDE_QUERY, n, x, d, g, D, v, d);
        double c2 = timing_cpu_now(), t2 = timing_now();
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)D, (int)d, (int)n, 1.0f, f,
                    (int)D, x, (int)d, 0.0f, S, (int)d);
        double c3 = timing_cpu_now(), t3 = timing_now();
        if (r >= 0) {
            t[0][r] = t1 - t0;
            t[1][r] = t2 - t1;
            t[2][r] = t3 - t2;
            t[3][r] = c1 - c0;
            t[4][r] = c2 - c1;
            t[5][r] = c3 - c2;
        }
    }
    if (!st) {
        double med[6];
        for (int k = 0; k < 6; k++)
            med[k] = 1e3 * timing_median(t[k], BENCH_REPS);
        *out = (bench_result){med[0], med[1], med[2], med[3], med[4], med[5]};
        if (!has_vjp)   /* not measured: NaN, which the output shows as null / "none" */
            out->vjp_ms = out->vjp_cpu = NAN;
    }
    kat_rng_destroy(rng);
    kat_free(x);
    kat_free(f);
    kat_free(S);
    return st;
}

int kat_cmd_features(int argc, char **argv)
{
    const char *spec_s = NULL, *fexpr = NULL, *alist = NULL;
    size_t d = 0, n = 1000;
    uint64_t seed = KAT_FEATMAP_DEFAULT_SEED;
    double scale = 0.0;
    int json = 0, fp32 = 0, bench = 0, have_scale = 0, have_d = 0, have_f = 0, have_a = 0;
    const cli_opt opts[] = {
        {"map", CLI_STR, &spec_s, "SPEC  the feature map (see above)", NULL},
        {"d", CLI_SIZE, &d, "D     input dimension", &have_d},
        {"n", CLI_SIZE, &n, "N     number of (q, k) pairs (default 1000)", NULL},
        {"seed", CLI_U64, &seed, "S     seed of the map and the data (default 0)", NULL},
        {"scale", CLI_DOUBLE, &scale, "s     kernel scale or bandwidth (see above)", &have_scale},
        {"f", CLI_STR, &fexpr, "EXPR  group maps: the function of the l1 distance", &have_f},
        {"a", CLI_STR, &alist, "LIST  group maps: the sides a_1,...,a_d", &have_a},
        {"fp32", CLI_FLAG, &fp32, "compute the features in fp32 (the attention engine's path)",
         NULL},
        {"bench", CLI_FLAG, &bench, "also time the fp32 map and vjp against sgemm", NULL},
        {"json", CLI_FLAG, &json, "machine-readable output", NULL},
    };
    const size_t nopts = sizeof opts / sizeof opts[0];
    int rc = cli_parse(usage, opts, nopts, argc, argv, NULL, 0, NULL);
    if (rc)
        return rc < 0 ? CLI_OK : rc;
    kat_featmap_spec ms;
    if (!spec_s) {
        fprintf(stderr, "kat features: --map is required\n");
        goto usage_error;
    }
    kat_status st = kat_featmap_spec_parse(spec_s, &ms);
    if (st == KAT_EPARSE) {
        fprintf(stderr, "kat features: --map: %s\n", kat_last_error());
        goto usage_error;
    }
    if (st == KAT_EINVAL)   /* a value out of range, e.g. favor:0 */
        return cli_usage("features", "--map: %s", kat_last_error());
    if (st)
        return cli_fail("features", "--map", st);
    const int group = ms.kind == KAT_FEATMAP_KIND_GROUP;
    double *a = NULL;
    size_t na = 0;
    if (group && have_a) {
        if (cli_parse_option_list("features", "--a", alist, &a, &na))
            goto usage_error;
        if (!have_d)
            d = na, have_d = 1;
        if (na != d) {
            fprintf(stderr, "kat features: --a has %zu sides but --d is %zu\n", na, d);
            kat_free(a);
            goto usage_error;
        }
    }
    if (!have_d) {
        fprintf(stderr, "kat features: --d is required\n");
        goto usage_error;
    }
    if (!group && (have_f || have_a)) {
        fprintf(stderr, "kat features: --f and --a apply to group maps only\n");
        goto usage_error;
    }
    const int has_scale = kat_featmap_spec_scale(&ms, d) != 0.0;
    if (!has_scale && have_scale) {
        fprintf(stderr, "kat features: --scale does not apply to %s maps\n",
                kat_featmap_kind_name(ms.kind));
        kat_free(a);
        goto usage_error;
    }
    if (n == 0) {
        fprintf(stderr, "kat features: --n must be >= 1, got 0\n");
        kat_free(a);
        goto usage_error;
    }
    if (have_scale && scale == 0.0) {   /* 0 would select the default */
        fprintf(stderr, "kat features: --scale must be > 0, got 0\n");
        kat_free(a);
        goto usage_error;
    }
    ms.scale = have_scale ? scale : 0.0;
    scale = kat_featmap_spec_scale(&ms, d);

    kat_fn *f = NULL;
    kat_featmap *fm = NULL;
    const char *what = "building the map";
    if (group) {   /* the corners need the sides, the output the name of f */
        if ((rc = cli_parse_fn("features", "--f", fexpr ? fexpr : "exp(-x)", &f))) {
            kat_free(a);
            return rc;
        }
        if (!a && d <= KAT_GROUP_MAX_D) {
            a = kat_malloc((d ? d : 1) * sizeof *a);
            if (!a)
                st = KAT_ENOMEM;
            for (size_t t = 0; a && t < d; t++)
                a[t] = 1.0;
        }
        ms.group_f = f;
        ms.group_sides = a;
    } else if (ms.kind == KAT_FEATMAP_KIND_POLY) {   /* only for the output's f = ... */
        what = "parsing the polynomial";
        st = kat_fn_parse(ms.expr, &f, NULL);
    }
    if (!st) {
        what = "building the map";
        st = kat_featmap_spec_create(&ms, d, seed, &fm);
    }
    if (st) {
        kat_fn_destroy(f);
        kat_free(a);
        if (st == KAT_EPARSE)   /* poly:EXPR whose EXPR does not parse */
            return cli_usage("features", "--map '%s': %s", spec_s, kat_last_error());
        if (st == KAT_EINVAL || st == KAT_ERANGE)   /* the map, --d and --scale are all the
                                                     * command line's */
            return cli_usage("features", "%s", kat_last_error());
        return cli_fail("features", what, st);
    }
    size_t D = kat_featmap_out_dim(fm);

    /* Rows per block, so the features of a block stay below ~32 MB. */
    size_t blk = (size_t)4 << 20;
    blk = D >= blk ? 1 : blk / D;
    if (blk > n)
        blk = n;
    kat_rng *rng = NULL;
    double *q = kat_calloc(2 * blk, d * sizeof(double));
    double *fq = kat_calloc(2 * blk, D * sizeof(double));
    float *q32 = fp32 ? kat_calloc(2 * blk, (d + D) * sizeof(float)) : NULL;
    if (!q || !fq || (fp32 && !q32)) {
        st = KAT_ENOMEM;
        what = "allocating buffers";
    } else {
        st = kat_rng_create(seed + 0x9E3779B97F4A7C15ull, &rng);
        what = "seeding";
    }
    double *k = q + blk * d, *fk = fq + blk * D;
    double max_abs = 0.0, sum_abs = 0.0, max_rel = 0.0, sum_rel = 0.0;
    size_t n_rel = 0;
    double sd = 1.0 / sqrt((double)d);
    for (size_t i0 = 0; i0 < n && st == KAT_OK; i0 += blk) {
        size_t nb = n - i0 < blk ? n - i0 : blk;
        for (size_t i = 0; i < 2 * nb * d; i++) {
            double v;
            if (group) {   /* q and k interleaved row blocks: corner b or c */
                size_t t = i % d;
                v = kat_rng_uniform(rng) < 0.5 ? 0.0 : a[t];
            } else {
                v = kat_rng_gaussian(rng, sd);
            }
            if (fp32)
                v = (float)v;   /* the exact kernel then sees the same inputs as the map */
            *(i < nb * d ? &q[i] : &k[i - nb * d]) = v;
        }
        what = "applying the map";
        if (fp32) {
            float *x32 = q32, *f32 = q32 + 2 * blk * d;
            for (int side = 0; side < 2 && !st; side++) {
                const double *x = side ? k : q;
                double *out = side ? fk : fq;
                for (size_t i = 0; i < nb * d; i++)
                    x32[i] = (float)x[i];
                st = kat_featmap_apply_f32(fm, (kat_side)side, nb, x32, d, f32, D);
                for (size_t i = 0; !st && i < nb * D; i++)
                    out[i] = f32[i];
            }
        } else {
            kat_dmat Q = {nb, d, d, q}, K = {nb, d, d, k}, FQ = {nb, D, D, fq}, FK = {nb, D, D, fk};
            st = kat_featmap_apply(fm, KAT_SIDE_QUERY, &Q, &FQ);
            if (!st)
                st = kat_featmap_apply(fm, KAT_SIDE_KEY, &K, &FK);
        }
        for (size_t i = 0; i < nb && !st; i++) {
            const double *qi = q + i * d, *ki = k + i * d;
            double approx = 0.0, exact;
            for (size_t j = 0; j < D; j++)
                approx += fq[i * D + j] * fk[i * D + j];
            if ((st = kat_featmap_spec_kernel(&ms, fm, qi, ki, &exact))) {
                what = "computing the exact kernel";
                break;
            }
            double ae = fabs(approx - exact);
            max_abs = fmax(max_abs, ae);
            sum_abs += ae;
            if (exact != 0.0) {   /* relative errors over the pairs with a nonzero kernel */
                max_rel = fmax(max_rel, ae / fabs(exact));
                sum_rel += ae / fabs(exact);
                n_rel++;
            }
        }
    }
    kat_rng_destroy(rng);
    kat_free(q);
    kat_free(fq);
    kat_free(q32);
    if (st) {
        kat_featmap_destroy(fm);
        kat_fn_destroy(f);
        kat_free(a);
        return cli_fail("features", what, st);
    }
    bench_result br = {0, 0, 0, 0, 0, 0};
    progress call;   /* --bench: 7 timed runs of each of three calls over n rows */
    progress_call_start(&call, stderr, "kat features", json || !bench, "--bench: %zu rows",
                        n);
    if (bench)
        st = bench_map(fm, n, seed + 1, group ? a : NULL, &br);
    progress_finish(&call);
    if (bench && st) {
        kat_featmap_destroy(fm);
        kat_fn_destroy(f);
        kat_free(a);
        return cli_fail("features", "benchmarking", st);
    }
    unsigned flags = kat_featmap_flags(fm);
    const char *kname = f ? kat_fn_name(f) : kernel_text(ms.kind);
    if (json) {
        cli_json j;
        cli_json_begin(&j, stdout);
        cli_json_str(&j, "map", spec_s);
        cli_json_str(&j, "name", kat_featmap_name(fm));
        cli_json_str(&j, "kernel", kernel_text(ms.kind));
        if (f)
            cli_json_str(&j, "f", kat_fn_name(f));
        cli_json_int(&j, "d", (long long)d);
        cli_json_int(&j, "n", (long long)n);
        cli_json_int(&j, "seed", (long long)seed);
        if (has_scale)
            cli_json_num(&j, "scale", scale);
        cli_json_str(&j, "precision", fp32 ? "fp32" : "fp64");
        cli_json_int(&j, "dim", (long long)D);
        cli_json_bool(&j, "exact", (flags & KAT_FEATMAP_EXACT) != 0);
        cli_json_bool(&j, "positive", (flags & KAT_FEATMAP_POSITIVE) != 0);
        cli_json_num(&j, "max_abs_err", max_abs);
        cli_json_num(&j, "mean_abs_err", sum_abs / n);
        cli_json_num(&j, "max_rel_err", max_rel);
        cli_json_num(&j, "mean_rel_err", n_rel ? sum_rel / n_rel : 0.0);
        cli_json_int(&j, "rel_err_pairs", (long long)n_rel);
        if (bench) {
            cli_json_open(&j, "bench", '{');
            cli_json_int(&j, "rows", (long long)n);
            cli_json_num(&j, "apply_f32_ms", br.apply_ms);
            cli_json_num(&j, "vjp_f32_ms", br.vjp_ms);
            cli_json_num(&j, "sgemm_phiT_v_ms", br.gemm_ms);
            cli_json_num(&j, "apply_over_sgemm", br.apply_ms / br.gemm_ms);
            cli_json_num(&j, "vjp_over_sgemm", br.vjp_ms / br.gemm_ms);
            cli_json_num(&j, "apply_f32_cpu_ms", br.apply_cpu);
            cli_json_num(&j, "vjp_f32_cpu_ms", br.vjp_cpu);
            cli_json_num(&j, "sgemm_phiT_v_cpu_ms", br.gemm_cpu);
            cli_json_num(&j, "apply_over_sgemm_cpu", br.apply_cpu / br.gemm_cpu);
            cli_json_num(&j, "vjp_over_sgemm_cpu", br.vjp_cpu / br.gemm_cpu);
            cli_json_str(&j, "blas", kat_blas_info());
            cli_json_close(&j, '{');
        }
        cli_json_end(&j);
    } else {
        printf("map: %s (%s%s%s)\n", spec_s, kat_featmap_name(fm),
               flags & KAT_FEATMAP_EXACT ? ", exact" : "",
               flags & KAT_FEATMAP_POSITIVE ? ", positive" : "");
        printf("kernel: %s", kernel_text(ms.kind));
        if (f)
            printf(", f = %s\n", kname);
        else if (has_scale)
            printf(", s = %.6g\n", scale);
        else
            printf("\n");
        printf("d: %zu  pairs: %zu  seed: %llu  precision: %s\n", d, n,
               (unsigned long long)seed, fp32 ? "fp32" : "fp64");
        printf("dim: %zu\n", D);
        printf("max_abs_err:  %.3e\nmean_abs_err: %.3e\nmax_rel_err:  %.3e\nmean_rel_err: %.3e\n",
               max_abs, sum_abs / n, max_rel, n_rel ? sum_rel / n_rel : 0.0);
        if (n_rel < n)
            printf("(relative errors over the %zu of %zu pairs whose kernel value is nonzero)\n",
                   n_rel, n);
        if (bench) {
            printf("bench: %zu rows, fp32, median of %d, %s\n", n, BENCH_REPS, kat_blas_info());
            if (isnan(br.vjp_ms)) {
                printf("  wall ms: map %.3f, sgemm phi^T V %.3f; map/sgemm %.3f (the map has "
                       "no vjp)\n", br.apply_ms, br.gemm_ms, br.apply_ms / br.gemm_ms);
                printf("  cpu ms:  map %.3f, sgemm phi^T V %.3f; map/sgemm %.3f\n",
                       br.apply_cpu, br.gemm_cpu, br.apply_cpu / br.gemm_cpu);
            } else {
                printf("  wall ms: map %.3f, vjp %.3f, sgemm phi^T V %.3f; map/sgemm %.3f, "
                       "vjp/sgemm %.3f\n", br.apply_ms, br.vjp_ms, br.gemm_ms,
                       br.apply_ms / br.gemm_ms, br.vjp_ms / br.gemm_ms);
                printf("  cpu ms:  map %.3f, vjp %.3f, sgemm phi^T V %.3f; map/sgemm %.3f, "
                       "vjp/sgemm %.3f\n", br.apply_cpu, br.vjp_cpu, br.gemm_cpu,
                       br.apply_cpu / br.gemm_cpu, br.vjp_cpu / br.gemm_cpu);
            }
        }
    }
    kat_featmap_destroy(fm);
    kat_fn_destroy(f);
    kat_free(a);
    return CLI_OK;
usage_error:
    cli_print_usage(stderr, usage, opts, nopts);
    return CLI_USAGE;
}
