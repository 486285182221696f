/* gnuplot scripts that draw a PNG or, given tablefile, write the plotted points. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "gnuplot.h"
#include "kat/kat.h"

int gnuplot_available(void)
{
    return system("command -v gnuplot >/dev/null 2>&1") == 0;
}

const char *gnuplot_color(size_t i)
{
    static const char *const colors[] = {"'#1f77b4'", "'#d62728'", "'#2ca02c'", "'#ff7f0e'",
                                          "'#9467bd'", "'#8c564b'", "'#e377c2'", "'#000000'",
                                          "'#bcbd22'", "'#17becf'"};
    return colors[i % (sizeof colors / sizeof colors[0])];
}

void gnuplot_string(FILE *f, const char *s)
{
    fputc('\'', f);
    for (; *s; s++) {
        if (*s == '\'')
            fputc('\'', f);
        fputc(*s, f);
    }
    fputc('\'', f);
}

FILE *gnuplot_script_open(const char *path, const char *png, int width, int height,
                          kat_outfile **o)
{
    FILE *f;
    if (kat_outfile_open(path, o, &f) != KAT_OK)
        return NULL;
    fprintf(f, "# `gnuplot %s` draws the figure; `gnuplot -e \"tablefile='points.tab'\" %s` "
               "writes the points it plots.\n", strrchr(path, '/') ? strrchr(path, '/') + 1 : path,
            strrchr(path, '/') ? strrchr(path, '/') + 1 : path);
    /* kat itself has the PNG sent to stdout (kat_stdout), to write it whole or not at all */
    fprintf(f, "if (exists(\"tablefile\")) { set table tablefile } else { set terminal pngcairo "
               "size %d,%d noenhanced font ',11'; if (exists(\"kat_stdout\")) { set output } "
               "else { set output ", width, height);
    gnuplot_string(f, png);
    fprintf(f, " } }\n");
    return f;
}

/* A shell single-quoted word: ' becomes '\''. */
static size_t shell_word(char *buf, size_t n, const char *s)
{
    size_t k = 0;
    if (k + 1 < n)
        buf[k++] = '\'';
    for (; *s && k + 5 < n; s++) {
        if (*s == '\'') {
            memcpy(buf + k, "'\\''", 4);
            k += 4;
        } else {
            buf[k++] = *s;
        }
    }
    if (k + 1 < n)
        buf[k++] = '\'';
    buf[k] = '\0';
    return k;
}

/* dir/name, or NULL (a message on stderr) when it does not fit */
static int join(char *buf, size_t n, const char *dir, const char *name)
{
    if ((size_t)snprintf(buf, n, "%s/%s", dir, name) < n)
        return 0;
    fprintf(stderr, "kat: the path %s/%s is too long\n", dir, name);
    return -1;
}

int gnuplot_run(const char *dir, const char *script, const char *png, const char *log)
{
    char cmd[4200], w[2][1300], png_path[2100], log_path[2100];
    if (join(png_path, sizeof png_path, dir, png) || (log && join(log_path, sizeof log_path,
                                                                  dir, log)))
        return -1;
    kat_outfile *out[2] = {NULL, NULL};   /* the PNG, the log */
    FILE *pf, *lf = NULL;
    if (kat_outfile_open(png_path, &out[0], &pf) != KAT_OK ||
        (log && kat_outfile_open(log_path, &out[1], &lf) != KAT_OK)) {
        fprintf(stderr, "kat: %s\n", kat_last_error());
        kat_outfile_close_all(out, 2, 0);
        return -1;
    }
    shell_word(w[0], sizeof w[0], dir);
    shell_word(w[1], sizeof w[1], script);
    /* the log's temporary file is open here: gnuplot's stderr is sent to its descriptor */
    char redirect[32] = "";
    if (lf)
        snprintf(redirect, sizeof redirect, " 2>&%d", fileno(lf));
    snprintf(cmd, sizeof cmd, "cd %s && gnuplot -e kat_stdout=1 %s%s", w[0], w[1], redirect);
    fflush(NULL);
    FILE *p = popen(cmd, "r");
    int ok = p != NULL;
    char buf[8192];
    size_t n, bytes = 0;
    while (p && (n = fread(buf, 1, sizeof buf, p)) > 0) {
        bytes += n;
        ok &= fwrite(buf, 1, n, pf) == n;
    }
    if (p && pclose(p) != 0)
        ok = 0;
    ok &= bytes > 0;
    struct stat st;
    int quiet = lf && fstat(fileno(lf), &st) == 0 && st.st_size == 0;
    /* the PNG only when drawn whole; the log when gnuplot said something (else an old one
     * from an earlier run goes) */
    kat_status s = kat_outfile_close(out[0], ok);
    if (s)
        fprintf(stderr, "kat: %s\n", kat_last_error());
    if (lf && kat_outfile_close(out[1], !quiet) != KAT_OK)
        fprintf(stderr, "kat: %s\n", kat_last_error());
    if (quiet)
        remove(log_path);
    return ok && s == KAT_OK ? 0 : -1;
}
