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
    /* the operations of fn/expr_ops.def */
#define EXPR_OP(ID, name, arity, value) EOP_##ID,
#include "fn/expr_ops.def"
#undef EXPR_OP
    EOP_COUNT
} expr_op;

/* 0 for the leaves, else the operation's arity in fn/expr_ops.def. */
static inline int expr_op_arity(expr_op op)
{
    static const unsigned char arity[EOP_COUNT] = {
        0, 0,
#define EXPR_OP(ID, name, ar, value) ar,
#include "fn/expr_ops.def"
#undef EXPR_OP
    };
    return (unsigned)op < EOP_COUNT ? arity[op] : 0;
}

/* The function name of an operation ("" for the leaves and the symbol operators). */
static inline const char *expr_op_name(expr_op op)
{
    static const char *const names[EOP_COUNT] = {
        "", "",
#define EXPR_OP(ID, name, ar, value) name,
#include "fn/expr_ops.def"
#undef EXPR_OP
    };
    return (unsigned)op < EOP_COUNT ? names[op] : "";
}

/* The operation called name (n bytes) in kat_fn_parse's function syntax, or EOP_COUNT. */
expr_op kat__expr_op_lookup(const char *name, size_t n);

typedef struct {
    expr_op op;
    int32_t a, b;    /* operand node indices (-1 when absent) */
    double value;    /* EOP_CONST: the value; after folding, the value of any x-free node */
    uint8_t is_const;   /* set by folding: the subtree does not depend on x */
} expr_node;

typedef struct {
    expr_node *nodes;   /* kat__alloc_array; topological order, root last */
    size_t count;
} expr_tree;

/* Parse src (length len, already checked against EXPR_MAX_LENGTH) into *tree. On a syntax
 * error returns KAT_EPARSE with kat_last_error() = "column C: reason" and *err_pos = C - 1. */
kat_status kat__expr_parse(const char *src, size_t len, expr_tree *tree, size_t *err_pos);

/* Mark x-free subtrees constant and compute their values with the evaluator's own scalar
 * semantics, so a folded result has the same bits as evaluating it at run time. */
void kat__expr_fold(expr_tree *tree);

/* Polynomial recognition on a folded tree. Returns KAT_OK and sets *coef (kat__alloc_array,
 * trailing zeros trimmed) and *ncoef when the root is a polynomial of degree <=
 * EXPR_MAX_POLY_DEGREE with finite coefficients; KAT_OK with *coef = NULL when it is not;
 * KAT_ENOMEM on allocation failure. */
kat_status kat__expr_poly(const expr_tree *tree, double **coef, size_t *ncoef);

/* The compiled program: a flat list of block instructions over registers. */
typedef struct expr_prog expr_prog;
kat_status kat__expr_compile(const expr_tree *tree, expr_prog **out);
void kat__expr_prog_eval(const void *prog, const double *x, double *y, size_t n);
void kat__expr_prog_free(void *prog);
/* Introspection for tests and benchmarks: instruction count, registers, block length. */
void kat__expr_prog_shape(const expr_prog *prog, size_t *ninstr, size_t *nregs, size_t *block);

#endif
