/* kat io: .npy files (format 1.0/2.0/3.0; float32/float64 read and written, integers and
 * booleans read) and CSV matrices. */
#ifndef KAT_IO_H
#define KAT_IO_H

#include <stdio.h>
#include "kat/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Element types of arrays. kat writes float32 and float64; it reads all of these, so that
 * integer data (bucket ids, keep masks, point grids) can come from NumPy as they are. */
typedef enum {
    KAT_DTYPE_F32 = 0,
    KAT_DTYPE_F64 = 1,
    KAT_DTYPE_I8, KAT_DTYPE_I16, KAT_DTYPE_I32, KAT_DTYPE_I64,
    KAT_DTYPE_U8, KAT_DTYPE_U16, KAT_DTYPE_U32, KAT_DTYPE_U64,
    KAT_DTYPE_BOOL,   /* one byte, 0 or 1 */
    KAT_DTYPE_COUNT
} kat_dtype;

/* Bytes per element (1, 2, 4 or 8); 0 for a value outside the enum. */
KAT_API size_t kat_dtype_size(kat_dtype t);
/* NumPy's name: "float32", "float64", "int8" .. "int64", "uint8" .. "uint64", "bool";
 * "unknown" for a value outside the enum. */
KAT_API const char *kat_dtype_name(kat_dtype t);

#define KAT_ARRAY_MAX_NDIM 8

/* An owned n-dimensional C-order array as read from or written to a .npy file. */
typedef struct {
    kat_dtype dtype;
    int ndim;                          /* 0 (scalar) .. KAT_ARRAY_MAX_NDIM */
    size_t shape[KAT_ARRAY_MAX_NDIM];
    void *data;                        /* kat_malloc'd; product(shape) elements, native order */
} kat_array;

/* Number of elements: the product of the shape, 1 for a scalar, 0 when a dimension is 0.
 * Returns 0 for NULL, an ndim outside 0..8, or a shape whose product overflows. */
KAT_API size_t kat_array_size(const kat_array *a);
/* Allocate a zero-filled array (data is never NULL, even with zero elements). KAT_EINVAL for a
 * NULL out or shape, a bad dtype or ndim; KAT_ERANGE when the byte count overflows size_t. */
KAT_API kat_status kat_array_alloc(kat_dtype dtype, int ndim, const size_t *shape, kat_array *out);
/* Free the data and zero the struct; NULL ok. */
KAT_API void kat_array_free(kat_array *a);
/* Element i (C order, i < kat_array_size(a)) as a double: exact for the float dtypes, for
 * booleans (0 or 1) and for integers of magnitude up to 2^53; larger 64-bit integers are
 * rounded to the nearest double. No checks: a and i are the caller's to get right. */
KAT_API double kat_array_get(const kat_array *a, size_t i);

/* Read a .npy file (format 1.0, 2.0 or 3.0): float32 and float64 ('<f4', '<f8', '>f4',
 * '>f8'), signed and unsigned integers of 1, 2, 4 and 8 bytes ('|i1', '<i2', '<i4', '<i8',
 * '|u1', '<u2', '<u4', '<u8' and their '>' forms) and bool ('|b1'), any shape of 0..8
 * dimensions, zero-size dimensions included. Big-endian data is converted to native order;
 * fortran_order True data is reordered to C order. The array keeps the file's dtype: a caller
 * that takes only floats checks a->dtype (kat_array_get reads any dtype as doubles). Values
 * are returned bit for bit (NaN and Inf included; kat_npy_read_dmat is the reader that
 * rejects them), except that a bool byte other than 0 reads as 1. Bytes after the data
 * section are ignored, as numpy does.
 * Errors: KAT_EIO when the file cannot be opened or read (the message names the path and
 * the system's reason); KAT_EFORMAT for a bad magic string, an unsupported version, a
 * malformed header (naming the key or the text at fault), an unsupported dtype (named, e.g.
 * '<i4'), a shape whose byte count overflows size_t, or a data section shorter than the
 * shape needs (both byte counts given). */
KAT_API kat_status kat_npy_read(const char *path, kat_array *out);
/* The same from a memory buffer of len bytes (used by the fuzz harnesses); never reads
 * outside [buf, buf + len). */
KAT_API kat_status kat_npy_parse(const void *buf, size_t len, kat_array *out);
/* Write a as numpy does: format 1.0 (2.0 only for a header over 65535 bytes, which eight
 * dimensions never need), header "{'descr': '<f8', 'fortran_order': False, 'shape': (3, 2), }"
 * padded with spaces and '\n' so the data starts at a multiple of 64, little-endian data.
 * Arguments are checked before the file is opened; the file is written as kat_outfile_open
 * says, so an I/O failure (KAT_EIO, naming the path) leaves the old file, if any, intact. */
KAT_API kat_status kat_npy_write(const char *path, const kat_array *a);
/* The same into an open outfile (kat_outfile_open below), which the caller then closes: a
 * command writing several files writes each this way and closes them with
 * kat_outfile_close_all, so that either all of them are replaced or none. */
struct kat_outfile;
KAT_API kat_status kat_npy_write_outfile(struct kat_outfile *o, const kat_array *a);
/* Write a strided matrix view as a 2-D .npy in the given dtype (rows x cols, C order).
 * KAT_EDOM for a non-finite entry, or for one beyond the float32 range when dtype is
 * KAT_DTYPE_F32 (naming the entry). */
KAT_API kat_status kat_npy_write_dmat(const char *path, const kat_dmat *m, kat_dtype dtype);

/* Read a .npy of any dtype kat_npy_read takes as a double matrix (ld = cols): 2-D as is, 1-D
 * of length n as n x 1, 0-D as 1 x 1; more dimensions are KAT_EFORMAT naming the shape. A
 * non-finite value, or a 64-bit integer beyond 2^53 in magnitude (no double holds it exactly),
 * is KAT_EDOM naming its (row, col). Other errors as kat_npy_read. Free with kat_dmat_free. */
KAT_API kat_status kat_npy_read_dmat(const char *path, kat_dmat *out);

/* CSV: one row per line, comma-separated numbers (strtod syntax, read in the "C" locale
 * whatever the program's locale), or numbers separated by spaces and tabs as numpy's savetxt
 * writes them: the first line that is not blank or a comment decides, comma-separated when
 * it has a comma. Spaces and tabs around numbers, "\r\n" line ends, a last
 * line without '\n', blank lines, lines starting with '#' and a UTF-8 byte-order mark are
 * accepted. The first non-blank, non-comment line is a header, and skipped, when none of its
 * fields is or starts like a number; it must then have as many fields as the rows.
 * Errors name the line (counting every line of the file) and the column (1-based field):
 * KAT_EFORMAT for ragged rows, empty fields and text that is not a number; KAT_EDOM for
 * "nan", "inf" and numbers that overflow a double. No rows gives a 0 x 0 matrix (0 x k after
 * a header of k names). Free the result with kat_dmat_free. */
KAT_API kat_status kat_csv_read(const char *path, kat_dmat *out);
/* The same from a buffer of len bytes (no terminating NUL needed; never read past len). */
KAT_API kat_status kat_csv_parse(const char *buf, size_t len, kat_dmat *out);
/* Write m as CSV: one line per row, entries printed with %.17g (they read back to the same
 * doubles), "\n" line ends. KAT_EDOM for a non-finite entry, checked before the file is
 * opened; KAT_EIO naming the path for an I/O failure, which leaves the old file intact (as
 * kat_outfile_open says). */
KAT_API kat_status kat_csv_write(const char *path, const kat_dmat *m);

/* Read a matrix, choosing the format by the file name's extension (case-insensitive): .npy
 * with kat_npy_read_dmat, .csv and .txt with kat_csv_read. Any other extension, or none, is
 * KAT_EINVAL naming it. */
KAT_API kat_status kat_matrix_read(const char *path, kat_dmat *out);

#ifdef __cplusplus
}
#endif
/* ---- writing a file whole or not at all --------------------------------------------------- */

/* Open a temporary file next to `path` (same directory: ".NAME.XXXXXX") and return its stream
 * in *f; kat_outfile_close(o, 1) flushes it to the disk (fsync), closes it and renames it
 * over `path` (an existing file keeps its permissions, a new one gets 0666 less the umask; a
 * symbolic link is followed, and another hard link to the old file keeps the old contents);
 * kat_outfile_close(o, 0), or a write, sync or close error, removes the temporary file.
 * Either way `path` holds the old contents or the complete new ones, never a mixture, even
 * when the disk fills or the process dies midway (a process killed by a signal leaves its
 * temporary file unless a handler calls kat_outfile_remove_temporaries). A `path` that
 * exists and is not a regular file (a device, a pipe) is written in place; a regular one
 * needs write permission, as for fopen, and so does its directory (for the temporary file).
 * Errors: KAT_EIO naming the path (directory missing, not writable, full disk...). */
typedef struct kat_outfile kat_outfile;
KAT_API kat_status kat_outfile_open(const char *path, kat_outfile **o, FILE **f);
KAT_API kat_status kat_outfile_close(kat_outfile *o, int commit);
/* The file kat_outfile_open(path) replaces: path with its symbolic links followed, a
 * dangling link's too (the file it names is made), as an absolute path when the file exists.
 * Free with kat_free; NULL when path is NULL or too long (or memory ran out). Two outputs
 * are one file when their targets are the same existing file (device and inode) or the same
 * new name in the same directory. */
KAT_API char *kat_outfile_target(const char *path);
/* Close n outfiles (NULL entries skipped) as one: with commit, every file is flushed and
 * closed before the first rename, and a failure in any leaves every old file as it was (only
 * a rename failing, which within one directory takes a vanished file or directory, can leave
 * the earlier ones renamed). Without commit, or on a failure, every temporary file is removed.
 * Sets every o[i] to NULL. Errors: KAT_EIO naming the first path that failed. */
KAT_API kat_status kat_outfile_close_all(kat_outfile **o, size_t n, int commit);
/* Remove the temporary files of the outfiles open now (without closing them). Only unlink(2)
 * on names kept in atomic slots, so a handler of SIGINT or SIGTERM may call it before the
 * process ends; then no temporary file is left behind and the targets keep their contents. */
KAT_API void kat_outfile_remove_temporaries(void);

#endif
