/* The block evaluator: runs the flat instruction list on blocks of up to EXPR_BLOCK values,
 * one tight loop per instruction, with the register file on the caller's stack (so any number
 * of threads may evaluate one program at once). */
#include <string.h>
#include "core/internal.h"
#include "fn/expr_ops.h"
#include "fn/expr_prog.h"

/* Each loop is element-wise: d[i] depends only on a[i] and b[i], so d may alias a or b (the
 * output block may be the input when the caller passes x == y). EXPR_IVDEP tells the
 * vectoriser that this exact aliasing is safe (clang checks aliasing at run time itself and
 * would warn on the loops it cannot vectorise). */
#if defined(__GNUC__) && !defined(__clang__)
#define EXPR_IVDEP _Pragma("GCC ivdep")
#else
#define EXPR_IVDEP
#endif
#define UNARY_LOOP(F)                                                                           \
    static void loop_##F(double *d, const double *a, size_t n)                                 \
    {                                                                                           \
        EXPR_IVDEP for (size_t i = 0; i < n; i++) d[i] = F(a[i]);                     \
    }
#define BINARY_LOOPS(F)                                                                         \
    static void loop_##F##_bb(double *d, const double *a, const double *b, size_t n)           \
    {                                                                                           \
        EXPR_IVDEP for (size_t i = 0; i < n; i++) d[i] = F(a[i], b[i]);               \
    }                                                                                           \
    static void loop_##F##_bc(double *d, const double *a, double c, size_t n)                  \
    {                                                                                           \
        EXPR_IVDEP for (size_t i = 0; i < n; i++) d[i] = F(a[i], c);                  \
    }                                                                                           \
    static void loop_##F##_cb(double *d, double c, const double *b, size_t n)                  \
    {                                                                                           \
        EXPR_IVDEP for (size_t i = 0; i < n; i++) d[i] = F(c, b[i]);                  \
    }

UNARY_LOOP(eop_neg)
UNARY_LOOP(eop_exp)
UNARY_LOOP(eop_log)
UNARY_LOOP(eop_log1p)
UNARY_LOOP(eop_expm1)
UNARY_LOOP(eop_sqrt)
UNARY_LOOP(eop_abs)
UNARY_LOOP(eop_sin)
UNARY_LOOP(eop_cos)
UNARY_LOOP(eop_tan)
UNARY_LOOP(eop_tanh)
UNARY_LOOP(eop_sigmoid)
UNARY_LOOP(eop_relu)
UNARY_LOOP(eop_gelu)
UNARY_LOOP(eop_erf)
UNARY_LOOP(eop_sign)
UNARY_LOOP(eop_floor)
UNARY_LOOP(eop_ceil)
UNARY_LOOP(eop_indicator)

BINARY_LOOPS(eop_add)
BINARY_LOOPS(eop_sub)
BINARY_LOOPS(eop_mul)
BINARY_LOOPS(eop_div)
BINARY_LOOPS(eop_pow)
BINARY_LOOPS(eop_max)
BINARY_LOOPS(eop_min)
BINARY_LOOPS(eop_eq)
BINARY_LOOPS(eop_ne)
BINARY_LOOPS(eop_lt)
BINARY_LOOPS(eop_le)
BINARY_LOOPS(eop_gt)
BINARY_LOOPS(eop_ge)

/* d = a^n by binary powering, the same operation sequence as eop_powi for every element, so
 * the block result matches the folded scalar bit for bit. */
static void loop_powi(double *d, const double *a, int n, int reciprocal, size_t len)
{
    /* The common small powers in one vectorisable pass (same products as eop_powi). */
    if (!reciprocal && n <= 4) {
        switch (n) {
        case 1:
            if (d != a)
                memmove(d, a, len * sizeof *d);
            return;
        case 2:
            EXPR_IVDEP for (size_t i = 0; i < len; i++) d[i] = a[i] * a[i];
            return;
        case 3:
            EXPR_IVDEP for (size_t i = 0; i < len; i++) d[i] = a[i] * (a[i] * a[i]);
            return;
        default: /* 4 */
            EXPR_IVDEP for (size_t i = 0; i < len; i++) {
                double s = a[i] * a[i];
                d[i] = s * s;
            }
            return;
        }
    }
    double base[EXPR_BLOCK], acc[EXPR_BLOCK];
    memcpy(base, a, len * sizeof *base);
    int first = 1;
    while (n > 0) {
        if (n & 1) {
            if (first)
                memcpy(acc, base, len * sizeof *acc);
            else
                for (size_t i = 0; i < len; i++)
                    acc[i] *= base[i];
            first = 0;
        }
        n >>= 1;
        if (n)
            for (size_t i = 0; i < len; i++)
                base[i] *= base[i];
    }
    if (reciprocal)
        for (size_t i = 0; i < len; i++)
            d[i] = 1.0 / acc[i];
    else
        memcpy(d, acc, len * sizeof *d);
}

#define UNARY_CASE(OP, F)                                                                       \
    case OP:                                                                                    \
        loop_##F(d, a, len);                                                                    \
        break;
#define BINARY_CASE(OP, F)                                                                      \
    case OP:                                                                                    \
        if (in->form == FORM_BB)                                                                \
            loop_##F##_bb(d, a, b, len);                                                        \
        else if (in->form == FORM_BC)                                                           \
            loop_##F##_bc(d, a, in->c, len);                                                    \
        else                                                                                    \
            loop_##F##_cb(d, in->c, b, len);                                                    \
        break;

static void run_instr(const expr_instr *in, double *d, const double *a, const double *b,
                      size_t len)
{
    switch (in->op) {
        UNARY_CASE(EOP_NEG, eop_neg)
        UNARY_CASE(EOP_EXP, eop_exp)
        UNARY_CASE(EOP_LOG, eop_log)
        UNARY_CASE(EOP_LOG1P, eop_log1p)
        UNARY_CASE(EOP_EXPM1, eop_expm1)
        UNARY_CASE(EOP_SQRT, eop_sqrt)
        UNARY_CASE(EOP_ABS, eop_abs)
        UNARY_CASE(EOP_SIN, eop_sin)
        UNARY_CASE(EOP_COS, eop_cos)
        UNARY_CASE(EOP_TAN, eop_tan)
        UNARY_CASE(EOP_TANH, eop_tanh)
        UNARY_CASE(EOP_SIGMOID, eop_sigmoid)
        UNARY_CASE(EOP_RELU, eop_relu)
        UNARY_CASE(EOP_GELU, eop_gelu)
        UNARY_CASE(EOP_ERF, eop_erf)
        UNARY_CASE(EOP_SIGN, eop_sign)
        UNARY_CASE(EOP_FLOOR, eop_floor)
        UNARY_CASE(EOP_CEIL, eop_ceil)
        UNARY_CASE(EOP_INDICATOR, eop_indicator)
        BINARY_CASE(EOP_ADD, eop_add)
        BINARY_CASE(EOP_SUB, eop_sub)
        BINARY_CASE(EOP_MUL, eop_mul)
        BINARY_CASE(EOP_DIV, eop_div)
        BINARY_CASE(EOP_POW, eop_pow)
        BINARY_CASE(EOP_MAX, eop_max)
        BINARY_CASE(EOP_MIN, eop_min)
        BINARY_CASE(EOP_EQ, eop_eq)
        BINARY_CASE(EOP_NE, eop_ne)
        BINARY_CASE(EOP_LT, eop_lt)
        BINARY_CASE(EOP_LE, eop_le)
        BINARY_CASE(EOP_GT, eop_gt)
        BINARY_CASE(EOP_GE, eop_ge)
    case IOP_COPY:
        if (d != a)
            memmove(d, a, len * sizeof *d);
        break;
    case IOP_FILL:
        for (size_t i = 0; i < len; i++)
            d[i] = in->c;
        break;
    case IOP_POWI:
    case IOP_RPOWI:
        loop_powi(d, a, in->n, in->op == IOP_RPOWI, len);
        break;
    }
}

void expr_prog_eval(const void *vprog, const double *x, double *y, size_t n)
{
    const struct expr_prog *prog = vprog;
    double regs[EXPR_SCRATCH_DOUBLES] __attribute__((aligned(64)));
    const size_t B = prog->block;
    for (size_t off = 0; off < n; off += B) {
        size_t len = n - off < B ? n - off : B;
        const double *xb = x + off;
        double *yb = y + off;
        for (size_t k = 0; k < prog->ninstr; k++) {
            const expr_instr *in = &prog->code[k];
            double *d = in->dst == REF_OUT ? yb : regs + (size_t)in->dst * B;
            const double *a = in->a == REF_X ? xb : regs + (size_t)in->a * B;
            const double *b = in->b == REF_X ? xb : regs + (size_t)in->b * B;
            run_instr(in, d, a, b, len);
        }
    }
}

void expr_prog_free(void *vprog)
{
    struct expr_prog *prog = vprog;
    if (!prog)
        return;
    kat_free(prog->code);
    kat_free(prog);
}

void expr_prog_shape(const expr_prog *prog, size_t *ninstr, size_t *nregs, size_t *block)
{
    if (ninstr)
        *ninstr = prog->ninstr;
    if (nregs)
        *nregs = prog->nregs;
    if (block)
        *block = prog->block;
}
