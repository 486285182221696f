/* kat fn: entrywise functions f: R -> R — built-ins, polynomials, user callbacks and compiled
 * expressions — evaluated on whole blocks of values. */
#ifndef KAT_FN_H
#define KAT_FN_H

#include "kat/core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kat_fn kat_fn;

/* A user scalar function; params is the pointer given at creation. Must be thread-safe. */
typedef double (*kat_fn_scalar)(double x, void *params);
/* Optional block form of a user function: y[i] = f(x[i]) for i < n. */
typedef void (*kat_fn_block)(const double *x, double *y, size_t n, void *params);

/* Built-ins by name: every one-argument function that kat_fn_parse knows, i.e. name is
 * name(x): "exp", "log", "log1p", "expm1", "sqrt", "abs", "sin", "cos", "tan", "tanh",
 * "sigmoid", "relu", "gelu" (exact, with erf), "erf", "sign", "floor", "ceil", "indicator"
 * (1[x != 0]), "identity" (the table lib/fn/expr_ops.def). Unknown name, or a two-argument
 * function ("max", "min", "pow"): KAT_EINVAL naming it. */
KAT_API kat_status kat_fn_builtin(const char *name, kat_fn **out);
/* f(x) = sum_{t<ncoef} coef[t] x^t. ncoef >= 1, finite coefficients. Recognised as polynomial. */
KAT_API kat_status kat_fn_poly(const double *coef, size_t ncoef, kat_fn **out);
/* f(x) = x^p (for non-integer p, NaN for x < 0 is reported as KAT_EDOM at evaluation).
 * A non-negative integer p is recognised as a polynomial. */
KAT_API kat_status kat_fn_pow(double p, kat_fn **out);
/* A user callback. `name` (may be NULL) is used in messages. params is not copied and must
 * outlive the function object. block may be NULL. */
KAT_API kat_status kat_fn_callback(kat_fn_scalar scalar, kat_fn_block block, void *params,
                                   const char *name, kat_fn **out);
/* Parse and compile an expression in the variable x, e.g. "exp(x/8)", "(1+x)^4",
 * "max(x-1.3, 0)", "x^1.5", "x != 0", "log1p(x)", "min(x,1)", constants pi and e.
 * Language: numbers (1, 1.5, .5, 1e-3, 2E+4), x, pi, e; + - * / and ^ (right-associative,
 * binding tighter than a sign: -x^2 = -(x^2), 2^-1 = 0.5); unary + and -; comparisons
 * == != < <= > >= giving 1 or 0 (loosest); parentheses; exp log log1p expm1 sqrt abs sin cos
 * tan tanh sigmoid relu gelu (exact, with erf) erf sign floor ceil indicator (1[a != 0]) of
 * one argument, max min pow of two. e^a is exp(a); a^n with a constant integer |n| <= 64 is
 * computed by multiplications, other powers by pow; max/min propagate NaN. Constant
 * subexpressions are folded; a polynomial (x, constants, + - *, division by constants,
 * non-negative integer constant powers, degree <= 64) is recognised (kat_fn_poly_degree).
 * The function's name is the source text. Evaluation runs a compiled block program.
 * Errors: NULL expr or out: KAT_EINVAL. A syntax error, nesting deeper than 256 levels or a
 * text longer than 65536 bytes: KAT_EPARSE, kat_last_error() = "column C: reason" (C is
 * 1-based) and *err_pos (if not NULL) receives the 0-based byte offset C - 1; it is not
 * written in any other case. On failure *out is untouched. */
KAT_API kat_status kat_fn_parse(const char *expr, kat_fn **out, size_t *err_pos);

KAT_API void kat_fn_destroy(kat_fn *f);   /* NULL ok */

/* y[i] = f(x[i]) for i < n; x == y allowed. Thread-safe (no shared scratch). Returns KAT_EDOM,
 * naming the first offending x, if some f(x[i]) is not finite; y is then unspecified but
 * x (when distinct from y) untouched. */
KAT_API kat_status kat_fn_eval(const kat_fn *f, const double *x, double *y, size_t n);
/* Same without the finiteness check (y may hold NaN/Inf). */
KAT_API void kat_fn_eval_unchecked(const kat_fn *f, const double *x, double *y, size_t n);
/* Scalar convenience (no check). */
KAT_API double kat_fn_eval1(const kat_fn *f, double x);

/* The name or source text ("exp", "(1+x)^4", "poly[1,2,1]"). Never NULL. */
KAT_API const char *kat_fn_name(const kat_fn *f);

/* Polynomial recognition: if f is a polynomial (built from kat_fn_poly, an integer power, or
 * an expression made of x, constants, +, -, *, / by constants and non-negative integer powers),
 * returns its degree (>= 0; the zero polynomial reports 0) and, when coef is not NULL, writes
 * min(cap, degree+1) coefficients (coef[t] for x^t). Returns -1 when f is not a polynomial. */
KAT_API int kat_fn_poly_degree(const kat_fn *f);
KAT_API int kat_fn_poly_coeffs(const kat_fn *f, double *coef, size_t cap);

#ifdef __cplusplus
}
#endif
#endif
