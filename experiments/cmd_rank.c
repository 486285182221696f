/* `kat rank`: the numerical rank of f(s * a(Q, K)) with its spectrum, the other rank measures
 * and what theory predicts; Q and K from a seeded point set or from the user's files. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "cmd_rank.h"
#include "mpi_exec.h"
#include "rank_guard.h"
#if KAT_CLI_MPI
#include "mpi_cli.h"
#endif

void rank_cli_points_init(rank_cli_points *p)
{
    memset(p, 0, sizeof *p);
    p->dist = "gauss";
    p->bound = 1.0;
    p->levels = 3;
}

void rank_cli_probe_init(rank_cli_probe *p)
{
    memset(p, 0, sizeof *p);
    p->form = "inner";
    p->method = "dense";
    p->scale = 1.0;
    p->block = 64;
    p->power_iters = 0;
}

void rank_cli_points_opts(rank_cli_points *p, cli_opt *o, size_t *k)
{
    o[(*k)++] = (cli_opt){"dist", CLI_STR, &p->dist,
                          "D      gauss|uniform|sphere|hypercube|rect|grid (default gauss: "
                          "N(0, 1/d) entries)", &p->given};
    o[(*k)++] = (cli_opt){"sigma", CLI_DOUBLE, &p->sigma, "S      gauss: standard deviation "
                          "(default 1/sqrt(d))", &p->given};
    o[(*k)++] = (cli_opt){"bound", CLI_DOUBLE, &p->bound, "B      uniform on [-B, B] (default 1)",
                          &p->given};
    o[(*k)++] = (cli_opt){"sides", CLI_STR, &p->sides, "A,..   rect: the d side lengths",
                          &p->given};
    o[(*k)++] = (cli_opt){"levels", CLI_SIZE, &p->levels, "L      grid: {0..L-1}^d (default 3)",
                          &p->given};
    o[(*k)++] = (cli_opt){"pm1", CLI_FLAG, &p->pm1, "       hypercube: {-1,+1}^d, not {0,1}^d",
                          &p->given};
    o[(*k)++] = (cli_opt){"enumerate", CLI_FLAG, &p->enumerate,
                          "       hypercube/rect/grid: the first n points in order, not random",
                          &p->given};
    o[(*k)++] = (cli_opt){"symmetric", CLI_FLAG, &p->symmetric, "       K = Q (m = n)",
                          &p->given};
    o[(*k)++] = (cli_opt){"seed", CLI_U64, &p->seed, "S      random seed (default 0)", NULL};
}

void rank_cli_probe_opts(rank_cli_probe *p, cli_opt *o, size_t *k, int with_scale)
{
    o[(*k)++] = (cli_opt){"form", CLI_STR, &p->form,
                          "F      inner: f(s<q,k>), l2sq: f(s|q-k|^2), l1: f(s|q-k|_1)", NULL};
    if (with_scale)
        o[(*k)++] = (cli_opt){"scale", CLI_DOUBLE, &p->scale, "S      s (default 1)", NULL};
    o[(*k)++] = (cli_opt){"method", CLI_STR, &p->method,
                          "M      dense (full SVD) | randomized (matrix-free)", NULL};
    o[(*k)++] = (cli_opt){"rtol", CLI_DOUBLE, &p->rtol, "R      tolerance rtol * sigma_1 "
                          "(default sigma_1 * max(n, m) * eps)", NULL};
    o[(*k)++] = (cli_opt){"atol", CLI_DOUBLE, &p->atol, "A      absolute tolerance", NULL};
    o[(*k)++] = (cli_opt){"eps", CLI_DOUBLE, &p->eps,
                          "E      also the spectral and Frobenius eps-ranks", NULL};
    o[(*k)++] = (cli_opt){"max-rank", CLI_SIZE, &p->max_rank,
                          "K      randomized: stop after K directions", NULL};
    o[(*k)++] = (cli_opt){"block", CLI_SIZE, &p->block,
                          "B      randomized: first block size (default 64)", NULL};
    o[(*k)++] = (cli_opt){"power-iters", CLI_INT, &p->power_iters,
                          "P      randomized: extra power iterations per block (default 0)", NULL};
}

int rank_cli_make_opts(const char *cmd, const rank_cli_probe *p, uint64_t seed,
                       kat_rank_opts *o)
{
    kat_rank_opts_init(o);
    if (kat_rank_form_parse(p->form, &o->form))
        return cli_usage(cmd, "--form: %s", kat_last_error());
    if (strcmp(p->method, "dense") == 0)
        o->method = KAT_RANK_DENSE;
    else if (strcmp(p->method, "randomized") == 0)
        o->method = KAT_RANK_RANDOMIZED;
    else
        return cli_usage(cmd, "--method: unknown method '%s' (expected dense or randomized)",
                         p->method);
    /* The library refuses these too, but as a failed probe (exit 1); here they are the
     * options' values (exit 2). */
    const struct {
        const char *name;
        double v;
    } nonneg[] = {{"rtol", p->rtol}, {"atol", p->atol}, {"eps", p->eps}};
    for (size_t i = 0; i < sizeof nonneg / sizeof nonneg[0]; i++)
        if (!(nonneg[i].v >= 0.0))
            return cli_usage(cmd, "--%s must be >= 0, got %g", nonneg[i].name, nonneg[i].v);
    if (p->power_iters < 0 || p->power_iters > 32)
        return cli_usage(cmd, "--power-iters must be in [0, 32], got %d", p->power_iters);
    o->scale = p->scale;
    o->rtol = p->rtol;
    o->atol = p->atol;
    o->eps = p->eps;
    o->max_rank = p->max_rank;
    o->block = p->block;
    o->power_iters = p->power_iters;
    o->seed = seed;
    return CLI_OK;
}

int rank_cli_check_points(const char *cmd, const rank_cli_points *p, size_t d)
{
    kat_rank_dist dist;
    if (kat_rank_dist_parse(p->dist, &dist))
        return cli_usage(cmd, "--dist: %s", kat_last_error());
    if (d == 0)
        return cli_usage(cmd, "--d must be >= 1, got 0");
    double *sides = NULL;
    size_t nsides = 0;
    if (p->sides && cli_parse_option_list(cmd, "--sides", p->sides, &sides, &nsides)) {
        cli_see_help(cmd);
        return CLI_USAGE;
    }
    kat_free(sides);
    if (dist == KAT_RANK_DIST_RECT && !p->sides)
        return cli_usage(cmd, "--dist rect needs --sides A1,...,Ad (the d side lengths)");
    if (dist == KAT_RANK_DIST_RECT && nsides != d)
        return cli_usage(cmd, "--sides '%s' gives %zu side lengths but --d is %zu", p->sides,
                         nsides, d);
    return CLI_OK;
}

int rank_cli_make_points(const char *cmd, const rank_cli_points *p, size_t n, size_t m,
                         size_t d, kat_dmat *Q, kat_dmat *K)
{
    kat_rank_points_opts po;
    kat_rank_points_opts_init(&po);
    kat_status st = kat_rank_dist_parse(p->dist, &po.dist);
    if (st)
        return cli_fail(cmd, "--dist", st);
    po.sigma = p->sigma;
    po.bound = p->bound;
    po.levels = p->levels;
    po.pm1 = p->pm1;
    po.enumerate = p->enumerate;
    double *sides = NULL;
    if (p->sides) {
        if (cli_parse_list(p->sides, &sides, &po.nsides))   /* rank_cli_check_points did */
            return CLI_FAIL;
        po.sides = sides;
    }
    kat_rng *rq = NULL, *rk = NULL;
    kat_dmat q = {0}, k = {0};
    if (!(st = kat_rng_create(p->seed, &rq)) &&
        !(st = kat_rng_create(p->seed ^ 0x9E3779B97F4A7C15ull, &rk)) &&
        !(st = kat_dmat_alloc(n, d, &q)) && !(st = kat_rank_points(&po, rq, &q)) &&
        !p->symmetric)
        if (!(st = kat_dmat_alloc(m, d, &k)))
            st = kat_rank_points(&po, rk, &k);
    kat_rng_destroy(rq);
    kat_rng_destroy(rk);
    kat_free(sides);
    if (st) {
        kat_dmat_free(&q);
        kat_dmat_free(&k);
        /* kat_rank_points refuses only option values (--sigma, --bound, --levels, ...). */
        return st == KAT_EINVAL ? cli_usage(cmd, "%s", kat_last_error())
                                : cli_fail(cmd, "points", st);
    }
    *Q = q;
    *K = p->symmetric ? q : k;
    return CLI_OK;
}

static void print_size(FILE *out, const char *label, size_t v)
{
    if (v == KAT_RANK_NONE)
        fprintf(out, "%s: none\n", label);
    else
        fprintf(out, "%s: %zu\n", label, v);
}

static void json_size(cli_json *j, const char *key, size_t v)
{
    if (v == KAT_RANK_NONE)
        cli_json_key(j, key), fputs("null", j->out);
    else
        cli_json_int(j, key, (long long)v);
}

/* The command; *mpi_began is set once the processes of a distributed run have started
 * (kat_cmd_rank then ends them, after whatever return). */
static int rank_main(int argc, char **argv, int *mpi_began)
{
    const char *fexpr = "exp", *qfile = NULL, *kfile = NULL, *mfile = NULL, *map = NULL;
    size_t n = 256, m = 0, d = 8;
    int json = 0, sv = 0, m_seen = 0, nd_seen = 0, f_seen = 0, form_seen = 0, force = 0;
    rank_cli_points pts;
    rank_cli_probe pr;
    rank_cli_points_init(&pts);
    rank_cli_probe_init(&pr);
    cli_opt opts[40];
    size_t k = 0;
    opts[k++] = (cli_opt){"f", CLI_STR, &fexpr, "EXPR   entrywise function of x (default exp)",
                          &f_seen};
    opts[k++] = (cli_opt){"map", CLI_STR, &map, "SPEC   instead of f: M = Phi(Q) Psi(K)^T of a "
                          "feature map (kat features' grammar)", NULL};
    opts[k++] = (cli_opt){"n", CLI_SIZE, &n, "N      rows of Q (default 256)", &nd_seen};
    opts[k++] = (cli_opt){"m", CLI_SIZE, &m, "M      rows of K (default n)", &m_seen};
    opts[k++] = (cli_opt){"d", CLI_SIZE, &d, "D      dimension of the points (default 8)",
                          &nd_seen};
    opts[k++] = (cli_opt){"q", CLI_STR, &qfile, "FILE   Q from a .npy, .csv or .txt file", NULL};
    opts[k++] = (cli_opt){"k", CLI_STR, &kfile, "FILE   K from a file (default: K = Q)", NULL};
    opts[k++] = (cli_opt){"matrix", CLI_STR, &mfile,
                          "FILE   the rank of this matrix itself (.npy, .csv or .txt; no f)", NULL};
    rank_cli_points_opts(&pts, opts, &k);
    size_t probe_first = k;
    rank_cli_probe_opts(&pr, opts, &k, 1);
    for (size_t i = probe_first; i < k; i++)   /* --form and --scale shape f(s * a(q, k)) */
        if (!strcmp(opts[i].name, "form") || !strcmp(opts[i].name, "scale"))
            opts[i].seen = &form_seen;
    opts[k++] = (cli_opt){"sv", CLI_FLAG, &sv, "       print the singular values", NULL};
    opts[k++] = (cli_opt){"json", CLI_FLAG, &json, "       machine-readable output", NULL};
    const char *engine = "local";
    opts[k++] = (cli_opt){"engine", CLI_STR, &engine, "E      local (default) | slepc: over MPI "
                          "processes (mpirun -np P kat rank ... --engine slepc; SLEPc's "
                          "randomized SVD, matrix-free)", NULL};
    opts[k++] = (cli_opt){"force", CLI_FLAG, &force, "       dense: run even above n m min(n, m) "
                          "= 8000^3, where it takes minutes to hours", NULL};
    const char *usage =
        "usage: kat rank [--f EXPR] [--n N] [--d D] [--form inner|l2sq|l1] [--method "
        "dense|randomized] [--json] ...\n"
        "       kat rank --matrix FILE [--eps E] [--sv] [--json]\n\n"
        "The rank of the n x m matrix M_ij = f(s * a(q_i, k_j)), a = <q,k>, |q-k|^2 or "
        "|q-k|_1,\nwith the stable and effective ranks, eps-ranks, and the rank theory "
        "predicts for polynomial f;\nwith --map SPEC (taylor2, favor:256, ...) the rank of "
        "the map's Phi(Q) Psi(K)^T;\nwith --matrix, the same measures of a matrix read from a "
        "file.";
    int rc = cli_parse(usage, opts, k, argc, argv, NULL, 0, NULL);
    if (rc)
        return rc < 0 ? CLI_OK : rc;
    if (kfile && !qfile)
        return cli_usage("rank", "--k needs --q");
    /* Options that would be ignored are refused: the files fix the points, and K = Q fixes m. */
    if (qfile && (nd_seen || m_seen || pts.given))
        return cli_usage("rank", "--n, --m, --d and --dist, --sigma, --bound, --sides, --levels, "
                                 "--pm1, --enumerate, --symmetric shape random points; with --q "
                                 "the points come from the files");
    if (map && f_seen)
        return cli_usage("rank", "--map and --f both define M; give one");
    if (mfile && (map || qfile || f_seen || form_seen || nd_seen || m_seen || pts.given))
        return cli_usage("rank", "--matrix '%s' is the matrix itself: --f, --map, --form, --scale, "
                                 "--q, --k and the options of random points do not apply",
                         mfile);
    if (pts.symmetric && m_seen && m != n)
        return cli_usage("rank", "--symmetric makes K = Q, so m = n = %zu, not --m %zu", n, m);
    kat_rank_opts o;
    if ((rc = rank_cli_make_opts("rank", &pr, pts.seed, &o)) ||
        (!qfile && !mfile && (rc = rank_cli_check_points("rank", &pts, d))))
        return rc;
    if (!qfile && !mfile && (n == 0 || (m_seen && m == 0)))
        return cli_usage("rank", "--%s must be >= 1, got 0", n == 0 ? "n" : "m");
    if (mfile && o.method != KAT_RANK_DENSE)
        return cli_usage("rank", "--matrix '%s' is probed with --method dense only (the "
                                 "randomized method never stores M; this M is stored)", mfile);
    int dist = strcmp(engine, "local") != 0;
    if (dist && strcmp(engine, "slepc") != 0)
        return cli_usage("rank", "--engine '%s': unknown engine (expected local or slepc)",
                         engine);
    if (dist && (mfile || map))
        return cli_usage("rank", "--engine slepc probes f(s * a(q, k)) without forming it; "
                                 "--%s does not apply", mfile ? "matrix" : "map");
#if KAT_CLI_MPI
    if (dist) {
        if ((rc = mpi_cli_begin("rank", argc, argv)))
            return rc;
        *mpi_began = 1;
        o.method = KAT_RANK_RANDOMIZED;   /* matrix-free: it reports as the randomized probe */
    }
#elif KAT_HAVE_MPI
    if (dist)
        return mpi_exec_kat_mpi("rank");
#else
    if (dist)
        return cli_usage("rank", "--engine slepc needs kat built with MPI and SLEPc (meson "
                                 "-Dmpi=enabled; Debian: libopenmpi-dev slepc-dev)");
#endif
    if (!m_seen)
        m = n;
    kat_fn *f = NULL;
    if (!mfile && (rc = cli_parse_fn("rank", "--f", fexpr, &f)))
        return rc;
    kat_dmat Q = {0}, K = {0};
    int own_k = 0;
    kat_status st;
    if (qfile) {
        st = kat_matrix_read(qfile, &Q);
#if KAT_CLI_MPI
        if (dist)   /* a file that one process cannot read fails every process */
            st = mpi_cli_agree(st);
#endif
        if (st) {
            kat_dmat_free(&Q);
            kat_fn_destroy(f);
            return cli_read_fail("rank", "--q", qfile, st);
        }
        if ((rc = cli_check_nonempty("rank", "--q", qfile, &Q))) {
            kat_dmat_free(&Q);
            kat_fn_destroy(f);
            return rc;
        }
        K = Q;
        if (kfile) {
            st = kat_matrix_read(kfile, &K);
#if KAT_CLI_MPI
            if (dist)
                st = mpi_cli_agree(st);
#endif
            if (st) {
                if (K.data != Q.data)
                    kat_dmat_free(&K);
                kat_dmat_free(&Q);
                kat_fn_destroy(f);
                return cli_read_fail("rank", "--k", kfile, st);
            }
            own_k = 1;
            if ((rc = cli_check_nonempty("rank", "--k", kfile, &K))) {
                kat_dmat_free(&K);
                kat_dmat_free(&Q);
                kat_fn_destroy(f);
                return rc;
            }
        }
    } else if (!mfile) {
        if ((rc = rank_cli_make_points("rank", &pts, n, m, d, &Q, &K))) {
            kat_fn_destroy(f);
            return rc;
        }
        own_k = !pts.symmetric;
    }
    /* The matrix is read before the guard: its size is known only then. */
    kat_dmat M = {0};
    if (mfile) {
        progress reading;
        progress_call_start(&reading, stderr, "kat rank", json, "reading %s", mfile);
        st = kat_matrix_read(mfile, &M);
        progress_finish(&reading);
        if (st) {
            kat_dmat_free(&M);
            return cli_read_fail("rank", "--matrix", mfile, st);
        }
        if ((rc = cli_check_nonempty("rank", "--matrix", mfile, &M))) {
            kat_dmat_free(&M);
            return rc;
        }
    }
    kat_rank_result r;
    rank_guard guard;
    const int guarded = o.method == KAT_RANK_DENSE;
    if (guarded && rank_guard_begin(&guard, "rank", mfile ? M.rows : Q.rows,
                                    mfile ? M.cols : K.rows, force, json)) {
        kat_dmat_free(&M);
        kat_dmat_free(&Q);
        if (own_k)
            kat_dmat_free(&K);
        kat_fn_destroy(f);
        return CLI_USAGE;
    }
    kat_featmap *fm = NULL;
    if (map && (st = kat_featmap_parse(map, Q.cols, pts.seed, &fm)))
        rc = st == KAT_EPARSE ? CLI_USAGE : CLI_FAIL;
    /* The randomized method has no estimate: the time so far on a terminal (the guard's line
     * covers the dense method). A distributed run prints none, so its processes do not draw
     * over each other. */
    progress call;
    progress_call_start(&call, stderr, "kat rank", json || dist || guarded,
                        "randomized SVD of %s", map ? map : "f(QK^T)");
    double t0 = cli_now();
    int root = 1;   /* under MPI, process 0 prints the result */
#if KAT_CLI_MPI
    mpi_cli_stats ms;
    root = !dist || mpi_cli_rank() == 0;
    if (dist)
        st = mpi_cli_probe(engine, f, &Q, &K, &o, &r, &ms);
    else
#endif
    if (!rc)
        st = mfile ? kat_rank_probe_matrix(&M, &o, &r)
             : fm  ? kat_rank_probe_featmap(fm, &Q, &K, &o, &r)
                   : kat_rank_probe(f, &Q, &K, &o, &r);
    double secs = cli_now() - t0;
    progress_finish(&call);
    kat_featmap_destroy(fm);
    if (guarded)
        rank_guard_end(&guard);
    if (rc == CLI_USAGE) {
        cli_usage("rank", "--map: %s", kat_last_error());
    } else if (rc) {
        rc = cli_fail("rank", "--map", st);
    } else if (st) {
        rc = cli_fail("rank", mfile ? mfile : "probe", st);
    } else if (!root) {
        rc = CLI_OK;
    } else if (json) {
        cli_json j;
        cli_json_begin(&j, stdout);
        cli_json_int(&j, "rank", (long long)r.rank);
        cli_json_num(&j, "tol", r.tol);
        cli_json_num(&j, "stable_rank", r.stable_rank);
        cli_json_num(&j, "effective_rank", r.effective_rank);
        if (r.predicted_rank != KAT_RANK_NONE) {
            cli_json_int(&j, "predicted_rank", (long long)r.predicted_rank);
            cli_json_int(&j, "base_rank", (long long)r.base_rank);
        }
        if (o.eps > 0) {
            cli_json_num(&j, "eps", o.eps);
            json_size(&j, "eps_rank_spectral", r.eps_rank_spectral);
            json_size(&j, "eps_rank_frobenius", r.eps_rank_frobenius);
        }
        cli_json_num(&j, "sigma_max", r.sigma_max);
        cli_json_num(&j, "fro_norm", r.fro_norm);
        cli_json_int(&j, "n", (long long)r.n);
        cli_json_int(&j, "m", (long long)r.m);
        if (mfile) {
            cli_json_str(&j, "matrix", mfile);
        } else {
            cli_json_int(&j, "d", (long long)r.d);
            cli_json_str(&j, map ? "map" : "f", map ? map : fexpr);
            if (!map) {   /* a map defines M without them */
                cli_json_str(&j, "form", kat_rank_form_name(o.form));
                cli_json_num(&j, "scale", o.scale);
            }
            cli_json_str(&j, "dist", qfile ? "file" : pts.dist);
        }
        cli_json_str(&j, "method", o.method == KAT_RANK_DENSE ? "dense" : "randomized");
        if (o.method == KAT_RANK_RANDOMIZED) {
            cli_json_bool(&j, "converged", r.converged);
            cli_json_int(&j, "passes", (long long)r.passes);
            cli_json_int(&j, "directions", (long long)r.nsv);
        }
        cli_json_int(&j, "seed", (long long)pts.seed);
        cli_json_int(&j, "threads", kat_num_threads());
        cli_json_num(&j, "seconds", secs);
#if KAT_CLI_MPI
        if (dist) {
            cli_json_str(&j, "engine", "slepc");
            cli_json_str(&j, "svd", ms.svd);
            cli_json_int(&j, "processes", ms.processes);
            cli_json_int(&j, "solves", (long long)ms.solves);
            cli_json_num(&j, "seconds_comm", ms.seconds_comm_max);
            cli_json_num(&j, "seconds_compute", ms.seconds_compute_max);
            cli_json_array(&j, "peak_rss_mib", ms.peak_rss_mib,
                           ms.processes < 1024 ? (size_t)ms.processes : 1024);
        }
#endif
        if (sv)
            cli_json_array(&j, "singular_values", r.sv, r.nsv);
        cli_json_end(&j);
    } else {
        if (mfile) {
            printf("M from %s: %zu x %zu, dense SVD\n", mfile, r.n, r.m);
        } else {
            if (map)
                printf("M = Phi(Q) Psi(K)^T of the map %s", map);
            else
                printf("M = f(s * %s) with f = %s, s = %g",
                       o.form == KAT_RANK_INNER ? "<q,k>"
                       : o.form == KAT_RANK_L2SQ ? "|q-k|^2" : "|q-k|_1", fexpr, o.scale);
            printf(": %zu x %zu, d = %zu, %s (%s)\n", r.n, r.m, r.d,
                   o.method == KAT_RANK_DENSE ? "dense SVD" : "randomized",
                   qfile ? "points from files" : pts.dist);
        }
        printf("rank: %zu%s (tol %.3g)\n", r.rank,
               r.converged ? "" : " (a lower bound: the search hit --max-rank)", r.tol);
        print_size(stdout, "predicted rank", r.predicted_rank);
        printf("stable rank: %.6g\neffective rank: %.6g\n", r.stable_rank, r.effective_rank);
        if (o.eps > 0) {
            printf("eps = %g:\n", o.eps);
            print_size(stdout, "  spectral eps-rank", r.eps_rank_spectral);
            print_size(stdout, "  Frobenius eps-rank", r.eps_rank_frobenius);
        }
        printf("sigma_1: %.6g, |M|_F: %.6g\n", r.sigma_max, r.fro_norm);
        if (o.method == KAT_RANK_RANDOMIZED)
            printf("randomized: %zu directions, %zu passes over M\n", r.nsv, r.passes);
#if KAT_CLI_MPI
        if (dist)
            printf("slepc (%s SVD): %d processes, %zu solves; peak memory of process 0 %.1f "
                   "MiB; broadcasts %.3f s\n", ms.svd, ms.processes, ms.solves,
                   ms.peak_rss_mib[0], ms.seconds_comm_max);
#endif
        printf("seconds: %.3f\n", secs);
        if (sv) {
            printf("singular values:\n");
            for (size_t i = 0; i < r.nsv; i++)
                printf("%.17g\n", r.sv[i]);
        }
    }
    if (!st)
        kat_rank_result_free(&r);
    kat_dmat_free(&M);
    kat_dmat_free(&Q);
    if (own_k)
        kat_dmat_free(&K);
    kat_fn_destroy(f);
    return rc;
}

int kat_cmd_rank(int argc, char **argv)
{
    int mpi_began = 0;
    int rc = rank_main(argc, argv, &mpi_began);
#if KAT_CLI_MPI
    if (mpi_began)
        mpi_cli_end();
#endif
    return rc;
}
