/* Scalar semantics of every expression operator, generated from fn/expr_ops.def. Both the
 * constant folder and the block evaluator use these same inline functions, so a folded
 * constant has exactly the bits the program would compute at run time. */
#ifndef KAT_EXPR_OPS_H
#define KAT_EXPR_OPS_H

#include <math.h>
#include "fn/expr_internal.h"

/* Two branches so neither exp overflows. */
static inline double expr_sigmoid(double a)
{
    if (a >= 0.0)
        return 1.0 / (1.0 + exp(-a));
    double e = exp(a);
    return e / (1.0 + e);
}

/* eop_<ID>(a, b): the value of each operation of fn/expr_ops.def (b unused when unary). */
#define EXPR_OP(ID, name, arity, value)                                                         \
    static inline double eop_##ID(double a, double b)                                          \
    {                                                                                           \
        (void)b;                                                                                \
        return (value);                                                                         \
    }
#include "fn/expr_ops.def"
#undef EXPR_OP

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
