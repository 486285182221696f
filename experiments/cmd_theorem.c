/* `kat theorem`: list, run one or run every entry of the theorem registry; the exit status is 1
 * when any theorem fails. */
#include <string.h>
#include "cli.h"
#include "progress.h"

static const char usage[] =
    "usage: kat theorem list [--json]\n"
    "       kat theorem run ID [ID...] [--quick] [--json]\n"
    "       kat theorem all [--quick] [--json]\n"
    "\n"
    "Each entry recomputes its measured values (fixed seeds) and compares them with the values\n"
    "its source states; the exit status is 1 if any entry fails. --quick runs the reduced-size\n"
    "variants (for sanitizer builds). docs/theory.md describes every entry.";

static const char *cmp_text(kat_theorem_cmp c)
{
    return c == KAT_THEOREM_LE ? "<=" : c == KAT_THEOREM_GE ? ">=" : "==";
}

static void print_list(int json)
{
    size_t n = kat_theorem_count();
    cli_json j;
    if (json) {
        cli_json_begin(&j, stdout);
        cli_json_open(&j, "theorems", '[');
    }
    for (size_t i = 0; i < n; i++) {
        const kat_theorem_info *t = kat_theorem_info_at(i);
        if (json) {
            cli_json_open(&j, NULL, '{');
            cli_json_str(&j, "id", t->id);
            cli_json_str(&j, "title", t->title);
            cli_json_str(&j, "statement", t->statement);
            cli_json_str(&j, "source", t->source);
            cli_json_str(&j, "routine", t->routine);
            cli_json_str(&j, "test", t->test);
            cli_json_close(&j, '{');
        } else {
            printf("%-26s %s\n%-26s   %s\n", t->id, t->title, "", t->source);
        }
    }
    if (json) {
        cli_json_close(&j, '[');
        cli_json_int(&j, "count", (long long)n);
        cli_json_end(&j);
    }
}

static void print_text(const kat_theorem_result *r)
{
    const kat_theorem_info *t = r->info;
    printf("== %s: %s%s\n", t->id, t->title, r->quick ? " (quick)" : "");
    printf("statement: %s\nsource:    %s\nchecked by: %s\n", t->statement, t->source, t->routine);
    for (size_t k = 0; k < r->nvalues; k++) {
        const kat_theorem_value *v = &r->values[k];
        printf("  %-4s %-66s measured %-14.10g expected %s %.10g", v->pass ? "ok" : "FAIL",
               v->label, v->measured, cmp_text(v->cmp), v->expected);
        if (v->tol > 0)
            printf(" (tol %.2g)", v->tol);
        printf("\n");
    }
    if (*r->note)
        printf("note: %s\n", r->note);
    printf("%s  %s (%zu values, %.2f s)\n\n", r->pass ? "PASS" : "FAIL", t->id, r->nvalues,
           r->seconds);
}

static void print_json(cli_json *j, const kat_theorem_result *r)
{
    const kat_theorem_info *t = r->info;
    cli_json_open(j, NULL, '{');
    cli_json_str(j, "id", t->id);
    cli_json_str(j, "title", t->title);
    cli_json_str(j, "statement", t->statement);
    cli_json_str(j, "source", t->source);
    cli_json_str(j, "routine", t->routine);
    cli_json_str(j, "test", t->test);
    cli_json_bool(j, "pass", r->pass);
    cli_json_bool(j, "quick", r->quick);
    cli_json_num(j, "seconds", r->seconds);
    cli_json_str(j, "note", r->note);
    cli_json_open(j, "values", '[');
    for (size_t k = 0; k < r->nvalues; k++) {
        const kat_theorem_value *v = &r->values[k];
        cli_json_open(j, NULL, '{');
        cli_json_str(j, "label", v->label);
        cli_json_num(j, "measured", v->measured);
        cli_json_num(j, "expected", v->expected);
        cli_json_str(j, "cmp", cmp_text(v->cmp));
        cli_json_num(j, "tol", v->tol);
        cli_json_bool(j, "pass", v->pass);
        cli_json_close(j, '{');
    }
    cli_json_close(j, '[');
    cli_json_close(j, '{');
}

int kat_cmd_theorem(int argc, char **argv)
{
    int json = 0, quick = 0;
    const cli_opt opts[] = {
        {"json", CLI_FLAG, &json, "machine-readable output", NULL},
        {"quick", CLI_FLAG, &quick, "reduced sizes (sanitizer and valgrind runs)", NULL},
    };
    const size_t nopts = sizeof opts / sizeof opts[0];
    enum { MAXPOS = 64 };
    char *pos[MAXPOS];
    size_t npos = 0;
    int rc = cli_parse(usage, opts, nopts, argc, argv, pos, MAXPOS, &npos);
    if (rc)
        return rc < 0 ? CLI_OK : rc;
    const char *verb = npos ? pos[0] : NULL;
    int is_list = verb && !strcmp(verb, "list"), is_run = verb && !strcmp(verb, "run"),
        is_all = verb && !strcmp(verb, "all");
    if (!verb)
        return cli_usage("theorem", "a verb (list, run or all) is required");
    if (!is_list && !is_run && !is_all)
        return cli_usage("theorem", "the verb must be list, run or all, not '%s'", verb);
    if (is_run && npos < 2)
        return cli_usage("theorem", "run needs at least one theorem ID");
    if (!is_run && npos > 1)
        return cli_usage("theorem", "%s takes no theorem ID, got '%s' (only run does)", verb,
                         pos[1]);
    if (is_list && quick)
        return cli_usage("theorem", "--quick is for run and all");
    if (is_list) {
        print_list(json);
        return CLI_OK;
    }
    size_t idx[MAXPOS], count = 0;
    if (is_all) {
        for (size_t i = 0; i < kat_theorem_count() && i < MAXPOS; i++)
            idx[count++] = i;
    } else {
        for (size_t p = 1; p < npos; p++) {
            if (kat_theorem_find(pos[p], &idx[count]))   /* an ID is an argument: usage */
                return cli_usage("theorem", "run: %s", kat_last_error());
            count++;
        }
    }
    cli_json j;
    if (json) {
        cli_json_begin(&j, stdout);
        cli_json_open(&j, "theorems", '[');
    }
    size_t passed = 0, failed = 0;
    double t0 = cli_now();
    kat_theorem_result *r = kat_calloc(1, sizeof *r);
    if (!r)
        return cli_fail("theorem", "run", KAT_ENOMEM);
    progress prog;   /* on a terminal: the theorem being computed, with an estimate */
    progress_start(&prog, stderr, "kat theorem", json);
    for (size_t i = 0; i < count; i++) {
        progress_update(&prog, (double)i / (double)count, "%s", kat_theorem_info_at(idx[i])->id);
        kat_status st = kat_theorem_run(idx[i], quick ? KAT_THEOREM_QUICK : 0, r);
        progress_clear(&prog);   /* the line goes before the theorem's own output */
        if (st) {
            /* Could not be computed: counted as a failure, reported on stderr. */
            fprintf(stderr, "kat theorem: %s: %s: %s\n", kat_theorem_info_at(idx[i])->id,
                    kat_strerror(st), kat_last_error());
            failed++;
            continue;
        }
        r->pass ? passed++ : failed++;
        if (json)
            print_json(&j, r);
        else
            print_text(r);
        fflush(stdout);
    }
    progress_finish(&prog);
    kat_free(r);
    double seconds = cli_now() - t0;
    if (json) {
        cli_json_close(&j, '[');
        cli_json_int(&j, "passed", (long long)passed);
        cli_json_int(&j, "failed", (long long)failed);
        cli_json_bool(&j, "pass", failed == 0);
        cli_json_num(&j, "seconds", seconds);
        cli_json_end(&j);
    } else {
        printf("%zu passed, %zu failed (%.1f s)\n", passed, failed, seconds);
    }
    return failed ? CLI_FAIL : CLI_OK;
}
