/* Entrywise functions from Python: an expression string, or a Python function called through
 * kat's block callback (the GIL is taken for each block; kat's threads take turns). */
#include <math.h>
#include <string.h>
#include "native.h"

/* y = f(x) through the Python adapter; on an exception y is filled with NaN, which kat reports
 * as a non-finite value, and the exception is kept to be raised instead. */
static void block_cb(const double *x, double *y, size_t n, void *params)
{
    katpy_callback *cb = params;
    if (n == 0)
        return;
    PyGILState_STATE g = PyGILState_Ensure();
    int ok = 0;
    if (!cb->exc_type) {
        PyObject *xm = PyMemoryView_FromMemory((char *)x, (Py_ssize_t)(n * 8), PyBUF_READ);
        PyObject *ym = PyMemoryView_FromMemory((char *)y, (Py_ssize_t)(n * 8), PyBUF_WRITE);
        PyObject *r = xm && ym ? PyObject_CallFunctionObjArgs(cb->callable, xm, ym, NULL) : NULL;
        ok = r != NULL;
        Py_XDECREF(r);
        Py_XDECREF(xm);
        Py_XDECREF(ym);
        if (!ok)
            katpy_callback_keep_error(cb);
    }
    if (!ok)
        for (size_t i = 0; i < n; i++)
            y[i] = NAN;
    PyGILState_Release(g);
}

static double scalar_cb(double x, void *params)
{
    double y;
    block_cb(&x, &y, 1, params);
    return y;
}

int katpy_fn(PyObject *obj, kat_fn **out, katpy_callback *cb)
{
    memset(cb, 0, sizeof *cb);
    *out = NULL;
    if (obj == Py_None)
        return 0;
    kat_status st;
    if (PyUnicode_Check(obj)) {
        const char *text = PyUnicode_AsUTF8(obj);
        if (!text)
            return -1;
        /* A built-in's bare name ("exp", "relu") first, else the expression language. */
        st = kat_fn_builtin(text, out);
        if (st) {
            kat_clear_error();
            st = kat_fn_parse(text, out, NULL);
        }
    } else if (PyCallable_Check(obj)) {
        PyObject *name = PyObject_GetAttrString(obj, "__name__");
        const char *s = name && PyUnicode_Check(name) ? PyUnicode_AsUTF8(name) : NULL;
        PyErr_Clear();
        Py_INCREF(obj);
        cb->callable = obj;
        st = kat_fn_callback(scalar_cb, block_cb, cb, s ? s : "python function", out);
        Py_XDECREF(name);
        if (st) {
            Py_CLEAR(cb->callable);
            return katpy_raise(st), -1;
        }
        return 0;
    } else {
        PyErr_Format(PyExc_TypeError, "f: expected None, an expression string or a callable, "
                                      "got %.80s", Py_TYPE(obj)->tp_name);
        return -1;
    }
    if (st) {
        katpy_raise(st);
        return -1;
    }
    return 0;
}

void katpy_fn_release(kat_fn *f, katpy_callback *cb)
{
    kat_fn_destroy(f);
    katpy_callback_clear(cb);
    Py_CLEAR(cb->callable);
}
