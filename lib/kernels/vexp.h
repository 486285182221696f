/* The vector 2^x shared by every ISA's kernels: constants and error bound (never installed).
 *
 * Method: n = round(x), f = x - n in [-1/2, 1/2] (exact), 2^f = 1 + f*q(f) with q a degree-5
 * polynomial, then scale by 2^n (vscalefps on AVX-512, two exponent multiplies on AVX2, so
 * results that underflow are rounded once into the subnormals). q is a Chebyshev fit of
 * (2^f - 1)/f on [-1/2, 1/2] (mpmath chebyfit, 40 digits, rounded to float); its own relative
 * error is 5.1e-9 (0.085 ulp), the rest is fp32 rounding in the Horner steps.
 *
 * exp(x) for attention is 2^(x log2 e): the softmax scale is multiplied by log2(e) once when
 * Q is packed, so the only extra error is that one rounding of the scaled query. */
#ifndef KAT_VEXP_H
#define KAT_VEXP_H

#define KAT_VEXP2_C5 1.545316295e-04f
#define KAT_VEXP2_C4 1.339086336e-03f
#define KAT_VEXP2_C3 9.618082557e-03f
#define KAT_VEXP2_C2 5.550357114e-02f
#define KAT_VEXP2_C1 2.402265076e-01f
#define KAT_VEXP2_C0 6.931471880e-01f

/* Inputs are clamped to [KAT_VEXP2_LO, KAT_VEXP2_HI]: 2^-151 rounds to +0 and 2^128.5
 * overflows to +inf, so the clamp changes no result. */
#define KAT_VEXP2_LO (-151.0f)
#define KAT_VEXP2_HI 128.5f

/* Maximum error of the avx2 and avx512 exp2 over every float input, against 2^x in double.
 * tests/test_vexp.c checks all 2,249,687,042 floats in [-151, 128.5] and the special values;
 * measured (both ISAs, same arithmetic): 0.875 ulp for normal results (worst at
 * x = -0x1.ff3a36p-2), 0.910 x 2^-149 absolute for subnormal results (x < -126). The bounds
 * the test enforces:
 *   normal results (x >= -126): at most KAT_VEXP2_ULP_NORMAL units in the last place;
 *   subnormal results (x < -126): within KAT_VEXP2_ABS_SUBNORMAL * 2^-149 absolute.
 * The ref kernels use libm's exp2f (glibc; measured 0.502 ulp). */
#define KAT_VEXP2_ULP_NORMAL 1.0
#define KAT_VEXP2_ABS_SUBNORMAL 1.0

#endif
