/* The expression compiler's private interface: the syntax tree the parser builds, the passes
 * that fold constants and recognise polynomials, and the compiled block program.
 *
 * The parser appends a node only after its operands, so the node array is in topological
 * order (operands at lower indices). Every later pass is a loop over that array: no pass
 * recurses over the tree, and the only recursion (the parser's) is bounded by EXPR_MAX_DEPTH. */
#ifndef KAT_EXPR_INTERNAL_H
#define KAT_EXPR_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include "kat/core.h"

#define EXPR_MAX_LENGTH 65536u   /* bytes of source text */
#define EXPR_MAX_DEPTH 256       /* nesting of parentheses, calls, signs and exponents */
#define EXPR_MAX_POLY_DEGREE 64  /* highest degree recognised as a polynomial */
#define EXPR_MAX_INT_POWER 64    /* x^n with integer |n| up to this uses multiplications */

typedef enum {
    /* leaves */
    EOP_CONST,
    EOP_X,
    /* unary */
    EOP_NEG,
    EOP_EXP,
    EOP_LOG,
    EOP_LOG1P,
    EOP_EXPM1,
    EOP_SQRT,
    EOP_ABS,
    EOP_SIN,
    EOP_COS,
    EOP_TAN,
    EOP_TANH,
    EOP_SIGMOID,
    EOP_RELU,
    EOP_GELU,
    EOP_ERF,
    EOP_SIGN,
    EOP_FLOOR,
    EOP_CEIL,
    EOP_INDICATOR,
    /* binary */
    EOP_ADD,
    EOP_SUB,
    EOP_MUL,
    EOP_DIV,
    EOP_POW,
    EOP_MAX,
    EOP_MIN,
    EOP_EQ,
    EOP_NE,
    EOP_LT,
    EOP_LE,
    EOP_GT,
    EOP_GE,
    EOP_COUNT
} expr_op;

#define EOP_FIRST_UNARY EOP_NEG
#define EOP_FIRST_BINARY EOP_ADD

static inline int expr_op_arity(expr_op op)
{
    return op >= EOP_FIRST_BINARY ? 2 : op >= EOP_FIRST_UNARY ? 1 : 0;
}

typedef struct {
    expr_op op;
    int32_t a, b;    /* operand node indices (-1 when absent) */
    double value;    /* EOP_CONST: the value; after folding, the value of any x-free node */
    uint8_t is_const;   /* set by folding: the subtree does not depend on x */
} expr_node;

typedef struct {
    expr_node *nodes;   /* kat_alloc_array; topological order, root last */
    size_t count;
} expr_tree;

/* Parse src (length len, already checked against EXPR_MAX_LENGTH) into *tree. On a syntax
 * error returns KAT_EPARSE with kat_last_error() = "column C: reason" and *err_pos = C - 1. */
kat_status expr_parse(const char *src, size_t len, expr_tree *tree, size_t *err_pos);

/* Mark x-free subtrees constant and compute their values with the evaluator's own scalar
 * semantics, so a folded result has the same bits as evaluating it at run time. */
void expr_fold(expr_tree *tree);

/* Polynomial recognition on a folded tree. Returns KAT_OK and sets *coef (kat_alloc_array,
 * trailing zeros trimmed) and *ncoef when the root is a polynomial of degree <=
 * EXPR_MAX_POLY_DEGREE with finite coefficients; KAT_OK with *coef = NULL when it is not;
 * KAT_ENOMEM on allocation failure. */
kat_status expr_poly(const expr_tree *tree, double **coef, size_t *ncoef);

/* The compiled program: a flat list of block instructions over registers. */
typedef struct expr_prog expr_prog;
kat_status expr_compile(const expr_tree *tree, expr_prog **out);
void expr_prog_eval(const void *prog, const double *x, double *y, size_t n);
void expr_prog_free(void *prog);
/* Introspection for tests and benchmarks: instruction count, registers, block length. */
void expr_prog_shape(const expr_prog *prog, size_t *ninstr, size_t *nregs, size_t *block);

#endif
