/* The theorem registry. */
#include "native.h"

static PyObject *info_dict(const kat_theorem_info *t)
{
    return Py_BuildValue("{s:s,s:s,s:s,s:s,s:s,s:s}", "id", t->id, "title", t->title,
                         "statement", t->statement, "source", t->source, "routine", t->routine,
                         "test", t->test);
}

static PyObject *py_theorem_list(PyObject *self, PyObject *unused)
{
    size_t n = kat_theorem_count();
    PyObject *list = PyList_New((Py_ssize_t)n);
    for (size_t i = 0; list && i < n; i++) {
        PyObject *d = info_dict(kat_theorem_info_at(i));
        if (!d) {
            Py_CLEAR(list);
            break;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)i, d);
    }
    return list;
}

static const char *cmp_name(kat_theorem_cmp c)
{
    return c == KAT_THEOREM_LE ? "<=" : c == KAT_THEOREM_GE ? ">=" : "==";
}

/* theorem_run(id, quick) -> dict with the entry, its measured values and the verdict. */
static PyObject *py_theorem_run(PyObject *self, PyObject *args)
{
    const char *id;
    int quick;
    if (!PyArg_ParseTuple(args, "sp", &id, &quick))
        return NULL;
    size_t index;
    kat_status st = kat_theorem_find(id, &index);
    if (st)
        return katpy_raise(st);
    kat_theorem_result *r = PyMem_Malloc(sizeof *r);   /* ~5 KB: not on the stack */
    if (!r)
        return PyErr_NoMemory();
    Py_BEGIN_ALLOW_THREADS
    st = kat_theorem_run(index, quick ? KAT_THEOREM_QUICK : 0, r);
    Py_END_ALLOW_THREADS
    if (st) {
        PyMem_Free(r);
        return katpy_raise(st);
    }
    PyObject *values = PyList_New((Py_ssize_t)r->nvalues), *ret = NULL;
    for (size_t i = 0; values && i < r->nvalues; i++) {
        const kat_theorem_value *v = &r->values[i];
        PyObject *d = Py_BuildValue("{s:s,s:d,s:d,s:d,s:s,s:O}", "label", v->label, "measured",
                                    v->measured, "expected", v->expected, "tol", v->tol, "cmp",
                                    cmp_name(v->cmp), "passed", v->pass ? Py_True : Py_False);
        if (!d) {
            Py_CLEAR(values);
            break;
        }
        PyList_SET_ITEM(values, (Py_ssize_t)i, d);
    }
    PyObject *info = values ? info_dict(r->info) : NULL;
    if (info)
        ret = Py_BuildValue("{s:N,s:N,s:O,s:O,s:d,s:s}", "info", info, "values", values, "passed",
                            r->pass ? Py_True : Py_False, "quick", r->quick ? Py_True : Py_False,
                            "seconds", r->seconds, "note", r->note);
    else
        Py_XDECREF(values);
    PyMem_Free(r);
    return ret;
}

PyMethodDef katpy_theorem_methods[] = {
    {"theorem_list", py_theorem_list, METH_NOARGS, "The registry's entries."},
    {"theorem_run", py_theorem_run, METH_VARARGS, "kat_theorem_run."},
    {NULL, NULL, 0, NULL},
};
