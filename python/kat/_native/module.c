/* The module: its method table, kat's status codes as exceptions, threads and version. */
#include "native.h"

PyObject *katpy_raise(kat_status st)
{
    PyObject *type;
    switch (st) {
    case KAT_ENOMEM:
        type = PyExc_MemoryError;
        break;
    case KAT_ERANGE:
        type = PyExc_OverflowError;
        break;
    case KAT_EIO:
        type = PyExc_OSError;
        break;
    case KAT_ENOTSUP:
        type = PyExc_NotImplementedError;
        break;
    case KAT_ELAPACK:
        type = PyExc_ArithmeticError;
        break;
    default:   /* EINVAL, EDOM, EPARSE, EFORMAT: the value given was wrong */
        type = PyExc_ValueError;
        break;
    }
    const char *msg = kat_last_error();
    PyErr_SetString(type, msg && *msg ? msg : kat_strerror(st));
    kat_clear_error();
    return NULL;
}

static PyObject *py_set_num_threads(PyObject *self, PyObject *arg)
{
    long n = PyLong_AsLong(arg);
    if (n == -1 && PyErr_Occurred())
        return NULL;
    if (n < 0 || n > kat_max_threads()) {
        PyErr_Format(PyExc_ValueError, "set_num_threads: n = %ld is outside 0..%d (at most 4 "
                                       "threads per CPU; 0 restores the default)", n,
                     kat_max_threads());
        return NULL;
    }
    kat_set_num_threads((int)n);
    Py_RETURN_NONE;
}

static PyObject *py_num_threads(PyObject *self, PyObject *unused)
{
    return PyLong_FromLong(kat_num_threads());
}

static PyObject *py_version(PyObject *self, PyObject *unused)
{
    return PyUnicode_FromString(kat_version());
}

static PyObject *py_arch(PyObject *self, PyObject *unused)
{
    return PyUnicode_FromString(kat_arch_name());
}

static PyObject *py_blas_info(PyObject *self, PyObject *unused)
{
    return PyUnicode_FromString(kat_blas_info());
}

static PyMethodDef base_methods[] = {
    {"set_num_threads", py_set_num_threads, METH_O, "Threads of kat's parallel regions."},
    {"num_threads", py_num_threads, METH_NOARGS, "Threads kat uses now."},
    {"version", py_version, METH_NOARGS, "libkat's version."},
    {"arch", py_arch, METH_NOARGS, "The ISA of the kernels in use."},
    {"blas_info", py_blas_info, METH_NOARGS, "The BLAS in use."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "kat._native",
    "libkat bound through the buffer protocol; use the kat package, not this module.", -1,
    NULL, NULL, NULL, NULL, NULL,
};

static int add_methods(PyObject *m, PyMethodDef *defs)
{
    for (PyMethodDef *d = defs; d->ml_name; d++) {
        PyObject *f = PyCFunction_NewEx(d, NULL, PyModule_GetNameObject(m));
        if (!f || PyModule_AddObject(m, d->ml_name, f) < 0) {
            Py_XDECREF(f);
            return -1;
        }
    }
    return 0;
}

PyMODINIT_FUNC PyInit__native(void)
{
    PyObject *m = PyModule_Create(&module_def);
    if (!m)
        return NULL;
    PyMethodDef *tables[] = {base_methods, katpy_rank_methods, katpy_spectra_methods,
                             katpy_featmap_methods, katpy_theorem_methods, katpy_attn_methods};
    for (size_t i = 0; i < sizeof tables / sizeof tables[0]; i++)
        if (add_methods(m, tables[i]) < 0)
            goto fail;
    if (PyModule_AddIntConstant(m, "FEATMAP_DEFAULT_SEED", KAT_FEATMAP_DEFAULT_SEED) < 0 ||
        PyType_Ready(&katpy_featmap_type) < 0)
        goto fail;
    Py_INCREF(&katpy_featmap_type);
    if (PyModule_AddObject(m, "FeatureMap", (PyObject *)&katpy_featmap_type) < 0) {
        Py_DECREF(&katpy_featmap_type);
        goto fail;
    }
    return m;
fail:
    Py_DECREF(m);
    return NULL;
}
