/* kat io: .npy (format 1.0/2.0, float32/float64, C order) and CSV matrices. */
#ifndef KAT_IO_H
#define KAT_IO_H

#include "kat/core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { KAT_DTYPE_F32 = 0, KAT_DTYPE_F64 = 1 } kat_dtype;

#define KAT_ARRAY_MAX_NDIM 8

/* An owned n-dimensional C-order array as read from or written to a .npy file. */
typedef struct {
    kat_dtype dtype;
    int ndim;                          /* 0 (scalar) .. KAT_ARRAY_MAX_NDIM */
    size_t shape[KAT_ARRAY_MAX_NDIM];
    void *data;                        /* kat_malloc'd; product(shape) elements */
} kat_array;

/* Number of elements (product of the shape; 1 for a scalar). */
size_t kat_array_size(const kat_array *a);
/* Allocate a zero-filled array. */
kat_status kat_array_alloc(kat_dtype dtype, int ndim, const size_t *shape, kat_array *out);
void kat_array_free(kat_array *a);   /* NULL ok; zeroes the struct */

/* Read a .npy file: little- or big-endian float32/float64, C order (fortran_order False).
 * Errors: KAT_EIO (cannot open/read), KAT_EFORMAT (bad magic, header, dtype, shape, or a
 * file shorter than its header says) with the reason in kat_last_error(). */
kat_status kat_npy_read(const char *path, kat_array *out);
/* The same from a memory buffer (used by the fuzz harnesses). */
kat_status kat_npy_parse(const void *buf, size_t len, kat_array *out);
/* Write format 1.0 (2.0 when the header needs it), little-endian, C order. */
kat_status kat_npy_write(const char *path, const kat_array *a);
/* Write a matrix view as a 2-D .npy in the given dtype. */
kat_status kat_npy_write_dmat(const char *path, const kat_dmat *m, kat_dtype dtype);

/* Read a 2-D .npy as a double matrix (any float dtype; 1-D becomes n x 1). */
kat_status kat_npy_read_dmat(const char *path, kat_dmat *out);

/* CSV: one row per line, comma-separated numbers; '#' starts a comment line; an optional
 * header line of non-numbers is skipped. Ragged rows and non-numbers are KAT_EFORMAT errors
 * naming the line and column. */
kat_status kat_csv_read(const char *path, kat_dmat *out);
kat_status kat_csv_parse(const char *buf, size_t len, kat_dmat *out);
kat_status kat_csv_write(const char *path, const kat_dmat *m);

/* Read a matrix from .npy or .csv, chosen by the file's extension. */
kat_status kat_matrix_read(const char *path, kat_dmat *out);

#ifdef __cplusplus
}
#endif
#endif
