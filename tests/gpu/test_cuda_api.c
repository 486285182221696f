/* libkat-cuda's C API without a GPU: every argument error is reported, with its sentence,
 * before the CUDA runtime is touched; with no usable device a valid call fails with KAT_EIO.
 * (The kernels themselves are tested on a GPU by tests/gpu/test_attn.py: ./run.sh test-gpu.)
 * Device pointers here are never dereferenced: they only have to look aligned. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cuda_api_test.h"

/* A valid dense call: B = 2, H = 4, H_kv = 2, N = 100, M = 120, D = 64, bf16. */
static kat_cuda_attn valid(void) {
    kat_cuda_attn a;
    memset(&a, 0, sizeof a);
    a.desc.B = 2;
    a.desc.H = 4;
    a.desc.H_kv = 2;
    a.desc.N = 100;
    a.desc.M = 120;
    a.desc.D = 64;
    a.dtype = KAT_CUDA_BF16;
    a.q = view(0x10000, 100, 64, 4);
    a.k = view(0x20000, 120, 64, 2);
    a.v = view(0x30000, 120, 64, 2);
    a.o = view(0x40000, 100, 64, 4);
    a.lse = FAKE(0x50000);
    return a;
}

static void expect(const kat_cuda_attn *a, kat_status st, const char *sentence) {
    ck_assert_int_eq(kat_cuda_attn_forward(a, NULL), st);
    ck_assert_str_eq(kat_cuda_last_error(), sentence);
}

START_TEST(test_shapes)
{
    expect(NULL, KAT_EINVAL, "kat_cuda_attn: the call is NULL");
    kat_cuda_attn a = valid();
    a.desc.N = 0;
    expect(&a, KAT_EINVAL,
           "kat_cuda_attn: a zero size (B = 2, H = 4, N = 0, M = 120, D = 64)");
    a = valid();
    a.desc.H_kv = 3;
    expect(&a, KAT_EINVAL, "kat_cuda_attn: H = 4 is not a multiple of H_kv = 3");
    a = valid();
    a.desc.D = 136;
    expect(&a, KAT_ENOTSUP, "kat_cuda_attn: D = 136 is beyond the GPU kernels' 128");
    a = valid();
    a.desc.D = 12;
    expect(&a, KAT_EINVAL, "kat_cuda_attn: D = 12 is not a multiple of 8");
    a = valid();
    a.desc.N = (size_t)1 << 31;
    expect(&a, KAT_ERANGE,
           "kat_cuda_attn: B = 2, H = 4, N = 2147483648 or M = 120 is too large");
    a = valid();
    a.desc.scale = -1.0;
    expect(&a, KAT_EINVAL, "kat_cuda_attn: scale = -1 must be finite and >= 0");
    a = valid();
    a.dtype = (kat_cuda_dtype)7;
    expect(&a, KAT_EINVAL, "kat_cuda_attn: dtype = 7 is neither KAT_CUDA_BF16 nor KAT_CUDA_FP16");
}
END_TEST

START_TEST(test_views)
{
    kat_cuda_attn a = valid();
    a.q.data = NULL;
    expect(&a, KAT_EINVAL, "kat_cuda_attn: q.data is NULL");
    a = valid();
    a.v.data = FAKE(0x30008);
    expect(&a, KAT_EINVAL, "kat_cuda_attn: v.data 0x30008 is not 16-byte aligned");
    a = valid();
    a.k.stride[2] = 68;
    expect(&a, KAT_EINVAL, "kat_cuda_attn: k.stride[2] = 68 must be a non-negative multiple of 8");
    a = valid();
    a.o.stride[0] = -8;
    expect(&a, KAT_EINVAL, "kat_cuda_attn: o.stride[0] = -8 must be a non-negative multiple of 8");
    a = valid();
    a.lse = NULL;
    expect(&a, KAT_EINVAL, "kat_cuda_attn: lse is NULL");
}
END_TEST

START_TEST(test_buckets)
{
    kat_cuda_attn a = valid();
    a.desc.H_kv = 4;
    a.k = view(0x20000, 120, 64, 4);
    a.v = view(0x30000, 120, 64, 4);
    a.q_bucket = FAKE(0x60000);
    a.nb = 4;
    expect(&a, KAT_EINVAL, "kat_cuda_attn: k_bucket is NULL but q_bucket is not");
    a.k_bucket = FAKE(0x70000);
    a.nb = 0;
    expect(&a, KAT_EINVAL, "kat_cuda_attn: nb = 0 must be >= 1");
    a.nb = 4;
    a.desc.H_kv = 2;
    expect(&a, KAT_ENOTSUP,
           "kat_cuda_attn: bucketed attention needs H_kv = H (H = 4, H_kv = 2)");
    ck_assert_uint_eq(kat_cuda_attn_layout_size(&a), 0);
    kat_cuda_attn dense = valid();
    ck_assert_uint_eq(kat_cuda_attn_layout_size(&dense), 0);
}
END_TEST

START_TEST(test_backward_workspace)
{
    kat_cuda_attn a = valid();
    /* the fp32 dq accumulator (D padded to 64) and the row sums, each 256-byte aligned */
    const size_t rows = 2 * 4 * 100, need = rows * 64 * 4 + (rows * 4 + 255) / 256 * 256;
    ck_assert_uint_eq(kat_cuda_attn_backward_workspace(&a), need);
    kat_cuda_view dout = view(0x80000, 100, 64, 4), dq = view(0x90000, 100, 64, 4);
    kat_cuda_view dk = view(0xa0000, 120, 64, 2), dv = view(0xb0000, 120, 64, 2);
    char want[200];
    ck_assert_int_eq(kat_cuda_attn_backward(&a, dout, dq, dk, dv, NULL, 0, NULL), KAT_EINVAL);
    snprintf(want, sizeof want, "kat_cuda_attn_backward: work is NULL (%zu bytes needed)", need);
    ck_assert_str_eq(kat_cuda_last_error(), want);
    ck_assert_int_eq(kat_cuda_attn_backward(&a, dout, dq, dk, dv, FAKE(0xc0010), need, NULL),
                     KAT_EINVAL);
    ck_assert_str_eq(kat_cuda_last_error(),
                     "kat_cuda_attn_backward: work 0xc0010 is not 256-byte aligned");
    ck_assert_int_eq(kat_cuda_attn_backward(&a, dout, dq, dk, dv, FAKE(0xc0000), need - 1, NULL),
                     KAT_EINVAL);
    snprintf(want, sizeof want, "kat_cuda_attn_backward: work_bytes = %zu, %zu needed", need - 1,
             need);
    ck_assert_str_eq(kat_cuda_last_error(), want);
    dk.stride[1] = 12;
    ck_assert_int_eq(kat_cuda_attn_backward(&a, dout, dq, dk, dv, FAKE(0xc0000), need, NULL),
                     KAT_EINVAL);
    ck_assert_str_eq(kat_cuda_last_error(),
                     "kat_cuda_attn: dk.stride[1] = 12 must be a non-negative multiple of 8");
    ck_assert_uint_eq(kat_cuda_attn_backward_workspace(NULL), 0);
}
END_TEST

/* With no GPU driver on the machine, a valid call reaches the runtime and comes back with
 * KAT_EIO and the runtime's reason; with one, this case is skipped (the pointers are fake). */
START_TEST(test_no_device)
{
    if (access("/dev/nvidiactl", F_OK) == 0) return;
    kat_cuda_attn a = valid();
    ck_assert_int_eq(kat_cuda_attn_forward(&a, NULL), KAT_EIO);
    const char *prefix = "kat_cuda_attn: forward: CUDA error: ";
    ck_assert_int_eq(strncmp(kat_cuda_last_error(), prefix, strlen(prefix)), 0);
    ck_assert_int_gt((int)strlen(kat_cuda_last_error()), (int)strlen(prefix));
}
END_TEST

int main(void) {
    const TTest *const tests[] = {test_shapes, test_views, test_buckets,
                                  test_backward_workspace, test_no_device};
    return run_api_tests("cuda_api", tests, sizeof tests / sizeof *tests);
}
