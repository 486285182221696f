/* `kat embed`: explicit embeddings of f(<a, b xor c>) on the corners of a hyperrectangle (l1
 * and squared-l2 points for Bernstein f, Gram features for completely monotone f), checked
 * against f on the corner pairs before they are written. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"

static const char usage[] =
    "usage: kat embed l1|l2sq|gram --f EXPR (--a a1,...,ad | --d D [--seed S]) [--out FILE]\n"
    "                 [--json]\n"
    "\n"
    "Points, one corner per row (corner i has coordinate t equal to a_t when bit t of i is\n"
    "set), whose l1 distances (l1), squared l2 distances (l2sq) or inner products (gram) are\n"
    "f(<a, b xor c>) = f(l1 distance of the corners):\n"
    "  l1, l2sq  2^d - 1 coordinates; f must have f(0) = 0 and be of negative type on the\n"
    "            corners (Bernstein functions such as sqrt, log1p, 1-exp(-x) qualify)\n"
    "  gram      2^d coordinates; f must be positive definite there (exp(-x), 1/(1+x), ...)\n"
    "--out FILE writes .npy (by extension) or CSV; otherwise CSV (or JSON \"points\") goes to\n"
    "stdout. The embedding is checked on every pair of corners (d <= 8) or on 4096 pairs drawn\n"
    "with --seed.";

static int write_matrix(const char *path, const kat_dmat *P)
{
    size_t len = strlen(path);
    kat_status st = len >= 4 && strcmp(path + len - 4, ".npy") == 0
                        ? kat_npy_write_dmat(path, P, KAT_DTYPE_F64)
                        : kat_csv_write(path, P);
    return st ? cli_fail("embed", path, st) : CLI_OK;
}

/* The measure the embedding must reproduce between rows b and c. */
static double row_measure(const kat_dmat *P, kat_embed_kind kind, size_t b, size_t c)
{
    const double *u = P->data + b * P->ld, *v = P->data + c * P->ld;
    double s = 0.0;
    for (size_t j = 0; j < P->cols; j++)
        s += kind == KAT_EMBED_L1     ? fabs(u[j] - v[j])
             : kind == KAT_EMBED_L2SQ ? (u[j] - v[j]) * (u[j] - v[j])
                                      : u[j] * v[j];
    return s;
}

int kat_cmd_embed(int argc, char **argv)
{
    const char *expr = NULL, *alist = NULL, *out = NULL;
    size_t d = 0;
    uint64_t seed = 1;
    int json = 0, seen_d = 0;
    const cli_opt opts[] = {
        {"f", CLI_STR, &expr, "EXPR  the function of the l1 distance, e.g. 'sqrt(x)'", NULL},
        {"a", CLI_STR, &alist, "LIST  the sides a1,...,ad (each > 0)", NULL},
        {"d", CLI_SIZE, &d, "D     without --a: sides drawn uniformly from [0.5, 1.5]", &seen_d},
        {"seed", CLI_U64, &seed, "S     seed of the random sides and checked pairs (default 1)",
         NULL},
        {"out", CLI_STR, &out, "FILE  write the points to FILE (.npy or .csv)", NULL},
        {"json", CLI_FLAG, &json, "machine-readable output", NULL},
    };
    const size_t nopts = sizeof opts / sizeof opts[0];
    char *pos[1];
    size_t npos = 0;
    int rc = cli_parse(usage, opts, nopts, argc, argv, pos, 1, &npos);
    if (rc)
        return rc < 0 ? CLI_OK : rc;
    kat_embed_kind kind = KAT_EMBED_L1;
    const char *problem = NULL;
    char bad_kind[160];
    if (!npos) {
        problem = "a KIND (l1, l2sq or gram) is required";
    } else if (kat_metric_embed_parse(pos[0], &kind)) {
        snprintf(bad_kind, sizeof bad_kind, "KIND must be l1, l2sq or gram, not '%s'", pos[0]);
        problem = bad_kind;
    } else if (!expr) {
        problem = "--f EXPR is required";
    } else if (!alist && !seen_d) {
        problem = "--a LIST or --d D is required";
    }
    if (problem) {
        fprintf(stderr, "kat embed: %s\n", problem);
        cli_print_usage(stderr, usage, opts, nopts);
        return CLI_USAGE;
    }
    double *a = NULL;
    size_t na = d;
    if (alist) {
        if (cli_parse_option_list("embed", "--a", alist, &a, &na)) {
            cli_print_usage(stderr, usage, opts, nopts);
            return CLI_USAGE;
        }
        if (seen_d && d != na) {   /* --d is ignored with --a: it may only agree */
            fprintf(stderr, "kat embed: --d %zu disagrees with the %zu sides of --a\n", d, na);
            kat_free(a);
            cli_print_usage(stderr, usage, opts, nopts);
            return CLI_USAGE;
        }
    }
    kat_fn *f = NULL;
    kat_rng *rng = NULL;
    kat_dmat P = {0};
    size_t rows = 0, cols = 0;
    if ((rc = cli_parse_fn("embed", "--f", expr, &f))) {
        kat_free(a);
        return rc;
    }
    kat_status st = kat_rng_create(seed, &rng);
    if (!st)
        st = kat_metric_embed_shape(kind, na, &rows, &cols);
    if (!st && !a) {
        if (!(a = kat_calloc(na ? na : 1, sizeof *a)))
            st = KAT_ENOMEM;
        for (size_t t = 0; !st && t < na; t++)
            a[t] = 0.5 + kat_rng_uniform(rng);
    }
    if (!st)
        st = kat_dmat_alloc(rows, cols, &P);
    double t0 = cli_now();
    if (!st)
        st = kat_metric_embed(kind, f, a, na, &P);
    double seconds = cli_now() - t0;
    if (st) {
        rc = cli_fail("embed", "embed", st);
        goto done;
    }
    /* Check the embedding against f itself. */
    double max_abs = 0.0, max_rel = 0.0;
    size_t pairs = rows <= 256 ? rows * rows : 4096;
    for (size_t p = 0; p < pairs; p++) {
        size_t b = rows <= 256 ? p / rows : (size_t)kat_rng_uint(rng, rows);
        size_t c = rows <= 256 ? p % rows : (size_t)kat_rng_uint(rng, rows);
        double dist = 0.0;
        for (size_t t = 0; t < na; t++)
            dist += ((b ^ c) >> t & 1) ? a[t] : 0.0;
        double want = kat_fn_eval1(f, dist), got = row_measure(&P, kind, b, c);
        double err = fabs(got - want);
        max_abs = fmax(max_abs, err);
        if (want != 0.0)
            max_rel = fmax(max_rel, err / fabs(want));
    }
    if (out && (rc = write_matrix(out, &P)) != CLI_OK)
        goto done;
    static const char *const names[] = {"l1", "l2sq", "gram"};
    if (json) {
        cli_json j;
        cli_json_begin(&j, stdout);
        cli_json_str(&j, "kind", names[kind]);
        cli_json_str(&j, "f", kat_fn_name(f));
        cli_json_int(&j, "d", (long long)na);
        cli_json_array(&j, "a", a, na);
        cli_json_int(&j, "rows", (long long)rows);
        cli_json_int(&j, "cols", (long long)cols);
        cli_json_int(&j, "pairs_checked", (long long)pairs);
        cli_json_num(&j, "max_abs_err", max_abs);
        cli_json_num(&j, "max_rel_err", max_rel);
        cli_json_num(&j, "seconds", seconds);
        if (out) {
            cli_json_str(&j, "out", out);
        } else {
            cli_json_open(&j, "points", '[');
            for (size_t b = 0; b < rows; b++)
                cli_json_array(&j, NULL, P.data + b * P.ld, cols);
            cli_json_close(&j, '[');
        }
        cli_json_end(&j);
    } else {
        FILE *msg = out ? stdout : stderr;   /* keep stdout pure CSV when it carries the points */
        fprintf(msg, "%s embedding of f = %s on the 2^%zu corners: %zu x %zu\n", names[kind],
                kat_fn_name(f), na, rows, cols);
        fprintf(msg, "checked on %zu pairs: max abs error %.3g, max rel error %.3g\n", pairs,
                max_abs, max_rel);
        if (out) {
            fprintf(msg, "wrote %s\n", out);
        } else {
            for (size_t b = 0; b < rows; b++) {
                for (size_t c = 0; c < cols; c++)
                    printf("%s%.17g", c ? "," : "", P.data[b * P.ld + c]);
                printf("\n");
            }
        }
    }
    rc = CLI_OK;
done:
    kat_dmat_free(&P);
    kat_rng_destroy(rng);
    kat_fn_destroy(f);
    kat_free(a);
    return rc;
}
