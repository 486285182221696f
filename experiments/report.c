/* Report writer for `kat reproduce`: Markdown, CSV and gnuplot. */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include "gnuplot.h"
#include "kat/kat.h"
#include "report.h"

static int mkdir_p(const char *path)
{
    char buf[1024];
    size_t len = strlen(path);
    if (len == 0 || len >= sizeof buf)
        return -1;
    memcpy(buf, path, len + 1);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0777) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    return (mkdir(buf, 0777) == 0 || errno == EEXIST) ? 0 : -1;
}

/* The file that marks a directory as one kat reproduce writes: made first, so a run that is
 * interrupted before report.md exists marks its directory as well. */
#define REPORT_MARK ".kat-reproduce"

/* Whether dir/name exists and starts with `head`. */
static int starts_with(const char *dir, const char *name, const char *head)
{
    char path[1100], line[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    int yes = fgets(line, sizeof line, f) && strncmp(line, head, strlen(head)) == 0;
    fclose(f);
    return yes;
}

int report_dir_check(const char *dir, const char *title)
{
    struct stat st;
    if (stat(dir, &st) != 0)
        return 0;   /* new: made by report_open */
    if (!S_ISDIR(st.st_mode)) {
        fprintf(stderr, "kat reproduce: --out '%s' is not a directory\n", dir);
        return -1;
    }
    char head[300];
    snprintf(head, sizeof head, "# %s", title);
    if (starts_with(dir, REPORT_MARK, "kat reproduce") || starts_with(dir, "report.md", head))
        return 0;
    DIR *d = opendir(dir);
    if (!d)
        return 0;   /* unreadable: report_open says why it cannot write there */
    struct dirent *e;
    int empty = 1;
    while (empty && (e = readdir(d)))
        empty = strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0;
    closedir(d);
    if (empty)
        return 0;
    fprintf(stderr, "kat reproduce: --out '%s' holds files that are not a report of kat "
                    "reproduce, which it could overwrite; name a new or empty directory, or "
                    "one an earlier run wrote\n", dir);
    return -1;
}

int report_open(report *r, const char *dir, const char *title)
{
    memset(r, 0, sizeof *r);
    if (strlen(dir) >= sizeof r->dir - 64 || mkdir_p(dir) != 0) {
        fprintf(stderr, "kat reproduce: cannot create directory '%s': %s\n", dir, strerror(errno));
        return -1;
    }
    snprintf(r->dir, sizeof r->dir, "%s", dir);
    char path[1100];
    snprintf(path, sizeof path, "%s/%s", dir, REPORT_MARK);
    kat_outfile *mark;
    FILE *mf;
    if (kat_outfile_open(path, &mark, &mf) != KAT_OK ||
        (fprintf(mf, "kat reproduce writes this directory (report.md and the files it "
                     "links); a new run replaces them\n"),
         kat_outfile_close(mark, 1) != KAT_OK)) {
        fprintf(stderr, "kat reproduce: %s\n", kat_last_error());
        return -1;
    }
    snprintf(path, sizeof path, "%s/report.md", dir);
    if (kat_outfile_open(path, &r->md_file, &r->md) != KAT_OK) {
        fprintf(stderr, "kat reproduce: %s\n", kat_last_error());
        return -1;
    }
    r->have_gnuplot = gnuplot_available();
    fprintf(r->md, "# %s\n\n", title);
    return 0;
}

int report_close(report *r)
{
    int rc = 0;
    if (r->md_file && kat_outfile_close(r->md_file, 1) != KAT_OK) {
        fprintf(stderr, "kat reproduce: %s\n", kat_last_error());
        rc = -1;
    }
    r->md_file = NULL;
    r->md = NULL;
    return rc;
}

void report_printf(report *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfprintf(r->md, fmt, ap);
    va_end(ap);
}

int report_csv(report *r, const char *name, const char *header, const double *rows, size_t nrows,
               size_t ncols)
{
    char path[1100];
    snprintf(path, sizeof path, "%s/%s", r->dir, name);
    FILE *f;
    kat_outfile *o;
    if (kat_outfile_open(path, &o, &f) != KAT_OK) {
        fprintf(stderr, "kat reproduce: %s\n", kat_last_error());
        return -1;
    }
    fprintf(f, "%s\n", header);
    for (size_t i = 0; i < nrows; i++)
        for (size_t j = 0; j < ncols; j++) {
            double v = rows[i * ncols + j];
            if (isfinite(v))   /* a value that does not exist is an empty field, not nan */
                fprintf(f, "%.10g", v);
            fputc(j + 1 < ncols ? ',' : '\n', f);
        }
    if (kat_outfile_close(o, 1) != KAT_OK) {
        fprintf(stderr, "kat reproduce: %s\n", kat_last_error());
        return -1;
    }
    return 0;
}

int report_plot(report *r, const char *png, const char *caption, const char *script)
{
    r->plots++;
    if (!r->have_gnuplot) {
        r->plots_failed++;
        report_printf(r, "*%s: not drawn (gnuplot is not installed; the CSV has the data).*\n\n",
                      caption);
        return -1;
    }
    /* The script keeps the PNG's name with .gp for .png; it stays beside the figure. */
    char base[256], gp[300], log[300], path[1400];
    size_t len = strlen(png);
    if (len >= sizeof base)
        return -1;
    memcpy(base, png, len + 1);
    if (len > 4 && strcmp(base + len - 4, ".png") == 0)
        base[len - 4] = '\0';
    snprintf(gp, sizeof gp, "%s.gp", base);
    snprintf(log, sizeof log, "%s.log", base);
    snprintf(path, sizeof path, "%s/%s", r->dir, gp);
    kat_outfile *o;
    FILE *f = gnuplot_script_open(path, png, 900, 600, &o);
    if (f)
        fprintf(f, "set datafile separator ','\nset key outside right\nset grid\n%s\n", script);
    if (!f || kat_outfile_close(o, 1) != KAT_OK) {
        fprintf(stderr, "kat reproduce: %s\n", kat_last_error());
        r->plots_failed++;
        report_printf(r, "*%s: not drawn (cannot write %s).*\n\n", caption, gp);
        return -1;
    }
    if (gnuplot_run(r->dir, gp, png, log) != 0) {
        r->plots_failed++;
        report_printf(r, "*%s: gnuplot failed (see %s).*\n\n", caption, log);
        return -1;
    }
    report_printf(r, "![%s](%s)\n\n*%s*\n\n", caption, png, caption);
    return 0;
}

const char *report_cell(char *buf, size_t n, const char *s)
{
    size_t k = 0;
    for (; *s && k + 2 < n; s++) {
        if (*s == '|')
            buf[k++] = '\\';
        buf[k++] = *s;
    }
    buf[k] = '\0';
    return buf;
}

void report_table_header(report *r, const char *cols)
{
    fprintf(r->md, "| %s |\n|", cols);
    for (const char *p = cols; *p; p++)
        if (*p == '|')
            fputs("---|", r->md);
    fputs("---|\n", r->md);
}

void report_table_row(report *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("| ", r->md);
    vfprintf(r->md, fmt, ap);
    fputs(" |\n", r->md);
    va_end(ap);
}
