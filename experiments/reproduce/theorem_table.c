/* The theorem table of the report: every registered theorem, measured against expected. */
#include <stdio.h>
#include <stdlib.h>
#include "reproduce.h"

/* What a value must satisfy, as a reader writes it: "= 21", "0.7082 ± 0.003", "≤ 1e-13",
 * "≥ 1"; a tolerance of 0 is left out. */
static const char *requirement(char *buf, size_t n, const kat_theorem_value *v)
{
    static const char *const rel[] = {"= ", "≤ ", "≥ "}, *const side[] = {" ± ", " + ", " − "};
    if (v->tol > 0 && v->cmp == KAT_THEOREM_EQ)
        snprintf(buf, n, "%.10g ± %.3g", v->expected, v->tol);
    else if (v->tol > 0)
        snprintf(buf, n, "%s%.10g%s%.3g", rel[v->cmp], v->expected, side[v->cmp], v->tol);
    else
        snprintf(buf, n, "%s%.10g", rel[v->cmp], v->expected);
    return buf;
}

int repro_theorems(repro *R)
{
    size_t n = kat_theorem_count(), passed = 0, errors = 0;
    kat_theorem_result *res = calloc(n ? n : 1, sizeof *res);
    kat_status *st = calloc(n ? n : 1, sizeof *st);
    if (!res || !st) {
        free(res);
        free(st);
        return -1;
    }
    report_printf(&R->rep, "## Theorems\n\n"
                  "Every entry of kat's theorem registry (`kat theorem all`), computed in this "
                  "run. docs/theory.md gives each source and the routine that checks it.\n\n");
    report_table_header(&R->rep, "id|source|values within tolerance|time (s)|result");
    for (size_t i = 0; i < n; i++) {
        const kat_theorem_info *info = kat_theorem_info_at(i);
        char cell[1024];
        repro_progress(R, (double)i / (double)n, "%s", info->id);
        if ((st[i] = kat_theorem_run(i, R->quick ? KAT_THEOREM_QUICK : 0, &res[i]))) {
            report_table_row(&R->rep, "%s|%s|—|—|ERROR: %s", info->id, info->source,
                             report_cell(cell, sizeof cell, kat_last_error()));
            if (errors++ == 0)   /* why, on the terminal too (out of memory, say) */
                repro_note(R, "theorem %s could not run: %s: %s", info->id,
                           kat_strerror(st[i]), kat_last_error());
            R->failures++;
            continue;
        }
        size_t ok = 0;
        for (size_t v = 0; v < res[i].nvalues; v++)
            ok += res[i].values[v].pass != 0;
        report_table_row(&R->rep, "%s|%s|%zu of %zu|%.2f|%s", info->id,
                         report_cell(cell, sizeof cell, info->source), ok, res[i].nvalues,
                         res[i].seconds, res[i].pass ? "PASS" : "**FAIL**");
        passed += res[i].pass != 0;
        R->failures += !res[i].pass;
    }
    report_printf(&R->rep, "\n%zu of %zu theorems pass.\n\n", passed, n);
    repro_note(R, "theorems: %zu of %zu pass", passed, n);

    /* The individual values, for a reader who wants the numbers. */
    report_printf(&R->rep, "<details><summary>All measured values</summary>\n\n");
    report_table_header(&R->rep, "theorem|value|measured|required|pass");
    for (size_t i = 0; i < n; i++)
        for (size_t v = 0; !st[i] && v < res[i].nvalues; v++) {
            char cell[256], req[96];
            report_table_row(&R->rep, "%s|%s|%.10g|%s|%s", res[i].info->id,
                             report_cell(cell, sizeof cell, res[i].values[v].label),
                             res[i].values[v].measured,
                             requirement(req, sizeof req, &res[i].values[v]),
                             res[i].values[v].pass ? "yes" : "NO");
        }
    report_printf(&R->rep, "\n</details>\n\n");
    free(res);
    free(st);
    return 0;
}
