/* Private helpers shared by the .npy and CSV readers and writers (never installed). */
#ifndef KAT_IO_INTERNAL_H
#define KAT_IO_INTERNAL_H

#include <stddef.h>
#include <stdio.h>

struct kat_outfile;
/* An outfile's target path (for messages) and its open stream. */
const char *kat__outfile_path(const struct kat_outfile *o);
FILE *kat__outfile_stream(const struct kat_outfile *o);

/* Size of the buffer io_quote writes into. */
#define KAT_IO_QUOTE_MAX 80

/* Copy s[0..n) into out (KAT_IO_QUOTE_MAX bytes) for an error message: printable ASCII is
 * kept, any other byte becomes \xHH, and long text is cut with "...". Input comes from
 * untrusted files, so the message must neither run long nor carry control bytes. */
static inline const char *kat_io_quote(const char *s, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        size_t need = (c >= 0x20 && c < 0x7f) ? 1 : 4;
        if (o + need > KAT_IO_QUOTE_MAX - 4) {   /* room for "..." and the NUL */
            out[o++] = '.';
            out[o++] = '.';
            out[o++] = '.';
            break;
        }
        if (need == 1) {
            out[o++] = (char)c;
        } else {
            out[o++] = '\\';
            out[o++] = 'x';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    out[o] = '\0';
    return out;
}

#endif
