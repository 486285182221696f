/* The bucketed layout on the GPU: every (batch, head)'s query rows and key rows sorted by
 * (bucket, row), the dropped rows (bucket -1) last, and each bucket's start in that order.
 * The flash kernels then read a bucket's rows as one contiguous run (through the row lists,
 * so q, k and v are never copied) and skip every key tile of other buckets.
 *
 * One radix sort of 64-bit keys (bh, bucket, row) orders all heads at once; a histogram and
 * a per-head scan give the bucket starts. */
#include <cub/device/device_radix_sort.cuh>

#include "layout.cuh"

namespace kat_cuda {

static size_t align256(size_t n) { return (n + 255) / 256 * 256; }

static int bits_for(uint64_t n) {
    int b = 0;
    while (b < 64 && (n >> b)) b++;
    return b;
}

/* Sort keys and bucket counts; ids outside [-1, nb) raise the error flag. */
__global__ void bucket_keys_kernel(const int *bucket, int rows, int bh_count, int nb,
                                   unsigned long long *keys, int *count, int *bad) {
    const int64_t t = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= (int64_t)rows * bh_count) return;
    const int bh = (int)(t / rows), i = (int)(t % rows);
    int b = bucket[t];
    if (b < -1 || b >= nb) {
        atomicExch(bad, 1);
        b = nb;
    }
    if (b < 0) b = nb;
    atomicAdd(&count[(int64_t)bh * (nb + 2) + b], 1);
    keys[t] = ((unsigned long long)((int64_t)bh * (nb + 1) + b) << 31) | (unsigned)i;
}

/* Exclusive scan of each head's nb + 1 counts into its nb + 2 starts (in place). */
__global__ void bucket_scan_kernel(int *off, int bh_count, int nb) {
    const int bh = blockIdx.x * blockDim.x + threadIdx.x;
    if (bh >= bh_count) return;
    int *o = off + (int64_t)bh * (nb + 2);
    int run = 0;
    for (int b = 0; b < nb + 2; b++) {
        const int c = o[b];
        o[b] = run;
        run += c;
    }
}

__global__ void bucket_decode_kernel(const unsigned long long *keys, int rows, int bh_count,
                                     int nb, int *row_of, int *bucket_of) {
    const int64_t t = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= (int64_t)rows * bh_count) return;
    const unsigned long long k = keys[t];
    row_of[t] = (int)(k & 0x7fffffffu);
    bucket_of[t] = (int)((k >> 31) % (unsigned long long)(nb + 1));
}

namespace {
struct side_sizes {
    size_t rows, off, keys, temp;
};

/* temp = 0 and *err set when the sort's scratch size cannot be had (no usable device). */
side_sizes side(int bh_count, int rows, int nb, cudaError_t *err) {
    side_sizes s;
    const size_t n = (size_t)bh_count * rows;
    s.rows = align256(n * sizeof(int));
    s.off = align256((size_t)bh_count * (nb + 2) * sizeof(int));
    s.keys = align256(n * sizeof(unsigned long long));
    size_t temp = 0;
    const cudaError_t e = cub::DeviceRadixSort::SortKeys(
        nullptr, temp, (unsigned long long *)nullptr, (unsigned long long *)nullptr, (int64_t)n);
    if (e != cudaSuccess) {
        *err = e;
        temp = 0;
    }
    s.temp = temp ? align256(temp) : 0;
    return s;
}
} // namespace

size_t layout_bytes(int bh_count, int N, int M, int nb, cudaError_t *err) {
    *err = cudaSuccess;
    const side_sizes q = side(bh_count, N, nb, err), k = side(bh_count, M, nb, err);
    const size_t keys = q.keys > k.keys ? q.keys : k.keys;
    const size_t temp = q.temp > k.temp ? q.temp : k.temp;
    if (!q.temp || !k.temp) return 0;
    return 2 * q.rows + q.off + 2 * k.rows + k.off + 2 * keys + temp + 256;
}

/* Carve the layout's arrays out of its memory (the same cut for the build and the kernels). */
void layout_carve(void *mem, int bh_count, int N, int M, int nb, bucket_layout *L,
                  void **keys_a, void **keys_b, void **temp, size_t *temp_bytes, int **bad) {
    cudaError_t err;   /* the caller sized the memory with layout_bytes, which succeeded */
    const side_sizes q = side(bh_count, N, nb, &err), k = side(bh_count, M, nb, &err);
    const size_t keys = q.keys > k.keys ? q.keys : k.keys;
    char *p = static_cast<char *>(mem);
    L->nb = nb;
    L->q_rows = reinterpret_cast<int *>(p); p += q.rows;
    L->q_bkt = reinterpret_cast<int *>(p); p += q.rows;
    L->q_off = reinterpret_cast<int *>(p); p += q.off;
    L->k_rows = reinterpret_cast<int *>(p); p += k.rows;
    L->k_bkt = reinterpret_cast<int *>(p); p += k.rows;
    L->k_off = reinterpret_cast<int *>(p); p += k.off;
    *keys_a = p; p += keys;
    *keys_b = p; p += keys;
    *bad = reinterpret_cast<int *>(p); p += 256;
    *temp = p;
    *temp_bytes = q.temp > k.temp ? q.temp : k.temp;
}

static cudaError_t build_side(const int *bucket, int bh_count, int rows, int nb, int *row_of,
                              int *bucket_of, int *off, void *keys_a, void *keys_b, void *temp,
                              size_t temp_bytes, int *bad, cudaStream_t s) {
    const int64_t n = (int64_t)bh_count * rows;
    const int blocks = (int)((n + 255) / 256);
    cudaError_t e = cudaMemsetAsync(off, 0, (size_t)bh_count * (nb + 2) * sizeof(int), s);
    if (e != cudaSuccess) return e;
    auto *ka = static_cast<unsigned long long *>(keys_a);
    auto *kb = static_cast<unsigned long long *>(keys_b);
    bucket_keys_kernel<<<blocks, 256, 0, s>>>(bucket, rows, bh_count, nb, ka, off, bad);
    bucket_scan_kernel<<<(bh_count + 127) / 128, 128, 0, s>>>(off, bh_count, nb);
    const int end_bit = 31 + bits_for((uint64_t)bh_count * (nb + 1));
    e = cub::DeviceRadixSort::SortKeys(temp, temp_bytes, ka, kb, n, 0, end_bit, s);
    if (e != cudaSuccess) return e;
    bucket_decode_kernel<<<blocks, 256, 0, s>>>(kb, rows, bh_count, nb, row_of, bucket_of);
    return cudaGetLastError();
}

cudaError_t layout_build(void *mem, const int *q_bucket, const int *k_bucket, int bh_count,
                         int N, int M, int nb, bucket_layout *L, int *bad_host,
                         cudaStream_t s) {
    void *ka, *kb, *temp;
    size_t temp_bytes;
    int *bad;
    layout_carve(mem, bh_count, N, M, nb, L, &ka, &kb, &temp, &temp_bytes, &bad);
    cudaError_t e = cudaMemsetAsync(bad, 0, sizeof(int), s);
    if (e != cudaSuccess) return e;
    e = build_side(q_bucket, bh_count, N, nb, L->q_rows, L->q_bkt, L->q_off, ka, kb, temp,
                   temp_bytes, bad, s);
    if (e != cudaSuccess) return e;
    e = build_side(k_bucket, bh_count, M, nb, L->k_rows, L->k_bkt, L->k_off, ka, kb, temp,
                   temp_bytes, bad, s);
    if (e != cudaSuccess) return e;
    /* the ids are the caller's data: a bad one must be reported, so the stream waits here */
    e = cudaMemcpyAsync(bad_host, bad, sizeof(int), cudaMemcpyDeviceToHost, s);
    if (e != cudaSuccess) return e;
    return cudaStreamSynchronize(s);
}

} // namespace kat_cuda
