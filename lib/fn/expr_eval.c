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
/* Three loops per operation: block-block, block-constant and constant-block operands (a
 * unary operation runs the block-constant one, its b unused). */
#define EXPR_OP(ID, name, arity, value)                                                         \
    static inline void loop_##ID##_bb(double *d, const double *a, const double *b, size_t n)   \
    {                                                                                           \
        EXPR_IVDEP for (size_t i = 0; i < n; i++) d[i] = eop_##ID(a[i], b[i]);                 \
    }                                                                                           \
    static inline void loop_##ID##_bc(double *d, const double *a, double c, size_t n)          \
    {                                                                                           \
        EXPR_IVDEP for (size_t i = 0; i < n; i++) d[i] = eop_##ID(a[i], c);                    \
    }                                                                                           \
    static inline void loop_##ID##_cb(double *d, double c, const double *b, size_t n)          \
    {                                                                                           \
        EXPR_IVDEP for (size_t i = 0; i < n; i++) d[i] = eop_##ID(c, b[i]);                    \
    }
#include "fn/expr_ops.def"
#undef EXPR_OP

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

static void run_instr(const expr_instr *in, double *d, const double *a, const double *b,
                      size_t len)
{
    switch (in->op) {
#define EXPR_OP(ID, name, arity, value)                                                         \
    case EOP_##ID:                                                                              \
        if (arity == 1 || in->form == FORM_BC)                                                  \
            loop_##ID##_bc(d, a, in->c, len);                                                   \
        else if (in->form == FORM_BB)                                                           \
            loop_##ID##_bb(d, a, b, len);                                                       \
        else                                                                                    \
            loop_##ID##_cb(d, in->c, b, len);                                                   \
        break;
#include "fn/expr_ops.def"
#undef EXPR_OP
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

void kat__expr_prog_eval(const void *vprog, const double *x, double *y, size_t n)
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

void kat__expr_prog_free(void *vprog)
{
    struct expr_prog *prog = vprog;
    if (!prog)
        return;
    kat_free(prog->code);
    kat_free(prog);
}

void kat__expr_prog_shape(const expr_prog *prog, size_t *ninstr, size_t *nregs, size_t *block)
{
    if (ninstr)
        *ninstr = prog->ninstr;
    if (nregs)
        *nregs = prog->nregs;
    if (block)
        *block = prog->block;
}
