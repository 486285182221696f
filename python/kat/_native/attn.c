/* Attention through the plan API: one call builds the plan for the shapes and the pattern,
 * runs the forward or the backward on views of the caller's float32 arrays (any strides with
 * a contiguous last dimension, so a transposed [B, N, H, D] buffer is read in place), and
 * destroys it (unless a forward keeps it, with its index, for the backward). Per-call data (bucket ids, keep masks, an element mask) come as contiguous
 * int32 / uint8 buffers that the Python layer has checked and converted. */
#include <string.h>
#include "native.h"

/* A [B, H, N, D] float32 view (ndim 4), or, with ndim 3, a [B, H, N] one seen as D = 1 (the
 * logsumexp). */
static int get_tensor(PyObject *obj, const char *what, int writable, int ndim, katpy_buf *b,
                      kat_tensor *t)
{
    memset(b, 0, sizeof *b);
    int flags = PyBUF_STRIDES | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, &b->view, flags) < 0) {
        PyErr_Clear();
        PyErr_Format(PyExc_ValueError, "%s: expected a%s float32 array, got %.80s", what,
                     writable ? " writable" : "", Py_TYPE(obj)->tp_name);
        return -1;
    }
    b->held = 1;
    Py_buffer *v = &b->view;
    const char *f = v->format ? v->format : "B";
    if (*f == '@' || *f == '=' || *f == '<')
        f++;
    if (strcmp(f, "f") != 0 || v->itemsize != 4 || v->ndim != ndim) {
        PyErr_Format(PyExc_ValueError, "%s: expected a %d-D float32 array, got %d-D format '%s'",
                     what, ndim, v->ndim, v->format ? v->format : "B");
        katpy_buf_release(b);
        return -1;
    }
    size_t s[4] = {1, 1, 1, 1}, st[4] = {0, 0, 0, 1};
    for (int i = 0; i < ndim; i++) {
        s[i] = (size_t)v->shape[i];
        if (v->strides[i] < 0 || v->strides[i] % 4) {
            PyErr_Format(PyExc_ValueError, "%s: stride %zd bytes of axis %d is not a "
                                           "non-negative multiple of 4", what, v->strides[i], i);
            katpy_buf_release(b);
            return -1;
        }
        st[i] = (size_t)v->strides[i] / 4;
    }
    if (ndim == 4 && s[3] > 1 && st[3] != 1) {
        PyErr_Format(PyExc_ValueError, "%s: the last dimension must be contiguous (stride 4 "
                                       "bytes, got %zd)", what, v->strides[3]);
        katpy_buf_release(b);
        return -1;
    }
    t->data = v->buf;
    t->B = s[0];
    t->H = s[1];
    t->N = s[2];
    t->D = ndim == 4 ? s[3] : 1;
    t->sb = st[0];
    t->sh = st[1];
    t->sn = ndim == 4 ? st[2] : (st[2] ? st[2] : 1);
    return 0;
}

/* A contiguous buffer of `count` items of the given struct format ("i": int32, "B": uint8). */
static int get_flat(PyObject *obj, const char *what, const char *fmt, size_t count, katpy_buf *b,
                    const void **data)
{
    memset(b, 0, sizeof *b);
    if (PyObject_GetBuffer(obj, &b->view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0)
        return -1;
    b->held = 1;
    const char *f = b->view.format ? b->view.format : "B";
    if (*f == '@' || *f == '=' || *f == '<')
        f++;
    if (strcmp(f, fmt) != 0 || (size_t)b->view.len != count * (fmt[0] == 'i' ? 4 : 1)) {
        PyErr_Format(PyExc_ValueError, "%s: expected %zu contiguous '%s' items", what, count, fmt);
        katpy_buf_release(b);
        return -1;
    }
    *data = b->view.buf;
    return 0;
}

enum { T_Q, T_K, T_V, T_O, T_LSE, T_DO, T_DQ, T_DK, T_DV, T_COUNT };
enum { D_QB, D_KB, D_QKEEP, D_KKEEP, D_MASK, D_COUNT };

/* A forward's plan and the index of its per-call data, kept for its backward (a capsule). */
typedef struct {
    kat_attn_plan *plan;
    kat_attn_index *index;
    /* a per-call element mask: the index reads its dense data by reference */
    kat_sparse_blockmask *mask;
    uint8_t *mask_data;
} shared_index;

static const char shared_name[] = "kat.attn_index";

static void shared_destroy(PyObject *capsule)
{
    shared_index *s = PyCapsule_GetPointer(capsule, shared_name);
    if (!s)
        return;
    kat_attn_index_destroy(s->index);   /* before the plan it refers to */
    kat_attn_plan_destroy(s->plan);
    kat_sparse_blockmask_destroy(s->mask);
    PyMem_RawFree(s->mask_data);
    PyMem_RawFree(s);
}

/* Whether the pattern sorts and tiles per-call data, which an index holds. */
static int has_index(const kat_attn_pattern *p)
{
    return p->kind == KAT_ATTN_QKDROP || p->kind == KAT_ATTN_HASH || p->kind == KAT_ATTN_LSH ||
           (p->kind == KAT_ATTN_BLOCKMASK && !p->mask);
}

/* attention(backward, spec, map, (causal, scale, unnormalized, chunk),
 *           (q, k, v, o, lse, [dout, dq, dk, dv]),
 *           (q_buckets, k_buckets, q_keep, k_keep, mask, mask_B, mask_H, block_q, block_k)
 *           [, share])
 * share: in a forward, True returns (solver, index) where index is a capsule of the plan and
 * the index of the per-call data (kat_attn_index_create), None for patterns without one; in a
 * backward, that capsule, whose plan and index the pass then uses instead of building them
 * again (the per-call data must be the forward's). */
static PyObject *py_attention(PyObject *self, PyObject *args)
{
    int backward, causal, unnormalized;
    const char *spec;
    PyObject *mapobj, *tens, *data, *share = Py_None;
    double scale;
    Py_ssize_t chunk;
    if (!PyArg_ParseTuple(args, "psO(idpn)O!O!|O", &backward, &spec, &mapobj, &causal, &scale,
                          &unnormalized, &chunk, &PyTuple_Type, &tens, &PyTuple_Type, &data,
                          &share))
        return NULL;
    shared_index *given = NULL;
    if (backward && share != Py_None) {
        if (!(given = PyCapsule_GetPointer(share, shared_name)))
            return NULL;
    }
    const int make_index = !backward && PyObject_IsTrue(share) == 1;
    const int ntens = backward ? T_COUNT : T_DO;
    if (PyTuple_GET_SIZE(tens) != ntens || PyTuple_GET_SIZE(data) != D_COUNT + 4)
        return PyErr_Format(PyExc_TypeError, "attention: wrong number of arrays");
    kat_attn_pattern pattern;
    kat_status st = kat_attn_pattern_parse(spec, &pattern);
    if (st)
        return katpy_raise(st);
    katpy_featmap *fm = NULL;
    if (mapobj != Py_None) {
        if (!PyObject_TypeCheck(mapobj, &katpy_featmap_type))
            return PyErr_Format(PyExc_TypeError, "map: expected a FeatureMap");
        fm = (katpy_featmap *)mapobj;
        pattern.map = fm->fm;
        pattern.linear.unnormalized = unnormalized;
        pattern.linear.chunk = chunk > 0 ? (size_t)chunk : 0;
    }

    static const char *const names[T_COUNT] = {"q", "k", "v", "o", "lse", "dout", "dq", "dk", "dv"};
    static const int writable[T_COUNT] = {0, 0, 0, 1, 1, 0, 1, 1, 1};
    katpy_buf tb[T_COUNT], db[D_COUNT];
    kat_tensor t[T_COUNT];
    int have[T_COUNT] = {0};
    memset(tb, 0, sizeof tb);
    memset(db, 0, sizeof db);
    PyObject *ret = NULL;
    kat_sparse_keep keeps[2];
    int have_keep[2] = {0, 0};
    kat_sparse_blockmask *mask = NULL;
    kat_attn_plan *plan = NULL;
    kat_attn_index *index = NULL;
    uint8_t *mask_data = NULL;
    for (int i = 0; i < ntens; i++) {
        PyObject *o = PyTuple_GET_ITEM(tens, i);
        if (o == Py_None)
            continue;
        /* the forward's o and lse are inputs of the backward */
        if (get_tensor(o, names[i], writable[i] && !(backward && (i == T_O || i == T_LSE)),
                       i == T_LSE ? 3 : 4, &tb[i], &t[i]) < 0)
            goto done;
        have[i] = 1;
    }
    kat_attn_desc desc;
    if ((st = kat_attn_desc_from_views(&t[T_Q], &t[T_K], causal, scale, &desc))) {
        katpy_raise(st);
        goto done;
    }
    desc.Dv = t[T_V].D;
    Py_ssize_t mB, mH, bq, bk;
    PyObject *sizes = PyTuple_GetSlice(data, D_COUNT, D_COUNT + 4);
    int ok = sizes && PyArg_ParseTuple(sizes, "nnnn", &mB, &mH, &bq, &bk);
    Py_XDECREF(sizes);
    if (!ok)
        goto done;
    kat_attn_args a;
    memset(&a, 0, sizeof a);
    const size_t qrows = desc.B * desc.H * desc.N, krows = desc.B * t[T_K].H * desc.M;
    const void *p;
    PyObject *o;
    if ((o = PyTuple_GET_ITEM(data, D_QB)) != Py_None) {
        if (get_flat(o, "q_buckets", "i", qrows, &db[D_QB], &p) < 0)
            goto done;
        a.q_buckets = p;
    }
    if ((o = PyTuple_GET_ITEM(data, D_KB)) != Py_None) {
        if (get_flat(o, "k_buckets", "i", krows, &db[D_KB], &p) < 0)
            goto done;
        a.k_buckets = p;
    }
    for (int s = 0; s < 2; s++) {
        if ((o = PyTuple_GET_ITEM(data, D_QKEEP + s)) == Py_None)
            continue;
        if (get_flat(o, s ? "k_keep" : "q_keep", "B", s ? krows : qrows, &db[D_QKEEP + s], &p) < 0)
            goto done;
        st = kat_sparse_keep_from_mask(p, desc.B, s ? t[T_K].H : desc.H, s ? desc.M : desc.N,
                                       &keeps[s]);
        if (st) {
            katpy_raise(st);
            goto done;
        }
        have_keep[s] = 1;
        if (s)
            a.k_keep = &keeps[1];
        else
            a.q_keep = &keeps[0];
    }
    if ((o = PyTuple_GET_ITEM(data, D_MASK)) != Py_None) {
        size_t count = (size_t)mB * (size_t)mH * desc.N * desc.M;
        if (get_flat(o, "mask", "B", count, &db[D_MASK], &p) < 0)
            goto done;
        if (make_index) {   /* kept with the index, which reads it after this call */
            if (!(mask_data = PyMem_RawMalloc(count ? count : 1))) {
                PyErr_NoMemory();
                goto done;
            }
            memcpy(mask_data, p, count);
            p = mask_data;
        }
        st = kat_sparse_blockmask_from_dense(p, (size_t)mB, (size_t)mH, desc.N, desc.M,
                                             bq > 0 ? (size_t)bq : kat_sparse_tile_q(),
                                             bk > 0 ? (size_t)bk : kat_sparse_tile_k(), &mask);
        if (st) {
            katpy_raise(st);
            goto done;
        }
        a.mask = mask;
    }
    const kat_tensor *lse = have[T_LSE] ? &t[T_LSE] : NULL;
    const kat_attn_plan *run = given ? given->plan : NULL;
    const int indexed = make_index && has_index(&pattern);
    Py_BEGIN_ALLOW_THREADS
    st = run ? KAT_OK : kat_attn_plan_create(&desc, &pattern, &plan);
    if (!run)
        run = plan;
    if (!st && indexed)
        st = kat_attn_index_create(run, &a, &t[T_Q], &t[T_K], &index);
    a.index = given ? given->index : index;
    if (!st && !backward)
        st = kat_attn_forward(run, &a, &t[T_Q], &t[T_K], &t[T_V], &t[T_O], lse, NULL);
    else if (!st)
        st = kat_attn_backward(run, &a, &t[T_Q], &t[T_K], &t[T_V], &t[T_O], lse, &t[T_DO],
                               &t[T_DQ], &t[T_DK], &t[T_DV], NULL);
    Py_END_ALLOW_THREADS
    PyObject *none = katpy_finish(fm ? fm->cb : NULL, st);
    if (none)
        ret = PyUnicode_FromString(kat_attn_plan_solver(run));
    Py_XDECREF(none);
    if (ret && make_index) {
        PyObject *cap = Py_None;
        shared_index *s = NULL;
        if (indexed && !(s = PyMem_RawMalloc(sizeof *s)))
            cap = PyErr_NoMemory();
        else if (indexed) {
            *s = (shared_index){plan, index, mask, mask_data};
            if ((cap = PyCapsule_New(s, shared_name, shared_destroy)))
                plan = NULL, index = NULL, mask = NULL, mask_data = NULL;   /* owned by cap */
            else
                PyMem_RawFree(s);
        } else {
            Py_INCREF(cap);
        }
        PyObject *pair = cap ? PyTuple_Pack(2, ret, cap) : NULL;
        Py_XDECREF(cap);
        Py_DECREF(ret);
        ret = pair;
    }
done:
    kat_attn_index_destroy(index);
    kat_attn_plan_destroy(plan);
    kat_sparse_blockmask_destroy(mask);
    PyMem_RawFree(mask_data);
    for (int s = 0; s < 2; s++)
        if (have_keep[s])
            kat_sparse_keep_free(&keeps[s]);
    for (int i = 0; i < T_COUNT; i++)
        katpy_buf_release(&tb[i]);
    for (int i = 0; i < D_COUNT; i++)
        katpy_buf_release(&db[i]);
    return ret;
}

/* lsh_buckets(x, group, nb, seed, out): kat's angular LSH bucket ids of the rows of x. */
static PyObject *py_lsh_buckets(PyObject *self, PyObject *args)
{
    PyObject *xo, *oo;
    Py_ssize_t group, nb;
    unsigned long long seed;
    if (!PyArg_ParseTuple(args, "OnnKO", &xo, &group, &nb, &seed, &oo))
        return NULL;
    if (group < 1 || nb < 0)
        return PyErr_Format(PyExc_ValueError, "group = %zd must be >= 1 and nb = %zd >= 0",
                            group, nb);
    katpy_buf xb, ob;
    kat_tensor x;
    const void *out;
    if (get_tensor(xo, "x", 0, 4, &xb, &x) < 0)
        return NULL;
    if (get_flat(oo, "out", "i", x.B * x.H * x.N, &ob, &out) < 0) {
        katpy_buf_release(&xb);
        return NULL;
    }
    kat_status st;
    Py_BEGIN_ALLOW_THREADS
    st = kat_sparse_lsh_buckets(&x, (size_t)group, (size_t)nb, seed, (int32_t *)out);
    Py_END_ALLOW_THREADS
    katpy_buf_release(&xb);
    katpy_buf_release(&ob);
    return katpy_finish(NULL, st);
}

PyMethodDef katpy_attn_methods[] = {
    {"attention", py_attention, METH_VARARGS, "kat_attn_plan_create + forward / backward."},
    {"lsh_buckets", py_lsh_buckets, METH_VARARGS, "kat_sparse_lsh_buckets."},
    {NULL, NULL, 0, NULL},
};
