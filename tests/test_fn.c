/* Entrywise functions: built-ins, polynomials, powers, callbacks. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "testutil.h"
#include "fn/expr_ops.h"

START_TEST(test_builtins_match_libm)
{
    const char *names[] = {"exp", "tanh", "sin", "cos", "abs", "erf", "log1p"};
    double (*ref[])(double) = {exp, tanh, sin, cos, fabs, erf, log1p};
    double x[5] = {-0.5, 0.0, 0.25, 1.0, 3.0}, y[5];
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        kat_fn *f;
        TU_OK(kat_fn_builtin(names[k], &f));
        TU_OK(kat_fn_eval(f, x, y, 5));
        for (int i = 0; i < 5; i++)
            ck_assert_double_eq(y[i], ref[k](x[i]));
        ck_assert_int_eq(kat_fn_poly_degree(f), -1);
        kat_fn_destroy(f);
    }
}
END_TEST

START_TEST(test_builtin_values)
{
    kat_fn *f;
    TU_OK(kat_fn_builtin("relu", &f));
    ck_assert_double_eq(kat_fn_eval1(f, -2.0), 0.0);
    ck_assert_double_eq(kat_fn_eval1(f, 2.5), 2.5);
    kat_fn_destroy(f);
    TU_OK(kat_fn_builtin("sigmoid", &f));
    ck_assert_double_eq_tol(kat_fn_eval1(f, 0.0), 0.5, 1e-15);
    ck_assert_double_eq_tol(kat_fn_eval1(f, -800.0), 0.0, 1e-300);
    ck_assert_double_eq_tol(kat_fn_eval1(f, 800.0), 1.0, 1e-15);
    kat_fn_destroy(f);
    TU_OK(kat_fn_builtin("gelu", &f));
    ck_assert_double_eq_tol(kat_fn_eval1(f, 1.0), 0.8413447460685429, 1e-15);
    kat_fn_destroy(f);
    TU_OK(kat_fn_builtin("indicator", &f));
    ck_assert_double_eq(kat_fn_eval1(f, 0.0), 0.0);
    ck_assert_double_eq(kat_fn_eval1(f, -1e-300), 1.0);
    kat_fn_destroy(f);
}
END_TEST

/* kat_fn_builtin(name) and kat_fn_parse("name(x)") accept the same names: every named
 * one-argument operation of lib/fn/expr_ops.def, with the same values bit for bit; the
 * two-argument ones and unknown names fail in both. */
START_TEST(test_builtin_set_is_parse_set)
{
    static const struct {
        const char *name;
        int arity;
        double (*value)(double, double);
    } ops[] = {
#define EXPR_OP(ID, name, arity, value) {name, arity, eop_##ID},
#include "fn/expr_ops.def"
#undef EXPR_OP
    };
    const double x[7] = {-2.5, -1.0, -0.0, 0.0, 0.3, 1.0, 4.0};
    size_t named = 0;
    for (size_t k = 0; k < sizeof ops / sizeof ops[0]; k++) {
        if (!*ops[k].name)
            continue;
        char src[64];
        kat_fn *b = NULL, *p = NULL;
        if (ops[k].arity == 1) {
            named++;
            snprintf(src, sizeof src, "%s(x)", ops[k].name);
            TU_OK(kat_fn_builtin(ops[k].name, &b));
            TU_OK(kat_fn_parse(src, &p, NULL));
            ck_assert_str_eq(kat_fn_name(b), ops[k].name);
            for (size_t i = 0; i < 7; i++) {
                double yb = kat_fn_eval1(b, x[i]), yp = kat_fn_eval1(p, x[i]);
                double want = ops[k].value(x[i], 0.0);
                ck_assert_msg(memcmp(&yb, &yp, sizeof yb) == 0 &&
                                  memcmp(&yb, &want, sizeof yb) == 0,
                              "%s(%g): builtin %.17g, parse %.17g, table %.17g", ops[k].name,
                              x[i], yb, yp, want);
            }
        } else {
            snprintf(src, sizeof src, "%s(x, 1)", ops[k].name);
            TU_OK(kat_fn_parse(src, &p, NULL));
            char msg[128];
            snprintf(msg, sizeof msg, "fn_builtin: '%s' takes 2 arguments; write an expression "
                     "such as '%s(x, 0)' for kat_fn_parse", ops[k].name, ops[k].name);
            ck_assert_int_eq(kat_fn_builtin(ops[k].name, &b), KAT_EINVAL);
            ck_assert_str_eq(kat_last_error(), msg);
        }
        kat_fn_destroy(b);
        kat_fn_destroy(p);
    }
    ck_assert_uint_ge(named, 19);
    /* the names that differed before the table: log was parsed but not a built-in */
    const char *also[] = {"log", "expm1", "tan", "sign", "floor", "ceil", "identity"};
    for (size_t k = 0; k < sizeof also / sizeof also[0]; k++) {
        kat_fn *f = NULL;
        TU_OK(kat_fn_builtin(also[k], &f));
        kat_fn_destroy(f);
    }
    kat_fn *f = NULL;
    ck_assert_int_eq(kat_fn_builtin("cosh", &f), KAT_EINVAL);
    ck_assert_str_eq(kat_last_error(), "fn_builtin: unknown function name 'cosh'");
    ck_assert_int_eq(kat_fn_parse("cosh(x)", &f, NULL), KAT_EPARSE);
    ck_assert_int_eq(kat_fn_builtin("", &f), KAT_EINVAL);
    ck_assert_ptr_null(f);
    /* identity is still recognised as the polynomial x */
    TU_OK(kat_fn_builtin("identity", &f));
    double c[3];
    ck_assert_int_eq(kat_fn_poly_coeffs(f, c, 3), 1);
    ck_assert(c[0] == 0.0 && c[1] == 1.0);
    kat_fn_destroy(f);
}
END_TEST

START_TEST(test_poly)
{
    kat_fn *f;
    double c[4] = {1, 3, 3, 1}, got[4];   /* (1+x)^3 */
    TU_OK(kat_fn_poly(c, 4, &f));
    ck_assert_int_eq(kat_fn_poly_degree(f), 3);
    ck_assert_int_eq(kat_fn_poly_coeffs(f, got, 4), 3);
    for (int t = 0; t < 4; t++)
        ck_assert_double_eq(got[t], c[t]);
    for (double x = -2; x <= 2; x += 0.25)
        ck_assert_double_eq_tol(kat_fn_eval1(f, x), pow(1 + x, 3), 1e-12);
    kat_fn_destroy(f);
    double z[3] = {2, 0, 0};
    TU_OK(kat_fn_poly(z, 3, &f));
    ck_assert_int_eq(kat_fn_poly_degree(f), 0);   /* trailing zeros dropped */
    kat_fn_destroy(f);
    TU_EXPECT_ERR(kat_fn_poly(c, 0, &f), KAT_EINVAL, "ncoef");
    TU_EXPECT_ERR(kat_fn_poly(NULL, 2, &f), KAT_EINVAL, "coef");
    double nan_c[2] = {1, NAN};
    TU_EXPECT_ERR(kat_fn_poly(nan_c, 2, &f), KAT_EDOM, "coef[1]");
}
END_TEST

START_TEST(test_pow)
{
    kat_fn *f;
    TU_OK(kat_fn_pow(4, &f));
    ck_assert_int_eq(kat_fn_poly_degree(f), 4);
    ck_assert_double_eq(kat_fn_eval1(f, 1.5), pow(1.5, 4));
    kat_fn_destroy(f);
    TU_OK(kat_fn_pow(1.5, &f));
    ck_assert_int_eq(kat_fn_poly_degree(f), -1);
    double x = -1.0, y;
    TU_EXPECT_ERR(kat_fn_eval(f, &x, &y, 1), KAT_EDOM, "x = -1");
    kat_fn_destroy(f);
    TU_EXPECT_ERR(kat_fn_pow(INFINITY, &f), KAT_EDOM, "p");
}
END_TEST

static double scaled_square(double x, void *p) { return *(double *)p * x * x; }

START_TEST(test_callback)
{
    double a = 3.0;
    kat_fn *f;
    TU_OK(kat_fn_callback(scaled_square, NULL, &a, "3x^2", &f));
    ck_assert_str_eq(kat_fn_name(f), "3x^2");
    ck_assert_double_eq(kat_fn_eval1(f, 2.0), 12.0);
    double x[3] = {1, 2, 3};
    TU_OK(kat_fn_eval(f, x, x, 3));   /* in place */
    ck_assert_double_eq(x[2], 27.0);
    kat_fn_destroy(f);
    TU_EXPECT_ERR(kat_fn_callback(NULL, NULL, NULL, "f", &f), KAT_EINVAL, "NULL");
}
END_TEST

START_TEST(test_bad_input)
{
    kat_fn *f = NULL;
    TU_EXPECT_ERR(kat_fn_builtin("nosuchfn", &f), KAT_EINVAL, "nosuchfn");
    ck_assert_ptr_null(f);
    TU_EXPECT_ERR(kat_fn_builtin(NULL, &f), KAT_EINVAL, "name");
    TU_EXPECT_ERR(kat_fn_eval(NULL, NULL, NULL, 1), KAT_EINVAL, "f is NULL");
    TU_OK(kat_fn_builtin("exp", &f));
    double x = 1000.0, y;
    TU_EXPECT_ERR(kat_fn_eval(f, &x, &y, 1), KAT_EDOM, "exp");
    ck_assert_double_eq(x, 1000.0);
    TU_OK(kat_fn_eval(f, NULL, NULL, 0));
    kat_fn_destroy(f);
    kat_fn_destroy(NULL);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("fn");
    TCase *tc = tcase_create("fn");
    tcase_add_test(tc, test_builtins_match_libm);
    tcase_add_test(tc, test_builtin_values);
    tcase_add_test(tc, test_builtin_set_is_parse_set);
    tcase_add_test(tc, test_poly);
    tcase_add_test(tc, test_pow);
    tcase_add_test(tc, test_callback);
    tcase_add_test(tc, test_bad_input);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
