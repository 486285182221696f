/* Rank probes, kernel matrices and point sets. */
#include <string.h>
#include "native.h"

static PyObject *size_or_none(size_t v)
{
    if (v == KAT_RANK_NONE)
        Py_RETURN_NONE;
    return PyLong_FromSize_t(v);
}

/* The probe's result as a dict; sv as a bytearray the Python layer views as an ndarray. */
static PyObject *result_dict(const kat_rank_result *r)
{
    PyObject *sv = PyByteArray_FromStringAndSize((const char *)r->sv,
                                                 (Py_ssize_t)(r->nsv * sizeof(double)));
    if (!sv)
        return NULL;
    PyObject *d = Py_BuildValue(
        "{s:n,s:n,s:n,s:s,s:N,s:d,s:N,s:N,s:d,s:d,s:d,s:d,s:N,s:N,s:N,s:O,s:n}",
        "n", (Py_ssize_t)r->n, "m", (Py_ssize_t)r->m, "d", (Py_ssize_t)r->d, "method",
        r->method == KAT_RANK_DENSE ? "dense" : "randomized", "rank", PyLong_FromSize_t(r->rank),
        "tol", r->tol, "eps_rank_spectral", size_or_none(r->eps_rank_spectral),
        "eps_rank_frobenius", size_or_none(r->eps_rank_frobenius), "sigma_max", r->sigma_max,
        "fro_norm", r->fro_norm, "stable_rank", r->stable_rank, "effective_rank",
        r->effective_rank, "predicted_rank", size_or_none(r->predicted_rank), "base_rank",
        size_or_none(r->base_rank), "sv", sv, "converged", r->converged ? Py_True : Py_False,
        "passes", (Py_ssize_t)r->passes);
    return d;
}

/* The kernel of the rank calls: a FeatureMap, or an entrywise function (None, an expression,
 * a Python adapter). */
typedef struct {
    const kat_featmap *fm;   /* set for a feature map */
    kat_fn *f;               /* else the function (NULL: the identity) */
    katpy_callback own;      /* the function's callback state */
    katpy_callback *cb;      /* where a Python callback's exception is kept (may be NULL) */
} kernel_arg;

static int kernel_get(PyObject *obj, kernel_arg *k)
{
    memset(k, 0, sizeof *k);
    if (PyObject_TypeCheck(obj, &katpy_featmap_type)) {
        k->fm = ((katpy_featmap *)obj)->fm;
        k->cb = ((katpy_featmap *)obj)->cb;
        return 0;
    }
    k->cb = &k->own;
    return katpy_fn(obj, &k->f, &k->own);
}

static void kernel_release(kernel_arg *k) { katpy_fn_release(k->f, &k->own); }

/* probe(f, q, k, form, scale, method, rtol, atol, eps, predict, seed, block, oversample,
 *       power_iters, max_rank, tile_rows): f is None, an expression, a callable adapter or a
 * FeatureMap; k may be None (k = q). */
static PyObject *py_probe(PyObject *self, PyObject *args)
{
    PyObject *fobj, *qobj, *kobj;
    const char *form, *method;
    kat_rank_opts o;
    kat_rank_opts_init(&o);
    unsigned long long seed;
    Py_ssize_t block, oversample, max_rank, tile_rows;
    int predict, power_iters;
    if (!PyArg_ParseTuple(args, "OOOsdsdddpKnninn", &fobj, &qobj, &kobj, &form, &o.scale,
                          &method, &o.rtol, &o.atol, &o.eps, &predict, &seed, &block,
                          &oversample, &power_iters, &max_rank, &tile_rows))
        return NULL;
    kat_status st = kat_rank_form_parse(form, &o.form);
    if (st)
        return katpy_raise(st);
    if (strcmp(method, "dense") == 0)
        o.method = KAT_RANK_DENSE;
    else if (strcmp(method, "randomized") == 0)
        o.method = KAT_RANK_RANDOMIZED;
    else
        return PyErr_Format(PyExc_ValueError, "method: '%s' is not 'dense' or 'randomized'",
                            method);
    o.predict = predict;
    o.seed = seed;
    if (block > 0)
        o.block = (size_t)block;
    if (oversample > 0)
        o.oversample = (size_t)oversample;
    o.power_iters = power_iters;
    o.max_rank = (size_t)(max_rank > 0 ? max_rank : 0);
    if (tile_rows > 0)
        o.tile_rows = (size_t)tile_rows;

    katpy_buf qb, kb = {0};
    kat_dmat Q, K;
    if (katpy_dmat(qobj, "q", 0, &qb, &Q) < 0)
        return NULL;
    if (kobj == Py_None) {
        K = Q;
    } else if (katpy_dmat(kobj, "k", 0, &kb, &K) < 0) {
        katpy_buf_release(&qb);
        return NULL;
    }
    PyObject *ret = NULL;
    kat_rank_result res;
    kernel_arg kern;
    if (kernel_get(fobj, &kern) < 0)
        goto done;
    Py_BEGIN_ALLOW_THREADS
    st = kern.fm ? kat_rank_probe_featmap(kern.fm, &Q, &K, &o, &res)
                 : kat_rank_probe(kern.f, &Q, &K, &o, &res);
    Py_END_ALLOW_THREADS
    PyObject *none = katpy_finish(kern.cb, st);
    if (none)
        ret = result_dict(&res);
    Py_XDECREF(none);
    if (!st)
        kat_rank_result_free(&res);
done:
    kernel_release(&kern);
    katpy_buf_release(&qb);
    katpy_buf_release(&kb);
    return ret;
}

/* probe_matrix(M, rtol, atol, eps): the dense probe of a matrix the caller has. */
static PyObject *py_probe_matrix(PyObject *self, PyObject *args)
{
    PyObject *mobj;
    kat_rank_opts o;
    kat_rank_opts_init(&o);
    if (!PyArg_ParseTuple(args, "Oddd", &mobj, &o.rtol, &o.atol, &o.eps))
        return NULL;
    katpy_buf mb;
    kat_dmat M;
    if (katpy_dmat(mobj, "m", 0, &mb, &M) < 0)
        return NULL;
    kat_rank_result res;
    kat_status st;
    Py_BEGIN_ALLOW_THREADS
    st = kat_rank_probe_matrix(&M, &o, &res);
    Py_END_ALLOW_THREADS
    katpy_buf_release(&mb);
    if (st)
        return katpy_raise(st);
    PyObject *ret = result_dict(&res);
    kat_rank_result_free(&res);
    return ret;
}

/* kernel_matrix(f, form, scale, q, k, out): out = f(scale * a(q, k)), or phi(q) . psi(k) when
 * f is a FeatureMap (form and scale unused). */
static PyObject *py_kernel_matrix(PyObject *self, PyObject *args)
{
    PyObject *fobj, *qobj, *kobj, *mobj;
    const char *form;
    double scale;
    if (!PyArg_ParseTuple(args, "OsdOOO", &fobj, &form, &scale, &qobj, &kobj, &mobj))
        return NULL;
    kat_rank_form fr;
    kat_status st = kat_rank_form_parse(form, &fr);
    if (st)
        return katpy_raise(st);
    katpy_buf qb, kb, mb;
    kat_dmat Q, K, M;
    if (katpy_dmat(qobj, "q", 0, &qb, &Q) < 0)
        return NULL;
    if (katpy_dmat(kobj, "k", 0, &kb, &K) < 0) {
        katpy_buf_release(&qb);
        return NULL;
    }
    if (katpy_dmat(mobj, "out", 1, &mb, &M) < 0) {
        katpy_buf_release(&qb);
        katpy_buf_release(&kb);
        return NULL;
    }
    PyObject *ret = NULL;
    kernel_arg kern;
    if (kernel_get(fobj, &kern) < 0)
        goto done;
    Py_BEGIN_ALLOW_THREADS
    st = kern.fm ? kat_rank_featmap_matrix(kern.fm, &Q, &K, &M)
                 : kat_rank_kernel_matrix(kern.f, fr, scale, &Q, &K, &M);
    Py_END_ALLOW_THREADS
    ret = katpy_finish(kern.cb, st);
done:
    kernel_release(&kern);
    katpy_buf_release(&qb);
    katpy_buf_release(&kb);
    katpy_buf_release(&mb);
    return ret;
}

/* points(dist, out, seed, sigma, bound, pm1, sides|None, levels, enumerate): fill out's rows. */
static PyObject *py_points(PyObject *self, PyObject *args)
{
    const char *dist;
    PyObject *xobj, *sobj;
    unsigned long long seed;
    kat_rank_points_opts o;
    kat_rank_points_opts_init(&o);
    Py_ssize_t levels;
    if (!PyArg_ParseTuple(args, "sOKddpOnp", &dist, &xobj, &seed, &o.sigma, &o.bound, &o.pm1,
                          &sobj, &levels, &o.enumerate))
        return NULL;
    kat_status st = kat_rank_dist_parse(dist, &o.dist);
    if (st)
        return katpy_raise(st);
    o.levels = levels > 0 ? (size_t)levels : o.levels;
    katpy_buf xb, sb = {0};
    kat_dmat X;
    if (katpy_dmat(xobj, "out", 1, &xb, &X) < 0)
        return NULL;
    if (sobj != Py_None) {
        double *sides;
        if (katpy_dvec(sobj, "sides", 0, (size_t)-1, &sb, &sides, &o.nsides) < 0) {
            katpy_buf_release(&xb);
            return NULL;
        }
        o.sides = sides;
    }
    kat_rng *rng = NULL;
    st = kat_rng_create(seed, &rng);
    if (!st) {
        Py_BEGIN_ALLOW_THREADS
        st = kat_rank_points(&o, rng, &X);
        Py_END_ALLOW_THREADS
    }
    kat_rng_destroy(rng);
    katpy_buf_release(&xb);
    katpy_buf_release(&sb);
    if (st)
        return katpy_raise(st);
    Py_RETURN_NONE;
}

PyMethodDef katpy_rank_methods[] = {
    {"probe", py_probe, METH_VARARGS, "kat_rank_probe / kat_rank_probe_featmap."},
    {"probe_matrix", py_probe_matrix, METH_VARARGS, "kat_rank_probe_matrix."},
    {"kernel_matrix", py_kernel_matrix, METH_VARARGS, "kat_rank_kernel_matrix."},
    {"points", py_points, METH_VARARGS, "kat_rank_points."},
    {NULL, NULL, 0, NULL},
};
