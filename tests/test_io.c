/* io: .npy and CSV readers and writers, and kat_matrix_read. numpy is not needed: every
 * reference file is written byte by byte here, following numpy's format description. */
#include <errno.h>
#include <float.h>
#include <locale.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "testutil.h"

/* ---- helpers ------------------------------------------------------------------------------ */

static unsigned char img[1 << 17];

/* A .npy image in img: the prefix for version major.0, the header text `dict` (padded with
 * spaces and '\n' to a multiple of 64 when pad, else as is), then dlen data bytes. */
static size_t npy_image(int major, const char *dict, int pad, const void *data, size_t dlen)
{
    size_t pre = major == 1 ? 10 : 12, dl = strlen(dict), hl = dl;
    if (pad) {
        size_t total = pre + dl + 1;
        total += (64 - total % 64) % 64;
        hl = total - pre;
    }
    memcpy(img, "\x93NUMPY", 6);
    img[6] = (unsigned char)major;
    img[7] = 0;
    for (size_t i = 0; i < pre - 8; i++)
        img[8 + i] = (unsigned char)(hl >> (8 * i));
    memcpy(img + pre, dict, dl);
    if (pad) {
        memset(img + pre + dl, ' ', hl - dl - 1);
        img[pre + hl - 1] = '\n';
    }
    if (dlen)
        memcpy(img + pre + hl, data, dlen);
    return pre + hl + dlen;
}

/* Little-endian bytes of doubles and floats, written without relying on the host order. */
static void le64(unsigned char *b, double x)
{
    uint64_t u;
    memcpy(&u, &x, 8);
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)(u >> (8 * i));
}

static void be64(unsigned char *b, double x)
{
    uint64_t u;
    memcpy(&u, &x, 8);
    for (int i = 0; i < 8; i++)
        b[7 - i] = (unsigned char)(u >> (8 * i));
}

static void le32(unsigned char *b, float x)
{
    uint32_t u;
    memcpy(&u, &x, 4);
    for (int i = 0; i < 4; i++)
        b[i] = (unsigned char)(u >> (8 * i));
}

static void be32(unsigned char *b, float x)
{
    uint32_t u;
    memcpy(&u, &x, 4);
    for (int i = 0; i < 4; i++)
        b[3 - i] = (unsigned char)(u >> (8 * i));
}

static unsigned char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    unsigned char *b = malloc(1 << 20);
    *len = fread(b, 1, 1 << 20, f);
    fclose(f);
    return b;
}

static void expect_parse_err(const void *buf, size_t len, kat_status want, const char *needle)
{
    kat_array a;
    memset(&a, 0xAB, sizeof a);
    kat_array before = a;
    TU_EXPECT_ERR(kat_npy_parse(buf, len, &a), want, needle);
    ck_assert_msg(memcmp(&a, &before, sizeof a) == 0, "output changed on failure");
}

static void expect_dict_err(const char *dict, kat_status want, const char *needle)
{
    unsigned char data[64] = {0};
    size_t len = npy_image(1, dict, 1, data, sizeof data);
    expect_parse_err(img, len, want, needle);
}

static void expect_csv_err(const char *text, kat_status want, const char *needle)
{
    kat_dmat m = {7, 7, 7, (double *)&m};
    kat_dmat before = m;
    TU_EXPECT_ERR(kat_csv_parse(text, strlen(text), &m), want, needle);
    ck_assert_msg(memcmp(&m, &before, sizeof m) == 0, "output changed on failure");
}

static void write_file_or_fail(const char *path, const void *data, size_t len)
{
    ck_assert_int_eq(tu_write_file(path, data, len), 0);
}

/* ---- .npy: reading ------------------------------------------------------------------------ */

/* numpy's np.save output for np.arange(6.0).reshape(3, 2) / 4, spelt out byte by byte: magic,
 * version 1.0, header length 118 (0x76), the dict, 58 spaces and '\n' (data at offset 128). */
static const char numpy_3x2_header[] =
    "\x93NUMPY\x01\x00\x76\x00"
    "{'descr': '<f8', 'fortran_order': False, 'shape': (3, 2), }"
    "                                                          \n";

START_TEST(test_npy_parse_numpy_output)
{
    ck_assert_uint_eq(sizeof numpy_3x2_header - 1, 128);
    unsigned char buf[128 + 48];
    memcpy(buf, numpy_3x2_header, 128);
    for (int i = 0; i < 6; i++)
        le64(buf + 128 + 8 * i, i / 4.0);
    kat_array a;
    TU_OK(kat_npy_parse(buf, sizeof buf, &a));
    ck_assert_int_eq(a.dtype, KAT_DTYPE_F64);
    ck_assert_int_eq(a.ndim, 2);
    ck_assert_uint_eq(a.shape[0], 3);
    ck_assert_uint_eq(a.shape[1], 2);
    ck_assert_uint_eq(kat_array_size(&a), 6);
    for (int i = 0; i < 6; i++)
        ck_assert(((double *)a.data)[i] == i / 4.0);
    kat_array_free(&a);
    ck_assert_ptr_null(a.data);
    ck_assert_int_eq(a.ndim, 0);
    kat_array_free(NULL);

    /* Bytes after the data section are ignored, as numpy does. */
    unsigned char longer[sizeof buf + 5];
    memcpy(longer, buf, sizeof buf);
    memset(longer + sizeof buf, 0x55, 5);
    TU_OK(kat_npy_parse(longer, sizeof longer, &a));
    ck_assert(((double *)a.data)[5] == 1.25);
    kat_array_free(&a);
}
END_TEST

START_TEST(test_npy_byte_orders)
{
    const double d[3] = {1.5, -2.0, 0x1.123456789abcdp-1000};
    const float f[3] = {1.5f, -0.25f, 0x1.fffffep127f};
    unsigned char raw[24];
    struct {
        const char *descr;
        int f64, big;
    } cases[] = {{"<f8", 1, 0}, {">f8", 1, 1}, {"<f4", 0, 0}, {">f4", 0, 1}};
    for (int c = 0; c < 4; c++) {
        for (int i = 0; i < 3; i++) {
            if (cases[c].f64)
                (cases[c].big ? be64 : le64)(raw + 8 * i, d[i]);
            else
                (cases[c].big ? be32 : le32)(raw + 4 * i, f[i]);
        }
        char dict[128];
        snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (3,), }",
                 cases[c].descr);
        size_t len = npy_image(1, dict, 1, raw, cases[c].f64 ? 24 : 12);
        kat_array a;
        TU_OK(kat_npy_parse(img, len, &a));
        ck_assert_int_eq(a.ndim, 1);
        ck_assert_uint_eq(a.shape[0], 3);
        for (int i = 0; i < 3; i++) {
            if (cases[c].f64) {
                ck_assert_int_eq(a.dtype, KAT_DTYPE_F64);
                ck_assert(((double *)a.data)[i] == d[i]);
            } else {
                ck_assert_int_eq(a.dtype, KAT_DTYPE_F32);
                ck_assert(((float *)a.data)[i] == f[i]);
            }
        }
        kat_array_free(&a);
    }
}
END_TEST

START_TEST(test_npy_versions)
{
    unsigned char raw[16];
    le64(raw, 3.0);
    le64(raw + 8, -4.0);
    const char *dict = "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }";
    for (int major = 1; major <= 3; major++) {
        size_t len = npy_image(major, dict, 1, raw, 16);
        ck_assert_uint_eq((len - 16) % 64, 0);
        kat_array a;
        TU_OK(kat_npy_parse(img, len, &a));
        ck_assert(((double *)a.data)[0] == 3.0 && ((double *)a.data)[1] == -4.0);
        kat_array_free(&a);
    }
    /* Version 2.0 and 3.0 lengths use all four bytes: a header of 70000 bytes (padding). */
    char *big = malloc(70001);
    size_t dl = strlen(dict);
    memcpy(big, dict, dl);
    memset(big + dl, ' ', 70000 - dl - 1);
    big[69999] = '\n';
    big[70000] = '\0';
    size_t len = npy_image(3, big, 0, raw, 16);
    ck_assert_uint_eq(img[8] | img[9] << 8 | img[10] << 16, 70000);
    kat_array a;
    TU_OK(kat_npy_parse(img, len, &a));
    ck_assert(((double *)a.data)[1] == -4.0);
    kat_array_free(&a);
    free(big);
}
END_TEST

START_TEST(test_npy_header_variants)
{
    /* Each must read as float64, C order, shape (2, 3). */
    const char *dicts[] = {
        "{'shape': (2, 3), 'fortran_order': False, 'descr': '<f8'}",
        "{\"descr\": \"<f8\", \"fortran_order\": False, \"shape\": (2,3)}",
        "{ 'descr' : '<f8' ,\n 'fortran_order':False,'shape':( 2 , 3 , ) , }",
        "{\t'descr':\t'<f8',\t'fortran_order': False, 'shape': (2L, 3L), }",
        ("{'fortran_order': False, 'descr': '<f8', 'shape': (2, 3), }"
         "                                            \r\n"),   /* numpy's growth padding */
        "{'descr':'<f8','fortran_order':False,'shape':(2,3),}",
    };
    unsigned char raw[48];
    for (int i = 0; i < 6; i++)
        le64(raw + 8 * i, 10.0 + i);
    for (size_t k = 0; k < sizeof dicts / sizeof dicts[0]; k++) {
        for (int pad = 0; pad <= 1; pad++) {
            size_t len = npy_image(1, dicts[k], pad, raw, sizeof raw);
            kat_array a;
            kat_status st = kat_npy_parse(img, len, &a);
            ck_assert_msg(st == KAT_OK, "dict %zu pad %d: %s", k, pad, kat_last_error());
            ck_assert_int_eq(a.ndim, 2);
            ck_assert_uint_eq(a.shape[0], 2);
            ck_assert_uint_eq(a.shape[1], 3);
            ck_assert(((double *)a.data)[5] == 15.0);
            kat_array_free(&a);
        }
    }
}
END_TEST

START_TEST(test_npy_shapes_and_empty)
{
    struct {
        const char *shape;
        int ndim;
        size_t count;
    } cases[] = {
        {"()", 0, 1},          {"(5,)", 1, 5},        {"(0,)", 1, 0},
        {"(0, 3)", 2, 0},      {"(3, 0)", 2, 0},      {"(1, 1, 1, 1, 1, 1, 1, 2)", 8, 2},
        {"(2, 0, 4294967296)", 3, 0},   /* empty, whatever the other dimensions */
    };
    unsigned char raw[40] = {0};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        char dict[160];
        snprintf(dict, sizeof dict, "{'descr': '<f8', 'fortran_order': False, 'shape': %s, }",
                 cases[k].shape);
        size_t len = npy_image(1, dict, 1, raw, 8 * cases[k].count);
        kat_array a;
        TU_OK(kat_npy_parse(img, len, &a));
        ck_assert_int_eq(a.ndim, cases[k].ndim);
        ck_assert_uint_eq(kat_array_size(&a), cases[k].count);
        ck_assert_ptr_nonnull(a.data);
        kat_array_free(&a);
    }
}
END_TEST

START_TEST(test_npy_fortran_order)
{
    /* 3 x 4 x 2 array a[i][j][k] = 100 i + 10 j + k stored first-index-fastest. */
    enum { I = 3, J = 4, K = 2 };
    unsigned char raw[I * J * K * 4];
    for (int k = 0; k < K; k++)
        for (int j = 0; j < J; j++)
            for (int i = 0; i < I; i++)
                le32(raw + 4 * (i + I * (j + J * k)), (float)(100 * i + 10 * j + k));
    size_t len = npy_image(1, "{'descr': '<f4', 'fortran_order': True, 'shape': (3, 4, 2), }",
                           1, raw, sizeof raw);
    kat_array a;
    TU_OK(kat_npy_parse(img, len, &a));
    const float *x = a.data;
    for (int i = 0; i < I; i++)
        for (int j = 0; j < J; j++)
            for (int k = 0; k < K; k++)
                ck_assert(x[(i * J + j) * K + k] == (float)(100 * i + 10 * j + k));
    kat_array_free(&a);

    /* 2-D, big-endian float64: the transpose of the stored column-major order. */
    unsigned char raw2[6 * 8];
    const double col_major[6] = {1, 4, 2, 5, 3, 6};   /* [[1 2 3] [4 5 6]] */
    for (int i = 0; i < 6; i++)
        be64(raw2 + 8 * i, col_major[i]);
    len = npy_image(1, "{'descr': '>f8', 'fortran_order': True, 'shape': (2, 3), }", 1, raw2,
                    sizeof raw2);
    TU_OK(kat_npy_parse(img, len, &a));
    for (int i = 0; i < 6; i++)
        ck_assert(((double *)a.data)[i] == i + 1);
    kat_array_free(&a);
}
END_TEST

START_TEST(test_npy_parse_errors)
{
    const char *ok = "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }";
    unsigned char raw[16] = {0};
    size_t len;

    expect_parse_err("", 0, KAT_EFORMAT, "too few");
    expect_parse_err("\x93NUMPY\x01", 7, KAT_EFORMAT, "too few");
    expect_parse_err("PK\x03\x04 this is a zip archive", 26, KAT_EFORMAT, "bad magic");
    expect_parse_err("\x93NUMPZ\x01\x00\x10\x00", 10, KAT_EFORMAT, "bad magic");
    len = npy_image(1, ok, 1, raw, 16);
    img[6] = 4;
    expect_parse_err(img, len, KAT_EFORMAT, "version 4.0");
    img[6] = 1;
    img[7] = 1;
    expect_parse_err(img, len, KAT_EFORMAT, "version 1.1");
    img[6] = 0;
    img[7] = 0;
    expect_parse_err(img, len, KAT_EFORMAT, "version 0.0");
    expect_parse_err("\x93NUMPY\x02\x00\x10\x00", 10, KAT_EFORMAT, "too few");
    expect_parse_err("\x93NUMPY\x01\x00\x00\x00", 10, KAT_EFORMAT, "header length is 0");
    len = npy_image(1, ok, 1, raw, 0);
    expect_parse_err(img, 50, KAT_EFORMAT, "runs past the end");
    len = npy_image(2, ok, 1, raw, 0);
    img[11] = 0x80;   /* a 2 GiB header in a short buffer */
    expect_parse_err(img, len, KAT_EFORMAT, "runs past the end");

    /* Malformed dicts, each naming what is wrong. */
    expect_dict_err("'descr': '<f8', 'fortran_order': False, 'shape': (8,)}", KAT_EFORMAT,
                    "expected '{'");
    expect_dict_err("{'descr': '<f8', 'fortran_order': False}", KAT_EFORMAT,
                    "'shape' key is missing");
    expect_dict_err("{'fortran_order': False, 'shape': (8,)}", KAT_EFORMAT,
                    "'descr' key is missing");
    expect_dict_err("{'descr': '<f8', 'shape': (8,)}", KAT_EFORMAT, "'fortran_order' key");
    expect_dict_err("{'descr': '<f8', 'descr': '<f8', 'fortran_order': False, 'shape': (8,)}",
                    KAT_EFORMAT, "'descr' appears twice");
    expect_dict_err("{'descr': '<f8', 'fortran_order': False, 'shape': (8,), 'foo': 1}",
                    KAT_EFORMAT, "unexpected key 'foo'");
    expect_dict_err("{'descr': '<i3', 'fortran_order': False, 'shape': (8,)}", KAT_EFORMAT,
                    "dtype '<i3'");
    expect_dict_err("{'descr': '|i4', 'fortran_order': False, 'shape': (8,)}", KAT_EFORMAT,
                    "dtype '|i4'");
    expect_dict_err("{'descr': '<b2', 'fortran_order': False, 'shape': (8,)}", KAT_EFORMAT,
                    "dtype '<b2'");
    expect_dict_err("{'descr': '<M8[s]', 'fortran_order': False, 'shape': (8,)}", KAT_EFORMAT,
                    "dtype '<M8[s]'");
    expect_dict_err("{'descr': '|f8', 'fortran_order': False, 'shape': (8,)}", KAT_EFORMAT,
                    "dtype '|f8'");
    expect_dict_err("{'descr': '<f2', 'fortran_order': False, 'shape': (8,)}", KAT_EFORMAT,
                    "dtype '<f2'");
    expect_dict_err("{'descr': '<c16', 'fortran_order': False, 'shape': (4,)}", KAT_EFORMAT,
                    "dtype '<c16'");
    expect_dict_err("{'descr': '<f8\x01', 'fortran_order': False, 'shape': (4,)}", KAT_EFORMAT,
                    "dtype '<f8\\x01'");
    expect_dict_err("{'descr': [('x', '<f8')], 'fortran_order': False, 'shape': (4,)}",
                    KAT_EFORMAT, "structured");
    expect_dict_err("{'descr': 5, 'fortran_order': False, 'shape': (4,)}", KAT_EFORMAT,
                    "quoted 'descr' value");
    expect_dict_err("{'descr': '<f8, 'fortran_order': False, 'shape': (4,)}", KAT_EFORMAT,
                    "dtype '<f8, '");
    expect_dict_err("{'descr': '<f8' 'fortran_order': False, 'shape': (4,)}", KAT_EFORMAT,
                    "expected ',' or '}' after the value of 'descr'");
    expect_dict_err("{'descr': '<f8', 'fortran_order: False, 'shape': (4,)}", KAT_EFORMAT,
                    "unexpected key");
    expect_dict_err("{'descr': '<f8', 'fortran_order': False, 'shape': (4,), 'x", KAT_EFORMAT,
                    "unterminated string");
    expect_dict_err("{'descr': '<f8', 'fortran_order': 0, 'shape': (4,)}", KAT_EFORMAT,
                    "True or False, found '0'");
    expect_dict_err("{'descr': '<f8', 'fortran_order': maybe, 'shape': (4,)}", KAT_EFORMAT,
                    "True or False, found 'maybe'");
    expect_dict_err("{'descr': '<f8', 'fortran_order': False 'shape': (4,)}", KAT_EFORMAT,
                    "after the value of 'fortran_order'");
    expect_dict_err("{'descr' '<f8', 'fortran_order': False, 'shape': (4,)}", KAT_EFORMAT,
                    "expected ':' after 'descr'");
    expect_dict_err("{descr: '<f8', 'fortran_order': False, 'shape': (4,)}", KAT_EFORMAT,
                    "quoted key");
    expect_dict_err("{'descr': '<f8', 'fortran_order': False, 'shape': [4]}", KAT_EFORMAT,
                    "must be a tuple");
    expect_dict_err("{'descr': '<f8', 'fortran_order': False, 'shape': (4)}", KAT_EFORMAT,
                    "(4) is an integer, not a tuple");
    expect_dict_err("{'descr': '<f8', 'fortran_order': False, 'shape': (-1,)}", KAT_EFORMAT,
                    "entry 1 is negative");
    expect_dict_err("{'descr': '<f8', 'fortran_order': False, 'shape': (2, x)}", KAT_EFORMAT,
                    "entry 2 is not an integer");
    expect_dict_err("{'descr': '<f8', 'fortran_order': False, 'shape': (,)}", KAT_EFORMAT,
                    "entry 1 is not an integer");
    expect_dict_err("{'descr': '<f8', 'fortran_order': False, 'shape': (2 2)}", KAT_EFORMAT,
                    "expected ',' or ')'");
    expect_dict_err("{'descr': '<f8', 'fortran_order': False, 'shape': (2, 2", KAT_EFORMAT,
                    "expected ',' or ')'");
    expect_dict_err("{'descr': '<f8', 'fortran_order': False, 'shape': "
                    "(99999999999999999999999,)}",
                    KAT_EFORMAT, "entry 1 overflows");
    expect_dict_err("{'descr': '<f8', 'fortran_order': False, 'shape': (1,1,1,1,1,1,1,1,1)}",
                    KAT_EFORMAT, "more than 8 dimensions");
    expect_dict_err("{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, "
                    "4294967296, 2)}",
                    KAT_EFORMAT, "(4294967296, 4294967296, 2) has more bytes than");
    expect_dict_err("{'descr': '<f8', 'fortran_order': False, 'shape': (2305843009213693952,)}",
                    KAT_EFORMAT, "more bytes than size_t");
    expect_dict_err("{'descr': '<f8', 'fortran_order': False, 'shape': (4,)} x", KAT_EFORMAT,
                    "unexpected text 'x ");
    expect_dict_err("{'descr': '<f8', 'fortran_order': False, 'shape': (4,)}}", KAT_EFORMAT,
                    "unexpected text '} ");
    expect_dict_err("{}", KAT_EFORMAT, "'descr' key is missing");
    expect_dict_err("{,}", KAT_EFORMAT, "quoted key");
    expect_dict_err("", KAT_EFORMAT, "expected '{'");

    /* A data section shorter than the shape needs: both byte counts in the message. */
    unsigned char data[48] = {0};
    len = npy_image(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (3, 2), }", 1, data,
                    40);
    expect_parse_err(img, len, KAT_EFORMAT, "has 40 bytes but shape (3, 2) of float64 needs 48");
    len = npy_image(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (), }", 1, data, 3);
    expect_parse_err(img, len, KAT_EFORMAT, "has 3 bytes but shape () of float32 needs 4");

    kat_array a;
    TU_EXPECT_ERR(kat_npy_parse(img, len, NULL), KAT_EINVAL, "out");
    TU_EXPECT_ERR(kat_npy_parse(NULL, 10, &a), KAT_EINVAL, "buf");
    expect_parse_err(NULL, 0, KAT_EFORMAT, "too few");
}
END_TEST

/* ---- .npy: writing ------------------------------------------------------------------------ */

START_TEST(test_npy_write_matches_numpy)
{
    char *path = tu_tmpfile(".npy");
    kat_array a;
    size_t shape[2] = {3, 2};
    TU_OK(kat_array_alloc(KAT_DTYPE_F64, 2, shape, &a));
    for (int i = 0; i < 6; i++)
        ((double *)a.data)[i] = i / 4.0;
    TU_OK(kat_npy_write(path, &a));
    size_t len;
    unsigned char *got = slurp(path, &len);
    ck_assert_uint_eq(len, 128 + 48);
    ck_assert(memcmp(got, numpy_3x2_header, 128) == 0);
    for (int i = 0; i < 6; i++) {
        unsigned char e[8];
        le64(e, i / 4.0);
        ck_assert(memcmp(got + 128 + 8 * i, e, 8) == 0);
    }
    free(got);
    kat_array_free(&a);

    /* 1-D float32 and 0-D: numpy's "(3,)" and "()" spellings. */
    static const char f4_3[] = "\x93NUMPY\x01\x00\x76\x00"
                               "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }";
    static const char f8_0[] = "\x93NUMPY\x01\x00\x76\x00"
                               "{'descr': '<f8', 'fortran_order': False, 'shape': (), }";
    size_t three = 3;
    TU_OK(kat_array_alloc(KAT_DTYPE_F32, 1, &three, &a));
    TU_OK(kat_npy_write(path, &a));
    got = slurp(path, &len);
    ck_assert_uint_eq(len, 128 + 12);
    ck_assert(memcmp(got, f4_3, sizeof f4_3 - 1) == 0);
    for (size_t i = sizeof f4_3 - 1; i < 127; i++)
        ck_assert_int_eq(got[i], ' ');
    ck_assert_int_eq(got[127], '\n');
    free(got);
    kat_array_free(&a);
    TU_OK(kat_array_alloc(KAT_DTYPE_F64, 0, NULL, &a));
    ((double *)a.data)[0] = -1.0;
    TU_OK(kat_npy_write(path, &a));
    got = slurp(path, &len);
    ck_assert_uint_eq(len, 128 + 8);
    ck_assert(memcmp(got, f8_0, sizeof f8_0 - 1) == 0);
    ck_assert_int_eq(got[127], '\n');
    ck_assert_int_eq(got[135], 0xBF);   /* -1.0 = 0xBFF0000000000000, little-endian */
    free(got);
    kat_array_free(&a);

    /* Eight dimensions: still version 1.0, data still 64-aligned. */
    size_t shape8[8] = {1, 2, 1, 3, 1, 1, 2, 1};
    TU_OK(kat_array_alloc(KAT_DTYPE_F32, 8, shape8, &a));
    TU_OK(kat_npy_write(path, &a));
    got = slurp(path, &len);
    ck_assert_int_eq(got[6], 1);
    size_t hlen = got[8] | (size_t)got[9] << 8;
    ck_assert_uint_eq((10 + hlen) % 64, 0);
    ck_assert_uint_eq(len, 10 + hlen + 12 * 4);
    ck_assert_int_eq(got[10 + hlen - 1], '\n');
    free(got);
    kat_array_free(&a);
    unlink(path);
    free(path);
}
END_TEST

START_TEST(test_npy_roundtrip)
{
    char *path = tu_tmpfile(".npy");
    kat_rng *rng;
    TU_OK(kat_rng_create(42, &rng));
    for (int dt = 0; dt < 2; dt++) {
        for (int ndim = 0; ndim <= KAT_ARRAY_MAX_NDIM; ndim++) {
            for (int with_zero = 0; with_zero <= (ndim > 0); with_zero++) {
                size_t shape[KAT_ARRAY_MAX_NDIM];
                for (int i = 0; i < ndim; i++)
                    shape[i] = 1 + (size_t)((i * 7 + ndim) % 3);
                if (with_zero)
                    shape[ndim / 2] = 0;
                kat_array a, b;
                TU_OK(kat_array_alloc((kat_dtype)dt, ndim, shape, &a));
                size_t bytes = kat_array_size(&a) * (dt ? 8 : 4);
                for (size_t i = 0; i < bytes; i++)   /* any bits, NaN payloads included */
                    ((unsigned char *)a.data)[i] = (unsigned char)kat_rng_uint(rng, 256);
                TU_OK(kat_npy_write(path, &a));
                TU_OK(kat_npy_read(path, &b));
                ck_assert_int_eq(b.dtype, dt);
                ck_assert_int_eq(b.ndim, ndim);
                for (int i = 0; i < ndim; i++)
                    ck_assert_uint_eq(b.shape[i], shape[i]);
                ck_assert(bytes == 0 || memcmp(a.data, b.data, bytes) == 0);
                kat_array_free(&a);
                kat_array_free(&b);
            }
        }
    }
    kat_rng_destroy(rng);
    unlink(path);
    free(path);
}
END_TEST

START_TEST(test_npy_write_errors)
{
    char *path = tu_tmpfile(".npy");
    kat_array a;
    size_t two = 2;
    TU_OK(kat_array_alloc(KAT_DTYPE_F64, 1, &two, &a));
    TU_EXPECT_ERR(kat_npy_write(NULL, &a), KAT_EINVAL, "path");
    TU_EXPECT_ERR(kat_npy_write(path, NULL), KAT_EINVAL, "a is NULL");
    kat_array bad = a;
    bad.dtype = (kat_dtype)7;
    TU_EXPECT_ERR(kat_npy_write(path, &bad), KAT_EINVAL, "dtype = 7");
    bad = a;
    bad.ndim = 9;
    TU_EXPECT_ERR(kat_npy_write(path, &bad), KAT_EINVAL, "ndim = 9");
    bad.ndim = -1;
    TU_EXPECT_ERR(kat_npy_write(path, &bad), KAT_EINVAL, "ndim = -1");
    bad = a;
    bad.data = NULL;
    TU_EXPECT_ERR(kat_npy_write(path, &bad), KAT_EINVAL, "data is NULL");
    bad.shape[0] = 0;
    TU_OK(kat_npy_write(path, &bad));   /* empty: no data needed */
    bad = a;
    bad.ndim = 3;
    bad.shape[1] = SIZE_MAX / 4;
    bad.shape[2] = 4;
    TU_EXPECT_ERR(kat_npy_write(path, &bad), KAT_ERANGE, "overflows");
    TU_EXPECT_ERR(kat_npy_write("/nonexistent-kat-dir/x.npy", &a), KAT_EIO,
                  "'/nonexistent-kat-dir/x.npy'");
    TU_EXPECT_ERR(kat_npy_write("/nonexistent-kat-dir/x.npy", &a), KAT_EIO, "No such file");
    if (access("/dev/full", W_OK) == 0)
        TU_EXPECT_ERR(kat_npy_write("/dev/full", &a), KAT_EIO, "No space");
    kat_array_free(&a);
    unlink(path);
    free(path);
}
END_TEST

START_TEST(test_array_alloc)
{
    kat_array a;
    size_t shape[3] = {2, 0, 5};
    TU_OK(kat_array_alloc(KAT_DTYPE_F32, 3, shape, &a));
    ck_assert_uint_eq(kat_array_size(&a), 0);
    ck_assert_ptr_nonnull(a.data);
    kat_array_free(&a);
    shape[1] = 3;
    TU_OK(kat_array_alloc(KAT_DTYPE_F64, 3, shape, &a));
    ck_assert_uint_eq(kat_array_size(&a), 30);
    for (int i = 0; i < 30; i++)
        ck_assert(((double *)a.data)[i] == 0.0);
    kat_array_free(&a);
    TU_OK(kat_array_alloc(KAT_DTYPE_F64, 0, NULL, &a));
    ck_assert_uint_eq(kat_array_size(&a), 1);
    kat_array_free(&a);
    ck_assert_uint_eq(kat_array_size(NULL), 0);

    TU_EXPECT_ERR(kat_array_alloc(KAT_DTYPE_F64, 1, shape, NULL), KAT_EINVAL, "out");
    TU_EXPECT_ERR(kat_array_alloc((kat_dtype)2, 1, shape, &a), KAT_EINVAL, "dtype 2");
    TU_EXPECT_ERR(kat_array_alloc(KAT_DTYPE_F64, 9, shape, &a), KAT_EINVAL, "ndim = 9");
    TU_EXPECT_ERR(kat_array_alloc(KAT_DTYPE_F64, -1, shape, &a), KAT_EINVAL, "ndim = -1");
    TU_EXPECT_ERR(kat_array_alloc(KAT_DTYPE_F64, 2, NULL, &a), KAT_EINVAL, "shape is NULL");
    size_t huge[2] = {SIZE_MAX / 2, 3};
    TU_EXPECT_ERR(kat_array_alloc(KAT_DTYPE_F32, 2, huge, &a), KAT_ERANGE, "overflows");
    size_t big[1] = {SIZE_MAX / 8 + 1};   /* elements fit, bytes do not */
    TU_EXPECT_ERR(kat_array_alloc(KAT_DTYPE_F64, 1, big, &a), KAT_ERANGE, "overflows");
}
END_TEST

/* ---- .npy: integer and boolean arrays ----------------------------------------------------- */

/* The bytes of v as an n-byte integer in little (big = 0) or big-endian order. */
static void put_int(unsigned char *b, uint64_t v, int n, int big)
{
    for (int i = 0; i < n; i++)
        b[big ? n - 1 - i : i] = (unsigned char)(v >> (8 * i));
}

START_TEST(test_npy_integer_dtypes)
{
    static const struct {
        const char *descr;
        kat_dtype t;
        int size;
        int64_t lo;     /* the type's smallest value (as its bits, for unsigned: 0) */
        uint64_t hi;    /* its largest */
    } types[] = {
        {"i1", KAT_DTYPE_I8, 1, INT8_MIN, INT8_MAX},
        {"i2", KAT_DTYPE_I16, 2, INT16_MIN, INT16_MAX},
        {"i4", KAT_DTYPE_I32, 4, INT32_MIN, INT32_MAX},
        {"i8", KAT_DTYPE_I64, 8, INT64_MIN, INT64_MAX},
        {"u1", KAT_DTYPE_U8, 1, 0, UINT8_MAX},
        {"u2", KAT_DTYPE_U16, 2, 0, UINT16_MAX},
        {"u4", KAT_DTYPE_U32, 4, 0, UINT32_MAX},
        {"u8", KAT_DTYPE_U64, 8, 0, UINT64_MAX},
    };
    for (size_t k = 0; k < sizeof types / sizeof types[0]; k++)
        for (int big = 0; big < 2; big++) {
            /* [lo, -1 or 1, 0, 7, hi]: both extremes, a sign, zero, a small id. */
            const int is_signed = types[k].descr[0] == 'i';
            const uint64_t vals[5] = {(uint64_t)types[k].lo, is_signed ? (uint64_t)-1 : 1, 0, 7,
                                      types[k].hi};
            const double want[5] = {(double)types[k].lo, is_signed ? -1.0 : 1.0, 0.0, 7.0,
                                    (double)types[k].hi};
            unsigned char raw[40];
            for (int i = 0; i < 5; i++)
                put_int(raw + i * types[k].size, vals[i], types[k].size, big);
            char dict[96];
            char order = types[k].size == 1 ? '|' : big ? '>' : '<';
            snprintf(dict, sizeof dict, "{'descr': '%c%s', 'fortran_order': False, "
                     "'shape': (5,), }", order, types[k].descr);
            size_t len = npy_image(1, dict, 1, raw, 5 * (size_t)types[k].size);
            kat_array a;
            TU_OK(kat_npy_parse(img, len, &a));
            ck_assert_int_eq(a.dtype, types[k].t);
            ck_assert_uint_eq(kat_dtype_size(a.dtype), (size_t)types[k].size);
            ck_assert_uint_eq(kat_array_size(&a), 5);
            for (int i = 0; i < 5; i++) {
                uint64_t got = 0;   /* the native value's bits, zero-extended */
                memcpy(&got, (unsigned char *)a.data + i * types[k].size, (size_t)types[k].size);
                uint64_t mask = types[k].size == 8 ? UINT64_MAX
                                                   : ((uint64_t)1 << (8 * types[k].size)) - 1;
                ck_assert_msg(got == (vals[i] & mask), "%s element %d", dict, i);
                ck_assert_msg(kat_array_get(&a, (size_t)i) == want[i], "%s get %d = %.17g", dict,
                              i, kat_array_get(&a, (size_t)i));
            }
            kat_array_free(&a);
        }
    ck_assert_str_eq(kat_dtype_name(KAT_DTYPE_I32), "int32");
    ck_assert_str_eq(kat_dtype_name(KAT_DTYPE_U64), "uint64");
    ck_assert_str_eq(kat_dtype_name(KAT_DTYPE_BOOL), "bool");
    ck_assert_str_eq(kat_dtype_name(KAT_DTYPE_F32), "float32");
    ck_assert_str_eq(kat_dtype_name(KAT_DTYPE_COUNT), "unknown");
    ck_assert_uint_eq(kat_dtype_size(KAT_DTYPE_COUNT), 0);
}
END_TEST

START_TEST(test_npy_bool_and_fortran_integers)
{
    /* numpy writes bool as '|b1'; a byte other than 0 or 1 (not numpy's, but possible in a
     * file) reads as true. */
    const unsigned char flags[5] = {0, 1, 1, 0, 2};
    size_t len = npy_image(1, "{'descr': '|b1', 'fortran_order': False, 'shape': (5,), }", 1,
                           flags, 5);
    kat_array a;
    TU_OK(kat_npy_parse(img, len, &a));
    ck_assert_int_eq(a.dtype, KAT_DTYPE_BOOL);
    const unsigned char want[5] = {0, 1, 1, 0, 1};
    ck_assert_mem_eq(a.data, want, 5);
    ck_assert(kat_array_get(&a, 4) == 1.0);
    kat_array_free(&a);

    /* A 2 x 3 big-endian int16 array in Fortran order: [[1 2 3] [-4 -5 -6]]. */
    const int16_t col_major[6] = {1, -4, 2, -5, 3, -6};
    unsigned char raw[12];
    for (int i = 0; i < 6; i++)
        put_int(raw + 2 * i, (uint64_t)(int64_t)col_major[i], 2, 1);
    len = npy_image(1, "{'descr': '>i2', 'fortran_order': True, 'shape': (2, 3), }", 1, raw, 12);
    TU_OK(kat_npy_parse(img, len, &a));
    const int16_t c_order[6] = {1, 2, 3, -4, -5, -6};
    ck_assert_mem_eq(a.data, c_order, sizeof c_order);
    kat_array_free(&a);

    /* Too little data names the integer dtype. */
    len = npy_image(1, "{'descr': '<i4', 'fortran_order': False, 'shape': (3,), }", 1, raw, 8);
    expect_parse_err(img, len, KAT_EFORMAT, "has 8 bytes but shape (3,) of int32 needs 12 bytes");

    /* kat writes floats only: an integer array is refused before any file is touched. */
    int32_t ids[2] = {1, 2};
    kat_array ia = {KAT_DTYPE_I32, 1, {2}, ids};
    TU_EXPECT_ERR(kat_npy_write("/nonexistent-kat-dir/x.npy", &ia), KAT_EINVAL,
                  "is not KAT_DTYPE_F32 or KAT_DTYPE_F64");
}
END_TEST

START_TEST(test_npy_read_dmat_integers)
{
    char *path = tu_tmpfile(".npy");
    /* A 3 x 2 int32 point grid reads as doubles. */
    unsigned char raw[48];
    const int32_t grid[6] = {0, 1, 2, -3, 40000, -70000};
    for (int i = 0; i < 6; i++)
        put_int(raw + 4 * i, (uint64_t)(int64_t)grid[i], 4, 0);
    size_t len = npy_image(1, "{'descr': '<i4', 'fortran_order': False, 'shape': (3, 2), }", 1,
                           raw, 24);
    write_file_or_fail(path, img, len);
    kat_dmat m;
    TU_OK(kat_npy_read_dmat(path, &m));
    ck_assert_uint_eq(m.rows, 3);
    ck_assert_uint_eq(m.cols, 2);
    for (int i = 0; i < 6; i++)
        ck_assert(m.data[i] == (double)grid[i]);
    kat_dmat_free(&m);
    /* uint8 and bool too. */
    const unsigned char bytes[3] = {0, 255, 1};
    len = npy_image(1, "{'descr': '|u1', 'fortran_order': False, 'shape': (3,), }", 1, bytes, 3);
    write_file_or_fail(path, img, len);
    TU_OK(kat_npy_read_dmat(path, &m));
    ck_assert(m.rows == 3 && m.cols == 1 && m.data[1] == 255.0);
    kat_dmat_free(&m);
    /* 64-bit integers that a double cannot hold exactly are refused, naming the entry. */
    const int64_t big[4] = {0, (int64_t)1 << 53, -((int64_t)1 << 53), ((int64_t)1 << 53) + 1};
    for (int i = 0; i < 4; i++)
        put_int(raw + 8 * i, (uint64_t)big[i], 8, 0);
    len = npy_image(1, "{'descr': '<i8', 'fortran_order': False, 'shape': (2, 2), }", 1, raw, 32);
    write_file_or_fail(path, img, len);
    TU_EXPECT_ERR(kat_npy_read_dmat(path, &m), KAT_EDOM,
                  "entry (1, 1) is 9007199254740993, beyond 2^53 in magnitude: no double holds "
                  "it exactly");
    put_int(raw, UINT64_MAX, 8, 0);
    len = npy_image(1, "{'descr': '<u8', 'fortran_order': False, 'shape': (1,), }", 1, raw, 8);
    write_file_or_fail(path, img, len);
    TU_EXPECT_ERR(kat_npy_read_dmat(path, &m), KAT_EDOM, "entry (0, 0) is 18446744073709551615");
    unlink(path);
    free(path);
}
END_TEST

/* ---- .npy: files and matrices ------------------------------------------------------------- */

START_TEST(test_npy_file_errors)
{
    kat_array a;
    memset(&a, 0, sizeof a);
    TU_EXPECT_ERR(kat_npy_read("/nonexistent-kat-dir/x.npy", &a), KAT_EIO,
                  "'/nonexistent-kat-dir/x.npy'");
    TU_EXPECT_ERR(kat_npy_read("/nonexistent-kat-dir/x.npy", &a), KAT_EIO, strerror(ENOENT));
    TU_EXPECT_ERR(kat_npy_read("/tmp", &a), KAT_EIO, strerror(EISDIR));
    TU_EXPECT_ERR(kat_npy_read(NULL, &a), KAT_EINVAL, "path");
    TU_EXPECT_ERR(kat_npy_read("/tmp/x.npy", NULL), KAT_EINVAL, "out");

    char *path = tu_tmpfile(".npy");
    unsigned char data[48] = {0};
    memcpy(img, numpy_3x2_header, 128);
    memcpy(img + 128, data, 48);
    write_file_or_fail(path, img, 128 + 40);   /* 8 bytes short */
    TU_EXPECT_ERR(kat_npy_read(path, &a), KAT_EFORMAT, path);
    TU_EXPECT_ERR(kat_npy_read(path, &a), KAT_EFORMAT, "has 40 bytes but shape (3, 2)");
    write_file_or_fail(path, img, 100);   /* the header is cut */
    TU_EXPECT_ERR(kat_npy_read(path, &a), KAT_EFORMAT, "runs past the end of the file");
    write_file_or_fail(path, img, 9);
    TU_EXPECT_ERR(kat_npy_read(path, &a), KAT_EFORMAT, "9 bytes are too few");
    write_file_or_fail(path, "", 0);
    TU_EXPECT_ERR(kat_npy_read(path, &a), KAT_EFORMAT, "0 bytes are too few");
    write_file_or_fail(path, "a,b\n1,2\n", 8);
    TU_EXPECT_ERR(kat_npy_read(path, &a), KAT_EFORMAT, "bad magic");
    size_t len = npy_image(1, "{'descr': '<c8', 'fortran_order': False, 'shape': (1,), }", 1,
                           data, 8);
    write_file_or_fail(path, img, len);
    TU_EXPECT_ERR(kat_npy_read(path, &a), KAT_EFORMAT, "unsupported dtype '<c8' (kat reads "
                  "float32, float64 ('<f4', '<f8'), integers ('|i1', '<i2', '<i4', '<i8', '|u1', "
                  "'<u2', '<u4', '<u8') and bool ('|b1'), '<' or '>' order)");
    /* Complete file: reads. */
    memcpy(img, numpy_3x2_header, 128);
    write_file_or_fail(path, img, 128 + 48);
    TU_OK(kat_npy_read(path, &a));
    kat_array_free(&a);
    unlink(path);
    free(path);
}
END_TEST

START_TEST(test_npy_read_dmat)
{
    char *path = tu_tmpfile(".npy");
    kat_dmat m;
    unsigned char raw[64] = {0};
    size_t len;

    /* 2-D float32 -> doubles exactly. */
    const float f[6] = {0.1f, -2.5f, 3e-38f, 1e30f, 7.0f, -0.0f};
    for (int i = 0; i < 6; i++)
        le32(raw + 4 * i, f[i]);
    len = npy_image(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 1, raw, 24);
    write_file_or_fail(path, img, len);
    TU_OK(kat_npy_read_dmat(path, &m));
    ck_assert_uint_eq(m.rows, 2);
    ck_assert_uint_eq(m.cols, 3);
    ck_assert_uint_eq(m.ld, 3);
    for (int i = 0; i < 6; i++)
        ck_assert(m.data[i] == (double)f[i]);
    ck_assert(signbit(m.data[5]));
    kat_dmat_free(&m);

    /* 1-D -> n x 1; 0-D -> 1 x 1; (0, 4) -> 0 x 4. */
    for (int i = 0; i < 4; i++)
        le64(raw + 8 * i, i - 1.5);
    len = npy_image(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (4,), }", 1, raw, 32);
    write_file_or_fail(path, img, len);
    TU_OK(kat_npy_read_dmat(path, &m));
    ck_assert_uint_eq(m.rows, 4);
    ck_assert_uint_eq(m.cols, 1);
    ck_assert(m.data[3] == 1.5);
    kat_dmat_free(&m);
    len = npy_image(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (), }", 1, raw, 8);
    write_file_or_fail(path, img, len);
    TU_OK(kat_npy_read_dmat(path, &m));
    ck_assert(m.rows == 1 && m.cols == 1 && m.data[0] == -1.5);
    kat_dmat_free(&m);
    len = npy_image(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (0, 4), }", 1, raw, 0);
    write_file_or_fail(path, img, len);
    TU_OK(kat_npy_read_dmat(path, &m));
    ck_assert(m.rows == 0 && m.cols == 4);
    kat_dmat_free(&m);

    /* Errors: more than two dimensions, non-finite data, bad arguments. */
    len = npy_image(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 2, 2), }", 1, raw,
                    64);
    write_file_or_fail(path, img, len);
    TU_EXPECT_ERR(kat_npy_read_dmat(path, &m), KAT_EFORMAT, "shape (2, 2, 2) is not a matrix");
    for (int i = 0; i < 4; i++)
        le64(raw + 8 * i, i == 2 ? NAN : 1.0);
    len = npy_image(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 2), }", 1, raw, 32);
    write_file_or_fail(path, img, len);
    TU_EXPECT_ERR(kat_npy_read_dmat(path, &m), KAT_EDOM, "entry (1, 0) is nan");
    for (int i = 0; i < 3; i++)
        le32(raw + 4 * i, i == 1 ? -INFINITY : 1.0f);
    len = npy_image(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", 1, raw, 12);
    write_file_or_fail(path, img, len);
    TU_EXPECT_ERR(kat_npy_read_dmat(path, &m), KAT_EDOM, "entry (1, 0) is -inf");
    TU_EXPECT_ERR(kat_npy_read_dmat(path, NULL), KAT_EINVAL, "out");
    TU_EXPECT_ERR(kat_npy_read_dmat("/nonexistent-kat-dir/m.npy", &m), KAT_EIO, "m.npy");
    unlink(path);
    free(path);
}
END_TEST

START_TEST(test_npy_write_dmat)
{
    char *path = tu_tmpfile(".npy");
    /* A 4 x 3 view into a 4 x 5 buffer: the padding columns must not be written. */
    double buf[20];
    for (int i = 0; i < 20; i++)
        buf[i] = (i % 5 < 3) ? (i - 7) / 3.0 : 999.0;
    kat_dmat v = {4, 3, 5, buf}, m;
    TU_OK(kat_npy_write_dmat(path, &v, KAT_DTYPE_F64));
    TU_OK(kat_npy_read_dmat(path, &m));
    ck_assert(m.rows == 4 && m.cols == 3);
    for (size_t i = 0; i < 4; i++)
        for (size_t j = 0; j < 3; j++)
            ck_assert(m.data[i * 3 + j] == buf[i * 5 + j]);
    kat_dmat_free(&m);

    TU_OK(kat_npy_write_dmat(path, &v, KAT_DTYPE_F32));
    kat_array a;
    TU_OK(kat_npy_read(path, &a));
    ck_assert_int_eq(a.dtype, KAT_DTYPE_F32);
    for (size_t i = 0; i < 4; i++)
        for (size_t j = 0; j < 3; j++)
            ck_assert(((float *)a.data)[i * 3 + j] == (float)buf[i * 5 + j]);
    kat_array_free(&a);

    /* The float32 range edge: below FLT_MAX + ulp/2 rounds to FLT_MAX; the tie rounds to inf. */
    double edge[2] = {-0x1.fffffefffffffp127, 1.0};
    kat_dmat e = {1, 2, 2, edge};
    TU_OK(kat_npy_write_dmat(path, &e, KAT_DTYPE_F32));
    TU_OK(kat_npy_read(path, &a));
    ck_assert(((float *)a.data)[0] == -FLT_MAX);
    kat_array_free(&a);
    edge[1] = 0x1.ffffffp127;
    TU_EXPECT_ERR(kat_npy_write_dmat(path, &e, KAT_DTYPE_F32), KAT_EDOM, "entry (0, 1)");
    TU_OK(kat_npy_write_dmat(path, &e, KAT_DTYPE_F64));   /* fine as float64 */
    edge[1] = NAN;
    TU_EXPECT_ERR(kat_npy_write_dmat(path, &e, KAT_DTYPE_F64), KAT_EDOM, "(0, 1)");

    /* Empty matrices keep their shape. */
    kat_dmat empty = {0, 3, 3, NULL};
    TU_OK(kat_npy_write_dmat(path, &empty, KAT_DTYPE_F64));
    TU_OK(kat_npy_read_dmat(path, &m));
    ck_assert(m.rows == 0 && m.cols == 3);
    kat_dmat_free(&m);

    kat_dmat badld = {2, 3, 2, buf};
    TU_EXPECT_ERR(kat_npy_write_dmat(path, &badld, KAT_DTYPE_F64), KAT_EINVAL, "ld = 2");
    TU_EXPECT_ERR(kat_npy_write_dmat(path, NULL, KAT_DTYPE_F64), KAT_EINVAL, "m is NULL");
    TU_EXPECT_ERR(kat_npy_write_dmat(path, &v, (kat_dtype)5), KAT_EINVAL, "dtype = 5");
    TU_EXPECT_ERR(kat_npy_write_dmat(NULL, &v, KAT_DTYPE_F64), KAT_EINVAL, "path");
    TU_EXPECT_ERR(kat_npy_write_dmat("/nonexistent-kat-dir/m.npy", &v, KAT_DTYPE_F64), KAT_EIO,
                  "/nonexistent-kat-dir/m.npy");
    unlink(path);
    free(path);
}
END_TEST

/* Every allocation in the readers can fail: the call then reports KAT_ENOMEM, leaks nothing
 * (the sanitizer build checks) and leaves the output alone. */
START_TEST(test_npy_alloc_failures)
{
    unsigned char raw[6 * 8];
    for (int i = 0; i < 6; i++)
        le64(raw + 8 * i, i);
    size_t len = npy_image(1, "{'descr': '<f8', 'fortran_order': True, 'shape': (2, 3), }", 1,
                           raw, sizeof raw);
    char *path = tu_tmpfile(".npy");
    write_file_or_fail(path, img, len);
    unsigned char f4[24];
    for (int i = 0; i < 6; i++)
        le32(f4 + 4 * i, (float)i);
    size_t len4 =
        npy_image(1, "{'descr': '<f4', 'fortran_order': True, 'shape': (3, 2), }", 1, f4, 24);
    char *path4 = tu_tmpfile(".npy");
    write_file_or_fail(path4, img, len4);
    len = npy_image(1, "{'descr': '<f8', 'fortran_order': True, 'shape': (2, 3), }", 1, raw,
                    sizeof raw);
    for (int which = 0; which < 3; which++) {
        int failures = 0;
        for (size_t k = 1;; k++) {
            kat_array a;
            kat_dmat m;
            memset(&a, 0x5A, sizeof a);
            memset(&m, 0x5A, sizeof m);
            kat_debug_fail_alloc_at(k);
            kat_status st = which == 0   ? kat_npy_parse(img, len, &a)
                            : which == 1 ? kat_npy_read(path, &a)
                                         : kat_npy_read_dmat(path4, &m);
            kat_debug_fail_alloc_at(0);
            if (st == KAT_OK) {
                if (which == 2) {
                    ck_assert(m.data[1] == 3.0);   /* row 0 of the 3 x 2 Fortran array */
                    kat_dmat_free(&m);
                } else {
                    ck_assert(((double *)a.data)[1] == 2.0);
                    kat_array_free(&a);
                }
                break;
            }
            ck_assert_int_eq(st, KAT_ENOMEM);
            ck_assert_int_eq(which == 2 ? ((unsigned char *)&m)[0] : ((unsigned char *)&a)[0],
                             0x5A);
            failures++;
        }
        ck_assert_int_ge(failures, 2);   /* the data and the Fortran reorder buffer at least */
    }
    unlink(path);
    unlink(path4);
    free(path);
    free(path4);
}
END_TEST

/* ---- CSV ---------------------------------------------------------------------------------- */

START_TEST(test_csv_parse_basic)
{
    const char *text = "# exported by a tool\n"
                       " x , y,z\r\n"
                       "1, 2.5,\t-3\r\n"
                       "\n"
                       "   # a comment between rows\n"
                       "4,5e-1 ,0.1\n"
                       " \t \r\n"
                       "+7,-8e+2,0x1p-2";   /* no final newline; strtod reads hex floats */
    const double want[9] = {1, 2.5, -3, 4, 5e-1, 0.1, 7, -8e+2, 0.25};
    kat_dmat m;
    TU_OK(kat_csv_parse(text, strlen(text), &m));
    ck_assert_uint_eq(m.rows, 3);
    ck_assert_uint_eq(m.cols, 3);
    ck_assert_uint_eq(m.ld, 3);
    for (int i = 0; i < 9; i++)
        ck_assert_msg(m.data[i] == want[i], "entry %d: %.17g != %.17g", i, m.data[i], want[i]);
    kat_dmat_free(&m);
}
END_TEST

START_TEST(test_csv_parse_edges)
{
    kat_dmat m;
    TU_OK(kat_csv_parse("42", 2, &m));
    ck_assert(m.rows == 1 && m.cols == 1 && m.data[0] == 42.0);
    kat_dmat_free(&m);
    TU_OK(kat_csv_parse("", 0, &m));
    ck_assert(m.rows == 0 && m.cols == 0);
    kat_dmat_free(&m);
    TU_OK(kat_csv_parse(NULL, 0, &m));
    ck_assert(m.rows == 0 && m.cols == 0);
    kat_dmat_free(&m);
    const char *blank = "\n \n# only comments\n\r\n";
    TU_OK(kat_csv_parse(blank, strlen(blank), &m));
    ck_assert(m.rows == 0 && m.cols == 0);
    kat_dmat_free(&m);
    const char *hdr = "alpha, beta\n";   /* a header and no rows: 0 x 2 */
    TU_OK(kat_csv_parse(hdr, strlen(hdr), &m));
    ck_assert(m.rows == 0 && m.cols == 2);
    kat_dmat_free(&m);
    const char *bom = "\xEF\xBB\xBFq,r\n1,2\n";
    TU_OK(kat_csv_parse(bom, strlen(bom), &m));
    ck_assert(m.rows == 1 && m.cols == 2 && m.data[1] == 2.0);
    kat_dmat_free(&m);
    const char *column = "1\n2\n3\n";
    TU_OK(kat_csv_parse(column, strlen(column), &m));
    ck_assert(m.rows == 3 && m.cols == 1 && m.data[2] == 3.0);
    kat_dmat_free(&m);
    /* A field longer than the parser's stack buffer, and denormal / extreme values. */
    char longf[200];
    snprintf(longf, sizeof longf, "0.%0120d5, 4.9406564584124654e-324, -1.7976931348623157e308",
             0);
    TU_OK(kat_csv_parse(longf, strlen(longf), &m));
    ck_assert(m.data[0] == 5e-121);
    ck_assert(m.data[1] == 0x1p-1074);
    ck_assert(m.data[2] == -DBL_MAX);
    kat_dmat_free(&m);
    /* Fields that end the buffer (no terminator after them): short and long. */
    snprintf(longf, sizeof longf, "1e-2,0.%0120d5", 0);
    TU_OK(kat_csv_parse(longf, strlen(longf), &m));
    ck_assert(m.data[0] == 1e-2 && m.data[1] == 5e-121);
    kat_dmat_free(&m);
    TU_OK(kat_csv_parse("7,8.25e1xyz", 8, &m));   /* the length, not a NUL, ends the input */
    ck_assert(m.cols == 2 && m.data[1] == 82.5);
    kat_dmat_free(&m);
    /* Many rows: the value buffer grows several times. */
    size_t n = 5000;
    char *big = malloc(n * 16);
    size_t o = 0;
    for (size_t i = 0; i < n; i++)
        o += (size_t)sprintf(big + o, "%zu,%zu.5\n", i, i);
    TU_OK(kat_csv_parse(big, o, &m));
    ck_assert(m.rows == n && m.cols == 2);
    for (size_t i = 0; i < n; i++)
        ck_assert(m.data[2 * i] == (double)i && m.data[2 * i + 1] == i + 0.5);
    kat_dmat_free(&m);
    free(big);
}
END_TEST

/* Whitespace-separated text, as numpy's savetxt writes it (delimiter ' ' and fmt '%.18e' by
 * default, '# '-prefixed header lines) and as people write by hand (tabs, runs of spaces). */
START_TEST(test_csv_parse_whitespace)
{
    const char *savetxt = "# made by numpy\n"
                          "1.000000000000000000e+00 2.500000000000000000e+00 -3.000000000000000000e+00\n"
                          "1.000000000000000056e-01 1.000000000000000030e-300 7.000000000000000000e+00\n";
    const double want[6] = {1, 2.5, -3, 0.1, 1e-300, 7};
    kat_dmat m;
    TU_OK(kat_csv_parse(savetxt, strlen(savetxt), &m));
    ck_assert(m.rows == 2 && m.cols == 3 && m.ld == 3);
    for (int i = 0; i < 6; i++)
        ck_assert_msg(m.data[i] == want[i], "entry %d: %.17g != %.17g", i, m.data[i], want[i]);
    kat_dmat_free(&m);
    const char *tabs = "x\ty\r\n 1\t\t2 \r\n\n# c\n3   4";   /* a header, tabs, runs, CRLF */
    TU_OK(kat_csv_parse(tabs, strlen(tabs), &m));
    ck_assert(m.rows == 2 && m.cols == 2);
    ck_assert(m.data[0] == 1 && m.data[1] == 2 && m.data[2] == 3 && m.data[3] == 4);
    kat_dmat_free(&m);
    const char *vec = "4.000000000000000000e+00\n5.000000000000000000e+00\n";   /* 1-D */
    TU_OK(kat_csv_parse(vec, strlen(vec), &m));
    ck_assert(m.rows == 2 && m.cols == 1 && m.data[1] == 5.0);
    kat_dmat_free(&m);
    const char *hdr = "alpha beta gamma\n";
    TU_OK(kat_csv_parse(hdr, strlen(hdr), &m));
    ck_assert(m.rows == 0 && m.cols == 3);
    kat_dmat_free(&m);
    /* The first content line decides: one with a comma makes every line comma-separated. */
    expect_csv_err("1 2\n3 4 5\n", KAT_EFORMAT, "line 2, column 3: the row has more than the 2 "
                                               "columns of line 1");
    expect_csv_err("1 2 3\n4 5\n", KAT_EFORMAT, "line 2, column 3: the row ends after 2 "
                                               "columns but line 1 has 3");
    expect_csv_err("1 2\n3,4\n", KAT_EFORMAT, "line 2, column 1: '3,4' is not a number");
    expect_csv_err("1,2\n3 4\n", KAT_EFORMAT, "line 2, column 1: '3 4' is not a number");
    expect_csv_err("1 nan\n", KAT_EDOM, "line 1, column 2: 'nan' is not finite");
    expect_csv_err("a b c\n1 2\n", KAT_EFORMAT, "line 2 has 2 columns but the header on line 1 "
                                                "names 3");
    expect_csv_err("1 2x\n", KAT_EFORMAT, "line 1, column 2: '2x' is not a number");
}
END_TEST

START_TEST(test_csv_parse_errors)
{
    expect_csv_err("1,2\n3,4,5\n", KAT_EFORMAT, "line 2, column 3");
    expect_csv_err("1,2\n3,4,5\n", KAT_EFORMAT, "more than the 2 columns of line 1");
    expect_csv_err("1,2,3\n4,5\n", KAT_EFORMAT, "line 2, column 3: the row ends after 2");
    expect_csv_err("# c\n\n1,2\n\n# c\n3\n", KAT_EFORMAT, "line 6, column 2");
    expect_csv_err("1,2\r\n3,abc\r\n", KAT_EFORMAT, "line 2, column 2: 'abc' is not a number");
    expect_csv_err("1,2x\n", KAT_EFORMAT, "line 1, column 2: '2x'");   /* not a header */
    expect_csv_err("1,,2\n", KAT_EFORMAT, "line 1, column 2: empty field");
    expect_csv_err("1,2,\n", KAT_EFORMAT, "line 1, column 3: empty field");
    expect_csv_err("a,b\nc,d\n", KAT_EFORMAT, "line 2, column 1: 'c'");
    expect_csv_err("a,b,c\n1,2\n", KAT_EFORMAT, "line 2 has 2 columns but the header on line 1");
    expect_csv_err("1;2\n", KAT_EFORMAT, "'1;2' is not a number");   /* not a header either */
    expect_csv_err("1;2\n3;4\n", KAT_EFORMAT, "line 1, column 1");
    expect_csv_err("1 2,3\n", KAT_EFORMAT, "line 1, column 1: '1 2' is not a number");
    expect_csv_err("1,\"2\"\n", KAT_EFORMAT, "'\"2\"'");
    const char nul[] = "1,2\x00" "5\n";
    kat_dmat m;
    TU_EXPECT_ERR(kat_csv_parse(nul, sizeof nul - 1, &m), KAT_EFORMAT, "'2\\x005'");
    /* Non-finite text: a domain error naming the place. */
    expect_csv_err("1,nan\n", KAT_EDOM, "line 1, column 2: 'nan' is not finite");
    expect_csv_err("x,y\n1,2\n-Infinity,3\n", KAT_EDOM, "line 3, column 1: '-Infinity'");
    expect_csv_err("inf\n", KAT_EDOM, "line 1, column 1");
    expect_csv_err("NAN(0x1),1\n", KAT_EDOM, "column 1");
    expect_csv_err("1,2\n1e999,0\n", KAT_EDOM, "line 2, column 1: '1e999' overflows");
    TU_EXPECT_ERR(kat_csv_parse("1", 1, NULL), KAT_EINVAL, "out");
    TU_EXPECT_ERR(kat_csv_parse(NULL, 3, &m), KAT_EINVAL, "buf");
}
END_TEST

START_TEST(test_csv_roundtrip)
{
    char *path = tu_tmpfile(".csv");
    kat_rng *rng;
    TU_OK(kat_rng_create(7, &rng));
    enum { R = 37, C = 5, LD = 8 };
    double buf[R * LD];
    for (int i = 0; i < R * LD; i++)
        buf[i] = kat_rng_gaussian(rng, 1.0) * pow(10.0, (double)kat_rng_uint(rng, 40) - 20.0);
    buf[0] = -0.0;
    buf[1] = 0x1p-1074;
    buf[2] = DBL_MAX;
    buf[3] = 0.1;
    buf[LD] = -DBL_MIN;
    kat_dmat v = {R, C, LD, buf}, m;
    TU_OK(kat_csv_write(path, &v));
    TU_OK(kat_csv_read(path, &m));
    ck_assert(m.rows == R && m.cols == C);
    for (int i = 0; i < R; i++)   /* %.17g reads back to the same bits, -0 included */
        ck_assert(memcmp(m.data + i * C, buf + i * LD, C * sizeof(double)) == 0);
    kat_dmat_free(&m);
    kat_rng_destroy(rng);

    /* The file's text is plain: no locale-dependent decimal mark, one row per line. */
    double two[2] = {0.5, -3};
    kat_dmat t = {1, 2, 2, two};
    TU_OK(kat_csv_write(path, &t));
    size_t len;
    unsigned char *text = slurp(path, &len);
    ck_assert_uint_eq(len, 7);
    ck_assert(memcmp(text, "0.5,-3\n", 7) == 0);
    free(text);
    kat_dmat empty = {0, 4, 4, NULL};
    TU_OK(kat_csv_write(path, &empty));
    TU_OK(kat_csv_read(path, &m));
    ck_assert(m.rows == 0 && m.cols == 0);   /* CSV has no way to keep an empty width */
    kat_dmat_free(&m);
    unlink(path);
    free(path);
}
END_TEST

START_TEST(test_csv_write_errors)
{
    char *path = tu_tmpfile(".csv");
    double x[4] = {1, 2, INFINITY, 4};
    kat_dmat m = {2, 2, 2, x};
    TU_EXPECT_ERR(kat_csv_write(path, &m), KAT_EDOM, "entry (1, 0)");
    ck_assert_int_ne(access(path, F_OK), 0);   /* a bad argument never creates the file */
    x[2] = 3;
    TU_EXPECT_ERR(kat_csv_write(NULL, &m), KAT_EINVAL, "path");
    TU_EXPECT_ERR(kat_csv_write(path, NULL), KAT_EINVAL, "m is NULL");
    kat_dmat badld = {2, 2, 1, x};
    TU_EXPECT_ERR(kat_csv_write(path, &badld), KAT_EINVAL, "ld = 1");
    TU_EXPECT_ERR(kat_csv_write("/nonexistent-kat-dir/m.csv", &m), KAT_EIO,
                  "'/nonexistent-kat-dir/m.csv'");
    if (access("/dev/full", W_OK) == 0)
        TU_EXPECT_ERR(kat_csv_write("/dev/full", &m), KAT_EIO, "No space");
    free(path);
}
END_TEST

START_TEST(test_csv_read_file)
{
    char *path = tu_tmpfile(".csv");
    kat_dmat m;
    const char *text = "a,b\n1,2\n3,x\n";
    write_file_or_fail(path, text, strlen(text));
    TU_EXPECT_ERR(kat_csv_read(path, &m), KAT_EFORMAT, path);
    TU_EXPECT_ERR(kat_csv_read(path, &m), KAT_EFORMAT, "line 3, column 2");
    /* Larger than the first read buffer guess of a non-regular file is covered by a pipe. */
    TU_EXPECT_ERR(kat_csv_read("/nonexistent-kat-dir/m.csv", &m), KAT_EIO, strerror(ENOENT));
    TU_EXPECT_ERR(kat_csv_read("/tmp", &m), KAT_EIO, strerror(EISDIR));
    TU_EXPECT_ERR(kat_csv_read(NULL, &m), KAT_EINVAL, "path");
    TU_EXPECT_ERR(kat_csv_read(path, NULL), KAT_EINVAL, "out");
    /* A pipe has no size: the reader grows its buffer until the end (100 kB > 64 KiB). */
    int fd[2];
    ck_assert_int_eq(pipe(fd), 0);
    FILE *w = fdopen(fd[1], "w");
    pid_t pid = fork();
    if (pid == 0) {
        close(fd[0]);
        for (int i = 0; i < 10000; i++)
            fprintf(w, "%d,%d\n", i, -i);
        fclose(w);
        _exit(0);
    }
    fclose(w);
    char dev[64];
    snprintf(dev, sizeof dev, "/dev/fd/%d", fd[0]);
    TU_OK(kat_csv_read(dev, &m));
    close(fd[0]);
    waitpid(pid, NULL, 0);
    ck_assert(m.rows == 10000 && m.cols == 2 && m.data[2 * 9999 + 1] == -9999.0);
    kat_dmat_free(&m);
    unlink(path);
    free(path);
}
END_TEST

START_TEST(test_csv_keeps_caller_locale)
{
    locale_t before = uselocale((locale_t)0);
    kat_dmat m;
    TU_OK(kat_csv_parse("1.5", 3, &m));
    kat_dmat_free(&m);
    expect_csv_err("1.5,x", KAT_EFORMAT, "'x'");
    ck_assert(uselocale((locale_t)0) == before);
}
END_TEST

START_TEST(test_csv_alloc_failures)
{
    /* Several buffer growths, then a long field that ends the buffer (so it is copied to the
     * heap to terminate it). */
    size_t n = 3000, o = 0;
    char *text = malloc(n * 12 + 200);
    for (size_t i = 0; i + 1 < n; i++)
        o += (size_t)sprintf(text + o, "%zu\n", i);
    o += (size_t)sprintf(text + o, "0.%080d1", 0);
    int failures = 0;
    for (size_t k = 1;; k++) {
        kat_dmat m;
        memset(&m, 0x5A, sizeof m);
        kat_debug_fail_alloc_at(k);
        kat_status st = kat_csv_parse(text, o, &m);
        kat_debug_fail_alloc_at(0);
        if (st == KAT_OK) {
            ck_assert(m.rows == n && m.data[n - 2] == (double)(n - 2) && m.data[n - 1] == 1e-81);
            kat_dmat_free(&m);
            break;
        }
        ck_assert_int_eq(st, KAT_ENOMEM);
        ck_assert_int_eq(((unsigned char *)&m)[0], 0x5A);
        failures++;
    }
    ck_assert_int_ge(failures, 4);   /* three growths (1024 -> 4096) + the field copy */
    free(text);
}
END_TEST

/* ---- kat_matrix_read ---------------------------------------------------------------------- */

START_TEST(test_matrix_read_dispatch)
{
    double x[4] = {1, 2, 3, 4};
    kat_dmat v = {2, 2, 2, x}, m;
    const char *exts[] = {".npy", ".NPY", ".csv", ".txt", ".Csv"};
    for (int k = 0; k < 5; k++) {
        char *path = tu_tmpfile(exts[k]);
        if (k < 2)
            TU_OK(kat_npy_write_dmat(path, &v, KAT_DTYPE_F64));
        else
            TU_OK(kat_csv_write(path, &v));
        TU_OK(kat_matrix_read(path, &m));
        ck_assert(m.rows == 2 && m.cols == 2 && m.data[3] == 4.0);
        kat_dmat_free(&m);
        /* The extension decides, not the content: a CSV named .npy is a format error. */
        if (k == 0) {
            TU_OK(kat_csv_write(path, &v));
            TU_EXPECT_ERR(kat_matrix_read(path, &m), KAT_EFORMAT, "bad magic");
        }
        unlink(path);
        free(path);
    }
    /* A .txt file as np.savetxt(path, [[1, 2], [3, 4]]) writes it. */
    char *txt = tu_tmpfile(".txt");
    const char *saved = "1.000000000000000000e+00 2.000000000000000000e+00\n"
                        "3.000000000000000000e+00 4.000000000000000000e+00\n";
    ck_assert_int_eq(tu_write_file(txt, saved, strlen(saved)), 0);
    TU_OK(kat_matrix_read(txt, &m));
    ck_assert(m.rows == 2 && m.cols == 2 && m.data[1] == 2.0 && m.data[3] == 4.0);
    kat_dmat_free(&m);
    unlink(txt);
    free(txt);
    TU_EXPECT_ERR(kat_matrix_read("/tmp/data.mat", &m), KAT_EINVAL, "unknown extension '.mat'");
    TU_EXPECT_ERR(kat_matrix_read("/tmp/dir.d/data", &m), KAT_EINVAL, "no extension");
    TU_EXPECT_ERR(kat_matrix_read("/nonexistent-kat-dir/a.csv", &m), KAT_EIO, "a.csv");
    TU_EXPECT_ERR(kat_matrix_read(NULL, &m), KAT_EINVAL, "path");
    TU_EXPECT_ERR(kat_matrix_read("a.csv", NULL), KAT_EINVAL, "out");
}
END_TEST

/* ---- files written whole or not at all ----------------------------------------------------- */

static void put(const char *dir, const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

static void expect_text(const char *dir, const char *name, const char *text)
{
    char path[512], buf[64] = "";
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "%s is missing", path);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    ck_assert_str_eq(buf, text);
}

/* The names in dir, sorted and joined by spaces (hidden ones too). */
static void listing(const char *dir, char *out, size_t n)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "ls -A '%s' | tr '\\n' ' '", dir);
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    size_t k = fread(out, 1, n - 1, p);
    out[k] = '\0';
    pclose(p);
}

static kat_outfile *open_with(const char *dir, const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    kat_outfile *o;
    FILE *f;
    TU_OK(kat_outfile_open(path, &o, &f));
    fputs(text, f);
    return o;
}

START_TEST(test_outfile_all_or_none)
{
    char dir[] = "/tmp/kat-outfile-XXXXXX", names[512];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    put(dir, "a", "oldA");
    put(dir, "b", "oldB");
    kat_outfile *o[3] = {open_with(dir, "a", "newA"), NULL, open_with(dir, "b", "newB")};
    listing(dir, names, sizeof names);
    ck_assert_msg(strstr(names, ".a.") && strstr(names, ".b."), "temporaries: %s", names);
    TU_OK(kat_outfile_close_all(o, 3, 0));   /* not committed: nothing replaced */
    ck_assert_ptr_null(o[0]);
    expect_text(dir, "a", "oldA");
    expect_text(dir, "b", "oldB");
    listing(dir, names, sizeof names);
    ck_assert_str_eq(names, "a b ");
    /* one of the files fails (a full device): the other is not replaced either */
    if (access("/dev/full", W_OK) == 0) {
        kat_outfile *g[2] = {open_with(dir, "a", "newA"), NULL};
        FILE *f;
        TU_OK(kat_outfile_open("/dev/full", &g[1], &f));
        fputs("x", f);
        TU_EXPECT_ERR(kat_outfile_close_all(g, 2, 1), KAT_EIO, "cannot write '/dev/full'");
        expect_text(dir, "a", "oldA");
        listing(dir, names, sizeof names);
        ck_assert_str_eq(names, "a b ");
    }
    kat_outfile *c[2] = {open_with(dir, "a", "newA"), open_with(dir, "b", "newB")};
    TU_OK(kat_outfile_close_all(c, 2, 1));
    expect_text(dir, "a", "newA");
    expect_text(dir, "b", "newB");
    listing(dir, names, sizeof names);
    ck_assert_str_eq(names, "a b ");
    TU_EXPECT_ERR(kat_outfile_close_all(NULL, 1, 1), KAT_EINVAL, "o is NULL");
    TU_EXPECT_ERR(kat_npy_write_outfile(NULL, NULL), KAT_EINVAL, "o is NULL");
    TU_OK(kat_outfile_close(NULL, 1));
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -r '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}
END_TEST

START_TEST(test_outfile_links_modes_signals)
{
    char dir[] = "/tmp/kat-outfile-XXXXXX", names[512], path[512], link[512];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    /* a dangling link: its target is made, the link stays */
    snprintf(path, sizeof path, "%s/t", dir);
    snprintf(link, sizeof link, "%s/l", dir);
    ck_assert_int_eq(symlink("t", link), 0);
    char *target = kat_outfile_target(link);
    ck_assert_str_eq(target, path);
    kat_free(target);
    kat_outfile *o = open_with(dir, "l", "via the link");
    TU_OK(kat_outfile_close(o, 1));
    expect_text(dir, "t", "via the link");
    struct stat st;
    ck_assert(lstat(link, &st) == 0 && S_ISLNK(st.st_mode));
    ck_assert_ptr_null(kat_outfile_target(NULL));
    /* a new file gets 0666 less the umask; an old one keeps its mode */
    mode_t old_mask = umask(027);
    TU_OK(kat_outfile_close(open_with(dir, "m", "x"), 1));
    snprintf(path, sizeof path, "%s/m", dir);
    ck_assert(stat(path, &st) == 0);
    ck_assert_int_eq(st.st_mode & 0777, 0640);
    ck_assert_int_eq(chmod(path, 0604), 0);
    umask(077);
    TU_OK(kat_outfile_close(open_with(dir, "m", "y"), 1));
    ck_assert(stat(path, &st) == 0);
    ck_assert_int_eq(st.st_mode & 0777, 0604);
    umask(old_mask);
    if (geteuid() != 0) {   /* root may write any file */
        ck_assert_int_eq(chmod(path, 0444), 0);
        kat_outfile *ro;
        FILE *f;
        TU_EXPECT_ERR(kat_outfile_open(path, &ro, &f), KAT_EIO, "Permission denied");
    }
    /* what a signal handler does: the temporary file goes, the target is never made */
    o = open_with(dir, "s", "never");
    kat_outfile_remove_temporaries();
    listing(dir, names, sizeof names);
    ck_assert_str_eq(names, "l m t ");
    TU_EXPECT_ERR(kat_outfile_close(o, 1), KAT_EIO, "/s'");
    listing(dir, names, sizeof names);
    ck_assert_str_eq(names, "l m t ");
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -r '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("io");
    TCase *tc = tcase_create("io");
    tcase_add_test(tc, test_npy_parse_numpy_output);
    tcase_add_test(tc, test_npy_byte_orders);
    tcase_add_test(tc, test_npy_versions);
    tcase_add_test(tc, test_npy_header_variants);
    tcase_add_test(tc, test_npy_shapes_and_empty);
    tcase_add_test(tc, test_npy_fortran_order);
    tcase_add_test(tc, test_npy_parse_errors);
    tcase_add_test(tc, test_npy_write_matches_numpy);
    tcase_add_test(tc, test_npy_roundtrip);
    tcase_add_test(tc, test_npy_write_errors);
    tcase_add_test(tc, test_array_alloc);
    tcase_add_test(tc, test_npy_file_errors);
    tcase_add_test(tc, test_npy_read_dmat);
    tcase_add_test(tc, test_npy_integer_dtypes);
    tcase_add_test(tc, test_npy_bool_and_fortran_integers);
    tcase_add_test(tc, test_npy_read_dmat_integers);
    tcase_add_test(tc, test_npy_write_dmat);
    tcase_add_test(tc, test_npy_alloc_failures);
    tcase_add_test(tc, test_csv_parse_basic);
    tcase_add_test(tc, test_csv_parse_edges);
    tcase_add_test(tc, test_csv_parse_errors);
    tcase_add_test(tc, test_csv_parse_whitespace);
    tcase_add_test(tc, test_csv_roundtrip);
    tcase_add_test(tc, test_csv_write_errors);
    tcase_add_test(tc, test_csv_read_file);
    tcase_add_test(tc, test_csv_keeps_caller_locale);
    tcase_add_test(tc, test_csv_alloc_failures);
    tcase_add_test(tc, test_matrix_read_dispatch);
    tcase_add_test(tc, test_outfile_all_or_none);
    tcase_add_test(tc, test_outfile_links_modes_signals);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
