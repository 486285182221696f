/* The FeatureMap type: kat's built-in maps, and maps written in Python that run through the
 * same kat_featmap vtable (so the rank probe treats them like the built-in ones). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "native.h"

/* ---- maps written in Python ------------------------------------------------------------- */

/* The state of a Python map: its adapter adapter(side, x, n, ldx, f, ldf) (python/kat/
 * featmap.py) reads n rows of x (row i at i * ldx doubles) and writes n rows of features. */
typedef struct {
    katpy_callback cb;
    size_t d, D;
} pymap_state;

static kat_status pymap_apply(const void *state, kat_side side, size_t n, const double *x,
                              size_t ldx, double *f, size_t ldf)
{
    pymap_state *s = (pymap_state *)state;
    if (n == 0)
        return KAT_OK;
    PyGILState_STATE g = PyGILState_Ensure();
    int ok = 0;
    if (!s->cb.exc_type) {
        size_t xlen = ((n - 1) * ldx + s->d) * 8, flen = ((n - 1) * ldf + s->D) * 8;
        PyObject *xm = PyMemoryView_FromMemory((char *)x, (Py_ssize_t)xlen, PyBUF_READ);
        PyObject *fm = PyMemoryView_FromMemory((char *)f, (Py_ssize_t)flen, PyBUF_WRITE);
        PyObject *r = xm && fm ? PyObject_CallFunction(s->cb.callable, "iOnnOn", (int)side, xm,
                                                       (Py_ssize_t)n, (Py_ssize_t)ldx, fm,
                                                       (Py_ssize_t)ldf)
                               : NULL;
        ok = r != NULL;
        Py_XDECREF(r);
        Py_XDECREF(xm);
        Py_XDECREF(fm);
        if (!ok)
            katpy_callback_keep_error(&s->cb);
    }
    PyGILState_Release(g);
    return ok ? KAT_OK : KAT_EINVAL;
}

static void pymap_destroy(void *state)
{
    pymap_state *s = state;
    PyGILState_STATE g = PyGILState_Ensure();
    katpy_callback_clear(&s->cb);
    Py_CLEAR(s->cb.callable);
    PyGILState_Release(g);
    free(s);
}

static const kat_featmap_ops pymap_ops = {
    .name = "python", .apply = pymap_apply, .destroy = pymap_destroy,
};

/* ---- the type ----------------------------------------------------------------------------- */

static PyObject *wrap(kat_featmap *fm, katpy_callback *cb)
{
    katpy_featmap *o = PyObject_New(katpy_featmap, &katpy_featmap_type);
    if (!o) {
        kat_featmap_destroy(fm);
        return NULL;
    }
    o->fm = fm;
    o->cb = cb;
    return (PyObject *)o;
}

static void fm_dealloc(PyObject *self)
{
    katpy_featmap *o = (katpy_featmap *)self;
    kat_featmap_destroy(o->fm);
    PyObject_Free(self);
}

static PyObject *fm_in_dim(PyObject *self, void *unused)
{
    return PyLong_FromSize_t(kat_featmap_in_dim(((katpy_featmap *)self)->fm));
}

static PyObject *fm_dim(PyObject *self, void *unused)
{
    return PyLong_FromSize_t(kat_featmap_out_dim(((katpy_featmap *)self)->fm));
}

static PyObject *fm_name(PyObject *self, void *unused)
{
    return PyUnicode_FromString(kat_featmap_name(((katpy_featmap *)self)->fm));
}

static PyObject *fm_positive(PyObject *self, void *unused)
{
    return PyBool_FromLong(kat_featmap_flags(((katpy_featmap *)self)->fm) &
                           KAT_FEATMAP_POSITIVE);
}

static PyObject *fm_exact(PyObject *self, void *unused)
{
    return PyBool_FromLong(kat_featmap_flags(((katpy_featmap *)self)->fm) & KAT_FEATMAP_EXACT);
}

static PyObject *fm_has_vjp(PyObject *self, void *unused)
{
    return PyBool_FromLong(kat_featmap_has_vjp(((katpy_featmap *)self)->fm));
}

/* apply(x, out, side): out = phi(x) (side 0) or psi(x) (side 1), float64 or float32 rows. */
static PyObject *fm_apply(PyObject *self, PyObject *args)
{
    katpy_featmap *o = (katpy_featmap *)self;
    PyObject *xo, *fo;
    int side;
    if (!PyArg_ParseTuple(args, "OOi", &xo, &fo, &side))
        return NULL;
    katpy_buf xb, fb;
    size_t n, d, ldx, n2, D, ldf;
    if (katpy_matrix(xo, "x", 0, 1, &xb, &n, &d, &ldx) < 0)
        return NULL;
    if (katpy_matrix(fo, "out", 1, 1, &fb, &n2, &D, &ldf) < 0) {
        katpy_buf_release(&xb);
        return NULL;
    }
    PyObject *ret = NULL;
    size_t want_d = kat_featmap_in_dim(o->fm), want_D = kat_featmap_out_dim(o->fm);
    if (xb.view.itemsize != fb.view.itemsize || n2 != n || D != want_D || d != want_d) {
        PyErr_Format(PyExc_ValueError, "x: shape (%zu, %zu) does not fit the map (d = %zu), or "
                                       "out (%zu, %zu) is not (%zu, %zu) of x's dtype",
                     n, d, want_d, n2, D, n, want_D);
        goto done;
    }
    kat_status st;
    if (xb.view.itemsize == 8) {
        kat_dmat X = {n, d, ldx, xb.view.buf}, F = {n, D, ldf, fb.view.buf};
        Py_BEGIN_ALLOW_THREADS
        st = kat_featmap_apply(o->fm, (kat_side)side, &X, &F);
        Py_END_ALLOW_THREADS
    } else {
        Py_BEGIN_ALLOW_THREADS
        st = kat_featmap_apply_f32(o->fm, (kat_side)side, n, xb.view.buf, ldx, fb.view.buf, ldf);
        Py_END_ALLOW_THREADS
    }
    ret = katpy_finish(o->cb, st);
done:
    katpy_buf_release(&xb);
    katpy_buf_release(&fb);
    return ret;
}

/* score(q, k, out): out[i, j] = k(q_i, k_j), the map's exact kernel where it has one. */
static PyObject *fm_score(PyObject *self, PyObject *args)
{
    katpy_featmap *o = (katpy_featmap *)self;
    PyObject *qo, *ko, *oo;
    if (!PyArg_ParseTuple(args, "OOO", &qo, &ko, &oo))
        return NULL;
    katpy_buf qb, kb = {0}, ob = {0};
    kat_dmat Q, K, S;
    if (katpy_dmat(qo, "q", 0, &qb, &Q) < 0 || katpy_dmat(ko, "k", 0, &kb, &K) < 0 ||
        katpy_dmat(oo, "out", 1, &ob, &S) < 0) {
        katpy_buf_release(&qb);
        katpy_buf_release(&kb);
        return NULL;
    }
    PyObject *ret = NULL;
    size_t d = kat_featmap_in_dim(o->fm);
    if (Q.cols != d || K.cols != d || S.rows != Q.rows || S.cols != K.rows) {
        PyErr_Format(PyExc_ValueError, "q (%zu, %zu) and k (%zu, %zu) must have d = %zu columns",
                     Q.rows, Q.cols, K.rows, K.cols, d);
        goto done;
    }
    kat_status st = KAT_OK;
    Py_BEGIN_ALLOW_THREADS
    for (size_t i = 0; i < Q.rows && !st; i++)
        for (size_t j = 0; j < K.rows && !st; j++)
            st = kat_featmap_score(o->fm, Q.data + i * Q.ld, K.data + j * K.ld,
                                   S.data + i * S.ld + j);
    Py_END_ALLOW_THREADS
    ret = katpy_finish(o->cb, st);
done:
    katpy_buf_release(&qb);
    katpy_buf_release(&kb);
    katpy_buf_release(&ob);
    return ret;
}

static PyGetSetDef fm_getset[] = {
    {"in_dim", fm_in_dim, NULL, "Input dimension d.", NULL},
    {"dim", fm_dim, NULL, "Feature dimension D.", NULL},
    {"name", fm_name, NULL, "The map's name.", NULL},
    {"positive", fm_positive, NULL, "phi(q).psi(k) > 0 for every input, by construction.", NULL},
    {"exact", fm_exact, NULL, "phi(q).psi(k) equals the kernel exactly.", NULL},
    {"has_vjp", fm_has_vjp, NULL, "The map has a gradient (vector-Jacobian product).", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMethodDef fm_methods[] = {
    {"apply", fm_apply, METH_VARARGS, "apply(x, out, side)"},
    {"score", fm_score, METH_VARARGS, "score(q, k, out)"},
    {NULL, NULL, 0, NULL},
};

PyTypeObject katpy_featmap_type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "kat._native.FeatureMap",
    .tp_basicsize = sizeof(katpy_featmap),
    .tp_dealloc = fm_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A kat_featmap; made by the constructors of kat._native.",
    .tp_methods = fm_methods,
    .tp_getset = fm_getset,
};

/* ---- constructors --------------------------------------------------------------------------- */

static PyObject *made(kat_status st, kat_featmap *fm)
{
    return st ? katpy_raise(st) : wrap(fm, NULL);
}

/* A size argument: negative values are refused here, the rest by kat. */
static int size_arg(Py_ssize_t v, const char *what, size_t *out)
{
    if (v < 0) {
        PyErr_Format(PyExc_ValueError, "%s = %zd must be >= 0", what, v);
        return -1;
    }
    *out = (size_t)v;
    return 0;
}

/* taylor(d, order, tau) */
static PyObject *py_taylor(PyObject *self, PyObject *args)
{
    Py_ssize_t d;
    int order;
    double tau;
    size_t ud;
    if (!PyArg_ParseTuple(args, "nid", &d, &order, &tau) || size_arg(d, "d", &ud) < 0)
        return NULL;
    kat_featmap *fm = NULL;
    kat_status st = kat_featmap_taylor_create(ud, order, tau, &fm);
    return made(st, fm);
}

/* poly(f_or_coef, d): coefficients (float64 vector) or a polynomial kat_fn (expression). */
static PyObject *py_poly(PyObject *self, PyObject *args)
{
    PyObject *co;
    Py_ssize_t d;
    size_t ud;
    if (!PyArg_ParseTuple(args, "On", &co, &d) || size_arg(d, "d", &ud) < 0)
        return NULL;
    kat_featmap *fm = NULL;
    kat_status st;
    if (PyUnicode_Check(co)) {
        katpy_callback cb;
        kat_fn *f;
        if (katpy_fn(co, &f, &cb) < 0)
            return NULL;
        st = kat_featmap_poly_from_fn(f, ud, &fm);
        katpy_fn_release(f, &cb);
    } else {
        katpy_buf b;
        double *coef;
        size_t n;
        if (katpy_dvec(co, "coef", 0, (size_t)-1, &b, &coef, &n) < 0)
            return NULL;
        st = kat_featmap_poly_create(coef, n, ud, &fm);
        katpy_buf_release(&b);
    }
    return made(st, fm);
}

/* rff(kernel, pair, d, M, sigma, seed); kernel "gaussian" or "laplace". */
static PyObject *py_rff(PyObject *self, PyObject *args)
{
    const char *kernel;
    int pair;
    Py_ssize_t d, M;
    double sigma;
    unsigned long long seed;
    size_t ud, um;
    if (!PyArg_ParseTuple(args, "spnndK", &kernel, &pair, &d, &M, &sigma, &seed) ||
        size_arg(d, "d", &ud) < 0 || size_arg(M, "M", &um) < 0)
        return NULL;
    kat_rff_kernel k;
    if (strcmp(kernel, "gaussian") == 0)
        k = KAT_RFF_GAUSSIAN;
    else if (strcmp(kernel, "laplace") == 0)
        k = KAT_RFF_LAPLACE;
    else
        return PyErr_Format(PyExc_ValueError, "kernel: '%s' is not 'gaussian' or 'laplace'",
                            kernel);
    kat_featmap *fm = NULL;
    kat_status st = kat_featmap_rff_create(k, pair ? KAT_RFF_PAIR : KAT_RFF_PHASE, ud, um,
                                           sigma, seed, &fm);
    return made(st, fm);
}

/* favor(d, M, scale, orthogonal, stable, seed) */
static PyObject *py_favor(PyObject *self, PyObject *args)
{
    Py_ssize_t d, M;
    double scale;
    int ortho, stable;
    unsigned long long seed;
    size_t ud, um;
    if (!PyArg_ParseTuple(args, "nndppK", &d, &M, &scale, &ortho, &stable, &seed) ||
        size_arg(d, "d", &ud) < 0 || size_arg(M, "M", &um) < 0)
        return NULL;
    unsigned flags = (ortho ? KAT_FAVOR_ORTHOGONAL : 0u) | (stable ? KAT_FAVOR_STABLE : 0u);
    kat_featmap *fm = NULL;
    kat_status st = kat_featmap_favor_create(ud, um, scale, flags, seed, &fm);
    return made(st, fm);
}

/* elu1(d) */
static PyObject *py_elu1(PyObject *self, PyObject *args)
{
    Py_ssize_t d;
    size_t ud;
    if (!PyArg_ParseTuple(args, "n", &d) || size_arg(d, "d", &ud) < 0)
        return NULL;
    kat_featmap *fm = NULL;
    kat_status st = kat_featmap_elu1_create(ud, &fm);
    return made(st, fm);
}

/* group(f, sides, rank, require_psd): the character map on the hyperrectangle's corners. */
static PyObject *py_group(PyObject *self, PyObject *args)
{
    PyObject *fo, *so;
    Py_ssize_t rank;
    int psd;
    size_t ur;
    if (!PyArg_ParseTuple(args, "OOnp", &fo, &so, &rank, &psd) ||
        size_arg(rank, "rank", &ur) < 0)
        return NULL;
    katpy_callback cb;
    kat_fn *f;
    if (katpy_fn(fo, &f, &cb) < 0)
        return NULL;
    katpy_buf b;
    double *sides;
    size_t d;
    if (katpy_dvec(so, "sides", 0, (size_t)-1, &b, &sides, &d) < 0) {
        katpy_fn_release(f, &cb);
        return NULL;
    }
    kat_featmap *fm = NULL;
    kat_status st;
    Py_BEGIN_ALLOW_THREADS
    st = kat_group_featmap_create(f, sides, d, ur, psd ? KAT_GROUP_MAP_REQUIRE_PSD : 0u, &fm);
    Py_END_ALLOW_THREADS
    PyObject *ret;
    if (cb.exc_type || st) {
        if (!st)
            kat_featmap_destroy(fm);
        ret = katpy_callback_raise(&cb, st);
    } else {
        ret = wrap(fm, NULL);
    }
    katpy_fn_release(f, &cb);
    katpy_buf_release(&b);
    return ret;
}

/* python(adapter, d, D, positive, exact): a map whose apply is the Python adapter. */
static PyObject *py_python(PyObject *self, PyObject *args)
{
    PyObject *adapter;
    Py_ssize_t d, D;
    int positive, exact;
    size_t ud, uD;
    if (!PyArg_ParseTuple(args, "Onnpp", &adapter, &d, &D, &positive, &exact) ||
        size_arg(d, "d", &ud) < 0 || size_arg(D, "dim", &uD) < 0)
        return NULL;
    if (!PyCallable_Check(adapter))
        return PyErr_Format(PyExc_TypeError, "adapter: not callable");
    pymap_state *s = calloc(1, sizeof *s);
    if (!s)
        return PyErr_NoMemory();
    Py_INCREF(adapter);
    s->cb.callable = adapter;
    s->d = ud;
    s->D = uD;
    unsigned flags = (positive ? KAT_FEATMAP_POSITIVE : 0u) | (exact ? KAT_FEATMAP_EXACT : 0u);
    kat_featmap *fm = NULL;
    kat_status st = kat_featmap_create(&pymap_ops, s, ud, uD, flags, &fm);   /* owns s */
    if (st)
        return katpy_raise(st);
    return wrap(fm, &s->cb);
}

/* spec(spec, d, scale, seed): the library's feature-map grammar (kat_featmap_spec_parse), the
 * same for every kat command; scale 0 selects the kind's default. */
static PyObject *py_spec(PyObject *self, PyObject *args)
{
    const char *text;
    Py_ssize_t d;
    double scale;
    unsigned long long seed;
    size_t ud;
    if (!PyArg_ParseTuple(args, "sndK", &text, &d, &scale, &seed) || size_arg(d, "d", &ud) < 0)
        return NULL;
    kat_featmap_spec ms;
    kat_status st = kat_featmap_spec_parse(text, &ms);
    if (st)
        return katpy_raise(st);
    if (scale != 0.0 && kat_featmap_spec_scale(&ms, ud) == 0.0)
        return PyErr_Format(PyExc_ValueError, "scale: %s maps take no scale",
                            kat_featmap_kind_name(ms.kind));
    ms.scale = scale;
    kat_featmap *fm = NULL;
    st = kat_featmap_spec_create(&ms, ud, seed, &fm);
    return made(st, fm);
}

PyMethodDef katpy_featmap_methods[] = {
    {"featmap_spec", py_spec, METH_VARARGS, "kat_featmap_spec_parse + _spec_create."},
    {"featmap_taylor", py_taylor, METH_VARARGS, "kat_featmap_taylor_create."},
    {"featmap_poly", py_poly, METH_VARARGS, "kat_featmap_poly_create / _from_fn."},
    {"featmap_rff", py_rff, METH_VARARGS, "kat_featmap_rff_create."},
    {"featmap_favor", py_favor, METH_VARARGS, "kat_featmap_favor_create."},
    {"featmap_elu1", py_elu1, METH_VARARGS, "kat_featmap_elu1_create."},
    {"featmap_group", py_group, METH_VARARGS, "kat_group_featmap_create."},
    {"featmap_python", py_python, METH_VARARGS, "A map written in Python."},
    {NULL, NULL, 0, NULL},
};
