/* Polynomial recognition: exact coefficient algebra on the folded syntax tree. A node is a
 * polynomial when it is a (finite) constant, x, or -, +, -, * of polynomials, a polynomial
 * divided by a non-zero constant, or a polynomial raised to a non-negative integer constant,
 * with every intermediate degree at most EXPR_MAX_POLY_DEGREE. Anything else that depends
 * on x (exp, x^1.5, max, comparisons, division by x) is not. */
#include <math.h>
#include <string.h>
#include "core/internal.h"
#include "fn/expr_ops.h"

typedef struct {
    double *c;   /* kat__alloc_array, at least deg + 1 entries; NULL: not a polynomial */
    int deg;
} poly;

static int trim(const double *c, int deg)
{
    while (deg > 0 && c[deg] == 0.0)
        deg--;
    return deg;
}

static double *new_coef(int deg)
{
    return kat__alloc_array((size_t)deg + 1, sizeof(double), "polynomial coefficients");
}

/* r = a * b (degrees already checked); NULL on allocation failure. */
static double *multiply(const poly *a, const poly *b)
{
    double *r = new_coef(a->deg + b->deg);
    if (!r)
        return NULL;
    memset(r, 0, ((size_t)a->deg + b->deg + 1) * sizeof *r);
    for (int i = 0; i <= a->deg; i++)
        for (int j = 0; j <= b->deg; j++)
            r[i + j] += a->c[i] * b->c[j];
    return r;
}

/* Compute node i's polynomial from its operands' (which it consumes). Returns KAT_ENOMEM
 * or KAT_OK; *out->c stays NULL when the node is not a polynomial. */
static kat_status node_poly(const expr_tree *tree, size_t i, poly *polys, poly *out)
{
    const expr_node *nd = &tree->nodes[i];
    *out = (poly){NULL, 0};
    if (nd->is_const || nd->op == EOP_X) {
        if (nd->is_const && !isfinite(nd->value))
            return KAT_OK;
        int deg = nd->is_const ? 0 : 1;
        out->c = new_coef(deg);
        if (!out->c)
            return KAT_ENOMEM;
        out->deg = deg;
        out->c[0] = nd->is_const ? nd->value : 0.0;
        if (deg)
            out->c[1] = 1.0;
        return KAT_OK;
    }
    poly *a = &polys[nd->a];
    if (!a->c)
        return KAT_OK;
    switch (nd->op) {
    case EOP_NEG:
        for (int t = 0; t <= a->deg; t++)
            a->c[t] = 0.0 - a->c[t];   /* not -c: no negative zeros in the result */
        *out = *a;   /* take over the operand's buffer */
        a->c = NULL;
        return KAT_OK;
    case EOP_IDENTITY:
        *out = *a;
        a->c = NULL;
        return KAT_OK;
    case EOP_ADD:
    case EOP_SUB: {
        poly *b = &polys[nd->b];
        if (!b->c)
            return KAT_OK;
        int deg = a->deg > b->deg ? a->deg : b->deg;
        double *r = new_coef(deg);
        if (!r)
            return KAT_ENOMEM;
        for (int t = 0; t <= deg; t++) {
            double u = t <= a->deg ? a->c[t] : 0.0, v = t <= b->deg ? b->c[t] : 0.0;
            r[t] = nd->op == EOP_ADD ? u + v : u - v;
        }
        *out = (poly){r, trim(r, deg)};
        return KAT_OK;
    }
    case EOP_MUL: {
        poly *b = &polys[nd->b];
        if (!b->c || a->deg + b->deg > EXPR_MAX_POLY_DEGREE)
            return KAT_OK;
        double *r = multiply(a, b);
        if (!r)
            return KAT_ENOMEM;
        *out = (poly){r, trim(r, a->deg + b->deg)};
        return KAT_OK;
    }
    case EOP_DIV: {
        const expr_node *b = &tree->nodes[nd->b];
        if (!b->is_const || b->value == 0.0 || !isfinite(b->value))
            return KAT_OK;
        for (int t = 0; t <= a->deg; t++)
            a->c[t] /= b->value;
        *out = *a;
        a->c = NULL;
        return KAT_OK;
    }
    case EOP_POW: {
        const expr_node *b = &tree->nodes[nd->b];
        double p = b->value;
        if (!b->is_const || !(p >= 0.0) || p != floor(p))
            return KAT_OK;
        if (a->deg == 0) {
            /* A base that depends on x only formally, like (x - x). */
            *out = *a;
            a->c = NULL;
            out->c[0] = eop_pow_const(out->c[0], p);
            return KAT_OK;
        }
        if (p > EXPR_MAX_POLY_DEGREE || a->deg * (int)p > EXPR_MAX_POLY_DEGREE)
            return KAT_OK;
        /* p >= 1 here (p == 0 was folded to the constant 1). */
        poly acc = {new_coef(a->deg), a->deg};
        if (!acc.c)
            return KAT_ENOMEM;
        memcpy(acc.c, a->c, ((size_t)a->deg + 1) * sizeof *acc.c);
        for (int k = 1; k < (int)p; k++) {
            double *r = multiply(&acc, a);
            if (!r) {
                kat_free(acc.c);
                return KAT_ENOMEM;
            }
            int deg = trim(r, acc.deg + a->deg);
            kat_free(acc.c);
            acc = (poly){r, deg};
        }
        *out = acc;
        return KAT_OK;
    }
    default:
        return KAT_OK;   /* a function of x or a comparison: not a polynomial */
    }
}

kat_status kat__expr_poly(const expr_tree *tree, double **coef, size_t *ncoef)
{
    *coef = NULL;
    *ncoef = 0;
    poly *polys = kat_calloc(tree->count, sizeof *polys);
    if (!polys)
        return KAT_ENOMEM;
    kat_status st = KAT_OK;
    for (size_t i = 0; i < tree->count && st == KAT_OK; i++) {
        const expr_node *nd = &tree->nodes[i];
        st = node_poly(tree, i, polys, &polys[i]);
        /* Operands are consumed (each node has one parent), also under a folded constant. */
        if (expr_op_arity(nd->op) >= 1) {
            kat_free(polys[nd->a].c);
            polys[nd->a].c = NULL;
            if (expr_op_arity(nd->op) == 2) {
                kat_free(polys[nd->b].c);
                polys[nd->b].c = NULL;
            }
        }
    }
    poly *root = &polys[tree->count - 1];
    if (st == KAT_OK && root->c) {
        root->deg = trim(root->c, root->deg);   /* a division may have underflowed to 0 */
        int ok = 1;
        for (int t = 0; t <= root->deg; t++)
            ok &= isfinite(root->c[t]) != 0;
        if (ok) {
            *coef = root->c;
            *ncoef = (size_t)root->deg + 1;
            root->c = NULL;
        }
    }
    for (size_t i = 0; i < tree->count; i++)
        kat_free(polys[i].c);
    kat_free(polys);
    return st;
}
