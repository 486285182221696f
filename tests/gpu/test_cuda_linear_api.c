/* libkat-cuda's linear-attention C API without a GPU: every argument error is reported, with
 * its sentence, before the CUDA runtime is touched; with no usable device a valid call fails
 * with KAT_EIO. (The kernels: tests/gpu/test_linear.py on a GPU, ./run.sh test-gpu.) Device
 * pointers here are never dereferenced. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cuda_api_test.h"

/* A valid causal call: B = 2, H = 4, H_kv = 2, N = M = 100, D = 64, Dv = 32, fp32. */
static kat_cuda_linear valid(void) {
    kat_cuda_linear a;
    memset(&a, 0, sizeof a);
    a.desc.B = 2;
    a.desc.H = 4;
    a.desc.H_kv = 2;
    a.desc.N = 100;
    a.desc.M = 100;
    a.desc.D = 64;
    a.desc.Dv = 32;
    a.desc.causal = 1;
    a.dtype = KAT_CUDA_FP32;
    a.q = view(0x10000, 100, 64, 4);
    a.k = view(0x20000, 100, 64, 2);
    a.v = view(0x30000, 100, 32, 2);
    a.o = view(0x40000, 100, 32, 4);
    a.den = FAKE(0x50000);
    return a;
}

/* the forward's fp32 sums [B, H, N, Dv + 1], 256-byte aligned */
static const size_t FWD = (2 * 4 * 100 * 33 * 4 + 255) / 256 * 256;

static void expect(const kat_cuda_linear *a, kat_status st, const char *sentence) {
    ck_assert_int_eq(kat_cuda_linear_forward(a, FAKE(0xc0000), FWD, NULL), st);
    ck_assert_str_eq(kat_cuda_last_error(), sentence);
}

START_TEST(test_arguments)
{
    expect(NULL, KAT_EINVAL, "kat_cuda_linear: the call is NULL");
    kat_cuda_linear a = valid();
    a.desc.M = 0;
    expect(&a, KAT_EINVAL,
           "kat_cuda_linear: a zero size (B = 2, H = 4, N = 100, M = 0, D = 64)");
    a = valid();
    a.desc.M = 101;
    expect(&a, KAT_EINVAL,
           "kat_cuda_linear: causal linear attention needs N = M (N = 100, M = 101)");
    a = valid();
    a.desc.Dv = 130;
    expect(&a, KAT_ENOTSUP, "kat_cuda_linear: Dv = 130 is beyond the GPU kernels' 128");
    a = valid();
    a.desc.H_kv = 3;
    expect(&a, KAT_EINVAL, "kat_cuda_linear: H = 4 is not a multiple of H_kv = 3");
    a = valid();
    a.dtype = (kat_cuda_dtype)9;
    expect(&a, KAT_EINVAL,
           "kat_cuda_linear: dtype = 9 is not KAT_CUDA_BF16, KAT_CUDA_FP16 or KAT_CUDA_FP32");
    a = valid();
    a.v.data = FAKE(0x30002);
    expect(&a, KAT_EINVAL, "kat_cuda_linear: v.data 0x30002 is not aligned to its 4-byte elements");
    a = valid();
    a.q.stride[1] = -1;
    expect(&a, KAT_EINVAL, "kat_cuda_linear: q.stride[1] = -1 is negative");
    a = valid();
    a.map = (kat_cuda_linear_map)3;
    expect(&a, KAT_EINVAL,
           "kat_cuda_linear: map = 3 is neither KAT_CUDA_TAYLOR2 nor KAT_CUDA_FEATURES");
    a = valid();
    a.map = KAT_CUDA_FEATURES;
    a.desc.scale = 0.25;
    expect(&a, KAT_EINVAL, "kat_cuda_linear: scale = 0.25 with KAT_CUDA_FEATURES (given features "
           "take no scale; pass 0)");
    a = valid();
    a.den = NULL;
    expect(&a, KAT_EINVAL, "kat_cuda_linear: den is NULL");
    a = valid();
    ck_assert_uint_eq(kat_cuda_linear_workspace(&a, 0), FWD);
    ck_assert_int_eq(kat_cuda_linear_forward(&a, FAKE(0xc0000), FWD - 1, NULL), KAT_EINVAL);
    char want[200];
    snprintf(want, sizeof want, "kat_cuda_linear_forward: work_bytes = %zu, %zu needed", FWD - 1,
             FWD);
    ck_assert_str_eq(kat_cuda_last_error(), want);
    ck_assert_uint_eq(kat_cuda_linear_workspace(NULL, 1), 0);
}
END_TEST

START_TEST(test_backward)
{
    kat_cuda_linear a = valid();
    /* g [B, H, N, Dv + 1], dq [B, H, N, D], dk [B, H_kv, M, D], dvbar [B, H_kv, M, Dv + 1] */
    const size_t need = FWD + (2 * 4 * 100 * 64 * 4 + 255) / 256 * 256 +
                        (2 * 2 * 100 * 64 * 4 + 255) / 256 * 256 +
                        (2 * 2 * 100 * 33 * 4 + 255) / 256 * 256;
    ck_assert_uint_eq(kat_cuda_linear_workspace(&a, 1), need);
    kat_cuda_view dout = view(0x80000, 100, 32, 4), dq = view(0x90000, 100, 64, 4);
    kat_cuda_view dk = view(0xa0000, 100, 64, 2), dv = view(0xb0000, 100, 32, 2);
    ck_assert_int_eq(kat_cuda_linear_backward(&a, dout, dq, dk, dv, NULL, 0, NULL), KAT_EINVAL);
    char want[200];
    snprintf(want, sizeof want, "kat_cuda_linear_backward: work is NULL (%zu bytes needed)", need);
    ck_assert_str_eq(kat_cuda_last_error(), want);
    dv.data = NULL;
    ck_assert_int_eq(kat_cuda_linear_backward(&a, dout, dq, dk, dv, FAKE(0xc0000), need, NULL),
                     KAT_EINVAL);
    ck_assert_str_eq(kat_cuda_last_error(), "kat_cuda_linear: dv.data is NULL");
}
END_TEST

/* With no GPU driver on the machine, a valid call comes back with KAT_EIO and the runtime's
 * reason; with one, this case is skipped (the pointers are fake). */
START_TEST(test_no_device)
{
    if (access("/dev/nvidiactl", F_OK) == 0) return;
    kat_cuda_linear a = valid();
    ck_assert_int_eq(kat_cuda_linear_forward(&a, FAKE(0xc0000), FWD, NULL), KAT_EIO);
    const char *prefix = "kat_cuda_linear: in-chunk sums: CUDA error: ";
    ck_assert_int_eq(strncmp(kat_cuda_last_error(), prefix, strlen(prefix)), 0);
}
END_TEST

int main(void) {
    const TTest *const tests[] = {test_arguments, test_backward, test_no_device};
    return run_api_tests("cuda_linear_api", tests, sizeof tests / sizeof *tests);
}
