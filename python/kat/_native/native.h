/* kat._native: the CPython extension over libkat. It speaks only the buffer protocol (no
 * NumPy C API): the Python layer (the .py files of python/kat) allocates every output array with NumPy
 * and passes it in; this module checks each buffer's layout, wraps it as a kat view without
 * copying, releases the GIL and calls kat. Errors become exceptions carrying kat's sentence. */
#ifndef KAT_PY_NATIVE_H
#define KAT_PY_NATIVE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include "kat/kat.h"

/* Raise the exception for a kat status with kat_last_error() as its message. Returns NULL. */
PyObject *katpy_raise(kat_status st);

/* A buffer held for the duration of one call. */
typedef struct {
    Py_buffer view;
    int held;
} katpy_buf;

void katpy_buf_release(katpy_buf *b);

/* A float64 matrix argument: a 2-D buffer of doubles whose rows are contiguous (any row
 * stride that is a multiple of 8 and at least a row long). `what` names the argument in the
 * error. Returns 0, or -1 with a ValueError set. */
int katpy_dmat(PyObject *obj, const char *what, int writable, katpy_buf *b, kat_dmat *m);

/* The same for float64 or (allow_f32) float32 data: b->view.itemsize tells which. */
int katpy_matrix(PyObject *obj, const char *what, int writable, int allow_f32, katpy_buf *b,
                 size_t *rows, size_t *cols, size_t *ld);

/* A contiguous 1-D float64 buffer of exactly `want` elements (want = (size_t)-1: any). */
int katpy_dvec(PyObject *obj, const char *what, int writable, size_t want, katpy_buf *b,
               double **data, size_t *n);

/* Python callbacks run from kat's worker threads: the first exception any of them raises is
 * kept here (under the GIL) and raised again once kat returns. */
typedef struct {
    PyObject *callable;   /* strong reference */
    PyObject *exc_type, *exc_value, *exc_tb;
} katpy_callback;

/* Keep the exception now set (the GIL is held), unless one is kept already. */
void katpy_callback_keep_error(katpy_callback *cb);
/* After kat returned status st: raise the kept exception if there is one, else kat's error.
 * Returns NULL. */
PyObject *katpy_callback_raise(katpy_callback *cb, kat_status st);
/* After kat returned st: None, or NULL with the kept exception (if any) or kat's error. */
PyObject *katpy_finish(katpy_callback *cb, kat_status st);
/* Forget a kept exception (the GIL is held). */
void katpy_callback_clear(katpy_callback *cb);

/* An entrywise function f from a Python object: None (identity), a str (kat's expression
 * language or a built-in name) or a callable adapter(x, y) that fills the writable float64
 * memoryview y from x (python/kat/_fn.py builds it around a user's function). *cb receives
 * the callback state that must outlive *out (zeroed when no Python code is involved).
 * Returns 0, or -1 with an exception set. */
int katpy_fn(PyObject *obj, kat_fn **out, katpy_callback *cb);
void katpy_fn_release(kat_fn *f, katpy_callback *cb);

/* The FeatureMap type (featmap.c). */
extern PyTypeObject katpy_featmap_type;
typedef struct {
    PyObject_HEAD
    kat_featmap *fm;
    katpy_callback *cb;   /* set for a map written in Python, NULL otherwise */
} katpy_featmap;

/* Method tables of the parts, joined into the module's table by module.c. */
extern PyMethodDef katpy_rank_methods[];
extern PyMethodDef katpy_spectra_methods[];
extern PyMethodDef katpy_featmap_methods[];
extern PyMethodDef katpy_theorem_methods[];
extern PyMethodDef katpy_attn_methods[];

#endif
