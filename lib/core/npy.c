/* .npy files (numpy's format, versions 1.0, 2.0 and 3.0): float32/float64, integer and bool
 * arrays in either byte order and either memory order on input; float32/float64, version 1.0
 * (2.0 when the header needs it), little-endian, C order on output.
 *
 * Layout: the magic "\x93NUMPY", a major and a minor version byte, the header length (2 bytes
 * little-endian in 1.0, 4 bytes in 2.0/3.0), the header (a Python dict literal with the keys
 * 'descr', 'fortran_order' and 'shape', padded with spaces and a '\n'), then the raw data. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include "core/internal.h"
#include "core/io_internal.h"
#include "kat/io.h"

static const unsigned char npy_magic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};

/* What a header says about the data that follows it. */
typedef struct {
    kat_dtype dtype;
    int big_endian;
    int fortran;
    int ndim;
    size_t shape[KAT_ARRAY_MAX_NDIM];
    size_t count;        /* number of elements */
    size_t data_bytes;   /* count * item size */
} npy_header;

/* Every dtype: numpy's name, its 'descr' kind letter and its size. */
static const struct {
    const char *name;
    char kind;
    unsigned char size;
} dtype_table[KAT_DTYPE_COUNT] = {
    [KAT_DTYPE_F32] = {"float32", 'f', 4}, [KAT_DTYPE_F64] = {"float64", 'f', 8},
    [KAT_DTYPE_I8] = {"int8", 'i', 1},     [KAT_DTYPE_I16] = {"int16", 'i', 2},
    [KAT_DTYPE_I32] = {"int32", 'i', 4},   [KAT_DTYPE_I64] = {"int64", 'i', 8},
    [KAT_DTYPE_U8] = {"uint8", 'u', 1},    [KAT_DTYPE_U16] = {"uint16", 'u', 2},
    [KAT_DTYPE_U32] = {"uint32", 'u', 4},  [KAT_DTYPE_U64] = {"uint64", 'u', 8},
    [KAT_DTYPE_BOOL] = {"bool", 'b', 1},
};

static int dtype_known(kat_dtype t) { return (unsigned)t < KAT_DTYPE_COUNT; }
/* The dtypes kat allocates and writes. */
static int dtype_valid(kat_dtype t) { return t == KAT_DTYPE_F32 || t == KAT_DTYPE_F64; }
static size_t dtype_size(kat_dtype t) { return dtype_known(t) ? dtype_table[t].size : 0; }

size_t kat_dtype_size(kat_dtype t) { return dtype_size(t); }

const char *kat_dtype_name(kat_dtype t) { return dtype_known(t) ? dtype_table[t].name : "unknown"; }

double kat_array_get(const kat_array *a, size_t i)
{
    const void *p = a->data;
    switch (a->dtype) {
    case KAT_DTYPE_F32: return ((const float *)p)[i];
    case KAT_DTYPE_F64: return ((const double *)p)[i];
    case KAT_DTYPE_I8: return ((const int8_t *)p)[i];
    case KAT_DTYPE_I16: return ((const int16_t *)p)[i];
    case KAT_DTYPE_I32: return ((const int32_t *)p)[i];
    case KAT_DTYPE_I64: return (double)((const int64_t *)p)[i];
    case KAT_DTYPE_U8: case KAT_DTYPE_BOOL: return ((const uint8_t *)p)[i];
    case KAT_DTYPE_U16: return ((const uint16_t *)p)[i];
    case KAT_DTYPE_U32: return ((const uint32_t *)p)[i];
    case KAT_DTYPE_U64: return (double)((const uint64_t *)p)[i];
    default: return 0.0;
    }
}

/* numpy's repr of a shape tuple: "()", "(3,)", "(3, 2)". Never longer than 8 * 22 + 3. */
static void shape_text(char *buf, size_t cap, int ndim, const size_t *shape)
{
    size_t o = (size_t)snprintf(buf, cap, "(");
    for (int i = 0; i < ndim && o < cap; i++)
        o += (size_t)snprintf(buf + o, cap - o, i ? ", %zu" : "%zu", shape[i]);
    if (o < cap)
        snprintf(buf + o, cap - o, ndim == 1 ? ",)" : ")");
}

/* Elements and bytes of a shape. A zero dimension makes the array empty, but the product of
 * the other dimensions must still fit, so no dimension is absurd. Returns 1 on overflow. */
static int shape_bytes(int ndim, const size_t *shape, size_t item, size_t *count, size_t *bytes)
{
    size_t n = 1, nonzero = item;
    int empty = 0;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] == 0)
            empty = 1;
        else if (kat_mul_overflow(n, shape[i], &n) || kat_mul_overflow(nonzero, shape[i], &nonzero))
            return 1;
    }
    *count = empty ? 0 : n;
    *bytes = empty ? 0 : nonzero;
    return 0;
}

size_t kat_array_size(const kat_array *a)
{
    size_t count, bytes;
    if (!a || a->ndim < 0 || a->ndim > KAT_ARRAY_MAX_NDIM ||
        shape_bytes(a->ndim, a->shape, 1, &count, &bytes))
        return 0;
    return count;
}

kat_status kat_array_alloc(kat_dtype dtype, int ndim, const size_t *shape, kat_array *out)
{
    if (!out)
        return kat__fail(KAT_EINVAL, "array_alloc: out is NULL");
    if (!dtype_valid(dtype))
        return kat__fail(KAT_EINVAL, "array_alloc: dtype %d is not KAT_DTYPE_F32 or KAT_DTYPE_F64",
                        (int)dtype);
    if (ndim < 0 || ndim > KAT_ARRAY_MAX_NDIM)
        return kat__fail(KAT_EINVAL, "array_alloc: ndim = %d is outside 0..%d", ndim,
                        KAT_ARRAY_MAX_NDIM);
    if (ndim > 0 && !shape)
        return kat__fail(KAT_EINVAL, "array_alloc: shape is NULL for ndim = %d", ndim);
    size_t count, bytes;
    if (shape_bytes(ndim, shape, dtype_size(dtype), &count, &bytes)) {
        char s[256];
        shape_text(s, sizeof s, ndim, shape);
        return kat__fail(KAT_ERANGE, "array_alloc: shape %s overflows size_t", s);
    }
    void *data = kat_calloc(bytes ? bytes : 1, 1);
    if (!data)
        return kat__fail(KAT_ENOMEM, "array_alloc: cannot allocate %zu bytes", bytes);
    memset(out, 0, sizeof *out);
    out->dtype = dtype;
    out->ndim = ndim;
    for (int i = 0; i < ndim; i++)
        out->shape[i] = shape[i];
    out->data = data;
    return KAT_OK;
}

void kat_array_free(kat_array *a)
{
    if (!a)
        return;
    kat_free(a->data);
    memset(a, 0, sizeof *a);
}

/* The first 64-bit integer of a whose magnitude exceeds 2^53 (so a double would round it), or
 * the element count when there is none. */
static size_t int64_inexact(const kat_array *a)
{
    size_t n = kat_array_size(a);
    const uint64_t limit = (uint64_t)1 << 53;
    for (size_t i = 0; i < n; i++) {
        if (a->dtype == KAT_DTYPE_I64) {
            int64_t v = ((const int64_t *)a->data)[i];
            if (v > (int64_t)limit || v < -(int64_t)limit)
                return i;
        } else if (a->dtype == KAT_DTYPE_U64 && ((const uint64_t *)a->data)[i] > limit) {
            return i;
        }
    }
    return n;
}

/* ---- header parsing --------------------------------------------------------------------- */

/* Magic, version and header length. Sets *hstart (offset of the header text) and *hlen. */
static kat_status npy_prefix(const unsigned char *p, size_t len, size_t *hstart, size_t *hlen)
{
    if (len < 8 || memcmp(p, npy_magic, 6) != 0) {
        if (len >= 6 && memcmp(p, npy_magic, 6) != 0)
            return kat__fail(KAT_EFORMAT, "npy: bad magic string (the file does not start with "
                                         "\\x93NUMPY)");
        return kat__fail(KAT_EFORMAT, "npy: %zu bytes are too few for a .npy header", len);
    }
    int major = p[6], minor = p[7];
    if (minor != 0 || major < 1 || major > 3)
        return kat__fail(KAT_EFORMAT, "npy: unsupported format version %d.%d (kat reads 1.0, "
                                     "2.0 and 3.0)", major, minor);
    size_t need = major == 1 ? 10 : 12;
    if (len < need)
        return kat__fail(KAT_EFORMAT, "npy: %zu bytes are too few for a version %d.0 header", len,
                        major);
    if (major == 1)
        *hlen = (size_t)p[8] | (size_t)p[9] << 8;
    else
        *hlen = (size_t)p[8] | (size_t)p[9] << 8 | (size_t)p[10] << 16 | (size_t)p[11] << 24;
    *hstart = need;
    if (*hlen == 0)
        return kat__fail(KAT_EFORMAT, "npy: the header length is 0");
    return KAT_OK;
}

/* A read position in the header text. */
typedef struct {
    const char *p, *end;
} cursor;

static void skip_ws(cursor *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r' ||
                             *c->p == '\f' || *c->p == '\v'))
        c->p++;
}

static int at(const cursor *c, char ch) { return c->p < c->end && *c->p == ch; }

/* What the header holds at the cursor, quoted for an error message. */
static const char *here(const cursor *c, char *out)
{
    if (c->p >= c->end)
        return "the end of the header";
    size_t n = (size_t)(c->end - c->p);
    kat_io_quote(c->p, n < 12 ? n : 12, out);
    return out;
}

/* A Python string literal in single or double quotes; [*s, *s + *n) is its body. */
static kat_status parse_string(cursor *c, const char *what, const char **s, size_t *n)
{
    char q[KAT_IO_QUOTE_MAX];
    if (!at(c, '\'') && !at(c, '"'))
        return kat__fail(KAT_EFORMAT, "npy header: expected a quoted %s, found '%s'", what,
                        here(c, q));
    char quote = *c->p++;
    const char *start = c->p;
    while (c->p < c->end && *c->p != quote && *c->p != '\n') {
        if (*c->p == '\\' && c->p + 1 < c->end)
            c->p++;   /* an escaped quote does not end the string */
        c->p++;
    }
    if (c->p >= c->end || *c->p != quote)
        return kat__fail(KAT_EFORMAT, "npy header: unterminated string in the %s", what);
    *s = start;
    *n = (size_t)(c->p - start);
    c->p++;
    return KAT_OK;
}

#define NPY_DTYPES_READ "float32, float64 ('<f4', '<f8'), integers ('|i1', '<i2', '<i4', " \
                        "'<i8', '|u1', '<u2', '<u4', '<u8') and bool ('|b1'), '<' or '>' order"

/* A descr is a byte order ('<', '>', or '|' for one-byte types), a kind letter and a size. */
static kat_status parse_descr(cursor *c, npy_header *h)
{
    if (at(c, '[') || at(c, '(') || at(c, '{'))
        return kat__fail(KAT_EFORMAT, "npy header: 'descr' is a structured dtype; kat reads "
                                     NPY_DTYPES_READ);
    const char *s;
    size_t n;
    kat_status st = parse_string(c, "'descr' value", &s, &n);
    if (st)
        return st;
    if (n == 3 && s[2] >= '1' && s[2] <= '8') {
        unsigned size = (unsigned)(s[2] - '0');
        int order_ok = s[0] == '<' || s[0] == '>' || (s[0] == '|' && size == 1);
        for (int t = 0; order_ok && t < KAT_DTYPE_COUNT; t++)
            if (dtype_table[t].kind == s[1] && dtype_table[t].size == size) {
                h->big_endian = s[0] == '>';
                h->dtype = (kat_dtype)t;
                return KAT_OK;
            }
    }
    char q[KAT_IO_QUOTE_MAX];
    return kat__fail(KAT_EFORMAT, "npy: unsupported dtype '%s' (kat reads " NPY_DTYPES_READ ")",
                    kat_io_quote(s, n, q));
}

static kat_status parse_bool(cursor *c, int *out)
{
    const char *s = c->p;
    while (c->p < c->end && ((*c->p >= 'A' && *c->p <= 'Z') || (*c->p >= 'a' && *c->p <= 'z') ||
                             (*c->p >= '0' && *c->p <= '9') || *c->p == '_'))
        c->p++;
    size_t n = (size_t)(c->p - s);
    if (n == 4 && memcmp(s, "True", 4) == 0)
        *out = 1;
    else if (n == 5 && memcmp(s, "False", 5) == 0)
        *out = 0;
    else {
        char q[KAT_IO_QUOTE_MAX];
        c->p = s;
        return kat__fail(KAT_EFORMAT, "npy header: 'fortran_order' must be True or False, found "
                                     "'%s'", n ? kat_io_quote(s, n, q) : here(c, q));
    }
    return KAT_OK;
}

/* A non-negative integer literal (an old Python 2 'L' suffix is accepted). */
static kat_status parse_dim(cursor *c, int index, size_t *out)
{
    char q[KAT_IO_QUOTE_MAX];
    if (at(c, '-'))
        return kat__fail(KAT_EFORMAT, "npy header: shape entry %d is negative", index);
    if (!(c->p < c->end && *c->p >= '0' && *c->p <= '9'))
        return kat__fail(KAT_EFORMAT, "npy header: shape entry %d is not an integer (found '%s')",
                        index, here(c, q));
    size_t v = 0;
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
        if (kat_mul_overflow(v, 10, &v) || kat_add_overflow(v, (size_t)(*c->p - '0'), &v))
            return kat__fail(KAT_EFORMAT, "npy header: shape entry %d overflows size_t", index);
        c->p++;
    }
    if (at(c, 'L') || at(c, 'l'))
        c->p++;
    *out = v;
    return KAT_OK;
}

/* A Python tuple of integers: "()", "(3,)", "(3, 2)", "(3, 2,)". */
static kat_status parse_shape(cursor *c, npy_header *h)
{
    char q[KAT_IO_QUOTE_MAX];
    if (!at(c, '('))
        return kat__fail(KAT_EFORMAT, "npy header: 'shape' must be a tuple such as (3, 2), found "
                                     "'%s'", here(c, q));
    c->p++;
    int n = 0, trailing_comma = 0;
    skip_ws(c);
    while (!at(c, ')')) {
        if (n == KAT_ARRAY_MAX_NDIM)
            return kat__fail(KAT_EFORMAT, "npy header: shape has more than %d dimensions",
                            KAT_ARRAY_MAX_NDIM);
        kat_status st = parse_dim(c, n + 1, &h->shape[n]);
        if (st)
            return st;
        n++;
        skip_ws(c);
        trailing_comma = 0;
        if (at(c, ',')) {
            c->p++;
            trailing_comma = 1;
            skip_ws(c);
        } else if (!at(c, ')')) {
            return kat__fail(KAT_EFORMAT, "npy header: expected ',' or ')' in 'shape', found '%s'",
                            here(c, q));
        }
    }
    c->p++;
    if (n == 1 && !trailing_comma)   /* Python reads "(3)" as the integer 3 */
        return kat__fail(KAT_EFORMAT, "npy header: 'shape' (%zu) is an integer, not a tuple "
                                     "(a 1-D shape is written (%zu,))", h->shape[0], h->shape[0]);
    h->ndim = n;
    return KAT_OK;
}

/* The header dict: the three keys, each once, in any order, with optional trailing comma and
 * any whitespace; after the closing brace only whitespace (numpy's padding) may follow. */
static kat_status npy_parse_dict(const char *text, size_t len, npy_header *h)
{
    static const char *const keys[3] = {"descr", "fortran_order", "shape"};
    int seen[3] = {0, 0, 0};
    char q[KAT_IO_QUOTE_MAX];
    cursor c = {text, text + len};
    kat_status st;
    memset(h, 0, sizeof *h);
    skip_ws(&c);
    if (!at(&c, '{'))
        return kat__fail(KAT_EFORMAT, "npy header: expected '{' at the start, found '%s'",
                        here(&c, q));
    c.p++;
    for (;;) {
        skip_ws(&c);
        if (at(&c, '}'))
            break;
        const char *key;
        size_t klen;
        if ((st = parse_string(&c, "key", &key, &klen)))
            return st;
        int k = 0;
        while (k < 3 && !(strlen(keys[k]) == klen && memcmp(keys[k], key, klen) == 0))
            k++;
        if (k == 3)
            return kat__fail(KAT_EFORMAT, "npy header: unexpected key '%s' (a .npy header has "
                                         "'descr', 'fortran_order' and 'shape')",
                            kat_io_quote(key, klen, q));
        if (seen[k]++)
            return kat__fail(KAT_EFORMAT, "npy header: key '%s' appears twice", keys[k]);
        skip_ws(&c);
        if (!at(&c, ':'))
            return kat__fail(KAT_EFORMAT, "npy header: expected ':' after '%s', found '%s'",
                            keys[k], here(&c, q));
        c.p++;
        skip_ws(&c);
        st = k == 0 ? parse_descr(&c, h) : k == 1 ? parse_bool(&c, &h->fortran)
                                                  : parse_shape(&c, h);
        if (st)
            return st;
        skip_ws(&c);
        if (at(&c, ','))
            c.p++;
        else if (!at(&c, '}'))
            return kat__fail(KAT_EFORMAT, "npy header: expected ',' or '}' after the value of "
                                         "'%s', found '%s'", keys[k], here(&c, q));
    }
    c.p++;
    skip_ws(&c);
    if (c.p != c.end)
        return kat__fail(KAT_EFORMAT, "npy header: unexpected text '%s' after the closing '}'",
                        here(&c, q));
    for (int k = 0; k < 3; k++)
        if (!seen[k])
            return kat__fail(KAT_EFORMAT, "npy header: the '%s' key is missing", keys[k]);
    if (shape_bytes(h->ndim, h->shape, dtype_size(h->dtype), &h->count, &h->data_bytes)) {
        char s[256];
        shape_text(s, sizeof s, h->ndim, h->shape);
        return kat__fail(KAT_EFORMAT, "npy header: shape %s has more bytes than size_t can count",
                        s);
    }
    return KAT_OK;
}

static kat_status data_too_short(const npy_header *h, size_t present)
{
    char s[256];
    shape_text(s, sizeof s, h->ndim, h->shape);
    return kat__fail(KAT_EFORMAT, "npy: the data section has %zu bytes but shape %s of %s needs "
                                 "%zu bytes",
                    present, s, kat_dtype_name(h->dtype), h->data_bytes);
}

/* ---- data conversion ---------------------------------------------------------------------- */

static uint64_t load_u64(const unsigned char *b, int big)
{
    uint64_t u = 0;
    for (int i = 0; i < 8; i++)
        u |= (uint64_t)b[big ? 7 - i : i] << (8 * i);
    return u;
}

static uint32_t load_u32(const unsigned char *b, int big)
{
    uint32_t u = 0;
    for (int i = 0; i < 4; i++)
        u |= (uint32_t)b[big ? 3 - i : i] << (8 * i);
    return u;
}

static uint16_t load_u16(const unsigned char *b, int big)
{
    return (uint16_t)(b[big ? 1 : 0] | b[big ? 0 : 1] << 8);
}

/* Decode count file elements at src into native values at dst; dst may equal src (each
 * element is read whole before its slot is written). A bool byte other than 0 becomes 1. */
static void decode(void *dst, const unsigned char *src, size_t count, kat_dtype t, int big)
{
    unsigned char *d = dst;
    switch (dtype_size(t)) {
    case 8:
        for (size_t i = 0; i < count; i++) {
            uint64_t u = load_u64(src + 8 * i, big);
            memcpy(d + 8 * i, &u, 8);
        }
        break;
    case 4:
        for (size_t i = 0; i < count; i++) {
            uint32_t u = load_u32(src + 4 * i, big);
            memcpy(d + 4 * i, &u, 4);
        }
        break;
    case 2:
        for (size_t i = 0; i < count; i++) {
            uint16_t u = load_u16(src + 2 * i, big);
            memcpy(d + 2 * i, &u, 2);
        }
        break;
    default:
        for (size_t i = 0; i < count; i++)
            d[i] = t == KAT_DTYPE_BOOL ? src[i] != 0 : src[i];
        break;
    }
}

/* Reorder a Fortran-order (first index fastest) array into C order. */
static void fortran_to_c(void *dst, const void *src, const npy_header *h)
{
    size_t item = dtype_size(h->dtype), stride[KAT_ARRAY_MAX_NDIM], idx[KAT_ARRAY_MAX_NDIM];
    size_t s = 1, off = 0;
    for (int k = 0; k < h->ndim; k++) {
        stride[k] = s;
        s *= h->shape[k];   /* no overflow: the product is count */
        idx[k] = 0;
    }
    for (size_t i = 0; i < h->count; i++) {
        memcpy((char *)dst + i * item, (const char *)src + off * item, item);
        for (int k = h->ndim - 1; k >= 0; k--) {   /* C order: last index fastest */
            off += stride[k];
            if (++idx[k] < h->shape[k])
                break;
            off -= h->shape[k] * stride[k];
            idx[k] = 0;
        }
    }
}

/* Build the array from the header and raw file bytes (which may alias `owned`, a kat_malloc'd
 * buffer of data_bytes that is taken over or freed). */
static kat_status npy_finish(const npy_header *h, const unsigned char *raw, void *owned,
                             kat_array *out)
{
    size_t bytes = h->data_bytes ? h->data_bytes : 1;
    void *data = owned;
    if (!data && !(data = kat_malloc(bytes)))
        return kat__fail(KAT_ENOMEM, "npy: cannot allocate %zu bytes for the data", bytes);
    decode(data, raw, h->count, h->dtype, h->big_endian);
    if (h->fortran && h->ndim > 1 && h->count > 1) {
        void *c_order = kat_malloc(bytes);
        if (!c_order) {
            kat_free(data);
            return kat__fail(KAT_ENOMEM, "npy: cannot allocate %zu bytes to reorder Fortran data",
                            bytes);
        }
        fortran_to_c(c_order, data, h);
        kat_free(data);
        data = c_order;
    }
    memset(out, 0, sizeof *out);
    out->dtype = h->dtype;
    out->ndim = h->ndim;
    for (int k = 0; k < h->ndim; k++)
        out->shape[k] = h->shape[k];
    out->data = data;
    return KAT_OK;
}

kat_status kat_npy_parse(const void *buf, size_t len, kat_array *out)
{
    if (!out)
        return kat__fail(KAT_EINVAL, "npy_parse: out is NULL");
    if (!buf && len)
        return kat__fail(KAT_EINVAL, "npy_parse: buf is NULL with len = %zu", len);
    const unsigned char *p = buf;
    size_t hstart = 0, hlen = 0;
    npy_header h;
    kat_status st = npy_prefix(p, len, &hstart, &hlen);
    if (st)
        return st;
    if (hlen > len - hstart)
        return kat__fail(KAT_EFORMAT, "npy: the header length %zu runs past the end of the "
                                     "input (%zu bytes after the prefix)", hlen, len - hstart);
    if ((st = npy_parse_dict((const char *)p + hstart, hlen, &h)))
        return st;
    size_t present = len - hstart - hlen;
    if (present < h.data_bytes)
        return data_too_short(&h, present);
    return npy_finish(&h, p + hstart + hlen, NULL, out);
}

/* ---- files -------------------------------------------------------------------------------- */

/* Re-raise the current error with the path in front, so file errors say which file. */
static kat_status fail_in(kat_status st, const char *path)
{
    char why[400];
    snprintf(why, sizeof why, "%s", kat_last_error());
    return kat__fail(st, "'%s': %s", path, why);
}

/* fread that accepts n = 0; callers check ferror and compare the count. */
static size_t read_bytes(FILE *f, void *dst, size_t n) { return n ? fread(dst, 1, n, f) : 0; }

static kat_status npy_read_file(FILE *f, const char *path, kat_array *out)
{
    /* For a regular file its size bounds what the header may claim before anything large is
     * allocated; pipes and devices are read until they end. */
    struct stat sb;
    int have_stat = fstat(fileno(f), &sb) == 0;
    if (have_stat && S_ISDIR(sb.st_mode))
        return kat__fail(KAT_EIO, "cannot read '%s': %s", path, strerror(EISDIR));
    int regular = have_stat && S_ISREG(sb.st_mode);
    uint64_t fsize = regular && sb.st_size > 0 ? (uint64_t)sb.st_size : 0;
    unsigned char prefix[12];
    size_t got = read_bytes(f, prefix, sizeof prefix);
    if (ferror(f))
        return kat__fail(KAT_EIO, "cannot read '%s': %s", path, strerror(errno));
    size_t hstart = 0, hlen = 0;
    kat_status st = npy_prefix(prefix, got, &hstart, &hlen);
    if (st)
        return fail_in(st, path);
    uint64_t after_prefix = fsize > hstart ? fsize - hstart : 0;
    if (regular && after_prefix < hlen)
        return kat__fail(KAT_EFORMAT, "'%s': the header length %zu runs past the end of the "
                                     "file (%llu bytes after the prefix)",
                        path, hlen, (unsigned long long)after_prefix);
    char *text = kat_malloc(hlen);
    if (!text)
        return kat__fail(KAT_ENOMEM, "'%s': cannot allocate %zu bytes for the header", path, hlen);
    /* The prefix read may hold the first header bytes; a valid header is far longer than
     * the two bytes that could spill, so no data byte is ever among them. */
    size_t early = got - hstart < hlen ? got - hstart : hlen;
    memcpy(text, prefix + hstart, early);
    size_t rest = read_bytes(f, text + early, hlen - early);
    npy_header h;
    if (ferror(f))
        st = kat__fail(KAT_EIO, "cannot read '%s': %s", path, strerror(errno));
    else if (early + rest < hlen)
        st = kat__fail(KAT_EFORMAT, "'%s': the header length %zu runs past the end of the file",
                      path, hlen);
    else if ((st = npy_parse_dict(text, hlen, &h)))
        st = fail_in(st, path);
    kat_free(text);
    if (st)
        return st;
    if (regular && after_prefix - hlen < h.data_bytes)
        return fail_in(data_too_short(&h, (size_t)(after_prefix - hlen)), path);
    size_t bytes = h.data_bytes ? h.data_bytes : 1;
    unsigned char *data = kat_malloc(bytes);
    if (!data)
        return kat__fail(KAT_ENOMEM, "'%s': cannot allocate %zu bytes for the data", path, bytes);
    size_t present = read_bytes(f, data, h.data_bytes);
    if (ferror(f))
        st = kat__fail(KAT_EIO, "cannot read '%s': %s", path, strerror(errno));
    else if (present < h.data_bytes)
        st = fail_in(data_too_short(&h, present), path);
    if (st) {
        kat_free(data);
        return st;
    }
    return npy_finish(&h, data, data, out);
}

kat_status kat_npy_read(const char *path, kat_array *out)
{
    if (!path)
        return kat__fail(KAT_EINVAL, "npy_read: path is NULL");
    if (!out)
        return kat__fail(KAT_EINVAL, "npy_read: out is NULL");
    FILE *f = fopen(path, "rb");
    if (!f)
        return kat__fail(KAT_EIO, "cannot open '%s': %s", path, strerror(errno));
    kat_status st = npy_read_file(f, path, out);
    fclose(f);
    return st;
}

/* ---- writing ------------------------------------------------------------------------------ */

static void store_le64(unsigned char *b, uint64_t u)
{
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)(u >> (8 * i));
}

static void store_le32(unsigned char *b, uint32_t u)
{
    for (int i = 0; i < 4; i++)
        b[i] = (unsigned char)(u >> (8 * i));
}

/* Prefix and header exactly as numpy writes them: the dict with keys in sorted order and a
 * trailing ", ", then spaces and '\n' so that the data starts at a multiple of 64. Returns
 * the total length written into buf. */
static size_t npy_header_bytes(unsigned char *buf, size_t cap, kat_dtype t, int ndim,
                               const size_t *shape)
{
    char s[256], dict[400];
    shape_text(s, sizeof s, ndim, shape);
    size_t dlen = (size_t)snprintf(dict, sizeof dict,
                                   "{'descr': '%s', 'fortran_order': False, 'shape': %s, }",
                                   t == KAT_DTYPE_F32 ? "<f4" : "<f8", s);
    /* Version 1.0 holds headers up to 65535 bytes; eight dimensions never need more, but the
     * rule is numpy's, so keep it. */
    size_t pre = 10, total = pre + dlen + 1;
    total += (64 - total % 64) % 64;
    if (total - pre > 65535) {
        pre = 12;
        total = pre + dlen + 1;
        total += (64 - total % 64) % 64;
    }
    if (total > cap)
        return 0;
    size_t hlen = total - pre;
    memcpy(buf, npy_magic, 6);
    buf[6] = pre == 10 ? 1 : 2;
    buf[7] = 0;
    if (pre == 10) {
        buf[8] = (unsigned char)hlen;
        buf[9] = (unsigned char)(hlen >> 8);
    } else {
        store_le32(buf + 8, (uint32_t)hlen);
    }
    memcpy(buf + pre, dict, dlen);
    memset(buf + pre + dlen, ' ', total - pre - dlen - 1);
    buf[total - 1] = '\n';
    return total;
}

/* Where the elements come from: a contiguous native array of its own dtype, or the rows of a
 * double matrix (converted to the file's dtype). */
typedef struct {
    const void *flat;
    const kat_dmat *m;
} npy_source;

/* Write the source's elements little-endian in the file's dtype, a chunk at a time. */
static int npy_write_data(FILE *f, const npy_source *src, kat_dtype t, size_t count)
{
    unsigned char chunk[8192];
    size_t item = dtype_size(t), per = sizeof chunk / item;
    size_t rows = src->m ? src->m->rows : 1, cols = src->m ? src->m->cols : count;
    for (size_t i = 0; i < rows; i++) {
        for (size_t j0 = 0; j0 < cols; j0 += per) {
            size_t n = cols - j0 < per ? cols - j0 : per;
            for (size_t j = 0; j < n; j++) {
                if (src->m) {
                    double x = src->m->data[i * src->m->ld + j0 + j];
                    if (t == KAT_DTYPE_F64) {
                        uint64_t u;
                        memcpy(&u, &x, 8);
                        store_le64(chunk + 8 * j, u);
                    } else {
                        float y = (float)x;
                        uint32_t u;
                        memcpy(&u, &y, 4);
                        store_le32(chunk + 4 * j, u);
                    }
                } else {
                    const unsigned char *e = (const unsigned char *)src->flat + (j0 + j) * item;
                    if (t == KAT_DTYPE_F64) {
                        uint64_t u;
                        memcpy(&u, e, 8);
                        store_le64(chunk + 8 * j, u);
                    } else {
                        uint32_t u;
                        memcpy(&u, e, 4);
                        store_le32(chunk + 4 * j, u);
                    }
                }
            }
            if (fwrite(chunk, item, n, f) != n)
                return -1;
        }
    }
    return 0;
}

/* Header and data into an open outfile; any failure is KAT_EIO naming the path. The checks
 * on the arguments are done before, so a bad argument never touches the file. */
static kat_status npy_write_stream(kat_outfile *o, kat_dtype t, int ndim, const size_t *shape,
                                   size_t count, const npy_source *src)
{
    unsigned char header[1024];
    size_t hbytes = npy_header_bytes(header, sizeof header, t, ndim, shape);
    FILE *f = kat__outfile_stream(o);
    errno = 0;
    if (fwrite(header, 1, hbytes, f) != hbytes || npy_write_data(f, src, t, count) != 0)
        return kat__fail(KAT_EIO, "cannot write '%s': %s", kat__outfile_path(o),
                         strerror(errno ? errno : EIO));
    return KAT_OK;
}

/* The same to a temporary file, renamed over path when complete (the old file is kept on
 * any failure). */
static kat_status npy_write_file(const char *path, kat_dtype t, int ndim, const size_t *shape,
                                 size_t count, const npy_source *src)
{
    kat_outfile *o;
    FILE *f;
    kat_status st = kat_outfile_open(path, &o, &f);
    if (st)
        return st;
    if ((st = npy_write_stream(o, t, ndim, shape, count, src))) {
        kat_outfile_close(o, 0);
        return st;
    }
    return kat_outfile_close(o, 1);
}

/* kat_npy_write's checks on a (fn: the function named in the messages); *count its
 * elements. */
static kat_status npy_check_array(const char *fn, const kat_array *a, size_t *count)
{
    if (!a)
        return kat__fail(KAT_EINVAL, "%s: a is NULL", fn);
    if (!dtype_valid(a->dtype))
        return kat__fail(KAT_EINVAL, "%s: a->dtype = %d is not KAT_DTYPE_F32 or "
                                    "KAT_DTYPE_F64", fn, (int)a->dtype);
    if (a->ndim < 0 || a->ndim > KAT_ARRAY_MAX_NDIM)
        return kat__fail(KAT_EINVAL, "%s: a->ndim = %d is outside 0..%d", fn, a->ndim,
                        KAT_ARRAY_MAX_NDIM);
    size_t bytes;
    if (shape_bytes(a->ndim, a->shape, dtype_size(a->dtype), count, &bytes)) {
        char s[256];
        shape_text(s, sizeof s, a->ndim, a->shape);
        return kat__fail(KAT_ERANGE, "%s: a->shape %s overflows size_t", fn, s);
    }
    if (*count && !a->data)
        return kat__fail(KAT_EINVAL, "%s: a->data is NULL for %zu elements", fn, *count);
    return KAT_OK;
}

kat_status kat_npy_write(const char *path, const kat_array *a)
{
    if (!path)
        return kat__fail(KAT_EINVAL, "npy_write: path is NULL");
    size_t count;
    kat_status st = npy_check_array("npy_write", a, &count);
    if (st)
        return st;
    npy_source src = {a->data, NULL};
    return npy_write_file(path, a->dtype, a->ndim, a->shape, count, &src);
}

kat_status kat_npy_write_outfile(kat_outfile *o, const kat_array *a)
{
    if (!o)
        return kat__fail(KAT_EINVAL, "npy_write_outfile: o is NULL");
    size_t count;
    kat_status st = npy_check_array("npy_write_outfile", a, &count);
    if (st)
        return st;
    npy_source src = {a->data, NULL};
    return npy_write_stream(o, a->dtype, a->ndim, a->shape, count, &src);
}

/* The largest magnitude that rounds to a finite float: FLT_MAX plus half its last ulp (the
 * tie itself rounds to even, which is 2^128). */
#define F32_ROUNDS_FINITE 0x1.ffffffp127

kat_status kat_npy_write_dmat(const char *path, const kat_dmat *m, kat_dtype dtype)
{
    if (!path)
        return kat__fail(KAT_EINVAL, "npy_write_dmat: path is NULL");
    if (!dtype_valid(dtype))
        return kat__fail(KAT_EINVAL, "npy_write_dmat: dtype = %d is not KAT_DTYPE_F32 or "
                                    "KAT_DTYPE_F64", (int)dtype);
    kat_status st = kat_dmat_check(m, "npy_write_dmat: m", 1);
    if (st)
        return st;
    if (dtype == KAT_DTYPE_F32)
        for (size_t i = 0; i < m->rows; i++)
            for (size_t j = 0; j < m->cols; j++) {
                double x = m->data[i * m->ld + j];
                if (!(x < F32_ROUNDS_FINITE && x > -F32_ROUNDS_FINITE))
                    return kat__fail(KAT_EDOM, "npy_write_dmat: m entry (%zu, %zu) = %g is beyond "
                                              "the float32 range", i, j, x);
            }
    size_t shape[2] = {m->rows, m->cols}, count, bytes;
    if (shape_bytes(2, shape, dtype_size(dtype), &count, &bytes))
        return kat__fail(KAT_ERANGE, "npy_write_dmat: m is %zu x %zu, which overflows size_t",
                        m->rows, m->cols);
    npy_source src = {NULL, m};
    return npy_write_file(path, dtype, 2, shape, count, &src);
}

kat_status kat_npy_read_dmat(const char *path, kat_dmat *out)
{
    if (!out)
        return kat__fail(KAT_EINVAL, "npy_read_dmat: out is NULL");
    kat_array a;
    kat_status st = kat_npy_read(path, &a);
    if (st)
        return st;
    if (a.ndim > 2) {
        char s[256];
        shape_text(s, sizeof s, a.ndim, a.shape);
        int ndim = a.ndim;   /* kat_array_free clears a */
        kat_array_free(&a);
        return kat__fail(KAT_EFORMAT, "'%s': a %d-D array of shape %s is not a matrix (kat reads "
                                     "0-D, 1-D and 2-D arrays as matrices)", path, ndim, s);
    }
    size_t rows = a.ndim >= 1 ? a.shape[0] : 1, cols = a.ndim == 2 ? a.shape[1] : 1;
    size_t count = kat_array_size(&a);
    double *data;
    if (a.dtype == KAT_DTYPE_F64) {
        data = a.data;   /* already doubles in C order: take the buffer over */
    } else {
        size_t inexact = int64_inexact(&a);
        if (inexact < count) {
            char v[24];
            if (a.dtype == KAT_DTYPE_I64)
                snprintf(v, sizeof v, "%lld", (long long)((const int64_t *)a.data)[inexact]);
            else
                snprintf(v, sizeof v, "%llu",
                         (unsigned long long)((const uint64_t *)a.data)[inexact]);
            kat_array_free(&a);
            return kat__fail(KAT_EDOM, "'%s': entry (%zu, %zu) is %s, beyond 2^53 in magnitude: "
                                      "no double holds it exactly", path, inexact / cols,
                            inexact % cols, v);
        }
        data = kat__alloc_array(count ? count : 1, sizeof(double), "npy_read_dmat: matrix");
        if (!data) {
            kat_array_free(&a);
            return KAT_ENOMEM;
        }
        for (size_t i = 0; i < count; i++)
            data[i] = kat_array_get(&a, i);
        kat_array_free(&a);
    }
    size_t bad = kat__first_nonfinite(data, count);
    if (bad < count) {
        double v = data[bad];
        kat_free(data);
        return kat__fail(KAT_EDOM, "'%s': entry (%zu, %zu) is %g; kat accepts only finite data",
                        path, bad / cols, bad % cols, v);
    }
    out->rows = rows;
    out->cols = cols;
    out->ld = cols;
    out->data = data;
    return KAT_OK;
}
