/* Entrywise functions: built-ins (the named operations of fn/expr_ops.def), polynomials,
 * powers and user callbacks, evaluated on blocks. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "core/internal.h"
#include "fn/expr_internal.h"
#include "fn/fn_internal.h"

struct kat_fn *kat__fn_new(fn_kind kind, const char *name)
{
    struct kat_fn *f = kat_calloc(1, sizeof *f);
    if (!f)
        return NULL;
    size_t len = strlen(name ? name : "");
    f->name = kat_malloc(len + 1);
    if (!f->name) {
        kat_free(f);
        return NULL;
    }
    memcpy(f->name, name ? name : "", len + 1);
    f->kind = kind;
    return f;
}

static kat_status set_poly(struct kat_fn *f, const double *coef, size_t ncoef)
{
    while (ncoef > 1 && coef[ncoef - 1] == 0.0)
        ncoef--;   /* trailing zeros do not raise the degree */
    f->coef = kat__alloc_array(ncoef, sizeof(double), "polynomial coefficients");
    if (!f->coef)
        return KAT_ENOMEM;
    memcpy(f->coef, coef, ncoef * sizeof(double));
    f->ncoef = ncoef;
    return KAT_OK;
}

kat_status kat_fn_builtin(const char *name, kat_fn **out)
{
    if (!name)
        return kat__fail(KAT_EINVAL, "fn_builtin: name is NULL");
    if (!out)
        return kat__fail(KAT_EINVAL, "fn_builtin: out is NULL");
    /* The built-ins are the named one-argument operations of fn/expr_ops.def: name is
     * name(x), compiled by the expression compiler (so the two always agree). */
    size_t len = strlen(name);
    expr_op op = kat__expr_op_lookup(name, len);
    if (op == EOP_COUNT)
        return kat__fail(KAT_EINVAL, "fn_builtin: unknown function name '%.64s'", name);
    if (expr_op_arity(op) != 1)
        return kat__fail(KAT_EINVAL, "fn_builtin: '%s' takes %d arguments; write an expression "
                        "such as '%s(x, 0)' for kat_fn_parse", name, expr_op_arity(op), name);
    char src[64];
    snprintf(src, sizeof src, "%s(x)", name);
    struct kat_fn *f = NULL;
    kat_status st = kat_fn_parse(src, &f, NULL);
    if (st)
        return st;
    char *own = kat_malloc(len + 1);
    if (!own) {
        kat_fn_destroy(f);
        return KAT_ENOMEM;
    }
    memcpy(own, name, len + 1);
    kat_free(f->name);
    f->name = own;
    *out = f;
    return KAT_OK;
}

kat_status kat_fn_poly(const double *coef, size_t ncoef, kat_fn **out)
{
    if (!coef)
        return kat__fail(KAT_EINVAL, "fn_poly: coef is NULL");
    if (ncoef == 0)
        return kat__fail(KAT_EINVAL, "fn_poly: ncoef must be >= 1 (got 0)");
    if (!out)
        return kat__fail(KAT_EINVAL, "fn_poly: out is NULL");
    size_t bad = kat__first_nonfinite(coef, ncoef);
    if (bad < ncoef)
        return kat__fail(KAT_EDOM, "fn_poly: coef[%zu] is %g", bad, coef[bad]);
    char name[64];
    snprintf(name, sizeof name, "poly[%zu coefficients]", ncoef);
    struct kat_fn *f = kat__fn_new(FN_POLY, name);
    if (!f)
        return KAT_ENOMEM;
    if (set_poly(f, coef, ncoef)) {
        kat_fn_destroy(f);
        return KAT_ENOMEM;
    }
    *out = f;
    return KAT_OK;
}

kat_status kat_fn_pow(double p, kat_fn **out)
{
    if (!isfinite(p))
        return kat__fail(KAT_EDOM, "fn_pow: exponent p is %g", p);
    if (!out)
        return kat__fail(KAT_EINVAL, "fn_pow: out is NULL");
    char name[64];
    snprintf(name, sizeof name, "x^%g", p);
    struct kat_fn *f = kat__fn_new(FN_POW, name);
    if (!f)
        return KAT_ENOMEM;
    f->p = p;
    if (p >= 0 && p == floor(p) && p <= 64) {
        size_t deg = (size_t)p;
        double coef[65] = {0};
        coef[deg] = 1.0;
        if (set_poly(f, coef, deg + 1)) {
            kat_fn_destroy(f);
            return KAT_ENOMEM;
        }
    }
    *out = f;
    return KAT_OK;
}

kat_status kat_fn_callback(kat_fn_scalar scalar, kat_fn_block block, void *params,
                           const char *name, kat_fn **out)
{
    if (!scalar && !block)
        return kat__fail(KAT_EINVAL, "fn_callback: both scalar and block are NULL");
    if (!out)
        return kat__fail(KAT_EINVAL, "fn_callback: out is NULL");
    struct kat_fn *f = kat__fn_new(FN_CALLBACK, name ? name : "callback");
    if (!f)
        return KAT_ENOMEM;
    f->user = scalar;
    f->user_block = block;
    f->params = params;
    *out = f;
    return KAT_OK;
}

void kat_fn_destroy(kat_fn *f)
{
    if (!f)
        return;
    if (f->prog_free)
        f->prog_free(f->prog);
    kat_free(f->coef);
    kat_free(f->name);
    kat_free(f);
}

void kat__fn_poly_eval_block(const double *coef, size_t ncoef, const double *x, double *y,
                            size_t n)
{
    for (size_t i = 0; i < n; i++) {
        double xi = x[i], acc = coef[ncoef - 1];
        for (size_t t = ncoef - 1; t-- > 0;)
            acc = acc * xi + coef[t];
        y[i] = acc;
    }
}

void kat_fn_eval_unchecked(const kat_fn *f, const double *x, double *y, size_t n)
{
    switch (f->kind) {
    case FN_POLY:
        kat__fn_poly_eval_block(f->coef, f->ncoef, x, y, n);
        break;
    case FN_POW:
        if (f->coef)
            kat__fn_poly_eval_block(f->coef, f->ncoef, x, y, n);
        else
            for (size_t i = 0; i < n; i++)
                y[i] = pow(x[i], f->p);
        break;
    case FN_CALLBACK:
        if (f->user_block)
            f->user_block(x, y, n, f->params);
        else
            for (size_t i = 0; i < n; i++)
                y[i] = f->user(x[i], f->params);
        break;
    case FN_EXPR:
        f->prog_eval(f->prog, x, y, n);
        break;
    }
}

kat_status kat_fn_eval(const kat_fn *f, const double *x, double *y, size_t n)
{
    if (!f)
        return kat__fail(KAT_EINVAL, "fn_eval: f is NULL");
    if (n == 0)
        return KAT_OK;
    if (!x || !y)
        return kat__fail(KAT_EINVAL, "fn_eval: %s is NULL", x ? "y" : "x");
    kat_fn_eval_unchecked(f, x, y, n);
    if (!kat__all_finite(y, n)) {
        size_t i = kat__first_nonfinite(y, n);
        /* x may alias y; the failing input is then lost, so report only the value. */
        if (x != y)
            return kat__fail(KAT_EDOM, "f = %s is %g at x = %.17g", f->name, y[i], x[i]);
        return kat__fail(KAT_EDOM, "f = %s gives %g at entry %zu", f->name, y[i], i);
    }
    return KAT_OK;
}

double kat_fn_eval1(const kat_fn *f, double x)
{
    double y;
    kat_fn_eval_unchecked(f, &x, &y, 1);
    return y;
}

const char *kat_fn_name(const kat_fn *f) { return f ? f->name : "(null)"; }

int kat_fn_poly_degree(const kat_fn *f)
{
    if (!f || !f->coef)
        return -1;
    return (int)f->ncoef - 1;
}

int kat_fn_poly_coeffs(const kat_fn *f, double *coef, size_t cap)
{
    if (!f || !f->coef)
        return -1;
    if (coef)
        for (size_t t = 0; t < f->ncoef && t < cap; t++)
            coef[t] = f->coef[t];
    return (int)f->ncoef - 1;
}
