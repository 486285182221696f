/* The expression compiler (kat_fn_parse): grammar and precedence, every function against
 * libm, block evaluation at sizes around the block length and in place, constant folding,
 * register use, polynomial recognition, errors with their columns, limits, allocation
 * failures, threads, and a randomized differential test against an independent evaluator. */
#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "testutil.h"
#include "fn/expr_internal.h"
#include "fn/fn_internal.h"

static kat_fn *parse_ok(const char *s)
{
    kat_fn *f = NULL;
    size_t pos = 12345;
    kat_status st = kat_fn_parse(s, &f, &pos);
    ck_assert_msg(st == KAT_OK, "parse '%s' failed: %s: %s", s, kat_strerror(st),
                  kat_last_error());
    ck_assert_uint_eq(pos, 12345);   /* err_pos untouched on success */
    return f;
}

static double eval_at(const char *s, double x)
{
    kat_fn *f = parse_ok(s);
    double y = kat_fn_eval1(f, x);
    kat_fn_destroy(f);
    return y;
}

/* Bitwise equality that treats every NaN as equal to every NaN. */
static int same(double a, double b)
{
    if (isnan(a) || isnan(b))
        return isnan(a) && isnan(b);
    return memcmp(&a, &b, sizeof a) == 0;
}

static size_t prog_instrs(const kat_fn *f)
{
    size_t n;
    kat__expr_prog_shape(f->prog, &n, NULL, NULL);
    return n;
}

static size_t prog_regs(const kat_fn *f)
{
    size_t r;
    kat__expr_prog_shape(f->prog, NULL, &r, NULL);
    return r;
}

/* ---- the examples of the specification, against hand-written C ------------------------ */

static double ref_exp8(double x) { return exp(x / 8); }
static double ref_relu13(double x) { return x - 1.3 > 0 ? x - 1.3 : 0.0; }
static double ref_pow15(double x) { return pow(x, 1.5); }
static double ref_ne0(double x) { return x != 0; }
static double ref_min1(double x) { return x < 1 ? x : 1; }
static double ref_2pix(double x) { return 2 * M_PI * x; }
static double ref_negsq(double x) { return -(x * x); }

START_TEST(test_spec_examples_bitwise)
{
    const struct {
        const char *src;
        double (*ref)(double);
    } cases[] = {
        {"exp(x/8)", ref_exp8},  {"max(x-1.3, 0)", ref_relu13}, {"x^1.5", ref_pow15},
        {"x != 0", ref_ne0},     {"log1p(x)", log1p},           {"min(x,1)", ref_min1},
        {"e^x", exp},            {"2*pi*x", ref_2pix},          {"-x^2", ref_negsq},
    };
    double xs[] = {0.0, -0.0, 0.3, 1.0, 1.3, 2.5, 7.0, 1e-300, 40.0, 700.0};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        kat_fn *f = parse_ok(cases[k].src);
        ck_assert_str_eq(kat_fn_name(f), cases[k].src);
        for (size_t i = 0; i < sizeof xs / sizeof xs[0]; i++) {
            double y = kat_fn_eval1(f, xs[i]), r = cases[k].ref(xs[i]);
            ck_assert_msg(same(y, r), "%s at %g: %.17g, expected %.17g", cases[k].src, xs[i], y,
                          r);
        }
        kat_fn_destroy(f);
    }
    /* (1+x)^4 by multiplications: the same rounded 1+x, then 2 squarings (relative error
     * <= 3u) against pow's < 1u: within 4u = 2 eps. */
    kat_fn *f = parse_ok("(1+x)^4");
    for (double x = -3; x <= 3; x += 0.0625) {
        double r = pow(1 + x, 4);
        ck_assert_double_le(fabs(kat_fn_eval1(f, x) - r), 2 * DBL_EPSILON * fabs(r));
    }
    kat_fn_destroy(f);
}
END_TEST

/* ---- grammar: precedence, associativity, numbers, whitespace -------------------------- */

START_TEST(test_grammar)
{
    const struct {
        const char *src;
        double x, want;
    } cases[] = {
        {"-x^2", 3, -9},        {"-2^2", 0, -4},           {"2^3^2", 0, 512},
        {"(2^3)^2", 0, 64},     {"2^-1", 0, 0.5},          {"2^-x^2", 1, 0.5},
        {"x^+2", 3, 9},         {"1+2*3", 0, 7},           {"(1+2)*3", 0, 9},
        {"8/2/2", 0, 2},        {"1-2-3", 0, -4},          {"2*-x", 3, -6},
        {"--x", 3, 3},          {"- -x", 3, 3},            {"+x", 3, 3},
        {"-+-x", 2, 2},         {"x > 1 + 1", 1.5, 0},     {"x > 1 + 1", 2.5, 1},
        {"1 < 2 == 1", 0, 1},   {"3 > 2 > 1", 0, 0},       {"x == 2", 2, 1},
        {"x == 2", 3, 0},       {"x <= 2", 2, 1},          {"x >= 2", 1, 0},
        {"x < 2", 2, 0},        {"x != 2", 2, 0},          {"1.5", 0, 1.5},
        {".5", 0, 0.5},         {"1e-3", 0, 1e-3},         {"2E+4", 0, 2e4},
        {"1.", 0, 1},           {"007", 0, 7},             {"1.25e2", 0, 125},
        {" \t x \n + \r 1 ", 2, 3}, {"pi", 0, M_PI},       {"e", 0, M_E},
        {"x*x*x", 1.5, 3.375},  {"((x))", 4, 4},           {"2*pi*x", 0.5, M_PI},
        {"x^2^0", 5, 5},        {"-x^-1", 4, -0.25},       {"1/-x", 4, -0.25},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        double y = eval_at(cases[k].src, cases[k].x);
        ck_assert_msg(y == cases[k].want, "'%s' at x = %g gives %.17g, expected %.17g",
                      cases[k].src, cases[k].x, y, cases[k].want);
    }
}
END_TEST

/* ---- every function against libm or the built-ins ------------------------------------- */

static double ref_sign(double x) { return x > 0 ? 1 : x < 0 ? -1 : x; }
static double ref_indicator(double x) { return x != 0; }

START_TEST(test_functions_vs_libm)
{
    const struct {
        const char *src;
        double (*ref)(double);
    } unary[] = {
        {"exp(x)", exp},   {"log(x)", log},     {"log1p(x)", log1p}, {"expm1(x)", expm1},
        {"sqrt(x)", sqrt}, {"abs(x)", fabs},    {"sin(x)", sin},     {"cos(x)", cos},
        {"tan(x)", tan},   {"tanh(x)", tanh},   {"erf(x)", erf},     {"floor(x)", floor},
        {"ceil(x)", ceil}, {"sign(x)", ref_sign}, {"indicator(x)", ref_indicator},
    };
    double xs[] = {-3.5, -1.0, -0.25, -0.0, 0.0, 1e-12, 0.5, 1.0, 2.75, 30.0, NAN, INFINITY};
    for (size_t k = 0; k < sizeof unary / sizeof unary[0]; k++)
        for (size_t i = 0; i < sizeof xs / sizeof xs[0]; i++) {
            double y = eval_at(unary[k].src, xs[i]), r = unary[k].ref(xs[i]);
            ck_assert_msg(same(y, r), "%s at %g: %.17g vs %.17g", unary[k].src, xs[i], y, r);
        }
    /* The activations that are also built-ins give the built-ins' bits. */
    const char *acts[] = {"sigmoid", "relu", "gelu", "tanh", "erf", "abs", "sqrt", "log1p"};
    for (size_t k = 0; k < sizeof acts / sizeof acts[0]; k++) {
        kat_fn *b;
        TU_OK(kat_fn_builtin(acts[k], &b));
        char src[32];
        snprintf(src, sizeof src, "%s(x)", acts[k]);
        kat_fn *f = parse_ok(src);
        for (double x = -40; x <= 40; x += 0.37) {
            double y = kat_fn_eval1(f, x), r = kat_fn_eval1(b, x);
            ck_assert_msg(same(y, r), "%s at %g: %.17g vs built-in %.17g", src, x, y, r);
        }
        kat_fn_destroy(f);
        kat_fn_destroy(b);
    }
    /* Binary functions. */
    double as[] = {-2.0, -0.5, 0.0, 0.5, 1.0, 3.0};
    for (size_t i = 0; i < sizeof as / sizeof as[0]; i++) {
        double x = as[i];
        ck_assert(same(eval_at("max(x, 0.5)", x), x > 0.5 ? x : 0.5));
        ck_assert(same(eval_at("min(x, 0.5)", x), x < 0.5 ? x : 0.5));
        ck_assert(same(eval_at("pow(2.5, x)", x), pow(2.5, x)));
        ck_assert(same(eval_at("pow(x, 0.5)", x), pow(x, 0.5)));
        ck_assert(same(eval_at("x^x", x), pow(x, x)));
        ck_assert(same(eval_at("2^x", x), pow(2, x)));
        ck_assert(same(eval_at("indicator(x - 0.5)", x), x != 0.5));
    }
    ck_assert(same(eval_at("gelu(x)", 1.0), 0.5 * (1 + erf(M_SQRT1_2))));
}
END_TEST

START_TEST(test_nan_and_signed_zero_semantics)
{
    ck_assert(isnan(eval_at("max(x, 0)", NAN)));   /* NaN propagates through max/min */
    ck_assert(isnan(eval_at("max(0, x)", NAN)));
    ck_assert(isnan(eval_at("min(x, 0)", NAN)));
    ck_assert(isnan(eval_at("min(0, x)", NAN)));
    ck_assert(eval_at("x == x", NAN) == 0.0);
    ck_assert(eval_at("x != x", NAN) == 1.0);
    ck_assert(eval_at("indicator(x)", NAN) == 1.0);
    ck_assert(eval_at("x^0", NAN) == 1.0);          /* pow's convention */
    ck_assert(signbit(eval_at("sign(x)", -0.0)));
    ck_assert(isnan(eval_at("sign(x)", NAN)));
    ck_assert(isnan(eval_at("x^1.5", -1.0)));
    ck_assert(eval_at("x^-1", 0.0) == INFINITY);
    ck_assert(eval_at("x^-2", 1e200) == 0.0);
    ck_assert(eval_at("log(x)", 0.0) == -INFINITY);
}
END_TEST

/* ---- integer powers: exact for small integers, close to pow beyond ------------------ */

START_TEST(test_integer_powers)
{
    /* 1.5^n and 3^n are exact in double for these n: repeated multiplication must be exact. */
    for (int n = 1; n <= 20; n++) {
        char src[32];
        snprintf(src, sizeof src, "x^%d", n);
        ck_assert_double_eq(eval_at(src, 3.0), pow(3.0, n));
        ck_assert_double_eq(eval_at(src, 1.5), pow(1.5, n));
        ck_assert_double_eq(eval_at(src, -2.0), pow(-2.0, n));
    }
    /* Up to 64: binary powering of a^n has relative error <= (n-1)u (each squaring doubles
     * the error already there), 1/a^n adds u, pow itself < 1u: within (|n|+1)u. */
    for (int n = -64; n <= 64; n++) {
        char src[32];
        snprintf(src, sizeof src, "x^(%d)", n);
        kat_fn *f = parse_ok(src);
        ck_assert_int_eq(kat_fn_poly_degree(f), n >= 0 ? n : -1);
        for (double x = 0.55; x < 1.9; x += 0.1) {
            double r = pow(x, n);
            ck_assert_double_le(fabs(kat_fn_eval1(f, x) - r),
                                (abs(n) + 1) * (DBL_EPSILON / 2) * fabs(r));
        }
        kat_fn_destroy(f);
    }
    ck_assert_double_eq(eval_at("x^65", 1.1), pow(1.1, 65));   /* beyond 64: pow itself */
    ck_assert_double_eq(eval_at("x^0", 7.0), 1.0);
    ck_assert_double_eq(eval_at("pow(x, 3)", 3.0), 27.0);
}
END_TEST

/* ---- block evaluation: sizes around the block, in place, errors ---------------------- */

START_TEST(test_block_sizes_and_in_place)
{
    const char *srcs[] = {"exp(x/8)", "(1+x)^4", "x", "3", "max(x-1.3, 0) + sin(x)*x^3",
                          "x < 0.5"};
    size_t ns[] = {0, 1, 7, 255, 256, 257, 511, 1000, 4099};
    size_t nmax = 4099;
    double *x = malloc(nmax * sizeof *x), *y = malloc(nmax * sizeof *y);
    double *z = malloc(nmax * sizeof *z);
    for (size_t i = 0; i < nmax; i++)
        x[i] = -3.0 + 6.0 * (double)i / (double)nmax;
    for (size_t k = 0; k < sizeof srcs / sizeof srcs[0]; k++) {
        kat_fn *f = parse_ok(srcs[k]);
        for (size_t t = 0; t < sizeof ns / sizeof ns[0]; t++) {
            size_t n = ns[t];
            for (size_t i = 0; i < nmax; i++)
                y[i] = -777.0;
            TU_OK(kat_fn_eval(f, x, y, n));
            for (size_t i = 0; i < n; i++)
                ck_assert_msg(same(y[i], kat_fn_eval1(f, x[i])), "%s n=%zu i=%zu", srcs[k], n,
                              i);
            for (size_t i = n; i < nmax; i++)
                ck_assert(y[i] == -777.0);   /* nothing written past n */
            memcpy(z, x, n * sizeof *z);
            TU_OK(kat_fn_eval(f, z, z, n));   /* x == y */
            for (size_t i = 0; i < n; i++)
                ck_assert(same(z[i], y[i]));
        }
        kat_fn_destroy(f);
    }
    kat_fn *f = parse_ok("log(x)");
    TU_EXPECT_ERR(kat_fn_eval(f, x, y, 1000), KAT_EDOM, "log(x)");
    kat_fn_destroy(f);
    f = parse_ok("x^1.5");
    TU_EXPECT_ERR(kat_fn_eval(f, x, y, 10), KAT_EDOM, "x = -3");
    kat_fn_destroy(f);
    free(x);
    free(y);
    free(z);
}
END_TEST

/* ---- constant folding and the compiled program -------------------------------------- */

START_TEST(test_folding_and_program_shape)
{
    const struct {
        const char *src;
        size_t instrs, regs;
    } cases[] = {
        {"x", 1, 0},           /* one copy */
        {"1+2*3", 1, 0},       /* one fill */
        {"2*3+x", 1, 0},       /* x + 6 straight into the output */
        {"exp(x)", 1, 0},      {"exp(x/8)", 2, 1},    {"sqrt(2)*exp(1)*x", 1, 0},
        {"x*(2^10)", 1, 0},    {"(1+x)^4", 2, 1},     {"x^0 + x", 1, 0},
        {"e^x", 1, 0},         {"max(x - 1.3, 0)", 2, 1},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        kat_fn *f = parse_ok(cases[k].src);
        ck_assert_msg(prog_instrs(f) == cases[k].instrs && prog_regs(f) == cases[k].regs,
                      "%s: %zu instructions, %zu registers", cases[k].src, prog_instrs(f),
                      prog_regs(f));
        kat_fn_destroy(f);
    }
    /* Folded constants carry the run-time bits. */
    ck_assert(same(eval_at("exp(1)", 0), exp(1.0)));
    ck_assert(same(eval_at("sqrt(2)*x", 1), sqrt(2.0)));
    ck_assert(same(eval_at("e^2", 0), exp(2.0)));
    ck_assert(same(eval_at("log(0)", 0), -INFINITY));
    ck_assert(same(eval_at("sigmoid(-800)", 0), 0.0));
    ck_assert(same(eval_at("sigmoid(800)", 0), 1.0));
    /* Division by a power of two becomes an exact multiplication: same bits as dividing. */
    const char *divs[] = {"x/8", "x/0.25", "x/-2", "x/2^-1060", "x/2^1023", "x/3", "1/x"};
    double dv[] = {8, 0.25, -2, ldexp(1, -1060), ldexp(1, 1023), 3, 0};
    for (size_t k = 0; k < sizeof divs / sizeof divs[0]; k++) {
        kat_fn *f = parse_ok(divs[k]);
        double xs[] = {1.0, 3.0, -7.5, 1e-310, 4.9e-324, 1e308, DBL_MAX, 0.1, INFINITY, NAN};
        for (size_t i = 0; i < sizeof xs / sizeof xs[0]; i++) {
            double r = dv[k] == 0 ? 1 / xs[i] : xs[i] / dv[k];
            ck_assert_msg(same(kat_fn_eval1(f, xs[i]), r), "%s at %g", divs[k], xs[i]);
        }
        kat_fn_destroy(f);
    }
    /* e^... is exp, whatever the exponent; a parenthesised (e) is a plain base for pow. */
    for (double x = -3; x <= 3; x += 0.25) {
        ck_assert(same(eval_at("e^(x+1)", x), exp(x + 1)));
        ck_assert(same(eval_at("2*e^-x^2", x), 2 * exp(-(x * x))));
        ck_assert(same(eval_at("x + e^x^2 * e", x), x + exp(x * x) * M_E));
        ck_assert(same(eval_at("(e)^x", x), pow(M_E, x)));
    }
    ck_assert(same(eval_at("e^3", 0), exp(3.0)));
    ck_assert(same(eval_at("exp(1)^3", 0), M_E * (M_E * M_E)));
    /* The same constant written two ways gives the same function. */
    ck_assert(same(eval_at("x^3", 1.1), eval_at("x^(1+2)", 1.1)));
}
END_TEST

/* A balanced tree of depth d over x: registers grow with d only (Sethi-Ullman), values are
 * checked against a closed form. */
static char *balanced(int d)
{
    if (d == 0) {
        char *s = malloc(2);
        strcpy(s, "x");
        return s;
    }
    char *sub = balanced(d - 1);
    size_t n = 2 * strlen(sub) + 8;
    char *s = malloc(n);
    snprintf(s, n, "(%s+%s)", sub, sub);
    free(sub);
    return s;
}

START_TEST(test_registers_and_big_inputs)
{
    /* (x+x) nested 12 deep = 4096 x: 12 registers at most, values exact (powers of two). */
    char *s = balanced(12);
    kat_fn *f = parse_ok(s);
    ck_assert_uint_le(prog_regs(f), 12);
    ck_assert_double_eq(kat_fn_eval1(f, 1.5), 4096 * 1.5);
    ck_assert_int_eq(kat_fn_poly_degree(f), 1);
    kat_fn_destroy(f);
    free(s);

    /* A flat sum at the length limit, x*2+x*2+...+1: a left-leaning tree 16383 levels deep
     * that no pass may recurse over; 2 registers. */
    size_t terms = (EXPR_MAX_LENGTH - 1) / 4, len = 0;
    s = malloc(EXPR_MAX_LENGTH + 2);
    for (size_t t = 0; t < terms; t++)
        len += (size_t)sprintf(s + len, "x*2+");
    s[len++] = '1';
    s[len] = '\0';
    ck_assert_uint_le(len, EXPR_MAX_LENGTH);
    f = parse_ok(s);
    ck_assert_uint_le(prog_regs(f), 2);
    ck_assert_double_eq(kat_fn_eval1(f, 0.5), (double)terms + 1);
    ck_assert_int_eq(kat_fn_poly_degree(f), 1);
    kat_fn_destroy(f);
    free(s);

    /* A chain of 20000 additions of x: 1 register, exact coefficients. */
    size_t n = 20000;
    s = malloc(2 * n + 2);
    len = 0;
    for (size_t t = 0; t < n; t++) {
        s[len++] = 'x';
        s[len++] = '+';
    }
    s[len++] = '1';
    s[len] = '\0';
    f = parse_ok(s);
    ck_assert_uint_le(prog_regs(f), 1);
    ck_assert_double_eq(kat_fn_eval1(f, 0.5), 0.5 * (double)n + 1);
    double c[2];
    ck_assert_int_eq(kat_fn_poly_coeffs(f, c, 2), 1);
    ck_assert_double_eq(c[0], 1.0);
    ck_assert_double_eq(c[1], (double)n);
    kat_fn_destroy(f);
    free(s);
}
END_TEST

/* ---- polynomial recognition ---------------------------------------------------------- */

START_TEST(test_poly_exact_coefficients)
{
    const struct {
        const char *src;
        int deg;
        double c[8];
    } cases[] = {
        {"(1+x)^4", 4, {1, 4, 6, 4, 1}},
        {"x^4+x", 4, {0, 1, 0, 0, 1}},
        {"(x-1)*(x+1)", 2, {-1, 0, 1}},
        {"3", 0, {3}},
        {"x", 1, {0, 1}},
        {"-x", 1, {0, -1}},
        {"+x", 1, {0, 1}},
        {"-x^2", 2, {0, 0, -1}},
        {"x - x", 0, {0}},
        {"0*x", 0, {0}},
        {"2*x/4", 1, {0, 0.5}},
        {"(x^2)^3", 6, {0, 0, 0, 0, 0, 0, 1}},
        {"(2*x+1)^3", 3, {1, 6, 12, 8}},
        {"x/sqrt(4)", 1, {0, 0.5}},
        {"x*(1+1)^3", 1, {0, 8}},
        {"pow(x, 2) - 2*x + 1", 2, {1, -2, 1}},
        {"x^(1+1)", 2, {0, 0, 1}},
        {"(x - x)^100 + 5", 0, {5}},
        {"(x^40 - x^40 + x)^2", 2, {0, 0, 1}},
        {"x^0", 0, {1}},
        {"(x+2)*(x-2)/4", 2, {-1, 0, 0.25}},
        {"-(1-x)^3", 3, {-1, 3, -3, 1}},
        {"1 + x + x^2/2 + x^3/6", 3, {1, 1, 0.5, 1.0 / 6}},
        {"2^3 * x", 1, {0, 8}},
        {"(x+1)*(x+1) - (x^2 + 2*x)", 0, {1}},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        kat_fn *f = parse_ok(cases[k].src);
        double got[8] = {0};
        int deg = kat_fn_poly_coeffs(f, got, 8);
        ck_assert_msg(deg == cases[k].deg, "%s: degree %d, expected %d", cases[k].src, deg,
                      cases[k].deg);
        ck_assert_int_eq(kat_fn_poly_degree(f), deg);
        for (int t = 0; t <= deg; t++)
            ck_assert_msg(got[t] == cases[k].c[t], "%s: coef[%d] = %.17g, expected %.17g",
                          cases[k].src, t, got[t], cases[k].c[t]);
        kat_fn_destroy(f);
    }
}
END_TEST

START_TEST(test_poly_not_recognised)
{
    const char *srcs[] = {"exp(x)",       "x^1.5",        "max(x, 0)",    "x != 0",
                          "x > 1",        "1/x",          "x/x",          "x/(1-1)",
                          "x/0",          "x^-1",         "2^x",          "x^x",
                          "abs(x)",       "sqrt(x)",      "x^65",         "(x^8)^9",
                          "x^40*x^30",    "(1+x)^4 + sin(x)", "x*1e300*1e300", "x + log(0)",
                          "min(x, 1)",    "floor(x)",     "indicator(x)", "pow(x, 0.5)",
                          "(x+1)^(1/2)",  "x*(x > 0)",    "e^x",          "x^(-2)"};
    for (size_t k = 0; k < sizeof srcs / sizeof srcs[0]; k++) {
        kat_fn *f = parse_ok(srcs[k]);
        ck_assert_msg(kat_fn_poly_degree(f) == -1, "%s recognised as degree %d", srcs[k],
                      kat_fn_poly_degree(f));
        ck_assert_int_eq(kat_fn_poly_coeffs(f, NULL, 0), -1);
        ck_assert_ptr_null(f->coef);
        kat_fn_destroy(f);
    }
    /* Degree 64 is the limit. */
    kat_fn *f = parse_ok("x^64");
    ck_assert_int_eq(kat_fn_poly_degree(f), 64);
    kat_fn_destroy(f);
    f = parse_ok("(x^8)^8 + (1 + x)^2");
    ck_assert_int_eq(kat_fn_poly_degree(f), 64);
    kat_fn_destroy(f);
}
END_TEST

/* Horner on the recognised coefficients against the compiled program. Both are compared to
 * the exact value through the Horner error bound 2*deg*eps*sum|c_t||x|^t (Higham 5.1) plus
 * the program's own error (a few roundings per operation, relative to the same sum). */
START_TEST(test_poly_coefficients_vs_evaluation)
{
    const char *srcs[] = {"(1+x)^4",       "(x-1)*(x+1)",          "(2*x - 0.5)^7",
                          "x^3 - 3*x + 1", "(x/3 + 1)^5 * (x - 2)", "-(0.5 - x)^9 / 7",
                          "(1+x)^64",      "((x+1)^2 - 1)^3 + x/5", "x^10 - x^9 + x^2",
                          "(x^2 + 1)^4 * (1 - x)"};
    kat_rng *rng;
    TU_OK(kat_rng_create(7, &rng));
    for (size_t k = 0; k < sizeof srcs / sizeof srcs[0]; k++) {
        kat_fn *f = parse_ok(srcs[k]);
        int deg = kat_fn_poly_degree(f);
        ck_assert_int_ge(deg, 1);
        double c[65];
        ck_assert_int_eq(kat_fn_poly_coeffs(f, c, 65), deg);
        for (int s = 0; s < 200; s++) {
            double x = -2.0 + 4.0 * kat_rng_uniform(rng);
            double h = c[deg], mag = 0.0, xp = 1.0;
            for (int t = deg - 1; t >= 0; t--)
                h = h * x + c[t];
            for (int t = 0; t <= deg; t++, xp *= fabs(x))
                mag += fabs(c[t]) * xp;
            double y = kat_fn_eval1(f, x);
            /* 2*deg for Horner, 2*deg for the coefficients' own rounding, 2*deg for the
             * program (at most a few roundings per factor). */
            double tol = 6.0 * (deg + 1) * DBL_EPSILON * mag;
            ck_assert_msg(fabs(h - y) <= tol, "%s at x = %.17g: Horner %.17g, program %.17g",
                          srcs[k], x, h, y);
        }
        kat_fn_destroy(f);
    }
    kat_rng_destroy(rng);
}
END_TEST

/* ---- errors: status, message, column ------------------------------------------------- */

START_TEST(test_parse_errors)
{
    const struct {
        const char *src;
        size_t pos;
        const char *msg;
    } cases[] = {
        {"max(x, 1", 8, "column 9: unexpected end of input: expected ')' after argument list of 'max'"},
        {"max(x, 1 2)", 9, "column 10: expected ')' after argument list of 'max', got number '2'"},
        {"max(x 1)", 6, "expected ',' or ')' after argument 1 of 'max'"},
        {"foo(x)", 0, "column 1: unknown function 'foo'"},
        {"2 * bar(x)", 4, "unknown function 'bar'"},
        {"y + 1", 0, "unknown variable 'y'"},
        {"x + 1 +", 7, "column 8: unexpected end of input"},
        {"max(x)", 0, "'max' takes 2 arguments, got 1"},
        {"min(1, 2, 3)", 0, "'min' takes 2 arguments, got 3"},
        {"exp()", 0, "'exp' takes 1 argument, got 0"},
        {"exp(x, 1)", 0, "'exp' takes 1 argument, got 2"},
        {"", 0, "empty expression"},
        {"   ", 3, "empty expression"},
        {"(x + 1", 6, "expected ')' to close the '(' at column 1"},
        {"(x + 1 x", 7, "got 'x'"},
        {"x)", 1, "unmatched ')'"},
        {"2x", 1, "expected an operator or the end of input, got 'x'"},
        {"x 2", 2, "got number '2'"},
        {"x ^^ 2", 3, "got '^'"},
        {"x * )", 4, "got ')'"},
        {"1e", 2, "malformed number '1e'"},
        {"1e+", 3, "malformed number"},
        {"1e999", 0, "too large"},
        {"x @ 2", 2, "unexpected character '@'"},
        {"x = 1", 2, "'=' is not an operator"},
        {"!x", 0, "'!' is not an operator"},
        {"x \x01", 2, "unexpected byte 0x01"},
        {"x + \xc3\xa9", 4, "unexpected byte 0xc3"},
        {"exp", 0, "'exp' is a function: expected '('"},
        {"exp + 1", 0, "'exp' is a function"},
        {"x(2)", 0, "'x' is the variable, not a function"},
        {"pi(2)", 0, "'pi' is a constant"},
        {"e(2)", 0, "'e' is a constant"},
        {"X", 0, "unknown variable 'X'"},
        {"xx", 0, "unknown variable 'xx'"},
        {"EXP(x)", 0, "unknown function 'EXP'"},
        {"max(,1)", 4, "got ','"},
        {"sin(x", 5, "expected ')' after argument list of 'sin'"},
        {".", 0, "unexpected character '.'"},
        {"1..2", 2, "got number '.2'"},
        {"x < = 1", 4, "'=' is not an operator"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        kat_fn *f = (kat_fn *)0x1;   /* must stay untouched */
        size_t pos = 99999;
        kat_clear_error();
        kat_status st = kat_fn_parse(cases[k].src, &f, &pos);
        ck_assert_msg(st == KAT_EPARSE, "'%s': %s", cases[k].src, kat_strerror(st));
        ck_assert_ptr_eq(f, (kat_fn *)0x1);
        ck_assert_msg(pos == cases[k].pos, "'%s': err_pos %zu, expected %zu (%s)", cases[k].src,
                      pos, cases[k].pos, kat_last_error());
        ck_assert_msg(strstr(kat_last_error(), cases[k].msg) != NULL,
                      "'%s': message '%s' lacks '%s'", cases[k].src, kat_last_error(),
                      cases[k].msg);
        /* The column in the message is err_pos + 1. */
        char col[32];
        snprintf(col, sizeof col, "column %zu:", cases[k].pos + 1);
        ck_assert_msg(strncmp(kat_last_error(), col, strlen(col)) == 0, "'%s': '%s'",
                      cases[k].src, kat_last_error());
        /* err_pos may be NULL. */
        TU_EXPECT_ERR(kat_fn_parse(cases[k].src, &f, NULL), KAT_EPARSE, cases[k].msg);
    }
    /* Long names are shortened in messages. */
    char longname[200], shown[64];
    memset(longname, 'q', 150);
    strcpy(longname + 150, "(x)");
    strcpy(shown, "unknown function '");
    memset(shown + strlen(shown), 'q', 29);
    strcpy(shown + 18 + 29, "...'");
    TU_EXPECT_ERR(kat_fn_parse(longname, &(kat_fn *){NULL}, NULL), KAT_EPARSE, shown);
}
END_TEST

START_TEST(test_bad_arguments)
{
    kat_fn *f = NULL;
    size_t pos = 5;
    TU_EXPECT_ERR(kat_fn_parse(NULL, &f, &pos), KAT_EINVAL, "expr is NULL");
    TU_EXPECT_ERR(kat_fn_parse("x", NULL, &pos), KAT_EINVAL, "out is NULL");
    ck_assert_ptr_null(f);
    ck_assert_uint_eq(pos, 5);
}
END_TEST

START_TEST(test_limits)
{
    /* Length: 64 KiB accepted, one byte more rejected without reading the rest. */
    char *s = malloc(EXPR_MAX_LENGTH + 2);
    memset(s, ' ', EXPR_MAX_LENGTH);
    s[0] = 'x';
    s[EXPR_MAX_LENGTH] = '\0';
    kat_fn *f = parse_ok(s);
    kat_fn_destroy(f);
    s[EXPR_MAX_LENGTH] = ' ';
    s[EXPR_MAX_LENGTH + 1] = '\0';
    size_t pos = 0;
    kat_clear_error();
    ck_assert_int_eq(kat_fn_parse(s, &f, &pos), KAT_EPARSE);
    ck_assert_ptr_nonnull(strstr(kat_last_error(), "longer than 65536 bytes"));
    ck_assert_uint_eq(pos, EXPR_MAX_LENGTH);
    free(s);

    /* Depth: 255 parentheses (256 levels with the innermost x) pass, 256 do not. */
    for (int d = 255; d <= 256; d++) {
        char *p = malloc(2 * (size_t)d + 2);
        memset(p, '(', (size_t)d);
        p[d] = 'x';
        memset(p + d + 1, ')', (size_t)d);
        p[2 * d + 1] = '\0';
        if (d == 255) {
            f = parse_ok(p);
            ck_assert_double_eq(kat_fn_eval1(f, 2.5), 2.5);
            kat_fn_destroy(f);
        } else {
            ck_assert_int_eq(kat_fn_parse(p, &f, &pos), KAT_EPARSE);
            ck_assert_ptr_nonnull(strstr(kat_last_error(), "nested deeper than 256 levels"));
            ck_assert_uint_eq(pos, 256);
        }
        free(p);
    }
    /* Signs, exponents and calls count too; 60000 of them cannot blow the stack. */
    const char *units[] = {"-", "exp(", "2^"};
    for (size_t u = 0; u < 3; u++) {
        size_t reps = 60000 / strlen(units[u]) - 2, ul = strlen(units[u]);
        char *p = malloc(reps * ul + 2);
        for (size_t r = 0; r < reps; r++)
            memcpy(p + r * ul, units[u], ul);
        p[reps * ul] = 'x';
        p[reps * ul + 1] = '\0';
        TU_EXPECT_ERR(kat_fn_parse(p, &f, &pos), KAT_EPARSE, "nested deeper than 256");
        ck_assert_uint_eq(pos, 256 * ul);
        free(p);
    }
    /* A long number is read exactly. */
    char num[3000];
    memset(num, '0', sizeof num);
    num[0] = '.';
    num[2000] = '5';
    num[2001] = 'e';
    num[2002] = '2';
    num[2003] = '0';
    num[2004] = '0';
    num[2005] = '0';
    num[2006] = '\0';   /* 0.000...5 * 10^2000 = 5 */
    ck_assert_double_eq(eval_at(num, 0), 5.0);
}
END_TEST

/* ---- allocation failures leak nothing and leave out untouched ------------------------ */

START_TEST(test_alloc_failures)
{
    const char *srcs[] = {"(1+x)^4 + exp(x/8) * max(x, 0)", "x", "1e0000000000000000000000000"
                          "0000000000000000000000000000000000000000000000000000000000000000000"
                          "0000000000000000000000000000000000000000000000000000000000000000001*x"};
    for (size_t k = 0; k < sizeof srcs / sizeof srcs[0]; k++) {
        int succeeded = 0;
        for (size_t at = 1; at < 100 && !succeeded; at++) {
            kat_fn *f = (kat_fn *)0x1;
            kat_debug_fail_alloc_at(at);
            kat_status st = kat_fn_parse(srcs[k], &f, NULL);
            size_t made = kat_debug_fail_alloc_at(0);
            if (st == KAT_OK) {
                ck_assert_uint_lt(made, at);   /* no failure was injected */
                succeeded = 1;
                ck_assert_double_eq(kat_fn_eval1(f, 0.0), k == 0 ? 1.0 : 0.0);
                kat_fn_destroy(f);
            } else {
                ck_assert_msg(st == KAT_ENOMEM, "%s at allocation %zu: %s", srcs[k], at,
                              kat_strerror(st));
                ck_assert_ptr_eq(f, (kat_fn *)0x1);
            }
        }
        ck_assert(succeeded);
    }
}
END_TEST

/* ---- threads: one program evaluated concurrently ------------------------------------ */

typedef struct {
    const kat_fn *f;
    const double *x;
    double *y;
    size_t n;
} job;

static void *run_job(void *arg)
{
    job *j = arg;
    for (int rep = 0; rep < 5; rep++)
        kat_fn_eval_unchecked(j->f, j->x, j->y, j->n);
    return NULL;
}

START_TEST(test_threads)
{
    kat_fn *f = parse_ok("sin(x)^3 + max(x, 0.25)*(1+x)^4 - exp(x/8)/(2 + abs(x))");
    enum { T = 4, N = 3001 };
    double *x = malloc(T * N * sizeof *x), *y = malloc(T * N * sizeof *y);
    for (size_t i = 0; i < T * N; i++)
        x[i] = sin(0.37 * (double)i) * 3.0;
    pthread_t th[T];
    job jobs[T];
    for (int t = 0; t < T; t++) {
        jobs[t] = (job){f, x + t * N, y + t * N, N};
        ck_assert_int_eq(pthread_create(&th[t], NULL, run_job, &jobs[t]), 0);
    }
    for (int t = 0; t < T; t++)
        pthread_join(th[t], NULL);
    for (size_t i = 0; i < T * N; i++)
        ck_assert(same(y[i], kat_fn_eval1(f, x[i])));
    kat_fn_destroy(f);
    free(x);
    free(y);
}
END_TEST

/* ---- randomized differential test against an independent tree evaluator ------------- */

/* Random trees over a subset of operators whose reference in C has the same roundings:
 * + - * / unary minus, exp, sin, tanh, abs, max, min, comparisons, and ^2 / ^3. Each tree is
 * printed with only the parentheses the grammar needs (plus a few redundant ones), so the
 * test checks precedence and associativity as well as evaluation. */
enum { R_X, R_CONST, R_NEG, R_EXP, R_SIN, R_TANH, R_ABS, R_ADD, R_SUB, R_MUL, R_DIV, R_SQ,
       R_CUBE, R_MAX, R_MIN, R_LT, R_GE, R_NE, R_KINDS };

typedef struct rnode {
    int kind;
    double c;
    struct rnode *a, *b;
} rnode;

static rnode *rgen(kat_rng *rng, int depth)
{
    rnode *n = calloc(1, sizeof *n);
    n->kind = depth <= 0 ? (int)kat_rng_uint(rng, 2) : (int)kat_rng_uint(rng, R_KINDS);
    if (n->kind == R_CONST)
        n->c = (double)kat_rng_uint(rng, 2000) / 64.0;   /* exact in text and in binary */
    if (n->kind >= R_NEG)
        n->a = rgen(rng, depth - 1);
    if (n->kind >= R_ADD && n->kind != R_SQ && n->kind != R_CUBE)
        n->b = rgen(rng, depth - 1);
    return n;
}

static void rfree(rnode *n)
{
    if (!n)
        return;
    rfree(n->a);
    rfree(n->b);
    free(n);
}

static double reval(const rnode *n, double x)
{
    double a = n->a ? reval(n->a, x) : 0, b = n->b ? reval(n->b, x) : 0;
    switch (n->kind) {
    case R_X: return x;
    case R_CONST: return n->c;
    case R_NEG: return -a;
    case R_EXP: return exp(a);
    case R_SIN: return sin(a);
    case R_TANH: return tanh(a);
    case R_ABS: return fabs(a);
    case R_ADD: return a + b;
    case R_SUB: return a - b;
    case R_MUL: return a * b;
    case R_DIV: return a / b;
    case R_SQ: return a * a;
    case R_CUBE: return a * (a * a);
    case R_MAX: return isnan(a) || isnan(b) ? NAN : a > b ? a : b;
    case R_MIN: return isnan(a) || isnan(b) ? NAN : a < b ? a : b;
    case R_LT: return a < b;
    case R_GE: return a >= b;
    default: return a != b;
    }
}

/* Binding strength of the printed form: comparisons 1, sums 2, products 3, unary minus 4,
 * powers 5, atoms and calls 6. */
static int rprec(const rnode *n)
{
    switch (n->kind) {
    case R_LT: case R_GE: case R_NE: return 1;
    case R_ADD: case R_SUB: return 2;
    case R_MUL: case R_DIV: return 3;
    case R_NEG: return 4;
    case R_SQ: case R_CUBE: return 5;
    default: return 6;
    }
}

typedef struct {
    char *s;
    size_t len, cap;
} sbuf;

static void put(sbuf *b, const char *s)
{
    size_t n = strlen(s);
    if (b->len + n + 1 > b->cap) {
        b->cap = 2 * (b->len + n + 1);
        b->s = realloc(b->s, b->cap);
    }
    memcpy(b->s + b->len, s, n + 1);
    b->len += n;
}

static void rprint(const rnode *n, sbuf *b, int min_prec, kat_rng *rng);

static void rchild(const rnode *n, sbuf *b, int min_prec, kat_rng *rng)
{
    int paren = rprec(n) < min_prec || kat_rng_uint(rng, 8) == 0;
    if (paren)
        put(b, "(");
    rprint(n, b, paren ? 0 : min_prec, rng);
    if (paren)
        put(b, ")");
}

static void rprint(const rnode *n, sbuf *b, int min_prec, kat_rng *rng)
{
    static const char *fname[] = {[R_EXP] = "exp", [R_SIN] = "sin", [R_TANH] = "tanh",
                                  [R_ABS] = "abs", [R_MAX] = "max", [R_MIN] = "min"};
    static const char *opname[] = {[R_ADD] = "+", [R_SUB] = "-", [R_MUL] = "*",
                                   [R_DIV] = "/", [R_LT] = "<", [R_GE] = ">=", [R_NE] = "!="};
    char num[64];
    (void)min_prec;
    switch (n->kind) {
    case R_X: put(b, "x"); return;
    case R_CONST:
        snprintf(num, sizeof num, "%.17g", n->c);
        put(b, num);
        return;
    case R_NEG:
        put(b, kat_rng_uint(rng, 2) ? "-" : " - ");
        rchild(n->a, b, 4, rng);   /* -a^2 is -(a^2): a power needs no parentheses */
        return;
    case R_SQ: case R_CUBE:
        rchild(n->a, b, 6, rng);   /* the base of ^ is an atom */
        put(b, n->kind == R_SQ ? "^2" : " ^ 3");
        return;
    case R_EXP: case R_SIN: case R_TANH: case R_ABS:
        put(b, fname[n->kind]);
        put(b, "(");
        rprint(n->a, b, 0, rng);
        put(b, ")");
        return;
    case R_MAX: case R_MIN:
        put(b, fname[n->kind]);
        put(b, "(");
        rprint(n->a, b, 0, rng);
        put(b, ", ");
        rprint(n->b, b, 0, rng);
        put(b, ")");
        return;
    default: {
        /* Left-associative binary operators: the right operand binds one level tighter. A
         * unary minus as the right operand of * or / needs no parentheses (2*-x), but one
         * as the left operand of a sum must keep its own: -a+b is (-a)+b anyway. */
        int p = rprec(n);
        rchild(n->a, b, p, rng);
        put(b, " ");
        put(b, opname[n->kind]);
        put(b, " ");
        rchild(n->b, b, p + 1, rng);
        return;
    }
    }
}

START_TEST(test_random_differential)
{
    kat_rng *rng;
    TU_OK(kat_rng_create(2024, &rng));
    int trees = tu_quick() ? 300 : 3000;
    double xs[] = {-2.5, -1.0, -0.0, 0.5, 1.0, 1.75, 3.0};
    double y[7];
    sbuf b = {0};
    for (int t = 0; t < trees; t++) {
        rnode *n = rgen(rng, 1 + (int)kat_rng_uint(rng, 6));
        b.len = 0;
        put(&b, "");
        rprint(n, &b, 0, rng);
        kat_fn *f = parse_ok(b.s);
        kat_fn_eval_unchecked(f, xs, y, 7);
        for (int i = 0; i < 7; i++) {
            double r = reval(n, xs[i]);
            ck_assert_msg(same(y[i], r), "'%s' at x = %g: %.17g, reference %.17g", b.s, xs[i],
                          y[i], r);
        }
        kat_fn_destroy(f);
        rfree(n);
    }
    free(b.s);
    kat_rng_destroy(rng);
}
END_TEST

/* ---- shapes the fuzzer (tests/fuzz/fuzz_expr.c) gravitated to ------------------------ */
/* Fuzzing has found no failure so far; these are the constructs its grown corpus is made of
 * (zero exponents in ^ chains, long sign runs, unbalanced openings), checked against C. */

START_TEST(test_fuzz_corpus_shapes)
{
    double xs[] = {-2.0, -1.0, -0.0, 0.0, 0.5, 2.0, 55.0};
    for (size_t i = 0; i < sizeof xs / sizeof xs[0]; i++) {
        double x = xs[i];
        ck_assert(same(eval_at("x^0^x", x), pow(x, pow(0.0, x))));
        ck_assert(same(eval_at("5-x-x^0^x-55520028-x^x", x),
                       5 - x - pow(x, pow(0.0, x)) - 55520028 - pow(x, x)));
        ck_assert(same(eval_at("x^0^55^x", x), pow(x, pow(0.0, pow(55.0, x)))));
        ck_assert(same(eval_at("-x^2-x^25^252", x), -(x * x) - pow(x, pow(25.0, 252.0))));
    }
    /* five signs, then a binary minus and three signs */
    ck_assert(same(eval_at("----- 0----2-1* .5 + 2- .5", 0), -0.0 - (-2.0) - 1 * .5 + 2 - .5));
    TU_EXPECT_ERR(kat_fn_parse("((((((((", &(kat_fn *){NULL}, NULL), KAT_EPARSE,
                  "column 9: unexpected end of input");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("expr");
    TCase *tc = tcase_create("expr");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_spec_examples_bitwise);
    tcase_add_test(tc, test_grammar);
    tcase_add_test(tc, test_functions_vs_libm);
    tcase_add_test(tc, test_nan_and_signed_zero_semantics);
    tcase_add_test(tc, test_integer_powers);
    tcase_add_test(tc, test_block_sizes_and_in_place);
    tcase_add_test(tc, test_folding_and_program_shape);
    tcase_add_test(tc, test_registers_and_big_inputs);
    tcase_add_test(tc, test_poly_exact_coefficients);
    tcase_add_test(tc, test_poly_not_recognised);
    tcase_add_test(tc, test_poly_coefficients_vs_evaluation);
    tcase_add_test(tc, test_parse_errors);
    tcase_add_test(tc, test_bad_arguments);
    tcase_add_test(tc, test_limits);
    tcase_add_test(tc, test_alloc_failures);
    tcase_add_test(tc, test_threads);
    tcase_add_test(tc, test_random_differential);
    tcase_add_test(tc, test_fuzz_corpus_shapes);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
