/* Scalar semantics of every expression operator. Both the constant folder and the block
 * evaluator use these same inline functions, so a folded constant has exactly the bits the
 * program would compute at run time. */
#ifndef KAT_EXPR_OPS_H
#define KAT_EXPR_OPS_H

#include <math.h>
#include "fn/expr_internal.h"

static inline double eop_neg(double a) { return -a; }
static inline double eop_abs(double a) { return fabs(a); }
static inline double eop_sqrt(double a) { return sqrt(a); }
static inline double eop_floor(double a) { return floor(a); }
static inline double eop_ceil(double a) { return ceil(a); }
static inline double eop_exp(double a) { return exp(a); }
static inline double eop_log(double a) { return log(a); }
static inline double eop_log1p(double a) { return log1p(a); }
static inline double eop_expm1(double a) { return expm1(a); }
static inline double eop_sin(double a) { return sin(a); }
static inline double eop_cos(double a) { return cos(a); }
static inline double eop_tan(double a) { return tan(a); }
static inline double eop_tanh(double a) { return tanh(a); }
static inline double eop_erf(double a) { return erf(a); }
static inline double eop_sigmoid(double a)
{
    /* Two branches so neither exp overflows (the same formula as the built-in). */
    if (a >= 0.0)
        return 1.0 / (1.0 + exp(-a));
    double e = exp(a);
    return e / (1.0 + e);
}
/* Same as the built-in relu: NaN maps to 0 there too. */
static inline double eop_relu(double a) { return a > 0.0 ? a : 0.0; }
/* Exact GELU with erf (the built-in's formula). */
static inline double eop_gelu(double a) { return 0.5 * a * (1.0 + erf(a * M_SQRT1_2)); }
/* -1, 0 or 1; signed zeros and NaN pass through (numpy's convention). */
static inline double eop_sign(double a) { return a > 0.0 ? 1.0 : a < 0.0 ? -1.0 : a; }
static inline double eop_indicator(double a) { return a != 0.0 ? 1.0 : 0.0; }

static inline double eop_add(double a, double b) { return a + b; }
static inline double eop_sub(double a, double b) { return a - b; }
static inline double eop_mul(double a, double b) { return a * b; }
static inline double eop_div(double a, double b) { return a / b; }
static inline double eop_pow(double a, double b) { return pow(a, b); }
/* max/min propagate NaN (numpy.maximum's convention), unlike fmax which would hide it: a NaN
 * a is returned by the test, a NaN b by the fall-through. Written without nested branches
 * so that the loops vectorise into compares and blends. */
static inline double eop_max(double a, double b) { return (a > b || a != a) ? a : b; }
static inline double eop_min(double a, double b) { return (a < b || a != a) ? a : b; }
static inline double eop_eq(double a, double b) { return a == b ? 1.0 : 0.0; }
static inline double eop_ne(double a, double b) { return a != b ? 1.0 : 0.0; }
static inline double eop_lt(double a, double b) { return a < b ? 1.0 : 0.0; }
static inline double eop_le(double a, double b) { return a <= b ? 1.0 : 0.0; }
static inline double eop_gt(double a, double b) { return a > b ? 1.0 : 0.0; }
static inline double eop_ge(double a, double b) { return a >= b ? 1.0 : 0.0; }

/* a^n for 1 <= n <= EXPR_MAX_INT_POWER by binary powering: at most 2*log2(n) roundings, and
 * exact whenever the true power is representable and small (x^2, x^3 of short mantissas). */
static inline double eop_powi(double a, int n)
{
    double acc = 1.0, base = a;
    int first = 1;
    while (n > 0) {
        if (n & 1) {
            acc = first ? base : acc * base;
            first = 0;
        }
        n >>= 1;
        if (n)
            base *= base;
    }
    return acc;
}

/* Whether a constant exponent takes the multiplication path, and its integer value. */
static inline int eop_int_exponent(double p, int *n)
{
    if (!(p == floor(p)) || fabs(p) > EXPR_MAX_INT_POWER)
        return 0;
    *n = (int)p;
    return 1;
}

/* The scalar value of a^b as the program computes it when b is a constant: integer b via
 * multiplications (negative b: 1 / a^|b|; b = 0: 1, as pow gives even for NaN), else pow. */
static inline double eop_pow_const(double a, double b)
{
    int n;
    if (!eop_int_exponent(b, &n))
        return pow(a, b);
    if (n == 0)
        return 1.0;
    return n > 0 ? eop_powi(a, n) : 1.0 / eop_powi(a, -n);
}

#endif
