/* kat_fn_parse: parse, fold, recognise polynomials and compile an expression in x into a
 * kat_fn whose evaluation runs the compiled block program. */
#include <string.h>
#include "core/internal.h"
#include "fn/expr_internal.h"
#include "fn/fn_internal.h"

kat_status kat_fn_parse(const char *expr, kat_fn **out, size_t *err_pos)
{
    if (!expr)
        return kat__fail(KAT_EINVAL, "fn_parse: expr is NULL");
    if (!out)
        return kat__fail(KAT_EINVAL, "fn_parse: out is NULL");
    /* strnlen: never read past the limit of a huge (or unterminated-looking) input. */
    size_t len = strnlen(expr, EXPR_MAX_LENGTH + 1);
    if (len > EXPR_MAX_LENGTH) {
        if (err_pos)
            *err_pos = EXPR_MAX_LENGTH;
        return kat__fail(KAT_EPARSE, "column %u: expression longer than %u bytes",
                        EXPR_MAX_LENGTH + 1, EXPR_MAX_LENGTH);
    }

    expr_tree tree = {0};
    kat_status st = kat__expr_parse(expr, len, &tree, err_pos);
    if (st != KAT_OK)
        return st;
    kat__expr_fold(&tree);

    double *coef = NULL;
    size_t ncoef = 0;
    expr_prog *prog = NULL;
    struct kat_fn *f = NULL;
    st = kat__expr_poly(&tree, &coef, &ncoef);
    if (st == KAT_OK)
        st = kat__expr_compile(&tree, &prog);
    if (st == KAT_OK) {
        f = kat__fn_new(FN_EXPR, expr);
        if (!f)
            st = KAT_ENOMEM;
    }
    kat_free(tree.nodes);
    if (st != KAT_OK) {
        kat_free(coef);
        kat__expr_prog_free(prog);
        return st;
    }
    f->coef = coef;
    f->ncoef = ncoef;
    f->prog = prog;
    f->prog_eval = kat__expr_prog_eval;
    f->prog_free = kat__expr_prog_free;
    *out = f;
    return KAT_OK;
}
