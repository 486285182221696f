/* What every libFuzzer harness here shares: reading its input as a stream of bytes (0 once the
 * input is used up, so any input is a valid one) and a check that names the failed condition
 * before aborting (libFuzzer then keeps the input as a crash artifact). */
#ifndef KAT_FUZZ_BYTES_H
#define KAT_FUZZ_BYTES_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The whole input as a NUL-terminated string, for the text parsers (malloc'd; NULL when out of
 * memory). */
static inline char *fuzz_cstring(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (s) {
        memcpy(s, data, size);
        s[size] = '\0';
    }
    return s;
}

typedef struct {
    const uint8_t *p;
    size_t n;
} bytes;

static inline unsigned take(bytes *b)
{
    if (!b->n)
        return 0;
    b->n--;
    return *b->p++;
}

static inline unsigned take16(bytes *b) { return take(b) | take(b) << 8; }

#define CHECK(cond)                                                                             \
    do {                                                                                        \
        if (!(cond)) {                                                                          \
            fprintf(stderr, "%s: check failed at line %d: %s\n", __FILE__, __LINE__, #cond);    \
            abort();                                                                            \
        }                                                                                       \
    } while (0)

#endif
