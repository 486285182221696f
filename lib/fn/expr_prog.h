/* The compiled form of an expression, shared by the compiler (expr_compile.c) and the block
 * evaluator (expr_eval.c). */
#ifndef KAT_EXPR_PROG_H
#define KAT_EXPR_PROG_H

#include "fn/expr_internal.h"

/* Register file budget: registers x block length fit in this many doubles (32 KiB) on the
 * evaluating thread's stack. */
#define EXPR_SCRATCH_DOUBLES 4096
#define EXPR_BLOCK 256

/* Instruction opcodes: the expression operators plus a few lowered forms. */
enum {
    IOP_COPY = EOP_COUNT,   /* dst = a */
    IOP_FILL,               /* dst = c */
    IOP_POWI,               /* dst = a^n, 1 <= n <= EXPR_MAX_INT_POWER, by multiplications */
    IOP_RPOWI,              /* dst = 1 / a^n */
};

/* Operand forms of a binary instruction. */
enum { FORM_BB, FORM_BC, FORM_CB };

/* Operand and destination references. */
#define REF_X (-1)     /* the input block */
#define REF_OUT (-2)   /* the output block (only the last instruction writes it) */

typedef struct {
    int op;
    int form;
    int32_t dst, a, b;   /* registers, REF_X or REF_OUT; unused operands are 0 */
    double c;            /* the constant operand of FORM_BC / FORM_CB, or IOP_FILL's value */
    int n;               /* IOP_POWI / IOP_RPOWI exponent */
} expr_instr;

struct expr_prog {
    expr_instr *code;
    size_t ninstr;
    size_t nregs;
    size_t block;   /* values per instruction; nregs * block <= EXPR_SCRATCH_DOUBLES */
};

/* Scalar value of a unary or binary operator applied to constants (the folder's semantics,
 * identical to the evaluator's). For EOP_POW the exponent is taken as a constant. */
double kat__expr_apply_unary(int op, double a);
double kat__expr_apply_binary(int op, double a, double b);

#endif
