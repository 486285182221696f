/* The kat_fn object, shared by fn.c (built-ins, polynomials, callbacks) and expr.c (compiled
 * expressions; the built-ins are compiled expressions too). */
#ifndef KAT_FN_INTERNAL_H
#define KAT_FN_INTERNAL_H

#include "kat/fn.h"

typedef enum { FN_POLY, FN_POW, FN_CALLBACK, FN_EXPR } fn_kind;

struct kat_fn {
    fn_kind kind;
    char *name;                       /* owned */
    double p;                         /* FN_POW exponent */
    kat_fn_scalar user;               /* FN_CALLBACK */
    kat_fn_block user_block;
    void *params;
    /* Polynomial form, when recognised (any kind): coef[t] for x^t, t <= degree. */
    double *coef;                     /* owned; NULL when not a polynomial */
    size_t ncoef;                     /* degree + 1 */
    /* FN_EXPR: compiled program, evaluated block-wise by expr.c. */
    void *prog;
    void (*prog_eval)(const void *prog, const double *x, double *y, size_t n);
    void (*prog_free)(void *prog);
};

/* Allocate a zeroed kat_fn with a copy of name; NULL on allocation failure. */
struct kat_fn *kat__fn_new(fn_kind kind, const char *name);
/* Evaluate a polynomial (Horner) on a block. */
void kat__fn_poly_eval_block(const double *coef, size_t ncoef, const double *x, double *y,
                            size_t n);

#endif
