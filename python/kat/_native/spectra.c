/* Spectra of group-invariant kernels, point-set kernels and embeddings (theory/). */
#include "native.h"

/* The common frame of these calls: f from Python, a vector or matrix out, GIL released. */
typedef struct {
    kat_fn *f;
    katpy_callback cb;
    katpy_buf bufs[3];
} call_frame;

static void frame_release(call_frame *c)
{
    katpy_fn_release(c->f, &c->cb);
    for (int i = 0; i < 3; i++)
        katpy_buf_release(&c->bufs[i]);
}

static PyObject *frame_finish(call_frame *c, kat_status st)
{
    PyObject *ret = katpy_finish(&c->cb, st);
    frame_release(c);
    return ret;
}

/* hypercube_spectrum(f, d, lam, mult): lam, mult hold d + 1 values. */
static PyObject *py_hypercube(PyObject *self, PyObject *args)
{
    PyObject *fo, *lo, *mo;
    Py_ssize_t d;
    if (!PyArg_ParseTuple(args, "OnOO", &fo, &d, &lo, &mo))
        return NULL;
    call_frame c = {0};
    double *lam, *mult;
    size_t n;
    if (d < 0)
        return PyErr_Format(PyExc_ValueError, "d = %zd must be >= 0", d);
    if (katpy_fn(fo, &c.f, &c.cb) < 0 ||
        katpy_dvec(lo, "lam", 1, (size_t)d + 1, &c.bufs[0], &lam, &n) < 0 ||
        katpy_dvec(mo, "mult", 1, (size_t)d + 1, &c.bufs[1], &mult, &n) < 0) {
        frame_release(&c);
        return NULL;
    }
    kat_status st;
    Py_BEGIN_ALLOW_THREADS
    st = kat_group_hypercube_spectrum(c.f, (size_t)d, lam, mult);
    Py_END_ALLOW_THREADS
    return frame_finish(&c, st);
}

/* hyperrect(f, sides, out, matrix): the 2^d eigenvalues, or the dense 2^d x 2^d matrix. */
static PyObject *py_hyperrect(PyObject *self, PyObject *args)
{
    PyObject *fo, *so, *oo;
    int matrix;
    if (!PyArg_ParseTuple(args, "OOOp", &fo, &so, &oo, &matrix))
        return NULL;
    call_frame c = {0};
    double *sides, *out = NULL;
    size_t d, n;
    kat_dmat D;
    if (katpy_fn(fo, &c.f, &c.cb) < 0 ||
        katpy_dvec(so, "sides", 0, (size_t)-1, &c.bufs[0], &sides, &d) < 0 ||
        (matrix ? katpy_dmat(oo, "out", 1, &c.bufs[1], &D)
                : katpy_dvec(oo, "out", 1, (size_t)-1, &c.bufs[1], &out, &n)) < 0) {
        frame_release(&c);
        return NULL;
    }
    if (!matrix && (d > KAT_GROUP_MAX_D || n != (size_t)1 << d)) {
        frame_release(&c);
        return PyErr_Format(PyExc_ValueError, "out: expected 2^d values for d = %zu", d);
    }
    kat_status st;
    Py_BEGIN_ALLOW_THREADS
    st = matrix ? kat_group_hyperrect_matrix(c.f, sides, d, &D)
                : kat_group_hyperrect_spectrum(c.f, sides, d, out);
    Py_END_ALLOW_THREADS
    return frame_finish(&c, st);
}

/* cyclic(f, out): the N = len(out) eigenvalues on Z_N. */
static PyObject *py_cyclic(PyObject *self, PyObject *args)
{
    PyObject *fo, *oo;
    if (!PyArg_ParseTuple(args, "OO", &fo, &oo))
        return NULL;
    call_frame c = {0};
    double *out;
    size_t n;
    if (katpy_fn(fo, &c.f, &c.cb) < 0 ||
        katpy_dvec(oo, "out", 1, (size_t)-1, &c.bufs[0], &out, &n) < 0) {
        frame_release(&c);
        return NULL;
    }
    kat_status st;
    Py_BEGIN_ALLOW_THREADS
    st = kat_group_cyclic_spectrum(c.f, n, out);
    Py_END_ALLOW_THREADS
    return frame_finish(&c, st);
}

/* circulant(c, re, im): eigenvalues of the circulant with first row c. */
static PyObject *py_circulant(PyObject *self, PyObject *args)
{
    PyObject *co, *ro, *io;
    if (!PyArg_ParseTuple(args, "OOO", &co, &ro, &io))
        return NULL;
    call_frame c = {0};
    double *row, *re, *im;
    size_t n, n2;
    if (katpy_dvec(co, "c", 0, (size_t)-1, &c.bufs[0], &row, &n) < 0 ||
        katpy_dvec(ro, "re", 1, n, &c.bufs[1], &re, &n2) < 0 ||
        katpy_dvec(io, "im", 1, n, &c.bufs[2], &im, &n2) < 0) {
        frame_release(&c);
        return NULL;
    }
    kat_status st;
    Py_BEGIN_ALLOW_THREADS
    st = kat_group_circulant_spectrum(row, n, re, im);
    Py_END_ALLOW_THREADS
    return frame_finish(&c, st);
}

/* point_kernel(f, x, metric, out): out = f(dist(x_i, x_j)) (f = None: the distances). */
static PyObject *py_point_kernel(PyObject *self, PyObject *args)
{
    PyObject *fo, *xo, *oo;
    const char *metric;
    if (!PyArg_ParseTuple(args, "OOsO", &fo, &xo, &metric, &oo))
        return NULL;
    kat_metric mt;
    kat_status st = kat_metric_parse(metric, &mt);
    if (st)
        return katpy_raise(st);
    call_frame c = {0};
    kat_dmat X, K;
    if (katpy_fn(fo, &c.f, &c.cb) < 0 || katpy_dmat(xo, "x", 0, &c.bufs[0], &X) < 0 ||
        katpy_dmat(oo, "out", 1, &c.bufs[1], &K) < 0) {
        frame_release(&c);
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    st = c.f ? kat_metric_kernel(c.f, &X, mt, &K) : kat_metric_distances(&X, mt, &K);
    Py_END_ALLOW_THREADS
    return frame_finish(&c, st);
}

/* sym_eigenvalues(a, w): the eigenvalues of the symmetric a, descending. */
static PyObject *py_sym_eigenvalues(PyObject *self, PyObject *args)
{
    PyObject *ao, *wo;
    if (!PyArg_ParseTuple(args, "OO", &ao, &wo))
        return NULL;
    call_frame c = {0};
    kat_dmat A;
    double *w;
    size_t n;
    if (katpy_dmat(ao, "a", 0, &c.bufs[0], &A) < 0 ||
        katpy_dvec(wo, "w", 1, A.rows, &c.bufs[1], &w, &n) < 0) {
        frame_release(&c);
        return NULL;
    }
    kat_status st;
    Py_BEGIN_ALLOW_THREADS
    st = kat_metric_sym_eigenvalues(&A, w);
    Py_END_ALLOW_THREADS
    return frame_finish(&c, st);
}

/* embed(kind, f, sides, out): the explicit embedding of the corners (kat_metric_embed). */
static PyObject *py_embed(PyObject *self, PyObject *args)
{
    const char *kind;
    PyObject *fo, *so, *oo;
    if (!PyArg_ParseTuple(args, "sOOO", &kind, &fo, &so, &oo))
        return NULL;
    kat_embed_kind k;
    kat_status st = kat_metric_embed_parse(kind, &k);
    if (st)
        return katpy_raise(st);
    call_frame c = {0};
    double *sides;
    size_t d;
    kat_dmat P;
    if (katpy_fn(fo, &c.f, &c.cb) < 0 ||
        katpy_dvec(so, "sides", 0, (size_t)-1, &c.bufs[0], &sides, &d) < 0 ||
        katpy_dmat(oo, "out", 1, &c.bufs[1], &P) < 0) {
        frame_release(&c);
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    st = kat_metric_embed(k, c.f, sides, d, &P);
    Py_END_ALLOW_THREADS
    return frame_finish(&c, st);
}

/* embed_shape(kind, d) -> (rows, cols). */
static PyObject *py_embed_shape(PyObject *self, PyObject *args)
{
    const char *kind;
    Py_ssize_t d;
    if (!PyArg_ParseTuple(args, "sn", &kind, &d))
        return NULL;
    if (d < 0)
        return PyErr_Format(PyExc_ValueError, "d = %zd must be >= 0", d);
    kat_embed_kind k;
    size_t rows, cols;
    kat_status st = kat_metric_embed_parse(kind, &k);
    if (!st)
        st = kat_metric_embed_shape(k, (size_t)d, &rows, &cols);
    if (st)
        return katpy_raise(st);
    return Py_BuildValue("nn", (Py_ssize_t)rows, (Py_ssize_t)cols);
}

/* Complete monotonicity (bernstein = 0) or the Bernstein property on kat's default grid. */
static PyObject *py_monotone(PyObject *self, PyObject *args)
{
    PyObject *fo;
    int bernstein;
    if (!PyArg_ParseTuple(args, "Op", &fo, &bernstein))
        return NULL;
    call_frame c = {0};
    if (katpy_fn(fo, &c.f, &c.cb) < 0) {
        frame_release(&c);
        return NULL;
    }
    if (!c.f) {
        frame_release(&c);
        return PyErr_Format(PyExc_ValueError, "f: a function is needed, got None");
    }
    kat_metric_grid g = kat_metric_grid_default();
    kat_metric_report r;
    kat_status st;
    Py_BEGIN_ALLOW_THREADS
    st = bernstein ? kat_metric_bernstein_check(c.f, &g, &r) : kat_metric_cm_check(c.f, &g, &r);
    Py_END_ALLOW_THREADS
    if (c.cb.exc_type || st) {
        katpy_callback_raise(&c.cb, st);
        frame_release(&c);
        return NULL;
    }
    frame_release(&c);
    return Py_BuildValue("{s:O,s:n,s:n,s:s,s:n,s:d,s:d,s:d}", "holds",
                         r.holds ? Py_True : Py_False, "checked", (Py_ssize_t)r.checked,
                         "violations", (Py_ssize_t)r.violations, "condition",
                         r.condition ? r.condition : "", "order", (Py_ssize_t)r.order, "x", r.x,
                         "value", r.value, "tol", r.tol);
}

PyMethodDef katpy_spectra_methods[] = {
    {"hypercube_spectrum", py_hypercube, METH_VARARGS, "kat_group_hypercube_spectrum."},
    {"hyperrect", py_hyperrect, METH_VARARGS, "kat_group_hyperrect_spectrum / _matrix."},
    {"cyclic_spectrum", py_cyclic, METH_VARARGS, "kat_group_cyclic_spectrum."},
    {"circulant_spectrum", py_circulant, METH_VARARGS, "kat_group_circulant_spectrum."},
    {"point_kernel", py_point_kernel, METH_VARARGS, "kat_metric_kernel / _distances."},
    {"sym_eigenvalues", py_sym_eigenvalues, METH_VARARGS, "kat_metric_sym_eigenvalues."},
    {"embed", py_embed, METH_VARARGS, "kat_metric_embed."},
    {"embed_shape", py_embed_shape, METH_VARARGS, "kat_metric_embed_shape."},
    {"monotone", py_monotone, METH_VARARGS, "kat_metric_cm_check / _bernstein_check."},
    {NULL, NULL, 0, NULL},
};
