/* Option parsing and JSON output shared by the `kat` subcommands. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "cli.h"

/* "kat CMD" (or "kat CMD SUB") from a usage text "usage: kat CMD [SUB] ...": the lowercase
 * words after "usage: ", SUB only when the text has no second form ("\n       kat ...", as
 * theorem's list/run/all), since then the help is the command's, not the form's. */
static void usage_command(const char *usage, char *buf, size_t size)
{
    const char *p = strncmp(usage, "usage: ", 7) == 0 ? usage + 7 : "";
    int forms = strstr(usage, "\n       kat ") != NULL;
    size_t len = 0;
    for (int words = 0; words < (forms ? 2 : 3); words++) {
        const char *w = p;
        while (*p >= 'a' && *p <= 'z')
            p++;
        if (p == w || (*p != ' ' && *p != '\n' && *p != '\0'))
            break;
        len = (size_t)(p - usage) - 7;
        while (*p == ' ')
            p++;
    }
    if (len == 0 || strncmp(usage + 7, "kat", 3) != 0)
        snprintf(buf, size, "kat");
    else
        snprintf(buf, size, "%.*s", (int)len, usage + 7);
}

/* The last line of every usage error; kat_cmd is "kat rank", "kat bench attn". */
static void see_help(FILE *out, const char *kat_cmd) { fprintf(out, "see %s --help\n", kat_cmd); }

void cli_print_usage(FILE *out, const char *usage, const cli_opt *opts, size_t nopts)
{
    if (out != stdout) {
        char cmd[64];
        usage_command(usage, cmd, sizeof cmd);
        see_help(out, cmd);
        return;
    }
    fprintf(out, "%s\n", usage);
    if (nopts)
        fprintf(out, "\nOptions:\n");
    for (size_t i = 0; i < nopts; i++)
        fprintf(out, "  --%-14s %s\n", opts[i].name, opts[i].help ? opts[i].help : "");
    fprintf(out, "  --%-14s %s\n", "help", "print this help and exit");
}

static int parse_value(const char *cmd, const cli_opt *o, const char *v)
{
    char *end = NULL;
    errno = 0;
    switch (o->type) {
    case CLI_STR:
        *(const char **)o->dest = v;
        return 0;
    case CLI_INT: {
        long x = strtol(v, &end, 10);
        if (end != v && !*end && (errno == ERANGE || x < -2147483647L || x > 2147483647L)) {
            fprintf(stderr, "%s: --%s %s is out of range (-2147483647 to 2147483647)\n", cmd,
                    o->name, v);
            return -1;
        }
        if (errno || end == v || *end)
            break;
        *(int *)o->dest = (int)x;
        return 0;
    }
    case CLI_SIZE: {
        if (*v == '-')
            break;
        double x = strtod(v, &end);   /* accepts 65536 and 6.5e4 */
        if (errno || end == v || *end || !(x >= 0) || x != floor(x) || x > 1e15)
            break;
        *(size_t *)o->dest = (size_t)x;
        return 0;
    }
    case CLI_U64: {
        if (*v == '-')
            break;
        unsigned long long x = strtoull(v, &end, 10);
        if (errno || end == v || *end)
            break;
        *(uint64_t *)o->dest = (uint64_t)x;
        return 0;
    }
    case CLI_DOUBLE: {
        double x = strtod(v, &end);
        if (errno || end == v || *end || !isfinite(x))
            break;
        *(double *)o->dest = x;
        return 0;
    }
    case CLI_FLAG:
        break;
    }
    static const char *const kind[] = {"", "a string", "an integer", "a non-negative integer",
                                       "a finite number", "a non-negative integer"};
    fprintf(stderr, "%s: --%s expects %s, got '%s'\n", cmd, o->name, kind[o->type], v);
    return -1;
}

/* A table that names an option twice is a bug in the subcommand: only one of the two could
 * ever be reached (the parser takes the last), and --help would list both. */
static int duplicate_option(const cli_opt *opts, size_t nopts)
{
    for (size_t i = 0; i < nopts; i++) {
        int twice = strcmp(opts[i].name, "help") == 0;   /* cli_parse's own */
        for (size_t k = i + 1; k < nopts && !twice; k++)
            twice = strcmp(opts[i].name, opts[k].name) == 0;
        if (twice) {
            fprintf(stderr, "kat: internal error: option --%s is defined twice\n", opts[i].name);
            return 1;
        }
    }
    return 0;
}

int cli_parse(const char *usage, const cli_opt *opts, size_t nopts, int argc, char **argv,
              char **pos, size_t maxpos, size_t *npos)
{
    size_t np = 0;
    if (duplicate_option(opts, nopts))
        return CLI_FAIL;
    char cmd[64];
    usage_command(usage, cmd, sizeof cmd);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            cli_print_usage(stdout, usage, opts, nopts);
            return -1;
        }
        if (strncmp(a, "--", 2) != 0 || a[2] == '\0') {
            if (np >= maxpos) {
                fprintf(stderr, "%s: unexpected argument '%s'\n", cmd, a);
                goto usage;
            }
            pos[np++] = argv[i];
            continue;
        }
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        const cli_opt *o = NULL;
        for (size_t k = 0; k < nopts; k++)
            if (strlen(opts[k].name) == len && strncmp(opts[k].name, name, len) == 0)
                o = &opts[k];
        if (!o) {
            fprintf(stderr, "%s: unknown option '%s'\n", cmd, a);
            goto usage;
        }
        if (o->seen)
            *o->seen = 1;
        if (o->type == CLI_FLAG) {
            if (eq) {
                fprintf(stderr, "%s: --%s takes no value, got '%s'\n", cmd, o->name, eq + 1);
                goto usage;
            }
            *(int *)o->dest = 1;
            continue;
        }
        const char *v = eq ? eq + 1 : NULL;
        if (!v) {
            if (i + 1 >= argc) {
                fprintf(stderr, "%s: --%s needs a value\n", cmd, o->name);
                goto usage;
            }
            v = argv[++i];
        }
        if (parse_value(cmd, o, v))
            goto usage;
    }
    if (npos)
        *npos = np;
    return CLI_OK;
usage:
    cli_print_usage(stderr, usage, opts, nopts);
    return CLI_USAGE;
}

int cli_usage(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "kat %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    cli_see_help(cmd);
    return CLI_USAGE;
}

void cli_see_help(const char *cmd)
{
    char kat_cmd[64];
    snprintf(kat_cmd, sizeof kat_cmd, "kat %s", cmd);
    see_help(stderr, kat_cmd);
}

int cli_parse_fn(const char *cmd, const char *opt, const char *expr, kat_fn **f)
{
    if (kat_fn_builtin(expr, f) == KAT_OK)
        return CLI_OK;
    kat_clear_error();
    kat_status st = kat_fn_parse(expr, f, NULL);
    if (st == KAT_OK)
        return CLI_OK;
    if (st == KAT_ENOMEM)
        return cli_fail(cmd, opt, st);
    /* The message gives the column ("parse error: column 6: ..."). */
    return cli_usage(cmd, "%s '%s': %s: %s", opt, expr, kat_strerror(st), kat_last_error());
}

/* The limit in words: "the limit of 8 threads (4 per CPU, 2 CPUs)". */
static void threads_limit(FILE *out)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    fprintf(out, "the limit of %d threads (4 per CPU, %ld CPU%s)", kat_max_threads(), cpus,
            cpus == 1 ? "" : "s");
}

int cli_check_threads(const char *cmd, long threads)
{
    if (threads <= kat_max_threads())
        return CLI_OK;
    fprintf(stderr, "kat %s: --threads %ld is above ", cmd, threads);
    threads_limit(stderr);
    fputc('\n', stderr);
    cli_see_help(cmd);
    return CLI_USAGE;
}

int cli_set_threads(const char *cmd, int threads)
{
    kat_set_num_threads(threads);
    kat_status st = kat_blas_reserve();
    return st ? cli_fail(cmd, "threads", st) : CLI_OK;
}

int cli_check_env_threads(void)
{
    const char *env = getenv("KAT_NUM_THREADS");
    if (!env || !*env)
        return CLI_OK;
    char *end;
    errno = 0;
    long v = strtol(env, &end, 10);
    if (*end || end == env || v < 1) {   /* the library would take the default instead */
        fprintf(stderr, "kat: KAT_NUM_THREADS='%s' is not a thread count (a whole number from "
                        "1 to %d; unset it for the default)\n", env, kat_max_threads());
        see_help(stderr, "kat");
        return CLI_USAGE;
    }
    if (v <= kat_max_threads() && errno != ERANGE)
        return CLI_OK;
    fprintf(stderr, "kat: KAT_NUM_THREADS=%s is above ", env);
    threads_limit(stderr);
    fputc('\n', stderr);
    see_help(stderr, "kat");
    return CLI_USAGE;
}

int cli_fail(const char *cmd, const char *what, kat_status st)
{
    const char *detail = kat_last_error();
    fprintf(stderr, "kat %s: %s: %s%s%s\n", cmd, what, kat_strerror(st), *detail ? ": " : "",
            detail);
    return CLI_FAIL;
}

int cli_read_fail(const char *cmd, const char *opt, const char *path, kat_status st)
{
    if (st == KAT_EINVAL)
        return cli_usage(cmd, "%s: %s", opt, kat_last_error());
    return cli_fail(cmd, path, st);
}

int cli_check_nonempty(const char *cmd, const char *opt, const char *path, const kat_dmat *m)
{
    if (m->rows && m->cols)
        return CLI_OK;
    fprintf(stderr, "kat %s: %s '%s' holds no numbers (%zu rows, %zu columns)\n", cmd, opt, path,
            m->rows, m->cols);
    return CLI_FAIL;
}

/* ---- JSON ---------------------------------------------------------------------------- */

static void json_sep(cli_json *j)
{
    if (j->need_comma[j->depth])
        fputc(',', j->out);
    j->need_comma[j->depth] = 1;
}

static void json_string(FILE *out, const char *s)
{
    fputc('"', out);
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(out, "\\%c", c);
        else if (c == '\n')
            fputs("\\n", out);
        else if (c < 0x20)
            fprintf(out, "\\u%04x", c);
        else
            fputc(c, out);
    }
    fputc('"', out);
}

void cli_json_key(cli_json *j, const char *key)
{
    json_sep(j);
    if (key) {
        json_string(j->out, key);
        fputc(':', j->out);
    }
}

void cli_json_begin(cli_json *j, FILE *out)
{
    memset(j, 0, sizeof *j);
    j->out = out;
    fputc('{', out);
}

void cli_json_end(cli_json *j) { fputs("}\n", j->out); }

static void json_double(FILE *out, double v)
{
    if (!isfinite(v)) {
        fputs("null", out);
        return;
    }
    char buf[40];
    for (int prec = 15; prec <= 17; prec++) {   /* shortest form that round-trips */
        snprintf(buf, sizeof buf, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            break;
    }
    fputs(buf, out);
}

void cli_json_num(cli_json *j, const char *key, double v)
{
    cli_json_key(j, key);
    json_double(j->out, v);
}

void cli_json_int(cli_json *j, const char *key, long long v)
{
    cli_json_key(j, key);
    fprintf(j->out, "%lld", v);
}

void cli_json_str(cli_json *j, const char *key, const char *s)
{
    cli_json_key(j, key);
    json_string(j->out, s);
}

void cli_json_bool(cli_json *j, const char *key, int v)
{
    cli_json_key(j, key);
    fputs(v ? "true" : "false", j->out);
}

void cli_json_open(cli_json *j, const char *key, char bracket)
{
    cli_json_key(j, key);
    fputc(bracket, j->out);
    if (j->depth < 31)
        j->depth++;
    j->need_comma[j->depth] = 0;
}

void cli_json_close(cli_json *j, char bracket)
{
    fputc(bracket == '{' ? '}' : ']', j->out);
    if (j->depth > 0)
        j->depth--;
}

void cli_json_array(cli_json *j, const char *key, const double *v, size_t n)
{
    cli_json_open(j, key, '[');
    for (size_t i = 0; i < n; i++)
        cli_json_num(j, NULL, v[i]);
    cli_json_close(j, '[');
}

int cli_parse_list(const char *s, double **out, size_t *n)
{
    return cli_parse_option_list(NULL, NULL, s, out, n);
}

int cli_parse_option_list(const char *cmd, const char *opt, const char *s, double **out,
                          size_t *n)
{
    size_t cap = 1;
    for (const char *p = s; *p; p++)
        cap += *p == ',';
    double *v = kat_malloc(cap * sizeof *v);
    if (!v)
        return -1;
    size_t k = 0;
    const char *p = s;
    while (1) {
        char *end;
        errno = 0;
        double x = strtod(p, &end);
        if (end == p || errno || !isfinite(x) || (*end && *end != ',')) {
            if (opt)
                fprintf(stderr, "kat %s: %s '%s' is not a comma-separated list of numbers (at "
                                "'%s')\n", cmd, opt, s, p);
            else
                fprintf(stderr, "kat: '%s' is not a comma-separated list of numbers (at '%s')\n",
                        s, p);
            kat_free(v);
            return -1;
        }
        v[k++] = x;
        if (!*end)
            break;
        p = end + 1;
    }
    *out = v;
    *n = k;
    return 0;
}

double cli_now(void)
{
    return timing_now();
}
