/* `kat sweep`: the rank probe over a grid of n, d, f and s; one CSV row per point and a
 * rank-vs-n plot (gnuplot, when installed). */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "cmd_rank.h"
#include "mpi_exec.h"
#if KAT_CLI_MPI
#include "mpi_cli.h"
#endif
#include "gnuplot.h"
#include "progress.h"
#include "rank_guard.h"

typedef struct {
    size_t n, d;
    size_t fi;   /* index into the function list */
    double scale;
    size_t rank, predicted;
    double stable, effective, seconds;
    size_t eps_spectral, eps_frobenius;   /* with --eps; KAT_RANK_NONE: none */
} sweep_row;

/* A list of positive integers "a,b,c". */
static int parse_sizes(const char *flag, const char *s, size_t **out, size_t *count)
{
    double *v;
    size_t k;
    char opt[16];
    snprintf(opt, sizeof opt, "--%s", flag);
    if (cli_parse_option_list("sweep", opt, s, &v, &k))
        return -1;
    size_t *z = kat_malloc(k * sizeof *z);
    if (!z) {
        kat_free(v);
        return -1;
    }
    for (size_t i = 0; i < k; i++) {
        if (!(v[i] >= 1) || v[i] != floor(v[i]) || v[i] > 1e12) {
            fprintf(stderr, "kat sweep: --%s takes positive integers, got %g\n", flag, v[i]);
            kat_free(v);
            kat_free(z);
            return -1;
        }
        z[i] = (size_t)v[i];
    }
    kat_free(v);
    *out = z;
    *count = k;
    return 0;
}

/* Split "a;b;c" into owned strings (empty items are an error). */
static int split_functions(const char *s, char ***out, size_t *count)
{
    size_t cap = 1;
    for (const char *p = s; *p; p++)
        cap += *p == ';';
    char **items = kat_calloc(cap, sizeof *items);
    if (!items)
        return -1;
    size_t k = 0;
    for (const char *p = s;;) {
        const char *e = strchr(p, ';');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        while (len && (*p == ' ')) {
            p++;
            len--;
        }
        if (len == 0) {
            fprintf(stderr, "kat sweep: empty function in --f '%s'\n", s);
            for (size_t i = 0; i < k; i++)
                kat_free(items[i]);
            kat_free(items);
            return -1;
        }
        items[k] = kat_malloc(len + 1);
        if (!items[k]) {
            for (size_t i = 0; i < k; i++)
                kat_free(items[i]);
            kat_free(items);
            return -1;
        }
        memcpy(items[k], p, len);
        items[k++][len] = '\0';
        if (!e)
            break;
        p = e + 1;
    }
    *out = items;
    *count = k;
    return 0;
}

/* CSV field: quoted when it holds a comma, a quote or a space (RFC 4180). */
static void csv_field(FILE *out, const char *s)
{
    if (!strpbrk(s, ",\" ")) {
        fputs(s, out);
        return;
    }
    fputc('"', out);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', out);
        fputc(*s, out);
    }
    fputc('"', out);
}

/* A size column, empty for KAT_RANK_NONE. */
static void csv_size(FILE *out, size_t v)
{
    if (v != KAT_RANK_NONE)
        fprintf(out, "%zu", v);
}

static void csv_row(FILE *out, const sweep_row *r, const char *f, int eps)
{
    fprintf(out, "%zu,%zu,", r->n, r->d);
    csv_field(out, f);
    fprintf(out, ",%.17g,%zu,", r->scale, r->rank);
    csv_size(out, r->predicted);
    fprintf(out, ",%.10g,%.10g,%.6f", r->stable, r->effective, r->seconds);
    if (eps) {
        fputc(',', out);
        csv_size(out, r->eps_spectral);
        fputc(',', out);
        csv_size(out, r->eps_frobenius);
    }
    fputc('\n', out);
}

/* A JSON size, null for KAT_RANK_NONE. */
static void json_size(cli_json *j, const char *key, size_t v)
{
    if (v == KAT_RANK_NONE) {
        cli_json_key(j, key);
        fputs("null", j->out);
    } else {
        cli_json_int(j, key, (long long)v);
    }
}

/* The conditions of the sweep in words, for the plot's title: the points, the seed, the
 * tolerance and the method. */
static void conditions(char *buf, size_t n, const rank_cli_points *p, const kat_rank_opts *o)
{
    char pts[160], tol[96];
    if (strcmp(p->dist, "gauss") == 0 && p->sigma > 0)
        snprintf(pts, sizeof pts, "N(0, %g^2) entries", p->sigma);
    else if (strcmp(p->dist, "gauss") == 0)
        snprintf(pts, sizeof pts, "N(0, 1/d) entries");
    else if (strcmp(p->dist, "uniform") == 0)
        snprintf(pts, sizeof pts, "entries uniform on [-%g, %g]", p->bound, p->bound);
    else if (strcmp(p->dist, "hypercube") == 0)
        snprintf(pts, sizeof pts, "corners of %s", p->pm1 ? "{-1,+1}^d" : "{0,1}^d");
    else if (strcmp(p->dist, "grid") == 0)
        snprintf(pts, sizeof pts, "points of {0..%zu}^d", p->levels - 1);
    else if (strcmp(p->dist, "rect") == 0)
        snprintf(pts, sizeof pts, "corners of a box with sides %s", p->sides ? p->sides : "");
    else
        snprintf(pts, sizeof pts, "%s points", p->dist);
    if (o->rtol > 0 && o->atol > 0)
        snprintf(tol, sizeof tol, "tolerance max(%g, %g sigma_1)", o->atol, o->rtol);
    else if (o->rtol > 0)
        snprintf(tol, sizeof tol, "tolerance %g sigma_1", o->rtol);
    else if (o->atol > 0)
        snprintf(tol, sizeof tol, "tolerance %g", o->atol);
    else
        snprintf(tol, sizeof tol, "tolerance sigma_1 n eps");
    snprintf(buf, n, "Q, K: n x d, %s%s%s, seed %llu; %s; %s rank", pts,
             p->enumerate ? " (the first n in order)" : "", p->symmetric ? ", K = Q" : "",
             (unsigned long long)p->seed, tol,
             o->method == KAT_RANK_DENSE ? "dense SVD" : "randomized");
}

typedef struct {
    char dir[1024], gp[1100], path[2200];   /* the PNG's directory; the script's name, path */
    const char *name;                       /* the PNG's file name (within the path given) */
} plot_files;

static void plot_files_of(const char *png, plot_files *p)
{
    const char *slash = strrchr(png, '/'), *name = slash ? slash + 1 : png;
    p->name = name;
    snprintf(p->dir, sizeof p->dir, ".");
    if (slash && (size_t)(slash - png) < sizeof p->dir)
        snprintf(p->dir, sizeof p->dir, "%.*s", (int)(slash - png), png);
    if (slash == png)
        snprintf(p->dir, sizeof p->dir, "/");
    size_t len = strlen(name);
    int has_ext = len > 4 && strcmp(name + len - 4, ".png") == 0;
    snprintf(p->gp, sizeof p->gp, "%.*s.gp", (int)(has_ext ? len - 4 : len), name);
    snprintf(p->path, sizeof p->path, "%s/%s", p->dir, p->gp);
}

/* Rank vs n, one line per (f, d, s), the prediction as open circles where there is one (a
 * point inside its circle is a rank as predicted). The script is kept beside the PNG (FILE.gp
 * for FILE.png), so the figure can be redrawn or read back. */
static int plot(const plot_files *pf, const sweep_row *rows, size_t nrows, char **fs, size_t nn,
                const char *form, const char *cond)
{
    const char *dir = pf->dir, *gp = pf->gp, *path = pf->path, *name = pf->name;
    kat_outfile *o;
    FILE *f = gnuplot_script_open(path, name, 1000, 650, &o);
    if (!f) {
        fprintf(stderr, "kat sweep: cannot write the plot script: %s\n", kat_last_error());
        return -1;
    }
    int logy = 1;
    for (size_t i = 0; i < nrows; i++)
        logy &= rows[i].rank > 0;
    fprintf(f, "set title 'kat sweep: numerical rank of f(s * %s)' . \"\\n\" . ",
            strcmp(form, "inner") == 0 ? "<q,k>" : strcmp(form, "l2sq") == 0 ? "|q-k|^2"
                                                                              : "|q-k|_1");
    gnuplot_string(f, cond);
    fputc('\n', f);
    fprintf(f, "set xlabel 'n (= m)'\nset ylabel 'numerical rank'\nset logscale x 2\n%s"
                "set key outside right top\nset grid\n",
            logy ? "set logscale y 10\n" : "");
    /* Series: consecutive runs of rows that share (f, d, s); rows are ordered with n inner. */
    size_t nseries = nrows / nn;
    for (size_t s = 0; s < nseries; s++) {
        fprintf(f, "$r%zu << EOD\n", s);
        for (size_t i = 0; i < nn; i++)
            fprintf(f, "%zu %zu\n", rows[s * nn + i].n, rows[s * nn + i].rank);
        fprintf(f, "EOD\n$p%zu << EOD\n", s);
        for (size_t i = 0; i < nn; i++)
            if (rows[s * nn + i].predicted != KAT_RANK_NONE)
                fprintf(f, "%zu %zu\n", rows[s * nn + i].n, rows[s * nn + i].predicted);
        fprintf(f, "EOD\n");
    }
    fprintf(f, "plot x with lines lc 'gray' dt 3 title 'n (full rank)'");
    for (size_t s = 0; s < nseries; s++) {
        const sweep_row *r = &rows[s * nn];
        char title[512];
        snprintf(title, sizeof title, "f = %s, d = %zu, s = %g", fs[r->fi], r->d, r->scale);
        fprintf(f, ", $r%zu using 1:2 with linespoints lw 2 lc rgb %s title ", s,
                gnuplot_color(s));
        gnuplot_string(f, title);
        int predicted = 0;
        for (size_t i = 0; i < nn; i++)
            predicted |= r[i].predicted != KAT_RANK_NONE;
        if (predicted) {
            fprintf(f, ", $p%zu using 1:2 with points pt 6 ps 2 lc rgb %s title ", s,
                    gnuplot_color(s));
            snprintf(title, sizeof title, "predicted, f = %s, d = %zu, s = %g", fs[r->fi], r->d,
                     r->scale);
            gnuplot_string(f, title);
        }
    }
    fprintf(f, "\n");
    if (kat_outfile_close(o, 1) != KAT_OK) {
        fprintf(stderr, "kat sweep: cannot write the plot script: %s\n", kat_last_error());
        return -1;
    }
    if (gnuplot_run(dir, gp, name, NULL) != 0) {
        fprintf(stderr, "kat sweep: gnuplot failed on %s\n", path);
        return -1;
    }
    return 0;
}

static int sweep_run(int argc, char **argv, int dist);

/* Under mpirun, the grid points are handed out to the processes and process 0 writes them. */
int kat_cmd_sweep(int argc, char **argv)
{
#if KAT_CLI_MPI
    if (mpi_cli_launched()) {
        int rc = mpi_cli_begin("sweep", argc, argv);
        if (rc)
            return rc;
        rc = sweep_run(argc, argv, 1);
        mpi_cli_end();
        return rc;
    }
#elif KAT_HAVE_MPI
    if (mpi_cli_launched())
        return mpi_exec_kat_mpi("sweep");
#endif
    return sweep_run(argc, argv, 0);
}

static int sweep_run(int argc, char **argv, int dist)
{
    const char *nlist = "256,512,1024", *dlist = "8", *flist = NULL, *slist = "1";
    const char *deglist = NULL, *out = NULL, *png = NULL;
    int json = 0, force = 0;
    rank_cli_points pts;
    rank_cli_probe pr;
    rank_cli_points_init(&pts);
    rank_cli_probe_init(&pr);
    cli_opt opts[40];
    size_t k = 0;
    opts[k++] = (cli_opt){"n", CLI_STR, &nlist, "LIST   sizes n = m (default 256,512,1024)", NULL};
    opts[k++] = (cli_opt){"d", CLI_STR, &dlist, "LIST   dimensions (default 8)", NULL};
    opts[k++] = (cli_opt){"f", CLI_STR, &flist,
                          "LIST   functions separated by ';' (default exp)", NULL};
    opts[k++] = (cli_opt){"degree", CLI_STR, &deglist,
                          "LIST   shorthand: f = (1+x)^p for p in LIST", NULL};
    opts[k++] = (cli_opt){"scale", CLI_STR, &slist, "LIST   scales s (default 1)", NULL};
    rank_cli_points_opts(&pts, opts, &k);
    rank_cli_probe_opts(&pr, opts, &k, 0);   /* --scale is the list above */
    opts[k++] = (cli_opt){"out", CLI_STR, &out, "FILE   CSV output (default stdout)", NULL};
    opts[k++] = (cli_opt){"plot", CLI_STR, &png, "FILE   rank-vs-n PNG (needs gnuplot), its script beside it as FILE.gp", NULL};
    opts[k++] = (cli_opt){"json", CLI_FLAG, &json, "       rows as JSON on stdout", NULL};
    opts[k++] = (cli_opt){"force", CLI_FLAG, &force, "       dense: run even when the largest n "
                          "is above 8000, where one SVD takes minutes to hours", NULL};
    const char *usage =
        "usage: kat sweep [--n LIST] [--d LIST] [--f 'F1;F2'] [--degree LIST] [--scale LIST] "
        "[--out FILE.csv] [--plot FILE.png] ...\n\n"
        "The rank probe of `kat rank` over a grid; CSV columns n,d,f,scale,rank,predicted,"
        "stable,effective,seconds\n(and eps_rank_spectral,eps_rank_frobenius with --eps).";
    int rc = cli_parse(usage, opts, k, argc, argv, NULL, 0, NULL);
    if (rc)
        return rc < 0 ? CLI_OK : rc;
    plot_files pf;   /* the plot's script, FILE.gp beside FILE.png, is an output too */
    if (png)
        plot_files_of(png, &pf);
    const cli_path paths[] = {{"out", out, 1}, {"plot", png, 1},
                              {"plot's script", png ? pf.path : NULL, 1}};
    if ((rc = cli_check_paths("sweep", paths, 3)))
        return rc;
    kat_rank_opts o;
    if ((rc = rank_cli_make_opts("sweep", &pr, pts.seed, &o)))
        return rc;
    size_t *ns = NULL, *ds = NULL, nn = 0, nd = 0, nf = 0, nsc = 0, ndeg = 0;
    double *scales = NULL, *degs = NULL;
    char **fs = NULL;
    size_t nf_given = 0;
    char **given = NULL;
    if (parse_sizes("n", nlist, &ns, &nn) || parse_sizes("d", dlist, &ds, &nd) ||
        cli_parse_option_list("sweep", "--scale", slist, &scales, &nsc) ||
        (deglist && cli_parse_option_list("sweep", "--degree", deglist, &degs, &ndeg)) ||
        ((flist || !deglist) && split_functions(flist ? flist : "exp", &given, &nf_given))) {
        cli_print_usage(stderr, usage, opts, k);
        rc = CLI_USAGE;
        goto done;
    }
    for (size_t i = 0; i < ndeg; i++)
        if (!(degs[i] >= 0) || degs[i] != floor(degs[i]) || degs[i] > 64) {
            fprintf(stderr, "kat sweep: --degree takes integers in [0, 64], got %g\n", degs[i]);
            cli_print_usage(stderr, usage, opts, k);
            rc = CLI_USAGE;
            goto done;
        }
    nf = nf_given + ndeg;
    fs = kat_calloc(nf, sizeof *fs);
    if (!fs) {
        rc = cli_fail("sweep", "lists", KAT_ENOMEM);
        goto done;
    }
    for (size_t i = 0; i < nf_given; i++) {
        fs[i] = given[i];
        given[i] = NULL;
    }
    for (size_t i = 0; i < ndeg; i++) {
        fs[nf_given + i] = kat_malloc(32);
        if (!fs[nf_given + i]) {
            rc = cli_fail("sweep", "lists", KAT_ENOMEM);
            goto done;
        }
        snprintf(fs[nf_given + i], 32, "(1+x)^%d", (int)degs[i]);
    }
    for (size_t i = 0; i < nd; i++)   /* usage errors before any output */
        if ((rc = rank_cli_check_points("sweep", &pts, ds[i])))
            goto done;
    for (size_t i = 0; i < nf; i++) {
        kat_fn *f = NULL;
        if ((rc = cli_parse_fn("sweep", "--f", fs[i], &f)))
            goto done;
        kat_fn_destroy(f);
    }
    size_t nmax = 0;
    for (size_t i = 0; i < nn; i++)
        nmax = ns[i] > nmax ? ns[i] : nmax;
    /* The largest n decides, before any work: every SVD of the grid is of an n x n matrix. */
    int quiet = json;
#if KAT_CLI_MPI
    quiet |= dist && mpi_cli_rank() != 0;   /* process 0 speaks for all */
#endif
    if (o.method == KAT_RANK_DENSE && rank_guard_check("sweep", nmax, nmax, force, quiet, NULL)) {
        rc = CLI_USAGE;
        goto done;
    }
    size_t total = nf * nd * nsc * nn;
    sweep_row *rows = kat_calloc(total, sizeof *rows);
    if (!rows) {
        rc = cli_fail("sweep", "rows", KAT_ENOMEM);
        goto done;
    }
    FILE *csv = NULL;
    kat_outfile *csv_file = NULL;   /* --out: renamed into place when the sweep succeeds */
    int root = 1;
#if KAT_CLI_MPI
    root = !dist || mpi_cli_rank() == 0;
    size_t next = dist ? mpi_cli_next_point(total) : 0;
#endif
    if (!root) {
        json = 0, png = NULL;   /* process 0 writes the results */
    } else if (out) {
        kat_status st = kat_outfile_open(out, &csv_file, &csv);
        if (st) {
            kat_free(rows);
            rc = cli_fail("sweep", "--out", st);
            goto done;
        }
    } else if (!json) {
        csv = stdout;
    }
    if (csv)
        fprintf(csv, "n,d,f,scale,rank,predicted,stable,effective,seconds%s\n",
                o.eps > 0 ? ",eps_rank_spectral,eps_rank_frobenius" : "");
    size_t done_rows = 0, probed = 0;
    kat_status point_st = KAT_OK;
    progress prog;   /* on a terminal: the point being probed, with an estimate */
    progress_start(&prog, stderr, "kat sweep", json);
    /* Order: f, d, s outer, n inner (the plot's series are consecutive runs). The points for
     * n are the first n rows of one draw of nmax, so a larger n extends the smaller ones. */
    for (size_t fi = 0; fi < nf && rc == CLI_OK; fi++) {
        kat_fn *f = NULL;
        if ((rc = cli_parse_fn("sweep", "--f", fs[fi], &f)))
            break;
        for (size_t di = 0; di < nd && rc == CLI_OK; di++) {
            kat_dmat Q, K;
            if ((rc = rank_cli_make_points("sweep", &pts, nmax, nmax, ds[di], &Q, &K)))
                break;
            for (size_t si = 0; si < nsc && rc == CLI_OK; si++)
                for (size_t ni = 0; ni < nn && rc == CLI_OK; ni++) {
                    size_t g = ((fi * nd + di) * nsc + si) * nn + ni;   /* grid order */
#if KAT_CLI_MPI
                    if (dist && g != next)
                        continue;   /* another process's point */
#endif
                    kat_dmat q = Q, kk = K;
                    q.rows = kk.rows = ns[ni];
                    o.scale = scales[si];
                    kat_rank_result r;
                    progress_update(&prog, (double)probed++ / (double)total,
                                    "f = %s, d = %zu, s = %g, n = %zu", fs[fi], ds[di],
                                    scales[si], ns[ni]);
                    double t0 = cli_now();
                    kat_status st = kat_rank_probe(f, &q, &kk, &o, &r);
                    if (st) {
                        rc = cli_fail("sweep", fs[fi], st);
                        point_st = st;
                        break;
                    }
                    sweep_row *row = &rows[dist ? g : done_rows++];
                    *row = (sweep_row){ns[ni], ds[di], fi, scales[si], r.rank,
                                       r.predicted_rank, r.stable_rank, r.effective_rank,
                                       cli_now() - t0, r.eps_rank_spectral,
                                       r.eps_rank_frobenius};
                    kat_rank_result_free(&r);
                    if (csv && !dist) {
                        if (csv == stdout)   /* the row goes where the progress line is */
                            progress_clear(&prog);
                        csv_row(csv, row, fs[fi], o.eps > 0);
                        fflush(csv);
                    }
#if KAT_CLI_MPI
                    if (dist)
                        next = mpi_cli_next_point(total);
#endif
                }
            if (K.data != Q.data)
                kat_dmat_free(&K);
            kat_dmat_free(&Q);
        }
        kat_fn_destroy(f);
    }
    progress_finish(&prog);
    (void)point_st;   /* read below only by kat-mpi */
#if KAT_CLI_MPI
    if (dist) {
        /* Every process's rows to process 0, which writes those before the first missing
         * one (a failed point) in grid order; a failure anywhere fails every process. */
        kat_status st = mpi_cli_gather_rows(rows, total, sizeof *rows,
                                            rc == CLI_OK ? KAT_OK : point_st ? point_st
                                                                             : KAT_EINVAL);
        if (st && rc == CLI_OK)
            rc = cli_fail("sweep", "a grid point on another process", st);
        while (done_rows < total && rows[done_rows].n != 0)
            done_rows++;
        for (size_t i = 0; csv && i < done_rows; i++)
            csv_row(csv, &rows[i], fs[rows[i].fi], o.eps > 0);
    }
#endif
    if (csv_file) {
        kat_status st = kat_outfile_close(csv_file, rc == CLI_OK);
        if (st && rc == CLI_OK)
            rc = cli_fail("sweep", "--out", st);
    }
    if (json && rc == CLI_OK) {
        cli_json j;
        cli_json_begin(&j, stdout);
        cli_json_str(&j, "form", kat_rank_form_name(o.form));
        cli_json_str(&j, "method", o.method == KAT_RANK_DENSE ? "dense" : "randomized");
        cli_json_int(&j, "seed", (long long)pts.seed);
        if (o.eps > 0)
            cli_json_num(&j, "eps", o.eps);
        cli_json_open(&j, "points", '[');
        for (size_t i = 0; i < done_rows; i++) {
            const sweep_row *r = &rows[i];
            cli_json_open(&j, NULL, '{');
            cli_json_int(&j, "n", (long long)r->n);
            cli_json_int(&j, "d", (long long)r->d);
            cli_json_str(&j, "f", fs[r->fi]);
            cli_json_num(&j, "scale", r->scale);
            cli_json_int(&j, "rank", (long long)r->rank);
            if (r->predicted != KAT_RANK_NONE)
                cli_json_int(&j, "predicted", (long long)r->predicted);
            cli_json_num(&j, "stable", r->stable);
            cli_json_num(&j, "effective", r->effective);
            cli_json_num(&j, "seconds", r->seconds);
            if (o.eps > 0) {
                json_size(&j, "eps_rank_spectral", r->eps_spectral);
                json_size(&j, "eps_rank_frobenius", r->eps_frobenius);
            }
            cli_json_close(&j, '{');
        }
        cli_json_close(&j, '[');
        cli_json_end(&j);
    }
    if (png && rc == CLI_OK) {
        if (!gnuplot_available())
            fprintf(stderr, "kat sweep: gnuplot is not installed; no plot written (the CSV "
                            "has the data)\n");
        else {
            char cond[512];
            conditions(cond, sizeof cond, &pts, &o);
            if (plot(&pf, rows, done_rows, fs, nn, pr.form, cond))
                rc = CLI_FAIL;
        }
    }
    kat_free(rows);
done:
    for (size_t i = 0; given && i < nf_given; i++)
        kat_free(given[i]);
    kat_free(given);
    for (size_t i = 0; fs && i < nf; i++)
        kat_free(fs[i]);
    kat_free(fs);
    kat_free(ns);
    kat_free(ds);
    kat_free(scales);
    kat_free(degs);
    return rc;
}
