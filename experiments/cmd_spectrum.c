/* `kat spectrum`: eigenvalues of f(distance) kernels on groups (hyperrectangle corners, the
 * hypercube, Z_N) from their characters, and on a user's point set by a dense eigensolver. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"
#include "progress.h"

static const char usage[] =
    "usage: kat spectrum KIND --f EXPR [options] [--json]\n"
    "\n"
    "KIND is one of\n"
    "  hyperrect  D_f = [f(<a, b xor c>)] on the 2^d corners of a box with sides a, by the\n"
    "             Walsh-Hadamard transform: --a a1,...,ad, or --d D for sides drawn\n"
    "             uniformly from [0.5, 1.5] with --seed; --check also runs dense dsyevd\n"
    "  hypercube  the same with a = 1, through Krawtchouk polynomials: --d D; prints the d+1\n"
    "             distinct eigenvalues with their multiplicities C(d, j)\n"
    "  cyclic     [f(delta(i-j))] on Z_N, delta(k) = min(k, N-k), through an FFT: --N N\n"
    "  points     [f(dist(x_i, x_j))] on the rows of --points FILE (.npy, .csv, .txt) with\n"
    "             --metric l1|l2|l2sq|inner (default l2); --mds gives the spectrum of\n"
    "             -1/2 P D P with D = f(dist) (Schoenberg's test: all >= 0 iff D is Euclidean)\n"
    "Eigenvalues are printed in descending order (JSON key \"eigenvalues\").";

typedef struct {
    double v;
    size_t i;
} ranked;

static int by_value_desc(const void *pa, const void *pb)
{
    const ranked *a = pa, *b = pb;
    if (a->v != b->v)
        return a->v > b->v ? -1 : 1;
    return a->i < b->i ? -1 : a->i > b->i;
}

/* Sort values descending, remembering where each came from. */
static ranked *rank_values(const double *v, size_t n)
{
    ranked *r = kat_calloc(n ? n : 1, sizeof *r);
    if (!r)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        r[i].v = v[i];
        r[i].i = i;
    }
    qsort(r, n, sizeof *r, by_value_desc);
    return r;
}

typedef struct {
    const char *kind, *fname;
    int json;
    size_t top;
    double seconds;
} out_ctx;

/* Counts under a tolerance; weights (may be NULL) are multiplicities. */
static void count_signs(const ranked *r, const double *mult, size_t n, double tol, double *pos,
                        double *neg)
{
    *pos = *neg = 0;
    for (size_t i = 0; i < n; i++) {
        double w = mult ? mult[r[i].i] : 1.0;
        *pos += r[i].v > tol ? w : 0;
        *neg += r[i].v < -tol ? w : 0;
    }
}

static void print_summary_text(const out_ctx *o, const ranked *r, size_t n, double tol,
                               double pos, double neg, double size)
{
    printf("%s spectrum of f = %s: %.17g x %.17g\n", o->kind, o->fname, size, size);
    printf("rank %.17g (tol %.3g): %.17g positive, %.17g negative, %.17g zero\n", pos + neg, tol,
           pos, neg, size - pos - neg);
    if (n)
        printf("max %.10g, min %.10g\n", r[0].v, r[n - 1].v);
}

static void json_summary(cli_json *j, const out_ctx *o, const ranked *r, size_t n, double tol,
                         double pos, double neg, double size)
{
    cli_json_str(j, "kind", o->kind);
    cli_json_str(j, "f", o->fname);
    cli_json_num(j, "n", size);
    cli_json_num(j, "rank", pos + neg);
    cli_json_num(j, "tol", tol);
    cli_json_num(j, "n_positive", pos);
    cli_json_num(j, "n_negative", neg);
    cli_json_num(j, "max_eigenvalue", n ? r[0].v : NAN);
    cli_json_num(j, "min_eigenvalue", n ? r[n - 1].v : NAN);
}

static void json_eigenvalues(cli_json *j, const ranked *r, size_t n)
{
    cli_json_open(j, "eigenvalues", '[');
    for (size_t i = 0; i < n; i++)
        cli_json_num(j, NULL, r[i].v);
    cli_json_close(j, '[');
}

/* The group spectra compute from the command line alone (f, the sides, d, N): a value they
 * refuse (KAT_EINVAL) or cannot size (KAT_ERANGE) is a usage error, anything else a failure
 * of the computation. */
static int group_fail(const char *kind, kat_status st)
{
    if (st == KAT_EINVAL || st == KAT_ERANGE)
        return cli_usage("spectrum", "%s: %s", kind, kat_last_error());
    return cli_fail("spectrum", kind, st);
}

/* ---- hyperrect ------------------------------------------------------------------------------ */

static int run_hyperrect(out_ctx *o, const kat_fn *f, const double *a, size_t d, int check)
{
    size_t n = (size_t)1 << (d <= KAT_GROUP_MAX_D ? d : 0);
    if (d > KAT_GROUP_MAX_D)   /* the library's message says the size */
        return group_fail("hyperrect", kat_group_hyperrect_values(f, a, d, NULL));
    double *lam = kat_calloc(n, 2 * sizeof(double));
    if (!lam)
        return cli_fail("spectrum", "hyperrect", KAT_ENOMEM);
    double *g = lam + n;
    double t0 = cli_now();
    kat_status st = kat_group_hyperrect_values(f, a, d, g);
    if (!st) {
        memcpy(lam, g, n * sizeof(double));
        st = kat_group_wht(lam, d);
    }
    o->seconds = cli_now() - t0;
    if (st) {
        kat_free(lam);
        return group_fail("hyperrect", st);
    }
    double tol = kat_group_spectrum_tol(g, d), dense_diff = NAN, scale = 0;
    ranked *r = rank_values(lam, n);
    if (!r) {
        kat_free(lam);
        return cli_fail("spectrum", "hyperrect", KAT_ENOMEM);
    }
    if (check) {
        /* Dense cross-check: the same matrix through LAPACK dsyevd. */
        kat_dmat D = {0};
        double *w = NULL;
        progress call;
        progress_call_start(&call, stderr, "kat spectrum", o->json, "--check: dense "
                            "eigenvalues of %zu x %zu", n, n);
        st = kat_dmat_alloc(n, n, &D);
        if (!st && !(w = kat_calloc(n, sizeof(double))))
            st = KAT_ENOMEM;
        if (!st)
            st = kat_group_hyperrect_matrix(f, a, d, &D);
        if (!st)
            st = kat_metric_sym_eigenvalues(&D, w);
        progress_finish(&call);
        if (!st) {
            dense_diff = 0;
            for (size_t i = 0; i < n; i++) {
                dense_diff = fmax(dense_diff, fabs(w[i] - r[i].v));
                scale = fmax(scale, fabs(w[i]));
            }
        }
        kat_free(w);
        kat_dmat_free(&D);
        if (st) {
            kat_free(r);
            kat_free(lam);
            return cli_fail("spectrum", "hyperrect --check", st);
        }
    }
    double pos, neg;
    count_signs(r, NULL, n, tol, &pos, &neg);
    if (o->json) {
        cli_json j;
        cli_json_begin(&j, stdout);
        json_summary(&j, o, r, n, tol, pos, neg, (double)n);
        cli_json_int(&j, "d", (long long)d);
        cli_json_array(&j, "a", a, d);
        if (check) {
            cli_json_num(&j, "dense_max_abs_diff", dense_diff);
            cli_json_num(&j, "dense_rel_diff", scale > 0 ? dense_diff / scale : 0.0);
        }
        cli_json_num(&j, "seconds", o->seconds);
        json_eigenvalues(&j, r, n);
        cli_json_open(&j, "subsets", '[');
        for (size_t i = 0; i < n; i++)
            cli_json_int(&j, NULL, (long long)r[i].i);
        cli_json_close(&j, '[');
        cli_json_end(&j);
    } else {
        print_summary_text(o, r, n, tol, pos, neg, (double)n);
        printf("sides a =");
        for (size_t t = 0; t < d; t++)
            printf(" %.6g", a[t]);
        printf("\n");
        if (check)
            printf("dense dsyevd: max |difference| %.3g (%.3g relative)\n", dense_diff,
                   scale > 0 ? dense_diff / scale : 0.0);
        size_t show = o->top && o->top < n ? o->top : n;
        printf("eigenvalues (descending%s), with their character S as a bitmask:\n",
               show < n ? ", --top 0 for all" : "");
        for (size_t i = 0; i < show; i++)
            printf("  %#8zx  % .17g\n", r[i].i, r[i].v);
    }
    kat_free(r);
    kat_free(lam);
    return CLI_OK;
}

/* ---- hypercube ------------------------------------------------------------------------------ */

static int run_hypercube(out_ctx *o, const kat_fn *f, size_t d)
{
    double *lam = kat_calloc(d + 1, 3 * sizeof(double));
    if (!lam)
        return cli_fail("spectrum", "hypercube", KAT_ENOMEM);
    double *mult = lam + d + 1, *fk = mult + d + 1;
    double t0 = cli_now();
    kat_status st = kat_group_hypercube_spectrum(f, d, lam, mult);
    o->seconds = cli_now() - t0;
    if (st) {
        kat_free(lam);
        return group_fail("hypercube", st);
    }
    /* The same rounding allowance as the WHT: (d + 1) eps sum_k C(d, k) |f(k)|. */
    double s = 0, size = 0;
    for (size_t k = 0; k <= d; k++)
        fk[k] = (double)k;
    kat_fn_eval_unchecked(f, fk, fk, d + 1);
    for (size_t k = 0; k <= d; k++) {
        s += mult[k] * fabs(fk[k]);
        size += mult[k];
    }
    double tol = (double)(d + 1) * DBL_EPSILON * s;
    ranked *r = rank_values(lam, d + 1);
    if (!r) {
        kat_free(lam);
        return cli_fail("spectrum", "hypercube", KAT_ENOMEM);
    }
    double pos, neg;
    count_signs(r, mult, d + 1, tol, &pos, &neg);
    if (o->json) {
        cli_json j;
        cli_json_begin(&j, stdout);
        json_summary(&j, o, r, d + 1, tol, pos, neg, size);
        cli_json_int(&j, "d", (long long)d);
        cli_json_num(&j, "seconds", o->seconds);
        json_eigenvalues(&j, r, d + 1);
        cli_json_open(&j, "multiplicities", '[');
        for (size_t i = 0; i <= d; i++)
            cli_json_num(&j, NULL, mult[r[i].i]);
        cli_json_close(&j, '[');
        cli_json_open(&j, "levels", '[');
        for (size_t i = 0; i <= d; i++)
            cli_json_int(&j, NULL, (long long)r[i].i);
        cli_json_close(&j, '[');
        cli_json_end(&j);
    } else {
        print_summary_text(o, r, d + 1, tol, pos, neg, size);
        printf("distinct eigenvalues (descending): |S| = j, multiplicity C(%zu, j), eigenvalue\n",
               d);
        size_t show = o->top && o->top < d + 1 ? o->top : d + 1;
        for (size_t i = 0; i < show; i++)
            printf("  j = %-5zu %-24.17g % .17g\n", r[i].i, mult[r[i].i], r[i].v);
    }
    kat_free(r);
    kat_free(lam);
    return CLI_OK;
}

/* ---- cyclic --------------------------------------------------------------------------------- */

static int run_cyclic(out_ctx *o, const kat_fn *f, size_t N)
{
    double *lam = kat_calloc(N ? N : 1, 2 * sizeof(double));
    if (!lam)
        return cli_fail("spectrum", "cyclic", KAT_ENOMEM);
    double *c = lam + N;
    double t0 = cli_now();
    kat_status st = kat_group_cyclic_spectrum(f, N, lam);
    o->seconds = cli_now() - t0;
    if (st) {
        kat_free(lam);
        return group_fail("cyclic", st);
    }
    double s = 0;
    for (size_t k = 0; k < N; k++)
        c[k] = (double)(k <= N - k ? k : N - k);
    kat_fn_eval_unchecked(f, c, c, N);
    for (size_t k = 0; k < N; k++)
        s += fabs(c[k]);
    /* An FFT of size N: error about log2(N) eps sum|c|; allow 4 (log2 N + 1). */
    double tol = 4.0 * (log2((double)N) + 1.0) * DBL_EPSILON * s;
    ranked *r = rank_values(lam, N);
    if (!r) {
        kat_free(lam);
        return cli_fail("spectrum", "cyclic", KAT_ENOMEM);
    }
    double pos, neg;
    count_signs(r, NULL, N, tol, &pos, &neg);
    if (o->json) {
        cli_json j;
        cli_json_begin(&j, stdout);
        json_summary(&j, o, r, N, tol, pos, neg, (double)N);
        cli_json_int(&j, "N", (long long)N);
        cli_json_num(&j, "seconds", o->seconds);
        json_eigenvalues(&j, r, N);
        cli_json_open(&j, "frequencies", '[');
        for (size_t i = 0; i < N; i++)
            cli_json_int(&j, NULL, (long long)r[i].i);
        cli_json_close(&j, '[');
        cli_json_end(&j);
    } else {
        print_summary_text(o, r, N, tol, pos, neg, (double)N);
        size_t show = o->top && o->top < N ? o->top : N;
        printf("eigenvalues (descending%s): frequency m, eigenvalue\n",
               show < N ? ", --top 0 for all" : "");
        for (size_t i = 0; i < show; i++)
            printf("  m = %-8zu % .17g\n", r[i].i, r[i].v);
    }
    kat_free(r);
    kat_free(lam);
    return CLI_OK;
}

/* ---- points --------------------------------------------------------------------------------- */

static int run_points(out_ctx *o, const kat_fn *f, const char *path, kat_metric metric, int mds)
{
    kat_dmat X = {0}, K = {0};
    kat_status st = kat_matrix_read(path, &X);
    if (st)
        return cli_read_fail("spectrum", "--points", path, st);
    int rc = cli_check_nonempty("spectrum", "--points", path, &X);
    if (rc) {
        kat_dmat_free(&X);
        return rc;
    }
    size_t n = X.rows;
    double *w = NULL;
    kat_metric_pd_report rep = {0};
    progress call;
    progress_call_start(&call, stderr, "kat spectrum", o->json, "eigenvalues of the %zu x %zu "
                        "matrix", n, n);
    double t0 = cli_now();
    if (!(st = kat_dmat_alloc(n, n, &K)) &&
        !(w = kat_calloc(n ? n : 1, sizeof(double))))
        st = KAT_ENOMEM;
    if (!st && mds) {
        if (!(st = kat_metric_kernel(f, &X, metric, &K)))
            st = kat_metric_mds_spectrum(&K, w);
    } else if (!st) {
        st = kat_metric_pd_check(f, &X, metric, &rep, w);
    }
    o->seconds = cli_now() - t0;
    progress_finish(&call);
    kat_dmat_free(&X);
    kat_dmat_free(&K);
    if (st) {
        kat_free(w);
        return cli_fail("spectrum", "points", st);
    }
    ranked *r = rank_values(w, n);
    if (!r) {
        kat_free(w);
        return cli_fail("spectrum", "points", KAT_ENOMEM);
    }
    double scale = n ? fmax(fabs(r[0].v), fabs(r[n - 1].v)) : 0;
    double tol = (double)n * DBL_EPSILON * scale, pos, neg;
    count_signs(r, NULL, n, tol, &pos, &neg);
    if (o->json) {
        cli_json j;
        cli_json_begin(&j, stdout);
        json_summary(&j, o, r, n, tol, pos, neg, (double)n);
        cli_json_str(&j, "metric", kat_metric_name(metric));
        cli_json_bool(&j, "mds", mds);
        if (mds)
            cli_json_bool(&j, "euclidean", neg == 0);
        else
            cli_json_bool(&j, "cholesky_pd", rep.cholesky_pd);
        cli_json_num(&j, "seconds", o->seconds);
        json_eigenvalues(&j, r, n);
        cli_json_end(&j);
    } else {
        print_summary_text(o, r, n, tol, pos, neg, (double)n);
        if (mds)
            printf("-1/2 P D P with D = f(%s): %s\n", kat_metric_name(metric),
                   neg == 0 ? "positive semidefinite (D is Euclidean)"
                            : "indefinite (D is not Euclidean)");
        else
            printf("Cholesky: %s\n", rep.cholesky_pd ? "positive definite" : "fails");
        size_t show = o->top && o->top < n ? o->top : n;
        printf("eigenvalues (descending%s):\n", show < n ? ", --top 0 for all" : "");
        for (size_t i = 0; i < show; i++)
            printf("  % .17g\n", r[i].v);
    }
    kat_free(r);
    kat_free(w);
    return CLI_OK;
}

int kat_cmd_spectrum(int argc, char **argv)
{
    const char *expr = NULL, *alist = NULL, *points = NULL, *metric_name = "l2";
    size_t d = 0, N = 0, top = 16;
    uint64_t seed = 1;
    int json = 0, mds = 0, check = 0, seen_d = 0, seen_N = 0, seen_a = 0, seen_points = 0;
    int seen_metric = 0, seen_seed = 0;
    const cli_opt opts[] = {
        {"f", CLI_STR, &expr, "EXPR  the function of the distance, e.g. 'exp(-x)', 'sqrt(x)'",
         NULL},
        {"a", CLI_STR, &alist, "LIST  hyperrect: the sides a1,...,ad (each > 0)", &seen_a},
        {"d", CLI_SIZE, &d, "D     hypercube: dimension; hyperrect: random sides", &seen_d},
        {"N", CLI_SIZE, &N, "N     cyclic: the group order", &seen_N},
        {"points", CLI_STR, &points, "FILE  points: one point per row (.npy, .csv or .txt)",
         &seen_points},
        {"metric", CLI_STR, &metric_name, "M     points: l1, l2 (default), l2sq or inner",
         &seen_metric},
        {"mds", CLI_FLAG, &mds, "points: spectrum of -1/2 P f(D) P (Schoenberg)", NULL},
        {"check", CLI_FLAG, &check, "hyperrect: cross-check against dense dsyevd (d <= 13)",
         NULL},
        {"seed", CLI_U64, &seed, "S     hyperrect --d: seed of the random sides (default 1)",
         &seen_seed},
        {"top", CLI_SIZE, &top, "K     text output: show the first K eigenvalues (0: all)",
         NULL},
        {"json", CLI_FLAG, &json, "machine-readable output (all eigenvalues)", NULL},
    };
    const size_t nopts = sizeof opts / sizeof opts[0];
    char *pos[1];
    size_t npos = 0;
    int rc = cli_parse(usage, opts, nopts, argc, argv, pos, 1, &npos);
    if (rc)
        return rc < 0 ? CLI_OK : rc;
    const char *kind = npos ? pos[0] : NULL;
    const char *problem = NULL;
    int is_rect = kind && !strcmp(kind, "hyperrect"), is_cube = kind && !strcmp(kind, "hypercube"),
        is_cyc = kind && !strcmp(kind, "cyclic"), is_pts = kind && !strcmp(kind, "points");
    kat_metric metric = KAT_METRIC_L2;
    char bad_name[200];
    if (!kind) {
        problem = "a KIND (hyperrect, hypercube, cyclic or points) is required";
    } else if (!is_rect && !is_cube && !is_cyc && !is_pts) {
        snprintf(bad_name, sizeof bad_name,
                 "KIND must be hyperrect, hypercube, cyclic or points, not '%s'", kind);
        problem = bad_name;
    } else if (!expr)
        problem = "--f EXPR is required";
    else if (is_rect && !alist && !seen_d)
        problem = "hyperrect needs --a LIST or --d D";
    else if (is_cube && !seen_d)
        problem = "hypercube needs --d D";
    else if (is_cyc && !seen_N)
        problem = "cyclic needs --N N";
    else if (is_pts && !points)
        problem = "points needs --points FILE";
    else if (is_pts && kat_metric_parse(metric_name, &metric)) {
        snprintf(bad_name, sizeof bad_name, "--metric must be l1, l2, l2sq or inner, not '%s'",
                 metric_name);
        problem = bad_name;
    }
    /* An option of another KIND would be ignored: refuse it instead. */
    const struct {
        const char *flag;
        int given, applies;
        const char *where;
    } kind_opts[] = {
        {"--a", seen_a, is_rect, "hyperrect"},
        {"--d", seen_d, is_rect || is_cube, "hyperrect and hypercube"},
        {"--N", seen_N, is_cyc, "cyclic"},
        {"--points", seen_points, is_pts, "points"},
        {"--metric", seen_metric, is_pts, "points"},
        {"--mds", mds, is_pts, "points"},
        {"--check", check, is_rect, "hyperrect"},
        {"--seed", seen_seed, is_rect && !alist, "hyperrect with --d (random sides, no --a)"},
    };
    char kind_problem[160];
    for (size_t i = 0; !problem && kind && i < sizeof kind_opts / sizeof kind_opts[0]; i++)
        if (kind_opts[i].given && !kind_opts[i].applies) {
            snprintf(kind_problem, sizeof kind_problem, "%s is for %s, not %s%s",
                     kind_opts[i].flag, kind_opts[i].where, kind,
                     is_rect && alist ? " with --a" : "");
            problem = kind_problem;
        }
    if (problem) {
        fprintf(stderr, "kat spectrum: %s\n", problem);
        cli_print_usage(stderr, usage, opts, nopts);
        return CLI_USAGE;
    }
    kat_fn *f = NULL;
    kat_status st;
    if ((rc = cli_parse_fn("spectrum", "--f", expr, &f)))
        return rc;
    out_ctx o = {.kind = kind, .fname = kat_fn_name(f), .json = json, .top = top};
    if (is_rect) {
        double *a = NULL;
        size_t na = 0;
        if (alist) {
            if (cli_parse_option_list("spectrum", "--a", alist, &a, &na)) {
                kat_fn_destroy(f);
                cli_print_usage(stderr, usage, opts, nopts);
                return CLI_USAGE;
            }
            if (seen_d && d != na) {
                fprintf(stderr, "kat spectrum: --d %zu disagrees with the %zu sides of --a\n", d,
                        na);
                kat_free(a);
                kat_fn_destroy(f);
                cli_print_usage(stderr, usage, opts, nopts);
                return CLI_USAGE;
            }
        } else if (d <= KAT_GROUP_MAX_D) {
            kat_rng *rng = NULL;
            if ((st = kat_rng_create(seed, &rng)) || !(a = kat_calloc(d ? d : 1, sizeof *a))) {
                kat_rng_destroy(rng);
                kat_fn_destroy(f);
                return cli_fail("spectrum", "hyperrect", st ? st : KAT_ENOMEM);
            }
            for (size_t t = 0; t < d; t++)
                a[t] = 0.5 + kat_rng_uniform(rng);
            kat_rng_destroy(rng);
            na = d;
        } else {
            na = d;
        }
        if (check && na > 13)
            rc = cli_usage("spectrum", "--check builds the dense 2^d x 2^d matrix: it needs d "
                                       "<= 13, got d = %zu", na);
        else
            rc = run_hyperrect(&o, f, a, na, check);
        kat_free(a);
    } else if (is_cube) {
        rc = run_hypercube(&o, f, d);
    } else if (is_cyc) {
        rc = run_cyclic(&o, f, N);
    } else {
        rc = run_points(&o, f, points, metric, mds);
    }
    kat_fn_destroy(f);
    return rc;
}
