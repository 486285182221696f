/* The expression parser: a lexer and a recursive-descent parser that builds the syntax tree
 * as a flat node array in topological order. Grammar, loosest binding first:
 *
 *   expr    := sum (('==' | '!=' | '<' | '<=' | '>' | '>=') sum)*
 *   sum     := term (('+' | '-') term)*
 *   term    := unary (('*' | '/') unary)*
 *   unary   := ('+' | '-') unary | power
 *   power   := primary ('^' unary)?          right-associative; -x^2 = -(x^2), 2^-1 works
 *   primary := number | 'x' | 'pi' | 'e' | name '(' expr (',' expr)* ')' | '(' expr ')'
 *
 * Every cycle of the recursion passes through unary, which counts the depth, so no input can
 * recurse deeper than EXPR_MAX_DEPTH levels. */
#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/internal.h"
#include "fn/expr_internal.h"

typedef enum {
    TOK_END,
    TOK_NUM,
    TOK_NAME,
    TOK_PLUS,
    TOK_MINUS,
    TOK_STAR,
    TOK_SLASH,
    TOK_CARET,
    TOK_LPAREN,
    TOK_RPAREN,
    TOK_COMMA,
    TOK_EQ,
    TOK_NE,
    TOK_LT,
    TOK_LE,
    TOK_GT,
    TOK_GE,
    TOK_BAD   /* a lexical error, already reported */
} tok_kind;

typedef struct {
    const char *src;
    size_t len;
    /* the current token: [start, end) */
    tok_kind tok;
    size_t start, end;
    double num;
    int depth;
    expr_node *nodes;
    size_t count, cap;
    int failed;
    kat_status status;
    size_t err_pos;
} parser;

expr_op kat__expr_op_lookup(const char *name, size_t n)
{
    for (int op = 0; op < EOP_COUNT; op++) {
        const char *s = expr_op_name((expr_op)op);
        if (*s && strlen(s) == n && memcmp(s, name, n) == 0)
            return (expr_op)op;
    }
    return EOP_COUNT;
}

/* Record the first error only: "column C: reason", with C the 1-based column of pos. */
__attribute__((format(printf, 3, 4))) static void fail_at(parser *p, size_t pos,
                                                          const char *fmt, ...)
{
    if (p->failed)
        return;
    char why[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    p->failed = 1;
    p->status = KAT_EPARSE;
    p->err_pos = pos;
    kat__fail(KAT_EPARSE, "column %zu: %s", pos + 1, why);
}

/* Quote a token for a message: printable text up to 32 bytes, longer names shortened. */
static void quote_span(const char *s, size_t n, char *buf, size_t cap)
{
    size_t shown = n > 32 ? 29 : n;
    snprintf(buf, cap, "%.*s%s", (int)shown, s, n > 32 ? "..." : "");
}

static void describe_token(const parser *p, char *buf, size_t cap)
{
    char span[40];
    switch (p->tok) {
    case TOK_END:
        snprintf(buf, cap, "end of input");
        return;
    case TOK_NUM:
        quote_span(p->src + p->start, p->end - p->start, span, sizeof span);
        snprintf(buf, cap, "number '%s'", span);
        return;
    default:
        quote_span(p->src + p->start, p->end - p->start, span, sizeof span);
        snprintf(buf, cap, "'%s'", span);
        return;
    }
}

/* "expected WHAT, got TOKEN", or "unexpected end of input: expected WHAT" at the end. */
static void fail_expected(parser *p, const char *what, char *got, size_t cap)
{
    if (p->tok == TOK_BAD)
        return;   /* the lexer has reported it */
    if (p->tok == TOK_END) {
        fail_at(p, p->start, "unexpected end of input: expected %s", what);
        return;
    }
    describe_token(p, got, cap);
    fail_at(p, p->start, "expected %s, got %s", what, got);
}

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}
static int is_digit(char c) { return c >= '0' && c <= '9'; }
static int is_name_start(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
static int is_name_char(char c) { return is_name_start(c) || is_digit(c); }

/* Convert the decimal text [s, s+n) (already checked against the number grammar) with strtod,
 * swapping '.' for the current locale's decimal point so a program that called setlocale
 * still reads "1.5" as one and a half. */
static int convert_number(parser *p, const char *s, size_t n, double *out)
{
    const char *dp = localeconv()->decimal_point;
    size_t dplen = dp && *dp ? strlen(dp) : 1;
    char small[128], *buf = small;
    size_t need;
    if (kat_add_overflow(n, dplen + 1, &need))
        return -1;
    if (need > sizeof small) {
        buf = kat__alloc_array(need, 1, "expression number text");
        if (!buf) {
            p->failed = 1;
            p->status = KAT_ENOMEM;
            p->err_pos = (size_t)(s - p->src);
            return -1;
        }
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '.' && dp && *dp) {
            memcpy(buf + k, dp, dplen);
            k += dplen;
        } else {
            buf[k++] = s[i];
        }
    }
    buf[k] = '\0';
    char *end;
    *out = strtod(buf, &end);
    int ok = end == buf + k;
    if (buf != small)
        kat_free(buf);
    return ok ? 0 : -1;
}

/* Scan the next token into p->tok/start/end; on a lexical error report it, set TOK_BAD. */
static void next(parser *p)
{
    size_t i = p->end;
    while (i < p->len && is_space(p->src[i]))
        i++;
    p->start = i;
    if (i >= p->len) {
        p->tok = TOK_END;
        p->end = i;
        return;
    }
    char c = p->src[i];
    if (is_digit(c) || (c == '.' && i + 1 < p->len && is_digit(p->src[i + 1]))) {
        size_t j = i;
        while (j < p->len && is_digit(p->src[j]))
            j++;
        if (j < p->len && p->src[j] == '.') {
            j++;
            while (j < p->len && is_digit(p->src[j]))
                j++;
        }
        if (j < p->len && (p->src[j] == 'e' || p->src[j] == 'E')) {
            size_t k = j + 1;
            if (k < p->len && (p->src[k] == '+' || p->src[k] == '-'))
                k++;
            if (k >= p->len || !is_digit(p->src[k])) {
                char span[40];
                quote_span(p->src + i, k - i, span, sizeof span);
                fail_at(p, k, "malformed number '%s': expected digits after the exponent mark",
                        span);
                p->tok = TOK_BAD;
                p->end = k;
                return;
            }
            while (k < p->len && is_digit(p->src[k]))
                k++;
            j = k;
        }
        p->tok = TOK_NUM;
        p->end = j;
        if (convert_number(p, p->src + i, j - i, &p->num) != 0) {
            fail_at(p, i, "cannot read the number at this column");
            p->tok = TOK_BAD;
            return;
        }
        if (!isfinite(p->num)) {
            char span[40];
            quote_span(p->src + i, j - i, span, sizeof span);
            fail_at(p, i, "number '%s' is too large for a double", span);
            p->tok = TOK_BAD;
        }
        return;
    }
    if (is_name_start(c)) {
        size_t j = i + 1;
        while (j < p->len && is_name_char(p->src[j]))
            j++;
        p->tok = TOK_NAME;
        p->end = j;
        return;
    }
    char c2 = i + 1 < p->len ? p->src[i + 1] : '\0';
    p->end = i + 1;
    switch (c) {
    case '+': p->tok = TOK_PLUS; return;
    case '-': p->tok = TOK_MINUS; return;
    case '*': p->tok = TOK_STAR; return;
    case '/': p->tok = TOK_SLASH; return;
    case '^': p->tok = TOK_CARET; return;
    case '(': p->tok = TOK_LPAREN; return;
    case ')': p->tok = TOK_RPAREN; return;
    case ',': p->tok = TOK_COMMA; return;
    case '<':
        p->tok = c2 == '=' ? TOK_LE : TOK_LT;
        p->end += c2 == '=';
        return;
    case '>':
        p->tok = c2 == '=' ? TOK_GE : TOK_GT;
        p->end += c2 == '=';
        return;
    case '=':
        if (c2 == '=') {
            p->tok = TOK_EQ;
            p->end++;
            return;
        }
        fail_at(p, i, "'=' is not an operator (use '==' to compare)");
        p->tok = TOK_BAD;
        return;
    case '!':
        if (c2 == '=') {
            p->tok = TOK_NE;
            p->end++;
            return;
        }
        fail_at(p, i, "'!' is not an operator (use '!=' to compare)");
        p->tok = TOK_BAD;
        return;
    default:
        if ((unsigned char)c >= 0x21 && (unsigned char)c < 0x7f)
            fail_at(p, i, "unexpected character '%c'", c);
        else
            fail_at(p, i, "unexpected byte 0x%02x", (unsigned)(unsigned char)c);
        p->tok = TOK_BAD;
        return;
    }
}

static int32_t add_node(parser *p, expr_op op, int32_t a, int32_t b, double value)
{
    if (p->count >= p->cap) {
        /* Cannot happen: every node consumes a token of at least one byte. */
        fail_at(p, p->start, "expression has more nodes than bytes (internal error)");
        return -1;
    }
    p->nodes[p->count] = (expr_node){.op = op, .a = a, .b = b, .value = value};
    return (int32_t)p->count++;
}

static int32_t parse_expr(parser *p);
static int32_t parse_unary(parser *p);

static int32_t parse_call(parser *p, size_t name_pos, size_t name_len)
{
    char name[40];
    quote_span(p->src + name_pos, name_len, name, sizeof name);
    expr_op op = kat__expr_op_lookup(p->src + name_pos, name_len);
    if (op == EOP_COUNT) {
        if ((name_len == 1 && p->src[name_pos] == 'x'))
            fail_at(p, name_pos, "'x' is the variable, not a function (write x*(...))");
        else if ((name_len == 1 && p->src[name_pos] == 'e') ||
                 (name_len == 2 && memcmp(p->src + name_pos, "pi", 2) == 0))
            fail_at(p, name_pos, "'%s' is a constant, not a function", name);
        else
            fail_at(p, name_pos, "unknown function '%s'", name);
        return -1;
    }
    int arity = expr_op_arity(op);
    next(p);   /* consume '(' */
    int32_t args[2] = {-1, -1};
    int nargs = 0;
    if (p->tok == TOK_RPAREN) {
        next(p);
    } else {
        for (;;) {
            int32_t a = parse_expr(p);
            if (a < 0)
                return -1;
            if (nargs < 2)
                args[nargs] = a;
            nargs++;
            if (p->tok == TOK_COMMA) {
                next(p);
                continue;
            }
            if (p->tok == TOK_RPAREN) {
                next(p);
                break;
            }
            char what[96], got[80];
            if (nargs >= arity)
                snprintf(what, sizeof what, "')' after argument list of '%s'", name);
            else
                snprintf(what, sizeof what, "',' or ')' after argument %d of '%s'", nargs, name);
            fail_expected(p, what, got, sizeof got);
            return -1;
        }
    }
    if (nargs != arity) {
        fail_at(p, name_pos, "'%s' takes %d argument%s, got %d", name, arity,
                arity == 1 ? "" : "s", nargs);
        return -1;
    }
    return add_node(p, op, args[0], args[1], 0.0);
}

static int32_t parse_primary(parser *p)
{
    if (p->failed)
        return -1;
    size_t pos = p->start;
    switch (p->tok) {
    case TOK_NUM: {
        double v = p->num;
        next(p);
        return add_node(p, EOP_CONST, -1, -1, v);
    }
    case TOK_NAME: {
        size_t len = p->end - p->start;
        const char *s = p->src + pos;
        next(p);
        if (p->tok == TOK_LPAREN)
            return parse_call(p, pos, len);
        if (len == 1 && *s == 'x')
            return add_node(p, EOP_X, -1, -1, 0.0);
        if (len == 1 && *s == 'e')
            return add_node(p, EOP_CONST, -1, -1, M_E);
        if (len == 2 && memcmp(s, "pi", 2) == 0)
            return add_node(p, EOP_CONST, -1, -1, M_PI);
        char name[40];
        quote_span(s, len, name, sizeof name);
        if (kat__expr_op_lookup(s, len) != EOP_COUNT) {
            fail_at(p, pos, "'%s' is a function: expected '(' after it", name);
            return -1;
        }
        fail_at(p, pos, "unknown variable '%s' (the variable is x; constants are pi and e)",
                name);
        return -1;
    }
    case TOK_LPAREN: {
        next(p);
        int32_t inner = parse_expr(p);
        if (inner < 0)
            return -1;
        if (p->tok != TOK_RPAREN) {
            char what[64], got[80];
            snprintf(what, sizeof what, "')' to close the '(' at column %zu", pos + 1);
            fail_expected(p, what, got, sizeof got);
            return -1;
        }
        next(p);
        return inner;
    }
    case TOK_END:
        fail_at(p, pos, "unexpected end of input: expected a number, x, pi, e, a function "
                        "call or '('");
        return -1;
    case TOK_BAD:
        return -1;
    default: {
        char got[64];
        describe_token(p, got, sizeof got);
        fail_at(p, pos, "expected a number, x, pi, e, a function call or '(', got %s", got);
        return -1;
    }
    }
}

static int32_t parse_power(parser *p)
{
    /* The constant e written as the base of ^ means exp: e^x is exp(x), with exp's accuracy
     * rather than pow(2.718281828459045, x). */
    int base_is_e = p->tok == TOK_NAME && p->end - p->start == 1 && p->src[p->start] == 'e';
    size_t count_before = p->count;
    int32_t base = parse_primary(p);
    if (base < 0 || p->tok != TOK_CARET)
        return base;
    next(p);
    int32_t expo = parse_unary(p);   /* right-associative, and allows 2^-1 */
    if (expo < 0)
        return -1;
    if (base_is_e && p->nodes[base].op == EOP_CONST && (size_t)base == count_before) {
        /* Drop the e leaf (appended just before the exponent's nodes) so that the array
         * stays one tree: shift the exponent's nodes down by one. */
        memmove(&p->nodes[base], &p->nodes[base + 1],
                (p->count - (size_t)base - 1) * sizeof *p->nodes);
        p->count--;
        for (size_t i = (size_t)base; i < p->count; i++) {
            if (p->nodes[i].a > base)
                p->nodes[i].a--;
            if (p->nodes[i].b > base)
                p->nodes[i].b--;
        }
        return add_node(p, EOP_EXP, expo - 1, -1, 0.0);
    }
    return add_node(p, EOP_POW, base, expo, 0.0);
}

static int32_t parse_unary(parser *p)
{
    if (p->failed)
        return -1;
    if (++p->depth > EXPR_MAX_DEPTH) {
        fail_at(p, p->start, "expression nested deeper than %d levels", EXPR_MAX_DEPTH);
        return -1;
    }
    int32_t r;
    if (p->tok == TOK_PLUS || p->tok == TOK_MINUS) {
        int neg = p->tok == TOK_MINUS;
        next(p);
        r = parse_unary(p);
        if (r >= 0 && neg)
            r = add_node(p, EOP_NEG, r, -1, 0.0);
    } else {
        r = parse_power(p);
    }
    p->depth--;
    return r;
}

static int32_t parse_term(parser *p)
{
    int32_t left = parse_unary(p);
    while (left >= 0 && (p->tok == TOK_STAR || p->tok == TOK_SLASH)) {
        expr_op op = p->tok == TOK_STAR ? EOP_MUL : EOP_DIV;
        next(p);
        int32_t right = parse_unary(p);
        left = right < 0 ? -1 : add_node(p, op, left, right, 0.0);
    }
    return left;
}

static int32_t parse_sum(parser *p)
{
    int32_t left = parse_term(p);
    while (left >= 0 && (p->tok == TOK_PLUS || p->tok == TOK_MINUS)) {
        expr_op op = p->tok == TOK_PLUS ? EOP_ADD : EOP_SUB;
        next(p);
        int32_t right = parse_term(p);
        left = right < 0 ? -1 : add_node(p, op, left, right, 0.0);
    }
    return left;
}

static int32_t parse_expr(parser *p)
{
    int32_t left = parse_sum(p);
    for (;;) {
        if (left < 0)
            return -1;
        expr_op op;
        switch (p->tok) {
        case TOK_EQ: op = EOP_EQ; break;
        case TOK_NE: op = EOP_NE; break;
        case TOK_LT: op = EOP_LT; break;
        case TOK_LE: op = EOP_LE; break;
        case TOK_GT: op = EOP_GT; break;
        case TOK_GE: op = EOP_GE; break;
        default: return left;
        }
        next(p);
        int32_t right = parse_sum(p);
        left = right < 0 ? -1 : add_node(p, op, left, right, 0.0);
    }
}

kat_status kat__expr_parse(const char *src, size_t len, expr_tree *tree, size_t *err_pos)
{
    parser p = {.src = src, .len = len};
    p.cap = len ? len : 1;
    p.nodes = kat__alloc_array(p.cap, sizeof *p.nodes, "expression syntax tree");
    if (!p.nodes)
        return KAT_ENOMEM;
    next(&p);
    if (p.tok == TOK_END) {
        fail_at(&p, p.start, "empty expression");
    } else {
        int32_t root = parse_expr(&p);
        if (root >= 0 && p.tok != TOK_END) {
            char got[64];
            describe_token(&p, got, sizeof got);
            if (p.tok == TOK_RPAREN)
                fail_at(&p, p.start, "unmatched ')'");
            else if (p.tok != TOK_BAD)
                fail_at(&p, p.start, "expected an operator or the end of input, got %s", got);
        }
        /* root is the last node: every other node was appended before its parent. */
    }
    if (p.failed) {
        kat_free(p.nodes);
        if (err_pos && p.status == KAT_EPARSE)
            *err_pos = p.err_pos;
        return p.status;
    }
    tree->nodes = p.nodes;
    tree->count = p.count;
    return KAT_OK;
}
