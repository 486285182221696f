/* CSV matrices: one row per line, comma-separated numbers, or separated by spaces and tabs as
 * numpy's savetxt writes them (the first line that is not blank or a comment decides: a comma
 * in it makes the file comma-separated).
 *
 * Reading accepts spaces and tabs around numbers, "\r\n" line ends, a last line without a
 * newline, blank lines, '#' comment lines, a UTF-8 byte-order mark, and one optional header
 * line of names before the first row. Numbers are parsed in the "C" locale whatever the
 * program's locale, so "0.5" is one half even under a locale whose decimal mark is ','.
 * Writing prints every entry with %.17g, which reads back to the same double. */
#include <errno.h>
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "core/internal.h"
#include "core/io_internal.h"
#include "kat/io.h"

/* Switch the calling thread to the "C" locale for number text, and back. glibc hands out a
 * static object for "C", so this costs no allocation. */
typedef struct {
    locale_t c, saved;
} c_locale_scope;

static void c_locale_enter(c_locale_scope *s)
{
    s->c = newlocale(LC_ALL_MASK, "C", (locale_t)0);
    s->saved = s->c ? uselocale(s->c) : (locale_t)0;
}

static void c_locale_leave(c_locale_scope *s)
{
    if (s->c) {
        uselocale(s->saved);
        freelocale(s->c);
    }
}

static int is_blank(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v'; }

/* Trim blanks from both ends of [*s, *e). */
static void trim(const char **s, const char **e)
{
    while (*s < *e && is_blank(**s))
        (*s)++;
    while (*e > *s && is_blank((*e)[-1]))
        (*e)--;
}

typedef enum { NUM_OK, NUM_EMPTY, NUM_TEXT, NUM_NONFINITE, NUM_OVERFLOW, NUM_NOMEM } num_kind;

/* Parse a whole trimmed field [s, e) of a buffer that ends at buf_end as a double. */
static num_kind parse_number(const char *s, const char *e, const char *buf_end, double *out)
{
    size_t n = (size_t)(e - s);
    if (n == 0)
        return NUM_EMPTY;
    /* strtod stops at the first character that cannot continue a number. Inside the buffer
     * the field is followed by a blank, ',' or '\n', none of which can, so strtod parses it in
     * place; only a field that ends the buffer, which has no terminator, is copied. */
    char small[64], *tmp = (char *)s;
    if (e == buf_end) {
        tmp = small;
        if (n >= sizeof small && !(tmp = kat_malloc(n + 1)))
            return NUM_NOMEM;
        memcpy(tmp, s, n);
        tmp[n] = '\0';
    }
    char *end;
    errno = 0;
    double x = strtod(tmp, &end);
    int overflow = errno == ERANGE && fabs(x) == HUGE_VAL;
    num_kind k = end != tmp + n ? NUM_TEXT
                 : overflow     ? NUM_OVERFLOW
                 : !isfinite(x) ? NUM_NONFINITE
                                : NUM_OK;
    if (tmp != s && tmp != small)
        kat_free(tmp);
    *out = x;
    return k;
}

/* The error for a field that is not a finite number. */
static kat_status field_error(num_kind k, size_t line, size_t col, const char *s, const char *e)
{
    char q[KAT_IO_QUOTE_MAX];
    kat_io_quote(s, (size_t)(e - s), q);
    switch (k) {
    case NUM_EMPTY:
        return kat__fail(KAT_EFORMAT, "csv: line %zu, column %zu: empty field", line, col);
    case NUM_NONFINITE:
        return kat__fail(KAT_EDOM, "csv: line %zu, column %zu: '%s' is not finite (kat accepts "
                                  "only finite data)", line, col, q);
    case NUM_OVERFLOW:
        return kat__fail(KAT_EDOM, "csv: line %zu, column %zu: '%s' overflows a double", line, col,
                        q);
    case NUM_NOMEM:
        return kat__fail(KAT_ENOMEM, "csv: line %zu, column %zu: cannot allocate %zu bytes", line,
                        col, (size_t)(e - s) + 1);
    default:
        return kat__fail(KAT_EFORMAT, "csv: line %zu, column %zu: '%s' is not a number", line, col,
                        q);
    }
}

/* Whether text starts like a number: an optional sign, an optional '.', then a digit. */
static int starts_numeric(const char *s, const char *e)
{
    if (s < e && (*s == '+' || *s == '-'))
        s++;
    if (s < e && *s == '.')
        s++;
    return s < e && *s >= '0' && *s <= '9';
}

/* The field of the line [f, e) that starts at f, trimmed to [*fs, *fe); returns where the next
 * field starts, or NULL after the last. sep is ',' (fields may be empty) or ' ' (fields are
 * separated by runs of blanks; [f, e) is trimmed, so none is empty). */
static const char *next_field(const char *f, const char *e, char sep, const char **fs,
                              const char **fe)
{
    const char *next = NULL;
    *fs = f;
    if (sep == ',') {
        const char *comma = memchr(f, ',', (size_t)(e - f));
        *fe = comma ? comma : e;
        next = comma ? comma + 1 : NULL;
    } else {
        const char *p = f;
        while (p < e && !is_blank(*p))
            p++;
        *fe = p;
        while (p < e && is_blank(*p))
            p++;
        next = p < e ? p : NULL;
    }
    trim(fs, fe);
    return next;
}

/* A header is a first line whose fields are all names: none a number, none starting like one
 * ("1;2" is a row in the wrong format, not a header), at least one not empty. A line with
 * any number in it is data, so a typo in the first row is reported, not skipped. */
static int is_header(const char *s, const char *e, char sep, const char *buf_end, size_t *ncols,
                     int *nomem)
{
    size_t n = 0;
    int text = 0;
    for (const char *f = s; f; n++) {
        const char *fs, *fe;
        f = next_field(f, e, sep, &fs, &fe);
        double x;
        num_kind k = parse_number(fs, fe, buf_end, &x);
        if (k == NUM_NOMEM) {
            *nomem = 1;
            return 0;
        }
        if (k == NUM_OK || k == NUM_NONFINITE || k == NUM_OVERFLOW || starts_numeric(fs, fe))
            return 0;
        text |= k == NUM_TEXT;
    }
    *ncols = n;
    return text;
}

/* A growing array of parsed values. */
typedef struct {
    double *v;
    size_t n, cap;
} values;

static kat_status values_push(values *b, double x)
{
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        if (b->cap && kat_mul_overflow(b->cap, 2, &cap))
            return kat__fail(KAT_ERANGE, "csv: more values than size_t can count");
        double *v = kat__alloc_array(cap, sizeof(double), "csv: matrix values");
        if (!v)
            return KAT_ENOMEM;
        if (b->n)
            memcpy(v, b->v, b->n * sizeof(double));
        kat_free(b->v);
        b->v = v;
        b->cap = cap;
    }
    b->v[b->n++] = x;
    return KAT_OK;
}

static kat_status csv_parse_lines(const char *buf, size_t len, kat_dmat *out)
{
    const char *p = buf, *end = buf + len;
    if (len >= 3 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0)
        p += 3;   /* UTF-8 byte-order mark, as spreadsheet programs write */
    values vals = {NULL, 0, 0};
    size_t line = 0, rows = 0, cols = 0, first_row_line = 0, header_line = 0, header_cols = 0;
    int first_content = 1;
    char sep = ',';
    kat_status st = KAT_OK;
    while (p < end && st == KAT_OK) {
        line++;
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol)
            eol = end;
        const char *s = p, *e = eol;
        p = eol < end ? eol + 1 : end;
        trim(&s, &e);
        if (s == e || *s == '#')
            continue;   /* blank or comment line */
        if (first_content) {
            first_content = 0;
            sep = memchr(s, ',', (size_t)(e - s)) ? ',' : ' ';
            int nomem = 0;
            if (is_header(s, e, sep, end, &header_cols, &nomem)) {
                header_line = line;
                continue;
            }
            if (nomem) {
                st = kat__fail(KAT_ENOMEM, "csv: line %zu: cannot allocate a field buffer", line);
                break;
            }
        }
        size_t col = 0;
        for (const char *f = s; f;) {
            const char *fs, *fe;
            f = next_field(f, e, sep, &fs, &fe);
            col++;
            if (rows > 0 && col > cols) {
                st = kat__fail(KAT_EFORMAT, "csv: line %zu, column %zu: the row has more than "
                                           "the %zu columns of line %zu",
                              line, col, cols, first_row_line);
                break;
            }
            double x;
            num_kind k = parse_number(fs, fe, end, &x);
            if (k != NUM_OK) {
                st = field_error(k, line, col, fs, fe);
                break;
            }
            if ((st = values_push(&vals, x)))
                break;
        }
        if (st)
            break;
        if (rows == 0) {
            cols = col;
            first_row_line = line;
            if (header_line && header_cols != cols)
                st = kat__fail(KAT_EFORMAT, "csv: line %zu has %zu columns but the header on "
                                           "line %zu names %zu",
                              line, cols, header_line, header_cols);
        } else if (col < cols) {
            st = kat__fail(KAT_EFORMAT, "csv: line %zu, column %zu: the row ends after %zu "
                                       "columns but line %zu has %zu",
                          line, col + 1, col, first_row_line, cols);
        }
        rows++;
    }
    if (st == KAT_OK && rows == 0) {
        /* No data: an empty matrix, as wide as the header when there is one. */
        st = kat_dmat_alloc(0, header_line ? header_cols : 0, out);
    } else if (st == KAT_OK) {
        out->rows = rows;
        out->cols = cols;
        out->ld = cols;
        out->data = vals.v;
        return KAT_OK;
    }
    kat_free(vals.v);
    return st;
}

kat_status kat_csv_parse(const char *buf, size_t len, kat_dmat *out)
{
    if (!out)
        return kat__fail(KAT_EINVAL, "csv_parse: out is NULL");
    if (!buf && len)
        return kat__fail(KAT_EINVAL, "csv_parse: buf is NULL with len = %zu", len);
    c_locale_scope loc;
    c_locale_enter(&loc);
    kat_status st = csv_parse_lines(buf ? buf : "", len, out);
    c_locale_leave(&loc);
    return st;
}

/* Read a whole file into a kat_malloc'd buffer. */
static kat_status read_whole_file(const char *path, char **buf, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return kat__fail(KAT_EIO, "cannot open '%s': %s", path, strerror(errno));
    struct stat sb;
    int have_stat = fstat(fileno(f), &sb) == 0;
    if (have_stat && S_ISDIR(sb.st_mode)) {
        fclose(f);
        return kat__fail(KAT_EIO, "cannot read '%s': %s", path, strerror(EISDIR));
    }
    /* The size is a hint (pipes have none, files may grow): read until the end. */
    size_t cap = have_stat && S_ISREG(sb.st_mode) && sb.st_size > 0 ? (size_t)sb.st_size + 1
                                                                     : 65536;
    size_t n = 0;
    char *b = kat_malloc(cap);
    kat_status st = b ? KAT_OK : kat__fail(KAT_ENOMEM, "'%s': cannot allocate %zu bytes", path, cap);
    while (st == KAT_OK) {
        n += fread(b + n, 1, cap - n, f);
        if (ferror(f)) {
            st = kat__fail(KAT_EIO, "cannot read '%s': %s", path, strerror(errno));
        } else if (n < cap) {
            break;   /* end of file */
        } else {
            size_t bigger;
            char *nb = NULL;
            if (kat_mul_overflow(cap, 2, &bigger) || !(nb = kat_malloc(bigger))) {
                st = kat__fail(KAT_ENOMEM, "'%s': cannot allocate %zu bytes", path, cap * 2);
            } else {
                memcpy(nb, b, n);
                kat_free(b);
                b = nb;
                cap = bigger;
            }
        }
    }
    fclose(f);
    if (st) {
        kat_free(b);
        return st;
    }
    *buf = b;
    *len = n;
    return KAT_OK;
}

kat_status kat_csv_read(const char *path, kat_dmat *out)
{
    if (!path)
        return kat__fail(KAT_EINVAL, "csv_read: path is NULL");
    if (!out)
        return kat__fail(KAT_EINVAL, "csv_read: out is NULL");
    char *buf = NULL;
    size_t len = 0;
    kat_status st = read_whole_file(path, &buf, &len);
    if (st)
        return st;
    st = kat_csv_parse(buf, len, out);
    kat_free(buf);
    if (st) {
        char why[400];
        snprintf(why, sizeof why, "%s", kat_last_error());
        return kat__fail(st, "'%s': %s", path, why);
    }
    return KAT_OK;
}

kat_status kat_csv_write(const char *path, const kat_dmat *m)
{
    if (!path)
        return kat__fail(KAT_EINVAL, "csv_write: path is NULL");
    kat_status st = kat_dmat_check(m, "csv_write: m", 1);
    if (st)
        return st;
    kat_outfile *o;
    FILE *f;
    if ((st = kat_outfile_open(path, &o, &f)))
        return st;
    c_locale_scope loc;
    c_locale_enter(&loc);
    int bad = 0;
    for (size_t i = 0; i < m->rows && !bad; i++) {
        const double *row = m->cols ? m->data + i * m->ld : NULL;   /* r x 0: no data */
        for (size_t j = 0; j < m->cols && !bad; j++)
            bad = fprintf(f, j ? ",%.17g" : "%.17g", row[j]) < 0;
        bad = bad || fputc('\n', f) == EOF;
    }
    c_locale_leave(&loc);
    int err = errno;
    if (bad) {
        kat_outfile_close(o, 0);
        return kat__fail(KAT_EIO, "cannot write '%s': %s", path, strerror(err));
    }
    return kat_outfile_close(o, 1);
}
