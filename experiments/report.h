/* The report that `kat reproduce` writes: out/report.md with tables, CSV files and gnuplot PNGs. */
#ifndef KAT_REPORT_H
#define KAT_REPORT_H

#include <stddef.h>
#include <stdio.h>

typedef struct {
    char dir[1024];
    FILE *md;           /* out/report.md */
    struct kat_outfile *md_file;   /* md is written to a temporary file, renamed at the close */
    int have_gnuplot;
    int plots, plots_failed;
} report;

/* Whether dir may take a report titled `title`: it does not exist, is empty, or was written
 * by an earlier report (its mark file, or its report.md under that title), so that no file
 * of the user's is overwritten. Returns 0, or -1 with a message on stderr. */
int report_dir_check(const char *dir, const char *title);
/* Create dir (and parents), mark it as a report's and open dir/report.md. Returns 0 or -1
 * with a message on stderr. */
int report_open(report *r, const char *dir, const char *title);
/* Close report.md, renaming it into place. Returns 0 or -1 with a message on stderr. */
int report_close(report *r);
/* printf into report.md. */
void report_printf(report *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A CSV file dir/name with a header line and rows of doubles (%.10g; NaN or Inf, a value that
 * does not exist, as an empty field). Returns 0 or -1. */
int report_csv(report *r, const char *name, const char *header, const double *rows, size_t nrows,
               size_t ncols);
/* Draw dir/png with gnuplot: the figure's script (`script`, after the header of gnuplot.h and
 * settings for reading the CSV files by name) is kept as dir/NAME.gp for NAME.png, so the
 * same script that drew the figure can be run again to read back its points. Links the PNG
 * from report.md under `caption`; without gnuplot, says so in the report. Returns 0 or -1. */
int report_plot(report *r, const char *png, const char *caption, const char *script);

/* Copy s into buf (size n) with every '|' escaped, so text can sit in a table cell. */
const char *report_cell(char *buf, size_t n, const char *s);

/* A Markdown table: report_table_header(r, "a|b|c") then rows of preformatted cells. */
void report_table_header(report *r, const char *cols);
void report_table_row(report *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
