/* Buffers as kat views (no copy), and the exceptions of Python callbacks run by kat. */
#include <string.h>
#include "native.h"

void katpy_buf_release(katpy_buf *b)
{
    if (b->held)
        PyBuffer_Release(&b->view);
    b->held = 0;
}

/* The item of a format string: 'd' or 'f', with or without an explicit native byte order;
 * 0 for anything else. */
static char real_format(const char *f)
{
    if (!f)
        return 0;
    if (*f == '@' || *f == '=' || (*f == '<' && PY_LITTLE_ENDIAN) || (*f == '>' && PY_BIG_ENDIAN))
        f++;
    return (f[0] == 'd' || f[0] == 'f') && f[1] == '\0' ? f[0] : 0;
}

/* Take obj's buffer if it holds float64 (or, with allow_f32, float32) values. */
static int get_reals(PyObject *obj, const char *what, int writable, int allow_f32, katpy_buf *b)
{
    memset(b, 0, sizeof *b);
    const char *want = allow_f32 ? "float32 or float64" : "float64";
    int flags = PyBUF_STRIDES | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, &b->view, flags) < 0) {
        PyErr_Clear();
        PyErr_Format(PyExc_ValueError, "%s: expected a%s %s array, got %.80s", what,
                     writable ? " writable" : "", want, Py_TYPE(obj)->tp_name);
        return -1;
    }
    b->held = 1;
    char t = real_format(b->view.format);
    if (!(t == 'd' || (allow_f32 && t == 'f')) || b->view.itemsize != (t == 'd' ? 8 : 4)) {
        PyErr_Format(PyExc_ValueError, "%s: expected %s data, got format '%s'", what, want,
                     b->view.format ? b->view.format : "B");
        katpy_buf_release(b);
        return -1;
    }
    return 0;
}

int katpy_matrix(PyObject *obj, const char *what, int writable, int allow_f32, katpy_buf *b,
                 size_t *rows, size_t *cols, size_t *ld)
{
    if (get_reals(obj, what, writable, allow_f32, b) < 0)
        return -1;
    Py_buffer *v = &b->view;
    Py_ssize_t item = v->itemsize;
    if (v->ndim != 2) {
        PyErr_Format(PyExc_ValueError, "%s: expected a 2-D array, got %d dimensions", what,
                     v->ndim);
        katpy_buf_release(b);
        return -1;
    }
    size_t r = (size_t)v->shape[0], c = (size_t)v->shape[1];
    if (c > 1 && v->strides[1] != item) {
        PyErr_Format(PyExc_ValueError, "%s: the last dimension must be contiguous (stride %zd "
                                       "bytes, got %zd); pass numpy.ascontiguousarray(%s)",
                     what, item, v->strides[1], what);
        katpy_buf_release(b);
        return -1;
    }
    size_t l = c;
    if (r > 1) {
        if (v->strides[0] < 0 || v->strides[0] % item != 0 ||
            (size_t)(v->strides[0] / item) < c) {
            PyErr_Format(PyExc_ValueError, "%s: row stride %zd bytes is not a non-negative "
                                           "multiple of %zd covering a row of %zu values",
                         what, v->strides[0], item, c);
            katpy_buf_release(b);
            return -1;
        }
        l = (size_t)(v->strides[0] / item);
    }
    *rows = r;
    *cols = c;
    *ld = l ? l : 1;
    return 0;
}

int katpy_dmat(PyObject *obj, const char *what, int writable, katpy_buf *b, kat_dmat *m)
{
    if (katpy_matrix(obj, what, writable, 0, b, &m->rows, &m->cols, &m->ld) < 0)
        return -1;
    m->data = b->view.buf;
    return 0;
}

int katpy_dvec(PyObject *obj, const char *what, int writable, size_t want, katpy_buf *b,
               double **data, size_t *n)
{
    if (get_reals(obj, what, writable, 0, b) < 0)
        return -1;
    Py_buffer *v = &b->view;
    size_t len = v->ndim == 1 ? (size_t)v->shape[0] : 0;
    if (v->ndim != 1 || (len > 1 && v->strides[0] != 8)) {
        PyErr_Format(PyExc_ValueError, "%s: expected a contiguous 1-D array", what);
        katpy_buf_release(b);
        return -1;
    }
    if (want != (size_t)-1 && len != want) {
        PyErr_Format(PyExc_ValueError, "%s: expected %zu values, got %zu", what, want, len);
        katpy_buf_release(b);
        return -1;
    }
    *data = v->buf;
    *n = len;
    return 0;
}

void katpy_callback_keep_error(katpy_callback *cb)
{
    if (!cb->exc_type)
        PyErr_Fetch(&cb->exc_type, &cb->exc_value, &cb->exc_tb);
    else
        PyErr_Clear();
}

PyObject *katpy_callback_raise(katpy_callback *cb, kat_status st)
{
    if (cb && cb->exc_type) {
        PyErr_Restore(cb->exc_type, cb->exc_value, cb->exc_tb);
        cb->exc_type = cb->exc_value = cb->exc_tb = NULL;
        kat_clear_error();
        return NULL;
    }
    return katpy_raise(st);
}

PyObject *katpy_finish(katpy_callback *cb, kat_status st)
{
    if ((cb && cb->exc_type) || st)
        return katpy_callback_raise(cb, st);
    Py_RETURN_NONE;
}

void katpy_callback_clear(katpy_callback *cb)
{
    Py_CLEAR(cb->exc_type);
    Py_CLEAR(cb->exc_value);
    Py_CLEAR(cb->exc_tb);
}
