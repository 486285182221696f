/* Rank figures of the report: (a) the rank of f(QK^T) against n, (b) the epsilon-rank of
 * exp(QK^T/d) against the entry bound B, (c) spectra on the hypercube. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../gnuplot.h"
#include "reproduce.h"

static int fail_step(repro *R, const char *what)
{
    fprintf(stderr, "kat reproduce: %s: %s\n", what, kat_last_error());
    report_printf(&R->rep, "**%s failed:** %s\n\n", what, kat_last_error());
    R->failures++;
    return -1;
}

/* Q and K (n x d) drawn with the given options from one seed. */
static kat_status draw_points(const kat_rank_points_opts *po, uint64_t seed, size_t n, size_t d,
                              kat_dmat *Q, kat_dmat *K)
{
    kat_rng *rng;
    kat_status st = kat_rng_create(seed, &rng);
    if (st)
        return st;
    if (!(st = kat_dmat_alloc(n, d, Q)) && !(st = kat_dmat_alloc(n, d, K)) &&
        !(st = kat_rank_points(po, rng, Q)))
        st = kat_rank_points(po, rng, K);
    kat_rng_destroy(rng);
    return st;
}

/* ---- (a) rank against n ---------------------------------------------------------------- */

int repro_rank_vs_n(repro *R)
{
    static const char *const fns[] = {"(1+x)^1", "(1+x)^2", "(1+x)^3", "(1+x)^4", "exp(x)",
                                      "relu(x)", "gelu(x)", "sigmoid(x)", "cos(x)"};
    const size_t nf = sizeof fns / sizeof fns[0];
    const size_t ds[] = {4, 8, 16};
    const size_t full_ns[] = {25, 50, 100, 200, 400, 800}, quick_ns[] = {25, 50, 100, 200, 400};
    const size_t *ns = R->quick ? quick_ns : full_ns;
    size_t nn = R->quick ? 5 : 6, nmax = ns[nn - 1];
    const size_t ncols = 2 + nf * 2;   /* d, n, then (rank, predicted) per f */
    double *rows = calloc(3 * nn * ncols, sizeof *rows);
    kat_fn *f[9] = {0};
    int rc = 0;
    for (size_t i = 0; i < nf && !rc; i++)
        if (kat_fn_parse(fns[i], &f[i], NULL))
            rc = fail_step(R, "rank vs n: parse");
    report_printf(&R->rep, "## Rank of f(QKᵀ) against n\n\n"
                  "Q, K with N(0, 1/d) entries (seed %llu), numerical rank at the default "
                  "tolerance σ₁·max(m,n)·eps (dense SVD). Polynomials level off at the rank the "
                  "theory predicts (Guillot–Khare–Rajaratnam: Σₜ C(iₜ+r−1, r−1) with r = d); "
                  "the others grow with n.\n\n", (unsigned long long)R->seed);
    for (size_t di = 0; di < 3 && !rc; di++) {
        size_t d = ds[di];
        kat_dmat Q = {0}, K = {0};
        kat_rank_points_opts po;
        kat_rank_points_opts_init(&po);
        if (draw_points(&po, R->seed + d, nmax, d, &Q, &K)) {
            rc = fail_step(R, "rank vs n: points");
            break;
        }
        for (size_t ni = 0; ni < nn && !rc; ni++) {
            size_t n = ns[ni];
            kat_dmat Qs = {n, d, Q.ld, Q.data}, Ks = {n, d, K.ld, K.data};
            double *row = rows + (di * nn + ni) * ncols;
            repro_progress(R, (double)(di * nn + ni) / (double)(3 * nn), "d = %zu, n = %zu", d, n);
            row[0] = (double)d;
            row[1] = (double)n;
            for (size_t i = 0; i < nf && !rc; i++) {
                kat_rank_opts opts;
                kat_rank_opts_init(&opts);
                kat_rank_result res;
                if (kat_rank_probe(f[i], &Qs, &Ks, &opts, &res)) {
                    rc = fail_step(R, "rank vs n: probe");
                    break;
                }
                row[2 + 2 * i] = (double)res.rank;
                row[3 + 2 * i] = res.predicted_rank == KAT_RANK_NONE ? NAN
                                                                     : (double)res.predicted_rank;
                kat_rank_result_free(&res);
            }
        }
        kat_dmat_free(&Q);
        kat_dmat_free(&K);
    }
    if (!rc) {
        char header[1024] = "d,n";
        for (size_t i = 0; i < nf; i++) {
            size_t len = strlen(header);
            snprintf(header + len, sizeof header - len, ",rank %s,predicted %s", fns[i], fns[i]);
        }
        report_csv(&R->rep, "rank_vs_n.csv", header, rows, 3 * nn, ncols);
        /* One column per n, so the header names every n of the grid. */
        char head[256] = "f, d";
        for (size_t ni = 0; ni < nn; ni++) {
            size_t len = strlen(head);
            snprintf(head + len, sizeof head - len, "|rank, n = %zu", ns[ni]);
        }
        size_t len0 = strlen(head);
        snprintf(head + len0, sizeof head - len0, "|predicted, n = %zu", nmax);
        report_table_header(&R->rep, head);
        for (size_t di = 0; di < 3; di++)
            for (size_t i = 0; i < nf; i++) {
                char cells[256] = "";
                for (size_t ni = 0; ni < nn; ni++) {
                    size_t len = strlen(cells);
                    snprintf(cells + len, sizeof cells - len, "%s%.0f", ni ? "|" : "",
                             rows[(di * nn + ni) * ncols + 2 + 2 * i]);
                }
                double pred = rows[(di * nn + nn - 1) * ncols + 3 + 2 * i];
                char ptxt[32];
                snprintf(ptxt, sizeof ptxt, isnan(pred) ? "—" : "%.0f", pred);
                report_table_row(&R->rep, "%s, d = %zu|%s|%s", fns[i], ds[di], cells, ptxt);
            }
        report_printf(&R->rep, "\n");
        for (size_t di = 0; di < 3; di++) {
            char script[8192], png[64], caption[160];
            int len = snprintf(script, sizeof script,
                               "set logscale xy\nset xlabel 'n (f(QK^T) is n x n)'\n"
                               "set ylabel 'numerical rank'\n"
                               "set title 'rank of f(QK^T), d = %zu: Q, K with N(0, 1/d) entries "
                               "(seed %llu), tolerance sigma_1 n eps'\nplot ",
                               ds[di], (unsigned long long)R->seed);
            /* The rows of this d, chosen by their d column (not by line numbers, which would
             * count the CSV's header line); then the predicted ranks as open circles in the
             * function's color, so a point inside its circle is a rank as predicted. */
            for (size_t i = 0; i < nf; i++)
                len += snprintf(script + len, sizeof script - (size_t)len,
                                "'rank_vs_n.csv' using 2:($1 == %zu ? $%zu : NaN) with "
                                "linespoints lc rgb %s title '%s', ", ds[di], 3 + 2 * i,
                                gnuplot_color(i), fns[i]);
            for (size_t i = 0; i < nf; i++)
                if (!isnan(rows[(di * nn + nn - 1) * ncols + 3 + 2 * i]))
                    len += snprintf(script + len, sizeof script - (size_t)len,
                                    "'rank_vs_n.csv' using 2:($1 == %zu ? $%zu : NaN) with "
                                    "points pt 6 ps 2.2 lc rgb %s title '%s predicted', ",
                                    ds[di], 4 + 2 * i, gnuplot_color(i), fns[i]);
            snprintf(script + len, sizeof script - (size_t)len,
                     "x with lines dt 2 lc 'gray' title 'n'\n");
            snprintf(png, sizeof png, "rank_vs_n_d%zu.png", ds[di]);
            snprintf(caption, sizeof caption, "Rank of f(QKᵀ) against n, d = %zu; circles: the "
                     "rank Guillot–Khare–Rajaratnam predict for the polynomials", ds[di]);
            report_plot(&R->rep, png, caption, script);
        }
        /* The check the figure is about: every polynomial's rank equals its prediction. */
        size_t bad = 0, total = 0;
        for (size_t k = 0; k < 3 * nn; k++)
            for (size_t i = 0; i < 4; i++, total++)
                bad += rows[k * ncols + 2 + 2 * i] != rows[k * ncols + 3 + 2 * i];
        report_printf(&R->rep, "Polynomial ranks equal to the prediction: %zu of %zu.\n\n",
                      total - bad, total);
        repro_note(R, "rank vs n: polynomial ranks = prediction in %zu of %zu cases", total - bad,
                   total);
        R->failures += bad != 0;
    }
    for (size_t i = 0; i < nf; i++)
        kat_fn_destroy(f[i]);
    free(rows);
    return rc;
}

/* ---- (b) epsilon-rank against the entry bound ------------------------------------------- */

int repro_eps_rank_vs_bound(repro *R)
{
    const size_t n = R->quick ? 256 : 512, d = 4;
    const double eps = 1e-6;
    const size_t nb = R->quick ? 8 : 12;
    enum { NC = 5 };   /* B, spectral, Frobenius, numerical rank, n */
    double *rows = calloc(nb * NC, sizeof *rows);
    kat_dmat Q0 = {0}, K0 = {0}, Q = {0}, K = {0};
    kat_fn *f = NULL;
    int rc = 0;
    kat_rank_points_opts po;
    kat_rank_points_opts_init(&po);
    po.dist = KAT_RANK_DIST_UNIFORM;
    po.bound = 1.0;
    if (draw_points(&po, R->seed, n, d, &Q0, &K0) || kat_dmat_alloc(n, d, &Q) ||
        kat_dmat_alloc(n, d, &K) || kat_fn_builtin("exp", &f))
        rc = fail_step(R, "epsilon-rank vs B: setup");
    report_printf(&R->rep,
                  "## ε-rank of exp(QKᵀ/d) against the entry bound B\n\n"
                  "Alman–Song (arXiv 2302.13214): with entries bounded by B, exp(QKᵀ/d) has a "
                  "low-rank approximation of rank C(d+g, g), g the degree of a polynomial that "
                  "approximates exp on [−B², B²]. Here Q = B·Q₀, K = B·K₀ with Q₀, K₀ uniform on "
                  "[−1, 1], n = %zu, d = %zu, ε = %g (spectral: σₖ₊₁ ≤ ε·σ₁); dashed lines "
                  "are the levels C(d+g, g), the dotted line n. ε is relative to σ₁: at large "
                  "B a few entries near e^(B²) dominate σ₁, so the ε-rank can fall again — "
                  "C(d+g, g) bounds it from above, it does not predict it.\n\n", n, d, eps);
    for (size_t b = 0; b < nb && !rc; b++) {
        double B = 0.25 * pow(2.0, 0.5 * (double)b);   /* 0.25 .. 16 (full) */
        repro_progress(R, (double)b / (double)nb, "B = %.3g", B);
        for (size_t i = 0; i < n * d; i++) {
            Q.data[i] = B * Q0.data[i];
            K.data[i] = B * K0.data[i];
        }
        kat_rank_opts opts;
        kat_rank_opts_init(&opts);
        opts.scale = 1.0 / (double)d;
        opts.eps = eps;
        opts.predict = 0;
        kat_rank_result res;
        if (kat_rank_probe(f, &Q, &K, &opts, &res)) {
            rc = fail_step(R, "epsilon-rank vs B: probe");
            break;
        }
        rows[b * NC + 0] = B;
        rows[b * NC + 1] = (double)res.eps_rank_spectral;
        rows[b * NC + 2] = (double)res.eps_rank_frobenius;
        rows[b * NC + 3] = (double)res.rank;
        rows[b * NC + 4] = (double)n;
        kat_rank_result_free(&res);
    }
    if (!rc) {
        report_csv(&R->rep, "eps_rank_vs_bound.csv",
                   "B,eps_rank_spectral,eps_rank_frobenius,rank,n", rows, nb, NC);
        report_table_header(&R->rep, "B|ε-rank (spectral)|ε-rank (Frobenius)|numerical rank");
        for (size_t b = 0; b < nb; b++)
            report_table_row(&R->rep, "%.3g|%.0f|%.0f|%.0f", rows[b * NC], rows[b * NC + 1],
                             rows[b * NC + 2], rows[b * NC + 3]);
        report_printf(&R->rep, "\n");
        /* The levels C(d+g, g) in gray, each named with its g in the key and above the line
         * at the left edge; the labels go before the plot command. The eps-rank cannot pass
         * n: that ceiling is drawn too, so a curve that flattens under it is not read as a
         * level reached. */
        char script[4096] = "", plot[2048];
        int len = snprintf(plot, sizeof plot,
                           "plot 'eps_rank_vs_bound.csv' using 1:2 with linespoints lc rgb %s "
                           "title 'spectral eps-rank', '' using 1:3 with linespoints lc rgb %s "
                           "title 'Frobenius eps-rank', '' using 1:5 with lines dt 3 lw 2 "
                           "lc 'gray40' title 'n = %zu (full rank)'", gnuplot_color(0),
                           gnuplot_color(1), n);
        int slen = snprintf(script, sizeof script,
                            "set logscale xy\nset xlabel 'entry bound B (Q, K entries in [-B, B])'\n"
                            "set ylabel 'eps-rank at eps = %g'\n"
                            "set title 'eps-rank of exp(QK^T/d): Q, K uniform on [-B, B]^d, "
                            "d = %zu, n = %zu, eps = %g'\n", eps, d, n, eps);
        for (size_t g = 1; g <= 8; g++) {
            size_t level = kat_rank_binomial(d + g, g);
            if (level > n)
                break;
            len += snprintf(plot + len, sizeof plot - (size_t)len,
                            ", %zu with lines dt 2 lc 'gray' title 'g = %zu: C(%zu+%zu, %zu) = %zu'",
                            level, g, d, g, g, level);
            slen += snprintf(script + slen, sizeof script - (size_t)slen,
                             "set label 'g = %zu' at graph 0.01, first %zu left offset 0,0.6 "
                             "font ',9' tc 'gray40'\n", g, level);
        }
        snprintf(script + slen, sizeof script - (size_t)slen, "%s\n", plot);
        report_plot(&R->rep, "eps_rank_vs_bound.png", "ε-rank of exp(QKᵀ/d) against B", script);
        repro_note(R, "eps-rank vs B: %.0f at B = %.3g up to %.0f at B = %.3g", rows[1], rows[0],
                   rows[(nb - 1) * NC + 1], rows[(nb - 1) * NC]);
    }
    kat_fn_destroy(f);
    kat_dmat_free(&Q0);
    kat_dmat_free(&K0);
    kat_dmat_free(&Q);
    kat_dmat_free(&K);
    free(rows);
    return rc;
}

/* ---- (c) spectra on the hypercube ------------------------------------------------------- */

int repro_cube_spectra(repro *R)
{
    static const struct {
        const char *f, *kind;
    } kernels[] = {{"exp(-x)", "completely monotone"},
                   {"sqrt(x)", "Bernstein"},
                   {"x^2", "neither completely monotone nor Bernstein"}};
    enum { D = 10, NK = 3, NC = 2 + 2 * NK };   /* j, multiplicity, lambda x3, lambda/|lambda_0| x3 */
    /* |lambda_j| <= ZERO_TOL |lambda_0| is a zero: exact arithmetic would give 0 there. */
    static const double ZERO_TOL = 1e-12;
    double rows[(D + 1) * NC];
    size_t count[NK][3] = {{0}};   /* positive, negative, zero eigenvalues with multiplicity */
    int rc = 0;
    report_printf(&R->rep,
                  "## Spectra on the hypercube\n\n"
                  "D_f = [f(‖b − c‖₁)] over the 2^%d corners of {0,1}^%d: eigenvectors are "
                  "the Walsh characters χ_S and the eigenvalue depends only on |S| = j "
                  "(Krawtchouk form). A completely monotone f gives a positive definite matrix; "
                  "a Bernstein f one positive eigenvalue and the rest negative (negative type, "
                  "Schoenberg); x² is neither. An eigenvalue with |λ| ≤ %g·|λ₀| is counted as "
                  "zero.\n\n", D, D, ZERO_TOL);
    for (size_t k = 0; k < NK && !rc; k++) {
        kat_fn *f = NULL;
        double lambda[D + 1], mult[D + 1];
        if (kat_fn_parse(kernels[k].f, &f, NULL) ||
            kat_group_hypercube_spectrum(f, D, lambda, mult)) {
            rc = fail_step(R, "hypercube spectra");
            kat_fn_destroy(f);
            break;
        }
        kat_fn_destroy(f);
        double tol = ZERO_TOL * fabs(lambda[0]);
        for (size_t j = 0; j <= D; j++) {
            rows[j * NC] = (double)j;
            rows[j * NC + 1] = mult[j];
            rows[j * NC + 2 + k] = lambda[j];
            rows[j * NC + 2 + NK + k] = lambda[j] / fabs(lambda[0]);
            count[k][lambda[j] > tol ? 0 : lambda[j] < -tol ? 1 : 2] += (size_t)mult[j];
        }
        report_printf(&R->rep, "- `%s` (%s): %zu positive, %zu negative and %zu zero "
                      "eigenvalues of %d.\n", kernels[k].f, kernels[k].kind, count[k][0],
                      count[k][1], count[k][2], 1 << D);
        repro_note(R, "hypercube d = %d, %s: %zu positive, %zu negative, %zu zero eigenvalues",
                   D, kernels[k].f, count[k][0], count[k][1], count[k][2]);
    }
    if (!rc) {
        report_printf(&R->rep, "\n");
        report_csv(&R->rep, "cube_spectra.csv",
                   "j,multiplicity,exp(-x),sqrt(x),x^2,exp(-x) normalised,sqrt(x) normalised,"
                   "x^2 normalised", rows, D + 1, NC);
        report_table_header(&R->rep, "j = abs(S)|multiplicity|exp(−x)|√x|x²");
        /* A rounding-error zero (|lambda_j| <= ZERO_TOL |lambda_0|) is printed as 0; the CSV
         * keeps the computed value. */
        for (size_t j = 0; j <= D; j++) {
            char cell[NK][32];
            for (size_t k = 0; k < NK; k++)
                snprintf(cell[k], sizeof cell[k], "%.6g",
                         fabs(rows[j * NC + 2 + NK + k]) <= ZERO_TOL ? 0.0 : rows[j * NC + 2 + k]);
            report_table_row(&R->rep, "%zu|%.0f|%s|%s|%s", j, rows[j * NC + 1], cell[0], cell[1],
                             cell[2]);
        }
        report_printf(&R->rep, "\n");
        /* |lambda| on a log axis, the sign in the marker: filled up-triangles positive, open
         * down-triangles negative; zeros cannot sit on a log axis and are named in the key.
         * Kernel k's markers sit at j + (k - 1) * CUBE_DODGE, so where the kernels share a
         * value (every lambda_0 / |lambda_0| is 1) all of them stay visible. */
        const double CUBE_DODGE = 0.2;
        char script[4096];
        int len = snprintf(script, sizeof script,
                           "set logscale y\nset xrange [-0.5:%d.5]\nset yrange [*:3]\n"
                           "set xtics 1\nset key inside top right box opaque\n"
                           "set xlabel 'j = |S| (an eigenvalue of multiplicity C(%d, j)); markers "
                           "shifted by -%g, 0, +%g in key order'\n"
                           "set ylabel '|lambda_j| / |lambda_0|'\n"
                           "set title 'eigenvalues of [f(|b - c|_1)], b, c in {0,1}^%d "
                           "(filled up: lambda > 0, open down: lambda < 0)'\nplot ",
                           D, D, CUBE_DODGE, CUBE_DODGE, D);
        for (size_t k = 0; k < NK; k++) {
            size_t col = 2 + NK + k + 1;   /* gnuplot counts columns from 1 */
            double dx = ((double)k - 1.0) * CUBE_DODGE;
            const char *c = gnuplot_color(k);
            len += snprintf(script + len, sizeof script - (size_t)len,
                            "%s'cube_spectra.csv' using ($1 + %g):($%zu > %g ? $%zu : NaN) with "
                            "points pt 9 ps 1.6 lc rgb %s title '%s: lambda > 0 (%zu of %d)', "
                            "'' using ($1 + %g):($%zu < -%g ? -$%zu : NaN) with points pt 10 "
                            "ps 1.6 lc rgb %s title '%s: lambda < 0 (%zu of %d)'",
                            k ? ", " : "", dx, col, ZERO_TOL, col, c, kernels[k].f,
                            count[k][0], 1 << D, dx, col, ZERO_TOL, col, c, kernels[k].f,
                            count[k][1], 1 << D);
            if (count[k][2])
                len += snprintf(script + len, sizeof script - (size_t)len,
                                ", NaN with points pt 6 lc rgb %s title '%s: lambda = 0 (%zu of "
                                "%d, not drawn)'", c, kernels[k].f, count[k][2], 1 << D);
        }
        snprintf(script + len, sizeof script - (size_t)len, "\n");
        report_plot(&R->rep, "cube_spectra.png",
                    "|λ_j|/|λ_0| on the hypercube, d = 10, on a log axis: ▲ positive, ▽ "
                    "negative (λ_j has multiplicity C(10, j))", script);
    }
    return rc;
}
