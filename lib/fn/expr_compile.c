/* The expression compiler: constant folding, then a flat instruction list over block
 * registers. Operands are ordered Sethi-Ullman style (the operand that needs more registers
 * is computed first), so even a 64 KiB expression needs only a handful of registers. */
#include <string.h>
#include "core/internal.h"
#include "fn/expr_ops.h"
#include "fn/expr_prog.h"

double kat__expr_apply_unary(int op, double a)
{
    return kat__expr_apply_binary(op, a, 0.0);
}

double kat__expr_apply_binary(int op, double a, double b)
{
    if (op == EOP_POW)   /* a constant exponent: as the program computes it */
        return eop_pow_const(a, b);
    switch (op) {
#define EXPR_OP(ID, name, arity, value)                                                         \
    case EOP_##ID:                                                                              \
        return eop_##ID(a, b);
#include "fn/expr_ops.def"
#undef EXPR_OP
    default:
        return a;
    }
}

void kat__expr_fold(expr_tree *tree)
{
    for (size_t i = 0; i < tree->count; i++) {
        expr_node *nd = &tree->nodes[i];
        switch (expr_op_arity(nd->op)) {
        case 0:
            nd->is_const = nd->op == EOP_CONST;
            break;
        case 1: {
            const expr_node *a = &tree->nodes[nd->a];
            nd->is_const = a->is_const;
            if (nd->is_const)
                nd->value = kat__expr_apply_unary(nd->op, a->value);
            break;
        }
        default: {
            const expr_node *a = &tree->nodes[nd->a], *b = &tree->nodes[nd->b];
            nd->is_const = a->is_const && b->is_const;
            if (nd->is_const) {
                nd->value = kat__expr_apply_binary(nd->op, a->value, b->value);
            } else if (nd->op == EOP_POW && b->is_const && b->value == 0.0) {
                /* a^0 is 1 for every a, NaN included (as pow defines it). */
                nd->is_const = 1;
                nd->value = 1.0;
            }
            break;
        }
        }
    }
}

/* A node whose value is computed by an instruction (not a constant and not x itself). */
static int computed(const expr_node *nd) { return !nd->is_const && nd->op != EOP_X; }

typedef struct {
    const expr_tree *tree;
    expr_instr *code;
    size_t ninstr;
    int32_t *reg_of;      /* result register of each computed node */
    int32_t *free_regs;   /* stack of released registers */
    size_t nfree;
    int32_t nregs;        /* registers created so far */
} emitter;

static int32_t operand_ref(emitter *em, int32_t child)
{
    return em->tree->nodes[child].op == EOP_X ? REF_X : em->reg_of[child];
}

static void release(emitter *em, int32_t ref)
{
    if (ref >= 0)
        em->free_regs[em->nfree++] = ref;
}

static int32_t acquire(emitter *em)
{
    return em->nfree ? em->free_regs[--em->nfree] : em->nregs++;
}

/* Emit the instruction for computed node i, whose computed operands already sit in
 * registers; the root writes the output block. */
static void emit_node(emitter *em, int32_t i, int is_root)
{
    const expr_node *nd = &em->tree->nodes[i];
    expr_instr in = {.op = nd->op, .form = FORM_BB};
    if (expr_op_arity(nd->op) == 1) {
        in.a = operand_ref(em, nd->a);
        release(em, in.a);
    } else {
        const expr_node *a = &em->tree->nodes[nd->a], *b = &em->tree->nodes[nd->b];
        int n;
        if (nd->op == EOP_POW && b->is_const && eop_int_exponent(b->value, &n)) {
            /* Integer exponent: multiplications (n == 0 was folded to 1 already). */
            in.op = n > 0 ? IOP_POWI : IOP_RPOWI;
            in.n = n > 0 ? n : -n;
            in.a = operand_ref(em, nd->a);
            release(em, in.a);
        } else if (b->is_const) {
            in.form = FORM_BC;
            in.c = b->value;
            int e;
            if (nd->op == EOP_DIV && fabs(frexp(in.c, &e)) == 0.5 && isfinite(1.0 / in.c) &&
                fabs(frexp(1.0 / in.c, &e)) == 0.5) {
                /* Division by a power of two is multiplication by its exact reciprocal:
                 * the same correctly rounded result, without the slow divide. */
                in.op = EOP_MUL;
                in.c = 1.0 / in.c;
            }
            in.a = operand_ref(em, nd->a);
            release(em, in.a);
        } else if (a->is_const) {
            in.form = FORM_CB;
            in.c = a->value;
            in.b = operand_ref(em, nd->b);
            release(em, in.b);
        } else {
            in.a = operand_ref(em, nd->a);
            in.b = operand_ref(em, nd->b);
            release(em, in.a);
            if (in.b != in.a)
                release(em, in.b);
        }
    }
    in.dst = is_root ? REF_OUT : acquire(em);
    em->reg_of[i] = in.dst;
    em->code[em->ninstr++] = in;
}

kat_status kat__expr_compile(const expr_tree *tree, expr_prog **out)
{
    const size_t count = tree->count;
    const int32_t root = (int32_t)count - 1;
    const expr_node *nodes = tree->nodes;
    struct expr_prog *prog = kat_calloc(1, sizeof *prog);
    if (!prog)
        return KAT_ENOMEM;
    prog->code = kat__alloc_array(count, sizeof *prog->code, "expression program");
    int32_t *need = kat__alloc_array(count, sizeof *need, "expression register needs");
    int32_t *reg_of = kat__alloc_array(count, sizeof *reg_of, "expression registers");
    int32_t *free_regs = kat__alloc_array(count + 1, sizeof *free_regs, "expression registers");
    int32_t *stack = kat__alloc_array(count, sizeof *stack, "expression compile stack");
    uint8_t *expanded = kat_calloc(count, 1);
    kat_status st = KAT_OK;
    if (!prog->code || !need || !reg_of || !free_regs || !stack || !expanded) {
        st = KAT_ENOMEM;
        goto done;
    }

    if (!computed(&nodes[root])) {
        /* The whole expression is x or a constant. */
        prog->code[0] = (expr_instr){.op = nodes[root].op == EOP_X ? IOP_COPY : IOP_FILL,
                                     .dst = REF_OUT, .a = REF_X, .c = nodes[root].value};
        prog->ninstr = 1;
    } else {
        /* Registers each node needs (Sethi-Ullman numbers), in topological order. */
        for (size_t i = 0; i < count; i++) {
            const expr_node *nd = &nodes[i];
            if (!computed(nd)) {
                need[i] = 0;
            } else if (expr_op_arity(nd->op) == 1) {
                need[i] = need[nd->a] > 1 ? need[nd->a] : 1;
            } else {
                int32_t la = need[nd->a], lb = need[nd->b];
                int32_t first = la >= lb ? la : lb, second = la >= lb ? lb : la;
                int32_t held = first > 0 ? 1 : 0;
                int32_t r = first > second + held ? first : second + held;
                need[i] = r > 1 ? r : 1;
            }
        }
        /* Post-order walk with an explicit stack; the hungrier operand goes first. */
        emitter em = {.tree = tree, .code = prog->code, .reg_of = reg_of,
                      .free_regs = free_regs};
        size_t sp = 0;
        stack[sp++] = root;
        while (sp) {
            int32_t i = stack[sp - 1];
            const expr_node *nd = &nodes[i];
            if (expanded[i]) {
                sp--;
                emit_node(&em, i, i == root);
                continue;
            }
            expanded[i] = 1;
            int32_t first = nd->a, second = nd->b;
            if (expr_op_arity(nd->op) == 2 && need[nd->b] > need[nd->a]) {
                first = nd->b;
                second = nd->a;
            }
            /* Push the second operand below the first so the first is computed first. */
            if (expr_op_arity(nd->op) == 2 && computed(&nodes[second]))
                stack[sp++] = second;
            if (computed(&nodes[first]))
                stack[sp++] = first;
        }
        prog->ninstr = em.ninstr;
        prog->nregs = (size_t)em.nregs;
    }
    if (prog->nregs * EXPR_BLOCK <= EXPR_SCRATCH_DOUBLES) {
        prog->block = EXPR_BLOCK;
    } else if (prog->nregs <= EXPR_SCRATCH_DOUBLES) {
        /* Unreachable in practice (registers grow with log2 of the size), but keep the
         * register file within the stack budget by shortening the blocks. */
        prog->block = EXPR_SCRATCH_DOUBLES / prog->nregs;
    } else {
        st = kat__fail(KAT_ERANGE, "fn_parse: expression needs %zu block registers (limit %d)",
                      prog->nregs, EXPR_SCRATCH_DOUBLES);
    }

done:
    kat_free(need);
    kat_free(reg_of);
    kat_free(free_regs);
    kat_free(stack);
    kat_free(expanded);
    if (st != KAT_OK) {
        kat__expr_prog_free(prog);
        return st;
    }
    *out = prog;
    return KAT_OK;
}
