/* The vector 2^x of every ISA's kernels, against 2^x in double: special values, and every
 * float in the accepted input range [-151, 128.5] (about 2.2e9 inputs per ISA, threaded). The
 * measured maximum errors must stay within the bounds documented in lib/kernels/vexp.h.
 * Under KAT_SANITIZE / KAT_VALGRIND only every 4099th float is checked. */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include "kernels/kernels.h"
#include "kernels/vexp.h"
#include "testutil.h"

static float from_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static uint32_t to_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

/* 2^x in double: near 0 the two-term series is exact to 2^-50 relative, far cheaper than exp2
 * for the 2e9 tiny inputs; elsewhere libm's exp2 (double, < 1 ulp of double). */
static double exact_exp2(float x)
{
    if (fabsf(x) < 0x1p-25f)
        return 1.0 + (double)x * 0.69314718055994530942;
    return exp2((double)x);
}

/* Error of y against e in units of the float spacing at e (2^-149 in the subnormal range). */
static double ulp_error(float y, double e)
{
    if (e >= 0x1p128 - 0x1p103)   /* rounds to +inf */
        return isinf(y) && y > 0 ? 0.0 : INFINITY;
    if (isinf(y))
        return INFINITY;
    int ex;
    frexp(e, &ex);   /* e = m 2^ex, m in [0.5, 1) */
    double ulp = ex - 24 < -149 ? 0x1p-149 : ldexp(1.0, ex - 24);
    return fabs((double)y - e) / ulp;
}

typedef struct {
    double max_normal, max_sub;   /* ulp error for x >= -126, absolute/2^-149 for x < -126 */
    float worst_x;
    uint64_t checked;
} sweep_result;

/* Check the floats with bit patterns in [lo, hi] (same sign), stepping by `step`. */
static void sweep(const kat_kernels *kern, uint32_t lo, uint32_t hi, uint32_t step,
                  sweep_result *res)
{
    enum { CHUNK = 4096 };
    uint64_t span = (uint64_t)hi - lo + 1, nblocks = (span + (uint64_t)CHUNK * step - 1) /
                                                     ((uint64_t)CHUNK * step);
    double max_normal = 0.0, max_sub = 0.0;
    float worst_x = 0.0f;
    uint64_t checked = 0;
#pragma omp parallel reduction(+ : checked)
    {
        float x[CHUNK], y[CHUNK];
        double mn = 0.0, ms = 0.0;
        float wx = 0.0f;
#pragma omp for schedule(dynamic, 16)
        for (uint64_t blk = 0; blk < nblocks; blk++) {
            uint64_t b0 = lo + blk * CHUNK * (uint64_t)step;
            size_t n = 0;
            for (; n < CHUNK && b0 + n * (uint64_t)step <= hi; n++)
                x[n] = from_bits((uint32_t)(b0 + n * (uint64_t)step));
            kern->exp2(n, x, y);
            for (size_t i = 0; i < n; i++) {
                double e = exact_exp2(x[i]);
                if (x[i] >= -126.0f) {
                    double u = ulp_error(y[i], e);
                    if (u > mn)
                        mn = u, wx = x[i];
                } else {
                    double a = fabs((double)y[i] - e) / 0x1p-149;
                    ms = a > ms ? a : ms;
                }
            }
            checked += n;
        }
#pragma omp critical
        {
            if (mn > max_normal)
                max_normal = mn, worst_x = wx;
            max_sub = ms > max_sub ? ms : max_sub;
        }
    }
    if (max_normal > res->max_normal)
        res->max_normal = max_normal, res->worst_x = worst_x;
    res->max_sub = max_sub > res->max_sub ? max_sub : res->max_sub;
    res->checked += checked;
}

static void check_all_inputs(kat_arch arch, uint32_t step)
{
    const kat_kernels *kern = kat__kernels_for(arch);
    if (!kern)
        return;   /* this CPU or build lacks the ISA */
    sweep_result r = {0};
    /* +0 .. 128.5 and -0 .. -151 */
    sweep(kern, 0x00000000u, to_bits(KAT_VEXP2_HI), step, &r);
    sweep(kern, 0x80000000u, to_bits(KAT_VEXP2_LO), step, &r);
    printf("# exp2 %s: %llu inputs, max %.3f ulp (normal results, worst x = %a), "
           "%.3f x 2^-149 (subnormal results)\n",
           kern->name, (unsigned long long)r.checked, r.max_normal, (double)r.worst_x,
           r.max_sub);
    double bound_n = arch == KAT_ARCH_REF ? 1.0 : KAT_VEXP2_ULP_NORMAL;
    double bound_s = arch == KAT_ARCH_REF ? 1.0 : KAT_VEXP2_ABS_SUBNORMAL;
    ck_assert_msg(r.max_normal <= bound_n, "%s exp2: %.3f ulp at x = %a exceeds %.1f",
                  kern->name, r.max_normal, (double)r.worst_x, bound_n);
    ck_assert_msg(r.max_sub <= bound_s, "%s exp2: subnormal error %.3f x 2^-149 exceeds %.1f",
                  kern->name, r.max_sub, bound_s);
    if (step == 1)
        ck_assert_uint_gt(r.checked, 2000000000u);
}

static uint32_t sweep_step(void) { return tu_quick() ? 4099 : 1; }

START_TEST(test_exp2_every_float)
{
    check_all_inputs((kat_arch)_i, sweep_step());
}
END_TEST

START_TEST(test_exp2_special_values)
{
    const kat_kernels *kern = kat__kernels_for((kat_arch)_i);
    if (!kern)
        return;
    const float x[] = {0.0f, -0.0f, 1.0f, -1.0f, 127.0f, 128.0f, 128.5f, 200.0f, INFINITY,
                       -INFINITY, -126.0f, -149.0f, -150.0f, -151.0f, -1000.0f, NAN, 0.5f,
                       -0.5f, 3.0f, -20.0f};
    const size_t n = sizeof x / sizeof x[0];
    float y[sizeof x / sizeof x[0]];
    kern->exp2(n, x, y);
    ck_assert(y[0] == 1.0f && y[1] == 1.0f && y[2] == 2.0f && y[3] == 0.5f);
    ck_assert(y[4] == 0x1p127f);
    ck_assert(isinf(y[5]) && y[5] > 0 && isinf(y[6]) && isinf(y[7]) && isinf(y[8]));
    ck_assert(y[9] == 0.0f && !signbit(y[9]));
    ck_assert(y[10] == 0x1p-126f && y[11] == 0x1p-149f);
    ck_assert(y[12] == 0.0f && y[13] == 0.0f && y[14] == 0.0f);   /* 2^-150 ties to even: 0 */
    ck_assert(isnan(y[15]));
    ck_assert(y[18] == 8.0f && y[19] == 0x1p-20f);
    /* In place, and every length 0..40 (the masked tails). */
    for (size_t len = 0; len <= 40; len++) {
        float a[40], b[40];
        for (size_t i = 0; i < len; i++)
            a[i] = b[i] = -0.37f * (float)i;
        kern->exp2(len, a, a);
        for (size_t i = 0; i < len; i++)
            ck_assert(ulp_error(a[i], exp2((double)b[i])) <= KAT_VEXP2_ULP_NORMAL);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("vexp");
    TCase *tc = tcase_create("vexp");
    tcase_set_timeout(tc, 600);
    tcase_add_loop_test(tc, test_exp2_special_values, 0, KAT_ARCH_COUNT);
    tcase_add_loop_test(tc, test_exp2_every_float, 0, KAT_ARCH_COUNT);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
