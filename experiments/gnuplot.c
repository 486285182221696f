/* gnuplot scripts that draw a PNG or, given tablefile, write the plotted points. */
#include <stdlib.h>
#include <string.h>
#include "gnuplot.h"

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

FILE *gnuplot_script_open(const char *path, const char *png, int width, int height)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return NULL;
    fprintf(f, "# `gnuplot %s` draws the figure; `gnuplot -e \"tablefile='points.tab'\" %s` "
               "writes the points it plots.\n", strrchr(path, '/') ? strrchr(path, '/') + 1 : path,
            strrchr(path, '/') ? strrchr(path, '/') + 1 : path);
    fprintf(f, "if (exists(\"tablefile\")) { set table tablefile } else { set terminal pngcairo "
               "size %d,%d noenhanced font ',11'; set output ", width, height);
    gnuplot_string(f, png);
    fprintf(f, " }\n");
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

int gnuplot_run(const char *dir, const char *script, const char *log)
{
    char cmd[4096], w[3][1300];
    shell_word(w[0], sizeof w[0], dir);
    shell_word(w[1], sizeof w[1], script);
    shell_word(w[2], sizeof w[2], log ? log : "");
    snprintf(cmd, sizeof cmd, "cd %s && gnuplot %s%s%s", w[0], w[1], log ? " 2>" : "",
             log ? w[2] : "");
    return system(cmd) == 0 ? 0 : -1;
}
