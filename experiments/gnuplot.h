/* gnuplot scripts of kat's figures. Each figure is one script file, F.gp, that draws its PNG
 * when run as `gnuplot F.gp` and, run as `gnuplot -e "tablefile='F.tab'" F.gp`, writes the
 * points it plots as a table instead: the same script, so a test can read back exactly what
 * the figure shows (tests/plot_readback.py). */
#ifndef KAT_GNUPLOT_H
#define KAT_GNUPLOT_H

#include <stdio.h>

struct kat_outfile;

/* 1 when gnuplot is on PATH. */
int gnuplot_available(void);

/* Open the script `path` (a kat_outfile: written whole or not at all) and write its header:
 * the PNG `png` (a name relative to the script's directory, where the script runs) of width
 * x height pixels, or the table. The caller writes the rest and closes *o with
 * kat_outfile_close. NULL (the reason in kat_last_error) when it cannot be created. */
FILE *gnuplot_script_open(const char *path, const char *png, int width, int height,
                          struct kat_outfile **o);

/* The color of series i, as gnuplot's `lc rgb` takes it ('#rrggbb'): ten colors told apart in
 * print and by most color-blind readers, none gray (the reference lines are gray), then again
 * from the first. gnuplot's own cycle has eight, so a ninth series took the first one's color. */
const char *gnuplot_color(size_t i);

/* s as a gnuplot single-quoted string ('' stands for '). */
void gnuplot_string(FILE *f, const char *s);

/* Run `gnuplot script` inside dir; the PNG dir/png it draws (sent through a pipe) replaces
 * the old one only when gnuplot succeeds, and its messages go to dir/log (NULL: to this
 * stderr), kept only when there are some. Returns 0 or -1 (a message on stderr naming the
 * file when a write fails). */
int gnuplot_run(const char *dir, const char *script, const char *png, const char *log);

#endif
